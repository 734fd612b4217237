//! The exact SQL the provisioning and teardown Jobs run, against a real,
//! throwaway PostgreSQL (initdb + pg_ctl from Debian's `postgresql`
//! package, temp dir, free loopback port), through the Jobs' own command
//! and environment (`psql` reading the script from `$SQL`, the role's
//! password via `\getenv ROLE_PASSWORD`). Skipped with a message when the
//! server binaries are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubeflex_operator::api::{ControlPlane, ControlPlaneSpec, ControlPlaneType};
use kubeflex_operator::builders::postgres::{DbJob, database_for, job};
use kubeflex_operator::config::{DatabaseServer, OperatorConfig, SecretKey, SharedPostgres};

const ADMIN_PASSWORD: &str = "admin-pw-for-tests";

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

struct Server {
    dir: tempfile::TempDir,
    port: u16,
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

fn start() -> Option<Server> {
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

fn config(port: u16) -> OperatorConfig {
    let mut cfg = OperatorConfig::default();
    cfg.postgres.shared = SharedPostgres::Existing(DatabaseServer {
        host: "127.0.0.1".into(),
        port,
        admin_user: "postgres".into(),
        admin_secret: SecretKey {
            namespace: "kubeflex-system".into(),
            name: "pg".into(),
            key: "password".into(),
        },
    });
    cfg
}

fn cp(name: &str) -> ControlPlane {
    let mut cp = ControlPlane::new(
        name,
        ControlPlaneSpec {
            type_: ControlPlaneType::K8s,
            ..ControlPlaneSpec::default()
        },
    );
    cp.metadata.uid = Some(format!("uid-{name}"));
    cp
}

/// Runs the Job's container command with its environment, the Secret
/// references resolved as the kubelet would.
fn run_job(cfg: &OperatorConfig, name: &str, which: DbJob, role_password: &str) -> Output {
    let j = job(&cp(name), &database_for(&cp(name), cfg), cfg, which).unwrap();
    let c = &j.spec.unwrap().template.spec.unwrap().containers[0];
    let command = c.command.clone().unwrap();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for e in c.env.clone().unwrap() {
        let value = match (
            &e.value,
            e.value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref()),
        ) {
            (Some(v), _) => v.clone(),
            (None, Some(r)) if e.name == "PGPASSWORD" => {
                assert_eq!(r.name, "pg");
                ADMIN_PASSWORD.into()
            }
            (None, Some(_)) => role_password.into(),
            _ => panic!("env {} has no value", e.name),
        };
        cmd.env(&e.name, value);
    }
    cmd.output().unwrap()
}

fn psql(port: u16, user: &str, password: &str, db: &str, sql: &str) -> Output {
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

fn catalog(port: u16) -> String {
    let out = psql(
        port,
        "postgres",
        ADMIN_PASSWORD,
        "postgres",
        "SELECT string_agg(r.rolname || ':' || r.rolsuper || r.rolcreatedb || r.rolcanlogin, ',' ORDER BY r.rolname) || '|' || (SELECT string_agg(d.datname || ':' || pg_get_userbyid(d.datdba) || ':' || coalesce(d.datacl::text, ''), ',' ORDER BY d.datname) FROM pg_database d) FROM pg_roles r WHERE r.rolname LIKE 'tenant%'",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn provisioning_sql_isolates_tenants_is_idempotent_and_teardown_drops_both() {
    let server = start().expect(
        "PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb): \
         apt-get install -y postgresql, or run ./test.sh",
    );
    let cfg = config(server.port);
    let (pw_a, pw_b) = ("tenant-a-password-1", "tenant-b-password-2");
    for (name, pw) in [("tenant-a", pw_a), ("tenant-b", pw_b)] {
        let out = run_job(&cfg, name, DbJob::Provision, pw);
        assert!(
            out.status.success(),
            "provision {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A's role works in A's database...
    let out = psql(
        server.port,
        "tenant_a",
        pw_a,
        "tenant_a",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1); SELECT count(*) FROM t",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and cannot even connect to B's.
    let out = psql(server.port, "tenant_a", pw_a, "tenant_b", "SELECT 1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A role without superuser or createdb.
    let before = catalog(server.port);
    assert!(before.contains("tenant_a:falsefalsetrue"), "{before}");
    // Provisioning twice changes nothing.
    let out = run_job(&cfg, "tenant-a", DbJob::Provision, pw_a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(catalog(server.port), before);
    // The data survives a second provisioning.
    let out = psql(
        server.port,
        "tenant_a",
        pw_a,
        "tenant_a",
        "SELECT count(*) FROM t",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // Teardown drops database and role, even with a session open; twice is fine.
    for _ in 0..2 {
        let out = run_job(&cfg, "tenant-a", DbJob::Teardown, "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = catalog(server.port);
    assert!(!after.contains("tenant_a"), "{after}");
    assert!(after.contains("tenant_b"), "{after}");
}
