//! Type `vcluster`: the objects vcluster chart 0.16.4 (release `vcluster`,
//! default values plus KubeFlex's `--set`s) creates, rendered natively — no
//! Helm at run time. The syncer writes Secret `vc-vcluster` (key `config`,
//! external URL via `--out-kube-config-server`); the operator adds
//! `config-incluster` (server `https://vcluster.<ns>`), as KubeFlex does.
//!
//! Not rendered: the chart's CoreDNS ConfigMap (DNS inside the vcluster;
//! the syncer runs with `--coredns-enabled=false`), chart/heritage labels.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, Secret,
    SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::pod::{
    Timing, data_claim, empty_dir, env, env_from_field, https_probe, mount, resources,
};
use super::{BuildError, Result};
use crate::api::ControlPlane;
use crate::config::OperatorConfig;
use crate::kubeconfig::{self, Kubeconfig};
use crate::profile::{Profile, VCLUSTER_SELECTOR};
use crate::{meta, names};

const RELEASE: &str = names::VCLUSTER_RELEASE;
const SERVICE_ACCOUNT: &str = "vc-vcluster";
const WORKLOAD_SERVICE_ACCOUNT: &str = "vc-workload-vcluster";

fn metadata(cp: &ControlPlane, name: &str) -> Result<ObjectMeta> {
    let mut m = meta::in_cp_namespace(cp, name, "vcluster")?;
    m.labels.get_or_insert_default().extend(meta::string_map(&[
        ("app", "vcluster"),
        ("release", RELEASE),
    ]));
    Ok(m)
}

/// ServiceAccounts `vc-vcluster` (the syncer) and `vc-workload-vcluster`
/// (pods synced from the vcluster).
pub fn service_accounts(cp: &ControlPlane) -> Result<Vec<ServiceAccount>> {
    [SERVICE_ACCOUNT, WORKLOAD_SERVICE_ACCOUNT]
        .into_iter()
        .map(|name| {
            Ok(ServiceAccount {
                metadata: metadata(cp, name)?,
                ..ServiceAccount::default()
            })
        })
        .collect()
}

/// The ClusterRole with the vcluster chart's rules, installed with the
/// operator (`config/rbac/vcluster_cluster_role.yaml`) and bound per
/// control plane, so the operator never creates a Role granting rights it
/// does not hold (pods/exec, ...): binding it by name needs only `bind`.
pub const VCLUSTER_CLUSTER_ROLE: &str = "kubeflex-vcluster";

/// RoleBinding `kubeflex-vcluster`: the syncer's ServiceAccount gets
/// [`VCLUSTER_CLUSTER_ROLE`] in `<cp>-system` only. (Its own name: the
/// `roleRef` of the `vcluster` binding earlier versions made is immutable.)
pub fn role_binding(cp: &ControlPlane) -> Result<RoleBinding> {
    Ok(RoleBinding {
        metadata: metadata(cp, VCLUSTER_CLUSTER_ROLE)?,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: VCLUSTER_CLUSTER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SERVICE_ACCOUNT.into(),
            namespace: Some(names::namespace_of(&cp.name_any())),
            ..Subject::default()
        }]),
    })
}

fn https_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(8443)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// Services: `vcluster` (443 and kubelet 10250 → 8443), `vcluster-headless`
/// (the StatefulSet's), and KubeFlex's NodePort `vcluster-nodeport`.
pub fn services(cp: &ControlPlane) -> Result<Vec<Service>> {
    let selector = || Some(meta::string_map(VCLUSTER_SELECTOR));
    Ok(vec![
        Service {
            metadata: metadata(cp, RELEASE)?,
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                ports: Some(vec![https_port("https", 443), https_port("kubelet", 10250)]),
                selector: selector(),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
        Service {
            metadata: metadata(cp, "vcluster-headless")?,
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                ports: Some(vec![https_port("https", 443)]),
                selector: selector(),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
        Service {
            metadata: metadata(cp, "vcluster-nodeport")?,
            spec: Some(ServiceSpec {
                type_: Some("NodePort".into()),
                ports: Some(vec![https_port("https", 443)]),
                selector: selector(),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
    ])
}

/// The k3s command line the chart builds (run through `/bin/sh -c` so k3s is
/// not pid 1, as the chart explains).
fn k3s_command(cfg: &OperatorConfig) -> String {
    let cidr = cfg
        .vcluster
        .service_cidr
        .clone()
        .unwrap_or_else(|| "$(SERVICE_CIDR)".into());
    [
        "/bin/k3s server",
        "--write-kubeconfig=/data/k3s-config/kube-config.yaml",
        "--data-dir=/data",
        "--disable=traefik,servicelb,metrics-server,local-storage,coredns",
        "--disable-network-policy",
        "--disable-agent",
        "--disable-cloud-controller",
        "--flannel-backend=none",
        "--kube-apiserver-arg=bind-address=127.0.0.1",
        "--disable-scheduler",
        "--kube-controller-manager-arg=controllers=*,-nodeipam,-nodelifecycle,-persistentvolume-binder,-attachdetach,-persistentvolume-expander,-cloud-node-lifecycle,-ttl",
        "--kube-apiserver-arg=endpoint-reconciler-type=none",
        &format!("--service-cidr={cidr}"),
        "&& true",
    ]
    .join(" ")
}

/// Syncer arguments: the chart's for default values, then KubeFlex's extras
/// (external host as SAN and kubeconfig server, the host container as SAN),
/// plus the in-cluster name as a SAN.
pub fn syncer_args(cp_name: &str, cfg: &OperatorConfig, route_host: Option<&str>) -> Vec<String> {
    let (host, port) = match route_host {
        Some(h) => (h.to_string(), 443),
        None => (cfg.external_host(cp_name), cfg.external_port),
    };
    vec![
        format!("--name={RELEASE}"),
        "--kube-config=/data/k3s-config/kube-config.yaml".into(),
        format!("--service-account={WORKLOAD_SERVICE_ACCOUNT}"),
        "--kube-config-context-name=my-vcluster".into(),
        "--leader-elect=false".into(),
        "--sync=-ingressclasses".into(),
        "--coredns-enabled=false".into(),
        format!("--tls-san={host}"),
        format!("--out-kube-config-server=https://{host}:{port}"),
        format!("--tls-san={}", cfg.host_container),
        format!("--tls-san={RELEASE}.{}", names::namespace_of(cp_name)),
    ]
}

/// StatefulSet `vcluster` with its `data` PVC template.
pub fn stateful_set(
    cp: &ControlPlane,
    cfg: &OperatorConfig,
    route_host: Option<&str>,
) -> Result<StatefulSet> {
    let cp_name = cp.name_any();
    let security = || SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_user: Some(0),
        run_as_group: Some(0),
        ..SecurityContext::default()
    };
    let mut k3s_env = Vec::new();
    if cfg.vcluster.service_cidr.is_none() {
        k3s_env.push(EnvVar {
            name: "SERVICE_CIDR".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: format!("vc-cidr-{RELEASE}"),
                    key: "cidr".into(),
                    ..ConfigMapKeySelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    let k3s = Container {
        name: "vcluster".into(),
        image: Some(cfg.images.vcluster_k3s.clone()),
        command: Some(vec!["/bin/sh".into()]),
        args: Some(vec!["-c".into(), k3s_command(cfg)]),
        env: Some(k3s_env),
        security_context: Some(security()),
        volume_mounts: Some(vec![
            mount("config", "/etc/rancher", false),
            mount("data", "/data", false),
        ]),
        resources: Some({
            let mut r = resources(("0", "2Gi"), ("200m", "256Mi"));
            // The chart limits memory only.
            r.limits.get_or_insert_default().remove("cpu");
            r
        }),
        ..Container::default()
    };
    let probe = |path: &str, initial| {
        https_probe(
            path,
            8443,
            Timing {
                initial_delay: initial,
                period: 2,
                timeout: None,
                failure: 60,
            },
        )
    };
    let syncer = Container {
        name: "syncer".into(),
        image: Some(cfg.images.vcluster_syncer.clone()),
        args: Some(syncer_args(&cp_name, cfg, route_host)),
        liveness_probe: Some(probe("/healthz", Some(60))),
        readiness_probe: Some(probe("/readyz", None)),
        security_context: Some(security()),
        env: Some(vec![
            env_from_field("POD_IP", "status.podIP"),
            env_from_field("VCLUSTER_NODE_NAME", "spec.nodeName"),
            // An operator does not phone home on its users' behalf.
            env("VCLUSTER_TELEMETRY_CONFIG", r#"{"disabled":true}"#),
        ]),
        volume_mounts: Some(vec![
            mount("helm-cache", "/.cache/helm", false),
            mount("tmp", "/tmp", false),
            mount("data", "/data", false),
        ]),
        resources: Some(resources(("1000m", "512Mi"), ("20m", "64Mi"))),
        ..Container::default()
    };
    let mut pod_labels = meta::labels(&cp_name, "vcluster");
    pod_labels.extend(meta::string_map(VCLUSTER_SELECTOR));
    let storage = &cfg.vcluster.storage;
    Ok(StatefulSet {
        metadata: metadata(cp, RELEASE)?,
        spec: Some(StatefulSetSpec {
            service_name: Some("vcluster-headless".into()),
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(meta::string_map(VCLUSTER_SELECTOR)),
                ..LabelSelector::default()
            },
            volume_claim_templates: Some(vec![data_claim(storage)]),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    termination_grace_period_seconds: Some(10),
                    service_account_name: Some(SERVICE_ACCOUNT.into()),
                    volumes: Some(vec![
                        empty_dir("helm-cache"),
                        empty_dir("tmp"),
                        empty_dir("config"),
                    ]),
                    containers: vec![k3s, syncer],
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

/// The off-cluster key the operator writes itself: `config-external` when
/// `--external-address` names the ingress and an Ingress exposes the API
/// (a Route keeps its own host); `None` leaves the syncer's `config`.
pub fn external_key(
    cp_name: &str,
    cfg: &OperatorConfig,
    route_host: Option<&str>,
) -> Option<&'static str> {
    cfg.external_tls_server_name(cp_name, route_host)
        .map(|_| names::KEY_CONFIG_EXTERNAL)
}

/// The apply patch adding our keys to the syncer's `vc-vcluster`:
/// `config-incluster` (`config` with every server set to the in-cluster
/// URL) and, per [`external_key`], `config-external` (`config` with the
/// external address as server and `<cp>.<domain>` as `tls-server-name`, so
/// it works without DNS). Only those keys and our labels: the syncer owns
/// the rest, and may own the Secret's controller reference, so we add none.
/// A key left out of a later patch is removed by server-side apply.
pub fn kubeconfig_patch(
    cp: &ControlPlane,
    profile: &Profile,
    cfg: &OperatorConfig,
    route_host: Option<&str>,
    vc_config: &Kubeconfig,
) -> Result<Secret> {
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    let render = |kc: &Kubeconfig, key: &str| {
        kubeconfig::to_yaml(kc, &format!("vc-vcluster/{key}"))
            .map(|yaml| ByteString(yaml.into_bytes()))
            .map_err(|source| BuildError::Kubeconfig {
                namespace: ns.clone(),
                name: names::SECRET_VC_VCLUSTER.into(),
                source: Box::new(source),
            })
    };
    let server = profile.in_cluster_url(&cp_name).unwrap_or_default();
    let mut data = BTreeMap::from([(
        names::KEY_CONFIG_INCLUSTER.to_string(),
        render(
            &kubeconfig::with_server(vc_config, &server),
            names::KEY_CONFIG_INCLUSTER,
        )?,
    )]);
    if let Some(key) = external_key(&cp_name, cfg, route_host) {
        let external = kubeconfig::with_tls_server_name(
            kubeconfig::with_server(
                vc_config,
                &kubeconfig::external_url(&cp_name, cfg, route_host),
            ),
            cfg.external_tls_server_name(&cp_name, route_host),
        );
        data.insert(key.to_string(), render(&external, key)?);
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(names::SECRET_VC_VCLUSTER.into()),
            namespace: Some(ns),
            labels: Some(meta::labels(&cp_name, "kubeconfig")),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlPlaneType::Vcluster;
    use crate::fixtures::ControlPlaneExt;
    use crate::kubeconfig::{Credentials, EntryNames};

    fn cp() -> ControlPlane {
        ControlPlane::test("cp2").of_type(Vcluster)
    }

    #[test]
    fn services_are_the_chart_s_and_kubeflex_s() {
        let s = services(&cp()).unwrap();
        let names: Vec<_> = s.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
        assert_eq!(
            names,
            ["vcluster", "vcluster-headless", "vcluster-nodeport"]
        );
        let main = s[0].spec.as_ref().unwrap();
        let ports: Vec<_> = main
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.port, p.target_port.clone()))
            .collect();
        assert_eq!(
            ports,
            [
                (443, Some(IntOrString::Int(8443))),
                (10250, Some(IntOrString::Int(8443)))
            ]
        );
        assert_eq!(main.selector.as_ref().unwrap()["release"], "vcluster");
        assert_eq!(
            s[1].spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("None")
        );
        assert_eq!(
            s[2].spec.as_ref().unwrap().type_.as_deref(),
            Some("NodePort")
        );
    }

    #[test]
    fn stateful_set_has_k3s_syncer_and_a_data_pvc() {
        let s = stateful_set(&cp(), &OperatorConfig::default(), None).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("vcluster"));
        let spec = s.spec.unwrap();
        assert_eq!(spec.service_name.as_deref(), Some("vcluster-headless"));
        let pvc = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(pvc.metadata.name.as_deref(), Some("data"));
        assert_eq!(
            pvc.spec
                .as_ref()
                .unwrap()
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()["storage"]
                .0,
            "5Gi"
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("vc-vcluster"));
        let [k3s, syncer] = pod.containers.as_slice() else {
            panic!("two containers")
        };
        assert_eq!(k3s.image.as_deref(), Some("rancher/k3s:v1.27.2-k3s1"));
        assert!(k3s.args.as_ref().unwrap()[1].contains("--service-cidr=$(SERVICE_CIDR)"));
        let cidr = k3s.env.as_ref().unwrap()[0]
            .value_from
            .as_ref()
            .unwrap()
            .config_map_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(cidr.name, "vc-cidr-vcluster");
        let args = syncer.args.as_ref().unwrap();
        assert!(args.contains(&"--tls-san=cp2.localtest.me".to_string()));
        assert!(
            args.contains(&"--out-kube-config-server=https://cp2.localtest.me:9443".to_string())
        );
        assert!(args.contains(&"--tls-san=kubeflex-control-plane".to_string()));
        assert!(args.contains(&"--tls-san=vcluster.cp2-system".to_string()));
        let routed = syncer_args("cp2", &OperatorConfig::default(), Some("cp2.apps.x"));
        assert!(routed.contains(&"--out-kube-config-server=https://cp2.apps.x:443".to_string()));
    }

    #[test]
    fn rbac_binds_the_syncer_to_the_installed_cluster_role() {
        let binding = role_binding(&cp()).unwrap();
        assert_eq!(binding.metadata.namespace.as_deref(), Some("cp2-system"));
        assert_eq!(
            (
                binding.role_ref.kind.as_str(),
                binding.role_ref.name.as_str()
            ),
            ("ClusterRole", VCLUSTER_CLUSTER_ROLE)
        );
        let installed: serde_json::Value = serde_saphyr::from_str(include_str!(
            "../../../config/rbac/vcluster_cluster_role.yaml"
        ))
        .unwrap();
        assert_eq!(installed["metadata"]["name"], VCLUSTER_CLUSTER_ROLE);
        let text = installed["rules"].to_string();
        assert!(
            text.contains("pods/exec") && text.contains("secrets"),
            "{text}"
        );
        assert_eq!(binding.subjects.unwrap()[0].name, "vc-vcluster");
        let sas = service_accounts(&cp()).unwrap();
        assert_eq!(sas.len(), 2);
    }

    #[test]
    fn config_incluster_points_at_the_service() {
        let vc = kubeconfig::render(
            &EntryNames {
                cluster: "my-vcluster".into(),
                user: "my-vcluster".into(),
                context: "my-vcluster".into(),
                namespace: None,
            },
            "https://cp2.localtest.me:9443",
            "CA",
            Credentials::Token("t"),
        );
        let profile = Profile::of(Vcluster);
        let cfg = OperatorConfig::default();
        let s = kubeconfig_patch(&cp(), &profile, &cfg, None, &vc).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("vc-vcluster"));
        assert!(s.metadata.owner_references.is_none());
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["config-incluster"]);
        let kc = kubeconfig::parse(
            std::str::from_utf8(&data["config-incluster"].0).unwrap(),
            "k",
        )
        .unwrap();
        assert_eq!(kc.server(), Some("https://vcluster.cp2-system"));
        assert_eq!(kc.current_context, "my-vcluster");
        assert_eq!(external_key("cp2", &cfg, None), None);
    }

    #[test]
    fn external_address_adds_config_external_with_the_tls_server_name() {
        let vc = kubeconfig::render(
            &EntryNames {
                cluster: "my-vcluster".into(),
                user: "my-vcluster".into(),
                context: "my-vcluster".into(),
                namespace: None,
            },
            "https://cp2.localtest.me:9443",
            "CA",
            Credentials::Token("t"),
        );
        let cfg = OperatorConfig {
            external_address: Some("10.0.0.5".into()),
            external_port: 31443,
            ..OperatorConfig::default()
        };
        let profile = Profile::of(Vcluster);
        let s = kubeconfig_patch(&cp(), &profile, &cfg, None, &vc).unwrap();
        let data = s.data.unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["config-external", "config-incluster"]
        );
        let text = |k: &str| std::str::from_utf8(&data[k].0).unwrap().to_string();
        let ext = kubeconfig::parse(&text("config-external"), "k").unwrap();
        assert_eq!(ext.server(), Some("https://10.0.0.5:31443"));
        assert_eq!(
            ext.clusters[0].cluster.other["tls-server-name"],
            "cp2.localtest.me"
        );
        assert_eq!(ext.users, vc.users);
        assert_eq!(ext.current_context, "my-vcluster");
        // The in-cluster one carries no tls-server-name.
        let inc = kubeconfig::parse(&text("config-incluster"), "k").unwrap();
        assert!(inc.clusters[0].cluster.other.is_empty());
        assert_eq!(
            external_key("cp2", &cfg, None),
            Some(names::KEY_CONFIG_EXTERNAL)
        );
        // A Route keeps its own host: no extra key.
        let routed = kubeconfig_patch(&cp(), &profile, &cfg, Some("cp2.apps.x"), &vc).unwrap();
        assert_eq!(routed.data.unwrap().len(), 1);
        assert_eq!(external_key("cp2", &cfg, Some("cp2.apps.x")), None);
    }
}
