//! The real Helm library (helm-sdkpy: Helm's Go code behind a Python API)
//! installs a chart into testenv. Helm keeps each release in a Secret it
//! creates with a protobuf body, so this also proves testenv's protobuf
//! decoding with a client other than kubectl.
//!
//! The venv comes from `tests/helm/setup-venv.sh` (run by `./test.sh`).

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod support;

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use support::Cluster;

fn venv_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv =
        std::env::var_os("HELM_VENV").map_or_else(|| root.join("target/helm-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "the Helm venv is missing at {}: run tests/helm/setup-venv.sh (./test.sh does)",
        venv.display()
    );
    python
}

const CHART: &str = "apiVersion: v2
name: greeter
version: 0.1.0
";

const TEMPLATE: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-greeting
  labels:
    app.kubernetes.io/managed-by: {{ .Release.Service }}
data:
  greeting: {{ .Values.greeting | quote }}
";

#[test]
fn helm_installs_a_chart_and_lists_the_release() {
    let python = venv_python();
    let c = Cluster::start();
    let chart = c.dir.path().join("greeter");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), CHART).unwrap();
    std::fs::write(chart.join("values.yaml"), "greeting: hi\n").unwrap();
    std::fs::write(chart.join("templates/configmap.yaml"), TEMPLATE).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("helm/install_and_list.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&c.kubeconfig)
        .args(["default", "demo"])
        .arg(&chart)
        .env("HOME", c.dir.path())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let releases = result["list"].as_array().unwrap();
    assert_eq!(releases.len(), 1, "{result}");
    assert_eq!(releases[0]["name"], "demo", "{result}");
    assert_eq!(releases[0]["namespace"], "default", "{result}");

    let client = c.client();
    let cm =
        c.rt.block_on(Api::<ConfigMap>::namespaced(client.clone(), "default").get("demo-greeting"))
            .unwrap();
    assert_eq!(cm.data.unwrap()["greeting"], "hello");
    // Helm's storage: one Secret per revision, labelled by owner and status.
    let secret = c
        .rt
        .block_on(Api::<Secret>::namespaced(client, "default").get("sh.helm.release.v1.demo.v1"))
        .unwrap();
    let labels = secret.metadata.labels.unwrap();
    assert_eq!(labels["owner"], "helm");
    assert_eq!(labels["status"], "deployed");
    assert_eq!(secret.type_.as_deref(), Some("helm.sh/release.v1"));
}
