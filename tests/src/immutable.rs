//! The fields of built-in kinds that kube-apiserver's update validation refuses to
//! change, with its messages (`pkg/apis/*/validation`): Job template and selector,
//! StatefulSet spec beyond its mutable fields, workload selectors, a Service's cluster
//! IPs and IP families, a PVC's spec beyond storage growth, immutable Secrets and
//! ConfigMaps, and a binding's roleRef. Also the carry-over of a Service's allocated
//! IPs into an update that omits them (`patchAllocatedValues`), which must precede
//! defaulting. Pure: objects come in as JSON.

use serde_json::{Value, json};

/// One field error: reason, message (without the field) and field path.
pub type Cause = (String, String, String);

fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    (
        "FieldValueInvalid".into(),
        format!("Invalid value: {}: {detail}", render(value)),
        field.into(),
    )
}

fn forbidden(field: &str, detail: &str) -> Cause {
    (
        "FieldValueForbidden".into(),
        format!("Forbidden: {detail}"),
        field.into(),
    )
}

/// A bad value as `field.ErrorBody` prints it: strings quoted, numbers and booleans
/// bare, anything else as JSON.
fn render(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

const IMMUTABLE: &str = "field is immutable";

/// The causes an update of `group/plural` from `old` to `new` fails with.
pub fn check(group: &str, plural: &str, new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let changed = |pointer: &str| new.pointer(pointer) != old.pointer(pointer);
    match (group, plural) {
        ("batch", "jobs") => {
            for (pointer, field) in [
                ("/spec/selector", "spec.selector"),
                ("/spec/template", "spec.template"),
            ] {
                if changed(pointer) {
                    let value = new.pointer(pointer).unwrap_or(&Value::Null);
                    out.push(invalid(field, value, IMMUTABLE));
                }
            }
        }
        ("apps", "deployments" | "replicasets" | "daemonsets") if changed("/spec/selector") => {
            out.push(invalid(
                "spec.selector",
                &new["spec"]["selector"],
                IMMUTABLE,
            ));
        }
        ("apps", "statefulsets") => {
            let strip = |o: &Value| {
                let mut spec = o["spec"].clone();
                if let Some(s) = spec.as_object_mut() {
                    for mutable in [
                        "replicas",
                        "ordinals",
                        "template",
                        "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy",
                        "minReadySeconds",
                        "revisionHistoryLimit",
                    ] {
                        s.remove(mutable);
                    }
                }
                spec
            };
            if strip(new) != strip(old) {
                out.push(forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        ("", "services") => service(new, old, &mut out),
        ("", "persistentvolumeclaims") => claim(new, old, &mut out),
        ("", "secrets" | "configmaps") => {
            if old["immutable"] == Value::Bool(true) {
                let detail = "field is immutable when `immutable` is set";
                if new["immutable"] != Value::Bool(true) {
                    out.push(forbidden("immutable", detail));
                }
                for key in ["data", "binaryData"] {
                    let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
                    if new[key] != old[key] && !(empty(&new[key]) && empty(&old[key])) {
                        out.push(forbidden(key, detail));
                    }
                }
            }
            if plural == "secrets" && changed("/type") {
                out.push(invalid("type", &new["type"], IMMUTABLE));
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings")
            if changed("/roleRef") =>
        {
            let r = &new["roleRef"];
            // The internal RoleRef's fields, in its order.
            let value = json!({"apiGroup": r["apiGroup"], "kind": r["kind"], "name": r["name"]});
            out.push(invalid("roleRef", &value, "cannot change roleRef"));
        }
        _ => {}
    }
    out
}

fn service(new: &Value, old: &Value, out: &mut Vec<Cause>) {
    let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
    if old_spec["type"] == "ExternalName" || new_spec["type"] == "ExternalName" {
        return;
    }
    let old_ips = old_spec["clusterIPs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let new_ips = new_spec["clusterIPs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let Some(first) = old_ips.first()
        && new_ips.first() != Some(first)
    {
        out.push(invalid(
            "spec.clusterIPs[0]",
            &new_spec["clusterIPs"],
            "may not change once set",
        ));
    }
    let old_families = old_spec["ipFamilies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let new_families = new_spec["ipFamilies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if let (Some(o), Some(n)) = (old_families.first(), new_families.first())
        && o != n
    {
        out.push(invalid("spec.ipFamilies[0]", n, "may not change once set"));
    }
}

fn claim(new: &Value, old: &Value, out: &mut Vec<Cause>) {
    let strip = |o: &Value| {
        let mut spec = o["spec"].clone();
        if let Some(s) = spec.as_object_mut() {
            if let Some(res) = s.get_mut("resources").and_then(Value::as_object_mut) {
                res.remove("requests");
                if res.is_empty() {
                    s.remove("resources");
                }
            }
            s.remove("volumeAttributesClassName");
            // The volume binder may set volumeName once.
            if o.pointer("/spec/volumeName").is_some() && old["spec"]["volumeName"].is_null() {
                s.remove("volumeName");
            }
        }
        spec
    };
    if strip(new) != strip(old) {
        out.push(forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
        return;
    }
    let storage = |o: &Value| quantity(o.pointer("/spec/resources/requests/storage"));
    if let (Some(n), Some(o)) = (storage(new), storage(old))
        && n < o
    {
        out.push(forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
}

/// A resource quantity in bytes (binary and decimal suffixes), enough to order sizes.
fn quantity(v: Option<&Value>) -> Option<f64> {
    let text = v?
        .as_str()
        .map(str::to_string)
        .or_else(|| Some(v?.to_string()))?;
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// `patchAllocatedValues`: an update of a Service that leaves out the cluster IPs,
/// IP families or node ports it was given keeps them, as a PUT of an older copy does.
pub fn carry_allocated(group: &str, plural: &str, new: &mut Value, old: &Value) {
    if !(group.is_empty() && plural == "services") {
        return;
    }
    let needs_ip = |o: &Value| o["spec"]["type"] != "ExternalName";
    if !needs_ip(old) || !needs_ip(new) {
        return;
    }
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let blank = |v: Option<&Value>| v.is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if blank(spec.get("clusterIP")) && !old["spec"]["clusterIP"].is_null() {
        spec.insert("clusterIP".into(), old["spec"]["clusterIP"].clone());
    }
    for key in ["clusterIPs", "ipFamilies"] {
        let empty = spec
            .get(key)
            .is_none_or(|v| v.as_array().is_none_or(Vec::is_empty));
        if empty && !old["spec"][key].is_null() {
            spec.insert(key.into(), old["spec"][key].clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_template_and_selector_are_immutable() {
        let old = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}, "suspend": false}});
        let mut new = old.clone();
        new["spec"]["suspend"] = json!(true);
        assert!(check("batch", "jobs", &new, &old).is_empty());
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("y");
        let causes = check("batch", "jobs", &new, &old);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].2, "spec.template");
        assert!(causes[0].1.ends_with(": field is immutable"), "{causes:?}");
    }

    #[test]
    fn statefulset_spec_beyond_the_mutable_fields_is_forbidden() {
        let old =
            json!({"spec": {"replicas": 1, "serviceName": "a", "selector": {}, "template": {}}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"] = json!({"metadata": {"labels": {"x": "y"}}});
        assert!(check("apps", "statefulsets", &new, &old).is_empty());
        new["spec"]["serviceName"] = json!("b");
        let causes = check("apps", "statefulsets", &new, &old);
        assert_eq!(causes[0].2, "spec");
        assert!(causes[0].1.starts_with(
            "Forbidden: updates to statefulset spec for fields other than 'replicas'"
        ));
        new["spec"]["serviceName"] = json!("a");
        new["spec"]["podManagementPolicy"] = json!("Parallel");
        assert_eq!(check("apps", "statefulsets", &new, &old).len(), 1);
    }

    #[test]
    fn service_ips_secrets_claims_and_role_refs() {
        let old = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ipFamilies": ["IPv4"]}});
        let mut new = json!({"spec": {"type": "ClusterIP", "ports": []}});
        carry_allocated("", "services", &mut new, &old);
        assert!(check("", "services", &new, &old).is_empty());
        new["spec"]["clusterIPs"] = json!(["None"]);
        assert_eq!(
            check("", "services", &new, &old),
            vec![invalid(
                "spec.clusterIPs[0]",
                &json!(["None"]),
                "may not change once set"
            )]
        );
        assert_eq!(
            check("", "services", &new, &old)[0].1,
            "Invalid value: [\"None\"]: may not change once set"
        );

        let sealed = json!({"immutable": true, "data": {"k": "dg=="}});
        let mut opened = sealed.clone();
        opened["immutable"] = json!(false);
        opened["data"]["k"] = json!("dw==");
        let causes = check("", "secrets", &opened, &sealed);
        assert_eq!(
            causes.iter().map(|c| c.2.as_str()).collect::<Vec<_>>(),
            ["immutable", "data"]
        );
        assert_eq!(
            causes[0].1,
            "Forbidden: field is immutable when `immutable` is set"
        );
        let mut relabelled = sealed.clone();
        relabelled["metadata"] = json!({"labels": {"a": "b"}});
        assert!(check("", "configmaps", &relabelled, &sealed).is_empty());

        let pvc = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let mut grown = pvc.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        grown["spec"]["volumeName"] = json!("pv-1");
        assert!(check("", "persistentvolumeclaims", &grown, &pvc).is_empty());
        let mut shrunk = pvc.clone();
        shrunk["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
        assert_eq!(
            check("", "persistentvolumeclaims", &shrunk, &pvc)[0].2,
            "spec.resources.requests.storage"
        );
        let mut moved = pvc.clone();
        moved["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(
            check("", "persistentvolumeclaims", &moved, &pvc)[0].2,
            "spec"
        );

        let binding = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}});
        let mut admin = binding.clone();
        admin["roleRef"]["name"] = json!("admin");
        assert_eq!(
            check(
                "rbac.authorization.k8s.io",
                "rolebindings",
                &admin,
                &binding
            )[0]
            .1,
            "Invalid value: {\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":\"admin\"}: cannot change roleRef"
        );
    }
}
