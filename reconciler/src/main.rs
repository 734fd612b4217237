//! `kubeflex-reconciler`: syncs ControlPlane and PostCreateHook specs from
//! Git (`--git-url`) or a directory (`--dir`, optionally `--watch`) into the
//! cluster. This file only parses flags and wires the library together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubeflex_operator::endpoints;
use kubeflex_reconciler::apply::Cluster;
use kubeflex_reconciler::metrics::Metrics;
use kubeflex_reconciler::plan::{MaxPrune, PruneOptions};
use kubeflex_reconciler::reconcile::{Reconciler, Settings};
use kubeflex_reconciler::source::{
    DirSource, GitAuth, GitSource, GitSourceConfig, Source, normalize_subdir, read_secret,
};
use kubeflex_reconciler::validate::{Limits, is_dns1123_label};
use kubeflex_reconciler::webhook::{Secret, Secrets, Webhook};
use kubeflex_reconciler::{leader, metrics, watch, webhook};
use tokio::sync::{Notify, mpsc};

/// Sync ControlPlanes and PostCreateHooks from Git or a directory.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Git repository: file://, git://, https://, ssh:// or scp-style.
    #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
    git_url: Option<String>,
    /// Branch, tag or commit (default: the remote's default branch).
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Directory in the repository holding the manifests (default: the root).
    #[arg(long, default_value = "")]
    path: String,
    /// Poll interval, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = kubeflex_operator::duration::parse)]
    interval: Duration,
    /// A local directory instead of Git.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With --dir: reconcile on every save.
    #[arg(long, requires = "dir")]
    watch: bool,
    /// One pass, then exit (non-zero if anything failed).
    #[arg(long)]
    once: bool,
    /// Delete objects that left Git (`--prune=false` to keep them).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    prune: bool,
    /// Most objects one pass may prune: a count or a percentage of what the
    /// source manages (always at least 1).
    #[arg(long, default_value = "50%")]
    max_prune: MaxPrune,
    /// Prune even beyond --max-prune, and after a change of --git-url,
    /// --ref or --path.
    #[arg(long)]
    force_prune: bool,
    /// Allow a pass to remove every ControlPlane of the source.
    #[arg(long)]
    allow_empty: bool,
    /// Skip files matching this pattern (gitignore syntax, like
    /// `.kflexignore`); repeatable.
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Compare every managed object with Git this often, even without
    /// commits or events.
    #[arg(long, default_value = "10m", value_parser = kubeflex_operator::duration::parse)]
    drift_interval: Duration,
    /// Most manifest files one pass reads; more is refused.
    #[arg(long, default_value_t = 100_000)]
    max_files: usize,
    /// Most bytes one pass reads over all files; more is refused.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    max_bytes: u64,
    /// Deadline of one Git fetch, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = kubeflex_operator::duration::parse)]
    fetch_timeout: Duration,
    /// Name of this reconciler: its Sync object, source label and lease.
    #[arg(long, default_value = "default")]
    name: String,
    /// Serve the push webhook here, e.g. 0.0.0.0:9443.
    #[arg(long)]
    webhook_addr: Option<SocketAddr>,
    /// File holding the webhook secret (GitHub HMAC key / GitLab token):
    /// the default of both forges' secrets.
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// File holding GitHub's HMAC key (default: --webhook-secret-file).
    #[arg(long)]
    github_webhook_secret_file: Option<PathBuf>,
    /// File holding GitLab's token (default: --webhook-secret-file).
    #[arg(long)]
    gitlab_webhook_secret_file: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Kubeconfig file (default: the usual inference).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Where fetched Git objects are cached (default: under the temp dir).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "default")]
    lease_namespace: String,
    /// HTTPS token, read from this file.
    #[arg(long, group = "token")]
    git_token_file: Option<PathBuf>,
    /// HTTPS token, read from this environment variable.
    #[arg(long, group = "token")]
    git_token_env: Option<String>,
    /// HTTPS basic auth user name (the password comes from a file or env).
    #[arg(long, conflicts_with = "token")]
    git_username: Option<String>,
    #[arg(long, requires = "git_username")]
    git_password_file: Option<PathBuf>,
    #[arg(long, requires = "git_username")]
    git_password_env: Option<String>,
    /// SSH private key.
    #[arg(long, conflicts_with_all = ["token", "git_username"])]
    ssh_key: Option<PathBuf>,
    /// known_hosts file checked strictly for SSH.
    #[arg(long, requires = "ssh_key")]
    ssh_known_hosts: Option<PathBuf>,
}

impl Args {
    fn auth(&self) -> anyhow::Result<GitAuth> {
        if self.git_token_file.is_some() || self.git_token_env.is_some() {
            let token = read_secret(
                self.git_token_file.as_deref(),
                self.git_token_env.as_deref(),
            )?;
            return Ok(GitAuth::token(token));
        }
        if let Some(username) = &self.git_username {
            let password = read_secret(
                self.git_password_file.as_deref(),
                self.git_password_env.as_deref(),
            )?;
            return Ok(GitAuth::Basic {
                username: username.clone(),
                password,
            });
        }
        if let Some(key) = &self.ssh_key {
            return Ok(GitAuth::Ssh {
                key: key.clone(),
                known_hosts: self.ssh_known_hosts.clone(),
            });
        }
        Ok(GitAuth::None)
    }

    fn source(&self) -> anyhow::Result<(Arc<dyn Source>, String)> {
        if let Some(dir) = &self.dir {
            let source = DirSource::new(dir, &self.path)?.with_excludes(self.exclude.clone());
            return Ok((Arc::new(source), dir.display().to_string()));
        }
        let Some(url) = &self.git_url else {
            bail!("--git-url or --dir is required");
        };
        let cache = self.cache_dir.clone().unwrap_or_else(|| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            url.hash(&mut h);
            std::env::temp_dir().join(format!(
                "kubeflex-reconciler-{}-{:016x}",
                self.name,
                h.finish()
            ))
        });
        let mut config = GitSourceConfig::new(url.clone(), cache);
        config.reference = self.reference.clone();
        config.path = self.path.clone();
        config.auth = self.auth()?;
        config.fetch_timeout = self.fetch_timeout;
        config.excludes = self.exclude.clone();
        // The source keeps the credentials of the URL for itself; what is
        // shown and stored is the URL without them.
        let source = GitSource::new(config)?;
        let shown = source.config().url.clone();
        Ok((Arc::new(source), shown))
    }
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let Some(path) = kubeconfig else {
        return Ok(kube::Client::try_default().await?);
    };
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !is_dns1123_label(&args.name) {
        bail!(
            "--name {:?} must be a DNS-1123 label (it is also a label value)",
            args.name
        );
    }
    let path = normalize_subdir(&args.path)?;
    let (source, url) = args.source()?;
    let client = client(args.kubeconfig.as_ref()).await?;
    let cluster = Cluster::new(client.clone());
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = args.metrics_addr {
        let listener = endpoints::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let m = metrics.clone();
        tokio::spawn(endpoints::serve(listener, move |req, peer| {
            metrics::handle(req, peer, m.clone())
        }));
    }
    let identity = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned()),
        std::process::id()
    );
    let lease_name = leader::lease_name(&args.name);
    if let Err(message) =
        leader::ensure_namespace(&client, &args.lease_namespace, &lease_name).await
    {
        bail!(message);
    }
    let mut lease = leader::acquire(
        client.clone(),
        &args.lease_namespace,
        &lease_name,
        &identity,
    )
    .await;

    let watch::Watched {
        inventory,
        drift: drift_rx,
        tasks: watches,
    } = watch::start_inventory(&cluster, &args.name).await?;
    let settings = Settings {
        name: args.name.clone(),
        url,
        reference: args.reference.clone(),
        path,
        prune: PruneOptions {
            enabled: args.prune,
            max: args.max_prune,
            force: args.force_prune,
            allow_empty: args.allow_empty,
        },
        interval: args.interval,
        drift_interval: args.drift_interval,
        limits: Limits {
            max_files: args.max_files,
            max_total_bytes: args.max_bytes,
            ..Limits::default()
        },
    };
    let mut reconciler = Reconciler::new(settings, source, cluster, inventory, metrics.clone())
        .with_lease(Arc::new(lease.handle()));
    reconciler.init_status().await;

    if args.once {
        let result = reconciler.pass().await;
        for w in &watches {
            w.abort();
        }
        // The next `--once` (or a long-running reconciler) need not wait
        // for the lease to expire.
        lease.release().await;
        return Ok(match result {
            Ok(outcome) if !outcome.failed() => ExitCode::SUCCESS,
            Ok(outcome) => {
                for e in &outcome.errors {
                    tracing::error!("{e}");
                }
                ExitCode::from(2)
            }
            Err(e) => {
                tracing::error!(category = e.category(), "{e}");
                ExitCode::FAILURE
            }
        });
    }

    let trigger = Arc::new(Notify::new());
    // `kflex sync`: a pass on request, through the Sync object.
    let requests = Arc::new(kubeflex_reconciler::request::Requests::default());
    tokio::spawn(kubeflex_reconciler::request::watch(
        client.clone(),
        args.name.clone(),
        requests.clone(),
        trigger.clone(),
    ));
    let reconciler = reconciler.with_requests(requests);
    if let Some(addr) = args.webhook_addr {
        let secret = |specific: &Option<PathBuf>, flag: &str| -> anyhow::Result<Secret> {
            let Some(file) = specific.as_ref().or(args.webhook_secret_file.as_ref()) else {
                bail!("--webhook-addr needs --webhook-secret-file (or {flag})");
            };
            let text = read_secret(Some(file), None)?;
            Secret::non_empty(text).with_context(|| {
                format!(
                    "{} is empty: an empty webhook secret would accept forged calls",
                    file.display()
                )
            })
        };
        let secrets = Secrets {
            github: secret(
                &args.github_webhook_secret_file,
                "--github-webhook-secret-file",
            )?,
            gitlab: secret(
                &args.gitlab_webhook_secret_file,
                "--gitlab-webhook-secret-file",
            )?,
        };
        let listener = endpoints::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let hook = Arc::new(Webhook::new(
            secrets,
            args.reference.clone(),
            trigger.clone(),
            metrics.clone(),
        ));
        tokio::spawn(webhook::serve(listener, hook, webhook::MAX_CONNECTIONS));
        tracing::info!(%addr, "webhook receiver listening");
    }
    let mut _dir_watcher = None;
    let files = match (&args.dir, args.watch) {
        (Some(dir), true) => {
            let (tx, rx) = mpsc::channel(4);
            _dir_watcher = Some(watch::watch_dir(dir, tx)?);
            Some(rx)
        }
        _ => None,
    };
    tokio::select! {
        () = reconciler.run(trigger, files, drift_rx) => {}
        () = lease.lost() => bail!("leader lease lost; exiting so that a single reconciler acts"),
        () = leader::shutdown_signal() => {}
    }
    // A pass cut short here is like a crash, which passes are built to
    // survive; the lease is handed back so a successor need not wait.
    lease.release().await;
    Ok(ExitCode::SUCCESS)
}
