//! Hand-written schema fragments for what derives cannot say: CEL rules,
//! embedded resources, and KubeFlex's `default:` values.

use schemars::{Schema, SchemaGenerator, json_schema};

/// `spec.type`: KubeFlex's enum, plus a transition rule making it immutable
/// (KubeFlex lets it change, which orphans every object of the old type).
pub fn control_plane_type(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "type selects how the control plane is provided: k8s, k3s, vcluster, host or external. ocm is accepted for compatibility and refused by the operator. Immutable.",
        "type": "string",
        "enum": ["k8s", "ocm", "vcluster", "host", "external", "k3s"],
        "x-kubernetes-validations": [
            { "rule": "self == oldSelf", "message": "type is immutable" }
        ]
    })
}

/// `spec.backend`: KubeFlex's enum (immutable: the rule is on `spec`, so
/// that adding or removing the field counts too).
pub fn backend(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "backend selects the database of a k8s control plane: shared (one PostgreSQL for all, the default) or dedicated (its own instance). Immutable.",
        "type": "string",
        "enum": ["shared", "dedicated"]
    })
}

/// A PostCreateHook template: any Kubernetes object, kept as written.
pub fn embedded_resources(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "description": "Manifest represents a resource to be deployed",
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}

/// A string-to-string map (variables).
pub fn string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": "string" }
    })
}

/// `status.postCreateHooks`: hook name to applied.
pub fn bool_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": "boolean" }
    })
}

/// `metav1.Time` as the API server expects it.
pub fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}
