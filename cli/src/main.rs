//! `kflex`: exit 0 on success, 1 on failure (`Error: <one line>` on
//! stderr), 2 on a usage error (clap's own).

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = kflex::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(kflex::commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost context and the root cause.
            let root = e.root_cause().to_string();
            let top = e.to_string();
            if top == root {
                eprintln!("Error: {top}");
            } else {
                eprintln!("Error: {top}: {root}");
            }
            std::process::ExitCode::from(1)
        }
    }
}
