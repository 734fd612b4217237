//! The deployment controller, without the ReplicaSet layer: pods are owned
//! by their Deployment and labelled `pod-template-hash` as a ReplicaSet's
//! would be, so status, rollouts, `kubectl rollout status` and `kubectl
//! wait` behave; `kubectl get rs` and `rollout undo` have nothing to use.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Ctx;
use super::events::{Source, controller};
use super::util;
use super::workloads::{Owned, create_pod, note, owned_pods, pod_from_template, replicas_of};

const DEPLOYMENTS: Source<'static> = controller("deployment-controller");

/// What a deployment sync does to its pods.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    pub create: usize,
    pub delete: Vec<String>,
}

/// Which `count` pods go first on a scale-down: not ready, then newest.
fn doomed(pods: &[Owned], count: usize) -> Vec<String> {
    let mut order: Vec<&Owned> = pods.iter().collect();
    order.sort_by(|a, b| {
        a.ready
            .cmp(&b.ready)
            .then(b.created.cmp(&a.created))
            .then(b.name.cmp(&a.name))
    });
    order
        .into_iter()
        .take(count)
        .map(|p| p.name.clone())
        .collect()
}

fn surge_and_unavailable(spec: &Value, replicas: usize) -> (usize, usize) {
    if spec["strategy"]["type"] == "Recreate" {
        return (0, replicas);
    }
    let ru = &spec["strategy"]["rollingUpdate"];
    let default_surge = util::int_or_percent(&json!("25%"), replicas, true, 1);
    let default_unavailable = util::int_or_percent(&json!("25%"), replicas, false, 0);
    let surge = util::int_or_percent(&ru["maxSurge"], replicas, true, default_surge);
    let unavailable =
        util::int_or_percent(&ru["maxUnavailable"], replicas, false, default_unavailable);
    // Both zero would never progress; Kubernetes then allows one unavailable.
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// One step of scaling / rolling out: `new` pods match the current
/// template hash, `old` ones do not. Rolling updates honour `maxSurge` and
/// `maxUnavailable` as the deployment controller does (new pods first,
/// old ones go as availability allows); `Recreate` removes the old pods
/// before any new one; a paused Deployment only scales.
pub(super) fn plan_rollout(spec: &Value, new: &[Owned], old: &[Owned]) -> Plan {
    let replicas = replicas_of(spec);
    let ready = |v: &[Owned]| v.iter().filter(|p| p.ready).count();
    let mut plan = Plan::default();
    if old.is_empty() {
        if new.len() < replicas {
            plan.create = replicas - new.len();
        } else {
            plan.delete = doomed(new, new.len() - replicas);
        }
        return plan;
    }
    if spec["paused"].as_bool() == Some(true) {
        return plan;
    }
    if spec["strategy"]["type"] == "Recreate" {
        plan.delete = old.iter().map(|p| p.name.clone()).collect();
        return plan;
    }
    let (surge, unavailable) = surge_and_unavailable(spec, replicas);
    let total = new.len() + old.len();
    let mut new_ready = ready(new);
    let mut new_total = new.len();
    if new.len() < replicas {
        plan.create = (replicas - new.len()).min((replicas + surge).saturating_sub(total));
        new_total += plan.create;
    } else if new.len() > replicas {
        let extra = doomed(new, new.len() - replicas);
        new_ready -= new
            .iter()
            .filter(|p| p.ready && extra.contains(&p.name))
            .count();
        new_total = replicas;
        plan.delete = extra;
    }
    let min_available = replicas.saturating_sub(unavailable);
    let all = new_total + old.len();
    let new_unavailable = new_total.saturating_sub(new_ready);
    let mut budget = all
        .saturating_sub(min_available)
        .saturating_sub(new_unavailable);
    // Old pods that are not ready cost no availability: they go first.
    for p in old.iter().filter(|p| !p.ready) {
        if budget == 0 {
            break;
        }
        plan.delete.push(p.name.clone());
        budget -= 1;
    }
    let mut available = new_ready + ready(old);
    for name in doomed(old, old.len()) {
        let Some(p) = old.iter().find(|p| p.name == name && p.ready) else {
            continue;
        };
        if budget == 0 || available <= min_available {
            break;
        }
        plan.delete.push(p.name.clone());
        budget -= 1;
        available -= 1;
    }
    plan
}

/// Deployment status as the deployment controller writes it.
pub(super) fn deployment_status(
    d: &Value,
    hash: &str,
    new: &[Owned],
    old: &[Owned],
    now: &str,
) -> Value {
    let spec = &d["spec"];
    let replicas = replicas_of(spec);
    let total = new.len() + old.len();
    let ready = new.iter().chain(old).filter(|p| p.ready).count();
    // No minReadySeconds simulation: ready is available.
    let available = ready;
    let unavailable = total.max(replicas).saturating_sub(available);
    let (_, max_unavailable) = surge_and_unavailable(spec, replicas);
    let min_available = replicas.saturating_sub(max_unavailable);
    let prev = &d["status"]["conditions"];
    let rs = format!("{}-{hash}", util::name_of(d));
    let times = ["lastUpdateTime"];
    let available_cond = if available >= min_available {
        util::condition(
            prev,
            "Available",
            "True",
            Some("MinimumReplicasAvailable"),
            Some("Deployment has minimum availability."),
            now,
            &times,
        )
    } else {
        util::condition(
            prev,
            "Available",
            "False",
            Some("MinimumReplicasUnavailable"),
            Some("Deployment does not have minimum availability."),
            now,
            &times,
        )
    };
    let complete = new.len() == replicas && old.is_empty() && available >= replicas;
    let progressing = if spec["paused"].as_bool() == Some(true) {
        util::condition(
            prev,
            "Progressing",
            "Unknown",
            Some("DeploymentPaused"),
            Some("Deployment is paused"),
            now,
            &times,
        )
    } else if complete {
        util::condition(
            prev,
            "Progressing",
            "True",
            Some("NewReplicaSetAvailable"),
            Some(&format!("ReplicaSet \"{rs}\" has successfully progressed.")),
            now,
            &times,
        )
    } else {
        util::condition(
            prev,
            "Progressing",
            "True",
            Some("ReplicaSetUpdated"),
            Some(&format!("ReplicaSet \"{rs}\" is progressing.")),
            now,
            &times,
        )
    };
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        d["metadata"]["generation"].clone(),
    );
    // Zero counts are omitted, as Go's omitempty does.
    for (field, n) in [
        ("replicas", total),
        ("updatedReplicas", new.len()),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", unavailable),
    ] {
        if n > 0 {
            status.insert(field.into(), json!(n));
        }
    }
    status.insert("conditions".into(), json!([available_cond, progressing]));
    if let Some(c) = d["status"].get("collisionCount") {
        status.insert("collisionCount".into(), c.clone());
    }
    Value::Object(status)
}

pub(super) fn sync_deployment(ctx: &Ctx, ns: &str, name: &str) {
    let Some(d) = ctx.api.store.get("apps/deployments", ns, name) else {
        return;
    };
    if util::deleting(&d) {
        return;
    }
    let collisions = d["status"]["collisionCount"].as_u64().unwrap_or(0);
    let hash = util::template_hash(&d["spec"]["template"], collisions);
    let split = |pods: &[Arc<Value>]| -> (Vec<Owned>, Vec<Owned>) {
        pods.iter()
            .map(|p| Owned::of(p, "pod-template-hash"))
            .partition(|p| p.revision == hash)
    };
    let (live, _) = owned_pods(ctx, &d);
    let (new, old) = split(&live);
    let plan = plan_rollout(&d["spec"], &new, &old);
    let rs = |h: &str| format!("{name}-{h}");
    if plan.create > 0 {
        let mut created = 0;
        for _ in 0..plan.create {
            let pod = pod_from_template(
                &d,
                &[("pod-template-hash", hash.clone())],
                None,
                Some(&format!("{name}-{hash}-")),
            );
            if let Some(pod_name) = create_pod(ctx, &d, pod) {
                created += 1;
                ctx.recorder.record(
                    ctx,
                    DEPLOYMENTS,
                    note(
                        &d,
                        false,
                        "SuccessfulCreate",
                        format!("Created pod: {pod_name}"),
                    ),
                );
            }
        }
        if created > 0 {
            ctx.recorder.record(
                ctx,
                DEPLOYMENTS,
                note(
                    &d,
                    false,
                    "ScalingReplicaSet",
                    format!(
                        "Scaled up replica set {} from {} to {}",
                        rs(&hash),
                        new.len(),
                        new.len() + created
                    ),
                ),
            );
        }
    }
    // Scale-downs, reported per (virtual) ReplicaSet.
    let mut by_revision: Vec<(String, usize, usize)> = Vec::new();
    for pod_name in &plan.delete {
        let Some(p) = new.iter().chain(&old).find(|p| &p.name == pod_name) else {
            continue;
        };
        if !ctx.delete("", "pods", ns, pod_name) {
            continue;
        }
        match by_revision.iter_mut().find(|(r, _, _)| *r == p.revision) {
            Some(entry) => entry.2 += 1,
            None => {
                let before = new
                    .iter()
                    .chain(&old)
                    .filter(|q| q.revision == p.revision)
                    .count();
                by_revision.push((p.revision.clone(), before, 1));
            }
        }
    }
    for (revision, before, gone) in by_revision {
        ctx.recorder.record(
            ctx,
            DEPLOYMENTS,
            note(
                &d,
                false,
                "ScalingReplicaSet",
                format!(
                    "Scaled down replica set {} from {before} to {}",
                    rs(&revision),
                    before - gone
                ),
            ),
        );
    }
    let (new, old) = if plan == Plan::default() {
        (new, old)
    } else {
        split(&owned_pods(ctx, &d).0)
    };
    let status = deployment_status(&d, &hash, &new, &old, &crate::meta::now());
    ctx.set_status("apps", "deployments", &d, status);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::workloads::owned;
    use crate::simulate::workloads::tests::deployment;

    #[test]
    fn scaling_creates_and_removes_unready_and_newest_first() {
        let spec = &deployment(3)["spec"];
        assert_eq!(plan_rollout(spec, &[], &[]).create, 3);
        let pods = [
            owned("a", true, "t1", "h"),
            owned("b", true, "t3", "h"),
            owned("c", false, "t2", "h"),
            owned("d", true, "t2", "h"),
            owned("e", true, "t1", "h"),
        ];
        assert_eq!(plan_rollout(spec, &pods, &[]).delete, ["c", "b"]);
        assert_eq!(plan_rollout(spec, &pods[..3], &[]), Plan::default());
    }

    #[test]
    fn rolling_update_surges_then_retires_old_pods_as_new_ones_get_ready() {
        let spec = &deployment(1)["spec"];
        let old = [owned("old", true, "t1", "h1")];
        // maxSurge 25% of 1 rounds up to 1: one new pod next to the old one.
        let p = plan_rollout(spec, &[], &old);
        assert_eq!(
            p,
            Plan {
                create: 1,
                delete: vec![]
            }
        );
        // The new pod is not ready: the old one stays (maxUnavailable 0).
        let p = plan_rollout(spec, &[owned("new", false, "t2", "h2")], &old);
        assert_eq!(p, Plan::default());
        // Ready: the old one goes.
        let p = plan_rollout(spec, &[owned("new", true, "t2", "h2")], &old);
        assert_eq!(p.delete, ["old"]);
        // Recreate: old first, nothing new meanwhile.
        let mut recreate = spec.clone();
        recreate["strategy"] = json!({"type": "Recreate"});
        assert_eq!(plan_rollout(&recreate, &[], &old).delete, ["old"]);
        assert_eq!(plan_rollout(&recreate, &[], &old).create, 0);
        // Unready old pods go at once even with no availability to spare.
        let four = &deployment(4)["spec"];
        let old4 = [
            owned("o1", true, "t1", "h1"),
            owned("o2", true, "t1", "h1"),
            owned("o3", true, "t1", "h1"),
            owned("o4", false, "t1", "h1"),
        ];
        let p = plan_rollout(four, &[], &old4);
        assert_eq!(p.create, 1);
        assert_eq!(p.delete, ["o4"]);
    }

    #[test]
    fn deployment_status_reports_availability_and_progress() {
        let d = deployment(2);
        let s = deployment_status(
            &d,
            "h2",
            &[owned("a", true, "t", "h2"), owned("b", false, "t", "h2")],
            &[],
            "now",
        );
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["replicas"], 2);
        assert_eq!(s["updatedReplicas"], 2);
        assert_eq!(s["readyReplicas"], 1);
        assert_eq!(s["availableReplicas"], 1);
        assert_eq!(s["unavailableReplicas"], 1);
        // 25% of 2 rounds down to 0 unavailable allowed: not Available.
        assert_eq!(s["conditions"][0]["type"], "Available");
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
        let s = deployment_status(
            &d,
            "h2",
            &[owned("a", true, "t", "h2"), owned("b", true, "t", "h2")],
            &[],
            "now",
        );
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][0]["reason"], "MinimumReplicasAvailable");
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            s["conditions"][1]["message"],
            "ReplicaSet \"web-h2\" has successfully progressed."
        );
        assert!(s.get("unavailableReplicas").is_none());
        // Recomputing from the stored status changes nothing.
        let mut stored = d.clone();
        stored["status"] = s.clone();
        let again = deployment_status(
            &stored,
            "h2",
            &[owned("a", true, "t", "h2"), owned("b", true, "t", "h2")],
            &[],
            "later",
        );
        assert_eq!(again, s);
        // A single unready pod is never Available.
        let one = deployment_status(
            &deployment(1),
            "h",
            &[owned("a", false, "t", "h")],
            &[],
            "now",
        );
        assert_eq!(one["conditions"][0]["status"], "False");
    }
}
