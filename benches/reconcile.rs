//! Benchmark (TESTING.md "Benchmarks"): a no-change reconcile pass over N apps. A new head whose
//! apps are all applied is loaded, planned and every app reconciled once; the figure is the wall
//! time of that pass and the number of AWS calls it made (the goal: none).
//!
//! Run: `cargo bench --bench reconcile -- 200 2000 20000` (the `make bench` table uses it).
//!
//! `steady N` (e.g. `cargo bench --bench reconcile -- steady 2000`): N ECS apps deployed through
//! the controller into the fake world, then one virtual hour of steady state (drift checks every
//! 5 minutes, the default): AWS calls per app per hour, by operation, and the share of AWS's ECS
//! read quota (20/s) the busiest second-averaged family uses.

use gitmoxi::clock::Clock;
use gitmoxi::controller::{Controller, ControllerSettings, RepoPolicy};
use gitmoxi::metrics::Metrics;
use gitmoxi_deploy::record::AppKey;
use gitmoxi_deploy::spec::{load_snapshot, MemTree, RenderContext};
use gitmoxi_state::Store;
use gitmoxi_testing::fake::FakeWorld;
use std::time::{Duration, Instant};

const CALLS: &[&str] =
    &["DescribeServices", "ListTasks", "RegisterTaskDefinition", "UpdateService", "CreateService", "ListTaskDefinitions"];

fn tree(n: usize, image: &str) -> MemTree {
    let mut tree = MemTree::new();
    for i in 0..n {
        let p = format!("apps/team{}/svc{i}/svc{i}", i % 20);
        tree.insert(&format!("{p}_svcdef.json"), &format!(r#"{{"serviceName": "svc{i}", "cluster": "prod", "desiredCount": 1}}"#));
        tree.insert(
            &format!("{p}_taskdef.json"),
            &format!(r#"{{"family": "svc{i}", "containerDefinitions": [{{"name": "app", "image": "{image}", "memory": 128}}]}}"#),
        );
        tree.insert(&format!("{p}_depdef.json"), r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#);
    }
    tree
}

/// The controller's settings with drift checks every `drift_interval`.
fn settings(drift_interval: Duration) -> ControllerSettings {
    ControllerSettings {
        default_region: "us-east-1".into(),
        concurrency: 16,
        seed: 1,
        drift_interval,
        own_account: Some("123456789012".into()),
        account_roles: Default::default(),
        render_limits: Default::default(),
        render_worker: None,
        freezes: Vec::new(),
    }
}

async fn bench(n: usize) -> (Duration, Duration, u32) {
    let world = FakeWorld::new();
    world.create_cluster("us-east-1", "prod");
    let store = Store::temporary().expect("store");
    let settings = settings(Duration::from_secs(3600));
    let controller = Controller::new(store.clone(), world.provider(), Clock::system(), Metrics::new(), settings);
    // drift checks off: this measures the pass a new, unchanged head causes
    let drift = gitmoxi_deploy::drift::DriftPolicy { mode: gitmoxi_deploy::drift::DriftMode::Ignore, ..Default::default() };
    let policy = RepoPolicy { max_prune: 3, max_prune_percent: 25, drift, adopt_untagged: false };
    let ctx = RenderContext::new("us-east-1".into());
    let snapshot = load_snapshot(&tree(n, "nginx:1"), &ctx);
    let fingerprints: Vec<(String, String, gitmoxi_deploy::spec::Identity)> =
        snapshot.apps.iter().filter_map(|(p, a)| a.as_ref().ok().map(|a| (p.clone(), a.fingerprint.clone(), a.identity.clone()))).collect();
    controller.apply_head("bench", "main", "c1", snapshot, policy).expect("head");
    // every app as if deployed at c1 (the store says so)
    let keys: Vec<AppKey> =
        fingerprints.iter().map(|(p, _, _)| AppKey { repo: "bench".into(), branch: "main".into(), prefix: p.clone() }).collect();
    for (key, (_, fingerprint, identity)) in keys.iter().zip(&fingerprints) {
        let mut entry = store.app(key).expect("store").expect("planned");
        entry.applied.fingerprint = Some(fingerprint.clone());
        entry.applied.identity = Some(identity.clone());
        entry.applied.commit = Some("c1".into());
        entry.applied.owned = true;
        store.put_app(&entry).expect("store");
    }
    let before: u32 = CALLS.iter().map(|c| world.calls(c)).sum();
    // the measured pass: a new commit with the same apps, every app reconciled once
    let started = Instant::now();
    let snapshot = load_snapshot(&tree(n, "nginx:1"), &ctx);
    let loaded = started.elapsed();
    controller.apply_head("bench", "main", "c2", snapshot, policy).expect("head");
    for k in &keys {
        controller.reconcile(k).await.expect("reconcile");
    }
    let total = started.elapsed();
    let after: u32 = CALLS.iter().map(|c| world.calls(c)).sum();
    (loaded, total, after - before)
}

/// N apps deployed, then one virtual hour of steady state: calls by operation in that hour.
async fn steady(n: usize) -> std::collections::BTreeMap<String, u32> {
    let world = FakeWorld::new();
    world.create_cluster("us-east-1", "prod");
    let store = Store::temporary().expect("store");
    let settings = ControllerSettings { concurrency: 64, ..settings(Duration::from_secs(300)) };
    let controller = Controller::new(store.clone(), world.provider(), Clock::starting_at(1_795_000_000_000), Metrics::new(), settings);
    // deploy with drift checks off (the fake world's cost grows with the apps it holds, so
    // checking the deployed apps while the others deploy would make the set-up cubic), then
    // the same apps again with drift checks on, as every gitmoxi runs
    let quiet = gitmoxi_deploy::drift::DriftPolicy { mode: gitmoxi_deploy::drift::DriftMode::Ignore, ..Default::default() };
    let ctx = RenderContext::new("us-east-1".into());
    let deploying = RepoPolicy { max_prune: 3, max_prune_percent: 25, drift: quiet, adopt_untagged: false };
    controller.apply_head("bench", "main", "c1", load_snapshot(&tree(n, "nginx:1"), &ctx), deploying).expect("head");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(controller.clone().run(shutdown.clone()));
    // virtual time: wait until every app runs what the head says
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let apps = store.apps().expect("store");
        let deployed = apps.iter().filter(|a| a.applied.commit.as_deref() == Some("c1") && a.last_outcome.is_some()).count();
        if deployed == n && store.records().expect("store").iter().all(|r| !r.in_flight()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(24 * 3600), "{deployed} of {n} deployed after a virtual day");
    }
    eprintln!("{n} apps deployed in {:?} virtual", started.elapsed());
    let steady = RepoPolicy { max_prune: 3, max_prune_percent: 25, drift: Default::default(), adopt_untagged: false };
    controller.apply_head("bench", "main", "c2", load_snapshot(&tree(n, "nginx:1"), &ctx), steady).expect("head");
    // let the first drift checks pass, then count one hour
    tokio::time::sleep(Duration::from_secs(600)).await;
    let before = world.all_calls();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let after = world.all_calls();
    shutdown.cancel();
    let _ = task.await;
    after.into_iter().map(|(op, c)| (op.clone(), c - before.get(&op).copied().unwrap_or(0))).filter(|(_, c)| *c > 0).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("steady") {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
        for n in args[1..].iter().filter_map(|a| a.parse::<usize>().ok()) {
            let wall = std::time::Instant::now();
            let calls = runtime.block_on(steady(n));
            let total: u32 = calls.values().sum();
            let ecs_reads: u32 = calls.iter().filter(|(op, _)| op.starts_with("Describe") || op.starts_with("List")).map(|(_, c)| c).sum();
            println!(
                "steady state, {n} apps, one virtual hour (drift every 5 min): {total} calls = {:.2} per app per hour; reads {:.2}/s = {:.1} % of ECS's 20/s read quota; by operation: {calls:?} (simulated in {:.1} s)",
                f64::from(total) / n as f64,
                f64::from(ecs_reads) / 3600.0,
                f64::from(ecs_reads) / 3600.0 / 20.0 * 100.0,
                wall.elapsed().as_secs_f64()
            );
        }
        return;
    }
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![200, 2000] } else { sizes };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
    println!("| apps | render + plan | no-change pass (render, plan, reconcile every app) | AWS calls |");
    println!("|---|---|---|---|");
    for n in sizes {
        let (loaded, total, calls) = runtime.block_on(bench(n));
        println!("| {n} | {:.1} ms | {:.1} ms | {calls} |", loaded.as_secs_f64() * 1000.0, total.as_secs_f64() * 1000.0);
    }
}
