//! Prometheus metrics, `/healthz` and `/readyz` on `--metrics-addr`.
//!
//! A hand-written text exposition rather than the prometheus-client crate:
//! there are six metric families with fixed label sets, the format is a few
//! lines of text, and one dependency less matters on a two-core build box.
//! Names follow Prometheus conventions (`_total`, `_seconds`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};

use kubeflex_operator::endpoints::Body;

/// Upper bounds of the sync duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Inner {
    /// Cumulative bucket counts, then sum and count.
    duration_buckets: [u64; BUCKETS.len()],
    duration_sum: f64,
    duration_count: u64,
    /// By action: applied, unchanged, pruned, failed, drift.
    objects: BTreeMap<&'static str, u64>,
    /// Failed passes by error category.
    failures: BTreeMap<&'static str, u64>,
    fetch_errors: u64,
    webhooks: BTreeMap<&'static str, u64>,
    last_applied_timestamp: Option<f64>,
}

/// The reconciler's metrics, shared by the loop and the servers.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    ready: AtomicBool,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // A poisoned lock only means a panic elsewhere mid-update; the
        // counters are still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner);
    }

    pub fn pass_duration(&self, d: Duration) {
        let secs = d.as_secs_f64();
        self.with(|m| {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    m.duration_buckets[i] += 1;
                }
            }
            m.duration_sum += secs;
            m.duration_count += 1;
        });
    }

    pub fn objects(&self, action: &'static str, n: usize) {
        if n > 0 {
            self.with(|m| *m.objects.entry(action).or_default() += n as u64);
        }
    }

    pub fn failure(&self, category: &'static str) {
        self.with(|m| *m.failures.entry(category).or_default() += 1);
    }

    pub fn fetch_error(&self) {
        self.with(|m| m.fetch_errors += 1);
    }

    pub fn webhook(&self, outcome: &'static str) {
        self.with(|m| *m.webhooks.entry(outcome).or_default() += 1);
    }

    /// Time (Unix seconds) of the commit last applied.
    pub fn last_applied(&self, unix_seconds: f64) {
        self.with(|m| m.last_applied_timestamp = Some(unix_seconds));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.with(|m| {
            let _ = writeln!(
                out,
                "# HELP kflex_gitops_sync_duration_seconds Duration of sync passes.\n# TYPE kflex_gitops_sync_duration_seconds histogram"
            );
            for (bound, count) in BUCKETS.iter().zip(m.duration_buckets) {
                let _ = writeln!(
                    out,
                    "kflex_gitops_sync_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "kflex_gitops_sync_duration_seconds_bucket{{le=\"+Inf\"}} {}\nkflex_gitops_sync_duration_seconds_sum {}\nkflex_gitops_sync_duration_seconds_count {}",
                m.duration_count, m.duration_sum, m.duration_count
            );
            let _ = writeln!(
                out,
                "# HELP kflex_gitops_objects_total Objects handled, by action.\n# TYPE kflex_gitops_objects_total counter"
            );
            for (action, n) in &m.objects {
                let _ = writeln!(out, "kflex_gitops_objects_total{{action=\"{action}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "# HELP kflex_gitops_sync_failures_total Failed passes, by error category.\n# TYPE kflex_gitops_sync_failures_total counter"
            );
            for (category, n) in &m.failures {
                let _ = writeln!(
                    out,
                    "kflex_gitops_sync_failures_total{{category=\"{category}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP kflex_gitops_fetch_errors_total Failed fetches.\n# TYPE kflex_gitops_fetch_errors_total counter\nkflex_gitops_fetch_errors_total {}",
                m.fetch_errors
            );
            let _ = writeln!(
                out,
                "# HELP kflex_gitops_webhooks_total Webhook calls, by outcome.\n# TYPE kflex_gitops_webhooks_total counter"
            );
            for (outcome, n) in &m.webhooks {
                let _ = writeln!(
                    out,
                    "kflex_gitops_webhooks_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
            if let Some(ts) = m.last_applied_timestamp {
                let _ = writeln!(
                    out,
                    "# HELP kflex_gitops_last_applied_commit_timestamp_seconds Commit time of the revision last applied.\n# TYPE kflex_gitops_last_applied_commit_timestamp_seconds gauge\nkflex_gitops_last_applied_commit_timestamp_seconds {ts}"
                );
            }
        });
        out
    }
}

/// `/metrics`, `/healthz` (the process serves) and `/readyz` (the inventory
/// is synced and a first pass ended).
pub async fn handle(
    req: Request<Incoming>,
    _peer: SocketAddr,
    metrics: Arc<Metrics>,
) -> Response<Body> {
    kubeflex_operator::endpoints::observability(req.uri().path(), metrics.is_ready(), || {
        metrics.render()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::default();
        m.pass_duration(Duration::from_millis(30));
        m.objects("applied", 2);
        m.objects("pruned", 0);
        m.failure("fetch");
        m.fetch_error();
        m.last_applied(1.7e9);
        let text = m.render();
        assert!(text.contains("kflex_gitops_sync_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("kflex_gitops_sync_duration_seconds_bucket{le=\"0.01\"} 0"));
        assert!(text.contains("kflex_gitops_objects_total{action=\"applied\"} 2"));
        assert!(!text.contains("action=\"pruned\""));
        assert!(text.contains("kflex_gitops_sync_failures_total{category=\"fetch\"} 1"));
        assert!(text.contains("kflex_gitops_fetch_errors_total 1"));
        assert!(text.contains("kflex_gitops_last_applied_commit_timestamp_seconds 1700000000"));
    }
}
