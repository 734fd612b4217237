//! Type `k8s`: Service, exposure, the `k8s-certs` PKI (generated once,
//! reloaded, leaves renewed when due), the kubeconfig Secrets (re-derived
//! when missing, damaged, due or pointing elsewhere), the database, and the
//! two Deployments whose pod templates carry a hash of what they read.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::ByteString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{Observed, ProbeTarget, deployment_available, secret_data, text};
use crate::api::ControlPlane;
use crate::builders::k8s::{OpenShift, apiserver_deployment, controller_manager_deployment};
use crate::builders::secrets;
use crate::config::Exposure;
use crate::context::Context;
use crate::database::{self, JobState};
use crate::error::{Error, Result};
use crate::kubeconfig::{self, external_url};
use crate::pki::{CertificateAuthority, ClientIdentity, ControlPlanePki, ServingNames};
use crate::profile::Profile;
use crate::{meta, names};

/// Whether the kubeconfig at `key` of `data` must be issued again.
pub(super) fn kubeconfig_stale(
    data: Option<&BTreeMap<String, ByteString>>,
    key: &str,
    server: &str,
    ca: &CertificateAuthority,
    ctx: &Context,
) -> bool {
    let Some(yaml) = data.and_then(|d| text(d, key)) else {
        return true;
    };
    let Ok(kc) = kubeconfig::parse(&yaml, key) else {
        return true;
    };
    let Some(cert) = kc.client_certificate_pem() else {
        return true;
    };
    kc.server() != Some(server) || ca.needs_reissue(&cert, &ctx.config.pki, Timestamp::now())
}

/// Loads, renews or generates the PKI; applies `k8s-certs`.
async fn pki(
    cp: &ControlPlane,
    ctx: &Context,
    names_: &ServingNames,
    observed: &mut Observed,
) -> Result<ControlPlanePki> {
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    let pki_err = |source| Error::Pki {
        cp: cp_name.clone(),
        source,
    };
    let cfg = ctx.config.pki.clone();
    let stored = secret_data(ctx, &ns, names::SECRET_K8S_CERTS).await?;
    let start = Instant::now();
    let pki = match stored.as_ref().map(ControlPlanePki::from_secret_data) {
        Some(Ok(mut pki)) => {
            let renewed = pki.renew(names_, &cfg, Timestamp::now()).map_err(pki_err)?;
            if !renewed.is_empty() {
                observed.steps.push((
                    "CertificatesRenewed",
                    format!("renewed {} in Secret {ns}/k8s-certs", renewed.join(", ")),
                ));
            }
            pki
        }
        other => {
            if let Some(Err(e)) = other {
                // Unusable: start over (kubeconfigs are re-derived below).
                tracing::warn!(error = %e, "k8s-certs is damaged; generating a new PKI");
                observed.steps.push((
                    "CertificatesRegenerated",
                    format!("Secret {ns}/k8s-certs was unusable ({e}); generated a new PKI"),
                ));
            } else {
                observed.steps.push((
                    "CertificatesIssued",
                    format!("generated the PKI in Secret {ns}/k8s-certs"),
                ));
            }
            let names_ = names_.clone();
            tokio::task::spawn_blocking(move || {
                ControlPlanePki::generate(&names_, &cfg, Timestamp::now())
            })
            .await
            .map_err(|_| Error::Task {
                what: format!("generating the PKI of {cp_name}"),
            })?
            .map_err(pki_err)?
        }
    };
    ctx.metrics.pki(start.elapsed());
    ctx.applier.apply(&secrets::k8s_certs(cp, &pki)?).await?;
    Ok(pki)
}

/// Provisions a `k8s` control plane.
pub async fn provision(cp: &ControlPlane, profile: &Profile, ctx: &Context) -> Result<Observed> {
    let mut observed = Observed::default();
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    let cfg = &ctx.config;
    let service = super::api_service(cp, profile, ctx).await?;
    let route_host = match super::expose(cp, profile, ctx).await? {
        Ok(host) => host,
        Err(waiting) => {
            observed.blocked = Some(waiting);
            return Ok(observed);
        }
    };
    let cluster_ip = service
        .and_then(|s| s.spec)
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse().ok());
    let serving = ServingNames::for_k8s(
        &cp_name,
        &cfg.domain,
        &cfg.host_container,
        route_host.as_deref(),
        cluster_ip,
    );
    let pki = pki(cp, ctx, &serving, &mut observed).await?;
    let now = Timestamp::now();
    let issue = |who: &ClientIdentity| {
        pki.ca
            .issue_client(who, &cfg.pki, now)
            .map_err(|source| Error::Pki {
                cp: cp_name.clone(),
                source,
            })
    };

    // admin-kubeconfig: both keys checked; either stale reissues both.
    let external = external_url(&cp_name, cfg, route_host.as_deref());
    let internal = profile.in_cluster_url(&cp_name).unwrap_or_default();
    let admin = secret_data(ctx, &ns, names::SECRET_ADMIN_KUBECONFIG).await?;
    let admin_yaml = if kubeconfig_stale(
        admin.as_ref(),
        names::KEY_KUBECONFIG,
        &external,
        &pki.ca,
        ctx,
    ) || kubeconfig_stale(
        admin.as_ref(),
        names::KEY_KUBECONFIG_INCLUSTER,
        &internal,
        &pki.ca,
        ctx,
    ) {
        let (off, inc) = (
            issue(&ClientIdentity::admin())?,
            issue(&ClientIdentity::admin())?,
        );
        let secret = secrets::k8s_admin_kubeconfig(
            cp,
            profile,
            cfg,
            pki.ca.cert_pem(),
            &off,
            &inc,
            route_host.as_deref(),
        )?;
        let live = ctx.applier.apply(&secret).await?;
        observed.steps.push((
            "KubeconfigIssued",
            format!("issued Secret {ns}/{}", names::SECRET_ADMIN_KUBECONFIG),
        ));
        live.data.unwrap_or_default()
    } else {
        admin.unwrap_or_default()
    };

    let cm = secret_data(ctx, &ns, names::SECRET_CM_KUBECONFIG).await?;
    let cm_data = if kubeconfig_stale(cm.as_ref(), names::KEY_KUBECONFIG, &internal, &pki.ca, ctx) {
        let client = issue(&ClientIdentity::controller_manager())?;
        let secret = secrets::cm_kubeconfig(cp, profile, pki.ca.cert_pem(), &client)?;
        ctx.applier.apply(&secret).await?.data.unwrap_or_default()
    } else {
        cm.unwrap_or_default()
    };

    let (db, db_state) = database::ensure(ctx, cp).await?;
    match db_state {
        JobState::Done => {}
        JobState::Pending(message) => {
            observed.blocked = Some(format!("provisioning the database: {message}"));
        }
        JobState::Failed(message) => {
            observed.blocked = Some(format!("provisioning the database failed: {message}"));
        }
    }

    let openshift = OpenShift(ctx.exposure == Exposure::Route);
    let certs = pki.to_secret_data();
    let apiserver = ctx
        .applier
        .apply(&apiserver_deployment(
            cp,
            cfg,
            &db,
            openshift,
            &meta::content_hash([&certs]),
        )?)
        .await?;
    ctx.applier
        .apply(&controller_manager_deployment(
            cp,
            cfg,
            openshift,
            &meta::content_hash([&certs, &cm_data]),
        )?)
        .await?;
    observed.workload_available = Some(deployment_available(&apiserver));
    if let (Some(svc), Some(yaml)) = (
        profile.service_name(&cp_name),
        text(&admin_yaml, names::KEY_KUBECONFIG_INCLUSTER),
    ) {
        observed.probe = Some(ProbeTarget {
            service: svc,
            port: profile.service.map_or(443, |s| s.port),
            in_cluster_kubeconfig: yaml,
        });
    }
    Ok(observed)
}
