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

/// Field manager of every write the reconciler makes (server-side apply).
pub const FIELD_MANAGER: &str = "kubeflex-reconciler";

/// Label on every object a source applied; its value is the source's
/// `--name`. The inventory is the set of objects carrying it.
pub const LABEL_SOURCE: &str = "gitops.kflex.kubestellar.org/source";

/// Annotation: who applied the object, as `<source>:<Kind>/<name>`. The
/// label alone is copied along by `kubectl get -o yaml`; this names the
/// object itself, so a copy under another name is not taken for ours.
pub const ANNOTATION_TRACKING: &str = "gitops.kflex.kubestellar.org/tracking-id";

/// The tracking id of `kind`/`name` applied by `source`.
pub fn tracking_id(source: &str, kind: &str, name: &str) -> String {
    format!("{source}:{kind}/{name}")
}

/// Annotation: the Git URL (or directory) the object came from.
pub const ANNOTATION_URL: &str = "gitops.kflex.kubestellar.org/url";

/// Annotation: the repository-relative file that defines the object.
pub const ANNOTATION_PATH: &str = "gitops.kflex.kubestellar.org/path";

/// Annotation: the commit the object was last written at. Not part of the
/// "unchanged" comparison, so a new commit rewrites only what it changed.
pub const ANNOTATION_COMMIT: &str = "gitops.kflex.kubestellar.org/commit";

/// Annotation that protects an object from pruning when set to
/// [`DISABLED`].
pub const ANNOTATION_PRUNE: &str = "gitops.kflex.kubestellar.org/prune";

/// Annotation that suspends reconciliation of one object (no apply, no drift
/// correction, no prune) when set to [`DISABLED`].
pub const ANNOTATION_RECONCILE: &str = "gitops.kflex.kubestellar.org/reconcile";

/// Value of [`ANNOTATION_PRUNE`] and [`ANNOTATION_RECONCILE`] that opts out.
pub const DISABLED: &str = "disabled";

/// Reporting controller of Events and holder prefix of the Lease.
pub const CONTROLLER: &str = "kubeflex-reconciler";

/// On the `Sync` object: a request for a pass now (`kflex sync`, like
/// Flux's `reconcile.fluxcd.io/requestedAt`). Any new value triggers one
/// pass; the reconciler echoes it in `status.lastHandledSyncAt`.
pub const ANNOTATION_SYNC_REQUESTED: &str = "gitops.kflex.kubestellar.org/sync-requested-at";
