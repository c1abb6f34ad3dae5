//! Many accounts from one controller (SPEC §7.4), against moto, whose AssumeRole credentials
//! belong to the role's account: one repository deploys an app into the controller's own account
//! and one into a workload account through its role; each lands only in its account, drift and
//! deletes work per account, and an app whose role is denied (or missing) fails alone.

use crate::moto::{healed_by_gitmoxi, put_hotfix_behind_gitmoxis_back, synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use gitmoxi::aws::accounts::AccountRole;
use gitmoxi_deploy::accounts::AllowedRegions;
use std::time::Duration;

const WORKLOAD: &str = "111111111111";
const WORKLOAD_ROLE: &str = "arn:aws:iam::111111111111:role/gitmoxi-deploy";
const UNTRUSTING: &str = "222222222222";
const NO_ROLE: &str = "333333333333";

fn depdef(account: &str) -> String {
    format!(r#"{{"environment": {{"account": "{account}"}}, "stabilityCheck": {{"pollInterval": 1, "timeout": 60}}}}"#)
}

/// An app of `account` whose infrastructure outputs are `outputs`.
fn write_account_app(repo: &TestRepo, prefix: &str, account: &str, outputs: &str) {
    write_terraform_app(repo, prefix, "web", "{{ image }}", 2, &depdef(account), r#", "image": "nginx:1""#);
    repo.write(
        &format!("{prefix}_input.json"),
        &format!(r#"{{"ref": {{"file": ["{outputs}"], "type": "TERRAFORM"}}, "image": "nginx:1"}}"#),
    );
}

/// An ECS client acting in the role's account.
async fn ecs_as(moto: &Moto, role_arn: &str) -> aws_sdk_ecs::Client {
    let own = moto.sdk_config().await;
    let c = aws_sdk_sts::Client::new(&own).assume_role().role_arn(role_arn).role_session_name("test").send().await.unwrap();
    let c = c.credentials().unwrap();
    let creds =
        aws_sdk_ecs::config::Credentials::new(c.access_key_id(), c.secret_access_key(), Some(c.session_token().into()), None, "test");
    aws_sdk_ecs::Client::from_conf(aws_sdk_ecs::config::Builder::from(&own).credentials_provider(creds).build())
}

/// The task definition (family:revision) the service `web` of `cluster` runs, or `None`.
async fn running(ecs: &aws_sdk_ecs::Client, cluster: &str) -> Option<String> {
    let out = ecs.describe_services().cluster(cluster).services("web").send().await.ok()?;
    let svc = out.services().first().filter(|s| s.status() == Some("ACTIVE"))?;
    Some(svc.task_definition()?.rsplit('/').next()?.to_string())
}

fn role(arn: &str, regions: AllowedRegions) -> AccountRole {
    AccountRole { role_arn: arn.into(), external_id: Some("gitmoxi-test".into()), session_name: "gitmoxi".into(), regions }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_one_repository_deploys_into_two_accounts_and_a_denied_role_fails_only_its_app() {
    let moto = Moto::start().await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    repo.write("infra/workload_output.json", &moto.infra_with("workload", &["--role-arn", WORKLOAD_ROLE]));
    write_terraform_app(&repo, "own/web/web", "web", "{{ image }}", 2, &depdef_own(), r#", "image": "nginx:1""#);
    write_account_app(&repo, "workload/web/web", WORKLOAD, "infra/workload_output.json");
    write_account_app(&repo, "untrusting/web/web", UNTRUSTING, "infra/workload_output.json");
    write_account_app(&repo, "unknown/web/web", NO_ROLE, "infra/workload_output.json");
    write_account_app(&repo, "elsewhere/web/web", WORKLOAD, "infra/workload_output.json");
    let elsewhere = std::fs::read_to_string(repo.path().join("elsewhere/web/web_depdef.json")).unwrap();
    repo.write("elsewhere/web/web_depdef.json", &elsewhere.replace(r#""account""#, r#""region": "eu-west-1", "account""#));
    repo.commit("apps in three accounts");
    let accounts = [
        (WORKLOAD.to_string(), role(WORKLOAD_ROLE, AllowedRegions::Only(vec!["us-east-1".into()]))),
        (UNTRUSTING.to_string(), role("arn:aws:iam::222222222222:role/untrusted-gitmoxi", AllowedRegions::Any)),
    ]
    .into_iter()
    .collect();
    let server = Server::start_with_accounts(&moto, &repo, accounts, Duration::from_secs(1)).await;
    let own = moto.ecs().await;
    let workload = ecs_as(&moto, WORKLOAD_ROLE).await;

    // each app lands in its own account, and only there
    for prefix in ["own/web/web", "workload/web/web"] {
        let app = server.wait_app(prefix, Duration::from_secs(90), |a| synced(a) && a["last_outcome"] == "succeeded").await;
        assert_eq!(app["last_outcome"], "succeeded", "{prefix}: {app:#}");
    }
    assert_eq!(running(&own, "prod").await.as_deref(), Some("web:1"));
    assert_eq!(running(&workload, "workload").await.as_deref(), Some("web:1"), "deployed into the workload account");
    assert_eq!(running(&own, "workload").await, None, "nothing of the workload account's app in the controller's account");
    assert_eq!(running(&workload, "prod").await, None, "nothing of the controller's app in the workload account");
    let svc = workload.describe_services().cluster("workload").services("web").send().await.unwrap();
    assert!(svc.services()[0].service_arn().unwrap().contains(&format!(":{WORKLOAD}:")), "{:?}", svc.services()[0].service_arn());
    assert_eq!(svc.services()[0].running_count(), 2);

    // a role STS refuses, an account without a role, a region the role may not use: each fails
    // alone, says why, and touches nothing
    let untrusting = server.wait_app("untrusting/web/web", Duration::from_secs(60), |a| a["last_outcome"] == "failed").await;
    let cause = untrusting["last_cause"].as_str().unwrap();
    assert!(cause.contains("could not assume the role of account 222222222222") && cause.contains("AccessDenied"), "{cause}");
    assert!(cause.contains("untrusted-gitmoxi"), "names the role: {cause}");
    let unknown = server.wait_app("unknown/web/web", Duration::from_secs(60), |a| a["last_outcome"] == "failed").await;
    assert!(unknown["last_cause"].as_str().unwrap().contains("no role configured for account 333333333333"), "{unknown:#}");
    let elsewhere = server.wait_app("elsewhere/web/web", Duration::from_secs(60), |a| a["last_outcome"] == "failed").await;
    let cause = elsewhere["last_cause"].as_str().unwrap();
    assert!(cause.contains("region eu-west-1 is not allowed for account 111111111111"), "{cause}");
    let calls = server.proxy.table();
    assert!(!calls.contains("eu-west-1"), "nothing was called in the refused region:\n{calls}");
    // the workload role is assumed once and its credentials reused by every call of that account
    let assumed: u64 = server.proxy.counts().iter().filter(|(op, _)| op.name == "AssumeRole").map(|(_, count)| count.total()).sum();
    assert!(
        (2..=3).contains(&assumed),
        "one AssumeRole per role (the untrusting one refused once, maybe retried once), not per call:\n{calls}"
    );

    // drift in the workload account is seen and healed there
    put_hotfix_behind_gitmoxis_back(&workload, "workload").await;
    let healed = server.wait_app("workload/web/web", Duration::from_secs(60), healed_by_gitmoxi).await;
    assert!(healed["history"].to_string().contains("drift: service web runs web:2 instead of web:1"), "{healed:#}");
    let td = running(&workload, "workload").await.unwrap();
    assert_ne!(td, "web:2", "healed in the workload account");
    assert_eq!(running(&own, "prod").await.as_deref(), Some("web:1"), "the controller's own app untouched");

    // deleting the workload app deletes its service in the workload account only
    for suffix in ["svcdef", "taskdef", "depdef", "input"] {
        repo.remove(&format!("workload/web/web_{suffix}.json"));
    }
    repo.commit("the workload app goes");
    let start = std::time::Instant::now();
    while running(&workload, "workload").await.is_some() {
        assert!(start.elapsed() < Duration::from_secs(60), "the workload account's service was not deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(running(&own, "prod").await.as_deref(), Some("web:1"), "the controller's own service stays");
    server.stop().await;
}

fn depdef_own() -> String {
    r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#.to_string()
}
