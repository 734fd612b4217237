//! Field sets and the value walks server-side apply needs (to-set, compare,
//! merge, remove), modelled on structured-merge-diff but driven by
//! [`MergeKeys`] instead of a full schema: every JSON object is a granular
//! map, and lists are atomic, keyed or sets as the trait answers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use crate::merge_keys::{ListStrategy, MergeKeys};

/// One path element in its managedFields spelling: `f:name`,
/// `k:{"name":"c"}`, `v:"x"` or `i:0`. Keeping the wire spelling makes
/// `fieldsV1` encoding a straight copy and gives a stable order.
pub(crate) type Pe = String;

/// A set of field paths as a tree: `member` says the path ending at this
/// node is itself in the set (the `"."` marker when it also has children).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Set {
    member: bool,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    pub(crate) fn insert(&mut self, path: &[Pe]) {
        match path.split_first() {
            None => self.member = true,
            Some((head, tail)) => self.children.entry(head.clone()).or_default().insert(tail),
        }
    }

    pub(crate) fn has(&self, path: &[Pe]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((head, tail)) => self.children.get(head).is_some_and(|c| c.has(tail)),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(Set::is_empty)
    }

    fn with_children(member: bool, children: impl Iterator<Item = (Pe, Set)>) -> Set {
        Set {
            member,
            children: children.filter(|(_, c)| !c.is_empty()).collect(),
        }
    }

    pub(crate) fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.member |= other.member;
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub(crate) fn difference(&self, other: &Set) -> Set {
        let children = self.children.iter().map(|(pe, c)| {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            (pe.clone(), d)
        });
        Set::with_children(self.member && !other.member, children)
    }

    pub(crate) fn intersection(&self, other: &Set) -> Set {
        let children = self.children.iter().filter_map(|(pe, c)| {
            other
                .children
                .get(pe)
                .map(|o| (pe.clone(), c.intersection(o)))
        });
        Set::with_children(self.member && other.member, children)
    }

    /// The paths of `self` that equal or lie below a member of `cover`.
    pub(crate) fn under(&self, cover: &Set) -> Set {
        self.under_inner(Some(cover), false)
    }

    fn under_inner(&self, cover: Option<&Set>, covered: bool) -> Set {
        let children = self.children.iter().map(|(pe, c)| {
            let sub = cover.and_then(|s| s.children.get(pe));
            let now = covered || sub.is_some_and(|s| s.member);
            (pe.clone(), c.under_inner(sub, now))
        });
        Set::with_children(self.member && covered, children)
    }

    /// A prune set that spares named fields still owned below: removing
    /// `.metadata.labels` must not take a label another manager owns. List
    /// items go whole, as in structured-merge-diff.
    pub(crate) fn sparing(&self, owned: &Set) -> Set {
        let children = self.children.iter().map(|(pe, c)| {
            let below = owned.children.get(pe);
            let mut c = match below {
                Some(o) => c.sparing(o),
                None => c.clone(),
            };
            if pe.starts_with("f:")
                && below.is_some_and(|o| !o.children.values().all(Set::is_empty))
            {
                c.member = false;
            }
            (pe.clone(), c)
        });
        Set::with_children(self.member, children)
    }

    /// Member paths in structured-merge-diff's iteration order: a node's
    /// member children first, then the deeper levels.
    pub(crate) fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<Pe>, out: &mut Vec<Vec<Pe>>) {
        for (pe, c) in &self.children {
            if c.member {
                let mut p = prefix.clone();
                p.push(pe.clone());
                out.push(p);
            }
        }
        for (pe, c) in &self.children {
            if !c.children.is_empty() {
                prefix.push(pe.clone());
                c.collect_paths(prefix, out);
                prefix.pop();
            }
        }
    }

    /// The `fieldsV1` JSON of this set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (pe, c) in &self.children {
            m.insert(pe.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Parses `fieldsV1`; `None` when it is not well formed.
    pub(crate) fn from_fields_v1(v: &Value) -> Option<Set> {
        let m = v.as_object()?;
        let mut set = Set::default();
        for (k, child) in m {
            if k == "." {
                set.member = true;
                continue;
            }
            let mut c = Set::from_fields_v1(child)?;
            // A leaf `{}` is a member; a node with children needs `"."`.
            if child.as_object().is_some_and(Map::is_empty) {
                c.member = true;
            }
            set.children.insert(canonical_pe(k)?, c);
        }
        Some(set)
    }
}

/// Re-spells a decoded path element canonically (sorted, compact key JSON)
/// so sets written by other clients compare equal to ours.
fn canonical_pe(s: &str) -> Option<Pe> {
    let (kind, rest) = s.split_at_checked(2)?;
    match kind {
        "f:" => Some(s.to_string()),
        "k:" => {
            let m: Map<String, Value> = serde_json::from_str(rest).ok()?;
            let fields: Vec<(&str, &Value)> = m.iter().map(|(k, v)| (k.as_str(), v)).collect();
            Some(key_pe(fields))
        }
        "v:" => serde_json::from_str::<Value>(rest)
            .ok()
            .map(|v| format!("v:{v}")),
        "i:" => rest.parse::<u64>().ok().map(|i| format!("i:{i}")),
        _ => None,
    }
}

pub(crate) fn field_pe(name: &str) -> Pe {
    format!("f:{name}")
}

fn key_pe(mut fields: Vec<(&str, &Value)>) -> Pe {
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_string())))
        .collect();
    format!("k:{{{}}}", body.join(","))
}

/// A path in Kubernetes notation, e.g. `.spec.containers[name="c"].image`.
pub(crate) fn path_string(path: &[Pe]) -> String {
    path.iter().map(|pe| pe_string(pe)).collect()
}

fn pe_string(pe: &str) -> String {
    let (kind, rest) = pe.split_at_checked(2).unwrap_or(("", pe));
    match kind {
        "f:" => format!(".{rest}"),
        "k:" => match serde_json::from_str::<Map<String, Value>>(rest) {
            Ok(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", go_string(v)))
                    .collect();
                format!("[{}]", parts.join(","))
            }
            Err(_) => format!("[{rest}]"),
        },
        "v:" => match serde_json::from_str::<Value>(rest) {
            Ok(v) => format!("[={}]", go_string(&v)),
            Err(_) => format!("[={rest}]"),
        },
        "i:" => format!("[{rest}]"),
        _ => pe.to_string(),
    }
}

/// structured-merge-diff's `value.ToString`: strings quoted, the rest bare.
fn go_string(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", go_string(v)))
            .collect(),
        other => other.to_string(),
    }
}

/// How a list is walked: atomic, or item by item with these element ids.
enum Items {
    Atomic,
    Granular(Vec<Pe>),
}

fn strategy(keys: &dyn MergeKeys, names: &[String]) -> ListStrategy {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    keys.list_strategy(&names)
}

/// The element ids of a granular list, or why the items cannot be keyed.
fn item_pes(items: &[Value], strategy: &ListStrategy) -> Result<Items, String> {
    let key_names = match strategy {
        ListStrategy::Atomic => return Ok(Items::Atomic),
        ListStrategy::Map(k) if k.is_empty() => return Ok(Items::Atomic),
        ListStrategy::Map(k) => Some(k),
        ListStrategy::Set => None,
    };
    let mut pes = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let pe = match (key_names, item) {
            (_, Value::Null) => return Err(format!("element {i}: list items may not be null")),
            (Some(names), Value::Object(m)) => {
                let fields: Vec<(&str, &Value)> = names
                    .iter()
                    .filter_map(|n| m.get(n).map(|v| (n.as_str(), v)))
                    .collect();
                if fields.is_empty() {
                    return Err(format!(
                        "element {i}: associative list with keys has an element that omits all key fields {names:?}"
                    ));
                }
                key_pe(fields)
            }
            (Some(_), _) => {
                return Err(format!(
                    "element {i}: associative list with keys may not have non-map elements"
                ));
            }
            (None, Value::Object(_) | Value::Array(_)) => {
                return Err(format!(
                    "element {i}: associative list without keys has an element that is not a scalar"
                ));
            }
            (None, scalar) => format!("v:{scalar}"),
        };
        if !seen.insert(pe.clone()) {
            return Err(format!("duplicate entries for key {}", pe_string(&pe)));
        }
        pes.push(pe);
    }
    Ok(Items::Granular(pes))
}

/// Element ids for a list inside a stored object: anything that cannot be
/// keyed (written by a non-apply client) is treated as atomic, never fails.
fn lenient_pes(items: &[Value], strategy: &ListStrategy) -> Items {
    item_pes(items, strategy).unwrap_or(Items::Atomic)
}

/// The field set an applied configuration claims. Errors name the
/// offending list, in the apiserver's words.
pub(crate) fn field_set(v: &Value, keys: &dyn MergeKeys) -> Result<Set, String> {
    let mut set = Set::default();
    fs_node(v, &mut Vec::new(), &mut Vec::new(), &mut set, keys)?;
    Ok(set)
}

fn fs_node(
    v: &Value,
    names: &mut Vec<String>,
    path: &mut Vec<Pe>,
    set: &mut Set,
    keys: &dyn MergeKeys,
) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            if m.is_empty() && !path.is_empty() {
                set.insert(path);
            }
            for (k, child) in m {
                names.push(k.clone());
                path.push(field_pe(k));
                fs_node(child, names, path, set, keys)?;
                path.pop();
                names.pop();
            }
        }
        Value::Array(items) => {
            let strat = strategy(keys, names);
            match item_pes(items, &strat).map_err(|e| format!("{}: {e}", path_string(path)))? {
                Items::Atomic => set.insert(path),
                Items::Granular(pes) => {
                    for (pe, item) in pes.into_iter().zip(items) {
                        path.push(pe);
                        set.insert(path);
                        fs_node(item, names, path, set, keys)?;
                        path.pop();
                    }
                }
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

/// What changed between two objects: structured-merge-diff's `Comparison`.
/// Every node missing on one side is added/removed (maps and list items
/// too, which is where Update entries get their `"."` markers).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: Set,
    pub(crate) modified: Set,
    pub(crate) removed: Set,
}

pub(crate) fn compare(lhs: &Value, rhs: &Value, keys: &dyn MergeKeys) -> Comparison {
    let mut out = Comparison::default();
    cmp_node(
        Some(lhs),
        Some(rhs),
        &mut Vec::new(),
        &mut Vec::new(),
        &mut out,
        keys,
    );
    out
}

fn empty_or_none(v: Option<&Value>) -> bool {
    match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

fn cmp_node(
    l: Option<&Value>,
    r: Option<&Value>,
    names: &mut Vec<String>,
    path: &mut Vec<Pe>,
    out: &mut Comparison,
    keys: &dyn MergeKeys,
) {
    let is_obj = |v: Option<&Value>| v.is_none_or(Value::is_object);
    let is_arr = |v: Option<&Value>| v.is_none_or(Value::is_array);
    let both_empty = empty_or_none(l) && empty_or_none(r);
    let mut leaf = true;
    if is_obj(l) && is_obj(r) && !both_empty {
        leaf = false;
        let lm = l.and_then(Value::as_object);
        let rm = r.and_then(Value::as_object);
        let all: BTreeSet<&String> = lm.into_iter().chain(rm).flat_map(Map::keys).collect();
        for k in all {
            names.push(k.clone());
            path.push(field_pe(k));
            cmp_node(
                lm.and_then(|m| m.get(k)),
                rm.and_then(|m| m.get(k)),
                names,
                path,
                out,
                keys,
            );
            path.pop();
            names.pop();
        }
    } else if is_arr(l) && is_arr(r) && !both_empty {
        let strat = strategy(keys, names);
        let empty = Vec::new();
        let la = l.and_then(Value::as_array).unwrap_or(&empty);
        let ra = r.and_then(Value::as_array).unwrap_or(&empty);
        if let (Items::Granular(lp), Items::Granular(rp)) =
            (lenient_pes(la, &strat), lenient_pes(ra, &strat))
        {
            leaf = false;
            let lmap: HashMap<&Pe, &Value> = lp.iter().zip(la).collect();
            let rmap: HashMap<&Pe, &Value> = rp.iter().zip(ra).collect();
            let extra = rp.iter().filter(|pe| !lmap.contains_key(pe));
            for pe in lp.iter().chain(extra) {
                path.push(pe.clone());
                cmp_node(
                    lmap.get(pe).copied(),
                    rmap.get(pe).copied(),
                    names,
                    path,
                    out,
                    keys,
                );
                path.pop();
            }
        }
    }
    if leaf && l.is_some() && r.is_some() && l != r {
        out.modified.insert(path);
    }
    if !path.is_empty() {
        if l.is_none() {
            out.added.insert(path);
        } else if r.is_none() {
            out.removed.insert(path);
        }
    }
}

/// Merges an applied configuration into an object: maps recursively, keyed
/// and set lists item by item (keeping structured-merge-diff's ordering),
/// atomic lists and scalars replaced. `None` means "remove the field": an
/// explicit `null` in the configuration.
pub(crate) fn merge(lhs: Option<&Value>, rhs: &Value, keys: &dyn MergeKeys) -> Option<Value> {
    merge_node(lhs, rhs, &mut Vec::new(), keys)
}

fn merge_node(
    lhs: Option<&Value>,
    rhs: &Value,
    names: &mut Vec<String>,
    keys: &dyn MergeKeys,
) -> Option<Value> {
    match rhs {
        Value::Null => None,
        Value::Object(rm) => {
            let mut out = match lhs {
                Some(Value::Object(lm)) => lm.clone(),
                _ => Map::new(),
            };
            for (k, rv) in rm {
                names.push(k.clone());
                match merge_node(out.get(k), rv, names, keys) {
                    Some(v) => out.insert(k.clone(), v),
                    None => out.remove(k),
                };
                names.pop();
            }
            Some(Value::Object(out))
        }
        Value::Array(ra) => {
            let strat = strategy(keys, names);
            let empty = Vec::new();
            let la = match lhs {
                Some(Value::Array(la)) => la,
                _ => &empty,
            };
            match (lenient_pes(la, &strat), lenient_pes(ra, &strat)) {
                (Items::Granular(lp), Items::Granular(rp)) if !ra.is_empty() => {
                    let merged = merge_list(la, &lp, ra, &rp, |l, r| {
                        merge_node(l, r, names, keys).unwrap_or(Value::Null)
                    });
                    Some(Value::Array(merged))
                }
                (Items::Granular(_), Items::Granular(_)) if lhs.is_some_and(Value::is_array) => {
                    // Merging no items into a granular list keeps it.
                    lhs.cloned()
                }
                _ => Some(rhs.clone()),
            }
        }
        scalar => Some(scalar.clone()),
    }
}

/// structured-merge-diff's list merge order: items keep the live order, new
/// and shared items follow the applied order where the two disagree.
fn merge_list(
    l: &[Value],
    lp: &[Pe],
    r: &[Value],
    rp: &[Pe],
    mut merge_item: impl FnMut(Option<&Value>, &Value) -> Value,
) -> Vec<Value> {
    let lmap: HashMap<&Pe, usize> = lp.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let rset: HashSet<&Pe> = rp.iter().collect();
    let mut shared: VecDeque<&Pe> = rp.iter().filter(|p| lmap.contains_key(p)).collect();
    let mut next_shared = shared.pop_front();
    let mut merged: HashSet<&Pe> = HashSet::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));
    let (mut li, mut ri) = (0, 0);
    while li < l.len() || ri < r.len() {
        if li < l.len() && ri < r.len() {
            if lp[li] == rp[ri] {
                merged.insert(&lp[li]);
                out.push(merge_item(Some(&l[li]), &r[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if rset.contains(&lp[li]) && next_shared.is_some_and(|s| *s != lp[li]) {
                li += 1;
                continue;
            }
        }
        if li < l.len() {
            if !rset.contains(&lp[li]) {
                out.push(l[li].clone());
                li += 1;
                continue;
            } else if merged.contains(&lp[li]) {
                li += 1;
            }
        }
        if ri < r.len() {
            let pe = &rp[ri];
            merged.insert(pe);
            out.push(merge_item(lmap.get(pe).map(|&i| &l[i]), &r[ri]));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// Removes every member path of `set` from `v`. Maps and lists emptied by
/// the removal go too (SSA leaves no empty husks) unless `owned` holds them
/// or they are `metadata`.
pub(crate) fn remove_items(v: &mut Value, set: &Set, owned: &Set, keys: &dyn MergeKeys) {
    rm_node(v, set, Some(owned), &mut Vec::new(), keys);
}

/// Returns whether `v` is a container that this removal left empty.
fn rm_node(
    v: &mut Value,
    set: &Set,
    owned: Option<&Set>,
    names: &mut Vec<String>,
    keys: &dyn MergeKeys,
) -> bool {
    let owned_child = |pe: &Pe| owned.and_then(|o| o.children.get(pe));
    let may_drop = |pe: &Pe| !owned_child(pe).is_some_and(|o| o.member);
    match v {
        Value::Object(m) => {
            let mut changed = false;
            for (pe, cs) in &set.children {
                let Some(name) = pe.strip_prefix("f:") else {
                    continue;
                };
                if cs.member {
                    changed |= m.remove(name).is_some();
                } else if let Some(child) = m.get_mut(name) {
                    names.push(name.to_string());
                    let emptied = rm_node(child, cs, owned_child(pe), names, keys);
                    let keep = names.len() == 1 && name == "metadata";
                    names.pop();
                    if emptied && !keep && may_drop(pe) {
                        m.remove(name);
                        changed = true;
                    }
                }
            }
            changed && m.is_empty()
        }
        Value::Array(items) => {
            let strat = strategy(keys, names);
            let Items::Granular(pes) = lenient_pes(items, &strat) else {
                return false;
            };
            let mut changed = false;
            let old = std::mem::take(items);
            for (mut item, pe) in old.into_iter().zip(pes) {
                let drop = match set.children.get(&pe) {
                    Some(cs) if cs.member => true,
                    Some(cs) => {
                        rm_node(&mut item, cs, owned_child(&pe), names, keys) && may_drop(&pe)
                    }
                    None => false,
                };
                if drop {
                    changed = true;
                } else {
                    items.push(item);
                }
            }
            changed && items.is_empty()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Keys;
    impl MergeKeys for Keys {
        fn list_strategy(&self, path: &[&str]) -> ListStrategy {
            match path {
                ["items"] => ListStrategy::Map(vec!["name".into()]),
                ["tags"] => ListStrategy::Set,
                _ => ListStrategy::Atomic,
            }
        }
    }

    #[test]
    fn fields_v1_round_trips_and_canonicalises_keys() {
        let wire = json!({"f:a": {".": {}, "f:b": {}},
                          "f:items": {"k:{ \"port\": 80, \"name\": \"x\" }": {}}});
        let set = Set::from_fields_v1(&wire).unwrap();
        assert!(set.has(&[field_pe("a")]));
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:a": {".": {}, "f:b": {}},
                   "f:items": {"k:{\"name\":\"x\",\"port\":80}": {}}})
        );
        assert!(Set::from_fields_v1(&json!({"x:1": {}})).is_none());
        assert!(Set::from_fields_v1(&json!({"f:a": 1})).is_none());
    }

    #[test]
    fn paths_print_in_kubernetes_notation() {
        let path = [
            field_pe("spec"),
            "k:{\"a\":1,\"b\":\"x\"}".into(),
            field_pe("c"),
        ];
        assert_eq!(path_string(&path), ".spec[a=1,b=\"x\"].c");
        assert_eq!(
            path_string(&[field_pe("tags"), "v:\"t\"".into()]),
            ".tags[=\"t\"]"
        );
        assert_eq!(path_string(&[field_pe("l"), "i:3".into()]), ".l[3]");
    }

    #[test]
    fn keyed_lists_merge_in_structured_merge_diff_order() {
        let item = |n: &str, v: i64| json!({"name": n, "v": v});
        let live = json!({"items": [item("a", 1), item("b", 1), item("c", 1)]});
        let cfg = json!({"items": [item("c", 2), item("d", 2)]});
        let out = merge(Some(&live), &cfg, &Keys).unwrap();
        assert_eq!(
            out["items"],
            json!([item("a", 1), item("b", 1), item("c", 2), item("d", 2)])
        );
        let reorder = json!({"items": [item("b", 1), item("a", 1)]});
        let live = json!({"items": [item("a", 1), item("b", 1)]});
        let out = merge(Some(&live), &reorder, &Keys).unwrap();
        assert_eq!(out["items"], json!([item("b", 1), item("a", 1)]));
        let out = merge(
            Some(&json!({"tags": ["x"]})),
            &json!({"tags": ["y", "x"]}),
            &Keys,
        )
        .unwrap();
        assert_eq!(out["tags"], json!(["y", "x"]));
    }

    #[test]
    fn compare_reports_nodes_and_leaves() {
        let l = json!({"a": 1, "m": {"k": 1}, "items": [{"name": "x", "v": 1}]});
        let r = json!({"a": 2, "n": {"k": 1}, "items": [{"name": "x", "v": 1}, {"name": "y"}]});
        let c = compare(&l, &r, &Keys);
        let strs = |s: &Set| s.paths().iter().map(|p| path_string(p)).collect::<Vec<_>>();
        assert_eq!(strs(&c.modified), [".a"]);
        assert_eq!(
            strs(&c.added),
            [
                ".n",
                ".items[name=\"y\"]",
                ".items[name=\"y\"].name",
                ".n.k"
            ]
        );
        assert_eq!(strs(&c.removed), [".m", ".m.k"]);
    }
}
