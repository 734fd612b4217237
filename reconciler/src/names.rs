//! Names and limits the reconciler shares with the operator's conventions.

/// Suffix of the namespace that hosts a control plane: `<name>-system`.
pub const NAMESPACE_SUFFIX: &str = "-system";

/// Longest DNS-1123 label, hence longest namespace name.
pub const MAX_LABEL_LEN: usize = 63;

/// Longest ControlPlane name: the name plus [`NAMESPACE_SUFFIX`] must still
/// be a namespace name (a DNS-1123 label), and the name is also used on its
/// own as a label (the Service and host name `<name>.<name>-system`).
pub const MAX_CONTROL_PLANE_NAME_LEN: usize = MAX_LABEL_LEN - NAMESPACE_SUFFIX.len();

/// Longest DNS-1123 subdomain, the limit for PostCreateHook names.
pub const MAX_SUBDOMAIN_LEN: usize = 253;

/// Largest manifest file the reconciler reads (1 MiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
