//! `kubeflex-testenv serve`: a Kubernetes-API-compatible server on loopback.
//! Writes an admin kubeconfig (mode 0600), prints `ready <url>` once it
//! answers, and serves until SIGTERM or SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "kubeflex-testenv", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGTERM/SIGINT.
    Serve {
        /// Where to write the admin kubeconfig (context `testenv`).
        #[arg(long)]
        kubeconfig: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Keep objects here and get them back after a restart.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Kubernetes minor reported by /version (picks the kubectl build).
        #[arg(long, default_value_t = kubeflex_testenv::server::DEFAULT_MINOR)]
        minor: u32,
        /// Address of the SNI-routing TLS-passthrough ingress.
        #[arg(long, default_value = "127.0.0.1:0")]
        ingress_addr: SocketAddr,
        /// Serve OpenShift Routes (route.openshift.io/v1).
        #[arg(long)]
        openshift_routes: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            kubeconfig,
            addr,
            state_dir,
            minor,
            ingress_addr,
            openshift_routes,
        } => {
            let mut builder = kubeflex_testenv::TestEnv::builder()
                .addr(addr)
                .minor(minor)
                .ingress_addr(ingress_addr)
                .openshift_routes(openshift_routes);
            if let Some(dir) = state_dir {
                builder = builder.state_dir(dir);
            }
            let env = builder.start().await.context("starting testenv")?;
            kubeflex_testenv::kubeconfig::write_private(&kubeconfig, env.kubeconfig())
                .with_context(|| format!("writing {}", kubeconfig.display()))?;
            // The listener is bound before start() returns, so it answers now.
            let mut out = std::io::stdout().lock();
            if let Some(ingress) = env.ingress_addr() {
                writeln!(out, "ingress {ingress}")?;
            }
            writeln!(out, "ready {}", env.url())?;
            out.flush()?;
            drop(out);
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            drop(env);
        }
    }
    Ok(())
}
