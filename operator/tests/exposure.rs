//! Exposure and backends against testenv: with the OpenShift Route API
//! served, `--exposure auto` exposes a `k8s` control plane by a passthrough
//! Route (no Ingress) and the off-cluster kubeconfig names the Route host
//! (`https://<route-host>`, as KubeFlex writes it); and `backend: dedicated`
//! gives the control plane its own PostgreSQL in `<cp>-system`, provisioned
//! there, with no password in any pod spec.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kubeflex_testenv::TestEnv;
use support::{Harness, assert_logs_clean, condition, ok};

fn cp_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: tenancy.kflex.kubestellar.org/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n  type: k8s\n{extra_spec}"
    )
}

fn secret_value(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn server_of(kubeconfig_yaml: &str) -> String {
    let kc: serde_json::Value = serde_saphyr::from_str(kubeconfig_yaml).unwrap();
    kc["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_is_used_when_the_route_api_is_served() {
    let h = Harness::start_with(
        TestEnv::builder().openshift_routes(true),
        support::settings(),
    )
    .await;
    let name = "rt";
    let ns = "rt-system";
    h.create_cp(&cp_yaml(name, "")).await;
    let cp = h.wait_ready(name, 90).await;
    assert_eq!(condition(&cp, "Synced").unwrap().0, "True");

    // A passthrough Route `<cp>` to Service `<cp>` port `https`, host
    // assigned by the router; no Ingress.
    let routes: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        ns,
        &kubeflex_operator::builders::exposure::route_resource(),
    );
    let route = routes
        .get_opt(name)
        .await
        .unwrap()
        .expect("Route rt/rt-system");
    let spec = &route.data["spec"];
    assert_eq!(spec["tls"]["termination"], "passthrough", "{spec:#}");
    assert_eq!(spec["tls"]["insecureEdgeTerminationPolicy"], "None");
    assert_eq!(spec["to"]["kind"], "Service");
    assert_eq!(spec["to"]["name"], name);
    assert_eq!(spec["port"]["targetPort"], "https");
    assert_eq!(
        route.metadata.annotations.as_ref().unwrap()["openshift.io/host.generated"],
        "true"
    );
    let host = spec["host"].as_str().unwrap().to_string();
    assert_eq!(host, "rt-rt-system.apps.localtest.me");
    let ingresses = Api::<Ingress>::namespaced(h.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        ingresses.items.is_empty(),
        "an Ingress exists although Routes are served: {:?}",
        ingresses
            .items
            .iter()
            .map(|i| i.metadata.name.clone())
            .collect::<Vec<_>>()
    );

    // The off-cluster kubeconfig names the Route host (port 443 implied).
    let external = h.secret_text(ns, "admin-kubeconfig", "kubeconfig").await;
    assert_eq!(server_of(&external), format!("https://{host}"));
    let internal = h
        .secret_text(ns, "admin-kubeconfig", "kubeconfig-incluster")
        .await;
    assert_eq!(
        server_of(&internal),
        format!("https://{name}.{ns}.svc.cluster.local")
    );

    // The real kubectl reaches the tenant through the SNI ingress by the
    // Route host, verifying the tenant's certificate for that name.
    let path = h.write("rt-external", &external);
    let server = format!("https://{}", h.env.ingress_addr().unwrap());
    let out = ok(&h
        .kubectl(
            &path,
            &[
                "--server",
                &server,
                "--tls-server-name",
                &host,
                "get",
                "namespaces",
            ],
        )
        .await);
    assert!(out.contains("default"), "{out}");
    assert!(out.contains("kube-system"), "{out}");

    let db = h.secret(ns, "kine-database").await.unwrap();
    assert_logs_clean(&[secret_value(&db, "password")]);
}

/// Every env entry with a literal `value` in a pod template.
fn literal_env_values(template: &PodTemplateSpec) -> Vec<(String, String)> {
    let spec = template.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_backend_gets_its_own_database() {
    let h = Harness::start().await;
    let name = "ded";
    let ns = "ded-system";
    h.create_cp(&cp_yaml(name, "  backend: dedicated\n")).await;
    let cp = h.wait_ready(name, 90).await;
    assert_eq!(condition(&cp, "Synced").unwrap().0, "True");

    // Its own PostgreSQL in `<cp>-system`: StatefulSet, Service and admin
    // Secret `postgres`.
    let sts = Api::<StatefulSet>::namespaced(h.client.clone(), ns)
        .get_opt("postgres")
        .await
        .unwrap()
        .expect("StatefulSet ded-system/postgres");
    let pg = &sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(pg.name, "postgresql");
    let admin = h
        .secret(ns, "postgres")
        .await
        .expect("Secret ded-system/postgres");
    let admin_password = secret_value(&admin, "postgres-password");
    let creds = h.secret(ns, "kine-database").await.unwrap();
    let password = secret_value(&creds, "password");
    assert_eq!(secret_value(&creds, "username"), "kflex_ded");
    assert!(admin_password.len() >= 16 && password.len() >= 16);
    assert_ne!(admin_password, password);

    // kine's endpoint is the dedicated instance, without a password; the
    // password comes from Secret `kine-database`.
    let apiserver = Api::<Deployment>::namespaced(h.client.clone(), ns)
        .get("kube-apiserver")
        .await
        .unwrap();
    let pod = apiserver.spec.unwrap().template.spec.unwrap();
    let kine = pod.containers.iter().find(|c| c.name == "kine").unwrap();
    let command = kine.command.clone().unwrap();
    let at = command.iter().position(|a| a == "--endpoint").unwrap();
    assert_eq!(
        command[at + 1],
        "postgres://kflex_ded@postgres.ded-system.svc:5432/kflex_ded?sslmode=disable"
    );
    let pgpassword = kine
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "PGPASSWORD")
        .unwrap();
    assert!(pgpassword.value.is_none());
    let from = pgpassword
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("kine-database", "password")
    );

    // No password in any pod template of the namespace (Deployments,
    // StatefulSets, Jobs): neither as a literal env value nor anywhere else.
    let mut templates: Vec<(String, PodTemplateSpec)> = Vec::new();
    for d in Api::<Deployment>::namespaced(h.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        templates.push((
            format!("Deployment {:?}", d.metadata.name),
            d.spec.unwrap().template,
        ));
    }
    for s in Api::<StatefulSet>::namespaced(h.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        templates.push((
            format!("StatefulSet {:?}", s.metadata.name),
            s.spec.unwrap().template,
        ));
    }
    for j in Api::<Job>::namespaced(h.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        templates.push((
            format!("Job {:?}", j.metadata.name),
            j.spec.unwrap().template,
        ));
    }
    assert!(
        templates.len() >= 4,
        "{:?}",
        templates.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for (what, template) in &templates {
        for (env, value) in literal_env_values(template) {
            for secret in [&password, &admin_password] {
                assert!(
                    !value.contains(secret.as_str()),
                    "{what}: env {env} holds a password"
                );
            }
        }
        let text = serde_json::to_string(template).unwrap();
        for secret in [&password, &admin_password] {
            assert!(
                !text.contains(secret.as_str()),
                "{what}: a password in the pod template"
            );
        }
    }

    // Provisioned by a Job in `<cp>-system` against the dedicated instance;
    // nothing runs in (or is installed into) kubeflex-system.
    let job = Api::<Job>::namespaced(h.client.clone(), ns)
        .get("kflex-db-provision-ded")
        .await
        .unwrap();
    let job_env = job.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let value = |n: &str| {
        job_env
            .iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value("PGHOST").as_deref(), Some("postgres.ded-system.svc"));
    assert_eq!(value("PGPORT").as_deref(), Some("5432"));
    assert_eq!(value("PGUSER").as_deref(), Some("postgres"));
    let system_jobs = Api::<Job>::namespaced(h.client.clone(), "kubeflex-system")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        system_jobs.items.is_empty(),
        "Jobs in kubeflex-system: {:?}",
        system_jobs
            .items
            .iter()
            .map(|j| j.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    assert!(h.secret("kubeflex-system", "kflex-db-ded").await.is_none());
    assert!(
        h.secret("kubeflex-system", "postgres-postgresql")
            .await
            .is_none()
    );
    assert!(
        Api::<StatefulSet>::namespaced(h.client.clone(), "kubeflex-system")
            .get_opt("postgres-postgresql")
            .await
            .unwrap()
            .is_none(),
        "the shared instance was installed for a dedicated control plane"
    );

    assert_logs_clean(&[password, admin_password]);
}

/// Routes of `ns` (the Route API as testenv serves it).
async fn routes_in(h: &Harness, ns: &str) -> Vec<String> {
    let routes: Api<DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        ns,
        &kubeflex_operator::builders::exposure::route_resource(),
    );
    routes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.metadata.name.unwrap_or_default())
        .collect()
}

async fn ingresses_in(h: &Harness, ns: &str) -> Vec<String> {
    Api::<Ingress>::namespaced(h.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.metadata.name.unwrap_or_default())
        .collect()
}

/// An operator restarted with the other exposure mode leaves one object
/// exposing the tenant: Route → Ingress, then back to Route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_exposure_leaves_one_object() {
    use kubeflex_operator::config::ExposureMode;
    let mut h = Harness::start_with(
        TestEnv::builder().openshift_routes(true),
        support::settings(),
    )
    .await;
    let (name, ns) = ("sw", "sw-system");
    h.create_cp(&cp_yaml(name, "")).await;
    h.wait_ready(name, 90).await;
    assert_eq!(routes_in(&h, ns).await, [name]);
    assert!(ingresses_in(&h, ns).await.is_empty());

    for (mode, want_routes, want_ingresses) in
        [(ExposureMode::Ingress, 0, 1), (ExposureMode::Route, 1, 0)]
    {
        h.stop_operator().await;
        let mut config = support::config();
        config.exposure = mode;
        h.start_operator_with(config);
        // A change of spec makes the next pass run at once.
        h.cps()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    serde_json::json!({"metadata": {"labels": {"pass": format!("{mode:?}")}}}),
                ),
            )
            .await
            .unwrap();
        h.eventually(
            &format!("one object after switching to {mode:?}"),
            60,
            || async {
                routes_in(&h, ns).await.len() == want_routes
                    && ingresses_in(&h, ns).await.len() == want_ingresses
            },
        )
        .await;
    }
    h.assert_no_secret_leaked().await;
}

/// `spec.backend` cannot change once set, nor be added or removed (absent
/// is `shared`): the API server refuses it with the CRD's CEL rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_is_immutable() {
    let h = Harness::start().await;
    let patch = |backend: serde_json::Value| {
        let cps = h.cps();
        async move {
            cps.patch(
                "imm",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"backend": backend}})),
            )
            .await
        }
    };
    h.create_cp(&cp_yaml("imm", "")).await;
    let err = patch(serde_json::json!("dedicated")).await.unwrap_err();
    assert!(err.to_string().contains("backend is immutable"), "{err}");
    // Writing the default explicitly is no change.
    patch(serde_json::json!("shared")).await.unwrap();
    let err = patch(serde_json::json!("dedicated")).await.unwrap_err();
    assert!(err.to_string().contains("backend is immutable"), "{err}");
    h.create_cp(&cp_yaml("imm2", "  backend: dedicated\n"))
        .await;
    let err = h
        .cps()
        .patch(
            "imm2",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"backend": null}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("backend is immutable"), "{err}");
}

/// A tenant provisioned before database names were prefixed (its
/// `kine-database` Secret names role `old_cp`) keeps that database: the name
/// is recorded on the ControlPlane and kine is pointed at it. A new tenant
/// gets `kflex_<name>`, recorded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_names_are_recorded_and_an_upgraded_tenant_keeps_its_own() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::PostParams;
    let h = Harness::start().await;
    // What today's code left in `old-cp-system` (the namespace and the
    // Secret; the operator adopts both).
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "old-cp-system"}})).unwrap();
    Api::<Namespace>::all(h.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let legacy: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kine-database", "namespace": "old-cp-system"},
        "stringData": {
            "username": "old_cp",
            "password": "legacy-password-0123456789"
        }
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), "old-cp-system")
        .create(&PostParams::default(), &legacy)
        .await
        .unwrap();
    h.create_cp(&cp_yaml("old-cp", "")).await;
    h.create_cp(&cp_yaml("new-cp", "")).await;
    for (name, db) in [("old-cp", "old_cp"), ("new-cp", "kflex_new_cp")] {
        let cp = h.wait_ready(name, 90).await;
        assert_eq!(
            cp.metadata.annotations.as_ref().unwrap()["kflex.kubestellar.org/database"],
            db
        );
        let apiserver = Api::<Deployment>::namespaced(h.client.clone(), &format!("{name}-system"))
            .get("kube-apiserver")
            .await
            .unwrap();
        let spec = serde_json::to_string(&apiserver.spec).unwrap();
        assert!(
            spec.contains(&format!(":5432/{db}?sslmode")),
            "{name}: {spec}"
        );
        let user = secret_value(
            &h.secret(&format!("{name}-system"), "kine-database")
                .await
                .unwrap(),
            "username",
        );
        assert_eq!(user, db);
        let job = Api::<Job>::namespaced(h.client.clone(), "kubeflex-system")
            .get(&format!("kflex-db-provision-{name}"))
            .await
            .unwrap();
        let text = serde_json::to_string(&job.spec).unwrap();
        assert!(text.contains(&format!("'{db}'")), "{name}: {text}");
    }
    assert_logs_clean(&["legacy-password-0123456789".into()]);
    h.assert_no_secret_leaked().await;
}
