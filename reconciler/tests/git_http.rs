//! The Git source over HTTP(S) against a real Git server: `git http-backend`
//! (the CGI program git ships for smart HTTP) behind a small hyper server,
//! started by the test on loopback, that demands HTTP Basic auth and answers
//! `401` with a `WWW-Authenticate` challenge otherwise.
//!
//! The server logs every request (method, path, the user name it carried,
//! whether it was accepted, status), so the tests show that credentials
//! really travelled, that wrong ones were really refused, and that nothing
//! reached Git without them.
//!
//! HTTPS, not plain HTTP: gix (without its `http-client-insecure-credentials`
//! feature, which the reconciler does not enable) refuses to send
//! credentials over `http://` at all; [`plain_http_never_sends_credentials`]
//! pins that. The server's certificate is signed by a CA made for the test
//! (testenv's PKI); gix's reqwest client verifies with
//! rustls-platform-verifier, which on Linux trusts the PEM file named by
//! `SSL_CERT_FILE` (gix's reqwest backend ignores `http.sslCAInfo`). That
//! variable is set on the reconciler binary for the binary test; library
//! tests poll in a child process of this test binary started with it (see
//! [`run_in_child`]), as setting it in this multi-threaded process is unsafe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kubeflex_reconciler::source::{
    Change, ChangeKind, Changes, GitAuth, GitSource, GitSourceConfig, SourceError, Update,
};
use support::{Cluster, Upstream, cp, git, reconciler_command};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio_rustls::TlsAcceptor;

const TOKEN_USER: &str = "x-access-token";
const TOKEN: &str = "s3cret-t0ken-1b2f";
const WRONG_TOKEN: &str = "wr0ng-t0ken-9c4e";

/// Names the directory with the test PKI, for tests run in a child process.
const PKI_ENV: &str = "KFLEX_GIT_HTTP_TEST_PKI";

// ---------------------------------------------------------------------------
// TLS material.

/// A CA and a serving certificate for `127.0.0.1`, as PEM files in a
/// directory: `ca.pem` (what clients trust), `cert.pem`, `key.pem`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let authority = kubeflex_testenv::pki::Authority::new("git-http test CA").unwrap();
        let serving = authority.serving(&["127.0.0.1", "localhost"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &authority.ca.cert_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &serving.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &serving.key_pem).unwrap();
        Self { dir }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A TLS acceptor with the serving certificate in `dir`.
    fn acceptor(dir: &Path) -> TlsAcceptor {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let config = kubeflex_testenv::http::tls_config(
            &read("cert.pem"),
            &read("key.pem"),
            &read("ca.pem"),
        )
        .unwrap();
        TlsAcceptor::from(config)
    }
}

// ---------------------------------------------------------------------------
// The server.

/// One request as the server saw it. The password is never recorded.
#[derive(Clone, Debug)]
struct Logged {
    method: String,
    /// Path and query.
    target: String,
    /// The user name of a well-formed `Authorization: Basic` header.
    user: Option<String>,
    /// Whether the credentials were accepted (and Git ran).
    accepted: bool,
    status: u16,
}

struct ServerState {
    /// `(user, password)` pairs the server accepts.
    accounts: Vec<(String, String)>,
    /// Served as `GIT_PROJECT_ROOT`.
    root: PathBuf,
    log: Mutex<Vec<Logged>>,
}

/// `git http-backend` behind HTTP Basic auth on `127.0.0.1:<port>`, over
/// TLS when given an acceptor; served by a thread of its own (so that
/// blocking polls on the test's thread cannot starve it); stopped on drop.
struct GitHttp {
    scheme: &'static str,
    port: u16,
    state: Arc<ServerState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHttp {
    fn start(root: &Path, accounts: &[(&str, &str)], tls: Option<TlsAcceptor>) -> Self {
        // Bound before the thread starts: the port is known and listening
        // when this returns.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ServerState {
            accounts: accounts
                .iter()
                .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
                .collect(),
            root: root.to_owned(),
            log: Mutex::new(Vec::new()),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => match accepted {
                            Ok(conn) => conn,
                            Err(_) => continue,
                        },
                    };
                    let (state, tls) = (served.clone(), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            // A failed handshake (e.g. an untrusted
                            // certificate) ends the connection.
                            Some(tls) => {
                                if let Ok(stream) = tls.accept(stream).await {
                                    serve_connection(stream, state).await;
                                }
                            }
                            None => serve_connection(stream, state).await,
                        }
                    });
                }
            });
            // Dropping the runtime cancels open connections; a CGI still
            // running is killed (`kill_on_drop`).
        });
        Self {
            scheme,
            port,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/demo.git", self.scheme, self.port)
    }

    fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_connection<IO>(io: IO, state: Arc<ServerState>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(req, &state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(req: Request<Incoming>, state: &ServerState) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // The whole request body, whatever its framing (length or chunked).
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let credentials = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials);
    let accepted = credentials.as_ref().is_some_and(|(user, password)| {
        state
            .accounts
            .iter()
            .any(|(u, p)| u == user && p == password)
    });
    let response = if accepted {
        let user = credentials.as_ref().map_or("", |(u, _)| u.as_str());
        cgi(&parts, body, user, &state.root).await
    } else {
        let mut r = response(StatusCode::UNAUTHORIZED, "authentication required\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"git\""),
        );
        r
    };
    state.log.lock().unwrap().push(Logged {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        user: credentials.map(|(user, _)| user),
        accepted,
        status: response.status().as_u16(),
    });
    response
}

/// `(user, password)` of an `Authorization: Basic …` header value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard base64 (padding optional); `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Runs `git http-backend` as a CGI for one request (see
/// `man git-http-backend`) and turns its output into the response.
async fn cgi(
    parts: &hyper::http::request::Parts,
    body: Bytes,
    user: &str,
    root: &Path,
) -> Response<Full<Bytes>> {
    let header = |name: &HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        // Only what the CGI contract says, plus PATH to find git's helpers.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(content_type) = header(&CONTENT_TYPE) {
        command.env("CONTENT_TYPE", content_type);
    }
    // Protocol v2 is asked for in this header; the CGI reads it from here.
    if let Some(protocol) = header(&HeaderName::from_static("git-protocol")) {
        command.env("GIT_PROTOCOL", protocol);
    }
    // A gzip request body is passed through as is: the CGI inflates it.
    if let Some(encoding) = header(&CONTENT_ENCODING) {
        command.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("git http-backend: {e}"),
            );
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    // Feed stdin while reading stdout: either may fill a pipe.
    let feed = async move {
        // The CGI may answer without reading everything (an error): a
        // broken pipe is not this server's failure. Dropping stdin closes it.
        let _ = stdin.write_all(&body).await;
    };
    let ((), output) = tokio::join!(feed, child.wait_with_output());
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            return response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("git http-backend: {e}"),
            );
        }
    };
    cgi_response(&output.stdout).unwrap_or_else(|| {
        response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "git http-backend ({}) gave no CGI response: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    })
}

/// A CGI's output (header lines, a blank line, the body) as a response:
/// `Status:` sets the status (200 without it), other headers are copied.
fn cgi_response(out: &[u8]) -> Option<Response<Full<Bytes>>> {
    let find = |needle: &[u8]| out.windows(needle.len()).position(|w| w == needle);
    let (head_end, body_start) = match (find(b"\r\n\r\n"), find(b"\n\n")) {
        (Some(crlf), Some(lf)) if lf < crlf => (lf, lf + 2),
        (Some(crlf), _) => (crlf, crlf + 4),
        (None, Some(lf)) => (lf, lf + 2),
        (None, None) => return None,
    };
    let head = std::str::from_utf8(&out[..head_end]).ok()?;
    let mut response = response(StatusCode::OK, Bytes::copy_from_slice(&out[body_start..]));
    for line in head.lines() {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next()?.parse().ok()?;
            *response.status_mut() = StatusCode::from_u16(code).ok()?;
        } else {
            response.headers_mut().append(
                HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            );
        }
    }
    Some(response)
}

// ---------------------------------------------------------------------------
// Helpers.

fn source(up: &Upstream, server: &GitHttp, cache: &str, auth: GitAuth) -> GitSource {
    let mut config = GitSourceConfig::new(server.url(), up.cache().join(cache));
    config.auth = auth;
    GitSource::new(config).unwrap()
}

use support::error_chain as chain;

/// A poll that fails the test instead of hanging (see [`support::poll_timed`]).
fn poll(source: &GitSource, last: Option<&str>) -> Result<Update, SourceError> {
    support::poll_timed(source, last).0
}

fn show(log: &[Logged]) -> String {
    log.iter()
        .map(|r| {
            format!(
                "{} {} user={:?} accepted={} -> {}",
                r.method, r.target, r.user, r.accepted, r.status
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_upload_pack_post(r: &Logged) -> bool {
    r.method == "POST" && r.target.ends_with("/git-upload-pack")
}

/// Runs the `#[ignore]`d test `name` (under [`in_child`]) of this test
/// binary in a child process that trusts a fresh test CA through
/// `SSL_CERT_FILE`, with `env` on top, and fails if it fails or did not run.
///
/// The child is started with `setsid`, without a controlling terminal, as
/// the reconciler runs in a pod: gix falls back to prompting on `/dev/tty`
/// when a server wants credentials the source has none for, which from an
/// interactive `cargo test` would wait for typing. It also gets no user or
/// system Git configuration and no askpass program: a fresh cache is not
/// yet isolated from them (see [`the_users_git_config_plays_no_part`]), and
/// the tests must not depend on the credential helpers of whoever runs them.
fn run_in_child(name: &str, env: &[(&str, &std::ffi::OsStr)]) {
    let pki = Pki::new();
    let mut command = Command::new("setsid");
    command
        .arg("--wait")
        .arg(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", pki.ca_file())
        .env_remove("SSL_CERT_DIR")
        .env(PKI_ENV, pki.dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let output = command.output().expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture, and with the failure otherwise.
    println!("--- child {name} stdout:\n{stdout}--- child stderr:\n{stderr}");
    assert!(output.status.success(), "child test {name} failed");
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "child test {name} did not run"
    );
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn base64_decoder_matches_known_values() {
    assert_eq!(
        base64_decode("eC1hY2Nlc3MtdG9rZW46czNjcmV0").unwrap(),
        b"x-access-token:s3cret"
    );
    assert_eq!(base64_decode("YTpiPw==").unwrap(), b"a:b?");
    assert_eq!(base64_decode("YTpiPw").unwrap(), b"a:b?");
    assert!(base64_decode("YT*iPw==").is_none());
    assert_eq!(
        basic_credentials("Basic YTpiPw==").unwrap(),
        ("a".to_owned(), "b?".to_owned())
    );
    assert!(basic_credentials("Bearer YTpiPw==").is_none());
}

/// Over plain `http://` gix refuses to send credentials: the poll fails
/// after the server's challenge, the token never goes on the wire, and the
/// error says why. (The server would have accepted the token.)
#[test]
fn plain_http_never_sends_credentials() {
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("http-a"))]);
    let server = GitHttp::start(&up.repos(), &[(TOKEN_USER, TOKEN)], None);
    // Refused when the source is made, before any request.
    let mut config = GitSourceConfig::new(server.url(), up.cache().join("plain"));
    config.auth = GitAuth::token(TOKEN);
    let error = match GitSource::new(config) {
        Ok(_) => panic!("a token over plain http:// was accepted"),
        Err(e) => e,
    };
    let text = chain(&error);
    assert!(text.contains(&server.url()), "{text}");
    assert!(text.contains("clear text"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(server.log().is_empty(), "nothing was asked of the server");
    // Without credentials, plain http:// is a source like any other: the
    // server's 401 is the failure, reported with its reason.
    let anonymous = source(&up, &server, "anonymous", GitAuth::None);
    let error = poll(&anonymous, None).expect_err("the server demands credentials");
    let log = server.log();
    assert!(
        log.iter().all(|r| r.user.is_none() && r.status == 401),
        "requests:\n{}",
        show(&log)
    );
    assert!(error.to_string().contains(&server.url()), "{error}");
}

#[test]
fn a_token_fetches_over_https_and_later_polls_are_incremental() {
    run_in_child(
        "in_child::a_token_fetches_over_https_and_later_polls_are_incremental",
        &[],
    );
}

#[test]
fn wrong_or_missing_credentials_fail_over_https_without_leaking_the_token() {
    run_in_child(
        "in_child::wrong_or_missing_credentials_fail_over_https_without_leaking_the_token",
        &[],
    );
}

/// `GitSource` documents that the user's and system's Git configuration
/// play no part. A credential helper in the global configuration that
/// would answer with the right token must then not be asked when the
/// source has no credentials, on the first poll (fresh cache) as on later
/// ones.
///
/// (A fresh cache used to be created with gix's default, non-isolated
/// options, so its first poll consulted `~/.gitconfig`; this test found it.)
#[test]
fn the_users_git_config_plays_no_part() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gitconfig");
    std::fs::write(
        &config,
        format!(
            "[credential]\n\thelper = \"!f() {{ echo username={TOKEN_USER}; echo password={TOKEN}; }}; f\"\n"
        ),
    )
    .unwrap();
    run_in_child(
        "in_child::the_users_git_config_plays_no_part",
        &[("GIT_CONFIG_GLOBAL", config.as_os_str())],
    );
}

/// Library tests run by [`run_in_child`], with `SSL_CERT_FILE` set.
mod in_child {
    use super::*;

    const WHY: &str = "run by the test of the same name at the top level";

    /// The test server over TLS, with the PKI the parent made.
    fn https_server(root: &Path, accounts: &[(&str, &str)]) -> GitHttp {
        let pki = std::env::var_os(PKI_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("{PKI_ENV} is not set: this test is {WHY}"));
        GitHttp::start(root, accounts, Some(Pki::acceptor(&pki)))
    }

    /// A token is sent as HTTP Basic credentials (`x-access-token` and the
    /// token) after the server's 401 challenge, a full first poll returns
    /// the commit the upstream made, and a later poll is incremental.
    #[test]
    #[ignore = "run by the top-level test of the same name"]
    fn a_token_fetches_over_https_and_later_polls_are_incremental() {
        let up = Upstream::new(&[("controlplanes/a.yaml", &cp("http-a"))]);
        let server = https_server(&up.repos(), &[(TOKEN_USER, TOKEN)]);
        let source = source(&up, &server, "token", GitAuth::token(TOKEN));

        let first = poll(&source, None).unwrap_or_else(|e| {
            panic!(
                "first poll failed: {}\nrequests:\n{}",
                chain(&e),
                show(&server.log())
            )
        });
        let log = server.log();
        println!("first poll, requests:\n{}", show(&log));
        assert_eq!(
            first.snapshot.revision(),
            git(&up.work(), &["rev-parse", "HEAD"])
        );
        assert_eq!(first.changes, Changes::Full);
        assert_eq!(
            first.snapshot.read("controlplanes/a.yaml", 4096).unwrap(),
            cp("http-a").as_bytes()
        );
        // gix asks anonymously first and answers the challenge with the token.
        assert_eq!(log[0].user, None, "requests:\n{}", show(&log));
        assert_eq!(log[0].status, 401, "requests:\n{}", show(&log));
        assert!(
            log.iter()
                .filter(|r| r.accepted)
                .all(|r| r.user.as_deref() == Some(TOKEN_USER) && r.status == 200),
            "requests:\n{}",
            show(&log)
        );
        assert!(
            log.iter().any(|r| is_upload_pack_post(r) && r.accepted),
            "the pack was fetched with credentials; requests:\n{}",
            show(&log)
        );
        assert!(
            log.iter().all(|r| r.accepted || r.user.is_none()),
            "no request carried rejected credentials; requests:\n{}",
            show(&log)
        );

        server.clear_log();
        let second_commit = up.commit(&[("controlplanes/b.yaml", &cp("http-b"))], &[], "add b");
        let second = poll(&source, Some(first.snapshot.revision())).unwrap_or_else(|e| {
            panic!(
                "second poll failed: {}\nrequests:\n{}",
                chain(&e),
                show(&server.log())
            )
        });
        let log = server.log();
        println!("second poll, requests:\n{}", show(&log));
        assert_eq!(second.snapshot.revision(), second_commit);
        assert_eq!(
            second.changes,
            Changes::Paths(vec![Change {
                path: "controlplanes/b.yaml".to_owned(),
                kind: ChangeKind::Added,
            }])
        );
        assert!(
            log.iter().any(|r| is_upload_pack_post(r) && r.accepted),
            "the second fetch went through the server too; requests:\n{}",
            show(&log)
        );
    }

    /// A wrong token is sent, refused by the server, and reported as an
    /// error naming the URL but never the token; so is a wrong user name;
    /// without credentials the poll fails too. Nothing reaches Git.
    #[test]
    #[ignore = "run by the top-level test of the same name"]
    fn wrong_or_missing_credentials_fail_over_https_without_leaking_the_token() {
        let up = Upstream::new(&[("controlplanes/a.yaml", &cp("http-a"))]);
        let server = https_server(&up.repos(), &[(TOKEN_USER, TOKEN)]);

        let wrong = source(&up, &server, "wrong", GitAuth::token(WRONG_TOKEN));
        let error = match poll(&wrong, None) {
            Ok(update) => panic!(
                "a wrong token fetched {}; requests:\n{}",
                update.snapshot.revision(),
                show(&server.log())
            ),
            Err(e) => e,
        };
        let text = chain(&error);
        let debug = format!("{error:?}");
        let log = server.log();
        println!("wrong token: {text}\nrequests:\n{}", show(&log));
        assert!(
            error.to_string().contains(&server.url()),
            "the error names the URL: {text}"
        );
        assert!(
            text.contains("not accepted"),
            "the error says the credentials were refused: {text}"
        );
        for secret in [WRONG_TOKEN, TOKEN] {
            assert!(!text.contains(secret), "secret in the error: {text}");
            assert!(!debug.contains(secret), "secret in the error: {debug}");
        }
        // The wrong token was really sent, and really refused.
        assert!(
            log.iter()
                .any(|r| r.user.as_deref() == Some(TOKEN_USER) && r.status == 401),
            "requests:\n{}",
            show(&log)
        );
        assert!(log.iter().all(|r| !r.accepted), "requests:\n{}", show(&log));

        // The right token but another user name: the user name counts.
        server.clear_log();
        let wrong_user = source(
            &up,
            &server,
            "wrong-user",
            GitAuth::Basic {
                username: "mallory".to_owned(),
                password: TOKEN.to_owned(),
            },
        );
        let error = poll(&wrong_user, None).err().unwrap_or_else(|| {
            panic!(
                "a wrong user name fetched; requests:\n{}",
                show(&server.log())
            )
        });
        let text = chain(&error);
        let log = server.log();
        println!("wrong user: {text}\nrequests:\n{}", show(&log));
        assert!(!text.contains(TOKEN), "{text}");
        assert!(
            log.iter()
                .any(|r| r.user.as_deref() == Some("mallory") && r.status == 401),
            "requests:\n{}",
            show(&log)
        );
        assert!(log.iter().all(|r| !r.accepted), "requests:\n{}", show(&log));

        // No credentials at all.
        server.clear_log();
        let anonymous = source(&up, &server, "anonymous", GitAuth::None);
        let error = poll(&anonymous, None).err().unwrap_or_else(|| {
            panic!(
                "an anonymous poll fetched; requests:\n{}",
                show(&server.log())
            )
        });
        let text = chain(&error);
        let log = server.log();
        println!("no credentials: {text}\nrequests:\n{}", show(&log));
        assert!(error.to_string().contains(&server.url()), "{text}");
        assert!(!log.is_empty(), "the server was asked");
        assert!(
            log.iter().all(|r| r.user.is_none() && r.status == 401),
            "requests:\n{}",
            show(&log)
        );
    }

    /// See [`super::the_users_git_config_plays_no_part`]; run with
    /// `GIT_CONFIG_GLOBAL` naming a credential helper that knows the token.
    #[test]
    #[ignore = "run by the top-level test of the same name"]
    fn the_users_git_config_plays_no_part() {
        let up = Upstream::new(&[("controlplanes/a.yaml", &cp("http-a"))]);
        let server = https_server(&up.repos(), &[(TOKEN_USER, TOKEN)]);
        let anonymous = source(&up, &server, "anonymous", GitAuth::None);
        for pass in ["fresh cache", "existing cache"] {
            server.clear_log();
            let result = poll(&anonymous, None);
            let log = server.log();
            println!(
                "{pass}: {:?}\nrequests:\n{}",
                result.as_ref().err().map(|e| chain(e)),
                show(&log)
            );
            assert!(
                result.is_err(),
                "{pass}: a source without credentials fetched with the user's credential helper; requests:\n{}",
                show(&log)
            );
            assert!(
                log.iter().all(|r| r.user.is_none()),
                "{pass}: requests:\n{}",
                show(&log)
            );
        }
    }
}

/// The binary: `--git-token-file` with a wrong token exits 1, applies
/// nothing, never prints the token and reports `FetchFailed` in the Sync
/// status; the right token applies the repository (`--once` exits 0);
/// `--git-username` with `--git-password-file` works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_authenticates_with_token_and_password_files() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("http-bin-a"))]);
    let pki = Pki::new();
    let server = GitHttp::start(
        &up.repos(),
        &[(TOKEN_USER, TOKEN), ("alice", "alice-passw0rd")],
        Some(Pki::acceptor(pki.dir.path())),
    );
    let secrets = up.tmp.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let write = |name: &str, text: &str| {
        let path = secrets.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let wrong_file = write("wrong-token", &format!("{WRONG_TOKEN}\n"));
    let token_file = write("token", &format!("{TOKEN}\n"));
    let password_file = write("password", "alice-passw0rd\n");
    let command = |name: &str, cache: &str| {
        let mut cmd = reconciler_command(&cluster, name);
        cmd.args(["--git-url", &server.url(), "--once"])
            .arg("--cache-dir")
            .arg(up.cache().join(cache))
            .env("SSL_CERT_FILE", pki.ca_file())
            .env_remove("SSL_CERT_DIR")
            .env("NO_COLOR", "1");
        cmd
    };
    let run = |mut cmd: Command| async move {
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };

    // A wrong token: exit 1, nothing applied, the token never printed.
    let mut cmd = command("http-bad", "bad");
    cmd.arg("--git-token-file").arg(&wrong_file);
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = server.log();
    println!("wrong token, stderr:\n{stderr}requests:\n{}", show(&log));
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains(&server.url()), "stderr:\n{stderr}");
    assert!(!stderr.contains(WRONG_TOKEN), "stderr:\n{stderr}");
    assert!(cluster.cp("http-bin-a").await.is_none());
    assert!(
        log.iter()
            .any(|r| r.user.as_deref() == Some(TOKEN_USER) && r.status == 401),
        "the wrong token was sent and refused; requests:\n{}",
        show(&log)
    );
    assert!(log.iter().all(|r| !r.accepted), "requests:\n{}", show(&log));
    // The failure is in the Sync status too, without the token.
    let status = cluster.sync("http-bad").await.unwrap().status.unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap_or_else(|| panic!("no Ready condition: {:?}", status.conditions));
    assert_eq!(ready.status, "False", "{ready:?}");
    assert_eq!(ready.reason, "FetchFailed", "{ready:?}");
    println!("Ready condition message: {}", ready.message);
    assert!(!format!("{status:?}").contains(WRONG_TOKEN), "{status:?}");
    // The reason is shown, not only the step that failed.
    assert!(ready.message.contains("401"), "{}", ready.message);
    assert!(stderr.contains("401"), "stderr:\n{stderr}");

    // The right token: exit 0, applied.
    server.clear_log();
    let mut cmd = command("http-good", "good");
    cmd.arg("--git-token-file").arg(&token_file);
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = server.log();
    println!("right token, stderr:\n{stderr}requests:\n{}", show(&log));
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains(TOKEN), "stderr:\n{stderr}");
    assert!(cluster.cp("http-bin-a").await.is_some());
    assert!(
        log.iter()
            .any(|r| is_upload_pack_post(r) && r.user.as_deref() == Some(TOKEN_USER)),
        "requests:\n{}",
        show(&log)
    );

    // A user name and a password file, for a new commit, under another
    // name and --path.
    server.clear_log();
    up.commit(&[("basic/b.yaml", &cp("http-bin-b"))], &[], "add b");
    let mut cmd = command("http-basic", "basic");
    cmd.args(["--path", "basic", "--git-username", "alice"])
        .arg("--git-password-file")
        .arg(&password_file);
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = server.log();
    println!(
        "user and password, stderr:\n{stderr}requests:\n{}",
        show(&log)
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains("alice-passw0rd"), "stderr:\n{stderr}");
    assert!(cluster.cp("http-bin-b").await.is_some());
    assert!(cluster.cp("http-bin-a").await.is_some());
    assert!(
        log.iter()
            .any(|r| is_upload_pack_post(r) && r.user.as_deref() == Some("alice")),
        "requests:\n{}",
        show(&log)
    );
}
