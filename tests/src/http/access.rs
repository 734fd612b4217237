//! Who is asking and whether they may: client certificates and bearer
//! tokens (signed service-account tokens, good only while their account
//! exists), RBAC over the store's roles and bindings, and the review and
//! TokenRequest endpoints that answer such questions without storing anything.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use super::AppState;
use crate::api::Target;
use crate::auth::{Claims, PeerCert, User};
use crate::meta;
use crate::rbac::{self, Attributes, UserInfo};
use crate::status::ApiError;

/// Who sent the request, as kube-apiserver's authenticators decide: a front proxy's
/// headers, a bearer token, a client certificate, or nobody. A certificate that no
/// authenticator accepts is refused (401), as upstream does.
pub(super) fn authenticate(
    state: &AppState,
    peer: PeerCert,
    authorization: &str,
    headers: &hyper::HeaderMap,
) -> Result<Option<User>, ApiError> {
    if peer.front_proxy
        && let Some(user) = state
            .request_header
            .as_ref()
            .and_then(|rh| rh.user(headers))
    {
        return Ok(Some(user));
    }
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
    match peer.user {
        Some(user) => Ok(Some(user)),
        None if peer.presented => Err(ApiError::unauthorized()),
        None => Ok(None),
    }
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

pub(super) fn user_info(user: &User) -> UserInfo {
    UserInfo {
        name: user.name.clone(),
        groups: user.groups.clone(),
    }
}

pub(super) fn allowed(state: &AppState, user: &User, attrs: &Attributes) -> bool {
    user.is_master() || rbac::authorize(&user_info(user), attrs, &*state.api.store)
}

pub(super) fn verb_of(method: &Method, has_name: bool, watch: bool) -> &'static str {
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

/// SelfSubjectAccessReview, SelfSubjectRulesReview, SelfSubjectReview,
/// SubjectAccessReview and TokenReview: answered, never stored.
pub(super) fn review(
    state: &AppState,
    user: &User,
    target: &Target,
    body: Value,
) -> Result<Value, ApiError> {
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
                    ..User::default()
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
            out["status"] = rbac::rules_review(&user_info(user), &ns, &*state.api.store);
        }
        "selfsubjectreviews" => {
            let mut info = json!({"username": user.name, "groups": user.groups});
            if let Some(uid) = &user.uid {
                info["uid"] = json!(uid);
            }
            if !user.extra.is_empty() {
                info["extra"] = json!(user.extra);
            }
            out["status"] = json!({ "userInfo": info });
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
pub(super) fn token_request(
    state: &AppState,
    target: &Target,
    body: Value,
) -> Result<Value, ApiError> {
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
