//! Helpers shared by the end-to-end tests: a testenv cluster with the CRDs,
//! an upstream Git repository driven by the git CLI, a `git daemon`, the
//! reconciler binary as a child process, and polling with a timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kubeflex_operator::api::{ControlPlane, Sync};

pub const CP: &str = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: NAME
spec:
  type: k8s
";

pub fn cp(name: &str) -> String {
    CP.replace("NAME", name)
}

pub fn cp_with_vars(name: &str, vars: &str) -> String {
    format!("{}  globalVars:\n{vars}", cp(name))
}

/// A testenv with the project's CRDs installed.
/// The reconciler's ServiceAccount, as `config/rbac/` names it.
pub const SA_NAMESPACE: &str = "kubeflex-system";
pub const SA_NAME: &str = "kubeflex-reconciler";
/// The reconciler's objects in `config/rbac/`.
const RBAC_FILES: [&str; 5] = [
    "reconciler_service_account.yaml",
    "reconciler_role.yaml",
    "reconciler_role_binding.yaml",
    "reconciler_leader_election_role.yaml",
    "reconciler_leader_election_role_binding.yaml",
];
/// Where the tests' reconcilers keep their Leases (its `--lease-namespace`
/// default); the leader-election Role is installed there.
const LEASE_NAMESPACE: &str = "default";

pub struct Cluster {
    /// `None` while stopped (see [`Cluster::stop`]).
    env: Option<kubeflex_testenv::TestEnv>,
    /// Set for a durable cluster: where its state lives, and its address.
    durable: Option<(tempfile::TempDir, std::net::SocketAddr)>,
    /// The reconciler's identity: ServiceAccount
    /// `kubeflex-system/kubeflex-reconciler` with the RBAC of `config/rbac/`
    /// (a TokenRequest token), never an admin. In-process reconcilers and
    /// the tests' own reads go through it, and so does [`Cluster::kubeconfig`].
    pub client: kube::Client,
    /// The admin, for installing CRDs and RBAC only (a cluster admin's job).
    pub admin: kube::Client,
    pub dir: tempfile::TempDir,
}

/// Installs the reconciler's ServiceAccount and roles from `config/rbac/`
/// as `admin` (its lease Role in [`LEASE_NAMESPACE`]) and returns a
/// kubeconfig authenticating as that ServiceAccount with a TokenRequest
/// token; the CA is written next to it, in `dir`.
async fn reconciler_kubeconfig(
    env: &kubeflex_testenv::TestEnv,
    admin: &kube::Client,
    dir: &Path,
) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use kube::api::{GroupVersionKind, PostParams};
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    if namespaces.get_opt(SA_NAMESPACE).await.unwrap().is_none() {
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": SA_NAMESPACE}}))
            .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let rbac = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/rbac");
    for file in RBAC_FILES {
        let text = std::fs::read_to_string(rbac.join(file)).unwrap();
        let mut obj: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let kind = obj["kind"].as_str().unwrap().to_string();
        if kind == "Role" || (kind == "RoleBinding" && obj["roleRef"]["kind"] == "Role") {
            obj["metadata"]["namespace"] = LEASE_NAMESPACE.into();
        }
        let (group, version) = obj["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .map_or(("", "v1"), |(g, v)| (g, v));
        let plural = format!("{}s", kind.to_lowercase());
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &kind),
            &plural,
        );
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &ar),
            None => Api::all_with(admin.clone(), &ar),
        };
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(24 * 3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), SA_NAMESPACE)
        .create_token_request(SA_NAME, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, env.ca_pem()).unwrap();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {SA_NAME}\n  user:\n    token: {token}\ncontexts:\n- name: {SA_NAME}\n  context:\n    cluster: testenv\n    user: {SA_NAME}\ncurrent-context: {SA_NAME}\n",
        env.url(),
        ca.display()
    )
}

impl Cluster {
    pub async fn start() -> Self {
        let env = kubeflex_testenv::TestEnv::builder().start().await.unwrap();
        Self::install(env, None).await
    }

    /// A cluster whose state survives [`Cluster::stop`] and
    /// [`Cluster::restart`]: same address, same CA, same objects.
    pub async fn start_durable() -> Self {
        let state = tempfile::tempdir().unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let env = kubeflex_testenv::TestEnv::builder()
            .addr(addr)
            .state_dir(state.path())
            .start()
            .await
            .unwrap();
        Self::install(env, Some((state, addr))).await
    }

    /// Stops the API server: connections are dropped, new ones refused.
    pub fn stop(&mut self) {
        assert!(self.durable.is_some(), "only a durable cluster can stop");
        self.env = None;
    }

    /// Starts the API server again on the same address and state.
    pub async fn restart(&mut self) {
        let (state, addr) = self.durable.as_ref().expect("a durable cluster");
        let env = kubeflex_testenv::TestEnv::builder()
            .addr(*addr)
            .state_dir(state.path())
            .start()
            .await
            .unwrap();
        self.env = Some(env);
    }

    async fn install(
        env: kubeflex_testenv::TestEnv,
        durable: Option<(tempfile::TempDir, std::net::SocketAddr)>,
    ) -> Self {
        let admin = env.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
        for crd in kubeflex_operator::crdgen::crds() {
            let name = crd.metadata.name.clone().unwrap();
            crds.patch(
                &name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap();
        }
        let cps = Self::cps_of(&admin);
        let syncs: Api<Sync> = Api::all(admin.clone());
        eventually("CRDs served", || async {
            cps.list(&Default::default()).await.is_ok()
                && syncs.list(&Default::default()).await.is_ok()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = reconciler_kubeconfig(&env, &admin, dir.path()).await;
        std::fs::write(dir.path().join("kubeconfig"), &kubeconfig).unwrap();
        let client = kubeflex_testenv::client_from_kubeconfig(&kubeconfig)
            .await
            .unwrap();
        // Really the ServiceAccount, not an admin: it may not read Secrets.
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(client.clone());
        assert!(
            secrets.list(&Default::default()).await.is_err(),
            "the reconciler's test identity can read Secrets"
        );
        Self {
            env: Some(env),
            durable,
            client,
            admin,
            dir,
        }
    }

    fn cps_of(client: &kube::Client) -> Api<DynamicObject> {
        Api::all_with(client.clone(), &ApiResource::erase::<ControlPlane>(&()))
    }

    pub fn cps(&self) -> Api<DynamicObject> {
        Self::cps_of(&self.client)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub async fn cp(&self, name: &str) -> Option<DynamicObject> {
        self.cps().get_opt(name).await.unwrap()
    }

    /// A kubeconfig file of the cluster admin (for a person's commands, and
    /// for the benchmark's comparison of identities).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        let env = self.env.as_ref().expect("a running cluster");
        let kubeconfig = self.dir.path().join("admin-kubeconfig");
        std::fs::write(&kubeconfig, env.kubeconfig()).unwrap();
        kubeconfig
    }

    /// The real kubectl as the cluster admin (a person's own commands,
    /// not the reconciler's), with its own cache dir and HOME.
    pub fn kubectl_admin(&self, args: &[&str]) -> std::process::Output {
        let kubeconfig = self.admin_kubeconfig();
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs")
    }

    pub async fn sync(&self, name: &str) -> Option<Sync> {
        Api::<Sync>::all(self.client.clone())
            .get_opt(name)
            .await
            .unwrap()
    }
}

/// Polls `check` until it is true; panics after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A bare repository `repos/demo.git` and a clone `work` where commits are made.
pub struct Upstream {
    pub tmp: tempfile::TempDir,
}

impl Upstream {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let up = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(up.repos()).unwrap();
        git(&up.repos(), &["init", "--bare", "-q", "demo.git"]);
        git(up.tmp.path(), &["clone", "-q", &up.file_url(), "work"]);
        up.commit(files, &[], "initial");
        up
    }

    pub fn repos(&self) -> PathBuf {
        self.tmp.path().join("repos")
    }

    pub fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    pub fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    pub fn file_url(&self) -> String {
        format!("file://{}/demo.git", self.repos().display())
    }

    pub fn write(&self, files: &[(&str, &str)]) {
        for (path, text) in files {
            let full = self.work().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
    }

    /// Writes, removes, commits and pushes the current branch; returns the commit.
    pub fn commit(&self, files: &[(&str, &str)], removed: &[&str], message: &str) -> String {
        let work = self.work();
        self.write(files);
        for path in removed {
            git(&work, &["rm", "-q", path]);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", message]);
        git(&work, &["push", "-q", "origin", "HEAD"]);
        git(&work, &["rev-parse", "HEAD"])
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `git daemon --enable=receive-pack` serving `base`; stopped on drop.
///
/// `git daemon` is a wrapper that runs `git-daemon` as a child, which forks
/// one more child per connection: killing the wrapper alone leaves the
/// listener running. The daemon gets a process group of its own, and drop
/// signals the whole group.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> Self {
        // `--port=0` does not pick a free port: find one, release it, pass it.
        Self::start_on(base, free_port())
    }

    /// A daemon on a given port (to bring one back after stopping it).
    pub fn start_on(base: &Path, port: u16) -> Self {
        let child = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg(format!("--base-path={}", base.display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--reuseaddr")
            .arg("--informative-errors")
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git daemon starts");
        let daemon = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/demo.git", self.port)
    }
}

/// Sends `signal` (e.g. `-TERM`, `-0`) to every process of group `pgid`;
/// whether any received it.
fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        // The group id is the wrapper's pid (`process_group(0)`).
        let pgid = self.child.id();
        if !signal_group(pgid, "-TERM") {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // `git-daemon` and its connection children are not ours to wait
        // for; make sure they are gone, by force if TERM was not enough.
        let deadline = Instant::now() + Duration::from_secs(2);
        while signal_group(pgid, "-0") {
            if Instant::now() >= deadline {
                signal_group(pgid, "-KILL");
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The reconciler binary as a child process; killed on drop.
pub struct Reconciler {
    pub child: Child,
}

/// `RUST_LOG` for the reconciler under test: its own `info` lines (the
/// bench waits for `pass done`), only warnings from everything else.
///
/// Not `info,kube=warn`: `tracing_subscriber::EnvFilter` matches directive
/// targets by prefix, so `kube=warn` also covers `kubeflex_reconciler` and
/// hides every `info` line of the reconciler.
pub const RECONCILER_LOG: &str = "warn,kubeflex_reconciler=info";

pub fn reconciler_command(cluster: &Cluster, name: &str) -> Command {
    reconciler_command_with(&cluster.kubeconfig(), name)
}

/// [`reconciler_command`] with another identity's kubeconfig.
pub fn reconciler_command_with(kubeconfig: &Path, name: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeflex-reconciler"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--name")
        .arg(name)
        .env("RUST_LOG", RECONCILER_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

impl Reconciler {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stderr(Stdio::null());
        Self {
            child: cmd.spawn().expect("reconciler starts"),
        }
    }
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reconciler binary as a child process with its log kept (stderr,
/// colour codes stripped); killed on drop.
pub struct LoggedReconciler {
    pub child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LoggedReconciler {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.env("NO_COLOR", "1").stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("reconciler starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
        Self {
            child,
            log,
            reader: Some(reader),
        }
    }

    /// Waits for the exit, then for the last log line: the reader thread
    /// may still be behind when the process is gone.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }

    /// Whether any log line so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Still running (not exited).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL: no cleanup, as a crash or an OOM kill.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LoggedReconciler {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `line` without its ANSI colour codes.
pub fn strip_ansi(line: &str) -> String {
    let mut clean = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    clean
}

/// How long a Git poll may take in a test before it counts as hung.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(60);

/// `source.poll(last)` on a thread of its own, failing the test after
/// [`POLL_TIMEOUT`] instead of hanging (say, on a credential prompt); with
/// how long it took.
pub fn poll_timed(
    source: &kubeflex_reconciler::source::GitSource,
    last: Option<&str>,
) -> (
    Result<kubeflex_reconciler::source::Update, kubeflex_reconciler::source::SourceError>,
    Duration,
) {
    use kubeflex_reconciler::source::Source as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let (source, last) = (source.clone(), last.map(str::to_owned));
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(source.poll(last.as_deref()));
    });
    let result = rx
        .recv_timeout(POLL_TIMEOUT)
        .expect("the poll did not return (waiting on a prompt?)");
    (result, start.elapsed())
}

/// An error and all its sources, one per line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str("\n  caused by: ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// `BENCH_CPS` (default 10,000): how many ControlPlanes the benchmarks'
/// generated repository holds.
pub fn bench_cps() -> usize {
    std::env::var("BENCH_CPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// `n` ControlPlane files `controlplanes/bench-NNNNN.yaml`, path and text.
pub fn generated_cps(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let name = format!("bench-{i:05}");
            (format!("controlplanes/{name}.yaml"), cp(&name))
        })
        .collect()
}
