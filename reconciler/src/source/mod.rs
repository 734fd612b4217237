//! Where the desired state comes from: a Git repository (`git`) or a local
//! directory (`dir`). A source yields a [`Snapshot`] (a revision plus a way to
//! read its files) and what changed since the revision last applied, so a new
//! commit costs only the files it touched.
//!
//! Paths are always relative to the repository root and use `/`, whatever
//! `--path` selects, so that messages name files the way `git` shows them.

pub mod dir;
pub mod filter;
pub mod git;

use std::sync::Arc;
use std::time::Duration;

pub use dir::{DirSnapshot, DirSource};
pub use filter::{Filter, IGNORE_FILE, is_hidden};
pub use git::{GitAuth, GitSnapshot, GitSource, GitSourceConfig, read_secret};

/// One state of the source, e.g. a commit.
pub trait Snapshot: Send {
    /// What this snapshot is: a commit id (hex) for Git, a content
    /// fingerprint for a directory.
    fn revision(&self) -> &str;

    /// The manifest files (`.yaml`/`.yml`) under the source's path, sorted,
    /// plus entries refused outright (e.g. a symlinked directory that leads
    /// outside the repository).
    fn list(&self) -> Result<Listing, SourceError>;

    /// The bytes of one file. Refuses files larger than `max_bytes` without
    /// reading them whole, and symlinks that lead outside the repository.
    fn read(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, ReadError>;
}

/// The files of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Manifest files, sorted.
    pub files: Vec<String>,
    /// Entries that cannot be read at all, with the reason.
    pub refused: Vec<Refused>,
}

/// An entry of a listing that was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub path: String,
    pub error: ReadError,
}

impl Clone for Refused {
    fn clone(&self) -> Self {
        Self {
            path: self.path.clone(),
            error: self.error.clone_lossy(),
        }
    }
}

/// What changed between the revision last applied and a new snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changes {
    /// Everything must be read: there is no previous revision, it is not an
    /// ancestor of the new one (history was rewritten), or the source cannot
    /// tell.
    Full,
    /// Only these manifest files (under the source's path) changed. Empty when
    /// the new snapshot is the revision last applied, or when the commits in
    /// between did not touch the path.
    Paths(Vec<Change>),
}

/// One changed file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

/// How a file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    Added,
    Modified,
    /// The file is gone: the objects it defined are candidates for pruning.
    Deleted,
}

/// A new snapshot and how it differs from the revision last applied.
pub struct Update {
    pub snapshot: Box<dyn Snapshot>,
    pub changes: Changes,
}

impl std::fmt::Debug for Update {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Update")
            .field("revision", &self.snapshot.revision())
            .field("changes", &self.changes)
            .finish()
    }
}

/// A source of desired state. Calls block (network, disk): from async code
/// use [`poll_blocking`].
pub trait Source: Send + Sync {
    /// Brings the source up to date and returns its newest snapshot, with the
    /// changes since `last_applied` (a revision an earlier snapshot returned).
    fn poll(&self, last_applied: Option<&str>) -> Result<Update, SourceError>;

    /// Whether the source still is at `revision`: a directory is listed
    /// again, so a checkout, rsync or editor save caught half-way is seen
    /// as such before anything is pruned. Git commits never change.
    fn settled(&self, _revision: &str) -> bool {
        true
    }

    /// How long one poll may take (`--fetch-timeout`); `None`: unbounded.
    fn deadline(&self) -> Option<(Duration, String)> {
        None
    }
}

/// [`Source::poll`] on tokio's blocking pool, so that fetching never stalls
/// the async runtime, within the source's deadline. A poll past its
/// deadline is abandoned (its thread ends on the transport's own read
/// timeouts) and reported as [`SourceError::Timeout`].
pub async fn poll_blocking(
    source: Arc<dyn Source>,
    last_applied: Option<String>,
) -> Result<Update, SourceError> {
    let deadline = source.deadline();
    let task = tokio::task::spawn_blocking(move || source.poll(last_applied.as_deref()));
    let joined = match deadline {
        Some((after, url)) => match tokio::time::timeout(after, task).await {
            Ok(joined) => joined,
            Err(_) => return Err(SourceError::Timeout { url, after }),
        },
        None => task.await,
    };
    joined.map_err(|e| SourceError::Join(e.to_string()))?
}

/// `url` without credentials, for anything shown or stored: the user-info
/// of `scheme://user:password@host/…` is dropped (for `ssh://`, only the
/// password: the user name is part of the address and no secret).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    if scheme.eq_ignore_ascii_case("ssh") {
        let user = userinfo.split(':').next().unwrap_or_default();
        return format!("{scheme}://{user}@{host}{path}");
    }
    format!("{scheme}://{host}{path}")
}

/// The user name and password in `url`'s user-info (percent-decoded), if any.
pub fn url_credentials(url: &str) -> Option<(String, String)> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    Some((percent_decode(user), percent_decode(password)))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a path names a manifest file the reconciler reads.
pub fn is_manifest(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// Whether `path` (repository-relative) lies under `dir` (repository-relative,
/// empty for the root).
pub fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Normalises a user-given `--path`: no leading `./` or `/`, no trailing `/`,
/// and no `..` (a path must stay inside the repository).
pub fn normalize_subdir(path: &str) -> Result<String, SourceError> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(SourceError::InvalidPath {
                    path: path.to_owned(),
                    reason: "`..` is not allowed",
                });
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// Why a snapshot could not be produced or listed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `--path` or a requested path is malformed.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// A directory of the source could not be read.
    #[error("reading {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `--path` does not exist in the snapshot, or is not a directory.
    #[error("path {path:?} is not a directory in revision {revision}")]
    PathNotFound { path: String, revision: String },
    /// `--ref` names nothing the remote has.
    #[error("{url}: no branch, tag or commit named {reference:?}")]
    RefNotFound { url: String, reference: String },
    /// A Git operation failed. `cause` is the whole chain of gix's error
    /// (the reason, e.g. "credentials were not accepted", is usually at its
    /// end), flattened so that logs and status show it; gix's errors name
    /// URLs and refs, never credentials.
    #[error("{context}: {cause}")]
    Git { context: String, cause: String },
    /// Credentials configured for a plain `http://` remote: gix never
    /// sends them in clear text, so every fetch would fail.
    #[error("{url}: credentials are only sent over https://, not in clear text over http://")]
    CleartextCredentials { url: String },
    /// The blocking task panicked or was cancelled.
    #[error("source task failed: {0}")]
    Join(String),
    /// A pattern of `.kflexignore` or `--exclude` is malformed.
    #[error("{origin}: invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        origin: &'static str,
        pattern: String,
        reason: String,
    },
    /// The source holds more than one pass reads.
    #[error(
        "refusing the source: it has over {limit} {what} to read ({found} so far); raise {flag} if this is meant"
    )]
    TooMuch {
        what: &'static str,
        found: u64,
        limit: u64,
        flag: &'static str,
    },
    /// A poll took longer than `--fetch-timeout`.
    #[error("fetching {url} timed out after {after:?} (--fetch-timeout)")]
    Timeout { url: String, after: Duration },
}

impl SourceError {
    pub(crate) fn git(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let mut cause = source.to_string();
        let mut next = source.source();
        while let Some(e) = next {
            let text = e.to_string();
            // Wrappers often repeat their source's text.
            if !cause.ends_with(&text) {
                cause.push_str(": ");
                cause.push_str(&text);
            }
            next = e.source();
        }
        Self::Git {
            context: context.into(),
            cause,
        }
    }

    /// A stable, short label for metrics and status.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidPath { .. } => "invalid_path",
            Self::Io { .. } => "io",
            Self::PathNotFound { .. } => "path_not_found",
            Self::RefNotFound { .. } => "ref_not_found",
            Self::Git { .. } => "git",
            Self::CleartextCredentials { .. } => "cleartext_credentials",
            Self::Join(_) => "join",
            Self::Timeout { .. } => "timeout",
            Self::InvalidPattern { .. } => "invalid_pattern",
            Self::TooMuch { .. } => "too_much",
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

/// Why one file could not be read. Messages omit the path: the caller's
/// report (`path:line:column: message`) names it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("file does not exist")]
    NotFound,
    #[error("not a regular file")]
    NotAFile,
    #[error("file is {size} bytes, over the limit of {limit} bytes; refusing it")]
    TooLarge { size: u64, limit: u64 },
    #[error("symlink leads outside the repository (to {target}); refusing it")]
    SymlinkOutside { target: String },
    #[error("symlink target {target} does not exist")]
    DanglingSymlink { target: String },
    #[error("too many levels of symlinks")]
    SymlinkLoop,
    #[error("file name is not valid UTF-8")]
    NonUtf8Name,
    #[error("invalid path: {0}")]
    InvalidPath(&'static str),
    #[error("read failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("reading the Git object failed: {0}")]
    Git(String),
}

impl PartialEq for ReadError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for ReadError {}

impl ReadError {
    /// A copy; an I/O error keeps only its kind and message.
    pub fn clone_lossy(&self) -> Self {
        match self {
            Self::NotFound => Self::NotFound,
            Self::NotAFile => Self::NotAFile,
            Self::TooLarge { size, limit } => Self::TooLarge {
                size: *size,
                limit: *limit,
            },
            Self::SymlinkOutside { target } => Self::SymlinkOutside {
                target: target.clone(),
            },
            Self::DanglingSymlink { target } => Self::DanglingSymlink {
                target: target.clone(),
            },
            Self::SymlinkLoop => Self::SymlinkLoop,
            Self::NonUtf8Name => Self::NonUtf8Name,
            Self::InvalidPath(reason) => Self::InvalidPath(reason),
            Self::Io(e) => Self::Io(std::io::Error::new(e.kind(), e.to_string())),
            Self::Git(msg) => Self::Git(msg.clone()),
        }
    }
}

/// Checks a repository-relative path given by a caller: relative, `/`
/// separated, no `.`/`..`/empty components.
pub(crate) fn check_relative(path: &str) -> Result<(), ReadError> {
    if path.is_empty() {
        return Err(ReadError::InvalidPath("empty path"));
    }
    if path.starts_with('/') {
        return Err(ReadError::InvalidPath("absolute path"));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(ReadError::InvalidPath(
            "empty, `.` or `..` component in path",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_stay_in_shown_urls() {
        assert_eq!(
            redact_url("https://user:s3cret@git.example/r.git"),
            "https://git.example/r.git"
        );
        assert_eq!(
            redact_url("https://tok3n@git.example/r.git"),
            "https://git.example/r.git"
        );
        assert_eq!(
            redact_url("ssh://git:pw@h:22/r.git"),
            "ssh://git@h:22/r.git"
        );
        assert_eq!(redact_url("git@h:r.git"), "git@h:r.git");
        assert_eq!(redact_url("file:///tmp/a@b/r"), "file:///tmp/a@b/r");
        assert_eq!(
            url_credentials("https://u%40x:p%3A1@h/r"),
            Some(("u@x".to_owned(), "p:1".to_owned()))
        );
        assert_eq!(url_credentials("https://h/r"), None);
    }

    #[test]
    fn subdir_normalisation() {
        assert_eq!(normalize_subdir("").unwrap(), "");
        assert_eq!(normalize_subdir("./a/b/").unwrap(), "a/b");
        assert_eq!(normalize_subdir("/a//b").unwrap(), "a/b");
        assert!(normalize_subdir("a/../b").is_err());
    }

    #[test]
    fn under() {
        assert!(is_under("a/b.yaml", ""));
        assert!(is_under("a/b.yaml", "a"));
        assert!(!is_under("ab/c.yaml", "a"));
        assert!(!is_under("a", "a"));
    }

    #[test]
    fn relative_paths() {
        assert!(check_relative("a/b.yaml").is_ok());
        assert!(check_relative("../b.yaml").is_err());
        assert!(check_relative("/b.yaml").is_err());
        assert!(check_relative("a//b.yaml").is_err());
    }
}
