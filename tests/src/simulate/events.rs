//! core/v1 Events as the real components record them, with the recorder's
//! aggregation: the same event again bumps `count` instead of piling up.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::{Ctx, util};

/// Remembered events; past this many the memory starts over (the only
/// effect is a fresh Event instead of a bumped count).
const REMEMBERED: usize = 4096;

/// (involved uid, reason, message).
type EventKey = (String, String, String);
/// (namespace, event name, count).
type Recorded = (String, String, u64);

#[derive(Default)]
pub(super) struct Recorder {
    seen: Mutex<HashMap<EventKey, Recorded>>,
}

/// Who reports an event.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

/// A controller of kube-controller-manager, by the name its events carry.
pub(super) const fn controller(component: &'static str) -> Source<'static> {
    Source {
        component,
        host: None,
    }
}

/// One event about `obj`.
pub(super) struct Note<'a> {
    pub obj: &'a Value,
    /// `spec.containers{name}` for container events.
    pub field_path: Option<String>,
    pub warning: bool,
    pub reason: &'a str,
    pub message: String,
}

impl Recorder {
    pub(super) fn record(&self, ctx: &Ctx, source: Source<'_>, note: Note<'_>) {
        let obj = note.obj;
        let uid = util::uid_of(obj).to_string();
        let key = (uid.clone(), note.reason.to_string(), note.message.clone());
        let now = crate::meta::now();
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some((ns, name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            if ctx
                .merge_patch("", "events", &ns, &name, &patch, source.component)
                .is_ok()
            {
                self.remember(key, (ns, name, count + 1));
                return;
            }
        }
        // Events of cluster-scoped objects (Nodes) live in `default`.
        let ns = match util::ns_of(obj) {
            "" => "default",
            ns => ns,
        };
        let mut involved = json!({
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": util::name_of(obj),
            "uid": uid,
            "resourceVersion": obj["metadata"]["resourceVersion"],
        });
        if !util::ns_of(obj).is_empty() {
            involved["namespace"] = json!(util::ns_of(obj));
        }
        if let Some(fp) = &note.field_path {
            involved["fieldPath"] = json!(fp);
        }
        let mut src = json!({"component": source.component});
        if let Some(host) = source.host {
            src["host"] = json!(host);
        }
        let name = format!("{}.{}", util::name_of(obj), util::random_hex(16));
        let body = json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved,
            "reason": note.reason,
            "message": note.message,
            "type": if note.warning { "Warning" } else { "Normal" },
            "source": src,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "eventTime": null,
            "reportingComponent": source.component,
            "reportingInstance": source.host.unwrap_or_default(),
        });
        match ctx.create("", "events", ns, body, source.component) {
            Ok(_) => self.remember(key, (ns.to_string(), name, 1)),
            // A namespace going away takes its events with it; not an error.
            Err(e) => {
                tracing::debug!(reason = note.reason, error = %e.message, "recording an event failed")
            }
        }
    }

    fn remember(&self, key: EventKey, value: Recorded) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(key, value);
    }

    /// Forgets the events of an object that is gone.
    pub(super) fn forget(&self, uid: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(u, _, _), _| u != uid);
    }
}
