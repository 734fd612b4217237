//! `kflex dev [DIR]`: the whole system in this one process, no cluster. A
//! simulated hosting cluster (testenv) with the CRDs, the operator and the
//! reconciler (watching DIR, or following a Git repository), the same
//! libraries as the real binaries; a kubeconfig with the hosting context and
//! one context per Ready control plane; a live view until Ctrl-C/SIGTERM.

pub mod rbac;
mod state;
pub mod view;

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kubeflex_operator::config::OperatorConfig;
use kubeflex_operator::context::{ProbeMode, Settings as OperatorSettings};
use kubeflex_reconciler::apply::Cluster;
use kubeflex_reconciler::plan::{MaxPrune, PruneOptions};
use kubeflex_reconciler::reconcile::{Reconciler, Settings};
use kubeflex_reconciler::source::{
    DirSource, GitSource, GitSourceConfig, Source, normalize_subdir,
};
use kubeflex_reconciler::{leader, watch};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use crate::cli::DevArgs;
pub use state::Layout;

/// Name of the reconciler: its `Sync` object, source label and lease.
pub const SYNC_NAME: &str = "kflex-dev";
/// Field manager of what `kflex dev` itself applies (the CRDs).
const FIELD_MANAGER: &str = "kflex-dev";
/// How long a clean stop may take before the rest is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(4);

/// Runs until SIGINT or SIGTERM; `kubeconfig` is `--kubeconfig` if given.
pub async fn run(args: DevArgs, kubeconfig: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    // The reconciler's pass future is not `Send` (a compiler limitation
    // with higher-ranked closures), so it runs as a local task.
    tokio::task::LocalSet::new()
        .run_until(run_local(args, kubeconfig))
        .await
}

async fn run_local(args: DevArgs, kubeconfig: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    let layout = Layout::new(&args.dir, args.state_dir.as_deref(), kubeconfig.as_deref())?;
    let _lock = layout.lock()?;
    let tty = std::io::stdout().is_terminal();
    init_logging(&layout.log)?;
    let path = normalize_subdir(&args.path)?;
    let source = source(&args, &layout)?;

    let (addr, ingress, notices) = layout.addresses(args.addr, args.ingress_port)?;
    for n in &notices {
        println!("{n}");
    }
    let saved_ingress = layout.saved_ingress_port();
    let env = kubeflex_testenv::TestEnv::builder()
        .addr(addr)
        .ingress_addr(ingress)
        .state_dir(layout.state_dir.join("testenv"))
        .start()
        .await
        .with_context(|| {
            format!("starting the simulated hosting cluster on {addr} (ingress {ingress})")
        })?;
    let ingress_port = env.ingress_addr().map_or(0, |a| a.port());
    layout.save_ports(env.addr().port(), ingress_port)?;
    let client = env
        .client()
        .await
        .context("connecting to the simulated hosting cluster")?;
    install(&client).await?;
    // The operator and the reconciler run as their ServiceAccounts, with
    // the RBAC we ship, never as the admin the user's context holds.
    rbac::install(&client).await?;
    let identities = rbac::identities(&client, &env, &layout.state_dir.join("tokens")).await?;
    view::write_hosting(&layout.kubeconfig, env.kubeconfig())?;
    if saved_ingress.is_some_and(|p| p != ingress_port) {
        // Tenant contexts name the old ingress port: dropped here, written
        // again from the operator's new kubeconfigs once it rechecked them.
        view::drop_controlplane_contexts(&layout.kubeconfig)?;
    }
    println!(
        "kflex dev: SIMULATION — the hosting cluster is testenv, an in-process Kubernetes API simulator, not a real cluster"
    );
    println!("  API server   {}", env.url());
    println!("  ingress      127.0.0.1:{ingress_port}");
    println!(
        "  kubeconfig   {}   (context {})",
        layout.kubeconfig.display(),
        view::HOSTING_CONTEXT
    );
    println!("  state        {}", layout.state_dir.display());
    println!("  logs         {}", layout.log.display());
    println!("  source       {}", source.1);
    println!(
        "hosting context usable after {} ms",
        started.elapsed().as_millis()
    );
    let _ = std::io::stdout().flush();

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let operator_metrics = Arc::new(kubeflex_operator::metrics::Metrics::default());
    let mut view = Live::new(&layout, tty, started, operator_metrics.clone())?;
    if !tty {
        println!(
            "{}",
            view::hint(&layout.kubeconfig, &[], &Default::default())
        );
    }
    // What an earlier run stored is shown first, as "checking".
    view.refresh(&client).await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let operator = spawn_operator(
        identities.operator.clone(),
        ingress_port,
        operator_metrics,
        stop_rx.clone(),
    );
    let reconciler = spawn_reconciler(
        identities.reconciler.clone(),
        source,
        path,
        &args,
        &layout,
        stop_rx,
    )
    .await?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => view.refresh(&client).await,
        }
    }
    println!("kflex dev: stopping");
    let _ = stop_tx.send(true);
    let stopping = async {
        let _ = reconciler.await;
        let _ = operator.await;
    };
    if tokio::time::timeout(STOP_GRACE, stopping).await.is_err() {
        tracing::warn!("components did not stop within {STOP_GRACE:?}; exiting anyway");
    }
    drop(identities);
    drop(env);
    println!(
        "kflex dev: stopped; state kept in {}",
        layout.state_dir.display()
    );
    Ok(())
}

/// The reconciler's source and how it is shown.
fn source(args: &DevArgs, layout: &Layout) -> anyhow::Result<(Arc<dyn Source>, String)> {
    match &args.git_url {
        None => {
            let s = DirSource::new(&layout.dir, &args.path)?;
            Ok((Arc::new(s), layout.dir.display().to_string()))
        }
        Some(url) => {
            let mut config = GitSourceConfig::new(url.clone(), layout.state_dir.join("git-cache"));
            config.reference = args.reference.clone();
            config.path = args.path.clone();
            let s = GitSource::new(config)?;
            let shown = s.config().url.clone();
            Ok((Arc::new(s), shown))
        }
    }
}

/// Logs go to a file: the terminal belongs to the table.
fn init_logging(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

/// The CRDs (server-side apply, so a restart or a newer kflex updates them)
/// and the operator's namespace.
async fn install(client: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for crd in kubeflex_operator::crdgen::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &pp, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("installing CRD {name}"))?;
    }
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(OperatorConfig::default().system_namespace),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let name = ns.metadata.name.clone().unwrap_or_default();
    Api::<Namespace>::all(client.clone())
        .patch(&name, &pp, &Patch::Apply(&ns))
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

fn spawn_operator(
    client: kube::Client,
    ingress_port: u16,
    metrics: Arc<kubeflex_operator::metrics::Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    // No vcluster Service CIDR: vcluster's syncer writes it (ConfigMap
    // vc-cidr-vcluster), as on a real cluster.
    let config = OperatorConfig {
        // Tenant kubeconfigs name https://127.0.0.1:<ingress> with the
        // host name as TLS server name: no DNS needed.
        external_address: Some("127.0.0.1".into()),
        external_port: ingress_port,
        ..OperatorConfig::default()
    };
    let settings = OperatorSettings {
        ready_requeue: Duration::from_secs(1),
        // The operator runs outside the (simulated) cluster.
        probe: ProbeMode::ServiceProxy,
        ..OperatorSettings::default()
    };
    tokio::spawn(kubeflex_operator::controller::run(
        client,
        config,
        settings,
        metrics,
        async move {
            let _ = stop.changed().await;
        },
    ))
}

async fn spawn_reconciler(
    client: kube::Client,
    (source, url): (Arc<dyn Source>, String),
    path: String,
    args: &DevArgs,
    layout: &Layout,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let cluster = Cluster::new(client.clone());
    // The identity is this state's: a lease a killed run left is ours and
    // taken back at once; a clean stop hands it back.
    let identity = layout.identity()?;
    let lease_name = leader::lease_name(SYNC_NAME);
    let lease = leader::acquire(client, rbac::NAMESPACE, &lease_name, &identity);
    let mut lease = tokio::select! {
        l = lease => l,
        _ = stop.changed() => anyhow::bail!("stopped while waiting for the reconciler's lease"),
    };
    let watch::Watched {
        inventory,
        drift: drift_rx,
        tasks: watches,
    } = watch::start_inventory(&cluster, SYNC_NAME).await?;
    let settings = Settings {
        name: SYNC_NAME.into(),
        url,
        reference: args.reference.clone(),
        path,
        prune: PruneOptions {
            enabled: true,
            max: MaxPrune::default(),
            force: false,
            allow_empty: false,
        },
        interval: if args.git_url.is_some() {
            Duration::from_secs(15)
        } else {
            Duration::from_secs(60)
        },
        drift_interval: Duration::from_secs(600),
        limits: kubeflex_reconciler::validate::Limits::default(),
    };
    let metrics = Arc::new(kubeflex_reconciler::metrics::Metrics::default());
    let mut reconciler = Reconciler::new(settings, source, cluster, inventory, metrics)
        .with_lease(Arc::new(lease.handle()));
    reconciler.init_status().await;
    let (files, dir_watcher) = if args.git_url.is_none() {
        let (tx, rx) = mpsc::channel(4);
        (Some(rx), Some(watch::watch_dir(&layout.dir, tx)?))
    } else {
        (None, None)
    };
    Ok(tokio::task::spawn_local(async move {
        let _dir_watcher = dir_watcher;
        tokio::select! {
            () = reconciler.run(Arc::new(Notify::new()), files, drift_rx) => {}
            () = lease.lost() => tracing::error!("the reconciler's lease was lost"),
            _ = stop.changed() => {}
        }
        lease.release().await;
        for w in watches {
            w.abort();
        }
    }))
}

/// The live view's state between refreshes.
struct Live {
    tty: bool,
    started: Instant,
    kubeconfig: std::path::PathBuf,
    contexts: view::Contexts,
    rows: Vec<view::Row>,
    loose: Vec<String>,
    all_ready_reported: bool,
    last_read_error: Option<String>,
    /// The latest events, shown under the table.
    events: std::collections::VecDeque<String>,
    /// The in-process operator's: which control planes it has rechecked.
    operator: Arc<kubeflex_operator::metrics::Metrics>,
}

/// Events kept under the live table.
const EVENTS_SHOWN: usize = 6;

impl Live {
    fn new(
        layout: &Layout,
        tty: bool,
        started: Instant,
        operator: Arc<kubeflex_operator::metrics::Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            tty,
            started,
            kubeconfig: layout.kubeconfig.clone(),
            contexts: view::Contexts::new(&layout.kubeconfig)?,
            rows: Vec::new(),
            loose: Vec::new(),
            all_ready_reported: false,
            last_read_error: None,
            events: std::collections::VecDeque::new(),
            operator,
        })
    }

    async fn refresh(&mut self, client: &kube::Client) {
        let (mut cps, errors) = match view::read(client, SYNC_NAME).await {
            Ok(x) => x,
            Err(e) => {
                let msg = crate::output::kube_error(&e);
                if self.last_read_error.as_ref() != Some(&msg) {
                    println!("warning: reading the control planes: {msg}");
                    self.last_read_error = Some(msg);
                }
                return;
            }
        };
        self.last_read_error = None;
        // A Ready stored by an earlier run is not news until this run's
        // operator has looked again.
        for cp in &mut cps {
            let name = cp.metadata.name.clone().unwrap_or_default();
            if !self.operator.was_checked(&name) {
                view::mark_checking(cp);
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let rows = view::rows(&cps, &errors, now);
        let loose: Vec<String> = view::loose_errors(&cps, &errors)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut lines = self.contexts.update(client, &cps).await;
        let all_ready = !rows.is_empty() && rows.iter().all(|r| r.ready == "True");
        if all_ready && !self.all_ready_reported {
            lines.push(format!(
                "all {} control planes Ready after {:.1} s",
                rows.len(),
                self.started.elapsed().as_secs_f64()
            ));
        }
        self.all_ready_reported = all_ready;
        if self.tty {
            let loose_refs: Vec<&str> = loose.iter().map(String::as_str).collect();
            // Home, clear, redraw: the table replaces itself.
            let mut out = String::from("\x1b[H\x1b[2J");
            out.push_str("kflex dev (SIMULATED hosting cluster) — Ctrl-C stops\n\n");
            let (_, width) = console::Term::stdout().size();
            out.push_str(&view::render_table(&rows, &loose_refs, usize::from(width)));
            out.push('\n');
            out.push_str(&view::hint(
                &self.kubeconfig,
                &rows,
                self.contexts.need_dns(),
            ));
            out.push('\n');
            for l in lines {
                if self.events.len() == EVENTS_SHOWN {
                    self.events.pop_front();
                }
                self.events
                    .push_back(format!("{} {l}", crate::output::clock()));
            }
            for l in &self.events {
                out.push_str(l);
                out.push('\n');
            }
            print!("{out}");
        } else {
            let before: Vec<&str> = self.loose.iter().map(String::as_str).collect();
            let after: Vec<&str> = loose.iter().map(String::as_str).collect();
            for l in view::changes(&self.rows, &rows, &before, &after) {
                println!("{} {l}", crate::output::clock());
            }
            for l in &lines {
                println!("{} {l}", crate::output::clock());
            }
        }
        let _ = std::io::stdout().flush();
        self.rows = rows;
        self.loose = loose;
    }
}
