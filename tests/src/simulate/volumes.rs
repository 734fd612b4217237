//! What a kubelet checks before it starts a pod (volumes' Secrets /
//! ConfigMaps / claims, images, env references), with kubelet's messages,
//! and the files it projects into containers. Pure: objects come from a
//! lookup, so the checks are tested without a server.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::util::{self, items, text};

/// Finds an object of the pod's namespace: `(storage key, name)`, e.g.
/// `("/secrets", "tls")`.
pub(super) type Lookup<'a> = dyn Fn(&str, &str) -> Option<Arc<Value>> + 'a;

/// Why a container cannot be created: `(container, reason, message)`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ContainerError {
    pub container: String,
    pub reason: &'static str,
    pub message: String,
}

/// The claims a pod's volumes name.
fn claim_names(pod: &Value) -> impl Iterator<Item = (&str, &str)> {
    items(pod, "/spec/volumes").iter().filter_map(|v| {
        let claim = v.pointer("/persistentVolumeClaim/claimName")?.as_str()?;
        Some((v["name"].as_str().unwrap_or_default(), claim))
    })
}

/// Why the claims keep the pod from a node, as the scheduler words it.
pub(super) fn claims_problem(pod: &Value, lookup: &Lookup<'_>) -> Option<String> {
    for (_, claim) in claim_names(pod) {
        match lookup("/persistentvolumeclaims", claim) {
            None => return Some(format!("persistentvolumeclaim \"{claim}\" not found")),
            Some(pvc) if util::deleting(&pvc) => {
                return Some(format!(
                    "persistentvolumeclaim \"{claim}\" is being deleted"
                ));
            }
            Some(pvc) if text(&pvc, "/status/phase") != "Bound" => {
                return Some("pod has unbound immediate PersistentVolumeClaims".into());
            }
            Some(_) => {}
        }
    }
    None
}

/// Keys of a Secret or ConfigMap (both `data` and `binaryData`).
fn has_key(obj: &Value, key: &str) -> bool {
    obj["data"].get(key).is_some() || obj["binaryData"].get(key).is_some()
}

/// Checks one Secret / ConfigMap source of a volume (plain or projected).
fn check_source(
    lookup: &Lookup<'_>,
    secret: bool,
    name: &str,
    source: &Value,
    optional: bool,
) -> Result<(), String> {
    let (resource, what) = if secret {
        ("/secrets", "secret")
    } else {
        ("/configmaps", "configmap")
    };
    let Some(obj) = lookup(resource, name) else {
        return if optional {
            Ok(())
        } else {
            Err(format!("{what} \"{name}\" not found"))
        };
    };
    for item in items(source, "/items") {
        let key = item["key"].as_str().unwrap_or_default();
        if !has_key(&obj, key) && !optional {
            return Err(if secret {
                format!("references non-existent secret key: {key}")
            } else {
                format!("configmap references non-existent config key: {key}")
            });
        }
    }
    Ok(())
}

/// The first volume that cannot be set up, as the `FailedMount` message.
pub(super) fn volume_problem(pod: &Value, lookup: &Lookup<'_>) -> Option<String> {
    for v in items(pod, "/spec/volumes") {
        let vol = v["name"].as_str().unwrap_or_default();
        let result = if let Some(s) = v.get("secret") {
            let optional = s["optional"].as_bool() == Some(true);
            check_source(lookup, true, text(s, "/secretName"), s, optional)
        } else if let Some(c) = v.get("configMap") {
            let optional = c["optional"].as_bool() == Some(true);
            check_source(lookup, false, text(c, "/name"), c, optional)
        } else if v.get("projected").is_some() {
            items(v, "/projected/sources").iter().try_for_each(|src| {
                if let Some(s) = src.get("secret") {
                    let optional = s["optional"].as_bool() == Some(true);
                    check_source(lookup, true, text(s, "/name"), s, optional)
                } else if let Some(c) = src.get("configMap") {
                    let optional = c["optional"].as_bool() == Some(true);
                    check_source(lookup, false, text(c, "/name"), c, optional)
                } else {
                    Ok(())
                }
            })
        } else if let Some(claim) = v.pointer("/persistentVolumeClaim/claimName") {
            let claim = claim.as_str().unwrap_or_default();
            match lookup("/persistentvolumeclaims", claim) {
                Some(pvc) if text(&pvc, "/status/phase") == "Bound" => Ok(()),
                Some(_) => {
                    return Some(format!(
                        "Unable to attach or mount volumes: unmounted volumes=[{vol}]: persistentvolumeclaim \"{claim}\" is not bound"
                    ));
                }
                None => {
                    return Some(format!(
                        "Unable to attach or mount volumes: unmounted volumes=[{vol}]: persistentvolumeclaim \"{claim}\" not found"
                    ));
                }
            }
        } else {
            Ok(())
        };
        if let Err(msg) = result {
            return Some(format!(
                "MountVolume.SetUp failed for volume \"{vol}\" : {msg}"
            ));
        }
    }
    None
}

/// Init containers then containers.
pub(super) fn all_containers(pod: &Value) -> impl Iterator<Item = &Value> {
    items(pod, "/spec/initContainers")
        .iter()
        .chain(items(pod, "/spec/containers"))
}

fn image_problem(image: &str) -> Option<String> {
    let bad = |detail: &str| {
        Some(format!(
            "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format{detail}"
        ))
    };
    if image.trim().is_empty() || image.contains(char::is_whitespace) {
        return bad("");
    }
    let repo = image.split(['@']).next().unwrap_or_default();
    // The tag is after the last ':' that follows the last '/' (a registry
    // port comes before a '/').
    let repo = match repo.rfind(':') {
        Some(i) if !repo[i..].contains('/') => &repo[..i],
        _ => repo,
    };
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return bad(": repository name must be lowercase");
    }
    None
}

/// Checks one `env[].valueFrom` / `envFrom[]` reference.
fn reference_problem(
    lookup: &Lookup<'_>,
    namespace: &str,
    secret: bool,
    r: &Value,
    key: Option<&str>,
) -> Option<String> {
    let name = text(r, "/name");
    let optional = r["optional"].as_bool() == Some(true);
    let (resource, what, kind) = if secret {
        ("/secrets", "secret", "Secret")
    } else {
        ("/configmaps", "configmap", "ConfigMap")
    };
    let Some(obj) = lookup(resource, name) else {
        return (!optional).then(|| format!("{what} \"{name}\" not found"));
    };
    let key = key?;
    (!has_key(&obj, key) && !optional)
        .then(|| format!("couldn't find key {key} in {kind} {namespace}/{name}"))
}

/// Containers that cannot be created, in spec order: an invalid image
/// (`InvalidImageName`) or an env reference that does not resolve
/// (`CreateContainerConfigError`).
pub(super) fn container_problems(pod: &Value, lookup: &Lookup<'_>) -> Vec<ContainerError> {
    let ns = util::ns_of(pod);
    let mut out = Vec::new();
    for c in all_containers(pod) {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        if let Some(message) = image_problem(c["image"].as_str().unwrap_or_default()) {
            out.push(ContainerError {
                container: name,
                reason: "InvalidImageName",
                message,
            });
            continue;
        }
        let env = items(c, "/env").iter().find_map(|e| {
            let from = e.get("valueFrom")?;
            if let Some(r) = from.get("secretKeyRef") {
                reference_problem(lookup, ns, true, r, Some(text(r, "/key")))
            } else if let Some(r) = from.get("configMapKeyRef") {
                reference_problem(lookup, ns, false, r, Some(text(r, "/key")))
            } else {
                None
            }
        });
        let env = env.or_else(|| {
            items(c, "/envFrom").iter().find_map(|e| {
                if let Some(r) = e.get("secretRef") {
                    reference_problem(lookup, ns, true, r, None)
                } else if let Some(r) = e.get("configMapRef") {
                    reference_problem(lookup, ns, false, r, None)
                } else {
                    None
                }
            })
        });
        if let Some(message) = env {
            out.push(ContainerError {
                container: name,
                reason: "CreateContainerConfigError",
                message,
            });
        }
    }
    out
}

/// The bytes of a Secret's / ConfigMap's key.
fn value_of(obj: &Value, key: &str, secret: bool) -> Option<Vec<u8>> {
    if let Some(v) = obj["data"].get(key).and_then(Value::as_str) {
        return if secret {
            STANDARD.decode(v).ok()
        } else {
            Some(v.as_bytes().to_vec())
        };
    }
    obj["binaryData"]
        .get(key)
        .and_then(Value::as_str)
        .and_then(|v| STANDARD.decode(v).ok())
}

/// Files of one Secret / ConfigMap source: every key, or the listed
/// `items` under their `path`.
fn source_files(
    lookup: &Lookup<'_>,
    secret: bool,
    name: &str,
    source: &Value,
    out: &mut Vec<(String, Vec<u8>)>,
) {
    let resource = if secret { "/secrets" } else { "/configmaps" };
    let Some(obj) = lookup(resource, name) else {
        return;
    };
    let listed = items(source, "/items");
    if listed.is_empty() {
        for field in ["data", "binaryData"] {
            for key in obj[field].as_object().into_iter().flatten().map(|(k, _)| k) {
                if let Some(bytes) = value_of(&obj, key, secret) {
                    out.push((key.clone(), bytes));
                }
            }
        }
    } else {
        for item in listed {
            let key = text(item, "/key");
            let path = match text(item, "/path") {
                "" => key,
                p => p,
            };
            if let Some(bytes) = value_of(&obj, key, secret) {
                out.push((path.to_string(), bytes));
            }
        }
    }
}

/// Downward API files for the metadata fields a pod can see about itself.
fn downward_files(pod: &Value, list: &[Value], out: &mut Vec<(String, Vec<u8>)>) {
    for item in list {
        let field = text(item, "/fieldRef/fieldPath");
        let value = match field {
            "metadata.name" | "metadata.namespace" | "metadata.uid" => {
                text(pod, &format!("/{}", field.replace('.', "/"))).to_string()
            }
            "metadata.labels" | "metadata.annotations" => {
                let map = util::labels(pod, &format!("/{}", field.replace('.', "/")));
                let mut lines: Vec<String> = map
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            Value::String(v.as_str().unwrap_or_default().into())
                        )
                    })
                    .collect();
                lines.sort();
                lines.join("\n")
            }
            _ => continue,
        };
        out.push((text(item, "/path").to_string(), value.into_bytes()));
    }
}

/// Files a volume holds, by path inside the volume.
fn volume_files(pod: &Value, volume: &Value, lookup: &Lookup<'_>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(s) = volume.get("secret") {
        source_files(lookup, true, text(s, "/secretName"), s, &mut out);
    } else if let Some(c) = volume.get("configMap") {
        source_files(lookup, false, text(c, "/name"), c, &mut out);
    } else if let Some(d) = volume.get("downwardAPI") {
        downward_files(pod, items(d, "/items"), &mut out);
    } else if volume.get("projected").is_some() {
        for src in items(volume, "/projected/sources") {
            if let Some(s) = src.get("secret") {
                source_files(lookup, true, text(s, "/name"), s, &mut out);
            } else if let Some(c) = src.get("configMap") {
                source_files(lookup, false, text(c, "/name"), c, &mut out);
            } else if let Some(d) = src.get("downwardAPI") {
                downward_files(pod, items(d, "/items"), &mut out);
            }
        }
    }
    out
}

/// Everything the pod's containers mount: files by absolute path inside the
/// container (with `subPath` honoured), and the claims (`namespace/claim`)
/// mounted.
pub(super) fn project(
    pod: &Value,
    lookup: &Lookup<'_>,
) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let volumes = items(pod, "/spec/volumes");
    let mut files = BTreeMap::new();
    let mut claims: Vec<String> = Vec::new();
    for c in all_containers(pod) {
        for m in items(c, "/volumeMounts") {
            let Some(volume) = volumes.iter().find(|v| v["name"] == m["name"]) else {
                continue;
            };
            if let Some(claim) = volume
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            {
                let key = format!("{}/{claim}", util::ns_of(pod));
                if !claims.contains(&key) {
                    claims.push(key);
                }
                continue;
            }
            let mount = text(m, "/mountPath").trim_end_matches('/');
            let sub = text(m, "/subPath").trim_matches('/');
            for (path, bytes) in volume_files(pod, volume, lookup) {
                let path = path.trim_start_matches('/');
                let target = if sub.is_empty() {
                    format!("{mount}/{path}")
                } else if path == sub {
                    mount.to_string()
                } else if let Some(rest) = path.strip_prefix(sub).and_then(|r| r.strip_prefix('/'))
                {
                    format!("{mount}/{rest}")
                } else {
                    continue;
                };
                files.insert(target, bytes);
            }
        }
    }
    (files, claims)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn world() -> HashMap<(String, String), Arc<Value>> {
        let mut m = HashMap::new();
        m.insert(
            ("/secrets".into(), "tls".into()),
            Arc::new(json!({"data": {"tls.crt": STANDARD.encode("CERT"), "tls.key": STANDARD.encode("KEY")}})),
        );
        m.insert(
            ("/configmaps".into(), "cfg".into()),
            Arc::new(json!({"data": {"a.conf": "A", "b.conf": "B"}, "binaryData": {"bin": STANDARD.encode([0u8, 1])}})),
        );
        m.insert(
            ("/persistentvolumeclaims".into(), "data".into()),
            Arc::new(json!({"status": {"phase": "Bound"}})),
        );
        m.insert(
            ("/persistentvolumeclaims".into(), "pending".into()),
            Arc::new(json!({"status": {"phase": "Pending"}})),
        );
        m
    }

    fn lookup(
        w: &HashMap<(String, String), Arc<Value>>,
    ) -> impl Fn(&str, &str) -> Option<Arc<Value>> + '_ {
        move |r, n| w.get(&(r.to_string(), n.to_string())).cloned()
    }

    fn pod(volumes: Value, container: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
               "spec": {"volumes": volumes, "containers": [container]}})
    }

    #[test]
    fn projects_secret_configmap_items_and_subpaths() {
        let w = world();
        let p = pod(
            json!([
                {"name": "certs", "secret": {"secretName": "tls"}},
                {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "sub/app.conf"}]}},
                {"name": "whole", "configMap": {"name": "cfg"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "store", "persistentVolumeClaim": {"claimName": "data"}}
            ]),
            json!({"name": "c", "image": "nginx", "volumeMounts": [
                {"name": "certs", "mountPath": "/etc/tls/"},
                {"name": "conf", "mountPath": "/etc/app"},
                {"name": "whole", "mountPath": "/etc/b.conf", "subPath": "b.conf"},
                {"name": "info", "mountPath": "/etc/podinfo"},
                {"name": "store", "mountPath": "/data"}
            ]}),
        );
        let (files, claims) = project(&p, &lookup(&w));
        assert_eq!(files["/etc/tls/tls.crt"], b"CERT");
        assert_eq!(files["/etc/tls/tls.key"], b"KEY");
        assert_eq!(files["/etc/app/sub/app.conf"], b"A");
        assert!(!files.contains_key("/etc/app/b.conf"));
        assert_eq!(files["/etc/b.conf"], b"B");
        assert_eq!(files["/etc/podinfo/labels"], b"app=\"x\"");
        assert_eq!(files.len(), 5);
        assert_eq!(claims, ["ns/data"]);
    }

    #[test]
    fn volume_checks_use_kubelet_messages() {
        let w = world();
        let l = lookup(&w);
        let c = json!({"name": "c", "image": "nginx"});
        let missing = pod(
            json!([{"name": "v", "secret": {"secretName": "nope"}}]),
            c.clone(),
        );
        assert_eq!(
            volume_problem(&missing, &l).unwrap(),
            "MountVolume.SetUp failed for volume \"v\" : secret \"nope\" not found"
        );
        let optional = pod(
            json!([{"name": "v", "secret": {"secretName": "nope", "optional": true}}]),
            c.clone(),
        );
        assert_eq!(volume_problem(&optional, &l), None);
        let bad_key = pod(
            json!([{"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}]),
            c.clone(),
        );
        assert_eq!(
            volume_problem(&bad_key, &l).unwrap(),
            "MountVolume.SetUp failed for volume \"v\" : configmap references non-existent config key: zz"
        );
        let unbound = pod(
            json!([{"name": "d", "persistentVolumeClaim": {"claimName": "pending"}}]),
            c.clone(),
        );
        assert!(
            volume_problem(&unbound, &l)
                .unwrap()
                .contains("is not bound")
        );
        assert_eq!(
            claims_problem(&unbound, &l).unwrap(),
            "pod has unbound immediate PersistentVolumeClaims"
        );
        let gone = pod(
            json!([{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]),
            c,
        );
        assert_eq!(
            claims_problem(&gone, &l).unwrap(),
            "persistentvolumeclaim \"x\" not found"
        );
    }

    #[test]
    fn container_checks_cover_images_and_env_references() {
        let w = world();
        let l = lookup(&w);
        let check = |c: Value| container_problems(&pod(json!([]), c), &l);
        assert!(check(json!({"name": "c", "image": "nginx:1.27"})).is_empty());
        assert!(check(json!({"name": "c", "image": "localhost:5000/app:v1"})).is_empty());
        let empty = check(json!({"name": "c", "image": ""}));
        assert_eq!(empty[0].reason, "InvalidImageName");
        assert_eq!(
            check(json!({"name": "c", "image": "Nginx"}))[0].reason,
            "InvalidImageName"
        );
        let key = check(json!({"name": "c", "image": "x", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "tls", "key": "password"}}}]}));
        assert_eq!(
            key,
            [ContainerError {
                container: "c".into(),
                reason: "CreateContainerConfigError",
                message: "couldn't find key password in Secret ns/tls".into()
            }]
        );
        let missing = check(json!({"name": "c", "image": "x", "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}));
        assert_eq!(missing[0].message, "configmap \"nope\" not found");
        let optional = check(json!({"name": "c", "image": "x", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}}]}));
        assert!(optional.is_empty());
        let env_from =
            check(json!({"name": "c", "image": "x", "envFrom": [{"secretRef": {"name": "s"}}]}));
        assert_eq!(env_from[0].message, "secret \"s\" not found");
    }
}
