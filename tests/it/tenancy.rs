//! Issue 27 against moto, with two repositories: one team's committer cannot take over or
//! delete another team's service by naming it.

use crate::moto::{synced, write_terraform_app, Moto, Server};
use crate::support::TestRepo;
use serde_json::json;
use std::time::Duration;

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 1, "timeout": 60}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_second_repository_naming_a_service_it_does_not_own_is_a_conflict_and_deletes_nothing() {
    let moto = Moto::start().await;
    let infra = moto.infra("prod");
    let team_a = TestRepo::new();
    team_a.write("infra/terraform_output.json", &infra);
    write_terraform_app(&team_a, "apps/c1/c1", "c1", "nginx:1", 1, DEPDEF, "");
    team_a.commit("team a: c1");
    let server = Server::start(&moto, &team_a, 25).await;
    server.wait_app("apps/c1/c1", Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    let ecs = moto.ecs().await;
    let before =
        ecs.describe_services().cluster("prod").services("c1").include(aws_sdk_ecs::types::ServiceField::Tags).send().await.unwrap();
    let owned_td = before.services()[0].task_definition().unwrap().to_string();

    // team b's committer names the same service in another repository
    let team_b = TestRepo::new();
    team_b.write("infra/terraform_output.json", &infra);
    write_terraform_app(&team_b, "teams/b/takeover", "c1", "nginx:evil", 1, DEPDEF, "");
    team_b.commit("team b: a service called c1");
    let added = reqwest::Client::new()
        .post(format!("{}/api/v1/repositories/add", server.api))
        .json(&json!({"repo_url": team_b.path().display().to_string(), "branches": ["main"], "access_token_arn": "", "provider": "github"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 200);
    let b = server.wait_app("teams/b/takeover", Duration::from_secs(60), |a| a["status"] == "Conflict").await;
    assert!(b.to_string().contains("is owned by deploys/main:apps/c1/c1"), "both sides named: {b:#}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after =
        ecs.describe_services().cluster("prod").services("c1").include(aws_sdk_ecs::types::ServiceField::Tags).send().await.unwrap();
    let svc = &after.services()[0];
    assert_eq!(svc.task_definition(), Some(owned_td.as_str()), "team a's service still runs team a's revision");
    let repo_tag = svc.tags().iter().find(|t| t.key() == Some("gitmoxi:repo")).and_then(|t| t.value());
    assert_eq!(repo_tag, Some("deploys"));

    // team b removes its app: team a's service is not deleted
    for suffix in ["_svcdef.json", "_taskdef.json", "_depdef.json", "_input.json"] {
        team_b.remove(&format!("teams/b/takeover{suffix}"));
    }
    write_terraform_app(&team_b, "teams/b/other", "b-other", "nginx:1", 1, DEPDEF, "");
    team_b.commit("team b: the takeover removed");
    server.wait_app("teams/b/other", Duration::from_secs(60), synced).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = ecs.describe_services().cluster("prod").services("c1").send().await.unwrap();
    assert_eq!(still.services()[0].status(), Some("ACTIVE"), "team a's service was deleted by team b's commit");
    assert!(!server.proxy.mutations().contains_key("ecs:DeleteService"), "{:?}", server.proxy.mutations());
    assert_eq!(server.app("apps/c1/c1").await.unwrap()["status"], "Synced");
    server.stop().await;
}
