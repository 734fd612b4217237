//! `kubeflex-operator`: `run` (the default) wires logging, the metrics and
//! health server, leader election and the ControlPlane controller together;
//! `crds` prints or writes the CRDs. Everything else is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use kubeflex_operator::config::{
    DatabaseServer, ExposureMode, OperatorConfig, PkiAlgorithm, SecretKey, SharedPostgres,
};
use kubeflex_operator::context::Settings;
use kubeflex_operator::metrics::{self, Metrics};
use kubeflex_operator::telemetry::{self, LogFormat};
use kubeflex_operator::{controller, endpoints, leader};

#[derive(Parser)]
#[command(
    name = "kubeflex-operator",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (the default).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions (multi-document YAML), or write
    /// one file per kind into a directory.
    Crds {
        /// Directory to write `<group>_<plural>.yaml` files into.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Domain of the external host names `<cp>.<domain>`.
    #[arg(long, env = "KFLEX_DOMAIN", default_value = "localtest.me")]
    domain: String,
    /// Port of the ingress controller as reached from outside.
    #[arg(long, env = "KFLEX_EXTERNAL_PORT", default_value_t = 9443)]
    external_port: u16,
    /// Address of the ingress when no DNS resolves `<cp>.<domain>`:
    /// off-cluster kubeconfigs (k8s, k3s) then name `https://ADDR:<external
    /// port>` with `tls-server-name: <cp>.<domain>`.
    #[arg(long, env = "KFLEX_EXTERNAL_ADDRESS")]
    external_address: Option<String>,
    /// Key algorithm of generated certificates.
    #[arg(long, env = "KFLEX_PKI_ALGORITHM", default_value = "ecdsa-p256", value_parser = ["ecdsa-p256", "rsa-2048"])]
    pki_algorithm: String,
    /// Ingress, Route, or auto (Route when route.openshift.io is served).
    #[arg(long, env = "KFLEX_EXPOSURE", default_value = "auto", value_parser = ["auto", "ingress", "route"])]
    exposure: String,
    /// Name of the hosting cluster's node container (a SAN of API servers).
    #[arg(
        long,
        env = "KFLEX_HOST_CONTAINER",
        default_value = "kubeflex-control-plane"
    )]
    host_container: String,
    /// The hosting cluster's Service CIDR for vcluster's k3s; unset: read
    /// from ConfigMap `vc-cidr-vcluster`, which the syncer writes.
    #[arg(long, env = "KFLEX_VCLUSTER_SERVICE_CIDR")]
    vcluster_service_cidr: Option<String>,
    #[command(flatten)]
    postgres: PostgresArgs,
    /// Kubeconfig of the hosting cluster; else `$KUBECONFIG`, `~/.kube/config` or in-cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "KFLEX_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "KFLEX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Hold a Lease before reconciling (one active operator).
    #[arg(long, env = "KFLEX_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubeflex-system")]
    leader_election_namespace: String,
    /// Requeue interval of control planes that are not Ready yet, seconds.
    #[arg(long, default_value_t = 3)]
    ready_requeue_seconds: u64,
    /// Reconciles at once.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// How long an awaited PostCreateHook (`waitForPostCreateHooks`) may
    /// stay not ready before it is reported as failed: `600`, `600s`, `10m`.
    #[arg(long, env = "KFLEX_HOOK_TIMEOUT", default_value = "10m", value_parser = kubeflex_operator::duration::parse)]
    hook_timeout: Duration,
    /// Re-apply a PostCreateHook to the control planes that recorded it
    /// when its rendered objects change (default: KubeFlex's once-only;
    /// annotation `kflex.kubestellar.org/rerender: "true"` asks per hook).
    #[arg(long, env = "KFLEX_RERENDER_HOOKS", default_value_t = false, action = clap::ArgAction::Set)]
    rerender_hooks: bool,
    #[command(flatten)]
    hook_policy: kubeflex_operator::hooks::policy::HookPolicyArgs,
}

/// The shared PostgreSQL: installed by the operator (no `--postgres-host`)
/// or an existing server.
#[derive(Args, Clone)]
struct PostgresArgs {
    /// Host of an existing shared PostgreSQL; unset: the operator installs
    /// `postgres-postgresql` in its namespace.
    #[arg(long, env = "KFLEX_POSTGRES_HOST", requires = "postgres_admin_secret")]
    postgres_host: Option<String>,
    /// Port of the existing PostgreSQL.
    #[arg(long, env = "KFLEX_POSTGRES_PORT", default_value_t = 5432)]
    postgres_port: u16,
    /// Admin role of the existing PostgreSQL (superuser, or CREATEDB and CREATEROLE).
    #[arg(long, env = "KFLEX_POSTGRES_ADMIN_USER", default_value = "postgres")]
    postgres_admin_user: String,
    /// Secret in the operator's namespace holding the admin password.
    #[arg(long, env = "KFLEX_POSTGRES_ADMIN_SECRET", requires = "postgres_host")]
    postgres_admin_secret: Option<String>,
    /// Key of the admin password in that Secret.
    #[arg(
        long,
        env = "KFLEX_POSTGRES_ADMIN_SECRET_KEY",
        default_value = "password"
    )]
    postgres_admin_secret_key: String,
}

impl PostgresArgs {
    fn shared(&self, system_namespace: &str) -> SharedPostgres {
        match (&self.postgres_host, &self.postgres_admin_secret) {
            (Some(host), Some(secret)) => SharedPostgres::Existing(DatabaseServer {
                host: host.clone(),
                port: self.postgres_port,
                admin_user: self.postgres_admin_user.clone(),
                admin_secret: SecretKey {
                    namespace: system_namespace.to_owned(),
                    name: secret.clone(),
                    key: self.postgres_admin_secret_key.clone(),
                },
            }),
            _ => SharedPostgres::Install,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crds { write }) => crds(write),
        Some(Command::Run(args)) => run(*args),
        None => run(cli.run),
    }
}

fn crds(write: Option<PathBuf>) -> anyhow::Result<()> {
    let files = kubeflex_operator::crdgen::crd_files()?;
    match write {
        None => files.iter().for_each(|(_, yaml)| print!("{yaml}")),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, yaml) in files {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?
        }
        None => kube::Config::infer()
            .await
            .context("inferring the cluster configuration")?,
    };
    Ok(kube::Client::try_from(config)?)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let algorithm: PkiAlgorithm = args.pki_algorithm.parse().map_err(anyhow::Error::msg)?;
        let mut config = OperatorConfig {
            domain: args.domain.clone(),
            external_port: args.external_port,
            external_address: args.external_address.clone(),
            host_container: args.host_container.clone(),
            exposure: match args.exposure.as_str() {
                "ingress" => ExposureMode::Ingress,
                "route" => ExposureMode::Route,
                _ => ExposureMode::Auto,
            },
            ..OperatorConfig::default()
        };
        config.pki.algorithm = algorithm;
        config.vcluster.service_cidr = args.vcluster_service_cidr.clone();
        config.postgres.shared = args.postgres.shared(&config.system_namespace);
        let policy = args.hook_policy.policy().map_err(anyhow::Error::msg)?;
        tracing::info!(domain = %config.domain, external_port = config.external_port, pki = algorithm.as_str(), exposure = %args.exposure, leader_elect = args.leader_elect, hook_cluster_kinds = %policy.cluster_kinds, hook_extra_rules = %policy.extra_rules, "starting");
        let settings = Settings {
            ready_requeue: Duration::from_secs(args.ready_requeue_seconds),
            concurrency: args.concurrency,
            hook_timeout: args.hook_timeout,
            rerender_hooks: args.rerender_hooks,
            hook_cluster_kinds: policy.cluster_kinds,
            hook_extra_rules: policy.extra_rules,
            ..Settings::default()
        };
        let client = client(args.kubeconfig.as_ref()).await?;
        let metrics = Arc::new(Metrics::default());
        let listener = endpoints::bind(args.metrics_addr)
            .await
            .with_context(|| format!("listening on {}", args.metrics_addr))?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
        let server = tokio::spawn(metrics::serve(listener, metrics.clone()));
        let mut wanted = vec![config.system_namespace.clone()];
        if args.leader_elect && !wanted.contains(&args.leader_election_namespace) {
            wanted.push(args.leader_election_namespace.clone());
        }
        for ns in &wanted {
            ensure_namespace(&client, ns).await?;
        }
        let mut lease = None;
        if args.leader_elect {
            let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("kubeflex-operator-{}", std::process::id()));
            tokio::select! {
                l = leader::acquire(
                    client.clone(),
                    &args.leader_election_namespace,
                    leader::LEASE_NAME,
                    &identity,
                    leader::RETRY,
                ) => lease = Some(l),
                _ = leader::shutdown_signal() => return Ok(()),
            }
        }
        // A lease still held at a clean stop is handed back after the last
        // reconcile, so a successor starts at once.
        let to_release = Arc::new(std::sync::Mutex::new(None));
        let slot = to_release.clone();
        let stop = async move {
            match lease {
                Some(mut l) => tokio::select! {
                    _ = l.lost() => tracing::error!("leader lease lost; stopping"),
                    _ = leader::shutdown_signal() => *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(l),
                },
                None => leader::shutdown_signal().await,
            }
        };
        controller::run(client, config, settings, metrics, stop).await;
        let held = to_release.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(lease) = held {
            lease.release().await;
        }
        server.abort();
        Ok(())
    })
}

/// Creates `ns` when missing (a fresh cluster before `kflex init`): without
/// it the Lease and every shared object would be retried for ever. Where
/// RBAC forbids creating it, one line names the namespace and the command.
async fn ensure_namespace(client: &kube::Client, ns: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{ObjectMeta, PostParams};
    let api: kube::Api<Namespace> = kube::Api::all(client.clone());
    match api.get_opt(ns).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) | Err(kube::Error::Api(_)) => {}
        Err(e) => anyhow::bail!("reading namespace {ns}: {}", telemetry::one_line(&e)),
    }
    let obj = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {
            tracing::info!(namespace = ns, "created the missing namespace");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 403 => anyhow::bail!(
            "namespace {ns} does not exist and this operator may not create it: run `kubectl create namespace {ns}` (or `kflex init`) first"
        ),
        Err(e) => anyhow::bail!("creating namespace {ns}: {}", telemetry::one_line(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_timeouts_take_compound_durations_and_bad_ones_name_the_flag() {
        let timeout = |v: &str| {
            Cli::try_parse_from(["kubeflex-operator", "--hook-timeout", v])
                .map(|c| c.run.hook_timeout)
                .map_err(|e| e.to_string())
        };
        assert_eq!(timeout("600"), Ok(Duration::from_secs(600)));
        assert_eq!(timeout("1m30s"), Ok(Duration::from_secs(90)));
        let err = timeout("10x").unwrap_err();
        assert!(err.contains("--hook-timeout"), "{err}");
    }

    #[test]
    fn an_existing_postgres_needs_host_and_secret_together() {
        let cli = Cli::try_parse_from([
            "kubeflex-operator",
            "--postgres-host",
            "db.example",
            "--postgres-admin-secret",
            "pg-admin",
        ])
        .unwrap();
        let SharedPostgres::Existing(server) = cli.run.postgres.shared("kubeflex-system") else {
            panic!("an existing server was asked for");
        };
        assert_eq!((server.host.as_str(), server.port), ("db.example", 5432));
        assert_eq!(server.admin_secret.namespace, "kubeflex-system");
        assert_eq!(server.admin_secret.key, "password");
        let installed = Cli::try_parse_from(["kubeflex-operator"]).unwrap();
        assert_eq!(
            installed.run.postgres.shared("kubeflex-system"),
            SharedPostgres::Install
        );
        assert!(Cli::try_parse_from(["kubeflex-operator", "--postgres-host", "db"]).is_err());
        assert!(
            Cli::try_parse_from(["kubeflex-operator", "--postgres-admin-secret", "s"]).is_err()
        );
    }
}
