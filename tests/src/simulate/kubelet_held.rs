//! Containers held back alone: an app container the kubelet cannot
//! configure yet (an env reference to a missing ConfigMap or Secret, a bad
//! image) waits with its reason while its siblings run, and starts once
//! what it waits for appears — as the real kubelet starts each container
//! independently.

use serde_json::Value;
use tokio::sync::Notify;

use super::{Ctx, PodRef, Ready, Reported, container_path, kubelet_on, wait, write_status};
use crate::runtime::{PodSpec, Started};
use crate::simulate::events::{Note, Source};
use crate::simulate::pod_status::{Snapshot, pod_status};
use crate::simulate::util::{self, text};
use crate::simulate::volumes::{self, ContainerError};

/// The Events a kubelet records for containers it cannot create.
pub(super) fn report_problems(
    ctx: &Ctx,
    reported: &mut Reported,
    source: Source<'_>,
    pod: &Value,
    problems: &[ContainerError],
) {
    for e in problems {
        let (reason, message) = match e.reason {
            "InvalidImageName" => ("InspectFailed", e.message.clone()),
            _ => ("Failed", format!("Error: {}", e.message)),
        };
        reported.once(
            ctx,
            source,
            Note {
                obj: pod,
                field_path: Some(container_path(pod, &e.container)),
                warning: true,
                reason,
                message,
            },
        );
    }
}

/// Held containers show why they wait, whatever the others do.
pub(super) fn hold(s: &mut Snapshot, held: &[ContainerError]) {
    for c in s.containers.iter_mut() {
        if let Some(e) = held.iter().find(|e| e.container == c.name) {
            c.wait(e.reason, Some(e.message.clone()));
        }
    }
}

/// The pod as the runtime sees it: only the containers named by `keep`.
pub(super) fn with_containers(pod: &Value, keep: impl Fn(&str) -> bool) -> Value {
    let mut pod = pod.clone();
    if let Some(cs) = pod
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    {
        cs.retain(|c| keep(text(c, "/name")));
    }
    pod
}

/// Starts held containers as what they wait for appears (the kubelet's
/// retries), while the rest of the pod runs.
pub(super) async fn start_held(
    ctx: &Ctx,
    me: &PodRef,
    r: &Ready,
    mut held: Vec<ContainerError>,
    wake: &Notify,
) {
    let source = kubelet_on(&r.node);
    let mut attempt = 0;
    while !held.is_empty() {
        wait(wake, &mut attempt).await;
        let Some(pod) = me.fresh(ctx) else { return };
        if util::deleting(&pod) || util::terminal(&pod) {
            return;
        }
        let lookup = |resource: &str, name: &str| ctx.api.store.get(resource, &me.namespace, name);
        let problems = volumes::container_problems(&pod, &lookup);
        let (still, freed): (Vec<_>, Vec<_>) = held
            .into_iter()
            .partition(|h| problems.iter().any(|e| e.container == h.container));
        held = problems
            .into_iter()
            .filter(|e| still.iter().any(|h| h.container == e.container))
            .collect();
        if freed.is_empty() {
            continue;
        }
        let is_freed = |name: &str| freed.iter().any(|e| e.container == name);
        let spec = PodSpec {
            namespace: me.namespace.clone(),
            name: me.name.clone(),
            uid: me.uid.clone(),
            pod: with_containers(&pod, is_freed),
            files: r.files.clone(),
            claims: r.claims.clone(),
        };
        let crashed = match ctx.runtime.start(spec).await {
            Started::Running { ports } => {
                for (port, addr) in ports {
                    ctx.ports.insert(r.pod_ip, port, addr);
                }
                None
            }
            Started::Crashed { message } => Some(message),
        };
        let now = crate::meta::now();
        write_status(ctx, me, |p| {
            let mut s = Snapshot::from_status(p);
            for c in s.containers.iter_mut().filter(|c| is_freed(&c.name)) {
                c.run(&now);
                if let Some(message) = &crashed {
                    c.back_off(&now, message.clone());
                }
            }
            hold(&mut s, &held);
            pod_status(p, &s, &now)
        });
        for e in &freed {
            let name = &e.container;
            for (reason, message) in [
                ("Created", format!("Created container {name}")),
                ("Started", format!("Started container {name}")),
            ] {
                ctx.recorder.record(
                    ctx,
                    source,
                    Note {
                        obj: &pod,
                        field_path: Some(container_path(&pod, name)),
                        warning: false,
                        reason,
                        message,
                    },
                );
            }
        }
    }
}
