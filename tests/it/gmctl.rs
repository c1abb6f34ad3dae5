//! Gitmoxi's own CLI, gmctl 0.9.0 from PyPI (installed by `make test` into `.venv-gmctl`), run
//! against `gitmoxi serve` on moto: every one of its 15 commands and their main flags, as a
//! switching user would type them. gmctl sends no token: the server wants one, and lets gmctl
//! in only because `[gmctl] tokenless_networks` names loopback. What gmctl prints is checked, and
//! what AWS (moto) holds where a command deploys.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#;
const TOKEN: &str = "gmctl-test-token";

fn gmctl_binary() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-gmctl/bin/gmctl");
    assert!(p.exists(), "gmctl is not installed: run `make test` (it creates .venv-gmctl with gmctl==0.9.0 from PyPI)");
    p
}

/// Runs gmctl with `args` against `api`; its stdout (gmctl prints errors there and exits 0).
fn gmctl(api: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(gmctl_binary())
        .args(args)
        .env("GITMOXI_ENDPOINT_URL", api)
        // gmctl reads a .env of its working directory: give it an empty one
        .current_dir(dir.path())
        .output()
        .expect("gmctl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gmctl {args:?} exited {:?}: {stdout}\n{stderr}", out.status);
    assert!(!stdout.contains("Traceback") && !stderr.contains("Traceback"), "gmctl {args:?} crashed:\n{stdout}\n{stderr}");
    assert!(!stdout.starts_with("Error:"), "gmctl {args:?}: {stdout}");
    eprintln!("$ gmctl {}\n{stdout}", args.join(" "));
    stdout
}

fn app_repo(infra: &str, prefix: &str, service: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", infra);
    write_terraform_app(&repo, prefix, service, "nginx:1", 1, DEPDEF, "");
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gmctl_command_works_against_gitmoxi_serve() {
    let moto = Moto::start().await;
    let infra = moto.infra("prod");
    // the configured repository: one service here, one naming an account with no role (it fails)
    let configured = app_repo(&infra, "apps/web/web", "web");
    write_terraform_app(&configured, "apps/other/other", "other", "nginx:1", 1, DEPDEF, "");
    configured
        .write("apps/other/other_depdef.json", r#"{"environment": {"account": "210987654321"}, "stabilityCheck": {"pollInterval": 1}}"#);
    configured.commit("web, and other in another account");
    let added = app_repo(&infra, "apps/api/api", "api");
    let first = added.commit("api");
    let server = Server::start_with_token(&moto, &configured, TOKEN, vec!["127.0.0.1/32".parse().unwrap()]).await;
    let api = server.api.clone();
    server.wait_app("apps/web/web", Duration::from_secs(60), synced).await;
    server.wait_app("apps/other/other", Duration::from_secs(60), |a| a["last_outcome"] == "failed").await;

    // the opt-in opens gmctl's /api/v1 to loopback, nothing else
    let plain = reqwest::Client::new();
    assert_eq!(plain.get(format!("{api}/api/v2/apps")).send().await.unwrap().status().as_u16(), 401, "v2 still needs the token");
    assert_eq!(plain.get(format!("{api}/api/v1/repositories")).send().await.unwrap().status().as_u16(), 200);

    // repo add / get
    let added_url = added.path().display().to_string();
    let out = gmctl(&api, &["repo", "add", "-r", &added_url, "-b", "main", "-a", "", "-p", "github"]);
    assert!(out.contains("added as 'repo-") || out.contains("added as"), "{out}");
    let out = gmctl(&api, &["repo", "add", "-r", &added_url, "-b", "main", "-a", "", "-p", "github"]);
    assert!(out.contains("already tracked"), "a refusal is visible in gmctl (message_list): {out}");
    let out = gmctl(&api, &["repo", "get"]);
    assert!(out.contains(&added_url) && out.contains(&configured.path().display().to_string()), "{out}");
    let out = gmctl(&api, &["repo", "get", "-r", &added_url]);
    assert!(out.contains(&added_url) && out.contains("github"), "{out}");
    server.wait_app("apps/api/api", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;

    // deployment ecs / lambda / k8s / get
    let out = gmctl(&api, &["deployment", "ecs", "get", "-s", "api", "-v"]);
    let row = out.lines().find(|l| l.contains(" api ") && l.contains("PROCESSED_SUCCESS")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("123456789012") && row.contains(&added_url) && row.contains("apps/api/api"), "the real account: {row}");
    let out = gmctl(&api, &["deployment", "ecs", "get", "-a", "123456789012", "-re", "us-east-1", "-cl", "prod", "-N", "5"]);
    assert!(out.contains(" api ") && out.contains(" web "), "{out}");
    let out = gmctl(&api, &["deployment", "ecs", "get", "-a", "999999999999"]);
    assert!(out.contains("No data to display."), "{out}");
    let out = gmctl(&api, &["deployment", "ecs", "get", "-st", "PROCESSED_ERROR", "-v"]);
    assert!(out.contains(" other ") && out.contains("210987654321"), "the failed app, in the account it named: {out}");
    assert!(out.contains("cause: ") && out.contains("no role configured for account 210987654321"), "{out}");
    assert!(out.contains("next step: "), "{out}");
    let out = gmctl(&api, &["deployment", "ecs", "get", "-r", &added_url, "-c", &first[..8], "-A", "-v"]);
    assert!(out.contains(" api ") && !out.contains(" web "), "{out}");
    let out = gmctl(&api, &["deployment", "lambda", "get", "-N", "3"]);
    assert!(out.contains("No data to display."), "{out}");
    let out = gmctl(&api, &["deployment", "k8s", "get"]);
    assert!(out.contains("No data to display."), "an empty list, not an error: {out}");
    let out = gmctl(&api, &["deployment", "get", "-c", &first]);
    assert!(out.contains("ECS deployments for commit") && out.contains(" api ") && out.contains("LAMBDA deployments"), "{out}");

    // commit get
    let out = gmctl(&api, &["commit", "get", "-r", &added_url, "-b", "main", "-n", "3"]);
    let row = out.lines().find(|l| l.contains(&first)).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("PROCESSED_SUCCESS") && row.contains("20"), "status and receive time: {row}");

    // a new commit, not fetched yet (the poll is an hour): dryrun fetches and shows it
    let taskdef = std::fs::read_to_string(added.path().join("apps/api/api_taskdef.json")).unwrap().replace("nginx:1", "nginx:2");
    added.write("apps/api/api_taskdef.json", &taskdef);
    let second = added.commit("api: nginx 2");
    let out = gmctl(&api, &["commit", "dryrun", "-r", &added_url, "-b", "main"]);
    let row = out.lines().find(|l| l.contains("apps/api/api_taskdef.json")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(&second) && row.contains(&first) && row.contains("added_or_modified"), "newest and last known: {row}");
    let out = gmctl(&api, &["commit", "dryrun", "-r", &added_url, "-b", "main", "-p", "-v"]);
    assert!(out.contains("\"rendered\"") && out.contains("nginx:2"), "{out}");
    let svc = moto.ecs().await.describe_services().cluster("prod").services("api").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("api:1"), "a dry run deploys nothing");

    // riskiq: the commit's risk, kept, read back by commit and by file
    let out = gmctl(&api, &["commit", "riskiq", "-r", &added_url, "-b", "main", "-v"]);
    assert!(out.contains("apps/api/api_taskdef.json"), "{out}");
    let prompt_file = tempfile::NamedTempFile::new().unwrap();
    let prompt_path = prompt_file.path().display().to_string();
    let out = gmctl(&api, &["riskiq", "get", "-c", &second[..10], "-v", "-p", &prompt_path]);
    assert!(out.contains("RISK IQ") && out.contains("image of container api: nginx:1 → nginx:2"), "{out}");
    assert!(out.contains("apps/api/api — risk low"), "{out}");
    assert!(out.contains("in AWS: every field the files set is already held"), "the live comparison (issue 23): {out}");
    assert!(std::fs::read_to_string(prompt_file.path()).unwrap().contains("risk assessment"), "the prompt is written");
    let out = gmctl(&api, &["riskiq", "get", "-c", &second, "-f", "apps/api/api_taskdef.json"]);
    assert!(out.contains("file_path: apps/api/api"), "{out}");
    let out = gmctl(&api, &["riskiq", "get", "-c", &second, "-f", "apps/web/web_taskdef.json"]);
    assert!(out.contains("No RiskIQ records found."), "{out}");

    // commit deploy: the new commit deploys; again: nothing changed
    let out = gmctl(&api, &["commit", "deploy", "-r", &added_url, "-b", "main"]);
    let row = out.lines().find(|l| l.contains("apps/api/api_taskdef.json")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains(&second), "{row}");
    server.wait_app("apps/api/api", Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == second.as_str()).await;
    let svc = moto.ecs().await.describe_services().cluster("prod").services("api").send().await.unwrap();
    assert!(svc.services()[0].task_definition().unwrap().ends_with("api:2"), "AWS runs the new revision");
    let out = gmctl(&api, &["commit", "deploy", "-r", &added_url, "-b", "main", "-v"]);
    assert!(out.contains("No data to display.") && out.contains("nothing changed"), "{out}");
    let out = gmctl(&api, &["commit", "deploy", "-r", &added_url, "-b", "main", "-f"]);
    assert!(out.contains("apps/api/api_svcdef.json"), "forced: every file of the apps that redeploy: {out}");

    // issue 25: a commit gitmoxi already deployed keeps its assessment against the commit
    // processed before it; `commit riskiq` and `riskiq get` answer with it
    let taskdef = std::fs::read_to_string(added.path().join("apps/api/api_taskdef.json")).unwrap().replace("nginx:2", "nginx:3");
    added.write("apps/api/api_taskdef.json", &taskdef);
    let third = added.commit("api: nginx 3");
    gmctl(&api, &["commit", "deploy", "-r", &added_url, "-b", "main"]);
    server.wait_app("apps/api/api", Duration::from_secs(60), |a| synced(a) && a["applied_commit"] == third.as_str()).await;
    let out = gmctl(&api, &["commit", "riskiq", "-r", &added_url, "-b", "main", "-v"]);
    assert!(out.contains("apps/api/api_taskdef.json"), "the files the deployed commit changed: {out}");
    let answer: Value = plain
        .post(format!("{api}/api/v1/commits/riskiq"))
        .json(&serde_json::json!({"repo_url": added_url, "branch": "main"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["riskiq"]["apps"][0]["file_path"], "apps/api/api", "{answer}");
    assert!(answer["message_list"][0].as_str().unwrap().contains("already deployed"), "{answer}");
    let out = gmctl(&api, &["riskiq", "get", "-c", &third[..10], "-v"]);
    assert!(out.contains("image of container api: nginx:2 → nginx:3"), "{out}");

    // commit files
    let out = gmctl(&api, &["commit", "files", "-c", &second]);
    let row = out.lines().find(|l| l.contains("apps/api/api_taskdef.json")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("added_or_modified") && row.contains("ecs_relevant_files") && !row.contains("None"), "{row}");

    // taskset: a rolling service has none; gmctl shows an empty table, the API says why
    let arn = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
    let out = gmctl(&api, &["taskset", "rebalance", "-s", arn, "-A"]);
    assert!(out.contains("No data to display."), "{out}");
    let answer: Value = plain
        .post(format!("{api}/api/v1/taskset/rebalance"))
        .json(&serde_json::json!({"service_arn": arn, "shift_all": true, "revert": false, "override": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["message_list"][0].as_str().unwrap_or_default().contains("rolling updates"), "{answer}");
    let out = gmctl(&api, &["taskset", "rebalance", "-s", arn, "-r", "-o"]);
    assert!(out.contains("No data to display."), "{out}");
    let out = gmctl(&api, &["taskset", "get", "-t", "arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/ecs-svc/1"]);
    assert!(out.contains("No data to display."), "{out}");

    // repo delete: the records keep their repository URL
    let out = gmctl(&api, &["repo", "delete", "-r", &added_url]);
    assert!(out.contains("Delete response") && out.contains("deleted"), "{out}");
    let out = gmctl(&api, &["deployment", "ecs", "get", "-s", "api", "-v"]);
    assert!(out.lines().filter(|l| l.contains(" api ")).all(|l| l.contains(&added_url)), "{out}");
    server.stop().await;
}
