//! Custom-resource schemas as kube-apiserver's apiextensions applies them:
//! OpenAPI v3 validation with Kubernetes' error texts (and update ratcheting),
//! list-type and embedded-resource checks, CEL `x-kubernetes-validations`,
//! pruning, defaulting and the structural checks of CRD creation. Pure
//! functions over `serde_json::Value`; client input never panics them.

mod cel;

use std::collections::HashMap;
use std::rc::Rc;

use regex::Regex;
use serde_json::{Map, Value, json};

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

    /// kube-openapi's SchemaValidator, validator by validator. Values equal to
    /// their correlated old value are ratcheted (warnings in Kubernetes).
    fn openapi(&mut self, s: &Value, v: &Value, old: Option<&Value>, depth: usize) {
        if old == Some(v) || depth > MAX_DEPTH {
            return;
        }
        let p = self.at(true);
        let ts = types(s);
        if v.is_null() && !ts.is_empty() && !flag(s, "nullable") {
            self.type_error(&p, &ts.join(","), "null");
        }
        if !v.is_null() {
            self.type_check(s, v, &p, &ts);
        }
        match v {
            Value::String(x) => {
                self.string(s, x, &p);
                let f = format_of(s, &ts);
                if !f.is_empty() && !self.format_ok(&f.replace('-', ""), x) {
                    let detail = format!("{p} in body must be of type {f}: {}", go_quote(x));
                    self.add(
                        &p,
                        K::TypeInvalid {
                            value: v.clone(),
                            detail,
                        },
                    );
                }
            }
            Value::Number(n) => self.number(s, n, &p),
            Value::Array(a) => self.array(s, a, old, &p, depth),
            _ => {}
        }
        let allowed = list(s, "enum");
        let same = |e: &Value| e == v || e.as_f64().is_some_and(|e| Some(e) == v.as_f64());
        if !allowed.is_empty() && (v.is_null() || !allowed.iter().any(same)) {
            self.add(
                &p,
                K::NotSupported {
                    value: v.clone(),
                    allowed: allowed.to_vec(),
                },
            );
        }
        if let Value::Object(m) = v {
            self.object(s, m, old, &p, depth);
        }
    }

    fn type_error(&mut self, p: &str, want: &str, got: &str) {
        let detail = format!("{p} in body must be of type {want}: {}", go_quote(got));
        self.add(
            p,
            K::TypeInvalid {
                value: got.into(),
                detail,
            },
        );
    }

    /// kube-openapi's type validator, including its integer/number leniency.
    fn type_check(&mut self, s: &Value, v: &Value, p: &str, ts: &[&str]) {
        let fmt = format_of(s, ts);
        let (got, got_fmt) = match v {
            Value::Bool(_) => ("boolean", ""),
            Value::Number(n) if n.is_i64() => ("integer", "int64"),
            Value::Number(_) => ("number", "float64"),
            Value::String(_) => ("string", ""),
            Value::Array(_) => ("array", ""),
            _ => ("object", ""),
        };
        let has = |t: &str| ts.contains(&t);
        let float_int =
            v.as_f64().is_some_and(is_json_integer) && got == "number" && has("integer");
        let lenient = has(got) || float_int || (got == "integer" && has("number"));
        let stringish = v.is_string() || v.is_array();
        let numeric = has("number") || has("integer");
        if (ts.is_empty() && fmt.is_empty()) || (stringish && !fmt.is_empty() && !numeric) {
            return;
        }
        if !(stringish || fmt.is_empty() || lenient || got_fmt == fmt) {
            self.type_error(p, fmt, got_fmt);
        } else if !lenient {
            self.type_error(p, &ts.join(","), got);
        }
    }

    fn string(&mut self, s: &Value, x: &str, p: &str) {
        let n = x.chars().count() as f64;
        if let Some(max) = num(s, "maxLength").filter(|m| n > *m) {
            let detail = format!("may not be longer than {max}");
            return self.add(p, K::TooLong { detail });
        }
        if let Some(min) = num(s, "minLength").filter(|m| n < *m) {
            return self.add(
                p,
                invalid(
                    x,
                    format!("{p} in body should be at least {min} chars long"),
                ),
            );
        }
        if let Some(pattern) = text(s, "pattern") {
            let detail = match self.regex(pattern) {
                Ok(re) if re.is_match(x) => return,
                Ok(_) => format!("{p} in body should match '{pattern}'"),
                Err(e) => {
                    format!("{p} in body should match '{pattern}, but pattern is invalid: {e}'")
                }
            };
            self.add(p, invalid(x, detail));
        }
    }

    fn format_ok(&mut self, format: &str, x: &str) -> bool {
        let ip = |x: &str| x.parse::<std::net::IpAddr>().is_ok();
        match format {
            "datetime" => self.datetime(x),
            "date" => is_date(x),
            "uuid" | "uuid3" | "uuid4" | "uuid5" => {
                let hex = "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$";
                self.matches(hex, x)
            }
            "ipv4" => ip(x) && x.contains('.'),
            "ipv6" => ip(x) && x.contains(':'),
            "cidr" => x.split_once('/').is_some_and(|(a, n)| {
                let bits = if a.contains(':') { 128 } else { 32 };
                ip(a) && n.parse::<u8>().is_ok_and(|n| n <= bits)
            }),
            "byte" => x.len().is_multiple_of(4) && self.matches("^[A-Za-z0-9+/]*={0,2}$", x),
            "hexcolor" => self.matches("^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", x),
            "bsonobjectid" => self.matches("^[0-9a-fA-F]{24}$", x),
            _ => true,
        }
    }

    /// strfmt's `IsDateTime`: an RFC 3339 date, `T`, time and zone.
    fn datetime(&mut self, x: &str) -> bool {
        const TIME: &str =
            r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$";
        let lower = x.to_lowercase();
        let mut parts = lower.split('t');
        let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
            return false;
        };
        let Ok(re) = self.regex(TIME) else {
            return false;
        };
        let Some(c) = re.captures(time) else {
            return false;
        };
        let f = |i: usize| c.get(i).map_or("99", |m| m.as_str());
        x.len() >= 4 && is_date(date) && f(1) <= "23" && f(2) <= "59" && f(3) <= "59"
    }

    fn number(&mut self, s: &Value, n: &serde_json::Number, p: &str) {
        let v = Value::Number(n.clone());
        let (int, f) = (n.as_i64(), n.as_f64().unwrap_or(f64::NAN));
        // Integers compare against bounds truncated to integers, as kube-openapi does.
        let shown = |b: f64| int.map_or_else(|| cel::go_float(b), |_| (b as i64).to_string());
        if let Some(factor) = num(s, "multipleOf") {
            let ok = match int {
                Some(i) if factor >= 1.0 => i.checked_rem(factor as i64).is_none_or(|r| r == 0),
                _ => is_json_integer(if factor < 1.0 {
                    1.0 / factor * f
                } else {
                    f / factor
                }),
            };
            if factor < 0.0 {
                let d = format!(
                    "factor MultipleOf declared for {p} must be positive: {}",
                    cel::go_float(factor)
                );
                self.add(p, invalid(factor, d));
            } else if !ok {
                let d = format!("{p} in body should be a multiple of {}", shown(factor));
                self.add(p, invalid(v.clone(), d));
            }
        }
        for (key, below) in [("minimum", true), ("maximum", false)] {
            let Some(bound) = num(s, key) else { continue };
            let exclusive = flag(
                s,
                if below {
                    "exclusiveMinimum"
                } else {
                    "exclusiveMaximum"
                },
            );
            let ord = match int {
                Some(i) => i.cmp(&(bound as i64)),
                None => f.partial_cmp(&bound).unwrap_or(std::cmp::Ordering::Equal),
            };
            let ord = if below { ord.reverse() } else { ord };
            if ord.is_gt() || (exclusive && ord.is_eq()) {
                let rel = if below { "greater than" } else { "less than" };
                let or_equal = if exclusive { "" } else { " or equal to" };
                let d = format!("{p} in body should be {rel}{or_equal} {}", shown(bound));
                self.add(p, invalid(v.clone(), d));
            }
        }
    }

    fn array(&mut self, s: &Value, a: &[Value], old: Option<&Value>, p: &str, depth: usize) {
        if let Some(items) = s.get("items").filter(|i| i.is_object()) {
            for (i, x) in a.iter().enumerate() {
                let o = correlate(s, x, old);
                self.descend(Seg::Index(i), |w| w.openapi(items, x, o, depth + 1));
            }
        }
        let n = a.len();
        if let Some(min) = num(s, "minItems").filter(|m| (n as f64) < *m) {
            self.add(
                p,
                invalid(n, format!("{p} in body should have at least {min} items")),
            );
        }
        if let Some(max) = num(s, "maxItems").filter(|m| (n as f64) > *m) {
            let detail = format!("must have at most {max} items");
            self.add(
                p,
                K::TooMany {
                    actual: Some(n as i64),
                    detail,
                },
            );
        }
        if flag(s, "uniqueItems") && a.iter().enumerate().any(|(i, x)| a[..i].contains(x)) {
            self.add(
                p,
                invalid("", format!("{p} in body shouldn't contain duplicates")),
            );
        }
    }

    fn object(
        &mut self,
        s: &Value,
        m: &Map<String, Value>,
        old: Option<&Value>,
        p: &str,
        depth: usize,
    ) {
        let n = m.len();
        if let Some(min) = num(s, "minProperties").filter(|x| (n as f64) < *x) {
            let d = format!("{p} in body should have at least {min} properties");
            return self.add(p, invalid(n, d));
        }
        if let Some(max) = num(s, "maxProperties").filter(|x| (n as f64) > *x) {
            let detail = format!("must have at most {max} items");
            return self.add(
                p,
                K::TooMany {
                    actual: Some(n as i64),
                    detail,
                },
            );
        }
        let skip = |k: &str| depth == 0 && META.contains(&k);
        let extra = |k: &&String| prop(s, k).is_none() && !skip(k);
        let old_of = |k: &str| old.and_then(|o| o.get(k));
        if s.get("additionalProperties") == Some(&Value::Bool(false)) {
            for k in m.keys().filter(extra) {
                self.add(
                    p,
                    invalid(
                        k.as_str(),
                        format!("{p}.{k} in body is a forbidden property"),
                    ),
                );
            }
        } else if let Some(ap) = ap_schema(s) {
            for (k, x) in m.iter().filter(|(k, _)| extra(k)) {
                self.descend(Seg::Key(k.clone()), |w| {
                    w.openapi(ap, x, old_of(k), depth + 1)
                });
            }
        }
        for (k, ps) in props(s).into_iter().flatten().filter(|(k, _)| !skip(k)) {
            if let Some(x) = m.get(k) {
                self.descend(Seg::Field(k.clone()), |w| {
                    w.openapi(ps, x, old_of(k), depth + 1)
                });
            }
        }
        for k in list(s, "required").iter().filter_map(Value::as_str) {
            if !m.contains_key(k) && !skip(k) {
                let field = self.child(Seg::Field(k.into()), true);
                self.add(field, required(""));
            }
        }
    }

    /// Walks values under their schemas (field.Path style) for the checks
    /// below that apiextensions runs after the OpenAPI validation.
    fn each(
        &mut self,
        s: &Value,
        v: &Value,
        depth: usize,
        f: &mut impl FnMut(&mut Self, &Value, &Value),
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        f(self, s, v);
        match v {
            Value::Object(m) => {
                for (k, x) in m
                    .iter()
                    .filter(|(k, _)| depth > 0 || !META.contains(&k.as_str()))
                {
                    if let Some(ps) = prop(s, k) {
                        self.descend(Seg::Field(k.clone()), |w| w.each(ps, x, depth + 1, f));
                    } else if let Some(ap) = ap_schema(s) {
                        self.descend(Seg::Key(k.clone()), |w| w.each(ap, x, depth + 1, f));
                    }
                }
            }
            Value::Array(a) => {
                let Some(items) = s.get("items") else { return };
                for (i, x) in a.iter().enumerate() {
                    self.descend(Seg::Index(i), |w| w.each(items, x, depth + 1, f));
                }
            }
            _ => {}
        }
    }

    /// Embedded resources need `apiVersion` and `kind` (apiextensions' objectmeta check).
    fn type_meta(&mut self, m: &Map<String, Value>) {
        const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters \
            or '-', start with an alphabetic character, and end with an alphanumeric character \
            (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
        for key in ["apiVersion", "kind"] {
            let field = self.child(Seg::Field(key.into()), false);
            let kind = match m.get(key) {
                None => required(""),
                Some(Value::String(x)) if x.is_empty() => required(""),
                Some(Value::String(x)) if key == "apiVersion" && x.matches('/').count() > 1 => {
                    invalid(x.as_str(), format!("unexpected GroupVersion string: {x}"))
                }
                Some(Value::String(x)) if key == "kind" => {
                    let lower = x.to_lowercase();
                    let mut errs = Vec::new();
                    if lower.len() > 63 {
                        errs.push("must be no more than 63 characters");
                    }
                    if !self.matches("^[a-z]([-a-z0-9]*[a-z0-9])?$", &lower) {
                        errs.push(DNS1035);
                    }
                    if errs.is_empty() {
                        continue;
                    }
                    let d = "may have mixed case, but should otherwise match: ";
                    invalid(x.as_str(), format!("{d}{}", errs.join(",")))
                }
                Some(Value::String(_)) => continue,
                Some(other) => invalid(other.clone(), "must be a string"),
            };
            self.add(field, kind);
        }
    }

    /// `x-kubernetes-list-type` invariants: unique set items and map keys.
    fn list_type(&mut self, s: &Value, a: &[Value]) {
        let names: Vec<&str> = list(s, MAP_KEYS).iter().filter_map(Value::as_str).collect();
        let keys: Vec<Option<Value>> = match text(s, LIST_TYPE) {
            Some("set") => a.iter().cloned().map(Some).collect(),
            Some("map") => {
                if let Some(i) = a.iter().position(|x| !x.is_null() && !x.is_object()) {
                    let field = self.child(Seg::Index(i), false);
                    let d = "must be an object for an array of list-type map";
                    return self.add(field, invalid(a[i].clone(), d));
                }
                // One key compares the bare value (None when unset), several a map of them.
                let key = |x: &Value| match names.as_slice() {
                    [one] => x.get(one).cloned(),
                    _ => Some(Value::Object(
                        names
                            .iter()
                            .filter_map(|k| Some((k.to_string(), x.get(k)?.clone())))
                            .collect(),
                    )),
                };
                a.iter().map(key).collect()
            }
            _ => return,
        };
        // Kubernetes reports only the second occurrence of each repeated item.
        let seen = |i: usize| keys[..i].iter().filter(|x| **x == keys[i]).count();
        for i in (0..a.len()).filter(|i| seen(*i) == 1) {
            let value = match (&keys[i], names.as_slice()) {
                (_, _) if text(s, LIST_TYPE) == Some("set") => a[i].clone(),
                (Some(k), [one]) => json!({ *one: k }),
                (Some(k), _) => k.clone(),
                (None, _) => json!({}),
            };
            let field = self.child(Seg::Index(i), false);
            self.add(field, K::Duplicate { value });
        }
    }

    fn program(
        &mut self,
        s: &Value,
        i: usize,
        src: &str,
        root: bool,
        message: bool,
    ) -> Result<Rc<cel::Program>, String> {
        let key = (std::ptr::from_ref(s) as usize, i, message);
        let want = if message { "string" } else { "bool" };
        let compiled = self
            .programs
            .entry(key)
            .or_insert_with(|| cel::compile(src, s, root, want).map(Rc::new));
        compiled.clone()
    }

    /// apiextensions' CEL validator: rules run on non-null values; transition
    /// rules only where an old value correlates (map fields, map-list items).
    /// `unchanged` ratchets; returns false once the cost limit stopped validation.
    fn cel(
        &mut self,
        s: &Value,
        v: &Value,
        old: Option<&Value>,
        unchanged: bool,
        depth: usize,
    ) -> bool {
        if v.is_null() || depth > MAX_DEPTH {
            return true;
        }
        let mut go_on = self.rules(s, v, old, unchanged, depth == 0 || flag(s, EMBEDDED));
        // Without a correlated old value a node ratchets as its parent does.
        let moved = |o: Option<&Value>, x: &Value| o.map_or(unchanged, |o| o == x);
        let old = old.filter(|_| text(s, MAP_TYPE) != Some("atomic"));
        let children: Vec<(Seg, &Value, &Value, Option<&Value>)> = match v {
            Value::Array(a) => match s.get("items").filter(|i| i.is_object()) {
                Some(items) => a
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (Seg::Index(i), items, x, correlate(s, x, old)))
                    .collect(),
                None => Vec::new(),
            },
            Value::Object(m) => m
                .iter()
                .filter(|(k, _)| depth > 0 || !META.contains(&k.as_str()))
                .filter_map(|(k, x)| match prop(s, k) {
                    Some(ps) => Some((Seg::Field(k.clone()), ps, x, old.and_then(|o| o.get(k)))),
                    None => Some((
                        Seg::Key(k.clone()),
                        ap_schema(s)?,
                        x,
                        old.and_then(|o| o.get(k)),
                    )),
                })
                .collect(),
            _ => Vec::new(),
        };
        for (seg, cs, x, o) in children {
            go_on = go_on && self.descend(seg, |w| w.cel(cs, x, o, moved(o, x), depth + 1));
        }
        go_on
    }

    fn rules(
        &mut self,
        s: &Value,
        v: &Value,
        old: Option<&Value>,
        unchanged: bool,
        root: bool,
    ) -> bool {
        let rules = list(s, RULES);
        if rules.is_empty() {
            return true;
        }
        let ty = text(s, "type").unwrap_or("");
        let field = self.at(false);
        let this = cel::from_json(v, Some(s));
        let prior = old.map(|o| cel::from_json(o, Some(s)));
        for (i, r) in rules.iter().enumerate() {
            let src = text(r, "rule").unwrap_or("");
            let message = text(r, "message").map(str::trim).filter(|m| !m.is_empty());
            let shown = message.unwrap_or(src.trim());
            if src.trim().is_empty() {
                continue;
            }
            let prog = match self.program(s, i, src, root, false) {
                Ok(p) => p,
                Err(e) => {
                    self.add(&field, invalid(ty, format!("rule compile error: {e}")));
                    continue;
                }
            };
            let optional = flag(r, "optionalOldSelf");
            if prog.uses_old_self && old.is_none() && !optional {
                continue;
            }
            let old_arg = match optional {
                true => Some(cel::Val::Opt(prior.clone().map(Rc::new))),
                false => prior.clone(),
            };
            let detail = match cel::eval(&prog, &this, old_arg.as_ref()) {
                Ok(cel::Val::Bool(true)) => continue,
                Ok(_) => None,
                Err(e) if e.starts_with("no such overload") => Some(format!(
                    "'{e}': call arguments did not match a supported operator, function or macro \
                     signature for rule: {shown}"
                )),
                Err(e) if e.starts_with(cel::COST_ERR) => {
                    let d = format!(
                        "'{e}': no further validation rules will be run due to call cost exceeds \
                         limit for rule: {shown}"
                    );
                    self.add(&field, invalid(ty, d));
                    return false;
                }
                Err(e) => Some(format!("{e} evaluating rule: {shown}")),
            };
            if let Some(d) = detail {
                self.add(&field, invalid(ty, d));
                continue;
            }
            // Kubernetes turns failures of unchanged values into warnings (ratcheting).
            if !prog.uses_old_self && unchanged {
                continue;
            }
            let path = match text(r, "fieldPath").and_then(|fp| field_path(fp, s)) {
                Some((norm, _)) if field.is_empty() => norm,
                Some((norm, _)) => format!("{field}.{norm}"),
                None => field.clone(),
            };
            let expr = text(r, "messageExpression").filter(|m| !m.trim().is_empty());
            let evaluated = expr.and_then(|src| {
                let prog = self.program(s, i, src, root, true).ok()?;
                match cel::eval(&prog, &this, prior.as_ref()) {
                    Ok(cel::Val::Str(m)) => Some(m.trim().to_string()),
                    _ => None,
                }
            });
            let evaluated =
                evaluated.filter(|m| !m.is_empty() && !m.contains('\n') && m.len() <= 5120);
            let detail = evaluated.or(message.map(str::to_string));
            let detail = detail.unwrap_or_else(|| format!("failed rule: {shown}"));
            let kind = match text(r, "reason") {
                Some("FieldValueForbidden") => K::Forbidden { detail },
                Some("FieldValueRequired") => K::Required { detail },
                Some("FieldValueDuplicate") => K::Duplicate { value: ty.into() },
                _ => invalid(ty, detail),
            };
            self.add(path, kind);
        }
        true
    }
}

/// Resolves a rule's `fieldPath` (`.spec.x`, `['key']`) against the schema into
/// the `field.Path` form Kubernetes reports (`spec.x`, `[key]`).
fn field_path<'a>(fp: &str, mut s: &'a Value) -> Option<(String, &'a Value)> {
    let mut out = String::new();
    let mut rest = fp;
    while !rest.is_empty() {
        let (name, next) = if let Some(r) = rest.strip_prefix("['") {
            let end = r
                .char_indices()
                .find(|&(i, c)| c == '\'' && !r[..i].ends_with('\\'))?
                .0;
            let name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            (name, r[end + 1..].strip_prefix(']')?)
        } else {
            let r = rest.strip_prefix('.')?;
            let end = r.find(['.', '[']).unwrap_or(r.len());
            (r[..end].to_string(), &r[end..])
        };
        match props(s) {
            Some(p) => {
                s = p.get(&name)?;
                out += &if out.is_empty() {
                    name
                } else {
                    format!(".{name}")
                };
            }
            None => {
                s = ap_schema(s)?;
                out += &format!("[{name}]");
            }
        }
        rest = next;
    }
    Some((out, s))
}

fn has_rules(s: &Value, depth: usize) -> bool {
    let deeper = |x: &Value| has_rules(x, depth + 1);
    let nested = s.get("items").is_some_and(deeper) || ap_schema(s).is_some_and(deeper);
    depth <= MAX_DEPTH
        && (!list(s, RULES).is_empty()
            || nested
            || props(s).is_some_and(|p| p.values().any(deeper)))
}

fn is_date(x: &str) -> bool {
    let n = |a: usize, b: usize| {
        x.get(a..b)
            .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
    };
    let n = |a, b| n(a, b).and_then(|d| d.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (n(0, 4), n(5, 7), n(8, 10)) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let b = x.as_bytes();
    let dashes = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    dashes && (1..=12).contains(&m) && d >= 1 && d <= days[m as usize - 1]
}

/// Validates a custom resource against its version's `openAPIV3Schema` as
/// kube-apiserver does on create (`old` = None) and update: OpenAPI schema,
/// embedded resources, list types, then the CEL rules unless a type, required,
/// enum or size error makes the object unfit for them. On update, errors in
/// values equal to their old values are dropped (Kubernetes' ratcheting).
/// Top-level `apiVersion`, `kind` and `metadata` are the caller's to validate.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut w = Walk::default();
    w.openapi(schema, obj, old, 0);
    w.each(schema, obj, 0, &mut |w, s, v| {
        if let Some(m) = v
            .as_object()
            .filter(|_| flag(s, EMBEDDED) && !w.path.is_empty())
        {
            w.type_meta(m);
        }
    });
    let lists = |w: &mut Walk, v: &Value| {
        w.each(schema, v, 0, &mut |w, s, v| {
            if let Some(a) = v.as_array() {
                w.list_type(s, a);
            }
        })
    };
    // On update the list invariants are enforced only if the old object met them.
    let mut before = Walk::default();
    if let Some(o) = old {
        lists(&mut before, o);
    }
    if before.errs.is_empty() {
        lists(&mut w, obj);
    }
    if has_rules(schema, 0) {
        let blocking = w.errs.iter().any(|e| {
            let k = &e.kind;
            matches!(
                k,
                K::NotSupported { .. } | K::Required { .. } | K::TooLong { .. }
            ) || matches!(k, K::TooMany { .. } | K::TypeInvalid { .. })
        });
        if blocking {
            w.add("", invalid(Value::Null, NOT_CHECKED));
        } else {
            w.cel(schema, obj, old, old == Some(obj), 0);
        }
    }
    w.errs
}

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

/// The structural-schema and schema-rule violations kube-apiserver reports when
/// a CRD is created, as messages sorted like Kubernetes sorts them. Paths start
/// at `openAPIV3Schema`; prefix `spec.versions[i].schema.` for the full path.
pub fn check_structural(schema: &Value) -> Vec<String> {
    structural_errors(schema, "openAPIV3Schema")
        .iter()
        .map(FieldError::message)
        .collect()
}

/// `check_structural` as field errors, with paths under `base`.
pub fn structural_errors(schema: &Value, base: &str) -> Vec<FieldError> {
    let mut w = Walk::default();
    w.structural(schema, 0, base, 0);
    w.errs.sort_by_cached_key(FieldError::message);
    w.errs
}

/// Compile errors of the CEL rules and message expressions, and transition
/// rules where no old value can correlate, as Kubernetes reports them on CRD
/// creation (after `check_structural` passed). Paths start at `openAPIV3Schema`.
pub fn compile_rules(schema: &Value) -> Vec<String> {
    rule_errors(schema, "openAPIV3Schema")
        .iter()
        .map(FieldError::message)
        .collect()
}

/// `compile_rules` as field errors, with paths under `base`.
pub fn rule_errors(schema: &Value, base: &str) -> Vec<FieldError> {
    let mut w = Walk::default();
    w.compile_walk(schema, base, None, 0);
    w.errs
}

fn int_or_string_any_of(s: &Value) -> bool {
    list(s, "anyOf") == [json!({"type": "integer"}), json!({"type": "string"})]
}

impl Walk {
    /// `ValidateStructural`; `level` 0 is the root, 1 array items, 2 fields.
    fn structural(&mut self, s: &Value, level: u8, p: &str, depth: usize) {
        let at = |k: &str| format!("{p}.{k}");
        if depth > MAX_DEPTH {
            let d = format!("must not be nested deeper than {MAX_DEPTH} levels");
            return self.add(p, K::Forbidden { detail: d });
        }
        if !s.is_object() {
            return self.add(p, invalid(s.clone(), "must be an object"));
        }
        let ty = text(s, "type").unwrap_or("");
        let (ios, preserve, embedded) =
            (flag(s, INT_OR_STRING), flag(s, PRESERVE), flag(s, EMBEDDED));
        let has_ap = s.get("additionalProperties").is_some();
        if ty == "array" && s.get("items").is_none() {
            self.add(at("items"), required("must be specified"));
        }
        if let Some(items) = s.get("items") {
            self.structural(items, 1, &at("items"), depth + 1);
        }
        for (k, ps) in props(s).into_iter().flatten() {
            self.structural(ps, 2, &at(&format!("properties[{k}]")), depth + 1);
        }
        if level == 0 && has_ap {
            self.add(
                at("additionalProperties"),
                forbidden("must not be used at the root"),
            );
        }
        if let Some(ap) = ap_schema(s) {
            self.structural(ap, 2, &at("additionalProperties"), depth + 1);
        }
        for (key, on) in [(PRESERVE, preserve), (EMBEDDED, embedded)] {
            if ios && on {
                self.add(
                    at(key),
                    invalid(true, "must be false if x-kubernetes-int-or-string is true"),
                );
            }
        }
        let skip_first = list(s, "allOf").first().is_some_and(int_or_string_any_of);
        self.value_validation(s, p, int_or_string_any_of(s), skip_first, depth);
        let d = "must be object if x-kubernetes-embedded-resource is true";
        let empty = [
            "must not be empty at the root",
            "must not be empty for specified array items",
        ];
        let empty = empty
            .get(usize::from(level))
            .unwrap_or(&"must not be empty for specified object fields");
        match () {
            _ if embedded && ty.is_empty() => self.add(at("type"), required(d)),
            _ if embedded && ty != "object" => self.add(at("type"), invalid(ty, d)),
            _ if !embedded && ty.is_empty() && !ios && !preserve => {
                self.add(at("type"), required(empty))
            }
            _ => {}
        }
        if embedded && has_ap {
            let d = "must not be used if x-kubernetes-embedded-resource is set";
            self.add(at("additionalProperties"), forbidden(d));
        }
        if level == 0 && !ty.is_empty() && ty != "object" {
            self.add(at("type"), invalid(ty, "must be object at the root"));
        }
        for k in ["kind", "apiVersion"] {
            let t = prop(s, k).map(|ps| text(ps, "type").unwrap_or(""));
            if let Some(t) = t.filter(|t| (level == 0 || embedded) && *t != "string") {
                self.add(
                    at(&format!("properties[{k}].type")),
                    invalid(t, "must be string"),
                );
            }
        }
        if let Some(meta) = prop(s, "metadata") {
            let mp = at("properties[metadata]");
            let t = text(meta, "type").unwrap_or("");
            if (level == 0 || embedded) && t != "object" {
                self.add(format!("{mp}.type"), invalid(t, "must be object"));
            }
            // Only name and generateName may be restricted in the root's metadata.
            let names =
                props(meta).is_none_or(|m| m.keys().all(|k| k == "name" || k == "generateName"));
            let keys = |m: &Map<String, Value>| {
                m.keys()
                    .all(|k| matches!(k.as_str(), "type" | "default" | "properties"))
            };
            if level == 0 && !(names && meta.as_object().is_some_and(keys)) {
                let d = "must not specify anything other than name and generateName, but metadata is \
                         implicitly specified";
                self.add(mp, forbidden(d));
            }
        }
        if embedded && !preserve && props(s).is_none_or(Map::is_empty) {
            let d = "must not be empty if x-kubernetes-embedded-resource is true without \
                     x-kubernetes-preserve-unknown-fields";
            self.add(at("properties"), required(d));
        }
        self.schema_rules(s, p, ty);
    }

    fn value_validation(
        &mut self,
        s: &Value,
        p: &str,
        skip_any: bool,
        skip_first_all: bool,
        depth: usize,
    ) {
        for key in ["anyOf", "allOf", "oneOf"] {
            for (i, x) in list(s, key)
                .iter()
                .enumerate()
                .filter(|_| !(skip_any && key == "anyOf"))
            {
                let skip = skip_first_all && key == "allOf" && i == 0;
                self.nested(x, &format!("{p}.{key}[{i}]"), skip, depth + 1);
            }
        }
        if let Some(not) = s.get("not") {
            self.nested(not, &format!("{p}.not"), false, depth + 1);
        }
        if let Some(pattern) = text(s, "pattern")
            && let Err(e) = self.regex(pattern)
        {
            let detail = format!("must be a valid regular expression, but isn't: {e}");
            self.add(format!("{p}.pattern"), invalid(pattern, detail));
        }
    }

    /// Inside anyOf/allOf/oneOf/not only value validations are structural.
    fn nested(&mut self, s: &Value, p: &str, skip_any: bool, depth: usize) {
        if depth > MAX_DEPTH || !s.is_object() {
            return;
        }
        self.value_validation(s, p, skip_any, false, depth);
        if let Some(items) = s.get("items") {
            self.nested(items, &format!("{p}.items"), false, depth + 1);
        }
        for (k, x) in props(s).into_iter().flatten() {
            self.nested(x, &format!("{p}.properties[{k}]"), false, depth + 1);
        }
        let set = |k: &str| {
            s.get(k)
                .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false)) && v != "")
        };
        let (empty, undefined, off) = (
            "must be empty to be structural",
            "must be undefined to be structural",
            "must be false to be structural",
        );
        let checks = [
            ("type", empty),
            ("additionalProperties", undefined),
            ("default", undefined),
            ("title", empty),
            ("description", empty),
            ("nullable", off),
            ("externalDocs", undefined),
            (PRESERVE, off),
            (EMBEDDED, off),
            (INT_OR_STRING, off),
            (MAP_KEYS, empty),
            (LIST_TYPE, undefined),
            (MAP_TYPE, undefined),
            (RULES, empty),
        ];
        for (k, d) in checks {
            let hit = if k == MAP_KEYS || k == RULES {
                !list(s, k).is_empty()
            } else {
                set(k)
            };
            if hit {
                self.add(format!("{p}.{k}"), forbidden(d));
            }
        }
        if prop(s, "metadata").is_some() {
            let d = "must not be specified in a nested context";
            self.add(format!("{p}.properties[metadata]"), forbidden(d));
        }
    }

    /// The checks of `ValidateCustomResourceDefinitionOpenAPISchema` beyond structure.
    fn schema_rules(&mut self, s: &Value, p: &str, ty: &str) {
        let at = |k: &str| format!("{p}.{k}");
        if flag(s, "uniqueItems") {
            let d =
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic";
            self.add(at("uniqueItems"), forbidden(d));
        }
        let ap = s.get("additionalProperties");
        if ap.is_some_and(|a| a != &Value::Bool(true)) && props(s).is_some_and(|m| !m.is_empty()) {
            let d = "additionalProperties and properties are mutual exclusive";
            self.add(at("additionalProperties"), forbidden(d));
        }
        if s.get(PRESERVE) == Some(&Value::Bool(false)) {
            self.add(at(PRESERVE), invalid(false, "must be true or undefined"));
        }
        for (key, want, allowed) in [
            (MAP_TYPE, "object", "atomic granular"),
            (LIST_TYPE, "array", "atomic set map"),
        ] {
            let Some(v) = s.get(key) else { continue };
            let d = format!("must be {want} if {key} is specified");
            if ty.is_empty() {
                self.add(at("type"), required(&d));
            } else if ty != want {
                self.add(at("type"), invalid(ty, d));
            }
            if !v
                .as_str()
                .is_some_and(|v| allowed.split(' ').any(|a| a == v))
            {
                self.add(at(key), not_supported(v, allowed));
            }
        }
        let list_type = text(s, LIST_TYPE);
        let keys = list(s, MAP_KEYS);
        let d = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type.filter(|_| !keys.is_empty()) {
            None if !keys.is_empty() => self.add(at(LIST_TYPE), required(d)),
            Some(lt) if lt != "map" => self.add(at(LIST_TYPE), invalid(lt, d)),
            _ => {}
        }
        if list_type == Some("map") {
            if keys.is_empty() {
                let d = "must not be empty if x-kubernetes-list-type is map";
                self.add(at(MAP_KEYS), required(d));
            }
            let items = s.get("items");
            let item_type = items.and_then(|i| text(i, "type")).unwrap_or("");
            if items.is_none() {
                let d = "must have a schema if x-kubernetes-list-type is map";
                self.add(at("items"), required(d));
            } else if item_type != "object" {
                let d = "must be object if parent array's x-kubernetes-list-type is map";
                self.add(at("items.type"), invalid(item_type, d));
            }
            for (i, k) in keys.iter().enumerate().filter(|_| item_type == "object") {
                let name = k.as_str().unwrap_or("");
                let key_type = items
                    .and_then(|i| prop(i, name))
                    .map(|kp| text(kp, "type").unwrap_or(""));
                let all = Value::Array(keys.to_vec());
                if matches!(key_type, Some("array" | "object")) {
                    let d = "must be a scalar type if parent array's x-kubernetes-list-type is map";
                    self.add(
                        at(&format!("items.properties[{name}].type")),
                        invalid("object", d),
                    );
                } else if key_type.is_none() {
                    let d = "entries must all be names of item properties";
                    self.add(at(MAP_KEYS), invalid(all.clone(), d));
                }
                if keys[..i].contains(k) {
                    self.add(
                        at(MAP_KEYS),
                        invalid(all, "must not contain duplicate entries"),
                    );
                }
            }
        }
        for (i, r) in list(s, RULES).iter().enumerate() {
            let rp = |k: &str| format!("{p}.{RULES}[{i}].{k}");
            let rule = text(r, "rule").unwrap_or("").trim();
            let raw = text(r, "message").unwrap_or("");
            let msg = raw.trim();
            match () {
                _ if rule.is_empty() => self.add(rp("rule"), required("rule is not specified")),
                _ if !raw.is_empty() && msg.is_empty() => {
                    self.add(
                        rp("message"),
                        invalid(raw, "message must be non-empty if specified"),
                    );
                }
                _ if msg.contains('\n') => {
                    self.add(
                        rp("message"),
                        invalid(raw, "message must not contain line breaks"),
                    );
                }
                _ if rule.contains('\n') && msg.is_empty() => {
                    let d = "message must be specified if rule contains line breaks";
                    self.add(rp("message"), required(d));
                }
                _ => {}
            }
            if text(r, "messageExpression").is_some_and(|m| !m.is_empty() && m.trim().is_empty()) {
                let d = "messageExpression must be non-empty if specified";
                self.add(rp("messageExpression"), required(d));
            }
            if let Some(reason) = r
                .get("reason")
                .filter(|x| !x.as_str().is_some_and(|x| REASONS.contains(x)))
            {
                self.add(rp("reason"), not_supported(reason, REASONS));
            }
            let fp = text(r, "fieldPath").unwrap_or("");
            if !fp.is_empty() && fp.trim().is_empty() {
                self.add(
                    rp("fieldPath"),
                    invalid(fp, "fieldPath must be non-empty if specified"),
                );
            }
            if fp.contains('\n') {
                self.add(
                    rp("fieldPath"),
                    invalid(fp, "fieldPath must not contain line breaks"),
                );
            }
            if !fp.is_empty() && field_path(fp, s).is_none() {
                self.add(
                    rp("fieldPath"),
                    invalid(fp, "fieldPath must be a valid path"),
                );
            }
        }
    }

    /// `uncorrelatable` is the schema path of the outermost array (other than a
    /// map list) or atomic map above, where `oldSelf` can never be bound.
    fn compile_walk(&mut self, s: &Value, p: &str, uncorrelatable: Option<&str>, depth: usize) {
        if depth > MAX_DEPTH || !s.is_object() {
            return;
        }
        let root = depth == 0 || flag(s, EMBEDDED);
        for (i, r) in list(s, RULES).iter().enumerate() {
            let rp = |k: &str| format!("{p}.{RULES}[{i}].{k}");
            let rule = text(r, "rule").unwrap_or("");
            let compiled = cel::compile(rule, s, root, "bool").map(|p| p.uses_old_self);
            match (rule.trim().is_empty(), compiled, uncorrelatable) {
                (true, ..) | (_, Ok(false), _) | (_, Ok(true), None) => {}
                (_, Err(e), _) => self.add(rp("rule"), invalid(rule, e)),
                (_, Ok(true), Some(u)) => {
                    let d = format!(
                        "oldSelf cannot be used on the uncorrelatable portion of the schema within {u}"
                    );
                    self.add(rp("rule"), invalid(rule, d));
                }
            }
            let expr = text(r, "messageExpression").filter(|m| !m.trim().is_empty());
            if let Some(Err(e)) = expr.map(|m| cel::compile(m, s, root, "string")) {
                let d = match e.starts_with("compilation") {
                    true => format!("messageExpression {e}"),
                    false => "messageExpression must evaluate to a string".into(),
                };
                self.add(rp("messageExpression"), invalid(expr.unwrap_or(""), d));
            }
        }
        if let Some(items) = s.get("items") {
            let here = (text(s, LIST_TYPE) != Some("map")).then_some(p);
            self.compile_walk(
                items,
                &format!("{p}.items"),
                uncorrelatable.or(here),
                depth + 1,
            );
        }
        let atomic = (text(s, MAP_TYPE) == Some("atomic")).then_some(p);
        for (k, ps) in props(s).into_iter().flatten() {
            let u = uncorrelatable.or(atomic);
            self.compile_walk(ps, &format!("{p}.properties[{k}]"), u, depth + 1);
        }
        if let Some(ap) = ap_schema(s) {
            self.compile_walk(
                ap,
                &format!("{p}.additionalProperties"),
                uncorrelatable,
                depth + 1,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sorted messages: Kubernetes' own order follows Go map iteration.
    fn msgs(s: &Value, obj: Value, old: Option<Value>) -> Vec<String> {
        let mut m: Vec<String> = validate(s, &obj, old.as_ref())
            .iter()
            .map(FieldError::message)
            .collect();
        m.sort();
        m
    }

    fn crd() -> Value {
        let yaml =
            include_str!("../../config/crd/bases/tenancy.kflex.kubestellar.org_controlplanes.yaml");
        let crd: Value = serde_saphyr::from_str(yaml).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    fn cp(spec: Value) -> Value {
        let meta = json!({"name": "cp1"});
        json!({"apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane", "metadata": meta, "spec": spec})
    }

    #[test]
    fn controlplane_type_is_immutable() {
        let s = crd();
        assert_eq!(check_structural(&s), Vec::<String>::new());
        assert_eq!(compile_rules(&s), Vec::<String>::new());
        let (k8s, ocm) = (cp(json!({"type": "k8s"})), cp(json!({"type": "ocm"})));
        assert_eq!(msgs(&s, k8s.clone(), None), Vec::<String>::new());
        assert_eq!(msgs(&s, ocm.clone(), None), Vec::<String>::new());
        let errs = validate(&s, &ocm, Some(&k8s));
        assert_eq!(
            errs[0].message(),
            r#"spec.type: Invalid value: "string": type is immutable"#
        );
        assert_eq!((errs.len(), errs[0].reason()), (1, "FieldValueInvalid"));
        let mut relabeled = k8s.clone();
        relabeled["metadata"]["labels"] = json!({"a": "b"});
        assert_eq!(msgs(&s, relabeled, Some(k8s)), Vec::<String>::new());
    }

    #[test]
    fn controlplane_schema_errors() {
        let s = crd();
        let not_checked = format!("<nil>: Invalid value: \"null\": {NOT_CHECKED}");
        let errs = validate(&s, &cp(json!({"type": "k9s"})), None);
        let want = r#"spec.type: Unsupported value: "k9s": supported values: "k8s", "ocm", "vcluster", "host", "external", "k3s""#;
        assert_eq!(
            (errs[0].message(), errs[0].reason()),
            (want.to_string(), "FieldValueNotSupported")
        );
        assert_eq!(errs[1].message(), not_checked);
        assert_eq!(
            msgs(&s, cp(json!({})), None),
            [
                "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
                "spec.type: Required value"
            ]
        );
        let spec = json!({"type": "k8s", "tokenExpirationSeconds": "1", "globalVars": {"a": 1}});
        let status = json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "", "lastTransitionTime": "2024-13-01T00:00:00Z", "lastUpdateTime": "2024-01-01T00:00:00Z"}]});
        let mut obj = cp(spec);
        obj["status"] = status;
        assert_eq!(
            msgs(&s, obj, None),
            [
                not_checked.as_str(),
                r#"spec.globalVars.a: Invalid value: "integer": spec.globalVars.a in body must be of type string: "integer""#,
                r#"spec.tokenExpirationSeconds: Invalid value: "string": spec.tokenExpirationSeconds in body must be of type integer: "string""#,
                r#"status.conditions[0].lastTransitionTime: Invalid value: "2024-13-01T00:00:00Z": status.conditions[0].lastTransitionTime in body must be of type date-time: "2024-13-01T00:00:00Z""#,
                "status.conditions[0].message: Required value",
            ]
        );
    }

    #[test]
    fn keywords() {
        let props = json!({
            "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
            "n": {"type": "integer", "minimum": 1, "maximum": 10, "exclusiveMaximum": true, "multipleOf": 2},
            "ratio": {"type": "number", "minimum": 0.5},
            "list": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "u": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}},
            "m": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {"type": "integer"}},
            "ios": {"x-kubernetes-int-or-string": true},
            "opt": {"type": "string", "nullable": true},
            "when": {"type": "string", "format": "date-time"},
            "i32": {"type": "integer", "format": "int32"},
        });
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}});
        let check =
            |spec: Value, want: &[&str]| assert_eq!(msgs(&s, json!({ "spec": spec }), None), want);
        let ok = json!({"name": "abc", "n": 2, "ratio": 1, "list": ["a"], "u": [1, 2], "m": {"a": 1}, "ios": 3,
            "opt": null, "when": "2024-02-29T03:04:05.5+01:00", "i32": 4.0});
        check(ok, &[]);
        check(json!({"ios": "x"}), &[]);
        check(
            json!({"name": "abcdef"}),
            &["spec.name: Too long: may not be longer than 5"],
        );
        check(
            json!({"name": "a"}),
            &[
                r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#,
            ],
        );
        check(
            json!({"name": "AB"}),
            &[r#"spec.name: Invalid value: "AB": spec.name in body should match '^[a-z]+$'"#],
        );
        check(
            json!({"name": null}),
            &[
                r#"spec.name: Invalid value: "null": spec.name in body must be of type string: "null""#,
            ],
        );
        check(
            json!({"n": 3}),
            &["spec.n: Invalid value: 3: spec.n in body should be a multiple of 2"],
        );
        check(
            json!({"n": 0}),
            &["spec.n: Invalid value: 0: spec.n in body should be greater than or equal to 1"],
        );
        check(
            json!({"n": 10}),
            &["spec.n: Invalid value: 10: spec.n in body should be less than 10"],
        );
        check(
            json!({"n": 2.5}),
            &[
                r#"spec.n: Invalid value: "number": spec.n in body must be of type integer: "number""#,
                "spec.n: Invalid value: 2.5: spec.n in body should be a multiple of 2",
            ],
        );
        check(
            json!({"ratio": 0.25}),
            &[
                "spec.ratio: Invalid value: 0.25: spec.ratio in body should be greater than or equal to 0.5",
            ],
        );
        check(
            json!({"list": []}),
            &["spec.list: Invalid value: 0: spec.list in body should have at least 1 items"],
        );
        check(
            json!({"list": ["a", "b", 3]}),
            &[
                "spec.list: Too many: 3: must have at most 2 items",
                r#"spec.list[2]: Invalid value: "integer": spec.list[2] in body must be of type string: "integer""#,
            ],
        );
        check(
            json!({"u": [1, 1]}),
            &[r#"spec.u: Invalid value: "": spec.u in body shouldn't contain duplicates"#],
        );
        check(
            json!({"m": {}}),
            &["spec.m: Invalid value: 0: spec.m in body should have at least 1 properties"],
        );
        check(
            json!({"m": {"a": 1, "b": 2}}),
            &["spec.m: Too many: 2: must have at most 1 items"],
        );
        check(
            json!({"m": {"a": "x"}}),
            &[
                r#"spec.m.a: Invalid value: "string": spec.m.a in body must be of type integer: "string""#,
            ],
        );
        check(
            json!({"ios": true}),
            &[
                r#"spec.ios: Invalid value: "boolean": spec.ios in body must be of type integer,string: "boolean""#,
            ],
        );
        check(
            json!({"when": "2024-02-30T00:00:00Z"}),
            &[
                r#"spec.when: Invalid value: "2024-02-30T00:00:00Z": spec.when in body must be of type date-time: "2024-02-30T00:00:00Z""#,
            ],
        );
        check(
            json!({"i32": 1.5}),
            &[
                r#"spec.i32: Invalid value: "float64": spec.i32 in body must be of type int32: "float64""#,
            ],
        );
        check(
            json!({"i32": "1"}),
            &[
                r#"spec.i32: Invalid value: "string": spec.i32 in body must be of type integer: "string""#,
            ],
        );
        // Ratcheting: an update leaving an invalid value as it was is accepted.
        let bad = json!({"spec": {"name": "TOO-LONG", "n": 11}});
        assert_eq!(
            msgs(&s, bad.clone(), Some(bad.clone())),
            Vec::<String>::new()
        );
        let mut changed = bad.clone();
        changed["spec"]["n"] = json!(2);
        assert_eq!(msgs(&s, changed, Some(bad)), Vec::<String>::new());
    }

    #[test]
    fn list_types_and_embedded_resources() {
        let port = json!({"type": "object", "properties": {"port": {"type": "integer"}, "name": {"type": "string"}}});
        let props = json!({
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"], "items": port},
            "tmpl": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
        });
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}});
        let spec = json!({"set": ["a", "b", "a", "a"], "ports": [{"port": 80}, {"port": 80, "name": "x"}, {}],
            "tmpl": {"kind": "Pod_x", "metadata": {"name": "n"}}});
        assert_eq!(
            msgs(&s, json!({ "spec": spec }), None),
            [
                r#"spec.ports[1]: Duplicate value: map[string]interface {}{"port":80}"#,
                r#"spec.set[2]: Duplicate value: "a""#,
                "spec.tmpl.apiVersion: Required value",
                "spec.tmpl.kind: Invalid value: \"Pod_x\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
        let tmpl = json!({"apiVersion": "a/b/c", "kind": "Pod"});
        let want = r#"spec.tmpl.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#;
        assert_eq!(msgs(&s, json!({"spec": {"tmpl": tmpl}}), None), [want]);
    }

    #[test]
    fn cel_rules() {
        let rules = json!([
            {"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"},
            {"rule": "self.max < 100", "messageExpression": "'max is ' + string(self.max)", "reason": "FieldValueForbidden"},
            {"rule": "!has(self.extra) || self.extra.size() > 0"},
        ]);
        let item = json!({"type": "object", "properties": {"name": {"type": "string"}}, "x-kubernetes-validations": [{"rule": "self.name.size() < 4"}]});
        let var = json!({"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('v')"}]});
        let props = json!({"min": {"type": "integer"}, "max": {"type": "integer"}, "extra": {"type": "string"},
            "vars": {"type": "object", "additionalProperties": var}, "items": {"type": "array", "items": item}});
        let spec =
            json!({"type": "object", "x-kubernetes-validations": rules, "properties": props});
        let s = json!({"type": "object", "properties": {"spec": spec}});
        let obj = json!({"spec": {"min": 300, "max": 200, "extra": "", "vars": {"k": "x"}, "items": [{"name": "ok"}, {"name": "long"}, {}]}});
        assert_eq!(
            msgs(&s, obj.clone(), None),
            [
                "spec.items[1]: Invalid value: \"object\": failed rule: self.name.size() < 4",
                "spec.items[2]: Invalid value: \"object\": no such key: name evaluating rule: self.name.size() < 4",
                "spec.min: Invalid value: \"object\": min must not exceed max",
                "spec.vars[k]: Invalid value: \"string\": failed rule: self.startsWith('v')",
                "spec: Forbidden: max is 200",
                "spec: Invalid value: \"object\": failed rule: !has(self.extra) || self.extra.size() > 0",
            ]
        );
        let errs = validate(&s, &obj, None);
        assert!(errs.iter().any(|e| e.reason() == "FieldValueForbidden"));
        // Unchanged values ratchet (warnings in Kubernetes); runtime errors do not.
        let mut fixed = obj.clone();
        fixed["spec"]["vars"]["k"] = json!("v");
        let still = msgs(&s, fixed, Some(obj));
        assert_eq!(still.len(), 4, "{still:?}");
        assert!(still[0].starts_with("spec.items[2]:") && still[1].starts_with("spec.min:"));
    }

    #[test]
    fn crd_creation_checks() {
        let spec = json!({"properties": {"l": {"type": "array"}}, "x-kubernetes-validations": [{"rule": "self.x ==", "reason": "Nope"}]});
        let meta = json!({"type": "object", "properties": {"labels": {"type": "object"}}});
        let bad = json!({"type": "object", "properties": {"spec": spec, "metadata": meta}});
        let p = "openAPIV3Schema.properties";
        assert_eq!(
            check_structural(&bad),
            [
                format!(
                    "{p}[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
                ),
                format!("{p}[spec].properties[l].items: Required value: must be specified"),
                format!(
                    "{p}[spec].type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}[spec].x-kubernetes-validations[0].reason: Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""
                ),
            ]
        );
        let errs = compile_rules(&bad);
        let want = format!(
            "{p}[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.x ==\": compilation failed: ERROR: <input>:1:10: Syntax error: mismatched input '<EOF>' expecting"
        );
        assert!(errs.len() == 1 && errs[0].starts_with(&want), "{errs:?}");
        let item =
            json!({"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]});
        let s = json!({"type": "object", "properties": {"l": {"type": "array", "items": item}}});
        assert_eq!(
            compile_rules(&s),
            [format!(
                "{p}[l].items.x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be used on the uncorrelatable portion of the schema within {p}[l]"
            )]
        );
        let s = json!({"type": "object", "properties": {"m": {"type": "object", "x-kubernetes-validations": [{"rule": "self.nope == 1"}], "properties": {"a": {"type": "string"}}}}});
        assert!(compile_rules(&s)[0].contains("undefined field 'nope'"));
    }

    #[test]
    fn pruning() {
        let props = json!({
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"known": {"type": "object"}}},
            "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "integer"}}}},
            "emb": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
        });
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}});
        let spec = json!({"a": {"b": "keep", "c": "drop"}, "free": {"any": {"deep": 1}, "known": {"gone": 1}},
            "m": {"k": {"x": 1, "y": 2}}, "emb": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"z": 1}, "status": {}}});
        let mut obj = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n", "x": 1}, "junk": 1, "spec": spec});
        prune(&s, &mut obj);
        let spec = json!({"a": {"b": "keep"}, "free": {"any": {"deep": 1}, "known": {}}, "m": {"k": {"x": 1}},
            "emb": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}});
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n", "x": 1}, "spec": spec})
        );
    }

    #[test]
    fn defaulting() {
        let s = crd();
        let mut obj = cp(json!({"type": "k8s", "backend": null, "waitForPostCreateHooks": null}));
        obj["status"] = json!({"secretRef": {"name": "s"}});
        apply_defaults(&s, &mut obj);
        let want = json!({"type": "k8s", "waitForPostCreateHooks": null, "tokenExpirationSeconds": 31536000});
        assert_eq!(
            (&obj["spec"], &obj["status"]),
            (&want, &json!({"secretRef": {"name": "s", "key": ""}}))
        );
        let inner = json!({"type": "object", "default": {}, "properties": {"x": {"type": "string", "default": "d"}}});
        let s = json!({"type": "object", "properties": {"spec": inner, "n": {"type": "integer", "default": 1}}});
        let mut obj = json!({"n": null});
        apply_defaults(&s, &mut obj);
        assert_eq!(obj, json!({"n": 1, "spec": {"x": "d"}}));
    }

    #[test]
    fn value_rendering() {
        let e = FieldError {
            field: String::new(),
            kind: invalid("a\"b\n\u{1}", "x"),
        };
        assert_eq!(e.message(), r#"<nil>: Invalid value: "a\"b\n\x01": x"#);
        let e = FieldError {
            field: "f".into(),
            kind: K::Duplicate {
                value: json!({"b": [1, 2.5], "a": null}),
            },
        };
        assert_eq!(
            e.message(),
            r#"f: Duplicate value: map[string]interface {}{"a":interface {}(nil), "b":[]interface {}{1, 2.5}}"#
        );
        assert_eq!(
            FieldError {
                field: "f".into(),
                kind: required("")
            }
            .message(),
            "f: Required value"
        );
    }
}
