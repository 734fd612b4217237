//! CEL `x-kubernetes-validations`: compiled (and their errors reported) when
//! a CRD is created, and run on objects the OpenAPI checks left fit for them,
//! with transition rules bound to the old value only where one correlates.

use std::rc::Rc;

use serde_json::Value;

use super::{
    EMBEDDED, FieldError, K, LIST_TYPE, MAP_TYPE, MAX_DEPTH, META, RULES, Seg, Walk, ap_schema,
    cel, correlate, flag, invalid, list, prop, props, text,
};

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

impl Walk {
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
    pub(super) fn cel(
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

/// Resolves a rule's `fieldPath` (`.spec.x`, `['key']`) against the schema into
/// the `field.Path` form Kubernetes reports (`spec.x`, `[key]`).
pub(super) fn field_path<'a>(fp: &str, mut s: &'a Value) -> Option<(String, &'a Value)> {
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

pub(super) fn has_rules(s: &Value, depth: usize) -> bool {
    let deeper = |x: &Value| has_rules(x, depth + 1);
    let nested = s.get("items").is_some_and(deeper) || ap_schema(s).is_some_and(deeper);
    depth <= MAX_DEPTH
        && (!list(s, RULES).is_empty()
            || nested
            || props(s).is_some_and(|p| p.values().any(deeper)))
}
