//! Many writers and watchers at once: every watcher sees every change of
//! every object, in order, with increasing resourceVersions.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::HashMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kubeflex_testenv::TestEnv;

const WRITERS: usize = 4;
const UPDATES: usize = 60;
const WATCHERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_or_reordered() {
    let env = TestEnv::builder().start().await.unwrap();
    let client = env.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let c = env.client().await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(c, "default");
        let stream = api
            .watch(&WatchParams::default().labels("race=yes").timeout(60), "0")
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
            let mut stream = stream.boxed();
            let total = WRITERS * (UPDATES + 1);
            let mut count = 0;
            while count < total {
                match tokio::time::timeout(Duration::from_secs(30), stream.try_next()).await {
                    Ok(Ok(Some(WatchEvent::Added(cm) | WatchEvent::Modified(cm)))) => {
                        let n: u64 = cm.data.unwrap()["n"].parse().unwrap();
                        let rv: u64 = cm.metadata.resource_version.unwrap().parse().unwrap();
                        seen.entry(cm.metadata.name.unwrap())
                            .or_default()
                            .push((n, rv));
                        count += 1;
                    }
                    Ok(Ok(Some(_))) => {}
                    other => panic!("watch ended early after {count} events: {other:?}"),
                }
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let cms = cms.clone();
        writers.push(tokio::spawn(async move {
            let name = format!("race-{w}");
            let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {"race": "yes"}}, "data": {"n": "0"}
            }))
            .unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
            for n in 1..=UPDATES {
                let patch = serde_json::json!({"data": {"n": n.to_string()}});
                cms.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    for w in watchers {
        let seen = w.await.unwrap();
        assert_eq!(seen.len(), WRITERS);
        for (name, events) in seen {
            let ns: Vec<u64> = events.iter().map(|(n, _)| *n).collect();
            assert_eq!(ns, (0..=UPDATES as u64).collect::<Vec<_>>(), "{name}");
            assert!(
                events.windows(2).all(|p| p[0].1 < p[1].1),
                "{name}: resourceVersions must increase"
            );
        }
    }
}
