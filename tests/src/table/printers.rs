//! kube-apiserver's printers for common built-in kinds: columns and
//! computed cells, always "wide", ages already rendered.

use serde_json::{Map, Value, json};
use std::time::SystemTime;

use super::*;

// ---------------------------------------------------------------------------------------
// Built-in printers (pkg/printers/internalversion/printers.go), always wide like the server

/// Columns after `Name` per `group/Kind`: `name|type|priority|description` (`@` is the
/// creationTimestamp doc). Kinds absent here get the default `Created At` column.
const PRINTERS: &str = "
/Pod
Ready|string|0|The aggregate readiness state of this pod for accepting traffic.
Status|string|0|The aggregate status of the containers in this pod.
Restarts|string|0|The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.
Age|string|0|@
IP|string|1|podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.
Node|string|1|NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename
Nominated Node|string|1|nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.
Readiness Gates|string|1|If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates
apps/Deployment
Ready|string|0|Number of the pod with ready state
Up-to-date|string|0|Total number of non-terminating pods targeted by this deployment that have the desired template spec.
Available|string|0|Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
Selector|string|1|Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.
apps/ReplicaSet
Desired|integer|0|Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset
Current|integer|0|Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset
Ready|integer|0|The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
Selector|string|1|Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
apps/StatefulSet
Ready|string|0|Number of the pod with ready state
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
batch/Job
Status|string|0|Status of the job.
Completions|string|0|The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.
Duration|string|0|Time required to complete the job.
Age|string|0|@
Containers|string|1|Names of each container in the template.
Images|string|1|Images referenced by each container in the template.
Selector|string|1|A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
/Service
Type|string|0|type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types
Cluster-IP|string|0|clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies
External-IP|string|0|externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.
Port(s)|string|0|The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies
Age|string|0|@
Selector|string|1|Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/
networking.k8s.io/Ingress
Class|string|0|The name of the IngressClass resource that should be used for additional configuration
Hosts|string|0|Hosts that incoming requests are matched against before the ingress rule
Address|string|0|Address is a list containing ingress points for the load-balancer
Ports|string|0|Ports of TLS configurations that open
Age|string|0|@
policy/PodDisruptionBudget
Min Available|string|0|The minimum number of pods that must be available simultaneously. This can be either an integer or percentage.
Max Unavailable|string|0|The maximum number of pods that may be unavailable simultaneously. This can be either an integer or percentage.
Allowed Disruptions|integer|0|Calculated number of pods that may be disrupted at this time.
Age|string|0|@
/Namespace
Status|string|0|The status of the namespace
Age|string|0|@
/Secret
Type|string|0|Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types
Data|string|0|Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4
Age|string|0|@
/ConfigMap
Data|string|0|Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.
Age|string|0|@
/ServiceAccount
Secrets|string|0|Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret
Age|string|0|@
rbac.authorization.k8s.io/RoleBinding
Role|string|0|roleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.
Age|string|0|@
Users|string|1|Users in the roleBinding
Groups|string|1|Groups in the roleBinding
ServiceAccounts|string|1|ServiceAccounts in the roleBinding
rbac.authorization.k8s.io/ClusterRoleBinding
Role|string|0|roleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.
Age|string|0|@
Users|string|1|Users in the clusterRoleBinding
Groups|string|1|Groups in the clusterRoleBinding
ServiceAccounts|string|1|ServiceAccounts in the clusterRoleBinding
/Node
Status|string|0|The status of the node
Roles|string|0|The roles of the node
Age|string|0|@
Version|string|0|Kubelet Version reported by the node.
Internal-IP|string|1|%addresses
External-IP|string|1|%addresses
OS-Image|string|1|OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).
Kernel-Version|string|1|Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).
Container-Runtime|string|1|ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).
/PersistentVolumeClaim
Status|string|0|phase represents the current phase of PersistentVolumeClaim.
Volume|string|0|volumeName is the binding reference to the PersistentVolume backing this claim.
Capacity|string|0|capacity represents the actual resources of the underlying volume.
Access Modes|string|0|accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1
StorageClass|string|0|StorageClass of the pvc
VolumeAttributesClass|string|0|VolumeAttributesClass of the pvc
Age|string|0|@
VolumeMode|string|1|volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.
";

const NODE_ADDRESSES_DOC: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";

pub(super) fn col(name: &str, type_: &str, priority: i32, description: &str) -> Column {
    let (name, type_, description) = (name.into(), type_.into(), description.into());
    Column {
        name,
        type_,
        priority,
        description,
        ..Column::default()
    }
}

/// The columns after `Name` that kube-apiserver's printer for `group`/`kind` defines.
pub fn builtin_columns(group: &str, kind: &str) -> Vec<Column> {
    let header = format!("{group}/{kind}");
    let lines = PRINTERS.lines().skip_while(|l| *l != header).skip(1);
    let columns: Vec<Column> = lines
        .map_while(|line| {
            let mut f = line.splitn(4, '|');
            let (name, type_, priority) = (f.next()?, f.next()?, f.next()?.parse().ok()?);
            let description = match f.next()? {
                "@" => CREATION_DOC,
                "%addresses" => NODE_ADDRESSES_DOC,
                d => d,
            };
            Some(col(name, type_, priority, description))
        })
        .collect();
    if columns.is_empty() {
        // rest.NewDefaultTableConvertor, used by kinds without a printer (Role, ClusterRole...).
        return vec![col("Created At", "date", 0, CREATION_DOC)];
    }
    columns
}

/// The cells after `Name` of one built-in object's row, as the printer for `group`/`kind`
/// renders them at `now` (wide columns included); None if `obj` is not an object.
pub fn builtin_row(group: &str, kind: &str, obj: &Value, now: SystemTime) -> Option<Vec<Value>> {
    obj.as_object()?;
    let t = |p: &str| json!(text(obj, p));
    let int = |p: &str| json!(num(obj, p));
    let age = json!(age(text(obj, "/metadata/creationTimestamp"), now));
    let (names, images) = containers(obj, "/spec/template/spec/containers");
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = json!(format!("{}/{replicas}", num(obj, "/status/readyReplicas")));
    let terminating = !is_null(obj.pointer("/metadata/deletionTimestamp"));
    Some(match (group, kind) {
        ("", "Pod") => pod_cells(obj, now),
        ("apps", "Deployment") => {
            let selector = selector_string(obj.pointer("/spec/selector"));
            let selector = json!(selector.unwrap_or_else(|| "<invalid>".into()));
            let updated = int("/status/updatedReplicas");
            let available = int("/status/availableReplicas");
            vec![ready, updated, available, age, names, images, selector]
        }
        ("apps", "ReplicaSet") => {
            let selector = json!(format_selector(obj.pointer("/spec/selector")));
            let (current, ready) = (int("/status/replicas"), int("/status/readyReplicas"));
            vec![
                json!(replicas),
                current,
                ready,
                age,
                names,
                images,
                selector,
            ]
        }
        ("apps", "StatefulSet") => vec![ready, age, names, images],
        ("batch", "Job") => {
            let selector = json!(format_selector(obj.pointer("/spec/selector")));
            let [status, completions, duration] = job_cells(obj, terminating, now);
            vec![status, completions, duration, age, names, images, selector]
        }
        ("", "Service") => service_cells(obj, age),
        ("networking.k8s.io", "Ingress") => {
            let class = json!(
                obj.pointer("/spec/ingressClassName")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
            );
            let hosts = json!(format_hosts(list(obj, "/spec/rules")));
            let tls = list(obj, "/spec/tls").is_empty();
            let ports = json!(if tls { "80" } else { "80, 443" });
            vec![class, hosts, json!(load_balancer(obj)), ports, age]
        }
        ("policy", "PodDisruptionBudget") => {
            let bound = |p: &str| match obj.pointer(p) {
                Some(Value::String(s)) => json!(s),
                Some(Value::Number(n)) => json!(n.to_string()),
                _ => json!("N/A"),
            };
            let allowed = int("/status/disruptionsAllowed");
            vec![
                bound("/spec/minAvailable"),
                bound("/spec/maxUnavailable"),
                allowed,
                age,
            ]
        }
        ("", "Namespace") => vec![t("/status/phase"), age],
        ("", "Secret") => vec![t("/type"), json!(keys(obj, "/data")), age],
        ("", "ConfigMap") => vec![json!(keys(obj, "/data") + keys(obj, "/binaryData")), age],
        ("", "Node") => node_cells(obj, age),
        ("", "ServiceAccount") => vec![json!(list(obj, "/secrets").len()), age],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            binding_cells(obj, age)
        }
        ("", "PersistentVolumeClaim") => {
            let phase = if terminating {
                "Terminating"
            } else {
                text(obj, "/status/phase")
            };
            let bound = !text(obj, "/spec/volumeName").is_empty();
            let capacity = if bound {
                text(obj, "/status/capacity/storage")
            } else {
                ""
            };
            let modes = list(obj, "/status/accessModes");
            let modes = if bound {
                access_modes(modes)
            } else {
                String::new()
            };
            let beta = "/metadata/annotations/volume.beta.kubernetes.io~1storage-class";
            let class = obj
                .pointer(beta)
                .or_else(|| obj.pointer("/spec/storageClassName"));
            let class = json!(class.and_then(Value::as_str).unwrap_or(""));
            let unset =
                |p: &str| json!(obj.pointer(p).and_then(Value::as_str).unwrap_or("<unset>"));
            let attributes = unset("/spec/volumeAttributesClassName");
            let (phase, volume, capacity) = (json!(phase), t("/spec/volumeName"), json!(capacity));
            let mode = unset("/spec/volumeMode");
            vec![
                phase,
                volume,
                capacity,
                json!(modes),
                class,
                attributes,
                age,
                mode,
            ]
        }
        _ => vec![json!(rfc3339_utc(text(obj, "/metadata/creationTimestamp")))],
    })
}

fn pod_cells(pod: &Value, now: SystemTime) -> Vec<Value> {
    let phase = text(pod, "/status/phase");
    let mut reason = match text(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = list(pod, "/status/conditions");
    let condition = |t: &str| conditions.iter().find(|c| text(c, "/type") == t);
    let is_true = |t: &str| condition(t).is_some_and(|c| text(c, "/status") == "True");
    let gated =
        |c: &&Value| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated";
    if conditions.iter().any(|c| gated(&c)) {
        reason = "SchedulingGated".into();
    }
    // Init containers with restartPolicy Always are sidecars: counted like containers.
    let init_specs = list(pod, "/spec/initContainers");
    let sidecar = |c: &Value| text(c, "/restartPolicy") == "Always";
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && sidecar(c))
    };
    let total =
        list(pod, "/spec/containers").len() + init_specs.iter().filter(|c| sidecar(c)).count();
    let (mut ready, mut restarts, mut sidecar_restarts) = (0, 0, 0);
    // The latest lastState.terminated.finishedAt, in Unix nanoseconds.
    let (mut last_restart, mut last_sidecar_restart) = (None::<i128>, None::<i128>);
    let finished = |c: &Value| {
        let terminated = c
            .pointer("/lastState/terminated")
            .filter(|t| !t.is_null())?;
        parse_time(text(terminated, "/finishedAt")).ok().flatten()
    };
    let mut initializing = false;
    for (i, c) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        restarts += num(c, "/restartCount");
        last_restart = last_restart.max(finished(c));
        let is_sidecar = is_sidecar(text(c, "/name"));
        if is_sidecar {
            sidecar_restarts += num(c, "/restartCount");
            last_sidecar_restart = last_sidecar_restart.max(finished(c));
        }
        let terminated = c.pointer("/state/terminated").filter(|t| !t.is_null());
        let waiting = text(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| num(t, "/exitCode") == 0) {
            continue;
        } else if is_sidecar && c.get("started") == Some(&json!(true)) {
            ready += i64::from(c.get("ready") == Some(&json!(true)));
            continue;
        } else if let Some(t) = terminated {
            reason = format!("Init:{}", terminated_reason(t));
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || is_true("Initialized") {
        (restarts, last_restart) = (sidecar_restarts, last_sidecar_restart);
        let mut has_running = false;
        for c in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += num(c, "/restartCount");
            last_restart = last_restart.max(finished(c));
            let waiting = text(c, "/state/waiting/reason");
            let running = !is_null(c.pointer("/state/running"));
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = c.pointer("/state/terminated").filter(|t| !t.is_null()) {
                reason = terminated_reason(t);
            } else if c.get("ready") == Some(&json!(true)) && running {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if is_true("Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    if !is_null(pod.pointer("/metadata/deletionTimestamp")) {
        if text(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts = match last_restart {
        Some(at) if restarts != 0 => {
            format!(
                "{restarts} ({} ago)",
                human_duration_ns(nanos_between(at, unix_nanos(now)))
            )
        }
        _ => restarts.to_string(),
    };
    let or_none = |s: &str| json!(if s.is_empty() { "<none>" } else { s });
    let gates = list(pod, "/spec/readinessGates");
    let passed = gates
        .iter()
        .filter(|g| is_true(text(g, "/conditionType")))
        .count();
    let gates = match gates.len() {
        0 => "<none>".to_string(),
        n => format!("{passed}/{n}"),
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(age(text(pod, "/metadata/creationTimestamp"), now)),
        or_none(text(pod, "/status/podIPs/0/ip")),
        or_none(text(pod, "/spec/nodeName")),
        or_none(text(pod, "/status/nominatedNodeName")),
        json!(gates),
    ]
}

/// A terminated container's reason, else `Signal:n`, else `ExitCode:n`.
fn terminated_reason(terminated: &Value) -> String {
    match (text(terminated, "/reason"), num(terminated, "/signal")) {
        ("", 0) => format!("ExitCode:{}", num(terminated, "/exitCode")),
        ("", signal) => format!("Signal:{signal}"),
        (reason, _) => reason.to_string(),
    }
}

fn job_cells(job: &Value, terminating: bool, now: SystemTime) -> [Value; 3] {
    let succeeded = num(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None if num(job, "/spec/parallelism") > 1 => {
            format!("{succeeded}/1 of {}", num(job, "/spec/parallelism"))
        }
        None => format!("{succeeded}/1"),
    };
    let time = |p: &str| parse_time(text(job, p)).ok().flatten();
    let duration = match (time("/status/startTime"), time("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration_ns(nanos_between(start, unix_nanos(now))),
        (Some(start), Some(end)) => human_duration_ns(nanos_between(start, end)),
    };
    // hasJobCondition: the first condition of a type decides.
    let conditions = list(job, "/status/conditions");
    let has = |t: &str| {
        let first = conditions.iter().find(|c| text(c, "/type") == t);
        first.is_some_and(|c| text(c, "/status") == "True")
    };
    let status = match () {
        _ if has("Complete") => "Complete",
        _ if has("Failed") => "Failed",
        _ if terminating => "Terminating",
        _ if has("Suspended") => "Suspended",
        _ if has("FailureTarget") => "FailureTarget",
        _ => "Running",
    };
    [json!(status), json!(completions), json!(duration)]
}

fn service_cells(svc: &Value, age: Value) -> Vec<Value> {
    let kind = match text(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    // The API server fills clusterIPs from clusterIP; accept objects with only the latter.
    let cluster_ip = match (
        text(svc, "/spec/clusterIPs/0"),
        text(svc, "/spec/clusterIP"),
    ) {
        ("", "") => "<none>",
        ("", ip) | (ip, _) => ip,
    };
    let external = list(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str);
    let external: Vec<&str> = external.collect();
    let external = match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let balancer = load_balancer(svc);
            let mut all: Vec<&str> = balancer.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(&external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let port = |p: &Value| {
        let protocol = Some(text(p, "/protocol"))
            .filter(|p| !p.is_empty())
            .unwrap_or("TCP");
        match num(p, "/nodePort") {
            0 => format!("{}/{protocol}", num(p, "/port")),
            node_port => format!("{}:{node_port}/{protocol}", num(p, "/port")),
        }
    };
    let ports: Vec<String> = list(svc, "/spec/ports").iter().map(port).collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = json!(format_labels(svc.pointer("/spec/selector")));
    let (kind, cluster_ip, external, ports) = (
        json!(kind),
        json!(cluster_ip),
        json!(external),
        json!(ports),
    );
    vec![kind, cluster_ip, external, ports, age, selector]
}

fn node_cells(node: &Value, age: Value) -> Vec<Value> {
    let conditions = list(node, "/status/conditions");
    let ready = conditions
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready");
    let mut status = vec![match ready.map(|c| text(c, "/status")) {
        None => "Unknown",
        Some("True") => "Ready",
        Some(_) => "NotReady",
    }];
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push("SchedulingDisabled");
    }
    let labels = node.pointer("/metadata/labels").and_then(Value::as_object);
    let mut roles: Vec<&str> = labels.into_iter().flatten().filter_map(node_role).collect();
    roles.retain(|r| !r.is_empty());
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let addresses = list(node, "/status/addresses");
    let address = |kind: &str| {
        let found = addresses.iter().find(|a| text(a, "/type") == kind);
        json!(found.map_or("<none>", |a| text(a, "/address")))
    };
    let info = |key: &str| match text(node, &format!("/status/nodeInfo/{key}")) {
        "" => json!("<unknown>"),
        v => json!(v),
    };
    let (status, roles, version) = (
        json!(status.join(",")),
        json!(roles),
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
    );
    let (internal, external) = (address("InternalIP"), address("ExternalIP"));
    let (os, kernel, runtime) = (
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    );
    vec![
        status, roles, age, version, internal, external, os, kernel, runtime,
    ]
}

/// Role, age and (wide) the users, groups and `namespace/name` ServiceAccounts bound.
fn binding_cells(binding: &Value, age: Value) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(binding, "/roleRef/kind"),
        text(binding, "/roleRef/name")
    );
    let subjects = list(binding, "/subjects");
    let of_kind = |kind: &str| {
        let matching = subjects.iter().filter(|s| text(s, "/kind") == kind);
        let names = matching.map(|s| match kind {
            "ServiceAccount" => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
            _ => text(s, "/name").to_string(),
        });
        json!(names.collect::<Vec<_>>().join(", "))
    };
    vec![
        json!(role),
        age,
        of_kind("User"),
        of_kind("Group"),
        of_kind("ServiceAccount"),
    ]
}

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` keys and `kubernetes.io/role` values.
fn node_role<'v>((key, value): (&'v String, &'v Value)) -> Option<&'v str> {
    match key.strip_prefix("node-role.kubernetes.io/") {
        Some(role) => Some(role),
        None if key == "kubernetes.io/role" => value.as_str(),
        None => None,
    }
}

/// `formatHosts`: up to three hosts, `*` when no rule names one.
fn format_hosts(rules: &[Value]) -> String {
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        more |= hosts.len() == 3;
        if !more && !text(rule, "/host").is_empty() {
            hosts.push(text(rule, "/host"));
        }
    }
    match (hosts.is_empty(), more) {
        (true, _) => "*".into(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - 3),
        (false, false) => hosts.join(","),
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn containers(obj: &Value, path: &str) -> (Value, Value) {
    let items = list(obj, path);
    let join = |key: &str| {
        json!(
            items
                .iter()
                .map(|c| text(c, key))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    (join("/name"), join("/image"))
}

/// Load-balancer ingress points (IP, else hostname), de-duplicated and sorted.
fn load_balancer(obj: &Value) -> String {
    let ingress = list(obj, "/status/loadBalancer/ingress");
    let mut points: Vec<&str> = ingress.iter().map(|i| text(i, "/ip")).collect();
    for (point, i) in points.iter_mut().zip(ingress) {
        if point.is_empty() {
            *point = text(i, "/hostname");
        }
    }
    points.retain(|p| !p.is_empty());
    points.sort_unstable();
    points.dedup();
    points.join(",")
}

/// `GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &&str| modes.iter().any(|v| v.as_str() == Some(m));
    let all = [
        "ReadWriteOnce RWO",
        "ReadOnlyMany ROX",
        "ReadWriteMany RWX",
        "ReadWriteOncePod RWOP",
    ];
    let short = all
        .iter()
        .filter_map(|pair| pair.split_once(' '))
        .filter(|(m, _)| has(m));
    short.map(|(_, s)| s).collect::<Vec<_>>().join(",")
}

/// `labels.FormatLabels`.
fn format_labels(map: Option<&Value>) -> String {
    let pairs = map.and_then(Value::as_object).into_iter().flatten();
    let pairs: Vec<String> = pairs
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// `metav1.FormatLabelSelector`.
fn format_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

/// `LabelSelectorAsSelector(s).String()`; None where Kubernetes reports an error.
fn selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    for (k, v) in match_labels.into_iter().flatten() {
        requirements.push((k.clone(), format!("{k}={}", v.as_str()?)));
    }
    for e in list(selector, "/matchExpressions") {
        let key = text(e, "/key");
        let mut values: Vec<&str> = list(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let rendered = match (text(e, "/operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        requirements
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>()
            .join(","),
    )
}

pub(super) fn is_null(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

pub(super) fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn num(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn list<'v>(v: &'v Value, pointer: &str) -> &'v [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn keys(v: &Value, pointer: &str) -> usize {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}
