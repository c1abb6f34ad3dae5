//! ECS's own strategies (BLUE_GREEN, LINEAR, CANARY) followed through ECS's service deployment,
//! in the simulation: the fake world runs the stages as the ECS developer guide describes them.
//! gitmoxi waits through bake and traffic steps without rolling back, reports ECS's rollback as
//! ECS's, and when its own budget runs out asks ECS to roll back instead of updating on top.

use crate::sim::{Sim, MINUTES, REGION};
use crate::support::ecs_app;
use gitmoxi_deploy::record::{FailureCause, Outcome};

/// A short stability budget: the bake and the traffic steps are longer than it.
const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 60}}"#;

fn add_native_app(sim: &mut Sim, prefix: &str, deployment_configuration: &str, image: &str) {
    for (path, content) in ecs_app(prefix, "web", "prod", "{{ image }}", 2, DEPDEF) {
        let content = if path.ends_with("_svcdef.json") {
            content.replacen('{', &format!("{{\n  \"deploymentConfiguration\": {deployment_configuration},"), 1)
        } else {
            content
        };
        sim.tree.insert(&path, &content);
    }
    sim.set_image(prefix, image);
}

/// The app's last deployment is one of the newest commit and has ended.
fn newest_done(sim: &Sim, prefix: &str) -> bool {
    sim.idle(prefix) && sim.store.app(&Sim::key(prefix)).unwrap().is_some_and(|_| record_of(sim, prefix).commit == sim.head())
}

fn record_of(sim: &Sim, prefix: &str) -> gitmoxi_deploy::record::DeploymentRecord {
    let app = sim.store.app(&Sim::key(prefix)).unwrap().unwrap();
    sim.store.deployment(app.last_deployment.as_deref().unwrap()).unwrap().unwrap()
}

#[tokio::test(start_paused = true)]
async fn native_blue_green_bakes_two_minutes_and_succeeds_without_a_gitmoxi_rollback() {
    let mut sim = Sim::new();
    add_native_app(&mut sim, "prod/web/web", r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2}"#, "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));

    sim.set_image("prod/web/web", "nginx:2");
    sim.commit();
    // green runs after ~20 s; then 2 minutes of bake with both revisions: not done before ECS says so
    assert!(sim.run_until(MINUTES + MINUTES / 2, |s| s.world.service(REGION, "prod", "web").unwrap().deployments.len() == 2).await);
    assert!(!sim.idle("prod/web/web"), "still in flight while ECS bakes");
    assert!(sim.run_until(10 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded), "{:?}", sim.history("prod/web/web"));
    assert!(sim.stable_on("web", "web:2"), "ECS cleaned blue up and runs web:2 only");
    let updates = sim.world.mutations("UpdateService");
    assert_eq!(updates.len(), 1, "one update; ECS did the rest: {updates:?}");
    assert!(sim.world.mutations("StopServiceDeployment").is_empty());
    let timeline: Vec<String> = record_of(&sim, "prod/web/web").timeline.into_iter().map(|e| e.message).collect();
    assert!(timeline.iter().any(|m| m.starts_with("bake: both revisions run")), "{timeline:?}");
    assert!(timeline.iter().any(|m| m.starts_with("ECS deployment succeeded: web:2")), "{timeline:?}");
}

#[tokio::test(start_paused = true)]
async fn native_linear_25_shows_each_step_in_the_timeline() {
    let mut sim = Sim::new();
    let linear =
        r#"{"strategy": "LINEAR", "bakeTimeInMinutes": 1, "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 1}}"#;
    add_native_app(&mut sim, "prod/web/web", linear, "nginx:1");
    sim.commit();
    assert!(sim.run_until(15 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    sim.set_image("prod/web/web", "nginx:2");
    sim.commit();
    assert!(sim.run_until(15 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
    let timeline: Vec<String> = record_of(&sim, "prod/web/web").timeline.into_iter().map(|e| e.message).collect();
    for weight in [25, 50, 75, 100] {
        let line = format!("ECS shifted production traffic: {weight} % to the new revision");
        assert!(timeline.contains(&line), "{line} missing from {timeline:?}");
    }
    let position = |needle: &str| timeline.iter().position(|m| m.contains(needle)).unwrap();
    assert!(position(": 25 %") < position(": 50 %") && position(": 75 %") < position(": 100 %"), "in order: {timeline:?}");
}

#[tokio::test(start_paused = true)]
async fn ecs_rolling_back_its_own_deployment_is_reported_with_ecs_reason() {
    let mut sim = Sim::new();
    let config = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2, "deploymentCircuitBreaker": {"enable": true, "rollback": true}}"#;
    add_native_app(&mut sim, "prod/web/web", config, "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    sim.set_image("prod/web/web", "nginx:fail");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::RolledBack));
    let record = record_of(&sim, "prod/web/web");
    match &record.cause {
        Some(FailureCause::EcsRolledBack { status, reason }) => {
            assert_eq!(status, "ROLLBACK_SUCCESSFUL");
            assert!(reason.contains("circuit breaker threshold was exceeded"), "{reason}");
        }
        other => panic!("ECS's rollback, not gitmoxi's: {other:?}"),
    }
    assert!(sim.stable_on("web", "web:1"), "ECS put blue back");
    assert_eq!(sim.world.mutations("UpdateService").len(), 1, "gitmoxi pushed no rollback on top of ECS's");
}

#[tokio::test(start_paused = true)]
async fn when_gitmoxis_budget_runs_out_ecs_is_asked_to_roll_back() {
    let mut sim = Sim::new();
    add_native_app(&mut sim, "prod/web/web", r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}"#, "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
    // green never starts (no breaker): gitmoxi's budget (60 s + the 1-minute bake) runs out
    sim.set_image("prod/web/web", "nginx:stuck");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::RolledBack));
    let record = record_of(&sim, "prod/web/web");
    assert!(matches!(record.cause, Some(FailureCause::StabilityTimeout { .. })), "{:?}", record.cause);
    assert_eq!(sim.world.mutations("StopServiceDeployment").len(), 1, "ECS's rollback, asked once");
    assert_eq!(sim.world.mutations("UpdateService").len(), 1, "no second update on top of ECS's deployment");
    assert!(record.evidence.iter().any(|e| e.contains("ROLLBACK_SUCCESSFUL")), "{:?}", record.evidence);
    assert!(sim.run_until(2 * MINUTES, |s| s.stable_on("web", "web:1")).await, "ECS put blue back");
}
