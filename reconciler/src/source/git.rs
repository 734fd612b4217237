//! A Git repository as a source, with gix: a shallow fetch of one ref into a
//! bare cache directory, files read straight from the commit's tree (no work
//! tree), and the paths changed since the last applied commit computed by
//! diffing the two trees, so a commit touching one file costs one file.
//!
//! Incremental passes need the last applied commit to be an ancestor of the
//! new one. Fetches keep `depth` commits of history; if the last applied
//! commit is not within reach (history rewritten by a force push, more new
//! commits than `depth`, or a fresh cache) the pass is a full one, which is
//! always correct, only slower.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::diff::tree::recorder::Change as TreeChange;
use gix::objs::tree::EntryKind;
use gix::protocol::transport::client::blocking_io::Transport;
use gix::remote::Direction;

use super::{
    Change, ChangeKind, Changes, Filter, IGNORE_FILE, Listing, ReadError, Refused, Snapshot,
    Source, SourceError, Update, check_relative, is_hidden, is_manifest, normalize_subdir,
    redact_url, url_credentials,
};

mod cache_lock;
mod daemon;

/// `--fetch-timeout`'s default.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Where to hold fetched refs in the cache: never a branch a user could see.
const FETCHED_PREFIX: &str = "refs/kflex/fetched";

/// Symlinks followed in a row before giving up.
const MAX_SYMLINK_HOPS: usize = 8;

/// Commits walked at most when looking for the last applied one.
const MAX_ANCESTRY_WALK: usize = 10_000;

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub enum GitAuth {
    /// Anonymous (also `file://`, and `git://` which has no auth).
    #[default]
    None,
    /// HTTP basic auth; a token is a password (see [`GitAuth::token`]).
    Basic { username: String, password: String },
    /// SSH with a private key and, when given, a known_hosts file checked
    /// strictly. Passed to the `ssh` binary through `core.sshCommand`.
    Ssh {
        key: PathBuf,
        known_hosts: Option<PathBuf>,
    },
}

impl GitAuth {
    /// Token auth over HTTPS: forges accept a token as the password of any
    /// user name; `x-access-token` is what GitHub documents.
    pub fn token(token: impl Into<String>) -> Self {
        Self::Basic {
            username: "x-access-token".to_owned(),
            password: token.into(),
        }
    }
}

impl std::fmt::Debug for GitAuth {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::Ssh { key, known_hosts } => write!(f, "Ssh({key:?}, {known_hosts:?})"),
        }
    }
}

/// Reads a secret from a file (trailing newline trimmed) or, failing that, an
/// environment variable; the error names where it looked, never the value.
pub fn read_secret(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<String, SourceError> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|source| SourceError::Io {
            path: file.display().to_string(),
            source,
        })?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_owned());
    }
    if let Some(var) = env {
        return std::env::var(var).map_err(|e| SourceError::Io {
            path: format!("${var}"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, e),
        });
    }
    Err(SourceError::InvalidPath {
        path: String::new(),
        reason: "no secret file or environment variable given",
    })
}

/// What to fetch and where to keep it.
#[derive(Clone, Debug)]
pub struct GitSourceConfig {
    /// `file://`, `git://`, `http(s)://`, `ssh://` or scp-style.
    pub url: String,
    /// Branch, tag, full ref name or commit id; `None` for the remote's
    /// default branch (its `HEAD`).
    pub reference: Option<String>,
    /// Repository-relative directory holding the manifests; empty for all.
    pub path: String,
    /// Bare repository used as the object cache; created when missing.
    pub cache_dir: PathBuf,
    /// Commits of history each fetch keeps (shallow fetch).
    pub depth: NonZeroU32,
    pub auth: GitAuth,
    /// `--exclude` patterns (gitignore syntax), besides `.kflexignore`.
    pub excludes: Vec<String>,
    /// Deadline of one fetch (`--fetch-timeout`), also the read timeout of
    /// `git://` connections and the basis of ssh's keep-alive.
    pub fetch_timeout: Duration,
}

impl GitSourceConfig {
    /// A config with defaults: remote default branch, repository root, and a
    /// depth of 16 commits (enough for bursts of commits between polls).
    pub fn new(url: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            reference: None,
            path: String::new(),
            cache_dir: cache_dir.into(),
            depth: NonZeroU32::new(16).unwrap_or(NonZeroU32::MIN),
            auth: GitAuth::None,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            excludes: Vec::new(),
        }
    }
}

/// A remote Git repository.
#[derive(Clone, Debug)]
pub struct GitSource {
    config: GitSourceConfig,
}

impl GitSource {
    /// Credentials in the URL are taken out of it (so that no message,
    /// annotation or status shows them) and used as basic auth unless other
    /// auth is configured.
    pub fn new(mut config: GitSourceConfig) -> Result<Self, SourceError> {
        config.path = normalize_subdir(&config.path)?;
        if let Some((username, password)) = url_credentials(&config.url) {
            let scheme = config.url.split("://").next().unwrap_or_default();
            let http = scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http");
            if http && matches!(config.auth, GitAuth::None) && !username.is_empty() {
                config.auth = GitAuth::Basic { username, password };
            }
            config.url = redact_url(&config.url);
        }
        if matches!(config.auth, GitAuth::Basic { .. })
            && config.url.to_ascii_lowercase().starts_with("http://")
        {
            return Err(SourceError::CleartextCredentials { url: config.url });
        }
        Ok(Self { config })
    }

    pub fn config(&self) -> &GitSourceConfig {
        &self.config
    }

    /// Opens the cache, creating an empty bare repository on first use.
    /// Isolated: the user's and system's Git configuration play no part.
    fn open_cache(&self) -> Result<gix::Repository, SourceError> {
        let dir = &self.config.cache_dir;
        let context = || format!("opening the Git cache {}", dir.display());
        let mut repo = if dir.join("HEAD").exists() {
            gix::open_opts(dir, gix::open::Options::isolated())
                .map_err(|e| SourceError::git(context(), e))?
        } else {
            std::fs::create_dir_all(dir).map_err(|source| SourceError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            // Isolated from the first poll on, like `open_opts` above: the
            // user's Git configuration (credential helpers) plays no part.
            gix::ThreadSafeRepository::init_opts(
                dir,
                gix::create::Kind::Bare,
                gix::create::Options::default(),
                gix::open::Options::isolated(),
            )
            .map_err(|e| SourceError::git(context(), e))?
            .to_thread_local()
        };
        if let GitAuth::Ssh { key, known_hosts } = &self.config.auth {
            // `-E`: ssh's own messages go to a file, read back when a fetch
            // fails (see `fetch`); gix passes on none of them but a
            // misleading "no credentials" for "Permission denied".
            // A stalled server is given up on within about the fetch
            // deadline: keep-alives every fifth of it, three unanswered.
            let timeout = self.config.fetch_timeout.as_secs().max(1);
            let mut command = format!(
                "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout={} -o ServerAliveInterval={} -o ServerAliveCountMax=3 -E {}",
                shell_quote(&key.display().to_string()),
                timeout.min(30),
                (timeout / 5).max(1),
                shell_quote(&self.ssh_log().display().to_string())
            );
            if let Some(known_hosts) = known_hosts {
                command.push_str(&format!(
                    " -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
                    shell_quote(&known_hosts.display().to_string())
                ));
            }
            let mut config = repo.config_snapshot_mut();
            config
                .append_config(
                    [
                        format!("core.sshCommand={command}").as_str(),
                        // OpenSSH: spares gix running `ssh -G` per fetch
                        // to find out (the command is not just `ssh`).
                        "ssh.variant=ssh",
                    ],
                    gix::config::Source::Api,
                )
                .map_err(|e| SourceError::git("configuring ssh", e))?;
            config
                .commit()
                .map_err(|e| SourceError::git("configuring ssh", e))?;
        }
        Ok(repo)
    }

    /// Where ssh writes its messages (`-E`), in the cache.
    fn ssh_log(&self) -> PathBuf {
        self.config.cache_dir.join("ssh.log")
    }

    /// Fetches the configured ref and returns the commit it points to;
    /// over SSH, a failure carries ssh's last messages (why it gave up:
    /// host key verification, permission denied, …).
    fn fetch(&self, repo: &gix::Repository) -> Result<ObjectId, SourceError> {
        if !matches!(self.config.auth, GitAuth::Ssh { .. }) {
            return self.fetch_ref(repo);
        }
        let log = self.ssh_log();
        // `-E` appends: only this fetch's messages.
        let _ = std::fs::remove_file(&log);
        self.fetch_ref(repo).map_err(|error| match error {
            SourceError::Git { context, mut cause } => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    // Not the frames of ssh's warning banners.
                    .filter(|l| !l.is_empty() && !l.starts_with('@'))
                    .collect();
                if !lines.is_empty() {
                    cause.push_str("; ssh: ");
                    cause.push_str(&lines[lines.len().saturating_sub(2)..].join(" "));
                }
                SourceError::Git { context, cause }
            }
            other => other,
        })
    }

    fn fetch_ref(&self, repo: &gix::Repository) -> Result<ObjectId, SourceError> {
        let url = &self.config.url;
        let specs: Vec<String> = match self.config.reference.as_deref() {
            None => vec![format!("+HEAD:{FETCHED_PREFIX}/HEAD")],
            Some(full) if full.starts_with("refs/") => {
                vec![format!("+{full}:{FETCHED_PREFIX}/ref")]
            }
            Some(name) => vec![
                format!("+refs/heads/{name}:{FETCHED_PREFIX}/heads/{name}"),
                format!("+refs/tags/{name}:{FETCHED_PREFIX}/tags/{name}"),
            ],
        };
        if let Some(local) = self.fetch_with(repo, &specs)? {
            return peel_to_commit(repo, &local, url);
        }
        // Not a branch or tag: a commit id, fetched by id.
        match self.config.reference.as_deref() {
            Some(id) if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                let spec = format!("{id}:{FETCHED_PREFIX}/commit");
                match self.fetch_with(repo, &[spec])? {
                    Some(local) => peel_to_commit(repo, &local, url),
                    None => Err(SourceError::RefNotFound {
                        url: url.clone(),
                        reference: id.to_owned(),
                    }),
                }
            }
            other => Err(SourceError::RefNotFound {
                url: url.clone(),
                reference: other.unwrap_or("HEAD").to_owned(),
            }),
        }
    }

    /// One fetch with `specs`; returns the local ref of the first spec that
    /// matched, or `None` when none did (nothing is fetched then).
    fn fetch_with(
        &self,
        repo: &gix::Repository,
        specs: &[String],
    ) -> Result<Option<String>, SourceError> {
        let url = &self.config.url;
        let context = |what: &str| format!("{what} {url}");
        let remote = repo
            .remote_at(url.as_str())
            .map_err(|e| SourceError::git(context("invalid remote URL"), e))?
            .with_refspecs(specs.iter().map(String::as_str), Direction::Fetch)
            .map_err(|e| SourceError::git(context("invalid ref for"), e))?;
        if let Some(daemon_url) = remote
            .url(Direction::Fetch)
            .filter(|u| u.scheme == gix::url::Scheme::Git)
        {
            let transport = daemon::connect(daemon_url, self.config.fetch_timeout)
                .map_err(|e| SourceError::git(context("connecting to"), e))?;
            return self.receive(remote.to_connection_with_transport(transport));
        }
        let connection = remote
            .connect(Direction::Fetch)
            .map_err(|e| SourceError::git(context("connecting to"), e))?;
        let connection = match &self.config.auth {
            GitAuth::Basic { username, password } => {
                let (username, password) = (username.clone(), password.clone());
                connection.with_credentials(move |action| match action {
                    gix::credentials::helper::Action::Get(ctx) => {
                        Ok(Some(gix::credentials::protocol::Outcome {
                            identity: gix::sec::identity::Account {
                                username: username.clone(),
                                password: password.clone(),
                                oauth_refresh_token: None,
                            },
                            next: ctx.into(),
                        }))
                    }
                    _ => Ok(None),
                })
            }
            // Without credentials of our own, gix would ask its helper chain
            // and then the terminal (and wait there); a reconciler fails.
            _ => connection.with_credentials(|_| Ok(None)),
        };
        self.receive(connection)
    }

    /// Lists the remote's refs over `connection` and, if a spec matched,
    /// fetches (shallow) what is missing.
    fn receive<T: Transport>(
        &self,
        connection: gix::remote::Connection<'_, '_, '_, T>,
    ) -> Result<Option<String>, SourceError> {
        let url = &self.config.url;
        let context = |what: &str| format!("{what} {url}");
        let prepare = connection
            .prepare_fetch(
                gix::progress::Discard,
                gix::remote::ref_map::Options::default(),
            )
            .map_err(|e| SourceError::git(context("listing refs of"), e))?;
        // The first spec that matched wins: a branch before a tag of the same name.
        let matched = prepare
            .ref_map()
            .mappings
            .iter()
            .filter_map(|m| match m.spec_index {
                gix::remote::fetch::refmap::SpecIndex::ExplicitInRemote(i) => Some((i, m)),
                gix::remote::fetch::refmap::SpecIndex::Implicit(_) => None,
            })
            .min_by_key(|(i, _)| *i)
            .and_then(|(_, m)| m.local.as_ref().map(|l| l.to_str_lossy().into_owned()));
        let Some(local) = matched else {
            return Ok(None);
        };
        prepare
            .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(
                self.config.depth,
            ))
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| SourceError::git(context("fetching from"), e))?;
        Ok(Some(local))
    }

    /// The snapshot of `commit`.
    fn snapshot(
        &self,
        repo: gix::Repository,
        commit: ObjectId,
    ) -> Result<GitSnapshot, SourceError> {
        let root = commit_tree(&repo, commit)?;
        let subtree =
            subtree(&repo, root, &self.config.path)?.ok_or_else(|| SourceError::PathNotFound {
                path: self.config.path.clone(),
                revision: commit.to_string(),
            })?;
        let ignore_file = ignore_file_of(&repo, root)?;
        let filter = Filter::new(
            ignore_file.as_ref().map(|(_, text)| text.as_str()),
            &self.config.excludes,
        )?;
        Ok(GitSnapshot {
            repo,
            commit,
            revision: commit.to_string(),
            root,
            subtree,
            subdir: self.config.path.clone(),
            listed: OnceLock::new(),
            filter,
        })
    }

    /// What changed under the path between `last` and `snapshot`.
    fn changes(&self, snapshot: &GitSnapshot, last: Option<&str>) -> Result<Changes, SourceError> {
        let Some(last) = last.and_then(|l| ObjectId::from_hex(l.as_bytes()).ok()) else {
            return Ok(Changes::Full);
        };
        let repo = &snapshot.repo;
        let new = snapshot.commit;
        if last == new {
            return Ok(Changes::Paths(Vec::new()));
        }
        // The last commit may be missing from a fresh cache: a full pass.
        let Ok(last_root) = commit_tree(repo, last) else {
            return Ok(Changes::Full);
        };
        if !is_ancestor(repo, last, new) {
            return Ok(Changes::Full);
        }
        // A changed ignore file changes which files count: read them all.
        let ignore_id = |root| ignore_file_of(repo, root).map(|f| f.map(|(id, _)| id));
        if ignore_id(last_root)? != ignore_id(snapshot.root)? {
            return Ok(Changes::Full);
        }
        let old = subtree(repo, last_root, &self.config.path)?;
        if old == Some(snapshot.subtree) {
            return Ok(Changes::Paths(Vec::new()));
        }
        let mut changes = diff_trees(repo, old, snapshot.subtree, &self.config.path)?;
        changes.retain(|c| snapshot.filter.includes(&c.path));
        Ok(Changes::Paths(changes))
    }
}

impl Source for GitSource {
    fn deadline(&self) -> Option<(Duration, String)> {
        Some((self.config.fetch_timeout, self.config.url.clone()))
    }

    fn poll(&self, last_applied: Option<&str>) -> Result<Update, SourceError> {
        // Opened (created, the first time) before the lock file is made:
        // gix initialises only an empty directory.
        let repo = self.open_cache()?;
        let _lock = cache_lock::hold(&self.config.cache_dir)?;
        let commit = self.fetch(&repo)?;
        let snapshot = self.snapshot(repo, commit)?;
        let changes = self.changes(&snapshot, last_applied)?;
        Ok(Update {
            snapshot: Box::new(snapshot),
            changes,
        })
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn peel_to_commit(repo: &gix::Repository, local: &str, url: &str) -> Result<ObjectId, SourceError> {
    let mut reference = repo
        .find_reference(local)
        .map_err(|e| SourceError::git(format!("reading fetched ref {local} of {url}"), e))?;
    let commit = reference
        .peel_to_commit()
        .map_err(|e| SourceError::git(format!("{local} of {url} is not a commit"), e))?;
    Ok(commit.id)
}

/// The repository's `.kflexignore` at the root of tree `root`: its blob id
/// and text (non-UTF-8 bytes replaced).
fn ignore_file_of(
    repo: &gix::Repository,
    root: ObjectId,
) -> Result<Option<(ObjectId, String)>, SourceError> {
    let tree = repo
        .find_tree(root)
        .map_err(|e| SourceError::git(format!("reading tree {root}"), e))?;
    let Some(entry) = tree
        .lookup_entry_by_path(IGNORE_FILE)
        .map_err(|e| SourceError::git(format!("reading {IGNORE_FILE}"), e))?
    else {
        return Ok(None);
    };
    if !entry.mode().is_blob() {
        return Ok(None);
    }
    let id = entry.object_id();
    let blob = repo
        .find_object(id)
        .map_err(|e| SourceError::git(format!("reading {IGNORE_FILE}"), e))?;
    Ok(Some((id, blob.data.to_str_lossy().into_owned())))
}

fn commit_tree(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId, SourceError> {
    let commit = repo
        .find_commit(commit)
        .map_err(|e| SourceError::git(format!("reading commit {commit}"), e))?;
    commit
        .tree_id()
        .map(gix::Id::detach)
        .map_err(|e| SourceError::git(format!("reading the tree of commit {}", commit.id), e))
}

/// The tree at `dir` (repository-relative, empty for the root) under `root`;
/// `None` when it does not exist or is not a directory.
fn subtree(
    repo: &gix::Repository,
    root: ObjectId,
    dir: &str,
) -> Result<Option<ObjectId>, SourceError> {
    if dir.is_empty() {
        return Ok(Some(root));
    }
    let tree = repo
        .find_tree(root)
        .map_err(|e| SourceError::git(format!("reading tree {root}"), e))?;
    let entry = tree
        .lookup_entry_by_path(dir)
        .map_err(|e| SourceError::git(format!("looking up {dir} in tree {root}"), e))?;
    Ok(entry.filter(|e| e.mode().is_tree()).map(|e| e.object_id()))
}

/// Whether `ancestor` is reachable from `tip` through the history present in
/// the cache (a shallow boundary ends the walk: not an ancestor, as far as
/// we can tell, which means a full pass).
fn is_ancestor(repo: &gix::Repository, ancestor: ObjectId, tip: ObjectId) -> bool {
    let mut queue = VecDeque::from([tip]);
    let mut seen = BTreeSet::new();
    while let Some(id) = queue.pop_front() {
        if id == ancestor {
            return true;
        }
        if !seen.insert(id) || seen.len() > MAX_ANCESTRY_WALK {
            continue;
        }
        let Ok(commit) = repo.find_commit(id) else {
            continue;
        };
        queue.extend(commit.parent_ids().map(gix::Id::detach));
    }
    false
}

/// Changed manifest files between two trees (both at the source's path),
/// without reading any blob: unchanged subtrees are skipped by id.
fn diff_trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: ObjectId,
    prefix: &str,
) -> Result<Vec<Change>, SourceError> {
    let load = |id: Option<ObjectId>| -> Result<Vec<u8>, SourceError> {
        match id {
            Some(id) => repo
                .find_tree(id)
                .map(|t| t.detach().data)
                .map_err(|e| SourceError::git(format!("reading tree {id}"), e)),
            None => Ok(Vec::new()),
        }
    };
    let (old_data, new_data) = (load(old)?, load(Some(new))?);
    let kind = repo.object_hash();
    let mut recorder = gix::diff::tree::Recorder::default();
    gix::diff::tree(
        gix::objs::TreeRefIter::from_bytes(&old_data, kind),
        gix::objs::TreeRefIter::from_bytes(&new_data, kind),
        gix::diff::tree::State::default(),
        &repo.objects,
        &mut recorder,
    )
    .map_err(|e| SourceError::git("diffing trees", e))?;
    let mut changes = Vec::new();
    for change in recorder.records {
        let (mode, path, kind) = match &change {
            TreeChange::Addition {
                entry_mode, path, ..
            } => (entry_mode, path, ChangeKind::Added),
            TreeChange::Deletion {
                entry_mode, path, ..
            } => (entry_mode, path, ChangeKind::Deleted),
            TreeChange::Modification {
                entry_mode, path, ..
            } => (entry_mode, path, ChangeKind::Modified),
        };
        if mode.is_tree() {
            continue;
        }
        let path = path.to_str_lossy();
        let path = if prefix.is_empty() {
            path.into_owned()
        } else {
            format!("{prefix}/{path}")
        };
        if is_manifest(&path) {
            changes.push(Change { path, kind });
        }
    }
    changes.sort();
    Ok(changes)
}

/// One commit of the repository, read from the object store.
pub struct GitSnapshot {
    repo: gix::Repository,
    commit: ObjectId,
    revision: String,
    root: ObjectId,
    subtree: ObjectId,
    subdir: String,
    /// Every entry under `subdir` (paths relative to it), once [`list`]
    /// walked the tree: a full pass then reads each file without looking
    /// it up from the root again. Without it, every read re-parses the
    /// directory's tree (linear in its entries), quadratic over a pass:
    /// 10,000 files in one directory took seconds and ~100 MiB of churn.
    ///
    /// [`list`]: Snapshot::list
    listed: OnceLock<HashMap<String, (EntryKind, ObjectId)>>,
    /// What is read (dot-paths, `.kflexignore`, `--exclude`).
    filter: Filter,
}

impl GitSnapshot {
    /// The snapshot of a tree that need not be committed yet: `kflex create
    /// --git` validates exactly the tree it is about to commit, through the
    /// same reads as a pass of the reconciler.
    pub fn of_tree(
        repo: gix::Repository,
        tree: ObjectId,
        subdir: &str,
    ) -> Result<Self, SourceError> {
        let subdir = normalize_subdir(subdir)?;
        let subtree = subtree(&repo, tree, &subdir)?.ok_or_else(|| SourceError::PathNotFound {
            path: subdir.clone(),
            revision: tree.to_string(),
        })?;
        // The tree's own `.kflexignore`, as a pass at that tree reads it
        // (no `--exclude`: that is the reconciler's flag, not the tree's).
        let ignore_file = ignore_file_of(&repo, tree)?;
        let filter = Filter::new(ignore_file.as_ref().map(|(_, text)| text.as_str()), &[])?;
        Ok(Self {
            repo,
            commit: tree,
            revision: tree.to_string(),
            root: tree,
            subtree,
            subdir,
            listed: OnceLock::new(),
            filter,
        })
    }

    /// The entry at a repository-relative path: kind and object id.
    fn entry(&self, path: &str) -> Result<Option<(EntryKind, ObjectId)>, ReadError> {
        if let Some(listed) = self.listed.get() {
            let rel = if self.subdir.is_empty() {
                Some(path)
            } else {
                path.strip_prefix(self.subdir.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
            };
            // Under the listed directory the map is complete; elsewhere
            // (a symlink's target) look it up from the root.
            if let Some(rel) = rel {
                return Ok(listed.get(rel).copied());
            }
        }
        let tree = self
            .repo
            .find_tree(self.root)
            .map_err(|e| ReadError::Git(e.to_string()))?;
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(|e| ReadError::Git(e.to_string()))?;
        Ok(entry.map(|e| (e.mode().kind(), e.object_id())))
    }

    /// Resolves a symlink at `path` with target `target` to a
    /// repository-relative path, refusing targets that leave the repository.
    fn resolve_link(path: &str, target: &str) -> Result<String, ReadError> {
        if target.starts_with('/') {
            return Err(ReadError::SymlinkOutside {
                target: target.to_owned(),
            });
        }
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(ReadError::SymlinkOutside {
                            target: target.to_owned(),
                        });
                    }
                }
                other => parts.push(other),
            }
        }
        Ok(parts.join("/"))
    }

    fn blob(&self, id: ObjectId) -> Result<Vec<u8>, ReadError> {
        self.repo
            .find_object(id)
            .map(|o| o.detach().data)
            .map_err(|e| ReadError::Git(e.to_string()))
    }
}

impl Snapshot for GitSnapshot {
    fn revision(&self) -> &str {
        &self.revision
    }

    fn list(&self) -> Result<Listing, SourceError> {
        let tree = self
            .repo
            .find_tree(self.subtree)
            .map_err(|e| SourceError::git(format!("reading tree {}", self.subtree), e))?;
        let mut recorder = gix::traverse::tree::Recorder::default();
        tree.traverse()
            .breadthfirst(&mut recorder)
            .map_err(|e| SourceError::git(format!("listing tree {}", self.subtree), e))?;
        let mut listing = Listing::default();
        let mut listed = HashMap::with_capacity(recorder.records.len());
        for entry in recorder.records {
            let rel = entry.filepath.to_str_lossy();
            listed.insert(rel.clone().into_owned(), (entry.mode.kind(), entry.oid));
            let path = if self.subdir.is_empty() {
                rel.into_owned()
            } else {
                format!("{}/{rel}", self.subdir)
            };
            // Links are looked at below (one leading out is refused
            // whatever its name), unless under a dot-path.
            let link = entry.mode.is_link() && !is_hidden(&path);
            if !link && !self.filter.includes(&path) {
                continue;
            }
            match entry.mode.kind() {
                EntryKind::Blob | EntryKind::BlobExecutable => listing.files.push(path),
                EntryKind::Link => {
                    // Links leading out are refused whatever their name; links
                    // inside are listed when named like manifests (and read
                    // through), links to directories are not followed.
                    let target = self.blob(entry.oid).unwrap_or_default();
                    match Self::resolve_link(&path, &target.to_str_lossy()) {
                        Err(error) => listing.refused.push(Refused { path, error }),
                        Ok(_) if self.filter.includes(&path) => listing.files.push(path),
                        Ok(_) => {}
                    }
                }
                _ => {}
            }
        }
        listing.files.sort();
        listing.refused.sort_by(|a, b| a.path.cmp(&b.path));
        // Another `list` of the same snapshot found the same entries.
        let _ = self.listed.set(listed);
        Ok(listing)
    }

    fn read(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
        check_relative(path)?;
        let mut path = path.to_owned();
        for _ in 0..=MAX_SYMLINK_HOPS {
            match self.entry(&path)? {
                None => return Err(ReadError::NotFound),
                Some((EntryKind::Blob | EntryKind::BlobExecutable, id)) => {
                    // The header gives the size without inflating the blob.
                    let header = self
                        .repo
                        .find_header(id)
                        .map_err(|e| ReadError::Git(e.to_string()))?;
                    if header.size() > max_bytes {
                        return Err(ReadError::TooLarge {
                            size: header.size(),
                            limit: max_bytes,
                        });
                    }
                    return self.blob(id);
                }
                Some((EntryKind::Link, id)) => {
                    let target = self.blob(id)?;
                    path = Self::resolve_link(&path, &target.to_str_lossy())?;
                    if path.is_empty() {
                        return Err(ReadError::NotAFile);
                    }
                }
                Some(_) => return Err(ReadError::NotAFile),
            }
        }
        Err(ReadError::SymlinkLoop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_stay_inside() {
        assert_eq!(
            GitSnapshot::resolve_link("a/b.yaml", "c.yaml").unwrap(),
            "a/c.yaml"
        );
        assert_eq!(
            GitSnapshot::resolve_link("a/b.yaml", "../c.yaml").unwrap(),
            "c.yaml"
        );
        assert!(GitSnapshot::resolve_link("a/b.yaml", "../../c.yaml").is_err());
        assert!(GitSnapshot::resolve_link("b.yaml", "/etc/passwd").is_err());
    }

    #[test]
    fn auth_never_prints_secrets() {
        let auth = GitAuth::token("s3cret");
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
