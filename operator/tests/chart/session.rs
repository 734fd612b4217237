//! Shared by the chart tests (chart.rs, least_privilege.rs): the real Helm
//! library driven through chart/helm.py, renders, and testenv set up for
//! the chart.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // a test helper: failing loudly is its job

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kubeflex_testenv::TestEnv;
use serde_json::{Value, json};

/// The kinds of the chart's RBAC objects.
pub const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn chart_dir() -> PathBuf {
    root().join("charts/kubeflex")
}

/// The venv's python with helm-sdkpy; set up by `tests/helm/setup-venv.sh`
/// (run here when the venv is missing).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("HELM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/helm-venv"));
    let python = venv.join("bin/python");
    if !python.exists() {
        let script = root().join("tests/helm/setup-venv.sh");
        assert!(
            script.exists(),
            "no Helm venv at {} and no {} to make one; run: python3 -m venv target/helm-venv && target/helm-venv/bin/pip install --ignore-requires-python helm-sdkpy==0.1.32 cffi",
            python.display(),
            script.display()
        );
        let status = Command::new("bash")
            .arg(&script)
            .current_dir(root())
            .status()
            .unwrap();
        assert!(status.success(), "{} failed", script.display());
    }
    python
}

/// A Helm session: one Python process running tests/chart/helm.py, which
/// answers each step with a line.
pub struct Helm {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Helm {
    /// `driver`: Helm's release storage (`secret`, its default, or `memory`).
    pub fn start(kubeconfig: Option<&Path>, driver: &str) -> Self {
        let mut child = Command::new(python())
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/chart/helm.py"))
            .env("HELM_DRIVER", driver)
            .env(
                "HELM_CACHE_HOME",
                std::env::temp_dir().join("kflex-chart-helm-cache"),
            )
            .env(
                "HELM_CONFIG_HOME",
                std::env::temp_dir().join("kflex-chart-helm-config"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let config = json!({
            "namespace": "kubeflex-system",
            "kubeconfig": kubeconfig.map(|p| p.display().to_string()),
        });
        writeln!(stdin, "{config}").unwrap();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs one step; blocking (call through `block_in_place` in async tests).
    pub fn step(&mut self, step: Value) -> Result<Value, String> {
        use std::io::BufRead as _;
        writeln!(self.stdin, "{step}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "helm.py exited without answering {step}");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["ok"] == true {
            Ok(v["result"].clone())
        } else {
            Err(v["error"].as_str().unwrap_or_default().to_owned())
        }
    }

    pub fn run(&mut self, step: Value) -> Result<Value, String> {
        tokio::task::block_in_place(|| self.step(step))
    }
}

impl Drop for Helm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A testenv and its admin kubeconfig file.
pub struct Env {
    pub env: TestEnv,
    _dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub async fn testenv() -> Env {
    let env = TestEnv::builder().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("admin.kubeconfig");
    std::fs::write(&kubeconfig, env.kubeconfig()).unwrap();
    Env {
        env,
        _dir: dir,
        kubeconfig,
    }
}

/// The documents of a manifest.
pub fn documents(manifest: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for doc in manifest.split("\n---") {
        let doc: Value = serde_saphyr::from_str(doc).unwrap_or(Value::Null);
        if doc.is_object() {
            docs.push(doc);
        }
    }
    docs
}

/// What Helm renders for each set of values (one install each, uninstalled
/// before the next), or the error Helm gives.
pub async fn render_all(values: &[Value]) -> Vec<Result<Vec<Value>, String>> {
    let env = testenv().await;
    let mut steps = Vec::new();
    for v in values {
        steps.push(json!({"action": "install", "release": "kubeflex", "chart": chart_dir(), "values": v, "wait": false}));
        steps.push(json!({"action": "uninstall", "release": "kubeflex", "wait": false}));
    }
    let mut helm = Helm::start(Some(&env.kubeconfig), "memory");
    let results: Vec<_> = steps.into_iter().map(|s| helm.run(s)).collect();
    drop(env);
    results
        .chunks(2)
        .map(|pair| {
            pair[0]
                .clone()
                .map(|r| documents(r["manifest"].as_str().unwrap()))
        })
        .collect()
}

pub async fn render(values: Value) -> Vec<Value> {
    render_all(&[values])
        .await
        .remove(0)
        .unwrap_or_else(|e| panic!("helm install (render) failed: {e}"))
}

/// Every optional part on: the reconciler with credentials and webhook,
/// two replicas of each (PodDisruptionBudgets), an existing PostgreSQL,
/// an external address.
pub fn everything_on() -> Value {
    json!({
        "externalAddress": "192.0.2.10",
        "exposure": "ingress",
        "pkiAlgorithm": "rsa-2048",
        "operator": {"replicas": 2, "hooks": {"extraRules": ["nodes:get,list", "persistentvolumes:get"]}},
        "postgresql": {"install": false, "existing": {
            "host": "pg.example.internal", "port": 6432, "adminUser": "kflex_admin",
            "adminSecret": {"name": "pg-admin", "key": "pw"}}},
        "reconciler": {
            "enabled": true, "replicas": 2, "name": "tenants",
            "git": {"url": "https://git.example/tenants.git", "ref": "main", "path": "clusters/prod",
                    "interval": "30s", "credentialsSecret": "git-credentials", "auth": "token"},
            "webhook": {"enabled": true, "secretName": "git-webhook"}
        }
    })
}

pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

pub fn get<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(docs, kind, name).unwrap_or_else(|| panic!("the chart renders no {kind} {name}"))
}

pub fn kinds_and_names(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

pub fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

pub fn args(deployment: &Value) -> Vec<String> {
    container(deployment)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The reconciler's binary, built beside the operator's if missing.
pub fn reconciler_binary() -> PathBuf {
    let operator = PathBuf::from(env!("CARGO_BIN_EXE_kubeflex-operator"));
    let binary = operator.with_file_name("kubeflex-reconciler");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-p",
                "kubeflex-reconciler",
                "--bin",
                "kubeflex-reconciler",
            ])
            .current_dir(root())
            .status()
            .unwrap();
        assert!(status.success(), "building kubeflex-reconciler failed");
    }
    binary
}
