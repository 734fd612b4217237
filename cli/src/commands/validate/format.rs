//! How `kflex validate` prints what it found: plain text for people,
//! GitHub workflow annotations so a pull request shows each problem on its
//! line, JSON for other tools.

use std::fmt::Write as _;

use kubeflex_reconciler::validate::{FileStatus, Severity};
use serde_json::json;

use super::Checked;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Github,
    Json,
}

/// One validated root, ready to print.
pub struct Section<'a> {
    /// How the root is named in the summary (as the user wrote it).
    pub name: &'a str,
    pub checked: &'a Checked,
    /// Files not read, with `-v`.
    pub skipped: &'a [String],
}

pub fn render(format: Format, sections: &[Section<'_>], verbose: bool) -> String {
    match format {
        Format::Text => text(sections, verbose),
        Format::Github => github(sections),
        Format::Json => json(sections),
    }
}

fn counts(sections: &[Section<'_>]) -> (usize, usize, usize, usize) {
    let mut files = 0;
    let mut objects = 0;
    let mut errors = 0;
    let mut warnings = 0;
    for s in sections {
        files += s.checked.files.len();
        objects += s.checked.objects().count();
        for f in &s.checked.findings {
            match f.severity {
                Severity::Error => errors += 1,
                Severity::Warning => warnings += 1,
            }
        }
    }
    (files, objects, errors, warnings)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn text(sections: &[Section<'_>], verbose: bool) -> String {
    let mut out = String::new();
    for s in sections {
        for f in &s.checked.findings {
            let _ = writeln!(out, "{f}");
        }
        if verbose {
            for (path, status) in &s.checked.files {
                let verdict = match status {
                    FileStatus::Valid => "ok",
                    FileStatus::Failed => "FAILED",
                };
                let _ = writeln!(out, "{path}: {verdict}");
            }
            for path in s.skipped {
                let _ = writeln!(out, "{path}: skipped (the reconciler does not read it)");
            }
        }
    }
    let (files, objects, errors, warnings) = counts(sections);
    let verdict = if errors == 0 { "valid" } else { "invalid" };
    let _ = writeln!(
        out,
        "{verdict}: {}, {}, {}, {}",
        plural(files, "file", "files"),
        plural(objects, "object", "objects"),
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings"),
    );
    out
}

/// `::error file=…,line=…,col=…,title=…::message`, one line per problem,
/// escaped as GitHub's workflow commands require.
fn github(sections: &[Section<'_>]) -> String {
    let mut out = String::new();
    for s in sections {
        for f in &s.checked.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let mut message = String::new();
            if let Some(field) = &f.field {
                let _ = write!(message, "{field}: ");
            }
            message.push_str(&f.message);
            let _ = writeln!(
                out,
                "::{level} file={},line={},col={},title={}::{}",
                escape_property(&f.path),
                f.pos.line,
                f.pos.column,
                escape_property(&format!("kflex validate ({})", f.kind)),
                escape_data(&message),
            );
        }
    }
    let (files, objects, errors, warnings) = counts(sections);
    let _ = writeln!(
        out,
        "kflex validate: {}, {}, {}, {}",
        plural(files, "file", "files"),
        plural(objects, "object", "objects"),
        plural(errors, "error", "errors"),
        plural(warnings, "warning", "warnings"),
    );
    out
}

/// Message text of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value (`file=`, `title=`) of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn json(sections: &[Section<'_>]) -> String {
    let (files, objects, errors, warnings) = counts(sections);
    let roots: Vec<_> = sections
        .iter()
        .map(|s| {
            json!({
                "root": s.name,
                "valid": !s.checked.has_errors(),
                "files": s.checked.files.iter().map(|(p, st)| json!({
                    "path": p,
                    "status": match st { FileStatus::Valid => "valid", FileStatus::Failed => "failed" },
                })).collect::<Vec<_>>(),
                "objects": s.checked.objects().map(|(k, p, pos)| json!({
                    "kind": k.kind.as_str(),
                    "name": k.name,
                    "path": p,
                    "line": pos.line,
                    "column": pos.column,
                })).collect::<Vec<_>>(),
                "problems": s.checked.findings.iter().map(|f| json!({
                    "severity": match f.severity { Severity::Error => "error", Severity::Warning => "warning" },
                    "kind": f.kind,
                    "path": f.path,
                    "line": f.pos.line,
                    "column": f.pos.column,
                    "object": f.object.as_ref().map(|o| json!({"kind": o.kind.as_str(), "name": o.name})),
                    "field": f.field,
                    "message": f.message,
                })).collect::<Vec<_>>(),
                "skipped": s.skipped,
            })
        })
        .collect();
    let doc = json!({
        "valid": errors == 0,
        "summary": {"files": files, "objects": objects, "errors": errors, "warnings": warnings},
        "roots": roots,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_escaping() {
        assert_eq!(escape_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
