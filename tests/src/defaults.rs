//! Defaults and checks the API server applies to built-in kinds, limited to
//! what clients rely on (a Service's `clusterIP`, a Namespace's phase, a
//! Deployment's `replicas`, a Secret's `stringData` folded into `data`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

/// The domain simulated OpenShift routers give generated Route hosts.
pub const ROUTER_DOMAIN: &str = "apps.localtest.me";

/// A field error of a built-in kind: `(cause reason, message, field)`.
pub type Cause = (String, String, String);

fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), value);
    }
}

fn pod_spec_defaults(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            let latest = c
                .get("image")
                .and_then(Value::as_str)
                .is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
            set_default(
                c,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = p.as_object_mut() {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// Applies the defaults of built-in kinds. `allocate_ip` gives a fresh
/// cluster IP for a Service that has none.
pub fn apply(rt: &ResourceType, obj: &mut Value, allocate_ip: &mut dyn FnMut() -> String) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            let o = obj.as_object_mut();
            if let Some(o) = o {
                set_default(o, "spec", json!({"finalizers": ["kubernetes"]}));
                set_default(o, "status", json!({"phase": "Active"}));
            }
        }
        ("", "secrets") => {
            let Some(o) = obj.as_object_mut() else { return };
            set_default(o, "type", json!("Opaque"));
            // stringData is write-only: folded into data, never stored.
            if let Some(Value::Object(strings)) = o.remove("stringData") {
                let data = o.entry("data").or_insert_with(|| json!({}));
                if let Some(data) = data.as_object_mut() {
                    for (k, v) in strings {
                        let text = v.as_str().unwrap_or_default();
                        data.insert(k, json!(STANDARD.encode(text)));
                    }
                }
            }
        }
        ("", "services") => {
            let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
                return;
            };
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
            if spec
                .get("clusterIP")
                .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
            {
                spec.insert("clusterIP".into(), json!(allocate_ip()));
            }
            if !headless {
                let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
                set_default(spec, "clusterIPs", json!([ip]));
            }
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            for p in spec
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = p.as_object_mut() {
                    set_default(p, "protocol", json!("TCP"));
                    let port = p.get("port").cloned().unwrap_or(Value::Null);
                    set_default(p, "targetPort", port);
                }
            }
            if let Some(o) = obj.as_object_mut() {
                set_default(o, "status", json!({"loadBalancer": {}}));
            }
        }
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec") {
                pod_spec_defaults(spec);
            }
            if let Some(o) = obj.as_object_mut() {
                set_default(
                    o,
                    "status",
                    json!({"phase": "Pending", "qosClass": "BestEffort"}),
                );
            }
        }
        ("", "serviceaccounts") | ("", "configmaps") | ("", "endpoints") => {}
        ("route.openshift.io", "routes") => {
            // The router assigns `<name>-<namespace>.<apps domain>` when no
            // host is given, and admits the route.
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "host", json!(format!("{name}-{ns}.{ROUTER_DOMAIN}")));
                set_default(spec, "wildcardPolicy", json!("None"));
            }
            let host = obj["spec"]["host"].clone();
            if let Some(o) = obj.as_object_mut() {
                set_default(
                    o,
                    "status",
                    json!({"ingress": [{"host": host, "routerName": "default", "conditions": [{"type": "Admitted", "status": "True"}], "wildcardPolicy": "None", "routerCanonicalHostname": format!("router-default.{ROUTER_DOMAIN}")}]}),
                );
            }
        }
        ("", "persistentvolumeclaims") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(o) = obj.as_object_mut() {
                set_default(o, "status", json!({"phase": "Pending"}));
            }
        }
        ("apps", "deployments") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
                if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec_defaults(t);
                }
            }
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    pod_spec_defaults(t);
                }
            }
        }
        ("batch", "jobs") => {
            let uid = obj["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completions", json!(1));
                set_default(spec, "parallelism", json!(1));
                set_default(spec, "completionMode", json!("NonIndexed"));
                set_default(spec, "suspend", json!(false));
                // Jobs label their pods with their uid, as the job controller does.
                let labels = json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name, "controller-uid": uid, "job-name": name});
                set_default(
                    spec,
                    "selector",
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                if let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut) {
                    let meta = t.entry("metadata").or_insert_with(|| json!({}));
                    if let Some(meta) = meta.as_object_mut() {
                        let l = meta.entry("labels").or_insert_with(|| json!({}));
                        if let (Some(l), Some(add)) = (l.as_object_mut(), labels.as_object()) {
                            for (k, v) in add {
                                l.entry(k.clone()).or_insert(v.clone());
                            }
                        }
                    }
                    if let Some(ps) = t.get_mut("spec") {
                        pod_spec_defaults(ps);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Checks of built-in kinds beyond the name; empty when valid.
pub fn validate(rt: &ResourceType, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets") => {
            for (k, v) in obj["data"].as_object().into_iter().flatten() {
                let ok = v.as_str().is_some_and(|s| STANDARD.decode(s).is_ok());
                if !ok {
                    causes.push((
                        "FieldValueInvalid".into(),
                        "Invalid value: \"<secret contents redacted>\": illegal base64 data".into(),
                        format!("data[{k}]"),
                    ));
                }
            }
        }
        ("apps", "deployments") | ("apps", "statefulsets") => {
            let selector = &obj["spec"]["selector"]["matchLabels"];
            let labels = &obj["spec"]["template"]["metadata"]["labels"];
            match selector.as_object() {
                None if obj["spec"]["selector"]["matchExpressions"].is_null() => causes.push((
                    "FieldValueRequired".into(),
                    "Required value".into(),
                    "spec.selector".into(),
                )),
                Some(sel) if sel.iter().any(|(k, v)| labels.get(k) != Some(v)) => {
                    causes.push((
                        "FieldValueInvalid".into(),
                        format!(
                            "Invalid value: {labels}: `selector` does not match template `labels`"
                        ),
                        "spec.template.metadata.labels".into(),
                    ));
                }
                _ => {}
            }
            if obj["spec"]["template"]["spec"]["containers"]
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                causes.push((
                    "FieldValueRequired".into(),
                    "Required value".into(),
                    "spec.template.spec.containers".into(),
                ));
            }
        }
        ("policy", "poddisruptionbudgets") => causes.extend(crate::pdb::validate(obj)),
        ("", "pods")
            if obj["spec"]["containers"]
                .as_array()
                .is_none_or(Vec::is_empty) =>
        {
            causes.push((
                "FieldValueRequired".into(),
                "Required value".into(),
                "spec.containers".into(),
            ));
        }
        _ => {}
    }
    causes
}
