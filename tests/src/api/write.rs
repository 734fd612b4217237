//! The writing verbs: create (POST), update (PUT), the JSON merge, JSON and
//! strategic merge PATCH types, and server-side apply with its field-manager
//! conflicts. Each proposes a new state of the object; what may be stored
//! is [`super::admission`]'s to decide.

use serde_json::{Value, json};

use super::{
    Api, Params, Target, Writer, finish, has_generation, merge_keys_for, meta_mut, name_of,
    normalize_metadata, parse_body, result_object, with_type,
};
use crate::apply::{self, ApplyError, ApplyRequest};
use crate::merge_keys::MergeKeys;
use crate::meta;
use crate::patch;
use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::Change;

impl Api {
    /// POST: create an object.
    pub fn create(
        &self,
        t: &Target,
        body: Value,
        p: &Params,
        writer: &Writer,
    ) -> Result<(u16, Value), ApiError> {
        let rt = &t.rt;
        // A POST names no object; an apply that creates does, in its URL.
        let request_name = t.name.clone();
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
        let adm = self.admission(rt, &t.namespace, request_name.as_deref(), writer);
        self.enforce(rt, &obj, None, &adm)?;
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
            return self.server_side_apply(t, body, p, keys.as_ref(), writer);
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
        // Read before the store's lock is taken: the write's closure runs under it.
        let adm = self.admission(rt, &t.namespace, Some(&name), writer);
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
                    &adm,
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
        writer: &Writer,
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
            // The apply already recorded the applier's fields.
            let writer = Writer {
                manager: String::new(),
                ..writer.clone()
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
        let adm = self.admission(rt, &t.namespace, Some(&name), writer);
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
                let change = self.settle(rt, old, merged, sub, &adm, None, keys, strict(p))?;
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
