//! Type `external`: objects created in the adopted cluster (not the hosting
//! one) — ServiceAccount `kube-system/kubeflex-<cp>` and ClusterRoleBinding
//! `kubeflex-<cp>` → `cluster-admin` — and `admin-kubeconfig` with the
//! minted token. Per control plane, unlike KubeFlex's fixed `kubeflex` and
//! `kubeflex-clusterrolebinding`: two control planes adopting one cluster
//! would share, and the first deleted would remove, the other's access. The
//! adopted objects carry our labels (no owner: another cluster) so
//! deletion can find and remove its own.

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::Result;
use super::secrets::in_cluster_only;
use crate::api::ControlPlane;
use crate::kubeconfig::{self, SingleContext};
use crate::meta;
use crate::profile::Profile;

/// Namespace of the ServiceAccount in the adopted cluster.
pub const ADOPTED_NAMESPACE: &str = "kube-system";

/// Name of `cp_name`'s ServiceAccount and ClusterRoleBinding in the adopted
/// cluster: `kubeflex-<cp>`.
pub fn adopted_name(cp_name: &str) -> String {
    meta::bounded_name("kubeflex-", cp_name, 63)
}

/// ServiceAccount `kube-system/kubeflex-<cp>` in the adopted cluster.
pub fn adopted_service_account(cp: &ControlPlane) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(adopted_name(&cp.name_any())),
            namespace: Some(ADOPTED_NAMESPACE.into()),
            labels: Some(meta::labels(&cp.name_any(), "adopted-access")),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

/// ClusterRoleBinding `kubeflex-<cp>` in the adopted cluster.
pub fn adopted_cluster_role_binding(cp: &ControlPlane) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(adopted_name(&cp.name_any())),
            labels: Some(meta::labels(&cp.name_any(), "adopted-access")),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: adopted_name(&cp.name_any()),
            namespace: Some(ADOPTED_NAMESPACE.into()),
            ..Subject::default()
        }]),
    }
}

/// `admin-kubeconfig` (`kubeconfig-incluster` only) for the adopted cluster.
pub fn admin_kubeconfig(
    cp: &ControlPlane,
    profile: &Profile,
    bootstrap: &SingleContext,
    token: &str,
) -> Result<Option<Secret>> {
    let kc = kubeconfig::adopted(&cp.name_any(), bootstrap, token);
    in_cluster_only(cp, profile, &kc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlPlaneType::External;
    use crate::fixtures::ControlPlaneExt;
    use crate::kubeconfig::{Credentials, EntryNames};

    #[test]
    fn adopted_objects_are_per_control_plane_and_labelled() {
        let cp = ControlPlane::test("ext").of_type(External);
        let sa = adopted_service_account(&cp);
        assert_eq!(
            (
                sa.metadata.namespace.as_deref(),
                sa.metadata.name.as_deref()
            ),
            (Some("kube-system"), Some("kubeflex-ext"))
        );
        assert!(sa.metadata.owner_references.is_none());
        assert_eq!(
            sa.metadata.labels.unwrap()["kflex.kubestellar.org/control-plane"],
            "ext"
        );
        let crb = adopted_cluster_role_binding(&cp);
        assert_eq!(crb.metadata.name.as_deref(), Some("kubeflex-ext"));
        assert_eq!(crb.subjects.as_ref().unwrap()[0].name, "kubeflex-ext");
        assert_eq!(crb.role_ref.name, "cluster-admin");
        assert_eq!(
            crb.subjects.unwrap()[0].namespace.as_deref(),
            Some("kube-system")
        );
    }

    #[test]
    fn admin_kubeconfig_carries_the_token() {
        let cp = ControlPlane::test("ext").of_type(External);
        let boot = kubeconfig::render(
            &EntryNames::host("kind-ext"),
            "https://ext-control-plane:6443",
            "CA",
            Credentials::Token("bootstrap"),
        );
        let one = kubeconfig::single_context(&boot, "b").unwrap();
        let s = admin_kubeconfig(&cp, &Profile::of(External), &one, "minted")
            .unwrap()
            .unwrap();
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["kubeconfig-incluster"]);
        let kc = kubeconfig::parse(
            std::str::from_utf8(&data["kubeconfig-incluster"].0).unwrap(),
            "k",
        )
        .unwrap();
        assert_eq!(kc.current_user().unwrap().token.as_deref(), Some("minted"));
        assert_eq!(kc.server(), Some("https://ext-control-plane:6443"));
    }
}
