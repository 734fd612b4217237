//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder
//! reconciles. Takeover replaces the Lease with its resourceVersion, so two
//! candidates cannot both win. A holder that cannot renew within the lease
//! duration must stop: [`Lease::lost`] resolves and the process exits.
//! The operator uses KubeFlex's id [`LEASE_NAME`] in `kubeflex-system`; the
//! GitOps reconciler uses the same mechanism with a lease per source.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// KubeFlex's leader-election id.
pub const LEASE_NAME: &str = "c6f71c85.kflex.kubestellar.org";
/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the operator renews, and its candidates retry.
pub const RETRY: Duration = Duration::from_secs(5);

/// A held lease, renewed in the background until dropped.
pub struct Lease {
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
    api: Api<LeaseObject>,
    name: String,
    identity: String,
}

impl Lease {
    /// Resolves when the lease was lost.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Gives the lease up on a clean shutdown, so that a successor takes
    /// over at once instead of waiting [`LEASE_DURATION`] for it to expire.
    /// Best effort: if the API server cannot be reached the lease expires.
    pub async fn release(self) {
        self.renewer.abort();
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.name).await? else {
                return Ok(false);
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(false);
            }
            // No holder and never renewed: free to take (see [`expired`]).
            spec.holder_identity = None;
            spec.renew_time = None;
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
                .map(|_| true)
        }
        .await;
        match result {
            Ok(true) => tracing::info!(lease = %self.name, "lease released"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "releasing the lease failed; it will expire")
            }
        }
    }
}

/// Resolves on SIGTERM (what Kubernetes sends a pod) or SIGINT: the clean
/// stop after which a holder calls [`Lease::release`].
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown signal received");
}

/// Whether a lease last renewed per `spec` has expired at `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => *renewed + SignedDuration::from_secs(duration) < now,
        None => true,
    }
}

/// Waits until this process holds the lease `name` in `namespace`, trying
/// every `retry`; the holder renews at the same interval.
pub async fn acquire(
    client: kube::Client,
    namespace: &str,
    name: &str,
    identity: &str,
    retry: Duration,
) -> Lease {
    let api: Api<LeaseObject> = Api::namespaced(client, namespace);
    loop {
        match try_acquire(&api, name, identity).await {
            Ok(true) => break,
            Ok(false) => tracing::info!(lease = name, "another instance holds the lease; waiting"),
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "acquiring the lease failed; retrying")
            }
        }
        tokio::time::sleep(retry).await;
    }
    tracing::info!(lease = name, identity, "lease acquired");
    let (tx, rx) = watch::channel(false);
    let (held_api, held_name, held_identity) = (api.clone(), name.to_owned(), identity.to_owned());
    let (name, identity) = (name.to_owned(), identity.to_owned());
    let renewer = tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(retry).await;
            match try_acquire(&api, &name, &identity).await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %name, "lease taken by another instance");
                    tx.send_replace(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "renewing the lease failed");
                    if last.elapsed() >= LEASE_DURATION {
                        tx.send_replace(true);
                        return;
                    }
                }
            }
        }
    });
    Lease {
        lost: rx,
        renewer,
        api: held_api,
        name: held_name,
        identity: held_identity,
    }
}

/// One attempt to take or renew the lease; `Ok(false)`: held by another.
async fn try_acquire(api: &Api<LeaseObject>, name: &str, identity: &str) -> Result<bool> {
    let now = Timestamp::now();
    let what = format!("Lease {name}");
    let current = api
        .get_opt(name)
        .await
        .map_err(|e| Error::api(format!("reading {what}"), e))?;
    let secs = i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = current else {
        let lease = LeaseObject {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.into()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(Error::api(format!("creating {what}"), e)),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let ours = spec.holder_identity.as_deref() == Some(identity);
    if !ours && !expired(spec, now) {
        return Ok(false);
    }
    if !ours {
        spec.holder_identity = Some(identity.into());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(secs);
    spec.renew_time = Some(MicroTime(now));
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(Error::api(format!("renewing {what}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration() {
        let spec = LeaseSpec {
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(1_000).unwrap())),
            ..LeaseSpec::default()
        };
        assert!(!expired(&spec, Timestamp::from_second(1_010).unwrap()));
        assert!(expired(&spec, Timestamp::from_second(1_016).unwrap()));
        // Never renewed: free to take.
        assert!(expired(
            &LeaseSpec::default(),
            Timestamp::from_second(1_000).unwrap()
        ));
    }
}
