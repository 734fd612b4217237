//! DELETE of one object and of a collection: UID and resourceVersion
//! preconditions, the propagation policy (its finalizer for Foreground and
//! Orphan), graceful deletion while finalizers remain, and the objects of a
//! CRD removed with it.

use serde_json::{Value, json};

use super::{
    Api, Params, Target, finish, meta_mut, name_of, result_object, same_object, with_type,
};
use crate::meta;
use crate::status::ApiError;
use crate::store::Change;

impl Api {
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
