//! `kflex`: the command-line tool. Only `version` exists so far.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kflex", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the kflex version and the API version it speaks.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Version => {
            println!(
                "kflex {} ({})",
                env!("CARGO_PKG_VERSION"),
                kubeflex_operator::api::API_VERSION
            );
        }
    }
    Ok(())
}
