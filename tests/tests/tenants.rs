//! Tenant API servers come alive from the objects a user creates by hand,
//! and are reachable through the SNI ingress only with the right
//! certificate, host and files — as on a real cluster.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kubeflex_testenv::pki::{Authority, CertPair};
use support::{Cluster, eventually};

struct Tenant {
    ca: Authority,
    client: CertPair,
}

fn tenant_objects(name: &str, host: &str, ca: &Authority, keys: &[&str]) -> String {
    let serving = ca
        .serving(&[host, &format!("{name}.{name}"), "localhost", "127.0.0.1"])
        .unwrap();
    let mut data = vec![
        ("tls.crt", serving.cert_pem.clone()),
        ("tls.key", serving.key_pem.clone()),
        ("ca.crt", ca.ca.cert_pem.clone()),
    ];
    data.retain(|(k, _)| keys.contains(k));
    let data: String = data
        .iter()
        .map(|(k, v)| format!("  {k}: {}\n", STANDARD.encode(v)))
        .collect();
    format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: {name}
---
apiVersion: v1
kind: Secret
metadata:
  name: pki
  namespace: {name}
data:
{data}---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kube-apiserver
  namespace: {name}
spec:
  selector:
    matchLabels: {{app: apiserver}}
  template:
    metadata:
      labels: {{app: apiserver}}
    spec:
      containers:
      - name: apiserver
        image: registry.k8s.io/kube-apiserver:v1.29.9
        command:
        - kube-apiserver
        - --secure-port=9444
        - --tls-cert-file=/etc/kubernetes/pki/tls.crt
        - --tls-private-key-file=/etc/kubernetes/pki/tls.key
        - --client-ca-file=/etc/kubernetes/pki/ca.crt
        ports:
        - containerPort: 9444
        volumeMounts:
        - name: pki
          mountPath: /etc/kubernetes/pki
          readOnly: true
      volumes:
      - name: pki
        secret:
          secretName: pki
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {name}
spec:
  selector: {{app: apiserver}}
  ports:
  - name: https
    port: 443
    targetPort: 9444
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: {name}
  annotations:
    nginx.ingress.kubernetes.io/ssl-passthrough: \"true\"
spec:
  ingressClassName: nginx
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: {name}
            port:
              number: 443
"
    )
}

fn tenant_kubeconfig(
    c: &Cluster,
    file: &str,
    server_name: &str,
    ca: &Authority,
    client: &CertPair,
) -> std::path::PathBuf {
    let ingress = c.env().ingress_addr().unwrap();
    let b64 = |s: &str| STANDARD.encode(s);
    c.kubeconfig_file(
        file,
        &format!(
            "apiVersion: v1
kind: Config
clusters:
- name: t
  cluster:
    server: https://{ingress}
    tls-server-name: {server_name}
    certificate-authority-data: {}
users:
- name: admin
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: t
  context: {{cluster: t, user: admin}}
current-context: t
",
            b64(&ca.ca.cert_pem),
            b64(&client.cert_pem),
            b64(&client.key_pem)
        ),
    )
}

fn make_tenant() -> Tenant {
    let ca = Authority::new("t1-ca").unwrap();
    let client = ca.client("admin", &["system:masters"]).unwrap();
    Tenant { ca, client }
}

#[test]
fn a_hand_built_tenant_is_reachable_through_the_ingress_only_when_everything_matches() {
    let c = Cluster::start();
    let t = make_tenant();
    c.apply(
        &tenant_objects(
            "t1",
            "t1.localtest.me",
            &t.ca,
            &["tls.crt", "tls.key", "ca.crt"],
        ),
        &[],
    );
    let out = c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/kube-apiserver",
        "-n",
        "t1",
        "--timeout=30s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    let pods = c.ok(&["get", "pods", "-n", "t1"]);
    assert!(pods.contains("Running"), "{pods}");

    // The real kubectl lists the tenant's namespaces over verified TLS.
    let good = tenant_kubeconfig(&c, "t1", "t1.localtest.me", &t.ca, &t.client);
    assert!(eventually(10, || c
        .kubectl_as(&good, &["get", "namespaces"])
        .status
        .success()));
    let out = String::from_utf8(
        c.kubectl_as(&good, &["get", "namespaces", "-o", "name"])
            .stdout,
    )
    .unwrap();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(&format!("namespace/{ns}")), "{out}");
    }
    // Its own store: a namespace made in the tenant is not in the host.
    assert!(
        c.kubectl_as(&good, &["create", "namespace", "only-in-tenant"])
            .status
            .success()
    );
    assert!(
        !c.kubectl(&["get", "namespace", "only-in-tenant"])
            .status
            .success()
    );

    // A client certificate from another CA is refused.
    let stranger = Authority::new("other-ca")
        .unwrap()
        .client("admin", &["system:masters"])
        .unwrap();
    let wrong_client = tenant_kubeconfig(&c, "wrong-client", "t1.localtest.me", &t.ca, &stranger);
    let out = c.kubectl_as(&wrong_client, &["get", "namespaces"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate") || err.contains("tls"), "{err}");

    // A server name the ingress has no rule for: the connection is closed.
    let wrong_host = tenant_kubeconfig(&c, "wrong-host", "t2.localtest.me", &t.ca, &t.client);
    let out = c.kubectl_as(&wrong_host, &["get", "namespaces", "--request-timeout=5s"]);
    assert!(!out.status.success());

    // The serving certificate must match the name asked for.
    c.apply(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: alias
  namespace: t1
  annotations:
    nginx.ingress.kubernetes.io/ssl-passthrough: \"true\"
spec:
  ingressClassName: nginx
  rules:
  - host: alias.localtest.me
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: t1, port: {number: 443}}
",
        &[],
    );
    let alias = tenant_kubeconfig(&c, "alias", "alias.localtest.me", &t.ca, &t.client);
    let out = c.kubectl_as(&alias, &["get", "namespaces"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate is valid for"), "{err}");
}

#[test]
fn a_tenant_whose_secret_lacks_a_key_file_never_becomes_ready() {
    let c = Cluster::start();
    let t = make_tenant();
    c.apply(
        &tenant_objects("t3", "t3.localtest.me", &t.ca, &["tls.crt", "tls.key"]),
        &[],
    );
    // The kubelet mounts the volume; kube-apiserver then fails on the missing CA file.
    assert!(eventually(10, || {
        let out = c.ok(&[
            "get",
            "pods",
            "-n",
            "t3",
            "-o",
            "jsonpath={.items[0].status.containerStatuses[0].lastState.terminated.message}",
        ]);
        out.contains("/etc/kubernetes/pki/ca.crt")
    }));
    let out = c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/kube-apiserver",
        "-n",
        "t3",
        "--timeout=2s",
    ]);
    assert!(!out.status.success());
    let kubeconfig = tenant_kubeconfig(&c, "t3", "t3.localtest.me", &t.ca, &t.client);
    assert!(
        !c.kubectl_as(&kubeconfig, &["get", "namespaces", "--request-timeout=5s"])
            .status
            .success()
    );
}

#[test]
fn the_service_proxy_reaches_a_tenant_anonymously() {
    let c = Cluster::start();
    let t = make_tenant();
    c.apply(
        &tenant_objects(
            "t4",
            "t4.localtest.me",
            &t.ca,
            &["tls.crt", "tls.key", "ca.crt"],
        ),
        &[],
    );
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/kube-apiserver",
        "-n",
        "t4",
        "--timeout=30s",
    ]);
    assert!(eventually(10, || {
        c.kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/t4/services/https:t4:443/proxy/readyz",
        ])
        .stdout
        .starts_with(b"ok")
    }));
    // The caller's credentials are not forwarded: the tenant sees nobody.
    let out = c.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/t4/services/https:t4:443/proxy/api/v1/namespaces",
    ]);
    assert!(!out.status.success());
    // The service map gives a loopback port for in-cluster URLs.
    let addr = c.ok(&[
        "get",
        "configmap",
        "testenv-service-map",
        "-n",
        "kube-public",
        "-o",
        "jsonpath={.data.t4\\.t4\\.443}",
    ]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let svc = c.kubeconfig_file(
        "svc",
        &std::fs::read_to_string(tenant_kubeconfig(&c, "t4", "t4.t4", &t.ca, &t.client))
            .unwrap()
            .replace(&c.env().ingress_addr().unwrap().to_string(), &addr),
    );
    assert!(c.kubectl_as(&svc, &["get", "namespaces"]).status.success());
}
