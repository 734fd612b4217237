//! How a live object's `spec` differs from Git, and what it takes to put it
//! back exactly: server-side apply restores the values we own, but keeps any
//! field or map key another field manager added (flux2 #2099). Those are
//! found from `metadata.managedFields` and removed with a merge patch whose
//! values are `null`.
//!
//! Fields nobody owns (defaults filled in by the API server) are not drift.
//! Labels, annotations and `status` are never compared here: others may add
//! to them (the operator copies hook labels onto ControlPlanes).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::inventory::{LiveObject, ManagedSpec};
use crate::names::FIELD_MANAGER;

/// A path into `spec`, as JSON object keys (lists are owned whole, so a
/// path never goes into one).
pub type FieldPath = Vec<String>;

/// The difference between a live `spec` and Git's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecDiff {
    /// Some value Git sets is missing or different in the cluster.
    pub values_differ: bool,
    /// Fields we applied earlier that Git no longer has; our next apply
    /// removes them (we are their only owner).
    pub stale_ours: Vec<FieldPath>,
    /// Fields Git does not have, added by another manager: `(path, manager)`.
    pub foreign: Vec<(FieldPath, String)>,
}

impl SpecDiff {
    /// Nothing to do.
    pub fn is_clean(&self) -> bool {
        !self.values_differ && self.stale_ours.is_empty() && self.foreign.is_empty()
    }

    /// An apply is needed (values or our own stale fields).
    pub fn needs_apply(&self) -> bool {
        self.values_differ || !self.stale_ours.is_empty()
    }
}

/// Compares Git's `spec` with a live object's.
pub fn diff_spec(desired: &Value, live: &LiveObject) -> SpecDiff {
    let live_spec = live.spec.value();
    let mut diff = SpecDiff {
        values_differ: !contains(&live_spec, desired),
        ..SpecDiff::default()
    };
    let mut seen: BTreeSet<FieldPath> = BTreeSet::new();
    for entry in &live.managed {
        let mut leaves = Vec::new();
        owned_leaves(&entry.fields.value(), &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            // Remove from the first level Git does not have, so that a map
            // added by hand goes away whole rather than left empty.
            let Some(extra) = first_missing(desired, &leaf) else {
                continue;
            };
            if lookup(&live_spec, &extra).is_none() || !seen.insert(extra.clone()) {
                continue;
            }
            if is_ours(entry) {
                diff.stale_ours.push(extra);
            } else {
                diff.foreign.push((extra, entry.manager.clone()));
            }
        }
    }
    // A field both we and someone else own: our apply alone will not remove
    // it, so it is foreign drift.
    let foreign: BTreeSet<&FieldPath> = diff.foreign.iter().map(|(p, _)| p).collect();
    diff.stale_ours.retain(|p| !foreign.contains(p));
    drop_nested(&mut diff.foreign);
    diff
}

fn is_ours(entry: &ManagedSpec) -> bool {
    entry.manager == FIELD_MANAGER && entry.operation == "Apply"
}

/// Whether every value of `want` is in `have` (maps may have more keys;
/// lists and scalars must be equal).
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| have.get(k).is_some_and(|h| contains(h, w))),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => have == want,
    }
}

/// Paths of the leaves of a `fieldsV1` tree: `f:name` keys descend, `.`
/// (the map itself) is skipped, and list items (`k:`, `v:`, `i:`) mean the
/// list at that point is owned.
fn owned_leaves(fields: &Value, at: &mut FieldPath, out: &mut Vec<FieldPath>) {
    let Value::Object(map) = fields else {
        return;
    };
    let mut descended = false;
    for (key, child) in map {
        if let Some(name) = key.strip_prefix("f:") {
            descended = true;
            at.push(name.to_owned());
            owned_leaves(child, at, out);
            at.pop();
        } else if key != "." {
            // A list item: the list is the unit of ownership here.
            if !at.is_empty() && !out.contains(at) {
                out.push(at.clone());
            }
            return;
        }
    }
    if !descended && !at.is_empty() {
        out.push(at.clone());
    }
}

/// The shortest prefix of `path` that `value` lacks; `None` if it has it all.
fn first_missing(value: &Value, path: &[String]) -> Option<FieldPath> {
    let mut cur = value;
    for (i, key) in path.iter().enumerate() {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return Some(path[..=i].to_vec()),
        }
    }
    None
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Drops paths under another path of the list (removing the parent suffices).
fn drop_nested(paths: &mut Vec<(FieldPath, String)>) {
    let all: Vec<FieldPath> = paths.iter().map(|(p, _)| p.clone()).collect();
    paths.retain(|(p, _)| {
        !all.iter()
            .any(|q| q.len() < p.len() && p.starts_with(q.as_slice()))
    });
}

/// A JSON merge patch removing `paths` from `spec`: `{"spec": {"a": {"b": null}}}`.
pub fn removal_patch(paths: &[FieldPath]) -> Value {
    let mut spec = Value::Object(Map::new());
    for path in paths {
        insert_null(&mut spec, path);
    }
    serde_json::json!({ "spec": spec })
}

fn insert_null(at: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    let Value::Object(map) = at else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), Value::Null);
    } else {
        let child = map
            .entry(first.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        insert_null(child, rest);
    }
}

/// `spec.a.b` for messages and Events.
pub fn display_path(path: &[String]) -> String {
    format!("spec.{}", path.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::tests::mk_live;
    use serde_json::json;

    fn managed(manager: &str, operation: &str, fields: Value) -> ManagedSpec {
        ManagedSpec {
            manager: manager.to_owned(),
            operation: operation.to_owned(),
            fields: fields.into(),
        }
    }

    fn path(p: &[&str]) -> FieldPath {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn identical_spec_with_server_defaults_is_clean() {
        let mut live = mk_live("cp1", "default", "cp1.yaml");
        // Defaults filled by the API server are owned by nobody.
        live.spec = json!({"type": "k8s", "tokenExpirationSeconds": 31536000}).into();
        live.managed = vec![managed(FIELD_MANAGER, "Apply", json!({"f:type": {}}))];
        let diff = diff_spec(&json!({"type": "k8s"}), &live);
        assert!(diff.is_clean(), "{diff:?}");
    }

    #[test]
    fn changed_value_needs_an_apply() {
        let mut live = mk_live("cp1", "default", "cp1.yaml");
        live.spec = json!({"type": "k8s", "globalVars": {"a": "2"}}).into();
        live.managed = vec![
            managed(FIELD_MANAGER, "Apply", json!({"f:type": {}})),
            managed(
                "kubectl-edit",
                "Update",
                json!({"f:globalVars": {"f:a": {}}}),
            ),
        ];
        let diff = diff_spec(&json!({"type": "k8s", "globalVars": {"a": "1"}}), &live);
        assert!(diff.values_differ);
        // `a` is in Git: force-apply takes it back, nothing to remove.
        assert!(diff.foreign.is_empty());
    }

    #[test]
    fn map_key_added_by_hand_is_foreign_drift() {
        let mut live = mk_live("cp1", "default", "cp1.yaml");
        live.spec = json!({"type": "k8s", "globalVars": {"a": "1", "extra": "x"}}).into();
        live.managed = vec![
            managed(
                FIELD_MANAGER,
                "Apply",
                json!({"f:type": {}, "f:globalVars": {".": {}, "f:a": {}}}),
            ),
            managed(
                "kubectl-patch",
                "Update",
                json!({"f:globalVars": {"f:extra": {}}}),
            ),
        ];
        let diff = diff_spec(&json!({"type": "k8s", "globalVars": {"a": "1"}}), &live);
        assert!(!diff.needs_apply());
        assert_eq!(
            diff.foreign,
            vec![(path(&["globalVars", "extra"]), "kubectl-patch".to_owned())]
        );
        assert_eq!(
            removal_patch(&[path(&["globalVars", "extra"])]),
            json!({"spec": {"globalVars": {"extra": null}}})
        );
    }

    #[test]
    fn whole_field_added_by_hand_is_removed_at_its_top() {
        let mut live = mk_live("cp1", "default", "cp1.yaml");
        live.spec = json!({"type": "k8s", "globalVars": {"x": "1", "y": "2"}, "postCreateHooks": [{"hookName": "h"}]}).into();
        live.managed = vec![
            managed(FIELD_MANAGER, "Apply", json!({"f:type": {}})),
            managed(
                "kubectl",
                "Update",
                json!({"f:globalVars": {".": {}, "f:x": {}, "f:y": {}}, "f:postCreateHooks": {}}),
            ),
        ];
        let diff = diff_spec(&json!({"type": "k8s"}), &live);
        let paths: Vec<_> = diff.foreign.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            paths,
            vec![path(&["globalVars"]), path(&["postCreateHooks"])]
        );
        assert_eq!(display_path(&paths[0]), "spec.globalVars");
    }

    #[test]
    fn our_own_stale_field_is_left_to_apply() {
        let mut live = mk_live("cp1", "default", "cp1.yaml");
        live.spec = json!({"type": "k8s", "backend": "shared"}).into();
        live.managed = vec![managed(
            FIELD_MANAGER,
            "Apply",
            json!({"f:type": {}, "f:backend": {}}),
        )];
        let diff = diff_spec(&json!({"type": "k8s"}), &live);
        assert_eq!(diff.stale_ours, vec![path(&["backend"])]);
        assert!(diff.needs_apply());
        assert!(diff.foreign.is_empty());
    }

    #[test]
    fn list_items_mean_the_list_is_owned() {
        let mut out = Vec::new();
        owned_leaves(
            &json!({"f:hooks": {"k:{\"name\":\"a\"}": {".": {}, "f:name": {}}}}),
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out, vec![path(&["hooks"])]);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(contains(&json!({"n": 1.0, "m": 2}), &json!({"n": 1})));
        assert!(!contains(&json!({"l": [1, 2]}), &json!({"l": [1]})));
    }
}
