//! Helpers for kflex's Git-side tests: repositories driven by the real git
//! CLI with an identity of their own (never the machine's), a `git daemon`
//! on a free loopback port, and an upstream served by it with a reviewer
//! who merges pull-request branches. (The reconciler's test support has a
//! daemon too, but it cannot be compiled into kflex's tests: it names the
//! reconciler's binary.)

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod cluster;
/// kflex's own harness (testenv, the operator, kflex and kubectl runs).
#[path = "../support/mod.rs"]
pub mod env;

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The git CLI, isolated from the machine's global and system config.
pub fn git_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL")
        .env_remove("EMAIL")
        .stdin(Stdio::null());
    cmd
}

/// Runs git in `dir`; its stdout, trimmed. Panics with stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// `git` output without trimming (for byte-exact comparisons).
pub fn git_raw(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = git_cmd(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?} failed");
    out.stdout
}

/// A checkout with an identity in its own config and one commit holding
/// `files`.
pub fn repo(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Test Person"]);
    git(dir, &["config", "user.email", "person@example.com"]);
    write(dir, files);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial"]);
    dir.to_owned()
}

pub fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `git daemon --enable=receive-pack` serving the bare repositories under
/// `base`, in a process group of its own (the daemon forks per connection),
/// which drop terminates.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> Self {
        let port = free_port();
        let child = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg(format!("--base-path={}", base.display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--reuseaddr")
            .arg(base)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git daemon starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let _ = self.child.wait();
        // Connection children that outlived the TERM.
        kill("-KILL");
    }
}

/// A bare `tenants.git` (one commit: a README and `controlplanes/`) served
/// by `git daemon`, and a clone `work` with an identity; under `tmp`.
pub struct Upstream {
    pub daemon: GitDaemon,
    pub work: PathBuf,
    pub url: String,
}

pub fn upstream(tmp: &Path) -> Upstream {
    let seed = tmp.join("seed");
    repo(
        &seed,
        &[("README.md", "# tenants\n"), ("controlplanes/.keep", "")],
    );
    let served = tmp.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let bare = served.join("tenants.git");
    git(
        tmp,
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let daemon = GitDaemon::start(&served);
    let url = daemon.url("tenants.git");
    let work = tmp.join("work");
    git(tmp, &["clone", "-q", &url, work.to_str().unwrap()]);
    git(&work, &["config", "user.name", "Test Person"]);
    git(&work, &["config", "user.email", "person@example.com"]);
    Upstream { daemon, work, url }
}

/// Merges `branch` into `main` on the upstream `url`, as a reviewer would
/// (a clone under `tmp`); returns the merge commit.
pub fn merge_upstream(tmp: &Path, url: &str, branch: &str) -> String {
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

/// Writes `files` in the checkout `work`, commits everything and pushes it
/// to the upstream's `main`; returns the commit.
pub fn commit_to_main(work: &Path, files: &[(&str, &str)], message: &str) -> String {
    write(work, files);
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"])
}
