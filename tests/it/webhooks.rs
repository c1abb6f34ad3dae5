//! Push webhooks end to end: a signed GitHub push starts the deployment of a local repository
//! at once while the poller is set to one hour; bad, missing and replayed-to-another-branch
//! requests change nothing; GitLab's token; metrics count every outcome.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

const SECRET: &str = "webhook-s3cret-value";
const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#;

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn write_app(repo: &TestRepo, image: &str) {
    write_terraform_app(repo, "prod/web/web", "web", "{{ image }}", 1, DEPDEF, &format!(r#", "image": "{image}""#));
}

async fn post(server: &Server, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(format!("{}{path}", server.api)).body(body.to_vec());
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_github_push_deploys_at_once_with_the_poller_at_one_hour() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "nginx:1");
    repo.commit("web");
    let server = Server::start_with(&moto, &repo, 25, Duration::from_secs(3600), Some(SECRET)).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;

    write_app(&repo, "nginx:2");
    let commit = repo.commit("web: nginx 2");
    let url = format!("file://{}", repo.path().display());
    let payload =
        |branch: &str| serde_json::to_vec(&json!({"ref": format!("refs/heads/{branch}"), "repository": {"clone_url": url}})).unwrap();

    // refused and ignored requests change nothing
    let body = payload("main");
    let (status, answer) = post(&server, "/webhooks/github", &[("x-github-event", "push".into())], &body).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("missing X-Hub-Signature-256"));
    let (status, _) =
        post(&server, "/webhooks/github", &[("x-github-event", "push".into()), ("x-hub-signature-256", sign(b"other"))], &body).await;
    assert_eq!(status, 401);
    let other = payload("feature");
    let (status, answer) =
        post(&server, "/webhooks/github", &[("x-github-event", "push".into()), ("x-hub-signature-256", sign(&other))], &other).await;
    assert_eq!(status, 202, "an untracked branch is ignored: {answer}");
    let (status, _) =
        post(&server, "/webhooks/github", &[("x-github-event", "ping".into()), ("x-hub-signature-256", sign(b"{}"))], b"{}").await;
    assert_eq!(status, 200);
    let (status, _) =
        post(&server, "/webhooks/github", &[("x-github-event", "push".into()), ("x-hub-signature-256", sign(b"{oops"))], b"{oops").await;
    assert_eq!(status, 400);
    let (status, _) = post(&server, "/webhooks/gitlab", &[("x-gitlab-token", "x".into())], b"{}").await;
    assert_eq!(status, 404, "GitLab webhooks are off without a token");
    let huge = vec![b' '; 2 * 1024 * 1024];
    let (status, _) =
        post(&server, "/webhooks/github", &[("x-github-event", "push".into()), ("x-hub-signature-256", sign(&huge))], &huge).await;
    assert_eq!(status, 413);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let app = server.app("prod/web/web").await.unwrap();
    assert_ne!(app["applied_commit"], commit.as_str(), "nothing was fetched without a valid push");

    // a signed push: fetched and deployed now, not in an hour (a burst coalesces into one fetch)
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let (status, answer) =
            post(&server, "/webhooks/github", &[("x-github-event", "push".into()), ("x-hub-signature-256", sign(&body))], &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "fetching");
    }
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == commit.as_str()).await;
    assert!(started.elapsed() < Duration::from_secs(60));

    let metrics = reqwest::get(format!("{}/metrics", server.api)).await.unwrap().text().await.unwrap();
    for series in [
        r#"gitmoxi_webhooks_total{provider="github",result="accepted"} 5"#,
        r#"gitmoxi_webhooks_total{provider="github",result="unauthorized"} 2"#,
        r#"gitmoxi_webhooks_total{provider="github",result="ignored"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    assert!(!metrics.contains(SECRET));
    server.stop().await;
}

/// A full run of the binary with a token, a webhook secret and a Slack URL: none of them appears
/// in any log line or answer, even at debug level and on refused requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_an_answer() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "nginx:1");
    repo.commit("web");
    let token = "tok-3f9c2a77e1d54b0b";
    let slack = "http://127.0.0.1:9/services/T0SECRET/B0SECRET/slackSecretPart";
    let port = crate::moto::free_port();
    let state = tempfile::tempdir().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gitmoxi"))
        .args(["serve", "--repo", repo.path().to_str().unwrap(), "--branch", "main", "--poll-interval", "1s", "--aws-max-attempts", "1"])
        .arg("--state-dir")
        .arg(state.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("GITMOXI_API_TOKEN", token)
        .env("GITMOXI_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("GITMOXI_SLACK_WEBHOOK_URL", slack)
        .env("GITMOXI_LOG", "debug")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdout(std::process::Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("gitmoxi serve starts");
    let api = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut answers = String::new();
    let start = std::time::Instant::now();
    loop {
        let r = client.get(format!("{api}/api/v2/apps/prod/web/web")).bearer_auth(token).send().await;
        if let Ok(r) = r {
            let body = r.text().await.unwrap_or_default();
            if body.contains("\"status\":\"Synced\"") {
                answers.push_str(&body);
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the app never synced");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (path, auth) in [("/api/v2/apps", "Bearer wrong"), ("/api/v2/apps", ""), ("/metrics", "")] {
        let r = client.get(format!("{api}{path}")).header("authorization", auth).send().await.unwrap();
        answers.push_str(&r.text().await.unwrap());
    }
    let body = b"{\"ref\": \"refs/heads/main\", \"repository\": {\"clone_url\": \"x\"}}";
    for sig in [String::from("sha256=00"), sign(body)] {
        let r = client
            .post(format!("{api}/webhooks/github"))
            .header("x-github-event", "push")
            .header("x-hub-signature-256", sig)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        answers.push_str(&r.text().await.unwrap());
    }
    let r = client.get(format!("{api}/api/v2/apps")).bearer_auth(token).send().await.unwrap();
    answers.push_str(&r.text().await.unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(log.path()).unwrap();
    assert!(logs.contains("gitmoxi serving"), "the log was captured: {logs}");
    for secret in [token, SECRET, "slackSecretPart", "T0SECRET"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
        assert!(!answers.contains(secret), "{secret} leaked into an answer");
    }
}
