//! The keys of ServiceAccount tokens, as kube-apiserver uses them: a private key
//! (PKCS#8; ECDSA P-256/P-384 or RSA) signs ES256/ES384/RS256 JWTs, and public keys
//! (SubjectPublicKeyInfo DER) verify them, so any JWT library holding the public key
//! of `--service-account-key-file` can check a token testenv minted.

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

enum Private {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A token signing key.
pub struct SigningKey {
    key: Private,
    alg: &'static str,
    kid: String,
}

/// A key tokens are accepted from.
pub struct VerifyingKey {
    alg: &'static str,
    /// The bits of the SPKI's subjectPublicKey (an EC point or a PKCS#1 RSA key).
    key: Vec<u8>,
}

/// upstream's `kid`: the unpadded base64url SHA-256 of the public key's SPKI DER.
fn key_id(spki: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, spki))
}

impl SigningKey {
    /// A key from PKCS#8 DER, with the SPKI DER of its public half.
    pub fn from_pkcs8(pkcs8: &[u8], spki: &[u8]) -> Result<Self, String> {
        let kid = key_id(spki);
        for (alg, ec) in [
            ("ES256", &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            ("ES384", &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            if let Ok(key) = EcdsaKeyPair::from_pkcs8(ec, pkcs8) {
                let kid = kid.clone();
                return Ok(Self {
                    key: Private::Ec(key),
                    alg,
                    kid,
                });
            }
        }
        let key = RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|e| format!("not an ECDSA P-256/P-384 or RSA private key: {e}"))?;
        Ok(Self {
            key: Private::Rsa(key),
            alg: "RS256",
            kid,
        })
    }

    /// A fresh ECDSA P-256 key, and its PEM (PKCS#8) to keep.
    pub fn generate() -> Result<(Self, String), String> {
        use rcgen::PublicKeyData;
        let pair = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let key = Self::from_pkcs8(&pair.serialize_der(), &pair.subject_public_key_info())?;
        Ok((key, pair.serialize_pem()))
    }

    /// A key from PEM (as `--service-account-signing-key-file` holds it).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use rcgen::PublicKeyData;
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| e.to_string())?;
        Self::from_pkcs8(&pair.serialize_der(), &pair.subject_public_key_info())
    }

    /// The public half, to trust what this key signs.
    pub fn verifying_key(&self) -> VerifyingKey {
        let key = match &self.key {
            Private::Ec(k) => k.public_key().as_ref().to_vec(),
            Private::Rsa(k) => k.public_key().as_ref().to_vec(),
        };
        VerifyingKey { alg: self.alg, key }
    }

    /// `header.payload.signature` for a JSON payload.
    pub fn sign(&self, payload: &str) -> Result<String, String> {
        let header = serde_json::json!({"alg": self.alg, "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Private::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .map_err(|_| "ECDSA signing failed".to_string())?
                .as_ref()
                .to_vec(),
            Private::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| "RSA signing failed".to_string())?;
                sig
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

impl VerifyingKey {
    /// A key from SubjectPublicKeyInfo DER; None for key types kube-apiserver refuses.
    pub fn from_spki(spki: &[u8]) -> Option<Self> {
        let (_, info) = SubjectPublicKeyInfo::from_der(spki).ok()?;
        let key = info.subject_public_key.data.to_vec();
        let alg = match info.algorithm.algorithm.to_id_string().as_str() {
            // id-ecPublicKey: the curve decides; an uncompressed point's length names it.
            "1.2.840.10045.2.1" => match key.len() {
                65 => "ES256",
                97 => "ES384",
                _ => return None,
            },
            "1.2.840.113549.1.1.1" => "RS256",
            _ => return None,
        };
        Some(Self { alg, key })
    }

    fn verify(&self, alg: &str, input: &[u8], sig: &[u8]) -> bool {
        if alg != self.alg {
            return false;
        }
        let scheme: &'static dyn signature::VerificationAlgorithm = match self.alg {
            "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
            "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
            _ => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(scheme, &self.key)
            .verify(input, sig)
            .is_ok()
    }
}

/// The payload of a token signed by one of `keys`; None for anything else.
pub fn verify(token: &str, keys: &[VerifyingKey]) -> Option<Vec<u8>> {
    let (input, sig) = token.rsplit_once('.')?;
    let (header, payload) = input.split_once('.')?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let alg = header["alg"].as_str()?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    keys.iter()
        .any(|k| k.verify(alg, input.as_bytes(), &sig))
        .then(|| URL_SAFE_NO_PAD.decode(payload).ok())?
}
