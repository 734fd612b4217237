//! GitOps reconciler library: sources (Git, directory), validation, plan,
//! apply and prune. Built in the reconciler issue; nothing here yet.
