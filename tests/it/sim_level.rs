//! Issue 23 in the fake world: the loop is level-triggered (a delete pushed while an update
//! stabilizes is acted on when the update ends) and every svcdef field the files set reaches ECS
//! (svcdef-only apps, drift of a field, a capacity provider change).

use crate::sim::{Sim, MINUTES, REGION};
use gitmoxi_deploy::record::Outcome;
use serde_json::json;
use std::time::Duration;

const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 180}, "gmDeploymentCircuitBreaker": {"failureThreshold": 2}}"#;

#[tokio::test(start_paused = true)]
async fn a_delete_pushed_while_an_update_stabilizes_deletes_the_service() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    // a bystander: a head with no apps at all is held by prune protection
    sim.add_app("prod/other/other", "other", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    sim.set_image("prod/web/web", "nginx:2");
    sim.commit();
    let key = Sim::key("prod/web/web");
    assert!(sim.run_until(5 * MINUTES, |s| s.store.record(&key).unwrap().is_some_and(|r| r.phase.name() == "stabilize")).await);
    sim.remove_app("prod/web/web");
    sim.commit();
    // the update finishes, then the delete goes ahead at once (not at the next steady look)
    assert!(
        sim.run_until(90 * Duration::from_secs(1), |s| !s.world.mutations("DeleteService").is_empty()).await,
        "the delete was lost: {:?} {}",
        sim.history("prod/web/web"),
        sim.seed_note()
    );
    assert!(sim.run_until(MINUTES, |s| s.store.app(&key).unwrap().is_none()).await, "the app is forgotten once its service is gone");
    let svc = sim.world.service(REGION, "prod", "web");
    assert!(svc.as_ref().is_none_or(|s| !s.is_active()), "the service is deleted: {svc:?}");
}

/// Writes a svcdef-only app (no taskdef file) naming `api:1`, with `extra` svcdef fields.
fn svcdef_only(sim: &mut Sim, extra: &str) {
    let files = crate::support::ecs_app("prod/api/api", "api", "prod", "{{ image }}", 2, DEPDEF);
    for (path, content) in files.iter().filter(|(path, _)| !path.ends_with("_taskdef.json") && !path.ends_with("_svcdef.json")) {
        sim.tree.insert(path, content);
    }
    let mut svcdef = files["prod/api/api_svcdef.json"].replacen('{', &format!("{{\"taskDefinition\": \"api:1\",{extra}"), 1);
    if extra.contains("capacityProviderStrategy") {
        // ECS takes a launch type or a capacity provider strategy, never both
        svcdef = svcdef.replace(r#""launchType": "FARGATE","#, "");
    }
    sim.tree.insert("prod/api/api_svcdef.json", &svcdef);
    sim.tree.insert("prod/api/api_input.json", r#"{"image": "unused", "subnets": ["subnet-1"], "security_groups": ["sg-1"]}"#);
}

#[tokio::test(start_paused = true)]
async fn svcdef_edits_of_an_app_without_a_taskdef_reach_ecs_and_drift_of_a_field_heals() {
    let mut sim = Sim::new();
    let ecs = sim.world.provider().ecs(None, REGION);
    let body = json!({"family": "api", "containerDefinitions": [{"name": "api", "image": "nginx:1", "memory": 128}]});
    ecs.register_task_definition(&body).await.expect("registered");
    svcdef_only(&mut sim, "");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/api/api") && s.stable_on("api", "api:1")).await, "{}", sim.seed_note());

    // an edit of service fields only: one UpdateService carrying them, then Succeeded
    svcdef_only(&mut sim, r#" "enableExecuteCommand": true, "healthCheckGracePeriodSeconds": 45,"#);
    sim.commit();
    assert!(
        sim.run_until(5 * MINUTES, |s| s.world.mutations("UpdateService").len() == 1 && s.idle("prod/api/api")).await,
        "{:?} {}",
        sim.history("prod/api/api"),
        sim.seed_note()
    );
    assert_eq!(sim.outcome("prod/api/api"), Some(Outcome::Succeeded));
    let settings = sim.world.service(REGION, "prod", "api").unwrap().settings.unwrap();
    assert_eq!((settings["enableExecuteCommand"].clone(), settings["healthCheckGracePeriodSeconds"].clone()), (json!(true), json!(45)));

    // someone turns execute-command off by hand: drift names the field and heal sends it back
    sim.world.set_service_setting(REGION, "prod", "api", "enableExecuteCommand", json!(false));
    assert!(
        sim.run_until(10 * MINUTES, |s| s.world.service(REGION, "prod", "api").unwrap().settings.unwrap()["enableExecuteCommand"]
            == json!(true))
            .await,
        "drift of a field was not healed: {:?}",
        sim.history("prod/api/api")
    );
    assert!(sim.history("prod/api/api").iter().any(|h| h.contains("/enableExecuteCommand")), "{:?}", sim.history("prod/api/api"));

    // a capacity provider strategy: ECS wants a new deployment with it, gitmoxi forces one
    svcdef_only(
        &mut sim,
        r#" "enableExecuteCommand": true, "healthCheckGracePeriodSeconds": 45, "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],"#,
    );
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| s.idle("prod/api/api")
            && s.world.service(REGION, "prod", "api").unwrap().settings.unwrap().get("capacityProviderStrategy").is_some())
            .await,
        "{:?}",
        sim.history("prod/api/api")
    );
    assert_eq!(sim.outcome("prod/api/api"), Some(Outcome::Succeeded), "{:?}", sim.history("prod/api/api"));
}

#[tokio::test(start_paused = true)]
async fn a_commit_whose_template_does_not_render_is_a_failed_deployment_once_and_touches_nothing() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    let mutations = sim.world.mutations("UpdateService").len();
    sim.tree.insert(
        "prod/web/web_taskdef.json",
        r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "{{ no_such_input }}"}]}"#,
    );
    sim.commit();
    let key = Sim::key("prod/web/web");
    let failed = |s: &Sim| {
        s.store.deployments().unwrap().into_iter().filter(|d| d.cause == Some(gitmoxi_deploy::record::FailureCause::TemplateError)).count()
    };
    assert!(sim.run_until(MINUTES, |s| failed(s) == 1).await, "{:?}", sim.history("prod/web/web"));
    let entry = sim.store.app(&key).unwrap().unwrap();
    assert_eq!(entry.last_outcome, Some(Outcome::Failed));
    // the same commit, polled again: no second record; AWS untouched; the service runs web:1
    sim.apply();
    sim.run_until(2 * MINUTES, |_| false).await;
    assert_eq!(failed(&sim), 1);
    assert_eq!(sim.world.mutations("UpdateService").len(), mutations);
    assert!(sim.stable_on("web", "web:1"));
    let record = sim.store.deployments().unwrap().into_iter().find(|d| d.cause.is_some()).unwrap();
    assert!(record.evidence.iter().any(|e| e.contains("prod/web/web_taskdef.json")), "{:?}", record.evidence);
}

/// Issue 23, item 16: a `serviceName` change creates the new service and, once it runs, deletes
/// the one the app owned under the old name.
#[tokio::test(start_paused = true)]
async fn a_renamed_service_replaces_the_old_one_which_is_deleted_once_the_new_one_runs() {
    let mut sim = Sim::new();
    sim.add_app("prod/web/web", "web", "nginx:1");
    sim.add_app("prod/other/other", "other", "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    sim.add_app("prod/web/web", "web2", "nginx:1");
    sim.commit();
    let renamed = |s: &Sim| {
        s.stable_on("web2", "web2:1")
            && s.world.service(REGION, "prod", "web").is_none_or(|svc| !svc.is_active())
            && s.store.app(&Sim::key("prod/web/web")).unwrap().is_some_and(|e| e.applied.retired.is_empty())
    };
    assert!(sim.run_until(10 * MINUTES, renamed).await, "{:?} {}", sim.history("prod/web/web"), sim.seed_note());
    let entry = sim.store.app(&Sim::key("prod/web/web")).unwrap().expect("the app is kept");
    assert!(entry.applied.identity.as_ref().is_some_and(|i| i.to_string().ends_with("/web2")), "{:?}", entry.applied.identity);
    assert_eq!(sim.world.mutations("DeleteService").len(), 1, "only the former service is deleted");
}

/// Issue 23, item 1 for Lambda: a function's files removed while its canary holds 20 % are
/// acted on once that deployment ends: the function is deleted, not left running.
#[tokio::test(start_paused = true)]
async fn a_lambda_delete_pushed_while_the_canary_holds_deletes_the_function() {
    const PREFIX: &str = "fn/hello";
    let depdef = r#"{"alias": "live", "trafficShiftingConfig": {"type": "CANARY", "percent": 20, "waitInterval": 30},
      "readinessCheck": {"waitInterval": 2, "maxRetries": 10}}"#;
    let function = |sim: &mut Sim, code: &str| {
        sim.tree.insert(
            &format!("{PREFIX}_lambdadef.json"),
            &format!(
                r#"{{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler",
  "Role": "arn:aws:iam::123456789012:role/hello", "Code": {{"ZipFile": "{code}"}}}}"#
            ),
        );
        sim.tree.insert(&format!("{PREFIX}_lambdadepdef.json"), depdef);
    };
    let mut sim = Sim::new();
    // a bystander: a head with no apps at all is held by prune protection
    sim.add_app("prod/other/other", "other", "nginx:1");
    function(&mut sim, "djE=");
    sim.commit();
    let live = |s: &Sim| s.world.lambda_alias(REGION, "hello", "live");
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(PREFIX) && live(s).is_some_and(|(v, _)| v == "1")).await, "{:?}", sim.history(PREFIX));
    function(&mut sim, "djI=");
    sim.commit();
    assert!(
        sim.run_until(10 * MINUTES, |s| live(s).is_some_and(|(_, extra)| extra.get("2") == Some(&0.2))).await,
        "the canary holds 20 %: {:?}",
        sim.history(PREFIX)
    );
    sim.tree.remove(&format!("{PREFIX}_lambdadef.json"));
    sim.tree.remove(&format!("{PREFIX}_lambdadepdef.json"));
    sim.commit();
    assert!(
        sim.run_until(5 * MINUTES, |s| !s.world.lambda_exists(REGION, "hello")).await,
        "the delete was lost: {:?} {}",
        sim.history(PREFIX),
        sim.seed_note()
    );
    assert!(sim.run_until(MINUTES, |s| s.store.app(&Sim::key(PREFIX)).unwrap().is_none()).await, "the app is forgotten");
}
