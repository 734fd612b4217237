//! Deletion of a ControlPlane, run by the finalizer: what owner references
//! cannot remove — the tenant's database and role (teardown Job), objects
//! in an adopted cluster, cluster-scoped objects (including those
//! PostCreateHooks made) — then the namespace.
//!
//! A step that keeps failing is reported (`Ready=False/Deleting` with the
//! step, Warning Events) and retried; after `Settings::teardown_give_up`
//! since the deletion started it is abandoned with a Warning so that
//! deletion never blocks forever. Annotation
//! [`ANNOTATION_SKIP_DATABASE_TEARDOWN`](crate::names::ANNOTATION_SKIP_DATABASE_TEARDOWN)
//! `"true"` skips the database teardown at once.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use crate::api::{ControlPlane, ControlPlaneType};
use crate::context::Context;
use crate::database::{self, JobState};
use crate::error::{Error, Result};
use crate::hooks;
use crate::names;
use crate::provision;

/// Whether a step that still fails may be abandoned.
fn give_up(cp: &ControlPlane, ctx: &Context) -> bool {
    let Some(since) = cp.metadata.deletion_timestamp.as_ref() else {
        return false;
    };
    let elapsed = Timestamp::now().duration_since(since.0);
    elapsed.as_secs() >= i64::try_from(ctx.settings.teardown_give_up.as_secs()).unwrap_or(i64::MAX)
}

/// Outcome of a step: done, or still waiting with a message.
async fn step_or_wait(
    cp: &ControlPlane,
    ctx: &Context,
    waiting: Option<String>,
    reason: &str,
) -> Result<()> {
    let Some(step) = waiting else {
        return Ok(());
    };
    if give_up(cp, ctx) {
        ctx.event(
            cp,
            EventType::Warning,
            reason,
            format!(
                "gave up after {:?}: {step}; clean up by hand",
                ctx.settings.teardown_give_up
            ),
        )
        .await;
        return Ok(());
    }
    Err(Error::Waiting {
        cp: cp.name_any(),
        step,
    })
}

/// Removes everything of `cp`; `Err(Waiting)` keeps the finalizer while a
/// step is in progress.
pub async fn run(cp: &ControlPlane, ctx: &Context) -> Result<()> {
    let cp_name = cp.name_any();
    let skip_db = cp
        .annotations()
        .get(names::ANNOTATION_SKIP_DATABASE_TEARDOWN)
        .is_some_and(|v| v == "true");
    match cp.spec.type_ {
        ControlPlaneType::K8s if !skip_db => {
            let waiting = match database::teardown(ctx, cp).await? {
                JobState::Done => None,
                JobState::Pending(m) => Some(format!("dropping the database: {m}")),
                JobState::Failed(m) => Some(format!(
                    "dropping the database failed: {m}; or set annotation {}=\"true\" to skip it",
                    names::ANNOTATION_SKIP_DATABASE_TEARDOWN
                )),
            };
            step_or_wait(cp, ctx, waiting, "DatabaseTeardownAbandoned").await?;
            database::remove_jobs(ctx, cp).await?;
        }
        ControlPlaneType::K8s => database::remove_jobs(ctx, cp).await?,
        ControlPlaneType::External => {
            let waiting = provision::adopted_cleanup(cp, ctx).await?;
            step_or_wait(cp, ctx, waiting, "AdoptedCleanupAbandoned").await?;
        }
        ControlPlaneType::Host => {
            ctx.applier
                .delete::<ClusterRoleBinding>(None, &format!("{cp_name}-binding"))
                .await?;
        }
        ControlPlaneType::K3s | ControlPlaneType::Vcluster | ControlPlaneType::Ocm => {}
    }
    // Cluster-scoped objects of hooks; namespaced ones go with the namespace.
    hooks::run::cleanup(cp, ctx).await?;
    ctx.applier
        .delete::<Namespace>(None, &names::namespace_of(&cp_name))
        .await?;
    Ok(())
}
