//! The deployment record: the persisted cursor of one deployment (SPEC §6.1, §7.2).
//!
//! Invariants: `Phase` has one variant per resumable step holding only that step's data; a record
//! is written and flushed before the AWS call its phase leads to; the timeline is bounded.

use crate::schedule::Weights;
use crate::spec::{AppKind, EcsApp, Identity, LambdaApp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The most timeline events one record keeps (oldest dropped first).
pub const MAX_TIMELINE: usize = 200;

/// Gitmoxi-compatible deployment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    /// The deployment is under way.
    Processing,
    /// The deployment ended well: succeeded, superseded or deleted.
    ProcessedSuccess,
    /// The deployment ended badly: rolled back or failed.
    ProcessedError,
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// AWS runs what the files set.
    Succeeded,
    /// A guard fired and the previous version runs again.
    RolledBack,
    /// The deployment stopped without a rollback target (or the rollback itself failed).
    Failed,
    /// A newer commit took over before this one finished.
    Superseded,
    /// The resource was deleted as the head asked.
    Deleted,
}

impl Outcome {
    /// The Gitmoxi status this outcome reports.
    pub fn status(self) -> DeploymentStatus {
        match self {
            Outcome::Succeeded | Outcome::Deleted | Outcome::Superseded => DeploymentStatus::ProcessedSuccess,
            Outcome::RolledBack | Outcome::Failed => DeploymentStatus::ProcessedError,
        }
    }

    /// The outcome as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::Superseded => "superseded",
            Outcome::Deleted => "deleted",
        }
    }
}

/// Why a deployment failed: the fixed taxonomy of SPEC §6.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FailureCause {
    /// The app's template did not render.
    TemplateError,
    /// The app's files are not a valid app.
    ValidationError,
    /// AWS answered AccessDenied.
    PermissionDenied {
        /// The AWS operation that was refused.
        operation: String,
    },
    /// A task could not pull its container image.
    ImagePullFailure,
    /// A container was killed for using more memory than its limit (issue 25).
    OutOfMemory,
    /// A task could not start because its execution role may not read what it needs (secrets,
    /// registry credentials, log group) (issue 25).
    TaskSetupDenied,
    /// The task's essential container exited.
    ContainerExited {
        /// The exit code of the essential container.
        code: i32,
    },
    /// The load balancer or container health check failed.
    HealthCheckFailed,
    /// No capacity could place the tasks.
    CapacityUnavailable,
    /// The tasks did not become stable before the deadline.
    StabilityTimeout {
        /// How long the deployment waited for stability.
        waited_secs: u64,
    },
    /// Too many tasks failed to start (SPEC §5.2).
    CircuitBreakerTripped {
        /// Tasks that failed to start in this deployment.
        failed_tasks: u32,
        /// The failed-task count that trips the breaker.
        threshold: u32,
    },
    /// A CloudWatch alarm the deployment watches went into ALARM.
    AlarmFired {
        /// The alarms found in ALARM.
        alarms: Vec<String>,
    },
    /// AWS kept failing with retryable errors beyond the retry budget.
    AwsUnavailable {
        /// The AWS operation that kept failing.
        operation: String,
    },
    /// AWS refused a request for a reason that retrying will not fix (e.g. ClusterNotFoundException).
    AwsRejected {
        /// The AWS operation that was refused.
        operation: String,
        /// The AWS error code.
        code: String,
        /// The AWS error message.
        message: String,
    },
    /// The service exists but gitmoxi neither created nor adopted it.
    NotOwned,
    /// An operator asked for the rollback (`gitmoxi rollback APP`).
    OperatorRollback,
    /// The app names an account the controller has no role for (SPEC §7.4): nothing was touched.
    AccountNotConfigured {
        /// The account the app names.
        account: String,
        /// The controller's own account, when STS told it.
        own: Option<String>,
    },
    /// The app's region is not among the regions its account's role may be used in.
    AccountRegionNotAllowed {
        /// The account the app names.
        account: String,
        /// The app's region.
        region: String,
        /// The account's `regions`.
        allowed: Vec<String>,
    },
    /// ECS ended its own deployment (BLUE_GREEN, LINEAR, CANARY) with a rollback or a stop: its
    /// circuit breaker, its alarms or a failed lifecycle hook.
    EcsRolledBack {
        /// The service deployment's final status (ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED, STOPPED).
        status: String,
        /// ECS's reason.
        reason: String,
    },
    /// An operator rejected the deployment at an approval gate.
    ApprovalRejected {
        /// Who rejected it.
        by: String,
    },
    /// Nobody answered an approval gate in time and its `onTimeout` is rollback.
    ApprovalTimedOut {
        /// The gate.
        gate: String,
        /// How long it waited.
        waited_secs: u64,
    },
    /// A hook failed or outlived its timeout (issue 25).
    HookFailed {
        /// The hook (`beforeShift`, `afterShift`, `beforePromote`).
        hook: String,
        /// How it ended: the task's stop reason and exit codes, or the function's error.
        detail: String,
    },
    /// A metric analysis check failed (issue 25): its name and numbers.
    AnalysisFailed {
        /// The check that failed first.
        check: String,
        /// Its numbers ("green 412 ms vs blue 180 ms (+129 %, tolerance 25 %, p = 0.003)").
        detail: String,
    },
    /// The metric analysis stayed inconclusive (too few samples) and `onInconclusive` is
    /// rollback, or a hold was not answered in time.
    AnalysisInconclusive {
        /// Inconclusive runs in a row.
        runs: u32,
        /// Why the last one was.
        detail: String,
    },
    /// After the deployment, AWS does not hold what the files say (issue 23): the fields that
    /// differ, each as "AWS holds … for /pointer; the file says …".
    AwsDiffers {
        /// One line per differing field.
        fields: Vec<String>,
    },
    /// STS refused the account's role (AssumeRole): nothing was touched in that account.
    AssumeRoleFailed {
        /// The account the app names.
        account: String,
        /// STS's error code (e.g. AccessDenied).
        code: String,
        /// STS's message, with the role.
        message: String,
    },
}

impl FailureCause {
    /// Stable label for metrics and APIs.
    pub fn label(&self) -> &'static str {
        match self {
            FailureCause::TemplateError => "template_error",
            FailureCause::ValidationError => "validation_error",
            FailureCause::PermissionDenied { .. } => "permission_denied",
            FailureCause::ImagePullFailure => "image_pull_failure",
            FailureCause::OutOfMemory => "out_of_memory",
            FailureCause::TaskSetupDenied => "task_setup_denied",
            FailureCause::ContainerExited { .. } => "container_exited",
            FailureCause::HealthCheckFailed => "health_check_failed",
            FailureCause::CapacityUnavailable => "capacity_unavailable",
            FailureCause::StabilityTimeout { .. } => "stability_timeout",
            FailureCause::CircuitBreakerTripped { .. } => "circuit_breaker_tripped",
            FailureCause::AlarmFired { .. } => "alarm_fired",
            FailureCause::AwsUnavailable { .. } => "aws_unavailable",
            FailureCause::AwsRejected { .. } => "aws_rejected",
            FailureCause::NotOwned => "not_owned",
            FailureCause::OperatorRollback => "operator_rollback",
            FailureCause::AccountNotConfigured { .. } => "account_not_configured",
            FailureCause::AccountRegionNotAllowed { .. } => "account_region_not_allowed",
            FailureCause::AssumeRoleFailed { .. } => "assume_role_failed",
            FailureCause::EcsRolledBack { .. } => "ecs_rolled_back",
            FailureCause::ApprovalRejected { .. } => "approval_rejected",
            FailureCause::ApprovalTimedOut { .. } => "approval_timed_out",
            FailureCause::AwsDiffers { .. } => "aws_differs",
            FailureCause::AnalysisFailed { .. } => "analysis_failed",
            FailureCause::HookFailed { .. } => "hook_failed",
            FailureCause::AnalysisInconclusive { .. } => "analysis_inconclusive",
        }
    }
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::TemplateError => write!(f, "template error"),
            FailureCause::ValidationError => write!(f, "validation error"),
            FailureCause::PermissionDenied { operation } => write!(f, "AWS permission denied for {operation}"),
            FailureCause::ImagePullFailure => write!(f, "image pull failure"),
            FailureCause::OutOfMemory => write!(f, "a container ran out of memory"),
            FailureCause::TaskSetupDenied => write!(f, "the task's execution role was denied what the task needs to start"),
            FailureCause::ContainerExited { code } => write!(f, "container exited with code {code}"),
            FailureCause::HealthCheckFailed => write!(f, "health check failed"),
            FailureCause::CapacityUnavailable => write!(f, "capacity unavailable"),
            FailureCause::StabilityTimeout { waited_secs } => write!(f, "stability timeout after {waited_secs} s"),
            FailureCause::CircuitBreakerTripped { failed_tasks, threshold } => {
                write!(f, "circuit breaker tripped: {failed_tasks} new tasks failed (threshold {threshold})")
            }
            FailureCause::AlarmFired { alarms } => write!(f, "alarm fired: {}", alarms.join(", ")),
            FailureCause::AwsUnavailable { operation } => write!(f, "throttled or AWS unavailable during {operation}"),
            FailureCause::AwsRejected { operation, code, message } => write!(f, "AWS rejected {operation}: {code}: {message}"),
            FailureCause::NotOwned => write!(f, "the AWS resource is not owned by this app"),
            FailureCause::OperatorRollback => write!(f, "rollback requested by an operator"),
            FailureCause::AccountNotConfigured { account, own } => write!(
                f,
                "no role configured for account {account}: this gitmoxi runs in account {}",
                own.as_deref().unwrap_or("unknown (STS GetCallerIdentity failed at start)")
            ),
            FailureCause::AccountRegionNotAllowed { account, region, allowed } => {
                write!(f, "region {region} is not allowed for account {account} (its regions: {})", allowed.join(", "))
            }
            FailureCause::EcsRolledBack { status, reason } => write!(f, "ECS rolled its deployment back ({status}): {reason}"),
            FailureCause::ApprovalRejected { by } => write!(f, "rejected at an approval gate by {by}"),
            FailureCause::ApprovalTimedOut { gate, waited_secs } => {
                write!(f, "nobody answered the approval gate {gate} within {waited_secs} s")
            }
            FailureCause::AssumeRoleFailed { account, code, message } => {
                write!(f, "could not assume the role of account {account}: {code}: {message}")
            }
            FailureCause::AnalysisFailed { check, detail } => write!(f, "metric analysis failed: {check}: {detail}"),
            FailureCause::HookFailed { hook, detail } => write!(f, "hook {hook} failed: {detail}"),
            FailureCause::AnalysisInconclusive { runs, detail } => {
                write!(f, "metric analysis inconclusive after {runs} runs: {detail}")
            }
            FailureCause::AwsDiffers { fields } => {
                write!(f, "AWS does not hold what the files say: {}", fields.join("; "))
            }
        }
    }
}

/// What the deployment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Create or update the resource.
    Deploy,
    /// Delete the resource.
    Delete,
}

/// How a deployment record proceeds. Stored as the words stores already hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// ECS rolling update (deploymentController ECS or absent).
    Rolling,
    /// gitmoxi blue/green with task sets (deploymentController EXTERNAL).
    BlueGreen,
    /// Lambda through an alias.
    Lambda,
    /// The delete of a service or a function.
    Delete,
}

impl Strategy {
    /// Stable name for APIs, metrics and notifications.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::BlueGreen => "blue_green",
            Strategy::Lambda => "lambda",
            Strategy::Delete => "delete",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resumable steps, one nested enum per strategy. Each step holds only its own data;
/// every step re-derives the rest from what it observes. Stored in the flat form of
/// [`PhaseWire`] (`{"phase": "bg_shift", …}`), so stores written before the nesting read as
/// they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PhaseWire", into = "PhaseWire")]
pub enum Phase {
    /// ECS rolling deployments, and the delete of a service.
    Rolling(RollingPhase),
    /// gitmoxi's blue/green with task sets (deploymentController EXTERNAL).
    BlueGreen(BlueGreenPhase),
    /// Lambda deployments through an alias, and the delete of a function.
    Lambda(LambdaPhase),
    /// Finished; the record's `outcome` says how.
    Done,
}

/// The steps of an ECS rolling deployment (and of deleting a service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollingPhase {
    /// Register the task definition, tagged with the deployment id so a replay finds it again.
    Register,
    /// Create the service, or update it, with this task definition.
    Apply {
        /// The task definition ARN the service moves to.
        task_definition: String,
    },
    /// Wait until the new revision's tasks are stable; watch the circuit breaker.
    Stabilize {
        /// The task definition ARN that must be stable.
        task_definition: String,
        /// When waiting ends as a stability timeout.
        deadline_ms: u64,
    },
    /// Put the last good task definition back on the service.
    Rollback {
        /// The task definition ARN to put back.
        to_task_definition: String,
    },
    /// Wait until the rolled-back revision is stable again.
    RollbackStabilize {
        /// The task definition ARN put back.
        to_task_definition: String,
        /// When waiting ends and the deployment fails.
        deadline_ms: u64,
    },
    /// Scale the service to zero, delete its task sets, delete it.
    DeleteService,
    /// gitmoxi asked ECS to stop its own deployment and roll back (StopServiceDeployment):
    /// wait until ECS ends it. The record's cause says why; a superseded record ends as such.
    NativeStop {
        /// The ECS service deployment asked to stop.
        service_deployment: String,
        /// A newer commit asked for the stop (the record ends Superseded, the newer one starts).
        superseded: bool,
        /// When the stop was last asked for (it is asked again if ECS did not move).
        asked_at_ms: u64,
    },
}

/// The steps of a blue/green deployment with task sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlueGreenPhase {
    /// Prepare: register the task definition (found again by its deployment tag).
    Register,
    /// Prepare on a first deployment: create the EXTERNAL service (client token).
    CreateService {
        /// The task definition ARN of the first task set.
        task_definition: String,
    },
    /// Check the load balancer set-up, then create the green task set (deterministic external id).
    CreateGreen {
        /// The task definition ARN green runs.
        task_definition: String,
    },
    /// Wait until the green side is RUNNING and healthy; breaker; fallback capacity.
    Stabilize {
        /// The task definition ARN green runs.
        task_definition: String,
        /// When waiting ends as a stability timeout.
        deadline_ms: u64,
    },
    /// Traffic step `step` of the schedule: `green` % to green since `since_ms`; alarms watched.
    Shift {
        /// The index of the step in the schedule.
        step: u32,
        /// The percentage of traffic on green.
        green: u32,
        /// When the weights were set.
        since_ms: u64,
    },
    /// 100 % on green: one more wait watching alarms.
    Bake {
        /// When the bake ends.
        until_ms: u64,
    },
    /// Make the green task set primary.
    Promote,
    /// Delete the blue side (deleteOldUponSuccess).
    CleanUp,
    /// Weights back to 100 % blue, then delete (or keep) green. `superseded`: a newer commit
    /// deploys once this is done; `delete_green`: per deleteNewUponFailure /
    /// deleteNewUponTrafficShiftFailure.
    Rollback {
        /// A newer commit deploys once the rollback is done (the outcome is Superseded).
        superseded: bool,
        /// Delete the green task set once traffic is back on blue.
        delete_green: bool,
    },
}

/// The steps of a Lambda deployment (and of deleting a function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LambdaPhase {
    /// Create the function (published version 1) when it does not exist.
    Create,
    /// UpdateFunctionCode unless the function's change marker moved on from `revision_before`
    /// or it already holds the code (then wait for `LastUpdateStatus` Successful). `sent`: the
    /// update was sent once.
    UpdateCode {
        /// The function's `RevisionId` before the update was sent.
        revision_before: String,
        /// The update was sent once.
        sent: bool,
    },
    /// UpdateFunctionConfiguration, the same way.
    UpdateConfig {
        /// The function's `RevisionId` before the update was sent.
        revision_before: String,
        /// The update was sent once.
        sent: bool,
    },
    /// Publish a version, unless one already matches `$LATEST` (code SHA-256 + config).
    Publish,
    /// Wait until `version` is Active (readinessCheck); create the alias if it is missing.
    Ready {
        /// The published version waited for.
        version: String,
        /// When waiting ends as a stability timeout.
        deadline_ms: u64,
    },
    /// Alias weight `weight` % on `version` since `since_ms`; alarms watched.
    Shift {
        /// The version traffic shifts to.
        version: String,
        /// The index of the step in the schedule.
        step: u32,
        /// The percentage of traffic on `version`.
        weight: u32,
        /// When the weights were set.
        since_ms: u64,
    },
    /// 100 % on `version`, one more wait watching alarms.
    Bake {
        /// The version that takes all traffic.
        version: String,
        /// When the bake ends.
        until_ms: u64,
    },
    /// Event sources on the alias (mappings, permissions, ELB target, API integration).
    Wire {
        /// The version the alias now points at.
        version: String,
    },
    /// Delete the old version (deleteOldVersion).
    CleanUp {
        /// The old version to delete.
        version: String,
    },
    /// Alias back on the previous version without routing, then delete `version`.
    Rollback {
        /// The failed version to delete once the alias is back.
        version: String,
        /// A newer commit deploys once the rollback is done.
        superseded: bool,
    },
    /// Remove mappings, permissions and the function.
    DeleteFunction,
}

/// The stored form of a phase: one flat, tagged enum, as stores have always held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum PhaseWire {
    EcsRegister,
    EcsApply {
        task_definition: String,
    },
    EcsStabilize {
        task_definition: String,
        deadline_ms: u64,
    },
    EcsRollback {
        to_task_definition: String,
    },
    EcsRollbackStabilize {
        to_task_definition: String,
        deadline_ms: u64,
    },
    EcsDelete,
    EcsNativeStop {
        service_deployment: String,
        superseded: bool,
        asked_at_ms: u64,
    },
    BgRegister,
    BgCreateService {
        task_definition: String,
    },
    BgCreateGreen {
        task_definition: String,
    },
    BgStabilize {
        task_definition: String,
        deadline_ms: u64,
    },
    BgShift {
        step: u32,
        green: u32,
        since_ms: u64,
    },
    BgBake {
        until_ms: u64,
    },
    BgPromote,
    BgCleanUp,
    BgRollback {
        superseded: bool,
        delete_green: bool,
    },
    LambdaCreate,
    LambdaUpdateCode {
        revision_before: String,
        #[serde(default)]
        sent: bool,
    },
    LambdaUpdateConfig {
        revision_before: String,
        #[serde(default)]
        sent: bool,
    },
    LambdaPublish,
    LambdaReady {
        version: String,
        deadline_ms: u64,
    },
    LambdaShift {
        version: String,
        step: u32,
        weight: u32,
        since_ms: u64,
    },
    LambdaBake {
        version: String,
        until_ms: u64,
    },
    LambdaWire {
        version: String,
    },
    LambdaCleanUp {
        version: String,
    },
    LambdaRollback {
        version: String,
        superseded: bool,
    },
    LambdaDelete,
    Done,
}

impl From<PhaseWire> for Phase {
    fn from(wire: PhaseWire) -> Phase {
        use BlueGreenPhase as B;
        use LambdaPhase as L;
        use RollingPhase as R;
        match wire {
            PhaseWire::EcsRegister => Phase::Rolling(R::Register),
            PhaseWire::EcsApply { task_definition } => Phase::Rolling(R::Apply { task_definition }),
            PhaseWire::EcsStabilize { task_definition, deadline_ms } => Phase::Rolling(R::Stabilize { task_definition, deadline_ms }),
            PhaseWire::EcsRollback { to_task_definition } => Phase::Rolling(R::Rollback { to_task_definition }),
            PhaseWire::EcsRollbackStabilize { to_task_definition, deadline_ms } => {
                Phase::Rolling(R::RollbackStabilize { to_task_definition, deadline_ms })
            }
            PhaseWire::EcsDelete => Phase::Rolling(R::DeleteService),
            PhaseWire::EcsNativeStop { service_deployment, superseded, asked_at_ms } => {
                Phase::Rolling(R::NativeStop { service_deployment, superseded, asked_at_ms })
            }
            PhaseWire::BgRegister => Phase::BlueGreen(B::Register),
            PhaseWire::BgCreateService { task_definition } => Phase::BlueGreen(B::CreateService { task_definition }),
            PhaseWire::BgCreateGreen { task_definition } => Phase::BlueGreen(B::CreateGreen { task_definition }),
            PhaseWire::BgStabilize { task_definition, deadline_ms } => Phase::BlueGreen(B::Stabilize { task_definition, deadline_ms }),
            PhaseWire::BgShift { step, green, since_ms } => Phase::BlueGreen(B::Shift { step, green, since_ms }),
            PhaseWire::BgBake { until_ms } => Phase::BlueGreen(B::Bake { until_ms }),
            PhaseWire::BgPromote => Phase::BlueGreen(B::Promote),
            PhaseWire::BgCleanUp => Phase::BlueGreen(B::CleanUp),
            PhaseWire::BgRollback { superseded, delete_green } => Phase::BlueGreen(B::Rollback { superseded, delete_green }),
            PhaseWire::LambdaCreate => Phase::Lambda(L::Create),
            PhaseWire::LambdaUpdateCode { revision_before, sent } => Phase::Lambda(L::UpdateCode { revision_before, sent }),
            PhaseWire::LambdaUpdateConfig { revision_before, sent } => Phase::Lambda(L::UpdateConfig { revision_before, sent }),
            PhaseWire::LambdaPublish => Phase::Lambda(L::Publish),
            PhaseWire::LambdaReady { version, deadline_ms } => Phase::Lambda(L::Ready { version, deadline_ms }),
            PhaseWire::LambdaShift { version, step, weight, since_ms } => Phase::Lambda(L::Shift { version, step, weight, since_ms }),
            PhaseWire::LambdaBake { version, until_ms } => Phase::Lambda(L::Bake { version, until_ms }),
            PhaseWire::LambdaWire { version } => Phase::Lambda(L::Wire { version }),
            PhaseWire::LambdaCleanUp { version } => Phase::Lambda(L::CleanUp { version }),
            PhaseWire::LambdaRollback { version, superseded } => Phase::Lambda(L::Rollback { version, superseded }),
            PhaseWire::LambdaDelete => Phase::Lambda(L::DeleteFunction),
            PhaseWire::Done => Phase::Done,
        }
    }
}

impl From<Phase> for PhaseWire {
    fn from(phase: Phase) -> PhaseWire {
        use BlueGreenPhase as B;
        use LambdaPhase as L;
        use RollingPhase as R;
        match phase {
            Phase::Rolling(R::Register) => PhaseWire::EcsRegister,
            Phase::Rolling(R::Apply { task_definition }) => PhaseWire::EcsApply { task_definition },
            Phase::Rolling(R::Stabilize { task_definition, deadline_ms }) => PhaseWire::EcsStabilize { task_definition, deadline_ms },
            Phase::Rolling(R::Rollback { to_task_definition }) => PhaseWire::EcsRollback { to_task_definition },
            Phase::Rolling(R::RollbackStabilize { to_task_definition, deadline_ms }) => {
                PhaseWire::EcsRollbackStabilize { to_task_definition, deadline_ms }
            }
            Phase::Rolling(R::DeleteService) => PhaseWire::EcsDelete,
            Phase::Rolling(R::NativeStop { service_deployment, superseded, asked_at_ms }) => {
                PhaseWire::EcsNativeStop { service_deployment, superseded, asked_at_ms }
            }
            Phase::BlueGreen(B::Register) => PhaseWire::BgRegister,
            Phase::BlueGreen(B::CreateService { task_definition }) => PhaseWire::BgCreateService { task_definition },
            Phase::BlueGreen(B::CreateGreen { task_definition }) => PhaseWire::BgCreateGreen { task_definition },
            Phase::BlueGreen(B::Stabilize { task_definition, deadline_ms }) => PhaseWire::BgStabilize { task_definition, deadline_ms },
            Phase::BlueGreen(B::Shift { step, green, since_ms }) => PhaseWire::BgShift { step, green, since_ms },
            Phase::BlueGreen(B::Bake { until_ms }) => PhaseWire::BgBake { until_ms },
            Phase::BlueGreen(B::Promote) => PhaseWire::BgPromote,
            Phase::BlueGreen(B::CleanUp) => PhaseWire::BgCleanUp,
            Phase::BlueGreen(B::Rollback { superseded, delete_green }) => PhaseWire::BgRollback { superseded, delete_green },
            Phase::Lambda(L::Create) => PhaseWire::LambdaCreate,
            Phase::Lambda(L::UpdateCode { revision_before, sent }) => PhaseWire::LambdaUpdateCode { revision_before, sent },
            Phase::Lambda(L::UpdateConfig { revision_before, sent }) => PhaseWire::LambdaUpdateConfig { revision_before, sent },
            Phase::Lambda(L::Publish) => PhaseWire::LambdaPublish,
            Phase::Lambda(L::Ready { version, deadline_ms }) => PhaseWire::LambdaReady { version, deadline_ms },
            Phase::Lambda(L::Shift { version, step, weight, since_ms }) => PhaseWire::LambdaShift { version, step, weight, since_ms },
            Phase::Lambda(L::Bake { version, until_ms }) => PhaseWire::LambdaBake { version, until_ms },
            Phase::Lambda(L::Wire { version }) => PhaseWire::LambdaWire { version },
            Phase::Lambda(L::CleanUp { version }) => PhaseWire::LambdaCleanUp { version },
            Phase::Lambda(L::Rollback { version, superseded }) => PhaseWire::LambdaRollback { version, superseded },
            Phase::Lambda(L::DeleteFunction) => PhaseWire::LambdaDelete,
            Phase::Done => PhaseWire::Done,
        }
    }
}

impl Phase {
    /// Stable name for APIs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Rolling(p) => p.name(),
            Phase::BlueGreen(p) => p.name(),
            Phase::Lambda(p) => p.name(),
            Phase::Done => "done",
        }
    }
}

impl RollingPhase {
    /// Stable name for APIs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            RollingPhase::Register => "register_task_definition",
            RollingPhase::Apply { .. } => "apply_service",
            RollingPhase::Stabilize { .. } => "stabilize",
            RollingPhase::Rollback { .. } => "rollback",
            RollingPhase::RollbackStabilize { .. } => "rollback_stabilize",
            RollingPhase::DeleteService => "delete",
            RollingPhase::NativeStop { .. } => "ecs_native_stop",
        }
    }
}

impl BlueGreenPhase {
    /// Stable name for APIs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            BlueGreenPhase::Register => "prepare",
            BlueGreenPhase::CreateService { .. } => "prepare_create_service",
            BlueGreenPhase::CreateGreen { .. } => "create_green",
            BlueGreenPhase::Stabilize { .. } => "stabilize",
            BlueGreenPhase::Shift { .. } => "shift",
            BlueGreenPhase::Bake { .. } => "bake",
            BlueGreenPhase::Promote => "promote",
            BlueGreenPhase::CleanUp => "clean_up",
            BlueGreenPhase::Rollback { .. } => "rolling_back",
        }
    }
}

impl LambdaPhase {
    /// Stable name for APIs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            LambdaPhase::Create => "create_function",
            LambdaPhase::UpdateCode { .. } => "update_code",
            LambdaPhase::UpdateConfig { .. } => "update_configuration",
            LambdaPhase::Publish => "publish",
            LambdaPhase::Ready { .. } => "ready",
            LambdaPhase::Shift { .. } => "shift",
            LambdaPhase::Bake { .. } => "bake",
            LambdaPhase::Wire { .. } => "wire_event_sources",
            LambdaPhase::CleanUp { .. } => "clean_up",
            LambdaPhase::Rollback { .. } => "rolling_back",
            LambdaPhase::DeleteFunction => "delete",
        }
    }
}

/// The split of one side between its primary-strategy task set and its fallback task set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskSetScales {
    /// The percentage of the side's count the primary task set runs.
    pub primary_percent: f64,
    /// The percentage of the side's count the fallback task set runs.
    pub fallback_percent: f64,
}

/// One line of a deployment's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// When it happened (milliseconds since the epoch).
    pub at_ms: u64,
    /// How serious it is.
    pub level: Level,
    /// What happened, for an operator.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// How serious a timeline event is.
pub enum Level {
    /// Progress.
    Info,
    /// Something an operator should look at; the deployment goes on.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The level as logs and the CLI print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Where the app comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AppKey {
    /// The repository's URL.
    pub repo: String,
    /// The branch gitmoxi follows.
    pub branch: String,
    /// The app's folder inside the repository (its files' common prefix).
    pub prefix: String,
}

impl AppKey {
    /// The value of the `gitmoxi:app` tag: `branch:prefix` (the repo has its own tag).
    pub fn tag_value(&self) -> String {
        sanitize_tag(&format!("{}:{}", self.branch, self.prefix))
    }
}

impl fmt::Display for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.repo, self.branch, self.prefix)
    }
}

/// AWS tag values allow letters, digits, spaces and `+ - = . _ : / @`, at most 256 characters.
pub fn sanitize_tag(value: &str) -> String {
    value.chars().map(|c| if c.is_alphanumeric() || " +-=._:/@".contains(c) { c } else { '_' }).take(256).collect()
}

/// One deployment (or delete) of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The deployment id (`gmx-…`), unique per deployment.
    pub id: String,
    /// The app deployed.
    pub app: AppKey,
    /// ECS or Lambda.
    pub kind: AppKind,
    /// The commit the deployment applies.
    pub commit: String,
    /// The fingerprint of the rendered files it applies.
    pub fingerprint: String,
    /// Where the resource lives (account, region, cluster, name).
    pub identity: Identity,
    /// The account its AWS calls went to: the depdef's, else the controller's own (`None` in
    /// records written before it was kept, or when the controller could not learn its own).
    #[serde(default)]
    pub account_id: Option<String>,
    /// Deploy or delete.
    pub operation: Operation,
    /// How it proceeds (the delete of a resource is its own strategy).
    pub strategy: Strategy,
    /// What is being deployed (kept so a newer, broken head cannot strand the deployment).
    pub desired: Option<EcsApp>,
    /// The Lambda app being deployed.
    #[serde(default)]
    pub desired_lambda: Option<LambdaApp>,
    /// The Lambda version the alias pointed at when the deployment started (the rollback target).
    #[serde(default)]
    pub previous_version: Option<String>,
    /// The task definition to roll back to, captured when the deployment started.
    pub previous_task_definition: Option<String>,
    /// The svcdef of the last successfully applied deployment (a rolling rollback restores
    /// its fields, not only its task definition).
    #[serde(default)]
    pub previous_service: Option<serde_json::Value>,
    /// An operator forced this deployment (`gitmoxi sync --force`): a rolling update forces a
    /// new ECS deployment even when no field changed.
    #[serde(default)]
    pub forced: bool,
    /// Where the deployment is.
    pub phase: Phase,
    /// The Gitmoxi status.
    pub status: DeploymentStatus,
    /// How it ended, once it has.
    pub outcome: Option<Outcome>,
    /// Why it failed or rolled back.
    pub cause: Option<FailureCause>,
    /// What was seen that led to the cause (task stop reasons, alarm names…).
    pub evidence: Vec<String>,
    /// The traffic split last set (blue/green and Lambda shifts).
    pub traffic: Option<Weights>,
    /// Blue/green with fallback capacity: the scales of the green task set pair, kept for the
    /// rebalance API.
    #[serde(default)]
    pub task_set_scales: Option<TaskSetScales>,
    /// Blue/green: the ARNs of the task set that went live and of its fallback (for the API).
    #[serde(default)]
    pub task_set_arns: Option<(String, Option<String>)>,
    /// The approval gate the deployment waits at, if any (an ECS PAUSE lifecycle hook).
    #[serde(default)]
    pub awaiting_approval: Option<AwaitingApproval>,
    /// Every answer given to its gates: who, how, when.
    #[serde(default)]
    pub approvals: Vec<crate::commands::GateAnswer>,
    /// Metric analysis (issue 25): the deployment's sides and every run, newest last.
    #[serde(default)]
    pub analysis: Option<AnalysisState>,
    /// The hooks run so far (issue 25), in the order they started.
    #[serde(default)]
    pub hooks: Vec<HookRun>,
    /// When it started.
    pub started_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
    /// When it ended.
    pub finished_at_ms: Option<u64>,
    /// What happened, oldest first (bounded by [`MAX_TIMELINE`]).
    pub timeline: Vec<TimelineEvent>,
}

/// One run of a hook (issue 25).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// Where it ran.
    pub point: crate::spec::hooks::HookPoint,
    /// When it started.
    pub started_ms: u64,
    /// Where it is.
    pub status: HookStatus,
    /// How it ended: the task's stop line, the function's answer or error.
    #[serde(default)]
    pub detail: Option<String>,
    /// The task ARN, or the invocation's request id.
    #[serde(default)]
    pub reference: Option<String>,
}

/// Where a hook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    /// Started, not ended.
    Running,
    /// Ended well: the deployment goes on.
    Succeeded,
    /// Ended badly: the deployment rolls back.
    Failed,
    /// Outlived its timeout: the deployment rolls back.
    TimedOut,
}

/// What a deployment's metric analysis knows: the names of its sides and its runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisState {
    /// The names `{{ green }}`, `{{ blue }}`… stand for (task-set blue/green; set when traffic
    /// starts to shift).
    #[serde(default)]
    pub sides: Option<crate::analysis::queries::SideNames>,
    /// The runs, oldest first (at most [`MAX_ANALYSIS_RUNS`]; only the newest
    /// [`ANALYSIS_RUNS_WITH_VALUES`] keep their values).
    #[serde(default)]
    pub runs: Vec<crate::analysis::verdict::AnalysisRun>,
    /// ECS's own strategies: the PAUSE hook the analysis is answering now.
    #[serde(default)]
    pub pending: Option<PendingPause>,
}

/// An ECS PAUSE hook before a production step that the analysis answers (issue 25).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPause {
    /// The hook's id.
    pub hook: String,
    /// The step judged ("25 %": green's production weight while ECS waits).
    pub label: String,
    /// When gitmoxi saw ECS wait.
    pub since_ms: u64,
}

/// The most analysis runs a record keeps.
pub const MAX_ANALYSIS_RUNS: usize = 30;

/// The newest runs that keep their values (for the chart); older runs keep their numbers.
pub const ANALYSIS_RUNS_WITH_VALUES: usize = 10;

impl AnalysisState {
    /// Keeps `run`, dropping the oldest beyond the bounds.
    pub fn push(&mut self, run: crate::analysis::verdict::AnalysisRun) {
        self.runs.push(run);
        if self.runs.len() > MAX_ANALYSIS_RUNS {
            let extra = self.runs.len() - MAX_ANALYSIS_RUNS;
            self.runs.drain(..extra);
        }
        let keep_from = self.runs.len().saturating_sub(ANALYSIS_RUNS_WITH_VALUES);
        for run in &mut self.runs[..keep_from] {
            for check in &mut run.checks {
                check.green.values.clear();
                if let Some(blue) = check.blue.as_mut() {
                    blue.values.clear();
                }
            }
        }
    }
}

/// An approval gate a deployment waits at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingApproval {
    /// The gate: the ECS lifecycle hook's id.
    pub gate: String,
    /// The ECS service deployment that waits.
    pub service_deployment: String,
    /// Where it waits (the lifecycle stage).
    pub stage: String,
    /// Since when.
    pub since_ms: u64,
}

impl DeploymentRecord {
    /// Whether it has not ended yet.
    pub fn in_flight(&self) -> bool {
        self.outcome.is_none()
    }

    /// Appends to the timeline (bounded).
    pub fn log(&mut self, at_ms: u64, level: Level, message: impl Into<String>) {
        self.timeline.push(TimelineEvent { at_ms, level, message: message.into() });
        if self.timeline.len() > MAX_TIMELINE {
            let excess = self.timeline.len() - MAX_TIMELINE;
            self.timeline.drain(..excess);
        }
        self.updated_at_ms = at_ms;
    }

    /// Moves to `phase` at `now_ms`.
    pub fn enter(&mut self, phase: Phase, now_ms: u64) {
        self.phase = phase;
        self.updated_at_ms = now_ms;
    }

    /// Enters a rollback `phase` for `cause`: the cause and its first pieces of evidence go to the
    /// timeline (`headline` says what happens first), the record keeps all of it.
    pub fn roll_back(&mut self, now_ms: u64, cause: FailureCause, evidence: Vec<String>, headline: &str, phase: Phase) {
        self.set_failure(cause, evidence);
        let cause = self.cause.clone().map(|c| c.to_string()).unwrap_or_default();
        self.log(now_ms, Level::Error, format!("{cause}: {headline}"));
        for e in self.evidence.clone().iter().take(5) {
            self.log(now_ms, Level::Error, e.clone());
        }
        self.enter(phase, now_ms);
    }

    /// Keeps `cause`, refined by what `evidence` shows, and the evidence grouped (issue 25: one
    /// line per distinct stop reason, with a count).
    pub fn set_failure(&mut self, cause: FailureCause, evidence: Vec<String>) {
        self.cause = Some(crate::explain::refine(cause, &evidence));
        self.evidence = crate::explain::group(&evidence);
    }

    /// Ends the deployment.
    pub fn finish(&mut self, outcome: Outcome, now_ms: u64) {
        self.phase = Phase::Done;
        self.outcome = Some(outcome);
        self.status = outcome.status();
        self.finished_at_ms = Some(now_ms);
        self.updated_at_ms = now_ms;
    }
}

/// What the store keeps about an app between deployments; the planner reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedState {
    /// The last successfully applied fingerprint and commit.
    pub fingerprint: Option<String>,
    /// The commit of that fingerprint.
    pub commit: Option<String>,
    /// The last task definition that was stable (the rollback target); for Lambda the version.
    pub task_definition: Option<String>,
    /// Fingerprints that failed and rolled back (not retried unless forced).
    pub failed: BTreeSet<String>,
    /// gitmoxi created or adopted the resource (it may delete it).
    pub owned: bool,
    /// Where the app's resource lives (kept so a delete knows what to delete).
    pub identity: Option<Identity>,
    /// The last applied Lambda app (its alias and event sources, for the delete).
    #[serde(default)]
    pub lambda: Option<LambdaApp>,
    /// The svcdef's `desiredCount` at the last applied deployment: an update sends the file's
    /// value only when it differs (Application Auto Scaling owns the count otherwise).
    #[serde(default)]
    pub desired_count: Option<u32>,
    /// The svcdef of the last applied deployment (the rollback target's service fields).
    #[serde(default)]
    pub service: Option<serde_json::Value>,
    /// Resources the app owned under a former identity (renamed service, moved region or
    /// account): deleted once the new one is deployed (issue 23, item 16).
    #[serde(default)]
    pub retired: Vec<Identity>,
}

impl AppliedState {
    /// Whether `fingerprint` is the one applied last.
    pub fn is_applied(&self, fingerprint: &str) -> bool {
        self.fingerprint.as_deref() == Some(fingerprint)
    }

    /// The `desiredCount` an update must send (SPEC §3.1): the file's, when it changed since the
    /// last applied deployment (or nothing was applied yet); `None` leaves the count to whoever
    /// scaled the service (autoscaling, an operator).
    pub fn desired_count_change(&self, file: Option<u32>) -> Option<u32> {
        file.filter(|count| self.fingerprint.is_none() || self.desired_count != Some(*count))
    }

    /// The one rule of SPEC §1.3 and §1.5: a fingerprint deploys when it is neither the applied
    /// one nor a failed one, or when an operator forces it.
    pub fn should_deploy(&self, fingerprint: &str, force: bool) -> bool {
        force || (!self.is_applied(fingerprint) && !self.failed.contains(fingerprint))
    }

    /// [`Self::should_deploy`], or the applied fingerprint now lives somewhere else: a depdef-only
    /// change of `environment.region` / `account` (the fingerprint leaves the depdef out) moves
    /// the app, and it deploys there (issue 23, item 6). `own` is the controller's account (a
    /// missing account is that one).
    pub fn should_deploy_to(&self, fingerprint: &str, identity: &Identity, own: Option<&str>, force: bool) -> bool {
        let elsewhere = self.identity.as_ref().is_some_and(|applied| applied.in_account(own) != identity.in_account(own));
        self.should_deploy(fingerprint, force) || (elsewhere && self.fingerprint.is_some() && !self.failed.contains(fingerprint))
    }
}

#[cfg(test)]
mod phase_wire_tests {
    use super::*;

    #[test]
    fn phases_are_stored_in_the_flat_form_stores_already_hold() {
        let cases = [
            (r#"{"phase":"ecs_register"}"#, Phase::Rolling(RollingPhase::Register)),
            (r#"{"phase":"ecs_delete"}"#, Phase::Rolling(RollingPhase::DeleteService)),
            (
                r#"{"phase":"bg_shift","step":2,"green":40,"since_ms":7}"#,
                Phase::BlueGreen(BlueGreenPhase::Shift { step: 2, green: 40, since_ms: 7 }),
            ),
            (
                r#"{"phase":"bg_rollback","superseded":true,"delete_green":false}"#,
                Phase::BlueGreen(BlueGreenPhase::Rollback { superseded: true, delete_green: false }),
            ),
            (
                r#"{"phase":"lambda_update_code","revision_before":"r1","sent":false}"#,
                Phase::Lambda(LambdaPhase::UpdateCode { revision_before: "r1".into(), sent: false }),
            ),
            (r#"{"phase":"lambda_delete"}"#, Phase::Lambda(LambdaPhase::DeleteFunction)),
            (r#"{"phase":"done"}"#, Phase::Done),
        ];
        for (stored, phase) in cases {
            assert_eq!(serde_json::from_str::<Phase>(stored).expect(stored), phase, "{stored}");
            assert_eq!(serde_json::to_string(&phase).expect("serializes"), stored);
        }
        // a field older stores lack still reads (serde default)
        let old: Phase = serde_json::from_str(r#"{"phase":"lambda_update_config","revision_before":"r"}"#).expect("old form");
        assert_eq!(old, Phase::Lambda(LambdaPhase::UpdateConfig { revision_before: "r".into(), sent: false }));
    }
}
