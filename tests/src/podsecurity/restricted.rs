//! The checks the restricted level adds to (or puts in place of) baseline's.

use serde_json::Value;

use super::baseline::{added_capabilities, seccomp};
use super::{
    Finding, Pod, containers, containers_named, is_windows, join_quote, list, name, plural,
    sorted_unique, user_namespaced,
};

pub(super) fn seccomp_restricted(pod: &Pod) -> Finding {
    let spec = pod.spec;
    if is_windows(spec) {
        return None;
    }
    seccomp(spec, true)
}

pub(super) fn allow_privilege_escalation(pod: &Pod) -> Finding {
    let spec = pod.spec;
    if is_windows(spec) {
        return None;
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != Value::Bool(false))
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_named(&bad)
        );
        ("allowPrivilegeEscalation != false", detail)
    })
}

pub(super) fn capabilities_restricted(pod: &Pod) -> Finding {
    let spec = pod.spec;
    if is_windows(spec) {
        return None;
    }
    let (mut no_drop, mut adding, mut caps) = (Vec::new(), Vec::new(), Vec::new());
    for c in containers(spec) {
        let capabilities = &c["securityContext"]["capabilities"];
        let drops_all = list(&capabilities["drop"]).iter().any(|d| d == "ALL");
        if capabilities.is_null() || !drops_all {
            no_drop.push(name(c));
        }
        let extra: Vec<String> = added_capabilities(c)
            .into_iter()
            .filter(|cap| cap != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name(c));
            caps.extend(extra);
        }
    }
    let mut details = Vec::new();
    if !no_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_named(&no_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&adding),
            join_quote(&sorted_unique(caps))
        ));
    }
    (!details.is_empty()).then(|| ("unrestricted capabilities", details.join("; ")))
}

const ALLOWED_VOLUME_SOURCES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

const KNOWN_VOLUME_SOURCES: [&str; 21] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

pub(super) fn restricted_volumes(pod: &Pod) -> Finding {
    let spec = pod.spec;
    let (mut bad, mut types) = (Vec::new(), Vec::new());
    for v in list(&spec["volumes"]) {
        let has = |k: &str| v.get(k).is_some_and(|s| !s.is_null());
        if ALLOWED_VOLUME_SOURCES.iter().any(|&k| has(k)) {
            continue;
        }
        bad.push(name(v));
        let kind = KNOWN_VOLUME_SOURCES.iter().copied().find(|&k| has(k));
        types.push(kind.unwrap_or("unknown").to_string());
    }
    (!bad.is_empty()).then(|| {
        let types = sorted_unique(types);
        let detail = format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", bad.len()),
            join_quote(&bad),
            plural("uses", "use", bad.len()),
            plural(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        );
        ("restricted volume types", detail)
    })
}

pub(super) fn run_as_non_root(pod: &Pod) -> Finding {
    let spec = pod.spec;
    if user_namespaced(spec) {
        return None;
    }
    let mut setters = Vec::new();
    let pod = &spec["securityContext"]["runAsNonRoot"];
    if *pod == Value::Bool(false) {
        setters.push("pod".to_string());
    }
    let pod_non_root = *pod == Value::Bool(true);
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match c["securityContext"]["runAsNonRoot"].as_bool() {
            Some(false) => explicit.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_named(&explicit));
    }
    if !setters.is_empty() {
        let detail = format!(
            "{} must not set securityContext.runAsNonRoot=false",
            setters.join(" and ")
        );
        return Some(("runAsNonRoot != true", detail));
    }
    (!implicit.is_empty()).then(|| {
        let detail = format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_named(&implicit)
        );
        ("runAsNonRoot != true", detail)
    })
}

pub(super) fn run_as_user(pod: &Pod) -> Finding {
    let spec = pod.spec;
    if user_namespaced(spec) {
        return None;
    }
    let mut setters = Vec::new();
    if spec["securityContext"]["runAsUser"].as_i64() == Some(0) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["runAsUser"].as_i64() == Some(0))
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    (!setters.is_empty()).then(|| {
        let detail = format!("{} must not set runAsUser=0", setters.join(" and "));
        ("runAsUser=0", detail)
    })
}
