//! The verbs on objects — create, get, list, update, patch, delete — with the
//! semantics of kube-apiserver: server-owned metadata, optimistic
//! concurrency, the status subresource, generation, finalizers, schema
//! validation of custom resources, managedFields, and no write (no new
//! resourceVersion, no event) when nothing changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::apply::{self, ApplyError, ApplyRequest};
use crate::defaults;
use crate::merge_keys::{BuiltinMergeKeys, MergeKeys, SchemaMergeKeys};
use crate::meta;
use crate::patch;
use crate::resources::{self, Registry, ResourceType};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};
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

/// Who is writing (for managedFields).
#[derive(Debug, Clone, Default)]
pub struct Writer {
    /// `fieldManager`, or a name derived from the User-Agent.
    pub manager: String,
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

    pub fn get(&self, t: &Target) -> Result<Value, ApiError> {
        let name = t.name.as_deref().unwrap_or_default();
        self.store
            .get(&storage_key_of(&t.rt), &t.namespace, name)
            .map(|o| with_type(&t.rt, &o))
            .ok_or_else(|| ApiError::not_found(&t.rt, name))
    }

    /// A list, honouring selectors and `limit`/`continue`.
    pub fn list(&self, t: &Target, p: &Params) -> Result<Value, ApiError> {
        let page = self.list_page(t, p)?;
        let items: Vec<Value> = page.items.iter().map(|o| with_type(&t.rt, o)).collect();
        Ok(json!({
            "kind": t.rt.list_kind(),
            "apiVersion": t.rt.api_version(),
            "metadata": page.metadata,
            "items": items,
        }))
    }

    /// The list as JSON bytes, written straight from the stored objects
    /// (no copy of each object, which matters for lists of thousands).
    pub fn list_json(&self, t: &Target, p: &Params) -> Result<Vec<u8>, ApiError> {
        let page = self.list_page(t, p)?;
        let mut out = Vec::with_capacity(page.items.len() * 1024 + 256);
        out.extend_from_slice(
            format!(
                "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                json!(t.rt.list_kind()),
                json!(t.rt.api_version()),
                page.metadata
            )
            .as_bytes(),
        );
        let av = t.rt.api_version();
        for (i, obj) in page.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let typed = obj["apiVersion"].as_str() == Some(av.as_str())
                && obj["kind"].as_str() == Some(t.rt.kind.as_str());
            let written = if typed {
                serde_json::to_writer(&mut out, &**obj)
            } else {
                serde_json::to_writer(&mut out, &with_type(&t.rt, obj))
            };
            written.map_err(|e| ApiError::internal(e.to_string()))?;
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }

    /// The objects of one list page and the list's metadata.
    pub fn list_page(&self, t: &Target, p: &Params) -> Result<ListPage, ApiError> {
        let labels = LabelSelector::parse(p.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(p.get("fieldSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let limit = p
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0);
        let (start, token_rv) = match p.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (key, rv) = decode_continue(token)?;
                if rv < self.store.history_floor() {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (Some(key), Some(rv))
            }
            None => (None, None),
        };
        let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
        let (all, current_rv) = self.store.list(&storage_key_of(&t.rt), ns, start.as_ref());
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        for obj in all {
            if !(labels.matches(&obj) && fields.matches(&obj)) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            next = Some((
                obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
            items.push(obj);
        }
        let rv = token_rv.unwrap_or(current_rv);
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if remaining > 0
            && let Some(key) = next
        {
            metadata["continue"] = json!(encode_continue(&key, rv));
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(ListPage { items, metadata })
    }

    /// Checks the namespace a namespaced write goes to exists and is live.
    fn check_namespace(&self, t: &Target, creating: bool) -> Result<(), ApiError> {
        if !t.rt.namespaced {
            return Ok(());
        }
        let ns = self
            .store
            .get("/namespaces", "", &t.namespace)
            .ok_or_else(|| ApiError::namespace_not_found(&t.namespace))?;
        if creating && !ns["metadata"]["deletionTimestamp"].is_null() {
            return Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                t.rt.qualified_plural(),
                t.name.as_deref().unwrap_or_default(),
                t.namespace
            ))
            .with_details(json!({"name": t.name, "kind": t.rt.plural})));
        }
        Ok(())
    }

    /// Checks `apiVersion`/`kind` of a body against the path and fills them.
    fn check_type(&self, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the object provided is unrecognized or malformed: expected a JSON object",
            ));
        }
        if let Some(kind) = obj["kind"].as_str().filter(|k| !k.is_empty())
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        if let Some(av) = obj["apiVersion"].as_str().filter(|a| !a.is_empty())
            && av != rt.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        obj["kind"] = json!(rt.kind);
        obj["apiVersion"] = json!(rt.api_version());
        Ok(())
    }

    /// Defaults, pruning and validation for a new state of an object.
    fn admit(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
        strict: bool,
    ) -> Result<(), ApiError> {
        let name = name_of(obj).unwrap_or_default().to_string();
        let mut causes: Vec<(String, String, String)> = Vec::new();
        if let Some(schema) = rt.schema() {
            let before = strict.then(|| obj.clone());
            schema::prune(schema, obj);
            if let Some(before) = before {
                let mut unknown = Vec::new();
                removed_paths(&before, obj, "", &mut unknown);
                if !unknown.is_empty() {
                    let list = unknown
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {list}",
                        kind = rt.kind,
                        version = rt.version
                    )));
                }
            }
            schema::apply_defaults(schema, obj);
            for e in schema::validate(schema, obj, old) {
                causes.push((
                    e.reason().to_string(),
                    strip_field(&e.message(), &e.field),
                    e.field.clone(),
                ));
            }
        } else {
            defaults::apply(rt, obj, &mut || self.allocate_ip());
            causes.extend(defaults::validate(rt, obj));
        }
        if rt.group == "apiextensions.k8s.io" {
            let schema_errors: Vec<String> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.pointer("/schema/openAPIV3Schema"))
                .flat_map(|s| {
                    let mut errs = schema::check_structural(s);
                    errs.extend(schema::compile_rules(s));
                    errs
                })
                .collect();
            for e in schema_errors {
                causes.push((
                    "FieldValueInvalid".into(),
                    format!("Invalid value: \"object\": {e}"),
                    "spec.validation.openAPIV3Schema".into(),
                ));
            }
            accept_crd(obj);
        }
        if let Some(msg) = meta::check_name(&name, meta::name_rule(&rt.group, &rt.plural)) {
            causes.insert(0, ("FieldValueInvalid".into(), msg, "metadata.name".into()));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(rt, &name, causes))
        }
    }

    /// POST: create an object.
    pub fn create(
        &self,
        t: &Target,
        body: Value,
        p: &Params,
        writer: &Writer,
    ) -> Result<(u16, Value), ApiError> {
        let rt = &t.rt;
        let mut obj = body;
        self.check_type(rt, &mut obj)?;
        let meta = meta_mut(&mut obj);
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != t.namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(t.namespace));
                }
            }
        } else {
            meta.remove("namespace");
        }
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(prefix) = meta.get("generateName").and_then(Value::as_str)
        {
            let name = format!("{prefix}{}", meta::name_suffix());
            meta.insert("name".into(), json!(name));
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for server_owned in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(server_owned);
        }
        meta.insert("uid".into(), json!(meta::new_uid()));
        meta.insert("creationTimestamp".into(), json!(meta::now()));
        if has_generation(rt) {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        meta.remove("managedFields");
        let t = Target {
            name: Some(name.clone()),
            ..t.clone()
        };
        self.check_namespace(&t, true)?;
        if rt.status_subresource
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        self.admit(rt, &mut obj, None, strict(p))?;
        normalize_metadata(&mut obj);
        let keys = merge_keys_for(rt);
        apply::record_update(
            None,
            &mut obj,
            &writer.manager,
            None,
            &meta::now(),
            keys.as_ref(),
        );
        let dry = p.dry_run();
        let committed = self
            .store
            .mutate(&rt.storage_key(), &t.namespace, &name, |cur, _| {
                if cur.is_some() {
                    return Err(ApiError::already_exists(rt, &name));
                }
                Ok(if dry {
                    Change::Unchanged
                } else {
                    Change::Put(obj.clone())
                })
            })?;
        let stored = committed.object.map(|o| (*o).clone()).unwrap_or(obj);
        if rt.group == "apiextensions.k8s.io" && !dry {
            self.register_crd(&stored);
        }
        Ok((201, with_type(rt, &stored)))
    }

    /// Turns a proposed new state into what is stored: keeps what clients
    /// may not change, honours the status subresource, moves generation,
    /// and finishes a deletion when the last finalizer goes.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        rt: &ResourceType,
        old: &Value,
        mut new: Value,
        subresource: Option<&str>,
        manager: Option<&str>,
        keys: &dyn MergeKeys,
        strict: bool,
    ) -> Result<Change, ApiError> {
        let name = name_of(old).unwrap_or_default().to_string();
        self.check_type(rt, &mut new)?;
        if let Some(new_name) = name_of(&new)
            && new_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({new_name}) does not match the name on the URL ({name})"
            )));
        }
        if subresource == Some("status") {
            // Status writes change only status.
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else if rt.status_subresource {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        {
            let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
            let meta = meta_mut(&mut new);
            for owned in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
                "generation",
                "resourceVersion",
            ] {
                match old_meta.get(owned) {
                    Some(v) => meta.insert(owned.into(), v.clone()),
                    None => meta.remove(owned),
                };
            }
            if meta.get("managedFields").is_none()
                && let Some(mf) = old_meta.get("managedFields")
            {
                meta.insert("managedFields".into(), mf.clone());
            }
        }
        if subresource != Some("status") {
            self.admit(rt, &mut new, Some(old), strict)?;
        } else if let Some(schema) = rt.schema() {
            schema::prune(schema, &mut new);
            let errors = schema::validate(schema, &new, Some(old));
            if !errors.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    &name,
                    errors
                        .iter()
                        .map(|e| {
                            (
                                e.reason().to_string(),
                                strip_field(&e.message(), &e.field),
                                e.field.clone(),
                            )
                        })
                        .collect(),
                ));
            }
        }
        if has_generation(rt) && spec_part(&new) != spec_part(old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if let Some(manager) = manager {
            apply::record_update(
                Some(old),
                &mut new,
                manager,
                subresource,
                &meta::now(),
                keys,
            );
        }
        let deleting = !old["metadata"]["deletionTimestamp"].is_null();
        let namespace_kind = rt.group.is_empty() && rt.plural == "namespaces";
        let no_finalizers = new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
            && (!namespace_kind
                || new["spec"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty));
        if deleting && no_finalizers {
            return Ok(Change::Delete);
        }
        normalize_metadata(&mut new);
        if same_object(old, &new) {
            return Ok(Change::Unchanged);
        }
        Ok(Change::Put(new))
    }

    /// PUT: replace an object (or its status).
    pub fn update(
        &self,
        t: &Target,
        body: Value,
        p: &Params,
        writer: &Writer,
    ) -> Result<(u16, Value), ApiError> {
        let keys = merge_keys_for(&t.rt);
        let precondition = body["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty());
        self.replace_with(t, p, writer, keys.as_ref(), precondition, |_| {
            Ok(body.clone())
        })
    }

    /// PATCH in any of the four patch types.
    pub fn patch(
        &self,
        t: &Target,
        body: &[u8],
        content_type: &str,
        p: &Params,
        writer: &Writer,
    ) -> Result<(u16, Value), ApiError> {
        let rt = &t.rt;
        let keys = merge_keys_for(rt);
        let base = content_type.split(';').next().unwrap_or_default().trim();
        if base == "application/apply-patch+yaml" {
            return self.server_side_apply(t, body, p, keys.as_ref());
        }
        let doc = parse_body(body, false)?;
        if base == "application/strategic-merge-patch+json" && rt.is_crd() {
            return Err(ApiError::unsupported_media_type(
                "strategic merge patch is not supported for custom resources",
            ));
        }
        if !matches!(
            base,
            "application/merge-patch+json"
                | "application/json-patch+json"
                | "application/strategic-merge-patch+json"
        ) {
            return Err(ApiError::unsupported_media_type(content_type));
        }
        let precondition = doc["metadata"]["resourceVersion"].as_str();
        self.replace_with(t, p, writer, keys.as_ref(), precondition, |old| {
            let mut target = old.clone();
            let result = match base {
                "application/merge-patch+json" => {
                    patch::merge_patch(&mut target, &doc);
                    Ok(())
                }
                "application/json-patch+json" => patch::json_patch(&mut target, &doc),
                _ => patch::strategic_merge_patch(&mut target, &doc, keys.as_ref()),
            };
            result.map_err(|e| ApiError::new(e.http_code(), e.reason(), e.to_string()))?;
            Ok(target)
        })
    }

    /// The shared path of PUT and PATCH: propose the new object from the
    /// stored one, check the client's resourceVersion precondition, then
    /// settle it as any write (status subresource, generation, finalizers,
    /// no-op detection).
    fn replace_with(
        &self,
        t: &Target,
        p: &Params,
        writer: &Writer,
        keys: &dyn MergeKeys,
        precondition: Option<&str>,
        propose: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<(u16, Value), ApiError> {
        let rt = &t.rt;
        let name = t.name.clone().unwrap_or_default();
        let dry = p.dry_run();
        let mut outcome = None;
        let committed = self
            .store
            .mutate(&rt.storage_key(), &t.namespace, &name, |cur, _| {
                let old = cur.ok_or_else(|| ApiError::not_found(rt, &name))?;
                let proposed = propose(old)?;
                if let Some(rv) = precondition
                    && Some(rv) != old["metadata"]["resourceVersion"].as_str()
                {
                    return Err(ApiError::stale(rt, &name));
                }
                let change = self.settle(
                    rt,
                    old,
                    proposed,
                    t.subresource.as_deref(),
                    Some(&writer.manager),
                    keys,
                    strict(p),
                )?;
                finish(change, dry, old, &mut outcome)
            })?;
        self.after_write(rt, &committed.object, dry);
        Ok((
            200,
            with_type(rt, &result_object(committed.object, outcome)),
        ))
    }

    fn server_side_apply(
        &self,
        t: &Target,
        body: &[u8],
        p: &Params,
        keys: &dyn MergeKeys,
    ) -> Result<(u16, Value), ApiError> {
        let rt = &t.rt;
        let name = t.name.clone().unwrap_or_default();
        let manager = p
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )
            })?
            .to_string();
        let mut applied = parse_body(body, true)?;
        self.check_type(rt, &mut applied)?;
        if let Some(n) = name_of(&applied)
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if rt.namespaced {
            applied["metadata"]["namespace"] = json!(t.namespace);
        }
        let force = p.flag("force");
        let sub = t.subresource.as_deref();
        if self
            .store
            .get(&rt.storage_key(), &t.namespace, &name)
            .is_none()
        {
            if sub.is_some() {
                return Err(ApiError::not_found(rt, &name));
            }
            // Apply to a missing object creates it, owned by the applier.
            let now = meta::now();
            let created = apply::apply(&ApplyRequest {
                live: None,
                applied: &applied,
                manager: &manager,
                force,
                subresource: None,
                now: &now,
                keys,
            })
            .map_err(|e| apply_error(rt, &name, e))?;
            let writer = Writer {
                manager: String::new(),
            };
            let mut body = created;
            if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                let mf = m.remove("managedFields");
                let (code, mut obj) = self.create_with_fields(t, body.clone(), p, &writer, mf)?;
                obj = with_type(rt, &obj);
                return Ok((code, obj));
            }
            return self.create(t, body, p, &writer);
        }
        let dry = p.dry_run();
        let mut outcome = None;
        let committed = self
            .store
            .mutate(&rt.storage_key(), &t.namespace, &name, |cur, _| {
                let old = cur.ok_or_else(|| ApiError::not_found(rt, &name))?;
                let mut live = (**old).clone();
                if sub.is_none()
                    && rt.status_subresource
                    && let Some(o) = live.as_object_mut()
                {
                    o.remove("status");
                }
                if sub.is_none()
                    && rt.status_subresource
                    && let Some(o) = applied.as_object_mut()
                {
                    o.remove("status");
                }
                let now = meta::now();
                let mut merged = apply::apply(&ApplyRequest {
                    live: Some(&live),
                    applied: &applied,
                    manager: &manager,
                    force,
                    subresource: sub,
                    now: &now,
                    keys,
                })
                .map_err(|e| apply_error(rt, &name, e))?;
                if sub.is_none()
                    && rt.status_subresource
                    && let Some(s) = old.get("status")
                {
                    merged["status"] = s.clone();
                }
                let change = self.settle(rt, old, merged, sub, None, keys, strict(p))?;
                finish(change, dry, old, &mut outcome)
            })?;
        self.after_write(rt, &committed.object, dry);
        Ok((
            200,
            with_type(rt, &result_object(committed.object, outcome)),
        ))
    }

    /// Create with managedFields already computed (apply-create).
    fn create_with_fields(
        &self,
        t: &Target,
        body: Value,
        p: &Params,
        writer: &Writer,
        managed_fields: Option<Value>,
    ) -> Result<(u16, Value), ApiError> {
        let (code, obj) =
            self.create(t, body, &Params(p.0.clone()).with("dryRun", "All"), writer)?;
        let mut obj = obj;
        if let Some(mf) = managed_fields {
            obj["metadata"]["managedFields"] = mf;
        }
        if p.dry_run() {
            return Ok((code, obj));
        }
        let rt = &t.rt;
        let name = name_of(&obj).unwrap_or_default().to_string();
        let committed = self
            .store
            .mutate(&rt.storage_key(), &t.namespace, &name, |cur, _| {
                if cur.is_some() {
                    return Err(ApiError::already_exists(rt, &name));
                }
                Ok(Change::Put(obj.clone()))
            })?;
        let stored = committed.object.map(|o| (*o).clone()).unwrap_or(obj);
        if rt.group == "apiextensions.k8s.io" {
            self.register_crd(&stored);
        }
        Ok((code, stored))
    }

    fn after_write(&self, rt: &ResourceType, obj: &Option<Arc<Value>>, dry: bool) {
        if dry || rt.group != "apiextensions.k8s.io" {
            return;
        }
        if let Some(crd) = obj {
            self.register_crd(crd);
        }
    }

    /// DELETE of one object, with preconditions and propagation policy.
    pub fn delete(
        &self,
        t: &Target,
        options: &Value,
        p: &Params,
    ) -> Result<(u16, Value), ApiError> {
        let rt = &t.rt;
        let name = t.name.clone().unwrap_or_default();
        let policy = options["propagationPolicy"]
            .as_str()
            .or(p.get("propagationPolicy"))
            .map(String::from)
            .or_else(|| match options["orphanDependents"].as_bool() {
                Some(true) => Some("Orphan".into()),
                _ => None,
            })
            .unwrap_or_else(|| "Background".into());
        if !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            )));
        }
        let dry = p.dry_run();
        let mut outcome = None;
        let committed = self.store.mutate(&rt.storage_key(), &t.namespace, &name, |cur, _| {
            let old = cur.ok_or_else(|| ApiError::not_found(rt, &name))?;
            let pre = &options["preconditions"];
            if let Some(uid) = pre["uid"].as_str()
                && Some(uid) != old["metadata"]["uid"].as_str()
            {
                return Err(ApiError::conflict(
                    rt,
                    &name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        old["metadata"]["uid"].as_str().unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = pre["resourceVersion"].as_str()
                && Some(rv) != old["metadata"]["resourceVersion"].as_str()
            {
                return Err(ApiError::conflict(
                    rt,
                    &name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        old["metadata"]["resourceVersion"].as_str().unwrap_or_default()
                    ),
                ));
            }
            let mut new = (**old).clone();
            let mut finalizers: Vec<Value> = new["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let extra = match policy.as_str() {
                "Foreground" => Some("foregroundDeletion"),
                "Orphan" => Some("orphan"),
                _ => None,
            };
            if let Some(f) = extra
                && !finalizers.iter().any(|x| x == f)
            {
                finalizers.push(json!(f));
            }
            let namespace_kind = rt.group.is_empty() && rt.plural == "namespaces";
            let graceful = !finalizers.is_empty() || namespace_kind;
            let change = if graceful {
                let meta = meta_mut(&mut new);
                if meta.get("deletionTimestamp").is_none_or(Value::is_null) {
                    meta.insert("deletionTimestamp".into(), json!(meta::now()));
                    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
                }
                if !finalizers.is_empty() {
                    meta.insert("finalizers".into(), Value::Array(finalizers));
                }
                if namespace_kind {
                    new["status"]["phase"] = json!("Terminating");
                }
                if same_object(old, &new) {
                    Change::Unchanged
                } else {
                    Change::Put(new)
                }
            } else {
                Change::Delete
            };
            finish(change, dry, old, &mut outcome)
        })?;
        let obj = result_object(committed.object.clone(), outcome);
        if !dry && rt.group == "apiextensions.k8s.io" {
            self.remove_crd(&obj);
        }
        Ok((200, with_type(rt, &obj)))
    }

    /// A CRD going away: stop serving it and delete its objects.
    fn remove_crd(&self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        self.registry.set_crd(group, plural, Vec::new());
        let key = format!("{group}/{plural}");
        let (objects, _) = self.store.list(&key, None, None);
        for obj in objects {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            let _ = self
                .store
                .mutate::<ApiError>(&key, ns, name, |_, _| Ok(Change::Delete));
        }
    }

    /// DELETE on a collection.
    pub fn delete_collection(
        &self,
        t: &Target,
        options: &Value,
        p: &Params,
    ) -> Result<(u16, Value), ApiError> {
        let list = self.list(t, p)?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let target = Target {
                namespace: item["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name: name_of(item).map(String::from),
                ..t.clone()
            };
            match self.delete(&target, options, p) {
                Ok((_, obj)) => deleted.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok((
            200,
            json!({
                "kind": t.rt.list_kind(),
                "apiVersion": t.rt.api_version(),
                "metadata": {"resourceVersion": self.store.current_rv().to_string()},
                "items": deleted,
            }),
        ))
    }
}

impl Params {
    fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }
}

/// Whether the client asked for unknown fields to be an error
/// (`fieldValidation=Strict`, what kubectl sends once the server says it
/// validates).
fn strict(p: &Params) -> bool {
    p.get("fieldValidation") == Some("Strict")
}

/// Paths (`spec.foo`) present in `before` and pruned from `after`.
fn removed_paths(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match a.get(k) {
                    None => out.push(path),
                    Some(av) => removed_paths(v, av, &path, out),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                removed_paths(bv, av, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
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

/// `FieldError::message()` starts with the field; causes carry it apart.
fn strip_field(message: &str, field: &str) -> String {
    message
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(message)
        .to_string()
}

fn apply_error(rt: &ResourceType, name: &str, e: ApplyError) -> ApiError {
    match &e {
        ApplyError::Conflict { .. } => {
            let causes: Vec<Value> = e
                .causes()
                .into_iter()
                .map(|(reason, message, field)| json!({"reason": reason, "message": message, "field": field}))
                .collect();
            let mut d = json!({"name": name, "kind": rt.plural, "causes": causes});
            if !rt.group.is_empty() {
                d["group"] = json!(rt.group);
            }
            ApiError::new(409, "Conflict", e.message()).with_details(d)
        }
        ApplyError::Invalid(msg) => ApiError::bad_request(msg.clone()),
    }
}

/// Fills a CRD's status as the apiextensions controller does once the
/// names are accepted and the resource is served.
fn accept_crd(crd: &mut Value) {
    let names = crd["spec"]["names"].clone();
    let mut accepted = names.clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!(
            "{}List",
            names["kind"].as_str().unwrap_or_default()
        ));
    }
    let now = meta::now();
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .map(|v| v["name"].clone())
        .collect();
    let previous = crd["status"]["conditions"].clone();
    let since = |t: &str| {
        previous
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
            .unwrap_or_else(|| now.clone())
    };
    crd["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since("Established")}
        ]
    });
    if let Some(names) = crd["spec"]["names"].as_object_mut()
        && names.get("listKind").is_none()
    {
        names.insert("listKind".into(), accepted["listKind"].clone());
    }
}

fn encode_continue(key: &(String, String), rv: u64) -> String {
    URL_SAFE_NO_PAD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "ns": key.0, "n": key.1}).to_string())
}

fn decode_continue(token: &str) -> Result<((String, String), u64), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    Ok((
        (
            v["ns"].as_str().unwrap_or_default().to_string(),
            v["n"].as_str().unwrap_or_default().to_string(),
        ),
        rv,
    ))
}
