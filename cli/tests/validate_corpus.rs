//! `kflex validate` on a corpus of broken and hostile repositories: each
//! names the file and line of its problem, exits 1 (never 101, a panic),
//! and finishes (a run that outlives its deadline is killed and fails).
//! Also: the GitHub annotation format line by line, the JSON report, exit
//! code 2 on usage errors, and `repo-template/` passing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const API: &str = "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1";

fn cp(name: &str, spec: &str) -> String {
    format!("{API}\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn hook(name: &str, templates: &str) -> String {
    format!(
        "{API}\nkind: PostCreateHook\nmetadata:\n  name: {name}\nspec:\n  templates:\n{templates}"
    )
}

/// A ControlPlane using hook `h` with `vars`.
fn cp_with_hook(name: &str, vars: &str) -> String {
    cp(
        name,
        &format!("  type: k8s\n  postCreateHooks:\n    - hookName: h\n      vars:\n{vars}"),
    )
}

enum Entry {
    File(&'static str, Vec<u8>),
    Link(&'static str, &'static str),
}

fn f(path: &'static str, text: impl Into<String>) -> Entry {
    Entry::File(path, text.into().into_bytes())
}

struct Case {
    name: &'static str,
    entries: Vec<Entry>,
    /// Each must appear in the text output (typically `path:line:`).
    expect: Vec<&'static str>,
}

fn case(name: &'static str, entries: Vec<Entry>, expect: &[&'static str]) -> Case {
    Case {
        name,
        entries,
        expect: expect.to_vec(),
    }
}

const JOB: &str = "    - apiVersion: batch/v1\n      kind: Job\n      metadata:\n        name: j\n";

fn corpus() -> Vec<Case> {
    let k8s = "  type: k8s\n";
    let mut cases = vec![
        // --- YAML syntax ---
        case(
            "tab-indentation",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n\tname: a\n"),
            )],
            &["cp.yaml:4:"],
        ),
        case(
            "unclosed-quote",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n  name: \"a\nspec: {{}}\n"),
            )],
            &["cp.yaml:"],
        ),
        case(
            "unclosed-flow-map",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata: {{name: a\n"),
            )],
            &["cp.yaml:"],
        ),
        case(
            "bad-indentation",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n    name: a\n  labels: {{}}\n"),
            )],
            &["cp.yaml:5:"],
        ),
        case(
            "mapping-in-scalar",
            vec![f("cp.yaml", format!("{API}\nkind: ControlPlane: x\n"))],
            &["cp.yaml:2:"],
        ),
        case(
            "bad-escape",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n  name: \"a\\q\"\n"),
            )],
            &["cp.yaml:4:"],
        ),
        case("stray-bracket", vec![f("cp.yaml", "]\n")], &["cp.yaml:1:"]),
        case(
            "duplicate-key-metadata",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n  name: a\n  name: b\nspec:\n{k8s}"),
            )],
            &["cp.yaml:5:"],
        ),
        case(
            "duplicate-key-top",
            vec![f(
                "cp.yaml",
                format!(
                    "{API}\nkind: ControlPlane\nkind: ControlPlane\nmetadata:\n  name: a\nspec:\n{k8s}"
                ),
            )],
            &["cp.yaml:3:"],
        ),
        case(
            "not-utf8",
            vec![Entry::File(
                "cp.yaml",
                b"apiVersion: v1\nkind: \xff\xfe\n".to_vec(),
            )],
            &["cp.yaml:2:"],
        ),
        case(
            "nul-byte-in-name",
            vec![Entry::File(
                "cp.yaml",
                b"apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: \"a\x00b\"\nspec:\n  type: k8s\n".to_vec(),
            )],
            &["cp.yaml:4:"],
        ),
        case(
            "second-document-a-list",
            vec![f("cp.yaml", format!("{}---\n- just\n- a list\n", cp("a", k8s)))],
            &["cp.yaml:8:"],
        ),
        case(
            "second-document-broken",
            vec![f(
                "cp.yaml",
                format!(
                    "{}---\n{API}\nkind: ControlPlane\nmetadata: [\n",
                    cp("a", k8s)
                ),
            )],
            &["cp.yaml:"],
        ),
        // --- wrong types ---
        case(
            "type-is-int",
            vec![f("cp.yaml", cp("a", "  type: 5\n"))],
            &["cp.yaml:6:", "spec.type"],
        ),
        case(
            "spec-is-string",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n  name: a\nspec: k8s\n"),
            )],
            &["cp.yaml:5:", "spec"],
        ),
        case(
            "name-is-int",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n  name: 123\nspec:\n{k8s}"),
            )],
            &["cp.yaml:4:"],
        ),
        case(
            "hooks-not-a-list",
            vec![f(
                "cp.yaml",
                cp("a", "  type: k8s\n  postCreateHooks: hello\n"),
            )],
            &["cp.yaml:7:", "postCreateHooks"],
        ),
        case(
            "vars-is-a-list",
            vec![f(
                "cp.yaml",
                cp(
                    "a",
                    "  type: k8s\n  postCreateHooks:\n    - hookName: h\n      vars: [a, b]\n",
                ),
            )],
            &["cp.yaml:9:", "vars"],
        ),
        case(
            "global-var-is-a-map",
            vec![f(
                "cp.yaml",
                cp("a", "  type: k8s\n  globalVars:\n    a: {b: c}\n"),
            )],
            &["cp.yaml:8:", "globalVars"],
        ),
        case(
            "token-seconds-is-string",
            vec![f(
                "cp.yaml",
                cp("a", "  type: external\n  tokenExpirationSeconds: soon\n"),
            )],
            &["cp.yaml:7:", "tokenExpirationSeconds"],
        ),
        case(
            "templates-is-string",
            vec![f(
                "h.yaml",
                format!(
                    "{API}\nkind: PostCreateHook\nmetadata:\n  name: h\nspec:\n  templates: nope\n"
                ),
            )],
            &["h.yaml:6:", "templates"],
        ),
        case(
            "top-level-list",
            vec![f("cp.yaml", "- a\n- b\n")],
            &["cp.yaml:1:"],
        ),
        case(
            "top-level-scalar",
            vec![f("cp.yaml", "just a string\n")],
            &["cp.yaml:1:"],
        ),
        // --- enums ---
        case(
            "unknown-type",
            vec![f("cp.yaml", cp("a", "  type: k9s\n"))],
            &["cp.yaml:6:", "spec.type"],
        ),
        case(
            "type-ocm",
            vec![f("cp.yaml", cp("a", "  type: ocm\n"))],
            &["cp.yaml:6:", "spec.type"],
        ),
        case(
            "unknown-backend",
            vec![f("cp.yaml", cp("a", "  type: k8s\n  backend: mongo\n"))],
            &["cp.yaml:7:", "backend"],
        ),
        // --- unknown fields ---
        case(
            "spec-typo",
            vec![f("cp.yaml", cp("a", "  type: k8s\n  postCreateHok: h\n"))],
            &["cp.yaml:7:", "postCreateHok"],
        ),
        case(
            "top-level-unknown",
            vec![f("cp.yaml", format!("{}extra: 1\n", cp("a", k8s)))],
            &["cp.yaml:7:", "extra"],
        ),
        case(
            "hookname-case",
            vec![f(
                "cp.yaml",
                cp("a", "  type: k8s\n  postCreateHooks:\n    - hookname: h\n"),
            )],
            &["cp.yaml:8:"],
        ),
        // --- required / apiVersion / kind ---
        case(
            "missing-name",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata: {{}}\nspec:\n{k8s}"),
            )],
            &["cp.yaml:3:", "name"],
        ),
        case(
            "missing-kind",
            vec![f(
                "cp.yaml",
                format!("{API}\nmetadata:\n  name: a\nspec:\n{k8s}"),
            )],
            &["cp.yaml:1:"],
        ),
        case(
            "missing-api-version",
            vec![f(
                "cp.yaml",
                format!("kind: ControlPlane\nmetadata:\n  name: a\nspec:\n{k8s}"),
            )],
            &["cp.yaml:1:"],
        ),
        case(
            "missing-type",
            vec![f("cp.yaml", cp("a", "  backend: shared\n"))],
            &["cp.yaml:6:3:", "spec.type"],
        ),
        case(
            "missing-spec",
            vec![f(
                "cp.yaml",
                format!("{API}\nkind: ControlPlane\nmetadata:\n  name: a\n"),
            )],
            &["cp.yaml:1:"],
        ),
        case(
            "wrong-group",
            vec![f(
                "cp.yaml",
                cp("a", k8s).replace("kubestellar.org", "kubestellar.io"),
            )],
            &["cp.yaml:1:"],
        ),
        case(
            "wrong-version",
            vec![f("cp.yaml", cp("a", k8s).replace("v1alpha1", "v1beta9"))],
            &["cp.yaml:1:"],
        ),
        // --- names ---
        case(
            "name-uppercase",
            vec![f("cp.yaml", cp("CP1", k8s))],
            &["cp.yaml:4:", "metadata.name"],
        ),
        case(
            "name-underscore",
            vec![f("cp.yaml", cp("cp_1", k8s))],
            &["cp.yaml:4:"],
        ),
        case(
            "name-too-long",
            vec![f("cp.yaml", cp(&"a".repeat(70), k8s))],
            &["cp.yaml:4:"],
        ),
        case(
            "name-empty",
            vec![f("cp.yaml", cp("\"\"", k8s))],
            &["cp.yaml:4:"],
        ),
        case(
            "name-leading-dash",
            vec![f("cp.yaml", cp("\"-a\"", k8s))],
            &["cp.yaml:4:"],
        ),
        case(
            "hook-name-invalid",
            vec![f("h.yaml", hook("Bad_Hook", JOB))],
            &["h.yaml:4:"],
        ),
        // --- hostile input ---
        case(
            "huge-file",
            vec![f(
                "cp.yaml",
                format!("{}# {}\n", cp("a", k8s), "x".repeat(1_100_000)),
            )],
            &["cp.yaml:1:1:"],
        ),
        case(
            "alias-bomb",
            vec![f("cp.yaml", alias_bomb())],
            &["cp.yaml:"],
        ),
        case(
            "deep-flow-nesting",
            vec![f(
                "cp.yaml",
                format!("a: {}{}\n", "[".repeat(5000), "]".repeat(5000)),
            )],
            &["cp.yaml:1:"],
        ),
        case(
            "deep-block-nesting",
            vec![f("cp.yaml", deep_block(300))],
            &["cp.yaml:"],
        ),
        case(
            "many-documents",
            vec![f("cp.yaml", "---\na: 1\n".repeat(1500))],
            &["cp.yaml:"],
        ),
        case(
            "many-nodes",
            vec![f("cp.yaml", format!("a: [{}]\n", "1,".repeat(250_000)))],
            &["cp.yaml:"],
        ),
        // --- duplicates ---
        case(
            "duplicate-in-file",
            vec![f(
                "cp.yaml",
                format!("{}---\n{}", cp("a", k8s), cp("a", k8s)),
            )],
            &["cp.yaml:11:9:", "also defined at cp.yaml:4:9"],
        ),
        case(
            "duplicate-across-files",
            vec![f("a.yaml", cp("a", k8s)), f("b.yaml", cp("a", k8s))],
            &["b.yaml:", "a.yaml"],
        ),
        case(
            "duplicate-hooks",
            vec![f("h1.yaml", hook("h", JOB)), f("h2.yaml", hook("h", JOB))],
            &["h2.yaml:"],
        ),
        // --- symlinks ---
        case(
            "symlink-to-etc",
            vec![Entry::Link("cp.yaml", "/etc/passwd")],
            &["cp.yaml:1:1:"],
        ),
        case(
            "symlink-up",
            vec![Entry::Link("cp.yaml", "../../outside.yaml")],
            &["cp.yaml:1:1:"],
        ),
        case(
            "symlinked-dir-out",
            vec![Entry::Link("cps", "/etc")],
            &["cps"],
        ),
        case(
            "dangling-symlink",
            vec![Entry::Link("cp.yaml", "missing.yaml")],
            &["cp.yaml:1:1:"],
        ),
        case(
            "symlink-loop",
            vec![
                Entry::Link("a.yaml", "b.yaml"),
                Entry::Link("b.yaml", "a.yaml"),
            ],
            &["a.yaml:1:1:"],
        ),
        // --- the operator's checks ---
        case(
            "external-without-bootstrap",
            vec![f("cp.yaml", cp("a", "  type: external\n"))],
            &["cp.yaml:5:1:", "bootstrapSecretRef"],
        ),
        case(
            "negative-token-lifetime",
            vec![f(
                "cp.yaml",
                cp(
                    "a",
                    "  type: external\n  bootstrapSecretRef: {namespace: ns, name: s, inClusterKey: k}\n  tokenExpirationSeconds: -5\n",
                ),
            )],
            &["cp.yaml:8:", "tokenExpirationSeconds"],
        ),
        case(
            "hook-into-kube-system",
            vec![
                f("cp.yaml", cp_with_hook("a", "        x: y\n")),
                f(
                    "h.yaml",
                    hook("h", &format!("{JOB}        namespace: kube-system\n")),
                ),
            ],
            &["h.yaml:7:", "kube-system"],
        ),
        case(
            "hook-into-other-namespace",
            vec![
                f("cp.yaml", cp_with_hook("a", "        x: y\n")),
                f(
                    "h.yaml",
                    hook("h", &format!("{JOB}        namespace: team-b\n")),
                ),
            ],
            &["h.yaml:7:", "team-b"],
        ),
        case(
            "hook-cluster-kind-not-allowed",
            vec![
                f("cp.yaml", cp_with_hook("a", "        x: y\n")),
                f(
                    "h.yaml",
                    hook(
                        "h",
                        "    - apiVersion: v1\n      kind: Namespace\n      metadata:\n        name: grab\n",
                    ),
                ),
            ],
            &["h.yaml:7:", "allow-list"],
        ),
        case(
            "hook-undefined-variable",
            vec![
                f("cp.yaml", cp_with_hook("a", "        x: y\n")),
                f(
                    "h.yaml",
                    hook(
                        "h",
                        &format!("{JOB}      spec:\n        image: \"{{{{.missing}}}}\"\n"),
                    ),
                ),
            ],
            &["h.yaml:12:", "missing"],
        ),
        case(
            "hook-go-range",
            vec![
                f("cp.yaml", cp_with_hook("a", "        x: y\n")),
                f(
                    "h.yaml",
                    hook(
                        "h",
                        &format!(
                            "{JOB}      data:\n        v: \"{{{{ range .items }}}}x{{{{ end }}}}\"\n"
                        ),
                    ),
                ),
            ],
            &["h.yaml:12:"],
        ),
        case(
            "hook-go-field-path",
            vec![
                f("cp.yaml", cp_with_hook("a", "        x: y\n")),
                f(
                    "h.yaml",
                    hook(
                        "h",
                        &format!("{JOB}      data:\n        v: \"{{{{ .A.B }}}}\"\n"),
                    ),
                ),
            ],
            &["h.yaml:12:", "field path"],
        ),
        case(
            "hook-template-without-name",
            vec![
                f("cp.yaml", cp_with_hook("a", "        x: y\n")),
                f(
                    "h.yaml",
                    hook(
                        "h",
                        "    - apiVersion: batch/v1\n      kind: Job\n      metadata: {}\n",
                    ),
                ),
            ],
            &["h.yaml:7:"],
        ),
        case(
            "hook-template-not-an-object",
            vec![f("h.yaml", hook("h", "    - just a string\n"))],
            &["h.yaml:7:"],
        ),
    ];
    // Every case above in a subdirectory too: paths are named from the root.
    cases.push(case(
        "nested-directory",
        vec![f("tenants/team-a/cp.yaml", cp("a", "  type: k9s\n"))],
        &["tenants/team-a/cp.yaml:6:"],
    ));
    cases
}

fn alias_bomb() -> String {
    let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='j' {
        s.push_str(&format!(
            "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
        prev = c;
    }
    s
}

fn deep_block(depth: usize) -> String {
    let mut s = String::new();
    for i in 0..depth {
        s.push_str(&" ".repeat(i));
        s.push_str("a:\n");
    }
    s
}

fn materialise(root: &Path, entries: &[Entry]) {
    for e in entries {
        match e {
            Entry::File(path, bytes) => {
                let p = root.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, bytes).unwrap();
            }
            Entry::Link(path, target) => {
                let p = root.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(target, p).unwrap();
            }
        }
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs kflex with a deadline: a run past it is killed and fails the test.
fn kflex(args: &[&str], cwd: &Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kflex"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("kflex {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[test]
fn every_broken_repository_is_named_by_file_and_line() {
    let cases = corpus();
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for c in &cases {
        let root = tmp.path().join(c.name).join("repo");
        std::fs::create_dir_all(&root).unwrap();
        materialise(&root, &c.entries);
        let run = kflex(&["validate", root.to_str().unwrap()], tmp.path());
        let missing: Vec<_> = c
            .expect
            .iter()
            .filter(|e| !run.stdout.contains(*e))
            .collect();
        if run.code != 1 || !missing.is_empty() || run.stderr.contains("panicked") {
            failures.push(format!(
                "{}: exit {} (want 1), missing {missing:?}\n{}{}",
                c.name, run.code, run.stdout, run.stderr
            ));
        }
        // The other formats must not panic either, and agree on the verdict.
        for format in ["github", "json"] {
            let run = kflex(
                &["validate", "--format", format, root.to_str().unwrap()],
                tmp.path(),
            );
            if run.code != 1 {
                failures.push(format!("{} --format {format}: exit {}", c.name, run.code));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// A repository with two problems and a warning, shown as annotations.
fn annotated_repo(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let init = Command::new("git")
        .args(["init", "-q"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(init.success());
    materialise(
        root,
        &[
            f(
                "controlplanes/good.yaml",
                cp(
                    "good",
                    "  type: k8s\n  postCreateHooks:\n    - hookName: elsewhere\n",
                ),
            ),
            f("controlplanes/bad.yaml", cp("bad", "  type: k9s\n")),
            f("hooks/h.yaml", hook("h", "    - just a string\n")),
            f(".github/workflows/ci.yml", "on: [push]\njobs: {x: [1, 2}\n"),
            f("README.md", "# tenants\n"),
        ],
    );
}

#[test]
fn github_annotations_line_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    annotated_repo(&root);
    let run = kflex(&["validate", "--format", "github", "."], &root);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines[0].starts_with("::error file=controlplanes/bad.yaml,line=6,col=9,title=kflex validate (enum)::spec.type: "),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("k9s"), "{}", lines[0]);
    assert!(
        lines[1].starts_with("::warning file=controlplanes/good.yaml,line=8,col=17,title=kflex validate (missing_hook)::spec.postCreateHooks[0].hookName: "),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("not consulted"), "{}", lines[1]);
    assert!(
        lines[2].starts_with("::error file=hooks/h.yaml,line=7,col="),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        "kflex validate: 3 files, 1 object, 2 errors, 1 warning"
    );
    // Every annotation is one line: no raw newline or carriage return.
    for l in &lines[..3] {
        let (_, message) = l.split_once("::").unwrap().1.split_once("::").unwrap();
        assert!(!message.contains('\r'));
    }
}

#[test]
fn json_report_and_verbose_text() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    annotated_repo(&root);
    let run = kflex(
        &["validate", "--format", "json", root.to_str().unwrap()],
        tmp.path(),
    );
    assert_eq!(run.code, 1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["summary"]["errors"], 2);
    assert_eq!(doc["summary"]["warnings"], 1);
    let problems = doc["roots"][0]["problems"].as_array().unwrap();
    assert_eq!(problems[0]["path"], "controlplanes/bad.yaml");
    assert_eq!(problems[0]["line"], 6);
    assert_eq!(problems[0]["field"], "spec.type");
    assert_eq!(doc["roots"][0]["objects"][0]["name"], "good");

    let run = kflex(&["validate", "-v", root.to_str().unwrap()], tmp.path());
    assert!(
        run.stdout.contains(".github/workflows/ci.yml: skipped"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("README.md: skipped"), "{}", run.stdout);
    assert!(
        run.stdout.contains("controlplanes/good.yaml: ok"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("controlplanes/bad.yaml: FAILED"),
        "{}",
        run.stdout
    );

    // Only the named file is reported; the hook reference still resolves
    // against the whole checkout's files.
    let run = kflex(&["validate", "controlplanes/good.yaml"], &root);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("controlplanes/good.yaml:8:17: warning: "),
        "{}",
        run.stdout
    );
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let run = kflex(&["validate", "does-not-exist"], tmp.path());
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("does-not-exist"), "{}", run.stderr);
    let run = kflex(&["validate", "--format", "xml", "."], tmp.path());
    assert_eq!(run.code, 2);
}

#[test]
fn repo_template_passes() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../repo-template");
    let run = kflex(&["validate", template.to_str().unwrap()], Path::new("/"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("valid: "), "{}", run.stdout);
    assert!(run.stdout.contains("0 errors"), "{}", run.stdout);
}

/// `validate` takes the operator's own hook-policy flags, so a repository
/// checks against the policy of the operator that will run its hooks.
#[test]
fn hook_policy_flags_match_the_operators() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let reader = "    - apiVersion: rbac.authorization.k8s.io/v1\n      kind: ClusterRole\n      metadata:\n        name: node-reader\n      rules:\n        - apiGroups: [\"\"]\n          resources: [nodes]\n          verbs: [get, list]\n";
    let class = "    - apiVersion: storage.k8s.io/v1\n      kind: StorageClass\n      metadata:\n        name: fast\n      provisioner: example.com/fast\n";
    materialise(
        root,
        &[
            f("hooks/h.yaml", hook("h", reader)),
            f("hooks/sc.yaml", hook("sc", class)),
            f(
                "cps/cp1.yaml",
                cp(
                    "cp1",
                    "  type: k8s\n  postCreateHooks:\n    - hookName: h\n    - hookName: sc\n",
                ),
            ),
        ],
    );
    let dir = root.to_str().unwrap();
    // The operator's defaults: both hooks refused, each at its file.
    let run = kflex(&["validate", dir], root);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("hooks/h.yaml:") && run.stdout.contains("--hook-extra-rules"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("hooks/sc.yaml:") && run.stdout.contains("--hook-cluster-kinds"),
        "{}",
        run.stdout
    );
    // An operator started with these flags accepts both: so does validate.
    let kinds = format!(
        "{},StorageClass.storage.k8s.io",
        kubeflex_operator::hooks::policy::DEFAULT_CLUSTER_KINDS
    );
    let allowed = [
        "validate",
        "--hook-extra-rules",
        "nodes:get,list",
        "--hook-cluster-kinds",
        &kinds,
        dir,
    ];
    let run = kflex(&allowed, root);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // Only what is listed: `list` on nodes is refused without it.
    let run = kflex(
        &[
            "validate",
            "--hook-extra-rules",
            "nodes:get",
            "--hook-cluster-kinds",
            &kinds,
            dir,
        ],
        root,
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("grants list on nodes"),
        "{}",
        run.stdout
    );
    // A malformed rule is a usage error naming the flag.
    let run = kflex(&["validate", "--hook-extra-rules", "nodes", dir], root);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--hook-extra-rules"), "{}", run.stderr);
}
