//! Pruning and defaulting: the two ways apiextensions rewrites a custom
//! resource to fit its structural schema instead of rejecting it, dropping
//! unknown fields and filling in `default`s.

use serde_json::Value;

use super::{EMBEDDED, MAX_DEPTH, META, PRESERVE, ap_schema, flag, prop, props};

/// Drops the fields the structural schema does not specify, as apiextensions'
/// pruning: `x-kubernetes-preserve-unknown-fields` keeps unknown fields at its
/// level, embedded resources and the root keep `apiVersion`, `kind`, `metadata`.
pub fn prune(schema: &Value, obj: &mut Value) {
    prune_at(obj, Some(schema), true, false, 0);
}

/// `preserve` is apiextensions' skipPrune: known fields are pruned below,
/// unknown ones kept as they are (array items inherit it).
fn prune_at(x: &mut Value, s: Option<&Value>, root: bool, preserve: bool, depth: usize) {
    let preserve = preserve || s.is_some_and(|s| flag(s, PRESERVE));
    let embedded = root || s.is_some_and(|s| flag(s, EMBEDDED));
    let items = s.and_then(|s| s.get("items"));
    match (x, s) {
        _ if depth > MAX_DEPTH => {}
        (Value::Object(m), None) if !preserve => m.clear(),
        (Value::Object(m), Some(s)) => m.retain(|k, v| {
            let keep = |v: &mut Value, cs: Option<&Value>| prune_at(v, cs, false, false, depth + 1);
            if embedded && META.contains(&k.as_str()) {
            } else if let Some(ps) = prop(s, k) {
                keep(v, Some(ps));
            } else if s.get("additionalProperties").is_some() {
                keep(v, ap_schema(s));
            } else {
                return preserve;
            }
            true
        }),
        (Value::Array(a), _) if !(preserve && items.is_none()) => {
            a.iter_mut()
                .for_each(|v| prune_at(v, items, false, preserve, depth + 1));
        }
        _ => {}
    }
}

fn default_of(s: &Value) -> Option<&Value> {
    s.get("default").filter(|d| !d.is_null())
}

fn non_nullable_null(x: &Value, s: &Value) -> bool {
    x.is_null() && !flag(s, "nullable")
}

/// Applies `default`s as apiextensions does when decoding a request: first
/// null values of non-nullable fields without a default are dropped, then
/// defaults fill fields that are absent or null-but-not-nullable.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    prune_nulls(obj, Some(schema), 0);
    default_at(obj, schema, 0);
}

fn prune_nulls(x: &mut Value, s: Option<&Value>, depth: usize) {
    match x {
        _ if depth > MAX_DEPTH => {}
        Value::Object(m) => m.retain(|k, v| {
            let cs = s.and_then(|s| prop(s, k).or_else(|| ap_schema(s)));
            prune_nulls(v, cs, depth + 1);
            !cs.is_some_and(|cs| non_nullable_null(v, cs) && default_of(cs).is_none())
        }),
        Value::Array(a) => {
            let items = s.and_then(|s| s.get("items"));
            a.iter_mut().for_each(|v| prune_nulls(v, items, depth + 1));
        }
        _ => {}
    }
}

fn default_at(x: &mut Value, s: &Value, depth: usize) {
    let fill = |v: &mut Value, s: &Value| {
        if let Some(d) = default_of(s).filter(|_| non_nullable_null(v, s)) {
            *v = d.clone();
        }
        default_at(v, s, depth + 1);
    };
    match x {
        _ if depth > MAX_DEPTH => {}
        Value::Object(m) => {
            for (k, ps) in props(s).into_iter().flatten() {
                let d =
                    default_of(ps).filter(|_| m.get(k).is_none_or(|v| non_nullable_null(v, ps)));
                if let Some(d) = d {
                    m.insert(k.clone(), d.clone());
                }
            }
            for (k, v) in m.iter_mut() {
                if let Some(cs) = prop(s, k).or_else(|| ap_schema(s)) {
                    fill(v, cs);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items") {
                a.iter_mut().for_each(|v| fill(v, items));
            }
        }
        _ => {}
    }
}
