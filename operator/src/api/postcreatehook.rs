//! `PostCreateHook`: object templates applied after a control plane comes up.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::controlplane::{ControlPlaneCondition, SecretReference};
use super::schema;

/// A hook: templates of Kubernetes objects plus default variables.
///
/// Each template is a whole object (`apiVersion`, `kind`, `metadata`, ...),
/// stored as written, exactly as KubeFlex's embedded-resource schema has it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tenancy.kflex.kubestellar.org",
    version = "v1alpha1",
    kind = "PostCreateHook",
    plural = "postcreatehooks",
    singular = "postcreatehook",
    shortname = "pch",
    shortname = "pchs",
    status = "PostCreateHookStatus",
    doc = "PostCreateHook is the Schema for the postcreatehooks API",
    printcolumn = r#"{"name":"SYNCED","type":"string","jsonPath":".status.conditions[?(@.type=='Synced')].status"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type=='Ready')].status"}"#,
    printcolumn = r#"{"name":"TYPE","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PostCreateHookSpec {
    /// Objects to create, with `{{ Var }}` references in their strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::embedded_resources")]
    pub templates: Option<Vec<serde_json::Value>>,
    /// Lowest-precedence variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_vars: Option<Vec<Var>>,
}

/// A template variable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Var {
    pub name: String,
    pub value: String,
}

/// Present in KubeFlex's schema; KubeFlex never writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostCreateHookStatus {
    pub conditions: Vec<ControlPlaneCondition>,
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}
