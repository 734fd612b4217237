//! The front-proxy authenticator of kube-apiserver (`--requestheader-*`): a client
//! certificate signed by `--requestheader-client-ca-file` whose CN is in
//! `--requestheader-allowed-names` (an empty list allows any CN) vouches for the user
//! named in the first non-empty `--requestheader-username-headers` header, with the
//! groups of `--requestheader-group-headers`, the uid of `--requestheader-uid-headers`
//! and extras from the headers starting with a `--requestheader-extra-headers-prefix`.
//! As upstream, this authenticator runs before the client-certificate one; headers
//! that come with any other certificate are ignored, and a certificate no
//! authenticator accepts gets 401.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::User;

/// The `--requestheader-*` flags other than the CA file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaderFlags {
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_prefixes: Vec<String>,
}

/// The two certificate authenticators of a server that has a front-proxy CA.
pub struct RequestHeader {
    front_proxy: Arc<dyn ClientCertVerifier>,
    client: Arc<dyn ClientCertVerifier>,
    flags: RequestHeaderFlags,
}

impl std::fmt::Debug for RequestHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestHeader")
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

/// What the client certificate of a connection proves.
#[derive(Debug, Clone, Default)]
pub struct PeerCert {
    /// The user of a certificate signed by `--client-ca-file`.
    pub user: Option<User>,
    /// Signed by the front-proxy CA with an allowed CN: its headers name the user.
    pub front_proxy: bool,
    /// A certificate was presented (when nothing accepts it, the answer is 401).
    pub presented: bool,
}

fn verifier(ca_pem: &str, what: &str) -> Result<Arc<dyn ClientCertVerifier>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| format!("{what}: {e}"))?;
        roots.add(ca).map_err(|e| format!("{what}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("{what}: {e}"))
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_string())
}

/// `url.PathUnescape` of an extra key: `%XX` decoded, anything malformed kept as is.
fn unescape(key: &str) -> String {
    let decoded = percent_decode(key.as_bytes());
    decoded
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| key.to_string())
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

impl RequestHeader {
    /// Authenticators for client certificates of `client_ca_pem` and front-proxy
    /// certificates of `front_proxy_ca_pem`.
    pub fn new(
        client_ca_pem: &str,
        front_proxy_ca_pem: &str,
        flags: RequestHeaderFlags,
    ) -> Result<Self, String> {
        Ok(Self {
            front_proxy: verifier(front_proxy_ca_pem, "requestheader client CA")?,
            client: verifier(client_ca_pem, "client CA")?,
            flags,
        })
    }

    /// Which authenticator the presented chain (leaf first) satisfies.
    pub fn peer(&self, chain: &[CertificateDer<'_>]) -> PeerCert {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return PeerCert::default();
        };
        let now = UnixTime::now();
        let user = self
            .client
            .verify_client_cert(leaf, intermediates, now)
            .ok()
            .and_then(|_| User::from_certificate(leaf.as_ref()));
        let allowed = |cn: &String| {
            self.flags.allowed_names.is_empty() || self.flags.allowed_names.contains(cn)
        };
        let front_proxy = self
            .front_proxy
            .verify_client_cert(leaf, intermediates, now)
            .is_ok()
            && common_name(leaf.as_ref()).is_some_and(|cn| allowed(&cn));
        PeerCert {
            user,
            front_proxy,
            presented: true,
        }
    }

    /// The user the headers name, when a username header has a value.
    pub fn user(&self, headers: &hyper::HeaderMap) -> Option<User> {
        let first = |names: &[String]| {
            names.iter().map(|n| n.trim()).find_map(|n| {
                let v = headers.get(n)?.to_str().ok()?;
                (!n.is_empty() && !v.is_empty()).then(|| v.to_string())
            })
        };
        let name = first(&self.flags.username_headers)?;
        let mut groups: Vec<String> = Vec::new();
        for h in &self.flags.group_headers {
            let h = h.trim();
            if h.is_empty() {
                continue;
            }
            groups.extend(
                headers
                    .get_all(h)
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(String::from)),
            );
        }
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (header, value) in headers {
            let header = header.as_str();
            for prefix in &self.flags.extra_prefixes {
                let prefix = prefix.trim().to_ascii_lowercase();
                let Some(key) = header.strip_prefix(&prefix).filter(|_| !prefix.is_empty()) else {
                    continue;
                };
                if let Ok(v) = value.to_str() {
                    extra.entry(unescape(key)).or_default().push(v.to_string());
                }
            }
        }
        Some(User {
            name,
            groups,
            uid: first(&self.flags.uid_headers),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Authority;
    use rustls_pki_types::pem::PemObject;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn only_an_allowed_front_proxy_certificate_makes_headers_count() {
        let client_ca = Authority::new("ca").unwrap();
        let proxy_ca = Authority::new("front-proxy-ca").unwrap();
        let flags = RequestHeaderFlags {
            allowed_names: vec!["front-proxy-client".into()],
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_prefixes: vec!["X-Remote-Extra-".into()],
            uid_headers: Vec::new(),
        };
        let rh = RequestHeader::new(&client_ca.ca.cert_pem, &proxy_ca.ca.cert_pem, flags).unwrap();
        let proxy = proxy_ca.client("front-proxy-client", &[]).unwrap();
        let peer = rh.peer(&[der(&proxy.cert_pem)]);
        assert!(peer.front_proxy && peer.user.is_none());
        let other_cn = proxy_ca.client("someone", &[]).unwrap();
        let peer = rh.peer(&[der(&other_cn.cert_pem)]);
        assert!(!peer.front_proxy && peer.user.is_none() && peer.presented);
        let normal = client_ca.client("bob", &["team"]).unwrap();
        let peer = rh.peer(&[der(&normal.cert_pem)]);
        assert!(!peer.front_proxy);
        assert_eq!(peer.user.unwrap().name, "bob");

        let mut headers = hyper::HeaderMap::new();
        assert_eq!(rh.user(&headers), None);
        headers.insert("x-remote-user", "alice".parse().unwrap());
        headers.append("x-remote-group", "devs".parse().unwrap());
        headers.append("x-remote-group", "ops".parse().unwrap());
        headers.append("x-remote-extra-acme.com%2Fproject", "p1".parse().unwrap());
        let u = rh.user(&headers).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, ["devs", "ops", "system:authenticated"]);
        assert_eq!(u.extra["acme.com/project"], ["p1"]);
    }
}
