//! `kflex sync [NAME] [--wait]`: asks a running reconciler for a pass now,
//! by an annotation on its `Sync` object (as `flux reconcile` does); the
//! reconciler answers in `status.lastHandledSyncAt`. `kflex sync status`
//! prints each `Sync`: source, ref, commits, counts, errors, blocked prunes.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::wait::{api_error, pick_sync, sync_api};

/// The annotation a request sets; the reconciler runs a pass when its value
/// differs from `status.lastHandledSyncAt`.
pub use kubeflex_reconciler::names::ANNOTATION_SYNC_REQUESTED;

/// One `Sync` as `kflex sync status` shows it.
pub fn describe(sync: &Value) -> String {
    let name = sync["metadata"]["name"].as_str().unwrap_or("?");
    let status = &sync["status"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let short = |v: &Value| {
        v.as_str()
            .map(|s| s.get(..12).unwrap_or(s).to_owned())
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    let _ = writeln!(out, "{name}");
    let _ = writeln!(out, "  source:     {}", text(&status["url"]));
    let _ = writeln!(out, "  ref:        {}", text(&status["ref"]));
    let _ = writeln!(out, "  path:       {}", text(&status["path"]));
    let _ = writeln!(out, "  fetched:    {}", short(&status["lastFetchedCommit"]));
    let _ = writeln!(
        out,
        "  attempted:  {}",
        short(&status["lastAttemptedCommit"])
    );
    let _ = writeln!(out, "  applied:    {}", short(&status["lastAppliedCommit"]));
    let _ = writeln!(out, "  last sync:  {}", text(&status["lastSyncTime"]));
    let c = &status["counts"];
    let _ = writeln!(
        out,
        "  counts:     applied {}, unchanged {}, pruned {}, failed {}",
        c["applied"].as_i64().unwrap_or(0),
        c["unchanged"].as_i64().unwrap_or(0),
        c["pruned"].as_i64().unwrap_or(0),
        c["failed"].as_i64().unwrap_or(0)
    );
    if let Some(conds) = status["conditions"].as_array() {
        for cond in conds {
            let _ = writeln!(
                out,
                "  {}: {} {} {}",
                text(&cond["type"]),
                text(&cond["status"]),
                text(&cond["reason"]),
                cond["message"].as_str().unwrap_or_default()
            );
        }
    }
    let errors = status["errors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !errors.is_empty() {
        let _ = writeln!(out, "  errors:");
        for e in errors {
            let _ = writeln!(out, "    {}", e["message"].as_str().unwrap_or_default());
        }
    }
    let blocked = status["blockedPrunes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !blocked.is_empty() {
        let _ = writeln!(out, "  blocked prunes:");
        for b in blocked {
            let _ = writeln!(
                out,
                "    {}/{}: {}",
                text(&b["kind"]),
                text(&b["name"]),
                text(&b["reason"])
            );
        }
    } else if let Some(old) = status["pruneBlocked"].as_array().filter(|a| !a.is_empty()) {
        let _ = writeln!(out, "  blocked prunes:");
        for b in old {
            let _ = writeln!(out, "    {}", b.as_str().unwrap_or_default());
        }
    }
    out
}

/// `kflex sync status`: every Sync, or the named one.
pub async fn status(client: &kube::Client, name: Option<&str>) -> Result<String, String> {
    let api = sync_api(client);
    let items = match name {
        Some(n) => vec![
            api.get_opt(n)
                .await
                .map_err(|e| format!("reading Sync {n}: {}", api_error(&e)))?
                .ok_or_else(|| format!("no Sync named {n} in the hosting cluster"))?,
        ],
        None => {
            api.list(&ListParams::default())
                .await
                .map_err(|e| format!("listing Syncs: {}", api_error(&e)))?
                .items
        }
    };
    if items.is_empty() {
        return Ok("no Sync in the hosting cluster: is a reconciler running?\n".into());
    }
    Ok(items
        .iter()
        .map(|s| describe(&serde_json::to_value(s).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Requests a pass of Sync `name` (or the only one); with `wait`, returns
/// once the reconciler handled it, with the Sync's description.
pub async fn request(
    client: &kube::Client,
    name: Option<&str>,
    wait: Option<Duration>,
) -> Result<String, String> {
    let name = pick_sync(client, name).await?;
    let api = sync_api(client);
    let token = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {ANNOTATION_SYNC_REQUESTED: token}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| format!("annotating Sync {name}: {}", api_error(&e)))?;
    let Some(timeout) = wait else {
        return Ok(format!("requested a pass of Sync {name}\n"));
    };
    let deadline = Instant::now() + timeout;
    loop {
        let sync = api
            .get(&name)
            .await
            .map_err(|e| format!("reading Sync {name}: {}", api_error(&e)))?;
        let sync = serde_json::to_value(&sync).unwrap_or_default();
        if sync["status"]["lastHandledSyncAt"].as_str() == Some(token.as_str()) {
            return Ok(describe(&sync));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "Sync {name} did not handle the request within {timeout:?}: is its reconciler running?"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kflex sync [NAME] [--wait]`, `kflex sync status [NAME]`, `-o wide`.
pub async fn run_cmd(app: &super::App, a: crate::cli::SyncArgs) -> anyhow::Result<()> {
    let (_, mut kc) = app.load()?;
    let client = app.hosting(&mut kc).await?.client;
    let status_asked = a.name.as_deref() == Some("status");
    let text = if status_asked || a.output.is_some() {
        let which = if status_asked { a.target } else { a.name };
        status(&client, which.as_deref()).await
    } else {
        request(&client, a.name.as_deref(), a.wait.then_some(a.timeout)).await
    };
    print!("{}", text.map_err(anyhow::Error::msg)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_is_described_with_errors_and_blocked_prunes() {
        let s = json!({
            "metadata": {"name": "tenants"},
            "status": {
                "url": "git://example/t.git", "ref": "main",
                "lastFetchedCommit": "0123456789abcdef", "lastAppliedCommit": "0123456789abcdef",
                "counts": {"applied": 2, "unchanged": 5, "pruned": 0, "failed": 1},
                "errors": [{"path": "a.yaml", "line": 3, "column": 1, "message": "a.yaml:3:1: bad"}],
                "blockedPrunes": [{"kind": "ControlPlane", "name": "old", "reason": "max-prune guard"}],
            }
        });
        let d = describe(&s);
        assert!(d.starts_with("tenants\n"), "{d}");
        assert!(d.contains("source:     git://example/t.git"), "{d}");
        assert!(d.contains("applied:    0123456789ab"), "{d}");
        assert!(
            d.contains("applied 2, unchanged 5, pruned 0, failed 1"),
            "{d}"
        );
        assert!(d.contains("    a.yaml:3:1: bad"), "{d}");
        assert!(d.contains("    ControlPlane/old: max-prune guard"), "{d}");
    }
}
