//! Simulation of ECS blue/green with task sets: the real controller against the fake world on a
//! paused clock — success with two target-group pairs, alarms, the breaker, Spot shortage with a
//! fallback task set, supersede during shifting, and restarts at every phase boundary combined with
//! responses lost after the change was applied.

use crate::sim::{Sim, MINUTES, REGION};
use gitmoxi_deploy::observed::ObservedTaskSet;
use gitmoxi_deploy::observed::TaskSetStatus;
use gitmoxi_deploy::record::BlueGreenPhase;
use gitmoxi_deploy::record::{FailureCause, Outcome, Phase};
use gitmoxi_testing::fake::Knobs;
use std::time::Duration;

const LB1: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/1";
const LB2: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/admin/2";
const TG_A: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-a/1";
const TG_B: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-b/2";
const TG_C: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/admin-c/3";
const TG_D: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/admin-d/4";
const LISTENER1: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/80";
const RULE1: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/1/80/7";
const LISTENER2: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/admin/2/8080";
const PREFIX: &str = "prod/web/web";

fn with_load_balancers(sim: &Sim) {
    sim.world.add_target_group(TG_A, Some(LB1));
    sim.world.add_target_group(TG_B, Some(LB1));
    sim.world.add_target_group(TG_C, Some(LB2));
    sim.world.add_target_group(TG_D, Some(LB2));
    sim.world.add_listener(LISTENER1, LB1, &[(TG_A, 100)]);
    sim.world.add_rule(RULE1, LB1, &[(TG_A, 100)]);
    sim.world.add_listener(LISTENER2, LB2, &[(TG_C, 100)]);
    sim.world.set_alarm("web-5xx", "OK");
}

/// A blue/green app: two load balancer entries (two pairs), `extra` depdef fields.
fn add_bg_app(sim: &mut Sim, image: &str, placement: &str, extra: &str) {
    let svc = format!(
        r#"{{"serviceName": "web", "cluster": "prod", "desiredCount": 4, "deploymentController": {{"type": "EXTERNAL"}},
  {placement},
  "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": ["subnet-1"], "securityGroups": ["sg-1"]}}}},
  "loadBalancers": [{{"targetGroupArn": "{TG_A}", "containerName": "web", "containerPort": 80}},
                    {{"targetGroupArn": "{TG_C}", "containerName": "web", "containerPort": 8080}}]}}"#
    );
    let depdef = format!(
        r#"{{"targetGroupArnPairs": [["{TG_A}", "{TG_B}"], ["{TG_C}", "{TG_D}"]], "alarms": {{"alarmNames": ["web-5xx"]}},
  "stabilityCheck": {{"pollInterval": 5, "timeout": 180}}, "gmDeploymentCircuitBreaker": {{"failureThreshold": 2}}{extra}}}"#
    );
    sim.tree.insert(&format!("{PREFIX}_svcdef.json"), &svc);
    sim.tree.insert(
        &format!("{PREFIX}_taskdef.json"),
        r#"{"family": "web", "networkMode": "awsvpc", "containerDefinitions": [{"name": "web", "image": "{{ image }}", "memory": 512}]}"#,
    );
    sim.tree.insert(&format!("{PREFIX}_depdef.json"), &depdef);
    sim.set_image(PREFIX, image);
}

const FARGATE: &str = r#""launchType": "FARGATE""#;
const LINEAR_50: &str = r#", "trafficShiftingConfig": {"type": "LINEAR", "percent": 50, "waitInterval": 30}"#;
const LINEAR_20: &str = r#", "trafficShiftingConfig": {"type": "LINEAR", "percent": 20, "waitInterval": 60}"#;

fn task_sets(sim: &Sim) -> Vec<ObservedTaskSet> {
    sim.world.task_sets(REGION, "prod", "web")
}

/// Exactly one task set, primary, running `revision`.
fn settled_on(sim: &Sim, revision: &str) -> bool {
    let sets = task_sets(sim);
    sim.idle(PREFIX) && sets.len() == 1 && sets[0].status == TaskSetStatus::Primary && sets[0].task_definition.ends_with(revision)
}

fn phase(sim: &Sim) -> Option<Phase> {
    sim.store.record(&Sim::key(PREFIX)).expect("store").map(|r| r.phase)
}

fn green_weights(sim: &Sim, arn: &str) -> Vec<u32> {
    sim.world
        .mutations(if arn == RULE1 { "ModifyRule" } else { "ModifyListener" })
        .iter()
        .filter(|m| m.starts_with(arn))
        .filter_map(|m| m.rsplit(' ').next().and_then(|w| w.split('/').nth(1)).and_then(|g| g.parse().ok()))
        .collect()
}

async fn first_deployment(sim: &mut Sim, extra: &str) {
    with_load_balancers(sim);
    add_bg_app(sim, "nginx:1", FARGATE, extra);
    sim.commit();
    assert!(sim.run_until(10 * MINUTES, |s| settled_on(s, "web:1")).await, "first deployment {}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    assert_eq!(task_sets(sim)[0].target_groups, vec![TG_A.to_string(), TG_C.to_string()]);
}

#[tokio::test(start_paused = true)]
async fn blue_green_shifts_every_pair_then_promotes_green_and_deletes_blue() {
    let mut sim = Sim::new();
    first_deployment(&mut sim, LINEAR_50).await;
    assert!(sim.world.mutations("ModifyListener").is_empty(), "a first deployment shifts nothing");

    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| settled_on(s, "web:2")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    let green = &task_sets(&sim)[0];
    assert_eq!(green.target_groups, vec![TG_B.to_string(), TG_D.to_string()], "green is the partner of each blue group");
    assert_eq!(green_weights(&sim, LISTENER1), vec![50, 100]);
    assert_eq!(green_weights(&sim, RULE1), vec![50, 100]);
    assert_eq!(green_weights(&sim, LISTENER2), vec![50, 100]);
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 0), (TG_B.to_string(), 100)]);
    assert_eq!(sim.world.forward_weights(LISTENER2), vec![(TG_C.to_string(), 0), (TG_D.to_string(), 100)]);
    let history = sim.history(PREFIX);
    for line in ["creating the green task set", "shifting 50 % to green", "100 % on green; baking", "is primary", "deleting the blue side"]
    {
        assert!(history.iter().any(|h| h.contains(line)), "{line}: {history:?}");
    }

    // the next deployment goes back to the first groups
    sim.set_image(PREFIX, "nginx:3");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| settled_on(s, "web:3")).await, "{}", sim.seed_note());
    assert_eq!(task_sets(&sim)[0].target_groups, vec![TG_A.to_string(), TG_C.to_string()]);
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)]);
    assert_eq!(sim.world.mutations("CreateTaskSet").len(), 3, "one task set per deployment");
}

/// Pause keeps the guards on: a paused 80/20 split holds its traffic while time passes, and a
/// firing alarm still rolls it back to 100/0 (it used to be ignored until resumed).
#[tokio::test(start_paused = true)]
async fn a_paused_split_holds_its_traffic_and_still_rolls_back_on_an_alarm() {
    let mut sim = Sim::new();
    first_deployment(&mut sim, LINEAR_20).await;
    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.world.forward_weights(LISTENER1).contains(&(TG_B.to_string(), 20))).await);
    let key = Sim::key(PREFIX);
    sim.store.submit_command(&key, &gitmoxi_deploy::commands::Command::Pause).unwrap();
    sim.run_until(10 * MINUTES, |_| false).await;
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 80), (TG_B.to_string(), 20)], "held at 80/20 while paused");
    assert!(sim.outcome(PREFIX) == Some(Outcome::Succeeded), "the first deployment's outcome; the second is still in flight");
    assert!(!sim.idle(PREFIX));

    sim.world.set_alarm("web-5xx", "ALARM");
    assert!(sim.run_until(2 * MINUTES, |s| s.idle(PREFIX)).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)], "rolled back while paused");
    let app = sim.store.app(&key).unwrap().unwrap();
    assert_eq!(app.last_cause, Some(FailureCause::AlarmFired { alarms: vec!["web-5xx".into()] }));
}

async fn alarm_in_step_two(keep_green: bool) -> Sim {
    let mut sim = Sim::new();
    let extra = if keep_green { format!("{LINEAR_20}, \"deleteNewUponTrafficShiftFailure\": false") } else { LINEAR_20.to_string() };
    first_deployment(&mut sim, &extra).await;
    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    // step 2 is in effect once the forwards send 40 % to green
    assert!(sim.run_until(20 * MINUTES, |s| s.world.forward_weights(LISTENER1).contains(&(TG_B.to_string(), 40))).await);
    gitmoxi::http::views::refresh_gauges(&sim.controller).unwrap();
    let metrics = sim.controller.metrics.render();
    assert!(metrics.contains(r#"gitmoxi_traffic_weight{app="prod/web/web",side="green"} 40"#), "{metrics}");
    assert!(metrics.contains(r#"gitmoxi_apps{kind="ecs",status="Deploying"} 1"#), "{metrics}");
    sim.world.set_alarm("web-5xx", "ALARM");
    assert!(sim.run_until(10 * MINUTES, |s| s.idle(PREFIX)).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)]);
    assert_eq!(sim.world.forward_weights(RULE1), vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)]);
    assert_eq!(sim.world.forward_weights(LISTENER2), vec![(TG_C.to_string(), 100), (TG_D.to_string(), 0)]);
    assert_eq!(green_weights(&sim, LISTENER1), vec![20, 40, 0], "back to 100/0 after the alarm at step 2");
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    let record = sim.store.deployment(app.last_deployment.as_deref().unwrap()).unwrap().unwrap();
    assert_eq!(record.cause, Some(FailureCause::AlarmFired { alarms: vec!["web-5xx".into()] }));
    gitmoxi::http::views::refresh_gauges(&sim.controller).unwrap();
    let metrics = sim.controller.metrics.render();
    for series in [
        r#"gitmoxi_deployments_total{kind="ecs",outcome="rolled_back",strategy="blue_green"} 1"#,
        r#"gitmoxi_deployments_total{kind="ecs",outcome="succeeded",strategy="blue_green"} 1"#,
        r#"gitmoxi_rollbacks_total{cause="alarm_fired"} 1"#,
        r#"gitmoxi_deployment_duration_seconds_count{kind="ecs",outcome="rolled_back"} 1"#,
        r#"gitmoxi_apps{kind="ecs",status="RolledBack"} 1"#,
        "gitmoxi_reconcile_duration_seconds_count",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    assert!(!metrics.contains("arn:aws"), "no ARN in any label");
    assert!(!metrics.contains("gitmoxi_traffic_weight{"), "no traffic series once nothing is in flight");
    sim
}

#[tokio::test(start_paused = true)]
async fn an_alarm_during_step_two_puts_all_traffic_back_on_blue_and_deletes_green() {
    let sim = alarm_in_step_two(false).await;
    let sets = task_sets(&sim);
    assert_eq!(sets.len(), 1, "green deleted: {sets:?}");
    assert!(sets[0].task_definition.ends_with("web:1") && sets[0].status == TaskSetStatus::Primary);
    // the failed fingerprint is not retried on its own
    sim.run_until(30 * MINUTES, |_| false).await;
    assert_eq!(sim.world.mutations("CreateTaskSet").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_alarm_keeps_green_without_traffic_when_configured() {
    let sim = alarm_in_step_two(true).await;
    let sets = task_sets(&sim);
    assert_eq!(sets.len(), 2, "green kept for debugging: {sets:?}");
    let green = sets.iter().find(|s| s.task_definition.ends_with("web:2")).unwrap();
    assert_eq!(green.status, TaskSetStatus::Active);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_trips_in_stabilize_and_traffic_never_moves() {
    let mut sim = Sim::new();
    first_deployment(&mut sim, LINEAR_50).await;
    sim.set_image(PREFIX, "nginx:fail");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.idle(PREFIX) && s.outcome(PREFIX) == Some(Outcome::RolledBack)).await);
    assert!(sim.world.mutations("ModifyListener").is_empty() && sim.world.mutations("ModifyRule").is_empty());
    assert!(settled_on(&sim, "web:1"));
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("circuit breaker tripped"), "{:?}", app.last_cause);
    let record = sim.store.deployment(app.last_deployment.as_deref().unwrap()).unwrap().unwrap();
    assert!(record.evidence.iter().any(|e| e.contains("CannotPullContainerError")), "{:?}", record.evidence);
}

#[tokio::test(start_paused = true)]
async fn unhealthy_targets_time_out_and_roll_back() {
    let mut sim = Sim::new();
    first_deployment(&mut sim, LINEAR_50).await;
    sim.set_image(PREFIX, "nginx:unhealthy");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.idle(PREFIX) && s.outcome(PREFIX) != Some(Outcome::Succeeded)).await);
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("stability timeout"), "{:?}", app.last_cause);
    assert!(settled_on(&sim, "web:1"));
}

#[tokio::test(start_paused = true)]
async fn a_spot_shortage_is_covered_by_a_fallback_task_set_and_the_pair_is_cleaned_up_as_one_side() {
    let mut sim = Sim::new();
    sim.world.set_knobs(Knobs { spot_capacity: Some(1), ..Knobs::default() });
    with_load_balancers(&sim);
    let spot = r#""capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]"#;
    let fallback = r#", "fallbackCapacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]"#;
    add_bg_app(&mut sim, "nginx:1", spot, fallback);
    sim.commit();
    assert!(sim.run_until(15 * MINUTES, |s| s.idle(PREFIX) && s.outcome(PREFIX).is_some()).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded), "{:?}", sim.history(PREFIX));
    let sets = task_sets(&sim);
    assert_eq!(sets.len(), 2, "{sets:?}");
    let primary = sets.iter().find(|s| s.status == TaskSetStatus::Primary).unwrap();
    let fallback_set = sets.iter().find(|s| s.status != TaskSetStatus::Primary).unwrap();
    assert_eq!(primary.capacity_providers, vec!["FARGATE_SPOT".to_string()]);
    assert_eq!(fallback_set.capacity_providers, vec!["FARGATE".to_string()]);
    assert_eq!((primary.scale_percent, fallback_set.scale_percent), (25.0, 75.0));
    assert_eq!(primary.running_count + fallback_set.running_count, 4);
    assert_eq!(fallback_set.target_groups, primary.target_groups, "same target groups");
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    let record = sim.store.deployment(app.last_deployment.as_deref().unwrap()).unwrap().unwrap();
    let scales = record.task_set_scales.expect("scales kept for rebalancing");
    assert_eq!((scales.primary_percent, scales.fallback_percent), (25.0, 75.0));

    // gmctl's taskset API: the live pair and its scales; a rebalance moves everything to Spot
    let (api, stop) = serve_api(&sim).await;
    let answer: serde_json::Value =
        reqwest::get(format!("{api}/api/v1/taskset?taskset_arn={}", primary.arn)).await.unwrap().json().await.unwrap();
    assert_eq!(answer["tasksets"][0]["fallback_taskset_arn"].as_str(), Some(fallback_set.arn.as_str()), "{answer}");
    assert_eq!(
        (answer["tasksets"][0]["primary_scale"].as_f64(), answer["tasksets"][0]["fallback_scale"].as_f64()),
        (Some(25.0), Some(75.0))
    );
    sim.world.set_knobs(Knobs::default());
    let service_arn = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";
    let rebalance = |body: serde_json::Value| {
        let api = api.clone();
        async move {
            let r = reqwest::Client::new().post(format!("{api}/api/v1/taskset/rebalance")).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    // gmctl's flags as it sends them: everything to the fallback (on-demand) first
    let (status, answer) =
        rebalance(serde_json::json!({"service_arn": service_arn, "shift_all": true, "revert": false, "override": false})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tasksets"][0]["taskset_arn"].as_str(), Some(primary.arn.as_str()), "{answer}");
    assert_eq!(answer["tasksets"][0]["fallback_taskset_arn"].as_str(), Some(fallback_set.arn.as_str()), "{answer}");
    // gmctl's --override replaces one that may still wait
    let (status, _) = rebalance(serde_json::json!({"service_arn": service_arn, "shift_all": true, "override": true})).await;
    assert_eq!(status, 200);
    assert!(
        sim.run_until(5 * MINUTES, |s| {
            let sets = task_sets(s);
            sets.iter().any(|t| t.status == TaskSetStatus::Primary && t.scale_percent == 0.0)
                && sets.iter().any(|t| t.status != TaskSetStatus::Primary && t.scale_percent == 100.0 && t.running_count == 4)
                && s.history(PREFIX).iter().any(|h| h.contains("rebalanced by an operator: 0 % primary, 100 % fallback"))
        })
        .await,
        "{:?}",
        task_sets(&sim)
    );
    // Spot is back: revert moves it all back to the primary
    let (status, answer) =
        rebalance(serde_json::json!({"service_arn": service_arn, "revert": true, "shift_all": false, "override": false})).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        sim.run_until(5 * MINUTES, |s| {
            let sets = task_sets(s);
            sets.iter().any(|t| t.status == TaskSetStatus::Primary && t.scale_percent == 100.0 && t.running_count == 4)
                && sets.iter().any(|t| t.status != TaskSetStatus::Primary && t.scale_percent == 0.0)
        })
        .await,
        "{:?}",
        task_sets(&sim)
    );
    assert!(sim.history(PREFIX).iter().any(|h| h.contains("rebalanced by an operator: 100 % primary, 0 % fallback")));
    let (status, answer) =
        rebalance(serde_json::json!({"service_arn": service_arn, "scales": {"primary_scale": 70, "fallback_scale": 20}})).await;
    assert_eq!(status, 400, "scales must sum to 100: {answer}");
    let (status, answer) = rebalance(serde_json::json!({"service_arn": service_arn, "override": 70})).await;
    assert_eq!(status, 400, "override is a flag: {answer}");
    stop.cancel();

    // Spot is back: the next deployment needs no fallback, and both blue task sets go
    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    assert!(sim.run_until(15 * MINUTES, |s| settled_on(s, "web:2")).await, "{:?}", task_sets(&sim));

    // gmctl taskset get tells the truth about the deleted pair: it no longer runs, and why
    let (api, stop) = serve_api(&sim).await;
    let gone = reqwest::get(format!("{api}/api/v1/taskset?taskset_arn={}", primary.arn)).await.unwrap();
    assert_eq!(gone.status().as_u16(), 404);
    let answer: serde_json::Value = gone.json().await.unwrap();
    let why = answer["error"].as_str().unwrap_or_default();
    assert!(why.contains("no longer runs") && why.contains("replaced by deployment"), "{answer}");
    let live: serde_json::Value = reqwest::get(format!("{api}/api/v1/taskset")).await.unwrap().json().await.unwrap();
    let live = live["tasksets"].as_array().expect("a list").clone();
    assert!(live.iter().all(|t| t["taskset_arn"] != primary.arn.as_str()), "{live:?}");
    assert!(task_sets(&sim).iter().all(|t| t.arn != primary.arn), "AWS agrees: the old primary is deleted");
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_newer_commit_during_shifting_rolls_back_first_then_deploys_the_newest() {
    let mut sim = Sim::new();
    first_deployment(&mut sim, LINEAR_20).await;
    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.world.forward_weights(LISTENER1).contains(&(TG_B.to_string(), 40))).await);
    assert!(matches!(phase(&sim), Some(Phase::BlueGreen(BlueGreenPhase::Shift { step: 1, .. }))));
    sim.set_image(PREFIX, "nginx:3");
    sim.commit();
    assert!(sim.run_until(30 * MINUTES, |s| settled_on(s, "web:3")).await, "{:?}", task_sets(&sim));
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    let weights = green_weights(&sim, LISTENER1);
    let back = weights.iter().position(|w| *w == 0).expect("traffic went back to blue");
    assert_eq!(&weights[..back], &[20, 40], "{weights:?}");
    assert_eq!(&weights[back + 1..], &[20, 40, 60, 80, 100], "then the newest shifts from the start: {weights:?}");
    let history = sim.history(PREFIX);
    assert!(history.iter().any(|h| h.contains("superseded by commit")), "{history:?}");
    assert_eq!(sim.world.revisions(REGION, "web"), 3);
}

#[tokio::test(start_paused = true)]
async fn restarts_at_every_phase_boundary_and_lost_responses_end_with_one_green_and_no_orphans() {
    let mut sim = Sim::new();
    with_load_balancers(&sim);
    add_bg_app(&mut sim, "nginx:1", FARGATE, LINEAR_50);
    for op in ["RegisterTaskDefinition", "CreateService", "CreateTaskSet", "UpdateServicePrimaryTaskSet"] {
        sim.world.lose_response(op, 1);
    }
    sim.commit();
    let mut restarts = sim.restart_at_boundaries_until(PREFIX, 30 * MINUTES, |s| settled_on(s, "web:1")).await;
    assert!(settled_on(&sim, "web:1"), "first deployment {:?} {}", task_sets(&sim), sim.seed_note());

    for op in ["RegisterTaskDefinition", "CreateTaskSet", "ModifyListener", "ModifyRule", "UpdateServicePrimaryTaskSet", "DeleteTaskSet"] {
        sim.world.lose_response(op, 1);
    }
    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    restarts += sim.restart_at_boundaries_until(PREFIX, 30 * MINUTES, |s| settled_on(s, "web:2")).await;
    assert!(settled_on(&sim, "web:2"), "{:?} {}", task_sets(&sim), sim.seed_note());
    assert!(restarts >= 12, "restarts at phase boundaries and after mutations: {restarts}");
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    assert_eq!(sim.world.mutations("CreateTaskSet").len(), 2, "exactly one green task set per deployment");
    assert_eq!(sim.world.mutations("CreateService").len(), 1);
    assert_eq!(sim.world.revisions(REGION, "web"), 2, "one registration per deployment");
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 0), (TG_B.to_string(), 100)]);
    assert_eq!(sim.world.forward_weights(LISTENER2), vec![(TG_C.to_string(), 0), (TG_D.to_string(), 100)]);
    let weights = green_weights(&sim, LISTENER1);
    assert!(weights.windows(2).all(|w| w[0] <= w[1]), "traffic only moved forward: {weights:?}");
}

/// Rebuilds the controller from the store before every single reconcile pass, so it is aborted
/// at every phase boundary and after every AWS call; returns the passes it took.
async fn drive_pass_by_pass(sim: &mut Sim, done: impl Fn(&Sim) -> bool) -> usize {
    if let Some(task) = sim.task.take() {
        task.abort();
        let _ = task.await;
    }
    let key = Sim::key(PREFIX);
    for pass in 0..2_000 {
        if done(sim) {
            return pass;
        }
        sim.seed += 1;
        sim.controller = Sim::build(&sim.world, &sim.store, &sim.clock, sim.seed);
        sim.apply();
        let wait = match sim.controller.reconcile(&key).await {
            Ok(after) => after.clamp(Duration::from_millis(1), Duration::from_secs(60)),
            Err(_) => Duration::from_secs(1),
        };
        tokio::time::sleep(wait).await;
    }
    panic!("did not converge in 2,000 passes: {:?} {:?}", phase(sim), task_sets(sim));
}

#[tokio::test(start_paused = true)]
async fn a_controller_rebuilt_before_every_pass_with_every_answer_lost_once_converges_with_one_green() {
    let mut sim = Sim::new();
    with_load_balancers(&sim);
    add_bg_app(&mut sim, "nginx:1", FARGATE, LINEAR_50);
    let mutations = [
        "RegisterTaskDefinition",
        "CreateService",
        "CreateTaskSet",
        "UpdateServicePrimaryTaskSet",
        "ModifyListener",
        "ModifyRule",
        "DeleteTaskSet",
    ];
    for op in mutations {
        sim.world.lose_response(op, 1);
    }
    sim.commits += 1;
    let first = drive_pass_by_pass(&mut sim, |s| settled_on(s, "web:1")).await;
    for op in mutations {
        sim.world.lose_response(op, 1);
    }
    sim.set_image(PREFIX, "nginx:2");
    sim.commits += 1;
    let second = drive_pass_by_pass(&mut sim, |s| settled_on(s, "web:2")).await;
    assert!(first + second > 20, "{first} + {second} passes");
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    assert_eq!(sim.world.mutations("CreateTaskSet").len(), 2, "exactly one green task set per deployment");
    assert_eq!(sim.world.mutations("CreateService").len(), 1);
    assert_eq!(sim.world.revisions(REGION, "web"), 2);
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 0), (TG_B.to_string(), 100)]);
    assert_eq!(sim.world.forward_weights(RULE1), vec![(TG_A.to_string(), 0), (TG_B.to_string(), 100)]);
    let history = sim.history(PREFIX);
    assert!(history.iter().filter(|h| h.starts_with("deployment started")).count() == 2, "{history:?}");
}

fn command(sim: &Sim, command: gitmoxi_deploy::commands::Command) {
    let key = Sim::key(PREFIX);
    sim.store.submit_command(&key, &command).unwrap();
    sim.controller.queue.add(key);
}

#[tokio::test(start_paused = true)]
async fn pause_holds_the_traffic_split_resume_goes_on_and_an_operator_rollback_puts_blue_back() {
    let mut sim = Sim::new();
    first_deployment(&mut sim, LINEAR_20).await;
    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| s.world.forward_weights(LISTENER1).contains(&(TG_B.to_string(), 20))).await);
    command(&sim, gitmoxi_deploy::commands::Command::Pause);
    sim.run_until(10 * MINUTES, |_| false).await;
    assert!(sim.world.forward_weights(LISTENER1).contains(&(TG_B.to_string(), 20)), "paused: no further shift in 10 minutes");
    command(&sim, gitmoxi_deploy::commands::Command::Resume);
    assert!(sim.run_until(5 * MINUTES, |s| s.world.forward_weights(LISTENER1).contains(&(TG_B.to_string(), 60))).await, "resumed");
    command(&sim, gitmoxi_deploy::commands::Command::Rollback);
    assert!(sim.run_until(5 * MINUTES, |s| s.idle(PREFIX)).await);
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)]);
    assert!(settled_on(&sim, "web:1"), "{:?}", task_sets(&sim));
    let app = sim.store.app(&Sim::key(PREFIX)).unwrap().unwrap();
    assert!(app.last_cause.as_ref().unwrap().to_string().contains("rollback requested by an operator"), "{:?}", app.last_cause);
    assert!(!sim.store.commands(&Sim::key(PREFIX)).unwrap().rollback, "the command is consumed");
    // a rollback with nothing in flight says so instead of doing anything
    command(&sim, gitmoxi_deploy::commands::Command::Rollback);
    sim.run_until(MINUTES, |_| false).await;
    assert!(sim.history(PREFIX).iter().any(|h| h.contains("no deployment is in flight")), "{:?}", sim.history(PREFIX));
}

/// The HTTP API over the simulation's controller (no repositories).
async fn serve_api(sim: &Sim) -> (String, tokio_util::sync::CancellationToken) {
    serve_api_with_slack(sim, None).await
}

/// The HTTP API with Slack's interactive callback configured.
async fn serve_api_with_slack(
    sim: &Sim,
    slack: Option<gitmoxi::http::slack::SlackInteractive>,
) -> (String, tokio_util::sync::CancellationToken) {
    use gitmoxi::http::{router, webhooks::Webhooks, HttpState};
    let stop = tokio_util::sync::CancellationToken::new();
    let dir = tempfile::tempdir().unwrap().keep();
    let repos =
        gitmoxi::repos::Repos::new(sim.controller.clone(), dir.clone(), Duration::from_secs(3600), stop.clone(), Default::default());
    let webhooks = std::sync::Arc::new(Webhooks { github_secret: None, gitlab_token: None, slack });
    let app = router(HttpState {
        controller: sim.controller.clone(),
        access: Default::default(),
        webhooks,
        repos,
        state_dir: dir,
        llm: None,
        allowed_hosts: Default::default(),
        gmctl_tokenless_networks: Default::default(),
        public_url: None,
        ui: gitmoxi::http::ui::shared(),
        pipelines: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await }).await;
    });
    (url, stop)
}

// --- approval gates (trafficShiftingConfig.approval) ---------------------------------------------

const GATED: &str = r#", "trafficShiftingConfig": {"type": "LINEAR", "percent": 50, "waitInterval": 30,
  "approval": {"before": [50, 100], "timeout": "1h"}}"#;

fn answer(sim: &Sim, approve: bool, by: &str) {
    sim.answer_gate(PREFIX, approve, by, gitmoxi_deploy::commands::AnswerChannel::Cli);
}

fn gate(sim: &Sim) -> Option<String> {
    sim.store.record(&Sim::key(PREFIX)).unwrap().and_then(|r| r.awaiting_approval).map(|a| a.gate)
}

/// nginx:1 deployed, nginx:2 pushed and held at its first gate.
async fn at_first_gate(extra: &str) -> Sim {
    let mut sim = Sim::new();
    first_deployment(&mut sim, extra).await;
    sim.set_image(PREFIX, "nginx:2");
    sim.commit();
    assert!(sim.run_until(20 * MINUTES, |s| gate(s).as_deref() == Some("before 50 %")).await, "{}", sim.seed_note());
    sim
}

#[tokio::test(start_paused = true)]
async fn a_gate_holds_traffic_until_approved_at_each_step() {
    let sim = at_first_gate(GATED).await;
    sim.run_until(30 * MINUTES, |_| false).await;
    assert_eq!(gate(&sim).as_deref(), Some("before 50 %"), "still waiting after half an hour");
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100)], "no traffic moved");
    answer(&sim, true, "alice");
    assert!(sim.run_until(10 * MINUTES, |s| gate(s).as_deref() == Some("before 100 %")).await, "{}", sim.seed_note());
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 50), (TG_B.to_string(), 50)], "held at 50/50");
    answer(&sim, true, "bob");
    assert!(sim.run_until(10 * MINUTES, |s| settled_on(s, "web:2")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    let record = sim.last_deployment(PREFIX);
    let answers: Vec<(String, String)> = record.approvals.iter().map(|a| (a.gate.clone(), a.answer.by.clone())).collect();
    assert_eq!(answers, vec![("before 50 %".to_string(), "alice".to_string()), ("before 100 %".to_string(), "bob".to_string())]);
    assert!(record.timeline.iter().any(|e| e.message.starts_with("approved by alice via cli before 50 %")), "{:?}", record.timeline);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_gate_rolls_traffic_back() {
    let sim = at_first_gate(GATED).await;
    answer(&sim, true, "alice");
    assert!(sim.run_until(10 * MINUTES, |s| gate(s).as_deref() == Some("before 100 %")).await);
    answer(&sim, false, "bob");
    assert!(sim.run_until(10 * MINUTES, |s| settled_on(s, "web:1")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    assert_eq!(sim.last_deployment(PREFIX).cause, Some(FailureCause::ApprovalRejected { by: "bob".into() }));
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)]);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_gate_rolls_back_or_goes_on_as_its_on_timeout_says() {
    let sim = at_first_gate(GATED).await;
    assert!(sim.run_until(70 * MINUTES, |s| settled_on(s, "web:1")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    assert!(
        matches!(sim.last_deployment(PREFIX).cause, Some(FailureCause::ApprovalTimedOut { ref gate, waited_secs }) if gate == "before 50 %" && waited_secs >= 3600)
    );

    let going_on = r#", "trafficShiftingConfig": {"type": "LINEAR", "percent": 50, "waitInterval": 30,
      "approval": {"before": [50], "timeout": 600, "onTimeout": "continue"}}"#;
    let sim = at_first_gate(going_on).await;
    assert!(sim.run_until(30 * MINUTES, |s| settled_on(s, "web:2")).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::Succeeded));
    let record = sim.last_deployment(PREFIX);
    assert_eq!(record.approvals.len(), 1);
    assert_eq!(record.approvals[0].answer.via, gitmoxi_deploy::commands::AnswerChannel::Timeout);
}

#[tokio::test(start_paused = true)]
async fn an_alarm_while_waiting_at_a_gate_still_rolls_back() {
    let sim = at_first_gate(GATED).await;
    answer(&sim, true, "alice");
    assert!(sim.run_until(10 * MINUTES, |s| gate(s).as_deref() == Some("before 100 %")).await);
    sim.world.set_alarm("web-5xx", "ALARM");
    assert!(sim.run_until(5 * MINUTES, |s| s.idle(PREFIX)).await, "{}", sim.seed_note());
    assert_eq!(sim.outcome(PREFIX), Some(Outcome::RolledBack));
    assert_eq!(sim.last_deployment(PREFIX).cause, Some(FailureCause::AlarmFired { alarms: vec!["web-5xx".into()] }));
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)]);
}

#[tokio::test(start_paused = true)]
async fn a_restart_at_a_gate_keeps_waiting() {
    let mut sim = at_first_gate(GATED).await;
    sim.restart().await;
    sim.run_until(5 * MINUTES, |_| false).await;
    assert_eq!(gate(&sim).as_deref(), Some("before 50 %"), "the restarted controller waits at the same gate");
    assert_eq!(sim.world.forward_weights(LISTENER1), vec![(TG_A.to_string(), 100)]);
    answer(&sim, true, "carol");
    assert!(sim.run_until(10 * MINUTES, |s| gate(s).as_deref() == Some("before 100 %")).await, "{}", sim.seed_note());
}

// --- Slack's buttons ---------------------------------------------------------------------------

const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A local stand-in for Slack's response_url: what was posted to it.
async fn response_url_stub() -> (String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/actions/{*rest}",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/actions/T1/1/abc", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// Slack's request for a click on `action` by `user`, signed at `ts` with `secret`.
fn slack_click(action: &str, user: &str, gate: &serde_json::Value, response_url: &str, ts: u64, secret: &str) -> (String, String, String) {
    use hmac::Mac;
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": user, "username": format!("user-{user}")},
        "response_url": response_url,
        "actions": [{"action_id": action, "value": gate.to_string()}],
    });
    let encoded: String = payload
        .to_string()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    let body = format!("payload={encoded}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    (body, ts.to_string(), format!("v0={}", hex::encode(mac.finalize().into_bytes())))
}

#[tokio::test(start_paused = true)]
async fn a_gate_is_answered_from_slack_only_by_a_signed_fresh_request_of_an_allowed_user() {
    let sim = at_first_gate(GATED).await;
    let (response_url, seen) = response_url_stub().await;
    let slack = gitmoxi::http::slack::SlackInteractive {
        signing_secret: SLACK_SECRET.into(),
        approvers: vec!["U-ALLOWED".into()],
        response_hosts: vec!["127.0.0.1".into()],
    };
    let (api, stop) = serve_api_with_slack(&sim, Some(slack)).await;
    let record = sim.store.record(&Sim::key(PREFIX)).unwrap().unwrap();
    let button = serde_json::json!({"repo": "deploys", "branch": "main", "app": PREFIX, "deployment": record.id, "gate": "before 50 %"});
    // the gate's Slack message carries the buttons, with this gate in their value
    let event = gitmoxi::notify::Event::of_record(&record, "waiting_for_approval", "waiting".into());
    let message = gitmoxi::notify::slack_message(&event, true).to_string();
    assert!(message.contains("gitmoxi_approve") && message.contains("gitmoxi_reject") && message.contains("before 50 %"), "{message}");
    let now = sim.clock.now_ms() / 1000;
    let client = reqwest::Client::new();
    let post = |(body, ts, sig): (String, String, String)| {
        client
            .post(format!("{api}/webhooks/slack/interactive"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
    };
    // refused: another secret, an old timestamp
    let forged = post(slack_click("gitmoxi_approve", "U-ALLOWED", &button, &response_url, now, "not-the-secret")).await.unwrap();
    assert_eq!(forged.status(), 401);
    let replayed = post(slack_click("gitmoxi_approve", "U-ALLOWED", &button, &response_url, now - 600, SLACK_SECRET)).await.unwrap();
    assert_eq!(replayed.status(), 401);
    // a user not among the approvers is told so, and nothing changes
    let stranger = post(slack_click("gitmoxi_approve", "U-STRANGER", &button, &response_url, now, SLACK_SECRET)).await.unwrap();
    assert_eq!(stranger.status(), 200);
    assert!(sim.store.commands(&Sim::key(PREFIX)).unwrap().approval.is_none(), "a stranger answers nothing");
    // the approver's click is the answer
    let ok = post(slack_click("gitmoxi_approve", "U-ALLOWED", &button, &response_url, now, SLACK_SECRET)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(sim.run_until(10 * MINUTES, |s| gate(s).as_deref() == Some("before 100 %")).await, "{}", sim.seed_note());
    let record = sim.store.record(&Sim::key(PREFIX)).unwrap().unwrap();
    let given = &record.approvals[0];
    assert_eq!((given.gate.as_str(), given.answer.via), ("before 50 %", gitmoxi_deploy::commands::AnswerChannel::Slack));
    assert_eq!(given.answer.by, "user-U-ALLOWED (U-ALLOWED)");
    // a second click on the old message finds the gate gone
    let late = post(slack_click("gitmoxi_reject", "U-ALLOWED", &button, &response_url, now, SLACK_SECRET)).await.unwrap();
    assert_eq!(late.status(), 200);
    assert!(sim.store.commands(&Sim::key(PREFIX)).unwrap().approval.is_none(), "a stale click answers nothing");
    // Slack's message was updated through its response_url
    for _ in 0..50 {
        if seen.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let texts: Vec<String> = seen.lock().unwrap().iter().map(|b| b["text"].as_str().unwrap_or_default().to_string()).collect();
    assert!(texts.iter().any(|t| t.contains("may not answer")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("approved by user-U-ALLOWED (U-ALLOWED) via slack")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("no longer waits")), "{texts:?}");
    stop.cancel();
}
