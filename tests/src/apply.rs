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
mod tests;
