//! The `serve` binary with `--state-dir`: an acknowledged write survives a
//! SIGKILL, and resourceVersions keep increasing after the restart.
#![allow(clippy::unwrap_used)]
// test helpers outside #[test] functions
// The children are returned to the test, which kills and waits for them.
#![allow(clippy::zombie_processes)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

fn serve(state: &std::path::Path, kubeconfig: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeflex-testenv"))
        .args(["serve", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ingress = false;
    loop {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with("ingress 127.0.0.1:") {
            ingress = true;
        }
        if let Some(url) = line.strip_prefix("ready ") {
            assert!(ingress, "the ingress line comes before ready");
            return (child, url.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let kubeconfig = dir.path().join("kubeconfig");
    let (mut first, _) = serve(&state, &kubeconfig);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let client =
        kubeflex_testenv::client_from_kubeconfig(&std::fs::read_to_string(&kubeconfig).unwrap())
            .await
            .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut last_rv = 0u64;
    for i in 0..20 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": format!("c{i}")}, "data": {"i": i.to_string()}})).unwrap();
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        last_rv = created.metadata.resource_version.unwrap().parse().unwrap();
    }
    first.kill().unwrap(); // SIGKILL: no chance to flush anything
    first.wait().unwrap();
    let (mut second, _) = serve(&state, &kubeconfig);
    let client =
        kubeflex_testenv::client_from_kubeconfig(&std::fs::read_to_string(&kubeconfig).unwrap())
            .await
            .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..20 {
        assert_eq!(
            cms.get(&format!("c{i}")).await.unwrap().data.unwrap()["i"],
            i.to_string()
        );
    }
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "after"}})).unwrap();
    let rv: u64 = cms
        .create(&PostParams::default(), &cm)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > last_rv, "{rv} after {last_rv}");
    second.kill().unwrap();
    second.wait().unwrap();
}
