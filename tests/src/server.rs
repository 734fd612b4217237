//! Starting a testenv: its PKI, store, controllers and HTTPS listener, in
//! process (for tests and the playground) or from the `serve` binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::Api;
use crate::auth::TokenSigner;
use crate::http::{self, AppState};
use crate::ingress::Network;
use crate::kubeconfig;
use crate::pki::{Authority, CertPair};
use crate::resources::Registry;
use crate::runtime::PortMap;
use crate::store::Store;
use crate::tenant::TenantRuntime;

/// The Kubernetes minor `/version` reports by default. The kubectl
/// dispatcher runs `kubectl.1.<minor>`: 1.33 is the newest on these
/// machines, and the full kubectl conformance tests pass with it (its
/// protobuf request bodies included).
pub const DEFAULT_MINOR: u32 = 33;

/// Errors starting a testenv.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("PKI: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("state: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("service account signing key: {0}")]
    ServiceAccountKey(String),
    #[error("state directory: {0}")]
    StateDir(#[source] std::io::Error),
}

/// Builder for a testenv server.
#[derive(Debug, Clone)]
pub struct Builder {
    addr: SocketAddr,
    state_dir: Option<PathBuf>,
    minor: u32,
    min_token_seconds: i64,
    /// Serving certificate, key and client CA given from outside (tenants).
    tls: Option<(String, String, String)>,
    /// A tenant API server: no simulated workloads, no ingress of its own.
    tenant: bool,
    ingress_addr: SocketAddr,
    openshift_routes: bool,
    sim: crate::simulate::SimConfig,
    /// A tenant kube-apiserver's issuer, signing key (PEM) and trusted keys (SPKI DER).
    service_accounts: Option<(String, String, Vec<Vec<u8>>)>,
    /// A tenant kube-apiserver's `--requestheader-client-ca-file` (PEM) and flags.
    front_proxy: Option<(String, crate::auth::RequestHeaderFlags)>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: None,
            minor: DEFAULT_MINOR,
            min_token_seconds: 600,
            tls: None,
            tenant: false,
            ingress_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            openshift_routes: false,
            sim: crate::simulate::SimConfig::default(),
            service_accounts: None,
            front_proxy: None,
        }
    }
}

/// A running testenv; stops when dropped.
pub struct TestEnv {
    addr: SocketAddr,
    ingress_addr: Option<SocketAddr>,
    tenants: Option<Arc<TenantRuntime>>,
    authority: Authority,
    admin: CertPair,
    kubeconfig: String,
    state: Arc<AppState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Builder {
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Keep objects in `dir` and get them back after a restart.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The Kubernetes minor reported by `/version`.
    pub fn minor(mut self, minor: u32) -> Self {
        self.minor = minor;
        self
    }

    /// Lowest `expirationSeconds` a TokenRequest may ask for (Kubernetes
    /// enforces 600; tests of expiry lower it).
    pub fn min_token_seconds(mut self, seconds: i64) -> Self {
        self.min_token_seconds = seconds;
        self
    }

    /// Serve with this certificate and key and accept client certificates
    /// signed by `client_ca_pem` (instead of testenv's own PKI).
    pub fn tls(mut self, cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> Self {
        self.tls = Some((cert_pem.into(), key_pem.into(), client_ca_pem.into()));
        self
    }

    /// Sign and trust ServiceAccount tokens as a kube-apiserver with these
    /// `--service-account-issuer`, signing key (PEM) and key files (public keys as
    /// SPKI DER).
    pub fn service_accounts(
        mut self,
        issuer: &str,
        signing_pem: &str,
        trusted: Vec<Vec<u8>>,
    ) -> Self {
        self.service_accounts = Some((issuer.into(), signing_pem.into(), trusted));
        self
    }

    /// Authenticate front proxies as a kube-apiserver with this
    /// `--requestheader-client-ca-file` and these `--requestheader-*` flags
    /// (needs [`Builder::tls`]).
    pub fn front_proxy(mut self, ca_pem: &str, flags: crate::auth::RequestHeaderFlags) -> Self {
        self.front_proxy = Some((ca_pem.into(), flags));
        self
    }

    /// Start as a tenant API server (inside a simulated pod).
    pub fn tenant(mut self) -> Self {
        self.tenant = true;
        self
    }

    /// Where the SNI ingress listens (hosting clusters only).
    pub fn ingress_addr(mut self, addr: SocketAddr) -> Self {
        self.ingress_addr = addr;
        self
    }

    /// Serve OpenShift's `route.openshift.io/v1` Routes (and route
    /// passthrough Routes in the ingress), so Route detection can be tested.
    pub fn openshift_routes(mut self, enabled: bool) -> Self {
        self.openshift_routes = enabled;
        self
    }

    /// How the simulated workloads behave (delays, nodes).
    pub fn simulation(mut self, config: crate::simulate::SimConfig) -> Self {
        self.sim = config;
        self
    }

    /// Starts the server on the current tokio runtime.
    pub async fn start(self) -> Result<TestEnv, StartError> {
        let store = match &self.state_dir {
            Some(dir) => Store::open(dir)?,
            None => Store::in_memory(),
        };
        let authority = match &self.state_dir {
            // The CA must survive restarts, or saved kubeconfigs break.
            Some(dir) => load_or_create_authority(dir)?,
            None => Authority::new("testenv-ca")?,
        };
        let admin = authority.client("testenv-admin", &["system:masters"])?;
        let mut request_header = None;
        let (tls, cluster_ca) = match &self.tls {
            Some((cert, key, client_ca)) => {
                // The handshake accepts certificates of either CA; the
                // authenticators then tell them apart.
                let mut accepted = client_ca.clone();
                if let Some((front_ca, flags)) = &self.front_proxy {
                    let rh = crate::auth::RequestHeader::new(client_ca, front_ca, flags.clone())
                        .map_err(StartError::Tls)?;
                    request_header = Some(Arc::new(rh));
                    accepted = format!("{}\n{front_ca}", accepted.trim_end());
                }
                (
                    http::tls_config(cert, key, &accepted).map_err(StartError::Tls)?,
                    client_ca.clone(),
                )
            }
            None => {
                let serving = authority.serving(&[
                    "localhost",
                    "127.0.0.1",
                    "::1",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ])?;
                let tls =
                    http::tls_config(&serving.cert_pem, &serving.key_pem, &authority.ca.cert_pem)
                        .map_err(StartError::Tls)?;
                (tls, authority.ca.cert_pem.clone())
            }
        };
        let signer = match &self.service_accounts {
            Some((issuer, signing_pem, trusted)) => {
                let key = crate::auth::SigningKey::from_pem(signing_pem)
                    .map_err(StartError::ServiceAccountKey)?;
                TokenSigner::for_keys(issuer, key, trusted)
            }
            None => TokenSigner::new(self.state_dir.as_deref()).map_err(StartError::StateDir)?,
        };
        let listen = |addr: SocketAddr| async move {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| StartError::Listen { addr, source })?;
            Ok::<_, StartError>((l, bound))
        };
        let (listener, addr) = listen(self.addr).await?;
        let registry = Arc::new(Registry::default());
        if self.openshift_routes {
            registry.add(crate::resources::openshift_route());
        }
        let api = Arc::new(Api::new(Arc::new(store), registry));
        let signer = Arc::new(signer);
        let mut tasks = Vec::new();
        let mut ingress_addr = None;
        let mut tenants = None;
        let network = if self.tenant {
            None
        } else {
            let ports = Arc::new(PortMap::default());
            let net = Arc::new(Network {
                api: api.clone(),
                ports: ports.clone(),
                apiserver: addr,
                routes: self.openshift_routes,
            });
            let (ingress_listener, bound) = listen(self.ingress_addr).await?;
            ingress_addr = Some(bound);
            tasks.push(tokio::spawn(crate::ingress::serve_ingress(
                ingress_listener,
                net.clone(),
            )));
            tasks.push(tokio::spawn(crate::ingress::serve_services(net.clone())));
            let data_root = match &self.state_dir {
                Some(dir) => dir.join("tenants"),
                None => std::env::temp_dir().join(format!(
                    "testenv-tenants-{}-{}",
                    std::process::id(),
                    addr.port()
                )),
            };
            let runtime = Arc::new(TenantRuntime::new(
                api.clone(),
                net.clone(),
                data_root,
                self.minor,
            ));
            let mut sim = self.sim.clone();
            sim.kubelet_version = format!("v1.{}.0-testenv", self.minor);
            tasks.push(crate::simulate::spawn(
                api.clone(),
                sim,
                runtime.clone(),
                ports,
            ));
            tenants = Some(runtime);
            Some(net)
        };
        let state = Arc::new(AppState {
            api: api.clone(),
            signer: signer.clone(),
            version_minor: self.minor,
            min_token_seconds: self.min_token_seconds,
            network,
            request_header,
        });
        tasks.push(crate::controllers::spawn(api.clone(), signer, cluster_ca));
        crate::bootstrap::ensure(&api);
        tasks.push(tokio::spawn(http::serve(listener, tls, state.clone())));
        let kubeconfig = kubeconfig::render(&http::url_of(addr), &authority.ca.cert_pem, &admin);
        Ok(TestEnv {
            addr,
            ingress_addr,
            authority,
            admin,
            kubeconfig,
            state,
            tenants,
            tasks,
        })
    }
}

fn load_or_create_authority(dir: &std::path::Path) -> Result<Authority, StartError> {
    std::fs::create_dir_all(dir).map_err(StartError::StateDir)?;
    let cert = dir.join("ca.crt");
    let key = dir.join("ca.key");
    if let (Ok(c), Ok(k)) = (
        std::fs::read_to_string(&cert),
        std::fs::read_to_string(&key),
    ) && let Ok(a) = Authority::load(&c, &k)
    {
        return Ok(a);
    }
    let a = Authority::new("testenv-ca")?;
    std::fs::write(&cert, &a.ca.cert_pem).map_err(StartError::StateDir)?;
    kubeconfig::write_private(&key, &a.ca.key_pem).map_err(StartError::StateDir)?;
    Ok(a)
}

impl TestEnv {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        http::url_of(self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the SNI passthrough ingress listens (`None` for tenants).
    pub fn ingress_addr(&self) -> Option<SocketAddr> {
        self.ingress_addr
    }

    /// Tenant API servers running in simulated pods.
    pub fn tenant_count(&self) -> usize {
        self.tenants.as_ref().map_or(0, |t| t.running())
    }

    /// The admin kubeconfig (context `testenv`, group `system:masters`).
    pub fn kubeconfig(&self) -> &str {
        &self.kubeconfig
    }

    /// The server's CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.authority.ca.cert_pem
    }

    /// A kubeconfig for another user, authenticated by a client certificate.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<String, StartError> {
        let cert = self.authority.client(user, groups)?;
        Ok(kubeconfig::render(
            &self.url(),
            &self.authority.ca.cert_pem,
            &cert,
        ))
    }

    /// A kube client for the admin user.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// The API state, for in-process controllers and simulations.
    pub fn api(&self) -> Arc<Api> {
        self.state.api.clone()
    }

    /// Objects currently stored (benchmarks).
    pub fn object_count(&self) -> usize {
        self.state.api.store.len()
    }

    /// The admin client certificate.
    pub fn admin_cert(&self) -> &CertPair {
        &self.admin
    }
}

/// A kube client from kubeconfig YAML.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client, kube::Error> {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(yaml).map_err(kube::Error::InferKubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
