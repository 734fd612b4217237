//! 200 tenant API servers alive at once in one testenv process (run with
//! `cargo bench -p kubeflex-testenv --bench tenants`): time until every
//! tenant's Deployment is Available, startup time per tenant, and the
//! server's memory per tenant (VmRSS growth / tenants). The server runs as
//! its own process so its memory is its own.

mod support;

use kubeflex_testenv::measure::proc_status_kib;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, PostParams};

const TENANTS: usize = 200;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let tenants: usize = std::env::var("BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TENANTS);
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let mut server = support::spawn_server(&kubeconfig)?;
    let pid = server.id();
    let client =
        kubeflex_testenv::client_from_kubeconfig(&std::fs::read_to_string(&kubeconfig)?).await?;
    let ca = kubeflex_testenv::pki::Authority::new("bench-ca")?;
    let serving = ca.serving(&["localhost", "127.0.0.1"])?;
    let data = serde_json::json!({
        "tls.crt": STANDARD.encode(&serving.cert_pem),
        "tls.key": STANDARD.encode(&serving.key_pem),
        "ca.crt": STANDARD.encode(&ca.ca.cert_pem),
        "sa.key": STANDARD.encode(&serving.key_pem),
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = proc_status_kib(pid, "VmRSS:");
    let started = Instant::now();
    for i in 0..tenants {
        let ns = format!("t{i}");
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
            )
            .await?;
        Api::<Secret>::namespaced(client.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    serde_json::json!({"metadata": {"name": "pki"}, "data": data}),
                )?,
            )
            .await?;
        let deploy = serde_json::json!({
            "metadata": {"name": "kube-apiserver", "labels": {"bench": "tenant"}},
            "spec": {
                "selector": {"matchLabels": {"app": "apiserver"}},
                "template": {
                    "metadata": {"labels": {"app": "apiserver"}},
                    "spec": {
                        "containers": [{
                            "name": "apiserver",
                            "image": "registry.k8s.io/kube-apiserver:v1.29.9",
                            "command": ["kube-apiserver", "--secure-port=9444",
                                "--tls-cert-file=/pki/tls.crt", "--tls-private-key-file=/pki/tls.key",
                                "--client-ca-file=/pki/ca.crt",
                                "--service-account-issuer=https://kubernetes.default.svc",
                                "--service-account-signing-key-file=/pki/sa.key"],
                            "volumeMounts": [{"name": "pki", "mountPath": "/pki"}]
                        }],
                        "volumes": [{"name": "pki", "secret": {"secretName": "pki"}}]
                    }
                }
            }
        });
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &serde_json::from_value(deploy)?)
            .await?;
    }
    let created = started.elapsed();
    let deploys: Api<Deployment> = Api::all(client.clone());
    let mut available = 0;
    while started.elapsed() < Duration::from_secs(300) {
        let list = deploys
            .list(&ListParams::default().labels("bench=tenant"))
            .await?;
        available = list
            .items
            .iter()
            .filter(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    >= 1
            })
            .count();
        if available == tenants {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_ready = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = proc_status_kib(pid, "VmRSS:");
    let per_tenant_mib = (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / tenants as f64;
    println!("tenant API servers benchmark ({tenants} kube-apiserver Deployments, one process)");
    println!("  objects created in:   {created:.2?}");
    println!(
        "  all Available after:  {all_ready:.2?} ({available}/{tenants}); {:.2?} per tenant",
        all_ready / tenants as u32
    );
    println!(
        "  server RSS:           {:.1} MiB before, {:.1} MiB with {tenants} tenants",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    println!("  memory per tenant:    {per_tenant_mib:.2} MiB (target < 2 MiB)");
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}
