//! Custom-resource schemas as kube-apiserver's apiextensions applies them:
//! OpenAPI v3 validation with Kubernetes' error texts (and update ratcheting),
//! list-type and embedded-resource checks, CEL `x-kubernetes-validations`,
//! pruning, defaulting and the structural checks of CRD creation. Pure
//! functions over `serde_json::Value`; client input never panics them.

mod cel;
mod prune;
mod rules;
mod structural;
mod validation;

use std::collections::HashMap;
use std::rc::Rc;

use regex::Regex;
use serde_json::{Map, Value};

pub use prune::{apply_defaults, prune};
pub use rules::{compile_rules, rule_errors};
pub use structural::{check_structural, structural_errors};
pub use validation::validate;

/// Deepest schema nesting walked; `check_structural` rejects deeper schemas.
const MAX_DEPTH: usize = 100;
const META: [&str; 3] = ["apiVersion", "kind", "metadata"];
const EMBEDDED: &str = "x-kubernetes-embedded-resource";
const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";
const INT_OR_STRING: &str = "x-kubernetes-int-or-string";
const RULES: &str = "x-kubernetes-validations";
const LIST_TYPE: &str = "x-kubernetes-list-type";
const MAP_TYPE: &str = "x-kubernetes-map-type";
const MAP_KEYS: &str = "x-kubernetes-list-map-keys";
/// String formats kube-apiserver validates (dashes dropped, as go-openapi does).
const STRING_FORMATS: &str = "bsonobjectid uri email hostname ipv4 ipv6 cidr mac uuid uuid3 uuid4 \
    uuid5 isbn isbn10 isbn13 creditcard ssn hexcolor rgbcolor byte password date duration \
    datetime quantity";
const REASONS: &str =
    "FieldValueDuplicate FieldValueForbidden FieldValueInvalid FieldValueRequired";
const NOT_CHECKED: &str = "some validation rules were not checked because the object was \
    invalid; correct the existing errors to complete validation";

/// One field-level error, as `k8s.io/apimachinery/pkg/util/validation/field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field path (`spec.containers[0].name`); empty for the object root.
    pub field: String,
    pub kind: FieldErrorKind,
}

/// The error type with the bad value and detail Kubernetes prints.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldErrorKind {
    Required {
        detail: String,
    },
    Invalid {
        value: Value,
        detail: String,
    },
    /// The value does not have the schema type (printed like `Invalid`).
    TypeInvalid {
        value: Value,
        detail: String,
    },
    NotSupported {
        value: Value,
        allowed: Vec<Value>,
    },
    Duplicate {
        value: Value,
    },
    Forbidden {
        detail: String,
    },
    TooLong {
        detail: String,
    },
    TooMany {
        actual: Option<i64>,
        detail: String,
    },
    Internal {
        detail: String,
    },
}

use FieldErrorKind as K;

impl FieldError {
    /// `field.Error.Error()`, e.g. `spec.type: Unsupported value: "k9s": supported values: "k8s"`.
    pub fn message(&self) -> String {
        let field = if self.field.is_empty() {
            "<nil>"
        } else {
            &self.field
        };
        format!("{field}: {}", self.body())
    }

    /// `field.Error.ErrorBody()`: the message without the field path.
    pub fn body(&self) -> String {
        let (head, detail) = match &self.kind {
            K::Required { detail } => ("Required value".to_string(), detail.as_str()),
            K::Forbidden { detail } => ("Forbidden".to_string(), detail.as_str()),
            K::TooLong { detail } => ("Too long".to_string(), detail.as_str()),
            K::Internal { detail } => ("Internal error".to_string(), detail.as_str()),
            K::Invalid { value, detail } | K::TypeInvalid { value, detail } => (
                format!("Invalid value: {}", go_value(value)),
                detail.as_str(),
            ),
            K::Duplicate { value } => (format!("Duplicate value: {}", go_value(value)), ""),
            K::TooMany {
                actual: Some(n),
                detail,
            } => (format!("Too many: {n}"), detail.as_str()),
            K::TooMany {
                actual: None,
                detail,
            } => ("Too many".to_string(), detail.as_str()),
            K::NotSupported { value, allowed } => {
                let quote = |a: &Value| go_quote(&a.as_str().map_or(a.to_string(), str::to_string));
                let list = allowed.iter().map(quote).collect::<Vec<_>>().join(", ");
                let head = format!("Unsupported value: {}", go_value(value));
                let detail = format!("supported values: {list}");
                return if list.is_empty() {
                    head
                } else {
                    format!("{head}: {detail}")
                };
            }
        };
        if detail.is_empty() {
            head
        } else {
            format!("{head}: {detail}")
        }
    }

    /// The `CauseType` of a Status cause.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            K::Required { .. } => "FieldValueRequired",
            K::Invalid { .. } => "FieldValueInvalid",
            K::TypeInvalid { .. } => "FieldValueTypeInvalid",
            K::NotSupported { .. } => "FieldValueNotSupported",
            K::Duplicate { .. } => "FieldValueDuplicate",
            K::Forbidden { .. } => "FieldValueForbidden",
            K::TooLong { .. } => "FieldValueTooLong",
            K::TooMany { .. } => "FieldValueTooMany",
            K::Internal { .. } => "InternalError",
        }
    }
}

fn invalid(v: impl Into<Value>, d: impl Into<String>) -> K {
    K::Invalid {
        value: v.into(),
        detail: d.into(),
    }
}

fn required(d: &str) -> K {
    K::Required { detail: d.into() }
}

fn forbidden(d: &str) -> K {
    K::Forbidden { detail: d.into() }
}

fn not_supported(v: &Value, allowed: &str) -> K {
    let allowed = allowed.split(' ').map(Value::from).collect();
    K::NotSupported {
        value: v.clone(),
        allowed,
    }
}

/// Go's rendering of a bad value: `%q` strings, `%v` numbers, `%#v` composites.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".into(),
        Value::Number(n) => n.as_i64().map_or_else(
            || cel::go_float(n.as_f64().unwrap_or(0.0)),
            |i| i.to_string(),
        ),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        _ => go_sharp(v),
    }
}

fn go_sharp(v: &Value) -> String {
    let items = |mut v: Vec<String>, sort: bool| {
        if sort {
            v.sort();
        }
        v.join(", ")
    };
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Array(a) => format!(
            "[]interface {{}}{{{}}}",
            items(a.iter().map(go_sharp).collect(), false)
        ),
        Value::Object(m) => {
            let entries = m
                .iter()
                .map(|(k, x)| format!("{}:{}", go_quote(k), go_sharp(x)));
            format!(
                "map[string]interface {{}}{{{}}}",
                items(entries.collect(), true)
            )
        }
        other => go_value(other),
    }
}

/// `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        let esc = match c {
            '"' | '\\' => format!("\\{c}"),
            '\n' => "\\n".into(),
            '\r' => "\\r".into(),
            '\t' => "\\t".into(),
            '\u{7}' => "\\a".into(),
            '\u{8}' => "\\b".into(),
            '\u{c}' => "\\f".into(),
            '\u{b}' => "\\v".into(),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
            c if c.is_control() || c == '\u{feff}' => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        };
        out.push_str(&esc);
    }
    out + "\""
}

#[derive(Clone)]
enum Seg {
    Field(String),
    Index(usize),
    Key(String),
}

/// Renders a path. The OpenAPI validator joins map keys with dots
/// (`spec.vars.key`), `field.Path` subscripts them (`spec.vars[key]`).
fn path_str(path: &[Seg], openapi: bool) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => s += &format!("[{i}]"),
            Seg::Key(k) if !openapi => s += &format!("[{k}]"),
            Seg::Field(n) | Seg::Key(n) if s.is_empty() => s += n,
            Seg::Field(n) | Seg::Key(n) => s += &format!(".{n}"),
        }
    }
    s
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key) == Some(&Value::Bool(true))
}

fn text<'a>(s: &'a Value, key: &str) -> Option<&'a str> {
    s.get(key).and_then(Value::as_str)
}

fn num(s: &Value, key: &str) -> Option<f64> {
    s.get(key).and_then(Value::as_f64)
}

fn list<'a>(s: &'a Value, key: &str) -> &'a [Value] {
    s.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn props(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

fn prop<'a>(s: &'a Value, k: &str) -> Option<&'a Value> {
    props(s).and_then(|p| p.get(k))
}

/// The schema of additional properties, when it is a schema (not a bool).
fn ap_schema(s: &Value) -> Option<&Value> {
    s.get("additionalProperties").filter(|a| a.is_object())
}

fn types(s: &Value) -> Vec<&str> {
    match text(s, "type") {
        Some(t) if !t.is_empty() => vec![t],
        _ if flag(s, INT_OR_STRING) => vec!["integer", "string"],
        _ => Vec::new(),
    }
}

/// The format kube-apiserver keeps after stripping unsupported ones.
fn format_of<'a>(s: &'a Value, types: &[&str]) -> &'a str {
    let f = text(s, "format").unwrap_or("");
    let keep = match types {
        ["integer"] => matches!(f, "int32" | "int64"),
        ["number"] => matches!(f, "float" | "double"),
        [] | ["string"] | [_, _, ..] => STRING_FORMATS.split(' ').any(|k| k == f.replace('-', "")),
        _ => false,
    };
    if keep { f } else { "" }
}

/// `swag.IsFloat64AJSONInteger`.
fn is_json_integer(f: f64) -> bool {
    let g = f.trunc();
    f.is_finite() && (f == g || (f - g).abs() / (f.abs() + g.abs()) < 1e-9)
}

/// The old item a `x-kubernetes-list-type: map` item corresponds to.
fn correlate<'a>(s: &Value, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    if text(s, LIST_TYPE) != Some("map") {
        return None;
    }
    let key = |x: &Value, k: &Value| k.as_str().and_then(|k| x.get(k)).cloned();
    let same =
        |o: &&Value| o.is_object() && list(s, MAP_KEYS).iter().all(|k| key(o, k) == key(item, k));
    old.and_then(Value::as_array)?.iter().find(same)
}

/// One walk over a schema (and a value): the errors found, the current path
/// and compiled regexes and CEL programs. Its checks are methods spread over
/// [`validation`], [`rules`] and [`structural`]; the path helpers are here.
#[derive(Default)]
struct Walk {
    errs: Vec<FieldError>,
    path: Vec<Seg>,
    regexes: HashMap<String, Result<Regex, String>>,
    programs: HashMap<(usize, usize, bool), Result<Rc<cel::Program>, String>>,
}

impl Walk {
    fn at(&self, openapi: bool) -> String {
        path_str(&self.path, openapi)
    }

    fn add(&mut self, field: impl Into<String>, kind: K) {
        self.errs.push(FieldError {
            field: field.into(),
            kind,
        });
    }

    fn regex(&mut self, pattern: &str) -> Result<&Regex, String> {
        let entry = self.regexes.entry(pattern.to_string());
        let compiled = entry.or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string()));
        compiled.as_ref().map_err(Clone::clone)
    }

    fn matches(&mut self, pattern: &str, s: &str) -> bool {
        self.regex(pattern).is_ok_and(|re| re.is_match(s))
    }

    fn descend<T>(&mut self, seg: Seg, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(seg);
        let r = f(self);
        self.path.pop();
        r
    }

    fn child(&mut self, seg: Seg, openapi: bool) -> String {
        self.descend(seg, |w| w.at(openapi))
    }
}

#[cfg(test)]
mod tests;
