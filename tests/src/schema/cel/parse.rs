//! The lexer and recursive-descent parser of the CEL subset, producing
//! [`Expr`] with byte offsets, and cel-go's rendering of a syntax error
//! (position, source line, caret) so compile errors read like Kubernetes'.

use super::{Expr, MAX_DEPTH, Mac, Op, Val};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) fn lex(src: &str) -> Located<Vec<(Tok, usize, usize)>> {
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

pub(super) struct Parser<'s> {
    pub(super) src: &'s str,
    pub(super) toks: Vec<(Tok, usize, usize)>,
    pub(super) pos: usize,
}

impl Parser<'_> {
    pub(super) fn peek(&self) -> &Tok {
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
    pub(super) fn fail<T>(&self, want: &str) -> Located<T> {
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

    pub(super) fn expr(&mut self, d: usize) -> Located<Expr> {
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
pub(super) fn issue(src: &str, off: usize, msg: &str) -> String {
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
