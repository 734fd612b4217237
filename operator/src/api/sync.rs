//! `Sync` (`gitops.kflex.kubestellar.org/v1alpha1`): the status of one GitOps
//! reconciler, cluster-scoped and named by its `--name`, so `kubectl get
//! syncs` shows which commit the cluster follows and why it does not.
//!
//! The reconciler owns the whole object: it writes `spec` (what it was started
//! with) and `status` by server-side apply, and only when they changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// API group of the reconciler's own kinds (not KubeFlex's).
pub const GITOPS_GROUP: &str = "gitops.kflex.kubestellar.org";
/// `apiVersion` of [`Sync`].
pub const GITOPS_API_VERSION: &str = "gitops.kflex.kubestellar.org/v1alpha1";

/// Where a reconciler reads its desired state from, as it was started.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gitops.kflex.kubestellar.org",
    version = "v1alpha1",
    kind = "Sync",
    plural = "syncs",
    singular = "sync",
    status = "SyncStatus",
    doc = "Sync is the state of one GitOps reconciler: its source, the commit it follows, and what it applied.",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"REVISION","type":"string","jsonPath":".status.lastAppliedCommit"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SyncSpec {
    /// Git URL, or the directory for a local source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Branch, tag or commit; empty for the remote's default branch.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Directory in the repository that holds the manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What the reconciler did last.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Git URL, or the directory for a local source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Branch, tag or commit followed.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Directory in the repository read. With `url` and `ref`, the source of
    /// the last pass allowed to prune: a change blocks prunes until confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Commit (or directory fingerprint) of the last successful fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetched_commit: Option<String>,
    /// Commit whose files are all applied (none failed validation or apply,
    /// no prune was put off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_commit: Option<String>,
    /// Commit the last pass worked on, applied in full or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_commit: Option<String>,
    /// Value of the sync request annotation that the last pass handled (kflex sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_sync_at: Option<String>,
    /// When the last pass that changed anything ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::date_time")]
    pub last_sync_time: Option<Time>,
    /// `Ready`, `Stalled` and `Fetching`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Objects handled by the last pass that did work.
    #[serde(default)]
    pub counts: SyncCounts,
    /// Every problem found in the source, as `path:line:column: message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<SyncFileError>,
    /// Objects whose prune was put off, as `Kind/name` (kept for readers
    /// of earlier versions; `blockedPrunes` says why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_blocked: Vec<String>,
    /// Objects whose prune was put off, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_prunes: Vec<BlockedPrune>,
}

/// A prune that was put off, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockedPrune {
    /// `ControlPlane` or `PostCreateHook`.
    pub kind: String,
    pub name: String,
    /// Why it is kept, e.g. `an apply of this pass failed`.
    pub reason: String,
}

/// Object counts of one pass.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncCounts {
    /// Written (created or changed).
    pub applied: i64,
    /// Already as Git says: no write.
    pub unchanged: i64,
    /// Deleted because they left Git.
    pub pruned: i64,
    /// Could not be applied or pruned.
    pub failed: i64,
}

/// One problem with a file of the source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncFileError {
    /// Repository-relative path.
    pub path: String,
    /// 1-based line.
    pub line: i64,
    /// 1-based column.
    pub column: i64,
    /// `path:line:column: [field: ]message`, as `kflex validate` prints it.
    pub message: String,
}

/// Condition types of [`SyncStatus`].
pub struct SyncConditionType;
impl SyncConditionType {
    /// Everything in the source is applied.
    pub const READY: &'static str = "Ready";
    /// Progress needs a human: invalid files, a blocked prune, a missing path.
    pub const STALLED: &'static str = "Stalled";
    /// True while fetching fails and is retried with backoff.
    pub const FETCHING: &'static str = "Fetching";
}
