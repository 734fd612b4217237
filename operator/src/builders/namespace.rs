//! The hosting namespace `<cp>-system`, controller-owned by the ControlPlane
//! so that deleting the ControlPlane deletes everything in it.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use super::Result;
use crate::api::ControlPlane;
use crate::{meta, names};

/// Namespace `<cp>-system`.
pub fn namespace(cp: &ControlPlane) -> Result<Namespace> {
    let name = cp.name_any();
    Ok(Namespace {
        metadata: meta::owned(
            cp,
            names::namespace_of(&name),
            None,
            meta::labels(&name, "namespace"),
        )?,
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
        assert_eq!(
            ns.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "kubeflex-operator"
        );
    }
}
