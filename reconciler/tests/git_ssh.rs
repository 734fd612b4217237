//! The Git source over SSH against a real OpenSSH server: `sshd`, started by
//! the test on `127.0.0.1` with a configuration, host key and
//! `authorized_keys` of its own (in a temporary directory), serving the
//! upstream repository through `git-upload-pack` run by the login shell.
//!
//! `GitAuth::Ssh` is passed to the `ssh` binary through `core.sshCommand`
//! (`-i KEY -o IdentitiesOnly=yes -o BatchMode=yes`, and with a known_hosts
//! file `-o StrictHostKeyChecking=yes -o UserKnownHostsFile=FILE`). The
//! server's log (`sshd -e`, kept by the test) shows which key it accepted
//! and whether the client even tried to authenticate, so the tests prove:
//!
//! - gix's ssh transport honours `core.sshCommand` set on the cache
//!   repository opened with isolated options: the configured key is the
//!   one that logs in (its fingerprint is in the server's `Accepted
//!   publickey` line) and the configured known_hosts file is what vouches
//!   for the server (its host key is made for the test: nothing else
//!   could). A first poll is full, a later one incremental, over protocol
//!   v2 (the server passes `GIT_PROTOCOL` on, as forges do) and v0 (stock
//!   OpenSSH does not);
//! - host keys are checked strictly: a known_hosts file naming another key
//!   for `[127.0.0.1]:PORT`, or not naming the host, fails the poll before
//!   any authentication request reaches the server, and the file is never
//!   written to (no trust on first use);
//! - a key the server does not know fails at once (`BatchMode`: no prompt
//!   to wait on), and so does a key file others can read (ssh ignores it);
//! - every failure says why, in ssh's own words (`Host key verification
//!   failed`, `Permission denied (publickey)`, `bad permissions`), in the
//!   error, the binary's log and the Sync status;
//! - the binary (`--ssh-key`, `--ssh-known-hosts`, `--once`) applies the
//!   repository, and with a wrong key or host key exits 1, applying
//!   nothing.
//!
//! Needs `/usr/sbin/sshd` (Debian's `openssh-server`), `ssh`, `ssh-keygen`
//! and `git` on `PATH`. Works as root (the CI) or as any user with a login
//! shell: sshd then runs as that user and can only log that user in, which
//! is all the tests need.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubeflex_reconciler::source::{
    Change, ChangeKind, Changes, GitAuth, GitSource, GitSourceConfig, SourceError,
};
use support::{Cluster, Upstream, cp, free_port, git, reconciler_command};

/// sshd must be started by absolute path (it re-executes itself per
/// connection).
const SSHD: &str = "/usr/sbin/sshd";

/// What "fails at once" means for a refused connection on loopback.
const QUICK: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Keys.

/// Runs a program to completion; panics with its stderr if it fails.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} runs: {e} (install it: apt-get install -y openssh-server openssh-client, or run ./test.sh)")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An ed25519 key pair without passphrase: `path` (mode 0600, or ssh
/// refuses it) and `path.pub`.
struct KeyPair {
    path: PathBuf,
}

impl KeyPair {
    fn generate(path: PathBuf, comment: &str) -> Self {
        let text = path.to_str().unwrap();
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", text],
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Self { path }
    }

    /// The public key line: `ssh-ed25519 AAAA… comment`.
    fn public(&self) -> String {
        std::fs::read_to_string(self.path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `SHA256:…`, as sshd logs it.
    fn fingerprint(&self) -> String {
        let pub_path = self.path.with_extension("pub");
        let line = run("ssh-keygen", &["-l", "-f", pub_path.to_str().unwrap()]);
        line.split_whitespace().nth(1).unwrap().to_owned()
    }

    /// The public key without its comment, as known_hosts lists it.
    fn host_entry(&self) -> String {
        let public = self.public();
        let mut fields = public.split_whitespace();
        format!("{} {}", fields.next().unwrap(), fields.next().unwrap())
    }
}

// ---------------------------------------------------------------------------
// The server.

/// The user sshd runs as and logs in: whoever runs the tests.
fn user() -> String {
    run("id", &["-un"]).trim().to_owned()
}

fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

/// `sshd -D -e` on `127.0.0.1:<port>` with everything in a temporary
/// directory; its log (stderr) is kept; stopped on drop, connection
/// processes included.
struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    host_key: KeyPair,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sshd {
    /// A server accepting `authorized` keys, passing `GIT_PROTOCOL` from
    /// clients to git when `git_protocol_env` (as forges do: protocol v2);
    /// stock OpenSSH does not (protocol v0).
    fn start(authorized: &[&KeyPair], git_protocol_env: bool) -> Self {
        // The free port may be taken before sshd binds it: another one then.
        for _ in 0..5 {
            if let Some(sshd) = Self::start_on(free_port(), authorized, git_protocol_env) {
                return sshd;
            }
        }
        panic!("sshd found no free port in 5 tries");
    }

    /// `None` if `port` is taken.
    fn start_on(port: u16, authorized: &[&KeyPair], git_protocol_env: bool) -> Option<Self> {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: apt-get install -y openssh-server (./test.sh does it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let host_key = KeyPair::generate(dir.path().join("host_ed25519"), "test-host");
        let authorized_keys = dir.path().join("authorized_keys");
        let keys: Vec<String> = authorized.iter().map(|k| k.public()).collect();
        std::fs::write(&authorized_keys, keys.join("\n") + "\n").unwrap();
        if is_root() {
            // sshd (as root) refuses to start without its privilege
            // separation directory, which systemd or the init script
            // create when the service starts: not in a container.
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        // `LogLevel DEBUG2` logs the environment a client asks for. (The
        // session process, logging to stderr like the rest with `-e`,
        // sends a debug line or two down the channel: ssh prints them.)
        let config = format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {host}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized}\n\
             StrictModes no\n\
             UsePAM no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             AllowUsers {user}\n\
             PrintMotd no\n\
             LogLevel DEBUG2\n\
             AcceptEnv {accept}\n",
            host = host_key.path.display(),
            pid = dir.path().join("sshd.pid").display(),
            authorized = authorized_keys.display(),
            user = user(),
            accept = if git_protocol_env {
                "GIT_PROTOCOL"
            } else {
                "LANG"
            },
        );
        // Written, then checked by sshd (`-t`).
        let config_file = dir.path().join("sshd_config");
        let check = |text: &str| {
            std::fs::write(&config_file, text).unwrap();
            Command::new(SSHD)
                .arg("-t")
                .arg("-f")
                .arg(&config_file)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        // OpenSSH 9.8 and later refuse connections for a while from an
        // address that failed to authenticate: off, these tests fail on
        // purpose and connect again. Older versions do not know the option.
        let penalties = format!("{config}PerSourcePenalties no\n");
        let config = if check(&penalties).status.success() {
            penalties
        } else {
            config
        };
        let checked = check(&config);
        assert!(
            checked.status.success(),
            "sshd rejects its configuration:\n{config}\n{}",
            String::from_utf8_lossy(&checked.stderr)
        );

        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("sshd starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        let mut sshd = Self {
            dir,
            child,
            port,
            host_key,
            log,
        };
        // Logged once listening (a test connection would be logged as a
        // failed one).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if sshd.logged("Server listening on 127.0.0.1") {
                break;
            }
            if let Some(status) = sshd.child.try_wait().unwrap() {
                if sshd.logged("Address already in use") {
                    return None;
                }
                panic!(
                    "sshd exited ({status}); config:\n{config}\nlog:\n{}",
                    sshd.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {port}; config:\n{config}\nlog:\n{}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(sshd)
    }

    /// `ssh://user@127.0.0.1:PORT/…/demo.git` for the upstream's bare
    /// repository (an absolute path on the server).
    fn url(&self, up: &Upstream) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/demo.git",
            user(),
            self.port,
            up.repos().display()
        )
    }

    /// A known_hosts file with `lines`, in the server's directory.
    fn known_hosts(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    /// The known_hosts line that vouches for this server.
    fn host_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key.host_entry())
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Whether a line with `needle` is logged within a few seconds: the
    /// log is read by a thread of its own, maybe behind the client.
    fn logs(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.logged(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }

    /// `Accepted publickey …` lines: authenticated sessions.
    fn accepted(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("Accepted publickey"))
            .cloned()
            .collect()
    }

    /// Live (not zombie) descendants of the listener: the processes it
    /// forks per connection, which start sessions of their own (out of
    /// the listener's process group) and rename themselves (`sshd: user
    /// [priv]`), and their children.
    fn connections(&self) -> Vec<u32> {
        // (pid, parent, alive) from /proc/<pid>/stat: `pid (comm) S ppid …`.
        let mut procs = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("");
            let Some(ppid) = fields.next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            procs.push((pid, ppid, state != "Z"));
        }
        let mut family = vec![self.child.id()];
        let mut live = Vec::new();
        while let Some(parent) = family.pop() {
            for (pid, ppid, alive) in &procs {
                if *ppid == parent {
                    family.push(*pid);
                    if *alive {
                        live.push(*pid);
                    }
                }
            }
        }
        live
    }
}

fn signal(target: &str, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Connection processes end with their connection (every client
        // is gone by now); waiting for them first lets the listener reap
        // them. Any left after a while are killed, by pid.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.connections();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for pid in left {
                    signal(&pid.to_string(), "-KILL");
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The listener's group (`process_group(0)`: its pid).
        if !signal(&format!("-{}", self.child.id()), "-TERM") {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn ssh_source(url: &str, cache: PathBuf, key: &KeyPair, known_hosts: &Path) -> GitSource {
    let mut config = GitSourceConfig::new(url, cache);
    config.auth = GitAuth::Ssh {
        key: key.path.clone(),
        known_hosts: Some(known_hosts.to_owned()),
    };
    GitSource::new(config).unwrap()
}

use support::{POLL_TIMEOUT, error_chain as chain, poll_timed as poll};

/// A poll that must fail, and fail at once: the error, printed with the
/// server's log, which is complete when this returns (the server logged
/// the connection's end), so tests can check what is not in it.
fn failed_poll(what: &str, source: &GitSource, sshd: &Sshd) -> SourceError {
    let (result, took) = poll(source, None);
    let error = match result {
        Ok(update) => panic!(
            "{what}: fetched {}; sshd log:\n{}",
            update.snapshot.revision(),
            sshd.log()
        ),
        Err(e) => e,
    };
    assert!(
        sshd.logs("Connection closed by"),
        "{what}: sshd log:\n{}",
        sshd.log()
    );
    println!(
        "{what}: failed after {took:?}:\n{}\nsshd log:\n{}\n",
        chain(&error),
        sshd.log()
    );
    assert!(
        took < QUICK,
        "{what}: took {took:?}; sshd log:\n{}",
        sshd.log()
    );
    error
}

/// Runs a command to completion with its output, killing it and failing
/// the test after [`POLL_TIMEOUT`].
fn output_within_timeout(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + POLL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command did not exit within {POLL_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: Vec::new(),
        stderr: reader.join().unwrap(),
    }
}

// ---------------------------------------------------------------------------
// The tests.

/// The configured key authenticates (sshd logs its fingerprint) and the
/// configured known_hosts file vouches for the server (the user running
/// the tests has no key or known_hosts entry for it: without
/// `core.sshCommand`, ssh would fail host key verification): a full first
/// poll returns the upstream's commit, a later one is incremental. Against
/// a server that passes `GIT_PROTOCOL` on to git (protocol v2, as forges
/// do) and one that does not (stock OpenSSH: gix falls back to v0).
#[test]
fn a_key_and_known_hosts_fetch_over_ssh_and_later_polls_are_incremental() {
    for git_protocol_env in [true, false] {
        println!("--- server passes GIT_PROTOCOL on: {git_protocol_env}");
        let up = Upstream::new(&[("controlplanes/a.yaml", &cp("ssh-a"))]);
        let keys = tempfile::tempdir().unwrap();
        let client = KeyPair::generate(keys.path().join("id_ed25519"), "reconciler");
        assert_eq!(
            std::fs::metadata(&client.path)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let sshd = Sshd::start(&[&client], git_protocol_env);
        let known_hosts = sshd.known_hosts("known_hosts", &[sshd.host_line()]);
        let url = sshd.url(&up);
        println!("url: {url}");
        let source = ssh_source(&url, up.cache().join("ssh"), &client, &known_hosts);

        let (first, took) = poll(&source, None);
        let first = first.unwrap_or_else(|e| {
            panic!(
                "first poll failed: {}\nsshd log:\n{}",
                chain(&e),
                sshd.log()
            )
        });
        println!("first poll took {took:?}");
        assert_eq!(
            first.snapshot.revision(),
            git(&up.work(), &["rev-parse", "HEAD"])
        );
        assert_eq!(first.changes, Changes::Full);
        assert_eq!(
            first.snapshot.read("controlplanes/a.yaml", 4096).unwrap(),
            cp("ssh-a").as_bytes()
        );
        // The configured key, and nothing else, logged in, and ran a
        // command (git-upload-pack: nothing else serves the repository).
        assert!(sshd.logs("Accepted publickey"), "sshd log:\n{}", sshd.log());
        let accepted = sshd.accepted();
        println!("{}", accepted.join("\n"));
        assert_eq!(accepted.len(), 1, "sshd log:\n{}", sshd.log());
        let fingerprint = client.fingerprint();
        assert!(
            accepted[0].contains(&fingerprint) && accepted[0].contains(&format!("for {} ", user())),
            "accepted {accepted:?}, expected key {fingerprint}"
        );
        assert!(
            sshd.logs(&format!("Starting session: command for {} ", user())),
            "sshd log:\n{}",
            sshd.log()
        );
        // gix asked for protocol v2 through ssh's environment; the server
        // passed it on or not, as configured (logged before the session).
        let passed = sshd.logged("GIT_PROTOCOL=version=2");
        let ignored = sshd.logged("Ignoring env request GIT_PROTOCOL");
        assert_eq!(
            (passed, ignored),
            (git_protocol_env, !git_protocol_env),
            "sshd log:\n{}",
            sshd.log()
        );

        sshd.clear_log();
        let second_commit = up.commit(&[("controlplanes/b.yaml", &cp("ssh-b"))], &[], "add b");
        let (second, took) = poll(&source, Some(first.snapshot.revision()));
        let second = second.unwrap_or_else(|e| {
            panic!(
                "second poll failed: {}\nsshd log:\n{}",
                chain(&e),
                sshd.log()
            )
        });
        println!("second poll took {took:?}");
        assert_eq!(second.snapshot.revision(), second_commit);
        assert_eq!(
            second.changes,
            Changes::Paths(vec![Change {
                path: "controlplanes/b.yaml".to_owned(),
                kind: ChangeKind::Added,
            }])
        );
        assert!(
            sshd.logs("Accepted publickey")
                && sshd.accepted().iter().any(|l| l.contains(&fingerprint)),
            "the second poll went through the server too; sshd log:\n{}",
            sshd.log()
        );
    }
}

/// Strict host key checking: a known_hosts file naming a different key
/// for `[127.0.0.1]:PORT` fails the poll, and so does one that does not
/// name this server at all (only its key for another port, and for another
/// host): no trust on first use, the file is left as it was, and a second
/// poll fails the same way. The client gives up before authenticating:
/// the server sees no authentication request, let alone a session. The
/// error says why, in ssh's words.
#[test]
fn host_keys_are_checked_strictly() {
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("ssh-a"))]);
    let keys = tempfile::tempdir().unwrap();
    let client = KeyPair::generate(keys.path().join("id_ed25519"), "reconciler");
    let impostor = KeyPair::generate(keys.path().join("impostor_host"), "impostor");
    let sshd = Sshd::start(&[&client], true);
    let url = sshd.url(&up);

    // Another key for this host and port.
    let wrong = sshd.known_hosts(
        "known_hosts.wrong",
        &[format!(
            "[127.0.0.1]:{} {}",
            sshd.port,
            impostor.host_entry()
        )],
    );
    let source = ssh_source(&url, up.cache().join("wrong"), &client, &wrong);
    let error = failed_poll("a different host key", &source, &sshd);
    assert_says(&error, &[&url, "Host key verification failed"]);
    assert_unauthenticated(&sshd);

    // The host not listed.
    sshd.clear_log();
    let unlisted_lines = [
        format!(
            "[127.0.0.1]:{} {}",
            free_port_other_than(sshd.port),
            sshd.host_key.host_entry()
        ),
        format!("git.example.com {}", sshd.host_key.host_entry()),
    ];
    let unlisted = sshd.known_hosts("known_hosts.unlisted", &unlisted_lines);
    let before = std::fs::read(&unlisted).unwrap();
    let source = ssh_source(&url, up.cache().join("unlisted"), &client, &unlisted);
    let error = failed_poll("an unlisted host", &source, &sshd);
    assert_says(&error, &[&url, "Host key verification failed"]);
    assert_unauthenticated(&sshd);
    assert_eq!(
        std::fs::read(&unlisted).unwrap(),
        before,
        "the known_hosts file was written to (trust on first use)"
    );
    sshd.clear_log();
    let error = failed_poll("an unlisted host, again", &source, &sshd);
    assert_says(&error, &["Host key verification failed"]);
    assert_unauthenticated(&sshd);
}

/// The server saw no authentication request (so no key was offered).
fn assert_unauthenticated(sshd: &Sshd) {
    assert!(
        sshd.accepted().is_empty() && !sshd.logged("userauth-request"),
        "the client authenticated to a server it does not trust; sshd log:\n{}",
        sshd.log()
    );
}

fn free_port_other_than(port: u16) -> u16 {
    loop {
        let other = free_port();
        if other != port {
            return other;
        }
    }
}

/// A key the server does not know fails at once (`BatchMode`: no prompt
/// to wait on) with ssh's `Permission denied (publickey)`; so does the
/// right key in a file others can read (ssh ignores such a key: what
/// happens to a Kubernetes Secret mounted with the default mode 0644), and
/// the error says so. The server authenticates nobody. Protected again,
/// the key works: the failures were the key's.
#[test]
fn an_unknown_or_unprotected_key_fails_at_once() {
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("ssh-a"))]);
    let keys = tempfile::tempdir().unwrap();
    let client = KeyPair::generate(keys.path().join("id_ed25519"), "reconciler");
    let stranger = KeyPair::generate(keys.path().join("stranger"), "stranger");
    let sshd = Sshd::start(&[&client], true);
    let url = sshd.url(&up);
    let known_hosts = sshd.known_hosts("known_hosts", &[sshd.host_line()]);

    let source = ssh_source(&url, up.cache().join("stranger"), &stranger, &known_hosts);
    let error = failed_poll("an unknown key", &source, &sshd);
    assert_says(&error, &[&url, "Permission denied (publickey)"]);
    assert!(sshd.accepted().is_empty(), "sshd log:\n{}", sshd.log());
    // The stranger's key was offered, and refused.
    let refused = format!("Failed publickey for {} ", user());
    assert!(
        sshd.logs(&refused) && sshd.logged(&stranger.fingerprint()),
        "sshd log:\n{}",
        sshd.log()
    );

    sshd.clear_log();
    std::fs::set_permissions(&client.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let source = ssh_source(&url, up.cache().join("unprotected"), &client, &known_hosts);
    let error = failed_poll("a key file others can read", &source, &sshd);
    assert_says(
        &error,
        &["bad permissions", "Permission denied (publickey)"],
    );
    assert!(sshd.accepted().is_empty(), "sshd log:\n{}", sshd.log());

    sshd.clear_log();
    std::fs::set_permissions(&client.path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (result, _) = poll(&source, None);
    let update =
        result.unwrap_or_else(|e| panic!("poll failed: {}\nsshd log:\n{}", chain(&e), sshd.log()));
    assert_eq!(
        update.snapshot.revision(),
        git(&up.work(), &["rev-parse", "HEAD"])
    );
}

/// The error's text (with its sources) contains every one of `needles`.
fn assert_says(error: &SourceError, needles: &[&str]) {
    let text = chain(error);
    for needle in needles {
        assert!(
            text.contains(needle),
            "the error does not say {needle:?}:\n{text}"
        );
    }
}

/// The binary: `--git-url ssh://… --ssh-key K --ssh-known-hosts F --once`
/// applies the repository (exit 0); a key the server does not know, or a
/// known_hosts file with another host key, exits 1 and applies nothing,
/// with ssh's reason in the log and in the Sync status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_fetches_over_ssh_with_a_key_and_known_hosts() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("ssh-bin-a"))]);
    let keys = tempfile::tempdir().unwrap();
    let client = KeyPair::generate(keys.path().join("id_ed25519"), "reconciler");
    let stranger = KeyPair::generate(keys.path().join("stranger"), "stranger");
    let impostor = KeyPair::generate(keys.path().join("impostor_host"), "impostor");
    let sshd = Sshd::start(&[&client], true);
    let url = sshd.url(&up);
    let known_hosts = sshd.known_hosts("known_hosts", &[sshd.host_line()]);
    let wrong_hosts = sshd.known_hosts(
        "known_hosts.wrong",
        &[format!(
            "[127.0.0.1]:{} {}",
            sshd.port,
            impostor.host_entry()
        )],
    );
    let command = |name: &str, key: &KeyPair, known_hosts: &Path| {
        let mut cmd = reconciler_command(&cluster, name);
        cmd.args(["--git-url", &url, "--once"])
            .arg("--cache-dir")
            .arg(up.cache().join(name))
            .arg("--ssh-key")
            .arg(&key.path)
            .arg("--ssh-known-hosts")
            .arg(known_hosts)
            .env("NO_COLOR", "1");
        cmd
    };
    let run = |cmd: Command| async move {
        tokio::task::spawn_blocking(move || output_within_timeout(cmd))
            .await
            .unwrap()
    };
    // The Ready condition of a failed run's Sync: its message.
    let fetch_failed = async |name: &str| {
        let status = cluster.sync(name).await.unwrap().status.unwrap();
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap_or_else(|| panic!("no Ready condition: {:?}", status.conditions));
        assert_eq!(ready.status, "False", "{ready:?}");
        assert_eq!(ready.reason, "FetchFailed", "{ready:?}");
        println!("Ready condition message: {}", ready.message);
        ready.message.clone()
    };

    for (name, key, hosts, reason) in [
        (
            "ssh-stranger",
            &stranger,
            &known_hosts,
            "Permission denied (publickey)",
        ),
        (
            "ssh-impostor",
            &client,
            &wrong_hosts,
            "Host key verification failed",
        ),
    ] {
        sshd.clear_log();
        let out = run(command(name, key, hosts)).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        println!("{name}, stderr:\n{stderr}sshd log:\n{}\n", sshd.log());
        assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
        assert!(stderr.contains(&url), "stderr:\n{stderr}");
        assert!(stderr.contains(reason), "stderr:\n{stderr}");
        assert!(cluster.cp("ssh-bin-a").await.is_none());
        assert!(
            sshd.logs("Connection closed by") && sshd.accepted().is_empty(),
            "sshd log:\n{}",
            sshd.log()
        );
        let message = fetch_failed(name).await;
        assert!(message.contains(reason), "{message}");
    }

    // The right key and host key: applied.
    sshd.clear_log();
    let out = run(command("ssh-good", &client, &known_hosts)).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("ssh-good, stderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(cluster.cp("ssh-bin-a").await.is_some());
    let fingerprint = client.fingerprint();
    assert!(
        sshd.logs("Accepted publickey") && sshd.accepted().iter().any(|l| l.contains(&fingerprint)),
        "sshd log:\n{}",
        sshd.log()
    );
}
