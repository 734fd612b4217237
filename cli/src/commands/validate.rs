//! `kflex validate`: the reconciler's validation of a repository, plus every
//! check the operator makes before provisioning that needs no cluster (the
//! profile's spec checks, hook rendering and hook policy), with the
//! operator's own functions. No second copy of either's rules lives here.

pub mod format;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use kubeflex_operator::api::{ControlPlane, PostCreateHook};
use kubeflex_operator::hooks::policy::{HookPolicy, HookPolicyArgs, Scope, ScopeLookup};
use kubeflex_operator::hooks::render::Renderer;
use kubeflex_operator::hooks::{self, HookError, select};
use kubeflex_operator::profile;
use kubeflex_reconciler::document::{Node, Pos, Value, parse_stream};
use kubeflex_reconciler::source::{DirSource, Snapshot, SourceError};
use kubeflex_reconciler::validate::{
    self as rv, ClusterView, FileStatus, ObjectKey, Options, Problem, Report, Selection, Severity,
};

pub use format::Format;

/// One problem, from the reconciler's validation or the operator's checks.
/// Displayed as the reconciler displays its problems:
/// `path:line:column: [warning: ][field: ]message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// A stable label: the reconciler's problem kinds, plus `spec`,
    /// `hook_render` and `hook_policy` for the operator's checks.
    pub kind: &'static str,
    /// Relative to the validated root, with `/`.
    pub path: String,
    pub pos: Pos,
    pub object: Option<ObjectKey>,
    pub field: Option<String>,
    pub message: String,
}

impl From<&Problem> for Finding {
    fn from(p: &Problem) -> Self {
        Self {
            severity: p.severity,
            kind: p.kind.as_str(),
            path: p.path.clone(),
            pos: p.pos,
            object: p.object.clone(),
            field: p.field.clone(),
            message: p.message.clone(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        kubeflex_reconciler::validate::write_located(
            f,
            &self.path,
            self.pos,
            self.severity,
            self.field.as_deref(),
            &self.message,
        )
    }
}

/// The outcome of validating one snapshot.
#[derive(Debug, Default)]
pub struct Checked {
    /// The reconciler's report, as is.
    pub report: Report,
    /// Every problem, sorted by path and position.
    pub findings: Vec<Finding>,
    /// Every file considered and whether it passed (the operator's checks
    /// can fail a file the reconciler passed).
    pub files: BTreeMap<String, FileStatus>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The errors of one file.
    pub fn errors_in<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings
            .iter()
            .filter(move |f| f.severity == Severity::Error && f.path == path)
    }

    /// The objects that passed, with their file and position.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectKey, &str, Pos)> {
        self.report
            .documents
            .iter()
            .filter(|d| self.files.get(&d.path) == Some(&FileStatus::Valid))
            .map(|d| (&d.key, d.path.as_str(), d.pos))
    }
}

/// What the operator's checks consult: the hook scopes (the cluster's, or
/// [`OfflineScopes`]) and the hook policy its flags set.
#[derive(Clone, Copy)]
pub struct OperatorView<'a> {
    pub scopes: &'a dyn ScopeLookup,
    pub policy: &'a HookPolicy,
}

/// The default hook policy, scopes from no cluster.
pub fn offline_defaults() -> OperatorView<'static> {
    static POLICY: std::sync::OnceLock<HookPolicy> = std::sync::OnceLock::new();
    OperatorView {
        scopes: &OfflineScopes,
        policy: POLICY.get_or_init(HookPolicy::default),
    }
}

/// Validates every manifest of `snapshot`: the reconciler's validation,
/// then the operator's checks on what passed it.
pub fn check_snapshot(
    snapshot: &dyn Snapshot,
    options: &Options,
    operator: OperatorView<'_>,
) -> Result<Checked, SourceError> {
    let report = rv::validate(snapshot, Selection::All, options)?;
    let mut findings: Vec<Finding> = report.problems.iter().map(Finding::from).collect();
    findings.extend(operator_checks(snapshot, &report, options, operator));
    findings.sort_by(|a, b| (&a.path, a.pos, &a.message).cmp(&(&b.path, b.pos, &b.message)));
    findings.dedup();
    let mut files = report.files.clone();
    for f in &findings {
        if f.severity == Severity::Error {
            files.insert(f.path.clone(), FileStatus::Failed);
        }
    }
    Ok(Checked {
        report,
        findings,
        files,
    })
}

/// Validates the directory `root` (everything under it, as the reconciler
/// in directory mode reads it).
pub fn check_dir(root: &Path, options: &Options) -> Result<Checked, SourceError> {
    check_dir_with(root, options, offline_defaults())
}

/// [`check_dir`] with the hook scopes of a cluster and a hook policy.
pub fn check_dir_with(
    root: &Path,
    options: &Options,
    operator: OperatorView<'_>,
) -> Result<Checked, SourceError> {
    let snapshot = DirSource::new(root, "")?.snapshot()?;
    check_snapshot(&snapshot, options, operator)
}

/// What `--cluster` adds: the cluster's hooks and ControlPlane types (for
/// the reconciler's checks), the kinds it serves (for the hook policy), and
/// which source owns each live ControlPlane.
#[derive(Debug, Default)]
pub struct ClusterInputs {
    pub view: ClusterView,
    pub scopes: BTreeMap<(String, String), Scope>,
    /// Live ControlPlanes by name: the source label, if any.
    pub owners: BTreeMap<String, Option<String>>,
    /// The source these files are for (`--name`, or the only Sync).
    pub source: Option<String>,
}

impl ClusterInputs {
    pub async fn read(client: &kube::Client, sync: Option<&str>) -> Result<Self, String> {
        use kube::api::ListParams;
        use kubeflex_reconciler::inventory::LiveObject;
        use kubeflex_reconciler::names::LABEL_SOURCE;
        use kubeflex_reconciler::validate::Kind;
        let api_error = super::wait::api_error;
        let cluster = kubeflex_reconciler::apply::Cluster::new(client.clone());
        let hooks = cluster.hook_names().await.map_err(|e| e.to_string())?;
        let list = cluster
            .api(Kind::ControlPlane)
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing ControlPlanes: {}", api_error(&e)))?;
        let mut inputs = Self::default();
        for obj in &list.items {
            let Some(live) = LiveObject::from_dynamic(Kind::ControlPlane, obj) else {
                continue;
            };
            if let Some(t) = live.control_plane_type {
                inputs
                    .view
                    .control_plane_types
                    .insert(live.key.name.clone(), t);
            }
            inputs.owners.insert(
                live.key.name.clone(),
                live.labels.get(LABEL_SOURCE).cloned(),
            );
        }
        inputs.view.hooks = Some(hooks);
        let discovery = kube::Discovery::new(client.clone())
            .run()
            .await
            .map_err(|e| format!("discovering the cluster's kinds: {}", api_error(&e)))?;
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                let scope = match caps.scope {
                    kube::discovery::Scope::Cluster => Scope::Cluster,
                    kube::discovery::Scope::Namespaced => Scope::Namespaced,
                };
                inputs
                    .scopes
                    .insert((ar.api_version.clone(), ar.kind.clone()), scope);
            }
        }
        inputs.source = match sync {
            Some(s) => Some(s.to_owned()),
            None => super::wait::pick_sync(client, None).await.ok(),
        };
        Ok(inputs)
    }

    /// ControlPlanes the files define that live in the cluster under
    /// another source (or none: created directly), an error each.
    pub fn ownership(&self, checked: &Checked) -> Vec<Finding> {
        let mut out = Vec::new();
        for (key, path, pos) in checked.objects() {
            if key.kind != kubeflex_reconciler::validate::Kind::ControlPlane {
                continue;
            }
            let Some(owner) = self.owners.get(&key.name) else {
                continue;
            };
            if owner.is_some() && *owner == self.source {
                continue;
            }
            let message = match (owner, &self.source) {
                (Some(o), _) => format!(
                    "{key} exists in the cluster, applied by source {o:?}; the reconciler will not take it over"
                ),
                (None, _) => format!(
                    "{key} exists in the cluster, created outside Git; the reconciler would adopt it"
                ),
            };
            // Adopting an object made by hand is allowed: a warning.
            let severity = if owner.is_none() {
                Severity::Warning
            } else {
                Severity::Error
            };
            out.push(Finding {
                severity,
                kind: "owner",
                path: path.to_owned(),
                pos,
                object: Some(key.clone()),
                field: Some("metadata.name".into()),
                message,
            });
        }
        out
    }
}

/// Hook scopes when no cluster is consulted: the cluster-scoped kinds
/// Kubernetes itself serves; every other kind is taken as namespaced, so a
/// template aimed at another namespace is still caught. (With `--cluster`
/// the hosting cluster's discovery answers instead.)
pub struct OfflineScopes;

const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "RuntimeClass",
    "IngressClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "ComponentStatus",
];

impl ScopeLookup for OfflineScopes {
    fn scope(&self, _api_version: &str, kind: &str) -> Option<Scope> {
        Some(if CLUSTER_SCOPED.contains(&kind) {
            Scope::Cluster
        } else {
            Scope::Namespaced
        })
    }
}

/// The operator's pre-provisioning checks on the documents that passed the
/// reconciler: spec checks per ControlPlane, and each hook it uses rendered
/// with its variables and checked against the hook policy.
fn operator_checks(
    snapshot: &dyn Snapshot,
    report: &Report,
    options: &Options,
    operator: OperatorView<'_>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut hooks: BTreeMap<&str, (&rv::Document, &PostCreateHook)> = BTreeMap::new();
    let mut cps = Vec::new();
    for doc in &report.documents {
        match &doc.object {
            rv::Object::PostCreateHook(h) => {
                hooks.insert(doc.key.name.as_str(), (doc, h.as_ref()));
            }
            rv::Object::ControlPlane(cp) => cps.push((doc, cp)),
        }
    }
    let mut trees = Trees::new(snapshot, options);
    let renderer = Renderer::new();
    // A hook broken for every control plane is reported once per file position.
    let mut seen: BTreeSet<(String, Pos, String)> = BTreeSet::new();
    for (doc, cp) in cps {
        for p in profile::check_spec(&cp.spec) {
            let pos = trees
                .position(&doc.path, doc.index, p.field)
                .unwrap_or(doc.pos);
            out.push(Finding {
                severity: Severity::Error,
                kind: "spec",
                path: doc.path.clone(),
                pos,
                object: Some(doc.key.clone()),
                field: Some(p.field.to_owned()),
                message: p.message,
            });
        }
        check_hooks(
            doc, cp, &hooks, &renderer, operator, &mut trees, &mut seen, &mut out,
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_hooks(
    doc: &rv::Document,
    cp: &ControlPlane,
    hooks: &BTreeMap<&str, (&rv::Document, &PostCreateHook)>,
    renderer: &Renderer,
    operator: OperatorView<'_>,
    trees: &mut Trees<'_>,
    seen: &mut BTreeSet<(String, Pos, String)>,
    out: &mut Vec<Finding>,
) {
    let cp_name = doc.key.name.as_str();
    for using in select::select(&cp.spec).uses {
        // A hook no file defines is the reconciler's finding already.
        let Some((hook_doc, hook)) = hooks.get(using.name) else {
            continue;
        };
        let vars = select::variables(
            hook.spec.default_vars.as_deref().unwrap_or_default(),
            cp.spec.global_vars.as_ref(),
            using.vars,
            cp_name,
            using.name,
        );
        let policy = operator.policy;
        let Err(e) = hooks::plan(
            cp_name,
            hook,
            &vars,
            renderer,
            operator.scopes,
            &policy.cluster_kinds,
            &policy.extra_rules,
        ) else {
            continue;
        };
        let (kind, field, message) = match &e {
            HookError::Render {
                template,
                path,
                source,
                ..
            } => (
                "hook_render",
                template_field(template, Some(path)),
                format!(
                    "template {template} does not render for ControlPlane {cp_name} ({}): {source}",
                    doc.path
                ),
            ),
            HookError::Refused {
                template, reason, ..
            } => (
                "hook_policy",
                template_field(template, None),
                format!(
                    "the operator refuses template {template} for ControlPlane {cp_name} ({}): {reason}",
                    doc.path
                ),
            ),
            HookError::NotFound { .. } => continue,
        };
        let pos = trees
            .position(&hook_doc.path, hook_doc.index, &field)
            .unwrap_or(hook_doc.pos);
        // The same template fails the same way for each control plane
        // using it: report it once, naming the first.
        let fingerprint = message
            .split(" for ControlPlane ")
            .next()
            .unwrap_or("")
            .to_owned();
        if !seen.insert((hook_doc.path.clone(), pos, fingerprint)) {
            continue;
        }
        out.push(Finding {
            severity: Severity::Error,
            kind,
            path: hook_doc.path.clone(),
            pos,
            object: Some(hook_doc.key.clone()),
            field: Some(field),
            message,
        });
    }
}

/// `spec.templates[i]` (plus the path inside the template) from a template
/// label `#i Kind/name`.
fn template_field(label: &str, inner: Option<&str>) -> String {
    let index = label
        .strip_prefix('#')
        .and_then(|s| s.split(' ').next())
        .unwrap_or("0");
    match inner {
        Some(p) if !p.is_empty() => format!("spec.templates[{index}].{p}"),
        _ => format!("spec.templates[{index}]"),
    }
}

/// Parsed files, to turn a field path into the line and column where it
/// was written. Only files that passed validation are parsed again, within
/// the same limits.
struct Trees<'s> {
    snapshot: &'s dyn Snapshot,
    options: &'s Options,
    parsed: BTreeMap<String, Option<Vec<Node>>>,
}

impl<'s> Trees<'s> {
    fn new(snapshot: &'s dyn Snapshot, options: &'s Options) -> Self {
        Self {
            snapshot,
            options,
            parsed: BTreeMap::new(),
        }
    }

    fn position(&mut self, path: &str, index: usize, field: &str) -> Option<Pos> {
        let (snapshot, options) = (self.snapshot, self.options);
        let docs = self.parsed.entry(path.to_owned()).or_insert_with(|| {
            let bytes = snapshot.read(path, options.limits.max_file_bytes).ok()?;
            let text = String::from_utf8(bytes).ok()?;
            parse_stream(&text, &options.limits.parse).ok()
        });
        let mut node = docs.as_ref()?.get(index)?;
        let mut pos = node.pos;
        for step in field_steps(field) {
            match step {
                Step::Key(k) => {
                    // A missing field points at its parent.
                    let Some((key, value)) = node.get(k) else {
                        return Some(pos);
                    };
                    pos = key.pos;
                    node = value;
                }
                Step::Index(i) => {
                    let Value::Seq(items) = &node.value else {
                        return Some(pos);
                    };
                    let Some(item) = items.get(i) else {
                        return Some(pos);
                    };
                    node = item;
                    pos = node.pos;
                }
            }
        }
        Some(pos)
    }
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.templates[0].metadata.name` as steps.
fn field_steps(field: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in field.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        for index in rest.split('[') {
            if let Some(i) = index.strip_suffix(']').and_then(|i| i.parse().ok()) {
                steps.push(Step::Index(i));
            }
        }
    }
    steps
}

/// The directory to validate for each path the user named, and what of it
/// to report. A directory is validated as it is (as the reconciler's
/// `--path` would read it); a file is validated with the rest of the Git
/// checkout holding it (hook references and duplicates span files), and
/// only it is reported.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub root: PathBuf,
    /// Root-relative prefixes (files or directories) to report; empty for
    /// everything.
    pub only: Vec<String>,
    /// Where the root lies in its Git checkout (`""` at the top or outside
    /// any checkout): reported paths start with it, so that they are the
    /// paths `git` and a pull request show.
    pub prefix: String,
}

/// Groups the given paths by root. Errors are usage errors (exit 2).
pub fn targets(paths: &[PathBuf]) -> Result<Vec<Target>, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let paths = if paths.is_empty() {
        vec![checkout_root(&cwd).unwrap_or(cwd.clone())]
    } else {
        paths.to_vec()
    };
    let mut out: Vec<Target> = Vec::new();
    for p in paths {
        let abs = std::fs::canonicalize(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let meta = std::fs::metadata(&abs).map_err(|e| format!("{}: {e}", p.display()))?;
        let (root, rel) = if meta.is_dir() {
            (abs, String::new())
        } else {
            let parent = abs.parent().map(Path::to_owned).unwrap_or(abs.clone());
            let root = checkout_root(&parent).unwrap_or(parent);
            let rel = relative(&abs, &root);
            (root, rel)
        };
        match out.iter_mut().find(|t| t.root == root) {
            Some(t) => {
                if rel.is_empty() {
                    t.only.clear();
                } else if !t.only.is_empty() {
                    t.only.push(rel);
                }
            }
            None => out.push(Target {
                prefix: checkout_root(&root)
                    .map(|c| relative(&root, &c))
                    .unwrap_or_default(),
                root,
                only: if rel.is_empty() {
                    Vec::new()
                } else {
                    vec![rel]
                },
            }),
        }
    }
    Ok(out)
}

/// `path` relative to `base`, with `/`; empty when equal or outside.
fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .map(|r| {
            r.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default()
}

/// Prefixes every reported path with `prefix` (see [`Target::prefix`]).
pub fn prefix_paths(checked: &mut Checked, prefix: &str) {
    if prefix.is_empty() {
        return;
    }
    let join = |p: &str| format!("{prefix}/{p}");
    for f in &mut checked.findings {
        f.path = join(&f.path);
    }
    checked.files = std::mem::take(&mut checked.files)
        .into_iter()
        .map(|(p, s)| (join(&p), s))
        .collect();
    for d in &mut checked.report.documents {
        d.path = join(&d.path);
    }
}

/// The work tree root of the Git checkout containing `dir`, if any.
fn checkout_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_owned)
}

/// Whether a root-relative path is one of `only` or under one of them.
pub fn selected(path: &str, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|o| {
            path == o
                || path
                    .strip_prefix(o.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Keeps only the selected files' findings and statuses.
pub fn restrict(checked: &mut Checked, only: &[String]) {
    checked.findings.retain(|f| selected(&f.path, only));
    checked.files.retain(|p, _| selected(p, only));
}

/// Files under `root` the reconciler does not read (dot-directories and
/// dot-files, ignored paths, non-YAML files), for `-v`. Never follows
/// symlinks and stops listing after `cap` entries.
pub fn skipped_files(root: &Path, read: &BTreeMap<String, FileStatus>, cap: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if rel.is_empty() && name == ".git" {
                continue;
            }
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push((entry.path(), path));
            } else if !read.contains_key(&path) {
                out.push(path);
                if out.len() >= cap {
                    return out;
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_steps_follow_keys_and_indices() {
        let steps = field_steps("spec.templates[2].spec.containers[0].command[1]");
        let rendered: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Key(k) => (*k).to_owned(),
                Step::Index(i) => format!("[{i}]"),
            })
            .collect();
        assert_eq!(
            rendered,
            [
                "spec",
                "templates",
                "[2]",
                "spec",
                "containers",
                "[0]",
                "command",
                "[1]"
            ]
        );
    }

    #[test]
    fn template_labels_give_the_field() {
        assert_eq!(template_field("#3 Job/hello", None), "spec.templates[3]");
        assert_eq!(
            template_field("#0", Some("metadata.name")),
            "spec.templates[0].metadata.name"
        );
    }

    #[test]
    fn selection_by_prefix() {
        let only = vec!["controlplanes".to_owned(), "hooks/a.yaml".to_owned()];
        assert!(selected("controlplanes/x.yaml", &only));
        assert!(selected("hooks/a.yaml", &only));
        assert!(!selected("hooks/b.yaml", &only));
        assert!(!selected("controlplanes-old/x.yaml", &only));
        assert!(selected("anything", &[]));
    }
}

/// `kflex validate [PATH...]`.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidateArgs {
    /// Repository, directories or files (default: the Git checkout holding
    /// the current directory). A path inside a checkout is validated with
    /// the rest of it (hook references span files); only its files are
    /// reported.
    pub paths: Vec<PathBuf>,
    /// text for people, github for workflow annotations on a pull request,
    /// json for other tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Each file's verdict and the files the reconciler skips: set by the
    /// global `-v`.
    #[arg(skip)]
    pub verbose: bool,
    /// Also check against the hosting cluster: immutable fields of live
    /// control planes, hooks that exist only there, names another source
    /// owns, and the kinds it serves for hook templates.
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the Sync (source) these files are for (default: the
    /// only one).
    #[arg(long = "name", value_name = "SYNC", requires = "cluster")]
    pub sync: Option<String>,
    /// The hook policy of the cluster's operator (the operator's own flags
    /// and environment variables), so that hooks are checked as it checks
    /// them.
    #[command(flatten)]
    pub policy: HookPolicyArgs,
}

/// Exit codes: 0 valid, 1 any error, 2 usage error (a path that does not
/// exist).
pub fn run(args: &ValidateArgs, cluster: Option<&ClusterInputs>) -> i32 {
    let options = Options {
        cluster: cluster.map(|c| c.view.clone()).unwrap_or_default(),
        ..Options::default()
    };
    let policy = match args.policy.policy() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --hook-extra-rules: {e}");
            return 2;
        }
    };
    let operator = OperatorView {
        scopes: match cluster {
            Some(c) => &c.scopes,
            None => &OfflineScopes,
        },
        policy: &policy,
    };
    let targets = match targets(&args.paths) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut results = Vec::new();
    for t in &targets {
        match check_dir_with(&t.root, &options, operator) {
            Ok(mut checked) => {
                if let Some(c) = cluster {
                    let extra = c.ownership(&checked);
                    for f in &extra {
                        if f.severity == Severity::Error {
                            checked.files.insert(f.path.clone(), FileStatus::Failed);
                        }
                    }
                    checked.findings.extend(extra);
                    checked
                        .findings
                        .sort_by(|a, b| (&a.path, a.pos).cmp(&(&b.path, b.pos)));
                }
                restrict(&mut checked, &t.only);
                let skipped = if args.verbose {
                    let mut skipped = skipped_files(&t.root, &checked.report.files, 10_000);
                    skipped.retain(|p| selected(p, &t.only));
                    skipped
                } else {
                    Vec::new()
                };
                prefix_paths(&mut checked, &t.prefix);
                let skipped: Vec<String> = skipped
                    .into_iter()
                    .map(|p| {
                        if t.prefix.is_empty() {
                            p
                        } else {
                            format!("{}/{p}", t.prefix)
                        }
                    })
                    .collect();
                results.push((t.root.display().to_string(), checked, skipped));
            }
            Err(e) => {
                eprintln!("error: {}: {e}", t.root.display());
                return 2;
            }
        }
    }
    let sections: Vec<format::Section<'_>> = results
        .iter()
        .map(|(name, checked, skipped)| format::Section {
            name,
            checked,
            skipped,
        })
        .collect();
    print!("{}", format::render(args.format, &sections, args.verbose));
    if results.iter().any(|(_, c, _)| c.has_errors()) {
        1
    } else {
        0
    }
}

/// `kflex validate`, with `--cluster` against the hosting context. Exits
/// with the code [`run`] gives.
pub async fn run_cmd(app: &super::App, mut args: ValidateArgs) -> anyhow::Result<()> {
    args.verbose = app.global.verbose > 0;
    let code = if args.cluster {
        let inputs = async {
            let (_, mut kc) = app.load().map_err(|e| e.to_string())?;
            let hosting = app.hosting(&mut kc).await.map_err(|e| e.to_string())?;
            ClusterInputs::read(&hosting.client, args.sync.as_deref()).await
        };
        match inputs.await {
            Ok(inputs) => run(&args, Some(&inputs)),
            Err(e) => {
                eprintln!("error: --cluster: {e}");
                2
            }
        }
    } else {
        run(&args, None)
    };
    super::exit_with(code)
}
