//! RBAC authorization as kube-apiserver evaluates it (`plugin/pkg/auth/authorizer/rbac`):
//! bindings resolved to policy rules, ClusterRole aggregation applied at evaluation time,
//! the 403 texts of `responsewriters.Forbidden`, SelfSubjectRulesReview status, and the
//! bootstrap roles and bindings that matter to a fresh cluster. Pure: objects come in as JSON.

pub mod escalation;

use serde_json::{Map, Value, json};
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

/// The authenticated identity of a request (Kubernetes' `user.Info`, without UID and extra).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The identity kube-apiserver gives a ServiceAccount token: the username and the three
    /// groups its authenticator adds (`system:serviceaccounts[:ns]`, `system:authenticated`).
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.to_string(),
            ],
        }
    }
}

/// Kubernetes' `authorizer.Attributes`. For `namespaces/{name}` requests kube-apiserver sets
/// `namespace` to the name too, which changes the 403 text to "in the namespace".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
    pub path: String,
    pub resource_request: bool,
}

/// Where the RBAC objects live (`rbac.authorization.k8s.io/v1` JSON). Objects are shared,
/// not copied: a changed object must come back as a new `Arc` (as the store replaces its
/// objects), since the compiled ClusterRole rules are reused while every ClusterRole is
/// the same allocation as before.
pub trait RbacSource {
    fn cluster_roles(&self) -> Vec<Arc<Value>>;
    fn cluster_role_bindings(&self) -> Vec<Arc<Value>>;
    fn roles(&self, namespace: &str) -> Vec<Arc<Value>>;
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<Value>>;
}

/// An authorization outcome with the reason kube-apiserver appends to a 403 message: empty,
/// or `RBAC: <resolution errors>` when a binding's role could not be found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

const PRIVILEGED_GROUP: &str = "system:masters";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const AUTHENTICATED: &str = "system:authenticated";

/// Whether RBAC (behind kube-apiserver's `system:masters` short-circuit) allows the request.
pub fn authorize(user: &UserInfo, attrs: &Attributes, src: &dyn RbacSource) -> bool {
    decide(user, attrs, src).allowed
}

/// [`authorize`] plus the reason text a denial carries.
pub fn decide(user: &UserInfo, attrs: &Attributes, src: &dyn RbacSource) -> Decision {
    // kube-apiserver puts a privileged-group authorizer before RBAC, so members of
    // system:masters are allowed even when no binding exists.
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let resolver = Resolver::new(src);
    let mut errors = Vec::new();
    let allowed = resolver.visit(user, &attrs.namespace, &mut |item| match item {
        Ok(rule) if rule_allows(attrs, rule) => ControlFlow::Break(()),
        Ok(_) => ControlFlow::Continue(()),
        Err(e) => {
            errors.push(e);
            ControlFlow::Continue(())
        }
    });
    let reason = if allowed || errors.is_empty() {
        String::new()
    } else {
        format!("RBAC: {}", aggregate_errors(&errors))
    };
    Decision { allowed, reason }
}

/// The `message` of the 403 Status kube-apiserver returns for a denied request.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    forbidden_message_with_reason(user, attrs, "")
}

/// [`forbidden_message`] with the authorizer's reason (see [`Decision::reason`]) appended.
pub fn forbidden_message_with_reason(user: &UserInfo, attrs: &Attributes, reason: &str) -> String {
    let mut msg = sanitize(&authorizer_message(user, attrs));
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    // apierrors.NewForbidden(GroupResource{group, resource}, name, msg)
    let resource = qualified_resource(attrs);
    if attrs.api_group.is_empty() && attrs.resource.is_empty() {
        format!("forbidden: {msg}")
    } else if attrs.name.is_empty() {
        format!("{resource} is forbidden: {msg}")
    } else {
        format!("{resource} {} is forbidden: {msg}", go_quote(&attrs.name))
    }
}

/// The whole 403 `Status` object, as `responsewriters.Forbidden` serialises it.
pub fn forbidden_status(user: &UserInfo, attrs: &Attributes, reason: &str) -> Value {
    let fields = [
        ("name", &attrs.name),
        ("group", &attrs.api_group),
        ("kind", &attrs.resource),
    ];
    let details: Map<String, Value> = fields
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key.to_string(), json!(value)))
        .collect();
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": forbidden_message_with_reason(user, attrs, reason), "reason": "Forbidden",
           "details": details, "code": 403})
}

/// The `status` of a SelfSubjectRulesReview for `user` in `namespace` (RBAC's `RulesFor`).
pub fn rules_review(user: &UserInfo, namespace: &str, src: &dyn RbacSource) -> Value {
    let resolver = Resolver::new(src);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let mut errors = Vec::new();
    resolver.visit(user, namespace, &mut |item| {
        let rule = match item {
            Ok(rule) => rule,
            Err(e) => {
                errors.push(e);
                return ControlFlow::Continue(());
            }
        };
        if rule.get("resources").is_some() {
            let mut resource_rule = rule.clone();
            if let Some(fields) = resource_rule.as_object_mut() {
                fields.remove("nonResourceURLs");
            }
            resource_rules.push(resource_rule);
        }
        if let Some(urls) = rule.get("nonResourceURLs") {
            non_resource_rules.push(json!({"verbs": rule["verbs"], "nonResourceURLs": urls}));
        }
        ControlFlow::Continue(())
    });
    let mut status = json!({"resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules, "incomplete": false});
    if !errors.is_empty() {
        status["evaluationError"] = Value::String(aggregate_errors(&errors));
    }
    status
}

/// The rules the ClusterRole aggregation controller would write into the ClusterRole `name`
/// (None when it has no `aggregationRule` or does not exist), for servers that store them.
pub fn aggregated_rules<R: Borrow<Value>>(name: &str, cluster_roles: &[R]) -> Option<Vec<Value>> {
    let role = cluster_roles
        .iter()
        .map(Borrow::borrow)
        .find(|r| meta_str(r, "name") == name)?;
    if is_null(role.get("aggregationRule")) {
        return None;
    }
    Some(effective_rules(role, cluster_roles, &mut Vec::new()))
}

// ---------------------------------------------------------------------------------------
// Rule resolution (pkg/registry/rbac/validation/rule.go)

/// A rule reduced to its non-empty lists, so that rules Kubernetes deems equal (a missing
/// list and an empty one alike) compare equal here.
fn normalize(rule: &Value) -> Value {
    let keys = [
        "verbs",
        "apiGroups",
        "resources",
        "resourceNames",
        "nonResourceURLs",
    ];
    let lists = keys.map(|k| (k.to_string(), strings(rule.get(k))));
    let kept = lists.into_iter().filter(|(_, l)| !l.is_empty());
    Value::Object(kept.map(|(k, l)| (k, json!(l))).collect())
}

/// Whether any string in `rule[key]` satisfies `pred`.
fn any(rule: &Value, key: &str, pred: impl Fn(&str) -> bool) -> bool {
    array(rule.get(key))
        .iter()
        .filter_map(Value::as_str)
        .any(pred)
}

struct Resolver<'a> {
    src: &'a dyn RbacSource,
    // Fetched once: aggregation needs every ClusterRole to evaluate label selectors.
    cluster_roles: Arc<Compiled>,
}

/// The effective rules of one set of ClusterRoles, each computed on first use. Valid for
/// as long as a listing returns the very same objects: `roles` holds them, so no other
/// object can take their addresses, and any create, change or delete makes the listing
/// differ from `roles` by pointer.
struct Compiled {
    roles: Vec<Arc<Value>>,
    /// The first ClusterRole of each name (the store's come before the bootstrap ones).
    index: HashMap<String, usize>,
    rules: Vec<OnceLock<Arc<[Value]>>>,
}

/// How many sets of ClusterRoles stay compiled (several testenvs share a process).
const COMPILED_SETS: usize = 8;

static COMPILED: Mutex<VecDeque<Arc<Compiled>>> = Mutex::new(VecDeque::new());

impl Compiled {
    /// The compiled form of `roles`: the cached one while they are unchanged.
    fn of(roles: Vec<Arc<Value>>) -> Arc<Self> {
        let same = |c: &Compiled| {
            c.roles.len() == roles.len()
                && c.roles.iter().zip(&roles).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        let mut cache = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pos) = cache.iter().position(|c| same(c)) {
            let hit = cache.remove(pos).expect("position is in range");
            cache.push_front(hit.clone());
            return hit;
        }
        let mut index = HashMap::new();
        for (i, role) in roles.iter().enumerate() {
            index.entry(meta_str(role, "name").to_string()).or_insert(i);
        }
        let rules = roles.iter().map(|_| OnceLock::new()).collect();
        let compiled = Arc::new(Compiled {
            roles,
            index,
            rules,
        });
        cache.push_front(compiled.clone());
        cache.truncate(COMPILED_SETS);
        compiled
    }

    /// The effective rules of the ClusterRole `name`, None when there is none.
    fn rules(&self, name: &str) -> Option<Arc<[Value]>> {
        let &i = self.index.get(name)?;
        let compile = || effective_rules(&self.roles[i], &self.roles, &mut Vec::new()).into();
        let rules = self.rules[i].get_or_init(compile);
        Some(rules.clone())
    }
}

type Visitor<'v> = dyn FnMut(Result<&Value, String>) -> ControlFlow<()> + 'v;

impl<'a> Resolver<'a> {
    fn new(src: &'a dyn RbacSource) -> Self {
        let cluster_roles = Compiled::of(src.cluster_roles());
        Resolver { src, cluster_roles }
    }

    /// Feeds `visitor` every rule bound to `user` (ClusterRoleBindings, then the namespace's
    /// RoleBindings) and every resolution error; true when the visitor stopped early.
    fn visit(&self, user: &UserInfo, namespace: &str, visitor: &mut Visitor<'_>) -> bool {
        let cluster_wide = self
            .src
            .cluster_role_bindings()
            .into_iter()
            .map(|b| (b, ""));
        let local = match namespace {
            "" => Vec::new(),
            ns => self.src.role_bindings(ns),
        };
        let mut all = cluster_wide.chain(local.into_iter().map(|b| (b, namespace)));
        all.any(|(binding, ns)| self.visit_binding(user, &binding, ns, visitor).is_break())
    }

    fn visit_binding(
        &self,
        user: &UserInfo,
        binding: &Value,
        namespace: &str,
        visitor: &mut Visitor<'_>,
    ) -> ControlFlow<()> {
        let subjects = binding.get("subjects").and_then(Value::as_array);
        if !subjects.is_some_and(|s| s.iter().any(|s| applies_to_user(user, s, namespace))) {
            return ControlFlow::Continue(());
        }
        match self.role_ref_rules(binding.get("roleRef").unwrap_or(&Value::Null), namespace) {
            Ok(rules) => rules.iter().try_for_each(|rule| visitor(Ok(rule))),
            Err(e) => visitor(Err(e)),
        }
    }

    fn role_ref_rules(&self, role_ref: &Value, namespace: &str) -> Result<Arc<[Value]>, String> {
        let name = str_at(role_ref, "name");
        let (rules, resource) = match str_at(role_ref, "kind") {
            "Role" => {
                let roles = self.src.roles(namespace);
                let role = roles.iter().find(|r| meta_str(r, "name") == name);
                (role.map(|r| literal_rules(r).into()), "role")
            }
            "ClusterRole" => (self.cluster_roles.rules(name), "clusterrole"),
            kind => {
                return Err(format!(
                    "unsupported role reference kind: {}",
                    go_quote(kind)
                ));
            }
        };
        rules.ok_or_else(|| format!("{resource}.{RBAC_GROUP} {} not found", go_quote(name)))
    }
}

/// A ClusterRole's rules; for an aggregated role the union (in name order, de-duplicated)
/// of the rules of every other ClusterRole its selectors match, as the controller writes.
fn effective_rules<R: Borrow<Value>>(
    role: &Value,
    all: &[R],
    stack: &mut Vec<String>,
) -> Vec<Value> {
    let name = meta_str(role, "name");
    let aggregation = role.get("aggregationRule");
    // A cycle falls back to stored rules, which is where the real controller settles too.
    if is_null(aggregation) || stack.iter().any(|s| s == name) {
        return literal_rules(role);
    }
    stack.push(name.to_string());
    let mut out: Vec<Value> = Vec::new();
    let selectors = aggregation.and_then(|a| a.get("clusterRoleSelectors"));
    for selector in array(selectors) {
        let selected = |r: &&Value| selector_matches(selector, r.pointer("/metadata/labels"));
        let roles = all.iter().map(Borrow::borrow);
        let mut matched: Vec<&Value> = roles.filter(|r| selected(r) == Some(true)).collect();
        matched.sort_by(|a, b| meta_str(a, "name").cmp(meta_str(b, "name")));
        for other in matched {
            if meta_str(other, "name") == name {
                continue;
            }
            for rule in effective_rules(other, all, stack) {
                if !out.contains(&rule) {
                    out.push(rule);
                }
            }
        }
    }
    stack.pop();
    out
}

fn literal_rules(role: &Value) -> Vec<Value> {
    array(role.get("rules")).iter().map(normalize).collect()
}

/// `metav1.LabelSelectorAsSelector` + `Matches`; None for a selector it would reject.
fn selector_matches(selector: &Value, labels: Option<&Value>) -> Option<bool> {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let mut all = true;
    if let Some(match_labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in match_labels {
            all &= label(k) == Some(v.as_str()?);
        }
    }
    for expr in array(selector.get("matchExpressions")) {
        let key = str_at(expr, "key");
        let values = strings(expr.get("values"));
        let matched = match (str_at(expr, "operator"), values.is_empty()) {
            ("In", false) => label(key).is_some_and(|l| values.iter().any(|v| v == l)),
            ("NotIn", false) => !label(key).is_some_and(|l| values.iter().any(|v| v == l)),
            ("Exists", true) => label(key).is_some(),
            ("DoesNotExist", true) => label(key).is_none(),
            _ => return None,
        };
        all &= matched;
    }
    Some(all)
}

fn applies_to_user(user: &UserInfo, subject: &Value, namespace: &str) -> bool {
    let name = str_at(subject, "name");
    match str_at(subject, "kind") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            // An unqualified ServiceAccount subject of a RoleBinding means one in its namespace.
            let sa_namespace = match str_at(subject, "namespace") {
                "" => namespace,
                ns => ns,
            };
            !sa_namespace.is_empty()
                && user.name == format!("system:serviceaccount:{sa_namespace}:{name}")
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Rule matching (pkg/apis/rbac/v1/evaluation_helpers.go)

fn rule_allows(attrs: &Attributes, rule: &Value) -> bool {
    if !any(rule, "verbs", |v| v == "*" || v == attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        let path = attrs.path.as_str();
        let prefix = |u: &str| {
            u.strip_suffix('*')
                .is_some_and(|p| path.starts_with(p.trim_end_matches('*')))
        };
        return any(rule, "nonResourceURLs", |u| {
            u == "*" || u == path || prefix(u)
        });
    }
    let (resource, sub) = (&attrs.resource, attrs.subresource.as_str());
    let combined = if sub.is_empty() {
        resource.clone()
    } else {
        format!("{resource}/{sub}")
    };
    any(rule, "apiGroups", |g| g == "*" || g == attrs.api_group)
        // "*/scale" matches any resource's scale subresource; "pods/*" is not a form
        // Kubernetes understands, so it is deliberately not matched here either.
        && any(rule, "resources", |r| {
            r == "*" || r == combined || (!sub.is_empty() && r.strip_prefix("*/") == Some(sub))
        })
        && (rule.get("resourceNames").is_none() || any(rule, "resourceNames", |n| n == attrs.name))
}

// ---------------------------------------------------------------------------------------
// Messages (staging/.../endpoints/handlers/responsewriters/errors.go)

fn authorizer_message(user: &UserInfo, attrs: &Attributes) -> String {
    let user_name = go_quote(&user.name);
    if !attrs.resource_request {
        let path = go_quote(&attrs.path);
        return format!("User {user_name} cannot {} path {path}", attrs.verb);
    }
    let mut resource = attrs.resource.clone();
    if !attrs.subresource.is_empty() {
        resource = format!("{resource}/{}", attrs.subresource);
    }
    let (resource, group) = (go_quote(&resource), go_quote(&attrs.api_group));
    let verb = &attrs.verb;
    if attrs.namespace.is_empty() {
        format!(
            "User {user_name} cannot {verb} resource {resource} in API group {group} at the cluster scope"
        )
    } else {
        let ns = go_quote(&attrs.namespace);
        format!(
            "User {user_name} cannot {verb} resource {resource} in API group {group} in the namespace {ns}"
        )
    }
}

fn qualified_resource(attrs: &Attributes) -> String {
    if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    }
}

/// kube-apiserver escapes these so that an error body never looks like HTML.
fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Go's `%q` (strconv.Quote), which every quoted name in these messages goes through.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `utilerrors.NewAggregate(errs).Error()`: one message bare, several de-duplicated in brackets.
fn aggregate_errors(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

// ---------------------------------------------------------------------------------------
// Bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go)

/// The bootstrap ClusterRoles. `=name label...` starts a role: `aggregate-to-x` labels stand
/// for `rbac.authorization.k8s.io/aggregate-to-x: "true"` and `>aggregate-to-x` makes the role
/// aggregate the roles so labelled. Every other line is one rule in [`rule`]'s notation.
const BOOTSTRAP_ROLES: &str = "
=cluster-admin
* ; * ; *
* ; *
=system:discovery
get ; /livez /readyz /healthz /version /version/ /openapi /openapi/* /api /api/* /apis /apis/*
=system:basic-user
create ; authorization.k8s.io ; selfsubjectaccessreviews selfsubjectrulesreviews
create ; authentication.k8s.io ; selfsubjectreviews
=system:public-info-viewer
get ; /livez /readyz /healthz /version /version/
=admin >aggregate-to-admin
=edit aggregate-to-admin >aggregate-to-edit
=view aggregate-to-edit >aggregate-to-view
=system:aggregate-to-admin aggregate-to-admin
create ; authorization.k8s.io ; localsubjectaccessreviews
R W ; rbac.authorization.k8s.io ; roles rolebindings
=system:aggregate-to-edit aggregate-to-edit
R ; - ; pods/attach pods/proxy pods/exec pods/portforward secrets services/proxy
impersonate ; - ; serviceaccounts
W ; - ; pods pods/attach pods/proxy pods/exec pods/portforward
create ; - ; pods/eviction
W ; - ; replicationcontrollers replicationcontrollers/scale serviceaccounts services services/proxy persistentvolumeclaims configmaps secrets events
create ; - ; serviceaccounts/token
W ; apps ; statefulsets statefulsets/scale daemonsets deployments deployments/scale deployments/rollback replicasets replicasets/scale
W ; autoscaling ; horizontalpodautoscalers
W ; batch ; jobs cronjobs
W ; policy ; poddisruptionbudgets
W ; networking.k8s.io ; networkpolicies ingresses
W ; coordination.k8s.io ; leases
=system:aggregate-to-view aggregate-to-view
R ; - ; pods replicationcontrollers replicationcontrollers/scale serviceaccounts services services/status endpoints persistentvolumeclaims persistentvolumeclaims/status configmaps
R ; - ; limitranges resourcequotas bindings events pods/status resourcequotas/status namespaces/status replicationcontrollers/status pods/log
R ; - ; namespaces
R ; discovery.k8s.io ; endpointslices
R ; apps ; controllerrevisions statefulsets statefulsets/status statefulsets/scale daemonsets daemonsets/status deployments deployments/status deployments/scale replicasets replicasets/status replicasets/scale
R ; autoscaling ; horizontalpodautoscalers horizontalpodautoscalers/status
R ; batch ; jobs cronjobs cronjobs/status jobs/status
R ; policy ; poddisruptionbudgets poddisruptionbudgets/status
R ; networking.k8s.io ; networkpolicies ingresses ingresses/status
R ; coordination.k8s.io ; leases
";

/// A PolicyRule from `verbs ; apiGroups ; resources [; resourceNames]` or `verbs ; URLs`,
/// each a space-separated list (`-` is the core group, `R`/`W` the read/write verbs), with
/// every list sorted as `rbacv1helpers.NewRule(...).RuleOrDie()` leaves it.
fn rule(spec: &str) -> Value {
    let list = |field: &str| {
        let field = format!(" {field} ").replace(" R ", " get list watch ");
        let field = field.replace(" W ", " create delete deletecollection patch update ");
        let mut words: Vec<&str> = field.split_whitespace().collect();
        words.sort_unstable();
        json!(
            words
                .iter()
                .map(|w| if *w == "-" { "" } else { w })
                .collect::<Vec<_>>()
        )
    };
    let lists: Vec<Value> = spec.split(';').map(list).collect();
    let keys = match lists.len() {
        2 => &["verbs", "nonResourceURLs"][..],
        _ => &["verbs", "apiGroups", "resources", "resourceNames"],
    };
    Value::Object(keys.iter().map(|k| k.to_string()).zip(lists).collect())
}

fn bootstrap_metadata(name: &str, labels: Map<String, Value>) -> Value {
    let mut labels = labels;
    labels.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    let annotations = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    json!({"name": name, "labels": labels, "annotations": annotations})
}

/// The default ClusterRoles of a fresh cluster that matter to users, with the rules of the
/// aggregated `admin`/`edit`/`view` already filled in as the aggregation controller would.
pub fn bootstrap_cluster_roles() -> Vec<Value> {
    let mut roles: Vec<Value> = Vec::new();
    for line in BOOTSTRAP_ROLES.lines().filter(|l| !l.is_empty()) {
        let Some(header) = line.strip_prefix('=') else {
            if let Some(rules) = roles.last_mut().and_then(|r| r["rules"].as_array_mut()) {
                rules.push(rule(line));
            }
            continue;
        };
        let mut words = header.split_whitespace();
        let name = words.next().unwrap_or_default();
        let (mut labels, mut aggregation) = (Map::new(), Value::Null);
        for word in words {
            match word.strip_prefix('>') {
                Some(short) => {
                    let selector =
                        json!({"matchLabels": {format!("{RBAC_GROUP}/{short}"): "true"}});
                    aggregation = json!({"clusterRoleSelectors": [selector]});
                }
                None => {
                    labels.insert(format!("{RBAC_GROUP}/{word}"), json!("true"));
                }
            }
        }
        let mut role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": bootstrap_metadata(name, labels), "rules": []});
        if !aggregation.is_null() {
            role["aggregationRule"] = aggregation;
        }
        roles.push(role);
    }
    let snapshot = roles.clone();
    for role in &mut roles {
        if let Some(rules) = aggregated_rules(meta_str(role, "name"), &snapshot) {
            role["rules"] = Value::Array(rules);
        }
    }
    roles
}

/// The default ClusterRoleBindings matching [`bootstrap_cluster_roles`].
pub fn bootstrap_cluster_role_bindings() -> Vec<Value> {
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": RBAC_GROUP, "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": bootstrap_metadata(name, Map::new()),
               "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
               "subjects": subjects})
    };
    vec![
        binding("cluster-admin", &[PRIVILEGED_GROUP]),
        binding("system:discovery", &[AUTHENTICATED]),
        binding("system:basic-user", &[AUTHENTICATED]),
        binding(
            "system:public-info-viewer",
            &[AUTHENTICATED, "system:unauthenticated"],
        ),
    ]
}

/// [`bootstrap_cluster_roles`], built once and shared by every request.
pub fn shared_bootstrap_cluster_roles() -> &'static [Arc<Value>] {
    static ROLES: LazyLock<Vec<Arc<Value>>> = LazyLock::new(|| {
        bootstrap_cluster_roles()
            .into_iter()
            .map(Arc::new)
            .collect()
    });
    &ROLES
}

/// [`bootstrap_cluster_role_bindings`], built once and shared by every request.
pub fn shared_bootstrap_cluster_role_bindings() -> &'static [Arc<Value>] {
    static BINDINGS: LazyLock<Vec<Arc<Value>>> = LazyLock::new(|| {
        let bindings = bootstrap_cluster_role_bindings();
        bindings.into_iter().map(Arc::new).collect()
    });
    &BINDINGS
}

// ---------------------------------------------------------------------------------------
// JSON helpers

fn is_null(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn meta_str<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get("metadata").map_or("", |m| str_at(m, key))
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    array(v)
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
#[path = "rbac_tests.rs"]
mod tests;
