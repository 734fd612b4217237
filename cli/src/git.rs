//! The Git side of `kflex create/delete --git`: commit exactly one file with
//! gix, on the current branch or on a new one, without disturbing anything
//! else the user has in the work tree or the index; push with the `git` CLI
//! (gix cannot push yet); pull-request links for GitHub and GitLab remotes.
//!
//! The commit is built from the branch's tree plus the one change, never
//! from the index, so whatever else is staged stays staged and uncommitted.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use gix::ObjectId;
use gix::bstr::{BStr, ByteSlice};
use gix::object::tree::EntryKind;

use kubeflex_reconciler::source::GitSnapshot;

/// Errors of the Git side; each names the repository, branch or file.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path}: not inside a Git repository (use --repo DIR): {reason}")]
    NotARepository { path: PathBuf, reason: String },
    #[error("{0}: a bare repository has no work tree; use --repo with a checkout")]
    Bare(PathBuf),
    #[error(
        "no Git identity: set one with `git config --global user.name \"Your Name\"` and \
         `git config --global user.email you@example.com` (nothing was committed)"
    )]
    NoIdentity,
    #[error("HEAD is detached: check out a branch, or use --new-branch")]
    Detached,
    #[error("branch {0} already exists; delete it or commit on it with --branch")]
    BranchExists(String),
    #[error("branch {0} does not exist")]
    NoSuchBranch(String),
    #[error(
        "{0} has local changes; commit or stash them first, or use --new-branch (which \
         leaves the work tree alone)"
    )]
    LocalChanges(String),
    #[error("{what}: {reason}")]
    Gix { what: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remote {0:?} is not configured in this repository")]
    NoRemote(String),
    #[error(
        "the `git` command was not found on PATH; it is needed for --push (gix cannot push yet)"
    )]
    GitMissing,
    #[error("git push to {remote} was rejected:\n{message}")]
    PushRejected { remote: String, message: String },
}

impl GitError {
    fn gix(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Gix {
            what: what.into(),
            reason: e.to_string(),
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Where the commit goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The checked-out branch: the file is also written to the work tree and
    /// its index entry updated.
    Current,
    /// Another existing branch (`--branch B`): only the branch moves.
    Branch(String),
    /// A new branch from the current HEAD (`--new-branch`): only the branch
    /// is created; the work tree and the index are not touched.
    NewBranch(String),
}

/// A commit that was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub commit: ObjectId,
    /// Short branch name, e.g. `main` or `kflex/create-cp1`.
    pub branch: String,
}

/// A checkout: a repository with a work tree.
pub struct Workspace {
    repo: gix::Repository,
    workdir: PathBuf,
}

impl Workspace {
    /// The repository containing `dir`, with the user's Git configuration
    /// (global, system and environment) as `git` would read it.
    pub fn discover(dir: &Path) -> Result<Self, GitError> {
        Self::discover_with(dir, gix::open::Options::default())
    }

    /// As [`Workspace::discover`], reading only the repository's own
    /// configuration: tests use it to control the identity.
    pub fn discover_isolated(dir: &Path) -> Result<Self, GitError> {
        Self::discover_with(dir, gix::open::Options::isolated())
    }

    fn discover_with(dir: &Path, options: gix::open::Options) -> Result<Self, GitError> {
        let repo = gix::ThreadSafeRepository::discover_opts(
            dir,
            gix::discover::upwards::Options::default(),
            gix::sec::trust::Mapping {
                full: options.clone(),
                reduced: options,
            },
        )
        .map_err(|e| GitError::NotARepository {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?
        .to_thread_local();
        let workdir = repo
            .workdir()
            .map(Path::to_owned)
            .ok_or_else(|| GitError::Bare(repo.git_dir().to_owned()))?;
        Ok(Self { repo, workdir })
    }

    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// The root of the work tree.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// A path inside the work tree, relative to its root with `/`
    /// separators, or `None` when it lies outside.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let abs = std::fs::canonicalize(path).ok()?;
        let root = std::fs::canonicalize(&self.workdir).ok()?;
        let rel = abs.strip_prefix(root).ok()?;
        Some(
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
        )
    }

    /// The checked-out branch's short name; `None` when HEAD is detached.
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let name = self
            .repo
            .head_name()
            .map_err(|e| GitError::gix("reading HEAD", e))?;
        Ok(name.map(|n| n.shorten().to_string()))
    }

    /// The commit a target starts from (`None` for an unborn branch) and the
    /// full reference name the commit updates.
    fn base(&self, target: &Target) -> Result<(Option<ObjectId>, String), GitError> {
        match target {
            Target::Current => {
                let Some(branch) = self.current_branch()? else {
                    return Err(GitError::Detached);
                };
                Ok((self.head_commit()?, format!("refs/heads/{branch}")))
            }
            Target::Branch(branch) => {
                let full = format!("refs/heads/{branch}");
                let id = self
                    .branch_commit(&full)?
                    .ok_or_else(|| GitError::NoSuchBranch(branch.clone()))?;
                Ok((Some(id), full))
            }
            Target::NewBranch(branch) => {
                let full = format!("refs/heads/{branch}");
                if self.branch_commit(&full)?.is_some() {
                    return Err(GitError::BranchExists(branch.clone()));
                }
                if gix::validate::reference::name(full.as_bytes().as_bstr()).is_err() {
                    return Err(GitError::gix(
                        format!("branch {branch}"),
                        "not a valid branch name",
                    ));
                }
                Ok((self.head_commit()?, full))
            }
        }
    }

    fn head_commit(&self) -> Result<Option<ObjectId>, GitError> {
        let head = self
            .repo
            .head()
            .map_err(|e| GitError::gix("reading HEAD", e))?;
        Ok(head.id().map(|id| id.detach()))
    }

    fn branch_commit(&self, full: &str) -> Result<Option<ObjectId>, GitError> {
        match self
            .repo
            .try_find_reference(full)
            .map_err(|e| GitError::gix(format!("reading {full}"), e))?
        {
            None => Ok(None),
            Some(mut r) => r
                .peel_to_id()
                .map(|id| Some(id.detach()))
                .map_err(|e| GitError::gix(format!("reading {full}"), e)),
        }
    }

    /// The tree of the commit `target` starts from (the empty tree for an
    /// unborn branch).
    pub fn base_tree(&self, target: &Target) -> Result<ObjectId, GitError> {
        let (base, _) = self.base(target)?;
        self.commit_tree(base)
    }

    fn commit_tree(&self, commit: Option<ObjectId>) -> Result<ObjectId, GitError> {
        match commit {
            None => Ok(ObjectId::empty_tree(self.repo.object_hash())),
            Some(id) => self
                .repo
                .find_commit(id)
                .and_then(|c| c.tree_id())
                .map(|t| t.detach())
                .map_err(|e| GitError::gix(format!("reading commit {id}"), e)),
        }
    }

    /// The bytes of `path` in `tree`, if it holds a file there.
    pub fn read_in_tree(&self, tree: ObjectId, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let tree = self
            .repo
            .find_tree(tree)
            .map_err(|e| GitError::gix(format!("reading tree {tree}"), e))?;
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(|e| GitError::gix(format!("looking up {path}"), e))?;
        match entry {
            Some(e) if matches!(e.mode().kind(), EntryKind::Blob | EntryKind::BlobExecutable) => {
                let blob = self
                    .repo
                    .find_object(e.object_id())
                    .map_err(|e| GitError::gix(format!("reading {path}"), e))?;
                Ok(Some(blob.detach().data))
            }
            _ => Ok(None),
        }
    }

    /// Writes `tree` with `path` set to `content` (or removed when `None`)
    /// into the object store, and returns the new tree. Nothing refers to it
    /// until [`Workspace::commit`]: this is the tree validation reads.
    pub fn edit_tree(
        &self,
        tree: ObjectId,
        path: &str,
        content: Option<&[u8]>,
    ) -> Result<ObjectId, GitError> {
        let mut editor = self
            .repo
            .edit_tree(tree)
            .map_err(|e| GitError::gix(format!("reading tree {tree}"), e))?;
        match content {
            Some(bytes) => {
                let blob = self
                    .repo
                    .write_blob(bytes)
                    .map_err(|e| GitError::gix(format!("writing {path}"), e))?;
                editor
                    .upsert(path, EntryKind::Blob, blob.detach())
                    .map_err(|e| GitError::gix(format!("adding {path}"), e))?;
            }
            None => {
                editor
                    .remove(path)
                    .map_err(|e| GitError::gix(format!("removing {path}"), e))?;
            }
        }
        editor
            .write()
            .map(|id| id.detach())
            .map_err(|e| GitError::gix("writing the tree", e))
    }

    /// The reconciler's view of `tree`: what it would read at a commit with
    /// this tree, under `subdir`.
    pub fn snapshot(&self, tree: ObjectId, subdir: &str) -> Result<GitSnapshot, GitError> {
        GitSnapshot::of_tree(self.repo.clone(), tree, subdir)
            .map_err(|e| GitError::gix(format!("reading tree {tree}"), e))
    }

    /// Checks that an identity is configured, before anything is written.
    pub fn check_identity(&self) -> Result<(), GitError> {
        match (self.repo.committer(), self.repo.author()) {
            (Some(Ok(_)), Some(Ok(_))) => Ok(()),
            (Some(Err(e)), _) | (_, Some(Err(e))) => {
                Err(GitError::gix("reading the Git identity", e))
            }
            _ => Err(GitError::NoIdentity),
        }
    }

    /// Commits `tree` (made by [`Workspace::edit_tree`] from
    /// [`Workspace::base_tree`] of the same target) on the target's branch.
    /// For [`Target::Current`] the file at `path` is then written to the work
    /// tree (or removed) and only its index entry is updated; nothing else
    /// in the work tree or the index changes.
    pub fn commit(
        &self,
        target: &Target,
        tree: ObjectId,
        path: &str,
        content: Option<&[u8]>,
        message: &str,
    ) -> Result<Committed, GitError> {
        self.check_identity()?;
        let (base, reference) = self.base(target)?;
        if *target == Target::Current {
            // A change of the user's to this very file would be overwritten.
            self.check_unchanged(base, path)?;
        }
        let committer = match self.repo.committer() {
            Some(Ok(s)) => s,
            _ => return Err(GitError::NoIdentity),
        };
        let author = match self.repo.author() {
            Some(Ok(s)) => s,
            _ => return Err(GitError::NoIdentity),
        };
        let commit = self
            .repo
            .commit_as(committer, author, reference.as_str(), message, tree, base)
            .map_err(|e| GitError::gix(format!("committing on {reference}"), e))?
            .detach();
        if *target == Target::Current {
            self.update_checkout(path, content)?;
        }
        Ok(Committed {
            commit,
            branch: reference
                .strip_prefix("refs/heads/")
                .unwrap_or(&reference)
                .to_owned(),
        })
    }

    /// Refuses when the work tree or the index holds something for `path`
    /// other than what the base commit holds.
    fn check_unchanged(&self, base: Option<ObjectId>, path: &str) -> Result<(), GitError> {
        let committed = self.read_in_tree(self.commit_tree(base)?, path)?;
        let on_disk = match std::fs::read(self.workdir.join(path)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(GitError::io(&self.workdir.join(path), e)),
        };
        let index = self
            .repo
            .index_or_empty()
            .map_err(|e| GitError::gix("reading the index", e))?;
        let staged = index.entry_by_path(path.as_bytes().as_bstr()).map(|e| e.id);
        let committed_id = committed
            .as_ref()
            .map(|c| gix::objs::compute_hash(self.repo.object_hash(), gix::objs::Kind::Blob, c))
            .transpose()
            .map_err(|e| GitError::gix(format!("hashing {path}"), e))?;
        if on_disk != committed || staged != committed_id {
            return Err(GitError::LocalChanges(path.to_owned()));
        }
        Ok(())
    }

    /// Writes (or removes) the file in the work tree and sets (or removes)
    /// its index entry, leaving every other entry as it was.
    fn update_checkout(&self, path: &str, content: Option<&[u8]>) -> Result<(), GitError> {
        let file = self.workdir.join(path);
        match content {
            Some(bytes) => write_atomically(&file, bytes)?,
            None => match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(GitError::io(&file, e)),
            },
        }
        let mut index = self
            .repo
            .index_or_empty()
            .map_err(|e| GitError::gix("reading the index", e))?
            .into_owned_or_cloned();
        let key: &BStr = path.as_bytes().as_bstr();
        index.remove_entries(|_, p, _| p == key);
        if let Some(bytes) = content {
            let id = gix::objs::compute_hash(self.repo.object_hash(), gix::objs::Kind::Blob, bytes)
                .map_err(|e| GitError::gix(format!("hashing {path}"), e))?;
            let meta = gix::index::fs::Metadata::from_path_no_follow(&file)
                .map_err(|e| GitError::io(&file, e))?;
            // A stat that cannot be read only makes git hash the file again.
            let stat = gix::index::entry::Stat::from_fs(&meta).unwrap_or_default();
            index.dangerously_push_entry(
                stat,
                id,
                gix::index::entry::Flags::empty(),
                gix::index::entry::Mode::FILE,
                key,
            );
            index.sort_entries();
        }
        // The cached trees no longer match the entries; git rebuilds them.
        index.remove_tree();
        index
            .write(gix::index::write::Options::default())
            .map_err(|e| GitError::gix("writing the index", e))
    }

    /// The URL of `remote`, as configured.
    pub fn remote_url(&self, remote: &str) -> Result<String, GitError> {
        let remote_obj = self
            .repo
            .try_find_remote(remote.as_bytes().as_bstr())
            .ok_or_else(|| GitError::NoRemote(remote.to_owned()))?
            .map_err(|e| GitError::gix(format!("remote {remote}"), e))?;
        let url = remote_obj
            .url(gix::remote::Direction::Push)
            .ok_or_else(|| GitError::NoRemote(remote.to_owned()))?;
        Ok(url.to_bstring().to_string())
    }

    /// Pushes `branch` to the branch of the same name on `remote` with the
    /// `git` CLI; a rejection carries git's own reason.
    pub fn push(&self, remote: &str, branch: &str) -> Result<(), GitError> {
        self.remote_url(remote)?;
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        let output = Command::new("git")
            .arg("-C")
            .arg(&self.workdir)
            .args(["push", "--porcelain", remote, &refspec])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => GitError::GitMissing,
                _ => GitError::io(Path::new("git"), e),
            })?;
        if output.status.success() {
            return Ok(());
        }
        let mut message = String::from_utf8_lossy(&output.stderr).into_owned();
        // `--porcelain` puts the per-ref verdict (`! ... [rejected] (reason)`)
        // on stdout; keep those lines too.
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if line.starts_with('!') {
                message.push_str(line);
                message.push('\n');
            }
        }
        Err(GitError::PushRejected {
            remote: redact_url(&self.remote_url(remote).unwrap_or_default()),
            message: redact_text(message.trim_end()),
        })
    }
}

/// Writes a file through a temporary file in the same directory, so a crash
/// leaves either the old or the new content.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), GitError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| GitError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| GitError::io(dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| GitError::io(path, e))?;
    // Spec files are not secrets: the mode a plain `git checkout` gives.
    set_mode_0644(tmp.path()).map_err(|e| GitError::io(path, e))?;
    tmp.persist(path).map_err(|e| GitError::io(path, e.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode_0644(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_mode_0644(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// A URL without its user-info (`https://user:token@host/...` becomes
/// `https://host/...`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Every `scheme://user:secret@` in a text redacted (git's messages may echo
/// the remote URL).
fn redact_text(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                let trimmed = word.trim_end();
                let start = trimmed.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
                format!(
                    "{}{}{}",
                    &trimmed[..start],
                    redact_url(&trimmed[start..]),
                    &word[trimmed.len()..]
                )
            } else {
                word.to_owned()
            }
        })
        .collect()
}

/// The page that opens a pull request (GitHub) or merge request (GitLab)
/// for `branch`, derived from the remote URL; `None` for other hosts.
pub fn pull_request_link(remote_url: &str, branch: &str) -> Option<String> {
    let (host, path) = host_and_path(remote_url)?;
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if path.is_empty() {
        return None;
    }
    let host_lower = host.to_ascii_lowercase();
    if host_lower.contains("github") {
        Some(format!("https://{host}/{path}/pull/new/{branch}"))
    } else if host_lower.contains("gitlab") {
        let encoded: String = form_encode(branch);
        Some(format!(
            "https://{host}/{path}/-/merge_requests/new?merge_request%5Bsource_branch%5D={encoded}"
        ))
    } else {
        None
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Host (without user-info or port) and path of a remote URL in any of
/// git's forms: `scheme://[user@]host[:port]/path` or scp-like
/// `[user@]host:path`.
fn host_and_path(url: &str) -> Option<(String, String)> {
    if let Some(i) = url.find("://") {
        let rest = &url[i + 3..];
        let (authority, path) = rest.split_at(rest.find('/')?);
        let host = authority.rsplit('@').next()?;
        let host = host.split(':').next()?;
        return Some((host.to_owned(), path.to_owned()));
    }
    let (authority, path) = url.split_once(':')?;
    if authority.contains('/') {
        return None; // a local path
    }
    let host = authority.rsplit('@').next()?;
    Some((host.to_owned(), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_request_links() {
        assert_eq!(
            pull_request_link("git@github.com:acme/tenants.git", "kflex/create-cp1").unwrap(),
            "https://github.com/acme/tenants/pull/new/kflex/create-cp1"
        );
        assert_eq!(
            pull_request_link("https://user:tok@github.com/acme/tenants", "b").unwrap(),
            "https://github.com/acme/tenants/pull/new/b"
        );
        assert_eq!(
            pull_request_link(
                "ssh://git@gitlab.com:22/grp/sub/tenants.git",
                "kflex/create-cp1"
            )
            .unwrap(),
            "https://gitlab.com/grp/sub/tenants/-/merge_requests/new?merge_request%5Bsource_branch%5D=kflex%2Fcreate-cp1"
        );
        assert_eq!(
            pull_request_link("git://127.0.0.1:9418/repo.git", "b"),
            None
        );
        assert_eq!(pull_request_link("/srv/git/repo.git", "b"), None);
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("https://user:s3cret@host/repo.git"),
            "https://host/repo.git"
        );
        let text = redact_text("fatal: unable to access 'https://u:s3cret@host/r.git/': denied");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("host/r.git"), "{text}");
    }
}
