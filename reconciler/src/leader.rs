//! Leader election for reconcilers: two reconcilers started for the same
//! source (same `--name`) do not fight, because only the holder of the
//! source's Lease reconciles. The Lease mechanism itself (compare-and-swap
//! takeover, renewal, [`Lease::lost`]) is the operator crate's.

use std::time::Duration;

pub use kubeflex_operator::leader::{Lease, LeaseHandle, shutdown_signal};

use crate::names::CONTROLLER;

/// How often the holder renews, and candidates retry.
pub const RETRY: Duration = Duration::from_secs(2);

/// The Lease name for a source.
pub fn lease_name(source: &str) -> String {
    format!("{CONTROLLER}-{source}")
}

/// Waits until this process holds the lease `name` in `namespace`.
pub async fn acquire(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Lease {
    kubeflex_operator::leader::acquire(client, namespace, name, identity, RETRY).await
}

/// Before a prune, the lease must hold for this much longer: a prune pass
/// deletes in well under it.
pub const PRUNE_MARGIN: Duration = Duration::from_secs(3);

impl crate::reconcile::LeaseCheck for LeaseHandle {
    fn confirm(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(LeaseHandle::confirm(self, PRUNE_MARGIN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_has_its_own_lease() {
        assert_eq!(lease_name("default"), "kubeflex-reconciler-default");
    }
}
