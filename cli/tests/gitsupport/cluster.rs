//! A hosting cluster for kflex's end-to-end tests: testenv with the CRDs,
//! the operator and the reconciler running in this process (their
//! libraries, as their binaries run them, each as its ServiceAccount with
//! the RBAC we ship), and a `git daemon` serving the repository the
//! reconciler follows.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kubeflex_reconciler::apply::Cluster;
use kubeflex_reconciler::inventory::Inventory;
use kubeflex_reconciler::metrics::Metrics;
use kubeflex_reconciler::reconcile::{Reconciler, Settings};
use kubeflex_reconciler::source::{GitSource, GitSourceConfig, Source};
use kubeflex_reconciler::validate::Kind;
use tokio::sync::{Notify, mpsc};

pub struct Hosting {
    pub env: kubeflex_testenv::TestEnv,
    /// testenv's admin: sets up and observes.
    pub client: kube::Client,
    pub identities: kflex::dev::rbac::Identities,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hosting {
    /// testenv with the CRDs and the operator running.
    pub async fn start() -> Self {
        let env = kubeflex_testenv::TestEnv::builder().start().await.unwrap();
        let client = env.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in kubeflex_operator::crdgen::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        kflex::dev::rbac::install(&client).await.unwrap();
        let identities = kflex::dev::rbac::identities(&client, &env, &dir.path().join("tokens"))
            .await
            .unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, env.kubeconfig()).unwrap();
        let mut config = kubeflex_operator::config::OperatorConfig::default();
        config.vcluster.service_cidr = Some("10.96.0.0/12".into());
        // Kubeconfigs that name the simulated ingress on loopback, so the
        // context `--wait` merges works with kubectl without DNS.
        config.external_address = Some("127.0.0.1".into());
        config.external_port = env.ingress_addr().unwrap().port();
        let settings = kubeflex_operator::context::Settings {
            ready_requeue: Duration::from_millis(300),
            probe: kubeflex_operator::context::ProbeMode::ServiceProxy,
            ..Default::default()
        };
        let operator = tokio::spawn(kubeflex_operator::controller::run(
            identities.operator.clone(),
            config,
            settings,
            Arc::new(kubeflex_operator::metrics::Metrics::default()),
            std::future::pending(),
        ));
        Self {
            env,
            client,
            identities,
            dir,
            kubeconfig,
            tasks: vec![operator],
        }
    }

    /// A reconciler named `name` following `url` (branch `main`), polling
    /// every `interval`; returns its trigger (what its webhook notifies).
    pub async fn reconciler(&mut self, name: &str, url: &str, interval: Duration) -> Arc<Notify> {
        let mut config = GitSourceConfig::new(url, self.dir.path().join(format!("cache-{name}")));
        config.reference = Some("main".into());
        let source: Arc<dyn Source> = Arc::new(GitSource::new(config).unwrap());
        let cluster = Cluster::new(self.identities.reconciler.clone());
        let inventory = Arc::new(Mutex::new(Inventory::new(name)));
        let (drift_tx, drift_rx) = mpsc::unbounded_channel();
        let mut synced = Vec::new();
        for kind in [Kind::ControlPlane, Kind::PostCreateHook] {
            let (tx, rx) = tokio::sync::watch::channel(false);
            synced.push(rx);
            self.tasks
                .push(tokio::spawn(kubeflex_reconciler::watch::watch_inventory(
                    cluster.clone(),
                    kind,
                    name.to_owned(),
                    inventory.clone(),
                    tx,
                    drift_tx.clone(),
                )));
        }
        kubeflex_reconciler::watch::wait_synced(synced)
            .await
            .unwrap();
        let settings = Settings {
            reference: Some("main".into()),
            interval,
            ..Settings::new(name, url)
        };
        let mut reconciler = Reconciler::new(
            settings,
            source,
            cluster,
            inventory,
            Arc::new(Metrics::default()),
        );
        reconciler.init_status().await;
        let trigger = Arc::new(Notify::new());
        // As the binary does: passes on request through the Sync object.
        let requests = Arc::new(kubeflex_reconciler::request::Requests::default());
        self.tasks
            .push(tokio::spawn(kubeflex_reconciler::request::watch(
                self.identities.reconciler.clone(),
                name.to_owned(),
                requests.clone(),
                trigger.clone(),
            )));
        let reconciler = reconciler.with_requests(requests);
        // `run`'s future is not `Send` for every lifetime rustc checks
        // (the binary awaits it in place): a thread of its own runs it.
        let t = trigger.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(reconciler.run(t, None, drift_rx));
        });
        trigger
    }

    pub fn kflex(&self, dir: &Path, home: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kflex"));
        cmd.current_dir(dir)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("NO_COLOR", "1");
        cmd
    }
}

impl Drop for Hosting {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Hosting {
    /// Waits until Sync `name` attempted `commit`.
    pub async fn wait_attempted(&self, name: &str, commit: &str) {
        let api: Api<kubeflex_operator::api::Sync> = Api::all(self.client.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let attempted = api
                .get_opt(name)
                .await
                .unwrap()
                .and_then(|s| s.status)
                .and_then(|s| s.last_attempted_commit);
            if attempted.as_deref() == Some(commit) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Sync {name} never attempted {commit} (at {attempted:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
