//! `kflex delete NAME`: delete the ControlPlane, wait until its namespace is
//! gone, and remove its kubeconfig entries (every type, `host` and
//! `external` included).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

use super::App;
use super::controlplane::{self as cpx, api};
use crate::cli::DeleteArgs;
use crate::output::kube_error;

pub async fn run(app: &App, a: DeleteArgs) -> anyhow::Result<()> {
    if a.git_args.git {
        return super::gitops::run_delete(app, a).await;
    }
    let name = a.name.clone();
    let (loaded, mut kc) = app.load()?;
    let before = kc.current_context.clone();
    let hosting = app.hosting(&mut kc).await?;
    let cps = api(&hosting.client);
    let cp = cps
        .get_opt(&name)
        .await
        .map_err(|e| anyhow!("reading control plane {name}: {}", kube_error(&e)))?;
    let mut step = app.out.step(&format!("Deleting control plane {name}..."));
    match cp {
        Some(cp) => {
            if let Err(e) = cpx::refuse_if_managed(&cp, "delete") {
                step.fail();
                return Err(e);
            }
            if let Err(e) = cps.delete(&name, &DeleteParams::default()).await {
                step.fail();
                bail!("error deleting control plane {name}: {}", kube_error(&e));
            }
            if !a.no_wait {
                step.update(&format!(
                    "Waiting for control plane {name} to be deleted..."
                ));
                let ns = kubeflex_operator::names::namespace_of(&name);
                let nss: Api<Namespace> = Api::all(hosting.client.clone());
                let start = Instant::now();
                loop {
                    let cp_gone = cps
                        .get_opt(&name)
                        .await
                        .map_err(|e| anyhow!(kube_error(&e)))?
                        .is_none();
                    let ns_gone = nss
                        .get_opt(&ns)
                        .await
                        .map_err(|e| anyhow!(kube_error(&e)))?
                        .is_none();
                    if cp_gone && ns_gone {
                        break;
                    }
                    if start.elapsed() > a.timeout {
                        step.fail();
                        bail!(
                            "timed out after {} waiting for control plane {name} and namespace {ns} to go; deletion goes on: see `kubectl get controlplane {name}`",
                            crate::output::go_duration(a.timeout)
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
        None => {
            if kc.context(&name).is_none() {
                step.fail();
                bail!(
                    "control plane {name} not found on the hosting cluster ({}) and no context {name} in the kubeconfig",
                    hosting.context
                );
            }
            app.out.detail(&format!(
                "control plane {name} is not on the server; removing its context"
            ));
        }
    }
    cpx::remove_local(&mut kc, &name);
    // Stay where the user was, unless that was the deleted context.
    kc.current_context = if before == name || before.is_empty() {
        hosting.context.clone()
    } else {
        before
    };
    app.save(&loaded, &kc, true)?;
    step.done(&format!("control plane {name} deleted"));
    Ok(())
}
