//! Harness for the kflex integration tests: a testenv with the CRDs, the
//! operator in-process (`--external-address 127.0.0.1`, the ingress port as
//! external port, so `kubectl --context NAME` works without `--server`) as
//! its ServiceAccount with the RBAC we ship (as `kflex dev` runs it), the
//! real `kflex` binary and the real `kubectl`, each with its own HOME.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kubeflex_operator::config::OperatorConfig;
use kubeflex_operator::context::{ProbeMode, Settings};
use kubeflex_operator::metrics::Metrics;
use kubeflex_testenv::TestEnv;

/// Every line a child writes to its piped stdout and stderr, collected as it
/// comes by one reader thread per stream (each ends at end of file).
pub fn collect_lines(child: &mut std::process::Child) -> Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::BufRead as _;
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
    }
    lines
}

pub struct Env {
    pub env: TestEnv,
    /// testenv's admin: sets up and observes; the operator never runs as it.
    pub client: kube::Client,
    /// The operator's and the reconciler's ServiceAccount clients (after
    /// [`Env::start`], which installs `config/rbac/` for them).
    pub identities: Option<kflex::dev::rbac::Identities>,
    pub dir: tempfile::TempDir,
    /// The hosting kubeconfig as testenv wrote it (context `testenv`).
    pub hosting_yaml: String,
    operator: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

pub fn operator_config(ingress_port: u16) -> OperatorConfig {
    let mut c = OperatorConfig::default();
    c.vcluster.service_cidr = Some("10.96.0.0/12".into());
    c.external_address = Some("127.0.0.1".into());
    c.external_port = ingress_port;
    c
}

impl Env {
    /// testenv with the CRDs installed and the operator running.
    pub async fn start() -> Self {
        let mut e = Self::start_idle(true).await;
        e.identities = Some(identities(&e.env, &e.client, e.dir.path()).await);
        e.start_operator();
        e
    }

    /// testenv, with or without the CRDs; no operator, no RBAC, no
    /// `kubeflex-system` namespace (a hosting cluster before `kflex init`).
    pub async fn start_idle(crds: bool) -> Self {
        let env = TestEnv::builder().start().await.unwrap();
        let client = env.client().await.unwrap();
        if crds {
            let api: Api<CustomResourceDefinition> = Api::all(client.clone());
            for crd in kubeflex_operator::crdgen::crds() {
                api.create(&PostParams::default(), &crd).await.unwrap();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let hosting_yaml = env.kubeconfig().to_string();
        Self {
            env,
            client,
            identities: None,
            dir,
            hosting_yaml,
            operator: None,
        }
    }

    pub fn start_operator(&mut self) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let settings = Settings {
            ready_requeue: Duration::from_millis(500),
            probe: ProbeMode::ServiceProxy,
            teardown_give_up: Duration::from_secs(20),
            ..Settings::default()
        };
        let port = self.env.ingress_addr().unwrap().port();
        let operator = self
            .identities
            .as_ref()
            .expect("the operator runs as its ServiceAccount: Env::start installs it")
            .operator
            .clone();
        let task = tokio::spawn(kubeflex_operator::controller::run(
            operator,
            operator_config(port),
            settings,
            Arc::new(Metrics::default()),
            async move {
                let _ = rx.await;
            },
        ));
        self.operator = Some((task, tx));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file (0600) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// The hosting kubeconfig written to `name`.
    pub fn hosting_file(&self, name: &str) -> PathBuf {
        self.write(name, &self.hosting_yaml.clone())
    }

    /// Runs the real kflex with `KUBECONFIG=kubeconfig` (several files
    /// joined with ':'), HOME in the test's directory and no colours.
    pub async fn kflex(&self, kubeconfig: &[&Path], args: &[&str]) -> Output {
        let joined = std::env::join_paths(kubeconfig).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kflex"));
        cmd.args(args)
            .env("KUBECONFIG", joined)
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// The real kubectl, its own cache and HOME.
    pub async fn kubectl(&self, kubeconfig: &[&Path], args: &[&str]) -> Output {
        let joined = std::env::join_paths(kubeconfig).unwrap();
        let mut cmd = std::process::Command::new("kubectl");
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env("KUBECONFIG", joined)
            .env("HOME", self.dir.path());
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }
}

/// Installs `config/rbac/` as `admin` and returns the clients of the
/// operator's and the reconciler's ServiceAccounts (tokens in `dir`), the
/// same code `kflex dev` runs.
pub async fn identities(
    env: &TestEnv,
    admin: &kube::Client,
    dir: &Path,
) -> kflex::dev::rbac::Identities {
    kflex::dev::rbac::install(admin).await.unwrap();
    kflex::dev::rbac::identities(admin, env, &dir.join("tokens"))
        .await
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts exit code 1 and returns stderr.
#[track_caller]
pub fn fails(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected exit 1:\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}

/// Parsed kubeconfig file (as plain data).
pub fn yaml(path: &Path) -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Names of `list` (`clusters`, `users`, `contexts`) in a file.
pub fn names(path: &Path, list: &str) -> Vec<String> {
    yaml(path)[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Compares `actual` with `tests/snapshots/<name>`; `KFLEX_UPDATE_SNAPSHOTS=1` rewrites it.
#[track_caller]
pub fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("KFLEX_UPDATE_SNAPSHOTS").is_some() || !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        if std::env::var_os("KFLEX_UPDATE_SNAPSHOTS").is_some() {
            return;
        }
        panic!("snapshot {name} was missing and has been written; check it and run again");
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        actual, expected,
        "snapshot {name} differs (KFLEX_UPDATE_SNAPSHOTS=1 rewrites it)"
    );
}

/// Replaces clock times (`HH:MM:SS `) and ages (`12s`, `1m2s`) with stable tokens.
pub fn normalize(s: &str) -> String {
    let clock = regex::Regex::new(r"(?m)^\d\d:\d\d:\d\d ").unwrap();
    let age = regex::Regex::new(r"\b(\d+h)?(\d+m)?\d+s\b").unwrap();
    let s = clock.replace_all(s, "HH:MM:SS ");
    age.replace_all(&s, "AGE").to_string()
}
