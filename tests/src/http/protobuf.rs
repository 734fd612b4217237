//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as
//! kubectl 1.32+ typed clients and Helm's release storage send them: the
//! `k8s\0` magic, then a `runtime.Unknown` carrying apiVersion, kind and the
//! object's own message.
//!
//! The object is decoded with the `k8s-pb` message types and turned into the
//! JSON the store keeps through the matching `k8s-openapi` type, so every
//! Kubernetes JSON convention (names such as `podIPs`, RFC 3339 times,
//! int-or-string, quantities, base64 bytes, raw extensions) comes from the
//! crate that already knows it. k8s-pb has no reflection of its own, so the
//! bridge is its derived `Debug` text (field names and nesting) read back as
//! a tree and fed to k8s-openapi's `Deserialize` impls; field names are
//! matched case- and underscore-insensitively (`pod_ips` ~ `podIPs`).

use std::fmt::Debug;

use prost::Message;
use serde::Serialize;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_json::Value;

use crate::status::ApiError;

/// The media type kubectl and client-go send protobuf bodies with.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// Whether a Content-Type names a protobuf body.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or_default().trim() == MEDIA_TYPE
}

/// Decodes a protobuf request body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let raw = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request("the protobuf body does not start with the k8s\\0 magic")
    })?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(raw)
        .map_err(|e| ApiError::bad_request(format!("the protobuf envelope is malformed: {e}")))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let mut value = convert(&api_version, &kind, &raw)?;
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(value)
}

/// Decodes `raw` as `P` and re-reads it as the k8s-openapi type `O`.
fn via<P, O>(raw: &[u8]) -> Result<Value, ApiError>
where
    P: Message + Default + Debug,
    O: DeserializeOwned + Serialize,
{
    let malformed = |e: &dyn std::fmt::Display| {
        ApiError::bad_request(format!("the protobuf object is malformed: {e}"))
    };
    let message = P::decode(raw).map_err(|e| malformed(&e))?;
    let tree = debug_tree::parse(&format!("{message:?}")).map_err(|e| malformed(&e))?;
    let typed = O::deserialize(Node(&tree)).map_err(|e| malformed(&e))?;
    let mut value = serde_json::to_value(typed).map_err(|e| malformed(&e))?;
    null_zero_times(&tree, &mut value);
    Ok(value)
}

/// Go writes a zero `metav1.Time` as `null` rather than leaving it out, so
/// a pod template sent as JSON by a Go client carries
/// `metadata.creationTimestamp: null`; the same template in protobuf must
/// read back the same. k8s-openapi leaves unset times out, hence this pass
/// over the decoded message beside its JSON.
fn null_zero_times(tree: &Tree, value: &mut Value) {
    match (unwrap(tree), value) {
        (Tree::Message(_, fields), Value::Object(map)) => {
            for (name, sub) in fields {
                let sub = unwrap(sub);
                if matches!(sub, Tree::Message(m, _) if m == "Time" || m == "MicroTime")
                    && is_absent(sub)
                {
                    map.entry(camel_case(name)).or_insert(Value::Null);
                } else if let Some((_, v)) = map.iter_mut().find(|(k, _)| key(k) == key(name)) {
                    null_zero_times(sub, v);
                }
            }
        }
        (Tree::List(items), Value::Array(values)) => {
            for (t, v) in items.iter().zip(values) {
                null_zero_times(t, v);
            }
        }
        _ => {}
    }
}

/// `creation_timestamp` (a prost field) as JSON names it.
fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    for (i, part) in snake.split('_').enumerate() {
        let mut chars = part.chars();
        match chars.next() {
            Some(c) if i > 0 => {
                out.push(c.to_ascii_uppercase());
                out.extend(chars);
            }
            _ => out.push_str(part),
        }
    }
    out
}

/// Every kind testenv serves that a client can write, plus the bodies of
/// subresources and deletes (`DeleteOptions` is sent under any group).
fn convert(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ApiError> {
    macro_rules! kind {
        (($($module:ident)::+), $kind:ident) => {
            if api_version == <k8s_openapi::$($module)::+::$kind as k8s_openapi::Resource>::API_VERSION
                && kind == stringify!($kind)
            {
                return via::<k8s_pb::$($module)::+::$kind, k8s_openapi::$($module)::+::$kind>(raw);
            }
        };
    }
    macro_rules! kinds {
        ($($module:tt => [$($kind:ident),+ $(,)?];)+) => {
            $($(kind!($module, $kind);)+)+
        };
    }
    crate::resources::typed_builtin_kinds!(kinds);
    if kind == "DeleteOptions" {
        return via::<
            k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions,
        >(raw);
    }
    Err(ApiError::unsupported_media_type(&format!(
        "{MEDIA_TYPE} for {api_version}, Kind={kind}"
    )))
}

/// The value tree of a `Debug` rendering of a prost message.
#[derive(Debug, Clone, PartialEq)]
enum Tree {
    /// A message: its type name and fields in declaration order.
    Message(String, Vec<(String, Tree)>),
    Some(Box<Tree>),
    None,
    Str(String),
    /// A number, kept as written (`-3`, `1.5`, `1e-7`).
    Num(String),
    Bool(bool),
    List(Vec<Tree>),
    Map(Vec<(Tree, Tree)>),
}

mod debug_tree {
    //! A reader of the `Debug` text prost derives: `Name { field: value }`,
    //! `Some(..)`, `None`, quoted strings with Rust escapes, numbers,
    //! booleans, `[..]` lists and `{k: v}` maps.

    use super::Tree;

    pub fn parse(text: &str) -> Result<Tree, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            text,
            i: 0,
        };
        let tree = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing text at {}", p.i));
        }
        Ok(tree)
    }

    struct Parser<'a> {
        s: &'a [u8],
        text: &'a str,
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }

        fn expect(&mut self, c: u8) -> Result<(), String> {
            if self.peek() == Some(c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", c as char, self.i))
            }
        }

        /// Items up to `close`, separated by commas (a trailing one allowed).
        fn items<T>(
            &mut self,
            close: u8,
            mut item: impl FnMut(&mut Self) -> Result<T, String>,
        ) -> Result<Vec<T>, String> {
            let mut out = Vec::new();
            loop {
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(out);
                }
                out.push(item(self)?);
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(c) if c == close => {}
                    _ => return Err(format!("expected ',' at {}", self.i)),
                }
            }
        }

        fn word(&mut self) -> &str {
            self.ws();
            let start = self.i;
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || b"_#.+-".contains(c))
            {
                self.i += 1;
            }
            &self.text[start..self.i]
        }

        fn value(&mut self) -> Result<Tree, String> {
            match self.peek() {
                Some(b'"') => self.string().map(Tree::Str),
                Some(b'[') => {
                    self.i += 1;
                    self.items(b']', Self::value).map(Tree::List)
                }
                Some(b'{') => {
                    self.i += 1;
                    self.items(b'}', |p| {
                        let k = p.value()?;
                        p.expect(b':')?;
                        Ok((k, p.value()?))
                    })
                    .map(Tree::Map)
                }
                Some(c) if c == b'-' || c.is_ascii_digit() => Ok(Tree::Num(self.word().into())),
                Some(_) => {
                    let word = self.word().to_string();
                    match word.as_str() {
                        "" => Err(format!("unexpected character at {}", self.i)),
                        "None" => Ok(Tree::None),
                        "true" => Ok(Tree::Bool(true)),
                        "false" => Ok(Tree::Bool(false)),
                        "NaN" | "inf" => Ok(Tree::Num(word)),
                        "Some" => {
                            self.expect(b'(')?;
                            let inner = self.value()?;
                            self.expect(b')')?;
                            Ok(Tree::Some(Box::new(inner)))
                        }
                        _ => {
                            // A message; one without fields prints its name alone.
                            let fields = if self.peek() == Some(b'{') {
                                self.i += 1;
                                self.items(b'}', |p| {
                                    let name = p.word().trim_start_matches("r#").to_string();
                                    p.expect(b':')?;
                                    Ok((name, p.value()?))
                                })?
                            } else {
                                Vec::new()
                            };
                            Ok(Tree::Message(word, fields))
                        }
                    }
                }
                None => Err("unexpected end".into()),
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = String::new();
            let mut chars = self.text[self.i..].char_indices();
            while let Some((at, c)) = chars.next() {
                match c {
                    '"' => {
                        self.i += at + 1;
                        return Ok(out);
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some('0') => out.push('\0'),
                        Some('u') => {
                            let hex: String = chars
                                .by_ref()
                                .map(|(_, c)| c)
                                .skip(1)
                                .take_while(|c| *c != '}')
                                .collect();
                            let c = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("bad escape \\u{{{hex}}}"))?;
                            out.push(c);
                        }
                        Some(c) => out.push(c),
                        None => break,
                    },
                    c => out.push(c),
                }
            }
            Err("unterminated string".into())
        }
    }
}

/// The key fields are matched by: `pod_ips`, `podIPs` and `$ref`/`ref`
/// all compare equal to their counterpart.
fn key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn field<'t>(fields: &'t [(String, Tree)], name: &str) -> Option<&'t Tree> {
    let name = key(name);
    fields
        .iter()
        .find(|(n, _)| key(n) == name)
        .map(|(_, v)| unwrap(v))
}

fn unwrap(t: &Tree) -> &Tree {
    match t {
        Tree::Some(inner) => unwrap(inner),
        other => other,
    }
}

fn int_field(fields: &[(String, Tree)], name: &str) -> i64 {
    match field(fields, name) {
        Some(Tree::Num(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Absent in Go's JSON: nil slices and maps, and the zero `Time`.
fn is_absent(t: &Tree) -> bool {
    match unwrap(t) {
        Tree::None => true,
        Tree::List(l) => l.is_empty(),
        Tree::Map(m) => m.is_empty(),
        Tree::Message(name, fields) if name == "Time" || name == "MicroTime" => {
            int_field(fields, "seconds") == 0 && int_field(fields, "nanos") == 0
        }
        _ => false,
    }
}

/// Go's protobuf encoding writes every non-pointer field, so an unset
/// `metadata.namespace` arrives as `""` and an unset `metadata.generation`
/// as `0`; their JSON (`omitempty`) has neither. `storageClassName: ""` is
/// the one empty string that means something. Zero numbers and `false` are
/// dropped only for the non-pointer fields of `ZERO_OMITTED`: a pointer
/// (`replicas: 0`, `immutable: false`) arrives only when set, and keeps it.
fn omitted(message: &str, name: &str, t: &Tree) -> bool {
    let zero_omitted = || {
        ZERO_OMITTED
            .iter()
            .any(|(m, fields)| key(m) == key(message) && fields.iter().any(|f| key(f) == key(name)))
    };
    match t {
        Tree::None => true,
        Tree::Str(s) => s.is_empty() && name != "storageClassName",
        Tree::Num(n) => n.parse::<f64>().is_ok_and(|n| n == 0.0) && zero_omitted(),
        Tree::Bool(b) => !b && zero_omitted(),
        _ => false,
    }
}

/// Non-pointer scalar fields tagged `omitempty` in k8s.io/api, by message,
/// for the kinds clients create with protobuf bodies.
const ZERO_OMITTED: &[(&str, &[&str])] = &[
    ("ObjectMeta", &["generation"]),
    ("PodSpec", &["hostNetwork", "hostPID", "hostIPC"]),
    ("Container", &["stdin", "stdinOnce", "tty"]),
    ("EphemeralContainerCommon", &["stdin", "stdinOnce", "tty"]),
    ("ContainerPort", &["hostPort"]),
    (
        "Probe",
        &[
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ],
    ),
    ("VolumeMount", &["readOnly"]),
    ("ServicePort", &["nodePort"]),
    (
        "ServiceSpec",
        &["publishNotReadyAddresses", "healthCheckNodePort"],
    ),
    ("ServiceBackendPort", &["number"]),
    ("NodeSpec", &["unschedulable"]),
    ("DeploymentSpec", &["minReadySeconds", "paused"]),
    (
        "DeploymentStatus",
        &[
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ],
    ),
    ("StatefulSetSpec", &["minReadySeconds"]),
    (
        "StatefulSetStatus",
        &[
            "observedGeneration",
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
        ],
    ),
    ("ReplicaSetSpec", &["minReadySeconds"]),
    (
        "ReplicaSetStatus",
        &[
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ],
    ),
    ("JobStatus", &["active", "succeeded", "failed"]),
    ("Event", &["count"]),
    ("EventSeries", &["count"]),
    ("ScaleSpec", &["replicas"]),
    ("TokenReviewStatus", &["authenticated"]),
    ("SubjectAccessReviewStatus", &["denied"]),
    ("CustomResourceDefinitionSpec", &["preserveUnknownFields"]),
    (
        "JsonSchemaProps",
        &[
            "exclusiveMaximum",
            "exclusiveMinimum",
            "uniqueItems",
            "x-kubernetes-embedded-resource",
            "x-kubernetes-int-or-string",
        ],
    ),
];

fn bytes_of(items: &[Tree]) -> Option<Vec<u8>> {
    items
        .iter()
        .map(|t| match t {
            Tree::Num(n) => n.parse::<u8>().ok(),
            _ => None,
        })
        .collect()
}

/// A `serde` view of a tree, driven by the k8s-openapi type being read.
struct Node<'t>(&'t Tree);

type Error = serde_json::Error;

impl<'de> de::Deserializer<'de> for Node<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match unwrap(self.0) {
            Tree::None | Tree::Some(_) => v.visit_none(),
            Tree::Str(s) => v.visit_str(s),
            Tree::Bool(b) => v.visit_bool(*b),
            Tree::Num(n) => {
                if let Ok(i) = n.parse::<i64>() {
                    v.visit_i64(i)
                } else if let Ok(u) = n.parse::<u64>() {
                    v.visit_u64(u)
                } else {
                    v.visit_f64(n.parse().map_err(de::Error::custom)?)
                }
            }
            Tree::List(items) => {
                v.visit_seq(de::value::SeqDeserializer::new(items.iter().map(Node)))
            }
            Tree::Map(entries) => v.visit_map(de::value::MapDeserializer::new(
                entries.iter().map(|(k, val)| (Node(k), Node(val))),
            )),
            Tree::Message(name, fields) => message_any(name, fields, v),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if is_absent(self.0) {
            v.visit_none()
        } else {
            v.visit_some(Node(unwrap(self.0)))
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        // `bytes` fields print as lists of numbers; JSON has them in base64.
        match unwrap(self.0) {
            Tree::List(items) => match bytes_of(items) {
                Some(b) => v.visit_string(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    b,
                )),
                None => self.deserialize_any(v),
            },
            _ => self.deserialize_any(v),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        names: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match unwrap(self.0) {
            Tree::Message(message, fields) => {
                // Go structs embedded `json:",inline"` (a Probe's handler, a
                // Volume's source) are fields of their own in protobuf.
                let inline: Vec<(&str, &[(String, Tree)])> = fields
                    .iter()
                    .filter(|(n, _)| !names.iter().any(|j| key(j) == key(n)))
                    .filter_map(|(_, t)| match unwrap(t) {
                        Tree::Message(m, f) => Some((m.as_str(), f.as_slice())),
                        _ => None,
                    })
                    .collect();
                let present = names.iter().filter_map(|name| {
                    field(fields, name)
                        .map(|t| (message.as_str(), t))
                        .or_else(|| {
                            inline
                                .iter()
                                .find_map(|(m, f)| field(f, name).map(|t| (*m, t)))
                        })
                        .filter(|(m, t)| !omitted(m, name, t))
                        .map(|(_, t)| (*name, Node(t)))
                });
                v.visit_map(de::value::MapDeserializer::new(present))
            }
            _ => self.deserialize_any(v),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
        unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

impl<'de, 't> IntoDeserializer<'de, Error> for Node<'t> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// The apimachinery messages whose JSON is not an object of their fields.
fn message_any<'de, V: Visitor<'de>>(
    name: &str,
    fields: &[(String, Tree)],
    v: V,
) -> Result<V::Value, Error> {
    match name {
        "Time" | "MicroTime" => {
            let nanos = i32::try_from(int_field(fields, "nanos")).map_err(de::Error::custom)?;
            let t = k8s_openapi::jiff::Timestamp::new(int_field(fields, "seconds"), nanos)
                .map_err(de::Error::custom)?;
            let text = if name == "Time" {
                t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
            };
            v.visit_string(text)
        }
        "IntOrString" => match (int_field(fields, "type"), field(fields, "strVal")) {
            (1, Some(Tree::Str(s))) => v.visit_str(s),
            (1, _) => v.visit_str(""),
            _ => v.visit_i64(int_field(fields, "intVal")),
        },
        "Quantity" => match field(fields, "string") {
            Some(Tree::Str(s)) => v.visit_str(s),
            _ => v.visit_str("0"),
        },
        // Embedded JSON: raw extensions, managed fields, schema JSON values.
        "RawExtension" | "FieldsV1" | "Json" => {
            let raw = match field(fields, "raw") {
                Some(Tree::List(items)) => bytes_of(items).unwrap_or_default(),
                _ => Vec::new(),
            };
            if raw.is_empty() {
                return v.visit_none();
            }
            let value: Value = serde_json::from_slice(&raw)?;
            de::Deserializer::deserialize_any(value, v)
        }
        _ => v.visit_map(de::value::MapDeserializer::new(
            fields
                .iter()
                .filter(|(_, t)| !matches!(t, Tree::None))
                .map(|(k, t)| (k.as_str(), Node(t))),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::core::v1 as pb;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;
    use serde_json::json;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn meta(name: &str) -> Option<pbmeta::ObjectMeta> {
        Some(pbmeta::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(String::new()),
            resource_version: Some(String::new()),
            labels: [("app".to_string(), "web".to_string())].into(),
            creation_timestamp: Some(pbmeta::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            ..Default::default()
        })
    }

    #[test]
    fn secret_bytes_become_base64_and_zero_times_are_null() {
        let secret = pb::Secret {
            metadata: meta("s1"),
            data: [("k".to_string(), b"hi\n".to_vec())].into(),
            string_data: [("t".to_string(), "x \"q\" \u{1}".to_string())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let got = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(
            got,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s1", "labels": {"app": "web"}, "creationTimestamp": null},
                "data": {"k": "aGkK"},
                "stringData": {"t": "x \"q\" \u{1}"},
                "type": "Opaque",
            })
        );
    }

    #[test]
    fn pod_names_times_quantities_and_int_or_string_follow_kubernetes_json() {
        let pod = pb::Pod {
            metadata: Some(pbmeta::ObjectMeta {
                name: Some("p".into()),
                deletion_timestamp: Some(pbmeta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            spec: Some(pb::PodSpec {
                host_ipc: Some(true),
                containers: vec![pb::Container {
                    name: Some("c".into()),
                    resources: Some(pb::ResourceRequirements {
                        limits: [(
                            "memory".to_string(),
                            k8s_pb::apimachinery::pkg::api::resource::Quantity {
                                string: Some("64Mi".into()),
                            },
                        )]
                        .into(),
                        ..Default::default()
                    }),
                    liveness_probe: Some(pb::Probe {
                        handler: Some(pb::ProbeHandler {
                            http_get: Some(pb::HttpGetAction {
                                port: Some(k8s_pb::apimachinery::pkg::util::intstr::IntOrString {
                                    r#type: Some(1),
                                    int_val: Some(0),
                                    str_val: Some("http".into()),
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(pb::PodStatus {
                pod_ips: vec![pb::PodIp {
                    ip: Some("10.0.0.1".into()),
                }],
                ..Default::default()
            }),
        };
        let got = decode(&envelope("v1", "Pod", pod.encode_to_vec())).unwrap();
        assert_eq!(got["metadata"]["deletionTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(got["spec"]["hostIPC"], true);
        let c = &got["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"]["memory"], "64Mi");
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
        assert_eq!(got["status"]["podIPs"], json!([{"ip": "10.0.0.1"}]));
    }

    #[test]
    fn zeros_go_leaves_out_vanish_and_set_pointers_stay() {
        use k8s_pb::api::apps::v1 as apps;
        let mut metadata = meta("d");
        if let Some(m) = metadata.as_mut() {
            m.generation = Some(0);
        }
        let deployment = apps::Deployment {
            metadata,
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                min_ready_seconds: Some(0),
                paused: Some(false),
                template: Some(pb::PodTemplateSpec {
                    metadata: meta("t"),
                    spec: Some(pb::PodSpec {
                        host_network: Some(false),
                        automount_service_account_token: Some(false),
                        containers: vec![pb::Container {
                            name: Some("c".into()),
                            stdin: Some(false),
                            tty: Some(false),
                            ports: vec![pb::ContainerPort {
                                container_port: Some(80),
                                host_port: Some(0),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus {
                replicas: Some(0),
                ..Default::default()
            }),
        };
        let got = decode(&envelope(
            "apps/v1",
            "Deployment",
            deployment.encode_to_vec(),
        ))
        .unwrap();
        assert!(got["metadata"].get("generation").is_none(), "{got}");
        let spec = &got["spec"];
        assert_eq!(spec["replicas"], 0);
        assert!(spec.get("minReadySeconds").is_none() && spec.get("paused").is_none());
        assert_eq!(
            spec["template"]["metadata"],
            json!({"name": "t", "labels": {"app": "web"}, "creationTimestamp": null})
        );
        let pod = &spec["template"]["spec"];
        assert!(pod.get("hostNetwork").is_none());
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            pod["containers"],
            json!([{"name": "c", "ports": [{"containerPort": 80}]}])
        );
        assert_eq!(got["status"], json!({}));
        let secret = pb::Secret {
            metadata: meta("s"),
            immutable: Some(false),
            ..Default::default()
        };
        let got = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(got["immutable"], false);
    }

    #[test]
    fn delete_options_and_unknown_kinds() {
        let opts = pbmeta::DeleteOptions {
            propagation_policy: Some("Foreground".into()),
            ..Default::default()
        };
        let got = decode(&envelope("apps/v1", "DeleteOptions", opts.encode_to_vec())).unwrap();
        assert_eq!(got["propagationPolicy"], "Foreground");
        let err = decode(&envelope("example.com/v1", "Widget", Vec::new())).unwrap_err();
        assert_eq!(err.code, 415);
        assert_eq!(decode(b"{}").unwrap_err().code, 400);
    }
}
