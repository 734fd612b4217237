//! Tests of [`super::plan`]: the prune safety rules, one test each, and the
//! "no write when nothing changed" rule.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;
use crate::inventory::tests::mk_live;
use crate::names::{ANNOTATION_PRUNE, ANNOTATION_RECONCILE, DISABLED, FIELD_MANAGER};
use crate::validate::Kind;

const SOURCE: &str = "default";
const URL: &str = "git://example/repo.git";

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::ControlPlane,
        name: name.to_owned(),
    }
}

fn mk_desired(name: &str, path: &str) -> DesiredObject {
    let raw = json!({
        "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
        "kind": "ControlPlane",
        "metadata": {"name": name},
        "spec": {"type": "k8s"}
    });
    let doc = Document {
        path: path.to_owned(),
        index: 0,
        pos: Pos::START,
        key: key(name),
        object: crate::validate::Object::ControlPlane(Box::new(
            serde_json::from_value(raw.clone()).unwrap(),
        )),
        raw,
    };
    DesiredObject::from_document(doc, SOURCE, URL)
}

/// A live object exactly as an earlier apply of `mk_desired` left it.
fn mk_applied(name: &str, path: &str) -> LiveObject {
    let mut live = mk_live(name, SOURCE, path);
    live.annotations
        .insert(ANNOTATION_URL.to_owned(), URL.to_owned());
    live.annotations
        .insert(ANNOTATION_COMMIT.to_owned(), "c0".to_owned());
    live.annotations.insert(
        ANNOTATION_TRACKING.to_owned(),
        tracking_id(SOURCE, "ControlPlane", name),
    );
    live.managed = vec![crate::inventory::ManagedSpec {
        manager: FIELD_MANAGER.to_owned(),
        operation: "Apply".to_owned(),
        fields: json!({"f:type": {}}).into(),
    }];
    live
}

fn inventory(objects: &[LiveObject]) -> BTreeMap<ObjectKey, LiveObject> {
    objects.iter().map(|o| (o.key.clone(), o.clone())).collect()
}

struct Case {
    desired: Vec<DesiredObject>,
    elsewhere: BTreeSet<ObjectKey>,
    failed: BTreeSet<String>,
    paths: Option<BTreeSet<String>>,
    inventory: BTreeMap<ObjectKey, LiveObject>,
    prune: PruneOptions,
    source_changed: bool,
}

impl Case {
    fn new(desired: Vec<DesiredObject>, live: &[LiveObject]) -> Self {
        Self {
            desired,
            elsewhere: BTreeSet::new(),
            failed: BTreeSet::new(),
            paths: None,
            inventory: inventory(live),
            prune: PruneOptions::default(),
            source_changed: false,
        }
    }

    fn run(&self) -> Plan<'_> {
        plan(Input {
            desired: &self.desired,
            elsewhere: &|k| self.elsewhere.contains(k),
            failed_files: &self.failed,
            scope: match &self.paths {
                None => Scope::Full,
                Some(p) => Scope::Paths(p),
            },
            inventory: &self.inventory,
            prune: self.prune,
            source_changed: self.source_changed,
        })
    }
}

fn pruned<'a>(plan: &'a Plan<'_>) -> Vec<&'a str> {
    plan.prune.iter().map(|o| o.key.name.as_str()).collect()
}

fn skipped<'a>(plan: &'a Plan<'_>) -> Vec<(&'a str, SkipReason)> {
    plan.skipped
        .iter()
        .map(|(k, r)| (k.name.as_str(), *r))
        .collect()
}

#[test]
fn new_objects_are_applied_and_unchanged_ones_are_not_written() {
    let case = Case::new(
        vec![mk_desired("a", "a.yaml"), mk_desired("b", "b.yaml")],
        &[mk_applied("a", "a.yaml")],
    );
    let plan = case.run();
    assert_eq!(plan.unchanged, vec![key("a")]);
    assert_eq!(plan.apply.len(), 1);
    assert_eq!(plan.apply[0].0.key, key("b"));
    assert!(plan.apply[0].1.is_none());
}

#[test]
fn a_new_commit_alone_does_not_rewrite_objects() {
    let mut live = mk_applied("a", "a.yaml");
    live.annotations
        .insert(ANNOTATION_COMMIT.to_owned(), "older".to_owned());
    let case = Case::new(vec![mk_desired("a", "a.yaml")], &[live]);
    let plan = case.run();
    assert_eq!(plan.unchanged, vec![key("a")]);
}

#[test]
fn objects_gone_from_git_are_pruned() {
    let case = Case::new(
        vec![mk_desired("a", "a.yaml"), mk_desired("c", "c.yaml")],
        &[
            mk_applied("a", "a.yaml"),
            mk_applied("b", "b.yaml"),
            mk_applied("c", "c.yaml"),
        ],
    );
    assert_eq!(pruned(&case.run()), ["b"]);
}

#[test]
fn an_incremental_pass_prunes_only_from_the_files_it_read() {
    let mut case = Case::new(
        Vec::new(),
        &[
            mk_applied("a", "a.yaml"),
            mk_applied("b", "b.yaml"),
            mk_applied("c", "c.yaml"),
        ],
    );
    case.paths = Some(BTreeSet::from(["b.yaml".to_owned()]));
    case.elsewhere = BTreeSet::from([key("a"), key("c")]);
    assert_eq!(pruned(&case.run()), ["b"]);
}

#[test]
fn an_object_moved_to_another_file_is_not_pruned() {
    let mut case = Case::new(
        vec![mk_desired("a", "new.yaml")],
        &[mk_applied("a", "old.yaml")],
    );
    case.paths = Some(BTreeSet::from([
        "old.yaml".to_owned(),
        "new.yaml".to_owned(),
    ]));
    let plan = case.run();
    assert!(plan.prune.is_empty());
    // The path annotation changes: one write.
    assert_eq!(plan.apply.len(), 1);
}

#[test]
fn an_object_whose_file_failed_validation_is_neither_applied_nor_pruned() {
    let mut case = Case::new(
        vec![mk_desired("a", "a.yaml")],
        &[mk_applied("a", "a.yaml"), mk_applied("b", "b.yaml")],
    );
    case.failed = BTreeSet::from(["b.yaml".to_owned()]);
    let plan = case.run();
    assert!(plan.prune.is_empty());
    assert!(plan.apply.is_empty());
    assert_eq!(skipped(&plan), [("b", SkipReason::InvalidFile)]);
}

#[test]
fn nothing_is_pruned_while_any_file_fails_validation() {
    let mut case = Case::new(
        vec![mk_desired("a", "a.yaml")],
        &[mk_applied("a", "a.yaml"), mk_applied("gone", "gone.yaml")],
    );
    case.failed = BTreeSet::from(["broken.yaml".to_owned()]);
    let plan = case.run();
    assert!(plan.prune.is_empty());
    assert_eq!(skipped(&plan), [("gone", SkipReason::ValidationErrors)]);
}

#[test]
fn the_protect_annotation_protects() {
    let mut protected = mk_applied("b", "b.yaml");
    protected
        .annotations
        .insert(ANNOTATION_PRUNE.to_owned(), DISABLED.to_owned());
    let case = Case::new(Vec::new(), &[mk_applied("a", "a.yaml"), protected]);
    let mut case = case;
    case.prune.force = true;
    let plan = case.run();
    assert_eq!(pruned(&plan), ["a"]);
    assert_eq!(skipped(&plan), [("b", SkipReason::Protected)]);
}

#[test]
fn a_suspended_object_is_neither_applied_nor_pruned() {
    let mut suspended = mk_applied("a", "a.yaml");
    suspended
        .annotations
        .insert(ANNOTATION_RECONCILE.to_owned(), DISABLED.to_owned());
    suspended.spec = json!({"type": "k8s", "globalVars": {"x": "1"}}).into();
    let case = Case::new(vec![mk_desired("a", "a.yaml")], &[suspended.clone()]);
    let plan = case.run();
    assert!(plan.apply.is_empty());
    assert_eq!(skipped(&plan), [("a", SkipReason::Suspended)]);
    let case = Case::new(Vec::new(), &[suspended]);
    let plan = case.run();
    assert!(plan.prune.is_empty());
}

#[test]
fn prune_can_be_disabled() {
    let mut case = Case::new(Vec::new(), &[mk_applied("a", "a.yaml")]);
    case.prune.enabled = false;
    let plan = case.run();
    assert!(plan.prune.is_empty());
    assert_eq!(skipped(&plan), [("a", SkipReason::PruneDisabled)]);
}

#[test]
fn the_max_prune_guard_refuses_a_mass_prune_unless_forced() {
    let live: Vec<_> = (0..10)
        .map(|i| mk_applied(&format!("cp{i}"), &format!("cp{i}.yaml")))
        .collect();
    // 8 of 10 removed (2 kept); 50% allows 5.
    let keep = vec![mk_desired("cp8", "cp8.yaml"), mk_desired("cp9", "cp9.yaml")];
    let mut case = Case::new(keep, &live);
    let plan = case.run();
    assert!(plan.prune.is_empty());
    let blocked = &plan.prune_blocked[0];
    assert_eq!(blocked.reason, BlockReason::MaxPrune);
    assert_eq!((blocked.candidates.len(), blocked.limit), (8, 5));
    assert!(blocked.to_string().contains("--force-prune"));
    case.prune.force = true;
    let plan = case.run();
    assert_eq!(plan.prune.len(), 8);
    assert!(plan.prune_blocked.is_empty());
}

#[test]
fn removing_every_control_plane_needs_allow_empty_even_when_forced() {
    let live = [mk_applied("a", "a.yaml"), mk_applied("b", "b.yaml")];
    let mut case = Case::new(Vec::new(), &live);
    case.prune.force = true;
    let plan = case.run();
    assert!(plan.prune.is_empty());
    assert_eq!(plan.prune_blocked[0].reason, BlockReason::Empty);
    assert!(plan.prune_blocked[0].to_string().contains("--allow-empty"));
    case.prune.allow_empty = true;
    assert_eq!(pruned(&case.run()), ["a", "b"]);
}

#[test]
fn max_prune_zero_means_never_without_force() {
    assert_eq!(MaxPrune::Count(0).limit(100), 0);
    assert_eq!(MaxPrune::Percent(0).limit(100), 0);
    let live = [mk_applied("a", "a.yaml"), mk_applied("b", "b.yaml")];
    let mut case = Case::new(vec![mk_desired("b", "b.yaml")], &live);
    case.prune.max = MaxPrune::Count(0);
    let plan = case.run();
    assert!(plan.prune.is_empty());
    assert_eq!(plan.prune_blocked[0].reason, BlockReason::MaxPrune);
    case.prune.force = true;
    assert_eq!(pruned(&case.run()), ["a"]);
}

#[test]
fn hooks_have_their_own_budget() {
    let mut hook = mk_applied("h", "h.yaml");
    hook.key.kind = Kind::PostCreateHook;
    let live = [
        mk_applied("a", "a.yaml"),
        mk_applied("b", "b.yaml"),
        mk_applied("c", "c.yaml"),
        hook,
    ];
    // One ControlPlane and the only hook removed: with "1", each kind may
    // lose one; counted together (2 > 1) the old guard refused both.
    let mut case = Case::new(
        vec![mk_desired("b", "b.yaml"), mk_desired("c", "c.yaml")],
        &live,
    );
    case.prune.max = MaxPrune::Count(1);
    let plan = case.run();
    assert!(plan.prune_blocked.is_empty(), "{:?}", plan.prune_blocked);
    assert_eq!(pruned(&plan), ["a", "h"]);
}

#[test]
fn a_changed_source_blocks_prunes_until_forced() {
    let live = [mk_applied("a", "a.yaml"), mk_applied("b", "b.yaml")];
    let mut case = Case::new(vec![mk_desired("b", "b.yaml")], &live);
    case.source_changed = true;
    let plan = case.run();
    assert!(plan.prune.is_empty());
    assert_eq!(plan.prune_blocked[0].reason, BlockReason::SourceChanged);
    case.prune.force = true;
    assert_eq!(pruned(&case.run()), ["a"]);
}

#[test]
fn the_guard_allows_one_of_several() {
    assert_eq!(MaxPrune::Percent(50).limit(1), 1);
    assert_eq!(MaxPrune::Percent(1).limit(10), 1);
    assert_eq!(MaxPrune::Count(3).limit(100), 3);
    let live = [mk_applied("a", "a.yaml"), mk_applied("b", "b.yaml")];
    let case = Case::new(vec![mk_desired("b", "b.yaml")], &live);
    assert_eq!(pruned(&case.run()), ["a"]);
}

#[test]
fn max_prune_parses_counts_and_percentages() {
    assert_eq!("7".parse::<MaxPrune>(), Ok(MaxPrune::Count(7)));
    assert_eq!("25%".parse::<MaxPrune>(), Ok(MaxPrune::Percent(25)));
    assert!("150%".parse::<MaxPrune>().is_err());
    assert!("many".parse::<MaxPrune>().is_err());
    assert_eq!(MaxPrune::default().to_string(), "50%");
}

#[test]
fn objects_of_other_sources_or_being_deleted_are_never_pruned() {
    let mut deleting = mk_applied("d", "d.yaml");
    deleting.deleting = true;
    let case = Case::new(Vec::new(), &[deleting]);
    assert!(case.run().prune.is_empty());
}

#[test]
fn desired_objects_carry_the_source_record() {
    let d = mk_desired("a", "cps/a.yaml");
    let body = d.body_at("abc123");
    assert_eq!(body["metadata"]["labels"][LABEL_SOURCE], SOURCE);
    assert_eq!(body["metadata"]["annotations"][ANNOTATION_URL], URL);
    assert_eq!(
        body["metadata"]["annotations"][ANNOTATION_PATH],
        "cps/a.yaml"
    );
    assert_eq!(body["metadata"]["annotations"][ANNOTATION_COMMIT], "abc123");
}
