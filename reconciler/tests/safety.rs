//! Issue 11, end to end with the `kubeflex-reconciler` binary: a mistake in
//! Git never deletes what runs, credentials never show, status never claims
//! more than happened. One test per numbered item of the issue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kubeflex_operator::api::PostCreateHook;
use support::{Cluster, GitDaemon, LoggedReconciler, Upstream, cp, eventually, reconciler_command};

const HOOK: &str = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: PostCreateHook
metadata:
  name: NAME
spec:
  templates:
    - apiVersion: v1
      kind: Namespace
      metadata:
        name: '{{.Namespace}}-extra'
";

/// One `--once` pass of the binary against `up`'s repository: exit code
/// and log.
fn once(cluster: &Cluster, name: &str, up: &Upstream, extra: &[&str]) -> (i32, String) {
    let mut cmd = reconciler_command(cluster, name);
    cmd.args(["--git-url", &up.file_url(), "--once"])
        .arg("--cache-dir")
        .arg(up.cache())
        .args(extra)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    let out = cmd.output().expect("reconciler runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), log)
}

async fn exists(cluster: &Cluster, name: &str) -> bool {
    cluster.cp(name).await.is_some()
}

async fn status(cluster: &Cluster, name: &str) -> kubeflex_operator::api::SyncStatus {
    cluster.sync(name).await.unwrap().status.unwrap()
}

/// Item 1: an apiVersion typo is an error that keeps the object, with the
/// position of the typo; so is an unknown group in a file that defined a
/// managed object before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typo_in_api_version_is_an_error_and_prunes_nothing() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[
        ("controlplanes/a.yaml", &cp("ty-a")),
        ("controlplanes/b.yaml", &cp("ty-b")),
        ("controlplanes/c.yaml", &cp("ty-c")),
        ("controlplanes/d.yaml", &cp("ty-d")),
    ]);
    let (code, log) = once(&cluster, "typo", &up, &[]);
    assert_eq!(code, 0, "{log}");
    let wrong_group = cp("ty-a").replace("kubestellar.org", "kubestellar.io");
    let wrong_kind_too = cp("ty-b")
        .replace("kubestellar.org", "kubestellar.io")
        .replace("kind: ControlPlane", "kind: Controlplane");
    up.commit(
        &[
            ("controlplanes/a.yaml", &wrong_group),
            ("controlplanes/b.yaml", &wrong_kind_too),
        ],
        &[],
        "typos",
    );
    let (code, log) = once(&cluster, "typo", &up, &[]);
    assert_ne!(code, 0, "a typo is a failure: {log}");
    assert!(exists(&cluster, "ty-a").await, "ty-a pruned: {log}");
    assert!(exists(&cluster, "ty-b").await, "ty-b pruned: {log}");
    let st = status(&cluster, "typo").await;
    let a = st
        .errors
        .iter()
        .find(|e| e.path == "controlplanes/a.yaml")
        .unwrap_or_else(|| panic!("no error for a.yaml: {:?}", st.errors));
    assert_eq!((a.line, a.column), (1, 13), "{a:?}");
    assert!(a.message.contains("tenancy.kflex.kubestellar.io"), "{a:?}");
    assert!(
        st.errors.iter().any(|e| e.path == "controlplanes/b.yaml"),
        "{:?}",
        st.errors
    );
    // The log names the position too.
    assert!(log.contains("controlplanes/a.yaml:1:13"), "{log}");
}

/// Items 2 and 12: a rename whose new object the API server refuses keeps
/// the old one, lists the deferred prune with its reason, and the error
/// carries the file's position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_whose_new_object_fails_to_apply_prunes_nothing() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[
        ("controlplanes/a.yaml", &cp("rn-old")),
        ("controlplanes/keep.yaml", &cp("rn-keep")),
        ("controlplanes/z.yaml", &cp("rn-z")),
    ]);
    let (code, log) = once(&cluster, "rename", &up, &[]);
    assert_eq!(code, 0, "{log}");
    // Another source already owns the new name.
    let mut taken = DynamicObject::new(
        "rn-new",
        &ApiResource::erase::<kubeflex_operator::api::ControlPlane>(&()),
    );
    taken.metadata.labels = Some(
        [(
            "gitops.kflex.kubestellar.org/source".to_owned(),
            "other".to_owned(),
        )]
        .into(),
    );
    taken.data = serde_json::json!({"spec": {"type": "k8s"}});
    cluster
        .cps()
        .create(&PostParams::default(), &taken)
        .await
        .unwrap();
    let before = status(&cluster, "rename").await.last_applied_commit;
    let commit = up.commit(
        &[(
            "controlplanes/a.yaml",
            &format!("# renamed\n{}", cp("rn-new")),
        )],
        &[],
        "rename old to new",
    );
    let (code, log) = once(&cluster, "rename", &up, &[]);
    assert_ne!(code, 0, "{log}");
    assert!(
        exists(&cluster, "rn-old").await,
        "the old half was pruned: {log}"
    );
    let st = status(&cluster, "rename").await;
    let blocked = st
        .blocked_prunes
        .iter()
        .find(|b| b.name == "rn-old")
        .unwrap_or_else(|| panic!("no blocked prune: {st:?}"));
    assert_eq!(blocked.kind, "ControlPlane");
    assert!(blocked.reason.contains("apply"), "{blocked:?}");
    let err = st
        .errors
        .iter()
        .find(|e| e.path == "controlplanes/a.yaml")
        .unwrap_or_else(|| panic!("no error: {:?}", st.errors));
    assert_eq!((err.line, err.column), (2, 1), "{err:?}");
    assert!(
        err.message.starts_with("controlplanes/a.yaml:2:1: "),
        "{err:?}"
    );
    // Item 12: the commit was attempted, not applied.
    assert_eq!(st.last_attempted_commit.as_deref(), Some(commit.as_str()));
    assert_eq!(st.last_applied_commit, before);

    // The API server itself refusing the new object (a stricter CRD).
    cluster
        .cps()
        .delete("rn-new", &Default::default())
        .await
        .unwrap();
    // The stricter CRD is a cluster admin's change, not the reconciler's.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(cluster.admin.clone());
    let mut crd = crds
        .get("controlplanes.tenancy.kflex.kubestellar.org")
        .await
        .unwrap();
    let schema = crd.spec.versions[0]
        .schema
        .as_mut()
        .unwrap()
        .open_api_v3_schema
        .as_mut()
        .unwrap();
    let spec = schema.properties.as_mut().unwrap().get_mut("spec").unwrap();
    spec.x_kubernetes_validations = Some(vec![
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
            rule: "self.type != 'k3s'".to_owned(),
            message: Some("k3s is not allowed here".to_owned()),
            ..Default::default()
        },
    ]);
    crd.metadata.managed_fields = None;
    crds.replace(
        &crd.metadata.name.clone().unwrap(),
        &PostParams::default(),
        &crd,
    )
    .await
    .unwrap();
    up.commit(
        &[(
            "controlplanes/a.yaml",
            &format!("# renamed\n{}", cp("rn-new")).replace("type: k8s", "type: k3s"),
        )],
        &[],
        "rename to a refused type",
    );
    let (code, log) = once(&cluster, "rename", &up, &[]);
    assert_ne!(code, 0, "{log}");
    assert!(
        exists(&cluster, "rn-old").await,
        "pruned after a refusal: {log}"
    );
    let st = status(&cluster, "rename").await;
    let err = st
        .errors
        .iter()
        .find(|e| e.path == "controlplanes/a.yaml")
        .unwrap_or_else(|| panic!("no error: {:?}", st.errors));
    assert_eq!(err.line, 2, "{err:?}");
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "ApplyFailed", "{ready:?}");
}

/// Item 3: `--max-prune 0`, per-kind budgets, `--allow-empty` and a
/// changed `--path`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_guards_mean_what_they_say() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[
        ("controlplanes/a.yaml", &cp("g-a")),
        ("controlplanes/b.yaml", &cp("g-b")),
        ("controlplanes/c.yaml", &cp("g-c")),
        ("hooks/h.yaml", &HOOK.replace("NAME", "g-h")),
    ]);
    let name = "guards";
    let hooks: Api<DynamicObject> = Api::all_with(
        cluster.client.clone(),
        &ApiResource::erase::<PostCreateHook>(&()),
    );
    let (code, log) = once(&cluster, name, &up, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(hooks.get_opt("g-h").await.unwrap().is_some());

    // `--max-prune 0`: nothing without --force-prune.
    up.commit(&[], &["controlplanes/a.yaml"], "remove a");
    let (code, log) = once(&cluster, name, &up, &["--max-prune", "0"]);
    assert_ne!(code, 0, "{log}");
    assert!(exists(&cluster, "g-a").await, "--max-prune 0 pruned: {log}");
    let (code, log) = once(&cluster, name, &up, &["--max-prune", "0", "--force-prune"]);
    assert_eq!(code, 0, "{log}");
    assert!(!exists(&cluster, "g-a").await);

    // One ControlPlane and one hook, with a budget of one: each kind has
    // its own.
    up.commit(
        &[],
        &["controlplanes/b.yaml", "hooks/h.yaml"],
        "remove b and h",
    );
    let (code, log) = once(&cluster, name, &up, &["--max-prune", "1"]);
    assert_eq!(code, 0, "{log}");
    assert!(!exists(&cluster, "g-b").await, "{log}");
    assert!(hooks.get_opt("g-h").await.unwrap().is_none(), "{log}");

    // The last ControlPlane: refused even when forced, unless --allow-empty.
    up.write(&[("controlplanes/d.yaml", &cp("g-d"))]);
    up.commit(&[], &[], "add d");
    let (code, log) = once(&cluster, name, &up, &[]);
    assert_eq!(code, 0, "{log}");
    up.commit(
        &[("controlplanes/README.yaml", "# nothing here\n")],
        &["controlplanes/c.yaml", "controlplanes/d.yaml"],
        "empty",
    );
    let (code, log) = once(&cluster, name, &up, &["--force-prune"]);
    assert_ne!(code, 0, "{log}");
    assert!(
        exists(&cluster, "g-c").await && exists(&cluster, "g-d").await,
        "{log}"
    );
    let st = status(&cluster, name).await;
    assert!(
        st.blocked_prunes
            .iter()
            .all(|b| b.reason.contains("every ControlPlane")),
        "{st:?}"
    );
    up.commit(
        &[
            ("controlplanes/c.yaml", &cp("g-c")),
            ("tenants/d.yaml", &cp("g-d")),
        ],
        &[],
        "back, d in a second directory",
    );
    let (code, log) = once(&cluster, name, &up, &[]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        status(&cluster, name).await.path.as_deref(),
        Some(""),
        "the status records the path"
    );

    // A changed --path: nothing pruned until confirmed.
    let (code, log) = once(&cluster, name, &up, &["--path", "tenants"]);
    assert_ne!(code, 0, "{log}");
    assert!(
        exists(&cluster, "g-c").await,
        "pruned after a --path change: {log}"
    );
    let st = status(&cluster, name).await;
    assert!(
        st.blocked_prunes
            .iter()
            .any(|b| b.name == "g-c" && b.reason.contains("source changed")),
        "{st:?}"
    );
    assert_eq!(st.path.as_deref(), Some(""), "not confirmed yet");
    let (code, log) = once(&cluster, name, &up, &["--path", "tenants", "--force-prune"]);
    assert_eq!(code, 0, "{log}");
    assert!(!exists(&cluster, "g-c").await, "{log}");
    assert_eq!(
        status(&cluster, name).await.path.as_deref(),
        Some("tenants")
    );
}

/// Item 12: `lastAppliedCommit` stays while a file of the new commit is
/// broken (`lastAttemptedCommit` moves), and hooks are applied before the
/// ControlPlanes that use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_never_claims_more_than_happened() {
    let cluster = Cluster::start().await;
    let user = format!("{}  postCreateHook: st-hook\n", cp("st-cp"));
    let up = Upstream::new(&[
        ("a-controlplane.yaml", &user),
        ("z-hook.yaml", &HOOK.replace("NAME", "st-hook")),
    ]);
    let first = git_head(&up);
    let (code, log) = once(&cluster, "status", &up, &[]);
    assert_eq!(code, 0, "{log}");
    let hooks: Api<DynamicObject> = Api::all_with(
        cluster.client.clone(),
        &ApiResource::erase::<PostCreateHook>(&()),
    );
    let hook = hooks.get("st-hook").await.unwrap();
    let cp_obj = cluster.cp("st-cp").await.unwrap();
    let rv = |o: &DynamicObject| {
        o.metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&hook) < rv(&cp_obj),
        "the hook must exist before the ControlPlane that uses it"
    );
    let st = status(&cluster, "status").await;
    assert_eq!(st.last_applied_commit.as_deref(), Some(first.as_str()));

    let second = up.commit(&[("b.yaml", "kind: [broken\n")], &[], "broken file");
    let (code, log) = once(&cluster, "status", &up, &[]);
    assert_ne!(code, 0, "{log}");
    let st = status(&cluster, "status").await;
    assert_eq!(st.last_attempted_commit.as_deref(), Some(second.as_str()));
    assert_eq!(
        st.last_applied_commit.as_deref(),
        Some(first.as_str()),
        "a commit with a broken file is not applied"
    );
    assert_eq!(st.counts.failed, 1, "the broken file counts: {st:?}");
}

fn git_head(up: &Upstream) -> String {
    support::git(&up.work(), &["rev-parse", "HEAD"])
}

/// Item 7: a token in the URL is used, and appears in no log line, no
/// object, no status, no event, also when fetching fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_never_show() {
    const TOKEN: &str = "ghp_S3cretT0kenValue";
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("cred-a"))]);
    let daemon = GitDaemon::start(&up.repos());
    let url = daemon
        .url()
        .replace("git://", &format!("git://x-access-token:{TOKEN}@"));
    let mut cmd = reconciler_command(&cluster, "cred");
    cmd.args(["--git-url", &url, "--interval", "1s"])
        .arg("--cache-dir")
        .arg(up.cache());
    let reconciler = LoggedReconciler::spawn(cmd);
    eventually("applied", || async { exists(&cluster, "cred-a").await }).await;
    drop(daemon);
    eventually("the failed fetch is reported", || async {
        cluster.sync("cred").await.is_some_and(|s| {
            s.status.is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == "FetchFailed")
            })
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut outputs = vec![("log", reconciler.log())];
    let sync = cluster.sync("cred").await.unwrap();
    outputs.push(("Sync", serde_json::to_string(&sync).unwrap()));
    let cp_obj = cluster.cp("cred-a").await.unwrap();
    outputs.push(("ControlPlane", serde_json::to_string(&cp_obj).unwrap()));
    // Every Event in the cluster, read as an admin (the reconciler may not list them all).
    let events: Api<CoreEvent> = Api::all(cluster.admin.clone());
    let list = events.list(&ListParams::default()).await.unwrap();
    outputs.push(("Events", serde_json::to_string(&list).unwrap()));
    for (what, text) in &outputs {
        assert!(
            !text.contains(TOKEN),
            "the token shows in the {what}: {text}"
        );
    }
    assert!(
        serde_json::to_string(&sync.spec)
            .unwrap()
            .contains("127.0.0.1"),
        "the URL itself is still shown"
    );
}

/// A library-driven reconciler over any source, pass by pass.
struct Lib {
    reconciler: kubeflex_reconciler::reconcile::Reconciler,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Lib {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn lib(
    cluster: &Cluster,
    name: &str,
    source: std::sync::Arc<dyn kubeflex_reconciler::source::Source>,
    url: &str,
) -> Lib {
    let apis = kubeflex_reconciler::apply::Cluster::new(cluster.client.clone());
    let kubeflex_reconciler::watch::Watched {
        inventory, tasks, ..
    } = kubeflex_reconciler::watch::start_inventory(&apis, name)
        .await
        .unwrap();
    let settings = kubeflex_reconciler::reconcile::Settings {
        name: name.to_owned(),
        url: url.to_owned(),
        reference: None,
        path: String::new(),
        prune: Default::default(),
        interval: Duration::from_secs(3600),
        ..kubeflex_reconciler::reconcile::Settings::new(name, url)
    };
    let mut reconciler = kubeflex_reconciler::reconcile::Reconciler::new(
        settings,
        source,
        apis,
        inventory,
        std::sync::Arc::new(kubeflex_reconciler::metrics::Metrics::default()),
    );
    reconciler.init_status().await;
    Lib { reconciler, tasks }
}

/// Item 4: Git and directory mode read the same files: dot-directories and
/// dot-files are skipped, and so is what `.kflexignore` and `--exclude`
/// match; a CI workflow no longer blocks every prune.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sources_skip_dot_paths_ignored_and_excluded_files() {
    let cluster = Cluster::start().await;
    let files: Vec<(&str, String)> = vec![
        ("controlplanes/a.yaml", cp("sk-a")),
        ("controlplanes/b.yaml", cp("sk-b")),
        ("controlplanes/c.yaml", cp("sk-c")),
        (
            ".github/workflows/ci.yml",
            "on: push\njobs: {}\n".to_owned(),
        ),
        ("controlplanes/.draft.yaml", "kind: [broken\n".to_owned()),
        (".kflexignore", "# not manifests\ndrafts/\n".to_owned()),
        ("drafts/x.yaml", "kind: [broken\n".to_owned()),
        ("legacy/old.yaml", "kind: [broken\n".to_owned()),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let up = Upstream::new(&refs);
    let exclude = ["--exclude", "legacy/**"];
    let (code, log) = once(&cluster, "skipgit", &up, &exclude);
    assert_eq!(code, 0, "Git mode read a skipped file: {log}");
    up.commit(&[], &["controlplanes/b.yaml"], "remove b");
    let (code, log) = once(&cluster, "skipgit", &up, &exclude);
    assert_eq!(code, 0, "{log}");
    assert!(!exists(&cluster, "sk-b").await, "b must be pruned: {log}");

    // Directory mode, on the work tree (with its `.git/`), the same way.
    let mut cmd = reconciler_command(&cluster, "skipdir");
    cmd.arg("--dir")
        .arg(up.work())
        .args(["--once", "--exclude", "legacy/**"])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("drafts/x.yaml") && !log.contains(".draft.yaml") && !log.contains("legacy/"),
        "{log}"
    );
    // sk-a and sk-c belong to the Git source: directory mode refuses them
    // (one source per object), and says which.
    assert!(log.contains("managed by source \"skipgit\""), "{log}");
}

/// A directory source whose first listing is caught in the middle of a
/// checkout: it is taken after `b.yaml` left and before its new place,
/// `moved/b.yaml`, is written (the checkout goes on right after).
struct MidCheckout {
    dir: kubeflex_reconciler::source::DirSource,
    root: std::path::PathBuf,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

struct MidSnapshot {
    inner: Box<dyn kubeflex_reconciler::source::Snapshot>,
    root: std::path::PathBuf,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl kubeflex_reconciler::source::Snapshot for MidSnapshot {
    fn revision(&self) -> &str {
        self.inner.revision()
    }

    fn list(
        &self,
    ) -> Result<kubeflex_reconciler::source::Listing, kubeflex_reconciler::source::SourceError>
    {
        let listing = self.inner.list()?;
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::fs::create_dir_all(self.root.join("moved")).unwrap();
            std::fs::write(self.root.join("moved/b.yaml"), cp("mc-b")).unwrap();
        }
        Ok(listing)
    }

    fn read(
        &self,
        path: &str,
        max: u64,
    ) -> Result<Vec<u8>, kubeflex_reconciler::source::ReadError> {
        self.inner.read(path, max)
    }
}

impl kubeflex_reconciler::source::Source for MidCheckout {
    fn poll(
        &self,
        last: Option<&str>,
    ) -> Result<kubeflex_reconciler::source::Update, kubeflex_reconciler::source::SourceError> {
        let mut update = self.dir.poll(last)?;
        update.snapshot = Box::new(MidSnapshot {
            inner: update.snapshot,
            root: self.root.clone(),
            done: self.done.clone(),
        });
        Ok(update)
    }

    fn settled(&self, revision: &str) -> bool {
        self.dir.settled(revision)
    }
}

/// Item 5: a directory caught half-way through a checkout prunes nothing;
/// the next pass, on the settled directory, finds the object moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_caught_half_way_prunes_nothing() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    for n in ["a", "b", "c"] {
        std::fs::write(root.join(format!("{n}.yaml")), cp(&format!("mc-{n}"))).unwrap();
    }
    let plain = kubeflex_reconciler::source::DirSource::new(&root, "").unwrap();
    let url = root.display().to_string();
    {
        let mut first = lib(&cluster, "midco", std::sync::Arc::new(plain.clone()), &url).await;
        let outcome = first.reconciler.pass().await.unwrap();
        assert_eq!(outcome.counts.applied, 3);
    }
    // The checkout starts: b.yaml is gone, moved/b.yaml not yet written.
    std::fs::remove_file(root.join("b.yaml")).unwrap();
    let source = MidCheckout {
        dir: plain,
        root: root.clone(),
        done: Default::default(),
    };
    let mut h = lib(&cluster, "midco", std::sync::Arc::new(source), &url).await;
    let outcome = h.reconciler.pass().await.unwrap();
    assert_eq!(outcome.counts.pruned, 0, "{outcome:?}");
    assert!(exists(&cluster, "mc-b").await, "pruned mid-checkout");
    assert!(outcome.prune_blocked.is_some(), "{outcome:?}");
    let outcome = h.reconciler.pass().await.unwrap();
    assert_eq!(outcome.counts.pruned, 0, "{outcome:?}");
    assert!(outcome.prune_blocked.is_none(), "{outcome:?}");
    let obj = cluster.cp("mc-b").await.unwrap();
    assert_eq!(
        obj.metadata.annotations.unwrap()["gitops.kflex.kubestellar.org/path"],
        "moved/b.yaml"
    );
}

/// Item 13: in watch mode a broken file is logged once, at WARN, with its
/// position and message, and the pass counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_mode_logs_each_problem_once_with_its_position() {
    let cluster = Cluster::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("a.yaml"), cp("lg-a")).unwrap();
    let mut cmd = reconciler_command(&cluster, "logonce");
    cmd.arg("--dir").arg(root).arg("--watch");
    let r = LoggedReconciler::spawn(cmd);
    eventually("a applied", || async { exists(&cluster, "lg-a").await }).await;
    std::fs::write(
        root.join("broken.yaml"),
        cp("lg-b").replace("type: k8s", "type: [k8s"),
    )
    .unwrap();
    eventually("the problem is logged", || async {
        r.logged("WARN") && r.logged("broken.yaml:6:")
    })
    .await;
    // More passes while it lasts.
    std::fs::write(root.join("c.yaml"), cp("lg-c")).unwrap();
    eventually("c applied", || async { exists(&cluster, "lg-c").await }).await;
    std::fs::write(root.join("d.yaml"), cp("lg-d")).unwrap();
    eventually("d applied", || async { exists(&cluster, "lg-d").await }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = r.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("broken.yaml:6:"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once: {log}");
    assert!(lines[0].contains("WARN"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("pass done") && l.contains("failed=1")),
        "the pass counts the broken file: {log}"
    );
}

/// Item 6: a ControlPlane copied with `kubectl get -o yaml` (source label,
/// annotations and all) under another name is not ours: never pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_label_does_not_make_an_object_ours() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[
        ("controlplanes/a.yaml", &cp("cp-a")),
        ("controlplanes/b.yaml", &cp("cp-b")),
    ]);
    let (code, log) = once(&cluster, "copies", &up, &[]);
    assert_eq!(code, 0, "{log}");
    let original = cluster.cp("cp-a").await.unwrap();
    let mut copy = DynamicObject::new(
        "cp-a-copy",
        &ApiResource::erase::<kubeflex_operator::api::ControlPlane>(&()),
    );
    copy.metadata.labels = original.metadata.labels.clone();
    copy.metadata.annotations = original.metadata.annotations.clone();
    copy.data = serde_json::json!({"spec": original.data["spec"].clone()});
    cluster
        .cps()
        .create(&PostParams::default(), &copy)
        .await
        .unwrap();
    // A full pass (a new process) and an incremental one.
    let (code, log) = once(&cluster, "copies", &up, &[]);
    assert_eq!(code, 0, "{log}");
    up.commit(&[("controlplanes/c.yaml", &cp("cp-c"))], &[], "add c");
    let (code, log) = once(&cluster, "copies", &up, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(
        exists(&cluster, "cp-a-copy").await,
        "the copy was pruned: {log}"
    );
    assert!(exists(&cluster, "cp-c").await);
}

/// Upgrades: objects and a `Sync` as the previous version wrote them
/// (fixtures/v0) are adopted: nothing pruned, at most one write per object
/// (the tracking id), the applied commit kept, and no writes after that.
/// A kubectl copy of such an object (the source label, no tracking id, not
/// applied by the reconciler's field manager) is neither adopted nor pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_adopts_what_the_previous_version_wrote() {
    use futures::StreamExt;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::watcher::{self, Event};

    let cluster = Cluster::start().await;
    let names = ["up-a", "up-b"];
    let files: Vec<(String, String)> = names
        .iter()
        .map(|n| (format!("controlplanes/{n}.yaml"), cp(n)))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let up = Upstream::new(&refs);
    let commit = git_head(&up);
    let url = up.file_url();
    let fixture = |file: &str, name: &str| -> serde_json::Value {
        let path = format!("{}/tests/fixtures/v0/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("NAME", name)
            .replace("SOURCE", "upgrade")
            .replace("URL", &url)
            .replace("COMMIT", &commit);
        serde_saphyr::from_str(&text).unwrap()
    };
    let old = PatchParams::apply("kubeflex-reconciler").force();
    for n in names {
        cluster
            .cps()
            .patch(n, &old, &Patch::Apply(fixture("controlplane.yaml", n)))
            .await
            .unwrap();
    }
    // A copy of a legacy object made by a person with kubectl, label,
    // annotations and managedFields and all: no tracking id, like the
    // legacy objects, but not applied by the reconciler. Git does not
    // define it: were it taken for ours, it would be pruned.
    let out = cluster.kubectl_admin(&[
        "get",
        "controlplane",
        "up-a",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut copy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let meta = copy["metadata"].as_object_mut().unwrap();
    meta.insert("name".into(), "up-a-copy".into());
    for field in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
        meta.remove(field);
    }
    assert!(meta.contains_key("managedFields"));
    let copy_file = cluster.dir.path().join("copy.json");
    std::fs::write(&copy_file, copy.to_string()).unwrap();
    let out = cluster.kubectl_admin(&["create", "-f", copy_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sync = fixture("sync.yaml", "");
    let syncs: Api<kubeflex_operator::api::Sync> = Api::all(cluster.client.clone());
    let mut spec_only = sync.clone();
    spec_only.as_object_mut().unwrap().remove("status");
    syncs
        .patch("upgrade", &old, &Patch::Apply(spec_only))
        .await
        .unwrap();
    syncs
        .patch_status("upgrade", &old, &Patch::Apply(sync))
        .await
        .unwrap();

    // Every write and delete from here on.
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = writes.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let stream = watcher::watcher(cluster.cps(), watcher::Config::default());
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::InitDone) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Apply(o)) => sink.lock().unwrap().push(o.metadata.name.unwrap()),
                Ok(Event::Delete(o)) => sink
                    .lock()
                    .unwrap()
                    .push(format!("deleted {}", o.metadata.name.unwrap())),
                _ => {}
            }
        }
    });
    ready_rx.await.unwrap();

    let (code, log) = once(&cluster, "upgrade", &up, &[]);
    assert_eq!(code, 0, "{log}");
    let (code, log) = once(&cluster, "upgrade", &up, &[]);
    assert_eq!(code, 0, "{log}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    task.abort();
    let writes = writes.lock().unwrap().clone();
    assert!(
        !writes.iter().any(|w| w.starts_with("deleted")),
        "{writes:?}"
    );
    for n in names {
        let count = writes.iter().filter(|w| *w == n).count();
        // Exactly one: the tracking id (so the watch did see writes).
        assert_eq!(count, 1, "{n} written {count} times: {writes:?}");
        assert!(exists(&cluster, n).await);
    }
    // The copy: neither adopted (no write) nor pruned.
    assert!(!writes.iter().any(|w| w == "up-a-copy"), "{writes:?}");
    let copy = cluster.cp("up-a-copy").await.expect("the copy was pruned");
    let annotations = copy.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("gitops.kflex.kubestellar.org/tracking-id"),
        "{annotations:?}"
    );
    let st = status(&cluster, "upgrade").await;
    assert_eq!(st.last_applied_commit.as_deref(), Some(commit.as_str()));
    assert!(st.blocked_prunes.is_empty(), "{st:?}");
    assert_eq!(st.path.as_deref(), Some(""));
}

/// Item 14: a repository over the caps is refused with a message, and
/// nothing is applied or pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_over_the_caps_is_refused() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[
        ("controlplanes/a.yaml", &cp("cap-a")),
        ("controlplanes/b.yaml", &cp("cap-b")),
    ]);
    let (code, log) = once(&cluster, "caps", &up, &[]);
    assert_eq!(code, 0, "{log}");
    up.commit(
        &[("controlplanes/c.yaml", &cp("cap-c"))],
        &["controlplanes/b.yaml"],
        "c replaces b",
    );
    let (code, log) = once(&cluster, "caps", &up, &["--max-files", "1"]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("--max-files"), "{log}");
    let (code, log) = once(&cluster, "caps", &up, &["--max-bytes", "100"]);
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("--max-bytes"), "{log}");
    assert!(exists(&cluster, "cap-b").await && !exists(&cluster, "cap-c").await);
    let st = status(&cluster, "caps").await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "SourceTooLarge", "{ready:?}");
    let (code, log) = once(&cluster, "caps", &up, &[]);
    assert_eq!(code, 0, "{log}");
    assert!(!exists(&cluster, "cap-b").await && exists(&cluster, "cap-c").await);
}

/// Item 11: a correction that failed (the API server refused it) is
/// retried, and `--drift-interval` compares everything even without
/// commits or events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_whose_correction_failed_is_corrected_later() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinition, ValidationRule,
    };
    use kube::api::{Patch, PatchParams};
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[(
        "controlplanes/a.yaml",
        &support::cp_with_vars("dr-a", "    x: \"1\"\n"),
    )]);
    let mut cmd = reconciler_command(&cluster, "drift");
    cmd.args(["--git-url", &up.file_url(), "--interval", "1h"])
        .args(["--drift-interval", "2s"])
        .arg("--cache-dir")
        .arg(up.cache());
    let r = LoggedReconciler::spawn(cmd);
    let has_vars = |o: &DynamicObject| o.data["spec"]["globalVars"]["x"] == "1";
    eventually("applied", || async {
        cluster.cp("dr-a").await.is_some_and(|o| has_vars(&o))
    })
    .await;
    // A stricter CRD refuses what Git says; someone removes the variables.
    // Tightening and relaxing the CRD is a cluster admin's change, not the reconciler's.
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.admin.clone());
    let name = "controlplanes.tenancy.kflex.kubestellar.org";
    let set_rule = |rule: Option<&str>| {
        let crds = crds.clone();
        let rule = rule.map(str::to_owned);
        async move {
            let mut crd = crds.get(name).await.unwrap();
            let spec = crd.spec.versions[0]
                .schema
                .as_mut()
                .unwrap()
                .open_api_v3_schema
                .as_mut()
                .unwrap()
                .properties
                .as_mut()
                .unwrap()
                .get_mut("spec")
                .unwrap();
            spec.x_kubernetes_validations = rule.map(|rule| {
                vec![ValidationRule {
                    rule,
                    message: Some("no globalVars here".to_owned()),
                    ..Default::default()
                }]
            });
            crd.metadata.managed_fields = None;
            crds.replace(name, &PostParams::default(), &crd)
                .await
                .unwrap();
        }
    };
    set_rule(Some("!has(self.globalVars)")).await;
    cluster
        .cps()
        .patch(
            "dr-a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"globalVars": null}})),
        )
        .await
        .unwrap();
    eventually("the correction fails", || async {
        r.logged("correcting drift failed")
    })
    .await;
    assert!(!has_vars(&cluster.cp("dr-a").await.unwrap()));
    // The rule goes; no commit, no event on the object: the retry or the
    // periodic comparison puts it back.
    set_rule(None).await;
    eventually("corrected without a commit", || async {
        cluster.cp("dr-a").await.is_some_and(|o| has_vars(&o))
    })
    .await;
}

/// Item 9: a holder that cannot renew stops within the renew deadline
/// (10 s after its last renewal), before the 15 s lease lets a standby in;
/// it used to go on until the lease itself ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_renew_stops_before_the_lease_expires() {
    let mut cluster = Cluster::start_durable().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("ls-a"))]);
    let mut cmd = reconciler_command(&cluster, "lease");
    cmd.env(
        "RUST_LOG",
        format!("{},kubeflex_operator::leader=info", support::RECONCILER_LOG),
    )
    .args(["--git-url", &up.file_url(), "--interval", "1s"])
    .arg("--cache-dir")
    .arg(up.cache());
    let mut r = LoggedReconciler::spawn(cmd);
    eventually("applied", || async { exists(&cluster, "ls-a").await }).await;
    assert!(r.logged("lease acquired"), "{}", r.log());
    cluster.stop();
    let stopped = std::time::Instant::now();
    while r.running() {
        assert!(
            stopped.elapsed() < Duration::from_secs(12),
            "still running {:?} after the API server went away: {}",
            stopped.elapsed(),
            r.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(r.logged("renew deadline"), "{}", r.log());
}

/// A raw HTTP/1.1 POST; returns the whole response.
fn post_hook(port: u16, headers: &[(&str, &str)], body: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!(
        "POST /hook HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Item 10: an empty secret is refused at start; GitHub and GitLab have
/// their own secrets; pushes to other refs and redeliveries trigger nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_empty_secrets_other_refs_and_redeliveries() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("wh-a"))]);
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = reconciler_command(&cluster, "hook");
    cmd.args(["--git-url", &up.file_url(), "--webhook-addr", &addr])
        .arg("--webhook-secret-file")
        .arg(&empty)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (gh, gl) = (dir.path().join("gh"), dir.path().join("gl"));
    std::fs::write(&gh, "github-key\n").unwrap();
    std::fs::write(&gl, "gitlab-token\n").unwrap();
    let mut cmd = reconciler_command(&cluster, "hook");
    cmd.args(["--git-url", &up.file_url(), "--ref", "main"])
        .args(["--interval", "1h", "--webhook-addr", &addr])
        .arg("--cache-dir")
        .arg(up.cache())
        .arg("--github-webhook-secret-file")
        .arg(&gh)
        .arg("--gitlab-webhook-secret-file")
        .arg(&gl);
    let r = LoggedReconciler::spawn(cmd);
    eventually("applied", || async { exists(&cluster, "wh-a").await }).await;
    eventually("listening", || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    // The GitLab token is not GitHub's key.
    let resp = post_hook(port, &[("X-Gitlab-Token", "github-key")], "{}");
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    let other = r#"{"ref":"refs/heads/feature"}"#;
    let resp = post_hook(
        port,
        &[
            ("X-Gitlab-Token", "gitlab-token"),
            ("X-Gitlab-Event-UUID", "u1"),
        ],
        other,
    );
    assert!(resp.contains("ignored"), "{resp}");
    let push = r#"{"ref":"refs/heads/main"}"#;
    let sig = kubeflex_reconciler::webhook::github_signature(b"github-key", push.as_bytes());
    let headers = [
        ("X-Hub-Signature-256", sig.as_str()),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "d-1"),
    ];
    let resp = post_hook(port, &headers, push);
    assert!(
        resp.starts_with("HTTP/1.1 202") && resp.contains("fetch triggered"),
        "{resp}"
    );
    let resp = post_hook(port, &headers, push);
    assert!(resp.contains("duplicate delivery"), "{resp}");
    drop(r);
}
