//! Benchmark of the figures, each measured where it means something:
//!
//! 1. PKI CPU per control plane, in isolation: the `k8s` bundle
//!    (`ControlPlanePki::generate`) N times in a loop on this one thread;
//!    mean and p99 per bundle (wall per bundle on one otherwise idle
//!    thread) plus the thread's CPU time from `/proc/thread-self/schedstat`;
//!    ECDSA P-256 (the default) against RSA-2048 (KubeFlex's).
//! 2. 200 ControlPlanes (k8s, k3s, vcluster, host in turn) against testenv
//!    in this process, the operator as a child process
//!    (`kubeflex-operator run --kubeconfig <testenv admin>`): time until all
//!    are Ready (and Synced), API writes per control plane (testenv's
//!    resourceVersion delta: every writer, including testenv's simulated
//!    kubelet and controllers) and the operator's own (its
//!    `kflex_operator_writes_total`), writes in a following idle period, and
//!    the operator's own peak RSS (`VmHWM` of the child; testenv and its
//!    tenant API servers are not in it).
//!
//! Not a timed assertion: every figure is printed next to its target.
//! `BENCH_CPS`, `BENCH_IDLE_SECS`, `BENCH_PKI_N` and `BENCH_PKI_RSA_N`
//! override the sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubeflex_testenv::measure::proc_status_kib;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubeflex_operator::api::{ControlPlane, ControlPlaneSpec, ControlPlaneType};
use kubeflex_operator::config::{PkiAlgorithm, PkiConfig};
use kubeflex_operator::pki::{ControlPlanePki, ServingNames};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TARGET_READY_SECS: f64 = 20.0;
const TARGET_PKI_MS: f64 = 2.0;
const TARGET_RSS_MIB: f64 = 64.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// CPU time this thread has run, from the scheduler (ns resolution).
fn thread_cpu() -> Duration {
    // The kernel folds the running slice into the figure on a reschedule.
    std::thread::yield_now();
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// `(mean, p99, cpu mean)` of generating one k8s PKI bundle, `n` times.
fn pki_bundle(algorithm: PkiAlgorithm, n: usize) -> (Duration, Duration, Duration) {
    let cfg = PkiConfig {
        algorithm,
        ..PkiConfig::default()
    };
    let names = ServingNames::for_k8s(
        "bench",
        "localtest.me",
        "kubeflex-control-plane",
        None,
        Some("10.96.0.10".parse().unwrap()),
    );
    // One warm-up bundle (lazy initialisation of the crypto provider).
    ControlPlanePki::generate(&names, &cfg, Timestamp::now()).unwrap();
    let cpu0 = thread_cpu();
    let mut each: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let pki = ControlPlanePki::generate(&names, &cfg, Timestamp::now()).unwrap();
            let elapsed = start.elapsed();
            std::hint::black_box(pki);
            elapsed
        })
        .collect();
    let cpu = thread_cpu() - cpu0;
    each.sort();
    let mean = each.iter().sum::<Duration>() / n as u32;
    let p99 = each[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1];
    (mean, p99, cpu / n as u32)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// utime + stime of a process, in seconds (USER_HZ = 100).
fn proc_cpu_secs(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`, which may hold spaces.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

/// The operator's `kflex_operator_writes_total`, summed over kinds.
async fn operator_writes(port: u16) -> u64 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return 0;
    };
    let request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body).await;
    body.lines()
        .filter(|l| l.starts_with("kflex_operator_writes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Operator {
    child: Child,
    metrics_port: u16,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_operator(kubeconfig: &std::path::Path, log: &std::path::Path) -> Operator {
    let metrics_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_kubeflex-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--leader-elect", "false"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        .args(["--ready-requeue-seconds", "1"])
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Operator {
        child,
        metrics_port,
    }
}

fn is_true(cp: &ControlPlane, type_: &str) -> bool {
    cp.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

fn main() {
    let n: usize = env_or("BENCH_CPS", 200);
    let idle: u64 = env_or("BENCH_IDLE_SECS", 60);
    let pki_n: usize = env_or("BENCH_PKI_N", 200);
    let pki_rsa_n: usize = env_or("BENCH_PKI_RSA_N", 20);

    // 1. PKI in isolation, on this thread, before anything else runs.
    let (ec_mean, ec_p99, ec_cpu) = pki_bundle(PkiAlgorithm::EcdsaP256, pki_n);
    let (rsa_mean, rsa_p99, rsa_cpu) = pki_bundle(PkiAlgorithm::Rsa2048, pki_rsa_n);
    println!("== PKI: one k8s bundle (ControlPlanePki::generate), one thread, in isolation");
    println!(
        "ECDSA P-256 ({pki_n}x):  mean {:.2} ms, p99 {:.2} ms, CPU {:.2} ms/bundle   target < {TARGET_PKI_MS} ms: {}",
        ms(ec_mean),
        ms(ec_p99),
        ms(ec_cpu),
        verdict(ms(ec_p99) < TARGET_PKI_MS)
    );
    println!(
        "RSA-2048 ({pki_rsa_n}x):    mean {:.2} ms, p99 {:.2} ms, CPU {:.2} ms/bundle   ({:.0}x ECDSA)",
        ms(rsa_mean),
        ms(rsa_p99),
        ms(rsa_cpu),
        rsa_mean.as_secs_f64() / ec_mean.as_secs_f64().max(f64::MIN_POSITIVE)
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let env = kubeflex_testenv::TestEnv::builder().start().await.unwrap();
        let client = env.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in kubeflex_operator::crdgen::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::File::create(&kubeconfig)
            .unwrap()
            .write_all(env.kubeconfig().as_bytes())
            .unwrap();
        let log = dir.path().join("operator.log");
        let operator = start_operator(&kubeconfig, &log);
        let pid = operator.child.id();
        let port = operator.metrics_port;
        let types = [
            ControlPlaneType::K8s,
            ControlPlaneType::K3s,
            ControlPlaneType::Vcluster,
            ControlPlaneType::Host,
        ];
        let cps: Api<ControlPlane> = Api::all(client.clone());
        // The operator is up (its metrics answer) before the clock starts.
        let up = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(up.elapsed() < Duration::from_secs(30), "operator did not start; see {}", log.display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rss_start = proc_status_kib(pid, "VmRSS:");
        let cpu_start = proc_cpu_secs(pid);
        let start = Instant::now();
        for i in 0..n {
            let cp = ControlPlane::new(
                &format!("b{i}"),
                ControlPlaneSpec {
                    type_: types[i % types.len()],
                    ..ControlPlaneSpec::default()
                },
            );
            cps.patch(
                &format!("b{i}"),
                &PatchParams::apply("bench"),
                &Patch::Apply(&cp),
            )
            .await
            .unwrap();
        }
        let rv_created = env.api().store.current_rv();
        let ready = loop {
            let list = cps.list(&Default::default()).await.unwrap();
            let ready = list
                .items
                .iter()
                .filter(|cp| is_true(cp, "Ready") && is_true(cp, "Synced"))
                .count();
            if ready == n || start.elapsed() > Duration::from_secs(600) {
                break ready;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let all_ready = start.elapsed();
        let rv_ready = env.api().store.current_rv();
        let op_writes = operator_writes(port).await;
        let cpu_ready = proc_cpu_secs(pid) - cpu_start;
        let rss_ready = proc_status_kib(pid, "VmHWM:");

        tokio::time::sleep(Duration::from_secs(2)).await; // let the last status writes land
        let rv_idle = env.api().store.current_rv();
        let op_idle = operator_writes(port).await;
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let idle_all = env.api().store.current_rv() - rv_idle;
        let idle_op = operator_writes(port).await - op_idle;
        let hwm = proc_status_kib(pid, "VmHWM:");
        let rss_end = proc_status_kib(pid, "VmRSS:");
        let alive = proc_status_kib(pid, "VmRSS:") > 0;

        println!("== {n} control planes (k8s, k3s, vcluster, host in turn); operator as a child process");
        if ready < n {
            println!("TIMED OUT: {ready}/{n} Ready after 600 s (operator log: {})", log.display());
        }
        println!(
            "time until all Ready+Synced:   {:.2} s   target < {TARGET_READY_SECS} s: {}",
            all_ready.as_secs_f64(),
            verdict(ready == n && all_ready.as_secs_f64() < TARGET_READY_SECS)
        );
        println!(
            "API writes per CP, all:        {:.1} (every writer incl. testenv's kubelet/controllers; excl. the {n} creations)",
            (rv_ready - rv_created) as f64 / n as f64
        );
        println!(
            "API writes per CP, operator:   {:.1} (its kflex_operator_writes_total: applies, creates, deletes, status; not Events)",
            op_writes as f64 / n as f64
        );
        println!("operator CPU until all Ready:  {cpu_ready:.2} s ({:.1} ms per CP)", cpu_ready * 1000.0 / n as f64);
        println!(
            "writes during {idle} s idle:      {idle_all} all, {idle_op} operator   target 0: {}",
            verdict(idle_all == 0 && idle_op == 0)
        );
        let hwm_mib = hwm as f64 / 1024.0;
        println!(
            "operator peak RSS (VmHWM):     {hwm_mib:.1} MiB   target < {TARGET_RSS_MIB} MiB: {}",
            verdict(alive && hwm_mib < TARGET_RSS_MIB)
        );
        println!(
            "operator RSS:                  {:.1} MiB at start, peak {:.1} MiB by all Ready, {:.1} MiB after idle",
            rss_start as f64 / 1024.0,
            rss_ready as f64 / 1024.0,
            rss_end as f64 / 1024.0
        );
        println!(
            "(testenv + {} tenant API servers run in the bench process and are not counted)",
            env.tenant_count()
        );
        drop(operator);
    });
}
