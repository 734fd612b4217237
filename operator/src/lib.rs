//! KubeFlex operator library.
//!
//! `api` holds the custom resource types every crate of the workspace shares
//! (drop-in compatible with KubeFlex's `tenancy.kflex.kubestellar.org/v1alpha1`);
//! `crdgen` renders their CustomResourceDefinitions. The rest is the pure,
//! cluster-free core of the operator: `profile` (the table of control-plane
//! types), `config`, `names`, `meta`, `pki`, `kubeconfig`, `builders` (every
//! object, as typed structs) and `status` (conditions from observed facts).
//!
//! The process around it: `controller` (the kube-runtime Controller,
//! `reconcile`, `error_policy`, finalizer), `provision` (per-type steps),
//! `hooks` (PostCreateHooks), `database`, `cleanup`, `readiness`, `apply` (the one SSA path),
//! `context`, `error`, `metrics`, `leader` (Lease) and `telemetry` (logs).

pub mod api;
pub mod apply;
pub mod builders;
pub mod cleanup;
pub mod config;
pub mod context;
pub mod controller;
pub mod crdgen;
pub mod database;
pub mod duration;
pub mod endpoints;
pub mod error;
pub mod hooks;
pub mod kubeconfig;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod names;
pub mod pki;
pub mod profile;
pub mod provision;
pub mod readiness;
pub mod status;
pub mod telemetry;

/// Chainable test objects: `ControlPlane::test("cp1").of_type(K3s)`.
#[cfg(test)]
pub(crate) mod fixtures {
    use k8s_openapi::jiff::Timestamp;

    use crate::api::{BackendDbType, ControlPlane, ControlPlaneSpec, ControlPlaneType};

    /// Builders of test ControlPlanes.
    pub trait ControlPlaneExt: Sized {
        /// A stored-looking `k8s` ControlPlane (uid, generation 1).
        fn test(name: &str) -> Self;
        /// With `spec.type`.
        fn of_type(self, t: ControlPlaneType) -> Self;
        /// With `spec.backend`.
        fn backend(self, b: BackendDbType) -> Self;
    }

    impl ControlPlaneExt for ControlPlane {
        fn test(name: &str) -> Self {
            let mut cp = ControlPlane::new(
                name,
                ControlPlaneSpec {
                    type_: ControlPlaneType::K8s,
                    ..ControlPlaneSpec::default()
                },
            );
            cp.metadata.uid = Some(format!("uid-{name}"));
            cp.metadata.generation = Some(1);
            cp
        }
        fn of_type(mut self, t: ControlPlaneType) -> Self {
            self.spec.type_ = t;
            self
        }
        fn backend(mut self, b: BackendDbType) -> Self {
            self.spec.backend = Some(b);
            self
        }
    }

    /// A fixed instant (2025-06-15).
    pub fn now() -> Timestamp {
        Timestamp::from_second(1_750_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}
