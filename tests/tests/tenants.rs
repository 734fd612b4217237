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
    // Any private key signs ServiceAccount tokens; kube-apiserver requires one.
    data.push(("sa.key", serving.key_pem.clone()));
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
        - --service-account-issuer=https://kubernetes.default.svc.cluster.local
        - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key
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

/// A tenant `name` served as `name.localtest.me`, its Secret holding every key file.
fn tenant_objects_with_all_keys(name: &str, ca: &Authority) -> String {
    tenant_objects(
        name,
        &format!("{name}.localtest.me"),
        ca,
        &["tls.crt", "tls.key", "ca.crt"],
    )
}

/// Applies a tenant's objects and waits for its API server to be Available.
fn start_tenant(c: &Cluster, ns: &str, objects: &str) {
    c.apply(objects, &[]);
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/kube-apiserver",
        "-n",
        ns,
        "--timeout=30s",
    ]);
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
    start_tenant(&c, "t4", &tenant_objects_with_all_keys("t4", &t.ca));
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

/// A kube-controller-manager Deployment in `ns` whose `--kubeconfig` (Secret
/// `name`) names `server` with `client` as its user and `ca` as the CA.
fn controller_manager(
    ns: &str,
    name: &str,
    server: &str,
    ca: &Authority,
    client: &CertPair,
) -> String {
    let b64 = |s: &str| STANDARD.encode(s);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: cm\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: t\n  context: {{cluster: t, user: cm}}\ncurrent-context: t\n",
        b64(&ca.ca.cert_pem),
        b64(&client.cert_pem),
        b64(&client.key_pem)
    );
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {ns}}}
data:
  kubeconfig: {}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: cm
        image: registry.k8s.io/kube-controller-manager:v1.29.9
        command: [kube-controller-manager, --kubeconfig=/etc/cm/kubeconfig, --leader-elect=false]
        volumeMounts: [{{name: kc, mountPath: /etc/cm}}]
      volumes: [{{name: kc, secret: {{secretName: {name}}}}}]
",
        b64(&kubeconfig)
    )
}

fn last_crash(c: &Cluster, ns: &str, app: &str) -> String {
    let out = c.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={.items[0].status.containerStatuses[0].lastState.terminated.message}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_controller_manager_runs_only_when_its_kubeconfig_reaches_the_tenant() {
    let c = Cluster::start();
    let t = make_tenant();
    c.apply(
        &tenant_objects(
            "t5",
            "t5.localtest.me",
            &t.ca,
            &["tls.crt", "tls.key", "ca.crt"],
        ),
        &[],
    );
    let cm = t.ca.client("system:kube-controller-manager", &[]).unwrap();
    c.apply(
        &controller_manager("t5", "good", "https://t5.t5:443", &t.ca, &cm),
        &[],
    );
    let stranger = Authority::new("other-ca").unwrap();
    let outsider = stranger
        .client("system:kube-controller-manager", &[])
        .unwrap();
    c.apply(
        &controller_manager("t5", "foreign", "https://t5.t5:443", &t.ca, &outsider),
        &[],
    );
    c.apply(
        &controller_manager("t5", "distrustful", "https://t5.t5:443", &stranger, &cm),
        &[],
    );
    let out = c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/good",
        "-n",
        "t5",
        "--timeout=40s",
    ]);
    assert!(out.status.success(), "{}", last_crash(&c, "t5", "good"));
    // A client certificate the tenant does not accept, and a server certificate
    // the kubeconfig does not trust: each crash-loops with its reason.
    assert!(eventually(30, || last_crash(&c, "t5", "foreign")
        .contains("failed to reach the API server")));
    assert!(eventually(30, || last_crash(&c, "t5", "distrustful").contains("tls:")));
    let foreign = c.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/foreign",
        "-n",
        "t5",
        "--timeout=1s",
    ]);
    assert!(!foreign.status.success());
}

#[test]
fn a_misspelt_flag_or_missing_service_account_flags_stop_kube_apiserver() {
    let c = Cluster::start();
    let t = make_tenant();
    let objects = tenant_objects(
        "t6",
        "t6.localtest.me",
        &t.ca,
        &["tls.crt", "tls.key", "ca.crt"],
    );
    c.apply(&objects.replace("--tls-cert-file=", "--tls-cert-fil="), &[]);
    assert!(eventually(15, || last_crash(&c, "t6", "apiserver")
        == "Error: unknown flag: --tls-cert-fil"));
    let without_sa: String = objects
        .replace("t6", "t7")
        .lines()
        .filter(|l| !l.contains("--service-account-"))
        .map(|l| format!("{l}\n"))
        .collect();
    c.apply(&without_sa, &[]);
    assert!(eventually(15, || last_crash(&c, "t7", "apiserver")
        == "Error: [service-account-issuer is a required flag, --service-account-signing-key-file and --service-account-issuer are required flags]"));
}

/// `curl` (a TLS client independent of testenv) through the ingress to `host`,
/// presenting `cert`; the status code and the JSON body.
fn curl_tenant(
    c: &Cluster,
    host: &str,
    ca: &Authority,
    cert: &CertPair,
    headers: &[&str],
    post: Option<&str>,
    path: &str,
) -> (u16, serde_json::Value) {
    let port = c.env().ingress_addr().unwrap().port();
    let file = |name: &str, body: &str| {
        let p = c.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let (ca_file, cert_file, key_file) = (
        file("curl-ca.crt", &ca.ca.cert_pem),
        file("curl-client.crt", &cert.cert_pem),
        file("curl-client.key", &cert.key_pem),
    );
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&ca_file)
        .arg("--cert")
        .arg(&cert_file)
        .arg("--key")
        .arg(&key_file)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(body) = post {
        cmd.args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ]);
    }
    let out = cmd
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code.trim().parse().unwrap_or(0);
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn a_front_proxy_certificate_vouches_for_the_user_in_its_headers() {
    let c = Cluster::start();
    let t = make_tenant();
    let proxy_ca = Authority::new("front-proxy-ca").unwrap();
    // The `--requestheader-*` flags the operator gives a tenant of type k8s.
    let flags = "        - --requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt
        - --requestheader-allowed-names=front-proxy-client
        - --requestheader-extra-headers-prefix=X-Remote-Extra-
        - --requestheader-group-headers=X-Remote-Group
        - --requestheader-username-headers=X-Remote-User
";
    let objects = tenant_objects_with_all_keys("t8", &t.ca)
        .replace(
            "        - --secure-port=9444\n",
            &format!("        - --secure-port=9444\n{flags}"),
        )
        .replace(
            "\ndata:\n",
            &format!(
                "\ndata:\n  front-proxy-ca.crt: {}\n",
                STANDARD.encode(&proxy_ca.ca.cert_pem)
            ),
        );
    start_tenant(&c, "t8", &objects);
    let host = "t8.localtest.me";
    let whoami = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    let review = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let proxy = proxy_ca.client("front-proxy-client", &[]).unwrap();
    let as_alice = [
        "X-Remote-User: alice",
        "X-Remote-Group: devs",
        "X-Remote-Extra-Scopes: read",
    ];
    assert!(eventually(10, || {
        curl_tenant(&c, host, &t.ca, &proxy, &as_alice, Some(whoami), review).0 == 201
    }));
    let (_, body) = curl_tenant(&c, host, &t.ca, &proxy, &as_alice, Some(whoami), review);
    let info = &body["status"]["userInfo"];
    assert_eq!(info["username"], "alice", "{body}");
    assert_eq!(
        info["groups"],
        serde_json::json!(["devs", "system:authenticated"])
    );
    assert_eq!(info["extra"]["scopes"], serde_json::json!(["read"]));
    // RBAC judges the user of the headers: alice may not list namespaces...
    let (code, body) = curl_tenant(
        &c,
        host,
        &t.ca,
        &proxy,
        &as_alice,
        None,
        "/api/v1/namespaces",
    );
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "namespaces is forbidden: User \"alice\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
    );
    // ...unless the proxy puts her in a group that may.
    let admin_group = ["X-Remote-User: alice", "X-Remote-Group: system:masters"];
    let (code, _) = curl_tenant(
        &c,
        host,
        &t.ca,
        &proxy,
        &admin_group,
        None,
        "/api/v1/namespaces",
    );
    assert_eq!(code, 200);
    // A certificate of the front-proxy CA whose CN is not allowed: 401.
    let intruder = proxy_ca.client("intruder", &["system:masters"]).unwrap();
    let (code, body) = curl_tenant(
        &c,
        host,
        &t.ca,
        &intruder,
        &admin_group,
        Some(whoami),
        review,
    );
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["message"], "Unauthorized");
    // The allowed proxy without a username header authenticates nobody: 401.
    let (code, _) = curl_tenant(&c, host, &t.ca, &proxy, &[], Some(whoami), review);
    assert_eq!(code, 401);
    // Headers sent with an ordinary client certificate are ignored.
    let (code, body) = curl_tenant(&c, host, &t.ca, &t.client, &as_alice, Some(whoami), review);
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"]["userInfo"]["username"], "admin", "{body}");
    assert!(body["status"]["userInfo"]["extra"].is_null(), "{body}");
}

/// An ECDSA signature as JWTs carry it (r || s) in the DER form openssl reads.
fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    let int = |b: &[u8]| {
        let b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        let mut out = vec![0x02];
        let pad = b.first().is_none_or(|x| x & 0x80 != 0);
        out.push((b.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend(b);
        out
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn a_tenant_token_is_a_jwt_that_openssl_verifies_with_the_service_account_key() {
    let c = Cluster::start();
    let t = make_tenant();
    start_tenant(&c, "t9", &tenant_objects_with_all_keys("t9", &t.ca));
    let tenant = tenant_kubeconfig(&c, "t9", "t9.localtest.me", &t.ca, &t.client);
    assert!(eventually(10, || c
        .kubectl_as(&tenant, &["create", "serviceaccount", "bot"])
        .status
        .success()));
    let out = c.kubectl_as(&tenant, &["create", "token", "bot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let b64url = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header: serde_json::Value = serde_json::from_slice(&b64url(parts[0])).unwrap();
    assert_eq!(header["alg"], "ES256", "{header}");
    let claims: serde_json::Value = serde_json::from_slice(&b64url(parts[1])).unwrap();
    assert_eq!(
        claims["iss"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(claims["sub"], "system:serviceaccount:default:bot");

    // The public half of the pod's --service-account-signing-key-file, by openssl.
    let key = STANDARD
        .decode(c.ok(&[
            "get",
            "secret",
            "pki",
            "-n",
            "t9",
            "-o",
            "jsonpath={.data.sa\\.key}",
        ]))
        .unwrap();
    let dir = c.dir.path();
    std::fs::write(dir.join("sa.key"), key).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
    };
    assert!(
        run(&["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"])
            .status
            .success()
    );
    std::fs::write(dir.join("input"), format!("{}.{}", parts[0], parts[1])).unwrap();
    std::fs::write(dir.join("sig"), ecdsa_der(&b64url(parts[2]))).unwrap();
    let verify = [
        "dgst",
        "-sha256",
        "-verify",
        "sa.pub",
        "-signature",
        "sig",
        "input",
    ];
    let out = run(&verify);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK");
    // A changed claim breaks the signature.
    let forged = format!("{}.{}", parts[0], parts[1].replacen("e", "f", 1));
    std::fs::write(dir.join("input"), forged).unwrap();
    assert!(!run(&verify).status.success());
}
