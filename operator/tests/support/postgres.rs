//! A real, throwaway PostgreSQL for the operator's tests (postgres_sql.rs,
//! chart.rs): initdb + pg_ctl from Debian's `postgresql` package in a temp
//! dir on a free loopback port, password auth over TCP; and `psql` against
//! it. Stopped when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // a test helper: failing loudly is its job

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What to say when the server binaries are missing.
pub const MISSING: &str = "PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb): \
         apt-get install -y postgresql, or run ./test.sh";

pub const ADMIN_PASSWORD: &str = "admin-pw-for-tests";

fn bin(name: &str) -> Option<PathBuf> {
    let dirs = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    let mut found: Vec<PathBuf> = dirs
        .flatten()
        .map(|d| d.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}

/// Runs `cmd` as user postgres when we are root (initdb refuses root).
fn as_postgres(program: &Path, args: &[&str]) -> Output {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).output().unwrap()
}

pub struct Server {
    dir: tempfile::TempDir,
    pub port: u16,
    pg_ctl: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        as_postgres(
            &self.pg_ctl,
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}

pub fn start() -> Option<Server> {
    let (initdb, pg_ctl) = (bin("initdb")?, bin("pg_ctl")?);
    let dir = tempfile::tempdir().unwrap();
    Command::new("chmod")
        .args(["755"])
        .arg(dir.path())
        .status()
        .unwrap();
    Command::new("chown")
        .args(["postgres:postgres"])
        .arg(dir.path())
        .status()
        .ok();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, ADMIN_PASSWORD).unwrap();
    Command::new("chown")
        .args(["postgres:postgres"])
        .arg(&pwfile)
        .status()
        .ok();
    let data = dir.path().join("data");
    let out = as_postgres(
        &initdb,
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--pwfile",
            pwfile.to_str().unwrap(),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ],
    );
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1",
        dir.path().display()
    );
    let log = dir.path().join("log");
    let out = as_postgres(
        &pg_ctl,
        &[
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ],
    );
    assert!(
        out.status.success(),
        "pg_ctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Server { dir, port, pg_ctl })
}

pub fn psql(port: u16, user: &str, password: &str, db: &str, sql: &str) -> Output {
    Command::new("psql")
        .args([
            "--no-psqlrc",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            db,
            "-tA",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env_remove("PGHOST")
        .output()
        .unwrap()
}
