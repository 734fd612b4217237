//! One process at a time fetches into a cache, and what a killed one left
//! behind is cleared. gix takes `*.lock` files as it writes (refs,
//! `shallow`, `packed-refs`) and fails at once if one exists; a process
//! killed mid-fetch leaves them, and every later fetch would fail until
//! someone deleted them by hand. An OS file lock on the cache, which the
//! kernel drops when its holder dies, tells the two cases apart: whoever
//! holds it knows any `*.lock` file (and half-written `objects/pack/.tmp*`
//! pack) is left over, and removes it.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::SourceError;

/// Not `*.lock`: the sweep below must not take it for a left-over.
const LOCK_FILE: &str = "kubeflex-reconciler.flock";

/// Waits for the cache's lock (another process's fetch takes
/// seconds at most) and clears what killed fetches left.
pub fn hold(cache: &Path) -> Result<File, SourceError> {
    let io = |source| SourceError::Io {
        path: cache.display().to_string(),
        source,
    };
    std::fs::create_dir_all(cache).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.join(LOCK_FILE))
        .map_err(io)?;
    file.lock().map_err(io)?;
    sweep(&cache.join("refs"));
    let pack = cache.join("objects").join("pack");
    for entry in std::fs::read_dir(&pack).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp") {
            remove(&entry.path());
        }
    }
    for name in [
        "shallow.lock",
        "packed-refs.lock",
        "config.lock",
        "HEAD.lock",
    ] {
        let path = cache.join(name);
        if path.exists() {
            remove(&path);
        }
    }
    Ok(file)
}

/// Removes `*.lock` files under `dir` (the refs).
fn sweep(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => sweep(&path),
            Ok(_) if path.extension().is_some_and(|e| e == "lock") => remove(&path),
            _ => {}
        }
    }
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "removed a file a killed fetch left in the Git cache")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a file a killed fetch left in the Git cache")
        }
    }
}
