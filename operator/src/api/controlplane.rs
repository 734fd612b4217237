//! `ControlPlane`: one tenant control plane, cluster-scoped, short name `cp`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// Desired state of a control plane. Field names, casing and defaults are
/// KubeFlex's.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tenancy.kflex.kubestellar.org",
    version = "v1alpha1",
    kind = "ControlPlane",
    plural = "controlplanes",
    singular = "controlplane",
    shortname = "cp",
    shortname = "cps",
    status = "ControlPlaneStatus",
    doc = "ControlPlane is the Schema for the controlplanes API",
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"TYPE","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
// `backend` is immutable like `type`, absent counting as `shared` (a rule
// on the field alone would not see it added or removed): switching would
// point the tenant at an empty database and orphan the old one.
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.backend) ? self.backend : 'shared') == (has(oldSelf.backend) ? oldSelf.backend : 'shared')",
    "message": "backend is immutable"
}]))]
pub struct ControlPlaneSpec {
    /// How the control plane is provided.
    #[serde(rename = "type")]
    #[schemars(schema_with = "schema::control_plane_type")]
    pub type_: ControlPlaneType,

    /// Database used by a `k8s` control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::backend")]
    pub backend: Option<BackendDbType>,

    /// Where the bootstrap kubeconfig of an `external` cluster lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_secret_ref: Option<BootstrapSecretReference>,

    /// Lifetime requested for the token minted in an adopted cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 31536000))]
    pub token_expiration_seconds: Option<i64>,

    /// Deprecated single hook, applied before `postCreateHooks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_create_hook: Option<String>,

    /// Deprecated variables of the single hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_map")]
    pub post_create_hook_vars: Option<BTreeMap<String, String>>,

    /// Hooks to apply, in order, once the control plane serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_create_hooks: Option<Vec<PostCreateHookUse>>,

    /// Variables shared by every hook of this control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_map")]
    pub global_vars: Option<BTreeMap<String, String>>,

    /// Whether Ready also waits for the hooks' objects to be ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub wait_for_post_create_hooks: Option<bool>,
}

/// The kinds of control plane KubeFlex knows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ControlPlaneType {
    #[default]
    #[serde(rename = "k8s")]
    K8s,
    #[serde(rename = "k3s")]
    K3s,
    #[serde(rename = "vcluster")]
    Vcluster,
    #[serde(rename = "host")]
    Host,
    #[serde(rename = "external")]
    External,
    /// Deprecated in KubeFlex; accepted by the schema only so the operator
    /// can refuse it with a message.
    #[serde(rename = "ocm")]
    Ocm,
}

impl ControlPlaneType {
    /// The spelling used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::K8s => "k8s",
            Self::K3s => "k3s",
            Self::Vcluster => "vcluster",
            Self::Host => "host",
            Self::External => "external",
            Self::Ocm => "ocm",
        }
    }
}

impl std::fmt::Display for ControlPlaneType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spec.backend`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendDbType {
    Shared,
    Dedicated,
}

/// Reference to the Secret with the bootstrap kubeconfig of an adopted cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSecretReference {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Data key holding the kubeconfig.
    pub in_cluster_key: String,
}

/// One use of a PostCreateHook.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostCreateHookUse {
    /// Name of the PostCreateHook resource to execute.
    pub hook_name: String,
    /// Variables to pass to the hook template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::string_map")]
    pub vars: Option<BTreeMap<String, String>>,
}

/// Observed state of a control plane.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneStatus {
    /// `Synced` and `Ready`.
    pub conditions: Vec<ControlPlaneCondition>,
    /// The generation the conditions describe.
    pub observed_generation: i64,
    /// Where the kubeconfigs of the control plane live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Hook name to applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::bool_map")]
    pub post_create_hooks: Option<BTreeMap<String, bool>>,
    /// All hooks applied (and ready, with `waitForPostCreateHooks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_create_hook_completed: Option<bool>,
}

/// Where the kubeconfigs of a control plane live.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Key of the kubeconfig for use outside the hosting cluster; empty when
    /// there is none (`host`, `external`).
    #[serde(default)]
    pub key: String,
    /// Key of the kubeconfig for use inside the hosting cluster.
    pub in_cluster_key: String,
}

/// A condition as KubeFlex writes it (with `lastUpdateTime`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneCondition {
    /// `Ready` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Last time the condition was written.
    #[schemars(schema_with = "schema::date_time")]
    pub last_update_time: Time,
    /// Last time the status changed.
    #[schemars(schema_with = "schema::date_time")]
    pub last_transition_time: Time,
    /// Machine-readable cause, e.g. `Available` or `ReconcileError`.
    pub reason: String,
    /// What a user can do about it; may be empty.
    pub message: String,
}

/// Condition types KubeFlex defines.
pub struct ConditionType;
impl ConditionType {
    pub const READY: &'static str = "Ready";
    pub const SYNCED: &'static str = "Synced";
}

/// Condition statuses.
pub struct ConditionStatus;
impl ConditionStatus {
    pub const TRUE: &'static str = "True";
    pub const FALSE: &'static str = "False";
    pub const UNKNOWN: &'static str = "Unknown";
}

/// Condition reasons KubeFlex defines.
pub struct ConditionReason;
impl ConditionReason {
    pub const AVAILABLE: &'static str = "Available";
    pub const UNAVAILABLE: &'static str = "Unavailable";
    pub const CREATING: &'static str = "Creating";
    pub const DELETING: &'static str = "Deleting";
    pub const WAITING_FOR_POST_CREATE_HOOKS: &'static str = "WaitingForPostCreateHooks";
    pub const RECONCILE_SUCCESS: &'static str = "ReconcileSuccess";
    pub const RECONCILE_ERROR: &'static str = "ReconcileError";
    pub const RECONCILE_PAUSED: &'static str = "ReconcilePaused";
}
