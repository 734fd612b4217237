//! The exact SQL the provisioning and teardown Jobs run, against a real,
//! throwaway PostgreSQL (initdb + pg_ctl from Debian's `postgresql`
//! package, temp dir, free loopback port), through the Jobs' own command
//! and environment (`psql` reading the script from `$SQL`, the role's
//! password via `\getenv ROLE_PASSWORD`). Skipped with a message when the
//! server binaries are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use kubeflex_operator::api::{ControlPlane, ControlPlaneSpec, ControlPlaneType};
use kubeflex_operator::builders::postgres::{DbJob, database_for, job};
use kubeflex_operator::config::{DatabaseServer, OperatorConfig, SecretKey, SharedPostgres};

#[path = "support/postgres.rs"]
mod postgres;
use postgres::{ADMIN_PASSWORD, psql, start};

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
    run_job_of(cfg, &cp(name), which, role_password)
}

fn run_job_of(
    cfg: &OperatorConfig,
    cp: &ControlPlane,
    which: DbJob,
    role_password: &str,
) -> Output {
    let j = job(cp, &database_for(cp, cfg), cfg, which).unwrap();
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

fn catalog(port: u16) -> String {
    let out = psql(
        port,
        "postgres",
        ADMIN_PASSWORD,
        "postgres",
        "SELECT string_agg(r.rolname || ':' || r.rolsuper || r.rolcreatedb || r.rolcanlogin, ',' ORDER BY r.rolname) || '|' || (SELECT string_agg(d.datname || ':' || pg_get_userbyid(d.datdba) || ':' || coalesce(d.datacl::text, ''), ',' ORDER BY d.datname) FROM pg_database d) FROM pg_roles r WHERE r.rolname LIKE 'kflex_tenant%'",
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
    let server = start().expect(postgres::MISSING);
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
        "kflex_tenant_a",
        pw_a,
        "kflex_tenant_a",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1); SELECT count(*) FROM t",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and cannot even connect to B's.
    let out = psql(
        server.port,
        "kflex_tenant_a",
        pw_a,
        "kflex_tenant_b",
        "SELECT 1",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A role without superuser or createdb.
    let before = catalog(server.port);
    assert!(before.contains("kflex_tenant_a:falsefalsetrue"), "{before}");
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
        "kflex_tenant_a",
        pw_a,
        "kflex_tenant_a",
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

/// `sql` as the admin in `db`; its output.
fn admin_sql(port: u16, db: &str, sql: &str) -> String {
    let out = psql(port, "postgres", ADMIN_PASSWORD, db, sql);
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn reserved_names_get_their_own_database_and_an_upgraded_tenant_keeps_its_own() {
    let Some(server) = start() else {
        eprintln!("SKIPPED: no /usr/lib/postgresql/*/bin/initdb (apt-get install -y postgresql)");
        return;
    };
    let (port, cfg) = (server.port, config(server.port));
    // Control planes named like the reserved databases and the admin role.
    for name in ["postgres", "template1"] {
        let out = run_job(&cfg, name, DbJob::Provision, "reserved-tenant-pw");
        assert!(
            out.status.success(),
            "provision {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            admin_sql(
                port,
                "postgres",
                &format!(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'kflex_{name}'"
                )
            ),
            format!("kflex_{name}")
        );
    }
    // The reserved ones are untouched: owned by the admin, the admin still
    // a superuser, template1 still connectable.
    assert_eq!(
        admin_sql(
            port,
            "postgres",
            "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database WHERE datname IN ('postgres', 'template0', 'template1')"
        ),
        "postgres:postgres,template0:postgres,template1:postgres"
    );
    assert_eq!(
        admin_sql(
            port,
            "postgres",
            "SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'"
        ),
        "t"
    );
    assert_eq!(admin_sql(port, "template1", "SELECT 1"), "1");

    // A tenant provisioned before names were prefixed: database and role
    // `tenant_old`, with kine's table made by the admin (as KubeFlex's kine
    // connected) and data in it.
    let legacy = kubeflex_operator::builders::postgres::legacy_database_name("tenant-old");
    let old_cp = || {
        let mut c = cp("tenant-old");
        c.metadata.annotations = Some(
            [(
                kubeflex_operator::names::ANNOTATION_DATABASE.to_string(),
                legacy.clone(),
            )]
            .into(),
        );
        c
    };
    admin_sql(
        port,
        "postgres",
        &format!("CREATE ROLE {legacy} LOGIN PASSWORD 'old-pw-123'"),
    );
    admin_sql(
        port,
        "postgres",
        &format!("CREATE DATABASE {legacy} OWNER {legacy}"),
    );
    admin_sql(
        port,
        &legacy,
        "CREATE TABLE kine (id SERIAL PRIMARY KEY, name text); INSERT INTO kine (name) VALUES ('/registry/x')",
    );
    // The admin's table is out of the tenant's reach until provisioning
    // hands it over.
    let out = psql(
        port,
        &legacy,
        "old-pw-123",
        &legacy,
        "SELECT count(*) FROM kine",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // After the upgrade the name comes from its `kine-database` Secret's
    // role and is recorded; provisioning keeps that database.
    let picked =
        kubeflex_operator::builders::postgres::pick_database_name("tenant-old", Some(&legacy));
    assert_eq!(picked, legacy);
    assert_eq!(database_for(&old_cp(), &cfg).name, "tenant_old");
    let out = run_job_of(&cfg, &old_cp(), DbJob::Provision, "old-pw-123");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        admin_sql(
            port,
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'kflex_tenant_old%'"
        ),
        "0",
        "a new database was made for the upgraded tenant"
    );
    // The data is there and kine's table (and its sequence) is the role's.
    let out = psql(
        port,
        &legacy,
        "old-pw-123",
        &legacy,
        "INSERT INTO kine (name) VALUES ('/registry/y'); SELECT count(*) FROM kine",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim().lines().last(),
        Some("2")
    );
    assert_eq!(
        admin_sql(
            port,
            &legacy,
            "SELECT tableowner FROM pg_tables WHERE tablename = 'kine'"
        ),
        legacy
    );
}
