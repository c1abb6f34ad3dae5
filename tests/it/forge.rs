//! Commit statuses on the forge, end to end: `gitmoxi serve` deploys from Git on moto and posts
//! `gitmoxi/<app>` statuses to a local stub of the GitHub REST API that checks every request
//! against GitHub's documented shape (path, method, headers, body fields and values). The
//! GitLab shape is checked by `forge.rs`'s unit tests; a dead forge never holds a deployment.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use gitmoxi::credentials::TokenSource;
use gitmoxi::forge::{Forge, StatusTarget};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN_VAR: &str = "GITMOXI_FORGE_TEST_TOKEN";
const TOKEN: &str = "ghs_forge_test_token";
const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}, "gmDeploymentCircuitBreaker": {"failureThreshold": 2}}"#;

/// (sha, state, context, description, target_url) of each accepted status; the refusals.
#[derive(Default)]
struct Stub {
    statuses: Vec<(String, String, String, String, Option<String>)>,
    refused: Vec<String>,
}

type Shared = Arc<Mutex<Stub>>;

/// GitHub's "Create a commit status": `POST /repos/{owner}/{repo}/statuses/{sha}`, a bearer
/// token, `Accept: application/vnd.github+json`, a User-Agent; `state` one of error, failure,
/// pending, success; `description` at most 140 characters; answers 201.
async fn create_status(
    State(stub): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut problems = Vec::new();
    if (owner.as_str(), repo.as_str()) != ("acme", "deploys") {
        problems.push(format!("repository {owner}/{repo}"));
    }
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        problems.push(format!("sha {sha}"));
    }
    if header("authorization") != format!("Bearer {TOKEN}") {
        problems.push("authorization".into());
    }
    if header("accept") != "application/vnd.github+json" || header("user-agent").is_empty() {
        problems.push("accept / user-agent".into());
    }
    let state = body["state"].as_str().unwrap_or_default().to_string();
    if !["error", "failure", "pending", "success"].contains(&state.as_str()) {
        problems.push(format!("state {state}"));
    }
    let description = body["description"].as_str().unwrap_or_default().to_string();
    if description.chars().count() > 140 {
        problems.push("description over 140 characters".into());
    }
    let known = ["state", "target_url", "description", "context"];
    if let Some(extra) = body.as_object().and_then(|o| o.keys().find(|k| !known.contains(&k.as_str()))) {
        problems.push(format!("unknown field {extra}"));
    }
    let mut stub = stub.lock().unwrap();
    if !problems.is_empty() {
        stub.refused.push(format!("{}: {body}", problems.join(", ")));
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let context = body["context"].as_str().unwrap_or_default().to_string();
    stub.statuses.push((sha, state, context, description, body["target_url"].as_str().map(str::to_string)));
    StatusCode::CREATED
}

async fn stub() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new().route("/api/v3/repos/{owner}/{repo}/statuses/{sha}", post(create_status)).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, shared)
}

fn states_of(stub: &Shared, sha: &str) -> Vec<String> {
    stub.lock().unwrap().statuses.iter().filter(|s| s.0 == sha).map(|s| s.1.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_apps_deployment_is_a_commit_status_on_the_forge() {
    // this test binary's only use of the variable; the token is read on use
    std::env::set_var(TOKEN_VAR, TOKEN);
    let (forge, received) = stub().await;
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_terraform_app(&repo, "apps/web/web", "web", "nginx:1", 1, DEPDEF, "");
    let first = repo.commit("web");
    let target = StatusTarget {
        forge: Forge::GitHub,
        api_url: format!("{forge}/api/v3"),
        project: "acme/deploys".into(),
        token: TokenSource::Env(TOKEN_VAR.into()),
    };
    let server = Server::start_with_statuses(&moto, &repo, target, "https://gitmoxi.example").await;
    server.wait_app("apps/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let wait_for = |sha: String, last: &'static str| {
        let received = received.clone();
        async move {
            for _ in 0..100 {
                if states_of(&received, &sha).last().map(String::as_str) == Some(last) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no {last} status for {sha}: {:?} refused {:?}", received.lock().unwrap().statuses, received.lock().unwrap().refused);
        }
    };
    wait_for(first.clone(), "success").await;
    assert_eq!(states_of(&received, &first), ["pending", "success"], "pending while it deploys, then success");
    {
        let stub = received.lock().unwrap();
        assert!(stub.refused.is_empty(), "every request had GitHub's shape: {:?}", stub.refused);
        let (_, _, context, description, link) = &stub.statuses[1];
        assert_eq!(context, "gitmoxi/apps/web/web");
        assert_eq!(description, "deployed");
        assert!(link.as_deref().is_some_and(|l| l.starts_with("https://gitmoxi.example/api/v2/deployments/dep-")), "{link:?}");
    }

    // a failing image: the breaker rolls back, and the status says why
    write_terraform_app(&repo, "apps/web/web", "web", "nginx:fail", 1, DEPDEF, "");
    let broken = repo.commit("web: broken image");
    server.wait_app("apps/web/web", Duration::from_secs(90), |a| a["last_outcome"] == "rolled_back").await;
    wait_for(broken.clone(), "failure").await;
    {
        let stub = received.lock().unwrap();
        let failure = stub.statuses.iter().rev().find(|s| s.0 == broken).unwrap();
        assert!(failure.3.starts_with("rolled back: ") && failure.3.contains("circuit breaker"), "the cause: {failure:?}");
        assert!(stub.refused.is_empty(), "{:?}", stub.refused);
        assert!(!format!("{:?}", stub.statuses).contains(TOKEN), "the token is in no status");
    }
    // what AWS runs is the last good revision
    let svc = moto.ecs().await.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("web:1"));
    server.stop().await;
}
