//! GitOps reconciler library: sources (Git, directory), validation of the
//! manifests they hold, and the loop that applies them: read (source and
//! inventory), compute (plan), apply (server-side apply, prune, status).
//!
//! `validate` is shared with `kflex validate`; `plan`, `drift` and the
//! webhook signature checks are pure and tested without a cluster.

pub mod apply;
pub mod document;
pub mod drift;
pub mod error;
pub mod inventory;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod plan;
pub mod reconcile;
pub mod request;
pub mod source;
pub mod status;
pub mod validate;
pub mod watch;
pub mod webhook;

pub use error::Error;
