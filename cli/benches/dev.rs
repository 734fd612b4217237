//! `cargo bench -p kflex --bench dev`: figures of `kflex dev` (the real
//! binary, as a process):
//!
//! * start → hosting context usable (kubectl answers through it)
//! * start → every control plane of `repo-template/` Ready
//! * peak RSS (VmHWM) with the template, and with N `k8s` control planes
//!   (`KFLEX_DEV_BENCH_CPS`, default 100)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    started: Instant,
}

impl Run {
    fn start(dir: &Path) -> Self {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kflex"))
            .arg("dev")
            .arg(dir)
            .env("HOME", dir)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            started,
        }
    }

    /// Time from start until a line containing `needle`.
    fn until(&self, needle: &str, timeout: Duration) -> Duration {
        loop {
            let left = timeout.saturating_sub(self.started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return self.started.elapsed(),
                Ok(_) => {}
                Err(_) => panic!("no line containing {needle:?} within {timeout:?}"),
            }
        }
    }

    /// Peak resident set of the process so far, MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb / 1024.0
    }

    fn stop(mut self) {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "kflex dev exited with {status}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == ".kflex" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn kubectl_works(dir: &Path) -> bool {
    Command::new("kubectl")
        .arg("--cache-dir")
        .arg(dir.join(".kube-cache"))
        .args(["get", "ns", "kubeflex-system", "-o", "name"])
        .env("KUBECONFIG", dir.join(".kflex/kubeconfig"))
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("template");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../repo-template"),
        &template,
    );
    let n_template = std::fs::read_dir(template.join("controlplanes"))
        .unwrap()
        .count();
    let run = Run::start(&template);
    run.until("hosting context usable", Duration::from_secs(60));
    while !kubectl_works(&template) {
        assert!(run.started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    let usable = run.started.elapsed();
    let ready = run.until(
        &format!("all {n_template} control planes Ready"),
        Duration::from_secs(600),
    );
    let rss_template = run.peak_rss_mib();
    run.stop();
    println!(
        "kflex dev start -> hosting context usable (kubectl)  {:>8.2} s",
        usable.as_secs_f64()
    );
    println!(
        "kflex dev start -> {n_template} template control planes Ready   {:>8.2} s",
        ready.as_secs_f64()
    );
    println!(
        "kflex dev peak RSS, template ({n_template} control planes)     {rss_template:>8.1} MiB"
    );

    let n: usize = std::env::var("KFLEX_DEV_BENCH_CPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let many = tmp.path().join("many");
    std::fs::create_dir_all(many.join("controlplanes")).unwrap();
    for i in 0..n {
        std::fs::write(
            many.join(format!("controlplanes/cp{i}.yaml")),
            format!("apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp{i}\nspec:\n  type: k8s\n  backend: shared\n"),
        )
        .unwrap();
    }
    let run = Run::start(&many);
    let ready = run.until(
        &format!("all {n} control planes Ready"),
        Duration::from_secs(1800),
    );
    let rss_many = run.peak_rss_mib();
    run.stop();
    println!(
        "kflex dev start -> {n} k8s control planes Ready      {:>8.2} s",
        ready.as_secs_f64()
    );
    println!("kflex dev peak RSS, {n} k8s control planes          {rss_many:>8.1} MiB");
}
