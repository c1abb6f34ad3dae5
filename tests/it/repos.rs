//! Repositories through the API: added with Gitmoxi's `repositories/add` they deploy like the
//! configured one; duplicates, bad bodies and unknown token sources are refused with the reason;
//! the configured repository cannot be deleted through the API; API-added repositories survive a
//! restart.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use gitmoxi::clock::Clock;
use gitmoxi::controller::Controller;
use gitmoxi::metrics::Metrics;
use gitmoxi::repos::{RepoRecord, Repos};
use gitmoxi_state::Store;
use gitmoxi_testing::fake::FakeWorld;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#;

fn app_repo(infra: &str, service: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", infra);
    write_terraform_app(&repo, &format!("apps/{service}/{service}"), service, "nginx:1", 1, DEPDEF, "");
    repo.commit(service);
    repo
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_added_with_gmctls_call_deploys_and_can_be_deleted() {
    let moto = Moto::start().await;
    let infra = moto.infra("prod");
    let configured = app_repo(&infra, "web");
    let added = app_repo(&infra, "api");
    let server = Server::start(&moto, &configured, 25).await;
    server.wait_app("apps/web/web", Duration::from_secs(60), synced).await;
    let api = server.api.clone();
    let added_url = added.path().display().to_string();

    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{api}/api/v1/repositories/add"),
        Some(json!({"repo_url": added_url, "branches": ["main"], "access_token_arn": "", "provider": "github"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["message_list"][0].as_str().unwrap().contains("added"), "{answer}");
    server.wait_app("apps/api/api", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;

    // gmctl's deployment and commit queries
    let (status, answer) =
        call(reqwest::Method::POST, format!("{api}/api/v1/deployments/ecs/query"), Some(json!({"service": "api"}))).await;
    assert_eq!(status, 200, "{answer}");
    let found = answer["deployments"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{answer}");
    let d = &found[0];
    assert_eq!(
        (d["repo_url"].as_str(), d["cluster"].as_str(), d["service"].as_str()),
        (Some(added_url.as_str()), Some("prod"), Some("api"))
    );
    assert_eq!(d["status"], "PROCESSED_SUCCESS");
    assert_eq!(d["file_prefix"], "apps/api/api");
    assert!(d["status_details"][0].as_str().unwrap().starts_with('['), "{d}");
    assert!(d["status_details"].to_string().contains("[INFO] deployment started"), "{d}");
    let (_, page) = call(reqwest::Method::POST, format!("{api}/api/v1/deployments/ecs/query"), Some(json!({"limit": 1}))).await;
    let key = page["last_evaluated_key"].as_str().expect("a second page").to_string();
    let (_, next) =
        call(reqwest::Method::POST, format!("{api}/api/v1/deployments/ecs/query"), Some(json!({"limit": 1, "start_key": key}))).await;
    assert_ne!(next["deployments"][0]["id"], page["deployments"][0]["id"]);
    let (_, none) = call(reqwest::Method::POST, format!("{api}/api/v1/deployments/lambda/query"), Some(json!({}))).await;
    assert_eq!(none["deployments"].as_array().unwrap().len(), 0);
    let (status, _) = call(reqwest::Method::POST, format!("{api}/api/v1/deployments/batch/query"), Some(json!({}))).await;
    assert_eq!(status, 404);
    let (_, commits) = call(reqwest::Method::GET, format!("{api}/api/v1/commits?repo_url={added_url}&branch=main&n=5"), None).await;
    let commits = commits["commits"].as_array().unwrap().clone();
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!(commits[0]["commit_hash"].as_str(), Some(added.git(&["rev-parse", "HEAD"]).as_str()));
    assert_eq!(commits[0]["status"], "PROCESSED_SUCCESS");

    // gmctl commit deploy / files / dryrun
    let taskdef = std::fs::read_to_string(added.path().join("apps/api/api_taskdef.json")).unwrap().replace("nginx:1", "nginx:2");
    added.write("apps/api/api_taskdef.json", &taskdef);
    let second = added.commit("api: nginx 2");
    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{api}/api/v1/commits/deploy"),
        Some(json!({"repo_url": added_url, "branch": "main", "force": false})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["latest_commit_hash"].as_str(), Some(second.as_str()), "{answer}");
    assert_ne!(answer["last_known_commit_hash"], answer["latest_commit_hash"]);
    assert_eq!(answer["ecs"]["ecs_relevant_files"]["added_or_modified"]["apps/api/api"], json!(["apps/api/api_taskdef.json"]), "{answer}");
    assert_eq!(answer["lambda"]["lambda_relevant_files"]["added_or_modified"], json!({}));
    server.wait_app("apps/api/api", Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == second.as_str()).await;
    let (status, files) = call(reqwest::Method::GET, format!("{api}/api/v1/commits/{second}"), None).await;
    assert_eq!(status, 200, "{files}");
    assert_eq!(files["commits"][0]["ecs"]["ecs_relevant_files"]["added_or_modified"]["apps/api/api"], json!(["apps/api/api_taskdef.json"]));
    let (status, _) = call(reqwest::Method::GET, format!("{api}/api/v1/commits/0000000000000000000000000000000000000000"), None).await;
    assert_eq!(status, 404);
    // a short hash (as git log --oneline shows it) names the commit; its full id comes back
    let (status, short) = call(reqwest::Method::GET, format!("{api}/api/v1/commits/{}", &second[..8]), None).await;
    assert_eq!(status, 200, "{short}");
    assert_eq!(short["commits"][0]["commit_hash"].as_str(), Some(second.as_str()));
    assert_eq!(short["commits"][0]["ecs"], files["commits"][0]["ecs"]);
    let (status, bad) = call(reqwest::Method::GET, format!("{api}/api/v1/commits/HEAD~1"), None).await;
    assert_eq!(status, 400, "not a commit id: {bad}");
    let (status, dry) = call(
        reqwest::Method::POST,
        format!("{api}/api/v1/commits/dryrun"),
        Some(json!({"repo_url": added_url, "branch": "main", "process_template": true})),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    // the newest commit is the one deployed: a dry run finds nothing new (gmctl: "No changes found")
    assert_eq!(dry["deployment_artifacts_from_changed_files"], json!({}), "{dry}");
    assert_eq!(dry["latest_commit_hash"].as_str(), Some(second.as_str()));
    assert!(dry["message_list"][0].as_str().unwrap().contains("no new commit"), "{dry}");
    let (status, _) =
        call(reqwest::Method::POST, format!("{api}/api/v1/commits/deploy"), Some(json!({"repo_url": "https://nowhere.invalid/x.git"})))
            .await;
    assert_eq!(status, 404);

    // a head whose only app fails validation deployed nothing: it is no success
    added.write("apps/api/api_svcdef.json", "{ not json");
    let broken = added.commit("api: a broken svcdef");
    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{api}/api/v1/commits/deploy"),
        Some(json!({"repo_url": added_url, "branch": "main", "force": false})),
    )
    .await;
    assert_eq!((status, answer["latest_commit_hash"].as_str()), (200, Some(broken.as_str())), "{answer}");
    server.wait_app("apps/api/api", Duration::from_secs(30), |a| a["status"] == "Invalid").await;
    let (_, commits) = call(reqwest::Method::GET, format!("{api}/api/v1/commits?repo_url={added_url}&branch=main&n=5"), None).await;
    assert_eq!(commits["commits"][0]["commit_hash"].as_str(), Some(broken.as_str()), "{commits}");
    assert_eq!(commits["commits"][0]["status"], "PROCESSED_ERROR", "{commits}");

    let (status, list) = call(reqwest::Method::GET, format!("{api}/api/v1/repositories"), None).await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let (_, one) = call(reqwest::Method::GET, format!("{api}/api/v1/repositories?repo_url={added_url}"), None).await;
    assert_eq!(one, json!([{"repo_url": added_url, "branches": ["main"], "access_token_arn": "", "provider": "github"}]));

    let (status, answer) =
        call(reqwest::Method::POST, format!("{api}/api/v1/repositories/add"), Some(json!({"repo_url": added_url, "branches": ["main"]})))
            .await;
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = call(reqwest::Method::POST, format!("{api}/api/v1/repositories/add"), Some(json!({"branches": ["main"]}))).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{api}/api/v2/repos"),
        Some(json!({"repo_url": "https://example.invalid/x.git", "branches": ["main"], "access_token_arn": "hunter2"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("not understood"), "{answer}");
    let configured_url = configured.path().display().to_string();
    let (status, answer) = call(reqwest::Method::DELETE, format!("{api}/api/v1/repositories/delete?repo_url={configured_url}"), None).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("configuration file"));

    let (status, answer) = call(reqwest::Method::DELETE, format!("{api}/api/v1/repositories/delete?repo_url={added_url}"), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["repo_url"], added_url.as_str());
    let (_, list) = call(reqwest::Method::GET, format!("{api}/api/v2/repos"), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // the deleted repository's service is left running
    let svc = moto.ecs().await.describe_services().cluster("prod").services("api").send().await.unwrap();
    assert_eq!(svc.services()[0].status(), Some("ACTIVE"));
    server.stop().await;
}

#[tokio::test]
async fn api_added_repositories_come_back_after_a_restart() {
    let world = FakeWorld::new();
    let store = Store::temporary().unwrap();
    let settings = || crate::support::controller_settings(2, 1);
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let controller = Controller::new(store.clone(), world.provider(), Clock::system(), Metrics::new(), settings());
    let policy = gitmoxi::repo_policy::ApiRepoPolicy {
        token_arn_prefixes: vec!["arn:aws:secretsmanager:us-east-1:123456789012:secret:gitmoxi/".into()],
        ..Default::default()
    };
    let repos = Repos::new(controller, dir.path().to_path_buf(), Duration::from_secs(3600), shutdown.clone(), policy.clone());
    repos.start(&[]).unwrap();
    let record = RepoRecord {
        repo_url: "https://github.com/acme/deploys.git".into(),
        branches: vec!["main".into(), "prod".into()],
        access_token_arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:gitmoxi/deploys".into(),
        provider: "github".into(),
        origin: String::new(),
    };
    assert_eq!(repos.add(record).await.unwrap(), "deploys");
    assert_eq!(repos.tracked(), 2);
    shutdown.cancel();
    repos.join().await;

    let shutdown = CancellationToken::new();
    let controller = Controller::new(store, world.provider(), Clock::system(), Metrics::new(), settings());
    let again = Repos::new(controller, dir.path().to_path_buf(), Duration::from_secs(3600), shutdown.clone(), policy);
    again.start(&[]).unwrap();
    let list = again.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].repo_url, "https://github.com/acme/deploys.git");
    assert_eq!(list[0].access_token_arn, "arn:aws:secretsmanager:us-east-1:123456789012:secret:gitmoxi/deploys");
    assert_eq!(again.tracked(), 2);
    shutdown.cancel();
    again.join().await;
}

/// Issue 27 (low): API repositories are capped, their branch names checked, and a deleted one
/// leaves no mirror behind.
#[tokio::test]
async fn api_repositories_are_capped_their_branches_checked_and_a_deleted_one_leaves_no_mirror() {
    let world = FakeWorld::new();
    let controller = Controller::new(
        Store::temporary().unwrap(),
        world.provider(),
        Clock::system(),
        Metrics::new(),
        crate::support::controller_settings(2, 1),
    );
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let policy = gitmoxi::repo_policy::ApiRepoPolicy { allow_local: true, ..Default::default() };
    let repos = Repos::new(controller, dir.path().to_path_buf(), Duration::from_secs(3600), shutdown.clone(), policy);
    repos.start(&[]).unwrap();
    let record = |url: String, branches: &[&str]| RepoRecord {
        repo_url: url,
        branches: branches.iter().map(|b| b.to_string()).collect(),
        access_token_arn: String::new(),
        provider: "github".into(),
        origin: String::new(),
    };
    for bad in ["-upload", "a..b", "a b", "x\ny"] {
        assert!(repos.add(record("/nowhere/bad".into(), &[bad])).await.is_err(), "{bad:?} is no branch name");
    }
    // a repository whose fetch fails: its source loop waits for its next poll, where removing
    // it stops it (this test runs no heads owner, so a loaded head would wait for one)
    let name = repos.add(record("/nowhere/gone".into(), &["main"])).await.unwrap();
    let mirrors = dir.path().join("repos");
    let count = || std::fs::read_dir(&mirrors).map(|d| d.count()).unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count() == 0 {
        assert!(std::time::Instant::now() < deadline, "the mirror is made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    repos.remove(&name).await.unwrap();
    while count() > 0 {
        assert!(std::time::Instant::now() < deadline, "the mirror is deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..gitmoxi::repos::MAX_API_REPOS {
        repos.add(record(format!("/nowhere/r{i}"), &["main"])).await.unwrap();
    }
    let refused = repos.add(record("/nowhere/one-more".into(), &["main"])).await.unwrap_err();
    assert!(refused.to_string().contains("delete one first"), "{refused}");
    shutdown.cancel();
    repos.join().await;
}
