//! Authentication: who is asking. Client certificates signed by the server's
//! CA (CN is the user, O the groups) and ServiceAccount bearer tokens, which
//! are HS256 JWTs signed with a key only this server holds: minted by the
//! TokenRequest subresource (with an expiry) or written into
//! `kubernetes.io/service-account-token` Secrets (valid while the Secret is).
//! Tenant kube-apiservers with a front-proxy CA also take the user from request
//! headers ([`requestheader`]).

mod requestheader;

pub use requestheader::{PeerCert, RequestHeader, RequestHeaderFlags};

use std::collections::BTreeMap;
use std::path::Path;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::{Value, json};

/// An authenticated user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// Set by a front proxy's uid header only.
    pub uid: Option<String>,
    /// Set by a front proxy's extra headers only.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    /// The ServiceAccount user for `namespace/name`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            ..Self::default()
        }
    }

    /// A user from a verified client certificate's subject.
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())?
            .to_string();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect();
        groups.push("system:authenticated".into());
        Some(Self {
            name,
            groups,
            ..Self::default()
        })
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    /// Expiry (seconds since the epoch), for TokenRequest tokens.
    pub expires: Option<i64>,
    /// The Secret a legacy token lives in; the token dies with it.
    pub secret: Option<String>,
}

/// Signs and verifies ServiceAccount tokens.
pub struct TokenSigner {
    key: hmac::Key,
    /// Keys whose tokens are accepted (the signing key among them, unless a tenant's
    /// `--service-account-key-file` leaves it out).
    trusted: Vec<hmac::Key>,
    issuer: String,
}

const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner")
    }
}

impl TokenSigner {
    /// A signer with the key kept in `dir` (so tokens survive a restart),
    /// or a fresh key when there is no state directory.
    pub fn new(dir: Option<&Path>) -> std::io::Result<Self> {
        let mut secret = [0u8; 32];
        match dir {
            Some(dir) => {
                let path = dir.join("token-signing.key");
                match std::fs::read(&path) {
                    Ok(bytes) if bytes.len() == 32 => secret.copy_from_slice(&bytes),
                    _ => {
                        rand::rng().fill_bytes(&mut secret);
                        use std::io::Write;
                        use std::os::unix::fs::OpenOptionsExt;
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(true)
                            .mode(0o600)
                            .open(&path)?;
                        f.write_all(&secret)?;
                        f.sync_all()?;
                    }
                }
            }
            None => rand::rng().fill_bytes(&mut secret),
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        Ok(Self {
            trusted: vec![key.clone()],
            key,
            issuer: DEFAULT_ISSUER.into(),
        })
    }

    /// A tenant kube-apiserver's signer: tokens name `issuer` and are signed with the
    /// key of `--service-account-signing-key-file`, and are accepted when signed with
    /// a key of `--service-account-key-file`. Each key stands in as the HMAC secret
    /// derived from its public half (SPKI DER): two servers share trust exactly when
    /// they share keys, as RS256/ES256 tokens would, without testenv doing public-key
    /// JWTs.
    pub fn for_keys(issuer: &str, signing_spki: &[u8], trusted_spkis: &[Vec<u8>]) -> Self {
        let derive = |spki: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, spki);
        Self {
            key: derive(signing_spki),
            trusted: trusted_spkis.iter().map(|k| derive(k)).collect(),
            issuer: issuer.into(),
        }
    }

    pub fn mint(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let mut body = json!({
            "iss": self.issuer,
            "sub": format!("system:serviceaccount:{}:{}", claims.namespace, claims.service_account),
            "kubernetes.io": {
                "namespace": claims.namespace,
                "serviceaccount": {"name": claims.service_account, "uid": claims.service_account_uid},
            },
        });
        if let Some(exp) = claims.expires {
            body["exp"] = json!(exp);
        }
        if let Some(secret) = &claims.secret {
            body["kubernetes.io"]["secret"] = json!({"name": secret});
        }
        let payload = URL_SAFE_NO_PAD.encode(body.to_string());
        let signing_input = format!("{header}.{payload}");
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of a token this server signed; `None` for anything else.
    /// Expiry and the existence of the account are the caller's to check.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let (signing_input, sig) = token.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let input = signing_input.as_bytes();
        self.trusted
            .iter()
            .find(|key| hmac::verify(key, input, &sig).is_ok())?;
        let (_, payload) = signing_input.split_once('.')?;
        let body: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        if body["iss"] != self.issuer.as_str() {
            return None;
        }
        let k = &body["kubernetes.io"];
        Some(Claims {
            namespace: k["namespace"].as_str()?.to_string(),
            service_account: k["serviceaccount"]["name"].as_str()?.to_string(),
            service_account_uid: k["serviceaccount"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            expires: body["exp"].as_i64(),
            secret: k["secret"]["name"].as_str().map(String::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_our_key() {
        let signer = TokenSigner::new(None).unwrap();
        let claims = Claims {
            namespace: "ns".into(),
            service_account: "sa".into(),
            service_account_uid: "u1".into(),
            expires: Some(100),
            secret: None,
        };
        let token = signer.mint(&claims);
        assert_eq!(signer.verify(&token), Some(claims.clone()));
        let other = TokenSigner::new(None).unwrap();
        assert_eq!(other.verify(&token), None);
        // A tenant's keys: trusted only where its public key is listed.
        let (a, b) = (vec![1u8, 2, 3], vec![4u8, 5, 6]);
        let tenant = TokenSigner::for_keys("https://t", &a, std::slice::from_ref(&a));
        let token_a = tenant.mint(&claims);
        assert!(tenant.verify(&token_a).is_some());
        assert!(
            TokenSigner::for_keys("https://t", &b, &[b.clone(), a.clone()])
                .verify(&token_a)
                .is_some()
        );
        assert!(
            TokenSigner::for_keys("https://t", &a, std::slice::from_ref(&b))
                .verify(&token_a)
                .is_none()
        );
        assert!(
            TokenSigner::for_keys("https://other", &a, std::slice::from_ref(&a))
                .verify(&token_a)
                .is_none()
        );
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert_eq!(signer.verify(&tampered), None);
    }
}
