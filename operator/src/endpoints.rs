//! The small HTTP/1 servers of the operator and the reconciler (metrics and
//! health probes, the reconciler's webhook receiver), on hyper directly: a
//! few routes each do not justify a framework.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Response bodies are small and whole.
pub type Body = Full<Bytes>;

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Binds `addr`; the listener's address tells the port when it was 0.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// `/metrics` (Prometheus text format 0.0.4, rendered by `render` only
/// when asked for), `/healthz` (the process serves) and `/readyz`.
pub fn observability(path: &str, ready: bool, render: impl FnOnce() -> String) -> Response<Body> {
    match path {
        "/metrics" => {
            let mut response = text(StatusCode::OK, render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if ready => text(StatusCode::OK, "ok\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// What one client may hold of a server: slow or idle clients (a
/// slow-loris) are cut off, and the number of connections is bounded so
/// that they cannot exhaust file descriptors or memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's whole header, counted from
    /// the connection (or the previous response); then it is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until
    /// one ends (at the latest after `header_read_timeout`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 128,
        }
    }
}

/// Serves connections on `listener` until the task is dropped, with the
/// default [`Limits`].
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_with(listener, handler, Limits::default()).await;
}

/// [`serve`] with explicit limits.
pub async fn serve_with<F, Fut>(listener: TcpListener, handler: F, limits: Limits)
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // At the cap, stop accepting: the kernel's backlog holds the rest.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: keep serving.
                tracing::warn!(error = %e, "accepting a connection failed");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req, peer).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A slow-loris: more connections than the cap, idle or sending their
    /// header a byte at a time, do not stop `/healthz` from answering
    /// once the header timeout has cut them off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn held_connections_do_not_stop_healthz() {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(800),
            max_connections: 4,
        };
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_with(
            listener,
            |req, _| async move { observability(req.uri().path(), true, String::new) },
            limits,
        ));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let mut held = Vec::new();
        for i in 0..12 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
                    .await
                    .unwrap();
            }
            held.push(s);
        }
        // The dribblers keep sending, one byte every 100 ms.
        let dribble = tokio::spawn(async move {
            for _ in 0..100 {
                for s in held.iter_mut().step_by(2) {
                    let _ = s.write_all(b"a").await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = tokio::time::Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(8), get(addr, "/healthz"))
            .await
            .expect("/healthz did not answer while connections were held");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
        // It had to wait for the held ones to be cut (12 held, 4 slots).
        assert!(
            started.elapsed() >= Duration::from_millis(700),
            "{:?}",
            started.elapsed()
        );
        dribble.abort();
        server.abort();
    }
}
