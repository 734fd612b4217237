//! Type `host`: a cluster-admin ServiceAccount of the hosting cluster, its
//! token Secret (filled by the token controller) and `admin-kubeconfig`.

use kube::ResourceExt;

use super::{Observed, secret_data, text};
use crate::api::ControlPlane;
use crate::builders::host;
use crate::context::Context;
use crate::error::Result;
use crate::names;
use crate::profile::Profile;

/// Provisions a `host` control plane.
pub async fn provision(cp: &ControlPlane, profile: &Profile, ctx: &Context) -> Result<Observed> {
    let mut observed = Observed::default();
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    ctx.applier.apply(&host::service_account(cp)?).await?;
    ctx.applier.apply(&host::token_secret(cp)?).await?;
    ctx.applier.apply(&host::cluster_role_binding(cp)?).await?;
    let data = secret_data(ctx, &ns, &cp_name).await?.unwrap_or_default();
    let (Some(ca), Some(token)) = (text(&data, "ca.crt"), text(&data, "token")) else {
        observed.blocked = Some(format!(
            "waiting for the token controller to fill Secret {ns}/{cp_name}"
        ));
        return Ok(observed);
    };
    if let Some(secret) = host::admin_kubeconfig(cp, profile, &ca, &token)? {
        ctx.applier.apply(&secret).await?;
    }
    Ok(observed)
}
