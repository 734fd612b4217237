//! The reconciler's one error type. Every variant names the object or place
//! it concerns, and [`Error::category`] is a stable label used for metrics,
//! status reasons and the retry decision (never derived from `Debug`).
//!
//! Secrets never appear here: sources redact credentials before they build
//! errors, and webhook secrets are never formatted.

use crate::source::SourceError;
use crate::validate::ObjectKey;

/// Why a pass, or part of it, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fetching or listing the source failed (network, auth, missing ref).
    #[error("reading the source: {0}")]
    Source(#[from] SourceError),
    /// An API call about one object failed.
    #[error("{action} {key}: {source}")]
    Object {
        action: &'static str,
        key: ObjectKey,
        #[source]
        source: Box<kube::Error>,
    },
    /// An API call not about a managed object failed (inventory, status,
    /// lease, events).
    #[error("{action}: {source}")]
    Api {
        action: &'static str,
        #[source]
        source: Box<kube::Error>,
    },
    /// An object from the cluster or the source could not be (de)serialised.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// Invalid command-line configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A local server (webhook, metrics) or file watcher failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(String),
}

impl Error {
    pub(crate) fn object(action: &'static str, key: &ObjectKey, source: kube::Error) -> Self {
        Self::Object {
            action,
            key: key.clone(),
            source: Box::new(source),
        }
    }

    pub(crate) fn api(action: &'static str, source: kube::Error) -> Self {
        Self::Api {
            action,
            source: Box::new(source),
        }
    }

    /// A stable, short label: the metric label and the status reason.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Source(SourceError::PathNotFound { .. } | SourceError::InvalidPath { .. }) => {
                "path"
            }
            Self::Source(SourceError::RefNotFound { .. }) => "ref",
            Self::Source(SourceError::TooMuch { .. }) => "limit",
            Self::Source(SourceError::InvalidPattern { .. }) => "config",
            Self::Source(_) => "fetch",
            Self::Object { source, .. } | Self::Api { source, .. } => {
                if is_refusal(source) {
                    "rejected"
                } else {
                    "api"
                }
            }
            Self::Json { .. } => "json",
            Self::Config(_) => "config",
            Self::Io { .. } => "io",
            Self::Join(_) => "join",
        }
    }

    /// Whether waiting alone may fix it (network, API server, Git server),
    /// as opposed to needing a change in Git or in the configuration.
    pub fn is_transient(&self) -> bool {
        matches!(self.category(), "fetch" | "api" | "join" | "io")
    }
}

/// The API server understood the request and said no (invalid object,
/// immutable field, forbidden): retrying the same request will not help.
fn is_refusal(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 400 | 403 | 404 | 422),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Kind;

    #[test]
    fn categories_are_stable_labels() {
        let missing = Error::Source(SourceError::PathNotFound {
            path: "tenants".into(),
            revision: "abc".into(),
        });
        assert_eq!(missing.category(), "path");
        assert!(!missing.is_transient());
        let git = Error::Source(SourceError::Join("boom".into()));
        assert_eq!(git.category(), "fetch");
        assert!(git.is_transient());
        let key = ObjectKey {
            kind: Kind::ControlPlane,
            name: "cp1".into(),
        };
        let invalid = Error::object(
            "applying",
            &key,
            kube::Error::Api(Box::new(
                kube::core::Status::failure("bad", "Invalid").with_code(422),
            )),
        );
        assert_eq!(invalid.category(), "rejected");
        assert_eq!(
            invalid.to_string().split(':').next().unwrap(),
            "applying ControlPlane \"cp1\""
        );
    }
}
