//! The hosting namespace `<cp>-system`, controller-owned by the ControlPlane
//! so that deleting the ControlPlane deletes everything in it.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use super::Result;
use crate::api::ControlPlane;
use crate::profile::Profile;
use crate::{meta, names};

/// Pod Security admission's namespace labels.
const PSA_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
const PSA_ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
const PSA_WARN: &str = "pod-security.kubernetes.io/warn";
const PSA_AUDIT: &str = "pod-security.kubernetes.io/audit";

/// Namespace `<cp>-system`, enforcing the type's Pod Security level
/// (`baseline` for every type but one, see [`Profile`]) and warning and
/// auditing at `restricted`: a hook cannot run privileged, hostPath or
/// hostNetwork pods next to the tenant's keys.
pub fn namespace(cp: &ControlPlane) -> Result<Namespace> {
    let name = cp.name_any();
    let mut labels = meta::labels(&name, "namespace");
    let level = Profile::of(cp.spec.type_).pod_security;
    for (k, v) in [
        (PSA_ENFORCE, level.as_str()),
        (PSA_ENFORCE_VERSION, "latest"),
        (PSA_WARN, "restricted"),
        (PSA_AUDIT, "restricted"),
    ] {
        labels.insert(k.into(), v.into());
    }
    Ok(Namespace {
        metadata: meta::owned(cp, names::namespace_of(&name), None, labels)?,
        ..Namespace::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ControlPlaneExt;

    #[test]
    fn namespace_is_owned_by_the_control_plane() {
        let ns = namespace(&ControlPlane::test("cp1")).unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("cp1-system"));
        assert_eq!(ns.metadata.namespace, None);
        let owner = &ns.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ControlPlane", "cp1")
        );
        assert_eq!(owner.controller, Some(true));
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "kubeflex-operator");
        assert_eq!(labels[PSA_ENFORCE], "baseline");
        assert_eq!(labels[PSA_WARN], "restricted");
        assert_eq!(labels[PSA_AUDIT], "restricted");
    }

    #[test]
    fn only_k3s_namespaces_are_privileged() {
        use crate::api::ControlPlaneType as T;
        for (t, level) in [
            (T::K8s, "baseline"),
            (T::Vcluster, "baseline"),
            (T::Host, "baseline"),
            (T::External, "baseline"),
            (T::K3s, "privileged"),
        ] {
            let mut cp = ControlPlane::test("cp1");
            cp.spec.type_ = t;
            let ns = namespace(&cp).unwrap();
            assert_eq!(ns.metadata.labels.unwrap()[PSA_ENFORCE], level, "{t:?}");
        }
    }

    /// What the operator itself runs in `<cp>-system` passes the level the
    /// namespace enforces: baseline for all but k3s, whose server needs
    /// privileged (the reason its row says so).
    #[test]
    fn the_operator_s_own_pods_pass_their_namespace_s_level() {
        use crate::api::BackendDbType;
        use crate::api::ControlPlaneType as T;
        use crate::builders::{k3s, k8s, postgres, vcluster};
        use crate::config::OperatorConfig;
        use crate::hooks::pods::baseline_violation;
        let cfg = OperatorConfig::default();
        let k8s_cp = ControlPlane::test("cp1").backend(BackendDbType::Dedicated);
        let db = postgres::database_for(&k8s_cp, &cfg);
        let baseline = [
            (
                "apps",
                "Deployment",
                serde_json::to_value(
                    k8s::apiserver_deployment(&k8s_cp, &cfg, &db, k8s::OpenShift(false), "h")
                        .unwrap(),
                )
                .unwrap(),
            ),
            (
                "apps",
                "Deployment",
                serde_json::to_value(
                    k8s::controller_manager_deployment(&k8s_cp, &cfg, k8s::OpenShift(false), "h")
                        .unwrap(),
                )
                .unwrap(),
            ),
            (
                "apps",
                "StatefulSet",
                serde_json::to_value(
                    postgres::dedicated_instance(&k8s_cp, &cfg, "pw")
                        .unwrap()
                        .stateful_set,
                )
                .unwrap(),
            ),
            (
                "batch",
                "Job",
                serde_json::to_value(
                    postgres::job(&k8s_cp, &db, &cfg, postgres::DbJob::Provision).unwrap(),
                )
                .unwrap(),
            ),
            (
                "apps",
                "StatefulSet",
                serde_json::to_value(
                    vcluster::stateful_set(
                        &ControlPlane::test("v").of_type(T::Vcluster),
                        &cfg,
                        None,
                    )
                    .unwrap(),
                )
                .unwrap(),
            ),
        ];
        for (group, kind, object) in &baseline {
            assert_eq!(
                baseline_violation(group, kind, object),
                None,
                "{}",
                object["metadata"]["name"]
            );
        }
        let k3s = k3s::stateful_set(&ControlPlane::test("k").of_type(T::K3s), &cfg, "h").unwrap();
        let k3s = serde_json::to_value(k3s).unwrap();
        assert!(baseline_violation("apps", "StatefulSet", &k3s).is_some());
    }
}
