//! `kflex dev` as a user runs it: the real binary on a copy of
//! `repo-template/`, checked with the real `kubectl` through the kubeconfig
//! it prints, across an edit, a broken file, a restart and a Ctrl-C; a
//! SIGKILL, a saved port taken meanwhile, and `--git-url` mode over a real
//! `git daemon`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "gitsupport/mod.rs"]
mod gitsupport;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `kflex dev` and everything it printed so far.
struct Dev {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Dev {
    fn start(home: &Path, dir: &Path) -> Self {
        Self::start_with(home, dir, &[])
    }

    /// `kflex dev DIR ARGS…`.
    fn start_with(home: &Path, dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kflex"))
            .arg("dev")
            .arg(dir)
            .args(args)
            .env("HOME", home)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = gitsupport::env::collect_lines(&mut child);
        Self { child, lines }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for a line matching `re`; returns it.
    fn wait_line(&mut self, re: &str, timeout: Duration) -> String {
        let re = regex::Regex::new(re).unwrap();
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| re.is_match(l)) {
                return l.clone();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "kflex dev exited ({status}) before printing /{re}/:\n{}",
                    self.output()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "no line /{re}/ within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The exit status, once it exited by itself (within `timeout`).
    fn wait_exit(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.output());
            }
            assert!(
                start.elapsed() < timeout,
                "kflex dev still running after {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no clean stop, the lease and the files stay as they were.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGINT, then the exit status within a few seconds.
    fn interrupt(mut self) -> (std::process::ExitStatus, u32, String) {
        let pid = self.child.id();
        let kill = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers drain the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, pid, self.output());
            }
            assert!(
                start.elapsed() < Duration::from_secs(8),
                "kflex dev still running 8 s after SIGINT:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        // A developer's own run of the template leaves .kflex/ behind.
        if name == ".kflex" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The real kubectl with `KUBECONFIG=kubeconfig` only: no --server, no
/// --kubeconfig, no TLS overrides.
fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--cache-dir")
        .arg(home.join("kubectl-cache"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .unwrap()
}

/// `kubectl --context NAME get ns` through the kubeconfig alone lists the
/// tenant's namespaces.
#[track_caller]
fn tenant_answers(home: &Path, kubeconfig: &Path, name: &str) {
    let ns = ok(&kubectl(
        home,
        kubeconfig,
        &["--context", name, "get", "ns", "-o", "name"],
    ));
    assert!(ns.contains("namespace/default"), "{name}: {ns}");
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kubectl failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn yaml(path: &Path) -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Field `field` of cluster `name` in the kubeconfig.
fn cluster_field(kubeconfig: &Path, name: &str, field: &str) -> String {
    yaml(kubeconfig)["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["cluster"][field].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no cluster {name} in the kubeconfig"))
}

/// `certificate-authority-data` of cluster `name` in the kubeconfig.
fn ca_of(kubeconfig: &Path, name: &str) -> String {
    cluster_field(kubeconfig, name, "certificate-authority-data")
}

/// `server` of cluster `name` in the kubeconfig.
fn server_of(kubeconfig: &Path, name: &str) -> String {
    cluster_field(kubeconfig, name, "server")
}

fn template_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("controlplanes"))
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            v["metadata"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    names.sort();
    names
}

fn api_port(out: &str) -> u16 {
    let re = regex::Regex::new(r"API server\s+https://127\.0\.0\.1:(\d+)").unwrap();
    re.captures(out).unwrap()[1].parse().unwrap()
}

fn assert_gone(pid: u32, port: u16) {
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} is still there"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still answers after the stop"
    );
}

#[test]
fn dev_runs_the_template_survives_edits_and_restarts_and_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let repo: PathBuf = home.join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../repo-template"),
        &repo,
    );
    let mut expected = template_names(&repo);
    let kc = repo.join(".kflex/kubeconfig");

    let mut dev = Dev::start(home, &repo);
    dev.wait_line(r"SIMULATION", Duration::from_secs(30));
    let printed = dev.wait_line(r"kubeconfig\s+/", Duration::from_secs(30));
    assert!(printed.contains(&kc.display().to_string()), "{printed}");
    dev.wait_line(
        r"^hosting context usable after \d+ ms",
        Duration::from_secs(30),
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(repo.join(".kflex/.gitignore")).unwrap(),
        "*\n"
    );

    let all = format!(r"all {} control planes Ready after", expected.len());
    dev.wait_line(&all, Duration::from_secs(300));
    for name in &expected {
        let line = dev.wait_line(&format!(r"context {name} added"), Duration::from_secs(30));
        // Every context kflex dev says to use works as said; one whose
        // server name needs DNS (vcluster's, while its kubeconfig names the
        // host) is announced as such, never with a hint that fails.
        if line.ends_with(&format!("added: kubectl --context {name} get ns")) {
            ok(&kubectl(home, &kc, &["--context", name, "get", "ns"]));
        } else {
            assert!(line.contains("does not resolve here"), "{line}");
            let server = server_of(&kc, &format!("{name}-cluster"));
            assert!(line.contains(&server), "{line} / {server}");
        }
    }
    // The hosting context, from the kubeconfig alone.
    let cps = ok(&kubectl(home, &kc, &["get", "controlplanes", "-o", "name"]));
    for name in &expected {
        assert!(
            cps.contains(&format!(
                "controlplane.tenancy.kflex.kubestellar.org/{name}"
            )),
            "{cps}"
        );
    }
    let current = ok(&kubectl(home, &kc, &["config", "current-context"]));
    assert_eq!(current.trim(), "kflex-dev");
    // A tenant, by --context only.
    tenant_answers(home, &kc, "cp1");
    let cp1_uid = ok(&kubectl(
        home,
        &kc,
        &["get", "cp", "cp1", "-o", "jsonpath={.metadata.uid}"],
    ));
    let cp1_ca = ca_of(&kc, "cp1-cluster");

    // A new spec file: its control plane appears and gets a context.
    std::fs::write(
        repo.join("controlplanes/cp2.yaml"),
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp2\nspec:\n  type: k8s\n  backend: shared\n",
    )
    .unwrap();
    dev.wait_line(r"controlplane cp2 .*\(new\)", Duration::from_secs(30));
    dev.wait_line(r"context cp2 added", Duration::from_secs(120));
    ok(&kubectl(home, &kc, &["--context", "cp2", "get", "ns"]));
    expected.push("cp2".into());
    expected.sort();

    // A broken file: its error line with path:line:column, nothing removed.
    std::fs::write(
        repo.join("controlplanes/cp2.yaml"),
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp2\nspec:\n  type: [k8s\n",
    )
    .unwrap();
    dev.wait_line(r"controlplanes/cp2\.yaml:\d+:\d+", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    let cps = ok(&kubectl(home, &kc, &["get", "controlplanes", "-o", "name"]));
    for name in &expected {
        assert!(
            cps.contains(&format!("/{name}\n")),
            "{name} was removed: {cps}"
        );
    }
    assert!(!dev.output().contains("removed"), "{}", dev.output());

    let (status, pid, out) = dev.interrupt();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(out.contains("kflex dev: stopped"), "{out}");
    let port = api_port(&out);
    assert_gone(pid, port);

    // Restart on the same state: same ports, tenants, certificates.
    let mut dev = Dev::start(home, &repo);
    dev.wait_line(r"^hosting context usable", Duration::from_secs(30));
    assert_eq!(api_port(&dev.output()), port, "the API port was not reused");
    dev.wait_line(
        &format!(r"all {} control planes Ready after", expected.len()),
        Duration::from_secs(300),
    );
    let uid = ok(&kubectl(
        home,
        &kc,
        &["get", "cp", "cp1", "-o", "jsonpath={.metadata.uid}"],
    ));
    assert_eq!(uid, cp1_uid, "cp1 was re-created");
    assert_eq!(
        ca_of(&kc, "cp1-cluster"),
        cp1_ca,
        "cp1's certificates changed"
    );
    ok(&kubectl(home, &kc, &["--context", "cp1", "get", "ns"]));
    let cps = ok(&kubectl(home, &kc, &["get", "controlplanes", "-o", "name"]));
    for name in &expected {
        assert!(
            cps.contains(&format!("/{name}\n")),
            "{name} lost in the restart: {cps}"
        );
    }

    let (status, pid, out) = dev.interrupt();
    assert_eq!(status.code(), Some(0), "{out}");
    assert_gone(pid, port);
}

/// A k8s control plane spec.
fn spec(name: &str) -> String {
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n  type: k8s\n  backend: shared\n"
    )
}

/// A directory with one k8s control plane, `cp1`.
fn one_cp(home: &Path) -> PathBuf {
    let repo = home.join("repo");
    std::fs::create_dir_all(repo.join("controlplanes")).unwrap();
    std::fs::write(repo.join("controlplanes/cp1.yaml"), spec("cp1")).unwrap();
    repo
}

/// `name holder transitions` of every Lease in kubeflex-system.
fn leases(home: &Path, kc: &Path) -> String {
    ok(&kubectl(
        home,
        kc,
        &[
            "get",
            "leases",
            "-n",
            "kubeflex-system",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.spec.holderIdentity} {.spec.leaseTransitions}{"\n"}{end}"#,
        ],
    ))
}

#[test]
fn dev_after_a_sigkill_takes_its_own_lease_back_and_rechecks_before_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let repo = one_cp(home);
    let kc = repo.join(".kflex/kubeconfig");

    let mut dev = Dev::start(home, &repo);
    dev.wait_line(
        r"all 1 control planes Ready after",
        Duration::from_secs(120),
    );
    dev.wait_line(r"context cp1 added", Duration::from_secs(30));
    // The reconciler holds its lease in the shipped namespace, as the
    // identity kept in the state directory.
    let before = leases(home, &kc);
    let identity = std::fs::read_to_string(repo.join(".kflex/state/identity")).unwrap();
    assert!(
        before.contains(&format!(" {} 0\n", identity.trim())),
        "lease {before:?} not held by {identity:?}"
    );
    dev.kill();

    let mut dev = Dev::start(home, &repo);
    // The stored Ready is shown as "checking" until this run's operator
    // looked again, and only then as Ready.
    let first = dev.wait_line(r"controlplane cp1 ", Duration::from_secs(30));
    assert!(
        first.ends_with("controlplane cp1 type=k8s synced=True ready=checking (new)"),
        "{first}\n{}",
        dev.output()
    );
    dev.wait_line(
        r"controlplane cp1 type=k8s synced=True ready=True$",
        Duration::from_secs(60),
    );
    dev.wait_line(r"all 1 control planes Ready after", Duration::from_secs(60));
    // The same holder took the lease back: no transition, no wait for the
    // killed run's lease to expire.
    assert_eq!(leases(home, &kc), before);
    // And its reconciler acts.
    std::fs::write(repo.join("controlplanes/cp2.yaml"), spec("cp2")).unwrap();
    dev.wait_line(r"controlplane cp2 .*\(new\)", Duration::from_secs(30));
    dev.wait_line(r"context cp2 added", Duration::from_secs(120));
    let (status, _, out) = dev.interrupt();
    assert_eq!(status.code(), Some(0), "{out}");
}

#[test]
fn dev_moves_off_a_taken_saved_port_and_refuses_a_pinned_one() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let repo = one_cp(home);
    let kc = repo.join(".kflex/kubeconfig");

    let mut dev = Dev::start(home, &repo);
    dev.wait_line(r"context cp1 added", Duration::from_secs(120));
    let old_server = server_of(&kc, "cp1-cluster");
    let (status, _, out) = dev.interrupt();
    assert_eq!(status.code(), Some(0), "{out}");
    let re = regex::Regex::new(r"ingress\s+127\.0\.0\.1:(\d+)").unwrap();
    let ingress: u16 = re.captures(&out).unwrap()[1].parse().unwrap();
    assert!(old_server.ends_with(&format!(":{ingress}")), "{old_server}");

    // Another program takes the saved ingress port meanwhile.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", ingress)).unwrap();
    let mut dev = Dev::start(home, &repo);
    let notice = dev.wait_line(r"saved ingress port", Duration::from_secs(30));
    assert!(
        notice.contains(&format!("saved ingress port {ingress} is taken")),
        "{notice}"
    );
    dev.wait_line(r"context cp1 added", Duration::from_secs(120));
    let new_server = server_of(&kc, "cp1-cluster");
    assert_ne!(
        new_server, old_server,
        "the kubeconfig still names the taken port"
    );
    tenant_answers(home, &kc, "cp1");
    let (status, _, out) = dev.interrupt();
    assert_eq!(status.code(), Some(0), "{out}");

    // Pinned to the taken port: a clear error naming the flag, exit 1.
    let port = ingress.to_string();
    let dev = Dev::start_with(home, &repo, &["--ingress-port", &port]);
    let (status, out) = dev.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("--ingress-port {ingress}: the port is not free")),
        "{out}"
    );
    drop(squatter);
}

#[test]
fn dev_follows_a_git_repository_to_a_ready_control_plane_with_a_context() {
    use gitsupport::git;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let gitsupport::Upstream {
        daemon: _daemon,
        work,
        url,
    } = gitsupport::upstream(home);

    // kflex dev's own directory holds only .kflex/; the specs come from Git.
    let dir = home.join("dev");
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join(".kflex/kubeconfig");
    let mut dev = Dev::start_with(home, &dir, &["--git-url", &url, "--ref", "main"]);
    let source = dev.wait_line(r"^\s+source\s", Duration::from_secs(30));
    assert!(source.contains(&url), "{source}");

    std::fs::create_dir_all(work.join("controlplanes")).unwrap();
    std::fs::write(work.join("controlplanes/cp1.yaml"), spec("cp1")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "cp1"]);
    git(&work, &["push", "-q", "origin", "main"]);

    dev.wait_line(r"controlplane cp1 .*\(new\)", Duration::from_secs(60));
    dev.wait_line(
        r"all 1 control planes Ready after",
        Duration::from_secs(120),
    );
    dev.wait_line(
        r"context cp1 added: kubectl --context cp1 get ns",
        Duration::from_secs(30),
    );
    tenant_answers(home, &kc, "cp1");
    let path = ok(&kubectl(
        home,
        &kc,
        &[
            "get",
            "cp",
            "cp1",
            "-o",
            r"jsonpath={.metadata.annotations.gitops\.kflex\.kubestellar\.org/path}",
        ],
    ));
    assert_eq!(path, "controlplanes/cp1.yaml");
    let (status, _, out) = dev.interrupt();
    assert_eq!(status.code(), Some(0), "{out}");
}
