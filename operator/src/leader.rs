//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder
//! reconciles. Takeover replaces the Lease with its resourceVersion, so two
//! candidates cannot both win. A holder that cannot renew within the renew
//! deadline ([`RENEW_DEADLINE`], shorter than [`LEASE_DURATION`], as
//! client-go) must stop: [`Lease::lost`] resolves and the process exits
//! before a standby may take the lease over, so two holders never overlap.
//! Each call is bounded by a timeout, so a hung API server cannot hold the
//! renewer past the deadline. Before a destructive step (a prune) a holder
//! asks [`LeaseHandle::confirm`].
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
/// How long a holder goes on after its last successful renewal: it stops
/// writing this long after it, a margin before [`LEASE_DURATION`] lets a
/// standby take over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often the operator renews, and its candidates retry.
pub const RETRY: Duration = Duration::from_secs(5);
/// Bound of one Lease API call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared between the renewer and [`LeaseHandle`]s: when the last successful
/// renewal started (the lease is good until [`RENEW_DEADLINE`] after it).
#[derive(Clone)]
struct Held {
    renewed: std::sync::Arc<std::sync::Mutex<tokio::time::Instant>>,
    lost: watch::Receiver<bool>,
}

impl Held {
    fn renewed(&self) -> tokio::time::Instant {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_renewed(&self, at: tokio::time::Instant) {
        let mut r = self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        *r = (*r).max(at);
    }
}

/// A cheap handle on a held lease, to confirm leadership before a
/// destructive step.
#[derive(Clone)]
pub struct LeaseHandle {
    held: Held,
    api: Api<LeaseObject>,
    name: String,
    identity: String,
}

impl LeaseHandle {
    /// Renews the lease now (one bounded call) and returns whether this
    /// process still holds it with at least `margin` of its renew deadline
    /// left; false when lost, taken, or unconfirmable.
    pub async fn confirm(&self, margin: Duration) -> bool {
        if *self.held.lost.borrow() {
            return false;
        }
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(
            CALL_TIMEOUT,
            try_acquire(&self.api, &self.name, &self.identity),
        )
        .await
        {
            Ok(Ok(true)) => self.held.set_renewed(started),
            Ok(Ok(false)) => return false,
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.name, error = %e, "confirming the lease failed")
            }
            Err(_) => tracing::warn!(lease = %self.name, "confirming the lease timed out"),
        }
        !*self.held.lost.borrow()
            && self.held.renewed() + RENEW_DEADLINE > tokio::time::Instant::now() + margin
    }
}

/// A held lease, renewed in the background until dropped.
pub struct Lease {
    lost: watch::Receiver<bool>,
    held: Held,
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

    /// A handle to confirm leadership with (see [`LeaseHandle::confirm`]).
    pub fn handle(&self) -> LeaseHandle {
        LeaseHandle {
            held: self.held.clone(),
            api: self.api.clone(),
            name: self.name.clone(),
            identity: self.identity.clone(),
        }
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
    let mut acquired;
    loop {
        acquired = tokio::time::Instant::now();
        let attempt = tokio::time::timeout(CALL_TIMEOUT, try_acquire(&api, name, identity)).await;
        let timed_out = || Error::Task {
            what: format!("acquiring Lease {name} (timed out)"),
        };
        match attempt.unwrap_or_else(|_| Err(timed_out())) {
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
    let held = Held {
        renewed: std::sync::Arc::new(std::sync::Mutex::new(acquired)),
        lost: rx.clone(),
    };
    let (held_api, held_name, held_identity) = (api.clone(), name.to_owned(), identity.to_owned());
    let (name, identity) = (name.to_owned(), identity.to_owned());
    let renewing = held.clone();
    let renewer = tokio::spawn(async move {
        loop {
            let deadline = renewing.renewed() + RENEW_DEADLINE;
            // Wake for the next renewal, or at the deadline at the latest.
            tokio::time::sleep_until((tokio::time::Instant::now() + retry).min(deadline)).await;
            let now = tokio::time::Instant::now();
            let deadline = renewing.renewed() + RENEW_DEADLINE;
            if now >= deadline {
                tracing::error!(lease = %name, "could not renew the lease within its renew deadline; stopping");
                tx.send_replace(true);
                return;
            }
            // No call may outlive the deadline.
            let bound = (deadline - now).min(CALL_TIMEOUT);
            match tokio::time::timeout(bound, try_acquire(&api, &name, &identity)).await {
                Ok(Ok(true)) => renewing.set_renewed(now),
                Ok(Ok(false)) => {
                    tracing::error!(lease = %name, "lease taken by another instance");
                    tx.send_replace(true);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %name, error = %e, "renewing the lease failed");
                }
                Err(_) => tracing::warn!(lease = %name, "renewing the lease timed out"),
            }
        }
    });
    Lease {
        lost: rx,
        held,
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
    fn the_renew_deadline_ends_before_the_lease_does() {
        const { assert!(RENEW_DEADLINE.as_secs() < LEASE_DURATION.as_secs()) };
        const { assert!(CALL_TIMEOUT.as_secs() <= RENEW_DEADLINE.as_secs()) };
    }

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
