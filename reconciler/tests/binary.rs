//! End-to-end with the `kubeflex-reconciler` binary against testenv: the
//! webhook (signed calls trigger a sync, unsigned ones get 401), local watch
//! mode (a save applies, a syntax error is reported and removes nothing)
//! and `--once` exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use kubeflex_reconciler::webhook::github_signature;
use support::{
    Cluster, GitDaemon, Reconciler, Upstream, cp, eventually, free_port, reconciler_command,
};

/// A raw HTTP/1.1 POST; returns the status code.
fn post(port: u16, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!(
        "POST /hook HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The reconciler `name` following `daemon`, hourly, with its webhook on a
/// free port signed with `secret`; returned once `first` is applied and
/// the webhook listens.
async fn with_webhook(
    cluster: &Cluster,
    up: &Upstream,
    daemon: &GitDaemon,
    name: &str,
    secret: &str,
    first: &str,
) -> (Reconciler, u16) {
    let secret_file = up.tmp.path().join("secret");
    std::fs::write(&secret_file, secret).unwrap();
    let port = free_port();
    let mut cmd = reconciler_command(cluster, name);
    cmd.args(["--git-url", &daemon.url(), "--interval", "1h"])
        .arg("--cache-dir")
        .arg(up.cache())
        .args(["--webhook-addr", &format!("127.0.0.1:{port}")])
        .arg("--webhook-secret-file")
        .arg(&secret_file);
    let r = Reconciler::spawn(cmd);
    eventually("first sync", || async { cluster.cp(first).await.is_some() }).await;
    eventually("webhook listening", || async {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    (r, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_with_a_valid_signature_triggers_a_sync_and_unsigned_is_refused() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("wh-a"))]);
    let daemon = GitDaemon::start(&up.repos());
    let (_r, port) = with_webhook(&cluster, &up, &daemon, "wh", "hook-secret\n", "wh-a").await;

    up.commit(&[("controlplanes/b.yaml", &cp("wh-b"))], &[], "add b");
    let body = r#"{"ref":"refs/heads/main"}"#;
    assert_eq!(post(port, &[("X-GitHub-Event", "push")], body), 401);
    assert_eq!(
        post(
            port,
            &[(
                "X-Hub-Signature-256",
                &github_signature(b"wrong", body.as_bytes())
            )],
            body
        ),
        401
    );
    assert_eq!(post(port, &[("X-Gitlab-Token", "nope")], body), 401);
    // The interval is an hour: only a trigger can apply b.
    assert!(cluster.cp("wh-b").await.is_none());
    let sig = github_signature(b"hook-secret", body.as_bytes());
    assert_eq!(
        post(
            port,
            &[("X-Hub-Signature-256", &sig), ("X-GitHub-Event", "push")],
            body
        ),
        202
    );
    eventually("b applied after the webhook", || async {
        cluster.cp("wh-b").await.is_some()
    })
    .await;

    up.commit(&[("controlplanes/c.yaml", &cp("wh-c"))], &[], "add c");
    assert_eq!(post(port, &[("X-Gitlab-Token", "hook-secret")], body), 202);
    eventually("c applied after the GitLab webhook", || async {
        cluster.cp("wh-c").await.is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_mode_applies_saves_and_reports_syntax_errors_without_removing() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), cp("wm-a")).unwrap();
    let mut cmd = reconciler_command(&cluster, "wm");
    cmd.arg("--dir").arg(dir.path()).arg("--watch");
    let _r = Reconciler::spawn(cmd);
    eventually("initial pass", || async {
        cluster.cp("wm-a").await.is_some()
    })
    .await;

    std::fs::write(dir.path().join("b.yaml"), cp("wm-b")).unwrap();
    eventually("saved file applied", || async {
        cluster.cp("wm-b").await.is_some()
    })
    .await;

    std::fs::write(dir.path().join("b.yaml"), "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: wm-b\nspec: {type: k8s\n").unwrap();
    eventually("syntax error in status", || async {
        cluster
            .sync("wm")
            .await
            .and_then(|s| s.status)
            .is_some_and(|s| {
                s.errors
                    .iter()
                    .any(|e| e.path == "b.yaml" && e.line > 0 && e.column > 0)
            })
    })
    .await;
    let status = cluster.sync("wm").await.unwrap().status.unwrap();
    assert!(
        status.errors[0].message.starts_with("b.yaml:"),
        "{:?}",
        status.errors
    );
    assert!(cluster.cp("wm-a").await.is_some());
    assert!(
        cluster.cp("wm-b").await.is_some(),
        "a broken file removes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_zero_on_success_and_non_zero_on_failure() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), cp("once-a")).unwrap();
    let d = dir.path().to_owned();
    // Run blocking children off the runtime.
    let kubeconfig = cluster.kubeconfig();
    let once = move |name: &'static str, path: std::path::PathBuf, sub: &'static str| {
        let kubeconfig = kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_kubeflex-reconciler"))
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--name", name, "--once", "--path", sub])
                .arg("--dir")
                .arg(path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .code()
        })
    };
    assert_eq!(once("once", d.clone(), "").await.unwrap(), Some(0));
    assert!(cluster.cp("once-a").await.is_some());
    std::fs::write(d.join("bad.yaml"), "kind: [").unwrap();
    assert_eq!(once("once", d.clone(), "").await.unwrap(), Some(2));
    // A missing --path is an error, and deletes nothing.
    assert_eq!(once("once", d.clone(), "missing").await.unwrap(), Some(1));
    assert!(cluster.cp("once-a").await.is_some());
}

/// The bench reads the reconciler's `pass done` line (with its counts) from
/// stderr; a `RUST_LOG` that hides it (`kube=warn` also matches
/// `kubeflex_reconciler`) made the bench wait forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_done_line_is_logged_with_its_counts() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), cp("logs-a")).unwrap();
    let mut cmd = reconciler_command(&cluster, "logs");
    cmd.arg("--dir")
        .arg(dir.path())
        .arg("--once")
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("pass done"))
        .unwrap_or_else(|| panic!("no `pass done` line in the log:\n{log}"));
    assert!(line.contains("files=1"), "{line}");
    assert!(line.contains("writes=1"), "{line}");
}

/// Item 10: connections held open by a slow-loris client (a request's
/// headers begun, never finished) cannot keep a real delivery out. At the
/// cap, the oldest connection still without its request headers is closed
/// for the newcomer; the others are closed by the header read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_client_cannot_keep_a_delivery_out() {
    use kubeflex_reconciler::webhook::{HEADER_TIMEOUT, MAX_CONNECTIONS};
    use std::time::{Duration, Instant};
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("sl-a"))]);
    let daemon = GitDaemon::start(&up.repos());
    let (_r, port) = with_webhook(&cluster, &up, &daemon, "loris", "hook-secret", "sl-a").await;
    // Every connection the receiver allows, each stuck in its headers.
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    up.commit(&[("controlplanes/b.yaml", &cp("sl-b"))], &[], "add b");
    let body = r#"{"ref":"refs/heads/main"}"#;
    let sig = github_signature(b"hook-secret", body.as_bytes());
    let status = post(port, &[("X-Hub-Signature-256", &sig)], body);
    assert_eq!(status, 202);
    eventually("the delivery's pass applied b", || async {
        cluster.cp("sl-b").await.is_some()
    })
    .await;

    // The oldest slow connection made way for it...
    let closed = |s: &mut TcpStream, within: Duration| {
        s.set_read_timeout(Some(within)).unwrap();
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    let started = Instant::now();
    assert!(
        closed(&mut held[0], Duration::from_secs(2)),
        "the oldest slow connection is still open"
    );
    // ...and the header read timeout ends the rest.
    let last = held.last_mut().unwrap();
    assert!(
        closed(last, HEADER_TIMEOUT + Duration::from_secs(10)),
        "a slow connection outlived the header timeout by {:?}",
        started.elapsed()
    );
}

/// #13: a missing `--lease-namespace`. With the shipped RBAC (no namespace
/// creation) the reconciler exits with one line naming the namespace and
/// the command that creates it; an identity that may create namespaces
/// (and use Leases there) creates it and syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_lease_namespace_is_created_or_named_with_its_command() {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use kube::api::{Api, PostParams};
    use std::time::{Duration, Instant};
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("ln-a"))]);
    let run = || {
        let mut cmd = reconciler_command(&cluster, "leasens");
        cmd.args(["--git-url", &up.file_url(), "--once"])
            .args(["--lease-namespace", "reconciler-leases"])
            .arg("--cache-dir")
            .arg(up.cache());
        let mut r = support::LoggedReconciler::spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = r.child.try_wait().unwrap() {
                // The log reader may trail the exit by a moment.
                std::thread::sleep(Duration::from_millis(200));
                return (status, r.log());
            }
            assert!(Instant::now() < deadline, "still running: {}", r.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let namespaces: Api<Namespace> = Api::all(cluster.admin.clone());

    let (status, log) = run();
    assert!(!status.success(), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("reconciler-leases")
            && errors[0].contains("kubectl create namespace reconciler-leases"),
        "{log}"
    );
    assert!(
        namespaces
            .get_opt("reconciler-leases")
            .await
            .unwrap()
            .is_none()
    );
    assert!(cluster.cp("ln-a").await.is_none());

    // A wider role than shipped: namespaces may be created, Leases used
    // in any namespace. (A cluster admin's grant.)
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reconciler-lease-anywhere"},
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]}
        ]
    }))
    .unwrap();
    Api::<ClusterRole>::all(cluster.admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "reconciler-lease-anywhere"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reconciler-lease-anywhere"},
        "subjects": [{"kind": "ServiceAccount", "name": support::SA_NAME, "namespace": support::SA_NAMESPACE}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(cluster.admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let (status, log) = run();
    assert!(status.success(), "{log}");
    assert!(log.contains("created the lease namespace"), "{log}");
    assert!(
        namespaces
            .get_opt("reconciler-leases")
            .await
            .unwrap()
            .is_some()
    );
    assert!(cluster.cp("ln-a").await.is_some());
}
