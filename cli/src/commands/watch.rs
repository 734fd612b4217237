//! `kflex watch [PATH]`: local watch mode in the foreground. It runs the
//! reconciler itself (`kubeflex-reconciler --dir PATH --watch`) under its
//! own source name (`--name`, default `local`: its own Sync and Lease,
//! never another source's), and turns its log into one line per pass plus
//! each problem with its `path:line:column`. Ctrl-C stops both cleanly.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The directory to watch (default: the current one).
    pub dir: Option<PathBuf>,
    /// Source name: the Sync object, the source label and the Lease.
    #[arg(long, default_value = "local")]
    pub name: String,
    /// Directory under PATH holding the manifests.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Every line of the reconciler's log: set by the global `-v`.
    #[arg(skip)]
    pub verbose: bool,
}

/// The reconciler binary: next to kflex, else on PATH.
pub fn reconciler_binary() -> PathBuf {
    let name = "kubeflex-reconciler";
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// `key=value` fields of a log line (values without spaces).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The line kflex prints for one line of the reconciler's log, if any.
pub fn summarize(line: &str) -> Option<String> {
    if line.contains("pass done") {
        let n = |k| field(line, k).unwrap_or("0");
        let mut out = format!(
            "pass: applied {}, unchanged {}, pruned {}, failed {}",
            n("applied"),
            n("unchanged"),
            n("pruned"),
            n("failed")
        );
        let invalid = n("invalid_files");
        if invalid != "0" {
            out.push_str(&format!(", {invalid} invalid files"));
        }
        return Some(out);
    }
    if line.contains(" WARN ") || line.contains(" ERROR ") {
        // The message after the target (`kubeflex_reconciler::...: `).
        let message = line
            .split_once(": ")
            .map(|(_, rest)| rest)
            .unwrap_or(line)
            .trim();
        return Some(format!("  {message}"));
    }
    None
}

/// Runs until the reconciler exits (Ctrl-C reaches both: same process
/// group). Returns its exit code.
pub fn run(args: &WatchArgs, kubeconfig: Option<&Path>) -> Result<i32, String> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
    };
    let binary = reconciler_binary();
    let mut cmd = Command::new(&binary);
    cmd.arg("--dir")
        .arg(&dir)
        .arg("--watch")
        .args(["--name", &args.name, "--path", &args.path])
        .env("RUST_LOG", "warn,kubeflex_reconciler=info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(k) = kubeconfig {
        cmd.arg("--kubeconfig").arg(k);
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start {} ({e}): install it next to kflex or on PATH",
            binary.display()
        )
    })?;
    println!(
        "watching {} as source {:?} (Ctrl-C stops)",
        dir.display(),
        args.name
    );
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if args.verbose {
                println!("{line}");
            } else if let Some(s) = summarize(&line) {
                println!("{s}");
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok(status.code().unwrap_or(0))
}

/// `kflex watch` against the hosting context: the reconciler gets a
/// kubeconfig (mode 0600, removed afterwards) whose current context is the
/// hosting one.
pub async fn run_cmd(app: &super::App, mut args: WatchArgs) -> anyhow::Result<()> {
    args.verbose = app.global.verbose > 0;
    let (_, mut kc) = app.load()?;
    let hosting = app.hosting(&mut kc).await?;
    kc.current_context = hosting.context.clone();
    let file = tempfile::Builder::new()
        .prefix("kflex-watch-")
        .suffix(".kubeconfig")
        .tempfile()?;
    std::fs::write(file.path(), kc.to_yaml(file.path())?)?;
    let path = file.path().to_owned();
    // Ctrl-C reaches the reconciler too (same process group): kflex waits
    // for it to stop cleanly instead of dying first.
    tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    let code = tokio::task::spawn_blocking(move || run(&args, Some(&path))).await?;
    drop(file);
    super::exit_with(code.map_err(anyhow::Error::msg)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_lines_and_problems() {
        let line = "2026-01-01T00:00:00Z  INFO sync{name=local revision=abc}: kubeflex_reconciler::reconcile: pass done applied=2 unchanged=1 pruned=0 failed=0 invalid_files=1 files=3";
        assert_eq!(
            summarize(line).unwrap(),
            "pass: applied 2, unchanged 1, pruned 0, failed 0, 1 invalid files"
        );
        let warn = "2026-01-01T00:00:00Z  WARN kubeflex_reconciler::reconcile: cp.yaml:6:9: spec.type: bad";
        assert_eq!(summarize(warn).unwrap(), "  cp.yaml:6:9: spec.type: bad");
        assert_eq!(summarize("2026 INFO something else"), None);
    }
}
