//! Checks across files: the same object defined twice, and hook references
//! that no file (read now or earlier) or cluster object resolves.

use std::collections::{BTreeMap, BTreeSet};

use super::{Definition, FileOutcome, Kind, ObjectKey, Options, Problem, ProblemKind, Severity};
use crate::document::Pos;

/// The same object defined twice: an error at every definition in a file
/// read this pass, naming the others. Both files fail, so the object stays as
/// it is in the cluster until the ambiguity is resolved.
pub(super) fn check_duplicates(
    outcomes: &mut BTreeMap<String, FileOutcome>,
    elsewhere: &[Definition],
) {
    let mut definitions: BTreeMap<ObjectKey, Vec<(String, Pos)>> = BTreeMap::new();
    for (path, outcome) in outcomes.iter() {
        for (key, pos) in &outcome.keys {
            definitions
                .entry(key.clone())
                .or_default()
                .push((path.clone(), *pos));
        }
    }
    // Only keys read this pass can clash: `elsewhere` (every other object of
    // the repository) is scanned, not copied.
    for def in elsewhere {
        if let Some(places) = definitions.get_mut(&def.key)
            && !outcomes.contains_key(&def.path)
        {
            places.push((def.path.clone(), def.pos));
        }
    }
    for (key, places) in definitions.into_iter().filter(|(_, p)| p.len() > 1) {
        for (i, (path, pos)) in places.iter().enumerate() {
            let Some(outcome) = outcomes.get_mut(path) else {
                continue;
            };
            let others: Vec<String> = places
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (p, q))| format!("{p}:{q}"))
                .collect();
            outcome.problems.push(Problem {
                severity: Severity::Error,
                kind: ProblemKind::Duplicate,
                path: path.clone(),
                pos: *pos,
                object: Some(key.clone()),
                field: Some("metadata.name".to_owned()),
                message: format!("{key} is also defined at {}", others.join(", ")),
            });
        }
    }
}

/// Every hook a ControlPlane names must be defined by a valid file, by an
/// unread file of the repository, or in the cluster.
pub(super) fn check_hook_references(
    outcomes: &mut BTreeMap<String, FileOutcome>,
    options: &Options,
) {
    let mut defined: BTreeSet<&str> = BTreeSet::new();
    for outcome in outcomes.values().filter(|o| !o.failed()) {
        for c in &outcome.candidates {
            if c.doc.key.kind == Kind::PostCreateHook {
                defined.insert(&c.doc.key.name);
            }
        }
    }
    for def in &options.elsewhere {
        if def.key.kind == Kind::PostCreateHook && !outcomes.contains_key(&def.path) {
            defined.insert(&def.key.name);
        }
    }
    let in_cluster = options.cluster.hooks.as_ref();
    let mut missing = Vec::new();
    for (path, outcome) in outcomes.iter() {
        for c in &outcome.candidates {
            for r in &c.hook_refs {
                let known = defined.contains(r.name.as_str())
                    || in_cluster.is_some_and(|hooks| hooks.contains(&r.name));
                if known {
                    continue;
                }
                let (severity, message) = match in_cluster {
                    Some(_) => (
                        Severity::Error,
                        format!(
                            "PostCreateHook {:?} is not defined by any valid file or in the cluster",
                            r.name
                        ),
                    ),
                    None => (
                        Severity::Warning,
                        format!(
                            "PostCreateHook {:?} is not defined by any valid file (the cluster was not consulted)",
                            r.name
                        ),
                    ),
                };
                missing.push(Problem {
                    severity,
                    kind: ProblemKind::MissingHook,
                    path: path.clone(),
                    pos: r.pos,
                    object: Some(c.doc.key.clone()),
                    field: Some(r.field.clone()),
                    message,
                });
            }
        }
    }
    for problem in missing {
        if let Some(outcome) = outcomes.get_mut(&problem.path) {
            outcome.problems.push(problem);
        }
    }
}
