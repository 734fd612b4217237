//! `kflex create --git --push --wait` end to end: a pull-request branch is
//! pushed to a `git daemon`, the test merges it upstream with the git CLI,
//! the reconciler (following `main`) applies it, the operator provisions
//! it, and kflex reports each stage until Ready. A broken spec merged
//! instead makes the wait stop at once with the file's line; another
//! file's error does not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gitsupport/mod.rs"]
mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use support::cluster::Hosting;
use support::{commit_to_main, git, merge_upstream, upstream};

/// An upstream served by `git daemon`, and the hosting cluster with the
/// operator and reconciler `tenants` following its `main` every `interval`.
struct Setup {
    tmp: tempfile::TempDir,
    home: PathBuf,
    up: support::Upstream,
    hosting: Hosting,
}

impl Setup {
    async fn start(interval: Duration) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let up = upstream(tmp.path());
        let mut hosting = Hosting::start().await;
        hosting.reconciler("tenants", &up.url, interval).await;
        Self {
            tmp,
            home,
            up,
            hosting,
        }
    }

    fn work(&self) -> &Path {
        &self.up.work
    }

    /// Runs kflex to its end in the checkout.
    async fn kflex(&self, args: &[&str]) -> Output {
        let mut cmd = self.hosting.kflex(&self.up.work, &self.home);
        cmd.args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }
}

const CP: &str =
    "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_git_push_wait_follows_the_merge_to_ready() {
    let s = Setup::start(Duration::from_secs(1)).await;
    let (tmp, home, url, hosting) = (&s.tmp, &s.home, &s.up.url, &s.hosting);

    let mut child = hosting
        .kflex(s.work(), home)
        .args([
            "create",
            "cp1",
            "--git",
            "--new-branch",
            "--push",
            "--wait",
            "--timeout",
            "3m",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut lines = Vec::new();
    // kflex waits for the merge: nothing has been applied yet.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("kflex reports");
        lines.push(line.clone());
        if line.contains("waiting for merge") {
            break;
        }
    }
    assert!(
        hosting_cp(hosting, "cp1").await.is_none(),
        "nothing applied before the merge"
    );
    let merge = merge_upstream(tmp.path(), url, "kflex/create-cp1");
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        lines.push(line);
    }
    let text = lines.join("\n");
    assert!(
        status.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        text.contains(&format!("applied at {}", &merge[..7])),
        "{text}"
    );
    let ready = lines
        .iter()
        .position(|l| l.ends_with("Ready"))
        .expect("Ready reported");
    let applied = lines.iter().position(|l| l.contains("applied at")).unwrap();
    assert!(applied < ready, "{text}");
    assert!(hosting_cp(hosting, "cp1").await.is_some());
    // It ends as the direct create does: context cp1 merged and current,
    // and the real kubectl reaches the tenant through it.
    assert!(
        lines.last().is_some_and(|l| l.ends_with("context cp1")),
        "{text}"
    );
    let kubeconfig = std::fs::read_to_string(&hosting.kubeconfig).unwrap();
    assert!(kubeconfig.contains("current-context: cp1"), "{kubeconfig}");
    let kubectl = std::process::Command::new("kubectl")
        .arg("--cache-dir")
        .arg(home.join("kubectl-cache"))
        .args(["--context", "cp1", "get", "namespaces", "-o", "name"])
        .env("KUBECONFIG", &hosting.kubeconfig)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        kubectl.status.success(),
        "{}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    assert!(
        String::from_utf8_lossy(&kubectl.stdout).contains("namespace/default"),
        "{}",
        String::from_utf8_lossy(&kubectl.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_spec_merged_stops_the_wait_with_its_line() {
    let s = Setup::start(Duration::from_secs(1)).await;
    // Another file is broken too: it must not stop a wait for cp2.
    let sha = commit_to_main(
        s.work(),
        &[
            (
                "controlplanes/other.yaml",
                &format!("{CP}  name: other\nspec:\n  type: nope\n"),
            ),
            (
                "controlplanes/cp2.yaml",
                &format!("{CP}  name: cp2\nspec:\n  type: k9s\n"),
            ),
        ],
        "broken",
    );
    let out = s
        .kflex(&["wait", "cp2", "--commit", &sha, "--timeout", "2m"])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("controlplanes/cp2.yaml:6:9"),
        "{stdout}{stderr}"
    );
    assert!(!stderr.contains("other.yaml"), "{stderr}");
}

async fn hosting_cp(h: &Hosting, name: &str) -> Option<kubeflex_operator::api::ControlPlane> {
    kube::Api::<kubeflex_operator::api::ControlPlane>::all(h.client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_triggers_a_pass_now_with_a_one_hour_interval() {
    let s = Setup::start(Duration::from_secs(3600)).await;
    let hosting = &s.hosting;
    hosting
        .wait_attempted("tenants", &git(s.work(), &["rev-parse", "HEAD"]))
        .await;
    // The first pass has run (at start); a new commit waits an hour...
    let sha = commit_to_main(
        s.work(),
        &[(
            "controlplanes/cp3.yaml",
            &format!("{CP}  name: cp3\nspec:\n  type: host\n"),
        )],
        "cp3",
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hosting_cp(hosting, "cp3").await.is_none());

    // ...unless asked.
    let started = std::time::Instant::now();
    let out = s.kflex(&["sync", "--wait", "--timeout", "60s"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        stdout.contains(&format!("attempted:  {}", &sha[..12])),
        "{stdout}"
    );
    assert!(hosting_cp(hosting, "cp3").await.is_some());

    // `kflex sync status` shows it.
    let out = s.kflex(&["sync", "status"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("tenants\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("applied:    {}", &sha[..12])),
        "{stdout}"
    );
}
