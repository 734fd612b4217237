//! The Git source against real repositories: commits and pushes are made by
//! the git CLI (gix cannot push), fetched over `file://` and over `git://`
//! from a `git daemon` started by the test.

// clippy.toml allows unwrap in #[test] functions only; the helpers below are
// test code too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;

use kubeflex_reconciler::source::{
    Change, ChangeKind, Changes, GitSource, GitSourceConfig, ReadError, Source, SourceError,
    Update, poll_blocking,
};
use kubeflex_reconciler::validate::{Options, Selection, validate};
use support::{GitDaemon, git};

const CP: &str = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: NAME
spec:
  type: k8s
";

fn cp(name: &str) -> String {
    CP.replace("NAME", name)
}

/// A bare "remote" repository under `repos/demo.git` and a work tree cloned
/// from it, where commits are made and pushed.
struct Upstream {
    tmp: tempfile::TempDir,
}

impl Upstream {
    fn new(files: &[(&str, &str)]) -> Self {
        let up = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(up.repos()).unwrap();
        git(&up.repos(), &["init", "--bare", "-q", "demo.git"]);
        git(up.tmp.path(), &["clone", "-q", &up.file_url(), "work"]);
        up.commit(files, &[], "initial");
        up
    }

    fn repos(&self) -> PathBuf {
        self.tmp.path().join("repos")
    }

    fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.tmp.path().join("cache").join(name)
    }

    fn file_url(&self) -> String {
        format!("file://{}/demo.git", self.repos().display())
    }

    /// Writes `files`, removes `removed`, commits and pushes; returns the commit id.
    fn commit(&self, files: &[(&str, &str)], removed: &[&str], message: &str) -> String {
        let work = self.work();
        for (path, text) in files {
            let full = work.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        for path in removed {
            git(&work, &["rm", "-q", path]);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", message]);
        // The current branch, to the branch of the same name.
        git(&work, &["push", "-q", "origin", "HEAD"]);
        git(&work, &["rev-parse", "HEAD"])
    }

    /// Rewrites the last commit and force-pushes it.
    fn amend_and_force_push(&self, files: &[(&str, &str)]) -> String {
        let work = self.work();
        for (path, text) in files {
            std::fs::write(work.join(path), text).unwrap();
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "--amend", "-m", "rewritten"]);
        git(&work, &["push", "-q", "-f", "origin", "HEAD"]);
        git(&work, &["rev-parse", "HEAD"])
    }

    fn source(
        &self,
        url: &str,
        cache: &str,
        configure: impl FnOnce(&mut GitSourceConfig),
    ) -> GitSource {
        let mut config = GitSourceConfig::new(url, self.cache(cache));
        configure(&mut config);
        GitSource::new(config).unwrap()
    }
}

fn paths(changes: &Changes) -> Vec<(String, ChangeKind)> {
    match changes {
        Changes::Full => panic!("expected changed paths, got a full pass"),
        Changes::Paths(paths) => paths.iter().map(|c| (c.path.clone(), c.kind)).collect(),
    }
}

fn poll(source: &GitSource, last: Option<&Update>) -> Update {
    source.poll(last.map(|u| u.snapshot.revision())).unwrap()
}

/// The scenario every transport must pass: full first pass, one changed
/// file, added and deleted files, nothing changed, force push.
fn incremental_scenario(up: &Upstream, source: &GitSource) {
    let first = poll(source, None);
    assert_eq!(first.changes, Changes::Full);
    assert_eq!(
        first.snapshot.revision(),
        git(&up.work(), &["rev-parse", "HEAD"])
    );
    let listing = first.snapshot.list().unwrap();
    assert_eq!(
        listing.files,
        vec![
            "controlplanes/a.yaml",
            "controlplanes/b.yaml",
            "hooks/h.yaml"
        ]
    );
    assert_eq!(
        first.snapshot.read("controlplanes/a.yaml", 1024).unwrap(),
        cp("a").as_bytes()
    );

    let unchanged = poll(source, Some(&first));
    assert_eq!(unchanged.changes, Changes::Paths(Vec::new()));
    assert_eq!(unchanged.snapshot.revision(), first.snapshot.revision());

    up.commit(
        &[("controlplanes/b.yaml", &cp("b").replace("k8s", "k3s"))],
        &[],
        "b to k3s",
    );
    let second = poll(source, Some(&first));
    assert_eq!(
        paths(&second.changes),
        vec![("controlplanes/b.yaml".to_owned(), ChangeKind::Modified)]
    );
    assert!(
        String::from_utf8(second.snapshot.read("controlplanes/b.yaml", 1024).unwrap())
            .unwrap()
            .contains("k3s")
    );

    up.commit(
        &[
            ("controlplanes/c.yaml", &cp("c")),
            ("README.md", "# not a manifest"),
        ],
        &["controlplanes/a.yaml"],
        "add c, drop a",
    );
    let third = poll(source, Some(&second));
    assert_eq!(
        paths(&third.changes),
        vec![
            ("controlplanes/a.yaml".to_owned(), ChangeKind::Deleted),
            ("controlplanes/c.yaml".to_owned(), ChangeKind::Added),
        ]
    );
    assert!(matches!(
        third.snapshot.read("controlplanes/a.yaml", 1024),
        Err(ReadError::NotFound)
    ));

    up.amend_and_force_push(&[("controlplanes/c.yaml", &cp("c").replace("k8s", "host"))]);
    let rewritten = poll(source, Some(&third));
    assert_eq!(rewritten.changes, Changes::Full);
    assert_ne!(rewritten.snapshot.revision(), third.snapshot.revision());
}

fn initial_files() -> Vec<(&'static str, String)> {
    vec![
        ("controlplanes/a.yaml", cp("a")),
        ("controlplanes/b.yaml", cp("b")),
        ("hooks/h.yaml", "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: h\nspec: {}\n".to_owned()),
    ]
}

fn upstream() -> Upstream {
    let files = initial_files();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    Upstream::new(&refs)
}

#[test]
fn file_url_incremental_and_force_push() {
    let up = upstream();
    let source = up.source(&up.file_url(), "file", |_| {});
    incremental_scenario(&up, &source);
}

#[test]
fn git_daemon_incremental_and_force_push() {
    let up = upstream();
    let daemon = GitDaemon::start(&up.repos());
    let source = up.source(&daemon.url(), "daemon", |_| {});
    incremental_scenario(&up, &source);
}

#[test]
fn pushing_to_the_daemon_is_seen_by_the_source() {
    let up = upstream();
    let daemon = GitDaemon::start(&up.repos());
    let source = up.source(&daemon.url(), "daemon", |_| {});
    let first = poll(&source, None);
    // Push through the daemon itself (receive-pack enabled).
    let work = up.work();
    std::fs::write(work.join("controlplanes/d.yaml"), cp("d")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "d"]);
    git(&work, &["push", "-q", &daemon.url(), "HEAD:main"]);
    let second = poll(&source, Some(&first));
    assert_eq!(
        paths(&second.changes),
        vec![("controlplanes/d.yaml".to_owned(), ChangeKind::Added)]
    );
}

#[test]
fn path_limits_what_is_listed_and_diffed() {
    let up = upstream();
    let source = up.source(&up.file_url(), "path", |c| {
        c.path = "./controlplanes/".into()
    });
    let first = poll(&source, None);
    assert_eq!(
        first.snapshot.list().unwrap().files,
        vec!["controlplanes/a.yaml", "controlplanes/b.yaml"]
    );
    // A commit outside the path changes nothing for this source.
    up.commit(&[("hooks/h2.yaml", "a: 1\n")], &[], "outside");
    let second = poll(&source, Some(&first));
    assert_eq!(second.changes, Changes::Paths(Vec::new()));
    assert_ne!(second.snapshot.revision(), first.snapshot.revision());

    let missing = up.source(&up.file_url(), "missing", |c| c.path = "nope".into());
    assert!(matches!(
        missing.poll(None),
        Err(SourceError::PathNotFound { .. })
    ));
}

#[test]
fn more_new_commits_than_depth_means_a_full_pass() {
    let up = upstream();
    let source = up.source(&up.file_url(), "depth1", |c| c.depth = NonZeroU32::MIN);
    let first = poll(&source, None);
    // One commit: its parent is the last applied commit, known by id.
    up.commit(
        &[("controlplanes/a.yaml", &cp("a").replace("k8s", "k3s"))],
        &[],
        "one",
    );
    let second = poll(&source, Some(&first));
    assert_eq!(paths(&second.changes).len(), 1);
    // Two commits: the one in between was not fetched.
    up.commit(&[("controlplanes/a.yaml", &cp("a"))], &[], "two");
    up.commit(
        &[("controlplanes/b.yaml", &cp("b").replace("k8s", "k3s"))],
        &[],
        "three",
    );
    let third = poll(&source, Some(&second));
    assert_eq!(third.changes, Changes::Full);
}

#[test]
fn a_fresh_cache_with_a_known_last_commit_is_a_full_pass() {
    let up = upstream();
    let first = poll(&up.source(&up.file_url(), "one", |_| {}), None);
    up.commit(
        &[("controlplanes/a.yaml", &cp("a").replace("k8s", "k3s"))],
        &[],
        "one",
    );
    // Another cache never saw `first`, but depth 16 brings it along.
    let other = up.source(&up.file_url(), "two", |_| {});
    let second = poll(&other, Some(&first));
    assert_eq!(paths(&second.changes).len(), 1);
    // An unknown commit id (e.g. from a rewritten history) means a full pass.
    let unknown = other
        .poll(Some("0123456789012345678901234567890123456789"))
        .unwrap();
    assert_eq!(unknown.changes, Changes::Full);
}

#[test]
fn ref_selects_branch_tag_or_commit() {
    let up = upstream();
    let initial = git(&up.work(), &["rev-parse", "HEAD"]);
    git(&up.work(), &["tag", "-a", "v1", "-m", "v1"]);
    git(&up.work(), &["push", "-q", "origin", "v1"]);
    git(&up.work(), &["checkout", "-q", "-b", "staging"]);
    let staging = up.commit(&[("controlplanes/s.yaml", &cp("s"))], &[], "staging only");
    git(&up.work(), &["checkout", "-q", "main"]);
    let main = up.commit(&[("controlplanes/m.yaml", &cp("m"))], &[], "main only");

    let revision = |name: &str, reference: Option<&str>| {
        let source = up.source(&up.file_url(), name, |c| {
            c.reference = reference.map(str::to_owned)
        });
        poll(&source, None).snapshot.revision().to_owned()
    };
    assert_eq!(revision("default", None), main);
    assert_eq!(revision("branch", Some("staging")), staging);
    assert_eq!(revision("fullref", Some("refs/heads/staging")), staging);
    assert_eq!(revision("tag", Some("v1")), initial);
    assert_eq!(revision("commit", Some(&initial)), initial);

    let missing = up.source(&up.file_url(), "missing", |c| {
        c.reference = Some("nope".into())
    });
    assert!(matches!(
        missing.poll(None),
        Err(SourceError::RefNotFound { .. })
    ));
}

#[test]
fn symlinks_and_large_blobs_in_the_tree() {
    let up = upstream();
    let work = up.work();
    std::os::unix::fs::symlink("../../../etc/passwd", work.join("controlplanes/evil.yaml"))
        .unwrap();
    std::os::unix::fs::symlink("a.yaml", work.join("controlplanes/alias.yaml")).unwrap();
    up.commit(&[("big.yaml", &"#".repeat(2000))], &[], "links");
    let update = poll(&up.source(&up.file_url(), "links", |_| {}), None);
    let listing = update.snapshot.list().unwrap();
    assert!(
        listing
            .files
            .contains(&"controlplanes/alias.yaml".to_owned())
    );
    assert_eq!(listing.refused.len(), 1);
    assert_eq!(listing.refused[0].path, "controlplanes/evil.yaml");
    assert!(matches!(
        listing.refused[0].error,
        ReadError::SymlinkOutside { .. }
    ));
    assert_eq!(
        update
            .snapshot
            .read("controlplanes/alias.yaml", 1024)
            .unwrap(),
        cp("a").as_bytes()
    );
    assert!(matches!(
        update.snapshot.read("big.yaml", 1000),
        Err(ReadError::TooLarge {
            size: 2000,
            limit: 1000
        })
    ));

    // Validation reads through the snapshot and names the refused link.
    let report = validate(
        update.snapshot.as_ref(),
        Selection::All,
        &Options::default(),
    )
    .unwrap();
    let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "controlplanes/a.yaml:4:9: metadata.name: ControlPlane \"a\" is also defined at controlplanes/alias.yaml:4:9".to_owned(),
            "controlplanes/alias.yaml:4:9: metadata.name: ControlPlane \"a\" is also defined at controlplanes/a.yaml:4:9".to_owned(),
            "controlplanes/evil.yaml:1:1: symlink leads outside the repository (to ../../../etc/passwd); refusing it".to_owned(),
        ]
    );
}

#[tokio::test]
async fn polls_on_the_blocking_pool() {
    let up = upstream();
    let source: Arc<dyn Source> = Arc::new(up.source(&up.file_url(), "async", |_| {}));
    let first = poll_blocking(source.clone(), None).await.unwrap();
    up.commit(
        &[("controlplanes/a.yaml", &cp("a").replace("k8s", "k3s"))],
        &[],
        "async",
    );
    let second = poll_blocking(source, Some(first.snapshot.revision().to_owned()))
        .await
        .unwrap();
    assert_eq!(
        second.changes,
        Changes::Paths(vec![Change {
            path: "controlplanes/a.yaml".into(),
            kind: ChangeKind::Modified
        }])
    );
    // Only the changed file is validated.
    let Changes::Paths(changed) = &second.changes else {
        unreachable!()
    };
    let selected: Vec<String> = changed.iter().map(|c| c.path.clone()).collect();
    let report = validate(
        second.snapshot.as_ref(),
        Selection::Paths(&selected),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(report.documents.len(), 1);
    assert_eq!(report.files.len(), 1);
}

/// A reconciler killed in the middle of a fetch leaves gix's lock files
/// (and a half-written pack) in the cache; the next process must not be
/// blocked by them for ever.
#[test]
fn lock_files_left_by_a_killed_fetch_do_not_block_the_next_one() {
    let up = upstream();
    let source = up.source(&up.file_url(), "killed", |_| {});
    let first = poll(&source, None);
    let cache = up.cache("killed");
    for stale in [
        "refs/kflex/fetched/HEAD.lock",
        "shallow.lock",
        "packed-refs.lock",
        "config.lock",
        "objects/pack/.tmpAbCdEf",
    ] {
        std::fs::write(cache.join(stale), "").unwrap();
    }
    let commit = up.commit(
        &[("controlplanes/a.yaml", &cp("a").replace("k8s", "k3s"))],
        &[],
        "after the crash",
    );
    let second = source
        .poll(Some(first.snapshot.revision()))
        .unwrap_or_else(|e| panic!("{}", support::error_chain(&e)));
    assert_eq!(second.snapshot.revision(), commit);
    assert_eq!(paths(&second.changes).len(), 1);
    assert!(!cache.join("objects/pack/.tmpAbCdEf").exists());
}
