//! The simulated cluster's workloads, kwok-style: Nodes, the deployment /
//! statefulset / job / endpoints / PVC controllers and a kubelet, reacting only
//! to Kubernetes objects and writing through [`Api`]; what runs is up to the
//! [`ContainerRuntime`]. A pod annotated `testenv.kflex.kubestellar.org/fail:
//! "<message>"` exits 1 with that message after `job_duration` (Jobs fail).

mod deployments;
mod events;
mod jobs;
mod kubelet;
mod network;
mod pod_status;
mod statefulsets;
mod util;
mod volumes;
mod workloads;

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::api::{Api, Params, Target, Writer};
use crate::runtime::ContainerRuntime;
use crate::status::ApiError;
use crate::store::{Event, EventType};

pub use kubelet::FAIL_ANNOTATION;

/// How the simulated cluster behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Between a pod's volumes being ready and its containers starting.
    pub pod_start_delay: Duration,
    /// How long a Job's pod runs before it exits.
    pub job_duration: Duration,
    /// Nodes registered (`testenv-node-0`, ...).
    pub nodes: usize,
    /// `status.nodeInfo.kubeletVersion`; should match the server's `/version`.
    pub kubelet_version: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            pod_start_delay: Duration::from_millis(20),
            job_duration: Duration::from_millis(50),
            nodes: 1,
            kubelet_version: format!("v1.{}.0-testenv", crate::server::DEFAULT_MINOR),
        }
    }
}

/// Where pods' container ports really listen: `(pod IP, container port)`
/// to a socket address, filled from [`crate::runtime::Started::Running`]
/// and read by whatever routes Service / ingress traffic.
#[derive(Debug, Default)]
pub struct PortMap {
    inner: RwLock<HashMap<(Ipv4Addr, u16), SocketAddr>>,
}

impl PortMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, pod_ip: Ipv4Addr, port: u16, addr: SocketAddr) {
        self.write().insert((pod_ip, port), addr);
    }

    pub fn remove(&self, pod_ip: Ipv4Addr, port: u16) {
        self.write().remove(&(pod_ip, port));
    }

    /// Drops every port of a pod IP (the pod stopped).
    pub fn remove_ip(&self, pod_ip: Ipv4Addr) {
        self.write().retain(|(ip, _), _| *ip != pod_ip);
    }

    pub fn lookup(&self, pod_ip: Ipv4Addr, port: u16) -> Option<SocketAddr> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(pod_ip, port))
            .copied()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(Ipv4Addr, u16), SocketAddr>> {
        // A map of plain values cannot be left inconsistent by a panic.
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the simulation; it runs until the task is aborted (which also
/// stops every pod it started) or the store goes away.
pub fn spawn(
    api: Arc<Api>,
    config: SimConfig,
    runtime: Arc<dyn ContainerRuntime>,
    ports: Arc<PortMap>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Subscribe before the first full pass so nothing falls in between.
        let mut events = api.store.subscribe();
        let ctx = Arc::new(Ctx::new(api, config, runtime, ports));
        let mut sim = Sim {
            kubelet: kubelet::Kubelet::new(ctx.clone()),
            ctx,
            dirty: Dirty::default(),
        };
        sim.resync();
        sim.flush();
        loop {
            match events.recv().await {
                Ok(e) => sim.on_event(&e),
                Err(RecvError::Lagged(_)) => sim.resync(),
                Err(RecvError::Closed) => return,
            }
            // Coalesce a burst into one pass per object.
            loop {
                match events.try_recv() {
                    Ok(e) => sim.on_event(&e),
                    Err(TryRecvError::Lagged(_)) => sim.resync(),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            sim.flush();
        }
    })
}

/// `(namespace, name)`.
type Key = (String, String);

/// Objects whose controller must look at them again.
#[derive(Default)]
struct Dirty {
    nodes: bool,
    pvcs: BTreeSet<Key>,
    jobs: BTreeSet<Key>,
    deployments: BTreeSet<Key>,
    statefulsets: BTreeSet<Key>,
    services: BTreeSet<Key>,
}

struct Sim {
    ctx: Arc<Ctx>,
    kubelet: kubelet::Kubelet,
    dirty: Dirty,
}

impl Sim {
    fn on_event(&mut self, e: &Event) {
        let key = (e.namespace.clone(), e.name.clone());
        match e.resource.as_str() {
            "/pods" => {
                self.kubelet.on_pod(e.kind, &e.object);
                for obj in std::iter::once(&e.object).chain(e.previous.as_ref()) {
                    if let Some((kind, name, _)) = util::controller_of(obj) {
                        let owner = (e.namespace.clone(), name.to_string());
                        match kind {
                            "Deployment" => self.dirty.deployments.insert(owner),
                            "StatefulSet" => self.dirty.statefulsets.insert(owner),
                            "Job" => self.dirty.jobs.insert(owner),
                            _ => false,
                        };
                    }
                }
                let now = (e.kind != EventType::Deleted).then(|| network::endpoint_view(&e.object));
                let before = e.previous.as_deref().map(network::endpoint_view);
                if now != before {
                    let (services, _) =
                        self.ctx
                            .api
                            .store
                            .list("/services", Some(&e.namespace), None);
                    for s in services {
                        self.dirty.services.insert(util::key_of(&s));
                    }
                }
            }
            "apps/deployments" => {
                self.dirty.deployments.insert(key);
            }
            "apps/statefulsets" => {
                self.dirty.statefulsets.insert(key);
            }
            "batch/jobs" => {
                self.dirty.jobs.insert(key);
            }
            "/services" | "/endpoints" => {
                self.dirty.services.insert(key);
            }
            "/persistentvolumeclaims" => {
                self.kubelet.wake_namespace(&e.namespace);
                self.dirty.pvcs.insert(key);
            }
            "/secrets" | "/configmaps" => self.kubelet.wake_namespace(&e.namespace),
            "/nodes" if self.ctx.nodes.iter().any(|n| n.name == e.name) => self.dirty.nodes = true,
            _ => {}
        }
    }

    /// Looks at everything again (start, or after missing events).
    fn resync(&mut self) {
        self.dirty.nodes = true;
        let store = &self.ctx.api.store;
        let all = |resource: &str| -> BTreeSet<Key> {
            store
                .list(resource, None, None)
                .0
                .iter()
                .map(|o| util::key_of(o))
                .collect()
        };
        self.dirty.pvcs.extend(all("/persistentvolumeclaims"));
        self.dirty.jobs.extend(all("batch/jobs"));
        self.dirty.deployments.extend(all("apps/deployments"));
        self.dirty.statefulsets.extend(all("apps/statefulsets"));
        self.dirty.services.extend(all("/services"));
        // Endpoints whose Service went away while we were not looking.
        self.dirty.services.extend(all("/endpoints"));
        self.kubelet.resync();
    }

    fn flush(&mut self) {
        let ctx = self.ctx.clone();
        if std::mem::take(&mut self.dirty.nodes) {
            network::ensure_nodes(&ctx);
        }
        for (ns, name) in std::mem::take(&mut self.dirty.pvcs) {
            network::sync_pvc(&ctx, &ns, &name);
        }
        for (ns, name) in std::mem::take(&mut self.dirty.jobs) {
            jobs::sync_job(&ctx, &ns, &name);
        }
        for (ns, name) in std::mem::take(&mut self.dirty.deployments) {
            deployments::sync_deployment(&ctx, &ns, &name);
        }
        for (ns, name) in std::mem::take(&mut self.dirty.statefulsets) {
            statefulsets::sync_statefulset(&ctx, &ns, &name);
        }
        for (ns, name) in std::mem::take(&mut self.dirty.services) {
            network::sync_endpoints(&ctx, &ns, &name);
        }
    }
}

/// A node this simulation registers.
#[derive(Debug, Clone)]
struct NodeInfo {
    name: String,
    ip: Ipv4Addr,
    labels: Value,
}

/// What every part of the simulation shares.
struct Ctx {
    api: Arc<Api>,
    cfg: SimConfig,
    runtime: Arc<dyn ContainerRuntime>,
    ports: Arc<PortMap>,
    nodes: Vec<NodeInfo>,
    node_state: Mutex<kubelet::NodeState>,
    recorder: events::Recorder,
}

impl Ctx {
    fn new(
        api: Arc<Api>,
        cfg: SimConfig,
        runtime: Arc<dyn ContainerRuntime>,
        ports: Arc<PortMap>,
    ) -> Self {
        let nodes = (0..cfg.nodes.max(1))
            .map(|i| {
                let name = format!("testenv-node-{i}");
                NodeInfo {
                    labels: json!({
                        "beta.kubernetes.io/arch": "amd64",
                        "beta.kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                    }),
                    ip: Ipv4Addr::new(172, 18, (i / 250) as u8, (i % 250) as u8 + 2),
                    name,
                }
            })
            .collect();
        Self {
            api,
            cfg,
            runtime,
            ports,
            nodes,
            node_state: Mutex::new(kubelet::NodeState::default()),
            recorder: events::Recorder::default(),
        }
    }

    fn target(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: Option<&str>,
        subresource: Option<&str>,
    ) -> Result<Target, ApiError> {
        let rt = self
            .api
            .registry
            .find_any_version(group, plural)
            .ok_or_else(ApiError::unknown_path)?;
        Ok(Target {
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            rt,
            name: name.map(String::from),
            subresource: subresource.map(String::from),
        })
    }

    fn create(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let t = self.target(group, plural, namespace, None, None)?;
        let writer = Writer::system(manager);
        self.api
            .create(&t, body, &Params::default(), &writer)
            .map(|(_, o)| o)
    }

    /// Deletes one object; a missing one is fine.
    fn delete(&self, group: &str, plural: &str, namespace: &str, name: &str) -> bool {
        let Ok(t) = self.target(group, plural, namespace, Some(name), None) else {
            return false;
        };
        match self.api.delete(
            &t,
            &json!({"propagationPolicy": "Background"}),
            &Params::default(),
        ) {
            Ok(_) => true,
            Err(e) if e.code == 404 => false,
            Err(e) => {
                tracing::debug!(object = name, error = %e.message, "simulation delete failed");
                false
            }
        }
    }

    /// A JSON merge patch (put `metadata.resourceVersion` in it for
    /// optimistic concurrency).
    fn merge_patch(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let t = self.target(group, plural, namespace, Some(name), None)?;
        let writer = Writer::system(manager);
        self.api
            .patch(
                &t,
                patch.to_string().as_bytes(),
                "application/merge-patch+json",
                &Params::default(),
                &writer,
            )
            .map(|(_, o)| o)
    }

    /// Replaces the status of `current` (as read) with `status`, unless it is
    /// already that; fails with 409 when the object changed since it was
    /// read. `Ok(None)` means nothing needed writing.
    fn put_status(
        &self,
        group: &str,
        plural: &str,
        current: &Value,
        status: Value,
        manager: &str,
    ) -> Result<Option<Value>, ApiError> {
        if current.get("status") == Some(&status) {
            return Ok(None);
        }
        let t = self.target(
            group,
            plural,
            util::ns_of(current),
            Some(util::name_of(current)),
            Some("status"),
        )?;
        let body = json!({
            "metadata": {
                "name": util::name_of(current),
                "resourceVersion": current["metadata"]["resourceVersion"],
            },
            "status": status,
        });
        let writer = Writer::system(manager);
        self.api
            .update(&t, body, &Params::default(), &writer)
            .map(|(_, o)| Some(o))
    }

    /// `put_status` for controllers: a conflict means a newer event is on its
    /// way and the next pass writes, so it is only logged.
    fn set_status(&self, group: &str, plural: &str, current: &Value, status: Value) {
        if let Err(e) = self.put_status(group, plural, current, status, CONTROLLER_MANAGER) {
            tracing::debug!(object = util::name_of(current), error = %e.message, "status write failed");
        }
    }
}

/// Field managers, as the real components name themselves.
const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const KUBELET: &str = "kubelet";
const SCHEDULER: &str = "kube-scheduler";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_map_maps_and_forgets() {
        let map = PortMap::new();
        let ip = Ipv4Addr::new(10, 244, 0, 5);
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        map.insert(ip, 8080, addr);
        map.insert(ip, 9090, addr);
        assert_eq!(map.lookup(ip, 8080), Some(addr));
        map.remove(ip, 8080);
        assert_eq!(map.lookup(ip, 8080), None);
        map.remove_ip(ip);
        assert_eq!(map.lookup(ip, 9090), None);
    }
}
