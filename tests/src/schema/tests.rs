//! Tests of [`super`] on KubeFlex's own ControlPlane CRD and small schemas:
//! one OpenAPI keyword, structural rule or CEL feature per case, checked
//! against the messages kube-apiserver prints.

use super::*;
use serde_json::json;

/// Sorted messages: Kubernetes' own order follows Go map iteration.
fn msgs(s: &Value, obj: Value, old: Option<Value>) -> Vec<String> {
    let mut m: Vec<String> = validate(s, &obj, old.as_ref())
        .iter()
        .map(FieldError::message)
        .collect();
    m.sort();
    m
}

fn crd() -> Value {
    let yaml =
        include_str!("../../../config/crd/bases/tenancy.kflex.kubestellar.org_controlplanes.yaml");
    let crd: Value = serde_saphyr::from_str(yaml).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn cp(spec: Value) -> Value {
    let meta = json!({"name": "cp1"});
    json!({"apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane", "metadata": meta, "spec": spec})
}

#[test]
fn controlplane_type_is_immutable() {
    let s = crd();
    assert_eq!(check_structural(&s), Vec::<String>::new());
    assert_eq!(compile_rules(&s), Vec::<String>::new());
    let (k8s, ocm) = (cp(json!({"type": "k8s"})), cp(json!({"type": "ocm"})));
    assert_eq!(msgs(&s, k8s.clone(), None), Vec::<String>::new());
    assert_eq!(msgs(&s, ocm.clone(), None), Vec::<String>::new());
    let errs = validate(&s, &ocm, Some(&k8s));
    assert_eq!(
        errs[0].message(),
        r#"spec.type: Invalid value: "string": type is immutable"#
    );
    assert_eq!((errs.len(), errs[0].reason()), (1, "FieldValueInvalid"));
    let mut relabeled = k8s.clone();
    relabeled["metadata"]["labels"] = json!({"a": "b"});
    assert_eq!(msgs(&s, relabeled, Some(k8s)), Vec::<String>::new());
}

#[test]
fn controlplane_schema_errors() {
    let s = crd();
    let not_checked = format!("<nil>: Invalid value: \"null\": {NOT_CHECKED}");
    let errs = validate(&s, &cp(json!({"type": "k9s"})), None);
    let want = r#"spec.type: Unsupported value: "k9s": supported values: "k8s", "ocm", "vcluster", "host", "external", "k3s""#;
    assert_eq!(
        (errs[0].message(), errs[0].reason()),
        (want.to_string(), "FieldValueNotSupported")
    );
    assert_eq!(errs[1].message(), not_checked);
    assert_eq!(
        msgs(&s, cp(json!({})), None),
        [
            "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            "spec.type: Required value"
        ]
    );
    let spec = json!({"type": "k8s", "tokenExpirationSeconds": "1", "globalVars": {"a": 1}});
    let status = json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "", "lastTransitionTime": "2024-13-01T00:00:00Z", "lastUpdateTime": "2024-01-01T00:00:00Z"}]});
    let mut obj = cp(spec);
    obj["status"] = status;
    assert_eq!(
        msgs(&s, obj, None),
        [
            not_checked.as_str(),
            r#"spec.globalVars.a: Invalid value: "integer": spec.globalVars.a in body must be of type string: "integer""#,
            r#"spec.tokenExpirationSeconds: Invalid value: "string": spec.tokenExpirationSeconds in body must be of type integer: "string""#,
            r#"status.conditions[0].lastTransitionTime: Invalid value: "2024-13-01T00:00:00Z": status.conditions[0].lastTransitionTime in body must be of type date-time: "2024-13-01T00:00:00Z""#,
            "status.conditions[0].message: Required value",
        ]
    );
}

#[test]
fn keywords() {
    let props = json!({
        "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
        "n": {"type": "integer", "minimum": 1, "maximum": 10, "exclusiveMaximum": true, "multipleOf": 2},
        "ratio": {"type": "number", "minimum": 0.5},
        "list": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        "u": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}},
        "m": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {"type": "integer"}},
        "ios": {"x-kubernetes-int-or-string": true},
        "opt": {"type": "string", "nullable": true},
        "when": {"type": "string", "format": "date-time"},
        "i32": {"type": "integer", "format": "int32"},
    });
    let s =
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}});
    let check =
        |spec: Value, want: &[&str]| assert_eq!(msgs(&s, json!({ "spec": spec }), None), want);
    let ok = json!({"name": "abc", "n": 2, "ratio": 1, "list": ["a"], "u": [1, 2], "m": {"a": 1}, "ios": 3,
        "opt": null, "when": "2024-02-29T03:04:05.5+01:00", "i32": 4.0});
    check(ok, &[]);
    check(json!({"ios": "x"}), &[]);
    check(
        json!({"name": "abcdef"}),
        &["spec.name: Too long: may not be longer than 5"],
    );
    check(
        json!({"name": "a"}),
        &[r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#],
    );
    check(
        json!({"name": "AB"}),
        &[r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#],
    );
    check(
        json!({"name": null}),
        &[r#"spec.name: Invalid value: "null": spec.name in body must be of type string: "null""#],
    );
    check(
        json!({"n": 3}),
        &["spec.n: Invalid value: 3: spec.n in body should be a multiple of 2"],
    );
    check(
        json!({"n": 0}),
        &["spec.n: Invalid value: 0: spec.n in body should be greater than or equal to 1"],
    );
    check(
        json!({"n": 10}),
        &["spec.n: Invalid value: 10: spec.n in body should be less than 10"],
    );
    check(
        json!({"n": 2.5}),
        &[
            r#"spec.n: Invalid value: "number": spec.n in body must be of type integer: "number""#,
            "spec.n: Invalid value: 2.5: spec.n in body should be a multiple of 2",
        ],
    );
    check(
        json!({"ratio": 0.25}),
        &[
            "spec.ratio: Invalid value: 0.25: spec.ratio in body should be greater than or equal to 0.5",
        ],
    );
    check(
        json!({"list": []}),
        &["spec.list: Invalid value: 0: spec.list in body should have at least 1 items"],
    );
    check(
        json!({"list": ["a", "b", 3]}),
        &[
            "spec.list: Too many: 3: must have at most 2 items",
            r#"spec.list[2]: Invalid value: "integer": spec.list[2] in body must be of type string: "integer""#,
        ],
    );
    check(
        json!({"u": [1, 1]}),
        &[r#"spec.u: Invalid value: "": spec.u in body shouldn't contain duplicates"#],
    );
    check(
        json!({"m": {}}),
        &["spec.m: Invalid value: 0: spec.m in body should have at least 1 properties"],
    );
    check(
        json!({"m": {"a": 1, "b": 2}}),
        &["spec.m: Too many: 2: must have at most 1 items"],
    );
    check(
        json!({"m": {"a": "x"}}),
        &[
            r#"spec.m.a: Invalid value: "string": spec.m.a in body must be of type integer: "string""#,
        ],
    );
    check(
        json!({"ios": true}),
        &[
            r#"spec.ios: Invalid value: "boolean": spec.ios in body must be of type integer,string: "boolean""#,
        ],
    );
    check(
        json!({"when": "2024-02-30T00:00:00Z"}),
        &[
            r#"spec.when: Invalid value: "2024-02-30T00:00:00Z": spec.when in body must be of type date-time: "2024-02-30T00:00:00Z""#,
        ],
    );
    check(
        json!({"i32": 1.5}),
        &[
            r#"spec.i32: Invalid value: "float64": spec.i32 in body must be of type int32: "float64""#,
        ],
    );
    check(
        json!({"i32": "1"}),
        &[
            r#"spec.i32: Invalid value: "string": spec.i32 in body must be of type integer: "string""#,
        ],
    );
    // Ratcheting: an update leaving an invalid value as it was is accepted.
    let bad = json!({"spec": {"name": "TOO-LONG", "n": 11}});
    assert_eq!(
        msgs(&s, bad.clone(), Some(bad.clone())),
        Vec::<String>::new()
    );
    let mut changed = bad.clone();
    changed["spec"]["n"] = json!(2);
    assert_eq!(msgs(&s, changed, Some(bad)), Vec::<String>::new());
}

#[test]
fn list_types_and_embedded_resources() {
    let port = json!({"type": "object", "properties": {"port": {"type": "integer"}, "name": {"type": "string"}}});
    let props = json!({
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"], "items": port},
        "tmpl": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
    });
    let s =
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}});
    let spec = json!({"set": ["a", "b", "a", "a"], "ports": [{"port": 80}, {"port": 80, "name": "x"}, {}],
        "tmpl": {"kind": "Pod_x", "metadata": {"name": "n"}}});
    assert_eq!(
        msgs(&s, json!({ "spec": spec }), None),
        [
            r#"spec.ports[1]: Duplicate value: map[string]interface {}{"port":80}"#,
            r#"spec.set[2]: Duplicate value: "a""#,
            "spec.tmpl.apiVersion: Required value",
            "spec.tmpl.kind: Invalid value: \"Pod_x\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ]
    );
    let tmpl = json!({"apiVersion": "a/b/c", "kind": "Pod"});
    let want =
        r#"spec.tmpl.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#;
    assert_eq!(msgs(&s, json!({"spec": {"tmpl": tmpl}}), None), [want]);
}

#[test]
fn cel_rules() {
    let rules = json!([
        {"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"},
        {"rule": "self.max < 100", "messageExpression": "'max is ' + string(self.max)", "reason": "FieldValueForbidden"},
        {"rule": "!has(self.extra) || self.extra.size() > 0"},
    ]);
    let item = json!({"type": "object", "properties": {"name": {"type": "string"}}, "x-kubernetes-validations": [{"rule": "self.name.size() < 4"}]});
    let var =
        json!({"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('v')"}]});
    let props = json!({"min": {"type": "integer"}, "max": {"type": "integer"}, "extra": {"type": "string"},
        "vars": {"type": "object", "additionalProperties": var}, "items": {"type": "array", "items": item}});
    let spec = json!({"type": "object", "x-kubernetes-validations": rules, "properties": props});
    let s = json!({"type": "object", "properties": {"spec": spec}});
    let obj = json!({"spec": {"min": 300, "max": 200, "extra": "", "vars": {"k": "x"}, "items": [{"name": "ok"}, {"name": "long"}, {}]}});
    assert_eq!(
        msgs(&s, obj.clone(), None),
        [
            "spec.items[1]: Invalid value: \"object\": failed rule: self.name.size() < 4",
            "spec.items[2]: Invalid value: \"object\": no such key: name evaluating rule: self.name.size() < 4",
            "spec.min: Invalid value: \"object\": min must not exceed max",
            "spec.vars[k]: Invalid value: \"string\": failed rule: self.startsWith('v')",
            "spec: Forbidden: max is 200",
            "spec: Invalid value: \"object\": failed rule: !has(self.extra) || self.extra.size() > 0",
        ]
    );
    let errs = validate(&s, &obj, None);
    assert!(errs.iter().any(|e| e.reason() == "FieldValueForbidden"));
    // Unchanged values ratchet (warnings in Kubernetes); runtime errors do not.
    let mut fixed = obj.clone();
    fixed["spec"]["vars"]["k"] = json!("v");
    let still = msgs(&s, fixed, Some(obj));
    assert_eq!(still.len(), 4, "{still:?}");
    assert!(still[0].starts_with("spec.items[2]:") && still[1].starts_with("spec.min:"));
}

#[test]
fn crd_creation_checks() {
    let spec = json!({"properties": {"l": {"type": "array"}}, "x-kubernetes-validations": [{"rule": "self.x ==", "reason": "Nope"}]});
    let meta = json!({"type": "object", "properties": {"labels": {"type": "object"}}});
    let bad = json!({"type": "object", "properties": {"spec": spec, "metadata": meta}});
    let p = "openAPIV3Schema.properties";
    assert_eq!(
        check_structural(&bad),
        [
            format!(
                "{p}[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ),
            format!("{p}[spec].properties[l].items: Required value: must be specified"),
            format!(
                "{p}[spec].type: Required value: must not be empty for specified object fields"
            ),
            format!(
                "{p}[spec].x-kubernetes-validations[0].reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""
            ),
        ]
    );
    let errs = compile_rules(&bad);
    let want = format!(
        "{p}[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.x ==\": compilation failed: ERROR: <input>:1:10: Syntax error: mismatched input '<EOF>' expecting"
    );
    assert!(errs.len() == 1 && errs[0].starts_with(&want), "{errs:?}");
    let item = json!({"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]});
    let s = json!({"type": "object", "properties": {"l": {"type": "array", "items": item}}});
    assert_eq!(
        compile_rules(&s),
        [format!(
            "{p}[l].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within {p}[l]"
        )]
    );
    let s = json!({"type": "object", "properties": {"m": {"type": "object", "x-kubernetes-validations": [{"rule": "self.nope == 1"}], "properties": {"a": {"type": "string"}}}}});
    assert!(compile_rules(&s)[0].contains("undefined field 'nope'"));
}

#[test]
fn pruning() {
    let props = json!({
        "a": {"type": "object", "properties": {"b": {"type": "string"}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"known": {"type": "object"}}},
        "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        "emb": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
    });
    let s =
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}});
    let spec = json!({"a": {"b": "keep", "c": "drop"}, "free": {"any": {"deep": 1}, "known": {"gone": 1}},
        "m": {"k": {"x": 1, "y": 2}}, "emb": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"z": 1}, "status": {}}});
    let mut obj = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n", "x": 1}, "junk": 1, "spec": spec});
    prune(&s, &mut obj);
    let spec = json!({"a": {"b": "keep"}, "free": {"any": {"deep": 1}, "known": {}}, "m": {"k": {"x": 1}},
        "emb": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}});
    assert_eq!(
        obj,
        json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n", "x": 1}, "spec": spec})
    );
}

#[test]
fn defaulting() {
    let s = crd();
    let mut obj = cp(json!({"type": "k8s", "backend": null, "waitForPostCreateHooks": null}));
    obj["status"] = json!({"secretRef": {"name": "s"}});
    apply_defaults(&s, &mut obj);
    let want =
        json!({"type": "k8s", "waitForPostCreateHooks": null, "tokenExpirationSeconds": 31536000});
    assert_eq!(
        (&obj["spec"], &obj["status"]),
        (&want, &json!({"secretRef": {"name": "s", "key": ""}}))
    );
    let inner = json!({"type": "object", "default": {}, "properties": {"x": {"type": "string", "default": "d"}}});
    let s = json!({"type": "object", "properties": {"spec": inner, "n": {"type": "integer", "default": 1}}});
    let mut obj = json!({"n": null});
    apply_defaults(&s, &mut obj);
    assert_eq!(obj, json!({"n": 1, "spec": {"x": "d"}}));
}

#[test]
fn value_rendering() {
    let e = FieldError {
        field: String::new(),
        kind: invalid("a\"b\n\u{1}", "x"),
    };
    assert_eq!(e.message(), r#"<nil>: Invalid value: "a\"b\n\x01": x"#);
    let e = FieldError {
        field: "f".into(),
        kind: K::Duplicate {
            value: json!({"b": [1, 2.5], "a": null}),
        },
    };
    assert_eq!(
        e.message(),
        r#"f: Duplicate value: map[string]interface {}{"a":interface {}(nil), "b":[]interface {}{1, 2.5}}"#
    );
    assert_eq!(
        FieldError {
            field: "f".into(),
            kind: required("")
        }
        .message(),
        "f: Required value"
    );
}
