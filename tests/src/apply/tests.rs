//! Tests of [`super`]: server-side apply against a small [`MergeKeys`]:
//! ownership, conflicts and their messages, forcing, pruning, list merging
//! and the managedFields of ordinary writes.

use super::*;
use crate::merge_keys::ListStrategy;
use serde_json::json;

/// Containers keyed by name, their ports by (containerPort, protocol),
/// finalizers a set, everything else atomic.
struct Keys;
impl MergeKeys for Keys {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy {
        match path {
            [.., "containers"] => ListStrategy::Map(vec!["name".into()]),
            [.., "containers", "ports"] => {
                ListStrategy::Map(vec!["containerPort".into(), "protocol".into()])
            }
            ["metadata", "finalizers"] => ListStrategy::Set,
            _ => ListStrategy::Atomic,
        }
    }
}

const T1: &str = "2024-01-01T00:00:01Z";
const T2: &str = "2024-01-01T00:00:02Z";
const T3: &str = "2024-01-01T00:00:03Z";

fn run(live: Option<&Value>, applied: &Value, mgr: &str, force: bool) -> Result<Value, ApplyError> {
    run_at(live, applied, mgr, force, None, T2)
}

fn run_at(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
    now: &str,
) -> Result<Value, ApplyError> {
    apply(&ApplyRequest {
        live,
        applied,
        manager,
        force,
        subresource,
        now,
        keys: &Keys,
    })
}

fn create(applied: &Value, manager: &str) -> Value {
    run_at(None, applied, manager, false, None, T1).unwrap()
}

fn update(old: &Value, new: &Value, manager: &str, now: &str) -> Value {
    let mut new = new.clone();
    record_update(Some(old), &mut new, manager, None, now, &Keys);
    new
}

fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == op)
}

fn fields<'a>(obj: &'a Value, manager: &str, op: &str) -> &'a Value {
    &entry(obj, manager, op).unwrap()["fieldsV1"]
}

fn conflict_message(r: Result<Value, ApplyError>) -> String {
    match r {
        Err(e @ ApplyError::Conflict { .. }) => e.message(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "cm", "namespace": "ns"}, "data": data})
}

fn deploy(replicas: i64, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "d", "namespace": "ns", "labels": {"app": "x"}},
           "spec": {"replicas": replicas,
                    "template": {"spec": {"containers": containers}}}})
}

#[test]
fn create_takes_the_applied_object_and_records_an_apply_entry() {
    let cfg = deploy(1, json!([{"name": "c", "image": "nginx:1"}]));
    let out = create(&cfg, "mgr");
    assert_eq!(without_managed_fields(&out), cfg);
    assert_eq!(
        out["metadata"]["managedFields"],
        json!([{"manager": "mgr", "operation": "Apply", "apiVersion": "apps/v1",
                "time": T1, "fieldsType": "FieldsV1", "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}])
    );
}

#[test]
fn reapplying_the_same_config_is_an_exact_no_op() {
    let cfg = deploy(1, json!([{"name": "c", "image": "nginx:1"}]));
    let live = create(&cfg, "mgr");
    let again = run_at(Some(&live), &cfg, "mgr", false, None, T3).unwrap();
    assert_eq!(again, live);
    assert_eq!(entry(&again, "mgr", "Apply").unwrap()["time"], T1);
    // Server-owned metadata in the body changes nothing either.
    let mut with_meta = cfg.clone();
    with_meta["metadata"]["resourceVersion"] = json!("999");
    with_meta["metadata"]["uid"] = json!("other");
    assert_eq!(run(Some(&live), &with_meta, "mgr", false).unwrap(), live);
}

#[test]
fn omitted_fields_are_removed_and_time_moves() {
    let live = create(&cm(json!({"a": "1", "b": "2"})), "mgr");
    let mut cfg = cm(json!({"a": "1"}));
    cfg["metadata"]["labels"] = json!({"x": "1", "y": "2"});
    let live = run(Some(&live), &cfg, "mgr", false).unwrap();
    assert_eq!(live["data"], json!({"a": "1"}));
    cfg["metadata"]["labels"] = json!({"x": "1"});
    let out = run_at(Some(&live), &cfg, "mgr", false, None, T3).unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
    assert_eq!(
        *fields(&out, "mgr", "Apply"),
        json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}})
    );
    assert_eq!(entry(&out, "mgr", "Apply").unwrap()["time"], T3);
    // Dropping the last label drops the emptied map; metadata stays.
    let out = run(Some(&out), &cm(json!({"a": "1"})), "mgr", false).unwrap();
    assert!(out["metadata"].get("labels").is_none());
    assert_eq!(out["metadata"]["name"], "cm");
}

#[test]
fn two_appliers_conflict_with_the_apiserver_message() {
    let live = create(&cm(json!({"k": "1", "k2": "1"})), "a");
    let r = run(Some(&live), &cm(json!({"k": "2"})), "b", false);
    let Err(err) = r else {
        panic!("expected conflict")
    };
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"a\": .data.k"
    );
    assert_eq!(
        err.causes(),
        vec![(
            "FieldManagerConflict".into(),
            "conflict with \"a\"".into(),
            ".data.k".into()
        )]
    );
    let r = run(Some(&live), &cm(json!({"k": "2", "k2": "2"})), "b", false);
    assert_eq!(
        conflict_message(r),
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .data.k\n- .data.k2"
    );
}

#[test]
fn conflicts_group_by_sorted_manager() {
    let live = create(&cm(json!({"k": "1"})), "zed");
    let mut edited = live.clone();
    edited["data"]["k2"] = json!("1");
    let live = update(&live, &edited, "kubectl-edit", T2);
    let r = run(Some(&live), &cm(json!({"k": "2", "k2": "2"})), "b", false);
    assert_eq!(
        conflict_message(r),
        "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using v1:\n- .data.k2\n\
         conflicts with \"zed\":\n- .data.k"
    );
}

#[test]
fn force_transfers_ownership() {
    let live = create(&cm(json!({"k": "1", "keep": "1"})), "a");
    let out = run(Some(&live), &cm(json!({"k": "2"})), "b", true).unwrap();
    assert_eq!(out["data"], json!({"k": "2", "keep": "1"}));
    assert_eq!(
        *fields(&out, "a", "Apply"),
        json!({"f:data": {"f:keep": {}}})
    );
    assert_eq!(*fields(&out, "b", "Apply"), json!({"f:data": {"f:k": {}}}));
    let r = run(Some(&out), &cm(json!({"k": "1", "keep": "1"})), "a", false);
    assert_eq!(
        conflict_message(r),
        "Apply failed with 1 conflict: conflict with \"b\": .data.k"
    );
    // A manager left with nothing loses its entry.
    let out = run(Some(&out), &cm(json!({"keep": "3"})), "b", true).unwrap();
    assert!(entry(&out, "a", "Apply").is_none());
}

#[test]
fn an_update_manager_conflicts_with_an_applier() {
    let live = create(&deploy(1, json!([{"name": "c", "image": "i"}])), "a");
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(3);
    let live = update(&live, &edited, "kubectl-edit", T2);
    assert_eq!(
        *entry(&live, "kubectl-edit", "Update").unwrap(),
        json!({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
               "time": T2, "fieldsType": "FieldsV1",
               "fieldsV1": {"f:spec": {"f:replicas": {}}}})
    );
    assert!(
        fields(&live, "a", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    let r = run(
        Some(&live),
        &deploy(1, json!([{"name": "c", "image": "i"}])),
        "a",
        false,
    );
    let msg = conflict_message(r);
    assert_eq!(
        msg,
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
    );
    // Applying the value that is already there shares ownership instead.
    let out = run(
        Some(&live),
        &deploy(3, json!([{"name": "c", "image": "i"}])),
        "a",
        false,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(
        fields(&out, "a", "Apply")["f:spec"]
            .get("f:replicas")
            .is_some()
    );
    assert!(
        fields(&out, "kubectl-edit", "Update")["f:spec"]
            .get("f:replicas")
            .is_some()
    );
    // Entries sort Apply before Update.
    assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
}

#[test]
fn shared_ownership_keeps_a_field_until_its_last_applier_drops_it() {
    let live = create(&cm(json!({"k": "v", "a": "1"})), "a");
    let live = run(Some(&live), &cm(json!({"k": "v"})), "b", false).unwrap();
    assert_eq!(*fields(&live, "b", "Apply"), json!({"f:data": {"f:k": {}}}));
    let again = run_at(Some(&live), &cm(json!({"k": "v"})), "b", false, None, T3);
    assert_eq!(again.unwrap(), live);
    let live = run(Some(&live), &cm(json!({"a": "1"})), "a", false).unwrap();
    assert_eq!(live["data"], json!({"k": "v", "a": "1"}));
    assert_eq!(*fields(&live, "a", "Apply"), json!({"f:data": {"f:a": {}}}));
    // An empty map would be owned itself: omit `data` entirely.
    let mut bare = cm(json!({}));
    bare.as_object_mut().unwrap().remove("data");
    let live = run(Some(&live), &bare, "b", false).unwrap();
    assert_eq!(live["data"], json!({"a": "1"}));
    assert!(entry(&live, "b", "Apply").is_none());
}

#[test]
fn pruning_spares_what_others_own_below() {
    let obj = |meta: Value, spec: Value| json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": meta, "spec": spec});
    // "a" owned the (empty) labels map itself, "b" a label inside it.
    let live = create(
        &obj(json!({"name": "w", "labels": {}}), json!({"n": 1})),
        "a",
    );
    let b = obj(json!({"name": "w", "labels": {"x": "1"}}), json!({"n": 1}));
    let live = run(Some(&live), &b, "b", false).unwrap();
    let out = run(
        Some(&live),
        &obj(json!({"name": "w"}), json!({"n": 1})),
        "a",
        false,
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
    // An emptied map that an updater created stays (empty).
    let mut new = out.clone();
    new["spec"]["foo"] = json!({});
    let live = update(&out, &new, "u", T2);
    let with_bar = obj(json!({"name": "w"}), json!({"n": 1, "foo": {"bar": 1}}));
    let live = run(Some(&live), &with_bar, "a", false).unwrap();
    let out = run(
        Some(&live),
        &obj(json!({"name": "w"}), json!({"n": 1})),
        "a",
        false,
    )
    .unwrap();
    assert_eq!(out["spec"], json!({"n": 1, "foo": {}}));
}

#[test]
fn associative_lists_merge_by_key() {
    let live = create(&deploy(1, json!([{"name": "c1", "image": "one"}])), "a");
    let mut cfg_b = deploy(1, json!([{"name": "c2", "image": "two"}]));
    cfg_b["spec"].as_object_mut().unwrap().remove("replicas");
    let live = run(Some(&live), &cfg_b, "b", false).unwrap();
    let names: Vec<&Value> = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, [&json!("c1"), &json!("c2")]);
    assert!(
        fields(&live, "b", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]
            .get("k:{\"name\":\"c2\"}")
            .is_some()
    );
    let mut steal = cfg_b.clone();
    steal["spec"]["template"]["spec"]["containers"] = json!([{"name": "c1", "image": "mine"}]);
    assert_eq!(
        conflict_message(run(Some(&live), &steal, "b", false)),
        "Apply failed with 1 conflict: conflict with \"a\": \
         .spec.template.spec.containers[name=\"c1\"].image"
    );
    // "a" stops applying its container: it goes, "b"'s stays.
    let mut cfg_a = deploy(1, json!([]));
    cfg_a["spec"].as_object_mut().unwrap().remove("template");
    let out = run(Some(&live), &cfg_a, "a", false).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c2", "image": "two"}])
    );
}

#[test]
fn atomic_lists_are_replaced_and_owned_whole() {
    let obj = |items: Value| {
        json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
               "spec": {"items": items}})
    };
    let live = create(&obj(json!(["a", "b"])), "a");
    assert_eq!(
        *fields(&live, "a", "Apply"),
        json!({"f:spec": {"f:items": {}}})
    );
    let live = run(Some(&live), &obj(json!(["c"])), "a", false).unwrap();
    assert_eq!(live["spec"]["items"], json!(["c"]));
    assert_eq!(
        conflict_message(run(Some(&live), &obj(json!(["d"])), "b", false)),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.items"
    );
}

#[test]
fn set_lists_union_and_prune_by_value() {
    let obj = |f: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "cm", "finalizers": f}})
    };
    let live = create(&obj(json!(["a"])), "x");
    let live = run(Some(&live), &obj(json!(["b"])), "y", false).unwrap();
    assert_eq!(live["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        *fields(&live, "y", "Apply"),
        json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}})
    );
    let out = run(Some(&live), &obj(json!([])), "y", false).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
}

#[test]
fn explicit_null_removes_a_field_and_can_conflict() {
    let live = create(&cm(json!({"k": "1", "j": "1"})), "a");
    let r = run(Some(&live), &cm(json!({"k": null})), "b", false);
    assert_eq!(
        conflict_message(r),
        "Apply failed with 1 conflict: conflict with \"a\": .data.k"
    );
    let out = run(Some(&live), &cm(json!({"k": null, "j": "1"})), "a", false).unwrap();
    assert_eq!(out["data"], json!({"j": "1"}));
}

#[test]
fn status_subresource_entries_are_separate() {
    let obj = |ready: bool| {
        json!({"apiVersion": "x.io/v1", "kind": "W",
                                    "metadata": {"name": "w"}, "status": {"ready": ready}})
    };
    let live = create(
        &json!({"apiVersion": "x.io/v1", "kind": "W",
                              "metadata": {"name": "w"}, "spec": {"a": 1}}),
        "ctl",
    );
    let live = run_at(Some(&live), &obj(true), "ctl", false, Some("status"), T2).unwrap();
    let e = live["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    let status = e.iter().find(|e| e.get("subresource").is_some()).unwrap();
    assert_eq!(status["subresource"], "status");
    assert_eq!(status["fieldsV1"], json!({"f:status": {"f:ready": {}}}));
    let r = run_at(Some(&live), &obj(false), "other", false, Some("status"), T3);
    assert_eq!(
        conflict_message(r),
        "Apply failed with 1 conflict: conflict with \"ctl\" with subresource \"status\": .status.ready"
    );
    // record_update on /status carries the subresource as well.
    let mut new = live.clone();
    new["status"]["ready"] = json!(false);
    record_update(Some(&live), &mut new, "kube-rs", Some("status"), T3, &Keys);
    let e = entry(&new, "kube-rs", "Update").unwrap();
    assert_eq!(e["subresource"], "status");
}

#[test]
fn record_update_tracks_creation_changes_and_removals() {
    let mut obj = json!({"apiVersion": "x.io/v1", "kind": "W",
        "metadata": {"name": "w", "uid": "u1", "resourceVersion": "1", "labels": {"app": "x"}},
        "spec": {"a": 1, "b": {"c": 2}}});
    record_update(None, &mut obj, "kubectl-create", None, T1, &Keys);
    assert_eq!(
        *fields(&obj, "kubectl-create", "Update"),
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
               "f:spec": {".": {}, "f:a": {}, "f:b": {".": {}, "f:c": {}}}})
    );
    // Nothing changed: managedFields identical, time kept.
    let mut same = obj.clone();
    same["metadata"]["resourceVersion"] = json!("2");
    let same = update(&obj, &same, "kubectl-create", T2);
    assert_eq!(
        same["metadata"]["managedFields"],
        obj["metadata"]["managedFields"]
    );
    // Another manager changes one field and removes another.
    let mut new = obj.clone();
    new["spec"]["a"] = json!(5);
    new["spec"].as_object_mut().unwrap().remove("b");
    let new = update(&obj, &new, "kube-rs", T2);
    assert_eq!(
        *fields(&new, "kube-rs", "Update"),
        json!({"f:spec": {"f:a": {}}})
    );
    assert_eq!(
        *fields(&new, "kubectl-create", "Update"),
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {}})
    );
    // Resetting managedFields on an existing object stops tracking.
    let mut reset = new.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["spec"]["a"] = json!(6);
    let reset = update(&new, &reset, "x", T3);
    assert!(reset["metadata"].get("managedFields").is_none());
}

#[test]
fn untracked_objects_get_a_before_first_apply_owner() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "cm", "uid": "u"}, "data": {"k": "1"}});
    let r = run(Some(&live), &cm(json!({"k": "2"})), "a", false);
    assert_eq!(
        conflict_message(r),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.k"
    );
    let out = run(Some(&live), &cm(json!({"k": "1"})), "a", false).unwrap();
    assert!(entry(&out, "before-first-apply", "Update").is_some());
    assert_eq!(out["metadata"]["uid"], "u");
}

#[test]
fn kubectl_takes_over_from_client_side_apply() {
    let last = r#"{"apiVersion":"v1","data":{"k":"1"},"kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns"}}"#;
    let mut obj = cm(json!({"k": "1"}));
    obj["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
    obj["metadata"]["uid"] = json!("u");
    record_update(None, &mut obj, "kubectl-client-side-apply", None, T1, &Keys);
    let r = run(Some(&obj), &cm(json!({"k": "2"})), "someone", false);
    assert_eq!(
        conflict_message(r),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.k"
    );
    let out = run(Some(&obj), &cm(json!({"k": "2"})), "kubectl", false).unwrap();
    assert_eq!(out["data"]["k"], "2");
    assert_eq!(
        *fields(&out, "kubectl", "Apply"),
        json!({"f:data": {"f:k": {}}})
    );
    let annotation = out["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap();
    let synced: Value = serde_json::from_str(annotation).unwrap();
    assert_eq!(synced, cm(json!({"k": "2"})));
    // A value edited since the last client-side apply is a real conflict.
    let mut edited = obj.clone();
    edited["data"]["k"] = json!("9");
    let edited = update(&obj, &edited, "kubectl-client-side-apply", T2);
    assert!(run(Some(&edited), &cm(json!({"k": "2"})), "kubectl", false).is_err());
}

#[test]
fn invalid_requests_are_rejected() {
    let good = cm(json!({"k": "1"}));
    let live = create(&good, "a");
    let invalid = |r: Result<Value, ApplyError>| match r {
        Err(ApplyError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(invalid(run(None, &json!([1]), "a", false)).contains("must be an object"));
    assert!(invalid(run(None, &good, "", false)).contains("fieldManager: Required value"));
    let mut mf = good.clone();
    mf["metadata"]["managedFields"] = json!([]);
    assert_eq!(
        invalid(run(None, &mf, "a", false)),
        "metadata.managedFields must be nil"
    );
    let mut v = good.clone();
    v["apiVersion"] = json!("v2");
    assert_eq!(
        invalid(run(Some(&live), &v, "a", false)),
        "Incorrect version specified in apply patch. Specified patch version: v2, expected: v1"
    );
    let mut n = good.clone();
    n["metadata"]["name"] = json!("other");
    assert!(invalid(run(Some(&live), &n, "a", false)).contains("does not match the name"));
    let dup = deploy(1, json!([{"name": "c"}, {"name": "c"}]));
    assert_eq!(
        invalid(run(None, &dup, "a", false)),
        "failed to create typed patch object: .spec.template.spec.containers: \
         duplicate entries for key [name=\"c\"]"
    );
    let nokey = deploy(1, json!([{"image": "c"}]));
    assert!(invalid(run(None, &nokey, "a", false)).contains("omits all key fields"));
    let ApplyError::Invalid(_) = run(None, &json!({"kind": "X"}), "a", false).unwrap_err() else {
        panic!()
    };
}

#[test]
fn multi_key_items_print_in_kubernetes_notation() {
    let ports = |p: i64| {
        deploy(
            1,
            json!([{"name": "c", "ports": [
        {"containerPort": 80, "protocol": "TCP", "hostPort": p}]}]),
        )
    };
    let live = create(&ports(1), "a");
    let c = &fields(&live, "a", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]
        ["f:ports"];
    assert!(
        c.get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some()
    );
    let mut cfg = ports(2);
    cfg["metadata"].as_object_mut().unwrap().remove("labels");
    assert_eq!(
        conflict_message(run(Some(&live), &cfg, "b", false)),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.template.spec.containers\
         [name=\"c\"].ports[containerPort=80,protocol=\"TCP\"].hostPort"
    );
}

#[test]
fn malformed_input_never_panics() {
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "managedFields": [{"manager": 1}, "junk",
            {"manager": "m", "operation": "Apply", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"bad": {}}}]},
        "spec": {"template": {"spec": {"containers": [1, null, {"x": 1}]}}}});
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                     "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
    // Undecodable entries are dropped, so the fields fall to
    // "before-first-apply"; the unkeyable list is then owned whole.
    assert!(run(Some(&live), &cfg, "a", false).is_err());
    let out = run(Some(&live), &cfg, "a", true).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c"}])
    );
    let mut new = json!("not an object");
    record_update(Some(&live), &mut new, "x", None, T1, &Keys);
    let mut new = live.clone();
    new["metadata"] = json!(5);
    record_update(Some(&live), &mut new, "x", None, T1, &Keys);
}
