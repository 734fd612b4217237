//! The ControlPlane controller: read, compute, apply.
//!
//! [`run`] wires a kube-runtime `Controller` over cluster-scoped
//! ControlPlanes and the children it applies (all in `<cp>-system`, plus
//! the database Jobs in the system namespace), and over PostCreateHooks
//! (each mapped to the ControlPlanes that reference it). `reconcile` is
//! `kube::runtime::finalizer` dispatching to [`apply`] (provision, probe,
//! status) or [`cleanup`]; every error goes through [`error_policy`].
//!
//! Guarantees: status is written only when it changed (identical facts
//! give an identical status); Events only on transitions and on steps that
//! did something; reconciles of different ControlPlanes run in parallel.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use tracing::instrument;

use crate::api::{
    ConditionReason, ConditionType, ControlPlane, ControlPlaneCondition, ControlPlaneStatus,
    PostCreateHook,
};
use crate::cleanup;
use crate::config::OperatorConfig;
use crate::context::{Context, Settings};
use crate::error::{Error, Result};
use crate::hooks;
use crate::metrics::Metrics;
use crate::names;
use crate::profile::Profile;
use crate::provision::{self, Observed};
use crate::readiness;
use crate::status::{self, Facts, Hooks, SyncOutcome};

/// Whether `route.openshift.io` is served (for `--exposure auto`).
pub async fn routes_served(client: &Client) -> bool {
    match client.list_api_groups().await {
        Ok(groups) => groups.groups.iter().any(|g| g.name == "route.openshift.io"),
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::one_line(&e), "API discovery failed; assuming no OpenShift Routes");
            false
        }
    }
}

/// The ControlPlane owning a child: its controller owner reference, else
/// our control-plane label (objects without owners, like `vc-vcluster`).
fn owner_of<K: Resource>(obj: &K) -> Option<ObjectRef<ControlPlane>> {
    let meta = obj.meta();
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "ControlPlane" && o.api_version == crate::api::API_VERSION)
        .map(|o| ObjectRef::new(&o.name))
        .or_else(|| {
            meta.labels
                .as_ref()?
                .get(names::LABEL_CONTROL_PLANE)
                .map(|n| ObjectRef::new(n))
        })
}

/// Runs the controller until `shutdown` resolves. `/readyz` (via
/// `metrics`) turns ready once the initial list of ControlPlanes is done.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let exposure = config.resolve_exposure(routes_served(&client).await);
    tracing::info!(?exposure, domain = %config.domain, "starting the ControlPlane controller");
    let controller_config = ControllerConfig::default()
        .concurrency(settings.concurrency)
        // Coalesces the burst of child events one apply causes.
        .debounce(Duration::from_millis(100));
    let ctx = Arc::new(Context::new(
        client.clone(),
        config,
        settings,
        exposure,
        metrics.clone(),
    ));
    let ours = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY
    ));
    // `.owns()` maps a namespaced child to an owner in the child's namespace;
    // ControlPlanes are cluster-scoped, so namespaced children use `.watches()`.
    let controller = Controller::new(
        Api::<ControlPlane>::all(client.clone()),
        watcher::Config::default(),
    );
    // A PostCreateHook maps to every ControlPlane that references it, so a
    // hook created (or changed) after its ControlPlane is picked up at once.
    let cps = controller.store();
    let controller = controller
        .watches(
            Api::<PostCreateHook>::all(client.clone()),
            watcher::Config::default(),
            move |hook| {
                let name = hook.name_any();
                cps.state()
                    .into_iter()
                    .filter(|cp| hooks::select::references(&cp.spec, &name))
                    .map(|cp| ObjectRef::from_obj(cp.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .owns(Api::<Namespace>::all(client.clone()), ours.clone())
        .watches(Api::<Deployment>::all(client.clone()), ours.clone(), |o| {
            owner_of(&o)
        })
        .watches(Api::<StatefulSet>::all(client.clone()), ours.clone(), |o| {
            owner_of(&o)
        })
        .watches(Api::<Service>::all(client.clone()), ours.clone(), |o| {
            owner_of(&o)
        })
        .watches(Api::<Ingress>::all(client.clone()), ours.clone(), |o| {
            owner_of(&o)
        })
        .watches(Api::<Job>::all(client.clone()), ours.clone(), |o| {
            owner_of(&o)
        })
        .watches(Api::<Secret>::all(client.clone()), ours, |o| owner_of(&o))
        // The vcluster syncer's Secret carries none of our metadata at first.
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default()
                .fields(&format!("metadata.name={}", names::SECRET_VC_VCLUSTER)),
            |s| {
                let ns = s.namespace()?;
                let cp = ns.strip_suffix(names::NAMESPACE_SUFFIX)?;
                Some(ObjectRef::new(cp))
            },
        )
        .with_config(controller_config)
        .graceful_shutdown_on(shutdown);
    let store = controller.store();
    let ready = metrics.clone();
    let ready_task = tokio::spawn(async move {
        if store.wait_until_ready().await.is_ok() {
            ready.set_ready(true);
        }
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile ended with an error");
            }
        })
        .await;
    ready_task.abort();
    metrics.set_ready(false);
    tracing::info!("ControlPlane controller stopped");
}

#[instrument(skip(cp, ctx), fields(name = %cp.name_any(), type = %cp.spec.type_))]
async fn reconcile(cp: Arc<ControlPlane>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile(cp.spec.type_.as_str());
    let name = cp.metadata.name.clone().ok_or(Error::MissingName)?;
    let api = Api::<ControlPlane>::all(ctx.client.clone());
    let result = finalizer(&api, names::FINALIZER, cp, |event| async {
        match event {
            Finalizer::Apply(cp) => apply(&cp, &ctx).await,
            Finalizer::Cleanup(cp) => cleanup(&cp, &ctx).await,
        }
    })
    .await;
    ctx.metrics.checked(&name);
    result.map_err(|e| Error::Finalizer {
        cp: name,
        source: Box::new(e),
    })
}

/// Requeue delay per error category; also counts the failure.
fn error_policy(cp: Arc<ControlPlane>, error: &Error, ctx: Arc<Context>) -> Action {
    let category = error.category();
    ctx.metrics.failure(cp.spec.type_.as_str(), category);
    let delay = match category {
        "waiting" => ctx.settings.ready_requeue,
        "api" | "adopted-cluster" => Duration::from_secs(5),
        _ => Duration::from_secs(30),
    };
    // Logs reach more people than Secrets do: the values the API server
    // quotes in validation errors are left out here too.
    let error = crate::error::redact(&error.to_string());
    if category == "waiting" {
        tracing::info!(name = %cp.name_any(), %error, "deletion waiting");
    } else {
        tracing::warn!(name = %cp.name_any(), %error, category, "reconcile failed");
    }
    Action::requeue(delay)
}

/// `field: message` of each problem [`crate::profile::check_spec`] finds.
fn spec_problems(cp: &ControlPlane) -> Option<String> {
    let problems = crate::profile::check_spec(&cp.spec);
    (!problems.is_empty()).then(|| {
        problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Provision, probe, write status.
async fn apply(cp: &ControlPlane, ctx: &Context) -> Result<Action> {
    let profile = Profile::of(cp.spec.type_);
    // The checks `kflex validate` runs: a spec that fails them is reported,
    // not half provisioned. (A refused type is reported by its profile.)
    let invalid_spec = profile.supported().then(|| spec_problems(cp)).flatten();
    let (observed, failure) = if profile.supported() && invalid_spec.is_none() {
        match provision::run(cp, &profile, ctx).await {
            Ok(o) => (o, None),
            Err(e) => (Observed::default(), Some(e)),
        }
    } else {
        (Observed::default(), None)
    };
    let api_answering = match (&failure, observed.workload_available, &observed.probe) {
        (None, Some(true), Some(target)) => Some(
            readiness::answers(
                &ctx.client,
                &readiness::Probe {
                    namespace: &names::namespace_of(&cp.name_any()),
                    service: &target.service,
                    port: target.port,
                    in_cluster_kubeconfig: Some(&target.in_cluster_kubeconfig),
                },
                ctx.settings.probe_in_cluster(),
                ctx.settings.probe_timeout,
            )
            .await,
        ),
        (None, Some(true), None) => Some(false),
        _ => None,
    };
    // Hooks run only once the tenant serves (KubeFlex §4.1 step 7).
    let serving = profile.supported()
        && invalid_spec.is_none()
        && failure.is_none()
        && observed.blocked.is_none()
        && observed.workload_available != Some(false)
        && api_answering != Some(false);
    let hook_outcome = if serving {
        hooks::run::reconcile(cp, ctx).await
    } else {
        hooks::run::not_run(cp)
    };
    let facts = Facts {
        generation: cp.metadata.generation.unwrap_or_default(),
        sync: match &failure {
            None => SyncOutcome::Success,
            Some(e) => SyncOutcome::Failed(e.to_string()),
        },
        workload_available: observed.workload_available,
        api_answering,
        hooks: hook_outcome.gate.clone().unwrap_or(Hooks::NotAwaited),
        hook_report: hook_outcome.report.clone(),
        deleting: None,
        blocked: observed.blocked.clone(),
        off_cluster_key: observed.off_cluster_key,
        invalid_spec: invalid_spec.clone(),
    };
    let ready = write_status(cp, &profile, &facts, failure.is_some(), ctx).await?;
    for (reason, note) in &observed.steps {
        let type_ = if reason.ends_with("Failed") {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(cp, type_, reason, note.clone()).await;
    }
    for (type_, reason, note) in &hook_outcome.events {
        ctx.event(cp, *type_, reason, note.clone()).await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let settings = &ctx.settings;
    Ok(if !profile.supported() || invalid_spec.is_some() {
        // Only a change of the spec can help.
        Action::await_change()
    } else if ready {
        Action::requeue(
            observed
                .requeue
                .unwrap_or(settings.resync)
                .min(settings.resync),
        )
    } else if observed.blocked.is_some() && observed.workload_available.is_none() {
        // Something the user must fix: look again, but not in a hot loop.
        Action::requeue(Duration::from_secs(30))
    } else {
        Action::requeue(settings.ready_requeue)
    })
}

/// Finalizer cleanup; while a step waits, status says which.
async fn cleanup(cp: &ControlPlane, ctx: &Context) -> Result<Action> {
    let profile = Profile::of(cp.spec.type_);
    match cleanup::run(cp, ctx).await {
        Ok(()) => Ok(Action::await_change()),
        Err(e) => {
            let facts = Facts {
                generation: cp.metadata.generation.unwrap_or_default(),
                sync: SyncOutcome::Success,
                workload_available: None,
                api_answering: None,
                hooks: Hooks::NotAwaited,
                hook_report: None,
                deleting: Some(e.to_string()),
                blocked: None,
                off_cluster_key: None,
                invalid_spec: None,
            };
            write_status(cp, &profile, &facts, false, ctx).await?;
            Err(e)
        }
    }
}

/// The status subresource as an apply patch.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct StatusPatch<'a> {
    api_version: &'a str,
    kind: &'a str,
    status: &'a ControlPlaneStatus,
}

fn condition<'a>(s: &'a ControlPlaneStatus, type_: &str) -> Option<&'a ControlPlaneCondition> {
    s.conditions.iter().find(|c| c.type_ == type_)
}

/// Computes and writes the status if it changed, emits Events for
/// condition transitions; returns whether the control plane is Ready.
/// With `keep_ready` (the pass failed part-way), `Ready` keeps its previous
/// value: a failed pass observed nothing about it.
async fn write_status(
    cp: &ControlPlane,
    profile: &Profile,
    facts: &Facts,
    keep_ready: bool,
    ctx: &Context,
) -> Result<bool> {
    let name = cp.name_any();
    let previous = cp.status.clone().unwrap_or_default();
    let now = Time(Timestamp::now());
    let mut next = status::compute(&previous, &name, profile, facts, &now);
    if keep_ready
        && let Some(prev) = condition(&previous, ConditionType::READY)
        && let Some(c) = next
            .conditions
            .iter_mut()
            .find(|c| c.type_ == ConditionType::READY)
    {
        *c = prev.clone();
    }
    let ready = condition(&next, ConditionType::READY).is_some_and(|c| c.status == "True");
    if next == previous {
        return Ok(ready);
    }
    let patch = StatusPatch {
        api_version: crate::api::API_VERSION,
        kind: "ControlPlane",
        status: &next,
    };
    Api::<ControlPlane>::all(ctx.client.clone())
        .patch_status(
            &name,
            &PatchParams::apply(names::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::api(format!("writing the status of ControlPlane {name}"), e))?;
    ctx.metrics.write("ControlPlane/status");
    for type_ in [
        ConditionType::SYNCED,
        ConditionType::READY,
        status::CONDITION_POST_CREATE_HOOKS,
    ] {
        let (Some(new), old) = (condition(&next, type_), condition(&previous, type_)) else {
            continue;
        };
        let changed = old.is_none_or(|o| {
            o.status != new.status || o.reason != new.reason || o.message != new.message
        });
        if !changed {
            continue;
        }
        let event_type = if new.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let reason = format!("{type_}{}", if new.status == "True" { "" } else { "False" });
        let note = if new.message.is_empty() {
            format!("{type_} is {} ({})", new.status, new.reason)
        } else {
            new.message.clone()
        };
        // Not-yet-ready while starting is expected: log it, do not alarm.
        let starting = new.reason == "Unavailable"
            || new.reason == ConditionReason::WAITING_FOR_POST_CREATE_HOOKS;
        if event_type == EventType::Warning
            && starting
            && old.is_none_or(|o| o.status != "True")
            && facts.blocked.is_none()
        {
            tracing::info!(name = %name, condition = type_, message = %new.message, "not ready yet");
            continue;
        }
        ctx.event(cp, event_type, &reason, note).await;
    }
    Ok(ready)
}
