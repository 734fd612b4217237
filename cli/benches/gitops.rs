//! Figures for the Git side of kflex, printed (no timed assertions):
//! - `kflex validate` on a repository of 10,000 spec files (the binary, end
//!   to end, and the library call alone);
//! - `kflex create NAME --git` (scaffold + validate + commit) in a checkout
//!   of 10,000 specs.
//!
//! `cargo bench -p kflex --bench gitops`; `KFLEX_BENCH_SPECS` changes the
//! repository size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn specs() -> usize {
    std::env::var("KFLEX_BENCH_SPECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}

fn spec(i: usize) -> String {
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp-{i:05}\nspec:\n  type: k8s\n  postCreateHooks:\n    - hookName: hello\n      vars:\n        message: hello from cp-{i:05}\n"
    )
}

const HOOK: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: hello\nspec:\n  templates:\n    - apiVersion: batch/v1\n      kind: Job\n      metadata:\n        name: hello\n      spec:\n        template:\n          spec:\n            containers:\n              - name: hello\n                image: busybox\n                command: [\"echo\", \"{{.message}}\"]\n            restartPolicy: Never\n";

fn write_repo(root: &Path, n: usize) {
    std::fs::create_dir_all(root.join("controlplanes")).unwrap();
    std::fs::create_dir_all(root.join("hooks")).unwrap();
    std::fs::write(root.join("hooks/hello.yaml"), HOOK).unwrap();
    for i in 0..n {
        std::fs::write(root.join(format!("controlplanes/cp-{i:05}.yaml")), spec(i)).unwrap();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn kflex(dir: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kflex"))
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "kflex {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n = specs();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    write_repo(&root, n);

    // validate: the binary end to end (warm page cache), and the library.
    kflex(&root, &["validate"]);
    let runs: Vec<_> = (0..5).map(|_| kflex(&root, &["validate"])).collect();
    println!(
        "kflex validate, {n} files (binary, median of 5): {}",
        ms(median(runs))
    );
    let runs: Vec<_> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let checked = kflex::commands::validate::check_dir(&root, &Default::default()).unwrap();
            assert!(!checked.has_errors());
            started.elapsed()
        })
        .collect();
    println!(
        "validate library call, {n} files (median of 5): {}",
        ms(median(runs))
    );

    // create --git in a checkout of n specs.
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["config", "user.name", "Bench"]);
    git(&root, &["config", "user.email", "bench@example.com"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "specs"]);
    let runs: Vec<_> = (0..5)
        .map(|i| kflex(&root, &["create", &format!("new-{i}"), "--git"]))
        .collect();
    println!(
        "kflex create --git (scaffold + validate + commit), {n} specs (median of 5): {}",
        ms(median(runs))
    );
    let runs: Vec<_> = (0..5)
        .map(|i| {
            kflex(
                &root,
                &["create", &format!("branch-{i}"), "--git", "--new-branch"],
            )
        })
        .collect();
    println!(
        "kflex create --git --new-branch, {n} specs (median of 5): {}",
        ms(median(runs))
    );
}
