//! The table of control-plane types: one row of plain data per type.
//!
//! [`Profile::of`] is the only place in the operator that branches on
//! [`ControlPlaneType`]; everything else reads a field of the profile. Adding a
//! type means adding a row here and, where it needs new objects, a builder.

use crate::api::{ControlPlaneType, SecretReference};
use crate::names;

/// Kind of the workload that serves a tenant API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

/// The workload whose availability gates `Ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// Its name in `<cp>-system`.
    pub name: &'static str,
}

/// Name of the Service in front of the tenant API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceName {
    /// Named after the ControlPlane (`k8s`: Service `<cp>`).
    ControlPlane,
    /// A fixed name.
    Fixed(&'static str),
}

/// The Service in front of the tenant API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiService {
    /// Its name.
    pub name: ServiceName,
    /// Port clients use (443 for every type, so URLs need no port).
    pub port: i32,
    /// Port the API server listens on.
    pub target_port: i32,
    /// Pod selector (KubeFlex's; selectors are immutable, so never ours).
    pub selector: &'static [(&'static str, &'static str)],
    /// `NodePort` (KubeFlex's `k8s` Service) rather than `ClusterIP`.
    pub node_port: bool,
}

/// Labels of KubeFlex's k3s server: StatefulSet, pods, PVC and Service.
pub const K3S_SERVER_LABELS: &[(&str, &str)] = &[
    ("controller.kubeflex.dev/type", "k3s"),
    ("controller.kubeflex.dev/service-name", "k3s"),
    ("controller.kubeflex.dev/pvc-name", "k3s-data"),
];

/// Selector of the vcluster chart's pods.
pub const VCLUSTER_SELECTOR: &[(&str, &str)] = &[("app", "vcluster"), ("release", "vcluster")];

/// How the in-cluster kubeconfig addresses the Service (KubeFlex's forms,
/// kept because consumers compare and print them; each is a SAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsForm {
    /// `<svc>.<ns>` (vcluster).
    Namespace,
    /// `<svc>.<ns>.svc` (k3s).
    Svc,
    /// `<svc>.<ns>.svc.cluster.local` (k8s).
    ClusterLocal,
}

/// Where the in-cluster kubeconfig points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InClusterServer {
    /// The type's Service, port 443 implied.
    Service(DnsForm),
    /// The hosting cluster's own API (`https://kubernetes.default.svc`).
    HostingCluster,
    /// The adopted cluster's server, taken from the bootstrap kubeconfig.
    Adopted,
}

/// The Secret holding a control plane's kubeconfigs (`status.secretRef`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KubeconfigSecret {
    /// Secret name in `<cp>-system`.
    pub name: &'static str,
    /// Off-cluster key; `None` when the type has no off-cluster kubeconfig
    /// (KubeFlex claims `kubeconfig` for `host`/`external`, a key that does not
    /// exist; we name only keys that exist, so `status.secretRef.key` is empty).
    pub key: Option<&'static str>,
    /// In-cluster key.
    pub in_cluster_key: &'static str,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The type this row describes.
    pub type_: ControlPlaneType,
    /// Why the operator refuses this type, as the `Ready` message; `None` when supported.
    pub refusal: Option<&'static str>,
    /// The operator runs a tenant API server in `<cp>-system`.
    pub hosted_api_server: bool,
    /// Workload gating readiness.
    pub workload: Option<Workload>,
    /// Service in front of the API server.
    pub service: Option<ApiService>,
    /// Where the kubeconfigs are.
    pub kubeconfig: Option<KubeconfigSecret>,
    /// Server of the in-cluster kubeconfig.
    pub in_cluster_server: InClusterServer,
    /// Needs an Ingress or Route.
    pub exposed: bool,
    /// Needs the `k8s-certs` PKI.
    pub needs_pki: bool,
    /// Needs a PostgreSQL database (kine).
    pub needs_database: bool,
    /// Pod Security level `<cp>-system` enforces (`restricted` is always
    /// what it warns and audits about).
    pub pod_security: PodSecurity,
}

/// A Pod Security Standards level, as the namespace label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodSecurity {
    /// No privileged, host-namespace or hostPath pods: what the operator's
    /// own pods and KubeFlex's sample hook Jobs need at most.
    Baseline,
    /// Anything goes.
    Privileged,
}

impl PodSecurity {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Privileged => "privileged",
        }
    }
}

/// `Ready` message for `ocm`.
pub const OCM_REFUSAL: &str = "type ocm is not supported (KubeFlex deprecated it and it never \
became Ready): create a ControlPlane of type vcluster and install Open Cluster Management inside \
it, e.g. with a PostCreateHook running `clusteradm init`";

impl Profile {
    /// The row of `type_`.
    pub const fn of(type_: ControlPlaneType) -> Self {
        // Defaults shared by the rows; each row states what differs.
        let none = Profile {
            type_,
            refusal: None,
            hosted_api_server: false,
            workload: None,
            service: None,
            kubeconfig: None,
            in_cluster_server: InClusterServer::HostingCluster,
            exposed: false,
            needs_pki: false,
            needs_database: false,
            pod_security: PodSecurity::Baseline,
        };
        match type_ {
            ControlPlaneType::K8s => Profile {
                hosted_api_server: true,
                workload: Some(Workload {
                    kind: WorkloadKind::Deployment,
                    name: names::DEPLOYMENT_APISERVER,
                }),
                service: Some(ApiService {
                    name: ServiceName::ControlPlane,
                    port: 443,
                    target_port: 9444,
                    selector: &[("app", "kube-apiserver")],
                    node_port: true,
                }),
                kubeconfig: Some(KubeconfigSecret {
                    name: names::SECRET_ADMIN_KUBECONFIG,
                    key: Some(names::KEY_KUBECONFIG),
                    in_cluster_key: names::KEY_KUBECONFIG_INCLUSTER,
                }),
                in_cluster_server: InClusterServer::Service(DnsForm::ClusterLocal),
                exposed: true,
                needs_pki: true,
                needs_database: true,
                ..none
            },
            ControlPlaneType::K3s => Profile {
                hosted_api_server: true,
                workload: Some(Workload {
                    kind: WorkloadKind::StatefulSet,
                    name: names::STATEFULSET_K3S,
                }),
                service: Some(ApiService {
                    name: ServiceName::Fixed(names::SERVICE_K3S),
                    port: 443,
                    target_port: 6443,
                    selector: K3S_SERVER_LABELS,
                    node_port: false,
                }),
                kubeconfig: Some(KubeconfigSecret {
                    name: names::SECRET_K3S_CONFIG,
                    key: Some(names::KEY_CONFIG),
                    in_cluster_key: names::KEY_CONFIG_INCLUSTER,
                }),
                in_cluster_server: InClusterServer::Service(DnsForm::Svc),
                exposed: true,
                // The k3s server runs privileged (it runs its own containerd and
                // cgroups, as KubeFlex's chart does): baseline would refuse
                // its pod. Hooks' pods are held to baseline regardless
                // (hooks::pods).
                pod_security: PodSecurity::Privileged,
                ..none
            },
            ControlPlaneType::Vcluster => Profile {
                hosted_api_server: true,
                workload: Some(Workload {
                    kind: WorkloadKind::StatefulSet,
                    name: names::VCLUSTER_RELEASE,
                }),
                service: Some(ApiService {
                    name: ServiceName::Fixed(names::VCLUSTER_RELEASE),
                    port: 443,
                    target_port: 8443,
                    selector: VCLUSTER_SELECTOR,
                    node_port: false,
                }),
                kubeconfig: Some(KubeconfigSecret {
                    name: names::SECRET_VC_VCLUSTER,
                    key: Some(names::KEY_CONFIG),
                    in_cluster_key: names::KEY_CONFIG_INCLUSTER,
                }),
                in_cluster_server: InClusterServer::Service(DnsForm::Namespace),
                exposed: true,
                ..none
            },
            ControlPlaneType::Host => Profile {
                kubeconfig: Some(KubeconfigSecret {
                    name: names::SECRET_ADMIN_KUBECONFIG,
                    key: None,
                    in_cluster_key: names::KEY_KUBECONFIG_INCLUSTER,
                }),
                in_cluster_server: InClusterServer::HostingCluster,
                ..none
            },
            ControlPlaneType::External => Profile {
                kubeconfig: Some(KubeconfigSecret {
                    name: names::SECRET_ADMIN_KUBECONFIG,
                    key: None,
                    in_cluster_key: names::KEY_KUBECONFIG_INCLUSTER,
                }),
                in_cluster_server: InClusterServer::Adopted,
                ..none
            },
            ControlPlaneType::Ocm => Profile {
                refusal: Some(OCM_REFUSAL),
                ..none
            },
        }
    }

    /// Whether the operator provisions this type.
    pub fn supported(&self) -> bool {
        self.refusal.is_none()
    }

    /// Name of the API Service of control plane `cp_name`.
    pub fn service_name(&self, cp_name: &str) -> Option<String> {
        self.service.map(|s| match s.name {
            ServiceName::ControlPlane => cp_name.to_string(),
            ServiceName::Fixed(name) => name.to_string(),
        })
    }

    /// Server URL of the in-cluster kubeconfig; `None` for `external`, whose
    /// server comes from the bootstrap kubeconfig.
    pub fn in_cluster_url(&self, cp_name: &str) -> Option<String> {
        let ns = names::namespace_of(cp_name);
        match self.in_cluster_server {
            InClusterServer::Service(form) => {
                let svc = self.service_name(cp_name)?;
                Some(match form {
                    DnsForm::Namespace => format!("https://{svc}.{ns}"),
                    DnsForm::Svc => format!("https://{svc}.{ns}.svc"),
                    DnsForm::ClusterLocal => format!("https://{svc}.{ns}.svc.cluster.local"),
                })
            }
            InClusterServer::HostingCluster => Some("https://kubernetes.default.svc".into()),
            InClusterServer::Adopted => None,
        }
    }

    /// `status.secretRef` of control plane `cp_name` (KubeFlex's values, except
    /// that `key` is empty when the off-cluster key does not exist).
    pub fn secret_ref(&self, cp_name: &str) -> Option<SecretReference> {
        self.kubeconfig.map(|k| SecretReference {
            namespace: names::namespace_of(cp_name),
            name: k.name.into(),
            key: k.key.unwrap_or_default().into(),
            in_cluster_key: k.in_cluster_key.into(),
        })
    }
}

/// A spec the operator cannot provision, found without a cluster: the
/// field (JSON path) and what to change. `kflex validate` runs these checks
/// so that what it passes the operator accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: &'static str,
    pub message: String,
}

/// Checks of a ControlPlane spec that need no cluster: the type's refusal,
/// an `external` control plane without `bootstrapSecretRef`, a token
/// lifetime that is not positive.
pub fn check_spec(spec: &crate::api::ControlPlaneSpec) -> Vec<SpecProblem> {
    let mut problems = Vec::new();
    let profile = Profile::of(spec.type_);
    if let Some(refusal) = profile.refusal {
        problems.push(SpecProblem {
            field: "spec.type",
            message: refusal.to_owned(),
        });
    }
    if spec.type_ == ControlPlaneType::External {
        match &spec.bootstrap_secret_ref {
            None => problems.push(SpecProblem {
                field: "spec.bootstrapSecretRef",
                message: "an external control plane needs bootstrapSecretRef: the Secret \
                          (namespace, name, inClusterKey) holding the kubeconfig of the cluster \
                          to adopt, e.g. made by `kflex adopt`"
                    .to_owned(),
            }),
            Some(r) if r.name.is_empty() || r.namespace.is_empty() => problems.push(SpecProblem {
                field: "spec.bootstrapSecretRef",
                message: "bootstrapSecretRef needs both namespace and name".to_owned(),
            }),
            Some(_) => {}
        }
    }
    if let Some(seconds) = spec.token_expiration_seconds
        && seconds <= 0
    {
        problems.push(SpecProblem {
            field: "spec.tokenExpirationSeconds",
            message: format!("{seconds} is not a lifetime: use a positive number of seconds"),
        });
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use ControlPlaneType::*;

    const ALL: [ControlPlaneType; 6] = [K8s, K3s, Vcluster, Host, External, Ocm];

    #[test]
    fn every_row_describes_its_own_type() {
        for t in ALL {
            assert_eq!(Profile::of(t).type_, t);
        }
    }

    #[test]
    fn workloads_and_services_are_kubeflex_s() {
        let k8s = Profile::of(K8s);
        assert_eq!(
            k8s.workload,
            Some(Workload {
                kind: WorkloadKind::Deployment,
                name: "kube-apiserver"
            })
        );
        assert_eq!(k8s.service_name("cp1").as_deref(), Some("cp1"));
        assert_eq!(
            k8s.service.map(|s| (s.port, s.target_port)),
            Some((443, 9444))
        );

        let k3s = Profile::of(K3s);
        assert_eq!(
            k3s.workload,
            Some(Workload {
                kind: WorkloadKind::StatefulSet,
                name: "k3s-server"
            })
        );
        assert_eq!(k3s.service_name("cp1").as_deref(), Some("k3s"));
        assert_eq!(
            k3s.service.map(|s| (s.port, s.target_port)),
            Some((443, 6443))
        );

        let vc = Profile::of(Vcluster);
        assert_eq!(
            vc.workload,
            Some(Workload {
                kind: WorkloadKind::StatefulSet,
                name: "vcluster"
            })
        );
        assert_eq!(vc.service_name("cp1").as_deref(), Some("vcluster"));
        assert_eq!(
            vc.service.map(|s| (s.port, s.target_port)),
            Some((443, 8443))
        );

        for t in [Host, External, Ocm] {
            assert_eq!(Profile::of(t).workload, None, "{t}");
            assert_eq!(Profile::of(t).service, None, "{t}");
        }
    }

    #[test]
    fn secret_refs_are_kubeflex_s_and_name_only_existing_keys() {
        let r = |t, key: &str, name: &str, in_cluster: &str| {
            assert_eq!(
                Profile::of(t).secret_ref("cp1"),
                Some(SecretReference {
                    namespace: "cp1-system".into(),
                    name: name.into(),
                    key: key.into(),
                    in_cluster_key: in_cluster.into(),
                }),
                "{t}"
            );
        };
        r(
            K8s,
            "kubeconfig",
            "admin-kubeconfig",
            "kubeconfig-incluster",
        );
        r(K3s, "config", "k3s-config", "config-incluster");
        r(Vcluster, "config", "vc-vcluster", "config-incluster");
        r(Host, "", "admin-kubeconfig", "kubeconfig-incluster");
        r(External, "", "admin-kubeconfig", "kubeconfig-incluster");
        assert_eq!(Profile::of(Ocm).secret_ref("cp1"), None);
    }

    #[test]
    fn in_cluster_urls_are_kubeflex_s() {
        let u = |t| Profile::of(t).in_cluster_url("cp1");
        assert_eq!(
            u(K8s).as_deref(),
            Some("https://cp1.cp1-system.svc.cluster.local")
        );
        assert_eq!(u(K3s).as_deref(), Some("https://k3s.cp1-system.svc"));
        assert_eq!(u(Vcluster).as_deref(), Some("https://vcluster.cp1-system"));
        assert_eq!(u(Host).as_deref(), Some("https://kubernetes.default.svc"));
        assert_eq!(u(External), None);
    }

    #[test]
    fn capabilities_per_type() {
        let caps = |t| {
            let p = Profile::of(t);
            (
                p.hosted_api_server,
                p.exposed,
                p.needs_pki,
                p.needs_database,
                p.supported(),
            )
        };
        assert_eq!(caps(K8s), (true, true, true, true, true));
        assert_eq!(caps(K3s), (true, true, false, false, true));
        assert_eq!(caps(Vcluster), (true, true, false, false, true));
        assert_eq!(caps(Host), (false, false, false, false, true));
        assert_eq!(caps(External), (false, false, false, false, true));
        assert_eq!(caps(Ocm), (false, false, false, false, false));
    }

    #[test]
    fn ocm_is_refused_with_a_way_forward() {
        let msg = Profile::of(Ocm).refusal.unwrap();
        assert!(msg.contains("vcluster"), "{msg}");
    }
}
