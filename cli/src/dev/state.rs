//! `kflex dev`'s files under `DIR/.kflex/`: the `.gitignore` that keeps its
//! keys out of Git, the state directory with its lock (one `kflex dev` per
//! state) and the saved API and ingress ports, reused on the next start so
//! saved kubeconfigs keep working.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// File of the saved ports in the state directory.
const PORTS_FILE: &str = "ports";
/// Lock file in the state directory, held for the whole run.
const LOCK_FILE: &str = "lock";
/// The reconciler's lease holder identity of this state directory.
const IDENTITY_FILE: &str = "identity";

/// Where `kflex dev` keeps everything.
pub struct Layout {
    /// The watched directory (canonical).
    pub dir: PathBuf,
    /// `DIR/.kflex`.
    pub kflex_dir: PathBuf,
    /// The testenv state, ports and lock.
    pub state_dir: PathBuf,
    /// The kubeconfig written for the user.
    pub kubeconfig: PathBuf,
    /// Where the components' logs go (the terminal shows the table).
    pub log: PathBuf,
}

impl Layout {
    pub fn new(
        dir: &Path,
        state_dir: Option<&Path>,
        kubeconfig: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("directory {} does not exist", dir.display()))?;
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        let kflex_dir = dir.join(".kflex");
        std::fs::create_dir_all(&kflex_dir)
            .with_context(|| format!("creating {}", kflex_dir.display()))?;
        // Everything in .kflex/ is local: keys, kubeconfigs, state.
        let ignore = kflex_dir.join(".gitignore");
        if std::fs::read_to_string(&ignore).ok().as_deref() != Some("*\n") {
            std::fs::write(&ignore, "*\n")
                .with_context(|| format!("writing {}", ignore.display()))?;
        }
        let state_dir = state_dir.map_or_else(|| kflex_dir.join("state"), Path::to_path_buf);
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        set_private(&state_dir)?;
        Ok(Self {
            kubeconfig: kubeconfig.map_or_else(|| kflex_dir.join("kubeconfig"), Path::to_path_buf),
            log: kflex_dir.join("dev.log"),
            dir,
            kflex_dir,
            state_dir,
        })
    }

    /// Takes the state's lock; another `kflex dev` on the same state is
    /// refused. The lock goes with the process (flock), so a crash leaves
    /// none behind.
    pub fn lock(&self) -> anyhow::Result<File> {
        let path = self.state_dir.join(LOCK_FILE);
        let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another `kflex dev` is running on {}; stop it first (Ctrl-C), or use another --state-dir",
                self.state_dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// The API and ingress addresses: the flags, else the saved ports, else
    /// any free loopback port. A saved port another program took since is
    /// given up for a free one (with a notice, in the returned list); a
    /// pinned one that is taken is an error naming its flag.
    pub fn addresses(
        &self,
        addr: Option<SocketAddr>,
        ingress_port: Option<u16>,
    ) -> anyhow::Result<(SocketAddr, SocketAddr, Vec<String>)> {
        let saved = Ports::read(&self.state_dir.join(PORTS_FILE));
        let mut notices = Vec::new();
        let api = match addr {
            Some(a) => {
                if let Err(e) = free(a) {
                    bail!(
                        "--addr {a}: the address is not free ({e}); stop what holds it or pass another --addr"
                    );
                }
                a
            }
            None => loopback(saved.as_ref().map(|p| p.api), "API", &mut notices),
        };
        let ingress = match ingress_port {
            Some(p) => {
                let a = SocketAddr::from(([127, 0, 0, 1], p));
                if let Err(e) = free(a) {
                    bail!(
                        "--ingress-port {p}: the port is not free ({e}); stop what holds it or pass another --ingress-port"
                    );
                }
                a
            }
            None => loopback(saved.as_ref().map(|p| p.ingress), "ingress", &mut notices),
        };
        Ok((api, ingress, notices))
    }

    /// This state's lease holder identity, made once and kept: a restart
    /// after a crash re-acquires its own lease at once instead of waiting
    /// for it to expire (the state lock keeps two runs from sharing it).
    pub fn identity(&self) -> anyhow::Result<String> {
        let path = self.state_dir.join(IDENTITY_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let id = text.trim();
            if !id.is_empty() {
                return Ok(id.to_owned());
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("kflex-dev-{:x}-{:x}", std::process::id(), nanos);
        crate::kubeconfig::write_atomic(&path, format!("{id}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(id)
    }

    /// The ingress port the last run saved.
    pub fn saved_ingress_port(&self) -> Option<u16> {
        Ports::read(&self.state_dir.join(PORTS_FILE)).map(|p| p.ingress)
    }

    pub fn save_ports(&self, api: u16, ingress: u16) -> anyhow::Result<()> {
        let path = self.state_dir.join(PORTS_FILE);
        let text = format!("api={api}\ningress={ingress}\n");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// Whether `addr` can be bound now.
fn free(addr: SocketAddr) -> std::io::Result<()> {
    std::net::TcpListener::bind(addr).map(drop)
}

/// 127.0.0.1 on the saved port if it is still free, else on any free one
/// (port 0), with a notice.
fn loopback(saved: Option<u16>, what: &str, notices: &mut Vec<String>) -> SocketAddr {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    match saved {
        Some(p) if p != 0 => {
            let a = SocketAddr::from(([127, 0, 0, 1], p));
            match free(a) {
                Ok(()) => a,
                Err(e) => {
                    notices.push(format!(
                        "kflex dev: the saved {what} port {p} is taken ({e}); using a free port instead and rewriting the kubeconfig"
                    ));
                    any
                }
            }
        }
        _ => any,
    }
}

/// The ports of the last run.
#[derive(Debug, PartialEq, Eq)]
struct Ports {
    api: u16,
    ingress: u16,
}

impl Ports {
    fn read(path: &Path) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(path).ok()?)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut api = None;
        let mut ingress = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("api", v)) => api = v.trim().parse().ok(),
                Some(("ingress", v)) => ingress = v.trim().parse().ok(),
                _ => {}
            }
        }
        Some(Self {
            api: api?,
            ingress: ingress?,
        })
    }
}

fn set_private(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_round_trip_and_bad_files_are_ignored() {
        assert_eq!(
            Ports::parse("api=6443\ningress=9443\n"),
            Some(Ports {
                api: 6443,
                ingress: 9443
            })
        );
        assert_eq!(Ports::parse("api=6443\n"), None);
        assert_eq!(Ports::parse("api=x\ningress=1\n"), None);
    }

    #[test]
    fn layout_writes_the_gitignore_and_a_second_lock_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path(), None, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join(".kflex/.gitignore")).unwrap(),
            "*\n"
        );
        assert_eq!(l.kubeconfig, l.kflex_dir.join("kubeconfig"));
        let held = l.lock().unwrap();
        let err = l.lock().unwrap_err().to_string();
        assert!(err.contains("another `kflex dev` is running"), "{err}");
        drop(held);
        l.lock().unwrap();
        // Saved ports are reused while free; a taken one moves, with a
        // notice; a pinned taken one is an error naming the flag.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let free_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        l.save_ports(free_port, taken_port).unwrap();
        let (api, ingress, notices) = l.addresses(None, None).unwrap();
        assert_eq!(api.port(), free_port);
        assert_eq!(ingress.port(), 0, "the taken saved port was kept");
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].contains(&format!("saved ingress port {taken_port} is taken")),
            "{notices:?}"
        );
        let err = l.addresses(None, Some(taken_port)).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--ingress-port {taken_port}: ")),
            "{err}"
        );
        let pinned = SocketAddr::from(([127, 0, 0, 1], taken_port));
        let err = l.addresses(Some(pinned), None).unwrap_err().to_string();
        assert!(err.starts_with(&format!("--addr {pinned}: ")), "{err}");
        // The identity is made once and kept.
        let id = l.identity().unwrap();
        assert!(id.starts_with("kflex-dev-"), "{id}");
        assert_eq!(l.identity().unwrap(), id);
    }
}
