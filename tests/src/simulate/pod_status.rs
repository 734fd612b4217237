//! Pod status as the kubelet reports it: container states (waiting,
//! running, terminated, with the last termination and restart count),
//! conditions, IPs — computed from a snapshot, keeping condition times so
//! recomputing an unchanged pod writes nothing.

use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use super::util::{self, items, text};

/// A container's state as the kubelet reports it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: String,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Terminated {
    pub exit_code: i64,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Container {
    pub name: String,
    /// As in the spec.
    pub image: String,
    /// Pulled: status shows the resolved image and its digest.
    pub pulled: bool,
    pub state: State,
    pub last: Option<Terminated>,
    pub restarts: u64,
    pub container_id: Option<String>,
    /// An init container with `restartPolicy: Always` (keeps running).
    pub sidecar: bool,
}

/// `nginx` → `docker.io/library/nginx:latest`, as the runtime reports it.
pub(super) fn resolved_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = match (has_registry, name.contains('/')) {
        (true, _) => name.to_string(),
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

pub(super) fn image_id(image: &str) -> String {
    let full = resolved_image(image);
    if full.contains('@') {
        return full;
    }
    let repo = match full.rfind(':') {
        Some(i) if !full[i..].contains('/') => &full[..i],
        _ => full.as_str(),
    };
    format!("{repo}@sha256:{}", util::digest(&full))
}

impl Container {
    pub(super) fn from_spec(spec: &Value, sidecar: bool) -> Self {
        Self {
            name: text(spec, "/name").to_string(),
            image: text(spec, "/image").to_string(),
            pulled: false,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last: None,
            restarts: 0,
            container_id: None,
            sidecar,
        }
    }

    pub(super) fn ready(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    pub(super) fn wait(&mut self, reason: &str, message: Option<String>) {
        self.state = State::Waiting {
            reason: reason.into(),
            message,
        };
    }

    pub(super) fn run(&mut self, now: &str) {
        self.pulled = true;
        self.container_id = Some(format!("containerd://{}", util::random_hex(64)));
        self.state = State::Running {
            started_at: now.into(),
        };
    }

    pub(super) fn exit(&mut self, code: i64, reason: &str, message: Option<String>, now: &str) {
        let started_at = match &self.state {
            State::Running { started_at } => started_at.clone(),
            State::Terminated(_) => return,
            State::Waiting { .. } => now.to_string(),
        };
        self.state = State::Terminated(Terminated {
            exit_code: code,
            reason: reason.into(),
            message,
            started_at,
            finished_at: now.into(),
            container_id: self.container_id.clone(),
        });
    }

    /// Crashed: back off before the next start, remembering the exit.
    pub(super) fn back_off(&mut self, now: &str, message: String) {
        self.exit(1, "Error", Some(message), now);
        if let State::Terminated(t) = &self.state {
            self.last = Some(t.clone());
        }
        let msg = format!("back-off restarting failed container={} pod=", self.name);
        self.wait("CrashLoopBackOff", Some(msg));
    }

    pub(super) fn to_json(&self, pod_name: &str, pod_ns: &str) -> Value {
        let terminated = |t: &Terminated| {
            let mut v = json!({
                "exitCode": t.exit_code,
                "reason": t.reason,
                "startedAt": t.started_at,
                "finishedAt": t.finished_at,
            });
            if let Some(m) = &t.message {
                v["message"] = json!(m);
            }
            if let Some(id) = &t.container_id {
                v["containerID"] = json!(id);
            }
            json!({"terminated": v})
        };
        let state = match &self.state {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    // The back-off message names the pod as kubelet does.
                    let m = if m.ends_with("pod=") {
                        format!("{m}{pod_name}_{pod_ns}")
                    } else {
                        m.clone()
                    };
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => terminated(t),
        };
        let mut v = json!({
            "name": self.name,
            "state": state,
            "lastState": self.last.as_ref().map_or_else(|| json!({}), terminated),
            "ready": self.ready(),
            "restartCount": self.restarts,
            "image": if self.pulled { resolved_image(&self.image) } else { self.image.clone() },
            "imageID": if self.pulled { image_id(&self.image) } else { String::new() },
            "started": self.ready(),
        });
        if let Some(id) = &self.container_id {
            v["containerID"] = json!(id);
        }
        v
    }

    /// Reads back what a previous status said (after a restart of the
    /// simulation, or between steps).
    pub(super) fn from_status(spec: &Value, status: Option<&Value>, sidecar: bool) -> Self {
        let mut c = Self::from_spec(spec, sidecar);
        let Some(s) = status else { return c };
        c.restarts = s["restartCount"].as_u64().unwrap_or(0);
        c.container_id = s["containerID"].as_str().map(String::from);
        c.pulled = !text(s, "/imageID").is_empty();
        let parse_term = |t: &Value| Terminated {
            exit_code: t["exitCode"].as_i64().unwrap_or(0),
            reason: text(t, "/reason").into(),
            message: t["message"].as_str().map(String::from),
            started_at: text(t, "/startedAt").into(),
            finished_at: text(t, "/finishedAt").into(),
            container_id: t["containerID"].as_str().map(String::from),
        };
        c.last = s.pointer("/lastState/terminated").map(parse_term);
        if let Some(r) = s.pointer("/state/running") {
            c.state = State::Running {
                started_at: text(r, "/startedAt").into(),
            };
        } else if let Some(t) = s.pointer("/state/terminated") {
            c.state = State::Terminated(parse_term(t));
        } else if let Some(w) = s.pointer("/state/waiting") {
            c.state = State::Waiting {
                reason: text(w, "/reason").into(),
                message: w["message"].as_str().map(String::from),
            };
        }
        c
    }
}

/// Everything pod status is computed from.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    pub phase: &'static str,
    pub host_ip: Option<Ipv4Addr>,
    pub pod_ip: Option<Ipv4Addr>,
    /// The sandbox exists (`PodReadyToStartContainers`).
    pub sandbox: bool,
    pub init: Vec<Container>,
    pub containers: Vec<Container>,
}

impl Snapshot {
    pub(super) fn from_spec(pod: &Value) -> Self {
        let init = items(pod, "/spec/initContainers")
            .iter()
            .map(|c| Container::from_spec(c, c["restartPolicy"] == "Always"))
            .collect();
        let containers = items(pod, "/spec/containers")
            .iter()
            .map(|c| Container::from_spec(c, false))
            .collect();
        Self {
            phase: "Pending",
            host_ip: None,
            pod_ip: None,
            sandbox: false,
            init,
            containers,
        }
    }

    /// The snapshot the stored status describes.
    pub(super) fn from_status(pod: &Value) -> Self {
        let find = |list: &str, name: &Value| items(pod, list).iter().find(|s| &s["name"] == name);
        let init = items(pod, "/spec/initContainers")
            .iter()
            .map(|c| {
                Container::from_status(
                    c,
                    find("/status/initContainerStatuses", &c["name"]),
                    c["restartPolicy"] == "Always",
                )
            })
            .collect();
        let containers = items(pod, "/spec/containers")
            .iter()
            .map(|c| {
                Container::from_status(c, find("/status/containerStatuses", &c["name"]), false)
            })
            .collect();
        let ip = |p: &str| text(pod, p).parse::<Ipv4Addr>().ok();
        Self {
            phase: match util::phase(pod) {
                "Running" => "Running",
                "Succeeded" => "Succeeded",
                "Failed" => "Failed",
                _ => "Pending",
            },
            host_ip: ip("/status/hostIP"),
            pod_ip: ip("/status/podIP"),
            sandbox: util::condition_true(pod, "PodReadyToStartContainers"),
            init,
            containers,
        }
    }
}

/// Pod status as the kubelet writes it, keeping condition times and
/// `startTime` from the current status so an unchanged pod is a no-op.
pub(super) fn pod_status(pod: &Value, s: &Snapshot, now: &str) -> Value {
    let prev = &pod["status"]["conditions"];
    let cond = |kind: &str, ok: bool, reason: Option<&str>, message: Option<&str>| {
        let mut c = util::condition(
            prev,
            kind,
            if ok { "True" } else { "False" },
            if ok { None } else { reason },
            if ok { None } else { message },
            now,
            &[],
        );
        // Probes are not simulated; the kubelet leaves this null.
        c["lastProbeTime"] = Value::Null;
        c
    };
    let finished = matches!(s.phase, "Succeeded" | "Failed");
    let done_reason = if s.phase == "Failed" {
        "PodFailed"
    } else {
        "PodCompleted"
    };
    let incomplete: Vec<&str> = s
        .init
        .iter()
        .filter(|c| {
            let succeeded = matches!(&c.state, State::Terminated(t) if t.exit_code == 0);
            !(succeeded || c.sidecar && c.ready())
        })
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = s
        .containers
        .iter()
        .chain(s.init.iter().filter(|c| c.sidecar))
        .filter(|c| !c.ready())
        .map(|c| c.name.as_str())
        .collect();
    let initialized = incomplete.is_empty() || finished;
    let ready = unready.is_empty() && !finished;
    let init_msg = format!(
        "containers with incomplete status: [{}]",
        incomplete.join(" ")
    );
    let unready_msg = format!("containers with unready status: [{}]", unready.join(" "));
    let (ready_reason, ready_msg) = if finished {
        (done_reason, None)
    } else {
        ("ContainersNotReady", Some(unready_msg.as_str()))
    };
    let conditions = vec![
        cond(
            "PodReadyToStartContainers",
            s.sandbox && !finished,
            None,
            None,
        ),
        cond(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            Some(&init_msg),
        ),
        cond("Ready", ready, Some(ready_reason), ready_msg),
        cond("ContainersReady", ready, Some(ready_reason), ready_msg),
        cond("PodScheduled", true, None, None),
    ];
    let mut status = Map::new();
    status.insert("phase".into(), json!(s.phase));
    status.insert("conditions".into(), Value::Array(conditions));
    if let Some(ip) = s.host_ip {
        status.insert("hostIP".into(), json!(ip.to_string()));
        status.insert("hostIPs".into(), json!([{"ip": ip.to_string()}]));
    }
    if let Some(ip) = s.pod_ip {
        status.insert("podIP".into(), json!(ip.to_string()));
        status.insert("podIPs".into(), json!([{"ip": ip.to_string()}]));
    }
    let start = pod["status"]["startTime"].clone();
    status.insert(
        "startTime".into(),
        if start.is_string() { start } else { json!(now) },
    );
    let name = util::name_of(pod);
    let ns = util::ns_of(pod);
    if !s.init.is_empty() {
        status.insert(
            "initContainerStatuses".into(),
            s.init.iter().map(|c| c.to_json(name, ns)).collect(),
        );
    }
    status.insert(
        "containerStatuses".into(),
        s.containers.iter().map(|c| c.to_json(name, ns)).collect(),
    );
    let qos = pod["status"]["qosClass"].clone();
    status.insert(
        "qosClass".into(),
        if qos.is_string() {
            qos
        } else {
            json!("BestEffort")
        },
    );
    Value::Object(status)
}

/// Status of a pod no node can take.
pub(super) fn unschedulable_status(pod: &Value, message: &str, now: &str) -> Value {
    let qos = pod["status"]["qosClass"].clone();
    let mut scheduled = util::condition(
        &pod["status"]["conditions"],
        "PodScheduled",
        "False",
        Some("Unschedulable"),
        Some(message),
        now,
        &[],
    );
    scheduled["lastProbeTime"] = Value::Null;
    json!({
        "phase": "Pending",
        "conditions": [scheduled],
        "qosClass": if qos.is_string() { qos } else { json!("BestEffort") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "d", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "ghcr.io/x/y:v1"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}
        })
    }

    #[test]
    fn images_resolve_as_the_runtime_reports_them() {
        assert_eq!(resolved_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            resolved_image("bitnami/redis:7"),
            "docker.io/bitnami/redis:7"
        );
        assert_eq!(
            resolved_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert!(image_id("nginx:1.27").starts_with("docker.io/library/nginx@sha256:"));
        assert_eq!(
            image_id("nginx:1.27").len(),
            "docker.io/library/nginx@sha256:".len() + 64
        );
    }

    #[test]
    fn running_pod_status_is_ready_and_stable() {
        let p = pod();
        let mut s = Snapshot::from_spec(&p);
        s.phase = "Running";
        s.sandbox = true;
        s.host_ip = Some(Ipv4Addr::new(172, 18, 0, 2));
        s.pod_ip = Some(Ipv4Addr::new(10, 244, 0, 7));
        for c in &mut s.containers {
            c.run("t1");
        }
        let status = pod_status(&p, &s, "t1");
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.244.0.7");
        let types: Vec<&str> = items(&status, "/conditions")
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        assert!(
            items(&status, "/conditions")
                .iter()
                .all(|c| c["status"] == "True")
        );
        let app = &status["containerStatuses"][0];
        assert_eq!(app["ready"], true);
        assert_eq!(app["state"]["running"]["startedAt"], "t1");
        assert_eq!(app["image"], "docker.io/library/nginx:latest");
        assert!(
            app["containerID"]
                .as_str()
                .unwrap()
                .starts_with("containerd://")
        );
        // Read back and recomputed later: nothing changes.
        let mut stored = p.clone();
        stored["status"] = status.clone();
        let again = pod_status(&stored, &Snapshot::from_status(&stored), "t2");
        assert_eq!(again, status);
    }

    #[test]
    fn crash_loop_and_config_errors_are_not_ready() {
        let p = pod();
        let mut s = Snapshot::from_spec(&p);
        s.phase = "Running";
        s.sandbox = true;
        s.containers[0].run("t1");
        s.containers[0].back_off("t2", "boom".into());
        s.containers[1].wait(
            "CreateContainerConfigError",
            Some("secret \"s\" not found".into()),
        );
        let status = pod_status(&p, &s, "t2");
        let app = &status["containerStatuses"][0];
        assert_eq!(app["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            app["state"]["waiting"]["message"],
            "back-off restarting failed container=app pod=web-1_d"
        );
        assert_eq!(app["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(app["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(app["lastState"]["terminated"]["message"], "boom");
        assert_eq!(app["ready"], false);
        let ready = items(&status, "/conditions")
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(
            ready["message"],
            "containers with unready status: [app side]"
        );
        assert_eq!(
            status["containerStatuses"][1]["state"]["waiting"]["message"],
            "secret \"s\" not found"
        );
    }
}
