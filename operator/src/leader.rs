//! Leader election with a `coordination.k8s.io/v1` Lease (KubeFlex's id
//! `c6f71c85.kflex.kubestellar.org` in `kubeflex-system`): only the holder
//! reconciles. Takeover replaces the Lease with its resourceVersion, so two
//! candidates cannot both win. A holder that cannot renew within the lease
//! duration must stop: [`Lease::lost`] resolves and the process exits.

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
/// How often the holder renews, and candidates retry.
pub const RETRY: Duration = Duration::from_secs(5);

/// A held lease, renewed in the background until dropped.
pub struct Lease {
    lost: watch::Receiver<bool>,
    _renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Resolves when the lease was lost.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }
}

/// Whether a lease last renewed per `spec` has expired at `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => *renewed + SignedDuration::from_secs(duration) < now,
        None => true,
    }
}

/// Waits until this process holds the lease.
pub async fn acquire(client: kube::Client, namespace: &str, identity: &str) -> Lease {
    let api: Api<LeaseObject> = Api::namespaced(client, namespace);
    loop {
        match try_acquire(&api, identity).await {
            Ok(true) => break,
            Ok(false) => tracing::info!(
                lease = LEASE_NAME,
                "another operator holds the lease; waiting"
            ),
            Err(e) => {
                tracing::warn!(lease = LEASE_NAME, error = %e, "acquiring the lease failed; retrying")
            }
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(lease = LEASE_NAME, identity, "lease acquired");
    let (tx, rx) = watch::channel(false);
    let identity = identity.to_owned();
    let renewer = tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RETRY).await;
            match try_acquire(&api, &identity).await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => {
                    tx.send_replace(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the lease failed");
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
        _renewer: renewer,
    }
}

/// One attempt to take or renew the lease; `Ok(false)`: held by another.
async fn try_acquire(api: &Api<LeaseObject>, identity: &str) -> Result<bool> {
    let now = Timestamp::now();
    let what = format!("Lease {LEASE_NAME}");
    let current = api
        .get_opt(LEASE_NAME)
        .await
        .map_err(|e| Error::api(format!("reading {what}"), e))?;
    let secs = i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = current else {
        let lease = LeaseObject {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
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
    match api
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
    {
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
    }
}
