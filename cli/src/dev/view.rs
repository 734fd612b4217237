//! What `kflex dev` shows and keeps up to date: one row per control plane
//! (type, synced, ready, age, last error), drawn as a live table on a
//! terminal or as one log line per change otherwise, and the kubeconfig's
//! contexts: one per Ready control plane, removed with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Api;
use kubeflex_operator::api::{ConditionType, ControlPlane, Sync, SyncFileError};

use crate::commands::controlplane::{self as cpx, ANNOTATION_PATH};
use crate::hosting;
use crate::kubeconfig::{self, Kubeconfig};
use crate::output::{go_duration, table};

/// The hosting context `kflex dev` writes.
pub const HOSTING_CONTEXT: &str = "kflex-dev";

/// One control plane as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub type_: String,
    pub synced: String,
    pub ready: String,
    /// Seconds since creation (the table shows it; changes of it are no news).
    pub age_secs: u64,
    /// `path:line:column: message` of the spec file, else why it is not Ready.
    pub error: String,
}

/// Rows from the control planes and the reconciler's file errors.
pub fn rows(cps: &[ControlPlane], errors: &[SyncFileError], now_secs: i64) -> Vec<Row> {
    let mut rows: Vec<Row> = cps
        .iter()
        .map(|cp| {
            let cond = |t| {
                cpx::condition(cp, t)
                    .map(|c| c.0)
                    .unwrap_or_else(|| "Unknown".into())
            };
            let path = cp
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_PATH));
            let file_error = path.and_then(|p| errors.iter().find(|e| &e.path == p));
            let error = match file_error {
                Some(e) => e.message.clone(),
                None => match cpx::condition(cp, ConditionType::READY) {
                    Some((s, reason, message)) if s == "False" && reason.contains("Error") => {
                        format!("{reason}: {message}")
                    }
                    _ => String::new(),
                },
            };
            let age_secs = cp
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| now_secs.saturating_sub(t.0.as_second()).max(0))
                .unsigned_abs();
            Row {
                name: cp.metadata.name.clone().unwrap_or_default(),
                type_: cp.spec.type_.to_string(),
                synced: cond(ConditionType::SYNCED),
                ready: cond(ConditionType::READY),
                age_secs,
                error,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// File errors no control plane's row shows (a file that does not even
/// name one).
pub fn loose_errors<'a>(cps: &[ControlPlane], errors: &'a [SyncFileError]) -> Vec<&'a str> {
    let paths: BTreeSet<&String> = cps
        .iter()
        .filter_map(|cp| cp.metadata.annotations.as_ref()?.get(ANNOTATION_PATH))
        .collect();
    errors
        .iter()
        .filter(|e| !paths.contains(&e.path))
        .map(|e| e.message.as_str())
        .collect()
}

/// `line` cut to `width` columns (an ellipsis marks the cut), so that a long
/// error does not wrap and push the table off the screen.
pub fn clip(line: &str, width: usize) -> String {
    if width == 0 || line.chars().count() <= width {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The live table, its rows cut to `width` columns (0: no limit) so a long
/// error does not wrap through it; an error cut short is then shown whole
/// below the table.
pub fn render_table(rows: &[Row], loose: &[&str], width: usize) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.type_.clone(),
                r.synced.clone(),
                r.ready.clone(),
                go_duration(Duration::from_secs(r.age_secs)),
                r.error.clone(),
            ]
        })
        .collect();
    let full = table(
        &[
            "CONTROL PLANE",
            "TYPE",
            "SYNCED",
            "READY",
            "AGE",
            "LAST ERROR",
        ],
        &body,
    );
    let mut out: String = full.lines().map(|l| clip(l, width) + "\n").collect();
    if out != full {
        for r in rows.iter().filter(|r| !r.error.is_empty()) {
            out.push_str(&format!("{}: {}\n", r.name, r.error));
        }
    }
    if rows.is_empty() {
        out.push_str("(no control planes yet: add a ControlPlane spec to the directory)\n");
    }
    for e in loose {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

/// One log line per change between two views (age aside).
pub fn changes(
    before: &[Row],
    after: &[Row],
    loose_before: &[&str],
    loose_after: &[&str],
) -> Vec<String> {
    let old: BTreeMap<&str, &Row> = before.iter().map(|r| (r.name.as_str(), r)).collect();
    let new: BTreeMap<&str, &Row> = after.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut lines = Vec::new();
    for (name, r) in &new {
        let line = format!(
            "controlplane {name} type={} synced={} ready={}",
            r.type_, r.synced, r.ready
        );
        match old.get(name) {
            None => lines.push(format!("{line} (new)")),
            Some(o) => {
                if (&o.synced, &o.ready, &o.type_) != (&r.synced, &r.ready, &r.type_) {
                    lines.push(line);
                }
            }
        }
        if !r.error.is_empty() && old.get(name).is_none_or(|o| o.error != r.error) {
            lines.push(format!("controlplane {name} error: {}", r.error));
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        lines.push(format!("controlplane {name} removed"));
    }
    for e in loose_after.iter().filter(|e| !loose_before.contains(e)) {
        lines.push(format!("error: {e}"));
    }
    lines
}

/// A stored Ready condition shown as `checking` (the operator of this run
/// has not looked at it yet); a control plane without one is left as is.
pub fn mark_checking(cp: &mut ControlPlane) {
    if let Some(c) = cp.status.as_mut().and_then(|s| {
        s.conditions
            .iter_mut()
            .find(|c| c.type_ == ConditionType::READY)
    }) {
        c.status = CHECKING.into();
    }
}

/// What the READY column says until this run's operator rechecked.
pub const CHECKING: &str = "checking";

/// The hint under the table: a Ready control plane whose context works
/// with plain `kubectl --context` (not one whose server name needs DNS).
pub fn hint(kubeconfig: &Path, rows: &[Row], need_dns: &BTreeSet<String>) -> String {
    let k = kubeconfig.display();
    match rows
        .iter()
        .find(|r| r.ready == "True" && !need_dns.contains(&r.name))
    {
        Some(r) => format!(
            "next: export KUBECONFIG={k}; kubectl get cp; kubectl --context {} get ns",
            r.name
        ),
        None => format!("next: export KUBECONFIG={k}; kubectl get cp   (Ctrl-C stops everything)"),
    }
}

/// Writes the hosting context `kflex-dev` (testenv's admin credentials) with
/// KubeFlex's hosting extensions, keeping the file's other contexts.
pub fn write_hosting(path: &Path, testenv_kubeconfig: &str) -> anyhow::Result<()> {
    let src = Kubeconfig::parse(testenv_kubeconfig, Path::new("testenv kubeconfig"))?;
    let ctx = src
        .contexts
        .first()
        .ok_or_else(|| anyhow::anyhow!("testenv's kubeconfig has no context"))?;
    let cluster = src
        .cluster(&ctx.context.cluster)
        .ok_or_else(|| anyhow::anyhow!("testenv's kubeconfig has no cluster"))?;
    let user = src
        .user(&ctx.context.user)
        .ok_or_else(|| anyhow::anyhow!("testenv's kubeconfig has no user"))?;
    let mut result = Ok(());
    kubeconfig::update_file(path, |doc| {
        let mut c = cluster.clone();
        c.name = HOSTING_CONTEXT.into();
        let mut u = user.clone();
        u.name = format!("{HOSTING_CONTEXT}-admin");
        let mut x = ctx.clone();
        x.name = HOSTING_CONTEXT.into();
        x.context.cluster = HOSTING_CONTEXT.into();
        x.context.user = format!("{HOSTING_CONTEXT}-admin");
        x.context.extensions.clear();
        doc.upsert_cluster(c);
        doc.upsert_user(u);
        doc.upsert_context(x);
        if doc.current_context.is_empty() || doc.context(&doc.current_context).is_none() {
            doc.current_context = HOSTING_CONTEXT.into();
        }
        result = hosting::set(doc, HOSTING_CONTEXT).map_err(anyhow::Error::from);
    })?;
    result
}

/// Removes every control-plane context (and its cluster and user) from the
/// file, keeping the hosting context and anything not kflex's.
pub fn drop_controlplane_contexts(path: &Path) -> anyhow::Result<()> {
    kubeconfig::update_file(path, |doc| {
        let names: Vec<String> = doc
            .contexts
            .iter()
            .filter_map(hosting::controlplane_of)
            .collect();
        for name in names {
            cpx::remove_local(doc, &name);
        }
    })?;
    Ok(())
}

/// Whether a kubeconfig server URL's host can be reached from here: an IP
/// address, `localhost`, or a name that resolves. (A context whose server
/// is a name that resolves nowhere needs DNS set up first.)
pub fn server_resolves(server: &str) -> bool {
    let Some(rest) = server.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (h, p.trim_start_matches(':')),
            None => return false,
        },
        None => authority.rsplit_once(':').unwrap_or((authority, "")),
    };
    let port = port.parse::<u16>().unwrap_or(443);
    if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
        return true;
    }
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).is_ok_and(|mut a| a.next().is_some())
}

/// Keeps the kubeconfig's control-plane contexts in step with the cluster.
pub struct Contexts {
    path: PathBuf,
    /// Control planes whose context is in the file.
    have: BTreeSet<String>,
    /// Those whose server name does not resolve here (no hint names them).
    need_dns: BTreeSet<String>,
}

impl Contexts {
    /// Reads which control-plane contexts the file already has.
    pub fn new(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let have = if text.is_empty() {
            BTreeSet::new()
        } else {
            Kubeconfig::parse(&text, path)?
                .contexts
                .iter()
                .filter_map(hosting::controlplane_of)
                .collect()
        };
        Ok(Self {
            path: path.to_path_buf(),
            have,
            need_dns: BTreeSet::new(),
        })
    }

    /// Control planes whose context needs DNS for its server name.
    pub fn need_dns(&self) -> &BTreeSet<String> {
        &self.need_dns
    }

    /// Adds contexts of Ready control planes that have none, removes those
    /// of control planes that are gone. Returns one line per change.
    pub async fn update(&mut self, client: &kube::Client, cps: &[ControlPlane]) -> Vec<String> {
        let mut lines = Vec::new();
        let present: BTreeSet<String> =
            cps.iter().filter_map(|c| c.metadata.name.clone()).collect();
        let gone: Vec<String> = self.have.difference(&present).cloned().collect();
        for name in gone {
            match kubeconfig::update_file(&self.path, |doc| {
                cpx::remove_local(doc, &name);
            }) {
                Ok(()) => {
                    self.have.remove(&name);
                    self.need_dns.remove(&name);
                    lines.push(format!(
                        "context {name} removed from {}",
                        self.path.display()
                    ));
                }
                Err(e) => lines.push(format!("error: removing context {name}: {e}")),
            }
        }
        for cp in cps {
            let Some(name) = cp.metadata.name.clone() else {
                continue;
            };
            let ready = cpx::condition(cp, ConditionType::READY).is_some_and(|c| c.0 == "True");
            if !ready || self.have.contains(&name) {
                continue;
            }
            match self.add(client, cp, &name).await {
                Ok(server) if server_resolves(&server) => {
                    self.have.insert(name.clone());
                    self.need_dns.remove(&name);
                    lines.push(format!(
                        "context {name} added: kubectl --context {name} get ns"
                    ));
                }
                Ok(server) => {
                    self.have.insert(name.clone());
                    self.need_dns.insert(name.clone());
                    lines.push(format!(
                        "context {name} added, but its server {server} does not resolve here: `kubectl --context {name}` works once that name resolves to 127.0.0.1"
                    ));
                }
                // Retried on the next round; the reason names no secret.
                Err(e) => lines.push(format!("context {name} not written yet: {e}")),
            }
        }
        lines
    }

    async fn add(
        &self,
        client: &kube::Client,
        cp: &ControlPlane,
        name: &str,
    ) -> anyhow::Result<String> {
        // Merged into a scratch copy holding only the hosting context, then
        // copied into the file under its lock.
        let text = std::fs::read_to_string(&self.path)?;
        let mut scratch = Kubeconfig::parse(&text, &self.path)?;
        cpx::merge_from_server(&mut scratch, client, cp, HOSTING_CONTEXT).await?;
        let ctx = scratch.context(name).cloned();
        let cluster = scratch.cluster(&format!("{name}-cluster")).cloned();
        let server = cluster
            .as_ref()
            .map(|c| c.cluster.server.clone())
            .unwrap_or_default();
        let user = scratch.user(&format!("{name}-admin")).cloned();
        kubeconfig::update_file(&self.path, |doc| {
            if let Some(c) = cluster {
                doc.upsert_cluster(c);
            }
            if let Some(u) = user {
                doc.upsert_user(u);
            }
            if let Some(c) = ctx {
                doc.upsert_context(c);
            }
        })?;
        Ok(server)
    }
}

/// The control planes and the reconciler's file errors, read once.
pub async fn read(
    client: &kube::Client,
    sync_name: &str,
) -> Result<(Vec<ControlPlane>, Vec<SyncFileError>), kube::Error> {
    let cps = cpx::api(client).list(&Default::default()).await?.items;
    let errors = Api::<Sync>::all(client.clone())
        .get_opt(sync_name)
        .await?
        .and_then(|s| s.status)
        .map(|s| s.errors)
        .unwrap_or_default();
    Ok((cps, errors))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn long_lines_are_cut_to_the_terminal_width_with_an_ellipsis() {
        let line =
            "edge1  k3s  True  True  14s  controlplanes/edge1.yaml:6:9: spec.type: unsupported";
        assert_eq!(clip(line, 200), line);
        let cut = clip(line, 40);
        assert_eq!(cut.chars().count(), 40);
        assert!(cut.ends_with('…') && line.starts_with(cut.trim_end_matches('…')));
        // An unknown width (not a terminal) cuts nothing.
        assert_eq!(clip(line, 0), line);

        let rows = vec![row(
            "edge1",
            "True",
            "controlplanes/edge1.yaml:6:9: spec.type: unsupported value",
        )];
        let wide = render_table(&rows, &[], 0);
        assert_eq!(wide.lines().count(), 2, "{wide}");
        let narrow = render_table(&rows, &[], 50);
        assert!(
            narrow.lines().take(2).all(|l| l.chars().count() <= 50),
            "{narrow}"
        );
        assert!(
            narrow.contains("edge1: controlplanes/edge1.yaml:6:9: spec.type: unsupported value\n"),
            "the whole error below the table: {narrow}"
        );
    }

    fn row(name: &str, ready: &str, error: &str) -> Row {
        Row {
            name: name.into(),
            type_: "k8s".into(),
            synced: "True".into(),
            ready: ready.into(),
            age_secs: 5,
            error: error.into(),
        }
    }

    #[test]
    fn changes_name_new_changed_removed_and_errors_once() {
        let a = vec![row("cp1", "False", ""), row("gone", "True", "")];
        let mut b = vec![
            row("cp1", "True", ""),
            row("cp2", "False", "x.yaml:3:1: bad"),
        ];
        let lines = changes(&a, &b, &[], &["y.yaml:1:1: broken"]);
        assert_eq!(
            lines,
            [
                "controlplane cp1 type=k8s synced=True ready=True",
                "controlplane cp2 type=k8s synced=True ready=False (new)",
                "controlplane cp2 error: x.yaml:3:1: bad",
                "controlplane gone removed",
                "error: y.yaml:1:1: broken",
            ]
        );
        let before = b.clone();
        b[0].age_secs = 99;
        assert!(changes(&before, &b, &[], &[]).is_empty());
    }

    #[test]
    fn the_table_shows_errors_and_the_hint_names_a_ready_context() {
        let rows = vec![row(
            "cp1",
            "True",
            "controlplanes/cp1.yaml:4:3: spec.type: bad",
        )];
        let t = render_table(&rows, &["hooks/x.yaml:1:1: oops"], 0);
        assert!(
            t.contains("controlplanes/cp1.yaml:4:3: spec.type: bad"),
            "{t}"
        );
        assert!(t.contains("error: hooks/x.yaml:1:1: oops"), "{t}");
        let none = BTreeSet::new();
        assert!(hint(Path::new("/k"), &rows, &none).contains("kubectl --context cp1 get ns"));
        // A context that needs DNS is never the hint's example.
        let dns: BTreeSet<String> = ["cp1".to_owned()].into();
        assert!(!hint(Path::new("/k"), &rows, &dns).contains("--context"));
    }

    #[test]
    fn servers_resolve_unless_a_name_needs_dns() {
        assert!(server_resolves("https://127.0.0.1:9443"));
        assert!(server_resolves("https://[::1]:9443/x"));
        assert!(server_resolves("https://localhost:6443"));
        assert!(!server_resolves("https://vc1.kflex-dev.invalid:9443"));
        assert!(!server_resolves("not a url"));
    }
}
