//! The one write path: server-side apply under [`FIELD_MANAGER`] with
//! `force`, preceded by a read so that nothing is sent when the live object
//! already carries every field we set (the server would skip a no-op apply
//! anyway; we avoid even the request). Plus deletion of children we no
//! longer want.
//!
//! Contract: [`Applier::apply`] never removes fields other managers set
//! (status, defaults, the token controller's data); [`Applier::delete`]
//! deletes only the object it is named, and treats "already gone" as done.

use std::fmt::Debug;
use std::sync::Arc;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy,
};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::names::{FIELD_MANAGER, FIELD_MANAGER_HOOKS};

/// Applies objects for one operator process.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    metrics: Arc<Metrics>,
}

/// `Kind ns/name` or `Kind name`, for messages.
pub fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// A dynamic Api for `K`'s resource (one code path for both scopes).
fn api_for<K>(client: Client, namespace: Option<&str>) -> (Api<DynamicObject>, ApiResource)
where
    K: Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api = match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    (api, ar)
}

fn typed<K: DeserializeOwned>(obj: DynamicObject, what: &str) -> Result<K> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|source| Error::Serialize {
            what: what.into(),
            source,
        })
}

impl Applier {
    /// An applier writing through `client`, counting writes in `metrics`.
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self { client, metrics }
    }

    /// The client it writes through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Makes the live object carry `desired`'s fields; returns the live object.
    pub async fn apply<K>(&self, desired: &K) -> Result<K>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        let ns = desired.namespace();
        let (_, ar) = api_for::<K>(self.client.clone(), ns.as_deref());
        let what = describe(&ar.kind, ns.as_deref(), &desired.name_any());
        let value = serde_json::to_value(desired).map_err(|source| Error::Serialize {
            what: what.clone(),
            source,
        })?;
        let dynamic: DynamicObject =
            serde_json::from_value(value).map_err(|source| Error::Serialize {
                what: what.clone(),
                source,
            })?;
        let live = self.apply_dynamic(&dynamic, &ar).await?;
        typed(live, &what)
    }

    /// [`Applier::apply`] for a dynamic object (OpenShift Routes).
    pub async fn apply_dynamic(
        &self,
        desired: &DynamicObject,
        ar: &ApiResource,
    ) -> Result<DynamicObject> {
        self.apply_as(desired, ar, &PatchParams::apply(FIELD_MANAGER).force())
            .await
    }

    /// What a PostCreateHook writes: under its own field manager and
    /// without `force`, so a field another manager (the operator) owns is a
    /// conflict, never taken over.
    pub async fn apply_hook_object(
        &self,
        desired: &DynamicObject,
        ar: &ApiResource,
    ) -> Result<DynamicObject> {
        self.apply_as(desired, ar, &PatchParams::apply(FIELD_MANAGER_HOOKS))
            .await
    }

    async fn apply_as(
        &self,
        desired: &DynamicObject,
        ar: &ApiResource,
        params: &PatchParams,
    ) -> Result<DynamicObject> {
        let name = desired.name_any();
        let ns = desired.namespace();
        let what = describe(&ar.kind, ns.as_deref(), &name);
        let api: Api<DynamicObject> = match ns.as_deref() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        };
        let value = serde_json::to_value(desired).map_err(|source| Error::Serialize {
            what: what.clone(),
            source,
        })?;
        if let Some(live) = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::api(format!("reading {what}"), e))?
        {
            let live_value = serde_json::to_value(&live).map_err(|source| Error::Serialize {
                what: what.clone(),
                source,
            })?;
            if covers(&live_value, &value) {
                return Ok(live);
            }
        }
        self.metrics.write(&ar.kind);
        api.patch(&name, params, &Patch::Apply(&value))
            .await
            .map_err(|e| Error::api(format!("applying {what}"), e))
    }

    /// Reads an object; `None` when it does not exist.
    pub async fn get<K>(&self, namespace: Option<&str>, name: &str) -> Result<Option<K>>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let (api, ar) = api_for::<K>(self.client.clone(), namespace);
        let what = describe(&ar.kind, namespace, name);
        match api
            .get_opt(name)
            .await
            .map_err(|e| Error::api(format!("reading {what}"), e))?
        {
            Some(obj) => typed(obj, &what).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes an object (background propagation); done also when it did
    /// not exist.
    pub async fn delete<K>(&self, namespace: Option<&str>, name: &str) -> Result<()>
    where
        K: Resource<DynamicType = ()>,
    {
        let (api, ar) = api_for::<K>(self.client.clone(), namespace);
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {
                self.metrics.write(&ar.kind);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::api(
                format!("deleting {}", describe(&ar.kind, namespace, name)),
                e,
            )),
        }
    }

    /// Deletes every object of kind `K` in `namespace` carrying `selector`
    /// whose name is not in `keep` (children of a type or an exposure mode
    /// the control plane no longer uses). Never touches unlabelled objects.
    pub async fn prune<K>(&self, namespace: &str, selector: &str, keep: &[String]) -> Result<()>
    where
        K: Resource<DynamicType = ()>,
    {
        let (api, ar) = api_for::<K>(self.client.clone(), Some(namespace));
        let list = api
            .list_metadata(&kube::api::ListParams::default().labels(selector))
            .await
            .map_err(|e| Error::api(format!("listing {} in {namespace}", ar.kind), e))?;
        for obj in list.items {
            let name = obj.name_any();
            if !keep.contains(&name) {
                self.delete::<K>(Some(namespace), &name).await?;
            }
        }
        Ok(())
    }
}

/// Whether `live` carries every field of `desired` with the same value.
/// Lists must have the same length (a list we set is ours entirely); an
/// empty list or map we set matches an absent one (servers drop them).
pub fn covers(live: &Value, desired: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => covers(lv, dv),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| covers(lv, dv))
        }
        (d, Value::Null) => is_empty(d),
        (d, l) => d == l,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn live_with_extra_fields_covers_desired() {
        let desired = json!({"spec": {"replicas": 1, "template": {"containers": [{"name": "a"}]}}});
        let live = json!({"spec": {"replicas": 1, "paused": false, "template": {"containers": [{"name": "a", "terminationMessagePath": "/dev"}]}}, "status": {}});
        assert!(covers(&live, &desired));
    }

    #[test]
    fn a_changed_or_missing_field_is_drift() {
        let desired = json!({"spec": {"replicas": 1, "args": ["a", "b"]}});
        assert!(!covers(
            &json!({"spec": {"replicas": 2, "args": ["a", "b"]}}),
            &desired
        ));
        assert!(!covers(
            &json!({"spec": {"replicas": 1, "args": ["a"]}}),
            &desired
        ));
        assert!(!covers(&json!({"spec": {"args": ["a", "b"]}}), &desired));
    }

    #[test]
    fn empty_collections_match_absent_ones() {
        let desired = json!({"spec": {"env": [], "emptyDir": {}}});
        assert!(covers(&json!({"spec": {"emptyDir": {}}}), &desired));
    }
}
