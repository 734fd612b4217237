//! The CEL subset of `x-kubernetes-validations`: a hand-written lexer, parser,
//! static check and evaluator with the semantics kube-apiserver's cel-go setup
//! gives rules. Hand-written rather than a crate so that nesting and cost are
//! bounded for client-supplied rules and errors read like Kubernetes'.

mod eval;
mod parse;

use std::rc::Rc;

use serde_json::Value;

pub(crate) use eval::{eval, from_json, go_float};
use parse::{Parser, Tok, issue, lex};

/// Deepest expression nesting accepted: deeper rules fail to compile.
const MAX_DEPTH: usize = 100;
/// Evaluation steps per expression, standing in for Kubernetes' per-call cost limit.
const MAX_STEPS: u64 = 1_000_000;
pub(crate) const COST_ERR: &str = "operation cancelled: actual cost limit exceeded";
const NO_OVERLOAD: &str = "no such overload";
const OVERFLOW: &str = "integer overflow";
const FUNCS: &str = "size int uint double string dyn matches startsWith endsWith contains \
    lowerAscii upperAscii trim split join replace indexOf hasValue value orValue";

/// A CEL value. Lists remember whether equality ignores order
/// (`x-kubernetes-list-type: set` or `map`, as Kubernetes compares them).
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(Rc<str>),
    List(Rc<Vec<Val>>, bool),
    Map(Rc<Vec<(Val, Val)>>),
    Opt(Option<Rc<Val>>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mac {
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Val),
    Ident(String, usize),
    Select(Box<Expr>, String, usize),
    Index(Box<Expr>, Box<Expr>),
    Has(Box<Expr>, String, usize),
    Call(Option<Box<Expr>>, String, Vec<Expr>, usize),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    Macro(Mac, Box<Expr>, String, Box<Expr>, Option<Box<Expr>>),
}

/// A compiled rule or message expression.
#[derive(Debug)]
pub(crate) struct Program {
    expr: Expr,
    pub(crate) uses_old_self: bool,
}

/// Compiles `src` for the schema node `schema`; `resource_root` marks the root
/// or an embedded resource, where `apiVersion`, `kind`, `metadata` are implied.
/// `want` is the result type required of the expression ("bool" or "string").
pub(crate) fn compile(
    src: &str,
    schema: &Value,
    resource_root: bool,
    want: &str,
) -> Result<Program, String> {
    let parsed = lex(src).and_then(|toks| {
        let mut p = Parser { src, toks, pos: 0 };
        let e = p.expr(0)?;
        if *p.peek() != Tok::Eof {
            return p.fail("<EOF>");
        }
        Ok(e)
    });
    let expr = parsed.map_err(|(off, m)| format!("compilation failed: {}", issue(src, off, &m)))?;
    let mut c = Checker {
        schema,
        resource_root,
        scopes: Vec::new(),
        uses_old: false,
        err: None,
    };
    let typed = c.check(&expr);
    if let Some((off, m)) = c.err {
        return Err(format!("compilation failed: {}", issue(src, off, &m)));
    }
    let kind = result_kind(&expr).or_else(|| {
        let t = typed.and_then(|s| s.get("type")).and_then(Value::as_str);
        t.map(|t| match t {
            "boolean" => "bool",
            "string" => "string",
            _ => "other",
        })
    });
    if kind.is_some_and(|k| k != want) {
        return Err(format!("cel expression must evaluate to a {want}"));
    }
    Ok(Program {
        expr,
        uses_old_self: c.uses_old,
    })
}

/// The static result type where it is evident: "bool", "string", "other".
fn result_kind(e: &Expr) -> Option<&'static str> {
    match e {
        Expr::Lit(Val::Bool(_)) | Expr::Not(_) | Expr::And(..) | Expr::Or(..) | Expr::Has(..) => {
            Some("bool")
        }
        Expr::Bin(Op::Add, a, b) => match (result_kind(a), result_kind(b)) {
            (Some("string"), _) | (_, Some("string")) => Some("string"),
            _ => Some("other"),
        },
        Expr::Bin(Op::Sub | Op::Mul | Op::Div | Op::Rem, ..) => Some("other"),
        Expr::Bin(..) => Some("bool"),
        Expr::Lit(Val::Str(_)) => Some("string"),
        Expr::Lit(_) | Expr::List(_) | Expr::Map(_) | Expr::Neg(_) => Some("other"),
        Expr::Macro(m, ..) => Some(if matches!(m, Mac::Map | Mac::Filter) {
            "other"
        } else {
            "bool"
        }),
        Expr::Call(_, name, ..) => match name.as_str() {
            "startsWith" | "endsWith" | "contains" | "matches" | "isSorted" | "hasValue"
            | "bool" => Some("bool"),
            "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring"
            | "charAt" | "join" => Some("string"),
            "dyn" | "value" | "orValue" => None,
            _ => Some("other"),
        },
        Expr::Cond(_, a, b) => result_kind(a).filter(|k| result_kind(b) == Some(*k)),
        _ => None,
    }
}

/// Resolves identifiers and functions, and field selections against the schema
/// (`undefined field` for fields a structural schema does not declare).
struct Checker<'s> {
    schema: &'s Value,
    resource_root: bool,
    scopes: Vec<(String, Option<&'s Value>)>,
    uses_old: bool,
    err: Option<(usize, String)>,
}

impl<'s> Checker<'s> {
    fn fail(&mut self, at: usize, msg: String) -> Option<&'s Value> {
        self.err.get_or_insert((at, msg));
        None
    }

    fn check(&mut self, e: &Expr) -> Option<&'s Value> {
        match e {
            Expr::Ident(n, at) => {
                if let Some((_, s)) = self.scopes.iter().rev().find(|(v, _)| v == n) {
                    return *s;
                }
                match n.as_str() {
                    "self" => Some(self.schema),
                    "oldSelf" => {
                        self.uses_old = true;
                        Some(self.schema)
                    }
                    _ => self.fail(
                        *at,
                        format!("undeclared reference to '{n}' (in container '')"),
                    ),
                }
            }
            Expr::Select(t, f, at) | Expr::Has(t, f, at) => {
                let s = self.check(t)?;
                self.field(s, f, *at)
            }
            Expr::Index(t, i) => {
                self.check(i);
                let s = self.check(t)?;
                s.get("items")
                    .or_else(|| s.get("additionalProperties"))
                    .filter(|s| s.is_object())
            }
            Expr::Call(t, name, args, at) => {
                if let Some(t) = t {
                    self.check(t);
                }
                args.iter().for_each(|a| _ = self.check(a));
                if !FUNCS.split(' ').any(|f| f == name) {
                    self.fail(
                        *at,
                        format!("undeclared reference to '{name}' (in container '')"),
                    );
                }
                None
            }
            Expr::Macro(_, t, var, a, b) => {
                let elem = self
                    .check(t)
                    .and_then(|s| s.get("items"))
                    .filter(|s| s.is_object());
                self.scopes.push((var.clone(), elem));
                self.check(a);
                if let Some(b) = b {
                    self.check(b);
                }
                self.scopes.pop();
                None
            }
            Expr::List(items) => {
                items.iter().for_each(|a| _ = self.check(a));
                None
            }
            Expr::Map(entries) => {
                for (k, v) in entries {
                    self.check(k);
                    self.check(v);
                }
                None
            }
            Expr::Not(a) | Expr::Neg(a) => {
                self.check(a);
                None
            }
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Bin(_, a, b) => {
                self.check(a);
                self.check(b);
                None
            }
            Expr::Cond(c, a, b) => {
                self.check(c);
                let (a, b) = (self.check(a), self.check(b));
                a.filter(|a| b.is_some_and(|b| std::ptr::eq(*a, b)))
            }
            Expr::Lit(_) => None,
        }
    }

    fn field(&mut self, s: &'s Value, f: &str, at: usize) -> Option<&'s Value> {
        let embedded = s.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
        let root = self.resource_root && std::ptr::eq(s, self.schema);
        if (root || embedded) && matches!(f, "apiVersion" | "kind" | "metadata") {
            return None;
        }
        if let Some(ap) = s.get("additionalProperties") {
            return ap.is_object().then_some(ap);
        }
        let preserve = s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        let props = s.get("properties").and_then(Value::as_object);
        match props {
            Some(p) => match p.get(f).or_else(|| p.get(&unescape(f))) {
                Some(ps) => Some(ps),
                None if preserve => None,
                None => self.fail(at, format!("undefined field '{f}'")),
            },
            None if s.get("type").and_then(Value::as_str) == Some("object") && !preserve => {
                self.fail(at, format!("undefined field '{f}'"))
            }
            None => None,
        }
    }
}

/// Property names are escaped in CEL as Kubernetes does (`__dash__` for `-`, ...).
fn unescape(f: &str) -> String {
    const KEYWORDS: &str = "true false null in as break const continue else for function if \
        import let loop package namespace return var void while";
    let keyword = f.strip_prefix("__").and_then(|k| k.strip_suffix("__"));
    if let Some(k) = keyword.filter(|k| KEYWORDS.split(' ').any(|w| w == *k)) {
        return k.to_string();
    }
    let f = f
        .replace("__underscores__", "\u{0}")
        .replace("__dot__", ".");
    let f = f.replace("__dash__", "-").replace("__slash__", "/");
    f.replace('\u{0}', "__")
}

#[cfg(test)]
mod tests;
