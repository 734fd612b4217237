//! Provisioning: everything a supported type needs in the hosting cluster,
//! built by `builders` from the [`Profile`] and applied through the one
//! [`Applier`](crate::apply::Applier) path, then read back into
//! [`Observed`] facts for `status::compute`.
//!
//! The `match` in [`run`] picks the type's module; the steps every hosted
//! type shares (namespace, API Service, Ingress or Route) live here.

mod external;
mod host;
mod k3s;
mod k8s;
mod vcluster;

pub use external::{adopted_cleanup, token_refresh_due};

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::ResourceExt;

use crate::api::{ControlPlane, ControlPlaneType};
use crate::builders;
use crate::config::Exposure;
use crate::context::Context;
use crate::error::Result;
use crate::names;
use crate::profile::Profile;

/// What a pass observed, besides errors.
#[derive(Debug, Default)]
pub struct Observed {
    /// The API workload has an available replica (`None`: the type has none).
    pub workload_available: Option<bool>,
    /// Where to probe the tenant; `None` when there is nothing to probe yet
    /// or the type is not probed.
    pub probe: Option<ProbeTarget>,
    /// A problem that stops the control plane from serving (`Ready=False`).
    pub blocked: Option<String>,
    /// When something must be looked at again (token refresh).
    pub requeue: Option<Duration>,
    /// Steps done this pass, for Events (`reason`, note).
    pub steps: Vec<(&'static str, String)>,
    /// The off-cluster kubeconfig key, when not the type's own.
    pub off_cluster_key: Option<&'static str>,
}

/// A tenant to probe.
#[derive(Debug)]
pub struct ProbeTarget {
    /// API Service name in `<cp>-system`.
    pub service: String,
    /// Its port.
    pub port: i32,
    /// The in-cluster kubeconfig YAML.
    pub in_cluster_kubeconfig: String,
}

/// Provisions `cp` of a supported type.
pub async fn run(cp: &ControlPlane, profile: &Profile, ctx: &Context) -> Result<Observed> {
    ctx.applier
        .apply(&builders::namespace::namespace(cp)?)
        .await?;
    match profile.type_ {
        ControlPlaneType::K8s => k8s::provision(cp, profile, ctx).await,
        ControlPlaneType::K3s => k3s::provision(cp, profile, ctx).await,
        ControlPlaneType::Vcluster => vcluster::provision(cp, profile, ctx).await,
        ControlPlaneType::Host => host::provision(cp, profile, ctx).await,
        ControlPlaneType::External => external::provision(cp, profile, ctx).await,
        // Refused before provisioning (`Profile::refusal`).
        ControlPlaneType::Ocm => Ok(Observed::default()),
    }
}

/// The API Service of the profile (k8s, k3s).
async fn api_service(
    cp: &ControlPlane,
    profile: &Profile,
    ctx: &Context,
) -> Result<Option<Service>> {
    match builders::exposure::api_service(cp, profile)? {
        Some(svc) => Ok(Some(ctx.applier.apply(&svc).await?)),
        None => Ok(None),
    }
}

/// Label selector of `cp`'s exposure object of `component` (`ingress`,
/// `route`): never matches an object the operator did not make.
fn exposure_selector(cp: &ControlPlane, component: &str) -> String {
    format!(
        "{}={},{}={component}",
        names::LABEL_CONTROL_PLANE,
        cp.name_any(),
        names::LABEL_COMPONENT
    )
}

/// Deletes `cp`'s Routes: after a switch to Ingress exposure only one
/// object may expose the tenant. A cluster that does not serve Routes has
/// none (404).
async fn remove_routes(cp: &ControlPlane, ctx: &Context) -> Result<()> {
    let ns = names::namespace_of(&cp.name_any());
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        ctx.client.clone(),
        &ns,
        &builders::exposure::route_resource(),
    );
    let params = kube::api::ListParams::default().labels(&exposure_selector(cp, "route"));
    let list = match api.list_metadata(&params).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => {
            return Err(crate::error::Error::api(
                format!("listing Routes in {ns}"),
                e,
            ));
        }
    };
    for route in list.items {
        let name = route.name_any();
        match api.delete(&name, &Default::default()).await {
            Ok(_) => ctx.metrics.write("Route"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(crate::error::Error::api(
                    format!("deleting Route {ns}/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// Exposure of the API: the Ingress, or the Route and its host. `Ok(Err(msg))`
/// while the router has not assigned a host yet. The object of the other
/// mode, left by an operator that exposed differently, is removed.
async fn expose(
    cp: &ControlPlane,
    profile: &Profile,
    ctx: &Context,
) -> Result<std::result::Result<Option<String>, String>> {
    let ns = names::namespace_of(&cp.name_any());
    match ctx.exposure {
        Exposure::Ingress => {
            if let Some(ingress) = builders::exposure::ingress(cp, profile, &ctx.config)? {
                ctx.applier.apply::<Ingress>(&ingress).await?;
            }
            remove_routes(cp, ctx).await?;
            Ok(Ok(None))
        }
        Exposure::Route => {
            ctx.applier
                .prune::<Ingress>(&ns, &exposure_selector(cp, "ingress"), &[])
                .await?;
            let Some(route) = builders::exposure::route(cp, profile)? else {
                return Ok(Ok(None));
            };
            let live = ctx
                .applier
                .apply_dynamic(&route, &builders::exposure::route_resource())
                .await?;
            let host = live.data["spec"]["host"].as_str().unwrap_or_default();
            if host.is_empty() {
                Ok(Err(format!(
                    "waiting for the OpenShift router to assign a host to Route {}/{}",
                    names::namespace_of(&cp.name_any()),
                    cp.name_any()
                )))
            } else {
                Ok(Ok(Some(host.to_string())))
            }
        }
    }
}

/// The data of a Secret, if it exists.
async fn secret_data(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, ByteString>>> {
    Ok(ctx
        .applier
        .get::<Secret>(Some(namespace), name)
        .await?
        .map(|s| s.data.unwrap_or_default()))
}

/// A text value of Secret data.
fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .filter(|s| !s.is_empty())
}

/// A Deployment has an available replica.
fn deployment_available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
        >= 1
}

/// A StatefulSet has a ready replica.
fn stateful_set_available(s: &StatefulSet) -> bool {
    s.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= 1
}

/// Creates a Secret holding generated credentials only if it does not
/// exist, and returns the stored data: when two reconciles race (the shared
/// database's admin Secret), the first one's values win and both read them.
pub(crate) async fn create_once(
    ctx: &Context,
    secret: Secret,
) -> Result<BTreeMap<String, ByteString>> {
    let ns = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let api: kube::Api<Secret> = kube::Api::namespaced(ctx.client.clone(), &ns);
    let what = format!("Secret {ns}/{name}");
    match api
        .create(
            &kube::api::PostParams {
                field_manager: Some(names::FIELD_MANAGER.into()),
                ..Default::default()
            },
            &secret,
        )
        .await
    {
        Ok(created) => {
            ctx.metrics.write("Secret");
            Ok(created.data.unwrap_or_default())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let live = api
                .get(&name)
                .await
                .map_err(|e| crate::error::Error::api(format!("reading {what}"), e))?;
            Ok(live.data.unwrap_or_default())
        }
        Err(e) => Err(crate::error::Error::api(format!("creating {what}"), e)),
    }
}
