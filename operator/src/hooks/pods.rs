//! Pod Security `baseline` for the pods a hook's objects make, purely.
//!
//! `NAME-system` enforces `baseline` ([`crate::builders::namespace`]), but
//! kube-apiserver only warns about a workload's pod template; the pods are
//! refused later, after the hook's objects were written. Checking the
//! templates here refuses the hook as a whole before anything is written —
//! also for a type whose namespace needs a laxer level (`k3s`).
//!
//! The checks are the baseline level's (Kubernetes "Pod Security
//! Standards"): no privileged containers, no host namespaces, ports or
//! paths, capabilities only from the baseline set, no unconfined seccomp or
//! AppArmor, no custom SELinux user/role, no `/proc` unmasking, only the
//! safe sysctls.

use serde_json::Value;

/// Capabilities baseline lets a container add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls baseline allows.
const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types baseline allows (besides none).
const SELINUX_TYPES: [&str; 3] = ["container_t", "container_init_t", "container_kvm_t"];

const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The pod template (`metadata` + `spec`) of a workload kind, if it is one.
fn pod_template<'a>(group: &str, kind: &str, object: &'a Value) -> Option<&'a Value> {
    match (group, kind) {
        ("", "Pod") => Some(object),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some(&object["spec"]["template"]),
        ("batch", "CronJob") => Some(&object["spec"]["jobTemplate"]["spec"]["template"]),
        _ => None,
    }
}

/// The first baseline violation of the pods `object` makes, if any.
pub fn baseline_violation(group: &str, kind: &str, object: &Value) -> Option<String> {
    let template = pod_template(group, kind, object)?;
    let spec = &template["spec"];
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[field] == Value::Bool(true) {
            return Some(format!("{field} is not allowed"));
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if !v["hostPath"].is_null() {
            return Some(format!(
                "volume {} uses hostPath",
                v["name"].as_str().unwrap_or_default()
            ));
        }
    }
    let pod_sc = &spec["securityContext"];
    if let Some(m) = security_context(pod_sc, "the pod") {
        return Some(m);
    }
    for s in pod_sc["sysctls"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        if !SAFE_SYSCTLS.contains(&name) {
            return Some(format!("sysctl {name} is not allowed"));
        }
    }
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        for (k, v) in annotations {
            if k.starts_with(APPARMOR_ANNOTATION) {
                let v = v.as_str().unwrap_or_default();
                if v != "runtime/default" && !v.starts_with("localhost/") {
                    return Some(format!("AppArmor profile of annotation {k} is not allowed"));
                }
            }
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default();
            let who = format!("container {name}");
            let sc = &c["securityContext"];
            if sc["privileged"] == Value::Bool(true) {
                return Some(format!("{who} is privileged"));
            }
            if let Some(m) = security_context(sc, &who) {
                return Some(m);
            }
            for cap in sc["capabilities"]["add"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !BASELINE_CAPABILITIES.contains(&cap) {
                    return Some(format!("{who} adds capability {cap}"));
                }
            }
            if sc["procMount"].as_str().is_some_and(|p| p != "Default") {
                return Some(format!("{who} sets procMount"));
            }
            for p in c["ports"].as_array().into_iter().flatten() {
                if p["hostPort"].as_i64().is_some_and(|h| h != 0) {
                    return Some(format!("{who} uses a hostPort"));
                }
            }
        }
    }
    None
}

/// Checks shared by pod- and container-level security contexts.
fn security_context(sc: &Value, who: &str) -> Option<String> {
    if sc["seccompProfile"]["type"].as_str() == Some("Unconfined") {
        return Some(format!("{who} sets seccomp Unconfined"));
    }
    if sc["appArmorProfile"]["type"].as_str() == Some("Unconfined") {
        return Some(format!("{who} sets AppArmor Unconfined"));
    }
    if sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
        return Some(format!("{who} is a Windows host process"));
    }
    let se = &sc["seLinuxOptions"];
    if se["type"]
        .as_str()
        .is_some_and(|t| !t.is_empty() && !SELINUX_TYPES.contains(&t))
        || se["user"].as_str().is_some_and(|u| !u.is_empty())
        || se["role"].as_str().is_some_and(|r| !r.is_empty())
    {
        return Some(format!("{who} sets SELinux options baseline forbids"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(pod_spec: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": pod_spec}}})
    }

    fn container(sc: Value) -> Value {
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "securityContext": sc}]})
    }

    #[test]
    fn the_sample_jobs_pass_baseline() {
        for yaml in [
            include_str!("../../../config/samples/postcreate-hooks/hello.yaml"),
            include_str!("../../../config/samples/postcreate-hooks/postgres.yaml"),
            include_str!("../../../config/samples/postcreate-hooks/openshift-crds.yaml"),
        ] {
            let hook: Value = serde_saphyr::from_str(yaml).unwrap();
            for t in hook["spec"]["templates"].as_array().unwrap() {
                let group = super::super::policy::group_of(t["apiVersion"].as_str().unwrap());
                assert_eq!(
                    baseline_violation(group, t["kind"].as_str().unwrap(), t),
                    None
                );
            }
        }
        let fine = container(
            json!({"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}, "runAsUser": 0}),
        );
        assert_eq!(baseline_violation("batch", "Job", &job(fine)), None);
    }

    #[test]
    fn every_baseline_breach_is_found() {
        let cases = [
            (container(json!({"privileged": true})), "privileged"),
            (
                container(json!({"capabilities": {"add": ["SYS_ADMIN"]}})),
                "SYS_ADMIN",
            ),
            (
                container(json!({"seccompProfile": {"type": "Unconfined"}})),
                "seccomp",
            ),
            (container(json!({"procMount": "Unmasked"})), "procMount"),
            (
                container(json!({"seLinuxOptions": {"type": "spc_t"}})),
                "SELinux",
            ),
            (
                json!({"hostNetwork": true, "containers": []}),
                "hostNetwork",
            ),
            (json!({"hostPID": true, "containers": []}), "hostPID"),
            (
                json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}], "containers": []}),
                "hostPath",
            ),
            (
                json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
                "hostPort",
            ),
            (
                json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}, "containers": []}),
                "kernel.msgmax",
            ),
        ];
        for (spec, why) in cases {
            let m = baseline_violation("batch", "Job", &job(spec.clone())).unwrap_or_default();
            assert!(m.contains(why), "{spec}: {m}");
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": container(json!({"privileged": true}))});
        assert!(baseline_violation("", "Pod", &pod).is_some());
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": container(json!({"privileged": true}))}}}}});
        assert!(baseline_violation("batch", "CronJob", &cron).is_some());
        assert_eq!(baseline_violation("", "ConfigMap", &json!({})), None);
    }
}
