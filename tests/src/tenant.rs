//! Tenant API servers: what runs in a pod whose container is a Kubernetes
//! API server. Each one is a separate testenv API instance (own store,
//! own controllers) listening on loopback.
//!
//! - `kube-apiserver` (the container's command, or its first argument):
//!   an unknown flag stops it as cobra would; the flags `--secure-port`
//!   (default 6443), `--tls-cert-file`, `--tls-private-key-file`,
//!   `--client-ca-file`, `--requestheader-client-ca-file` and the
//!   service-account flags (`--service-account-issuer` and
//!   `--service-account-signing-key-file` required; tokens carry that issuer,
//!   signed with that key, and are trusted when signed with a key of
//!   `--service-account-key-file`) are resolved through the pod's mounted
//!   files; the server presents exactly that certificate and accepts client
//!   certificates signed by exactly that CA. A missing or unreadable file
//!   crashes the container with the message kube-apiserver would print.
//!   With `--requestheader-client-ca-file` it authenticates front proxies as
//!   upstream does (`--requestheader-allowed-names`, `-username-headers`,
//!   `-group-headers`, `-uid-headers`, `-extra-headers-prefix`).
//! - `kube-controller-manager`: runs only when its `--kubeconfig` reaches
//!   its API server with credentials it accepts ([`controller_manager`]).
//! - vcluster (an image named `*vcluster*`, or a `/vcluster` command): like
//!   the real syncer it makes its own CA and serving certificate (SANs from
//!   `--tls-san` plus `vcluster`, `vcluster.<ns>`, `vcluster.<ns>.svc`,
//!   `localhost`, `127.0.0.1`), serves on 8443 and publishes its admin
//!   kubeconfig in Secret `--out-kube-config-secret` (default
//!   `vc-<--name>`, `--name` defaulting to `vcluster`) under key `config`,
//!   with server `--out-kube-config-server` (default `https://localhost:8443`).
//! - k3s (`k3s server` as command or arguments): the CAs it finds in
//!   `<data-dir>/server/tls/` (`server-ca.{crt,key}`, `client-ca.{crt,key}`
//!   — testenv runs no init containers, so it follows the mounts and the
//!   init container that would have copied them there), else its own CA; a certificate
//!   (SANs from `--tls-san` plus `localhost`, `127.0.0.1`, `k3s`,
//!   `k3s.<ns>`, `k3s.<ns>.svc`), serving `--https-listen-port` (default
//!   6443); it writes the join token into the Secret named by the env
//!   `K3S_CONTROLPLANE_SECRET_NAME` (key `token`, as KubeFlex's token script
//!   does) and its `k3s.yaml` admin kubeconfig (server
//!   `https://127.0.0.1:6443`) under key `k3s.yaml`, standing in for the
//!   file on the `/etc/rancher/k3s` volume.
//!
//! Data lives as long as the pod unless the pod mounts a PersistentVolumeClaim:
//! then it is kept per claim and a restarted pod finds it again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::api::{Api, Params, Target, Writer};
use crate::ingress::Network;
use crate::kubeconfig;
use crate::pki::Authority;
use crate::runtime::{ContainerRuntime, PodSpec, Started};
use crate::server::{Builder, TestEnv};

mod controller_manager;
mod flags;

/// What kind of API server a pod runs, if any.
#[derive(Debug, Clone, PartialEq)]
enum Workload {
    KubeApiserver {
        args: Vec<String>,
    },
    Vcluster {
        args: Vec<String>,
    },
    K3s {
        args: Vec<String>,
        env: HashMap<String, String>,
    },
    ControllerManager {
        args: Vec<String>,
    },
    Other,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn classify(pod: &Value) -> Workload {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(classify_container)
        .unwrap_or(Workload::Other)
}

/// The API server a container runs, if any.
fn classify_container(c: &Value) -> Option<Workload> {
    {
        let command = strings(&c["command"]);
        let args = strings(&c["args"]);
        let mut all: Vec<String> = command.clone();
        all.extend(args.iter().cloned());
        let first = all
            .first()
            .map(|s| basename(s).to_string())
            .unwrap_or_default();
        let image = c["image"].as_str().unwrap_or_default();
        if first == "kube-controller-manager" {
            return Some(Workload::ControllerManager {
                args: all[1..].to_vec(),
            });
        }
        if first == "kube-apiserver" {
            return Some(Workload::KubeApiserver {
                args: all[1..].to_vec(),
            });
        }
        if first == "k3s" && all.get(1).map(String::as_str) == Some("server")
            || first == "server" && image.contains("k3s")
        {
            let skip = if first == "k3s" { 2 } else { 1 };
            let env = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_string(),
                        e["value"].as_str()?.to_string(),
                    ))
                })
                .collect();
            return Some(Workload::K3s {
                args: all[skip..].to_vec(),
                env,
            });
        }
        let image_name = image.rsplit('/').next().unwrap_or(image);
        if image_name.starts_with("vcluster") || first == "vcluster" || first == "syncer" {
            let skip = usize::from(first == "vcluster" || first == "syncer");
            return Some(Workload::Vcluster {
                args: all[skip..].to_vec(),
            });
        }
    }
    None
}

/// `--flag=value` or `--flag value`; the last occurrence wins, as in Go's
/// flag parsing.
fn flag(args: &[String], name: &str) -> Option<String> {
    let mut found = None;
    let mut iter = args.iter().peekable();
    let long = format!("--{name}");
    while let Some(a) = iter.next() {
        if let Some(v) = a.strip_prefix(&format!("{long}=")) {
            found = Some(v.to_string());
        } else if *a == long
            && let Some(v) = iter.peek()
            && !v.starts_with("--")
        {
            found = Some((*v).clone());
        }
    }
    found
}

fn flags(args: &[String], name: &str) -> Vec<String> {
    let prefix = format!("--{name}=");
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if let Some(v) = a.strip_prefix(&prefix) {
            out.extend(v.split(',').map(String::from));
        } else if *a == format!("--{name}")
            && let Some(v) = args.get(i + 1)
        {
            out.extend(v.split(',').map(String::from));
        }
    }
    out
}

fn read_file(pod: &PodSpec, path: &str, what: &str) -> Result<String, String> {
    let bytes = pod
        .files
        .get(path)
        .ok_or_else(|| format!("{what}: open {path}: no such file or directory"))?;
    String::from_utf8(bytes.clone()).map_err(|_| format!("{what}: {path}: not a PEM file"))
}

/// The CAs a k3s server finds in `<data-dir>/server/tls/` (`server-ca.{crt,key}`,
/// `client-ca.{crt,key}`; `--data-dir` defaults to `/var/lib/rancher/k3s`). testenv
/// runs no init containers, so it follows what one would have done: a file is found
/// where the server container mounts it at that path, or where an init container
/// that mounts the same data volume names the TLS directory in its command and copies
/// from a mount it also names (`cp /ca/server-ca.crt $dst/`). `None` when absent: k3s
/// then makes its own.
fn given_cas(pod: &PodSpec, args: &[String]) -> Result<Option<(Authority, Authority)>, String> {
    let data_dir = flag(args, "data-dir").unwrap_or_else(|| "/var/lib/rancher/k3s".into());
    let tls_dir = format!("{}/server/tls", data_dir.trim_end_matches('/'));
    let spec = &pod.pod["spec"];
    let mounts = |c: &Value| -> Vec<(String, String)> {
        c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let name = m["name"].as_str()?.to_string();
                let path = m["mountPath"].as_str()?.trim_end_matches('/').to_string();
                Some((name, path))
            })
            .collect()
    };
    let server = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| matches!(classify_container(c), Some(Workload::K3s { .. })));
    let server_mounts = server.map(&mounts).unwrap_or_default();
    // The volume holding the TLS directory in the server, and the path below it.
    let data_volume = server_mounts
        .iter()
        .filter(|(_, path)| tls_dir.starts_with(&format!("{path}/")))
        .max_by_key(|(_, path)| path.len())
        .map(|(name, path)| (name.clone(), tls_dir[path.len()..].to_string()));
    let mut sources: Vec<String> = vec![tls_dir.clone()];
    for init in spec["initContainers"].as_array().into_iter().flatten() {
        let script = [strings(&init["command"]), strings(&init["args"])]
            .concat()
            .join(" ");
        let init_mounts = mounts(init);
        let Some((volume, below)) = &data_volume else {
            continue;
        };
        let Some((_, at)) = init_mounts.iter().find(|(name, _)| name == volume) else {
            continue;
        };
        if !script.contains(&format!("{at}{below}")) {
            continue;
        }
        sources.extend(
            init_mounts
                .iter()
                .filter(|(name, path)| name != volume && script.contains(&format!("{path}/")))
                .map(|(_, path)| path.clone()),
        );
    }
    let find = |file: &str| {
        sources.iter().find_map(|dir| {
            let bytes = pod.files.get(&format!("{dir}/{file}"))?;
            String::from_utf8(bytes.clone()).ok()
        })
    };
    let (Some(sc), Some(sk), Some(cc), Some(ck)) = (
        find("server-ca.crt"),
        find("server-ca.key"),
        find("client-ca.crt"),
        find("client-ca.key"),
    ) else {
        return Ok(None);
    };
    let server = Authority::load(&sc, &sk).map_err(|e| format!("server-ca: {e}"))?;
    let client = Authority::load(&cc, &ck).map_err(|e| format!("client-ca: {e}"))?;
    Ok(Some((server, client)))
}

/// How a tenant kube-apiserver trusts tokens and front proxies.
struct ApiserverAuth {
    accounts: flags::ServiceAccountKeys,
    /// `--requestheader-client-ca-file` (PEM) and the other `--requestheader-*` flags.
    front_proxy: Option<(String, crate::auth::RequestHeaderFlags)>,
}

/// Runs tenant API servers for the pods that are API servers.
pub struct TenantRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    host: Arc<Api>,
    /// The hosting cluster's Services, through which controller managers reach
    /// their API server.
    network: Arc<Network>,
    data_root: PathBuf,
    minor: u32,
    running: Mutex<HashMap<String, TestEnv>>,
}

impl TenantRuntime {
    /// `host` is the hosting cluster (vcluster and k3s publish Secrets in
    /// it); persistent tenant data goes under `data_root`.
    pub fn new(host: Arc<Api>, network: Arc<Network>, data_root: PathBuf, minor: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                host,
                network,
                data_root,
                minor,
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many tenant API servers are running.
    pub fn running(&self) -> usize {
        self.inner.running.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl ContainerRuntime for TenantRuntime {
    fn start(&self, pod: PodSpec) -> BoxFuture<'static, Started> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let uid = pod.uid.clone();
            match inner.start(pod).await {
                Ok(Some((env, ports))) => {
                    if let Ok(mut m) = inner.running.lock() {
                        m.insert(uid, env);
                    }
                    Started::Running { ports }
                }
                Ok(None) => Started::Running { ports: Vec::new() },
                Err(message) => Started::Crashed { message },
            }
        })
    }

    fn stop(&self, uid: &str) {
        // Dropping the TestEnv aborts its listener and controllers.
        if let Ok(mut m) = self.inner.running.lock() {
            m.remove(uid);
        }
    }
}

type Running = (TestEnv, Vec<(u16, SocketAddr)>);

impl Inner {
    async fn start(&self, pod: PodSpec) -> Result<Option<Running>, String> {
        match classify(&pod.pod) {
            Workload::Other => Ok(None),
            Workload::KubeApiserver { args } => self.kube_apiserver(&pod, &args).await.map(Some),
            Workload::Vcluster { args } => self.vcluster(&pod, &args).await.map(Some),
            Workload::K3s { args, env } => self.k3s(&pod, &args, &env).await.map(Some),
            Workload::ControllerManager { args } => {
                controller_manager::check(&self.network, &pod, &args).await?;
                Ok(None)
            }
        }
    }

    /// Where a tenant keeps its objects: per claim when the pod has a PVC
    /// (kept across pod restarts), else nowhere.
    fn state_dir(&self, pod: &PodSpec, kine_endpoint: Option<&str>) -> Option<PathBuf> {
        let key = match (pod.claims.first(), kine_endpoint) {
            (Some(claim), _) => format!("claim-{claim}"),
            // kine keeps the data in its database: key it by the endpoint.
            (None, Some(endpoint)) => format!("kine-{endpoint}"),
            (None, None) => return None,
        };
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Some(self.data_root.join(safe))
    }

    async fn serve(
        &self,
        pod: &PodSpec,
        cert: &str,
        key: &str,
        client_ca: &str,
        state: Option<PathBuf>,
        auth: Option<ApiserverAuth>,
    ) -> Result<TestEnv, String> {
        let mut builder = Builder::default()
            .minor(self.minor)
            .tls(cert, key, client_ca)
            .tenant();
        if let Some(ApiserverAuth {
            accounts: (issuer, signing, trusted),
            front_proxy,
        }) = auth
        {
            builder = builder.service_accounts(&issuer, &signing, trusted);
            if let Some((ca, flags)) = front_proxy {
                builder = builder.front_proxy(&ca, flags);
            }
        }
        if let Some(dir) = state {
            builder = builder.state_dir(dir);
        }
        builder
            .start()
            .await
            .map_err(|e| format!("{}/{}: {e}", pod.namespace, pod.name))
    }

    async fn kube_apiserver(&self, pod: &PodSpec, args: &[String]) -> Result<Running, String> {
        if let Some(e) = flags::unknown_flag(args) {
            return Err(e);
        }
        let port: u16 = flag(args, "secure-port")
            .map(|p| {
                p.parse()
                    .map_err(|_| format!("invalid argument {p:?} for \"--secure-port\" flag"))
            })
            .transpose()?
            .unwrap_or(6443);
        let cert_path = flag(args, "tls-cert-file").ok_or(
            "--tls-cert-file is required: this server serves only with the given certificate",
        )?;
        let key_path =
            flag(args, "tls-private-key-file").ok_or("--tls-private-key-file is required")?;
        let ca_path = flag(args, "client-ca-file").ok_or("--client-ca-file is required")?;
        let cert = read_file(pod, &cert_path, "failed to load serving certificate")?;
        let key = read_file(pod, &key_path, "failed to load serving key")?;
        let ca = read_file(pod, &ca_path, "unable to load client CA file")?;
        let front_proxy = match flag(args, "requestheader-client-ca-file").filter(|p| !p.is_empty())
        {
            Some(path) => Some((
                read_file(pod, &path, "unable to load requestheader client CA file")?,
                flags::request_header(args),
            )),
            None => None,
        };
        let auth = ApiserverAuth {
            accounts: flags::service_accounts(pod, args)?,
            front_proxy,
        };
        // kine runs beside the API server; its endpoint names the database.
        let kine = pod.pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                c["name"] == "kine" || c["image"].as_str().is_some_and(|i| i.contains("kine"))
            })
            .and_then(|c| {
                flag(
                    &{
                        let mut a = strings(&c["command"]);
                        a.extend(strings(&c["args"]));
                        a
                    },
                    "endpoint",
                )
            });
        let env = self
            .serve(
                pod,
                &cert,
                &key,
                &ca,
                self.state_dir(pod, kine.as_deref()),
                Some(auth),
            )
            .await?;
        let addr = env.addr();
        Ok((env, vec![(port, addr)]))
    }

    async fn vcluster(&self, pod: &PodSpec, args: &[String]) -> Result<Running, String> {
        let ns = &pod.namespace;
        let name = flag(args, "name").unwrap_or_else(|| "vcluster".into());
        let mut sans = flags(args, "tls-san");
        sans.extend([
            name.clone(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
            "localhost".into(),
            "127.0.0.1".into(),
        ]);
        let server_url =
            flag(args, "out-kube-config-server").unwrap_or_else(|| "https://localhost:8443".into());
        let secret = flag(args, "out-kube-config-secret").unwrap_or_else(|| format!("vc-{name}"));
        let (env, kubeconfig) = self
            .self_signed(pod, &sans, &server_url, "my-vcluster", None)
            .await?;
        self.publish(ns, &secret, json!({"config": STANDARD.encode(kubeconfig)}))?;
        self.record_service_cidr(ns, &name)?;
        let addr = env.addr();
        Ok((env, vec![(8443, addr)]))
    }

    async fn k3s(
        &self,
        pod: &PodSpec,
        args: &[String],
        env_vars: &HashMap<String, String>,
    ) -> Result<Running, String> {
        let ns = &pod.namespace;
        let port: u16 = flag(args, "https-listen-port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(6443);
        let mut sans = flags(args, "tls-san");
        sans.extend([
            "localhost".into(),
            "127.0.0.1".into(),
            "k3s".into(),
            format!("k3s.{ns}"),
            format!("k3s.{ns}.svc"),
        ]);
        let given = given_cas(pod, args)?;
        let (env, kubeconfig) = self
            .self_signed(
                pod,
                &sans,
                &format!("https://127.0.0.1:{port}"),
                "default",
                given,
            )
            .await?;
        if let Some(secret) = env_vars.get("K3S_CONTROLPLANE_SECRET_NAME") {
            let token = format!(
                "K10{}::server:{}",
                crate::meta::new_uid().replace('-', ""),
                crate::meta::new_uid().replace('-', "")
            );
            self.publish(
                ns,
                secret,
                json!({"token": STANDARD.encode(token), "k3s.yaml": STANDARD.encode(kubeconfig)}),
            )?;
        }
        let addr = env.addr();
        Ok((env, vec![(port, addr)]))
    }

    /// A tenant with its own CA (kept with its data when persistent), and
    /// an admin kubeconfig (cluster/user/context all named `name`).
    async fn self_signed(
        &self,
        pod: &PodSpec,
        sans: &[String],
        server_url: &str,
        name: &str,
        given: Option<(Authority, Authority)>,
    ) -> Result<(TestEnv, String), String> {
        let state = self.state_dir(pod, None);
        if let Some((server_ca, client_ca)) = given {
            let san_refs: Vec<&str> = sans.iter().map(String::as_str).collect();
            let serving = server_ca.serving(&san_refs).map_err(|e| e.to_string())?;
            let admin = client_ca
                .client("system:admin", &["system:masters"])
                .map_err(|e| e.to_string())?;
            let env = self
                .serve(
                    pod,
                    &serving.cert_pem,
                    &serving.key_pem,
                    &client_ca.ca.cert_pem,
                    state,
                    None,
                )
                .await?;
            let config = kubeconfig::render_named(server_url, &server_ca.ca.cert_pem, &admin, name);
            return Ok((env, config));
        }
        let authority = match state.as_ref().and_then(|d| {
            let c = std::fs::read_to_string(d.join("tenant-ca.crt")).ok()?;
            let k = std::fs::read_to_string(d.join("tenant-ca.key")).ok()?;
            Authority::load(&c, &k).ok()
        }) {
            Some(a) => a,
            None => {
                let a = Authority::new(&format!("{name}-ca")).map_err(|e| e.to_string())?;
                if let Some(d) = &state {
                    std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
                    std::fs::write(d.join("tenant-ca.crt"), &a.ca.cert_pem)
                        .map_err(|e| e.to_string())?;
                    kubeconfig::write_private(&d.join("tenant-ca.key"), &a.ca.key_pem)
                        .map_err(|e| e.to_string())?;
                }
                a
            }
        };
        let san_refs: Vec<&str> = sans.iter().map(String::as_str).collect();
        let serving = authority.serving(&san_refs).map_err(|e| e.to_string())?;
        let admin = authority
            .client("admin", &["system:masters"])
            .map_err(|e| e.to_string())?;
        let env = self
            .serve(
                pod,
                &serving.cert_pem,
                &serving.key_pem,
                &authority.ca.cert_pem,
                state,
                None,
            )
            .await?;
        let config = kubeconfig::render_named(server_url, &authority.ca.cert_pem, &admin, name);
        Ok((env, config))
    }

    /// Merges keys into a Secret of the hosting cluster (creating it).
    /// The real syncer finds the host's Service CIDR and keeps it in
    /// ConfigMap `vc-cidr-<name>`, which its k3s container reads.
    fn record_service_cidr(&self, ns: &str, name: &str) -> Result<(), String> {
        let rt = self
            .host
            .registry
            .find("", "v1", "configmaps")
            .ok_or("configmaps are not served")?;
        let target = Target {
            rt,
            namespace: ns.to_string(),
            name: None,
            subresource: None,
        };
        let cm = json!({"metadata": {"name": format!("vc-cidr-{name}"), "namespace": ns},
            "data": {"cidr": "10.96.0.0/12"}});
        let writer = Writer::system("testenv-tenant");
        match self.host.create(&target, cm, &Params::default(), &writer) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e.message),
        }
    }

    fn publish(&self, ns: &str, name: &str, data: Value) -> Result<(), String> {
        let Some(rt) = self.host.registry.find("", "v1", "secrets") else {
            return Err("secrets are not served".into());
        };
        let writer = Writer::system("testenv-tenant");
        let target = Target {
            rt,
            namespace: ns.to_string(),
            name: Some(name.to_string()),
            subresource: None,
        };
        let patch = json!({"data": data});
        match self.host.patch(
            &target,
            patch.to_string().as_bytes(),
            "application/merge-patch+json",
            &Params::default(),
            &writer,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => {
                let t = Target {
                    name: None,
                    ..target
                };
                self.host
                    .create(&t, json!({"metadata": {"name": name, "namespace": ns}, "type": "Opaque", "data": data}), &Params::default(), &writer)
                    .map(|_| ())
                    .map_err(|e| e.message)
            }
            Err(e) => Err(e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Value {
        json!({"spec": {"containers": containers}})
    }

    #[test]
    fn recognises_api_servers() {
        let p = pod(
            json!([{"name": "a", "image": "registry.k8s.io/kube-apiserver:v1.29.9", "command": ["kube-apiserver", "--secure-port=9444"]}]),
        );
        assert_eq!(
            classify(&p),
            Workload::KubeApiserver {
                args: vec!["--secure-port=9444".into()]
            }
        );
        let p = pod(
            json!([{"name": "a", "image": "x", "command": ["/usr/local/bin/kube-apiserver"], "args": ["--secure-port", "1"]}]),
        );
        assert!(matches!(classify(&p), Workload::KubeApiserver { .. }));
        let p = pod(
            json!([{"name": "a", "image": "rancher/k3s:v1.30", "args": ["server", "--tls-san=x"]}]),
        );
        assert!(matches!(classify(&p), Workload::K3s { .. }));
        let p = pod(
            json!([{"name": "syncer", "image": "ghcr.io/loft-sh/vcluster:0.16.4", "args": ["--name=vcluster"]}]),
        );
        assert_eq!(
            classify(&p),
            Workload::Vcluster {
                args: vec!["--name=vcluster".into()]
            }
        );
        assert_eq!(
            classify(&pod(json!([{"name": "n", "image": "nginx"}]))),
            Workload::Other
        );
    }

    #[test]
    fn flags_parse_like_go() {
        let args: Vec<String> = [
            "--secure-port=1",
            "--tls-san",
            "a,b",
            "--secure-port",
            "2",
            "--tls-san=c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(flag(&args, "secure-port").as_deref(), Some("2"));
        assert_eq!(flags(&args, "tls-san"), ["a", "b", "c"]);
        assert_eq!(flag(&args, "missing"), None);
    }

    /// The files of a pod shaped like the operator's k3s StatefulSet: an init
    /// container copying `/ca/*` into `<data-dir>/server/tls` on the data volume.
    fn k3s_pod(script: &str, files: &[(&str, &str)]) -> PodSpec {
        let pod = json!({"spec": {
            "initContainers": [{"name": "install-ca", "image": "rancher/k3s", "command": ["/bin/sh", "-c", script],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "k3s-ca", "mountPath": "/ca"}]}],
            "containers": [{"name": "k3s", "image": "rancher/k3s", "args": ["server", "--data-dir=/data/k3s"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        }});
        PodSpec {
            namespace: "ns".into(),
            name: "k3s-0".into(),
            uid: "u".into(),
            pod,
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                .collect(),
            claims: Vec::new(),
        }
    }

    #[test]
    fn k3s_cas_come_from_where_the_init_container_copies_them() {
        let server = Authority::new("k3s-server-ca").unwrap();
        let client = Authority::new("k3s-client-ca").unwrap();
        let (sc, sk) = (server.ca.cert_pem.clone(), server.ca.key_pem.clone());
        let (cc, ck) = (client.ca.cert_pem.clone(), client.ca.key_pem.clone());
        let at = |dir: &str| {
            [
                (format!("{dir}/server-ca.crt"), sc.clone()),
                (format!("{dir}/server-ca.key"), sk.clone()),
                (format!("{dir}/client-ca.crt"), cc.clone()),
                (format!("{dir}/client-ca.key"), ck.clone()),
            ]
        };
        let files = at("/ca");
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        let args = vec!["--data-dir=/data/k3s".to_string()];
        let copying = "set -e; dst=/data/k3s/server/tls; mkdir -p $dst; cp /ca/server-ca.crt /ca/server-ca.key /ca/client-ca.crt /ca/client-ca.key $dst/";
        let (s, _) = given_cas(&k3s_pod(copying, &refs), &args).unwrap().unwrap();
        assert_eq!(s.ca.cert_pem, sc);
        // An init container writing elsewhere (a wrong data dir) leaves k3s to make its own.
        let elsewhere = copying.replace("/data/k3s/server/tls", "/data/server/tls");
        assert!(
            given_cas(&k3s_pod(&elsewhere, &refs), &args)
                .unwrap()
                .is_none()
        );
        // So does a server looking in another data dir than the one filled.
        let other = vec!["--data-dir=/data/other".to_string()];
        assert!(
            given_cas(&k3s_pod(copying, &refs), &other)
                .unwrap()
                .is_none()
        );
        // Files mounted straight at the TLS directory need no init container.
        let files = at("/data/k3s/server/tls");
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        assert!(given_cas(&k3s_pod("true", &refs), &args).unwrap().is_some());
    }
}
