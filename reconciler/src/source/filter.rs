//! Which files of a source are read: the one rule Git mode, directory mode
//! and `kflex validate` share. A path is read when it is a manifest
//! (`.yaml`/`.yml`), no component of it starts with a dot (`.git/`,
//! `.github/workflows/ci.yml`, `.draft.yaml`), and neither the repository's
//! `.kflexignore` (gitignore syntax, at the repository root) nor an
//! `--exclude` pattern (gitignore syntax too) matches it or a directory
//! above it.

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::{SourceError, is_manifest};

/// Name of the ignore file, at the repository root.
pub const IGNORE_FILE: &str = ".kflexignore";

/// The skip rule of one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `None` when there is nothing to match (no ignore file, no excludes).
    matcher: Option<Gitignore>,
}

impl Filter {
    /// The rule for an ignore file's text (if the repository has one) and
    /// `--exclude` patterns. A malformed pattern is an error naming it.
    pub fn new(ignore_file: Option<&str>, excludes: &[String]) -> Result<Self, SourceError> {
        let lines: Vec<(&str, &str)> = ignore_file
            .into_iter()
            .flat_map(str::lines)
            .map(|l| (IGNORE_FILE, l))
            .chain(excludes.iter().map(|e| ("--exclude", e.as_str())))
            .collect();
        if lines
            .iter()
            .all(|(_, l)| l.trim().is_empty() || l.starts_with('#'))
        {
            return Ok(Self::default());
        }
        let mut builder = GitignoreBuilder::new("");
        for (origin, line) in lines {
            builder
                .add_line(None, line)
                .map_err(|e| SourceError::InvalidPattern {
                    origin,
                    pattern: line.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        let matcher = builder.build().map_err(|e| SourceError::InvalidPattern {
            origin: IGNORE_FILE,
            pattern: String::new(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            matcher: Some(matcher),
        })
    }

    /// Whether a repository-relative file is read.
    pub fn includes(&self, path: &str) -> bool {
        is_manifest(path) && !is_hidden(path) && !self.ignored(path, false)
    }

    /// Whether a repository-relative directory is walked at all.
    pub fn walks(&self, dir: &str) -> bool {
        !is_hidden(dir) && !self.ignored(dir, true)
    }

    fn ignored(&self, path: &str, is_dir: bool) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|m| m.matched_path_or_any_parents(path, is_dir).is_ignore())
    }
}

/// Whether any component of a repository-relative path starts with a dot.
pub fn is_hidden(path: &str) -> bool {
    path.split('/').any(|c| c.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_directories_and_dot_files_are_skipped() {
        let f = Filter::default();
        assert!(f.includes("controlplanes/a.yaml"));
        assert!(!f.includes(".github/workflows/ci.yml"));
        assert!(!f.includes("controlplanes/.a.yaml"));
        assert!(!f.includes("controlplanes/a.txt"));
        assert!(!f.walks(".git"));
    }

    #[test]
    fn ignore_file_and_excludes_use_gitignore_syntax() {
        let f = Filter::new(
            Some("# drafts\ndrafts/\n*.tmpl.yaml\n!keep.tmpl.yaml\n/top.yaml\n"),
            &["legacy/**".to_owned()],
        )
        .unwrap();
        assert!(!f.includes("drafts/a.yaml"));
        assert!(!f.includes("cps/drafts/a.yaml"));
        assert!(!f.walks("drafts"));
        assert!(!f.includes("cps/x.tmpl.yaml"));
        assert!(f.includes("cps/keep.tmpl.yaml"));
        assert!(!f.includes("top.yaml"));
        assert!(f.includes("cps/top.yaml"));
        assert!(!f.includes("legacy/old/a.yaml"));
        assert!(f.includes("cps/a.yaml"));
    }
}
