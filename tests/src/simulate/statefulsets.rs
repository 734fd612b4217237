//! The statefulset controller: pods `<name>-<ordinal>` created in order
//! (or in parallel), their claims from `volumeClaimTemplates` (kept when a
//! pod goes), rolling updates from the highest ordinal down, and status.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::events::{Source, controller};
use super::util::{self, items, text};
use super::workloads::{Owned, create_pod, note, owned_pods, pod_from_template, replicas_of};
use super::{CONTROLLER_MANAGER, Ctx, network};

const STATEFULSETS: Source<'static> = controller("statefulset-controller");

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum StsAction {
    Create(usize),
    Delete(usize),
}

/// One step of a StatefulSet: pods by ordinal (`Some` when present) with
/// their readiness and revision. `OrderedReady` creates one pod at a time,
/// each after its predecessors are ready, and removes from the highest
/// ordinal down; `Parallel` does it all at once. A rolling update replaces
/// one pod at a time from the highest ordinal down to the partition.
pub(super) fn plan_statefulset(
    spec: &Value,
    pods: &BTreeMap<usize, Owned>,
    update_revision: &str,
) -> Vec<StsAction> {
    let replicas = replicas_of(spec);
    let parallel = spec["podManagementPolicy"] == "Parallel";
    let mut actions = Vec::new();
    for i in 0..replicas {
        match pods.get(&i) {
            None => {
                actions.push(StsAction::Create(i));
                if !parallel {
                    break;
                }
            }
            Some(p) if !p.ready && !parallel => break,
            Some(_) => {}
        }
    }
    let condemned: Vec<usize> = pods
        .keys()
        .rev()
        .copied()
        .filter(|i| *i >= replicas)
        .collect();
    let settled = (0..replicas).all(|i| pods.get(&i).is_some_and(|p| p.ready));
    if parallel {
        actions.extend(condemned.iter().map(|i| StsAction::Delete(*i)));
    } else if let Some(highest) = condemned.first()
        && actions.is_empty()
        && settled
    {
        actions.push(StsAction::Delete(*highest));
    }
    let rolling = spec["updateStrategy"]["type"] != "OnDelete";
    if rolling && actions.is_empty() && settled {
        let partition = spec["updateStrategy"]["rollingUpdate"]["partition"]
            .as_u64()
            .unwrap_or(0) as usize;
        if let Some(i) = (partition..replicas)
            .rev()
            .find(|i| pods.get(i).is_some_and(|p| p.revision != update_revision))
        {
            actions.push(StsAction::Delete(i));
        }
    }
    actions
}

/// StatefulSet status as the statefulset controller writes it.
pub(super) fn statefulset_status(
    sts: &Value,
    pods: &BTreeMap<usize, Owned>,
    update_revision: &str,
) -> Value {
    let replicas = replicas_of(&sts["spec"]);
    let ready = pods.values().filter(|p| p.ready).count();
    let updated = pods
        .values()
        .filter(|p| p.revision == update_revision)
        .count();
    let mut current_revision = match text(sts, "/status/currentRevision") {
        "" => update_revision.to_string(),
        r => r.to_string(),
    };
    if updated == replicas && ready == replicas && pods.len() == replicas {
        current_revision = update_revision.to_string();
    }
    let current = pods
        .values()
        .filter(|p| p.revision == current_revision)
        .count();
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        sts["metadata"]["generation"].clone(),
    );
    status.insert("replicas".into(), json!(pods.len()));
    for (field, n) in [
        ("readyReplicas", ready),
        ("currentReplicas", current),
        ("updatedReplicas", updated),
    ] {
        if n > 0 {
            status.insert(field.into(), json!(n));
        }
    }
    status.insert("availableReplicas".into(), json!(ready));
    status.insert("currentRevision".into(), json!(current_revision));
    status.insert("updateRevision".into(), json!(update_revision));
    status.insert(
        "collisionCount".into(),
        sts["status"]
            .get("collisionCount")
            .cloned()
            .unwrap_or(json!(0)),
    );
    Value::Object(status)
}

/// The pod for one ordinal, with its claims' volumes.
pub(super) fn statefulset_pod(sts: &Value, ordinal: usize, revision: &str) -> Value {
    let name = util::name_of(sts);
    let pod_name = format!("{name}-{ordinal}");
    let mut pod = pod_from_template(
        sts,
        &[
            ("controller-revision-hash", revision.to_string()),
            ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
            ("apps.kubernetes.io/pod-index", ordinal.to_string()),
        ],
        Some(&pod_name),
        None,
    );
    pod["spec"]["hostname"] = json!(pod_name);
    if let Some(svc) = sts["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(svc);
    }
    let mut volumes: Vec<Value> = items(&pod, "/spec/volumes").to_vec();
    for t in items(sts, "/spec/volumeClaimTemplates") {
        let vol = text(t, "/metadata/name");
        volumes.retain(|v| v["name"] != vol);
        volumes.push(json!({
            "name": vol,
            "persistentVolumeClaim": {"claimName": format!("{vol}-{name}-{ordinal}")},
        }));
    }
    if !volumes.is_empty() {
        pod["spec"]["volumes"] = Value::Array(volumes);
    }
    pod
}

fn ordinal_of(sts_name: &str, pod_name: &str) -> Option<usize> {
    pod_name
        .strip_prefix(sts_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The claims of one ordinal: created (and bound) when missing, kept when
/// the pod goes, as Kubernetes keeps them.
fn ensure_claims(ctx: &Ctx, sts: &Value, ordinal: usize) {
    let ns = util::ns_of(sts);
    let name = util::name_of(sts);
    for t in items(sts, "/spec/volumeClaimTemplates") {
        let claim = format!("{}-{name}-{ordinal}", text(t, "/metadata/name"));
        if ctx
            .api
            .store
            .get("/persistentvolumeclaims", ns, &claim)
            .is_some()
        {
            continue;
        }
        let mut labels = util::labels(t, "/metadata/labels");
        for (k, v) in util::labels(sts, "/spec/selector/matchLabels") {
            labels.insert(k, v);
        }
        let mut meta = json!({"name": claim, "namespace": ns, "labels": labels});
        let annotations = util::labels(t, "/metadata/annotations");
        if !annotations.is_empty() {
            meta["annotations"] = Value::Object(annotations);
        }
        let body = json!({"metadata": meta, "spec": t["spec"]});
        match ctx.create("", "persistentvolumeclaims", ns, body, CONTROLLER_MANAGER) {
            Ok(_) => {
                ctx.recorder.record(
                    ctx,
                    STATEFULSETS,
                    note(
                        sts,
                        false,
                        "SuccessfulCreate",
                        format!("create Claim {claim} Pod {name}-{ordinal} in StatefulSet {name} success"),
                    ),
                );
                // Bound now, so the pod schedules without a round trip.
                network::sync_pvc(ctx, ns, &claim);
            }
            Err(e) => tracing::debug!(claim, error = %e.message, "creating a claim failed"),
        }
    }
}

pub(super) fn sync_statefulset(ctx: &Ctx, ns: &str, name: &str) {
    let Some(sts) = ctx.api.store.get("apps/statefulsets", ns, name) else {
        return;
    };
    if util::deleting(&sts) {
        return;
    }
    let collisions = sts["status"]["collisionCount"].as_u64().unwrap_or(0);
    let revision = format!(
        "{name}-{}",
        util::template_hash(&sts["spec"]["template"], collisions)
    );
    let by_ordinal = |pods: &[Arc<Value>]| {
        pods.iter()
            .filter_map(|p| {
                ordinal_of(name, util::name_of(p))
                    .map(|i| (i, Owned::of(p, "controller-revision-hash")))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let (live, finished) = owned_pods(ctx, &sts);
    // A StatefulSet's pods always run: finished ones are replaced.
    for p in &finished {
        ctx.delete("", "pods", ns, util::name_of(p));
    }
    let pods = by_ordinal(&live);
    let actions = plan_statefulset(&sts["spec"], &pods, &revision);
    for action in &actions {
        match *action {
            StsAction::Create(i) => {
                ensure_claims(ctx, &sts, i);
                let pod = statefulset_pod(&sts, i, &revision);
                if let Some(pod_name) = create_pod(ctx, &sts, pod) {
                    ctx.recorder.record(
                        ctx,
                        STATEFULSETS,
                        note(
                            &sts,
                            false,
                            "SuccessfulCreate",
                            format!("create Pod {pod_name} in StatefulSet {name} successful"),
                        ),
                    );
                }
            }
            StsAction::Delete(i) => {
                let pod_name = format!("{name}-{i}");
                if ctx.delete("", "pods", ns, &pod_name) {
                    ctx.recorder.record(
                        ctx,
                        STATEFULSETS,
                        note(
                            &sts,
                            false,
                            "SuccessfulDelete",
                            format!("delete Pod {pod_name} in StatefulSet {name} successful"),
                        ),
                    );
                }
            }
        }
    }
    let pods = if actions.is_empty() && finished.is_empty() {
        pods
    } else {
        by_ordinal(&owned_pods(ctx, &sts).0)
    };
    ctx.set_status(
        "apps",
        "statefulsets",
        &sts,
        statefulset_status(&sts, &pods, &revision),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::workloads::owned;

    fn sts(replicas: u64, policy: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "d", "uid": "sts-uid", "generation": 1},
            "spec": {
                "replicas": replicas, "serviceName": "db", "podManagementPolicy": policy,
                "selector": {"matchLabels": {"app": "db"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "pg"}], "volumes": [{"name": "data", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]
            }
        })
    }

    #[test]
    fn statefulset_pods_are_ordered_and_carry_their_claims() {
        let s = sts(3, "OrderedReady");
        let pod = statefulset_pod(&s, 1, "db-abc");
        assert_eq!(pod["metadata"]["name"], "db-1");
        assert_eq!(
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            "db-1"
        );
        assert_eq!(
            pod["metadata"]["labels"]["controller-revision-hash"],
            "db-abc"
        );
        assert_eq!(pod["spec"]["hostname"], "db-1");
        assert_eq!(pod["spec"]["subdomain"], "db");
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}])
        );
        let spec = &s["spec"];
        let mut pods = BTreeMap::new();
        assert_eq!(plan_statefulset(spec, &pods, "r1"), [StsAction::Create(0)]);
        pods.insert(0, owned("db-0", false, "t", "r1"));
        assert!(plan_statefulset(spec, &pods, "r1").is_empty());
        pods.insert(0, owned("db-0", true, "t", "r1"));
        assert_eq!(plan_statefulset(spec, &pods, "r1"), [StsAction::Create(1)]);
        let par = sts(3, "Parallel");
        assert_eq!(
            plan_statefulset(&par["spec"], &pods, "r1"),
            [StsAction::Create(1), StsAction::Create(2)]
        );
        // All ready on the old revision: replaced from the top down.
        for i in 1..3 {
            pods.insert(i, owned(&format!("db-{i}"), true, "t", "r1"));
        }
        assert_eq!(plan_statefulset(spec, &pods, "r2"), [StsAction::Delete(2)]);
        // Scale down removes the highest ordinal first.
        let two = sts(2, "OrderedReady");
        assert_eq!(
            plan_statefulset(&two["spec"], &pods, "r1"),
            [StsAction::Delete(2)]
        );
    }

    #[test]
    fn statefulset_status_tracks_revisions() {
        let mut s = sts(2, "OrderedReady");
        let mut pods = BTreeMap::new();
        pods.insert(0, owned("db-0", true, "t", "r1"));
        pods.insert(1, owned("db-1", false, "t", "r1"));
        let st = statefulset_status(&s, &pods, "r1");
        assert_eq!(st["replicas"], 2);
        assert_eq!(st["readyReplicas"], 1);
        assert_eq!(st["currentRevision"], "r1");
        s["status"] = st;
        pods.insert(1, owned("db-1", true, "t", "r2"));
        let st = statefulset_status(&s, &pods, "r2");
        assert_eq!(st["currentRevision"], "r1");
        assert_eq!(st["updateRevision"], "r2");
        assert_eq!(st["updatedReplicas"], 1);
        assert_eq!(st["currentReplicas"], 1);
        pods.insert(0, owned("db-0", true, "t", "r2"));
        let st = statefulset_status(&s, &pods, "r2");
        assert_eq!(st["currentRevision"], "r2");
        assert_eq!(st["currentReplicas"], 2);
    }
}
