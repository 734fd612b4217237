//! Figures for the Git side of kflex, printed (no timed assertions):
//! - `kflex validate` on a repository of 10,000 spec files, each using a
//!   hook with variables of its own (the binary, end to end, and the
//!   library call alone);
//! - `kflex create NAME --git` (scaffold + validate + commit) in a checkout
//!   of 10,000 specs;
//! - `kflex diff` of a checkout of 10,000 specs with one change against
//!   testenv holding the 10,000 as a reconciler applied them;
//! - merge → context: from the merge commit landing on the followed
//!   branch (pushed to a `git daemon`) to `kflex wait` having written the
//!   context, with the reconciler (1 h interval) triggered as its push
//!   webhook triggers it, and the operator provisioning the control plane.
//!
//! `cargo bench -p kflex --bench gitops`; `KFLEX_BENCH_SPECS` changes the
//! repository size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/gitsupport/mod.rs"]
mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeflex_reconciler::apply::Cluster;
use kubeflex_reconciler::metrics::Metrics;
use kubeflex_reconciler::reconcile::{Reconciler, Settings};
use kubeflex_reconciler::source::DirSource;

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

/// `median (min–max)` of the runs.
fn spread(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "{} ({} – {})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1])
    )
}

/// `kflex diff` of `dir` with one change, against testenv holding the
/// `n + 1` objects of `write_repo` as reconciler `bench` applied them.
async fn diff_bench(n: usize) {
    let base = support::env::Env::start_idle(true).await;
    let kubeconfig = base.hosting_file("kubeconfig");
    let dir = base.path("specs");
    write_repo(&dir, n);
    let cluster = Cluster::new(base.client.clone());
    let watched = kubeflex_reconciler::watch::start_inventory(&cluster, "bench")
        .await
        .unwrap();
    let mut reconciler = Reconciler::new(
        Settings::new("bench", dir.display().to_string()),
        Arc::new(DirSource::new(&dir, "").unwrap()),
        cluster,
        watched.inventory,
        Arc::new(Metrics::default()),
    );
    reconciler.init_status().await;
    let started = Instant::now();
    let outcome = reconciler.pass().await.unwrap();
    println!(
        "(setup) reconciler pass applying {n} specs + 1 hook to testenv: {}",
        ms(started.elapsed())
    );
    assert_eq!(outcome.counts.applied as usize, n + 1, "{outcome:?}");
    let diff = |expect: i32| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_kflex"))
            .args(["diff", dir.to_str().unwrap(), "--name", "bench"])
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", base.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let took = started.elapsed();
        assert_eq!(
            out.status.code(),
            Some(expect),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (took, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let runs: Vec<_> = (0..3).map(|_| diff(0).0).collect();
    println!(
        "kflex diff, {n} specs, no change (median (min – max) of 3): {}",
        spread(runs)
    );
    std::fs::write(
        dir.join("controlplanes/cp-00000.yaml"),
        spec(0).replace("hello from", "changed in"),
    )
    .unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let (took, stdout) = diff(1);
            assert!(stdout.contains("cp-00000"), "{stdout}");
            took
        })
        .collect();
    println!(
        "kflex diff, {n} specs, one changed (median (min – max) of 3): {}",
        spread(runs)
    );
    for t in watched.tasks {
        t.abort();
    }
}

/// Merge → context, `runs` times: a pull-request branch is pushed with
/// `create --git --new-branch --push`, `kflex wait` follows its commit, a
/// reviewer merges it upstream, and the reconciler is triggered as its
/// webhook would be (the signed HTTP call itself is not in the figure).
async fn merge_to_context_bench(runs: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let up = support::upstream(tmp.path());
    let mut hosting = support::cluster::Hosting::start().await;
    let trigger = hosting
        .reconciler("tenants", &up.url, Duration::from_secs(3600))
        .await;
    let mut took = Vec::new();
    for i in 0..runs {
        let name = format!("m{i}");
        let branch = format!("kflex/create-{name}");
        let out = hosting
            .kflex(&up.work, &home)
            .args(["create", &name, "--git", "--new-branch", "--push"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sha = support::git(&up.work, &["rev-parse", &branch]);
        let mut child = hosting
            .kflex(&up.work, &home)
            .args(["wait", &name, "--commit", &sha, "--timeout", "2m"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("waiting for merge") {
                break;
            }
        }
        support::merge_upstream(tmp.path(), &up.url, &branch);
        let merged = Instant::now();
        trigger.notify_one();
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        took.push(merged.elapsed());
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(status.success(), "{rest:?}");
        assert!(
            rest.last()
                .is_some_and(|l| l.ends_with(&format!("context {name}"))),
            "{rest:?}"
        );
    }
    println!(
        "merge -> context written by kflex wait (median (min – max) of {runs}): {}",
        spread(took)
    );
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
    // Its first half: the reconciler's validation alone (the rest is the
    // operator's spec checks and hook rendering per control plane).
    let runs: Vec<_> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let snapshot = DirSource::new(&root, "").unwrap().snapshot().unwrap();
            let report = kubeflex_reconciler::validate::validate(
                &snapshot,
                kubeflex_reconciler::validate::Selection::All,
                &Default::default(),
            )
            .unwrap();
            assert_eq!(report.errors().count(), 0);
            started.elapsed()
        })
        .collect();
    println!(
        "  of which the reconciler's validation, {n} files (median of 5): {}",
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

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(diff_bench(n));
    rt.block_on(merge_to_context_bench(5));
}
