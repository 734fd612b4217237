//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.
//!
//! A hand-written text exposition (as the reconciler does): four families
//! with fixed labels do not justify a metrics crate. Reconciles, failures
//! and durations are labelled by control-plane type; failures also by the
//! error's stable category; writes by object kind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Response;

use crate::endpoints::{self, Body};

/// Upper bounds of the reconcile duration histogram, in seconds.
const BUCKETS: [f64; 9] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    reconciles: BTreeMap<String, u64>,
    failures: BTreeMap<(String, &'static str), u64>,
    durations: BTreeMap<String, Histogram>,
    writes: BTreeMap<String, u64>,
    pki_seconds: f64,
    pki_count: u64,
    /// Control planes reconciled to the end (either way) by this process.
    checked: std::collections::BTreeSet<String>,
}

/// Shared by the controller and the HTTP server.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    ready: AtomicBool,
}

/// Records a reconcile's duration when dropped, so early returns count too.
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    type_: String,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .observe_duration(&self.type_, self.start.elapsed());
    }
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // A poisoned lock means a panic mid-update elsewhere; counters stay usable.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner);
    }

    /// Counts a reconcile of a control plane of `type_` and times it.
    pub fn reconcile(self: &Arc<Self>, type_: &str) -> ReconcileTimer {
        self.with(|m| *m.reconciles.entry(type_.into()).or_default() += 1);
        ReconcileTimer {
            metrics: self.clone(),
            type_: type_.into(),
            start: Instant::now(),
        }
    }

    fn observe_duration(&self, type_: &str, d: Duration) {
        let secs = d.as_secs_f64();
        self.with(|m| {
            let h = m.durations.entry(type_.into()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        });
    }

    /// Counts a failed reconcile.
    pub fn failure(&self, type_: &str, category: &'static str) {
        self.with(|m| *m.failures.entry((type_.into(), category)).or_default() += 1);
    }

    /// Counts a write (apply or delete) of an object of `kind`.
    pub fn write(&self, kind: &str) {
        self.with(|m| *m.writes.entry(kind.into()).or_default() += 1);
    }

    /// Time spent loading, renewing or generating certificates.
    pub fn pki(&self, d: Duration) {
        self.with(|m| {
            m.pki_seconds += d.as_secs_f64();
            m.pki_count += 1;
        });
    }

    /// `(seconds, operations)` of PKI work so far (benchmark).
    pub fn pki_totals(&self) -> (f64, u64) {
        let mut out = (0.0, 0);
        self.with(|m| out = (m.pki_seconds, m.pki_count));
        out
    }

    /// Total writes so far (tests, benchmark).
    pub fn total_writes(&self) -> u64 {
        let mut n = 0;
        self.with(|m| n = m.writes.values().sum());
        n
    }

    /// Control plane `name` was reconciled to the end (its status now
    /// says what this process found, not what an earlier one stored).
    pub fn checked(&self, name: &str) {
        self.with(|m| {
            if !m.checked.contains(name) {
                m.checked.insert(name.to_owned());
            }
        });
    }

    /// Whether [`Metrics::checked`] was called for `name` (`kflex dev`
    /// shows a stored Ready as "checking" until then).
    pub fn was_checked(&self, name: &str) -> bool {
        let mut out = false;
        self.with(|m| out = m.checked.contains(name));
        out
    }

    /// The watcher's initial list is done.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.with(|m| {
            let _ = writeln!(
                out,
                "# HELP kflex_operator_reconciles_total Reconciles, by control-plane type.\n# TYPE kflex_operator_reconciles_total counter"
            );
            for (t, n) in &m.reconciles {
                let _ = writeln!(out, "kflex_operator_reconciles_total{{type=\"{t}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "# HELP kflex_operator_reconcile_errors_total Failed reconciles, by type and error category.\n# TYPE kflex_operator_reconcile_errors_total counter"
            );
            for ((t, c), n) in &m.failures {
                let _ = writeln!(
                    out,
                    "kflex_operator_reconcile_errors_total{{type=\"{t}\",category=\"{c}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP kflex_operator_reconcile_duration_seconds Reconcile durations, by type.\n# TYPE kflex_operator_reconcile_duration_seconds histogram"
            );
            for (t, h) in &m.durations {
                for (bound, count) in BUCKETS.iter().zip(h.buckets) {
                    let _ = writeln!(
                        out,
                        "kflex_operator_reconcile_duration_seconds_bucket{{type=\"{t}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "kflex_operator_reconcile_duration_seconds_bucket{{type=\"{t}\",le=\"+Inf\"}} {c}\nkflex_operator_reconcile_duration_seconds_sum{{type=\"{t}\"}} {s}\nkflex_operator_reconcile_duration_seconds_count{{type=\"{t}\"}} {c}",
                    c = h.count,
                    s = h.sum
                );
            }
            let _ = writeln!(
                out,
                "# HELP kflex_operator_writes_total Objects applied or deleted, by kind.\n# TYPE kflex_operator_writes_total counter"
            );
            for (k, n) in &m.writes {
                let _ = writeln!(out, "kflex_operator_writes_total{{kind=\"{k}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "# HELP kflex_operator_pki_seconds_total Time spent on certificates.\n# TYPE kflex_operator_pki_seconds_total counter\nkflex_operator_pki_seconds_total {}",
                m.pki_seconds
            );
        });
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    endpoints::serve(listener, move |req, _peer| {
        let metrics = metrics.clone();
        async move { route(req.uri().path(), &metrics) }
    })
    .await;
}

fn route(path: &str, metrics: &Metrics) -> Response<Body> {
    endpoints::observability(path, metrics.is_ready(), || metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn exposition_has_every_family() {
        let m = Arc::new(Metrics::default());
        drop(m.reconcile("k8s"));
        m.failure("k8s", "api");
        m.write("Secret");
        let text = m.render();
        assert!(text.contains("kflex_operator_reconciles_total{type=\"k8s\"} 1"));
        assert!(
            text.contains("kflex_operator_reconcile_errors_total{type=\"k8s\",category=\"api\"} 1")
        );
        assert!(text.contains("kflex_operator_reconcile_duration_seconds_count{type=\"k8s\"} 1"));
        assert!(text.contains("kflex_operator_writes_total{kind=\"Secret\"} 1"));
        assert_eq!(
            route("/readyz", &m).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        m.set_ready(true);
        assert_eq!(route("/readyz", &m).status(), StatusCode::OK);
        assert_eq!(route("/healthz", &m).status(), StatusCode::OK);
    }
}
