//! What every reconcile shares: the client, the operator's configuration,
//! process settings (probe mode, requeue intervals), the applier, the Event
//! recorder and the metrics. Built once by [`crate::controller::run`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use crate::api::ControlPlane;
use crate::apply::Applier;
use crate::config::{Exposure, OperatorConfig};
use crate::hooks::policy::ClusterKinds;
use crate::hooks::render::Renderer;
use crate::hooks::run::Discovered;
use crate::metrics::Metrics;

/// How the operator checks that a tenant API answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMode {
    /// In-cluster when `KUBERNETES_SERVICE_HOST` is set, else the service proxy.
    Auto,
    /// Dial the Service with the in-cluster kubeconfig (`/api/v1` discovery).
    InCluster,
    /// `GET .../services/https:SVC:PORT/proxy/readyz` through the hosting API server.
    ServiceProxy,
}

/// Process settings that are not part of what gets built.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Requeue while a control plane is not Ready yet.
    pub ready_requeue: Duration,
    /// Requeue of a Ready control plane (certificate and token renewal checks).
    pub resync: Duration,
    /// Tenant probe.
    pub probe: ProbeMode,
    /// Timeout of one tenant probe.
    pub probe_timeout: Duration,
    /// How long deletion keeps retrying the database teardown (and the
    /// removal of adopted-cluster objects) before giving up with a Warning.
    pub teardown_give_up: Duration,
    /// Reconciles running at once (0: unbounded).
    pub concurrency: u16,
    /// How long an awaited PostCreateHook may stay not ready before it is
    /// reported as failed.
    pub hook_timeout: Duration,
    /// Re-apply every hook whose rendered objects changed (else only hooks
    /// annotated `kflex.kubestellar.org/rerender: "true"`).
    pub rerender_hooks: bool,
    /// Cluster-scoped kinds hooks may create.
    pub hook_cluster_kinds: ClusterKinds,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ready_requeue: Duration::from_secs(3),
            resync: Duration::from_secs(600),
            probe: ProbeMode::Auto,
            probe_timeout: Duration::from_secs(5),
            teardown_give_up: Duration::from_secs(600),
            concurrency: 32,
            hook_timeout: Duration::from_secs(600),
            rerender_hooks: false,
            hook_cluster_kinds: ClusterKinds::default(),
        }
    }
}

impl Settings {
    /// Whether probes dial Services directly.
    pub fn probe_in_cluster(&self) -> bool {
        match self.probe {
            ProbeMode::InCluster => true,
            ProbeMode::ServiceProxy => false,
            ProbeMode::Auto => {
                std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty())
            }
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    /// The hosting cluster.
    pub client: Client,
    /// What gets built.
    pub config: OperatorConfig,
    /// How the process behaves.
    pub settings: Settings,
    /// Ingress or Route, resolved once at start.
    pub exposure: Exposure,
    /// The one write path.
    pub applier: Applier,
    /// Kubernetes Events on ControlPlanes.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Renders PostCreateHook templates (one strict environment).
    pub renderer: Renderer,
    /// Scopes and resources of the kinds hooks create, as discovered.
    pub hook_kinds: Discovered,
}

impl Context {
    /// A context for `client`.
    pub fn new(
        client: Client,
        config: OperatorConfig,
        settings: Settings,
        exposure: Exposure,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::names::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            applier: Applier::new(client.clone(), metrics.clone()),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            settings,
            exposure,
            metrics,
            renderer: Renderer::new(),
            hook_kinds: Discovered::default(),
        }
    }

    /// Publishes an Event on `cp`; a failure is logged, never fatal. `note`
    /// must not contain Secret data (callers pass step names and errors).
    pub async fn event(&self, cp: &ControlPlane, type_: EventType, reason: &str, note: String) {
        let reference: ObjectReference = cp.object_ref(&());
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %crate::telemetry::one_line(&e), reason, "publishing an Event failed");
        }
    }
}
