//! The command line of a tenant `kube-apiserver` checked as the real binary checks it
//! before serving: an unknown (or misspelt) flag stops it (`Error: unknown flag:
//! --x`), the service-account flags are required together, and the service-account
//! keys must parse. Messages are upstream's (`cmd/kube-apiserver/app/options`).

use x509_parser::pem::Pem;

use crate::runtime::PodSpec;

/// Every flag of kube-apiserver that a tenant's command line is likely to carry;
/// whole families (`--audit-*`, `--oidc-*`, `--etcd-*`, ...) are accepted by prefix.
const KNOWN: &[&str] = &[
    "admission-control-config-file",
    "advertise-address",
    "aggregator-reject-forwarding-redirect",
    "allow-metric-labels",
    "allow-privileged",
    "anonymous-auth",
    "api-audiences",
    "apiserver-count",
    "authentication-config",
    "authentication-token-webhook-cache-ttl",
    "authentication-token-webhook-config-file",
    "authentication-token-webhook-version",
    "authorization-config",
    "authorization-mode",
    "authorization-policy-file",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "authorization-webhook-config-file",
    "authorization-webhook-version",
    "bind-address",
    "cert-dir",
    "client-ca-file",
    "cloud-config",
    "cloud-provider",
    "contention-profiling",
    "cors-allowed-origins",
    "debug-socket-path",
    "default-not-ready-toleration-seconds",
    "default-unreachable-toleration-seconds",
    "default-watch-cache-size",
    "delete-collection-workers",
    "disable-admission-plugins",
    "disabled-metrics",
    "egress-selector-config-file",
    "emulated-version",
    "enable-admission-plugins",
    "enable-aggregator-routing",
    "enable-bootstrap-token-auth",
    "enable-garbage-collector",
    "enable-logs-handler",
    "enable-priority-and-fairness",
    "encryption-provider-config",
    "encryption-provider-config-automatic-reload",
    "endpoint-reconciler-type",
    "event-ttl",
    "external-hostname",
    "feature-gates",
    "goaway-chance",
    "help",
    "http2-max-streams-per-connection",
    "kubelet-certificate-authority",
    "kubelet-client-certificate",
    "kubelet-client-key",
    "kubelet-port",
    "kubelet-preferred-address-types",
    "kubelet-read-only-port",
    "kubelet-timeout",
    "kubernetes-service-node-port",
    "lease-reuse-duration-seconds",
    "livez-grace-period",
    "master-service-namespace",
    "max-connection-bytes-per-sec",
    "max-mutating-requests-inflight",
    "max-requests-inflight",
    "min-request-timeout",
    "permit-address-sharing",
    "permit-port-sharing",
    "profiling",
    "proxy-client-cert-file",
    "proxy-client-key-file",
    "request-timeout",
    "requestheader-allowed-names",
    "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-uid-headers",
    "requestheader-username-headers",
    "runtime-config",
    "secure-port",
    "service-account-extend-token-expiration",
    "service-account-issuer",
    "service-account-jwks-uri",
    "service-account-key-file",
    "service-account-lookup",
    "service-account-max-token-expiration",
    "service-account-signing-endpoint",
    "service-account-signing-key-file",
    "service-cluster-ip-range",
    "service-node-port-range",
    "show-hidden-metrics-for-version",
    "shutdown-delay-duration",
    "shutdown-send-retry-after",
    "shutdown-watch-termination-grace-period",
    "storage-backend",
    "storage-initialization-timeout",
    "storage-media-type",
    "strict-transport-security-directives",
    "tls-cert-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-private-key-file",
    "tls-sni-cert-key",
    "token-auth-file",
    "tracing-config-file",
    "v",
    "version",
    "vmodule",
    "watch-cache",
    "watch-cache-sizes",
];

const FAMILIES: &[&str] = &["audit-", "etcd-", "log-", "logging-", "oidc-", "peer-"];

/// The first flag the binary would not know, as cobra reports it.
pub fn unknown_flag(args: &[String]) -> Option<String> {
    args.iter().find_map(|arg| {
        let name = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-').filter(|s| s.starts_with('v')))?;
        let name = name.split('=').next().unwrap_or_default();
        let known = KNOWN.contains(&name) || FAMILIES.iter().any(|f| name.starts_with(f));
        (!known).then(|| {
            let dashes = if arg.starts_with("--") { "--" } else { "-" };
            format!("Error: unknown flag: {dashes}{name}")
        })
    })
}

/// `options.Complete`'s checks of the service-account flags (issuer, signing key),
/// aggregated as kube-apiserver prints them.
pub fn service_account_errors(issuer: Option<&str>, signing_key: Option<&str>) -> Option<String> {
    let issuer = issuer.filter(|s| !s.is_empty());
    let signing_key = signing_key.filter(|s| !s.is_empty());
    let mut errors = Vec::new();
    if issuer.is_none() {
        errors.push("service-account-issuer is a required flag");
    }
    match (issuer, signing_key) {
        (None, None) => {
            errors.push("--service-account-signing-key-file and --service-account-issuer are required flags")
        }
        (Some(_), Some(_)) => {}
        _ => errors.push(
            "--service-account-signing-key-file, --service-account-issuer, and --api-audiences should be specified together",
        ),
    }
    match errors.as_slice() {
        [] => None,
        [one] => Some(format!("Error: {one}")),
        many => Some(format!("Error: [{}]", many.join(", "))),
    }
}

/// Issuer, signing key (PEM) and trusted keys (SPKI DER) of a tenant kube-apiserver.
pub type ServiceAccountKeys = (String, String, Vec<Vec<u8>>);

/// The service-account flags of kube-apiserver: `--service-account-issuer` and
/// `--service-account-signing-key-file` required, `--service-account-key-file`
/// (repeatable; the signing key when absent) listing the keys whose tokens it trusts.
pub fn service_accounts(pod: &PodSpec, args: &[String]) -> Result<ServiceAccountKeys, String> {
    let issuer = super::flag(args, "service-account-issuer");
    let signing_path = super::flag(args, "service-account-signing-key-file");
    if let Some(e) = service_account_errors(issuer.as_deref(), signing_path.as_deref()) {
        return Err(e);
    }
    let (issuer, signing_path) = (issuer.unwrap_or_default(), signing_path.unwrap_or_default());
    let what = "failed to parse service-account-issuer-key-file";
    let signing = super::read_file(pod, &signing_path, what)?;
    signing_key(&signing_path, &signing)?;
    let mut paths = super::flags(args, "service-account-key-file");
    if paths.is_empty() {
        paths.push(signing_path);
    }
    let mut trusted = Vec::new();
    for path in paths {
        let text = super::read_file(pod, &path, "failed to parse key file")?;
        trusted.extend(public_keys(&path, &text)?);
    }
    Ok((issuer, signing, trusted))
}

/// The `--requestheader-*` lists (comma-separated, repeatable) besides the CA file.
pub fn request_header(args: &[String]) -> crate::auth::RequestHeaderFlags {
    let list = |name: &str| -> Vec<String> {
        super::flags(args, &format!("requestheader-{name}"))
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    crate::auth::RequestHeaderFlags {
        allowed_names: list("allowed-names"),
        username_headers: list("username-headers"),
        uid_headers: list("uid-headers"),
        group_headers: list("group-headers"),
        extra_prefixes: list("extra-headers-prefix"),
    }
}

/// The SubjectPublicKeyInfo of every public key in a `--service-account-key-file`
/// (public keys, certificates and private keys are all accepted upstream).
pub fn public_keys(path: &str, pem_text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut keys = Vec::new();
    for pem in Pem::iter_from_buffer(pem_text.as_bytes()) {
        let Ok(pem) = pem else { break };
        match pem.label.as_str() {
            "PUBLIC KEY" => keys.push(pem.contents.clone()),
            "CERTIFICATE" => {
                if let Ok(cert) = pem.parse_x509() {
                    keys.push(cert.public_key().raw.to_vec());
                }
            }
            "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" => {
                if let Ok(spki) = private_key_spki(pem_text) {
                    keys.push(spki);
                }
            }
            _ => {}
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "Error: failed to parse key file \"{path}\": data does not contain any valid RSA or ECDSA public keys"
        ));
    }
    Ok(keys)
}

/// The public half (SPKI DER) of a `--service-account-signing-key-file`, which must
/// be a key kube-apiserver signs with (ECDSA P-256/P-384 or RSA).
pub fn signing_key(path: &str, pem_text: &str) -> Result<Vec<u8>, String> {
    let spki = private_key_spki(pem_text);
    let usable = crate::auth::SigningKey::from_pem(pem_text).is_ok();
    spki.ok().filter(|_| usable).ok_or_else(|| {
        format!(
            "Error: failed to parse service-account-issuer-key-file \"{path}\": data does not contain a valid RSA or ECDSA private key"
        )
    })
}

fn private_key_spki(pem_text: &str) -> Result<Vec<u8>, ()> {
    use rcgen::PublicKeyData;
    let key = rcgen::KeyPair::from_pem(pem_text).map_err(|_| ())?;
    Ok(key.subject_public_key_info())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unknown_and_misspelt_flags_stop_the_binary() {
        let ok = args(&[
            "--secure-port=9444",
            "--v=2",
            "-v=4",
            "--audit-log-path=-",
            "--tls-cert-file",
            "/x",
        ]);
        assert_eq!(unknown_flag(&ok), None);
        let typo = args(&["--secure-port=9444", "--tls-cert-fil=/x"]);
        assert_eq!(
            unknown_flag(&typo).as_deref(),
            Some("Error: unknown flag: --tls-cert-fil")
        );
    }

    #[test]
    fn service_account_flags_are_required_together() {
        assert_eq!(
            service_account_errors(None, None).as_deref(),
            Some(
                "Error: [service-account-issuer is a required flag, --service-account-signing-key-file and --service-account-issuer are required flags]"
            )
        );
        assert!(
            service_account_errors(Some("https://x"), None)
                .unwrap()
                .contains("should be specified together")
        );
        assert_eq!(service_account_errors(Some("https://x"), Some("/k")), None);
    }

    #[test]
    fn keys_parse_and_match() {
        let key = rcgen::KeyPair::generate().unwrap();
        let spki = signing_key("/sa.key", &key.serialize_pem()).unwrap();
        let public = public_keys("/sa.pub", &key.public_key_pem()).unwrap();
        assert_eq!(public, vec![spki.clone()]);
        let other = rcgen::KeyPair::generate().unwrap();
        assert_ne!(
            public_keys("/o.pub", &other.public_key_pem()).unwrap(),
            vec![spki]
        );
        assert!(
            public_keys("/bad", "nope")
                .unwrap_err()
                .contains("does not contain any valid")
        );
        assert!(
            signing_key("/bad", "nope")
                .unwrap_err()
                .contains("\"/bad\"")
        );
    }
}
