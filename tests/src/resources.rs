//! The resource registry: which kinds this server serves, under which paths,
//! with which scope and subresources. Built-in kinds are a fixed table;
//! custom resources are added and removed as CRDs come and go.

use std::sync::RwLock;

use serde_json::{Value, json};

/// One servable resource (a group/version/plural).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Writes to the main resource ignore `.status`; `/status` writes only it.
    pub status_subresource: bool,
    /// Verbs offered in discovery; `create`-only review kinds have fewer.
    pub verbs: Vec<&'static str>,
    /// Extra subresources named in discovery (e.g. `token`, `finalize`).
    pub extra_subresources: Vec<&'static str>,
    /// For custom resources: the version entry of the CRD (schema, columns).
    pub crd_version: Option<Value>,
}

impl ResourceType {
    /// `group/version`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Key under which objects are stored: versions of one group share it.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `plural.group` as Kubernetes names a resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind.group` as used in `... is invalid` messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_crd(&self) -> bool {
        self.crd_version.is_some()
    }

    /// Whether objects of this kind are stored at all (review kinds are not).
    pub fn persistent(&self) -> bool {
        self.verbs.contains(&"get")
    }

    /// The CRD's `openAPIV3Schema`, when it has one.
    pub fn schema(&self) -> Option<&Value> {
        self.crd_version
            .as_ref()
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
    }
}

pub(crate) const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
    categories: &[&str],
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        status_subresource: status,
        verbs: ALL_VERBS.to_vec(),
        extra_subresources: Vec::new(),
        crd_version: None,
    }
}

fn review(group: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        verbs: vec!["create"],
        ..builtin(group, "v1", kind, plural, namespaced, &[], false, &[])
    }
}

/// Calls `$callback! { (module::path) => [Kind, ...]; ... }` with every
/// built-in kind that has a `k8s-openapi` (and `k8s-pb`) type: the protobuf
/// decoder and the OpenAPI v2 document both walk this one list.
macro_rules! typed_builtin_kinds {
    ($callback:ident) => {
        $callback! {
            (api::core::v1) => [
                Namespace, ConfigMap, Secret, ServiceAccount, Service, Endpoints, Pod,
                PersistentVolumeClaim, Node, Event, Binding,
            ];
            (api::apps::v1) => [Deployment, StatefulSet, ReplicaSet];
            (api::batch::v1) => [Job];
            (api::networking::v1) => [Ingress];
            (api::rbac::v1) => [Role, RoleBinding, ClusterRole, ClusterRoleBinding];
            (api::coordination::v1) => [Lease];
            (api::events::v1) => [Event];
            (api::authorization::v1) => [
                SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
            ];
            (api::authentication::v1) => [TokenReview, SelfSubjectReview, TokenRequest];
            (api::autoscaling::v1) => [Scale];
            (api::policy::v1) => [Eviction];
            (apiextensions_apiserver::pkg::apis::apiextensions::v1) => [CustomResourceDefinition];
        }
    };
}
pub(crate) use typed_builtin_kinds;

/// The built-in kinds the project uses.
pub fn builtins() -> Vec<ResourceType> {
    let all = ["all"];
    let mut serviceaccounts = builtin(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        &[],
    );
    serviceaccounts.extra_subresources = vec!["token"];
    let scalable = |mut t: ResourceType| {
        t.extra_subresources = vec!["scale"];
        t
    };
    let mut namespaces = builtin(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        &[],
    );
    namespaces.extra_subresources = vec!["finalize"];
    vec![
        namespaces,
        builtin("", "v1", "Secret", "secrets", true, &[], false, &[]),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            false,
            &[],
        ),
        builtin("", "v1", "Service", "services", true, &["svc"], true, &all),
        serviceaccounts,
        builtin(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            true,
            &["ep"],
            false,
            &[],
        ),
        builtin("", "v1", "Pod", "pods", true, &["po"], true, &all),
        builtin(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            true,
            &[],
        ),
        builtin("", "v1", "Node", "nodes", false, &["no"], true, &[]),
        builtin("", "v1", "Event", "events", true, &["ev"], false, &[]),
        scalable(builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            true,
            &all,
        )),
        scalable(builtin(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            true,
            &all,
        )),
        scalable(builtin(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            &["rs"],
            true,
            &all,
        )),
        builtin("batch", "v1", "Job", "jobs", true, &[], true, &all),
        builtin(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            &["ing"],
            true,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
            &["api-extensions"],
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
            &[],
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
            &[],
        ),
        crate::pdb::resource_type(),
        review(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
        ),
        review(
            "authorization.k8s.io",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
        ),
        review(
            "authorization.k8s.io",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
        ),
        review(
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
        ),
        review(
            "authentication.k8s.io",
            "TokenReview",
            "tokenreviews",
            false,
        ),
    ]
}

/// OpenShift's Route (`route.openshift.io/v1`), served when enabled.
pub fn openshift_route() -> ResourceType {
    builtin(
        "route.openshift.io",
        "v1",
        "Route",
        "routes",
        true,
        &[],
        true,
        &[],
    )
}

/// Resource types derived from a CRD object; empty unless it is Established.
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let Some(versions) = spec["versions"].as_array() else {
        return Vec::new();
    };
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| ResourceType {
            group: spec["group"].as_str().unwrap_or_default().into(),
            version: v["name"].as_str().unwrap_or_default().into(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: spec["scope"].as_str() == Some("Namespaced"),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status_subresource: v.pointer("/subresources/status").is_some(),
            verbs: ALL_VERBS.to_vec(),
            extra_subresources: Vec::new(),
            crd_version: Some(v.clone()),
        })
        .collect()
}

/// Thread-safe registry of what is served right now.
#[derive(Debug)]
pub struct Registry {
    types: RwLock<Vec<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            types: RwLock::new(builtins()),
        }
    }
}

impl Registry {
    pub fn all(&self) -> Vec<ResourceType> {
        self.types.read().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types.read().ok().and_then(|types| {
            types
                .iter()
                .find(|t| t.group == group && t.version == version && t.plural == plural)
                .cloned()
        })
    }

    /// The preferred (first served) version of a group/plural.
    pub fn find_any_version(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.types.read().ok().and_then(|types| {
            types
                .iter()
                .find(|t| t.group == group && t.plural == plural)
                .cloned()
        })
    }

    /// Serves an extra built-in type (e.g. OpenShift Routes, by flag).
    pub fn add(&self, t: ResourceType) {
        if let Ok(mut all) = self.types.write() {
            all.retain(|x| !(x.group == t.group && x.version == t.version && x.plural == t.plural));
            all.push(t);
        }
    }

    /// Replaces the types served for a CRD (by group + plural).
    pub fn set_crd(&self, group: &str, plural: &str, types: Vec<ResourceType>) {
        if let Ok(mut all) = self.types.write() {
            all.retain(|t| !(t.is_crd() && t.group == group && t.plural == plural));
            all.extend(types);
        }
    }

    /// Groups in discovery order: core first, then as registered.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.all() {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }
}

/// The APIResource entries of one group/version, as discovery lists them.
pub fn api_resources(types: &[ResourceType]) -> Vec<Value> {
    let mut out = Vec::new();
    for t in types {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        out.push(r);
        if t.status_subresource {
            out.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        for sub in &t.extra_subresources {
            let (kind, group, version, verbs) = match *sub {
                "token" => (
                    "TokenRequest",
                    "authentication.k8s.io",
                    "v1",
                    json!(["create"]),
                ),
                "scale" => (
                    "Scale",
                    "autoscaling",
                    "v1",
                    json!(["get", "patch", "update"]),
                ),
                _ => (t.kind.as_str(), "", "", json!(["update"])),
            };
            let mut r = json!({
                "name": format!("{}/{}", t.plural, sub),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !group.is_empty() {
                r["group"] = json!(group);
                r["version"] = json!(version);
            }
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_types_follow_the_crd() {
        let crd = json!({
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                    {"name": "v0", "served": false, "storage": false}
                ]
            }
        });
        let types = from_crd(&crd);
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].singular, "widget");
        assert!(types[0].status_subresource && types[0].namespaced);
        let registry = Registry::default();
        registry.set_crd("example.com", "widgets", types);
        assert!(registry.find("example.com", "v1", "widgets").is_some());
        assert!(registry.groups().iter().any(|(g, _)| g == "example.com"));
        registry.set_crd("example.com", "widgets", Vec::new());
        assert!(registry.find("example.com", "v1", "widgets").is_none());
    }
}
