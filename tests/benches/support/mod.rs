//! Shared by testenv's benchmarks: the server as a process of its own (so
//! its memory figures are its own), ready to serve.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `kubeflex-testenv serve`, writing its admin kubeconfig to
/// `kubeconfig`, and returns once it printed `ready`. The rest of its
/// output is drained in the background.
pub fn spawn_server(kubeconfig: &Path) -> anyhow::Result<Child> {
    let mut server = Command::new(env!("CARGO_BIN_EXE_kubeflex-testenv"))
        .args(["serve", "--kubeconfig"])
        .arg(kubeconfig)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = server
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("server exited"))??;
        if line.starts_with("ready ") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Ok(server)
}
