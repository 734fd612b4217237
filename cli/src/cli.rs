//! The command line (clap), shared by the binary, completions and tests.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::gitops::GitArgs;
use crate::commands::{diff::DiffArgs, validate::ValidateArgs, watch::WatchArgs};

const AFTER_HELP: &str = "Exit codes:\n  0  success\n  1  failure (the message says what happened and what to do next)\n  2  usage error (unknown flag, missing argument)\n\nKUBECONFIG with several files is honoured as kubectl does; --kubeconfig overrides it.";

#[derive(Parser, Debug)]
#[command(
    name = "kflex",
    version,
    about = "CLI for kubeflex: create, connect to and delete KubeFlex control planes",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, short = 'k', global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Use this kube context instead of the current one for this run.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// More detail (repeatable).
    #[arg(long = "verbosity", short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No colours (also with NO_COLOR set).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Accepted for KubeFlex compatibility; progress is animated only on a terminal.
    #[arg(long, short = 's', global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub chatty_status: Option<bool>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Install KubeFlex (CRDs, operator) into the hosting cluster.
    #[command(
        after_help = "--create-kind (make a kind cluster) is not supported: it needs a container engine; create the cluster first, then run kflex init."
    )]
    Init(InitArgs),
    /// Remove what `kflex init` installed.
    Uninstall(UninstallArgs),
    /// Create a control plane, wait until it is Ready and switch to it; with --git, by a commit to the repository the reconciler follows.
    Create(CreateArgs),
    /// Adopt an existing cluster as an `external` control plane.
    Adopt(AdoptArgs),
    /// Delete a control plane and its kubeconfig entries; with --git, by a commit removing its spec.
    Delete(DeleteArgs),
    /// List control planes.
    List(ListArgs),
    /// Switch to a control plane's context (loading it from the server when missing), or to the hosting context.
    Ctx(CtxArgs),
    /// Kubeconfig settings of kflex.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print kflex's version, the API version and the server's version.
    Version(VersionArgs),
    /// Run everything on this machine, no cluster: a simulated hosting cluster, the operator and the reconciler watching DIR.
    #[command(
        after_help = "Writes DIR/.kflex/ (never committed: it holds a .gitignore of `*`): the kubeconfig (context kflex-dev for the hosting cluster, one context per Ready control plane), the state kept across restarts, and the log.\nCtrl-C or SIGTERM stops everything."
    )]
    Dev(DevArgs),
    /// Validate specs with the reconciler's and the operator's checks, no cluster needed (exit 0 valid, 1 errors, 2 usage error).
    Validate(ValidateArgs),
    /// What a pass of the reconciler would do against the hosting cluster, without writing anything (exit 0 no changes, 1 changes, 2 error).
    Diff(DiffArgs),
    /// Wait until the reconciler applied a commit and control plane NAME is Ready, then merge its context.
    Wait(WaitArgs),
    /// Ask a running reconciler for a pass now; `kflex sync status` prints each Sync.
    Sync(SyncArgs),
    /// Local watch mode in the foreground: the reconciler's directory source and loop under its own source name.
    Watch(WatchArgs),
    /// Shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Wide,
    Json,
    Yaml,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagnoseFormat {
    Json,
    Text,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpType {
    K8s,
    K3s,
    Vcluster,
    Host,
    External,
    Ocm,
}

#[derive(Args, Debug, Clone)]
pub struct DevArgs {
    /// Directory of ControlPlane and PostCreateHook specs, watched for changes.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Follow this Git repository instead of watching DIR.
    #[arg(long)]
    pub git_url: Option<String>,
    /// Branch, tag or commit of --git-url (default: its default branch).
    #[arg(long = "ref", requires = "git_url")]
    pub reference: Option<String>,
    /// Subdirectory holding the specs (of DIR, or of the repository).
    #[arg(long, default_value = "")]
    pub path: String,
    /// Where the simulated cluster keeps its objects, certificates and ports (default: DIR/.kflex/state).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Address of the simulated API server (default: the saved one, else a free loopback port).
    #[arg(long)]
    pub addr: Option<std::net::SocketAddr>,
    /// Port of the simulated ingress on 127.0.0.1 (default: the saved one, else a free port).
    #[arg(long)]
    pub ingress_port: Option<u16>,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Domain of the control planes' external host names.
    #[arg(long, short = 'd', default_value = "localtest.me")]
    pub domain: String,
    /// Port of the ingress controller as reached from outside.
    #[arg(long, short = 'p', default_value_t = 9443)]
    pub external_port: u16,
    /// Address of the ingress (no DNS needed): kubeconfigs name https://ADDR:PORT with the host name as TLS server name.
    #[arg(long)]
    pub external_address: Option<String>,
    /// The hosting cluster's context (default: the current context).
    #[arg(long)]
    pub hosting_context: Option<String>,
    /// The operator image.
    #[arg(long, default_value = crate::commands::init::DEFAULT_IMAGE)]
    pub image: String,
    /// Install everything except the operator's Deployment.
    #[arg(long)]
    pub skip_operator: bool,
    /// How long to wait for the CRDs and the operator.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// Delete every control plane first (otherwise uninstall refuses while any exists).
    #[arg(long)]
    pub delete_control_planes: bool,
    /// Also delete the CRDs (this deletes every tenant).
    #[arg(long)]
    pub crds: bool,
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Control plane name (DNS-1123 label).
    pub name: String,
    #[arg(long = "type", short = 't', value_enum, default_value = "k8s")]
    pub type_: CpType,
    /// shared or dedicated database (k8s).
    #[arg(long, short = 'b', default_value = "shared", value_parser = ["shared", "dedicated"])]
    pub backend_type: String,
    /// PostCreateHook to run; repeat for several.
    #[arg(long = "postcreate-hook", short = 'p')]
    pub postcreate_hooks: Vec<String>,
    /// Hook variable `key=value` (one hook) or `HOOK:key=value`.
    #[arg(long = "set", short = 'e')]
    pub set: Vec<String>,
    /// Wait until the PostCreateHooks completed too.
    #[arg(long)]
    pub wait_for_hooks: bool,
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Create and return without waiting or merging the kubeconfig.
    #[arg(long)]
    pub no_wait: bool,
    /// Merge the context but keep the current one.
    #[arg(long)]
    pub no_switch: bool,
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Format>,
    /// --git and the flags that go with it.
    #[command(flatten)]
    pub git_args: GitArgs,
}

#[derive(Args, Debug)]
pub struct AdoptArgs {
    pub name: String,
    /// Kubeconfig holding the cluster to adopt (default: the kubeconfig in use).
    #[arg(long, short = 'a')]
    pub adopted_kubeconfig: Option<PathBuf>,
    /// Context of the cluster to adopt.
    #[arg(long, short = 'c', required = true)]
    pub adopted_context: String,
    /// Server URL the hosting cluster uses to reach the adopted one.
    #[arg(long, short = 'u')]
    pub url_override: Option<String>,
    #[arg(long, short = 'x', default_value_t = 31_536_000)]
    pub expiration_seconds: i64,
    #[arg(long = "postcreate-hook", short = 'p')]
    pub postcreate_hook: Option<String>,
    #[arg(long = "set", short = 'e')]
    pub set: Vec<String>,
    /// Wait until Ready, merge its context and switch to it.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    pub name: String,
    /// Return once deletion started.
    #[arg(long)]
    pub no_wait: bool,
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// --git and the flags that go with it.
    #[command(flatten)]
    pub git_args: GitArgs,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    pub name: String,
    /// The commit that defines NAME (SHA or any revision of the checkout).
    #[arg(long)]
    pub commit: String,
    /// The checkout holding the commit (default: the one holding the current directory).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Remote to fetch the reconciler's commit from.
    #[arg(long, default_value = "origin")]
    pub remote: String,
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// The Sync (reconciler) to follow (default: the only one).
    #[arg(long = "name", value_name = "SYNC")]
    pub sync: Option<String>,
    /// Merge the context but keep the current one.
    #[arg(long)]
    pub no_switch: bool,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The Sync (reconciler) to trigger, or `status`.
    pub name: Option<String>,
    /// For `status`: the Sync to show (default: all).
    pub target: Option<String>,
    /// Wait until the reconciler handled the request, then show its Sync.
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// `wide` prints each Sync instead of triggering.
    #[arg(short = 'o', long = "output", value_parser = ["wide"])]
    pub output: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<ListFormat>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CtxArgs {
    #[command(subcommand)]
    pub command: Option<CtxCommand>,
    /// Control plane (or any context) to switch to.
    pub name: Option<String>,
    /// Replace the local context with a fresh one from the server.
    #[arg(long, short = 'o')]
    pub overwrite_existing_context: bool,
    /// Record the current context as the hosting context.
    #[arg(long, short = 'c')]
    pub set_current_for_hosting: bool,
}

#[derive(Subcommand, Debug)]
pub enum CtxCommand {
    /// Print the current context.
    Get,
    /// List contexts (sorted).
    List,
    /// Rename a context (and its cluster and user).
    Rename {
        old: String,
        new: String,
        /// Switch to the new context.
        #[arg(long, short = 'S')]
        switch: bool,
    },
    /// Delete a context (and its cluster and user).
    Delete {
        name: String,
        /// Delete even a context kflex does not manage, without asking.
        #[arg(long, short = 'f')]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Record CTX as the hosting cluster's context.
    SetHosting {
        #[arg(value_name = "CTX_NAME")]
        ctx_name: String,
    },
    /// Check kflex's kubeconfig records and the clusters they name.
    Diagnose {
        #[arg(long, short = 'o', value_enum, default_value = "json")]
        output: DiagnoseFormat,
    },
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Client only (no server call).
    #[arg(long)]
    pub client: bool,
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Format>,
}

/// Every duration flag: the operator's one parser (`1m30s`, `2h`, `500ms`;
/// a bare number is seconds).
pub use kubeflex_operator::duration::parse as parse_duration;
