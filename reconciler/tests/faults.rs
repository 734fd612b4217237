//! Faults, end to end with the `kubeflex-reconciler` binary: the Git server
//! going away, the API server going away, a reconciler killed in the middle
//! of a pass, and two reconcilers started for one source. In each, nothing
//! that runs is lost, the failure is visible, and the reconciler converges
//! once the fault clears.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kubeflex_operator::api::Sync;
use support::{
    Cluster, GitDaemon, LoggedReconciler, Upstream, cp, cp_with_vars, eventually,
    reconciler_command,
};

fn condition<'a>(
    sync: &'a Sync,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    sync.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// The reconciler binary named `name`, following `daemon`'s repository
/// with a one-second poll, logging its lease's lines too (they come from
/// the leader module it shares with the operator).
fn following(cluster: &Cluster, name: &str, daemon: &GitDaemon, up: &Upstream) -> Command {
    let mut cmd = reconciler_command(cluster, name);
    cmd.env(
        "RUST_LOG",
        format!("{},kubeflex_operator::leader=info", support::RECONCILER_LOG),
    );
    cmd.args(["--git-url", &daemon.url(), "--interval", "1s"])
        .arg("--cache-dir")
        .arg(up.cache());
    cmd
}

/// Two reconcilers for one source: the first applied `object`, the second
/// waits for the lease.
async fn leader_and_standby(
    cluster: &Cluster,
    command: impl Fn() -> Command,
    object: &str,
) -> (LoggedReconciler, LoggedReconciler) {
    let leader = LoggedReconciler::spawn(command());
    eventually("the first one applies", || async {
        cluster.cp(object).await.is_some()
    })
    .await;
    let standby = LoggedReconciler::spawn(command());
    eventually("the second one waits for the lease", || async {
        standby.logged("another instance holds the lease; waiting")
    })
    .await;
    assert!(leader.logged("lease acquired"), "{}", leader.log());
    (leader, standby)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_git_server_keeps_what_runs_reports_it_and_converges_when_back() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[
        ("controlplanes/a.yaml", &cp("gd-a")),
        ("controlplanes/b.yaml", &cp("gd-b")),
    ]);
    let daemon = GitDaemon::start(&up.repos());
    let port = daemon.port;
    let mut reconciler = LoggedReconciler::spawn(following(&cluster, "gitdown", &daemon, &up));
    eventually("a and b applied", || async {
        cluster.cp("gd-a").await.is_some() && cluster.cp("gd-b").await.is_some()
    })
    .await;

    // The server goes away; meanwhile Git moves on (c replaces b).
    drop(daemon);
    up.commit(
        &[("controlplanes/c.yaml", &cp("gd-c"))],
        &["controlplanes/b.yaml"],
        "c replaces b",
    );
    eventually("the Sync object reports the failed fetch", || async {
        let Some(sync) = cluster.sync("gitdown").await else {
            return false;
        };
        condition(&sync, "Ready").is_some_and(|c| c.status == "False" && c.reason == "FetchFailed")
            && condition(&sync, "Fetching").is_some_and(|c| c.status == "True")
    })
    .await;
    let sync = cluster.sync("gitdown").await.unwrap();
    let message = &condition(&sync, "Ready").unwrap().message;
    assert!(
        message.contains(&format!("127.0.0.1:{port}")),
        "the failure names the remote: {message}"
    );
    // A few failed passes later, nothing was pruned or applied.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(cluster.cp("gd-a").await.is_some());
    assert!(
        cluster.cp("gd-b").await.is_some(),
        "b must stay while Git cannot be read"
    );
    assert!(cluster.cp("gd-c").await.is_none());
    assert!(reconciler.running(), "{}", reconciler.log());
    assert!(reconciler.logged("pass failed; keeping the last applied state"));

    // Back on the same port: the retry (with backoff) converges.
    let _daemon = GitDaemon::start_on(&up.repos(), port);
    eventually("c applied and b pruned once Git is back", || async {
        cluster.cp("gd-c").await.is_some() && cluster.cp("gd-b").await.is_none()
    })
    .await;
    eventually("Ready again", || async {
        let sync = cluster.sync("gitdown").await.unwrap();
        condition(&sync, "Ready").is_some_and(|c| c.status == "True")
            && condition(&sync, "Fetching").is_some_and(|c| c.status == "False")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_api_server_loses_nothing_and_the_reconciler_converges_when_it_returns() {
    let mut cluster = Cluster::start_durable().await;
    let up = Upstream::new(&[
        ("controlplanes/a.yaml", &cp("ad-a")),
        ("controlplanes/b.yaml", &cp("ad-b")),
    ]);
    let daemon = GitDaemon::start(&up.repos());
    let mut reconciler = LoggedReconciler::spawn(following(&cluster, "apidown", &daemon, &up));
    eventually("a and b applied", || async {
        cluster.cp("ad-a").await.is_some() && cluster.cp("ad-b").await.is_some()
    })
    .await;

    cluster.stop();
    up.commit(
        &[
            (
                "controlplanes/a.yaml",
                &cp_with_vars("ad-a", "    size: large\n"),
            ),
            ("controlplanes/c.yaml", &cp("ad-c")),
        ],
        &[],
        "resize a, add c",
    );
    // Passes fail while the API server is away (shorter than the lease, so
    // the reconciler keeps its leadership and keeps retrying).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reconciler.logged("pass failed; keeping the last applied state") {
        assert!(
            Instant::now() < deadline,
            "no failed pass logged:\n{}",
            reconciler.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reconciler.running(), "{}", reconciler.log());

    cluster.restart().await;
    eventually("the commit made during the outage is applied", || async {
        let Some(a) = cluster.cp("ad-a").await else {
            return false;
        };
        a.data["spec"]["globalVars"]["size"] == "large" && cluster.cp("ad-c").await.is_some()
    })
    .await;
    assert!(
        cluster.cp("ad-b").await.is_some(),
        "b was never removed from Git"
    );
    assert!(reconciler.running(), "{}", reconciler.log());
}

/// Names of ControlPlanes seen created and deleted, from a watch.
#[derive(Default)]
struct Seen {
    present: BTreeSet<String>,
    deleted: Vec<String>,
}

fn track(cluster: &Cluster) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    let stream = watcher::watcher(cluster.cps(), watcher::Config::default());
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(event) = stream.next().await {
            let mut seen = sink.lock().unwrap();
            match event {
                Ok(Event::Apply(o) | Event::InitApply(o)) => {
                    seen.present.insert(o.metadata.name.unwrap());
                }
                Ok(Event::Delete(o)) => {
                    let name = o.metadata.name.unwrap();
                    seen.present.remove(&name);
                    seen.deleted.push(name);
                }
                _ => {}
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_killed_mid_pass_resumes_without_a_wrong_prune() {
    const N: usize = 1500;
    let cluster = Cluster::start().await;
    let first: Vec<(String, String)> = (0..N)
        .map(|i| {
            let name = format!("f-{i:04}");
            (format!("controlplanes/{name}.yaml"), cp(&name))
        })
        .collect();
    let refs: Vec<(&str, &str)> = first
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let up = Upstream::new(&refs);
    let daemon = GitDaemon::start(&up.repos());
    let command = || following(&cluster, "crash", &daemon, &up);
    let (seen, task) = track(&cluster);
    let mut reconciler = LoggedReconciler::spawn(command());
    eventually("the first commit applied", || async {
        seen.lock().unwrap().present.len() == N
    })
    .await;
    reconciler.kill();

    // One tenant removed, as many added; the next reconciler dies while
    // applying (prunes come after the writes of a pass).
    let second: Vec<(String, String)> = (0..N)
        .map(|i| {
            let name = format!("g-{i:04}");
            (format!("controlplanes/{name}.yaml"), cp(&name))
        })
        .collect();
    let refs: Vec<(&str, &str)> = second
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    up.commit(
        &refs,
        &["controlplanes/f-0000.yaml"],
        "replace f-0000, add g-*",
    );
    let added = |seen: &Seen| seen.present.iter().filter(|n| n.starts_with("g-")).count();
    let mut reconciler = LoggedReconciler::spawn(command());
    let deadline = Instant::now() + Duration::from_secs(30);
    while added(&seen.lock().unwrap()) < 20 {
        assert!(
            Instant::now() < deadline,
            "no progress:\n{}",
            reconciler.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reconciler.kill();
    let applied_before_kill = added(&seen.lock().unwrap());
    assert!(
        applied_before_kill < N,
        "the kill should land mid-pass ({applied_before_kill} of {N} applied)"
    );
    assert!(
        seen.lock().unwrap().deleted.is_empty(),
        "nothing pruned yet"
    );

    let _reconciler = LoggedReconciler::spawn(command());
    eventually("the rest applied and f-0000 pruned", || async {
        let seen = seen.lock().unwrap();
        added(&seen) == N && !seen.present.contains("f-0000")
    })
    .await;
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.deleted,
        ["f-0000"],
        "only the removed tenant is pruned"
    );
    assert_eq!(seen.present.len(), 2 * N - 1);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reconcilers_for_one_source_do_not_fight_and_the_second_takes_over() {
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("pair-a"))]);
    let daemon = GitDaemon::start(&up.repos());
    let command = || following(&cluster, "pair", &daemon, &up);
    let (mut leader, standby) = leader_and_standby(&cluster, command, "pair-a").await;

    // Several poll intervals with both running: no writes back and forth.
    let rv = cluster
        .cp("pair-a")
        .await
        .unwrap()
        .metadata
        .resource_version;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        cluster
            .cp("pair-a")
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv
    );
    assert!(
        !standby.logged("pass done"),
        "the standby must not reconcile"
    );

    // The leader dies without releasing the lease; after it expires the
    // standby takes over and follows Git.
    leader.kill();
    up.commit(&[("controlplanes/b.yaml", &cp("pair-b"))], &[], "add b");
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.cp("pair-b").await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the standby did not apply b; its log:\n{}",
            standby.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(standby.logged("lease acquired"), "{}", standby.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciler_stopped_with_sigterm_hands_its_lease_over() {
    use k8s_openapi::api::coordination::v1::Lease;
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[("controlplanes/a.yaml", &cp("term-a"))]);
    let daemon = GitDaemon::start(&up.repos());
    let command = || following(&cluster, "term", &daemon, &up);
    let (mut first, standby) = leader_and_standby(&cluster, command, "term-a").await;
    let leases: kube::Api<Lease> = kube::Api::namespaced(cluster.client.clone(), "default");
    let holder = |lease: Lease| lease.spec.and_then(|s| s.holder_identity);
    let first_holder = holder(leases.get("kubeflex-reconciler-term").await.unwrap());
    assert!(first_holder.is_some());

    let status = std::process::Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = first.wait();
    assert!(
        exit.success(),
        "a clean stop exits 0: {exit:?}\n{}",
        first.log()
    );
    assert!(first.logged("lease released"), "{}", first.log());

    eventually("the standby holds the lease and follows Git", || async {
        let now = holder(leases.get("kubeflex-reconciler-term").await.unwrap());
        now.is_some() && now != first_holder && standby.logged("lease acquired")
    })
    .await;
    up.commit(&[("controlplanes/b.yaml", &cp("term-b"))], &[], "add b");
    eventually("b applied by the new holder", || async {
        cluster.cp("term-b").await.is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_defining_one_object_do_not_fight_over_it() {
    use kube::api::{Patch, PatchParams};
    use kubeflex_reconciler::names::LABEL_SOURCE;
    let cluster = Cluster::start().await;
    let team_a = Upstream::new(&[
        (
            "controlplanes/shared.yaml",
            &cp_with_vars("shared", "    team: a\n"),
        ),
        ("controlplanes/a.yaml", &cp("only-a")),
    ]);
    // Team b has more objects to create than are checked one by one, so
    // the paged, server-filtered list is what finds `shared`.
    let mut b_files = vec![
        (
            "controlplanes/shared.yaml".to_owned(),
            cp_with_vars("shared", "    team: b\n"),
        ),
        ("controlplanes/b.yaml".to_owned(), cp("only-b")),
    ];
    b_files.extend((0..40).map(|i| (format!("controlplanes/b-{i}.yaml"), cp(&format!("b-{i}")))));
    let b_refs: Vec<(&str, &str)> = b_files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let team_b = Upstream::new(&b_refs);
    let daemon_a = GitDaemon::start(&team_a.repos());
    let daemon_b = GitDaemon::start(&team_b.repos());
    let owner = |o: &kube::api::DynamicObject| {
        o.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_SOURCE).cloned())
    };
    let _a = LoggedReconciler::spawn(following(&cluster, "team-a", &daemon_a, &team_a));
    eventually("team a applied", || async {
        cluster.cp("shared").await.is_some() && cluster.cp("only-a").await.is_some()
    })
    .await;

    let _b = LoggedReconciler::spawn(following(&cluster, "team-b", &daemon_b, &team_b));
    eventually(
        "team b's Sync reports the object owned by team a",
        || async {
            let Some(sync) = cluster.sync("team-b").await else {
                return false;
            };
            condition(&sync, "Ready").is_some_and(|c| {
                c.status == "False" && c.message.contains("shared") && c.message.contains("team-a")
            })
        },
    )
    .await;
    assert!(
        cluster.cp("only-b").await.is_some() && cluster.cp("b-39").await.is_some(),
        "b's other objects are applied"
    );
    let shared = cluster.cp("shared").await.unwrap();
    assert_eq!(owner(&shared).as_deref(), Some("team-a"));
    assert_eq!(shared.data["spec"]["globalVars"]["team"], "a");
    let rv = shared.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cluster
            .cp("shared")
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv
    );

    // Handed over by hand: team a lets go, team b takes it.
    cluster
        .cps()
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {LABEL_SOURCE: "team-b"}}})),
        )
        .await
        .unwrap();
    eventually("team b applies its version", || async {
        let shared = cluster.cp("shared").await.unwrap();
        shared.data["spec"]["globalVars"]["team"] == "b"
    })
    .await;
    eventually("team b's Sync is Ready", || async {
        let sync = cluster.sync("team-b").await.unwrap();
        condition(&sync, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    let shared = cluster.cp("shared").await.unwrap();
    let rv = shared.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = cluster.cp("shared").await.unwrap();
    assert_eq!(later.metadata.resource_version, rv, "no tug of war");
    assert_eq!(owner(&later).as_deref(), Some("team-b"));
}

/// A TCP listener on `port` that accepts connections and never answers: a
/// stalled Git server. Each accept is reported on the channel; the
/// connections stay open while the test runs.
fn stalled_server(port: u16) -> std::sync::mpsc::Receiver<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        // The previous server on this port may still be going away.
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => break listener,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("binding {port}: {e}"),
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
            let _ = tx.send(());
        }
    });
    rx
}

/// A signed push webhook; returns the HTTP status code.
fn push_webhook(port: u16, secret: &[u8]) -> u16 {
    use std::io::{Read as _, Write as _};
    let body = r#"{"ref":"refs/heads/main"}"#;
    let sig = kubeflex_reconciler::webhook::github_signature(secret, body.as_bytes());
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /hook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("the webhook answers");
    out.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Item 8: a `git://` server that accepts and never answers ends the pass
/// at `--fetch-timeout`, reported as `FetchTimeout` in the Sync status;
/// while the fetch waits, drift is corrected and webhooks and `kflex sync`
/// requests are taken (the request is handled by the next pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_git_server_times_out_while_drift_and_triggers_are_served() {
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
    let cluster = Cluster::start().await;
    let up = Upstream::new(&[(
        "controlplanes/a.yaml",
        &cp_with_vars("st-a", "    x: \"1\"\n"),
    )]);
    let daemon = GitDaemon::start(&up.repos());
    let port = daemon.port;
    let secret = up.tmp.path().join("secret");
    std::fs::write(&secret, "stall").unwrap();
    let hook_port = support::free_port();
    let mut cmd = reconciler_command(&cluster, "stall");
    cmd.args(["--git-url", &daemon.url(), "--interval", "1h"])
        .args(["--fetch-timeout", "10s"])
        .args(["--webhook-addr", &format!("127.0.0.1:{hook_port}")])
        .arg("--webhook-secret-file")
        .arg(&secret)
        .arg("--cache-dir")
        .arg(up.cache());
    let mut reconciler = LoggedReconciler::spawn(cmd);
    let x = |o: &DynamicObject| {
        o.data["spec"]["globalVars"]["x"]
            .as_str()
            .map(str::to_owned)
    };
    eventually("applied", || async {
        cluster
            .cp("st-a")
            .await
            .is_some_and(|o| x(&o).as_deref() == Some("1"))
    })
    .await;

    // The server stalls; a push webhook starts a fetch that waits on it.
    drop(daemon);
    let accepted = stalled_server(port);
    assert_eq!(push_webhook(hook_port, b"stall"), 202);
    accepted
        .recv_timeout(Duration::from_secs(10))
        .expect("the webhook's pass connects to the stalled server");

    // Someone edits the object while the fetch waits: corrected before the
    // fetch gives up, not after.
    let admin_cps: Api<DynamicObject> = Api::all_with(
        cluster.admin.clone(),
        &ApiResource::erase::<kubeflex_operator::api::ControlPlane>(&()),
    );
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    admin_cps
        .patch(
            "st-a",
            &edit,
            &Patch::Merge(serde_json::json!({"spec": {"globalVars": {"x": "2"}}})),
        )
        .await
        .unwrap();
    eventually("the drift corrected", || async {
        cluster
            .cp("st-a")
            .await
            .is_some_and(|o| x(&o).as_deref() == Some("1"))
    })
    .await;
    let sync = cluster.sync("stall").await.unwrap();
    assert!(
        condition(&sync, "Ready").is_none_or(|c| c.reason != "FetchTimeout"),
        "the correction waited for the fetch to time out: {:?}\n{}",
        sync.status,
        reconciler.log()
    );
    assert!(reconciler.logged("drift corrected"), "{}", reconciler.log());

    // Triggers are taken meanwhile: a webhook, and a `kflex sync` request.
    assert_eq!(push_webhook(hook_port, b"stall"), 202);
    let syncs: Api<Sync> = Api::all(cluster.admin.clone());
    syncs
        .patch(
            "stall",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "gitops.kflex.kubestellar.org/sync-requested-at": "during-the-stall"
            }}})),
        )
        .await
        .unwrap();

    eventually("the timeout reported as such", || async {
        let sync = cluster.sync("stall").await.unwrap();
        condition(&sync, "Ready").is_some_and(|c| {
            c.status == "False"
                && c.reason == "FetchTimeout"
                && c.message.contains("timed out after 10s")
                && c.message.contains(&format!("127.0.0.1:{port}"))
        })
    })
    .await;
    // The request is handled by the pass after (which times out too).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let sync = cluster.sync("stall").await.unwrap();
        let handled = sync.status.and_then(|s| s.last_handled_sync_at);
        if handled.as_deref() == Some("during-the-stall") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sync request was not handled: {handled:?}\n{}",
            reconciler.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reconciler.running(), "{}", reconciler.log());
    assert!(cluster.cp("st-a").await.is_some());
}

/// Item 8 over https: a server that accepts the TCP connection and never
/// starts TLS ends a `--once` pass at `--fetch-timeout` with `FetchTimeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_https_server_times_out() {
    let cluster = Cluster::start().await;
    let port = support::free_port();
    let accepted = stalled_server(port);
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = reconciler_command(&cluster, "stallhttps");
    cmd.args([
        "--git-url",
        &format!("https://127.0.0.1:{port}/demo.git"),
        "--once",
    ])
    .args(["--fetch-timeout", "2s"])
    .arg("--cache-dir")
    .arg(cache.path());
    let mut reconciler = LoggedReconciler::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = reconciler.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running: {}",
            reconciler.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{}", reconciler.log());
    assert!(accepted.try_recv().is_ok(), "no connection was made");
    let sync = cluster.sync("stallhttps").await.unwrap();
    let ready = condition(&sync, "Ready").unwrap();
    assert_eq!(ready.reason, "FetchTimeout", "{ready:?}");
}
