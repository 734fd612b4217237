//! The cluster's network, played on loopback: an SNI-routing TLS-passthrough
//! ingress (as ingress-nginx with `--enable-ssl-passthrough`, and OpenShift
//! passthrough Routes when that API is enabled), a loopback port per Service
//! port (published in ConfigMap `kube-public/testenv-service-map`, key
//! `<service>.<namespace>.<port>`, value `127.0.0.1:<port>`), and the
//! backend lookup the service proxy shares: Service → port → ready
//! Endpoints → where the pod really listens.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::api::{Api, Params, Target, Writer};
use crate::runtime::PortMap;

/// The annotation ingress-nginx reads for passthrough.
pub const SSL_PASSTHROUGH: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";
/// Where Service loopback ports are published.
pub const SERVICE_MAP: (&str, &str) = ("kube-public", "testenv-service-map");

/// Shared view of the simulated network.
pub struct Network {
    pub api: Arc<Api>,
    pub ports: Arc<PortMap>,
    /// The hosting API server itself, behind Service `default/kubernetes`.
    pub apiserver: SocketAddr,
    pub routes: bool,
}

/// The server name of a TLS ClientHello, if it carries one.
pub fn sni(hello: &[u8]) -> Option<String> {
    let mut p = Parser { b: hello, i: 0 };
    if p.u8()? != 0x16 {
        return None;
    }
    p.skip(4)?; // version, record length
    if p.u8()? != 0x01 {
        return None;
    }
    p.skip(3 + 2 + 32)?; // handshake length, client version, random
    let sid = usize::from(p.u8()?);
    p.skip(sid)?;
    let suites = usize::from(p.u16()?);
    p.skip(suites)?;
    let compression = usize::from(p.u8()?);
    p.skip(compression)?;
    let ext_len = usize::from(p.u16()?);
    let end = p.i.checked_add(ext_len)?;
    while p.i + 4 <= end {
        let ty = p.u16()?;
        let len = usize::from(p.u16()?);
        if ty != 0 {
            p.skip(len)?;
            continue;
        }
        p.skip(2)?; // server name list length
        if p.u8()? != 0 {
            return None;
        }
        let n = usize::from(p.u16()?);
        let name = p.b.get(p.i..p.i + n)?;
        return std::str::from_utf8(name)
            .ok()
            .map(|s| s.to_ascii_lowercase());
    }
    None
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.i)?;
        self.i += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.i = self.i.checked_add(n)?;
        (self.i <= self.b.len()).then_some(())
    }
}

impl Network {
    /// The address behind `namespace/service` at `port` (a Service port
    /// number or name): a ready endpoint's real listener.
    pub fn service_backend(
        &self,
        namespace: &str,
        service: &str,
        port: &str,
    ) -> Option<SocketAddr> {
        if namespace == "default" && service == "kubernetes" {
            return Some(self.apiserver);
        }
        let svc = self.api.store.get("/services", namespace, service)?;
        let ports = svc["spec"]["ports"].as_array()?;
        let sp = ports.iter().find(|p| {
            p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(port)
                || p["name"].as_str() == Some(port)
        })?;
        self.endpoint_for(namespace, service, sp)
    }

    /// A ready endpoint for a Service port object.
    fn endpoint_for(&self, namespace: &str, service: &str, sp: &Value) -> Option<SocketAddr> {
        let eps = self.api.store.get("/endpoints", namespace, service)?;
        let name = sp["name"].as_str().unwrap_or_default();
        let target = &sp["targetPort"];
        for subset in eps["subsets"].as_array().into_iter().flatten() {
            let port = subset["ports"].as_array().into_iter().flatten().find(|p| {
                p["name"].as_str().unwrap_or_default() == name
                    || target
                        .as_u64()
                        .is_some_and(|t| p["port"].as_u64() == Some(t))
            });
            let Some(port) = port
                .and_then(|p| p["port"].as_u64())
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            for addr in subset["addresses"].as_array().into_iter().flatten() {
                if let Some(ip) = addr["ip"].as_str().and_then(|i| i.parse::<Ipv4Addr>().ok())
                    && let Some(real) = self.ports.lookup(ip, port)
                {
                    return Some(real);
                }
            }
        }
        None
    }

    /// The backend for an ingress host (SNI), as ingress-nginx would pick it.
    pub fn route_host(&self, host: &str) -> Option<SocketAddr> {
        let (ingresses, _) = self
            .api
            .store
            .list("networking.k8s.io/ingresses", None, None);
        for ing in ingresses {
            let class = ing["spec"]["ingressClassName"]
                .as_str()
                .or(ing["metadata"]["annotations"]["kubernetes.io/ingress.class"].as_str());
            if class != Some("nginx") || ing["metadata"]["annotations"][SSL_PASSTHROUGH] != "true" {
                continue;
            }
            let ns = ing["metadata"]["namespace"].as_str().unwrap_or_default();
            for rule in ing["spec"]["rules"].as_array().into_iter().flatten() {
                if !rule["host"]
                    .as_str()
                    .is_some_and(|h| h.eq_ignore_ascii_case(host))
                {
                    continue;
                }
                // Passthrough ignores paths: the first backend of the host wins.
                let backend = rule["http"]["paths"][0]["backend"]["service"].clone();
                let backend = if backend.is_null() {
                    ing["spec"]["defaultBackend"]["service"].clone()
                } else {
                    backend
                };
                let name = backend["name"].as_str()?;
                let port = backend["port"]["number"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| backend["port"]["name"].as_str().map(String::from))?;
                return self.service_backend(ns, name, &port);
            }
        }
        if self.routes {
            let (routes, _) = self.api.store.list("route.openshift.io/routes", None, None);
            for route in routes {
                if !route["spec"]["host"]
                    .as_str()
                    .is_some_and(|h| h.eq_ignore_ascii_case(host))
                    || route["spec"]["tls"]["termination"] != "passthrough"
                {
                    continue;
                }
                let ns = route["metadata"]["namespace"].as_str().unwrap_or_default();
                let svc_name = route["spec"]["to"]["name"].as_str()?;
                let svc = self.api.store.get("/services", ns, svc_name)?;
                let want = &route["spec"]["port"]["targetPort"];
                let ports = svc["spec"]["ports"].as_array()?;
                // targetPort names a Service port (by name) or a target port number.
                let sp = ports.iter().find(|p| match want {
                    Value::String(n) => {
                        p["name"].as_str() == Some(n) || p["targetPort"].as_str() == Some(n)
                    }
                    Value::Number(n) => p["targetPort"].as_u64() == n.as_u64(),
                    _ => true,
                })?;
                return self.endpoint_for(ns, svc_name, sp);
            }
        }
        None
    }
}

/// Serves the SNI passthrough ingress on `listener`.
pub async fn serve_ingress(listener: TcpListener, net: Arc<Network>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let net = net.clone();
        tokio::spawn(async move {
            let _ = passthrough(tcp, &net).await;
        });
    }
}

async fn passthrough(mut client: TcpStream, net: &Network) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut n = 0;
    let host = loop {
        let read =
            tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf[n..])).await??;
        if read == 0 {
            return Ok(());
        }
        n += read;
        if let Some(h) = sni(&buf[..n]) {
            break h;
        }
        // A whole record without a server name, or garbage: no route.
        let record = buf
            .get(3..5)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])) + 5);
        if n >= buf.len() || record.is_some_and(|r| n >= r) {
            return Ok(());
        }
    };
    // No match: close, as nginx does.
    let Some(backend) = net.route_host(&host) else {
        return Ok(());
    };
    let mut upstream = TcpStream::connect(backend).await?;
    upstream.write_all(&buf[..n]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Keeps a loopback listener per Service port and publishes the map.
pub async fn serve_services(net: Arc<Network>) {
    let mut listeners: HashMap<String, (SocketAddr, tokio::task::JoinHandle<()>)> = HashMap::new();
    let mut events = net.api.store.subscribe();
    let mut published = BTreeMap::new();
    loop {
        let (services, _) = net.api.store.list("/services", None, None);
        let mut wanted = BTreeMap::new();
        for svc in &services {
            let ns = svc["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let name = svc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
                let Some(port) = p["port"].as_u64() else {
                    continue;
                };
                let key = format!("{name}.{ns}.{port}");
                if !listeners.contains_key(&key) {
                    let Ok(l) = TcpListener::bind(("127.0.0.1", 0)).await else {
                        continue;
                    };
                    let Ok(addr) = l.local_addr() else { continue };
                    let task = tokio::spawn(forward(
                        l,
                        net.clone(),
                        ns.clone(),
                        name.clone(),
                        port.to_string(),
                    ));
                    listeners.insert(key.clone(), (addr, task));
                }
                if let Some((addr, _)) = listeners.get(&key) {
                    wanted.insert(key, addr.to_string());
                }
            }
        }
        listeners.retain(|k, (_, task)| {
            let keep = wanted.contains_key(k);
            if !keep {
                task.abort();
            }
            keep
        });
        if wanted != published {
            publish_map(&net.api, &wanted);
            published = wanted;
        }
        // Wait for a Service change (or resync after falling behind).
        loop {
            match events.recv().await {
                Ok(e) if e.resource == "/services" => break,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

async fn forward(listener: TcpListener, net: Arc<Network>, ns: String, name: String, port: String) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let net = net.clone();
        let (ns, name, port) = (ns.clone(), name.clone(), port.clone());
        tokio::spawn(async move {
            // Like kube-proxy: no ready endpoint, connection refused (closed).
            if let Some(backend) = net.service_backend(&ns, &name, &port)
                && let Ok(mut upstream) = TcpStream::connect(backend).await
            {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

fn publish_map(api: &Api, map: &BTreeMap<String, String>) {
    let Some(rt) = api.registry.find("", "v1", "configmaps") else {
        return;
    };
    let writer = Writer::system("testenv-network");
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": SERVICE_MAP.1, "namespace": SERVICE_MAP.0},
        "data": map,
    });
    let target = Target {
        rt,
        namespace: SERVICE_MAP.0.into(),
        name: Some(SERVICE_MAP.1.into()),
        subresource: None,
    };
    let params = Params::parse("fieldManager=testenv-network&force=true");
    if let Err(e) = api.patch(
        &target,
        body.to_string().as_bytes(),
        "application/apply-patch+yaml",
        &params,
        &writer,
    ) {
        tracing::warn!(error = %e.message, "publishing the service map failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls sends it, captured by connecting to a socket.
    #[tokio::test]
    async fn reads_the_server_name_of_a_real_client_hello() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("t1.localtest.me").unwrap();
            let _ = connector.connect(name, tcp).await;
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(sni(&buf[..n]).as_deref(), Some("t1.localtest.me"));
        assert_eq!(sni(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(sni(&buf[..10]), None);
    }
}
