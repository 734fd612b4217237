//! The objects a fresh cluster starts with: the `default`, `kube-system`,
//! `kube-public` and `kube-node-lease` namespaces (their ServiceAccounts and
//! CA ConfigMaps follow from the namespace controller) and the `kubernetes`
//! Service.

use serde_json::json;

use crate::api::{Api, Params, Target, Writer};

/// Creates what is missing; idempotent, so it also runs after a restart.
pub fn ensure(api: &Api) {
    let writer = Writer::system("kube-apiserver");
    let Some(ns_type) = api.registry.find("", "v1", "namespaces") else {
        return;
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if api.store.get("/namespaces", "", ns).is_some() {
            continue;
        }
        let target = Target {
            rt: ns_type.clone(),
            namespace: String::new(),
            name: None,
            subresource: None,
        };
        if let Err(e) = api.create(
            &target,
            json!({"metadata": {"name": ns}}),
            &Params::default(),
            &writer,
        ) {
            tracing::warn!(namespace = ns, error = %e.message, "creating a bootstrap namespace failed");
        }
    }
    if let Some(svc) = api.registry.find("", "v1", "services")
        && api
            .store
            .get("/services", "default", "kubernetes")
            .is_none()
    {
        let target = Target {
            rt: svc,
            namespace: "default".into(),
            name: None,
            subresource: None,
        };
        let body = json!({
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
        });
        if let Err(e) = api.create(&target, body, &Params::default(), &writer) {
            tracing::warn!(error = %e.message, "creating the kubernetes Service failed");
        }
    }
}
