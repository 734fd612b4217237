//! The service proxy (`/api/v1/namespaces/NS/services/[https:]NAME[:PORT]/proxy/...`),
//! as kube-apiserver offers it: how a controller running outside the cluster
//! reaches a Service. Like kube-apiserver it does not verify the backend's
//! certificate and does not forward the caller's credentials, so the
//! backend sees an anonymous request.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::ingress::Network;
use crate::status::ApiError;

/// The backend's answer.
pub struct Proxied {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Accepts any backend certificate (kube-apiserver's proxy does too).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `[scheme:]name[:port]` of the proxy path segment.
pub fn parse_target(segment: &str) -> (Option<&str>, &str, Option<&str>) {
    let parts: Vec<&str> = segment.split(':').collect();
    match parts.as_slice() {
        [name] => (None, name, None),
        [a, b] if *a == "http" || *a == "https" => (Some(a), b, None),
        [name, port] => (None, name, Some(port)),
        [scheme, name, port] => (Some(scheme), name, (!port.is_empty()).then_some(*port)),
        _ => (None, segment, None),
    }
}

/// Forwards one request to the Service's backend.
pub async fn forward(
    net: &Network,
    namespace: &str,
    segment: &str,
    method: Method,
    path_and_query: &str,
    body: Bytes,
) -> Result<Proxied, ApiError> {
    let (scheme, name, port) = parse_target(segment);
    let svc = net
        .api
        .store
        .get("/services", namespace, name)
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("services \"{name}\" not found")))?;
    let port = match port {
        Some(p) => p.to_string(),
        None => svc["spec"]["ports"][0]["port"]
            .as_u64()
            .map(|p| p.to_string())
            .unwrap_or_default(),
    };
    let backend = net.service_backend(namespace, name, &port).ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("no endpoints available for service \"{name}\""),
        )
    })?;
    let tcp = tokio::net::TcpStream::connect(backend).await.map_err(|e| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    })?;
    let request = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, format!("{name}.{namespace}"))
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let https = scheme == Some("https") || (scheme.is_none() && port == "443");
    let unreachable = |e: String| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    };
    let response = if https {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ApiError::internal(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        let server_name = ServerName::try_from(format!("{name}.{namespace}.svc"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        send(TokioIo::new(tls), request)
            .await
            .map_err(unreachable)?
    } else {
        send(TokioIo::new(tcp), request)
            .await
            .map_err(unreachable)?
    };
    Ok(response)
}

async fn send<T>(io: T, request: Request<Full<Bytes>>) -> Result<Proxied, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Proxied {
        status,
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_segments() {
        assert_eq!(
            parse_target("https:cp1:443"),
            (Some("https"), "cp1", Some("443"))
        );
        assert_eq!(parse_target("cp1:https"), (None, "cp1", Some("https")));
        assert_eq!(parse_target("cp1"), (None, "cp1", None));
        assert_eq!(parse_target("https:cp1:"), (Some("https"), "cp1", None));
    }
}
