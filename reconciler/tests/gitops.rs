//! End-to-end against testenv and a real `git daemon`: the reconciler
//! library driven pass by pass (so each story step is deterministic), with
//! commits, branches, merges and force pushes made by the git CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kubeflex_reconciler::apply::Cluster as Apis;
use kubeflex_reconciler::metrics::Metrics;
use kubeflex_reconciler::names::{ANNOTATION_COMMIT, ANNOTATION_PATH, LABEL_SOURCE};
use kubeflex_reconciler::plan::PruneOptions;
use kubeflex_reconciler::reconcile::{Outcome, Reconciler, Settings};
use kubeflex_reconciler::source::{GitSource, GitSourceConfig, Source};
use kubeflex_reconciler::watch::ObjectEvent;
use support::{Cluster, GitDaemon, Upstream, cp, cp_with_vars, eventually, git};
use tokio::sync::mpsc;

struct Harness {
    reconciler: Reconciler,
    drift: mpsc::UnboundedReceiver<ObjectEvent>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn harness(cluster: &Cluster, name: &str, url: &str, cache: std::path::PathBuf) -> Harness {
    let mut config = GitSourceConfig::new(url, cache);
    config.path = "controlplanes".to_owned();
    let source: Arc<dyn Source> = Arc::new(GitSource::new(config).unwrap());
    let apis = Apis::new(cluster.client.clone());
    let kubeflex_reconciler::watch::Watched {
        inventory,
        drift,
        tasks,
    } = kubeflex_reconciler::watch::start_inventory(&apis, name)
        .await
        .unwrap();
    let settings = Settings {
        name: name.to_owned(),
        url: url.to_owned(),
        reference: None,
        path: "controlplanes".to_owned(),
        prune: PruneOptions::default(),
        interval: Duration::from_secs(3600),
        ..kubeflex_reconciler::reconcile::Settings::new(name, url)
    };
    let mut reconciler = Reconciler::new(
        settings,
        source,
        apis,
        inventory,
        Arc::new(Metrics::default()),
    );
    reconciler.init_status().await;
    Harness {
        reconciler,
        drift,
        tasks,
    }
}

async fn pass(h: &mut Harness) -> Outcome {
    h.reconciler.pass().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_change_delete_broken_file_and_force_push() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/keep.yaml", &cp("gs-keep"))]);
    let daemon = GitDaemon::start(&up.repos());
    let mut h = harness(&cluster, "gs", &daemon.url(), up.cache()).await;
    let first = pass(&mut h).await;
    assert_eq!(first.counts.applied, 1);

    // A "pull request": a branch adding a ControlPlane, merged into main.
    let work = up.work();
    git(&work, &["checkout", "-q", "-b", "add-tenant"]);
    up.write(&[("controlplanes/tenant.yaml", &cp("gs-tenant"))]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "add tenant"]);
    git(&work, &["checkout", "-q", "main"]);
    git(
        &work,
        &[
            "merge",
            "-q",
            "--no-ff",
            "-m",
            "Merge pull request #1",
            "add-tenant",
        ],
    );
    git(&work, &["push", "-q", "origin", "main"]);
    let merged = git(&work, &["rev-parse", "HEAD"]);
    let outcome = pass(&mut h).await;
    assert_eq!((outcome.files_read, outcome.writes), (1, 1));
    let obj = cluster.cp("gs-tenant").await.expect("created by the merge");
    let meta = &obj.metadata;
    assert_eq!(meta.labels.as_ref().unwrap()[LABEL_SOURCE], "gs");
    let ann = meta.annotations.as_ref().unwrap();
    assert_eq!(ann[ANNOTATION_PATH], "controlplanes/tenant.yaml");
    assert_eq!(ann[ANNOTATION_COMMIT], merged);
    let status = cluster.sync("gs").await.unwrap().status.unwrap();
    assert_eq!(status.last_applied_commit.as_deref(), Some(merged.as_str()));
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");

    // Nothing new: no writes, no status write (resourceVersion stays).
    let rv = cluster.sync("gs").await.unwrap().metadata.resource_version;
    let idle = pass(&mut h).await;
    assert!(idle.idle);
    assert_eq!(
        cluster.sync("gs").await.unwrap().metadata.resource_version,
        rv
    );

    // A later commit changes it: one file read, one write.
    up.commit(
        &[(
            "controlplanes/tenant.yaml",
            &cp_with_vars("gs-tenant", "    size: large\n"),
        )],
        &[],
        "resize",
    );
    let outcome = pass(&mut h).await;
    assert_eq!((outcome.files_read, outcome.writes), (1, 1));
    let obj = cluster.cp("gs-tenant").await.unwrap();
    assert_eq!(obj.data["spec"]["globalVars"]["size"], "large");

    // One broken file: the other is applied, nothing is pruned.
    up.commit(
        &[
            ("controlplanes/broken.yaml", "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: gs-broken\nspec:\n  type: [k8s\n"),
            ("controlplanes/other.yaml", &cp("gs-other")),
        ],
        &["controlplanes/keep.yaml"],
        "one broken file",
    );
    let outcome = pass(&mut h).await;
    assert!(outcome.validation_errors > 0);
    assert!(cluster.cp("gs-other").await.is_some());
    assert!(
        cluster.cp("gs-keep").await.is_some(),
        "nothing pruned while a file is broken"
    );
    let status = cluster.sync("gs").await.unwrap().status.unwrap();
    assert!(
        status
            .errors
            .iter()
            .any(|e| e.path == "controlplanes/broken.yaml" && e.line == 6),
        "{:?}",
        status.errors
    );
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(stalled.status, "True");

    // Fixing the file lets the prune of keep.yaml's object happen.
    up.commit(&[], &["controlplanes/broken.yaml"], "drop broken");
    let outcome = pass(&mut h).await;
    assert_eq!(outcome.validation_errors, 0, "{outcome:?}");
    // keep.yaml was deleted two commits ago; its prune was put off while a
    // file was broken and happens now.
    eventually("gs-keep pruned", || async {
        cluster.cp("gs-keep").await.is_none()
    })
    .await;

    // A commit deleting the file prunes its object.
    up.commit(&[], &["controlplanes/other.yaml"], "remove other");
    let outcome = pass(&mut h).await;
    assert_eq!(outcome.counts.pruned, 1);
    assert!(cluster.cp("gs-other").await.is_none());

    // A force push (history rewritten) is followed with a full pass.
    git(&work, &["reset", "-q", "--hard", &merged]);
    up.write(&[(
        "controlplanes/tenant.yaml",
        &cp_with_vars("gs-tenant", "    size: small\n"),
    )]);
    git(&work, &["commit", "-q", "-am", "rewritten"]);
    git(&work, &["push", "-q", "-f", "origin", "main"]);
    let rewritten = git(&work, &["rev-parse", "HEAD"]);
    let outcome = pass(&mut h).await;
    assert_eq!(outcome.revision, rewritten);
    let obj = cluster.cp("gs-tenant").await.unwrap();
    assert_eq!(obj.data["spec"]["globalVars"]["size"], "small");
    // keep.yaml is back in the rewritten history.
    assert!(cluster.cp("gs-keep").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_and_suspend_is_honoured() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[(
        "controlplanes/d.yaml",
        &cp_with_vars("dr-a", "    a: \"1\"\n"),
    )]);
    let mut h = harness(&cluster, "dr", &up.file_url(), up.cache()).await;
    pass(&mut h).await;
    let cps = cluster.cps();

    // A map key added by hand (another field manager) and a changed value.
    let patch = serde_json::json!({"spec": {"globalVars": {"a": "2", "extra": "x"}}});
    cps.patch(
        "dr-a",
        &PatchParams {
            field_manager: Some("kubectl-patch".into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = h.drift.recv().await.unwrap();
            if h.reconciler.correct_drift(e).await.unwrap() {
                break;
            }
        }
    });
    event.await.unwrap();
    let obj = cluster.cp("dr-a").await.unwrap();
    assert_eq!(
        obj.data["spec"]["globalVars"],
        serde_json::json!({"a": "1"})
    );
    // Labels others add are left alone.
    let labels = serde_json::json!({"metadata": {"labels": {"added-by": "operator"}}});
    cps.patch("dr-a", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();

    // Deleted by hand: recreated.
    cps.delete("dr-a", &Default::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = h.drift.recv().await.unwrap();
            if matches!(e, ObjectEvent::Deleted(_)) && h.reconciler.correct_drift(e).await.unwrap()
            {
                break;
            }
        }
    })
    .await
    .unwrap();
    assert!(cluster.cp("dr-a").await.is_some());

    // Suspended: drift stays.
    let suspend = serde_json::json!({"metadata": {"annotations": {"gitops.kflex.kubestellar.org/reconcile": "disabled"}}, "spec": {"globalVars": {"b": "x"}}});
    cps.patch("dr-a", &PatchParams::default(), &Patch::Merge(&suspend))
        .await
        .unwrap();
    let mut wrote = false;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(e) = h.drift.recv().await {
            wrote |= h.reconciler.correct_drift(e).await.unwrap();
        }
    })
    .await;
    assert!(!wrote);
    let obj = cluster.cp("dr-a").await.unwrap();
    assert_eq!(obj.data["spec"]["globalVars"]["b"], "x");
}
