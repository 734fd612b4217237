//! What validation reports: each problem with its file, position, field and
//! severity, and the documents of the files that passed, ready to apply.

use std::collections::BTreeMap;
use std::fmt;

use kubeflex_operator::api::{ControlPlane, PostCreateHook};

use super::ObjectKey;
use crate::document::Pos;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The file yields no documents.
    Error,
    /// Reported; the file is still applied.
    Warning,
}

/// What kind of problem; [`ProblemKind::as_str`] is a stable label for
/// metrics and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// The file could not be read.
    Read,
    /// Over the file size limit.
    TooLarge,
    /// A symlink leading outside the repository, or dangling.
    Symlink,
    /// Not UTF-8.
    Encoding,
    /// Invalid YAML.
    Syntax,
    /// A parser limit (alias expansion, nesting, ...) was hit.
    Limit,
    /// A document that is not a Kubernetes object.
    NotAnObject,
    /// A document of a kind this reconciler does not apply (warning).
    OtherKind,
    UnknownField,
    /// Wrong type (string for a boolean, ...).
    Type,
    /// A value outside an enum, or an unsupported apiVersion or kind.
    Enum,
    Required,
    /// A name that is not DNS-1123, or an invalid label.
    Name,
    /// The same object defined twice.
    Duplicate,
    /// A hook reference that nothing defines.
    MissingHook,
    /// A change to an immutable field.
    Immutable,
    /// Content that is ignored (`status`), a warning.
    Ignored,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::TooLarge => "too_large",
            Self::Symlink => "symlink",
            Self::Encoding => "encoding",
            Self::Syntax => "syntax",
            Self::Limit => "limit",
            Self::NotAnObject => "not_an_object",
            Self::OtherKind => "other_kind",
            Self::UnknownField => "unknown_field",
            Self::Type => "type",
            Self::Enum => "enum",
            Self::Required => "required",
            Self::Name => "name",
            Self::Duplicate => "duplicate",
            Self::MissingHook => "missing_hook",
            Self::Immutable => "immutable",
            Self::Ignored => "ignored",
        }
    }
}

/// One problem, displayed as `path:line:column: [warning: ][field: ]message`.
/// File-level problems (size, encoding, symlinks, read errors) point at 1:1,
/// except invalid UTF-8, which points at the first bad byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub kind: ProblemKind,
    /// Repository-relative path of the file.
    pub path: String,
    pub pos: Pos,
    /// The object concerned, when its kind and name could be read.
    pub object: Option<ObjectKey>,
    /// JSON path of the field, e.g. `spec.postCreateHooks[0].hookName`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            &self.path,
            self.pos,
            self.severity,
            self.field.as_deref(),
            &self.message,
        )
    }
}

/// `path:line:column: [warning: ][field: ]message`, the one form every
/// problem is shown in (the reconciler's log and status, `kflex validate`).
pub fn write_located(
    f: &mut fmt::Formatter<'_>,
    path: &str,
    pos: Pos,
    severity: Severity,
    field: Option<&str>,
    message: &str,
) -> fmt::Result {
    write!(f, "{path}:{pos}: ")?;
    if severity == Severity::Warning {
        f.write_str("warning: ")?;
    }
    if let Some(field) = field {
        write!(f, "{field}: ")?;
    }
    f.write_str(message)
}

/// A typed object that passed validation.
#[derive(Clone, Debug)]
pub enum Object {
    ControlPlane(Box<ControlPlane>),
    PostCreateHook(Box<PostCreateHook>),
}

/// A valid document, ready to apply.
#[derive(Clone, Debug)]
pub struct Document {
    /// Repository-relative path of the file.
    pub path: String,
    /// Index among the file's non-empty documents, from 0.
    pub index: usize,
    /// Where the document starts.
    pub pos: Pos,
    pub key: ObjectKey,
    pub object: Object,
    /// The document as JSON, as written (minus `status`), for server-side
    /// apply: defaults the server fills in are not owned by the reconciler.
    pub raw: serde_json::Value,
}

/// Outcome for one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Its documents (possibly none) are in [`Report::documents`].
    Valid,
    /// It has errors: none of its documents are returned.
    Failed,
}

/// What validation found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Documents of files without errors, in path and document order.
    pub documents: Vec<Document>,
    /// Errors and warnings, in path and position order.
    pub problems: Vec<Problem>,
    /// Every file considered, with its outcome.
    pub files: BTreeMap<String, FileStatus>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Files whose objects must be left as they are in the cluster.
    pub fn failed_files(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .filter(|(_, s)| **s == FileStatus::Failed)
            .map(|(p, _)| p.as_str())
    }
}
