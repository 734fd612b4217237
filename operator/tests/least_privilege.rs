//! Least privilege, proven with the chart's own objects: the chart is
//! rendered by the real Helm library, its ServiceAccounts, Roles and
//! bindings are applied to testenv, and the operator and the reconciler run
//! authenticated as those ServiceAccounts (TokenRequest tokens, never an
//! admin) through whole scenarios: k8s, host, vcluster, k3s and external
//! (adopting a second testenv) control planes created, on OpenShift too,
//! PostCreateHooks run (one creating a CRD), all deleted; a Git
//! repository synced, pruned and drift-corrected.
//!
//! `KFLEX_RBAC_DROP_TEST=1` also runs `every_chart_rule_is_needed`: each
//! rule of the chart taken away in turn must make a scenario fail. It is
//! long (one scenario per rule), so it runs only when asked;
//! `KFLEX_RBAC_DROP_FILTER=kubeflex-reconciler` limits it to the Roles and
//! ClusterRoles whose name holds that text. It prints a table, rule →
//! the scenario step that failed; the rules no scenario here can need are
//! listed in `UNPROVABLE` with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "chart/session.rs"]
mod session;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kubeflex_testenv::TestEnv;
use serde_json::{Value, json};
use support::{Harness, condition};

const NAMESPACE: &str = support::SA_NAMESPACE;
/// The chart's RBAC objects (operator and reconciler), rendered by Helm.
async fn chart_rbac() -> Vec<Value> {
    let mut objects: Vec<Value> =
        session::render(json!({"reconciler": {"enabled": true, "git": {"url": "file:///unused"}}}))
            .await
            .into_iter()
            .filter(|d| session::RBAC_KINDS.contains(&d["kind"].as_str().unwrap()))
            .collect();
    // The operator runs outside the cluster here, so it reads readiness
    // through the service proxy: the optional rights config/rbac keeps for
    // that case (the chart, running in the cluster, leaves them out).
    for file in ["service_proxy_role.yaml", "service_proxy_role_binding.yaml"] {
        let path = session::root().join("config/rbac").join(file);
        objects.extend(session::documents(&std::fs::read_to_string(&path).unwrap()));
    }
    objects
}

/// Polls `check` every 200 ms for `secs`; `Err(what)` on timeout.
async fn within<F, Fut>(secs: u64, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("timed out after {secs}s waiting for {what}"))
}

/// Whether an Event regards the object `name`.
async fn events_about(client: &Client, name: &str) -> bool {
    !support::events_about(client, name).await.is_empty()
}

/// Waits until `name` is Synced and Ready; fails at once when one of its
/// conditions reports a request the API server forbade (the operator puts
/// the failed call in `Synced`/`Ready`), which names the missing right.
async fn ready_or_refused(h: &Harness, name: &str, secs: u64) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(cp) = h.cps().get_opt(name).await.unwrap() {
            let conditions = cp
                .status
                .as_ref()
                .map(|s| &s.conditions[..])
                .unwrap_or_default();
            if ["Synced", "Ready"].iter().all(|t| {
                conditions
                    .iter()
                    .any(|c| c.type_ == *t && c.status == "True")
            }) {
                return Ok(());
            }
            if let Some(c) = conditions
                .iter()
                .find(|c| c.status == "False" && c.message.contains("forbidden"))
            {
                return Err(format!("{name} {}: {}", c.type_, c.message));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let cp = h.cps().get_opt(name).await.unwrap();
            let last = cp.as_ref().and_then(|cp| condition(cp, "Ready"));
            return Err(format!(
                "timed out after {secs}s waiting for {name} Synced and Ready (Ready: {last:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cp_yaml(name: &str, type_: &str, extra: &str) -> String {
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n  type: {type_}\n{extra}"
    )
}

const HELLO: &str = include_str!("../../config/samples/postcreate-hooks/hello.yaml");

/// A hook creating a cluster-scoped object of an allow-listed kind (a CRD),
/// which the operator removes with the control plane.
const WIDGETS: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: PostCreateHook
metadata:
  name: widgets
spec:
  templates:
  - apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.{{.ControlPlaneName}}.example.com
    spec:
      group: '{{.ControlPlaneName}}.example.com'
      scope: Namespaced
      names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

/// The operator as `kubeflex-system/kubeflex-operator`: its Lease, every
/// hosted type Synced and Ready, the `hello` hook run, all deleted.
async fn operator_scenario(
    h: &mut Harness,
    cps: &[(&str, &str, &str)],
    secs: u64,
) -> Result<(), String> {
    let sa = h
        .service_account_client(NAMESPACE, "kubeflex-operator")
        .await;
    support::take_and_renew_lease(&sa, "chart-test").await?;
    for yaml in [HELLO, WIDGETS] {
        h.create_hook(yaml).await;
    }
    // The cluster an `external` control plane adopts: another testenv,
    // reached through the bootstrap Secret's kubeconfig.
    let _adopted = if cps.iter().any(|c| c.1 == "external") {
        let adopted = TestEnv::builder().start().await.unwrap();
        let boot: Secret = serde_json::from_value(json!({
            "metadata": {"name": "boot"},
            "stringData": {"kubeconfig-incluster": adopted.kubeconfig()}
        }))
        .unwrap();
        Api::<Secret>::namespaced(h.client.clone(), "default")
            .create(&PostParams::default(), &boot)
            .await
            .unwrap();
        Some(adopted)
    } else {
        None
    };
    h.start_operator_as(sa);
    for &(name, type_, extra) in cps {
        h.create_cp(&cp_yaml(name, type_, extra)).await;
    }
    let result = async {
        for &(name, _, _) in cps {
            ready_or_refused(h, name, secs).await?;
        }
        // Condition changes are published as Events (about a cluster-scoped
        // object: in `default`).
        let first = cps[0].0;
        within(secs, &format!("an Event about {first}"), || {
            events_about(&h.client, first)
        })
        .await?;
        let crds: Api<CustomResourceDefinition> = Api::all(h.client.clone());
        for &(name, _, extra) in cps.iter().filter(|c| c.2.contains("hookName")) {
            let hooks = h
                .cps()
                .get(name)
                .await
                .unwrap()
                .status
                .and_then(|s| s.post_create_hooks)
                .unwrap_or_default();
            for hook in ["hello", "widgets"] {
                if hooks.get(hook) != Some(&true) {
                    return Err(format!("{name}: hook {hook} did not complete: {hooks:?}"));
                }
            }
            let crd = format!("widgets.{name}.example.com");
            if crds.get_opt(&crd).await.unwrap().is_none() {
                return Err(format!("{name}: the hook's {crd} is missing ({extra:?})"));
            }
        }
        for &(name, _, _) in cps {
            h.delete_cp(name).await;
        }
        for &(name, _, _) in cps {
            within(secs, &format!("{name} and {name}-system gone"), || async {
                h.cps().get_opt(name).await.unwrap().is_none()
                    && Api::<Namespace>::all(h.client.clone())
                        .get_opt(&format!("{name}-system"))
                        .await
                        .unwrap()
                        .is_none()
            })
            .await?;
        }
        for &(name, _, _) in cps.iter().filter(|c| c.2.contains("hookName")) {
            let crd = format!("widgets.{name}.example.com");
            within(secs, &format!("the hook's {crd} removed"), || async {
                crds.get_opt(&crd).await.unwrap().is_none()
            })
            .await?;
        }
        if !h.operator_running() {
            return Err("the operator stopped".into());
        }
        Ok(())
    }
    .await;
    h.stop_operator().await;
    result
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubeflex-reconciler --once` as the ServiceAccount; its stderr on
/// failure. Killed after 60 s: without the right to watch its kinds it
/// waits for its caches forever.
async fn reconcile_once(kubeconfig: &Path, url: &str, cache: &Path) -> Result<(), String> {
    let child = tokio::process::Command::new(session::reconciler_binary())
        .args([
            "--name",
            "default",
            "--lease-namespace",
            NAMESPACE,
            "--once",
            "--git-url",
            url,
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| "the reconciler pass did not finish in 60s".to_owned())?
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "reconciler pass failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The reconciler as `kubeflex-system/kubeflex-reconciler`: a repository
/// synced (two ControlPlanes, a hook), one ControlPlane pruned after it
/// left Git, a field another manager added removed (drift).
async fn reconciler_scenario(h: &Harness) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("reconciler.kubeconfig");
    let yaml = h
        .service_account_kubeconfig(NAMESPACE, "kubeflex-reconciler")
        .await;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&kubeconfig)
            .unwrap();
        f.write_all(yaml.as_bytes()).unwrap();
    }
    let repos = tmp.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    git(&repos, &["init", "--bare", "-q", "specs.git"]);
    let url = format!("file://{}/specs.git", repos.display());
    git(tmp.path(), &["clone", "-q", &url, "work"]);
    let work = tmp.path().join("work");
    let commit = |files: &[(&str, &str)], removed: &[&str]| {
        for (path, text) in files {
            std::fs::write(work.join(path), text).unwrap();
        }
        for path in removed {
            git(&work, &["rm", "-q", path]);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "specs"]);
        git(&work, &["push", "-q", "origin", "HEAD"]);
    };
    let cache = tmp.path().join("cache");
    commit(
        &[
            ("one.yaml", &cp_yaml("one", "k8s", "")),
            ("two.yaml", &cp_yaml("two", "host", "")),
            ("three.yaml", &cp_yaml("three", "host", "")),
            ("hello.yaml", HELLO),
        ],
        &[],
    );
    reconcile_once(&kubeconfig, &url, &cache).await?;
    for name in ["one", "two", "three"] {
        if h.cps().get_opt(name).await.unwrap().is_none() {
            return Err(format!("{name} was not synced"));
        }
    }
    let sync_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gitops.kflex.kubestellar.org", "v1alpha1", "Sync"),
        "syncs",
    );
    let sync = Api::<DynamicObject>::all_with(h.client.clone(), &sync_ar)
        .get_opt("default")
        .await
        .unwrap()
        .ok_or("no Sync object")?;
    if sync.data["status"].is_null() {
        return Err("the Sync object has no status".into());
    }
    if !events_about(&h.client, "default").await {
        return Err("no Event about the Sync object".into());
    }

    // Prune: `three` left Git.
    commit(&[], &["three.yaml"]);
    reconcile_once(&kubeconfig, &url, &cache).await?;
    if h.cps().get_opt("three").await.unwrap().is_some() {
        return Err("three was not pruned".into());
    }

    // Drift: a field Git does not have, added by another manager, goes.
    h.cps()
        .patch(
            "one",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(json!({
                "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1", "kind": "ControlPlane",
                "metadata": {"name": "one"}, "spec": {"type": "k8s", "postCreateHook": "hello"}
            })),
        )
        .await
        .unwrap();
    reconcile_once(&kubeconfig, &url, &cache).await?;
    let one = h.cps().get("one").await.unwrap();
    if one.spec.post_create_hook.is_some() {
        return Err("the drifted field was not removed".into());
    }
    Ok(())
}

/// Every type (`external` adopting a second testenv), and hooks awaited.
const HOSTED: [(&str, &str, &str); 5] = [
    ("alpha", "k8s", ""),
    (
        "hosty",
        "host",
        "  waitForPostCreateHooks: true\n  postCreateHooks:\n  - hookName: hello\n  - hookName: widgets\n",
    ),
    ("vee", "vcluster", ""),
    ("kay", "k3s", ""),
    (
        "ext",
        "external",
        "  bootstrapSecretRef: {namespace: default, name: boot, inClusterKey: kubeconfig-incluster}\n",
    ),
];

/// On OpenShift (Routes served) a `k8s` control plane is exposed by a Route.
const ON_OPENSHIFT: [(&str, &str, &str); 1] = [("ocp", "k8s", "")];

/// A testenv with the CRDs and `objects` (the chart's RBAC) applied; the
/// operator not started.
async fn harness_with(objects: &[Value], openshift: bool) -> Harness {
    let builder = TestEnv::builder().openshift_routes(openshift);
    let h = Harness::start_idle(builder, support::settings()).await;
    support::apply_all_as_admin(&h.client, objects).await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_as_the_charts_service_account() {
    let rbac = chart_rbac().await;
    let mut h = harness_with(&rbac, false).await;
    // The identity really is the ServiceAccount, not an admin.
    let sa = h
        .service_account_client(NAMESPACE, "kubeflex-operator")
        .await;
    let err = Api::<Pod>::all(sa)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot list resource \"pods\""),
        "{err}"
    );
    operator_scenario(&mut h, &HOSTED, 120).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_as_the_charts_service_account_on_openshift() {
    let rbac = chart_rbac().await;
    let mut h = harness_with(&rbac, true).await;
    operator_scenario(&mut h, &ON_OPENSHIFT, 120).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_runs_as_the_charts_service_account() {
    let rbac = chart_rbac().await;
    let h = harness_with(&rbac, false).await;
    let sa = h
        .service_account_client(NAMESPACE, "kubeflex-reconciler")
        .await;
    let err = Api::<Namespace>::all(sa)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot list resource \"namespaces\""),
        "{err}"
    );
    reconciler_scenario(&h).await.unwrap();
}

/// Rules no scenario here can need, each with the reason; every other rule
/// of the chart (and of config/rbac's service-proxy Role) must fail a
/// scenario when dropped. (Role name, a resource the rule names, reason.)
const UNPROVABLE: [(&str, &str, &str); 2] = [
    (
        "kubeflex-vcluster",
        "",
        "the rights of tenants' vcluster pods (the syncer's ServiceAccount in <cp>-system), which the operator only binds (its `bind` rule is tested); testenv simulates vcluster without a syncer making those calls",
    ),
    (
        "kubeflex-operator",
        "controlplanes/finalizers",
        "needed where the OwnerReferencesPermissionEnforcement admission plugin runs (owner references with blockOwnerDeletion to a ControlPlane); testenv has no such plugin, so nothing here can fail without it",
    ),
];

/// Why `rule` of `role` is excluded from the drop test, if it is.
fn unprovable(role: &str, rule: &Value) -> Option<&'static str> {
    UNPROVABLE.iter().find_map(|(r, resource, why)| {
        let names = rule["resources"]
            .as_array()
            .is_some_and(|a| resource.is_empty() || a.contains(&json!(resource)));
        (*r == role && names).then_some(*why)
    })
}

/// The exclusions stay honest: each names a rule the chart really has (a
/// rule gone from the chart must leave the list too), and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_left_out_of_the_drop_test_are_the_charts() {
    let rbac = chart_rbac().await;
    let all = rules(&rbac);
    for (role, resource, _) in UNPROVABLE {
        let matched: Vec<String> = all
            .iter()
            .map(|&(o, r)| (&rbac[o], &rbac[o]["rules"][r]))
            .filter(|(o, rule)| {
                unprovable(o["metadata"]["name"].as_str().unwrap(), rule).is_some()
                    && o["metadata"]["name"] == role
            })
            .map(|(_, rule)| rule_text(rule))
            .collect();
        assert!(
            !matched.is_empty(),
            "UNPROVABLE names {role} {resource:?}, which the chart does not have"
        );
        if !resource.is_empty() {
            assert_eq!(matched.len(), 1, "{role} {resource}: {matched:?}");
        }
    }
    // Only the operator's finalizers rule and the vcluster ClusterRole.
    let excluded = all
        .iter()
        .filter(|&&(o, r)| {
            unprovable(
                rbac[o]["metadata"]["name"].as_str().unwrap(),
                &rbac[o]["rules"][r],
            )
            .is_some()
        })
        .count();
    let vcluster_rules = rbac
        .iter()
        .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "kubeflex-vcluster")
        .map(|o| o["rules"].as_array().unwrap().len())
        .expect("the chart's kubeflex-vcluster ClusterRole");
    assert_eq!(excluded, vcluster_rules + 1);
}

/// A rule in one line: `groups resources verbs [names]`.
fn rule_text(rule: &Value) -> String {
    let list = |f: &str| {
        rule[f]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| match v.as_str() {
                        Some("") => "core",
                        Some(s) => s,
                        None => "?",
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let names = list("resourceNames");
    format!(
        "{} {} [{}]{}",
        list("apiGroups"),
        list("resources"),
        list("verbs"),
        if names.is_empty() {
            String::new()
        } else {
            format!(" names={names}")
        }
    )
}

/// Every (object, rule index) of the chart's Roles and ClusterRoles.
fn rules(rbac: &[Value]) -> Vec<(usize, usize)> {
    rbac.iter()
        .enumerate()
        .filter(|(_, o)| o["kind"] == "Role" || o["kind"] == "ClusterRole")
        .flat_map(|(i, o)| (0..o["rules"].as_array().unwrap().len()).map(move |r| (i, r)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chart_rule_is_needed() {
    if std::env::var("KFLEX_RBAC_DROP_TEST").as_deref() != Ok("1") {
        eprintln!(
            "every_chart_rule_is_needed: set KFLEX_RBAC_DROP_TEST=1 to run it (one scenario per rule)"
        );
        return;
    }
    let rbac = chart_rbac().await;
    // KFLEX_RBAC_DROP_FILTER=text: only the Roles/ClusterRoles whose name holds it.
    let filter = std::env::var("KFLEX_RBAC_DROP_FILTER").unwrap_or_default();
    let mut table = Vec::new();
    let mut not_needed = Vec::new();
    for (obj, rule) in rules(&rbac) {
        let who = rbac[obj]["metadata"]["name"].as_str().unwrap().to_owned();
        if !who.contains(&filter) {
            continue;
        }
        let text = rule_text(&rbac[obj]["rules"][rule]);
        if let Some(why) = unprovable(&who, &rbac[obj]["rules"][rule]) {
            table.push(format!("| {who} | {text} | not tested: {why} |"));
            continue;
        }
        let mut edited = rbac.clone();
        edited[obj]["rules"].as_array_mut().unwrap().remove(rule);
        let started = std::time::Instant::now();
        let outcome = if who.starts_with("kubeflex-reconciler") {
            reconciler_scenario(&harness_with(&edited, false).await)
                .await
                .map_err(|e| format!("reconciler: {e}"))
        } else {
            // The OpenShift variant only when the first does not fail.
            let mut h = harness_with(&edited, false).await;
            match operator_scenario(&mut h, &HOSTED, 30).await {
                Ok(()) => {
                    let mut h = harness_with(&edited, true).await;
                    operator_scenario(&mut h, &ON_OPENSHIFT, 30)
                        .await
                        .map_err(|e| format!("operator on OpenShift: {e}"))
                }
                Err(e) => Err(format!("operator, every type: {e}")),
            }
        };
        let secs = started.elapsed().as_secs();
        let row = match outcome {
            Err(e) => format!(
                "| {who} | {text} | needed ({secs}s): {} |",
                e.lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(240)
                    .collect::<String>()
                    .replace('|', "/")
            ),
            Ok(()) => {
                not_needed.push(format!("{who} {text}"));
                format!("| {who} | {text} | NOT NEEDED by any scenario ({secs}s) |")
            }
        };
        eprintln!("{row}");
        table.push(row);
    }
    eprintln!(
        "\nrule-drop results:\n| role | rule dropped | outcome |\n|---|---|---|\n{}",
        table.join("\n")
    );
    assert!(
        not_needed.is_empty(),
        "rules no scenario needs (a real cluster may; see config/rbac's comments):\n{}",
        not_needed.join("\n")
    );
}
