//! The Git side of `kflex create` and `kflex delete`: instead of writing to
//! the hosting cluster, commit the spec change (one file) to the repository
//! the reconciler follows, validated with the reconciler's and the
//! operator's checks first; optionally push it and print the pull-request
//! link.

use std::path::{Path, PathBuf};

use kubeflex_operator::api::ControlPlane;
use kubeflex_reconciler::names::MAX_CONTROL_PLANE_NAME_LEN;
use kubeflex_reconciler::validate::{Kind, Options, Severity, is_dns1123_label};

use super::validate::{Checked, check_snapshot, offline_defaults};
use crate::git::{Committed, GitError, Target, Workspace, pull_request_link};
use crate::manifest::{Removal, remove_document};

/// The Git flags shared by `create --git` and `delete --git` (one
/// definition, flattened into both).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GitArgs {
    /// Commit the change (the new spec, or the removal of its document) to
    /// the Git repository the reconciler follows instead of writing to the
    /// cluster; no wait unless --wait.
    #[arg(long = "git", id = "git")]
    pub git: bool,
    /// With --git: wait until the reconciler applied the commit, then until
    /// the control plane is Ready and its context merged (create) or gone
    /// and its context removed (delete).
    #[arg(long, requires = "git", conflicts_with = "no_wait")]
    pub wait: bool,
    /// With --git --wait: the Sync (reconciler) to follow (default: the
    /// only one).
    #[arg(long = "name", value_name = "SYNC", requires = "git")]
    pub sync: Option<String>,
    /// The checkout to commit to (default: the one holding the current
    /// directory).
    #[arg(long, value_name = "DIR", requires = "git")]
    pub repo: Option<PathBuf>,
    /// Directory of the repository for new ControlPlane files (the layout
    /// of repo-template/).
    #[arg(long, default_value = "controlplanes")]
    pub dir: String,
    /// Commit on this existing branch instead of the current one (the work
    /// tree and the index are not touched).
    #[arg(long, conflicts_with = "new_branch", requires = "git")]
    pub branch: Option<String>,
    /// Commit on a new branch `kflex/<create|delete>-NAME` from HEAD; the
    /// work tree and the index are not touched.
    #[arg(long, requires = "git")]
    pub new_branch: bool,
    /// Push the branch (with the git CLI) and print the pull-request link.
    #[arg(long, requires = "git")]
    pub push: bool,
    /// The remote to push to.
    #[arg(long, default_value = "origin", requires = "push")]
    pub remote: String,
    /// Commit message (default: "Create control plane NAME").
    #[arg(short = 'm', long = "message", requires = "git")]
    pub message: Option<String>,
}

/// Why a Git-side command stopped.
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "{0:?} is not a valid control plane name: lowercase letters, digits and '-', \
         starting and ending with a letter or digit, at most {MAX_CONTROL_PLANE_NAME_LEN} characters"
    )]
    InvalidName(String),
    #[error("{path} already exists on {branch}; choose another name or edit that file")]
    FileExists { path: String, branch: String },
    #[error("no file on {branch} defines ControlPlane {name}")]
    NotDefined { name: String, branch: String },
    #[error("the commit would not validate, nothing was committed:\n{0}")]
    Invalid(String),
    #[error("{0}")]
    Source(String),
}

/// What `create --git` / `delete --git` did.
#[derive(Debug)]
pub struct Outcome {
    pub committed: Committed,
    /// The file the commit changed, repository-relative.
    pub path: String,
    /// Problems in other files of the branch, which the commit neither
    /// caused nor fixes (printed as a note).
    pub other_errors: Vec<String>,
    /// After `--push`: the pull-request page, or `None` for other hosts.
    pub pushed: Option<Option<String>>,
}

impl GitArgs {
    fn target(&self, verb: &str, name: &str) -> Target {
        if self.new_branch {
            Target::NewBranch(format!("kflex/{verb}-{name}"))
        } else if let Some(b) = &self.branch {
            Target::Branch(b.clone())
        } else {
            Target::Current
        }
    }

    fn workspace(&self) -> Result<Workspace, GitError> {
        let dir = match &self.repo {
            Some(d) => d.clone(),
            None => std::env::current_dir().map_err(|e| GitError::Io {
                path: PathBuf::from("."),
                source: e,
            })?,
        };
        Workspace::discover(&dir)
    }
}

fn branch_label(ws: &Workspace, target: &Target) -> String {
    match target {
        Target::Current => ws
            .current_branch()
            .ok()
            .flatten()
            .unwrap_or_else(|| "HEAD".into()),
        Target::Branch(b) | Target::NewBranch(b) => b.clone(),
    }
}

pub fn check_name(name: &str) -> Result<(), GitOpsError> {
    if is_dns1123_label(name) && name.len() <= MAX_CONTROL_PLANE_NAME_LEN {
        Ok(())
    } else {
        Err(GitOpsError::InvalidName(name.to_owned()))
    }
}

/// The YAML `create --git` writes for a ControlPlane: apiVersion, kind,
/// metadata.name and spec, nothing the server fills in.
pub fn render_spec(cp: &ControlPlane) -> Result<String, GitOpsError> {
    let spec = serde_json::to_value(&cp.spec).map_err(|e| GitOpsError::Source(e.to_string()))?;
    let doc = serde_json::json!({
        "apiVersion": kubeflex_operator::api::API_VERSION,
        "kind": "ControlPlane",
        "metadata": {"name": cp.metadata.name},
        "spec": spec,
    });
    serde_saphyr::to_string(&doc).map_err(|e| GitOpsError::Source(e.to_string()))
}

/// Validates `tree` as the reconciler would read it and splits the errors
/// into those of `path` (which refuse the commit) and the others.
fn validate_tree(
    ws: &Workspace,
    tree: gix::ObjectId,
    path: Option<&str>,
    options: &Options,
) -> Result<(Checked, Vec<String>, Vec<String>), GitOpsError> {
    let snapshot = ws.snapshot(tree, "")?;
    let checked = check_snapshot(&snapshot, options, offline_defaults())
        .map_err(|e| GitOpsError::Source(e.to_string()))?;
    let (mut mine, mut others) = (Vec::new(), Vec::new());
    for f in checked
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
    {
        if Some(f.path.as_str()) == path {
            mine.push(f.to_string());
        } else {
            others.push(f.to_string());
        }
    }
    Ok((checked, mine, others))
}

/// `kflex create NAME --git`: writes `<dir>/NAME.yaml` on the target branch
/// after validating the branch's tree plus that file, and commits only it.
pub fn create(
    cp: &ControlPlane,
    args: &GitArgs,
    options: &Options,
) -> Result<Outcome, GitOpsError> {
    let name = cp.metadata.name.clone().unwrap_or_default();
    check_name(&name)?;
    let ws = args.workspace()?;
    ws.check_identity()?;
    let target = args.target("create", &name);
    let branch = branch_label(&ws, &target);
    let dir = args.dir.trim_matches('/');
    let path = if dir.is_empty() {
        format!("{name}.yaml")
    } else {
        format!("{dir}/{name}.yaml")
    };
    let base = ws.base_tree(&target)?;
    if ws.read_in_tree(base, &path)?.is_some() {
        return Err(GitOpsError::FileExists { path, branch });
    }
    let yaml = render_spec(cp)?;
    let tree = ws.edit_tree(base, &path, Some(yaml.as_bytes()))?;
    let (_, mine, other_errors) = validate_tree(&ws, tree, Some(&path), options)?;
    if !mine.is_empty() {
        return Err(GitOpsError::Invalid(mine.join("\n")));
    }
    let message = args
        .message
        .clone()
        .unwrap_or_else(|| format!("Create control plane {name}"));
    let committed = ws.commit(&target, tree, &path, Some(yaml.as_bytes()), &message)?;
    let pushed = push(&ws, args, &committed)?;
    Ok(Outcome {
        committed,
        path,
        other_errors,
        pushed,
    })
}

/// `kflex delete NAME --git`: removes the document defining ControlPlane
/// NAME (the file when it is its only document; otherwise the other
/// documents stay byte for byte) and commits that one file.
pub fn delete(name: &str, args: &GitArgs, options: &Options) -> Result<Outcome, GitOpsError> {
    check_name(name)?;
    let ws = args.workspace()?;
    ws.check_identity()?;
    let target = args.target("delete", name);
    let branch = branch_label(&ws, &target);
    let base = ws.base_tree(&target)?;
    let (before, _, _) = validate_tree(&ws, base, None, options)?;
    let Some(path) = before
        .report
        .documents
        .iter()
        .find(|d| d.key.kind == Kind::ControlPlane && d.key.name == name)
        .map(|d| d.path.clone())
    else {
        return Err(GitOpsError::NotDefined {
            name: name.to_owned(),
            branch,
        });
    };
    let bytes = ws
        .read_in_tree(base, &path)?
        .ok_or_else(|| GitOpsError::NotDefined {
            name: name.to_owned(),
            branch: branch.clone(),
        })?;
    let text = String::from_utf8(bytes).map_err(|e| GitOpsError::Source(format!("{path}: {e}")))?;
    let content = match remove_document(&text, "ControlPlane", name) {
        Some(Removal::DeleteFile) => None,
        Some(Removal::Rewrite(rest)) => Some(rest),
        None => {
            return Err(GitOpsError::NotDefined {
                name: name.to_owned(),
                branch,
            });
        }
    };
    let tree = ws.edit_tree(base, &path, content.as_deref().map(str::as_bytes))?;
    let (_, mine, other_errors) = validate_tree(&ws, tree, Some(&path), options)?;
    if !mine.is_empty() {
        return Err(GitOpsError::Invalid(mine.join("\n")));
    }
    let message = args
        .message
        .clone()
        .unwrap_or_else(|| format!("Delete control plane {name}"));
    let committed = ws.commit(
        &target,
        tree,
        &path,
        content.as_deref().map(str::as_bytes),
        &message,
    )?;
    let pushed = push(&ws, args, &committed)?;
    Ok(Outcome {
        committed,
        path,
        other_errors,
        pushed,
    })
}

fn push(
    ws: &Workspace,
    args: &GitArgs,
    committed: &Committed,
) -> Result<Option<Option<String>>, GitOpsError> {
    if !args.push {
        return Ok(None);
    }
    ws.push(&args.remote, &committed.branch)?;
    let url = ws.remote_url(&args.remote)?;
    Ok(Some(pull_request_link(&url, &committed.branch)))
}

/// Prints what happened, as people read it.
pub fn print_outcome(verb: &str, outcome: &Outcome, remote: &str, repo: &Path) {
    let short = &outcome.committed.commit.to_string()[..7];
    println!(
        "{verb} {} in commit {short} on branch {} ({})",
        outcome.path,
        outcome.committed.branch,
        repo.display()
    );
    for e in &outcome.other_errors {
        println!("note: not touched by this commit: {e}");
    }
    match &outcome.pushed {
        None => println!(
            "next: push branch {} and open a pull request (or use --push)",
            outcome.committed.branch
        ),
        Some(Some(link)) => println!("pushed to {remote}; open the pull request: {link}"),
        Some(None) => println!(
            "pushed branch {} to {remote}; open a pull request for it",
            outcome.committed.branch
        ),
    }
}

/// The ControlPlane `create --git` commits: the direct `create`'s spec flags
/// and object, minus what only the direct path does (the bootstrap Secret of
/// an `external` control plane is made by `kflex adopt`, not by a commit, so
/// the operator's check for it applies), and without defaults the file does
/// not need.
pub fn spec_of(a: &crate::cli::CreateArgs) -> anyhow::Result<ControlPlane> {
    use kubeflex_operator::api::ControlPlaneType;
    let mut cp = super::create::build(a)?;
    cp.spec.bootstrap_secret_ref = None;
    if cp.spec.type_ != ControlPlaneType::K8s {
        cp.spec.backend = None;
    }
    if cp
        .spec
        .post_create_hook_vars
        .as_ref()
        .is_some_and(|v| v.is_empty())
    {
        cp.spec.post_create_hook_vars = None;
    }
    cp.metadata.name = Some(a.name.clone());
    Ok(cp)
}

/// When the hosting cluster is reachable (within a few seconds): a reason
/// to refuse creating `name` by Git, because a ControlPlane of that name
/// lives there under another source (or none: made directly). `None` when
/// there is no conflict or no cluster to ask.
pub async fn cluster_conflict(
    client: &kube::Client,
    name: &str,
    sync: Option<&str>,
) -> Option<String> {
    use kubeflex_reconciler::names::LABEL_SOURCE;
    let ask = async {
        let cp = super::wait::control_plane_api(client)
            .get_opt(name)
            .await
            .ok()??;
        let owner = cp
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_SOURCE))
            .cloned();
        let ours = match sync {
            Some(s) => Some(s.to_owned()),
            None => super::wait::pick_sync(client, None).await.ok(),
        };
        match owner {
            Some(o) if Some(&o) == ours.as_ref() => None,
            Some(o) => Some(format!(
                "ControlPlane {name} already exists in the hosting cluster, applied by source {o:?}"
            )),
            None => Some(format!(
                "ControlPlane {name} already exists in the hosting cluster, created outside Git \
                 (delete it with `kflex delete {name}` first, or choose another name)"
            )),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

/// The hosting cluster's client when it answers within a few seconds, for
/// the checks `create --git` makes when it can (never required: the commit
/// is the act, the cluster may be out of reach).
async fn reachable_hosting(app: &super::App) -> Option<kube::Client> {
    let ask = async {
        let (_, mut kc) = app.load().ok()?;
        crate::hosting::resolve(&mut kc, false)
            .await
            .ok()
            .map(|r| r.client)
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

fn repo_dir(args: &GitArgs) -> PathBuf {
    args.repo
        .clone()
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
}

/// The remote `--wait` fetches the reconciler's commit from.
fn wait_remote(args: &GitArgs) -> &str {
    if args.push { &args.remote } else { "origin" }
}

/// `kflex create NAME --git [...]`.
pub async fn run_create(app: &super::App, a: crate::cli::CreateArgs) -> anyhow::Result<()> {
    let cp = spec_of(&a)?;
    let g = &a.git_args;
    if let Some(client) = reachable_hosting(app).await
        && let Some(conflict) = cluster_conflict(&client, &a.name, g.sync.as_deref()).await
    {
        anyhow::bail!("{conflict}; nothing was committed");
    }
    let outcome = create(&cp, g, &Options::default())?;
    report_and_wait(app, false, &a.name, g, &outcome, a.timeout, a.no_switch).await
}

/// `kflex delete NAME --git [...]`.
pub async fn run_delete(app: &super::App, a: crate::cli::DeleteArgs) -> anyhow::Result<()> {
    let outcome = delete(&a.name, &a.git_args, &Options::default())?;
    report_and_wait(app, true, &a.name, &a.git_args, &outcome, a.timeout, false).await
}

/// Prints what the commit did and, with `--wait`, follows it until the
/// control plane is Ready (created) or gone (deleted).
async fn report_and_wait(
    app: &super::App,
    deletion: bool,
    name: &str,
    g: &GitArgs,
    outcome: &Outcome,
    timeout: std::time::Duration,
    no_switch: bool,
) -> anyhow::Result<()> {
    let dir = repo_dir(g);
    let verb = if deletion { "deleted" } else { "created" };
    print_outcome(verb, outcome, &g.remote, &dir);
    if !g.wait {
        return Ok(());
    }
    let w = super::wait::Request {
        name,
        path: &outcome.path,
        commit: outcome.committed.commit,
        dir: &dir,
        remote: Some(wait_remote(g)),
        timeout,
        sync: g.sync.as_deref(),
        deletion,
        no_switch,
    };
    super::wait::wait_and_connect(app, &w).await
}
