//! The checks of CRD creation: a schema must be structural (every field
//! typed, value validations only inside `anyOf`/`allOf`/`oneOf`/`not`) and
//! its Kubernetes extensions consistent (list and map types, map keys,
//! embedded resources, the shape of each validation rule).

use serde_json::{Map, Value, json};

use super::rules::field_path;
use super::{
    EMBEDDED, FieldError, INT_OR_STRING, K, LIST_TYPE, MAP_KEYS, MAP_TYPE, MAX_DEPTH, PRESERVE,
    REASONS, RULES, Walk, ap_schema, flag, forbidden, invalid, list, not_supported, prop, props,
    required, text,
};

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
}
