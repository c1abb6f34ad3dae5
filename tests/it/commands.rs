//! Operator commands through the HTTP API and the CLI against a running server (moto): bad
//! requests are explained, pause/resume show in the status, `sync --force --wait` redeploys and
//! waits, a rollback with nothing in flight says so.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#;

fn write_app(repo: &TestRepo) {
    write_terraform_app(repo, "prod/web/web", "web", "nginx:1", 1, DEPDEF, "");
}

async fn post(server: &Server, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/commands", server.api))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(args).output().expect("gitmoxi runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_validated_and_pause_resume_force_and_rollback_work_from_the_cli() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo);
    repo.commit("web");
    let server = Server::start(&moto, &repo, 25).await;
    let first = server.wait_app("prod/web/web", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;

    let (status, answer) = post(&server, "{not json").await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("not valid JSON"), "{answer}");
    let (status, answer) = post(&server, r#"{"command": "explode", "app": "prod/web/web"}"#).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("unknown command"), "{answer}");
    let (status, _) = post(&server, r#"{"command": "pause"}"#).await;
    assert_eq!(status, 400, "pause needs an app");
    let (status, _) = post(&server, r#"{"command": "pause", "app": "nope/nope"}"#).await;
    assert_eq!(status, 404);
    let (status, _) = post(&server, r#"{"command": "sync", "repo": "other"}"#).await;
    assert_eq!(status, 404);

    let api = server.api.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&["pause", "prod/web/web", "--server", &api])).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("paused at its current step"), "{out}");
    assert_eq!(server.app("prod/web/web").await.unwrap()["status"], "Paused");
    let api = server.api.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&["resume", "prod/web/web", "--server", &api])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.app("prod/web/web").await.unwrap()["status"], "Synced");

    // sync --force --wait redeploys the same fingerprint and waits for the outcome
    let api = server.api.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&["sync", "--force", "prod/web/web", "--wait", "--server", &api])).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("prod/web/web: succeeded"), "{out}{err}");
    let app = server.app("prod/web/web").await.unwrap();
    assert_ne!(app["last_deployment"], first["last_deployment"], "a new deployment ran");
    assert_eq!(app["fingerprint"], first["fingerprint"]);

    let api = server.api.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || cli(&["rollback", "prod/web/web", "--server", &api])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    let app =
        server.wait_app("prod/web/web", Duration::from_secs(30), |a| a["history"].to_string().contains("no deployment is in flight")).await;
    assert_eq!(app["status"], "Synced", "nothing was changed");

    // deployments: filtered, paginated, and in the CLI
    let page: Value =
        reqwest::get(format!("{}/api/v2/deployments?app=prod/web/web&limit=1", server.api)).await.unwrap().json().await.unwrap();
    assert_eq!(page["deployments"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().expect("a second page").to_string();
    let second: Value = reqwest::get(format!("{}/api/v2/deployments?app=prod/web/web&limit=1&after={next}", server.api))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["deployments"][0]["id"], first["last_deployment"], "oldest last");
    assert!(second["next"].is_null());
    let none: Value = reqwest::get(format!("{}/api/v2/deployments?status=rolled_back", server.api)).await.unwrap().json().await.unwrap();
    assert_eq!(none["deployments"].as_array().unwrap().len(), 0);
    let api = server.api.clone();
    let (code, out, err) =
        tokio::task::spawn_blocking(move || cli(&["deployments", "--app", "prod/web/web", "--server", &api])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ID") && out.lines().count() == 3 && out.contains("succeeded"), "{out}");
    let api = server.api.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&["apps", "--server", &api])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("APP")
            && out.contains("prod/web/web")
            && out.contains("deploys@main")
            && out.contains("ecs:default/us-east-1/prod/web"),
        "{out}"
    );
    let api = server.api.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || cli(&["history", "prod/web/web", "--server", &api])).await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused by an operator") && out.contains("redeploy forced by an operator"), "{out}");

    let (code, _, err) = tokio::task::spawn_blocking(|| cli(&["pause", "prod/web/web", "--server", "http://127.0.0.1:9"])).await.unwrap();
    assert_eq!(code, 2, "errors exit with 2");
    assert!(err.contains("cannot reach the gitmoxi server"), "{err}");
    server.stop().await;
}
