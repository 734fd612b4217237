//! What RBAC a hook may grant, purely: the rules on top of the allow-list
//! of cluster-scoped kinds ([`super::policy`]).
//!
//! The operator applies a hook's Roles and ClusterRoles itself, so under
//! kube-apiserver's escalation check it holds `escalate` and `bind`; these
//! rules, checked before anything is written, are what keeps a tenant's
//! hook from turning that into its own cluster-admin:
//!
//! - A ClusterRole grants rights only on the resources (and their `status`
//!   and `scale` subresources) of CustomResourceDefinitions the same hook
//!   creates — the "reader of my own CRD" pattern. Anything else cluster-wide
//!   (Secrets, tokens, RBAC objects, nodes, any built-in resource) is
//!   refused unless the operator's `--hook-extra-rules` lists it.
//! - A Role (it lives in `NAME-system`) grants no wildcard and no access to
//!   tokens or to exec/attach/port-forward into pods.
//! - Neither grants `escalate`, `bind`, `impersonate`, a wildcard or
//!   `nonResourceURLs`; no aggregation label or `aggregationRule`.
//! - A (Cluster)RoleBinding binds only a role this hook creates, and only to
//!   ServiceAccounts of `NAME-system`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::policy::{Planned, Refusal, group_of};

/// Group of the RBAC API.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const CRD_GROUP: &str = "apiextensions.k8s.io";
/// Prefix of the labels that aggregate a ClusterRole into another one.
const AGGREGATE_PREFIX: &str = "rbac.authorization.k8s.io/aggregate-to-";
/// Verbs that get around the escalation check itself.
const ESCALATING_VERBS: [&str; 3] = ["escalate", "bind", "impersonate"];
/// Namespaced resources a Role of a hook may not grant: minting tokens of
/// the namespace's ServiceAccounts (the `host` type's one is
/// cluster-admin), or getting into the operator's pods.
const ROLE_REFUSED_RESOURCES: [&str; 4] = [
    "serviceaccounts/token",
    "pods/exec",
    "pods/attach",
    "pods/portforward",
];

/// Rules the operator explicitly lets hooks grant beyond the defaults, as
/// `(group, resource, verb)`; flag `--hook-extra-rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtraRules(BTreeSet<(String, String, String)>);

impl ExtraRules {
    /// From entries `resource[.group]:verb[,verb...]` separated by `;` or
    /// whitespace, e.g. `nodes:get,list;storageclasses.storage.k8s.io:get`
    /// (a bare resource is of the core group). Taken literally: `*` allows
    /// only a rule that itself says `*`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for entry in list
            .split(|c: char| c == ';' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let Some((resource, verbs)) = entry.split_once(':') else {
                return Err(format!(
                    "hook extra rule `{entry}`: expected resource[.group]:verb[,verb]"
                ));
            };
            let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
            if resource.is_empty() || verbs.is_empty() {
                return Err(format!(
                    "hook extra rule `{entry}`: expected resource[.group]:verb[,verb]"
                ));
            }
            for verb in verbs.split(',').filter(|v| !v.is_empty()) {
                set.insert((group.to_string(), resource.to_string(), verb.to_string()));
            }
        }
        Ok(Self(set))
    }

    fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        self.0
            .contains(&(group.to_string(), resource.to_string(), verb.to_string()))
    }
}

impl fmt::Display for ExtraRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        let list: Vec<String> = self
            .0
            .iter()
            .map(|(g, r, v)| {
                if g.is_empty() {
                    format!("{r}:{v}")
                } else {
                    format!("{r}.{g}:{v}")
                }
            })
            .collect();
        f.write_str(&list.join(";"))
    }
}

/// Groups a hook's CRD cannot stand for: Kubernetes', OpenShift's and
/// KubeFlex's own (a CRD must have a dotted group, so the core and
/// `apps`-like groups cannot be claimed anyway).
fn reserved_group(group: &str) -> bool {
    !group.contains('.')
        || [
            "k8s.io",
            "kubernetes.io",
            "openshift.io",
            "kflex.kubestellar.org",
        ]
        .iter()
        .any(|suffix| group == *suffix || group.ends_with(&format!(".{suffix}")))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is(p: &Planned, group: &str, kind: &str) -> bool {
    p.kind == kind && group_of(&p.api_version) == group
}

/// What the hook's objects let it grant: checks every RBAC object of the
/// plan (and aggregation labels on any object).
pub fn check(home: &str, planned: &[Planned], extra: &ExtraRules) -> Result<(), Refusal> {
    let own_crds: BTreeSet<(&str, &str)> = planned
        .iter()
        .filter(|p| is(p, CRD_GROUP, "CustomResourceDefinition"))
        .filter_map(|p| {
            let spec = &p.object["spec"];
            Some((spec["group"].as_str()?, spec["names"]["plural"].as_str()?))
        })
        .filter(|(group, _)| !reserved_group(group))
        .collect();
    let own = |kind: &str| -> BTreeSet<&str> {
        planned
            .iter()
            .filter(|p| is(p, RBAC_GROUP, kind))
            .map(|p| p.name.as_str())
            .collect()
    };
    let (own_cluster_roles, own_roles) = (own("ClusterRole"), own("Role"));
    for (i, p) in planned.iter().enumerate() {
        let refuse = |reason: String| Refusal {
            template: format!("#{i} {}/{}", p.kind, p.name),
            reason,
        };
        if let Some(label) = p.object["metadata"]["labels"]
            .as_object()
            .and_then(|l| l.keys().find(|k| k.starts_with(AGGREGATE_PREFIX)))
        {
            return Err(refuse(format!(
                "aggregation label {label} is refused: it would add rules to a role this hook does not own"
            )));
        }
        if group_of(&p.api_version) != RBAC_GROUP {
            continue;
        }
        match p.kind.as_str() {
            "ClusterRole" => {
                if !p.object["aggregationRule"].is_null() {
                    return Err(refuse(
                        "aggregationRule is refused: it would gather rights from roles this hook does not own".into(),
                    ));
                }
                check_rules(&p.object["rules"], true, &own_crds, extra).map_err(refuse)?;
            }
            "Role" => check_rules(&p.object["rules"], false, &own_crds, extra).map_err(refuse)?,
            "ClusterRoleBinding" | "RoleBinding" => {
                check_binding(home, p, &own_cluster_roles, &own_roles).map_err(refuse)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every `(group, resource, verb)` a rule list grants must be allowed.
fn check_rules(
    rules: &Value,
    cluster: bool,
    own_crds: &BTreeSet<(&str, &str)>,
    extra: &ExtraRules,
) -> Result<(), String> {
    let hint = "(an operator can allow a rule explicitly with --hook-extra-rules)";
    for (r, rule) in rules.as_array().into_iter().flatten().enumerate() {
        if !strings(&rule["nonResourceURLs"]).is_empty() {
            return Err(format!("rule {r}: nonResourceURLs are refused {hint}"));
        }
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    if extra.allows(group, resource, verb) {
                        continue;
                    }
                    let what = format!(
                        "rule {r} grants {verb} on {resource} of group {}",
                        if group.is_empty() { "core" } else { group }
                    );
                    if [group, resource, verb].iter().any(|s| s.contains('*')) {
                        return Err(format!("{what}: wildcards are refused {hint}"));
                    }
                    if ESCALATING_VERBS.contains(&verb) {
                        return Err(format!("{what}: verb {verb} is refused {hint}"));
                    }
                    if cluster {
                        let (base, sub) = resource.split_once('/').unwrap_or((resource, ""));
                        let own = own_crds.contains(&(group, base))
                            && ["", "status", "scale"].contains(&sub);
                        if !own {
                            return Err(format!(
                                "{what}: a hook's ClusterRole may grant rights only on the resources of CustomResourceDefinitions the same hook creates {hint}"
                            ));
                        }
                    } else if group.is_empty() && ROLE_REFUSED_RESOURCES.contains(&resource) {
                        return Err(format!("{what}: refused in a hook's Role {hint}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Role a hook created, subjects only ServiceAccounts of `home`.
fn check_binding(
    home: &str,
    p: &Planned,
    own_cluster_roles: &BTreeSet<&str>,
    own_roles: &BTreeSet<&str>,
) -> Result<(), String> {
    let role_ref = &p.object["roleRef"];
    let kind = role_ref["kind"].as_str().unwrap_or_default();
    let role = role_ref["name"].as_str().unwrap_or_default();
    let own = role_ref["apiGroup"].as_str() == Some(RBAC_GROUP)
        && match kind {
            "ClusterRole" => own_cluster_roles.contains(role),
            "Role" => p.kind == "RoleBinding" && own_roles.contains(role),
            _ => false,
        };
    if !own {
        return Err(format!(
            "binds {kind} {role}, which this hook does not create: binding an existing role is an escalation"
        ));
    }
    let subjects = strings_of_subjects(&p.object["subjects"]);
    if subjects.is_empty() {
        return Err("has no subjects".into());
    }
    for (kind, ns, name) in subjects {
        if kind != "ServiceAccount" || ns != home {
            return Err(format!(
                "subject {kind} {ns}/{name} is outside {home}: only ServiceAccounts of {home} may be bound"
            ));
        }
    }
    Ok(())
}

fn strings_of_subjects(v: &Value) -> Vec<(&str, &str, &str)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or_default(),
                s["namespace"].as_str().unwrap_or_default(),
                s["name"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn planned(object: Value) -> Planned {
        let namespaced =
            ["Role", "RoleBinding", "Job", "ConfigMap"].contains(&object["kind"].as_str().unwrap());
        Planned {
            api_version: object["apiVersion"].as_str().unwrap().into(),
            kind: object["kind"].as_str().unwrap().into(),
            name: object["metadata"]["name"].as_str().unwrap().into(),
            namespace: namespaced.then(|| "cp1-system".into()),
            object,
        }
    }

    fn run(objects: Vec<Value>) -> Result<(), Refusal> {
        run_with(objects, &ExtraRules::default())
    }

    fn run_with(objects: Vec<Value>, extra: &ExtraRules) -> Result<(), Refusal> {
        let planned: Vec<Planned> = objects.into_iter().map(planned).collect();
        check("cp1-system", &planned, extra)
    }

    fn crd(group: &str, plural: &str) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "names": {"plural": plural, "kind": "Widget"}, "scope": "Namespaced"}})
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
        json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
    }

    fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules})
    }

    fn role(name: &str, rules: Vec<Value>) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules})
    }

    fn binding(kind: &str, role_kind: &str, role: &str, subject_ns: &str) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": subject_ns}]})
    }

    #[test]
    fn a_reader_of_its_own_crd_is_allowed() {
        let objects = vec![
            crd("example.com", "widgets"),
            cluster_role(
                "r",
                vec![rule(
                    &["example.com"],
                    &["widgets", "widgets/status"],
                    &["get", "list", "watch", "create", "update"],
                )],
            ),
            binding("ClusterRoleBinding", "ClusterRole", "r", "cp1-system"),
        ];
        assert_eq!(run(objects), Ok(()));
    }

    #[test]
    fn every_cluster_wide_escalation_is_refused() {
        let own = crd("example.com", "widgets");
        let cases: Vec<(Value, &str)> = vec![
            (rule(&[""], &["secrets"], &["get"]), "only on the resources"),
            (
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                "only on the resources",
            ),
            (
                rule(&[RBAC_GROUP], &["clusterroles"], &["create"]),
                "only on the resources",
            ),
            (
                rule(&[""], &["nodes/proxy"], &["get"]),
                "only on the resources",
            ),
            (
                rule(&[""], &["pods/exec"], &["create"]),
                "only on the resources",
            ),
            (
                rule(&["apps"], &["deployments"], &["get"]),
                "only on the resources",
            ),
            (rule(&["example.com"], &["widgets"], &["*"]), "wildcards"),
            (rule(&["example.com"], &["*"], &["get"]), "wildcards"),
            (rule(&["*"], &["widgets"], &["get"]), "wildcards"),
            (
                rule(&["example.com"], &["widgets"], &["escalate"]),
                "escalate",
            ),
            (rule(&["example.com"], &["widgets"], &["bind"]), "bind"),
            (
                rule(&["example.com"], &["widgets"], &["impersonate"]),
                "impersonate",
            ),
            (
                rule(&["example.com"], &["gadgets"], &["get"]),
                "only on the resources",
            ),
            (
                json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]}),
                "nonResourceURLs",
            ),
        ];
        for (r, why) in cases {
            let e = run(vec![own.clone(), cluster_role("r", vec![r.clone()])]).unwrap_err();
            assert_eq!(e.template, "#1 ClusterRole/r", "{r}");
            assert!(e.reason.contains(why), "{r}: {}", e.reason);
        }
    }

    #[test]
    fn a_crd_of_a_reserved_group_does_not_make_its_resources_grantable() {
        for (group, plural) in [
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("apps", "deployments"),
            ("tenancy.kflex.kubestellar.org", "controlplanes"),
        ] {
            let r = cluster_role("r", vec![rule(&[group], &[plural], &["get"])]);
            assert!(run(vec![crd(group, plural), r]).is_err(), "{group}");
        }
    }

    #[test]
    fn aggregation_is_refused() {
        let mut labelled = cluster_role("r", vec![]);
        labelled["metadata"]["labels"] =
            json!({"rbac.authorization.k8s.io/aggregate-to-admin": "true"});
        let e = run(vec![labelled]).unwrap_err();
        assert!(e.reason.contains("aggregate-to-admin"), "{}", e.reason);
        let mut aggregating = cluster_role("r", vec![]);
        aggregating["aggregationRule"] =
            json!({"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]});
        let e = run(vec![aggregating]).unwrap_err();
        assert!(e.reason.contains("aggregationRule"), "{}", e.reason);
    }

    #[test]
    fn roles_stay_within_the_namespace_without_wildcards_or_tokens() {
        // KubeFlex's postgres sample: Secrets and Services in NAME-system.
        let sample = role(
            "postgres",
            vec![
                rule(&["apps"], &["statefulsets"], &["get", "create"]),
                rule(
                    &[""],
                    &["secrets", "services"],
                    &["get", "create", "list", "update"],
                ),
            ],
        );
        let ok = run(vec![
            sample.clone(),
            binding("RoleBinding", "Role", "postgres", "cp1-system"),
        ]);
        assert_eq!(ok, Ok(()));
        for (r, why) in [
            (rule(&["*"], &["*"], &["*"]), "wildcards"),
            (rule(&[""], &["secrets"], &["*"]), "wildcards"),
            (
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                "refused in a hook's Role",
            ),
            (
                rule(&[""], &["pods/exec"], &["create"]),
                "refused in a hook's Role",
            ),
            (rule(&[RBAC_GROUP], &["roles"], &["escalate"]), "escalate"),
        ] {
            let e = run(vec![role("r", vec![r])]).unwrap_err();
            assert!(e.reason.contains(why), "{}", e.reason);
        }
    }

    #[test]
    fn bindings_only_of_own_roles_to_home_service_accounts() {
        let own = || cluster_role("r", vec![]);
        let own_role = || role("nr", vec![]);
        let refused = [
            vec![binding(
                "ClusterRoleBinding",
                "ClusterRole",
                "cluster-admin",
                "cp1-system",
            )],
            vec![
                own(),
                binding("ClusterRoleBinding", "ClusterRole", "r", "cp2-system"),
            ],
            vec![
                own(),
                binding("ClusterRoleBinding", "Role", "r", "cp1-system"),
            ],
            vec![binding("RoleBinding", "ClusterRole", "admin", "cp1-system")],
            vec![binding("RoleBinding", "Role", "vcluster", "cp1-system")],
            vec![
                own_role(),
                binding("RoleBinding", "Role", "nr", "kube-system"),
            ],
        ];
        for objects in refused {
            let e = run(objects.clone()).unwrap_err();
            assert!(e.template.contains("Binding/b"), "{e:?}");
        }
        let mut user = binding("ClusterRoleBinding", "ClusterRole", "r", "");
        user["subjects"] = json!([{"kind": "User", "name": "alice"}]);
        assert!(run(vec![own(), user]).is_err());
        assert_eq!(
            run(vec![
                own(),
                binding("RoleBinding", "ClusterRole", "r", "cp1-system")
            ]),
            Ok(())
        );
    }

    #[test]
    fn extra_rules_allow_exactly_what_they_list() {
        let extra = ExtraRules::parse("nodes:get,list; storageclasses.storage.k8s.io:get").unwrap();
        assert_eq!(
            extra.to_string(),
            "nodes:get;nodes:list;storageclasses.storage.k8s.io:get"
        );
        let nodes = cluster_role("r", vec![rule(&[""], &["nodes"], &["get", "list"])]);
        assert_eq!(run_with(vec![nodes], &extra), Ok(()));
        let watch = cluster_role("r", vec![rule(&[""], &["nodes"], &["watch"])]);
        assert!(run_with(vec![watch], &extra).is_err());
        let sc = cluster_role(
            "r",
            vec![rule(&["storage.k8s.io"], &["storageclasses"], &["get"])],
        );
        assert_eq!(run_with(vec![sc], &extra), Ok(()));
        assert!(ExtraRules::parse("nodes").is_err());
        assert_eq!(ExtraRules::parse("").unwrap().to_string(), "(none)");
    }
}
