//! Type `k3s`: the k3s server as KubeFlex runs it (StatefulSet `k3s-server`,
//! PVC `k3s-data`, Service `k3s` 443→6443, server labels), with a simpler
//! bootstrap: the operator generates k3s' CAs (Secret `k3s-ca`), an init
//! container places them where k3s looks for them before it first starts,
//! and the operator itself writes Secret `k3s-config` (`config`,
//! `config-incluster`, `token`). No scripts, no Job, no cluster-wide Secret
//! patch permission, nothing downloaded at run time (KubeFlex's defects).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, SeccompProfile, Secret, SecurityContext, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;

use super::pod::{claim_spec, empty_dir, env_from_secret, mount, secret_volume};
use super::secrets::{opaque, text_data};
use super::{BuildError, Result};
use crate::api::ControlPlane;
use crate::config::OperatorConfig;
use crate::kubeconfig::{self, Credentials, EntryNames};
use crate::pki::{CertAndKey, K3S_CA_FILES, K3S_TOKEN_KEY, K3sCas};
use crate::profile::{K3S_SERVER_LABELS, Profile};
use crate::{meta, names};

const DATA_DIR: &str = "/var/lib/rancher/k3s";
const DATA_PVC: &str = "k3s-data";

/// Secret `k3s-ca`: the CAs and the token secret given to k3s.
pub fn ca_secret(cp: &ControlPlane, cas: &K3sCas) -> Result<Secret> {
    Ok(opaque(
        meta::in_cp_namespace(cp, names::SECRET_K3S_CA, "pki")?,
        cas.to_secret_data(),
    ))
}

fn server_labels(cp_name: &str) -> BTreeMap<String, String> {
    meta::labels_with(cp_name, "k3s-server", K3S_SERVER_LABELS)
}

/// PVC `k3s-data` (KubeFlex's name, so a KubeFlex k3s keeps its data), with
/// the configured storage class (KubeFlex hard-codes `standard`).
pub fn data_pvc(cp: &ControlPlane, cfg: &OperatorConfig) -> Result<PersistentVolumeClaim> {
    let mut metadata = meta::in_cp_namespace(cp, DATA_PVC, "k3s-server")?;
    metadata.labels = Some(server_labels(&cp.name_any()));
    Ok(PersistentVolumeClaim {
        metadata,
        spec: Some(claim_spec(cfg.k3s.storage_class.clone(), &cfg.k3s.size)),
        ..PersistentVolumeClaim::default()
    })
}

/// The init container's script: copy each CA file unless k3s already has
/// one (k3s only generates CAs that are missing; replacing a CA under a
/// running cluster would invalidate every certificate it issued).
fn install_ca_script() -> String {
    let files = K3S_CA_FILES.join(" ");
    format!(
        "set -e; dst={DATA_DIR}/server/tls; mkdir -p \"$dst\"; \
         for f in {files}; do [ -e \"$dst/$f\" ] || cp \"/ca/$f\" \"$dst/$f\"; done"
    )
}

/// k3s server arguments: KubeFlex's, plus the in-cluster names as SANs (the
/// in-cluster kubeconfig's `k3s.<ns>.svc` is not a SAN in KubeFlex).
pub fn server_args(cp_name: &str, cfg: &OperatorConfig) -> Vec<String> {
    let ns = names::namespace_of(cp_name);
    vec![
        "server".into(),
        format!("--tls-san={}", cfg.external_host(cp_name)),
        format!("--tls-san={}.{ns}.svc", names::SERVICE_K3S),
        format!("--tls-san={}.{ns}", names::SERVICE_K3S),
        format!("--data-dir={DATA_DIR}"),
    ]
}

/// StatefulSet `k3s-server`. `config_hash` covers Secret `k3s-ca`.
pub fn stateful_set(
    cp: &ControlPlane,
    cfg: &OperatorConfig,
    config_hash: &str,
) -> Result<StatefulSet> {
    let cp_name = cp.name_any();
    let mut metadata = meta::in_cp_namespace(cp, names::STATEFULSET_K3S, "k3s-server")?;
    metadata.labels = Some(server_labels(&cp_name));
    let security = SecurityContext {
        privileged: Some(true),
        read_only_root_filesystem: Some(false),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    };
    let data_volume = Volume {
        name: DATA_PVC.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: DATA_PVC.into(),
            ..PersistentVolumeClaimVolumeSource::default()
        }),
        ..Volume::default()
    };
    let init = Container {
        name: "install-ca".into(),
        image: Some(cfg.images.k3s.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), install_ca_script()]),
        volume_mounts: Some(vec![
            mount(DATA_PVC, DATA_DIR, false),
            mount("k3s-ca", "/ca", true),
        ]),
        ..Container::default()
    };
    let server = Container {
        name: "k3s-server".into(),
        image: Some(cfg.images.k3s.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(server_args(&cp_name, cfg)),
        env: Some(vec![env_from_secret(
            "K3S_TOKEN",
            names::SECRET_K3S_CA,
            K3S_TOKEN_KEY,
        )]),
        // k3s serves on 6443 (KubeFlex declares 9444, where nothing listens).
        ports: Some(vec![ContainerPort {
            name: Some("https".into()),
            container_port: 6443,
            ..ContainerPort::default()
        }]),
        security_context: Some(security),
        volume_mounts: Some(vec![
            mount(DATA_PVC, DATA_DIR, false),
            mount("k3s-config", "/etc/rancher/k3s", false),
        ]),
        ..Container::default()
    };
    let selector = meta::string_map(K3S_SERVER_LABELS);
    Ok(StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names::SERVICE_K3S.into()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(server_labels(&cp_name)),
                    annotations: Some(meta::string_map(&[(
                        names::ANNOTATION_CONFIG_HASH,
                        config_hash,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(vec![init]),
                    containers: vec![server],
                    restart_policy: Some("Always".into()),
                    volumes: Some(vec![
                        data_volume,
                        secret_volume("k3s-ca", names::SECRET_K3S_CA),
                        // k3s writes its own k3s.yaml here; nobody reads it.
                        empty_dir("k3s-config"),
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

/// Secret `k3s-config`: `config` (external URL), `config-incluster`
/// (`https://k3s.<ns>.svc`), both trusting the server CA and authenticating
/// as `system:admin` (names `default` ×3, as k3s writes them), and `token`
/// (k3s' full join token).
pub fn config_secret(
    cp: &ControlPlane,
    profile: &Profile,
    cfg: &OperatorConfig,
    cas: &K3sCas,
    admin: &CertAndKey,
    route_host: Option<&str>,
) -> Result<Secret> {
    let cp_name = cp.name_any();
    let ns = names::namespace_of(&cp_name);
    let ca = cas.server_ca.cert_pem();
    let entry = EntryNames::k3s();
    let render = |server: &str, key: &str, sni: Option<String>| {
        let kc = kubeconfig::with_tls_server_name(
            kubeconfig::render(&entry, server, ca, Credentials::Certificate(admin)),
            sni,
        );
        kubeconfig::to_yaml(&kc, &format!("{}/{key}", names::SECRET_K3S_CONFIG)).map_err(|source| {
            BuildError::Kubeconfig {
                namespace: ns.clone(),
                name: names::SECRET_K3S_CONFIG.into(),
                source: Box::new(source),
            }
        })
    };
    let external = kubeconfig::external_url(&cp_name, cfg, route_host);
    let internal = profile.in_cluster_url(&cp_name).unwrap_or_default();
    Ok(opaque(
        meta::in_cp_namespace(cp, names::SECRET_K3S_CONFIG, "kubeconfig")?,
        text_data([
            (
                names::KEY_CONFIG,
                render(
                    &external,
                    names::KEY_CONFIG,
                    cfg.external_tls_server_name(&cp_name, route_host),
                )?,
            ),
            (
                names::KEY_CONFIG_INCLUSTER,
                render(&internal, names::KEY_CONFIG_INCLUSTER, None)?,
            ),
            (names::KEY_TOKEN, cas.full_token()),
        ]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ControlPlaneType::K3s;
    use crate::fixtures::{ControlPlaneExt, now};

    fn cp() -> ControlPlane {
        ControlPlane::test("cp1").of_type(K3s)
    }

    #[test]
    fn stateful_set_runs_k3s_as_kubeflex_with_our_cas() {
        let s = stateful_set(&cp(), &OperatorConfig::default(), "h").unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("k3s-server"));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()["controller.kubeflex.dev/type"],
            "k3s"
        );
        let spec = s.spec.unwrap();
        assert_eq!(
            spec.selector.match_labels.unwrap(),
            meta::string_map(K3S_SERVER_LABELS)
        );
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("rancher/k3s:v1.30.13-k3s1"));
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "server",
                "--tls-san=cp1.localtest.me",
                "--tls-san=k3s.cp1-system.svc",
                "--tls-san=k3s.cp1-system",
                "--data-dir=/var/lib/rancher/k3s"
            ]
        );
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 6443);
        let token = c.env.as_ref().unwrap()[0]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (token.name.as_str(), token.key.as_str()),
            ("k3s-ca", "token")
        );
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/var/lib/rancher/k3s", "/etc/rancher/k3s"]);
        let init = &pod.init_containers.unwrap()[0];
        let script = &init.command.as_ref().unwrap()[2];
        assert!(
            script.contains("server-ca.crt") && script.contains("[ -e"),
            "{script}"
        );
        let vols = pod.volumes.unwrap();
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "k3s-data"
        );
        assert_eq!(
            vols[1].secret.as_ref().unwrap().secret_name.as_deref(),
            Some("k3s-ca")
        );
    }

    #[test]
    fn pvc_uses_the_configured_storage_class() {
        let mut cfg = OperatorConfig::default();
        assert_eq!(
            data_pvc(&cp(), &cfg)
                .unwrap()
                .spec
                .unwrap()
                .storage_class_name,
            None
        );
        cfg.k3s.storage_class = Some("local-path".into());
        let pvc = data_pvc(&cp(), &cfg).unwrap();
        assert_eq!(pvc.metadata.name.as_deref(), Some("k3s-data"));
        let spec = pvc.spec.unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "1Gi"
        );
    }

    #[test]
    fn config_secret_has_kubeflex_keys_and_urls() {
        let cfg = OperatorConfig::default();
        let cas = K3sCas::generate(&cfg.pki, now()).unwrap();
        let admin = cas
            .client_ca
            .issue_client(&K3sCas::admin_identity(), &cfg.pki, now())
            .unwrap();
        let s = config_secret(&cp(), &Profile::of(K3s), &cfg, &cas, &admin, None).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("k3s-config"));
        let data = s.data.unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["config", "config-incluster", "token"]
        );
        let kc = |k: &str| kubeconfig::parse(std::str::from_utf8(&data[k].0).unwrap(), k).unwrap();
        assert_eq!(kc("config").server(), Some("https://cp1.localtest.me:9443"));
        assert_eq!(
            kc("config-incluster").server(),
            Some("https://k3s.cp1-system.svc")
        );
        assert_eq!(kc("config").current_context, "default");
        assert!(
            std::str::from_utf8(&data["token"].0)
                .unwrap()
                .starts_with("K10")
        );
        let ca = ca_secret(&cp(), &cas).unwrap();
        assert_eq!(ca.data.unwrap().len(), 7);
    }
}
