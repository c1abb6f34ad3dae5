//! ECS rolling deployments (SPEC §3.2, §3.4): register → apply → stabilize, with the circuit
//! breaker and rollback to the last good task definition; and the delete of a service.
//!
//! Every phase re-derives its next move from what it observes: "the service should run X; it runs
//! Y → update it". Replays are harmless: registration is found again by its deployment tag,
//! CreateService carries a client token, updates and deletes are absolute.

use super::{StepInput, STEADY_REQUEUE};
use crate::checks::rolling_stability;
use crate::compare::{self, Difference, ServiceKind};
use crate::observed::{Observed, ObservedService, ServiceStatus};
use crate::plan::{Action, Completion, Plan};
use crate::record::RollingPhase;
use crate::record::{DeploymentRecord, FailureCause, Level, Outcome, Phase, Strategy};
use crate::spec::{ecs::cluster_name, DesiredApp, EcsApp};
use crate::token::client_token;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub mod native;

/// Tag keys gitmoxi puts on what it creates.
pub const TAG_APP: &str = "gitmoxi:app";
/// The tag key naming the app's repository.
pub const TAG_REPO: &str = "gitmoxi:repo";
/// The tag key naming the deployment that registered a task definition.
pub const TAG_DEPLOYMENT: &str = "gitmoxi:deployment";
/// The tag key naming the app fingerprint a task definition was registered for: a fresh store
/// adopts a service running it instead of deploying the same thing again.
pub const TAG_FINGERPRINT: &str = "gitmoxi:fingerprint";

/// Fields of a CreateService body that UpdateService accepts too.
pub const UPDATABLE: &[&str] = &[
    "capacityProviderStrategy",
    "deploymentConfiguration",
    "networkConfiguration",
    "placementConstraints",
    "placementStrategy",
    "platformVersion",
    "healthCheckGracePeriodSeconds",
    "enableExecuteCommand",
    "enableECSManagedTags",
    "loadBalancers",
    "propagateTags",
    "serviceRegistries",
    "serviceConnectConfiguration",
    "volumeConfigurations",
    "availabilityZoneRebalancing",
    "vpcLatticeConfigurations",
];

/// Starts a rolling deployment of `app`: register its taskdef, or apply the task definition
/// its svcdef names. The rollback target is the last good task definition, else what runs.
pub fn start(input: &StepInput<'_>, app: &DesiredApp, ecs: &EcsApp) -> DeploymentRecord {
    let phase = match &ecs.taskdef {
        Some(_) => RollingPhase::Register,
        None => RollingPhase::Apply { task_definition: super::resolved_task_definition(input, named_task_definition(ecs)) },
    };
    let mut record = super::started_record(input, app, Strategy::Rolling, Phase::Rolling(phase));
    // the rollback target is the last successfully applied state, never whatever the service
    // runs (a revision that never worked is no target: issue 23, item 13)
    // …of this very service: an app moved to another service, region or account starts anew
    let own = input.own_account;
    let same_service = input.applied.identity.as_ref().is_none_or(|i| i.in_account(own) == app.identity.in_account(own));
    record.previous_task_definition = input.applied.task_definition.clone().filter(|_| same_service);
    record.previous_service = input.applied.service.clone().filter(|_| same_service);
    record.forced = input.commands.force;
    record
}

/// The svcdef fields AWS does not hold as the file says (issue 23); empty when the observer did
/// not read the service's settings.
pub fn service_differences(svcdef: &Value, strategy: crate::spec::ecs::EcsStrategy, service: &ObservedService) -> Vec<Difference> {
    let Some(settings) = &service.settings else { return Vec::new() };
    let kind = match strategy {
        crate::spec::ecs::EcsStrategy::Rolling => ServiceKind::Ecs,
        crate::spec::ecs::EcsStrategy::BlueGreen => ServiceKind::External,
    };
    compare::ecs_service(svcdef, settings, kind)
}

/// The task definition a svcdef without a taskdef file names.
pub fn named_task_definition(ecs: &EcsApp) -> String {
    ecs.svcdef.get("taskDefinition").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// No deployment needed: keep ownership tags right (a moved app re-tags its service).
pub fn steady(input: &StepInput<'_>) -> Plan {
    let Some(service) = input.observed.service.as_ref().filter(|s| s.is_active()) else {
        return Plan::wait(STEADY_REQUEUE);
    };
    let want = input.key.tag_value();
    if input.applied.owned && service.tags.get(TAG_APP) != Some(&want) {
        return Plan {
            actions: vec![Action::EcsTagResource { arn: service.arn.clone(), tags: ownership_tags(input) }],
            requeue_after: STEADY_REQUEUE,
            ..Plan::default()
        };
    }
    Plan::wait(STEADY_REQUEUE)
}

pub(super) fn ownership_tags(input: &StepInput<'_>) -> Vec<(String, String)> {
    vec![(TAG_APP.to_string(), input.key.tag_value()), (TAG_REPO.to_string(), crate::record::sanitize_tag(&input.key.repo))]
}

/// What every phase of a rolling deployment reads.
#[derive(Clone, Copy)]
struct Step<'a> {
    input: &'a StepInput<'a>,
    record: &'a DeploymentRecord,
    now: u64,
    observed: &'a Observed,
    /// The service, unless ECS reports it INACTIVE (deleted).
    service: Option<&'a ObservedService>,
}

/// Continues an in-flight record: one named step per phase.
pub fn step(input: &StepInput<'_>, record: &DeploymentRecord, phase: &RollingPhase) -> Plan {
    let observed = input.observed;
    let service = observed.service.as_ref().filter(|s| s.status != ServiceStatus::Inactive);
    let cx = Step { input, record, now: input.now_ms, observed, service };
    match phase {
        RollingPhase::Register => register(&cx),
        RollingPhase::Apply { task_definition } => apply(&cx, task_definition),
        RollingPhase::Stabilize { task_definition, deadline_ms } => stabilize(&cx, task_definition, *deadline_ms),
        RollingPhase::Rollback { to_task_definition } => rollback(&cx, to_task_definition),
        RollingPhase::RollbackStabilize { to_task_definition, deadline_ms } => rollback_stabilize(&cx, to_task_definition, *deadline_ms),
        RollingPhase::DeleteService => delete_service(&cx),
        RollingPhase::NativeStop { service_deployment, superseded, asked_at_ms } => {
            native::stopping(&cx, service_deployment, *superseded, *asked_at_ms)
        }
    }
}

/// Register the task definition, tagged with the deployment id so a replay finds it again.
fn register(cx: &Step<'_>) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let mut next = cx.record.clone();
    let Some(app) = record.desired.as_ref() else { return fail_without_desired(input, record) };
    if let Some(arn) = &observed.registered_task_definition {
        next.log(now, Level::Info, format!("registered task definition {}", short_td(arn)));
        next.enter(Phase::Rolling(RollingPhase::Apply { task_definition: arn.clone() }), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let mut body = app.taskdef.clone().unwrap_or(Value::Null);
    let mut tags = ownership_tags(input);
    tags.push((TAG_DEPLOYMENT.to_string(), record.id.clone()));
    tags.push((super::ecs_rolling::TAG_FINGERPRINT.to_string(), record.fingerprint.clone()));
    merge_tags(&mut body, &tags);
    Plan { actions: vec![Action::EcsRegisterTaskDefinition { body }], requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Create the service, or update it, with this task definition.
fn apply(cx: &Step<'_>, task_definition: &str) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let service = cx.service;
    let mut next = cx.record.clone();
    let Some(app) = record.desired.as_ref() else { return fail_without_desired(input, record) };
    let resolved = super::resolved_task_definition(input, task_definition.to_string());
    if resolved != *task_definition {
        // a record from before names were resolved at the start: compare ARNs from now on
        next.log(now, Level::Info, format!("task definition {task_definition} is {}", short_td(&resolved)));
        next.enter(Phase::Rolling(RollingPhase::Apply { task_definition: resolved }), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    match service {
        Some(s) if s.is_active() && s.task_definition.as_deref() == Some(task_definition) => {
            let budget = stabilize_budget_secs(app, s.desired_count);
            let differences = service_differences(&app.svcdef, app.strategy, s);
            let fields: Vec<&Difference> = compare::updatable(&differences).collect();
            // the service runs the task definition: its other fields, or a forced redeploy, still
            // need an UpdateService (sent once, with the record in Stabilize first, so a field AWS
            // will not take fails the deployment instead of looping)
            let force = record.forced;
            let mut actions = Vec::new();
            if !fields.is_empty() || force {
                let mut body = differences_body(app, &fields, input.applied, s.desired_count);
                if force || compare::needs_new_deployment(&differences) {
                    body["forceNewDeployment"] = Value::Bool(true);
                }
                let why = if fields.is_empty() {
                    "forced by an operator".to_string()
                } else {
                    fields.iter().map(|d| d.pointer.as_str()).collect::<Vec<_>>().join(", ")
                };
                next.log(now, Level::Info, format!("updating service {}: {why}", app.service_name));
                actions.push(Action::EcsUpdateService { body });
            }
            next.log(
                now,
                Level::Info,
                format!("service {} runs {}; waiting up to {budget} s for stability", app.service_name, short_td(task_definition)),
            );
            next.enter(
                Phase::Rolling(RollingPhase::Stabilize { task_definition: task_definition.to_string(), deadline_ms: now + budget * 1000 }),
                now,
            );
            Plan { next_record: Some(next), take_ownership: !actions.is_empty(), actions, requeue_after: Duration::ZERO, ..Plan::default() }
        }
        Some(s) if s.is_active() => {
            let mut body = update_body(app, task_definition, input.applied);
            if compare::needs_new_deployment(&service_differences(&app.svcdef, app.strategy, s)) {
                body["forceNewDeployment"] = Value::Bool(true);
            }
            Plan {
                take_ownership: true,
                actions: vec![Action::EcsUpdateService { body }],
                requeue_after: Duration::ZERO,
                ..Plan::default()
            }
        }
        Some(_) => Plan::wait(Duration::from_secs(app.depdef.stability.poll_interval_secs)),
        None => Plan {
            take_ownership: true,
            actions: vec![Action::EcsCreateService { body: create_body(input, record, app, task_definition) }],
            requeue_after: Duration::ZERO,
            ..Plan::default()
        },
    }
}

/// Wait until the new revision's tasks are stable; watch the circuit breaker.
fn stabilize(cx: &Step<'_>, task_definition: &str, deadline_ms: u64) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let service = cx.service;
    let mut next = cx.record.clone();
    let Some(app) = record.desired.as_ref() else { return fail_without_desired(input, record) };
    let poll = Duration::from_secs(app.depdef.stability.poll_interval_secs);
    if service.is_some() && native::strategy_of(&app.svcdef).is_some() {
        return native::follow(cx, task_definition, deadline_ms);
    }
    let Some(s) = service else {
        return rollback_or_fail(
            input,
            record,
            FailureCause::AwsRejected {
                operation: "DescribeServices".into(),
                code: "ServiceNotFound".into(),
                message: format!("service {} disappeared during the deployment", app.service_name),
            },
            vec![],
        );
    };
    let alarms = super::alarms_that_roll_back(record, observed, &mut next, now);
    if !alarms.is_empty() {
        let evidence = alarms.iter().map(|a| format!("alarm {a} in ALARM while {} stabilized", short_td(task_definition))).collect();
        return rollback_or_fail(input, record, FailureCause::AlarmFired { alarms }, evidence);
    }
    let st = rolling_stability(s, &observed.tasks, task_definition);
    if st.stable {
        let differences = service_differences(&app.svcdef, app.strategy, s);
        if !differences.is_empty() {
            let fields = compare::describe(&differences);
            return rollback_or_fail(input, record, FailureCause::AwsDiffers { fields: fields.clone() }, fields);
        }
        next.log(now, Level::Info, format!("stable: {}/{} tasks of {} running", st.running, st.desired, short_td(task_definition)));
        next.finish(Outcome::Succeeded, now);
        let completion = Plan::completion_of(&next, Some(task_definition.to_string()));
        return Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() };
    }
    let failed = st.failures.len() as u32;
    if let Some(threshold) = crate::breaker::tripped(app.depdef.circuit_breaker.as_ref(), st.desired, failed) {
        let mut evidence = st.failures.clone();
        if let Some(cause) = &st.failure_cause {
            evidence.insert(0, format!("most likely cause: {cause}"));
        }
        return rollback_or_fail(input, record, FailureCause::CircuitBreakerTripped { failed_tasks: failed, threshold }, evidence);
    }
    if let Some(reason) =
        s.primary().filter(|d| d.rollout_state.as_deref() == Some("FAILED")).map(|d| d.rollout_state_reason.clone().unwrap_or_default())
    {
        let mut evidence = st.failures.clone();
        evidence.insert(0, format!("ECS rollout failed: {reason}"));
        let cause = st.failure_cause.clone().unwrap_or(FailureCause::CircuitBreakerTripped { failed_tasks: failed, threshold: 0 });
        return rollback_or_fail(input, record, cause, evidence);
    }
    if now >= deadline_ms {
        let waited = (now.saturating_sub(record_phase_start(record, deadline_ms, app, s.desired_count))) / 1000;
        let mut evidence =
            vec![format!("{}/{} tasks of {} running when the budget ran out", st.running, st.desired, short_td(task_definition))];
        evidence.extend(st.failures.clone());
        evidence.extend(s.events.iter().take(3).map(|e| format!("service event: {e}")));
        return rollback_or_fail(input, record, FailureCause::StabilityTimeout { waited_secs: waited }, evidence);
    }
    let progress = format!("{}/{} tasks running, {} failed", st.running, st.desired, failed);
    if record.timeline.last().map(|e| e.message.as_str()) != Some(progress.as_str()) {
        next.log(now, Level::Info, progress);
        return Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() };
    }
    Plan::wait(poll)
}

/// Put the last good task definition back on the service.
fn rollback(cx: &Step<'_>, to_task_definition: &str) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let service = cx.service;
    let mut next = cx.record.clone();
    let Some(app) = record.desired.as_ref() else { return fail_without_desired(input, record) };
    match service {
        Some(s) if s.task_definition.as_deref() == Some(to_task_definition) => {
            let budget = app.depdef.stability.budget_secs(s.desired_count);
            next.log(now, Level::Info, format!("service is back on {}; waiting for it to be stable", short_td(to_task_definition)));
            next.enter(
                Phase::Rolling(RollingPhase::RollbackStabilize {
                    to_task_definition: to_task_definition.to_string(),
                    deadline_ms: now + budget * 1000,
                }),
                now,
            );
            Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
        }
        Some(_) => {
            let mut body = json!({"cluster": app.cluster, "service": app.service_name, "taskDefinition": to_task_definition});
            if let (Some(previous), Value::Object(fields)) = (&record.previous_service, &mut body) {
                let restore = compare::restoring_fields(previous, Some(&app.svcdef));
                if restore.contains_key("capacityProviderStrategy") {
                    fields.insert("forceNewDeployment".into(), Value::Bool(true));
                }
                fields.extend(restore);
            }
            Plan { actions: vec![Action::EcsUpdateService { body }], requeue_after: Duration::ZERO, ..Plan::default() }
        }
        None => finish_failed(input, record, "the service is gone; nothing to roll back"),
    }
}

/// Wait until the rolled-back revision is stable again.
fn rollback_stabilize(cx: &Step<'_>, to_task_definition: &str, deadline_ms: u64) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let service = cx.service;
    let mut next = cx.record.clone();
    let Some(app) = record.desired.as_ref() else { return fail_without_desired(input, record) };
    let Some(s) = service else { return finish_failed(input, record, "the service is gone during rollback") };
    let st = rolling_stability(s, &observed.tasks, to_task_definition);
    if st.stable {
        let differences = match &record.previous_service {
            Some(previous) => service_differences(previous, app.strategy, s),
            None => Vec::new(),
        };
        if !differences.is_empty() {
            let why = format!(
                "the rollback to {} left fields of the failed commit: {}",
                short_td(to_task_definition),
                compare::describe(&differences).join("; ")
            );
            return finish_failed(input, record, &why);
        }
        next.log(now, Level::Warn, format!("rolled back to {}: {}/{} tasks running", short_td(to_task_definition), st.running, st.desired));
        next.finish(Outcome::RolledBack, now);
        let completion = Plan::completion_of(&next, None);
        return Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() };
    }
    if now >= deadline_ms {
        return finish_failed(
            input,
            record,
            &format!("rollback to {} did not stabilize in time: {}/{} tasks running", short_td(to_task_definition), st.running, st.desired),
        );
    }
    Plan::wait(Duration::from_secs(app.depdef.stability.poll_interval_secs))
}

/// Scale the service to zero, delete its task sets, delete it.
fn delete_service(cx: &Step<'_>) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let service = cx.service;
    let mut next = cx.record.clone();
    // the app's former service (renamed, moved): forget that service, keep the app
    let retiring = input.applied.retired.contains(&record.identity);
    let gone = if retiring { Completion::Retired { identity: record.identity.clone() } } else { Completion::Removed };
    let Some(identity_service) = service else {
        next.log(now, Level::Info, "service deleted");
        next.finish(Outcome::Deleted, now);
        return Plan { finished: Some((next, gone)), requeue_after: Duration::ZERO, ..Plan::default() };
    };
    let owned_by_tag = identity_service.tags.get(TAG_APP) == Some(&input.key.tag_value());
    let foreign = super::foreign_owner(input, &identity_service.tags);
    if foreign.is_some() || !(input.applied.owned || owned_by_tag) {
        next.cause = Some(FailureCause::NotOwned);
        next.log(
            now,
            Level::Error,
            format!(
                "refusing to delete {}: it was not created or adopted by this app (tag {TAG_APP} is {:?})",
                record.identity,
                identity_service.tags.get(TAG_APP)
            ),
        );
        next.finish(Outcome::Failed, now);
        return Plan { finished: Some((next, gone)), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    if identity_service.status == ServiceStatus::Draining {
        return Plan::wait(Duration::from_secs(10));
    }
    let (cluster, name) = match &record.identity {
        crate::spec::Identity::Ecs { cluster, service, .. } => (cluster.clone(), service.clone()),
        crate::spec::Identity::Lambda { .. } => return finish_failed(input, record, "not an ECS service"),
    };
    let mut actions = Vec::new();
    if identity_service.desired_count > 0 {
        actions.push(Action::EcsUpdateService { body: json!({"cluster": cluster, "service": name, "desiredCount": 0}) });
    }
    for task_set in &observed.task_sets {
        actions.push(Action::EcsDeleteTaskSet { cluster: cluster.clone(), service: name.clone(), task_set: task_set.arn.clone() });
    }
    actions.push(Action::EcsDeleteService { cluster, service: name });
    Plan { actions, requeue_after: Duration::from_secs(5), ..Plan::default() }
}

fn record_phase_start(record: &DeploymentRecord, deadline_ms: u64, app: &EcsApp, desired: u32) -> u64 {
    deadline_ms.saturating_sub(stabilize_budget_secs(app, desired) * 1000).max(record.started_at_ms)
}

/// How long the new revision may take: the depdef's stability budget, plus, for an ECS-native
/// strategy, its traffic steps, bake time and hook timeouts.
fn stabilize_budget_secs(app: &EcsApp, desired: u32) -> u64 {
    app.depdef.stability.budget_secs(desired) + native::extra_budget_secs(&app.svcdef)
}

/// An operator's rollback: possible once the service was touched and before it is rolling back.
pub fn operator_rollback(input: &StepInput<'_>, record: &DeploymentRecord, evidence: Vec<String>) -> Option<Plan> {
    if let Some(plan) = native::stop_in_flight(input, record, native::StopFor::Operator) {
        return Some(plan);
    }
    let touched = matches!(record.phase, Phase::Rolling(RollingPhase::Apply { .. }) | Phase::Rolling(RollingPhase::Stabilize { .. }));
    touched.then(|| rollback_or_fail(input, record, FailureCause::OperatorRollback, evidence))
}

fn rollback_or_fail(input: &StepInput<'_>, record: &DeploymentRecord, cause: FailureCause, evidence: Vec<String>) -> Plan {
    let now = input.now_ms;
    let mut next = record.clone();
    next.set_failure(cause, evidence);
    let cause = next.cause.clone().unwrap_or(FailureCause::OperatorRollback);
    let enabled = record.desired.as_ref().is_some_and(|d| d.depdef.rollback_enabled());
    // the revision being stabilized is no rollback target
    let current = match &record.phase {
        Phase::Rolling(RollingPhase::Stabilize { task_definition, .. }) => Some(task_definition.as_str()),
        Phase::Rolling(
            RollingPhase::Register
            | RollingPhase::Apply { .. }
            | RollingPhase::Rollback { .. }
            | RollingPhase::RollbackStabilize { .. }
            | RollingPhase::DeleteService
            | RollingPhase::NativeStop { .. },
        )
        | Phase::BlueGreen(_)
        | Phase::Lambda(_)
        | Phase::Done => None,
    };
    match record.previous_task_definition.as_deref().filter(|p| Some(*p) != current) {
        Some(previous) if enabled => {
            next.log(now, Level::Error, format!("{cause}: rolling back to {}", short_td(previous)));
            next.enter(Phase::Rolling(RollingPhase::Rollback { to_task_definition: previous.to_string() }), now);
            Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
        }
        Some(_) => {
            next.log(
                now,
                Level::Error,
                format!("{cause}: rollback is disabled (deleteNewUponFailure/rollback false); leaving the service as it is"),
            );
            next.finish(Outcome::Failed, now);
            let completion = Plan::completion_of(&next, None);
            Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
        }
        None => {
            next.log(
                now,
                Level::Error,
                format!("{cause}: no successfully applied task definition to roll back to; the service is left as it is"),
            );
            next.finish(Outcome::Failed, now);
            let completion = Plan::completion_of(&next, None);
            Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
        }
    }
}

fn finish_failed(input: &StepInput<'_>, record: &DeploymentRecord, why: &str) -> Plan {
    let mut next = record.clone();
    next.log(input.now_ms, Level::Error, why.to_string());
    next.evidence.push(why.to_string());
    next.finish(Outcome::Failed, input.now_ms);
    let completion = Plan::completion_of(&next, None);
    Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

fn fail_without_desired(input: &StepInput<'_>, record: &DeploymentRecord) -> Plan {
    finish_failed(
        input,
        record,
        "the deployment record has no desired state (written by an incompatible version); push a commit to redeploy",
    )
}

/// `family:revision` of a task definition ARN.
pub fn short_td(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

pub(super) fn merge_tags(body: &mut Value, tags: &[(String, String)]) {
    let Value::Object(obj) = body else { return };
    let mut list: Vec<Value> = match obj.remove("tags") {
        Some(Value::Array(existing)) => {
            existing.into_iter().filter(|t| !tags.iter().any(|(k, _)| t.get("key").and_then(Value::as_str) == Some(k.as_str()))).collect()
        }
        _ => Vec::new(),
    };
    list.extend(tags.iter().map(|(k, v)| json!({"key": k, "value": v})));
    obj.insert("tags".into(), Value::Array(list));
}

fn create_body(input: &StepInput<'_>, record: &DeploymentRecord, app: &EcsApp, task_definition: &str) -> Value {
    let mut body = app.svcdef.clone();
    if let Value::Object(obj) = &mut body {
        obj.insert("taskDefinition".into(), Value::String(task_definition.to_string()));
        obj.insert("cluster".into(), Value::String(app.cluster.clone()));
        obj.insert("clientToken".into(), Value::String(client_token(&record.id, "create-service")));
    }
    merge_tags(&mut body, &ownership_tags(input));
    body
}

fn update_body(app: &EcsApp, task_definition: &str, applied: &crate::record::AppliedState) -> Value {
    let mut body = Map::new();
    if let Some(count) = applied.desired_count_change(app.desired_count()) {
        body.insert("desiredCount".into(), Value::from(count));
    }
    body.insert("cluster".into(), Value::String(app.cluster.clone()));
    body.insert("service".into(), Value::String(app.service_name.clone()));
    body.insert("taskDefinition".into(), Value::String(task_definition.to_string()));
    if let Value::Object(svc) = &app.svcdef {
        for field in UPDATABLE {
            if let Some(v) = svc.get(*field) {
                body.insert((*field).to_string(), v.clone());
            }
        }
    }
    Value::Object(body)
}

/// The UpdateService body for a service that already runs its task definition: exactly the
/// top-level svcdef fields that differ from AWS (issue 23: heal and in-place edits send what
/// differs, so ECS is not asked to change — or redeploy for — what it already holds).
fn differences_body(app: &EcsApp, fields: &[&Difference], applied: &crate::record::AppliedState, service_desired_count: u32) -> Value {
    let mut body = Map::new();
    if let Some(count) = applied.desired_count_change(app.desired_count()).filter(|c| *c != service_desired_count) {
        body.insert("desiredCount".into(), Value::from(count));
    }
    body.insert("cluster".into(), Value::String(app.cluster.clone()));
    body.insert("service".into(), Value::String(app.service_name.clone()));
    if let Value::Object(svc) = &app.svcdef {
        for field in fields.iter().map(|d| compare::top_field(&d.pointer)) {
            if let (Some(v), true) = (svc.get(field), UPDATABLE.contains(&field)) {
                body.insert(field.to_string(), v.clone());
            }
        }
    }
    Value::Object(body)
}

/// The cluster of an app, short form (for messages).
pub fn cluster_of(app: &EcsApp) -> &str {
    cluster_name(&app.cluster)
}

#[cfg(test)]
mod tests;
