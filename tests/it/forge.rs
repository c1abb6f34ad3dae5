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
use gitmoxi::forge::{Forge, ForgeTarget};
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
    let target = ForgeTarget {
        forge: Forge::GitHub,
        api_url: format!("{forge}/api/v3"),
        project: "acme/deploys".into(),
        token: TokenSource::Env(TOKEN_VAR.into()),
    };
    let server = Server::start_with_statuses(&moto, &repo, target, "https://gitmoxi.example", None).await;
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

/// The comments the GitHub stub holds: id → (issue number, body); creates and updates counted.
#[derive(Default)]
struct Comments {
    by_id: std::collections::BTreeMap<u64, (u64, String)>,
    creates: usize,
    updates: usize,
    refused: Vec<String>,
}

type SharedComments = Arc<Mutex<Comments>>;

fn comment_problems(headers: &HeaderMap, body: &Value) -> Vec<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut problems = Vec::new();
    if header("authorization") != format!("Bearer {TOKEN}") || header("accept") != "application/vnd.github+json" {
        problems.push("headers".to_string());
    }
    if body.as_object().map(|o| o.len()) != Some(1) || !body["body"].is_string() {
        problems.push(format!("body {body}"));
    }
    problems
}

/// GitHub's "Create an issue comment" (`POST /repos/{o}/{r}/issues/{n}/comments`, 201 with the
/// comment) and "Update an issue comment" (`PATCH /repos/{o}/{r}/issues/comments/{id}`).
async fn comment_stub() -> (String, SharedComments) {
    use axum::routing::patch;
    let shared: SharedComments = Arc::default();
    let create = |State(c): State<SharedComments>,
                  Path((_, _, number)): Path<(String, String, u64)>,
                  headers: HeaderMap,
                  Json(body): Json<Value>| async move {
        let mut c = c.lock().unwrap();
        let problems = comment_problems(&headers, &body);
        if !problems.is_empty() {
            c.refused.push(problems.join(", "));
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({"message": "Validation Failed"})));
        }
        let id = 1000 + c.by_id.len() as u64;
        c.by_id.insert(id, (number, body["body"].as_str().unwrap_or_default().to_string()));
        c.creates += 1;
        (StatusCode::CREATED, Json(serde_json::json!({"id": id, "body": body["body"]})))
    };
    let update = |State(c): State<SharedComments>,
                  Path((_, _, id)): Path<(String, String, u64)>,
                  headers: HeaderMap,
                  Json(body): Json<Value>| async move {
        let mut c = c.lock().unwrap();
        let problems = comment_problems(&headers, &body);
        if !problems.is_empty() {
            c.refused.push(problems.join(", "));
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({"message": "Validation Failed"})));
        }
        let Some(entry) = c.by_id.get_mut(&id) else { return (StatusCode::NOT_FOUND, Json(serde_json::json!({"message": "Not Found"}))) };
        entry.1 = body["body"].as_str().unwrap_or_default().to_string();
        c.updates += 1;
        (StatusCode::OK, Json(serde_json::json!({"id": id, "body": body["body"]})))
    };
    let statuses = |Path((_, _, _)): Path<(String, String, String)>| async { StatusCode::CREATED };
    let app = Router::new()
        .route("/api/v3/repos/{owner}/{repo}/issues/{number}/comments", post(create))
        .route("/api/v3/repos/{owner}/{repo}/issues/comments/{id}", patch(update))
        .route("/api/v3/repos/{owner}/{repo}/statuses/{sha}", post(statuses))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, shared)
}

const SECRET: &str = "preview-webhook-secret";

fn signed(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_gets_one_plan_comment_against_the_live_state_updated_on_each_push() {
    std::env::set_var(TOKEN_VAR, TOKEN);
    let (forge, comments) = comment_stub().await;
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_terraform_app(&repo, "apps/web/web", "web", "nginx:1", 2, DEPDEF, "");
    write_terraform_app(&repo, "apps/api/api", "api", "nginx:1", 1, DEPDEF, "");
    repo.commit("web and api");
    let target = ForgeTarget {
        forge: Forge::GitHub,
        api_url: format!("{forge}/api/v3"),
        project: "acme/deploys".into(),
        token: TokenSource::Env(TOKEN_VAR.into()),
    };
    let server = Server::start_with_statuses(&moto, &repo, target, "https://gitmoxi.example", Some(SECRET)).await;
    server.wait_app("apps/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    server.wait_app("apps/api/api", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;

    // pull request 7: web gets nginx:2; main does not move
    repo.git(&["checkout", "-q", "-b", "feature"]);
    write_terraform_app(&repo, "apps/web/web", "web", "nginx:2", 2, DEPDEF, "");
    // and one svcdef field: the preview names it from a look at what ECS holds (issue 23)
    let svcdef = std::fs::read_to_string(repo.path().join("apps/web/web_svcdef.json")).unwrap();
    let edited = svcdef.replacen('{', "{\n  \"enableExecuteCommand\": true,", 1);
    assert_ne!(svcdef, edited);
    repo.write("apps/web/web_svcdef.json", &edited);
    let head = repo.commit("web: nginx 2");
    repo.git(&["update-ref", "refs/pull/7/head", &head]);
    let url = format!("file://{}", repo.path().display());
    let webhook = |action: &str, sha: &str| {
        serde_json::to_vec(&serde_json::json!({
            "action": action, "number": 7,
            "pull_request": {"base": {"ref": "main"}, "head": {"sha": sha, "ref": "feature"}},
            "repository": {"clone_url": url},
        }))
        .unwrap()
    };
    let send = |body: Vec<u8>| {
        let api = server.api.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{api}/webhooks/github"))
                .header("x-github-event", "pull_request")
                .header("x-hub-signature-256", signed(&body))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, answer) = send(webhook("opened", &head)).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("previewing")), "{answer}");
    let wait_comment = |want: &'static str| {
        let comments = comments.clone();
        async move {
            for _ in 0..150 {
                if let Some((_, body)) = comments.lock().unwrap().by_id.values().next().filter(|(_, b)| b.contains(want)) {
                    return body.clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let c = comments.lock().unwrap();
            panic!("no comment with {want:?}: {:?}, refused {:?}", c.by_id, c.refused);
        }
    };
    let first = wait_comment("image of container web: nginx:1 → nginx:2").await;
    eprintln!("{first}");
    assert!(first.starts_with("<!-- gitmoxi-plan-preview -->"), "{first}");
    assert!(first.contains(&format!("merging `{}` into `main`", &head[..10])), "{first}");
    assert!(first.contains("| `apps/web/web` | deploy | service web in cluster prod (us-east-1) |"), "only web deploys: {first}");
    assert!(!first.contains("`apps/api/api`"), "api is unchanged: {first}");
    assert!(first.contains("Fields AWS holds otherwise today: `/enableExecuteCommand`"), "the live comparison: {first}");
    assert!(!first.contains("AWS holds false"), "no live value in a pull-request comment: {first}");
    let svc = moto.ecs().await.describe_services().cluster("prod").services("web").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("web:1"), "a preview deploys nothing");

    // a push to the pull request: the same comment is updated, now with the delete of api
    repo.remove("apps/api/api_svcdef.json");
    let second = repo.commit("api: removed");
    repo.git(&["update-ref", "refs/pull/7/head", &second]);
    let (status, _) = send(webhook("synchronize", &second)).await;
    assert_eq!(status, 202);
    let updated = wait_comment("deletes service api in cluster prod").await;
    assert!(updated.contains(&format!("merging `{}`", &second[..10])), "{updated}");
    assert!(updated.contains("| `apps/api/api` | delete |"), "{updated}");
    {
        let c = comments.lock().unwrap();
        assert_eq!((c.creates, c.updates, c.by_id.len()), (1, 1, 1), "one comment, updated in place");
        assert!(c.refused.is_empty(), "{:?}", c.refused);
        assert!(c.by_id.values().all(|(number, _)| *number == 7));
    }
    // closed: no preview; a bad signature: refused
    let (status, answer) = send(webhook("closed", &second)).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("ignored")));
    let body = webhook("opened", &second);
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/github", server.api))
        .header("x-github-event", "pull_request")
        .header("x-hub-signature-256", "sha256=00")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // the same preview locally: gitmoxi plan --server URL --to pull/7
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
        .args(["plan", "--server", &server.api, "--to", "pull/7"])
        .output()
        .expect("gitmoxi plan runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("| `apps/api/api` | delete |") && text.contains("nginx:1 → nginx:2"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
        .args(["plan", "--server", &server.api, "--to", "no-such-branch"])
        .output()
        .expect("gitmoxi plan runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no preview of 'no-such-branch'"), "{}", String::from_utf8_lossy(&out.stderr));
    // AWS still runs what main says
    let svc = moto.ecs().await.describe_services().cluster("prod").services("api").send().await.unwrap();
    assert_eq!(svc.services()[0].status(), Some("ACTIVE"));
    server.stop().await;
}
