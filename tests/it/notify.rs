//! Notifications against a local HTTP receiver: the generic webhook gets every event as JSON, the
//! depdef's webhook gets its template filled, and a Slack URL that nobody answers neither delays
//! nor fails the deployment (it is retried a bounded number of times and counted).

use crate::moto::{free_port, synced, Moto, Server};
use crate::support::{ecs_app, TestRepo};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/{sink}",
            post(|State(r): State<Received>, Path(sink): Path<String>, Json(body): Json<Value>| async move {
                r.lock().unwrap().push((sink, body));
                "ok"
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, received, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_webhook_and_the_app_template_and_a_dead_slack_does_not_delay_anything() {
    let (url, received, receiver_task) = receiver().await;
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    let depdef = format!(
        r#"{{"stabilityCheck": {{"pollInterval": 1, "timeout": 60}},
  "webhooks": [{{"name": "team", "urls": ["{url}/app"], "payload_template": {{"text": "[{{stage}}] {{message}}"}}}}]}}"#
    );
    repo.write_all(&ecs_app("prod/web/web", "web", "{{ cluster_name }}", "nginx:1", 1, &depdef));
    repo.write("prod/web/web_input.json", r#"{"ref": {"file": ["infra/terraform_output.json"], "type": "TERRAFORM"}}"#);
    let svc = std::fs::read_to_string(repo.path().join("prod/web/web_svcdef.json")).unwrap();
    let svc = svc
        .replace("{{ subnets | tojson }}", "{{ private_subnets | tojson }}")
        .replace("{{ security_groups | tojson }}", "[\"{{ security_group_id }}\"]");
    repo.write("prod/web/web_svcdef.json", &svc);
    repo.commit("web");
    let dead_slack = format!("http://127.0.0.1:{}/services/T000/B000/XXXX", free_port());
    let started = std::time::Instant::now();
    let server = Server::start_full(
        &moto,
        &repo,
        25,
        Duration::from_millis(500),
        None,
        (Some(dead_slack), Some(format!("{url}/events"))),
        Duration::from_secs(300),
    )
    .await;
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert!(started.elapsed() < Duration::from_secs(30), "a dead Slack must not slow the deployment: {:?}", started.elapsed());

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = received.lock().unwrap().clone();
        let stages: Vec<String> =
            got.iter().filter(|(s, _)| s == "events").map(|(_, b)| b["stage"].as_str().unwrap_or("").to_string()).collect();
        let app_texts: Vec<String> =
            got.iter().filter(|(s, _)| s == "app").map(|(_, b)| b["text"].as_str().unwrap_or("").to_string()).collect();
        if stages.contains(&"succeeded".to_string()) && app_texts.iter().any(|t| t.starts_with("[succeeded]")) {
            assert_eq!(stages.first().map(String::as_str), Some("started"), "{stages:?}");
            let done = got.iter().find(|(s, b)| s == "events" && b["stage"] == "succeeded").unwrap();
            assert_eq!(done.1["app"], "prod/web/web");
            assert_eq!(done.1["strategy"], "rolling");
            assert_eq!(done.1["outcome"], "succeeded");
            assert!(done.1["commit"].as_str().unwrap().len() >= 7);
            assert!(app_texts.iter().any(|t| t.starts_with("[started] deployment started")), "{app_texts:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "events seen: {got:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.api)).await.unwrap().text().await.unwrap();
        if metrics.contains(r#"gitmoxi_notifications_total{result="failed",sink="slack"}"#) {
            assert!(metrics.contains(r#"gitmoxi_notifications_total{result="delivered",sink="webhook"}"#), "{metrics}");
            assert!(!metrics.contains("XXXX"), "no webhook URL in the metrics");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dead Slack is counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
    receiver_task.abort();
}
