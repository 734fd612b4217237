//! Helpers for kflex's Git-side tests: repositories driven by the real git
//! CLI with an identity of their own (never the machine's), and a
//! `git daemon` on a free loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod cluster;

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

/// An upstream repository holding `files`: a bare clone served by a
/// `git daemon` (as `tenants.git`), and a work clone of it with an identity.
/// Returns the daemon, the bare repository and the work clone.
pub fn upstream(tmp: &Path, files: &[(&str, &str)]) -> (GitDaemon, PathBuf, PathBuf) {
    let seed = repo(&tmp.join("seed"), files);
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
    let work = tmp.join("work");
    git(
        tmp,
        &[
            "clone",
            "-q",
            &daemon.url("tenants.git"),
            work.to_str().unwrap(),
        ],
    );
    git(&work, &["config", "user.name", "Test Person"]);
    git(&work, &["config", "user.email", "person@example.com"]);
    (daemon, bare, work)
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
