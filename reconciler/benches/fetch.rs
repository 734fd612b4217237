//! Benchmark (`cargo bench -p kubeflex-reconciler --bench fetch`): the Git
//! source alone, against a `git daemon` on loopback serving a repository of
//! `BENCH_CPS` (default 10,000) files: one full poll, then polls after
//! commits changing one file each, next to the git CLI's `git fetch` +
//! `git diff-tree` of the same commits. Prints figures; asserts nothing
//! about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kubeflex_reconciler::source::{GitSource, GitSourceConfig, Source};
use support::{GitDaemon, cp_with_vars, git};

const ROUNDS: usize = 10;

fn main() {
    let n = support::bench_cps();
    let up = support::Upstream::new(&[]);
    let files = support::generated_cps(n);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let mut last = up.commit(&refs, &[], "generated tenants");
    let daemon = GitDaemon::start(&up.repos());
    git(up.tmp.path(), &["clone", "-q", &daemon.url(), "cli"]);
    let cli = up.tmp.path().join("cli");

    let mut config = GitSourceConfig::new(daemon.url(), up.cache());
    config.path = "controlplanes".to_owned();
    let source = GitSource::new(config).unwrap();
    let t = Instant::now();
    source.poll(None).unwrap();
    println!(
        "full poll of {n} files (fetch, tree read): {:.1?}",
        t.elapsed()
    );

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let content = cp_with_vars("bench-00042", &format!("    round: r{i}\n"));
        let next = up.commit(&[("controlplanes/bench-00042.yaml", &content)], &[], "one");
        let t = Instant::now();
        let update = source.poll(Some(&last)).unwrap();
        ours.push(t.elapsed());
        assert_eq!(update.snapshot.revision(), next);
        let t = Instant::now();
        git(&cli, &["fetch", "-q", "origin"]);
        git(&cli, &["diff-tree", "-r", "--name-only", &last, &next]);
        theirs.push(t.elapsed());
        last = next;
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "one changed file, median of {ROUNDS}: our fetch + tree diff {:.1?}; git CLI fetch + diff-tree {:.1?}",
        median(&mut ours),
        median(&mut theirs)
    );
}
