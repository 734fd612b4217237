//! Passes on request (`kflex sync`, like `flux reconcile`): a new value of
//! the [`ANNOTATION_SYNC_REQUESTED`] annotation on this reconciler's `Sync`
//! object triggers one pass, and that pass records the value in
//! `status.lastHandledSyncAt`, so the requester knows when it ran.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kubeflex_operator::api::Sync;
use tokio::sync::Notify;

use crate::names::ANNOTATION_SYNC_REQUESTED;

/// The request not handled yet.
#[derive(Debug, Default)]
pub struct Requests {
    pending: Mutex<Option<String>>,
}

impl Requests {
    /// Takes the pending request: the pass about to start handles it.
    pub fn take(&self) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Records a request seen on the object; whether it is new.
    pub fn offer(&self, value: &str, handled: Option<&str>) -> bool {
        if handled == Some(value) {
            return false;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.as_deref() == Some(value) {
            return false;
        }
        *pending = Some(value.to_owned());
        true
    }
}

/// Watches Sync `name` until dropped; each new request wakes `trigger`.
pub async fn watch(
    client: kube::Client,
    name: String,
    requests: Arc<Requests>,
    trigger: Arc<Notify>,
) {
    let api: Api<Sync> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let sync = match event {
            Ok(Event::Apply(s) | Event::InitApply(s)) => s,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "watching the Sync object for requests");
                continue;
            }
        };
        let requested = sync
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_SYNC_REQUESTED));
        let handled = sync
            .status
            .as_ref()
            .and_then(|s| s.last_handled_sync_at.as_deref());
        if let Some(value) = requested
            && requests.offer(value, handled)
        {
            tracing::info!(request = %value, "pass requested on the Sync object");
            trigger.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_handled_once() {
        let r = Requests::default();
        assert!(r.offer("t1", None));
        assert!(!r.offer("t1", None), "the same request again");
        assert_eq!(r.take().as_deref(), Some("t1"));
        assert!(!r.offer("t1", Some("t1")), "already handled");
        assert!(r.offer("t2", Some("t1")));
        assert_eq!(r.take().as_deref(), Some("t2"));
        assert_eq!(r.take(), None);
    }
}
