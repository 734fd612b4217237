//! Tests of [`super`]: the escalation and bind checks over the bootstrap roles plus
//! the bindings each test adds, with upstream's texts.

use super::*;
use crate::rbac::tests::{Mem, binding, role};

fn alice() -> UserInfo {
    UserInfo::service_account("team", "alice")
}

/// Alice may manage Roles and RoleBindings and read ConfigMaps in `team`.
fn cluster() -> Mem {
    let mut m = Mem::bootstrap();
    m.add(role(
        "team",
        "manager",
        &[],
        &[
            "R W ; rbac.authorization.k8s.io ; roles rolebindings",
            "get list ; - ; configmaps",
        ],
    ));
    m.add(binding("team", "Role/manager", "ServiceAccount:team/alice"));
    m
}

fn new_role(ns: &str, name: &str, rules: &[&str]) -> Value {
    role(ns, name, &[], rules)
}

#[test]
fn a_role_within_ones_rights_is_allowed_and_one_beyond_them_refused() {
    let m = cluster();
    let own = new_role("team", "reader", &["get ; - ; configmaps"]);
    assert_eq!(
        check_write(&alice(), "roles", "team", "", &own, None, &m),
        Ok(())
    );
    let secrets = new_role("team", "thief", &["get list ; - ; secrets configmaps"]);
    let err = check_write(&alice(), "roles", "team", "", &secrets, None, &m).unwrap_err();
    assert_eq!(
        err,
        "roles.rbac.authorization.k8s.io \"thief\" is forbidden: user \"system:serviceaccount:team:alice\" \
         (groups=[\"system:serviceaccounts\" \"system:serviceaccounts:team\" \"system:authenticated\"]) \
         is attempting to grant RBAC permissions not currently held:\n\
         {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}"
    );
}

#[test]
fn resource_names_subresource_wildcards_and_non_resource_urls_are_covered_as_upstream() {
    let mut m = cluster();
    m.add(role(
        "team",
        "named",
        &[],
        &["get ; - ; secrets ; db", "get ; - ; */status"],
    ));
    m.add(binding("team", "Role/named", "ServiceAccount:team/alice"));
    let named = new_role("team", "x", &["get ; - ; secrets ; db"]);
    assert_eq!(
        check_write(&alice(), "roles", "team", "", &named, None, &m),
        Ok(())
    );
    // A rule without names grants every name: more than `db`.
    let all = new_role("team", "x", &["get ; - ; secrets"]);
    assert!(check_write(&alice(), "roles", "team", "", &all, None, &m).is_err());
    let other = new_role("team", "x", &["get ; - ; secrets ; db other"]);
    let err = check_write(&alice(), "roles", "team", "", &other, None, &m).unwrap_err();
    assert!(err.ends_with("{APIGroups:[\"\"], Resources:[\"secrets\"], ResourceNames:[\"other\"], Verbs:[\"get\"]}"), "{err}");
    let status = new_role("team", "x", &["get ; - ; pods/status"]);
    assert_eq!(
        check_write(&alice(), "roles", "team", "", &status, None, &m),
        Ok(())
    );
    // Cluster scope sees only ClusterRoleBindings: the discovery URLs, nothing in team.
    let urls = role("", "urls", &[], &["get ; /healthz /api/*"]);
    assert_eq!(
        check_write(&alice(), "clusterroles", "", "", &urls, None, &m),
        Ok(())
    );
    let cm = role("", "cm", &[], &["get ; - ; configmaps"]);
    assert!(check_write(&alice(), "clusterroles", "", "", &cm, None, &m).is_err());
}

#[test]
fn escalate_and_bind_verbs_lift_the_checks() {
    let mut m = cluster();
    let secrets = new_role("team", "thief", &["get ; - ; secrets"]);
    m.add(role(
        "team",
        "escalator",
        &[],
        &["escalate ; rbac.authorization.k8s.io ; roles"],
    ));
    m.add(binding(
        "team",
        "Role/escalator",
        "ServiceAccount:team/alice",
    ));
    assert_eq!(
        check_write(&alice(), "roles", "team", "", &secrets, None, &m),
        Ok(())
    );

    let mut admin = binding("team", "ClusterRole/admin", "ServiceAccount:team/bob");
    admin["metadata"]["name"] = json!("bob-admin");
    let err = check_write(&alice(), "rolebindings", "team", "", &admin, None, &m).unwrap_err();
    assert!(
        err.starts_with("rolebindings.rbac.authorization.k8s.io \"bob-admin\" is forbidden: user \"system:serviceaccount:team:alice\""),
        "{err}"
    );
    // `bind` on that one ClusterRole name (resourceNames honoured).
    m.add(role(
        "team",
        "binder",
        &[],
        &["bind ; rbac.authorization.k8s.io ; clusterroles ; admin"],
    ));
    m.add(binding("team", "Role/binder", "ServiceAccount:team/alice"));
    assert_eq!(
        check_write(&alice(), "rolebindings", "team", "", &admin, None, &m),
        Ok(())
    );
    let mut edit = admin.clone();
    edit["roleRef"]["name"] = json!("edit");
    assert!(check_write(&alice(), "rolebindings", "team", "", &edit, None, &m).is_err());
    // Binding a role one holds entirely is allowed without `bind`.
    let mut view_cm = binding("team", "Role/manager", "ServiceAccount:team/bob");
    view_cm["metadata"]["name"] = json!("bob-manager");
    assert_eq!(
        check_write(&alice(), "rolebindings", "team", "", &view_cm, None, &m),
        Ok(())
    );
    let mut missing = binding("team", "Role/nope", "ServiceAccount:team/bob");
    missing["metadata"]["name"] = json!("b");
    assert_eq!(
        check_write(&alice(), "rolebindings", "team", "", &missing, None, &m).unwrap_err(),
        "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: role.rbac.authorization.k8s.io \"nope\" not found"
    );
}

#[test]
fn masters_gc_only_updates_and_aggregation_rules() {
    let m = cluster();
    let masters = UserInfo {
        name: "admin".into(),
        groups: vec![PRIVILEGED_GROUP.into()],
    };
    let everything = role("", "all", &[], &["* ; * ; *"]);
    assert_eq!(
        check_write(&masters, "clusterroles", "", "", &everything, None, &m),
        Ok(())
    );
    let mut mine = new_role("team", "mine", &["get ; - ; secrets"]);
    let mut with_owner = mine.clone();
    with_owner["metadata"]["ownerReferences"] = json!([{"name": "x"}]);
    assert_eq!(
        check_write(&alice(), "roles", "team", "", &with_owner, Some(&mine), &m),
        Ok(())
    );
    mine["metadata"]["labels"] = json!({"a": "b"});
    assert!(check_write(&alice(), "roles", "team", "", &mine, Some(&with_owner), &m).is_err());
    let mut agg = role("", "agg", &[], &[]);
    agg["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]});
    assert_eq!(
        check_write(&alice(), "clusterroles", "", "", &agg, None, &m).unwrap_err(),
        "clusterroles.rbac.authorization.k8s.io \"agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
    );
}

/// `escalate` limited by resourceNames counts only for requests naming the role in
/// their URL (an update, or an apply that creates), never for a POST.
#[test]
fn escalate_on_one_role_name_needs_the_name_in_the_request() {
    let mut m = cluster();
    m.add(role(
        "team",
        "escalator",
        &[],
        &["escalate ; rbac.authorization.k8s.io ; roles ; vcluster"],
    ));
    m.add(binding(
        "team",
        "Role/escalator",
        "ServiceAccount:team/alice",
    ));
    let vcluster = new_role("team", "vcluster", &["get ; - ; pods/exec"]);
    assert!(check_write(&alice(), "roles", "team", "", &vcluster, None, &m).is_err());
    assert_eq!(
        check_write(&alice(), "roles", "team", "vcluster", &vcluster, None, &m),
        Ok(())
    );
    let other = new_role("team", "other", &["get ; - ; pods/exec"]);
    assert!(check_write(&alice(), "roles", "team", "other", &other, None, &m).is_err());
}
