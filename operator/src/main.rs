//! `kubeflex-operator`: today it prints or writes the CRDs; the reconcile
//! loop arrives with the operator issues.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kubeflex-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (multi-document YAML), or write
    /// one file per kind into a directory.
    Crds {
        /// Directory to write `<group>_<plural>.yaml` files into.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { write } => {
            let files = kubeflex_operator::crdgen::crd_files()?;
            match write {
                None => files.iter().for_each(|(_, yaml)| print!("{yaml}")),
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    for (file, yaml) in files {
                        let path = dir.join(file);
                        std::fs::write(&path, yaml)
                            .with_context(|| format!("writing {}", path.display()))?;
                        println!("wrote {}", path.display());
                    }
                }
            }
        }
    }
    Ok(())
}
