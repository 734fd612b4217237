//! What kube-apiserver enforces on a write beyond validating the object itself:
//! immutable fields of built-in kinds (422), the RBAC escalation and bind checks on
//! roles and bindings (403), and Pod Security admission on pods (403) and on the pod
//! templates of workloads (warnings). Every write passes here after defaulting.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Api, Writer, name_of};
use crate::immutable;
use crate::podsecurity;
use crate::rbac::{self, RbacSource};
use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::Store;

/// What a write is checked with, read from the store before the write takes the
/// store's lock: the writer, the target namespace and, for RBAC writes by a client,
/// the RBAC objects that decide what the writer holds.
pub(super) struct Admission<'w> {
    pub(super) writer: &'w Writer,
    /// The name in the request's URL (none for a POST).
    request_name: String,
    namespace: Option<Arc<Value>>,
    rbac: Option<Snapshot>,
}

impl Api {
    /// Reads what [`Api::enforce`] needs for a write of `rt` into `namespace`.
    pub(super) fn admission<'w>(
        &self,
        rt: &ResourceType,
        namespace: &str,
        request_name: Option<&str>,
        writer: &'w Writer,
    ) -> Admission<'w> {
        let rbac = (writer.user.is_some() && rt.group == "rbac.authorization.k8s.io").then(|| {
            let ns = if rt.namespaced { namespace } else { "" };
            Snapshot::of(&*self.store, ns)
        });
        let namespace = (!namespace.is_empty())
            .then(|| self.store.get("/namespaces", "", namespace))
            .flatten();
        Admission {
            writer,
            request_name: request_name.unwrap_or_default().to_string(),
            namespace,
            rbac,
        }
    }

    /// Checks a proposed new state (`old` on update) against the rules above.
    pub(super) fn enforce(
        &self,
        rt: &ResourceType,
        obj: &Value,
        old: Option<&Value>,
        adm: &Admission<'_>,
    ) -> Result<(), ApiError> {
        let name = name_of(obj).unwrap_or_default().to_string();
        let namespace = obj["metadata"]["namespace"].as_str().unwrap_or_default();
        if let Some(old) = old
            && !rt.is_crd()
        {
            let causes = immutable::check(&rt.group, &rt.plural, obj, old);
            if !causes.is_empty() {
                return Err(ApiError::invalid(rt, &name, causes));
            }
        }
        if let (Some(user), Some(rbac)) = (&adm.writer.user, &adm.rbac) {
            let scope = if rt.namespaced { namespace } else { "" };
            rbac::escalation::check_write(
                user,
                &rt.plural,
                scope,
                &adm.request_name,
                obj,
                old,
                rbac,
            )
            .map_err(|msg| {
                ApiError::forbidden(msg)
                    .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
            })?;
        }
        if rt.is_crd() {
            return Ok(());
        }
        let Some((metadata, spec)) = podsecurity::pod_parts(&rt.group, &rt.plural, obj) else {
            return Ok(());
        };
        let is_pod = rt.group.is_empty() && rt.plural == "pods";
        if is_pod && old.is_some_and(|old| !podsecurity::significant_pod_update(obj, old)) {
            return Ok(());
        }
        let Some(ns) = &adm.namespace else {
            return Ok(());
        };
        let verdict = podsecurity::admit(&podsecurity::policy(ns), metadata, spec, is_pod);
        if let Some(reason) = verdict.forbidden {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: {reason}",
                rt.qualified_plural()
            ))
            .with_details(json!({"name": name, "kind": rt.plural})));
        }
        for warning in verdict.warnings {
            adm.writer.warnings.push(warning);
        }
        Ok(())
    }
}

/// The RBAC objects that matter to a write in one namespace ("" for cluster scope).
struct Snapshot {
    namespace: String,
    cluster_roles: Vec<Arc<Value>>,
    cluster_role_bindings: Vec<Arc<Value>>,
    roles: Vec<Arc<Value>>,
    role_bindings: Vec<Arc<Value>>,
}

impl Snapshot {
    fn of(src: &dyn RbacSource, namespace: &str) -> Self {
        let local = |f: &dyn Fn(&str) -> Vec<Arc<Value>>| match namespace {
            "" => Vec::new(),
            ns => f(ns),
        };
        Snapshot {
            namespace: namespace.into(),
            cluster_roles: src.cluster_roles(),
            cluster_role_bindings: src.cluster_role_bindings(),
            roles: local(&|ns| src.roles(ns)),
            role_bindings: local(&|ns| src.role_bindings(ns)),
        }
    }

    fn local(&self, namespace: &str, list: &[Arc<Value>]) -> Vec<Arc<Value>> {
        if namespace == self.namespace {
            list.to_vec()
        } else {
            Vec::new()
        }
    }
}

impl RbacSource for Snapshot {
    fn cluster_roles(&self) -> Vec<Arc<Value>> {
        self.cluster_roles.clone()
    }
    fn cluster_role_bindings(&self) -> Vec<Arc<Value>> {
        self.cluster_role_bindings.clone()
    }
    fn roles(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.local(namespace, &self.roles)
    }
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<Value>> {
        self.local(namespace, &self.role_bindings)
    }
}

/// The RBAC objects of the store, plus the bootstrap roles and bindings every
/// cluster starts with (kube-apiserver reconciles them into etcd at start). The
/// store's objects and the bootstrap ones (built once) are shared, never copied.
impl RbacSource for Store {
    fn cluster_roles(&self) -> Vec<Arc<Value>> {
        let (mut items, _) = self.list("rbac.authorization.k8s.io/clusterroles", None, None);
        items.extend_from_slice(rbac::shared_bootstrap_cluster_roles());
        items
    }
    fn cluster_role_bindings(&self) -> Vec<Arc<Value>> {
        let key = "rbac.authorization.k8s.io/clusterrolebindings";
        let (mut items, _) = self.list(key, None, None);
        items.extend_from_slice(rbac::shared_bootstrap_cluster_role_bindings());
        items
    }
    fn roles(&self, namespace: &str) -> Vec<Arc<Value>> {
        let (items, _) = self.list("rbac.authorization.k8s.io/roles", Some(namespace), None);
        items
    }
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<Value>> {
        let key = "rbac.authorization.k8s.io/rolebindings";
        let (items, _) = self.list(key, Some(namespace), None);
        items
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
