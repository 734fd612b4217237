//! The operator's configuration: everything a builder needs besides the
//! ControlPlane itself. Defaults are KubeFlex's where KubeFlex has one
//! (domain, port, component versions), so a default install behaves alike.
//!
//! The process (flags, env) fills this in; builders only read it.

use std::time::Duration;

/// One day.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Configuration shared by every reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorConfig {
    /// Domain of the external host names `<cp>.<domain>` (KubeFlex: `localtest.me`,
    /// public wildcard DNS resolving to 127.0.0.1).
    pub domain: String,
    /// Port of the ingress controller as reached from outside (KubeFlex: 9443).
    pub external_port: u16,
    /// `--external-address`: the ingress' address when no DNS resolves
    /// `<cp>.<domain>`. Off-cluster kubeconfigs of ingress-exposed types then
    /// name `https://ADDR:<external port>` with `tls-server-name: <cp>.<domain>`,
    /// so SNI routing and certificate checks still work.
    pub external_address: Option<String>,
    /// Name of the hosting cluster's node container (KubeFlex: `kubeflex-control-plane`),
    /// a SAN of API server certificates so other clusters on the Docker network can reach it.
    pub host_container: String,
    /// Namespace of the operator and the shared database.
    pub system_namespace: String,
    /// How control planes are exposed.
    pub exposure: ExposureMode,
    /// Ingress class of the SSL-passthrough ingress controller (KubeFlex: `nginx`).
    pub ingress_class: String,
    /// Certificates.
    pub pki: PkiConfig,
    /// Images of every component.
    pub images: Images,
    /// `k3s` storage.
    pub k3s: StorageConfig,
    /// `vcluster` storage and networking.
    pub vcluster: VclusterConfig,
    /// The PostgreSQL behind `k8s` control planes.
    pub postgres: PostgresConfig,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            domain: "localtest.me".into(),
            external_port: 9443,
            external_address: None,
            host_container: "kubeflex-control-plane".into(),
            system_namespace: crate::names::SYSTEM_NAMESPACE.into(),
            exposure: ExposureMode::Auto,
            ingress_class: crate::names::INGRESS_CLASS_NGINX.into(),
            pki: PkiConfig::default(),
            images: Images::default(),
            k3s: StorageConfig {
                // KubeFlex hard-codes `standard` (kind's class), which leaves PVCs
                // Pending elsewhere (k3d: `local-path`); `None` uses the cluster default.
                storage_class: None,
                size: "1Gi".into(),
            },
            vcluster: VclusterConfig::default(),
            postgres: PostgresConfig::default(),
        }
    }
}

impl OperatorConfig {
    /// The external host of a control plane: `<cp>.<domain>`.
    pub fn external_host(&self, cp_name: &str) -> String {
        format!("{cp_name}.{}", self.domain)
    }

    /// The TLS server name off-cluster kubeconfigs carry: `<cp>.<domain>`
    /// when `--external-address` replaces the host in the URL (not for Routes).
    pub fn external_tls_server_name(
        &self,
        cp_name: &str,
        route_host: Option<&str>,
    ) -> Option<String> {
        match (&self.external_address, route_host) {
            (Some(_), None) => Some(self.external_host(cp_name)),
            _ => None,
        }
    }

    /// Ingress or Route, given whether `route.openshift.io` is served.
    pub fn resolve_exposure(&self, routes_served: bool) -> Exposure {
        match self.exposure {
            ExposureMode::Ingress => Exposure::Ingress,
            ExposureMode::Route => Exposure::Route,
            ExposureMode::Auto if routes_served => Exposure::Route,
            ExposureMode::Auto => Exposure::Ingress,
        }
    }
}

/// `--exposure`: how to reach tenant API servers from outside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExposureMode {
    /// A Route when `route.openshift.io` is served, else an Ingress.
    #[default]
    Auto,
    /// Always an ingress-nginx SSL-passthrough Ingress.
    Ingress,
    /// Always an OpenShift Route.
    Route,
}

/// What a reconcile actually creates (after resolving [`ExposureMode::Auto`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// `networking.k8s.io/v1` Ingress with SSL passthrough.
    Ingress,
    /// `route.openshift.io/v1` Route with passthrough TLS.
    Route,
}

/// Key algorithm of every generated key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PkiAlgorithm {
    /// ECDSA P-256 with SHA-256: fast to generate (the default).
    #[default]
    EcdsaP256,
    /// RSA-2048 with SHA-256, as KubeFlex uses.
    Rsa2048,
}

impl PkiAlgorithm {
    /// The flag spelling (`ecdsa-p256`, `rsa-2048`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
        }
    }
}

impl std::str::FromStr for PkiAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            "rsa-2048" => Ok(Self::Rsa2048),
            other => Err(format!(
                "unknown PKI algorithm {other:?}: use ecdsa-p256 or rsa-2048"
            )),
        }
    }
}

/// Certificate lifetimes and renewal.
#[derive(Clone, Debug, PartialEq)]
pub struct PkiConfig {
    /// Key algorithm.
    pub algorithm: PkiAlgorithm,
    /// Lifetime of CA certificates (KubeFlex: 10 years). CAs are not renewed:
    /// clients trust them, and replacing one invalidates every kubeconfig.
    pub ca_validity: Duration,
    /// Lifetime of leaf certificates (serving, clients).
    pub leaf_validity: Duration,
    /// A leaf is renewed when less than this fraction of its lifetime is left
    /// (0.0..1.0; e.g. 0.3 renews a 1-year certificate with ~110 days left).
    pub renew_fraction: f64,
    /// How far `notBefore` is backdated, so that clocks slightly behind accept
    /// a fresh certificate (KubeFlex: 1 hour).
    pub backdate: Duration,
}

impl Default for PkiConfig {
    fn default() -> Self {
        Self {
            algorithm: PkiAlgorithm::EcdsaP256,
            ca_validity: DAY * 3650,
            leaf_validity: DAY * 365,
            renew_fraction: 0.3,
            backdate: Duration::from_secs(60 * 60),
        }
    }
}

/// Images, versions pinned to KubeFlex's where it has them.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    /// `k8s` API server (KubeFlex: v1.29.9).
    pub kube_apiserver: String,
    /// `k8s` controller manager (KubeFlex: v1.29.9).
    pub kube_controller_manager: String,
    /// etcd shim in front of PostgreSQL (KubeFlex: v0.11.4).
    pub kine: String,
    /// `k3s` server (KubeFlex: v1.30.13-k3s1).
    pub k3s: String,
    /// k3s inside a vcluster (KubeFlex passes v1.27.2-k3s1 to chart 0.16.4).
    pub vcluster_k3s: String,
    /// vcluster syncer (the chart's own image for 0.16.4).
    pub vcluster_syncer: String,
    /// PostgreSQL server and the `psql` of provisioning Jobs (KubeFlex installs
    /// Bitnami chart 13.1.5, i.e. PostgreSQL 16).
    pub postgres: String,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            kube_apiserver: "registry.k8s.io/kube-apiserver:v1.29.9".into(),
            kube_controller_manager: "registry.k8s.io/kube-controller-manager:v1.29.9".into(),
            kine: "rancher/kine:v0.11.4".into(),
            k3s: "rancher/k3s:v1.30.13-k3s1".into(),
            vcluster_k3s: "rancher/k3s:v1.27.2-k3s1".into(),
            vcluster_syncer: "ghcr.io/loft-sh/vcluster:0.16.4".into(),
            postgres: "docker.io/library/postgres:16.4".into(),
        }
    }
}

/// A persistent volume request.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// StorageClass name; `None` leaves `storageClassName` unset (cluster default).
    pub storage_class: Option<String>,
    /// Requested size, as a quantity (`1Gi`).
    pub size: String,
}

/// `vcluster` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct VclusterConfig {
    /// Data volume (the chart's default: 5Gi, cluster default class).
    pub storage: StorageConfig,
    /// The hosting cluster's Service CIDR. `None` reads it, as the chart does,
    /// from ConfigMap `vc-cidr-vcluster`, which the syncer writes on start.
    pub service_cidr: Option<String>,
}

impl Default for VclusterConfig {
    fn default() -> Self {
        Self {
            storage: StorageConfig {
                storage_class: None,
                size: "5Gi".into(),
            },
            service_cidr: None,
        }
    }
}

/// Where the databases of `k8s` control planes live.
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresConfig {
    /// The shared server.
    pub shared: SharedPostgres,
    /// Storage of an operator-installed server (shared or dedicated).
    pub storage: StorageConfig,
    /// `sslmode` in kine's connection string. KubeFlex's server has no TLS.
    pub ssl_mode: String,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            shared: SharedPostgres::Install,
            storage: StorageConfig {
                storage_class: None,
                size: "8Gi".into(),
            },
            ssl_mode: "disable".into(),
        }
    }
}

impl PostgresConfig {
    /// Host, port and admin credentials of the shared server.
    pub fn shared_server(&self, system_namespace: &str) -> DatabaseServer {
        match &self.shared {
            SharedPostgres::Install => DatabaseServer {
                host: format!("{}.{system_namespace}.svc", crate::names::POSTGRES_SHARED),
                port: 5432,
                admin_user: "postgres".into(),
                admin_secret: SecretKey {
                    namespace: system_namespace.into(),
                    name: crate::names::SECRET_POSTGRES.into(),
                    key: crate::names::KEY_POSTGRES_PASSWORD.into(),
                },
            },
            SharedPostgres::Existing(server) => server.clone(),
        }
    }
}

/// The shared PostgreSQL.
#[derive(Clone, Debug, PartialEq)]
pub enum SharedPostgres {
    /// The operator installs `postgres-postgresql` in the system namespace.
    Install,
    /// An existing server.
    Existing(DatabaseServer),
}

/// A PostgreSQL server and where its admin password is.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseServer {
    /// DNS name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Superuser (or a role with CREATEDB and CREATEROLE).
    pub admin_user: String,
    /// Secret key holding the admin password. Provisioning Jobs run in its
    /// namespace, since a pod can only read Secrets of its own namespace.
    pub admin_secret: SecretKey,
}

/// One key of one Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretKey {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Data key.
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kubeflex() {
        let c = OperatorConfig::default();
        assert_eq!(c.domain, "localtest.me");
        assert_eq!(c.external_port, 9443);
        assert_eq!(
            c.images.kube_apiserver,
            "registry.k8s.io/kube-apiserver:v1.29.9"
        );
        assert_eq!(c.images.k3s, "rancher/k3s:v1.30.13-k3s1");
        assert_eq!(c.images.kine, "rancher/kine:v0.11.4");
        assert_eq!(c.pki.algorithm, PkiAlgorithm::EcdsaP256);
        assert_eq!(c.external_host("cp1"), "cp1.localtest.me");
    }

    #[test]
    fn exposure_auto_follows_discovery_and_is_overridable() {
        let mut c = OperatorConfig::default();
        assert_eq!(c.resolve_exposure(false), Exposure::Ingress);
        assert_eq!(c.resolve_exposure(true), Exposure::Route);
        c.exposure = ExposureMode::Ingress;
        assert_eq!(c.resolve_exposure(true), Exposure::Ingress);
        c.exposure = ExposureMode::Route;
        assert_eq!(c.resolve_exposure(false), Exposure::Route);
    }

    #[test]
    fn pki_algorithm_parses_flag_values() {
        assert_eq!(
            "rsa-2048".parse::<PkiAlgorithm>(),
            Ok(PkiAlgorithm::Rsa2048)
        );
        assert_eq!(
            "ecdsa-p256".parse::<PkiAlgorithm>(),
            Ok(PkiAlgorithm::EcdsaP256)
        );
        assert!(
            "dsa"
                .parse::<PkiAlgorithm>()
                .unwrap_err()
                .contains("ecdsa-p256")
        );
    }

    #[test]
    fn shared_server_defaults_to_the_installed_instance() {
        let s = PostgresConfig::default().shared_server("kubeflex-system");
        assert_eq!(s.host, "postgres-postgresql.kubeflex-system.svc");
        assert_eq!(s.port, 5432);
        assert_eq!(s.admin_secret.name, "postgres-postgresql");
        assert_eq!(s.admin_secret.key, "postgres-password");
    }
}
