//! End to end against testenv: one test per control-plane type (apply,
//! Ready, every object and Secret key, the real kubectl through the SNI
//! ingress and through the Service mapping, delete, nothing left), plus
//! faults and bad specs. Every test also checks that the captured logs hold
//! no key, token or password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use support::{Harness, assert_logs_clean, condition, ok};

fn cp_yaml(name: &str, type_: &str) -> String {
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n  type: {type_}\n"
    )
}

async fn gone<K>(h: &Harness, ns: Option<&str>, name: &str) -> bool
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let ar = kube::api::ApiResource::erase::<K>(&());
    let api: Api<kube::api::DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(h.client.clone(), ns, &ar),
        None => Api::all_with(h.client.clone(), &ar),
    };
    api.get_opt(name).await.unwrap().is_none()
}

fn secret_keys(s: &Secret) -> Vec<String> {
    s.data.as_ref().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8s_control_plane_end_to_end() {
    let h = Harness::start().await;
    h.create_cp(&cp_yaml("alpha", "k8s")).await;
    let cp = h.wait_ready("alpha", 60).await;
    let ns = "alpha-system";
    let status = cp.status.clone().unwrap();
    let r = status.secret_ref.unwrap();
    assert_eq!(
        (
            r.namespace.as_str(),
            r.name.as_str(),
            r.key.as_str(),
            r.in_cluster_key.as_str()
        ),
        (ns, "admin-kubeconfig", "kubeconfig", "kubeconfig-incluster")
    );
    assert_eq!(condition(&cp, "Synced").unwrap().0, "True");
    assert_eq!(status.observed_generation, 1);
    assert!(
        cp.finalizers()
            .contains(&"kflex.kubestellar.org/finalizer".to_string())
    );

    // Objects and keys.
    let certs = h.secret(ns, "k8s-certs").await.unwrap();
    for key in [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
        "front-proxy-ca.crt",
        "front-proxy-client.crt",
        "front-proxy-client.key",
        "sa.key",
        "sa.pub",
    ] {
        assert!(
            secret_keys(&certs).contains(&key.to_string()),
            "k8s-certs lacks {key}"
        );
    }
    let admin = h.secret(ns, "admin-kubeconfig").await.unwrap();
    assert_eq!(secret_keys(&admin), ["kubeconfig", "kubeconfig-incluster"]);
    assert_eq!(
        secret_keys(&h.secret(ns, "cm-kubeconfig").await.unwrap()),
        ["kubeconfig"]
    );
    assert_eq!(
        secret_keys(&h.secret(ns, "kine-database").await.unwrap()),
        ["password", "username"]
    );
    assert!(
        h.secret("kubeflex-system", "postgres-postgresql")
            .await
            .is_some()
    );
    for d in ["kube-apiserver", "kube-controller-manager"] {
        assert!(!gone::<Deployment>(&h, Some(ns), d).await, "Deployment {d}");
    }
    assert!(!gone::<Service>(&h, Some(ns), "alpha").await);
    assert!(!gone::<Ingress>(&h, Some(ns), "alpha").await);
    assert!(!gone::<StatefulSet>(&h, Some("kubeflex-system"), "postgres-postgresql").await);
    assert!(!gone::<Job>(&h, Some("kubeflex-system"), "kflex-db-provision-alpha").await);

    // The real kubectl reaches the tenant through the ingress, TLS verified.
    let external = h.secret_text(ns, "admin-kubeconfig", "kubeconfig").await;
    let out = ok(&h.kubectl_through_ingress("alpha", &external).await);
    assert!(out.contains("default"), "{out}");
    let internal = h
        .secret_text(ns, "admin-kubeconfig", "kubeconfig-incluster")
        .await;
    let out = ok(&h.kubectl_in_cluster("alpha", &internal, "alpha", 443).await);
    assert!(out.contains("kube-system"), "{out}");

    // Idle: nothing more is written.
    let before = h.env.api().store.current_rv();
    let writes = h.metrics.total_writes();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        h.metrics.total_writes(),
        writes,
        "the operator wrote while idle"
    );
    let _ = before;
    h.assert_no_secret_leaked().await;

    // Delete: everything goes.
    h.delete_cp("alpha").await;
    h.eventually("alpha to be gone", 60, || async {
        h.cps().get_opt("alpha").await.unwrap().is_none()
    })
    .await;
    h.eventually("namespace alpha-system to be gone", 60, || {
        gone::<Namespace>(&h, None, ns)
    })
    .await;
    assert!(gone::<Job>(&h, Some("kubeflex-system"), "kflex-db-provision-alpha").await);
    assert!(gone::<Job>(&h, Some("kubeflex-system"), "kflex-db-teardown-alpha").await);
    assert!(gone::<Secret>(&h, Some("kubeflex-system"), "kflex-db-alpha").await);

    let password = String::from_utf8(
        h.secret("kubeflex-system", "postgres-postgresql")
            .await
            .unwrap()
            .data
            .unwrap()["postgres-password"]
            .0
            .clone(),
    )
    .unwrap();
    assert_logs_clean(&[password]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_control_plane_end_to_end() {
    let h = Harness::start().await;
    h.create_cp(&cp_yaml("hosty", "host")).await;
    let cp = h.wait_ready("hosty", 30).await;
    let ns = "hosty-system";
    let r = cp.status.unwrap().secret_ref.unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str(), r.in_cluster_key.as_str()),
        ("admin-kubeconfig", "", "kubeconfig-incluster")
    );
    let admin = h.secret(ns, "admin-kubeconfig").await.unwrap();
    assert_eq!(secret_keys(&admin), ["kubeconfig-incluster"]);
    assert!(!gone::<ClusterRoleBinding>(&h, None, "hosty-binding").await);
    // The in-cluster kubeconfig reaches the hosting API via Service default/kubernetes.
    let yaml = h
        .secret_text(ns, "admin-kubeconfig", "kubeconfig-incluster")
        .await;
    let out = ok(&h.kubectl_in_cluster_default(&yaml).await);
    assert!(out.contains("hosty-system"), "{out}");
    let token = h.secret_text(ns, "hosty", "token").await;
    h.delete_cp("hosty").await;
    h.eventually("hosty to be gone", 30, || async {
        h.cps().get_opt("hosty").await.unwrap().is_none()
    })
    .await;
    h.eventually("its binding to be gone", 30, || {
        gone::<ClusterRoleBinding>(&h, None, "hosty-binding")
    })
    .await;
    h.eventually("its namespace to be gone", 30, || {
        gone::<Namespace>(&h, None, ns)
    })
    .await;
    assert_logs_clean(&[token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_restart_reuses_certificates_and_drift_is_corrected() {
    let mut h = Harness::start().await;
    h.create_cp(&cp_yaml("beta", "k8s")).await;
    let ns = "beta-system";
    // Kill the operator as soon as the PKI exists, mid-provisioning.
    h.eventually("k8s-certs", 30, || async {
        h.secret(ns, "k8s-certs").await.is_some()
    })
    .await;
    h.kill_operator();
    let ca = h.secret_text(ns, "k8s-certs", "ca.crt").await;
    let serving = h.secret_text(ns, "k8s-certs", "apiserver.crt").await;
    h.start_operator();
    h.wait_ready("beta", 60).await;
    assert_eq!(
        h.secret_text(ns, "k8s-certs", "ca.crt").await,
        ca,
        "the CA was replaced"
    );
    assert_eq!(
        h.secret_text(ns, "k8s-certs", "apiserver.crt").await,
        serving,
        "the serving certificate was replaced"
    );

    // A deleted admin-kubeconfig comes back, usable.
    Api::<Secret>::namespaced(h.client.clone(), ns)
        .delete("admin-kubeconfig", &DeleteParams::default())
        .await
        .unwrap();
    h.eventually("admin-kubeconfig to come back", 30, || async {
        h.secret(ns, "admin-kubeconfig").await.is_some()
    })
    .await;
    let external = h.secret_text(ns, "admin-kubeconfig", "kubeconfig").await;
    ok(&h.kubectl_through_ingress("beta", &external).await);

    // A hand-edited Deployment is put back.
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), ns);
    deployments
        .patch(
            "kube-apiserver",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    h.eventually("replicas back to 1", 30, || async {
        deployments
            .get("kube-apiserver")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas
            == Some(1)
    })
    .await;
    assert_logs_clean(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_end_not_ready_with_a_message_and_others_are_unaffected() {
    let h = Harness::start().await;
    h.create_cp(&cp_yaml("good", "host")).await;
    // external without bootstrapSecretRef
    h.create_cp(&cp_yaml("noref", "external")).await;
    // external with a two-context kubeconfig
    let two = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\n- name: b\n  cluster: {server: 'https://127.0.0.1:2'}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: a\n  context: {cluster: a, user: u}\n- name: b\n  context: {cluster: b, user: u}\ncurrent-context: a\n";
    let one_unreachable = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: a\n  context: {cluster: a, user: u}\ncurrent-context: a\n";
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "default");
    for (name, kc) in [("two", two), ("far", one_unreachable)] {
        let s: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "stringData": {"kubeconfig-incluster": kc}})).unwrap();
        secrets.create(&Default::default(), &s).await.unwrap();
        h.create_cp(&format!("{}  bootstrapSecretRef: {{namespace: default, name: {name}, inClusterKey: kubeconfig-incluster}}\n", cp_yaml(&format!("ext-{name}"), "external"))).await;
    }
    h.create_cp(&format!("{}  bootstrapSecretRef: {{namespace: default, name: two, inClusterKey: kubeconfig-incluster}}\n  tokenExpirationSeconds: 0\n", cp_yaml("ext-zero", "external"))).await;
    h.create_cp(&cp_yaml("old", "ocm")).await;
    let not_ready = |needle: &'static str| {
        move |cp: &kubeflex_operator::api::ControlPlane| {
            condition(cp, "Ready").is_some_and(|c| c.0 == "False" && c.2.contains(needle))
        }
    };
    // What `kflex validate` refuses (profile::check_spec), the operator
    // reports as InvalidSpec, a reason that needs a person.
    let invalid = |needle: &'static str| {
        move |cp: &kubeflex_operator::api::ControlPlane| {
            condition(cp, "Ready")
                .is_some_and(|c| c.0 == "False" && c.1 == "InvalidSpec" && c.2.contains(needle))
        }
    };
    h.wait_cp(
        "noref",
        30,
        invalid("spec.bootstrapSecretRef: an external control plane needs"),
    )
    .await;
    h.wait_cp(
        "ext-zero",
        30,
        invalid("spec.tokenExpirationSeconds: 0 is not a lifetime"),
    )
    .await;
    h.wait_cp("ext-two", 30, not_ready("2 contexts")).await;
    h.wait_cp(
        "ext-far",
        30,
        not_ready("cannot adopt the cluster at https://127.0.0.1:1"),
    )
    .await;
    h.wait_cp("old", 30, not_ready("vcluster")).await;
    h.wait_ready("good", 30).await;
    // An unknown type is refused by the API server itself.
    let err = h
        .cps()
        .patch(
            "weird",
            &PatchParams::apply("e2e"),
            &Patch::Apply(serde_json::json!({
        "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
        "metadata": {"name": "weird"}, "spec": {"type": "nonsense"}})),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("nonsense") || err.to_string().contains("Unsupported"),
        "{err}"
    );
    assert_logs_clean(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcluster_control_plane_end_to_end() {
    let h = Harness::start().await;
    h.create_cp(&cp_yaml("vc", "vcluster")).await;
    let cp = h.wait_ready("vc", 60).await;
    let ns = "vc-system";
    let r = cp.status.unwrap().secret_ref.unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str(), r.in_cluster_key.as_str()),
        ("vc-vcluster", "config", "config-incluster")
    );
    let vc = h.secret(ns, "vc-vcluster").await.unwrap();
    assert_eq!(secret_keys(&vc), ["config", "config-incluster"]);
    for svc in ["vcluster", "vcluster-headless", "vcluster-nodeport"] {
        assert!(!gone::<Service>(&h, Some(ns), svc).await, "Service {svc}");
    }
    assert!(!gone::<StatefulSet>(&h, Some(ns), "vcluster").await);
    assert!(!gone::<Ingress>(&h, Some(ns), "vc").await);
    let external = h.secret_text(ns, "vc-vcluster", "config").await;
    ok(&h.kubectl_through_ingress("vc", &external).await);
    let internal = h.secret_text(ns, "vc-vcluster", "config-incluster").await;
    ok(&h.kubectl_in_cluster("vc", &internal, "vcluster", 443).await);
    h.delete_cp("vc").await;
    h.eventually("vc to be gone", 30, || async {
        h.cps().get_opt("vc").await.unwrap().is_none()
    })
    .await;
    h.eventually("its namespace to be gone", 30, || {
        gone::<Namespace>(&h, None, ns)
    })
    .await;
    assert_logs_clean(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k3s_control_plane_end_to_end() {
    let h = Harness::start().await;
    h.create_cp(&cp_yaml("kay", "k3s")).await;
    let cp = h.wait_ready("kay", 60).await;
    let ns = "kay-system";
    let r = cp.status.unwrap().secret_ref.unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str(), r.in_cluster_key.as_str()),
        ("k3s-config", "config", "config-incluster")
    );
    assert_eq!(
        secret_keys(&h.secret(ns, "k3s-config").await.unwrap()),
        ["config", "config-incluster", "token"]
    );
    assert_eq!(secret_keys(&h.secret(ns, "k3s-ca").await.unwrap()).len(), 7);
    assert!(!gone::<StatefulSet>(&h, Some(ns), "k3s-server").await);
    assert!(!gone::<Service>(&h, Some(ns), "k3s").await);
    assert!(!gone::<Ingress>(&h, Some(ns), "kay").await);
    assert!(
        !gone::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&h, Some(ns), "k3s-data").await
    );
    h.delete_cp("kay").await;
    h.eventually("kay to be gone", 30, || async {
        h.cps().get_opt("kay").await.unwrap().is_none()
    })
    .await;
    h.eventually("its namespace to be gone", 30, || {
        gone::<Namespace>(&h, None, ns)
    })
    .await;
    assert_logs_clean(&[]);
}

/// Blocked on testenv: its k3s makes its own CA instead of reading the CA
/// files the operator's init container places in
/// `/var/lib/rancher/k3s/server/tls` (reported), so a kubeconfig signed by
/// the operator's CAs cannot verify the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k3s_kubeconfigs_reach_the_tenant() {
    let h = Harness::start().await;
    h.create_cp(&cp_yaml("kay2", "k3s")).await;
    h.wait_ready("kay2", 60).await;
    let ns = "kay2-system";
    let external = h.secret_text(ns, "k3s-config", "config").await;
    ok(&h.kubectl_through_ingress("kay2", &external).await);
    let internal = h.secret_text(ns, "k3s-config", "config-incluster").await;
    ok(&h.kubectl_in_cluster("kay2", &internal, "k3s", 443).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_control_plane_adopts_refreshes_and_cleans_up() {
    let h = Harness::start().await;
    // The cluster to adopt: another testenv, adopted by two control planes.
    let adopted = kubeflex_testenv::TestEnv::builder().start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), "default");
    for (cp, boot) in [("ext", "boot"), ("ext2", "boot2")] {
        let s: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": boot}, "stringData": {"kubeconfig-incluster": adopted.kubeconfig()}})).unwrap();
        secrets.create(&Default::default(), &s).await.unwrap();
        h.create_cp(&format!("{}  bootstrapSecretRef: {{namespace: default, name: {boot}, inClusterKey: kubeconfig-incluster}}\n", cp_yaml(cp, "external"))).await;
    }
    let cp = h.wait_ready("ext", 30).await;
    h.wait_ready("ext2", 30).await;
    let r = cp.status.unwrap().secret_ref.unwrap();
    assert_eq!(
        (r.name.as_str(), r.key.as_str(), r.in_cluster_key.as_str()),
        ("admin-kubeconfig", "", "kubeconfig-incluster")
    );
    assert!(
        secrets.get_opt("boot").await.unwrap().is_none(),
        "the bootstrap Secret was kept"
    );
    // Each control plane has its own ServiceAccount and binding.
    let adopted_client = adopted.client().await.unwrap();
    let crbs: Api<ClusterRoleBinding> = Api::all(adopted_client.clone());
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(adopted_client, "kube-system");
    for name in ["kubeflex-ext", "kubeflex-ext2"] {
        assert!(crbs.get_opt(name).await.unwrap().is_some(), "{name}");
        assert!(sas.get_opt(name).await.unwrap().is_some(), "{name}");
    }
    // The stored kubeconfig works against the adopted cluster.
    let yaml = h
        .secret_text("ext-system", "admin-kubeconfig", "kubeconfig-incluster")
        .await;
    let path = h.write("ext-admin", &yaml);
    let out = ok(&h.kubectl(&path, &["get", "namespaces"]).await);
    assert!(out.contains("kube-system"), "{out}");
    h.delete_cp("ext").await;
    h.eventually("ext to be gone", 30, || async {
        h.cps().get_opt("ext").await.unwrap().is_none()
    })
    .await;
    // Only its own objects went; the other control plane keeps its access.
    assert!(
        crbs.get_opt("kubeflex-ext").await.unwrap().is_none(),
        "adopted binding left behind"
    );
    assert!(
        sas.get_opt("kubeflex-ext").await.unwrap().is_none(),
        "adopted ServiceAccount left behind"
    );
    assert!(crbs.get_opt("kubeflex-ext2").await.unwrap().is_some());
    assert!(sas.get_opt("kubeflex-ext2").await.unwrap().is_some());
    let yaml2 = h
        .secret_text("ext2-system", "admin-kubeconfig", "kubeconfig-incluster")
        .await;
    let path2 = h.write("ext2-admin", &yaml2);
    let out = ok(&h.kubectl(&path2, &["get", "namespaces"]).await);
    assert!(out.contains("kube-system"), "{out}");
    let token_of = |yaml: &str| {
        yaml.lines()
            .find(|l| l.trim_start().starts_with("token:"))
            .map(|l| l.trim().trim_start_matches("token:").trim().to_string())
            .unwrap()
    };
    assert_logs_clean(&[token_of(&yaml), token_of(&yaml2)]);
}
