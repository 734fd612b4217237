//! GitOps reconciler library: sources (Git, directory) and validation of the
//! manifests they hold. Plan, apply and prune come later.
//!
//! `validate` is shared with `kflex validate`; `source` yields snapshots and,
//! for Git, the paths a new commit changed.

pub mod document;
pub mod names;
pub mod source;
pub mod validate;
