//! `cargo bench -p kflex`: wall-clock figures of the real binary.
//!
//! * `kflex --version` startup (target < 5 ms)
//! * `kflex ctx -o NAME`: fetch the kubeconfig from testenv, merge, write (target < 50 ms)
//! * `kflex list` with 1,000 control planes (target < 200 ms)
//! * `kflex create` of a `k8s` control plane until `kubectl --context` works
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kubeflex_operator::api::{ControlPlane, ControlPlaneSpec};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(what: &str, d: Duration, target: Option<u64>) {
    let t = target
        .map(|t| {
            format!(
                " (target < {t} ms: {})",
                if d < Duration::from_millis(t) {
                    "met"
                } else {
                    "MISSED"
                }
            )
        })
        .unwrap_or_default();
    println!("{what:<48} {:>10}{t}", ms(d));
}

async fn timed(env: &support::Env, kc: &[&Path], args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = env.kflex(kc, args).await;
    let d = start.elapsed();
    support::ok(&out);
    d
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    // Startup.
    let bin = env!("CARGO_BIN_EXE_kflex");
    let mut v = Vec::new();
    for _ in 0..50 {
        let s = Instant::now();
        let o = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .unwrap();
        v.push(s.elapsed());
        assert!(o.status.success());
    }
    report("kflex --version (median of 50)", median(v), Some(5));

    // create k8s until its context works, then ctx -o NAME.
    let env = support::Env::start().await;
    let kc = env.hosting_file("config");
    let files: [&Path; 1] = [&kc];
    support::ok(
        &env.kflex(&files, &["config", "set-hosting", "testenv"])
            .await,
    );
    let s = Instant::now();
    support::ok(&env.kflex(&files, &["create", "bench1"]).await);
    support::ok(
        &env.kubectl(&files, &["--context", "bench1", "get", "ns"])
            .await,
    );
    report(
        "kflex create (k8s) until kubectl --context works",
        s.elapsed(),
        None,
    );
    let mut v = Vec::new();
    for _ in 0..20 {
        v.push(timed(&env, &files, &["ctx", "-o", "bench1"]).await);
    }
    report(
        "kflex ctx -o NAME (fetch+merge+write, median 20)",
        median(v),
        Some(50),
    );
    let mut v = Vec::new();
    for _ in 0..20 {
        v.push(timed(&env, &files, &["ctx", "bench1"]).await);
    }
    report(
        "kflex ctx NAME (context present, median 20)",
        median(v),
        Some(50),
    );
    drop(env);

    // list with 1,000 control planes (no operator: only the listing is measured).
    let env = support::Env::start_idle(true).await;
    let kc = env.hosting_file("config");
    let files: [&Path; 1] = [&kc];
    support::ok(
        &env.kflex(&files, &["config", "set-hosting", "testenv"])
            .await,
    );
    let api: Api<ControlPlane> = Api::all(env.client.clone());
    let creates = (0..1000).map(|i| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &ControlPlane::new(&format!("cp-{i:04}"), ControlPlaneSpec::default()),
            )
            .await
            .unwrap();
        }
    });
    futures::future::join_all(creates).await;
    let mut v = Vec::new();
    for _ in 0..10 {
        v.push(timed(&env, &files, &["list"]).await);
    }
    report(
        "kflex list, 1,000 control planes (median 10)",
        median(v),
        Some(200),
    );
}
