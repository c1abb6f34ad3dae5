//! Strategies: one pure `step` per pass that turns (desired, applied, record, observed, now) into
//! a [`Plan`]. This module decides *which* deployment runs (start, continue, supersede, delete,
//! quarantine); the strategy modules decide *how* it proceeds.
//!
//! Invariants: all branching about deployments lives here, never in the executor; a failed
//! fingerprint is not restarted unless forced; a newer valid head supersedes an in-flight
//! deployment; nothing is deleted unless the app is gone, its delete allowed and it is owned.

pub mod ecs_blue_green;
pub mod ecs_rolling;
pub mod lambda_shift;

use crate::observed::Observed;
use crate::plan::{Completion, Plan};
use crate::record::{
    AppKey, AppliedState, DeploymentRecord, DeploymentStatus, FailureCause, Level, Operation, Outcome, Phase, PhaseFamily,
};
use crate::spec::{AppSpec, DesiredApp, EcsStrategy, Identity};
use serde_json::Value;

/// How long a steady app waits before its next look.
pub const STEADY_REQUEUE_MS: u64 = 5 * 60 * 1000;

/// What the branch head says about the app.
#[derive(Debug, Clone, Copy)]
pub enum Desired<'a> {
    /// A valid app.
    Present(&'a DesiredApp),
    /// The app is in the head but invalid, in conflict or otherwise blocked: keep what runs.
    Blocked,
    /// The app is gone from the head and its delete is allowed.
    Deleted,
    /// The app is gone but its delete is held (prune protection).
    DeleteHeld,
}

/// Everything one planning step reads.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    pub key: &'a AppKey,
    /// The head commit the desired state comes from.
    pub commit: &'a str,
    pub desired: Desired<'a>,
    pub applied: &'a AppliedState,
    pub record: Option<&'a DeploymentRecord>,
    pub observed: &'a Observed,
    pub now_ms: u64,
    /// The id a deployment started in this step gets (from the controller's seeded source).
    pub new_deployment_id: &'a str,
    /// Redeploy even when the fingerprint is applied or failed.
    pub force: bool,
    /// An operator asked to roll the in-flight deployment back.
    pub rollback: bool,
    /// Compare the applied state with AWS this pass (the drift cadence is due), and how to act.
    pub drift: Option<crate::drift::DriftPolicy>,
}

/// What the observer must fetch for this step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObserveNeeds {
    /// The identity to observe (None: nothing to observe).
    pub identity: Option<Identity>,
    /// Look up the task definition tagged with this deployment id in this family.
    pub registered_for: Option<(String, String)>,
    /// List and describe the service's tasks.
    pub tasks: bool,
    /// Describe the service's task sets (EXTERNAL controller).
    pub task_sets: bool,
    /// List the tasks of the task sets whose externalId starts with this prefix.
    pub side_tasks: Option<String>,
    /// Describe these target groups, the forwards to them and their healthy targets.
    pub target_groups: Vec<String>,
    /// Describe these alarms.
    pub alarms: Vec<String>,
    /// Lambda: the alias to describe, and the event sources whose wiring to observe.
    pub lambda: Option<(String, Option<crate::spec::lambda::EventSources>)>,
}

/// The identity an app's step concerns: the in-flight record's, else the head's, else the store's.
pub fn identity_of<'a>(desired: &Desired<'a>, applied: &'a AppliedState, record: Option<&'a DeploymentRecord>) -> Option<&'a Identity> {
    if let Some(r) = record.filter(|r| r.in_flight()) {
        return Some(&r.identity);
    }
    match desired {
        Desired::Present(app) => Some(&app.identity),
        Desired::Blocked | Desired::Deleted | Desired::DeleteHeld => applied.identity.as_ref(),
    }
}

/// What to observe before stepping.
pub fn observe_needs(desired: &Desired<'_>, applied: &AppliedState, record: Option<&DeploymentRecord>) -> ObserveNeeds {
    let identity = identity_of(desired, applied, record).cloned();
    let mut needs = ObserveNeeds { identity, ..ObserveNeeds::default() };
    if let Some(r) = record.filter(|r| r.in_flight()) {
        match &r.phase {
            Phase::EcsRegister => {
                needs.registered_for = r.desired.as_ref().and_then(|d| d.family()).map(|family| (family.to_string(), r.id.clone()));
            }
            Phase::EcsStabilize { .. } | Phase::EcsRollbackStabilize { .. } => needs.tasks = true,
            Phase::EcsDelete => needs.task_sets = true,
            Phase::EcsApply { .. } | Phase::EcsRollback { .. } | Phase::Done => {}
            Phase::BgRegister => {
                needs.registered_for = r.desired.as_ref().and_then(|d| d.family()).map(|family| (family.to_string(), r.id.clone()));
            }
            Phase::BgCreateService { .. } => {}
            Phase::BgCreateGreen { .. } => {
                needs.task_sets = true;
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
                needs.alarms = r.desired.as_ref().map(|d| d.depdef.alarm_names.clone()).unwrap_or_default();
            }
            Phase::BgStabilize { .. } => {
                needs.task_sets = true;
                needs.side_tasks = Some(ecs_blue_green::side_prefix(&r.id));
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
            }
            Phase::BgShift { .. } | Phase::BgBake { .. } => {
                needs.task_sets = true;
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
                needs.alarms = r.desired.as_ref().map(|d| d.depdef.alarm_names.clone()).unwrap_or_default();
            }
            Phase::BgRollback { .. } => {
                needs.task_sets = true;
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
            }
            Phase::BgPromote | Phase::BgCleanUp => needs.task_sets = true,
            Phase::LambdaShift { .. } | Phase::LambdaBake { .. } => {
                needs.alarms = r.desired_lambda.as_ref().map(|d| d.depdef.alarm_names.clone()).unwrap_or_default();
            }
            Phase::LambdaCreate
            | Phase::LambdaUpdateCode { .. }
            | Phase::LambdaUpdateConfig { .. }
            | Phase::LambdaPublish
            | Phase::LambdaReady { .. }
            | Phase::LambdaWire { .. }
            | Phase::LambdaCleanUp { .. }
            | Phase::LambdaRollback { .. }
            | Phase::LambdaDelete => {}
        }
    }
    if matches!(needs.identity, Some(Identity::Lambda { .. })) {
        needs.lambda = lambda_shift::lambda_needs(desired, applied, record);
    }
    needs
}

/// Starts a deployment of `app` with the strategy its svcdef selects.
pub fn start(input: &StepInput<'_>, app: &DesiredApp) -> DeploymentRecord {
    if let AppSpec::Lambda(lambda) = &app.spec {
        return lambda_shift::start(input, app, lambda);
    }
    let mut record = ecs_rolling::start(input, app);
    if let AppSpec::Ecs(ecs) = &app.spec {
        if ecs.strategy == EcsStrategy::BlueGreen {
            record.previous_task_definition = None;
            record.phase = match &ecs.taskdef {
                Some(_) => Phase::BgRegister,
                None => ecs_blue_green::after_register(
                    input.observed.service.as_ref(),
                    ecs.svcdef.get("taskDefinition").and_then(Value::as_str).unwrap_or_default().to_string(),
                ),
            };
        }
    }
    record
}

/// An operator's rollback of an in-flight deployment; `None` when its phase cannot roll back
/// (it has not changed anything yet, is past the point of no return, or is rolling back).
pub fn operator_rollback(input: &StepInput<'_>, record: &DeploymentRecord) -> Option<Plan> {
    let evidence = vec![format!("rollback requested by an operator during {}", record.phase.name())];
    match record.phase.family() {
        PhaseFamily::Ecs => ecs_rolling::operator_rollback(input, record, evidence),
        PhaseFamily::BlueGreen => ecs_blue_green::operator_rollback(record, input.now_ms, evidence),
        PhaseFamily::Lambda => lambda_shift::operator_rollback(record, input.now_ms, evidence),
    }
}

/// Continues an in-flight record with the strategy its phase belongs to.
pub fn continue_record(input: &StepInput<'_>, record: &DeploymentRecord) -> Plan {
    match record.phase.family() {
        PhaseFamily::Ecs => ecs_rolling::step(input, record),
        PhaseFamily::BlueGreen => ecs_blue_green::step(input, record),
        PhaseFamily::Lambda => lambda_shift::step(input, record),
    }
}

/// One planning step for an ECS app.
pub fn step(input: &StepInput<'_>) -> Plan {
    if let Some(record) = input.record.filter(|r| r.in_flight() && input.rollback) {
        if let Some(plan) = operator_rollback(input, record) {
            return plan;
        }
    }
    if let Some(record) = input.record.filter(|r| r.in_flight()) {
        if let Desired::Present(app) = input.desired {
            let newer = record.operation == Operation::Deploy
                && app.fingerprint != record.fingerprint
                && (input.force || !input.applied.failed.contains(&app.fingerprint));
            if newer {
                let (at_once, rollback_first) = match record.phase.family() {
                    PhaseFamily::Ecs => (true, None),
                    PhaseFamily::BlueGreen => {
                        (ecs_blue_green::supersedes_at_once(&record.phase), ecs_blue_green::supersede(record, input.now_ms, input.commit))
                    }
                    PhaseFamily::Lambda => {
                        (lambda_shift::supersedes_at_once(&record.phase), lambda_shift::supersede(record, input.now_ms, input.commit))
                    }
                };
                if at_once {
                    return supersede(input, record, app);
                }
                if let Some(plan) = rollback_first {
                    return plan;
                }
            }
        }
        return continue_record(input, record);
    }
    match input.desired {
        Desired::Present(app) => {
            let applied = input.applied.fingerprint.as_deref() == Some(app.fingerprint.as_str());
            let failed = input.applied.failed.contains(&app.fingerprint);
            if input.force || (!applied && !failed) {
                let record = start(input, app);
                return Plan { next_record: Some(record), requeue_after_ms: 0, ..Plan::default() };
            }
            if let Some(policy) = input.drift.filter(|_| applied) {
                let found = crate::drift::detect(app, input.applied, input.observed, &policy);
                if let (Some(why), crate::drift::DriftMode::Heal) = (&found, policy.mode) {
                    let mut record = start(input, app);
                    record.log(input.now_ms, Level::Warn, format!("drift: {why}; redeploying the applied state"));
                    return Plan { next_record: Some(record), drift: Some(found), requeue_after_ms: 0, ..Plan::default() };
                }
                let mut plan = match app.kind {
                    crate::spec::AppKind::Ecs => ecs_rolling::steady(input),
                    crate::spec::AppKind::Lambda => Plan::wait(STEADY_REQUEUE_MS),
                };
                plan.drift = Some(found);
                return plan;
            }
            match app.kind {
                crate::spec::AppKind::Ecs => ecs_rolling::steady(input),
                crate::spec::AppKind::Lambda => Plan::wait(STEADY_REQUEUE_MS),
            }
        }
        Desired::Deleted if matches!(input.applied.identity, Some(Identity::Lambda { .. })) => lambda_shift::start_delete(input),
        Desired::Deleted if input.applied.fingerprint.is_some() || input.applied.owned => {
            match input.observed.service.as_ref().filter(|s| s.status != "INACTIVE") {
                None => {
                    let mut record = new_record(input, Operation::Delete, "delete", String::new(), None, Phase::EcsDelete);
                    record.log(input.now_ms, Level::Info, "service already gone; forgetting the app");
                    record.finish(Outcome::Deleted, input.now_ms);
                    Plan { next_record: Some(record), requeue_after_ms: 0, ..Plan::default() }
                }
                Some(_) => {
                    let mut record = new_record(input, Operation::Delete, "delete", String::new(), None, Phase::EcsDelete);
                    record.log(input.now_ms, Level::Info, "the svcdef is gone from the branch head: deleting the service");
                    Plan { next_record: Some(record), requeue_after_ms: 0, ..Plan::default() }
                }
            }
        }
        Desired::Deleted | Desired::DeleteHeld | Desired::Blocked => Plan::wait(STEADY_REQUEUE_MS),
    }
}

fn supersede(input: &StepInput<'_>, record: &DeploymentRecord, app: &DesiredApp) -> Plan {
    let mut old = record.clone();
    old.log(
        input.now_ms,
        Level::Warn,
        format!("superseded by commit {} (fingerprint {})", short_commit(input.commit), crate::spec::fingerprint::short(&app.fingerprint)),
    );
    old.finish(Outcome::Superseded, input.now_ms);
    let mut next = start(input, app);
    next.log(input.now_ms, Level::Info, format!("supersedes deployment {} ({})", record.id, record.phase.name()));
    Plan { finished: Some((old, Completion::Nothing)), next_record: Some(next), requeue_after_ms: 0, ..Plan::default() }
}

/// Builds a fresh record for this app.
pub fn new_record(
    input: &StepInput<'_>,
    operation: Operation,
    strategy: &str,
    fingerprint: String,
    desired: Option<&DesiredApp>,
    phase: Phase,
) -> DeploymentRecord {
    let identity = identity_of(&input.desired, input.applied, None)
        .cloned()
        .or_else(|| desired.map(|d| d.identity.clone()))
        .unwrap_or(Identity::Ecs { account: None, region: String::new(), cluster: String::new(), service: String::new() });
    let ecs = desired.and_then(|d| match &d.spec {
        AppSpec::Ecs(e) => Some(e.clone()),
        AppSpec::Lambda(_) => None,
    });
    DeploymentRecord {
        id: input.new_deployment_id.to_string(),
        app: input.key.clone(),
        kind: desired.map_or(crate::spec::AppKind::Ecs, |d| d.kind),
        commit: input.commit.to_string(),
        fingerprint,
        identity,
        operation,
        strategy: strategy.to_string(),
        desired: ecs,
        desired_lambda: desired.and_then(|d| match &d.spec {
            AppSpec::Lambda(l) => Some(l.clone()),
            AppSpec::Ecs(_) => None,
        }),
        previous_version: None,
        previous_task_definition: None,
        phase,
        status: DeploymentStatus::Processing,
        outcome: None,
        cause: None,
        evidence: Vec::new(),
        traffic: None,
        task_set_scales: None,
        task_set_arns: None,
        started_at_ms: input.now_ms,
        updated_at_ms: input.now_ms,
        finished_at_ms: None,
        timeline: Vec::new(),
    }
}

/// AWS refused an action or an observation for a reason retrying will not fix: the deployment
/// fails with that cause (and a start that could not even observe is recorded as failed).
pub fn on_permanent_error(input: &StepInput<'_>, cause: FailureCause) -> Plan {
    let record = match input.record.filter(|r| r.in_flight()) {
        Some(r) => r.clone(),
        None => match input.desired {
            Desired::Present(app)
                if input.force
                    || (input.applied.fingerprint.as_deref() != Some(app.fingerprint.as_str())
                        && !input.applied.failed.contains(&app.fingerprint)) =>
            {
                start(input, app)
            }
            _ => return Plan::wait(STEADY_REQUEUE_MS),
        },
    };
    let (record, completion) = fail_record(&record, cause, input.now_ms);
    Plan { finished: Some((record, completion)), requeue_after_ms: STEADY_REQUEUE_MS, ..Plan::default() }
}

pub fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Whether this step must look at AWS at all. A steady app whose fingerprint is applied is left
/// alone (no AWS call when nothing changed) unless it was just moved (its tags change) or forced.
pub fn must_observe(desired: &Desired<'_>, applied: &AppliedState, record: Option<&DeploymentRecord>, force: bool, moved: bool) -> bool {
    if record.is_some_and(|r| r.in_flight()) {
        return true;
    }
    match desired {
        Desired::Present(app) => {
            force
                || moved
                || (applied.fingerprint.as_deref() != Some(app.fingerprint.as_str()) && !applied.failed.contains(&app.fingerprint))
        }
        Desired::Deleted => applied.fingerprint.is_some() || applied.owned,
        Desired::DeleteHeld | Desired::Blocked => false,
    }
}

/// Ends an in-flight record because AWS refused an action for good.
pub fn fail_record(record: &DeploymentRecord, cause: FailureCause, now_ms: u64) -> (DeploymentRecord, Completion) {
    let mut next = record.clone();
    next.log(
        now_ms,
        Level::Error,
        format!("{cause}; fix the cause, then push a commit or run `gitmoxi sync --force {}`", record.app.prefix),
    );
    next.cause = Some(cause);
    next.finish(Outcome::Failed, now_ms);
    let completion = match record.operation {
        Operation::Deploy => Completion::Failed { fingerprint: record.fingerprint.clone() },
        Operation::Delete => Completion::Nothing,
    };
    (next, completion)
}
