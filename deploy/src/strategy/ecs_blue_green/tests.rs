//! Blue/green planner scenarios: `step` called repeatedly on an evolving observed state, asserting
//! the exact actions of each phase.

use super::*;
use crate::observed::{ForwardKind, ObservedAlarm, ObservedElb, ObservedForward, ObservedTask, ObservedTaskSet};
use crate::plan::Completion;
use crate::record::BlueGreenPhase;
use crate::record::{AppKey, AppliedState};
use crate::spec::{load_snapshot, DesiredApp, MemTree, RenderContext};
use crate::strategy::{self, Desired};

const TG_A: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-a/1";
const TG_B: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-b/2";
const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/lb/1/80";
const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/443/9";
const TD1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1";
const TD2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2";
const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/prod/web";

fn depdef(extra: &str) -> String {
    format!(
        r#"{{"targetGroupArnPairs": [["{TG_A}", "{TG_B}"]], "alarms": {{"alarmNames": ["web-5xx"]}},
            "stabilityCheck": {{"pollInterval": 5, "timeout": 100}}, "gmDeploymentCircuitBreaker": {{"failureThreshold": 2}}{extra}}}"#
    )
}

fn app_with(image: &str, depdef: &str) -> DesiredApp {
    let svc = format!(
        r#"{{"serviceName": "web", "cluster": "prod", "desiredCount": 4, "deploymentController": {{"type": "EXTERNAL"}},
            "launchType": "FARGATE",
            "networkConfiguration": {{"awsvpcConfiguration": {{"subnets": ["subnet-1"]}}}},
            "loadBalancers": [{{"targetGroupArn": "{TG_A}", "containerName": "web", "containerPort": 80}}]}}"#
    );
    let tree = MemTree::new()
        .with("svc/web_svcdef.json", &svc)
        .with(
            "svc/web_taskdef.json",
            &format!(r#"{{"family": "web", "containerDefinitions": [{{"name": "web", "image": "{image}", "memory": 128}}]}}"#),
        )
        .with("svc/web_depdef.json", depdef);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    snap.apps["svc/web"].clone().expect("valid")
}

fn app(image: &str) -> DesiredApp {
    app_with(image, &depdef(r#", "trafficShiftingConfig": {"type": "LINEAR", "percent": 30, "waitInterval": 10}"#))
}

fn key() -> AppKey {
    AppKey { repo: "repo".into(), branch: "main".into(), prefix: "svc/web".into() }
}

fn run(desired: &DesiredApp, applied: &AppliedState, record: Option<&DeploymentRecord>, observed: &Observed, now: u64) -> Plan {
    run_with(Desired::Present(desired), applied, record, observed, now, "c0ffee")
}

fn run_with(
    desired: Desired<'_>,
    applied: &AppliedState,
    record: Option<&DeploymentRecord>,
    observed: &Observed,
    now: u64,
    commit: &str,
) -> Plan {
    let key = key();
    strategy::step(&StepInput { commit, ..input_with(desired, record, observed, applied, &key, now) })
}

fn service(desired: u32) -> ObservedService {
    ObservedService {
        arn: SERVICE_ARN.into(),
        status: "ACTIVE".into(),
        desired_count: desired,
        deployment_controller: Some("EXTERNAL".into()),
        ..Default::default()
    }
}

fn task_set(id: &str, external: &str, status: &str, td: &str, tg: &str) -> ObservedTaskSet {
    ObservedTaskSet {
        id: format!("ecs-svc/{id}"),
        arn: format!("arn:aws:ecs:us-east-1:123456789012:task-set/prod/web/ecs-svc/{id}"),
        status: status.into(),
        external_id: external.into(),
        task_definition: td.into(),
        scale_percent: 100.0,
        target_groups: vec![tg.into()],
        ..Default::default()
    }
}

fn blue() -> ObservedTaskSet {
    task_set("111", "gitmoxi:dep-1:green", "PRIMARY", TD1, TG_A)
}

fn green() -> ObservedTaskSet {
    task_set("222", "gitmoxi:dep-2:green", "ACTIVE", TD2, TG_B)
}

fn tasks_of(set: &str, status: &str, n: usize, reason: Option<&str>) -> Vec<ObservedTask> {
    (0..n)
        .map(|i| ObservedTask {
            arn: format!("arn:aws:ecs:us-east-1:1:task/prod/{set}-{status}-{i}"),
            task_definition: TD2.into(),
            last_status: status.into(),
            desired_status: if status == "STOPPED" { "STOPPED".into() } else { "RUNNING".into() },
            started_by: Some(format!("ecs-svc/{set}")),
            stopped_reason: reason.map(Into::into),
            ..Default::default()
        })
        .collect()
}

fn forwards(a: u32, b: u32) -> ObservedElb {
    ObservedElb {
        missing_target_groups: vec![],
        forwards: vec![
            ObservedForward { kind: ForwardKind::ListenerDefault, arn: LISTENER.into(), targets: vec![(TG_A.into(), a), (TG_B.into(), b)] },
            ObservedForward { kind: ForwardKind::Rule, arn: RULE.into(), targets: vec![(TG_A.into(), a), (TG_B.into(), b)] },
        ],
        healthy_targets: [(TG_A.to_string(), 4), (TG_B.to_string(), 4)].into_iter().collect(),
    }
}

fn alarm(state: &str) -> Vec<ObservedAlarm> {
    vec![ObservedAlarm { name: "web-5xx".into(), state: Some(state.into()) }]
}

fn applied() -> AppliedState {
    AppliedState { fingerprint: Some("old".into()), owned: true, task_definition: Some(TD1.into()), ..Default::default() }
}

/// Applies a weight action to the observed forwards, as ELB would.
fn apply_weights(elb: &mut ObservedElb, actions: &[Action]) {
    for a in actions {
        if let Action::ElbSetForwardWeights { arn, targets, .. } = a {
            let total: u32 = targets.iter().map(|(_, w)| *w).sum();
            assert_eq!(total, 100, "weights of {arn} must sum to 100: {targets:?}");
            let f = elb.forwards.iter_mut().find(|f| &f.arn == arn).expect("known forward");
            f.targets = targets.clone();
        }
    }
}

/// Steps until the record leaves `phase_name`, applying nothing; returns the last plan.
fn advance(desired: &DesiredApp, record: &mut DeploymentRecord, obs: &Observed, now: u64) -> Plan {
    let plan = run(desired, &applied(), Some(record), obs, now);
    if let Some(next) = &plan.next_record {
        *record = next.clone();
    }
    if let Some((done, _)) = &plan.finished {
        *record = done.clone();
    }
    plan
}

fn in_stabilize(desired: &DesiredApp) -> (DeploymentRecord, Observed) {
    let mut obs = Observed { service: Some(service(4)), task_sets: vec![blue()], elb: Some(forwards(100, 0)), ..Default::default() };
    let plan = run(desired, &applied(), None, &obs, 0);
    let mut record = plan.next_record.expect("started");
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Register));
    obs.registered_task_definition = Some(TD2.into());
    advance(desired, &mut record, &obs, 0);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::CreateGreen { task_definition: TD2.into() }));
    obs.alarms = alarm("OK");
    let plan = advance(desired, &mut record, &obs, 0);
    let create = plan.actions.iter().find_map(|a| if let Action::EcsCreateTaskSet { body } = a { Some(body.clone()) } else { None });
    let body = create.expect("creates the green task set");
    assert_eq!(body["externalId"], "gitmoxi:dep-2:green");
    assert_eq!(body["clientToken"], client_token("dep-2", "create-green"));
    assert_eq!(body["loadBalancers"][0]["targetGroupArn"], TG_B, "green is the partner of the blue target group");
    let crate::spec::AppSpec::Ecs(ecs) = &desired.spec else { panic!("an ECS app") };
    assert_eq!(body["scale"]["value"], ecs.depdef.first_scale().map_or(100.0, f64::from));
    assert_eq!(body["launchType"], "FARGATE");
    obs.task_sets.push(green());
    advance(desired, &mut record, &obs, 0);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Stabilize { .. })), "{:?}", record.phase);
    (record, obs)
}

#[test]
fn an_update_goes_through_every_phase_with_linear_weights_summing_to_100() {
    let desired = app("nginx:2");
    let (mut record, mut obs) = in_stabilize(&desired);
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    advance(&desired, &mut record, &obs, 5_000);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Shift { step: 0, green: 30, since_ms: 5_000 }));

    let mut now = 5_000;
    let mut seen = Vec::new();
    for _ in 0..40 {
        let plan = advance(&desired, &mut record, &obs, now);
        if !plan.actions.is_empty() {
            let elb = obs.elb.as_mut().expect("elb");
            apply_weights(elb, &plan.actions);
            assert_eq!(plan.actions.len(), 2, "the listener default action and the rule");
            seen.push(elb.forwards[0].targets.clone());
            continue;
        }
        if matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Promote)) {
            break;
        }
        now += (plan.requeue_after.as_millis() as u64).max(1);
    }
    let greens: Vec<u32> = seen.iter().map(|t| t[1].1).collect();
    assert_eq!(greens, vec![30, 60, 90, 100]);
    assert!(seen.iter().all(|t| t[0].1 + t[1].1 == 100));
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Promote));
    assert!(now >= 5_000 + 4 * 10_000 + 10_000, "four waits and the bake: {now}");

    let plan = advance(&desired, &mut record, &obs, now);
    assert_eq!(
        plan.actions,
        vec![Action::EcsUpdatePrimaryTaskSet { cluster: "prod".into(), service: "web".into(), task_set: green().arn }]
    );
    obs.task_sets =
        vec![task_set("111", "gitmoxi:dep-1:green", "ACTIVE", TD1, TG_A), task_set("222", "gitmoxi:dep-2:green", "PRIMARY", TD2, TG_B)];
    advance(&desired, &mut record, &obs, now);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::CleanUp));
    let plan = advance(&desired, &mut record, &obs, now);
    assert_eq!(plan.actions, vec![Action::EcsDeleteTaskSet { cluster: "prod".into(), service: "web".into(), task_set: blue().arn }]);
    obs.task_sets.remove(0);
    let plan = advance(&desired, &mut record, &obs, now);
    let (done, completion) = plan.finished.expect("finished");
    assert_eq!(done.outcome, Some(Outcome::Succeeded));
    assert_eq!(
        completion,
        Completion::Applied { fingerprint: done.fingerprint.clone(), commit: "c0ffee".into(), task_definition: Some(TD2.into()) }
    );
}

#[test]
fn a_first_deployment_creates_the_service_and_the_first_task_set_without_shifting() {
    let desired = app("nginx:1");
    let fresh = AppliedState::default();
    let mut obs = Observed { elb: Some(forwards(100, 0)), ..Default::default() };
    let mut record = run(&desired, &fresh, None, &obs, 0).next_record.expect("started");
    obs.registered_task_definition = Some(TD1.into());
    let plan = run(&desired, &fresh, Some(&record), &obs, 0);
    record = plan.next_record.expect("next");
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::CreateService { task_definition: TD1.into() }));
    let plan = run(&desired, &fresh, Some(&record), &obs, 0);
    assert!(plan.take_ownership);
    let Action::EcsCreateService { body } = &plan.actions[0] else { panic!("{:?}", plan.actions) };
    assert_eq!(body["deploymentController"]["type"], "EXTERNAL");
    assert!(body.get("taskDefinition").is_none() && body.get("loadBalancers").is_none() && body.get("launchType").is_none());
    assert_eq!(body["clientToken"], client_token("dep-2", "create-service"));
    // the service as CreateService made it: with this app's gitmoxi tags
    let tags = [
        (crate::strategy::ecs_rolling::TAG_APP.to_string(), key().tag_value()),
        (crate::strategy::ecs_rolling::TAG_REPO.to_string(), "repo".to_string()),
    ];
    obs.service = Some(ObservedService { tags: tags.into_iter().collect(), ..service(4) });
    record = run(&desired, &fresh, Some(&record), &obs, 0).next_record.expect("next");
    let plan = run(&desired, &fresh, Some(&record), &obs, 0);
    let Action::EcsCreateTaskSet { body } = &plan.actions[0] else { panic!("{:?}", plan.actions) };
    assert_eq!(body["loadBalancers"][0]["targetGroupArn"], TG_A, "the first task set uses the svcdef's target group");
    obs.task_sets = vec![task_set("222", "gitmoxi:dep-2:green", "ACTIVE", TD1, TG_A)];
    record = run(&desired, &fresh, Some(&record), &obs, 0).next_record.expect("next");
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    record = run(&desired, &fresh, Some(&record), &obs, 1_000).next_record.expect("next");
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Promote), "no blue: no shifting");
}

#[test]
fn a_replayed_create_finds_the_green_task_set_instead_of_creating_a_second() {
    let desired = app("nginx:2");
    let (record, obs) = in_stabilize(&desired);
    // the record is back in CreateGreen (crash before the phase change was saved): green exists
    let mut before = record.clone();
    before.phase = Phase::BlueGreen(BlueGreenPhase::CreateGreen { task_definition: TD2.into() });
    let plan = run(&desired, &applied(), Some(&before), &obs, 0);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(matches!(plan.next_record.expect("next").phase, Phase::BlueGreen(BlueGreenPhase::Stabilize { .. })));
}

#[test]
fn preflight_failures_touch_nothing_and_name_the_arn() {
    let desired = app("nginx:2");
    let cases: Vec<(Observed, &str)> = vec![
        (
            Observed {
                service: Some(service(4)),
                task_sets: vec![task_set("111", "x", "PRIMARY", TD1, "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/other/3")],
                elb: Some(forwards(100, 0)),
                ..Default::default()
            },
            "targetgroup/other/3",
        ),
        (
            Observed {
                service: Some(service(4)),
                task_sets: vec![blue()],
                elb: Some(ObservedElb { missing_target_groups: vec![TG_B.into()], ..forwards(100, 0) }),
                ..Default::default()
            },
            TG_B,
        ),
        (
            Observed { service: Some(service(4)), task_sets: vec![blue()], elb: Some(ObservedElb::default()), ..Default::default() },
            "no listener default action or listener rule forwards to the blue target group",
        ),
        (
            Observed {
                service: Some(ObservedService { deployment_controller: Some("ECS".into()), ..service(4) }),
                task_sets: vec![],
                elb: Some(forwards(100, 0)),
                ..Default::default()
            },
            "uses the ECS deployment controller",
        ),
        (
            Observed {
                service: Some(service(4)),
                task_sets: vec![blue()],
                elb: Some(forwards(100, 0)),
                alarms: vec![ObservedAlarm { name: "web-5xx".into(), state: None }],
                ..Default::default()
            },
            "alarm web-5xx",
        ),
    ];
    for (obs, needle) in cases {
        let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
        record.phase = Phase::BlueGreen(BlueGreenPhase::CreateGreen { task_definition: TD2.into() });
        let plan = run(&desired, &applied(), Some(&record), &obs, 0);
        assert!(plan.actions.is_empty(), "{needle}: {:?}", plan.actions);
        let (done, completion) = plan.finished.expect("finished");
        assert_eq!(done.outcome, Some(Outcome::Failed));
        assert_eq!(done.cause, Some(FailureCause::ValidationError));
        assert!(done.timeline.last().expect("logged").message.contains(needle), "{needle}: {:?}", done.timeline.last());
        assert!(matches!(completion, Completion::Failed { .. }));
    }
}

fn shifting_at(desired: &DesiredApp, green_weight: u32) -> (DeploymentRecord, Observed) {
    let (mut record, mut obs) = in_stabilize(desired);
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    obs.elb = Some(forwards(100 - green_weight, green_weight));
    record.phase = Phase::BlueGreen(BlueGreenPhase::Shift { step: 1, green: green_weight, since_ms: 1_000 });
    record.traffic = Some(Weights::green(green_weight));
    (record, obs)
}

#[test]
fn an_alarm_during_shifting_puts_blue_back_to_100_then_deletes_green() {
    let desired = app("nginx:2");
    let (mut record, mut obs) = shifting_at(&desired, 60);
    obs.alarms = alarm("ALARM");
    advance(&desired, &mut record, &obs, 2_000);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Rollback { superseded: false, delete_green: true }));
    assert_eq!(record.cause, Some(FailureCause::AlarmFired { alarms: vec!["web-5xx".into()] }));
    let plan = advance(&desired, &mut record, &obs, 2_000);
    apply_weights(obs.elb.as_mut().expect("elb"), &plan.actions);
    assert_eq!(obs.elb.as_ref().expect("elb").forwards[0].targets, vec![(TG_A.to_string(), 100), (TG_B.to_string(), 0)]);
    assert!(plan.actions.iter().all(|a| matches!(a, Action::ElbSetForwardWeights { .. })), "weights first, nothing else");
    let plan = advance(&desired, &mut record, &obs, 2_000);
    assert_eq!(plan.actions, vec![Action::EcsDeleteTaskSet { cluster: "prod".into(), service: "web".into(), task_set: green().arn }]);
    obs.task_sets.retain(|t| t.id != "ecs-svc/222");
    let plan = advance(&desired, &mut record, &obs, 2_000);
    let (done, completion) = plan.finished.expect("finished");
    assert_eq!(done.outcome, Some(Outcome::RolledBack));
    assert_eq!(done.traffic, Some(Weights { blue: 100, green: 0 }));
    assert!(matches!(completion, Completion::Failed { .. }));
}

#[test]
fn an_alarm_keeps_green_without_traffic_when_configured() {
    let desired = app_with(
        "nginx:2",
        &depdef(
            r#", "trafficShiftingConfig": {"type": "CANARY", "percent": 20, "waitInterval": 10}, "deleteNewUponTrafficShiftFailure": false"#,
        ),
    );
    let (mut record, mut obs) = shifting_at(&desired, 20);
    obs.alarms = alarm("ALARM");
    advance(&desired, &mut record, &obs, 2_000);
    let plan = advance(&desired, &mut record, &obs, 2_000);
    apply_weights(obs.elb.as_mut().expect("elb"), &plan.actions);
    let plan = advance(&desired, &mut record, &obs, 2_000);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.finished.expect("finished").0.outcome, Some(Outcome::RolledBack));
}

#[test]
fn the_breaker_trips_in_stabilize_and_deletes_green_without_touching_traffic() {
    let desired = app("nginx:2");
    let (mut record, mut obs) = in_stabilize(&desired);
    obs.tasks = tasks_of("222", "STOPPED", 2, Some("CannotPullContainerError: image not found"));
    advance(&desired, &mut record, &obs, 5_000);
    assert!(matches!(record.cause, Some(FailureCause::CircuitBreakerTripped { failed_tasks: 2, threshold: 2 })));
    assert!(record.evidence[0].contains("CannotPullContainerError"));
    let plan = advance(&desired, &mut record, &obs, 5_000);
    assert_eq!(plan.actions, vec![Action::EcsDeleteTaskSet { cluster: "prod".into(), service: "web".into(), task_set: green().arn }]);
}

#[test]
fn a_stability_timeout_rolls_back() {
    let desired = app("nginx:2");
    let (mut record, mut obs) = in_stabilize(&desired);
    obs.tasks = tasks_of("222", "PENDING", 4, None);
    let plan = advance(&desired, &mut record, &obs, 50_000);
    assert_eq!(plan.requeue_after, Duration::from_secs(5));
    advance(&desired, &mut record, &obs, 100_001);
    assert!(matches!(record.cause, Some(FailureCause::StabilityTimeout { .. })), "{:?}", record.cause);
}

#[test]
fn unhealthy_targets_keep_green_unstable() {
    let desired = app("nginx:2");
    let (mut record, mut obs) = in_stabilize(&desired);
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    obs.elb.as_mut().expect("elb").healthy_targets.insert(TG_B.into(), 3);
    let plan = advance(&desired, &mut record, &obs, 5_000);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Stabilize { .. })));
    assert!(plan.next_record.expect("progress logged").timeline.last().expect("line").message.contains("3/4 healthy"));
}

#[test]
fn spot_shortage_creates_a_fallback_task_set_for_the_shortfall() {
    let desired = app_with("nginx:2", &depdef(r#", "fallbackCapacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]"#));
    let (mut record, mut obs) = in_stabilize(&desired);
    obs.tasks = tasks_of("222", "RUNNING", 1, None);
    obs.tasks.extend(tasks_of("222", "STOPPED", 3, Some("Capacity is unavailable at this time. Please try again later")));
    let plan = advance(&desired, &mut record, &obs, 5_000);
    assert_eq!(record.task_set_scales, Some(TaskSetScales { primary_percent: 25.0, fallback_percent: 75.0 }));
    let Action::EcsCreateTaskSet { body } = &plan.actions[0] else { panic!("{:?}", plan.actions) };
    assert_eq!(body["externalId"], "gitmoxi:dep-2:fallback");
    assert_eq!(body["scale"]["value"], 75.0);
    assert_eq!(body["capacityProviderStrategy"][0]["capacityProvider"], "FARGATE");
    assert!(body.get("launchType").is_none());
    assert_eq!(body["loadBalancers"][0]["targetGroupArn"], TG_B, "same target group as green");
    assert_eq!(
        plan.actions[1],
        Action::EcsUpdateTaskSetScale { cluster: "prod".into(), service: "web".into(), task_set: green().arn, percent: 25.0 }
    );
    obs.task_sets.push(task_set("333", "gitmoxi:dep-2:fallback", "ACTIVE", TD2, TG_B));
    obs.tasks.extend(tasks_of("333", "RUNNING", 3, None));
    advance(&desired, &mut record, &obs, 10_000);
    assert_eq!(
        record.phase,
        Phase::BlueGreen(BlueGreenPhase::Shift { step: 0, green: 100, since_ms: 10_000 }),
        "the pair is one side, stable together; pairs without a schedule shift all at once (SPEC §3.5)"
    );
}

/// Issue 23, item 2: target group pairs and no trafficShiftingConfig never promote green with
/// production still on blue's group: one ALL_AT_ONCE shift moves every weight first.
#[test]
fn pairs_without_a_schedule_shift_all_at_once_before_promoting() {
    let desired = app_with("nginx:2", &depdef(""));
    let crate::spec::AppSpec::Ecs(ecs) = &desired.spec else { panic!("an ECS app") };
    assert!(ecs.depdef.traffic_shifting.is_none() && !ecs.depdef.target_group_pairs.is_empty(), "pairs and no schedule");
    assert_eq!(ecs.depdef.shifting().expect("pairs shift").steps(), vec![100]);
    let without_pairs = crate::spec::ecs_depdef::EcsDepdef::default();
    assert_eq!(without_pairs.shifting(), None, "no pairs, no schedule: nothing to shift");
}

#[test]
fn a_newer_commit_during_shifting_rolls_back_first_then_the_newest_deploys() {
    let desired = app("nginx:2");
    let (record, obs) = shifting_at(&desired, 30);
    let newer = app("nginx:3");
    let plan = run_with(Desired::Present(&newer), &applied(), Some(&record), &obs, 3_000, "beef");
    let next = plan.next_record.expect("rolling back");
    assert_eq!(next.phase, Phase::BlueGreen(BlueGreenPhase::Rollback { superseded: true, delete_green: true }));
    assert_eq!(next.id, record.id, "the same deployment rolls back");
    let plan = run_with(Desired::Present(&newer), &applied(), Some(&next), &obs, 3_000, "beef");
    assert!(plan.actions.iter().all(|a| matches!(a, Action::ElbSetForwardWeights { .. })) && !plan.actions.is_empty());
    let mut obs2 = obs.clone();
    obs2.elb = Some(forwards(100, 0));
    obs2.task_sets = vec![blue()];
    let after = plan.next_record.expect("next");
    let plan = run_with(Desired::Present(&newer), &applied(), Some(&after), &obs2, 3_000, "beef");
    let (done, completion) = plan.finished.expect("finished");
    assert_eq!(done.outcome, Some(Outcome::Superseded));
    assert_eq!(completion, Completion::Nothing, "the superseded fingerprint is not quarantined");
}

#[test]
fn promote_and_clean_up_are_not_interrupted_by_a_newer_commit() {
    let desired = app("nginx:2");
    let (mut record, obs) = shifting_at(&desired, 100);
    record.phase = Phase::BlueGreen(BlueGreenPhase::Promote);
    let newer = app("nginx:3");
    let plan = run_with(Desired::Present(&newer), &applied(), Some(&record), &obs, 3_000, "beef");
    assert!(matches!(plan.actions.as_slice(), [Action::EcsUpdatePrimaryTaskSet { .. }]), "{:?}", plan.actions);
}

#[test]
fn weight_actions_only_touch_forwards_that_serve_blue_and_keep_other_target_groups() {
    let other = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/other/3";
    let elb = ObservedElb {
        forwards: vec![
            ObservedForward { kind: ForwardKind::Rule, arn: "r1".into(), targets: vec![(TG_A.into(), 100)] },
            ObservedForward { kind: ForwardKind::Rule, arn: "r2".into(), targets: vec![(other.into(), 100)] },
        ],
        ..Default::default()
    };
    let actions = weight_actions(&elb, &[(TG_A.into(), TG_B.into())], 20);
    assert_eq!(
        actions,
        vec![Action::ElbSetForwardWeights {
            kind: ForwardKind::Rule,
            arn: "r1".into(),
            targets: vec![(TG_A.into(), 80), (TG_B.into(), 20)]
        }]
    );
    assert!(weight_actions(&elb, &[(TG_A.into(), TG_B.into())], 0).is_empty(), "100 % blue already: nothing to change");
}

/// Issue 23, item 7: without pairs green registers in blue's own target group; blue's healthy
/// targets there are not green's.
#[test]
fn without_pairs_blues_healthy_targets_do_not_count_for_green() {
    let desired = app_with("nginx:2", r#"{"stabilityCheck": {"pollInterval": 5, "timeout": 100}}"#);
    let mut blue = blue();
    blue.running_count = 4;
    let green = task_set("222", "gitmoxi:dep-2:green", "ACTIVE", TD2, TG_A);
    let mut obs = Observed { service: Some(service(4)), task_sets: vec![blue], ..Default::default() };
    let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
    record.enter(Phase::BlueGreen(BlueGreenPhase::Stabilize { task_definition: TD2.into(), deadline_ms: 100_000 }), 0);
    obs.task_sets.push(green);
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    // only blue's four targets are healthy in the shared group
    obs.elb = Some(ObservedElb { healthy_targets: [(TG_A.to_string(), 4)].into_iter().collect(), ..ObservedElb::default() });
    advance(&desired, &mut record, &obs, 5_000);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Stabilize { .. })), "green is not healthy yet: {:?}", record.phase);
    // blue's four and green's four
    obs.elb = Some(ObservedElb { healthy_targets: [(TG_A.to_string(), 8)].into_iter().collect(), ..ObservedElb::default() });
    advance(&desired, &mut record, &obs, 10_000);
    assert!(!matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Stabilize { .. })), "green is healthy: {:?}", record.phase);
}

/// Issue 23, item 10: green's tasks that stop while traffic shifts trip the breaker there too.
#[test]
fn the_breaker_is_watched_while_traffic_shifts() {
    let desired = app("nginx:2");
    let (mut record, mut obs) = shifting_at(&desired, 30);
    assert_eq!(
        strategy::observe_needs(&Desired::Present(&desired), &applied(), Some(&record)).side_tasks.as_deref(),
        Some("gitmoxi:dep-2:"),
        "green's tasks are read while shifting"
    );
    obs.alarms = alarm("OK");
    obs.tasks = tasks_of("222", "RUNNING", 2, None);
    obs.tasks.extend(tasks_of("222", "STOPPED", 2, Some("Essential container in task exited")));
    advance(&desired, &mut record, &obs, 2_000);
    assert!(matches!(record.cause, Some(FailureCause::CircuitBreakerTripped { failed_tasks: 2, threshold: 2 })), "{:?}", record.cause);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Rollback { .. })));
}

/// Issue 23, item 8 (`initialScale`, SPEC §3.5): green's task set starts at that scale, is
/// stable with that share of the desired count, and is scaled to 100 % and waited stable before
/// its weight passes the scale.
#[test]
fn initial_scale_starts_green_small_and_scales_it_up_before_its_weight_passes_it() {
    let desired = app_with(
        "nginx:2",
        &depdef(r#", "initialScale": 45, "trafficShiftingConfig": {"type": "CANARY", "percent": 30, "waitInterval": 10}"#),
    );
    let mut obs = Observed { service: Some(service(4)), task_sets: vec![blue()], elb: Some(forwards(100, 0)), ..Default::default() };
    obs.alarms = alarm("OK");
    let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
    obs.registered_task_definition = Some(TD2.into());
    advance(&desired, &mut record, &obs, 0);
    let plan = advance(&desired, &mut record, &obs, 0);
    let body = plan.actions.iter().find_map(|a| if let Action::EcsCreateTaskSet { body } = a { Some(body.clone()) } else { None });
    assert_eq!(body.expect("creates green")["scale"]["value"], 45.0, "green starts at initialScale");
    let mut small = green();
    small.scale_percent = 45.0;
    obs.task_sets.push(small);
    advance(&desired, &mut record, &obs, 0);
    // ceil(4 × 45 %) = 2 tasks make green stable at its initial scale
    obs.tasks = tasks_of("222", "RUNNING", 2, None);
    let mut elb = forwards(100, 0);
    elb.healthy_targets.insert(TG_B.into(), 2);
    obs.elb = Some(elb);
    advance(&desired, &mut record, &obs, 1_000);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Shift { step: 0, green: 30, since_ms: 1_000 }), "2 of 4 is stable at 45 %");
    let plan = advance(&desired, &mut record, &obs, 1_000);
    apply_weights(obs.elb.as_mut().expect("elb"), &plan.actions);
    assert_eq!(plan.actions.len(), 2, "30 % fits in 45 %: weights move without scaling");
    // the canary's second step is 100 %: first scale green to 100 % ...
    let plan = advance(&desired, &mut record, &obs, 12_000);
    assert!(plan.actions.is_empty(), "the step's wait ended: {:?}", plan.actions);
    let plan = advance(&desired, &mut record, &obs, 12_000);
    assert_eq!(
        plan.actions,
        vec![Action::EcsUpdateTaskSetScale { cluster: "prod".into(), service: "web".into(), task_set: green().arn, percent: 100.0 }],
        "green is scaled before its weight passes 45 %"
    );
    obs.task_sets[1].scale_percent = 100.0;
    // ... and no weight moves while only 2 of 4 tasks run
    let plan = advance(&desired, &mut record, &obs, 13_000);
    assert!(plan.actions.is_empty(), "weights wait for full capacity: {:?}", plan.actions);
    assert_eq!(obs.elb.as_ref().expect("elb").forwards[0].targets[1].1, 30);
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    obs.elb.as_mut().expect("elb").healthy_targets.insert(TG_B.into(), 4);
    let plan = advance(&desired, &mut record, &obs, 14_000);
    apply_weights(obs.elb.as_mut().expect("elb"), &plan.actions);
    assert_eq!(obs.elb.as_ref().expect("elb").forwards[0].targets[1].1, 100, "full capacity: 100 % on green");
}

/// Scaling up that never becomes stable rolls back within the green stability budget.
#[test]
fn initial_scale_that_cannot_scale_up_rolls_back() {
    let desired =
        app_with("nginx:2", &depdef(r#", "initialScale": 50, "trafficShiftingConfig": {"type": "ALL_AT_ONCE", "waitInterval": 10}"#));
    let (mut record, mut obs) = shifting_at(&desired, 0);
    record.phase = Phase::BlueGreen(BlueGreenPhase::Shift { step: 0, green: 100, since_ms: 1_000 });
    obs.tasks = tasks_of("222", "RUNNING", 2, None);
    obs.task_sets[1].scale_percent = 100.0;
    let plan = advance(&desired, &mut record, &obs, 50_000);
    assert!(plan.actions.is_empty() && matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Shift { .. })), "waits within budget");
    advance(&desired, &mut record, &obs, 1_000 + 100_000);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Rollback { .. })), "{:?}", record.phase);
    assert!(matches!(record.cause, Some(FailureCause::StabilityTimeout { .. })), "{:?}", record.cause);
}

/// A first deployment (nothing to shift from) with `initialScale` takes green to 100 % before it
/// is promoted: a service never ends on a partial task set.
#[test]
fn initial_scale_on_a_first_deployment_scales_green_up_before_promoting() {
    let desired = app_with("nginx:1", &depdef(r#", "initialScale": 50"#));
    let mut obs = Observed { service: Some(service(4)), elb: Some(forwards(100, 0)), alarms: alarm("OK"), ..Default::default() };
    let mut first = task_set("222", "gitmoxi:dep-2:green", "ACTIVE", TD2, TG_A);
    first.scale_percent = 50.0;
    obs.task_sets = vec![first];
    obs.tasks = tasks_of("222", "RUNNING", 2, None);
    let mut record = run(&desired, &AppliedState::default(), None, &obs, 0).next_record.expect("started");
    record.phase = Phase::BlueGreen(BlueGreenPhase::Stabilize { task_definition: TD2.into(), deadline_ms: 100_000 });
    let plan = advance(&desired, &mut record, &obs, 1_000);
    assert_eq!(
        plan.actions,
        vec![Action::EcsUpdateTaskSetScale { cluster: "prod".into(), service: "web".into(), task_set: green().arn, percent: 100.0 }]
    );
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Stabilize { .. })), "{:?}", record.phase);
    obs.task_sets[0].scale_percent = 100.0;
    advance(&desired, &mut record, &obs, 2_000);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Stabilize { .. })), "2 of 4 is not stable at 100 %");
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    advance(&desired, &mut record, &obs, 3_000);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Promote));
}

const ANALYSIS: &str = r#", "trafficShiftingConfig": {"type": "LINEAR", "percent": 30, "waitInterval": 10},
    "analysis": {"window": 300, "interval": 20, "consecutiveInconclusive": 2, "checks": [
        {"name": "latency", "metric": {"namespace": "Web", "metricName": "Latency",
            "dimensions": {"TargetGroup": "{{ green }}", "LoadBalancer": "{{ load_balancer }}"}, "stat": "Average", "period": 10},
         "compare": {"tolerance": 25}, "unit": "ms"}]}"#;

/// What GetMetricData answers: `green(weight)` values for green queries, 180 ms for blue.
fn metric_values(req: &crate::analysis::queries::MetricRequest, green: &[f64]) -> BTreeMap<String, Vec<f64>> {
    let blue: Vec<f64> = (0..30).map(|i| 180.0 + f64::from(i % 7)).collect();
    req.queries
        .iter()
        .filter(|q| q.return_data)
        .map(|q| (q.id.clone(), if q.id.ends_with('g') { green.to_vec() } else { blue.clone() }))
        .collect()
}

/// Runs the deployment from green stable on, answering GetMetricData with `green_at(weight)`
/// (None: no data); returns the record once it leaves Shift/Bake and the weights seen.
fn shift_with_analysis(
    desired: &DesiredApp,
    green_at: impl Fn(u32) -> Option<Vec<f64>>,
    commands: &crate::commands::OperatorCommands,
) -> (DeploymentRecord, Observed, Vec<u32>, u64) {
    let (mut record, mut obs) = in_stabilize(desired);
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    advance(desired, &mut record, &obs, 5_000);
    let mut greens = Vec::new();
    let now = drive(desired, &mut record, &mut obs, 5_000, commands, &green_at, &mut greens);
    (record, obs, greens, now)
}

/// Steps `record` on like ELB, ECS and CloudWatch would answer (weights applied, a rescaled
/// green's tasks running, GetMetricData from `green_at`), until it leaves Shift/Bake or waits
/// for a person; the weights set are pushed to `greens`; returns the time it stopped at.
fn drive(
    desired: &DesiredApp,
    record: &mut DeploymentRecord,
    obs: &mut Observed,
    mut now: u64,
    commands: &crate::commands::OperatorCommands,
    green_at: &dyn Fn(u32) -> Option<Vec<f64>>,
    greens: &mut Vec<u32>,
) -> u64 {
    for _ in 0..400 {
        if !matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Shift { .. } | BlueGreenPhase::Bake { .. }))
            || record.awaiting_approval.is_some()
        {
            break;
        }
        let key = key();
        let applied = applied();
        let weight = record.traffic.map_or(0, |w| w.green);
        let input = |record: &DeploymentRecord, obs: &Observed| -> Plan {
            let input = StepInput { commands, ..input_with(Desired::Present(desired), Some(record), obs, &applied, &key, now) };
            match strategy::look(&input) {
                strategy::Look::Observe(needs) if needs.metrics.is_some() => {
                    let mut with = obs.clone();
                    with.metrics = needs.metrics.map(|req| match green_at(weight) {
                        Some(g) => metric_values(&req, &g),
                        None => BTreeMap::new(),
                    });
                    strategy::step(&StepInput { observed: &with, ..input })
                }
                strategy::Look::Observe(_) | strategy::Look::Skip(_) => strategy::step(&input),
            }
        };
        let plan = input(record, obs);
        if let Some(next) = &plan.next_record {
            *record = next.clone();
        }
        if let Some((done, _)) = &plan.finished {
            *record = done.clone();
        }
        if !plan.actions.is_empty() {
            for a in &plan.actions {
                if let Action::EcsUpdateTaskSetScale { percent, .. } = a {
                    let set = obs.task_sets.iter_mut().find(|t| t.id == "ecs-svc/222").expect("green");
                    set.scale_percent = *percent;
                    obs.tasks = tasks_of("222", "RUNNING", tasks_at_scale(4, *percent) as usize, None);
                }
            }
            if plan.actions.iter().any(|a| matches!(a, Action::ElbSetForwardWeights { .. })) {
                apply_weights(obs.elb.as_mut().expect("elb"), &plan.actions);
                greens.push(obs.elb.as_ref().expect("elb").forwards[0].targets[1].1);
            }
            continue;
        }
        now += (plan.requeue_after.as_millis() as u64).max(1);
    }
    now
}

fn healthy() -> Vec<f64> {
    (0..30).map(|i| 181.0 + f64::from(i % 5)).collect()
}

#[test]
fn analysis_runs_at_the_end_of_every_step_and_the_bake_and_a_healthy_green_is_promoted() {
    let desired = app_with("nginx:2", &depdef(ANALYSIS));
    let (record, _, greens, _) = shift_with_analysis(&desired, |_| Some(healthy()), &crate::commands::NO_COMMANDS);
    assert_eq!(greens, vec![30, 60, 90, 100]);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Promote));
    let analysis = record.analysis.expect("analysis kept");
    let sides = analysis.sides.expect("sides");
    assert_eq!((sides.green.as_str(), sides.blue.as_str()), ("targetgroup/web-b/2", "targetgroup/web-a/1"));
    assert_eq!(sides.load_balancer.as_deref(), Some("app/lb/1"));
    let steps: Vec<&str> = analysis.runs.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(steps, vec!["30 %", "60 %", "90 %", "100 %", "bake"]);
    assert!(analysis.runs.iter().all(|r| r.verdict == crate::analysis::verdict::Verdict::Pass));
    assert!(record.timeline.iter().any(|e| e.message.starts_with("analysis at 30 %: pass — latency green 18")), "{:?}", record.timeline);
}

#[test]
fn a_slow_green_rolls_back_at_its_step_naming_the_check_and_its_numbers() {
    let desired = app_with("nginx:2", &depdef(ANALYSIS));
    let slow: Vec<f64> = (0..30).map(|i| 412.0 + f64::from(i % 5)).collect();
    let (record, obs, greens, _) =
        shift_with_analysis(&desired, |w| Some(if w >= 60 { slow.clone() } else { healthy() }), &crate::commands::NO_COMMANDS);
    assert_eq!(greens, vec![30, 60]);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Rollback { superseded: false, delete_green: true }));
    match &record.cause {
        Some(FailureCause::AnalysisFailed { check, detail }) => {
            assert_eq!(check, "latency");
            assert!(detail.starts_with("latency green 414 ms vs blue 183 ms (+126 %, tolerance 25 %, p < 0.001)"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(obs.elb.expect("elb").forwards[0].targets[1].1, 60, "the rollback moves traffic next");
}

#[test]
fn inconclusive_runs_retry_then_hold_for_a_person_who_can_let_traffic_go_on() {
    let desired = app_with("nginx:2", &depdef(ANALYSIS));
    let (record, _, greens, _) = shift_with_analysis(&desired, |_| Some(vec![181.0, 182.0]), &crate::commands::NO_COMMANDS);
    assert_eq!(greens, vec![30]);
    let waiting = record.awaiting_approval.as_ref().expect("holds for a person");
    assert_eq!(waiting.gate, "analysis at 30 %");
    let verdicts: Vec<_> = record.analysis.as_ref().expect("runs").runs.iter().map(|r| (r.verdict, r.decision)).collect();
    use crate::analysis::verdict::{Decision, Verdict};
    assert_eq!(verdicts, vec![(Verdict::Inconclusive, Decision::Retry), (Verdict::Inconclusive, Decision::Hold)]);
    assert!(record.timeline.iter().any(|e| e.message.contains("too few samples (green 2, blue 30; minSamples 5)")));
    // an approval lets traffic go on
    let approve = crate::commands::OperatorCommands {
        approval: Some(crate::commands::Approval {
            approve: true,
            by: "sre".into(),
            via: crate::commands::AnswerChannel::Cli,
            at_ms: 999_999,
        }),
        ..crate::commands::OperatorCommands::none()
    };
    let mut record = record;
    let obs = Observed {
        service: Some(service(4)),
        task_sets: vec![blue(), green()],
        elb: Some(forwards(70, 30)),
        tasks: tasks_of("222", "RUNNING", 4, None),
        ..Default::default()
    };
    let key = key();
    let applied = applied();
    let now = record.updated_at_ms + 1_000;
    let input = StepInput { commands: &approve, ..input_with(Desired::Present(&desired), Some(&record), &obs, &applied, &key, now) };
    let plan = strategy::step(&input);
    assert!(plan.consumed.approval);
    record = plan.next_record.expect("answer kept");
    let plan = run(&desired, &applied, Some(&record), &obs, now);
    let next = plan.next_record.expect("moves on");
    assert_eq!(next.phase, Phase::BlueGreen(BlueGreenPhase::Shift { step: 1, green: 60, since_ms: now }));
}

#[test]
fn inconclusive_with_on_inconclusive_rollback_rolls_back_with_its_own_cause() {
    let desired = app_with(
        "nginx:2",
        &depdef(&ANALYSIS.replace(r#""consecutiveInconclusive": 2"#, r#""consecutiveInconclusive": 2, "onInconclusive": "rollback""#)),
    );
    let (record, _, _, _) = shift_with_analysis(&desired, |_| None, &crate::commands::NO_COMMANDS);
    assert!(matches!(record.cause, Some(FailureCause::AnalysisInconclusive { runs: 2, .. })), "{:?}", record.cause);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Rollback { .. })));
}

#[test]
fn steps_start_green_small_gate_a_step_scale_it_up_before_more_traffic_and_judge_only_the_chosen_steps() {
    let steps = r#", "trafficShiftingConfig": {"waitInterval": 10, "steps": [
            {"weight": 5, "wait": 30, "scale": 10}, {"approval": true}, {"weight": 25, "analysis": true}, {"weight": 100}]},
        "analysis": {"checks": [{"name": "latency", "metric": {"namespace": "Web", "metricName": "Latency",
            "dimensions": {"TargetGroup": "{{ green }}"}, "period": 10}, "compare": {"tolerance": 25}}]}"#;
    let desired = app_with("nginx:2", &depdef(steps));
    let (mut record, mut obs) = in_stabilize(&desired);
    // green starts at 10 % of 4 tasks: one task, stable at that scale
    obs.task_sets[1].scale_percent = 10.0;
    obs.tasks = tasks_of("222", "RUNNING", 1, None);
    advance(&desired, &mut record, &obs, 5_000);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Shift { step: 0, green: 5, since_ms: 5_000 }));
    // while traffic shifts, a partial green's tasks and targets are read (to scale it up in time)
    let (app_key, applied_state) = (key(), applied());
    let strategy::Look::Observe(needs) =
        strategy::look(&input_with(Desired::Present(&desired), Some(&record), &obs, &applied_state, &app_key, 5_000))
    else {
        panic!("observes")
    };
    assert!(needs.side_tasks.is_some() && needs.elb_reads.health, "{needs:?}");
    let mut greens = Vec::new();
    let now = drive(&desired, &mut record, &mut obs, 5_000, &crate::commands::NO_COMMANDS, &|_| Some(healthy()), &mut greens);
    assert_eq!(greens, vec![5], "5 % only, on one task");
    assert!(now >= 35_000, "the first step holds its own 30 s: {now}");
    assert_eq!(record.awaiting_approval.as_ref().map(|a| a.gate.as_str()), Some("before 25 %"));
    assert!(record.analysis.as_ref().is_none_or(|a| a.runs.is_empty()), "5 % is not judged");
    let approve = crate::commands::OperatorCommands {
        approval: Some(crate::commands::Approval { approve: true, by: "sre".into(), via: crate::commands::AnswerChannel::Cli, at_ms: now }),
        ..crate::commands::OperatorCommands::none()
    };
    let input_record = record.clone();
    let key = key();
    let applied = applied();
    let plan = strategy::step(&StepInput {
        commands: &approve,
        ..input_with(Desired::Present(&desired), Some(&input_record), &obs, &applied, &key, now)
    });
    record = plan.next_record.expect("the answer is kept");
    // before 25 %: green is scaled to all 4 tasks and waited stable
    let plan = advance(&desired, &mut record, &obs, now);
    assert_eq!(
        plan.actions,
        vec![Action::EcsUpdateTaskSetScale { cluster: "prod".into(), service: "web".into(), task_set: green().arn, percent: 100.0 }]
    );
    obs.task_sets[1].scale_percent = 100.0;
    let plan = advance(&desired, &mut record, &obs, now + 1_000);
    assert!(plan.actions.is_empty(), "1 of 4 tasks: 25 % waits for the rest");
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    drive(&desired, &mut record, &mut obs, now + 2_000, &crate::commands::NO_COMMANDS, &|_| Some(healthy()), &mut greens);
    assert_eq!(greens, vec![5, 25, 100]);
    assert_eq!(record.phase, Phase::BlueGreen(BlueGreenPhase::Promote));
    let judged: Vec<String> = record.analysis.expect("runs").runs.iter().map(|r| r.step.clone()).collect();
    assert_eq!(judged, vec!["25 %".to_string(), "bake".to_string()], "only the step that asks, and the bake");
}

fn hooked_app() -> DesiredApp {
    app_with(
        "nginx:2",
        &depdef(
            r#", "trafficShiftingConfig": {"type": "CANARY", "percent": 50, "waitInterval": 10},
            "hooks": {"beforeShift": {"task": {"taskDefinition": "smoke:3", "overrides": {"containerOverrides": [{"name": "smoke", "command": ["check", "green"]}]}}, "timeout": 120},
                      "afterShift": {"lambda": {"functionName": "verify-fail", "payload": {"path": "/health"}}, "timeout": 30}}"#,
        ),
    )
}

fn input_with<'a>(
    desired: Desired<'a>,
    record: Option<&'a DeploymentRecord>,
    obs: &'a Observed,
    applied: &'a AppliedState,
    key: &'a AppKey,
    now: u64,
) -> StepInput<'a> {
    StepInput {
        key,
        commit: "c0ffee",
        desired,
        applied,
        record,
        observed: obs,
        now_ms: now,
        new_deployment_id: "dep-2",
        commands: &crate::commands::NO_COMMANDS,
        drift: crate::drift::DriftClock::off(),
        moved: false,
        refusal: None,
        own_account: Some("123456789012"),
        account_roles: &crate::accounts::NO_ROLES,
        adopt_untagged: false,
        hold: None,
    }
}

#[test]
fn a_before_shift_task_hook_runs_once_in_the_services_network_and_traffic_waits_for_its_exit_code() {
    let desired = hooked_app();
    let (mut record, mut obs) = in_stabilize(&desired);
    obs.tasks = tasks_of("222", "RUNNING", 4, None);
    advance(&desired, &mut record, &obs, 5_000);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Shift { step: 0, .. })));
    // the hook starts: RunTask with the service's cluster, network and launch type, once
    let plan = advance(&desired, &mut record, &obs, 5_000);
    let Some(Action::EcsRunTask { body }) = plan.actions.first() else { panic!("{:?}", plan.actions) };
    assert_eq!(body["startedBy"], "gitmoxi-hook/dep-2/beforeShift");
    assert_eq!(body["taskDefinition"], "smoke:3");
    assert_eq!(body["launchType"], "FARGATE");
    assert_eq!(body["networkConfiguration"]["awsvpcConfiguration"]["subnets"][0], "subnet-1");
    assert_eq!(body["overrides"]["containerOverrides"][0]["command"][1], "green");
    assert_eq!(body["clientToken"], client_token("dep-2", "hook-beforeShift"));
    let (key, applied) = (key(), applied());
    let look = strategy::look(&input_with(Desired::Present(&desired), Some(&record), &obs, &applied, &key, 6_000));
    let strategy::Look::Observe(needs) = look else { panic!("observes") };
    assert_eq!(needs.hook_tasks, Some(("prod".to_string(), "gitmoxi-hook/dep-2/beforeShift".to_string())));
    assert_eq!(needs.hook_task_definition.as_deref(), Some("smoke:3"));
    obs.hook_logs = vec![crate::observed::ObservedTaskLogs {
        container: "smoke".into(),
        group: Some("/ecs/smoke".into()),
        stream_prefix: Some("hooks".into()),
    }];
    // running: no weight moves, no second RunTask
    let mut hook_task = tasks_of("hook", "RUNNING", 1, None).remove(0);
    hook_task.started_by = Some("gitmoxi-hook/dep-2/beforeShift".into());
    obs.hook_tasks = vec![hook_task.clone()];
    let plan = advance(&desired, &mut record, &obs, 8_000);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(obs.elb.as_ref().expect("elb").forwards[0].targets[1].1, 0);
    // it exits 0: the weights move
    hook_task.last_status = "STOPPED".into();
    hook_task.stopped_reason = Some("Essential container in task exited".into());
    hook_task.containers = vec![crate::observed::ObservedContainer { name: "smoke".into(), exit_code: Some(0), reason: None }];
    obs.hook_tasks = vec![hook_task];
    advance(&desired, &mut record, &obs, 9_000);
    assert_eq!(record.hooks[0].status, crate::record::HookStatus::Succeeded);
    let detail = record.hooks[0].detail.clone().unwrap_or_default();
    assert!(detail.ends_with("— logs: /ecs/smoke hooks/smoke/hook-RUNNING-0"), "where its logs are: {detail}");
    let plan = advance(&desired, &mut record, &obs, 9_000);
    assert!(
        plan.actions.iter().all(|a| matches!(a, Action::ElbSetForwardWeights { .. })) && !plan.actions.is_empty(),
        "{:?}",
        plan.actions
    );
}

#[test]
fn a_failing_after_shift_lambda_hook_rolls_back_naming_the_function_error_and_its_log() {
    let desired = hooked_app();
    let (mut record, mut obs) = shifting_at(&desired, 100);
    record.phase = Phase::BlueGreen(BlueGreenPhase::Shift { step: 1, green: 100, since_ms: 1_000 });
    record.hooks.push(crate::record::HookRun {
        point: crate::spec::hooks::HookPoint::BeforeShift,
        started_ms: 0,
        status: crate::record::HookStatus::Succeeded,
        detail: None,
        reference: None,
    });
    advance(&desired, &mut record, &obs, 20_000);
    assert_eq!(record.hooks.last().map(|h| h.status), Some(crate::record::HookStatus::Running));
    let (key, applied) = (key(), applied());
    let strategy::Look::Observe(needs) =
        strategy::look(&input_with(Desired::Present(&desired), Some(&record), &obs, &applied, &key, 20_001))
    else {
        panic!("observes")
    };
    let invoke = needs.invoke.expect("the invocation to make");
    assert_eq!(invoke.function, "verify-fail");
    assert_eq!(invoke.payload["path"], "/health");
    assert_eq!(invoke.payload["gitmoxi"]["hook"], "afterShift");
    assert_eq!(invoke.payload["gitmoxi"]["deployment"], "dep-2");
    obs.invocation = Some(crate::observed::ObservedInvocation {
        status_code: 200,
        function_error: Some("Unhandled".into()),
        log_tail: Some("START\n[ERROR] AssertionError: green answered 503\nEND\n".into()),
        request_id: None,
    });
    advance(&desired, &mut record, &obs, 20_001);
    assert!(matches!(record.phase, Phase::BlueGreen(BlueGreenPhase::Rollback { .. })), "{:?}", record.phase);
    // a hook still marked running when the deployment rolls back for another cause (an alarm)
    // is never invoked again
    let mut rolling_back = record.clone();
    if let Some(h) = rolling_back.hooks.last_mut() {
        h.status = crate::record::HookStatus::Running;
    }
    assert_eq!(
        strategy::hook_gate::needs(&rolling_back),
        strategy::hook_gate::HookNeeds::default(),
        "a rolling-back deployment invokes no hook"
    );
    assert_eq!(
        record.cause,
        Some(FailureCause::HookFailed {
            hook: "afterShift".into(),
            detail: "FunctionError Unhandled — [ERROR] AssertionError: green answered 503".into()
        })
    );
}
