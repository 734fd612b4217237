//! Tests of [`super`]: the RFC examples of merge and JSON patch, JSON Pointer
//! escaping, and strategic merge patch directives over built-in and CRD
//! merge keys, including its error paths.

use super::strategic::is_directive_key;
use super::*;
use crate::merge_keys::{BuiltinMergeKeys, SchemaMergeKeys};
use serde_json::json;

/// Fails if any key that looks like an SMP directive survived.
fn assert_no_directives(value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                assert!(!is_directive_key(k), "directive {k} left in result");
                assert_no_directives(v);
            }
        }
        Value::Array(list) => list.iter().for_each(assert_no_directives),
        _ => {}
    }
}

fn smp(kind: (&str, &str), target: Value, patch: Value) -> Value {
    let mut target = target;
    let keys = BuiltinMergeKeys::for_kind(kind.0, kind.1);
    strategic_merge_patch(&mut target, &patch, &keys).expect("patch applies");
    assert_no_directives(&target);
    target
}

const DEPLOY: (&str, &str) = ("apps", "Deployment");

fn deployment(containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
}

fn containers(obj: &Value) -> &Value {
    &obj["spec"]["template"]["spec"]["containers"]
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("a name"))
        .collect()
}

// ---- JSON merge patch ----

#[test]
fn merge_patch_rfc7386_examples() {
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
        (json!({"a": "b"}), json!("c"), json!("c")),
    ];
    for (mut target, patch, want) in cases {
        merge_patch(&mut target, &patch);
        assert_eq!(target, want, "patch {patch}");
    }
}

#[test]
fn merge_patch_status_and_annotations() {
    let mut obj = json!({"metadata": {"name": "w", "annotations": {"a": "1", "b": "2"}},
                         "status": {"ready": false, "phase": "Pending"}});
    merge_patch(
        &mut obj,
        &json!({"status": {"ready": true}, "metadata": {"annotations": {"a": null}}}),
    );
    assert_eq!(obj["status"], json!({"ready": true, "phase": "Pending"}));
    assert_eq!(obj["metadata"]["annotations"], json!({"b": "2"}));
}

// ---- JSON patch ----

#[test]
fn kube_runtime_finalizer_sequence() {
    let mut obj = json!({"metadata": {"name": "w", "namespace": "default"}, "spec": {}});
    // First finalizer: the test runs against an absent member.
    let first = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                       {"op": "add", "path": "/metadata/finalizers", "value": ["a.example.com/x"]}]);
    json_patch(&mut obj, &first).expect("first finalizer");
    assert_eq!(obj["metadata"]["finalizers"], json!(["a.example.com/x"]));
    // Replaying it now fails the test: the list exists.
    let err = json_patch(&mut obj, &first).expect_err("second test-null");
    assert!(
        matches!(err, PatchError::TestFailed { index: 0, .. }),
        "{err}"
    );
    assert_eq!((err.http_code(), err.reason()), (422, "Invalid"));
    // Another finalizer: test the whole array, then append.
    let second = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["a.example.com/x"]},
                        {"op": "add", "path": "/metadata/finalizers/-", "value": "b.example.com/y"}]);
    json_patch(&mut obj, &second).expect("second finalizer");
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["a.example.com/x", "b.example.com/y"])
    );
    // Removal after cleanup: test the index, then remove it.
    let remove = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "a.example.com/x"},
                        {"op": "remove", "path": "/metadata/finalizers/0"}]);
    json_patch(&mut obj, &remove).expect("remove finalizer");
    assert_eq!(obj["metadata"]["finalizers"], json!(["b.example.com/y"]));
    // The same removal again: index 0 now holds another name.
    let before = obj.clone();
    assert!(matches!(
        json_patch(&mut obj, &remove),
        Err(PatchError::TestFailed { .. })
    ));
    assert_eq!(obj, before);
}

#[test]
fn test_null_needs_an_existing_parent() {
    let mut obj = json!({"metadata": {"finalizers": null}, "list": [1]});
    let ok = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]);
    json_patch(&mut obj, &ok).expect("explicit null equals null");
    for path in ["/nope/finalizers", "/list/5"] {
        let ops = json!([{"op": "test", "path": path, "value": null}]);
        let err = json_patch(&mut obj, &ops).expect_err(path);
        assert!(
            matches!(err, PatchError::NotApplicable { .. }),
            "{path}: {err}"
        );
        assert_eq!(err.http_code(), 422);
    }
    let ops = json!([{"op": "test", "path": "/metadata/missing", "value": "x"}]);
    assert!(matches!(
        json_patch(&mut obj, &ops),
        Err(PatchError::TestFailed { .. })
    ));
}

#[test]
fn json_patch_is_atomic() {
    let mut obj = json!({"a": 1, "b": [1, 2]});
    let before = obj.clone();
    let ops = json!([{"op": "replace", "path": "/a", "value": 2},
                     {"op": "add", "path": "/b/-", "value": 3},
                     {"op": "test", "path": "/a", "value": 1}]);
    assert!(json_patch(&mut obj, &ops).is_err());
    assert_eq!(obj, before);
    let ops = json!([{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/a"}]);
    let err = json_patch(&mut obj, &ops).expect_err("second remove");
    assert!(
        matches!(err, PatchError::NotApplicable { index: 1, .. }),
        "{err}"
    );
    assert_eq!(obj, before);
}

#[test]
fn json_patch_operations() {
    let mut obj = json!({"list": [1, 3], "m": {"x": 1}, "n": 1});
    let ops = json!([
        {"op": "add", "path": "/list/1", "value": 2},
        {"op": "add", "path": "/list/3", "value": 4},
        {"op": "add", "path": "/list/-", "value": 5},
        {"op": "add", "path": "/m/y", "value": {"deep": true}},
        {"op": "replace", "path": "/m/x", "value": 10},
        {"op": "copy", "from": "/m/y", "path": "/copied"},
        {"op": "move", "from": "/m/x", "path": "/moved"},
        {"op": "remove", "path": "/list/0"},
        {"op": "test", "path": "/n", "value": 1.0},
        {"op": "test", "path": "/copied", "value": {"deep": true}},
        {"op": "move", "from": "/n", "path": "/n"}
    ]);
    json_patch(&mut obj, &ops).expect("applies");
    assert_eq!(
        obj,
        json!({"list": [2, 3, 4, 5], "m": {"y": {"deep": true}}, "n": 1,
                           "copied": {"deep": true}, "moved": 10})
    );
    json_patch(
        &mut obj,
        &json!([{"op": "replace", "path": "", "value": [1]}]),
    )
    .expect("root");
    assert_eq!(obj, json!([1]));
    json_patch(&mut obj, &json!([])).expect("empty patch");
    assert_eq!(obj, json!([1]));
}

#[test]
fn json_pointer_escaping() {
    let mut obj = json!({"metadata": {"annotations": {"example.com/a": "1", "t~x": "2"}}});
    let ops = json!([
        {"op": "test", "path": "/metadata/annotations/example.com~1a", "value": "1"},
        {"op": "replace", "path": "/metadata/annotations/t~0x", "value": "3"},
        {"op": "add", "path": "/metadata/annotations/k8s.io~1b~0", "value": "4"}
    ]);
    json_patch(&mut obj, &ops).expect("escaped pointers");
    assert_eq!(
        obj["metadata"]["annotations"],
        json!({"example.com/a": "1", "t~x": "3", "k8s.io/b~": "4"})
    );
}

#[test]
fn json_patch_unapplicable_paths() {
    let obj = json!({"list": [1], "s": "x", "m": {}});
    for op in [
        json!({"op": "add", "path": "/list/2", "value": 0}),
        json!({"op": "add", "path": "/list/01", "value": 0}),
        json!({"op": "add", "path": "/missing/x", "value": 0}),
        json!({"op": "add", "path": "/s/x", "value": 0}),
        json!({"op": "remove", "path": "/list/1"}),
        json!({"op": "remove", "path": "/list/-"}),
        json!({"op": "remove", "path": ""}),
        json!({"op": "replace", "path": "/m/x", "value": 0}),
        json!({"op": "move", "from": "/m", "path": "/m/inner"}),
        json!({"op": "move", "from": "/nope", "path": "/x"}),
        json!({"op": "copy", "from": "/nope", "path": "/x"}),
    ] {
        let mut target = obj.clone();
        let err = json_patch(&mut target, &json!([op])).expect_err("must fail");
        assert!(
            matches!(err, PatchError::NotApplicable { .. }),
            "{op}: {err}"
        );
        assert_eq!((err.http_code(), err.reason()), (422, "Invalid"));
        assert_eq!(target, obj);
    }
}

#[test]
fn malformed_json_patches_are_bad_requests() {
    for ops in [
        json!({"op": "add"}),
        json!([1]),
        json!([{"path": "/a", "value": 1}]),
        json!([{"op": "frobnicate", "path": "/a"}]),
        json!([{"op": "add", "path": "/a"}]),
        json!([{"op": "test", "path": "/a"}]),
        json!([{"op": "add", "path": "a", "value": 1}]),
        json!([{"op": "add", "path": "/a~2", "value": 1}]),
        json!([{"op": "add", "path": "/a~", "value": 1}]),
        json!([{"op": "move", "path": "/a"}]),
        json!([{"op": "add", "path": 7, "value": 1}]),
    ] {
        let mut target = json!({});
        let err = json_patch(&mut target, &ops).expect_err("malformed");
        assert!(matches!(err, PatchError::Malformed(_)), "{ops}: {err}");
        assert_eq!((err.http_code(), err.reason()), (400, "BadRequest"));
    }
    let many = Value::Array(vec![json!({"op": "test", "path": "", "value": {}}); 10_001]);
    let err = json_patch(&mut json!({}), &many).expect_err("too many");
    assert_eq!(
        (err.http_code(), err.reason()),
        (413, "RequestEntityTooLarge")
    );
}

#[test]
fn numbers_compare_by_value() {
    assert!(json_equal(&json!(1), &json!(1.0)));
    assert!(json_equal(
        &json!({"a": [1, 2.5]}),
        &json!({"a": [1.0, 2.5]})
    ));
    assert!(!json_equal(&json!(-1), &json!(u64::MAX)));
    assert!(!json_equal(&json!(u64::MAX), &json!(u64::MAX - 1)));
    assert!(!json_equal(&json!(1), &json!("1")));
    assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
}

// ---- strategic merge patch ----

#[test]
fn kubectl_container_image_update() {
    let live = deployment(json!([
        {"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}],
         "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "busybox"}
    ]));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "c"}, {"name": "sidecar"}],
        "containers": [{"image": "nginx:2", "name": "c"}]}}}});
    let got = smp(DEPLOY, live, patch);
    assert_eq!(
        containers(&got),
        &json!([
            {"name": "c", "image": "nginx:2", "ports": [{"containerPort": 80}],
             "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "busybox"}
        ])
    );
    assert_eq!(got["spec"]["replicas"], json!(1));
}

#[test]
fn nested_keyed_lists_merge() {
    let live = deployment(json!([{"name": "c", "image": "x",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
        "volumeMounts": [{"mountPath": "/data", "name": "d"}],
        "args": ["--a", "--b"]}]));
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
        "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": true}],
        "args": ["--c"]}]}}}});
    let got = smp(DEPLOY, live, patch);
    let c = &containers(&got)[0];
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                                {"name": "C", "value": "3"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"},
                                  {"containerPort": 443}])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"mountPath": "/data", "name": "d", "readOnly": true}])
    );
    assert_eq!(c["args"], json!(["--c"]), "args are atomic");
}

#[test]
fn patch_delete_directives() {
    let live = deployment(
        json!([{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}}},
                                 {"name": "b", "image": "y"}]),
    );
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "delete", "name": "b"},
        {"name": "a", "resources": {"$patch": "delete"}}]}}}});
    let got = smp(DEPLOY, live, patch);
    assert_eq!(containers(&got), &json!([{"name": "a", "image": "x"}]));
    // Deleting an absent item or map is a no-op.
    let got = smp(
        DEPLOY,
        got,
        json!({"spec": {"template": {"spec": {
        "containers": [{"$patch": "delete", "name": "zzz"}], "affinity": {"$patch": "delete"}}}}}),
    );
    assert_eq!(containers(&got), &json!([{"name": "a", "image": "x"}]));
    assert!(got["spec"]["template"]["spec"].get("affinity").is_none());
}

#[test]
fn patch_replace_directives() {
    let live = deployment(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]));
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "n", "image": "z"}]}}}});
    let got = smp(DEPLOY, live.clone(), patch);
    assert_eq!(containers(&got), &json!([{"name": "n", "image": "z"}]));
    let patch = json!({"spec": {"$patch": "replace", "template": {"spec": {"containers": []}}}});
    let got = smp(DEPLOY, live, patch);
    assert_eq!(
        got["spec"],
        json!({"template": {"spec": {"containers": []}}})
    );
    let patch = json!({"spec": {"$patch": "merge", "replicas": 3}});
    assert_eq!(smp(DEPLOY, got, patch)["spec"]["replicas"], json!(3));
}

#[test]
fn set_element_order_reorders() {
    let live = deployment(
        json!([{"name": "a", "image": "1"}, {"name": "x", "image": "server"},
                                 {"name": "b", "image": "2"}]),
    );
    // Reorder only: the list itself is absent from the patch.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}});
    let got = smp(DEPLOY, live.clone(), patch);
    assert_eq!(names(containers(&got)), ["x", "b", "a"]);
    // A new item placed first; the server-only `x` stays before `b`.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "n"}, {"name": "a"}, {"name": "b"}],
        "containers": [{"name": "n", "image": "new"}]}}}});
    let got = smp(DEPLOY, live, patch);
    assert_eq!(names(containers(&got)), ["n", "a", "x", "b"]);
    // Primitive lists are ordered by value.
    let obj = json!({"metadata": {"finalizers": ["a", "b"]}});
    let patch = json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"],
                                    "finalizers": ["c"]}});
    let got = smp(("", "ConfigMap"), obj, patch);
    assert_eq!(got["metadata"]["finalizers"], json!(["c", "b", "a"]));
}

#[test]
fn set_element_order_must_agree_with_the_patch() {
    let live = deployment(json!([{"name": "a"}, {"name": "b"}]));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "1"}, {"name": "a", "image": "2"}]}}}});
    let mut target = live.clone();
    let keys = BuiltinMergeKeys::for_kind("apps", "Deployment");
    let err = strategic_merge_patch(&mut target, &patch, &keys).expect_err("order mismatch");
    assert_eq!(err.http_code(), 400, "{err}");
    assert_eq!(target, live);
}

#[test]
fn retain_keys_clears_other_fields() {
    let live = json!({"spec": {"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                                             "rollingUpdate": null}}});
    let got = smp(DEPLOY, live.clone(), patch);
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    // A volume switching its source, as kubectl sends it.
    let live = json!({"spec": {"template": {"spec": {"volumes": [
        {"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}}}});
    let patch = json!({"spec": {"template": {"spec": {"volumes": [
        {"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "name": "v"}]}}}});
    let got = smp(DEPLOY, live, patch);
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "emptyDir": {}}])
    );
    let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
    let keys = BuiltinMergeKeys::for_kind("apps", "Deployment");
    let mut target = json!({});
    let err = strategic_merge_patch(&mut target, &bad, &keys).expect_err("not retained");
    assert_eq!(err.reason(), "BadRequest");
}

#[test]
fn finalizers_union_and_delete_from_primitive_list() {
    let obj = json!({"metadata": {"name": "n", "finalizers": ["a", "b"]}});
    let got = smp(
        ("", "Secret"),
        obj,
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"],
                                    "finalizers": ["d"]}});
    let got = smp(("", "Secret"), got, patch);
    assert_eq!(got["metadata"]["finalizers"], json!(["b", "c", "d"]));
    // Deleting from an absent list does not create it.
    let got = smp(
        ("", "Secret"),
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(got, json!({"metadata": {}}));
}

#[test]
fn atomic_lists_nulls_and_annotations() {
    let last = r#"{"apiVersion":"apps/v1","kind":"Deployment"}"#;
    let live = json!({"metadata": {"name": "d", "labels": {"app": "x", "old": "y"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c"}],
            "tolerations": [{"key": "a"}, {"key": "b"}]}}}});
    let patch = json!({"metadata": {"labels": {"old": null, "new": "z"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
        "spec": {"template": {"spec": {"tolerations": [{"key": "c"}]}}}});
    let got = smp(DEPLOY, live, patch);
    assert_eq!(got["metadata"]["labels"], json!({"app": "x", "new": "z"}));
    assert_eq!(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        json!(last)
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "c"}])
    );
    let got = smp(
        DEPLOY,
        got,
        json!({"spec": {"template": {"spec": {"tolerations": null}}}}),
    );
    assert!(got["spec"]["template"]["spec"].get("tolerations").is_none());
}

#[test]
fn service_ports_and_owner_references() {
    let live = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
                      "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let patch = json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
                       "spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
    let got = smp(("", "Service"), live, patch);
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
    assert_eq!(
        got["metadata"]["ownerReferences"],
        json!([{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}])
    );
}

#[test]
fn new_values_lose_their_directives() {
    let patch = json!({"metadata": {"name": "d", "labels": {"a": "1", "gone": null}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}],
            "containers": [{"name": "c", "env": [{"name": "X", "value": "1"},
                                                 {"$patch": "delete", "name": "Y"}]}],
            "securityContext": {"$patch": "replace", "runAsUser": 1},
            "volumes": [{"$retainKeys": ["name", "emptyDir"], "name": "v", "emptyDir": {}}]}}}});
    let got = smp(DEPLOY, json!({}), patch);
    assert_eq!(
        got,
        json!({"metadata": {"name": "d", "labels": {"a": "1"}},
        "spec": {"template": {"spec": {
            "containers": [{"name": "c", "env": [{"name": "X", "value": "1"}]}],
            "securityContext": {"runAsUser": 1},
            "volumes": [{"name": "v", "emptyDir": {}}]}}}})
    );
}

#[test]
fn smp_errors_leave_the_target_alone() {
    let keys = BuiltinMergeKeys::for_kind("apps", "Deployment");
    let live = deployment(json!([{"name": "a"}]));
    let cases = [
        (json!([1]), 400),
        (json!({"$patch": "delete"}), 400),
        (json!({"spec": {"$patch": "frobnicate"}}), 400),
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            400,
        ),
        (
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": 1}}}}),
            400,
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
            400,
        ),
        (
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "x"}]}}}}),
            422,
        ),
        (
            json!({"spec": {"template": {"spec": {"containers": ["a"]}}}}),
            422,
        ),
        (json!({"metadata": {"finalizers": [["a"]]}}), 422),
    ];
    for (patch, code) in cases {
        let mut target = live.clone();
        let err = strategic_merge_patch(&mut target, &patch, &keys).expect_err("must fail");
        assert_eq!(err.http_code(), code, "{patch}: {err}");
        assert_eq!(target, live, "{patch}");
    }
}

#[test]
fn smp_with_a_crd_schema() {
    let keys = SchemaMergeKeys::new(json!({"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"items": {"type": "array",
            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
            "items": {"type": "object"}}}}}}));
    let mut obj = json!({"spec": {"items": [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]}});
    let patch = json!({"spec": {"items": [{"id": 2, "v": "B"}, {"id": 3}]}});
    strategic_merge_patch(&mut obj, &patch, &keys).expect("applies");
    assert_eq!(
        obj["spec"]["items"],
        json!([{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3}])
    );
}
