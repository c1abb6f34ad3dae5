//! Benchmark (TESTING.md "Benchmarks"): a no-change reconcile pass over N apps. A new head whose
//! apps are all applied is loaded, planned and every app reconciled once; the figure is the wall
//! time of that pass and the number of AWS calls it made (the goal: none).
//!
//! Run: `cargo bench --bench reconcile -- 200 2000 20000` (the `make bench` table uses it).

use gitmoxi::aws::fake::FakeWorld;
use gitmoxi::clock::Clock;
use gitmoxi::controller::{Controller, ControllerSettings, RepoPolicy};
use gitmoxi::metrics::Metrics;
use gitmoxi_deploy::record::AppKey;
use gitmoxi_deploy::spec::{load_snapshot, MemTree, RenderContext};
use gitmoxi_state::Store;
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

async fn bench(n: usize) -> (Duration, Duration, u32) {
    let world = FakeWorld::new();
    world.create_cluster("us-east-1", "prod");
    let store = Store::temporary().expect("store");
    let settings =
        ControllerSettings { default_region: "us-east-1".into(), concurrency: 16, seed: 1, drift_interval: Duration::from_secs(3600) };
    let controller = Controller::new(store.clone(), world.provider(), Clock::system(), Metrics::new(), settings);
    let policy = RepoPolicy { max_prune: 3, max_prune_percent: 25, drift: Default::default() };
    let ctx = RenderContext { default_region: "us-east-1".into() };
    let snapshot = load_snapshot(&tree(n, "nginx:1"), &ctx);
    controller.apply_head("bench", "main", "c1", snapshot, policy).expect("head");
    // deploy everything once (virtual time runs fast: the clock is paused)
    let keys: Vec<AppKey> = (0..n)
        .map(|i| AppKey { repo: "bench".into(), branch: "main".into(), prefix: format!("apps/team{}/svc{i}/svc{i}", i % 20) })
        .collect();
    for _ in 0..200 {
        let mut busy = false;
        for k in &keys {
            let _ = controller.reconcile(k).await;
            busy |= store.record(k).expect("store").is_some_and(|r| r.in_flight());
        }
        if !busy {
            break;
        }
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    // one steady pass: the drift check that follows every deployment
    for k in &keys {
        let _ = controller.reconcile(k).await;
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

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![200, 2000] } else { sizes };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
    println!("| apps | render + plan | no-change pass (render, plan, reconcile every app) | AWS calls |");
    println!("|---|---|---|---|");
    for n in sizes {
        let (loaded, total, calls) = runtime.block_on(bench(n));
        println!("| {n} | {:.1} ms | {:.1} ms | {calls} |", loaded.as_secs_f64() * 1000.0, total.as_secs_f64() * 1000.0);
    }
}
