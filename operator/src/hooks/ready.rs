//! Readiness of a hook's live object, per kind (KubeFlex §8.6), plus what
//! KubeFlex lacks: a Job with a `Failed=True` condition is a failure, not a
//! wait that never ends. Messages carry object names and controller
//! reasons, never data.

use serde_json::Value;

/// Readiness of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet; the message says what is awaited.
    Pending(String),
    /// It will not become ready by itself.
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
}

/// Readiness of `live`, an object of `kind` named `what` in messages.
pub fn readiness(kind: &str, what: &str, live: &Value) -> Readiness {
    let status = &live["status"];
    match kind {
        "Deployment" | "StatefulSet" => {
            let want = live["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(&status["readyReplicas"]);
            if ready == want {
                Readiness::Ready
            } else {
                Readiness::Pending(format!("{what} has {ready}/{want} ready replicas"))
            }
        }
        "Job" => {
            if int(&status["succeeded"]) > 0 {
                Readiness::Ready
            } else if let Some(c) = condition(live, "Failed") {
                let reason = c["reason"].as_str().unwrap_or("Failed");
                let message = c["message"].as_str().unwrap_or_default();
                Readiness::Failed(if message.is_empty() {
                    format!("{what} failed: {reason}")
                } else {
                    format!("{what} failed: {reason}: {message}")
                })
            } else {
                Readiness::Pending(format!("{what} has not succeeded yet"))
            }
        }
        "DaemonSet" => {
            let (ready, want) = (
                int(&status["numberReady"]),
                int(&status["desiredNumberScheduled"]),
            );
            if ready == want {
                Readiness::Ready
            } else {
                Readiness::Pending(format!("{what} has {ready}/{want} ready pods"))
            }
        }
        "CustomResourceDefinition" => {
            if condition(live, "Established").is_some() {
                Readiness::Ready
            } else {
                Readiness::Pending(format!("{what} is not Established yet"))
            }
        }
        "Pod" => match status["phase"].as_str() {
            Some("Running" | "Succeeded") => Readiness::Ready,
            Some("Failed") => Readiness::Failed(format!("{what} failed")),
            phase => Readiness::Pending(format!(
                "{what} is {}",
                phase.unwrap_or("not scheduled yet")
            )),
        },
        _ => Readiness::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workloads_compare_ready_replicas_with_spec() {
        let d = json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert!(
            matches!(readiness("Deployment", "D", &d), Readiness::Pending(m) if m.contains("1/2"))
        );
        let s = json!({"spec": {}, "status": {"readyReplicas": 1}});
        assert_eq!(readiness("StatefulSet", "S", &s), Readiness::Ready);
        let ds = json!({"status": {"numberReady": 3, "desiredNumberScheduled": 3}});
        assert_eq!(readiness("DaemonSet", "DS", &ds), Readiness::Ready);
    }

    #[test]
    fn jobs_succeed_or_fail_with_their_reason() {
        assert_eq!(
            readiness("Job", "J", &json!({"status": {"succeeded": 1}})),
            Readiness::Ready
        );
        assert!(matches!(
            readiness("Job", "J", &json!({"status": {"active": 1}})),
            Readiness::Pending(_)
        ));
        let failed = json!({"status": {"failed": 2, "conditions": [
            {"type": "FailureTarget", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            readiness("Job", "Job cp1-system/j", &failed),
            Readiness::Failed(
                "Job cp1-system/j failed: BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
    }

    #[test]
    fn crds_pods_and_other_kinds() {
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(
            readiness("CustomResourceDefinition", "C", &crd),
            Readiness::Ready
        );
        assert!(matches!(
            readiness("CustomResourceDefinition", "C", &json!({})),
            Readiness::Pending(_)
        ));
        assert_eq!(
            readiness("Pod", "P", &json!({"status": {"phase": "Succeeded"}})),
            Readiness::Ready
        );
        assert!(matches!(
            readiness("Pod", "P", &json!({"status": {"phase": "Failed"}})),
            Readiness::Failed(_)
        ));
        assert_eq!(readiness("ConfigMap", "M", &json!({})), Readiness::Ready);
    }
}
