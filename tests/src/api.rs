//! The verbs on objects — create, get, list, update, patch, delete — with the
//! semantics of kube-apiserver: server-owned metadata, optimistic
//! concurrency, the status subresource, generation, finalizers, schema
//! validation of custom resources, managedFields, and no write (no new
//! resourceVersion, no event) when nothing changed.

mod admission;
mod delete;
mod policy;
mod read;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::merge_keys::{BuiltinMergeKeys, MergeKeys, SchemaMergeKeys};
use crate::rbac::UserInfo;
use crate::resources::{self, Registry, ResourceType};
use crate::status::ApiError;
use crate::store::{Change, Store};

/// Largest request body accepted, as kube-apiserver's limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Where a request points.
#[derive(Debug, Clone)]
pub struct Target {
    pub rt: ResourceType,
    /// Empty for cluster-scoped kinds and all-namespace lists.
    pub namespace: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Query parameters.
#[derive(Debug, Clone, Default)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn parse(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

/// One page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub metadata: Value,
}

/// Who is writing: the field manager (for managedFields) and, for requests from
/// clients, the user the RBAC escalation checks answer for (None for testenv's own
/// controllers, which write as the API server's loopback identity would).
#[derive(Debug, Clone, Default)]
pub struct Writer {
    /// `fieldManager`, or a name derived from the User-Agent.
    pub manager: String,
    pub user: Option<UserInfo>,
    /// Admission warnings for the response's `Warning` headers.
    pub warnings: Warnings,
}

impl Writer {
    /// A write by one of testenv's own components under `manager`.
    pub fn system(manager: impl Into<String>) -> Self {
        Writer {
            manager: manager.into(),
            ..Writer::default()
        }
    }
}

/// Warnings collected while a request is admitted, shared with the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    pub fn push(&self, warning: String) {
        if let Ok(mut list) = self.0.lock() {
            list.push(warning);
        }
    }

    /// The warnings so far, emptying the list.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// The API state shared by every request.
pub struct Api {
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    next_ip: AtomicU32,
}

fn storage_key_of(rt: &ResourceType) -> String {
    rt.storage_key()
}

/// Whether Kubernetes tracks `metadata.generation` for the kind.
fn has_generation(rt: &ResourceType) -> bool {
    !(rt.group.is_empty()
        && matches!(
            rt.plural.as_str(),
            "configmaps" | "secrets" | "endpoints" | "events" | "serviceaccounts" | "namespaces"
        ))
}

/// The object minus what never counts as a change of "spec" (metadata and
/// status), to decide whether `generation` moves.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

/// Equality for no-op detection: resourceVersion aside, same bytes.
fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

fn merge_keys_for(rt: &ResourceType) -> Box<dyn MergeKeys> {
    match rt.schema() {
        Some(schema) => Box::new(SchemaMergeKeys::new(schema.clone())),
        None => Box::new(BuiltinMergeKeys::for_kind(&rt.group, &rt.kind)),
    }
}

/// A body as JSON (JSON is YAML too, so YAML content types parse both).
pub fn parse_body(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    if yaml {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
        serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized or malformed: {e}"
            ))
        })
    }
}

fn name_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["name"].as_str().filter(|s| !s.is_empty())
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    // Just made sure it is an object.
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was set to an object above"),
    }
}

impl Api {
    pub fn new(store: Arc<Store>, registry: Arc<Registry>) -> Self {
        let api = Self {
            store,
            registry,
            next_ip: AtomicU32::new(10),
        };
        api.resume();
        api
    }

    /// After loading state: serve stored CRDs again and continue allocating
    /// cluster IPs after the highest one in use.
    fn resume(&self) {
        let (crds, _) =
            self.store
                .list("apiextensions.k8s.io/customresourcedefinitions", None, None);
        for crd in crds {
            self.register_crd(&crd);
        }
        let (services, _) = self.store.list("/services", None, None);
        let highest = services
            .iter()
            .filter_map(|s| s["spec"]["clusterIP"].as_str())
            .filter_map(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
            .map(|ip| u32::from(ip) - u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)))
            .max()
            .unwrap_or(9);
        self.next_ip.store(highest + 1, Ordering::SeqCst);
    }

    fn allocate_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::SeqCst);
        std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) + n).to_string()
    }

    fn register_crd(&self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        let types = if crd["metadata"]["deletionTimestamp"].is_null() {
            resources::from_crd(crd)
        } else {
            Vec::new()
        };
        self.registry.set_crd(group, plural, types);
    }

    fn after_write(&self, rt: &ResourceType, obj: &Option<Arc<Value>>, dry: bool) {
        if dry || rt.group != "apiextensions.k8s.io" {
            return;
        }
        if let Some(crd) = obj {
            self.register_crd(crd);
        }
    }
}

/// Drops empty metadata maps and lists, as Go's `omitempty` does when the
/// server re-serialises an object (clients test for their absence).
fn normalize_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "labels",
            "annotations",
            "finalizers",
            "ownerReferences",
            "managedFields",
        ] {
            let empty = match meta.get(key) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(key);
            }
        }
    }
}

/// Records what a dry run would have stored; real runs pass the change on.
fn finish(
    change: Change,
    dry: bool,
    old: &Arc<Value>,
    outcome: &mut Option<Value>,
) -> Result<Change, ApiError> {
    if !dry {
        return Ok(change);
    }
    *outcome = match change {
        Change::Put(v) => Some(v),
        Change::Delete | Change::Unchanged => Some((**old).clone()),
    };
    Ok(Change::Unchanged)
}

fn result_object(stored: Option<Arc<Value>>, dry: Option<Value>) -> Value {
    dry.or_else(|| stored.map(|o| (*o).clone()))
        .unwrap_or(Value::Null)
}

/// The object with `apiVersion` and `kind` set from the path's type.
pub fn with_type(rt: &ResourceType, obj: &Value) -> Value {
    let mut o = obj.clone();
    if o.is_object() {
        o["apiVersion"] = json!(rt.api_version());
        o["kind"] = json!(rt.kind);
    }
    o
}
