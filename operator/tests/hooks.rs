//! PostCreateHooks end to end against testenv, the operator in-process:
//! the `hello` sample with an overridden message, two awaited hooks holding
//! `Ready`, a hook created after its ControlPlane, a failing Job, refused
//! hooks writing nothing, labels, cleanup of cluster-scoped objects,
//! re-rendering on request, and no Secret value in any log line, Event or
//! status message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use kubeflex_operator::api::ControlPlane;
use kubeflex_testenv::TestEnv;
use kubeflex_testenv::simulate::SimConfig;
use support::{Harness, assert_logs_clean, condition};

const HELLO: &str = include_str!("../../config/samples/postcreate-hooks/hello.yaml");

fn hook_status(cp: &ControlPlane, hook: &str) -> Option<bool> {
    cp.status
        .as_ref()?
        .post_create_hooks
        .as_ref()?
        .get(hook)
        .copied()
}

async fn job(h: &Harness, ns: &str, name: &str) -> Option<Job> {
    Api::<Job>::namespaced(h.client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// A hook with one Job running `echo <msg>`, optionally failing.
fn job_hook(name: &str, fail: Option<&str>) -> String {
    let annotations = match fail {
        Some(m) => format!(
            "        metadata:\n          annotations:\n            testenv.kflex.kubestellar.org/fail: \"{m}\"\n"
        ),
        None => String::new(),
    };
    format!(
        r#"apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: PostCreateHook
metadata:
  name: {name}
spec:
  templates:
  - apiVersion: batch/v1
    kind: Job
    metadata:
      name: "{{{{.HookName}}}}"
    spec:
      backoffLimit: 0
      template:
{annotations}        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
            command: ["echo", "{{{{ .HookName }}}} in {{{{.Namespace}}}}"]
"#
    )
}

/// Per offender `(name, object, why)`, a hook whose harmless ConfigMap
/// `NAME-first` comes before the offending object; returns the
/// ControlPlane's `postCreateHooks` entries.
async fn offending_hooks(h: &Harness, offenders: &[(&str, &str, &str)]) -> String {
    let mut uses = String::new();
    for (name, object, _) in offenders {
        h.create_hook(
            &format!("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: {name}\nspec:\n  templates:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: {name}-first\n    data:\n      a: b\n  - {object}"),
        )
        .await;
        uses.push_str(&format!("  - hookName: {name}\n"));
    }
    uses
}

/// Each offender's hook refused with its reason, nothing of it written
/// (not even its first object, in `ns`), and not recorded as run.
async fn assert_refused_whole(
    h: &Harness,
    cp: &ControlPlane,
    ns: &str,
    offenders: &[(&str, &str, &str)],
) {
    let message = condition(cp, "PostCreateHooks").unwrap().2;
    for (name, _, why) in offenders {
        assert!(
            message.contains(&format!("PostCreateHook {name} refused")),
            "{name}: {message}"
        );
        assert!(message.contains(why), "{name}: {message}");
        let first = Api::<ConfigMap>::namespaced(h.client.clone(), ns)
            .get_opt(&format!("{name}-first"))
            .await
            .unwrap();
        assert!(first.is_none(), "hook {name} wrote its first object");
        assert_eq!(hook_status(cp, name), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_hook_completes_with_the_overridden_message_and_labels_propagate() {
    let h = Harness::start().await;
    let labelled = HELLO.replacen(
        "  name: hello\n",
        "  name: hello\n  labels:\n    kflex.kubestellar.io/flavor: demo\n",
        1,
    );
    h.create_hook(&labelled).await;
    // A value that would break KubeFlex's JSON-text substitution.
    let message = "Hi \\\"there\\\" {{ .Namespace }}";
    h.create_cp(&format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: hi\nspec:\n  type: host\n  waitForPostCreateHooks: true\n  globalVars:\n    MESSAGE: from globals\n  postCreateHooks:\n  - hookName: hello\n    vars:\n      MESSAGE: \"{message}\"\n"
    ))
    .await;
    let cp = h.wait_ready("hi", 60).await;
    assert_eq!(hook_status(&cp, "hello"), Some(true));
    assert_eq!(
        cp.status.as_ref().unwrap().post_create_hook_completed,
        Some(true)
    );
    assert_eq!(condition(&cp, "PostCreateHooks").unwrap().0, "True");
    let j = job(&h, "hi-system", "hello").await.unwrap();
    assert!(j.status.as_ref().unwrap().succeeded.unwrap_or(0) > 0);
    let command = j.spec.unwrap().template.spec.unwrap().containers[0]
        .command
        .clone()
        .unwrap();
    assert_eq!(command, ["echo", "Hi \"there\" {{ .Namespace }}", "World"]);
    assert_eq!(
        j.metadata.labels.unwrap()["kflex.kubestellar.org/control-plane"],
        "hi"
    );
    h.eventually("the hook's label on the ControlPlane", 10, || async {
        let cp = h.cps().get("hi").await.unwrap();
        cp.labels().get("kflex.kubestellar.io/flavor") == Some(&"demo".to_string())
    })
    .await;
    assert_logs_clean(&[]);
    h.assert_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_awaited_hooks_hold_ready_until_their_jobs_complete() {
    let builder = TestEnv::builder().simulation(SimConfig {
        job_duration: Duration::from_secs(4),
        ..SimConfig::default()
    });
    let h = Harness::start_with(builder, support::settings()).await;
    h.create_hook(&job_hook("first", None)).await;
    h.create_hook(&job_hook("second", None)).await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: two\nspec:\n  type: host\n  waitForPostCreateHooks: true\n  postCreateHooks:\n  - hookName: first\n  - hookName: second\n")
        .await;
    let waiting = h
        .wait_cp("two", 30, |cp| {
            condition(cp, "Ready").is_some_and(|c| c.1 == "WaitingForPostCreateHooks")
                && job_exists_hint(cp)
        })
        .await;
    assert_eq!(condition(&waiting, "Ready").unwrap().0, "False");
    assert!(job(&h, "two-system", "first").await.is_some());
    assert!(job(&h, "two-system", "second").await.is_some());
    let cp = h.wait_ready("two", 60).await;
    assert_eq!(hook_status(&cp, "first"), Some(true));
    assert_eq!(hook_status(&cp, "second"), Some(true));
    for name in ["first", "second"] {
        let j = job(&h, "two-system", name).await.unwrap();
        assert!(
            j.status.unwrap().succeeded.unwrap_or(0) > 0,
            "Ready before Job {name} completed"
        );
    }
    let cmd = job(&h, "two-system", "first")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .command
        .clone()
        .unwrap();
    assert_eq!(cmd, ["echo", "first in two-system"]);
    h.assert_no_secret_leaked().await;
}

/// The PostCreateHooks condition says what it waits for.
fn job_exists_hint(cp: &ControlPlane) -> bool {
    condition(cp, "PostCreateHooks").is_some_and(|c| c.2.contains("Job two-system/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_created_after_its_control_plane_is_applied_within_seconds() {
    // No short requeue: only the PostCreateHook watch can pick it up fast.
    let settings = kubeflex_operator::context::Settings {
        ready_requeue: Duration::from_secs(120),
        ..support::settings()
    };
    let h = Harness::start_with(TestEnv::builder(), settings).await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: early\nspec:\n  type: host\n  postCreateHooks:\n  - hookName: late\n")
        .await;
    let cp = h
        .wait_cp("early", 60, |cp| {
            condition(cp, "PostCreateHooks").is_some_and(|c| c.2.contains("late not found"))
        })
        .await;
    assert_eq!(condition(&cp, "PostCreateHooks").unwrap().0, "False");
    let start = Instant::now();
    h.create_hook(&job_hook("late", None)).await;
    let cp = h
        .wait_cp("early", 10, |cp| hook_status(cp, "late") == Some(true))
        .await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(job(&h, "early-system", "late").await.is_some());
    assert_eq!(condition(&cp, "Ready").unwrap().0, "True");
    h.assert_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_shows_up_as_a_condition_naming_it() {
    let h = Harness::start().await;
    h.create_hook(&job_hook("broken", Some("exit status 3")))
        .await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: failing\nspec:\n  type: host\n  waitForPostCreateHooks: true\n  postCreateHook: broken\n")
        .await;
    let cp = h
        .wait_cp("failing", 60, |cp| {
            condition(cp, "Ready").is_some_and(|c| c.1 == "PostCreateHookFailed")
        })
        .await;
    let (status, _, message) = condition(&cp, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(
        message.contains("PostCreateHook broken")
            && message.contains("Job failing-system/broken failed"),
        "{message}"
    );
    let hooks = condition(&cp, "PostCreateHooks").unwrap();
    assert_eq!(
        (hooks.0.as_str(), hooks.1.as_str()),
        ("False", "PostCreateHookFailed")
    );
    assert_eq!(hook_status(&cp, "broken"), None);
    assert_eq!(
        cp.status.as_ref().unwrap().post_create_hook_completed,
        Some(false)
    );
    h.assert_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_reaching_outside_the_tenant_are_refused_and_write_nothing() {
    let h = Harness::start().await;
    // Each hook first has a harmless ConfigMap, then the offending object.
    let offenders = [
        (
            "to-kube-system",
            "apiVersion: batch/v1\n    kind: Job\n    metadata:\n      name: sneaky\n      namespace: kube-system\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: c\n            image: busybox\n",
            "namespace kube-system",
        ),
        (
            "to-neighbour",
            "apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: sneaky\n      namespace: neighbour-system\n",
            "namespace neighbour-system",
        ),
        (
            "to-cluster-admin",
            "apiVersion: rbac.authorization.k8s.io/v1\n    kind: ClusterRoleBinding\n    metadata:\n      name: sneaky\n    roleRef:\n      apiGroup: rbac.authorization.k8s.io\n      kind: ClusterRole\n      name: cluster-admin\n    subjects:\n    - kind: ServiceAccount\n      name: default\n      namespace: \"{{.Namespace}}\"\n",
            "cluster-admin",
        ),
        (
            "to-namespace",
            "apiVersion: v1\n    kind: Namespace\n    metadata:\n      name: sneaky\n",
            "allow-list",
        ),
    ];
    let uses = offending_hooks(&h, &offenders).await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: neighbour\nspec:\n  type: host\n").await;
    h.wait_ready("neighbour", 60).await;
    h.create_cp(&format!("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: tenant\nspec:\n  type: host\n  postCreateHooks:\n{uses}"))
        .await;
    let cp = h
        .wait_cp("tenant", 60, |cp| {
            condition(cp, "PostCreateHooks")
                .is_some_and(|c| c.0 == "False" && c.2.contains("to-namespace"))
        })
        .await;
    assert_refused_whole(&h, &cp, "tenant-system", &offenders).await;
    assert!(job(&h, "kube-system", "sneaky").await.is_none());
    assert!(
        Api::<ConfigMap>::namespaced(h.client.clone(), "neighbour-system")
            .get_opt("sneaky")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(h.client.clone())
            .get_opt("sneaky")
            .await
            .unwrap()
            .is_none()
    );
    // Refused hooks do not make the tenant unavailable when not awaited.
    assert_eq!(condition(&cp, "Ready").unwrap().0, "True");
    h.assert_no_secret_leaked().await;
}

/// A hook with a CRD and a ClusterRole reading it, bound to its own
/// ServiceAccount: the pattern the hook policy keeps working.
const CRD_READER_HOOK: &str = r#"apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: PostCreateHook
metadata:
  name: rbac
spec:
  templates:
  - apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: "widgets{{ ControlPlaneName }}.example.com"
    spec:
      group: example.com
      scope: Namespaced
      names:
        plural: "widgets{{ ControlPlaneName }}"
        singular: "widget{{ ControlPlaneName }}"
        kind: "Widget{{ ControlPlaneName }}"
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            x-kubernetes-preserve-unknown-fields: true
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata:
      name: "{{ ControlPlaneName }}-reader"
    rules:
    - apiGroups: ["example.com"]
      resources: ["widgets{{ ControlPlaneName }}"]
      verbs: ["get", "list", "watch"]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata:
      name: "{{ ControlPlaneName }}-reader"
    roleRef:
      apiGroup: rbac.authorization.k8s.io
      kind: ClusterRole
      name: "{{ ControlPlaneName }}-reader"
    subjects:
    - kind: ServiceAccount
      name: default
      namespace: "{{ Namespace }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_objects_of_a_hook_go_with_the_control_plane() {
    let h = Harness::start().await;
    h.create_hook(CRD_READER_HOOK).await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: rb\nspec:\n  type: host\n  waitForPostCreateHooks: true\n  postCreateHook: rbac\n").await;
    h.wait_ready("rb", 60).await;
    let roles = Api::<ClusterRole>::all(h.client.clone());
    let role = roles.get("rb-reader").await.unwrap();
    assert_eq!(
        role.labels()["kflex.kubestellar.org/post-create-hook"],
        "rbac"
    );
    h.delete_cp("rb").await;
    h.eventually("rb to be gone", 60, || async {
        h.cps().get_opt("rb").await.unwrap().is_none()
    })
    .await;
    assert!(roles.get_opt("rb-reader").await.unwrap().is_none());
    assert!(
        Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(h.client.clone())
            .get_opt("rb-reader")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<CustomResourceDefinition>::all(h.client.clone())
            .get_opt("widgetsrb.example.com")
            .await
            .unwrap()
            .is_none()
    );
    h.assert_no_secret_leaked().await;
}

/// A hook applied in part (the operator stopped between two objects) is
/// not recorded as run; its cluster objects still go with the ControlPlane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_objects_of_an_unrecorded_hook_go_too() {
    let h = Harness::start().await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: part\nspec:\n  type: host\n").await;
    h.wait_ready("part", 60).await;
    // What a first, interrupted apply of hook `half` leaves: one labelled
    // ClusterRole, no status entry, no hash annotation.
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "part-left", "labels": {
            "app.kubernetes.io/managed-by": "kubeflex-operator",
            "kflex.kubestellar.org/control-plane": "part",
            "kflex.kubestellar.org/post-create-hook": "half"}},
        "rules": []
    }))
    .unwrap();
    let roles = Api::<ClusterRole>::all(h.client.clone());
    roles.create(&Default::default(), &role).await.unwrap();
    let cp = h.cps().get("part").await.unwrap();
    assert!(hook_status(&cp, "half").is_none());
    h.delete_cp("part").await;
    h.eventually("part to be gone", 60, || async {
        h.cps().get_opt("part").await.unwrap().is_none()
    })
    .await;
    assert!(roles.get_opt("part-left").await.unwrap().is_none());
}

/// Each way a hook could take over the hosting cluster, refused as a whole
/// (its harmless first object is not written either), with the hook, the
/// template and the rule named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_paths_are_refused_and_write_nothing() {
    let h = Harness::start().await;
    let offenders: [(&str, &str, &str); 6] = [
        (
            "secrets-reader",
            "apiVersion: rbac.authorization.k8s.io/v1\n    kind: ClusterRole\n    metadata:\n      name: esc-secrets\n    rules:\n    - apiGroups: [\"\"]\n      resources: [\"secrets\"]\n      verbs: [\"get\", \"list\"]\n  - apiVersion: rbac.authorization.k8s.io/v1\n    kind: ClusterRoleBinding\n    metadata:\n      name: esc-secrets\n    roleRef:\n      apiGroup: rbac.authorization.k8s.io\n      kind: ClusterRole\n      name: esc-secrets\n    subjects:\n    - kind: ServiceAccount\n      name: default\n      namespace: \"{{ Namespace }}\"\n",
            "#1 ClusterRole/esc-secrets: rule 0 grants get on secrets of group core",
        ),
        (
            "aggregator",
            "apiVersion: rbac.authorization.k8s.io/v1\n    kind: ClusterRole\n    metadata:\n      name: esc-aggregated\n      labels:\n        rbac.authorization.k8s.io/aggregate-to-admin: \"true\"\n    rules: []\n",
            "aggregation label rbac.authorization.k8s.io/aggregate-to-admin",
        ),
        (
            "wildcard-role",
            "apiVersion: rbac.authorization.k8s.io/v1\n    kind: Role\n    metadata:\n      name: esc-all\n    rules:\n    - apiGroups: [\"*\"]\n      resources: [\"*\"]\n      verbs: [\"*\"]\n",
            "wildcards are refused",
        ),
        (
            "privileged-job",
            "apiVersion: batch/v1\n    kind: Job\n    metadata:\n      name: esc-priv\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          hostPID: false\n          containers:\n          - name: c\n            image: busybox\n            securityContext:\n              privileged: true\n",
            "Pod Security baseline: container c is privileged",
        ),
        (
            "host-path-job",
            "apiVersion: batch/v1\n    kind: Job\n    metadata:\n      name: esc-host\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          volumes:\n          - name: root\n            hostPath:\n              path: /\n          containers:\n          - name: c\n            image: busybox\n",
            "volume root uses hostPath",
        ),
        (
            "pki-thief",
            "apiVersion: v1\n    kind: Secret\n    metadata:\n      name: k8s-certs\n    stringData:\n      ca.key: mine\n",
            "is managed by the operator",
        ),
    ];
    let uses = offending_hooks(&h, &offenders).await;
    h.create_cp(&format!("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: esc\nspec:\n  type: host\n  postCreateHooks:\n{uses}"))
        .await;
    let cp = h
        .wait_cp("esc", 60, |cp| {
            condition(cp, "PostCreateHooks")
                .is_some_and(|c| c.0 == "False" && c.2.contains("pki-thief"))
        })
        .await;
    assert_refused_whole(&h, &cp, "esc-system", &offenders).await;
    let roles = Api::<ClusterRole>::all(h.client.clone());
    for role in ["esc-secrets", "esc-aggregated"] {
        assert!(roles.get_opt(role).await.unwrap().is_none(), "{role}");
    }
    assert!(
        Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(h.client.clone())
            .get_opt("esc-secrets")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(h.client.clone(), "esc-system")
            .get_opt("esc-all")
            .await
            .unwrap()
            .is_none()
    );
    for j in ["esc-priv", "esc-host"] {
        assert!(job(&h, "esc-system", j).await.is_none(), "{j}");
    }
    // The namespace itself enforces baseline.
    let ns = Api::<k8s_openapi::api::core::v1::Namespace>::all(h.client.clone())
        .get("esc-system")
        .await
        .unwrap();
    assert_eq!(
        ns.labels()["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    // The sample pattern passes: a reader of the hook's own CRD.
    h.create_hook(CRD_READER_HOOK).await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: fine\nspec:\n  type: host\n  postCreateHook: rbac\n").await;
    h.wait_cp("fine", 60, |cp| hook_status(cp, "rbac") == Some(true))
        .await;
    assert!(roles.get_opt("fine-reader").await.unwrap().is_some());
    h.assert_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_hook_is_rerendered_only_when_asked() {
    let h = Harness::start().await;
    h.create_hook(HELLO).await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: rr\nspec:\n  type: host\n  waitForPostCreateHooks: true\n  postCreateHook: hello\n").await;
    h.wait_ready("rr", 60).await;
    let command = |j: Job| {
        j.spec.unwrap().template.spec.unwrap().containers[0]
            .command
            .clone()
            .unwrap()
    };
    // Once-only by default: a changed default does not re-run the Job.
    h.create_hook(&HELLO.replace("Hello from Defaults", "Second"))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let j = job(&h, "rr-system", "hello").await.unwrap();
    assert_eq!(command(j)[1], "Hello from Defaults");
    // With the annotation it does.
    let annotated = HELLO.replace("Hello from Defaults", "Third").replacen(
        "  name: hello\n",
        "  name: hello\n  annotations:\n    kflex.kubestellar.org/rerender: \"true\"\n",
        1,
    );
    h.create_hook(&annotated).await;
    h.eventually("the re-rendered Job", 20, || async {
        job(&h, "rr-system", "hello")
            .await
            .is_some_and(|j| command(j)[1] == "Third")
    })
    .await;
    h.assert_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_reaches_logs_events_or_status() {
    let h = Harness::start().await;
    let password = format!(
        "pw-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() + 7_391_113
    );
    // One hook writes a Secret from a variable; another fails while
    // rendering an expression over the same value, and a third is refused
    // after rendering it.
    h.create_hook("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: creds\nspec:\n  templates:\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: creds\n    stringData:\n      password: \"{{ .PASSWORD }}\"\n").await;
    h.create_hook("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: bad-expr\nspec:\n  templates:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: x\n    data:\n      n: \"{{ PASSWORD | int }}\"\n      m: \"{{ PASSWORD + 1 }}\"\n").await;
    h.create_hook("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: refused\nspec:\n  templates:\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: leak\n      namespace: kube-system\n    stringData:\n      password: \"{{ .PASSWORD }}\"\n").await;
    // A namespace rendered from the value is refused, naming it; an API
    // error (422) quotes the value (`Invalid value: {labels}`).
    h.create_hook("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: ns-leak\nspec:\n  templates:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: x\n      namespace: \"{{ .PASSWORD }}\"\n").await;
    h.create_hook("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: api-leak\nspec:\n  templates:\n  - apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: leaky\n    spec:\n      selector:\n        matchLabels:\n          app: x\n      template:\n        metadata:\n          labels:\n            app: \"{{ .PASSWORD }}\"\n        spec:\n          containers:\n          - name: c\n            image: busybox\n").await;
    h.create_cp(&format!("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: sec\nspec:\n  type: host\n  globalVars:\n    PASSWORD: \"{password}\"\n  postCreateHooks:\n  - hookName: creds\n  - hookName: bad-expr\n  - hookName: refused\n  - hookName: ns-leak\n  - hookName: api-leak\n"))
        .await;
    let cp = h
        .wait_cp("sec", 60, |cp| {
            hook_status(cp, "creds") == Some(true)
                && condition(cp, "PostCreateHooks").is_some_and(|c| {
                    ["PostCreateHook refused", "ns-leak", "api-leak"]
                        .iter()
                        .all(|m| c.2.contains(m))
                })
        })
        .await;
    // The messages still say what is wrong, with the variable's name.
    let message = condition(&cp, "PostCreateHooks").unwrap().2;
    assert!(
        message.contains("namespace {{ PASSWORD }} is outside"),
        "{message}"
    );
    assert!(
        message.contains("applying Deployment sec-system/leaky"),
        "{message}"
    );
    let stored = h.secret_text("sec-system", "creds", "password").await;
    assert_eq!(stored, password);
    let status = serde_json::to_string(&cp.status).unwrap();
    assert!(!status.contains(&password), "status: {status}");
    let events = || async {
        let list = Api::<k8s_openapi::api::events::v1::Event>::all(h.client.clone())
            .list(&Default::default())
            .await
            .unwrap();
        serde_json::to_string(&list.items).unwrap()
    };
    // The scan means something only if hook Events were published.
    h.eventually("the hook's Event", 10, || async {
        events().await.contains("PostCreateHookApplied")
    })
    .await;
    let events = events().await;
    assert!(!events.contains(&password), "an Event holds the value");
    let token = h.secret_text("sec-system", "sec", "token").await;
    assert_logs_clean(&[password, token]);
    h.assert_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_hook_past_its_timeout_is_reported_failed() {
    let builder = TestEnv::builder().simulation(SimConfig {
        job_duration: Duration::from_secs(120),
        ..SimConfig::default()
    });
    let settings = kubeflex_operator::context::Settings {
        hook_timeout: Duration::from_secs(2),
        ..support::settings()
    };
    let h = Harness::start_with(builder, settings).await;
    h.create_hook(&job_hook("slow", None)).await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: slowcp\nspec:\n  type: host\n  waitForPostCreateHooks: true\n  postCreateHook: slow\n")
        .await;
    let cp = h
        .wait_cp("slowcp", 30, |cp| {
            condition(cp, "Ready").is_some_and(|c| c.1 == "PostCreateHookFailed")
        })
        .await;
    let message = condition(&cp, "Ready").unwrap().2;
    assert!(
        message.contains("Job slowcp-system/slow has not succeeded yet")
            && message.contains("timed out after 2s"),
        "{message}"
    );
    h.assert_no_secret_leaked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_no_hooks_is_simply_ready() {
    let h = Harness::start().await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: nohooks\nspec:\n  type: host\n  waitForPostCreateHooks: true\n")
        .await;
    let cp = h.wait_ready("nohooks", 30).await;
    assert_eq!(condition(&cp, "Ready").unwrap().1, "Available");
    assert!(condition(&cp, "PostCreateHooks").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_hook_cannot_take_over_anothers_cluster_object() {
    let h = Harness::start().await;
    h.create_hook(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: fixed-role\nspec:\n  templates:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: marker\n  - apiVersion: rbac.authorization.k8s.io/v1\n    kind: ClusterRole\n    metadata:\n      name: shared-reader\n    rules: []\n",
    )
    .await;
    let cp = |name: &str| {
        format!(
            "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n  type: host\n  postCreateHook: fixed-role\n"
        )
    };
    h.create_cp(&cp("first")).await;
    h.wait_cp("first", 60, |cp| {
        hook_status(cp, "fixed-role") == Some(true)
    })
    .await;
    h.create_cp(&cp("second")).await;
    let second = h
        .wait_cp("second", 60, |cp| {
            condition(cp, "PostCreateHooks").is_some_and(|c| c.0 == "False")
        })
        .await;
    let message = condition(&second, "PostCreateHooks").unwrap().2;
    assert!(
        message.contains("belongs to control plane first"),
        "{message}"
    );
    let role = Api::<ClusterRole>::all(h.client.clone())
        .get("shared-reader")
        .await
        .unwrap();
    assert_eq!(
        role.labels()["kflex.kubestellar.org/control-plane"],
        "first"
    );
    let marker = Api::<ConfigMap>::namespaced(h.client.clone(), "second-system")
        .get_opt("marker")
        .await
        .unwrap();
    assert!(marker.is_none(), "the refused hook wrote its ConfigMap");
    h.assert_no_secret_leaked().await;
}

/// A hook writing ConfigMap `settings` with `mode`, re-rendered on change.
fn settings_hook(mode: &str) -> String {
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: settings\n  annotations:\n    kflex.kubestellar.org/rerender: \"true\"\nspec:\n  templates:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: settings\n    data:\n      mode: {mode}\n"
    )
}

/// `(manager, operation)` of every managedFields entry of a ConfigMap.
async fn managers(h: &Harness, ns: &str, name: &str) -> Vec<(String, String)> {
    Api::<ConfigMap>::namespaced(h.client.clone(), ns)
        .get(name)
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.manager.unwrap_or_default(),
                e.operation.unwrap_or_default(),
            )
        })
        .collect()
}

/// An upgrade: the previous version applied hook objects with `force` as
/// the operator's field manager. A re-render now hands those fields, on
/// the hook's own labelled objects only, to the hooks' manager and applies
/// without force; objects a hook did not make (the operator's, or anyone
/// else's in `NAME-system`) are refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_rerenders_old_hook_objects_and_takes_nothing_else_over() {
    use kube::api::ApiResource;
    use kubeflex_operator::names;
    use serde_json::json;
    let mut h = Harness::start_idle(TestEnv::builder(), support::settings()).await;
    let sa = support::install_rbac(&h.env, &h.client, |_| {}).await;
    h.create_hook(&settings_hook("one")).await;
    for (name, target) in [("grab", "operator-owned"), ("adopt", "someones")] {
        h.create_hook(&format!("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: {name}\nspec:\n  templates:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: {name}-first\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: {target}\n    data:\n      k: hook\n")).await;
    }
    // The host type's own ClusterRoleBinding `<cp>-binding`, re-pointed at
    // a role of the hook's (which the grant rules alone would allow).
    h.create_hook("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: bind-grab\nspec:\n  templates:\n  - apiVersion: rbac.authorization.k8s.io/v1\n    kind: ClusterRole\n    metadata:\n      name: \"{{ ControlPlaneName }}-grab\"\n    rules: []\n  - apiVersion: rbac.authorization.k8s.io/v1\n    kind: ClusterRoleBinding\n    metadata:\n      name: \"{{ ControlPlaneName }}-binding\"\n    roleRef:\n      apiGroup: rbac.authorization.k8s.io\n      kind: ClusterRole\n      name: \"{{ ControlPlaneName }}-grab\"\n    subjects:\n    - kind: ServiceAccount\n      name: default\n      namespace: \"{{ Namespace }}\"\n").await;
    h.create_cp("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: up\nspec:\n  type: host\n  postCreateHooks:\n  - hookName: settings\n  - hookName: grab\n  - hookName: adopt\n  - hookName: bind-grab\n").await;
    // What the previous version left: the hook's ConfigMap applied through
    // its write path then (the operator's manager, forced), the hook
    // recorded with the hash of that rendering.
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "up-system"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(h.client.clone())
        .create(&Default::default(), &ns)
        .await
        .unwrap();
    let old = kubeflex_operator::apply::Applier::new(h.client.clone(), h.metrics.clone());
    let cm_resource = ApiResource::erase::<ConfigMap>(&());
    let write_old = |name: &str, labels: serde_json::Value, value: &str| {
        serde_json::from_value::<kube::api::DynamicObject>(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "up-system", "labels": labels},
            "data": {"mode": value, "k": value}}))
        .unwrap()
    };
    old.apply_dynamic(
        &write_old(
            "settings",
            json!({names::LABEL_MANAGED_BY: names::MANAGED_BY, names::LABEL_CONTROL_PLANE: "up", names::LABEL_POST_CREATE_HOOK: "settings"}),
            "one",
        ),
        &cm_resource,
    )
    .await
    .unwrap();
    // The operator's own object (its label, no hook's), same manager.
    old.apply_dynamic(
        &write_old(
            "operator-owned",
            json!({names::LABEL_MANAGED_BY: names::MANAGED_BY, names::LABEL_CONTROL_PLANE: "up"}),
            "operator",
        ),
        &cm_resource,
    )
    .await
    .unwrap();
    // Someone else's object, with no label at all.
    let someones: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "someones"}, "data": {"k": "theirs"}}))
            .unwrap();
    Api::<ConfigMap>::namespaced(h.client.clone(), "up-system")
        .create(&Default::default(), &someones)
        .await
        .unwrap();
    h.cps()
        .patch_status(
            "up",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"postCreateHooks": {"settings": true},
                "conditions": [], "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    h.cps()
        .patch(
            "up",
            &PatchParams::apply(names::FIELD_MANAGER_HOOKS),
            &Patch::Apply(json!({
                "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
                "metadata": {"name": "up", "annotations": {names::ANNOTATION_HOOK_HASHES: "{\"settings\":\"old\"}"}}})),
        )
        .await
        .unwrap();
    assert!(
        managers(&h, "up-system", "settings")
            .await
            .contains(&(names::FIELD_MANAGER.into(), "Apply".into()))
    );
    // The new version, with a changed hook.
    h.create_hook(&settings_hook("two")).await;
    h.start_operator_as(sa);
    h.eventually("the re-rendered ConfigMap", 60, || async {
        Api::<ConfigMap>::namespaced(h.client.clone(), "up-system")
            .get("settings")
            .await
            .unwrap()
            .data
            .is_some_and(|d| d.get("mode").map(String::as_str) == Some("two"))
    })
    .await;
    let settings = Api::<ConfigMap>::namespaced(h.client.clone(), "up-system")
        .get("settings")
        .await
        .unwrap();
    // The field the new rendering dropped is gone: the hooks' manager owns
    // what the old one applied.
    assert!(!settings.data.unwrap().contains_key("k"));
    let m = managers(&h, "up-system", "settings").await;
    assert!(
        !m.iter().any(|(who, _)| who == names::FIELD_MANAGER),
        "{m:?}"
    );
    assert!(
        m.contains(&(names::FIELD_MANAGER_HOOKS.into(), "Apply".into())),
        "{m:?}"
    );
    let cp = h
        .wait_cp("up", 30, |cp| {
            condition(cp, "PostCreateHooks").is_some_and(|c| c.2.contains("bind-grab refused"))
        })
        .await;
    let message = condition(&cp, "PostCreateHooks").unwrap().2;
    assert!(
        message.contains("PostCreateHook grab refused")
            && message.contains("managed by the operator"),
        "{message}"
    );
    assert!(
        message.contains("not made by a PostCreateHook of this control plane"),
        "{message}"
    );
    assert_eq!(hook_status(&cp, "settings"), Some(true));
    assert!(
        message.contains("ClusterRoleBinding up-binding is managed by the operator"),
        "{message}"
    );
    let binding = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(h.client.clone())
        .get("up-binding")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "cluster-admin");
    assert!(
        Api::<ClusterRole>::all(h.client.clone())
            .get_opt("up-grab")
            .await
            .unwrap()
            .is_none()
    );
    for (name, value, owner) in [
        ("operator-owned", "operator", names::FIELD_MANAGER),
        ("someones", "theirs", ""),
    ] {
        let cm = Api::<ConfigMap>::namespaced(h.client.clone(), "up-system")
            .get(name)
            .await
            .unwrap();
        assert_eq!(cm.data.unwrap()["k"], value, "{name} was written");
        if !owner.is_empty() {
            assert!(
                managers(&h, "up-system", name)
                    .await
                    .contains(&(owner.into(), "Apply".into()))
            );
        }
    }
    for first in ["grab-first", "adopt-first"] {
        assert!(
            Api::<ConfigMap>::namespaced(h.client.clone(), "up-system")
                .get_opt(first)
                .await
                .unwrap()
                .is_none(),
            "{first} written by a refused hook"
        );
    }
    h.assert_no_secret_leaked().await;
}
