//! The seam between the simulated kubelet and what "runs" in a container.
//! The kubelet simulation decides scheduling, volumes and status; a
//! `ContainerRuntime` decides whether a pod's processes come up (most just
//! do; a `kube-apiserver` pod starts a tenant API server) and where they
//! listen, so Services and the ingress can reach them.

use std::net::SocketAddr;

use futures::future::BoxFuture;
use serde_json::Value;

/// A pod as the runtime sees it: the stored object plus its files.
#[derive(Clone)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The Pod object as stored (spec, metadata, the IP assigned to it).
    pub pod: Value,
    /// Mounted files: absolute path inside the container → contents, as
    /// the kubelet would project them from Secret / ConfigMap volumes.
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
    /// For persistent volumes: a stable key per claim (`namespace/claim`)
    /// so data can outlive the pod.
    pub claims: Vec<String>,
}

// Files hold keys and certificates: never print them.
impl std::fmt::Debug for PodSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSpec")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What became of a start.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// Running; `ports` maps container ports to where they really listen.
    Running { ports: Vec<(u16, SocketAddr)> },
    /// The process exits at once (as a crashing binary would): the message
    /// goes into the container's status (`CrashLoopBackOff`, `Error`).
    Crashed { message: String },
}

/// Runs (or pretends to run) pods.
pub trait ContainerRuntime: Send + Sync {
    /// Starts the pod's processes. Called once per pod uid, and again after
    /// a `Crashed` start (with `stop` in between), as a kubelet restarts a
    /// crashing container.
    fn start(&self, pod: PodSpec) -> BoxFuture<'static, Started>;
    /// Stops whatever `start` began for this pod uid.
    fn stop(&self, uid: &str);
}

/// Every container simply runs and listens nowhere real.
pub struct NoopRuntime;

impl ContainerRuntime for NoopRuntime {
    fn start(&self, _pod: PodSpec) -> BoxFuture<'static, Started> {
        Box::pin(async { Started::Running { ports: Vec::new() } })
    }
    fn stop(&self, _uid: &str) {}
}

/// Where pods' ports really listen (filled by the kubelet simulation).
pub use crate::simulate::PortMap;
