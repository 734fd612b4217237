//! `kflex dev` as a user runs it: the real binary on a copy of
//! `repo-template/`, checked with the real `kubectl` through the kubeconfig
//! it prints, across an edit, a broken file, a restart and a Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_kflex"))
            .arg("dev")
            .arg(dir)
            .env("HOME", home)
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    lines.lock().unwrap().push(line);
                }
            });
        }
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

/// `certificate-authority-data` of cluster `name` in the kubeconfig.
fn ca_of(kubeconfig: &Path, name: &str) -> String {
    yaml(kubeconfig)["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| {
            c["cluster"]["certificate-authority-data"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .unwrap_or_else(|| panic!("no cluster {name} in the kubeconfig"))
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
        dev.wait_line(&format!(r"context {name} added"), Duration::from_secs(30));
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
    let ns = ok(&kubectl(
        home,
        &kc,
        &["--context", "cp1", "get", "ns", "-o", "name"],
    ));
    assert!(ns.contains("namespace/default"), "{ns}");
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
