//! Status from observed facts, purely: `Synced` and `Ready` with reasons
//! and messages a user can act on, `observedGeneration`, `secretRef`, and,
//! once hooks ran, `postCreateHooks`, `postCreateHookCompleted` and our
//! `PostCreateHooks` condition (what a hook waits for, or why it failed).
//!
//! Unlike KubeFlex, a condition keeps its `lastTransitionTime` unless its
//! status changes, and its `lastUpdateTime` unless anything in it changes,
//! so an unchanged control plane gets an identical status: no write, no event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    ConditionReason, ConditionStatus, ConditionType, ControlPlaneCondition, ControlPlaneStatus,
};
use crate::names;
use crate::profile::{Profile, WorkloadKind};

/// The outcome of applying the type's objects this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Every object applied.
    Success,
    /// A step failed; the message names the object and what to do.
    Failed(String),
}

/// PostCreateHook progress, as far as `Ready` cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hooks {
    /// `waitForPostCreateHooks` is off, or there are no hooks (KubeFlex then
    /// waits forever; we do not).
    NotAwaited,
    /// Awaited and all complete.
    Complete,
    /// Awaited and not complete yet.
    Pending,
    /// Awaited and failed (a failed Job, a refused hook, a timeout): the
    /// message names the hook, the object and the reason.
    Failed(String),
}

/// Type of the condition reporting PostCreateHooks (ours; KubeFlex reports
/// hook problems nowhere but in its logs).
pub const CONDITION_POST_CREATE_HOOKS: &str = "PostCreateHooks";

/// `Ready` reason when an awaited hook failed.
pub const REASON_POST_CREATE_HOOK_FAILED: &str = "PostCreateHookFailed";

/// `Ready` reason when the operator refuses the spec (e.g. type `ocm`):
/// like [`REASON_POST_CREATE_HOOK_FAILED`] it needs a person, as opposed to
/// waiting reasons (`Unavailable`, `WaitingForPostCreateHooks`), so clients
/// such as `kflex create` stop waiting at once.
pub const REASON_REFUSED: &str = "Refused";

/// Reasons of `Ready=False` that waiting will not fix.
pub const REASONS_NEEDING_A_PERSON: &[&str] = &[
    REASON_INVALID_SPEC,
    REASON_REFUSED,
    REASON_POST_CREATE_HOOK_FAILED,
];

/// What the hooks pass found, for `status.postCreateHooks`,
/// `postCreateHookCompleted` and the `PostCreateHooks` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookReport {
    /// `status.postCreateHooks`: every hook recorded so far.
    pub applied: std::collections::BTreeMap<String, bool>,
    /// `status.postCreateHookCompleted`.
    pub completed: bool,
    /// Status of the condition.
    pub ok: bool,
    /// Its reason.
    pub reason: &'static str,
    /// Its message (hooks, objects and reasons; never values).
    pub message: String,
}

/// What the reconcile observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `metadata.generation` of the ControlPlane read.
    pub generation: i64,
    /// Applying objects.
    pub sync: SyncOutcome,
    /// The API workload has an available replica (`None`: the type has none).
    pub workload_available: Option<bool>,
    /// The tenant API answered through the in-cluster kubeconfig (`None`: not
    /// probed, for `host` and `external`).
    pub api_answering: Option<bool>,
    /// Hooks, for `Ready`.
    pub hooks: Hooks,
    /// The hooks pass, when it ran; `None` leaves the hook fields of the
    /// status as they are.
    pub hook_report: Option<HookReport>,
    /// Deletion in progress; `Some(message)` names the step it waits on.
    pub deleting: Option<String>,
    /// Something stops the control plane from serving that the user must fix
    /// or that is still being set up (a bad bootstrap Secret, a failed
    /// database Job): `Ready=False` with this message.
    pub blocked: Option<String>,
    /// The off-cluster kubeconfig key to publish in `status.secretRef.key`
    /// instead of the type's (vcluster with `--external-address`).
    pub off_cluster_key: Option<&'static str>,
    /// What [`profile::check_spec`](crate::profile::check_spec) found wrong
    /// with the spec (the same checks `kflex validate` runs): nothing was
    /// provisioned, `Ready=False` with reason `InvalidSpec`.
    pub invalid_spec: Option<String>,
}

/// `Ready` reason when the spec cannot be provisioned as written.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";

/// One condition as it should be now.
struct Desired<'a> {
    type_: &'a str,
    status: &'a str,
    reason: &'a str,
    message: String,
}

/// Replaces or adds a condition, keeping timestamps when nothing changed
/// (`lastUpdateTime`) or the status did not (`lastTransitionTime`).
fn upsert(conditions: &mut Vec<ControlPlaneCondition>, mut d: Desired<'_>, now: &Time) {
    d.message = crate::error::redact(&d.message);
    let new = |transition: Time| ControlPlaneCondition {
        type_: d.type_.into(),
        status: d.status.into(),
        last_update_time: now.clone(),
        last_transition_time: transition,
        reason: d.reason.into(),
        message: d.message.clone(),
    };
    match conditions.iter_mut().find(|c| c.type_ == d.type_) {
        Some(c) if c.status == d.status && c.reason == d.reason && c.message == d.message => {}
        Some(c) if c.status == d.status => *c = new(c.last_transition_time.clone()),
        Some(c) => *c = new(now.clone()),
        None => conditions.push(new(now.clone())),
    }
}

fn synced(profile: &Profile, facts: &Facts) -> Desired<'static> {
    let failed = |message| Desired {
        type_: ConditionType::SYNCED,
        status: ConditionStatus::FALSE,
        reason: ConditionReason::RECONCILE_ERROR,
        message,
    };
    if let Some(refusal) = profile.refusal {
        return failed(refusal.into());
    }
    match &facts.sync {
        SyncOutcome::Success => Desired {
            type_: ConditionType::SYNCED,
            status: ConditionStatus::TRUE,
            reason: ConditionReason::RECONCILE_SUCCESS,
            message: String::new(),
        },
        SyncOutcome::Failed(message) => failed(message.clone()),
    }
}

fn ready(cp_name: &str, profile: &Profile, facts: &Facts) -> Desired<'static> {
    let not_ready = |reason, message: String| Desired {
        type_: ConditionType::READY,
        status: ConditionStatus::FALSE,
        reason,
        message,
    };
    let ns = names::namespace_of(cp_name);
    if let Some(step) = &facts.deleting {
        return not_ready(ConditionReason::DELETING, step.clone());
    }
    if let Some(refusal) = profile.refusal {
        return not_ready(REASON_REFUSED, refusal.into());
    }
    if let Some(problems) = &facts.invalid_spec {
        return not_ready(REASON_INVALID_SPEC, problems.clone());
    }
    if let Some(message) = &facts.blocked {
        return not_ready(ConditionReason::UNAVAILABLE, message.clone());
    }
    // Nothing is known to work when provisioning failed. (The controller
    // keeps an earlier Ready instead, so a transient failure of a running
    // control plane does not flap it; with no earlier one this is the truth.)
    if matches!(facts.sync, SyncOutcome::Failed(_)) {
        return not_ready(
            ConditionReason::UNAVAILABLE,
            "not provisioned: the last reconcile failed; see the Synced condition".into(),
        );
    }
    if let (Some(false), Some(w)) = (facts.workload_available, profile.workload) {
        let kind = match w.kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        };
        return not_ready(
            ConditionReason::UNAVAILABLE,
            format!(
                "{kind} {ns}/{} has no available replica yet; if this lasts, see `kubectl -n {ns} describe pods` and `kubectl -n {ns} get events`",
                w.name
            ),
        );
    }
    if facts.api_answering == Some(false) {
        let url = profile.in_cluster_url(cp_name).unwrap_or_default();
        return not_ready(
            ConditionReason::UNAVAILABLE,
            format!(
                "the API server at {url} does not answer yet; if this lasts, check the logs of its pods in {ns}"
            ),
        );
    }
    match &facts.hooks {
        Hooks::Pending => {
            return not_ready(
                ConditionReason::WAITING_FOR_POST_CREATE_HOOKS,
                "Waiting for PostCreateHook completion".into(),
            );
        }
        Hooks::Failed(message) => {
            return not_ready(REASON_POST_CREATE_HOOK_FAILED, message.clone());
        }
        Hooks::NotAwaited | Hooks::Complete => {}
    }
    Desired {
        type_: ConditionType::READY,
        status: ConditionStatus::TRUE,
        reason: ConditionReason::AVAILABLE,
        message: String::new(),
    }
}

/// The status to write, from the `previous` one and the facts of this pass.
/// Equal to `previous` when nothing changed, so the caller can skip the write.
pub fn compute(
    previous: &ControlPlaneStatus,
    cp_name: &str,
    profile: &Profile,
    facts: &Facts,
    now: &Time,
) -> ControlPlaneStatus {
    let mut status = previous.clone();
    status.observed_generation = facts.generation;
    upsert(&mut status.conditions, synced(profile, facts), now);
    upsert(&mut status.conditions, ready(cp_name, profile, facts), now);
    if facts.sync == SyncOutcome::Success {
        status.secret_ref = profile.secret_ref(cp_name).map(|mut r| {
            if let Some(key) = facts.off_cluster_key {
                key.clone_into(&mut r.key);
            }
            r
        });
    }
    if let Some(report) = &facts.hook_report {
        status.post_create_hooks = Some(report.applied.clone());
        status.post_create_hook_completed = Some(report.completed);
        let desired = Desired {
            type_: CONDITION_POST_CREATE_HOOKS,
            status: if report.ok {
                ConditionStatus::TRUE
            } else {
                ConditionStatus::FALSE
            },
            reason: report.reason,
            message: report.message.clone(),
        };
        upsert(&mut status.conditions, desired, now);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlPlaneType::{self, *};
    use crate::api::SecretReference;
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(1_750_000_000 + s).unwrap())
    }

    fn facts() -> Facts {
        Facts {
            generation: 3,
            sync: SyncOutcome::Success,
            workload_available: Some(true),
            api_answering: Some(true),
            hooks: Hooks::NotAwaited,
            hook_report: None,
            deleting: None,
            blocked: None,
            off_cluster_key: None,
            invalid_spec: None,
        }
    }

    fn run(
        prev: &ControlPlaneStatus,
        ty: ControlPlaneType,
        f: &Facts,
        at: i64,
    ) -> ControlPlaneStatus {
        compute(prev, "cp1", &Profile::of(ty), f, &t(at))
    }

    fn cond<'a>(s: &'a ControlPlaneStatus, ty: &str) -> &'a ControlPlaneCondition {
        s.conditions.iter().find(|c| c.type_ == ty).unwrap()
    }

    #[test]
    fn healthy_control_plane_is_synced_and_ready_with_secret_ref() {
        let s = run(&ControlPlaneStatus::default(), K8s, &facts(), 0);
        assert_eq!(s.observed_generation, 3);
        let (sy, re) = (cond(&s, "Synced"), cond(&s, "Ready"));
        assert_eq!(
            (sy.status.as_str(), sy.reason.as_str()),
            ("True", "ReconcileSuccess")
        );
        assert_eq!(
            (re.status.as_str(), re.reason.as_str()),
            ("True", "Available")
        );
        assert_eq!(
            s.secret_ref,
            Some(SecretReference {
                namespace: "cp1-system".into(),
                name: "admin-kubeconfig".into(),
                key: "kubeconfig".into(),
                in_cluster_key: "kubeconfig-incluster".into(),
            })
        );
    }

    #[test]
    fn an_off_cluster_key_override_is_published_in_secret_ref() {
        let f = Facts {
            off_cluster_key: Some(crate::names::KEY_CONFIG_EXTERNAL),
            ..facts()
        };
        let s = run(&ControlPlaneStatus::default(), Vcluster, &f, 0);
        let r = s.secret_ref.unwrap();
        assert_eq!(
            (r.name.as_str(), r.key.as_str(), r.in_cluster_key.as_str()),
            ("vc-vcluster", "config-external", "config-incluster")
        );
        let plain = run(&ControlPlaneStatus::default(), Vcluster, &facts(), 0);
        assert_eq!(plain.secret_ref.unwrap().key, "config");
    }

    #[test]
    fn unchanged_facts_give_an_identical_status() {
        let s1 = run(&ControlPlaneStatus::default(), K8s, &facts(), 0);
        let s2 = run(&s1, K8s, &facts(), 60);
        assert_eq!(s1, s2, "no write, no event");
    }

    #[test]
    fn transition_time_moves_only_on_a_status_change() {
        let mut f = facts();
        f.workload_available = Some(false);
        let s1 = run(&ControlPlaneStatus::default(), K8s, &f, 0);
        let r1 = cond(&s1, "Ready").clone();
        assert_eq!(r1.status, "False");
        assert!(
            r1.message.contains("Deployment cp1-system/kube-apiserver"),
            "{}",
            r1.message
        );
        // Still not ready, for another reason: update time moves, transition does not.
        f.workload_available = Some(true);
        f.api_answering = Some(false);
        let s2 = run(&s1, K8s, &f, 10);
        let r2 = cond(&s2, "Ready");
        assert_eq!(r2.status, "False");
        assert!(
            r2.message
                .contains("https://cp1.cp1-system.svc.cluster.local"),
            "{}",
            r2.message
        );
        assert_eq!(r2.last_transition_time, t(0));
        assert_eq!(r2.last_update_time, t(10));
        // Ready: both move.
        let s3 = run(&s2, K8s, &facts(), 20);
        let r3 = cond(&s3, "Ready");
        assert_eq!(r3.status, "True");
        assert_eq!(
            (r3.last_transition_time.clone(), r3.last_update_time.clone()),
            (t(20), t(20))
        );
        // Synced never changed: its timestamps are the first ones.
        assert_eq!(cond(&s3, "Synced").last_update_time, t(0));
    }

    #[test]
    fn a_failed_first_pass_is_not_ready() {
        let mut f = facts();
        f.sync = SyncOutcome::Failed("secrets is forbidden".into());
        f.workload_available = None;
        f.api_answering = None;
        let s = compute(
            &ControlPlaneStatus::default(),
            "cp1",
            &Profile::of(K8s),
            &f,
            &t(0),
        );
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Synced").status, "False");
        let s = compute(
            &ControlPlaneStatus::default(),
            "h",
            &Profile::of(Host),
            &f,
            &t(0),
        );
        assert_eq!(cond(&s, "Ready").status, "False");
    }

    #[test]
    fn sync_failure_keeps_the_message_and_the_previous_secret_ref() {
        let s1 = run(&ControlPlaneStatus::default(), K3s, &facts(), 0);
        let mut f = facts();
        f.sync =
            SyncOutcome::Failed("applying StatefulSet cp1-system/k3s-server: forbidden".into());
        let s2 = run(&s1, K3s, &f, 5);
        let sy = cond(&s2, "Synced");
        assert_eq!(
            (sy.status.as_str(), sy.reason.as_str()),
            ("False", "ReconcileError")
        );
        assert_eq!(
            sy.message,
            "applying StatefulSet cp1-system/k3s-server: forbidden"
        );
        assert_eq!(s2.secret_ref, s1.secret_ref);
    }

    #[test]
    fn ocm_is_refused_on_both_conditions() {
        let s = run(&ControlPlaneStatus::default(), Ocm, &facts(), 0);
        for c in ["Synced", "Ready"] {
            assert_eq!(cond(&s, c).status, "False");
            assert!(cond(&s, c).message.contains("vcluster"));
        }
        assert_eq!(s.secret_ref, None);
    }

    #[test]
    fn hooks_gate_ready_only_when_awaited_and_pending() {
        let mut f = facts();
        f.hooks = Hooks::Pending;
        let s = run(&ControlPlaneStatus::default(), Vcluster, &f, 0);
        let r = cond(&s, "Ready");
        assert_eq!(
            (r.reason.as_str(), r.message.as_str()),
            (
                "WaitingForPostCreateHooks",
                "Waiting for PostCreateHook completion"
            )
        );
        f.hooks = Hooks::Complete;
        assert_eq!(cond(&run(&s, Vcluster, &f, 1), "Ready").status, "True");
        f.hooks =
            Hooks::Failed("PostCreateHook h: Job cp1-system/j failed: BackoffLimitExceeded".into());
        let r = run(&s, Vcluster, &f, 2);
        let r = cond(&r, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "PostCreateHookFailed")
        );
        assert!(r.message.contains("Job cp1-system/j failed"));
    }

    #[test]
    fn the_hook_report_fills_the_hook_fields_and_its_condition() {
        let s0 = run(&ControlPlaneStatus::default(), K8s, &facts(), 0);
        assert_eq!(s0.post_create_hooks, None);
        assert!(s0.conditions.iter().all(|c| c.type_ != "PostCreateHooks"));
        let mut f = facts();
        f.hook_report = Some(HookReport {
            applied: [("hello".to_string(), true)].into(),
            completed: false,
            ok: false,
            reason: "PostCreateHookFailed",
            message: "PostCreateHook bad refused".into(),
        });
        let s = run(&s0, K8s, &f, 1);
        assert_eq!(
            s.post_create_hooks,
            Some([("hello".to_string(), true)].into())
        );
        assert_eq!(s.post_create_hook_completed, Some(false));
        let c = cond(&s, "PostCreateHooks");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "PostCreateHookFailed")
        );
        // Without a report (hooks not run this pass) the fields stay.
        assert_eq!(run(&s, K8s, &facts(), 2), s);
    }

    #[test]
    fn host_and_external_are_ready_without_probes_and_name_only_existing_keys() {
        let mut f = facts();
        f.workload_available = None;
        f.api_answering = None;
        for ty in [Host, External] {
            let s = run(&ControlPlaneStatus::default(), ty, &f, 0);
            assert_eq!(cond(&s, "Ready").status, "True");
            assert_eq!(s.secret_ref.as_ref().unwrap().key, "");
        }
    }

    #[test]
    fn a_blocking_problem_makes_ready_false_with_its_message() {
        let mut f = facts();
        f.blocked = Some("Secret kubeflex-system/boot is missing: create it".into());
        let s = run(&ControlPlaneStatus::default(), External, &f, 0);
        let r = cond(&s, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "Unavailable")
        );
        assert!(r.message.contains("create it"));
    }

    #[test]
    fn an_invalid_spec_needs_a_person_and_says_what_to_change() {
        let mut f = facts();
        f.workload_available = None;
        f.api_answering = None;
        f.invalid_spec = Some("spec.tokenExpirationSeconds: 0 is not a lifetime".into());
        let s = run(&ControlPlaneStatus::default(), External, &f, 0);
        let r = cond(&s, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", REASON_INVALID_SPEC)
        );
        assert!(
            r.message.contains("spec.tokenExpirationSeconds"),
            "{}",
            r.message
        );
        assert!(REASONS_NEEDING_A_PERSON.contains(&r.reason.as_str()));
    }

    #[test]
    fn a_refused_type_needs_a_person() {
        let s = run(&ControlPlaneStatus::default(), Ocm, &facts(), 0);
        let r = cond(&s, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", REASON_REFUSED)
        );
        assert!(REASONS_NEEDING_A_PERSON.contains(&r.reason.as_str()));
        assert!(!REASONS_NEEDING_A_PERSON.contains(&"Unavailable"));
    }

    #[test]
    fn deletion_blocked_is_reported() {
        let mut f = facts();
        f.deleting = Some(
            "waiting for Job kubeflex-system/kflex-db-teardown-cp1: database unreachable".into(),
        );
        let s = run(&ControlPlaneStatus::default(), K8s, &f, 0);
        let r = cond(&s, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "Deleting")
        );
        assert!(r.message.contains("kflex-db-teardown-cp1"));
    }
}
