//! `kflex diff` against testenv with the reconciler applying a Git
//! repository: exit 0 when in sync, 1 with a changed field, a prune, a
//! prune over a guard shown as blocked, 2 on error — and nothing written
//! (every resourceVersion unchanged).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gitsupport/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kubeflex_operator::api::ControlPlane;
use support::cluster::Hosting;
use support::{GitDaemon, git, repo};

fn cp(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n  type: host\n{extra}"
    )
}

async fn versions(h: &Hosting) -> BTreeMap<String, String> {
    Api::<ControlPlane>::all(h.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap(),
                c.metadata.resource_version.unwrap(),
            )
        })
        .collect()
}

fn diff(
    h: &Hosting,
    dir: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
) -> (i32, String, String) {
    let out = h.kflex(dir, home).arg("diff").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diff_shows_changes_prunes_and_guards_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let seed = tmp.path().join("seed");
    repo(
        &seed,
        &[
            (
                "controlplanes/a.yaml",
                &cp("a", "  globalVars:\n    greeting: hello\n"),
            ),
            ("controlplanes/b.yaml", &cp("b", "")),
            ("controlplanes/c.yaml", &cp("c", "")),
        ],
    );
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            served.join("t.git").to_str().unwrap(),
        ],
    );
    let daemon = GitDaemon::start(&served);
    let mut hosting = Hosting::start().await;
    hosting
        .reconciler("tenants", &daemon.url("t.git"), Duration::from_secs(3600))
        .await;
    hosting
        .wait_attempted("tenants", &git(&seed, &["rev-parse", "HEAD"]))
        .await;
    // Let the operator settle (finalizers, status) before comparing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let work = seed;

    // In sync: exit 0.
    let before = versions(&hosting).await;
    assert_eq!(before.len(), 3);
    let (code, out, err) = diff(&hosting, &work, &home, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "no changes\n");

    // A changed field and a new object: exit 1, field-level.
    support::write(
        &work,
        &[
            (
                "controlplanes/a.yaml",
                &cp("a", "  globalVars:\n    greeting: bonjour\n"),
            ),
            ("controlplanes/d.yaml", &cp("d", "")),
        ],
    );
    let (code, out, err) = diff(&hosting, &work, &home, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("~ ControlPlane \"a\" (controlplanes/a.yaml):"),
        "{out}"
    );
    assert!(
        out.contains("    spec.globalVars.greeting: hello → bonjour"),
        "{out}"
    );
    assert!(
        out.contains("+ ControlPlane \"d\" (controlplanes/d.yaml): would be created"),
        "{out}"
    );
    let (code, json, _) = diff(&hosting, &work, &home, &["-o", "json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc["update"][0]["fields"][0]["field"],
        "spec.globalVars.greeting"
    );
    assert_eq!(doc["update"][0]["fields"][0]["desired"], "bonjour");
    std::fs::remove_file(work.join("controlplanes/d.yaml")).unwrap();

    // A removed file: the prune is shown.
    std::fs::remove_file(work.join("controlplanes/b.yaml")).unwrap();
    let (code, out, _) = diff(&hosting, &work, &home, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("- ControlPlane \"b\": would be pruned"),
        "{out}"
    );
    // Over the guard: shown as blocked.
    let (code, out, _) = diff(&hosting, &work, &home, &["--max-prune", "0"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("! ControlPlane \"b\": prune blocked: "),
        "{out}"
    );
    assert!(!out.contains("would be pruned"), "{out}");

    // A broken file: exit 2, with its line.
    support::write(&work, &[("controlplanes/c.yaml", &cp("c", "  bogus: 1\n"))]);
    let (code, out, _) = diff(&hosting, &work, &home, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("controlplanes/c.yaml:7:"), "{out}");
    // No such Sync: exit 2.
    let (code, _, err) = diff(&hosting, &work, &home, &["--name", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no Sync named nope"), "{err}");

    // Nothing was written by any of it.
    assert_eq!(versions(&hosting).await, before);
}
