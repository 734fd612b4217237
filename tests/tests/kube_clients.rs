//! kube-rs against testenv: Controller, reflector across watch expiry and a
//! restart, server-side apply conflicts, the finalizer helper.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use kubeflex_testenv::TestEnv;

/// The project's ControlPlane CRD, from the committed YAML: testenv knows
/// nothing of the operator crate.
const CRD: &str =
    include_str!("../../config/crd/bases/tenancy.kflex.kubestellar.org_controlplanes.yaml");

async fn install_crd(client: &Client) {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crd: serde_json::Value = serde_saphyr::from_str(CRD).unwrap();
    crds.patch(
        "controlplanes.tenancy.kflex.kubestellar.org",
        &PatchParams::apply("test").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap();
}

fn cp_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tenancy.kflex.kubestellar.org", "v1alpha1", "ControlPlane"),
        "controlplanes",
    )
}

fn cp(name: &str, ty: &str) -> DynamicObject {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "tenancy.kflex.kubestellar.org/v1alpha1",
        "kind": "ControlPlane",
        "metadata": {"name": name},
        "spec": {"type": ty}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_sees_create_update_delete() {
    let env = TestEnv::builder().start().await.unwrap();
    let client = env.client().await.unwrap();
    install_crd(&client).await;
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &cp_resource());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Option<String>, bool)>();
    let ctx = Arc::new(tx);
    let controller = Controller::new_with(api.clone(), watcher::Config::default(), cp_resource())
        .run(
            |obj: Arc<DynamicObject>, ctx: Arc<tokio::sync::mpsc::UnboundedSender<(String, Option<String>, bool)>>| async move {
                let hook = obj.data["spec"]["postCreateHook"].as_str().map(String::from);
                let _ = ctx.send((obj.name_any(), hook, obj.metadata.deletion_timestamp.is_some()));
                Ok::<_, kube::Error>(Action::await_change())
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            ctx,
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    api.create(&PostParams::default(), &cp("a", "k8s"))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.0, "a");
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"postCreateHook": "hello"}})),
    )
    .await
    .unwrap();
    let seen = loop {
        let s = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if s.1.is_some() {
            break s;
        }
    };
    assert_eq!(seen.1.as_deref(), Some("hello"));
    // Deletion with a finalizer is seen (deletionTimestamp set) before it goes.
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": ["test/keep"]}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    loop {
        let s = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if s.2 {
            break;
        }
    }
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
    handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_conflicts_between_managers() {
    let env = TestEnv::builder().start().await.unwrap();
    let client = env.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mk = |v: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"k": v}});
    cms.patch(
        "shared",
        &PatchParams::apply("alice"),
        &Patch::Apply(mk("1")),
    )
    .await
    .unwrap();
    let err = cms
        .patch("shared", &PatchParams::apply("bob"), &Patch::Apply(mk("2")))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("conflict with \"alice\"") && status.message.contains(".data.k"),
        "{}",
        status.message
    );
    cms.patch(
        "shared",
        &PatchParams::apply("bob").force(),
        &Patch::Apply(mk("2")),
    )
    .await
    .unwrap();
    let cm = cms.get("shared").await.unwrap();
    assert_eq!(cm.data.unwrap()["k"], "2");
    let managers: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"bob".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_helper_adds_and_removes_its_finalizer() {
    let env = TestEnv::builder().start().await.unwrap();
    let client = env.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "f"}})).unwrap(),
    )
    .await
    .unwrap();
    let obj = Arc::new(cms.get("f").await.unwrap());
    let res = kube::runtime::finalizer(&cms, "test.io/cleanup", obj, |event| async move {
        match event {
            kube::runtime::finalizer::Event::Apply(_)
            | kube::runtime::finalizer::Event::Cleanup(_) => {
                Ok::<_, kube::Error>(Action::await_change())
            }
        }
    })
    .await;
    assert!(res.is_ok(), "{res:?}");
    let cm = cms.get("f").await.unwrap();
    assert_eq!(cm.metadata.finalizers.unwrap(), ["test.io/cleanup"]);
    cms.delete("f", &DeleteParams::default()).await.unwrap();
    let obj = Arc::new(cms.get("f").await.unwrap());
    assert!(obj.metadata.deletion_timestamp.is_some());
    kube::runtime::finalizer(&cms, "test.io/cleanup", obj, |_| async {
        Ok::<_, kube::Error>(Action::await_change())
    })
    .await
    .unwrap();
    assert!(cms.get_opt("f").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_stays_consistent_across_a_restart_with_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let env = TestEnv::builder()
        .addr(addr)
        .state_dir(dir.path())
        .start()
        .await
        .unwrap();
    let kubeconfig = env.kubeconfig().to_string();
    let client = env.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": format!("c{i}")}}))
                .unwrap(),
        )
        .await
        .unwrap();
    }
    let (reader, writer) = reflector::store::<ConfigMap>();
    let watch = reflector(writer, watcher(cms.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects()
        .for_each(|_| async {});
    let handle = tokio::spawn(watch);
    let names = |r: &reflector::Store<ConfigMap>| {
        let mut n: Vec<String> = r
            .state()
            .iter()
            .map(|c| c.name_any())
            .filter(|n| n.starts_with('c'))
            .collect();
        n.sort();
        n
    };
    wait_until(|| names(&reader).len() == 5).await;
    let rv_before: u64 = cms
        .get("c0")
        .await
        .unwrap()
        .resource_version()
        .unwrap()
        .parse()
        .unwrap();
    // Restart on the same port with the same state; meanwhile a change.
    drop(env);
    let env = TestEnv::builder()
        .addr(addr)
        .state_dir(dir.path())
        .start()
        .await
        .unwrap();
    let client2 = kubeflex_testenv::client_from_kubeconfig(&kubeconfig)
        .await
        .unwrap();
    let cms2: Api<ConfigMap> = Api::namespaced(client2, "default");
    cms2.delete("c1", &DeleteParams::default()).await.unwrap();
    let created = cms2
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "c9"}})).unwrap(),
        )
        .await
        .unwrap();
    let rv_after: u64 = created.resource_version().unwrap().parse().unwrap();
    assert!(
        rv_after > rv_before,
        "resourceVersions must keep increasing across restarts"
    );
    wait_until(|| names(&reader) == ["c0", "c2", "c3", "c4", "c9"]).await;
    handle.abort();
    drop(env);
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(f(), "condition not met in 20s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watchers_get_initial_events_then_changes() {
    let env = TestEnv::builder().start().await.unwrap();
    let client = env.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "before"}})).unwrap(),
    )
    .await
    .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let watch = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().streaming_lists()),
    )
    .applied_objects()
    .for_each(|_| async {});
    let handle = tokio::spawn(watch);
    wait_until(|| {
        reader
            .get(&reflector::ObjectRef::new("before").within("default"))
            .is_some()
    })
    .await;
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "after"}})).unwrap(),
    )
    .await
    .unwrap();
    wait_until(|| {
        reader
            .get(&reflector::ObjectRef::new("after").within("default"))
            .is_some()
    })
    .await;
    handle.abort();
}
