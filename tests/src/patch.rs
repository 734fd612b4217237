//! The PATCH bodies the API server applies itself: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902) and Kubernetes strategic merge patch,
//! as pure functions over `serde_json::Value`. Failures carry the HTTP code
//! and Status reason the Go kube-apiserver answers with.

use serde_json::{Map, Number, Value};

use crate::merge_keys::{ListStrategy, MergeKeys};

/// The Go apiserver's `maxJSONPatchOperations`.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied.
///
/// The codes follow kube-apiserver's `patch.go`: an undecodable patch or a
/// malformed SMP directive is 400 BadRequest; any error from applying a
/// JSON patch (evanphx/json-patch: failed `test`, missing path) is 422
/// Invalid, not 409 Conflict; an SMP that does not fit the object (list of
/// lists) is 422 Invalid. We also report structurally malformed JSON-patch
/// operations (unknown `op`, missing `value`) as 400 where Go says 422,
/// because they are faults of the document, not of the object.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed.
    #[error("malformed patch: {0}")]
    Malformed(String),
    /// A JSON-patch `test` operation found a different value.
    #[error("json patch operation {index}: testing value {path} failed: test failed")]
    TestFailed { index: usize, path: String },
    /// A JSON-patch operation's path does not exist or cannot hold a value.
    #[error("json patch operation {index}: {op} operation does not apply at {path:?}: {detail}")]
    NotApplicable {
        index: usize,
        op: String,
        path: String,
        detail: String,
    },
    /// A well-formed strategic merge patch does not fit the object.
    #[error("strategic merge patch does not apply at {path}: {detail}")]
    Unmergeable { path: String, detail: String },
    /// More operations than the Go apiserver accepts.
    #[error("the allowed maximum operations in a JSON patch is {max}, got {count}")]
    TooManyOperations { count: usize, max: usize },
}

impl PatchError {
    /// The HTTP status code of the Kubernetes `Status` answer.
    pub fn http_code(&self) -> u16 {
        match self {
            PatchError::Malformed(_) => 400,
            PatchError::TestFailed { .. }
            | PatchError::NotApplicable { .. }
            | PatchError::Unmergeable { .. } => 422,
            PatchError::TooManyOperations { .. } => 413,
        }
    }

    /// The `reason` of the Kubernetes `Status` answer.
    pub fn reason(&self) -> &'static str {
        match self.http_code() {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            _ => "Invalid",
        }
    }
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.shift_remove(key);
            } else {
                merge_patch(target.entry(key.as_str()).or_insert(Value::Null), value);
            }
        }
    }
}

/// RFC 6902 JSON patch. All or nothing: on error `target` is unchanged.
///
/// Like evanphx/json-patch (kube-apiserver), a `test` of an absent object
/// member passes when the expected value is `null`; kube-runtime's
/// finalizer helper depends on it.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let Value::Array(ops) = ops else {
        return Err(PatchError::Malformed(
            "a JSON patch must be an array of operations".into(),
        ));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: ops.len(),
            max: MAX_JSON_PATCH_OPERATIONS,
        });
    }
    // Decode every operation first so a malformed document is a 400 no
    // matter where the bad operation sits.
    let ops = ops
        .iter()
        .enumerate()
        .map(|(index, op)| Op::parse(index, op))
        .collect::<Result<Vec<_>, _>>()?;
    let mut doc = target.clone();
    for op in &ops {
        op.apply(&mut doc)?;
    }
    *target = doc;
    Ok(())
}

/// A parsed JSON pointer: the original text for messages, unescaped tokens.
struct Pointer<'a> {
    text: &'a str,
    tokens: Vec<String>,
}

impl<'a> Pointer<'a> {
    fn parse(text: &'a str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                text,
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("JSON pointer {text:?} does not start with '/'"));
        };
        let tokens = rest
            .split('/')
            .map(|raw| unescape_token(raw).ok_or_else(|| format!("bad escape in {text:?}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { text, tokens })
    }
}

/// `~1` is `/` and `~0` is `~`; any other `~` is invalid (RFC 6901).
fn unescape_token(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

enum OpKind<'a> {
    Add(&'a Value),
    Remove,
    Replace(&'a Value),
    Move(Pointer<'a>),
    Copy(Pointer<'a>),
    Test(&'a Value),
}

struct Op<'a> {
    index: usize,
    name: &'a str,
    path: Pointer<'a>,
    kind: OpKind<'a>,
}

impl<'a> Op<'a> {
    fn parse(index: usize, raw: &'a Value) -> Result<Self, PatchError> {
        let bad = |detail: String| PatchError::Malformed(format!("operation {index}: {detail}"));
        let Value::Object(fields) = raw else {
            return Err(bad("not a JSON object".into()));
        };
        let string = |member: &str| match fields.get(member) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(bad(format!("{member:?} is not a string"))),
            None => Err(bad(format!("missing {member:?}"))),
        };
        let name = string("op")?;
        let path = Pointer::parse(string("path")?).map_err(bad)?;
        let value = || {
            fields
                .get("value")
                .ok_or_else(|| bad(format!("{name} operation without \"value\"")))
        };
        let from = || Pointer::parse(string("from")?).map_err(bad);
        let kind = match name {
            "add" => OpKind::Add(value()?),
            "remove" => OpKind::Remove,
            "replace" => OpKind::Replace(value()?),
            "move" => OpKind::Move(from()?),
            "copy" => OpKind::Copy(from()?),
            "test" => OpKind::Test(value()?),
            other => return Err(bad(format!("unknown operation {other:?}"))),
        };
        Ok(Self {
            index,
            name,
            path,
            kind,
        })
    }

    fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        let path = &self.path.tokens;
        let result = match &self.kind {
            OpKind::Add(value) => add(doc, path, (*value).clone()),
            OpKind::Remove => remove(doc, path).map(drop),
            OpKind::Replace(value) => match get_mut(doc, path) {
                Some(slot) => {
                    *slot = (*value).clone();
                    Ok(())
                }
                None => Err("doc is missing path".to_owned()),
            },
            OpKind::Move(from) => {
                if from.tokens == *path {
                    get(doc, path)
                        .map(drop)
                        .ok_or_else(|| format!("doc is missing from path {:?}", from.text))
                } else if path.starts_with(&from.tokens) {
                    Err(format!("cannot move {:?} into its own child", from.text))
                } else {
                    remove(doc, &from.tokens)
                        .map_err(|e| format!("from {:?}: {e}", from.text))
                        .and_then(|value| add(doc, path, value))
                }
            }
            OpKind::Copy(from) => match get(doc, &from.tokens) {
                Some(value) => add(doc, path, value.clone()),
                None => Err(format!("doc is missing from path {:?}", from.text)),
            },
            OpKind::Test(expected) => return self.test(doc, expected),
        };
        result.map_err(|detail| self.not_applicable(detail))
    }

    fn test(&self, doc: &Value, expected: &Value) -> Result<(), PatchError> {
        let path = &self.path.tokens;
        let failed = || PatchError::TestFailed {
            index: self.index,
            path: self.path.text.to_owned(),
        };
        if let Some(actual) = get(doc, path) {
            return if json_equal(actual, expected) {
                Ok(())
            } else {
                Err(failed())
            };
        }
        // evanphx/json-patch reads an absent member of an existing object as
        // null; an absent parent or array index is still an error.
        let in_object = path
            .split_last()
            .and_then(|(_, parent)| get(doc, parent))
            .is_some_and(Value::is_object);
        match (in_object, expected.is_null()) {
            (true, true) => Ok(()),
            (true, false) => Err(failed()),
            (false, _) => Err(self.not_applicable("doc is missing path".to_owned())),
        }
    }

    fn not_applicable(&self, detail: String) -> PatchError {
        PatchError::NotApplicable {
            index: self.index,
            op: self.name.to_owned(),
            path: self.path.text.to_owned(),
            detail,
        }
    }
}

/// An array index token: digits without leading zeros (RFC 6901).
fn array_index(token: &str) -> Option<usize> {
    let digits_ok = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if digits_ok { token.parse().ok() } else { None }
}

fn get<'v>(doc: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    tokens.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get(token),
        Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
        _ => None,
    })
}

fn get_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Option<&'v mut Value> {
    let mut node = doc;
    for token in tokens {
        node = match node {
            Value::Object(map) => map.get_mut(token)?,
            Value::Array(list) => list.get_mut(array_index(token)?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(map)) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let index = if last == "-" {
                list.len()
            } else {
                array_index(last).ok_or_else(|| format!("invalid array index {last:?}"))?
            };
            if index > list.len() {
                return Err(format!(
                    "index {index} out of bounds for an array of length {}",
                    list.len()
                ));
            }
            list.insert(index, value);
            Ok(())
        }
        Some(_) => Err("the parent is neither an object nor an array".to_owned()),
        None => Err("doc is missing path".to_owned()),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let Some((last, parent)) = tokens.split_last() else {
        return Err("cannot remove the whole document".to_owned());
    };
    match get_mut(doc, parent) {
        Some(Value::Object(map)) => map
            .shift_remove(last)
            .ok_or_else(|| "doc is missing path".to_owned()),
        Some(Value::Array(list)) => match array_index(last) {
            Some(i) if i < list.len() => Ok(list.remove(i)),
            _ => Err(format!("invalid array index {last:?}")),
        },
        _ => Err("doc is missing path".to_owned()),
    }
}

/// JSON equality with numbers compared by value, so `1` equals `1.0`.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn numbers_equal(x: &Number, y: &Number) -> bool {
    if let (Some(p), Some(q)) = (x.as_i64(), y.as_i64()) {
        return p == q;
    }
    if let (Some(p), Some(q)) = (x.as_u64(), y.as_u64()) {
        return p == q;
    }
    // An integer against a float compares as f64, as Go's `float64` does;
    // two integers never reach here, so they are never rounded.
    (x.is_f64() || y.is_f64()) && x.as_f64() == y.as_f64()
}

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn is_directive_key(key: &str) -> bool {
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

#[cfg(test)]
mod tests {
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
        let patch =
            json!({"spec": {"$patch": "replace", "template": {"spec": {"containers": []}}}});
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
}
