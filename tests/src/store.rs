//! The object store: every object by resource, namespace and name, one global
//! resourceVersion counter, a bounded event history for resuming watches, and
//! a broadcast channel that fans events out to watchers.
//!
//! Writes are serialised under one lock (the closure passed to [`Store::mutate`]
//! sees the current object and decides); with a state directory every write is
//! appended to a write-ahead log and fsynced before it is acknowledged.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How many past events are kept for watches that resume from a
/// resourceVersion; older ones get `410 Expired`, as after etcd compaction.
const HISTORY: usize = 50_000;
/// Events buffered per watcher before it is cut off as too slow.
const FANOUT_BUFFER: usize = 16_384;
/// The log is folded into a snapshot when it grows past this.
const WAL_COMPACT_BYTES: u64 = 64 << 20;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions in watches).
    pub previous: Option<Arc<Value>>,
    /// The object serialised once, shared by every watcher.
    json: std::sync::OnceLock<bytes::Bytes>,
}

impl Event {
    /// The object as JSON, serialised on first use.
    pub fn object_json(&self) -> &bytes::Bytes {
        self.json
            .get_or_init(|| bytes::Bytes::from(self.object.to_string()))
    }
}

/// What a mutation closure decided.
pub enum Change {
    /// Store this object (created or replaced).
    Put(Value),
    /// Remove the object.
    Delete,
    /// Nothing changed: no new resourceVersion, no event.
    Unchanged,
}

/// Result of a committed mutation.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The object as stored (or as it was when deleted); `None` when there
    /// was nothing and nothing was written.
    pub object: Option<Arc<Value>>,
    pub kind: Option<EventType>,
}

/// Errors of the store itself (not of the request).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {path}: corrupt snapshot: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A watch started at a resourceVersion that history no longer holds.
#[derive(Debug)]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

/// History to replay and the live subscription that follows it.
pub type Resumed = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

type Objects = BTreeMap<(String, String), Arc<Value>>;

struct Inner {
    rv: u64,
    objects: HashMap<String, Objects>,
    history: VecDeque<Arc<Event>>,
    /// Events older than this were dropped (or predate a restart).
    history_floor: u64,
    wal: Option<Wal>,
}

struct Wal {
    dir: PathBuf,
    file: File,
    bytes: u64,
    /// Sequence of the last appended record, for group commit.
    appended: u64,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
    /// Highest WAL sequence known to be on disk; fsync is shared by every
    /// writer waiting at the time (group commit).
    synced: Mutex<u64>,
    sync_file: Option<File>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// An empty in-memory store.
    pub fn in_memory() -> Self {
        Self::from_parts(0, HashMap::new(), None, None)
    }

    fn from_parts(
        rv: u64,
        objects: HashMap<String, Objects>,
        wal: Option<Wal>,
        sync_file: Option<File>,
    ) -> Self {
        let (events, _) = broadcast::channel(FANOUT_BUFFER);
        Self {
            inner: Mutex::new(Inner {
                rv,
                objects,
                history: VecDeque::new(),
                history_floor: rv,
                wal,
            }),
            events,
            synced: Mutex::new(0),
            sync_file,
        }
    }

    /// Opens (or creates) a store persisted in `dir`: loads the snapshot,
    /// replays the log (a torn last record from a crash is ignored), then
    /// writes a fresh snapshot and starts an empty log.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snapshot_path = dir.join("snapshot.json");
        let wal_path = dir.join("wal.jsonl");
        let mut rv = 0;
        let mut objects: HashMap<String, Objects> = HashMap::new();
        if snapshot_path.exists() {
            let file = File::open(&snapshot_path).map_err(io_err(&snapshot_path))?;
            let snap: Value = serde_json::from_reader(BufReader::new(file)).map_err(|source| {
                StoreError::Corrupt {
                    path: snapshot_path.clone(),
                    source,
                }
            })?;
            rv = snap["rv"].as_u64().unwrap_or(0);
            for entry in snap["objects"].as_array().into_iter().flatten() {
                let resource = entry["r"].as_str().unwrap_or_default().to_string();
                let obj = entry["o"].clone();
                let key = object_key(&obj);
                objects
                    .entry(resource)
                    .or_default()
                    .insert(key, Arc::new(obj));
            }
        }
        if wal_path.exists() {
            let file = File::open(&wal_path).map_err(io_err(&wal_path))?;
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else { break };
                let Ok(record) = serde_json::from_str::<Value>(&line) else {
                    // A record cut short by a crash was never acknowledged.
                    break;
                };
                let resource = record["r"].as_str().unwrap_or_default().to_string();
                let key = (
                    record["ns"].as_str().unwrap_or_default().to_string(),
                    record["n"].as_str().unwrap_or_default().to_string(),
                );
                rv = rv.max(record["rv"].as_u64().unwrap_or(0));
                let bucket = objects.entry(resource).or_default();
                if record["op"] == "del" {
                    bucket.remove(&key);
                } else {
                    bucket.insert(key, Arc::new(record["o"].clone()));
                }
            }
        }
        write_snapshot(dir, rv, &objects)?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&wal_path)
            .map_err(io_err(&wal_path))?;
        file.sync_all().map_err(io_err(&wal_path))?;
        let sync_file = file.try_clone().map_err(io_err(&wal_path))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            file,
            bytes: 0,
            appended: 0,
        };
        Ok(Self::from_parts(rv, objects, Some(wal), Some(sync_file)))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write
        // (mutations are computed before they are stored), so keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches and continue tokens older than this are expired.
    pub fn history_floor(&self) -> u64 {
        self.lock().history_floor
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(resource)
            .and_then(|b| b.get(&(namespace.to_string(), name.to_string())))
            .cloned()
    }

    /// Objects of a resource (in one namespace, or all), ordered by
    /// namespace and name, starting after `after`, with the current rv.
    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
    ) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = match inner.objects.get(resource) {
            None => Vec::new(),
            Some(bucket) => {
                use std::ops::Bound;
                let lower = match after {
                    Some(k) => Bound::Excluded(k.clone()),
                    None => match namespace {
                        Some(ns) => Bound::Included((ns.to_string(), String::new())),
                        None => Bound::Unbounded,
                    },
                };
                bucket
                    .range((lower, Bound::Unbounded))
                    .take_while(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
                    .map(|(_, v)| v.clone())
                    .collect()
            }
        };
        (items, inner.rv)
    }

    /// Every resource key that has objects (for garbage collection).
    pub fn resources(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Applies a change decided by `f` from the current object. The closure
    /// gets the resourceVersion the write will carry.
    pub fn mutate<E>(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(Option<&Arc<Value>>, u64) -> Result<Change, E>,
    ) -> Result<Committed, E> {
        let key = (namespace.to_string(), name.to_string());
        let (committed, seq) = {
            let mut inner = self.lock();
            let current = inner
                .objects
                .get(resource)
                .and_then(|b| b.get(&key))
                .cloned();
            let next_rv = inner.rv + 1;
            match f(current.as_ref(), next_rv)? {
                Change::Unchanged => {
                    return Ok(Committed {
                        object: current,
                        kind: None,
                    });
                }
                Change::Delete => {
                    let Some(old) = current else {
                        return Ok(Committed {
                            object: None,
                            kind: None,
                        });
                    };
                    inner.rv = next_rv;
                    let mut gone = (*old).clone();
                    set_rv(&mut gone, next_rv);
                    let gone = Arc::new(gone);
                    if let Some(bucket) = inner.objects.get_mut(resource) {
                        bucket.remove(&key);
                    }
                    let seq = inner.log(json!({"rv": next_rv, "op": "del", "r": resource, "ns": namespace, "n": name}));
                    inner.publish(
                        &self.events,
                        next_rv,
                        resource,
                        &key,
                        EventType::Deleted,
                        &gone,
                        Some(old),
                    );
                    (
                        Committed {
                            object: Some(gone),
                            kind: Some(EventType::Deleted),
                        },
                        seq,
                    )
                }
                Change::Put(mut obj) => {
                    inner.rv = next_rv;
                    set_rv(&mut obj, next_rv);
                    let obj = Arc::new(obj);
                    let kind = if current.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    inner
                        .objects
                        .entry(resource.to_string())
                        .or_default()
                        .insert(key.clone(), obj.clone());
                    let seq = inner.log(json!({"rv": next_rv, "op": "put", "r": resource, "ns": namespace, "n": name, "o": &*obj}));
                    inner.publish(&self.events, next_rv, resource, &key, kind, &obj, current);
                    (
                        Committed {
                            object: Some(obj),
                            kind: Some(kind),
                        },
                        seq,
                    )
                }
            }
        };
        if let Some(seq) = seq {
            self.sync(seq);
        }
        Ok(committed)
    }

    /// Makes the log durable up to `seq`; one fsync covers every writer
    /// that appended before it.
    fn sync(&self, seq: u64) {
        let Some(file) = &self.sync_file else { return };
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= seq {
            return;
        }
        let upto = self.lock().wal.as_ref().map_or(seq, |w| w.appended);
        if let Err(e) = file.sync_data() {
            tracing::error!(error = %e, "fsync of the write-ahead log failed");
            return;
        }
        *synced = upto;
    }

    /// Subscribes to events after `rv`, replaying history first.
    pub fn watch_from(&self, rv: u64) -> Result<Resumed, TooOld> {
        let inner = self.lock();
        if rv < inner.history_floor {
            return Err(TooOld {
                requested: rv,
                oldest: inner.history_floor,
            });
        }
        let backlog = inner
            .history
            .iter()
            .filter(|e| e.rv > rv)
            .cloned()
            .collect();
        Ok((backlog, self.events.subscribe()))
    }

    /// Current objects of a resource plus a subscription that starts right
    /// after them (for watches without a resourceVersion).
    pub fn snapshot_and_watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(resource)
            .map(|b| {
                b.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, inner.rv, self.events.subscribe())
    }

    /// A receiver for every event (used by in-server controllers).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Number of stored objects (for benchmarks and metrics).
    pub fn len(&self) -> usize {
        self.lock().objects.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        tx: &broadcast::Sender<Arc<Event>>,
        rv: u64,
        resource: &str,
        key: &(String, String),
        kind: EventType,
        obj: &Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let event = Arc::new(Event {
            rv,
            resource: resource.to_string(),
            namespace: key.0.clone(),
            name: key.1.clone(),
            kind,
            object: obj.clone(),
            previous,
            json: std::sync::OnceLock::new(),
        });
        if self.history.len() >= HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.history_floor = dropped.rv;
        }
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = tx.send(event);
    }

    /// Appends a record to the log; returns its sequence to sync on.
    fn log(&mut self, record: Value) -> Option<u64> {
        let needs_compaction = {
            let wal = self.wal.as_mut()?;
            let mut line = record.to_string();
            line.push('\n');
            if let Err(e) = wal.file.write_all(line.as_bytes()) {
                tracing::error!(error = %e, "appending to the write-ahead log failed");
                return None;
            }
            wal.bytes += line.len() as u64;
            wal.appended += 1;
            wal.bytes > WAL_COMPACT_BYTES
        };
        if needs_compaction {
            self.compact();
        }
        self.wal.as_ref().map(|w| w.appended)
    }

    /// Folds the log into a new snapshot and truncates it.
    fn compact(&mut self) {
        let Some(wal) = self.wal.as_mut() else { return };
        if let Err(e) = wal.file.sync_data() {
            tracing::error!(error = %e, "fsync before compaction failed");
            return;
        }
        if let Err(e) = write_snapshot(&wal.dir, self.rv, &self.objects) {
            tracing::error!(error = %e, "writing snapshot failed; keeping the log");
            return;
        }
        if let Err(e) = wal.file.set_len(0) {
            tracing::error!(error = %e, "truncating the write-ahead log failed");
            return;
        }
        wal.bytes = 0;
    }
}

/// Writes `snapshot.json` atomically (temp file, fsync, rename, dir fsync).
fn write_snapshot(
    dir: &Path,
    rv: u64,
    objects: &HashMap<String, Objects>,
) -> Result<(), StoreError> {
    let path = dir.join("snapshot.json");
    let tmp = dir.join("snapshot.json.tmp");
    let entries: Vec<Value> = objects
        .iter()
        .flat_map(|(r, bucket)| bucket.values().map(move |o| json!({"r": r, "o": &**o})))
        .collect();
    let body = json!({"rv": rv, "objects": entries});
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    serde_json::to_writer(&mut file, &body).map_err(|e| StoreError::Io {
        path: tmp.clone(),
        source: e.into(),
    })?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

fn object_key(obj: &Value) -> (String, String) {
    let meta = &obj["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_string(),
        meta["name"].as_str().unwrap_or_default().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, v: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "d"}, "data": {"k": v}})
    }

    fn put(store: &Store, name: &str, v: &str) -> Committed {
        store
            .mutate::<()>("/configmaps", "d", name, |_, _| {
                Ok(Change::Put(cm(name, v)))
            })
            .unwrap()
    }

    #[test]
    fn writes_bump_rv_and_history_resumes() {
        let store = Store::in_memory();
        put(&store, "a", "1");
        put(&store, "b", "1");
        assert_eq!(store.current_rv(), 2);
        let (backlog, _) = store.watch_from(1).unwrap();
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].name, "b");
        let unchanged = store
            .mutate::<()>("/configmaps", "d", "a", |_, _| Ok(Change::Unchanged))
            .unwrap();
        assert!(unchanged.kind.is_none());
        assert_eq!(store.current_rv(), 2);
    }

    #[test]
    fn persisted_state_survives_reopen_with_increasing_rv() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            put(&store, "a", "1");
            put(&store, "b", "2");
            store
                .mutate::<()>("/configmaps", "d", "a", |_, _| Ok(Change::Delete))
                .unwrap();
        }
        // A torn record at the end (crash mid-append) is ignored.
        let mut wal = OpenOptions::new()
            .append(true)
            .open(dir.path().join("wal.jsonl"))
            .unwrap();
        wal.write_all(b"{\"rv\":99,\"op\":\"put\"").unwrap();
        drop(wal);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.current_rv(), 3);
        assert!(store.get("/configmaps", "d", "a").is_none());
        assert_eq!(
            store.get("/configmaps", "d", "b").unwrap()["data"]["k"],
            "2"
        );
        // Resuming a watch from before the restart is too old.
        assert!(store.watch_from(1).is_err());
        put(&store, "c", "3");
        assert_eq!(store.current_rv(), 4);
    }

    #[test]
    fn list_pages_by_namespace_and_name() {
        let store = Store::in_memory();
        for n in ["c", "a", "b"] {
            put(&store, n, "1");
        }
        let (all, _) = store.list("/configmaps", Some("d"), None);
        let names: Vec<_> = all.iter().map(|o| o["metadata"]["name"].clone()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let (rest, _) = store.list("/configmaps", Some("d"), Some(&("d".into(), "a".into())));
        assert_eq!(rest.len(), 2);
        assert!(store.list("/configmaps", Some("e"), None).0.is_empty());
    }
}
