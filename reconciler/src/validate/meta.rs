//! `metadata` of a ControlPlane or PostCreateHook: the name rules, labels and
//! annotations, and fields that have no place in a repository (server-set
//! fields, a namespace on a cluster-scoped object).
//!
//! ControlPlane names must be DNS-1123 labels of at most 56 characters, not
//! merely subdomains: the name is also a host label (`<name>.<name>-system`)
//! and, with `-system`, the name of the hosting namespace (at most 63).

use super::schema::{Finding, child_field, describe};
use super::{Kind, ProblemKind};
use crate::document::{Node, Pos, Value};
use crate::names::{
    MAX_CONTROL_PLANE_NAME_LEN, MAX_LABEL_LEN, MAX_SUBDOMAIN_LEN, NAMESPACE_SUFFIX,
};

/// Fields the API server sets: a manifest copied from `kubectl get -o yaml`
/// carries them, and applying them would fail or fight the server.
const SERVER_SET: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Checks `metadata` (the node of the document's `metadata` entry, if any,
/// and the document for positions) and returns the name with its position
/// when it is a string.
pub(super) fn check_metadata(
    doc: &Node,
    kind: Kind,
    out: &mut Vec<Finding>,
) -> Option<(String, Pos)> {
    let Some((_, meta)) = doc.get("metadata") else {
        out.push(finding(
            doc.pos,
            "metadata",
            ProblemKind::Required,
            "required field is missing",
        ));
        return None;
    };
    let Value::Map(entries) = &meta.value else {
        out.push(finding(
            meta.pos,
            "metadata",
            ProblemKind::Type,
            &format!("expected an object, found {}", describe(meta)),
        ));
        return None;
    };
    let mut name = None;
    for (key, value) in entries {
        let field = child_field("metadata", &key.name);
        match key.name.as_str() {
            "name" => match &value.value {
                Value::Str(s) => {
                    if let Some(reason) = name_problem(s, kind) {
                        out.push(finding(value.pos, &field, ProblemKind::Name, &reason));
                    }
                    name = Some((s.clone(), value.pos));
                }
                _ => out.push(finding(
                    value.pos,
                    &field,
                    ProblemKind::Type,
                    &format!("expected a string, found {}", describe(value)),
                )),
            },
            "labels" => check_string_map(value, &field, true, out),
            "annotations" => check_string_map(value, &field, false, out),
            "finalizers" => match &value.value {
                Value::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if !matches!(item.value, Value::Str(_)) {
                            out.push(finding(
                                item.pos,
                                &format!("{field}[{i}]"),
                                ProblemKind::Type,
                                &format!("expected a string, found {}", describe(item)),
                            ));
                        }
                    }
                }
                Value::Null => {}
                _ => out.push(finding(
                    value.pos,
                    &field,
                    ProblemKind::Type,
                    &format!("expected an array, found {}", describe(value)),
                )),
            },
            "namespace" => out.push(finding(
                key.pos,
                &field,
                ProblemKind::UnknownField,
                &format!("{kind} is cluster-scoped; remove the namespace"),
            )),
            "generateName" => out.push(finding(
                key.pos,
                &field,
                ProblemKind::UnknownField,
                "not supported: objects from a repository need a fixed metadata.name",
            )),
            "ownerReferences" => out.push(finding(
                key.pos,
                &field,
                ProblemKind::UnknownField,
                "not supported: owner references are set by controllers, not in a repository",
            )),
            other if SERVER_SET.contains(&other) => out.push(finding(
                key.pos,
                &field,
                ProblemKind::UnknownField,
                "set by the API server; remove it from the manifest",
            )),
            other => {
                let known = ["name", "labels", "annotations", "finalizers"];
                let message = match super::schema::closest(other, &known) {
                    Some(best) => format!("unknown field; did you mean {best}?"),
                    None => format!("unknown field; expected one of {}", known.join(", ")),
                };
                out.push(finding(
                    key.pos,
                    &field,
                    ProblemKind::UnknownField,
                    &message,
                ));
            }
        }
    }
    if name.is_none() && !entries.iter().any(|(k, _)| k.name == "name") {
        out.push(finding(
            meta.pos,
            "metadata.name",
            ProblemKind::Required,
            "required field is missing",
        ));
    }
    name
}

fn finding(pos: Pos, field: &str, kind: ProblemKind, message: &str) -> Finding {
    Finding {
        pos,
        field: field.to_owned(),
        kind,
        message: message.to_owned(),
    }
}

/// Labels (`labels = true`: values are restricted too) or annotations.
fn check_string_map(node: &Node, field: &str, labels: bool, out: &mut Vec<Finding>) {
    let entries = match &node.value {
        Value::Map(entries) => entries,
        Value::Null => return,
        _ => {
            out.push(finding(
                node.pos,
                field,
                ProblemKind::Type,
                &format!("expected an object, found {}", describe(node)),
            ));
            return;
        }
    };
    for (key, value) in entries {
        let child = child_field(field, &key.name);
        if let Some(reason) = qualified_name_problem(&key.name) {
            out.push(finding(
                key.pos,
                &child,
                ProblemKind::Name,
                &format!("invalid key: {reason}"),
            ));
        }
        match &value.value {
            Value::Str(s) if labels => {
                if !(s.is_empty() || s.len() <= MAX_LABEL_LEN && is_label_name(s)) {
                    out.push(finding(
                        value.pos,
                        &child,
                        ProblemKind::Name,
                        &format!(
                            "invalid label value {s:?}: at most 63 characters, letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
                        ),
                    ));
                }
            }
            Value::Str(_) => {}
            _ => out.push(finding(
                value.pos,
                &child,
                ProblemKind::Type,
                &format!("expected a string, found {}", describe(value)),
            )),
        }
    }
}

/// Why `name` is not a valid name for `kind`, if it is not.
pub(super) fn name_problem(name: &str, kind: Kind) -> Option<String> {
    match kind {
        Kind::ControlPlane => {
            if !is_dns1123_label(name) {
                Some(format!(
                    "{name:?} is not a valid ControlPlane name: use lowercase letters, digits and '-', starting and ending with a letter or digit"
                ))
            } else if name.len() > MAX_CONTROL_PLANE_NAME_LEN {
                Some(format!(
                    "{name:?} is {} characters; a ControlPlane name may have at most {MAX_CONTROL_PLANE_NAME_LEN}, since its namespace {name}{NAMESPACE_SUFFIX} may have at most {MAX_LABEL_LEN}",
                    name.len()
                ))
            } else {
                None
            }
        }
        Kind::PostCreateHook => (!is_dns1123_subdomain(name)).then(|| {
            format!(
                "{name:?} is not a valid PostCreateHook name: use at most {MAX_SUBDOMAIN_LEN} lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit"
            )
        }),
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Dot-separated DNS-1123 labels, at most 253 characters in all.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SUBDOMAIN_LEN && s.split('.').all(is_dns1123_label)
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain,
/// name at most 63 characters.
fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns1123_subdomain(prefix)
    {
        return Some(format!("prefix {prefix:?} is not a DNS-1123 subdomain"));
    }
    if name.is_empty() || name.len() > MAX_LABEL_LEN || !is_label_name(name) {
        return Some(format!(
            "name {name:?} must have 1 to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    None
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("cp-1"));
        assert!(!is_dns1123_label("-cp"));
        assert!(!is_dns1123_label("Cp"));
        assert!(!is_dns1123_label("a.b"));
        assert!(is_dns1123_subdomain("a.b-c"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(""));
    }

    #[test]
    fn control_plane_name_length() {
        assert!(name_problem(&"a".repeat(56), Kind::ControlPlane).is_none());
        let long = name_problem(&"a".repeat(57), Kind::ControlPlane).unwrap();
        assert!(long.contains("at most 56"), "{long}");
        assert!(name_problem("a.b", Kind::ControlPlane).is_some());
        assert!(name_problem("a.b", Kind::PostCreateHook).is_none());
    }

    #[test]
    fn label_keys() {
        assert!(qualified_name_problem("app.kubernetes.io/name").is_none());
        assert!(qualified_name_problem("Bad Key").is_some());
        assert!(qualified_name_problem("UPPER.example/x").is_some());
    }
}
