//! The CAs the operator hands to a `k3s` server and its join token, in the
//! file names and token format k3s itself uses. Built from the CA machinery
//! of [`super`], as a bundle separate from the `k8s` one.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::jiff::Timestamp;

use super::{CertificateAuthority, ClientIdentity, KeyPem, Result, dn, random_token, text};
use crate::config::PkiConfig;
use crate::names;

/// The CAs the operator gives a `k3s` server (Secret `k3s-ca`), pre-placed in
/// its `server/tls` directory: k3s uses CA files it finds there instead of
/// generating its own, so the operator can mint the admin kubeconfig itself.
#[derive(Debug, PartialEq)]
pub struct K3sCas {
    /// `server-ca`: signs k3s' serving certificates; clients trust it.
    pub server_ca: CertificateAuthority,
    /// `client-ca`: signs client certificates, the admin's among them.
    pub client_ca: CertificateAuthority,
    /// `request-header-ca`: the front proxy's CA.
    pub request_header_ca: CertificateAuthority,
    /// The server token's secret part (`--token`).
    pub token_secret: KeyPem,
}

const K3S_CA: &str = names::SECRET_K3S_CA;
/// File names (and Secret keys) of the k3s CAs, as k3s names them.
pub const K3S_CA_FILES: [&str; 6] = [
    "server-ca.crt",
    "server-ca.key",
    "client-ca.crt",
    "client-ca.key",
    "request-header-ca.crt",
    "request-header-ca.key",
];
/// Key of the token secret in Secret `k3s-ca`.
pub const K3S_TOKEN_KEY: &str = "token";

impl K3sCas {
    /// Three new CAs and a token.
    pub fn generate(cfg: &PkiConfig, now: Timestamp) -> Result<Self> {
        let ca = |role, cn| CertificateAuthority::generate(role, dn(cn, &[], None), cfg, now);
        Ok(Self {
            server_ca: ca("k3s server CA", "k3s-server-ca")?,
            client_ca: ca("k3s client CA", "k3s-client-ca")?,
            request_header_ca: ca("k3s request-header CA", "k3s-request-header-ca")?,
            token_secret: KeyPem(random_token(32)?),
        })
    }

    /// Loads them from Secret `k3s-ca`.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Self> {
        let [s_crt, s_key, c_crt, c_key, r_crt, r_key] = K3S_CA_FILES;
        Ok(Self {
            server_ca: CertificateAuthority::load("k3s server CA", K3S_CA, data, s_crt, s_key)?,
            client_ca: CertificateAuthority::load("k3s client CA", K3S_CA, data, c_crt, c_key)?,
            request_header_ca: CertificateAuthority::load(
                "k3s request-header CA",
                K3S_CA,
                data,
                r_crt,
                r_key,
            )?,
            token_secret: KeyPem(text(K3S_CA, data, K3S_TOKEN_KEY)?),
        })
    }

    /// The data of Secret `k3s-ca`.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        let [s_crt, s_key, c_crt, c_key, r_crt, r_key] = K3S_CA_FILES;
        [
            (s_crt, self.server_ca.cert_pem()),
            (s_key, self.server_ca.key().expose()),
            (c_crt, self.client_ca.cert_pem()),
            (c_key, self.client_ca.key().expose()),
            (r_crt, self.request_header_ca.cert_pem()),
            (r_key, self.request_header_ca.key().expose()),
            (K3S_TOKEN_KEY, self.token_secret.expose()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
    }

    /// k3s' full server token, `K10<sha256(server CA bundle)>::server:<secret>`,
    /// what KubeFlex stores as `k3s-config`'s `token` (k3s writes it to
    /// `server/token`); joining nodes use the hash to pin the CA.
    pub fn full_token(&self) -> String {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            self.server_ca.cert_pem().as_bytes(),
        );
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("K10{hex}::server:{}", self.token_secret.expose())
    }

    /// The admin identity k3s itself uses (`system:admin` in `system:masters`).
    pub fn admin_identity() -> ClientIdentity {
        ClientIdentity {
            role: "k3s admin client",
            common_name: "system:admin".into(),
            organizations: vec!["system:masters".into()],
        }
    }
}
