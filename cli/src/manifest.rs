//! Spec files as text: the documents of a YAML stream by byte range, so that
//! `kflex delete --git` removes one document and keeps every other byte of
//! the file, and the YAML `kflex create --git` writes.

use std::ops::Range;

use kubeflex_reconciler::document::{ParseLimits, parse_stream};

/// The byte ranges of the documents of `text`. A range starts at its `---`
/// line (or at the start of the file) and ends where the next `---` line
/// starts, so the ranges cover the whole text. A document marker is `---`
/// at the start of a line, alone or followed by a space or tab; YAML allows
/// it nowhere else at column 0, not even inside block scalars.
pub fn document_ranges(text: &str) -> Vec<Range<usize>> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && is_marker(line) {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut ranges: Vec<Range<usize>> = starts.windows(2).map(|w| w[0]..w[1]).collect();
    if let Some(&last) = starts.last() {
        ranges.push(last..text.len());
    }
    ranges
}

fn is_marker(line: &str) -> bool {
    let line = line.trim_end_matches(['\n', '\r']);
    line == "---" || line.starts_with("--- ") || line.starts_with("---\t")
}

/// What [`remove_document`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// The object was the file's only document: delete the file.
    DeleteFile,
    /// The file without that document.
    Rewrite(String),
}

/// Removes the document that defines `kind` `name` from `text`. The other
/// documents (and the comments between them) stay byte for byte. `None`
/// when no document parses to that object.
pub fn remove_document(text: &str, kind: &str, name: &str) -> Option<Removal> {
    let limits = ParseLimits::default();
    let ranges = document_ranges(text);
    let defines = |range: &Range<usize>| -> Option<usize> {
        parse_stream(&text[range.clone()], &limits)
            .ok()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter(|n| {
                        n.get_str("kind") == Some(kind)
                            && n.get("metadata").and_then(|(_, m)| m.get_str("name")) == Some(name)
                    })
                    .count()
            })
    };
    let index = ranges.iter().position(|r| defines(r).unwrap_or(0) > 0)?;
    let mut out = String::with_capacity(text.len());
    for (i, r) in ranges.iter().enumerate() {
        if i != index {
            out.push_str(&text[r.clone()]);
        }
    }
    let others = ranges
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .any(|(_, r)| parse_stream(&text[r.clone()], &limits).map_or(true, |n| !n.is_empty()));
    Some(if others {
        Removal::Rewrite(out)
    } else {
        Removal::DeleteFile
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = "# tenants of team a\n\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\n\
kind: ControlPlane\n\
metadata: {name: a1}   # first\n\
spec: {type: k8s}\n\
---\n\
# the second one\n\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\n\
kind: ControlPlane\n\
metadata:\n  name: a2\n\
spec:\n  type: k3s\n  globalVars:\n    motd: |\n      hello\n      --- not a marker\n\
--- # third\n\
apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\n\
kind: ControlPlane\n\
metadata:\n    name:   a3\n\
spec:\n    type: vcluster\n";

    #[test]
    fn ranges_cover_the_text() {
        let ranges = document_ranges(THREE);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[2].end, THREE.len());
        assert!(THREE[ranges[1].clone()].starts_with("---\n# the second"));
        assert!(THREE[ranges[2].clone()].starts_with("--- # third"));
    }

    #[test]
    fn removing_the_middle_document_keeps_the_others_byte_for_byte() {
        let Some(Removal::Rewrite(out)) = remove_document(THREE, "ControlPlane", "a2") else {
            panic!("a2 is defined");
        };
        let ranges = document_ranges(THREE);
        let expected = format!("{}{}", &THREE[ranges[0].clone()], &THREE[ranges[2].clone()]);
        assert_eq!(out, expected);
    }

    #[test]
    fn removing_the_first_and_last_documents() {
        let ranges = document_ranges(THREE);
        let Some(Removal::Rewrite(out)) = remove_document(THREE, "ControlPlane", "a1") else {
            panic!("a1 is defined");
        };
        assert_eq!(out, THREE[ranges[1].start..].to_string());
        let Some(Removal::Rewrite(out)) = remove_document(THREE, "ControlPlane", "a3") else {
            panic!("a3 is defined");
        };
        assert_eq!(out, THREE[..ranges[2].start].to_string());
    }

    #[test]
    fn the_only_document_deletes_the_file() {
        let text = "---\nkind: ControlPlane\nmetadata: {name: x}\n---\n# trailing comment\n";
        assert_eq!(
            remove_document(text, "ControlPlane", "x"),
            Some(Removal::DeleteFile)
        );
        assert_eq!(remove_document(text, "ControlPlane", "y"), None);
        assert_eq!(remove_document(text, "PostCreateHook", "x"), None);
    }
}
