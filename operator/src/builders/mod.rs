//! Pure builders of every object of every control-plane type: functions of
//! the ControlPlane, its [`Profile`](crate::profile::Profile), the
//! [`OperatorConfig`](crate::config::OperatorConfig) and, where needed,
//! observed facts passed in explicitly (PKI material, a Route host, a
//! password read back from its Secret). They return `k8s-openapi` structs,
//! ready for server-side apply under [`FIELD_MANAGER`](crate::names::FIELD_MANAGER).
//!
//! Idempotency: the same inputs give the same object, so re-applying is a no-op.
//! Randomness (keys, passwords) never happens here; the reconcile generates it
//! once and stores it, then passes it in.

pub mod exposure;
pub mod external;
pub mod host;
pub mod k3s;
pub mod k8s;
pub mod namespace;
mod pod;
pub mod postgres;
pub mod secrets;
pub mod vcluster;

use crate::kubeconfig::KubeconfigError;
use crate::meta::MetaError;

/// A builder failure, naming the object it was building.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Owner metadata is missing.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A kubeconfig could not be rendered.
    #[error("building Secret {namespace}/{name}")]
    Kubeconfig {
        namespace: String,
        name: String,
        // Boxed so every builder's `Result` stays small.
        #[source]
        source: Box<KubeconfigError>,
    },
}

/// Result of a builder.
pub type Result<T, E = BuildError> = std::result::Result<T, E>;
