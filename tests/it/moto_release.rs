//! Releases against moto through the real server, API and CLI (issue 26): a three-app chain
//! whose middle fails (the dependent blocked, then released by a fixing commit), an emergency
//! rollback of a steady app to the previous release pinned across an unrelated head and
//! released by `gitmoxi unpin`, and a freeze holding a change until `sync --override-freeze`.

use crate::moto::{synced, write_app, Moto, Server};
use crate::support::TestRepo;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const DB: &str = "prod/db/migrate";
const API: &str = "prod/api/api";
const WORKER: &str = "prod/worker/worker";

fn depdef(depends_on: &[&str]) -> String {
    let list: Vec<String> = depends_on.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"dependsOn": [{}], "stabilityCheck": {{"pollInterval": 1, "timeout": 60}}, "gmDeploymentCircuitBreaker": {{"failureThreshold": 2}}}}"#,
        list.join(", ")
    )
}

fn chain(repo: &TestRepo, db: &str, api: &str, worker: &str) {
    write_app(repo, DB, "migrate", db);
    write_app(repo, API, "api", api);
    write_app(repo, WORKER, "worker", worker);
    repo.write(&format!("{API}_depdef.json"), &depdef(&[DB]));
    repo.write(&format!("{WORKER}_depdef.json"), &depdef(&[API]));
}

/// `gitmoxi ARGS --server URL` (blocking: call it from `spawn_blocking`).
fn cli(api: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gitmoxi")).args(args).args(["--server", api]).output().expect("gitmoxi runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

async fn run_cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let api = server.api.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || cli(&api, &args.iter().map(String::as_str).collect::<Vec<_>>())).await.expect("the CLI ran")
}

/// The image the service runs now, as ECS describes it.
async fn image_of(ecs: &aws_sdk_ecs::Client, service: &str) -> String {
    let described = ecs.describe_services().cluster("prod").services(service).send().await.expect("describe");
    let td = described.services()[0].task_definition().unwrap_or_default().to_string();
    let def = ecs.describe_task_definition().task_definition(td).send().await.expect("its task definition");
    def.task_definition().and_then(|t| t.container_definitions().first()).and_then(|c| c.image()).unwrap_or_default().to_string()
}

fn history(app: &Value) -> Vec<String> {
    app["history"].as_array().map(|h| h.iter().filter_map(|e| e["message"].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_failing_middle_blocks_its_dependent_a_fix_releases_it_and_rollback_to_pins_the_previous_release() {
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    chain(&repo, "migrate:1", "api:1", "worker:1");
    repo.commit("a chain: migrate, then api, then worker");
    let server = Server::start(&moto, &repo, 100).await;
    let worker = server.wait_app(WORKER, Duration::from_secs(120), synced).await;
    assert!(history(&worker).iter().any(|h| h.contains("waits for prod/api/api (dependsOn)")), "{worker:#}");

    // the api's new image fails: it rolls back, the worker of the same commit never starts
    chain(&repo, "migrate:2", "fail:2", "worker:2");
    repo.commit("all three; the api's image fails");
    server.wait_app(API, Duration::from_secs(120), |a| a["last_outcome"] == "rolled_back" && a["phase"].is_null()).await;
    let blocked = server.wait_app(WORKER, Duration::from_secs(30), |a| a["status"] == "Blocked").await;
    assert!(blocked["held"].as_str().unwrap_or_default().contains("blocked: dependency prod/api/api rolled back"), "{blocked:#}");
    assert_eq!(image_of(&ecs, "migrate").await, "migrate:2", "the first wave went");
    assert_eq!(image_of(&ecs, "api").await, "api:1", "the api is back on its last good image");
    assert_eq!(image_of(&ecs, "worker").await, "worker:1", "the blocked worker was not touched");

    // a commit that fixes the api releases the worker
    write_app(&repo, API, "api", "api:3");
    repo.write(&format!("{API}_depdef.json"), &depdef(&[DB]));
    repo.commit("api: fixed");
    server.wait_app(WORKER, Duration::from_secs(120), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert_eq!(image_of(&ecs, "api").await, "api:3");
    assert_eq!(image_of(&ecs, "worker").await, "worker:2");

    // worker:2 breaks production: back to the previous release now, from the CLI
    let (code, out, err) = run_cli(&server, &["rollback", WORKER, "--to", "previous"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("stays pinned there until `gitmoxi unpin prod/worker/worker`"), "{out}");
    let pinned = server.wait_app(WORKER, Duration::from_secs(60), |a| a["status"] == "Pinned").await;
    assert_eq!(image_of(&ecs, "worker").await, "worker:1", "the previous release runs again");
    assert!(pinned["pinned"]["by"].as_str().unwrap_or_default().ends_with("via cli"), "{pinned:#}");
    let (code, out, _) = run_cli(&server, &["rollback", WORKER, "--to", "HEAD~1"]).await;
    assert_ne!(code, 0, "a bad --to is refused: {out}");

    // a head that does not touch the worker leaves the pin in place
    write_app(&repo, DB, "migrate", "migrate:3");
    let head = repo.commit("migrate only");
    server.wait_app(DB, Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == head.as_str()).await;
    assert_eq!(server.app(WORKER).await.unwrap()["status"], "Pinned");
    assert_eq!(image_of(&ecs, "worker").await, "worker:1");

    // unpin: the branch head's worker:2 again
    let (code, out, err) = run_cli(&server, &["unpin", WORKER]).await;
    assert_eq!(code, 0, "{out}{err}");
    server.wait_app(WORKER, Duration::from_secs(60), |a| synced(a) && a["pinned"].is_null()).await;
    assert_eq!(image_of(&ecs, "worker").await, "worker:2");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_freeze_holds_a_change_until_an_override_from_the_cli_which_is_recorded() {
    use gitmoxi_deploy::release::freeze::FreezeConfig;
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, API, "api", "api:1");
    repo.commit("api");
    // frozen from the start, for a day; the first deploy is a change too
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let at = |secs: u64| gitmoxi_deploy::release::freeze::format_rfc3339(secs * 1000);
    let freeze = FreezeConfig {
        name: Some("release weekend".into()),
        reason: "the quarterly release".into(),
        prefix: Some("prod/*".into()),
        from: Some(at(now - 60)),
        until: Some(at(now + 86_400)),
        ..FreezeConfig::default()
    }
    .check(1)
    .expect("a valid freeze");
    let server = Server::start_with_freezes(&moto, &repo, vec![freeze]).await;
    let frozen = server.wait_app(API, Duration::from_secs(30), |a| a["status"] == "Frozen").await;
    assert!(frozen["held"].as_str().unwrap_or_default().contains("frozen by 'release weekend'"), "{frozen:#}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = ecs.list_services().cluster("prod").send().await.expect("list");
    assert!(listed.service_arns().is_empty(), "nothing was created under the freeze: {listed:?}");

    let (code, out, err) = run_cli(&server, &["sync", "--override-freeze", API]).await;
    assert_eq!(code, 0, "{out}{err}");
    let done = server.wait_app(API, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    assert!(history(&done).iter().any(|h| h.starts_with("freeze overridden by ") && h.contains("via cli")), "{done:#}");
    assert_eq!(image_of(&ecs, "api").await, "api:1");
    server.stop().await;
}
