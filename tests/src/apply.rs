//! Server-side apply and `metadata.managedFields`, as kube-apiserver does
//! them: merge an applied configuration, detect conflicts between field
//! managers, prune what a manager stopped applying, and record ownership of
//! ordinary (non-apply) writes. Pure functions over JSON; how lists merge
//! comes from [`MergeKeys`].

mod fieldset;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::merge_keys::MergeKeys;
use fieldset::{Set, field_pe};

/// The operation a managedFields entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One field another manager owns and the apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// Kubernetes notation, e.g. `.spec.template.spec.containers[name="c"].image`.
    pub field: String,
    pub operation: Operation,
    /// The apiVersion of the owning entry (printed for `Update` owners only).
    pub api_version: String,
    pub subresource: Option<String>,
}

impl Conflict {
    /// The owner as the apiserver prints it: `"mgr"`, `"mgr" using apps/v1`,
    /// `"mgr" with subresource "status" using v1`.
    pub fn describe_manager(&self) -> String {
        let mut s = quote(&self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {}", quote(sub)));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn group_key(&self) -> (&str, Operation, &str, &str) {
        let api = match self.operation {
            Operation::Apply => "",
            Operation::Update => self.api_version.as_str(),
        };
        (
            &self.manager,
            self.operation,
            api,
            self.subresource.as_deref().unwrap_or(""),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// 409 `Conflict` with one `FieldManagerConflict` cause per field.
    #[error("{}", conflicts_message(.conflicts))]
    Conflict { conflicts: Vec<Conflict> },
    /// The request cannot be applied (400 `BadRequest`).
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The Status `message`, in kube-apiserver's exact words.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Status `details.causes` as (reason, message, field).
    pub fn causes(&self) -> Vec<(String, String, String)> {
        match self {
            ApplyError::Conflict { conflicts } => conflicts
                .iter()
                .map(|c| {
                    let msg = format!("conflict with {}", c.describe_manager());
                    ("FieldManagerConflict".to_string(), msg, c.field.clone())
                })
                .collect(),
            ApplyError::Invalid(_) => Vec::new(),
        }
    }
}

/// Go's `%q` for the plain strings managers are; JSON quoting agrees on them.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.describe_manager(),
            c.field
        );
    }
    // Grouped by manager in sorted order, fields in the order found.
    let mut groups: BTreeMap<_, Vec<&Conflict>> = BTreeMap::new();
    for c in conflicts {
        groups.entry(c.group_key()).or_default().push(c);
    }
    let mut lines = Vec::new();
    for group in groups.values() {
        let Some(first) = group.first() else {
            continue;
        };
        lines.push(format!("conflicts with {}:", first.describe_manager()));
        lines.extend(group.iter().map(|c| format!("- {}", c.field)));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// A server-side apply (`PATCH` with `application/apply-patch+yaml`).
#[derive(Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The stored object, or `None` to create it.
    pub live: Option<&'a Value>,
    /// The applied configuration (the request body).
    pub applied: &'a Value,
    /// The `fieldManager` query parameter.
    pub manager: &'a str,
    pub force: bool,
    /// `Some("status")` for `PATCH …/status`.
    pub subresource: Option<&'a str>,
    /// RFC3339 timestamp recorded in changed entries.
    pub now: &'a str,
    pub keys: &'a dyn MergeKeys,
}

/// Server-owned metadata: never part of a field set, never taken from an
/// applied configuration, never pruned.
const SERVER_META: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Paths kube-apiserver strips from every entry (its `stripMetaManager`),
/// plus the deletion fields the server alone writes.
fn strip_set() -> Set {
    let mut s = Set::default();
    for top in ["apiVersion", "kind", "metadata"] {
        s.insert(&[field_pe(top)]);
    }
    let identity = ["name", "namespace", "clusterName"];
    for name in SERVER_META.iter().chain(identity.iter()) {
        s.insert(&[field_pe("metadata"), field_pe(name)]);
    }
    s
}

/// One managedFields entry, decoded.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    subresource: Option<String>,
    set: Set,
}

impl Entry {
    /// kube-apiserver's manager identity: an applier is one manager whatever
    /// apiVersion it applies with; an updater is one per apiVersion.
    fn is(&self, manager: &str, op: Operation, sub: Option<&str>, api_version: &str) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource.as_deref() == sub
            && (op == Operation::Apply || self.api_version == api_version)
    }

    fn same_identity(&self, other: &Entry) -> bool {
        let sub = other.subresource.as_deref();
        self.is(&other.manager, other.operation, sub, &other.api_version)
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let operation = match v.get("operation")?.as_str()? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return None,
        };
        let api_version = v.get("apiVersion")?.as_str().filter(|s| !s.is_empty())?;
        if v.get("fieldsType")?.as_str()? != "FieldsV1" {
            return None;
        }
        let set = match v.get("fieldsV1") {
            None | Some(Value::Null) => Set::default(),
            Some(f) => Set::from_fields_v1(f)?,
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        Some(Entry {
            manager: text("manager").unwrap_or_default().to_string(),
            operation,
            api_version: api_version.to_string(),
            time: text("time").map(str::to_string),
            subresource: text("subresource").map(str::to_string),
            set,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), self.manager.clone().into());
        m.insert("operation".into(), self.operation.as_str().into());
        m.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(t) = &self.time {
            m.insert("time".into(), t.clone().into());
        }
        m.insert("fieldsType".into(), "FieldsV1".into());
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), s.clone().into());
        }
        Value::Object(m)
    }

    /// kube-apiserver's order: operation, time, manager, apiVersion,
    /// subresource.
    fn sort_key(&self) -> (Operation, &str, &str, &str, &str) {
        (
            self.operation,
            self.time.as_deref().unwrap_or(""),
            &self.manager,
            &self.api_version,
            self.subresource.as_deref().unwrap_or(""),
        )
    }
}

fn managed_fields(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?
        .get("managedFields")
        .filter(|v| !v.is_null())
}

/// Decodes `metadata.managedFields`; the flag is false when something was
/// malformed (those entries are skipped). A later duplicate identity wins.
fn decode_entries(obj: &Value) -> (Vec<Entry>, bool) {
    let Some(mf) = managed_fields(obj) else {
        return (Vec::new(), true);
    };
    let Some(items) = mf.as_array() else {
        return (Vec::new(), false);
    };
    let mut ok = true;
    let mut out: Vec<Entry> = Vec::new();
    for item in items {
        match Entry::from_json(item) {
            Some(e) => {
                out.retain(|o| !o.same_identity(&e));
                out.push(e);
            }
            None => ok = false,
        }
    }
    (out, ok)
}

fn sorted(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    entries
}

/// Writes the entries (sorted, empty ones dropped) into the object.
fn encode_entries(obj: &mut Value, entries: Vec<Entry>) {
    let entries = sorted(entries);
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.remove("managedFields");
        }
        return;
    }
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        let list = entries.iter().map(Entry::to_json).collect();
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("managedFields");
    }
    out
}

fn str_field<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| str_field(m, key))
}

/// Checks the body of an apply request (the caller has checked the path).
fn validate(req: &ApplyRequest) -> Result<(), ApplyError> {
    let invalid = |m: String| Err(ApplyError::Invalid(m));
    if !req.applied.is_object() {
        return invalid("the apply patch must be an object".into());
    }
    if req.manager.is_empty() {
        return invalid(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: \
             is required for apply patch"
                .into(),
        );
    }
    for key in ["apiVersion", "kind"] {
        if str_field(req.applied, key).is_none() {
            let k = if key == "kind" { "Kind" } else { key };
            return invalid(format!("Object '{k}' is missing in '{}'", req.applied));
        }
    }
    match req.applied.get("metadata") {
        None | Some(Value::Object(_)) => {}
        Some(_) => return invalid("metadata must be an object".into()),
    }
    if managed_fields(req.applied).is_some() {
        return invalid("metadata.managedFields must be nil".into());
    }
    let Some(live) = req.live else {
        return Ok(());
    };
    let (got, want) = (
        str_field(req.applied, "apiVersion"),
        str_field(live, "apiVersion"),
    );
    if want.is_some() && got != want {
        return invalid(format!(
            "Incorrect version specified in apply patch. Specified patch version: {}, expected: {}",
            got.unwrap_or_default(),
            want.unwrap_or_default()
        ));
    }
    let (got, want) = (str_field(req.applied, "kind"), str_field(live, "kind"));
    if want.is_some() && got != want {
        return invalid(format!(
            "the kind of the applied object ({}) does not match the kind of the object ({})",
            got.unwrap_or_default(),
            want.unwrap_or_default()
        ));
    }
    let differs = |key: &str| match (meta_str(req.applied, key), meta_str(live, key)) {
        (Some(got), Some(want)) if got != want => Some((got, want)),
        _ => None,
    };
    if let Some((got, want)) = differs("name") {
        return invalid(format!(
            "the name of the object ({got}) does not match the name on the URL ({want})"
        ));
    }
    if differs("namespace").is_some() {
        return invalid(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        );
    }
    Ok(())
}

/// The configuration as it merges: server-owned metadata dropped, and on an
/// existing object the identity kept from the live object.
fn clean_config(applied: &Value, existing: bool) -> Value {
    let mut config = applied.clone();
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        for key in SERVER_META {
            meta.remove(key);
        }
        if existing {
            meta.remove("name");
            meta.remove("namespace");
        }
    }
    config
}

/// Fields kubectl's client-side apply owned per the last-applied annotation
/// and that still hold the value recorded there: a `kubectl` server-side
/// apply may take them over without conflict (the CSA-to-SSA upgrade).
fn allowed_from_last_applied(live_obj: &Value, keys: &dyn MergeKeys) -> Option<Set> {
    let text = live_obj
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    if str_field(&last, "apiVersion") != str_field(live_obj, "apiVersion") {
        return None;
    }
    let set = fieldset::field_set(&last, keys).ok()?;
    let cmp = fieldset::compare(&last, live_obj, keys);
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// Keeps the client-side apply annotation in step with a `kubectl`
/// server-side apply, as kube-apiserver does, when the annotation exists.
fn sync_last_applied(obj: &mut Value, applied: &Value) {
    let Some(Value::Object(annotations)) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    else {
        return;
    };
    if annotations
        .get(LAST_APPLIED)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(a)) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        a.remove(LAST_APPLIED);
    }
    annotations.insert(LAST_APPLIED.into(), format!("{config}\n").into());
}

/// Applies `req.applied` and returns the new full object with
/// `metadata.managedFields` updated. Returns a clone of the live object
/// (managedFields included) when nothing changed.
pub fn apply(req: &ApplyRequest) -> Result<Value, ApplyError> {
    validate(req)?;
    let keys = req.keys;
    let strip = strip_set();
    let config_set = fieldset::field_set(req.applied, keys)
        .map_err(|e| ApplyError::Invalid(format!("failed to create typed patch object: {e}")))?
        .difference(&strip);
    let api_version = str_field(req.applied, "apiVersion").unwrap_or_default();
    let config = clean_config(req.applied, req.live.is_some());
    let live_obj = req
        .live
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let original = req.live.map(|l| decode_entries(l).0).unwrap_or_default();
    let mut entries = original.clone();

    // An object nobody tracked yet: its existing fields belong to
    // "before-first-apply", so applying over them conflicts as in k8s.
    if req.live.is_some() && entries.is_empty() {
        let cmp = fieldset::compare(&Value::Object(Map::new()), &live_obj, keys);
        entries.push(Entry {
            manager: "before-first-apply".into(),
            operation: Operation::Update,
            api_version: str_field(&live_obj, "apiVersion")
                .unwrap_or(api_version)
                .into(),
            time: Some(req.now.into()),
            subresource: req.subresource.map(str::to_string),
            set: cmp.added.difference(&strip),
        });
    }

    let self_idx = entries
        .iter()
        .position(|e| e.is(req.manager, Operation::Apply, req.subresource, api_version));
    let last_set = self_idx.map(|i| entries[i].set.clone()).unwrap_or_default();
    let others = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != self_idx)
        .fold(Set::default(), |acc, (_, e)| acc.union(&e.set));

    let mut new_obj = fieldset::merge(Some(&live_obj), &config, keys)
        .unwrap_or_else(|| Value::Object(Map::new()));
    // Prune what this manager applied last time, omits now, and nobody
    // else owns: SSA's defining property.
    let owned = others.union(&config_set);
    let prune = last_set.difference(&owned).sparing(&owned);
    fieldset::remove_items(&mut new_obj, &prune, &owned, keys);

    let cmp = fieldset::compare(&live_obj, &new_obj, keys);
    // An explicit null removes a field; that is a change to what the
    // configuration names, so it conflicts like a modification.
    let touched = cmp
        .modified
        .union(&cmp.added)
        .union(&cmp.removed.under(&config_set));
    let mut taken = Vec::with_capacity(entries.len());
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let c = if Some(i) == self_idx {
            Set::default()
        } else {
            e.set.intersection(&touched)
        };
        for path in c.paths() {
            conflicts.push((i, path));
        }
        taken.push(c);
    }
    if !conflicts.is_empty() && !req.force {
        let allowed = if req.manager == "kubectl" {
            allowed_from_last_applied(&live_obj, keys)
        } else {
            None
        };
        conflicts.retain(|(_, path)| !allowed.as_ref().is_some_and(|a| a.has(path)));
        if !conflicts.is_empty() {
            let mut list: Vec<Conflict> = conflicts
                .into_iter()
                .map(|(i, path)| Conflict {
                    manager: entries[i].manager.clone(),
                    field: fieldset::path_string(&path),
                    operation: entries[i].operation,
                    api_version: entries[i].api_version.clone(),
                    subresource: entries[i].subresource.clone(),
                })
                .collect();
            list.sort_by(|a, b| a.group_key().cmp(&b.group_key()));
            return Err(ApplyError::Conflict { conflicts: list });
        }
        // Every conflict was kubectl's own client-side apply: take over.
    }

    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != self_idx {
            e.set = e.set.difference(&taken[i]).difference(&cmp.removed);
        }
    }
    let object_changed = new_obj != live_obj;
    match self_idx {
        Some(i) => {
            let e = &mut entries[i];
            let changed = object_changed || e.set != config_set || e.api_version != api_version;
            e.set = config_set;
            e.api_version = api_version.into();
            if changed {
                e.time = Some(req.now.into());
            }
        }
        None => entries.push(Entry {
            manager: req.manager.into(),
            operation: Operation::Apply,
            api_version: api_version.into(),
            time: Some(req.now.into()),
            subresource: req.subresource.map(str::to_string),
            set: config_set,
        }),
    }
    if req.manager == "kubectl" {
        sync_last_applied(&mut new_obj, req.applied);
    }

    let unchanged = new_obj == live_obj && sorted(entries.clone()) == sorted(original);
    if let (Some(live), true) = (req.live, unchanged) {
        return Ok(live.clone());
    }
    encode_entries(&mut new_obj, entries);
    Ok(new_obj)
}

/// Records a create/update/patch (non-apply) write in `new`'s managedFields:
/// fields it added or changed become `manager`'s (an `Update` entry) and
/// leave every other entry; removed fields leave every entry.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
    keys: &dyn MergeKeys,
) {
    let manager = if manager.is_empty() {
        "unknown"
    } else {
        manager
    };
    let from_old = || old.map(|o| decode_entries(o).0).unwrap_or_default();
    // A client may write managedFields itself (an empty list resets them);
    // a subresource write never can. Undecodable or empty: keep the old.
    let mut entries = match managed_fields(new).and_then(Value::as_array) {
        _ if subresource.is_some() => from_old(),
        Some(list)
            if list.is_empty() || (list.len() == 1 && list[0] == Value::Object(Map::new())) =>
        {
            Vec::new()
        }
        Some(_) => match decode_entries(new) {
            (e, true) if !e.is_empty() => e,
            _ => from_old(),
        },
        None => from_old(),
    };
    if let Some(Value::Object(meta)) = new.get_mut("metadata") {
        meta.remove("managedFields");
    }
    // kube-apiserver starts tracking at creation only: an existing object
    // whose managedFields were reset stays untracked until an apply.
    if entries.is_empty() && old.and_then(|o| meta_str(o, "uid")).is_some() {
        return;
    }
    let old_obj = old
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let cmp = fieldset::compare(&old_obj, new, keys);
    let changed = cmp.modified.union(&cmp.added).difference(&strip_set());
    for e in &mut entries {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    let api_version = str_field(new, "apiVersion")
        .or_else(|| old.and_then(|o| str_field(o, "apiVersion")))
        .unwrap_or_default();
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(manager, Operation::Update, subresource, api_version))
        {
            Some(e) => {
                e.set = e.set.union(&changed);
                e.time = Some(now.into());
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: Operation::Update,
                api_version: api_version.into(),
                time: Some(now.into()),
                subresource: subresource.map(str::to_string),
                set: changed,
            }),
        }
    }
    encode_entries(new, entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge_keys::ListStrategy;
    use serde_json::json;

    /// Containers keyed by name, their ports by (containerPort, protocol),
    /// finalizers a set, everything else atomic.
    struct Keys;
    impl MergeKeys for Keys {
        fn list_strategy(&self, path: &[&str]) -> ListStrategy {
            match path {
                [.., "containers"] => ListStrategy::Map(vec!["name".into()]),
                [.., "containers", "ports"] => {
                    ListStrategy::Map(vec!["containerPort".into(), "protocol".into()])
                }
                ["metadata", "finalizers"] => ListStrategy::Set,
                _ => ListStrategy::Atomic,
            }
        }
    }

    const T1: &str = "2024-01-01T00:00:01Z";
    const T2: &str = "2024-01-01T00:00:02Z";
    const T3: &str = "2024-01-01T00:00:03Z";

    fn run(
        live: Option<&Value>,
        applied: &Value,
        mgr: &str,
        force: bool,
    ) -> Result<Value, ApplyError> {
        run_at(live, applied, mgr, force, None, T2)
    }

    fn run_at(
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
        subresource: Option<&str>,
        now: &str,
    ) -> Result<Value, ApplyError> {
        apply(&ApplyRequest {
            live,
            applied,
            manager,
            force,
            subresource,
            now,
            keys: &Keys,
        })
    }

    fn create(applied: &Value, manager: &str) -> Value {
        run_at(None, applied, manager, false, None, T1).unwrap()
    }

    fn update(old: &Value, new: &Value, manager: &str, now: &str) -> Value {
        let mut new = new.clone();
        record_update(Some(old), &mut new, manager, None, now, &Keys);
        new
    }

    fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == op)
    }

    fn fields<'a>(obj: &'a Value, manager: &str, op: &str) -> &'a Value {
        &entry(obj, manager, op).unwrap()["fieldsV1"]
    }

    fn conflict_message(r: Result<Value, ApplyError>) -> String {
        match r {
            Err(e @ ApplyError::Conflict { .. }) => e.message(),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cm", "namespace": "ns"}, "data": data})
    }

    fn deploy(replicas: i64, containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "d", "namespace": "ns", "labels": {"app": "x"}},
               "spec": {"replicas": replicas,
                        "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn create_takes_the_applied_object_and_records_an_apply_entry() {
        let cfg = deploy(1, json!([{"name": "c", "image": "nginx:1"}]));
        let out = create(&cfg, "mgr");
        assert_eq!(without_managed_fields(&out), cfg);
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([{"manager": "mgr", "operation": "Apply", "apiVersion": "apps/v1",
                    "time": T1, "fieldsType": "FieldsV1", "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}])
        );
    }

    #[test]
    fn reapplying_the_same_config_is_an_exact_no_op() {
        let cfg = deploy(1, json!([{"name": "c", "image": "nginx:1"}]));
        let live = create(&cfg, "mgr");
        let again = run_at(Some(&live), &cfg, "mgr", false, None, T3).unwrap();
        assert_eq!(again, live);
        assert_eq!(entry(&again, "mgr", "Apply").unwrap()["time"], T1);
        // Server-owned metadata in the body changes nothing either.
        let mut with_meta = cfg.clone();
        with_meta["metadata"]["resourceVersion"] = json!("999");
        with_meta["metadata"]["uid"] = json!("other");
        assert_eq!(run(Some(&live), &with_meta, "mgr", false).unwrap(), live);
    }

    #[test]
    fn omitted_fields_are_removed_and_time_moves() {
        let live = create(&cm(json!({"a": "1", "b": "2"})), "mgr");
        let mut cfg = cm(json!({"a": "1"}));
        cfg["metadata"]["labels"] = json!({"x": "1", "y": "2"});
        let live = run(Some(&live), &cfg, "mgr", false).unwrap();
        assert_eq!(live["data"], json!({"a": "1"}));
        cfg["metadata"]["labels"] = json!({"x": "1"});
        let out = run_at(Some(&live), &cfg, "mgr", false, None, T3).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(
            *fields(&out, "mgr", "Apply"),
            json!({"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}})
        );
        assert_eq!(entry(&out, "mgr", "Apply").unwrap()["time"], T3);
        // Dropping the last label drops the emptied map; metadata stays.
        let out = run(Some(&out), &cm(json!({"a": "1"})), "mgr", false).unwrap();
        assert!(out["metadata"].get("labels").is_none());
        assert_eq!(out["metadata"]["name"], "cm");
    }

    #[test]
    fn two_appliers_conflict_with_the_apiserver_message() {
        let live = create(&cm(json!({"k": "1", "k2": "1"})), "a");
        let r = run(Some(&live), &cm(json!({"k": "2"})), "b", false);
        let Err(err) = r else {
            panic!("expected conflict")
        };
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"a\": .data.k"
        );
        assert_eq!(
            err.causes(),
            vec![(
                "FieldManagerConflict".into(),
                "conflict with \"a\"".into(),
                ".data.k".into()
            )]
        );
        let r = run(Some(&live), &cm(json!({"k": "2", "k2": "2"})), "b", false);
        assert_eq!(
            conflict_message(r),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .data.k\n- .data.k2"
        );
    }

    #[test]
    fn conflicts_group_by_sorted_manager() {
        let live = create(&cm(json!({"k": "1"})), "zed");
        let mut edited = live.clone();
        edited["data"]["k2"] = json!("1");
        let live = update(&live, &edited, "kubectl-edit", T2);
        let r = run(Some(&live), &cm(json!({"k": "2", "k2": "2"})), "b", false);
        assert_eq!(
            conflict_message(r),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-edit\" using v1:\n- .data.k2\n\
             conflicts with \"zed\":\n- .data.k"
        );
    }

    #[test]
    fn force_transfers_ownership() {
        let live = create(&cm(json!({"k": "1", "keep": "1"})), "a");
        let out = run(Some(&live), &cm(json!({"k": "2"})), "b", true).unwrap();
        assert_eq!(out["data"], json!({"k": "2", "keep": "1"}));
        assert_eq!(
            *fields(&out, "a", "Apply"),
            json!({"f:data": {"f:keep": {}}})
        );
        assert_eq!(*fields(&out, "b", "Apply"), json!({"f:data": {"f:k": {}}}));
        let r = run(Some(&out), &cm(json!({"k": "1", "keep": "1"})), "a", false);
        assert_eq!(
            conflict_message(r),
            "Apply failed with 1 conflict: conflict with \"b\": .data.k"
        );
        // A manager left with nothing loses its entry.
        let out = run(Some(&out), &cm(json!({"keep": "3"})), "b", true).unwrap();
        assert!(entry(&out, "a", "Apply").is_none());
    }

    #[test]
    fn an_update_manager_conflicts_with_an_applier() {
        let live = create(&deploy(1, json!([{"name": "c", "image": "i"}])), "a");
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(3);
        let live = update(&live, &edited, "kubectl-edit", T2);
        assert_eq!(
            *entry(&live, "kubectl-edit", "Update").unwrap(),
            json!({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
                   "time": T2, "fieldsType": "FieldsV1",
                   "fieldsV1": {"f:spec": {"f:replicas": {}}}})
        );
        assert!(
            fields(&live, "a", "Apply")["f:spec"]
                .get("f:replicas")
                .is_none()
        );
        let r = run(
            Some(&live),
            &deploy(1, json!([{"name": "c", "image": "i"}])),
            "a",
            false,
        );
        let msg = conflict_message(r);
        assert_eq!(
            msg,
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
        );
        // Applying the value that is already there shares ownership instead.
        let out = run(
            Some(&live),
            &deploy(3, json!([{"name": "c", "image": "i"}])),
            "a",
            false,
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert!(
            fields(&out, "a", "Apply")["f:spec"]
                .get("f:replicas")
                .is_some()
        );
        assert!(
            fields(&out, "kubectl-edit", "Update")["f:spec"]
                .get("f:replicas")
                .is_some()
        );
        // Entries sort Apply before Update.
        assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
    }

    #[test]
    fn shared_ownership_keeps_a_field_until_its_last_applier_drops_it() {
        let live = create(&cm(json!({"k": "v", "a": "1"})), "a");
        let live = run(Some(&live), &cm(json!({"k": "v"})), "b", false).unwrap();
        assert_eq!(*fields(&live, "b", "Apply"), json!({"f:data": {"f:k": {}}}));
        let again = run_at(Some(&live), &cm(json!({"k": "v"})), "b", false, None, T3);
        assert_eq!(again.unwrap(), live);
        let live = run(Some(&live), &cm(json!({"a": "1"})), "a", false).unwrap();
        assert_eq!(live["data"], json!({"k": "v", "a": "1"}));
        assert_eq!(*fields(&live, "a", "Apply"), json!({"f:data": {"f:a": {}}}));
        // An empty map would be owned itself: omit `data` entirely.
        let mut bare = cm(json!({}));
        bare.as_object_mut().unwrap().remove("data");
        let live = run(Some(&live), &bare, "b", false).unwrap();
        assert_eq!(live["data"], json!({"a": "1"}));
        assert!(entry(&live, "b", "Apply").is_none());
    }

    #[test]
    fn pruning_spares_what_others_own_below() {
        let obj = |meta: Value, spec: Value| json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": meta, "spec": spec});
        // "a" owned the (empty) labels map itself, "b" a label inside it.
        let live = create(
            &obj(json!({"name": "w", "labels": {}}), json!({"n": 1})),
            "a",
        );
        let b = obj(json!({"name": "w", "labels": {"x": "1"}}), json!({"n": 1}));
        let live = run(Some(&live), &b, "b", false).unwrap();
        let out = run(
            Some(&live),
            &obj(json!({"name": "w"}), json!({"n": 1})),
            "a",
            false,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"x": "1"}));
        // An emptied map that an updater created stays (empty).
        let mut new = out.clone();
        new["spec"]["foo"] = json!({});
        let live = update(&out, &new, "u", T2);
        let with_bar = obj(json!({"name": "w"}), json!({"n": 1, "foo": {"bar": 1}}));
        let live = run(Some(&live), &with_bar, "a", false).unwrap();
        let out = run(
            Some(&live),
            &obj(json!({"name": "w"}), json!({"n": 1})),
            "a",
            false,
        )
        .unwrap();
        assert_eq!(out["spec"], json!({"n": 1, "foo": {}}));
    }

    #[test]
    fn associative_lists_merge_by_key() {
        let live = create(&deploy(1, json!([{"name": "c1", "image": "one"}])), "a");
        let mut cfg_b = deploy(1, json!([{"name": "c2", "image": "two"}]));
        cfg_b["spec"].as_object_mut().unwrap().remove("replicas");
        let live = run(Some(&live), &cfg_b, "b", false).unwrap();
        let names: Vec<&Value> = live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, [&json!("c1"), &json!("c2")]);
        assert!(
            fields(&live, "b", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]
                .get("k:{\"name\":\"c2\"}")
                .is_some()
        );
        let mut steal = cfg_b.clone();
        steal["spec"]["template"]["spec"]["containers"] = json!([{"name": "c1", "image": "mine"}]);
        assert_eq!(
            conflict_message(run(Some(&live), &steal, "b", false)),
            "Apply failed with 1 conflict: conflict with \"a\": \
             .spec.template.spec.containers[name=\"c1\"].image"
        );
        // "a" stops applying its container: it goes, "b"'s stays.
        let mut cfg_a = deploy(1, json!([]));
        cfg_a["spec"].as_object_mut().unwrap().remove("template");
        let out = run(Some(&live), &cfg_a, "a", false).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c2", "image": "two"}])
        );
    }

    #[test]
    fn atomic_lists_are_replaced_and_owned_whole() {
        let obj = |items: Value| {
            json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
                   "spec": {"items": items}})
        };
        let live = create(&obj(json!(["a", "b"])), "a");
        assert_eq!(
            *fields(&live, "a", "Apply"),
            json!({"f:spec": {"f:items": {}}})
        );
        let live = run(Some(&live), &obj(json!(["c"])), "a", false).unwrap();
        assert_eq!(live["spec"]["items"], json!(["c"]));
        assert_eq!(
            conflict_message(run(Some(&live), &obj(json!(["d"])), "b", false)),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.items"
        );
    }

    #[test]
    fn set_lists_union_and_prune_by_value() {
        let obj = |f: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "cm", "finalizers": f}})
        };
        let live = create(&obj(json!(["a"])), "x");
        let live = run(Some(&live), &obj(json!(["b"])), "y", false).unwrap();
        assert_eq!(live["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(
            *fields(&live, "y", "Apply"),
            json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}})
        );
        let out = run(Some(&live), &obj(json!([])), "y", false).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
    }

    #[test]
    fn explicit_null_removes_a_field_and_can_conflict() {
        let live = create(&cm(json!({"k": "1", "j": "1"})), "a");
        let r = run(Some(&live), &cm(json!({"k": null})), "b", false);
        assert_eq!(
            conflict_message(r),
            "Apply failed with 1 conflict: conflict with \"a\": .data.k"
        );
        let out = run(Some(&live), &cm(json!({"k": null, "j": "1"})), "a", false).unwrap();
        assert_eq!(out["data"], json!({"j": "1"}));
    }

    #[test]
    fn status_subresource_entries_are_separate() {
        let obj = |ready: bool| {
            json!({"apiVersion": "x.io/v1", "kind": "W",
                                        "metadata": {"name": "w"}, "status": {"ready": ready}})
        };
        let live = create(
            &json!({"apiVersion": "x.io/v1", "kind": "W",
                                  "metadata": {"name": "w"}, "spec": {"a": 1}}),
            "ctl",
        );
        let live = run_at(Some(&live), &obj(true), "ctl", false, Some("status"), T2).unwrap();
        let e = live["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(e.len(), 2);
        let status = e.iter().find(|e| e.get("subresource").is_some()).unwrap();
        assert_eq!(status["subresource"], "status");
        assert_eq!(status["fieldsV1"], json!({"f:status": {"f:ready": {}}}));
        let r = run_at(Some(&live), &obj(false), "other", false, Some("status"), T3);
        assert_eq!(
            conflict_message(r),
            "Apply failed with 1 conflict: conflict with \"ctl\" with subresource \"status\": .status.ready"
        );
        // record_update on /status carries the subresource as well.
        let mut new = live.clone();
        new["status"]["ready"] = json!(false);
        record_update(Some(&live), &mut new, "kube-rs", Some("status"), T3, &Keys);
        let e = entry(&new, "kube-rs", "Update").unwrap();
        assert_eq!(e["subresource"], "status");
    }

    #[test]
    fn record_update_tracks_creation_changes_and_removals() {
        let mut obj = json!({"apiVersion": "x.io/v1", "kind": "W",
            "metadata": {"name": "w", "uid": "u1", "resourceVersion": "1", "labels": {"app": "x"}},
            "spec": {"a": 1, "b": {"c": 2}}});
        record_update(None, &mut obj, "kubectl-create", None, T1, &Keys);
        assert_eq!(
            *fields(&obj, "kubectl-create", "Update"),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                   "f:spec": {".": {}, "f:a": {}, "f:b": {".": {}, "f:c": {}}}})
        );
        // Nothing changed: managedFields identical, time kept.
        let mut same = obj.clone();
        same["metadata"]["resourceVersion"] = json!("2");
        let same = update(&obj, &same, "kubectl-create", T2);
        assert_eq!(
            same["metadata"]["managedFields"],
            obj["metadata"]["managedFields"]
        );
        // Another manager changes one field and removes another.
        let mut new = obj.clone();
        new["spec"]["a"] = json!(5);
        new["spec"].as_object_mut().unwrap().remove("b");
        let new = update(&obj, &new, "kube-rs", T2);
        assert_eq!(
            *fields(&new, "kube-rs", "Update"),
            json!({"f:spec": {"f:a": {}}})
        );
        assert_eq!(
            *fields(&new, "kubectl-create", "Update"),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {}})
        );
        // Resetting managedFields on an existing object stops tracking.
        let mut reset = new.clone();
        reset["metadata"]["managedFields"] = json!([]);
        reset["spec"]["a"] = json!(6);
        let reset = update(&new, &reset, "x", T3);
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn untracked_objects_get_a_before_first_apply_owner() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "cm", "uid": "u"}, "data": {"k": "1"}});
        let r = run(Some(&live), &cm(json!({"k": "2"})), "a", false);
        assert_eq!(
            conflict_message(r),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.k"
        );
        let out = run(Some(&live), &cm(json!({"k": "1"})), "a", false).unwrap();
        assert!(entry(&out, "before-first-apply", "Update").is_some());
        assert_eq!(out["metadata"]["uid"], "u");
    }

    #[test]
    fn kubectl_takes_over_from_client_side_apply() {
        let last = r#"{"apiVersion":"v1","data":{"k":"1"},"kind":"ConfigMap","metadata":{"name":"cm","namespace":"ns"}}"#;
        let mut obj = cm(json!({"k": "1"}));
        obj["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
        obj["metadata"]["uid"] = json!("u");
        record_update(None, &mut obj, "kubectl-client-side-apply", None, T1, &Keys);
        let r = run(Some(&obj), &cm(json!({"k": "2"})), "someone", false);
        assert_eq!(
            conflict_message(r),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.k"
        );
        let out = run(Some(&obj), &cm(json!({"k": "2"})), "kubectl", false).unwrap();
        assert_eq!(out["data"]["k"], "2");
        assert_eq!(
            *fields(&out, "kubectl", "Apply"),
            json!({"f:data": {"f:k": {}}})
        );
        let annotation = out["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap();
        let synced: Value = serde_json::from_str(annotation).unwrap();
        assert_eq!(synced, cm(json!({"k": "2"})));
        // A value edited since the last client-side apply is a real conflict.
        let mut edited = obj.clone();
        edited["data"]["k"] = json!("9");
        let edited = update(&obj, &edited, "kubectl-client-side-apply", T2);
        assert!(run(Some(&edited), &cm(json!({"k": "2"})), "kubectl", false).is_err());
    }

    #[test]
    fn invalid_requests_are_rejected() {
        let good = cm(json!({"k": "1"}));
        let live = create(&good, "a");
        let invalid = |r: Result<Value, ApplyError>| match r {
            Err(ApplyError::Invalid(m)) => m,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert!(invalid(run(None, &json!([1]), "a", false)).contains("must be an object"));
        assert!(invalid(run(None, &good, "", false)).contains("fieldManager: Required value"));
        let mut mf = good.clone();
        mf["metadata"]["managedFields"] = json!([]);
        assert_eq!(
            invalid(run(None, &mf, "a", false)),
            "metadata.managedFields must be nil"
        );
        let mut v = good.clone();
        v["apiVersion"] = json!("v2");
        assert_eq!(
            invalid(run(Some(&live), &v, "a", false)),
            "Incorrect version specified in apply patch. Specified patch version: v2, expected: v1"
        );
        let mut n = good.clone();
        n["metadata"]["name"] = json!("other");
        assert!(invalid(run(Some(&live), &n, "a", false)).contains("does not match the name"));
        let dup = deploy(1, json!([{"name": "c"}, {"name": "c"}]));
        assert_eq!(
            invalid(run(None, &dup, "a", false)),
            "failed to create typed patch object: .spec.template.spec.containers: \
             duplicate entries for key [name=\"c\"]"
        );
        let nokey = deploy(1, json!([{"image": "c"}]));
        assert!(invalid(run(None, &nokey, "a", false)).contains("omits all key fields"));
        let ApplyError::Invalid(_) = run(None, &json!({"kind": "X"}), "a", false).unwrap_err()
        else {
            panic!()
        };
    }

    #[test]
    fn multi_key_items_print_in_kubernetes_notation() {
        let ports = |p: i64| {
            deploy(
                1,
                json!([{"name": "c", "ports": [
            {"containerPort": 80, "protocol": "TCP", "hostPort": p}]}]),
            )
        };
        let live = create(&ports(1), "a");
        let c = &fields(&live, "a", "Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]
            ["f:ports"];
        assert!(
            c.get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
                .is_some()
        );
        let mut cfg = ports(2);
        cfg["metadata"].as_object_mut().unwrap().remove("labels");
        assert_eq!(
            conflict_message(run(Some(&live), &cfg, "b", false)),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.template.spec.containers\
             [name=\"c\"].ports[containerPort=80,protocol=\"TCP\"].hostPort"
        );
    }

    #[test]
    fn malformed_input_never_panics() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "managedFields": [{"manager": 1}, "junk",
                {"manager": "m", "operation": "Apply", "apiVersion": "v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"bad": {}}}]},
            "spec": {"template": {"spec": {"containers": [1, null, {"x": 1}]}}}});
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                         "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        // Undecodable entries are dropped, so the fields fall to
        // "before-first-apply"; the unkeyable list is then owned whole.
        assert!(run(Some(&live), &cfg, "a", false).is_err());
        let out = run(Some(&live), &cfg, "a", true).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c"}])
        );
        let mut new = json!("not an object");
        record_update(Some(&live), &mut new, "x", None, T1, &Keys);
        let mut new = live.clone();
        new["metadata"] = json!(5);
        record_update(Some(&live), &mut new, "x", None, T1, &Keys);
    }
}
