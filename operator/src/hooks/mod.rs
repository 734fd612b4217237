//! PostCreateHooks: KubeFlex's behaviour (§8), made safe.
//!
//! The pure part, table-tested: [`select`] (which hooks, in what order,
//! with which variables), [`render`] (minijinja, strict undefined, values
//! as data, KubeFlex's Go references translated), [`policy`] (what a
//! tenant's hook may write, with [`grants`] for RBAC and [`pods`] for Pod
//! Security), [`ready`] (readiness per kind), and [`plan`],
//! which chains them for one hook: render every template, then check every
//! rendered object, so that a refused hook writes nothing.
//!
//! The IO part is [`run`]: applying plans with server-side apply once the
//! tenant serves, tracking `status.postCreateHooks`, timeouts, labels on the
//! ControlPlane and re-rendering.

pub mod grants;
pub mod pods;
pub mod policy;
pub mod ready;
pub mod render;
pub mod run;
pub mod select;

use std::collections::BTreeMap;

use crate::api::PostCreateHook;
use crate::meta;
use grants::ExtraRules;
use policy::{ClusterKinds, Planned, ScopeLookup};
use render::{RenderError, Renderer};

/// Why a hook cannot be applied. Messages name the hook, the template
/// (`#index Kind/name`) and the cause; never a variable's value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The ControlPlane names a PostCreateHook that does not exist.
    #[error("PostCreateHook {hook} not found; create it (it is picked up at once)")]
    NotFound { hook: String },
    /// A string of a template did not render.
    #[error("PostCreateHook {hook}, template {template}, field {path}: {source}")]
    Render {
        hook: String,
        template: String,
        path: String,
        #[source]
        source: Box<RenderError>,
    },
    /// A rendered object breaks the isolation policy or is not an object.
    #[error(
        "PostCreateHook {hook} refused, template {template}: {reason}; nothing of this hook was applied"
    )]
    Refused {
        hook: String,
        template: String,
        reason: String,
    },
}

/// The variables the operator sets, whose values are names, never secret.
const SYSTEM_VARS: [&str; 3] = ["Namespace", "ControlPlaneName", "HookName"];
/// Shortest value hidden by [`scrub`]: shorter ones (`true`, `1`) would
/// blank out ordinary words of a message.
const MIN_HIDDEN: usize = 6;

/// `message` with the value of every variable a user set (not the system
/// ones) replaced by `{{ NAME }}`, as written and JSON-escaped: conditions,
/// Events and logs say what was rendered, never a rendered value (a
/// templated name or namespace, a value quoted by an API error).
pub fn scrub(message: &str, vars: &BTreeMap<String, String>) -> String {
    let mut hidden: Vec<(String, &str)> = vars
        .iter()
        .filter(|(k, v)| !SYSTEM_VARS.contains(&k.as_str()) && v.len() >= MIN_HIDDEN)
        .flat_map(|(k, v)| {
            let escaped = serde_json::to_string(v).unwrap_or_default();
            let escaped = escaped
                .strip_prefix('"')
                .and_then(|e| e.strip_suffix('"'))
                .unwrap_or_default()
                .to_string();
            [(v.clone(), k.as_str()), (escaped, k.as_str())]
        })
        .filter(|(v, _)| v.len() >= MIN_HIDDEN)
        .collect();
    // Longest first: a value holding another is replaced whole.
    hidden.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    let mut out = message.to_string();
    for (value, name) in hidden {
        out = out.replace(&value, &format!("{{{{ {name} }}}}"));
    }
    out
}

/// A hook rendered and checked for one control plane.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The objects, in template order.
    pub objects: Vec<Planned>,
    /// Hash of the objects, to notice a changed template (re-render).
    pub hash: String,
}

/// Renders and checks every template of `hook` for control plane
/// `cp_name` with `vars` ([`select::variables`]).
pub fn plan(
    cp_name: &str,
    hook: &PostCreateHook,
    vars: &BTreeMap<String, String>,
    renderer: &Renderer,
    scopes: &dyn ScopeLookup,
    allowed: &ClusterKinds,
    extra: &ExtraRules,
) -> Result<Plan, HookError> {
    let hook_name = hook.metadata.name.clone().unwrap_or_default();
    let templates = hook.spec.templates.as_deref().unwrap_or_default();
    let mut rendered = Vec::with_capacity(templates.len());
    for (i, t) in templates.iter().enumerate() {
        let object = renderer
            .render_value(t, vars)
            .map_err(|e| HookError::Render {
                hook: hook_name.clone(),
                template: policy::template_label(i, t),
                path: e.path,
                source: Box::new(e.error),
            })?;
        if !object.is_object() {
            return Err(HookError::Refused {
                hook: hook_name,
                template: format!("#{i}"),
                reason: "a template must be an object".into(),
            });
        }
        rendered.push(object);
    }
    let objects =
        policy::check(cp_name, &hook_name, rendered, scopes, allowed, extra).map_err(|r| {
            HookError::Refused {
                hook: hook_name.clone(),
                template: r.template,
                reason: r.reason,
            }
        })?;
    let bytes = serde_json::to_vec(&objects.iter().map(|p| &p.object).collect::<Vec<_>>())
        .unwrap_or_default();
    Ok(Plan {
        hash: meta::short_hash(&bytes),
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PostCreateHookSpec, Var};
    use policy::Scope;
    use serde_json::json;

    fn scopes() -> BTreeMap<(String, String), Scope> {
        BTreeMap::from([(("batch/v1".into(), "Job".into()), Scope::Namespaced)])
    }

    fn hello() -> PostCreateHook {
        let yaml = include_str!("../../../config/samples/postcreate-hooks/hello.yaml");
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn vars_for(hook: &PostCreateHook, own: &[(&str, &str)]) -> BTreeMap<String, String> {
        let own: BTreeMap<String, String> = own
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        select::variables(
            hook.spec.default_vars.as_deref().unwrap_or_default(),
            None,
            Some(&own),
            "cp1",
            "hello",
        )
    }

    #[test]
    fn the_hello_sample_renders_with_defaults_and_overrides() {
        let h = hello();
        let r = Renderer::new();
        let p = plan(
            "cp1",
            &h,
            &vars_for(&h, &[]),
            &r,
            &scopes(),
            &ClusterKinds::default(),
            &ExtraRules::default(),
        )
        .unwrap();
        let job = &p.objects[0].object;
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["command"],
            json!(["echo", "Hello from Defaults", "World"])
        );
        assert_eq!(job["metadata"]["namespace"], "cp1-system");
        let p2 = plan(
            "cp1",
            &h,
            &vars_for(&h, &[("MESSAGE", "Hi \"there\"\n{{ .X }}")]),
            &r,
            &scopes(),
            &ClusterKinds::default(),
            &ExtraRules::default(),
        )
        .unwrap();
        assert_eq!(
            p2.objects[0].object["spec"]["template"]["spec"]["containers"][0]["command"][1],
            json!("Hi \"there\"\n{{ .X }}")
        );
        assert_ne!(p.hash, p2.hash);
    }

    #[test]
    fn scrub_hides_user_values_not_names() {
        let vars = select::variables(
            &[],
            None,
            Some(&BTreeMap::from([
                ("PASSWORD".to_string(), "s3cr\"et-value".to_string()),
                ("FLAG".to_string(), "true".to_string()),
            ])),
            "cp1",
            "hello",
        );
        let m =
            r#"namespace s3cr"et-value is outside cp1-system; labels {"a":"s3cr\"et-value"}: true"#;
        assert_eq!(
            scrub(m, &vars),
            r#"namespace {{ PASSWORD }} is outside cp1-system; labels {"a":"{{ PASSWORD }}"}: true"#
        );
    }

    #[test]
    fn errors_name_hook_template_and_variable() {
        let mut h = hello();
        h.spec.default_vars = Some(vec![Var {
            name: "OTHER".into(),
            value: "x".into(),
        }]);
        let e = plan(
            "cp1",
            &h,
            &vars_for(&h, &[]),
            &Renderer::new(),
            &scopes(),
            &ClusterKinds::default(),
            &ExtraRules::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("PostCreateHook hello")
                && e.contains("#0 Job/hello")
                && e.contains("`MESSAGE`")
                && e.contains("spec.template.spec.containers[0].command[1]"),
            "{e}"
        );
    }

    #[test]
    fn one_bad_template_refuses_the_whole_hook() {
        let mut h = hello();
        let mut templates = h.spec.templates.clone().unwrap();
        templates.push(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x", "namespace": "kube-system"}}));
        h.spec = PostCreateHookSpec {
            templates: Some(templates),
            ..h.spec
        };
        let e = plan(
            "cp1",
            &h,
            &vars_for(&h, &[]),
            &Renderer::new(),
            &scopes(),
            &ClusterKinds::default(),
            &ExtraRules::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, HookError::Refused { template, .. } if template == "#1 Job/x"),
            "{e}"
        );
        assert!(e.to_string().contains("nothing of this hook was applied"));
    }

    #[test]
    fn kubeflex_samples_parse_and_plan() {
        let r = Renderer::new();
        let table: BTreeMap<(String, String), Scope> = [
            ("batch/v1", "Job"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ]
        .into_iter()
        .map(|(a, k)| ((a.to_string(), k.to_string()), Scope::Namespaced))
        .collect();
        for yaml in [
            include_str!("../../../config/samples/postcreate-hooks/postgres.yaml"),
            include_str!("../../../config/samples/postcreate-hooks/openshift-crds.yaml"),
        ] {
            let h: PostCreateHook = serde_saphyr::from_str(yaml).unwrap();
            let name = h.metadata.name.clone().unwrap();
            let vars = select::variables(&[], None, None, "cp1", &name);
            let p = plan(
                "cp1",
                &h,
                &vars,
                &r,
                &table,
                &ClusterKinds::default(),
                &ExtraRules::default(),
            )
            .unwrap();
            assert!(
                p.objects
                    .iter()
                    .all(|o| o.namespace.as_deref() == Some("cp1-system"))
            );
            let text =
                serde_json::to_string(&p.objects.iter().map(|o| &o.object).collect::<Vec<_>>())
                    .unwrap();
            assert!(!text.contains("{{"), "{text}");
            assert!(text.contains(&name));
        }
    }
}
