//! The controllers every cluster runs inside kube-controller-manager, played
//! here: namespace lifecycle (the `default` ServiceAccount and
//! `kube-root-ca.crt` in each new namespace; emptying a terminating one),
//! the garbage collector (ownerReferences, background / foreground /
//! orphan), and the token controller for ServiceAccount token Secrets.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{Api, Params, Target, Writer};
use crate::auth::{Claims, TokenSigner};
use crate::resources::ResourceType;
use crate::store::{Event, EventType};

/// Identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjRef {
    resource: String,
    namespace: String,
    name: String,
}

fn obj_ref(resource: &str, obj: &Value) -> ObjRef {
    ObjRef {
        resource: resource.to_string(),
        namespace: obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        name: obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(String::from))
        .collect()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(String::from))
        .collect()
}

fn deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Runs every controller until the returned task is aborted.
pub fn spawn(
    api: Arc<Api>,
    signer: Arc<TokenSigner>,
    ca_pem: String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = api.store.subscribe();
        let mut c = Controllers {
            api,
            signer,
            ca_pem,
            alive: HashMap::new(),
            dependents: HashMap::new(),
            terminating: HashSet::new(),
        };
        c.resync();
        loop {
            match events.recv().await {
                Ok(e) => c.on_event(&e),
                Err(RecvError::Lagged(_)) => c.resync(),
                Err(RecvError::Closed) => return,
            }
            // Coalesce a burst before the periodic sweep of terminating
            // namespaces and foreground deletions.
            while let Ok(e) = events.try_recv() {
                c.on_event(&e);
            }
            c.sweep();
        }
    })
}

struct Controllers {
    api: Arc<Api>,
    signer: Arc<TokenSigner>,
    ca_pem: String,
    /// uid → object, for every live object.
    alive: HashMap<String, ObjRef>,
    /// owner uid → objects naming it in ownerReferences.
    dependents: HashMap<String, HashSet<ObjRef>>,
    /// uids of objects with a deletionTimestamp (the only ones a sweep visits).
    terminating: HashSet<String>,
}

impl Controllers {
    fn system() -> Writer {
        Writer::system("kube-controller-manager")
    }

    fn rt_of(&self, resource: &str) -> Option<ResourceType> {
        let (group, plural) = resource.split_once('/')?;
        self.api.registry.find_any_version(group, plural)
    }

    /// A JSON merge patch by the system user; its result is ignored, as
    /// each caller did before.
    fn merge_patch(&self, rt: ResourceType, namespace: String, name: String, patch: &Value) {
        let target = Target {
            rt,
            namespace,
            name: Some(name),
            subresource: None,
        };
        let _ = self.api.patch(
            &target,
            patch.to_string().as_bytes(),
            "application/merge-patch+json",
            &Params::default(),
            &Self::system(),
        );
    }

    /// Rebuilds the indexes from the store (start, or after falling behind).
    fn resync(&mut self) {
        self.alive.clear();
        self.dependents.clear();
        self.terminating.clear();
        for resource in self.api.store.resources() {
            let (items, _) = self.api.store.list(&resource, None, None);
            for obj in items {
                self.index(&resource, &obj);
                if resource == "/namespaces" {
                    self.namespace_added(&obj);
                }
                if resource == "/secrets" {
                    self.fill_token_secret(&obj);
                }
            }
        }
        self.collect_orphans();
        self.sweep();
    }

    fn index(&mut self, resource: &str, obj: &Value) {
        let r = obj_ref(resource, obj);
        self.alive.insert(uid(obj), r.clone());
        if deleting(obj) {
            self.terminating.insert(uid(obj));
        }
        for owner in owner_uids(obj) {
            self.dependents.entry(owner).or_default().insert(r.clone());
        }
    }

    fn unindex(&mut self, resource: &str, obj: &Value) {
        let r = obj_ref(resource, obj);
        self.alive.remove(&uid(obj));
        self.terminating.remove(&uid(obj));
        for owner in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(&r);
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
    }

    fn on_event(&mut self, e: &Event) {
        if let Some(prev) = &e.previous {
            self.unindex(&e.resource, prev);
        }
        match e.kind {
            EventType::Deleted => {
                self.unindex(&e.resource, &e.object);
                self.owner_gone(&uid(&e.object));
            }
            EventType::Added | EventType::Modified => {
                self.index(&e.resource, &e.object);
                if e.resource == "/namespaces" && e.kind == EventType::Added {
                    self.namespace_added(&e.object);
                }
                if e.resource == "/secrets" {
                    self.fill_token_secret(&e.object);
                }
                // A dependent created for an owner that no longer exists.
                let owners = owner_uids(&e.object);
                if e.kind == EventType::Added
                    && !owners.is_empty()
                    && owners.iter().all(|o| !self.alive.contains_key(o))
                {
                    self.delete(&obj_ref(&e.resource, &e.object), "Background");
                }
            }
        }
    }

    fn delete(&self, r: &ObjRef, policy: &str) {
        let Some(rt) = self.rt_of(&r.resource) else {
            return;
        };
        let target = Target {
            rt,
            namespace: r.namespace.clone(),
            name: Some(r.name.clone()),
            subresource: None,
        };
        if let Err(e) = self.api.delete(
            &target,
            &json!({"propagationPolicy": policy}),
            &Params::default(),
        ) && e.code != 404
        {
            tracing::warn!(object = %r.name, error = %e.message, "garbage collection delete failed");
        }
    }

    /// Background GC: dependents whose owners are all gone are deleted.
    fn owner_gone(&mut self, owner: &str) {
        let Some(deps) = self.dependents.remove(owner) else {
            return;
        };
        for dep in deps {
            let Some(obj) = self.api.store.get(&dep.resource, &dep.namespace, &dep.name) else {
                continue;
            };
            if owner_uids(&obj).iter().all(|o| !self.alive.contains_key(o)) {
                self.delete(&dep, "Background");
            }
        }
    }

    fn collect_orphans(&mut self) {
        let orphans: Vec<ObjRef> = self
            .dependents
            .iter()
            .filter(|(owner, _)| !self.alive.contains_key(*owner))
            .flat_map(|(_, deps)| deps.iter().cloned())
            .collect();
        for dep in orphans {
            if let Some(obj) = self.api.store.get(&dep.resource, &dep.namespace, &dep.name)
                && owner_uids(&obj).iter().all(|o| !self.alive.contains_key(o))
            {
                self.delete(&dep, "Background");
            }
        }
    }

    /// Progress on objects being deleted with `foregroundDeletion` or
    /// `orphan`, and on terminating namespaces.
    fn sweep(&mut self) {
        let pending: Vec<(String, ObjRef)> = self
            .terminating
            .iter()
            .filter_map(|u| self.alive.get(u).map(|r| (u.clone(), r.clone())))
            .collect();
        for (owner_uid, r) in pending {
            let Some(obj) = self.api.store.get(&r.resource, &r.namespace, &r.name) else {
                continue;
            };
            if !deleting(&obj) {
                continue;
            }
            let fins = finalizers(&obj);
            if fins.iter().any(|f| f == "orphan") {
                for dep in self.dependents.get(&owner_uid).cloned().unwrap_or_default() {
                    self.drop_owner_ref(&dep, &owner_uid);
                }
                self.remove_finalizer(&r, "orphan");
            } else if fins.iter().any(|f| f == "foregroundDeletion") {
                let deps = self.dependents.get(&owner_uid).cloned().unwrap_or_default();
                if deps.is_empty() {
                    self.remove_finalizer(&r, "foregroundDeletion");
                } else {
                    for dep in deps {
                        if let Some(d) =
                            self.api.store.get(&dep.resource, &dep.namespace, &dep.name)
                            && !deleting(&d)
                        {
                            self.delete(&dep, "Foreground");
                        }
                    }
                }
            }
            if r.resource == "/namespaces" {
                self.finalize_namespace(&r.name, &obj);
            }
        }
    }

    fn drop_owner_ref(&self, dep: &ObjRef, owner_uid: &str) {
        let Some(rt) = self.rt_of(&dep.resource) else {
            return;
        };
        let Some(obj) = self.api.store.get(&dep.resource, &dep.namespace, &dep.name) else {
            return;
        };
        let refs: Vec<Value> = obj["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["uid"].as_str() != Some(owner_uid))
            .cloned()
            .collect();
        let patch = json!({"metadata": {"ownerReferences": if refs.is_empty() { Value::Null } else { Value::Array(refs) }}});
        self.merge_patch(rt, dep.namespace.clone(), dep.name.clone(), &patch);
    }

    fn remove_finalizer(&self, r: &ObjRef, finalizer: &str) {
        let Some(rt) = self.rt_of(&r.resource) else {
            return;
        };
        let Some(obj) = self.api.store.get(&r.resource, &r.namespace, &r.name) else {
            return;
        };
        let rest: Vec<String> = finalizers(&obj)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": obj["metadata"]["resourceVersion"]}});
        self.merge_patch(rt, r.namespace.clone(), r.name.clone(), &patch);
    }

    /// Deletes everything in a terminating namespace; once it is empty,
    /// drops the `kubernetes` finalizer so the namespace goes.
    fn finalize_namespace(&mut self, ns: &str, obj: &Value) {
        let mut remaining = 0;
        for resource in self.api.store.resources() {
            if resource == "/namespaces" {
                continue;
            }
            let (items, _) = self.api.store.list(&resource, Some(ns), None);
            for item in items {
                remaining += 1;
                if !deleting(&item) {
                    self.delete(&obj_ref(&resource, &item), "Background");
                }
            }
        }
        let spec_fins = obj["spec"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if remaining == 0 && !spec_fins.is_empty() {
            let Some(rt) = self.rt_of("/namespaces") else {
                return;
            };
            let mut updated = obj.clone();
            updated["spec"]["finalizers"] = json!([]);
            let target = Target {
                rt,
                namespace: String::new(),
                name: Some(ns.to_string()),
                subresource: None,
            };
            let _ = self
                .api
                .update(&target, updated, &Params::default(), &Self::system());
        }
        if remaining == 0
            && spec_fins.is_empty()
            && finalizers(obj).is_empty()
            && let Some(rt) = self.rt_of("/namespaces")
        {
            let _ = self
                .api
                .store
                .mutate::<()>(&rt.storage_key(), "", ns, |_, _| {
                    Ok(crate::store::Change::Delete)
                });
        }
    }

    /// Every namespace gets the `default` ServiceAccount and the cluster CA.
    fn namespace_added(&self, ns: &Value) {
        if deleting(ns) {
            return;
        }
        let name = ns["metadata"]["name"].as_str().unwrap_or_default();
        let create = |resource: &str, obj: Value| {
            let Some(rt) = self.rt_of(resource) else {
                return;
            };
            let n = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if self.api.store.get(resource, name, &n).is_some() {
                return;
            }
            let target = Target {
                rt,
                namespace: name.to_string(),
                name: None,
                subresource: None,
            };
            let _ = self
                .api
                .create(&target, obj, &Params::default(), &Self::system());
        };
        create(
            "/serviceaccounts",
            json!({"metadata": {"name": "default", "namespace": name}}),
        );
        create(
            "/configmaps",
            json!({"metadata": {"name": "kube-root-ca.crt", "namespace": name, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": self.ca_pem}}),
        );
    }

    /// `kubernetes.io/service-account-token` Secrets get a token, the CA
    /// and the namespace, as the token controller writes them.
    fn fill_token_secret(&self, secret: &Value) {
        if secret["type"] != "kubernetes.io/service-account-token" || deleting(secret) {
            return;
        }
        if secret["data"]["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
        {
            return;
        }
        let ns = secret["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        let Some(sa_name) =
            secret["metadata"]["annotations"]["kubernetes.io/service-account.name"].as_str()
        else {
            return;
        };
        let Some(sa) = self.api.store.get("/serviceaccounts", ns, sa_name) else {
            return;
        };
        let token = self.signer.mint(&Claims {
            namespace: ns.into(),
            service_account: sa_name.into(),
            service_account_uid: uid(&sa),
            expires: None,
            secret: Some(name.into()),
        });
        let Some(rt) = self.rt_of("/secrets") else {
            return;
        };
        let patch = json!({
            "metadata": {"annotations": {"kubernetes.io/service-account.uid": uid(&sa)}},
            "data": {
                "token": STANDARD.encode(token),
                "ca.crt": STANDARD.encode(&self.ca_pem),
                "namespace": STANDARD.encode(ns),
            }
        });
        self.merge_patch(rt, ns.into(), name.into(), &patch);
    }
}
