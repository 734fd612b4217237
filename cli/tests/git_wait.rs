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
use std::process::Stdio;
use std::time::Duration;

use support::cluster::Hosting;
use support::{GitDaemon, git, repo};

const HOOKLESS: &str = "# tenants\n";

fn upstream(tmp: &std::path::Path) -> (GitDaemon, std::path::PathBuf, std::path::PathBuf) {
    support::upstream(tmp, &[("README.md", HOOKLESS), ("controlplanes/.keep", "")])
}

/// Merges `branch` into `main` on the upstream, as a reviewer would.
fn merge_upstream(tmp: &std::path::Path, url: &str, branch: &str) -> String {
    let reviewer = tmp.join("reviewer");
    if !reviewer.exists() {
        git(tmp, &["clone", "-q", url, reviewer.to_str().unwrap()]);
        git(&reviewer, &["config", "user.name", "Reviewer"]);
        git(&reviewer, &["config", "user.email", "reviewer@example.com"]);
    }
    git(&reviewer, &["fetch", "-q", "origin"]);
    git(&reviewer, &["checkout", "-q", "main"]);
    git(&reviewer, &["reset", "-q", "--hard", "origin/main"]);
    git(
        &reviewer,
        &[
            "merge",
            "-q",
            "--no-ff",
            "-m",
            "Merge",
            &format!("origin/{branch}"),
        ],
    );
    git(&reviewer, &["push", "-q", "origin", "main"]);
    git(&reviewer, &["rev-parse", "HEAD"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_git_push_wait_follows_the_merge_to_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (daemon, _bare, work) = upstream(tmp.path());
    let url = daemon.url("tenants.git");
    let mut hosting = Hosting::start().await;
    hosting
        .reconciler("tenants", &url, Duration::from_secs(1))
        .await;

    let mut child = hosting
        .kflex(&work, &home)
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
        hosting_cp(&hosting, "cp1").await.is_none(),
        "nothing applied before the merge"
    );
    let merge = merge_upstream(tmp.path(), &url, "kflex/create-cp1");
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
    assert!(hosting_cp(&hosting, "cp1").await.is_some());
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
        .env("HOME", &home)
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
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (daemon, _bare, work) = upstream(tmp.path());
    let url = daemon.url("tenants.git");
    let mut hosting = Hosting::start().await;
    hosting
        .reconciler("tenants", &url, Duration::from_secs(1))
        .await;

    // Another file is broken too: it must not stop a wait for cp2.
    support::write(
        &work,
        &[
            (
                "controlplanes/other.yaml",
                "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: other\nspec:\n  type: nope\n",
            ),
            (
                "controlplanes/cp2.yaml",
                "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp2\nspec:\n  type: k9s\n",
            ),
        ],
    );
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "broken"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);

    let out = tokio::task::spawn_blocking({
        let mut cmd = hosting.kflex(&work, &home);
        cmd.args(["wait", "cp2", "--commit", &sha, "--timeout", "2m"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
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
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (daemon, _bare, work) = upstream(tmp.path());
    let url = daemon.url("tenants.git");
    let mut hosting = Hosting::start().await;
    hosting
        .reconciler("tenants", &url, Duration::from_secs(3600))
        .await;
    hosting
        .wait_attempted("tenants", &git(&work, &["rev-parse", "HEAD"]))
        .await;
    // The first pass has run (at start); a new commit waits an hour...
    support::write(
        &work,
        &[(
            "controlplanes/cp3.yaml",
            "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp3\nspec:\n  type: host\n",
        )],
    );
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "cp3"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(hosting_cp(&hosting, "cp3").await.is_none());

    // ...unless asked.
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking({
        let mut cmd = hosting.kflex(&work, &home);
        cmd.args(["sync", "--wait", "--timeout", "60s"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
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
    assert!(hosting_cp(&hosting, "cp3").await.is_some());

    // `kflex sync status` shows it.
    let out = tokio::task::spawn_blocking({
        let mut cmd = hosting.kflex(&work, &home);
        cmd.args(["sync", "status"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("tenants\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("applied:    {}", &sha[..12])),
        "{stdout}"
    );
}
