//! The real kubectl against testenv: what a user types, what they see.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use support::{Cluster, eventually};

const CRD: &str =
    include_str!("../../config/crd/bases/tenancy.kflex.kubestellar.org_controlplanes.yaml");

#[test]
fn create_namespace_configmap_secret_and_get_them() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "demo"]);
    c.ok(&[
        "create",
        "configmap",
        "cm1",
        "-n",
        "demo",
        "--from-literal=a=1",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "demo",
        "--from-literal=password=hunter2",
    ]);
    let out = c.ok(&[
        "get",
        "configmap",
        "cm1",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.a}",
    ]);
    assert_eq!(out, "1");
    let out = c.ok(&[
        "get",
        "secret",
        "s1",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(out, "aHVudGVyMg==");
    let table = c.ok(&["get", "namespaces"]);
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.contains("demo") && table.contains("kube-system"),
        "{table}"
    );
    // The namespace controller gives every namespace its default ServiceAccount.
    assert!(eventually(5, || c
        .kubectl(&["get", "sa", "default", "-n", "demo"])
        .status
        .success()));
    let err = c.fails(&["create", "namespace", "demo"]);
    assert!(
        err.contains("AlreadyExists") && err.contains("namespaces \"demo\" already exists"),
        "{err}"
    );
}

const CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  namespace: default
  labels:
    tier: web
data:
  key: value
";

#[test]
fn client_side_apply_twice_changes_nothing_the_second_time() {
    let c = Cluster::start();
    let out = c.apply(CM, &[]);
    assert!(out.contains("configmap/app created"), "{out}");
    let rv1 = c.ok(&[
        "get",
        "cm",
        "app",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let out = c.apply(CM, &[]);
    assert!(out.contains("configmap/app unchanged"), "{out}");
    let rv2 = c.ok(&[
        "get",
        "cm",
        "app",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv1, rv2);
    let out = c.apply(&CM.replace("value", "other"), &[]);
    assert!(out.contains("configmap/app configured"), "{out}");
    assert_eq!(
        c.ok(&["get", "cm", "app", "-o", "jsonpath={.data.key}"]),
        "other"
    );
}

#[test]
fn server_side_apply_twice_changes_nothing_the_second_time() {
    let c = Cluster::start();
    let out = c.apply(CM, &["--server-side"]);
    assert!(out.contains("serverside-applied"), "{out}");
    let rv1 = c.ok(&[
        "get",
        "cm",
        "app",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    c.apply(CM, &["--server-side"]);
    let rv2 = c.ok(&[
        "get",
        "cm",
        "app",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(rv1, rv2, "a no-op apply must not bump resourceVersion");
    let managers = c.ok(&[
        "get",
        "cm",
        "app",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
        "--show-managed-fields",
    ]);
    assert_eq!(managers, "kubectl");
    // Dropping a field from the applied config removes it.
    c.apply(
        &CM.replace("  labels:\n    tier: web\n", ""),
        &["--server-side"],
    );
    assert_eq!(
        c.ok(&["get", "cm", "app", "-o", "jsonpath={.metadata.labels}"]),
        ""
    );
}

#[test]
fn get_filters_by_label_and_field_and_prints_yaml() {
    let c = Cluster::start();
    c.apply(CM, &[]);
    c.apply(
        &CM.replace("name: app", "name: other")
            .replace("tier: web", "tier: db"),
        &[],
    );
    let out = c.ok(&["get", "cm", "-l", "tier=web", "-o", "name"]);
    assert_eq!(out.trim(), "configmap/app");
    let out = c.ok(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=other",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "configmap/other");
    let yaml = c.ok(&["get", "cm", "app", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap")
            && yaml.contains("uid:")
            && yaml.contains("creationTimestamp:"),
        "{yaml}"
    );
    let err = c.fails(&["get", "cm", "missing"]);
    assert!(
        err.contains("(NotFound)") && err.contains("configmaps \"missing\" not found"),
        "{err}"
    );
    let err = c.fails(&["get", "frobnicators"]);
    assert!(
        err.contains("doesn't have a resource type \"frobnicators\""),
        "{err}"
    );
}

#[test]
fn get_watch_sees_added_then_modified() {
    let c = Cluster::start();
    c.apply(CM, &[]);
    let mut child = std::process::Command::new("kubectl")
        .args(["--kubeconfig"])
        .arg(&c.kubeconfig)
        .arg("--cache-dir")
        .arg(c.dir.path().join("cache"))
        .args([
            "get",
            "cm",
            "app",
            "-w",
            "-o",
            "json",
            "--output-watch-events",
        ])
        .env("HOME", c.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut de = serde_json::Deserializer::from_reader(stdout).into_iter::<serde_json::Value>();
        while let Some(Ok(v)) = de.next() {
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(first["type"], "ADDED");
    c.apply(&CM.replace("value", "changed"), &[]);
    let second = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(second["type"], "MODIFIED");
    assert_eq!(second["object"]["data"]["key"], "changed");
    child.kill().unwrap();
    child.wait().unwrap();
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

#[test]
fn wait_for_available_once_status_says_so() {
    let c = Cluster::start();
    c.apply(DEPLOY, &[]);
    let status = r#"{"status":{"replicas":1,"readyReplicas":1,"availableReplicas":1,"conditions":[{"type":"Available","status":"True","reason":"MinimumReplicasAvailable","message":"ok"}]}}"#;
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    let out = c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=20s",
    ]);
    assert!(out.contains("condition met"), "{out}");
    // A status write does not move generation; a spec change does.
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "1"
    );
    c.ok(&["scale", "deployment", "web", "--replicas=3"]);
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );
}

#[test]
fn replace_with_a_stale_resource_version_conflicts() {
    let c = Cluster::start();
    c.apply(CM, &[]);
    let stale = c.ok(&["get", "cm", "app", "-o", "json"]);
    c.ok(&[
        "patch",
        "cm",
        "app",
        "--type=merge",
        "-p",
        r#"{"data":{"key":"newer"}}"#,
    ]);
    let out = c.with_stdin(&["replace", "-f", "-"], &stale);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Operation cannot be fulfilled on configmaps \"app\": the object has been modified"
        ),
        "{err}"
    );
}

fn owned_configmap(owner: &str, uid: &str, name: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: default
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: {owner}
    uid: {uid}
    blockOwnerDeletion: true
data: {{}}
"
    )
}

#[test]
fn delete_background_and_foreground_collect_owned_objects() {
    let c = Cluster::start();
    for cascade in ["background", "foreground"] {
        let owner = format!("owner-{cascade}");
        c.apply(&CM.replace("name: app", &format!("name: {owner}")), &[]);
        let uid = c.ok(&["get", "cm", &owner, "-o", "jsonpath={.metadata.uid}"]);
        c.apply(
            &owned_configmap(&owner, &uid, &format!("child-{cascade}")),
            &[],
        );
        let out = c.ok(&["delete", "cm", &owner, &format!("--cascade={cascade}")]);
        assert!(out.contains("deleted"), "{out}");
        let child = format!("child-{cascade}");
        assert!(
            eventually(10, || !c.kubectl(&["get", "cm", &child]).status.success()),
            "{child} was not garbage-collected"
        );
        assert!(!c.kubectl(&["get", "cm", &owner]).status.success());
    }
    // Orphan keeps the dependent and drops its ownerReference.
    c.apply(&CM.replace("name: app", "name: owner-orphan"), &[]);
    let uid = c.ok(&[
        "get",
        "cm",
        "owner-orphan",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    c.apply(&owned_configmap("owner-orphan", &uid, "child-orphan"), &[]);
    c.ok(&["delete", "cm", "owner-orphan", "--cascade=orphan"]);
    assert!(eventually(10, || c
        .ok(&[
            "get",
            "cm",
            "child-orphan",
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ])
        .is_empty()));
}

#[test]
fn deleting_a_namespace_removes_its_contents() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "gone"]);
    c.apply(&CM.replace("namespace: default", "namespace: gone"), &[]);
    c.ok(&["delete", "namespace", "gone", "--timeout=20s"]);
    assert!(!c.kubectl(&["get", "namespace", "gone"]).status.success());
    assert!(
        !c.kubectl(&["get", "cm", "app", "-n", "gone"])
            .status
            .success()
    );
}

const CP: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: cp1
spec:
  type: k8s
  backend: shared
";

#[test]
fn crd_then_custom_resources_with_columns_status_and_validation() {
    let c = Cluster::start();
    c.apply(CRD, &[]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/controlplanes.tenancy.kflex.kubestellar.org",
        "--timeout=20s",
    ]);
    c.apply(CP, &[]);
    let table = c.ok(&["get", "cp"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "SYNCED", "READY", "TYPE", "AGE"],
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().contains("k8s"), "{table}");
    // Defaults from the schema.
    assert_eq!(
        c.ok(&[
            "get",
            "cp",
            "cp1",
            "-o",
            "jsonpath={.spec.tokenExpirationSeconds}"
        ]),
        "31536000"
    );
    // Status through the subresource only.
    let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Available","message":"","lastUpdateTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}],"observedGeneration":1}}"#;
    c.ok(&[
        "patch",
        "cp",
        "cp1",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "cp",
            "cp1",
            "-o",
            "jsonpath={.status.conditions[0].status}"
        ]),
        "True"
    );
    let table = c.ok(&["get", "controlplanes"]);
    let header = table.lines().next().unwrap();
    let row = table.lines().nth(1).unwrap();
    let ready_at = header.find("READY").unwrap();
    assert_eq!(&row[ready_at..ready_at + 4], "True", "{table}");
    // The immutable type.
    let err = String::from_utf8_lossy(
        &c.with_stdin(&["apply", "-f", "-"], &CP.replace("k8s", "k3s"))
            .stderr,
    )
    .into_owned();
    assert!(
        err.contains("is invalid") && err.contains("type is immutable"),
        "{err}"
    );
    // An enum violation.
    let out = c.with_stdin(
        &["apply", "-f", "-"],
        &CP.replace("cp1", "cp2").replace("k8s", "k9s"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("spec.type: Unsupported value: \"k9s\""),
        "{err}"
    );
}

#[test]
fn auth_can_i_and_service_account_tokens_follow_rbac() {
    let c = Cluster::start_with(kubeflex_testenv::TestEnv::builder().min_token_seconds(1));
    c.ok(&["create", "namespace", "team"]);
    c.ok(&["create", "serviceaccount", "bot", "-n", "team"]);
    c.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "team",
        "--verb=get",
        "--resource=configmaps",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "bot-reader",
        "-n",
        "team",
        "--role=reader",
        "--serviceaccount=team:bot",
    ]);
    let token = c.ok(&["create", "token", "bot", "-n", "team"]);
    // A kubeconfig for the token: same server and CA, token instead of a certificate.
    let admin: serde_json::Value = serde_saphyr::from_str(c.env().kubeconfig()).unwrap();
    let server = admin["clusters"][0]["cluster"]["server"].as_str().unwrap();
    let ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .unwrap();
    let kubeconfig = c.kubeconfig_file(
        "bot",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: bot\n  user:\n    token: {}\ncontexts:\n- name: t\n  context: {{cluster: t, user: bot, namespace: team}}\ncurrent-context: t\n",
            token.trim()
        ),
    );
    let yes = c.kubectl_as(&kubeconfig, &["auth", "can-i", "get", "configmaps"]);
    assert_eq!(String::from_utf8_lossy(&yes.stdout).trim(), "yes");
    let no = c.kubectl_as(&kubeconfig, &["auth", "can-i", "list", "configmaps"]);
    assert_eq!(String::from_utf8_lossy(&no.stdout).trim(), "no");
    c.ok(&["create", "configmap", "cm", "-n", "team"]);
    assert!(
        c.kubectl_as(&kubeconfig, &["get", "configmap", "cm"])
            .status
            .success()
    );
    let denied = c.kubectl_as(&kubeconfig, &["get", "configmaps"]);
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        err.contains("(Forbidden)") && err.contains("User \"system:serviceaccount:team:bot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""),
        "{err}"
    );
    // Granting the verb makes the same request pass.
    c.ok(&[
        "create",
        "role",
        "lister",
        "-n",
        "team",
        "--verb=list",
        "--resource=configmaps",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "bot-lister",
        "-n",
        "team",
        "--role=lister",
        "--serviceaccount=team:bot",
    ]);
    assert!(
        c.kubectl_as(&kubeconfig, &["get", "configmaps"])
            .status
            .success()
    );
    // An expired token is refused with 401.
    let short = c.ok(&["create", "token", "bot", "-n", "team", "--duration=1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let expired = c.kubeconfig_file(
        "expired",
        &std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace(token.trim(), short.trim()),
    );
    let out = c.kubectl_as(&expired, &["get", "configmap", "cm"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unauthorized"), "{err}");
}

/// kubectl 1.33 creates these with protobuf bodies. The same objects sent
/// as JSON (`--dry-run=client -o json`, then `create -f -`) must read back
/// the same, field by field: protobuf decoding adds and loses nothing.
#[test]
fn protobuf_created_objects_read_back_as_json_created() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "pb"]);
    let cases: &[(&str, &[&str])] = &[
        ("namespace", &["create", "namespace", "NAME"]),
        (
            "configmap",
            &[
                "create",
                "configmap",
                "NAME",
                "-n",
                "pb",
                "--from-literal=a=1",
                "--from-literal=empty=",
            ],
        ),
        (
            "secret",
            &[
                "create",
                "secret",
                "generic",
                "NAME",
                "-n",
                "pb",
                "--from-literal=password=hunter2",
            ],
        ),
        (
            "secret",
            &[
                "create",
                "secret",
                "docker-registry",
                "NAME",
                "-n",
                "pb",
                "--docker-server=r.example",
                "--docker-username=u",
                "--docker-password=p",
            ],
        ),
        (
            "serviceaccount",
            &["create", "serviceaccount", "NAME", "-n", "pb"],
        ),
        (
            "service",
            &[
                "create",
                "service",
                "clusterip",
                "NAME",
                "-n",
                "pb",
                "--tcp=80:8080",
            ],
        ),
        (
            "role",
            &[
                "create",
                "role",
                "NAME",
                "-n",
                "pb",
                "--verb=get,list",
                "--resource=configmaps",
            ],
        ),
        (
            "rolebinding",
            &[
                "create",
                "rolebinding",
                "NAME",
                "-n",
                "pb",
                "--role=r",
                "--serviceaccount=pb:default",
            ],
        ),
        (
            "deployment",
            &[
                "create",
                "deployment",
                "NAME",
                "-n",
                "pb",
                "--image=nginx",
                "--replicas=0",
                "--port=80",
            ],
        ),
    ];
    for (i, (resource, args)) in cases.iter().enumerate() {
        let named = |name: &str| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == "NAME" {
                        name.to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let (proto_name, json_name) = (format!("pb{i}"), format!("js{i}"));
        let proto_args = named(&proto_name);
        c.ok(&proto_args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut dry = named(&json_name);
        dry.extend(["--dry-run=client", "-o", "json"].map(String::from));
        let body = c.ok(&dry.iter().map(String::as_str).collect::<Vec<_>>());
        let out = c.with_stdin(&["create", "-f", "-"], &body);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |name: &str| {
            let text = c.ok(&["get", resource, name, "-n", "pb", "-o", "json"]);
            normalized(&text.replace(name, "NAME"))
        };
        let (from_proto, from_json) = (read(&proto_name), read(&json_name));
        assert_eq!(
            from_proto, from_json,
            "{resource} created from protobuf (left) and from JSON (right) differ"
        );
    }
}

/// An object without what differs between two creations of it: identity,
/// times, allocated cluster IPs, and the status controllers fill in at
/// their own pace.
fn normalized(text: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    let meta = v["metadata"].as_object_mut().unwrap();
    for key in ["uid", "resourceVersion", "creationTimestamp"] {
        meta.remove(key);
    }
    for entry in meta
        .get_mut("managedFields")
        .and_then(|m| m.as_array_mut())
        .into_iter()
        .flatten()
    {
        entry.as_object_mut().unwrap().remove("time");
    }
    match v["kind"].as_str() {
        Some("Deployment") => {
            v.as_object_mut().unwrap().remove("status");
        }
        Some("Service") => {
            let spec = v["spec"].as_object_mut().unwrap();
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        _ => {}
    }
    v
}

/// `/openapi/v2` is JSON unless protobuf is asked for (the smoke set in
/// `kubectl_versions.rs` covers the protobuf form through kubectl 1.27).
#[test]
fn openapi_v2_answers_json_with_kinds_and_crds() {
    let c = Cluster::start();
    c.apply(CRD, &[]);
    let doc: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    let defs = &doc["definitions"];
    assert_eq!(
        defs["io.k8s.api.core.v1.ConfigMap"]["x-kubernetes-group-version-kind"][0]["kind"],
        "ConfigMap"
    );
    let cp = &defs["org.kubestellar.kflex.tenancy.v1alpha1.ControlPlane"];
    assert_eq!(cp["properties"]["spec"]["type"], "object", "{cp}");
    let patch =
        &doc["paths"]["/apis/tenancy.kflex.kubestellar.org/v1alpha1/controlplanes/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "ControlPlane"
    );
}
