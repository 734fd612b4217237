//! Endpoints for Services, binding for PersistentVolumeClaims, and the
//! Node objects: the rest of what a cluster shows of itself through the API.

use serde_json::{Map, Value, json};

use super::events::{Note, controller};
use super::util::{self, items, text};
use super::{CONTROLLER_MANAGER, Ctx, KUBELET, NodeInfo};

/// What of a pod matters to Endpoints (to skip recomputing on other changes).
pub(super) fn endpoint_view(pod: &Value) -> Value {
    json!([
        pod["metadata"]["labels"],
        pod["status"]["podIP"],
        util::pod_ready(pod),
        util::terminal(pod),
        util::deleting(pod),
        pod["spec"]["nodeName"],
        pod["spec"]["hostname"],
        pod["spec"]["subdomain"],
        items(pod, "/spec/containers")
            .iter()
            .map(|c| c["ports"].clone())
            .collect::<Vec<_>>(),
    ])
}

/// A Service port's target on one pod: a number, or a named container port.
fn resolve_target(service_port: &Value, pod: &Value) -> Option<u64> {
    let target = match &service_port["targetPort"] {
        Value::Null => &service_port["port"],
        t => t,
    };
    if let Some(n) = target.as_u64() {
        return Some(n);
    }
    let name = target.as_str()?;
    if let Ok(n) = name.parse::<u64>() {
        return Some(n);
    }
    let protocol = service_port["protocol"].as_str().unwrap_or("TCP");
    items(pod, "/spec/containers")
        .iter()
        .flat_map(|c| items(c, "/ports"))
        .find(|p| p["name"] == name && p["protocol"].as_str().unwrap_or("TCP") == protocol)
        .and_then(|p| p["containerPort"].as_u64())
}

/// `subsets` of a Service's Endpoints from the pods of its namespace: pods
/// with an IP that match the selector, ready ones under `addresses`, others
/// under `notReadyAddresses`, grouped by their resolved ports as
/// Kubernetes repacks them.
pub(super) fn endpoint_subsets(
    service: &Value,
    pods: &[impl std::borrow::Borrow<Value>],
) -> Vec<Value> {
    let Some(selector) = service["spec"]["selector"]
        .as_object()
        .filter(|s| !s.is_empty())
    else {
        return Vec::new();
    };
    let svc_name = util::name_of(service);
    let publish_not_ready = service["spec"]["publishNotReadyAddresses"].as_bool() == Some(true);
    let service_ports = items(service, "/spec/ports");
    // Ports (as JSON text, for grouping) → (ports, ready, not ready).
    type Group = (Vec<Value>, Vec<Value>, Vec<Value>);
    let mut groups: std::collections::BTreeMap<String, Group> = std::collections::BTreeMap::new();
    for pod in pods {
        let pod: &Value = pod.borrow();
        let labels = &pod["metadata"]["labels"];
        let ip = text(pod, "/status/podIP");
        if ip.is_empty()
            || util::terminal(pod)
            || util::deleting(pod)
            || !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        {
            continue;
        }
        let mut ports = Vec::new();
        for sp in service_ports {
            let Some(port) = resolve_target(sp, pod) else {
                continue;
            };
            let mut p = json!({"port": port, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
            if let Some(name) = sp["name"].as_str().filter(|n| !n.is_empty()) {
                p["name"] = json!(name);
            }
            if let Some(ap) = sp.get("appProtocol") {
                p["appProtocol"] = ap.clone();
            }
            ports.push(p);
        }
        if ports.is_empty() && !service_ports.is_empty() {
            continue;
        }
        ports.sort_by_key(|p| p.to_string());
        let mut address = json!({
            "ip": ip,
            "targetRef": {
                "kind": "Pod",
                "namespace": util::ns_of(pod),
                "name": util::name_of(pod),
                "uid": util::uid_of(pod),
            },
        });
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            address["nodeName"] = json!(node);
        }
        if let Some(h) = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())
            && pod["spec"]["subdomain"] == svc_name
        {
            address["hostname"] = json!(h);
        }
        let group = groups
            .entry(Value::Array(ports.clone()).to_string())
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish_not_ready || util::pod_ready(pod) {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            let by_ip = |a: &Value, b: &Value| {
                let ip = |v: &Value| text(v, "/ip").parse::<std::net::Ipv4Addr>().ok();
                ip(a)
                    .cmp(&ip(b))
                    .then_with(|| text(a, "/ip").cmp(text(b, "/ip")))
            };
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut s = Map::new();
            if !ready.is_empty() {
                s.insert("addresses".into(), Value::Array(ready));
            }
            if !not_ready.is_empty() {
                s.insert("notReadyAddresses".into(), Value::Array(not_ready));
            }
            if !ports.is_empty() {
                s.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(s)
        })
        .collect()
}

/// The endpoints controller for one Service.
pub(super) fn sync_endpoints(ctx: &Ctx, ns: &str, name: &str) {
    let store = &ctx.api.store;
    let existing = store.get("/endpoints", ns, name);
    let Some(service) = store.get("/services", ns, name) else {
        // The Service is gone: so are its Endpoints.
        if existing.is_some() {
            ctx.delete("", "endpoints", ns, name);
        }
        return;
    };
    // Without a selector (or for ExternalName) Endpoints belong to the user.
    if service["spec"]["selector"]
        .as_object()
        .is_none_or(|s| s.is_empty())
        || service["spec"]["type"] == "ExternalName"
        || util::deleting(&service)
    {
        return;
    }
    let (pods, _) = store.list("/pods", Some(ns), None);
    let subsets = endpoint_subsets(&service, &pods);
    let mut labels = util::labels(&service, "/metadata/labels");
    if service["spec"]["clusterIP"] == "None" {
        labels.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    let mut desired = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns},
    });
    if !labels.is_empty() {
        desired["metadata"]["labels"] = Value::Object(labels.clone());
    }
    if !subsets.is_empty() {
        desired["subsets"] = Value::Array(subsets.clone());
    }
    let Some(current) = existing else {
        if let Err(e) = ctx.create("", "endpoints", ns, desired, CONTROLLER_MANAGER) {
            tracing::debug!(service = name, error = %e.message, "creating endpoints failed");
        }
        return;
    };
    let current_labels = util::labels(&current, "/metadata/labels");
    let current_subsets = items(&current, "/subsets");
    if current_labels == labels && current_subsets == subsets.as_slice() {
        return;
    }
    let mut updated = (*current).clone();
    if labels.is_empty() {
        if let Some(m) = updated["metadata"].as_object_mut() {
            m.remove("labels");
        }
    } else {
        updated["metadata"]["labels"] = Value::Object(labels);
    }
    match updated.as_object_mut() {
        Some(o) if subsets.is_empty() => {
            o.remove("subsets");
        }
        _ => updated["subsets"] = Value::Array(subsets),
    }
    let result = ctx
        .target("", "endpoints", ns, Some(name), None)
        .and_then(|t| {
            ctx.api.update(
                &t,
                updated,
                &crate::api::Params::default(),
                &crate::api::Writer::system(CONTROLLER_MANAGER),
            )
        });
    if let Err(e) = result {
        // A conflict means a newer event brings us back here.
        tracing::debug!(service = name, error = %e.message, "updating endpoints failed");
    }
}

/// The PersistentVolumeClaim binder and a provisioner in one: a claim is
/// Bound to a volume named `pvc-<uid>` with the requested capacity (and a
/// PersistentVolume object when the server serves that kind).
pub(super) fn sync_pvc(ctx: &Ctx, ns: &str, name: &str) {
    let Some(pvc) = ctx.api.store.get("/persistentvolumeclaims", ns, name) else {
        return;
    };
    if util::deleting(&pvc) || text(&pvc, "/status/phase") == "Bound" {
        return;
    }
    let volume = match text(&pvc, "/spec/volumeName") {
        "" => format!("pvc-{}", util::uid_of(&pvc)),
        v => v.to_string(),
    };
    let capacity = pvc["spec"]["resources"]["requests"]["storage"].clone();
    let access_modes = match &pvc["spec"]["accessModes"] {
        Value::Array(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!(["ReadWriteOnce"]),
    };
    if ctx
        .api
        .registry
        .find_any_version("", "persistentvolumes")
        .is_some()
        && ctx
            .api
            .store
            .get("/persistentvolumes", "", &volume)
            .is_none()
    {
        let mut spec = json!({
            "capacity": {"storage": capacity},
            "accessModes": access_modes,
            "persistentVolumeReclaimPolicy": "Delete",
            "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
            "hostPath": {"path": format!("/var/lib/testenv/volumes/{volume}"), "type": ""},
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": ns, "name": name, "uid": util::uid_of(&pvc),
            },
        });
        if let Some(class) = pvc["spec"]["storageClassName"].as_str() {
            spec["storageClassName"] = json!(class);
        }
        let body = json!({"metadata": {"name": volume, "annotations": {"pv.kubernetes.io/provisioned-by": "testenv"}}, "spec": spec});
        if let Err(e) = ctx.create("", "persistentvolumes", "", body, CONTROLLER_MANAGER) {
            tracing::debug!(volume, error = %e.message, "creating a volume failed");
        }
    }
    let patch = json!({
        "metadata": {
            "resourceVersion": pvc["metadata"]["resourceVersion"],
            "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
            },
        },
        "spec": {"volumeName": volume},
    });
    let bound = match ctx.merge_patch(
        "",
        "persistentvolumeclaims",
        ns,
        name,
        &patch,
        CONTROLLER_MANAGER,
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(claim = name, error = %e.message, "binding a claim failed");
            return;
        }
    };
    let mut status = json!({"phase": "Bound", "accessModes": access_modes});
    if !capacity.is_null() {
        status["capacity"] = json!({"storage": capacity});
    }
    if let Err(e) = ctx.put_status(
        "",
        "persistentvolumeclaims",
        &bound,
        status,
        CONTROLLER_MANAGER,
    ) {
        tracing::debug!(claim = name, error = %e.message, "claim status write failed");
        return;
    }
    ctx.recorder.record(
        ctx,
        controller("persistentvolume-controller"),
        Note {
            obj: &bound,
            field_path: None,
            warning: false,
            reason: "ProvisioningSucceeded",
            message: format!("Successfully provisioned volume {volume}"),
        },
    );
}

/// A node's status as its kubelet posts it; times stay as they were while
/// nothing changes (no heartbeats: they would be writes for nothing).
pub(super) fn node_status(
    node: &NodeInfo,
    kubelet_version: &str,
    previous: &Value,
    now: &str,
) -> Value {
    let prev = &previous["conditions"];
    let times = ["lastHeartbeatTime"];
    let cond = |kind: &str, status: &str, reason: &str, message: &str| {
        util::condition(prev, kind, status, Some(reason), Some(message), now, &times)
    };
    let resources = json!({
        "cpu": "8",
        "ephemeral-storage": "100Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "32Gi",
        "pods": "110",
    });
    let id = util::digest(&node.name);
    json!({
        "addresses": [
            {"type": "InternalIP", "address": node.ip.to_string()},
            {"type": "Hostname", "address": node.name},
        ],
        "allocatable": resources,
        "capacity": resources,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64",
            "bootID": format!("{}-{}-{}-{}-{}", &id[0..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]),
            "containerRuntimeVersion": "containerd://1.7.18",
            "kernelVersion": "6.1.0-testenv",
            "kubeProxyVersion": kubelet_version,
            "kubeletVersion": kubelet_version,
            "machineID": &id[32..64],
            "operatingSystem": "linux",
            "osImage": "testenv",
            "systemUUID": format!("{}-{}-{}-{}-{}", &id[32..40], &id[40..44], &id[44..48], &id[48..52], &id[52..64]),
        },
    })
}

/// Registers the nodes (again, if someone deleted one) and their status.
pub(super) fn ensure_nodes(ctx: &Ctx) {
    for node in &ctx.nodes {
        let current = match ctx.api.store.get("/nodes", "", &node.name) {
            Some(n) => n,
            None => {
                let body = json!({
                    "metadata": {"name": node.name, "labels": node.labels},
                    "spec": {"providerID": format!("testenv://{}", node.name)},
                });
                match ctx.create("", "nodes", "", body, KUBELET) {
                    Ok(n) => {
                        ctx.recorder.record(
                            ctx,
                            super::events::Source {
                                component: "kubelet",
                                host: Some(&node.name),
                            },
                            Note {
                                obj: &n,
                                field_path: None,
                                warning: false,
                                reason: "Starting",
                                message: "Starting kubelet.".into(),
                            },
                        );
                        std::sync::Arc::new(n)
                    }
                    Err(e) => {
                        tracing::warn!(node = node.name, error = %e.message, "registering a node failed");
                        continue;
                    }
                }
            }
        };
        if util::deleting(&current) {
            continue;
        }
        let status = node_status(
            node,
            &ctx.cfg.kubelet_version,
            &current["status"],
            &crate::meta::now(),
        );
        if let Err(e) = ctx.put_status("", "nodes", &current, status, KUBELET) {
            tracing::debug!(node = node.name, error = %e.message, "node status write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, labels: Value) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "d", "uid": format!("uid-{name}"), "labels": labels},
            "spec": {"nodeName": "n0", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })
    }

    #[test]
    fn endpoints_split_ready_and_resolve_named_ports() {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "h", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "m", "port": 9000, "targetPort": 9090, "protocol": "TCP"}
            ]}
        });
        let pods = vec![
            pod("b", "10.244.0.10", true, json!({"app": "web"})),
            pod("a", "10.244.0.9", true, json!({"app": "web"})),
            pod("c", "10.244.0.11", false, json!({"app": "web"})),
            pod("other", "10.244.0.12", true, json!({"app": "db"})),
            pod("noip", "", true, json!({"app": "web"})),
        ];
        let subsets = endpoint_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        let ips: Vec<&str> = items(s, "/addresses")
            .iter()
            .map(|a| a["ip"].as_str().unwrap())
            .collect();
        assert_eq!(ips, ["10.244.0.9", "10.244.0.10"]);
        assert_eq!(s["addresses"][0]["targetRef"]["name"], "a");
        assert_eq!(s["addresses"][0]["nodeName"], "n0");
        assert_eq!(s["notReadyAddresses"][0]["ip"], "10.244.0.11");
        assert_eq!(
            s["ports"],
            json!([{"name": "h", "port": 8080, "protocol": "TCP"}, {"name": "m", "port": 9090, "protocol": "TCP"}])
        );
        // A pod without the named port only serves the numeric one.
        let mut odd = pod("z", "10.244.0.20", true, json!({"app": "web"}));
        odd["spec"]["containers"][0]["ports"] = json!([]);
        let subsets = endpoint_subsets(&svc, &[odd]);
        assert_eq!(
            subsets[0]["ports"],
            json!([{"name": "m", "port": 9090, "protocol": "TCP"}])
        );
        // No selector: nothing computed.
        let manual = json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 1}]}});
        assert!(endpoint_subsets(&manual, &pods).is_empty());
    }

    #[test]
    fn node_status_is_ready_and_stable() {
        let node = NodeInfo {
            name: "testenv-node-0".into(),
            ip: std::net::Ipv4Addr::new(172, 18, 0, 2),
            labels: json!({}),
        };
        let s = node_status(&node, "v1.31.0-testenv", &Value::Null, "t1");
        assert_eq!(s["nodeInfo"]["kubeletVersion"], "v1.31.0-testenv");
        assert_eq!(s["conditions"][3]["type"], "Ready");
        assert_eq!(s["conditions"][3]["status"], "True");
        assert_eq!(s["addresses"][0]["address"], "172.18.0.2");
        assert_eq!(node_status(&node, "v1.31.0-testenv", &s, "t2"), s);
    }
}
