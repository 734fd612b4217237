//! Running a component as a ServiceAccount of a testenv: a bearer token
//! minted through the TokenRequest API by an admin, and a kubeconfig that
//! carries it (inline, or as a `tokenFile` the client re-reads, so a
//! long-running process can be handed renewed tokens).
//!
//! Used by `kflex dev` (the in-process operator and reconciler run with the
//! shipped RBAC) and by the end-to-end tests of several crates.

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

/// Where a kubeconfig finds its bearer token.
#[derive(Debug, Clone, Copy)]
pub enum Token<'a> {
    /// The token itself, written into the kubeconfig.
    Inline(&'a str),
    /// A file holding the token, re-read by kube-rs about once a minute.
    File(&'a std::path::Path),
}

/// A bearer token for ServiceAccount `ns/name`, valid for `seconds`,
/// minted by `admin` (which needs `create` on `serviceaccounts/token`);
/// empty if the server answered without one.
pub async fn mint_token(
    admin: &kube::Client,
    ns: &str,
    name: &str,
    seconds: i64,
) -> Result<String, kube::Error> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(seconds),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await?
        .status
        .map(|s| s.token)
        .unwrap_or_default();
    Ok(token)
}

/// A kubeconfig (YAML) for user `user` of the server at `server` (trusting
/// `ca_pem`), authenticated by `token`.
pub fn kubeconfig(server: &str, ca_pem: &[u8], user: &str, token: Token<'_>) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let credential = match token {
        Token::Inline(t) => format!("token: {t}"),
        Token::File(p) => format!("tokenFile: {}", p.display()),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    {credential}\ncontexts:\n- name: {user}\n  context:\n    cluster: testenv\n    user: {user}\ncurrent-context: {user}\n"
    )
}

/// A client of `env` authenticated as ServiceAccount `ns/name` with an
/// hour-long inline token that `admin` mints.
pub async fn client(
    env: &crate::TestEnv,
    admin: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<kube::Client, kube::Error> {
    let token = mint_token(admin, ns, name, 3600).await?;
    let yaml = kubeconfig(
        &env.url(),
        env.ca_pem().as_bytes(),
        name,
        Token::Inline(&token),
    );
    crate::client_from_kubeconfig(&yaml).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kubeconfig_carries_the_token_inline_or_as_a_file() {
        let inline = kubeconfig("https://127.0.0.1:1", b"CA", "op", Token::Inline("tok"));
        let v: serde_json::Value = serde_saphyr::from_str(&inline).unwrap();
        assert_eq!(v["users"][0]["user"]["token"], "tok");
        assert_eq!(v["current-context"], "op");
        let file = kubeconfig(
            "https://127.0.0.1:1",
            b"CA",
            "op",
            Token::File(std::path::Path::new("/s/token")),
        );
        let v: serde_json::Value = serde_saphyr::from_str(&file).unwrap();
        assert_eq!(v["users"][0]["user"]["tokenFile"], "/s/token");
        assert!(v["users"][0]["user"].get("token").is_none());
    }
}
