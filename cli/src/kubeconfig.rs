//! The user's kubeconfig, handled as kubectl handles it.
//!
//! * [`Kubeconfig`] is a faithful superset of kube's `Kubeconfig`: every
//!   field kflex does not own (exec plugins, auth-provider, `proxy-url`,
//!   `tls-server-name`, other tools' extensions, unknown keys) is kept, and
//!   entries keep their order.
//! * [`KubeconfigFiles`] resolves `--kubeconfig` / `KUBECONFIG` (several
//!   files) / `~/.kube/config`, merges them with kubectl's precedence (the
//!   first file naming an entry wins, `current-context` from the first file
//!   setting it), and [`Loaded::save`] writes back only what changed: a
//!   changed entry to the file holding it, a new one to kubectl's default
//!   file, `current-context` where kubectl writes it. Files holding none of
//!   the changes are not written.
//! * Writes happen under an advisory lock on the file's directory, re-read
//!   the file under the lock (so two kflex runs at once lose nothing), and
//!   replace it atomically: temporary file in the same directory, mode
//!   0600, fsync, rename, fsync of the directory.
//!
//! Nothing here formats a credential: `Debug` of users shows field names only
//! and parse errors are reduced to file and position.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Key of kflex's extensions, global and per context.
pub const EXTENSION_NAME: &str = "kubeflex";

/// Errors, naming the file; never its content.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kubeconfig {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write kubeconfig {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serialize kubeconfig {path}: {message}")]
    Serialize { path: PathBuf, message: String },
    #[error("no kubeconfig file: set --kubeconfig, KUBECONFIG or HOME")]
    NoFile,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A kubeconfig document.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Kubeconfig {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    #[serde(
        rename = "current-context",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub current_context: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extensions: Vec<NamedExtension>,
    /// Keys kflex does not know.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `clusters[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamedCluster {
    pub name: String,
    #[serde(default)]
    pub cluster: Cluster,
}

/// A cluster; everything but `server` kept as found.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `users[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: User,
}

/// Credentials, opaque to kflex. `Debug` prints field names only.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq)]
#[serde(transparent)]
pub struct User(pub Map<String, Value>);

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// `contexts[]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamedContext {
    pub name: String,
    #[serde(default)]
    pub context: Context,
}

/// A context.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default)]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extensions: Vec<NamedExtension>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `extensions[]`, global or per context; kept verbatim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NamedExtension {
    pub name: String,
    #[serde(default)]
    pub extension: Value,
}

/// Replaces the entry named like `item`, or appends it; keeps order.
fn upsert<T>(list: &mut Vec<T>, item: T, name: impl Fn(&T) -> &str) {
    match list.iter().position(|e| name(e) == name(&item)) {
        Some(i) => list[i] = item,
        None => list.push(item),
    }
}

impl Kubeconfig {
    /// A new, empty document (`apiVersion: v1`, `kind: Config`).
    pub fn empty() -> Self {
        Self {
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            ..Self::default()
        }
    }

    /// Parses YAML (or JSON); `what` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KubeconfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| KubeconfigError::Parse {
            path: path.to_path_buf(),
            message: redact(&e.to_string()),
        })
    }

    /// YAML text.
    pub fn to_yaml(&self, path: &Path) -> Result<String, KubeconfigError> {
        serde_saphyr::to_string(self).map_err(|e| KubeconfigError::Serialize {
            path: path.to_path_buf(),
            message: redact(&e.to_string()),
        })
    }

    pub fn context(&self, name: &str) -> Option<&NamedContext> {
        self.contexts.iter().find(|c| c.name == name)
    }
    pub fn context_mut(&mut self, name: &str) -> Option<&mut NamedContext> {
        self.contexts.iter_mut().find(|c| c.name == name)
    }
    pub fn cluster(&self, name: &str) -> Option<&NamedCluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
    pub fn user(&self, name: &str) -> Option<&NamedUser> {
        self.users.iter().find(|c| c.name == name)
    }
    pub fn upsert_context(&mut self, c: NamedContext) {
        upsert(&mut self.contexts, c, |e| &e.name);
    }
    pub fn upsert_cluster(&mut self, c: NamedCluster) {
        upsert(&mut self.clusters, c, |e| &e.name);
    }
    pub fn upsert_user(&mut self, u: NamedUser) {
        upsert(&mut self.users, u, |e| &e.name);
    }
    /// Removes the context, cluster and user so named; whether the context existed.
    pub fn remove_context(&mut self, name: &str) -> bool {
        let before = self.contexts.len();
        self.contexts.retain(|c| c.name != name);
        before != self.contexts.len()
    }
    pub fn remove_cluster(&mut self, name: &str) -> bool {
        let before = self.clusters.len();
        self.clusters.retain(|c| c.name != name);
        before != self.clusters.len()
    }
    pub fn remove_user(&mut self, name: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|c| c.name != name);
        before != self.users.len()
    }

    /// kube's own type, current context set to `context`, to build a client.
    pub fn for_kube(&self, context: &str) -> Result<kube::config::Kubeconfig, String> {
        let v = serde_json::to_value(self).map_err(|e| redact(&e.to_string()))?;
        let mut kc: kube::config::Kubeconfig =
            serde_json::from_value(v).map_err(|e| redact(&e.to_string()))?;
        kc.current_context = Some(context.to_string());
        Ok(kc)
    }
}

/// Keeps the position of a parse error, drops any quoted content (serde
/// quotes the offending value, which may be a credential).
fn redact(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for ch in first.chars() {
        match quote {
            Some(q) if ch == q => {
                out.push('…');
                out.push(ch);
                quote = None;
            }
            Some(_) => {}
            None if ch == '"' || ch == '`' || ch == '\'' => {
                out.push(ch);
                quote = Some(ch);
            }
            None => out.push(ch),
        }
    }
    out
}

/// Where the kubeconfig lives, as kubectl decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeconfigFiles {
    /// Files in precedence order.
    pub paths: Vec<PathBuf>,
    /// Given with `--kubeconfig`: everything is written there.
    pub explicit: bool,
}

impl KubeconfigFiles {
    /// `--kubeconfig` if given, else `KUBECONFIG` (split like `PATH`, empty
    /// parts and duplicates dropped), else `$HOME/.kube/config`.
    pub fn resolve(
        flag: Option<&Path>,
        env: Option<&std::ffi::OsStr>,
        home: Option<&Path>,
    ) -> Result<Self, KubeconfigError> {
        if let Some(f) = flag.filter(|f| !f.as_os_str().is_empty()) {
            return Ok(Self {
                paths: vec![f.to_path_buf()],
                explicit: true,
            });
        }
        if let Some(env) = env {
            let mut paths: Vec<PathBuf> = Vec::new();
            for p in std::env::split_paths(env) {
                if !p.as_os_str().is_empty() && !paths.contains(&p) {
                    paths.push(p);
                }
            }
            if !paths.is_empty() {
                return Ok(Self {
                    paths,
                    explicit: false,
                });
            }
        }
        let home = home.ok_or(KubeconfigError::NoFile)?;
        Ok(Self {
            paths: vec![home.join(".kube").join("config")],
            explicit: false,
        })
    }

    /// From this process's flag, environment and home.
    pub fn from_env(flag: Option<&Path>) -> Result<Self, KubeconfigError> {
        let env = std::env::var_os("KUBECONFIG");
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::resolve(flag, env.as_deref(), home.as_deref())
    }

    /// kubectl's `GetDefaultFilename`: the one file; else the first that
    /// exists; else the last.
    pub fn default_file(&self) -> &Path {
        if self.explicit || self.paths.len() == 1 {
            return &self.paths[0];
        }
        self.paths
            .iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| &self.paths[self.paths.len() - 1])
    }

    /// Reads and merges every file (missing files count as empty).
    pub fn load(&self) -> Result<Loaded, KubeconfigError> {
        let mut docs = Vec::with_capacity(self.paths.len());
        for p in &self.paths {
            docs.push(read_file(p)?);
        }
        let mut merged = Kubeconfig::default();
        let mut origin = Origins::default();
        for (i, doc) in docs.iter().enumerate() {
            let Some(doc) = doc else { continue };
            if merged.api_version.is_none() {
                merged.api_version.clone_from(&doc.api_version);
            }
            if merged.kind.is_none() {
                merged.kind.clone_from(&doc.kind);
            }
            if merged.preferences.is_none() {
                merged.preferences.clone_from(&doc.preferences);
            }
            if merged.current_context.is_empty() {
                merged.current_context.clone_from(&doc.current_context);
            }
            for c in &doc.clusters {
                if !origin.clusters.contains_key(&c.name) {
                    origin.clusters.insert(c.name.clone(), i);
                    merged.clusters.push(c.clone());
                }
            }
            for u in &doc.users {
                if !origin.users.contains_key(&u.name) {
                    origin.users.insert(u.name.clone(), i);
                    merged.users.push(u.clone());
                }
            }
            for c in &doc.contexts {
                if !origin.contexts.contains_key(&c.name) {
                    origin.contexts.insert(c.name.clone(), i);
                    merged.contexts.push(c.clone());
                }
            }
            for e in &doc.extensions {
                if !origin.extensions.contains_key(&e.name) {
                    origin.extensions.insert(e.name.clone(), i);
                    merged.extensions.push(e.clone());
                }
            }
            for (k, v) in &doc.other {
                merged.other.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Ok(Loaded {
            files: self.clone(),
            start: merged,
            origin,
        })
    }
}

fn read_file(p: &Path) -> Result<Option<Kubeconfig>, KubeconfigError> {
    match std::fs::read_to_string(p) {
        Ok(text) => Kubeconfig::parse(&text, p).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KubeconfigError::Read {
            path: p.to_path_buf(),
            source,
        }),
    }
}

/// Which file (index) each entry of the merged view came from.
#[derive(Clone, Debug, Default)]
struct Origins {
    clusters: BTreeMap<String, usize>,
    users: BTreeMap<String, usize>,
    contexts: BTreeMap<String, usize>,
    extensions: BTreeMap<String, usize>,
}

/// A merged view and where each entry came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub files: KubeconfigFiles,
    start: Kubeconfig,
    origin: Origins,
}

/// One edit to apply to a file's fresh content.
enum Edit {
    Cluster(NamedCluster),
    User(NamedUser),
    Context(NamedContext),
    Extension(NamedExtension),
    RemoveCluster(String),
    RemoveUser(String),
    RemoveContext(String),
    RemoveExtension(String),
    CurrentContext(String),
}

impl Loaded {
    /// The merged view as loaded.
    pub fn config(&self) -> &Kubeconfig {
        &self.start
    }

    /// The file an entry of the merged view came from.
    pub fn origin_of_context(&self, name: &str) -> Option<&Path> {
        self.origin
            .contexts
            .get(name)
            .map(|i| self.files.paths[*i].as_path())
    }

    /// Writes the difference between the loaded view and `new` back, kubectl's
    /// way. Returns the files written (none when nothing changed).
    pub fn save(&self, new: &Kubeconfig) -> Result<Vec<PathBuf>, KubeconfigError> {
        let default_idx = self
            .files
            .paths
            .iter()
            .position(|p| p == self.files.default_file())
            .unwrap_or(0);
        let n = self.files.paths.len();
        let mut edits: Vec<Vec<Edit>> = (0..n).map(|_| Vec::new()).collect();
        let files_holding = |name: &str, pick: fn(&Kubeconfig, &str) -> bool| -> Vec<usize> {
            // Deletions: every file holding the name, so no trace remains.
            (0..n)
                .filter(|i| {
                    read_file(&self.files.paths[*i])
                        .ok()
                        .flatten()
                        .is_some_and(|d| pick(&d, name))
                })
                .collect()
        };
        macro_rules! diff {
            ($list:ident, $origin:ident, $edit:ident, $remove:ident) => {
                for e in &new.$list {
                    let before = self.start.$list.iter().find(|s| s.name == e.name);
                    if before != Some(e) {
                        let i = self
                            .origin
                            .$origin
                            .get(&e.name)
                            .copied()
                            .unwrap_or(default_idx);
                        edits[i].push(Edit::$edit(e.clone()));
                    }
                }
                for s in &self.start.$list {
                    if !new.$list.iter().any(|e| e.name == s.name) {
                        for i in
                            files_holding(&s.name, |d, name| d.$list.iter().any(|e| e.name == name))
                        {
                            edits[i].push(Edit::$remove(s.name.clone()));
                        }
                    }
                }
            };
        }
        diff!(clusters, clusters, Cluster, RemoveCluster);
        diff!(users, users, User, RemoveUser);
        diff!(contexts, contexts, Context, RemoveContext);
        diff!(extensions, extensions, Extension, RemoveExtension);
        if new.current_context != self.start.current_context {
            // kubectl's writeCurrentContext: set in the default file; a clear
            // goes to the first file that sets it.
            let target = if new.current_context.is_empty() && !self.files.explicit {
                (0..n).find(|i| {
                    read_file(&self.files.paths[*i])
                        .ok()
                        .flatten()
                        .is_some_and(|d| !d.current_context.is_empty())
                })
            } else {
                Some(default_idx)
            };
            if let Some(i) = target {
                edits[i].push(Edit::CurrentContext(new.current_context.clone()));
            }
        }
        let mut written = Vec::new();
        for (i, file_edits) in edits.into_iter().enumerate() {
            if file_edits.is_empty() {
                continue;
            }
            let path = &self.files.paths[i];
            update_file(path, |doc| {
                for e in file_edits {
                    match e {
                        Edit::Cluster(c) => doc.upsert_cluster(c),
                        Edit::User(u) => doc.upsert_user(u),
                        Edit::Context(c) => doc.upsert_context(c),
                        Edit::Extension(x) => upsert(&mut doc.extensions, x, |e| &e.name),
                        Edit::RemoveCluster(n) => {
                            doc.remove_cluster(&n);
                        }
                        Edit::RemoveUser(n) => {
                            doc.remove_user(&n);
                        }
                        Edit::RemoveContext(n) => {
                            doc.remove_context(&n);
                        }
                        Edit::RemoveExtension(n) => doc.extensions.retain(|e| e.name != n),
                        Edit::CurrentContext(c) => doc.current_context = c,
                    }
                }
            })?;
            written.push(path.clone());
        }
        Ok(written)
    }
}

/// Read-modify-write of one file under the directory lock, replaced atomically.
pub fn update_file(path: &Path, edit: impl FnOnce(&mut Kubeconfig)) -> Result<(), KubeconfigError> {
    let werr = |source| KubeconfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(werr)?;
    // The directory, not the file, is locked: the file's inode changes with
    // every rename, so a lock on it would not exclude the next writer.
    let lock = std::fs::File::open(&dir).map_err(werr)?;
    lock.lock().map_err(werr)?;
    let mut doc = read_file(path)?.unwrap_or_else(Kubeconfig::empty);
    if doc.api_version.is_none() {
        doc.api_version = Some("v1".into());
    }
    if doc.kind.is_none() {
        doc.kind = Some("Config".into());
    }
    edit(&mut doc);
    let text = doc.to_yaml(path)?;
    write_atomic(path, text.as_bytes()).map_err(werr)?;
    drop(lock);
    Ok(())
}

/// Temporary file in the same directory (0600), fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.kflex-{}-{nanos}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[path = "kubeconfig_tests.rs"]
mod tests;
