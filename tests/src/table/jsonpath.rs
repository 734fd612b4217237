//! The Kubernetes JSONPath of printer columns (client-go `util/jsonpath`,
//! missing keys allowed), evaluated on JSON values.

use serde_json::{Value, json};
use std::cmp::Ordering;

// ---------------------------------------------------------------------------------------
// JSONPath (a port of client-go's parser and evaluator, quirks included)

/// Evaluates a Kubernetes JSONPath expression (written without braces, as in a CRD column)
/// against `obj`. Missing keys yield no results rather than an error, as for CRD columns.
/// Kubernetes reads `['a.b']` as the path `.a.b`; a dotted key is written `a\.b`.
pub fn jsonpath(obj: &Value, expr: &str) -> Result<Vec<Value>, String> {
    Ok(find_results(obj, expr)?.into_iter().flatten().collect())
}

/// client-go's `FindResults` for the template `{expr}`: one result list per action.
pub(super) fn find_results(obj: &Value, expr: &str) -> Result<Vec<Vec<Value>>, String> {
    let nodes = Parser::parse(&format!("{{{expr}}}"))?;
    let input = [obj.clone()];
    nodes.iter().map(|node| walk(&input, node)).collect()
}

#[derive(Debug, Clone)]
enum Node {
    List(Vec<Node>),
    Text(String),
    Field(String),
    /// start, end, step: (value, known, derived), as client-go's `ParamsEntry`.
    Array([(i64, bool, bool); 3]),
    Filter(Vec<Node>, String, Vec<Node>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Wildcard,
    Recursive,
    Union(Vec<Vec<Node>>),
    Identifier(String),
}

struct Parser {
    input: Vec<char>,
    pos: usize,
    start: usize,
    width: usize,
}

fn is_terminator(r: Option<char>) -> bool {
    let terminators = " \t\r\n.,[]$@{}";
    r.is_none_or(|c| terminators.contains(c))
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

impl Parser {
    fn parse(text: &str) -> Result<Vec<Node>, String> {
        let input = text.chars().collect();
        let mut p = Parser {
            input,
            pos: 0,
            start: 0,
            width: 0,
        };
        let mut root = Vec::new();
        loop {
            if p.starts_with("{") {
                if p.pos > p.start {
                    root.push(Node::Text(p.consume()));
                }
                p.pos += 1;
                p.consume();
                let mut action = Vec::new();
                p.parse_inside_action(&mut action)?;
                root.push(Node::List(action));
            } else if p.next().is_none() {
                break;
            }
        }
        if p.pos > p.start {
            root.push(Node::Text(p.consume()));
        }
        Ok(root)
    }

    /// The nodes of one action, as client-go's `parseAction` returns them.
    fn parse_action(text: &str) -> Result<Vec<Node>, String> {
        match Parser::parse(&format!("{{{text}}}"))?.into_iter().next() {
            Some(Node::List(nodes)) => Ok(nodes),
            _ => Err(format!("invalid expression {text}")),
        }
    }

    fn starts_with(&self, prefix: &str) -> bool {
        let mut rest = self.input.iter().skip(self.pos);
        prefix.chars().all(|c| rest.next() == Some(&c))
    }

    fn next(&mut self) -> Option<char> {
        let r = self.input.get(self.pos).copied();
        self.width = usize::from(r.is_some());
        self.pos += self.width;
        r
    }

    fn backup(&mut self) {
        self.pos -= self.width;
    }

    fn consume(&mut self) -> String {
        let value: String = self.input[self.start..self.pos].iter().collect();
        self.start = self.pos;
        value
    }

    /// Whether the character before the one just read is a backslash.
    fn escaped(&self) -> bool {
        self.pos >= 2 && self.input.get(self.pos - 2) == Some(&'\\')
    }

    /// Reads up to and including `end`; `what` names the construct in the error.
    fn read_to(&mut self, end: char, what: &str) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err(format!("unterminated {what}")),
                Some(c) if c == end && (end == ']' || !self.escaped()) => return Ok(()),
                _ => {}
            }
        }
    }

    fn parse_inside_action(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            if self.starts_with("}") {
                self.pos += 1;
                self.consume();
                return Ok(());
            } else if self.starts_with("[?(") {
                self.parse_filter(cur)?;
                continue;
            } else if self.starts_with("..") {
                if matches!(cur.last(), Some(Node::Recursive)) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                self.consume();
                cur.push(Node::Recursive);
                if self
                    .input
                    .get(self.pos)
                    .is_some_and(|c| is_alphanumeric(*c))
                {
                    self.parse_field(cur);
                }
                continue;
            }
            match self.next() {
                None | Some('\r' | '\n') => return Err("unclosed action".into()),
                Some(' ' | '@' | '$') => drop(self.consume()),
                Some('[') => self.parse_array(cur)?,
                Some(q @ ('"' | '\'')) => {
                    self.read_to(q, "quoted string")?;
                    let quoted = self.consume();
                    let text = unquote(&quoted);
                    let error = || format!("unquote string {quoted} error invalid syntax");
                    cur.push(Node::Text(text.ok_or_else(error)?));
                }
                Some('.') => self.parse_field(cur),
                Some(c) if c == '+' || c == '-' || c.is_numeric() => {
                    while self.next().is_some_and(|c| c == '.' || c.is_numeric()) {}
                    self.backup();
                    let value = self.consume();
                    cur.push(match (value.parse::<i64>(), value.parse::<f64>()) {
                        (Ok(i), _) => Node::Int(i),
                        (_, Ok(f)) => Node::Float(f),
                        _ => return Err(format!("cannot parse number {value}")),
                    });
                }
                Some(c) if is_alphanumeric(c) => {
                    while !is_terminator(self.next()) {}
                    self.backup();
                    let value = self.consume();
                    cur.push(match value.as_str() {
                        "true" | "false" => Node::Bool(value == "true"),
                        _ => Node::Identifier(value),
                    });
                }
                Some(c) => {
                    let code = c as u32;
                    return Err(format!(
                        "unrecognized character in action: U+{code:04X} '{c}'"
                    ));
                }
            }
        }
    }

    fn parse_field(&mut self, cur: &mut Vec<Node>) {
        self.consume();
        loop {
            match self.next() {
                Some('\\') => drop(self.next()),
                r if is_terminator(r) => break self.backup(),
                _ => {}
            }
        }
        let value = self.consume();
        cur.push(match value.as_str() {
            "*" => Node::Wildcard,
            _ => Node::Field(value.replace('\\', "")),
        });
    }

    fn parse_array(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        self.read_to(']', "array")?;
        let text = self.consume();
        let inner: String = text
            .chars()
            .skip(1)
            .take(text.chars().count() - 2)
            .collect();
        let inner = if inner == "*" { ":".to_string() } else { inner };
        let parts: Vec<&str> = inner.split(',').collect();
        if parts.len() > 1 {
            let union = parts.iter().map(|p| format!("[{}]", p.trim_matches(' ')));
            let union: Result<_, _> = union.map(|p| Parser::parse_action(&p)).collect();
            cur.push(Node::Union(union?));
        } else if let Some(key) = dict_key(&inner) {
            cur.extend(Parser::parse_action(&format!(".{key}"))?);
        } else {
            cur.push(Node::Array(parse_slice(&inner)?));
        }
        Ok(())
    }

    fn parse_filter(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        self.pos += 3;
        self.consume();
        let (mut begin, mut end, mut pair) = (false, false, '\0');
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated filter".into()),
                Some(q @ ('"' | '\'')) if !begin => (begin, pair) = (true, q),
                Some(q @ ('"' | '\'')) if q == pair && !self.escaped() => end = true,
                Some(')') if begin == end => break,
                _ => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        let text = self.consume();
        let text: String = text.chars().take(text.chars().count() - 2).collect();
        cur.push(match split_filter(&text) {
            Some((left, op, right)) => {
                let (left, right) = (Parser::parse_action(&left)?, Parser::parse_action(&right)?);
                Node::Filter(left, op, right)
            }
            None => Node::Filter(Parser::parse_action(&text)?, "exists".into(), Vec::new()),
        });
        Ok(())
    }
}

/// `^'([^']*)'$`
fn dict_key(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains('\'')).then_some(inner)
}

/// `^([^!<>=]+)([!<>=]+)(.+?)$`
fn split_filter(text: &str) -> Option<(String, String, String)> {
    let is_op = |c: &char| "!<>=".contains(*c);
    let chars: Vec<char> = text.chars().collect();
    let left_end = chars.iter().position(is_op).filter(|i| *i > 0)?;
    let mut op_end = left_end + chars[left_end..].iter().take_while(|c| is_op(c)).count();
    if op_end == chars.len() {
        // The operator run must leave at least one character for the right-hand side.
        op_end = op_end.checked_sub(1).filter(|e| *e > left_end)?;
    }
    let s = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
    Some((s(0..left_end), s(left_end..op_end), s(op_end..chars.len())))
}

/// `^(-?[\d]*)(:-?[\d]*)?(:-?[\d]*)?$` with client-go's defaulting of the three entries.
fn parse_slice(text: &str) -> Result<[(i64, bool, bool); 3], String> {
    let pieces: Vec<&str> = text.split(':').collect();
    let digits = |p: &&str| {
        p.strip_prefix('-')
            .unwrap_or(p)
            .chars()
            .all(|c| c.is_ascii_digit())
    };
    if pieces.len() > 3 || !pieces.iter().all(digits) {
        return Err(format!("invalid array index {text}"));
    }
    let mut params = [(0, false, false); 3];
    for (i, param) in params.iter_mut().enumerate() {
        *param = match pieces.get(i) {
            Some(p) if !p.is_empty() => {
                let value = p
                    .parse()
                    .map_err(|_| format!("array index {p} is not a number"));
                (value?, true, false)
            }
            None if i == 1 => (pieces[0].parse::<i64>().unwrap_or(0) + 1, true, true),
            _ => (0, false, false),
        };
    }
    Ok(params)
}

/// Go's `strconv.UnquoteChar` loop as client-go's `UnquoteExtend` runs it.
fn unquote(s: &str) -> Option<String> {
    let quote = s.chars().next()?;
    let mut chars = s.strip_prefix(quote)?.strip_suffix(quote)?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        } else if c != '\\' {
            out.push(c);
            continue;
        }
        let escape = chars.next()?;
        let mut code = |n: usize, radix: u32, first: &str| {
            let digits: String = first.chars().chain(chars.by_ref().take(n)).collect();
            let code = u32::from_str_radix(&digits, radix).ok();
            code.filter(|_| digits.len() == n + first.len())
                .and_then(char::from_u32)
        };
        out.push(match escape {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' => '\\',
            q if q == quote => q,
            'x' => code(2, 16, "")?,
            'u' => code(4, 16, "")?,
            'U' => code(8, 16, "")?,
            d @ '0'..='7' => code(2, 8, &d.to_string())?,
            _ => return None,
        });
    }
    Some(out)
}

fn walk(input: &[Value], node: &Node) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    match node {
        Node::List(nodes) => return eval_list(input, nodes),
        Node::Text(t) => out.push(json!(t)),
        Node::Int(i) => out = vec![json!(i); input.len()],
        Node::Float(f) => out = vec![json!(f); input.len()],
        Node::Bool(b) => out = vec![json!(b); input.len()],
        Node::Field(name) => {
            let field = |v: &Value| v.as_object().and_then(|m| m.get(name)).cloned();
            out.extend(input.iter().filter_map(field));
        }
        Node::Wildcard => input.iter().for_each(|v| out.extend(children(v))),
        Node::Recursive => return Ok(recursive(input)),
        Node::Union(lists) => {
            for list in lists {
                out.extend(eval_list(input, list)?);
            }
        }
        Node::Array(params) => {
            for v in input.iter().filter(|v| !v.is_null()) {
                let not_array = || format!("{} is not array or slice", go_type(v));
                match slice(v.as_array().ok_or_else(not_array)?, *params)? {
                    Some(selected) => out.extend(selected),
                    // client-go stops at the first empty selection.
                    None => return Ok(out),
                }
            }
        }
        Node::Filter(left, op, right) => {
            for v in input {
                let Some(items) = v.as_array() else {
                    return Err(format!("{v} is not array or slice and cannot be filtered"));
                };
                for item in items {
                    if filter_passes(item, left, op, right)? {
                        out.push(item.clone());
                    }
                }
            }
        }
        Node::Identifier(name) if name == "range" || name == "end" => {
            return Err(format!("{name} is not supported in a column expression"));
        }
        Node::Identifier(name) => return Err(format!("unrecognized identifier {name}")),
    }
    Ok(out)
}

fn eval_list(input: &[Value], nodes: &[Node]) -> Result<Vec<Value>, String> {
    let mut cur = input.to_vec();
    for node in nodes {
        cur = walk(&cur, node)?;
    }
    Ok(cur)
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Object(m) => m.values().cloned().collect(),
        Value::Array(a) => a.clone(),
        // Go indexes a string's bytes.
        Value::String(s) => s.bytes().map(Value::from).collect(),
        _ => Vec::new(),
    }
}

fn recursive(input: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for v in input {
        let kids = children(v);
        if !kids.is_empty() {
            out.push(v.clone());
            out.extend(recursive(&kids));
        }
    }
    out
}

/// client-go's `evalArray` for one list; None when the selection is empty.
fn slice(items: &[Value], p: [(i64, bool, bool); 3]) -> Result<Option<Vec<Value>>, String> {
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let mut start = if p[0].1 { p[0].0 } else { 0 };
    if start < 0 {
        start += len;
    }
    let mut end = if p[1].1 { p[1].0 } else { len };
    if end < 0 || (end == 0 && p[1].2) {
        end += len;
    }
    let out_of_bounds = |i: i64| format!("array index out of bounds: index {i}, length {len}");
    if start == end {
        return Ok(None);
    } else if start >= len || start < 0 {
        return Err(out_of_bounds(start));
    } else if end > len || end < 0 {
        return Err(out_of_bounds(end - 1));
    } else if start > end {
        return Err(format!(
            "starting index {start} is greater than ending index {end}"
        ));
    }
    let step = if p[2].1 { p[2].0 } else { 1 };
    let (Ok(start), Ok(end), Ok(step @ 1..)) = (start.try_into(), end.try_into(), step.try_into())
    else {
        return Err("step must be > 0".into());
    };
    Ok(Some(
        items[start..end].iter().step_by(step).cloned().collect(),
    ))
}

fn filter_passes(item: &Value, left: &[Node], op: &str, right: &[Node]) -> Result<bool, String> {
    let one = std::slice::from_ref(item);
    let lefts = eval_list(one, left);
    if op == "exists" {
        return Ok(lefts.is_ok_and(|l| !l.is_empty()));
    }
    let single = |values: Vec<Value>| match values.len() {
        0 => Ok(None),
        1 => Ok(values.into_iter().next()),
        _ => Err("can only compare one element at a time".to_string()),
    };
    let Some(l) = single(lefts?)? else {
        return Ok(false);
    };
    let Some(r) = single(eval_list(one, right)?)? else {
        return Ok(false);
    };
    compare(op, &l, &r)
}

/// The comparisons of Go's `text/template` as client-go forks them: same-kind scalars only
/// (signed and unsigned integers mix), booleans only for equality.
fn compare(op: &str, l: &Value, r: &Value) -> Result<bool, String> {
    if !["==", "!=", "<", ">", "<=", ">="].contains(&op) {
        return Err(format!("unrecognized filter operator {op}"));
    }
    let kind = |v: &Value| match v {
        Value::Bool(_) => Ok(0),
        Value::Number(n) if n.is_f64() => Ok(1),
        Value::Number(_) => Ok(2),
        Value::String(_) => Ok(3),
        _ => Err("invalid type for comparison".to_string()),
    };
    if kind(l)? != kind(r)? {
        return Err("incompatible types for comparison".into());
    }
    let int = |n: &serde_json::Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
    let order = match (l, r) {
        (Value::Bool(a), Value::Bool(b)) if op == "==" || op == "!=" => Some(a.cmp(b)),
        (Value::Bool(_), _) => return Err("invalid type for comparison".into()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Number(a), Value::Number(b)) if a.is_f64() => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::Number(a), Value::Number(b)) => int(a).cmp(&int(b)).into(),
        _ => None,
    };
    Ok(match op {
        "==" => order == Some(Ordering::Equal),
        "!=" => order != Some(Ordering::Equal),
        "<" => order == Some(Ordering::Less),
        ">" => order == Some(Ordering::Greater),
        "<=" => order.is_some_and(Ordering::is_le),
        _ => order.is_some_and(Ordering::is_ge),
    })
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        _ => "int64",
    }
}

/// client-go's `PrintResults` for one value: JSON for maps and lists, Go's `%v` otherwise.
pub(super) fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_f64() => go_float(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        // encoding/json escapes HTML-significant characters.
        _ => {
            let json = v
                .to_string()
                .replace('<', "\\u003c")
                .replace('>', "\\u003e");
            json.replace('&', "\\u0026")
        }
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form outside [1e-4, 1e6).
pub(super) fn go_float(f: f64) -> String {
    if !f.is_finite() {
        return ["NaN", "+Inf", "-Inf"][usize::from(f > 0.0) + 2 * usize::from(f < 0.0)].into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if f < 0.0 { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let (first, rest) = digits.split_at(1);
    if !(-4..6).contains(&exp) {
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let e_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{e_sign}{:02}", exp.abs());
    }
    let zeros = |n: i32| "0".repeat(usize::try_from(n).unwrap_or(0));
    if exp < 0 {
        return format!("{sign}0.{}{digits}", zeros(-exp - 1));
    }
    let point = usize::try_from(exp + 1).unwrap_or(0).min(digits.len());
    let (int, frac) = digits.split_at(point);
    let padding = zeros(exp + 1 - i32::try_from(point).unwrap_or(0));
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    format!("{sign}{int}{padding}{frac}")
}
