//! Renders the CustomResourceDefinitions of the workspace's types, one YAML
//! file per kind, named as KubeFlex names them (`<group>_<plural>.yaml`).
//!
//! `kubeflex-operator crds --write config/crd/bases` regenerates the
//! committed files; a test fails when they drift from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{ControlPlane, PostCreateHook, Sync};

/// Errors while rendering CRDs.
#[derive(Debug, thiserror::Error)]
pub enum CrdGenError {
    /// The CRD could not be serialised to YAML.
    #[error("serialising CRD {name} to YAML: {source}")]
    Serialize {
        name: String,
        #[source]
        source: serde_saphyr::ser::Error,
    },
}

/// Every CRD the project installs.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![ControlPlane::crd(), PostCreateHook::crd(), Sync::crd()]
}

/// `(file name, YAML)` for each CRD.
pub fn crd_files() -> Result<Vec<(String, String)>, CrdGenError> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
            let yaml = serde_saphyr::to_string(&crd)
                .map_err(|source| CrdGenError::Serialize { name, source })?;
            Ok((file, format!("---\n{yaml}")))
        })
        .collect()
}
