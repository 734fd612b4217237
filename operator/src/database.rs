//! PostgreSQL for `k8s` control planes: the server (the shared instance the
//! operator installs when none is configured, or the dedicated one), the
//! control plane's credentials, and the provisioning / teardown Jobs.
//!
//! Generated passwords are created once (`create`, never overwritten), so
//! concurrent reconciles agree on them and restarts reuse them. Jobs are
//! immutable: one whose config-hash annotation differs from the desired Job
//! is deleted and created again on a later pass.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::api::ControlPlane;
use crate::builders::postgres::{self, Database, DbJob, Instance};
use crate::builders::secrets::{opaque, text_data};
use crate::config::SharedPostgres;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::pki::random_token;
use crate::{meta, names};

/// Where a database Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Completed successfully.
    Done,
    /// Created or running; the message says which Job.
    Pending(String),
    /// Failed for good; the message names the Job and how to see why.
    Failed(String),
}

fn job_ref(job: &Job) -> String {
    format!(
        "Job {}/{}",
        job.namespace().unwrap_or_default(),
        job.name_any()
    )
}

fn password_secret(
    metadata: ObjectMeta,
    key: &str,
    cp: &str,
) -> Result<k8s_openapi::api::core::v1::Secret> {
    let password = random_token(32).map_err(|source| Error::Pki {
        cp: cp.into(),
        source,
    })?;
    Ok(opaque(metadata, text_data([(key, password)])))
}

/// The admin password of a server installed by the operator.
async fn admin_password(ctx: &Context, metadata: ObjectMeta, cp: &str) -> Result<String> {
    let data = crate::provision::create_once(
        ctx,
        password_secret(metadata, names::KEY_POSTGRES_PASSWORD, cp)?,
    )
    .await?;
    Ok(data
        .get(names::KEY_POSTGRES_PASSWORD)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .unwrap_or_default())
}

async fn apply_instance(ctx: &Context, instance: Instance) -> Result<()> {
    // The admin Secret was created once above; applying the same data is a no-op.
    ctx.applier.apply(&instance.secret).await?;
    ctx.applier.apply(&instance.service).await?;
    ctx.applier.apply(&instance.stateful_set).await?;
    Ok(())
}

/// Makes sure the server of `db` exists when the operator installs it.
async fn ensure_server(ctx: &Context, cp: &ControlPlane, db: &Database) -> Result<()> {
    let cfg = &ctx.config;
    let cp_name = cp.name_any();
    if db.dedicated {
        let metadata = meta::in_cp_namespace(cp, names::SECRET_DEDICATED_POSTGRES, "postgres")
            .map_err(crate::builders::BuildError::from)?;
        let password = admin_password(ctx, metadata, &cp_name).await?;
        return apply_instance(ctx, postgres::dedicated_instance(cp, cfg, &password)?).await;
    }
    if cfg.postgres.shared != SharedPostgres::Install {
        return Ok(());
    }
    // The system namespace normally exists (the operator runs there); make
    // sure, without owning it.
    ctx.applier
        .apply(&Namespace {
            metadata: ObjectMeta {
                name: Some(cfg.system_namespace.clone()),
                labels: Some(meta::shared_labels("system")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        })
        .await?;
    let metadata = ObjectMeta {
        name: Some(names::SECRET_POSTGRES.into()),
        namespace: Some(cfg.system_namespace.clone()),
        labels: Some(meta::shared_labels("postgres")),
        ..ObjectMeta::default()
    };
    let password = admin_password(ctx, metadata, &cp_name).await?;
    apply_instance(ctx, postgres::shared_instance(cfg, &password)).await
}

/// Runs (or checks) one database Job.
async fn run_job(ctx: &Context, desired: Job) -> Result<JobState> {
    let ns = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let what = job_ref(&desired);
    let hash = |j: &Job| j.annotations().get(names::ANNOTATION_CONFIG_HASH).cloned();
    let Some(live) = ctx.applier.get::<Job>(Some(&ns), &name).await? else {
        ctx.applier.apply(&desired).await?;
        return Ok(JobState::Pending(format!("{what} is running")));
    };
    if hash(&live) != hash(&desired) {
        // A Job's template is immutable: replace it.
        ctx.applier.delete::<Job>(Some(&ns), &name).await?;
        return Ok(JobState::Pending(format!("{what} is being replaced")));
    }
    let status = live.status.unwrap_or_default();
    if status.succeeded.unwrap_or(0) > 0 {
        return Ok(JobState::Done);
    }
    let failed = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Failed" && c.status == "True");
    if failed {
        return Ok(JobState::Failed(format!(
            "{what} failed: see `kubectl -n {ns} logs job/{name}`; the operator retries it after it is deleted"
        )));
    }
    Ok(JobState::Pending(format!("{what} is running")))
}

/// `cp` with the name of its database in [`names::ANNOTATION_DATABASE`]:
/// the recorded one; else, for a tenant made before names were recorded,
/// the role in its `kine-database` Secret (which was also the database's
/// name); else a new prefixed name ([`postgres::database_name`]). With
/// `record`, a name not recorded yet is written on the ControlPlane before
/// anything is provisioned under it.
async fn with_database_name(
    ctx: &Context,
    cp: &ControlPlane,
    record: bool,
) -> Result<ControlPlane> {
    if cp
        .annotations()
        .get(names::ANNOTATION_DATABASE)
        .is_some_and(|n| !n.is_empty())
    {
        return Ok(cp.clone());
    }
    let cp_name = cp.name_any();
    let existing = ctx
        .applier
        .get::<Secret>(Some(&names::namespace_of(&cp_name)), names::SECRET_DATABASE)
        .await?
        .and_then(|s| s.data?.get(names::KEY_DB_USER).cloned())
        .and_then(|v| String::from_utf8(v.0).ok())
        .filter(|n| !n.is_empty());
    let name = postgres::pick_database_name(&cp_name, existing.as_deref());
    if record {
        let patch =
            serde_json::json!({"metadata": {"annotations": {names::ANNOTATION_DATABASE: name}}});
        Api::<ControlPlane>::all(ctx.client.clone())
            .patch(&cp_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                Error::api(
                    format!("recording the database name of ControlPlane {cp_name}"),
                    e,
                )
            })?;
        ctx.metrics.write("ControlPlane/metadata");
    }
    let mut cp = cp.clone();
    cp.annotations_mut()
        .insert(names::ANNOTATION_DATABASE.into(), name);
    Ok(cp)
}

/// Provisions the database and role of `cp`; returns the credentials'
/// state and the database description for kine.
pub async fn ensure(ctx: &Context, cp: &ControlPlane) -> Result<(Database, JobState)> {
    let cp = &with_database_name(ctx, cp, true).await?;
    let db = postgres::database_for(cp, &ctx.config);
    ensure_server(ctx, cp, &db).await?;
    let cp_name = cp.name_any();
    // The role's password: generated once, kept in `kine-database`.
    let first = password_secret(
        meta::in_cp_namespace(cp, names::SECRET_DATABASE, "database")
            .map_err(crate::builders::BuildError::from)?,
        names::KEY_DB_PASSWORD,
        &cp_name,
    )?;
    let data = crate::provision::create_once(ctx, first).await?;
    let password = data
        .get(names::KEY_DB_PASSWORD)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .unwrap_or_default();
    for secret in postgres::credentials_secrets(cp, &db, &password)? {
        ctx.applier.apply(&secret).await?;
    }
    let state = run_job(ctx, postgres::job(cp, &db, &ctx.config, DbJob::Provision)?).await?;
    Ok((db, state))
}

/// Drops the database and role of `cp` (shared server only: a dedicated
/// instance goes away with the namespace).
pub async fn teardown(ctx: &Context, cp: &ControlPlane) -> Result<JobState> {
    let cp = &with_database_name(ctx, cp, false).await?;
    let db = postgres::database_for(cp, &ctx.config);
    if db.dedicated {
        return Ok(JobState::Done);
    }
    run_job(ctx, postgres::job(cp, &db, &ctx.config, DbJob::Teardown)?).await
}

/// Removes the database Jobs and the credentials copy in the Jobs'
/// namespace once teardown is over (they are owned by the ControlPlane,
/// but a ControlPlane being deleted should leave nothing behind at once).
pub async fn remove_jobs(ctx: &Context, cp: &ControlPlane) -> Result<()> {
    let db = postgres::database_for(cp, &ctx.config);
    let cp_name = cp.name_any();
    let ns = db.job_namespace().to_string();
    for prefix in ["kflex-db-provision-", "kflex-db-teardown-"] {
        ctx.applier
            .delete::<Job>(Some(&ns), &meta::bounded_name(prefix, &cp_name, 63))
            .await?;
    }
    if ns != names::namespace_of(&cp_name) {
        ctx.applier
            .delete::<k8s_openapi::api::core::v1::Secret>(
                Some(&ns),
                &postgres::job_credentials_secret_name(&cp_name),
            )
            .await?;
    }
    Ok(())
}
