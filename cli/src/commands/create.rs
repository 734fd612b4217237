//! `kflex create NAME`: create, wait for `Ready`, merge and switch.

use anyhow::{anyhow, bail};
use kube::api::PostParams;
use kubeflex_operator::api::{
    BackendDbType, BootstrapSecretReference, ControlPlane, ControlPlaneSpec, ControlPlaneType,
};
use serde_json::json;

use super::App;
use super::controlplane::{self as cpx, api};
use crate::cli::{CpType, CreateArgs, Format};
use crate::output::kube_error;

pub fn cp_type(t: CpType) -> ControlPlaneType {
    match t {
        CpType::K8s => ControlPlaneType::K8s,
        CpType::K3s => ControlPlaneType::K3s,
        CpType::Vcluster => ControlPlaneType::Vcluster,
        CpType::Host => ControlPlaneType::Host,
        CpType::External => ControlPlaneType::External,
        CpType::Ocm => ControlPlaneType::Ocm,
    }
}

/// The object `create` sends.
pub fn build(a: &CreateArgs) -> anyhow::Result<ControlPlane> {
    let type_ = cp_type(a.type_);
    let (hook, vars, hooks) = cpx::hooks_from_flags(&a.postcreate_hooks, &a.set)?;
    let backend = match a.backend_type.as_str() {
        "dedicated" => BackendDbType::Dedicated,
        _ => BackendDbType::Shared,
    };
    let mut spec = ControlPlaneSpec {
        type_,
        backend: Some(backend),
        post_create_hook: hook,
        post_create_hook_vars: vars,
        post_create_hooks: hooks,
        wait_for_post_create_hooks: a.wait_for_hooks.then_some(true),
        ..ControlPlaneSpec::default()
    };
    if type_ == ControlPlaneType::External {
        spec.bootstrap_secret_ref = Some(BootstrapSecretReference {
            name: format!("{}-bootstrap", a.name),
            namespace: kubeflex_operator::names::SYSTEM_NAMESPACE.into(),
            in_cluster_key: "kubeconfig-incluster".into(),
        });
    }
    Ok(ControlPlane::new(&a.name, spec))
}

pub async fn run(app: &App, mut a: CreateArgs) -> anyhow::Result<()> {
    if a.git_args.git {
        return super::gitops::run_create(app, a).await;
    }
    cpx::validate_name(&a.name)?;
    if a.type_ == CpType::Ocm {
        app.out.warn("OCM-type control plane is deprecated and will be removed in a future version. Consider using k8s or vcluster type instead.");
    }
    if a.output.is_some() {
        let mut out = app.out.clone();
        out.quiet_progress = true;
        return run_with(&App { out, ..app.clone() }, &mut a).await;
    }
    run_with(app, &mut a).await
}

async fn run_with(app: &App, a: &mut CreateArgs) -> anyhow::Result<()> {
    let obj = build(a)?;
    let (loaded, mut kc) = app.load()?;
    let hosting = app.hosting(&mut kc).await?;
    let name = a.name.clone();
    let cps = api(&hosting.client);
    if let Some(existing) = cps
        .get_opt(&name)
        .await
        .map_err(|e| anyhow!("reading control plane {name}: {}", kube_error(&e)))?
    {
        cpx::refuse_if_managed(&existing, "create")?;
        bail!(
            "control plane {name} already exists; connect to it with `kflex ctx {name}`, or delete it first with `kflex delete {name}`"
        );
    }
    let mut step = app.out.step(&format!(
        "Creating new control plane {name} of type {} ...",
        obj.spec.type_
    ));
    if let Err(e) = cps.create(&PostParams::default(), &obj).await {
        step.fail();
        bail!("error creating control plane {name}: {}", kube_error(&e));
    }
    if a.no_wait {
        step.done(&format!("control plane {name} created (not waiting)"));
        // The hosting record may have been learnt: keep it, without switching.
        let mut keep = kc.clone();
        keep.current_context
            .clone_from(&loaded.config().current_context);
        app.save(&loaded, &keep, false)?;
        return print_json(a.output, &name, obj.spec.type_.as_str(), None, false);
    }
    step.update(&format!(
        "Waiting for control plane {name} to become ready..."
    ));
    let cp = match cpx::wait_ready(
        &hosting.client,
        &name,
        a.timeout,
        a.wait_for_hooks,
        &mut step,
    )
    .await
    {
        Ok(cp) => cp,
        Err(e) => {
            step.fail();
            return Err(e);
        }
    };
    let note = match cpx::merge_from_server(&mut kc, &hosting.client, &cp, &hosting.context).await {
        Ok(n) => n,
        Err(e) => {
            step.fail();
            return Err(e);
        }
    };
    app.out.detail(&note);
    if a.no_switch {
        kc.current_context
            .clone_from(&loaded.config().current_context);
    } else {
        kc.current_context.clone_from(&name);
    }
    app.save(&loaded, &kc, !a.no_switch)?;
    let elapsed = crate::output::go_duration(step.elapsed());
    let switched = if a.no_switch {
        format!("context {name} added")
    } else {
        format!("current context is {name}")
    };
    step.done(&format!(
        "control plane {name} ({}) is ready after {elapsed}; {switched}",
        cp.spec.type_
    ));
    print_json(a.output, &name, cp.spec.type_.as_str(), Some(&name), true)
}

fn print_json(
    f: Option<Format>,
    name: &str,
    type_: &str,
    context: Option<&str>,
    ready: bool,
) -> anyhow::Result<()> {
    let v = json!({"name": name, "type": type_, "ready": ready, "context": context});
    match f {
        None => {}
        Some(Format::Json) => println!("{}", serde_json::to_string_pretty(&v)?),
        Some(Format::Yaml) => print!("{}", serde_saphyr::to_string(&v)?),
    }
    Ok(())
}
