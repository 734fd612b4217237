//! A checked-out directory as a source (`--dir PATH`).
//!
//! Each poll walks the directory; the revision is a fingerprint of every
//! manifest's path, size and modification time, so an unchanged directory is
//! recognised without reading files. Watching (notify) comes later; until then
//! a changed directory means a full pass.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{
    Changes, Filter, IGNORE_FILE, Listing, ReadError, Refused, Snapshot, Source, SourceError,
    Update, check_relative, normalize_subdir,
};

/// Directories nested deeper than this are not walked: real repositories are
/// shallow, and the cap bounds the walk on hostile trees.
const MAX_DIR_DEPTH: usize = 32;

/// A directory on disk. The root is what symlinks must not leave; `subdir`
/// (`--path`) selects what is read.
#[derive(Clone, Debug)]
pub struct DirSource {
    root: PathBuf,
    subdir: String,
    /// `--exclude` patterns.
    excludes: Vec<String>,
}

impl DirSource {
    /// A source reading `subdir` (repository-relative, may be empty) of the
    /// directory `root`.
    pub fn new(root: impl AsRef<Path>, subdir: &str) -> Result<Self, SourceError> {
        let root = root.as_ref();
        let root = fs::canonicalize(root).map_err(|source| SourceError::Io {
            path: root.display().to_string(),
            source,
        })?;
        Ok(Self {
            root,
            subdir: normalize_subdir(subdir)?,
            excludes: Vec::new(),
        })
    }

    /// Also skips what these patterns (gitignore syntax) match.
    pub fn with_excludes(mut self, excludes: Vec<String>) -> Self {
        self.excludes = excludes;
        self
    }

    /// The skip rule as the directory's `.kflexignore` says now.
    fn filter(&self) -> Result<Filter, SourceError> {
        let text = match fs::read(self.root.join(IGNORE_FILE)) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(SourceError::Io {
                    path: IGNORE_FILE.to_owned(),
                    source,
                });
            }
        };
        Filter::new(text.as_deref(), &self.excludes)
    }

    /// The snapshot of the directory as it is now.
    pub fn snapshot(&self) -> Result<DirSnapshot, SourceError> {
        let mut snapshot = DirSnapshot {
            root: self.root.clone(),
            subdir: self.subdir.clone(),
            revision: String::new(),
            filter: self.filter()?,
        };
        snapshot.revision = snapshot.fingerprint()?;
        Ok(snapshot)
    }
}

impl Source for DirSource {
    fn settled(&self, revision: &str) -> bool {
        self.snapshot().is_ok_and(|s| s.revision == revision)
    }

    fn poll(&self, last_applied: Option<&str>) -> Result<Update, SourceError> {
        let snapshot = self.snapshot()?;
        let changes = if last_applied == Some(snapshot.revision.as_str()) {
            Changes::Paths(Vec::new())
        } else {
            Changes::Full
        };
        Ok(Update {
            snapshot: Box::new(snapshot),
            changes,
        })
    }
}

/// The directory at one moment. Reads go to the disk, so a file edited after
/// the snapshot was taken is read as it is then.
#[derive(Clone, Debug)]
pub struct DirSnapshot {
    root: PathBuf,
    subdir: String,
    revision: String,
    filter: Filter,
}

impl DirSnapshot {
    fn fingerprint(&self) -> Result<String, SourceError> {
        let listing = self.list()?;
        let mut hasher = DefaultHasher::new();
        for path in &listing.files {
            path.hash(&mut hasher);
            // A file that vanished between listing and stat simply changes
            // the fingerprint; the read reports it.
            if let Ok(meta) = fs::metadata(self.root.join(path)) {
                meta.len().hash(&mut hasher);
                if let Ok(modified) = meta.modified() {
                    modified.hash(&mut hasher);
                }
            }
        }
        for refused in &listing.refused {
            refused.path.hash(&mut hasher);
        }
        Ok(format!("dir:{:016x}", hasher.finish()))
    }

    fn walk(
        &self,
        dir: &Path,
        rel: &str,
        depth: usize,
        out: &mut Listing,
    ) -> Result<(), SourceError> {
        let entries = fs::read_dir(dir).map_err(|source| SourceError::Io {
            path: display_rel(rel),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| SourceError::Io {
                path: display_rel(rel),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                out.refused.push(Refused {
                    path: join_rel(rel, &entry.file_name().to_string_lossy()),
                    error: ReadError::NonUtf8Name,
                });
                continue;
            };
            let path = join_rel(rel, &name);
            let meta = fs::symlink_metadata(entry.path()).map_err(|source| SourceError::Io {
                path: path.clone(),
                source,
            })?;
            if meta.is_symlink() {
                self.list_symlink(&entry.path(), path, out);
            } else if meta.is_dir() {
                // `.git` and other hidden directories hold no manifests.
                if self.filter.walks(&path) && depth < MAX_DIR_DEPTH {
                    self.walk(&entry.path(), &path, depth + 1, out)?;
                }
            } else if meta.is_file() && self.filter.includes(&path) {
                out.files.push(path);
            }
        }
        Ok(())
    }

    /// A symlink to a manifest inside the root is listed (and read through);
    /// one leading outside is refused. Symlinked directories inside the root
    /// are not followed: their files are reached by their real path, and
    /// following them could loop.
    fn list_symlink(&self, full: &Path, path: String, out: &mut Listing) {
        match fs::canonicalize(full) {
            Ok(target) if !target.starts_with(&self.root) => out.refused.push(Refused {
                path,
                error: ReadError::SymlinkOutside {
                    target: target.display().to_string(),
                },
            }),
            Ok(target) if target.is_dir() => {}
            // Dangling links named like manifests are listed so that the read
            // reports them.
            _ if self.filter.includes(&path) => out.files.push(path),
            _ => {}
        }
    }
}

impl Snapshot for DirSnapshot {
    fn revision(&self) -> &str {
        &self.revision
    }

    fn list(&self) -> Result<Listing, SourceError> {
        let start = if self.subdir.is_empty() {
            self.root.clone()
        } else {
            self.root.join(&self.subdir)
        };
        if !start.is_dir() {
            return Err(SourceError::PathNotFound {
                path: self.subdir.clone(),
                revision: self.root.display().to_string(),
            });
        }
        let mut listing = Listing::default();
        self.walk(&start, &self.subdir, 0, &mut listing)?;
        listing.files.sort();
        listing.refused.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing)
    }

    fn read(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
        check_relative(path)?;
        let full = self.root.join(path);
        let meta = fs::symlink_metadata(&full).map_err(not_found_or_io)?;
        let target = if meta.is_symlink() {
            let target = fs::canonicalize(&full).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ReadError::DanglingSymlink {
                    target: fs::read_link(&full)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default(),
                },
                _ => ReadError::Io(e),
            })?;
            if !target.starts_with(&self.root) {
                return Err(ReadError::SymlinkOutside {
                    target: target.display().to_string(),
                });
            }
            target
        } else {
            // A parent directory may itself be a symlink leading out.
            let target = fs::canonicalize(&full).map_err(not_found_or_io)?;
            if !target.starts_with(&self.root) {
                return Err(ReadError::SymlinkOutside {
                    target: target.display().to_string(),
                });
            }
            target
        };
        let file = fs::File::open(&target).map_err(not_found_or_io)?;
        let meta = file.metadata().map_err(ReadError::Io)?;
        if !meta.is_file() {
            return Err(ReadError::NotAFile);
        }
        if meta.len() > max_bytes {
            return Err(ReadError::TooLarge {
                size: meta.len(),
                limit: max_bytes,
            });
        }
        // The file may grow between stat and read: never read past the limit.
        let mut bytes = Vec::new();
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if len > max_bytes {
            return Err(ReadError::TooLarge {
                size: len,
                limit: max_bytes,
            });
        }
        Ok(bytes)
    }
}

fn not_found_or_io(e: std::io::Error) -> ReadError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ReadError::NotFound
    } else {
        ReadError::Io(e)
    }
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn display_rel(rel: &str) -> String {
    if rel.is_empty() {
        ".".to_owned()
    } else {
        rel.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn lists_manifests_sorted_skipping_hidden_dirs() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b/x.yml", "a: 1");
        write(dir.path(), "a.yaml", "a: 1");
        write(dir.path(), "README.md", "#");
        write(dir.path(), ".git/config.yaml", "a: 1");
        let source = DirSource::new(dir.path(), "").unwrap();
        let listing = source.snapshot().unwrap().list().unwrap();
        assert_eq!(listing.files, vec!["a.yaml", "b/x.yml"]);
        assert!(listing.refused.is_empty());
    }

    #[test]
    fn subdir_paths_stay_repository_relative() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "tenants/a.yaml", "a: 1");
        write(dir.path(), "other/b.yaml", "a: 1");
        let source = DirSource::new(dir.path(), "./tenants/").unwrap();
        let snapshot = source.snapshot().unwrap();
        assert_eq!(snapshot.list().unwrap().files, vec!["tenants/a.yaml"]);
        assert_eq!(snapshot.read("tenants/a.yaml", 100).unwrap(), b"a: 1");
    }

    #[test]
    fn refuses_large_files_and_escaping_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.yaml", "a: 1");
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "big.yaml", &"#".repeat(101));
        std::os::unix::fs::symlink(
            outside.path().join("secret.yaml"),
            dir.path().join("link.yaml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linkdir")).unwrap();
        let snapshot = DirSource::new(dir.path(), "").unwrap().snapshot().unwrap();
        let listing = snapshot.list().unwrap();
        assert_eq!(listing.files, vec!["big.yaml"]);
        let refused: Vec<_> = listing.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(refused, vec!["link.yaml", "linkdir"]);
        assert!(matches!(
            snapshot.read("big.yaml", 100),
            Err(ReadError::TooLarge {
                size: 101,
                limit: 100
            })
        ));
        assert!(matches!(
            snapshot.read("link.yaml", 100),
            Err(ReadError::SymlinkOutside { .. })
        ));
        assert!(matches!(
            snapshot.read("linkdir/secret.yaml", 100),
            Err(ReadError::SymlinkOutside { .. })
        ));
    }

    #[test]
    fn unchanged_directory_has_no_changes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "a: 1");
        let source = DirSource::new(dir.path(), "").unwrap();
        let first = source.poll(None).unwrap();
        assert_eq!(first.changes, Changes::Full);
        let second = source.poll(Some(first.snapshot.revision())).unwrap();
        assert_eq!(second.changes, Changes::Paths(Vec::new()));
        write(dir.path(), "b.yaml", "a: 1");
        let third = source.poll(Some(first.snapshot.revision())).unwrap();
        assert_eq!(third.changes, Changes::Full);
    }
}
