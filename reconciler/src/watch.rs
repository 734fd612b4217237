//! Watches, both kinds: the managed objects in the cluster (filling the
//! inventory and reporting drift), and, in `--dir --watch` mode, the
//! directory on disk (notify, debounced, so one save is one pass).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use notify::Watcher as _;
use tokio::sync::{mpsc, watch};

use crate::apply::Cluster;
use crate::error::Error;
use crate::inventory::{Inventory, LiveObject};
use crate::names::LABEL_SOURCE;
use crate::validate::{Kind, ObjectKey};

/// Quiet time after the last file event before a pass starts: editors write
/// a file in several steps (truncate, write, rename).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Something happened to a managed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectEvent {
    Changed(ObjectKey),
    Deleted(ObjectKey),
}

/// Locks the inventory; a poisoned lock still holds consistent entries
/// (every update is a single map operation).
pub fn lock(inventory: &Mutex<Inventory>) -> std::sync::MutexGuard<'_, Inventory> {
    inventory.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `incoming` is older than `stored` (resource versions are opaque
/// in general, but numeric in etcd and testenv; when not, assume newer). A
/// watch event can trail the response to our own write.
fn is_stale(incoming: Option<&str>, stored: Option<&str>) -> bool {
    match (
        incoming.and_then(|s| s.parse::<u64>().ok()),
        stored.and_then(|s| s.parse::<u64>().ok()),
    ) {
        (Some(a), Some(b)) => a < b,
        _ => false,
    }
}

/// Watches the objects labelled with this source, for one kind, until the
/// task is dropped: keeps `inventory` current, marks `synced` after the
/// initial list, and sends changes and deletions on `events`.
pub async fn watch_inventory(
    cluster: Cluster,
    kind: Kind,
    source: String,
    inventory: Arc<Mutex<Inventory>>,
    synced: watch::Sender<bool>,
    events: mpsc::UnboundedSender<ObjectEvent>,
) {
    let config = watcher::Config::default().labels(&format!("{LABEL_SOURCE}={source}"));
    let mut stream = watcher::watcher(cluster.api(kind).clone(), config)
        .default_backoff()
        .boxed();
    let mut initial: Vec<LiveObject> = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(obj)) => initial.extend(LiveObject::from_dynamic(kind, &obj)),
            Ok(Event::InitDone) => {
                let changed = lock(&inventory).replace_kind(kind, std::mem::take(&mut initial));
                // A re-list after a gap: what changed meanwhile came with no
                // event; report it so that drift is corrected.
                if *synced.borrow() {
                    for event in changed {
                        let _ = events.send(event);
                    }
                }
                synced.send_replace(true);
            }
            Ok(Event::Apply(obj)) => {
                let Some(live) = LiveObject::from_dynamic(kind, &obj) else {
                    continue;
                };
                let key = live.key.clone();
                {
                    let mut inv = lock(&inventory);
                    let stored = inv.get(&key).and_then(|o| o.resource_version.clone());
                    if is_stale(live.resource_version.as_deref(), stored.as_deref()) {
                        continue;
                    }
                    inv.upsert(live);
                }
                let _ = events.send(ObjectEvent::Changed(key));
            }
            Ok(Event::Delete(obj)) => {
                let Some(live) = LiveObject::from_dynamic(kind, &obj) else {
                    continue;
                };
                lock(&inventory).remove(&live.key);
                let _ = events.send(ObjectEvent::Deleted(live.key));
            }
            Err(e) => {
                // The watcher retries with backoff; the API server may be down.
                tracing::warn!(%kind, error = %e, "watching managed objects failed; retrying");
            }
        }
    }
}

/// Waits until every watch listed its objects once.
pub async fn wait_synced(mut receivers: Vec<watch::Receiver<bool>>) -> Result<(), Error> {
    for rx in &mut receivers {
        rx.wait_for(|synced| *synced)
            .await
            .map_err(|_| Error::Join("inventory watch ended".to_owned()))?;
    }
    Ok(())
}

/// The inventory of source `name`, kept current by one watch per kind.
pub struct Watched {
    pub inventory: Arc<Mutex<Inventory>>,
    /// Drift events for [`crate::reconcile::Reconciler::run`].
    pub drift: mpsc::UnboundedReceiver<ObjectEvent>,
    /// The watches, running until aborted.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts [`watch_inventory`] for both kinds of source `name` and waits
/// until each listed its objects once: what every embedding of the
/// reconciler (its binary, `kflex watch`, `kflex dev`) needs before a pass.
pub async fn start_inventory(cluster: &Cluster, name: &str) -> Result<Watched, Error> {
    let inventory = Arc::new(Mutex::new(Inventory::new(name)));
    let (drift_tx, drift) = mpsc::unbounded_channel();
    let mut synced = Vec::new();
    let mut tasks = Vec::new();
    for kind in [Kind::ControlPlane, Kind::PostCreateHook] {
        let (tx, rx) = watch::channel(false);
        synced.push(rx);
        tasks.push(tokio::spawn(watch_inventory(
            cluster.clone(),
            kind,
            name.to_owned(),
            inventory.clone(),
            tx,
            drift_tx.clone(),
        )));
    }
    if let Err(e) = wait_synced(synced).await {
        for t in &tasks {
            t.abort();
        }
        return Err(e);
    }
    Ok(Watched {
        inventory,
        drift,
        tasks,
    })
}

/// Watches `dir` recursively; sends one `()` per burst of changes, after
/// [`DEBOUNCE`] of quiet. The returned watcher must be kept alive.
pub fn watch_dir(
    dir: &Path,
    triggers: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, Error> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<()>();
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let given = dir.to_path_buf();
    // Events under dot-directories (`.git/`, `.kflex/`, …) concern nothing
    // the source reads (see `source::filter`): no pass for them.
    let relevant = move |path: &Path| {
        let rel = path
            .strip_prefix(&root)
            .or_else(|_| path.strip_prefix(&given))
            .unwrap_or(path);
        !rel.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && (event.paths.is_empty() || event.paths.iter().any(|p| relevant(p)))
        {
            let _ = raw_tx.send(());
        }
    })
    .map_err(|e| Error::Io {
        context: format!("watching {}", dir.display()),
        source: std::io::Error::other(e),
    })?;
    watcher
        .watch(dir, notify::RecursiveMode::Recursive)
        .map_err(|e| Error::Io {
            context: format!("watching {}", dir.display()),
            source: std::io::Error::other(e),
        })?;
    tokio::spawn(async move {
        while raw_rx.recv().await.is_some() {
            // Debounce: wait for a quiet period.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, raw_rx.recv()).await {}
            if triggers.send(()).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}

/// The ControlPlane types the inventory knows, for validation's immutable
/// `type` check.
pub fn control_plane_types(
    inventory: &Inventory,
) -> BTreeMap<String, kubeflex_operator::api::ControlPlaneType> {
    inventory
        .objects()
        .iter()
        .filter(|(k, _)| k.kind == Kind::ControlPlane)
        .filter_map(|(k, o)| Some((k.name.clone(), o.control_plane_type?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_events_are_recognised() {
        assert!(is_stale(Some("4"), Some("5")));
        assert!(!is_stale(Some("6"), Some("5")));
        assert!(!is_stale(Some("abc"), Some("5")));
        assert!(!is_stale(Some("1"), None));
    }

    #[tokio::test]
    async fn a_burst_of_saves_is_one_trigger() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let _watcher = watch_dir(dir.path(), tx).unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join("a.yaml"), format!("x: {i}")).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        // No second trigger for the same burst.
        assert!(tokio::time::timeout(DEBOUNCE * 3, rx.recv()).await.is_err());
    }
}
