//! The baseline checks of Pod Security, each named after its upstream check ID.

use serde_json::Value;

use super::{
    Finding, Pod, containers, containers_named, join_quote, list, name, plural, sorted_unique,
    user_namespaced,
};

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

pub(super) fn added_capabilities(c: &Value) -> Vec<String> {
    list(&c["securityContext"]["capabilities"]["add"])
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

pub(super) fn capabilities_baseline(pod: &Pod) -> Finding {
    let spec = pod.spec;
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

pub(super) fn host_namespaces(pod: &Pod) -> Finding {
    let spec = pod.spec;
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

pub(super) fn host_path_volumes(pod: &Pod) -> Finding {
    let spec = pod.spec;
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

pub(super) fn host_ports(pod: &Pod) -> Finding {
    let spec = pod.spec;
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

pub(super) fn privileged(pod: &Pod) -> Finding {
    let spec = pod.spec;
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
pub(super) fn seccomp(spec: &Value, restricted: bool) -> Option<(&'static str, String)> {
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

pub(super) fn seccomp_baseline(pod: &Pod) -> Finding {
    let spec = pod.spec;
    seccomp(spec, false)
}

/// AppArmor: the pod's and containers' `securityContext.appArmorProfile.type` must be
/// `RuntimeDefault` or `Localhost`, and the beta annotations `runtime/default`,
/// `localhost/*` or empty.
pub(super) fn app_armor(pod: &Pod) -> Finding {
    let spec = pod.spec;
    let allowed_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let profile_type = |holder: &Value| -> Option<String> {
        let profile = &holder["securityContext"]["appArmorProfile"];
        (!profile.is_null()).then(|| profile["type"].as_str().unwrap_or_default().to_string())
    };
    let (mut setters, mut values) = (Vec::new(), Vec::new());
    if let Some(t) = profile_type(spec).filter(|t| !allowed_type(t)) {
        setters.push("pod".to_string());
        values.push(t);
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(t) = profile_type(c).filter(|t| !allowed_type(t)) {
            bad.push(name(c));
            values.push(t);
        }
    }
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    let mut values = sorted_unique(values);
    let mut annotations: Vec<String> = pod.metadata["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("container.apparmor.security.beta.kubernetes.io/"))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            let allowed = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            // Go's %q, which JSON string quoting matches for ordinary text.
            (!allowed).then(|| format!("{k}={}", Value::from(v)))
        })
        .collect();
    annotations.sort();
    if !annotations.is_empty() {
        setters.push(plural("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    (!setters.is_empty()).then(|| {
        let reason = plural(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        );
        let detail = format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        );
        (reason, detail)
    })
}

/// Probe and lifecycle handlers must not name a host (policy v1.34 and later).
pub(super) fn host_probes(pod: &Pod) -> Finding {
    if pod.minor < 34 {
        return None;
    }
    let (mut bad, mut hosts) = (Vec::new(), Vec::new());
    for c in containers(pod.spec) {
        let handlers = [
            &c["livenessProbe"],
            &c["readinessProbe"],
            &c["startupProbe"],
            &c["lifecycle"]["postStart"],
            &c["lifecycle"]["preStop"],
        ];
        let used: Vec<String> = handlers
            .iter()
            .flat_map(|h| [&h["httpGet"]["host"], &h["tcpSocket"]["host"]])
            .filter_map(|h| h.as_str().filter(|s| !s.is_empty()).map(String::from))
            .collect();
        if !used.is_empty() {
            bad.push(name(c));
            hosts.extend(used);
        }
    }
    (!bad.is_empty()).then(|| {
        let (bad, hosts) = (sorted_unique(bad), sorted_unique(hosts));
        let detail = format!(
            "{} {} {} {}",
            containers_named(&bad),
            plural("uses", "use", bad.len()),
            plural(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        );
        ("probe or lifecycle host", detail)
    })
}

/// `securityContext.procMount` must be `Default`, whatever the pod (baseline before
/// v1.35, restricted from v1.35).
pub(super) fn proc_mount(pod: &Pod) -> Finding {
    let (mut bad, mut kinds) = (Vec::new(), Vec::new());
    for c in containers(pod.spec) {
        if let Some(kind) = c["securityContext"]["procMount"].as_str()
            && kind != "Default"
        {
            bad.push(name(c));
            kinds.push(kind.to_string());
        }
    }
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} must not set securityContext.procMount to {}",
            containers_named(&bad),
            join_quote(&sorted_unique(kinds))
        );
        ("procMount", detail)
    })
}

/// Baseline's procMount check: from v1.35 a pod in its own user namespace
/// (`hostUsers: false`) may unmask /proc.
pub(super) fn proc_mount_baseline(pod: &Pod) -> Finding {
    if pod.minor >= 35 && user_namespaced(pod.spec) {
        return None;
    }
    proc_mount(pod)
}

const SELINUX_TYPES: [&str; 4] = ["", "container_t", "container_init_t", "container_kvm_t"];

/// SELinux: the type from an allow-list, no user, no role.
pub(super) fn selinux(pod: &Pod) -> Finding {
    let spec = pod.spec;
    let (mut types, mut user, mut role) = (Vec::new(), false, false);
    let mut invalid = |holder: &Value| -> bool {
        let opts = &holder["securityContext"]["seLinuxOptions"];
        if opts.is_null() {
            return false;
        }
        let field = |k: &str| opts[k].as_str().unwrap_or_default().to_string();
        let mut bad = false;
        if !SELINUX_TYPES.contains(&field("type").as_str()) {
            types.push(field("type"));
            bad = true;
        }
        if !field("user").is_empty() {
            user = true;
            bad = true;
        }
        if !field("role").is_empty() {
            role = true;
            bad = true;
        }
        bad
    };
    let mut setters = Vec::new();
    if invalid(spec) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(spec).filter(|c| invalid(c)).map(name).collect();
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    // Upstream names the user and role only next to a bad type.
    let mut data = Vec::new();
    let types = sorted_unique(types);
    if !types.is_empty() {
        data.push(format!(
            "{} {}",
            plural("type", "types", types.len()),
            join_quote(&types)
        ));
        if user {
            data.push("user may not be set".to_string());
        }
        if role {
            data.push("role may not be set".to_string());
        }
    }
    let detail = format!(
        "{} set forbidden securityContext.seLinuxOptions: {}",
        setters.join(" and "),
        data.join("; ")
    );
    Some(("seLinuxOptions", detail))
}

/// The sysctls a policy version deems safe: namespaced and isolated per pod.
fn safe_sysctl(name: &str, minor: u32) -> bool {
    const SINCE: [(u32, &str); 14] = [
        (0, "kernel.shm_rmid_forced"),
        (0, "net.ipv4.ip_local_port_range"),
        (0, "net.ipv4.tcp_syncookies"),
        (0, "net.ipv4.ping_group_range"),
        (0, "net.ipv4.ip_unprivileged_port_start"),
        (27, "net.ipv4.ip_local_reserved_ports"),
        (29, "net.ipv4.tcp_keepalive_time"),
        (29, "net.ipv4.tcp_fin_timeout"),
        (29, "net.ipv4.tcp_keepalive_intvl"),
        (29, "net.ipv4.tcp_keepalive_probes"),
        (32, "net.ipv4.tcp_rmem"),
        (32, "net.ipv4.tcp_wmem"),
        (37, "net.ipv4.tcp_slow_start_after_idle"),
        (37, "net.ipv4.tcp_notsent_lowat"),
    ];
    SINCE.iter().any(|(v, n)| *n == name && minor >= *v)
}

pub(super) fn sysctls(pod: &Pod) -> Finding {
    let forbidden: Vec<String> = list(&pod.spec["securityContext"]["sysctls"])
        .iter()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !safe_sysctl(n, pod.minor))
        .map(String::from)
        .collect();
    (!forbidden.is_empty()).then(|| ("forbidden sysctls", forbidden.join(", ")))
}

pub(super) fn windows_host_process(pod: &Pod) -> Finding {
    let host_process = |holder: &Value| {
        holder["securityContext"]["windowsOptions"]["hostProcess"] == Value::Bool(true)
    };
    let mut setters = Vec::new();
    if host_process(pod.spec) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(pod.spec)
        .filter(|c| host_process(c))
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_named(&bad));
    }
    (!setters.is_empty()).then(|| {
        let detail = format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        );
        ("hostProcess", detail)
    })
}
