//! Kubeconfigs as KubeFlex writes them (§7.1): typed `clientcmd` v1 structs,
//! rendered per control-plane type and serialized with serde-saphyr; plus the
//! parsing helpers the reconcile needs (bootstrap kubeconfigs of `external`,
//! the vcluster syncer's kubeconfig, client certificates due for renewal).
//!
//! Field order is alphabetical, as `clientcmd.Write` emits it.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::config::OperatorConfig;
use crate::pki::CertAndKey;

/// A kubeconfig problem; never contains a credential.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Not YAML of a kubeconfig.
    #[error("{what} is not a valid kubeconfig: {message}")]
    Parse { what: String, message: String },
    /// Serialization failed.
    #[error("serializing the kubeconfig of {what}")]
    Serialize {
        what: String,
        // Boxed: the serializer's error is large, and every builder's
        // `Result` would carry its size.
        #[source]
        source: Box<serde_saphyr::ser::Error>,
    },
    /// A bootstrap kubeconfig without exactly one context.
    #[error(
        "{what} has {count} contexts ({names}): keep exactly one, the context of the cluster to adopt (kflex adopt writes such a kubeconfig)"
    )]
    ContextCount {
        what: String,
        count: usize,
        names: String,
    },
    /// A context names a cluster or user that is not there.
    #[error("{what}: context {context} refers to {kind} {name}, which is not in the kubeconfig")]
    Dangling {
        what: String,
        context: String,
        kind: &'static str,
        name: String,
    },
}

/// A kubeconfig (`clientcmd/api/v1.Config`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default = "v1")]
    pub api_version: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<NamedExtension>,
    #[serde(default = "config_kind")]
    pub kind: String,
    #[serde(default)]
    pub preferences: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub users: Vec<NamedUser>,
}

fn v1() -> String {
    "v1".into()
}

fn config_kind() -> String {
    "Config".into()
}

/// `clusters[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamedCluster {
    pub cluster: Cluster,
    pub name: String,
}

/// A cluster: server and how to trust it. Unknown fields are kept.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    /// Base64 of the CA bundle PEM.
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    pub server: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `contexts[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamedContext {
    pub context: Context,
    pub name: String,
}

/// A context.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Context {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<NamedExtension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub user: String,
}

/// `extensions[]` (kept verbatim).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NamedExtension {
    pub extension: serde_json::Value,
    pub name: String,
}

/// `users[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamedUser {
    pub name: String,
    pub user: AuthInfo,
}

/// Credentials. Unknown fields (exec, auth-provider, ...) are kept; `Debug`
/// shows none of them.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq)]
pub struct AuthInfo {
    /// Base64 of the client certificate PEM.
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    /// Base64 of the client key PEM.
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<String>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInfo")
            .field(
                "client_certificate",
                &self.client_certificate_data.is_some(),
            )
            .field(
                "client_key",
                &self.client_key_data.as_ref().map(|_| "<redacted>"),
            )
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("other", &self.other.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How the user authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Credentials<'a> {
    /// A client certificate.
    Certificate(&'a CertAndKey),
    /// A bearer token (ServiceAccount).
    Token(&'a str),
}

/// Cluster, user and context names inside a kubeconfig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryNames {
    pub cluster: String,
    pub user: String,
    pub context: String,
    /// Context namespace.
    pub namespace: Option<String>,
}

impl EntryNames {
    /// `<cp>-cluster` / `<cp>-admin` / `<cp>`, namespace `default` (k8s admin).
    pub fn admin(cp_name: &str) -> Self {
        Self {
            cluster: format!("{cp_name}-cluster"),
            user: format!("{cp_name}-admin"),
            context: cp_name.into(),
            namespace: Some("default".into()),
        }
    }

    /// `<cp>-cluster` / `system:kube-controller-manager` / `<cp>` (k8s `cm-kubeconfig`).
    pub fn controller_manager(cp_name: &str) -> Self {
        Self {
            user: "system:kube-controller-manager".into(),
            ..Self::admin(cp_name)
        }
    }

    /// `default` ×3, as k3s writes its `k3s.yaml` (KubeFlex keeps them).
    pub fn k3s() -> Self {
        Self {
            cluster: "default".into(),
            user: "default".into(),
            context: "default".into(),
            namespace: None,
        }
    }

    /// `<cp>` ×3 (host).
    pub fn host(cp_name: &str) -> Self {
        Self {
            cluster: cp_name.into(),
            user: cp_name.into(),
            context: cp_name.into(),
            namespace: None,
        }
    }
}

/// External server URL: `https://<cp>.<domain>:<externalPort>`, or
/// `https://<route-host>` when exposed by an OpenShift Route (port 443).
pub fn external_url(cp_name: &str, cfg: &OperatorConfig, route_host: Option<&str>) -> String {
    match (route_host, &cfg.external_address) {
        (Some(host), _) => format!("https://{host}"),
        (None, Some(addr)) if addr.contains(':') && !addr.starts_with('[') => {
            format!("https://[{addr}]:{}", cfg.external_port)
        }
        (None, Some(addr)) => format!("https://{addr}:{}", cfg.external_port),
        (None, None) => format!(
            "https://{}:{}",
            cfg.external_host(cp_name),
            cfg.external_port
        ),
    }
}

/// The same kubeconfig with `tls-server-name` set on every cluster (when
/// `--external-address` puts an IP in the URL).
pub fn with_tls_server_name(mut kubeconfig: Kubeconfig, name: Option<String>) -> Kubeconfig {
    if let Some(name) = name {
        for c in &mut kubeconfig.clusters {
            c.cluster.other.insert(
                "tls-server-name".into(),
                serde_json::Value::String(name.clone()),
            );
        }
    }
    kubeconfig
}

/// A one-cluster, one-user, one-context kubeconfig.
pub fn render(
    names: &EntryNames,
    server: &str,
    ca_pem: &str,
    creds: Credentials<'_>,
) -> Kubeconfig {
    let user = match creds {
        Credentials::Certificate(pair) => AuthInfo {
            client_certificate_data: Some(B64.encode(&pair.cert_pem)),
            client_key_data: Some(B64.encode(pair.key.expose())),
            ..AuthInfo::default()
        },
        Credentials::Token(token) => AuthInfo {
            token: Some(token.into()),
            ..AuthInfo::default()
        },
    };
    Kubeconfig {
        api_version: v1(),
        clusters: vec![NamedCluster {
            name: names.cluster.clone(),
            cluster: Cluster {
                certificate_authority_data: Some(B64.encode(ca_pem)),
                server: server.into(),
                other: BTreeMap::new(),
            },
        }],
        contexts: vec![NamedContext {
            name: names.context.clone(),
            context: Context {
                cluster: names.cluster.clone(),
                extensions: Vec::new(),
                namespace: names.namespace.clone(),
                user: names.user.clone(),
            },
        }],
        current_context: names.context.clone(),
        extensions: Vec::new(),
        kind: config_kind(),
        preferences: BTreeMap::new(),
        users: vec![NamedUser {
            name: names.user.clone(),
            user,
        }],
    }
}

/// Serializes a kubeconfig; `what` names it in errors (e.g. `admin-kubeconfig/kubeconfig`).
pub fn to_yaml(kubeconfig: &Kubeconfig, what: &str) -> Result<String, KubeconfigError> {
    serde_saphyr::to_string(kubeconfig).map_err(|source| KubeconfigError::Serialize {
        what: what.into(),
        source: Box::new(source),
    })
}

/// Parses a kubeconfig; `what` names it in errors. The parser's message
/// carries a location, never the document's content.
pub fn parse(text: &str, what: &str) -> Result<Kubeconfig, KubeconfigError> {
    serde_saphyr::from_str(text).map_err(|e| KubeconfigError::Parse {
        what: what.into(),
        // The YAML error may quote a snippet of the input, which can hold a
        // credential: keep only its first line's position part.
        message: redact_parse_error(&e.to_string()),
    })
}

fn redact_parse_error(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    if first.len() > 120 {
        "malformed YAML".into()
    } else {
        first.into()
    }
}

/// The same kubeconfig with every cluster's server replaced (KubeFlex does
/// this to make vcluster's `config-incluster` from `config`).
pub fn with_server(kubeconfig: &Kubeconfig, server: &str) -> Kubeconfig {
    let mut out = kubeconfig.clone();
    for c in &mut out.clusters {
        c.cluster.server = server.into();
    }
    out
}

/// The one context of a bootstrap kubeconfig, with its cluster and user.
#[derive(Clone, Debug, PartialEq)]
pub struct SingleContext {
    pub context: NamedContext,
    pub cluster: NamedCluster,
    pub user: NamedUser,
}

/// The only context of `kubeconfig` (what `kflex adopt` writes), or an error
/// saying what to fix.
pub fn single_context(
    kubeconfig: &Kubeconfig,
    what: &str,
) -> Result<SingleContext, KubeconfigError> {
    let [context] = kubeconfig.contexts.as_slice() else {
        return Err(KubeconfigError::ContextCount {
            what: what.into(),
            count: kubeconfig.contexts.len(),
            names: kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let dangling = |kind, name: &str| KubeconfigError::Dangling {
        what: what.into(),
        context: context.name.clone(),
        kind,
        name: name.into(),
    };
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.context.cluster)
        .ok_or_else(|| dangling("cluster", &context.context.cluster))?;
    let user = kubeconfig
        .users
        .iter()
        .find(|u| u.name == context.context.user)
        .ok_or_else(|| dangling("user", &context.context.user))?;
    Ok(SingleContext {
        context: context.clone(),
        cluster: cluster.clone(),
        user: user.clone(),
    })
}

/// The kubeconfig of an adopted cluster, as KubeFlex builds it: the
/// bootstrap's cluster entry (name, server, CA), user `<cp>` with the token,
/// context `<cp>` keeping the bootstrap context's namespace and extensions.
pub fn adopted(cp_name: &str, bootstrap: &SingleContext, token: &str) -> Kubeconfig {
    Kubeconfig {
        api_version: v1(),
        clusters: vec![bootstrap.cluster.clone()],
        contexts: vec![NamedContext {
            name: cp_name.into(),
            context: Context {
                cluster: bootstrap.cluster.name.clone(),
                extensions: bootstrap.context.context.extensions.clone(),
                namespace: bootstrap.context.context.namespace.clone(),
                user: cp_name.into(),
            },
        }],
        current_context: cp_name.into(),
        extensions: Vec::new(),
        kind: config_kind(),
        preferences: BTreeMap::new(),
        users: vec![NamedUser {
            name: cp_name.into(),
            user: AuthInfo {
                token: Some(token.into()),
                ..AuthInfo::default()
            },
        }],
    }
}

impl Kubeconfig {
    /// The user of the current context (or of the only context).
    pub fn current_user(&self) -> Option<&AuthInfo> {
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .or(self.contexts.first())?;
        self.users
            .iter()
            .find(|u| u.name == ctx.context.user)
            .map(|u| &u.user)
    }

    /// The current user's client certificate PEM, if any: the reconcile
    /// checks it for renewal and against the current CA.
    pub fn client_certificate_pem(&self) -> Option<String> {
        let data = self.current_user()?.client_certificate_data.as_ref()?;
        String::from_utf8(B64.decode(data).ok()?).ok()
    }

    /// Server URL of the current context's cluster.
    pub fn server(&self) -> Option<&str> {
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .or(self.contexts.first())?;
        self.clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .map(|c| c.cluster.server.as_str())
    }
}

#[cfg(test)]
mod tests {
    const SAMPLE_TWO_CLUSTERS: &str = "clusters:\n- name: a\n  cluster: {server: https://a}\n- name: b\n  cluster: {server: https://b}\ncontexts: []\nusers: []\n";

    use super::*;
    use crate::pki::{ClientIdentity, ControlPlanePki, ServingNames};

    fn pki() -> ControlPlanePki {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_750_000_000).unwrap();
        let names =
            ServingNames::for_k8s("cp1", "localtest.me", "kubeflex-control-plane", None, None);
        ControlPlanePki::generate(&names, &crate::config::PkiConfig::default(), now).unwrap()
    }

    #[test]
    fn admin_kubeconfig_has_kubeflex_names_and_urls() {
        let pki = pki();
        let cfg = OperatorConfig::default();
        let now = k8s_openapi::jiff::Timestamp::from_second(1_750_000_000).unwrap();
        let admin = pki
            .ca
            .issue_client(&ClientIdentity::admin(), &cfg.pki, now)
            .unwrap();
        let url = external_url("cp1", &cfg, None);
        assert_eq!(url, "https://cp1.localtest.me:9443");
        let kc = render(
            &EntryNames::admin("cp1"),
            &url,
            pki.ca.cert_pem(),
            Credentials::Certificate(&admin),
        );
        let yaml = to_yaml(&kc, "admin-kubeconfig/kubeconfig").unwrap();
        let back = parse(&yaml, "admin-kubeconfig/kubeconfig").unwrap();
        assert_eq!(back, kc);
        assert_eq!(back.current_context, "cp1");
        assert_eq!(back.clusters[0].name, "cp1-cluster");
        assert_eq!(back.users[0].name, "cp1-admin");
        assert_eq!(
            back.contexts[0].context.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(back.contexts[0].context.cluster, "cp1-cluster");
        assert_eq!(back.contexts[0].context.user, "cp1-admin");
        assert_eq!(back.server(), Some("https://cp1.localtest.me:9443"));
        assert_eq!(
            back.client_certificate_pem().as_deref(),
            Some(admin.cert_pem.as_str())
        );
        // clientcmd.Write's top-level order and shape.
        let keys: Vec<&str> = yaml
            .lines()
            .filter(|l| !l.starts_with([' ', '-']))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "apiVersion",
                "clusters",
                "contexts",
                "current-context",
                "kind",
                "preferences",
                "users"
            ]
        );
    }

    #[test]
    fn route_host_replaces_domain_and_port() {
        let cfg = OperatorConfig::default();
        assert_eq!(
            external_url("cp1", &cfg, Some("cp1-cp1-system.apps.x")),
            "https://cp1-cp1-system.apps.x"
        );
    }

    #[test]
    fn external_address_names_the_ip_and_keeps_the_host_as_tls_server_name() {
        let cfg = OperatorConfig {
            external_address: Some("10.0.0.5".into()),
            external_port: 31443,
            ..OperatorConfig::default()
        };
        assert_eq!(external_url("cp1", &cfg, None), "https://10.0.0.5:31443");
        let sni = cfg.external_tls_server_name("cp1", None);
        assert_eq!(sni.as_deref(), Some("cp1.localtest.me"));
        let kc = with_tls_server_name(parse(SAMPLE_TWO_CLUSTERS, "x").unwrap(), sni);
        assert!(
            kc.clusters
                .iter()
                .all(|c| c.cluster.other["tls-server-name"] == "cp1.localtest.me")
        );
        // Routes keep their own host; IPv6 addresses are bracketed.
        assert_eq!(external_url("cp1", &cfg, Some("r.apps")), "https://r.apps");
        assert_eq!(cfg.external_tls_server_name("cp1", Some("r.apps")), None);
        let v6 = OperatorConfig {
            external_address: Some("fd00::5".into()),
            ..cfg
        };
        assert_eq!(external_url("cp1", &v6, None), "https://[fd00::5]:31443");
        // Without the flag: KubeFlex's URL, no tls-server-name.
        let plain = OperatorConfig::default();
        assert_eq!(
            external_url("cp1", &plain, None),
            "https://cp1.localtest.me:9443"
        );
        assert_eq!(plain.external_tls_server_name("cp1", None), None);
    }

    #[test]
    fn controller_manager_and_host_names() {
        let cm = EntryNames::controller_manager("cp1");
        assert_eq!(
            (cm.cluster.as_str(), cm.user.as_str(), cm.context.as_str()),
            ("cp1-cluster", "system:kube-controller-manager", "cp1")
        );
        let host = render(
            &EntryNames::host("cp1"),
            "https://kubernetes.default.svc",
            "CA",
            Credentials::Token("tok"),
        );
        assert_eq!(host.contexts[0].context.namespace, None);
        assert_eq!(host.users[0].user.token.as_deref(), Some("tok"));
        assert_eq!(host.clusters[0].name, "cp1");
    }

    #[test]
    fn debug_hides_credentials() {
        let kc = render(
            &EntryNames::host("cp1"),
            "https://x",
            "CA",
            Credentials::Token("s3cr3t"),
        );
        let text = format!("{kc:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    const BOOTSTRAP: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: kind-ext
  cluster:
    server: https://ext-control-plane:6443
    certificate-authority-data: Q0E=
    tls-server-name: ext
contexts:
- name: kind-ext
  context:
    cluster: kind-ext
    user: kind-ext
    namespace: team
    extensions:
    - name: kubeflex
      extension: {data: {x: "1"}}
current-context: kind-ext
users:
- name: kind-ext
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
"#;

    #[test]
    fn adopted_kubeconfig_keeps_the_bootstrap_cluster_and_context_details() {
        let kc = parse(BOOTSTRAP, "kubeflex-system/ext-bootstrap").unwrap();
        let one = single_context(&kc, "kubeflex-system/ext-bootstrap").unwrap();
        let out = adopted("ext", &one, "token-1");
        assert_eq!(out.clusters, one.cluster.clone().into_iter_vec());
        assert_eq!(out.clusters[0].cluster.other["tls-server-name"], "ext");
        assert_eq!(out.current_context, "ext");
        assert_eq!(out.contexts[0].context.cluster, "kind-ext");
        assert_eq!(out.contexts[0].context.user, "ext");
        assert_eq!(out.contexts[0].context.namespace.as_deref(), Some("team"));
        assert_eq!(out.contexts[0].context.extensions.len(), 1);
        assert_eq!(out.users[0].user.token.as_deref(), Some("token-1"));
        assert_eq!(out.server(), Some("https://ext-control-plane:6443"));
    }

    impl NamedCluster {
        fn into_iter_vec(self) -> Vec<NamedCluster> {
            vec![self]
        }
    }

    #[test]
    fn two_contexts_is_an_error_saying_what_to_fix() {
        let mut kc = parse(BOOTSTRAP, "b").unwrap();
        let mut second = kc.contexts[0].clone();
        second.name = "other".into();
        kc.contexts.push(second);
        let err = single_context(
            &kc,
            "Secret kubeflex-system/ext-bootstrap key kubeconfig-incluster",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "Secret kubeflex-system/ext-bootstrap key kubeconfig-incluster has 2 contexts (kind-ext, other): keep exactly one, the context of the cluster to adopt (kflex adopt writes such a kubeconfig)"
        );
        kc.contexts.truncate(1);
        kc.users.clear();
        let err = single_context(&kc, "b").unwrap_err().to_string();
        assert_eq!(
            err,
            "b: context kind-ext refers to user kind-ext, which is not in the kubeconfig"
        );
    }

    #[test]
    fn with_server_rewrites_every_cluster() {
        let kc = parse(BOOTSTRAP, "b").unwrap();
        let out = with_server(&kc, "https://vcluster.cp2-system");
        assert!(
            out.clusters
                .iter()
                .all(|c| c.cluster.server == "https://vcluster.cp2-system")
        );
        assert_eq!(out.users, kc.users);
    }

    #[test]
    fn parse_errors_name_the_source_without_content() {
        let err = parse("users: [ {token: s3cr3t", "Secret a/b key c")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("Secret a/b key c is not a valid kubeconfig"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
