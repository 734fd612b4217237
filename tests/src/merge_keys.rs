//! How lists merge, per field: the knowledge that strategic merge patch and
//! server-side apply share. Built-in kinds use the `patchMergeKey` /
//! `listType` markers of the Kubernetes Go types; custom resources use the
//! `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` of their schema.

/// How a list at some field path merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced as a whole (`listType: atomic`, the default).
    Atomic,
    /// Items are maps identified by these key fields (`listType: map`,
    /// `patchStrategy: merge` with `patchMergeKey`).
    Map(Vec<String>),
    /// Items are scalars, merged as a set (`listType: set`).
    Set,
}

/// Answers the list strategy for a field path: the field names from the
/// object root with list positions left out, e.g.
/// `["spec", "template", "spec", "containers"]` or
/// `["spec", "template", "spec", "containers", "env"]`.
pub trait MergeKeys {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy;
}

/// A table entry: `ListStrategy` owns its key names, so static tables hold
/// this borrowed form and convert on lookup.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Atomic,
    Set,
    Map(&'static str),
}

impl Rule {
    fn strategy(self) -> ListStrategy {
        match self {
            Rule::Atomic => ListStrategy::Atomic,
            Rule::Set => ListStrategy::Set,
            Rule::Map(key) => ListStrategy::Map(vec![key.to_owned()]),
        }
    }
}

/// Merge knowledge of the built-in Kubernetes kinds, transcribed from the
/// `patchStrategy` / `patchMergeKey` tags of the Go types (k8s.io/api).
///
/// Where a Go field has both, the single `patchMergeKey` wins over a longer
/// `listMapKey` set (container ports merge on `containerPort`, Service ports
/// on `port`), because that is what strategic merge patch uses. Fields that
/// only carry `listType=map` (e.g. `resources.claims`, CRD conditions) are
/// also reported as `Map`. Everything not listed is `Atomic`, as in Go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinMergeKeys {
    /// API group, `""` for the core group.
    group: String,
    kind: String,
}

impl BuiltinMergeKeys {
    /// `group` is `""` (or `"core"`) for the core group, e.g.
    /// `for_kind("apps", "Deployment")`. Unknown kinds still get the
    /// `metadata` rules every object shares.
    pub fn for_kind(group: &str, kind: &str) -> Self {
        let group = if group == "core" { "" } else { group };
        Self {
            group: group.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// Whether this group/kind is one of the built-in kinds the table knows
    /// beyond the shared `metadata` rules.
    pub fn is_known(&self) -> bool {
        known_kind(&self.group, &self.kind)
    }
}

impl MergeKeys for BuiltinMergeKeys {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        builtin_rule(&self.group, &self.kind, path)
            .unwrap_or(Rule::Atomic)
            .strategy()
    }
}

fn known_kind(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Namespace"
                | "Secret"
                | "ConfigMap"
                | "Service"
                | "ServiceAccount"
                | "Endpoints"
                | "Pod"
                | "PodTemplate"
                | "ReplicationController"
                | "PersistentVolumeClaim"
                | "PersistentVolume"
                | "Event"
                | "Node"
        ) | (
            "apps",
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        ) | ("batch", "Job" | "CronJob")
            | ("networking.k8s.io", "Ingress")
            | (
                "rbac.authorization.k8s.io",
                "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
            )
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("coordination.k8s.io", "Lease")
            | ("events.k8s.io", "Event")
    )
}

/// Where a kind embeds a pod template (`metadata` + `spec: PodSpec`); the
/// Pod itself is its own template at the root.
fn pod_template_prefix(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (group, kind) {
        ("", "Pod") => Some(&[]),
        ("", "PodTemplate") => Some(&["template"]),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some(&["spec", "template"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

fn builtin_rule(group: &str, kind: &str, path: &[&str]) -> Option<Rule> {
    if let ["metadata", rest @ ..] = path {
        return object_meta_rule(rest);
    }
    if let Some(prefix) = pod_template_prefix(group, kind)
        && let Some(rest) = path.strip_prefix(prefix)
    {
        match rest {
            ["metadata", meta @ ..] => return object_meta_rule(meta),
            ["spec", spec @ ..] => return pod_spec_rule(spec),
            _ => {}
        }
    }
    if !known_kind(group, kind) {
        return None;
    }
    match (group, kind, path) {
        // Every built-in condition list merges on `type`; JobStatus is
        // `listType=atomic` but `patchMergeKey=type`, and SMP follows the tag.
        (_, _, ["status", "conditions"]) => Some(Rule::Map("type")),
        ("", "Service", ["spec", "ports"]) => Some(Rule::Map("port")),
        ("", "ServiceAccount", ["secrets"]) => Some(Rule::Map("name")),
        ("", "Pod", ["status", "podIPs" | "hostIPs"]) => Some(Rule::Map("ip")),
        ("", "Pod", ["status", "resourceClaimStatuses"]) => Some(Rule::Map("name")),
        ("", "Node", ["spec", "podCIDRs"]) => Some(Rule::Set),
        ("", "Node", ["status", "addresses"]) => Some(Rule::Map("type")),
        _ => None,
    }
}

/// `ObjectMeta` lists, the same for every kind and every embedded template.
fn object_meta_rule(path: &[&str]) -> Option<Rule> {
    match path {
        ["finalizers"] => Some(Rule::Set),
        ["ownerReferences"] => Some(Rule::Map("uid")),
        ["managedFields"] => Some(Rule::Atomic),
        _ => None,
    }
}

/// `PodSpec` lists, `path` relative to the pod spec.
fn pod_spec_rule(path: &[&str]) -> Option<Rule> {
    match path {
        ["containers" | "initContainers" | "ephemeralContainers"] => Some(Rule::Map("name")),
        [
            "containers" | "initContainers" | "ephemeralContainers",
            rest @ ..,
        ] => container_rule(rest),
        ["volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates"] => {
            Some(Rule::Map("name"))
        }
        ["hostAliases"] => Some(Rule::Map("ip")),
        ["topologySpreadConstraints"] => Some(Rule::Map("topologyKey")),
        _ => None,
    }
}

/// `Container` lists (also used by init and ephemeral containers).
fn container_rule(path: &[&str]) -> Option<Rule> {
    match path {
        ["ports"] => Some(Rule::Map("containerPort")),
        ["env"] => Some(Rule::Map("name")),
        ["volumeMounts"] => Some(Rule::Map("mountPath")),
        ["volumeDevices"] => Some(Rule::Map("devicePath")),
        ["resources", "claims"] => Some(Rule::Map("name")),
        _ => None,
    }
}

/// Merge knowledge of a custom resource, read from its CRD's
/// `openAPIV3Schema`: `x-kubernetes-list-type` and
/// `x-kubernetes-list-map-keys`. `metadata` follows the `ObjectMeta` rules,
/// since CRD schemas do not describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaMergeKeys {
    schema: serde_json::Value,
}

impl SchemaMergeKeys {
    /// `schema` is the `openAPIV3Schema` object of one CRD version.
    pub fn new(schema: serde_json::Value) -> Self {
        Self { schema }
    }

    /// The schema of `version` in a CRD object (`apiextensions.k8s.io/v1`),
    /// or `None` when that version has no schema.
    pub fn from_crd(crd: &serde_json::Value, version: &str) -> Option<Self> {
        let versions = crd.pointer("/spec/versions")?.as_array()?;
        let entry = versions
            .iter()
            .find(|v| v.get("name").and_then(serde_json::Value::as_str) == Some(version))?;
        let schema = entry.pointer("/schema/openAPIV3Schema")?;
        Some(Self::new(schema.clone()))
    }
}

impl MergeKeys for SchemaMergeKeys {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        if let ["metadata", rest @ ..] = path {
            return object_meta_rule(rest).unwrap_or(Rule::Atomic).strategy();
        }
        let mut node = &self.schema;
        for segment in path {
            // Paths leave list positions out, so step through `items` first.
            node = list_items(node);
            match schema_child(node, segment) {
                Some(child) => node = child,
                None => return ListStrategy::Atomic,
            }
        }
        schema_list_strategy(node)
    }
}

fn list_items(mut node: &serde_json::Value) -> &serde_json::Value {
    while let Some(items) = node.get("items").filter(|v| v.is_object()) {
        node = items;
    }
    node
}

fn schema_child<'a>(node: &'a serde_json::Value, field: &str) -> Option<&'a serde_json::Value> {
    node.get("properties")
        .and_then(|props| props.get(field))
        .or_else(|| node.get("additionalProperties").filter(|v| v.is_object()))
}

fn schema_list_strategy(node: &serde_json::Value) -> ListStrategy {
    match node
        .get("x-kubernetes-list-type")
        .and_then(serde_json::Value::as_str)
    {
        Some("set") => ListStrategy::Set,
        Some("map") => {
            let keys: Vec<String> = node
                .get("x-kubernetes-list-map-keys")
                .and_then(serde_json::Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(serde_json::Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            // A map list without keys is an invalid schema; replacing the
            // list whole is the safe reading.
            if keys.is_empty() {
                ListStrategy::Atomic
            } else {
                ListStrategy::Map(keys)
            }
        }
        _ => ListStrategy::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(key: &str) -> ListStrategy {
        ListStrategy::Map(vec![key.to_owned()])
    }

    #[test]
    fn deployment_pod_template_lists() {
        let k = BuiltinMergeKeys::for_kind("apps", "Deployment");
        let pod = ["spec", "template", "spec"];
        let at = |rest: &[&str]| {
            let path: Vec<&str> = pod.iter().chain(rest).copied().collect();
            k.list_strategy(&path)
        };
        assert_eq!(at(&["containers"]), map("name"));
        assert_eq!(at(&["initContainers"]), map("name"));
        assert_eq!(at(&["ephemeralContainers"]), map("name"));
        assert_eq!(at(&["containers", "env"]), map("name"));
        assert_eq!(at(&["containers", "envFrom"]), ListStrategy::Atomic);
        assert_eq!(at(&["containers", "ports"]), map("containerPort"));
        assert_eq!(at(&["containers", "volumeMounts"]), map("mountPath"));
        assert_eq!(at(&["initContainers", "volumeDevices"]), map("devicePath"));
        assert_eq!(at(&["containers", "args"]), ListStrategy::Atomic);
        assert_eq!(at(&["volumes"]), map("name"));
        assert_eq!(at(&["imagePullSecrets"]), map("name"));
        assert_eq!(at(&["hostAliases"]), map("ip"));
        assert_eq!(at(&["tolerations"]), ListStrategy::Atomic);
        assert_eq!(
            k.list_strategy(&["spec", "template", "metadata", "finalizers"]),
            ListStrategy::Set
        );
        assert_eq!(k.list_strategy(&["status", "conditions"]), map("type"));
        // The pod spec lives only under the template for a Deployment.
        assert_eq!(
            k.list_strategy(&["spec", "containers"]),
            ListStrategy::Atomic
        );
    }

    #[test]
    fn pod_cronjob_and_job() {
        let pod = BuiltinMergeKeys::for_kind("", "Pod");
        assert_eq!(pod.list_strategy(&["spec", "containers"]), map("name"));
        assert_eq!(pod.list_strategy(&["status", "conditions"]), map("type"));
        assert_eq!(pod.list_strategy(&["status", "podIPs"]), map("ip"));
        let core = BuiltinMergeKeys::for_kind("core", "Pod");
        assert_eq!(core.list_strategy(&["spec", "volumes"]), map("name"));
        let cron = BuiltinMergeKeys::for_kind("batch", "CronJob");
        let path = [
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
        ];
        assert_eq!(cron.list_strategy(&path), map("name"));
        let job = BuiltinMergeKeys::for_kind("batch", "Job");
        assert_eq!(job.list_strategy(&["status", "conditions"]), map("type"));
        let sts = BuiltinMergeKeys::for_kind("apps", "StatefulSet");
        assert_eq!(
            sts.list_strategy(&["spec", "volumeClaimTemplates"]),
            ListStrategy::Atomic
        );
    }

    #[test]
    fn metadata_service_and_atomic_kinds() {
        for (group, kind) in [("", "ConfigMap"), ("example.com", "Widget")] {
            let k = BuiltinMergeKeys::for_kind(group, kind);
            assert_eq!(
                k.list_strategy(&["metadata", "finalizers"]),
                ListStrategy::Set
            );
            assert_eq!(
                k.list_strategy(&["metadata", "ownerReferences"]),
                map("uid")
            );
            assert_eq!(
                k.list_strategy(&["metadata", "managedFields"]),
                ListStrategy::Atomic
            );
        }
        let unknown = BuiltinMergeKeys::for_kind("example.com", "Widget");
        assert!(!unknown.is_known());
        assert_eq!(
            unknown.list_strategy(&["status", "conditions"]),
            ListStrategy::Atomic
        );
        let svc = BuiltinMergeKeys::for_kind("", "Service");
        assert!(svc.is_known());
        assert_eq!(svc.list_strategy(&["spec", "ports"]), map("port"));
        assert_eq!(
            svc.list_strategy(&["status", "loadBalancer", "ingress"]),
            ListStrategy::Atomic
        );
        let atomic: [(&str, &str, &[&str]); 6] = [
            ("", "Endpoints", &["subsets"]),
            ("networking.k8s.io", "Ingress", &["spec", "rules"]),
            ("rbac.authorization.k8s.io", "Role", &["rules"]),
            ("rbac.authorization.k8s.io", "ClusterRole", &["rules"]),
            ("rbac.authorization.k8s.io", "RoleBinding", &["subjects"]),
            (
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                &["subjects"],
            ),
        ];
        for (group, kind, path) in atomic {
            let k = BuiltinMergeKeys::for_kind(group, kind);
            assert_eq!(k.list_strategy(path), ListStrategy::Atomic, "{kind}");
        }
        let sa = BuiltinMergeKeys::for_kind("", "ServiceAccount");
        assert_eq!(sa.list_strategy(&["secrets"]), map("name"));
        let node = BuiltinMergeKeys::for_kind("", "Node");
        assert_eq!(node.list_strategy(&["spec", "podCIDRs"]), ListStrategy::Set);
        // A kind named like a built-in in another group is not the built-in.
        let fake = BuiltinMergeKeys::for_kind("example.com", "Deployment");
        let path = ["spec", "template", "spec", "containers"];
        assert_eq!(fake.list_strategy(&path), ListStrategy::Atomic);
    }

    fn widget_schema() -> serde_json::Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "tags": {"type": "array", "x-kubernetes-list-type": "set",
                                 "items": {"type": "string"}},
                        "plain": {"type": "array", "items": {"type": "string"}},
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["port", "protocol"],
                            "items": {
                                "type": "object",
                                "properties": {
                                    "port": {"type": "integer"},
                                    "hosts": {"type": "array", "x-kubernetes-list-type": "set",
                                              "items": {"type": "string"}}
                                }
                            }
                        },
                        "groups": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "array",
                                "x-kubernetes-list-type": "map",
                                "x-kubernetes-list-map-keys": ["name"],
                                "items": {"type": "object"}
                            }
                        },
                        "broken": {"type": "array", "x-kubernetes-list-type": "map"}
                    }
                },
                "status": {"type": "object", "properties": {"conditions": {
                    "type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"], "items": {"type": "object"}}}}
            }
        })
    }

    #[test]
    fn schema_merge_keys_walk_the_schema() {
        let k = SchemaMergeKeys::new(widget_schema());
        assert_eq!(k.list_strategy(&["spec", "tags"]), ListStrategy::Set);
        assert_eq!(k.list_strategy(&["spec", "plain"]), ListStrategy::Atomic);
        assert_eq!(
            k.list_strategy(&["spec", "ports"]),
            ListStrategy::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(
            k.list_strategy(&["spec", "ports", "hosts"]),
            ListStrategy::Set
        );
        assert_eq!(k.list_strategy(&["spec", "groups", "any-key"]), map("name"));
        assert_eq!(k.list_strategy(&["spec", "broken"]), ListStrategy::Atomic);
        assert_eq!(k.list_strategy(&["spec", "missing"]), ListStrategy::Atomic);
        assert_eq!(k.list_strategy(&["status", "conditions"]), map("type"));
        assert_eq!(
            k.list_strategy(&["metadata", "finalizers"]),
            ListStrategy::Set
        );
    }

    #[test]
    fn schema_merge_keys_from_crd() {
        let crd = json!({"spec": {"versions": [
            {"name": "v1alpha1", "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v1", "schema": {"openAPIV3Schema": widget_schema()}}
        ]}});
        let k = SchemaMergeKeys::from_crd(&crd, "v1").expect("v1 schema");
        assert_eq!(k.list_strategy(&["spec", "tags"]), ListStrategy::Set);
        assert!(SchemaMergeKeys::from_crd(&crd, "v2").is_none());
    }
}
