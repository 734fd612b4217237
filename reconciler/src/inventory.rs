//! What a source applied: the cluster objects carrying its source label
//! ([`LABEL_SOURCE`]`=<name>`), kept in memory in a compact form.
//!
//! The cluster is the record (no separate inventory object to lose): the
//! label says which source owns an object, the path annotation which file
//! defined it. The map is filled by a label-selected watch and by the
//! responses to our own writes, so a pass never lists the cluster.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use kubeflex_operator::api::ControlPlaneType;
use serde_json::Value;

use crate::names::{
    ANNOTATION_COMMIT, ANNOTATION_PATH, ANNOTATION_PRUNE, ANNOTATION_RECONCILE,
    ANNOTATION_TRACKING, DISABLED, FIELD_MANAGER, LABEL_SOURCE, tracking_id,
};
use crate::validate::{Kind, ObjectKey};

/// A JSON value kept across passes, held as its text. With `preserve_order`
/// (which serde-saphyr turns on for the whole build) a small object as a
/// `serde_json::Value` costs about ten times its text; the reconciler keeps
/// every managed object twice (Git's and the cluster's), so at 10,000
/// objects that is the difference between a few and a hundred megabytes.
/// Parsing back is cheap next to the API round trip that follows a compare.
#[derive(Clone, PartialEq, Eq)]
pub struct CompactValue(Box<str>);

impl CompactValue {
    pub fn new(value: &Value) -> Self {
        // Serialising a `Value` cannot fail (its keys are strings).
        Self(
            serde_json::to_string(value)
                .unwrap_or_default()
                .into_boxed_str(),
        )
    }

    /// The value; `Null` if the text were ever unreadable.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Value> for CompactValue {
    fn from(value: Value) -> Self {
        Self::new(&value)
    }
}

impl std::fmt::Debug for CompactValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of an object's `metadata.managedFields`, reduced to `spec`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedSpec {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The `f:spec` subtree of `fieldsV1`; `Null` when it owns nothing there.
    pub fields: CompactValue,
}

/// A live object, as much of it as reconciling needs.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveObject {
    pub key: ObjectKey,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: CompactValue,
    /// `spec.type` of a ControlPlane, for validation's immutability check
    /// (kept apart so that check needs no parse of every spec).
    pub control_plane_type: Option<ControlPlaneType>,
    pub managed: Vec<ManagedSpec>,
    /// A deletion is under way (finalizers pending).
    pub deleting: bool,
}

impl LiveObject {
    /// The compact form of an object read from the API. `None` without a name.
    pub fn from_dynamic(kind: Kind, obj: &DynamicObject) -> Option<Self> {
        let meta = &obj.metadata;
        let name = meta.name.clone()?;
        let managed = meta
            .managed_fields
            .iter()
            .flatten()
            .map(|entry| ManagedSpec {
                manager: entry.manager.clone().unwrap_or_default(),
                operation: entry.operation.clone().unwrap_or_default(),
                fields: CompactValue::new(
                    entry
                        .fields_v1
                        .as_ref()
                        .and_then(|f| f.0.get("f:spec"))
                        .unwrap_or(&Value::Null),
                ),
            })
            .collect();
        Some(Self {
            key: ObjectKey { kind, name },
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            spec: CompactValue::new(obj.data.get("spec").unwrap_or(&Value::Null)),
            control_plane_type: match kind {
                Kind::ControlPlane => obj
                    .data
                    .pointer("/spec/type")
                    .and_then(|t| serde_json::from_value(t.clone()).ok()),
                Kind::PostCreateHook => None,
            },
            managed,
            deleting: meta.deletion_timestamp.is_some(),
        })
    }

    /// The source that applied it, if any.
    pub fn source(&self) -> Option<&str> {
        self.labels.get(LABEL_SOURCE).map(String::as_str)
    }

    /// The repository file that defined it, as recorded when applied.
    pub fn path(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_PATH).map(String::as_str)
    }

    /// The commit it was last written at.
    pub fn commit(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_COMMIT).map(String::as_str)
    }

    /// Protected from pruning by `prune: disabled`.
    pub fn protected(&self) -> bool {
        self.annotations.get(ANNOTATION_PRUNE).map(String::as_str) == Some(DISABLED)
    }

    /// Whether the reconciler's field manager applied its spec: an object
    /// created by another client (`kubectl get -o yaml | kubectl create -f -`)
    /// has every field owned by that client at creation, whatever
    /// managedFields it was sent with, so a copy holds no `Apply` entry of
    /// ours that owns anything (kube-apiserver drops emptied entries; one
    /// kept empty owns nothing either). Decides ownership of objects written
    /// before tracking ids existed.
    pub fn applied_by_us(&self) -> bool {
        self.managed.iter().any(|m| {
            m.manager == FIELD_MANAGER && m.operation == "Apply" && m.fields.as_str() != "null"
        })
    }

    /// Reconciliation suspended by `reconcile: disabled`.
    pub fn suspended(&self) -> bool {
        self.annotations
            .get(ANNOTATION_RECONCILE)
            .map(String::as_str)
            == Some(DISABLED)
    }
}

/// The objects one source manages, by key.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    source: String,
    objects: BTreeMap<ObjectKey, LiveObject>,
}

impl Inventory {
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            objects: BTreeMap::new(),
        }
    }

    /// Records the state of an object; forgets it when it no longer carries
    /// this source's label (someone took it over, so it is not ours to prune)
    /// or when its tracking id names another object (a copy made with
    /// `kubectl get -o yaml`, label and all). Objects without a tracking id
    /// were applied by an earlier version, or copied from one: ours only
    /// when our field manager applied them (see [`LiveObject::applied_by_us`]),
    /// and given the id by their next write.
    pub fn upsert(&mut self, obj: LiveObject) {
        if self.owns(&obj) {
            self.objects.insert(obj.key.clone(), obj);
        } else {
            self.objects.remove(&obj.key);
        }
    }

    /// Whether this source applied `obj` (see [`Inventory::upsert`]).
    pub fn owns(&self, obj: &LiveObject) -> bool {
        if obj.source() != Some(self.source.as_str()) {
            return false;
        }
        match obj.annotations.get(ANNOTATION_TRACKING) {
            Some(id) => *id == tracking_id(&self.source, obj.key.kind.as_str(), &obj.key.name),
            None => obj.applied_by_us(),
        }
    }

    pub fn remove(&mut self, key: &ObjectKey) -> Option<LiveObject> {
        self.objects.remove(key)
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&LiveObject> {
        self.objects.get(key)
    }

    pub fn objects(&self) -> &BTreeMap<ObjectKey, LiveObject> {
        &self.objects
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Replaces the objects of one kind (a watch's list) and returns how
    /// the new list differs from what was held: objects gone, and objects
    /// new or at another resource version.
    pub fn replace_kind(
        &mut self,
        kind: Kind,
        objects: impl IntoIterator<Item = LiveObject>,
    ) -> Vec<crate::watch::ObjectEvent> {
        use crate::watch::ObjectEvent;
        let mut old: BTreeMap<ObjectKey, Option<String>> = BTreeMap::new();
        self.objects.retain(|k, o| {
            if k.kind == kind {
                old.insert(k.clone(), o.resource_version.clone());
                false
            } else {
                true
            }
        });
        let mut events = Vec::new();
        for obj in objects {
            if old.remove(&obj.key) != Some(obj.resource_version.clone()) {
                events.push(ObjectEvent::Changed(obj.key.clone()));
            }
            self.upsert(obj);
        }
        events.extend(old.into_keys().map(ObjectEvent::Deleted));
        events
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A managed ControlPlane as the inventory would hold it.
    pub(crate) fn mk_live(name: &str, source: &str, path: &str) -> LiveObject {
        LiveObject {
            key: ObjectKey {
                kind: Kind::ControlPlane,
                name: name.to_owned(),
            },
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".to_owned()),
            labels: BTreeMap::from([(LABEL_SOURCE.to_owned(), source.to_owned())]),
            annotations: BTreeMap::from([
                (ANNOTATION_PATH.to_owned(), path.to_owned()),
                (
                    ANNOTATION_TRACKING.to_owned(),
                    tracking_id(source, "ControlPlane", name),
                ),
            ]),
            spec: serde_json::json!({"type": "k8s"}).into(),
            control_plane_type: Some(ControlPlaneType::K8s),
            managed: Vec::new(),
            deleting: false,
        }
    }

    #[test]
    fn from_dynamic_keeps_what_reconciling_needs() {
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
            "kind": "ControlPlane",
            "metadata": {
                "name": "cp1", "uid": "u1", "resourceVersion": "7",
                "labels": {LABEL_SOURCE: "default"},
                "annotations": {ANNOTATION_PATH: "cps/cp1.yaml", ANNOTATION_PRUNE: "disabled"},
                "managedFields": [{
                    "manager": "kubectl-edit", "operation": "Update",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:globalVars": {"f:x": {}}}}
                }]
            },
            "spec": {"type": "k8s"},
            "status": {"observedGeneration": 1}
        }))
        .unwrap();
        let live = LiveObject::from_dynamic(Kind::ControlPlane, &obj).unwrap();
        assert_eq!(live.source(), Some("default"));
        assert_eq!(live.path(), Some("cps/cp1.yaml"));
        assert!(live.protected());
        assert!(!live.suspended());
        assert_eq!(live.managed[0].manager, "kubectl-edit");
        assert_eq!(
            live.managed[0].fields.value(),
            serde_json::json!({"f:globalVars": {"f:x": {}}})
        );
    }

    #[test]
    fn objects_of_other_sources_are_not_ours() {
        let mut inv = Inventory::new("default");
        inv.upsert(mk_live("a", "default", "a.yaml"));
        inv.upsert(mk_live("b", "other", "b.yaml"));
        assert_eq!(inv.len(), 1);
        // Relabelled by someone else: forgotten, so never pruned.
        inv.upsert(mk_live("a", "other", "a.yaml"));
        assert!(inv.is_empty());
    }

    #[test]
    fn a_relist_reports_what_changed_during_the_gap() {
        use crate::watch::ObjectEvent;
        let mut inv = Inventory::new("default");
        let first = [
            mk_live("same", "default", "s.yaml"),
            mk_live("edited", "default", "e.yaml"),
            mk_live("deleted", "default", "d.yaml"),
        ];
        inv.replace_kind(Kind::ControlPlane, first);
        let mut edited = mk_live("edited", "default", "e.yaml");
        edited.resource_version = Some("9".to_owned());
        let events = inv.replace_kind(
            Kind::ControlPlane,
            [mk_live("same", "default", "s.yaml"), edited],
        );
        let key = |n: &str| ObjectKey {
            kind: Kind::ControlPlane,
            name: n.to_owned(),
        };
        assert_eq!(
            events,
            [
                ObjectEvent::Changed(key("edited")),
                ObjectEvent::Deleted(key("deleted"))
            ]
        );
    }

    #[test]
    fn a_copy_with_the_label_is_not_ours() {
        let mut inv = Inventory::new("default");
        let mut copy = mk_live("copy", "default", "a.yaml");
        copy.annotations.insert(
            ANNOTATION_TRACKING.to_owned(),
            tracking_id("default", "ControlPlane", "a"),
        );
        inv.upsert(copy);
        assert!(inv.is_empty());
        let mut own = mk_live("a", "default", "a.yaml");
        own.annotations.insert(
            ANNOTATION_TRACKING.to_owned(),
            tracking_id("default", "ControlPlane", "a"),
        );
        inv.upsert(own);
        // Without an id (written by an earlier version, or a copy of such
        // an object): ours only when our field manager applied it.
        let legacy = |name: &str| {
            let mut live = mk_live(name, "default", "l.yaml");
            live.annotations.remove(ANNOTATION_TRACKING);
            live
        };
        inv.upsert(legacy("legacy-copy"));
        assert_eq!(inv.len(), 1);
        let mut legacy = legacy("legacy");
        legacy.managed.push(ManagedSpec {
            manager: FIELD_MANAGER.to_owned(),
            operation: "Apply".to_owned(),
            fields: serde_json::json!({"f:type": {}}).into(),
        });
        inv.upsert(legacy);
        assert_eq!(inv.len(), 2);
    }
}
