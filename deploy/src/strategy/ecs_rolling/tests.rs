//! Table-driven multi-step scenarios: `step` called repeatedly on an evolving observed state.

use super::*;
use crate::observed::{Observed, ObservedDeployment, ObservedService, ObservedTask};
use crate::record::RollingPhase;
use crate::record::{AppKey, AppliedState};
use crate::spec::{load_snapshot, DesiredApp, MemTree, RenderContext};
use crate::strategy::{self, Desired};

fn app(image: &str, depdef: &str) -> DesiredApp {
    let tree = MemTree::new()
        .with("svc/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "desiredCount": 2}"#)
        .with(
            "svc/web_taskdef.json",
            &format!(r#"{{"family": "web", "containerDefinitions": [{{"name": "web", "image": "{image}", "memory": 128}}]}}"#),
        )
        .with("svc/web_depdef.json", depdef);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    snap.apps["svc/web"].clone().expect("valid")
}

fn key() -> AppKey {
    AppKey { repo: "repo".into(), branch: "main".into(), prefix: "svc/web".into() }
}

struct Step<'a> {
    desired: Desired<'a>,
    applied: &'a AppliedState,
    record: Option<&'a DeploymentRecord>,
    observed: &'a Observed,
    now: u64,
}

fn run(s: Step<'_>) -> Plan {
    let key = key();
    strategy::step(&input_of(&key, s))
}

/// The step's input: no command, drift off, the controller's own account, no roles.
fn input_of<'a>(key: &'a AppKey, s: Step<'a>) -> StepInput<'a> {
    StepInput {
        key,
        commit: "c0ffee",
        desired: s.desired,
        applied: s.applied,
        record: s.record,
        observed: s.observed,
        now_ms: s.now,
        new_deployment_id: "dep-1",
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

fn service(td: &str, desired: u32, deployments: Vec<(&str, u32)>) -> ObservedService {
    ObservedService {
        arn: "arn:aws:ecs:us-east-1:123456789012:service/prod/web".into(),
        status: "ACTIVE".into(),
        task_definition: Some(td.into()),
        desired_count: desired,
        deployments: deployments
            .into_iter()
            .enumerate()
            .map(|(i, (t, running))| ObservedDeployment {
                id: format!("ecs-svc/{i}"),
                status: if i == 0 { "PRIMARY".into() } else { "ACTIVE".into() },
                task_definition: t.into(),
                running_count: running,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn tasks(td: &str, status: &str, n: usize, reason: Option<&str>) -> Vec<ObservedTask> {
    (0..n)
        .map(|i| ObservedTask {
            arn: format!("arn:aws:ecs:us-east-1:1:task/prod/{td}-{status}-{i}"),
            task_definition: td.into(),
            last_status: status.into(),
            desired_status: if status == "STOPPED" { "STOPPED".into() } else { "RUNNING".into() },
            stopped_reason: reason.map(Into::into),
            ..Default::default()
        })
        .collect()
}

const TD1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1";
const TD2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2";

fn applied_v1(a: &DesiredApp) -> AppliedState {
    AppliedState {
        fingerprint: Some("old".into()),
        task_definition: Some(TD1.into()),
        owned: true,
        identity: Some(a.identity.clone()),
        ..Default::default()
    }
}

#[test]
fn rolling_update_goes_register_apply_stabilize_succeed() {
    let a = app("nginx:2", "{}");
    let applied = applied_v1(&a);
    let mut obs = Observed { service: Some(service(TD1, 2, vec![(TD1, 2)])), ..Default::default() };

    // 1. start: a record in EcsRegister, nothing done yet
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 });
    let rec = p.next_record.expect("record");
    assert_eq!(rec.phase, Phase::Rolling(RollingPhase::Register));
    assert_eq!(rec.previous_task_definition.as_deref(), Some(TD1));
    assert!(p.actions.is_empty(), "persist before acting");

    // 2. register with the deployment tag
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 1 });
    let Action::EcsRegisterTaskDefinition { body } = &p.actions[0] else { panic!("{p:?}") };
    assert!(body["tags"].as_array().unwrap().iter().any(|t| t["key"] == TAG_DEPLOYMENT && t["value"] == "dep-1"));
    assert!(p.next_record.is_none());

    // 3. replay after a crash: the registration is found by its tag, not repeated
    obs.registered_task_definition = Some(TD2.into());
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 2 });
    assert!(p.actions.is_empty());
    let rec = p.next_record.unwrap();
    assert_eq!(rec.phase, Phase::Rolling(RollingPhase::Apply { task_definition: TD2.into() }));

    // 4. apply: update the service to TD2 (absolute target)
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 3 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("{p:?}") };
    assert_eq!(body["taskDefinition"], TD2);
    assert_eq!(body["service"], "web");
    assert_eq!(body["desiredCount"], 2);

    // 5. the service runs TD2 → stabilize with the default 300 s budget
    obs.service = Some(service(TD2, 2, vec![(TD2, 0), (TD1, 2)]));
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 4 });
    let rec = p.next_record.unwrap();
    assert_eq!(rec.phase, Phase::Rolling(RollingPhase::Stabilize { task_definition: TD2.into(), deadline_ms: 4 + 300_000 }));

    // 6. half-way: keeps waiting at the poll interval
    obs.tasks = [tasks(TD2, "RUNNING", 1, None), tasks(TD1, "RUNNING", 1, None)].concat();
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 30_000 });
    assert_eq!(p.requeue_after, Duration::from_secs(30));
    assert!(p.finished.is_none());

    // 7. all new tasks running, old drained → succeeded, fingerprint applied, TD2 the new rollback target
    obs.service = Some(service(TD2, 2, vec![(TD2, 2), (TD1, 0)]));
    obs.tasks = tasks(TD2, "RUNNING", 2, None);
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 60_000 });
    let (done, completion) = p.finished.unwrap();
    assert_eq!(done.outcome, Some(Outcome::Succeeded));
    assert_eq!(
        completion,
        Completion::Applied { fingerprint: a.fingerprint.clone(), commit: "c0ffee".into(), task_definition: Some(TD2.into()) }
    );
}

#[test]
fn first_deployment_creates_the_service_with_a_client_token_and_tags() {
    let a = app("nginx:1", "{}");
    let applied = AppliedState::default();
    let obs = Observed { registered_task_definition: None, ..Default::default() };
    let rec = run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    let mut rec = rec;
    rec.enter(Phase::Rolling(RollingPhase::Apply { task_definition: TD1.into() }), 1);
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 2 });
    let Action::EcsCreateService { body } = &p.actions[0] else { panic!("{p:?}") };
    assert_eq!(body["clientToken"], crate::token::client_token("dep-1", "create-service"));
    assert_eq!(body["taskDefinition"], TD1);
    assert!(body["tags"].as_array().unwrap().iter().any(|t| t["key"] == TAG_APP && t["value"] == "main:svc/web"));
    assert!(p.take_ownership);
}

fn stabilizing(a: &DesiredApp) -> DeploymentRecord {
    let applied = applied_v1(a);
    let obs = Observed { service: Some(service(TD1, 2, vec![(TD1, 2)])), ..Default::default() };
    let mut rec = run(Step { desired: Desired::Present(a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    rec.enter(Phase::Rolling(RollingPhase::Stabilize { task_definition: TD2.into(), deadline_ms: 300_000 }), 0);
    rec
}

#[test]
fn breaker_trips_and_rolls_back_to_the_previous_task_definition() {
    let a = app("nginx:fail", r#"{"gmDeploymentCircuitBreaker": {"failureThreshold": 2}}"#);
    let applied = applied_v1(&a);
    let rec = stabilizing(&a);
    let mut obs = Observed {
        service: Some(service(TD2, 2, vec![(TD2, 0), (TD1, 2)])),
        tasks: tasks(TD2, "STOPPED", 1, Some("CannotPullContainerError: pull access denied")),
        ..Default::default()
    };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 10_000 });
    assert!(p.finished.is_none() && p.actions.is_empty(), "one failure is below the threshold");
    assert!(matches!(p.next_record.unwrap().phase, Phase::Rolling(RollingPhase::Stabilize { .. })));
    obs.tasks = tasks(TD2, "STOPPED", 2, Some("CannotPullContainerError: pull access denied"));
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 20_000 });
    let rec = p.next_record.unwrap();
    assert_eq!(rec.phase, Phase::Rolling(RollingPhase::Rollback { to_task_definition: TD1.into() }));
    assert_eq!(rec.cause, Some(FailureCause::CircuitBreakerTripped { failed_tasks: 2, threshold: 2 }));
    assert!(rec.evidence.iter().any(|e| e.contains("image pull failure")), "{:?}", rec.evidence);
    assert!(rec.evidence.iter().any(|e| e.contains("CannotPullContainerError")));

    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 20_001 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("{p:?}") };
    assert_eq!(body["taskDefinition"], TD1);

    obs.service = Some(service(TD1, 2, vec![(TD1, 0), (TD2, 0)]));
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 20_002 });
    let rec = p.next_record.unwrap();
    assert!(matches!(rec.phase, Phase::Rolling(RollingPhase::RollbackStabilize { .. })));

    obs.service = Some(service(TD1, 2, vec![(TD1, 2), (TD2, 0)]));
    obs.tasks = tasks(TD1, "RUNNING", 2, None);
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 40_000 });
    let (done, completion) = p.finished.unwrap();
    assert_eq!(done.outcome, Some(Outcome::RolledBack));
    assert_eq!(completion, Completion::Failed { fingerprint: a.fingerprint.clone() });
}

#[test]
fn stability_timeout_rolls_back() {
    let a = app("nginx:slow", "{}");
    let applied = applied_v1(&a);
    let rec = stabilizing(&a);
    let obs =
        Observed { service: Some(service(TD2, 2, vec![(TD2, 1), (TD1, 1)])), tasks: tasks(TD2, "RUNNING", 1, None), ..Default::default() };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 300_000 });
    let rec = p.next_record.unwrap();
    assert!(matches!(rec.cause, Some(FailureCause::StabilityTimeout { waited_secs: 300 })), "{:?}", rec.cause);
    assert_eq!(rec.phase, Phase::Rolling(RollingPhase::Rollback { to_task_definition: TD1.into() }));
    assert!(rec.evidence[0].contains("1/2 tasks"));
}

#[test]
fn without_rollback_or_previous_revision_the_deployment_fails_in_place() {
    let a = app("nginx:fail", r#"{"gmDeploymentCircuitBreaker": {"failureThreshold": 1, "rollback": false}}"#);
    let applied = applied_v1(&a);
    let rec = stabilizing(&a);
    let obs = Observed {
        service: Some(service(TD2, 2, vec![(TD2, 0)])),
        tasks: tasks(TD2, "STOPPED", 1, Some("Essential container in task exited")),
        ..Default::default()
    };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 1 });
    let (done, completion) = p.finished.unwrap();
    assert_eq!(done.outcome, Some(Outcome::Failed));
    assert!(p.actions.is_empty());
    assert_eq!(completion, Completion::Failed { fingerprint: a.fingerprint.clone() });

    let b = app("nginx:fail", r#"{"gmDeploymentCircuitBreaker": {"failureThreshold": 1}}"#);
    let mut rec = stabilizing(&b);
    rec.previous_task_definition = None;
    let p = run(Step { desired: Desired::Present(&b), applied: &AppliedState::default(), record: Some(&rec), observed: &obs, now: 1 });
    assert_eq!(p.finished.unwrap().0.outcome, Some(Outcome::Failed));
}

#[test]
fn a_newer_head_supersedes_and_a_failed_fingerprint_is_not_retried() {
    let a = app("nginx:2", "{}");
    let rec = stabilizing(&a);
    let b = app("nginx:3", "{}");
    let mut applied = applied_v1(&a);
    let mut svc = service(TD2, 2, vec![(TD2, 1)]);
    svc.tags.insert(TAG_APP.into(), "main:svc/web".into());
    let obs = Observed { service: Some(svc), ..Default::default() };
    let p = run(Step { desired: Desired::Present(&b), applied: &applied, record: Some(&rec), observed: &obs, now: 5 });
    let (old, completion) = p.finished.unwrap();
    assert_eq!(old.outcome, Some(Outcome::Superseded));
    assert_eq!(completion, Completion::Nothing);
    let new = p.next_record.unwrap();
    assert_eq!((new.fingerprint.as_str(), &new.phase), (b.fingerprint.as_str(), &Phase::Rolling(RollingPhase::Register)));
    assert_eq!(new.previous_task_definition.as_deref(), Some(TD1), "rollback target stays the last good one");

    applied.failed.insert(b.fingerprint.clone());
    let p = run(Step { desired: Desired::Present(&b), applied: &applied, record: None, observed: &obs, now: 6 });
    assert!(p.next_record.is_none() && p.actions.is_empty(), "quarantined");
}

#[test]
fn delete_scales_to_zero_then_deletes_and_refuses_what_it_does_not_own() {
    let a = app("nginx:1", "{}");
    let applied = applied_v1(&a);
    let mut obs = Observed { service: Some(service(TD1, 2, vec![(TD1, 2)])), ..Default::default() };
    let rec = run(Step { desired: Desired::Deleted, applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    assert_eq!(rec.phase, Phase::Rolling(RollingPhase::DeleteService));
    let p = run(Step { desired: Desired::Deleted, applied: &applied, record: Some(&rec), observed: &obs, now: 1 });
    assert_eq!(p.actions.len(), 2);
    assert!(matches!(&p.actions[0], Action::EcsUpdateService { body } if body["desiredCount"] == 0));
    assert!(matches!(&p.actions[1], Action::EcsDeleteService { service, .. } if service == "web"));
    obs.service.as_mut().unwrap().status = "INACTIVE".into();
    let p = run(Step { desired: Desired::Deleted, applied: &applied, record: Some(&rec), observed: &obs, now: 2 });
    assert_eq!(p.finished.unwrap().1, Completion::Removed);

    let foreign = AppliedState { owned: false, ..applied.clone() };
    obs.service.as_mut().unwrap().status = "ACTIVE".into();
    let p = run(Step { desired: Desired::Deleted, applied: &foreign, record: Some(&rec), observed: &obs, now: 3 });
    assert!(p.actions.is_empty());
    assert_eq!(p.finished.unwrap().0.cause, Some(FailureCause::NotOwned));

    let held = run(Step { desired: Desired::DeleteHeld, applied: &applied, record: None, observed: &obs, now: 4 });
    assert!(held.next_record.is_none() && held.actions.is_empty());
}

#[test]
fn a_moved_app_retags_its_service() {
    let a = app("nginx:1", "{}");
    let applied = AppliedState { fingerprint: Some(a.fingerprint.clone()), ..applied_v1(&a) };
    let mut svc = service(TD1, 2, vec![(TD1, 2)]);
    svc.tags.insert(TAG_APP.into(), "main:old/place".into());
    let obs = Observed { service: Some(svc), ..Default::default() };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 });
    let Action::EcsTagResource { tags, .. } = &p.actions[0] else { panic!("{p:?}") };
    assert!(tags.contains(&(TAG_APP.to_string(), "main:svc/web".to_string())));
}

#[test]
fn an_update_leaves_an_autoscaled_count_alone_unless_the_file_changed_it() {
    let a = app("nginx:2", "{}");
    let obs = Observed { service: Some(service(TD1, 5, vec![(TD1, 5)])), ..Default::default() };
    let applied = AppliedState { desired_count: Some(2), ..applied_v1(&a) };
    let mut rec = run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    rec.enter(Phase::Rolling(RollingPhase::Apply { task_definition: TD2.into() }), 1);
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 2 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("{p:?}") };
    assert_eq!(body["taskDefinition"], TD2);
    assert!(body.get("desiredCount").is_none(), "the file still says 2, as last applied: autoscaling's 5 stays: {body}");

    let changed = AppliedState { desired_count: Some(3), ..applied.clone() };
    let p = run(Step { desired: Desired::Present(&a), applied: &changed, record: Some(&rec), observed: &obs, now: 2 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("{p:?}") };
    assert_eq!(body["desiredCount"], 2, "the file changed the count (3 → 2): it is sent");
}

mod level_triggered;

const PRIMARY_TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-a/1";
const ALTERNATE_TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-b/2";
const PROD_RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/9/80/1";

/// A native LINEAR app with `analysis` on its target groups.
fn native_app_with_analysis() -> DesiredApp {
    let svc = format!(
        r#"{{"serviceName": "web", "cluster": "prod", "desiredCount": 2,
            "deploymentConfiguration": {{"strategy": "LINEAR", "bakeTimeInMinutes": 1, "linearConfiguration": {{"stepPercent": 25, "stepBakeTimeInMinutes": 1}}}},
            "loadBalancers": [{{"targetGroupArn": "{PRIMARY_TG}", "containerName": "web", "containerPort": 80,
              "advancedConfiguration": {{"alternateTargetGroupArn": "{ALTERNATE_TG}", "productionListenerRule": "{PROD_RULE}", "roleArn": "arn:aws:iam::123456789012:role/ecs-lb"}}}}]}}"#
    );
    let depdef = r#"{"analysis": {"interval": 10, "checks": [{"name": "latency", "unit": "ms", "compare": {"tolerance": 25},
        "metric": {"namespace": "Web", "metricName": "Latency", "dimensions": {"TargetGroup": "{{ green }}"}, "period": 10}}]}}"#;
    let tree = MemTree::new()
        .with("svc/web_svcdef.json", &svc)
        .with("svc/web_taskdef.json", r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:2", "memory": 128}]}"#)
        .with("svc/web_depdef.json", depdef);
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    let app = snap.apps["svc/web"].clone().expect("valid");
    assert!(app.warnings.is_empty(), "{:?}", app.warnings);
    app
}

fn paused_at(hook: &str, weight: f64) -> crate::observed::ObservedNativeDeployment {
    crate::observed::ObservedNativeDeployment {
        arn: "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/web/1".into(),
        created_at_ms: 1,
        status: "IN_PROGRESS".into(),
        lifecycle_stage: Some(crate::observed::NativeLifecycleStage::PreProductionTrafficShift),
        production_weight: Some(weight),
        hooks: vec![crate::observed::ObservedNativeHook {
            id: hook.into(),
            target_type: "PAUSE".into(),
            target_arn: None,
            status: crate::observed::NativeHookStatus::AwaitingAction,
        }],
        ..Default::default()
    }
}

fn rule_at(green_weight: u32) -> crate::observed::ObservedElb {
    crate::observed::ObservedElb {
        missing_target_groups: vec![],
        forwards: vec![crate::observed::ObservedForward {
            kind: crate::observed::ForwardKind::Rule,
            arn: PROD_RULE.into(),
            targets: vec![(PRIMARY_TG.into(), 100 - green_weight), (ALTERNATE_TG.into(), green_weight)],
        }],
        healthy_targets: Default::default(),
    }
}

#[test]
fn ecs_linear_with_analysis_pauses_before_each_production_step_and_the_analysis_answers_it() {
    let a = native_app_with_analysis();
    let crate::spec::AppSpec::Ecs(ecs) = &a.spec else { panic!("ecs") };
    let hooks = &ecs.svcdef["deploymentConfiguration"]["lifecycleHooks"];
    assert_eq!(hooks[0]["targetType"], "PAUSE");
    assert_eq!(hooks[0]["lifecycleStages"][0], "PRE_PRODUCTION_TRAFFIC_SHIFT", "gitmoxi adds the pause: {hooks}");
    assert_eq!(hooks[0]["timeoutConfiguration"]["action"], "ROLLBACK", "gitmoxi gone: ECS rolls back");
    let applied = applied_v1(&a);
    let mut obs = Observed { service: Some(service(TD1, 2, vec![(TD1, 2)])), ..Default::default() };
    let mut rec =
        run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.expect("record");
    rec.phase = Phase::Rolling(RollingPhase::Stabilize { task_definition: TD2.into(), deadline_ms: 10_000_000 });
    obs.service = Some(service(TD2, 2, vec![(TD2, 0), (TD1, 2)]));
    // before the first step green has no production traffic: ECS goes on at once
    obs.native_deployment = Some(paused_at("h1", 0.0));
    obs.elb = Some(rule_at(0));
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 1_000 });
    assert_eq!(
        p.actions,
        vec![Action::EcsContinueServiceDeployment { arn: paused_at("h1", 0.0).arn, hook_id: "h1".into(), rollback: false }]
    );
    rec = p.next_record.expect("the answer is kept");
    assert_eq!(rec.approvals[0].answer.via, crate::commands::AnswerChannel::Analysis);
    // before the second step, 25 % on green: the analysis takes the pause
    obs.native_deployment = Some(paused_at("h2", 25.0));
    obs.elb = Some(rule_at(25));
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 70_000 });
    assert!(p.actions.is_empty());
    rec = p.next_record.expect("pending");
    let sides = rec.analysis.as_ref().and_then(|x| x.sides.clone()).expect("sides from the rule's weights");
    assert_eq!((sides.green.as_str(), sides.blue.as_str()), ("targetgroup/web-b/2", "targetgroup/web-a/1"));
    let key = key();
    let needs = match strategy::look(&input_of(
        &key,
        Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 70_001 },
    )) {
        strategy::Look::Observe(needs) => needs,
        strategy::Look::Skip(_) => panic!("observes"),
    };
    assert_eq!(needs.target_groups, vec![PRIMARY_TG.to_string(), ALTERNATE_TG.to_string()]);
    let req = needs.metrics.expect("the analysis's request");
    assert_eq!(req.queries.len(), 2);
    // green is slow: ROLLBACK, with the check's numbers as the cause
    obs.metrics = Some(
        [
            ("c0g".to_string(), (0..10).map(|i| 400.0 + f64::from(i)).collect()),
            ("c0b".to_string(), (0..10).map(|i| 180.0 + f64::from(i)).collect()),
        ]
        .into_iter()
        .collect(),
    );
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &obs, now: 70_001 });
    assert_eq!(
        p.actions,
        vec![Action::EcsContinueServiceDeployment { arn: paused_at("h2", 25.0).arn, hook_id: "h2".into(), rollback: true }]
    );
    let rec = p.next_record.expect("the verdict is kept");
    assert!(matches!(&rec.cause, Some(FailureCause::AnalysisFailed { check, .. }) if check == "latency"), "{:?}", rec.cause);
    assert_eq!(rec.analysis.as_ref().map(|x| x.runs.len()), Some(1));
}
