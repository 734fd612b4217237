//! Server-side `meta.k8s.io/v1` Table output for `kubectl get`: the Kubernetes JSONPath that
//! CRD `additionalPrinterColumns` use (client-go `util/jsonpath`, missing keys allowed), the
//! CRD table convertor, and kube-apiserver's printers for common built-in kinds. Rows are built
//! as the server builds them: always "wide", ages already rendered by `HumanDuration`.

use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One `TableColumnDefinition`, plus the JSONPath a CRD column reads (empty for built-ins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Column {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
    pub json_path: String,
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

// ---------------------------------------------------------------------------------------
// JSONPath (a port of client-go's parser and evaluator, quirks included)

/// Evaluates a Kubernetes JSONPath expression (written without braces, as in a CRD column)
/// against `obj`. Missing keys yield no results rather than an error, as for CRD columns.
/// Kubernetes reads `['a.b']` as the path `.a.b`; a dotted key is written `a\.b`.
pub fn jsonpath(obj: &Value, expr: &str) -> Result<Vec<Value>, String> {
    Ok(find_results(obj, expr)?.into_iter().flatten().collect())
}

/// client-go's `FindResults` for the template `{expr}`: one result list per action.
fn find_results(obj: &Value, expr: &str) -> Result<Vec<Vec<Value>>, String> {
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
fn print_value(v: &Value) -> String {
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
fn go_float(f: f64) -> String {
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

// ---------------------------------------------------------------------------------------
// Tables

/// The printer columns of a CRD `spec.versions[]` item; a CRD without any gets `Age`.
pub fn crd_columns(version: &Value) -> Vec<Column> {
    let column = |c: &Value| {
        let mut column = col(
            text(c, "/name"),
            text(c, "/type"),
            0,
            text(c, "/description"),
        );
        column.format = text(c, "/format").into();
        column.priority = num(c, "/priority").try_into().unwrap_or(0);
        column.json_path = [text(c, "/jsonPath"), text(c, "/JSONPath")].concat();
        column
    };
    let columns: Vec<Column> = list(version, "/additionalPrinterColumns")
        .iter()
        .map(column)
        .collect();
    if !columns.is_empty() {
        return columns;
    }
    let mut age = col("Age", "date", 0, CREATION_DOC);
    age.json_path = ".metadata.creationTimestamp".into();
    vec![age]
}

/// A Table of custom resources as the CRD table convertor builds it, ages as of now.
pub fn build_table(
    columns: &[Column],
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
) -> Value {
    build_table_at(
        columns,
        objects,
        list_meta,
        include_object,
        SystemTime::now(),
    )
}

/// [`build_table`] with an explicit clock for `date` columns.
pub fn build_table_at(
    columns: &[Column],
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
    now: SystemTime,
) -> Value {
    let mut definitions = columns.to_vec();
    for c in definitions.iter_mut().filter(|c| c.description.is_empty()) {
        let path = &c.json_path;
        c.description = format!("Custom resource definition column (in JSONPath format): {path}");
    }
    let rows = objects.iter().map(|obj| {
        let cells = columns.iter().map(|c| crd_cell(c, obj, now));
        row(cells.collect(), obj, include_object, None)
    });
    table(&definitions, rows.collect(), &list_meta)
}

/// A Table of one built-in kind as kube-apiserver's printers build it (see [`builtin_row`]).
pub fn build_builtin_table(
    group: &str,
    kind: &str,
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
    now: SystemTime,
) -> Value {
    let rows = objects.iter().map(|obj| {
        let cells = builtin_row(group, kind, obj, now).unwrap_or_default();
        let completed = match (kind, text(obj, "/status/phase")) {
            ("Pod", "Succeeded") => Some(("Succeeded", "The pod has completed successfully.")),
            ("Pod", "Failed") => Some(("Failed", "The pod failed.")),
            _ => None,
        };
        row(cells, obj, include_object, completed)
    });
    table(&builtin_columns(group, kind), rows.collect(), &list_meta)
}

/// The 400 message kube-apiserver gives for an `includeObject` it does not know.
pub fn validate_include_object(include_object: &str) -> Result<(), String> {
    match include_object {
        "" | "None" | "Metadata" | "Object" => Ok(()),
        other => Err(format!(
            "unrecognized includeObject value: {}",
            json!(other)
        )),
    }
}

fn table(columns: &[Column], rows: Vec<Value>, list_meta: &Value) -> Value {
    let keys = ["resourceVersion", "continue", "remainingItemCount"];
    let present = |k: &&str| {
        list_meta
            .get(*k)
            .filter(|v| !v.is_null() && **v != json!(""))
    };
    let metadata: Map<String, Value> = keys
        .iter()
        .filter_map(|k| Some((k.to_string(), present(k)?.clone())))
        .collect();
    let mut name = col("Name", "string", 0, NAME_DOC);
    name.format = "name".into();
    let definitions = std::iter::once(&name).chain(columns).map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format,
               "description": c.description, "priority": c.priority})
    });
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
           "columnDefinitions": definitions.collect::<Vec<_>>(), "rows": rows})
}

/// A row: the Name cell first, then `cells`, with the object as `includeObject` asks.
fn row(cells: Vec<Value>, obj: &Value, include: &str, completed: Option<(&str, &str)>) -> Value {
    let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let object = match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata}),
    };
    let name = json!(text(obj, "/metadata/name"));
    let cells: Vec<Value> = std::iter::once(name).chain(cells).collect();
    let mut row = json!({"cells": cells, "object": object});
    if let Some((reason, message)) = completed {
        row["conditions"] =
            json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]);
    }
    row
}

/// `cellForJSONValue` / `PrintResults` for the first result of a CRD column's JSONPath.
fn crd_cell(column: &Column, obj: &Value, now: SystemTime) -> Value {
    let results = find_results(obj, &column.json_path).unwrap_or_default();
    let Some(value) = results
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
    else {
        return Value::Null;
    };
    match (column.type_.as_str(), &value) {
        ("string", v) => json!(print_value(v)),
        ("integer", Value::Number(n)) => {
            json!(n.as_i64().unwrap_or(n.as_f64().unwrap_or(0.0) as i64))
        }
        // Go encodes an integral float64 without a fraction.
        ("number", Value::Number(n)) => match n.as_f64().unwrap_or(f64::NAN) {
            f if f.fract() == 0.0 && f.abs() < 1e21 => json!(f as i64),
            f => json!(f),
        },
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => json!(age(s, now)),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------
// Time

/// Go's `duration.HumanDuration`, the age format of `kubectl get`.
pub fn human_duration(d: Duration) -> String {
    human_duration_ns(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The age of a `metav1.Time` at `now` as the printers render it: `<unknown>` for the zero
/// time (empty), `<invalid>` for a timestamp that is not RFC3339.
pub fn age(timestamp: &str, now: SystemTime) -> String {
    match parse_time(timestamp) {
        Ok(Some(t)) => human_duration_ns(nanos_between(t, unix_nanos(now))),
        Ok(None) => "<unknown>".into(),
        Err(()) => "<invalid>".into(),
    }
}

fn human_duration_ns(d: i64) -> String {
    let seconds = d / 1_000_000_000;
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    let two = |major: i64, unit: &str, minor: i64, minor_unit: &str| match minor {
        0 => format!("{major}{unit}"),
        _ => format!("{major}{unit}{minor}{minor_unit}"),
    };
    match () {
        _ if seconds < -1 => "<invalid>".into(),
        _ if seconds < 0 => "0s".into(),
        _ if seconds < 60 * 2 => format!("{seconds}s"),
        _ if minutes < 10 => two(minutes, "m", seconds % 60, "s"),
        _ if minutes < 60 * 3 => format!("{minutes}m"),
        _ if hours < 8 => two(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => two(hours / 24, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{}d", hours / 24),
        _ if hours < 24 * 365 * 8 => two(hours / 24 / 365, "y", (hours / 24) % 365, "d"),
        _ => format!("{}y", hours / 24 / 365),
    }
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// `later - earlier`, saturating like Go's `Time.Sub`.
fn nanos_between(earlier: i128, later: i128) -> i64 {
    let saturated = if later > earlier { i64::MAX } else { i64::MIN };
    i64::try_from(later - earlier).unwrap_or(saturated)
}

/// `metav1.Time` from a string: Ok(None) for the zero time ("" or "null").
fn parse_time(s: &str) -> Result<Option<i128>, ()> {
    match s {
        "" | "null" => Ok(None),
        _ => parse_rfc3339(s).map(Some).ok_or(()),
    }
}

/// Go's `time.Parse(time.RFC3339, s)` (which accepts fractional seconds) in Unix nanoseconds.
fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let t = s.get(from..from + len)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !seps.iter().all(|(i, c)| b.get(*i) == Some(c)) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let digits = b
        .get(20..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let (mut i, mut nanos) = (19, 0);
    if b.get(19) == Some(&b'.') && digits > 0 {
        nanos = format!("{:0<9}", &s[20..20 + digits.min(9)]).parse().ok()?;
        i = 20 + digits;
    }
    let offset = match (b.get(i), b.len() - i) {
        (Some(b'Z'), 1) => 0,
        (Some(sign @ (b'+' | b'-')), 6) if b[i + 3] == b':' => {
            let (h, m) = (
                num(i + 1, 2).filter(|h| *h < 24)?,
                num(i + 4, 2).filter(|m| *m < 60)?,
            );
            if *sign == b'-' {
                -(h * 3600 + m * 60)
            } else {
                h * 3600 + m * 60
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 => 28 + i64::from(leap),
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let valid = (1..=12).contains(&month) && (1..=month_days).contains(&day);
    if !valid || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // days_from_civil (Howard Hinnant), shifted so that years start in March.
    let y = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = (y.div_euclid(400), y.rem_euclid(400));
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86400 + hour * 3600 + minute * 60 + second - offset;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// `Time.UTC().Format(time.RFC3339)` of a creationTimestamp (the zero time if unset).
fn rfc3339_utc(timestamp: &str) -> String {
    let zero = -62_135_596_800 * 1_000_000_000;
    let nanos = parse_time(timestamp).ok().flatten().unwrap_or(zero);
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(0);
    // civil_from_days (Howard Hinnant)
    let z = secs.div_euclid(86400) + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs.rem_euclid(86400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

// ---------------------------------------------------------------------------------------
// Built-in printers (pkg/printers/internalversion/printers.go), always wide like the server

/// Columns after `Name` per `group/Kind`: `name|type|priority|description` (`@` is the
/// creationTimestamp doc). Kinds absent here get the default `Created At` column.
const PRINTERS: &str = "
/Pod
Ready|string|0|The aggregate readiness state of this pod for accepting traffic.
Status|string|0|The aggregate status of the containers in this pod.
Restarts|string|0|The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.
Age|string|0|@
IP|string|1|podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.
Node|string|1|NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename
Nominated Node|string|1|nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.
Readiness Gates|string|1|If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates
apps/Deployment
Ready|string|0|Number of the pod with ready state
Up-to-date|string|0|Total number of non-terminating pods targeted by this deployment that have the desired template spec.
Available|string|0|Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
Selector|string|1|Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.
apps/ReplicaSet
Desired|integer|0|Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset
Current|integer|0|Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset
Ready|integer|0|The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
Selector|string|1|Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
apps/StatefulSet
Ready|string|0|Number of the pod with ready state
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
batch/Job
Status|string|0|Status of the job.
Completions|string|0|The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.
Duration|string|0|Time required to complete the job.
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
Selector|string|1|A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
/Service
Type|string|0|type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types
Cluster-IP|string|0|clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies
External-IP|string|0|externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.
Port(s)|string|0|The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies
Age|string|0|@
Selector|string|1|Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/
networking.k8s.io/Ingress
Class|string|0|The name of the IngressClass resource that should be used for additional configuration
Hosts|string|0|Hosts that incoming requests are matched against before the ingress rule
Address|string|0|Address is a list containing ingress points for the load-balancer
Ports|string|0|Ports of TLS configurations that open
Age|string|0|@
/Namespace
Status|string|0|The status of the namespace
Age|string|0|@
/Secret
Type|string|0|Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types
Data|string|0|Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4
Age|string|0|@
/ConfigMap
Data|string|0|Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.
Age|string|0|@
/ServiceAccount
Secrets|string|0|Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret
Age|string|0|@
rbac.authorization.k8s.io/RoleBinding
Role|string|0|roleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.
Age|string|0|@
Users|string|1|Users in the roleBinding
Groups|string|1|Groups in the roleBinding
ServiceAccounts|string|1|ServiceAccounts in the roleBinding
rbac.authorization.k8s.io/ClusterRoleBinding
Role|string|0|roleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.
Age|string|0|@
Users|string|1|Users in the clusterRoleBinding
Groups|string|1|Groups in the clusterRoleBinding
ServiceAccounts|string|1|ServiceAccounts in the clusterRoleBinding
/Node
Status|string|0|The status of the node
Roles|string|0|The roles of the node
Age|string|0|@
Version|string|0|Kubelet Version reported by the node.
Internal-IP|string|1|%addresses
External-IP|string|1|%addresses
OS-Image|string|1|OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).
Kernel-Version|string|1|Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).
Container-Runtime|string|1|ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).
/PersistentVolumeClaim
Status|string|0|phase represents the current phase of PersistentVolumeClaim.
Volume|string|0|volumeName is the binding reference to the PersistentVolume backing this claim.
Capacity|string|0|capacity represents the actual resources of the underlying volume.
Access Modes|string|0|accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1
StorageClass|string|0|StorageClass of the pvc
VolumeAttributesClass|string|0|VolumeAttributesClass of the pvc
Age|string|0|@
VolumeMode|string|1|volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.
";

const NODE_ADDRESSES_DOC: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";

fn col(name: &str, type_: &str, priority: i32, description: &str) -> Column {
    let (name, type_, description) = (name.into(), type_.into(), description.into());
    Column {
        name,
        type_,
        priority,
        description,
        ..Column::default()
    }
}

/// The columns after `Name` that kube-apiserver's printer for `group`/`kind` defines.
pub fn builtin_columns(group: &str, kind: &str) -> Vec<Column> {
    let header = format!("{group}/{kind}");
    let lines = PRINTERS.lines().skip_while(|l| *l != header).skip(1);
    let columns: Vec<Column> = lines
        .map_while(|line| {
            let mut f = line.splitn(4, '|');
            let (name, type_, priority) = (f.next()?, f.next()?, f.next()?.parse().ok()?);
            let description = match f.next()? {
                "@" => CREATION_DOC,
                "%addresses" => NODE_ADDRESSES_DOC,
                d => d,
            };
            Some(col(name, type_, priority, description))
        })
        .collect();
    if columns.is_empty() {
        // rest.NewDefaultTableConvertor, used by kinds without a printer (Role, ClusterRole...).
        return vec![col("Created At", "date", 0, CREATION_DOC)];
    }
    columns
}

/// The cells after `Name` of one built-in object's row, as the printer for `group`/`kind`
/// renders them at `now` (wide columns included); None if `obj` is not an object.
pub fn builtin_row(group: &str, kind: &str, obj: &Value, now: SystemTime) -> Option<Vec<Value>> {
    obj.as_object()?;
    let t = |p: &str| json!(text(obj, p));
    let int = |p: &str| json!(num(obj, p));
    let age = json!(age(text(obj, "/metadata/creationTimestamp"), now));
    let (names, images) = containers(obj, "/spec/template/spec/containers");
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = json!(format!("{}/{replicas}", num(obj, "/status/readyReplicas")));
    let terminating = !is_null(obj.pointer("/metadata/deletionTimestamp"));
    Some(match (group, kind) {
        ("", "Pod") => pod_cells(obj, now),
        ("apps", "Deployment") => {
            let selector = selector_string(obj.pointer("/spec/selector"));
            let selector = json!(selector.unwrap_or_else(|| "<invalid>".into()));
            let updated = int("/status/updatedReplicas");
            let available = int("/status/availableReplicas");
            vec![ready, updated, available, age, names, images, selector]
        }
        ("apps", "ReplicaSet") => {
            let selector = json!(format_selector(obj.pointer("/spec/selector")));
            let (current, ready) = (int("/status/replicas"), int("/status/readyReplicas"));
            vec![
                json!(replicas),
                current,
                ready,
                age,
                names,
                images,
                selector,
            ]
        }
        ("apps", "StatefulSet") => vec![ready, age, names, images],
        ("batch", "Job") => {
            let selector = json!(format_selector(obj.pointer("/spec/selector")));
            let [status, completions, duration] = job_cells(obj, terminating, now);
            vec![status, completions, duration, age, names, images, selector]
        }
        ("", "Service") => service_cells(obj, age),
        ("networking.k8s.io", "Ingress") => {
            let class = json!(
                obj.pointer("/spec/ingressClassName")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
            );
            let hosts = json!(format_hosts(list(obj, "/spec/rules")));
            let tls = list(obj, "/spec/tls").is_empty();
            let ports = json!(if tls { "80" } else { "80, 443" });
            vec![class, hosts, json!(load_balancer(obj)), ports, age]
        }
        ("", "Namespace") => vec![t("/status/phase"), age],
        ("", "Secret") => vec![t("/type"), json!(keys(obj, "/data")), age],
        ("", "ConfigMap") => vec![json!(keys(obj, "/data") + keys(obj, "/binaryData")), age],
        ("", "Node") => node_cells(obj, age),
        ("", "ServiceAccount") => vec![json!(list(obj, "/secrets").len()), age],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            binding_cells(obj, age)
        }
        ("", "PersistentVolumeClaim") => {
            let phase = if terminating {
                "Terminating"
            } else {
                text(obj, "/status/phase")
            };
            let bound = !text(obj, "/spec/volumeName").is_empty();
            let capacity = if bound {
                text(obj, "/status/capacity/storage")
            } else {
                ""
            };
            let modes = list(obj, "/status/accessModes");
            let modes = if bound {
                access_modes(modes)
            } else {
                String::new()
            };
            let beta = "/metadata/annotations/volume.beta.kubernetes.io~1storage-class";
            let class = obj
                .pointer(beta)
                .or_else(|| obj.pointer("/spec/storageClassName"));
            let class = json!(class.and_then(Value::as_str).unwrap_or(""));
            let unset =
                |p: &str| json!(obj.pointer(p).and_then(Value::as_str).unwrap_or("<unset>"));
            let attributes = unset("/spec/volumeAttributesClassName");
            let (phase, volume, capacity) = (json!(phase), t("/spec/volumeName"), json!(capacity));
            let mode = unset("/spec/volumeMode");
            vec![
                phase,
                volume,
                capacity,
                json!(modes),
                class,
                attributes,
                age,
                mode,
            ]
        }
        _ => vec![json!(rfc3339_utc(text(obj, "/metadata/creationTimestamp")))],
    })
}

fn pod_cells(pod: &Value, now: SystemTime) -> Vec<Value> {
    let phase = text(pod, "/status/phase");
    let mut reason = match text(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = list(pod, "/status/conditions");
    let condition = |t: &str| conditions.iter().find(|c| text(c, "/type") == t);
    let is_true = |t: &str| condition(t).is_some_and(|c| text(c, "/status") == "True");
    let gated =
        |c: &&Value| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated";
    if conditions.iter().any(|c| gated(&c)) {
        reason = "SchedulingGated".into();
    }
    // Init containers with restartPolicy Always are sidecars: counted like containers.
    let init_specs = list(pod, "/spec/initContainers");
    let sidecar = |c: &Value| text(c, "/restartPolicy") == "Always";
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && sidecar(c))
    };
    let total =
        list(pod, "/spec/containers").len() + init_specs.iter().filter(|c| sidecar(c)).count();
    let (mut ready, mut restarts, mut sidecar_restarts) = (0, 0, 0);
    // The latest lastState.terminated.finishedAt, in Unix nanoseconds.
    let (mut last_restart, mut last_sidecar_restart) = (None::<i128>, None::<i128>);
    let finished = |c: &Value| {
        let terminated = c
            .pointer("/lastState/terminated")
            .filter(|t| !t.is_null())?;
        parse_time(text(terminated, "/finishedAt")).ok().flatten()
    };
    let mut initializing = false;
    for (i, c) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        restarts += num(c, "/restartCount");
        last_restart = last_restart.max(finished(c));
        let is_sidecar = is_sidecar(text(c, "/name"));
        if is_sidecar {
            sidecar_restarts += num(c, "/restartCount");
            last_sidecar_restart = last_sidecar_restart.max(finished(c));
        }
        let terminated = c.pointer("/state/terminated").filter(|t| !t.is_null());
        let waiting = text(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| num(t, "/exitCode") == 0) {
            continue;
        } else if is_sidecar && c.get("started") == Some(&json!(true)) {
            ready += i64::from(c.get("ready") == Some(&json!(true)));
            continue;
        } else if let Some(t) = terminated {
            reason = format!("Init:{}", terminated_reason(t));
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || is_true("Initialized") {
        (restarts, last_restart) = (sidecar_restarts, last_sidecar_restart);
        let mut has_running = false;
        for c in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += num(c, "/restartCount");
            last_restart = last_restart.max(finished(c));
            let waiting = text(c, "/state/waiting/reason");
            let running = !is_null(c.pointer("/state/running"));
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = c.pointer("/state/terminated").filter(|t| !t.is_null()) {
                reason = terminated_reason(t);
            } else if c.get("ready") == Some(&json!(true)) && running {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if is_true("Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    if !is_null(pod.pointer("/metadata/deletionTimestamp")) {
        if text(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts = match last_restart {
        Some(at) if restarts != 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration_ns(nanos_between(at, unix_nanos(now)))
            )
        }
        _ => restarts.to_string(),
    };
    let or_none = |s: &str| json!(if s.is_empty() { "<none>" } else { s });
    let gates = list(pod, "/spec/readinessGates");
    let passed = gates
        .iter()
        .filter(|g| is_true(text(g, "/conditionType")))
        .count();
    let gates = match gates.len() {
        0 => "<none>".to_string(),
        n => format!("{passed}/{n}"),
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age(text(pod, "/metadata/creationTimestamp"), now)),
        or_none(text(pod, "/status/podIPs/0/ip")),
        or_none(text(pod, "/spec/nodeName")),
        or_none(text(pod, "/status/nominatedNodeName")),
        json!(gates),
    ]
}

/// A terminated container's reason, else `Signal:n`, else `ExitCode:n`.
fn terminated_reason(terminated: &Value) -> String {
    match (text(terminated, "/reason"), num(terminated, "/signal")) {
        ("", 0) => format!("ExitCode:{}", num(terminated, "/exitCode")),
        ("", signal) => format!("Signal:{signal}"),
        (reason, _) => reason.to_string(),
    }
}

fn job_cells(job: &Value, terminating: bool, now: SystemTime) -> [Value; 3] {
    let succeeded = num(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None if num(job, "/spec/parallelism") > 1 => {
            format!("{succeeded}/1 of {}", num(job, "/spec/parallelism"))
        }
        None => format!("{succeeded}/1"),
    };
    let time = |p: &str| parse_time(text(job, p)).ok().flatten();
    let duration = match (time("/status/startTime"), time("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration_ns(nanos_between(start, unix_nanos(now))),
        (Some(start), Some(end)) => human_duration_ns(nanos_between(start, end)),
    };
    // hasJobCondition: the first condition of a type decides.
    let conditions = list(job, "/status/conditions");
    let has = |t: &str| {
        let first = conditions.iter().find(|c| text(c, "/type") == t);
        first.is_some_and(|c| text(c, "/status") == "True")
    };
    let status = match () {
        _ if has("Complete") => "Complete",
        _ if has("Failed") => "Failed",
        _ if terminating => "Terminating",
        _ if has("Suspended") => "Suspended",
        _ if has("FailureTarget") => "FailureTarget",
        _ => "Running",
    };
    [json!(status), json!(completions), json!(duration)]
}

fn service_cells(svc: &Value, age: Value) -> Vec<Value> {
    let kind = match text(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    // The API server fills clusterIPs from clusterIP; accept objects with only the latter.
    let cluster_ip = match (
        text(svc, "/spec/clusterIPs/0"),
        text(svc, "/spec/clusterIP"),
    ) {
        ("", "") => "<none>",
        ("", ip) | (ip, _) => ip,
    };
    let external = list(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str);
    let external: Vec<&str> = external.collect();
    let external = match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let balancer = load_balancer(svc);
            let mut all: Vec<&str> = balancer.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let port = |p: &Value| {
        let protocol = Some(text(p, "/protocol"))
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP");
        match num(p, "/nodePort") {
            0 => format!("{}/{protocol}", num(p, "/port")),
            node_port => format!("{}:{node_port}/{protocol}", num(p, "/port")),
        }
    };
    let ports: Vec<String> = list(svc, "/spec/ports").iter().map(port).collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = json!(format_labels(svc.pointer("/spec/selector")));
    let (kind, cluster_ip, external, ports) = (
        json!(kind),
        json!(cluster_ip),
        json!(external),
        json!(ports),
    );
    vec![kind, cluster_ip, external, ports, age, selector]
}

fn node_cells(node: &Value, age: Value) -> Vec<Value> {
    let conditions = list(node, "/status/conditions");
    let ready = conditions
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready");
    let mut status = vec![match ready.map(|c| text(c, "/status")) {
        None => "Unknown",
        Some("True") => "Ready",
        Some(_) => "NotReady",
    }];
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push("SchedulingDisabled");
    }
    let labels = node.pointer("/metadata/labels").and_then(Value::as_object);
    let mut roles: Vec<&str> = labels.into_iter().flatten().filter_map(node_role).collect();
    roles.retain(|r| !r.is_empty());
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let addresses = list(node, "/status/addresses");
    let address = |kind: &str| {
        let found = addresses.iter().find(|a| text(a, "/type") == kind);
        json!(found.map_or("<none>", |a| text(a, "/address")))
    };
    let info = |key: &str| match text(node, &format!("/status/nodeInfo/{key}")) {
        "" => json!("<unknown>"),
        v => json!(v),
    };
    let (status, roles, version) = (
        json!(status.join(",")),
        json!(roles),
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
    );
    let (internal, external) = (address("InternalIP"), address("ExternalIP"));
    let (os, kernel, runtime) = (
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    );
    vec![
        status, roles, age, version, internal, external, os, kernel, runtime,
    ]
}

/// Role, age and (wide) the users, groups and `namespace/name` ServiceAccounts bound.
fn binding_cells(binding: &Value, age: Value) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(binding, "/roleRef/kind"),
        text(binding, "/roleRef/name")
    );
    let subjects = list(binding, "/subjects");
    let of_kind = |kind: &str| {
        let matching = subjects.iter().filter(|s| text(s, "/kind") == kind);
        let names = matching.map(|s| match kind {
            "ServiceAccount" => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
            _ => text(s, "/name").to_string(),
        });
        json!(names.collect::<Vec<_>>().join(", "))
    };
    vec![
        json!(role),
        age,
        of_kind("User"),
        of_kind("Group"),
        of_kind("ServiceAccount"),
    ]
}

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` keys and `kubernetes.io/role` values.
fn node_role<'v>((key, value): (&'v String, &'v Value)) -> Option<&'v str> {
    match key.strip_prefix("node-role.kubernetes.io/") {
        Some(role) => Some(role),
        None if key == "kubernetes.io/role" => value.as_str(),
        None => None,
    }
}

/// `formatHosts`: up to three hosts, `*` when no rule names one.
fn format_hosts(rules: &[Value]) -> String {
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        more |= hosts.len() == 3;
        if !more && !text(rule, "/host").is_empty() {
            hosts.push(text(rule, "/host"));
        }
    }
    match (hosts.is_empty(), more) {
        (true, _) => "*".into(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
        (false, false) => hosts.join(","),
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn containers(obj: &Value, path: &str) -> (Value, Value) {
    let items = list(obj, path);
    let join = |key: &str| {
        json!(
            items
                .iter()
                .map(|c| text(c, key))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    (join("/name"), join("/image"))
}

/// Load-balancer ingress points (IP, else hostname), de-duplicated and sorted.
fn load_balancer(obj: &Value) -> String {
    let ingress = list(obj, "/status/loadBalancer/ingress");
    let mut points: Vec<&str> = ingress.iter().map(|i| text(i, "/ip")).collect();
    for (point, i) in points.iter_mut().zip(ingress) {
        if point.is_empty() {
            *point = text(i, "/hostname");
        }
    }
    points.retain(|p| !p.is_empty());
    points.sort_unstable();
    points.dedup();
    points.join(",")
}

/// `GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &&str| modes.iter().any(|v| v.as_str() == Some(m));
    let all = [
        "ReadWriteOnce RWO",
        "ReadOnlyMany ROX",
        "ReadWriteMany RWX",
        "ReadWriteOncePod RWOP",
    ];
    let short = all
        .iter()
        .filter_map(|pair| pair.split_once(' '))
        .filter(|(m, _)| has(m));
    short.map(|(_, s)| s).collect::<Vec<_>>().join(",")
}

/// `labels.FormatLabels`.
fn format_labels(map: Option<&Value>) -> String {
    let pairs = map.and_then(Value::as_object).into_iter().flatten();
    let pairs: Vec<String> = pairs
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// `metav1.FormatLabelSelector`.
fn format_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

/// `LabelSelectorAsSelector(s).String()`; None where Kubernetes reports an error.
fn selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    for (k, v) in match_labels.into_iter().flatten() {
        requirements.push((k.clone(), format!("{k}={}", v.as_str()?)));
    }
    for e in list(selector, "/matchExpressions") {
        let key = text(e, "/key");
        let mut values: Vec<&str> = list(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let rendered = match (text(e, "/operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        requirements
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn is_null(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn num(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn list<'v>(v: &'v Value, pointer: &str) -> &'v [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn keys(v: &Value, pointer: &str) -> usize {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// 2024-01-01T00:00:00Z, and "now" ten minutes later.
    const T0: u64 = 1_704_067_200;
    const NOW: u64 = T0 + 600;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "a": {"b": 1}, "a.b": 2,
            "spec": {"containers": [
                {"name": "app", "image": "nginx:1", "port": 80},
                {"name": "sidecar", "image": "envoy:2", "port": 9901, "ratio": 0.5}
            ]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}
            ]}
        })
    }

    fn eval(expr: &str) -> Result<Vec<Value>, String> {
        jsonpath(&pod(), expr)
    }

    #[test]
    fn jsonpath_fields_arrays_and_filters() {
        let ready = ".status.conditions[?(@.type=='Ready')].status";
        assert_eq!(eval(ready), Ok(vec![json!("True")]));
        let not_ready = r#".status.conditions[?(@.type != "Ready")].type"#;
        assert_eq!(eval(not_ready), Ok(vec![json!("Synced")]));
        let images = eval(".spec.containers[*].image");
        assert_eq!(images, Ok(vec![json!("nginx:1"), json!("envoy:2")]));
        assert_eq!(
            eval(".spec.containers[-1].name"),
            Ok(vec![json!("sidecar")])
        );
        assert_eq!(eval(".spec.containers[0:1].name"), Ok(vec![json!("app")]));
        assert_eq!(
            eval(".spec.containers[?(@.port==80)].name"),
            Ok(vec![json!("app")])
        );
        assert_eq!(
            eval(".spec.containers[?(@.port>80)].name"),
            Ok(vec![json!("sidecar")])
        );
        assert_eq!(
            eval(".spec.containers[?(@.ratio)].name"),
            Ok(vec![json!("sidecar")])
        );
        let float = eval(".spec.containers[?(@.port==80.0)].name");
        assert_eq!(float, Err("incompatible types for comparison".into()));
        let union = eval(".spec.containers[0]['name','image']");
        assert_eq!(union, Ok(vec![json!("app"), json!("nginx:1")]));
        let names = eval("..name").unwrap();
        assert!(names.contains(&json!("web")) && names.contains(&json!("sidecar")));
    }

    #[test]
    fn jsonpath_keys_missing_values_and_errors() {
        assert_eq!(
            eval("['spec']['containers'][1]['port']"),
            Ok(vec![json!(9901)])
        );
        // Kubernetes treats a dotted key in brackets as a path; dots are escaped instead.
        assert_eq!(eval("['a.b']"), Ok(vec![json!(1)]));
        assert_eq!(eval(r"['a\.b']"), Ok(vec![json!(2)]));
        let escaped = eval(r".metadata.labels.app\.kubernetes\.io/name");
        assert_eq!(escaped, Ok(vec![json!("web")]));
        assert_eq!(eval(".status.missing.deeper"), Ok(vec![]));
        let out_of_bounds = "array index out of bounds: index 5, length 2";
        assert_eq!(eval(".spec.containers[5]"), Err(out_of_bounds.into()));
        assert_eq!(eval(".a[?(@.x=='y'"), Err("unterminated filter".into()));
        assert_eq!(
            eval(".spec[0]"),
            Err("map[string]interface {} is not array or slice".into())
        );
        let operator = eval(".spec.containers[?(@.port<>1)]");
        assert_eq!(operator, Err("unrecognized filter operator <>".into()));
    }

    #[test]
    fn go_formatting_of_floats_and_durations() {
        let floats = [
            (1_234_567.0, "1.234567e+06"),
            (0.5, "0.5"),
            (100.0, "100"),
            (1e-5, "1e-05"),
        ];
        for (f, text) in floats {
            assert_eq!(go_float(f), text);
        }
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 300, "3h5m"),
            (47 * 3600, "47h"),
            (51 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), text, "{secs}s");
        }
        assert_eq!(age("2024-01-01T00:00:01Z", at(T0)), "0s");
        assert_eq!(age("2024-01-01T00:00:05Z", at(T0)), "<invalid>");
        assert_eq!(age("2024-01-01T01:00:00+01:00", at(NOW)), "10m");
        assert_eq!(age("2023-12-31T23:55:00.5Z", at(NOW)), "14m");
        assert_eq!(age("", at(NOW)), "<unknown>");
        assert_eq!(age("yesterday", at(NOW)), "<invalid>");
        assert_eq!(
            rfc3339_utc("2024-01-01T01:00:00+01:00"),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(rfc3339_utc(""), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn controlplane_columns_with_and_without_status() {
        let columns = [
            (
                "SYNCED",
                "string",
                ".status.conditions[?(@.type=='Synced')].status",
            ),
            (
                "READY",
                "string",
                ".status.conditions[?(@.type=='Ready')].status",
            ),
            ("TYPE", "string", ".spec.type"),
            ("AGE", "date", ".metadata.creationTimestamp"),
        ];
        let columns: Vec<Value> = columns
            .iter()
            .map(|(name, type_, path)| json!({"name": name, "type": type_, "jsonPath": path}))
            .collect();
        let columns =
            crd_columns(&json!({"name": "v1alpha1", "additionalPrinterColumns": columns}));
        let ready = json!({"metadata": {"name": "cp1", "creationTimestamp": "2024-01-01T00:05:00Z"},
            "spec": {"type": "k8s"}, "status": {"conditions": [
                {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]}});
        let fresh = json!({"metadata": {"name": "cp2", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"type": "vcluster"}});
        let list_meta = json!({"resourceVersion": "42", "continue": ""});
        let table = build_table_at(&columns, &[ready, fresh], list_meta, "", at(NOW));
        assert_eq!(
            (&table["kind"], &table["apiVersion"]),
            (&json!("Table"), &json!("meta.k8s.io/v1"))
        );
        assert_eq!(table["metadata"], json!({"resourceVersion": "42"}));
        let definitions = table["columnDefinitions"].as_array().unwrap();
        let names: Vec<&str> = definitions
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "SYNCED", "READY", "TYPE", "AGE"]);
        assert_eq!(
            definitions[0],
            json!({"name": "Name", "type": "string", "format": "name",
            "description": NAME_DOC, "priority": 0})
        );
        let described = "Custom resource definition column (in JSONPath format): .spec.type";
        assert_eq!(definitions[3]["description"], described);
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["cp1", "True", "True", "k8s", "5m"])
        );
        assert_eq!(
            table["rows"][1]["cells"],
            json!(["cp2", null, null, "vcluster", "10m"])
        );
        let object = &table["rows"][0]["object"];
        assert_eq!(
            (&object["kind"], &object["metadata"]["name"]),
            (&json!("PartialObjectMetadata"), &json!("cp1"))
        );
        let fresh = [json!({"metadata": {"name": "x"}, "spec": {"type": "k8s"}})];
        let none = build_table_at(&columns, &fresh, json!({}), "None", at(NOW));
        assert_eq!(none["rows"][0]["object"], Value::Null);
        let whole = build_table_at(&columns, &fresh, json!({}), "Object", at(NOW));
        assert_eq!(whole["rows"][0]["object"], fresh[0]);
        assert_eq!(
            crd_columns(&json!({"name": "v1"}))[0].json_path,
            ".metadata.creationTimestamp"
        );
        let unknown = validate_include_object("Everything");
        assert_eq!(
            unknown,
            Err(r#"unrecognized includeObject value: "Everything""#.into())
        );
    }

    #[test]
    fn crd_cells_follow_column_types() {
        let obj = json!({"spec": {"n": 3, "f": 2.0, "b": true, "m": {"k": "<v>"}, "z": null}});
        let cell = |type_: &str, path: &str| {
            let mut column = col("C", type_, 0, "");
            column.json_path = path.into();
            crd_cell(&column, &obj, at(NOW))
        };
        assert_eq!(cell("integer", ".spec.f"), json!(2));
        assert_eq!(cell("number", ".spec.n"), json!(3));
        assert_eq!(cell("boolean", ".spec.b"), json!(true));
        assert_eq!(cell("boolean", ".spec.n"), Value::Null);
        assert_eq!(cell("string", ".spec.n"), json!("3"));
        assert_eq!(cell("string", ".spec.m"), json!(r#"{"k":"\u003cv\u003e"}"#));
        assert_eq!(cell("string", ".spec.z"), json!("<no value>"));
        assert_eq!(cell("date", ".spec.b"), Value::Null);
    }

    #[test]
    fn pod_rows_as_kubectl_shows_them() {
        let running = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:07:00Z"}}}]}
        });
        let cells = builtin_row("", "Pod", &running, at(NOW)).unwrap();
        let expected = [
            "1/2",
            "CrashLoopBackOff",
            "2 (3m ago)",
            "10m",
            "10.0.0.5",
            "node-1",
            "<none>",
            "<none>",
        ];
        assert_eq!(cells, expected.map(|c| json!(c)));
        let init = json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}});
        assert_eq!(
            builtin_row("", "Pod", &init, at(NOW)).unwrap()[1],
            json!("Init:0/1")
        );
        let done = json!({"metadata": {"name": "job-x"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "a",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        let table = build_builtin_table("", "Pod", &[done], json!({}), "", at(NOW));
        assert_eq!(table["rows"][0]["cells"][2], json!("Completed"));
        assert_eq!(
            table["rows"][0]["conditions"][0]["reason"],
            json!("Succeeded")
        );
        let names: Vec<String> = builtin_columns("", "Pod")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
    }

    #[test]
    fn workload_service_and_other_rows() {
        let row =
            |group: &str, kind: &str, obj: Value| builtin_row(group, kind, &obj, at(NOW)).unwrap();
        let created = json!({"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z"});
        let deployment = json!({"metadata": created, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
            "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}, {"name": "d", "image": "j:2"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let expected = json!([
            "2/3",
            3,
            2,
            "10m",
            "c,d",
            "i:1,j:2",
            "app=web,tier in (a,b)"
        ]);
        assert_eq!(json!(row("apps", "Deployment", deployment)), expected);
        let service = json!({"metadata": created, "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        let expected = json!([
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80:30080/TCP,53/UDP",
            "10m",
            "<none>"
        ]);
        assert_eq!(json!(row("", "Service", service)), expected);
        let job = json!({"metadata": created, "spec": {"completions": 1},
            "status": {"succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:01:30Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            json!(row("batch", "Job", job)[..3]),
            json!(["Complete", "1/1", "90s"])
        );
        let node = json!({"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        assert_eq!(
            json!(row("", "Node", node)[..4]),
            json!(["Ready", "control-plane", "<unknown>", "v1.33.0"])
        );
        let secret = json!({"metadata": created, "type": "Opaque", "data": {"a": "", "b": ""}});
        assert_eq!(
            json!(row("", "Secret", secret)),
            json!(["Opaque", 2, "10m"])
        );
        let binding = json!({"metadata": created, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        let expected = json!(["ClusterRole/view", "10m", "bob", "", "ns/sa"]);
        assert_eq!(
            json!(row("rbac.authorization.k8s.io", "RoleBinding", binding)),
            expected
        );
        let role = json!({"metadata": created, "rules": []});
        assert_eq!(
            row("rbac.authorization.k8s.io", "ClusterRole", role),
            [json!("2024-01-01T00:00:00Z")]
        );
        let default = builtin_columns("rbac.authorization.k8s.io", "ClusterRole");
        assert_eq!(
            (default[0].name.as_str(), default[0].type_.as_str()),
            ("Created At", "date")
        );
    }
}
