//! The hosting context: which kube context reaches the cluster that serves
//! the ControlPlane API (§11.2, §11.3), kept in kflex's kubeconfig
//! extensions, and checked before it is followed. A stale record (context
//! gone, its cluster gone, server unreachable, no ControlPlane API there) is
//! explained in one line with the fix, never followed blindly.

use std::collections::BTreeMap;
use std::time::Duration;

use kubeflex_operator::api::ControlPlane;
use serde_json::{Value, json};

use crate::kubeconfig::{EXTENSION_NAME, Kubeconfig, NamedContext, NamedExtension};

/// Global extension key naming the hosting context.
pub const KEY_HOSTING: &str = "hosting-cluster-ctx-name";
/// Legacy global key, read when [`KEY_HOSTING`] is empty.
pub const KEY_LEGACY_HOSTING: &str = "kflex-initial-ctx-name";
/// Context extension key flagging the hosting context.
pub const KEY_IS_HOSTING: &str = "is-hosting-cluster-ctx";
/// Context extension key naming the control plane a context reaches.
pub const KEY_CONTROLPLANE: &str = "controlplane-name";

const FIX: &str = "fix: `kubectl config use-context <hosting context>` then `kflex ctx --set-current-for-hosting`, or `kflex config set-hosting <context>`";

/// Why the hosting context cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostingError {
    #[error("the hosting cluster context is not known; {FIX}")]
    NotKnown,
    #[error("the saved hosting context '{0}' no longer exists in the kubeconfig; {FIX}")]
    ContextGone(String),
    #[error("the saved hosting context '{0}' does not reference a cluster; {FIX}")]
    NoCluster(String),
    #[error(
        "cluster '{cluster}' of the saved hosting context '{context}' no longer exists in the kubeconfig; {FIX}"
    )]
    ClusterGone { context: String, cluster: String },
    #[error("cluster '{cluster}' of the saved hosting context '{context}' has no server; {FIX}")]
    NoServer { context: String, cluster: String },
    #[error(
        "the hosting context '{context}' cannot be reached ({reason}); if the cluster moved, {FIX}"
    )]
    Unreachable { context: String, reason: String },
    #[error(
        "the hosting context '{0}' reaches a cluster without the ControlPlane API (tenancy.kflex.kubestellar.org/v1alpha1): run `kflex init` there, or {FIX}"
    )]
    NoApi(String),
    #[error("context '{0}' must exist within kubeconfig")]
    MissingContext(String),
}

/// The `data` map of the `kubeflex` extension in `exts`.
pub fn ext_data(exts: &[NamedExtension]) -> Option<BTreeMap<String, String>> {
    let e = exts.iter().find(|e| e.name == EXTENSION_NAME)?;
    let data = e.extension.get("data")?.as_object()?;
    Some(
        data.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
    )
}

fn new_extension(data: BTreeMap<String, String>) -> NamedExtension {
    NamedExtension {
        name: EXTENSION_NAME.into(),
        extension: json!({
            "metadata": {"name": EXTENSION_NAME, "creationTimestamp": crate::output::now_rfc3339()},
            "data": data,
        }),
    }
}

/// Sets `key` in the `kubeflex` extension, keeping its other keys and metadata.
pub fn set_ext_key(exts: &mut Vec<NamedExtension>, key: &str, value: &str) {
    match exts.iter_mut().find(|e| e.name == EXTENSION_NAME) {
        Some(e) => {
            if !e.extension.is_object() {
                e.extension = json!({});
            }
            let obj = e.extension.as_object_mut();
            if let Some(obj) = obj {
                obj.entry("metadata")
                    .or_insert_with(|| json!({"name": EXTENSION_NAME}));
                let data = obj.entry("data").or_insert_with(|| json!({}));
                if !data.is_object() {
                    *data = json!({});
                }
                if let Some(d) = data.as_object_mut() {
                    d.insert(key.into(), Value::String(value.into()));
                }
            }
        }
        None => exts.push(new_extension(BTreeMap::from([(
            key.to_string(),
            value.to_string(),
        )]))),
    }
}

/// Removes `key` from the `kubeflex` extension (the extension stays).
pub fn remove_ext_key(exts: &mut [NamedExtension], key: &str) {
    if let Some(d) = exts
        .iter_mut()
        .find(|e| e.name == EXTENSION_NAME)
        .and_then(|e| e.extension.get_mut("data"))
        .and_then(Value::as_object_mut)
    {
        d.remove(key);
    }
}

/// The control plane a context was made for, if kflex made it.
pub fn controlplane_of(ctx: &NamedContext) -> Option<String> {
    ext_data(&ctx.context.extensions)?
        .remove(KEY_CONTROLPLANE)
        .filter(|s| !s.is_empty())
}

/// Whether kflex manages the context (it has a `kubeflex` extension).
pub fn is_managed(ctx: &NamedContext) -> bool {
    ctx.context
        .extensions
        .iter()
        .any(|e| e.name == EXTENSION_NAME)
}

/// The stored hosting context name (legacy key as fallback).
pub fn stored(kc: &Kubeconfig) -> Option<String> {
    let data = ext_data(&kc.extensions)?;
    data.get(KEY_HOSTING)
        .filter(|s| !s.is_empty())
        .or_else(|| data.get(KEY_LEGACY_HOSTING).filter(|s| !s.is_empty()))
        .cloned()
}

/// "Set hosting context to X" (§11.2), also unflagging any other context
/// (KubeFlex leaves the old one flagged, §14.3 #35).
pub fn set(kc: &mut Kubeconfig, context: &str) -> Result<(), HostingError> {
    if kc.context(context).is_none() {
        return Err(HostingError::MissingContext(context.into()));
    }
    kc.extensions.retain(|e| e.name != EXTENSION_NAME);
    kc.extensions.push(new_extension(BTreeMap::from([(
        KEY_HOSTING.to_string(),
        context.to_string(),
    )])));
    for c in &mut kc.contexts {
        if c.name == context {
            set_ext_key(&mut c.context.extensions, KEY_IS_HOSTING, "true");
        } else if ext_data(&c.context.extensions).is_some_and(|d| d.contains_key(KEY_IS_HOSTING)) {
            remove_ext_key(&mut c.context.extensions, KEY_IS_HOSTING);
        }
    }
    Ok(())
}

/// The stored hosting context, checked against the kubeconfig only.
pub fn check_stored(kc: &Kubeconfig) -> Result<String, HostingError> {
    let name = stored(kc).ok_or(HostingError::NotKnown)?;
    check_context(kc, &name)?;
    Ok(name)
}

/// The context exists, names a cluster that exists and has a server.
pub fn check_context(kc: &Kubeconfig, name: &str) -> Result<(), HostingError> {
    let ctx = kc
        .context(name)
        .ok_or_else(|| HostingError::ContextGone(name.into()))?;
    if ctx.context.cluster.is_empty() {
        return Err(HostingError::NoCluster(name.into()));
    }
    let cluster = kc
        .cluster(&ctx.context.cluster)
        .ok_or_else(|| HostingError::ClusterGone {
            context: name.into(),
            cluster: ctx.context.cluster.clone(),
        })?;
    if cluster.cluster.server.is_empty() {
        return Err(HostingError::NoServer {
            context: name.into(),
            cluster: ctx.context.cluster.clone(),
        });
    }
    Ok(())
}

/// A kube client for `context`, with short timeouts for probes.
pub async fn client(kc: &Kubeconfig, context: &str) -> Result<kube::Client, String> {
    let k = kc.for_kube(context)?;
    let opts = kube::config::KubeConfigOptions {
        context: Some(context.into()),
        ..Default::default()
    };
    let mut cfg = kube::Config::from_custom_kubeconfig(k, &opts)
        .await
        .map_err(|e| crate::output::kube_error(&e.into()))?;
    cfg.connect_timeout = Some(Duration::from_secs(5));
    cfg.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(cfg).map_err(|e| crate::output::kube_error(&e))
}

/// Live check: the context's cluster answers and serves `controlplanes`.
pub async fn probe(kc: &Kubeconfig, context: &str) -> Result<kube::Client, HostingError> {
    let unreachable = |reason: String| HostingError::Unreachable {
        context: context.into(),
        reason,
    };
    let client = client(kc, context).await.map_err(unreachable)?;
    let req = http::Request::get(format!("/apis/{}", kubeflex_operator::api::API_VERSION))
        .body(Vec::new())
        .map_err(|e| unreachable(e.to_string()))?;
    match client
        .request::<k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList>(req)
        .await
    {
        Ok(list) if list.resources.iter().any(|r| r.name == "controlplanes") => Ok(client),
        Ok(_) => Err(HostingError::NoApi(context.into())),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(HostingError::NoApi(context.into())),
        Err(e) => Err(unreachable(crate::output::kube_error(&e))),
    }
}

/// The outcome of §11.3.
pub struct Resolved {
    /// The hosting context (now current unless `stay` was asked).
    pub context: String,
    pub client: kube::Client,
    /// What happened, for the user.
    pub note: &'static str,
}

/// §11.3, failing on an unknown or stale hosting context. With
/// `set_current`, the current context becomes the hosting one first.
/// Switches `kc`'s current context to the hosting one when the current
/// context does not reach it.
pub async fn resolve(kc: &mut Kubeconfig, set_current: bool) -> Result<Resolved, HostingError> {
    let current = kc.current_context.clone();
    if set_current {
        set(kc, &current)?;
    }
    if !current.is_empty()
        && kc.context(&current).is_some()
        && let Ok(client) = probe(kc, &current).await
    {
        if stored(kc).is_none() {
            set(kc, &current)?;
        }
        return Ok(Resolved {
            context: current,
            client,
            note: "Current context accesses the hosting cluster, using it",
        });
    }
    let hosting = check_stored(kc)?;
    let client = probe(kc, &hosting).await?;
    kc.current_context.clone_from(&hosting);
    Ok(Resolved {
        context: hosting,
        client,
        note: "Switching to hosting cluster context...",
    })
}

/// The stored hosting context, checked and probed, without switching.
pub async fn connect_stored(kc: &Kubeconfig) -> Result<(String, kube::Client), HostingError> {
    let hosting = check_stored(kc)?;
    let client = probe(kc, &hosting).await?;
    Ok((hosting, client))
}

/// Control plane `name` read through the stored hosting context, with no
/// discovery request first (`kflex ctx NAME` is on the everyday path): the
/// GET itself shows a cluster that cannot be reached, and only a 404 (no
/// such control plane, or no ControlPlane API there) costs the probe that
/// tells the two apart, so a stale record is explained as
/// [`connect_stored`] would.
pub async fn read_stored(
    kc: &Kubeconfig,
    name: &str,
) -> Result<(String, kube::Client, Option<ControlPlane>), HostingError> {
    let hosting = check_stored(kc)?;
    let unreachable = |reason: String| HostingError::Unreachable {
        context: hosting.clone(),
        reason,
    };
    let client = client(kc, &hosting).await.map_err(unreachable)?;
    match kube::Api::<ControlPlane>::all(client.clone())
        .get_opt(name)
        .await
    {
        Ok(Some(cp)) => Ok((hosting, client, Some(cp))),
        Ok(None) | Err(kube::Error::Api(_)) => {
            // Same answers as the probe for the API's absence and for
            // other API errors (a rejected token, ...).
            let client = probe(kc, &hosting).await?;
            Ok((hosting, client, None))
        }
        Err(e) => Err(unreachable(crate::output::kube_error(&e))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::Path;

    const KC: &str = r#"
clusters:
- name: kind
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: kind
  context: {cluster: kind, user: kind}
- name: other
  context:
    cluster: kind
    user: kind
    extensions:
    - name: kubeflex
      extension:
        metadata: {name: kubeflex}
        data: {is-hosting-cluster-ctx: "true", keep: "me"}
current-context: kind
"#;

    #[test]
    fn set_replaces_global_and_moves_the_flag() {
        let mut kc = Kubeconfig::parse(KC, Path::new("k")).unwrap();
        set(&mut kc, "kind").unwrap();
        assert_eq!(stored(&kc).as_deref(), Some("kind"));
        let kind = ext_data(&kc.context("kind").unwrap().context.extensions).unwrap();
        assert_eq!(kind[KEY_IS_HOSTING], "true");
        let other = ext_data(&kc.context("other").unwrap().context.extensions).unwrap();
        assert!(!other.contains_key(KEY_IS_HOSTING));
        assert_eq!(other["keep"], "me");
        assert_eq!(
            set(&mut kc, "nope").unwrap_err().to_string(),
            "context 'nope' must exist within kubeconfig"
        );
    }

    #[test]
    fn legacy_key_is_read() {
        let mut kc = Kubeconfig::parse(KC, Path::new("k")).unwrap();
        kc.extensions.push(NamedExtension {
            name: "kubeflex".into(),
            extension: json!({"data": {"kflex-initial-ctx-name": "kind"}}),
        });
        assert_eq!(stored(&kc).as_deref(), Some("kind"));
    }

    #[test]
    fn stale_records_are_named_with_the_fix() {
        let mut kc = Kubeconfig::parse(KC, Path::new("k")).unwrap();
        assert_eq!(check_stored(&kc), Err(HostingError::NotKnown));
        set(&mut kc, "other").unwrap();
        assert_eq!(check_stored(&kc).unwrap(), "other");
        kc.remove_cluster("kind");
        let e = check_stored(&kc).unwrap_err();
        assert!(matches!(e, HostingError::ClusterGone { .. }));
        assert!(e.to_string().contains("kflex config set-hosting"), "{e}");
        kc.remove_context("other");
        assert_eq!(
            check_stored(&kc),
            Err(HostingError::ContextGone("other".into()))
        );
    }
}
