//! The real `kflex` binary against testenv with the operator running,
//! checked with the real `kubectl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use support::{Env, fails, names, normalize, ok, snapshot, stderr, stdout, yaml};

/// A kubeconfig of another tool: exec and auth-provider users, proxy-url,
/// tls-server-name, foreign extensions, no current-context.
const FOREIGN: &str = r#"apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: gke
  cluster:
    server: https://34.1.2.3
    proxy-url: socks5://localhost:1080
    tls-server-name: api.example.com
    extensions:
    - name: other-tool
      extension: {audience: foo}
users:
- name: exec-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      args: ["--x"]
      env: [{name: FOO, value: bar}]
      interactiveMode: IfAvailable
      provideClusterInfo: true
- name: oidc
  user:
    auth-provider:
      name: oidc
      config: {client-id: kube, id-token: SECRET-ID-TOKEN-123456}
contexts:
- name: gke
  context:
    cluster: gke
    user: exec-user
    namespace: prod
    extensions:
    - name: other-tool
      extension: {kind: Something, spec: {a: 1}}
extensions:
- name: other-tool-global
  extension: {whatever: [1, "two"]}
"#;

fn entry<'a>(doc: &'a serde_json::Value, list: &str, name: &str) -> &'a serde_json::Value {
    doc[list]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("{list} {name} missing in {doc}"))
}

fn ext_data(entry: &serde_json::Value) -> serde_json::Value {
    entry["context"]["extensions"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "kubeflex"))
        .map(|e| e["extension"]["data"].clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_list_ctx_delete_with_two_kubeconfig_files() {
    let env = Env::start().await;
    // KUBECONFIG=foreign:hosting — kubectl's default file is the first.
    let foreign = env.write("foreign", FOREIGN);
    let hosting = env.hosting_file("hosting");
    let files: [&Path; 2] = [&foreign, &hosting];
    let hosting_before = yaml(&hosting);

    let out = env.kflex(&files, &["create", "cp1"]).await;
    let text = ok(&out);
    assert!(text.contains("control plane cp1 (k8s) is ready"), "{text}");

    // The real kubectl reaches the tenant through the ingress, by context,
    // with no --server override (tls-server-name does the SNI).
    let ns = ok(&env
        .kubectl(&files, &["--context", "cp1", "get", "ns"])
        .await);
    assert!(ns.contains("default"), "{ns}");
    // Current context is cp1 (kubectl agrees).
    let cur = ok(&env.kubectl(&files, &["config", "current-context"]).await);
    assert_eq!(cur.trim(), "cp1");

    // New entries and current-context went to the first file; the
    // foreign entries there parse to equal values.
    let f = yaml(&foreign);
    let orig: serde_json::Value = serde_saphyr::from_str(FOREIGN).unwrap();
    for list in ["clusters", "users"] {
        for e in orig[list].as_array().unwrap() {
            assert_eq!(entry(&f, list, e["name"].as_str().unwrap()), e);
        }
    }
    assert_eq!(
        entry(&f, "contexts", "gke"),
        entry(&orig, "contexts", "gke")
    );
    assert_eq!(f["extensions"][0], orig["extensions"][0]);
    assert_eq!(f["current-context"], "cp1");
    let cp1 = entry(&f, "contexts", "cp1");
    assert_eq!(cp1["context"]["cluster"], "cp1-cluster");
    assert_eq!(cp1["context"]["user"], "cp1-admin");
    assert_eq!(ext_data(cp1)["controlplane-name"], "cp1");
    assert_eq!(
        f["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "kubeflex")
            .unwrap()["extension"]["data"]["hosting-cluster-ctx-name"],
        "testenv"
    );
    // The hosting file: only the testenv context gained the hosting flag.
    let h = yaml(&hosting);
    assert_eq!(h["clusters"], hosting_before["clusters"]);
    assert_eq!(h["users"], hosting_before["users"]);
    assert_eq!(
        ext_data(entry(&h, "contexts", "testenv"))["is-hosting-cluster-ctx"],
        "true"
    );
    assert_eq!(h["current-context"], hosting_before["current-context"]);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&foreign).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // list: human and JSON snapshots.
    let list = ok(&env.kflex(&files, &["list"]).await);
    snapshot("list.txt", &normalize(&list));
    let json = ok(&env.kflex(&files, &["list", "-o", "json"]).await);
    snapshot("list.json", &normalize(&json));
    let wide = ok(&env.kflex(&files, &["list", "-o", "wide"]).await);
    assert!(
        wide.contains("CONTEXT") && wide.lines().nth(1).unwrap().trim_end().ends_with("cp1"),
        "{wide}"
    );

    // ctx: back to hosting, then to cp1; ctx list sorted with the marks.
    let out = ok(&env.kflex(&files, &["ctx"]).await);
    assert!(
        out.contains("Switching to hosting cluster context"),
        "{out}"
    );
    assert_eq!(
        ok(&env.kubectl(&files, &["config", "current-context"]).await).trim(),
        "testenv"
    );
    ok(&env.kflex(&files, &["ctx", "cp1"]).await);
    snapshot(
        "ctx-list.txt",
        &ok(&env.kflex(&files, &["ctx", "list"]).await),
    );
    assert_eq!(ok(&env.kflex(&files, &["ctx", "get"]).await).trim(), "cp1");

    // Reload from the server (-o): the loaded context carries controlplane-name.
    ok(&env.kflex(&files, &["ctx", "-o", "cp1"]).await);
    assert_eq!(
        ext_data(entry(&yaml(&foreign), "contexts", "cp1"))["controlplane-name"],
        "cp1"
    );
    ok(&env
        .kubectl(&files, &["--context", "cp1", "get", "ns"])
        .await);

    // Errors: one line, exit 1; usage errors exit 2.
    let e = fails(&env.kflex(&files, &["create", "cp1"]).await);
    assert!(
        e.contains("already exists") && e.lines().count() == 1,
        "{e}"
    );
    let e = fails(&env.kflex(&files, &["create", "Bad_Name"]).await);
    assert!(e.contains("invalid control plane name"), "{e}");
    assert_eq!(env.kflex(&files, &["create"]).await.status.code(), Some(2));

    // delete: gone from the server and from every file; back on hosting.
    let out = env.kflex(&files, &["delete", "cp1"]).await;
    ok(&out);
    for f in [&foreign, &hosting] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("cp1"),
            "{} still mentions cp1:\n{text}",
            f.display()
        );
    }
    assert_eq!(
        ok(&env.kubectl(&files, &["config", "current-context"]).await).trim(),
        "testenv"
    );
    let gone = env.kubectl(&files, &["get", "ns", "cp1-system"]).await;
    assert!(!gone.status.success());
    // Secrets never printed.
    assert!(!stdout(&out).contains("BEGIN") && !stderr(&out).contains("BEGIN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_type_and_two_creates_at_once_on_one_kubeconfig() {
    let env = Env::start().await;
    let kc = env.hosting_file("config");
    let files: [&Path; 1] = [&kc];
    // Record the hosting context first (as after `kflex init`).
    ok(&env
        .kflex(&files, &["config", "set-hosting", "testenv"])
        .await);

    let (a, b) = tokio::join!(
        env.kflex(&files, &["create", "par-a", "--no-switch"]),
        env.kflex(&files, &["create", "par-b", "--no-switch"]),
    );
    ok(&a);
    ok(&b);
    let ctxs = names(&kc, "contexts");
    for n in ["par-a", "par-b", "testenv"] {
        assert!(ctxs.contains(&n.to_string()), "{n} lost: {ctxs:?}");
    }
    for n in ["par-a-cluster", "par-b-cluster"] {
        assert!(names(&kc, "clusters").contains(&n.to_string()));
    }
    assert_eq!(
        ok(&env.kubectl(&files, &["config", "current-context"]).await).trim(),
        "testenv"
    );
    ok(&env
        .kubectl(&files, &["--context", "par-b", "get", "ns"])
        .await);

    // host: context NAME is a copy of the hosting context, marked.
    let out = ok(&env
        .kflex(&files, &["create", "h1", "-t", "host", "-o", "json"])
        .await);
    snapshot("create-host.json", &out);
    let h1 = entry(&yaml(&kc), "contexts", "h1").clone();
    assert_eq!(
        h1["context"]["cluster"],
        entry(&yaml(&kc), "contexts", "testenv")["context"]["cluster"]
    );
    assert_eq!(ext_data(&h1)["controlplane-name"], "h1");
    assert!(ext_data(&h1).get("is-hosting-cluster-ctx").is_none());
    ok(&env.kubectl(&files, &["--context", "h1", "get", "ns"]).await);
    ok(&env.kflex(&files, &["delete", "h1"]).await);
    assert!(!names(&kc, "contexts").contains(&"h1".to_string()));
    // The hosting cluster's entries survive a host-type delete.
    assert!(names(&kc, "clusters").len() >= 3);
    ok(&env
        .kubectl(&files, &["--context", "testenv", "get", "ns"])
        .await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_hosting_records_are_explained_and_never_followed() {
    let env = Env::start_idle(true).await;
    let no_api = Env::start_idle(false).await;
    let base = env.hosting_file("base");
    ok(&env
        .kflex(&[&base], &["config", "set-hosting", "testenv"])
        .await);
    let text = std::fs::read_to_string(&base).unwrap();
    let mut doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    // The current context is some other, unreachable cluster so the live
    // probe of the current context fails and the record is consulted.
    doc["clusters"].as_array_mut().unwrap().push(
        serde_json::json!({"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}),
    );
    doc["contexts"].as_array_mut().unwrap().push(serde_json::json!({"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "testenv-admin"}}));
    doc["current-context"] = "elsewhere".into();

    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "context-gone",
            {
                let mut d = doc.clone();
                d["contexts"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|c| c["name"] != "testenv");
                d
            },
            "no longer exists in the kubeconfig",
        ),
        (
            "cluster-gone",
            {
                let mut d = doc.clone();
                d["clusters"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|c| c["name"] == "elsewhere");
                d
            },
            "cluster 'testenv' of the saved hosting context 'testenv' no longer exists",
        ),
        (
            "unreachable",
            {
                let mut d = doc.clone();
                for c in d["clusters"].as_array_mut().unwrap() {
                    c["cluster"]["server"] = "https://127.0.0.1:1".into();
                }
                d
            },
            "cannot be reached",
        ),
        (
            "no-api",
            {
                let mut d = doc.clone();
                let other: serde_json::Value =
                    serde_saphyr::from_str(&no_api.hosting_yaml).unwrap();
                d["clusters"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|c| c["name"] == "elsewhere");
                d["clusters"]
                    .as_array_mut()
                    .unwrap()
                    .push(other["clusters"][0].clone());
                d["users"] = other["users"].clone();
                d
            },
            "without the ControlPlane API",
        ),
    ];
    for (name, d, needle) in cases {
        let path = env.write(name, &serde_json::to_string(&d).unwrap());
        let before = std::fs::read_to_string(&path).unwrap();
        let e = fails(&env.kflex(&[&path], &["ctx"]).await);
        assert!(e.contains(needle), "{name}: {e}");
        assert!(
            e.contains("kflex ctx --set-current-for-hosting")
                && e.contains("kflex config set-hosting"),
            "{name}: {e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{name}: {e}");
        // Never followed: the user stays where they were, nothing written.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "{name}");
        // create refuses the same way, creating nothing.
        let e = fails(&env.kflex(&[&path], &["create", "x1", "--no-wait"]).await);
        assert!(e.contains(needle), "{name}: {e}");
        // So does loading a context from the server, which skips the
        // discovery probe unless its read of the control plane fails.
        let e = fails(&env.kflex(&[&path], &["ctx", "x1"]).await);
        assert!(e.contains(needle), "{name}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{name}: {e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "{name}");
    }
    // No record at all.
    let fresh = env.write(
        "fresh",
        &serde_json::to_string(&{
            let mut d = doc.clone();
            d.as_object_mut().unwrap().remove("extensions");
            d
        })
        .unwrap(),
    );
    let e = fails(&env.kflex(&[&fresh], &["ctx"]).await);
    assert!(
        e.contains("the hosting cluster context is not known"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_installs_from_embedded_manifests_and_is_idempotent() {
    let env = Env::start_idle(false).await;
    let kc = env.hosting_file("config");
    let out = ok(&env.kflex(&[&kc], &["init", "--skip-operator"]).await);
    assert!(out.contains("KubeFlex installed on 'testenv'"), "{out}");
    ok(&env
        .kubectl(
            &[&kc],
            &["get", "crd", "controlplanes.tenancy.kflex.kubestellar.org"],
        )
        .await);
    ok(&env
        .kubectl(
            &[&kc],
            &[
                "-n",
                "kubeflex-system",
                "get",
                "serviceaccount",
                "kubeflex-operator",
            ],
        )
        .await);
    ok(&env
        .kubectl(&[&kc], &["get", "clusterrole", "kubeflex-operator"])
        .await);
    let h = yaml(&kc);
    assert_eq!(
        ext_data(entry(&h, "contexts", "testenv"))["is-hosting-cluster-ctx"],
        "true"
    );
    let again = ok(&env.kflex(&[&kc], &["init", "--skip-operator"]).await);
    assert!(
        again.contains("already installed") && again.contains("nothing changed"),
        "{again}"
    );
    // With the operator: its Deployment carries --image and the flags, and
    // init waits until testenv's simulated pod makes it Available.
    let out = ok(&env
        .kflex(
            &[&kc],
            &[
                "init",
                "--image",
                "example.com/kflex/op:1",
                "--external-address",
                "10.1.2.3",
                "--timeout",
                "90s",
            ],
        )
        .await);
    assert!(out.contains("KubeFlex installed"), "{out}");
    let d = ok(&env
        .kubectl(
            &[&kc],
            &["-n", "kubeflex-system", "get", "deployment", "kubeflex-operator", "-o",
              "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].args}"],
        )
        .await);
    assert!(
        d.starts_with("example.com/kflex/op:1 ") && d.contains("--external-address=10.1.2.3"),
        "{d}"
    );
    // The hosting context now serves the API: `kflex ctx` stays.
    let out = ok(&env.kflex(&[&kc], &["ctx"]).await);
    assert!(
        out.contains("Current context accesses the hosting cluster"),
        "{out}"
    );
    // uninstall keeps the CRDs unless asked.
    ok(&env.kflex(&[&kc], &["uninstall"]).await);
    ok(&env
        .kubectl(
            &[&kc],
            &["get", "crd", "controlplanes.tenancy.kflex.kubestellar.org"],
        )
        .await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_commands() {
    let env = Env::start_idle(true).await;
    let kc = env.hosting_file("config");
    let v = ok(&env.kflex(&[&kc], &["version", "--client"]).await);
    assert!(
        v.contains("API version: tenancy.kflex.kubestellar.org/v1alpha1"),
        "{v}"
    );
    let v = ok(&env.kflex(&[&kc], &["version", "-o", "json"]).await);
    let j: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert!(j["server"].as_str().unwrap().starts_with("v1."), "{v}");
    let c = ok(&env.kflex(&[&kc], &["completion", "bash"]).await);
    assert!(c.contains("kflex") && c.contains("create"));
    let help = ok(&env.kflex(&[&kc], &["--help"]).await);
    snapshot("help.txt", &help);
    assert!(
        help.contains("Exit codes:") && help.contains("2  usage error"),
        "{help}"
    );
    // config diagnose, before and after recording the hosting context.
    let d: serde_json::Value =
        serde_json::from_str(&ok(&env.kflex(&[&kc], &["config", "diagnose"]).await)).unwrap();
    assert_eq!(d["status"], "critical");
    ok(&env
        .kflex(&[&kc], &["config", "set-hosting", "testenv"])
        .await);
    let e = fails(&env.kflex(&[&kc], &["config", "set-hosting", "nope"]).await);
    assert!(
        e.contains("context 'nope' must exist within kubeconfig"),
        "{e}"
    );
    let d: serde_json::Value =
        serde_json::from_str(&ok(&env.kflex(&[&kc], &["config", "diagnose"]).await)).unwrap();
    assert_eq!(d["status"], "ok");
    assert_eq!(d["data"]["hosting-cluster-ctx-name"], "testenv");
    assert!(
        d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "ok"),
        "{d}"
    );
    // ctx rename / delete of an unmanaged context without a terminal: cancelled.
    ok(&env
        .kflex(&[&kc], &["ctx", "rename", "testenv", "host2", "-S"])
        .await);
    assert_eq!(names(&kc, "contexts"), ["host2"]);
    ok(&env
        .kubectl(
            &[&kc],
            &[
                "config",
                "set-context",
                "plain",
                "--cluster=testenv",
                "--user=testenv-admin",
            ],
        )
        .await);
    let out = ok(&env.kflex(&[&kc], &["ctx", "delete", "plain"]).await);
    assert!(out.contains("Deletion cancelled."), "{out}");
    assert_eq!(names(&kc, "contexts"), ["host2", "plain"]);
    ok(&env
        .kflex(&[&kc], &["ctx", "delete", "plain", "--force"])
        .await);
    assert_eq!(names(&kc, "contexts"), ["host2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn k3s_external_and_refused_types() {
    let env = Env::start().await;
    let kc = env.hosting_file("config");
    let files: [&Path; 1] = [&kc];
    ok(&env
        .kflex(&files, &["config", "set-hosting", "testenv"])
        .await);

    // A reason that needs a person stops the wait at once.
    let start = std::time::Instant::now();
    let out = env
        .kflex(&files, &["create", "old", "-t", "ocm", "--timeout", "2m"])
        .await;
    let e = fails(&out);
    assert!(e.contains("deprecated"), "{e}");
    assert!(
        e.contains("control plane old is not ready (Refused)"),
        "{e}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    assert!(!names(&kc, "contexts").contains(&"old".to_string()));

    // k3s: renamed entries (§7.2), reachable by context through the ingress.
    ok(&env.kflex(&files, &["create", "k3", "-t", "k3s"]).await);
    let doc = yaml(&kc);
    let k3 = entry(&doc, "contexts", "k3");
    assert_eq!(k3["context"]["cluster"], "k3-cluster");
    assert_eq!(k3["context"]["user"], "k3-admin");
    assert_eq!(
        entry(&doc, "clusters", "k3-cluster")["cluster"]["tls-server-name"],
        "k3.localtest.me"
    );
    ok(&env.kubectl(&files, &["--context", "k3", "get", "ns"]).await);

    // adopt needs what `kflex init` installs: on a hosting cluster without
    // its namespace, a clear error (the operator's cluster has it: the
    // operator runs as its ServiceAccount there).
    let bare = Env::start_idle(true).await;
    let bare_kc = bare.hosting_file("config");
    let bare_files: [&Path; 1] = [&bare_kc];
    ok(&bare
        .kflex(&bare_files, &["config", "set-hosting", "testenv"])
        .await);
    let e = fails(
        &bare
            .kflex(
                &bare_files,
                &["adopt", "ext1", "--adopted-context", "testenv"],
            )
            .await,
    );
    assert!(
        e.contains("namespace kubeflex-system does not exist") && e.contains("kflex init"),
        "{e}"
    );
    drop(bare);
    // adopt the hosting cluster itself as `external`, wait, merge, switch.
    let out = ok(&env
        .kflex(
            &files,
            &["adopt", "ext1", "--adopted-context", "testenv", "--wait"],
        )
        .await);
    assert!(out.contains("adopted and ready"), "{out}");
    assert_eq!(
        ok(&env.kubectl(&files, &["config", "current-context"]).await).trim(),
        "ext1"
    );
    ok(&env
        .kubectl(&files, &["--context", "ext1", "get", "ns"])
        .await);
    let r = ok(&env.kubectl(&files, &["--context", "testenv", "get", "controlplane", "ext1", "-o",
        "jsonpath={.spec.type}/{.spec.bootstrapSecretRef.name}/{.spec.bootstrapSecretRef.inClusterKey}"]).await);
    assert_eq!(r, "external/ext1-bootstrap/kubeconfig-incluster");
    // Loaded again from the server (external: its in-cluster key), marked.
    ok(&env.kflex(&files, &["ctx", "-o", "ext1", "-v"]).await);
    assert_eq!(
        ext_data(entry(&yaml(&kc), "contexts", "ext1"))["controlplane-name"],
        "ext1"
    );
    ok(&env
        .kubectl(&files, &["--context", "ext1", "get", "ns"])
        .await);
    let e = fails(
        &env.kflex(
            &files,
            &[
                "adopt",
                "ext2",
                "--adopted-context",
                "testenv",
                "--url-override",
                "https://localhost:6443",
            ],
        )
        .await,
    );
    assert!(e.contains("invalid server endpoint"), "{e}");

    // ext1 is the hosting cluster itself, with a token that its deletion
    // revokes: delete from the hosting context.
    ok(&env.kflex(&files, &["ctx", "testenv"]).await);
    for n in ["k3", "ext1", "old"] {
        ok(&env.kflex(&files, &["delete", n]).await);
    }
    let text = std::fs::read_to_string(&kc).unwrap();
    for n in ["k3", "ext1"] {
        assert!(
            !names(&kc, "contexts").contains(&n.to_string()),
            "{n}:\n{text}"
        );
    }
    assert!(
        !names(&kc, "clusters")
            .iter()
            .any(|c| c.starts_with("k3") || c.starts_with("ext1")),
        "{text}"
    );
}
