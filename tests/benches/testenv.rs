//! testenv throughput benchmark (run with `cargo bench -p kubeflex-testenv
//! --bench testenv`): writes/s and write latency with 50 concurrent
//! watchers, the delay from a write's acknowledgement to its event at the
//! watchers, and the server's peak RSS holding 10,000 objects. The server
//! runs as its own process (the `serve` binary), so its memory is its own.

mod support;

use kubeflex_testenv::measure::peak_rss_kib;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};

const WATCHERS: usize = 50;
const WRITERS: usize = 8;
const TIMED_WRITES: usize = 4_000;
const PACED_WRITES: usize = 1_000;
const TOTAL_OBJECTS: usize = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"payload": "x".repeat(512)}
    }))
    .expect("valid ConfigMap")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    let mut server = support::spawn_server(&kubeconfig)?;
    let pid = server.id();
    let yaml = std::fs::read_to_string(&kubeconfig)?;
    let client = kubeflex_testenv::client_from_kubeconfig(&yaml).await?;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "bench"}}))?,
        )
        .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");

    // 50 watchers, each on its own connection, recording arrival times.
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let c = kubeflex_testenv::client_from_kubeconfig(&yaml).await?;
        let api: Api<ConfigMap> = Api::namespaced(c, "bench");
        let arrivals = arrivals.clone();
        let mut stream = api
            .watch(&WatchParams::default().timeout(290), "0")
            .await?
            .boxed();
        watchers.push(tokio::spawn(async move {
            while let Ok(Some(event)) = stream.try_next().await {
                if let WatchEvent::Added(obj) = event {
                    let name = obj.metadata.name.unwrap_or_default();
                    arrivals
                        .lock()
                        .map(|mut a| a.push((name, Instant::now())))
                        .ok();
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let acks: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let cms = cms.clone();
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (w..TIMED_WRITES).step_by(WRITERS) {
                let name = format!("cm-{i}");
                let t = Instant::now();
                if cms.create(&PostParams::default(), &cm(&name)).await.is_ok() {
                    let done = Instant::now();
                    latencies.push(done - t);
                    acks.lock().map(|mut a| a.insert(name, done)).ok();
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    // Phase 2: the same watchers, writes paced at 500/s, so the delay shows
    // delivery rather than 50 watchers' decoding backlog on 2 shared cores.
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    for i in 0..PACED_WRITES {
        tick.tick().await;
        let name = format!("paced-{i}");
        if cms.create(&PostParams::default(), &cm(&name)).await.is_ok() {
            acks.lock().map(|mut a| a.insert(name, Instant::now())).ok();
        }
    }
    // Let the last events reach every watcher.
    let expected = (TIMED_WRITES + PACED_WRITES) * WATCHERS;
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.lock().map(|a| a.len()).unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    let (mut delays, mut paced): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    if let Ok(a) = arrivals.lock() {
        for (name, at) in a.iter() {
            if let Some(ack) = acks.get(name) {
                let d = at.saturating_duration_since(*ack);
                if name.starts_with("paced-") {
                    paced.push(d);
                } else {
                    delays.push(d);
                }
            }
        }
    }
    delays.sort();
    paced.sort();
    let delivered = delays.len() + paced.len();
    for w in watchers {
        w.abort();
    }

    // Fill up to 10,000 objects for the memory figure.
    let mut fill = Vec::new();
    for w in 0..WRITERS {
        let cms = cms.clone();
        fill.push(tokio::spawn(async move {
            for i in (TIMED_WRITES + PACED_WRITES + w..TOTAL_OBJECTS).step_by(WRITERS) {
                let _ = cms
                    .create(&PostParams::default(), &cm(&format!("cm-{i}")))
                    .await;
            }
        }));
    }
    for f in fill {
        f.await?;
    }
    let listed = cms.list(&Default::default()).await?.items.len();
    let rss_mib = peak_rss_kib(pid) as f64 / 1024.0;

    println!("testenv benchmark ({WRITERS} writers, {WATCHERS} watchers, 512-byte ConfigMaps)");
    println!(
        "  writes:            {TIMED_WRITES} in {:.2?} = {:.0} writes/s (target >= 2000)",
        elapsed,
        TIMED_WRITES as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  write latency:     p50 {:.2?}  p99 {:.2?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    println!("  watch delivery:    {delivered}/{expected} events delivered to {WATCHERS} watchers");
    println!(
        "  delay after ack, writes paced at 500/s: p50 {:.2?}  p99 {:.2?} (target p99 < 20ms)",
        percentile(&paced, 0.5),
        percentile(&paced, 0.99)
    );
    println!(
        "  delay after ack, at full write speed:   p50 {:.2?}  p99 {:.2?}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99)
    );
    println!("  objects stored:    {listed} ConfigMaps in namespace bench");
    println!("  server peak RSS:   {rss_mib:.1} MiB (target < 200 MiB for 10,000 objects)");
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}
