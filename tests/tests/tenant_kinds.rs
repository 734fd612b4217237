//! vcluster- and k3s-shaped workloads make their own certificates and
//! publish kubeconfigs that work through the ingress; OpenShift passthrough
//! Routes work like Ingresses when that API is enabled.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use support::{Cluster, eventually};

fn ingress(ns: &str, host: &str, service: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {ns}
  namespace: {ns}
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
          service: {{name: {service}, port: {{number: 443}}}}
"
    )
}

/// The published kubeconfig, pointed at the ingress with the host as SNI.
fn published(
    c: &Cluster,
    ns: &str,
    secret: &str,
    key: &str,
    host: &str,
    file: &str,
) -> std::path::PathBuf {
    let jsonpath = format!("jsonpath={{.data.{}}}", key.replace('.', "\\."));
    let mut b64 = String::new();
    assert!(
        eventually(20, || {
            b64 = c
                .kubectl(&["get", "secret", secret, "-n", ns, "-o", &jsonpath])
                .stdout
                .iter()
                .map(|b| *b as char)
                .collect();
            !b64.is_empty()
        }),
        "secret {ns}/{secret} never got key {key}"
    );
    let yaml = String::from_utf8(STANDARD.decode(b64.trim()).unwrap()).unwrap();
    let mut config: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    let cluster = &mut config["clusters"][0]["cluster"];
    cluster["server"] = serde_json::json!(format!("https://{}", c.env().ingress_addr().unwrap()));
    cluster["tls-server-name"] = serde_json::json!(host);
    c.kubeconfig_file(file, &serde_json::to_string(&config).unwrap())
}

#[test]
fn a_vcluster_publishes_its_kubeconfig_and_keeps_its_data_across_a_pod_restart() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "vc1"]);
    c.apply(
        "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: vcluster, namespace: vc1}
spec:
  serviceName: vcluster-headless
  selector: {matchLabels: {app: vcluster}}
  template:
    metadata: {labels: {app: vcluster}}
    spec:
      containers:
      - name: syncer
        image: ghcr.io/loft-sh/vcluster:0.16.4
        args: [--name=vcluster, --tls-san=vc1.localtest.me, --out-kube-config-server=https://vc1.localtest.me:9443]
        ports: [{containerPort: 8443}]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: vcluster, namespace: vc1}
spec:
  selector: {app: vcluster}
  ports: [{name: https, port: 443, targetPort: 8443}]
",
        &[],
    );
    c.apply(&ingress("vc1", "vc1.localtest.me", "vcluster"), &[]);
    let kubeconfig = published(
        &c,
        "vc1",
        "vc-vcluster",
        "config",
        "vc1.localtest.me",
        "vc1",
    );
    assert!(eventually(20, || c
        .kubectl_as(&kubeconfig, &["get", "namespaces"])
        .status
        .success()));
    assert!(
        c.kubectl_as(&kubeconfig, &["create", "namespace", "kept"])
            .status
            .success()
    );
    // The pod goes; the StatefulSet brings it back on the same claim.
    c.ok(&["delete", "pod", "vcluster-0", "-n", "vc1"]);
    assert!(eventually(30, || c
        .kubectl_as(&kubeconfig, &["get", "namespace", "kept"])
        .status
        .success()));
}

#[test]
fn a_k3s_server_publishes_its_token_and_kubeconfig() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "k1"]);
    c.apply(
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: k3s-server, namespace: k1}
spec:
  selector: {matchLabels: {app: k3s}}
  template:
    metadata: {labels: {app: k3s}}
    spec:
      containers:
      - name: k3s-server
        image: rancher/k3s:v1.30.13-k3s1
        args: [server, --tls-san=k1.localtest.me]
        env: [{name: K3S_CONTROLPLANE_SECRET_NAME, value: k3s-config}]
        ports: [{containerPort: 6443}]
---
apiVersion: v1
kind: Service
metadata: {name: k3s, namespace: k1}
spec:
  selector: {app: k3s}
  ports: [{name: https, port: 443, targetPort: 6443}]
",
        &[],
    );
    c.apply(&ingress("k1", "k1.localtest.me", "k3s"), &[]);
    let kubeconfig = published(&c, "k1", "k3s-config", "k3s.yaml", "k1.localtest.me", "k1");
    assert!(eventually(20, || c
        .kubectl_as(&kubeconfig, &["get", "namespaces"])
        .status
        .success()));
    let token = c.ok(&[
        "get",
        "secret",
        "k3s-config",
        "-n",
        "k1",
        "-o",
        "jsonpath={.data.token}",
    ]);
    let token = String::from_utf8(STANDARD.decode(token.trim()).unwrap()).unwrap();
    assert!(
        token.starts_with("K10") && token.contains("::server:"),
        "{token}"
    );
}

#[test]
fn passthrough_routes_work_when_the_route_api_is_served() {
    let c = Cluster::start_with(kubeflex_testenv::TestEnv::builder().openshift_routes(true));
    c.ok(&["create", "namespace", "r1"]);
    c.apply(
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: vcluster, namespace: r1}
spec:
  selector: {matchLabels: {app: vcluster}}
  template:
    metadata: {labels: {app: vcluster}}
    spec:
      containers:
      - name: syncer
        image: ghcr.io/loft-sh/vcluster:0.16.4
        args: [--name=vcluster, --tls-san=vcluster-r1.apps.localtest.me]
---
apiVersion: v1
kind: Service
metadata: {name: vcluster, namespace: r1}
spec:
  selector: {app: vcluster}
  ports: [{name: https, port: 443, targetPort: 8443}]
---
apiVersion: route.openshift.io/v1
kind: Route
metadata: {name: vcluster, namespace: r1}
spec:
  to: {kind: Service, name: vcluster}
  port: {targetPort: https}
  tls: {termination: passthrough}
",
        &[],
    );
    let host = c.ok(&[
        "get",
        "route",
        "vcluster",
        "-n",
        "r1",
        "-o",
        "jsonpath={.spec.host}",
    ]);
    assert_eq!(host, "vcluster-r1.apps.localtest.me");
    let kubeconfig = published(&c, "r1", "vc-vcluster", "config", &host, "r1");
    assert!(eventually(20, || c
        .kubectl_as(&kubeconfig, &["get", "namespaces"])
        .status
        .success()));
    // Without the Route API the kind is unknown, as on plain Kubernetes.
    let plain = Cluster::start();
    let err = plain.fails(&["get", "routes"]);
    assert!(err.contains("doesn't have a resource type"), "{err}");
}
