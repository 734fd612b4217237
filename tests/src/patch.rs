//! The PATCH bodies the API server applies itself: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902) and Kubernetes strategic merge patch,
//! as pure functions over `serde_json::Value`. Failures carry the HTTP code
//! and Status reason the Go kube-apiserver answers with.

mod strategic;

use serde_json::{Map, Number, Value};

pub use strategic::strategic_merge_patch;

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

#[cfg(test)]
mod tests;
