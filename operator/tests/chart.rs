//! The Helm chart `charts/kubeflex`, checked with the real Helm library
//! (the Python package helm-sdkpy, a binding of Helm's Go SDK, in the venv
//! `target/helm-venv`): lint, render with default values and with every
//! optional part on, values refused by the schema, flags the binaries
//! accept, CRDs and RBAC equal to `config/`, `config/manager/` equal to the
//! render, the Dockerfile against the workspace.
//!
//! "Render" is a Helm install into a throwaway testenv with Helm's
//! in-memory release storage (`HELM_DRIVER=memory`, no wait): the Go SDK
//! binding has no client-only `template` action, and the release's manifest
//! is exactly what `helm template` prints for the same values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

#[path = "chart/session.rs"]
mod session;
use session::*;
#[path = "support/postgres.rs"]
mod postgres;
mod support;

/// The hardening every Deployment of the chart must have.
fn assert_hardened(deployment: &Value) {
    let name = deployment["metadata"]["name"].as_str().unwrap();
    let c = container(deployment);
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{name}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{name}");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{name}");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true,
        "{name}"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
    assert!(
        c["resources"]["requests"]["memory"].is_string(),
        "{name}: no requests"
    );
    assert!(
        c["resources"]["limits"]["memory"].is_string(),
        "{name}: no limits"
    );
    let metrics_port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http-metrics")
        .unwrap_or_else(|| panic!("{name}: no http-metrics port"))["containerPort"]
        .as_i64()
        .unwrap();
    assert!(
        args(deployment)
            .iter()
            .any(|a| *a == format!("--metrics-addr=0.0.0.0:{metrics_port}")),
        "{name}: the probes' port is not where the binary serves /healthz"
    );
    let sa = deployment["spec"]["template"]["spec"]["serviceAccountName"].as_str();
    assert_eq!(sa, Some(name), "{name} runs as its own ServiceAccount");
}

#[test]
fn the_chart_lints_clean() {
    let result = Helm::start(None, "memory")
        .step(json!({"action": "lint", "chart": chart_dir()}))
        .unwrap_or_else(|e| panic!("helm lint failed: {e}"));
    assert_eq!(result["TotalChartsLinted"], 1, "{result}");
    assert!(result["Errors"].is_null(), "lint errors: {result}");
    // Helm's lint messages: info (icon, values), warnings and errors; a
    // clean chart has none at all.
    assert!(
        result["Messages"].as_array().is_none_or(Vec::is_empty),
        "lint messages: {result}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn default_values_render_the_operator_alone_hardened() {
    let docs = render(json!({})).await;
    let names = kinds_and_names(&docs);
    let expected: BTreeSet<String> = [
        "ServiceAccount/kubeflex-operator",
        "ClusterRole/kubeflex-operator",
        "ClusterRoleBinding/kubeflex-operator",
        "ClusterRole/kubeflex-vcluster",
        "Role/kubeflex-operator-leader-election",
        "RoleBinding/kubeflex-operator-leader-election",
        "Deployment/kubeflex-operator",
        "Service/kubeflex-operator-metrics",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, expected);
    for d in &docs {
        if d["metadata"]["namespace"].is_string() {
            assert_eq!(d["metadata"]["namespace"], "kubeflex-system", "{d}");
        }
    }
    let operator = get(&docs, "Deployment", "kubeflex-operator");
    assert_hardened(operator);
    assert_eq!(operator["spec"]["replicas"], 1);
    let args = args(operator);
    for expected in [
        "run",
        "--domain=localtest.me",
        "--external-port=9443",
        "--exposure=auto",
        "--pki-algorithm=ecdsa-p256",
        "--leader-elect=true",
        "--leader-election-namespace=kubeflex-system",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--postgres-") || a.starts_with("--external-address")),
        "{args:?}"
    );
    assert_eq!(
        container(operator)["image"],
        "ghcr.io/kubestellar/kubeflex/kubeflex-operator:0.1.0"
    );
    // No ClusterRole of the chart grants a wildcard.
    for d in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for rule in d["rules"].as_array().unwrap() {
            for field in ["verbs", "resources", "apiGroups"] {
                assert!(
                    !rule[field].as_array().unwrap().contains(&json!("*")),
                    "{} grants `*` in {field}",
                    d["metadata"]["name"]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_optional_part_renders() {
    let docs = render(everything_on()).await;
    let operator = get(&docs, "Deployment", "kubeflex-operator");
    let reconciler = get(&docs, "Deployment", "kubeflex-reconciler");
    assert_hardened(operator);
    assert_hardened(reconciler);
    assert_eq!(operator["spec"]["replicas"], 2);
    let op_args = args(operator);
    for expected in [
        "--external-address=192.0.2.10",
        "--exposure=ingress",
        "--pki-algorithm=rsa-2048",
        "--postgres-host=pg.example.internal",
        "--postgres-port=6432",
        "--postgres-admin-user=kflex_admin",
        "--postgres-admin-secret=pg-admin",
        "--postgres-admin-secret-key=pw",
        "--hook-extra-rules=nodes:get,list;persistentvolumes:get",
    ] {
        assert!(
            op_args.iter().any(|a| a == expected),
            "{expected} not in {op_args:?}"
        );
    }
    let r_args = args(reconciler);
    for expected in [
        "--name=tenants",
        "--git-url=https://git.example/tenants.git",
        "--ref=main",
        "--path=clusters/prod",
        "--interval=30s",
        "--git-token-file=/etc/kubeflex/git/token",
        "--webhook-addr=0.0.0.0:9443",
        "--webhook-secret-file=/etc/kubeflex/webhook/secret",
        "--lease-namespace=kubeflex-system",
    ] {
        assert!(
            r_args.iter().any(|a| a == expected),
            "{expected} not in {r_args:?}"
        );
    }
    for pdb in ["kubeflex-operator", "kubeflex-reconciler"] {
        let pdb = get(&docs, "PodDisruptionBudget", pdb);
        assert_eq!(pdb["spec"]["minAvailable"], 1);
    }
    let webhook = get(&docs, "Service", "kubeflex-reconciler-webhook");
    assert_eq!(webhook["spec"]["ports"][0]["targetPort"], "webhook");
    get(&docs, "Service", "kubeflex-reconciler-metrics");
    // The reconciler's lease lives in kubeflex-system, where its Role is.
    let lease_role = get(&docs, "Role", "kubeflex-reconciler-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], "kubeflex-system");
    assert_eq!(lease_role["rules"][0]["resources"], json!(["leases"]));
    // The credentials are files from the Secrets, never values in the spec.
    let volumes = &reconciler["spec"]["template"]["spec"]["volumes"];
    assert!(volumes.to_string().contains("git-credentials"));
    assert!(volumes.to_string().contains("git-webhook"));

    // Each part alone renders too.
    let alone = render_all(&[
        json!({"operator": {"replicas": 3}}),
        json!({"reconciler": {"enabled": true, "git": {"url": "ssh://git@git.example/t.git", "credentialsSecret": "s", "auth": "ssh"}}}),
        json!({"reconciler": {"enabled": true, "git": {"url": "https://git.example/t.git", "credentialsSecret": "s", "auth": "basic", "username": "bot"}}}),
    ])
    .await;
    let alone: Vec<_> = alone.into_iter().map(Result::unwrap).collect();
    assert!(find(&alone[0], "PodDisruptionBudget", "kubeflex-operator").is_some());
    assert!(find(&alone[0], "Deployment", "kubeflex-reconciler").is_none());
    let ssh = args(get(&alone[1], "Deployment", "kubeflex-reconciler"));
    assert!(
        ssh.contains(&"--ssh-key=/etc/kubeflex/git/ssh-privatekey".to_owned()),
        "{ssh:?}"
    );
    assert!(find(&alone[1], "PodDisruptionBudget", "kubeflex-reconciler").is_none());
    let basic = args(get(&alone[2], "Deployment", "kubeflex-reconciler"));
    assert!(
        basic.contains(&"--git-username=bot".to_owned()),
        "{basic:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_values_fail_at_install_time() {
    let cases = [
        (json!({"namespace": "kflex"}), "namespace"),
        (json!({"exposure": "loadbalancer"}), "exposure"),
        (json!({"pkiAlgorithm": "dsa"}), "pkiAlgorithm"),
        (json!({"externalPort": 70000}), "externalPort"),
        (json!({"domian": "typo.example"}), "domian"),
        (json!({"postgresql": {"install": false}}), "existing"),
        (json!({"reconciler": {"enabled": true}}), "git"),
        (
            json!({"reconciler": {"enabled": true, "git": {"url": "https://x/y.git"}, "webhook": {"enabled": true}}}),
            "secretName",
        ),
        (json!({"operator": {"replicas": 0}}), "replicas"),
    ];
    let values: Vec<Value> = cases.iter().map(|(v, _)| v.clone()).collect();
    let results = render_all(&values).await;
    for ((values, field), result) in cases.iter().zip(results) {
        let err = result
            .err()
            .unwrap_or_else(|| panic!("{values} was accepted"));
        assert!(
            err.contains("schema"),
            "{values}: not refused by the schema: {err}"
        );
        assert!(
            err.contains(field),
            "{values}: the error does not name {field}: {err}"
        );
    }
}

/// `binary ARGS... --help` exits 0 only if every flag is known and every
/// value parses (clap checks each argument before it reaches `--help`).
fn assert_flags_accepted(binary: &Path, args: &[String]) {
    let out = Command::new(binary)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} refuses the chart's arguments {args:?}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binaries_accept_every_rendered_flag() {
    let renders = render_all(&[
        json!({"reconciler": {"enabled": true, "git": {"url": "https://git.example/t.git"}}}),
        everything_on(),
        json!({"reconciler": {"enabled": true, "git": {"url": "ssh://git@git.example/t.git", "credentialsSecret": "s", "auth": "ssh"}}}),
        json!({"reconciler": {"enabled": true, "git": {"url": "https://git.example/t.git", "credentialsSecret": "s", "auth": "basic", "username": "bot"}}}),
    ])
    .await;
    let reconciler = reconciler_binary();
    for docs in renders {
        let docs = docs.unwrap();
        let operator_args = args(get(&docs, "Deployment", "kubeflex-operator"));
        assert_flags_accepted(
            Path::new(env!("CARGO_BIN_EXE_kubeflex-operator")),
            &operator_args,
        );
        assert_flags_accepted(
            &reconciler,
            &args(get(&docs, "Deployment", "kubeflex-reconciler")),
        );
    }
}

/// `externalAddress` renders `--external-address`, which the operator
/// accepts.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_accepts_external_address() {
    let docs = render(everything_on()).await;
    let args = args(get(&docs, "Deployment", "kubeflex-operator"));
    assert!(args.iter().any(|a| a == "--external-address=192.0.2.10"));
    assert_flags_accepted(Path::new(env!("CARGO_BIN_EXE_kubeflex-operator")), &args);
}

#[test]
fn chart_crds_are_config_crd_bases() {
    let read_dir = |dir: PathBuf| -> BTreeMap<String, String> {
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect()
    };
    let chart = read_dir(chart_dir().join("crds"));
    let config = read_dir(root().join("config/crd/bases"));
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        config.keys().collect::<Vec<_>>(),
        "charts/kubeflex/crds must hold the files of config/crd/bases"
    );
    for (file, text) in &config {
        assert!(
            chart[file] == *text,
            "charts/kubeflex/crds/{file} differs from config/crd/bases/{file}: cp config/crd/bases/*.yaml charts/kubeflex/crds/"
        );
    }
}

/// A rule as a comparable value: every list sorted.
fn normalized_rules(obj: &Value) -> BTreeSet<String> {
    obj["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    let field = |f: &str| -> Vec<String> {
                        let mut v: Vec<String> = r[f]
                            .as_array()
                            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                            .unwrap_or_default();
                        v.sort();
                        v
                    };
                    format!(
                        "groups={:?} resources={:?} verbs={:?} names={:?} urls={:?}",
                        field("apiGroups"),
                        field("resources"),
                        field("verbs"),
                        field("resourceNames"),
                        field("nonResourceURLs")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The RBAC objects of `config/rbac`, by `Kind/namespace/name`.
fn config_rbac() -> BTreeMap<String, Value> {
    let dir = root().join("config/rbac");
    let mut objects = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml");
        if !is_yaml || path.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in documents(&text) {
            objects.insert(rbac_key(&doc), doc);
        }
    }
    objects
}

fn rbac_key(obj: &Value) -> String {
    format!(
        "{}/{}/{}",
        obj["kind"].as_str().unwrap(),
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn chart_rbac_is_config_rbac() {
    let docs = render(
        json!({"reconciler": {"enabled": true, "git": {"url": "https://git.example/t.git"}}}),
    )
    .await;
    let chart: BTreeMap<String, &Value> = docs
        .iter()
        .filter(|d| RBAC_KINDS.contains(&d["kind"].as_str().unwrap()))
        .map(|d| (rbac_key(d), d))
        .collect();
    let mut config = config_rbac();
    // Only an operator outside the cluster reads readiness through the
    // service proxy (config/rbac/service_proxy_role.yaml); the chart's runs
    // inside it.
    config.retain(|key, _| !key.contains("/kubeflex-operator-service-proxy"));
    let fix = "config/rbac changed: update charts/kubeflex/templates/*-rbac.yaml to the same rules";
    for (key, want) in &config {
        let have = chart
            .get(key)
            .unwrap_or_else(|| panic!("the chart has no {key} of config/rbac. {fix}"));
        assert_eq!(
            normalized_rules(have),
            normalized_rules(want),
            "{key}: rules differ. {fix}"
        );
        assert_eq!(
            have["roleRef"], want["roleRef"],
            "{key}: roleRef differs. {fix}"
        );
        assert_eq!(
            have["subjects"], want["subjects"],
            "{key}: subjects differ. {fix}"
        );
    }
    // Every RBAC object of the chart comes from config/rbac, for the
    // operator and the reconciler alike.
    for key in chart.keys() {
        assert!(
            config.contains_key(key),
            "the chart's {key} is not in config/rbac"
        );
    }
}

/// Drops what only a Helm release carries (its labels).
fn without_release_labels(mut obj: Value) -> Value {
    if let Some(labels) = obj["metadata"]["labels"].as_object_mut() {
        for l in [
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "helm.sh/chart",
        ] {
            labels.remove(l);
        }
    }
    obj
}

#[tokio::test(flavor = "multi_thread")]
async fn config_manager_reconciler_is_the_chart_render() {
    let docs = render(json!({"reconciler": {"enabled": true, "git": {"url": "https://github.com/example/kubeflex-specs.git"}}})).await;
    let rendered = without_release_labels(get(&docs, "Deployment", "kubeflex-reconciler").clone());
    let path = root().join("config/manager/reconciler.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        file,
        rendered,
        "{} differs from the chart's render (default values, reconciler.enabled=true, git.url=https://github.com/example/kubeflex-specs.git)",
        path.display()
    );
}

/// `config/manager/manager.yaml` (the operator Deployment `kflex init`
/// installs) is what the chart renders with default values.
#[tokio::test(flavor = "multi_thread")]
async fn config_manager_operator_is_the_chart_render() {
    let docs = render(json!({})).await;
    let rendered = without_release_labels(get(&docs, "Deployment", "kubeflex-operator").clone());
    let path = root().join("config/manager/manager.yaml");
    let file: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        file,
        rendered,
        "{} differs from the chart's render (default values)",
        path.display()
    );
}

#[test]
fn dockerfile_builds_the_workspace_binaries() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    // Binary names of the workspace members, from their manifests.
    let members = workspace_members(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap());
    let mut binaries = BTreeSet::new();
    for member in &members {
        let text = std::fs::read_to_string(root().join(member).join("Cargo.toml")).unwrap();
        binaries.extend(bin_names(&text));
        assert!(
            dockerfile.contains(&format!("COPY {member} {member}")),
            "the Dockerfile does not copy workspace member {member}, without which cargo cannot build"
        );
    }
    assert!(!binaries.is_empty());
    let built: BTreeSet<String> = dockerfile
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "--bin")
        .map(|w| w[1].to_owned())
        .collect();
    assert!(!built.is_empty(), "the Dockerfile builds no --bin");
    for bin in &built {
        assert!(
            binaries.contains(bin),
            "the Dockerfile builds {bin}, which no workspace crate defines ({binaries:?})"
        );
        let path = format!("/usr/local/bin/{bin}");
        assert!(
            dockerfile.contains(&format!("target/release/{bin}"))
                && dockerfile.contains(&format!("COPY --from=build /out/{bin} {path}"))
                && dockerfile.contains(&format!("ENTRYPOINT [\"{path}\"]")),
            "{bin}: built, copied to {path} and made the entrypoint of its image"
        );
    }
    for bin in ["kubeflex-operator", "kubeflex-reconciler"] {
        assert!(built.contains(bin), "the Dockerfile does not build {bin}");
    }
    // The images the chart runs are those targets.
    let values = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    for target in ["operator", "reconciler"] {
        assert!(
            dockerfile.contains(&format!(" AS {target}\n")),
            "no stage {target}"
        );
        assert!(
            values.contains(&format!("/kubeflex-{target}\n")),
            "values.yaml image of {target}"
        );
    }
    // The files it copies exist.
    for file in ["Cargo.toml", "Cargo.lock"] {
        assert!(root().join(file).exists());
    }
}

/// `members = [...]` of the workspace manifest (one line there; the
/// workspace has no TOML parser, and this test needs no more).
fn workspace_members(manifest: &str) -> Vec<String> {
    let body = manifest
        .split("[workspace]")
        .nth(1)
        .expect("a [workspace] table");
    let line = body
        .lines()
        .find(|l| l.trim_start().starts_with("members ="))
        .expect("workspace members on one line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// Names of the `[[bin]]` targets of a crate manifest.
fn bin_names(manifest: &str) -> Vec<String> {
    manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|section| {
            section
                .lines()
                .take_while(|l| !l.trim_start().starts_with('['))
                .find(|l| l.trim_start().starts_with("name ="))
                .and_then(|l| l.split('"').nth(1))
                .map(String::from)
        })
        .collect()
}

/// Creates `kubeflex-system` and in it the Secrets (name, key, value) that
/// values refer to, as an admin does before installing.
async fn system_secrets(client: &kube::Client, secrets: &[(&str, &str, &str)]) {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "kubeflex-system"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api: Api<Secret> = Api::namespaced(client.clone(), "kubeflex-system");
    for (name, key, value) in secrets {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": {*key: value}
        }))
        .unwrap();
        api.create(&PostParams::default(), &secret).await.unwrap();
    }
}

/// Helm's release storage in the install test: its default, Secrets (which
/// Helm writes with protobuf bodies).
const INSTALL_DRIVER: &str = "secret";

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_some()
}

/// Waits until `name` is gone (Helm deletes without waiting for the
/// garbage collector).
async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..100 {
        if !exists(api, name).await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{name} was not deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_upgrades_and_uninstalls() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    let env = testenv().await;
    let client = env.env.client().await.unwrap();
    // The Secrets the optional parts refer to exist before they are turned on.
    system_secrets(
        &client,
        &[
            ("git-credentials", "token", "not-a-real-credential"),
            ("git-webhook", "secret", "not-a-real-credential"),
            ("pg-admin", "pw", "not-a-real-credential"),
        ],
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kubeflex-system");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kubeflex-system");
    let available = |d: Deployment| d.status.and_then(|s| s.available_replicas).unwrap_or(0);
    let mut helm = Helm::start(Some(&env.kubeconfig), INSTALL_DRIVER);
    let install = |values: Value| json!({"action": "install", "release": "kubeflex", "chart": chart_dir(), "values": values, "wait": true, "timeout": 120});
    let upgrade = |values: Value| json!({"action": "upgrade", "release": "kubeflex", "chart": chart_dir(), "values": values, "wait": true, "timeout": 120});

    // Install with default values: CRDs, the operator, available.
    let release = helm
        .run(install(json!({})))
        .unwrap_or_else(|e| panic!("install: {e}"));
    assert_eq!(release["info"]["status"], "deployed");
    // Helm keeps the release in a Secret (written with a protobuf body).
    assert!(exists(&secrets, "sh.helm.release.v1.kubeflex.v1").await);
    let listed = helm.run(json!({"action": "list"})).unwrap();
    assert!(
        listed.to_string().contains("\"kubeflex\""),
        "not listed: {listed}"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [
        "controlplanes.tenancy.kflex.kubestellar.org",
        "postcreatehooks.tenancy.kflex.kubestellar.org",
        "syncs.gitops.kflex.kubestellar.org",
    ] {
        assert!(exists(&crds, crd).await, "CRD {crd} not installed");
    }
    assert_eq!(
        available(deployments.get("kubeflex-operator").await.unwrap()),
        1
    );
    assert!(!exists(&deployments, "kubeflex-reconciler").await);

    // A tenant spec, to show that uninstalling leaves tenants alone.
    let cp_resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tenancy.kflex.kubestellar.org", "v1alpha1", "ControlPlane"),
        "controlplanes",
    );
    let cps: Api<DynamicObject> = Api::all_with(client.clone(), &cp_resource);
    let cp: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
        "metadata": {"name": "survivor"}, "spec": {"type": "k8s"}
    }))
    .unwrap();
    cps.create(&PostParams::default(), &cp).await.unwrap();

    // Upgrade with every optional part on.
    let release = helm
        .run(upgrade(everything_on()))
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    assert_eq!(
        (
            release["info"]["status"].as_str(),
            release["version"].as_i64()
        ),
        (Some("deployed"), Some(2))
    );
    assert_eq!(
        available(deployments.get("kubeflex-operator").await.unwrap()),
        2
    );
    assert_eq!(
        available(deployments.get("kubeflex-reconciler").await.unwrap()),
        2
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "kubeflex-system");
    for svc in [
        "kubeflex-operator-metrics",
        "kubeflex-reconciler-metrics",
        "kubeflex-reconciler-webhook",
    ] {
        assert!(exists(&services, svc).await, "Service {svc}");
    }
    // Two replicas each: a policy/v1 PodDisruptionBudget keeps one of the
    // Deployment's pods available.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "kubeflex-system");
    for name in ["kubeflex-operator", "kubeflex-reconciler"] {
        let pdb = pdbs.get(name).await.unwrap();
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.min_available, Some(IntOrString::Int(1)), "{name}");
        let selector = spec.selector.unwrap().match_labels.unwrap();
        let template = deployments.get(name).await.unwrap().spec.unwrap().template;
        let labels = template.metadata.unwrap().labels.unwrap();
        assert!(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{name}: the PDB selects {selector:?}, not the pods {labels:?}"
        );
    }

    // Back to the defaults: what the optional parts added is removed.
    let release = helm
        .run(upgrade(json!({})))
        .unwrap_or_else(|e| panic!("upgrade back: {e}"));
    assert_eq!(release["version"], 3);
    wait_gone(&deployments, "kubeflex-reconciler").await;
    wait_gone(&pdbs, "kubeflex-operator").await;
    wait_gone(&services, "kubeflex-reconciler-webhook").await;
    assert_eq!(
        available(deployments.get("kubeflex-operator").await.unwrap()),
        1
    );

    // Uninstall: the chart's objects go; CRDs and tenants stay.
    helm.run(json!({"action": "uninstall", "release": "kubeflex", "wait": true, "timeout": 120}))
        .unwrap_or_else(|e| panic!("uninstall: {e}"));
    wait_gone(&deployments, "kubeflex-operator").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "kubeflex-system");
    wait_gone(&sas, "kubeflex-operator").await;
    wait_gone(
        &Api::<ClusterRole>::all(client.clone()),
        "kubeflex-operator",
    )
    .await;
    for crd in [
        "controlplanes.tenancy.kflex.kubestellar.org",
        "syncs.gitops.kflex.kubestellar.org",
    ] {
        assert!(exists(&crds, crd).await, "uninstalling deleted CRD {crd}");
    }
    assert!(
        exists(&cps, "survivor").await,
        "uninstalling deleted a ControlPlane"
    );
    let releases = helm.run(json!({"action": "list"})).unwrap();
    // helm-sdkpy answers `null` for no releases.
    assert!(
        releases.as_array().is_none_or(Vec::is_empty),
        "releases left: {releases}"
    );
}

/// Runs the container of `job` here, as the kubelet would: its command,
/// its env with the Secret references resolved from its namespace.
async fn run_job_here(
    client: &kube::Client,
    job: k8s_openapi::api::batch::v1::Job,
) -> std::process::Output {
    use k8s_openapi::api::core::v1::Secret;
    let namespace = job.metadata.namespace.clone().unwrap();
    let c = job
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .remove(0);
    let command = c.command.unwrap();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    for e in c.env.unwrap_or_default() {
        let value = match (e.value, e.value_from.and_then(|v| v.secret_key_ref)) {
            (Some(v), _) => v,
            (None, Some(r)) => {
                let data = secrets.get(&r.name).await.unwrap().data.unwrap();
                String::from_utf8(data[&r.key].0.clone()).unwrap()
            }
            _ => panic!("env {} has no value", e.name),
        };
        cmd.env(&e.name, value);
    }
    tokio::task::block_in_place(|| cmd.output()).unwrap()
}

/// The operator binary with the arguments of the Deployment the chart
/// installed, authenticated as the chart's ServiceAccount (a TokenRequest
/// token; it runs outside the cluster, so only the listen address changes).
fn start_installed_operator(
    deployment: &k8s_openapi::api::apps::v1::Deployment,
    kubeconfig: &Path,
    log: &Path,
) -> tokio::process::Child {
    let container = &deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let args: Vec<String> = container
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| {
            if a.starts_with("--metrics-addr=") {
                "--metrics-addr=127.0.0.1:0".to_owned()
            } else {
                a
            }
        })
        .collect();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kubeflex-operator"))
        .args(&args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("POD_NAME", "chart-test")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The chart with `postgresql.install=false`, pointed at a real PostgreSQL
/// started here (host, port, admin user and the admin password's Secret
/// through the chart's values), installed by Helm; the operator then runs
/// with the installed Deployment's own arguments as the installed
/// ServiceAccount. A `k8s` control plane gets its database on that server
/// (its provisioning Job run here against it, then the tenant's role
/// connects with the credentials kine is given), and no PostgreSQL is
/// installed in the cluster; an `ocm` control plane is refused with the way
/// forward. Upgraded to two replicas (a policy/v1 PodDisruptionBudget);
/// the `k8s` control plane deleted (its teardown Job, run here, drops the
/// database on the server); uninstalled.
#[tokio::test(flavor = "multi_thread")]
async fn an_existing_postgresql_and_an_ocm_control_plane_through_the_installed_chart() {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kubeflex_operator::api::ControlPlane;

    let pg = postgres::start().expect(postgres::MISSING);
    let env = testenv().await;
    let client = env.env.client().await.unwrap();
    let admin: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pg-admin"},
        "stringData": {"pw": postgres::ADMIN_PASSWORD}
    }))
    .unwrap();
    system_secrets(&client, &[("pg-admin", "pw", postgres::ADMIN_PASSWORD)]).await;
    let values = |replicas: u32| {
        json!({
            "operator": {"replicas": replicas},
            "postgresql": {"install": false, "existing": {
                "host": "127.0.0.1", "port": pg.port, "adminUser": "postgres",
                "adminSecret": {"name": "pg-admin", "key": "pw"}}}
        })
    };
    let mut helm = Helm::start(Some(&env.kubeconfig), INSTALL_DRIVER);
    let release = helm
        .run(json!({"action": "install", "release": "kubeflex", "chart": chart_dir(), "values": values(1), "wait": true, "timeout": 120}))
        .unwrap_or_else(|e| panic!("install: {e}"));
    assert_eq!(release["info"]["status"], "deployed");

    // The operator runs outside the cluster here: it reads tenant readiness
    // through the service proxy (config/rbac's optional rights for that).
    for file in ["service_proxy_role.yaml", "service_proxy_role_binding.yaml"] {
        let text = std::fs::read_to_string(root().join("config/rbac").join(file)).unwrap();
        for obj in documents(&text) {
            support::apply_as_admin(&client, &obj).await;
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kubeflex-system");
    let installed = deployments.get("kubeflex-operator").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator.kubeconfig");
    let sa_kubeconfig = support::service_account_kubeconfig_of(
        &client,
        &env.env.url(),
        env.env.ca_pem().as_bytes(),
        "kubeflex-system",
        "kubeflex-operator",
    )
    .await;
    std::fs::write(&kubeconfig, sa_kubeconfig).unwrap();
    let log = dir.path().join("operator.log");
    let mut operator = start_installed_operator(&installed, &kubeconfig, &log);

    let cps: Api<ControlPlane> = Api::all(client.clone());
    for (name, type_) in [("tenant1", "k8s"), ("old", "ocm")] {
        let cp: ControlPlane = serde_json::from_value(json!({
            "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
            "metadata": {"name": name}, "spec": {"type": type_}
        }))
        .unwrap();
        cps.create(&PostParams::default(), &cp).await.unwrap();
    }
    let ready = |cp: &ControlPlane, want: &str| {
        cp.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == want)
        })
    };
    let mut tenant = None;
    let mut refused = None;
    for _ in 0..300 {
        assert!(
            operator.try_wait().unwrap().is_none(),
            "the operator exited: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        let t = cps.get("tenant1").await.unwrap();
        let o = cps.get("old").await.unwrap();
        if ready(&t, "True") && ready(&o, "False") {
            tenant = Some(t);
            refused = Some(o);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let log_text = || std::fs::read_to_string(&log).unwrap();
    let tenant = tenant
        .unwrap_or_else(|| panic!("tenant1 not Ready or old not refused; log:\n{}", log_text()));
    let refused = refused.unwrap();
    let old_ready = refused
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(old_ready.reason, "Refused");
    assert!(
        old_ready.message.contains("type ocm is not supported")
            && old_ready.message.contains("vcluster"),
        "{}",
        old_ready.message
    );
    // No PostgreSQL installed in the cluster: the existing one is used.
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), "kubeflex-system");
    assert!(!exists(&stss, "postgres-postgresql").await);

    // The provisioning Job targets the existing server with the admin
    // Secret of the values; run here, it creates the tenant's database.
    let jobs: Api<Job> = Api::namespaced(client.clone(), "kubeflex-system");
    let provision = jobs.get("kflex-db-provision-tenant1").await.unwrap();
    let out = run_job_here(&client, provision).await;
    assert!(
        out.status.success(),
        "the provisioning Job against the existing PostgreSQL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kine = Api::<Secret>::namespaced(client.clone(), "tenant1-system")
        .get("kine-database")
        .await
        .unwrap()
        .data
        .unwrap();
    let text = |k: &str| String::from_utf8(kine[k].0.clone()).unwrap();
    let database = tenant
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kflex.kubestellar.org/database"))
        .cloned()
        .expect("the database annotation");
    // kine (in the tenant's API server pod) is pointed at the same server.
    let apiserver = Api::<Deployment>::namespaced(client.clone(), "tenant1-system")
        .get("kube-apiserver")
        .await
        .unwrap();
    let kine = apiserver.spec.unwrap().template.spec.unwrap().containers;
    let kine = kine.iter().find(|c| c.name == "kine").unwrap();
    let endpoint = kine.command.as_ref().unwrap().join(" ");
    assert!(
        endpoint.contains(&format!(
            "{}@127.0.0.1:{}/{database}",
            text("username"),
            pg.port
        )),
        "kine's endpoint does not name the existing server: {endpoint}"
    );
    let out = postgres::psql(
        pg.port,
        &text("username"),
        &text("password"),
        &database,
        "SELECT current_database()",
    );
    assert!(
        out.status.success(),
        "the tenant's role cannot use its database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), database);

    // Upgrade to two replicas: the existing server stays configured, and a
    // PodDisruptionBudget appears.
    let release = helm
        .run(json!({"action": "upgrade", "release": "kubeflex", "chart": chart_dir(), "values": values(2), "wait": true, "timeout": 120}))
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    assert_eq!(release["version"], 2);
    let upgraded = deployments.get("kubeflex-operator").await.unwrap();
    let args = upgraded.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.contains(&format!("--postgres-port={}", pg.port)),
        "{args:?}"
    );
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "kubeflex-system");
    assert!(exists(&pdbs, "kubeflex-operator").await);

    // Deleting tenant1 drops its database on the existing server. The admin
    // Secret is taken away first, so that the teardown Job's pod waits for
    // it (as a kubelet does) while the test reads the Job; put back, the
    // same container runs here against the server.
    let system_secrets: Api<Secret> = Api::namespaced(client.clone(), "kubeflex-system");
    system_secrets
        .delete("pg-admin", &Default::default())
        .await
        .unwrap();
    cps.delete("tenant1", &Default::default()).await.unwrap();
    let mut teardown = None;
    for _ in 0..300 {
        teardown = jobs.get_opt("kflex-db-teardown-tenant1").await.unwrap();
        if teardown.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let teardown = teardown.unwrap_or_else(|| panic!("no teardown Job; log:\n{}", log_text()));
    system_secrets
        .create(&PostParams::default(), &admin)
        .await
        .unwrap();
    let out = run_job_here(&client, teardown).await;
    assert!(
        out.status.success(),
        "the teardown Job against the existing PostgreSQL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = postgres::psql(
        pg.port,
        "postgres",
        postgres::ADMIN_PASSWORD,
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{database}'"),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    wait_gone(&cps, "tenant1").await;
    operator.kill().await.unwrap();

    // Uninstall: the chart's objects go, the other ControlPlane stays.
    helm.run(json!({"action": "uninstall", "release": "kubeflex", "wait": true, "timeout": 120}))
        .unwrap_or_else(|e| panic!("uninstall: {e}"));
    wait_gone(&deployments, "kubeflex-operator").await;
    wait_gone(&pdbs, "kubeflex-operator").await;
    assert!(
        exists(&cps, "old").await,
        "uninstalling deleted a ControlPlane"
    );
}
