//! `kflex watch [PATH]`: local watch mode in the foreground. The reconciler
//! runs in this process, through its library (directory source, inventory
//! watches, pass loop, drift correction), against the hosting context under
//! its own source name (`--name`, default `local`: its own Sync, source
//! label and Lease, never another source's). One line per pass, and each
//! invalid file with its `path:line:column` when it appears. Ctrl-C or
//! SIGTERM stops it cleanly (exit 0) and hands the Lease back.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kubeflex_reconciler::apply::Cluster;
use kubeflex_reconciler::metrics::Metrics;
use kubeflex_reconciler::reconcile::{Reconciler, Settings};
use kubeflex_reconciler::request::{self, Requests};
use kubeflex_reconciler::source::{DirSource, normalize_subdir};
use kubeflex_reconciler::validate::is_dns1123_label;
use kubeflex_reconciler::{leader, watch};
use tokio::sync::{Notify, mpsc};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Where the Lease of a watch lives: a namespace every cluster has (the
/// source name keeps it apart from the in-cluster reconciler's).
const LEASE_NAMESPACE: &str = "default";

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
    /// A full pass this often even without a change on disk (drift in the
    /// cluster is corrected as it happens).
    #[arg(long, default_value = "60s", value_parser = crate::cli::parse_duration)]
    pub interval: Duration,
    /// The reconciler's whole log on stderr: set by the global `-v`.
    #[arg(skip)]
    pub verbose: bool,
}

/// The fields of one log event of the reconciler.
#[derive(Default)]
struct Fields {
    message: String,
    values: BTreeMap<&'static str, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.values.insert(field.name(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.values.insert(field.name(), format!("{value:?}"));
        }
    }
}

/// The line `kflex watch` prints for one event of the reconciler, if any:
/// a summary of each pass, and every warning or error (an invalid file's
/// `path:line:column: field: message`, a failed apply, a failed pass).
fn line_for(level: tracing::Level, f: &Fields) -> Option<String> {
    if f.message == "pass done" {
        let n = |k: &str| f.values.get(k).map_or("0", String::as_str);
        let mut out = format!(
            "pass: applied {}, unchanged {}, pruned {}, failed {}",
            n("applied"),
            n("unchanged"),
            n("pruned"),
            n("failed")
        );
        if n("invalid_files") != "0" {
            out.push_str(&format!(", {} invalid files", n("invalid_files")));
        }
        return Some(out);
    }
    if level > tracing::Level::WARN {
        return None;
    }
    let mut out = format!("  {}", f.message);
    for key in ["key", "error"] {
        if let Some(v) = f.values.get(key) {
            out.push_str(&format!(" ({key}: {v})"));
        }
    }
    Some(out)
}

/// Prints [`line_for`] of the reconciler's events on stdout.
struct PassLines;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PassLines {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(line) = line_for(*event.metadata().level(), &fields) {
            println!("{line}");
        }
    }
}

/// The pass lines on stdout; with `-v` also the whole log on stderr.
fn init_output(verbose: bool) {
    let ours = tracing_subscriber::filter::filter_fn(|m| {
        m.target().starts_with("kubeflex_reconciler") && *m.level() <= tracing::Level::INFO
    });
    let log = verbose.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
    });
    let _ = tracing_subscriber::registry()
        .with(PassLines.with_filter(ours))
        .with(log)
        .try_init();
}

/// Runs the reconciler over `dir` against `client` until `stop` resolves
/// (or its Lease is lost, an error).
pub async fn run(
    client: kube::Client,
    args: &WatchArgs,
    dir: PathBuf,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let path = normalize_subdir(&args.path)?;
    let source = DirSource::new(&dir, &path)?;
    let name = args.name.as_str();
    tokio::pin!(stop);
    let identity = format!("kflex-watch-{}", std::process::id());
    let lease_name = leader::lease_name(name);
    let acquire = leader::acquire(client.clone(), LEASE_NAMESPACE, &lease_name, &identity);
    tokio::pin!(acquire);
    // Another `kflex watch --name` (or reconciler) of this source holds the
    // Lease: say so, and wait for it rather than fight over the objects.
    let mut lease = tokio::select! {
        lease = &mut acquire => lease,
        () = tokio::time::sleep(Duration::from_secs(3)) => {
            println!("waiting for the Lease of source {name:?}: another reconciler of it is running");
            tokio::select! {
                lease = &mut acquire => lease,
                () = &mut stop => return Ok(()),
            }
        }
        () = &mut stop => return Ok(()),
    };
    let cluster = Cluster::new(client.clone());
    let watched = watch::start_inventory(&cluster, name).await?;
    let settings = Settings {
        path,
        interval: args.interval,
        ..Settings::new(name, dir.display().to_string())
    };
    let requests = Arc::new(Requests::default());
    let trigger = Arc::new(Notify::new());
    // `kflex sync local` asks this loop for a pass, as it asks a reconciler.
    let request_watch = tokio::spawn(request::watch(
        client,
        name.to_owned(),
        requests.clone(),
        trigger.clone(),
    ));
    let mut reconciler = Reconciler::new(
        settings,
        Arc::new(source),
        cluster,
        watched.inventory,
        Arc::new(Metrics::default()),
    )
    .with_lease(Arc::new(lease.handle()))
    .with_requests(requests);
    reconciler.init_status().await;
    let (files_tx, files) = mpsc::channel(4);
    let _dir_watcher = watch::watch_dir(&dir, files_tx)?;
    println!(
        "watching {} as source {name:?} (Ctrl-C stops)",
        dir.display()
    );
    let result = tokio::select! {
        () = reconciler.run(trigger, Some(files), watched.drift) => Ok(()),
        () = lease.lost() => Err(anyhow::anyhow!(
            "the Lease of source {name:?} was lost (another reconciler took it); stopped"
        )),
        () = &mut stop => Ok(()),
    };
    // A pass cut short is like a crash, which passes are built to survive.
    lease.release().await;
    request_watch.abort();
    for t in watched.tasks {
        t.abort();
    }
    if result.is_ok() {
        println!("stopped");
    }
    result
}

/// `kflex watch [PATH]` against the hosting context.
pub async fn run_cmd(app: &super::App, mut args: WatchArgs) -> anyhow::Result<()> {
    args.verbose = app.global.verbose > 0;
    if !is_dns1123_label(&args.name) {
        anyhow::bail!(
            "--name {:?} must be a DNS-1123 label (it is also a label value)",
            args.name
        );
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("current directory")?,
    };
    let dir = std::fs::canonicalize(&dir).with_context(|| format!("{}", dir.display()))?;
    let (_, mut kc) = app.load()?;
    let hosting = app.hosting(&mut kc).await?;
    init_output(args.verbose);
    run(hosting.client, &args, dir, leader::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, values: &[(&'static str, &str)]) -> Fields {
        Fields {
            message: message.to_owned(),
            values: values.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn pass_lines_and_problems() {
        let pass = fields(
            "pass done",
            &[
                ("applied", "2"),
                ("unchanged", "1"),
                ("pruned", "0"),
                ("failed", "0"),
                ("invalid_files", "1"),
            ],
        );
        assert_eq!(
            line_for(tracing::Level::INFO, &pass).unwrap(),
            "pass: applied 2, unchanged 1, pruned 0, failed 0, 1 invalid files"
        );
        let invalid = fields("invalid file: cp.yaml:6:9: spec.type: bad", &[]);
        assert_eq!(
            line_for(tracing::Level::WARN, &invalid).unwrap(),
            "  invalid file: cp.yaml:6:9: spec.type: bad"
        );
        let failed = fields("pass failed", &[("error", "timeout")]);
        assert_eq!(
            line_for(tracing::Level::WARN, &failed).unwrap(),
            "  pass failed (error: timeout)"
        );
        assert_eq!(line_for(tracing::Level::INFO, &fields("other", &[])), None);
    }
}
