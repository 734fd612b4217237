//! `kflex adopt NAME`: an existing cluster becomes an `external` control
//! plane (§11.9): bootstrap Secret `kubeflex-system/NAME-bootstrap` (key
//! `kubeconfig-incluster`), then the ControlPlane; `--wait` waits for Ready,
//! merges the context and switches to it.

use anyhow::{anyhow, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kubeflex_operator::api::{
    BootstrapSecretReference, ControlPlane, ControlPlaneSpec, ControlPlaneType,
};

use super::App;
use super::controlplane::{self as cpx, api};
use crate::cli::AdoptArgs;
use crate::kubeconfig::{Kubeconfig, KubeconfigFiles, NamedUser};
use crate::output::kube_error;

/// KubeFlex's checks, plus loopback in `host:port` form (§14.3 #33).
pub fn validate_url(u: &str) -> anyhow::Result<()> {
    let bad = || {
        anyhow!(
            "invalid server endpoint \"{u}\". Please provide a valid value with the `url-override` option"
        )
    };
    let (scheme, rest) = u.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(bad());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_string()
    } else if authority.matches(':').count() > 1 {
        authority.to_string()
    } else {
        authority.split(':').next().unwrap_or_default().to_string()
    };
    if host.is_empty() || matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        return Err(bad());
    }
    Ok(())
}

/// The bootstrap kubeconfig: the adopted context, its cluster (server
/// overridden if asked) and its user renamed to the context.
pub fn bootstrap(src: &Kubeconfig, context: &str, url: Option<&str>) -> anyhow::Result<Kubeconfig> {
    let ctx = src
        .context(context)
        .ok_or_else(|| anyhow!("context {context} not found in the kubeconfig"))?;
    let mut cluster = src.cluster(&ctx.context.cluster).cloned().ok_or_else(|| {
        anyhow!(
            "cluster {} not found for context {context}",
            ctx.context.cluster
        )
    })?;
    let user = src.user(&ctx.context.user).ok_or_else(|| {
        anyhow!(
            "authInfo {} not found for context {context}",
            ctx.context.user
        )
    })?;
    if let Some(u) = url {
        validate_url(u)?;
        cluster.cluster.server = u.into();
    }
    let mut c = ctx.clone();
    c.context.user = context.into();
    let mut out = Kubeconfig::empty();
    out.clusters.push(cluster);
    out.users.push(NamedUser {
        name: context.into(),
        user: user.user.clone(),
    });
    out.contexts.push(c);
    out.current_context = context.into();
    Ok(out)
}

pub async fn run(app: &App, a: AdoptArgs) -> anyhow::Result<()> {
    cpx::validate_name(&a.name)?;
    let name = a.name.clone();
    let (loaded, mut kc) = app.load()?;
    let src = match &a.adopted_kubeconfig {
        Some(p) => KubeconfigFiles {
            paths: vec![p.clone()],
            explicit: true,
        }
        .load()?
        .config()
        .clone(),
        None => kc.clone(),
    };
    let boot = bootstrap(&src, &a.adopted_context, a.url_override.as_deref())?;
    let (hook, vars, _) = cpx::hooks_from_flags(a.postcreate_hook.as_slice(), &a.set)?;
    let hosting = app.hosting(&mut kc).await?;
    let cps = api(&hosting.client);
    if let Some(existing) = cps
        .get_opt(&name)
        .await
        .map_err(|e| anyhow!(kube_error(&e)))?
    {
        cpx::refuse_if_managed(&existing, "adopt")?;
        bail!("control plane {name} already exists; delete it first with `kflex delete {name}`");
    }
    let mut step = app.out.step(&format!(
        "Adopting control plane {name} of type external ..."
    ));
    let secret_name = format!("{name}-bootstrap");
    let ns = kubeflex_operator::names::SYSTEM_NAMESPACE;
    let yaml = boot.to_yaml(std::path::Path::new("bootstrap kubeconfig"))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [(
                "kubeconfig-incluster".to_string(),
                ByteString(yaml.into_bytes()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(hosting.client.clone(), ns)
        .patch(
            &secret_name,
            &PatchParams::apply("kflex").force(),
            &Patch::Apply(&secret),
        )
        .await
        .map_err(|e| anyhow!("writing Secret {ns}/{secret_name}: {}", kube_error(&e)))?;
    let spec = ControlPlaneSpec {
        type_: ControlPlaneType::External,
        token_expiration_seconds: Some(a.expiration_seconds),
        bootstrap_secret_ref: Some(BootstrapSecretReference {
            name: secret_name,
            namespace: ns.into(),
            in_cluster_key: "kubeconfig-incluster".into(),
        }),
        post_create_hook: hook,
        post_create_hook_vars: vars,
        ..ControlPlaneSpec::default()
    };
    if let Err(e) = cps
        .create(&PostParams::default(), &ControlPlane::new(&name, spec))
        .await
    {
        step.fail();
        bail!("error creating control plane {name}: {}", kube_error(&e));
    }
    if !a.wait {
        step.done(&format!(
            "control plane {name} adopted (run `kflex ctx {name}` once it is Ready)"
        ));
        return Ok(());
    }
    let cp = match cpx::wait_ready(&hosting.client, &name, a.timeout, false, &mut step).await {
        Ok(cp) => cp,
        Err(e) => {
            step.fail();
            return Err(e);
        }
    };
    let note = cpx::merge_from_server(&mut kc, &hosting.client, &cp, &hosting.context).await?;
    app.out.detail(&note);
    kc.current_context.clone_from(&name);
    app.save(&loaded, &kc, true)?;
    step.done(&format!(
        "control plane {name} adopted and ready; current context is {name}"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_url;

    #[test]
    fn url_override_rules() {
        for ok in [
            "https://10.0.0.1:6443",
            "http://api.example.com",
            "https://[fd00::1]:6443",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://x",
            "https://",
            "https://u@h",
            "https://h?q=1",
            "https://h#f",
            "https://127.0.0.1",
            "https://127.0.0.1:6443",
            "https://localhost:6443",
            "https://[::1]:6443",
            "x",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }
}
