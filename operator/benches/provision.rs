//! Benchmark: 200 ControlPlanes (k8s, k3s, vcluster, host in turn) against
//! testenv with the operator in-process. Prints the time until all are
//! Ready, API writes per control plane (testenv's resourceVersion delta:
//! every write of anyone, including testenv's simulated kubelet and
//! controllers), the operator's own writes, PKI time per control plane,
//! peak RSS (of the whole process: testenv, its tenant API servers and the
//! operator together), and writes during a following idle period.
//! Not a timed assertion. `BENCH_CPS` and `BENCH_IDLE_SECS` override the sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubeflex_operator::api::{ControlPlane, ControlPlaneSpec, ControlPlaneType};
use kubeflex_operator::config::OperatorConfig;
use kubeflex_operator::context::{ProbeMode, Settings};
use kubeflex_operator::metrics::Metrics;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::var("BENCH_CPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let idle: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
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
        let metrics = Arc::new(Metrics::default());
        let mut config = OperatorConfig::default();
        config.vcluster.service_cidr = Some("10.96.0.0/12".into());
        let settings = Settings {
            ready_requeue: Duration::from_millis(500),
            probe: ProbeMode::ServiceProxy,
            ..Settings::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let operator = tokio::spawn(kubeflex_operator::controller::run(
            client.clone(),
            config,
            settings,
            metrics.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        let types = [
            ControlPlaneType::K8s,
            ControlPlaneType::K3s,
            ControlPlaneType::Vcluster,
            ControlPlaneType::Host,
        ];
        let cps: Api<ControlPlane> = Api::all(client.clone());
        let rv0 = env.api().store.current_rv();
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
        loop {
            let list = cps.list(&Default::default()).await.unwrap();
            let ready = list
                .items
                .iter()
                .filter(|cp| {
                    cp.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            if ready == n {
                break;
            }
            if start.elapsed() > Duration::from_secs(600) {
                println!("timed out: {ready}/{n} Ready");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let all_ready = start.elapsed();
        let rv_ready = env.api().store.current_rv();
        let op_writes = metrics.total_writes();
        let (pki_secs, _) = metrics.pki_totals();
        let with_pki = (0..n)
            .filter(|i| {
                matches!(
                    types[i % types.len()],
                    ControlPlaneType::K8s | ControlPlaneType::K3s
                )
            })
            .count();
        println!("control planes:                 {n} (k8s, k3s, vcluster, host in turn)");
        println!(
            "time until all Ready:           {:.2} s",
            all_ready.as_secs_f64()
        );
        println!(
            "API writes per control plane:   {:.1} (all writers, excluding the {n} creations)",
            (rv_ready - rv_created) as f64 / n as f64
        );
        println!(
            "operator writes per CP:         {:.1}",
            op_writes as f64 / n as f64
        );
        println!(
            "PKI time per CP with PKI:       {:.2} ms ({with_pki} of {n}; load + generate/renew)",
            pki_secs * 1000.0 / with_pki.max(1) as f64
        );
        let _ = rv0;
        let rv_idle = env.api().store.current_rv();
        let op_idle = metrics.total_writes();
        tokio::time::sleep(Duration::from_secs(idle)).await;
        println!(
            "writes during {idle} s idle:       {} (operator: {})",
            env.api().store.current_rv() - rv_idle,
            metrics.total_writes() - op_idle
        );
        println!(
            "peak RSS (whole process):       {} MiB (testenv + {} tenant API servers + operator)",
            peak_rss_kib() / 1024,
            env.tenant_count()
        );
        let _ = tx.send(());
        let _ = operator.await;
    });
}
