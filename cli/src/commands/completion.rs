//! `kflex completion bash|zsh|fish`, generated from the clap definition.

use clap::CommandFactory as _;

use crate::cli::{Cli, Shell};

pub fn run(shell: Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "kflex", &mut out)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "kflex", &mut out)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "kflex", &mut out)
        }
    }
    Ok(())
}
