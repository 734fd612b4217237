//! KubeFlex operator library.
//!
//! `api` holds the custom resource types every crate of the workspace shares
//! (drop-in compatible with KubeFlex's `tenancy.kflex.kubestellar.org/v1alpha1`);
//! `crdgen` renders their CustomResourceDefinitions.

pub mod api;
pub mod crdgen;
