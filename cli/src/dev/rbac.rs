//! The identities `kflex dev` runs its components as: the RBAC we ship
//! (`config/rbac/`, embedded), installed by testenv's admin as a cluster
//! admin would, and one ServiceAccount token per component (TokenRequest),
//! so the in-process operator and reconciler can do exactly what they could
//! on a real cluster, no more.
//!
//! Tokens live in files under the state directory (0600, replaced
//! atomically) that kube-rs re-reads; a task renews them well before they
//! expire, so a `kflex dev` left running for days keeps working.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use kubeflex_testenv::service_account::{self, Token};

use crate::commands::init;

/// `config/rbac/` files `kflex init` does not apply: the read-through-the-
/// service-proxy rules of an operator outside the cluster, and the
/// reconciler's identity. `kflex dev` needs both.
pub const DEV_RBAC: &[(&str, &str)] = &[
    (
        "config/rbac/service_proxy_role.yaml",
        include_str!("../../../config/rbac/service_proxy_role.yaml"),
    ),
    (
        "config/rbac/service_proxy_role_binding.yaml",
        include_str!("../../../config/rbac/service_proxy_role_binding.yaml"),
    ),
    (
        "config/rbac/reconciler_service_account.yaml",
        include_str!("../../../config/rbac/reconciler_service_account.yaml"),
    ),
    (
        "config/rbac/reconciler_role.yaml",
        include_str!("../../../config/rbac/reconciler_role.yaml"),
    ),
    (
        "config/rbac/reconciler_role_binding.yaml",
        include_str!("../../../config/rbac/reconciler_role_binding.yaml"),
    ),
    (
        "config/rbac/reconciler_leader_election_role.yaml",
        include_str!("../../../config/rbac/reconciler_leader_election_role.yaml"),
    ),
    (
        "config/rbac/reconciler_leader_election_role_binding.yaml",
        include_str!("../../../config/rbac/reconciler_leader_election_role_binding.yaml"),
    ),
];

/// Namespace of both ServiceAccounts (and of the reconciler's Lease).
pub const NAMESPACE: &str = "kubeflex-system";
/// The operator's ServiceAccount, as `config/rbac/service_account.yaml` names it.
pub const OPERATOR: &str = "kubeflex-operator";
/// The reconciler's, as `config/rbac/reconciler_service_account.yaml` names it.
pub const RECONCILER: &str = "kubeflex-reconciler";

/// Lifetime of a minted token; renewed at a third of it.
const TOKEN_SECONDS: i64 = 3600;

/// Applies the ServiceAccounts' namespace and every object of
/// `config/rbac/` (as `admin`, server-side apply).
pub async fn install(admin: &kube::Client) -> anyhow::Result<()> {
    let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n");
    let files = [("namespace", namespace.as_str())];
    for (file, text) in files.iter().chain(init::RBAC).chain(DEV_RBAC) {
        for obj in init::objects(file, text)? {
            init::apply(admin, &obj).await?;
        }
    }
    Ok(())
}

/// The clients of the two components.
pub struct Identities {
    pub operator: kube::Client,
    pub reconciler: kube::Client,
    /// Renews the tokens; aborted on drop.
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Identities {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Mints a token for each ServiceAccount into `dir/<name>.token` and
/// returns clients that read them; keeps them renewed.
pub async fn identities(
    admin: &kube::Client,
    env: &kubeflex_testenv::TestEnv,
    dir: &Path,
) -> anyhow::Result<Identities> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut clients = Vec::new();
    let mut files = Vec::new();
    for name in [OPERATOR, RECONCILER] {
        let file = dir.join(format!("{name}.token"));
        renew(admin, name, &file).await?;
        let yaml = service_account::kubeconfig(
            &env.url(),
            env.ca_pem().as_bytes(),
            name,
            Token::File(&file),
        );
        let client = kubeflex_testenv::client_from_kubeconfig(&yaml)
            .await
            .with_context(|| format!("a client for ServiceAccount {NAMESPACE}/{name}"))?;
        clients.push(client);
        files.push((name, file));
    }
    let admin = admin.clone();
    let renewer = tokio::spawn(async move {
        let period = Duration::from_secs(u64::try_from(TOKEN_SECONDS / 3).unwrap_or(1200));
        loop {
            tokio::time::sleep(period).await;
            for (name, file) in &files {
                if let Err(e) = renew(&admin, name, file).await {
                    tracing::error!(service_account = name, error = %e, "renewing the token failed");
                }
            }
        }
    });
    let reconciler = clients.pop().context("no reconciler client")?;
    let operator = clients.pop().context("no operator client")?;
    Ok(Identities {
        operator,
        reconciler,
        renewer,
    })
}

async fn renew(admin: &kube::Client, name: &str, file: &Path) -> anyhow::Result<()> {
    let token = service_account::mint_token(admin, NAMESPACE, name, TOKEN_SECONDS)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "minting a token for ServiceAccount {NAMESPACE}/{name}: {}",
                crate::output::kube_error(&e)
            )
        })?;
    crate::kubeconfig::write_atomic(file, token.as_bytes())
        .with_context(|| format!("writing {}", file.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `kflex dev` installs exactly what `config/rbac/kustomization.yaml`
    /// lists, as it is on disk.
    #[test]
    fn dev_embeds_every_rbac_file_of_the_kustomization() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let k: serde_json::Value = serde_saphyr::from_str(
            &std::fs::read_to_string(root.join("config/rbac/kustomization.yaml")).unwrap(),
        )
        .unwrap();
        let mut listed: Vec<String> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("config/rbac/{}", f.as_str().unwrap()))
            .collect();
        let mut embedded: Vec<String> = init::RBAC
            .iter()
            .chain(DEV_RBAC)
            .map(|(f, _)| (*f).to_owned())
            .collect();
        listed.sort();
        embedded.sort();
        assert_eq!(listed, embedded);
        for (file, text) in DEV_RBAC {
            assert_eq!(&std::fs::read_to_string(root.join(file)).unwrap(), text);
        }
    }
}
