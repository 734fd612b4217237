//! The Git side of `kflex create/delete --git`, against real repositories
//! and the real git CLI: one file per commit, nothing else of the user's
//! touched, pushes over `git daemon`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gitsupport/mod.rs"]
mod support;

use kflex::git::{GitError, Target, Workspace};
use support::{GitDaemon, git, git_raw, repo, write};

const CP1: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp1\nspec:\n  type: k8s\n";

/// A checkout with staged, unstaged and untracked changes of the user's.
fn busy_checkout(dir: &std::path::Path) {
    repo(
        dir,
        &[
            ("README.md", "readme\n"),
            ("notes.txt", "one\n"),
            ("controlplanes/old.yaml", "# old\n"),
        ],
    );
    write(dir, &[("README.md", "readme, staged edit\n")]);
    git(dir, &["add", "README.md"]);
    write(dir, &[("staged-new.txt", "new and staged\n")]);
    git(dir, &["add", "staged-new.txt"]);
    write(dir, &[("notes.txt", "one\ntwo, not staged\n")]);
    write(dir, &[("scratch.txt", "untracked\n")]);
    // Staged, then edited again: index and work tree differ from each
    // other and from HEAD.
    write(dir, &[("controlplanes/old.yaml", "# staged\n")]);
    git(dir, &["add", "controlplanes/old.yaml"]);
    write(
        dir,
        &[("controlplanes/old.yaml", "# staged, then edited\n")],
    );
}

/// Everything `git` knows of the user's changes, relative to HEAD.
fn user_state(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        git_raw(
            dir,
            &["diff", "--cached", "--", ".", ":!controlplanes/cp1.yaml"],
        ),
        git_raw(dir, &["diff", "--", ".", ":!controlplanes/cp1.yaml"]),
        git_raw(dir, &["status", "--porcelain=v1", "--untracked-files=all"]),
    )
}

fn commit_cp1(ws: &Workspace, target: &Target) -> Result<kflex::git::Committed, GitError> {
    let base = ws.base_tree(target)?;
    let tree = ws.edit_tree(base, "controlplanes/cp1.yaml", Some(CP1.as_bytes()))?;
    ws.commit(
        target,
        tree,
        "controlplanes/cp1.yaml",
        Some(CP1.as_bytes()),
        "Create control plane cp1",
    )
}

#[test]
fn commit_on_current_branch_holds_one_file_and_keeps_the_users_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("work");
    busy_checkout(&dir);
    let before = user_state(&dir);
    let parent = git(&dir, &["rev-parse", "HEAD"]);
    let ws = Workspace::discover_isolated(&dir.join("controlplanes")).unwrap();

    let committed = commit_cp1(&ws, &Target::Current).unwrap();

    assert_eq!(committed.branch, "main");
    assert_eq!(
        git(&dir, &["rev-parse", "HEAD"]),
        committed.commit.to_string()
    );
    assert_eq!(git(&dir, &["rev-parse", "HEAD^"]), parent);
    assert_eq!(
        git(&dir, &["show", "--name-status", "--format=", "HEAD"]),
        "A\tcontrolplanes/cp1.yaml"
    );
    assert_eq!(
        git(&dir, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s"]),
        "Test Person <person@example.com>|Test Person <person@example.com>|Create control plane cp1"
    );
    // The new file is in the work tree and the index, clean.
    assert_eq!(
        std::fs::read_to_string(dir.join("controlplanes/cp1.yaml")).unwrap(),
        CP1
    );
    let status = git(
        &dir,
        &["status", "--porcelain=v1", "--", "controlplanes/cp1.yaml"],
    );
    assert_eq!(status, "", "cp1.yaml is committed and clean");
    // Every other change is exactly as it was: staged, unstaged, untracked.
    assert_eq!(user_state(&dir), before);
    // The index is one git itself accepts in full.
    git(&dir, &["fsck", "--no-progress"]);
    git(&dir, &["update-index", "-q", "--refresh"]);
    assert_eq!(user_state(&dir), before);
}

#[test]
fn new_branch_leaves_head_index_and_work_tree_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("work");
    busy_checkout(&dir);
    let before = user_state(&dir);
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let index = std::fs::read(dir.join(".git/index")).unwrap();
    let ws = Workspace::discover_isolated(&dir).unwrap();

    let target = Target::NewBranch("kflex/create-cp1".into());
    let committed = commit_cp1(&ws, &target).unwrap();

    assert_eq!(committed.branch, "kflex/create-cp1");
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&dir, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(std::fs::read(dir.join(".git/index")).unwrap(), index);
    assert!(!dir.join("controlplanes/cp1.yaml").exists());
    assert_eq!(user_state(&dir), before);
    assert_eq!(
        git(&dir, &["rev-parse", "kflex/create-cp1^"]),
        head,
        "the branch starts at HEAD"
    );
    assert_eq!(
        git(&dir, &["diff", "--name-status", "main", "kflex/create-cp1"]),
        "A\tcontrolplanes/cp1.yaml"
    );
    assert_eq!(
        git(&dir, &["show", "kflex/create-cp1:controlplanes/cp1.yaml"]),
        CP1.trim_end()
    );
    // A second time the branch exists: refused, nothing moves.
    let err = commit_cp1(&ws, &target).unwrap_err();
    assert!(matches!(err, GitError::BranchExists(_)), "{err}");
    assert_eq!(
        git(&dir, &["rev-parse", "kflex/create-cp1"]),
        committed.commit.to_string()
    );
}

#[test]
fn no_identity_is_a_clear_error_and_no_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("work");
    repo(&dir, &[("README.md", "readme\n")]);
    git(&dir, &["config", "--unset", "user.name"]);
    git(&dir, &["config", "--unset", "user.email"]);
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let ws = Workspace::discover_isolated(&dir).unwrap();

    let err = commit_cp1(&ws, &Target::Current).unwrap_err();
    assert!(matches!(err, GitError::NoIdentity), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("git config --global user.name"),
        "{message}"
    );
    assert!(message.contains("nothing was committed"), "{message}");
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), head);
    assert!(!dir.join("controlplanes/cp1.yaml").exists());
    assert_eq!(git(&dir, &["status", "--porcelain"]), "");
}

#[test]
fn a_local_edit_of_the_same_file_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("work");
    repo(&dir, &[("README.md", "readme\n")]);
    write(&dir, &[("controlplanes/cp1.yaml", "# mine, untracked\n")]);
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let ws = Workspace::discover_isolated(&dir).unwrap();

    let err = commit_cp1(&ws, &Target::Current).unwrap_err();
    assert!(matches!(err, GitError::LocalChanges(_)), "{err}");
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        std::fs::read_to_string(dir.join("controlplanes/cp1.yaml")).unwrap(),
        "# mine, untracked\n"
    );
}

#[test]
fn removing_a_file_on_the_current_branch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("work");
    repo(
        &dir,
        &[("controlplanes/cp1.yaml", CP1), ("other.txt", "x\n")],
    );
    write(&dir, &[("other.txt", "x, unstaged\n")]);
    let ws = Workspace::discover_isolated(&dir).unwrap();
    let base = ws.base_tree(&Target::Current).unwrap();
    let tree = ws.edit_tree(base, "controlplanes/cp1.yaml", None).unwrap();
    ws.commit(
        &Target::Current,
        tree,
        "controlplanes/cp1.yaml",
        None,
        "Delete cp1",
    )
    .unwrap();
    assert_eq!(
        git(&dir, &["show", "--name-status", "--format=", "HEAD"]),
        "D\tcontrolplanes/cp1.yaml"
    );
    assert!(!dir.join("controlplanes/cp1.yaml").exists());
    assert_eq!(git(&dir, &["status", "--porcelain"]), " M other.txt");
}

#[test]
fn push_over_git_daemon_and_a_rejection_shows_the_remotes_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let bare = served.join("tenants.git");
    let dir = tmp.path().join("work");
    repo(&dir, &[("README.md", "readme\n")]);
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            dir.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let daemon = GitDaemon::start(&served);
    git(
        &dir,
        &["remote", "add", "origin", &daemon.url("tenants.git")],
    );
    let ws = Workspace::discover_isolated(&dir).unwrap();

    let committed = commit_cp1(&ws, &Target::NewBranch("kflex/create-cp1".into())).unwrap();
    ws.push("origin", &committed.branch).unwrap();
    assert_eq!(
        git(&bare, &["rev-parse", "refs/heads/kflex/create-cp1"]),
        committed.commit.to_string()
    );
    // A git:// remote is neither GitHub nor GitLab: no link.
    assert_eq!(
        kflex::git::pull_request_link(&ws.remote_url("origin").unwrap(), &committed.branch),
        None
    );

    // The server refuses the next push with a reason of its own.
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'policy: tenants are created through review only' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let base = ws.base_tree(&Target::Current).unwrap();
    let tree = ws
        .edit_tree(base, "controlplanes/cp2.yaml", Some(b"# cp2\n"))
        .unwrap();
    let second = ws
        .commit(
            &Target::NewBranch("kflex/create-cp2".into()),
            tree,
            "controlplanes/cp2.yaml",
            Some(b"# cp2\n"),
            "cp2",
        )
        .unwrap();
    let err = ws.push("origin", &second.branch).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, GitError::PushRejected { .. }), "{message}");
    assert!(
        message.contains("policy: tenants are created through review only"),
        "{message}"
    );
    assert!(message.contains("pre-receive hook declined"), "{message}");
    assert!(
        git_cmd_fails(
            &bare,
            &["rev-parse", "--verify", "-q", "refs/heads/kflex/create-cp2"]
        ),
        "nothing arrived"
    );

    // An unknown remote is named.
    let err = ws.push("upstream", &second.branch).unwrap_err();
    assert!(
        matches!(err, GitError::NoRemote(ref r) if r == "upstream"),
        "{err}"
    );
}

fn git_cmd_fails(dir: &std::path::Path, args: &[&str]) -> bool {
    !support::git_cmd(dir)
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

/// The kflex binary in `dir`, with no Git identity but the repository's
/// own (HOME and the global config point at nothing).
fn kflex(dir: &std::path::Path, home: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kflex"))
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL")
        .env_remove("EMAIL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HOOK: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: PostCreateHook\nmetadata:\n  name: hello\nspec:\n  templates:\n    - apiVersion: batch/v1\n      kind: Job\n      metadata:\n        name: hello\n      spec:\n        template:\n          spec:\n            containers:\n              - name: hello\n                image: busybox\n                command: [\"echo\", \"{{.message}}\"]\n            restartPolicy: Never\n";

#[test]
fn create_git_new_branch_push_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let dir = tmp.path().join("work");
    repo(
        &dir,
        &[
            ("hooks/hello.yaml", HOOK),
            (
                "controlplanes/existing.yaml",
                &CP1.replace("cp1", "existing"),
            ),
        ],
    );
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            dir.to_str().unwrap(),
            served.join("t.git").to_str().unwrap(),
        ],
    );
    let daemon = GitDaemon::start(&served);
    git(&dir, &["remote", "add", "origin", &daemon.url("t.git")]);
    write(&dir, &[("scratch.txt", "untracked\n")]);
    let head = git(&dir, &["rev-parse", "HEAD"]);

    let (code, out, err) = kflex(
        &dir.join("controlplanes"),
        &home,
        &[
            "create",
            "cp1",
            "--git",
            "--new-branch",
            "--push",
            "-p",
            "hello",
            "--set",
            "message=hi",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("controlplanes/cp1.yaml"), "{out}");
    assert!(out.contains("on branch kflex/create-cp1"), "{out}");
    assert!(
        out.contains("pushed branch kflex/create-cp1 to origin"),
        "{out}"
    );
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), head);
    let pushed = git(
        &served.join("t.git"),
        &["show", "kflex/create-cp1:controlplanes/cp1.yaml"],
    );
    assert!(pushed.contains("postCreateHook: hello"), "{pushed}");
    assert!(pushed.contains("message: hi"), "{pushed}");
    // What was committed passes validation as it is.
    git(&dir, &["checkout", "-q", "kflex/create-cp1"]);
    let (code, out, _) = kflex(&dir, &home, &["validate"]);
    assert_eq!(code, 0, "{out}");
    git(&dir, &["checkout", "-q", "main"]);

    // Refusals commit nothing.
    let before = git(&dir, &["for-each-ref"]);
    let (code, _, err) = kflex(&dir, &home, &["create", "existing", "--git"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("controlplanes/existing.yaml already exists"),
        "{err}"
    );
    let (code, _, err) = kflex(&dir, &home, &["create", "again", "--git", "--dir", "other"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = kflex(
        &dir,
        &home,
        &["create", "existing", "--git", "--dir", "elsewhere"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("is also defined at controlplanes/existing.yaml:4:"),
        "{err}"
    );
    assert!(err.contains("nothing was committed"), "{err}");
    let (code, _, err) = kflex(&dir, &home, &["create", "Bad_Name", "--git"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a valid control plane name"), "{err}");
    // The operator's checks run before committing: external needs a bootstrap Secret.
    let (code, _, err) = kflex(
        &dir,
        &home,
        &["create", "ext", "--git", "--type", "external"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("controlplanes/ext.yaml:"), "{err}");
    assert!(err.contains("bootstrapSecretRef"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    // A hook the repository does not define (offline: a warning) commits.
    let after: Vec<String> = git(&dir, &["for-each-ref"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(after.len(), before.lines().count(), "only main moved");
    assert!(!dir.join("controlplanes/ext.yaml").exists());

    // No identity: a clear error.
    git(&dir, &["config", "--unset", "user.name"]);
    let (code, _, err) = kflex(&dir, &home, &["create", "noid", "--git"]);
    assert_eq!(code, 1);
    assert!(err.contains("no Git identity"), "{err}");
}

#[test]
fn delete_git_keeps_the_other_documents_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let dir = tmp.path().join("work");
    let a = "# team a\napiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata: {name: a1}   # first\nspec: {type: k8s}\n";
    let b = "---\n# second\napiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: a2\nspec:\n  type: k3s\n";
    let c = "--- # third\napiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n    name:   a3\nspec:\n    type: vcluster\n";
    repo(
        &dir,
        &[
            ("controlplanes/team-a.yaml", &format!("{a}{b}{c}")),
            ("controlplanes/solo.yaml", &CP1.replace("cp1", "solo")),
        ],
    );

    let (code, out, err) = kflex(&dir, &home, &["delete", "a2", "--git"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("controlplanes/team-a.yaml")).unwrap(),
        format!("{a}{c}")
    );
    assert_eq!(
        git(&dir, &["show", "HEAD:controlplanes/team-a.yaml"]),
        format!("{a}{c}").trim_end()
    );
    assert_eq!(
        git(&dir, &["show", "--name-status", "--format=", "HEAD"]),
        "M\tcontrolplanes/team-a.yaml"
    );
    assert_eq!(git(&dir, &["status", "--porcelain"]), "");

    let (code, out, err) = kflex(&dir, &home, &["delete", "solo", "--git", "--new-branch"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        git(
            &dir,
            &["show", "--name-status", "--format=", "kflex/delete-solo"]
        ),
        "D\tcontrolplanes/solo.yaml"
    );
    assert!(
        dir.join("controlplanes/solo.yaml").exists(),
        "work tree untouched"
    );

    let (code, _, err) = kflex(&dir, &home, &["delete", "nobody", "--git"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no file on main defines ControlPlane nobody"),
        "{err}"
    );
}
