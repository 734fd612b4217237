//! Pod Security admission as kube-apiserver runs it (k8s.io/pod-security-admission):
//! the `pod-security.kubernetes.io/*` namespace labels, the baseline and restricted
//! checks in upstream's order with its reasons and details, pods refused at the
//! enforce level and pod templates of workloads answered with warnings. Pure: objects
//! come in as JSON. Checks not modelled here (AppArmor, SELinux, procMount, sysctls,
//! Windows host process, probe hosts) allow everything.

use serde_json::Value;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standard, least strict first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a version (`baseline:latest`, `restricted:v1.30`). The checks modelled
/// here are the same at every version since v1.25, so the version only shows in texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.name(), self.version)
    }
}

/// The enforce, audit and warn modes a namespace's labels select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

fn privileged_latest() -> LevelVersion {
    LevelVersion {
        level: Level::Privileged,
        version: "latest".into(),
    }
}

fn parse_version(v: &str) -> Option<String> {
    if v == "latest" {
        return Some(v.into());
    }
    let minor = v.strip_prefix("v1.")?;
    (!minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())).then(|| v.to_string())
}

/// `api.PolicyToEvaluate` with the default policy (privileged everywhere): a bad enforce
/// level fails closed (restricted), bad audit/warn levels fail open, and warn follows an
/// explicit, stricter enforce level unless it is set itself.
pub fn policy(namespace: &Value) -> Policy {
    let label = |mode: &str| {
        namespace
            .pointer("/metadata/labels")
            .and_then(|l| l.get(format!("{LABEL_PREFIX}{mode}")))
            .and_then(Value::as_str)
    };
    let version = |mode: &str| {
        label(&format!("{mode}-version"))
            .map(|v| parse_version(v).unwrap_or_else(|| "latest".into()))
    };
    let mut p = Policy {
        enforce: privileged_latest(),
        audit: privileged_latest(),
        warn: privileged_latest(),
    };
    let mut enforce_set = false;
    if let Some(level) = label("enforce") {
        enforce_set = Level::parse(level).is_some();
        p.enforce.level = Level::parse(level).unwrap_or(Level::Restricted);
    }
    if let Some(v) = version("enforce") {
        p.enforce.version = v;
    }
    if let Some(level) = label("audit") {
        p.audit.level = Level::parse(level).unwrap_or(Level::Privileged);
    }
    if let Some(v) = version("audit") {
        p.audit.version = v;
    }
    if let Some(level) = label("warn") {
        p.warn.level = Level::parse(level).unwrap_or(Level::Privileged);
    }
    let warn_version = version("warn");
    if let Some(v) = &warn_version {
        p.warn.version = v.clone();
    }
    if label("warn").is_none() && enforce_set && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if warn_version.is_none() {
            p.warn.version = p.enforce.version.clone();
        }
    }
    p
}

/// The pod metadata and spec that Pod Security checks in an object of `group/plural`:
/// the pod itself, or the pod template of a workload. None for other kinds.
pub fn pod_parts<'v>(group: &str, plural: &str, obj: &'v Value) -> Option<(&'v Value, &'v Value)> {
    let template = match (group, plural) {
        ("", "pods") => return Some((&obj["metadata"], &obj["spec"])),
        ("", "podtemplates") => &obj["template"],
        ("", "replicationcontrollers")
        | ("apps", "replicasets" | "deployments" | "daemonsets" | "statefulsets")
        | ("batch", "jobs") => &obj["spec"]["template"],
        ("batch", "cronjobs") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    (!template.is_null()).then(|| (&template["metadata"], &template["spec"]))
}

/// Whether a pod update changes what Pod Security looks at (`isSignificantPodUpdate`):
/// the number of (init) containers, an image, or an ephemeral container.
pub fn significant_pod_update(new: &Value, old: &Value) -> bool {
    let images = |pod: &Value, key: &str| -> Vec<Value> {
        list(&pod["spec"][key])
            .iter()
            .map(|c| c["image"].clone())
            .collect()
    };
    if images(new, "containers") != images(old, "containers")
        || images(new, "initContainers") != images(old, "initContainers")
    {
        return true;
    }
    list(&new["spec"]["ephemeralContainers"]).iter().any(|c| {
        !list(&old["spec"]["ephemeralContainers"])
            .iter()
            .any(|o| o["name"] == c["name"] && o["image"] == c["image"])
    })
}

/// The `ForbiddenDetail` of every failed check at `level`, joined as upstream does
/// (`privileged (container "x" must not set ...), hostPath volumes (volume "y")`);
/// None when the pod passes.
pub fn evaluate(level: Level, metadata: &Value, spec: &Value) -> Option<String> {
    if level == Level::Privileged {
        return None;
    }
    // Baseline checks, then restricted ones, each group sorted by check ID; restricted
    // replaces the baseline capabilities, hostPath and seccomp checks with its own.
    let checks: &[Check] = match level {
        Level::Restricted => &[
            host_namespaces,
            host_ports,
            privileged,
            allow_privilege_escalation,
            capabilities_restricted,
            restricted_volumes,
            run_as_non_root,
            run_as_user,
            seccomp_restricted,
        ],
        _ => &[
            capabilities_baseline,
            host_namespaces,
            host_path_volumes,
            host_ports,
            privileged,
            seccomp_baseline,
        ],
    };
    let failures: Vec<String> = checks
        .iter()
        .filter_map(|check| check(metadata, spec))
        .map(|(reason, detail)| {
            if detail.is_empty() {
                reason.to_string()
            } else {
                format!("{reason} ({detail})")
            }
        })
        .collect();
    (!failures.is_empty()).then(|| failures.join(", "))
}

/// What admission says about an object: the enforce refusal (pods only) and warnings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub forbidden: Option<String>,
    pub warnings: Vec<String>,
}

/// `EvaluatePod`: pods are checked at the enforce level (refused with `violates
/// PodSecurity "LEVEL:VERSION": ...`), pods and templates at the warn level (a warning
/// `would violate PodSecurity ...`, not added to a request refused anyway).
pub fn admit(policy: &Policy, metadata: &Value, spec: &Value, is_pod: bool) -> Verdict {
    let mut verdict = Verdict::default();
    if is_pod && let Some(detail) = evaluate(policy.enforce.level, metadata, spec) {
        verdict.forbidden = Some(format!(
            "violates PodSecurity \"{}\": {detail}",
            policy.enforce
        ));
        return verdict;
    }
    if let Some(detail) = evaluate(policy.warn.level, metadata, spec) {
        verdict.warnings.push(format!(
            "would violate PodSecurity \"{}\": {detail}",
            policy.warn
        ));
    }
    verdict
}

type Check = fn(&Value, &Value) -> Option<(&'static str, String)>;

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Init, regular and ephemeral containers, in the order upstream visits them.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| list(&spec[k]))
}

fn name(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

fn join_quote(items: &[String]) -> String {
    match items {
        [] => String::new(),
        _ => format!("\"{}\"", items.join("\", \"")),
    }
}

fn plural(singular: &'static str, many: &'static str, n: usize) -> &'static str {
    if n == 1 { singular } else { many }
}

/// `container "a"` / `containers "a", "b"`.
fn containers_named(names: &[String]) -> String {
    format!(
        "{} {}",
        plural("container", "containers", names.len()),
        join_quote(names)
    )
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn is_windows(spec: &Value) -> bool {
    spec["os"]["name"] == "windows"
}

fn user_namespaced(spec: &Value) -> bool {
    spec["hostUsers"] == Value::Bool(false)
}

const DEFAULT_CAPABILITIES: [&str; 13] = [
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

fn added_capabilities(c: &Value) -> Vec<String> {
    list(&c["securityContext"]["capabilities"]["add"])
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn capabilities_baseline(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
    let (mut bad, mut caps) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        let extra: Vec<String> = added_capabilities(c)
            .into_iter()
            .filter(|cap| !DEFAULT_CAPABILITIES.contains(&cap.as_str()))
            .collect();
        if !extra.is_empty() {
            bad.push(name(c));
            caps.extend(extra);
        }
    }
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_named(&bad),
            join_quote(&sorted_unique(caps))
        );
        ("non-default capabilities", detail)
    })
}

fn host_namespaces(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
    let used: Vec<&str> = [
        ("hostNetwork", "hostNetwork=true"),
        ("hostPID", "hostPID=true"),
        ("hostIPC", "hostIPC=true"),
    ]
    .into_iter()
    .filter(|(key, _)| spec[*key] == Value::Bool(true))
    .map(|(_, text)| text)
    .collect();
    (!used.is_empty()).then(|| ("host namespaces", used.join(", ")))
}

fn host_path_volumes(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
    let names: Vec<String> = list(&spec["volumes"])
        .iter()
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(name)
        .collect();
    (!names.is_empty()).then(|| {
        let detail = format!(
            "{} {}",
            plural("volume", "volumes", names.len()),
            join_quote(&names)
        );
        ("hostPath volumes", detail)
    })
}

fn host_ports(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
    let (mut bad, mut ports) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        let used: Vec<i64> = list(&c["ports"])
            .iter()
            .filter_map(|p| p["hostPort"].as_i64())
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            bad.push(name(c));
            ports.extend(used.iter().map(i64::to_string));
        }
    }
    (!bad.is_empty()).then(|| {
        // A set of strings: sorted as text, as upstream's sets.String does.
        let ports = sorted_unique(ports);
        let detail = format!(
            "{} {} {} {}",
            containers_named(&bad),
            plural("uses", "use", bad.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        );
        ("hostPort", detail)
    })
}

fn privileged(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| c["securityContext"]["privileged"] == Value::Bool(true))
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} must not set securityContext.privileged=true",
            containers_named(&bad)
        );
        ("privileged", detail)
    })
}

fn seccomp_type(holder: &Value) -> Option<&str> {
    holder["securityContext"]["seccompProfile"]["type"].as_str()
}

fn valid_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

/// The seccomp check of both levels: baseline refuses only `Unconfined`; restricted
/// also requires a profile on the pod or on every container.
fn seccomp(spec: &Value, restricted: bool) -> Option<(&'static str, String)> {
    let bad_type = |t: &str| {
        if restricted {
            !valid_seccomp(t)
        } else {
            t == "Unconfined"
        }
    };
    let (mut setters, mut values) = (Vec::new(), Vec::new());
    let pod_type = seccomp_type(spec);
    let pod_set = pod_type.is_some_and(valid_seccomp);
    if let Some(t) = pod_type.filter(|t| bad_type(t)) {
        setters.push("pod".to_string());
        values.push(t.to_string());
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match seccomp_type(c) {
            Some(t) if bad_type(t) => {
                explicit.push(name(c));
                values.push(t.to_string());
            }
            Some(_) => {}
            None if !pod_set => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_named(&explicit));
    }
    if !setters.is_empty() {
        let detail = format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&sorted_unique(values))
        );
        return Some(("seccompProfile", detail));
    }
    (restricted && !implicit.is_empty()).then(|| {
        let detail = format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_named(&implicit)
        );
        ("seccompProfile", detail)
    })
}

fn seccomp_baseline(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
    seccomp(spec, false)
}

fn seccomp_restricted(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
    if is_windows(spec) {
        return None;
    }
    seccomp(spec, true)
}

fn allow_privilege_escalation(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
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

fn capabilities_restricted(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
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

fn restricted_volumes(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
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

fn run_as_non_root(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
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

fn run_as_user(_: &Value, spec: &Value) -> Option<(&'static str, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(labels: Value) -> Value {
        json!({"metadata": {"name": "n", "labels": labels}})
    }

    #[test]
    fn labels_select_levels_and_warn_follows_a_stricter_enforce() {
        let p = policy(&ns(
            json!({"pod-security.kubernetes.io/enforce": "baseline"}),
        ));
        assert_eq!(p.enforce.to_string(), "baseline:latest");
        assert_eq!(p.warn.to_string(), "baseline:latest");
        assert_eq!(p.audit.to_string(), "privileged:latest");
        let p = policy(&ns(json!({
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.30",
            "pod-security.kubernetes.io/warn": "restricted",
        })));
        assert_eq!(p.enforce.to_string(), "baseline:v1.30");
        assert_eq!(p.warn.to_string(), "restricted:latest");
        // A bad enforce level fails closed, a bad warn level open.
        let p = policy(&ns(json!({
            "pod-security.kubernetes.io/enforce": "strict",
            "pod-security.kubernetes.io/warn": "loud",
        })));
        assert_eq!(p.enforce.level, Level::Restricted);
        assert_eq!(p.warn.level, Level::Privileged);
        assert_eq!(
            policy(&json!({"metadata": {}})).enforce.level,
            Level::Privileged
        );
    }

    #[test]
    fn baseline_refuses_privileged_host_namespaces_and_host_paths_in_upstream_order() {
        let spec = json!({
            "hostNetwork": true, "hostPID": true,
            "containers": [
                {"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9, "hostPort": 10}]},
                {"name": "b", "securityContext": {"privileged": true}}
            ],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}, {"name": "tmp", "emptyDir": {}}]
        });
        let detail = evaluate(Level::Baseline, &json!({}), &spec).unwrap();
        assert_eq!(
            detail,
            "non-default capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
             host namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volume \"root\"), \
             hostPort (container \"a\" uses hostPorts 10, 8080), \
             privileged (containers \"a\", \"b\" must not set securityContext.privileged=true)"
        );
        let p = policy(&ns(
            json!({"pod-security.kubernetes.io/enforce": "baseline"}),
        ));
        let v = admit(&p, &json!({}), &spec, true);
        assert!(
            v.forbidden
                .unwrap()
                .starts_with("violates PodSecurity \"baseline:latest\": non-default capabilities")
        );
        assert!(v.warnings.is_empty());
        // A template is never refused, only warned about.
        let v = admit(&p, &json!({}), &spec, false);
        assert!(v.forbidden.is_none());
        assert!(v.warnings[0].starts_with("would violate PodSecurity \"baseline:latest\": "));
    }

    #[test]
    fn restricted_requires_the_hardened_settings_and_accepts_them() {
        let plain = json!({"containers": [{"name": "app", "image": "x"}]});
        assert_eq!(evaluate(Level::Baseline, &json!({}), &plain), None);
        assert_eq!(
            evaluate(Level::Restricted, &json!({}), &plain).unwrap(),
            "allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let hardened = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "s", "secret": {"secretName": "x"}}, {"name": "n", "nfs": {"server": "h", "path": "/"}}]
        });
        assert_eq!(
            evaluate(Level::Restricted, &json!({}), &hardened).unwrap(),
            "restricted volume types (volume \"n\" uses restricted volume type \"nfs\")"
        );
        let unconfined = json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}, "runAsUser": 0}, "containers": [{"name": "c"}]});
        assert_eq!(
            evaluate(Level::Baseline, &json!({}), &unconfined).unwrap(),
            "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    #[test]
    fn only_image_and_container_changes_are_significant_pod_updates() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        let mut relabelled = old.clone();
        relabelled["metadata"] = json!({"labels": {"a": "b"}});
        assert!(!significant_pod_update(&relabelled, &old));
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("x:2");
        assert!(significant_pod_update(&new, &old));
    }
}
