//! The reconcile loop: read (source and inventory), compute (plan), apply
//! (writes, prune, status). One task runs passes and drift corrections in
//! turn, so the two never race on an object.
//!
//! Guarantees: a pass that cannot fetch or read the tree stops before the
//! plan (nothing applied, nothing pruned); the last applied revision only
//! advances when every write of a pass succeeded, so a failed write is
//! retried (with backoff) and the changes since are re-read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kubeflex_operator::api::{BlockedPrune, SyncCounts, SyncFileError, SyncSpec, SyncStatus};
use tracing::Instrument;

use crate::apply::Cluster;
use crate::error::Error;
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::names::{CONTROLLER, LABEL_SOURCE};
use crate::plan::{self, BlockReason, DesiredObject, PruneOptions, Scope, SkipReason};
use crate::source::{ChangeKind, Changes, Source, SourceError, Update, poll_blocking, redact_url};
use crate::status::{StatusWriter, Verdict, file_errors, now, record_conditions};
use crate::validate::{
    ClusterView, Definition, Kind, Limits, ObjectKey, Options, Problem, Report, Selection, validate,
};
use crate::watch::{control_plane_types, lock};

/// Writes in flight at once during a pass.
const CONCURRENCY: usize = 16;

/// Retry delays after a failed pass: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

/// How the reconciler was configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--name`: the Sync object and the source label value.
    pub name: String,
    /// Shown in status and annotations: the Git URL or the directory.
    pub url: String,
    pub reference: Option<String>,
    pub path: String,
    pub prune: PruneOptions,
    pub interval: Duration,
    /// `--drift-interval`: how often every managed object is compared with
    /// Git even when nothing reported a change.
    pub drift_interval: Duration,
    /// Caps on what one pass reads (`--max-files`, `--max-bytes`) and on
    /// single files.
    pub limits: Limits,
}

/// `--drift-interval`'s default.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(600);

impl Settings {
    /// Settings with defaults for everything but the source's identity.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            reference: None,
            path: String::new(),
            prune: PruneOptions::default(),
            interval: Duration::from_secs(60),
            drift_interval: DEFAULT_DRIFT_INTERVAL,
            limits: Limits::default(),
        }
    }
}

/// What a source yielded and validation made of it.
pub struct Read {
    pub revision: String,
    /// `None` for a full pass; otherwise the files changed (incl. deleted).
    pub changed: Option<BTreeSet<String>>,
    pub report: Report,
    /// Time spent fetching and diffing, and validating.
    pub fetch: Duration,
    pub validate: Duration,
}

/// A finished poll of the source, and how long it took.
pub struct Fetched {
    pub update: Result<Update, SourceError>,
    pub took: Duration,
}

impl Fetched {
    /// Polls `source` (on the blocking pool, within its deadline). Owns
    /// what it needs, so the reconciler can do other work meanwhile.
    pub async fn from_source(source: Arc<dyn Source>, last_applied: Option<String>) -> Self {
        let started = Instant::now();
        let update = poll_blocking(source, last_applied).await;
        Self {
            update,
            took: started.elapsed(),
        }
    }
}

/// Validates what a poll of the source changed. Any error here means the
/// pass stops: nothing is applied or pruned.
pub async fn read(
    fetched: Fetched,
    last_applied: Option<String>,
    desired: &BTreeMap<ObjectKey, DesiredObject>,
    cluster: ClusterView,
    managed_files: BTreeSet<String>,
    limits: Limits,
) -> Result<Option<Read>, Error> {
    let update = fetched.update?;
    let fetch = fetched.took;
    let revision = update.snapshot.revision().to_owned();
    let changed = match &update.changes {
        Changes::Full => None,
        Changes::Paths(paths) if paths.is_empty() && last_applied.as_deref() == Some(&revision) => {
            return Ok(None);
        }
        Changes::Paths(paths) => Some(
            paths
                .iter()
                .map(|c| c.path.clone())
                .collect::<BTreeSet<_>>(),
        ),
    };
    let mut options = Options {
        cluster,
        managed_files,
        limits,
        ..Options::default()
    };
    let selection: Option<Vec<String>> = match (&update.changes, &changed) {
        (Changes::Paths(paths), Some(changed)) => {
            options.elsewhere = desired
                .values()
                .filter(|d| !changed.contains(&d.path))
                .map(|d| Definition {
                    key: d.key.clone(),
                    path: d.path.clone(),
                    pos: d.pos,
                })
                .collect();
            Some(
                paths
                    .iter()
                    .filter(|c| c.kind != ChangeKind::Deleted)
                    .map(|c| c.path.clone())
                    .collect(),
            )
        }
        _ => None,
    };
    let snapshot = update.snapshot;
    let started = Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        let selection = match &selection {
            Some(paths) => Selection::Paths(paths),
            None => Selection::All,
        };
        validate(snapshot.as_ref(), selection, &options)
    })
    .await
    .map_err(|e| Error::Join(e.to_string()))??;
    Ok(Some(Read {
        revision,
        changed,
        report,
        fetch,
        validate: started.elapsed(),
    }))
}

/// What one pass did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub revision: String,
    /// Nothing new: the revision was already applied.
    pub idle: bool,
    /// `failed` counts objects whose apply or prune failed plus files that
    /// fail validation.
    pub counts: SyncCounts,
    pub writes: usize,
    pub files_read: usize,
    pub validation_errors: usize,
    /// Files failing validation (now or, unread, earlier).
    pub invalid_files: usize,
    /// Applies and prunes that failed (retried with backoff).
    pub apply_failed: usize,
    pub errors: Vec<String>,
    pub prune_blocked: Option<String>,
    /// Where the pass spent its time.
    pub phases: Phases,
}

/// Wall time of a pass's phases, logged with `pass done`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Reading what validation needs from the cluster (hook names, types).
    pub cluster_view: Duration,
    /// Fetch, tree read and diff.
    pub fetch: Duration,
    pub validate: Duration,
    pub plan: Duration,
    /// Writes and prunes.
    pub apply: Duration,
}

impl Outcome {
    /// Anything a user must look at (for `--once`'s exit code).
    pub fn failed(&self) -> bool {
        self.apply_failed > 0 || self.validation_errors > 0 || self.prune_blocked.is_some()
    }
}

/// The reconciler's state between passes.
pub struct Reconciler {
    settings: Settings,
    source: Arc<dyn Source>,
    cluster: Cluster,
    inventory: Arc<Mutex<Inventory>>,
    /// Every object Git defines, as last read (for incremental passes and
    /// drift correction).
    desired: BTreeMap<ObjectKey, DesiredObject>,
    /// Errors of files that failed validation, by file.
    failed_files: BTreeMap<String, Vec<Problem>>,
    last_applied: Option<String>,
    status: SyncStatus,
    writer: StatusWriter,
    recorder: Recorder,
    reference: Option<ObjectReference>,
    metrics: Arc<Metrics>,
    /// What the last pass that did work concluded.
    verdict: Option<Verdict>,
    /// Files of objects whose prune was put off.
    deferred: BTreeSet<String>,
    /// Pass requests from the Sync object (`kflex sync`).
    requests: Option<Arc<crate::request::Requests>>,
    /// `--git-url`, `--ref` or `--path` differ from the last pass allowed
    /// to prune (as the Sync status recorded it).
    source_changed: bool,
    /// Validation problems already logged, so each is logged once while it
    /// lasts.
    logged_problems: BTreeSet<String>,
    /// Asked before any prune: whether this replica still leads.
    lease: Option<Arc<dyn LeaseCheck>>,
}

/// Whether this replica may still write (see `kubeflex_operator::leader`).
pub trait LeaseCheck: Send + Sync {
    /// True when the lease is held and not about to expire.
    fn confirm(&self) -> futures::future::BoxFuture<'_, bool>;
}

impl Reconciler {
    pub fn new(
        settings: Settings,
        source: Arc<dyn Source>,
        cluster: Cluster,
        inventory: Arc<Mutex<Inventory>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let client = cluster.client().clone();
        let reporter = Reporter {
            controller: CONTROLLER.to_owned(),
            instance: None,
        };
        Self {
            writer: StatusWriter::new(client.clone(), &settings.name),
            recorder: Recorder::new(client, reporter),
            settings,
            source,
            cluster,
            inventory,
            desired: BTreeMap::new(),
            failed_files: BTreeMap::new(),
            last_applied: None,
            status: SyncStatus::default(),
            reference: None,
            metrics,
            verdict: None,
            deferred: BTreeSet::new(),
            source_changed: false,
            logged_problems: BTreeSet::new(),
            lease: None,
            requests: None,
        }
    }

    /// Runs a pass for each request on the Sync object (`kflex sync`), and
    /// records it as handled; see [`crate::request`].
    pub fn with_requests(mut self, requests: Arc<crate::request::Requests>) -> Self {
        self.requests = Some(requests);
        self
    }

    /// Confirms leadership with `lease` before every prune.
    pub fn with_lease(mut self, lease: Arc<dyn LeaseCheck>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Creates the Sync object and picks up its status. A missing CRD is
    /// logged, not fatal: reconciling works without the status object.
    pub async fn init_status(&mut self) {
        let spec = SyncSpec {
            url: Some(self.settings.url.clone()),
            reference: self.settings.reference.clone(),
            path: Some(self.settings.path.clone()),
        };
        match self.writer.ensure(spec).await {
            Ok((old_spec, status)) => {
                self.source_changed = self.changed_since(old_spec.as_ref(), &status);
                self.status = status;
            }
            Err(e) => tracing::warn!(error = %e, "cannot write the Sync status object"),
        }
        if self.source_changed {
            tracing::warn!(
                url = %self.settings.url,
                path = %self.settings.path,
                "the source changed since the last pass; prunes wait for --force-prune"
            );
        } else {
            self.accept_source();
        }
        // Credentials a previous version may have stored are dropped.
        self.status.url = self.status.url.as_deref().map(redact_url);
        self.reference = self.writer.reference().await.ok();
    }

    /// Whether the last recorded source differs from this one. A status
    /// without a URL (a new Sync) is no change; a status of a previous
    /// version, without `path`, is compared with its spec's.
    fn changed_since(&self, old_spec: Option<&SyncSpec>, status: &SyncStatus) -> bool {
        let Some(url) = status.url.as_deref() else {
            return false;
        };
        let path = status
            .path
            .as_deref()
            .or(old_spec.and_then(|s| s.path.as_deref()))
            .unwrap_or_default();
        redact_url(url) != self.settings.url
            || status.reference != self.settings.reference
            || path.trim_matches('/') != self.settings.path
    }

    /// Records this source as the one prunes are made for.
    fn accept_source(&mut self) {
        self.source_changed = false;
        self.status.url = Some(self.settings.url.clone());
        self.status.reference = self.settings.reference.clone();
        self.status.path = Some(self.settings.path.clone());
    }

    /// One pass, with status, events and metrics.
    pub async fn pass(&mut self) -> Result<Outcome, Error> {
        let fetched = Fetched::from_source(self.source.clone(), self.last_applied.clone()).await;
        self.pass_fetched(fetched).await
    }

    /// A fetch for the next pass: it owns what it needs, so drift
    /// corrections can run while it waits on the network (see `run`).
    pub fn fetch(&self) -> impl std::future::Future<Output = Fetched> + Send + use<> {
        Fetched::from_source(self.source.clone(), self.last_applied.clone())
    }

    /// The rest of a pass after its fetch, with status, events and metrics.
    pub async fn pass_fetched(&mut self, fetched: Fetched) -> Result<Outcome, Error> {
        let started = Instant::now()
            .checked_sub(fetched.took)
            .unwrap_or_else(Instant::now);
        let span = tracing::info_span!("sync", name = %self.settings.name, revision = tracing::field::Empty);
        let result = self
            .pass_inner(fetched, &span)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(outcome) => {
                if !outcome.idle {
                    self.metrics.pass_duration(started.elapsed());
                    self.verdict = Some(Verdict::of(outcome));
                }
            }
            Err(e) => {
                self.metrics.failure(e.category());
                if matches!(e, Error::Source(_)) {
                    self.metrics.fetch_error();
                }
            }
        }
        record_conditions(
            &mut self.status.conditions,
            result.as_ref().map(|_| self.verdict.as_ref()),
            &now(),
        );
        let status = self.status.clone();
        match self.writer.write(&status).await {
            Ok(true) => tracing::debug!("status written"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "writing status failed"),
        }
        result
    }

    async fn pass_inner(
        &mut self,
        fetched: Fetched,
        span: &tracing::Span,
    ) -> Result<Outcome, Error> {
        let mut phases = Phases::default();
        let started = Instant::now();
        let view = ClusterView {
            hooks: Some(self.cluster.hook_names().await?),
            control_plane_types: control_plane_types(&lock(&self.inventory)),
        };
        phases.cluster_view = started.elapsed();
        let managed_files: BTreeSet<String> = lock(&self.inventory)
            .objects()
            .values()
            .filter_map(|o| o.path().map(str::to_owned))
            .collect();
        let Some(read) = read(
            fetched,
            self.last_applied.clone(),
            &self.desired,
            view,
            managed_files,
            self.settings.limits.clone(),
        )
        .await?
        else {
            return Ok(Outcome {
                idle: true,
                revision: self.last_applied.clone().unwrap_or_default(),
                ..Outcome::default()
            });
        };
        span.record("revision", read.revision.as_str());
        self.status.last_fetched_commit = Some(read.revision.clone());
        self.status.last_attempted_commit = Some(read.revision.clone());
        let Read {
            revision,
            changed,
            mut report,
            fetch,
            validate,
        } = read;
        phases.fetch = fetch;
        phases.validate = validate;
        let started = Instant::now();

        // Errors by file: a full pass replaces them, an incremental one
        // replaces those of the files it read.
        match &changed {
            None => self.failed_files.clear(),
            Some(paths) => self.failed_files.retain(|p, _| !paths.contains(p)),
        }
        for problem in report.errors() {
            self.failed_files
                .entry(problem.path.clone())
                .or_default()
                .push(problem.clone());
        }
        for warning in report.warnings() {
            tracing::info!(%warning, "validation warning");
        }
        self.log_new_problems();
        let failed: BTreeSet<String> = self.failed_files.keys().cloned().collect();
        // The parsed documents are not needed past this point: free them
        // before the plan copies the objects to apply (a full pass holds
        // every object of the repository).
        let new: Vec<DesiredObject> = std::mem::take(&mut report.documents)
            .into_iter()
            .map(|d| DesiredObject::from_document(d, &self.settings.name, &self.settings.url))
            .collect();
        let previous = &self.desired;
        let elsewhere = |key: &ObjectKey| match &changed {
            None => false,
            Some(paths) => previous
                .get(key)
                .is_some_and(|d| !paths.contains(&d.path) || failed.contains(&d.path)),
        };
        // Files whose objects' prune was put off (a broken file, the guard)
        // stay in scope until a pass decides about them.
        let scope_paths = changed.as_ref().map(|paths| {
            paths
                .union(&self.deferred)
                .cloned()
                .collect::<BTreeSet<_>>()
        });
        let mut plan = {
            let inventory = lock(&self.inventory);
            let plan = plan::plan(plan::Input {
                desired: &new,
                elsewhere: &elsewhere,
                failed_files: &failed,
                scope: match &scope_paths {
                    None => Scope::Full,
                    Some(paths) => Scope::Paths(paths),
                },
                inventory: inventory.objects(),
                prune: self.settings.prune,
                source_changed: self.source_changed,
            });
            self.deferred = plan
                .skipped
                .iter()
                .filter(|(_, r)| {
                    matches!(r, SkipReason::ValidationErrors | SkipReason::PruneBlocked)
                })
                .filter_map(|(k, _)| inventory.get(k).and_then(|o| o.path().map(str::to_owned)))
                .collect();
            plan
        };

        phases.plan = started.elapsed();
        let started = Instant::now();
        let mut outcome = Outcome {
            revision: revision.clone(),
            files_read: report.files.len(),
            validation_errors: report.errors().count()
                + self
                    .failed_files
                    .iter()
                    .filter(|(p, _)| !report.files.contains_key(*p))
                    .map(|(_, v)| v.len())
                    .sum::<usize>(),
            ..Outcome::default()
        };
        outcome.counts.unchanged = plan.unchanged.len() as i64;
        let mut apply_errors: Vec<SyncFileError> = Vec::new();
        let owned_elsewhere = self.owned_elsewhere(&plan.apply).await?;
        for (desired, owner) in &owned_elsewhere {
            apply_errors.push(file_error(
                desired,
                format!(
                    "{} is managed by source {owner:?} (label {LABEL_SOURCE}); left as it is: define it in one source only",
                    desired.key
                ),
            ));
        }
        // Hooks before the ControlPlanes that use them: the operator may
        // act on a new ControlPlane at once.
        for kind in [Kind::PostCreateHook, Kind::ControlPlane] {
            let cluster = self.cluster.clone();
            let to_write = plan.apply.iter().filter(|(d, _)| {
                d.key.kind == kind && !owned_elsewhere.iter().any(|(o, _)| o.key == d.key)
            });
            let mut writes = futures::stream::iter(to_write.map(|(desired, diff)| {
                let cluster = cluster.clone();
                let revision = revision.clone();
                async move {
                    (
                        desired,
                        cluster.apply(desired, diff.as_ref(), &revision).await,
                    )
                }
            }))
            .buffer_unordered(CONCURRENCY);
            while let Some((desired, result)) = writes.next().await {
                match result {
                    Ok(written) => {
                        outcome.counts.applied += 1;
                        outcome.writes += written.writes;
                        lock(&self.inventory).upsert(written.live);
                    }
                    Err(e) => {
                        tracing::warn!(key = %desired.key, position = %format_args!("{}:{}", desired.path, desired.pos), error = %e, "apply failed");
                        apply_errors.push(file_error(desired, e.to_string()));
                        self.metrics.failure(e.category());
                    }
                }
            }
        }
        // A failed apply may be the new half of a rename: deleting the old
        // half now would lose the tenant.
        if !apply_errors.is_empty() {
            plan.block_prunes(BlockReason::ApplyFailed);
        }
        if !plan.prune.is_empty() {
            let (source, revision) = (self.source.clone(), revision.clone());
            let settled = tokio::task::spawn_blocking(move || source.settled(&revision))
                .await
                .unwrap_or(false);
            if !settled {
                plan.block_prunes(BlockReason::Unsettled);
            }
        }
        if !plan.prune.is_empty()
            && let Some(lease) = &self.lease
            && !lease.confirm().await
        {
            plan.block_prunes(BlockReason::LeaseUnconfirmed);
        }
        let prune = std::mem::take(&mut plan.prune);
        for live in &prune {
            match self.cluster.delete(live).await {
                Ok(()) => {
                    outcome.counts.pruned += 1;
                    outcome.writes += 1;
                    lock(&self.inventory).remove(&live.key);
                    tracing::info!(key = %live.key, "pruned");
                }
                Err(e) => {
                    tracing::warn!(key = %live.key, error = %e, "prune failed");
                    apply_errors.push(SyncFileError {
                        path: live.path().unwrap_or_default().to_owned(),
                        line: 0,
                        column: 0,
                        message: e.to_string(),
                    });
                }
            }
        }
        phases.apply = started.elapsed();
        outcome.phases = phases;
        outcome.apply_failed = apply_errors.len();
        outcome.invalid_files = self.failed_files.len();
        outcome.counts.failed = (outcome.apply_failed + outcome.invalid_files) as i64;
        outcome.errors = apply_errors.iter().map(|e| e.message.clone()).collect();
        outcome.prune_blocked = (!plan.prune_blocked.is_empty()).then(|| {
            plan.prune_blocked
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        });
        for (key, reason) in &plan.skipped {
            tracing::info!(%key, reason = reason.as_str(), "left as it is");
        }
        for blocked in &plan.prune_blocked {
            tracing::warn!(reason = blocked.reason.as_str(), "{blocked}");
        }
        self.status.prune_blocked = plan
            .prune_blocked
            .iter()
            .flat_map(|b| b.candidates.iter())
            .map(|k| format!("{}/{}", k.kind, k.name))
            .collect();
        self.status.blocked_prunes = plan
            .prune_blocked
            .iter()
            .flat_map(|b| {
                b.candidates.iter().map(|k| BlockedPrune {
                    kind: k.kind.to_string(),
                    name: k.name.clone(),
                    reason: b.reason.as_str().to_owned(),
                })
            })
            .collect();
        let source_blocked = plan
            .prune_blocked
            .iter()
            .any(|b| b.reason == BlockReason::SourceChanged);
        let prunes_blocked = !plan.prune_blocked.is_empty();
        drop(plan);
        if self.source_changed
            && !source_blocked
            && apply_errors.is_empty()
            && self.failed_files.is_empty()
        {
            tracing::info!("the new source is confirmed for pruning");
            self.accept_source();
        }
        // The new desired state: what was read replaces what those files
        // defined; objects of failed files stay as they were.
        match &changed {
            None => self.desired.retain(|_, d| failed.contains(&d.path)),
            Some(paths) => self
                .desired
                .retain(|_, d| !paths.contains(&d.path) || failed.contains(&d.path)),
        }
        for d in new {
            self.desired.insert(d.key.clone(), d);
        }
        if outcome.apply_failed == 0 {
            // Internally, the next pass starts from here (failed files are
            // tracked apart); the status claims the commit applied only
            // when all of it is.
            self.last_applied = Some(revision.clone());
            if self.failed_files.is_empty() && !prunes_blocked {
                self.status.last_applied_commit = Some(revision.clone());
                self.metrics.last_applied(now().0.as_second() as f64);
            }
        }
        self.status.counts = outcome.counts;
        let mut errors = file_errors(self.failed_files.values().flatten());
        errors.extend(apply_errors);
        self.status.errors = errors;
        if outcome.writes > 0 || outcome.counts.failed > 0 {
            self.status.last_sync_time = Some(now());
        }
        self.metrics
            .objects("applied", outcome.counts.applied as usize);
        self.metrics
            .objects("unchanged", outcome.counts.unchanged as usize);
        self.metrics
            .objects("pruned", outcome.counts.pruned as usize);
        self.metrics
            .objects("failed", outcome.counts.failed as usize);
        self.events(&outcome).await;
        tracing::info!(
            applied = outcome.counts.applied,
            unchanged = outcome.counts.unchanged,
            pruned = outcome.counts.pruned,
            failed = outcome.counts.failed,
            invalid_files = outcome.invalid_files,
            files = outcome.files_read,
            writes = outcome.writes,
            view_ms = ms(phases.cluster_view),
            fetch_ms = ms(phases.fetch),
            validate_ms = ms(phases.validate),
            plan_ms = ms(phases.plan),
            apply_ms = ms(phases.apply),
            "pass done"
        );
        Ok(outcome)
    }

    /// Objects this pass would create (they are not in the inventory) that
    /// another source already applied: taking them over would start a tug
    /// of war between the two reconcilers. Objects without a source label
    /// (made by hand or by KubeFlex's CLI) are adopted.
    async fn owned_elsewhere<'d>(
        &self,
        apply: &[(&'d DesiredObject, Option<crate::drift::SpecDiff>)],
    ) -> Result<Vec<(&'d DesiredObject, String)>, Error> {
        let mut out = Vec::new();
        for kind in [Kind::ControlPlane, Kind::PostCreateHook] {
            let creates: Vec<&DesiredObject> = apply
                .iter()
                .filter(|(d, diff)| diff.is_none() && d.key.kind == kind)
                .map(|(d, _)| *d)
                .collect();
            if creates.is_empty() {
                continue;
            }
            let names = creates.iter().map(|d| d.key.name.as_str()).collect();
            let foreign = self
                .cluster
                .owned_by_others(kind, &self.settings.name, &names)
                .await?;
            out.extend(
                creates
                    .into_iter()
                    .filter_map(|d| foreign.get(&d.key.name).map(|owner| (d, owner.clone()))),
            );
        }
        Ok(out)
    }

    async fn events(&self, outcome: &Outcome) {
        let c = outcome.counts;
        if c.applied > 0 || c.pruned > 0 {
            let note = format!(
                "revision {}: applied {}, pruned {}",
                outcome.revision, c.applied, c.pruned
            );
            self.event(EventType::Normal, "Applied", "Sync", note).await;
        }
        if outcome.apply_failed > 0 {
            self.event(
                EventType::Warning,
                "Failed",
                "Sync",
                outcome.errors.join("; "),
            )
            .await;
        }
        if let Some(blocked) = &outcome.prune_blocked {
            self.event(EventType::Warning, "PruneBlocked", "Prune", blocked.clone())
                .await;
        }
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        let Some(reference) = &self.reference else {
            return;
        };
        // Events are capped at 1 kB of note.
        let note: String = note.chars().take(1000).collect();
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::debug!(error = %e, "publishing an event failed");
        }
    }
}

/// An apply error, at the position of the document it concerns.
fn file_error(desired: &DesiredObject, message: String) -> SyncFileError {
    SyncFileError {
        path: desired.path.clone(),
        line: i64::from(desired.pos.line),
        column: i64::from(desired.pos.column),
        message: format!("{}:{}: {message}", desired.path, desired.pos),
    }
}

impl Reconciler {
    /// Logs each validation problem once (WARN) when it appears, with its
    /// `path:line:column`; a problem that goes and comes back is logged again.
    fn log_new_problems(&mut self) {
        let current: BTreeSet<String> = self
            .failed_files
            .values()
            .flatten()
            .map(ToString::to_string)
            .collect();
        for problem in current.difference(&self.logged_problems) {
            tracing::warn!("invalid file: {problem}");
        }
        self.logged_problems = current;
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn next_backoff(current: &mut Duration) -> Duration {
    let delay = *current;
    *current = (*current * 2).min(BACKOFF.1);
    delay
}

#[path = "reconcile_loop.rs"]
mod run_loop;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::DirSource;

    /// What a pass's read of `source` fails with (nothing known, no limits).
    async fn read_error(source: Arc<dyn Source>) -> Error {
        read(
            Fetched::from_source(source, None).await,
            None,
            &BTreeMap::new(),
            ClusterView::default(),
            BTreeSet::new(),
            Limits::default(),
        )
        .await
        .err()
        .unwrap()
    }

    #[tokio::test]
    async fn a_missing_path_is_an_error_not_an_empty_repository() {
        let dir = tempfile::tempdir().unwrap();
        let source: Arc<dyn Source> = Arc::new(DirSource::new(dir.path(), "tenants").unwrap());
        let err = read_error(source).await;
        assert_eq!(err.category(), "path");
    }

    #[tokio::test]
    async fn an_unreachable_remote_is_an_error_before_any_plan() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::source::GitSourceConfig::new(
            "git://127.0.0.1:1/nothing.git",
            dir.path().join("cache"),
        );
        let source: Arc<dyn Source> = Arc::new(crate::source::GitSource::new(config).unwrap());
        let err = read_error(source).await;
        assert_eq!(err.category(), "fetch");
        assert!(err.is_transient());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = BACKOFF.0;
        assert_eq!(next_backoff(&mut b), Duration::from_secs(1));
        assert_eq!(next_backoff(&mut b), Duration::from_secs(2));
        for _ in 0..20 {
            next_backoff(&mut b);
        }
        assert_eq!(next_backoff(&mut b), BACKOFF.1);
    }
}
