//! `/openapi/v2`: the Swagger 2.0 document kube-apiserver serves, in JSON
//! or in the protobuf form (gnostic's `openapi.v2.Document`) that kubectl
//! 1.27 and 1.28 ask for before `apply`. They read it for two things:
//! whether a kind's PATCH takes `fieldValidation` (then they leave schema
//! validation to the server), and the kind's schema with its
//! `x-kubernetes-patch-*` markers to build strategic merge patches.
//!
//! Built-in definitions come from `k8s-openapi`'s schemas (the same names
//! kube-apiserver uses), marked with the list rules of `merge_keys` so
//! kubectl's patches merge lists as testenv's own SMP does. Custom
//! resources get a definition from their CRD's `openAPIV3Schema`.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

use prost::Message;
use serde_json::{Map, Value, json};

use crate::merge_keys::{BuiltinMergeKeys, ListStrategy, MergeKeys};
use crate::resources::{Registry, ResourceType};

/// The Accept kubectl sends for the protobuf document (and its older
/// spelling with `.v1.0`).
pub fn wants_protobuf(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or_default().trim();
        media.starts_with("application/com.github.proto-openapi.spec.v2")
            && media.ends_with("+protobuf")
    })
}

/// The Content-Type of the protobuf answer.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The whole document for what `registry` serves now, as JSON.
pub fn document(registry: &Registry, minor: u32) -> Value {
    let types = registry.all();
    let mut definitions = builtin_definitions().clone();
    for t in types.iter().filter(|t| t.is_crd()) {
        definitions.insert(definition_name(t), crd_definition(t));
    }
    let mut paths = Map::new();
    for t in &types {
        let (collection, item) = operations(t, &definitions);
        let base = collection_path(t);
        if !collection.is_empty() {
            paths.insert(base.clone(), Value::Object(collection));
        }
        if !item.is_empty() {
            paths.insert(format!("{base}/{{name}}"), Value::Object(item));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{minor}.0")},
        "paths": paths,
        "definitions": definitions,
    })
}

/// The protobuf document for what `registry` serves now. Building it takes
/// a noticeable fraction of a second in debug builds and kubectl fetches it
/// for every `apply`, so the last one is kept while the served kinds and
/// their CRD versions stay the same.
pub fn protobuf(registry: &Registry, minor: u32) -> Bytes {
    static LAST: Mutex<Option<(String, Bytes)>> = Mutex::new(None);
    let types = registry.all();
    let mut key = minor.to_string();
    for t in &types {
        key.push_str(&format!(
            "\n{}/{}/{}/{}",
            t.group, t.version, t.plural, t.kind
        ));
        if let Some(v) = &t.crd_version {
            key.push_str(&v.to_string());
        }
    }
    if let Ok(last) = LAST.lock()
        && let Some((k, bytes)) = last.as_ref()
        && *k == key
    {
        return bytes.clone();
    }
    let bytes = Bytes::from(encode(&document(registry, minor)));
    if let Ok(mut last) = LAST.lock() {
        *last = Some((key, bytes.clone()));
    }
    bytes
}

/// `document` in gnostic's protobuf encoding.
pub fn encode(doc: &Value) -> Vec<u8> {
    let named = |v: &Value| -> Vec<(String, Value)> {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    pb::Document {
        swagger: text(doc, "swagger"),
        info: Some(pb::Info {
            title: text(&doc["info"], "title"),
            version: text(&doc["info"], "version"),
        }),
        paths: Some(pb::Paths {
            path: named(&doc["paths"])
                .into_iter()
                .map(|(name, item)| pb::NamedPathItem {
                    name,
                    value: Some(path_item(&item)),
                })
                .collect(),
        }),
        definitions: Some(pb::Definitions {
            additional_properties: named(&doc["definitions"])
                .into_iter()
                .map(|(name, s)| pb::NamedSchema {
                    name,
                    value: Some(schema(&s)),
                })
                .collect(),
        }),
    }
    .encode_to_vec()
}

fn collection_path(t: &ResourceType) -> String {
    let root = if t.group.is_empty() {
        format!("/api/{}", t.version)
    } else {
        format!("/apis/{}/{}", t.group, t.version)
    };
    if t.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", t.plural)
    } else {
        format!("{root}/{}", t.plural)
    }
}

/// kube-apiserver's name for a kind's definition: the group reversed.
fn definition_name(t: &ResourceType) -> String {
    let group: Vec<&str> = t.group.split('.').rev().collect();
    format!("{}.{}.{}", group.join("."), t.version, t.kind)
}

/// The operations on the collection and on one object; each carries the
/// kind's group/version/kind and the query parameters kubectl looks for.
fn operations(
    t: &ResourceType,
    definitions: &Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
    let reference = definitions
        .iter()
        .find(|(_, d)| declares(d, t))
        .map(|(name, _)| json!({"$ref": format!("#/definitions/{name}")}));
    let op = |verb: &str, params: &[&str], consumes: &[&str]| {
        let mut parameters: Vec<Value> = params
            .iter()
            .map(|p| json!({"name": p, "in": "query", "type": "string", "uniqueItems": true}))
            .collect();
        if !consumes.is_empty() {
            let mut body = json!({"name": "body", "in": "body", "required": true});
            if let Some(r) = &reference {
                body["schema"] = r.clone();
            }
            parameters.push(body);
        }
        let mut ok = json!({"description": "OK"});
        if let Some(r) = &reference {
            ok["schema"] = r.clone();
        }
        json!({
            "operationId": format!("{verb}{}", t.kind),
            "consumes": consumes,
            "produces": ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"],
            "parameters": parameters,
            "responses": {"200": ok},
            "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": gvk,
        })
    };
    let write = ["dryRun", "fieldManager", "fieldValidation"];
    let has = |verb: &str| t.verbs.contains(&verb);
    let mut collection = Map::new();
    let mut item = Map::new();
    if has("list") {
        collection.insert(
            "get".into(),
            op("list", &["labelSelector", "fieldSelector"], &[]),
        );
    }
    if has("create") {
        collection.insert("post".into(), op("post", &write, &["*/*"]));
    }
    if has("get") {
        item.insert("get".into(), op("get", &[], &[]));
    }
    if has("update") {
        item.insert("put".into(), op("put", &write, &["*/*"]));
    }
    if has("patch") {
        // kubectl picks its patch type from these: custom resources take
        // no strategic merge patch.
        let patch_types: &[&str] = if t.is_crd() {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ]
        };
        let params = ["dryRun", "fieldManager", "fieldValidation", "force"];
        item.insert("patch".into(), op("patch", &params, patch_types));
    }
    if has("delete") {
        item.insert(
            "delete".into(),
            op("delete", &["dryRun", "propagationPolicy"], &["*/*"]),
        );
    }
    (collection, item)
}

/// Whether a definition is the schema of `t`'s kind.
fn declares(definition: &Value, t: &ResourceType) -> bool {
    definition["x-kubernetes-group-version-kind"]
        .as_array()
        .is_some_and(|gvks| {
            gvks.iter().any(|g| {
                g["group"] == t.group.as_str()
                    && g["version"] == t.version.as_str()
                    && g["kind"] == t.kind.as_str()
            })
        })
}

/// The definitions of every typed built-in kind and what they use, made
/// once: `k8s-openapi` knows them all and they never change.
fn builtin_definitions() -> &'static Map<String, Value> {
    static DEFINITIONS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFINITIONS.get_or_init(|| {
        let mut generator = schemars::generate::SchemaSettings::draft2020_12()
            .with(|s| {
                s.definitions_path = "/definitions".into();
                s.meta_schema = None;
            })
            .into_generator();
        // (definition name, group, version, kind) of each kind.
        let mut kinds: Vec<(String, &str, &str, &str)> = Vec::new();
        macro_rules! kind {
            (($($module:ident)::+), $kind:ident) => {{
                type T = k8s_openapi::$($module)::+::$kind;
                let name = <T as schemars::JsonSchema>::schema_name().into_owned();
                generator.subschema_for::<T>();
                kinds.push((
                    name,
                    <T as k8s_openapi::Resource>::GROUP,
                    <T as k8s_openapi::Resource>::VERSION,
                    <T as k8s_openapi::Resource>::KIND,
                ));
            }};
        }
        macro_rules! kinds {
            ($($module:tt => [$($kind:ident),+ $(,)?];)+) => {
                $($(kind!($module, $kind);)+)+
            };
        }
        crate::resources::typed_builtin_kinds!(kinds);
        let mut definitions = generator.take_definitions(true);
        for (name, group, version, kind) in kinds {
            let rules = BuiltinMergeKeys::for_kind(group, kind);
            mark_lists(
                &mut definitions,
                &name,
                &mut Vec::new(),
                &rules,
                &mut Vec::new(),
            );
            if let Some(d) = definitions.get_mut(&name) {
                d["x-kubernetes-group-version-kind"] =
                    json!([{"group": group, "version": version, "kind": kind}]);
            }
        }
        definitions
    })
}

/// Marks the list properties of definition `name`, reached at `path` from
/// a kind's root, with the patch strategy `rules` give them, and descends.
/// `stack` holds the definitions on the way, so recursive ones end.
fn mark_lists(
    definitions: &mut Map<String, Value>,
    name: &str,
    path: &mut Vec<String>,
    rules: &BuiltinMergeKeys,
    stack: &mut Vec<String>,
) {
    if stack.iter().any(|s| s == name) {
        return;
    }
    let Some(properties) = definitions
        .get(name)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    stack.push(name.to_string());
    for (field, property) in properties {
        path.push(field.clone());
        let (list, target) = match property.get("items") {
            Some(items) => (true, ref_name(items)),
            None => (false, ref_name(&property)),
        };
        if list {
            let at: Vec<&str> = path.iter().map(String::as_str).collect();
            let marks = match rules.list_strategy(&at) {
                ListStrategy::Atomic => None,
                ListStrategy::Set => Some(json!({"x-kubernetes-patch-strategy": "merge"})),
                ListStrategy::Map(keys) => keys.first().map(|key| {
                    json!({"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": key})
                }),
            };
            if let Some(Value::Object(marks)) = marks
                && let Some(p) = definitions
                    .get_mut(name)
                    .and_then(|d| d.pointer_mut(&format!("/properties/{}", pointer_escape(&field))))
                    .and_then(Value::as_object_mut)
            {
                p.extend(marks);
            }
        }
        if let Some(target) = target {
            mark_lists(definitions, &target, path, rules, stack);
        }
        path.pop();
    }
    stack.pop();
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn ref_name(schema: &Value) -> Option<String> {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/definitions/"))
        .map(str::to_string)
}

/// A CRD version's schema in Swagger 2.0 terms: `metadata` is ObjectMeta,
/// and what 2.0 cannot say (`nullable`, `anyOf`, `oneOf`, `not`) is left
/// out, as kube-apiserver does.
fn crd_definition(t: &ResourceType) -> Value {
    let mut d = t
        .schema()
        .map(v2_schema)
        .unwrap_or_else(|| json!({"type": "object"}));
    if let Some(obj) = d.as_object_mut() {
        obj.insert("type".into(), json!("object"));
        let props = obj
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(props) = props {
            props.insert(
                "metadata".into(),
                json!({"$ref": format!("#/definitions/{OBJECT_META}")}),
            );
            for field in ["apiVersion", "kind"] {
                props
                    .entry(field)
                    .or_insert_with(|| json!({"type": "string"}));
            }
        }
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": t.group, "version": t.version, "kind": t.kind}]),
        );
    }
    d
}

fn v2_schema(s: &Value) -> Value {
    let Some(obj) = s.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "properties" => {
                let props: Map<String, Value> = v
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v2_schema(v))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), v2_schema(v));
            }
            "nullable" | "anyOf" | "oneOf" | "not" | "allOf" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // An array must name its items in 2.0; without them it says nothing.
    if out.get("type").and_then(Value::as_str) == Some("array") && !out.contains_key("items") {
        out.remove("type");
    }
    Value::Object(out)
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A value in gnostic's `Any`: its YAML text (JSON is YAML).
fn any(v: &Value) -> pb::Any {
    pb::Any {
        yaml: v.to_string(),
    }
}

fn extensions(v: &Value) -> Vec<pb::NamedAny> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| pb::NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn schema(v: &Value) -> pb::Schema {
    let num = |key: &str| v[key].as_f64().unwrap_or_default();
    let int = |key: &str| v[key].as_i64().unwrap_or_default();
    let flag = |key: &str| v[key].as_bool().unwrap_or_default();
    let named = |key: &str| -> Vec<pb::NamedSchema> {
        v[key]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, s)| pb::NamedSchema {
                name: name.clone(),
                value: Some(schema(s)),
            })
            .collect()
    };
    let additional = match &v["additionalProperties"] {
        Value::Bool(b) => Some(pb::additional_properties_item::Oneof::Boolean(*b)),
        s @ Value::Object(_) => Some(pb::additional_properties_item::Oneof::Schema(Box::new(
            schema(s),
        ))),
        _ => None,
    };
    let items = match &v["items"] {
        Value::Array(list) => list.iter().map(schema).collect(),
        s @ Value::Object(_) => vec![schema(s)],
        _ => Vec::new(),
    };
    let types = strings(&v["type"]);
    pb::Schema {
        r#ref: text(v, "$ref"),
        format: text(v, "format"),
        title: text(v, "title"),
        description: text(v, "description"),
        default: v.get("default").map(any),
        multiple_of: num("multipleOf"),
        maximum: num("maximum"),
        exclusive_maximum: flag("exclusiveMaximum"),
        minimum: num("minimum"),
        exclusive_minimum: flag("exclusiveMinimum"),
        max_length: int("maxLength"),
        min_length: int("minLength"),
        pattern: text(v, "pattern"),
        max_items: int("maxItems"),
        min_items: int("minItems"),
        unique_items: flag("uniqueItems"),
        max_properties: int("maxProperties"),
        min_properties: int("minProperties"),
        required: strings(&v["required"]),
        r#enum: v["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .map(any)
            .collect(),
        additional_properties: additional
            .map(|oneof| Box::new(pb::AdditionalPropertiesItem { oneof: Some(oneof) })),
        r#type: (!types.is_empty()).then_some(pb::TypeItem { value: types }),
        items: (!items.is_empty()).then_some(pb::ItemsItem { schema: items }),
        properties: v["properties"].is_object().then(|| pb::Properties {
            additional_properties: named("properties"),
        }),
        read_only: flag("readOnly"),
        example: v.get("example").map(any),
        vendor_extension: extensions(v),
    }
}

fn path_item(v: &Value) -> pb::PathItem {
    let op = |verb: &str| v.get(verb).map(operation);
    pb::PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        patch: op("patch"),
    }
}

fn operation(v: &Value) -> pb::Operation {
    use pb::non_body_parameter::Oneof as NonBody;
    use pb::parameter::Oneof as Param;
    let parameters = v["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let param = if p["in"] == "body" {
                Param::BodyParameter(Box::new(pb::BodyParameter {
                    name: text(p, "name"),
                    r#in: text(p, "in"),
                    required: p["required"].as_bool().unwrap_or_default(),
                    schema: p.get("schema").map(schema),
                }))
            } else {
                Param::NonBodyParameter(pb::NonBodyParameter {
                    oneof: Some(NonBody::QueryParameterSubSchema(
                        pb::QueryParameterSubSchema {
                            r#in: text(p, "in"),
                            name: text(p, "name"),
                            r#type: text(p, "type"),
                            unique_items: p["uniqueItems"].as_bool().unwrap_or_default(),
                        },
                    )),
                })
            };
            pb::ParametersItem {
                oneof: Some(pb::parameters_item::Oneof::Parameter(pb::Parameter {
                    oneof: Some(param),
                })),
            }
        })
        .collect();
    let responses: BTreeMap<&String, &Value> =
        v["responses"].as_object().into_iter().flatten().collect();
    pb::Operation {
        operation_id: text(v, "operationId"),
        produces: strings(&v["produces"]),
        consumes: strings(&v["consumes"]),
        parameters,
        responses: Some(pb::Responses {
            response_code: responses
                .into_iter()
                .map(|(code, r)| pb::NamedResponseValue {
                    name: code.clone(),
                    value: Some(pb::ResponseValue {
                        oneof: Some(pb::response_value::Oneof::Response(pb::Response {
                            description: text(r, "description"),
                            schema: r.get("schema").map(|s| pb::SchemaItem {
                                oneof: Some(pb::schema_item::Oneof::Schema(Box::new(schema(s)))),
                            }),
                        })),
                    }),
                })
                .collect(),
        }),
        vendor_extension: extensions(v),
    }
}

/// The subset of gnostic's `openapi/v2/OpenAPIv2.proto` testenv writes.
mod pb;

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(registry: &Registry) -> pb::Document {
        pb::Document::decode(encode(&document(registry, 27)).as_slice()).unwrap()
    }

    fn definition<'d>(doc: &'d pb::Document, name: &str) -> &'d pb::Schema {
        let defs = &doc.definitions.as_ref().unwrap().additional_properties;
        defs.iter()
            .find(|d| d.name == name)
            .and_then(|d| d.value.as_ref())
            .unwrap_or_else(|| panic!("no definition {name}"))
    }

    fn property<'s>(schema: &'s pb::Schema, name: &str) -> &'s pb::Schema {
        let props = &schema.properties.as_ref().unwrap().additional_properties;
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.as_ref())
            .unwrap_or_else(|| panic!("no property {name}"))
    }

    fn extension(schema: &[pb::NamedAny], name: &str) -> Option<Value> {
        schema
            .iter()
            .find(|e| e.name == name)
            .map(|e| serde_json::from_str(&e.value.as_ref().unwrap().yaml).unwrap())
    }

    #[test]
    fn patch_operations_take_field_validation_and_name_their_kind() {
        let doc = decoded(&Registry::default());
        let paths = &doc.paths.as_ref().unwrap().path;
        let item = paths
            .iter()
            .find(|p| p.name == "/api/v1/namespaces/{namespace}/configmaps/{name}")
            .and_then(|p| p.value.as_ref())
            .unwrap();
        let patch = item.patch.as_ref().unwrap();
        assert_eq!(
            extension(&patch.vendor_extension, "x-kubernetes-group-version-kind"),
            Some(json!({"group": "", "version": "v1", "kind": "ConfigMap"}))
        );
        let query: Vec<&str> = patch
            .parameters
            .iter()
            .filter_map(|p| match &p.oneof {
                Some(pb::parameters_item::Oneof::Parameter(pb::Parameter {
                    oneof: Some(pb::parameter::Oneof::NonBodyParameter(n)),
                })) => n.oneof.as_ref().map(
                    |pb::non_body_parameter::Oneof::QueryParameterSubSchema(q)| q.name.as_str(),
                ),
                _ => None,
            })
            .collect();
        assert!(query.contains(&"fieldValidation"), "{query:?}");
        // Cluster-scoped kinds have no namespace segment.
        assert!(paths.iter().any(|p| p.name == "/api/v1/namespaces/{name}"));
        assert!(
            paths
                .iter()
                .any(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments")
        );
    }

    #[test]
    fn builtin_definitions_carry_kinds_and_list_merge_rules() {
        let doc = decoded(&Registry::default());
        let cm = definition(&doc, "io.k8s.api.core.v1.ConfigMap");
        assert_eq!(
            extension(&cm.vendor_extension, "x-kubernetes-group-version-kind"),
            Some(json!([{"group": "", "version": "v1", "kind": "ConfigMap"}]))
        );
        assert_eq!(
            property(cm, "metadata").r#ref,
            format!("#/definitions/{OBJECT_META}")
        );
        let data = property(cm, "data");
        assert_eq!(data.r#type.as_ref().unwrap().value, ["object"]);
        assert!(data.additional_properties.is_some());

        let merge = |s: &pb::Schema| {
            (
                extension(&s.vendor_extension, "x-kubernetes-patch-strategy"),
                extension(&s.vendor_extension, "x-kubernetes-patch-merge-key"),
            )
        };
        let pod_spec = definition(&doc, "io.k8s.api.core.v1.PodSpec");
        assert_eq!(
            merge(property(pod_spec, "containers")),
            (Some(json!("merge")), Some(json!("name")))
        );
        assert_eq!(merge(property(pod_spec, "tolerations")), (None, None));
        let container = definition(&doc, "io.k8s.api.core.v1.Container");
        assert_eq!(
            merge(property(container, "ports")),
            (Some(json!("merge")), Some(json!("containerPort")))
        );
        assert_eq!(merge(property(container, "args")), (None, None));
        let containers = property(pod_spec, "containers");
        assert_eq!(
            containers.items.as_ref().unwrap().schema[0].r#ref,
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        let meta = definition(&doc, OBJECT_META);
        assert_eq!(
            merge(property(meta, "finalizers")),
            (Some(json!("merge")), None)
        );
        assert_eq!(
            merge(property(meta, "ownerReferences")),
            (Some(json!("merge")), Some(json!("uid")))
        );
        // Every reference names a definition that is there (kubectl parses
        // all of them and gives up on the whole document otherwise).
        let names: Vec<&str> = doc
            .definitions
            .as_ref()
            .unwrap()
            .additional_properties
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        let text = serde_json::to_string(&document(&Registry::default(), 27)).unwrap();
        for r in text.split("\"$ref\":\"#/definitions/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(names.contains(&name), "dangling reference {name}");
        }
    }

    #[test]
    fn custom_resources_get_their_crd_schema() {
        let crd = json!({"spec": {
            "group": "tenancy.example.org", "scope": "Cluster",
            "names": {"kind": "Tenant", "plural": "tenants"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "nullable": true, "properties": {
                        "size": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                        "loose": {"type": "array", "x-kubernetes-preserve-unknown-fields": true}
                    }}
                }
            }}}]
        }});
        let registry = Registry::default();
        registry.set_crd(
            "tenancy.example.org",
            "tenants",
            crate::resources::from_crd(&crd),
        );
        let json_doc = document(&registry, 28);
        let def = &json_doc["definitions"]["org.example.tenancy.v1.Tenant"];
        assert_eq!(
            def["properties"]["metadata"]["$ref"],
            format!("#/definitions/{OBJECT_META}")
        );
        assert_eq!(def["properties"]["kind"]["type"], "string");
        let spec = &def["properties"]["spec"];
        assert!(spec.get("nullable").is_none());
        assert!(spec["properties"]["size"].get("anyOf").is_none());
        assert_eq!(
            spec["properties"]["size"]["x-kubernetes-int-or-string"],
            true
        );
        assert_eq!(spec["properties"]["tags"]["items"]["type"], "string");
        assert!(spec["properties"]["loose"].get("type").is_none());
        let patch = &json_doc["paths"]["/apis/tenancy.example.org/v1/tenants/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Tenant");
        let consumes = patch["consumes"].to_string();
        assert!(
            consumes.contains("merge-patch") && !consumes.contains("strategic"),
            "{consumes}"
        );
        let doc = decoded(&registry);
        let tenant = definition(&doc, "org.example.tenancy.v1.Tenant");
        assert_eq!(
            extension(&tenant.vendor_extension, "x-kubernetes-group-version-kind"),
            Some(json!([{"group": "tenancy.example.org", "version": "v1", "kind": "Tenant"}]))
        );
    }

    #[test]
    fn the_kept_protobuf_follows_the_served_kinds() {
        let registry = Registry::default();
        let before = protobuf(&registry, 27);
        assert_eq!(before, encode(&document(&registry, 27)));
        assert_eq!(protobuf(&registry, 27), before);
        assert_ne!(protobuf(&registry, 28), before);
        let crd = json!({"spec": {
            "group": "x.example", "scope": "Namespaced",
            "names": {"kind": "Thing", "plural": "things"},
            "versions": [{"name": "v1", "served": true, "storage": true}]
        }});
        registry.set_crd("x.example", "things", crate::resources::from_crd(&crd));
        let after = pb::Document::decode(protobuf(&registry, 27)).unwrap();
        assert!(
            after
                .definitions
                .unwrap()
                .additional_properties
                .iter()
                .any(|d| d.name == "example.x.v1.Thing")
        );
    }

    #[test]
    fn protobuf_only_when_asked() {
        assert!(wants_protobuf(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
        assert!(wants_protobuf(
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        ));
        assert!(!wants_protobuf("application/json"));
        assert!(!wants_protobuf("*/*"));
    }
}
