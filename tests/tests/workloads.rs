//! The simulated cluster end to end: workloads created with the real kubectl
//! come up, roll out, complete, fail, get Endpoints and volumes, as a real
//! cluster's controllers and kubelet would show them.
#![allow(clippy::unwrap_used)] // tests: failing loudly is the point

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use kubeflex_testenv::TestEnv;
use kubeflex_testenv::runtime::{ContainerRuntime, PodSpec, Started};
use kubeflex_testenv::simulate::{self, PortMap, SimConfig};
use serde_json::Value;
use support::{Cluster, eventually};

/// A runtime that records what it is asked: images starting with `crash`
/// crash, everything else listens on `127.0.0.1:(20000 + containerPort)`.
#[derive(Default)]
struct Scripted {
    started: Mutex<Vec<PodSpec>>,
    stopped: Mutex<Vec<String>>,
}

impl ContainerRuntime for Scripted {
    fn start(&self, pod: PodSpec) -> BoxFuture<'static, Started> {
        let containers = pod.pod["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let crash = containers
            .iter()
            .any(|c| c["image"].as_str().unwrap_or_default().starts_with("crash"));
        let ports = containers
            .iter()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["containerPort"].as_u64())
            .map(|p| {
                (
                    p as u16,
                    SocketAddr::from(([127, 0, 0, 1], 20000 + p as u16)),
                )
            })
            .collect();
        self.started.lock().unwrap().push(pod);
        Box::pin(async move {
            if crash {
                Started::Crashed {
                    message: "boom".into(),
                }
            } else {
                Started::Running { ports }
            }
        })
    }

    fn stop(&self, uid: &str) {
        self.stopped.lock().unwrap().push(uid.to_string());
    }
}

struct Sim {
    cluster: Cluster,
    runtime: Arc<Scripted>,
    ports: Arc<PortMap>,
}

/// A testenv with the simulation running next to it.
fn simulated() -> Sim {
    simulated_with(SimConfig::default())
}

fn simulated_with(config: SimConfig) -> Sim {
    // A tenant-mode server runs no simulation of its own: this one, with a
    // scripted runtime, is the only one.
    let cluster = Cluster::start_with(TestEnv::builder().tenant());
    let runtime = Arc::new(Scripted::default());
    let ports = Arc::new(PortMap::new());
    let api = cluster.env().api();
    // Detached: it ends with the cluster's runtime.
    let entered = cluster.rt.enter();
    drop(simulate::spawn(api, config, runtime.clone(), ports.clone()));
    drop(entered);
    Sim {
        cluster,
        runtime,
        ports,
    }
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&c.ok(&all)).unwrap()
}

fn pods(c: &Cluster, selector: &str) -> Vec<Value> {
    json(c, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn events(c: &Cluster, reason: &str) -> Vec<String> {
    json(c, &["get", "events"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx:1.27
        ports: [{name: http, containerPort: 8080}]
"#;

#[test]
fn deployment_becomes_available_then_rolls_out() {
    let s = simulated();
    let c = &s.cluster;
    c.apply(DEPLOYMENT, &[]);
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    let d = json(c, &["get", "deployment", "web"]);
    assert_eq!(d["status"]["readyReplicas"], 2);
    assert_eq!(d["status"]["availableReplicas"], 2);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let first = pods(c, "app=web");
    assert_eq!(first.len(), 2);
    let hash = first[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    for p in &first {
        assert_eq!(p["status"]["phase"], "Running");
        assert!(
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Deployment");
        assert_eq!(owner["controller"], true);
        assert_eq!(p["spec"]["nodeName"], "testenv-node-0");
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        // The runtime's listening address is found from the pod IP.
        let ip: Ipv4Addr = p["status"]["podIP"].as_str().unwrap().parse().unwrap();
        assert_eq!(ip.octets()[..2], [10, 244]);
        assert_eq!(
            s.ports.lookup(ip, 8080),
            Some(SocketAddr::from(([127, 0, 0, 1], 28080)))
        );
    }
    let table = c.ok(&["get", "pods"]);
    assert_eq!(table.matches("Running").count(), 2, "{table}");
    assert_eq!(table.matches("1/1").count(), 2, "{table}");
    assert!(!events(c, "ScalingReplicaSet").is_empty());
    assert!(!events(c, "Started").is_empty());

    // A template change rolls out: new pods, old ones stopped and gone.
    c.ok(&["set", "image", "deployment/web", "c=nginx:1.28"]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(eventually(20, || {
        let now = pods(c, "app=web");
        now.len() == 2
            && now
                .iter()
                .all(|p| p["metadata"]["labels"]["pod-template-hash"] != hash.as_str())
    }));
    let stopped = s.runtime.stopped.lock().unwrap().clone();
    for p in &first {
        assert!(stopped.contains(&p["metadata"]["uid"].as_str().unwrap().to_string()));
    }
    let d = json(c, &["get", "deployment", "web"]);
    assert_eq!(d["status"]["updatedReplicas"], 2);
    assert_eq!(d["status"]["replicas"], 2);

    // Scaling, and a deleted pod comes back.
    c.ok(&["scale", "deployment/web", "--replicas=3"]);
    assert!(eventually(20, || pods(c, "app=web").len() == 3));
    let victim = pods(c, "app=web")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&["delete", "pod", &victim]);
    assert!(eventually(20, || {
        let now = pods(c, "app=web");
        now.len() == 3 && now.iter().all(|p| p["metadata"]["name"] != victim.as_str())
    }));
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);

    // Settled: the simulation writes nothing more.
    let api = c.env().api();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rv = api.store.current_rv();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(api.store.current_rv(), rv);
}

#[test]
fn pods_held_by_finalizers_stop_when_deleted() {
    let s = simulated();
    let c = &s.cluster;
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: held, finalizers: [example.com/hold]}
spec:
  containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]
"#,
        &[],
    );
    c.ok(&["wait", "--for=condition=Ready", "pod/held", "--timeout=30s"]);
    let pod = json(c, &["get", "pod", "held"]);
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let ip: Ipv4Addr = pod["status"]["podIP"].as_str().unwrap().parse().unwrap();
    assert!(s.ports.lookup(ip, 80).is_some());
    c.ok(&["delete", "pod", "held", "--wait=false"]);
    assert!(eventually(20, || s
        .runtime
        .stopped
        .lock()
        .unwrap()
        .contains(&uid)));
    assert!(s.ports.lookup(ip, 80).is_none());
    assert!(eventually(20, || {
        let p = json(c, &["get", "pod", "held"]);
        p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
            && p["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "False")
    }));
    c.ok(&[
        "patch",
        "pod",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    assert!(eventually(20, || !c
        .kubectl(&["get", "pod", "held"])
        .status
        .success()));
}

#[test]
fn crashing_pods_back_off_and_leave_the_deployment_unavailable() {
    let s = simulated();
    let c = &s.cluster;
    c.apply(
        &DEPLOYMENT
            .replace("nginx:1.27", "crash:1")
            .replace("replicas: 2", "replicas: 1"),
        &[],
    );
    assert!(eventually(20, || {
        pods(c, "app=web").first().is_some_and(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
    }));
    let p = &pods(c, "app=web")[0];
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], false);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["lastState"]["terminated"]["message"], "boom");
    // Retried with back-off: the restart count grows.
    assert!(eventually(20, || {
        pods(c, "app=web")[0]["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    }));
    assert!(c.ok(&["get", "pods"]).contains("CrashLoopBackOff"));
    let d = json(c, &["get", "deployment", "web"]);
    let available = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap()
        .clone();
    assert_eq!(available["status"], "False");
    assert!(!events(c, "BackOff").is_empty());
    // A Service lists it, but not as ready.
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n",
        &[],
    );
    assert!(eventually(20, || {
        let ep = json(c, &["get", "endpoints", "web"]);
        ep["subsets"][0]["notReadyAddresses"][0]["ip"] == p["status"]["podIP"]
            && ep["subsets"][0]["addresses"].is_null()
    }));
}

#[test]
fn jobs_complete_or_fail_as_annotated() {
    let s = simulated();
    let c = &s.cluster;
    c.ok(&["create", "job", "ok", "--image=busybox"]);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=30s",
    ]);
    let job = json(c, &["get", "job", "ok"]);
    assert_eq!(job["status"]["succeeded"], 1);
    assert!(job["status"]["completionTime"].is_string());
    assert!(job["status"]["startTime"].is_string());
    let done = pods(c, "job-name=ok");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["status"]["phase"], "Succeeded");
    assert!(c.ok(&["get", "pods"]).contains("Completed"));
    assert!(events(c, "Completed").iter().any(|m| m == "Job completed"));

    c.apply(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  backoffLimit: 1
  template:
    metadata:
      annotations: {testenv.kflex.kubestellar.org/fail: "exit status 1: no such table"}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"#,
        &[],
    );
    c.ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=30s"]);
    let job = json(c, &["get", "job", "bad"]);
    assert_eq!(job["status"]["failed"], 2);
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    let attempts = pods(c, "job-name=bad");
    assert_eq!(attempts.len(), 2);
    for p in attempts {
        assert_eq!(p["status"]["phase"], "Failed");
        let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["exitCode"], 1);
        assert_eq!(t["message"], "exit status 1: no such table");
    }
}

#[test]
fn kubelet_checks_hold_pods_until_references_resolve() {
    let s = simulated();
    let c = &s.cluster;
    c.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
    ]);
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: envpod}
spec:
  containers:
  - name: c
    image: nginx
    env: [{name: P, valueFrom: {secretKeyRef: {name: creds, key: password}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: mountpod}
spec:
  volumes: [{name: cfg, configMap: {name: settings}}, {name: tls, secret: {secretName: creds, items: [{key: user, path: u/name}]}}]
  containers:
  - name: c
    image: nginx
    volumeMounts: [{name: cfg, mountPath: /etc/app}, {name: tls, mountPath: /etc/creds}]
---
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  containers: [{name: c, image: ""}]
"#,
        &[],
    );
    let waiting = |name: &str| {
        json(c, &["get", "pod", name])["status"]["containerStatuses"][0]["state"]["waiting"].clone()
    };
    assert!(eventually(20, || waiting("envpod")["reason"]
        == "CreateContainerConfigError"));
    assert_eq!(
        waiting("envpod")["message"],
        "couldn't find key password in Secret default/creds"
    );
    assert!(
        c.ok(&["get", "pod", "envpod"])
            .contains("CreateContainerConfigError")
    );
    assert!(eventually(20, || waiting("noimage")["reason"] == "InvalidImageName"));
    assert!(eventually(20, || {
        events(c, "FailedMount").iter().any(|m| {
            m == "MountVolume.SetUp failed for volume \"cfg\" : configmap \"settings\" not found"
        })
    }));
    let pending = json(c, &["get", "pod", "mountpod"]);
    assert_eq!(pending["status"]["phase"], "Pending");
    assert_eq!(
        pending["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );

    // Once what they miss exists, they start, with the files projected.
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=app.conf=debug=1",
    ]);
    c.ok(&[
        "patch",
        "secret",
        "creds",
        "-p",
        r#"{"stringData":{"password":"s3cret"}}"#,
    ]);
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/envpod",
        "pod/mountpod",
        "--timeout=30s",
    ]);
    let started = s.runtime.started.lock().unwrap();
    let mount = started.iter().find(|p| p.name == "mountpod").unwrap();
    assert_eq!(mount.files["/etc/app/app.conf"], b"debug=1");
    assert_eq!(mount.files["/etc/creds/u/name"], b"admin");
    assert_eq!(mount.files.len(), 2);
}

#[test]
fn containers_start_independently_of_a_blocked_sibling() {
    let s = simulated();
    let c = &s.cluster;
    // As vcluster's pod: one container waits on a ConfigMap its sibling writes.
    c.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  containers:
  - name: waits
    image: nginx
    env: [{name: CIDR, valueFrom: {configMapKeyRef: {name: later, key: cidr}}}]
  - name: writer
    image: nginx
"#,
        &[],
    );
    let state = |i: usize| {
        json(c, &["get", "pod", "pair"])["status"]["containerStatuses"][i]["state"].clone()
    };
    assert!(eventually(20, || state(1)["running"].is_object()));
    let pod = json(c, &["get", "pod", "pair"]);
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(state(0)["waiting"]["reason"], "CreateContainerConfigError");
    assert_eq!(
        state(0)["waiting"]["message"],
        "configmap \"later\" not found"
    );
    let ready = |pod: &Value| {
        pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    assert!(!ready(&pod));
    // The runtime got the pod without the held container.
    {
        let started = s.runtime.started.lock().unwrap();
        let first = started.iter().find(|p| p.name == "pair").unwrap();
        let names: Vec<&str> = first.pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["writer"]);
    }
    c.ok(&[
        "create",
        "configmap",
        "later",
        "--from-literal=cidr=10.96.0.0/12",
    ]);
    c.ok(&["wait", "--for=condition=Ready", "pod/pair", "--timeout=30s"]);
    assert!(state(0)["running"].is_object());
    assert!(
        events(c, "Started")
            .iter()
            .any(|m| m == "Started container waits")
    );
}

#[test]
fn services_get_endpoints_and_claims_get_bound() {
    let s = simulated();
    let c = &s.cluster;
    c.apply(DEPLOYMENT, &[]);
    c.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
"#,
        &[],
    );
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]);
    assert!(eventually(20, || {
        let ep = json(c, &["get", "endpoints", "web"]);
        ep["subsets"][0]["addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    }));
    let ep = json(c, &["get", "endpoints", "web"]);
    let subset = &ep["subsets"][0];
    assert_eq!(subset["ports"][0]["port"], 8080);
    assert_eq!(subset["ports"][0]["name"], "http");
    let ips: Vec<Value> = pods(c, "app=web")
        .iter()
        .map(|p| p["status"]["podIP"].clone())
        .collect();
    for a in subset["addresses"].as_array().unwrap() {
        assert!(ips.contains(&a["ip"]));
        assert_eq!(a["targetRef"]["kind"], "Pod");
    }

    assert!(eventually(
        20,
        || json(c, &["get", "pvc", "data"])["status"]["phase"] == "Bound"
    ));
    let pvc = json(c, &["get", "pvc", "data"]);
    assert_eq!(pvc["status"]["capacity"]["storage"], "2Gi");
    assert!(
        pvc["spec"]["volumeName"]
            .as_str()
            .unwrap()
            .starts_with("pvc-")
    );
}

#[test]
fn statefulsets_come_up_in_order_with_their_claims() {
    let s = simulated();
    let c = &s.cluster;
    c.apply(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: c
        image: postgres:16
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#,
        &[],
    );
    c.ok(&["rollout", "status", "statefulset/db", "--timeout=30s"]);
    let sts = json(c, &["get", "statefulset", "db"]);
    assert_eq!(sts["status"]["readyReplicas"], 2);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    for i in 0..2 {
        let p = json(c, &["get", "pod", &format!("db-{i}")]);
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(
            p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            format!("db-{i}")
        );
        let pvc = json(c, &["get", "pvc", &format!("data-db-{i}")]);
        assert_eq!(pvc["status"]["phase"], "Bound");
    }
    let started = s.runtime.started.lock().unwrap().clone();
    let db0 = started.iter().find(|p| p.name == "db-0").unwrap();
    assert_eq!(db0.claims, ["default/data-db-0"]);
    // Scaled down: the pod goes, its claim stays.
    c.ok(&["scale", "statefulset/db", "--replicas=1"]);
    assert!(eventually(20, || c
        .kubectl(&["get", "pod", "db-1"])
        .status
        .code()
        == Some(1)));
    assert_eq!(
        json(c, &["get", "pvc", "data-db-1"])["status"]["phase"],
        "Bound"
    );
}

#[test]
fn nodes_are_registered_ready_and_share_the_pods() {
    let s = simulated_with(SimConfig {
        nodes: 2,
        ..SimConfig::default()
    });
    let c = &s.cluster;
    let registered = || {
        c.kubectl(&["get", "node", "testenv-node-1"])
            .status
            .success()
    };
    assert!(eventually(20, registered));
    c.apply(DEPLOYMENT, &[]);
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=30s",
    ]);
    let mut nodes: Vec<Value> = pods(c, "app=web")
        .iter()
        .map(|p| p["spec"]["nodeName"].clone())
        .collect();
    nodes.sort_by_key(|n| n.to_string());
    assert_eq!(nodes, ["testenv-node-0", "testenv-node-1"]);
    let table = c.ok(&["get", "nodes"]);
    assert!(table.contains("testenv-node-0"), "{table}");
    assert!(table.contains("Ready"), "{table}");
    let node = json(c, &["get", "node", "testenv-node-0"]);
    assert_eq!(
        node["status"]["nodeInfo"]["kubeletVersion"],
        format!("v1.{}.0-testenv", kubeflex_testenv::server::DEFAULT_MINOR)
    );
}
