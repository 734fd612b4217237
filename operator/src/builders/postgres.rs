//! PostgreSQL behind `k8s` control planes: each control plane gets its own
//! database and its own role owning only that database, with a generated
//! password kept in Secrets (never in a pod spec). Provisioning and teardown
//! are idempotent `psql` scripts run by Jobs with the admin credentials, so
//! the operator needs no database driver. Also the shared instance
//! (`postgres-postgresql` in `kubeflex-system`) and the dedicated one.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, ExecAction, PodSpec, PodTemplateSpec, Probe, Secret, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::Result;
use super::pod::{data_claim, env, env_from_secret, mount, resources};
use super::secrets::{opaque, text_data};
use crate::api::{BackendDbType, ControlPlane};
use crate::config::{DatabaseServer, OperatorConfig, SecretKey, StorageConfig};
use crate::{meta, names};

/// The database of one control plane and the server it lives on.
#[derive(Clone, Debug, PartialEq)]
pub struct Database {
    /// Database name: the one recorded on the ControlPlane
    /// ([`names::ANNOTATION_DATABASE`]), else [`database_name`] for a new
    /// tenant. A tenant made before names were prefixed (KubeFlex's `<cp>`
    /// with `-` → `_`) has its old name recorded and keeps its data.
    pub name: String,
    /// The control plane's own role (same identifier; roles and databases
    /// are separate namespaces in PostgreSQL).
    pub role: String,
    /// Where it lives.
    pub server: DatabaseServer,
    /// Dedicated instance in `<cp>-system` (`spec.backend: dedicated`).
    pub dedicated: bool,
}

/// Prefix of new tenants' database and role names.
pub const DATABASE_PREFIX: &str = "kflex_";
/// PostgreSQL's identifier limit (NAMEDATALEN - 1); longer ones are cut.
const MAX_IDENT: usize = 63;

/// Database and role name of a new tenant: `kflex_<cp>` with `-` → `_`.
/// The prefix means no tenant can ever be given `postgres`, `template0`,
/// `template1` or the admin role. Control-plane names hold only `a-z`,
/// `0-9`, `-` and `.`, so `-` → `_` cannot collide; a name with a `.` or one
/// too long for PostgreSQL gets a hash of the full name instead of its tail.
pub fn database_name(cp_name: &str) -> String {
    let mapped: String = cp_name
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ident = format!("{DATABASE_PREFIX}{mapped}");
    let lossy = cp_name
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || c == '-'));
    if !lossy && ident.len() <= MAX_IDENT {
        return ident;
    }
    let hash = meta::short_hash(cp_name.as_bytes());
    let keep = MAX_IDENT - hash.len() - 1;
    format!("{}_{hash}", &ident[..ident.len().min(keep)])
}

/// The name KubeFlex (and this operator before names were prefixed) gave
/// `cp_name`'s database and role.
pub fn legacy_database_name(cp_name: &str) -> String {
    cp_name.replace('-', "_")
}

/// The name to record for a control plane that has none recorded:
/// `existing_role`, the role of its `kine-database` Secret when it has one
/// (a tenant provisioned before names were recorded: its database has the
/// same name), else a new prefixed one.
pub fn pick_database_name(cp_name: &str, existing_role: Option<&str>) -> String {
    existing_role.map_or_else(|| database_name(cp_name), str::to_string)
}

/// The database of `cp`: on the shared server, or on its dedicated instance.
pub fn database_for(cp: &ControlPlane, cfg: &OperatorConfig) -> Database {
    let cp_name = cp.name_any();
    let ident = cp
        .annotations()
        .get(names::ANNOTATION_DATABASE)
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| database_name(&cp_name));
    let dedicated = cp.spec.backend == Some(BackendDbType::Dedicated);
    let server = if dedicated {
        let ns = names::namespace_of(&cp_name);
        DatabaseServer {
            host: format!("{}.{ns}.svc", names::POSTGRES_DEDICATED),
            port: 5432,
            admin_user: "postgres".into(),
            admin_secret: SecretKey {
                namespace: ns,
                name: names::SECRET_DEDICATED_POSTGRES.into(),
                key: names::KEY_POSTGRES_PASSWORD.into(),
            },
        }
    } else {
        cfg.postgres.shared_server(&cfg.system_namespace)
    };
    Database {
        name: ident.clone(),
        role: ident,
        server,
        dedicated,
    }
}

impl Database {
    /// kine's `--endpoint`, without the password (kine's PostgreSQL driver
    /// reads it from `PGPASSWORD`, which comes from a Secret).
    pub fn kine_endpoint(&self, ssl_mode: &str) -> String {
        format!(
            "postgres://{}@{}:{}/{}?sslmode={ssl_mode}",
            self.role, self.server.host, self.server.port, self.name
        )
    }

    /// Namespace of the provisioning and teardown Jobs: the admin Secret's,
    /// since a pod reads only Secrets of its own namespace.
    pub fn job_namespace(&self) -> &str {
        &self.server.admin_secret.namespace
    }
}

/// A PostgreSQL identifier, double-quoted (embedded quotes doubled), so any
/// control-plane name is safe in SQL (KubeFlex leaves it unquoted).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A string literal, single-quoted (embedded quotes doubled).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The psql script that creates or updates the role and database of `db`.
/// Idempotent: safe to run any number of times. The role's password is read
/// by psql from the environment variable `ROLE_PASSWORD` (`\getenv`, psql ≥ 15),
/// so it is neither in this text nor in the Job spec. Last, inside the
/// database, kine's table goes to the role too: one kine made while it
/// connected as another role (the admin, as KubeFlex set it up) would
/// otherwise be out of the tenant's reach.
pub fn provision_sql(db: &Database) -> String {
    let (role, name) = (quote_ident(&db.role), quote_ident(&db.name));
    let (role_lit, name_lit) = (quote_literal(&db.role), quote_literal(&db.name));
    format!(
        "\\set ON_ERROR_STOP on
\\getenv role_password ROLE_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', {role_lit}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role_lit}) \\gexec
ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'role_password';
SELECT format('CREATE DATABASE %I OWNER %I', {name_lit}, {role_lit}) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {name_lit}) \\gexec
ALTER DATABASE {name} OWNER TO {role};
REVOKE CONNECT ON DATABASE {name} FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {role};
\\connect {name_lit}
ALTER TABLE IF EXISTS public.kine OWNER TO {role};
"
    )
}

/// The psql script that removes the database (forcing off connections) and
/// the role of `db`. Idempotent.
pub fn teardown_sql(db: &Database) -> String {
    let (role, name) = (quote_ident(&db.role), quote_ident(&db.name));
    format!(
        "\\set ON_ERROR_STOP on
DROP DATABASE IF EXISTS {name} WITH (FORCE);
DROP ROLE IF EXISTS {role};
"
    )
}

/// Name of the Secret holding the role's credentials in the Jobs' namespace
/// when that differs from `<cp>-system` (the shared server).
pub fn job_credentials_secret_name(cp_name: &str) -> String {
    meta::bounded_name("kflex-db-", cp_name, 253)
}

/// Secrets with the role's credentials: `kine-database` in `<cp>-system`
/// (for kine), and a copy in the Jobs' namespace when it differs. `password`
/// is generated once by the reconcile and read back from the first Secret.
pub fn credentials_secrets(
    cp: &ControlPlane,
    db: &Database,
    password: &str,
) -> Result<Vec<Secret>> {
    let cp_name = cp.name_any();
    let data = || {
        text_data([
            (names::KEY_DB_USER, db.role.clone()),
            (names::KEY_DB_PASSWORD, password.to_string()),
        ])
    };
    let mut out = vec![opaque(
        meta::in_cp_namespace(cp, names::SECRET_DATABASE, "database")?,
        data(),
    )];
    if db.job_namespace() != names::namespace_of(&cp_name) {
        out.push(opaque(
            meta::owned(
                cp,
                job_credentials_secret_name(&cp_name),
                Some(db.job_namespace().to_string()),
                meta::labels(&cp_name, "database"),
            )?,
            data(),
        ));
    }
    Ok(out)
}

/// Which script a Job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbJob {
    /// [`provision_sql`].
    Provision,
    /// [`teardown_sql`].
    Teardown,
}

/// The Job running `which` against `db` with the admin credentials. Its
/// `spec.template` is immutable: the reconcile replaces the Job when the
/// annotation [`names::ANNOTATION_CONFIG_HASH`] differs.
pub fn job(cp: &ControlPlane, db: &Database, cfg: &OperatorConfig, which: DbJob) -> Result<Job> {
    let cp_name = cp.name_any();
    let (prefix, sql) = match which {
        DbJob::Provision => ("kflex-db-provision-", provision_sql(db)),
        DbJob::Teardown => ("kflex-db-teardown-", teardown_sql(db)),
    };
    let creds_secret = if db.job_namespace() == names::namespace_of(&cp_name) {
        names::SECRET_DATABASE.to_string()
    } else {
        job_credentials_secret_name(&cp_name)
    };
    let mut metadata = meta::owned(
        cp,
        meta::bounded_name(prefix, &cp_name, 63),
        Some(db.job_namespace().to_string()),
        meta::labels(&cp_name, "database"),
    )?;
    metadata.annotations = Some(meta::string_map(&[(
        names::ANNOTATION_CONFIG_HASH,
        &meta::short_hash(format!("{sql}{}", cfg.images.postgres).as_bytes()),
    )]));
    let admin = &db.server.admin_secret;
    let mut env_vars: Vec<EnvVar> = vec![
        env("PGHOST", &db.server.host),
        env("PGPORT", &db.server.port.to_string()),
        env("PGUSER", &db.server.admin_user),
        env("PGDATABASE", "postgres"),
        env_from_secret("PGPASSWORD", &admin.name, &admin.key),
        env("SQL", &sql),
    ];
    if which == DbJob::Provision {
        env_vars.push(env_from_secret(
            "ROLE_PASSWORD",
            &creds_secret,
            names::KEY_DB_PASSWORD,
        ));
    }
    Ok(Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(6),
            ttl_seconds_after_finished: None,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta::labels(&cp_name, "database")),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("OnFailure".into()),
                    containers: vec![Container {
                        name: "psql".into(),
                        image: Some(cfg.images.postgres.clone()),
                        // The script comes from an env var (no secret in it);
                        // psql reads it on stdin so `\gexec` works.
                        command: Some(vec![
                            "sh".into(),
                            "-c".into(),
                            "printf '%s\\n' \"$SQL\" | psql --no-psqlrc -X".into(),
                        ]),
                        env: Some(env_vars),
                        resources: Some(resources(("200m", "128Mi"), ("10m", "32Mi"))),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

/// The objects of a PostgreSQL server: admin Secret, Service, StatefulSet
/// (its PVC from a claim template, `data-<name>-0` as the Bitnami chart names it).
pub struct Instance {
    pub secret: Secret,
    pub service: Service,
    pub stateful_set: StatefulSet,
}

fn instance(
    metadata: impl Fn(&str) -> ObjectMeta,
    name: &str,
    image: &str,
    storage: &StorageConfig,
    admin_password: &str,
) -> Instance {
    let selector = meta::string_map(&[
        ("app.kubernetes.io/name", "postgresql"),
        ("app.kubernetes.io/instance", name),
    ]);
    let mut pod_labels = metadata(name).labels.unwrap_or_default();
    pod_labels.extend(selector.clone());
    let probe = |initial| Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "pg_isready".into(),
                "-U".into(),
                "postgres".into(),
                "-h".into(),
                "127.0.0.1".into(),
            ]),
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(6),
        ..Probe::default()
    };
    let mut svc_meta = metadata(name);
    svc_meta
        .labels
        .get_or_insert_default()
        .extend(selector.clone());
    Instance {
        secret: opaque(
            metadata(name),
            text_data([(names::KEY_POSTGRES_PASSWORD, admin_password.to_string())]),
        ),
        service: Service {
            metadata: svc_meta,
            spec: Some(ServiceSpec {
                selector: Some(selector.clone()),
                ports: Some(vec![ServicePort {
                    name: Some("tcp-postgresql".into()),
                    port: 5432,
                    target_port: Some(IntOrString::String("tcp-postgresql".into())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
        stateful_set: StatefulSet {
            metadata: metadata(name),
            spec: Some(StatefulSetSpec {
                replicas: Some(1),
                service_name: Some(name.into()),
                selector: LabelSelector {
                    match_labels: Some(selector),
                    ..LabelSelector::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        priority_class_name: Some("system-node-critical".into()),
                        containers: vec![Container {
                            name: "postgresql".into(),
                            image: Some(image.into()),
                            args: Some(vec!["-c".into(), "max_connections=1000".into()]),
                            ports: Some(vec![ContainerPort {
                                name: Some("tcp-postgresql".into()),
                                container_port: 5432,
                                ..ContainerPort::default()
                            }]),
                            env: Some(vec![
                                env_from_secret(
                                    "POSTGRES_PASSWORD",
                                    name,
                                    names::KEY_POSTGRES_PASSWORD,
                                ),
                                env("PGDATA", "/var/lib/postgresql/data/pgdata"),
                            ]),
                            volume_mounts: Some(vec![mount(
                                "data",
                                "/var/lib/postgresql/data",
                                false,
                            )]),
                            readiness_probe: Some(probe(5)),
                            liveness_probe: Some(probe(30)),
                            resources: Some(resources(("1", "1Gi"), ("100m", "256Mi"))),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                },
                volume_claim_templates: Some(vec![data_claim(storage)]),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        },
    }
}

/// The shared instance in the system namespace, installed when no existing
/// server is configured. Not owned by any ControlPlane.
pub fn shared_instance(cfg: &OperatorConfig, admin_password: &str) -> Instance {
    let ns = cfg.system_namespace.clone();
    instance(
        |name| ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.clone()),
            labels: Some(meta::shared_labels("postgres")),
            ..ObjectMeta::default()
        },
        names::POSTGRES_SHARED,
        &cfg.images.postgres,
        &cfg.postgres.storage,
        admin_password,
    )
}

/// The dedicated instance of `cp` (`spec.backend: dedicated`) in `<cp>-system`.
pub fn dedicated_instance(
    cp: &ControlPlane,
    cfg: &OperatorConfig,
    admin_password: &str,
) -> Result<Instance> {
    // Fail early on a missing uid; the closure below then cannot fail.
    let owner = meta::in_cp_namespace(cp, names::POSTGRES_DEDICATED, "postgres")?;
    Ok(instance(
        |name| ObjectMeta {
            name: Some(name.into()),
            ..owner.clone()
        },
        names::POSTGRES_DEDICATED,
        &cfg.images.postgres,
        &cfg.postgres.storage,
        admin_password,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ControlPlaneExt;

    fn env_of(job: &Job) -> Vec<EnvVar> {
        job.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap()
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("cp_1"), "\"cp_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn shared_database_uses_a_prefixed_name_on_kubeflex_s_server() {
        let db = database_for(&ControlPlane::test("my-cp"), &OperatorConfig::default());
        assert_eq!(db.name, "kflex_my_cp");
        assert_eq!(db.role, "kflex_my_cp");
        assert!(!db.dedicated);
        assert_eq!(db.server.host, "postgres-postgresql.kubeflex-system.svc");
        assert_eq!(
            db.kine_endpoint("disable"),
            "postgres://kflex_my_cp@postgres-postgresql.kubeflex-system.svc:5432/kflex_my_cp?sslmode=disable"
        );
        assert_eq!(db.job_namespace(), "kubeflex-system");
    }

    #[test]
    fn a_recorded_name_is_always_the_one_used() {
        let mut cp = ControlPlane::test("my-cp");
        cp.metadata.annotations =
            Some([(names::ANNOTATION_DATABASE.to_string(), "my_cp".to_string())].into());
        let db = database_for(&cp, &OperatorConfig::default());
        assert_eq!((db.name.as_str(), db.role.as_str()), ("my_cp", "my_cp"));
    }

    #[test]
    fn new_names_are_never_reserved_and_never_collide() {
        for reserved in ["postgres", "template0", "template1"] {
            assert_eq!(database_name(reserved), format!("kflex_{reserved}"));
        }
        assert_eq!(legacy_database_name("a-b"), "a_b");
        assert_eq!(pick_database_name("a-b", Some("a_b")), "a_b");
        assert_eq!(pick_database_name("a-b", None), "kflex_a_b");
        let dotted = database_name("a.b");
        assert!(
            dotted.starts_with("kflex_a_b_") && dotted.len() == 6 + 3 + 9,
            "{dotted}"
        );
        assert_ne!(dotted, database_name("a-b"));
        let long = "x".repeat(200);
        let (a, b) = (database_name(&long), database_name(&format!("{long}y")));
        assert!(a.len() <= 63 && b.len() <= 63);
        assert_ne!(a, b);
        assert!(
            database_name("cp-1")
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }

    #[test]
    fn dedicated_database_lives_in_the_control_plane_namespace() {
        let cp = ControlPlane::test("cp1").backend(BackendDbType::Dedicated);
        let db = database_for(&cp, &OperatorConfig::default());
        assert!(db.dedicated);
        assert_eq!(db.server.host, "postgres.cp1-system.svc");
        assert_eq!(db.job_namespace(), "cp1-system");
        let secrets = credentials_secrets(&cp, &db, "pw").unwrap();
        assert_eq!(secrets.len(), 1, "no copy needed in the same namespace");
        let inst = dedicated_instance(&cp, &OperatorConfig::default(), "adminpw").unwrap();
        assert_eq!(
            inst.stateful_set.metadata.namespace.as_deref(),
            Some("cp1-system")
        );
        assert_eq!(
            inst.stateful_set.metadata.owner_references.unwrap()[0].name,
            "cp1"
        );
    }

    #[test]
    fn provision_sql_is_exact_and_idempotent() {
        let mut db = database_for(&ControlPlane::test("cp-1"), &OperatorConfig::default());
        // A recorded (KubeFlex-style) name, to show the quoting.
        db.name = "cp_1".into();
        db.role = "cp_1".into();
        assert_eq!(
            provision_sql(&db),
            r#"\set ON_ERROR_STOP on
\getenv role_password ROLE_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', 'cp_1') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cp_1') \gexec
ALTER ROLE "cp_1" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'role_password';
SELECT format('CREATE DATABASE %I OWNER %I', 'cp_1', 'cp_1') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'cp_1') \gexec
ALTER DATABASE "cp_1" OWNER TO "cp_1";
REVOKE CONNECT ON DATABASE "cp_1" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE "cp_1" TO "cp_1";
\connect 'cp_1'
ALTER TABLE IF EXISTS public.kine OWNER TO "cp_1";
"#
        );
        assert_eq!(
            teardown_sql(&db),
            "\\set ON_ERROR_STOP on\nDROP DATABASE IF EXISTS \"cp_1\" WITH (FORCE);\nDROP ROLE IF EXISTS \"cp_1\";\n"
        );
    }

    #[test]
    fn jobs_read_every_password_from_secrets() {
        let cfg = OperatorConfig::default();
        let cp = ControlPlane::test("cp1");
        let db = database_for(&cp, &cfg);
        let j = job(&cp, &db, &cfg, DbJob::Provision).unwrap();
        assert_eq!(j.metadata.name.as_deref(), Some("kflex-db-provision-cp1"));
        assert_eq!(j.metadata.namespace.as_deref(), Some("kubeflex-system"));
        let env = env_of(&j);
        let by_name = |n: &str| env.iter().find(|e| e.name == n).unwrap().clone();
        let admin = by_name("PGPASSWORD")
            .value_from
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(
            (admin.name.as_str(), admin.key.as_str()),
            ("postgres-postgresql", "postgres-password")
        );
        let role = by_name("ROLE_PASSWORD")
            .value_from
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(
            (role.name.as_str(), role.key.as_str()),
            ("kflex-db-cp1", "password")
        );
        assert!(
            env.iter()
                .all(|e| e.name == "SQL" || e.value.as_deref().is_none_or(|v| !v.contains("pw")))
        );
        assert_eq!(by_name("SQL").value.unwrap(), provision_sql(&db));
        let t = job(&cp, &db, &cfg, DbJob::Teardown).unwrap();
        assert_eq!(t.metadata.name.as_deref(), Some("kflex-db-teardown-cp1"));
        assert!(env_of(&t).iter().all(|e| e.name != "ROLE_PASSWORD"));
    }

    #[test]
    fn credentials_are_copied_to_the_job_namespace_for_the_shared_server() {
        let cfg = OperatorConfig::default();
        let cp = ControlPlane::test("cp1");
        let db = database_for(&cp, &cfg);
        let secrets = credentials_secrets(&cp, &db, "pw").unwrap();
        let ids: Vec<_> = secrets
            .iter()
            .map(|s| {
                (
                    s.metadata.namespace.clone().unwrap(),
                    s.metadata.name.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("cp1-system".to_string(), "kine-database".to_string()),
                ("kubeflex-system".to_string(), "kflex-db-cp1".to_string())
            ]
        );
        assert_eq!(secrets[0].data, secrets[1].data);
    }

    #[test]
    fn shared_instance_matches_kubeflex_s_names() {
        let cfg = OperatorConfig::default();
        let i = shared_instance(&cfg, "adminpw");
        assert_eq!(
            i.secret.metadata.name.as_deref(),
            Some("postgres-postgresql")
        );
        assert!(
            i.secret
                .data
                .as_ref()
                .unwrap()
                .contains_key("postgres-password")
        );
        assert_eq!(
            i.service.metadata.name.as_deref(),
            Some("postgres-postgresql")
        );
        assert_eq!(
            i.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
            5432
        );
        let sts = i.stateful_set;
        assert_eq!(sts.metadata.namespace.as_deref(), Some("kubeflex-system"));
        assert!(sts.metadata.owner_references.is_none());
        let spec = sts.spec.unwrap();
        assert_eq!(
            spec.volume_claim_templates.unwrap()[0]
                .metadata
                .name
                .as_deref(),
            Some("data")
        );
        let c = &spec.template.spec.unwrap().containers[0];
        let pw = c.env.as_ref().unwrap()[0]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(pw.name, "postgres-postgresql");
        assert!(
            c.env
                .as_ref()
                .unwrap()
                .iter()
                .all(|e| e.value.as_deref() != Some("adminpw"))
        );
    }
}
