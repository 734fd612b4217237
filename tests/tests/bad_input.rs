//! Hostile or broken requests get a Kubernetes-style 4xx `Status` — never a
//! panic, a hang or a lost object.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use http::{Method, Request};
use kube::Client;
use kubeflex_testenv::TestEnv;
use serde_json::{Value, json};

async fn send(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    let res = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = res.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn assert_status(got: &(u16, Value), code: u16, reason: &str) {
    assert_eq!(got.0, code, "{}", got.1);
    assert_eq!(got.1["kind"], "Status", "{}", got.1);
    assert_eq!(got.1["code"], code);
    assert_eq!(got.1["reason"], reason, "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_requests_get_kubernetes_errors_and_nothing_is_lost() {
    let env = TestEnv::builder().start().await.unwrap();
    let c = env.client().await.unwrap();
    let cms = "/api/v1/namespaces/default/configmaps";
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"k": "v"}});
    assert_eq!(
        send(
            &c,
            Method::POST,
            cms,
            "application/json",
            good.to_string().into_bytes()
        )
        .await
        .0,
        201
    );

    let r = send(
        &c,
        Method::POST,
        cms,
        "application/json",
        b"{\"metadata\": ".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    let r = send(
        &c,
        Method::PATCH,
        &format!("{cms}/keep?fieldManager=x"),
        "application/apply-patch+yaml",
        b"data: [unclosed".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    let r = send(
        &c,
        Method::POST,
        cms,
        "application/vnd.kubernetes.protobuf",
        b"k8s\0\x0a\x02".to_vec(),
    )
    .await;
    // Protobuf is decoded now: a truncated envelope is a bad request.
    assert_status(&r, 400, "BadRequest");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    let r = send(
        &c,
        Method::POST,
        cms,
        "application/json",
        secret.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("does not match the expected kind")
    );
    let bad_name =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_DNS"}});
    let r = send(
        &c,
        Method::POST,
        cms,
        "application/json",
        bad_name.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 422, "Invalid");
    assert_eq!(r.1["details"]["causes"][0]["field"], "metadata.name");
    let huge = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"k": "x".repeat(4 << 20)}});
    let r = send(
        &c,
        Method::POST,
        cms,
        "application/json",
        huge.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 413, "RequestEntityTooLarge");
    let r = send(
        &c,
        Method::GET,
        "/api/v1/frobnicators",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(&r, 404, "NotFound");
    let r = send(
        &c,
        Method::GET,
        "/apis/nope.io/v1/things?watch=true",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(&r, 404, "NotFound");
    let r = send(
        &c,
        Method::PATCH,
        &format!("{cms}/keep"),
        "application/json-patch+json",
        b"[{\"op\":\"frobnicate\"}]".to_vec(),
    )
    .await;
    assert!(r.0 == 400 || r.0 == 422, "{:?}", r);
    let r = send(
        &c,
        Method::GET,
        &format!("{cms}?labelSelector=a%20b"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");

    // The object written first is untouched and the server still serves.
    let r = send(
        &c,
        Method::GET,
        &format!("{cms}/keep"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!(r.0, 200);
    assert_eq!(r.1["data"]["k"], "v");
    assert!(
        send(
            &c,
            Method::GET,
            &format!("{cms}/huge"),
            "application/json",
            Vec::new()
        )
        .await
        .0 == 404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_are_refused_except_health_and_version() {
    let env = TestEnv::builder().start().await.unwrap();
    // The admin kubeconfig without its client certificate.
    let mut kubeconfig = kube::config::Kubeconfig::from_yaml(env.kubeconfig()).unwrap();
    for user in &mut kubeconfig.auth_infos {
        if let Some(info) = user.auth_info.as_mut() {
            info.client_certificate_data = None;
            info.client_key_data = None;
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let anon = Client::try_from(config).unwrap();
    for path in ["/healthz", "/livez", "/readyz"] {
        let req = Request::get(path).body(Vec::new()).unwrap();
        let res = anon.send(req.map(kube::client::Body::from)).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    assert_eq!(
        anon.apiserver_version().await.unwrap().minor,
        kubeflex_testenv::server::DEFAULT_MINOR.to_string()
    );
    let r = send(
        &anon,
        Method::GET,
        "/api/v1/namespaces",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(&r, 401, "Unauthorized");
    let r = send(&anon, Method::GET, "/apis", "application/json", Vec::new()).await;
    assert_status(&r, 401, "Unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_field_validation_names_unknown_fields() {
    let env = TestEnv::builder().start().await.unwrap();
    let c = env.client().await.unwrap();
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    for yaml in [
        include_str!("../../config/crd/bases/tenancy.kflex.kubestellar.org_controlplanes.yaml"),
        include_str!("../../config/crd/bases/tenancy.kflex.kubestellar.org_postcreatehooks.yaml"),
    ] {
        let crd: Value = serde_saphyr::from_str(yaml).unwrap();
        let r = send(
            &c,
            Method::POST,
            crds,
            "application/json",
            serde_json::to_vec(&crd).unwrap(),
        )
        .await;
        assert_eq!(r.0, 201, "{}", r.1);
    }
    let cps = "/apis/tenancy.kflex.kubestellar.org/v1alpha1/controlplanes";
    let cp = json!({"apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane", "metadata": {"name": "cp1"}, "spec": {"type": "k8s", "typo": 1}});
    let r = send(
        &c,
        Method::POST,
        &format!("{cps}?fieldValidation=Strict"),
        "application/json",
        cp.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest");
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.typo\""),
        "{}",
        r.1
    );
    // Without Strict the unknown field is pruned, as for any structural schema.
    let r = send(
        &c,
        Method::POST,
        cps,
        "application/json",
        cp.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.0, 201);
    assert!(r.1["spec"].get("typo").is_none());
}
