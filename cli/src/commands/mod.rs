//! One module per subcommand, plus what several share: the run's settings
//! ([`App`]), control-plane waits and kubeconfig merges ([`controlplane`]).
//! The Git side (`create/delete --git`, `validate`, `diff`, `wait`, `sync`,
//! `watch`) lives in [`gitops`] and the modules named after its commands.

pub mod adopt;
pub mod completion;
pub mod config;
pub mod controlplane;
pub mod create;
pub mod ctx;
pub mod delete;
pub mod diff;
pub mod gitops;
pub mod init;
pub mod list;
pub mod sync;
pub mod validate;
pub mod version;
pub mod wait;
pub mod watch;

use crate::cli::{Cli, Command, Global};
use crate::hosting;
use crate::kubeconfig::{Kubeconfig, KubeconfigFiles, Loaded};
use crate::output::Output;

/// A failure shown as `Error: <message>` (exit 1).
pub type Result<T> = std::result::Result<T, anyhow::Error>;

/// One run's settings.
#[derive(Clone)]
pub struct App {
    pub global: Global,
    pub files: KubeconfigFiles,
    pub out: Output,
}

impl App {
    pub fn new(global: Global) -> Result<Self> {
        let files = KubeconfigFiles::from_env(global.kubeconfig.as_deref())?;
        let out = Output::detect(global.no_color, global.verbose);
        Ok(Self { global, files, out })
    }

    /// The merged kubeconfig; `--context` replaces the current context in
    /// memory (it is never written because of it).
    pub fn load(&self) -> Result<(Loaded, Kubeconfig)> {
        let loaded = self.files.load()?;
        let mut kc = loaded.config().clone();
        if let Some(c) = &self.global.context {
            if kc.context(c).is_none() {
                anyhow::bail!("context '{c}' (--context) does not exist in the kubeconfig");
            }
            kc.current_context.clone_from(c);
        }
        Ok((loaded, kc))
    }

    /// Writes `kc` back, keeping the file's current context when `--context` moved it.
    pub fn save(&self, loaded: &Loaded, kc: &Kubeconfig, switched: bool) -> Result<()> {
        let mut kc = kc.clone();
        if self.global.context.is_some() && !switched {
            kc.current_context
                .clone_from(&loaded.config().current_context);
        }
        let written = loaded.save(&kc)?;
        for f in written {
            self.out.detail(&format!("wrote {}", f.display()));
        }
        Ok(())
    }

    /// §11.3 with the failure explained.
    pub async fn hosting(&self, kc: &mut Kubeconfig) -> Result<hosting::Resolved> {
        let r = hosting::resolve(kc, false).await?;
        self.out.detail(r.note);
        Ok(r)
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    if let Command::Completion { shell } = &cli.command {
        return completion::run(*shell);
    }
    if let Command::Version(a) = &cli.command
        && a.client
    {
        return version::run(None, a).await;
    }
    if let Command::Dev(a) = cli.command {
        // Only an explicit --kubeconfig moves dev's own kubeconfig, never
        // $KUBECONFIG (that may be the user's real one).
        return crate::dev::run(a, cli.global.kubeconfig).await;
    }
    let app = App::new(cli.global)?;
    match cli.command {
        Command::Init(a) => init::init(&app, a).await,
        Command::Uninstall(a) => init::uninstall(&app, a).await,
        Command::Create(a) => create::run(&app, a).await,
        Command::Adopt(a) => adopt::run(&app, a).await,
        Command::Delete(a) => delete::run(&app, a).await,
        Command::List(a) => list::run(&app, a).await,
        Command::Ctx(a) => ctx::run(&app, a).await,
        Command::Config { command } => config::run(&app, command).await,
        Command::Version(a) => version::run(Some(&app), &a).await,
        Command::Validate(a) => validate::run_cmd(&app, a).await,
        Command::Diff(a) => diff::run_cmd(&app, a).await,
        Command::Wait(a) => wait::run(&app, a).await,
        Command::Sync(a) => sync::run_cmd(&app, a).await,
        Command::Watch(a) => watch::run_cmd(&app, a).await,
        Command::Completion { .. } | Command::Dev(_) => Ok(()),
    }
}

/// Ends a command whose exit code carries its answer (`validate`, `diff`:
/// 1 is a result, not a failure to report as `Error:`).
pub fn exit_with(code: i32) -> Result<()> {
    use std::io::Write as _;
    if code == 0 {
        return Ok(());
    }
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}
