//! Watch streams: newline-delimited JSON events for one resource, replayed
//! from history when resuming at a resourceVersion, filtered by namespace and
//! selectors, with bookmarks and a server-side timeout. A watcher that falls
//! too far behind is ended with `410 Expired` so it re-lists, rather than
//! slowing writers down.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventType, Store};

/// What to watch.
pub struct WatchRequest {
    pub rt: ResourceType,
    /// `None` for all namespaces (or cluster-scoped kinds).
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `None` for "" / "0": start with the current state as ADDED events.
    pub resource_version: Option<u64>,
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    /// Answer metadata-only objects (`as=PartialObjectMetadata`).
    pub metadata_only: bool,
}

/// How often an idle watch with bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

fn line(kind: &str, object: &Value) -> Bytes {
    raw_line(kind, object.to_string().as_bytes())
}

/// `{"type":KIND,"object":OBJECT}\n` around already-serialised JSON, so an
/// event is serialised once however many watchers there are.
fn raw_line(kind: &str, object_json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object_json.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object_json);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

struct Filter {
    rt: ResourceType,
    resource: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    metadata_only: bool,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns));
        ns_ok && self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn render(&self, obj: &Value) -> Value {
        if self.metadata_only {
            return json!({
                "apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata",
                "metadata": obj["metadata"],
            });
        }
        crate::api::with_type(&self.rt, obj)
    }

    /// The event a watcher sees, given selector transitions: an object that
    /// stops matching is DELETED for it, one that starts matching ADDED.
    fn translate(&self, e: &Event) -> Option<Bytes> {
        if e.resource != self.resource {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.previous.as_deref().is_some_and(|p| self.matches(p));
        let kind = match (e.kind, before, now) {
            (EventType::Deleted, true, _) => "DELETED",
            (EventType::Deleted, false, _) => return None,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        // Stored objects carry their apiVersion and kind: the shared
        // serialisation is what this watcher would produce.
        let stored_as_served = e.object["apiVersion"].as_str()
            == Some(self.rt.api_version().as_str())
            && e.object["kind"].as_str() == Some(self.rt.kind.as_str());
        if !self.metadata_only && stored_as_served {
            return Some(raw_line(kind, e.object_json()));
        }
        Some(line(kind, &self.render(&e.object)))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({"apiVersion": self.rt.api_version(), "kind": self.rt.kind, "metadata": meta}),
        )
    }
}

/// Starts a watch; the receiver yields the body's chunks and ends when the
/// watch does.
pub fn start(store: &Arc<Store>, req: WatchRequest) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    let filter = Filter {
        resource: req.rt.storage_key(),
        rt: req.rt,
        namespace: req.namespace,
        labels: req.labels,
        fields: req.fields,
        metadata_only: req.metadata_only,
    };
    let mut initial = Vec::new();
    let (backlog, mut live, mut last_rv) = match req.resource_version {
        None => {
            let (items, rv, live) =
                store.snapshot_and_watch(&filter.resource, filter.namespace.as_deref());
            for obj in items.iter().filter(|o| filter.matches(o)) {
                initial.push(line("ADDED", &filter.render(obj)));
            }
            if req.send_initial_events {
                initial.push(filter.bookmark(rv, true));
            }
            (Vec::new(), live, rv)
        }
        Some(rv) => match store.watch_from(rv) {
            Ok((backlog, live)) => {
                if req.send_initial_events {
                    let (items, _) =
                        store.list(&filter.resource, filter.namespace.as_deref(), None);
                    for obj in items.iter().filter(|o| filter.matches(o)) {
                        initial.push(line("ADDED", &filter.render(obj)));
                    }
                    initial.push(filter.bookmark(store.current_rv(), true));
                    (Vec::new(), live, store.current_rv())
                } else {
                    (backlog, live, rv)
                }
            }
            Err(too_old) => {
                // Kubernetes answers a too-old watch inside a 200 stream, so
                // that clients re-list instead of retrying the same version.
                let status = ApiError::expired(format!(
                    "too old resource version: {} ({})",
                    too_old.requested, too_old.oldest
                ))
                .to_status();
                let _ = tx.try_send(line("ERROR", &status));
                return rx;
            }
        },
    };
    let timeout = req.timeout;
    let bookmarks = req.bookmarks;
    tokio::spawn(async move {
        for chunk in initial {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        for e in backlog {
            if e.rv <= last_rv {
                continue;
            }
            last_rv = e.rv;
            if let Some(chunk) = filter.translate(&e)
                && tx.send(chunk).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    if tx.send(filter.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                received = live.recv() => match received {
                    Ok(e) => {
                        if e.rv <= last_rv {
                            continue;
                        }
                        last_rv = e.rv;
                        if let Some(chunk) = filter.translate(&e)
                            && tx.send(chunk).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let status = ApiError::expired(format!(
                            "too old resource version: {last_rv}: the watcher fell behind"
                        ))
                        .to_status();
                        let _ = tx.send(line("ERROR", &status)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    rx
}
