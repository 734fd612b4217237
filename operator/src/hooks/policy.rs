//! Isolation of a hook's rendered objects, purely: what one tenant's hook
//! may write in the hosting cluster.
//!
//! - Namespaced objects go to `NAME-system`: no namespace means there; any
//!   other namespace is refused (KubeFlex silently moves it, which hides a
//!   template meant for elsewhere).
//! - Cluster-scoped objects only of kinds on the allow-list
//!   ([`ClusterKinds`], the one list of them); on top of it, what RBAC
//!   objects may grant and bind ([`super::grants`]).
//! - No object the operator manages in `NAME-system` (`k8s-certs`,
//!   `kube-apiserver`, ...) is named by a template.
//! - Pods a template makes pass Pod Security `baseline` ([`super::pods`]).
//! - The whole hook is checked before anything is applied: a refused hook
//!   writes nothing.
//!
//! Scope (namespaced or cluster) is the server's, behind [`ScopeLookup`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use super::grants::{self, ExtraRules};
use super::pods;
use crate::names;

/// Whether a kind lives in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// Scope of `apiVersion`/`kind` as the hosting cluster serves it; `None`
/// when it does not serve the kind.
pub trait ScopeLookup {
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope>;
}

/// A fixed table, `(apiVersion, kind) -> scope` (discovered, or in tests).
impl ScopeLookup for BTreeMap<(String, String), Scope> {
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope> {
        self.get(&(api_version.to_string(), kind.to_string()))
            .copied()
    }
}

/// Group of an `apiVersion` (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default()
}

/// Cluster-scoped kinds hooks may create, as `Kind.group` (`Kind` for the
/// core group), e.g. `CustomResourceDefinition.apiextensions.k8s.io`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterKinds(BTreeSet<(String, String)>);

/// The default allow-list.
pub const DEFAULT_CLUSTER_KINDS: &str = "CustomResourceDefinition.apiextensions.k8s.io,ClusterRole.rbac.authorization.k8s.io,ClusterRoleBinding.rbac.authorization.k8s.io";

impl Default for ClusterKinds {
    fn default() -> Self {
        Self::parse(DEFAULT_CLUSTER_KINDS)
    }
}

impl ClusterKinds {
    /// From a comma- or whitespace-separated list of `Kind.group`; an empty
    /// list allows no cluster-scoped object at all.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| match s.split_once('.') {
                    Some((kind, group)) => (group.to_string(), kind.to_string()),
                    None => (String::new(), s.to_string()),
                })
                .collect(),
        )
    }

    /// Whether `kind` of `group` is allowed.
    pub fn allows(&self, group: &str, kind: &str) -> bool {
        self.0.contains(&(group.to_string(), kind.to_string()))
    }

    /// `(group, kind)` pairs (for cleanup).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(g, k)| (g.as_str(), k.as_str()))
    }
}

impl fmt::Display for ClusterKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self
            .0
            .iter()
            .map(|(g, k)| {
                if g.is_empty() {
                    k.clone()
                } else {
                    format!("{k}.{g}")
                }
            })
            .collect();
        if list.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&list.join(","))
        }
    }
}

/// One object ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `Some(NAME-system)` for namespaced objects.
    pub namespace: Option<String>,
    /// The object as it will be applied (namespace set, labels added).
    pub object: Value,
}

impl Planned {
    /// `Kind ns/name` or `Kind name`.
    pub fn describe(&self) -> String {
        crate::apply::describe(&self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// Why a template is refused: which one (`#index Kind/name`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub template: String,
    pub reason: String,
}

/// `#i Kind/name` (or `#i` while kind or name are unknown).
pub fn template_label(index: usize, object: &Value) -> String {
    match (object["kind"].as_str(), object["metadata"]["name"].as_str()) {
        (Some(k), Some(n)) => format!("#{index} {k}/{n}"),
        (Some(k), None) => format!("#{index} {k}"),
        _ => format!("#{index}"),
    }
}

/// Labels on everything a hook creates: which control plane and hook made
/// it (cleanup of cluster-scoped objects, the hook's Job watch).
pub fn hook_labels(cp_name: &str, hook: &str) -> [(&'static str, String); 3] {
    [
        (names::LABEL_MANAGED_BY, names::MANAGED_BY.into()),
        (names::LABEL_CONTROL_PLANE, cp_name.into()),
        (names::LABEL_POST_CREATE_HOOK, hook.into()),
    ]
}

/// Names of the objects the operator manages in `NAME-system` (whatever
/// their kind: a hook's object of the same name would be mistaken for, or
/// fight with, the operator's), and of those the namespace or the tenant's
/// workloads make there. A unit test builds every type's objects and
/// checks each is covered; [`super::run::ownership_refusal`] also refuses
/// any existing object no hook of the control plane made.
const OPERATOR_NAMES: [&str; 19] = [
    names::SECRET_K8S_CERTS,
    names::SECRET_ADMIN_KUBECONFIG,
    names::SECRET_CM_KUBECONFIG,
    names::SECRET_K3S_CONFIG,
    names::SECRET_K3S_CA,
    names::SECRET_DATABASE,
    names::SECRET_VC_VCLUSTER,
    names::DEPLOYMENT_APISERVER,
    names::DEPLOYMENT_CONTROLLER_MANAGER,
    names::STATEFULSET_K3S,
    names::SERVICE_K3S,
    names::VCLUSTER_RELEASE,
    "vcluster-headless",
    "vcluster-nodeport",
    "vc-workload-vcluster",
    "kubeflex-vcluster",
    "k3s-data",
    // Made by the namespace's controllers.
    "kube-root-ca.crt",
    "openshift-service-ca.crt",
];

/// Prefix of the operator's database Jobs and their credentials.
const OPERATOR_PREFIX: &str = "kflex-db-";

/// Whether a namespaced `kind`/`name` of a hook would be one the operator
/// manages for `cp_name`. `postgres` only as the dedicated database's
/// kinds (KubeFlex's `postgres` sample names its Role and Job so), and the
/// control plane's own name only as the kinds the operator gives it.
pub fn operator_managed(cp_name: &str, kind: &str, name: &str) -> bool {
    OPERATOR_NAMES.contains(&name)
        || name.starts_with(OPERATOR_PREFIX)
        || (name == "default" && kind == "ServiceAccount")
        || (name == names::POSTGRES_DEDICATED
            && ["StatefulSet", "Service", "Secret", "PersistentVolumeClaim"].contains(&kind))
        || (name == cp_name
            && ["Service", "ServiceAccount", "Secret", "Ingress", "Route"].contains(&kind))
}

/// Checks every rendered object of `hook` for control plane `cp_name` and
/// returns them ready to apply, or the first refusal.
pub fn check(
    cp_name: &str,
    hook: &str,
    rendered: Vec<Value>,
    scopes: &dyn ScopeLookup,
    allowed: &ClusterKinds,
    extra: &ExtraRules,
) -> Result<Vec<Planned>, Refusal> {
    let home = names::namespace_of(cp_name);
    let mut planned = Vec::with_capacity(rendered.len());
    for (i, mut object) in rendered.into_iter().enumerate() {
        let template = template_label(i, &object);
        let refuse = |reason: String| Refusal {
            template: template.clone(),
            reason,
        };
        let (Some(api_version), Some(kind)) = (
            object["apiVersion"].as_str().map(str::to_string),
            object["kind"].as_str().map(str::to_string),
        ) else {
            return Err(refuse("a template needs apiVersion and kind".into()));
        };
        let Some(name) = object["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
        else {
            return Err(refuse(
                "a template needs metadata.name (generateName cannot be applied idempotently)"
                    .into(),
            ));
        };
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err(refuse("metadata is not an object".into()));
        };
        let namespace = match scopes.scope(&api_version, &kind) {
            None => {
                return Err(refuse(format!(
                    "kind {kind} of {api_version} is not served by the hosting cluster"
                )));
            }
            Some(Scope::Namespaced) => {
                match meta.get("namespace").and_then(Value::as_str) {
                    None | Some("") => {}
                    Some(ns) if ns == home => {}
                    Some(ns) => {
                        return Err(refuse(format!(
                            "namespace {ns} is outside this control plane: a hook writes only into {home} (omit metadata.namespace or use {{{{ Namespace }}}})"
                        )));
                    }
                }
                if operator_managed(cp_name, &kind, &name) {
                    return Err(refuse(format!(
                        "{kind} {home}/{name} is managed by the operator; give the hook's object another name"
                    )));
                }
                meta.insert("namespace".into(), Value::String(home.clone()));
                Some(home.clone())
            }
            Some(Scope::Cluster) => {
                let group = group_of(&api_version);
                if !allowed.allows(group, &kind) {
                    return Err(refuse(format!(
                        "cluster-scoped kind {kind} is not on the operator's allow-list ({allowed}; flag --hook-cluster-kinds)"
                    )));
                }
                meta.remove("namespace");
                None
            }
        };
        if let Some(why) = pods::baseline_violation(group_of(&api_version), &kind, &object) {
            return Err(refuse(format!(
                "its pods would break Pod Security baseline: {why}"
            )));
        }
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Err(refuse("metadata is not an object".into()));
        };
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Some(labels) = labels.as_object_mut() else {
            return Err(refuse("metadata.labels is not a map".into()));
        };
        for (k, v) in hook_labels(cp_name, hook) {
            labels.insert(k.into(), Value::String(v));
        }
        planned.push(Planned {
            api_version,
            kind,
            name,
            namespace,
            object,
        });
    }
    grants::check(&home, &planned, extra)?;
    Ok(planned)
}

/// What PostCreateHooks may do beyond their tenant's namespace: the
/// allow-list of cluster-scoped kinds and the extra RBAC rules.
#[derive(Clone, Debug, Default)]
pub struct HookPolicy {
    pub cluster_kinds: ClusterKinds,
    pub extra_rules: ExtraRules,
}

/// The hook-policy flags, one definition for the operator and for
/// `kflex validate`, so that CI checks a hook against the policy the
/// cluster's operator enforces.
#[derive(clap::Args, Clone, Debug)]
pub struct HookPolicyArgs {
    /// Cluster-scoped kinds PostCreateHooks may create, comma-separated
    /// `Kind.group` (`Kind` for the core group); empty: none.
    #[arg(long, env = "KFLEX_HOOK_CLUSTER_KINDS", default_value = DEFAULT_CLUSTER_KINDS)]
    pub hook_cluster_kinds: String,
    /// RBAC rules PostCreateHooks may grant beyond the resources of the
    /// CRDs they create, `resource[.group]:verb[,verb]` separated by `;`
    /// (e.g. `nodes:get,list`); empty: none. Each is a deliberate widening
    /// of what a tenant's hook can do in the hosting cluster.
    #[arg(long, env = "KFLEX_HOOK_EXTRA_RULES", default_value = "")]
    pub hook_extra_rules: String,
}

impl HookPolicyArgs {
    /// The policy; an error names the malformed extra rule.
    pub fn policy(&self) -> Result<HookPolicy, String> {
        Ok(HookPolicy {
            cluster_kinds: ClusterKinds::parse(&self.hook_cluster_kinds),
            extra_rules: ExtraRules::parse(&self.hook_extra_rules)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scopes() -> BTreeMap<(String, String), Scope> {
        [
            ("batch/v1", "Job", Scope::Namespaced),
            ("v1", "ConfigMap", Scope::Namespaced),
            ("v1", "Namespace", Scope::Cluster),
            (
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                Scope::Cluster,
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                Scope::Cluster,
            ),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                Scope::Cluster,
            ),
            ("storage.k8s.io/v1", "StorageClass", Scope::Cluster),
        ]
        .into_iter()
        .map(|(a, k, s)| ((a.to_string(), k.to_string()), s))
        .collect()
    }

    fn run(objects: Vec<Value>) -> Result<Vec<Planned>, Refusal> {
        check(
            "cp1",
            "h",
            objects,
            &scopes(),
            &ClusterKinds::default(),
            &ExtraRules::default(),
        )
    }

    fn job(ns: Option<&str>) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}});
        if let Some(ns) = ns {
            j["metadata"]["namespace"] = json!(ns);
        }
        j
    }

    fn role(name: &str) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": []})
    }

    fn binding(role: &str, subject_ns: &str, kind: &str) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": kind, "name": "default", "namespace": subject_ns}]})
    }

    #[test]
    fn namespaced_objects_land_in_the_home_namespace_with_labels() {
        for ns in [None, Some(""), Some("cp1-system")] {
            let p = run(vec![job(ns)]).unwrap();
            assert_eq!(p[0].namespace.as_deref(), Some("cp1-system"));
            assert_eq!(p[0].object["metadata"]["namespace"], "cp1-system");
            let labels = &p[0].object["metadata"]["labels"];
            assert_eq!(labels["kflex.kubestellar.org/control-plane"], "cp1");
            assert_eq!(labels["kflex.kubestellar.org/post-create-hook"], "h");
            assert_eq!(p[0].describe(), "Job cp1-system/j");
        }
    }

    #[test]
    fn another_namespace_is_refused_not_moved() {
        for ns in ["kube-system", "cp2-system", "default"] {
            let r = run(vec![job(None), job(Some(ns))]).unwrap_err();
            assert_eq!(r.template, "#1 Job/j");
            assert!(
                r.reason.contains(ns) && r.reason.contains("cp1-system"),
                "{}",
                r.reason
            );
        }
    }

    #[test]
    fn cluster_kinds_need_the_allow_list() {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "xs.example.com", "namespace": "ignored"}});
        let p = run(vec![crd.clone(), role("r")]).unwrap();
        assert_eq!(p[0].namespace, None);
        assert!(p[0].object["metadata"].get("namespace").is_none());
        assert_eq!(
            p[1].object["metadata"]["labels"]["kflex.kubestellar.org/control-plane"],
            "cp1"
        );
        for kind in [("v1", "Namespace"), ("storage.k8s.io/v1", "StorageClass")] {
            let o = json!({"apiVersion": kind.0, "kind": kind.1, "metadata": {"name": "x"}});
            let r = run(vec![o]).unwrap_err();
            assert!(r.reason.contains("allow-list"), "{}", r.reason);
        }
        let custom = ClusterKinds::parse("StorageClass.storage.k8s.io");
        let o = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "x"}});
        assert!(
            check(
                "cp1",
                "h",
                vec![o],
                &scopes(),
                &custom,
                &ExtraRules::default()
            )
            .is_ok()
        );
        assert!(
            check(
                "cp1",
                "h",
                vec![crd],
                &scopes(),
                &custom,
                &ExtraRules::default()
            )
            .is_err()
        );
        assert_eq!(custom.to_string(), "StorageClass.storage.k8s.io");
        assert_eq!(ClusterKinds::parse("").to_string(), "(none)");
    }

    #[test]
    fn cluster_role_bindings_only_to_own_roles_and_home_service_accounts() {
        assert!(
            run(vec![
                role("r"),
                binding("r", "cp1-system", "ServiceAccount")
            ])
            .is_ok()
        );
        let escalations = [
            vec![binding("cluster-admin", "cp1-system", "ServiceAccount")],
            vec![
                role("r"),
                binding("cluster-admin", "cp1-system", "ServiceAccount"),
            ],
            vec![role("r"), binding("r", "cp2-system", "ServiceAccount")],
            vec![role("r"), binding("r", "kube-system", "ServiceAccount")],
            vec![role("r"), binding("r", "", "User")],
            vec![role("r"), binding("r", "", "Group")],
        ];
        for objects in escalations {
            let r = run(objects.clone()).unwrap_err();
            assert!(r.template.contains("ClusterRoleBinding/b"), "{r:?}");
        }
    }

    /// Every namespaced object the builders make, for every type, is one
    /// a hook may not name: the static list is complete.
    #[test]
    fn every_object_the_operator_builds_is_operator_managed() {
        use crate::api::ControlPlane;
        use crate::api::ControlPlaneType::{self, *};
        use crate::builders::{exposure, host, k3s, k8s, postgres, vcluster};
        use crate::config::OperatorConfig;
        use crate::fixtures::ControlPlaneExt;
        use crate::profile::Profile;
        let cfg = OperatorConfig::default();
        let mut built: Vec<(String, String)> = Vec::new();
        fn push<K: kube::Resource<DynamicType = ()>>(out: &mut Vec<(String, String)>, o: &K) {
            out.push((K::kind(&()).to_string(), o.meta().name.clone().unwrap()));
        }
        const TYPES: [ControlPlaneType; 6] = [K8s, K3s, Vcluster, Host, External, Ocm];
        for t in TYPES {
            let cp = ControlPlane::test("cp1").of_type(t);
            let profile = Profile::of(t);
            if let Some(s) = exposure::api_service(&cp, &profile).unwrap() {
                push(&mut built, &s);
            }
            if let Some(i) = exposure::ingress(&cp, &profile, &cfg).unwrap() {
                push(&mut built, &i);
            }
            if let Some(r) = exposure::route(&cp, &profile).unwrap() {
                built.push(("Route".into(), r.metadata.name.clone().unwrap()));
            }
        }
        let cp = ControlPlane::test("cp1");
        push(&mut built, &host::service_account(&cp).unwrap());
        push(&mut built, &host::token_secret(&cp).unwrap());
        for sa in vcluster::service_accounts(&cp).unwrap() {
            push(&mut built, &sa);
        }
        push(&mut built, &vcluster::role_binding(&cp).unwrap());
        for svc in vcluster::services(&cp).unwrap() {
            push(&mut built, &svc);
        }
        push(
            &mut built,
            &vcluster::stateful_set(&cp, &cfg, None).unwrap(),
        );
        push(&mut built, &k3s::data_pvc(&cp, &cfg).unwrap());
        push(&mut built, &k3s::stateful_set(&cp, &cfg, "h").unwrap());
        let db = postgres::database_for(&cp, &cfg);
        push(
            &mut built,
            &k8s::apiserver_deployment(&cp, &cfg, &db, k8s::OpenShift(false), "h").unwrap(),
        );
        push(
            &mut built,
            &k8s::controller_manager_deployment(&cp, &cfg, k8s::OpenShift(false), "h").unwrap(),
        );
        for which in [postgres::DbJob::Provision, postgres::DbJob::Teardown] {
            push(&mut built, &postgres::job(&cp, &db, &cfg, which).unwrap());
        }
        let pg = postgres::dedicated_instance(&cp, &cfg, "pw").unwrap();
        push(&mut built, &pg.secret);
        push(&mut built, &pg.service);
        push(&mut built, &pg.stateful_set);
        assert!(built.len() > 15, "{built:?}");
        for (kind, name) in &built {
            assert!(
                operator_managed("cp1", kind, name),
                "{kind}/{name} is not guarded"
            );
        }
        // KubeFlex's postgres sample keeps its Role and Job named postgres.
        assert!(!operator_managed("cp1", "Role", "postgres"));
        assert!(!operator_managed("cp1", "Job", "postgres"));
        assert!(!operator_managed("cp1", "ConfigMap", "default"));
    }

    #[test]
    fn unserved_kinds_and_bad_objects_are_refused() {
        let r = run(vec![
            json!({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"}}),
        ])
        .unwrap_err();
        assert!(r.reason.contains("not served"), "{}", r.reason);
        assert!(run(vec![json!({"kind": "Job", "metadata": {"name": "j"}})]).is_err());
        let r = run(vec![
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "j-"}}),
        ])
        .unwrap_err();
        assert!(r.reason.contains("metadata.name"));
    }
}
