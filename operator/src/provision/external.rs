//! Type `external`: adopt an existing cluster. With the bootstrap
//! kubeconfig the operator creates ServiceAccount `kube-system/kubeflex-<cp>`
//! and its cluster-admin binding `kubeflex-<cp>` in the adopted cluster, mints a token
//! (TokenRequest), stores `admin-kubeconfig`, and deletes the bootstrap
//! Secret. Later passes only refresh the token, with the stored token
//! itself, before it expires. Problems the user must fix become `blocked`
//! messages, never crashes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

use super::{Observed, secret_data, text};
use crate::api::ControlPlane;
use crate::builders::external::{self, ADOPTED_NAMESPACE, adopted_name};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::kubeconfig::{self, Kubeconfig, SingleContext};
use crate::names;
use crate::profile::Profile;

/// Timeout of calls to an adopted cluster.
const ADOPTED_TIMEOUT: Duration = Duration::from_secs(10);

/// `(iat, exp)` of a JWT, without verifying it (we minted it).
fn jwt_window(token: &str) -> Option<(i64, i64)> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some((claims["iat"].as_i64()?, claims["exp"].as_i64()?))
}

/// How long until `token` is due for refresh (when less than `fraction` of
/// its life is left); `Some(ZERO)` when due now; `None` when it carries no
/// expiry we can read (then it is not refreshed).
pub fn token_refresh_due(token: &str, fraction: f64, now: Timestamp) -> Option<Duration> {
    let (iat, exp) = jwt_window(token)?;
    let life = (exp - iat).max(0) as f64;
    let due_at = exp - (life * fraction) as i64;
    Some(Duration::from_secs(
        u64::try_from(due_at - now.as_second()).unwrap_or(0),
    ))
}

/// A client for a kubeconfig (never logged: the error text is ours).
pub(crate) async fn client_for(kc: &Kubeconfig) -> std::result::Result<Client, String> {
    let yaml = kubeconfig::to_yaml(kc, "adopted kubeconfig").map_err(|e| e.to_string())?;
    let parsed = kube::config::Kubeconfig::from_yaml(&yaml)
        .map_err(|_| "unusable kubeconfig".to_string())?;
    let mut config =
        kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("unusable kubeconfig: {e}"))?;
    config.connect_timeout = Some(ADOPTED_TIMEOUT);
    config.read_timeout = Some(ADOPTED_TIMEOUT);
    Client::try_from(config).map_err(|e| e.to_string())
}

fn single_as_kubeconfig(single: &SingleContext) -> Kubeconfig {
    Kubeconfig {
        api_version: "v1".into(),
        clusters: vec![single.cluster.clone()],
        contexts: vec![single.context.clone()],
        current_context: single.context.name.clone(),
        kind: "Config".into(),
        users: vec![single.user.clone()],
        ..Kubeconfig::default()
    }
}

/// The ServiceAccount name a token of ours was minted for (claim `sub`,
/// `system:serviceaccount:kube-system:NAME`): a control plane adopted
/// before names were per control plane keeps KubeFlex's `kubeflex`.
pub fn token_service_account(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let sub = claims["sub"].as_str()?;
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (ns == ADOPTED_NAMESPACE && !name.is_empty()).then(|| name.to_string())
}

/// Mints a token for the adopted ServiceAccount `sa`.
async fn mint(
    client: &Client,
    cp: &ControlPlane,
    sa: &str,
) -> std::result::Result<String, kube::Error> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ADOPTED_NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(cp.spec.token_expiration_seconds.unwrap_or(31_536_000)),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let minted = sas
        .create_token_request(sa, &PostParams::default(), &request)
        .await?;
    Ok(minted.status.map(|s| s.token).unwrap_or_default())
}

/// Role and RoleBinding letting the adopted ServiceAccount delete itself
/// after its cluster-admin binding is gone (deletion removes the binding
/// first, with the SA's own token). Owned by the ServiceAccount, so the
/// adopted cluster's garbage collector removes them with it.
fn self_cleanup_rbac(cp: &ControlPlane, sa: &ServiceAccount) -> (Role, RoleBinding) {
    let cp_name = cp.name_any();
    let (sa_name, name) = (adopted_name(&cp_name), self_cleanup_name(&cp_name));
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(ADOPTED_NAMESPACE.into()),
        labels: Some(crate::meta::labels(&cp.name_any(), "adopted-access")),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ServiceAccount".into(),
            name: sa_name.clone(),
            uid: sa.uid().unwrap_or_default(),
            ..OwnerReference::default()
        }]),
        ..ObjectMeta::default()
    };
    let role = Role {
        metadata: metadata.clone(),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["serviceaccounts".into()]),
            resource_names: Some(vec![sa_name.clone()]),
            verbs: vec!["get".into(), "list".into(), "delete".into()],
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa_name,
            namespace: Some(ADOPTED_NAMESPACE.into()),
            ..Subject::default()
        }]),
    };
    (role, binding)
}

/// Name of the self-cleanup Role and RoleBinding in the adopted cluster.
fn self_cleanup_name(cp_name: &str) -> String {
    crate::meta::bounded_name("kubeflex-self-cleanup-", cp_name, 63)
}

/// Creates the adopted objects and mints a token with the bootstrap credentials.
async fn adopt(client: &Client, cp: &ControlPlane) -> std::result::Result<String, kube::Error> {
    let pp = PatchParams::apply(names::FIELD_MANAGER).force();
    let cp_name = cp.name_any();
    let (name, cleanup) = (adopted_name(&cp_name), self_cleanup_name(&cp_name));
    let sa = external::adopted_service_account(cp);
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), ADOPTED_NAMESPACE)
        .patch(&name, &pp, &Patch::Apply(&sa))
        .await?;
    let (role, binding) = self_cleanup_rbac(cp, &sa);
    Api::<Role>::namespaced(client.clone(), ADOPTED_NAMESPACE)
        .patch(&cleanup, &pp, &Patch::Apply(&role))
        .await?;
    Api::<RoleBinding>::namespaced(client.clone(), ADOPTED_NAMESPACE)
        .patch(&cleanup, &pp, &Patch::Apply(&binding))
        .await?;
    let crb = external::adopted_cluster_role_binding(cp);
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&name, &pp, &Patch::Apply(&crb))
        .await?;
    mint(client, cp, &name).await
}

/// The bootstrap kubeconfig's only context, or what the user must fix.
async fn bootstrap(
    cp: &ControlPlane,
    ctx: &Context,
) -> Result<std::result::Result<(SingleContext, String, String), String>> {
    let Some(r) = &cp.spec.bootstrap_secret_ref else {
        return Ok(Err("spec.bootstrapSecretRef is missing: set it to the Secret (namespace, name, inClusterKey) holding the kubeconfig of the cluster to adopt, e.g. with `kflex adopt`".into()));
    };
    let Some(data) = secret_data(ctx, &r.namespace, &r.name).await? else {
        return Ok(Err(format!(
            "bootstrap Secret {}/{} does not exist: create it with the kubeconfig of the cluster to adopt under key {}",
            r.namespace, r.name, r.in_cluster_key
        )));
    };
    let Some(yaml) = text(&data, &r.in_cluster_key) else {
        return Ok(Err(format!(
            "bootstrap Secret {}/{} has no key {}: put the kubeconfig of the cluster to adopt there, or fix spec.bootstrapSecretRef.inClusterKey",
            r.namespace, r.name, r.in_cluster_key
        )));
    };
    let what = format!(
        "bootstrap Secret {}/{} key {}",
        r.namespace, r.name, r.in_cluster_key
    );
    let parsed = match kubeconfig::parse(&yaml, &what)
        .and_then(|kc| kubeconfig::single_context(&kc, &what))
    {
        Ok(single) => single,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(Ok((parsed, r.namespace.clone(), r.name.clone())))
}

/// Provisions an `external` control plane.
pub async fn provision(cp: &ControlPlane, profile: &Profile, ctx: &Context) -> Result<Observed> {
    let mut observed = Observed::default();
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    let fraction = ctx.config.pki.renew_fraction;
    let stored = secret_data(ctx, &ns, names::SECRET_ADMIN_KUBECONFIG)
        .await?
        .and_then(|d| text(&d, names::KEY_KUBECONFIG_INCLUSTER))
        .and_then(|yaml| kubeconfig::parse(&yaml, "admin-kubeconfig").ok())
        .filter(|kc| kc.current_user().and_then(|u| u.token.as_ref()).is_some());

    if let Some(kc) = stored {
        let token = kc
            .current_user()
            .and_then(|u| u.token.clone())
            .unwrap_or_default();
        let due = token_refresh_due(&token, fraction, Timestamp::now());
        if due.is_none_or(|d| !d.is_zero()) {
            observed.requeue = due;
            return Ok(observed);
        }
        // Refresh with the stored (cluster-admin) token itself.
        let single = kubeconfig::single_context(&kc, "admin-kubeconfig").map_err(|source| {
            Error::Kubeconfig {
                cp: cp_name.clone(),
                source,
            }
        })?;
        let server = single.cluster.cluster.server.clone();
        let sa = token_service_account(&token).unwrap_or_else(|| adopted_name(&cp_name));
        let minted = match client_for(&kc).await {
            Ok(client) => mint(&client, cp, &sa).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match minted {
            Ok(token) => {
                if let Some(secret) = external::admin_kubeconfig(cp, profile, &single, &token)? {
                    ctx.applier.apply(&secret).await?;
                }
                observed.steps.push((
                    "TokenRefreshed",
                    format!("refreshed the token in Secret {ns}/admin-kubeconfig"),
                ));
                observed.requeue = token_refresh_due(&token, fraction, Timestamp::now());
            }
            Err(e) => {
                // The current token still works until it expires: report, retry.
                observed.steps.push((
                    "TokenRefreshFailed",
                    format!("refreshing the token of the adopted cluster at {server} failed: {e}"),
                ));
                observed.requeue = Some(Duration::from_secs(30));
            }
        }
        return Ok(observed);
    }

    let (single, boot_ns, boot_name) = match bootstrap(cp, ctx).await? {
        Ok(b) => b,
        Err(message) => {
            observed.blocked = Some(message);
            return Ok(observed);
        }
    };
    let server = single.cluster.cluster.server.clone();
    let adopted = match client_for(&single_as_kubeconfig(&single)).await {
        Ok(client) => adopt(&client, cp).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let token = match adopted {
        Ok(token) if !token.is_empty() => token,
        Ok(_) => {
            observed.blocked = Some(format!(
                "the adopted cluster at {server} returned an empty token"
            ));
            return Ok(observed);
        }
        Err(e) => {
            observed.blocked = Some(format!(
                "cannot adopt the cluster at {server}: {e}; check that it is reachable from the operator and that the bootstrap kubeconfig grants cluster-admin"
            ));
            return Ok(observed);
        }
    };
    if let Some(secret) = external::admin_kubeconfig(cp, profile, &single, &token)? {
        ctx.applier.apply(&secret).await?;
    }
    // The bootstrap credentials are no longer needed; do not keep them around.
    match Api::<Secret>::namespaced(ctx.client.clone(), &boot_ns)
        .delete(&boot_name, &DeleteParams::default())
        .await
    {
        Ok(_) => ctx.metrics.write("Secret"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            return Err(Error::api(
                format!("deleting Secret {boot_ns}/{boot_name}"),
                e,
            ));
        }
    }
    observed.steps.push(("ClusterAdopted", format!("adopted the cluster at {server}; stored Secret {ns}/admin-kubeconfig and deleted the bootstrap Secret {boot_ns}/{boot_name}")));
    observed.requeue = token_refresh_due(&token, fraction, Timestamp::now());
    Ok(observed)
}

/// Deletion: removes the adopted cluster's objects (found by our labels)
/// with the stored credentials. `Ok(None)` when done (or nothing to do),
/// `Ok(Some(message))` when the cluster could not be reached.
pub async fn adopted_cleanup(cp: &ControlPlane, ctx: &Context) -> Result<Option<String>> {
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    let Some(kc) = secret_data(ctx, &ns, names::SECRET_ADMIN_KUBECONFIG)
        .await?
        .and_then(|d| text(&d, names::KEY_KUBECONFIG_INCLUSTER))
        .and_then(|yaml| kubeconfig::parse(&yaml, "admin-kubeconfig").ok())
    else {
        return Ok(None);
    };
    // Its own ServiceAccount: the one its token was minted for.
    let sa = kc
        .current_user()
        .and_then(|u| u.token.as_deref())
        .and_then(token_service_account)
        .unwrap_or_else(|| adopted_name(&cp_name));
    let client = match client_for(&kc).await {
        Ok(c) => c,
        Err(e) => return Ok(Some(format!("cannot reach the adopted cluster: {e}"))),
    };
    let selector = format!("{}={cp_name}", names::LABEL_CONTROL_PLANE);
    let lp = ListParams::default().labels(&selector);
    let result: std::result::Result<(), kube::Error> = async {
        let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
        for crb in crbs.list_metadata(&lp).await?.items {
            crbs.delete(&crb.name_any(), &DeleteParams::default())
                .await?;
        }
        // By name: the self-cleanup Role grants this one ServiceAccount only.
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ADOPTED_NAMESPACE);
        sas.delete(&sa, &DeleteParams::default()).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Ok(Some(format!(
            "removing ServiceAccount {ADOPTED_NAMESPACE}/{sa} and the ClusterRoleBindings labelled {selector} from the adopted cluster failed: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(iat: i64, exp: i64) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!("{{\"iat\":{iat},\"exp\":{exp}}}"));
        format!("e30.{payload}.sig")
    }

    #[test]
    fn tokens_are_refreshed_when_the_fraction_is_left() {
        let t = jwt(1_000, 2_000);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(
            token_refresh_due(&t, 0.3, at(1_100)),
            Some(Duration::from_secs(600))
        );
        assert_eq!(token_refresh_due(&t, 0.3, at(1_800)), Some(Duration::ZERO));
        assert_eq!(token_refresh_due("opaque", 0.3, at(0)), None);
    }

    #[test]
    fn the_own_service_account_comes_from_the_token() {
        let token = |sub: &str| {
            let payload = URL_SAFE_NO_PAD.encode(format!("{{\"sub\":\"{sub}\"}}"));
            format!("e30.{payload}.sig")
        };
        assert_eq!(
            token_service_account(&token("system:serviceaccount:kube-system:kubeflex")).as_deref(),
            Some("kubeflex")
        );
        assert_eq!(
            token_service_account(&token("system:serviceaccount:kube-system:kubeflex-cp1"))
                .as_deref(),
            Some("kubeflex-cp1")
        );
        assert_eq!(
            token_service_account(&token("system:serviceaccount:default:x")),
            None
        );
        assert_eq!(token_service_account(&token("alice")), None);
        assert_eq!(token_service_account("opaque"), None);
    }
}
