//! A YAML stream as a tree of nodes that remember where they were written.
//!
//! Validation must name the line and column of every problem, including an
//! unknown field, so documents are first read into this position-carrying
//! tree (not straight into the API types, which ignore unknown fields) and only
//! turned into JSON and typed objects once the tree has passed the checks.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::budget::BudgetBreach;

/// Where a node starts: 1-based line and column, counted in characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    /// Start of the file: where file-level problems (size, encoding) point.
    pub const START: Self = Self { line: 1, column: 1 };

    fn from_location(location: serde_saphyr::Location) -> Self {
        // Locations are u32 inside serde-saphyr; the u64 accessors only widen.
        Self {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML node and where it was written. For an alias (`*a`) the position
/// is the alias, i.e. where the value is used.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// The value of a node, with YAML's scalars already resolved (`12` is an
/// integer, `"12"` a string, `true` a boolean but `yes` a string as in YAML
/// 1.2, `~` null).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in the order written; keys are unique (duplicates are a syntax error).
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub pos: Pos,
    pub name: String,
}

impl Value {
    /// The JSON-schema name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Int(_) | Self::UInt(_) => "integer",
            Self::Float(_) => "number",
            Self::Str(_) => "string",
            Self::Seq(_) => "array",
            Self::Map(_) => "object",
        }
    }
}

impl Node {
    /// The entry `name` of a mapping node.
    pub fn get(&self, name: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The string value of the entry `name`, if it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name).map(|(_, v)| &v.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The node as JSON, the form the API server and the typed objects take.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            // Non-finite floats never get here: serde-saphyr hands them over as
            // strings (".nan"); `from_f64` would otherwise return None.
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Limits on what one YAML file may make the parser do. Defaults suit
/// ControlPlane and PostCreateHook manifests with a wide margin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Nesting of mappings and sequences. Real manifests stay below 20; the
    /// cap keeps recursion (ours and serde's) shallow.
    pub max_depth: usize,
    /// Events replayed through aliases in total. Aliases are legal YAML, but
    /// a few lines of nested aliases expand to billions of nodes ("billion
    /// laughs"), so expansion is bounded, not the number of anchors.
    pub max_alias_expansion: usize,
    /// Documents in one file.
    pub max_documents: usize,
    /// Nodes in one file (mappings, sequences, scalars).
    pub max_nodes: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_alias_expansion: 10_000,
            max_documents: 1_000,
            max_nodes: 200_000,
        }
    }
}

/// Why a YAML stream could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ParseError {
    pub pos: Pos,
    pub message: String,
    /// A limit against hostile input was hit (as opposed to invalid YAML).
    pub limit: bool,
}

/// Parses every document of a YAML stream. Empty documents (a bare `---`,
/// `~`) are skipped, so the result's indices count non-empty documents.
pub fn parse_stream(text: &str, limits: &ParseLimits) -> Result<Vec<Node>, ParseError> {
    let options = serde_saphyr::Options {
        budget: Some(serde_saphyr::Budget {
            max_depth: limits.max_depth,
            max_documents: limits.max_documents,
            max_nodes: limits.max_nodes,
            ..serde_saphyr::Budget::default()
        }),
        alias_limits: serde_saphyr::options::AliasLimits {
            max_total_replayed_events: limits.max_alias_expansion,
            ..serde_saphyr::options::AliasLimits::default()
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        // YAML 1.2 booleans: only true/false. With YAML 1.1's `y`/`n`/`on`/
        // `off`, `namespace: n` would silently become `false`; a boolean
        // field written `yes` is reported as a string instead.
        strict_booleans: true,
        // Messages are rendered by us as `path:line:column: message`.
        with_snippet: false,
        ..serde_saphyr::Options::default()
    };
    serde_saphyr::from_multiple_with_options::<Node>(text, options)
        .map_err(|e| convert_error(&e, limits))
}

fn convert_error(error: &serde_saphyr::Error, limits: &ParseLimits) -> ParseError {
    use serde_saphyr::Error as E;
    let error = error.without_snippet();
    let pos = error.location().map_or(Pos::START, Pos::from_location);
    let (message, limit) = match error {
        E::Budget { breach, .. } => (describe_breach(breach, limits), true),
        E::Message { msg, .. } if msg.starts_with("alias replay") => (
            format!(
                "YAML aliases expand to more than {} nodes; refusing the file",
                limits.max_alias_expansion
            ),
            true,
        ),
        E::Message { msg, .. } if msg.starts_with("recursion limit") => (
            format!(
                "YAML nesting is deeper than {} levels; refusing the file",
                limits.max_depth
            ),
            true,
        ),
        E::Message { msg, .. } | E::HookError { msg, .. } => (format!("YAML: {msg}"), false),
        E::Eof { .. } => ("YAML: unexpected end of input".to_owned(), false),
        E::Unexpected { expected, .. } => (format!("YAML: expected {expected}"), false),
        E::ContainerEndMismatch { .. } => (
            "YAML: end of a list or mapping that was never started".to_owned(),
            false,
        ),
        E::UnknownAnchor { .. } => ("YAML: alias to an unknown anchor".to_owned(), false),
        E::QuotingRequired { value, .. } => {
            (format!("YAML: value {value:?} must be quoted"), false)
        }
        other => (format!("YAML: {other}"), false),
    };
    ParseError {
        pos,
        message,
        limit,
    }
}

fn describe_breach(breach: &BudgetBreach, limits: &ParseLimits) -> String {
    match breach {
        BudgetBreach::Depth { .. } => format!(
            "YAML nesting is deeper than {} levels; refusing the file",
            limits.max_depth
        ),
        BudgetBreach::Documents { .. } => format!(
            "more than {} YAML documents in one file; refusing the file",
            limits.max_documents
        ),
        BudgetBreach::Nodes { .. } => format!(
            "more than {} YAML nodes (after alias expansion); refusing the file",
            limits.max_nodes
        ),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::MergeKeys { .. } => {
            "too many YAML aliases, anchors or merge keys (alias expansion); refusing the file"
                .to_owned()
        }
        other => format!("YAML input exceeds a parser limit ({other:?}); refusing the file"),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `Spanned` is serde-saphyr's way of handing out positions; keep only
        // the (smaller) line and column of where the node is used.
        let spanned = serde_saphyr::Spanned::<Value>::deserialize(deserializer)?;
        Ok(Self {
            pos: Pos::from_location(spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<String>::deserialize(deserializer)?;
        Ok(Self {
            pos: Pos::from_location(spanned.referenced),
            name: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        // `!!binary` scalars: Kubernetes has no binary JSON type either.
        String::from_utf8(v.to_vec())
            .map(Value::Str)
            .map_err(|_| E::custom("binary value is not UTF-8 text"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, ParseError> {
        parse_stream(text, &ParseLimits::default())
    }

    #[test]
    fn positions_of_keys_and_values() {
        let docs = parse("a: 1\nb:\n  c: [x, \"2\"]\n").unwrap();
        assert_eq!(docs.len(), 1);
        let (key, b) = docs[0].get("b").unwrap();
        assert_eq!(key.pos, Pos { line: 2, column: 1 });
        let (ckey, c) = b.get("c").unwrap();
        assert_eq!(ckey.pos, Pos { line: 3, column: 3 });
        let Value::Seq(items) = &c.value else {
            panic!("not a sequence: {c:?}")
        };
        assert_eq!(
            items[1].pos,
            Pos {
                line: 3,
                column: 10
            }
        );
        assert_eq!(items[1].value, Value::Str("2".into()));
        assert_eq!(
            docs[0].to_json(),
            serde_json::json!({"a": 1, "b": {"c": ["x", "2"]}})
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse("---\n---\na: 1\n---\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].pos.line, 3);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(!err.limit);
        assert_eq!(err.pos, Pos { line: 3, column: 2 });
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, column: 1 });
        assert_eq!(err.message, "YAML: duplicate mapping key: a");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert!(err.limit, "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        let err = parse(&text).unwrap_err();
        assert!(err.limit, "{err:?}");
        assert!(err.message.contains("deeper than 64"), "{err:?}");
    }
}
