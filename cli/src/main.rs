//! `kflex`: exit 0 on success, 1 on failure (`Error: <one line>` on
//! stderr), 2 on a usage error (clap's own).

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = kflex::cli::Cli::parse();
    // `kflex dev` runs a cluster, the operator and the reconciler; `diff`
    // validates a whole source in place (`block_in_place`): threads.
    let threads = matches!(
        cli.command,
        kflex::cli::Command::Dev(_) | kflex::cli::Command::Diff(_)
    );
    let built = if threads {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build();
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = rt.block_on(kflex::commands::run(cli));
    // Tasks still running at a stop (watches, tenant servers) are dropped,
    // not awaited: exit within the promised few seconds.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
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
