//! Secrets of the `k8s` type (`k8s-certs`, `admin-kubeconfig`,
//! `cm-kubeconfig`) with KubeFlex's names and keys, and the generic Opaque
//! Secret every builder uses. Certificates and keys come in as arguments: the
//! reconcile generates them once, stores them, and renews them when due.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::{BuildError, Result};
use crate::api::ControlPlane;
use crate::config::OperatorConfig;
use crate::kubeconfig::{self, Credentials, EntryNames, Kubeconfig};
use crate::pki::{CertAndKey, ControlPlanePki};
use crate::profile::Profile;
use crate::{meta, names};

/// An Opaque Secret with `data` (not `stringData`, which the server turns into
/// `data`, so that re-applying the same object is a no-op).
pub fn opaque(metadata: ObjectMeta, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// `data` entries from text values.
pub fn text_data<'a>(
    entries: impl IntoIterator<Item = (&'a str, String)>,
) -> BTreeMap<String, ByteString> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect()
}

/// Secret `k8s-certs`.
pub fn k8s_certs(cp: &ControlPlane, pki: &ControlPlanePki) -> Result<Secret> {
    Ok(opaque(
        meta::in_cp_namespace(cp, names::SECRET_K8S_CERTS, "pki")?,
        pki.to_secret_data(),
    ))
}

fn render_secret(
    cp: &ControlPlane,
    name: &str,
    entries: Vec<(&'static str, Kubeconfig)>,
) -> Result<Secret> {
    let ns = names::namespace_of(&cp.name_any());
    let mut data = BTreeMap::new();
    for (key, kc) in entries {
        let yaml = kubeconfig::to_yaml(&kc, &format!("{name}/{key}")).map_err(|source| {
            BuildError::Kubeconfig {
                namespace: ns.clone(),
                name: name.into(),
                source: Box::new(source),
            }
        })?;
        data.insert(key.to_string(), ByteString(yaml.into_bytes()));
    }
    Ok(opaque(meta::in_cp_namespace(cp, name, "kubeconfig")?, data))
}

/// Secret `admin-kubeconfig` of a `k8s` control plane: `kubeconfig`
/// (external URL) and `kubeconfig-incluster` (the Service URL), each with its
/// own `kubernetes-admin` client certificate, as KubeFlex writes them.
pub fn k8s_admin_kubeconfig(
    cp: &ControlPlane,
    profile: &Profile,
    cfg: &OperatorConfig,
    ca_pem: &str,
    off_cluster: &CertAndKey,
    in_cluster: &CertAndKey,
    route_host: Option<&str>,
) -> Result<Secret> {
    let cp_name = cp.name_any();
    let names_ = EntryNames::admin(&cp_name);
    let external = kubeconfig::external_url(&cp_name, cfg, route_host);
    let internal = profile.in_cluster_url(&cp_name).unwrap_or_default();
    render_secret(
        cp,
        names::SECRET_ADMIN_KUBECONFIG,
        vec![
            (
                names::KEY_KUBECONFIG,
                kubeconfig::with_tls_server_name(
                    kubeconfig::render(
                        &names_,
                        &external,
                        ca_pem,
                        Credentials::Certificate(off_cluster),
                    ),
                    cfg.external_tls_server_name(&cp_name, route_host),
                ),
            ),
            (
                names::KEY_KUBECONFIG_INCLUSTER,
                kubeconfig::render(
                    &names_,
                    &internal,
                    ca_pem,
                    Credentials::Certificate(in_cluster),
                ),
            ),
        ],
    )
}

/// Secret `cm-kubeconfig`: key `kubeconfig`, the Service URL, identity
/// `system:kube-controller-manager` (KubeFlex's).
pub fn cm_kubeconfig(
    cp: &ControlPlane,
    profile: &Profile,
    ca_pem: &str,
    client: &CertAndKey,
) -> Result<Secret> {
    let cp_name = cp.name_any();
    let internal = profile.in_cluster_url(&cp_name).unwrap_or_default();
    render_secret(
        cp,
        names::SECRET_CM_KUBECONFIG,
        vec![(
            names::KEY_KUBECONFIG,
            kubeconfig::render(
                &EntryNames::controller_manager(&cp_name),
                &internal,
                ca_pem,
                Credentials::Certificate(client),
            ),
        )],
    )
}

/// A kubeconfig Secret holding only the in-cluster key (`host`, `external`).
pub fn in_cluster_only(
    cp: &ControlPlane,
    profile: &Profile,
    kc: &Kubeconfig,
) -> Result<Option<Secret>> {
    let Some(secret) = profile.kubeconfig else {
        return Ok(None);
    };
    render_secret(cp, secret.name, vec![(secret.in_cluster_key, kc.clone())]).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlPlaneType::*;
    use crate::fixtures::{ControlPlaneExt, now};
    use crate::pki::{ClientIdentity, ServingNames};

    fn pki() -> ControlPlanePki {
        let names =
            ServingNames::for_k8s("cp1", "localtest.me", "kubeflex-control-plane", None, None);
        ControlPlanePki::generate(&names, &Default::default(), now()).unwrap()
    }

    fn kubeconfig_of(secret: &Secret, key: &str) -> Kubeconfig {
        let text = String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap();
        kubeconfig::parse(&text, key).unwrap()
    }

    #[test]
    fn k8s_certs_secret_is_owned_and_opaque() {
        let s = k8s_certs(&ControlPlane::test("cp1"), &pki()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("k8s-certs"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("cp1-system"));
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.data.unwrap().len(), 12);
        assert_eq!(s.metadata.owner_references.unwrap()[0].name, "cp1");
    }

    #[test]
    fn admin_kubeconfig_has_both_keys_and_kubeflex_urls() {
        let pki = pki();
        let cfg = OperatorConfig::default();
        let off = pki
            .ca
            .issue_client(&ClientIdentity::admin(), &cfg.pki, now())
            .unwrap();
        let inc = pki
            .ca
            .issue_client(&ClientIdentity::admin(), &cfg.pki, now())
            .unwrap();
        let cp = ControlPlane::test("cp1");
        let s = k8s_admin_kubeconfig(
            &cp,
            &Profile::of(K8s),
            &cfg,
            pki.ca.cert_pem(),
            &off,
            &inc,
            None,
        )
        .unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("admin-kubeconfig"));
        let ext = kubeconfig_of(&s, "kubeconfig");
        assert_eq!(ext.server(), Some("https://cp1.localtest.me:9443"));
        assert_eq!(ext.client_certificate_pem().unwrap(), off.cert_pem);
        let int = kubeconfig_of(&s, "kubeconfig-incluster");
        assert_eq!(
            int.server(),
            Some("https://cp1.cp1-system.svc.cluster.local")
        );
        assert_eq!(int.client_certificate_pem().unwrap(), inc.cert_pem);
        assert_eq!(int.contexts[0].name, "cp1");
        assert_eq!(int.users[0].name, "cp1-admin");
        // Same inputs, same object: re-applying is a no-op.
        let again = k8s_admin_kubeconfig(
            &cp,
            &Profile::of(K8s),
            &cfg,
            pki.ca.cert_pem(),
            &off,
            &inc,
            None,
        )
        .unwrap();
        assert_eq!(again, s);
        let routed = k8s_admin_kubeconfig(
            &cp,
            &Profile::of(K8s),
            &cfg,
            pki.ca.cert_pem(),
            &off,
            &inc,
            Some("cp1.apps.x"),
        )
        .unwrap();
        assert_eq!(
            kubeconfig_of(&routed, "kubeconfig").server(),
            Some("https://cp1.apps.x")
        );
    }

    #[test]
    fn cm_kubeconfig_uses_the_service_url_and_cm_identity() {
        let pki = pki();
        let cm = pki
            .ca
            .issue_client(
                &ClientIdentity::controller_manager(),
                &Default::default(),
                now(),
            )
            .unwrap();
        let s = cm_kubeconfig(
            &ControlPlane::test("cp1"),
            &Profile::of(K8s),
            pki.ca.cert_pem(),
            &cm,
        )
        .unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("cm-kubeconfig"));
        assert_eq!(
            s.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
            ["kubeconfig"]
        );
        let kc = kubeconfig_of(&s, "kubeconfig");
        assert_eq!(
            kc.server(),
            Some("https://cp1.cp1-system.svc.cluster.local")
        );
        assert_eq!(kc.users[0].name, "system:kube-controller-manager");
    }
}
