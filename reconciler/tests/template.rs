//! The starter repository (`repo-template/`) validates cleanly: what a new
//! user copies must sync as is.

#![allow(clippy::unwrap_used)]

use kubeflex_reconciler::validate::{Options, validate_dir};

#[test]
fn repo_template_is_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../repo-template");
    let report = validate_dir(std::path::Path::new(root), "", &Options::default()).unwrap();
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let mut keys: Vec<String> = report.documents.iter().map(|d| d.key.to_string()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ControlPlane \"cp1\"",
            "ControlPlane \"edge1\"",
            "ControlPlane \"vc1\"",
            "PostCreateHook \"hello\""
        ]
    );
}
