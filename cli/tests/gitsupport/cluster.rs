//! A hosting cluster for kflex's end-to-end tests: testenv with the CRDs,
//! the operator and the reconciler running in this process (their
//! libraries, as their binaries run them, each as its ServiceAccount with
//! the RBAC we ship), and a `git daemon` serving the repository the
//! reconciler follows.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kubeflex_reconciler::apply::Cluster;
use kubeflex_reconciler::metrics::Metrics;
use kubeflex_reconciler::reconcile::{Reconciler, Settings};
use kubeflex_reconciler::source::{GitSource, GitSourceConfig, Source};
use tokio::sync::Notify;

pub struct Hosting {
    /// testenv with the CRDs and the operator (kflex's own test harness).
    pub base: super::env::Env,
    pub client: kube::Client,
    /// The hosting kubeconfig kflex runs with.
    pub kubeconfig: PathBuf,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hosting {
    /// testenv with the CRDs and the operator running.
    pub async fn start() -> Self {
        let base = super::env::Env::start().await;
        let kubeconfig = base.hosting_file("kubeconfig");
        Self {
            client: base.client.clone(),
            base,
            kubeconfig,
            tasks: Vec::new(),
        }
    }

    /// The reconciler's ServiceAccount client (`config/rbac/`, installed by
    /// [`Env::start`](super::env::Env::start)).
    fn reconciler_client(&self) -> kube::Client {
        let ids = self
            .base
            .identities
            .as_ref()
            .expect("Env::start installs the RBAC");
        ids.reconciler.clone()
    }

    /// A reconciler named `name` following `url` (branch `main`), polling
    /// every `interval`; returns its trigger (what its webhook notifies).
    pub async fn reconciler(&mut self, name: &str, url: &str, interval: Duration) -> Arc<Notify> {
        let mut config = GitSourceConfig::new(url, self.base.path(&format!("cache-{name}")));
        config.reference = Some("main".into());
        let source: Arc<dyn Source> = Arc::new(GitSource::new(config).unwrap());
        // The reconciler runs as its ServiceAccount, with the RBAC we ship.
        let sa = self.reconciler_client();
        let cluster = Cluster::new(sa.clone());
        let watched = kubeflex_reconciler::watch::start_inventory(&cluster, name)
            .await
            .unwrap();
        self.tasks.extend(watched.tasks);
        let settings = Settings {
            reference: Some("main".into()),
            interval,
            ..Settings::new(name, url)
        };
        let mut reconciler = Reconciler::new(
            settings,
            source,
            cluster,
            watched.inventory,
            Arc::new(Metrics::default()),
        );
        reconciler.init_status().await;
        let trigger = Arc::new(Notify::new());
        // As the binary does: passes on request through the Sync object.
        let requests = Arc::new(kubeflex_reconciler::request::Requests::default());
        self.tasks
            .push(tokio::spawn(kubeflex_reconciler::request::watch(
                sa,
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
            rt.block_on(reconciler.run(t, None, watched.drift));
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
