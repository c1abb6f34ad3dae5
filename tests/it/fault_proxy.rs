//! Against moto through the fault proxy (TESTING.md §3): a fifth of all calls throttled and one in
//! twenty answered 500/503 (half of those after moto applied them), with the SDK's standard
//! retries. Twenty ECS apps are created by one commit and updated by the next; all converge and
//! nothing is duplicated: one service per app, one task definition revision per commit.
//! `FAULT_SEED=n` replays another choice of faulted calls.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use gitmoxi::aws::fault_proxy::Faults;
use serde_json::Value;
use std::time::Duration;

const APPS: usize = 20;
const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 120}, "gmDeploymentCircuitBreaker": {"failureThreshold": 3}}"#;

fn prefix(i: usize) -> String {
    format!("prod/svc{i:02}/svc{i:02}")
}

fn write_apps(repo: &TestRepo, image: &str) {
    for i in 0..APPS {
        write_terraform_app(repo, &prefix(i), &format!("svc{i:02}"), "{{ image }}", 1, DEPDEF, &format!(r#", "image": "{image}""#));
    }
}

/// Waits until every app is Synced on `commit` with a succeeded last deployment.
async fn wait_all(server: &Server, commit: &str, limit: Duration) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let mut apps = Vec::new();
        for i in 0..APPS {
            if let Some(app) = server.app(&prefix(i)).await {
                apps.push(app);
            }
        }
        let done = apps.len() == APPS
            && apps.iter().all(|a| synced(a) && a["last_outcome"] == "succeeded" && a["applied_commit"].as_str() == Some(commit));
        if done {
            return apps;
        }
        if start.elapsed() > limit {
            let behind: Vec<String> = apps
                .iter()
                .filter(|a| !(synced(a) && a["applied_commit"].as_str() == Some(commit)))
                .map(|a| format!("{} {} {} {}", a["app"], a["status"], a["last_outcome"], a["last_cause"]))
                .collect();
            panic!("{} of {APPS} apps listed; not converged after {limit:?}: {behind:#?}", apps.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_apps_converge_through_throttling_and_server_errors_with_nothing_duplicated() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_apps(&repo, "nginx:1");
    let first = repo.commit("twenty services");
    let seed = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    eprintln!("fault seed {seed} (replay with FAULT_SEED={seed})");
    let faults = Faults { throttle_percent: 20, server_error_percent: 5, latency: Duration::ZERO, seed };
    let server = Server::start_faulty(&moto, &repo, faults, 3).await;
    wait_all(&server, &first, Duration::from_secs(240)).await;

    write_apps(&repo, "nginx:2");
    let second = repo.commit("a new image for all twenty");
    wait_all(&server, &second, Duration::from_secs(240)).await;
    let counts = server.proxy.counts();
    let injected: u64 = counts.values().map(|c| c.throttled + c.failed + c.lost).sum();
    let lost_mutations: u64 =
        counts.iter().filter(|(op, _)| !op.name.starts_with("Describe") && !op.name.starts_with("List")).map(|(_, c)| c.lost).sum();
    eprintln!("calls of two commits of {APPS} apps under faults:\n{}", server.proxy.table());
    assert!(injected > 100, "faults were injected: {}", server.proxy.table());
    assert!(lost_mutations > 0, "some mutations took effect and their answer was lost: {}", server.proxy.table());

    let ecs = moto.ecs().await;
    let listed = ecs.list_services().cluster("prod").max_results(100).send().await.unwrap();
    assert_eq!(listed.service_arns().len(), APPS, "one service per app: {:?}", listed.service_arns());
    for i in 0..APPS {
        let family = format!("svc{i:02}");
        let svc = ecs.describe_services().cluster("prod").services(&family).send().await.unwrap();
        let svc = &svc.services()[0];
        assert!(svc.task_definition().unwrap().ends_with(&format!("{family}:2")), "{family} runs revision 2: {svc:?}");
        assert_eq!(svc.running_count(), 1, "{family}");
        let revisions = ecs.list_task_definitions().family_prefix(&family).send().await.unwrap();
        assert_eq!(
            revisions.task_definition_arns().len(),
            2,
            "one revision per commit for {family}: {:?}",
            revisions.task_definition_arns()
        );
    }
    // the history of every app tells both deployments
    for i in 0..APPS {
        let app = server.app(&prefix(i)).await.unwrap();
        let history = app["history"].to_string();
        assert!(history.contains(&first[..7]) && history.contains(&second[..7]), "{}: {history}", prefix(i));
    }
    server.stop().await;
}
