//! Checks a YAML node tree against a CRD's structural OpenAPI schema: types,
//! enums, required fields and unknown fields, each finding with the position
//! and JSON path of the offending field.
//!
//! The schema is the one generated from the API types (the CRD the API server
//! enforces), so this check cannot drift from the types. It covers what the
//! CRDs use; CEL rules are left to the server, except the one that matters
//! before apply (immutable `type`), which `validate` checks against the
//! cluster.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

use super::ProblemKind;
use crate::document::{Node, Pos, Value};

/// One problem found by the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Finding {
    pub pos: Pos,
    pub field: String,
    pub kind: ProblemKind,
    pub message: String,
}

/// `parent.key`, or `parent["key"]` when the key is not a plain name.
pub(super) fn child_field(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// Walks `node` (at JSON path `field`) against `schema`, appending findings.
pub(super) fn check(node: &Node, schema: &JSONSchemaProps, field: &str, out: &mut Vec<Finding>) {
    if matches!(node.value, Value::Null) {
        if schema.nullable != Some(true) {
            out.push(Finding {
                pos: node.pos,
                field: field.to_owned(),
                kind: ProblemKind::Type,
                message: format!("expected {}, found null", expected_type(schema)),
            });
        }
        return;
    }
    if !type_matches(&node.value, schema) {
        out.push(Finding {
            pos: node.pos,
            field: field.to_owned(),
            kind: ProblemKind::Type,
            message: format!(
                "expected {}, found {}",
                expected_type(schema),
                describe(node)
            ),
        });
        return;
    }
    if let (Value::UInt(u), Some("int64")) = (&node.value, schema.format.as_deref())
        && i64::try_from(*u).is_err()
    {
        out.push(Finding {
            pos: node.pos,
            field: field.to_owned(),
            kind: ProblemKind::Type,
            message: format!("{u} is out of range for a 64-bit integer"),
        });
        return;
    }
    if let Some(allowed) = &schema.enum_ {
        let value = node.to_json();
        if !allowed.iter().any(|a| a.0 == value) {
            let expected: Vec<String> = allowed
                .iter()
                .map(|a| match &a.0 {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.push(Finding {
                pos: node.pos,
                field: field.to_owned(),
                kind: ProblemKind::Enum,
                message: format!(
                    "unsupported value {}; expected one of {}",
                    describe_value(node),
                    expected.join(", ")
                ),
            });
        }
        return;
    }
    match &node.value {
        Value::Map(entries) => check_object(node, entries, schema, field, out),
        Value::Seq(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{field}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    node: &Node,
    entries: &[(crate::document::Key, Node)],
    schema: &JSONSchemaProps,
    field: &str,
    out: &mut Vec<Finding>,
) {
    let preserve_unknown = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    for (key, value) in entries {
        let child = child_field(field, &key.name);
        if let Some(prop) = schema.properties.as_ref().and_then(|p| p.get(&key.name)) {
            // The API server prunes a null that the schema does not allow
            // instead of refusing it; a required field left null is reported
            // below as missing.
            if matches!(value.value, Value::Null) && prop.nullable != Some(true) {
                continue;
            }
            check(value, prop, &child, out);
            continue;
        }
        match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(extra)) => check(value, extra, &child, out),
            Some(JSONSchemaPropsOrBool::Bool(true)) => {}
            _ if preserve_unknown => {}
            _ => out.push(Finding {
                pos: key.pos,
                field: child,
                kind: ProblemKind::UnknownField,
                message: unknown_field_message(&key.name, schema),
            }),
        }
    }
    for required in schema.required.iter().flatten() {
        let present = entries
            .iter()
            .any(|(k, v)| &k.name == required && !matches!(v.value, Value::Null));
        if !present {
            out.push(Finding {
                pos: node.pos,
                field: child_field(field, required),
                kind: ProblemKind::Required,
                message: "required field is missing".to_owned(),
            });
        }
    }
    if schema.x_kubernetes_embedded_resource == Some(true) {
        // The API server requires apiVersion and kind on embedded objects.
        for required in ["apiVersion", "kind"] {
            match node.get(required) {
                Some((_, v)) if matches!(&v.value, Value::Str(s) if !s.is_empty()) => {}
                Some((_, v)) if !matches!(v.value, Value::Null) => out.push(Finding {
                    pos: v.pos,
                    field: child_field(field, required),
                    kind: ProblemKind::Type,
                    message: format!("expected a non-empty string, found {}", describe(v)),
                }),
                _ => out.push(Finding {
                    pos: node.pos,
                    field: child_field(field, required),
                    kind: ProblemKind::Required,
                    message: "required field is missing".to_owned(),
                }),
            }
        }
        if let Some((_, meta)) = node.get("metadata")
            && !matches!(meta.value, Value::Map(_) | Value::Null)
        {
            out.push(Finding {
                pos: meta.pos,
                field: child_field(field, "metadata"),
                kind: ProblemKind::Type,
                message: format!("expected an object, found {}", describe(meta)),
            });
        }
    }
}

fn unknown_field_message(name: &str, schema: &JSONSchemaProps) -> String {
    let known: Vec<&str> = schema
        .properties
        .iter()
        .flat_map(|p| p.keys())
        .map(String::as_str)
        .collect();
    if known.is_empty() {
        return "unknown field".to_owned();
    }
    match closest(name, &known) {
        Some(best) => format!("unknown field; did you mean {best}?"),
        None => format!("unknown field; expected one of {}", known.join(", ")),
    }
}

/// The known name nearest to `name` by edit distance, if near enough to be a
/// likely typo (case is ignored: `hookname` suggests `hookName`).
pub(super) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 4).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and transpositions of neighbours (the commonest typo) each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

fn type_matches(value: &Value, schema: &JSONSchemaProps) -> bool {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return matches!(value, Value::Int(_) | Value::UInt(_) | Value::Str(_));
    }
    match schema.type_.as_deref() {
        Some("string") => matches!(value, Value::Str(_)),
        Some("integer") => matches!(value, Value::Int(_) | Value::UInt(_)),
        Some("number") => matches!(value, Value::Int(_) | Value::UInt(_) | Value::Float(_)),
        Some("boolean") => matches!(value, Value::Bool(_)),
        Some("object") => matches!(value, Value::Map(_)),
        Some("array") => matches!(value, Value::Seq(_)),
        _ => true,
    }
}

fn expected_type(schema: &JSONSchemaProps) -> &'static str {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return "an integer or a string";
    }
    match schema.type_.as_deref() {
        Some("string") => "a string",
        Some("integer") => "an integer",
        Some("number") => "a number",
        Some("boolean") => "a boolean",
        Some("object") => "an object",
        Some("array") => "an array",
        _ => "a value",
    }
}

/// `string "abc"`, `integer 12`, `object`, ... for messages.
pub(super) fn describe(node: &Node) -> String {
    match &node.value {
        Value::Map(_) | Value::Seq(_) | Value::Null => node.value.type_name().to_owned(),
        _ => format!("{} {}", node.value.type_name(), describe_value(node)),
    }
}

fn describe_value(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => format!("{:?}", truncate(s, 64)),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        other => other.type_name().to_owned(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(child_field("", "spec"), "spec");
        assert_eq!(child_field("spec", "type"), "spec.type");
        assert_eq!(
            child_field("spec.globalVars", "a.b"),
            "spec.globalVars[\"a.b\"]"
        );
    }

    #[test]
    fn suggestions() {
        let known = ["postCreateHook", "postCreateHooks", "type", "backend"];
        assert_eq!(closest("postCreatHooks", &known), Some("postCreateHooks"));
        assert_eq!(closest("tpye", &known), Some("type"));
        assert_eq!(closest("zzz", &known), None);
    }
}
