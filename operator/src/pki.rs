//! PKI of hosted control planes, generated with rcgen: the `k8s` bundle of
//! Secret `k8s-certs` (KubeFlex's keys), client certificates for kubeconfigs,
//! and the CAs the operator hands to `k3s`.
//!
//! Pure: the clock (`now`) is an argument. CAs are generated once and
//! reloaded from their Secret; leaves are renewed from the stored CA when
//! less than `renew_fraction` of their life is left. No `Debug` prints a key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::config::{PkiAlgorithm, PkiConfig};
use crate::names;

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
        // ExplicitNoCa: rcgen writes the SKI (and CA:false) only for it.
        params.is_ca = IsCa::ExplicitNoCa;
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

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn now() -> Timestamp {
        Timestamp::from_second(1_750_000_000).unwrap()
    }

    fn names() -> ServingNames {
        ServingNames::for_k8s(
            "cp1",
            "localtest.me",
            "kubeflex-control-plane",
            None,
            Some("10.96.12.34".parse().unwrap()),
        )
    }

    fn der(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    /// Checks `leaf` is signed by `ca` and carries AKI == the CA's SKI.
    fn assert_signed_by(leaf: &str, ca: &str) {
        let (leaf_der, ca_der) = (der(leaf), der(ca));
        let (_, l) = X509Certificate::from_der(&leaf_der).unwrap();
        let (_, c) = X509Certificate::from_der(&ca_der).unwrap();
        l.verify_signature(Some(c.public_key()))
            .expect("signed by the CA");
        assert_eq!(l.issuer(), c.subject());
        let (li, ci) = (inspect(leaf).unwrap(), inspect(ca).unwrap());
        assert!(ci.subject_key_id.is_some());
        assert_eq!(li.authority_key_id, ci.subject_key_id, "AKI = issuer SKI");
        assert!(li.subject_key_id.is_some(), "leaves carry an SKI");
    }

    fn cfg() -> PkiConfig {
        PkiConfig::default()
    }

    #[test]
    fn bundle_chains_to_its_cas_with_a_separate_front_proxy_ca() {
        let pki = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let ca = pki.ca.cert_pem();
        assert_signed_by(&pki.apiserver.cert_pem, ca);
        assert_signed_by(&pki.kubelet_client.cert_pem, ca);
        assert_signed_by(
            &pki.front_proxy_client.cert_pem,
            pki.front_proxy_ca.cert_pem(),
        );
        assert_ne!(pki.ca.cert_pem(), pki.front_proxy_ca.cert_pem());
        let (fp_der, ca_der) = (der(&pki.front_proxy_client.cert_pem), der(ca));
        let (_, fp) = X509Certificate::from_der(&fp_der).unwrap();
        let (_, c) = X509Certificate::from_der(&ca_der).unwrap();
        assert!(fp.verify_signature(Some(c.public_key())).is_err());
        // Self-signed CAs with KubeFlex's subject and a 10-year life.
        c.verify_signature(None).expect("self-signed");
        assert_eq!(
            c.subject().to_string(),
            "O=Kubernetes, OU=API Server, CN=kubernetes"
        );
        assert!(c.is_ca());
        let info = inspect(ca).unwrap();
        assert_eq!(info.not_after - now().as_second(), 3650 * 86_400);
        assert_eq!(
            now().as_second() - info.not_before,
            3600,
            "backdated one hour"
        );
    }

    #[test]
    fn serving_certificate_has_kubeflex_sans_plus_ips() {
        let pki = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let info = inspect(&pki.apiserver.cert_pem).unwrap();
        for dns in [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster",
            "kubernetes.default.svc.cluster.local",
            "localhost",
            "kubeflex-control-plane",
            "cp1.cp1-system",
            "cp1.cp1-system.svc",
            "cp1.cp1-system.svc.cluster",
            "cp1.cp1-system.svc.cluster.local",
            "cp1.localtest.me",
        ] {
            assert!(info.dns_names.iter().any(|d| d == dns), "SAN {dns}");
        }
        assert_eq!(
            info.ips,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "10.96.12.34".parse().unwrap()
            ]
        );
        assert_eq!(info.not_after - now().as_second(), 365 * 86_400);
    }

    #[test]
    fn key_usages_and_ekus_fit_each_role() {
        let pki = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let check = |pem: &str, server: bool, client: bool| {
            let d = der(pem);
            let (_, c) = X509Certificate::from_der(&d).unwrap();
            let ku = c.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature());
            assert!(!ku.key_cert_sign());
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert_eq!((eku.server_auth, eku.client_auth), (server, client));
            assert!(!c.is_ca());
        };
        check(&pki.apiserver.cert_pem, true, true);
        check(&pki.kubelet_client.cert_pem, false, true);
        check(&pki.front_proxy_client.cert_pem, false, true);
        let d = der(pki.ca.cert_pem());
        let (_, ca) = X509Certificate::from_der(&d).unwrap();
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
    }

    #[test]
    fn serials_are_random_and_unique() {
        let a = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let b = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let mut serials: Vec<Vec<u8>> = [&a, &b]
            .iter()
            .flat_map(|p| {
                [
                    p.ca.cert_pem().to_string(),
                    p.front_proxy_ca.cert_pem().to_string(),
                    p.apiserver.cert_pem.clone(),
                    p.kubelet_client.cert_pem.clone(),
                    p.front_proxy_client.cert_pem.clone(),
                ]
            })
            .map(|pem| inspect(&pem).unwrap().serial)
            .collect();
        assert!(serials.iter().all(|s| s.len() == 16));
        serials.sort();
        serials.dedup();
        assert_eq!(serials.len(), 10);
    }

    #[test]
    fn secret_data_has_kubeflex_keys_and_loads_back() {
        let pki = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let data = pki.to_secret_data();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "apiserver-kubelet-client.crt",
                "apiserver-kubelet-client.key",
                "apiserver.crt",
                "apiserver.key",
                "ca.crt",
                "ca.key",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "front-proxy-client.crt",
                "front-proxy-client.key",
                "sa.key",
                "sa.pub",
            ]
        );
        assert!(
            String::from_utf8_lossy(&data["sa.pub"].0).starts_with("-----BEGIN PUBLIC KEY-----")
        );
        assert!(
            String::from_utf8_lossy(&data["sa.key"].0).starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let loaded = ControlPlanePki::from_secret_data(&data).unwrap();
        assert_eq!(loaded, pki);
        // A loaded CA signs with AKI = its stored SKI.
        let client = loaded
            .ca
            .issue_client(&ClientIdentity::admin(), &cfg(), now())
            .unwrap();
        assert_signed_by(&client.cert_pem, pki.ca.cert_pem());
    }

    #[test]
    fn loading_names_the_missing_or_bad_key() {
        let pki = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let mut data = pki.to_secret_data();
        data.remove("sa.pub");
        let err = ControlPlanePki::from_secret_data(&data).unwrap_err();
        assert_eq!(err.to_string(), "Secret k8s-certs: key sa.pub is missing");
        data = pki.to_secret_data();
        data.insert("ca.key".into(), ByteString(b"garbage".to_vec()));
        let err = ControlPlanePki::from_secret_data(&data).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret k8s-certs: key ca.key is not a valid private key"
        );
    }

    #[test]
    fn renewal_keeps_cas_and_sans_and_changes_serials() {
        let cfg = cfg();
        let mut pki = ControlPlanePki::generate(&names(), &cfg, now()).unwrap();
        let before = ControlPlanePki::from_secret_data(&pki.to_secret_data()).unwrap();
        // Fresh: nothing to do.
        assert!(pki.renew(&names(), &cfg, now()).unwrap().is_empty());
        // 300 of 365 days later, less than 30% of the life is left.
        let later = now() + k8s_openapi::jiff::SignedDuration::from_hours(300 * 24);
        let renewed = pki.renew(&names(), &cfg, later).unwrap();
        assert_eq!(
            renewed,
            [
                "apiserver.crt",
                "apiserver-kubelet-client.crt",
                "front-proxy-client.crt"
            ]
        );
        assert_eq!(pki.ca, before.ca);
        assert_eq!(pki.front_proxy_ca, before.front_proxy_ca);
        assert_eq!(pki.service_account, before.service_account);
        let (old, new) = (
            inspect(&before.apiserver.cert_pem).unwrap(),
            inspect(&pki.apiserver.cert_pem).unwrap(),
        );
        assert_eq!(old.dns_names, new.dns_names);
        assert_eq!(old.ips, new.ips);
        assert_ne!(old.serial, new.serial);
        assert_eq!(new.not_before, later.as_second() - 3600);
        assert_signed_by(&pki.apiserver.cert_pem, pki.ca.cert_pem());
        assert_signed_by(
            &pki.front_proxy_client.cert_pem,
            pki.front_proxy_ca.cert_pem(),
        );
        assert!(pki.renew(&names(), &cfg, later).unwrap().is_empty());
    }

    #[test]
    fn a_new_san_reissues_only_the_serving_certificate() {
        let cfg = cfg();
        let mut pki = ControlPlanePki::generate(&names(), &cfg, now()).unwrap();
        let with_route = ServingNames::for_k8s(
            "cp1",
            "localtest.me",
            "kubeflex-control-plane",
            Some("cp1-cp1-system.apps.example.com"),
            Some("10.96.12.34".parse().unwrap()),
        );
        assert_eq!(
            pki.renew(&with_route, &cfg, now()).unwrap(),
            ["apiserver.crt"]
        );
        let info = inspect(&pki.apiserver.cert_pem).unwrap();
        assert!(
            info.dns_names
                .contains(&"cp1-cp1-system.apps.example.com".to_string())
        );
    }

    #[test]
    fn client_certificates_from_another_ca_need_reissue() {
        let cfg = cfg();
        let a = ControlPlanePki::generate(&names(), &cfg, now()).unwrap();
        let b = ControlPlanePki::generate(&names(), &cfg, now()).unwrap();
        let admin =
            a.ca.issue_client(&ClientIdentity::admin(), &cfg, now())
                .unwrap();
        assert!(!a.ca.needs_reissue(&admin.cert_pem, &cfg, now()));
        assert!(b.ca.needs_reissue(&admin.cert_pem, &cfg, now()));
        assert!(a.ca.needs_reissue("not a certificate", &cfg, now()));
        let d = der(&admin.cert_pem);
        let (_, c) = X509Certificate::from_der(&d).unwrap();
        assert_eq!(
            c.subject().to_string(),
            "O=system:masters, CN=kubernetes-admin"
        );
        let cm =
            a.ca.issue_client(&ClientIdentity::controller_manager(), &cfg, now())
                .unwrap();
        let d = der(&cm.cert_pem);
        let (_, c) = X509Certificate::from_der(&d).unwrap();
        assert_eq!(c.subject().to_string(), "CN=system:kube-controller-manager");
    }

    #[test]
    fn rsa_2048_is_selectable() {
        let cfg = PkiConfig {
            algorithm: PkiAlgorithm::Rsa2048,
            ..PkiConfig::default()
        };
        let pki = ControlPlanePki::generate(&names(), &cfg, now()).unwrap();
        assert_signed_by(&pki.apiserver.cert_pem, pki.ca.cert_pem());
        let d = der(&pki.apiserver.cert_pem);
        let (_, c) = X509Certificate::from_der(&d).unwrap();
        match c.public_key().parsed().unwrap() {
            x509_parser::public_key::PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
            other => panic!("expected RSA, got {other:?}"),
        }
        assert!(c.key_usage().unwrap().unwrap().value.key_encipherment());
        // RSA bundles load back too.
        let loaded = ControlPlanePki::from_secret_data(&pki.to_secret_data()).unwrap();
        assert_eq!(loaded, pki);
    }

    #[test]
    fn debug_never_prints_keys() {
        let pki = ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let k3s = K3sCas::generate(&cfg(), now()).unwrap();
        let text = format!("{pki:?} {k3s:?}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains(k3s.token_secret.expose()));
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn k3s_cas_round_trip_and_token_pins_the_server_ca() {
        let k3s = K3sCas::generate(&cfg(), now()).unwrap();
        let data = k3s.to_secret_data();
        assert_eq!(data.len(), 7);
        let loaded = K3sCas::from_secret_data(&data).unwrap();
        assert_eq!(loaded, k3s);
        let token = k3s.full_token();
        let (hash, secret) = token
            .strip_prefix("K10")
            .unwrap()
            .split_once("::server:")
            .unwrap();
        assert_eq!(hash.len(), 64);
        assert_eq!(secret, k3s.token_secret.expose());
        let admin = k3s
            .client_ca
            .issue_client(&K3sCas::admin_identity(), &cfg(), now())
            .unwrap();
        assert_signed_by(&admin.cert_pem, k3s.client_ca.cert_pem());
    }

    #[test]
    fn random_tokens_are_alphanumeric_and_distinct() {
        let a = random_token(40).unwrap();
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_token(40).unwrap());
    }

    #[test]
    fn ecdsa_generation_is_lean() {
        // Not the benchmark (that is `cargo bench`), a guard against a
        // regression by orders of magnitude even in debug builds.
        // Warm up: aws-lc's one-time initialisation is not per control plane.
        ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        let start = std::time::Instant::now();
        for _ in 0..10 {
            ControlPlanePki::generate(&names(), &cfg(), now()).unwrap();
        }
        let per = start.elapsed() / 10;
        assert!(
            per < std::time::Duration::from_millis(50),
            "{per:?} per bundle"
        );
    }
}
