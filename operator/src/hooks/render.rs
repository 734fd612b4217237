//! Rendering one hook template: every string of the object (keys and
//! values) that contains `{{` is parsed into literal text and actions; only
//! the actions are evaluated, so literal text (a `${#arr[@]}` or a `{%` in a
//! shell script) passes through untouched.
//!
//! Design: we do not hand minijinja a whole template. Each action is
//! compiled as a minijinja *expression* (strict undefined) and its value is
//! spliced between the literal pieces by us. The result is put back into the
//! JSON tree as a string, never re-parsed, so a value holding `"`, a newline
//! or `{{` is data: it can neither break the object nor be rendered again
//! (KubeFlex substitutes into the JSON text, where it can).
//!
//! Actions: KubeFlex's Go references `{{.Var}}`, `{{ .Var }}`, `{{- .Var -}}`
//! are translated to `Var` (the `-` trims adjacent whitespace, as in Go);
//! any other Go construct is refused with the construct and a Jinja way to
//! write it. Anything else between `{{` and `}}` is a Jinja expression
//! (`{{ Var }}`, `{{ Var | upper }}`). A literal `{{` is written `{{ "{{" }}`.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value as JinjaValue};
use serde_json::Value;

/// Why one string could not be rendered. Messages quote the template text,
/// never a variable's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// Strict undefined: a referenced variable has no value.
    #[error(
        "variable `{var}` is not defined; set it in the hook's defaultVars, the ControlPlane's globalVars or the hook's vars"
    )]
    Undefined { var: String },
    /// A Go-template construct other than a plain variable reference.
    #[error("Go template {construct} in `{action}` is not supported: {hint}")]
    GoConstruct {
        construct: &'static str,
        action: String,
        hint: &'static str,
    },
    /// `{{` without a closing `}}`.
    #[error(
        "`{{{{` at byte {at} is never closed by `}}}}`; to write a literal `{{{{`, use `{{{{ \"{{{{\" }}}}`"
    )]
    Unclosed { at: usize },
    /// `{{}}` or `{{ - }}`.
    #[error("empty action `{action}`")]
    Empty { action: String },
    /// The Jinja expression does not compile or fails to evaluate.
    #[error("expression `{expr}`: {message}")]
    Jinja { expr: String, message: String },
}

/// One piece of a parsed string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Copied as is.
    Text(String),
    /// A Jinja expression to evaluate (Go references already translated).
    Expr(String),
}

/// Go keywords that open or continue actions Jinja writes differently.
const GO_KEYWORDS: &[(&str, &str, &str)] = &[
    (
        "if",
        "`if` action",
        "use a Jinja conditional expression, e.g. `{{ A if Cond else B }}`, or set the value as a variable",
    ),
    (
        "else",
        "`else` action",
        "use a Jinja conditional expression, e.g. `{{ A if Cond else B }}`",
    ),
    (
        "end",
        "`end` action",
        "hook strings have no blocks; use a Jinja expression such as `{{ A if Cond else B }}`",
    ),
    (
        "range",
        "`range` action",
        "hook strings have no loops; list the items in the template or pass the text as a variable",
    ),
    (
        "with",
        "`with` action",
        "refer to the variable by name: `{{ Var }}`",
    ),
    (
        "define",
        "`define` action",
        "hook strings have no named templates; inline the text",
    ),
    (
        "template",
        "`template` action",
        "hook strings have no named templates; inline the text",
    ),
    (
        "block",
        "`block` action",
        "hook strings have no named templates; inline the text",
    ),
    ("break", "`break` action", "hook strings have no loops"),
    (
        "continue",
        "`continue` action",
        "hook strings have no loops",
    ),
];

/// Go builtin functions, called without parentheses in Go.
const GO_FUNCTIONS: &[&str] = &[
    "printf", "print", "println", "index", "len", "eq", "ne", "lt", "le", "gt", "ge", "and", "or",
    "html", "js", "urlquery", "call", "slice", "default", "quote", "upper", "lower", "b64enc",
];

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` contains a Go field reference (`.X`) as a token: a `.` at the
/// start or after whitespace or `(`, followed by a letter.
fn has_go_field(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'.'
            && (i == 0 || b[i - 1].is_ascii_whitespace() || b[i - 1] == b'(')
            && b.get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_')
    })
}

/// Classifies the inside of one action (trim markers removed).
fn translate(action: &str, inner: &str) -> Result<String, RenderError> {
    let go = |construct, hint| {
        Err(RenderError::GoConstruct {
            construct,
            action: action.into(),
            hint,
        })
    };
    if inner.is_empty() {
        return Err(RenderError::Empty {
            action: action.into(),
        });
    }
    if inner.starts_with("/*") {
        return go(
            "comment `{{/* */}}`",
            "delete it; hook strings are data and carry no comments",
        );
    }
    if inner.contains('$') {
        return go(
            "variable `$`",
            "refer to variables by name, e.g. `{{ Namespace }}`; there is no `$` root or `$x :=`",
        );
    }
    if let Some(name) = inner.strip_prefix('.') {
        if is_ident(name) {
            return Ok(name.into());
        }
        if name.is_empty() {
            return go("dot `{{.}}`", "name the variable: `{{ Var }}`");
        }
        if inner.contains('|') {
            return go(
                "pipeline",
                "use a Jinja filter with the value first: `{{ Var | filter(arg) }}`",
            );
        }
        if name.split('.').all(is_ident) {
            return go("field path", "hook variables are flat strings: `{{ Var }}`");
        }
        return go(
            "expression",
            "write a plain reference `{{ .Var }}` or a Jinja expression `{{ Var }}`",
        );
    }
    let first = inner
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default();
    if let Some((_, construct, hint)) = GO_KEYWORDS.iter().find(|(k, _, _)| *k == first) {
        return go(construct, hint);
    }
    let rest = &inner[first.len()..];
    if GO_FUNCTIONS.contains(&first) && rest.starts_with(char::is_whitespace) {
        return go(
            "function call",
            "Jinja calls take parentheses and filters take the value first: `{{ Var | upper }}`, `{{ A == B }}`, `{{ M[\"k\"] }}`, `{{ L | length }}`",
        );
    }
    if has_go_field(inner) {
        return go(
            "field reference inside an expression",
            "drop the dot: Jinja names variables directly, e.g. `{{ Var | default(\"x\") }}`",
        );
    }
    Ok(inner.into())
}

/// Splits `s` into literal text and translated expressions, applying Go's
/// `{{-` / `-}}` whitespace trimming to the adjacent text.
pub fn parse(s: &str) -> Result<Vec<Piece>, RenderError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    let mut offset = 0;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let before = &rest[..open];
        text.push_str(if trim_next {
            before.trim_start()
        } else {
            before
        });
        let after_open = &rest[open + 2..];
        let close = after_open
            .find("}}")
            .ok_or(RenderError::Unclosed { at: offset + open })?;
        let raw = &after_open[..close];
        let action = format!("{{{{{raw}}}}}");
        // Go requires a space after `{{-` and before `-}}`; `{{-3}}` is a number.
        let trim_left = raw.starts_with('-') && raw[1..].starts_with(char::is_whitespace);
        let trim_right = raw.ends_with('-') && raw[..raw.len() - 1].ends_with(char::is_whitespace);
        let mut inner = raw;
        if trim_left {
            inner = &inner[1..];
            let kept = text.trim_end().len();
            text.truncate(kept);
        }
        if trim_right {
            inner = &inner[..inner.len() - 1];
        }
        let expr = translate(&action, inner.trim())?;
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Expr(expr));
        trim_next = trim_right;
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    text.push_str(if trim_next { rest.trim_start() } else { rest });
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// A strict-undefined minijinja environment, no auto-escaping (values are
/// JSON data, not HTML).
pub struct Renderer {
    env: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

/// Where in the object a string failed: a JSON path like `spec.template.spec.containers[0].command[1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub path: String,
    pub error: RenderError,
}

impl Renderer {
    /// The environment every hook renders with.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        Self { env }
    }

    /// Renders one string; strings without `{{` come back unchanged.
    pub fn render_str(
        &self,
        s: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, RenderError> {
        if !s.contains("{{") {
            return Ok(s.into());
        }
        let ctx = JinjaValue::from(minijinja::value::Serde(vars));
        let mut out = String::with_capacity(s.len());
        for piece in parse(s)? {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Expr(e) => out.push_str(&self.eval(&e, vars, &ctx)?),
            }
        }
        Ok(out)
    }

    fn eval(
        &self,
        expr: &str,
        vars: &BTreeMap<String, String>,
        ctx: &JinjaValue,
    ) -> Result<String, RenderError> {
        let jinja = |message: String| RenderError::Jinja {
            expr: expr.into(),
            message,
        };
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| jinja(e.to_string()))?;
        let mut undeclared: Vec<String> = compiled
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !vars.contains_key(v) && self.env.globals().all(|(g, _)| g != v))
            .collect();
        undeclared.sort();
        if let Some(var) = undeclared.into_iter().next() {
            return Err(RenderError::Undefined { var });
        }
        // Only the error kind: a detail could quote a value (a failed `int`
        // conversion, say), and values may be secrets.
        let value = compiled
            .eval(ctx.clone())
            .map_err(|e| jinja(e.kind().to_string()))?;
        if value.is_undefined() {
            return Err(jinja("evaluates to an undefined value".into()));
        }
        Ok(value.to_string())
    }

    /// Renders every string key and value of `template`, depth first.
    pub fn render_value(
        &self,
        template: &Value,
        vars: &BTreeMap<String, String>,
    ) -> Result<Value, Located> {
        self.walk(template, vars, &mut String::new())
    }

    fn walk(
        &self,
        v: &Value,
        vars: &BTreeMap<String, String>,
        path: &mut String,
    ) -> Result<Value, Located> {
        let at = |path: &str, error| Located {
            path: if path.is_empty() {
                "(root)".into()
            } else {
                path.into()
            },
            error,
        };
        Ok(match v {
            Value::String(s) => Value::String(self.render_str(s, vars).map_err(|e| at(path, e))?),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(self.walk(item, vars, path)?);
                    path.truncate(len);
                }
                Value::Array(out)
            }
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, item) in map {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    let key = self.render_str(k, vars).map_err(|e| at(path, e))?;
                    out.insert(key, self.walk(item, vars, path)?);
                    path.truncate(len);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn render(s: &str, v: &[(&str, &str)]) -> Result<String, RenderError> {
        Renderer::new().render_str(s, &vars(v))
    }

    #[test]
    fn go_references_in_every_spelling_translate() {
        let v = [("MESSAGE", "hi")];
        assert_eq!(render("{{.MESSAGE}}", &v).unwrap(), "hi");
        assert_eq!(render("say {{ .MESSAGE }}!", &v).unwrap(), "say hi!");
        assert_eq!(render("a  {{- .MESSAGE -}}  b", &v).unwrap(), "ahib");
        assert_eq!(render("a {{- .MESSAGE }} b", &v).unwrap(), "ahi b");
        assert_eq!(render("{{ MESSAGE | upper }}", &v).unwrap(), "HI");
        assert_eq!(render("{{ MESSAGE }}-{{.MESSAGE}}", &v).unwrap(), "hi-hi");
    }

    #[test]
    fn literal_text_passes_through() {
        let script = "n=${#arr[@]}; {% not jinja %} {# nor this";
        assert_eq!(render(script, &[]).unwrap(), script);
        let mixed = "echo ${#arr[@]} {{ .X }} {% raw %}";
        assert_eq!(
            render(mixed, &[("X", "1")]).unwrap(),
            "echo ${#arr[@]} 1 {% raw %}"
        );
        assert_eq!(render("{{ \"{{\" }} x", &[]).unwrap(), "{{ x");
    }

    #[test]
    fn strict_undefined_names_the_variable() {
        assert_eq!(
            render("{{.Missing}}", &[]),
            Err(RenderError::Undefined {
                var: "Missing".into()
            })
        );
        assert_eq!(
            render("{{ Missing | upper }}", &[]),
            Err(RenderError::Undefined {
                var: "Missing".into()
            })
        );
    }

    #[test]
    fn values_are_data_not_template_text() {
        let evil = "a\"b\nc {{ .Other }} {% x %}";
        let r = Renderer::new();
        let t = json!({"kind": "Job", "spec": {"command": ["echo", "{{.V}}"], "env": [{"name": "X", "value": "pre {{ .V }} post"}]}});
        let out = r
            .render_value(&t, &vars(&[("V", evil), ("Other", "NO")]))
            .unwrap();
        assert_eq!(out["spec"]["command"][1], json!(evil));
        assert_eq!(
            out["spec"]["env"][0]["value"],
            json!(format!("pre {evil} post"))
        );
        // Nothing else changed: the value did not break out of its string.
        assert_eq!(out["kind"], "Job");
        assert_eq!(out["spec"]["command"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn keys_render_and_errors_carry_the_path() {
        let r = Renderer::new();
        let t =
            json!({"metadata": {"labels": {"{{.K}}": "v"}}, "spec": {"c": ["ok", "{{.Nope}}"]}});
        let err = r.render_value(&t, &vars(&[("K", "app")])).unwrap_err();
        assert_eq!(err.path, "spec.c[1]");
        let ok = r
            .render_value(&json!({"labels": {"{{.K}}": "v"}}), &vars(&[("K", "app")]))
            .unwrap();
        assert_eq!(ok, json!({"labels": {"app": "v"}}));
    }

    #[test]
    fn other_go_constructs_are_refused_with_a_hint() {
        let cases = [
            ("{{ range .Items }}x{{ end }}", "`range` action"),
            ("{{ if .X }}y{{ end }}", "`if` action"),
            ("{{ .X | printf \"%s\" }}", "pipeline"),
            ("{{ $x := .X }}", "variable `$`"),
            ("{{ $.X }}", "variable `$`"),
            ("{{ printf \"%s\" .X }}", "function call"),
            ("{{ index .M \"k\" }}", "function call"),
            ("{{/* note */}}", "comment `{{/* */}}`"),
            ("{{ . }}", "dot `{{.}}`"),
            ("{{ .A.B }}", "field path"),
            ("{{ with .X }}{{ . }}{{ end }}", "`with` action"),
            (
                "{{ X | default .Y }}",
                "field reference inside an expression",
            ),
        ];
        for (t, construct) in cases {
            match render(t, &[("X", "1"), ("Items", "a")]) {
                Err(RenderError::GoConstruct {
                    construct: c, hint, ..
                }) => {
                    assert_eq!(c, construct, "{t}");
                    assert!(!hint.is_empty());
                }
                other => panic!("{t}: {other:?}"),
            }
        }
        let msg = render("{{ range .Items }}{{ end }}", &[])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("range") && msg.contains("not supported"),
            "{msg}"
        );
    }

    #[test]
    fn unclosed_and_bad_expressions_are_errors_without_values() {
        assert_eq!(
            render("echo {{ .X", &[("X", "1")]),
            Err(RenderError::Unclosed { at: 5 })
        );
        let e = render("{{ X | int }}", &[("X", "s3cr3t-value")]);
        if let Err(e) = e {
            assert!(!e.to_string().contains("s3cr3t-value"), "{e}");
        }
        assert!(matches!(
            render("{{ X + }}", &[("X", "1")]),
            Err(RenderError::Jinja { .. })
        ));
    }
}
