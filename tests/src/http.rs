//! The HTTPS front: TLS with optional client certificates, authentication,
//! routing of Kubernetes API paths, RBAC authorization, and JSON / Table /
//! metadata-only / watch-stream responses. HTTP/1.1 only, as kube-rs uses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, Api, MAX_BODY, Params, Target, Writer};
use crate::auth::{Claims, TokenSigner, User};
use crate::discovery;
use crate::meta;
use crate::rbac::{self, Attributes, RbacSource, UserInfo};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::Store;
use crate::table;
use crate::watch::{self, WatchRequest};

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
            let cert_user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|c| User::from_certificate(c.as_ref()));
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let cert_user = cert_user.clone();
                async move { Ok::<_, Infallible>(handle(state, cert_user, req).await) }
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
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        _ => Route::Unknown,
    }
}

/// RBAC objects straight from the store.
struct StoreRbac<'a>(&'a Store);

impl RbacSource for StoreRbac<'_> {
    fn cluster_roles(&self) -> Vec<Value> {
        let (mut items, _) = self
            .0
            .list("rbac.authorization.k8s.io/clusterroles", None, None);
        let mut out: Vec<Value> = items.drain(..).map(|o| (*o).clone()).collect();
        out.extend(rbac::bootstrap_cluster_roles());
        out
    }
    fn cluster_role_bindings(&self) -> Vec<Value> {
        let (items, _) = self
            .0
            .list("rbac.authorization.k8s.io/clusterrolebindings", None, None);
        let mut out: Vec<Value> = items.iter().map(|o| (**o).clone()).collect();
        out.extend(rbac::bootstrap_cluster_role_bindings());
        out
    }
    fn roles(&self, namespace: &str) -> Vec<Value> {
        let (items, _) = self
            .0
            .list("rbac.authorization.k8s.io/roles", Some(namespace), None);
        items.iter().map(|o| (**o).clone()).collect()
    }
    fn role_bindings(&self, namespace: &str) -> Vec<Value> {
        let (items, _) = self.0.list(
            "rbac.authorization.k8s.io/rolebindings",
            Some(namespace),
            None,
        );
        items.iter().map(|o| (**o).clone()).collect()
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Who sent the request: certificate, bearer token, or nobody.
fn authenticate(
    state: &AppState,
    cert_user: Option<User>,
    authorization: &str,
) -> Result<Option<User>, ApiError> {
    if let Some(token) = authorization.strip_prefix("Bearer ").map(str::trim) {
        let claims = state
            .signer
            .verify(token)
            .ok_or_else(ApiError::unauthorized)?;
        check_token(state, &claims)?;
        return Ok(Some(User::service_account(
            &claims.namespace,
            &claims.service_account,
        )));
    }
    Ok(cert_user)
}

/// A signed token is only good while it has not expired and its account
/// (and, for legacy tokens, its Secret) still exists.
fn check_token(state: &AppState, claims: &Claims) -> Result<(), ApiError> {
    let now = meta::parse_rfc3339(&meta::now()).unwrap_or(0);
    if claims.expires.is_some_and(|exp| exp <= now) {
        return Err(ApiError::unauthorized());
    }
    let store = &state.api.store;
    let sa = store
        .get(
            "/serviceaccounts",
            &claims.namespace,
            &claims.service_account,
        )
        .ok_or_else(ApiError::unauthorized)?;
    if !claims.service_account_uid.is_empty()
        && sa["metadata"]["uid"].as_str() != Some(claims.service_account_uid.as_str())
    {
        return Err(ApiError::unauthorized());
    }
    if let Some(secret) = &claims.secret
        && store.get("/secrets", &claims.namespace, secret).is_none()
    {
        return Err(ApiError::unauthorized());
    }
    Ok(())
}

fn user_info(user: &User) -> UserInfo {
    UserInfo {
        name: user.name.clone(),
        groups: user.groups.clone(),
    }
}

fn allowed(state: &AppState, user: &User, attrs: &Attributes) -> bool {
    user.is_master() || rbac::authorize(&user_info(user), attrs, &StoreRbac(&state.api.store))
}

fn verb_of(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if has_name => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
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

async fn handle(
    state: Arc<AppState>,
    cert_user: Option<User>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let params = Params::parse(req.uri().query().unwrap_or_default());
    let route = route(&path);
    let user = match authenticate(&state, cert_user, header(&req, "authorization")) {
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

/// The field manager of a non-apply write: `fieldManager`, else the
/// User-Agent's program name, as kube-apiserver derives it.
fn writer_for(params: &Params, user_agent: &str) -> Writer {
    let manager = params
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .map(String::from)
        .unwrap_or_else(|| {
            let prefix = user_agent.split('/').next().unwrap_or_default();
            if prefix.is_empty() {
                "unknown".into()
            } else {
                prefix.chars().take(128).collect()
            }
        });
    Writer { manager }
}

#[derive(PartialEq)]
enum Rendering {
    Plain,
    Table,
    Metadata,
}

fn rendering(accept: &str) -> Rendering {
    let first_supported = accept.split(',').find(|part| {
        let p = part.replace(' ', "");
        p.starts_with("application/json") || p.starts_with("*/*") || p.is_empty()
    });
    match first_supported {
        Some(p) if p.contains("as=Table") => Rendering::Table,
        Some(p) if p.contains("as=PartialObjectMetadata") => Rendering::Metadata,
        _ => Rendering::Plain,
    }
}

fn metadata_only(obj: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

fn render(target: &Target, value: Value, how: &Rendering, params: &Params) -> Value {
    let is_list = value.get("items").is_some() && target.name.is_none();
    match how {
        Rendering::Plain => value,
        Rendering::Metadata if is_list => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": value["metadata"],
            "items": value["items"].as_array().map(|a| a.iter().map(metadata_only).collect::<Vec<_>>()).unwrap_or_default(),
        }),
        Rendering::Metadata => metadata_only(&value),
        Rendering::Table => {
            let objects: Vec<Value> = if is_list {
                value["items"].as_array().cloned().unwrap_or_default()
            } else {
                vec![value.clone()]
            };
            let include = params.get("includeObject").unwrap_or("Metadata");
            let list_meta = if is_list {
                value["metadata"].clone()
            } else {
                json!({"resourceVersion": value["metadata"]["resourceVersion"]})
            };
            match &target.rt.crd_version {
                Some(version) => {
                    table::build_table(&table::crd_columns(version), &objects, list_meta, include)
                }
                None => table::build_builtin_table(
                    &target.rt.group,
                    &target.rt.kind,
                    &objects,
                    list_meta,
                    include,
                    std::time::SystemTime::now(),
                ),
            }
        }
    }
}

async fn object_request(
    state: &AppState,
    user: &User,
    target: Target,
    verb: &str,
    params: Params,
    accept: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let api = &state.api;
    let content_type = header(&req, "content-type").to_string();
    let writer = writer_for(&params, header(&req, "user-agent"));
    let how = rendering(accept);
    if target.rt.verbs == ["create"] {
        if verb != "create" {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let body = api::parse_body(
            &read_body(req.into_body()).await?,
            content_type.contains("yaml"),
        )?;
        return Ok(json_response(201, &review(state, user, &target, body)?));
    }
    if let Some(sub) = target.subresource.as_deref()
        && sub != "status"
    {
        return match (target.rt.plural.as_str(), sub, verb) {
            ("serviceaccounts", "token", "create") => {
                let body = api::parse_body(&read_body(req.into_body()).await?, false)?;
                Ok(json_response(201, &token_request(state, &target, body)?))
            }
            (
                "deployments" | "statefulsets" | "replicasets",
                "scale",
                "get" | "update" | "patch",
            ) => {
                let body = read_body(req.into_body()).await?;
                Ok(json_response(
                    200,
                    &scale(api, &target, verb, &body, &content_type, &params, &writer)?,
                ))
            }
            ("namespaces", "finalize", "update") => {
                let body = api::parse_body(&read_body(req.into_body()).await?, false)?;
                let t = Target {
                    subresource: None,
                    ..target
                };
                let (code, obj) = api.update(&t, body, &params, &writer)?;
                Ok(json_response(code, &obj))
            }
            _ => Err(ApiError::unknown_path()),
        };
    }
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return Err(ApiError::unsupported_media_type(&content_type));
    }
    let (code, value) = match verb {
        "get" => (200, api.get(&target)?),
        "list" if how == Rendering::Plain => {
            let body = api.list_json(&target, &params)?;
            let mut r = Response::new(full(body));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            return Ok(r);
        }
        "list" => (200, api.list(&target, &params)?),
        "watch" => return watch_response(state, target, &params, &how),
        "create" => {
            if target.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let body = api::parse_body(
                &read_body(req.into_body()).await?,
                content_type.contains("yaml"),
            )?;
            api.create(&target, body, &params, &writer)?
        }
        "update" => {
            let body = api::parse_body(
                &read_body(req.into_body()).await?,
                content_type.contains("yaml"),
            )?;
            api.update(&target, body, &params, &writer)?
        }
        "patch" => {
            let body = read_body(req.into_body()).await?;
            api.patch(&target, &body, &content_type, &params, &writer)?
        }
        "delete" => {
            let body = read_body(req.into_body()).await?;
            let options = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                api::parse_body(&body, false)?
            };
            api.delete(&target, &options, &params)?
        }
        "deletecollection" => {
            let body = read_body(req.into_body()).await?;
            let options = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                api::parse_body(&body, false)?
            };
            api.delete_collection(&target, &options, &params)?
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let value = if matches!(verb, "get" | "list") {
        render(&target, value, &how, &params)
    } else {
        value
    };
    Ok(json_response(code, &value))
}

fn watch_response(
    state: &AppState,
    target: Target,
    params: &Params,
    how: &Rendering,
) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(params.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let mut fields = FieldSelector::parse(params.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    if let Some(name) = &target.name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"))
            .map_err(ApiError::bad_request)?;
    }
    let resource_version = match params.get("resourceVersion").unwrap_or_default() {
        "" | "0" => None,
        rv => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let send_initial_events = params.flag("sendInitialEvents");
    let bookmarks = params.flag("allowWatchBookmarks");
    if send_initial_events && !bookmarks {
        return Err(ApiError::invalid(
            &target.rt,
            "",
            vec![(
                "FieldValueForbidden".into(),
                "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true".into(),
                "allowWatchBookmarks".into(),
            )],
        ));
    }
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs)
        // Kubernetes picks a random 30-60 min when the client sets none.
        .unwrap_or(Duration::from_secs(1800));
    let rx = watch::start(
        &state.api.store,
        WatchRequest {
            namespace: (!target.namespace.is_empty()).then(|| target.namespace.clone()),
            rt: target.rt,
            labels,
            fields,
            resource_version,
            send_initial_events,
            bookmarks,
            timeout,
            metadata_only: *how == Rendering::Metadata,
        },
    );
    let stream = StreamExt::map(tokio_stream_from(rx), |b| {
        Ok::<_, Infallible>(Frame::data(b))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        hyper::header::TRANSFER_ENCODING,
        hyper::header::HeaderValue::from_static("chunked"),
    );
    Ok(r)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The `scale` subresource (autoscaling/v1 Scale) of workloads.
fn scale(
    api: &Api,
    target: &Target,
    verb: &str,
    body: &[u8],
    content_type: &str,
    params: &Params,
    writer: &Writer,
) -> Result<Value, ApiError> {
    let main = Target {
        subresource: None,
        ..target.clone()
    };
    let as_scale = |obj: &Value| {
        let selector = obj["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"]["namespace"],
                "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
                "creationTimestamp": obj["metadata"]["creationTimestamp"],
            },
            "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
            "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
        })
    };
    let current = api.get(&main)?;
    if verb == "get" {
        return Ok(as_scale(&current));
    }
    let mut desired = as_scale(&current);
    if verb == "update" {
        desired = api::parse_body(body, false)?;
    } else {
        let doc = api::parse_body(body, content_type.contains("yaml"))?;
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => crate::patch::json_patch(&mut desired, &doc)
                .map_err(|e| ApiError::new(e.http_code(), e.reason(), e.to_string()))?,
            _ => crate::patch::merge_patch(&mut desired, &doc),
        }
    }
    let replicas = desired["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("Scale spec.replicas must be an integer"))?;
    let patch = json!({"spec": {"replicas": replicas}});
    let (_, updated) = api.patch(
        &main,
        patch.to_string().as_bytes(),
        "application/merge-patch+json",
        params,
        writer,
    )?;
    Ok(as_scale(&updated))
}

/// SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview,
/// SubjectAccessReview and TokenReview: answered, never stored.
fn review(state: &AppState, user: &User, target: &Target, body: Value) -> Result<Value, ApiError> {
    let mut out = body;
    out["apiVersion"] = json!(target.rt.api_version());
    out["kind"] = json!(target.rt.kind);
    match target.rt.plural.as_str() {
        "selfsubjectaccessreviews" | "subjectaccessreviews" => {
            let spec = &out["spec"];
            let (who, ra, nra) = if target.rt.plural == "subjectaccessreviews" {
                let who = User {
                    name: spec["user"].as_str().unwrap_or_default().to_string(),
                    groups: spec["groups"]
                        .as_array()
                        .map(|g| {
                            g.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                (
                    who,
                    spec["resourceAttributes"].clone(),
                    spec["nonResourceAttributes"].clone(),
                )
            } else {
                (
                    user.clone(),
                    spec["resourceAttributes"].clone(),
                    spec["nonResourceAttributes"].clone(),
                )
            };
            let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
            let attrs = if ra.is_object() {
                Attributes {
                    verb: s(&ra, "verb"),
                    api_group: s(&ra, "group"),
                    resource: s(&ra, "resource"),
                    subresource: s(&ra, "subresource"),
                    name: s(&ra, "name"),
                    namespace: s(&ra, "namespace"),
                    path: String::new(),
                    resource_request: true,
                }
            } else {
                Attributes {
                    verb: s(&nra, "verb"),
                    path: s(&nra, "path"),
                    resource_request: false,
                    ..Attributes::default()
                }
            };
            let ok = allowed(state, &who, &attrs);
            out["status"] = if ok {
                json!({"allowed": true, "reason": "allowed by RBAC"})
            } else {
                json!({"allowed": false})
            };
        }
        "selfsubjectrulesreviews" => {
            let ns = out["spec"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            out["status"] = rbac::rules_review(&user_info(user), &ns, &StoreRbac(&state.api.store));
        }
        "selfsubjectreviews" => {
            out["status"] = json!({"userInfo": {"username": user.name, "groups": user.groups}});
        }
        "tokenreviews" => {
            let token = out["spec"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            out["status"] = match state
                .signer
                .verify(&token)
                .filter(|c| check_token(state, c).is_ok())
            {
                Some(c) => {
                    let u = User::service_account(&c.namespace, &c.service_account);
                    json!({"authenticated": true, "user": {"username": u.name, "groups": u.groups}})
                }
                None => json!({"authenticated": false}),
            };
        }
        _ => return Err(ApiError::unknown_path()),
    }
    Ok(out)
}

/// `serviceaccounts/NAME/token`: mints a token for an existing account.
fn token_request(state: &AppState, target: &Target, body: Value) -> Result<Value, ApiError> {
    let name = target.name.clone().unwrap_or_default();
    let sa = state
        .api
        .store
        .get("/serviceaccounts", &target.namespace, &name)
        .ok_or_else(|| ApiError::not_found(&target.rt, &name))?;
    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    if seconds < state.min_token_seconds {
        let rt = crate::resources::ResourceType {
            group: "authentication.k8s.io".into(),
            kind: "TokenRequest".into(),
            ..target.rt.clone()
        };
        return Err(ApiError::invalid(
            &rt,
            &name,
            vec![(
                "FieldValueInvalid".into(),
                format!(
                    "Invalid value: {seconds}: may not specify a duration less than {} seconds",
                    state.min_token_seconds
                ),
                "spec.expirationSeconds".into(),
            )],
        ));
    }
    let now = meta::parse_rfc3339(&meta::now()).unwrap_or(0);
    let expires = now + seconds;
    let token = state.signer.mint(&Claims {
        namespace: target.namespace.clone(),
        service_account: name,
        service_account_uid: sa["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        expires: Some(expires),
        secret: None,
    });
    let expiration =
        meta::rfc3339(std::time::UNIX_EPOCH + Duration::from_secs(expires.max(0) as u64));
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": target.name, "namespace": target.namespace, "creationTimestamp": null},
        "spec": {"audiences": body["spec"]["audiences"].as_array().cloned().unwrap_or_else(|| vec![json!("https://kubernetes.default.svc.cluster.local")]), "expirationSeconds": seconds, "boundObjectRef": body["spec"]["boundObjectRef"]},
        "status": {"token": token, "expirationTimestamp": expiration},
    }))
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
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/version"), Route::Version);
        assert_eq!(
            route("/apis/apps/v1"),
            Route::Resources("apps".into(), "v1".into())
        );
        assert_eq!(
            route("/api/v1/namespaces/d/configmaps/x"),
            Route::Object {
                group: "".into(),
                version: "v1".into(),
                namespace: Some("d".into()),
                plural: "configmaps".into(),
                name: Some("x".into()),
                sub: None
            }
        );
        assert_eq!(
            route("/api/v1/namespaces/d"),
            Route::Object {
                group: "".into(),
                version: "v1".into(),
                namespace: None,
                plural: "namespaces".into(),
                name: Some("d".into()),
                sub: None
            }
        );
        assert_eq!(
            route("/api/v1/namespaces/d/finalize"),
            Route::Object {
                group: "".into(),
                version: "v1".into(),
                namespace: None,
                plural: "namespaces".into(),
                name: Some("d".into()),
                sub: Some("finalize".into())
            }
        );
        assert_eq!(
            route("/apis/x.io/v1/widgets/w/status"),
            Route::Object {
                group: "x.io".into(),
                version: "v1".into(),
                namespace: None,
                plural: "widgets".into(),
                name: Some("w".into()),
                sub: Some("status".into())
            }
        );
        assert_eq!(route("/nope"), Route::Unknown);
    }

    #[test]
    fn renderings() {
        assert!(
            rendering("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
                == Rendering::Table
        );
        assert!(
            rendering("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
                == Rendering::Metadata
        );
        assert!(rendering("") == Rendering::Plain);
    }
}
