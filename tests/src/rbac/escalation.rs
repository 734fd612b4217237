//! The RBAC escalation and bind checks of kube-apiserver's role and binding storage
//! (`pkg/registry/rbac/*/policybased`, `pkg/registry/rbac/validation`): a requester may
//! write a Role or ClusterRole only with every permission it grants (in that scope) or
//! `escalate` on it, and a binding only with the referenced role's permissions or `bind`
//! on it. Answers are the texts of upstream's 403s. Pure: objects come in as JSON.

use serde_json::{Value, json};

use super::{
    Attributes, PRIVILEGED_GROUP, RBAC_GROUP, RbacSource, Resolver, UserInfo, aggregate_errors,
    authorize, go_quote, meta_str, normalize, str_at, strings,
};
use std::ops::ControlFlow;

/// Checks a write of an RBAC object of `plural` (roles, clusterroles, rolebindings,
/// clusterrolebindings) by `user` into `namespace` ("" for cluster scope).
/// `request_name` is the name in the request's URL ("" for a POST), `old` the stored
/// object on update. Err is the message of the 403 (`NewForbidden`'s text).
pub fn check_write(
    user: &UserInfo,
    plural: &str,
    namespace: &str,
    request_name: &str,
    new: &Value,
    old: Option<&Value>,
    src: &dyn RbacSource,
) -> Result<(), String> {
    // system:masters is how the API server talks to itself: never checked.
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    if old.is_some_and(|old| only_gc_fields_change(new, old)) {
        return Ok(());
    }
    let name = meta_str(new, "name");
    let forbidden = |msg: String| {
        Err(format!(
            "{plural}.{RBAC_GROUP} {} is forbidden: {msg}",
            go_quote(name)
        ))
    };
    match plural {
        "roles" | "clusterroles" => {
            // `escalate` is asked with the request's name, which a POST has not.
            if allowed(user, "escalate", plural, request_name, namespace, src) {
                return Ok(());
            }
            let rules: Vec<Value> = rules_of(new);
            if let Err(msg) = confirm_no_escalation(user, namespace, &rules, src) {
                return forbidden(msg);
            }
            let aggregates = |r: &Value| !r.get("aggregationRule").is_none_or(Value::is_null);
            if plural == "clusterroles" && (aggregates(new) || old.is_some_and(aggregates)) {
                let everything = [json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})];
                if confirm_no_escalation(user, namespace, &everything, src).is_err() {
                    return forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    );
                }
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = &new["roleRef"];
            let role_plural = match str_at(role_ref, "kind") {
                "Role" => "roles",
                _ => "clusterroles",
            };
            let role_name = str_at(role_ref, "name");
            if allowed(user, "bind", role_plural, role_name, namespace, src) {
                return Ok(());
            }
            let resolver = Resolver::new(src);
            let rules = match resolver.role_ref_rules(role_ref, namespace) {
                Ok(rules) => rules,
                Err(e) => return forbidden(e),
            };
            match confirm_no_escalation(user, namespace, &rules, src) {
                Ok(()) => Ok(()),
                Err(msg) => forbidden(msg),
            }
        }
        _ => Ok(()),
    }
}

fn allowed(
    user: &UserInfo,
    verb: &str,
    plural: &str,
    name: &str,
    namespace: &str,
    src: &dyn RbacSource,
) -> bool {
    let attrs = Attributes {
        verb: verb.into(),
        api_group: RBAC_GROUP.into(),
        resource: plural.into(),
        name: name.into(),
        namespace: namespace.into(),
        resource_request: true,
        ..Attributes::default()
    };
    authorize(user, &attrs, src)
}

fn rules_of(role: &Value) -> Vec<Value> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|rules| rules.iter().map(normalize).collect())
        .unwrap_or_default()
}

/// `rbacregistry.IsOnlyMutatingGCFields`: an update touching only ownerReferences and
/// finalizers is never an escalation (the garbage collector must be able to make it).
fn only_gc_fields_change(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
                "generation",
            ] {
                meta.remove(key);
            }
        }
        v
    };
    strip(new) == strip(old)
}

/// `validation.ConfirmNoEscalation`: every rule must be covered by the rules the user
/// holds in `namespace`; the error lists the missing ones as upstream compacts them.
pub fn confirm_no_escalation(
    user: &UserInfo,
    namespace: &str,
    rules: &[Value],
    src: &dyn RbacSource,
) -> Result<(), String> {
    let resolver = Resolver::new(src);
    let mut owner = Vec::new();
    let mut errors = Vec::new();
    resolver.visit(user, namespace, &mut |item| {
        match item {
            Ok(rule) => owner.push(rule.clone()),
            Err(e) => errors.push(e),
        }
        ControlFlow::Continue(())
    });
    let missing = uncovered(&owner, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut descriptions: Vec<String> = compact(missing).iter().map(compact_string).collect();
    descriptions.sort();
    descriptions.dedup();
    let groups = user
        .groups
        .iter()
        .map(|g| go_quote(g))
        .collect::<Vec<_>>()
        .join(" ");
    let mut msg = format!(
        "user {} (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        descriptions.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!(
            "; resolution errors: [{}]",
            aggregate_errors(&errors)
        ));
    }
    Err(msg)
}

/// A rule split into one rule per group, resource, verb (and name); non-resource URLs
/// per URL and verb (`BreakdownRule`).
fn breakdown(rule: &Value) -> Vec<Value> {
    let (verbs, groups) = (strings(rule.get("verbs")), strings(rule.get("apiGroups")));
    let resources = strings(rule.get("resources"));
    let names = strings(rule.get("resourceNames"));
    let mut out = Vec::new();
    for group in &groups {
        for resource in &resources {
            for verb in &verbs {
                let base = json!({"apiGroups": [group], "resources": [resource], "verbs": [verb]});
                if names.is_empty() {
                    out.push(base.clone());
                }
                for name in &names {
                    let mut one = base.clone();
                    one["resourceNames"] = json!([name]);
                    out.push(one);
                }
            }
        }
    }
    for url in strings(rule.get("nonResourceURLs")) {
        for verb in &verbs {
            out.push(json!({"nonResourceURLs": [url], "verbs": [verb]}));
        }
    }
    out
}

/// The broken-down rules of `rules` that no rule in `owner` covers (`Covers`).
fn uncovered(owner: &[Value], rules: &[Value]) -> Vec<Value> {
    rules
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| covers(o, sub)))
        .collect()
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

fn has_all(list: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(list, w))
}

/// `ruleCovers` for a broken-down rule.
fn covers(owner: &Value, sub: &Value) -> bool {
    let field = |r: &Value, k: &str| strings(r.get(k));
    let (o_verbs, s_verbs) = (field(owner, "verbs"), field(sub, "verbs"));
    let (o_groups, s_groups) = (field(owner, "apiGroups"), field(sub, "apiGroups"));
    let (o_res, s_res) = (field(owner, "resources"), field(sub, "resources"));
    let (o_names, s_names) = (field(owner, "resourceNames"), field(sub, "resourceNames"));
    let (o_urls, s_urls) = (
        field(owner, "nonResourceURLs"),
        field(sub, "nonResourceURLs"),
    );
    let verbs = has(&o_verbs, "*") || has_all(&o_verbs, &s_verbs);
    let groups = has(&o_groups, "*") || has_all(&o_groups, &s_groups);
    let resources = has(&o_res, "*")
        || s_res.iter().all(|r| {
            has(&o_res, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&o_res, &format!("*/{sub}")))
        });
    let urls = s_urls.iter().all(|u| {
        o_urls.iter().any(|o| {
            o == u || o.strip_suffix('*').is_some() && u.starts_with(o.trim_end_matches('*'))
        })
    });
    let names = o_names.is_empty() || (!s_names.is_empty() && has_all(&o_names, &s_names));
    verbs && groups && resources && urls && names
}

/// `CompactRules`: broken-down rules of one group, resource and name merged into one
/// rule with their verbs; anything else kept as it is.
fn compact(rules: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut simple: Vec<(Value, Value)> = Vec::new();
    for rule in rules {
        let simple_key = (strings(rule.get("nonResourceURLs")).is_empty()
            && strings(rule.get("apiGroups")).len() == 1
            && strings(rule.get("resources")).len() == 1
            && strings(rule.get("resourceNames")).len() <= 1)
            .then(|| {
                json!([
                    rule["apiGroups"],
                    rule["resources"],
                    rule.get("resourceNames")
                ])
            });
        let Some(key) = simple_key else {
            out.push(rule);
            continue;
        };
        match simple.iter_mut().find(|(k, _)| *k == key) {
            Some((_, merged)) => {
                let verbs = strings(rule.get("verbs"));
                if let Some(list) = merged["verbs"].as_array_mut() {
                    list.extend(verbs.into_iter().map(Value::String));
                }
            }
            None => simple.push((key, rule)),
        }
    }
    out.extend(simple.into_iter().map(|(_, r)| r));
    out
}

/// `rbacv1helpers.CompactString`: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
fn compact_string(rule: &Value) -> String {
    let parts: Vec<String> = [
        ("APIGroups", "apiGroups"),
        ("Resources", "resources"),
        ("NonResourceURLs", "nonResourceURLs"),
        ("ResourceNames", "resourceNames"),
        ("Verbs", "verbs"),
    ]
    .into_iter()
    .filter_map(|(label, key)| {
        let list = strings(rule.get(key));
        (!list.is_empty()).then(|| {
            let quoted: Vec<String> = list.iter().map(|s| go_quote(s)).collect();
            format!("{label}:[{}]", quoted.join(" "))
        })
    })
    .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
