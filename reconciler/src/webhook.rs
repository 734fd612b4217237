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

/// The secrets of both forges: GitHub's HMAC key and GitLab's token may
/// differ (`--github-webhook-secret-file`, `--gitlab-webhook-secret-file`;
/// `--webhook-secret-file` is the default of both).
#[derive(Clone, Debug)]
pub struct Secrets {
    pub github: Secret,
    pub gitlab: Secret,
}

impl Secret {
    /// `None` for an empty secret, which would accept forged calls.
    pub fn non_empty(secret: impl AsRef<[u8]>) -> Option<Self> {
        let secret = secret.as_ref();
        (!secret.is_empty()).then(|| Self::new(secret))
    }
}

/// Checks a call's headers against the secret.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &Secret) -> Result<Provider, Refusal> {
    let both = Secrets {
        github: secret.clone(),
        gitlab: secret.clone(),
    };
    verify_with(headers, body, &both)
}

/// What the headers alone decide: a GitLab call is verified (its token is
/// a header), a call with neither header refused, a GitHub call needs its
/// body. So no unauthenticated caller makes the receiver buffer a body.
pub fn verify_headers(headers: &HeaderMap, secrets: &Secrets) -> Result<Option<Provider>, Refusal> {
    if headers.contains_key("x-hub-signature-256") {
        return Ok(None);
    }
    verify_with(headers, &[], secrets).map(Some)
}

/// Checks a call's headers (and body, for GitHub) against the secrets.
pub fn verify_with(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &Secrets,
) -> Result<Provider, Refusal> {
    if let Some(signature) = headers.get("x-hub-signature-256") {
        let secret = &secrets.github;
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
        let secret = &secrets.gitlab;
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

/// Calls handled at once; more are refused with 503 (forges retry).
const MAX_IN_FLIGHT: usize = 16;
/// Time allowed to send the body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Time allowed to send a request's headers (also how long an idle
/// keep-alive connection stays open).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Connections open at once (see [`serve`]).
pub const MAX_CONNECTIONS: usize = 64;
/// Delivery ids remembered to drop redeliveries.
const SEEN_DELIVERIES: usize = 1024;

/// The receiver's state: secrets, the ref followed, recent deliveries.
pub struct Webhook {
    pub secrets: Secrets,
    /// `--ref` (`None`: the remote's default branch).
    pub reference: Option<String>,
    pub trigger: Arc<Notify>,
    pub metrics: Arc<crate::metrics::Metrics>,
    in_flight: tokio::sync::Semaphore,
    seen: std::sync::Mutex<std::collections::VecDeque<String>>,
}

impl Webhook {
    pub fn new(
        secrets: Secrets,
        reference: Option<String>,
        trigger: Arc<Notify>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            secrets,
            reference,
            trigger,
            metrics,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            seen: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Whether a push to `pushed` (a full ref) concerns the followed ref;
    /// `default` is the repository's default branch when the payload names it.
    pub fn follows(&self, pushed: &str, default: Option<&str>) -> bool {
        let branch = pushed
            .strip_prefix("refs/heads/")
            .or_else(|| pushed.strip_prefix("refs/tags/"));
        match (&self.reference, default) {
            (Some(r), _) => pushed == r || branch == Some(r.as_str()),
            (None, Some(default)) => branch == Some(default),
            // Unknown default branch: fetch, the fetch decides.
            (None, None) => true,
        }
    }

    /// Records a delivery id; false when it was seen before.
    fn first_delivery(&self, id: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.iter().any(|s| s == id) {
            return false;
        }
        if seen.len() >= SEEN_DELIVERIES {
            seen.pop_front();
        }
        seen.push_back(id.to_owned());
        true
    }
}

/// One open connection, as [`serve`] tracks it.
struct Conn {
    id: u64,
    /// Inside a request (its headers are in): not to be closed for a
    /// newcomer.
    busy: Arc<std::sync::atomic::AtomicBool>,
    close: Arc<Notify>,
}

/// Open connections, oldest first.
#[derive(Default)]
struct Conns {
    next: u64,
    open: std::collections::VecDeque<Conn>,
}

impl Conns {
    /// Makes room for one more connection: below the cap, nothing to do;
    /// at the cap, the oldest connection still waiting for a request's
    /// headers is closed. False when every connection is inside a request.
    fn make_room(&mut self, cap: usize) -> bool {
        use std::sync::atomic::Ordering;
        if self.open.len() < cap {
            return true;
        }
        match self
            .open
            .iter()
            .position(|c| !c.busy.load(Ordering::Acquire))
        {
            Some(i) => {
                if let Some(idle) = self.open.remove(i) {
                    idle.close.notify_one();
                }
                true
            }
            None => false,
        }
    }
}

/// Serves the webhook on `listener` until the task is dropped, hardened
/// against clients that connect and then send slowly or nothing:
/// - headers must arrive within [`HEADER_TIMEOUT`] (hyper closes the
///   connection otherwise, idle keep-alive connections included), and a
///   body within [`BODY_TIMEOUT`] (see [`handle`]);
/// - at most `max_connections` ([`MAX_CONNECTIONS`]) are open at once. The
///   next one is accepted by closing the oldest connection that has not
///   sent a request's headers yet, so connections held open by a
///   slow-loris client make way for a real delivery, whose headers come at
///   once. When every open connection is inside a request, the newcomer is
///   answered 503 with `Retry-After` and closed (forges redeliver).
pub async fn serve(listener: tokio::net::TcpListener, hook: Arc<Webhook>, max_connections: usize) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt as _;

    // Every update of the list is a single queue operation: a poisoned
    // lock still holds a whole list.
    let conns = Arc::new(std::sync::Mutex::new(Conns::default()));
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a webhook connection failed");
                continue;
            }
        };
        let busy = Arc::new(AtomicBool::new(false));
        let close = Arc::new(Notify::new());
        let id = {
            let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
            if !c.make_room(max_connections) {
                drop(c);
                hook.metrics.webhook("busy");
                tokio::spawn(async move {
                    let _ = stream
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                });
                tracing::warn!(%peer, "webhook connection refused: every connection is busy");
                continue;
            }
            c.next += 1;
            let id = c.next;
            c.open.push_back(Conn {
                id,
                busy: busy.clone(),
                close: close.clone(),
            });
            id
        };
        let (hook, conns) = (hook.clone(), conns.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn({
                let hook = hook.clone();
                let busy = busy.clone();
                move |req| {
                    let (hook, busy) = (hook.clone(), busy.clone());
                    async move {
                        busy.store(true, Ordering::Release);
                        let response = handle(req, peer, hook).await;
                        busy.store(false, Ordering::Release);
                        Ok::<_, std::convert::Infallible>(response)
                    }
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
                    }
                }
                () = close.notified() => {
                    tracing::info!(%peer, "webhook connection closed to make room: no request headers yet");
                }
            }
            let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
            c.open.retain(|c| c.id != id);
        });
    }
}

/// Handles one webhook call: 202 and a trigger when verified.
pub async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    hook: Arc<Webhook>,
) -> Response<Body> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let Ok(_permit) = hook.in_flight.try_acquire() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "busy; retry later\n");
    };
    let (parts, body) = req.into_parts();
    let refuse = |refusal: Refusal| {
        tracing::warn!(%peer, reason = %refusal, "webhook refused");
        hook.metrics.webhook("refused");
        text(StatusCode::UNAUTHORIZED, format!("{refusal}\n"))
    };
    // Headers first: nothing unauthenticated is buffered.
    let early = match verify_headers(&parts.headers, &hook.secrets) {
        Ok(early) => early,
        Err(refusal) => return refuse(refusal),
    };
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect());
    let body = match read.await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "payload too large\n"),
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "body not sent in time\n"),
    };
    let provider = match early {
        Some(provider) => provider,
        None => match verify_with(&parts.headers, &body, &hook.secrets) {
            Ok(provider) => provider,
            Err(refusal) => return refuse(refusal),
        },
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let event = header("x-github-event")
        .or_else(|| header("x-gitlab-event"))
        .unwrap_or("");
    if let Some(id) = header("x-github-delivery").or_else(|| header("x-gitlab-event-uuid"))
        && !hook.first_delivery(id)
    {
        tracing::info!(%peer, delivery = id, "webhook redelivered; already handled");
        hook.metrics.webhook("duplicate");
        return text(StatusCode::OK, "duplicate delivery\n");
    }
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(pushed) = payload.get("ref").and_then(|r| r.as_str()) {
        let default = payload
            .pointer("/repository/default_branch")
            .or_else(|| payload.pointer("/project/default_branch"))
            .and_then(|d| d.as_str());
        if !hook.follows(pushed, default) {
            tracing::info!(%peer, pushed, "webhook for another ref; no pass");
            hook.metrics.webhook("ignored");
            return text(
                StatusCode::ACCEPTED,
                "push to a ref not followed; ignored\n",
            );
        }
    }
    tracing::info!(%peer, ?provider, event, "webhook accepted; fetching now");
    hook.metrics.webhook("accepted");
    hook.trigger.notify_one();
    text(StatusCode::ACCEPTED, "fetch triggered\n")
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
    fn empty_secrets_are_refused_and_refs_filtered() {
        assert!(Secret::non_empty("").is_none());
        let s = Secret::new("x");
        let hook = |reference: Option<&str>| {
            Webhook::new(
                Secrets {
                    github: s.clone(),
                    gitlab: s.clone(),
                },
                reference.map(str::to_owned),
                Arc::new(Notify::new()),
                Arc::new(crate::metrics::Metrics::default()),
            )
        };
        let main = hook(Some("main"));
        assert!(main.follows("refs/heads/main", None));
        assert!(!main.follows("refs/heads/feature", Some("main")));
        let default = hook(None);
        assert!(default.follows("refs/heads/trunk", Some("trunk")));
        assert!(!default.follows("refs/heads/x", Some("trunk")));
        assert!(main.first_delivery("d1"));
        assert!(!main.first_delivery("d1"));
    }

    #[test]
    fn separate_secrets_per_forge_and_headers_first() {
        let secrets = Secrets {
            github: Secret::new("gh"),
            gitlab: Secret::new("gl"),
        };
        assert_eq!(
            verify_headers(&headers("x-gitlab-token", "gl"), &secrets),
            Ok(Some(Provider::GitLab))
        );
        assert_eq!(
            verify_headers(&headers("x-gitlab-token", "gh"), &secrets),
            Err(Refusal::BadToken)
        );
        assert_eq!(
            verify_headers(&HeaderMap::new(), &secrets),
            Err(Refusal::Unsigned)
        );
        let sig = github_signature(b"gh", b"{}");
        assert_eq!(
            verify_with(&headers("x-hub-signature-256", &sig), b"{}", &secrets),
            Ok(Provider::GitHub)
        );
    }

    #[test]
    fn the_secret_is_never_printed() {
        assert_eq!(format!("{:?}", Secret::new(SECRET)), "Secret(<redacted>)");
    }
}
