//! `kflex`: the command-line tool.

use clap::{Parser, Subcommand};

use kflex::commands::{diff, gitops, sync, validate, wait, watch};

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
    /// Validate specs with the reconciler's and the operator's checks, no
    /// cluster needed. Exit 0 when valid, 1 on any error, 2 on a usage error.
    Validate(validate::ValidateArgs),
    /// Create a control plane; with --git, by a commit to the repository
    /// the reconciler follows.
    Create {
        name: String,
        /// Commit the spec to Git instead of creating it in the cluster.
        #[arg(long)]
        git: bool,
        #[command(flatten)]
        spec: gitops::SpecArgs,
        #[command(flatten)]
        git_args: gitops::GitArgs,
        #[command(flatten)]
        wait: wait::WaitArgs,
    },
    /// Delete a control plane; with --git, by a commit removing its spec.
    Delete {
        name: String,
        /// Commit the removal to Git instead of deleting in the cluster.
        #[arg(long)]
        git: bool,
        #[command(flatten)]
        git_args: gitops::GitArgs,
        #[command(flatten)]
        wait: wait::WaitArgs,
    },
    /// What a pass of the reconciler would do against the hosting cluster,
    /// without writing anything. Exit 0: no changes; 1: changes; 2: error.
    Diff(diff::DiffArgs),
    /// Local watch mode in the foreground: the reconciler's directory
    /// source and loop under its own source name, one line per pass.
    Watch(watch::WatchArgs),
    /// Ask a running reconciler for a pass now; `kflex sync status` prints
    /// each Sync.
    Sync {
        /// The Sync (reconciler) to trigger, or `status`.
        name: Option<String>,
        /// For `status`: the Sync to show (default: all).
        target: Option<String>,
        /// Wait until the reconciler handled the request, then show its Sync.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "2m", value_parser = wait::parse_duration)]
        timeout: std::time::Duration,
        /// `wide` prints each Sync instead of triggering.
        #[arg(short = 'o', long = "output", value_parser = ["wide"])]
        output: Option<String>,
    },
    /// Wait until the reconciler applied a commit and control plane NAME is
    /// Ready (or the reconciler reports an error in NAME's file).
    Wait {
        name: String,
        /// The commit that defines NAME (SHA or any revision of the checkout).
        #[arg(long)]
        commit: String,
        /// The checkout holding the commit.
        #[arg(long, value_name = "DIR")]
        repo: Option<std::path::PathBuf>,
        /// Remote to fetch the reconciler's commit from.
        #[arg(long, default_value = "origin")]
        remote: String,
        #[arg(long, default_value = "10m", value_parser = wait::parse_duration)]
        timeout: std::time::Duration,
        /// The Sync (reconciler) to follow; default: the only one.
        #[arg(long = "name", value_name = "SYNC")]
        sync: Option<String>,
    },
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
        Command::Validate(args) => {
            let code = if args.cluster {
                runtime()?.block_on(async {
                    let inputs = match client().await {
                        Ok(c) => validate::ClusterInputs::read(&c, args.sync.as_deref()).await,
                        Err(e) => Err(e.to_string()),
                    };
                    match inputs {
                        Ok(inputs) => validate::run(&args, Some(&inputs)),
                        Err(e) => {
                            eprintln!("error: --cluster: {e}");
                            2
                        }
                    }
                })
            } else {
                validate::run(&args, None)
            };
            std::process::exit(code);
        }
        Command::Create {
            name,
            git,
            spec,
            git_args,
            wait,
        } => {
            anyhow::ensure!(
                git,
                "only `kflex create NAME --git` is available in this build"
            );
            let cp = spec.control_plane(&name)?;
            if let Some(conflict) =
                runtime()?.block_on(gitops::cluster_conflict(&name, wait.sync.as_deref()))
            {
                anyhow::bail!("{conflict}; nothing was committed");
            }
            let outcome = gitops::create(&cp, &git_args, &Default::default())?;
            gitops::print_outcome("created", &outcome, &git_args.remote, &repo_dir(&git_args));
            if wait.wait {
                let remote = git_args
                    .push
                    .then_some(git_args.remote.as_str())
                    .or(Some("origin"));
                run_wait(
                    &name,
                    &outcome.path,
                    outcome.committed.commit,
                    &repo_dir(&git_args),
                    remote,
                    &wait,
                    false,
                )?;
            }
        }
        Command::Delete {
            name,
            git,
            git_args,
            wait,
        } => {
            anyhow::ensure!(
                git,
                "only `kflex delete NAME --git` is available in this build"
            );
            let outcome = gitops::delete(&name, &git_args, &Default::default())?;
            gitops::print_outcome("deleted", &outcome, &git_args.remote, &repo_dir(&git_args));
            if wait.wait {
                let remote = git_args
                    .push
                    .then_some(git_args.remote.as_str())
                    .or(Some("origin"));
                run_wait(
                    &name,
                    &outcome.path,
                    outcome.committed.commit,
                    &repo_dir(&git_args),
                    remote,
                    &wait,
                    true,
                )?;
            }
        }
        Command::Diff(args) => {
            let code = runtime()?.block_on(async {
                let client = match client().await {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return 2;
                    }
                };
                match diff::diff(&client, &args).await {
                    Ok(outcome) => {
                        if args.output.is_some() {
                            print!("{}", diff::render_json(&outcome));
                        } else {
                            use std::io::IsTerminal as _;
                            let color = std::io::stdout().is_terminal()
                                && std::env::var_os("NO_COLOR").is_none();
                            print!("{}", diff::render_text(&outcome, color));
                        }
                        outcome.exit_code()
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        2
                    }
                }
            });
            std::process::exit(code);
        }
        Command::Watch(args) => {
            let code = runtime()?.block_on(async move {
                // Ctrl-C reaches the reconciler too (same process group):
                // kflex waits for it to stop cleanly instead of dying first.
                tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
                tokio::task::spawn_blocking(move || watch::run(&args, None)).await
            })?;
            std::process::exit(code.map_err(anyhow::Error::msg)?);
        }
        Command::Sync {
            name,
            target,
            wait,
            timeout,
            output,
        } => {
            runtime()?.block_on(async {
                let client = client().await?;
                let text = if name.as_deref() == Some("status") || output.is_some() {
                    let which = if name.as_deref() == Some("status") {
                        target
                    } else {
                        name
                    };
                    sync::status(&client, which.as_deref()).await
                } else {
                    sync::request(&client, name.as_deref(), wait.then_some(timeout)).await
                };
                print!("{}", text.map_err(anyhow::Error::msg)?);
                anyhow::Ok(())
            })?;
        }
        Command::Wait {
            name,
            commit,
            repo,
            remote,
            timeout,
            sync,
        } => {
            let dir = repo.unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
            let ws = kflex::git::Workspace::discover(&dir)?;
            let commit = wait::resolve_commit(&ws, &commit).map_err(anyhow::Error::msg)?;
            let path = wait::file_of(&ws, commit, &name).map_err(anyhow::Error::msg)?;
            let args = wait::WaitArgs {
                wait: true,
                timeout,
                sync,
            };
            run_wait(&name, &path, commit, &dir, Some(&remote), &args, false)?;
        }
    }
    Ok(())
}

/// Waits with one progress line per stage.
fn run_wait(
    name: &str,
    path: &str,
    commit: gix::ObjectId,
    dir: &std::path::Path,
    remote: Option<&str>,
    args: &wait::WaitArgs,
    deletion: bool,
) -> anyhow::Result<()> {
    let ws = kflex::git::Workspace::discover(dir)?;
    runtime()?.block_on(async {
        let client = client().await?;
        let sync = wait::pick_sync(&client, args.sync.as_deref())
            .await
            .map_err(anyhow::Error::msg)?;
        let w = wait::WaitFor {
            name,
            path,
            commit,
            sync: &sync,
            remote,
            timeout: args.timeout,
            deletion,
        };
        let started = std::time::Instant::now();
        wait::wait(&client, &ws, &w, |stage| {
            println!("[{:>5.1}s] {stage}", started.elapsed().as_secs_f64());
        })
        .await
        .map_err(anyhow::Error::msg)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The hosting cluster's client (KUBECONFIG, current context).
async fn client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the hosting cluster: {}", wait::api_error(&e)))
}

fn repo_dir(args: &gitops::GitArgs) -> std::path::PathBuf {
    args.repo
        .clone()
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
}
