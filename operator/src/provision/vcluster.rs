//! Type `vcluster`: the chart's objects rendered natively, exposure, and
//! `config-incluster` (and, with `--external-address`, `config-external`)
//! added to the syncer's `vc-vcluster` Secret.

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;

use super::{Observed, ProbeTarget, secret_data, stateful_set_available, text};
use crate::api::ControlPlane;
use crate::builders::vcluster;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::names;
use crate::profile::Profile;

/// Provisions a `vcluster` control plane.
pub async fn provision(cp: &ControlPlane, profile: &Profile, ctx: &Context) -> Result<Observed> {
    let mut observed = Observed::default();
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    for sa in vcluster::service_accounts(cp)? {
        ctx.applier.apply(&sa).await?;
    }
    ctx.applier.apply(&vcluster::role_binding(cp)?).await?;
    remove_old_role(cp, ctx).await?;
    // The chart's Services (`vcluster` among them, the profile's API Service).
    for svc in vcluster::services(cp)? {
        ctx.applier.apply(&svc).await?;
    }
    let route_host = match super::expose(cp, profile, ctx).await? {
        Ok(host) => host,
        Err(waiting) => {
            observed.blocked = Some(waiting);
            return Ok(observed);
        }
    };
    // Known before the Secret is: status names the key from now on, as it
    // names `config` before the syncer has written it.
    observed.off_cluster_key = vcluster::external_key(&cp_name, &ctx.config, route_host.as_deref());
    let sts = ctx
        .applier
        .apply(&vcluster::stateful_set(
            cp,
            &ctx.config,
            route_host.as_deref(),
        )?)
        .await?;
    observed.workload_available = Some(stateful_set_available(&sts));

    // The syncer publishes `config` once it runs; derive our keys from it.
    let Some(data) = secret_data(ctx, &ns, names::SECRET_VC_VCLUSTER).await? else {
        return Ok(observed);
    };
    let Some(config) = text(&data, names::KEY_CONFIG) else {
        return Ok(observed);
    };
    let parsed =
        kubeconfig::parse(&config, "vc-vcluster/config").map_err(|source| Error::Kubeconfig {
            cp: cp_name.clone(),
            source,
        })?;
    let live = ctx
        .applier
        .apply(&vcluster::kubeconfig_patch(
            cp,
            profile,
            &ctx.config,
            route_host.as_deref(),
            &parsed,
        )?)
        .await?;
    if let (Some(svc), Some(yaml)) = (
        profile.service_name(&cp_name),
        live.data
            .as_ref()
            .and_then(|d| text(d, names::KEY_CONFIG_INCLUSTER)),
    ) {
        observed.probe = Some(ProbeTarget {
            service: svc,
            port: profile.service.map_or(443, |s| s.port),
            in_cluster_kubeconfig: yaml,
        });
    }
    Ok(observed)
}

/// Removes the Role and RoleBinding `vcluster` that versions before the
/// pre-installed ClusterRole made (the Role granted pods/exec and Secrets
/// in `<cp>-system`); only ours: carrying this control plane's labels and
/// no hook's.
async fn remove_old_role(cp: &ControlPlane, ctx: &Context) -> Result<()> {
    let ns = names::namespace_of(&cp.name_any());
    let ours = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(names::LABEL_MANAGED_BY).map(String::as_str) == Some(names::MANAGED_BY)
            && labels.get(names::LABEL_CONTROL_PLANE) == Some(&cp.name_any())
            && !labels.contains_key(names::LABEL_POST_CREATE_HOOK)
    };
    let name = names::VCLUSTER_RELEASE;
    if let Some(b) = ctx.applier.get::<RoleBinding>(Some(&ns), name).await?
        && ours(b.labels())
    {
        ctx.applier.delete::<RoleBinding>(Some(&ns), name).await?;
    }
    if let Some(r) = ctx.applier.get::<Role>(Some(&ns), name).await?
        && ours(r.labels())
    {
        ctx.applier.delete::<Role>(Some(&ns), name).await?;
    }
    Ok(())
}
