//! ECS's own strategies (BLUE_GREEN, LINEAR, CANARY) followed through ECS's service deployment,
//! in the simulation: the fake world runs the stages as the ECS developer guide describes them.
//! gitmoxi waits through bake and traffic steps without rolling back, reports ECS's rollback as
//! ECS's, and when its own budget runs out asks ECS to roll back instead of updating on top.

use crate::sim::{Sim, MINUTES, REGION};
use crate::support::ecs_app;
use gitmoxi_deploy::commands::AnswerChannel;
use gitmoxi_deploy::record::{FailureCause, Outcome};

/// A short stability budget: the bake and the traffic steps are longer than it.
const DEPDEF: &str = r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 60}}"#;

fn add_native_app(sim: &mut Sim, prefix: &str, deployment_configuration: &str, image: &str) {
    add_native_app_with(sim, prefix, deployment_configuration, image, DEPDEF);
}

fn add_native_app_with(sim: &mut Sim, prefix: &str, deployment_configuration: &str, image: &str, depdef: &str) {
    for (path, content) in ecs_app(prefix, "web", "prod", "{{ image }}", 2, depdef) {
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
    sim.idle(prefix)
        && sim.store.app(&Sim::key(prefix)).unwrap().is_some_and(|a| a.last_deployment.is_some())
        && sim.last_deployment(prefix).commit == sim.head()
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
    let timeline: Vec<String> = sim.last_deployment("prod/web/web").timeline.into_iter().map(|e| e.message).collect();
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
    let timeline: Vec<String> = sim.last_deployment("prod/web/web").timeline.into_iter().map(|e| e.message).collect();
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
    let record = sim.last_deployment("prod/web/web");
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
    let record = sim.last_deployment("prod/web/web");
    assert!(matches!(record.cause, Some(FailureCause::StabilityTimeout { .. })), "{:?}", record.cause);
    assert_eq!(sim.world.mutations("StopServiceDeployment").len(), 1, "ECS's rollback, asked once");
    assert_eq!(sim.world.mutations("UpdateService").len(), 1, "no second update on top of ECS's deployment");
    assert!(record.evidence.iter().any(|e| e.contains("ROLLBACK_SUCCESSFUL")), "{:?}", record.evidence);
    assert!(sim.run_until(2 * MINUTES, |s| s.stable_on("web", "web:1")).await, "ECS put blue back");
}

const PAUSED_BLUE_GREEN: &str = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1,
    "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"], "timeoutConfiguration": {"timeoutInMinutes": 120}}]}"#;

/// Deploys nginx:1 with `config`, then pushes nginx:2 and runs until `until` holds.
async fn second_deployment(config: &str, depdef: &str, until: impl FnMut(&Sim) -> bool) -> Sim {
    let mut sim = Sim::new();
    add_native_app_with(&mut sim, "prod/web/web", config, "nginx:1", depdef);
    sim.commit();
    // the first deployment (the create) may itself wait at the gate: approve it
    for _ in 0..3 {
        if sim.run_until(10 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await {
            break;
        }
        answer(&sim, true, "setup");
    }
    assert!(sim.stable_on("web", "web:1"), "{}", sim.seed_note());
    sim.set_image("prod/web/web", "nginx:2");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, until).await, "{}", sim.seed_note());
    sim
}

fn answer(sim: &Sim, approve: bool, by: &str) {
    sim.answer_gate("prod/web/web", approve, by, AnswerChannel::Cli);
}

fn waiting(sim: &Sim) -> bool {
    sim.store.record(&Sim::key("prod/web/web")).unwrap().is_some_and(|r| r.awaiting_approval.is_some())
}

#[tokio::test(start_paused = true)]
async fn a_pause_hook_waits_for_approval_past_the_budget_and_goes_on_when_approved() {
    let mut sim = second_deployment(PAUSED_BLUE_GREEN, DEPDEF, waiting).await;
    let record = sim.store.record(&Sim::key("prod/web/web")).unwrap().unwrap();
    let gate = record.awaiting_approval.clone().unwrap();
    assert_eq!(gate.stage, "POST_TEST_TRAFFIC_SHIFT");
    assert!(record.timeline.iter().any(|e| e.message.starts_with("waiting for approval: ECS paused at POST_TEST_TRAFFIC_SHIFT")));
    // an hour at the gate: far past the 60 s budget, no stop and no rollback
    sim.run_until(60 * MINUTES, |_| false).await;
    assert!(waiting(&sim), "still waiting");
    assert!(sim.world.mutations("StopServiceDeployment").is_empty());
    answer(&sim, true, "alice");
    assert!(sim.run_until(10 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded), "{:?}", sim.history("prod/web/web"));
    assert!(sim.stable_on("web", "web:2"));
    let record = sim.last_deployment("prod/web/web");
    assert_eq!(record.approvals.len(), 1);
    assert_eq!((record.approvals[0].answer.approve, record.approvals[0].answer.by.as_str()), (true, "alice"));
    let continued = sim.world.mutations("ContinueServiceDeployment");
    assert!(continued.len() == 2 && continued.iter().all(|c| c.ends_with("CONTINUE")), "the create's gate, then this one: {continued:?}");
    assert!(record.timeline.iter().any(|e| e.message.starts_with("approved by alice via cli at POST_TEST_TRAFFIC_SHIFT")));
    assert!(sim.store.commands(&Sim::key("prod/web/web")).unwrap().approval.is_none(), "the answer was used up");
    sim.restart().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_gate_rolls_back_through_ecs() {
    let sim = second_deployment(PAUSED_BLUE_GREEN, DEPDEF, waiting).await;
    answer(&sim, false, "bob");
    assert!(sim.run_until(10 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::RolledBack));
    let record = sim.last_deployment("prod/web/web");
    assert_eq!(record.cause, Some(FailureCause::ApprovalRejected { by: "bob".into() }));
    assert!(sim.world.mutations("ContinueServiceDeployment").last().unwrap().ends_with("ROLLBACK"));
    assert!(sim.stable_on("web", "web:1"), "ECS put blue back");
    assert_eq!(sim.world.mutations("UpdateService").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restart_at_the_gate_keeps_waiting() {
    let mut sim = second_deployment(PAUSED_BLUE_GREEN, DEPDEF, waiting).await;
    sim.restart().await;
    sim.run_until(5 * MINUTES, |_| false).await;
    assert!(waiting(&sim), "the restarted controller still waits");
    answer(&sim, true, "carol");
    assert!(sim.run_until(10 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn a_failing_lambda_hook_ends_rolled_back_with_the_hooks_reason() {
    let config = r#"{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1, "lifecycleHooks": [
        {"targetType": "AWS_LAMBDA", "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:validate-green-fail",
         "roleArn": "arn:aws:iam::123456789012:role/hooks", "lifecycleStages": ["POST_SCALE_UP"]}]}"#;
    // the create runs the hook too: the first deployment fails the same way, which is the point
    let mut sim = Sim::new();
    add_native_app(&mut sim, "prod/web/web", config, "nginx:1");
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::RolledBack));
    let record = sim.last_deployment("prod/web/web");
    match &record.cause {
        Some(FailureCause::EcsRolledBack { reason, .. }) => {
            assert!(reason.contains("validate-green-fail returned FAILED at POST_SCALE_UP"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(record.evidence.iter().any(|e| e.contains("validate-green-fail FAILED")), "{:?}", record.evidence);
}

#[tokio::test(start_paused = true)]
async fn a_gitmoxi_alarm_during_a_native_canary_stops_it_with_ecs_rollback() {
    let canary =
        r#"{"strategy": "CANARY", "bakeTimeInMinutes": 5, "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 10}}"#;
    let depdef = r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 60}, "alarms": {"alarmNames": ["web-5xx"]}}"#;
    let sim = {
        let mut sim = Sim::new();
        sim.world.set_alarm("web-5xx", "OK");
        add_native_app_with(&mut sim, "prod/web/web", canary, "nginx:1", depdef);
        sim.commit();
        assert!(sim.run_until(30 * MINUTES, |s| s.idle("prod/web/web") && s.stable_on("web", "web:1")).await, "{}", sim.seed_note());
        sim.set_image("prod/web/web", "nginx:2");
        sim.commit();
        let at_canary =
            |s: &Sim| s.store.record(&Sim::key("prod/web/web")).unwrap().is_some_and(|r| r.traffic.is_some_and(|w| w.green == 10));
        assert!(sim.run_until(10 * MINUTES, at_canary).await, "{}", sim.seed_note());
        sim
    };
    sim.world.set_alarm("web-5xx", "ALARM");
    assert!(sim.run_until(5 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::RolledBack));
    let record = sim.last_deployment("prod/web/web");
    assert_eq!(record.cause, Some(FailureCause::AlarmFired { alarms: vec!["web-5xx".into()] }));
    assert_eq!(sim.world.mutations("StopServiceDeployment").len(), 1, "ECS's rollback");
    assert_eq!(sim.world.mutations("UpdateService").len(), 1, "no update on top of ECS's deployment");
    assert!(sim.stable_on("web", "web:1"));
}

#[tokio::test(start_paused = true)]
async fn a_newer_commit_during_a_native_deployment_stops_it_then_deploys_the_newest() {
    let config =
        r#"{"strategy": "LINEAR", "bakeTimeInMinutes": 1, "linearConfiguration": {"stepPercent": 20, "stepBakeTimeInMinutes": 2}}"#;
    let mut sim = second_deployment(config, DEPDEF, |s| {
        s.store.record(&Sim::key("prod/web/web")).unwrap().is_some_and(|r| r.traffic.is_some_and(|w| w.green >= 20))
    })
    .await;
    sim.set_image("prod/web/web", "nginx:3");
    sim.commit();
    assert!(sim.run_until(40 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded), "{:?}", sim.history("prod/web/web"));
    assert!(sim.stable_on("web", "web:3"));
    assert_eq!(sim.world.mutations("StopServiceDeployment").len(), 1, "the superseded deployment was stopped through ECS");
    let updates = sim.world.mutations("UpdateService");
    assert_eq!(updates.len(), 2, "web:2, then web:3 once ECS had rolled web:2 back: {updates:?}");
    let history = sim.history("prod/web/web");
    assert!(history.iter().any(|h| h.contains("asking ECS to roll its deployment back first")), "{history:?}");
}

#[tokio::test(start_paused = true)]
async fn an_answer_whose_call_failed_is_sent_again_not_lost() {
    let sim = second_deployment(PAUSED_BLUE_GREEN, DEPDEF, waiting).await;
    // the answer is recorded, then ContinueServiceDeployment is throttled: ECS still waits
    sim.world.throttle("ContinueServiceDeployment", 1);
    answer(&sim, true, "erin");
    assert!(sim.run_until(10 * MINUTES, |s| newest_done(s, "prod/web/web")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome("prod/web/web"), Some(Outcome::Succeeded), "{:?}", sim.history("prod/web/web"));
    assert!(sim.stable_on("web", "web:2"), "the answer reached ECS");
    let record = sim.last_deployment("prod/web/web");
    assert_eq!(record.approvals.len(), 1, "one answer, sent twice: {:?}", record.approvals);
    let waits = record.timeline.iter().filter(|e| e.message.starts_with("waiting for approval")).count();
    assert_eq!(waits, 1, "the gate was not asked again: {:?}", record.timeline);
    assert!(sim.world.calls("ContinueServiceDeployment") >= 3, "the create's answer, the throttled one, the one sent again");
}
