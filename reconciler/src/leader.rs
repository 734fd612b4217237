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

/// Makes sure the Lease can live in `namespace` (`--lease-namespace`):
/// when it is missing, creates it; when this identity may not create it,
/// fails with one line naming the namespace and the command that creates
/// it. `default` always exists and is not checked.
///
/// The check is a dry-run create of the source's Lease (`name`): no write,
/// and the answer tells whether the namespace exists and Leases may be
/// made there. The shipped RBAC grants no namespace creation: a namespace
/// made here would hold no Role for the Leases anyway, so creating it is for
/// identities that may do both (an admin, a wider role).
pub async fn ensure_namespace(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), String> {
    use k8s_openapi::api::coordination::v1::Lease as LeaseObject;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};

    if namespace == "default" {
        return Ok(());
    }
    let code = |e: &kube::Error| match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    };
    let mut lease = LeaseObject::default();
    lease.metadata.name = Some(name.to_owned());
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let leases: Api<LeaseObject> = Api::namespaced(client.clone(), namespace);
    match leases.create(&dry_run, &lease).await {
        // It exists (a 409: the Lease too).
        Ok(_) => return Ok(()),
        Err(e) if code(&e) == Some(409) => return Ok(()),
        // Missing (404), or not ours to use (403): try to create it.
        Err(e) if matches!(code(&e), Some(403 | 404)) => {}
        // Anything else (the API server unreachable…): leader election
        // retries and reports it.
        Err(_) => return Ok(()),
    }
    let mut ns = Namespace::default();
    ns.metadata.name = Some(namespace.to_owned());
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace, "created the lease namespace");
            Ok(())
        }
        Err(e) if code(&e) == Some(409) => Ok(()),
        Err(e) => Err(format!(
            "--lease-namespace {namespace}: the namespace does not exist (or its Leases are not ours to use) and this reconciler may not create it ({}); create it with `kubectl create namespace {namespace}` and bind the Role kubeflex-reconciler-leader-election there",
            match code(&e) {
                Some(403) => "forbidden".to_owned(),
                _ => e.to_string(),
            }
        )),
    }
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
