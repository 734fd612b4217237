//! The CEL subset of `x-kubernetes-validations`: a hand-written lexer, parser,
//! static check and evaluator with the semantics kube-apiserver's cel-go setup
//! gives rules. Hand-written rather than a crate so that nesting and cost are
//! bounded for client-supplied rules and errors read like Kubernetes'.

use std::cmp::Ordering;
use std::rc::Rc;

use regex::Regex;
use serde_json::Value;

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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(u64),
    Uint(u64),
    Dbl(f64),
    Str(String),
    Id(String),
    P(&'static str),
    Eof,
}

const PUNCTS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", ",",
    "(", ")", "[", "]", "{", "}",
];

/// What ANTLR lists when an operand is missing (cel-go's message).
const EXPR_START: &str = "{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, \
                          NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}";

type Located<T> = Result<T, (usize, String)>;

fn lex(src: &str) -> Located<Vec<(Tok, usize, usize)>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(b.len(), |n| i + n);
            continue;
        }
        let start = i;
        let raw = matches!(c, b'r' | b'R') && matches!(b.get(i + 1), Some(b'"' | b'\''));
        let tok =
            if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
                let (t, n) = lex_number(&src[i..]).map_err(|e| (start, e))?;
                i += n;
                t
            } else if c == b'"' || c == b'\'' || raw {
                let (s, n) = lex_string(&src[i..], raw).map_err(|e| (start, e))?;
                i += n;
                Tok::Str(s)
            } else if c.is_ascii_alphabetic() || c == b'_' {
                let n = src[i..].find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'));
                let end = n.map_or(b.len(), |n| i + n);
                let id = src[i..end].to_string();
                i = end;
                Tok::Id(id)
            } else if let Some(p) = PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
                i += p.len();
                Tok::P(p)
            } else {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err((
                    start,
                    format!("Syntax error: token recognition error at: '{ch}'"),
                ));
            };
        out.push((tok, start, i));
    }
    out.push((Tok::Eof, b.len(), b.len()));
    Ok(out)
}

fn lex_number(s: &str) -> Result<(Tok, usize), String> {
    let b = s.as_bytes();
    let digits = |from: usize, hex: bool| {
        from + b[from..]
            .iter()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count()
    };
    let bad = || format!("Syntax error: invalid number literal '{s}'");
    if s.starts_with("0x") || s.starts_with("0X") {
        let end = digits(2, true);
        let v = u64::from_str_radix(&s[2..end], 16).map_err(|_| bad())?;
        return Ok(match b.get(end) {
            Some(b'u' | b'U') => (Tok::Uint(v), end + 1),
            _ => (Tok::Int(v), end),
        });
    }
    let mut end = digits(0, false);
    let mut float = false;
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1, false);
        float = true;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(b.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        if b.get(e).is_some_and(u8::is_ascii_digit) {
            end = digits(e, false);
            float = true;
        }
    }
    let text = &s[..end];
    if float {
        return text.parse().map(|f| (Tok::Dbl(f), end)).map_err(|_| bad());
    }
    let v: u64 = text.parse().map_err(|_| bad())?;
    Ok(match b.get(end) {
        Some(b'u' | b'U') => (Tok::Uint(v), end + 1),
        _ => (Tok::Int(v), end),
    })
}

fn lex_string(s: &str, raw: bool) -> Result<(String, usize), String> {
    let unterminated = || "Syntax error: unterminated string".to_string();
    let start = usize::from(raw);
    let q = s[start..].chars().next().ok_or_else(unterminated)?;
    let (mut i, mut out) = (start + 1, String::new());
    loop {
        let rest = &s[i..];
        let mut it = rest.chars();
        let c = it.next().filter(|c| *c != '\n').ok_or_else(unterminated)?;
        if c == q {
            return Ok((out, i + 1));
        }
        if c != '\\' || raw {
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let hex = |n: usize| {
            let code = rest
                .get(2..2 + n)
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            code.and_then(char::from_u32)
                .ok_or("Syntax error: invalid escape sequence")
        };
        let (ch, len) = match it.next().ok_or_else(unterminated)? {
            'n' => ('\n', 2),
            'r' => ('\r', 2),
            't' => ('\t', 2),
            'a' => ('\u{7}', 2),
            'b' => ('\u{8}', 2),
            'f' => ('\u{c}', 2),
            'v' => ('\u{b}', 2),
            e @ ('\\' | '\'' | '"' | '`' | '?') => (e, 2),
            'x' | 'X' => (hex(2)?, 4),
            'u' => (hex(4)?, 6),
            'U' => (hex(8)?, 10),
            _ => return Err("Syntax error: invalid escape sequence".into()),
        };
        out.push(ch);
        i += len;
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, usize, usize)>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.0)
    }
    fn off(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |t| t.1)
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos = (self.pos + 1).min(self.toks.len().saturating_sub(1));
        t
    }
    fn eat(&mut self, p: &str) -> bool {
        let hit = matches!(self.peek(), Tok::P(q) if *q == p);
        if hit {
            self.bump();
        }
        hit
    }
    fn fail<T>(&self, want: &str) -> Located<T> {
        let text = match self.toks.get(self.pos) {
            Some((Tok::Eof, ..)) | None => "<EOF>",
            Some((_, a, b)) => &self.src[*a..*b],
        };
        Err((
            self.off(),
            format!("Syntax error: mismatched input '{text}' expecting {want}"),
        ))
    }
    fn expect(&mut self, p: &str) -> Located<()> {
        if self.eat(p) {
            Ok(())
        } else {
            self.fail(&format!("'{p}'"))
        }
    }
    fn deeper(&self, d: usize) -> Located<usize> {
        if d >= MAX_DEPTH {
            return Err((self.off(), "max recursion depth exceeded".into()));
        }
        Ok(d + 1)
    }

    fn expr(&mut self, d: usize) -> Located<Expr> {
        let d = self.deeper(d)?;
        let c = self.binary(0, d)?;
        if !self.eat("?") {
            return Ok(c);
        }
        let a = self.binary(0, d)?;
        self.expect(":")?;
        let b = self.expr(d)?;
        Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)))
    }

    /// Precedence levels: `||`, `&&`, relations, additive, multiplicative.
    fn binary(&mut self, level: usize, mut d: usize) -> Located<Expr> {
        if level == 5 {
            return self.unary(d);
        }
        let mut l = self.binary(level + 1, d)?;
        loop {
            let op = match (level, self.peek()) {
                (0, Tok::P("||")) | (1, Tok::P("&&")) => None,
                (2, Tok::P("==")) => Some(Op::Eq),
                (2, Tok::P("!=")) => Some(Op::Ne),
                (2, Tok::P("<")) => Some(Op::Lt),
                (2, Tok::P("<=")) => Some(Op::Le),
                (2, Tok::P(">")) => Some(Op::Gt),
                (2, Tok::P(">=")) => Some(Op::Ge),
                (2, Tok::Id(w)) if w == "in" => Some(Op::In),
                (3, Tok::P("+")) => Some(Op::Add),
                (3, Tok::P("-")) => Some(Op::Sub),
                (4, Tok::P("*")) => Some(Op::Mul),
                (4, Tok::P("/")) => Some(Op::Div),
                (4, Tok::P("%")) => Some(Op::Rem),
                _ => return Ok(l),
            };
            self.bump();
            d = self.deeper(d)?;
            let r = Box::new(self.binary(level + 1, d)?);
            l = match (level, op) {
                (0, _) => Expr::Or(Box::new(l), r),
                (1, _) => Expr::And(Box::new(l), r),
                (_, Some(op)) => Expr::Bin(op, Box::new(l), r),
                _ => return self.fail("an operator"),
            };
        }
    }

    fn unary(&mut self, mut d: usize) -> Located<Expr> {
        if self.eat("!") {
            d = self.deeper(d)?;
            return Ok(Expr::Not(Box::new(self.unary(d)?)));
        }
        if self.eat("-") {
            d = self.deeper(d)?;
            // A negated integer literal is folded so that i64::MIN can be written.
            if let Tok::Int(u) = *self.peek() {
                self.bump();
                let v = 0i64.checked_sub_unsigned(u);
                let lit = v.map(|v| Expr::Lit(Val::Int(v)));
                let lit = lit.ok_or_else(|| (self.off(), "invalid int literal".to_string()))?;
                return self.suffixes(lit, d);
            }
            return Ok(Expr::Neg(Box::new(self.unary(d)?)));
        }
        let p = self.primary(d)?;
        self.suffixes(p, d)
    }

    fn suffixes(&mut self, mut e: Expr, mut d: usize) -> Located<Expr> {
        loop {
            if self.eat(".") {
                d = self.deeper(d)?;
                let at = self.off();
                let Tok::Id(name) = self.bump() else {
                    return self.fail("IDENTIFIER");
                };
                e = if self.eat("(") {
                    let args = self.args(")", d)?;
                    self.call(Some(e), name, args, at)?
                } else {
                    Expr::Select(Box::new(e), name, at)
                };
            } else if self.eat("[") {
                d = self.deeper(d)?;
                let i = self.expr(d)?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(i));
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self, close: &str, d: usize) -> Located<Vec<Expr>> {
        let mut v = Vec::new();
        while !self.eat(close) {
            if !v.is_empty() {
                self.expect(",")?;
                if self.eat(close) {
                    break;
                }
            }
            v.push(self.expr(d)?);
        }
        Ok(v)
    }

    fn primary(&mut self, d: usize) -> Located<Expr> {
        let (at, before) = (self.off(), self.pos);
        Ok(match self.bump() {
            Tok::Int(u) => Expr::Lit(Val::Int(
                i64::try_from(u).map_err(|_| (at, "invalid int literal".to_string()))?,
            )),
            Tok::Uint(u) => Expr::Lit(Val::Uint(u)),
            Tok::Dbl(f) => Expr::Lit(Val::Double(f)),
            Tok::Str(s) => Expr::Lit(Val::Str(s.into())),
            Tok::Id(w) if w == "true" || w == "false" => Expr::Lit(Val::Bool(w == "true")),
            Tok::Id(w) if w == "null" => Expr::Lit(Val::Null),
            Tok::Id(w) if w == "in" => {
                self.pos = before;
                return self.fail(EXPR_START);
            }
            Tok::Id(name) => {
                if self.eat("(") {
                    let args = self.args(")", d)?;
                    self.call(None, name, args, at)?
                } else {
                    Expr::Ident(name, at)
                }
            }
            Tok::P("(") => {
                let e = self.expr(d)?;
                self.expect(")")?;
                e
            }
            Tok::P("[") => Expr::List(self.args("]", d)?),
            Tok::P("{") => {
                let mut entries = Vec::new();
                while !self.eat("}") {
                    if !entries.is_empty() {
                        self.expect(",")?;
                        if self.eat("}") {
                            break;
                        }
                    }
                    let k = self.expr(d)?;
                    self.expect(":")?;
                    entries.push((k, self.expr(d)?));
                }
                Expr::Map(entries)
            }
            _ => {
                self.pos = before;
                return self.fail(EXPR_START);
            }
        })
    }

    /// Expands the macros (`has`, `all`, `exists`, `exists_one`, `map`, `filter`).
    fn call(
        &self,
        target: Option<Expr>,
        name: String,
        mut args: Vec<Expr>,
        at: usize,
    ) -> Located<Expr> {
        let mac = match (target.is_some(), name.as_str(), args.len()) {
            (false, "has", 1) => {
                return match args.pop() {
                    Some(Expr::Select(t, f, p)) => Ok(Expr::Has(t, f, p)),
                    _ => Err((at, "invalid argument to has() macro".into())),
                };
            }
            (true, "all", 2) => Mac::All,
            (true, "exists", 2) => Mac::Exists,
            (true, "exists_one", 2) => Mac::ExistsOne,
            (true, "map", 2 | 3) => Mac::Map,
            (true, "filter", 2) => Mac::Filter,
            _ => return Ok(Expr::Call(target.map(Box::new), name, args, at)),
        };
        let mut it = args.into_iter();
        let (Some(Expr::Ident(var, _)), Some(a)) = (it.next(), it.next()) else {
            return Err((at, "argument must be a simple name".into()));
        };
        let (t, b) = (target.map(Box::new), it.next().map(Box::new));
        t.map(|t| Expr::Macro(mac, t, var, Box::new(a), b))
            .ok_or((at, "bad macro".into()))
    }
}

/// Renders one compile issue as cel-go does: position, message, source line, caret.
fn issue(src: &str, off: usize, msg: &str) -> String {
    let off = (0..=off.min(src.len()))
        .rev()
        .find(|i| src.is_char_boundary(*i))
        .unwrap_or(0);
    let line_start = src[..off].rfind('\n').map_or(0, |p| p + 1);
    let line = src[..off].matches('\n').count() + 1;
    let col = src[line_start..off].chars().count();
    let text = src[line_start..].lines().next().unwrap_or("");
    format!(
        "ERROR: <input>:{line}:{}: {msg}\n | {text}\n | {}^",
        col + 1,
        ".".repeat(col)
    )
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

/// Converts a JSON value to CEL following its schema: `number` fields are
/// doubles even when integral, set and map lists compare without order.
pub(crate) fn from_json(v: &Value, s: Option<&Value>) -> Val {
    from_json_at(v, s, 0)
}

fn from_json_at(v: &Value, s: Option<&Value>, depth: usize) -> Val {
    let get = |k: &str| s.and_then(|s| s.get(k));
    match v {
        Value::Null => Val::Null,
        _ if depth > 2 * MAX_DEPTH => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) if get("type").and_then(Value::as_str) != Some("number") => Val::Int(i),
            _ => Val::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(x) => Val::Str(x.as_str().into()),
        Value::Array(a) => {
            let unordered = matches!(
                get("x-kubernetes-list-type").and_then(Value::as_str),
                Some("set" | "map")
            );
            let items = get("items");
            Val::List(
                Rc::new(
                    a.iter()
                        .map(|x| from_json_at(x, items, depth + 1))
                        .collect(),
                ),
                unordered,
            )
        }
        Value::Object(m) => {
            let props = get("properties").and_then(Value::as_object);
            let ap = get("additionalProperties").filter(|a| a.is_object());
            let child = |k: &str| props.and_then(|p| p.get(k)).or(ap);
            let entries = m.iter().map(|(k, x)| {
                (
                    Val::Str(k.as_str().into()),
                    from_json_at(x, child(k), depth + 1),
                )
            });
            Val::Map(Rc::new(entries.collect()))
        }
    }
}

/// Evaluates a program with `self` and, for transition rules, `oldSelf`.
pub(crate) fn eval(p: &Program, this: &Val, old: Option<&Val>) -> Result<Val, String> {
    let mut ev = Eval {
        vars: vec![("self".to_string(), this.clone())],
        steps: 0,
    };
    if let Some(o) = old {
        ev.vars.push(("oldSelf".to_string(), o.clone()));
    }
    let r = ev.ev(&p.expr);
    if ev.steps > MAX_STEPS {
        Err(COST_ERR.to_string())
    } else {
        r
    }
}

struct Eval {
    vars: Vec<(String, Val)>,
    steps: u64,
}

impl Eval {
    fn ev(&mut self, e: &Expr) -> Result<Val, String> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(COST_ERR.to_string());
        }
        Ok(match e {
            Expr::Lit(v) => v.clone(),
            Expr::Ident(n, _) => match self.vars.iter().rev().find(|(k, _)| k == n) {
                Some((_, v)) => v.clone(),
                None => return Err(format!("no such attribute: {n}")),
            },
            Expr::Select(t, f, _) => match self.ev(t)? {
                Val::Map(m) => field(&m, f)
                    .cloned()
                    .ok_or_else(|| format!("no such key: {f}"))?,
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Has(t, f, _) => match self.ev(t)? {
                Val::Map(m) => Val::Bool(field(&m, f).is_some()),
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Index(t, i) => {
                let (t, i) = (self.ev(t)?, self.ev(i)?);
                index(&t, &i)?
            }
            Expr::List(items) => {
                let v = items
                    .iter()
                    .map(|x| self.ev(x))
                    .collect::<Result<Vec<_>, _>>()?;
                Val::List(Rc::new(v), false)
            }
            Expr::Map(entries) => {
                let mut out: Vec<(Val, Val)> = Vec::new();
                for (k, v) in entries {
                    let k = self.ev(k)?;
                    if !matches!(k, Val::Str(_) | Val::Int(_) | Val::Uint(_) | Val::Bool(_)) {
                        return Err("unsupported key type".into());
                    }
                    if out.iter().any(|(o, _)| equal(o, &k)) {
                        return Err(format!("Failed with repeated key: {}", display(&k)));
                    }
                    out.push((k, self.ev(v)?));
                }
                Val::Map(Rc::new(out))
            }
            Expr::Not(x) => match self.ev(x)? {
                Val::Bool(b) => Val::Bool(!b),
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Neg(x) => match self.ev(x)? {
                Val::Int(i) => Val::Int(i.checked_neg().ok_or(OVERFLOW)?),
                Val::Double(d) => Val::Double(-d),
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::And(a, b) => return self.logic(a, b, false),
            Expr::Or(a, b) => return self.logic(a, b, true),
            Expr::Cond(c, a, b) => match self.ev(c)? {
                Val::Bool(true) => self.ev(a)?,
                Val::Bool(false) => self.ev(b)?,
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Bin(op, a, b) => {
                let (x, y) = (self.ev(a)?, self.ev(b)?);
                binary(*op, &x, &y)?
            }
            Expr::Macro(m, t, var, a, b) => return self.mac(*m, t, var, a, b.as_deref()),
            Expr::Call(t, name, args, _) => {
                let t = t.as_ref().map(|t| self.ev(t)).transpose()?;
                let args = args
                    .iter()
                    .map(|x| self.ev(x))
                    .collect::<Result<Vec<_>, _>>()?;
                call(name, t.as_ref(), &args)?
            }
        })
    }

    /// `&&` and `||` are commutative over errors: a decisive side wins.
    fn logic(&mut self, a: &Expr, b: &Expr, or: bool) -> Result<Val, String> {
        let l = self.ev(a);
        if matches!(l, Ok(Val::Bool(x)) if x == or) {
            return Ok(Val::Bool(or));
        }
        let r = self.ev(b);
        if self.steps > MAX_STEPS {
            return Err(COST_ERR.into());
        }
        if matches!(r, Ok(Val::Bool(x)) if x == or) {
            return Ok(Val::Bool(or));
        }
        match (l, r) {
            (Ok(Val::Bool(_)), Ok(Val::Bool(_))) => Ok(Val::Bool(!or)),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            _ => Err(NO_OVERLOAD.into()),
        }
    }

    fn bind(&mut self, var: &str, x: Val, body: &Expr) -> Result<Val, String> {
        self.vars.push((var.to_string(), x));
        let r = self.ev(body);
        self.vars.pop();
        r
    }

    fn mac(
        &mut self,
        m: Mac,
        t: &Expr,
        var: &str,
        a: &Expr,
        b: Option<&Expr>,
    ) -> Result<Val, String> {
        let range: Vec<Val> = match self.ev(t)? {
            Val::List(l, _) => l.to_vec(),
            Val::Map(m) => m.iter().map(|(k, _)| k.clone()).collect(),
            _ => return Err(NO_OVERLOAD.into()),
        };
        let mut out = Vec::new();
        let mut count = 0;
        let mut err = None;
        for x in range {
            match m {
                Mac::All | Mac::Exists => match self.bind(var, x, a) {
                    Ok(Val::Bool(v)) if v == (m == Mac::Exists) => return Ok(Val::Bool(v)),
                    Ok(Val::Bool(_)) => {}
                    Err(e) if e == COST_ERR => return Err(e),
                    Ok(_) => _ = err.get_or_insert(NO_OVERLOAD.to_string()),
                    Err(e) => _ = err.get_or_insert(e),
                },
                Mac::ExistsOne => count += usize::from(truth(self.bind(var, x, a)?)?),
                Mac::Filter => {
                    if truth(self.bind(var, x.clone(), a)?)? {
                        out.push(x);
                    }
                }
                Mac::Map => match b {
                    Some(_) if !truth(self.bind(var, x.clone(), a)?)? => {}
                    Some(b) => out.push(self.bind(var, x, b)?),
                    None => out.push(self.bind(var, x, a)?),
                },
            }
        }
        match (m, err) {
            (Mac::All | Mac::Exists, Some(e)) => Err(e),
            (Mac::All | Mac::Exists, None) => Ok(Val::Bool(m == Mac::All)),
            (Mac::ExistsOne, _) => Ok(Val::Bool(count == 1)),
            _ => Ok(Val::List(Rc::new(out), false)),
        }
    }
}

fn truth(v: Val) -> Result<bool, String> {
    match v {
        Val::Bool(b) => Ok(b),
        _ => Err(NO_OVERLOAD.into()),
    }
}

fn lookup<'a>(m: &'a [(Val, Val)], k: &Val) -> Option<&'a Val> {
    m.iter().find(|(x, _)| equal(x, k)).map(|(_, v)| v)
}

fn field<'a>(m: &'a [(Val, Val)], f: &str) -> Option<&'a Val> {
    lookup(m, &Val::Str(f.into())).or_else(|| lookup(m, &Val::Str(unescape(f).into())))
}

fn display(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Uint(u) => u.to_string(),
        Val::Double(d) => go_float(*d),
        Val::Bool(b) => b.to_string(),
        _ => format!("{v:?}"),
    }
}

fn index(t: &Val, i: &Val) -> Result<Val, String> {
    match (t, i) {
        (Val::List(l, _), Val::Int(_) | Val::Uint(_) | Val::Double(_)) => {
            let n = match *i {
                Val::Int(n) => n,
                Val::Uint(u) => i64::try_from(u).unwrap_or(i64::MAX),
                Val::Double(d) if d.fract() == 0.0 && d.abs() < 9e18 => d as i64,
                _ => return Err(NO_OVERLOAD.into()),
            };
            let got = usize::try_from(n).ok().and_then(|u| l.get(u));
            got.cloned()
                .ok_or_else(|| format!("index '{n}' out of range in list size '{}'", l.len()))
        }
        (Val::Map(m), k) => lookup(m, k)
            .cloned()
            .ok_or_else(|| format!("no such key: {}", display(k))),
        _ => Err(NO_OVERLOAD.into()),
    }
}

/// CEL equality: numbers compare across int, uint and double; other
/// differently typed values are unequal.
fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x, ux), Val::List(y, uy)) => {
            x.len() == y.len()
                && if *ux || *uy {
                    x.iter().all(|e| y.iter().any(|f| equal(e, f)))
                        && y.iter().all(|f| x.iter().any(|e| equal(e, f)))
                } else {
                    x.iter().zip(y.iter()).all(|(e, f)| equal(e, f))
                }
        }
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| lookup(y, k).is_some_and(|w| equal(v, w)))
        }
        (Val::Opt(x), Val::Opt(y)) => match (x, y) {
            (Some(x), Some(y)) => equal(x, y),
            (None, None) => true,
            _ => false,
        },
        _ => compare(a, b).ok().flatten() == Some(Ordering::Equal),
    }
}

/// Ordering for `<` and friends; `None` for NaN, an error across types.
fn compare(a: &Val, b: &Val) -> Result<Option<Ordering>, String> {
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Uint(x), Val::Uint(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Uint(y)) => Some(u64::try_from(*x).map_or(Ordering::Less, |x| x.cmp(y))),
        (Val::Uint(x), Val::Int(y)) => {
            Some(u64::try_from(*y).map_or(Ordering::Greater, |y| x.cmp(&y)))
        }
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        (Val::Double(x), Val::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Double(x), Val::Uint(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Int(x), Val::Double(y)) => (*x as f64).partial_cmp(y),
        (Val::Uint(x), Val::Double(y)) => (*x as f64).partial_cmp(y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        _ => return Err(NO_OVERLOAD.into()),
    })
}

fn binary(op: Op, x: &Val, y: &Val) -> Result<Val, String> {
    use Val::{Double, Int, Str, Uint};
    let ord = |want: fn(Ordering) -> bool| compare(x, y).map(|o| Val::Bool(o.is_some_and(want)));
    Ok(match op {
        Op::Eq => Val::Bool(equal(x, y)),
        Op::Ne => Val::Bool(!equal(x, y)),
        Op::Lt => ord(Ordering::is_lt)?,
        Op::Le => ord(Ordering::is_le)?,
        Op::Gt => ord(Ordering::is_gt)?,
        Op::Ge => ord(Ordering::is_ge)?,
        Op::In => match y {
            Val::List(l, _) => Val::Bool(l.iter().any(|e| equal(e, x))),
            Val::Map(m) => Val::Bool(lookup(m, x).is_some()),
            _ => return Err(NO_OVERLOAD.into()),
        },
        _ => match (op, x, y) {
            (Op::Add, Int(a), Int(b)) => Int(a.checked_add(*b).ok_or(OVERFLOW)?),
            (Op::Sub, Int(a), Int(b)) => Int(a.checked_sub(*b).ok_or(OVERFLOW)?),
            (Op::Mul, Int(a), Int(b)) => Int(a.checked_mul(*b).ok_or(OVERFLOW)?),
            (Op::Div | Op::Rem, Int(_), Int(0)) | (Op::Div | Op::Rem, Uint(_), Uint(0)) => {
                return Err(if op == Op::Div {
                    "division by zero"
                } else {
                    "modulus by zero"
                }
                .into());
            }
            (Op::Div, Int(a), Int(b)) => Int(a.checked_div(*b).ok_or(OVERFLOW)?),
            (Op::Rem, Int(a), Int(b)) => Int(a.checked_rem(*b).ok_or(OVERFLOW)?),
            (Op::Add, Uint(a), Uint(b)) => Uint(a.checked_add(*b).ok_or(OVERFLOW)?),
            (Op::Sub, Uint(a), Uint(b)) => Uint(a.checked_sub(*b).ok_or(OVERFLOW)?),
            (Op::Mul, Uint(a), Uint(b)) => Uint(a.checked_mul(*b).ok_or(OVERFLOW)?),
            (Op::Div, Uint(a), Uint(b)) => Uint(a / b),
            (Op::Rem, Uint(a), Uint(b)) => Uint(a % b),
            (Op::Add, Double(a), Double(b)) => Double(a + b),
            (Op::Sub, Double(a), Double(b)) => Double(a - b),
            (Op::Mul, Double(a), Double(b)) => Double(a * b),
            (Op::Div, Double(a), Double(b)) => Double(a / b),
            (Op::Add, Str(a), Str(b)) => Str(format!("{a}{b}").into()),
            (Op::Add, Val::List(a, _), Val::List(b, _)) => {
                Val::List(Rc::new(a.iter().chain(b.iter()).cloned().collect()), false)
            }
            _ => return Err(NO_OVERLOAD.into()),
        },
    })
}

fn to_int(x: &Val) -> Result<Val, String> {
    Ok(Val::Int(match x {
        Val::Int(i) => *i,
        Val::Uint(u) => i64::try_from(*u).map_err(|_| "range error")?,
        Val::Double(d)
            if d.is_finite() && *d > -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18 =>
        {
            d.trunc() as i64
        }
        Val::Double(_) => return Err("range error".into()),
        Val::Str(s) => s
            .parse()
            .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))?,
        _ => return Err(NO_OVERLOAD.into()),
    }))
}

fn to_str(x: &Val) -> Result<Val, String> {
    Ok(match x {
        Val::Str(_) => x.clone(),
        Val::Int(_) | Val::Uint(_) | Val::Double(_) | Val::Bool(_) => Val::Str(display(x).into()),
        _ => return Err(NO_OVERLOAD.into()),
    })
}

fn call(name: &str, t: Option<&Val>, args: &[Val]) -> Result<Val, String> {
    use Val::{Bool, Double, Int, List, Str, Uint};
    let s = |v: &str| Str(v.into());
    let strings = |l: &[Val]| -> Result<Vec<String>, String> {
        let one = |e: &Val| {
            if let Str(x) = e {
                Ok(x.to_string())
            } else {
                Err(NO_OVERLOAD.to_string())
            }
        };
        l.iter().map(one).collect()
    };
    Ok(match (name, t, args) {
        ("size", None, [x]) | ("size", Some(x), []) => match x {
            Str(v) => Int(v.chars().count() as i64),
            List(l, _) => Int(l.len() as i64),
            Val::Map(m) => Int(m.len() as i64),
            _ => return Err(NO_OVERLOAD.into()),
        },
        ("int", None, [x]) => to_int(x)?,
        ("uint", None, [Uint(u)]) => Uint(*u),
        ("uint", None, [x]) => match to_int(x)? {
            Int(i) => Uint(u64::try_from(i).map_err(|_| "range error")?),
            _ => return Err(NO_OVERLOAD.into()),
        },
        ("double", None, [Int(i)]) => Double(*i as f64),
        ("double", None, [Uint(u)]) => Double(*u as f64),
        ("double", None, [Double(d)]) => Double(*d),
        ("double", None, [Str(v)]) => match v.parse() {
            Ok(d) => Double(d),
            Err(_) => return Err(format!("strconv.ParseFloat: parsing {v:?}: invalid syntax")),
        },
        ("string", None, [x]) => to_str(x)?,
        ("dyn", None, [x]) => x.clone(),
        ("matches", None, [Str(v), Str(re)]) | ("matches", Some(Str(v)), [Str(re)]) => {
            let re = Regex::new(re).map_err(|e| format!("error parsing regexp: {e}"))?;
            Bool(re.is_match(v))
        }
        ("startsWith", Some(Str(v)), [Str(p)]) => Bool(v.starts_with(&**p)),
        ("endsWith", Some(Str(v)), [Str(p)]) => Bool(v.ends_with(&**p)),
        ("contains", Some(Str(v)), [Str(p)]) => Bool(v.contains(&**p)),
        ("lowerAscii", Some(Str(v)), []) => s(&v.to_ascii_lowercase()),
        ("upperAscii", Some(Str(v)), []) => s(&v.to_ascii_uppercase()),
        ("trim", Some(Str(v)), []) => s(v.trim()),
        ("split", Some(Str(v)), [Str(sep)]) => {
            List(Rc::new(v.split(&**sep).map(s).collect()), false)
        }
        ("replace", Some(Str(v)), [Str(a), Str(b)]) => s(&v.replace(&**a, b)),
        ("indexOf", Some(Str(v)), [Str(p)]) => {
            let at = v.find(&**p).map(|b| v[..b].chars().count() as i64);
            Int(at.unwrap_or(-1))
        }
        ("join", Some(List(l, _)), []) => s(&strings(l)?.concat()),
        ("join", Some(List(l, _)), [Str(sep)]) => s(&strings(l)?.join(sep)),
        ("hasValue", Some(Val::Opt(o)), []) => Bool(o.is_some()),
        ("value", Some(Val::Opt(o)), []) => {
            o.as_deref().cloned().ok_or("optional.none() dereference")?
        }
        ("orValue", Some(Val::Opt(o)), [d]) => o.as_deref().cloned().unwrap_or_else(|| d.clone()),
        _ => return Err(NO_OVERLOAD.into()),
    })
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): shortest
/// digits, exponent form below 1e-4 and from 1e+06 up (Kubernetes' messages).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (head, tail) = digits.split_at(1);
        let frac = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{head}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let p = point as usize;
        let int: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(p.max(digits.len()))
            .collect();
        let (i, frac) = int.split_at(p);
        if frac.is_empty() {
            i.to_string()
        } else {
            format!("{i}.{frac}")
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(rule: &str, this: Value) -> Result<Val, String> {
        let p = compile(rule, &json!({}), false, "bool")?;
        eval(&p, &from_json(&this, None), None)
    }

    fn err(rule: &str, this: Value) -> String {
        run(rule, this).err().unwrap_or_default()
    }

    fn yes(rule: &str, this: Value) {
        assert!(matches!(run(rule, this), Ok(Val::Bool(true))), "{rule}");
    }

    #[test]
    fn operators_and_literals() {
        yes(
            "1 + 2 * 3 == 7 && 7 % 4 == 3 && 10 / 3 == 3 && -(-3) == 3",
            json!({}),
        );
        yes(
            "1u + 2u == 3u && 2.5 * 2.0 == 5.0 && 1 == 1.0 && 1 < 1.5",
            json!({}),
        );
        yes(
            "'ab' + \"c\" == 'abc' && [1, 2] + [3] == [1, 2, 3] && 2 in [1, 2]",
            json!({}),
        );
        yes(
            "{'a': 1}['a'] == 1 && 'a' in {'a': 1} && null == null",
            json!({}),
        );
        yes(
            "'a' < 'b' && false < true && (!(1 > 2) ? true : false)",
            json!({}),
        );
        yes(
            r"r'\d' == '\\d' && '\x41\u0042' == 'AB' && -9223372036854775808 < 0",
            json!({}),
        );
    }

    #[test]
    fn fields_has_and_errors() {
        let obj = json!({"spec": {"x": [10, 20], "m": {"k": "v"}}});
        yes(
            "self.spec.x[1] == 20 && self.spec.m['k'] == 'v' && self.spec.m.k == 'v'",
            obj.clone(),
        );
        yes("has(self.spec.x) && !has(self.spec.y)", obj.clone());
        assert_eq!(err("self.spec.y == 1", obj.clone()), "no such key: y");
        assert_eq!(
            err("self.spec.x[5] == 1", obj.clone()),
            "index '5' out of range in list size '2'"
        );
        assert_eq!(err("1 / 0 == 1", obj.clone()), "division by zero");
        assert_eq!(err("9223372036854775807 + 1 > 0", obj.clone()), OVERFLOW);
        assert_eq!(err("1 + 'a' == 1", obj.clone()), NO_OVERLOAD);
        // A decisive side of && and || absorbs an error on the other.
        yes("self.spec.y == 1 || true", obj.clone());
        assert!(matches!(
            run("self.spec.y == 1 && false", obj),
            Ok(Val::Bool(false))
        ));
    }

    #[test]
    fn macros_and_functions() {
        let obj = json!({"l": [1, 2, 3], "s": "Hello-World"});
        yes(
            "self.l.all(x, x > 0) && self.l.exists(x, x == 2) && self.l.exists_one(x, x > 2)",
            obj.clone(),
        );
        yes(
            "self.l.map(x, x * 2) == [2, 4, 6] && self.l.filter(x, x % 2 == 1) == [1, 3]",
            obj.clone(),
        );
        yes(
            "self.l.map(x, x > 1, x) == [2, 3] && {'a': 1}.all(k, k == 'a')",
            obj.clone(),
        );
        yes(
            "self.s.startsWith('He') && self.s.endsWith('ld') && self.s.contains('o-W')",
            obj.clone(),
        );
        yes(
            "self.s.matches('^[A-Z][a-z]+-') && matches(self.s, 'World$')",
            obj.clone(),
        );
        yes(
            "size(self.l) == 3 && self.s.size() == 11 && self.s.lowerAscii() == 'hello-world'",
            obj.clone(),
        );
        yes(
            "self.s.split('-') == ['Hello', 'World'] && ['a', 'b'].join('/') == 'a/b'",
            obj.clone(),
        );
        yes(
            "int('42') == 42 && string(7) == '7' && double(1) == 1.0 && uint(3) == 3u",
            obj,
        );
        yes(
            "[1, 2].all(x, x > 1) == false && [0, 1].exists(x, 1 / x == 1)",
            json!({}),
        );
    }

    #[test]
    fn compile_errors_read_like_cel_go() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let fail = |src: &str| {
            compile(src, &schema, true, "bool")
                .err()
                .unwrap_or_default()
        };
        let e = fail("self.a ==");
        assert!(e.starts_with(
            "compilation failed: ERROR: <input>:1:10: Syntax error: mismatched input '<EOF>'"
        ));
        assert!(e.ends_with("\n | self.a ==\n | .........^"), "{e}");
        let e = fail("this does not compile");
        assert!(e.contains("<input>:1:6: Syntax error: mismatched input 'does' expecting <EOF>"));
        assert!(fail("foo == 1").contains("undeclared reference to 'foo' (in container '')"));
        assert!(fail("self.b == 1").contains("undefined field 'b'"));
        assert_eq!(fail("self.a"), "cel expression must evaluate to a bool");
        assert!(
            fail(&format!("{}true{}", "(".repeat(150), ")".repeat(150)))
                .contains("max recursion depth")
        );
        assert!(
            compile(
                "self.a > 0 && self.metadata.name != ''",
                &schema,
                true,
                "bool"
            )
            .is_ok()
        );
        assert!(compile("self == oldSelf", &schema, true, "bool").is_ok_and(|p| p.uses_old_self));
    }

    #[test]
    fn cost_is_bounded() {
        let l: Vec<i64> = (0..2000).collect();
        assert_eq!(
            err(
                "self.l.all(x, self.l.all(y, x + y >= 0))",
                json!({ "l": l })
            ),
            COST_ERR
        );
    }

    #[test]
    fn go_float_formatting() {
        let cases = [
            (1.5, "1.5"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1e-5, "1e-05"),
            (-2.0, "-2"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want);
        }
    }
}
