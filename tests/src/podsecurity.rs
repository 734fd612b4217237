//! Pod Security admission as kube-apiserver runs it (k8s.io/pod-security-admission):
//! the `pod-security.kubernetes.io/*` namespace labels, the baseline and restricted
//! checks in upstream's order with its reasons and details, pods refused at the
//! enforce level and pod templates of workloads answered with warnings. Pure: objects
//! come in as JSON. The checks live in [`baseline`] and [`restricted`]; a policy
//! version selects the rules of that version (`latest`: the newest modelled, v1.37).
//! `audit` is parsed but has no effect: testenv keeps no audit log, where upstream
//! records `pod-security.kubernetes.io/audit-violations`.

mod baseline;
mod restricted;

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

/// A level at a version (`baseline:latest`, `restricted:v1.30`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub version: String,
}

impl LevelVersion {
    /// The policy's minor version; `latest` is newer than any.
    fn minor(&self) -> u32 {
        self.version
            .strip_prefix("v1.")
            .and_then(|m| m.parse().ok())
            .unwrap_or(u32::MAX)
    }
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

/// The `ForbiddenDetail` of every failed check at `lv`, joined as upstream does
/// (`privileged (container "x" must not set ...), hostPath volumes (volume "y")`);
/// None when the pod passes.
pub fn evaluate(lv: &LevelVersion, metadata: &Value, spec: &Value) -> Option<String> {
    use baseline::*;
    use restricted::*;
    if lv.level == Level::Privileged {
        return None;
    }
    let pod = Pod {
        metadata,
        spec,
        minor: lv.minor(),
    };
    // Baseline checks sorted by check ID; restricted runs the baseline ones it does
    // not override (capabilities, hostPath, seccomp and, from v1.35, procMount),
    // then its own, sorted by ID.
    let strict = lv.level == Level::Restricted;
    let strict_proc_mount = strict && pod.minor >= 35;
    let mut checks: Vec<Check> = vec![app_armor];
    if !strict {
        checks.push(capabilities_baseline);
    }
    checks.push(host_namespaces);
    if !strict {
        checks.push(host_path_volumes);
    }
    checks.extend([host_ports as Check, host_probes, privileged]);
    if !strict_proc_mount {
        checks.push(proc_mount_baseline);
    }
    checks.push(selinux);
    if !strict {
        checks.push(seccomp_baseline);
    }
    checks.extend([sysctls as Check, windows_host_process]);
    if strict {
        checks.extend([allow_privilege_escalation as Check, capabilities_restricted]);
        if strict_proc_mount {
            checks.push(proc_mount);
        }
        checks.extend([
            restricted_volumes as Check,
            run_as_non_root,
            run_as_user,
            seccomp_restricted,
        ]);
    }
    let failures: Vec<String> = checks
        .iter()
        .filter_map(|check| check(&pod))
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
    if is_pod && let Some(detail) = evaluate(&policy.enforce, metadata, spec) {
        verdict.forbidden = Some(format!(
            "violates PodSecurity \"{}\": {detail}",
            policy.enforce
        ));
        return verdict;
    }
    if let Some(detail) = evaluate(&policy.warn, metadata, spec) {
        verdict.warnings.push(format!(
            "would violate PodSecurity \"{}\": {detail}",
            policy.warn
        ));
    }
    verdict
}

/// What Pod Security looks at, and the policy version (`u32::MAX` for `latest`).
pub(crate) struct Pod<'a> {
    pub metadata: &'a Value,
    pub spec: &'a Value,
    pub minor: u32,
}

/// A failed check: its `ForbiddenReason` and `ForbiddenDetail`.
type Finding = Option<(&'static str, String)>;

type Check = fn(&Pod) -> Finding;

pub(crate) fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Init, regular and ephemeral containers, in the order upstream visits them.
pub(crate) fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| list(&spec[k]))
}

pub(crate) fn name(c: &Value) -> String {
    c["name"].as_str().unwrap_or_default().to_string()
}

pub(crate) fn join_quote(items: &[String]) -> String {
    match items {
        [] => String::new(),
        _ => format!("\"{}\"", items.join("\", \"")),
    }
}

pub(crate) fn plural(singular: &'static str, many: &'static str, n: usize) -> &'static str {
    if n == 1 { singular } else { many }
}

/// `container "a"` / `containers "a", "b"`.
pub(crate) fn containers_named(names: &[String]) -> String {
    format!(
        "{} {}",
        plural("container", "containers", names.len()),
        join_quote(names)
    )
}

pub(crate) fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

pub(crate) fn is_windows(spec: &Value) -> bool {
    spec["os"]["name"] == "windows"
}

pub(crate) fn user_namespaced(spec: &Value) -> bool {
    spec["hostUsers"] == Value::Bool(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn latest(level: Level) -> LevelVersion {
        LevelVersion {
            level,
            version: "latest".into(),
        }
    }

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
        let detail = evaluate(&latest(Level::Baseline), &json!({}), &spec).unwrap();
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
        assert_eq!(evaluate(&latest(Level::Baseline), &json!({}), &plain), None);
        assert_eq!(
            evaluate(&latest(Level::Restricted), &json!({}), &plain).unwrap(),
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
            evaluate(&latest(Level::Restricted), &json!({}), &hardened).unwrap(),
            "restricted volume types (volume \"n\" uses restricted volume type \"nfs\")"
        );
        let unconfined = json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}, "runAsUser": 0}, "containers": [{"name": "c"}]});
        assert_eq!(
            evaluate(&latest(Level::Baseline), &json!({}), &unconfined).unwrap(),
            "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    #[test]
    fn baseline_checks_apparmor_selinux_proc_mount_sysctls_and_host_process() {
        let metadata = json!({"annotations": {
            "container.apparmor.security.beta.kubernetes.io/a": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/b": "localhost/mine",
        }});
        let spec = json!({
            "securityContext": {
                "appArmorProfile": {"type": "Unconfined"},
                "seLinuxOptions": {"type": "spc_t", "user": "root"},
                "sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "vm.swappiness", "value": "1"}],
                "windowsOptions": {"hostProcess": true}
            },
            "containers": [
                {"name": "a", "securityContext": {"procMount": "Unmasked", "seLinuxOptions": {"role": "sysadm_r"}, "appArmorProfile": {"type": "RuntimeDefault"}}},
                {"name": "b", "securityContext": {"appArmorProfile": {"type": "Unconfined"}, "seLinuxOptions": {"type": "container_t"}}}
            ]
        });
        assert_eq!(
            evaluate(&latest(Level::Baseline), &metadata, &spec).unwrap(),
            "forbidden AppArmor profiles (pod and container \"b\" and annotation must not set AppArmor profile type to \"Unconfined\", \"container.apparmor.security.beta.kubernetes.io/a=\"unconfined\"\"), \
             procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\"), \
             seLinuxOptions (pod and container \"a\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set; role may not be set), \
             forbidden sysctls (kernel.msgmax, vm.swappiness), \
             hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"
        );
        // The allowed values pass.
        let fine = json!({
            "securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}, "seLinuxOptions": {"type": "container_init_t", "level": "s0:c1"},
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
            "containers": [{"name": "c", "securityContext": {"procMount": "Default"}}]
        });
        let ok_meta = json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}});
        assert_eq!(evaluate(&latest(Level::Baseline), &ok_meta, &fine), None);
    }

    #[test]
    fn the_policy_version_selects_the_rules_of_that_version() {
        let at = |level, version: &str| LevelVersion {
            level,
            version: version.into(),
        };
        let sysctl = json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]}, "containers": [{"name": "c"}]});
        assert_eq!(
            evaluate(&at(Level::Baseline, "v1.31"), &json!({}), &sysctl).unwrap(),
            "forbidden sysctls (net.ipv4.tcp_rmem)"
        );
        assert_eq!(
            evaluate(&at(Level::Baseline, "v1.32"), &json!({}), &sysctl),
            None
        );
        // A probe naming a host: forbidden from v1.34.
        let probe = json!({"containers": [{"name": "c", "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]});
        assert_eq!(
            evaluate(&at(Level::Baseline, "v1.33"), &json!({}), &probe),
            None
        );
        assert_eq!(
            evaluate(&latest(Level::Baseline), &json!({}), &probe).unwrap(),
            "probe or lifecycle host (container \"c\" uses probe or lifecycle host \"10.0.0.1\")"
        );
        // An unmasked /proc in a user namespace: baseline allows it from v1.35,
        // restricted never does.
        let userns = json!({"hostUsers": false, "containers": [{"name": "c", "securityContext": {"procMount": "Unmasked"}}]});
        assert!(evaluate(&at(Level::Baseline, "v1.34"), &json!({}), &userns).is_some());
        assert_eq!(
            evaluate(&latest(Level::Baseline), &json!({}), &userns),
            None
        );
        let hardened = json!({
            "hostUsers": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"procMount": "Unmasked", "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        });
        assert_eq!(
            evaluate(&latest(Level::Restricted), &json!({}), &hardened).unwrap(),
            "procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")"
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
