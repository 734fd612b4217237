//! What `create`, `adopt`, `ctx` and `delete` share: names, hook flags,
//! waiting for `Ready`, and merging a control plane's kubeconfig (§7.2).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kubeflex_operator::api::{
    ConditionReason, ConditionType, ControlPlane, ControlPlaneType, PostCreateHookUse,
};

use crate::hosting::{self, KEY_CONTROLPLANE};
use crate::kubeconfig::{Kubeconfig, NamedCluster, NamedContext, NamedUser};
use crate::output::{Step, kube_error};

/// The reconciler's provenance label (reconciler/src/names.rs `LABEL_SOURCE`;
/// a test keeps them equal).
pub const LABEL_SOURCE: &str = "gitops.kflex.kubestellar.org/source";
/// The reconciler's annotations (same file).
pub const ANNOTATION_URL: &str = "gitops.kflex.kubestellar.org/url";
pub const ANNOTATION_PATH: &str = "gitops.kflex.kubestellar.org/path";
pub const ANNOTATION_COMMIT: &str = "gitops.kflex.kubestellar.org/commit";

/// `Ready` reasons that need a person: waiting longer does not help.
pub use kubeflex_operator::status::REASONS_NEEDING_A_PERSON;

/// Longest control plane name: its namespace `<name>-system` is a label.
pub const MAX_NAME: usize = 63 - "-system".len();

pub fn api(client: &kube::Client) -> Api<ControlPlane> {
    Api::all(client.clone())
}

/// A DNS-1123 label short enough for `<name>-system`.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        bail!(
            "invalid control plane name \"{name}\": use lowercase letters, digits and '-', starting and ending with a letter or digit, at most {MAX_NAME} characters"
        )
    }
}

/// The Git source managing `cp`, if the reconciler applied it.
pub fn git_source(cp: &ControlPlane) -> Option<String> {
    cp.metadata.labels.as_ref()?.get(LABEL_SOURCE).cloned()
}

/// The refusal for control planes the reconciler owns.
pub fn refuse_if_managed(cp: &ControlPlane, verb: &str) -> anyhow::Result<()> {
    if let Some(src) = git_source(cp) {
        let name = cp.metadata.name.clone().unwrap_or_default();
        let path = cp
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_PATH))
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        bail!(
            "control plane {name} is managed from Git by source '{src}'{path}; a direct {verb} would be undone by the reconciler: change it in Git instead (`kflex create {name} --git`)"
        );
    }
    Ok(())
}

/// KubeFlex's `--set` parsing: `key=value`, split at the first `=`, trimmed,
/// empty items skipped.
fn parse_set(expr: &str) -> anyhow::Result<Option<(String, String)>> {
    let e = expr.trim();
    if e.is_empty() {
        return Ok(None);
    }
    let (k, v) = e.split_once('=').ok_or_else(|| {
        anyhow!("unexpected expression \"{expr}\". Must be in the form 'key=value'")
    })?;
    let k = k.trim();
    if k.is_empty() {
        bail!("invalid key in expression \"{expr}\"");
    }
    Ok(Some((k.to_string(), v.trim().to_string())))
}

/// `spec.postCreateHook`, `spec.postCreateHookVars`, `spec.postCreateHooks`.
pub type HookFields = (
    Option<String>,
    Option<BTreeMap<String, String>>,
    Option<Vec<PostCreateHookUse>>,
);

/// Hooks from flags: one hook is KubeFlex's `postCreateHook` +
/// `postCreateHookVars`; several become `postCreateHooks` entries, with
/// `HOOK:key=value` setting one hook's var.
pub fn hooks_from_flags(hooks: &[String], sets: &[String]) -> anyhow::Result<HookFields> {
    match hooks {
        [] => {
            if sets.iter().any(|s| !s.trim().is_empty()) {
                bail!("--set needs --postcreate-hook");
            }
            Ok((None, None, None))
        }
        [one] => {
            let mut vars = BTreeMap::new();
            for s in sets {
                let s = s.strip_prefix(&format!("{one}:")).unwrap_or(s);
                if let Some((k, v)) = parse_set(s)? {
                    vars.insert(k, v);
                }
            }
            Ok((Some(one.clone()), Some(vars), None))
        }
        many => {
            let mut uses: Vec<PostCreateHookUse> = many
                .iter()
                .map(|h| PostCreateHookUse {
                    hook_name: h.clone(),
                    vars: None,
                })
                .collect();
            for s in sets {
                let (hook, expr) = s.split_once(':').filter(|(h, _)| !h.contains('=')).ok_or_else(|| {
                    anyhow!("with several --postcreate-hook, --set takes HOOK:key=value (got \"{s}\")")
                })?;
                let u = uses
                    .iter_mut()
                    .find(|u| u.hook_name == hook)
                    .ok_or_else(|| {
                        anyhow!(
                            "--set {s}: hook '{hook}' is not one of the --postcreate-hook values"
                        )
                    })?;
                if let Some((k, v)) = parse_set(expr)? {
                    u.vars.get_or_insert_with(BTreeMap::new).insert(k, v);
                }
            }
            Ok((None, None, Some(uses)))
        }
    }
}

/// `(status, reason, message)` of a condition.
pub fn condition(cp: &ControlPlane, type_: &str) -> Option<(String, String, String)> {
    cp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Polls `name` until Ready (and, with `hooks`, hooks completed), showing
/// the current step; stops at once on a reason that needs a person.
pub async fn wait_ready(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
    hooks: bool,
    step: &mut Step,
) -> anyhow::Result<ControlPlane> {
    let api = api(client);
    let start = Instant::now();
    let mut last = String::from("waiting for the operator to pick it up");
    loop {
        let cp = api
            .get_opt(name)
            .await
            .map_err(|e| anyhow!("reading control plane {name}: {}", kube_error(&e)))?
            .ok_or_else(|| anyhow!("control plane {name} was deleted while waiting for it"))?;
        if let Some((status, reason, message)) = condition(&cp, ConditionType::READY) {
            if REASONS_NEEDING_A_PERSON.contains(&reason.as_str()) {
                bail!("control plane {name} is not ready ({reason}): {message}");
            }
            let hooks_done = !hooks
                || cp
                    .status
                    .as_ref()
                    .and_then(|s| s.post_create_hook_completed)
                    .unwrap_or(true);
            if status == "True" && hooks_done {
                return Ok(cp);
            }
            last = if message.is_empty() {
                reason.clone()
            } else {
                format!("{reason}: {message}")
            };
            if status == "True" {
                last = "waiting for PostCreateHooks".into();
            } else if reason == ConditionReason::UNAVAILABLE
                && let Some((s, r, m)) = condition(&cp, ConditionType::SYNCED)
                && s == "False"
            {
                last = format!("{r}: {m}");
            }
            step.update(&format!("{name}: {last}"));
        }
        if start.elapsed() > timeout {
            bail!(
                "timed out after {} waiting for control plane {name} to become Ready (last: {last}); it is still being created: see `kubectl get controlplane {name} -o yaml`",
                crate::output::go_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Fetches `cp`'s kubeconfig and merges it into `kc` under
/// `<cp>`/`<cp>-cluster`/`<cp>-admin` with the `controlplane-name`
/// extension; for `host`, context `<cp>` is a copy of the hosting context.
/// Returns a note on what was used.
pub async fn merge_from_server(
    kc: &mut Kubeconfig,
    client: &kube::Client,
    cp: &ControlPlane,
    hosting_ctx: &str,
) -> anyhow::Result<String> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    if cp.spec.type_ == ControlPlaneType::Host {
        let mut c = kc
            .context(hosting_ctx)
            .cloned()
            .ok_or_else(|| anyhow!("hosting context '{hosting_ctx}' is missing"))?;
        c.name.clone_from(&name);
        // The copy is not the hosting context itself.
        c.context
            .extensions
            .retain(|e| e.name != crate::kubeconfig::EXTENSION_NAME);
        hosting::set_ext_key(&mut c.context.extensions, KEY_CONTROLPLANE, &name);
        kc.upsert_context(c);
        return Ok(format!(
            "control plane {name} is of type 'host': context {name} reaches the hosting cluster ({hosting_ctx})"
        ));
    }
    let r = cp
        .status
        .as_ref()
        .and_then(|s| s.secret_ref.clone())
        .ok_or_else(|| anyhow!("control plane {name} has no kubeconfig yet (status.secretRef is empty); wait until it is Ready"))?;
    // `external` control planes have only the in-cluster key (the adopted
    // cluster's own server), which works from outside too.
    let (key, note) = if cp.spec.type_ == ControlPlaneType::External || r.key.is_empty() {
        (
            r.in_cluster_key.clone(),
            format!(
                "using key '{}' of Secret {}/{}",
                r.in_cluster_key, r.namespace, r.name
            ),
        )
    } else {
        (
            r.key.clone(),
            format!("using key '{}' of Secret {}/{}", r.key, r.namespace, r.name),
        )
    };
    let secret = Api::<Secret>::namespaced(client.clone(), &r.namespace)
        .get_opt(&r.name)
        .await
        .map_err(|e| {
            anyhow!(
                "reading Secret {}/{}: {}",
                r.namespace,
                r.name,
                kube_error(&e)
            )
        })?
        .ok_or_else(|| {
            anyhow!(
                "Secret {}/{} of control plane {name} does not exist yet",
                r.namespace,
                r.name
            )
        })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&key))
        .map(|b| b.0.clone())
        .ok_or_else(|| anyhow!("Secret {}/{} has no key '{key}'", r.namespace, r.name))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("Secret {}/{} key '{key}' is not text", r.namespace, r.name))?;
    let source = std::path::PathBuf::from(format!("Secret {}/{} key {key}", r.namespace, r.name));
    let remote = Kubeconfig::parse(&text, &source).context("the control plane's kubeconfig")?;
    let (cluster, user, context) = pick(&remote).ok_or_else(|| {
        anyhow!(
            "Secret {}/{} key '{key}' has no usable context",
            r.namespace,
            r.name
        )
    })?;
    let cluster_name = format!("{name}-cluster");
    let user_name = format!("{name}-admin");
    let mut ctx = NamedContext {
        name: name.clone(),
        context: context.context.clone(),
    };
    ctx.context.cluster.clone_from(&cluster_name);
    ctx.context.user.clone_from(&user_name);
    hosting::set_ext_key(&mut ctx.context.extensions, KEY_CONTROLPLANE, &name);
    kc.upsert_cluster(NamedCluster {
        name: cluster_name,
        cluster: cluster.cluster.clone(),
    });
    kc.upsert_user(NamedUser {
        name: user_name,
        user: user.user.clone(),
    });
    kc.upsert_context(ctx);
    Ok(note)
}

/// The current (else first) context of a one-context kubeconfig, with its
/// cluster and user.
fn pick(kc: &Kubeconfig) -> Option<(&NamedCluster, &NamedUser, &NamedContext)> {
    let ctx = kc
        .context(&kc.current_context)
        .or_else(|| kc.contexts.first())?;
    Some((
        kc.cluster(&ctx.context.cluster)?,
        kc.user(&ctx.context.user)?,
        ctx,
    ))
}

/// Removes context `<name>` and, when it points at them, `<name>-cluster`
/// and `<name>-admin`. Whether the context existed.
pub fn remove_local(kc: &mut Kubeconfig, name: &str) -> bool {
    let had = kc.context(name).cloned();
    kc.remove_context(name);
    let cluster = format!("{name}-cluster");
    let user = format!("{name}-admin");
    let still_used = |kc: &Kubeconfig, c: &str| kc.contexts.iter().any(|x| x.context.cluster == c);
    if !still_used(kc, &cluster) {
        kc.remove_cluster(&cluster);
    }
    if !kc.contexts.iter().any(|x| x.context.user == user) {
        kc.remove_user(&user);
    }
    had.is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names() {
        validate_name("cp1").unwrap();
        for bad in ["", "Cp", "-a", "a-", "a_b", &"a".repeat(57)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        validate_name(&"a".repeat(56)).unwrap();
    }

    #[test]
    fn set_parsing_is_kubeflex_s() {
        let (h, v, u) =
            hooks_from_flags(&["hk".into()], &["a = 1".into(), "".into(), "b=x=y".into()]).unwrap();
        assert_eq!(h.as_deref(), Some("hk"));
        let v = v.unwrap();
        assert_eq!(v["a"], "1");
        assert_eq!(v["b"], "x=y");
        assert!(u.is_none());
        assert_eq!(
            hooks_from_flags(&["hk".into()], &["novalue".into()])
                .unwrap_err()
                .to_string(),
            "unexpected expression \"novalue\". Must be in the form 'key=value'"
        );
        assert_eq!(
            hooks_from_flags(&["hk".into()], &["=v".into()])
                .unwrap_err()
                .to_string(),
            "invalid key in expression \"=v\""
        );
        let (_, _, u) = hooks_from_flags(&["a".into(), "b".into()], &["b:k=v".into()]).unwrap();
        let u = u.unwrap();
        assert_eq!(u[0].vars, None);
        assert_eq!(u[1].vars.as_ref().unwrap()["k"], "v");
        assert!(hooks_from_flags(&["a".into(), "b".into()], &["c:k=v".into()]).is_err());
    }

    #[test]
    fn provenance_constants_match_the_reconciler() {
        let names = include_str!("../../../reconciler/src/names.rs");
        for (c, v) in [
            ("LABEL_SOURCE", LABEL_SOURCE),
            ("ANNOTATION_URL", ANNOTATION_URL),
            ("ANNOTATION_PATH", ANNOTATION_PATH),
            ("ANNOTATION_COMMIT", ANNOTATION_COMMIT),
        ] {
            assert!(
                names.contains(&format!("pub const {c}: &str = \"{v}\";")),
                "{c}"
            );
        }
    }
}
