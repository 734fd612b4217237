//! Validation of custom resources against their schema, as apiextensions
//! does it on create and update: kube-openapi's validators with their error
//! texts, embedded-resource type meta and list-type invariants, then the CEL
//! rules of [`super::rules`]; values unchanged since the old object ratchet.

use serde_json::{Map, Value, json};

use super::rules::has_rules;
use super::{
    EMBEDDED, FieldError, K, LIST_TYPE, MAP_KEYS, MAX_DEPTH, META, NOT_CHECKED, Seg, Walk,
    ap_schema, cel, correlate, flag, format_of, go_quote, invalid, is_json_integer, list, num,
    prop, props, required, text, types,
};

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

impl Walk {
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
