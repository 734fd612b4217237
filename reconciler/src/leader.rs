//! Leader election for reconcilers: two reconcilers started for the same
//! source (same `--name`) do not fight, because only the holder of the
//! source's Lease reconciles. The Lease mechanism itself (compare-and-swap
//! takeover, renewal, [`Lease::lost`]) is the operator crate's.

use std::time::Duration;

pub use kubeflex_operator::leader::{Lease, shutdown_signal};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_has_its_own_lease() {
        assert_eq!(lease_name("default"), "kubeflex-reconciler-default");
    }
}
