//! The long-running side of [`Reconciler`]: drift corrections (from watch
//! events, retries with backoff and the periodic comparison) between
//! passes, and the loop that schedules both.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::events::EventType;
use tokio::sync::{Notify, mpsc};

use super::{BACKOFF, Reconciler, next_backoff};
use crate::drift::display_path;
use crate::error::Error;
use crate::validate::ObjectKey;
use crate::watch::{ObjectEvent, lock};

impl Reconciler {
    /// Puts a managed object back as Git says after someone changed or
    /// deleted it (unless suspended). Returns whether it wrote.
    pub async fn correct_drift(&mut self, event: ObjectEvent) -> Result<bool, Error> {
        let (key, deleted) = match &event {
            ObjectEvent::Changed(k) => (k, false),
            ObjectEvent::Deleted(k) => (k, true),
        };
        let Some(desired) = self.desired.get(key) else {
            return Ok(false);
        };
        let live = lock(&self.inventory).get(key).cloned();
        let diff = match (&live, deleted) {
            (Some(live), _) if live.suspended() || live.deleting => return Ok(false),
            (Some(live), _) => match desired.compare(live) {
                Some(diff) => Some(diff),
                None => return Ok(false),
            },
            (None, true) => {
                // Gone from our label-selected watch: deleted, or relabelled
                // by another source, which is not ours to take back.
                if let Some(now) = self.cluster.get(key).await?
                    && let Some(owner) = now.source()
                    && owner != self.settings.name
                {
                    tracing::warn!(%key, owner, "now managed by another source; not taking it back");
                    let note = format!("{key} is now managed by source {owner:?}; left as it is");
                    self.event(EventType::Warning, "OwnedElsewhere", "Drift", note)
                        .await;
                    return Ok(false);
                }
                None
            }
            (None, false) => return Ok(false),
        };
        let commit = live
            .as_ref()
            .and_then(|l| l.commit().map(str::to_owned))
            .or_else(|| self.last_applied.clone())
            .unwrap_or_default();
        let what = match &diff {
            None => "recreated (deleted in the cluster)".to_owned(),
            Some(d) => {
                let mut parts = Vec::new();
                if d.values_differ {
                    parts.push("values restored".to_owned());
                }
                for (path, manager) in &d.foreign {
                    parts.push(format!(
                        "{} removed (added by {manager})",
                        display_path(path)
                    ));
                }
                parts.join(", ")
            }
        };
        let written = self.cluster.apply(desired, diff.as_ref(), &commit).await?;
        lock(&self.inventory).upsert(written.live);
        tracing::info!(%key, %what, "drift corrected");
        self.metrics.objects("drift", 1);
        self.event(
            EventType::Warning,
            "DriftCorrected",
            "Drift",
            format!("{key}: {what}"),
        )
        .await;
        Ok(written.writes > 0)
    }

    /// Compares every object Git defines with the cluster and corrects
    /// what drifted (also objects deleted or edited during a watch gap).
    /// Returns the objects whose correction failed.
    pub async fn drift_sweep(&mut self) -> BTreeSet<ObjectKey> {
        let keys: Vec<ObjectKey> = self.desired.keys().cloned().collect();
        self.correct_all(keys).await
    }

    /// Corrects each of `keys`; returns those whose correction failed.
    async fn correct_all(&mut self, keys: Vec<ObjectKey>) -> BTreeSet<ObjectKey> {
        let mut failed = BTreeSet::new();
        for key in keys {
            let present = lock(&self.inventory).get(&key).is_some();
            let event = if present {
                ObjectEvent::Changed(key.clone())
            } else {
                ObjectEvent::Deleted(key.clone())
            };
            if let Err(e) = self.correct_drift(event).await {
                tracing::warn!(%key, error = %e, "correcting drift failed; retrying with backoff");
                failed.insert(key);
            }
        }
        failed
    }

    /// Runs passes until `stop` resolves: every `interval`, on a webhook or
    /// file trigger, with backoff after failures; drift events are handled
    /// between passes, failed corrections retried with backoff, and every
    /// object compared every `drift_interval`.
    pub async fn run(
        mut self,
        trigger: Arc<Notify>,
        mut files: Option<mpsc::Receiver<()>>,
        mut drift: mpsc::UnboundedReceiver<ObjectEvent>,
    ) {
        let mut backoff = BACKOFF.0;
        let mut retry: BTreeSet<ObjectKey> = BTreeSet::new();
        let mut retry_backoff = BACKOFF.0;
        let mut retry_at = None;
        let mut sweep_at = tokio::time::Instant::now() + self.settings.drift_interval;
        loop {
            let request = self.requests.as_ref().and_then(|r| r.take());
            // The fetch may wait on a slow Git server up to --fetch-timeout:
            // drift is corrected meanwhile (the pass itself has not begun,
            // so nothing races on an object). Triggers arriving now are kept
            // by `trigger` for the next pass.
            let mut fetching = std::pin::pin!(self.fetch());
            let fetched = loop {
                tokio::select! {
                    fetched = &mut fetching => break fetched,
                    Some(event) = drift.recv() => {
                        let failed = self.correct_one(event).await;
                        schedule_retry(failed, &mut retry, &mut retry_at, &mut retry_backoff);
                    }
                }
            };
            let result = self.pass_fetched(fetched).await;
            if let Some(value) = request {
                self.status.last_handled_sync_at = Some(value);
                if let Err(e) = self.writer.write(&self.status).await {
                    tracing::warn!(error = %e, "recording the handled sync request");
                }
            }
            let delay = match result {
                Ok(outcome) if outcome.apply_failed == 0 => {
                    backoff = BACKOFF.0;
                    self.metrics.set_ready(true);
                    self.settings.interval
                }
                Ok(_) => next_backoff(&mut backoff),
                Err(e) => {
                    tracing::warn!(error = %e, category = e.category(), retry_in = ?backoff, "pass failed; keeping the last applied state");
                    next_backoff(&mut backoff)
                }
            };
            let deadline = tokio::time::Instant::now() + delay;
            loop {
                let failed = tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    () = trigger.notified() => break,
                    Some(()) = recv(&mut files) => break,
                    Some(event) = drift.recv() => self.correct_one(event).await,
                    () = sleep_until_some(retry_at) => {
                        retry_at = None;
                        let keys = std::mem::take(&mut retry).into_iter().collect();
                        let failed = self.correct_all(keys).await;
                        if failed.is_empty() {
                            retry_backoff = BACKOFF.0;
                        }
                        failed
                    }
                    () = tokio::time::sleep_until(sweep_at) => {
                        sweep_at = tokio::time::Instant::now() + self.settings.drift_interval;
                        self.drift_sweep().await
                    }
                };
                schedule_retry(failed, &mut retry, &mut retry_at, &mut retry_backoff);
            }
        }
    }

    /// Corrects the object of one watch event; returns it when that failed.
    async fn correct_one(&mut self, event: ObjectEvent) -> BTreeSet<ObjectKey> {
        let key = match &event {
            ObjectEvent::Changed(k) | ObjectEvent::Deleted(k) => k.clone(),
        };
        match self.correct_drift(event).await {
            Ok(_) => BTreeSet::new(),
            Err(e) => {
                tracing::warn!(%key, error = %e, "correcting drift failed; retrying with backoff");
                BTreeSet::from([key])
            }
        }
    }
}

/// Queues failed corrections for a retry with backoff.
fn schedule_retry(
    failed: BTreeSet<ObjectKey>,
    retry: &mut BTreeSet<ObjectKey>,
    retry_at: &mut Option<tokio::time::Instant>,
    backoff: &mut std::time::Duration,
) {
    if failed.is_empty() {
        return;
    }
    retry.extend(failed);
    if retry_at.is_none() {
        *retry_at = Some(tokio::time::Instant::now() + next_backoff(backoff));
    }
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
