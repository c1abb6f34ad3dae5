//! Every API endpoint behind the bearer token: refused without it or with a wrong one, answered
//! with it; bad JSON is a 400 that says what is wrong; a body over 1 MiB is a 413.

use gitmoxi::clock::Clock;
use gitmoxi::controller::{Controller, ControllerSettings};
use gitmoxi::http::webhooks::Webhooks;
use gitmoxi::http::{router, HttpState};
use gitmoxi::metrics::Metrics;
use gitmoxi::repos::Repos;
use gitmoxi_state::Store;
use gitmoxi_testing::fake::FakeWorld;
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "router-test-token";

async fn serve() -> (String, CancellationToken, Arc<Repos>) {
    let world = FakeWorld::new();
    let settings = ControllerSettings {
        default_region: "us-east-1".into(),
        concurrency: 2,
        seed: 3,
        drift_interval: Duration::from_secs(300),
        own_account: Some("123456789012".into()),
    };
    let controller = Controller::new(Store::temporary().unwrap(), world.provider(), Clock::system(), Metrics::new(), settings);
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap().keep();
    let repos = Repos::new(controller.clone(), dir.clone(), Duration::from_secs(3600), shutdown.clone());
    repos.start(&[]).unwrap();
    let webhooks = Arc::new(Webhooks { github_secret: Some("s".into()), gitlab_token: Some("t".into()) });
    let app = router(HttpState { controller, api_token: Some(TOKEN.into()), webhooks, repos: repos.clone(), state_dir: dir, llm: None });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
    });
    (url, shutdown, repos)
}

#[tokio::test]
async fn every_api_endpoint_needs_the_token_and_explains_bad_bodies() {
    let (url, shutdown, _repos) = serve().await;
    let client = reqwest::Client::new();
    let endpoints: Vec<(Method, &str, Option<&str>)> = vec![
        (Method::GET, "/api/v2/apps", None),
        (Method::GET, "/api/v2/apps/prod/web/web", None),
        (Method::GET, "/api/v2/deployments?limit=5", None),
        (Method::GET, "/api/v2/deployments/dep-1", None),
        (Method::GET, "/api/v2/deployments/dep-1/diagnosis", None),
        (Method::POST, "/api/v2/commands", Some(r#"{"command": "sync"}"#)),
        (Method::GET, "/api/v2/repos", None),
        (Method::GET, "/api/v2/commits?n=5", None),
        (Method::POST, "/api/v2/repos", Some(r#"{"repo_url": "https://example.invalid/a.git", "branches": ["main"]}"#)),
        (Method::DELETE, "/api/v2/repos/a", None),
        (Method::GET, "/api/v1/repositories", None),
        (Method::POST, "/api/v1/repositories/add", Some(r#"{"repo_url": "https://example.invalid/b.git", "branches": ["main"]}"#)),
        (Method::DELETE, "/api/v1/repositories/delete?repo_url=https://example.invalid/b.git", None),
        (Method::POST, "/api/v1/deployments/ecs/query", Some("{}")),
        (Method::GET, "/api/v1/commits", None),
        (Method::POST, "/api/v1/commits/deploy", Some(r#"{"repo_url": "https://example.invalid/x.git"}"#)),
        (Method::POST, "/api/v1/commits/dryrun", Some(r#"{"repo_url": "https://example.invalid/x.git"}"#)),
        (Method::GET, "/api/v1/commits/abc", None),
        (Method::GET, "/api/v1/taskset?taskset_arn=arn:aws:ecs:us-east-1:1:task-set/c/s/ecs-svc/1", None),
        (Method::POST, "/api/v1/taskset/rebalance", Some(r#"{"service_arn": "arn:aws:ecs:us-east-1:1:service/c/s", "shift_all": true}"#)),
    ];
    for (method, path, body) in &endpoints {
        let send = |auth: Option<&str>| {
            let mut r = client.request(method.clone(), format!("{url}{path}")).header("content-type", "application/json");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            if let Some(b) = body {
                r = r.body(b.to_string());
            }
            r.send()
        };
        assert_eq!(send(None).await.unwrap().status().as_u16(), 401, "{method} {path} without a token");
        assert_eq!(send(Some("Bearer nope")).await.unwrap().status().as_u16(), 401, "{method} {path} with a wrong token");
        let ok = send(Some(&format!("Bearer {TOKEN}"))).await.unwrap();
        let status = ok.status().as_u16();
        assert!(status != 401 && status < 500 || status == 503, "{method} {path} with the token: {status}");
        let answer: serde_json::Value = ok.json().await.unwrap_or(serde_json::Value::Null);
        if status >= 400 {
            assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: errors explain themselves: {answer}");
        }
        if *method == Method::POST {
            let bad = client
                .request(method.clone(), format!("{url}{path}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap();
            assert_eq!(bad.status().as_u16(), 400, "{method} {path} with bad JSON");
            let answer: serde_json::Value = bad.json().await.unwrap();
            assert!(answer["error"].as_str().unwrap().len() > 10, "{answer}");
            let huge = client
                .request(method.clone(), format!("{url}{path}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .body(vec![b' '; 2 * 1024 * 1024])
                .send()
                .await
                .unwrap();
            assert_eq!(huge.status().as_u16(), 413, "{method} {path} with 2 MiB");
        }
    }
    // health and metrics stay open; webhooks use their own secrets
    assert_eq!(client.get(format!("{url}/healthz")).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(client.get(format!("{url}/metrics")).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(client.post(format!("{url}/webhooks/gitlab")).body("{}").send().await.unwrap().status().as_u16(), 401);
    shutdown.cancel();
}
