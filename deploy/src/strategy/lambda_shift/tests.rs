//! Lambda planner scenarios: each phase's plan from each observed situation.

use super::*;
use crate::observed::{Observed, ObservedAlarm, ObservedAlias, ObservedMapping};
use crate::record::LambdaPhase;
use crate::record::{AppKey, AppliedState};
use crate::spec::{load_snapshot, MemTree, RenderContext};
use crate::strategy::{self, Desired, StepInput};
use std::collections::BTreeMap;

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hello";
const ALIAS_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hello:live";
const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fn/1";
const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:jobs";

fn app(zip: &str, depdef: &str, sources: Option<&str>) -> DesiredApp {
    app_with(zip, "", depdef, sources)
}

/// The test app with more lambdadef fields (`extra`: JSON members, each followed by a comma).
fn app_with(zip: &str, extra: &str, depdef: &str, sources: Option<&str>) -> DesiredApp {
    let mut tree = MemTree::new()
        .with(
            "fn/hello_lambdadef.json",
            &format!(
                r#"{{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "app.handler", "Role": "arn:aws:iam::123456789012:role/r", {extra}
                     "Code": {{"ZipFile": "{zip}"}}}}"#
            ),
        )
        .with("fn/hello_lambdadepdef.json", depdef);
    if let Some(s) = sources {
        tree = tree.with("fn/hello_lambdaeventsourcedef.json", s);
    }
    let snap = load_snapshot(&tree, &RenderContext::new("us-east-1".into()));
    snap.apps["fn/hello"].clone().expect("valid")
}

const CANARY: &str = r#"{"alias": "live", "trafficShiftingConfig": {"type": "CANARY", "percent": 20, "waitInterval": 10}, "alarms": {"alarmNames": ["errors"]}}"#;

fn run(desired: &DesiredApp, applied: &AppliedState, record: Option<&DeploymentRecord>, observed: &Observed, now: u64) -> Plan {
    run_commit(desired, applied, record, observed, now, "c0ffee")
}

fn run_commit(
    desired: &DesiredApp,
    applied: &AppliedState,
    record: Option<&DeploymentRecord>,
    observed: &Observed,
    now: u64,
    commit: &str,
) -> Plan {
    let key = key();
    strategy::step(&input(desired, applied, record, observed, now, commit, &key))
}

fn key() -> AppKey {
    AppKey { repo: "repo".into(), branch: "main".into(), prefix: "fn/hello".into() }
}

/// The step input of the test app at `now`.
fn input<'a>(
    desired: &'a DesiredApp,
    applied: &'a AppliedState,
    record: Option<&'a DeploymentRecord>,
    observed: &'a Observed,
    now: u64,
    commit: &'a str,
    key: &'a AppKey,
) -> StepInput<'a> {
    StepInput {
        key,
        commit,
        desired: Desired::Present(desired),
        applied,
        record,
        observed,
        now_ms: now,
        new_deployment_id: "dep-9",
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

/// What Lambda holds once the test lambdadef's configuration is applied.
fn config() -> BTreeMap<String, Value> {
    config_view(&serde_json::json!({"Runtime": "python3.12", "Handler": "app.handler", "Role": "arn:aws:iam::123456789012:role/r"}))
}

fn function(version: &str, sha: &str, revision: &str) -> ObservedFunction {
    ObservedFunction {
        arn: ARN.into(),
        version: version.into(),
        code_sha256: sha.into(),
        revision_id: revision.into(),
        state: "Active".into(),
        last_update_status: "Successful".into(),
        config: config(),
        ..Default::default()
    }
}

/// `f` still configured with the handler of an older lambdadef.
fn old_handler(mut f: ObservedFunction) -> ObservedFunction {
    f.config.insert("Handler".into(), Value::from("old.handler"));
    f
}

fn deployed(version: &str, sha: &str) -> Observed {
    Observed {
        lambda: ObservedLambda {
            function: Some(function("$LATEST", sha, "r1")),
            versions: vec![function(version, sha, "r1")],
            alias: Some(ObservedAlias { arn: ALIAS_ARN.into(), function_version: version.into(), additional: BTreeMap::new() }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn applied() -> AppliedState {
    AppliedState { fingerprint: Some("old".into()), owned: true, task_definition: Some("1".into()), ..Default::default() }
}

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

/// An update of version 1 to a new zip, up to the Ready phase of version 2.
fn to_ready(desired: &DesiredApp) -> (DeploymentRecord, Observed) {
    let mut obs = deployed("1", "old-sha");
    let mut record = run(desired, &applied(), None, &obs, 0).next_record.expect("started");
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::UpdateCode { revision_before: "r1@".into(), sent: false }));
    assert_eq!(record.previous_version.as_deref(), Some("1"));
    let plan = advance(desired, &mut record, &obs, 0);
    assert!(matches!(plan.actions.as_slice(), [Action::LambdaUpdateCode { .. }]), "{:?}", plan.actions);
    // the update lands: a new revision, in progress
    let new_sha = crate::spec::fingerprint::lambda_code_sha256("bmV3").expect("sha");
    obs.lambda.function =
        Some(ObservedFunction { last_update_status: "InProgress".into(), ..old_handler(function("$LATEST", &new_sha, "r2")) });
    assert!(advance(desired, &mut record, &obs, 1_000).actions.is_empty(), "waits while InProgress");
    obs.lambda.function = Some(old_handler(function("$LATEST", &new_sha, "r2")));
    advance(desired, &mut record, &obs, 2_000);
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::UpdateConfig { revision_before: "r2@".into(), sent: false }));
    let plan = advance(desired, &mut record, &obs, 2_000);
    assert!(matches!(plan.actions.as_slice(), [Action::LambdaUpdateConfig { .. }]), "{:?}", plan.actions);
    obs.lambda.function = Some(function("$LATEST", &new_sha, "r3"));
    advance(desired, &mut record, &obs, 3_000);
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Publish));
    let plan = advance(desired, &mut record, &obs, 3_000);
    assert_eq!(
        plan.actions,
        vec![Action::LambdaPublishVersion {
            function: "hello".into(),
            code_sha256: new_sha.clone(),
            revision_id: "r3".into(),
            description: "gitmoxi deployment dep-9 (commit c0ffee)".into()
        }]
    );
    obs.lambda.versions.push(ObservedFunction { state: "Pending".into(), ..function("2", &new_sha, "r3") });
    advance(desired, &mut record, &obs, 3_000);
    assert!(matches!(&record.phase, Phase::Lambda(LambdaPhase::Ready { version, .. }) if version == "2"), "{:?}", record.phase);
    (record, obs)
}

#[test]
fn a_canary_moves_the_alias_weight_then_points_it_at_the_new_version() {
    let desired = app("bmV3", CANARY, None);
    let (mut record, mut obs) = to_ready(&desired);
    obs.alarms = vec![ObservedAlarm { name: "errors".into(), state: Some("OK".into()) }];
    assert!(advance(&desired, &mut record, &obs, 4_000).actions.is_empty(), "waits for Active");
    obs.lambda.versions[1].state = "Active".into();
    advance(&desired, &mut record, &obs, 5_000);
    assert!(matches!(record.phase, Phase::Lambda(LambdaPhase::Shift { step: 0, weight: 20, .. })));
    let plan = advance(&desired, &mut record, &obs, 5_000);
    assert_eq!(
        plan.actions,
        vec![Action::LambdaSetAlias {
            function: "hello".into(),
            alias: "live".into(),
            version: "1".into(),
            additional: Some(("2".into(), 0.2))
        }],
        "0.2 → {{\"2\": 0.2}} on the old version"
    );
    obs.lambda.alias.as_mut().expect("alias").additional = BTreeMap::from([("2".to_string(), 0.2)]);
    let plan = advance(&desired, &mut record, &obs, 6_000);
    assert!(plan.actions.is_empty() && plan.requeue_after <= Duration::from_secs(5), "waits, watching alarms");
    advance(&desired, &mut record, &obs, 15_001);
    assert!(matches!(record.phase, Phase::Lambda(LambdaPhase::Shift { step: 1, weight: 100, .. })));
    let plan = advance(&desired, &mut record, &obs, 15_001);
    assert_eq!(
        plan.actions,
        vec![Action::LambdaSetAlias { function: "hello".into(), alias: "live".into(), version: "2".into(), additional: None }],
        "100 %: the alias on the new version with no routing"
    );
    obs.lambda.alias = Some(ObservedAlias { arn: ALIAS_ARN.into(), function_version: "2".into(), additional: BTreeMap::new() });
    advance(&desired, &mut record, &obs, 26_000);
    assert!(matches!(record.phase, Phase::Lambda(LambdaPhase::Bake { .. })));
    advance(&desired, &mut record, &obs, 37_000);
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Wire { version: "2".into() }));
    advance(&desired, &mut record, &obs, 37_000);
    let plan = advance(&desired, &mut record, &obs, 37_000);
    let (done, completion) = plan.finished.expect("done");
    assert_eq!(done.outcome, Some(Outcome::Succeeded));
    assert_eq!(
        completion,
        Completion::Applied { fingerprint: done.fingerprint.clone(), commit: "c0ffee".into(), task_definition: Some("2".into()) }
    );
}

#[test]
fn an_alarm_during_the_canary_puts_the_alias_back_and_deletes_the_new_version() {
    let desired = app("bmV3", CANARY, None);
    let (mut record, mut obs) = to_ready(&desired);
    obs.lambda.versions[1].state = "Active".into();
    advance(&desired, &mut record, &obs, 5_000);
    obs.lambda.alias.as_mut().expect("alias").additional = BTreeMap::from([("2".to_string(), 0.2)]);
    obs.alarms = vec![ObservedAlarm { name: "errors".into(), state: Some("ALARM".into()) }];
    advance(&desired, &mut record, &obs, 6_000);
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Rollback { version: "2".into(), superseded: false }));
    assert_eq!(record.cause, Some(FailureCause::AlarmFired { alarms: vec!["errors".into()] }));
    let plan = advance(&desired, &mut record, &obs, 6_000);
    assert_eq!(
        plan.actions,
        vec![Action::LambdaSetAlias { function: "hello".into(), alias: "live".into(), version: "1".into(), additional: None }]
    );
    obs.lambda.alias.as_mut().expect("alias").additional.clear();
    let plan = advance(&desired, &mut record, &obs, 6_000);
    assert_eq!(plan.actions, vec![Action::LambdaDeleteVersion { function: "hello".into(), version: "2".into() }]);
    obs.lambda.versions.truncate(1);
    let plan = advance(&desired, &mut record, &obs, 6_000);
    assert_eq!(plan.finished.expect("done").0.outcome, Some(Outcome::RolledBack));
}

#[test]
fn a_failed_update_ends_with_its_reason_and_nothing_shifted() {
    let desired = app("bmV3", CANARY, None);
    let obs0 = deployed("1", "old-sha");
    let mut record = run(&desired, &applied(), None, &obs0, 0).next_record.expect("started");
    record.phase = Phase::Lambda(LambdaPhase::UpdateConfig { revision_before: "r1@".into(), sent: true });
    let mut obs = obs0.clone();
    obs.lambda.function = Some(ObservedFunction {
        last_update_status: "Failed".into(),
        last_update_status_reason: Some("KMS key is invalid".into()),
        ..function("$LATEST", "old-sha", "r2")
    });
    let plan = advance(&desired, &mut record, &obs, 1_000);
    assert!(plan.actions.is_empty());
    let (done, completion) = plan.finished.expect("finished");
    assert_eq!(done.outcome, Some(Outcome::Failed));
    assert!(done.timeline.last().expect("line").message.contains("KMS key is invalid"), "{:?}", done.timeline.last());
    assert!(done.timeline.last().expect("line").message.contains("nothing was shifted"));
    assert!(matches!(completion, Completion::Failed { .. }));
}

#[test]
fn a_version_that_never_becomes_active_rolls_back_after_the_readiness_budget() {
    let desired = app("bmV3", r#"{"alias": "live", "readinessCheck": {"waitInterval": 2, "maxRetries": 3}}"#, None);
    let (mut record, obs) = to_ready(&desired);
    let plan = advance(&desired, &mut record, &obs, 4_000);
    assert_eq!(plan.requeue_after, Duration::from_secs(2));
    advance(&desired, &mut record, &obs, 3_000 + 6_000);
    assert!(matches!(record.cause, Some(FailureCause::StabilityTimeout { waited_secs: 6 })), "{:?}", record.cause);
    assert!(matches!(record.phase, Phase::Lambda(LambdaPhase::Rollback { .. })));
}

#[test]
fn a_replayed_publish_finds_the_version_instead_of_publishing_a_second() {
    let desired = app("bmV3", CANARY, None);
    let mut obs = deployed("1", "old-sha");
    let sha = crate::spec::fingerprint::lambda_code_sha256("bmV3").expect("sha");
    obs.lambda.function = Some(function("$LATEST", &sha, "r3"));
    obs.lambda.versions.push(function("2", &sha, "r3"));
    let mut record = run(&desired, &applied(), None, &deployed("1", "old-sha"), 0).next_record.expect("started");
    record.phase = Phase::Lambda(LambdaPhase::Publish);
    let plan = advance(&desired, &mut record, &obs, 1_000);
    assert!(plan.actions.is_empty());
    assert!(matches!(&record.phase, Phase::Lambda(LambdaPhase::Ready { version, .. }) if version == "2"));
}

#[test]
fn unchanged_zip_code_skips_the_code_update() {
    let desired = app("bmV3", CANARY, None);
    let sha = crate::spec::fingerprint::lambda_code_sha256("bmV3").expect("sha");
    let obs = deployed("1", &sha);
    let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
    let plan = advance(&desired, &mut record, &obs, 0);
    assert!(plan.actions.is_empty());
    assert!(matches!(record.phase, Phase::Lambda(LambdaPhase::UpdateConfig { .. })));
}

#[test]
fn a_first_deployment_creates_the_function_then_the_alias_without_shifting() {
    let desired = app("bmV3", CANARY, None);
    let fresh = AppliedState::default();
    let mut obs = Observed::default();
    let record = run(&desired, &fresh, None, &obs, 0).next_record.expect("started");
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Create));
    let plan = run(&desired, &fresh, Some(&record), &obs, 0);
    let Action::LambdaCreateFunction { body } = &plan.actions[0] else { panic!("{:?}", plan.actions) };
    assert_eq!(body["Publish"], true);
    assert_eq!(body["Tags"]["gitmoxi:app"], "main:fn/hello");
    let sha = crate::spec::fingerprint::lambda_code_sha256("bmV3").expect("sha");
    // the function as CreateFunction made it: with this app's gitmoxi tags
    let tags = [("gitmoxi:app".to_string(), "main:fn/hello".to_string()), ("gitmoxi:repo".to_string(), "repo".to_string())];
    obs.lambda.function = Some(ObservedFunction { tags: tags.into_iter().collect(), ..function("$LATEST", &sha, "r1") });
    obs.lambda.versions = vec![function("1", &sha, "r1")];
    let record = run(&desired, &fresh, Some(&record), &obs, 0).next_record.expect("next");
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Publish));
    let record = run(&desired, &fresh, Some(&record), &obs, 0).next_record.expect("next");
    let plan = run(&desired, &fresh, Some(&record), &obs, 0);
    assert_eq!(plan.actions, vec![Action::LambdaCreateAlias { function: "hello".into(), alias: "live".into(), version: "1".into() }]);
    obs.lambda.alias = Some(ObservedAlias { arn: ALIAS_ARN.into(), function_version: "1".into(), additional: BTreeMap::new() });
    let record = run(&desired, &fresh, Some(&record), &obs, 0).next_record.expect("next");
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Wire { version: "1".into() }));
}

#[test]
fn a_newer_commit_during_shifting_rolls_back_first() {
    let desired = app("bmV3", CANARY, None);
    let (mut record, mut obs) = to_ready(&desired);
    obs.lambda.versions[1].state = "Active".into();
    advance(&desired, &mut record, &obs, 5_000);
    let newer = app("bmV3Mw==", CANARY, None);
    let plan = run_commit(&newer, &applied(), Some(&record), &obs, 6_000, "beef");
    assert_eq!(
        plan.next_record.expect("rolling back").phase,
        Phase::Lambda(LambdaPhase::Rollback { version: "2".into(), superseded: true })
    );
}

#[test]
fn wiring_creates_updates_and_deletes_mappings_and_adds_push_sources() {
    let sources = EventSources {
        push: vec![
            PushSource::Elb { target_group_arn: TG.into() },
            PushSource::ApiGateway { api_id: "api1".into(), route_id: "r1".into(), stage_variable: None },
        ],
        pull: vec![serde_json::json!({"EventSourceArn": QUEUE, "BatchSize": 5})],
    };
    let mut observed = ObservedLambda::default();
    let actions = wiring_actions("hello", "live", ALIAS_ARN, &sources, &[], &observed);
    let ops: Vec<&str> = actions.iter().map(Action::operation).collect();
    assert_eq!(ops, vec!["AddPermission", "RegisterTargets", "AddPermission", "CreateIntegration", "CreateEventSourceMapping"]);
    assert!(actions.iter().any(|a| matches!(a, Action::LambdaCreateMapping { body } if body["FunctionName"] == ALIAS_ARN)));
    // everything in place but the route target and a changed batch size, plus a stale mapping
    observed.permissions = sources.push.iter().map(permission_sid).collect();
    observed.elb_targets.insert(TG.into(), vec![ALIAS_ARN.into()]);
    observed.integrations.push(("api1".into(), "int7".into(), ALIAS_ARN.into()));
    observed.mappings = vec![
        ObservedMapping {
            uuid: "u1".into(),
            event_source_arn: QUEUE.into(),
            enabled: true,
            config: crate::spec::lambda::mapping_view(&serde_json::json!({"BatchSize": 10, "Enabled": true})),
            ..Default::default()
        },
        ObservedMapping { uuid: "u2".into(), event_source_arn: "arn:aws:sqs:us-east-1:1:old".into(), enabled: true, ..Default::default() },
    ];
    let actions = wiring_actions("hello", "live", ALIAS_ARN, &sources, &sources.push, &observed);
    assert_eq!(
        actions,
        vec![
            Action::ApiSetRouteTarget { api_id: "api1".into(), route_id: "r1".into(), target: "integrations/int7".into() },
            Action::LambdaUpdateMapping { uuid: "u1".into(), body: serde_json::json!({"BatchSize": 5}) },
            Action::LambdaDeleteMapping { uuid: "u2".into() },
        ]
    );
    observed.route_targets.insert(("api1".into(), "r1".into()), Some("integrations/int7".into()));
    observed.mappings.truncate(1);
    observed.mappings[0].config.insert("BatchSize".into(), serde_json::json!(5));
    assert!(wiring_actions("hello", "live", ALIAS_ARN, &sources, &sources.push, &observed).is_empty(), "converged: nothing to do");
    // every updatable field of the mapping body applies, not only the batch size
    let filtered = EventSources {
        push: sources.push.clone(),
        pull: vec![
            serde_json::json!({"EventSourceArn": QUEUE, "BatchSize": 5, "FilterCriteria": {"Filters": [{"Pattern": "{\"a\": [1]}"}]},
            "ScalingConfig": {"MaximumConcurrency": 4}, "StartingPosition": "LATEST"}),
        ],
    };
    assert_eq!(
        wiring_actions("hello", "live", ALIAS_ARN, &filtered, &sources.push, &observed),
        vec![Action::LambdaUpdateMapping {
            uuid: "u1".into(),
            body: serde_json::json!({"FilterCriteria": {"Filters": [{"Pattern": "{\"a\": [1]}"}]}, "ScalingConfig": {"MaximumConcurrency": 4}})
        }]
    );
    // the API source removed from the file: the route no longer targets the alias, its
    // integration and its permission go; the ELB source removed: the alias is deregistered
    let fewer = EventSources { push: vec![sources.push[0].clone()], pull: sources.pull.clone() };
    let actions = wiring_actions("hello", "live", ALIAS_ARN, &fewer, &sources.push, &observed);
    assert_eq!(
        actions,
        vec![
            Action::ApiSetRouteTarget { api_id: "api1".into(), route_id: "r1".into(), target: String::new() },
            Action::ApiDeleteIntegration { api_id: "api1".into(), integration_id: "int7".into() },
            Action::LambdaRemovePermission { function: "hello".into(), qualifier: "live".into(), sid: permission_sid(&sources.push[1]) },
        ]
    );
    let none = EventSources { push: vec![], pull: sources.pull.clone() };
    let actions = wiring_actions("hello", "live", ALIAS_ARN, &none, &sources.push, &observed);
    assert_eq!(actions[0], Action::ElbDeregisterLambda { target_group: TG.into(), target: ALIAS_ARN.into() });
}

#[test]
fn a_stage_variable_integration_points_at_the_variable() {
    let sources = EventSources {
        push: vec![PushSource::ApiGateway { api_id: "a".into(), route_id: "r".into(), stage_variable: Some("lambdaAlias".into()) }],
        pull: vec![],
    };
    let actions = wiring_actions("hello", "live", ALIAS_ARN, &sources, &[], &ObservedLambda::default());
    assert!(actions.contains(&Action::ApiCreateIntegration { api_id: "a".into(), uri: format!("{ARN}:${{stageVariables.lambdaAlias}}") }));
}

const VPC: &str =
    r#""VpcConfig": {"SubnetIds": ["subnet-b", "subnet-a"], "SecurityGroupIds": ["sg-1"]}, "TracingConfig": {"Mode": "Active"},"#;

/// What GetFunctionConfiguration reports for a function holding `VPC` (its own order, `VpcId`,
/// `LoggingConfig` defaults) on top of the test lambdadef's fields.
fn with_vpc(mut f: ObservedFunction) -> ObservedFunction {
    f.config.extend(config_view(&serde_json::json!({
        "VpcConfig": {"SubnetIds": ["subnet-a", "subnet-b"], "SecurityGroupIds": ["sg-1"], "VpcId": "vpc-9", "Ipv6AllowedForDualStack": false},
        "TracingConfig": {"Mode": "Active"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": "/aws/lambda/hello"},
    })));
    f
}

#[test]
fn a_vpc_change_publishes_a_new_version_instead_of_reusing_one_with_the_old_network() {
    // same code, same handler: only the network and tracing change
    let desired = app_with("bmV3", VPC, CANARY, None);
    let sha = crate::spec::fingerprint::lambda_code_sha256("bmV3").expect("sha");
    let mut obs = deployed("1", &sha);
    let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
    advance(&desired, &mut record, &obs, 0);
    assert!(matches!(record.phase, Phase::Lambda(LambdaPhase::UpdateConfig { .. })), "{:?}", record.phase);
    let plan = advance(&desired, &mut record, &obs, 0);
    let [Action::LambdaUpdateConfig { config, .. }] = plan.actions.as_slice() else { panic!("the VPC change is sent: {:?}", plan.actions) };
    assert_eq!(config["VpcConfig"]["SubnetIds"], serde_json::json!(["subnet-b", "subnet-a"]));
    obs.lambda.function = Some(with_vpc(function("$LATEST", &sha, "r2")));
    advance(&desired, &mut record, &obs, 1_000);
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Publish));
    let plan = advance(&desired, &mut record, &obs, 1_000);
    assert!(
        matches!(plan.actions.as_slice(), [Action::LambdaPublishVersion { .. }]),
        "version 1 has this code but not this network: a new version is published, got {:?} / {:?}",
        plan.actions,
        record.phase
    );
    // once published, the new version is the match (the old one still is not)
    obs.lambda.versions.push(with_vpc(function("2", &sha, "r2")));
    advance(&desired, &mut record, &obs, 2_000);
    assert!(matches!(&record.phase, Phase::Lambda(LambdaPhase::Ready { version, .. }) if version == "2"), "{:?}", record.phase);
}

#[test]
fn a_configuration_lambda_did_not_apply_fails_the_deployment_instead_of_publishing() {
    let desired = app_with("bmV3", VPC, CANARY, None);
    let sha = crate::spec::fingerprint::lambda_code_sha256("bmV3").expect("sha");
    let mut obs = deployed("1", &sha);
    let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
    advance(&desired, &mut record, &obs, 0);
    advance(&desired, &mut record, &obs, 0);
    // the update "landed" (new revision, Successful) but the function has no tracing
    let mut landed = with_vpc(function("$LATEST", &sha, "r2"));
    landed.config.remove("TracingConfig");
    obs.lambda.function = Some(landed);
    advance(&desired, &mut record, &obs, 1_000);
    let plan = advance(&desired, &mut record, &obs, 1_000);
    assert!(plan.actions.is_empty(), "nothing is published: {:?}", plan.actions);
    assert_eq!(record.outcome, Some(Outcome::Failed));
    assert!(record.evidence.iter().any(|e| e.contains("TracingConfig")), "{:?}", record.evidence);
}

#[test]
fn the_comparable_form_of_a_lambdadef_and_of_what_lambda_reports_agree() {
    let file = config_view(&serde_json::json!({
        "MemorySize": "256", "Layers": ["arn:layer:1"], "Architectures": ["arm64"],
        "ImageConfig": {"Command": ["run"]}, "EphemeralStorage": {"Size": 1024},
        "LoggingConfig": {"LogFormat": "JSON"}, "DeadLetterConfig": {"TargetArn": "arn:sqs:dlq"},
        "Environment": {"Variables": {"B": "2", "A": 1}}, "Description": "not compared",
    }));
    let aws = config_view(&serde_json::json!({
        "MemorySize": 256, "Layers": [{"Arn": "arn:layer:1", "CodeSize": 10}], "Architectures": ["arm64"],
        "ImageConfigResponse": {"ImageConfig": {"Command": ["run"]}}, "EphemeralStorage": {"Size": 1024},
        "LoggingConfig": {"LogFormat": "JSON", "LogGroup": "/aws/lambda/hello"}, "DeadLetterConfig": {"TargetArn": "arn:sqs:dlq"},
        "Environment": {"Variables": {"A": "1", "B": "2"}}, "Description": "whatever",
    }));
    assert_eq!(config_differences(&file, &aws), Vec::<String>::new());
    assert!(!file.contains_key("Description"));
    // an extra variable in Lambda is a difference; an extra LoggingConfig default is not
    let mut extra = aws.clone();
    extra.insert("Environment".into(), serde_json::json!({"Variables": {"A": "1", "B": "2", "C": "3"}}));
    assert_eq!(config_differences(&file, &extra).len(), 1);
    let mut arch = aws;
    arch.insert("Architectures".into(), serde_json::json!(["x86_64"]));
    assert!(
        config_differences(&file, &arch)[0].starts_with("Architectures: the file sets [\"arm64\"]"),
        "{:?}",
        config_differences(&file, &arch)
    );
}

#[test]
fn an_architecture_change_is_sent_with_the_code() {
    let desired = app_with("bmV3", r#""Architectures": ["arm64"],"#, CANARY, None);
    let sha = crate::spec::fingerprint::lambda_code_sha256("bmV3").expect("sha");
    let obs = deployed("1", &sha); // same zip, x86_64 (nothing reported: the default)
    let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
    let plan = advance(&desired, &mut record, &obs, 0);
    let [Action::LambdaUpdateCode { code, .. }] = plan.actions.as_slice() else { panic!("{:?}", plan.actions) };
    assert_eq!(code["Architectures"], serde_json::json!(["arm64"]));
    assert_eq!(code["ZipFile"], "bmV3");
}

#[test]
fn a_delete_takes_the_alias_out_of_every_push_source_once() {
    let sources = r#"{"PushEventSources": [{"Service": "elasticloadbalancing.amazonaws.com", "TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fn/1"},
        {"Service": "apigateway.amazonaws.com", "ApiId": "api1", "RouteId": "r1"}]}"#;
    let desired = app("bmV3", CANARY, Some(sources));
    let AppSpec::Lambda(lambda) = &desired.spec else { panic!("a Lambda app") };
    // the store holds the app as applied (the delete's record and the applied state agree)
    let applied = AppliedState { lambda: Some(lambda.clone()), identity: Some(desired.identity.clone()), ..applied() };
    let key = AppKey { repo: "repo".into(), branch: "main".into(), prefix: "fn/hello".into() };
    let mut obs = deployed("1", "sha");
    obs.lambda.wiring_observed = true;
    obs.lambda.elb_targets.insert(TG.into(), vec![ALIAS_ARN.into()]);
    obs.lambda.integrations.push(("api1".into(), "int7".into(), ALIAS_ARN.into()));
    obs.lambda.route_targets.insert(("api1".into(), "r1".into()), Some("integrations/int7".into()));
    obs.lambda.permissions = lambda.event_sources.push.iter().map(permission_sid).collect();
    let input = |record: Option<&DeploymentRecord>, obs: &Observed| {
        strategy::step(&StepInput {
            key: &key,
            commit: "c0ffee",
            desired: Desired::Deleted,
            applied: &applied,
            record,
            observed: obs,
            now_ms: 0,
            new_deployment_id: "dep-9",
            commands: &crate::commands::NO_COMMANDS,
            drift: crate::drift::DriftClock::off(),
            moved: false,
            refusal: None,
            own_account: Some("123456789012"),
            account_roles: &crate::accounts::NO_ROLES,
            adopt_untagged: false,
            hold: None,
        })
    };
    let record = input(None, &obs).next_record.expect("a delete starts");
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::DeleteFunction), "{:?}", record.timeline);
    let plan = input(Some(&record), &obs);
    let ops: Vec<&str> = plan.actions.iter().map(Action::operation).collect();
    assert_eq!(
        ops,
        vec!["DeregisterTargets", "UpdateRoute", "DeleteIntegration", "RemovePermission", "RemovePermission", "DeleteFunction"]
    );
}

/// Found by the kill -9 test against moto (no revision ids): a crash after the record said the
/// code update was sent, but before it was, must send it again, not publish the old code.
#[test]
fn a_code_update_marked_sent_but_never_sent_is_sent_again_on_an_endpoint_without_revision_ids() {
    let desired = app("bmV3", CANARY, None);
    let mut obs = deployed("1", "old-sha");
    for f in obs.lambda.function.iter_mut().chain(obs.lambda.versions.iter_mut()) {
        f.revision_id = String::new();
    }
    let mut record = run(&desired, &applied(), None, &obs, 0).next_record.expect("started");
    record.phase = Phase::Lambda(LambdaPhase::UpdateCode { revision_before: "@".into(), sent: true });
    let plan = advance(&desired, &mut record, &obs, 1_000);
    assert!(matches!(plan.actions.as_slice(), [Action::LambdaUpdateCode { .. }]), "sent again: {:?} / {:?}", plan.actions, record.phase);
}

#[test]
fn the_lambda_analysis_reads_each_version_through_the_alias_and_rolls_back_a_worse_error_rate() {
    let depdef = r#"{"alias": "live", "trafficShiftingConfig": {"type": "CANARY", "percent": 20, "waitInterval": 10},
        "analysis": {"checks": [{"preset": "LAMBDA_ERROR_RATE", "compare": {"tolerance": 50}, "minSamples": 5}]}}"#;
    let desired = app("bmV3", depdef, None);
    let (mut record, mut obs) = to_ready(&desired);
    obs.lambda.versions[1].state = "Active".into();
    advance(&desired, &mut record, &obs, 5_000);
    advance(&desired, &mut record, &obs, 5_000);
    obs.lambda.alias.as_mut().expect("alias").additional = BTreeMap::from([("2".to_string(), 0.2)]);
    // the wait is not over: nothing to fetch
    let key = key();
    let look = |record: &DeploymentRecord, obs: &Observed, now: u64| {
        let applied = applied();
        let input = input(&desired, &applied, Some(record), obs, now, "c0ffee", &key);
        match strategy::look(&input) {
            strategy::Look::Observe(needs) => needs.metrics,
            strategy::Look::Skip(_) => None,
        }
    };
    assert_eq!(look(&record, &obs, 6_000), None);
    let req = look(&record, &obs, 15_001).expect("due at the end of the step");
    let dims = |id: &str| match &req.queries.iter().find(|q| q.id == id).expect("query").kind {
        crate::analysis::queries::QueryKind::Stat(m) => m.dimensions.clone(),
        other @ crate::analysis::queries::QueryKind::Expression { .. } => panic!("{other:?}"),
    };
    let d = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    assert_eq!(dims("c0g_errors"), d(&[("FunctionName", "hello"), ("Resource", "hello:live"), ("ExecutedVersion", "2")]));
    assert_eq!(dims("c0b_invocations"), d(&[("FunctionName", "hello"), ("Resource", "hello:live"), ("ExecutedVersion", "1")]));
    // version 2 errs 8 % of the time, version 1 1 %
    obs.metrics = Some(BTreeMap::from([
        ("c0g".to_string(), vec![8.0, 7.5, 8.5, 8.0, 9.0, 7.0]),
        ("c0b".to_string(), vec![1.0, 1.2, 0.8, 1.1, 0.9, 1.0]),
    ]));
    advance(&desired, &mut record, &obs, 15_001);
    assert_eq!(record.phase, Phase::Lambda(LambdaPhase::Rollback { version: "2".into(), superseded: false }));
    match &record.cause {
        Some(FailureCause::AnalysisFailed { check, detail }) => {
            assert_eq!(check, "LAMBDA_ERROR_RATE");
            assert!(detail.contains("green 8 % vs blue 1 % (+700 %, tolerance 50 %, p = 0.00"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}
