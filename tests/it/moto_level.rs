//! Issue 23 against moto (with the project's scheduler): what AWS ends up holding after svcdef
//! edits of an app without a taskdef, a delete pushed while an update stabilizes, and blue/green
//! target group pairs without a traffic schedule.

use crate::moto::{register_by_hand, synced, write_app, Moto, Server};
use crate::support::TestRepo;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_svcdef_edits_reach_ecs_and_a_delete_pushed_mid_update_deletes_the_service() {
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    register_by_hand(&ecs, "api", "nginx:1", 128).await;
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &moto.infra("prod"));
    write_app(&repo, "prod/web/web", "web", "nginx:1");
    write_app(&repo, "prod/api/api", "api", "unused");
    repo.remove("prod/api/api_taskdef.json");
    let svcdef = std::fs::read_to_string(repo.path().join("prod/api/api_svcdef.json")).unwrap();
    let named = |extra: &str| svcdef.replacen('{', &format!("{{\"taskDefinition\": \"api:1\",{extra}"), 1);
    repo.write("prod/api/api_svcdef.json", &named(""));
    repo.commit("web, and api without a taskdef");
    let server = Server::start(&moto, &repo, 100).await;
    server.wait_app("prod/web/web", Duration::from_secs(60), synced).await;
    let first = server.wait_app("prod/api/api", Duration::from_secs(60), synced).await;

    // svcdef fields only: ECS must end up holding them, and the deployment says so
    repo.write("prod/api/api_svcdef.json", &named(r#" "enableExecuteCommand": true, "healthCheckGracePeriodSeconds": 30,"#));
    repo.commit("api: execute-command on, a grace period");
    let second = server.wait_app("prod/api/api", Duration::from_secs(60), |a| synced(a) && a["fingerprint"] != first["fingerprint"]).await;
    assert_eq!(second["last_outcome"], "succeeded", "{second:#}");
    let described = ecs.describe_services().cluster("prod").services("api").send().await.unwrap();
    let api = &described.services()[0];
    assert!(api.enable_execute_command(), "ECS holds the file's enableExecuteCommand: {api:?}");
    assert_eq!(api.health_check_grace_period_seconds(), Some(30), "{api:?}");

    // issue 23, item 4: a commit that changes service fields and names a revision whose tasks
    // fail is rolled back to every field of the last good service, not only its task definition
    register_by_hand(&ecs, "api", "fail:2", 128).await;
    let failing = named(r#" "enableExecuteCommand": false, "healthCheckGracePeriodSeconds": 90,"#).replace("api:1", "api:2");
    repo.write("prod/api/api_svcdef.json", &failing);
    repo.commit("api: a revision that fails, and other service fields");
    let third = server.wait_app("prod/api/api", Duration::from_secs(90), |a| a["last_outcome"] == "rolled_back").await;
    let described = ecs.describe_services().cluster("prod").services("api").send().await.unwrap();
    let api = &described.services()[0];
    assert!(api.task_definition().unwrap_or_default().ends_with("api:1"), "{api:?} {third:#}");
    assert!(api.enable_execute_command(), "the last good enableExecuteCommand is back: {api:?}");
    assert_eq!(api.health_check_grace_period_seconds(), Some(30), "the last good grace period is back: {api:?}");

    // an image change, then the svcdef removed while it stabilizes: the service is deleted
    write_app(&repo, "prod/web/web", "web", "nginx:2");
    repo.commit("web: nginx 2");
    server.wait_app("prod/web/web", Duration::from_secs(60), |a| a["phase"] == "stabilize").await;
    for suffix in ["_svcdef.json", "_taskdef.json", "_depdef.json", "_input.json"] {
        repo.remove(&format!("prod/web/web{suffix}"));
    }
    repo.commit("web: removed");
    let start = std::time::Instant::now();
    loop {
        let web = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
        if web.services().first().is_none_or(|s| s.status() != Some("ACTIVE")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the delete pushed mid-update was lost: {:#}",
            server.app("prod/web/web").await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_blue_green_pairs_without_a_schedule_move_traffic_before_blue_is_deleted() {
    use crate::moto_blue_green::{outputs, task_sets, Watch, PREFIX};
    let moto = Moto::start().await;
    let infra = moto.infra_with_alb("prod");
    let (tgs, listeners, rule) = outputs(&infra);
    let repo = TestRepo::new();
    repo.write("infra/terraform_output.json", &infra);
    let without_schedule = |repo: &TestRepo, image: &str| {
        crate::moto_blue_green::write_app(repo, image);
        let path = format!("{PREFIX}_depdef.json");
        let depdef = std::fs::read_to_string(repo.path().join(&path)).unwrap();
        repo.write(&path, &depdef.replace(r#""trafficShiftingConfig": {"type": "LINEAR", "percent": 20, "waitInterval": 1},"#, ""));
        assert!(!std::fs::read_to_string(repo.path().join(&path)).unwrap().contains("trafficShiftingConfig"));
    };
    without_schedule(&repo, "nginx:1");
    repo.commit("web: blue/green, pairs, no schedule");
    let server = Server::start(&moto, &repo, 25).await;
    server.wait_app(PREFIX, Duration::from_secs(60), |a| synced(a) && a["last_outcome"] == "succeeded").await;
    without_schedule(&repo, "nginx:2");
    let second = repo.commit("web: nginx 2");
    // one ALL_AT_ONCE step: green takes 100 %, then a waitInterval (60 s) and a bake as long
    let app = server
        .wait_app(PREFIX, Duration::from_secs(300), |a| a["applied_commit"] == second.as_str() || a["last_outcome"] == "failed")
        .await;
    assert_eq!(app["last_outcome"], "succeeded", "{app:#}");
    let config = moto.sdk_config().await;
    let watch = Watch { elb: aws_sdk_elasticloadbalancingv2::Client::new(&config), listener: listeners["80"].clone(), rule };
    assert_eq!(watch.green(&tgs["web-b"]).await, 100, "production follows green into the partner group");
    let sets = task_sets(&moto.ecs().await).await;
    assert_eq!(sets.len(), 1, "blue deleted: {sets:?}");
    assert!(sets[0].task_definition().unwrap().ends_with("web:2"));
    server.stop().await;
}
