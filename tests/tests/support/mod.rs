//! Shared test harness: a testenv on its own runtime thread, and the real
//! kubectl pointed at it with a private cache and HOME (the dispatcher and
//! discovery caches must not leak between servers).
#![allow(dead_code, clippy::unwrap_used)] // a test harness: failing loudly is its job

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kubeflex_testenv::{Builder, TestEnv};

pub struct Cluster {
    pub env: Option<TestEnv>,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(TestEnv::builder())
    }

    pub fn start_with(builder: Builder) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let env = rt.block_on(builder.start()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, env.kubeconfig()).unwrap();
        Self {
            env: Some(env),
            rt,
            dir,
            kubeconfig,
        }
    }

    pub fn env(&self) -> &TestEnv {
        self.env.as_ref().unwrap()
    }

    fn command(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG");
        cmd
    }

    /// Runs kubectl with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.command(&self.kubeconfig, args).output().unwrap()
    }

    /// Runs kubectl with another kubeconfig file.
    pub fn kubectl_as(&self, kubeconfig: &std::path::Path, args: &[&str]) -> Output {
        self.command(kubeconfig, args).output().unwrap()
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded unexpectedly:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs kubectl with `input` on stdin.
    pub fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        self.kubectl_as_with_stdin(&self.kubeconfig, args, input)
    }

    /// `kubectl apply -f -` that must succeed.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let out = self.with_stdin(&args, yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/name` with a
    /// TokenRequest token, its context defaulting to `namespace`.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self.ok(&["create", "token", name, "-n", namespace]);
        let admin: serde_json::Value = serde_saphyr::from_str(self.env().kubeconfig()).unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let server = cluster["server"].as_str().unwrap();
        let ca = cluster["certificate-authority-data"].as_str().unwrap();
        self.kubeconfig_file(
            &format!("sa-{namespace}-{name}"),
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: t\n  context: {{cluster: t, user: {name}, namespace: {namespace}}}\ncurrent-context: t\n",
                token.trim()
            ),
        )
    }

    /// Runs kubectl with another kubeconfig and `input` on stdin.
    pub fn kubectl_as_with_stdin(
        &self,
        kubeconfig: &std::path::Path,
        args: &[&str],
        input: &str,
    ) -> Output {
        let mut child = self
            .command(kubeconfig, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn client(&self) -> kube::Client {
        self.rt.block_on(self.env().client()).unwrap()
    }

    /// Writes another user's kubeconfig and returns its path.
    pub fn kubeconfig_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// Polls `f` until it returns true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}
