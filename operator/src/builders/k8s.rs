//! Type `k8s`: Deployment `kube-apiserver` (kine sidecar + kube-apiserver
//! with KubeFlex's flags, secure port 9444) and Deployment
//! `kube-controller-manager`. Names, labels, flags, probes and resources are
//! KubeFlex's; the database password reaches kine only through a Secret.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, PodSecurityContext, PodSpec, PodTemplateSpec,
    SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;

use super::Result;
use super::pod::{
    Timing, env_from_field, env_from_secret, https_probe, mount, resources, secret_volume,
};
use super::postgres::Database;
use crate::api::ControlPlane;
use crate::config::OperatorConfig;
use crate::{meta, names};

/// The API server's secure port (KubeFlex's).
pub const SECURE_PORT: i32 = 9444;
/// kube-controller-manager's health port.
const CM_HEALTH_PORT: i32 = 10257;
const PKI_DIR: &str = "/etc/kubernetes/pki";

/// Whether the pods run on OpenShift (restricted SCC needs these settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenShift(pub bool);

/// kube-apiserver's flags, exactly KubeFlex's.
pub fn apiserver_command() -> Vec<String> {
    let p = |f: &str| format!("{PKI_DIR}/{f}");
    vec![
        "kube-apiserver".into(),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        format!("--client-ca-file={}", p("ca.crt")),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth=true".into(),
        "--etcd-servers=http://127.0.0.1:2379".into(),
        format!(
            "--kubelet-client-certificate={}",
            p("apiserver-kubelet-client.crt")
        ),
        format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        format!("--proxy-client-cert-file={}", p("front-proxy-client.crt")),
        format!("--proxy-client-key-file={}", p("front-proxy-client.key")),
        "--requestheader-allowed-names=front-proxy-client".into(),
        format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        format!("--secure-port={SECURE_PORT}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        format!("--tls-cert-file={}", p("apiserver.crt")),
        format!("--tls-private-key-file={}", p("apiserver.key")),
    ]
}

/// kube-controller-manager's flags, exactly KubeFlex's.
pub fn controller_manager_command(cp_name: &str) -> Vec<String> {
    let p = |f: &str| format!("{PKI_DIR}/{f}");
    let kubeconfig = "/etc/kubernetes/kubeconfig";
    vec![
        "kube-controller-manager".into(),
        format!("--master=https://{cp_name}.{}", names::namespace_of(cp_name)),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--bind-address=0.0.0.0".into(),
        format!("--client-ca-file={}", p("ca.crt")),
        "--cluster-name=kubernetes".into(),
        format!("--cluster-signing-cert-file={}", p("ca.crt")),
        format!("--cluster-signing-key-file={}", p("ca.key")),
        "--controllers=csrapproving,csrcleaner,csrsigning,namespace,root-ca-cert-publisher,serviceaccount,serviceaccount-token,bootstrapsigner,tokencleaner,garbagecollector,pv-protection,pvc-protection".into(),
        format!("--kubeconfig={kubeconfig}"),
        "--leader-elect=true".into(),
        format!("--requestheader-client-ca-file={}", p("front-proxy-ca.crt")),
        format!("--root-ca-file={}", p("ca.crt")),
        format!("--service-account-private-key-file={}", p("sa.key")),
        "--use-service-account-credentials=true".into(),
    ]
}

fn deployment(
    cp: &ControlPlane,
    name: &str,
    app: &str,
    config_hash: &str,
    spec: PodSpec,
) -> Result<Deployment> {
    let cp_name = cp.name_any();
    let mut metadata = meta::in_cp_namespace(cp, name, name)?;
    // KubeFlex's labels of the Deployment object.
    metadata
        .labels
        .get_or_insert_default()
        .extend(meta::string_map(&[
            ("component", name),
            ("tier", "control-plane"),
        ]));
    let selector = meta::string_map(&[("app", app)]);
    let mut pod_labels = meta::labels(&cp_name, name);
    pod_labels.extend(selector.clone());
    Ok(Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    // These processes read certificates and kubeconfigs at
                    // start: a renewal must roll them.
                    annotations: Some(meta::string_map(&[(
                        names::ANNOTATION_CONFIG_HASH,
                        config_hash,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(spec),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

fn openshift_pod_security(openshift: OpenShift) -> Option<PodSecurityContext> {
    openshift.0.then(|| PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    })
}

/// Deployment `kube-apiserver`. `config_hash` is a hash of `k8s-certs`
/// (see [`meta::content_hash`]).
pub fn apiserver_deployment(
    cp: &ControlPlane,
    cfg: &OperatorConfig,
    db: &Database,
    openshift: OpenShift,
    config_hash: &str,
) -> Result<Deployment> {
    let kine = Container {
        name: "kine".into(),
        image: Some(cfg.images.kine.clone()),
        command: Some(vec![
            "kine".into(),
            "--endpoint".into(),
            db.kine_endpoint(&cfg.postgres.ssl_mode),
        ]),
        // libpq-compatible drivers read the password from PGPASSWORD, so it is
        // in neither the pod spec nor the process arguments.
        env: Some(vec![env_from_secret(
            "PGPASSWORD",
            names::SECRET_DATABASE,
            names::KEY_DB_PASSWORD,
        )]),
        ports: Some(vec![ContainerPort {
            container_port: 2379,
            ..ContainerPort::default()
        }]),
        resources: Some(resources(("500m", "256Mi"), ("250m", "64Mi"))),
        ..Container::default()
    };
    let apiserver = Container {
        name: "kube-apiserver".into(),
        image: Some(cfg.images.kube_apiserver.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(apiserver_command()),
        env: Some(vec![env_from_field("POD_IP", "status.podIP")]),
        ports: Some(vec![ContainerPort {
            container_port: SECURE_PORT,
            ..ContainerPort::default()
        }]),
        resources: Some(resources(("1000m", "512Mi"), ("256m", "250Mi"))),
        liveness_probe: Some(https_probe(
            "/livez",
            SECURE_PORT,
            Timing {
                initial_delay: Some(10),
                period: 10,
                timeout: Some(15),
                failure: 8,
            },
        )),
        readiness_probe: Some(https_probe(
            "/readyz",
            SECURE_PORT,
            Timing {
                initial_delay: None,
                period: 1,
                timeout: Some(15),
                failure: 3,
            },
        )),
        startup_probe: Some(https_probe(
            "/livez",
            SECURE_PORT,
            Timing {
                initial_delay: Some(10),
                period: 10,
                timeout: Some(15),
                failure: 24,
            },
        )),
        volume_mounts: Some(vec![mount(names::SECRET_K8S_CERTS, PKI_DIR, true)]),
        security_context: Some(SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_BIND_SERVICE".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    deployment(
        cp,
        names::DEPLOYMENT_APISERVER,
        "kube-apiserver",
        config_hash,
        PodSpec {
            containers: vec![kine, apiserver],
            priority_class_name: Some("system-node-critical".into()),
            security_context: openshift_pod_security(openshift),
            volumes: Some(vec![secret_volume(
                names::SECRET_K8S_CERTS,
                names::SECRET_K8S_CERTS,
            )]),
            ..PodSpec::default()
        },
    )
}

/// Deployment `kube-controller-manager`. `config_hash` covers `k8s-certs`
/// and `cm-kubeconfig`.
pub fn controller_manager_deployment(
    cp: &ControlPlane,
    cfg: &OperatorConfig,
    openshift: OpenShift,
    config_hash: &str,
) -> Result<Deployment> {
    let timing = |failure| Timing {
        initial_delay: Some(10),
        period: 10,
        timeout: Some(15),
        failure,
    };
    let container = Container {
        name: "kube-controller-manager".into(),
        image: Some(cfg.images.kube_controller_manager.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(controller_manager_command(&cp.name_any())),
        ports: Some(vec![ContainerPort {
            container_port: SECURE_PORT,
            ..ContainerPort::default()
        }]),
        resources: Some(resources(("250m", "128Mi"), ("200m", "64Mi"))),
        liveness_probe: Some(https_probe("/healthz", CM_HEALTH_PORT, timing(8))),
        startup_probe: Some(https_probe("/healthz", CM_HEALTH_PORT, timing(24))),
        volume_mounts: Some(vec![
            mount(names::SECRET_K8S_CERTS, PKI_DIR, true),
            mount(names::SECRET_CM_KUBECONFIG, "/etc/kubernetes/", true),
        ]),
        ..Container::default()
    };
    deployment(
        cp,
        names::DEPLOYMENT_CONTROLLER_MANAGER,
        "kube-controller-manager",
        config_hash,
        PodSpec {
            containers: vec![container],
            security_context: openshift_pod_security(openshift),
            volumes: Some(vec![
                secret_volume(names::SECRET_K8S_CERTS, names::SECRET_K8S_CERTS),
                secret_volume(names::SECRET_CM_KUBECONFIG, names::SECRET_CM_KUBECONFIG),
            ]),
            ..PodSpec::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::postgres::database_for;
    use crate::fixtures::ControlPlaneExt;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn apiserver() -> Deployment {
        let cfg = OperatorConfig::default();
        let cp = ControlPlane::test("cp1");
        apiserver_deployment(&cp, &cfg, &database_for(&cp, &cfg), OpenShift(false), "h1").unwrap()
    }

    #[test]
    fn apiserver_deployment_is_kubeflex_s() {
        let d = apiserver();
        assert_eq!(d.metadata.name.as_deref(), Some("kube-apiserver"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("cp1-system"));
        let labels = d.metadata.labels.as_ref().unwrap();
        assert_eq!(
            (labels["component"].as_str(), labels["tier"].as_str()),
            ("kube-apiserver", "control-plane")
        );
        assert_eq!(d.metadata.owner_references.as_ref().unwrap()[0].name, "cp1");
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.selector.match_labels.unwrap(),
            meta::string_map(&[("app", "kube-apiserver")])
        );
        let tmpl = spec.template;
        assert_eq!(
            tmpl.metadata.as_ref().unwrap().labels.as_ref().unwrap()["app"],
            "kube-apiserver"
        );
        assert_eq!(
            tmpl.metadata.unwrap().annotations.unwrap()[names::ANNOTATION_CONFIG_HASH],
            "h1"
        );
        let pod = tmpl.spec.unwrap();
        assert_eq!(
            pod.priority_class_name.as_deref(),
            Some("system-node-critical")
        );
        assert!(pod.security_context.is_none());
        let vol = &pod.volumes.unwrap()[0];
        assert_eq!(
            vol.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("k8s-certs")
        );
        let [kine, api] = pod.containers.as_slice() else {
            panic!("two containers")
        };
        assert_eq!(kine.name, "kine");
        assert_eq!(kine.image.as_deref(), Some("rancher/kine:v0.11.4"));
        assert_eq!(kine.ports.as_ref().unwrap()[0].container_port, 2379);
        assert_eq!(api.name, "kube-apiserver");
        assert_eq!(
            api.image.as_deref(),
            Some("registry.k8s.io/kube-apiserver:v1.29.9")
        );
        assert_eq!(api.ports.as_ref().unwrap()[0].container_port, 9444);
        let cmd = api.command.as_ref().unwrap();
        assert_eq!(cmd.len(), 24);
        assert!(cmd.contains(&"--secure-port=9444".to_string()));
        assert!(cmd.contains(
            &"--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt".to_string()
        ));
        let m = &api.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str(), m.read_only),
            ("k8s-certs", "/etc/kubernetes/pki", Some(true))
        );
        let live = api.liveness_probe.as_ref().unwrap();
        let get = live.http_get.as_ref().unwrap();
        assert_eq!(
            (get.path.as_deref(), &get.port, get.scheme.as_deref()),
            (Some("/livez"), &IntOrString::Int(9444), Some("HTTPS"))
        );
        assert_eq!(
            (live.initial_delay_seconds, live.failure_threshold),
            (Some(10), Some(8))
        );
        assert_eq!(
            api.startup_probe.as_ref().unwrap().failure_threshold,
            Some(24)
        );
        assert_eq!(
            api.readiness_probe.as_ref().unwrap().period_seconds,
            Some(1)
        );
        let caps = api
            .security_context
            .as_ref()
            .unwrap()
            .capabilities
            .as_ref()
            .unwrap();
        assert_eq!(
            caps.add.as_deref(),
            Some(&["NET_BIND_SERVICE".to_string()][..])
        );
    }

    #[test]
    fn kine_gets_its_password_only_from_a_secret() {
        let d = apiserver();
        let pod = d.spec.unwrap().template.spec.unwrap();
        let kine = &pod.containers[0];
        assert_eq!(
            kine.command.as_ref().unwrap(),
            &[
                "kine",
                "--endpoint",
                "postgres://kflex_cp1@postgres-postgresql.kubeflex-system.svc:5432/kflex_cp1?sslmode=disable"
            ]
        );
        let env = &kine.env.as_ref().unwrap()[0];
        assert_eq!(env.name, "PGPASSWORD");
        assert!(env.value.is_none());
        let r = env
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (r.name.as_str(), r.key.as_str()),
            ("kine-database", "password")
        );
    }

    #[test]
    fn controller_manager_is_kubeflex_s() {
        let cp = ControlPlane::test("cp1");
        let d =
            controller_manager_deployment(&cp, &OperatorConfig::default(), OpenShift(true), "h")
                .unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("kube-controller-manager"));
        let spec = d.spec.unwrap();
        assert_eq!(
            spec.selector.match_labels.unwrap()["app"],
            "kube-controller-manager"
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        let c = &pod.containers[0];
        let cmd = c.command.as_ref().unwrap();
        assert_eq!(cmd[1], "--master=https://cp1.cp1-system");
        assert_eq!(cmd.len(), 16);
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/etc/kubernetes/pki", "/etc/kubernetes/"]);
        let probe = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(probe.port, IntOrString::Int(10257));
        let vols: Vec<_> = pod
            .volumes
            .unwrap()
            .iter()
            .map(|v| v.secret.as_ref().unwrap().secret_name.clone().unwrap())
            .collect();
        assert_eq!(vols, ["k8s-certs", "cm-kubeconfig"]);
    }
}
