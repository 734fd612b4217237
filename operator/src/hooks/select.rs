//! Which hooks a ControlPlane runs, in what order, with which variables
//! (KubeFlex §8.2 and §8.3).

use std::collections::BTreeMap;

use crate::api::{ControlPlaneSpec, Var};
use crate::names;

/// One hook a ControlPlane uses, with the variables of that use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookUse<'a> {
    /// `metadata.name` of the PostCreateHook.
    pub name: &'a str,
    /// `postCreateHooks[].vars`, or `postCreateHookVars` for the legacy hook.
    pub vars: Option<&'a BTreeMap<String, String>>,
}

/// The hooks to run, and the names skipped as duplicates (logged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection<'a> {
    pub uses: Vec<HookUse<'a>>,
    pub duplicates: Vec<&'a str>,
}

/// The legacy `postCreateHook` first, then `postCreateHooks[]` in order;
/// empty names are ignored and a name already seen is skipped.
pub fn select(spec: &ControlPlaneSpec) -> Selection<'_> {
    let legacy = spec.post_create_hook.as_deref().map(|name| HookUse {
        name,
        vars: spec.post_create_hook_vars.as_ref(),
    });
    let listed = spec.post_create_hooks.iter().flatten().map(|u| HookUse {
        name: u.hook_name.as_str(),
        vars: u.vars.as_ref(),
    });
    let mut out = Selection::default();
    for u in legacy.into_iter().chain(listed) {
        if u.name.is_empty() {
            continue;
        }
        if out.uses.iter().any(|seen| seen.name == u.name) {
            out.duplicates.push(u.name);
        } else {
            out.uses.push(u);
        }
    }
    out
}

/// Whether the spec references `hook` (for the PostCreateHook watch).
pub fn references(spec: &ControlPlaneSpec, hook: &str) -> bool {
    select(spec).uses.iter().any(|u| u.name == hook)
}

/// The hook's variables: `defaultVars` < `globalVars` < the use's `vars` <
/// the system variables `Namespace`, `ControlPlaneName`, `HookName`.
pub fn variables(
    default_vars: &[Var],
    global_vars: Option<&BTreeMap<String, String>>,
    use_vars: Option<&BTreeMap<String, String>>,
    cp_name: &str,
    hook_name: &str,
) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = default_vars
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    for layer in [global_vars, use_vars].into_iter().flatten() {
        vars.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    vars.insert("Namespace".into(), names::namespace_of(cp_name));
    vars.insert("ControlPlaneName".into(), cp_name.into());
    vars.insert("HookName".into(), hook_name.into());
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PostCreateHookUse;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn uses(names: &[&str]) -> Option<Vec<PostCreateHookUse>> {
        Some(
            names
                .iter()
                .map(|n| PostCreateHookUse {
                    hook_name: (*n).into(),
                    vars: Some(map(&[("WHO", n)])),
                })
                .collect(),
        )
    }

    #[test]
    fn legacy_first_then_list_empty_ignored_duplicates_skipped() {
        let spec = ControlPlaneSpec {
            post_create_hook: Some("legacy".into()),
            post_create_hook_vars: Some(map(&[("A", "1")])),
            post_create_hooks: uses(&["b", "", "legacy", "c", "b"]),
            ..ControlPlaneSpec::default()
        };
        let s = select(&spec);
        let names: Vec<_> = s.uses.iter().map(|u| u.name).collect();
        assert_eq!(names, ["legacy", "b", "c"]);
        assert_eq!(s.duplicates, ["legacy", "b"]);
        assert_eq!(s.uses[0].vars, Some(&map(&[("A", "1")])));
        assert_eq!(s.uses[1].vars, Some(&map(&[("WHO", "b")])));
        assert!(references(&spec, "c") && !references(&spec, "d"));
    }

    #[test]
    fn empty_legacy_and_no_hooks_select_nothing() {
        let spec = ControlPlaneSpec {
            post_create_hook: Some(String::new()),
            ..ControlPlaneSpec::default()
        };
        assert!(select(&spec).uses.is_empty());
        assert!(select(&ControlPlaneSpec::default()).uses.is_empty());
    }

    #[test]
    fn precedence_defaults_globals_use_then_system() {
        let defaults = [
            Var {
                name: "A".into(),
                value: "default".into(),
            },
            Var {
                name: "B".into(),
                value: "default".into(),
            },
            Var {
                name: "C".into(),
                value: "default".into(),
            },
            Var {
                name: "Namespace".into(),
                value: "elsewhere".into(),
            },
        ];
        let globals = map(&[("B", "global"), ("C", "global"), ("HookName", "x")]);
        let own = map(&[("C", "use"), ("ControlPlaneName", "other")]);
        let v = variables(&defaults, Some(&globals), Some(&own), "cp1", "hello");
        assert_eq!(
            v,
            map(&[
                ("A", "default"),
                ("B", "global"),
                ("C", "use"),
                ("Namespace", "cp1-system"),
                ("ControlPlaneName", "cp1"),
                ("HookName", "hello"),
            ])
        );
    }
}
