//! `kflex wait NAME --commit SHA` and `kflex create --git --wait`: from a
//! commit to a working context. Stages: waiting for merge → applied at
//! `<short sha>` → provisioning → Ready → context `NAME`.
//!
//! The reconciler's `Sync` says which commit its last pass worked on
//! (`lastAttemptedCommit`); the commit waited for has arrived when it is
//! that commit or one of its ancestors, checked in the local repository
//! (after a fetch when the reconciler's commit is not there yet). A file
//! error in the `Sync` for NAME's file stops the wait at once; another
//! file's error does not.

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::git::Workspace;

/// Where a wait stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The reconciler has not reached the commit.
    WaitingForMerge,
    /// The reconciler's pass at this commit applied NAME's file.
    Applied {
        at: String,
    },
    /// The ControlPlane exists and is not Ready yet.
    Provisioning {
        reason: String,
    },
    Ready,
    /// Stop: the reconciler or the operator reports something a person must fix.
    Failed(String),
    /// `delete --wait`: the ControlPlane is gone.
    Gone,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WaitingForMerge => f.write_str("waiting for merge"),
            Self::Applied { at } => write!(f, "applied at {}", short(at)),
            Self::Provisioning { reason } if reason.is_empty() => f.write_str("provisioning"),
            Self::Provisioning { reason } => write!(f, "provisioning ({reason})"),
            Self::Ready => f.write_str("Ready"),
            Self::Failed(m) => write!(f, "failed: {m}"),
            Self::Gone => f.write_str("deleted"),
        }
    }
}

pub fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Reasons of the ControlPlane's `Ready` condition that need a person:
/// waiting will not help.
const NEEDS_A_PERSON: &[&str] = &[
    "InvalidSpec",
    "Refused",
    "PostCreateHookFailed",
    "Unsupported",
];

/// The commit the reconciler's last pass worked on, from a `Sync` as JSON.
/// `lastAttemptedCommit` when the reconciler writes it; older reconcilers
/// only have `lastAppliedCommit`.
pub fn attempted_commit(sync: &Value) -> Option<&str> {
    let status = &sync["status"];
    status["lastAttemptedCommit"]
        .as_str()
        .or_else(|| status["lastAppliedCommit"].as_str())
        .filter(|s| !s.is_empty())
}

/// The `Sync`'s errors for `path`, as `path:line:column: message`.
pub fn file_errors(sync: &Value, path: &str) -> Vec<String> {
    sync["status"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter(|e| e["path"].as_str() == Some(path))
                .filter_map(|e| e["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The stage of a ControlPlane from its JSON (`None`: it does not exist).
pub fn control_plane_stage(cp: Option<&Value>) -> Stage {
    let Some(cp) = cp else {
        return Stage::Provisioning {
            reason: "waiting for the ControlPlane".into(),
        };
    };
    let ready = cp["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    match ready {
        Some(c) if c["status"] == "True" => Stage::Ready,
        Some(c) => {
            let reason = c["reason"].as_str().unwrap_or_default().to_owned();
            let message = c["message"].as_str().unwrap_or_default();
            if NEEDS_A_PERSON.contains(&reason.as_str()) {
                Stage::Failed(format!("{reason}: {message}"))
            } else {
                Stage::Provisioning { reason }
            }
        }
        None => Stage::Provisioning {
            reason: String::new(),
        },
    }
}

/// Whether `commit` is `head` or an ancestor of it, in `ws`'s repository;
/// `None` when `head` is not in the local repository (fetch first).
pub fn contains(ws: &Workspace, head: &str, commit: gix::ObjectId) -> Option<bool> {
    let repo = ws.repo();
    let head = gix::ObjectId::from_hex(head.as_bytes()).ok()?;
    if head == commit {
        return Some(true);
    }
    repo.find_commit(head).ok()?;
    match repo.merge_base(commit, head) {
        Ok(Some(base)) => Some(base.detach() == commit),
        _ => Some(false),
    }
}

/// `git fetch REMOTE` so the reconciler's commit is known locally.
pub fn fetch(ws: &Workspace, remote: &str) -> Result<(), String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(ws.workdir())
        .args(["fetch", "--quiet", remote])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| format!("git fetch: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// One readable line for a kube error: the API status's code, reason and
/// message, never a `Debug` dump.
pub fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

pub fn sync_api(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(kubeflex_operator::api::GITOPS_GROUP, "v1alpha1", "Sync");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "syncs"),
    )
}

pub fn control_plane_api(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(kubeflex_operator::api::GROUP, "v1alpha1", "ControlPlane");
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "controlplanes"),
    )
}

/// The `Sync` named `name`, or the only one in the cluster; with several
/// and no name, an error listing them.
pub async fn pick_sync(client: &kube::Client, name: Option<&str>) -> Result<String, String> {
    let api = sync_api(client);
    if let Some(name) = name {
        return match api.get_opt(name).await {
            Ok(Some(_)) => Ok(name.to_owned()),
            Ok(None) => Err(format!("no Sync named {name} in the hosting cluster")),
            Err(e) => Err(format!("reading Sync {name}: {}", api_error(&e))),
        };
    }
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing Syncs: {}", api_error(&e)))?;
    let names: Vec<String> = list
        .items
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    match names.as_slice() {
        [] => Err("no Sync in the hosting cluster: is a reconciler running?".into()),
        [one] => Ok(one.clone()),
        many => Err(format!(
            "several Syncs in the hosting cluster; pick one with --name: {}",
            many.join(", ")
        )),
    }
}

/// What to wait for.
pub struct WaitFor<'a> {
    pub name: &'a str,
    /// NAME's file, repository-relative.
    pub path: &'a str,
    pub commit: gix::ObjectId,
    pub sync: &'a str,
    pub remote: Option<&'a str>,
    pub timeout: Duration,
    /// Waiting for the ControlPlane to go away (`delete --git --wait`).
    pub deletion: bool,
}

/// Polls until Ready (or gone), a failure or the timeout, reporting each
/// new stage through `progress`.
pub async fn wait(
    client: &kube::Client,
    ws: &Workspace,
    w: &WaitFor<'_>,
    mut progress: impl FnMut(&Stage),
) -> Result<(), String> {
    let deadline = Instant::now() + w.timeout;
    let syncs = sync_api(client);
    let cps = control_plane_api(client);
    let mut last: Option<Stage> = None;
    let mut merged = false;
    let mut fetched_for: Option<String> = None;
    loop {
        let stage = if !merged {
            let sync = syncs
                .get_opt(w.sync)
                .await
                .map_err(|e| format!("reading Sync {}: {}", w.sync, api_error(&e)))?
                .ok_or_else(|| format!("Sync {} is gone", w.sync))?;
            let sync = serde_json::to_value(&sync).unwrap_or_default();
            match attempted_commit(&sync).map(str::to_owned) {
                None => Stage::WaitingForMerge,
                Some(head) => {
                    let mut arrived = contains(ws, &head, w.commit);
                    if arrived.is_none()
                        && fetched_for.as_deref() != Some(head.as_str())
                        && let Some(remote) = w.remote
                    {
                        fetch(ws, remote)?;
                        fetched_for = Some(head.clone());
                        arrived = contains(ws, &head, w.commit);
                    }
                    if arrived == Some(true) {
                        let errors = file_errors(&sync, w.path);
                        if !errors.is_empty() {
                            return Err(format!(
                                "the reconciler refused {} at {}:\n{}",
                                w.path,
                                short(&head),
                                errors.join("\n")
                            ));
                        }
                        merged = true;
                        Stage::Applied { at: head }
                    } else {
                        Stage::WaitingForMerge
                    }
                }
            }
        } else {
            let cp = cps
                .get_opt(w.name)
                .await
                .map_err(|e| format!("reading ControlPlane {}: {}", w.name, api_error(&e)))?;
            if w.deletion {
                match cp {
                    None => Stage::Gone,
                    Some(_) => Stage::Provisioning {
                        reason: "deleting".into(),
                    },
                }
            } else {
                let cp = cp.map(|c| serde_json::to_value(&c).unwrap_or_default());
                control_plane_stage(cp.as_ref())
            }
        };
        if last.as_ref() != Some(&stage) {
            progress(&stage);
            last = Some(stage.clone());
        }
        match stage {
            Stage::Ready | Stage::Gone => return Ok(()),
            Stage::Failed(m) => return Err(m),
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {:?} while {}",
                w.timeout,
                last.map(|s| s.to_string()).unwrap_or_default()
            ));
        }
        // A merge happens once; after it, provisioning takes seconds.
        tokio::time::sleep(Duration::from_millis(if merged { 250 } else { 500 })).await;
    }
}

/// The commit `rev` names in `ws` (a full or abbreviated SHA, a branch).
pub fn resolve_commit(ws: &Workspace, rev: &str) -> Result<gix::ObjectId, String> {
    ws.repo()
        .rev_parse_single(rev)
        .map(|id| id.detach())
        .map_err(|e| format!("{rev}: not a commit of {}: {e}", ws.workdir().display()))
}

/// The file that defines ControlPlane `name` at `commit`: the one whose
/// document names it, else one named like it (a broken file defines no
/// object).
pub fn file_of(ws: &Workspace, commit: gix::ObjectId, name: &str) -> Result<String, String> {
    let tree = ws
        .repo()
        .find_commit(commit)
        .and_then(|c| c.tree_id())
        .map_err(|e| format!("reading commit {commit}: {e}"))?
        .detach();
    let snapshot = ws.snapshot(tree, "").map_err(|e| e.to_string())?;
    let report = kubeflex_reconciler::validate::validate(
        &snapshot,
        kubeflex_reconciler::validate::Selection::All,
        &Default::default(),
    )
    .map_err(|e| e.to_string())?;
    if let Some(d) = report.documents.iter().find(|d| {
        d.key.kind == kubeflex_reconciler::validate::Kind::ControlPlane && d.key.name == name
    }) {
        return Ok(d.path.clone());
    }
    let by_object = report.problems.iter().find(|p| {
        p.object.as_ref().is_some_and(|o| {
            o.kind == kubeflex_reconciler::validate::Kind::ControlPlane && o.name == name
        })
    });
    if let Some(p) = by_object {
        return Ok(p.path.clone());
    }
    let file_name = format!("{name}.yaml");
    report
        .files
        .keys()
        .find(|p| p.rsplit('/').next() == Some(file_name.as_str()))
        .cloned()
        .ok_or_else(|| {
            format!(
                "no file at {} defines ControlPlane {name}",
                short(&commit.to_string())
            )
        })
}

/// A wait for the reconciler (`create --git --wait`, `delete --git --wait`,
/// `kflex wait`), ending in the local kubeconfig.
pub struct Request<'a> {
    pub name: &'a str,
    /// NAME's file, repository-relative.
    pub path: &'a str,
    pub commit: gix::ObjectId,
    /// The checkout holding the commit.
    pub dir: &'a std::path::Path,
    pub remote: Option<&'a str>,
    pub timeout: Duration,
    /// `--name`: the Sync to follow.
    pub sync: Option<&'a str>,
    /// Waiting for the ControlPlane to go away.
    pub deletion: bool,
    /// Merge the context but keep the current one.
    pub no_switch: bool,
}

/// Waits with one progress line per stage, against the hosting cluster
/// (kflex's hosting-context resolution); then merges context NAME exactly
/// as the direct `create` does, or (deletion) removes it.
pub async fn wait_and_connect(app: &super::App, r: &Request<'_>) -> anyhow::Result<()> {
    use super::controlplane as cpx;
    let ws = Workspace::discover(r.dir)?;
    let (loaded, mut kc) = app.load()?;
    let before = kc.current_context.clone();
    let hosting = app.hosting(&mut kc).await?;
    let client = &hosting.client;
    let sync = pick_sync(client, r.sync)
        .await
        .map_err(anyhow::Error::msg)?;
    let w = WaitFor {
        name: r.name,
        path: r.path,
        commit: r.commit,
        sync: &sync,
        remote: r.remote,
        timeout: r.timeout,
        deletion: r.deletion,
    };
    let started = Instant::now();
    let line = |stage: &dyn std::fmt::Display| {
        println!("[{:>5.1}s] {stage}", started.elapsed().as_secs_f64());
    };
    wait(client, &ws, &w, |stage| line(stage))
        .await
        .map_err(anyhow::Error::msg)?;
    let name = r.name;
    if r.deletion {
        if cpx::remove_local(&mut kc, name) {
            line(&format!("context {name} removed"));
        }
        // Stay where the user was, unless that was the deleted context.
        kc.current_context = if before == name || before.is_empty() {
            hosting.context.clone()
        } else {
            before
        };
        return app.save(&loaded, &kc, true);
    }
    let cp = cpx::api(client)
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("reading control plane {name}: {}", api_error(&e)))?;
    let note = cpx::merge_from_server(&mut kc, client, &cp, &hosting.context).await?;
    app.out.detail(&note);
    if r.no_switch {
        kc.current_context.clone_from(&before);
    } else {
        kc.current_context = name.to_owned();
    }
    app.save(&loaded, &kc, !r.no_switch)?;
    line(&format!("context {name}"));
    Ok(())
}

/// `kflex wait NAME --commit SHA`.
pub async fn run(app: &super::App, a: crate::cli::WaitArgs) -> anyhow::Result<()> {
    let dir = match a.repo {
        Some(d) => d,
        None => std::env::current_dir()?,
    };
    let ws = Workspace::discover(&dir)?;
    let commit = resolve_commit(&ws, &a.commit).map_err(anyhow::Error::msg)?;
    let path = file_of(&ws, commit, &a.name).map_err(anyhow::Error::msg)?;
    let r = Request {
        name: &a.name,
        path: &path,
        commit,
        dir: &dir,
        remote: Some(&a.remote),
        timeout: a.timeout,
        sync: a.sync.as_deref(),
        deletion: false,
        no_switch: a.no_switch,
    };
    wait_and_connect(app, &r).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attempted_commit_prefers_the_attempt() {
        let s = json!({"status": {"lastAppliedCommit": "aaa", "lastAttemptedCommit": "bbb"}});
        assert_eq!(attempted_commit(&s), Some("bbb"));
        let s = json!({"status": {"lastAppliedCommit": "aaa"}});
        assert_eq!(attempted_commit(&s), Some("aaa"));
        assert_eq!(attempted_commit(&json!({})), None);
    }

    #[test]
    fn only_the_files_own_errors_count() {
        let s = json!({"status": {"errors": [
            {"path": "controlplanes/a.yaml", "line": 6, "column": 9, "message": "controlplanes/a.yaml:6:9: spec.type: bad"},
            {"path": "controlplanes/b.yaml", "line": 1, "column": 1, "message": "controlplanes/b.yaml:1:1: x"},
        ]}});
        assert_eq!(
            file_errors(&s, "controlplanes/a.yaml"),
            ["controlplanes/a.yaml:6:9: spec.type: bad"]
        );
        assert!(file_errors(&s, "controlplanes/c.yaml").is_empty());
    }

    #[test]
    fn control_plane_stages() {
        assert!(matches!(
            control_plane_stage(None),
            Stage::Provisioning { .. }
        ));
        let cp = |status: &str, reason: &str| json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "m"}]}});
        assert_eq!(
            control_plane_stage(Some(&cp("True", "Ready"))),
            Stage::Ready
        );
        assert_eq!(
            control_plane_stage(Some(&cp("False", "Provisioning"))),
            Stage::Provisioning {
                reason: "Provisioning".into()
            }
        );
        assert_eq!(
            control_plane_stage(Some(&cp("False", "InvalidSpec"))),
            Stage::Failed("InvalidSpec: m".into())
        );
    }
}
