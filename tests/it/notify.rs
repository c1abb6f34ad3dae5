//! Notifications against a local HTTP receiver: the generic webhook gets every event as JSON, the
//! depdef's webhook gets its template filled, a Slack message in Block Kit, and a receiver that nobody
//! answers neither delays nor fails the deployment (it is retried a bounded number of times and counted).

use crate::moto::{free_port, synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let (addr, task) = listen("127.0.0.1", received.clone()).await;
    (format!("http://{addr}"), received, task)
}

/// A receiver on `ip` that keeps every JSON body POSTed to `/{sink}` in `received`.
async fn listen(ip: &str, received: Received) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route(
            "/{sink}",
            post(|State(r): State<Received>, Path(sink): Path<String>, Json(body): Json<Value>| async move {
                r.lock().unwrap().push((sink, body));
                "ok"
            }),
        )
        .with_state(received);
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.expect("a loopback address");
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_slack_the_webhook_and_the_app_template_and_a_dead_receiver_does_not_delay_anything() {
    let (url, received, receiver_task) = receiver().await;
    let dead = format!("http://127.0.0.1:{}/hooks/down", free_port());
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    let depdef = format!(
        r#"{{"stabilityCheck": {{"pollInterval": 1, "timeout": 60}},
  "webhooks": [{{"name": "team", "urls": ["{url}/app", "{dead}"], "payload_template": {{"text": "[{{stage}}] {{message}}"}}}}]}}"#
    );
    write_terraform_app(&repo, "prod/web/web", "web", "nginx:1", 1, &depdef, "");
    repo.commit("web");
    let started = std::time::Instant::now();
    // the receivers are local: the operator allows the host (issue 27: a committer's URL
    // reaches no internal address otherwise)
    let server = Server::start_notifying(&moto, &repo, (Some(format!("{url}/slack")), Some(format!("{url}/events"))), &["127.0.0.1"]).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert!(started.elapsed() < Duration::from_secs(30), "a dead receiver must not slow the deployment: {:?}", started.elapsed());

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
            let slack =
                got.iter().find(|(s, b)| s == "slack" && b["blocks"][0]["text"]["text"].as_str().is_some_and(|t| t.ends_with("succeeded")));
            let slack = slack.unwrap_or_else(|| panic!("the Slack message of the success: {got:#?}")).1.clone();
            assert_eq!(slack["blocks"][0]["type"], "header");
            assert!(slack.to_string().contains("prod/web/web@main"), "{slack}");
            assert!(slack.to_string().contains("*Outcome*\\nsucceeded"), "{slack}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "events seen: {got:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.api)).await.unwrap().text().await.unwrap();
        if metrics.contains(r#"gitmoxi_notifications_total{result="failed",sink="app_webhook"}"#) {
            assert!(metrics.contains(r#"gitmoxi_notifications_total{result="delivered",sink="webhook"}"#), "{metrics}");
            assert!(metrics.contains(r#"gitmoxi_notifications_total{result="delivered",sink="slack"}"#), "{metrics}");
            assert!(!metrics.contains("hooks/down"), "no webhook URL in the metrics");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the dead receiver is counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
    receiver_task.abort();
}

/// Issue 27, items 2 and 3: a committer's depdef webhooks reach no internal host (other 127.x
/// addresses, hex and decimal IP forms, the metadata address), carry no credentials, and never
/// the controller's own API, even with the operator's allowlist naming its host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depdef_webhooks_reach_no_internal_host_and_never_the_controller() {
    // listeners on other loopback addresses, as an internal service would be
    let mut internal = Vec::new();
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    for ip in ["127.0.0.2", "127.0.0.3"] {
        internal.push(listen(ip, received.clone()).await.0);
    }
    let (a, b) = (internal[0], internal[1]);
    let decimal = u32::from(match b.ip() {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => unreachable!("an IPv4 listener"),
    });
    let moto = Moto::start().await;
    let infra = moto.infra("prod");
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    let urls = [
        format!("http://{a}/plain"),
        format!("https://{a}/tls"),
        format!("http://{decimal}:{}/decimal", b.port()),
        format!("http://0x7f000003:{}/hex", b.port()),
        format!("http://user:secret@{b}/userinfo"),
        "http://169.254.169.254/latest/meta-data".to_string(),
    ];
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let depdef = format!(
        r#"{{"stabilityCheck": {{"pollInterval": 1, "timeout": 60}},
  "webhooks": [{{"name": "team", "urls": [{}], "payload_template": {{"command": "allow_prune", "text": "{{message}}"}}}}]}}"#,
        list.join(", ")
    );
    write_terraform_app(&repo, "prod/web/web", "web", "nginx:1", 1, &depdef, "");
    repo.commit("web, with webhooks to internal hosts");
    let server = Server::start_notifying(&moto, &repo, (None, None), &[]).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    // started and succeeded: every URL of both events refused
    let metrics = refused_at_least_on(&server.api, 2 * urls.len() as u64).await;
    assert!(!metrics.contains(r#"result="delivered",sink="app_webhook""#), "{metrics}");
    assert!(received.lock().unwrap().is_empty(), "an internal listener was reached: {:?}", received.lock().unwrap());
    assert!(!metrics.contains("secret"), "no credential in the metrics");
    server.stop().await;

    // the operator allows the loopback host: the controller's own listener is still never called
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    write_terraform_app(&repo, "prod/api/api", "api", "nginx:1", 1, r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#, "");
    repo.commit("api");
    let server = Server::start_notifying(&moto, &repo, (None, None), &["127.0.0.1", &a.ip().to_string()]).await;
    server.wait_app("prod/api/api", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let own = format!("{}/api/v2/commands", server.api);
    let depdef = format!(
        r#"{{"stabilityCheck": {{"pollInterval": 1, "timeout": 60}},
  "webhooks": [{{"name": "team", "urls": ["{own}", "http://{a}/allowed"], "payload_template": {{"command": "pause", "app": "prod/api/api"}}}}]}}"#
    );
    write_terraform_app(&repo, "prod/api/api", "api", "nginx:2", 1, &depdef, "");
    repo.commit("api: nginx 2, with a webhook to the controller");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // the deployment's start and end both reach the allowed host
    while received.lock().unwrap().iter().filter(|(sink, _)| sink == "allowed").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the allowed host is reached");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = refused_at_least_on(&server.api, 2).await;
    assert!(metrics.contains(r#"gitmoxi_notifications_total{result="delivered",sink="app_webhook"}"#), "{metrics}");
    let app = server.app("prod/api/api").await.unwrap();
    assert_ne!(app["status"], "Paused", "the controller's own API was reached from a file: {app:#}");
    server.stop().await;
}

async fn refused_at_least_on(api: &str, n: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = reqwest::get(format!("{api}/metrics")).await.unwrap().text().await.unwrap();
        let refused = metrics
            .lines()
            .find(|l| l.starts_with(r#"gitmoxi_notifications_total{result="refused",sink="app_webhook"}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if refused >= n {
            return metrics;
        }
        assert!(std::time::Instant::now() < deadline, "{n} refusals expected: {metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
