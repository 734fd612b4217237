//! More of the real `kflex` against testenv, checked with the real
//! `kubectl`: a vcluster context that needs no DNS, `--wait-for-hooks`,
//! the global `--context`, `init` on OpenShift, `uninstall` and its guards,
//! and the progress display on a terminal and off it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Env, fails, names, ok, stderr, yaml};

fn entry<'a>(doc: &'a serde_json::Value, list: &str, name: &str) -> &'a serde_json::Value {
    doc[list]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("{list} {name} missing in {doc}"))
}

/// The hosting kubeconfig in `config`, with the hosting context recorded.
async fn recorded_hosting(env: &Env) -> std::path::PathBuf {
    let kc = env.hosting_file("config");
    ok(&env
        .kflex(&[&kc], &["config", "set-hosting", "testenv"])
        .await);
    kc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vcluster_context_works_without_dns() {
    let env = Env::start().await;
    let kc = recorded_hosting(&env).await;
    let files: [&Path; 1] = [&kc];
    let port = env.env.ingress_addr().unwrap().port();

    let out = ok(&env
        .kflex(&files, &["create", "vc1", "--type", "vcluster"])
        .await);
    assert!(
        out.contains("control plane vc1 (vcluster) is ready"),
        "{out}"
    );
    // The status names the operator's key, which names the address and
    // keeps the host name for SNI and the certificate check.
    let key = ok(&env
        .kubectl(
            &files,
            &[
                "--context",
                "testenv",
                "get",
                "controlplane",
                "vc1",
                "-o",
                "jsonpath={.status.secretRef.key}",
            ],
        )
        .await);
    assert_eq!(key, "config-external");
    let doc = yaml(&kc);
    let cluster = &entry(&doc, "clusters", "vc1-cluster")["cluster"];
    assert_eq!(cluster["server"], format!("https://127.0.0.1:{port}"));
    assert_eq!(cluster["tls-server-name"], "vc1.localtest.me");
    // The real kubectl, by context alone: no DNS, no --server override.
    let ns = ok(&env
        .kubectl(&files, &["--context", "vc1", "get", "ns"])
        .await);
    assert!(ns.contains("default"), "{ns}");
    // The syncer's own key is left as the syncer wrote it.
    let syncer = ok(&env
        .kubectl(
            &files,
            &[
                "--context",
                "testenv",
                "-n",
                "vc1-system",
                "get",
                "secret",
                "vc-vcluster",
                "-o",
                "jsonpath={.data.config}",
            ],
        )
        .await);
    use base64::Engine as _;
    let syncer = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(syncer.trim())
            .unwrap(),
    )
    .unwrap();
    assert!(
        syncer.contains("server: https://vc1.localtest.me:"),
        "{syncer}"
    );
    // Loaded again from the server: the same key, and it works.
    let out = env.kflex(&files, &["ctx", "-o", "vc1", "-v"]).await;
    ok(&out);
    assert!(
        stderr(&out).contains("using key 'config-external' of Secret vc1-system/vc-vcluster"),
        "{}",
        stderr(&out)
    );
    ok(&env
        .kubectl(&files, &["--context", "vc1", "get", "ns"])
        .await);
    ok(&env.kflex(&files, &["delete", "vc1"]).await);
    assert!(!names(&kc, "contexts").contains(&"vc1".to_string()));
    // Gone from the server too: `ctx` says so (its 404 is checked by the
    // discovery probe, which finds the API served).
    let e = fails(&env.kflex(&files, &["ctx", "vc1"]).await);
    assert!(
        e.contains("no context vc1 in the kubeconfig and no control plane vc1 on the hosting cluster (testenv)"),
        "{e}"
    );
}

/// A hook with one Job; `fail` makes testenv's kubelet fail its pod.
fn job_hook(name: &str, fail: Option<&str>) -> String {
    let annotations = fail
        .map(|m| {
            format!(
                "        metadata:\n          annotations:\n            testenv.kflex.kubestellar.org/fail: \"{m}\"\n"
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: {name}\nspec:\n  templates:\n  - apiVersion: batch/v1\n    kind: Job\n    metadata:\n      name: \"{{{{.HookName}}}}\"\n    spec:\n      backoffLimit: 0\n      template:\n{annotations}        spec:\n          restartPolicy: Never\n          containers:\n          - name: main\n            image: busybox\n            command: [\"echo\", \"{{{{.HookName}}}}\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_for_hooks_waits_for_completion_and_stops_at_a_failed_hook() {
    let env = Env::start().await;
    let kc = recorded_hosting(&env).await;
    let files: [&Path; 1] = [&kc];
    for (name, fail) in [("ok-hook", None), ("broken", Some("exit 3: no luck"))] {
        let f = env.write(&format!("{name}.yaml"), &job_hook(name, fail));
        ok(&env
            .kubectl(&files, &["apply", "-f", f.to_str().unwrap()])
            .await);
    }

    // Returns only once the hooks completed: the status says so as soon as
    // kflex is done, and the spec asks the operator to gate Ready on them.
    let out = ok(&env
        .kflex(
            &files,
            &[
                "create",
                "hk1",
                "-t",
                "host",
                "--postcreate-hook",
                "ok-hook",
                "--wait-for-hooks",
            ],
        )
        .await);
    assert!(out.contains("control plane hk1 (host) is ready"), "{out}");
    let status = ok(&env
        .kubectl(
            &files,
            &[
                "get",
                "controlplane",
                "hk1",
                "-o",
                "jsonpath={.spec.waitForPostCreateHooks} {.status.postCreateHookCompleted} {.status.postCreateHooks.ok-hook}",
            ],
        )
        .await);
    assert_eq!(status, "true true true");
    let job = ok(&env
        .kubectl(
            &files,
            &[
                "-n",
                "hk1-system",
                "get",
                "job",
                "ok-hook",
                "-o",
                "jsonpath={.status.succeeded}",
            ],
        )
        .await);
    assert_eq!(job, "1");
    // The waiting was shown as a step read from the status.
    assert!(out.contains("hk1: WaitingForPostCreateHooks"), "{out}");

    // A failing hook stops the wait at once with the operator's message,
    // long before the timeout, and no context is merged.
    let start = Instant::now();
    let out = env
        .kflex(
            &files,
            &[
                "create",
                "hk2",
                "-t",
                "host",
                "--postcreate-hook",
                "broken",
                "--wait-for-hooks",
                "--timeout",
                "5m",
            ],
        )
        .await;
    let e = fails(&out);
    assert!(
        e.contains("control plane hk2 is not ready (PostCreateHookFailed):")
            && e.contains("Job hk2-system/broken failed"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(start.elapsed() < Duration::from_secs(120));
    assert!(!names(&kc, "contexts").contains(&"hk2".to_string()));
    for n in ["hk1", "hk2"] {
        ok(&env.kflex(&files, &["delete", n]).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_global_context_flag_is_used_for_the_run_and_never_written() {
    let env = Env::start().await;
    let other = Env::start_idle(false).await;
    // Current context: another cluster, without the ControlPlane API; no
    // hosting record.
    let mut doc: serde_json::Value = serde_saphyr::from_str(&env.hosting_yaml).unwrap();
    let o: serde_json::Value = serde_saphyr::from_str(&other.hosting_yaml).unwrap();
    let mut oc = o["clusters"][0].clone();
    oc["name"] = "other".into();
    let mut ou = o["users"][0].clone();
    ou["name"] = "other".into();
    doc["clusters"].as_array_mut().unwrap().push(oc);
    doc["users"].as_array_mut().unwrap().push(ou);
    doc["contexts"].as_array_mut().unwrap().push(
        serde_json::json!({"name": "other", "context": {"cluster": "other", "user": "other"}}),
    );
    doc["current-context"] = "other".into();
    let kc = env.write("config", &serde_json::to_string(&doc).unwrap());
    let files: [&Path; 1] = [&kc];

    let e = fails(&env.kflex(&files, &["list"]).await);
    assert!(e.contains("hosting cluster context is not known"), "{e}");
    let before = std::fs::read_to_string(&kc).unwrap();
    let out = ok(&env.kflex(&files, &["--context", "testenv", "list"]).await);
    assert_eq!(out.trim(), "No control planes found.");
    assert_eq!(std::fs::read_to_string(&kc).unwrap(), before);

    // create through --context: the context is added and the hosting
    // record learnt, the file's current context stays.
    ok(&env
        .kflex(
            &files,
            &[
                "--context",
                "testenv",
                "create",
                "c1",
                "-t",
                "host",
                "--no-switch",
            ],
        )
        .await);
    let doc = yaml(&kc);
    assert_eq!(doc["current-context"], "other");
    assert!(names(&kc, "contexts").contains(&"c1".to_string()));
    let ext = doc["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "kubeflex")
        .unwrap();
    assert_eq!(
        ext["extension"]["data"]["hosting-cluster-ctx-name"],
        "testenv"
    );
    ok(&env.kubectl(&files, &["--context", "c1", "get", "ns"]).await);
    assert_eq!(
        ok(&env.kubectl(&files, &["config", "current-context"]).await).trim(),
        "other"
    );

    let e = fails(&env.kflex(&files, &["--context", "nope", "list"]).await);
    assert!(
        e.contains("context 'nope' (--context) does not exist in the kubeconfig"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_detects_openshift_by_its_route_api() {
    // A cluster serving route.openshift.io (testenv's OpenShift mode), next
    // to a plain one; the plain testenv only lends its runner and directory.
    let env = Env::start_idle(false).await;
    let openshift = kubeflex_testenv::TestEnv::builder()
        .openshift_routes(true)
        .start()
        .await
        .unwrap();
    let os = env.write("openshift", openshift.kubeconfig());
    let out = ok(&env.kflex(&[&os], &["init", "--skip-operator"]).await);
    assert!(
        out.contains(
            "OpenShift cluster detected: the operator exposes control planes through Routes"
        ),
        "{out}"
    );
    assert!(out.contains("KubeFlex installed"), "{out}");
    let plain = env.hosting_file("plain");
    let out = ok(&env.kflex(&[&plain], &["init", "--skip-operator"]).await);
    assert!(!out.contains("OpenShift cluster detected"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uninstall_refuses_while_control_planes_exist_and_keeps_the_crds() {
    let env = Env::start().await;
    let kc = env.hosting_file("config");
    let files: [&Path; 1] = [&kc];
    ok(&env.kflex(&files, &["init", "--skip-operator"]).await);
    ok(&env
        .kflex(&files, &["create", "u1", "-t", "host", "--no-switch"])
        .await);
    let crd = ["get", "crd", "controlplanes.tenancy.kflex.kubestellar.org"];
    let role = ["get", "clusterrole", "kubeflex-operator"];

    // Refused, nothing removed.
    let e = fails(&env.kflex(&files, &["uninstall"]).await);
    assert!(
        e.contains("control planes exist (u1)") && e.contains("--delete-control-planes"),
        "{e}"
    );
    ok(&env.kubectl(&files, &role).await);
    ok(&env.kubectl(&files, &["get", "controlplane", "u1"]).await);

    // --delete-control-planes: the tenants go first (the operator's
    // cleanup runs), then the operator's objects; the CRDs stay.
    let out = ok(&env
        .kflex(&files, &["uninstall", "--delete-control-planes"])
        .await);
    assert!(out.contains("the CRDs stay"), "{out}");
    let gone = env.kubectl(&files, &["get", "controlplane", "u1"]).await;
    assert!(!gone.status.success());
    assert!(!env.kubectl(&files, &role).await.status.success());
    ok(&env.kubectl(&files, &crd).await);

    // --crds removes them (and with them the API).
    let out = ok(&env.kflex(&files, &["uninstall", "--crds"]).await);
    assert!(out.contains("CRDs included"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.kubectl(&files, &crd).await.status.success() {
        assert!(Instant::now() < deadline, "CRD still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_is_a_spinner_on_a_terminal_and_timestamped_lines_otherwise() {
    let env = Env::start().await;
    let kc = recorded_hosting(&env).await;
    let files: [&Path; 1] = [&kc];

    // Off a terminal: one timestamped line per step, no escape codes.
    let out = ok(&env.kflex(&files, &["create", "plain1"]).await);
    let line = regex::Regex::new(
        r"(?m)^\d\d:\d\d:\d\d Creating new control plane plain1 of type k8s \.\.\.$",
    )
    .unwrap();
    assert!(line.is_match(&out), "{out}");
    assert!(
        regex::Regex::new(r"(?m)^\d\d:\d\d:\d\d control plane plain1 \(k8s\) is ready after \d+s")
            .unwrap()
            .is_match(&out),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "{out:?}");

    // On a terminal (a pty from `script`): the spinner with the step and
    // the elapsed time, then a tick; no timestamped lines.
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} create tty1", env!("CARGO_BIN_EXE_kflex")),
        "/dev/null",
    ])
    .env("KUBECONFIG", &kc)
    .env("HOME", env.dir.path())
    .env("TERM", "xterm")
    .env_remove("NO_COLOR")
    .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = ok(&out);
    let spinner = regex::Regex::new(r"[◐◓◑◒](\x1b\[0m)? [^\r\n]*tty1[^\r\n]* \(\d+s\)").unwrap();
    assert!(
        spinner.is_match(&text),
        "no spinner with elapsed time in {text:?}"
    );
    assert!(
        text.contains("✔") && text.contains("control plane tty1 (k8s) is ready"),
        "{text:?}"
    );
    assert!(
        !regex::Regex::new(r"(?m)^\d\d:\d\d:\d\d ")
            .unwrap()
            .is_match(&text),
        "{text:?}"
    );
    ok(&env
        .kubectl(&files, &["--context", "tty1", "get", "ns"])
        .await);
}
