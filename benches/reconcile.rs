//! Benchmark (TESTING.md "Benchmarks"): a no-change reconcile pass over N apps. A new head whose
//! apps are all applied is loaded, planned and every app reconciled once; the figure is the wall
//! time of that pass and the number of AWS calls it made (the goal: none).
//!
//! Run: `cargo bench --bench reconcile -- 200 2000 20000` (the `make bench` table uses it).

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

async fn bench(n: usize) -> (Duration, Duration, u32) {
    let world = FakeWorld::new();
    world.create_cluster("us-east-1", "prod");
    let store = Store::temporary().expect("store");
    let settings = ControllerSettings {
        default_region: "us-east-1".into(),
        concurrency: 16,
        seed: 1,
        drift_interval: Duration::from_secs(3600),
        own_account: Some("123456789012".into()),
        account_roles: Default::default(),
        render_limits: Default::default(),
        render_worker: None,
    };
    let controller = Controller::new(store.clone(), world.provider(), Clock::system(), Metrics::new(), settings);
    // drift checks off: this measures the pass a new, unchanged head causes
    let drift = gitmoxi_deploy::drift::DriftPolicy { mode: gitmoxi_deploy::drift::DriftMode::Ignore, ..Default::default() };
    let policy = RepoPolicy { max_prune: 3, max_prune_percent: 25, drift };
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
