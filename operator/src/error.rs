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

/// `message` without the values kube-apiserver quotes in validation errors
/// (`Invalid value: "…"`, `Unsupported value: …`, `Duplicate value: …`):
/// a hook's rendered object may carry a variable's value there, and
/// conditions and Events are readable by more people than Secrets are.
pub fn redact(message: &str) -> String {
    const MARKERS: [&str; 3] = [
        "Invalid value: ",
        "Unsupported value: ",
        "Duplicate value: ",
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((at, marker)) = MARKERS
        .iter()
        .filter_map(|m| rest.find(m).map(|i| (i, *m)))
        .min_by_key(|(i, _)| *i)
    {
        out.push_str(&rest[..at]);
        out.push_str(marker.trim_end_matches(": "));
        out.push_str(" (value not shown)");
        let value = &rest[at + marker.len()..];
        rest = if let Some(quoted) = value.strip_prefix('"') {
            // A Go %q string: ends at the first quote not escaped.
            let mut escaped = false;
            let end = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(quoted.len(), |(i, _)| i + 1);
            &quoted[end..]
        } else {
            // Unquoted (numbers, lists, maps): up to the detail after ": ".
            value.find(": ").map_or("", |i| &value[i..])
        };
    }
    out.push_str(rest);
    out
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_cut_from_api_messages() {
        let m = r#"applying Job cp1-system/j: Job.batch "j" is invalid: spec.template.spec.containers[0].image: Invalid value: "s3cr\"et: x": must not contain spaces, metadata.labels: Invalid value: 12345: too long"#;
        let r = redact(m);
        assert!(!r.contains("s3cr") && !r.contains("12345"), "{r}");
        assert!(
            r.contains(
                "containers[0].image: Invalid value (value not shown): must not contain spaces"
            ),
            "{r}"
        );
        assert!(r.contains("Job cp1-system/j"), "{r}");
        let u = redact(r#"spec.type: Unsupported value: "pw": supported values: "A""#);
        assert_eq!(
            u,
            r#"spec.type: Unsupported value (value not shown): supported values: "A""#
        );
        assert_eq!(redact("nothing to hide"), "nothing to hide");
    }
}
