//! Issue 23: the rolling strategy decides from the one comparison (`crate::compare`): svcdef
//! edits reach ECS without a task definition change, success needs AWS to hold the files'
//! fields, a rollback restores every field of the last good service and only ever goes back to
//! what was successfully applied.

use super::*;
use serde_json::json;

/// A svcdef-only app: no taskdef file, `taskDefinition` names a family:revision.
fn svcdef_only(svcdef_extra: &str) -> DesiredApp {
    let svcdef = format!(r#"{{"serviceName": "web", "cluster": "prod", "desiredCount": 2, "taskDefinition": "web:1"{svcdef_extra}}}"#);
    let tree = MemTree::new().with("svc/web_svcdef.json", &svcdef).with("svc/web_depdef.json", "{}");
    load_snapshot(&tree, &RenderContext::new("us-east-1".into())).apps["svc/web"].clone().expect("valid")
}

fn with_settings(mut s: ObservedService, settings: serde_json::Value) -> ObservedService {
    s.settings = Some(settings);
    s
}

fn ecs_of(a: &DesiredApp) -> &EcsApp {
    match &a.spec {
        crate::spec::AppSpec::Ecs(e) => e,
        crate::spec::AppSpec::Lambda(_) => panic!("an ECS app"),
    }
}

#[test]
fn a_svcdef_edit_without_a_new_task_definition_sends_update_service() {
    let a = svcdef_only(
        r#", "enableExecuteCommand": true, "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-2"]}}"#,
    );
    let applied = applied_v1(&a);
    let runs = with_settings(
        service(TD1, 2, vec![(TD1, 2)]),
        json!({"enableExecuteCommand": false, "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"]}}}),
    );
    let obs = Observed { service: Some(runs.clone()), resolved_task_definition: Some(TD1.into()), ..Default::default() };
    let started = run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&started), observed: &obs, now: 1 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("an UpdateService: {p:?}") };
    assert_eq!(body["enableExecuteCommand"], true);
    assert_eq!(body["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"], json!(["sg-2"]));
    let mut sent: Vec<&str> = body.as_object().expect("an object").keys().map(String::as_str).collect();
    sent.sort_unstable();
    assert_eq!(sent, ["cluster", "enableExecuteCommand", "networkConfiguration", "service"], "exactly the fields that differ");
    let next = p.next_record.expect("the record moves to Stabilize before the update is sent");
    assert!(matches!(next.phase, Phase::Rolling(RollingPhase::Stabilize { .. })));
    assert!(next.timeline.iter().any(|e| e.message.contains("/enableExecuteCommand")), "the timeline names the fields");

    // the service is stable but AWS still holds the old security group: no success
    let stuck = Observed { service: Some(runs), tasks: tasks(TD1, "RUNNING", 2, None), ..Default::default() };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&next), observed: &stuck, now: 2 });
    let failed = p.next_record.or(p.finished.map(|(r, _)| r)).expect("the deployment fails");
    let Some(FailureCause::AwsDiffers { fields }) = &failed.cause else { panic!("cause {:?}", failed.cause) };
    assert!(fields.iter().any(|f| f.contains("/networkConfiguration/awsvpcConfiguration/securityGroups")), "{fields:?}");
    assert!(fields.iter().any(|f| f.contains("[\"sg-1\"]") && f.contains("[\"sg-2\"]")), "both values named: {fields:?}");

    // once AWS holds the file's fields the same step succeeds
    let right = with_settings(
        service(TD1, 2, vec![(TD1, 2)]),
        json!({"enableExecuteCommand": true, "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-2"]}}}),
    );
    let ok = Observed { service: Some(right), tasks: tasks(TD1, "RUNNING", 2, None), ..Default::default() };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&next), observed: &ok, now: 3 });
    assert_eq!(p.finished.expect("finished").0.outcome, Some(Outcome::Succeeded));
}

#[test]
fn a_forced_redeploy_of_a_svcdef_only_app_forces_a_new_ecs_deployment() {
    let a = svcdef_only("");
    let applied = applied_v1(&a);
    let obs = Observed {
        service: Some(with_settings(service(TD1, 2, vec![(TD1, 2)]), json!({}))),
        resolved_task_definition: Some(TD1.into()),
        ..Default::default()
    };
    let mut started =
        run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    started.forced = true;
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&started), observed: &obs, now: 1 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("an UpdateService: {p:?}") };
    assert_eq!(body["forceNewDeployment"], true);
    assert!(body.get("taskDefinition").is_none() && body.get("desiredCount").is_none(), "nothing that does not differ: {body}");
}

#[test]
fn a_capacity_provider_change_is_sent_with_force_new_deployment() {
    let a = svcdef_only(r#", "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]"#);
    let applied = applied_v1(&a);
    let obs = Observed {
        service: Some(with_settings(service(TD1, 2, vec![(TD1, 2)]), json!({"launchType": "FARGATE"}))),
        resolved_task_definition: Some(TD1.into()),
        ..Default::default()
    };
    let started = run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&started), observed: &obs, now: 1 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("an UpdateService: {p:?}") };
    assert_eq!(body["forceNewDeployment"], true, "ECS refuses a strategy change without it");
    assert_eq!(body["capacityProviderStrategy"][0]["capacityProvider"], "FARGATE_SPOT");
}

#[test]
fn a_rollback_restores_every_field_of_the_last_good_service() {
    let good = app("nginx:1", "{}");
    let bad_tree = MemTree::new()
        .with("svc/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "desiredCount": 2, "enableExecuteCommand": true, "healthCheckGracePeriodSeconds": 99}"#)
        .with("svc/web_taskdef.json", r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx:fail", "memory": 128}]}"#)
        .with("svc/web_depdef.json", r#"{"gmDeploymentCircuitBreaker": {"failureThreshold": 1}}"#);
    let bad = load_snapshot(&bad_tree, &RenderContext::new("us-east-1".into())).apps["svc/web"].clone().expect("valid");
    let applied = AppliedState { service: Some(ecs_of(&good).svcdef.clone()), ..applied_v1(&good) };
    let obs = Observed { service: Some(service(TD1, 2, vec![(TD1, 2)])), ..Default::default() };
    let mut rec =
        run(Step { desired: Desired::Present(&bad), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    assert_eq!(rec.previous_service.as_ref(), Some(&ecs_of(&good).svcdef));
    rec.enter(Phase::Rolling(RollingPhase::Rollback { to_task_definition: TD1.into() }), 0);
    let on_bad = Observed { service: Some(service(TD2, 2, vec![(TD2, 0)])), ..Default::default() };
    let p = run(Step { desired: Desired::Present(&bad), applied: &applied, record: Some(&rec), observed: &on_bad, now: 1 });
    let Action::EcsUpdateService { body } = &p.actions[0] else { panic!("an UpdateService: {p:?}") };
    assert_eq!(body["taskDefinition"], TD1);
    assert_eq!(body["enableExecuteCommand"], false, "the failed commit's field is cleared");
    assert_eq!(body["healthCheckGracePeriodSeconds"], 0);

    // back on TD1 but AWS still holds the failed commit's field: not "rolled back"
    rec.enter(Phase::Rolling(RollingPhase::RollbackStabilize { to_task_definition: TD1.into(), deadline_ms: 100_000 }), 2);
    let left = Observed {
        service: Some(with_settings(service(TD1, 2, vec![(TD1, 2)]), json!({"enableExecuteCommand": true}))),
        tasks: tasks(TD1, "RUNNING", 2, None),
        ..Default::default()
    };
    let good_again = AppliedState { service: Some(json!({"enableExecuteCommand": false})), ..applied.clone() };
    rec.previous_service = good_again.service.clone();
    let p = run(Step { desired: Desired::Present(&bad), applied: &good_again, record: Some(&rec), observed: &left, now: 3 });
    let (done, _) = p.finished.expect("finished");
    assert_eq!(done.outcome, Some(Outcome::Failed), "{:?}", done.timeline);
}

#[test]
fn a_rollback_goes_only_to_a_successfully_applied_revision() {
    // the first deployment failed: nothing was ever applied; the service runs that failed revision
    let a = app("nginx:fail", r#"{"gmDeploymentCircuitBreaker": {"failureThreshold": 1}}"#);
    let never_applied =
        AppliedState { failed: ["first".to_string()].into(), owned: true, identity: Some(a.identity.clone()), ..Default::default() };
    let obs = Observed { service: Some(service(TD1, 2, vec![(TD1, 0)])), ..Default::default() };
    let rec =
        run(Step { desired: Desired::Present(&a), applied: &never_applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    assert_eq!(rec.previous_task_definition, None, "what the service runs is no rollback target");
    let mut rec = rec;
    rec.enter(Phase::Rolling(RollingPhase::Stabilize { task_definition: TD2.into(), deadline_ms: 300_000 }), 0);
    let failing = Observed {
        service: Some(service(TD2, 2, vec![(TD2, 0), (TD1, 0)])),
        tasks: tasks(TD2, "STOPPED", 1, Some("Essential container in task exited")),
        ..Default::default()
    };
    let p = run(Step { desired: Desired::Present(&a), applied: &never_applied, record: Some(&rec), observed: &failing, now: 1 });
    assert!(p.actions.is_empty(), "nothing is touched");
    let (done, _) = p.finished.expect("finished");
    assert_eq!(done.outcome, Some(Outcome::Failed));
    assert!(done.timeline.iter().any(|e| e.message.contains("no successfully applied task definition")), "{:?}", done.timeline);
}

#[test]
fn a_delete_that_arrived_mid_update_is_acted_on_as_soon_as_the_update_ends() {
    let a = app("nginx:2", "{}");
    let applied = applied_v1(&a);
    let rec = stabilizing(&a);
    let stable = Observed { service: Some(service(TD2, 2, vec![(TD2, 2)])), tasks: tasks(TD2, "RUNNING", 2, None), ..Default::default() };
    // the head deleted the app while the update stabilized: the update ends, the next pass is now
    let p = run(Step { desired: Desired::Deleted, applied: &applied, record: Some(&rec), observed: &stable, now: 1 });
    assert_eq!(p.finished.as_ref().expect("the update ends").0.outcome, Some(Outcome::Succeeded));
    assert_eq!(p.requeue_after, Duration::ZERO, "the delete is looked at at once, not at the steady cadence");
    // the same ending with the head still wanting it: the steady cadence
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &stable, now: 1 });
    assert!(p.requeue_after > Duration::ZERO);
    // a newer fingerprint in the head when the deployment ends (it was failed before): at once
    let newer = app("nginx:3", "{}");
    let p = run(Step { desired: Desired::Present(&newer), applied: &applied, record: Some(&rec), observed: &stable, now: 1 });
    assert!(p.finished.is_some() || p.next_record.is_some());
}

fn alarm(name: &str, state: Option<&str>) -> crate::observed::ObservedAlarm {
    crate::observed::ObservedAlarm { name: name.into(), state: state.map(Into::into) }
}

#[test]
fn a_missing_alarm_fails_the_deployment_before_anything_changes() {
    let a = app("nginx:2", r#"{"alarms": {"alarmNames": ["web-5xx", "web-p99"]}}"#);
    let applied = applied_v1(&a);
    let obs = Observed { service: Some(service(TD1, 2, vec![(TD1, 2)])), ..Default::default() };
    let started = run(Step { desired: Desired::Present(&a), applied: &applied, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    let needs = strategy::observe_needs(&Desired::Present(&a), &applied, Some(&started));
    assert_eq!(needs.alarms, vec!["web-5xx".to_string(), "web-p99".to_string()], "the alarms are looked up before the first mutation");
    let looked = Observed { alarms: vec![alarm("web-5xx", Some("OK")), alarm("web-p99", None)], ..obs.clone() };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&started), observed: &looked, now: 1 });
    assert!(p.actions.is_empty(), "no RegisterTaskDefinition: {p:?}");
    let (done, _) = p.finished.expect("failed");
    assert_eq!(done.cause, Some(FailureCause::ValidationError));
    assert!(done.evidence.iter().any(|e| e.contains("web-p99") && e.contains("does not exist")), "{:?}", done.evidence);
}

#[test]
fn a_rolling_update_watches_its_alarms_and_alarms_rollback_false_only_records_them() {
    let a = app("nginx:2", r#"{"alarms": {"alarmNames": ["web-5xx"]}}"#);
    let applied = applied_v1(&a);
    let rec = stabilizing(&a);
    assert_eq!(strategy::observe_needs(&Desired::Present(&a), &applied, Some(&rec)).alarms, vec!["web-5xx".to_string()]);
    let firing = Observed {
        service: Some(service(TD2, 2, vec![(TD2, 1), (TD1, 1)])),
        tasks: tasks(TD2, "RUNNING", 1, None),
        alarms: vec![alarm("web-5xx", Some("ALARM"))],
        ..Default::default()
    };
    let p = run(Step { desired: Desired::Present(&a), applied: &applied, record: Some(&rec), observed: &firing, now: 1 });
    let next = p.next_record.expect("rolling back");
    assert!(matches!(next.cause, Some(FailureCause::AlarmFired { .. })), "{:?}", next.cause);
    assert_eq!(next.phase, Phase::Rolling(RollingPhase::Rollback { to_task_definition: TD1.into() }));

    let b = app("nginx:2", r#"{"alarms": {"alarmNames": ["web-5xx"], "rollback": false}}"#);
    let rec = stabilizing(&b);
    let p = run(Step { desired: Desired::Present(&b), applied: &applied, record: Some(&rec), observed: &firing, now: 1 });
    let next = p.next_record.expect("recorded");
    assert_eq!(next.cause, None, "no rollback");
    assert!(next.timeline.iter().any(|e| e.message.contains("not rolled back")), "{:?}", next.timeline);

    let c = app("nginx:2", r#"{"alarms": {"alarmNames": ["web-5xx"], "enable": false}}"#);
    let rec = stabilizing(&c);
    assert!(strategy::observe_needs(&Desired::Present(&c), &applied, Some(&rec)).alarms.is_empty(), "enable false: not watched");
}

/// Issue 27, item 1: a service another repository's app owns (its gitmoxi tags say so) is never
/// updated or deleted by this app, whatever this app's store says.
#[test]
fn a_service_owned_by_another_repository_is_neither_updated_nor_deleted() {
    let a = app("nginx:2", "{}");
    let mut theirs = service(TD1, 2, vec![(TD1, 2)]);
    theirs.tags = [(TAG_APP.to_string(), "main:team-a/web".to_string()), (TAG_REPO.to_string(), "team-a".to_string())].into();
    let obs = Observed { service: Some(theirs), registered_task_definition: Some(TD2.into()), ..Default::default() };
    let newcomer = AppliedState::default();
    let started =
        run(Step { desired: Desired::Present(&a), applied: &newcomer, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    let p = run(Step { desired: Desired::Present(&a), applied: &newcomer, record: Some(&started), observed: &obs, now: 1 });
    assert!(p.actions.is_empty(), "nothing registered or updated: {p:?}");
    let (done, _) = p.finished.expect("refused");
    assert_eq!(done.cause, Some(FailureCause::NotOwned));
    assert!(done.evidence.iter().any(|e| e.contains("repository team-a")), "{:?}", done.evidence);

    // even a store that claims ownership does not delete what the tags give to another repository
    let claims_it = AppliedState { owned: true, ..applied_v1(&a) };
    let mut delete = started.clone();
    delete.operation = crate::record::Operation::Delete;
    delete.enter(Phase::Rolling(RollingPhase::DeleteService), 2);
    let p = run(Step { desired: Desired::Deleted, applied: &claims_it, record: Some(&delete), observed: &obs, now: 3 });
    assert!(p.actions.is_empty(), "no delete: {p:?}");
    assert_eq!(p.finished.expect("refused").0.cause, Some(FailureCause::NotOwned));
}

/// Issue 27: a service gitmoxi did not create (no gitmoxi tags) is taken over only when the
/// repository opts in (`adopt_untagged`).
#[test]
fn an_untagged_service_is_adopted_only_by_a_repository_that_opts_in() {
    let a = app("nginx:2", "{}");
    let obs =
        Observed { service: Some(service(TD1, 2, vec![(TD1, 2)])), registered_task_definition: Some(TD2.into()), ..Default::default() };
    let never_owned = AppliedState::default();
    let started =
        run(Step { desired: Desired::Present(&a), applied: &never_owned, record: None, observed: &obs, now: 0 }).next_record.unwrap();
    let p = run(Step { desired: Desired::Present(&a), applied: &never_owned, record: Some(&started), observed: &obs, now: 1 });
    assert!(p.actions.is_empty(), "{p:?}");
    let (done, _) = p.finished.expect("refused");
    assert_eq!(done.cause, Some(FailureCause::NotOwned));
    assert!(done.evidence.iter().any(|e| e.contains("adopt_untagged")), "the fix is named: {:?}", done.evidence);
    // the repository opts in: the deployment goes on
    let key = key();
    let opting = Step { desired: Desired::Present(&a), applied: &never_owned, record: Some(&started), observed: &obs, now: 1 };
    let opted = strategy::step(&StepInput { adopt_untagged: true, ..input_of(&key, opting) });
    assert!(opted.finished.is_none(), "{opted:?}");
}

/// Issue 23: adoption decides from the one comparison. A fresh store finds this app's service
/// running the head's task definition; it is adopted only when the service also holds every
/// svcdef field, otherwise it deploys (and the update names what differs).
#[test]
fn adoption_needs_the_service_to_hold_every_svcdef_field() {
    let a = svcdef_only(r#", "enableExecuteCommand": true"#);
    let fresh = AppliedState::default();
    let key = key();
    let observe = |settings: serde_json::Value| {
        let mut s = with_settings(service(TD1, 2, vec![(TD1, 2)]), settings);
        s.running_count = 2;
        s.tags.insert(TAG_APP.into(), key.tag_value());
        Observed {
            service: Some(s),
            resolved_task_definition: Some(TD1.into()),
            running_definition_tags: Some([(TAG_FINGERPRINT.to_string(), a.fingerprint.clone())].into_iter().collect()),
            ..Default::default()
        }
    };
    let holds = observe(json!({"enableExecuteCommand": true}));
    let p = run(Step { desired: Desired::Present(&a), applied: &fresh, record: None, observed: &holds, now: 0 });
    let (done, _) = p.finished.expect("adopted");
    assert!(done.timeline.iter().any(|e| e.message.starts_with("adopted")), "{:?}", done.timeline);
    let differs = observe(json!({"enableExecuteCommand": false}));
    let p = run(Step { desired: Desired::Present(&a), applied: &fresh, record: None, observed: &differs, now: 0 });
    assert!(p.finished.is_none(), "a service whose fields differ is not adopted: {p:?}");
    assert!(p.next_record.is_some_and(|r| r.in_flight()), "it deploys instead");
}
