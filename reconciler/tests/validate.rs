//! Validation of repository files: every check, with the exact
//! `path:line:column: message` a user sees.

// clippy.toml allows unwrap in #[test] functions only; the helpers below are
// test code too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kubeflex_operator::api::ControlPlaneType;
use kubeflex_reconciler::document::Pos;
use kubeflex_reconciler::source::DirSource;
use kubeflex_reconciler::validate::{
    ClusterView, Definition, FileStatus, Kind, Object, ObjectKey, Options, ProblemKind, Report,
    Selection, Severity, validate, validate_dir,
};

const CP_A: &str = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: a
spec:
  type: k8s
";

const HOOK_H: &str = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: PostCreateHook
metadata:
  name: h
spec:
  templates:
    - apiVersion: v1
      kind: Namespace
      metadata:
        name: '{{.Namespace}}-extra'
";

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(files: &[(&str, &str)]) -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for (path, text) in files {
            repo.write(path, text.as_bytes());
        }
        repo
    }

    fn write(&self, path: &str, bytes: &[u8]) {
        let full = self.dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, bytes).unwrap();
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn validate(&self, options: &Options) -> Report {
        validate_dir(self.root(), "", options).unwrap()
    }
}

/// Options for a run against a cluster with nothing in it.
fn against_empty_cluster() -> Options {
    Options {
        cluster: ClusterView {
            hooks: Some(BTreeSet::new()),
            control_plane_types: BTreeMap::new(),
        },
        ..Options::default()
    }
}

fn lines(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

/// Problems of a single file `cp.yaml` holding `text`.
fn problems_of(text: &str) -> Vec<String> {
    let repo = Repo::new(&[("cp.yaml", text)]);
    lines(&repo.validate(&against_empty_cluster()))
}

#[test]
fn valid_files_yield_typed_documents() {
    let repo = Repo::new(&[
        ("controlplanes/a.yaml", CP_A),
        ("hooks/h.yml", HOOK_H),
        ("README.md", "not read"),
    ]);
    let report = repo.validate(&against_empty_cluster());
    assert_eq!(lines(&report), Vec::<String>::new());
    assert_eq!(report.documents.len(), 2);
    let cp = &report.documents[0];
    assert_eq!(cp.path, "controlplanes/a.yaml");
    assert_eq!((cp.index, cp.pos), (0, Pos { line: 1, column: 1 }));
    assert_eq!(
        cp.key,
        ObjectKey {
            kind: Kind::ControlPlane,
            name: "a".into()
        }
    );
    let Object::ControlPlane(typed) = &cp.object else {
        panic!("not a ControlPlane: {:?}", cp.object)
    };
    assert_eq!(typed.spec.type_, ControlPlaneType::K8s);
    assert_eq!(cp.raw["spec"], serde_json::json!({"type": "k8s"}));
    let hook = &report.documents[1];
    assert_eq!(hook.key.kind, Kind::PostCreateHook);
    assert!(matches!(hook.object, Object::PostCreateHook(_)));
    assert_eq!(
        report.files,
        BTreeMap::from([
            ("controlplanes/a.yaml".to_owned(), FileStatus::Valid),
            ("hooks/h.yml".to_owned(), FileStatus::Valid),
        ])
    );
}

#[test]
fn multi_document_files_keep_index_and_line() {
    let text = format!("---\n{CP_A}---\n{HOOK_H}");
    let repo = Repo::new(&[("all.yaml", &text)]);
    let report = repo.validate(&against_empty_cluster());
    assert!(report.problems.is_empty(), "{:?}", lines(&report));
    let at: Vec<_> = report
        .documents
        .iter()
        .map(|d| (d.index, d.pos.line))
        .collect();
    assert_eq!(at, vec![(0, 2), (1, 9)]);
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        problems_of("apiVersion: v1\nkind: [ControlPlane\nmetadata: {}\n"),
        vec!["cp.yaml:3:9: YAML: illegal placement of ':' indicator"]
    );
}

#[test]
fn unknown_fields_are_named_with_a_suggestion() {
    let text = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: a
  lables: {}
spec:
  type: k8s
  postCreatHooks:
    - hookName: h
  bootstrapSecretRef: {name: s, namespace: n, inClusterKey: k, extra: 1}
specs: {}
";
    assert_eq!(
        problems_of(text),
        vec![
            "cp.yaml:5:3: metadata.lables: unknown field; did you mean labels?",
            "cp.yaml:8:3: spec.postCreatHooks: unknown field; did you mean postCreateHooks?",
            "cp.yaml:10:64: spec.bootstrapSecretRef.extra: unknown field; expected one of inClusterKey, name, namespace",
            "cp.yaml:11:1: specs: unknown field; did you mean spec?",
        ]
    );
}

#[test]
fn mistyped_fields() {
    let text = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: a
  labels:
    team: 7
spec:
  type: k8s
  waitForPostCreateHooks: yes
  tokenExpirationSeconds: 1h
  globalVars: [a, b]
  postCreateHooks:
    - hookName: {name: h}
";
    assert_eq!(
        problems_of(text),
        vec![
            "cp.yaml:6:11: metadata.labels.team: expected a string, found integer 7",
            "cp.yaml:9:27: spec.waitForPostCreateHooks: expected a boolean, found string \"yes\"",
            "cp.yaml:10:27: spec.tokenExpirationSeconds: expected an integer, found string \"1h\"",
            "cp.yaml:11:15: spec.globalVars: expected an object, found array",
            "cp.yaml:13:17: spec.postCreateHooks[0].hookName: expected a string, found object",
        ]
    );
}

#[test]
fn enums() {
    let text = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: a
spec:
  type: k9s
  backend: fast
";
    assert_eq!(
        problems_of(text),
        vec![
            "cp.yaml:6:9: spec.type: unsupported value \"k9s\"; expected one of k8s, k3s, vcluster, host, external",
            "cp.yaml:7:12: spec.backend: unsupported value \"fast\"; expected one of shared, dedicated",
        ]
    );
    // In the CRD for compatibility only: the operator refuses it.
    assert_eq!(
        problems_of(&CP_A.replace("k8s", "ocm")),
        vec![
            "cp.yaml:6:9: spec.type: unsupported value \"ocm\"; expected one of k8s, k3s, vcluster, host, external"
        ]
    );
}

#[test]
fn required_fields() {
    let text = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  labels: {a: b}
spec:
  backend: shared
  bootstrapSecretRef:
    name: s
    namespace:
---
kind: ControlPlane
metadata: {name: b}
---
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: PostCreateHook
metadata: {name: h}
";
    assert_eq!(
        problems_of(text),
        vec![
            "cp.yaml:4:3: metadata.name: required field is missing",
            "cp.yaml:6:3: spec.type: required field is missing",
            "cp.yaml:8:5: spec.bootstrapSecretRef.inClusterKey: required field is missing",
            "cp.yaml:8:5: spec.bootstrapSecretRef.namespace: required field is missing",
            "cp.yaml:11:1: apiVersion: required field is missing; every document must be a Kubernetes object",
            "cp.yaml:14:1: spec: required field is missing",
        ]
    );
}

#[test]
fn names_must_be_dns_1123() {
    let long = "a".repeat(57);
    let text = format!(
        "{}---\n{}---\n{}",
        CP_A.replace("name: a", "name: My_CP"),
        CP_A.replace("name: a", &format!("name: {long}")),
        HOOK_H.replace("name: h", "name: bad..hook"),
    );
    assert_eq!(
        problems_of(&text),
        vec![
            "cp.yaml:4:9: metadata.name: \"My_CP\" is not a valid ControlPlane name: use lowercase letters, digits and '-', starting and ending with a letter or digit".to_owned(),
            format!("cp.yaml:11:9: metadata.name: \"{long}\" is 57 characters; a ControlPlane name may have at most 56, since its namespace {long}-system may have at most 63"),
            "cp.yaml:18:9: metadata.name: \"bad..hook\" is not a valid PostCreateHook name: use at most 253 lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit".to_owned(),
        ]
    );
}

#[test]
fn metadata_that_has_no_place_in_a_repository() {
    let text = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: a
  namespace: default
  resourceVersion: \"12\"
spec:
  type: k8s
status:
  observedGeneration: 1
";
    assert_eq!(
        problems_of(text),
        vec![
            "cp.yaml:5:3: metadata.namespace: ControlPlane is cluster-scoped; remove the namespace",
            "cp.yaml:6:3: metadata.resourceVersion: set by the API server; remove it from the manifest",
            "cp.yaml:9:1: warning: status: ignored: status is written by the operator",
        ]
    );
}

#[test]
fn the_same_object_twice_names_both_files() {
    let repo = Repo::new(&[("a.yaml", CP_A), ("b/other.yaml", CP_A), ("c.yaml", HOOK_H)]);
    let report = repo.validate(&against_empty_cluster());
    assert_eq!(
        lines(&report),
        vec![
            "a.yaml:4:9: metadata.name: ControlPlane \"a\" is also defined at b/other.yaml:4:9",
            "b/other.yaml:4:9: metadata.name: ControlPlane \"a\" is also defined at a.yaml:4:9",
        ]
    );
    assert_eq!(
        report.failed_files().collect::<Vec<_>>(),
        vec!["a.yaml", "b/other.yaml"]
    );
    // The hook is unaffected.
    assert_eq!(report.documents.len(), 1);
    assert_eq!(report.documents[0].path, "c.yaml");
}

#[test]
fn a_duplicate_within_one_file() {
    let text = format!("{CP_A}---\n{CP_A}");
    assert_eq!(
        problems_of(&text),
        vec![
            "cp.yaml:4:9: metadata.name: ControlPlane \"a\" is also defined at cp.yaml:11:9",
            "cp.yaml:11:9: metadata.name: ControlPlane \"a\" is also defined at cp.yaml:4:9",
        ]
    );
}

const CP_WITH_HOOKS: &str = "\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1
kind: ControlPlane
metadata:
  name: a
spec:
  type: k8s
  postCreateHook: legacy
  postCreateHooks:
    - hookName: h
    - hookName: missing
";

#[test]
fn hook_references_must_resolve() {
    let repo = Repo::new(&[("cp.yaml", CP_WITH_HOOKS), ("h.yaml", HOOK_H)]);
    let report = repo.validate(&against_empty_cluster());
    assert_eq!(
        lines(&report),
        vec![
            "cp.yaml:7:19: spec.postCreateHook: PostCreateHook \"legacy\" is not defined by any valid file or in the cluster",
            "cp.yaml:10:17: spec.postCreateHooks[1].hookName: PostCreateHook \"missing\" is not defined by any valid file or in the cluster",
        ]
    );
    assert_eq!(report.files["cp.yaml"], FileStatus::Failed);

    // Hooks the cluster has resolve too.
    let mut options = against_empty_cluster();
    options.cluster.hooks = Some(BTreeSet::from(["legacy".to_owned(), "missing".to_owned()]));
    let report = repo.validate(&options);
    assert!(report.problems.is_empty(), "{:?}", lines(&report));
    assert_eq!(report.documents.len(), 2);

    // Without a cluster (offline `kflex validate`) an unresolved hook is a warning.
    let report = repo.validate(&Options::default());
    assert_eq!(
        lines(&report),
        vec![
            "cp.yaml:7:19: warning: spec.postCreateHook: PostCreateHook \"legacy\" is not defined by any valid file (the cluster was not consulted)",
            "cp.yaml:10:17: warning: spec.postCreateHooks[1].hookName: PostCreateHook \"missing\" is not defined by any valid file (the cluster was not consulted)",
        ]
    );
    assert!(!report.has_errors());
    assert_eq!(report.documents.len(), 2);
}

#[test]
fn a_hook_in_a_failed_file_does_not_resolve() {
    let repo = Repo::new(&[
        (
            "cp.yaml",
            &CP_WITH_HOOKS.replace("    - hookName: missing\n", ""),
        ),
        ("h.yaml", &format!("{HOOK_H}extra: [\n")),
    ]);
    let mut options = against_empty_cluster();
    options.cluster.hooks = Some(BTreeSet::from(["legacy".to_owned()]));
    let report = repo.validate(&options);
    assert_eq!(
        lines(&report),
        vec![
            "cp.yaml:9:17: spec.postCreateHooks[0].hookName: PostCreateHook \"h\" is not defined by any valid file or in the cluster",
            "h.yaml:11:8: YAML: unclosed bracket '['",
        ]
    );
}

#[test]
fn type_is_immutable_against_the_cluster() {
    let mut options = against_empty_cluster();
    options.cluster.control_plane_types = BTreeMap::from([("a".to_owned(), ControlPlaneType::K3s)]);
    let repo = Repo::new(&[("cp.yaml", CP_A)]);
    assert_eq!(
        lines(&repo.validate(&options)),
        vec![
            "cp.yaml:6:9: spec.type: cannot change from k3s to k8s: type is immutable; delete the ControlPlane and create it anew to change it"
        ]
    );
    options.cluster.control_plane_types = BTreeMap::from([("a".to_owned(), ControlPlaneType::K8s)]);
    assert!(repo.validate(&options).problems.is_empty());
}

#[test]
fn other_kinds_are_reported_and_skipped() {
    let text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n---\n{CP_A}---\napiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: Tenant\n"
    );
    let repo = Repo::new(&[("mixed.yaml", &text), ("list.yaml", "- a\n- b\n")]);
    let report = repo.validate(&against_empty_cluster());
    assert_eq!(
        lines(&report),
        vec![
            "list.yaml:1:1: document is array, not a Kubernetes object (a mapping with apiVersion and kind)",
            "mixed.yaml:2:7: warning: kind: skipping Deployment (apps/v1): only ControlPlane and PostCreateHook (tenancy.kflex.kubestellar.org/v1alpha1) are applied",
            "mixed.yaml:13:7: kind: unknown kind \"Tenant\" in tenancy.kflex.kubestellar.org; expected ControlPlane or PostCreateHook",
        ]
    );
    let only_warning = Repo::new(&[("mixed.yaml", &text[..text.rfind("---").unwrap()])]);
    let report = only_warning.validate(&against_empty_cluster());
    assert!(!report.has_errors());
    assert_eq!(report.warnings().count(), 1);
    assert_eq!(report.documents.len(), 1);
    assert_eq!(report.documents[0].index, 1);
}

#[test]
fn a_failed_file_yields_none_of_its_documents() {
    let bad = format!("{HOOK_H}---\n{}", CP_A.replace("k8s", "k9s"));
    let repo = Repo::new(&[
        ("bad.yaml", &bad),
        ("good.yaml", &CP_A.replace("name: a", "name: b")),
    ]);
    let report = repo.validate(&against_empty_cluster());
    assert_eq!(report.errors().count(), 1);
    let paths: Vec<_> = report.documents.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, vec!["good.yaml"]);
    assert_eq!(report.files["bad.yaml"], FileStatus::Failed);
    assert_eq!(report.errors().next().unwrap().kind, ProblemKind::Enum);
    assert_eq!(report.errors().next().unwrap().severity, Severity::Error);
}

#[test]
fn file_over_one_mebibyte_is_refused() {
    let repo = Repo::new(&[("ok.yaml", CP_A)]);
    let mut big = CP_A.to_owned();
    big.push_str(&"#".repeat(1024 * 1024));
    repo.write("big.yaml", big.as_bytes());
    let report = repo.validate(&against_empty_cluster());
    assert_eq!(
        lines(&report),
        vec![format!(
            "big.yaml:1:1: file is {} bytes, over the limit of 1048576 bytes; refusing it",
            big.len()
        )]
    );
    assert_eq!(report.problems[0].kind, ProblemKind::TooLarge);
    assert_eq!(report.documents.len(), 1);
}

#[test]
fn alias_expansion_is_refused() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .into_iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 10].join(", ");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let report = Repo::new(&[("lol.yaml", &text)]).validate(&against_empty_cluster());
    assert_eq!(report.problems.len(), 1);
    let problem = &report.problems[0];
    assert_eq!(problem.kind, ProblemKind::Limit);
    assert!(problem.to_string().starts_with("lol.yaml:"), "{problem}");
    assert!(problem.message.contains("refusing the file"), "{problem}");
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!("a: {}{}\n", "[".repeat(70), "]".repeat(70));
    assert_eq!(
        problems_of(&text),
        vec!["cp.yaml:1:67: YAML nesting is deeper than 64 levels; refusing the file"]
    );
}

#[test]
fn symlinks_leading_outside_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("cp.yaml"), CP_A).unwrap();
    let repo = Repo::new(&[("inside/hook.yaml", HOOK_H)]);
    std::os::unix::fs::symlink(outside.path().join("cp.yaml"), repo.root().join("cp.yaml"))
        .unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.root().join("dir")).unwrap();
    // A symlink staying inside is read through.
    std::os::unix::fs::symlink("inside/hook.yaml", repo.root().join("alias.yaml")).unwrap();
    let report = repo.validate(&against_empty_cluster());
    let outside = std::fs::canonicalize(outside.path()).unwrap();
    assert_eq!(
        lines(&report),
        vec![
            "alias.yaml:4:9: metadata.name: PostCreateHook \"h\" is also defined at inside/hook.yaml:4:9".to_owned(),
            format!(
                "cp.yaml:1:1: symlink leads outside the repository (to {}/cp.yaml); refusing it",
                outside.display()
            ),
            format!(
                "dir:1:1: symlink leads outside the repository (to {}); refusing it",
                outside.display()
            ),
            "inside/hook.yaml:4:9: metadata.name: PostCreateHook \"h\" is also defined at alias.yaml:4:9".to_owned(),
        ]
    );
    assert_eq!(report.problems[1].kind, ProblemKind::Symlink);
}

#[test]
fn non_utf8_is_refused_at_the_bad_byte() {
    let repo = Repo::new(&[]);
    repo.write("latin1.yaml", b"apiVersion: v1\nkind: caf\xe9\n");
    let report = repo.validate(&against_empty_cluster());
    assert_eq!(
        lines(&report),
        vec!["latin1.yaml:2:10: file is not valid UTF-8 (invalid byte at offset 24); refusing it"]
    );
    assert_eq!(report.problems[0].kind, ProblemKind::Encoding);
}

#[test]
fn selected_paths_see_objects_defined_elsewhere() {
    let repo = Repo::new(&[(
        "new.yaml",
        CP_WITH_HOOKS
            .replace("    - hookName: missing\n", "")
            .as_str(),
    )]);
    let snapshot = DirSource::new(repo.root(), "").unwrap().snapshot().unwrap();
    let mut options = against_empty_cluster();
    options.cluster.hooks = Some(BTreeSet::from(["legacy".to_owned()]));
    options.elsewhere = vec![
        Definition {
            key: ObjectKey {
                kind: Kind::PostCreateHook,
                name: "h".into(),
            },
            path: "hooks/h.yaml".into(),
            pos: Pos { line: 4, column: 9 },
        },
        Definition {
            key: ObjectKey {
                kind: Kind::ControlPlane,
                name: "a".into(),
            },
            path: "old.yaml".into(),
            pos: Pos { line: 4, column: 9 },
        },
        // Definitions from files read in this pass are superseded by them.
        Definition {
            key: ObjectKey {
                kind: Kind::ControlPlane,
                name: "a".into(),
            },
            path: "new.yaml".into(),
            pos: Pos {
                line: 40,
                column: 9,
            },
        },
    ];
    let selected = ["new.yaml".to_owned(), "notes.txt".to_owned()];
    let report = validate(&snapshot, Selection::Paths(&selected), &options).unwrap();
    assert_eq!(
        lines(&report),
        vec!["new.yaml:4:9: metadata.name: ControlPlane \"a\" is also defined at old.yaml:4:9"]
    );
    assert_eq!(report.files.len(), 1);

    // Without the clash, the hook defined in an unread file resolves.
    options.elsewhere.remove(1);
    let report = validate(&snapshot, Selection::Paths(&selected), &options).unwrap();
    assert!(report.problems.is_empty(), "{:?}", lines(&report));
    assert_eq!(report.documents.len(), 1);
}

#[test]
fn a_missing_selected_file_is_reported() {
    let repo = Repo::new(&[]);
    let snapshot = DirSource::new(repo.root(), "").unwrap().snapshot().unwrap();
    let report = validate(
        &snapshot,
        Selection::Paths(&["gone.yaml".to_owned()]),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(lines(&report), vec!["gone.yaml:1:1: file does not exist"]);
}

#[test]
fn embedded_templates_need_api_version_and_kind() {
    let text = HOOK_H.replace(
        "    - apiVersion: v1\n      kind: Namespace\n",
        "    - kind: 3\n",
    );
    assert_eq!(
        problems_of(&text),
        vec![
            "cp.yaml:7:7: spec.templates[0].apiVersion: required field is missing",
            "cp.yaml:7:13: spec.templates[0].kind: expected a non-empty string, found integer 3",
        ]
    );
}
