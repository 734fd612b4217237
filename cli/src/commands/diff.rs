//! `kflex diff`: what a pass of the reconciler would do against the hosting
//! cluster now, without writing anything. The reconciler's own pieces
//! decide: its source reads the files, its validation checks them, its
//! plan (guards included) says what to apply, leave or prune; each apply is
//! sent as a server-side **dry-run** apply under the reconciler's field
//! manager, so defaults, admission and field ownership are the server's,
//! and the field-level difference is between that answer and the live
//! object.
//!
//! Exit codes (as `kubectl diff`): 0 nothing would change, 1 something
//! would, 2 an error (including files that fail validation: the pass would
//! leave them, and the report says why).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use kubeflex_reconciler::apply::Cluster;
use kubeflex_reconciler::inventory::LiveObject;
use kubeflex_reconciler::names::{ANNOTATION_COMMIT, FIELD_MANAGER, LABEL_SOURCE};
use kubeflex_reconciler::plan::{self, DesiredObject, MaxPrune, PruneOptions, Scope};
use kubeflex_reconciler::source::{DirSource, GitSource, GitSourceConfig, Snapshot, Source};
use kubeflex_reconciler::validate::{self as rv, ClusterView, Kind, ObjectKey, Options, Selection};

use super::wait::{api_error, pick_sync, sync_api};

#[derive(clap::Args, Debug, Clone)]
pub struct DiffArgs {
    /// A checkout of the source a Sync follows (default: the current
    /// directory), unless --git-url is given.
    pub dir: Option<PathBuf>,
    /// Compare a remote repository instead of a checkout.
    #[arg(long, conflicts_with = "dir")]
    pub git_url: Option<String>,
    /// Branch, tag or commit of --git-url (default: the remote's HEAD).
    #[arg(long = "ref", requires = "git_url")]
    pub reference: Option<String>,
    /// Directory of the repository that holds the manifests (default: the
    /// Sync's).
    #[arg(long = "path")]
    pub subdir: Option<String>,
    /// The Sync whose objects to compare with (default: the only one).
    #[arg(long = "name", value_name = "SYNC")]
    pub sync: Option<String>,
    /// The reconciler's --max-prune, to show what its guard would block.
    #[arg(long, default_value = "50%")]
    pub max_prune: MaxPrune,
    /// The reconciler's --allow-empty.
    #[arg(long)]
    pub allow_empty: bool,
    /// `json` for other tools.
    #[arg(short = 'o', long = "output", value_parser = ["json"])]
    pub output: Option<String>,
}

/// One field that would change: `live` → `desired` (`None`: absent).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub live: Option<Value>,
    pub desired: Option<Value>,
}

/// What a pass would do.
#[derive(Debug, Default)]
pub struct Outcome {
    pub create: Vec<(ObjectKey, String, Value)>,
    pub update: Vec<(ObjectKey, String, Vec<FieldChange>)>,
    pub prune: Vec<ObjectKey>,
    /// Prunes a guard would block, with the reason.
    pub blocked: Vec<(ObjectKey, String)>,
    /// Problems that make the pass leave files alone.
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn changes(&self) -> bool {
        !(self.create.is_empty()
            && self.update.is_empty()
            && self.prune.is_empty()
            && self.blocked.is_empty())
    }

    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if self.changes() {
            1
        } else {
            0
        }
    }
}

/// Fields that change on every write or belong to the server.
fn comparable(mut obj: Value) -> Value {
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "managedFields",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "uid",
                "selfLink",
            ] {
                meta.remove(k);
            }
            // Provenance alone is not a change.
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(ANNOTATION_COMMIT);
            }
        }
    }
    obj
}

/// Field-level differences between two JSON values, by path.
pub fn field_changes(live: &Value, desired: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", live, desired, &mut out);
    out
}

fn walk(path: &str, live: &Value, desired: &Value, out: &mut Vec<FieldChange>) {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            let keys: BTreeSet<&String> = l.keys().chain(d.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (l.get(k), d.get(k)) {
                    (Some(a), Some(b)) => walk(&p, a, b, out),
                    (a, b) => out.push(FieldChange {
                        field: p,
                        live: a.cloned(),
                        desired: b.cloned(),
                    }),
                }
            }
        }
        (Value::Array(l), Value::Array(d)) if l.len() == d.len() => {
            for (i, (a, b)) in l.iter().zip(d).enumerate() {
                walk(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (a, b) if a != b => out.push(FieldChange {
            field: path.to_owned(),
            live: Some(a.clone()),
            desired: Some(b.clone()),
        }),
        _ => {}
    }
}

/// Whether the source differs from the one the Sync's last pruning pass
/// read (the reconciler then blocks prunes until confirmed).
fn source_changed(sync: &Value, url: &str, subdir: &str) -> bool {
    let status = &sync["status"];
    let recorded_url = status["url"].as_str();
    let recorded_path = status["path"].as_str();
    recorded_url.is_some_and(|u| u != url) || recorded_path.is_some_and(|p| p != subdir)
}

/// Computes what a pass would do. Writes nothing: every apply is a dry run.
pub async fn diff(client: &kube::Client, args: &DiffArgs) -> Result<Outcome, String> {
    let sync_name = pick_sync(client, args.sync.as_deref()).await?;
    let sync = sync_api(client)
        .get(&sync_name)
        .await
        .map_err(|e| format!("reading Sync {sync_name}: {}", api_error(&e)))?;
    let sync = serde_json::to_value(&sync).unwrap_or_default();
    let url = sync["spec"]["url"].as_str().unwrap_or_default().to_owned();
    let subdir = args
        .subdir
        .clone()
        .or_else(|| sync["spec"]["path"].as_str().map(str::to_owned))
        .unwrap_or_default();

    // Holds the fetched repository while the snapshot reads from it.
    let mut _cache: Option<tempfile::TempDir> = None;
    let snapshot: Box<dyn Snapshot> = match &args.git_url {
        Some(git_url) => {
            let cache = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            let mut config = GitSourceConfig::new(git_url.clone(), cache.path().join("cache"));
            config.reference = args.reference.clone();
            config.path = subdir.clone();
            let source: Arc<dyn Source> =
                Arc::new(GitSource::new(config).map_err(|e| e.to_string())?);
            let update = kubeflex_reconciler::source::poll_blocking(source, None)
                .await
                .map_err(|e| e.to_string())?;
            _cache = Some(cache);
            update.snapshot
        }
        None => {
            let dir = args
                .dir
                .clone()
                .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
            Box::new(
                DirSource::new(&dir, &subdir)
                    .and_then(|s| s.snapshot())
                    .map_err(|e| e.to_string())?,
            )
        }
    };

    let cluster = Cluster::new(client.clone());
    let hooks = cluster.hook_names().await.map_err(|e| e.to_string())?;
    let mut inventory: BTreeMap<ObjectKey, LiveObject> = BTreeMap::new();
    let mut live_json: BTreeMap<ObjectKey, Value> = BTreeMap::new();
    let mut types = BTreeMap::new();
    for kind in [Kind::ControlPlane, Kind::PostCreateHook] {
        let list = cluster
            .api(kind)
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing {kind}s: {}", api_error(&e)))?;
        for obj in &list.items {
            let Some(live) = LiveObject::from_dynamic(kind, obj) else {
                continue;
            };
            if let Some(t) = live.control_plane_type {
                types.insert(live.key.name.clone(), t);
            }
            live_json.insert(
                live.key.clone(),
                serde_json::to_value(obj).unwrap_or_default(),
            );
            if live.labels.get(LABEL_SOURCE).map(String::as_str) == Some(sync_name.as_str()) {
                inventory.insert(live.key.clone(), live);
            }
        }
    }
    let options = Options {
        cluster: ClusterView {
            hooks: Some(hooks),
            control_plane_types: types,
        },
        ..Options::default()
    };
    let report =
        tokio::task::block_in_place(|| rv::validate(snapshot.as_ref(), Selection::All, &options))
            .map_err(|e| e.to_string())?;
    let mut outcome = Outcome {
        errors: report.errors().map(ToString::to_string).collect(),
        ..Outcome::default()
    };
    let failed: BTreeSet<String> = report.failed_files().map(str::to_owned).collect();
    let desired: Vec<DesiredObject> = report
        .documents
        .into_iter()
        .map(|d| DesiredObject::from_document(d, &sync_name, &url))
        .collect();
    let plan = plan::plan(plan::Input {
        desired: &desired,
        elsewhere: &|_| false,
        failed_files: &failed,
        scope: Scope::Full,
        inventory: &inventory,
        prune: PruneOptions {
            max: args.max_prune,
            allow_empty: args.allow_empty,
            ..PruneOptions::default()
        },
        source_changed: source_changed(&sync, &url, &subdir),
    });
    for (d, _) in &plan.apply {
        let api = cluster.api(d.key.kind);
        let live = live_json.get(&d.key);
        let commit = live
            .and_then(|l| l["metadata"]["annotations"][ANNOTATION_COMMIT].as_str())
            .unwrap_or("dry-run")
            .to_owned();
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        let answer = api
            .patch(&d.key.name, &params, &Patch::Apply(d.body_at(&commit)))
            .await
            .map_err(|e| format!("dry-run apply of {}: {}", d.key, api_error(&e)))?;
        let answer = comparable(serde_json::to_value(&answer).unwrap_or_default());
        match live {
            None => outcome.create.push((d.key.clone(), d.path.clone(), answer)),
            Some(live) => {
                let changes = field_changes(&comparable(live.clone()), &answer);
                if !changes.is_empty() {
                    outcome
                        .update
                        .push((d.key.clone(), d.path.clone(), changes));
                }
            }
        }
    }
    outcome.prune = plan.prune.iter().map(|l| l.key.clone()).collect();
    for blocked in &plan.prune_blocked {
        let reason = blocked.to_string();
        outcome.blocked.extend(
            blocked
                .candidates
                .iter()
                .map(|k| (k.clone(), reason.clone())),
        );
    }
    Ok(outcome)
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The outcome for people; `color` for a terminal.
pub fn render_text(o: &Outcome, color: bool) -> String {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    for e in &o.errors {
        let _ = writeln!(out, "{}", paint("31", &format!("error: {e}")));
    }
    for (k, path, _) in &o.create {
        let _ = writeln!(
            out,
            "{}",
            paint("32", &format!("+ {k} ({path}): would be created"))
        );
    }
    for (k, path, changes) in &o.update {
        let _ = writeln!(out, "{}", paint("33", &format!("~ {k} ({path}):")));
        for c in changes {
            let _ = writeln!(
                out,
                "    {}: {} → {}",
                c.field,
                paint("31", &show(&c.live)),
                paint("32", &show(&c.desired))
            );
        }
    }
    for k in &o.prune {
        let _ = writeln!(out, "{}", paint("31", &format!("- {k}: would be pruned")));
    }
    for (k, reason) in &o.blocked {
        let _ = writeln!(
            out,
            "{}",
            paint("35", &format!("! {k}: prune blocked: {reason}"))
        );
    }
    if !o.changes() && o.errors.is_empty() {
        out.push_str("no changes\n");
    }
    out
}

pub fn render_json(o: &Outcome) -> String {
    let key = |k: &ObjectKey| json!({"kind": k.kind.as_str(), "name": k.name});
    let doc = json!({
        "changes": o.changes(),
        "create": o.create.iter().map(|(k, p, obj)| json!({"object": key(k), "path": p, "result": obj})).collect::<Vec<_>>(),
        "update": o.update.iter().map(|(k, p, cs)| json!({
            "object": key(k), "path": p,
            "fields": cs.iter().map(|c| json!({"field": c.field, "live": c.live, "desired": c.desired})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "prune": o.prune.iter().map(key).collect::<Vec<_>>(),
        "blocked": o.blocked.iter().map(|(k, r)| json!({"object": key(k), "reason": r})).collect::<Vec<_>>(),
        "errors": o.errors,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// `kflex diff` against the hosting context: exit 0 when nothing would
/// change, 1 when something would, 2 on error.
pub async fn run_cmd(app: &super::App, args: DiffArgs) -> anyhow::Result<()> {
    let client = async {
        let (_, mut kc) = app.load()?;
        anyhow::Ok(app.hosting(&mut kc).await?.client)
    };
    let client = match client.await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return super::exit_with(2);
        }
    };
    let code = match diff(&client, &args).await {
        Ok(outcome) => {
            if args.output.is_some() {
                print!("{}", render_json(&outcome));
            } else {
                use std::io::IsTerminal as _;
                let color = std::io::stdout().is_terminal() && app.out.color;
                print!("{}", render_text(&outcome, color));
            }
            outcome.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    };
    super::exit_with(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_changes_by_path() {
        let live =
            json!({"spec": {"type": "k8s", "globalVars": {"a": "1", "b": "2"}, "hooks": [1, 2]}});
        let desired =
            json!({"spec": {"type": "k3s", "globalVars": {"a": "1", "c": "3"}, "hooks": [1, 3]}});
        let changes = field_changes(&live, &desired);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.globalVars.b",
                "spec.globalVars.c",
                "spec.hooks[1]",
                "spec.type"
            ]
        );
        assert_eq!(changes[0].desired, None);
        assert_eq!(changes[3].live, Some(json!("k8s")));
    }

    #[test]
    fn provenance_and_server_fields_are_not_changes() {
        let a = json!({"metadata": {"name": "x", "resourceVersion": "1", "annotations": {ANNOTATION_COMMIT: "aaa", "k": "v"}}, "status": {"x": 1}});
        let b = json!({"metadata": {"name": "x", "resourceVersion": "2", "annotations": {ANNOTATION_COMMIT: "bbb", "k": "v"}}});
        assert!(field_changes(&comparable(a), &comparable(b)).is_empty());
    }
}
