//! The scheduler and kubelet: binds pods to nodes, gives them IPs, holds
//! them back as a kubelet would (missing volumes, bad images, unresolvable
//! env), starts them through the [`ContainerRuntime`] after a delay, and
//! reports containers and conditions in pod status. One task per pod, so a
//! slow start holds up nothing else.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::events::{Note, Source};
use super::pod_status::{Snapshot, State, pod_status, unschedulable_status};
use super::util::{self, items, text};
use super::volumes::{self, ContainerError, Lookup};
use super::{Ctx, KUBELET, NodeInfo, SCHEDULER};
use crate::runtime::{PodSpec, Started};
use crate::store::EventType;
use held::{hold, report_problems, start_held, with_containers};

#[path = "kubelet_held.rs"]
mod held;

/// Pod annotation making its containers exit 1 with the value as message
/// (after `job_duration`): a Job's pod fails, other pods crash-loop.
pub const FAIL_ANNOTATION: &str = "testenv.kflex.kubestellar.org/fail";

/// Longest wait between retries of a blocked pod or a crashing container.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Pod IPs from 10.244.0.0/16, and which pods the runtime is running.
#[derive(Default)]
pub(super) struct NodeState {
    next: u32,
    by_uid: HashMap<String, Ipv4Addr>,
    used: HashSet<Ipv4Addr>,
    running: HashSet<String>,
    placed: usize,
}

const POD_NET: u32 = 0x0af4_0000; // 10.244.0.0
const FIRST_HOST: u32 = 2;
const LAST_HOST: u32 = 0xfffe;

impl NodeState {
    /// The pod's IP: the one it had (after a restart) when free, else the
    /// next free one. `None` when all 65 533 are taken.
    pub(super) fn assign(&mut self, uid: &str, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_uid.get(uid) {
            return Some(*ip);
        }
        let in_range = |ip: Ipv4Addr| {
            let n = u32::from(ip);
            n & 0xffff_0000 == POD_NET && (FIRST_HOST..=LAST_HOST).contains(&(n & 0xffff))
        };
        let ip = match preferred.filter(|ip| in_range(*ip) && !self.used.contains(ip)) {
            Some(ip) => ip,
            None => {
                let span = LAST_HOST - FIRST_HOST + 1;
                (0..span)
                    .map(|i| Ipv4Addr::from(POD_NET + FIRST_HOST + (self.next + i) % span))
                    .find(|ip| !self.used.contains(ip))?
            }
        };
        self.next = (u32::from(ip) & 0xffff) - FIRST_HOST + 1;
        self.used.insert(ip);
        self.by_uid.insert(uid.to_string(), ip);
        Some(ip)
    }

    pub(super) fn release(&mut self, uid: &str) -> Option<Ipv4Addr> {
        let ip = self.by_uid.remove(uid)?;
        self.used.remove(&ip);
        Some(ip)
    }
}

impl Ctx {
    fn node_state(&self) -> std::sync::MutexGuard<'_, NodeState> {
        self.node_state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the pod's processes (once) and forgets where they listened.
    fn stop_runtime(&self, uid: &str) {
        let (was_running, ip) = {
            let mut s = self.node_state();
            (s.running.remove(uid), s.by_uid.get(uid).copied())
        };
        if let Some(ip) = ip {
            self.ports.remove_ip(ip);
        }
        if was_running {
            self.runtime.stop(uid);
        }
    }

    /// Done with a pod: stopped, its IP back in the pool.
    fn release_pod(&self, uid: &str) {
        self.stop_runtime(uid);
        self.node_state().release(uid);
    }
}

/// The pods this kubelet looks after (by uid).
pub(super) struct Kubelet {
    ctx: Arc<Ctx>,
    pods: HashMap<String, Tracked>,
}

struct Tracked {
    namespace: String,
    task: JoinHandle<()>,
    wake: Arc<Notify>,
}

impl Kubelet {
    pub(super) fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            ctx,
            pods: HashMap::new(),
        }
    }

    pub(super) fn on_pod(&mut self, kind: EventType, pod: &Value) {
        let uid = util::uid_of(pod);
        if uid.is_empty() {
            return;
        }
        if kind == EventType::Deleted {
            self.forget(uid);
            return;
        }
        if util::deleting(pod) {
            self.terminate(pod);
            return;
        }
        if let Some(t) = self.pods.get(uid) {
            if util::terminal(pod) && t.task.is_finished() {
                self.pods.remove(uid);
            } else {
                t.wake.notify_one();
            }
            return;
        }
        if util::terminal(pod) {
            return;
        }
        let wake = Arc::new(Notify::new());
        let me = PodRef {
            namespace: util::ns_of(pod).to_string(),
            name: util::name_of(pod).to_string(),
            uid: uid.to_string(),
        };
        let task = tokio::spawn(run(self.ctx.clone(), me.clone(), wake.clone()));
        self.pods.insert(
            me.uid,
            Tracked {
                namespace: me.namespace,
                task,
                wake,
            },
        );
    }

    /// Catches up with the store: new pods start, vanished ones stop.
    pub(super) fn resync(&mut self) {
        let (pods, _) = self.ctx.api.store.list("/pods", None, None);
        let live: HashSet<String> = pods.iter().map(|p| util::uid_of(p).to_string()).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !live.contains(*u))
            .cloned()
            .collect();
        for uid in gone {
            self.forget(&uid);
        }
        for pod in pods {
            self.on_pod(EventType::Modified, &pod);
        }
    }

    /// Something a pod may be waiting for changed in `namespace`.
    pub(super) fn wake_namespace(&self, namespace: &str) {
        for t in self.pods.values().filter(|t| t.namespace == namespace) {
            t.wake.notify_one();
        }
    }

    fn forget(&mut self, uid: &str) {
        if let Some(t) = self.pods.remove(uid) {
            t.task.abort();
        }
        self.ctx.release_pod(uid);
        self.ctx.recorder.forget(uid);
    }

    /// A pod being deleted (held by finalizers): its containers stop and it
    /// reports so; without finalizers the deletion completes.
    fn terminate(&mut self, pod: &Value) {
        let uid = util::uid_of(pod);
        if let Some(t) = self.pods.remove(uid) {
            t.task.abort();
            self.ctx.release_pod(uid);
            if !util::terminal(pod) {
                let me = PodRef::of(pod);
                let now = crate::meta::now();
                write_status(&self.ctx, &me, |p| {
                    let mut s = Snapshot::from_status(p);
                    s.phase = "Succeeded";
                    for c in s.init.iter_mut().chain(s.containers.iter_mut()) {
                        c.exit(0, "Completed", None, &now);
                    }
                    pod_status(p, &s, &now)
                });
            }
        }
        if util::items(pod, "/metadata/finalizers").is_empty() {
            self.ctx
                .delete("", "pods", util::ns_of(pod), util::name_of(pod));
        }
    }
}

impl Drop for Kubelet {
    /// The simulation ending (its task aborted) stops what it started.
    fn drop(&mut self) {
        for (uid, t) in self.pods.drain() {
            t.task.abort();
            self.ctx.release_pod(&uid);
        }
    }
}

#[derive(Debug, Clone)]
struct PodRef {
    namespace: String,
    name: String,
    uid: String,
}

impl PodRef {
    fn of(pod: &Value) -> Self {
        Self {
            namespace: util::ns_of(pod).to_string(),
            name: util::name_of(pod).to_string(),
            uid: util::uid_of(pod).to_string(),
        }
    }

    /// The pod as stored now, if it is still this incarnation.
    fn fresh(&self, ctx: &Ctx) -> Option<Arc<Value>> {
        ctx.api
            .store
            .get("/pods", &self.namespace, &self.name)
            .filter(|p| util::uid_of(p) == self.uid)
    }
}

/// Writes pod status computed from the current pod, retrying on conflicts;
/// false when the pod is gone or the write failed.
fn write_status(ctx: &Ctx, me: &PodRef, f: impl Fn(&Value) -> Value) -> bool {
    for _ in 0..5 {
        let Some(pod) = me.fresh(ctx) else {
            return false;
        };
        match ctx.put_status("", "pods", &pod, f(&pod), KUBELET) {
            Ok(_) => return true,
            Err(e) if e.code == 409 => continue,
            Err(e) => {
                tracing::debug!(pod = me.name, error = %e.message, "pod status write failed");
                return false;
            }
        }
    }
    false
}

/// Picks a node for the pod, or says why none fits (the scheduler's words).
fn schedule(
    pod: &Value,
    lookup: &Lookup<'_>,
    nodes: &[NodeInfo],
    turn: usize,
) -> Result<String, String> {
    let total = nodes.len();
    let unavailable = |why: String| format!("0/{total} nodes are available: {why}.");
    if let Some(why) = volumes::claims_problem(pod, lookup) {
        return Err(unavailable(why));
    }
    let selector = pod["spec"]["nodeSelector"].as_object();
    let fits: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| {
            selector
                .into_iter()
                .flatten()
                .all(|(k, v)| n.labels.get(k) == Some(v))
        })
        .collect();
    if fits.is_empty() {
        return Err(unavailable(format!(
            "{total} node(s) didn't match Pod's node affinity/selector"
        )));
    }
    Ok(fits[turn % fits.len()].name.clone())
}

// ---------------------------------------------------------------------------
// The per-pod task
// ---------------------------------------------------------------------------

/// What the pod needs once it may start.
struct Ready {
    host_ip: Ipv4Addr,
    node: String,
    pod_ip: Ipv4Addr,
    files: std::collections::BTreeMap<String, Vec<u8>>,
    claims: Vec<String>,
    /// App containers that cannot start yet (an env reference to a missing
    /// ConfigMap, a bad image): they wait while the others run.
    held: Vec<ContainerError>,
}

enum Step {
    Go(Box<Ready>),
    Wait,
    Stop,
}

/// Events already recorded for this pod, so retries do not repeat them.
#[derive(Default)]
struct Reported(HashSet<String>);

impl Reported {
    fn once(&mut self, ctx: &Ctx, source: Source<'_>, note: Note<'_>) {
        let key = format!("{}\0{}", note.reason, note.message);
        if self.0.insert(key) {
            ctx.recorder.record(ctx, source, note);
        }
    }
}

fn kubelet_on(node: &str) -> Source<'_> {
    Source {
        component: "kubelet",
        host: Some(node),
    }
}

const SCHEDULER_SOURCE: Source<'static> = Source {
    component: "default-scheduler",
    host: None,
};

fn container_path(pod: &Value, name: &str) -> String {
    let init = items(pod, "/spec/initContainers")
        .iter()
        .any(|c| c["name"] == name);
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

async fn wait(wake: &Notify, attempt: &mut u32) {
    let delay = Duration::from_secs(1u64 << (*attempt).min(4)).min(MAX_BACKOFF);
    *attempt += 1;
    tokio::select! {
        _ = wake.notified() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}

async fn run(ctx: Arc<Ctx>, me: PodRef, wake: Arc<Notify>) {
    let mut reported = Reported::default();
    let mut attempt = 0;
    let ready = loop {
        match prepare(&ctx, &me, &mut reported) {
            Step::Go(r) => break r,
            Step::Stop => return,
            Step::Wait => wait(&wake, &mut attempt).await,
        }
    };
    start(&ctx, &me, *ready, &mut reported, &wake).await;
}

/// Scheduling, the IP, and the kubelet's checks; `Wait` while something
/// is missing (the status and an Event say what).
fn prepare(ctx: &Ctx, me: &PodRef, reported: &mut Reported) -> Step {
    let Some(pod) = me.fresh(ctx) else {
        return Step::Stop;
    };
    if util::deleting(&pod) || util::terminal(&pod) {
        return Step::Stop;
    }
    let store = &ctx.api.store;
    let lookup = |resource: &str, name: &str| store.get(resource, &me.namespace, name);
    let now = crate::meta::now();
    let mut node = text(&pod, "/spec/nodeName").to_string();
    if node.is_empty() {
        // Taken before binding, so pods placed at once still spread.
        let turn = {
            let mut state = ctx.node_state();
            let turn = state.placed;
            state.placed = turn.wrapping_add(1);
            turn
        };
        match schedule(&pod, &lookup, &ctx.nodes, turn) {
            Err(message) => {
                write_status(ctx, me, |p| unschedulable_status(p, &message, &now));
                reported.once(
                    ctx,
                    SCHEDULER_SOURCE,
                    Note {
                        obj: &pod,
                        field_path: None,
                        warning: true,
                        reason: "FailedScheduling",
                        message,
                    },
                );
                return Step::Wait;
            }
            Ok(chosen) => {
                let patch = json!({
                    "metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
                    "spec": {"nodeName": chosen},
                });
                if let Err(e) =
                    ctx.merge_patch("", "pods", &me.namespace, &me.name, &patch, SCHEDULER)
                {
                    tracing::debug!(pod = me.name, error = %e.message, "binding failed");
                    return Step::Wait;
                }
                reported.once(
                    ctx,
                    SCHEDULER_SOURCE,
                    Note {
                        obj: &pod,
                        field_path: None,
                        warning: false,
                        reason: "Scheduled",
                        message: format!(
                            "Successfully assigned {}/{} to {chosen}",
                            me.namespace, me.name
                        ),
                    },
                );
                node = chosen;
            }
        }
    }
    let host_ip = ctx
        .nodes
        .iter()
        .find(|n| n.name == node)
        .or(ctx.nodes.first())
        .map_or(Ipv4Addr::new(172, 18, 0, 2), |n| n.ip);
    let previous_ip = text(&pod, "/status/podIP").parse().ok();
    let Some(pod_ip) = ctx.node_state().assign(&me.uid, previous_ip) else {
        tracing::warn!(pod = me.name, "no pod IP left in 10.244.0.0/16");
        return Step::Wait;
    };
    let source = kubelet_on(&node);
    if let Some(message) = volumes::volume_problem(&pod, &lookup) {
        write_status(ctx, me, |p| {
            let mut s = Snapshot::from_spec(p);
            s.host_ip = Some(host_ip);
            s.pod_ip = Some(pod_ip);
            if !s.init.is_empty() {
                for c in s.init.iter_mut().chain(s.containers.iter_mut()) {
                    c.wait("PodInitializing", None);
                }
            }
            keep_restarts(p, &mut s);
            pod_status(p, &s, &now)
        });
        reported.once(
            ctx,
            source,
            Note {
                obj: &pod,
                field_path: None,
                warning: true,
                reason: "FailedMount",
                message,
            },
        );
        return Step::Wait;
    }
    let problems = volumes::container_problems(&pod, &lookup);
    // As the real kubelet, each app container starts on its own: one that
    // cannot be configured yet waits alone. Init containers run first, so a
    // problem there (or with every app container) holds the whole pod.
    let app = items(&pod, "/spec/containers");
    let held_alone = problems
        .iter()
        .all(|e| app.iter().any(|c| text(c, "/name") == e.container))
        && app
            .iter()
            .any(|c| !problems.iter().any(|e| e.container == text(c, "/name")));
    if !problems.is_empty() && held_alone {
        report_problems(ctx, reported, source, &pod, &problems);
    } else if !problems.is_empty() {
        write_status(ctx, me, |p| {
            let mut s = Snapshot::from_spec(p);
            s.host_ip = Some(host_ip);
            s.pod_ip = Some(pod_ip);
            s.sandbox = true;
            for c in s.init.iter_mut().chain(s.containers.iter_mut()) {
                if let Some(ContainerError {
                    reason, message, ..
                }) = problems.iter().find(|e| e.container == c.name)
                {
                    c.wait(reason, Some(message.clone()));
                }
            }
            keep_restarts(p, &mut s);
            pod_status(p, &s, &now)
        });
        report_problems(ctx, reported, source, &pod, &problems);
        return Step::Wait;
    }
    let (files, claims) = volumes::project(&pod, &lookup);
    Step::Go(Box::new(Ready {
        host_ip,
        node,
        pod_ip,
        files,
        claims,
        held: problems,
    }))
}

/// Restart counts survive status rewrites.
fn keep_restarts(pod: &Value, s: &mut Snapshot) {
    let old = Snapshot::from_status(pod);
    for (c, o) in s
        .init
        .iter_mut()
        .chain(s.containers.iter_mut())
        .zip(old.init.iter().chain(old.containers.iter()))
    {
        c.restarts = o.restarts;
        c.last = o.last.clone();
    }
}

/// How a run ended.
enum Exit {
    /// Still running (a long-lived pod): the task is done.
    Running,
    Succeeded,
    Failed(String),
}

/// Starts the containers (and restarts them on crashes, with back-off).
async fn start(ctx: &Ctx, me: &PodRef, r: Ready, reported: &mut Reported, wake: &Notify) {
    let source = kubelet_on(&r.node);
    let Some(pod) = me.fresh(ctx) else { return };
    // After a restart of the simulation a running pod is picked up again
    // rather than reported as starting.
    let resumed = util::phase(&pod) == "Running";
    if !resumed {
        let now = crate::meta::now();
        write_status(ctx, me, |p| {
            let mut s = Snapshot::from_spec(p);
            s.host_ip = Some(r.host_ip);
            s.pod_ip = Some(r.pod_ip);
            s.sandbox = true;
            if !s.init.is_empty() {
                for c in s.init.iter_mut().chain(s.containers.iter_mut()) {
                    c.wait("PodInitializing", None);
                }
            }
            hold(&mut s, &r.held);
            keep_restarts(p, &mut s);
            pod_status(p, &s, &now)
        });
    }
    tokio::time::sleep(ctx.cfg.pod_start_delay).await;
    let restart_policy = match text(&pod, "/spec/restartPolicy") {
        "" => "Always",
        p => p,
    };
    let job_pod = matches!(util::controller_of(&pod), Some(("Job", _, _)));
    let fail = pod["metadata"]["annotations"][FAIL_ANNOTATION]
        .as_str()
        .map(String::from);
    let mut backoff = 0u32;
    loop {
        let Some(pod) = me.fresh(ctx) else { return };
        if util::deleting(&pod) {
            return;
        }
        let is_held = |name: &str| r.held.iter().any(|e| e.container == name);
        for c in volumes::all_containers(&pod) {
            let name = text(c, "/name");
            if is_held(name) {
                continue;
            }
            let path = Some(container_path(&pod, name));
            let image = text(c, "/image");
            for (reason, message) in [
                (
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                ),
                ("Created", format!("Created container {name}")),
                ("Started", format!("Started container {name}")),
            ] {
                // Restarts bump the same events' counts, as kubelet's do.
                let note = Note {
                    obj: &pod,
                    field_path: path.clone(),
                    warning: false,
                    reason,
                    message,
                };
                if backoff == 0 {
                    reported.once(ctx, source, note);
                } else {
                    ctx.recorder.record(ctx, source, note);
                }
            }
        }
        let spec = PodSpec {
            namespace: me.namespace.clone(),
            name: me.name.clone(),
            uid: me.uid.clone(),
            pod: with_containers(&pod, |name| !is_held(name)),
            files: r.files.clone(),
            claims: r.claims.clone(),
        };
        ctx.node_state().running.insert(me.uid.clone());
        let mut ran = false;
        let exit = match ctx.runtime.start(spec).await {
            Started::Running { ports } => {
                ran = true;
                for (port, addr) in ports {
                    ctx.ports.insert(r.pod_ip, port, addr);
                }
                let now = crate::meta::now();
                write_status(ctx, me, |p| {
                    let mut s = Snapshot::from_status(p);
                    s.phase = "Running";
                    s.host_ip = Some(r.host_ip);
                    s.pod_ip = Some(r.pod_ip);
                    s.sandbox = true;
                    for c in s.init.iter_mut() {
                        if c.sidecar {
                            if !c.ready() {
                                c.run(&now);
                            }
                        } else if !matches!(c.state, State::Terminated(_)) {
                            c.run(&now);
                            c.exit(0, "Completed", None, &now);
                        }
                    }
                    for c in s.containers.iter_mut() {
                        if !c.ready() {
                            c.run(&now);
                            // Started again after a back-off: a restart.
                            c.restarts += u64::from(backoff > 0);
                        }
                    }
                    hold(&mut s, &r.held);
                    pod_status(p, &s, &now)
                });
                if restart_policy == "Always" && fail.is_none() {
                    Exit::Running
                } else {
                    // Runs to completion (Jobs, one-shot pods) or crashes.
                    tokio::time::sleep(ctx.cfg.job_duration).await;
                    ctx.stop_runtime(&me.uid);
                    match &fail {
                        Some(msg) => Exit::Failed(msg.clone()),
                        None => Exit::Succeeded,
                    }
                }
            }
            Started::Crashed { message } => {
                ctx.stop_runtime(&me.uid);
                Exit::Failed(message)
            }
        };
        let now = crate::meta::now();
        match exit {
            Exit::Running if r.held.is_empty() => return,
            Exit::Running => return start_held(ctx, me, &r, r.held.clone(), wake).await,
            Exit::Succeeded => {
                write_status(ctx, me, |p| {
                    let mut s = Snapshot::from_status(p);
                    s.phase = "Succeeded";
                    for c in s.init.iter_mut().chain(s.containers.iter_mut()) {
                        c.exit(0, "Completed", None, &now);
                    }
                    pod_status(p, &s, &now)
                });
                ctx.node_state().release(&me.uid);
                return;
            }
            Exit::Failed(message) if restart_policy == "Never" || job_pod => {
                write_status(ctx, me, |p| {
                    let mut s = Snapshot::from_status(p);
                    s.phase = "Failed";
                    for c in s.containers.iter_mut() {
                        if !c.pulled {
                            c.run(&now);
                        }
                        c.exit(1, "Error", Some(message.clone()), &now);
                    }
                    for c in s.init.iter_mut() {
                        c.exit(0, "Completed", None, &now);
                    }
                    pod_status(p, &s, &now)
                });
                ctx.node_state().release(&me.uid);
                return;
            }
            Exit::Failed(message) => {
                write_status(ctx, me, |p| {
                    let mut s = Snapshot::from_status(p);
                    s.phase = "Running";
                    s.host_ip = Some(r.host_ip);
                    s.pod_ip = Some(r.pod_ip);
                    s.sandbox = true;
                    for c in s.containers.iter_mut() {
                        if !c.pulled {
                            c.run(&now);
                        }
                        // A crash right at a restart still counts it.
                        if !ran {
                            c.restarts += u64::from(backoff > 0);
                        }
                        c.back_off(&now, message.clone());
                    }
                    hold(&mut s, &r.held);
                    pod_status(p, &s, &now)
                });
                for c in items(&pod, "/spec/containers") {
                    let name = text(c, "/name");
                    ctx.recorder.record(
                        ctx,
                        source,
                        Note {
                            obj: &pod,
                            field_path: Some(container_path(&pod, name)),
                            warning: true,
                            reason: "BackOff",
                            message: "Back-off restarting failed container".into(),
                        },
                    );
                }
                let delay = Duration::from_secs(1u64 << backoff.min(4)).min(MAX_BACKOFF);
                tokio::time::sleep(delay).await;
                backoff += 1;
            }
        }
    }
}

#[cfg(test)]
#[path = "kubelet_tests.rs"]
mod tests;
