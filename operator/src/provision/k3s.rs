//! Type `k3s`: the operator's CAs for k3s (Secret `k3s-ca`, generated once),
//! PVC, Service, exposure, the StatefulSet (hash of `k3s-ca` in its
//! template) and Secret `k3s-config` written by the operator itself.

use std::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::k8s::kubeconfig_stale;
use super::{Observed, ProbeTarget, secret_data, stateful_set_available, text};
use crate::api::ControlPlane;
use crate::builders::k3s;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::kubeconfig::external_url;
use crate::pki::K3sCas;
use crate::profile::Profile;
use crate::{meta, names};

/// Provisions a `k3s` control plane.
pub async fn provision(cp: &ControlPlane, profile: &Profile, ctx: &Context) -> Result<Observed> {
    let mut observed = Observed::default();
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    let cfg = &ctx.config;
    let pki_err = |source| Error::Pki {
        cp: cp_name.clone(),
        source,
    };
    super::api_service(cp, profile, ctx).await?;
    let route_host = match super::expose(cp, profile, ctx).await? {
        Ok(host) => host,
        Err(waiting) => {
            observed.blocked = Some(waiting);
            return Ok(observed);
        }
    };

    let start = Instant::now();
    let cas = match secret_data(ctx, &ns, names::SECRET_K3S_CA)
        .await?
        .map(|d| K3sCas::from_secret_data(&d))
    {
        Some(Ok(cas)) => cas,
        // A CA already placed on the data volume wins over a new one (the
        // init container copies only missing files), so a damaged Secret is
        // regenerated only when it is missing entirely or unreadable.
        _ => {
            let pki = cfg.pki.clone();
            observed.steps.push((
                "CertificatesIssued",
                format!(
                    "generated the k3s CAs in Secret {ns}/{}",
                    names::SECRET_K3S_CA
                ),
            ));
            tokio::task::spawn_blocking(move || K3sCas::generate(&pki, Timestamp::now()))
                .await
                .map_err(|_| Error::Task {
                    what: format!("generating the k3s CAs of {cp_name}"),
                })?
                .map_err(pki_err)?
        }
    };
    ctx.metrics.pki(start.elapsed());
    let ca_data = cas.to_secret_data();
    ctx.applier.apply(&k3s::ca_secret(cp, &cas)?).await?;
    ctx.applier.apply(&k3s::data_pvc(cp, cfg)?).await?;
    let sts = ctx
        .applier
        .apply(&k3s::stateful_set(
            cp,
            cfg,
            &meta::content_hash([&ca_data]),
        )?)
        .await?;

    let external = external_url(&cp_name, cfg, route_host.as_deref());
    let internal = profile.in_cluster_url(&cp_name).unwrap_or_default();
    let stored = secret_data(ctx, &ns, names::SECRET_K3S_CONFIG).await?;
    let token_ok = stored
        .as_ref()
        .and_then(|d| text(d, names::KEY_TOKEN))
        .is_some_and(|t| t == cas.full_token());
    let config = if !token_ok
        || kubeconfig_stale(
            stored.as_ref(),
            names::KEY_CONFIG,
            &external,
            &cas.client_ca,
            ctx,
        )
        || kubeconfig_stale(
            stored.as_ref(),
            names::KEY_CONFIG_INCLUSTER,
            &internal,
            &cas.client_ca,
            ctx,
        ) {
        let admin = cas
            .client_ca
            .issue_client(&K3sCas::admin_identity(), &cfg.pki, Timestamp::now())
            .map_err(pki_err)?;
        let secret = k3s::config_secret(cp, profile, cfg, &cas, &admin, route_host.as_deref())?;
        observed.steps.push((
            "KubeconfigIssued",
            format!("issued Secret {ns}/{}", names::SECRET_K3S_CONFIG),
        ));
        ctx.applier.apply(&secret).await?.data.unwrap_or_default()
    } else {
        stored.unwrap_or_default()
    };
    observed.workload_available = Some(stateful_set_available(&sts));
    if let (Some(svc), Some(yaml)) = (
        profile.service_name(&cp_name),
        text(&config, names::KEY_CONFIG_INCLUSTER),
    ) {
        observed.probe = Some(ProbeTarget {
            service: svc,
            port: profile.service.map_or(443, |s| s.port),
            in_cluster_kubeconfig: yaml,
        });
    }
    Ok(observed)
}
