//! The store as an RBAC source: a change to any RBAC object decides the very next
//! request, although compiled ClusterRole rules are reused between requests.

use std::convert::Infallible;

use serde_json::{Value, json};

use crate::rbac::{self, Attributes, UserInfo};
use crate::store::{Change, Store};

const GROUP: &str = "rbac.authorization.k8s.io";

fn put(store: &Store, plural: &str, object: Value) {
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    let key = format!("{GROUP}/{plural}");
    store
        .mutate(&key, "", &name, |_, _| {
            Ok::<_, Infallible>(Change::Put(object))
        })
        .unwrap();
}

fn delete(store: &Store, plural: &str, name: &str) {
    let key = format!("{GROUP}/{plural}");
    store
        .mutate(&key, "", name, |_, _| Ok::<_, Infallible>(Change::Delete))
        .unwrap();
}

fn cluster_role(name: &str, labels: Value, verbs: &[&str], aggregate: Option<&str>) -> Value {
    let mut role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": [{"verbs": verbs, "apiGroups": [""], "resources": ["configmaps"]}]});
    if let Some(label) = aggregate {
        let selector = json!({"matchLabels": {label: "true"}});
        role["aggregationRule"] = json!({"clusterRoleSelectors": [selector]});
        role["rules"] = json!([]);
    }
    role
}

fn binding(name: &str, role: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "namespace": "ns", "name": "sa"}]})
}

fn may(store: &Store, verb: &str) -> bool {
    let attrs = Attributes {
        verb: verb.into(),
        resource: "configmaps".into(),
        namespace: "ns".into(),
        resource_request: true,
        ..Attributes::default()
    };
    rbac::authorize(&UserInfo::service_account("ns", "sa"), &attrs, store)
}

#[test]
fn a_change_to_a_cluster_role_or_binding_decides_the_next_request() {
    let store = Store::in_memory();
    put(
        &store,
        "clusterroles",
        cluster_role("reader", json!({}), &["get"], None),
    );
    assert!(!may(&store, "get"), "no binding yet");
    put(&store, "clusterrolebindings", binding("reader", "reader"));
    assert!(may(&store, "get"));
    assert!(
        may(&store, "get"),
        "the same answer from the compiled rules"
    );
    assert!(!may(&store, "list"));

    let role = cluster_role("reader", json!({}), &["get", "list"], None);
    put(&store, "clusterroles", role);
    assert!(may(&store, "list"), "the widened role counts at once");
    put(
        &store,
        "clusterroles",
        cluster_role("reader", json!({}), &["watch"], None),
    );
    assert!(!may(&store, "get"), "the narrowed role counts at once");
    delete(&store, "clusterroles", "reader");
    assert!(!may(&store, "watch"), "a deleted role grants nothing");
    put(
        &store,
        "clusterroles",
        cluster_role("reader", json!({}), &["watch"], None),
    );
    assert!(may(&store, "watch"));
    delete(&store, "clusterrolebindings", "reader");
    assert!(!may(&store, "watch"), "a deleted binding grants nothing");
}

#[test]
fn a_relabelled_cluster_role_changes_the_aggregate_at_once() {
    let store = Store::in_memory();
    let label = "example.com/aggregate-to-reader";
    put(
        &store,
        "clusterroles",
        cluster_role("agg", json!({}), &[], Some(label)),
    );
    put(&store, "clusterrolebindings", binding("agg", "agg"));
    assert!(!may(&store, "get"), "nothing aggregated yet");
    let part = |value: &str| cluster_role("part", json!({label: value}), &["get"], None);
    put(&store, "clusterroles", part("true"));
    assert!(
        may(&store, "get"),
        "a newly labelled role is aggregated at once"
    );
    put(&store, "clusterroles", part("false"));
    assert!(!may(&store, "get"), "an unlabelled role drops out at once");
}
