//! A smoke set with every `kubectl.1.NN` the dispatcher can run (1.27–1.33
//! on these machines), each against a testenv reporting that minor: what a
//! user with an older or newer kubectl does first. The full conformance
//! tests (`kubectl_conformance.rs`) run with the default minor. 1.27 and
//! 1.28 `apply` only with the protobuf `/openapi/v2` document, and build
//! their strategic merge patches from its schemas.

#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kubeflex_testenv::TestEnv;
use support::Cluster;

/// `kubectl.1.<minor>` beside the dispatcher on the PATH.
fn kubectl_binary(minor: u32) -> PathBuf {
    let dispatcher = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("kubectl"))
                .find(|p| p.is_file())
        })
        .expect("kubectl is not on the PATH");
    let dir = std::fs::canonicalize(&dispatcher)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let binary = dir.join(format!("kubectl.1.{minor}"));
    assert!(
        binary.is_file(),
        "{} is missing: the kubectl dispatcher here ships 1.27-1.33",
        binary.display()
    );
    binary
}

struct Kubectl<'a> {
    binary: PathBuf,
    cluster: &'a Cluster,
}

impl Kubectl<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cluster.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.cluster.dir.path())
            .env_remove("KUBECONFIG");
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        check(&self.binary, args, &out);
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply -f -`: stdout, or stderr when it fails. A success
    /// prints no warning (kubectl warns when it cannot use the server's
    /// OpenAPI schema for a patch).
    fn apply(&self, yaml: &str) -> Result<String, String> {
        let mut child = self
            .command(&["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), yaml.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.trim().is_empty(), "apply warned: {stderr}");
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8(out.stderr).unwrap())
        }
    }
}

fn check(binary: &Path, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CM: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
  namespace: smoke
data:
  key: value
";

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: smoke
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1
        env: [{name: A, value: \"1\"}]
      - name: sidecar
        image: busybox
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.example
spec:
  group: smoke.example
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              tags: {type: array, items: {type: string}}
";

fn smoke(minor: u32) {
    let cluster = Cluster::start_with(TestEnv::builder().minor(minor));
    let k = Kubectl {
        binary: kubectl_binary(minor),
        cluster: &cluster,
    };
    let version = k.ok(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["clientVersion"]["minor"], minor.to_string());
    assert_eq!(version["serverVersion"]["minor"], minor.to_string());

    k.ok(&["create", "namespace", "smoke"]);
    k.ok(&[
        "create",
        "configmap",
        "cm1",
        "-n",
        "smoke",
        "--from-literal=a=1",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "smoke",
        "--from-literal=password=hunter2",
    ]);
    assert!(
        k.apply(CM)
            .expect("apply")
            .contains("configmap/applied created")
    );
    assert!(
        k.apply(CM)
            .expect("apply")
            .contains("configmap/applied unchanged")
    );
    // A change is a strategic merge patch: list items merge by their key.
    assert!(
        k.apply(DEPLOY)
            .expect("apply")
            .contains("deployment.apps/web created")
    );
    let changed = DEPLOY
        .replace("nginx:1", "nginx:2")
        .replace("\"1\"", "\"2\"");
    assert!(
        k.apply(&changed)
            .expect("apply")
            .contains("deployment.apps/web configured")
    );
    let containers = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "smoke",
        "-o",
        "jsonpath={range .spec.template.spec.containers[*]}{.name}={.image},{.env[*].value};{end}",
    ]);
    assert_eq!(containers, "c=nginx:2,2;sidecar=busybox,;");
    // A custom resource's change is a JSON merge patch (kubectl reads the
    // patch types from /openapi/v2).
    assert!(k.apply(CRD).expect("apply").contains("created"));
    let widget = |size: u32| {
        format!(
            "apiVersion: smoke.example/v1\nkind: Widget\nmetadata: {{name: w1, namespace: smoke}}\nspec: {{size: {size}, tags: [a]}}\n"
        )
    };
    // The first apply may run before kubectl's discovery knows the kind.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Err(e) = k.apply(&widget(1)) {
        assert!(std::time::Instant::now() < deadline, "{e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        k.apply(&widget(2))
            .expect("apply")
            .contains("widget.smoke.example/w1 configured")
    );
    assert_eq!(
        k.ok(&[
            "get",
            "widget",
            "w1",
            "-n",
            "smoke",
            "-o",
            "jsonpath={.spec.size} {.spec.tags}"
        ]),
        "2 [\"a\"]"
    );
    let got = |args: &[&str]| k.ok(args);
    assert_eq!(
        got(&[
            "get",
            "cm",
            "cm1",
            "-n",
            "smoke",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "1"
    );
    assert_eq!(
        got(&[
            "get",
            "secret",
            "s1",
            "-n",
            "smoke",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "aHVudGVyMg=="
    );
    let table = got(&["get", "configmaps", "-n", "smoke"]);
    assert!(
        table.starts_with("NAME") && table.contains("applied") && table.contains("cm1"),
        "{table}"
    );

    // A watch sees what is created after it started.
    let mut watch = k
        .command(&["get", "configmaps", "-n", "smoke", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial list first: once it is printed the watch is open.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l| l == "configmap/cm1") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        seen.push(rx.recv_timeout(left).expect("the watch printed the list"));
    }
    k.ok(&["create", "configmap", "late", "-n", "smoke"]);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("the watch saw configmap/late");
        if line == "configmap/late" {
            break;
        }
    }
    watch.kill().unwrap();
    watch.wait().unwrap();

    k.ok(&["delete", "configmap", "cm1", "-n", "smoke"]);
    let out = k
        .command(&["get", "configmap", "cm1", "-n", "smoke"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.ok(&["delete", "namespace", "smoke", "--wait=false"]);
}

macro_rules! smoke_tests {
    ($($name:ident = $minor:literal;)+) => {
        $(
            #[test]
            fn $name() {
                smoke($minor);
            }
        )+
    };
}

smoke_tests! {
    kubectl_1_27_smoke = 27;
    kubectl_1_28_smoke = 28;
    kubectl_1_29_smoke = 29;
    kubectl_1_30_smoke = 30;
    kubectl_1_31_smoke = 31;
    kubectl_1_32_smoke = 32;
    kubectl_1_33_smoke = 33;
}
