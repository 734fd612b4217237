//! Authentication: who is asking. Client certificates signed by the server's
//! CA (CN is the user, O the groups) and ServiceAccount bearer tokens, which
//! are JWTs signed as kube-apiserver signs them ([`jwt`]: ES256/ES384/RS256
//! with a private key, verified with public keys): minted by the
//! TokenRequest subresource (with an expiry) or written into
//! `kubernetes.io/service-account-token` Secrets (valid while the Secret is).
//! Tenant kube-apiservers with a front-proxy CA also take the user from request
//! headers ([`requestheader`]).

mod jwt;
mod requestheader;

pub use jwt::{SigningKey, VerifyingKey};
pub use requestheader::{PeerCert, RequestHeader, RequestHeaderFlags};

use std::collections::BTreeMap;
use std::path::Path;

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
    key: SigningKey,
    /// Keys whose tokens are accepted (the signing key among them, unless a tenant's
    /// `--service-account-key-file` leaves it out).
    trusted: Vec<VerifyingKey>,
    issuer: String,
    /// Tokens whose signature already checked out (kube-apiserver keeps a
    /// token cache too): a client sends the same token with every request,
    /// and an ECDSA verification per request dominated bulk writes. Sound
    /// because `trusted` never changes; expiry and the account's existence
    /// are checked by the caller on every request.
    verified: std::sync::Mutex<std::collections::HashMap<String, Claims>>,
}

/// Verified tokens kept before the cache starts over.
const VERIFIED_CACHE: usize = 1024;

const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner")
    }
}

impl TokenSigner {
    /// A signer with an ECDSA P-256 key kept in `dir` (so tokens survive a restart),
    /// or a fresh key when there is no state directory. A key file this code cannot
    /// read (an older testenv's HMAC secret) is replaced.
    pub fn new(dir: Option<&Path>) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let path = dir.map(|d| d.join("token-signing.key"));
        let kept = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|pem| SigningKey::from_pem(&pem).ok());
        let key = match kept {
            Some(key) => key,
            None => {
                let (key, pem) = SigningKey::generate().map_err(invalid)?;
                if let Some(p) = &path {
                    crate::kubeconfig::write_private(p, &pem)?;
                }
                key
            }
        };
        Ok(Self {
            trusted: vec![key.verifying_key()],
            key,
            issuer: DEFAULT_ISSUER.into(),
            verified: Default::default(),
        })
    }

    /// A tenant kube-apiserver's signer: tokens name `issuer` and are signed with
    /// `signing` (from `--service-account-signing-key-file`), and are accepted when
    /// signed with a key of `--service-account-key-file` (SPKI DER; keys of a type
    /// kube-apiserver does not take are ignored).
    pub fn for_keys(issuer: &str, signing: SigningKey, trusted_spkis: &[Vec<u8>]) -> Self {
        Self {
            key: signing,
            trusted: trusted_spkis
                .iter()
                .filter_map(|k| VerifyingKey::from_spki(k))
                .collect(),
            issuer: issuer.into(),
            verified: Default::default(),
        }
    }

    pub fn mint(&self, claims: &Claims) -> String {
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
        // Signing with a key that parsed cannot fail short of a broken library;
        // an empty token is then refused like any invalid one.
        self.key.sign(&body.to_string()).unwrap_or_default()
    }

    /// The claims of a token this server signed; `None` for anything else.
    /// Expiry and the existence of the account are the caller's to check.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        if let Some(claims) = self
            .verified
            .lock()
            .ok()
            .and_then(|c| c.get(token).cloned())
        {
            return Some(claims);
        }
        let claims = self.verify_signed(token)?;
        if let Ok(mut c) = self.verified.lock() {
            if c.len() >= VERIFIED_CACHE {
                c.clear();
            }
            c.insert(token.to_string(), claims.clone());
        }
        Some(claims)
    }

    fn verify_signed(&self, token: &str) -> Option<Claims> {
        let payload = jwt::verify(token, &self.trusted)?;
        let body: Value = serde_json::from_slice(&payload).ok()?;
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
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
        use rcgen::PublicKeyData;
        let ec = rcgen::KeyPair::generate().unwrap();
        let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let signing = |k: &rcgen::KeyPair| SigningKey::from_pem(&k.serialize_pem()).unwrap();
        let (a, b) = (ec.subject_public_key_info(), rsa.subject_public_key_info());
        let tenant = TokenSigner::for_keys("https://t", signing(&ec), std::slice::from_ref(&a));
        let token_a = tenant.mint(&claims);
        assert!(token_a.starts_with(&URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","#)));
        assert!(tenant.verify(&token_a).is_some());
        let by_rsa = TokenSigner::for_keys("https://t", signing(&rsa), &[b.clone(), a.clone()]);
        assert!(by_rsa.verify(&token_a).is_some());
        let token_b = by_rsa.mint(&claims);
        assert!(token_b.starts_with(&URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","#)));
        assert_eq!(by_rsa.verify(&token_b), Some(claims.clone()));
        assert!(tenant.verify(&token_b).is_none());
        assert!(
            TokenSigner::for_keys("https://t", signing(&ec), std::slice::from_ref(&b))
                .verify(&token_a)
                .is_none()
        );
        assert!(
            TokenSigner::for_keys("https://other", signing(&ec), std::slice::from_ref(&a))
                .verify(&token_a)
                .is_none()
        );
        // A token claiming another algorithm than its key's is refused.
        let (_, rest) = token_a.split_once('.').unwrap();
        let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#));
        assert!(tenant.verify(&forged).is_none());
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert_eq!(signer.verify(&tampered), None);
    }
}
