//! `kflex watch DIR` end to end: the real binary runs the reconciler in its
//! own process against testenv. A saved spec appears in the cluster under
//! source `local`; a broken file is reported with its `path:line:column`
//! and removes nothing; Ctrl-C (SIGINT) stops it with exit 0 and hands its
//! Lease back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kubeflex_operator::api::ControlPlane;

const CP1: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp1\nspec:\n  type: k8s\n";
/// cp1 with an unsupported type: line 6, column 9.
const CP1_BROKEN: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp1\nspec:\n  type: k9s\n";

/// `kflex watch` with its stdout collected line by line.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = support::collect_lines(&mut child);
        Self { child, lines }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a line containing `needle` after the first `from` lines;
    /// returns its index.
    async fn line(&self, needle: &str, from: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(i) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .position(|l| l.contains(needle))
            {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} after line {from}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_applies_saves_reports_broken_files_and_stops_on_ctrl_c() {
    let env = support::Env::start_idle(true).await;
    let kubeconfig = env.hosting_file("hosting.kubeconfig");
    let dir = env.path("specs");
    std::fs::create_dir_all(dir.join("controlplanes")).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kflex"));
    cmd.arg("watch")
        .arg(&dir)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", env.dir.path())
        .env("NO_COLOR", "1");
    let mut watch = Watch::spawn(cmd);
    let started = watch.line("as source \"local\"", 0).await;
    watch.line("pass: ", started).await;

    // A saved spec appears in the cluster, labelled with the source.
    std::fs::write(dir.join("controlplanes/cp1.yaml"), CP1).unwrap();
    let cps: Api<ControlPlane> = Api::all(env.client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let applied = loop {
        if let Some(cp) = cps.get_opt("cp1").await.unwrap() {
            break cp;
        }
        assert!(
            Instant::now() < deadline,
            "cp1 never applied:\n{}",
            watch.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let labels = applied.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get(kubeflex_reconciler::names::LABEL_SOURCE)
            .map(String::as_str),
        Some("local"),
        "{labels:?}"
    );
    let seen = watch.line("pass: applied 1", started).await;

    // The file broken: its position is printed, and nothing is removed.
    std::fs::write(dir.join("controlplanes/cp1.yaml"), CP1_BROKEN).unwrap();
    let reported = watch.line("controlplanes/cp1.yaml:6:9", seen).await;
    assert!(
        watch.lines.lock().unwrap()[reported].contains("k9s"),
        "{}",
        watch.output()
    );
    watch.line("1 invalid files", seen).await;
    let kept = cps.get_opt("cp1").await.unwrap().expect("cp1 kept");
    assert_eq!(
        kept.metadata.resource_version, applied.metadata.resource_version,
        "cp1 was changed by a broken file"
    );
    assert_eq!(kept.spec.type_, applied.spec.type_);

    // Ctrl-C: exit 0, and the Lease handed back for the next watch.
    let pid = watch.child.id().to_string();
    let signalled = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = watch.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "kflex watch did not stop on SIGINT:\n{}",
            watch.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", watch.output());
    watch.line("stopped", 0).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
    let lease = leases
        .get_opt(&kubeflex_reconciler::leader::lease_name("local"))
        .await
        .unwrap()
        .expect("the watch's Lease");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "the Lease is still held after a clean stop"
    );
}

/// Every duration flag takes compound durations; bad input is a usage
/// error (exit 2) naming the flag, before anything is contacted.
#[test]
fn bad_durations_name_the_flag() {
    for (args, flag) in [
        (&["watch", "--interval", "1x"][..], "--interval"),
        (
            &["wait", "cp1", "--commit", "HEAD", "--timeout", "5 parsecs"][..],
            "--timeout",
        ),
        (&["create", "cp1", "--timeout", "m5"][..], "--timeout"),
        (&["sync", "--wait", "--timeout", "1h30"][..], "--timeout"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kflex"))
            .args(args)
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = support::stderr(&out);
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(err.contains("1m30s"), "{args:?}: {err}");
    }
}
