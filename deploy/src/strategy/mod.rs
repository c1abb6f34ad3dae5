//! Strategies: one pure `step` per pass that turns (desired, applied, record, observed, now) into
//! a [`Plan`]. This module decides *which* deployment runs (start, adopt what already runs when
//! the store is empty, continue, supersede, delete, quarantine); the strategy modules decide
//! *how* it proceeds.
//!
//! A pass is two pure calls: [`look`] (before observing: a plan without looking, or what to
//! observe) and [`step`] (with what was observed: the plan). Operator commands, the drift
//! cadence, the head's intent for the app and AWS refusals are all inputs of these two.
//!
//! Invariants: all branching about deployments lives here, never in the executor; a failed
//! fingerprint is not restarted unless forced; a newer valid head supersedes an in-flight
//! deployment; nothing is deleted unless the app is gone, its delete allowed and it is owned.

pub mod adopt;
pub mod analysis_gate;
pub mod ecs_blue_green;
pub mod ecs_rolling;
pub mod gates;
pub mod hook_gate;
pub mod lambda_shift;

#[cfg(test)]
mod tests;

use crate::commands::OperatorCommands;
use crate::drift::{DriftClock, DriftPolicy};
use crate::intent::Intent;
use crate::observed::{Observed, ServiceStatus};
use crate::plan::{Completion, Note, Plan};
use crate::record::{AppKey, AppliedState, DeploymentRecord, DeploymentStatus, FailureCause, Level, Operation, Outcome, Phase};
use crate::record::{BlueGreenPhase, LambdaPhase, RollingPhase, Strategy};
use crate::spec::{AppSpec, DesiredApp, EcsStrategy, Identity};
use std::time::Duration;

/// How long a steady app waits before its next look.
pub const STEADY_REQUEUE: Duration = Duration::from_secs(5 * 60);

/// How long a paused app waits before its next look (a resume enqueues it at once).
pub const PAUSED_REQUEUE: Duration = Duration::from_secs(60);

/// How often a paused in-flight deployment is looked at: its guards (alarms, breaker) are
/// still watched at the strategies' alarm cadence.
pub const PAUSED_WATCH: Duration = Duration::from_secs(5);

/// The shortest cap the drift cadence puts on a requeue.
const MIN_DRIFT_REQUEUE: Duration = Duration::from_secs(1);

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
    /// The app's files do not render or validate: keep what runs, and record the failure once
    /// per commit (a failed deployment with its cause, notified, a failing commit status).
    Invalid(&'a crate::spec::InvalidApp),
}

impl<'a> Desired<'a> {
    /// What the head-level plan's intent for the app (`None`: not in the head's plan) and its
    /// valid desired state (when it rendered) mean for this step.
    pub fn from_intent(intent: Option<Intent>, app: Option<&'a DesiredApp>) -> Desired<'a> {
        match (intent, app) {
            (Some(Intent::Deploy | Intent::Keep | Intent::Move | Intent::Held), Some(app)) => Desired::Present(app),
            (Some(Intent::Held), None) => Desired::DeleteHeld,
            (Some(Intent::Delete), _) => Desired::Deleted,
            (Some(Intent::Deploy | Intent::Keep | Intent::Move | Intent::Error | Intent::Conflict), _) | (None, _) => Desired::Blocked,
        }
    }
}

/// Everything one planning step reads.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// The app the step is about.
    pub key: &'a AppKey,
    /// The head commit the desired state comes from.
    pub commit: &'a str,
    /// What the head wants of the app.
    pub desired: Desired<'a>,
    /// What the store remembers of the app's last deployments.
    pub applied: &'a AppliedState,
    /// The deployment in flight, if any.
    pub record: Option<&'a DeploymentRecord>,
    /// What AWS showed this pass.
    pub observed: &'a Observed,
    /// Now, in milliseconds since the epoch (the executor's clock).
    pub now_ms: u64,
    /// The id a deployment started in this step gets (from the controller's seeded source).
    pub new_deployment_id: &'a str,
    /// Operator commands waiting for the app (force, pause, rollback, rebalance).
    pub commands: &'a OperatorCommands,
    /// The drift cadence: policy, interval and the last comparison.
    pub drift: DriftClock<'a>,
    /// The head hands this app a service from another prefix (its tags change).
    pub moved: bool,
    /// AWS refused the observation or an action of this pass for a reason retrying will not fix.
    pub refusal: Option<&'a FailureCause>,
    /// The controller's own AWS account (STS GetCallerIdentity at start; `None` if unknown).
    pub own_account: Option<&'a str>,
    /// The other accounts the controller has a role in, and their regions (`[accounts]`).
    pub account_roles: &'a crate::accounts::AccountRoles,
    /// The repository takes over an existing service or function that carries no gitmoxi tags
    /// (`adopt_untagged = true` in its `[[repos]]`; issue 27). Off: such a resource is refused.
    pub adopt_untagged: bool,
    /// What would hold a change of the app back if one started now (dependencies, a freeze;
    /// [`crate::release::hold_of`]); it applies only when nothing is in flight ([`held`]).
    pub hold: Option<&'a crate::release::Hold>,
}

#[cfg(test)]
impl<'a> StepInput<'a> {
    /// An input for tests: no command, drift off, no account, nothing observed, no hold; tests
    /// change what they decide on.
    pub(crate) fn for_test(key: &'a AppKey, desired: Desired<'a>, applied: &'a AppliedState, observed: &'a Observed) -> StepInput<'a> {
        StepInput {
            key,
            commit: "c0ffee",
            desired,
            applied,
            record: None,
            observed,
            now_ms: 1,
            new_deployment_id: "dep-1",
            commands: &crate::commands::NO_COMMANDS,
            drift: DriftClock::off(),
            moved: false,
            refusal: None,
            own_account: None,
            account_roles: &crate::accounts::NO_ROLES,
            adopt_untagged: false,
            hold: None,
        }
    }
}

/// Before observing: a plan made without looking at AWS, or what to look at.
#[derive(Debug, Clone, PartialEq)]
// one value per reconcile pass, moved once: its size does not matter
#[allow(clippy::large_enum_variant)]
pub enum Look {
    /// Nothing to observe this pass; store and do this plan.
    Skip(Plan),
    /// Observe these, then [`step`].
    Observe(ObserveNeeds),
}

/// What the observer must fetch for this step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObserveNeeds {
    /// The identity to observe (None: nothing to observe).
    pub identity: Option<Identity>,
    /// Look up the task definition tagged with this deployment id in this family.
    pub registered_for: Option<(String, String)>,
    /// Resolve this task definition name (family or `family:revision`) to the ARN ECS reports.
    pub resolve_task_definition: Option<String>,
    /// List and describe the service's tasks.
    pub tasks: bool,
    /// Describe the service's task sets (EXTERNAL controller).
    pub task_sets: bool,
    /// List the tasks of the task sets whose externalId starts with this prefix.
    pub side_tasks: Option<String>,
    /// Describe these target groups, and what `elb_reads` asks of them.
    pub target_groups: Vec<String>,
    /// What of the target groups the phase reads: the forwards (weights) and the target health.
    pub elb_reads: ElbReads,
    /// Describe these alarms.
    pub alarms: Vec<String>,
    /// A fresh store: read the tags of the task definition the service runs (adoption).
    pub adoption: bool,
    /// Lambda: the alias to describe, and the event sources whose wiring to observe.
    pub lambda: Option<(String, Option<crate::spec::lambda::EventSources>)>,
    /// The newest ECS service deployment of the service created since this time (ms since the
    /// epoch): an ECS-native strategy being followed.
    pub native_deployment_since_ms: Option<u64>,
    /// The metric analysis of the step is due: fetch this GetMetricData request (issue 25).
    pub metrics: Option<crate::analysis::queries::MetricRequest>,
    /// A task hook runs: list the tasks of (cluster, startedBy).
    pub hook_tasks: Option<(String, String)>,
    /// A task hook runs: where its task definition's containers log.
    pub hook_task_definition: Option<String>,
    /// A Lambda hook runs: invoke it.
    pub invoke: Option<hook_gate::HookInvocation>,
}

/// What of its target groups a blue/green phase reads: only what can change or matter in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ElbReads {
    /// The listener default actions and rules forwarding to them (their weights).
    pub forwards: bool,
    /// The healthy targets of each group.
    pub health: bool,
}

/// The identity an app's step concerns: the in-flight record's, else the head's, else the store's.
pub fn identity_of<'a>(desired: &Desired<'a>, applied: &'a AppliedState, record: Option<&'a DeploymentRecord>) -> Option<&'a Identity> {
    if let Some(r) = record.filter(|r| r.in_flight()) {
        return Some(&r.identity);
    }
    match desired {
        Desired::Present(app) => Some(&app.identity),
        Desired::Blocked | Desired::Deleted | Desired::DeleteHeld | Desired::Invalid(_) => applied.identity.as_ref(),
    }
}

/// What to observe before stepping.
pub fn observe_needs(desired: &Desired<'_>, applied: &AppliedState, record: Option<&DeploymentRecord>) -> ObserveNeeds {
    let identity = identity_of(desired, applied, record).cloned();
    let mut needs = ObserveNeeds { identity, ..ObserveNeeds::default() };
    if let Some(r) = record.filter(|r| r.in_flight()) {
        match &r.phase {
            Phase::Rolling(RollingPhase::Register) => {
                needs.registered_for = r.desired.as_ref().and_then(|d| d.family()).map(|family| (family.to_string(), r.id.clone()));
            }
            Phase::Rolling(RollingPhase::Stabilize { .. }) => {
                if r.desired.as_ref().and_then(|d| ecs_rolling::native::strategy_of(&d.svcdef)).is_some() {
                    // ECS's service deployment says how its tasks are doing: no task reads
                    needs.native_deployment_since_ms = Some(ecs_rolling::native::listed_since_ms(r));
                    needs.alarms = watched_alarms(r);
                    // with analysis, the production rule's weights tell green's target group
                    needs.target_groups = ecs_rolling::native::analysis_target_groups(r);
                    needs.elb_reads.forwards = !needs.target_groups.is_empty();
                } else {
                    needs.tasks = true;
                    // gitmoxi's rolling update watches the depdef's alarms too (issue 23, item 9)
                    needs.alarms = watched_alarms(r);
                }
            }
            Phase::Rolling(RollingPhase::NativeStop { .. }) => {
                needs.native_deployment_since_ms = Some(ecs_rolling::native::listed_since_ms(r))
            }
            Phase::Rolling(RollingPhase::RollbackStabilize { .. }) => needs.tasks = true,
            Phase::Rolling(RollingPhase::DeleteService) => needs.task_sets = true,
            Phase::Rolling(RollingPhase::Apply { .. }) | Phase::Rolling(RollingPhase::Rollback { .. }) | Phase::Done => {}
            Phase::BlueGreen(BlueGreenPhase::Register) => {
                needs.registered_for = r.desired.as_ref().and_then(|d| d.family()).map(|family| (family.to_string(), r.id.clone()));
            }
            Phase::BlueGreen(BlueGreenPhase::CreateService { .. }) => {}
            Phase::BlueGreen(BlueGreenPhase::CreateGreen { .. }) => {
                needs.task_sets = true;
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
                needs.elb_reads = ElbReads { forwards: true, health: false };
                needs.alarms = watched_alarms(r);
            }
            Phase::BlueGreen(BlueGreenPhase::Stabilize { .. }) => {
                needs.task_sets = true;
                needs.side_tasks = Some(ecs_blue_green::side_prefix(&r.id));
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
                // green's health; nothing forwards to it yet
                needs.elb_reads = ElbReads { forwards: false, health: true };
            }
            Phase::BlueGreen(BlueGreenPhase::Shift { .. }) | Phase::BlueGreen(BlueGreenPhase::Bake { .. }) => {
                needs.task_sets = true;
                // the circuit breaker is watched in every phase with tasks (issue 23, item 10)
                // a partial-capacity green is scaled up and waited stable before more traffic:
                // its tasks and its targets' health are read then (issue 25)
                let partial = r.desired.as_ref().is_some_and(|d| d.depdef.first_scale().is_some());
                if partial || r.desired.as_ref().is_some_and(|d| d.depdef.circuit_breaker.is_some()) {
                    needs.side_tasks = Some(ecs_blue_green::side_prefix(&r.id));
                }
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
                needs.elb_reads = ElbReads { forwards: true, health: partial };
                needs.alarms = watched_alarms(r);
            }
            Phase::BlueGreen(BlueGreenPhase::Rollback { .. }) => {
                needs.task_sets = true;
                needs.target_groups = r.desired.as_ref().map(ecs_blue_green::target_groups).unwrap_or_default();
                needs.elb_reads = ElbReads { forwards: true, health: false };
            }
            Phase::BlueGreen(BlueGreenPhase::Promote) | Phase::BlueGreen(BlueGreenPhase::CleanUp) => needs.task_sets = true,
            Phase::Lambda(LambdaPhase::Shift { .. }) | Phase::Lambda(LambdaPhase::Bake { .. }) => {
                needs.alarms = r.desired_lambda.as_ref().map(|d| d.depdef.alarm_names.clone()).unwrap_or_default();
            }
            Phase::Lambda(LambdaPhase::Create)
            | Phase::Lambda(LambdaPhase::UpdateCode { .. })
            | Phase::Lambda(LambdaPhase::UpdateConfig { .. })
            | Phase::Lambda(LambdaPhase::Publish)
            | Phase::Lambda(LambdaPhase::Ready { .. })
            | Phase::Lambda(LambdaPhase::Wire { .. })
            | Phase::Lambda(LambdaPhase::CleanUp { .. })
            | Phase::Lambda(LambdaPhase::Rollback { .. })
            | Phase::Lambda(LambdaPhase::DeleteFunction) => {}
        }
    }
    if let Some(r) = record.filter(|r| r.in_flight() && r.operation == Operation::Deploy && before_first_mutation(&r.phase)) {
        for name in watched_alarms(r) {
            if !needs.alarms.contains(&name) {
                needs.alarms.push(name);
            }
        }
        if let Some(ecs) = r.desired.as_ref().filter(|d| d.strategy == EcsStrategy::BlueGreen) {
            // the depdef's target groups must exist before the service or its task set is made
            for tg in ecs_blue_green::target_groups(ecs) {
                if !needs.target_groups.contains(&tg) {
                    needs.target_groups.push(tg);
                }
            }
        }
    }
    if matches!(needs.identity, Some(Identity::Lambda { .. })) {
        needs.lambda = lambda_shift::lambda_needs(desired, applied, record);
    }
    needs
}

/// A svcdef without a taskdef file names its task definition by family, `family:revision` or
/// ARN; ECS reports ARNs, so a name is resolved before a deployment starts (and for a record
/// that holds a name from before this rule) — SPEC §3.1. A steady app is not resolved on
/// every look: only when a deployment of it is due to start.
fn named_task_definition_to_resolve(input: &StepInput<'_>) -> Option<String> {
    let name = match input.record.filter(|r| r.in_flight()).map(|r| &r.phase) {
        Some(Phase::Rolling(RollingPhase::Apply { task_definition }))
        | Some(Phase::BlueGreen(BlueGreenPhase::CreateService { task_definition } | BlueGreenPhase::CreateGreen { task_definition })) => {
            task_definition.clone()
        }
        Some(_) => return None,
        None => match input.desired {
            Desired::Present(app @ DesiredApp { spec: AppSpec::Ecs(ecs), .. }) if ecs.taskdef.is_none() && deploy_due(input, app) => {
                ecs_rolling::named_task_definition(ecs)
            }
            Desired::Present(_) | Desired::Blocked | Desired::Deleted | Desired::DeleteHeld | Desired::Invalid(_) => return None,
        },
    };
    (!name.is_empty() && !is_task_definition_arn(&name)).then_some(name)
}

/// Whether a task definition reference is a full ARN (what ECS reports).
pub fn is_task_definition_arn(name: &str) -> bool {
    name.starts_with("arn:") && name.contains(":task-definition/")
}

/// The task definition a svcdef without a taskdef file names, as an ARN when the observer
/// resolved it.
pub fn resolved_task_definition(input: &StepInput<'_>, named: String) -> String {
    match &input.observed.resolved_task_definition {
        Some(arn) if !is_task_definition_arn(&named) => arn.clone(),
        Some(_) | None => named,
    }
}

/// Starts a deployment of `app` with the strategy its svcdef selects.
pub fn start(input: &StepInput<'_>, app: &DesiredApp) -> DeploymentRecord {
    match &app.spec {
        AppSpec::Lambda(lambda) => lambda_shift::start(input, app, lambda),
        AppSpec::Ecs(ecs) => match ecs.strategy {
            EcsStrategy::Rolling => ecs_rolling::start(input, app, ecs),
            EcsStrategy::BlueGreen => ecs_blue_green::start(input, app, ecs),
        },
    }
}

/// A fresh ECS deployment record of `app` at `phase`, its start in the timeline.
fn started_record(input: &StepInput<'_>, app: &DesiredApp, strategy: Strategy, phase: Phase) -> DeploymentRecord {
    let mut record = new_record(input, Operation::Deploy, strategy, app.fingerprint.clone(), Some(app), phase);
    record.identity = app.identity.clone();
    record.log(
        input.now_ms,
        Level::Info,
        format!(
            "deployment started: commit {}, fingerprint {}, {strategy} update of {}",
            short_commit(input.commit),
            crate::spec::fingerprint::short(&app.fingerprint),
            app.identity
        ),
    );
    record
}

/// An operator's rollback of an in-flight deployment; `None` when its phase cannot roll back
/// (it has not changed anything yet, is past the point of no return, or is rolling back).
pub fn operator_rollback(input: &StepInput<'_>, record: &DeploymentRecord) -> Option<Plan> {
    let evidence = vec![format!("rollback requested by an operator during {}", record.phase.name())];
    match &record.phase {
        Phase::Rolling(_) => ecs_rolling::operator_rollback(input, record, evidence),
        Phase::BlueGreen(phase) => ecs_blue_green::operator_rollback(record, phase, input.now_ms, evidence),
        Phase::Lambda(phase) => lambda_shift::operator_rollback(record, phase, input.now_ms, evidence),
        Phase::Done => None,
    }
}

/// Continues an in-flight record with the strategy its phase belongs to.
pub fn continue_record(input: &StepInput<'_>, record: &DeploymentRecord) -> Plan {
    if let Some(plan) = refuse_before_first_mutation(input, record) {
        return plan;
    }
    match &record.phase {
        Phase::Rolling(phase) => ecs_rolling::step(input, record, phase),
        Phase::BlueGreen(phase) => ecs_blue_green::step(input, record, phase),
        Phase::Lambda(phase) => lambda_shift::step(input, record, phase),
        Phase::Done => Plan::wait(STEADY_REQUEUE),
    }
}

/// A phase in which the deployment has changed nothing in AWS yet: its first mutation is next
/// (issue 23, item 14: every check that can refuse a deployment runs here, before it).
pub fn before_first_mutation(phase: &Phase) -> bool {
    match phase {
        Phase::Rolling(RollingPhase::Register | RollingPhase::Apply { .. })
        | Phase::BlueGreen(BlueGreenPhase::Register | BlueGreenPhase::CreateService { .. })
        | Phase::Lambda(LambdaPhase::Create) => true,
        Phase::Lambda(LambdaPhase::UpdateCode { sent, .. }) => !sent,
        Phase::Rolling(
            RollingPhase::Stabilize { .. }
            | RollingPhase::Rollback { .. }
            | RollingPhase::RollbackStabilize { .. }
            | RollingPhase::DeleteService
            | RollingPhase::NativeStop { .. },
        )
        | Phase::BlueGreen(
            BlueGreenPhase::CreateGreen { .. }
            | BlueGreenPhase::Stabilize { .. }
            | BlueGreenPhase::Shift { .. }
            | BlueGreenPhase::Bake { .. }
            | BlueGreenPhase::Promote
            | BlueGreenPhase::CleanUp
            | BlueGreenPhase::Rollback { .. },
        )
        | Phase::Lambda(
            LambdaPhase::UpdateConfig { .. }
            | LambdaPhase::Publish
            | LambdaPhase::Ready { .. }
            | LambdaPhase::Shift { .. }
            | LambdaPhase::Bake { .. }
            | LambdaPhase::Wire { .. }
            | LambdaPhase::CleanUp { .. }
            | LambdaPhase::Rollback { .. }
            | LambdaPhase::DeleteFunction,
        )
        | Phase::Done => false,
    }
}

/// The CloudWatch alarms a deployment watches (its depdef's `alarms.alarmNames`, unless
/// `alarms.enable` is false).
pub fn watched_alarms(record: &DeploymentRecord) -> Vec<String> {
    match (&record.desired, &record.desired_lambda) {
        (Some(ecs), _) if ecs.depdef.alarms_enabled => ecs.depdef.alarm_names.clone(),
        (_, Some(lambda)) => lambda.depdef.alarm_names.clone(),
        _ => Vec::new(),
    }
}

/// The watched alarms in ALARM that roll the deployment back now. With `alarms.rollback: false`
/// none does: each firing alarm is written to the timeline (once while it fires) and the
/// deployment goes on.
pub fn alarms_that_roll_back(record: &DeploymentRecord, observed: &Observed, next: &mut DeploymentRecord, now_ms: u64) -> Vec<String> {
    let watched = watched_alarms(record);
    let firing: Vec<String> = observed.firing_alarms().into_iter().filter(|a| watched.contains(a)).collect();
    let rollback = record.desired.as_ref().is_none_or(|d| d.depdef.alarms_rollback);
    if rollback || firing.is_empty() {
        return firing;
    }
    let line = format!("alarm {} in ALARM: recorded, not rolled back (alarms.rollback is false)", firing.join(", "));
    if next.timeline.last().map(|e| e.message.as_str()) != Some(line.as_str()) {
        next.log(now_ms, Level::Warn, line);
    }
    Vec::new()
}

/// Who else owns a resource by its tags (issue 27): another repository, or another app of this
/// repository (another branch or folder) that this app neither owns nor took over by a move.
/// `None`: untagged, or this app's.
pub fn foreign_owner(input: &StepInput<'_>, tags: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let app = tags.get(ecs_rolling::TAG_APP);
    if let Some(repo) = tags.get(ecs_rolling::TAG_REPO).filter(|r| **r != crate::record::sanitize_tag(&input.key.repo)) {
        return Some(format!("repository {repo} (app {})", app.map_or("?", String::as_str)));
    }
    let mine = input.key.tag_value();
    app.filter(|a| **a != mine && !(input.applied.owned || input.moved)).map(|a| format!("app {a} of this repository"))
}

/// The tags of the service or function the step observed.
fn observed_tags<'a>(input: &'a StepInput<'_>) -> Option<&'a std::collections::BTreeMap<String, String>> {
    match input.observed.service.as_ref().filter(|s| s.status != ServiceStatus::Inactive) {
        Some(service) => Some(&service.tags),
        None => input.observed.lambda.function.as_ref().map(|f| &f.tags),
    }
}

/// A deployment fails before it changes anything (every strategy) when the resource it would
/// change belongs to another app, or a watched alarm does not exist (a misspelled alarm would
/// otherwise be "never firing").
fn refuse_before_first_mutation(input: &StepInput<'_>, record: &DeploymentRecord) -> Option<Plan> {
    if record.operation != Operation::Deploy || !before_first_mutation(&record.phase) {
        return None;
    }
    let (cause, why) = pre_mutation_refusal(input, record)?;
    Some(refused(record, cause, why, input.now_ms))
}

/// Why the deployment may not make its first change, if it may not.
fn pre_mutation_refusal(input: &StepInput<'_>, record: &DeploymentRecord) -> Option<(FailureCause, String)> {
    let tags = observed_tags(input);
    let untagged = tags.is_some_and(|tags| !tags.contains_key(ecs_rolling::TAG_APP) && !tags.contains_key(ecs_rolling::TAG_REPO));
    if untagged && !input.applied.owned && !input.adopt_untagged {
        let why = format!(
            "{} exists and gitmoxi did not create it (it has no gitmoxi tags): nothing was changed; set adopt_untagged = true in the repository's [[repos]] to let this app take it over, or name another service or function",
            record.identity
        );
        return Some((FailureCause::NotOwned, why));
    }
    if let Some(owner) = tags.and_then(|tags| foreign_owner(input, tags)) {
        return Some((
            FailureCause::NotOwned,
            format!("{} belongs to {owner} (its gitmoxi tags say so): nothing was changed", record.identity),
        ));
    }
    let watched = watched_alarms(record);
    let missing: Vec<&str> =
        input.observed.alarms.iter().filter(|a| a.state.is_none() && watched.contains(&a.name)).map(|a| a.name.as_str()).collect();
    if !missing.is_empty() {
        let why = format!(
            "alarm {} of alarms.alarmNames does not exist in CloudWatch: create it or remove it from the depdef (nothing was changed)",
            missing.join(", ")
        );
        return Some((FailureCause::ValidationError, why));
    }
    let group = input.observed.elb.as_ref().and_then(|e| e.missing_target_groups.first())?;
    let why = format!("target group {group} of the depdef does not exist: create it or fix targetGroupArnPairs (nothing was changed)");
    Some((FailureCause::ValidationError, why))
}

/// Ends `record` as failed with `cause`, before any AWS change: `why` goes to its evidence and
/// timeline.
fn refused(record: &DeploymentRecord, cause: FailureCause, why: String, now_ms: u64) -> Plan {
    let mut failed = record.clone();
    failed.evidence.push(why.clone());
    failed.log(now_ms, Level::Error, why);
    let (failed, completion) = fail_record(&failed, cause, now_ms);
    Plan { finished: Some((failed, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

/// Before observing AWS: decides from the commands, the drift cadence, the record and the head
/// whether this pass looks at AWS at all, and what it must fetch.
pub fn look(input: &StepInput<'_>) -> Look {
    match look_without_cap(input) {
        Look::Skip(plan) => Look::Skip(finalize(input, plan)),
        observe @ Look::Observe(_) => observe,
    }
}

fn look_without_cap(input: &StepInput<'_>) -> Look {
    let commands = &input.commands;
    let in_flight = input.record.filter(|r| r.in_flight());
    if commands.paused && in_flight.is_none() {
        // no new deployment until resumed (an in-flight one is observed: its guards stay on)
        return Look::Skip(Plan::wait(PAUSED_REQUEUE));
    }
    if let Some(hold) = held(input) {
        // nothing starts; what runs keeps running (issue 26)
        return Look::Skip(Plan::wait(hold.recheck_after(input.now_ms)));
    }
    if let Some(plan) = foreign_account(input) {
        return Look::Skip(plan);
    }
    if let (Desired::Invalid(invalid), None) = (input.desired, in_flight) {
        // nothing in AWS to look at: the failure is the files'
        return Look::Skip(record_invalid(input, invalid));
    }
    if commands.rollback && in_flight.is_none() {
        let mut plan = Plan::wait(Duration::ZERO);
        plan.consumed.rollback = true;
        plan.notes.push(Note::new(
            Level::Warn,
            format!(
                "rollback requested, but no deployment is in flight; `gitmoxi rollback {} --to previous` rolls a steady app back to its previous release and pins it there",
                input.key.prefix
            ),
        ));
        return Look::Skip(plan);
    }
    let rebalance = commands.rebalance.filter(|_| in_flight.is_none());
    if drift_due(input).is_none()
        && rebalance.is_none()
        && !must_observe(&input.desired, input.applied, input.record, commands.force, input.moved, input.own_account)
    {
        return Look::Skip(Plan::wait(STEADY_REQUEUE));
    }
    let mut needs = observe_needs(&input.desired, input.applied, input.record);
    needs.resolve_task_definition = named_task_definition_to_resolve(input);
    needs.task_sets |= rebalance.is_some();
    if let Desired::Present(app @ DesiredApp { spec: AppSpec::Ecs(ecs), .. }) = &input.desired {
        if adopt::wanted(input) && deploy_due(input, app) {
            needs.adoption = true;
            needs.task_sets |= ecs.strategy == crate::spec::ecs::EcsStrategy::BlueGreen;
        }
    }
    if drift_due(input).is_some() {
        // a drift comparison of a Lambda app covers its event sources too
        if let (Some((_, wiring @ None)), Desired::Present(DesiredApp { spec: AppSpec::Lambda(app), .. })) =
            (&mut needs.lambda, &input.desired)
        {
            *wiring = Some(lambda_shift::wiring_to_observe(app, input.applied));
        }
    }
    if needs.identity.is_none() {
        return Look::Skip(Plan::wait(STEADY_REQUEUE));
    }
    needs.metrics = analysis_due(input);
    if let Some(record) = input.record.filter(|r| r.in_flight()) {
        let hook = hook_gate::needs(record);
        (needs.hook_tasks, needs.hook_task_definition, needs.invoke) = (hook.tasks, hook.task_definition, hook.invoke);
    }
    Look::Observe(needs)
}

/// The GetMetricData request of the in-flight deployment's analysis, when a run is due now: the
/// wait of a traffic step (or the bake) is over and the step has no deciding run yet.
fn analysis_due(input: &StepInput<'_>) -> Option<crate::analysis::queries::MetricRequest> {
    let record = input.record.filter(|r| r.in_flight())?;
    let now = input.now_ms;
    match &record.phase {
        Phase::BlueGreen(phase @ (BlueGreenPhase::Shift { .. } | BlueGreenPhase::Bake { .. })) => {
            ecs_blue_green::analysis_request(record, phase, now)
        }
        Phase::Lambda(phase @ (LambdaPhase::Shift { .. } | LambdaPhase::Bake { .. })) => lambda_shift::analysis_request(record, phase, now),
        // ECS's own strategies: a PAUSE hook before a production step the analysis answers
        Phase::Rolling(RollingPhase::Stabilize { .. }) => ecs_rolling::native::analysis_request(record, now),
        Phase::BlueGreen(_) | Phase::Lambda(_) | Phase::Rolling(_) | Phase::Done => None,
    }
}

/// An app in an account (or region) this controller may not act in fails before anything is
/// observed or changed (SPEC §7.4): no role is configured for its account, or its region is not
/// among the role's. The controller's own credentials would deploy into the wrong account. The
/// fingerprint is quarantined like any failure.
fn foreign_account(input: &StepInput<'_>) -> Option<Plan> {
    if input.record.is_some_and(|r| r.in_flight()) {
        return None;
    }
    let Desired::Present(app) = input.desired else { return None };
    let (account, region) = match &app.identity {
        Identity::Ecs { account, region, .. } | Identity::Lambda { account, region, .. } => (account.as_deref(), region.as_str()),
    };
    if !deploy_due(input, app) {
        return None;
    }
    let cause = input.account_roles.access(input.own_account, account, region).err()?;
    let (failed, completion) = fail_record(&start(input, app), cause, input.now_ms);
    Some(Plan { finished: Some((failed, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() })
}

/// One planning step, with what was observed (or AWS's refusal) in `input`.
pub fn step(input: &StepInput<'_>) -> Plan {
    finalize(input, decide(input))
}

fn decide(input: &StepInput<'_>) -> Plan {
    let in_flight = input.record.filter(|r| r.in_flight());
    if let Some(cause) = input.refusal {
        return on_refusal(input, cause.clone());
    }
    if let (true, Some(record)) = (input.commands.paused, in_flight) {
        return hold_paused(record, advance(input));
    }
    if let (Some(asked), None) = (input.commands.rebalance, in_flight) {
        return rebalance(input, asked);
    }
    if let (true, Some(record)) = (input.commands.rollback, in_flight) {
        let mut plan = match operator_rollback(input, record) {
            Some(plan) => plan,
            None => {
                let mut plan = advance(input);
                let why = format!("rollback requested, but phase {} cannot roll back; it finishes on its own", record.phase.name());
                plan.notes.push(Note::new(Level::Warn, why));
                plan
            }
        };
        plan.consumed.rollback = true;
        return plan;
    }
    advance(input)
}

/// A paused deployment keeps its guards on (SPEC §6.2, issue 12): a step that rolls back or
/// fails — an alarm, the circuit breaker, a timeout — goes ahead, and so does a rollback under
/// way; a step that would move on (shift traffic, promote, finish, supersede) waits, with the
/// traffic where it is, until the operator resumes.
fn hold_paused(record: &DeploymentRecord, plan: Plan) -> Plan {
    let rolling_back = record.cause.is_some();
    let guard_fired = plan.next_record.as_ref().is_some_and(|r| r.cause.is_some())
        || plan.finished.as_ref().is_some_and(|(r, _)| r.id == record.id && r.cause.is_some());
    if rolling_back || guard_fired {
        return plan;
    }
    Plan::wait(PAUSED_WATCH)
}

/// What every plan gets last: a forced redeploy is used up by the deployment it starts, a
/// drift finding not reported before becomes a note, and no look is later than the next drift
/// comparison.
fn finalize(input: &StepInput<'_>, mut plan: Plan) -> Plan {
    if input.commands.force && plan.starts_deployment(input.record) {
        plan.consumed.force = true;
    }
    if let Some(by) = input.commands.override_freeze.as_ref().filter(|_| plan.starts_deployment(input.record)) {
        plan.consumed.override_freeze = true;
        plan.notes.push(Note {
            level: Level::Warn,
            message: format!("freeze overridden by {by}: this change started during a freeze"),
            commit: Some(input.commit.to_string()),
        });
    }
    if let Some(Some(why)) = &plan.drift {
        if input.drift.is_new(Some(why)) {
            plan.notes.push(Note { level: Level::Warn, message: format!("drift: {why}"), commit: Some(input.commit.to_string()) });
        }
    }
    if head_wants_more(input, &plan) {
        // level-triggered (SPEC §1.5): the pass that ends a deployment compares the app with the
        // head's current intent at once, whatever phase the newer intent arrived in
        plan.requeue_after = Duration::ZERO;
    }
    plan.requeue_after = plan.requeue_after.min(input.drift.interval.max(MIN_DRIFT_REQUEUE));
    plan
}

/// Whether a plan that ends a deployment and starts none leaves the app short of the head's
/// intent: a delete, another fingerprint, a move, or a deploy after a delete.
pub fn head_wants_more(input: &StepInput<'_>, plan: &Plan) -> bool {
    if plan.in_flight_after(input.record).is_some() {
        return false;
    }
    let endings = plan.endings();
    let Some((ended, _)) = endings.last() else { return false };
    match input.desired {
        Desired::Deleted => ended.operation != Operation::Delete,
        Desired::Present(app) => ended.operation == Operation::Delete || ended.fingerprint != app.fingerprint || input.moved,
        Desired::Invalid(_) => ended.fingerprint != invalid_marker(input.commit),
        Desired::DeleteHeld | Desired::Blocked => false,
    }
}

/// The drift policy when a steady, applied app is due for a comparison with AWS.
pub fn drift_due(input: &StepInput<'_>) -> Option<DriftPolicy> {
    if input.record.is_some_and(|r| r.in_flight()) || !input.drift.due(input.now_ms) {
        return None;
    }
    let Desired::Present(app) = input.desired else { return None };
    input.applied.is_applied(&app.fingerprint).then_some(input.drift.policy)
}

/// An operator's rebalance of a steady blue/green service: set the absolute scales, and once
/// AWS shows them (or the rebalance cannot apply), consume the command with a note. The command
/// stays until then, so a crash in between replays the same absolute scales.
fn rebalance(input: &StepInput<'_>, asked: crate::commands::Rebalance) -> Plan {
    let mut plan = match ecs_blue_green::rebalance(input, asked) {
        Ok((actions, _)) if !actions.is_empty() => return Plan { actions, requeue_after: Duration::ZERO, ..Plan::default() },
        Ok((_, target)) => {
            let (primary, fallback) = (target.primary_percent, target.fallback_percent);
            let message = format!("rebalanced by an operator: {primary} % primary, {fallback} % fallback");
            Plan { notes: vec![Note::new(Level::Info, message)], ..Plan::wait(STEADY_REQUEUE) }
        }
        Err(why) => Plan { notes: vec![Note::new(Level::Warn, format!("rebalance requested, but {why}"))], ..Plan::wait(STEADY_REQUEUE) },
    };
    plan.consumed.rebalance = true;
    plan
}

/// AWS refused the observation or an action for good: the in-flight deployment fails with that
/// cause; a deployment that was due to start is recorded as failed; a rebalance is dropped with
/// a note; anything else waits for the next look.
fn on_refusal(input: &StepInput<'_>, cause: FailureCause) -> Plan {
    let in_flight = input.record.filter(|r| r.in_flight());
    if let (Some(_), None) = (input.commands.rebalance, in_flight) {
        let note = Note::new(Level::Error, format!("rebalance failed: {cause}; run it again once the cause is fixed"));
        let consumed = crate::commands::Consumed { rebalance: true, ..Default::default() };
        return Plan { notes: vec![note], consumed, ..Plan::wait(STEADY_REQUEUE) };
    }
    let record = match in_flight {
        Some(r) => r.clone(),
        None => match input.desired {
            Desired::Present(app) if deploy_due(input, app) => start(input, app),
            Desired::Present(_) | Desired::Blocked | Desired::Deleted | Desired::DeleteHeld | Desired::Invalid(_) => {
                return Plan::wait(STEADY_REQUEUE)
            }
        },
    };
    let (record, completion) = fail_record(&record, cause, input.now_ms);
    Plan { finished: Some((record, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

/// Moves the app toward its desired state: continue, supersede or start a deployment, delete,
/// compare with AWS when drift is due, or wait.
fn advance(input: &StepInput<'_>) -> Plan {
    if let Some(record) = input.record.filter(|r| r.in_flight()) {
        if let Desired::Present(app) = input.desired {
            let newer = record.operation == Operation::Deploy
                && app.fingerprint != record.fingerprint
                && (input.commands.force || !input.applied.failed.contains(&app.fingerprint));
            if newer {
                let (at_once, rollback_first) = match &record.phase {
                    Phase::Rolling(RollingPhase::NativeStop { .. }) => (false, None),
                    Phase::Rolling(_) => match ecs_rolling::native::stop_in_flight(
                        input,
                        record,
                        ecs_rolling::native::StopFor::Superseded { commit: input.commit },
                    ) {
                        Some(plan) => (false, Some(plan)),
                        None => (true, None),
                    },
                    Phase::Done => (true, None),
                    Phase::BlueGreen(phase) => {
                        (ecs_blue_green::supersedes_at_once(phase), ecs_blue_green::supersede(record, phase, input.now_ms, input.commit))
                    }
                    Phase::Lambda(phase) => {
                        (lambda_shift::supersedes_at_once(phase), lambda_shift::supersede(record, phase, input.now_ms, input.commit))
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
            if deploy_due(input, app) {
                if let Some(plan) = adopt::adopt(input, app) {
                    return plan;
                }
                let record = start(input, app);
                return Plan { next_record: Some(record), requeue_after: Duration::ZERO, ..Plan::default() };
            }
            if let Some(plan) = retire(input, app) {
                return plan;
            }
            if let Some(policy) = drift_due(input) {
                let found = crate::drift::detect(app, input.applied, input.observed, &policy);
                if let (Some(why), crate::drift::DriftMode::Heal) = (&found, policy.mode) {
                    let mut record = start(input, app);
                    record.log(input.now_ms, Level::Warn, format!("drift: {why}; redeploying the applied state"));
                    return Plan { next_record: Some(record), drift: Some(found), requeue_after: Duration::ZERO, ..Plan::default() };
                }
                let mut plan = match app.kind {
                    crate::spec::AppKind::Ecs => ecs_rolling::steady(input),
                    crate::spec::AppKind::Lambda => Plan::wait(STEADY_REQUEUE),
                };
                plan.drift = Some(found);
                return plan;
            }
            match app.kind {
                crate::spec::AppKind::Ecs => ecs_rolling::steady(input),
                crate::spec::AppKind::Lambda => Plan::wait(STEADY_REQUEUE),
            }
        }
        Desired::Deleted if matches!(input.applied.identity, Some(Identity::Lambda { .. })) => lambda_shift::start_delete(input),
        Desired::Deleted if input.applied.fingerprint.is_some() || input.applied.owned => {
            let gone = input.observed.service.as_ref().filter(|s| s.status != ServiceStatus::Inactive).is_none();
            let phase = Phase::Rolling(RollingPhase::DeleteService);
            let mut record = new_record(input, Operation::Delete, Strategy::Delete, String::new(), None, phase);
            if gone {
                record.log(input.now_ms, Level::Info, "service already gone; forgetting the app");
                record.finish(Outcome::Deleted, input.now_ms);
            } else {
                record.log(input.now_ms, Level::Info, "the svcdef is gone from the branch head: deleting the service");
            }
            Plan { next_record: Some(record), requeue_after: Duration::ZERO, ..Plan::default() }
        }
        Desired::Invalid(invalid) => record_invalid(input, invalid),
        Desired::Deleted | Desired::DeleteHeld | Desired::Blocked => Plan::wait(STEADY_REQUEUE),
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
    Plan { finished: Some((old, Completion::Nothing)), next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Builds a fresh record for this app.
pub fn new_record(
    input: &StepInput<'_>,
    operation: Operation,
    strategy: Strategy,
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
    let account_id = match identity.in_account(input.own_account) {
        Identity::Ecs { account, .. } | Identity::Lambda { account, .. } => account,
    };
    DeploymentRecord {
        id: input.new_deployment_id.to_string(),
        app: input.key.clone(),
        kind: desired.map_or(crate::spec::AppKind::Ecs, |d| d.kind),
        commit: input.commit.to_string(),
        fingerprint,
        identity,
        account_id,
        operation,
        strategy,
        desired: ecs,
        desired_lambda: desired.and_then(|d| match &d.spec {
            AppSpec::Lambda(l) => Some(l.clone()),
            AppSpec::Ecs(_) => None,
        }),
        previous_version: None,
        previous_task_definition: None,
        previous_service: None,
        forced: false,
        phase,
        status: DeploymentStatus::Processing,
        outcome: None,
        cause: None,
        evidence: Vec::new(),
        traffic: None,
        task_set_scales: None,
        task_set_arns: None,
        awaiting_approval: None,
        approvals: Vec::new(),
        hooks: Vec::new(),
        analysis: None,
        started_at_ms: input.now_ms,
        updated_at_ms: input.now_ms,
        finished_at_ms: None,
        timeline: Vec::new(),
    }
}

/// Once the app runs under its new identity, the service it owned under a former one (a
/// `serviceName` change, a region or account move) is deleted like a removed app's — its tags
/// checked, never another app's (issue 23, item 16). Lambda functions are left in place (the
/// history says so).
fn retire(input: &StepInput<'_>, app: &DesiredApp) -> Option<Plan> {
    let former = input.applied.retired.first()?;
    if !input.applied.is_applied(&app.fingerprint) {
        return None;
    }
    let mut record = new_record(input, Operation::Delete, Strategy::Delete, String::new(), None, Phase::Done);
    record.identity = former.clone();
    match former {
        Identity::Ecs { .. } => {
            record.log(
                input.now_ms,
                Level::Info,
                format!("{} now runs as {}: deleting the former service {former}", app.prefix, app.identity),
            );
            record.enter(Phase::Rolling(RollingPhase::DeleteService), input.now_ms);
            Some(Plan { next_record: Some(record), requeue_after: Duration::ZERO, ..Plan::default() })
        }
        Identity::Lambda { .. } => {
            record.log(
                input.now_ms,
                Level::Warn,
                format!("the former function {former} is left in place: delete it by hand if it is no longer needed"),
            );
            record.finish(Outcome::Deleted, input.now_ms);
            Some(Plan { finished: Some((record, Completion::Retired { identity: former.clone() })), ..Plan::wait(Duration::ZERO) })
        }
    }
}

/// The fingerprint a failure of invalid files is recorded under: one per commit, so each bad
/// commit is recorded (and notified) once.
fn invalid_marker(commit: &str) -> String {
    format!("invalid:{commit}")
}

/// The head's files of the app do not render or validate (issue 23, item 11): once per commit,
/// a deployment record that failed with `TemplateError` or `ValidationError`, every diagnostic
/// as evidence — the executor stores it, notifies it and posts a failing commit status. AWS is
/// not touched; what runs keeps running.
fn record_invalid(input: &StepInput<'_>, invalid: &crate::spec::InvalidApp) -> Plan {
    let marker = invalid_marker(input.commit);
    if input.applied.failed.contains(&marker) {
        return Plan::wait(STEADY_REQUEUE);
    }
    let strategy = match invalid.kind {
        crate::spec::AppKind::Ecs => Strategy::Rolling,
        crate::spec::AppKind::Lambda => Strategy::Lambda,
    };
    let mut record = new_record(input, Operation::Deploy, strategy, marker, None, Phase::Done);
    record.kind = invalid.kind;
    let cause = match invalid.stage {
        crate::spec::InvalidStage::Render => FailureCause::TemplateError,
        crate::spec::InvalidStage::Validate => FailureCause::ValidationError,
    };
    record.evidence = invalid.errors.iter().take(20).map(ToString::to_string).collect();
    record.log(
        input.now_ms,
        Level::Error,
        format!("commit {} is not deployable: {}; nothing in AWS was changed", short_commit(input.commit), record.evidence.join("; ")),
    );
    let (failed, completion) = fail_record(&record, cause, input.now_ms);
    Plan { finished: Some((failed, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

/// Whether the head's app is due for a deployment: a new fingerprint, a forced one, or the
/// applied one in another place (region, account).
/// The hold that keeps the app's change from starting this pass: the input's hold, when nothing
/// is in flight and a deployment or delete would start (a steady app is never held).
pub fn held<'a>(input: &StepInput<'a>) -> Option<&'a crate::release::Hold> {
    let hold = input.hold?;
    if input.record.is_some_and(|r| r.in_flight()) {
        return None;
    }
    let starts = match &input.desired {
        Desired::Present(app) => deploy_due(input, app) || input.moved,
        Desired::Deleted => input.applied.fingerprint.is_some() || input.applied.owned,
        Desired::DeleteHeld | Desired::Blocked | Desired::Invalid(_) => false,
    };
    starts.then_some(hold)
}

fn deploy_due(input: &StepInput<'_>, app: &DesiredApp) -> bool {
    input.applied.should_deploy_to(&app.fingerprint, &app.identity, input.own_account, input.commands.force)
}

/// The first 10 characters of a commit id, for messages.
pub fn short_commit(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Whether this step must look at AWS at all. A steady app whose fingerprint is applied is left
/// alone (no AWS call when nothing changed) unless it was just moved (its tags change) or forced.
pub fn must_observe(
    desired: &Desired<'_>,
    applied: &AppliedState,
    record: Option<&DeploymentRecord>,
    force: bool,
    moved: bool,
    own: Option<&str>,
) -> bool {
    if record.is_some_and(|r| r.in_flight()) {
        return true;
    }
    match desired {
        Desired::Present(app) => {
            moved || !applied.retired.is_empty() || applied.should_deploy_to(&app.fingerprint, &app.identity, own, force)
        }
        Desired::Deleted => applied.fingerprint.is_some() || applied.owned,
        Desired::DeleteHeld | Desired::Blocked | Desired::Invalid(_) => false,
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
