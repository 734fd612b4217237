//! Leader election with a `coordination.k8s.io/v1` Lease, so that two
//! reconcilers started for the same source (same `--name`) do not fight:
//! only the holder reconciles. Takeover uses the Lease's resourceVersion
//! (optimistic concurrency), so two candidates cannot both win.
//!
//! A holder that cannot renew before the lease expires must stop: the
//! caller ends the process when [`Lease::lost`] resolves.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use crate::error::Error;
use crate::names::CONTROLLER;

/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews, and candidates retry.
pub const RETRY: Duration = Duration::from_secs(2);

/// A held lease; renewed in the background until dropped.
pub struct Lease {
    lost: watch::Receiver<bool>,
    _renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Resolves when the lease was lost (could not be renewed in time, or
    /// someone else took it).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

/// The Lease name for a source.
pub fn lease_name(source: &str) -> String {
    format!("{CONTROLLER}-{source}")
}

/// Whether a lease held by `holder` (not us), last renewed at `renewed`,
/// may be taken over at `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => *renewed + SignedDuration::from_secs(duration) < now,
        None => true,
    }
}

/// Waits until this process holds the lease `name` in `namespace`.
pub async fn acquire(
    client: kube::Client,
    namespace: &str,
    name: &str,
    identity: &str,
) -> Result<Lease, Error> {
    let api: Api<LeaseObject> = Api::namespaced(client, namespace);
    loop {
        match try_acquire(&api, name, identity).await {
            Ok(true) => break,
            Ok(false) => {
                tracing::info!(lease = name, "another reconciler holds the lease; waiting")
            }
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "acquiring the lease failed; retrying")
            }
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(lease = name, identity, "lease acquired");
    let (tx, rx) = watch::channel(false);
    let (api, name, identity) = (api.clone(), name.to_owned(), identity.to_owned());
    let renewer = tokio::spawn(async move {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RETRY).await;
            match try_acquire(&api, &name, &identity).await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %name, "lease taken by another reconciler");
                    tx.send_replace(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "renewing the lease failed");
                    if last_renewal.elapsed() >= LEASE_DURATION {
                        tx.send_replace(true);
                        return;
                    }
                }
            }
        }
    });
    Ok(Lease {
        lost: rx,
        _renewer: renewer,
    })
}

/// One attempt to take or renew the lease. `Ok(false)`: held by someone else.
async fn try_acquire(api: &Api<LeaseObject>, name: &str, identity: &str) -> Result<bool, Error> {
    let now = Timestamp::now();
    let current = api
        .get_opt(name)
        .await
        .map_err(|e| Error::api("reading the lease", e))?;
    let secs = i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(i32::MAX);
    match current {
        None => {
            let lease = LeaseObject {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(identity.to_owned()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                // Someone else created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(Error::api("creating the lease", e)),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            let ours = spec.holder_identity.as_deref() == Some(identity);
            if !ours && !expired(spec, now) {
                return Ok(false);
            }
            if !ours {
                spec.holder_identity = Some(identity.to_owned());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(secs);
            spec.renew_time = Some(MicroTime(now));
            // The resourceVersion in `lease` makes this a compare-and-swap.
            match api.replace(name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(Error::api("renewing the lease", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration() {
        let renewed = Timestamp::from_second(1_000).unwrap();
        let spec = LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        };
        assert!(!expired(&spec, Timestamp::from_second(1_010).unwrap()));
        assert!(expired(&spec, Timestamp::from_second(1_016).unwrap()));
        assert!(expired(&LeaseSpec::default(), renewed));
        assert_eq!(lease_name("default"), "kubeflex-reconciler-default");
    }
}
