//! Metadata shared by every built object: labels, the controller owner
//! reference to the ControlPlane, bounded names and content hashes.
//!
//! Labels are a pure function of the ControlPlane name and the component, so
//! applying the same spec twice changes nothing. Selectors never use our own
//! labels: they are immutable and kept exactly as KubeFlex set them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::api::ControlPlane;
use crate::names;

/// Metadata that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The ControlPlane has no uid yet (not read from the API server).
    #[error("ControlPlane {name} has no metadata.uid: owner references need the stored object")]
    MissingUid { name: String },
}

/// Labels of every object of control plane `cp_name`'s `component`.
pub fn labels(cp_name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::LABEL_MANAGED_BY.into(), names::MANAGED_BY.into()),
        (names::LABEL_CONTROL_PLANE.into(), cp_name.into()),
        (names::LABEL_COMPONENT.into(), component.into()),
    ])
}

/// Labels of an object shared by all control planes (no owner).
pub fn shared_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::LABEL_MANAGED_BY.into(), names::MANAGED_BY.into()),
        (names::LABEL_COMPONENT.into(), component.into()),
    ])
}

/// `labels` plus `extra` (KubeFlex's own labels of that object).
pub fn labels_with(
    cp_name: &str,
    component: &str,
    extra: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut l = labels(cp_name, component);
    l.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    l
}

/// A string map from pairs.
pub fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

/// The controller owner reference to `cp` (garbage collection and watches).
pub fn owner_reference(cp: &ControlPlane) -> Result<OwnerReference, MetaError> {
    let uid = cp.uid().ok_or_else(|| MetaError::MissingUid {
        name: cp.name_any(),
    })?;
    Ok(OwnerReference {
        api_version: ControlPlane::api_version(&()).into_owned(),
        kind: ControlPlane::kind(&()).into_owned(),
        name: cp.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Metadata of an object owned by `cp`, in `namespace` (`None`: cluster-scoped).
pub fn owned(
    cp: &ControlPlane,
    name: impl Into<String>,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
) -> Result<ObjectMeta, MetaError> {
    Ok(ObjectMeta {
        name: Some(name.into()),
        namespace,
        labels: Some(labels),
        owner_references: Some(vec![owner_reference(cp)?]),
        ..ObjectMeta::default()
    })
}

/// Metadata of an object in `cp`'s hosting namespace, labelled for `component`.
pub fn in_cp_namespace(
    cp: &ControlPlane,
    name: impl Into<String>,
    component: &str,
) -> Result<ObjectMeta, MetaError> {
    let cp_name = cp.name_any();
    owned(
        cp,
        name,
        Some(names::namespace_of(&cp_name)),
        labels(&cp_name, component),
    )
}

/// `prefix` + `cp_name`, cut to `max` characters with a stable hash suffix
/// when too long (Job names are pod labels: 63 characters at most).
pub fn bounded_name(prefix: &str, cp_name: &str, max: usize) -> String {
    let full = format!("{prefix}{cp_name}");
    if full.len() <= max {
        return full;
    }
    let hash = short_hash(full.as_bytes());
    let keep = max.saturating_sub(hash.len() + 1);
    let mut cut: String = full.chars().take(keep).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    format!("{cut}-{hash}")
}

/// First 8 hex digits of SHA-256.
pub fn short_hash(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash of Secret data (keys and values), for a pod-template annotation
/// that rolls pods when files they read only at start change. It reveals
/// nothing usable about the values.
pub fn content_hash<'a>(
    maps: impl IntoIterator<Item = &'a BTreeMap<String, ByteString>>,
) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for map in maps {
        for (k, v) in map {
            ctx.update(k.as_bytes());
            ctx.update(&[0]);
            ctx.update(&(v.0.len() as u64).to_be_bytes());
            ctx.update(&v.0);
        }
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ControlPlaneExt;

    #[test]
    fn owner_reference_is_a_blocking_controller_reference() {
        let cp = ControlPlane::test("cp1");
        let r = owner_reference(&cp).unwrap();
        assert_eq!(r.api_version, "tenancy.kflex.kubestellar.org/v1alpha1");
        assert_eq!(r.kind, "ControlPlane");
        assert_eq!(r.name, "cp1");
        assert_eq!(r.uid, cp.uid().unwrap());
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn owner_reference_needs_a_uid() {
        let mut cp = ControlPlane::test("cp1");
        cp.metadata.uid = None;
        assert_eq!(
            owner_reference(&cp).unwrap_err().to_string(),
            "ControlPlane cp1 has no metadata.uid: owner references need the stored object"
        );
    }

    #[test]
    fn labels_are_stable() {
        assert_eq!(labels("cp1", "kine"), labels("cp1", "kine"));
        assert_eq!(
            labels("cp1", "kine")
                .get("kflex.kubestellar.org/control-plane")
                .map(String::as_str),
            Some("cp1")
        );
    }

    #[test]
    fn bounded_names_fit_and_stay_distinct() {
        assert_eq!(bounded_name("db-", "cp1", 63), "db-cp1");
        let long = "a".repeat(56);
        let a = bounded_name("kflex-db-provision-", &long, 63);
        let b = bounded_name("kflex-db-provision-", &format!("{}b", "a".repeat(55)), 63);
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        assert_eq!(a, bounded_name("kflex-db-provision-", &long, 63));
    }

    #[test]
    fn content_hash_changes_with_content() {
        let m1 = BTreeMap::from([("a".to_string(), ByteString(b"1".to_vec()))]);
        let m2 = BTreeMap::from([("a".to_string(), ByteString(b"2".to_vec()))]);
        assert_eq!(content_hash([&m1]), content_hash([&m1]));
        assert_ne!(content_hash([&m1]), content_hash([&m2]));
        assert_eq!(content_hash([&m1]).len(), 16);
    }
}
