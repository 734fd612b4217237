//! Small helpers over objects as JSON: metadata, owners, conditions, and the
//! template hash the controllers name pods after.

use serde_json::{Map, Value, json};

use super::Key;

pub(super) fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(super) fn ns_of(obj: &Value) -> &str {
    text(obj, "/metadata/namespace")
}

pub(super) fn name_of(obj: &Value) -> &str {
    text(obj, "/metadata/name")
}

pub(super) fn uid_of(obj: &Value) -> &str {
    text(obj, "/metadata/uid")
}

pub(super) fn key_of(obj: &Value) -> Key {
    (ns_of(obj).to_string(), name_of(obj).to_string())
}

pub(super) fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// The items of an array field, or none.
pub(super) fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `(kind, name, uid)` of the controlling owner.
pub(super) fn controller_of(obj: &Value) -> Option<(&str, &str, &str)> {
    items(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default(),
                r["uid"].as_str().unwrap_or_default(),
            )
        })
}

/// Whether `obj` is controlled by the object with this uid.
pub(super) fn controlled_by(obj: &Value, owner_uid: &str) -> bool {
    controller_of(obj).is_some_and(|(_, _, uid)| uid == owner_uid && !uid.is_empty())
}

/// The ownerReference a controller puts on what it creates.
pub(super) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A pod's phase.
pub(super) fn phase(pod: &Value) -> &str {
    text(pod, "/status/phase")
}

pub(super) fn terminal(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Whether a condition of this type is `True`.
pub(super) fn condition_true(obj: &Value, kind: &str) -> bool {
    items(obj, "/status/conditions")
        .iter()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

pub(super) fn pod_ready(pod: &Value) -> bool {
    condition_true(pod, "Ready")
}

/// A condition, keeping `lastTransitionTime` from `previous` (the object's
/// current conditions) while its status holds, and the other time fields
/// while nothing about it changes — so recomputing is a no-op.
pub(super) fn condition(
    previous: &Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: &str,
    times: &[&str],
) -> Value {
    let old = previous
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let same_status = old.is_some_and(|c| c["status"] == status);
    let unchanged = same_status
        && old.is_some_and(|c| c["reason"].as_str() == reason && c["message"].as_str() == message);
    let mut c = Map::new();
    c.insert("type".into(), json!(kind));
    c.insert("status".into(), json!(status));
    for field in times {
        let keep = old
            .and_then(|o| o.get(*field))
            .filter(|_| unchanged)
            .cloned();
        c.insert((*field).into(), keep.unwrap_or_else(|| json!(now)));
    }
    let transition = old
        .filter(|_| same_status)
        .and_then(|o| o.get("lastTransitionTime"))
        .cloned()
        .unwrap_or_else(|| json!(now));
    c.insert("lastTransitionTime".into(), transition);
    if let Some(r) = reason {
        c.insert("reason".into(), json!(r));
    }
    if let Some(m) = message {
        c.insert("message".into(), json!(m));
    }
    Value::Object(c)
}

/// JSON with object keys sorted, so a hash does not depend on key order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub(super) fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn fnv64a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `pod-template-hash` / revision hash as Kubernetes renders it: the FNV-32a
/// of the template, printed in decimal and mapped onto the alphabet of
/// `rand.SafeEncodeString` (no vowels, no look-alikes).
pub(super) fn template_hash(template: &Value, collision_count: u64) -> String {
    let mut s = String::new();
    canonical(template, &mut s);
    if collision_count > 0 {
        s.push_str(&collision_count.to_string());
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fnv32a(s.as_bytes())
        .to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// 64 hex digits derived from `seed`: a stable stand-in for a digest.
pub(super) fn digest(seed: &str) -> String {
    (0..4u64)
        .map(|i| {
            format!(
                "{:016x}",
                fnv64a(i.wrapping_mul(0x9e37_79b9), seed.as_bytes())
            )
        })
        .collect()
}

/// Random lowercase hex, for container IDs and event names.
pub(super) fn random_hex(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Labels of an object as a map (empty when absent).
pub(super) fn labels(obj: &Value, pointer: &str) -> Map<String, Value> {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Whether every `matchLabels` entry and `matchExpressions` requirement of a
/// LabelSelector holds for `labels`. An empty selector matches everything.
pub(super) fn selector_matches(selector: &Value, labels: &Map<String, Value>) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let exact = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == v.as_str());
    let exprs = items(selector, "/matchExpressions").iter().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = items(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match e["operator"].as_str().unwrap_or_default() {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    });
    exact && exprs
}

/// Resolves an int-or-percent (`maxSurge`, `maxUnavailable`) against `total`.
pub(super) fn int_or_percent(v: &Value, total: usize, round_up: bool, default: usize) -> usize {
    if let Some(n) = v.as_u64() {
        return n as usize;
    }
    let Some(p) = v
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|p| p.trim().parse::<usize>().ok())
    else {
        return default;
    };
    let scaled = total * p;
    if round_up {
        scaled.div_ceil(100)
    } else {
        scaled / 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_ignores_key_order_and_uses_the_safe_alphabet() {
        let a = json!({"metadata": {"labels": {"app": "x", "tier": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let b: Value = serde_json::from_str(
            r#"{"spec": {"containers": [{"image": "nginx", "name": "c"}]}, "metadata": {"labels": {"tier": "web", "app": "x"}}}"#,
        )
        .unwrap();
        let h = template_hash(&a, 0);
        assert_eq!(h, template_hash(&b, 0));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_ne!(h, template_hash(&a, 1));
        let mut changed = a.clone();
        changed["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_ne!(h, template_hash(&changed, 0));
    }

    #[test]
    fn conditions_keep_their_times_while_unchanged() {
        let first = condition(
            &Value::Null,
            "Ready",
            "True",
            Some("R"),
            None,
            "t1",
            &["lastUpdateTime"],
        );
        let prev = json!([first.clone()]);
        assert_eq!(
            condition(
                &prev,
                "Ready",
                "True",
                Some("R"),
                None,
                "t2",
                &["lastUpdateTime"]
            ),
            first
        );
        let moved = condition(
            &prev,
            "Ready",
            "True",
            Some("S"),
            None,
            "t2",
            &["lastUpdateTime"],
        );
        assert_eq!(moved["lastTransitionTime"], "t1");
        assert_eq!(moved["lastUpdateTime"], "t2");
        let flipped = condition(&prev, "Ready", "False", Some("S"), None, "t3", &[]);
        assert_eq!(flipped["lastTransitionTime"], "t3");
    }

    #[test]
    fn selectors_and_percentages() {
        let labels = json!({"app": "web", "tier": "a"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            &labels
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            &labels
        ));
        assert_eq!(int_or_percent(&json!("25%"), 1, true, 0), 1);
        assert_eq!(int_or_percent(&json!("25%"), 1, false, 0), 0);
        assert_eq!(int_or_percent(&json!(2), 10, false, 0), 2);
        assert_eq!(int_or_percent(&Value::Null, 10, false, 7), 7);
    }
}
