//! Applying a ControlPlane's PostCreateHooks (the IO around the pure
//! [`plan`](super::plan)), called by the reconcile once the tenant serves.
//!
//! Per hook, in [`select`](super::select) order:
//! 1. A hook recorded in `status.postCreateHooks` is not re-applied
//!    (KubeFlex's once-only default) unless re-rendering is asked for
//!    (`--rerender-hooks`, or annotation `kflex.kubestellar.org/rerender:
//!    "true"` on the hook) and the hash of its rendered objects differs from
//!    the one recorded on the ControlPlane. A recorded hook without a hash
//!    (applied by KubeFlex) adopts the current hash without re-applying.
//! 2. Otherwise it is rendered and checked as a whole ([`super::plan`]);
//!    an object that exists is refused too unless a hook of this control
//!    plane made it ([`ownership_refusal`]: never the operator's objects,
//!    nor what its workloads or anyone else made in `NAME-system`, nor
//!    another control plane's). Only then is each object applied with
//!    server-side apply under the hooks' own field manager, without
//!    `force` (a field the operator owns is a conflict, never taken over).
//!    Fields an earlier version applied to the hook's own objects under
//!    the operator's manager are handed to the hooks' manager first, once
//!    ([`hand_over_fields`]), so that an upgrade can re-render them.
//!
//! Messages are scrubbed of the values of user variables
//! ([`super::scrub`]) before they reach conditions, Events or logs.
//! 3. With `waitForPostCreateHooks`, each object's readiness is read; a
//!    failed Job fails the hook, and so does waiting longer than
//!    `Settings::hook_timeout` since its oldest object was created.
//!
//! A hook is recorded once applied (and ready, when awaited). The labels
//! of recorded hooks and the hashes are written on the ControlPlane under
//! their own field manager without `force`: a label the GitOps reconciler
//! owns stays its own (the conflict is logged, not fought).
//!
//! Errors never stop the reconcile: they become the `PostCreateHooks`
//! condition (and `Ready`, when awaited). Messages name hooks, templates
//! and objects, never values.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, Scope as KubeScope};
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::policy::{Planned, Scope, ScopeLookup};
use super::ready::{Readiness, readiness};
use super::render::Renderer;
use super::select::{self, HookUse};
use super::{HookError, Plan};
use crate::api::{ControlPlane, PostCreateHook};
use crate::context::Context;
use crate::names;
use crate::status::{HookReport, Hooks};

/// Discovered `(apiVersion, kind)`: resource and scope. Only kinds the
/// server serves are kept, so a CRD installed later is found next time.
#[derive(Default)]
pub struct Discovered(Mutex<BTreeMap<(String, String), (ApiResource, Scope)>>);

impl Discovered {
    fn get(&self, api_version: &str, kind: &str) -> Option<(ApiResource, Scope)> {
        self.0
            .lock()
            .ok()?
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
    }

    /// Looks up every kind not known yet; failures leave it unknown (the
    /// policy then refuses the template as not served). A kind may be
    /// rendered from a variable: the log line is scrubbed with `vars`.
    async fn learn(
        &self,
        client: &Client,
        kinds: &BTreeSet<(String, String)>,
        vars: &BTreeMap<String, String>,
    ) {
        for (api_version, kind) in kinds {
            if self.get(api_version, kind).is_some() {
                continue;
            }
            let (group, version) = api_version
                .split_once('/')
                .unwrap_or(("", api_version.as_str()));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            match discovery::pinned_kind(client, &gvk).await {
                Ok((ar, caps)) => {
                    let scope = match caps.scope {
                        KubeScope::Cluster => Scope::Cluster,
                        KubeScope::Namespaced => Scope::Namespaced,
                    };
                    if let Ok(mut map) = self.0.lock() {
                        map.insert((api_version.clone(), kind.clone()), (ar, scope));
                    }
                }
                Err(e) => {
                    let what = super::scrub(&format!("{kind} of {api_version}: {e}"), vars);
                    tracing::debug!(%what, "kind not discovered");
                }
            }
        }
    }
}

impl ScopeLookup for Discovered {
    fn scope(&self, api_version: &str, kind: &str) -> Option<Scope> {
        self.get(api_version, kind).map(|(_, s)| s)
    }
}

/// What the hooks pass found, for status, Events and the requeue.
#[derive(Debug, Default)]
pub struct Outcome {
    /// For `Ready`.
    pub gate: Option<Hooks>,
    /// `status.postCreateHooks`, `postCreateHookCompleted` and the
    /// `PostCreateHooks` condition; `None`: leave them as they are.
    pub report: Option<HookReport>,
    /// Events of steps that did something (a hook applied).
    pub events: Vec<(EventType, &'static str, String)>,
}

/// The gate while the tenant does not serve yet: hooks cannot run.
pub fn not_run(cp: &ControlPlane) -> Outcome {
    let awaited = cp.spec.wait_for_post_create_hooks == Some(true)
        && !select::select(&cp.spec).uses.is_empty();
    Outcome {
        gate: Some(if awaited {
            Hooks::Pending
        } else {
            Hooks::NotAwaited
        }),
        ..Outcome::default()
    }
}

/// The hash annotation, as a map (unparsable: empty, rewritten on apply).
fn recorded_hashes(cp: &ControlPlane) -> BTreeMap<String, String> {
    cp.annotations()
        .get(names::ANNOTATION_HOOK_HASHES)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// `(apiVersion, kind)` of every template, rendered (a templated kind is
/// rare but legal); unrenderable ones are skipped, `plan` reports them.
fn kinds_of(
    hook: &PostCreateHook,
    vars: &BTreeMap<String, String>,
    renderer: &Renderer,
) -> BTreeSet<(String, String)> {
    hook.spec
        .templates
        .iter()
        .flatten()
        .filter_map(|t| {
            let av = renderer.render_str(t["apiVersion"].as_str()?, vars).ok()?;
            let kind = renderer.render_str(t["kind"].as_str()?, vars).ok()?;
            Some((av, kind))
        })
        .collect()
}

fn dynamic_api(client: &Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// One hook's result.
enum HookState {
    /// Applied (and ready, when awaited).
    Done,
    /// Awaited and not ready yet: what it waits for.
    Pending(String),
    /// Will not get done by itself: why.
    Failed(String),
    /// The PostCreateHook does not exist: later hooks wait (KubeFlex stops
    /// there too, since later hooks may depend on it).
    Missing(String),
}

/// Runs the hooks of `cp`; call only once the tenant serves.
pub async fn reconcile(cp: &ControlPlane, ctx: &Context) -> Outcome {
    let selection = select::select(&cp.spec);
    if !selection.duplicates.is_empty() {
        tracing::debug!(name = %cp.name_any(), duplicates = ?selection.duplicates, "duplicate PostCreateHook references skipped");
    }
    if selection.uses.is_empty() {
        return Outcome {
            gate: Some(Hooks::NotAwaited),
            ..Outcome::default()
        };
    }
    let wait = cp.spec.wait_for_post_create_hooks == Some(true);
    let previous = cp
        .status
        .as_ref()
        .and_then(|s| s.post_create_hooks.clone())
        .unwrap_or_default();
    let old_hashes = recorded_hashes(cp);
    let mut hashes = old_hashes.clone();
    let mut statuses = previous.clone();
    let mut labels = BTreeMap::new();
    let mut outcome = Outcome::default();
    let (mut pending, mut failed) = (Vec::new(), Vec::new());
    for u in &selection.uses {
        match one_hook(
            cp,
            ctx,
            u,
            wait,
            &previous,
            &mut hashes,
            &mut labels,
            &mut outcome,
        )
        .await
        {
            HookState::Done => {
                statuses.insert(u.name.to_string(), true);
            }
            HookState::Pending(m) => pending.push(m),
            HookState::Failed(m) => failed.push(m),
            HookState::Missing(m) => {
                failed.push(m);
                break;
            }
        }
    }
    write_metadata(cp, ctx, &labels, &hashes, &old_hashes).await;
    let all_done = selection
        .uses
        .iter()
        .all(|u| statuses.get(u.name) == Some(&true));
    let completed = all_done && failed.is_empty() && pending.is_empty();
    let (status, reason, message) = if !failed.is_empty() {
        (false, "PostCreateHookFailed", failed.join("; "))
    } else if !pending.is_empty() {
        (false, "WaitingForPostCreateHooks", pending.join("; "))
    } else {
        (true, "PostCreateHooksApplied", String::new())
    };
    outcome.gate = Some(match (wait, completed, failed.is_empty()) {
        (false, _, _) => Hooks::NotAwaited,
        (true, true, _) => Hooks::Complete,
        (true, false, false) => Hooks::Failed(message.clone()),
        (true, false, true) => Hooks::Pending,
    });
    outcome.report = Some(HookReport {
        applied: statuses,
        completed,
        ok: status,
        reason,
        message,
    });
    outcome
}

#[allow(clippy::too_many_arguments)] // the accumulators of one pass
async fn one_hook(
    cp: &ControlPlane,
    ctx: &Context,
    u: &HookUse<'_>,
    wait: bool,
    previous: &BTreeMap<String, bool>,
    hashes: &mut BTreeMap<String, String>,
    labels: &mut BTreeMap<String, String>,
    outcome: &mut Outcome,
) -> HookState {
    let cp_name = cp.name_any();
    let hook = match Api::<PostCreateHook>::all(ctx.client.clone())
        .get_opt(u.name)
        .await
    {
        Ok(Some(h)) => h,
        Ok(None) => {
            return HookState::Missing(
                HookError::NotFound {
                    hook: u.name.into(),
                }
                .to_string(),
            );
        }
        Err(e) => {
            return HookState::Failed(format!("reading PostCreateHook {}: {e}", u.name));
        }
    };
    let recorded = previous.contains_key(u.name);
    let rerender = ctx.settings.rerender_hooks
        || hook
            .annotations()
            .get(names::ANNOTATION_RERENDER)
            .is_some_and(|v| v == "true");
    let copy_labels = |labels: &mut BTreeMap<String, String>| {
        labels.extend(hook.labels().iter().map(|(k, v)| (k.clone(), v.clone())));
    };
    if recorded && !wait && !rerender {
        copy_labels(labels);
        return HookState::Done;
    }
    let vars = select::variables(
        hook.spec.default_vars.as_deref().unwrap_or_default(),
        cp.spec.global_vars.as_ref(),
        u.vars,
        &cp_name,
        u.name,
    );
    ctx.hook_kinds
        .learn(&ctx.client, &kinds_of(&hook, &vars, &ctx.renderer), &vars)
        .await;
    let plan = match super::plan(
        &cp_name,
        &hook,
        &vars,
        &ctx.renderer,
        &ctx.hook_kinds,
        &ctx.settings.hook_cluster_kinds,
        &ctx.settings.hook_extra_rules,
    ) {
        Ok(p) => p,
        Err(e) => return HookState::Failed(super::scrub(&e.to_string(), &vars)),
    };
    let apply = match (recorded, rerender, hashes.get(u.name)) {
        (false, _, _) => true,
        (true, true, Some(h)) => *h != plan.hash,
        _ => false,
    };
    if apply && let Err(m) = apply_plan(&cp_name, u.name, &plan, recorded, ctx).await {
        return HookState::Failed(super::scrub(&m, &vars));
    }
    // One Event per rendering applied, not per pass: an awaited hook is
    // re-applied (a no-op) on every pass until it is ready.
    if apply && hashes.get(u.name) != Some(&plan.hash) {
        outcome.events.push((
            EventType::Normal,
            "PostCreateHookApplied",
            format!(
                "{} PostCreateHook {} ({} objects)",
                if recorded { "re-applied" } else { "applied" },
                u.name,
                plan.objects.len()
            ),
        ));
    }
    // Recorded when applied, or adopted for a hook recorded without one;
    // a hook left as it was keeps the hash of what was applied.
    if apply || !hashes.contains_key(u.name) {
        hashes.insert(u.name.to_string(), plan.hash.clone());
    }
    if wait {
        match hook_readiness(u.name, &plan, ctx).await {
            HookState::Done => {}
            HookState::Pending(m) => return HookState::Pending(super::scrub(&m, &vars)),
            HookState::Failed(m) => return HookState::Failed(super::scrub(&m, &vars)),
            other => return other,
        }
    }
    copy_labels(labels);
    HookState::Done
}

/// Why an existing object may not be written by `hook` of `cp_name`, if
/// it may not. A hook writes only objects that do not exist yet or that a
/// hook of the same control plane made (both labels): never the operator's
/// own objects (in `NAME-system` or cluster-scoped, like the host type's
/// `<cp>-binding`), those its workloads or controllers make in
/// `NAME-system` (`vc-vcluster`, `kube-root-ca.crt`, PVCs, ...), nor
/// another tenant's.
pub fn ownership_refusal(
    cp_name: &str,
    p: &Planned,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let owner = labels.get(names::LABEL_CONTROL_PLANE).map(String::as_str);
    let by_hook = labels.contains_key(names::LABEL_POST_CREATE_HOOK);
    if owner == Some(cp_name) && by_hook {
        return None;
    }
    if p.namespace.is_none() && owner != Some(cp_name) {
        return Some(format!(
            "{} already exists and belongs to {}; give it a per-control-plane name such as {{{{ ControlPlaneName }}}}-{}",
            p.describe(),
            owner.map_or_else(
                || "no control plane".into(),
                |o| format!("control plane {o}")
            ),
            p.name
        ));
    }
    // The operator's own objects (namespaced, or cluster-scoped such as
    // the host type's `<cp>-binding`) carry its label but no hook's.
    let whose = if labels.get(names::LABEL_MANAGED_BY).map(String::as_str)
        == Some(names::MANAGED_BY)
        && !by_hook
    {
        "is managed by the operator"
    } else {
        "already exists and was not made by a PostCreateHook of this control plane"
    };
    Some(format!(
        "{} {whose}; a hook never takes over an object it did not create: give the hook's object another name",
        p.describe()
    ))
}

/// `managedFields` with `from`'s apply entry handed to `to` (merged into
/// `to`'s apply entry when there is one); `None` when `from` has none.
///
/// Versions before hooks had their own field manager applied hook objects
/// with `force` as the operator: without this, the first re-render of such
/// an object conflicts (409) with those fields. Only called for objects
/// carrying the hook's own labels ([`ownership_refusal`] passed), so no
/// field of an object the operator manages changes hands.
pub fn hand_over_fields(
    entries: &[ManagedFieldsEntry],
    from: &str,
    to: &str,
) -> Option<Vec<ManagedFieldsEntry>> {
    let is_apply = |e: &ManagedFieldsEntry, m: &str| {
        e.manager.as_deref() == Some(m)
            && e.operation.as_deref() == Some("Apply")
            && e.subresource.as_deref().unwrap_or_default().is_empty()
    };
    let old = entries.iter().find(|e| is_apply(e, from))?.clone();
    let mut out: Vec<ManagedFieldsEntry> = Vec::with_capacity(entries.len());
    let mut merged = false;
    for e in entries {
        if is_apply(e, from) {
            continue;
        }
        let mut e = e.clone();
        if is_apply(&e, to) {
            let mut fields = e.fields_v1.take().map(|f| f.0).unwrap_or_else(|| json!({}));
            union(
                &mut fields,
                old.fields_v1.as_ref().map_or(&json!({}), |f| &f.0),
            );
            e.fields_v1 = Some(FieldsV1(fields));
            merged = true;
        }
        out.push(e);
    }
    if !merged {
        out.push(ManagedFieldsEntry {
            manager: Some(to.into()),
            ..old
        });
    }
    Some(out)
}

/// Adds every path of `more` to `set` (a `fieldsV1` union).
fn union(set: &mut Value, more: &Value) {
    if let (Some(set), Some(more)) = (set.as_object_mut(), more.as_object()) {
        for (k, v) in more {
            union(set.entry(k.clone()).or_insert_with(|| json!({})), v);
        }
    }
}

/// Ownership check of every object, the old operator's fields of the
/// hook's own objects handed to the hooks' manager, then SSA of each.
async fn apply_plan(
    cp_name: &str,
    hook: &str,
    plan: &Plan,
    rerun: bool,
    ctx: &Context,
) -> Result<(), String> {
    let resource = |p: &Planned| {
        ctx.hook_kinds
            .get(&p.api_version, &p.kind)
            .map(|(ar, _)| ar)
            .ok_or_else(|| {
                format!(
                    "PostCreateHook {hook}: {} is no longer served",
                    p.describe()
                )
            })
    };
    let mut hand_over = Vec::new();
    for p in &plan.objects {
        let ar = resource(p)?;
        let api = dynamic_api(&ctx.client, &ar, p.namespace.as_deref());
        let live = api.get_opt(&p.name).await.map_err(|e| {
            format!(
                "PostCreateHook {hook}: reading {}: {}",
                p.describe(),
                redact_api(&e)
            )
        })?;
        let Some(live) = live else { continue };
        if let Some(reason) = ownership_refusal(cp_name, p, live.labels()) {
            return Err(HookError::Refused {
                hook: hook.into(),
                template: format!("{}/{}", p.kind, p.name),
                reason,
            }
            .to_string());
        }
        let entries = live.metadata.managed_fields.as_deref().unwrap_or_default();
        if let Some(fields) =
            hand_over_fields(entries, names::FIELD_MANAGER, names::FIELD_MANAGER_HOOKS)
        {
            hand_over.push((api, p, live.resource_version(), fields));
        }
    }
    for (api, p, version, fields) in hand_over {
        // The resourceVersion makes it a compare-and-swap: a concurrent
        // write fails this (409) rather than being overwritten.
        let patch = json!({"metadata": {"resourceVersion": version, "managedFields": fields}});
        api.patch(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                format!(
                    "PostCreateHook {hook}: handing the fields of {} written by an earlier version to the hooks' field manager: {}",
                    p.describe(),
                    redact_api(&e)
                )
            })?;
        ctx.metrics.write(&p.kind);
        tracing::info!(cp = cp_name, hook, kind = %p.kind, "fields an earlier version applied handed to the hooks' field manager");
    }
    for p in &plan.objects {
        let ar = resource(p)?;
        // A Job's pod template is immutable: re-running means a new Job.
        if rerun && p.kind == "Job" && ar.group == "batch" {
            ctx.applier
                .delete::<Job>(p.namespace.as_deref(), &p.name)
                .await
                .map_err(|e| format!("PostCreateHook {hook}: {e}"))?;
        }
        let obj: DynamicObject = serde_json::from_value(p.object.clone())
            .map_err(|e| format!("PostCreateHook {hook}: {}: {e}", p.describe()))?;
        ctx.applier
            .apply_hook_object(&obj, &ar)
            .await
            .map_err(|e| format!("PostCreateHook {hook}: {e}"))?;
    }
    tracing::info!(
        cp = cp_name,
        hook,
        objects = plan.objects.len(),
        "PostCreateHook applied"
    );
    Ok(())
}

/// A kube error on one line, without the values the API server quotes.
fn redact_api(e: &kube::Error) -> String {
    crate::error::redact(&crate::telemetry::one_line(e))
}

/// Readiness of every object of the plan; pending past the timeout fails.
async fn hook_readiness(hook: &str, plan: &Plan, ctx: &Context) -> HookState {
    let mut waiting = Vec::new();
    let mut oldest: Option<Timestamp> = None;
    for p in &plan.objects {
        let Some((ar, _)) = ctx.hook_kinds.get(&p.api_version, &p.kind) else {
            continue;
        };
        let live = match dynamic_api(&ctx.client, &ar, p.namespace.as_deref())
            .get_opt(&p.name)
            .await
        {
            Ok(Some(live)) => live,
            Ok(None) => {
                waiting.push(format!("{} does not exist yet", p.describe()));
                continue;
            }
            Err(e) => {
                return HookState::Failed(format!(
                    "PostCreateHook {hook}: reading {}: {e}",
                    p.describe()
                ));
            }
        };
        if let Some(t) = live.metadata.creation_timestamp.as_ref() {
            oldest = Some(oldest.map_or(t.0, |o| o.min(t.0)));
        }
        let value = serde_json::to_value(&live).unwrap_or_else(|_| json!({}));
        match readiness(&p.kind, &p.describe(), &value) {
            Readiness::Ready => {}
            Readiness::Pending(m) => waiting.push(m),
            Readiness::Failed(m) => {
                return HookState::Failed(format!("PostCreateHook {hook}: {m}"));
            }
        }
    }
    if waiting.is_empty() {
        return HookState::Done;
    }
    let limit = ctx.settings.hook_timeout;
    let elapsed = oldest.map(|t| Timestamp::now().duration_since(t).as_secs());
    let message = format!("PostCreateHook {hook}: {}", waiting.join(", "));
    if elapsed.is_some_and(|s| s >= i64::try_from(limit.as_secs()).unwrap_or(i64::MAX)) {
        return HookState::Failed(format!("{message}: timed out after {}", human(limit)));
    }
    HookState::Pending(message)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Writes the recorded hooks' labels and the hashes on the ControlPlane,
/// when they are not there yet. A conflict (another manager owns a label)
/// is logged: the GitOps reconciler wins.
async fn write_metadata(
    cp: &ControlPlane,
    ctx: &Context,
    labels: &BTreeMap<String, String>,
    hashes: &BTreeMap<String, String>,
    old_hashes: &BTreeMap<String, String>,
) {
    let have = cp.labels();
    let labels_there = labels.iter().all(|(k, v)| have.get(k) == Some(v));
    if labels_there && hashes == old_hashes {
        return;
    }
    let name = cp.name_any();
    let patch = json!({
        "apiVersion": crate::api::API_VERSION,
        "kind": "ControlPlane",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                names::ANNOTATION_HOOK_HASHES: serde_json::to_string(hashes).unwrap_or_default(),
            },
        },
    });
    let result = Api::<ControlPlane>::all(ctx.client.clone())
        .patch(
            &name,
            &PatchParams::apply(names::FIELD_MANAGER_HOOKS),
            &Patch::Apply(&patch),
        )
        .await;
    match result {
        Ok(_) => ctx.metrics.write("ControlPlane/metadata"),
        Err(e) => {
            tracing::warn!(name = %name, error = %e, "writing PostCreateHook labels on the ControlPlane failed; another manager may own them");
        }
    }
}

/// Deletes the cluster-scoped objects `cp`'s hooks made (allow-listed
/// kinds carrying its control-plane and hook labels); namespaced ones go
/// with the namespace.
///
/// Runs whether or not a hook was recorded as run: a hook applied in part
/// (a crash, a failed write) is not recorded, and its objects go too.
/// Missing permissions (403) do not block deletion: a Warning Event names
/// what is left behind, to be removed by hand or allowed in the role.
pub async fn cleanup(cp: &ControlPlane, ctx: &Context) -> crate::error::Result<()> {
    let selector = format!(
        "{}={},{}",
        names::LABEL_CONTROL_PLANE,
        cp.name_any(),
        names::LABEL_POST_CREATE_HOOK
    );
    for (group, kind) in ctx.settings.hook_cluster_kinds.iter() {
        let found = match discovery::group(&ctx.client, group).await {
            Ok(g) => g.recommended_kind(kind),
            Err(e) => {
                tracing::debug!(group, kind, error = %e, "group not served; nothing to clean");
                None
            }
        };
        let Some((ar, caps)) = found else { continue };
        if caps.scope != KubeScope::Cluster {
            continue;
        }
        let api = dynamic_api(&ctx.client, &ar, None);
        let list = match api
            .list_metadata(&kube::api::ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => list,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                forbidden(cp, ctx, kind, &selector).await;
                continue;
            }
            Err(e) => {
                return Err(crate::error::Error::api(
                    format!("listing {kind} made by PostCreateHooks"),
                    e,
                ));
            }
        };
        for obj in list.items {
            let obj_name = obj.name_any();
            match api.delete(&obj_name, &Default::default()).await {
                Ok(_) => ctx.metrics.write(kind),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    forbidden(cp, ctx, kind, &selector).await;
                }
                Err(e) => {
                    return Err(crate::error::Error::api(
                        format!("deleting {kind} {obj_name} made by a PostCreateHook"),
                        e,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Reports cluster-scoped hook objects the operator may not remove.
async fn forbidden(cp: &ControlPlane, ctx: &Context, kind: &str, selector: &str) {
    ctx.event(
        cp,
        EventType::Warning,
        "PostCreateHookCleanupForbidden",
        format!(
            "the operator may not list or delete {kind}; objects made by this control plane's hooks may be left: `kubectl delete {kind} -l {selector}`, or grant list and delete on them"
        ),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    const OLD: &str = names::FIELD_MANAGER;
    const NEW: &str = names::FIELD_MANAGER_HOOKS;

    #[test]
    fn the_old_operators_apply_entry_is_handed_to_the_hooks_manager() {
        let old = entry(OLD, "Apply", json!({"f:data": {"f:a": {}}}));
        let other = entry("kubectl-edit", "Update", json!({"f:data": {"f:b": {}}}));
        let out = hand_over_fields(&[old.clone(), other.clone()], OLD, NEW).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], other, "other managers keep their fields");
        assert_eq!(out[1].manager.as_deref(), Some(NEW));
        assert_eq!(out[1].fields_v1, old.fields_v1);
        // Merged into the hooks' own apply entry when there is one.
        let mine = entry(
            NEW,
            "Apply",
            json!({"f:data": {"f:c": {}}, "f:metadata": {}}),
        );
        let out = hand_over_fields(&[mine, old.clone()], OLD, NEW).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].fields_v1.as_ref().unwrap().0,
            json!({"f:data": {"f:a": {}, "f:c": {}}, "f:metadata": {}})
        );
        // Nothing to hand over: no old apply entry (an Update is not one).
        assert!(hand_over_fields(&[entry(OLD, "Update", json!({}))], OLD, NEW).is_none());
        assert!(hand_over_fields(&[], OLD, NEW).is_none());
    }

    fn planned(namespace: Option<&str>) -> Planned {
        Planned {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "x".into(),
            namespace: namespace.map(Into::into),
            object: json!({}),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn only_objects_a_hook_of_this_control_plane_made_are_written_again() {
        let p = planned(Some("cp1-system"));
        let hooks = labels(&[
            (names::LABEL_MANAGED_BY, names::MANAGED_BY),
            (names::LABEL_CONTROL_PLANE, "cp1"),
            (names::LABEL_POST_CREATE_HOOK, "h"),
        ]);
        assert_eq!(ownership_refusal("cp1", &p, &hooks), None);
        let operators = labels(&[
            (names::LABEL_MANAGED_BY, names::MANAGED_BY),
            (names::LABEL_CONTROL_PLANE, "cp1"),
        ]);
        let why = ownership_refusal("cp1", &p, &operators).unwrap();
        assert!(why.contains("managed by the operator"), "{why}");
        for other in [labels(&[]), labels(&[(names::LABEL_POST_CREATE_HOOK, "h")])] {
            let why = ownership_refusal("cp1", &p, &other).unwrap();
            assert!(why.contains("not made by a PostCreateHook"), "{why}");
        }
        let cluster = planned(None);
        assert_eq!(ownership_refusal("cp1", &cluster, &hooks), None);
        let why = ownership_refusal("cp2", &cluster, &hooks).unwrap();
        assert!(why.contains("belongs to control plane cp1"), "{why}");
        // The host type's ClusterRoleBinding: this control plane's, not a hook's.
        let why = ownership_refusal("cp1", &cluster, &operators).unwrap();
        assert!(why.contains("managed by the operator"), "{why}");
    }
}
