//! Tests of [`super`]: chains, SANs, key usages and serials of the issued
//! certificates, Secret round trips, renewal and the k3s CAs, checked by
//! parsing the DER with x509-parser.

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
    assert!(String::from_utf8_lossy(&data["sa.pub"].0).starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(String::from_utf8_lossy(&data["sa.key"].0).starts_with("-----BEGIN PRIVATE KEY-----"));
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

/// Decodes `bytes` as `T` with x509-cert and re-encodes it: DER has exactly one
/// encoding per value, and the encoder omits DEFAULT values, so any difference
/// (an encoded `cA: FALSE`, a long-form length, a non-canonical boolean) is a
/// certificate that strict parsers such as Go's or Python's `cryptography` refuse.
fn canonical<'a, T>(what: &str, bytes: &'a [u8]) -> T
where
    T: x509_cert::der::Decode<'a> + x509_cert::der::Encode,
{
    let value = T::from_der(bytes).unwrap_or_else(|e| panic!("{what}: not DER: {e}"));
    let again = value.to_der().unwrap();
    assert!(again == bytes, "{what}: not in DER's one encoding");
    value
}

/// Checks the certificate in `pem` and each extension the operator writes with
/// [`canonical`], and that only CAs carry BasicConstraints (kubeadm's leaves do not).
fn assert_strict_der(what: &str, pem: &str) {
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName,
        SubjectKeyIdentifier,
    };
    let bytes = der(pem);
    let cert: x509_cert::Certificate = canonical(what, &bytes);
    let mut seen = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        let oid = ext.extn_id.to_string();
        let label = format!("{what}: extension {oid}");
        match oid.as_str() {
            "2.5.29.19" => {
                let b: BasicConstraints = canonical(&label, value);
                assert!(b.ca, "{what}: a BasicConstraints on a leaf");
            }
            "2.5.29.15" => drop(canonical::<KeyUsage>(&label, value)),
            "2.5.29.37" => drop(canonical::<ExtendedKeyUsage>(&label, value)),
            "2.5.29.17" => drop(canonical::<SubjectAltName>(&label, value)),
            "2.5.29.14" => drop(canonical::<SubjectKeyIdentifier>(&label, value)),
            "2.5.29.35" => drop(canonical::<AuthorityKeyIdentifier>(&label, value)),
            other => panic!("{what}: unexpected extension {other}"),
        }
        seen.push(oid);
    }
    assert!(seen.contains(&"2.5.29.14".to_string()), "{what}: an SKI");
}

/// Every certificate the operator generates, of every type and algorithm:
/// the control-plane bundle, its client certificates and the k3s CAs.
#[test]
fn every_certificate_is_strict_der() {
    for algorithm in [PkiAlgorithm::EcdsaP256, PkiAlgorithm::Rsa2048] {
        let cfg = PkiConfig {
            algorithm,
            ..PkiConfig::default()
        };
        let pki = ControlPlanePki::generate(&names(), &cfg, now()).unwrap();
        let k3s = K3sCas::generate(&cfg, now()).unwrap();
        let mut pems: Vec<(String, String)> = Vec::new();
        let data = [pki.to_secret_data(), k3s.to_secret_data()];
        for (key, value) in data.iter().flatten() {
            let text = String::from_utf8_lossy(&value.0).into_owned();
            if text.contains("BEGIN CERTIFICATE") {
                pems.push((key.clone(), text));
            }
        }
        let clients = [
            (&pki.ca, ClientIdentity::admin()),
            (&pki.ca, ClientIdentity::controller_manager()),
            (&k3s.client_ca, K3sCas::admin_identity()),
        ];
        for (ca, who) in clients {
            let issued = ca.issue_client(&who, &cfg, now()).unwrap();
            pems.push((who.role.to_string(), issued.cert_pem));
        }
        // Three CAs and three leaves of the bundle, three k3s CAs, three clients.
        let names: Vec<&str> = pems.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(pems.len(), 11, "{names:?}");
        for (what, pem) in &pems {
            assert_strict_der(&format!("{algorithm:?} {what}"), pem);
        }
    }
}
