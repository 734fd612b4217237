//! The HTTPS front: TLS with optional client certificates, authentication,
//! routing of Kubernetes API paths, RBAC authorization, and JSON / Table /
//! metadata-only / watch-stream responses. HTTP/1.1 only, as kube-rs uses.

mod access;
mod objects;
mod protobuf;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, Api, MAX_BODY, Params, Target};
use crate::auth::{PeerCert, RequestHeader, TokenSigner, User};
use crate::discovery;
use crate::rbac::{self, Attributes};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;

use access::{allowed, authenticate, user_info, verb_of};
use objects::{object_request, rendering};

type Body = BoxBody<Bytes, Infallible>;

/// Everything a request handler needs.
pub struct AppState {
    pub api: Arc<Api>,
    pub signer: Arc<TokenSigner>,
    /// The Kubernetes minor `/version` reports (selects the kubectl build).
    pub version_minor: u32,
    /// Shortest TokenRequest lifetime accepted, in seconds (Kubernetes: 600).
    pub min_token_seconds: i64,
    /// The simulated network, for the service proxy (hosting clusters only).
    pub network: Option<Arc<crate::ingress::Network>>,
    /// The front-proxy authenticator of a tenant kube-apiserver with
    /// `--requestheader-client-ca-file`.
    pub request_header: Option<Arc<RequestHeader>>,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// Serves HTTPS on `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<AppState>) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        // Reap finished connection tasks so the set does not grow forever.
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let peer_cert = match tls.get_ref().1.peer_certificates() {
                Some(chain) => match &state.request_header {
                    Some(rh) => rh.peer(chain),
                    // Verified against the client CA during the handshake.
                    None => PeerCert {
                        user: chain
                            .first()
                            .and_then(|c| User::from_certificate(c.as_ref())),
                        front_proxy: false,
                        presented: true,
                    },
                },
                None => PeerCert::default(),
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let peer_cert = peer_cert.clone();
                async move { Ok::<_, Infallible>(handle(state, peer_cert, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Builds the TLS configuration: our serving certificate, and client
/// certificates verified against `client_ca_pem` but not required (bearer
/// tokens and anonymous health checks come without one).
pub fn tls_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("serving certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("serving key: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| format!("client CA: {e}"))?;
        roots.add(ca).map_err(|e| format!("client CA: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| format!("client verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("serving certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The parsed request path.
#[derive(Debug, PartialEq)]
enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    Resources(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String),
    ServiceProxy {
        namespace: String,
        service: String,
        path: String,
    },
    Object {
        group: String,
        version: String,
        namespace: Option<String>,
        plural: String,
        name: Option<String>,
        sub: Option<String>,
    },
    Unknown,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let object = |group: &str, version: &str, rest: &[&str]| -> Route {
        let owned = |s: &&str| s.to_string();
        let (namespace, rest) = match rest {
            ["namespaces", ns, plural, tail @ ..]
                if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
            {
                (Some(ns.to_string()), {
                    let mut v = vec![*plural];
                    v.extend_from_slice(tail);
                    v
                })
            }
            _ => (None, rest.to_vec()),
        };
        match rest.as_slice() {
            [plural] => Route::Object {
                group: group.into(),
                version: version.into(),
                namespace,
                plural: plural.to_string(),
                name: None,
                sub: None,
            },
            [plural, name] => Route::Object {
                group: group.into(),
                version: version.into(),
                namespace,
                plural: plural.to_string(),
                name: Some(name.to_string()),
                sub: None,
            },
            [plural, name, sub] => Route::Object {
                group: group.into(),
                version: version.into(),
                namespace,
                plural: plural.to_string(),
                name: Some(name.to_string()),
                sub: Some(owned(sub)),
            },
            _ => Route::Unknown,
        }
    };
    match segs.as_slice() {
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "services",
            svc,
            "proxy",
            rest @ ..,
        ] => Route::ServiceProxy {
            namespace: ns.to_string(),
            service: svc.to_string(),
            path: format!("/{}", rest.join("/")),
        },
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api"] => Route::Api,
        ["api", v] => Route::Resources(String::new(), v.to_string()),
        ["api", v, rest @ ..] => object("", v, rest),
        ["apis"] => Route::Apis,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::Resources(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => object(g, v, rest),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        _ => Route::Unknown,
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn read_body(mut body: Incoming) -> Result<Bytes, ApiError> {
    // Past the limit the rest is read and dropped (up to a bound), so the
    // client is not cut off mid-upload and sees the 413.
    const DRAIN_LIMIT: usize = 64 << 20;
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

async fn handle(state: Arc<AppState>, peer: PeerCert, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let params = Params::parse(req.uri().query().unwrap_or_default());
    let route = route(&path);
    let user = match authenticate(&state, peer, header(&req, "authorization"), req.headers()) {
        Ok(u) => u,
        Err(e) => return error_response(&e),
    };
    // Kubernetes leaves these open to anyone (system:public-info-viewer).
    let public = matches!(route, Route::Version | Route::Health);
    let Some(user) = user else {
        if public {
            return public_response(&state, &route, &path);
        }
        return error_response(&ApiError::unauthorized());
    };
    if public {
        return public_response(&state, &route, &path);
    }
    let accept = header(&req, "accept").to_string();
    match route {
        Route::Api
        | Route::Apis
        | Route::Group(_)
        | Route::Resources(..)
        | Route::OpenApiV2
        | Route::OpenApiV3Index
        | Route::OpenApiV3(_) => {
            let attrs = Attributes {
                verb: req.method().as_str().to_lowercase(),
                path: path.clone(),
                resource_request: false,
                ..Attributes::default()
            };
            if !allowed(&state, &user, &attrs) {
                return error_response(&ApiError::forbidden(rbac::forbidden_message(
                    &user_info(&user),
                    &attrs,
                )));
            }
            discovery_response(&state, route, &accept)
        }
        Route::Object {
            group,
            version,
            namespace,
            plural,
            name,
            sub,
        } => {
            let Some(rt) = state.api.registry.find(&group, &version, &plural) else {
                return error_response(&ApiError::unknown_path());
            };
            if namespace.is_some() && !rt.namespaced {
                return error_response(&ApiError::unknown_path());
            }
            let watch = params.flag("watch");
            let verb = verb_of(req.method(), name.is_some(), watch);
            let attrs = Attributes {
                verb: verb.into(),
                api_group: group.clone(),
                resource: plural.clone(),
                subresource: sub.clone().unwrap_or_default(),
                name: name.clone().unwrap_or_default(),
                namespace: namespace.clone().unwrap_or_default(),
                path: path.clone(),
                resource_request: true,
            };
            if !allowed(&state, &user, &attrs) {
                let mut e = ApiError::forbidden(rbac::forbidden_message(&user_info(&user), &attrs));
                let mut d = json!({"kind": plural});
                if let Some(n) = &name {
                    d["name"] = json!(n);
                }
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                e = e.with_details(d);
                return error_response(&e);
            }
            let target = Target {
                rt,
                namespace: namespace.unwrap_or_default(),
                name,
                subresource: sub,
            };
            match object_request(&state, &user, target, verb, params, &accept, req).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
        Route::ServiceProxy {
            namespace,
            service,
            path: rest,
        } => {
            let attrs = Attributes {
                verb: verb_of(req.method(), true, false).into(),
                api_group: String::new(),
                resource: "services".into(),
                subresource: "proxy".into(),
                name: service.clone(),
                namespace: namespace.clone(),
                path: path.clone(),
                resource_request: true,
            };
            if !allowed(&state, &user, &attrs) {
                return error_response(&ApiError::forbidden(rbac::forbidden_message(
                    &user_info(&user),
                    &attrs,
                )));
            }
            let Some(net) = state.network.clone() else {
                return error_response(&ApiError::unknown_path());
            };
            let method = req.method().clone();
            let target = match req.uri().query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest,
            };
            let body = match read_body(req.into_body()).await {
                Ok(b) => b,
                Err(e) => return error_response(&e),
            };
            match crate::proxy::forward(&net, &namespace, &service, method, &target, body).await {
                Ok(p) => {
                    let mut r = Response::new(full(p.body));
                    *r.status_mut() =
                        StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_GATEWAY);
                    if let Some(ct) = p
                        .content_type
                        .and_then(|c| hyper::header::HeaderValue::from_str(&c).ok())
                    {
                        r.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
                    }
                    r
                }
                Err(e) => error_response(&e),
            }
        }
        Route::Version | Route::Health => public_response(&state, &route, &path),
        Route::Unknown => error_response(&ApiError::unknown_path()),
    }
}

fn public_response(state: &AppState, route: &Route, path: &str) -> Response<Body> {
    match route {
        Route::Version => json_response(200, &discovery::version(state.version_minor)),
        _ => {
            let mut r = Response::new(full("ok"));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            let _ = path;
            r
        }
    }
}

fn discovery_response(state: &AppState, route: Route, accept: &str) -> Response<Body> {
    let registry = &state.api.registry;
    if route == Route::OpenApiV2 {
        return openapi_v2_response(state, accept);
    }
    let aggregated = discovery::wants_aggregated(accept);
    let doc = match route {
        Route::Api if aggregated => Some(discovery::aggregated(registry, true)),
        Route::Apis if aggregated => Some(discovery::aggregated(registry, false)),
        Route::Api => Some(discovery::api_versions()),
        Route::Apis => Some(discovery::api_group_list(registry)),
        Route::Group(g) => discovery::api_group(registry, &g),
        Route::Resources(g, v) => discovery::resource_list(registry, &g, &v),
        Route::OpenApiV3Index => Some(discovery::openapi_v3_index(registry)),
        Route::OpenApiV3(p) => discovery::openapi_v3_group(registry, &p),
        _ => None,
    };
    match doc {
        None => error_response(&ApiError::unknown_path()),
        Some(doc) => {
            let mut r = json_response(200, &doc);
            if aggregated && doc["kind"] == "APIGroupDiscoveryList" {
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
                );
            }
            r
        }
    }
}

/// `/openapi/v2`: protobuf when asked for it (kubectl 1.27 and 1.28 do),
/// JSON otherwise.
fn openapi_v2_response(state: &AppState, accept: &str) -> Response<Body> {
    use discovery::openapi_v2;
    let (registry, minor) = (&state.api.registry, state.version_minor);
    if !openapi_v2::wants_protobuf(accept) {
        return json_response(200, &openapi_v2::document(registry, minor));
    }
    let mut r = Response::new(full(openapi_v2::protobuf(registry, minor)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(openapi_v2::PROTOBUF_CONTENT_TYPE),
    );
    r
}

/// Where the server listens, for logs and kubeconfigs.
pub fn url_of(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

/// Runs every decoder a request meets — path routing, query parameters,
/// selectors, JSON and YAML bodies, and the four patch types against a
/// live object — on arbitrary bytes. The fuzz target and a property test
/// call it: whatever the input, it must return, never panic.
pub fn exercise_decoders(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let path = parts.next().unwrap_or_default();
    let query = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().as_bytes();
    let _ = route(path);
    let params = Params::parse(query);
    let _ = LabelSelector::parse(params.get("labelSelector").unwrap_or(query));
    let _ = FieldSelector::parse(params.get("fieldSelector").unwrap_or(query));
    let _ = rendering(query);
    let _ = discovery::wants_aggregated(query);
    let live = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "n", "finalizers": ["a"], "labels": {"x": "y"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "1"}]}]}}}
    });
    let keys = crate::merge_keys::BuiltinMergeKeys::for_kind("apps", "Deployment");
    for yaml in [false, true] {
        if let Ok(doc) = api::parse_body(body, yaml) {
            let mut t = live.clone();
            crate::patch::merge_patch(&mut t, &doc);
            let mut t = live.clone();
            let _ = crate::patch::json_patch(&mut t, &doc);
            let mut t = live.clone();
            let _ = crate::patch::strategic_merge_patch(&mut t, &doc, &keys);
            let _ = crate::apply::apply(&crate::apply::ApplyRequest {
                live: Some(&live),
                applied: &doc,
                manager: "fuzz",
                force: false,
                subresource: None,
                now: "2026-01-01T00:00:00Z",
                keys: &keys,
            });
        }
    }
}

#[cfg(test)]
mod tests;
