//! Tests of [`super`]: bindings resolved against an in-memory object list,
//! aggregation, the 403 texts and SelfSubjectRulesReview, one rule per test.

use super::*;

/// Objects in one list; namespaced ones are found by kind and namespace.
#[derive(Default)]
pub(super) struct Mem(pub(super) Vec<Value>);

impl Mem {
    pub(super) fn bootstrap() -> Self {
        Mem([bootstrap_cluster_roles(), bootstrap_cluster_role_bindings()].concat())
    }
    /// Fresh copies on every call, so that compiled rules are never reused for `Mem`.
    fn of(&self, kind: &str, ns: &str) -> Vec<Arc<Value>> {
        let matching = |o: &&Value| o["kind"] == kind && meta_str(o, "namespace") == ns;
        let found = self.0.iter().filter(matching);
        found.map(|o| Arc::new(o.clone())).collect()
    }
    fn find(&mut self, name: &str) -> &mut Value {
        let found = self.0.iter_mut().find(|o| meta_str(o, "name") == name);
        found.unwrap()
    }
    pub(super) fn add(&mut self, object: Value) {
        self.0.push(object);
    }
}

impl RbacSource for Mem {
    fn cluster_roles(&self) -> Vec<Arc<Value>> {
        self.of("ClusterRole", "")
    }
    fn cluster_role_bindings(&self) -> Vec<Arc<Value>> {
        self.of("ClusterRoleBinding", "")
    }
    fn roles(&self, ns: &str) -> Vec<Arc<Value>> {
        self.of("Role", ns)
    }
    fn role_bindings(&self, ns: &str) -> Vec<Arc<Value>> {
        self.of("RoleBinding", ns)
    }
}

/// A Role in `ns`, or a ClusterRole when `ns` is empty; `labels` are `key=value`.
pub(super) fn role(ns: &str, name: &str, labels: &[&str], rules: &[&str]) -> Value {
    let kind = if ns.is_empty() { "ClusterRole" } else { "Role" };
    let labels = labels.iter().filter_map(|l| l.split_once('='));
    let labels: Map<String, Value> = labels.map(|(k, v)| (k.into(), json!(v))).collect();
    let rules: Vec<Value> = rules.iter().map(|r| rule(r)).collect();
    json!({"kind": kind, "metadata": {"name": name, "namespace": ns, "labels": labels},
           "rules": rules})
}

/// A RoleBinding in `ns` (ClusterRoleBinding if empty) of `Kind/name` to `Kind:name`,
/// where a ServiceAccount name may be `namespace/name`.
pub(super) fn binding(ns: &str, role_ref: &str, subject: &str) -> Value {
    let kind = if ns.is_empty() {
        "ClusterRoleBinding"
    } else {
        "RoleBinding"
    };
    let (ref_kind, ref_name) = role_ref.split_once('/').unwrap();
    let (subject_kind, name) = subject.split_once(':').unwrap();
    let mut subject = json!({"kind": subject_kind, "name": name});
    if let Some((sa_ns, sa)) = name.split_once('/') {
        subject = json!({"kind": subject_kind, "name": sa, "namespace": sa_ns});
    }
    json!({"kind": kind, "metadata": {"name": format!("{role_ref}-{subject}"), "namespace": ns},
           "roleRef": {"apiGroup": RBAC_GROUP, "kind": ref_kind, "name": ref_name},
           "subjects": [subject]})
}

/// `verb path` for a non-resource request, else `verb group resource[/sub] ns name`
/// with `-` for an empty field.
fn attrs(spec: &str) -> Attributes {
    let f: Vec<&str> = spec
        .split_whitespace()
        .map(|w| if w == "-" { "" } else { w })
        .collect();
    if f[1].starts_with('/') {
        let (verb, path) = (f[0].into(), f[1].into());
        return Attributes {
            verb,
            path,
            ..Attributes::default()
        };
    }
    let (resource, subresource) = f[2].split_once('/').unwrap_or((f[2], ""));
    Attributes {
        verb: f[0].into(),
        api_group: f[1].into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: f[3].into(),
        name: f[4].into(),
        path: String::new(),
        resource_request: true,
    }
}

/// `name group...`
fn user(spec: &str) -> UserInfo {
    let mut words = spec.split_whitespace().map(String::from);
    let name = words.next().unwrap();
    UserInfo {
        name,
        groups: words.collect(),
    }
}

fn can(user: &UserInfo, spec: &str, src: &Mem) -> bool {
    authorize(user, &attrs(spec), src)
}

fn denial(user: &UserInfo, spec: &str) -> String {
    forbidden_message(user, &attrs(spec))
}

#[test]
fn system_masters_is_allowed_everything_even_without_bindings() {
    let admin = user("kubernetes-admin system:masters system:authenticated");
    let empty = Mem::default();
    assert!(can(&admin, "delete apps deployments x y", &empty));
    assert!(can(&admin, "get /metrics", &empty));
    assert!(!can(
        &user("bob system:authenticated"),
        "get /metrics",
        &empty
    ));
}

#[test]
fn service_account_denied_for_missing_verb_then_granted() {
    let sa = UserInfo::service_account("ns", "sa");
    let mut src = Mem::bootstrap();
    src.add(role("ns", "reader", &[], &["get ; - ; pods"]));
    src.add(binding("ns", "Role/reader", "ServiceAccount:ns/sa"));
    assert!(can(&sa, "get - pods ns p", &src));
    assert!(!can(&sa, "list - pods ns -", &src));
    assert!(!can(&sa, "get - pods other p", &src));
    let expected = "pods is forbidden: User \"system:serviceaccount:ns:sa\" cannot list \
                    resource \"pods\" in API group \"\" in the namespace \"ns\"";
    assert_eq!(denial(&sa, "list - pods ns -"), expected);
    src.find("reader")["rules"][0] = rule("get list ; - ; pods");
    assert!(can(&sa, "list - pods ns -", &src));
    // An unqualified ServiceAccount subject means one in the binding's namespace.
    src.0.pop();
    src.add(binding("ns", "Role/reader", "ServiceAccount:sa"));
    assert!(can(&sa, "list - pods ns -", &src));
}

#[test]
fn resource_names_restrict_and_never_allow_create_or_list() {
    let bob = user("bob");
    let mut src = Mem::default();
    src.add(role(
        "ns",
        "one",
        &[],
        &["get list create ; - ; configmaps ; a"],
    ));
    src.add(binding("ns", "Role/one", "User:bob"));
    assert!(can(&bob, "get - configmaps ns a", &src));
    assert!(!can(&bob, "get - configmaps ns b", &src));
    assert!(!can(&bob, "list - configmaps ns -", &src));
    assert!(!can(&bob, "create - configmaps ns -", &src));
}

#[test]
fn subresources_and_wildcards() {
    let bob = user("bob devs");
    let mut src = Mem::default();
    let rules = [
        "get ; - ; pods/log",
        "update ; * ; */scale",
        "* ; batch ; *",
    ];
    src.add(role(
        "ns",
        "r",
        &[],
        &[&rules[..], &["get ; - ; services/*"]].concat(),
    ));
    src.add(binding("ns", "Role/r", "Group:devs"));
    assert!(can(&bob, "get - pods/log ns p", &src));
    assert!(!can(&bob, "get - pods ns p", &src));
    assert!(can(&bob, "update apps deployments/scale ns d", &src));
    assert!(!can(&bob, "update apps deployments ns d", &src));
    assert!(can(&bob, "deletecollection batch jobs/status ns -", &src));
    // "resource/*" is not a Kubernetes form: it matches nothing.
    assert!(!can(&bob, "get - services/proxy ns s", &src));
    let expected = "pods \"p\" is forbidden: User \"bob\" cannot get resource \"pods/exec\" \
                    in API group \"\" in the namespace \"ns\"";
    assert_eq!(denial(&bob, "get - pods/exec ns p"), expected);
}

#[test]
fn role_binding_to_cluster_role_grants_only_in_its_namespace() {
    let alice = user("alice system:authenticated");
    let mut src = Mem::bootstrap();
    src.add(binding("team", "ClusterRole/edit", "User:alice"));
    assert!(can(&alice, "create apps deployments team -", &src));
    assert!(can(&alice, "get - pods/log team p", &src));
    assert!(!can(
        &alice,
        "create rbac.authorization.k8s.io rolebindings team -",
        &src
    ));
    assert!(!can(&alice, "create apps deployments other -", &src));
    assert!(!can(&alice, "list - pods - -", &src));
    let expected = "namespaces is forbidden: User \"alice\" cannot list resource \
                    \"namespaces\" in API group \"\" at the cluster scope";
    assert_eq!(denial(&alice, "list - namespaces - -"), expected);
}

#[test]
fn non_resource_urls() {
    let mut src = Mem::bootstrap();
    let anonymous = user("system:anonymous system:unauthenticated");
    let bob = user("bob system:authenticated");
    assert!(can(&anonymous, "get /healthz", &src));
    assert!(!can(&anonymous, "get /apis", &src));
    assert!(can(&bob, "get /apis/apps/v1", &src));
    assert!(!can(&bob, "get /metrics", &src));
    assert!(!can(&bob, "post /version", &src));
    src.add(role("", "m", &[], &["get ; /metrics /debug/*"]));
    // A RoleBinding never grants non-resource URLs: those requests have no namespace.
    src.add(binding("ns", "ClusterRole/m", "User:bob"));
    assert!(!can(&bob, "get /metrics", &src));
    src.add(binding("", "ClusterRole/m", "User:bob"));
    assert!(can(&bob, "get /metrics", &src));
    assert!(can(&bob, "get /debug/pprof/heap", &src));
    assert!(!can(&bob, "get /metricsx", &src));
    let expected = r#"forbidden: User "bob" cannot get path "/secret""#;
    assert_eq!(denial(&bob, "get /secret"), expected);
}

#[test]
fn aggregation_is_applied_at_evaluation_time() {
    let carol = user("carol");
    let mut src = Mem::bootstrap();
    src.add(binding("", "ClusterRole/monitoring", "User:carol"));
    let mut monitoring = role("", "monitoring", &[], &[]);
    let expr = json!({"key": "example.com/monitoring", "operator": "Exists"});
    monitoring["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchExpressions": [expr]}]});
    src.add(monitoring);
    let widgets = "list example.com widgets ns -";
    assert!(!can(&carol, widgets, &src));
    let labels = ["example.com/monitoring=yes"];
    src.add(role(
        "",
        "widget-reader",
        &labels,
        &["list ; example.com ; widgets"],
    ));
    assert!(can(&carol, widgets, &src));
    // Bootstrap view is aggregated too: labelling a role into it extends view and edit.
    let labels = &mut src.find("widget-reader")["metadata"]["labels"];
    labels[format!("{RBAC_GROUP}/aggregate-to-view")] = json!("true");
    src.add(binding("ns", "ClusterRole/edit", "User:dave"));
    assert!(can(&user("dave"), widgets, &src));
    let view = aggregated_rules("view", &src.cluster_roles()).unwrap();
    assert!(view.contains(&rule("list ; example.com ; widgets")));
    assert_eq!(
        aggregated_rules("cluster-admin", &src.cluster_roles()),
        None
    );
}

#[test]
fn missing_role_reason_and_status() {
    let bob = user("bob");
    let mut src = Mem::default();
    src.add(binding("ns", "Role/gone", "User:bob"));
    src.add(binding("ns", "ClusterRole/gone", "User:bob"));
    let request = attrs("get apps deployments ns d");
    let decision = decide(&bob, &request, &src);
    assert!(!decision.allowed);
    let reason = "RBAC: [role.rbac.authorization.k8s.io \"gone\" not found, \
                  clusterrole.rbac.authorization.k8s.io \"gone\" not found]";
    assert_eq!(decision.reason, reason);
    let status = forbidden_status(&bob, &request, &decision.reason);
    let message = format!(
        "deployments.apps \"d\" is forbidden: User \"bob\" cannot get resource \
         \"deployments\" in API group \"apps\" in the namespace \"ns\": {reason}"
    );
    assert_eq!(status["message"], message);
    let details = json!({"name": "d", "group": "apps", "kind": "deployments"});
    assert_eq!(status["details"], details);
    assert_eq!(
        forbidden_status(&bob, &attrs("get /x"), "")["details"],
        json!({})
    );
}

#[test]
fn message_quoting_and_sanitising() {
    let odd = UserInfo {
        name: "a\"<b>&\n".into(),
        groups: Vec::new(),
    };
    let expected = r#"namespaces "x" is forbidden: User "a\"&lt;b&gt;&amp;\n" cannot get resource "namespaces" in API group "" in the namespace "x""#;
    assert_eq!(denial(&odd, "get - namespaces x x"), expected);
}

#[test]
fn rules_review_lists_what_can_i_shows() {
    let sa = UserInfo::service_account("ns", "sa");
    let mut src = Mem::bootstrap();
    src.add(role("ns", "r", &[], &["get ; - ; pods ; p"]));
    src.add(binding("ns", "Role/r", "ServiceAccount:ns/sa"));
    let status = rules_review(&sa, "ns", &src);
    assert_eq!(status["incomplete"], json!(false));
    let rules = status["resourceRules"].as_array().unwrap();
    let review = "create ; authorization.k8s.io ; selfsubjectaccessreviews \
                  selfsubjectrulesreviews";
    assert!(rules.contains(&rule(review)));
    assert!(rules.contains(&rule("get ; - ; pods ; p")));
    let urls = status["nonResourceRules"].as_array().unwrap();
    assert!(urls.contains(&rule("get ; /healthz /livez /readyz /version /version/")));
    assert!(status.get("evaluationError").is_none());
}

#[test]
fn bootstrap_objects_carry_kubernetes_metadata() {
    let mut src = Mem::bootstrap();
    let admin = src.find("admin").clone();
    let metadata = &admin["metadata"];
    assert_eq!(
        metadata["labels"]["kubernetes.io/bootstrapping"],
        "rbac-defaults"
    );
    let annotation = "rbac.authorization.kubernetes.io/autoupdate";
    assert_eq!(metadata["annotations"][annotation], "true");
    let rules = admin["rules"].as_array().unwrap();
    assert!(rules.contains(&rule(
        "R W ; rbac.authorization.k8s.io ; roles rolebindings"
    )));
    assert!(rules.contains(&rule("R ; - ; namespaces")));
    let masters = json!([{"apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:masters"}]);
    assert_eq!(bootstrap_cluster_role_bindings()[0]["subjects"], masters);
}

#[test]
fn compiled_cluster_roles_are_reused_only_for_the_same_objects() {
    let roles: Vec<Arc<Value>> = vec![Arc::new(role("", "reader", &[], &["get ; - ; pods"]))];
    // Other tests compile their own sets meanwhile, so a hit is asked for a few times.
    let reused = (0..100).any(|_| {
        let first = Compiled::of(roles.clone());
        Arc::ptr_eq(&first, &Compiled::of(roles.clone()))
    });
    assert!(reused, "the same objects are compiled once");
    let first = Compiled::of(roles.clone());
    // An equal but new object (as the store makes on every write) is not trusted.
    let copy = vec![Arc::new((*roles[0]).clone())];
    assert!(!Arc::ptr_eq(&first, &Compiled::of(copy)));
    let rules = first.rules("reader").unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["verbs"], json!(["get"]));
    assert!(first.rules("writer").is_none());
}
