//! Validation of manifests before anything is applied; the same code backs
//! the reconciler and `kflex validate`.
//!
//! Files are read through a [`Snapshot`], parsed into position-carrying YAML
//! trees, checked (syntax, hostile-input limits, CRD schema, names, duplicate
//! objects, hook references, the immutable `type`) and only then turned into
//! typed objects. Every problem reads `path:line:column: field: message`.
//!
//! Contract: a file with any error yields none of its documents, so the caller
//! leaves that file's objects in the cluster exactly as they are; other files
//! are unaffected. Warnings (documents of other kinds, an ignored `status`)
//! never fail a file.

mod meta;
mod references;
mod report;
mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{JSON, JSONSchemaProps};
use kube::CustomResourceExt;
use kubeflex_operator::api::{
    API_VERSION, ControlPlane, ControlPlaneType, GROUP, PostCreateHook, VERSION,
};

pub use meta::{is_dns1123_label, is_dns1123_subdomain};
pub use report::{
    Document, FileStatus, Object, Problem, ProblemKind, Report, Severity, write_located,
};

use references::{check_duplicates, check_hook_references};

use crate::document::{Node, ParseLimits, Pos, Value, parse_stream};
use crate::names::MAX_FILE_BYTES;
use crate::source::{DirSource, ReadError, Snapshot, SourceError, is_manifest};
use schema::{Finding, child_field};

/// The control plane types a repository may ask for, in the order messages
/// list them. `ocm` is in the CRD's enum only so that old objects still
/// load; the operator refuses it, so validation refuses it up front.
pub const SUPPORTED_TYPES: [ControlPlaneType; 5] = [
    ControlPlaneType::K8s,
    ControlPlaneType::K3s,
    ControlPlaneType::Vcluster,
    ControlPlaneType::Host,
    ControlPlaneType::External,
];

/// Limits against hostile input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Larger files are refused without being read whole.
    pub max_file_bytes: u64,
    /// Most manifest files one pass reads (`--max-files`).
    pub max_files: usize,
    /// Most bytes one pass reads over all files (`--max-bytes`).
    pub max_total_bytes: u64,
    /// Nesting, alias expansion, document and node counts.
    pub parse: ParseLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: MAX_FILE_BYTES,
            // Ten times the 10,000 specs the benchmarks hold; a spec file
            // is a few hundred bytes.
            max_files: 100_000,
            max_total_bytes: 512 * 1024 * 1024,
            parse: ParseLimits::default(),
        }
    }
}

/// What the cluster already holds, as far as validation needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Names of the PostCreateHooks in the cluster; `None` when the cluster
    /// was not consulted (offline `kflex validate`): a hook reference that no
    /// file resolves is then a warning, not an error.
    pub hooks: Option<BTreeSet<String>>,
    /// `spec.type` of each ControlPlane in the cluster, by name.
    pub control_plane_types: BTreeMap<String, ControlPlaneType>,
}

/// An object defined by a repository file that this pass does not read (an
/// incremental pass reads only changed files). Used to find duplicates and
/// to resolve hook references; ignored for files that are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub key: ObjectKey,
    pub path: String,
    pub pos: Pos,
}

/// Everything validation takes besides the files.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub limits: Limits,
    pub cluster: ClusterView,
    pub elsewhere: Vec<Definition>,
    /// Files that defined objects the cluster holds for this source. In such
    /// a file, a document of another group that leaves the file with none
    /// of our objects is an error, not a skip: it is most likely one of ours
    /// with a typo, and skipping it would prune what it defined.
    pub managed_files: BTreeSet<String>,
}

/// Which files of a snapshot to validate.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// Every manifest under the source's path.
    All,
    /// These repository-relative paths (e.g. the files a commit changed);
    /// paths that are not `.yaml`/`.yml` are skipped.
    Paths(&'a [String]),
}

/// The kinds this reconciler applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ControlPlane,
    PostCreateHook,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "ControlPlane",
            Self::PostCreateHook => "PostCreateHook",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an object (both kinds are cluster-scoped).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// Validates the files of a directory (`kflex validate`): everything under
/// `subdir` of `root`.
pub fn validate_dir(root: &Path, subdir: &str, options: &Options) -> Result<Report, SourceError> {
    let snapshot = DirSource::new(root, subdir)?.snapshot()?;
    validate(&snapshot, Selection::All, options)
}

/// Validates the selected files of a snapshot. Fails only when the snapshot
/// cannot be listed; every problem with a file is in the report.
pub fn validate(
    snapshot: &dyn Snapshot,
    selection: Selection<'_>,
    options: &Options,
) -> Result<Report, SourceError> {
    let schemas = Schemas::get();
    let mut outcomes: BTreeMap<String, FileOutcome> = BTreeMap::new();
    let paths: Vec<String> = match selection {
        Selection::All => {
            let listing = snapshot.list()?;
            for refused in listing.refused {
                let mut outcome = FileOutcome::default();
                outcome
                    .problems
                    .push(read_problem(&refused.path, &refused.error));
                outcomes.insert(refused.path, outcome);
            }
            listing.files
        }
        Selection::Paths(paths) => paths.iter().filter(|p| is_manifest(p)).cloned().collect(),
    };
    if paths.len() > options.limits.max_files {
        return Err(SourceError::TooMuch {
            what: "files",
            found: paths.len() as u64,
            limit: options.limits.max_files as u64,
            flag: "--max-files",
        });
    }
    let mut total: u64 = 0;
    for path in paths {
        let mut outcome = check_file(snapshot, &path, options, schemas);
        total = total.saturating_add(outcome.bytes);
        if total > options.limits.max_total_bytes {
            return Err(SourceError::TooMuch {
                what: "bytes",
                found: total,
                limit: options.limits.max_total_bytes,
                flag: "--max-bytes",
            });
        }
        if options.managed_files.contains(&path) && outcome.keys.is_empty() {
            for p in &mut outcome.problems {
                if p.kind == ProblemKind::OtherKind {
                    p.severity = Severity::Error;
                    p.message = format!(
                        "{}; this file defined managed objects, so this is taken for a typo: fix apiVersion/kind (nothing of the file is applied or pruned meanwhile)",
                        p.message
                    );
                }
            }
        }
        outcomes.insert(path, outcome);
    }
    check_duplicates(&mut outcomes, &options.elsewhere);
    check_hook_references(&mut outcomes, options);
    Ok(finish(outcomes))
}

/// Per-file state between the file checks and the cross-file checks.
#[derive(Default)]
struct FileOutcome {
    problems: Vec<Problem>,
    candidates: Vec<Candidate>,
    /// Every object the file names, valid or not (for duplicate detection).
    keys: Vec<(ObjectKey, Pos)>,
    /// Bytes read.
    bytes: u64,
}

impl FileOutcome {
    fn failed(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// A document that passed the per-file checks.
struct Candidate {
    doc: Document,
    hook_refs: Vec<HookRef>,
}

/// A `postCreateHook` / `postCreateHooks[].hookName` of a ControlPlane.
struct HookRef {
    name: String,
    pos: Pos,
    field: String,
}

/// The spec schemas of both kinds, from the CRDs generated from the types.
struct Schemas {
    control_plane: JSONSchemaProps,
    post_create_hook: JSONSchemaProps,
}

impl Schemas {
    /// Built once per process: generating the CRDs' schemas costs more than
    /// validating a changed file.
    fn get() -> &'static Self {
        static SCHEMAS: std::sync::OnceLock<Schemas> = std::sync::OnceLock::new();
        SCHEMAS.get_or_init(Self::load)
    }

    fn load() -> Self {
        let mut control_plane = spec_schema(&ControlPlane::crd());
        if let Some(type_) = control_plane
            .properties
            .as_mut()
            .and_then(|p| p.get_mut("type"))
        {
            type_.enum_ = Some(
                SUPPORTED_TYPES
                    .iter()
                    .map(|t| JSON(serde_json::Value::from(t.as_str())))
                    .collect(),
            );
        }
        Self {
            control_plane,
            post_create_hook: spec_schema(&PostCreateHook::crd()),
        }
    }

    fn spec(&self, kind: Kind) -> &JSONSchemaProps {
        match kind {
            Kind::ControlPlane => &self.control_plane,
            Kind::PostCreateHook => &self.post_create_hook,
        }
    }
}

/// `spec` of the first version's schema. The CRDs are generated from our own
/// types and always have one (a unit test holds this); should one ever lack
/// it, everything under `spec` is accepted here and the typed parse still
/// catches type errors.
fn spec_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> JSONSchemaProps {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.properties.as_ref())
        .and_then(|p| p.get("spec"))
        .cloned()
        .unwrap_or_else(|| JSONSchemaProps {
            type_: Some("object".to_owned()),
            x_kubernetes_preserve_unknown_fields: Some(true),
            ..JSONSchemaProps::default()
        })
}

fn read_problem(path: &str, error: &ReadError) -> Problem {
    let kind = match error {
        ReadError::TooLarge { .. } => ProblemKind::TooLarge,
        ReadError::SymlinkOutside { .. }
        | ReadError::DanglingSymlink { .. }
        | ReadError::SymlinkLoop => ProblemKind::Symlink,
        ReadError::NonUtf8Name => ProblemKind::Encoding,
        _ => ProblemKind::Read,
    };
    Problem {
        severity: Severity::Error,
        kind,
        path: path.to_owned(),
        pos: Pos::START,
        object: None,
        field: None,
        message: error.to_string(),
    }
}

fn check_file(
    snapshot: &dyn Snapshot,
    path: &str,
    options: &Options,
    schemas: &Schemas,
) -> FileOutcome {
    let mut outcome = FileOutcome::default();
    let file_error = |kind, pos, message: String| Problem {
        severity: Severity::Error,
        kind,
        path: path.to_owned(),
        pos,
        object: None,
        field: None,
        message,
    };
    let bytes = match snapshot.read(path, options.limits.max_file_bytes) {
        Ok(bytes) => {
            outcome.bytes = bytes.len() as u64;
            bytes
        }
        Err(e) => {
            outcome.problems.push(read_problem(path, &e));
            return outcome;
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            outcome.problems.push(file_error(
                ProblemKind::Encoding,
                pos_of_offset(&bytes, at),
                format!("file is not valid UTF-8 (invalid byte at offset {at}); refusing it"),
            ));
            return outcome;
        }
    };
    let docs = match parse_stream(text, &options.limits.parse) {
        Ok(docs) => docs,
        Err(e) => {
            let kind = if e.limit {
                ProblemKind::Limit
            } else {
                ProblemKind::Syntax
            };
            outcome.problems.push(file_error(kind, e.pos, e.message));
            return outcome;
        }
    };
    for (index, node) in docs.iter().enumerate() {
        check_document(path, index, node, options, schemas, &mut outcome);
    }
    outcome
}

/// Line and column (in characters) of byte `offset`, which must follow a
/// valid UTF-8 prefix.
fn pos_of_offset(bytes: &[u8], offset: usize) -> Pos {
    let prefix = bytes.get(..offset).unwrap_or_default();
    let Ok(prefix) = std::str::from_utf8(prefix) else {
        return Pos::START;
    };
    let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
    let line = prefix.matches('\n').count() + 1;
    let column = prefix.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    Pos {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

fn check_document(
    path: &str,
    index: usize,
    node: &Node,
    options: &Options,
    schemas: &Schemas,
    outcome: &mut FileOutcome,
) {
    let mut findings = Vec::new();
    let problem = |severity, f: Finding, object: Option<ObjectKey>| Problem {
        severity,
        kind: f.kind,
        path: path.to_owned(),
        pos: f.pos,
        object,
        field: (!f.field.is_empty()).then_some(f.field),
        message: f.message,
    };
    let Some(kind) = classify(node, &mut findings) else {
        for f in findings {
            let severity = if f.kind == ProblemKind::OtherKind {
                Severity::Warning
            } else {
                Severity::Error
            };
            outcome.problems.push(problem(severity, f, None));
        }
        return;
    };
    let mut warnings = Vec::new();
    if let Value::Map(entries) = &node.value {
        for (key, _) in entries {
            match key.name.as_str() {
                "apiVersion" | "kind" | "metadata" | "spec" => {}
                "status" => warnings.push(Finding {
                    pos: key.pos,
                    field: "status".to_owned(),
                    kind: ProblemKind::Ignored,
                    message: "ignored: status is written by the operator".to_owned(),
                }),
                other => {
                    let known = ["apiVersion", "kind", "metadata", "spec"];
                    let message = match schema::closest(other, &known) {
                        Some(best) => format!("unknown field; did you mean {best}?"),
                        None => format!("unknown field; expected one of {}", known.join(", ")),
                    };
                    findings.push(Finding {
                        pos: key.pos,
                        field: child_field("", other),
                        kind: ProblemKind::UnknownField,
                        message,
                    });
                }
            }
        }
    }
    let name = meta::check_metadata(node, kind, &mut findings);
    let key = name.as_ref().map(|(name, _)| ObjectKey {
        kind,
        name: name.clone(),
    });
    let spec = node.get("spec").map(|(_, spec)| spec);
    match spec {
        Some(spec) if !matches!(spec.value, Value::Null) => {
            schema::check(spec, schemas.spec(kind), "spec", &mut findings);
        }
        _ => findings.push(Finding {
            pos: node.pos,
            field: "spec".to_owned(),
            kind: ProblemKind::Required,
            message: "required field is missing".to_owned(),
        }),
    }
    if let (Some(key), Some((_, pos))) = (&key, &name) {
        outcome.keys.push((key.clone(), *pos));
    }
    for w in warnings {
        outcome
            .problems
            .push(problem(Severity::Warning, w, key.clone()));
    }
    if !findings.is_empty() {
        for f in findings {
            outcome
                .problems
                .push(problem(Severity::Error, f, key.clone()));
        }
        return;
    }
    // A missing or invalid name is always a finding, so the key is known here.
    let Some(key) = key else {
        return;
    };
    let mut raw = node.to_json();
    if let Some(map) = raw.as_object_mut() {
        map.remove("status");
    }
    let typed = match kind {
        Kind::ControlPlane => serde_json::from_value::<ControlPlane>(raw.clone())
            .map(|cp| Object::ControlPlane(Box::new(cp))),
        Kind::PostCreateHook => serde_json::from_value::<PostCreateHook>(raw.clone())
            .map(|h| Object::PostCreateHook(Box::new(h))),
    };
    let object = match typed {
        Ok(object) => object,
        Err(e) => {
            // The schema walk should have caught anything serde refuses; if
            // the two ever disagree, say so rather than apply.
            outcome.problems.push(Problem {
                severity: Severity::Error,
                kind: ProblemKind::Type,
                path: path.to_owned(),
                pos: node.pos,
                object: Some(key),
                field: None,
                message: format!("does not match the {kind} type: {e}"),
            });
            return;
        }
    };
    let mut hook_refs = Vec::new();
    if let (Object::ControlPlane(cp), Some(spec)) = (&object, spec) {
        if let Some(current) = options.cluster.control_plane_types.get(&key.name)
            && *current != cp.spec.type_
        {
            {
                let pos = spec.get("type").map_or(spec.pos, |(_, v)| v.pos);
                outcome.problems.push(Problem {
                    severity: Severity::Error,
                    kind: ProblemKind::Immutable,
                    path: path.to_owned(),
                    pos,
                    object: Some(key.clone()),
                    field: Some("spec.type".to_owned()),
                    message: format!(
                        "cannot change from {current} to {}: type is immutable; delete the ControlPlane and create it anew to change it",
                        cp.spec.type_
                    ),
                });
            }
        }
        hook_refs = hook_references(spec);
    }
    outcome.candidates.push(Candidate {
        doc: Document {
            path: path.to_owned(),
            index,
            pos: node.pos,
            key,
            object,
            raw,
        },
        hook_refs,
    });
}

/// Reads `apiVersion` and `kind`. Returns the kind when the document is ours;
/// otherwise pushes why not (an `OtherKind` finding for foreign kinds, which
/// the caller reports as a warning).
fn classify(node: &Node, findings: &mut Vec<Finding>) -> Option<Kind> {
    if !matches!(node.value, Value::Map(_)) {
        findings.push(Finding {
            pos: node.pos,
            field: String::new(),
            kind: ProblemKind::NotAnObject,
            message: format!(
                "document is {}, not a Kubernetes object (a mapping with apiVersion and kind)",
                schema::describe(node)
            ),
        });
        return None;
    }
    let mut strings = [("apiVersion", None), ("kind", None)];
    for (field, slot) in &mut strings {
        match node.get(field) {
            Some((
                _,
                Node {
                    value: Value::Str(s),
                    pos,
                },
            )) if !s.is_empty() => {
                *slot = Some((s.as_str(), *pos));
            }
            Some((_, v)) if !matches!(v.value, Value::Null) => findings.push(Finding {
                pos: v.pos,
                field: (*field).to_owned(),
                kind: ProblemKind::Type,
                message: format!("expected a non-empty string, found {}", schema::describe(v)),
            }),
            _ => findings.push(Finding {
                pos: node.pos,
                field: (*field).to_owned(),
                kind: ProblemKind::Required,
                message: "required field is missing; every document must be a Kubernetes object"
                    .to_owned(),
            }),
        }
    }
    let [
        (_, Some((api_version, api_pos))),
        (_, Some((kind, kind_pos))),
    ] = strings
    else {
        return None;
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if group != GROUP && matches!(kind, "ControlPlane" | "PostCreateHook") {
        // One of our kinds under another group is a typo far more often
        // than a foreign API: skipping it would prune what it defined.
        findings.push(Finding {
            pos: api_pos,
            field: "apiVersion".to_owned(),
            kind: ProblemKind::Enum,
            message: format!("unknown group in {api_version:?} for {kind}; expected {API_VERSION}"),
        });
        return None;
    }
    if group != GROUP {
        findings.push(Finding {
            pos: kind_pos,
            field: "kind".to_owned(),
            kind: ProblemKind::OtherKind,
            message: format!(
                "skipping {kind} ({api_version}): only ControlPlane and PostCreateHook ({API_VERSION}) are applied"
            ),
        });
        return None;
    }
    if version != VERSION {
        findings.push(Finding {
            pos: api_pos,
            field: "apiVersion".to_owned(),
            kind: ProblemKind::Enum,
            message: format!("unsupported version {api_version:?}; expected {API_VERSION}"),
        });
        return None;
    }
    match kind {
        "ControlPlane" => Some(Kind::ControlPlane),
        "PostCreateHook" => Some(Kind::PostCreateHook),
        other => {
            findings.push(Finding {
                pos: kind_pos,
                field: "kind".to_owned(),
                kind: ProblemKind::Enum,
                message: format!(
                    "unknown kind {other:?} in {GROUP}; expected ControlPlane or PostCreateHook"
                ),
            });
            None
        }
    }
}

fn hook_references(spec: &Node) -> Vec<HookRef> {
    let mut refs = Vec::new();
    if let Some((
        _,
        Node {
            value: Value::Str(name),
            pos,
        },
    )) = spec.get("postCreateHook")
    {
        refs.push(HookRef {
            name: name.clone(),
            pos: *pos,
            field: "spec.postCreateHook".to_owned(),
        });
    }
    if let Some((
        _,
        Node {
            value: Value::Seq(items),
            ..
        },
    )) = spec.get("postCreateHooks")
    {
        for (i, item) in items.iter().enumerate() {
            if let Some((
                _,
                Node {
                    value: Value::Str(name),
                    pos,
                },
            )) = item.get("hookName")
            {
                refs.push(HookRef {
                    name: name.clone(),
                    pos: *pos,
                    field: format!("spec.postCreateHooks[{i}].hookName"),
                });
            }
        }
    }
    refs
}

fn finish(outcomes: BTreeMap<String, FileOutcome>) -> Report {
    let mut report = Report::default();
    for (path, mut outcome) in outcomes {
        let failed = outcome.failed();
        outcome.problems.sort_by_key(|p| (p.pos, p.severity));
        report.problems.append(&mut outcome.problems);
        if failed {
            report.files.insert(path, FileStatus::Failed);
        } else {
            report
                .documents
                .extend(outcome.candidates.into_iter().map(|c| c.doc));
            report.files.insert(path, FileStatus::Valid);
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_come_from_the_crds() {
        let schemas = Schemas::load();
        let cp = schemas.spec(Kind::ControlPlane);
        assert!(
            cp.properties
                .as_ref()
                .unwrap()
                .contains_key("postCreateHooks")
        );
        assert_eq!(cp.required.as_deref(), Some(&["type".to_owned()][..]));
        let hook = schemas.spec(Kind::PostCreateHook);
        assert!(hook.properties.as_ref().unwrap().contains_key("templates"));
    }

    #[test]
    fn offsets_to_positions() {
        assert_eq!(pos_of_offset(b"ab\ncd\xff", 5), Pos { line: 2, column: 3 });
        assert_eq!(
            pos_of_offset(b"\xc3\xa9\xff", 2),
            Pos { line: 1, column: 2 }
        );
    }
}
