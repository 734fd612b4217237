//! Type `host`: the hosting cluster itself, reached through a cluster-admin
//! ServiceAccount. KubeFlex's objects: ServiceAccount `<cp>`, its legacy token
//! Secret `<cp>`, ClusterRoleBinding `<cp>-binding`, and `admin-kubeconfig`
//! with only `kubeconfig-incluster`.

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::ResourceExt;

use super::Result;
use super::secrets::in_cluster_only;
use crate::api::ControlPlane;
use crate::kubeconfig::{self, Credentials, EntryNames};
use crate::profile::Profile;
use crate::{meta, names};

/// ServiceAccount `<cp>` in `<cp>-system`.
pub fn service_account(cp: &ControlPlane) -> Result<ServiceAccount> {
    Ok(ServiceAccount {
        metadata: meta::in_cp_namespace(cp, cp.name_any(), "host-access")?,
        ..ServiceAccount::default()
    })
}

/// Secret `<cp>` of type `kubernetes.io/service-account-token`, filled by the
/// token controller (KubeFlex's long-lived token).
pub fn token_secret(cp: &ControlPlane) -> Result<Secret> {
    let mut metadata = meta::in_cp_namespace(cp, cp.name_any(), "host-access")?;
    metadata.annotations = Some(meta::string_map(&[(
        "kubernetes.io/service-account.name",
        &cp.name_any(),
    )]));
    Ok(Secret {
        metadata,
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Secret::default()
    })
}

/// ClusterRoleBinding `<cp>-binding` → `cluster-admin` for the ServiceAccount.
pub fn cluster_role_binding(cp: &ControlPlane) -> Result<ClusterRoleBinding> {
    let cp_name = cp.name_any();
    Ok(ClusterRoleBinding {
        metadata: meta::owned(
            cp,
            format!("{cp_name}-binding"),
            None,
            meta::labels(&cp_name, "host-access"),
        )?,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: cp_name.clone(),
            namespace: Some(names::namespace_of(&cp_name)),
            ..Subject::default()
        }]),
    })
}

/// `admin-kubeconfig` from the token Secret's `ca.crt` and `token`
/// (`https://kubernetes.default.svc`, names `<cp>` ×3).
pub fn admin_kubeconfig(
    cp: &ControlPlane,
    profile: &Profile,
    ca_pem: &str,
    token: &str,
) -> Result<Option<Secret>> {
    let cp_name = cp.name_any();
    let server = profile.in_cluster_url(&cp_name).unwrap_or_default();
    let kc = kubeconfig::render(
        &EntryNames::host(&cp_name),
        &server,
        ca_pem,
        Credentials::Token(token),
    );
    in_cluster_only(cp, profile, &kc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlPlaneType::Host;
    use crate::fixtures::ControlPlaneExt;

    #[test]
    fn host_objects_are_kubeflex_s() {
        let cp = ControlPlane::test("h1").of_type(Host);
        let sa = service_account(&cp).unwrap();
        assert_eq!(sa.metadata.name.as_deref(), Some("h1"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("h1-system"));
        let t = token_secret(&cp).unwrap();
        assert_eq!(
            t.type_.as_deref(),
            Some("kubernetes.io/service-account-token")
        );
        assert_eq!(
            t.metadata.annotations.unwrap()["kubernetes.io/service-account.name"],
            "h1"
        );
        let crb = cluster_role_binding(&cp).unwrap();
        assert_eq!(crb.metadata.name.as_deref(), Some("h1-binding"));
        assert_eq!(crb.role_ref.name, "cluster-admin");
        let s = &crb.subjects.unwrap()[0];
        assert_eq!(
            (s.name.as_str(), s.namespace.as_deref()),
            ("h1", Some("h1-system"))
        );
        assert_eq!(crb.metadata.owner_references.unwrap()[0].name, "h1");
    }

    #[test]
    fn host_kubeconfig_has_only_the_in_cluster_key() {
        let cp = ControlPlane::test("h1").of_type(Host);
        let s = admin_kubeconfig(&cp, &Profile::of(Host), "CA", "tok")
            .unwrap()
            .unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("admin-kubeconfig"));
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["kubeconfig-incluster"]);
        let kc = kubeconfig::parse(
            std::str::from_utf8(&data["kubeconfig-incluster"].0).unwrap(),
            "k",
        )
        .unwrap();
        assert_eq!(kc.server(), Some("https://kubernetes.default.svc"));
        assert_eq!(kc.current_context, "h1");
        assert_eq!(kc.current_user().unwrap().token.as_deref(), Some("tok"));
    }
}
