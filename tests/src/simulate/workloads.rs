//! What the workload controllers share: the pods a workload owns, pods
//! from its template, and events about it. The controllers themselves are
//! in `deployments`, `statefulsets` and `jobs`.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::events::Note;
use super::util::{self, text};
use super::{CONTROLLER_MANAGER, Ctx};

/// A pod a controller owns, reduced to what its decisions need.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Owned {
    pub name: String,
    pub ready: bool,
    pub created: String,
    /// `pod-template-hash` or `controller-revision-hash`.
    pub revision: String,
}

impl Owned {
    pub(super) fn of(pod: &Value, label: &str) -> Self {
        Self {
            name: util::name_of(pod).to_string(),
            ready: util::pod_ready(pod),
            created: text(pod, "/metadata/creationTimestamp").to_string(),
            revision: pod["metadata"]["labels"][label]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// Live pods (not terminal, not being deleted) the workload controls and
/// selects — a pod relabelled out of the selector is no longer counted —
/// and the finished ones apart.
pub(super) fn owned_pods(ctx: &Ctx, owner: &Value) -> (Vec<Arc<Value>>, Vec<Arc<Value>>) {
    let (pods, _) = ctx.api.store.list("/pods", Some(util::ns_of(owner)), None);
    let uid = util::uid_of(owner);
    let selector = &owner["spec"]["selector"];
    pods.into_iter()
        .filter(|p| {
            util::controlled_by(p, uid)
                && !util::deleting(p)
                && util::selector_matches(selector, &util::labels(p, "/metadata/labels"))
        })
        .partition(|p| !util::terminal(p))
}

/// A pod from a workload's template, owned by the workload.
pub(super) fn pod_from_template(
    owner: &Value,
    extra_labels: &[(&str, String)],
    name: Option<&str>,
    generate_name: Option<&str>,
) -> Value {
    let template = &owner["spec"]["template"];
    let mut labels = util::labels(template, "/metadata/labels");
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), json!(v));
    }
    let mut meta = Map::new();
    if let Some(n) = name {
        meta.insert("name".into(), json!(n));
    }
    if let Some(g) = generate_name {
        meta.insert("generateName".into(), json!(g));
    }
    meta.insert("namespace".into(), json!(util::ns_of(owner)));
    meta.insert("labels".into(), Value::Object(labels));
    let annotations = util::labels(template, "/metadata/annotations");
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    meta.insert(
        "ownerReferences".into(),
        json!([util::controller_ref(owner)]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template["spec"].clone(),
    })
}

pub(super) fn note<'a>(
    obj: &'a Value,
    warning: bool,
    reason: &'a str,
    message: String,
) -> Note<'a> {
    Note {
        obj,
        field_path: None,
        warning,
        reason,
        message,
    }
}

/// Creates a pod; its name when it was created.
pub(super) fn create_pod(ctx: &Ctx, owner: &Value, pod: Value) -> Option<String> {
    match ctx.create("", "pods", util::ns_of(owner), pod, CONTROLLER_MANAGER) {
        Ok(p) => Some(util::name_of(&p).to_string()),
        Err(e) => {
            tracing::debug!(owner = util::name_of(owner), error = %e.message, "creating a pod failed");
            None
        }
    }
}

pub(super) fn replicas_of(spec: &Value) -> usize {
    spec["replicas"].as_u64().unwrap_or(1) as usize
}

/// An `Owned` for tests.
#[cfg(test)]
pub(super) fn owned(name: &str, ready: bool, created: &str, revision: &str) -> Owned {
    Owned {
        name: name.into(),
        ready,
        created: created.into(),
        revision: revision.into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn deployment(replicas: u64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "d", "uid": "dep-uid", "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }
            }
        })
    }

    #[test]
    fn pods_from_templates_are_owned_and_labelled() {
        let d = deployment(1);
        let pod = pod_from_template(
            &d,
            &[("pod-template-hash", "abc".into())],
            None,
            Some("web-abc-"),
        );
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["namespace"], "d");
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"app": "web", "pod-template-hash": "abc"})
        );
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep-uid", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
    }
}
