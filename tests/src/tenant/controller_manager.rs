//! kube-controller-manager pods: before it starts, the controller manager reads its
//! `--kubeconfig` (a mounted file) and reaches the API server it names. Here the
//! container runs only when that works — the server (`--master` wins over the
//! kubeconfig's) resolves to a Service with a running backend, its certificate
//! verifies against the kubeconfig's CA for that host name, and the server accepts
//! the client certificate or token (`GET /api` answers 200). Otherwise it crashes
//! with the reason, and the kubelet's back-off restarts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::flag;
use crate::ingress::Network;
use crate::runtime::PodSpec;

/// How long the controller manager waits for an unreachable server before it
/// gives up (a wrong certificate or credential fails at once).
const WAIT: Duration = Duration::from_secs(10);

/// Ok when the controller manager of `pod` would get going.
pub(super) async fn check(net: &Network, pod: &PodSpec, args: &[String]) -> Result<(), String> {
    // Without --kubeconfig it uses the in-cluster configuration, not checked here.
    let Some(path) = flag(args, "kubeconfig") else {
        return Ok(());
    };
    let target = Target::from_kubeconfig(pod, &path, flag(args, "master"))?;
    let started = Instant::now();
    loop {
        match target.probe(net, &pod.namespace).await {
            Ok(()) => return Ok(()),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Unreachable(e)) if started.elapsed() >= WAIT => return Err(e),
            Err(Failure::Unreachable(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

enum Failure {
    Unreachable(String),
    Final(String),
}

struct Target {
    server: String,
    host: String,
    port: u16,
    ca_pem: String,
    client: Option<(String, String)>,
    token: Option<String>,
}

impl Target {
    fn from_kubeconfig(pod: &PodSpec, path: &str, master: Option<String>) -> Result<Self, String> {
        let text = pod
            .files
            .get(path)
            .and_then(|b| String::from_utf8(b.clone()).ok())
            .ok_or_else(|| {
                format!(
                    "error loading config file \"{path}\": open {path}: no such file or directory"
                )
            })?;
        let invalid = |what: &str| format!("invalid configuration: {what} (kubeconfig {path})");
        let config: Value =
            serde_saphyr::from_str(&text).map_err(|_| invalid("not a kubeconfig"))?;
        let named = |list: &str, name: &str, key: &str| {
            config[list]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == name)
                .map(|e| e[key].clone())
                .unwrap_or(Value::Null)
        };
        let current = config["current-context"].as_str().unwrap_or_default();
        let context = named("contexts", current, "context");
        let cluster = named(
            "clusters",
            context["cluster"].as_str().unwrap_or_default(),
            "cluster",
        );
        let user = named(
            "users",
            context["user"].as_str().unwrap_or_default(),
            "user",
        );
        // Inline data or a file of the pod.
        let material = |holder: &Value, key: &str| -> Option<String> {
            if let Some(data) = holder[format!("{key}-data")].as_str() {
                return STANDARD
                    .decode(data)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
            }
            let file = holder[key].as_str()?;
            String::from_utf8(pod.files.get(file)?.clone()).ok()
        };
        let server = master
            .or_else(|| cluster["server"].as_str().map(String::from))
            .ok_or_else(|| invalid("no server found for cluster"))?;
        let authority = server
            .strip_prefix("https://")
            .ok_or_else(|| invalid("the server must be https"))?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| invalid("bad port"))?),
            None => (authority.clone(), 443),
        };
        let client = material(&user, "client-certificate").zip(material(&user, "client-key"));
        Ok(Target {
            ca_pem: material(&cluster, "certificate-authority")
                .ok_or_else(|| invalid("no certificate authority for the server"))?,
            token: user["token"].as_str().map(String::from),
            client,
            server,
            host,
            port,
        })
    }

    async fn probe(&self, net: &Network, pod_namespace: &str) -> Result<(), Failure> {
        let url = format!("{}/api", self.server.trim_end_matches('/'));
        let fail = |e: String| format!("failed to reach the API server: Get \"{url}\": {e}");
        // `name.namespace[.svc[.cluster.local]]`, or a bare name in the pod's namespace.
        let mut labels = self.host.split('.');
        let name = labels.next().unwrap_or_default();
        let namespace = labels.next().unwrap_or(pod_namespace);
        let backend = net
            .service_backend(namespace, name, &self.port.to_string())
            .ok_or_else(|| {
                Failure::Unreachable(fail(format!(
                    "dial tcp: lookup {} : no such host or no endpoints",
                    self.host
                )))
            })?;
        let tcp = tokio::net::TcpStream::connect(backend)
            .await
            .map_err(|e| Failure::Unreachable(fail(format!("dial tcp {backend}: {e}"))))?;
        let config = self.tls_config().map_err(|e| Failure::Final(fail(e)))?;
        let server_name = rustls_pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| Failure::Final(fail(e.to_string())))?;
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| Failure::Final(fail(format!("tls: {e}"))))?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /api HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.host
        );
        let mut answer = Vec::new();
        let io = async {
            tls.write_all(request.as_bytes()).await?;
            tls.read_to_end(&mut answer).await
        };
        if let Err(e) = io.await
            && answer.is_empty()
        {
            // A refused client certificate ends the handshake at the first read.
            return Err(Failure::Final(fail(format!("remote error: {e}"))));
        }
        let status_line = String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        match status_line.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            Some("401") => Err(Failure::Final(fail("Unauthorized".into()))),
            Some(code) => Err(Failure::Final(fail(format!("status {code}")))),
            None => Err(Failure::Unreachable(fail("EOF".into()))),
        }
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let ca = ca.map_err(|e| format!("certificate authority: {e}"))?;
            roots
                .add(ca)
                .map_err(|e| format!("certificate authority: {e}"))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match &self.client {
            Some((cert, key)) => {
                let certs: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("client certificate: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| format!("client key: {e}"))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}
