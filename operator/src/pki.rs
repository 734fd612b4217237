//! PKI of hosted control planes, generated with rcgen: the `k8s` bundle of
//! Secret `k8s-certs` (KubeFlex's keys), client certificates for kubeconfigs,
//! and the CAs the operator hands to `k3s`.
//!
//! Pure: the clock (`now`) is an argument. CAs are generated once and
//! reloaded from their Secret; leaves are renewed from the stored CA when
//! less than `renew_fraction` of their life is left. No `Debug` prints a key.

mod k3s;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PKCS_RSA_SHA256, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::config::{PkiAlgorithm, PkiConfig};
use crate::names;

pub use k3s::{K3S_CA_FILES, K3S_TOKEN_KEY, K3sCas};

/// A PKI failure; names the role or Secret key concerned, never key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Key generation failed.
    #[error("generating the {role} key")]
    KeyGeneration {
        role: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// Building or signing a certificate failed.
    #[error("issuing the {role} certificate")]
    Issue {
        role: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// The system random number generator failed.
    #[error("the random number generator failed")]
    Random,
    /// The configured validity does not fit a certificate.
    #[error("certificate validity {validity:?} from {now} is out of range")]
    Validity { now: Timestamp, validity: Duration },
    /// A Secret lacks a key.
    #[error("Secret {secret}: key {key} is missing")]
    MissingKey { secret: &'static str, key: String },
    /// A Secret key holds something unusable.
    #[error("Secret {secret}: key {key} is not a valid {what}")]
    Invalid {
        secret: &'static str,
        key: String,
        what: &'static str,
    },
}

type Result<T, E = PkiError> = std::result::Result<T, E>;

/// PEM text of a private key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPem(String);

impl KeyPem {
    /// The PEM text (`PRIVATE KEY`, PKCS#8), for a Secret or a kubeconfig.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPem(<redacted>)")
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertAndKey {
    /// `CERTIFICATE` PEM.
    pub cert_pem: String,
    /// Private key PEM.
    pub key: KeyPem,
}

/// A CA able to sign: its certificate PEM and an issuer holding its key.
pub struct CertificateAuthority {
    role: &'static str,
    cert_pem: String,
    key: KeyPem,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CertificateAuthority {
    fn eq(&self, other: &Self) -> bool {
        self.cert_pem == other.cert_pem && self.key == other.key
    }
}

/// Who a client certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Role name used in errors.
    pub role: &'static str,
    /// User name (CN).
    pub common_name: String,
    /// Groups (O).
    pub organizations: Vec<String>,
}

impl ClientIdentity {
    /// `kubernetes-admin` in `system:masters`, as KubeFlex's admin kubeconfigs.
    pub fn admin() -> Self {
        Self {
            role: "admin client",
            common_name: "kubernetes-admin".into(),
            organizations: vec!["system:masters".into()],
        }
    }

    /// `system:kube-controller-manager`, as KubeFlex's `cm-kubeconfig`.
    pub fn controller_manager() -> Self {
        Self {
            role: "controller-manager client",
            common_name: "system:kube-controller-manager".into(),
            organizations: Vec::new(),
        }
    }
}

/// Validity window of new certificates.
#[derive(Clone, Copy, Debug)]
struct Window {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Window {
    fn new(now: Timestamp, backdate: Duration, validity: Duration) -> Result<Self> {
        let err = || PkiError::Validity { now, validity };
        let now = OffsetDateTime::from_unix_timestamp(now.as_second()).map_err(|_| err())?;
        let back = time::Duration::try_from(backdate).map_err(|_| err())?;
        let valid = time::Duration::try_from(validity).map_err(|_| err())?;
        Ok(Self {
            not_before: now.checked_sub(back).ok_or_else(err)?,
            not_after: now.checked_add(valid).ok_or_else(err)?,
        })
    }

    fn ca(cfg: &PkiConfig, now: Timestamp) -> Result<Self> {
        Self::new(now, cfg.backdate, cfg.ca_validity)
    }

    fn leaf(cfg: &PkiConfig, now: Timestamp) -> Result<Self> {
        Self::new(now, cfg.backdate, cfg.leaf_validity)
    }
}

fn generate_key(alg: PkiAlgorithm, role: &'static str) -> Result<KeyPair> {
    let sig = match alg {
        PkiAlgorithm::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
        // aws-lc-rs is the only rcgen backend that generates RSA keys;
        // `generate_for` with an RSA algorithm yields a 2048-bit key.
        PkiAlgorithm::Rsa2048 => &PKCS_RSA_SHA256,
    };
    KeyPair::generate_for(sig).map_err(|source| PkiError::KeyGeneration { role, source })
}

/// The SubjectKeyIdentifier extension (2.5.29.14) with rcgen's key id of
/// `key`: its value is the DER OCTET STRING of the id.
fn subject_key_identifier(params: &CertificateParams, key: &KeyPair) -> CustomExtension {
    let id = params.key_identifier(key);
    // Key ids are hashes of at most 32 bytes, so the short length form fits.
    let mut value = Vec::with_capacity(id.len() + 2);
    value.push(0x04);
    value.push(id.len() as u8);
    value.extend_from_slice(&id);
    CustomExtension::from_oid_content(&[2, 5, 29, 14], value)
}

/// 128 random bits, positive: unique per certificate (KubeFlex reuses fixed serials).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    // Positive and of constant length: clear the sign bit, set the next one.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Random password or token text: `len` characters of `[A-Za-z0-9]`.
pub fn random_token(len: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        aws_lc_rs::rand::fill(&mut buf).map_err(|_| PkiError::Random)?;
        // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
        out.extend(
            buf.iter()
                .filter(|b| **b < 248)
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .take(len - out.len()),
        );
    }
    Ok(out)
}

fn dn(common_name: &str, organizations: &[&str], unit: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    if let Some(ou) = unit {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// What a leaf certificate is for.
struct LeafSpec<'a> {
    role: &'static str,
    dn: DistinguishedName,
    sans: &'a [String],
    ips: &'a [IpAddr],
    server: bool,
    client: bool,
}

impl CertificateAuthority {
    /// A new self-signed CA.
    fn generate(
        role: &'static str,
        subject: DistinguishedName,
        cfg: &PkiConfig,
        now: Timestamp,
    ) -> Result<Self> {
        let key = generate_key(cfg.algorithm, role)?;
        let window = Window::ca(cfg, now)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        params.not_before = window.not_before;
        params.not_after = window.not_after;
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Issue { role, source })?;
        let key_pem = KeyPem(key.serialize_pem());
        Ok(Self {
            role,
            cert_pem: cert.pem(),
            key: key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA stored in `secret` under `crt_key` / `key_key`.
    fn load(
        role: &'static str,
        secret: &'static str,
        data: &BTreeMap<String, ByteString>,
        crt_key: &str,
        key_key: &str,
    ) -> Result<Self> {
        let cert_pem = text(secret, data, crt_key)?;
        let key_pem = text(secret, data, key_key)?;
        let invalid = |key: &str, what| PkiError::Invalid {
            secret,
            key: key.into(),
            what,
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|_| invalid(key_key, "private key"))?;
        // The issuer takes subject and SKI from the stored certificate, so new
        // leaves carry AKI = this CA's SKI even when it was made elsewhere.
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|_| invalid(crt_key, "CA certificate"))?;
        Ok(Self {
            role,
            cert_pem,
            key: KeyPem(key_pem),
            issuer,
        })
    }

    /// The CA certificate PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key PEM.
    pub fn key(&self) -> &KeyPem {
        &self.key
    }

    fn issue(&self, spec: &LeafSpec<'_>, cfg: &PkiConfig, now: Timestamp) -> Result<CertAndKey> {
        let role = spec.role;
        let key = generate_key(cfg.algorithm, role)?;
        let window = Window::leaf(cfg, now)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = spec.dn.clone();
        // No BasicConstraints on leaves, as kubeadm does: rcgen's ExplicitNoCa
        // encodes `cA: FALSE`, a DEFAULT value DER forbids, which strict parsers
        // (Go's, Python's `cryptography`) refuse. The SKI that ExplicitNoCa
        // would have brought is added on its own.
        params.is_ca = IsCa::NoCa;
        params
            .custom_extensions
            .push(subject_key_identifier(&params, &key));
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        params.not_before = window.not_before;
        params.not_after = window.not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if cfg.algorithm == PkiAlgorithm::Rsa2048 {
            // RSA key exchange (TLS 1.2) encrypts with the key; ECDSA never does.
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        if spec.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if spec.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let mut sans = Vec::with_capacity(spec.sans.len() + spec.ips.len());
        for name in spec.sans {
            let dns = name
                .clone()
                .try_into()
                .map_err(|e| PkiError::Issue { role, source: e })?;
            sans.push(rcgen::SanType::DnsName(dns));
        }
        sans.extend(spec.ips.iter().map(|ip| rcgen::SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| PkiError::Issue { role, source })?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key: KeyPem(key.serialize_pem()),
        })
    }

    /// A client certificate for a kubeconfig.
    pub fn issue_client(
        &self,
        who: &ClientIdentity,
        cfg: &PkiConfig,
        now: Timestamp,
    ) -> Result<CertAndKey> {
        let orgs: Vec<&str> = who.organizations.iter().map(String::as_str).collect();
        let spec = LeafSpec {
            role: who.role,
            dn: dn(&who.common_name, &orgs, None),
            sans: &[],
            ips: &[],
            server: false,
            client: true,
        };
        self.issue(&spec, cfg, now)
    }

    /// Whether `cert_pem` must be (re)issued: unparsable, not signed by this CA
    /// (its AKI differs from our SKI), or less than `renew_fraction` of its
    /// life left at `now`.
    pub fn needs_reissue(&self, cert_pem: &str, cfg: &PkiConfig, now: Timestamp) -> bool {
        let (Ok(ca), Ok(leaf)) = (inspect(&self.cert_pem), inspect(cert_pem)) else {
            return true;
        };
        leaf.authority_key_id.is_none()
            || leaf.authority_key_id != ca.subject_key_id
            || leaf.renewal_due(cfg.renew_fraction, now)
    }
}

fn text(secret: &'static str, data: &BTreeMap<String, ByteString>, key: &str) -> Result<String> {
    let bytes = data.get(key).ok_or_else(|| PkiError::MissingKey {
        secret,
        key: key.into(),
    })?;
    String::from_utf8(bytes.0.clone()).map_err(|_| PkiError::Invalid {
        secret,
        key: key.into(),
        what: "UTF-8 PEM text",
    })
}

/// What the operator needs to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Serial number, big-endian.
    pub serial: Vec<u8>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// Subject key identifier.
    pub subject_key_id: Option<Vec<u8>>,
    /// Authority key identifier.
    pub authority_key_id: Option<Vec<u8>>,
}

impl CertificateInfo {
    /// Less than `fraction` of the lifetime left at `now` (or already expired).
    pub fn renewal_due(&self, fraction: f64, now: Timestamp) -> bool {
        let life = (self.not_after - self.not_before).max(1) as f64;
        let left = (self.not_after - now.as_second()) as f64;
        left < life * fraction
    }
}

/// The text is not a PEM X.509 certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a PEM X.509 certificate")]
pub struct NotACertificate;

/// Parses a PEM certificate.
pub fn inspect(cert_pem: &str) -> Result<CertificateInfo, NotACertificate> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|_| NotACertificate)?;
    let cert = pem.parse_x509().map_err(|_| NotACertificate)?;
    let mut info = CertificateInfo {
        serial: cert.raw_serial().to_vec(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names: Vec::new(),
        ips: Vec::new(),
        subject_key_id: None,
        authority_key_id: None,
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => info.dns_names.push((*d).to_string()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                                info.ips.push(IpAddr::from(v4));
                            } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                                info.ips.push(IpAddr::from(v6));
                            }
                        }
                        _ => {}
                    }
                }
            }
            ParsedExtension::SubjectKeyIdentifier(ki) => info.subject_key_id = Some(ki.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                info.authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            _ => {}
        }
    }
    Ok(info)
}

/// Names the API server certificate must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServingNames {
    /// DNS SANs, in order, without duplicates.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
}

impl ServingNames {
    /// KubeFlex's SANs of a `k8s` API server (§6) plus `127.0.0.1`, the
    /// Service's clusterIP when known, and the Route host on OpenShift.
    pub fn for_k8s(
        cp_name: &str,
        domain: &str,
        host_container: &str,
        route_host: Option<&str>,
        cluster_ip: Option<IpAddr>,
    ) -> Self {
        let ns = names::namespace_of(cp_name);
        let mut dns: Vec<String> = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        dns.push(host_container.into());
        for suffix in ["", ".svc", ".svc.cluster", ".svc.cluster.local"] {
            dns.push(format!("{cp_name}.{ns}{suffix}"));
        }
        dns.push(format!("{cp_name}.{domain}"));
        dns.extend(route_host.map(String::from));
        let mut seen = std::collections::BTreeSet::new();
        dns.retain(|d| seen.insert(d.clone()));
        let mut ips = vec![IpAddr::from([127, 0, 0, 1])];
        ips.extend(cluster_ip.filter(|ip| !ip.is_loopback()));
        Self { dns, ips }
    }

    /// Whether a certificate already covers every name.
    fn covered_by(&self, info: &CertificateInfo) -> bool {
        self.dns.iter().all(|d| info.dns_names.contains(d))
            && self.ips.iter().all(|ip| info.ips.contains(ip))
    }
}

/// The service-account key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAccountKey {
    /// `sa.key`.
    pub private: KeyPem,
    /// `sa.pub`, PKIX `PUBLIC KEY`.
    pub public_pem: String,
}

/// The PKI of a `k8s` control plane (Secret `k8s-certs`).
#[derive(Debug, PartialEq)]
pub struct ControlPlanePki {
    /// Cluster CA: signs the serving certificate and every client.
    pub ca: CertificateAuthority,
    /// Separate CA of the aggregation layer's front proxy.
    pub front_proxy_ca: CertificateAuthority,
    /// `apiserver.crt` / `.key`.
    pub apiserver: CertAndKey,
    /// `apiserver-kubelet-client.crt` / `.key`.
    pub kubelet_client: CertAndKey,
    /// `front-proxy-client.crt` / `.key`.
    pub front_proxy_client: CertAndKey,
    /// `sa.key` / `sa.pub`.
    pub service_account: ServiceAccountKey,
}

const K8S_CERTS: &str = names::SECRET_K8S_CERTS;

fn apiserver_spec(names: &ServingNames) -> LeafSpec<'_> {
    LeafSpec {
        role: "apiserver",
        dn: dn("kube-apiserver", &[], None),
        sans: &names.dns,
        ips: &names.ips,
        // KubeFlex's serving certificate also allows client auth; kept.
        server: true,
        client: true,
    }
}

fn kubelet_client_spec() -> LeafSpec<'static> {
    LeafSpec {
        role: "apiserver-kubelet-client",
        // KubeFlex omits the group; the kubelet authorizes this identity.
        dn: dn("apiserver-kubelet-client", &["system:masters"], None),
        sans: &[],
        ips: &[],
        server: false,
        client: true,
    }
}

fn front_proxy_client_spec() -> LeafSpec<'static> {
    LeafSpec {
        role: "front-proxy-client",
        dn: dn("front-proxy-client", &[], None),
        sans: &[],
        ips: &[],
        server: false,
        client: true,
    }
}

impl ControlPlanePki {
    /// A new bundle: two CAs, three leaves, the SA key pair (one key each).
    pub fn generate(names: &ServingNames, cfg: &PkiConfig, now: Timestamp) -> Result<Self> {
        let ca = CertificateAuthority::generate(
            "cluster CA",
            dn("kubernetes", &["Kubernetes"], Some("API Server")),
            cfg,
            now,
        )?;
        let front_proxy_ca = CertificateAuthority::generate(
            "front-proxy CA",
            dn("front-proxy-ca", &[], None),
            cfg,
            now,
        )?;
        let apiserver = ca.issue(&apiserver_spec(names), cfg, now)?;
        let kubelet_client = ca.issue(&kubelet_client_spec(), cfg, now)?;
        let front_proxy_client = front_proxy_ca.issue(&front_proxy_client_spec(), cfg, now)?;
        let sa = generate_key(cfg.algorithm, "service-account")?;
        Ok(Self {
            ca,
            front_proxy_ca,
            apiserver,
            kubelet_client,
            front_proxy_client,
            service_account: ServiceAccountKey {
                private: KeyPem(sa.serialize_pem()),
                public_pem: sa.public_key_pem(),
            },
        })
    }

    /// Loads the bundle from the data of Secret `k8s-certs`.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<Self> {
        use names::*;
        let pair = |crt: &str, key: &str| -> Result<CertAndKey> {
            Ok(CertAndKey {
                cert_pem: text(K8S_CERTS, data, crt)?,
                key: KeyPem(text(K8S_CERTS, data, key)?),
            })
        };
        Ok(Self {
            ca: CertificateAuthority::load(
                "cluster CA",
                K8S_CERTS,
                data,
                CERT_CA_CRT,
                CERT_CA_KEY,
            )?,
            front_proxy_ca: CertificateAuthority::load(
                "front-proxy CA",
                K8S_CERTS,
                data,
                CERT_FRONT_PROXY_CA_CRT,
                CERT_FRONT_PROXY_CA_KEY,
            )?,
            apiserver: pair(CERT_APISERVER_CRT, CERT_APISERVER_KEY)?,
            kubelet_client: pair(CERT_KUBELET_CLIENT_CRT, CERT_KUBELET_CLIENT_KEY)?,
            front_proxy_client: pair(CERT_FRONT_PROXY_CLIENT_CRT, CERT_FRONT_PROXY_CLIENT_KEY)?,
            service_account: ServiceAccountKey {
                private: KeyPem(text(K8S_CERTS, data, CERT_SA_KEY)?),
                public_pem: text(K8S_CERTS, data, CERT_SA_PUB)?,
            },
        })
    }

    /// The data of Secret `k8s-certs`, KubeFlex's keys plus `front-proxy-ca.key`.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        use names::*;
        let entries: [(&str, &str); 12] = [
            (CERT_CA_CRT, &self.ca.cert_pem),
            (CERT_CA_KEY, self.ca.key.expose()),
            (CERT_APISERVER_CRT, &self.apiserver.cert_pem),
            (CERT_APISERVER_KEY, self.apiserver.key.expose()),
            (CERT_KUBELET_CLIENT_CRT, &self.kubelet_client.cert_pem),
            (CERT_KUBELET_CLIENT_KEY, self.kubelet_client.key.expose()),
            (CERT_FRONT_PROXY_CA_CRT, &self.front_proxy_ca.cert_pem),
            (CERT_FRONT_PROXY_CA_KEY, self.front_proxy_ca.key.expose()),
            (
                CERT_FRONT_PROXY_CLIENT_CRT,
                &self.front_proxy_client.cert_pem,
            ),
            (
                CERT_FRONT_PROXY_CLIENT_KEY,
                self.front_proxy_client.key.expose(),
            ),
            (CERT_SA_KEY, self.service_account.private.expose()),
            (CERT_SA_PUB, &self.service_account.public_pem),
        ];
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    /// Re-issues, from the stored CAs, every leaf that is due (see
    /// [`CertificateAuthority::needs_reissue`]), and the serving certificate
    /// also when it lacks one of `names`. CAs and the SA key never change.
    /// Returns the Secret keys of the renewed certificates (empty: no write needed).
    pub fn renew(
        &mut self,
        names: &ServingNames,
        cfg: &PkiConfig,
        now: Timestamp,
    ) -> Result<Vec<&'static str>> {
        let mut renewed = Vec::new();
        let serving_ok = inspect(&self.apiserver.cert_pem)
            .map(|info| names.covered_by(&info))
            .unwrap_or(false);
        if !serving_ok || self.ca.needs_reissue(&self.apiserver.cert_pem, cfg, now) {
            self.apiserver = self.ca.issue(&apiserver_spec(names), cfg, now)?;
            renewed.push(names::CERT_APISERVER_CRT);
        }
        if self
            .ca
            .needs_reissue(&self.kubelet_client.cert_pem, cfg, now)
        {
            self.kubelet_client = self.ca.issue(&kubelet_client_spec(), cfg, now)?;
            renewed.push(names::CERT_KUBELET_CLIENT_CRT);
        }
        if self
            .front_proxy_ca
            .needs_reissue(&self.front_proxy_client.cert_pem, cfg, now)
        {
            self.front_proxy_client =
                self.front_proxy_ca
                    .issue(&front_proxy_client_spec(), cfg, now)?;
            renewed.push(names::CERT_FRONT_PROXY_CLIENT_CRT);
        }
        Ok(renewed)
    }
}

#[cfg(test)]
mod tests;
