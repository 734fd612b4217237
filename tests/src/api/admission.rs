//! What every write passes through before it is stored: the body's type
//! and target namespace checked; defaulting, pruning and validation (the
//! schema of a custom resource, built-in rules otherwise, structural checks
//! of a CRD); and `settle`, which keeps server-owned metadata, honours the
//! status subresource, moves `generation` and finishes deletions.

use serde_json::{Value, json};

use super::policy::Admission;
use super::{
    Api, Target, has_generation, meta_mut, name_of, normalize_metadata, same_object, spec_part,
};
use crate::apply;
use crate::defaults;
use crate::immutable;
use crate::merge_keys::MergeKeys;
use crate::meta;
use crate::resources::ResourceType;
use crate::schema;
use crate::status::ApiError;
use crate::store::Change;

impl Api {
    /// Checks the namespace a namespaced write goes to exists and is live.
    pub(super) fn check_namespace(&self, t: &Target, creating: bool) -> Result<(), ApiError> {
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
    pub(super) fn check_type(&self, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
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
    pub(super) fn admit(
        &self,
        rt: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
        strict: bool,
    ) -> Result<(), ApiError> {
        let name = name_of(obj).unwrap_or_default().to_string();
        if let Some(old) = old {
            immutable::carry_allocated(&rt.group, &rt.plural, obj, old);
        }
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

    /// Turns a proposed new state into what is stored: keeps what clients
    /// may not change, honours the status subresource, moves generation,
    /// and finishes a deletion when the last finalizer goes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn settle(
        &self,
        rt: &ResourceType,
        old: &Value,
        mut new: Value,
        subresource: Option<&str>,
        adm: &Admission<'_>,
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
            self.enforce(rt, &new, Some(old), adm)?;
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

/// `FieldError::message()` starts with the field; causes carry it apart.
fn strip_field(message: &str, field: &str) -> String {
    message
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(message)
        .to_string()
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
