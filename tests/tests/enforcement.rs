//! What kube-apiserver enforces beyond RBAC's allow/deny, seen through the real
//! kubectl run as a limited ServiceAccount: the escalation and bind checks on roles
//! and bindings, Pod Security admission and immutable fields.

mod support;

use std::path::PathBuf;
use std::process::Output;

use support::Cluster;

/// `bot` in `team` may manage Roles and RoleBindings, read and create ConfigMaps,
/// and create Pods and Jobs, and nothing else (no Secrets at all).
fn limited_bot() -> (Cluster, PathBuf) {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team"]);
    c.ok(&["create", "serviceaccount", "bot", "-n", "team"]);
    c.apply(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: manager, namespace: team}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get, list, create]
- apiGroups: ['']
  resources: [pods]
  verbs: [get, list, create]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-manager, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: manager}
subjects:
- {kind: ServiceAccount, name: bot, namespace: team}
",
        &[],
    );
    let kubeconfig = c.service_account_kubeconfig("team", "bot");
    (c, kubeconfig)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded unexpectedly:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr(out)
}

fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "failed:\n{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const BOT_GROUPS: &str = "(groups=[\"system:serviceaccounts\" \"system:serviceaccounts:team\" \"system:authenticated\"])";

#[test]
fn a_role_granting_secrets_is_refused_without_secret_access() {
    let (c, bot) = limited_bot();
    let out = c.kubectl_as(
        &bot,
        &[
            "create",
            "role",
            "thief",
            "--verb=get,list",
            "--resource=secrets",
        ],
    );
    let err = refused(&out);
    assert!(
        err.contains(&format!(
            "Error from server (Forbidden): roles.rbac.authorization.k8s.io \"thief\" is forbidden: \
             user \"system:serviceaccount:team:bot\" {BOT_GROUPS} is attempting to grant RBAC permissions not currently held:\n\
             {{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"list\"]}}"
        )),
        "{err}"
    );
    // Nothing was stored.
    assert!(
        !c.kubectl(&["get", "role", "thief", "-n", "team"])
            .status
            .success()
    );
    // The same through kubectl apply (server-side and client-side).
    let role = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: thief, namespace: team}
rules:
- {apiGroups: [''], resources: [secrets], verbs: [get]}
";
    for extra in [&["--server-side"][..], &[]] {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let err = refused(&c.kubectl_as_with_stdin(&bot, &args, role));
        assert!(
            err.contains("is attempting to grant RBAC permissions not currently held"),
            "{err}"
        );
    }
    // Widening a role one owns is an escalation too.
    succeeded(&c.kubectl_as(
        &bot,
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get",
            "--resource=configmaps",
        ],
    ));
    let err = refused(&c.kubectl_as(
        &bot,
        &[
            "patch",
            "role",
            "cm-reader",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/rules/0/resources/-","value":"secrets"}]"#,
        ],
    ));
    assert!(
        err.contains("roles.rbac.authorization.k8s.io \"cm-reader\" is forbidden"),
        "{err}"
    );
}

#[test]
fn binding_admin_is_refused_and_a_role_within_ones_rights_allowed() {
    let (c, bot) = limited_bot();
    let err = refused(&c.kubectl_as(
        &bot,
        &[
            "create",
            "rolebinding",
            "bot-admin",
            "--clusterrole=admin",
            "--serviceaccount=team:bot",
        ],
    ));
    assert!(
        err.contains("error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"bot-admin\" is forbidden: user \"system:serviceaccount:team:bot\"")
            && err.contains("is attempting to grant RBAC permissions not currently held:")
            && err.contains("{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:["),
        "{err}"
    );
    // A Role inside the bot's own rights, and a binding of it, are fine.
    succeeded(&c.kubectl_as(
        &bot,
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=configmaps",
        ],
    ));
    succeeded(&c.kubectl_as(
        &bot,
        &[
            "create",
            "rolebinding",
            "other-reader",
            "--role=reader",
            "--serviceaccount=team:default",
        ],
    ));
    // `bind` on exactly the admin ClusterRole (resourceNames) lifts the check for it...
    c.apply(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: admin-binder, namespace: team}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], verbs: [bind], resourceNames: [admin]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-admin-binder, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: admin-binder}
subjects:
- {kind: ServiceAccount, name: bot, namespace: team}
",
        &[],
    );
    succeeded(&c.kubectl_as(
        &bot,
        &[
            "create",
            "rolebinding",
            "default-admin",
            "--clusterrole=admin",
            "--serviceaccount=team:default",
        ],
    ));
    // ...and for nothing else.
    let err = refused(&c.kubectl_as(
        &bot,
        &[
            "create",
            "rolebinding",
            "default-edit",
            "--clusterrole=edit",
            "--serviceaccount=team:default",
        ],
    ));
    assert!(err.contains("\"default-edit\" is forbidden"), "{err}");
    // Changing a binding's roleRef is refused for everyone, cluster-admin included.
    let err = refused(&c.kubectl(&[
        "patch",
        "rolebinding",
        "other-reader",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"manager"}}"#,
    ]));
    assert!(
        err.contains("The RoleBinding \"other-reader\" is invalid: roleRef: Invalid value: ")
            && err.contains(": cannot change roleRef"),
        "{err}"
    );
}

const PRIVILEGED_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: priv, namespace: team}
spec:
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
";

#[test]
fn a_privileged_pod_is_refused_under_baseline_and_templates_get_warnings() {
    let (c, bot) = limited_bot();
    c.ok(&[
        "label",
        "namespace",
        "team",
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let err = refused(&c.kubectl_as_with_stdin(&bot, &["create", "-f", "-"], PRIVILEGED_POD));
    assert!(
        err.contains(
            "Error from server (Forbidden): error when creating \"STDIN\": pods \"priv\" is forbidden: \
             violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
        ),
        "{err}"
    );
    // cluster-admin is held to it too: Pod Security does not look at who asks.
    let err = refused(&c.with_stdin(&["create", "-f", "-"], PRIVILEGED_POD));
    assert!(
        err.contains("violates PodSecurity \"baseline:latest\""),
        "{err}"
    );
    // A plain pod passes baseline, with the restricted warning kubectl prints.
    let plain = PRIVILEGED_POD
        .replace("priv", "plain")
        .replace("    securityContext: {privileged: true}\n", "");
    let out = c.kubectl_as_with_stdin(&bot, &["create", "-f", "-"], &plain);
    let err = succeeded(&out);
    assert!(err.contains("pod/plain created"), "{err}");
    assert!(
        stderr(&out).contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{}",
        stderr(&out)
    );
    // A Job whose template is privileged is stored, with a warning, not refused.
    let job = "apiVersion: batch/v1
kind: Job
metadata: {name: privjob, namespace: team}
spec:
  template:
    spec:
      restartPolicy: Never
      hostNetwork: true
      containers:
      - {name: c, image: busybox, securityContext: {privileged: true}}
";
    let out = c.kubectl_as_with_stdin(&bot, &["create", "-f", "-"], job);
    succeeded(&out);
    assert!(
        stderr(&out).contains("Warning: would violate PodSecurity \"restricted:latest\": host namespaces (hostNetwork=true), privileged"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn immutable_fields_are_refused_with_422() {
    let (c, bot) = limited_bot();
    let job = "apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: team}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox}
";
    succeeded(&c.kubectl_as_with_stdin(&bot, &["apply", "-f", "-"], job));
    let changed = job.replace("image: busybox", "image: alpine");
    let out = c.kubectl_as_with_stdin(&bot, &["apply", "-f", "-"], &changed);
    let err = refused(&out);
    assert!(
        err.contains("The Job \"once\" is invalid: spec.template: Invalid value: ")
            && err.contains(": field is immutable"),
        "{err}"
    );
    // The 422 is what the API answers (kubectl -v shows the status code).
    let out = c.kubectl_as(
        &bot,
        &[
            "patch",
            "job",
            "once",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"alpine"}]"#,
            "-v=6",
        ],
    );
    let err = refused(&out);
    assert!(err.contains("422 Unprocessable Entity"), "{err}");
    // An immutable ConfigMap keeps its data; its labels may still change.
    succeeded(&c.kubectl_as_with_stdin(
        &bot,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sealed, namespace: team}\nimmutable: true\ndata: {k: v}\n",
    ));
    let err = refused(&c.kubectl(&[
        "patch",
        "configmap",
        "sealed",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"data":{"k":"w"}}"#,
    ]));
    assert!(
        err.contains("The ConfigMap \"sealed\" is invalid: data: Forbidden: field is immutable when `immutable` is set"),
        "{err}"
    );
    c.ok(&["label", "configmap", "sealed", "-n", "team", "a=b"]);
    // A Service keeps its cluster IP through a replace that leaves it out, and
    // refuses a change of it.
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: team}\nspec:\n  ports: [{port: 80}]\n",
        &[],
    );
    let ip = c.ok(&[
        "get",
        "svc",
        "web",
        "-n",
        "team",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: team, labels: {a: b}}\nspec:\n  ports: [{port: 80}]\n",
        &[],
    );
    let again = c.ok(&[
        "get",
        "svc",
        "web",
        "-n",
        "team",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(ip, again);
    let err = refused(&c.kubectl(&[
        "patch",
        "svc",
        "web",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"spec":{"clusterIP":"None","clusterIPs":["None"]}}"#,
    ]));
    assert!(
        err.contains("The Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: [\"None\"]: may not change once set"),
        "{err}"
    );
}

/// A pod `name` in `team` with these metadata lines, pod spec lines and container
/// `securityContext` (all YAML flow or block text at the right indentation).
fn pod_yaml(name: &str, metadata: &str, spec: &str, container_sc: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: team
{metadata}spec:
{spec}  containers:
  - name: c
    image: busybox
    securityContext: {container_sc}
"
    )
}

#[test]
fn apparmor_selinux_proc_mount_and_sysctls_are_held_to_the_namespace_level() {
    let (c, bot) = limited_bot();
    c.ok(&[
        "label",
        "namespace",
        "team",
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/enforce-version=v1.34",
    ]);
    let create = |yaml: &str| c.kubectl_as_with_stdin(&bot, &["create", "-f", "-"], yaml);
    // Name, metadata lines, pod spec lines, container securityContext, detail.
    let refusals = [
        (
            "apparmor",
            "  annotations:\n    container.apparmor.security.beta.kubernetes.io/c: unconfined\n",
            "",
            "{appArmorProfile: {type: Unconfined}}",
            "forbidden AppArmor profiles (container \"c\" and annotation must not set AppArmor profile type to \"Unconfined\", \"container.apparmor.security.beta.kubernetes.io/c=\"unconfined\"\")",
        ),
        (
            "selinux",
            "",
            "  securityContext: {seLinuxOptions: {type: spc_t}}\n",
            "{seLinuxOptions: {user: system_u}}",
            "seLinuxOptions (pod and container \"c\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set)",
        ),
        (
            "sysctls",
            "",
            "  securityContext:\n    sysctls: [{name: net.ipv4.tcp_syncookies, value: '1'}, {name: kernel.msgmax, value: '65536'}]\n",
            "{}",
            "forbidden sysctls (kernel.msgmax)",
        ),
        // An unmasked /proc, even in the pod's own user namespace, at v1.34...
        (
            "unmasked",
            "",
            "  hostUsers: false\n",
            "{procMount: Unmasked}",
            "procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")",
        ),
    ];
    for (name, metadata, spec, sc, detail) in refusals {
        let err = refused(&create(&pod_yaml(name, metadata, spec, sc)));
        let want = format!(
            "pods \"{name}\" is forbidden: violates PodSecurity \"baseline:v1.34\": {detail}"
        );
        assert!(err.contains(&want), "{err}");
    }
    let unmasked = pod_yaml(
        "unmasked",
        "",
        "  hostUsers: false\n",
        "{procMount: Unmasked}",
    );
    // ...and allowed by baseline's latest rules, which relax it for user namespaces.
    c.ok(&[
        "label",
        "namespace",
        "team",
        "pod-security.kubernetes.io/enforce-version=latest",
        "--overwrite",
    ]);
    succeeded(&create(&unmasked));
    // Restricted: a pod that sets everything it asks for is admitted without a word.
    c.ok(&[
        "label",
        "namespace",
        "team",
        "pod-security.kubernetes.io/enforce=restricted",
        "--overwrite",
    ]);
    let hardened = pod_yaml(
        "hardened",
        "",
        "  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}, appArmorProfile: {type: RuntimeDefault}}\n",
        "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}",
    );
    let out = create(&hardened);
    succeeded(&out);
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
    let err = refused(&create(
        &hardened
            .replace("hardened", "loose")
            .replace("drop: [ALL], ", ""),
    ));
    assert!(
        err.contains("violates PodSecurity \"restricted:latest\": unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"])"),
        "{err}"
    );
}
