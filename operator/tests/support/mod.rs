//! End-to-end harness: a testenv with the CRDs installed, the operator
//! running in-process (stoppable, killable, restartable), waits with
//! timeouts, the real kubectl with its own cache and HOME, and a capture of
//! every log line for the no-secrets check.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // a test harness: failing loudly is its job

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use kubeflex_operator::api::{ControlPlane, PostCreateHook};
use kubeflex_operator::config::OperatorConfig;
use kubeflex_operator::context::{ProbeMode, Settings};
use kubeflex_operator::metrics::Metrics;
use kubeflex_testenv::{Builder, TestEnv};

/// Every log line of this test process.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            // The operator's own filter (with what it always silences).
            .with_env_filter(kubeflex_operator::telemetry::filter(
                "debug,kubeflex_operator=trace,hyper=info,rustls=info,h2=info,tower=info",
            ))
            .with_writer(move || Capture(writer.clone()))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);
impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fails if any captured log line holds PEM material or one of `secrets`.
pub fn assert_logs_clean(secrets: &[String]) {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    assert!(!text.contains("-----BEGIN"), "PEM material in the logs");
    assert!(!text.contains("PRIVATE KEY"), "a private key in the logs");
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(
            !text.contains(s.as_str()),
            "a secret value ({} chars) is in the logs",
            s.len()
        );
    }
}

/// The operator's ServiceAccount, as `config/rbac/` names it.
pub const SA_NAMESPACE: &str = "kubeflex-system";
pub const SA_NAME: &str = "kubeflex-operator";

fn rbac_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/rbac")
}

/// The objects `config/rbac/kustomization.yaml` lists, in its order.
pub fn rbac_objects() -> Vec<serde_json::Value> {
    let kustomization: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(rbac_dir().join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    kustomization["resources"]
        .as_array()
        .expect("kustomization.yaml lists resources")
        .iter()
        .map(|file| {
            let path = rbac_dir().join(file.as_str().unwrap());
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("config/rbac holds an unexpected kind {other}"),
    }
}

/// Server-side applies one object as the admin (installing RBAC is the
/// cluster admin's job, as in a real installation).
pub async fn apply_as_admin(client: &Client, obj: &serde_json::Value) {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let api_version = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural(kind),
    );
    let name = obj["metadata"]["name"].as_str().unwrap();
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply("rbac-test").force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// Creates namespace `kubeflex-system` as the admin when missing.
pub async fn ensure_system_namespace(admin: &Client) {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": SA_NAMESPACE}})).unwrap();
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone());
    if namespaces.get_opt(SA_NAMESPACE).await.unwrap().is_none() {
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
}

/// Server-side applies RBAC `objects` (`config/rbac/`'s, or the chart's)
/// as the admin, creating `kubeflex-system` first: what an installation
/// (`kubectl apply`, `helm install`) does.
pub async fn apply_all_as_admin(admin: &Client, objects: &[serde_json::Value]) {
    ensure_system_namespace(admin).await;
    for obj in objects {
        apply_as_admin(admin, obj).await;
    }
}

/// Installs `config/rbac/` (after `edit`, which may change any object) as
/// the admin, and returns a client authenticated as the operator's
/// ServiceAccount (a TokenRequest token).
pub async fn install_rbac(
    env: &TestEnv,
    admin: &Client,
    edit: impl Fn(&mut serde_json::Value),
) -> Client {
    let objects: Vec<_> = rbac_objects()
        .into_iter()
        .map(|mut obj| {
            edit(&mut obj);
            obj
        })
        .collect();
    apply_all_as_admin(admin, &objects).await;
    let yaml = service_account_kubeconfig_of(
        admin,
        &env.url(),
        env.ca_pem().as_bytes(),
        SA_NAMESPACE,
        SA_NAME,
    )
    .await;
    kubeflex_testenv::client_from_kubeconfig(&yaml)
        .await
        .unwrap()
}

/// Takes, then renews, the operator's leader Lease as `client` (create,
/// then get + update by name): what the leader-election Role must allow.
pub async fn take_and_renew_lease(client: &Client, holder: &str) -> Result<(), String> {
    for _ in 0..2 {
        tokio::time::timeout(
            Duration::from_secs(10),
            kubeflex_operator::leader::acquire(
                client.clone(),
                SA_NAMESPACE,
                kubeflex_operator::leader::LEASE_NAME,
                holder,
                kubeflex_operator::leader::RETRY,
            ),
        )
        .await
        .map_err(|_| "the leader Lease could not be taken or renewed".to_owned())?;
    }
    Ok(())
}

/// Events (events.k8s.io) in `default` regarding the object `name`: the
/// operator's Events about a ControlPlane (cluster-scoped objects' Events
/// go there).
pub async fn events_about(client: &Client, name: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// A kubeconfig (YAML) for ServiceAccount `ns/name` of the server at
/// `server`, with a token `admin` mints by TokenRequest.
pub async fn service_account_kubeconfig_of(
    admin: &Client,
    server: &str,
    ca_pem: &[u8],
    ns: &str,
    name: &str,
) -> String {
    use base64::Engine as _;
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    assert!(!token.is_empty(), "empty token for {ns}/{name}");
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: testenv\n    user: {name}\ncurrent-context: {name}\n"
    )
}

pub struct Harness {
    pub env: TestEnv,
    /// The admin: installs CRDs and RBAC, and observes what the operator
    /// did (reading Secrets, Events and objects of every kind is what a
    /// test checks; the operator itself never runs as this).
    pub client: Client,
    /// The operator's own client: ServiceAccount
    /// `kubeflex-system/kubeflex-operator` bound by `config/rbac/`.
    pub operator_client: Client,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    operator: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

/// The operator's configuration in tests: the defaults, as shipped.
pub fn config() -> OperatorConfig {
    OperatorConfig::default()
}

pub fn settings() -> Settings {
    Settings {
        ready_requeue: Duration::from_millis(500),
        probe: ProbeMode::ServiceProxy,
        teardown_give_up: Duration::from_secs(20),
        ..Settings::default()
    }
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(TestEnv::builder(), settings()).await
    }

    pub async fn start_with(builder: Builder, settings: Settings) -> Self {
        let mut h = Self::start_idle(builder, settings).await;
        h.operator_client = install_rbac(&h.env, &h.client, |_| {}).await;
        h.start_operator();
        h
    }

    /// Starts the operator as its ServiceAccount.
    pub fn start_operator(&mut self) {
        self.start_operator_with(config());
    }

    /// [`Harness::start_operator`] with another configuration.
    pub fn start_operator_with(&mut self, config: OperatorConfig) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kubeflex_operator::controller::run(
            self.operator_client.clone(),
            config,
            self.settings.clone(),
            self.metrics.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        self.operator = Some((task, tx));
    }

    /// Graceful stop.
    pub async fn stop_operator(&mut self) {
        if let Some((task, tx)) = self.operator.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Abrupt stop: the task is aborted wherever it is.
    pub fn kill_operator(&mut self) {
        if let Some((task, _tx)) = self.operator.take() {
            task.abort();
        }
    }

    pub fn cps(&self) -> Api<ControlPlane> {
        Api::all(self.client.clone())
    }

    pub async fn create_cp(&self, yaml: &str) -> ControlPlane {
        let cp: ControlPlane = serde_saphyr::from_str(yaml).unwrap();
        self.cps()
            .patch(
                &cp.name_any(),
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&cp),
            )
            .await
            .unwrap()
    }

    /// Creates or updates a PostCreateHook from YAML (as the admin).
    pub async fn create_hook(&self, yaml: &str) -> PostCreateHook {
        let hook: PostCreateHook = serde_saphyr::from_str(yaml).unwrap();
        Api::<PostCreateHook>::all(self.client.clone())
            .patch(
                &hook.name_any(),
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&hook),
            )
            .await
            .unwrap()
    }

    pub async fn delete_cp(&self, name: &str) {
        self.cps()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Polls the ControlPlane until `f` holds; panics with its status after `secs`.
    pub async fn wait_cp(
        &self,
        name: &str,
        secs: u64,
        f: impl Fn(&ControlPlane) -> bool,
    ) -> ControlPlane {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let cp = self.cps().get_opt(name).await.unwrap();
            if let Some(cp) = &cp
                && f(cp)
            {
                return cp.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "ControlPlane {name} did not get there in {secs}s: {:#?}",
                    cp.and_then(|c| c.status)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_ready(&self, name: &str, secs: u64) -> ControlPlane {
        self.wait_cp(name, secs, |cp| {
            condition(cp, "Ready").is_some_and(|c| c.0 == "True")
        })
        .await
    }

    /// Polls until `f` returns true.
    pub async fn eventually<F, Fut>(&self, what: &str, secs: u64, mut f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !f().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .unwrap()
    }

    pub async fn secret_text(&self, ns: &str, name: &str, key: &str) -> String {
        let s = self
            .secret(ns, name)
            .await
            .unwrap_or_else(|| panic!("Secret {ns}/{name} missing"));
        String::from_utf8(s.data.unwrap()[key].0.clone()).unwrap()
    }

    /// The real kubectl with its own cache dir and HOME.
    pub async fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG");
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// `kubectl get namespaces` through the SNI ingress with the external
    /// kubeconfig, verifying the tenant's certificate for `<cp>.localtest.me`.
    pub async fn kubectl_through_ingress(&self, cp: &str, kubeconfig_yaml: &str) -> Output {
        let path = self.write(&format!("{cp}-external"), kubeconfig_yaml);
        let server = format!("https://{}", self.env.ingress_addr().unwrap());
        self.kubectl(
            &path,
            &[
                "--server",
                &server,
                "--tls-server-name",
                &format!("{cp}.localtest.me"),
                "get",
                "namespaces",
            ],
        )
        .await
    }

    /// `kubectl get namespaces` with the in-cluster kubeconfig, its server
    /// rewritten to the Service's loopback port (testenv's service map) and
    /// the original host kept as TLS server name.
    pub async fn kubectl_in_cluster(
        &self,
        cp: &str,
        kubeconfig_yaml: &str,
        service: &str,
        port: u16,
    ) -> Output {
        let ns = format!("{cp}-system");
        let map = Api::<ConfigMap>::namespaced(self.client.clone(), "kube-public")
            .get("testenv-service-map")
            .await
            .unwrap();
        let addr = map.data.unwrap()[&format!("{service}.{ns}.{port}")].clone();
        let kc: serde_json::Value = serde_saphyr::from_str(kubeconfig_yaml).unwrap();
        let server = kc["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .to_string();
        let host = server
            .trim_start_matches("https://")
            .split(':')
            .next()
            .unwrap()
            .to_string();
        let path = self.write(&format!("{cp}-incluster"), kubeconfig_yaml);
        self.kubectl(
            &path,
            &[
                "--server",
                &format!("https://{addr}"),
                "--tls-server-name",
                &host,
                "get",
                "namespaces",
            ],
        )
        .await
    }
}

/// `(status, reason, message)` of a condition.
pub fn condition(cp: &ControlPlane, type_: &str) -> Option<(String, String, String)> {
    cp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl Harness {
    /// `kubectl get namespaces` with a kubeconfig pointing at
    /// `https://kubernetes.default.svc`, through the Service map entry of
    /// `default/kubernetes`.
    pub async fn kubectl_in_cluster_default(&self, kubeconfig_yaml: &str) -> Output {
        let map = Api::<ConfigMap>::namespaced(self.client.clone(), "kube-public")
            .get("testenv-service-map")
            .await
            .unwrap();
        let addr = map.data.unwrap()["kubernetes.default.443"].clone();
        let path = self.write("host-incluster", kubeconfig_yaml);
        self.kubectl(
            &path,
            &[
                "--server",
                &format!("https://{addr}"),
                "--tls-server-name",
                "kubernetes.default.svc",
                "get",
                "namespaces",
            ],
        )
        .await
    }
}

impl Harness {
    /// [`Harness::start_with`] without RBAC and without starting the
    /// operator: for tests that install an edited `config/rbac/` and run it
    /// with that identity ([`Harness::start_operator_as`]).
    pub async fn start_idle(builder: Builder, settings: Settings) -> Self {
        logs();
        let env = builder.start().await.unwrap();
        let client = env.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in kubeflex_operator::crdgen::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("hosting-kubeconfig");
        std::fs::write(&kubeconfig, env.kubeconfig()).unwrap();
        Self {
            env,
            operator_client: client.clone(),
            client,
            dir,
            kubeconfig,
            metrics: Arc::new(Metrics::default()),
            settings,
            operator: None,
        }
    }

    /// [`Harness::start_operator`], the operator authenticated as `client`
    /// (`self.client` stays the admin client the test observes with).
    pub fn start_operator_as(&mut self, client: Client) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kubeflex_operator::controller::run(
            client,
            config(),
            self.settings.clone(),
            self.metrics.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        self.operator = Some((task, tx));
    }

    /// Whether the in-process operator task is still running.
    pub fn operator_running(&self) -> bool {
        self.operator
            .as_ref()
            .is_some_and(|(task, _)| !task.is_finished())
    }

    /// A kubeconfig (YAML) authenticating as ServiceAccount `ns/name` with a
    /// bearer token minted by TokenRequest, trusting the server's CA.
    pub async fn service_account_kubeconfig(&self, ns: &str, name: &str) -> String {
        service_account_kubeconfig_of(
            &self.client,
            &self.env.url(),
            self.env.ca_pem().as_bytes(),
            ns,
            name,
        )
        .await
    }

    /// A kube client authenticated as ServiceAccount `ns/name` (bearer token).
    pub async fn service_account_client(&self, ns: &str, name: &str) -> Client {
        let yaml = self.service_account_kubeconfig(ns, name).await;
        kubeflex_testenv::client_from_kubeconfig(&yaml)
            .await
            .unwrap()
    }
}

/// Secret values worth hiding: every value of every Secret in the cluster
/// (tokens inside kubeconfigs taken out), except public ones (certificates,
/// public keys, user names, namespaces). PEM is caught by its header.
fn secret_values(secrets: &[Secret]) -> Vec<String> {
    let mut out = Vec::new();
    for s in secrets {
        for (key, value) in s.data.clone().unwrap_or_default() {
            let public = key == "username"
                || key == "namespace"
                || key.ends_with(".crt")
                || key.ends_with(".pub");
            let Ok(text) = String::from_utf8(value.0) else {
                continue;
            };
            if public || text.contains("-----BEGIN") {
                continue;
            }
            if text.contains("apiVersion: v1") && text.contains("clusters:") {
                out.extend(
                    text.lines()
                        .filter_map(|l| l.trim().strip_prefix("token:"))
                        .map(|t| t.trim().to_string()),
                );
            } else {
                out.push(text);
            }
        }
    }
    out.retain(|v| v.len() >= 8);
    out
}

impl Harness {
    /// Scans this run's logs, every Event and every ControlPlane's status
    /// for any Secret value in the cluster (and PEM material).
    pub async fn assert_no_secret_leaked(&self) {
        let secrets = Api::<Secret>::all(self.client.clone())
            .list(&Default::default())
            .await
            .unwrap()
            .items;
        let values = secret_values(&secrets);
        assert_logs_clean(&values);
        let events = Api::<k8s_openapi::api::events::v1::Event>::all(self.client.clone())
            .list(&Default::default())
            .await
            .unwrap()
            .items;
        let events = serde_json::to_string(&events).unwrap();
        let statuses: Vec<_> = self
            .cps()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|cp| cp.status)
            .collect();
        let statuses = serde_json::to_string(&statuses).unwrap();
        for (what, text) in [("an Event", &events), ("a ControlPlane status", &statuses)] {
            assert!(!text.contains("-----BEGIN"), "PEM material in {what}");
            for v in &values {
                assert!(
                    !text.contains(v.as_str()),
                    "a secret value ({} chars) is in {what}",
                    v.len()
                );
            }
        }
    }
}
