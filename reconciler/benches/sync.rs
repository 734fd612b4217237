//! Benchmark (`cargo bench -p kubeflex-reconciler --bench sync`): the
//! reconciler binary against testenv and a `git daemon`, on a generated
//! repository of `BENCH_CPS` (default 10,000) ControlPlane files. Prints
//! figures; asserts nothing about time.
//!
//! 1. initial sync: time and API writes;
//! 2. one commit changing one file, triggered by a signed webhook: time from
//!    push to the object changed, files read and writes, next to `git fetch`
//!    + `git diff-tree` of the same commit by the git CLI;
//! 3. `--dir --watch`: save-to-applied delay (p50, p90);
//! 4. peak RSS (VmHWM) of the reconciler process;
//! 5. a restart over the synced objects: time to the first pass (nothing to
//!    write) and its peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use kubeflex_testenv::measure::peak_rss_kib;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Cluster, GitDaemon, cp, cp_with_vars, free_port, git};

/// Lines of the reconciler's log with `pass done`, ANSI codes stripped.
/// With `BENCH_ECHO` set, every line is also copied to the bench's stderr.
fn pass_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let echo = std::env::var_os("BENCH_ECHO").is_some();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("reconciler: {line}");
            }
            let clean = support::strip_ansi(&line);
            if clean.contains("pass done") && tx.send(clean).is_err() {
                return;
            }
        }
    });
    rx
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn post_signed(port: u16, secret: &[u8]) {
    let body = r#"{"ref":"refs/heads/main"}"#;
    let sig = kubeflex_reconciler::webhook::github_signature(secret, body.as_bytes());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /hook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
}

/// `RUST_LOG` for the reconciler: `BENCH_RUST_LOG` when set (it must keep
/// `kubeflex_reconciler=info`, or `pass done` never shows), else
/// [`support::RECONCILER_LOG`].
fn log_filter(cmd: &mut Command) {
    if let Ok(filter) = std::env::var("BENCH_RUST_LOG") {
        cmd.env("RUST_LOG", filter);
    }
}

fn main() {
    let n = support::bench_cps();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let cluster = Cluster::start().await;
        let up = support::Upstream::new(&[]);
        let files = support::generated_cps(n);
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        up.commit(&refs, &[], "generated tenants");
        let daemon = GitDaemon::start(&up.repos());
        // The git CLI's side: a clone that will fetch the same commit.
        git(up.tmp.path(), &["clone", "-q", &daemon.url(), "cli"]);
        let cli = up.tmp.path().join("cli");

        let secret = up.tmp.path().join("secret");
        std::fs::write(&secret, "bench").unwrap();
        let port = free_port();
        // The reconciler following the generated repository.
        // `BENCH_AS_ADMIN=1`: the reconciler as testenv's admin instead of
        // its ServiceAccount, to tell the cost of testenv's authentication
        // and authorization apart from the reconciler's own.
        let kubeconfig = match std::env::var_os("BENCH_AS_ADMIN") {
            Some(_) => cluster.admin_kubeconfig(),
            None => cluster.kubeconfig(),
        };
        let following = || {
            let mut cmd = support::reconciler_command_with(&kubeconfig, "bench");
            cmd.args(["--git-url", &daemon.url(), "--interval", "1h", "--path", "controlplanes"])
                .arg("--cache-dir")
                .arg(up.cache())
                .env("NO_COLOR", "1")
                .stderr(Stdio::piped());
            log_filter(&mut cmd);
            cmd
        };
        let mut cmd = following();
        cmd.args(["--webhook-addr", &format!("127.0.0.1:{port}")])
            .arg("--webhook-secret-file")
            .arg(&secret);
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let passes = pass_lines(&mut child);
        let first = passes
            .recv_timeout(Duration::from_secs(900))
            .expect("no `pass done` from the reconciler in 15 min (BENCH_ECHO=1 shows its log)");
        let initial = started.elapsed();
        println!(
            "initial sync of {n} ControlPlanes: {:.2?}, {} API writes, {} files read",
            initial,
            field(&first, "writes"),
            field(&first, "files")
        );

        // One commit changing one file, pushed, then the webhook.
        let target = "bench-00042";
        let path = format!("controlplanes/{target}.yaml");
        let before = git(&up.work(), &["rev-parse", "HEAD"]);
        let pushed_at = Instant::now();
        let after = up.commit(&[(&path, &cp_with_vars(target, "    size: large\n"))], &[], "resize one");
        let push_time = pushed_at.elapsed();
        let t0 = Instant::now();
        post_signed(port, b"bench");
        let cps = cluster.cps();
        loop {
            let obj = cps.get(target).await.unwrap();
            if obj.data["spec"]["globalVars"]["size"] == "large" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ours = t0.elapsed();
        let line = passes
            .recv_timeout(Duration::from_secs(60))
            .expect("no `pass done` after the webhook");
        let t1 = Instant::now();
        git(&cli, &["fetch", "-q", "origin"]);
        let diff = git(&cli, &["diff-tree", "-r", "--name-only", &before, &after]);
        let git_cli = t1.elapsed();
        println!(
            "one changed file: webhook→applied {ours:.2?} (push itself {push_time:.2?}); files read {}, API writes {}",
            field(&line, "files"),
            field(&line, "writes")
        );
        println!("git CLI fetch + diff-tree of the same commit: {git_cli:.2?} ({diff})");
        println!("peak RSS of the reconciler (VmHWM): {} MiB", peak_rss_kib(child.id()) / 1024);
        // Stopped as Kubernetes stops it (SIGTERM): it hands its lease back,
        // so the restart below does not wait for the lease to expire.
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();

        // A restart: the inventory is listed from the cluster, then a full
        // pass compares every object and writes nothing.
        let started = Instant::now();
        let mut child = following().spawn().unwrap();
        let passes = pass_lines(&mut child);
        let line = passes
            .recv_timeout(Duration::from_secs(900))
            .expect("no `pass done` after the restart");
        println!(
            "restart over {n} existing objects: first pass done after {:.2?}, {} unchanged, {} API writes; peak RSS {} MiB",
            started.elapsed(),
            field(&line, "unchanged"),
            field(&line, "writes"),
            peak_rss_kib(child.id()) / 1024
        );
        let _ = child.kill();
        let _ = child.wait();

        // Local watch mode.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.yaml"), cp("bench-watch")).unwrap();
        let mut cmd = support::reconciler_command(&cluster, "benchwatch");
        cmd.arg("--dir").arg(dir.path()).arg("--watch").env("NO_COLOR", "1").stderr(Stdio::piped());
        log_filter(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let passes = pass_lines(&mut child);
        passes
            .recv_timeout(Duration::from_secs(60))
            .expect("no `pass done` from the watch-mode reconciler");
        let mut delays = Vec::new();
        for i in 0..20 {
            let value = format!("v{i}");
            let t = Instant::now();
            std::fs::write(
                dir.path().join("w.yaml"),
                cp_with_vars("bench-watch", &format!("    rev: {value}\n")),
            )
            .unwrap();
            loop {
                let obj = cps.get("bench-watch").await.unwrap();
                if obj.data["spec"]["globalVars"]["rev"] == value.as_str() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            delays.push(t.elapsed());
        }
        delays.sort();
        println!(
            "watch mode save→applied: p50 {:.0?}, p90 {:.0?} (debounce {:?})",
            delays[delays.len() / 2],
            delays[delays.len() * 9 / 10],
            kubeflex_reconciler::watch::DEBOUNCE
        );
        println!("peak RSS of the watch-mode reconciler: {} MiB", peak_rss_kib(child.id()) / 1024);
        let _ = child.kill();
        let _ = child.wait();
        let _ = Command::new("true").status();
    });
}
