//! `kflex init` / `kflex uninstall`: the files of `config/` (CRDs, RBAC,
//! the operator's Deployment), embedded in the binary, applied with
//! server-side apply; waits for the CRDs to be Established and the
//! operator to be available; records the hosting context.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};

use super::App;
use super::controlplane::api;
use crate::cli::{InitArgs, UninstallArgs};
use crate::hosting;
use crate::output::kube_error;

/// Image of the operator unless `--image` says otherwise.
/// (the image of config/manager/manager.yaml, kept equal by a test).
pub const DEFAULT_IMAGE: &str = "ghcr.io/kubestellar/kubeflex/kubeflex-operator:0.1.0";
const FIELD_MANAGER: &str = "kflex";
const SYSTEM_NS: &str = "kubeflex-system";
const DEPLOYMENT: &str = "kubeflex-operator";

/// `config/` files, in apply order (kept equal to the files by a test).
pub const CRDS: &[(&str, &str)] = &[
    (
        "config/crd/bases/tenancy.kflex.kubestellar.org_controlplanes.yaml",
        include_str!("../../../config/crd/bases/tenancy.kflex.kubestellar.org_controlplanes.yaml"),
    ),
    (
        "config/crd/bases/tenancy.kflex.kubestellar.org_postcreatehooks.yaml",
        include_str!(
            "../../../config/crd/bases/tenancy.kflex.kubestellar.org_postcreatehooks.yaml"
        ),
    ),
    (
        "config/crd/bases/gitops.kflex.kubestellar.org_syncs.yaml",
        include_str!("../../../config/crd/bases/gitops.kflex.kubestellar.org_syncs.yaml"),
    ),
];
pub const RBAC: &[(&str, &str)] = &[
    (
        "config/rbac/service_account.yaml",
        include_str!("../../../config/rbac/service_account.yaml"),
    ),
    (
        "config/rbac/role.yaml",
        include_str!("../../../config/rbac/role.yaml"),
    ),
    (
        "config/rbac/role_binding.yaml",
        include_str!("../../../config/rbac/role_binding.yaml"),
    ),
    (
        "config/rbac/leader_election_role.yaml",
        include_str!("../../../config/rbac/leader_election_role.yaml"),
    ),
    (
        "config/rbac/leader_election_role_binding.yaml",
        include_str!("../../../config/rbac/leader_election_role_binding.yaml"),
    ),
    (
        "config/rbac/vcluster_cluster_role.yaml",
        include_str!("../../../config/rbac/vcluster_cluster_role.yaml"),
    ),
];
pub const MANAGER: (&str, &str) = (
    "config/manager/manager.yaml",
    include_str!("../../../config/manager/manager.yaml"),
);

/// The objects of a (possibly multi-document) YAML file.
pub fn objects(file: &str, text: &str) -> anyhow::Result<Vec<DynamicObject>> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| anyhow!("{file}: {e}"))?;
    docs.into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            serde_json::from_value(d).with_context(|| format!("{file}: not a Kubernetes object"))
        })
        .collect()
}

/// Plural and scope of the kinds `config/` holds.
fn resource(obj: &DynamicObject) -> anyhow::Result<(ApiResource, bool)> {
    let tm = obj
        .types
        .as_ref()
        .ok_or_else(|| anyhow!("object without apiVersion/kind"))?;
    let (group, version) = tm
        .api_version
        .split_once('/')
        .unwrap_or(("", &tm.api_version));
    let (plural, namespaced) = match tm.kind.as_str() {
        "CustomResourceDefinition" => ("customresourcedefinitions", false),
        "Namespace" => ("namespaces", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "Deployment" => ("deployments", true),
        other => bail!("kflex init does not know kind {other}"),
    };
    let gvk = GroupVersionKind::gvk(group, version, &tm.kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

fn dyn_api(client: &kube::Client, obj: &DynamicObject) -> anyhow::Result<Api<DynamicObject>> {
    let (ar, namespaced) = resource(obj)?;
    Ok(if namespaced {
        Api::namespaced_with(
            client.clone(),
            obj.metadata.namespace.as_deref().unwrap_or(SYSTEM_NS),
            &ar,
        )
    } else {
        Api::all_with(client.clone(), &ar)
    })
}

/// Server-side apply; whether anything changed.
pub(crate) async fn apply(client: &kube::Client, obj: &DynamicObject) -> anyhow::Result<bool> {
    let api = dyn_api(client, obj)?;
    let name = obj.metadata.name.clone().unwrap_or_default();
    let kind = obj
        .types
        .as_ref()
        .map(|t| t.kind.clone())
        .unwrap_or_default();
    let before = api
        .get_opt(&name)
        .await
        .map_err(|e| anyhow!("reading {kind} {name}: {}", kube_error(&e)))?;
    let after = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(|e| anyhow!("applying {kind} {name}: {}", kube_error(&e)))?;
    Ok(before.and_then(|b| b.metadata.resource_version) != after.metadata.resource_version)
}

/// The Deployment with the flags of `init`.
pub fn manager(a: &InitArgs) -> anyhow::Result<DynamicObject> {
    let mut objs = objects(MANAGER.0, MANAGER.1)?;
    let mut d = objs
        .pop()
        .ok_or_else(|| anyhow!("{} is empty", MANAGER.0))?;
    let c = d
        .data
        .pointer_mut("/spec/template/spec/containers/0")
        .ok_or_else(|| anyhow!("{}: no container", MANAGER.0))?;
    // The file's arguments (the chart's defaults) stay; init's flags
    // replace their own.
    let mut args: Vec<String> = c["args"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: no args", MANAGER.0))?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .filter(|v| {
            !["--domain=", "--external-port=", "--external-address="]
                .iter()
                .any(|f| v.starts_with(f))
        })
        .collect();
    args.push(format!("--domain={}", a.domain));
    args.push(format!("--external-port={}", a.external_port));
    if let Some(addr) = &a.external_address {
        args.push(format!("--external-address={addr}"));
    }
    c["image"] = a.image.clone().into();
    c["args"] = args.into();
    Ok(d)
}

/// OpenShift: KubeFlex's test (`project.openshift.io/v1` serves
/// `projects`) or the Route API, which is what makes the operator expose
/// control planes through Routes (`--exposure auto`). Errors mean "no".
async fn openshift(client: &kube::Client) -> bool {
    for (group_version, resource) in [
        ("route.openshift.io/v1", "routes"),
        ("project.openshift.io/v1", "projects"),
    ] {
        if client
            .list_api_group_resources(group_version)
            .await
            .is_ok_and(|l| l.resources.iter().any(|r| r.name == resource))
        {
            return true;
        }
    }
    false
}

pub async fn init(app: &App, a: InitArgs) -> anyhow::Result<()> {
    let (loaded, mut kc) = app.load()?;
    let context = a
        .hosting_context
        .clone()
        .unwrap_or_else(|| kc.current_context.clone());
    hosting::check_context(&kc, &context)?;
    let client = hosting::client(&kc, &context)
        .await
        .map_err(|e| anyhow!("cannot reach context '{context}': {e}"))?;
    let mut step = app.out.step("Checking if OpenShift cluster...");
    if openshift(&client).await {
        app.out
            .say("OpenShift cluster detected: the operator exposes control planes through Routes");
    }
    let mut changed = 0usize;
    step.update(&format!("Ensuring {SYSTEM_NS} namespace..."));
    let ns: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NS}
    }))?;
    changed += usize::from(apply(&client, &ns).await?);
    step.update("Installing CRDs...");
    let mut crd_names = Vec::new();
    for (file, text) in CRDS {
        for o in objects(file, text)? {
            crd_names.push(o.metadata.name.clone().unwrap_or_default());
            changed += usize::from(apply(&client, &o).await?);
        }
    }
    step.update("Waiting for the CRDs to be Established...");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let start = Instant::now();
    for n in &crd_names {
        loop {
            let est = crds
                .get_opt(n)
                .await
                .map_err(|e| anyhow!(kube_error(&e)))?
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if est {
                break;
            }
            if start.elapsed() > a.timeout {
                step.fail();
                bail!("timed out waiting for CRD {n} to be Established");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    step.update("Installing the operator's RBAC...");
    for (file, text) in RBAC {
        for o in objects(file, text)? {
            changed += usize::from(apply(&client, &o).await?);
        }
    }
    if !a.skip_operator {
        step.update("Installing kubeflex operator...");
        changed += usize::from(apply(&client, &manager(&a)?).await?);
        step.update("Waiting for kubeflex operator to become ready...");
        let deps: Api<Deployment> = Api::namespaced(client.clone(), SYSTEM_NS);
        loop {
            let ready = deps
                .get_opt(DEPLOYMENT)
                .await
                .map_err(|e| anyhow!(kube_error(&e)))?
                .and_then(|d| d.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                });
            if ready {
                break;
            }
            if start.elapsed() > a.timeout {
                step.fail();
                bail!(
                    "timed out after {} waiting for Deployment {SYSTEM_NS}/{DEPLOYMENT} to be available: see `kubectl -n {SYSTEM_NS} describe deployment {DEPLOYMENT}`",
                    crate::output::go_duration(a.timeout)
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let before = hosting::stored(&kc);
    hosting::set(&mut kc, &context)?;
    app.save(&loaded, &kc, false)?;
    if changed == 0 && before.as_deref() == Some(context.as_str()) {
        step.done(&format!(
            "KubeFlex is already installed on '{context}'; nothing changed"
        ));
    } else {
        step.done(&format!("KubeFlex installed on '{context}' ({changed} objects created or changed); hosting context recorded"));
    }
    Ok(())
}

pub async fn uninstall(app: &App, a: UninstallArgs) -> anyhow::Result<()> {
    let (_, mut kc) = app.load()?;
    let hosting = app.hosting(&mut kc).await?;
    let client = hosting.client;
    let cps = api(&client);
    let existing = cps
        .list(&ListParams::default())
        .await
        .map_err(|e| anyhow!(kube_error(&e)))?;
    if !existing.items.is_empty() {
        if !a.delete_control_planes {
            let names: Vec<&str> = existing
                .items
                .iter()
                .filter_map(|cp| cp.metadata.name.as_deref())
                .collect();
            let more = names.len().saturating_sub(5);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            bail!(
                "control planes exist ({}{more}); delete them first (`kflex delete NAME`) or pass --delete-control-planes (which deletes every tenant)",
                names[..names.len().min(5)].join(", ")
            );
        }
        let step = app.out.step("Deleting control planes...");
        for cp in &existing.items {
            let n = cp.metadata.name.clone().unwrap_or_default();
            let _ = cps.delete(&n, &DeleteParams::default()).await;
        }
        let start = Instant::now();
        while !cps
            .list(&ListParams::default())
            .await
            .map_err(|e| anyhow!(kube_error(&e)))?
            .items
            .is_empty()
        {
            if start.elapsed() > a.timeout {
                step.fail();
                bail!("timed out waiting for the control planes to be deleted");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        step.done("control planes deleted");
    }
    let step = app.out.step("Removing the operator...");
    let mut objs = vec![objects(MANAGER.0, MANAGER.1)?];
    for (file, text) in RBAC.iter().rev() {
        objs.push(objects(file, text)?);
    }
    if a.crds {
        for (file, text) in CRDS {
            objs.push(objects(file, text)?);
        }
    }
    for o in objs.into_iter().flatten() {
        let api = dyn_api(&client, &o)?;
        match api
            .delete(
                o.metadata.name.as_deref().unwrap_or_default(),
                &DeleteParams::default(),
            )
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => bail!(kube_error(&e)),
        }
    }
    step.done(if a.crds {
        "KubeFlex removed, CRDs included"
    } else {
        "KubeFlex operator removed; the CRDs stay (pass --crds to delete them, which deletes every tenant)"
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn embedded_manifests_equal_the_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (file, text) in CRDS.iter().chain(RBAC).chain([&MANAGER]) {
            let on_disk = std::fs::read_to_string(root.join(file)).unwrap();
            assert_eq!(&on_disk, text, "{file}");
            assert!(!objects(file, text).unwrap().is_empty(), "{file}");
        }
        // Every file of config/crd/bases and config/rbac (but kustomize's) is embedded.
        for dir in ["config/crd/bases", "config/rbac"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = format!("{dir}/{}", e.unwrap().file_name().to_string_lossy());
                // service_proxy_*: only an operator outside the cluster
                // needs it; reconciler_*: installed with the reconciler,
                // which init does not deploy.
                if name.ends_with("kustomization.yaml")
                    || name.contains("/service_proxy_")
                    || name.contains("/reconciler_")
                    || name.ends_with("README.md")
                {
                    continue;
                }
                assert!(
                    CRDS.iter().chain(RBAC).any(|(f, _)| *f == name),
                    "{name} not embedded"
                );
            }
        }
    }

    #[test]
    fn manager_takes_the_flags() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::parse_from([
            "kflex",
            "init",
            "--image",
            "x/op:1",
            "--external-address",
            "10.0.0.5",
            "-p",
            "8443",
        ]);
        let crate::cli::Command::Init(a) = cli.command else {
            panic!()
        };
        let d = manager(&a).unwrap();
        let c = &d.data["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "x/op:1");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // The subcommand and the file's other flags stay; init's replace
        // the file's, once each.
        assert_eq!(args[0], "run");
        assert!(args.contains(&"--leader-elect=true"), "{args:?}");
        for (flag, value) in [
            ("--domain=", "--domain=localtest.me"),
            ("--external-port=", "--external-port=8443"),
            ("--external-address=", "--external-address=10.0.0.5"),
        ] {
            let set: Vec<_> = args.iter().filter(|a| a.starts_with(flag)).collect();
            assert_eq!(set, [&value], "{args:?}");
        }
    }

    #[test]
    fn the_default_image_is_the_files() {
        let d = objects(MANAGER.0, MANAGER.1).unwrap().pop().unwrap();
        assert_eq!(
            d.data["spec"]["template"]["spec"]["containers"][0]["image"],
            DEFAULT_IMAGE
        );
    }
}
