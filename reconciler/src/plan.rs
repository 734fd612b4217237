//! The decision of one pass, with no IO: desired documents plus the
//! inventory give what to apply, what is already right, what to prune and
//! what to leave alone, and why.
//!
//! Guarantees (each has a test below):
//! - prune only ever deletes objects carrying this source's label that Git
//!   no longer defines, in the part of the repository this pass read;
//! - nothing is pruned while any file fails validation, and an object whose
//!   file failed is neither applied nor pruned;
//! - `prune: disabled` protects an object, `reconcile: disabled` freezes it;
//! - more than `--max-prune` deletions (a count, or a percentage of what the
//!   source manages, never below 1) are refused unless forced.
//!
//! A failed fetch or tree read never reaches this module: without a
//! [`crate::validate::Report`] there is nothing to plan.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::document::Pos;
use crate::drift::{SpecDiff, contains, diff_spec};
use crate::inventory::{CompactValue, LiveObject};
use crate::names::{
    ANNOTATION_COMMIT, ANNOTATION_PATH, ANNOTATION_TRACKING, ANNOTATION_URL, LABEL_SOURCE,
    tracking_id,
};
use crate::validate::{Document, Kind, ObjectKey};

/// An object as Git wants it, ready for server-side apply (our labels and
/// annotations included, except the commit, added when it is written).
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredObject {
    pub key: ObjectKey,
    /// Repository-relative file that defines it.
    pub path: String,
    /// Where its document starts in that file.
    pub pos: Pos,
    /// The apply body.
    pub body: CompactValue,
}

impl DesiredObject {
    /// The object a validated document asks for, marked as applied by
    /// `source` (its `--name`) from `url`.
    pub fn from_document(doc: Document, source: &str, url: &str) -> Self {
        let mut body = doc.raw;
        if let Some(obj) = body.as_object_mut() {
            let meta = obj
                .entry("metadata")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(meta) = meta.as_object_mut() {
                insert_string(meta, "labels", LABEL_SOURCE, source);
                insert_string(meta, "annotations", ANNOTATION_URL, url);
                insert_string(meta, "annotations", ANNOTATION_PATH, &doc.path);
                let id = tracking_id(source, doc.key.kind.as_str(), &doc.key.name);
                insert_string(meta, "annotations", ANNOTATION_TRACKING, &id);
            }
        }
        Self {
            key: doc.key,
            path: doc.path,
            pos: doc.pos,
            body: CompactValue::new(&body),
        }
    }

    /// The body to send, stamped with the commit being applied.
    pub fn body_at(&self, commit: &str) -> Value {
        let mut body = self.body.value();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            insert_string(meta, "annotations", ANNOTATION_COMMIT, commit);
        }
        body
    }

    /// How the live object differs; `None` when it needs no write.
    pub fn compare(&self, live: &LiveObject) -> Option<SpecDiff> {
        let body = self.body.value();
        let diff = diff_spec(body.get("spec").unwrap_or(&Value::Null), live);
        let meta = body.get("metadata");
        let labels = meta.and_then(|m| m.get("labels"));
        let annotations = meta.and_then(|m| m.get("annotations"));
        let meta_ok =
            map_contains(&live.labels, labels) && map_contains(&live.annotations, annotations);
        (!meta_ok || !diff.is_clean()).then_some(SpecDiff {
            values_differ: diff.values_differ || !meta_ok,
            ..diff
        })
    }
}

fn insert_string(meta: &mut serde_json::Map<String, Value>, map: &str, key: &str, value: &str) {
    let entry = meta
        .entry(map)
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(serde_json::Map::new());
    }
    if let Some(m) = entry.as_object_mut() {
        m.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

/// Whether `live` has every entry of `want` (a JSON map of strings).
fn map_contains(live: &BTreeMap<String, String>, want: Option<&Value>) -> bool {
    let Some(Value::Object(want)) = want else {
        return true;
    };
    let live: serde_json::Map<String, Value> = live
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    want.iter()
        .filter(|(k, _)| k.as_str() != ANNOTATION_COMMIT)
        .all(|(k, v)| live.get(k).is_some_and(|l| contains(l, v)))
}

/// `--max-prune`: a count, or a percentage of the objects the source manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxPrune {
    Count(usize),
    Percent(u32),
}

impl Default for MaxPrune {
    fn default() -> Self {
        Self::Percent(50)
    }
}

impl MaxPrune {
    /// How many objects of one kind a pass may delete when the source
    /// manages `managed` of that kind. `0` (or `0%`) means none without
    /// `--force-prune`; any other percentage allows at least 1, so a single
    /// removed tenant is pruned.
    pub fn limit(self, managed: usize) -> usize {
        match self {
            Self::Count(n) => n,
            Self::Percent(0) => 0,
            Self::Percent(p) => (managed.saturating_mul(p as usize) / 100).max(1),
        }
    }
}

impl FromStr for MaxPrune {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: u32 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage"))?;
            if p > 100 {
                return Err(format!("{s:?}: a percentage is at most 100%"));
            }
            return Ok(Self::Percent(p));
        }
        s.parse()
            .map(Self::Count)
            .map_err(|_| format!("{s:?} is neither a count nor a percentage like 50%"))
    }
}

impl fmt::Display for MaxPrune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Prune settings from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneOptions {
    pub enabled: bool,
    pub max: MaxPrune,
    pub force: bool,
    /// `--allow-empty`: a pass may remove every ControlPlane of the source.
    pub allow_empty: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            max: MaxPrune::default(),
            force: false,
            allow_empty: false,
        }
    }
}

/// Which part of the repository this pass read.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every file: anything managed and not desired is a prune candidate.
    Full,
    /// Only these files (added, modified or deleted): only objects recorded
    /// as defined by one of them are prune candidates.
    Paths(&'a BTreeSet<String>),
}

/// What a pass takes.
#[derive(Clone, Copy)]
pub struct Input<'d, 'a> {
    /// Objects of the valid files this pass read.
    pub desired: &'d [DesiredObject],
    /// Whether an object is still defined by a file this pass did not read
    /// (a predicate, so an incremental pass never copies the repository's
    /// key set).
    pub elsewhere: &'a dyn Fn(&ObjectKey) -> bool,
    /// Files that failed validation (now or, unread, earlier).
    pub failed_files: &'a BTreeSet<String>,
    pub scope: Scope<'a>,
    /// What this source manages in the cluster.
    pub inventory: &'a BTreeMap<ObjectKey, LiveObject>,
    pub prune: PruneOptions,
    /// `--git-url`, `--ref` or `--path` differ from the last pass allowed
    /// to prune: nothing is pruned unless forced.
    pub source_changed: bool,
}

/// Why an object is left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// `reconcile: disabled`.
    Suspended,
    /// `prune: disabled`.
    Protected,
    /// `--prune=false`.
    PruneDisabled,
    /// Its file failed validation.
    InvalidFile,
    /// Some file failed validation, so nothing is pruned this pass.
    ValidationErrors,
    /// A prune guard refused the prune (see [`PruneBlocked`]).
    PruneBlocked,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspended => "suspended",
            Self::Protected => "protected",
            Self::PruneDisabled => "prune disabled",
            Self::InvalidFile => "file failed validation",
            Self::ValidationErrors => "a file failed validation",
            Self::PruneBlocked => "prune guard",
        }
    }
}

/// Why a guard refused to prune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// More candidates of one kind than `--max-prune` allows.
    MaxPrune,
    /// Every ControlPlane of the source would go (`--allow-empty`).
    Empty,
    /// The source (`--git-url`, `--ref`, `--path`) changed since the last
    /// pass allowed to prune.
    SourceChanged,
    /// An apply of this pass failed, or an object is owned by another
    /// source: the prune may be the other half of a rename that failed.
    ApplyFailed,
    /// This replica could not confirm it still holds the lease.
    LeaseUnconfirmed,
    /// The directory changed while the pass read it (a save caught
    /// half-way): the next pass, on the settled directory, decides.
    Unsettled,
}

impl BlockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxPrune => "max-prune guard",
            Self::Empty => "would remove every ControlPlane of the source",
            Self::SourceChanged => "the source changed",
            Self::ApplyFailed => "an apply of this pass failed",
            Self::LeaseUnconfirmed => "leadership not confirmed",
            Self::Unsettled => "the directory changed during the pass",
        }
    }
}

/// A guard refused to prune these objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneBlocked {
    pub reason: BlockReason,
    pub candidates: Vec<ObjectKey>,
    pub limit: usize,
    pub managed: usize,
}

impl fmt::Display for PruneBlocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.candidates.len();
        match self.reason {
            BlockReason::MaxPrune => write!(
                f,
                "refusing to prune {n} of {} managed {} (limit {}); fix Git or run with --force-prune",
                self.managed,
                self.candidates
                    .first()
                    .map_or("objects", |k| plural(k.kind)),
                self.limit
            ),
            BlockReason::Empty => write!(
                f,
                "refusing to prune all {n} ControlPlanes of the source; run with --allow-empty if that is meant"
            ),
            BlockReason::SourceChanged => write!(
                f,
                "refusing to prune {n} objects: --git-url, --ref or --path changed since the last pass; run once with --force-prune to confirm"
            ),
            BlockReason::ApplyFailed => write!(
                f,
                "not pruning {n} objects: an apply of this pass failed; pruning waits until every apply succeeds"
            ),
            BlockReason::Unsettled => write!(
                f,
                "not pruning {n} objects yet: the directory changed while it was read; the next pass decides"
            ),
            BlockReason::LeaseUnconfirmed => write!(
                f,
                "not pruning {n} objects: could not confirm this replica still holds the lease"
            ),
        }
    }
}

fn plural(kind: crate::validate::Kind) -> &'static str {
    match kind {
        crate::validate::Kind::ControlPlane => "ControlPlanes",
        crate::validate::Kind::PostCreateHook => "PostCreateHooks",
    }
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan<'a> {
    /// Objects to write, with how they differ (`None`: they do not exist).
    pub apply: Vec<(&'a DesiredObject, Option<SpecDiff>)>,
    /// Objects already as Git says.
    pub unchanged: Vec<ObjectKey>,
    /// Objects to delete.
    pub prune: Vec<LiveObject>,
    /// Objects left alone, and why.
    pub skipped: Vec<(ObjectKey, SkipReason)>,
    /// Prunes the guards refused, by reason (at most one entry per kind
    /// and reason).
    pub prune_blocked: Vec<PruneBlocked>,
}

impl Plan<'_> {
    /// Puts off every prune of the plan (an apply failed, the lease could
    /// not be confirmed).
    pub fn block_prunes(&mut self, reason: BlockReason) {
        if self.prune.is_empty() {
            return;
        }
        let candidates: Vec<ObjectKey> = self.prune.drain(..).map(|l| l.key).collect();
        self.skipped.extend(
            candidates
                .iter()
                .map(|k| (k.clone(), SkipReason::PruneBlocked)),
        );
        self.prune_blocked.push(PruneBlocked {
            reason,
            limit: 0,
            managed: 0,
            candidates,
        });
    }
}

/// Decides what a pass does. Pure.
pub fn plan<'d>(input: Input<'d, '_>) -> Plan<'d> {
    let mut out = Plan::default();
    let mut wanted: BTreeSet<&ObjectKey> = BTreeSet::new();
    for desired in input.desired {
        wanted.insert(&desired.key);
        match input.inventory.get(&desired.key) {
            Some(live) if live.suspended() => {
                out.skipped
                    .push((desired.key.clone(), SkipReason::Suspended));
            }
            Some(live) => match desired.compare(live) {
                Some(diff) => out.apply.push((desired, Some(diff))),
                None => out.unchanged.push(desired.key.clone()),
            },
            None => out.apply.push((desired, None)),
        }
    }

    let mut candidates = Vec::new();
    for (key, live) in input.inventory {
        if live.deleting || wanted.contains(key) {
            continue;
        }
        let in_scope = match input.scope {
            Scope::Full => true,
            Scope::Paths(paths) => live.path().is_some_and(|p| paths.contains(p)),
        };
        if !in_scope || (input.elsewhere)(key) {
            continue;
        }
        let reason = if live.path().is_some_and(|p| input.failed_files.contains(p)) {
            Some(SkipReason::InvalidFile)
        } else if live.suspended() {
            Some(SkipReason::Suspended)
        } else if live.protected() {
            Some(SkipReason::Protected)
        } else if !input.prune.enabled {
            Some(SkipReason::PruneDisabled)
        } else if !input.failed_files.is_empty() {
            // A broken file may be where a "missing" object moved to.
            Some(SkipReason::ValidationErrors)
        } else {
            None
        };
        match reason {
            Some(reason) => out.skipped.push((key.clone(), reason)),
            None => candidates.push(live.clone()),
        }
    }

    // Each kind has its own budget: a repository's hooks are few, and a
    // hook's removal must not spend the ControlPlanes' allowance.
    for kind in [Kind::ControlPlane, Kind::PostCreateHook] {
        let (of_kind, rest): (Vec<LiveObject>, Vec<LiveObject>) =
            candidates.into_iter().partition(|c| c.key.kind == kind);
        candidates = rest;
        if of_kind.is_empty() {
            continue;
        }
        let managed = input
            .inventory
            .values()
            .filter(|l| l.key.kind == kind && !l.deleting)
            .count();
        let limit = input.prune.max.limit(managed);
        let reason = if input.source_changed && !input.prune.force {
            Some(BlockReason::SourceChanged)
        } else if kind == Kind::ControlPlane && of_kind.len() >= managed && !input.prune.allow_empty
        {
            Some(BlockReason::Empty)
        } else if of_kind.len() > limit && !input.prune.force {
            Some(BlockReason::MaxPrune)
        } else {
            None
        };
        match reason {
            Some(reason) => {
                out.skipped.extend(
                    of_kind
                        .iter()
                        .map(|c| (c.key.clone(), SkipReason::PruneBlocked)),
                );
                out.prune_blocked.push(PruneBlocked {
                    reason,
                    candidates: of_kind.into_iter().map(|c| c.key).collect(),
                    limit,
                    managed,
                });
            }
            None => out.prune.extend(of_kind),
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
