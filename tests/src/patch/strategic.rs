//! Kubernetes strategic merge patch (apimachinery `strategicpatch`): maps
//! merge, lists merge by the keys [`MergeKeys`] gives, and the `$patch`,
//! `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList`
//! directives, with the apiserver's 400/422 split for bad patches.

use serde_json::{Map, Value};

use super::{PatchError, json_equal};
use crate::merge_keys::{ListStrategy, MergeKeys};

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

pub(super) fn is_directive_key(key: &str) -> bool {
    key == PATCH_DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// Kubernetes strategic merge patch as the apiserver applies it
/// (apimachinery `strategicpatch`, `MergeParallelList` and
/// `IgnoreUnmatchedNulls`): maps merge, `null` deletes, lists follow `keys`.
/// All or nothing: on error `target` is unchanged. Directive keys never
/// reach the result, including inside newly added values.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    keys: &dyn MergeKeys,
) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let mut work = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let smp = Smp { keys };
    if smp.merge_map(&mut work, patch, &mut Vec::new())? == Outcome::Delete {
        return Err(PatchError::Malformed(
            "$patch: delete at the top level would delete the whole object".into(),
        ));
    }
    *target = Value::Object(work);
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Keep,
    /// The map carried `$patch: delete`: its parent drops it.
    Delete,
}

/// Field names from the root, list positions left out (see `MergeKeys`).
type Path<'p> = Vec<&'p str>;

fn describe(path: &[&str]) -> String {
    if path.is_empty() {
        "<root>".to_owned()
    } else {
        path.join(".")
    }
}

fn malformed(path: &[&str], detail: impl std::fmt::Display) -> PatchError {
    PatchError::Malformed(format!("at {}: {detail}", describe(path)))
}

fn unmergeable(path: &[&str], detail: impl Into<String>) -> PatchError {
    PatchError::Unmergeable {
        path: describe(path),
        detail: detail.into(),
    }
}

/// Whether two list items are the same element: equal merge-key values for
/// keyed lists of maps, equal values otherwise.
fn same_item(a: &Value, b: &Value, keys: Option<&[String]>) -> bool {
    match (keys, a, b) {
        (Some(keys), Value::Object(a), Value::Object(b)) => {
            keys.iter().all(|k| match (a.get(k), b.get(k)) {
                (Some(x), Some(y)) => json_equal(x, y),
                (None, None) => true,
                _ => false,
            })
        }
        _ => json_equal(a, b),
    }
}

fn position(list: &[Value], item: &Value, keys: Option<&[String]>) -> Option<usize> {
    list.iter().position(|x| same_item(x, item, keys))
}

fn has_patch_directive(item: &Value) -> bool {
    item.as_object()
        .is_some_and(|m| m.contains_key(PATCH_DIRECTIVE))
}

fn map_keys(strategy: &ListStrategy) -> Option<&[String]> {
    match strategy {
        ListStrategy::Map(keys) => Some(keys),
        _ => None,
    }
}

struct Smp<'k> {
    keys: &'k dyn MergeKeys,
}

impl Smp<'_> {
    fn merge_map<'p>(
        &self,
        original: &mut Map<String, Value>,
        patch: &'p Map<String, Value>,
        path: &mut Path<'p>,
    ) -> Result<Outcome, PatchError> {
        match patch.get(PATCH_DIRECTIVE).map(|d| (d, d.as_str())) {
            None | Some((_, Some("merge"))) => {}
            Some((_, Some("replace"))) => original.clear(),
            Some((_, Some("delete"))) => return Ok(Outcome::Delete),
            Some((other, _)) => return Err(malformed(path, format!("unknown $patch {other}"))),
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            retain_keys(original, patch, retain, path)?;
        }

        // `$setElementOrder/<field>` merges and orders its list in one go.
        let mut ordered: Vec<&str> = Vec::new();
        for (key, order) in patch {
            let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let Value::Array(order) = order else {
                return Err(malformed(path, format!("{key} must be a list")));
            };
            let patch_list = match patch.get(field) {
                None => None,
                Some(Value::Array(list)) => Some(list.as_slice()),
                // e.g. `null` deleting the list: the plain merge handles it.
                Some(_) => continue,
            };
            let current = match original.get_mut(field) {
                Some(Value::Array(list)) => Some(std::mem::take(list)),
                _ => None,
            };
            path.push(field);
            let merged = self.ordered_list(current, patch_list, order, path);
            path.pop();
            if let Some(list) = merged? {
                original.insert(field.to_owned(), Value::Array(list));
            }
            ordered.push(field);
        }

        for (key, value) in patch {
            if is_directive_key(key) || ordered.contains(&key.as_str()) {
                continue;
            }
            path.push(key);
            let merged = self.merge_field(original, key, value, path);
            path.pop();
            merged?;
        }

        // Deletions last, so they win over anything merged above.
        for (key, value) in patch {
            let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
                continue;
            };
            let Value::Array(doomed) = value else {
                return Err(malformed(path, format!("{key} must be a list")));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !doomed.iter().any(|d| json_equal(item, d)));
            }
        }
        Ok(Outcome::Keep)
    }

    fn merge_field<'p>(
        &self,
        original: &mut Map<String, Value>,
        key: &'p str,
        value: &'p Value,
        path: &mut Path<'p>,
    ) -> Result<(), PatchError> {
        match value {
            Value::Null => {
                original.shift_remove(key);
            }
            Value::Object(patch_map) => {
                let slot = original
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let outcome = match slot {
                    Value::Object(map) => self.merge_map(map, patch_map, path)?,
                    _ => Outcome::Keep,
                };
                if outcome == Outcome::Delete {
                    original.shift_remove(key);
                }
            }
            Value::Array(patch_list) => {
                let strategy = self.keys.list_strategy(path);
                let current = match original.get_mut(key) {
                    Some(Value::Array(list)) => std::mem::take(list),
                    _ => Vec::new(),
                };
                let merged = self.merge_list(current, patch_list, &strategy, path)?;
                original.insert(key.to_owned(), Value::Array(merged));
            }
            scalar => {
                original.insert(key.to_owned(), scalar.clone());
            }
        }
        Ok(())
    }

    /// A patch value that has nothing to merge into, with its directives
    /// applied to nothing; `None` if it deletes itself.
    fn fresh<'p>(
        &self,
        value: &'p Value,
        path: &mut Path<'p>,
    ) -> Result<Option<Value>, PatchError> {
        Ok(match value {
            Value::Object(patch_map) => {
                let mut map = Map::new();
                match self.merge_map(&mut map, patch_map, path)? {
                    Outcome::Keep => Some(Value::Object(map)),
                    Outcome::Delete => None,
                }
            }
            Value::Array(list) => {
                let strategy = self.keys.list_strategy(path);
                Some(Value::Array(self.merge_list(
                    Vec::new(),
                    list,
                    &strategy,
                    path,
                )?))
            }
            other => Some(other.clone()),
        })
    }

    fn merge_list<'p>(
        &self,
        mut original: Vec<Value>,
        patch: &'p [Value],
        strategy: &ListStrategy,
        path: &mut Path<'p>,
    ) -> Result<Vec<Value>, PatchError> {
        let keys = map_keys(strategy);
        let mut replace = false;
        let mut items: Vec<&'p Value> = Vec::with_capacity(patch.len());
        for item in patch {
            let Some(fields) = item.as_object().filter(|m| m.contains_key(PATCH_DIRECTIVE)) else {
                items.push(item);
                continue;
            };
            match fields.get(PATCH_DIRECTIVE).and_then(Value::as_str) {
                Some("replace") => replace = true,
                Some("merge") if fields.len() > 1 => items.push(item),
                Some("merge") => {}
                Some("delete") => match keys {
                    Some(keys) if keys.iter().any(|k| fields.contains_key(k)) => {
                        original.retain(|o| !same_item(o, item, Some(keys)));
                    }
                    Some(keys) => {
                        return Err(malformed(
                            path,
                            format!("a $patch: delete item needs the merge key {keys:?}"),
                        ));
                    }
                    // An atomic list is replaced: nothing to delete from.
                    None if *strategy == ListStrategy::Atomic => {}
                    None => {
                        return Err(malformed(
                            path,
                            "$patch: delete in a list without merge key",
                        ));
                    }
                },
                _ => return Err(malformed(path, format!("unknown $patch in {item}"))),
            }
        }
        if replace {
            original.clear();
        }

        if *strategy != ListStrategy::Atomic && items.iter().any(|v| v.is_array()) {
            return Err(unmergeable(path, "lists of lists cannot be merged"));
        }
        let all_scalars =
            || items.iter().all(|v| !v.is_object()) && original.iter().all(|v| !v.is_object());
        match keys {
            None if *strategy == ListStrategy::Atomic => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.extend(self.fresh(item, path)?);
                }
                Ok(out)
            }
            // Sets, and keyed lists that hold scalars, merge as a union
            // (Go merges any list of primitives with strategy merge so).
            None => self.union(original, items, path),
            Some(_) if all_scalars() => self.union(original, items, path),
            Some(keys) => {
                for item in items {
                    let Value::Object(fields) = item else {
                        return Err(unmergeable(
                            path,
                            format!("list item {item} is not an object"),
                        ));
                    };
                    if !keys.iter().any(|k| fields.contains_key(k)) {
                        return Err(unmergeable(
                            path,
                            format!("list item has no merge key {keys:?}"),
                        ));
                    }
                    match position(&original, item, Some(keys)) {
                        Some(i) => {
                            let outcome = match original.get_mut(i) {
                                Some(Value::Object(live)) => self.merge_map(live, fields, path)?,
                                _ => Outcome::Keep,
                            };
                            if outcome == Outcome::Delete {
                                original.remove(i);
                            }
                        }
                        None => original.extend(self.fresh(item, path)?),
                    }
                }
                Ok(original)
            }
        }
    }

    fn union<'p>(
        &self,
        original: Vec<Value>,
        items: Vec<&'p Value>,
        path: &mut Path<'p>,
    ) -> Result<Vec<Value>, PatchError> {
        let mut added = Vec::with_capacity(items.len());
        for item in items {
            added.extend(self.fresh(item, path)?);
        }
        let mut out: Vec<Value> = Vec::with_capacity(original.len() + added.len());
        for value in original.into_iter().chain(added) {
            if !out.iter().any(|o| json_equal(o, &value)) {
                out.push(value);
            }
        }
        Ok(out)
    }

    /// Port of apimachinery `mergePatchIntoOriginal`: merge the list, then
    /// order the items named in `$setElementOrder` by it and keep the
    /// server-only items near their live position.
    fn ordered_list<'p>(
        &self,
        original: Option<Vec<Value>>,
        patch: Option<&'p [Value]>,
        order: &[Value],
        path: &mut Path<'p>,
    ) -> Result<Option<Vec<Value>>, PatchError> {
        let strategy = self.keys.list_strategy(path);
        let keys = map_keys(&strategy);
        if let Some(patch) = patch {
            check_order(patch, order, keys).map_err(|detail| malformed(path, detail))?;
        }
        let live = original.clone().unwrap_or_default();
        let merged = match (original, patch) {
            (None, None) => return Ok(None),
            (Some(list), None) => list,
            (list, Some(patch)) => {
                self.merge_list(list.unwrap_or_default(), patch, &strategy, path)?
            }
        };
        let (mut listed, unlisted): (Vec<Value>, Vec<Value>) = merged
            .into_iter()
            .partition(|v| position(order, v, keys).is_some());
        listed.sort_by_cached_key(|v| position(order, v, keys));
        let (mut server_only, unknown): (Vec<Value>, Vec<Value>) = unlisted
            .into_iter()
            .partition(|v| position(&live, v, keys).is_some());
        server_only.sort_by_cached_key(|v| position(&live, v, keys));
        server_only.extend(unknown);
        Ok(Some(merge_sorted(server_only, listed, &live, keys)))
    }
}

/// `$retainKeys`: drop live fields not listed; the patch may only set
/// listed fields (Go: `ErrBadPatchFormatForRetainKeys`, a 400).
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &[&str],
) -> Result<(), PatchError> {
    let names = retain
        .as_array()
        .and_then(|list| list.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .ok_or_else(|| malformed(path, "$retainKeys must be a list of field names"))?;
    for (key, value) in patch {
        if !value.is_null() && !is_directive_key(key) && !names.contains(&key.as_str()) {
            return Err(malformed(
                path,
                format!("field {key:?} is not in $retainKeys"),
            ));
        }
    }
    original.retain(|key, _| names.contains(&key.as_str()));
    Ok(())
}

/// Go `validatePatchWithSetOrderList`: the patch items must appear in the
/// `$setElementOrder` list, in the same relative order.
fn check_order(patch: &[Value], order: &[Value], keys: Option<&[String]>) -> Result<(), String> {
    let mut pending = patch.iter().filter(|v| !has_patch_directive(v)).peekable();
    for wanted in order {
        match pending.peek() {
            Some(item) if same_item(item, wanted, keys) => {
                pending.next();
            }
            Some(_) => {}
            None => break,
        }
    }
    if pending.peek().is_some() && !order.is_empty() {
        return Err(format!(
            "the order of the patch list does not match its {SET_ELEMENT_ORDER} list"
        ));
    }
    Ok(())
}

/// Go `mergeSortedSlice`: interleave server-only items (`left`) into the
/// ordered patch items (`right`), keeping both relative orders and placing
/// a server-only item before a patch item that follows it in the live list.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    live: &[Value],
    keys: Option<&[String]>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(live, l, keys), position(live, r, keys)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}
