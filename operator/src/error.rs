//! The operator's one error type. Every variant names the object it concerns
//! and has a stable [`Error::category`], the label of the failure metric and
//! the key `error_policy` picks a requeue delay by.
//!
//! Messages end up in logs, Events and `Synced` messages: they never carry
//! Secret data (kube's API errors quote the server's message, which names
//! objects and fields, not values of Secrets we send).

use crate::builders::BuildError;
use crate::kubeconfig::KubeconfigError;
use crate::pki::PkiError;

/// A failed reconcile step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call to the hosting cluster failed.
    #[error("{action}: {}", crate::telemetry::one_line(.source))]
    Api {
        /// What was being done, with the object, e.g. `applying Deployment ns/name`.
        action: String,
        #[source]
        source: kube::Error,
    },
    /// An API call to an adopted (`external`) cluster failed.
    #[error("adopted cluster of {cp}: {action}: {}", crate::telemetry::one_line(.source))]
    Adopted {
        cp: String,
        action: String,
        #[source]
        source: kube::Error,
    },
    /// Building an object failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Generating or loading certificates failed.
    #[error("PKI of ControlPlane {cp}: {source}")]
    Pki {
        cp: String,
        #[source]
        source: PkiError,
    },
    /// A kubeconfig could not be rendered or parsed.
    #[error("kubeconfig of ControlPlane {cp}: {source}")]
    Kubeconfig {
        cp: String,
        #[source]
        source: KubeconfigError,
    },
    /// An object could not be serialized for comparison or apply.
    #[error("serializing {what}: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// Adding or removing the finalizer, or cleanup, failed.
    #[error("finalizer of ControlPlane {cp}: {source}")]
    Finalizer {
        cp: String,
        #[source]
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },
    /// A blocking task (key generation) panicked or was cancelled.
    #[error("{what}: the task did not finish")]
    Task { what: String },
    /// Deletion waits on a step (a teardown Job); retried, not a failure.
    #[error("ControlPlane {cp} is being deleted: {step}")]
    Waiting { cp: String, step: String },
    /// The ControlPlane has no name (never happens for stored objects).
    #[error("ControlPlane without metadata.name")]
    MissingName,
}

impl Error {
    /// A stable label per failure class (metrics, requeue delays).
    pub fn category(&self) -> &'static str {
        match self {
            Self::Api { .. } => "api",
            Self::Adopted { .. } => "adopted-cluster",
            Self::Build(_) => "build",
            Self::Pki { .. } => "pki",
            Self::Kubeconfig { .. } => "kubeconfig",
            Self::Serialize { .. } => "serialize",
            Self::Finalizer { source, .. } => match source.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.category(),
                _ => "finalizer",
            },
            Self::Task { .. } => "internal",
            Self::Waiting { .. } => "waiting",
            Self::MissingName => "invalid-object",
        }
    }

    /// `Api` error constructor.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            action: action.into(),
            source,
        }
    }

    /// The HTTP status of an API error, if any.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api {
                source: kube::Error::Api(s),
                ..
            }
            | Self::Adopted {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
