//! Push webhooks (`--webhook-addr`): a verified call triggers an immediate
//! fetch. The payload is only a hint; what to apply always comes from the
//! fetch, so a forged branch name in a body can do nothing.
//!
//! Accepted: GitHub's `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 of the
//! body with the secret) and GitLab's `X-Gitlab-Token: <secret>`, both
//! compared in constant time. Anything else is refused with 401 and logged
//! (never with the secret or the offered token).

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::{constant_time, digest, hmac};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use tokio::sync::Notify;

use kubeflex_operator::endpoints::{Body, text};

/// Largest payload read; GitHub caps deliveries at 25 MiB but push payloads
/// are far smaller, and the body is only a hint.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Which forge signed the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
}

/// Why a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no X-Hub-Signature-256 or X-Gitlab-Token header")]
    Unsigned,
    #[error("malformed X-Hub-Signature-256 header")]
    Malformed,
    #[error("signature does not match")]
    BadSignature,
    #[error("token does not match")]
    BadToken,
}

/// The webhook secret. Debug never shows it.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self(Arc::from(secret.as_ref()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Checks a call's headers against the secret.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &Secret) -> Result<Provider, Refusal> {
    if let Some(signature) = headers.get("x-hub-signature-256") {
        let hex = signature
            .to_str()
            .ok()
            .and_then(|s| s.trim().strip_prefix("sha256="))
            .ok_or(Refusal::Malformed)?;
        let tag = decode_hex(hex).ok_or(Refusal::Malformed)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret.0);
        return hmac::verify(&key, body, &tag)
            .map(|()| Provider::GitHub)
            .map_err(|_| Refusal::BadSignature);
    }
    if let Some(token) = headers.get("x-gitlab-token") {
        // Compare digests so that neither the length nor a prefix of the
        // secret leaks through timing.
        let offered = digest::digest(&digest::SHA256, token.as_bytes());
        let expected = digest::digest(&digest::SHA256, &secret.0);
        return constant_time::verify_slices_are_equal(offered.as_ref(), expected.as_ref())
            .map(|()| Provider::GitLab)
            .map_err(|_| Refusal::BadToken);
    }
    Err(Refusal::Unsigned)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// `X-Hub-Signature-256` value for `body` (for tests and tools).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Handles one webhook call: 202 and a trigger when verified.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    secret: Secret,
    trigger: Arc<Notify>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Response<Body> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n"),
    };
    match verify(&parts.headers, &body, &secret) {
        Ok(provider) => {
            let event = parts
                .headers
                .get("x-github-event")
                .or_else(|| parts.headers.get("x-gitlab-event"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info!(%peer, ?provider, event, "webhook accepted; fetching now");
            metrics.webhook("accepted");
            trigger.notify_one();
            text(StatusCode::ACCEPTED, "fetch triggered\n")
        }
        Err(refusal) => {
            tracing::warn!(%peer, reason = %refusal, "webhook refused");
            metrics.webhook("refused");
            text(StatusCode::UNAUTHORIZED, format!("{refusal}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const SECRET: &[u8] = b"s3cr3t";
    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn github_signature_is_verified() {
        let secret = Secret::new(SECRET);
        let sig = github_signature(SECRET, BODY);
        let h = headers("x-hub-signature-256", &sig);
        assert_eq!(verify(&h, BODY, &secret), Ok(Provider::GitHub));
        // The body was tampered with.
        assert_eq!(verify(&h, b"{}", &secret), Err(Refusal::BadSignature));
        // Signed with another secret.
        let other = headers("x-hub-signature-256", &github_signature(b"other", BODY));
        assert_eq!(verify(&other, BODY, &secret), Err(Refusal::BadSignature));
    }

    #[test]
    fn known_github_vector() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let secret = Secret::new("It's a Secret to Everybody");
        let h = headers(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        );
        assert_eq!(verify(&h, b"Hello, World!", &secret), Ok(Provider::GitHub));
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let secret = Secret::new(SECRET);
        for bad in ["sha1=abcd", "sha256=zz", "sha256=abc", ""] {
            let h = headers("x-hub-signature-256", bad);
            assert_eq!(verify(&h, BODY, &secret), Err(Refusal::Malformed), "{bad}");
        }
    }

    #[test]
    fn gitlab_token_is_compared() {
        let secret = Secret::new(SECRET);
        let good = headers("x-gitlab-token", "s3cr3t");
        assert_eq!(verify(&good, BODY, &secret), Ok(Provider::GitLab));
        for bad in ["s3cr3", "s3cr3t!", ""] {
            let h = headers("x-gitlab-token", bad);
            assert_eq!(verify(&h, BODY, &secret), Err(Refusal::BadToken));
        }
    }

    #[test]
    fn unsigned_calls_are_refused() {
        let secret = Secret::new(SECRET);
        assert_eq!(
            verify(&HeaderMap::new(), BODY, &secret),
            Err(Refusal::Unsigned)
        );
    }

    #[test]
    fn the_secret_is_never_printed() {
        assert_eq!(format!("{:?}", Secret::new(SECRET)), "Secret(<redacted>)");
    }
}
