//! The operator's binary started on a cluster where `kubeflex-system` does
//! not exist yet (a fresh cluster before `kflex init`), running as a
//! ServiceAccount bound to the shipped ClusterRole: it creates the
//! namespace and provisions; where RBAC forbids creating it, it exits with
//! one line naming the namespace and the command that creates it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, PostParams};
use kubeflex_operator::api::ControlPlane;
use kubeflex_testenv::TestEnv;
use support::{apply_as_admin, condition, rbac_objects, service_account_kubeconfig_of};

/// Where the operator's ServiceAccount lives here: its usual namespace is
/// the one that must be missing.
const SA_NAMESPACE: &str = "kflex-ops";
const SYSTEM: &str = "kubeflex-system";

/// Installs the shipped ClusterRole (after `edit`) and its binding for
/// ServiceAccount `kflex-ops/kubeflex-operator`, and writes a kubeconfig
/// for it. The namespaced leader-election Role cannot exist before its
/// namespace does, so the operator runs with `--leader-elect=false`.
async fn operator_kubeconfig(
    env: &TestEnv,
    admin: &Client,
    dir: &tempfile::TempDir,
    edit: impl Fn(&mut serde_json::Value),
) -> PathBuf {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": SA_NAMESPACE}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    for mut obj in rbac_objects() {
        let kind = obj["kind"].as_str().unwrap().to_owned();
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        if !name.starts_with("kubeflex-operator") || kind == "Role" || kind == "RoleBinding" {
            continue;
        }
        if kind == "ServiceAccount" {
            obj["metadata"]["namespace"] = SA_NAMESPACE.into();
        }
        if let Some(subjects) = obj["subjects"].as_array_mut() {
            for s in subjects {
                s["namespace"] = SA_NAMESPACE.into();
            }
        }
        edit(&mut obj);
        apply_as_admin(admin, &obj).await;
    }
    let yaml = service_account_kubeconfig_of(
        admin,
        &env.url(),
        env.ca_pem().as_bytes(),
        SA_NAMESPACE,
        "kubeflex-operator",
    )
    .await;
    let path = dir.path().join("operator-kubeconfig");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn spawn_operator(kubeconfig: &PathBuf) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kubeflex-operator"))
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--leader-elect=false", "--metrics-addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn system_namespace_exists(admin: &Client) -> bool {
    Api::<Namespace>::all(admin.clone())
        .get_opt(SYSTEM)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_creates_its_missing_namespace_and_provisions() {
    let env = TestEnv::builder().start().await.unwrap();
    let admin = env.client().await.unwrap();
    for crd in kubeflex_operator::crdgen::crds() {
        Api::all(admin.clone())
            .create(&PostParams::default(), &crd)
            .await
            .unwrap();
    }
    assert!(!system_namespace_exists(&admin).await, "precondition");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = operator_kubeconfig(&env, &admin, &dir, |_| {}).await;
    let mut child = spawn_operator(&kubeconfig);

    let cps: Api<ControlPlane> = Api::all(admin.clone());
    let cp: ControlPlane = serde_saphyr::from_str(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: first\nspec:\n  type: host\n",
    )
    .unwrap();
    cps.create(&PostParams::default(), &cp).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let cp = cps.get("first").await.unwrap();
        if condition(&cp, "Ready").is_some_and(|c| c.0 == "True") {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(ready, "control plane never Ready; operator log:\n{log}");
    assert!(system_namespace_exists(&admin).await);
    assert!(
        log.contains("created the missing namespace") && log.contains(SYSTEM),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_rbac_forbids_creating_it_the_operator_exits_with_one_line() {
    let env = TestEnv::builder().start().await.unwrap();
    let admin = env.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The shipped role without `create` on namespaces.
    let kubeconfig = operator_kubeconfig(&env, &admin, &dir, |obj| {
        if obj["kind"] == "ClusterRole" {
            for rule in obj["rules"].as_array_mut().unwrap() {
                if rule["resources"] == serde_json::json!(["namespaces"]) {
                    rule["verbs"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|v| v != "create");
                }
            }
        }
    })
    .await;
    let mut child = spawn_operator(&kubeconfig);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out: Output = child.wait_with_output().unwrap();
            panic!(
                "still running after 30 s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("Error")).collect();
    assert_eq!(
        errors,
        [
            "Error: namespace kubeflex-system does not exist and this operator may not create it: run `kubectl create namespace kubeflex-system` (or `kflex init`) first"
        ],
        "{log}"
    );
    // No retry loop, no Debug dump of the API error.
    assert!(
        !log.contains("ErrorResponse") && !log.contains("Status {"),
        "{log}"
    );
    assert!(!system_namespace_exists(&admin).await);
}
