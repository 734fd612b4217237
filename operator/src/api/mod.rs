//! API types of `tenancy.kflex.kubestellar.org/v1alpha1`, field for field as
//! KubeFlex defines them, so that KubeFlex YAML applies unchanged.
//!
//! `sync` holds the GitOps reconciler's status kind
//! (`gitops.kflex.kubestellar.org/v1alpha1`).
//!
//! These are the only definitions of the resources in the workspace: the
//! reconciler, the CLI and the tests import them from here.

mod controlplane;
mod postcreatehook;
mod schema;
mod sync;

pub use controlplane::{
    BackendDbType, BootstrapSecretReference, ConditionReason, ConditionStatus, ConditionType,
    ControlPlane, ControlPlaneCondition, ControlPlaneSpec, ControlPlaneStatus, ControlPlaneType,
    PostCreateHookUse, SecretReference,
};
pub use postcreatehook::{PostCreateHook, PostCreateHookSpec, PostCreateHookStatus, Var};
pub use sync::{
    BlockedPrune, GITOPS_API_VERSION, GITOPS_GROUP, Sync, SyncConditionType, SyncCounts,
    SyncFileError, SyncSpec, SyncStatus,
};

/// API group shared by both kinds.
pub const GROUP: &str = "tenancy.kflex.kubestellar.org";
/// The only served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "tenancy.kflex.kubestellar.org/v1alpha1";
