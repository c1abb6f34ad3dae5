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
    Processing,
    ProcessedSuccess,
    ProcessedError,
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    RolledBack,
    Failed,
    Superseded,
    Deleted,
}

impl Outcome {
    pub fn status(self) -> DeploymentStatus {
        match self {
            Outcome::Succeeded | Outcome::Deleted | Outcome::Superseded => DeploymentStatus::ProcessedSuccess,
            Outcome::RolledBack | Outcome::Failed => DeploymentStatus::ProcessedError,
        }
    }

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
    TemplateError,
    ValidationError,
    PermissionDenied {
        operation: String,
    },
    ImagePullFailure,
    ContainerExited {
        code: i32,
    },
    HealthCheckFailed,
    CapacityUnavailable,
    StabilityTimeout {
        waited_secs: u64,
    },
    CircuitBreakerTripped {
        failed_tasks: u32,
        threshold: u32,
    },
    AlarmFired {
        alarms: Vec<String>,
    },
    AwsUnavailable {
        operation: String,
    },
    /// AWS refused a request for a reason that retrying will not fix (e.g. ClusterNotFoundException).
    AwsRejected {
        operation: String,
        code: String,
        message: String,
    },
    /// The service exists but gitmoxi neither created nor adopted it.
    NotOwned,
    /// An operator asked for the rollback (`gitmoxi rollback APP`).
    OperatorRollback,
}

impl FailureCause {
    /// Stable label for metrics and APIs.
    pub fn label(&self) -> &'static str {
        match self {
            FailureCause::TemplateError => "template_error",
            FailureCause::ValidationError => "validation_error",
            FailureCause::PermissionDenied { .. } => "permission_denied",
            FailureCause::ImagePullFailure => "image_pull_failure",
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
        }
    }
}

/// What the deployment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Deploy,
    Delete,
}

/// The resumable steps. Each holds only its own data; every step re-derives the rest from
/// what it observes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Register the task definition, tagged with the deployment id so a replay finds it again.
    EcsRegister,
    /// Create the service, or update it, with this task definition.
    EcsApply { task_definition: String },
    /// Wait until the new revision's tasks are stable; watch the circuit breaker.
    EcsStabilize { task_definition: String, deadline_ms: u64 },
    /// Put the last good task definition back on the service.
    EcsRollback { to_task_definition: String },
    /// Wait until the rolled-back revision is stable again.
    EcsRollbackStabilize { to_task_definition: String, deadline_ms: u64 },
    /// Scale the service to zero, delete its task sets, delete it.
    EcsDelete,
    /// Blue/green Prepare: register the task definition (found again by its deployment tag).
    BgRegister,
    /// Blue/green Prepare on a first deployment: create the EXTERNAL service (client token).
    BgCreateService { task_definition: String },
    /// Check the load balancer set-up, then create the green task set (deterministic external id).
    BgCreateGreen { task_definition: String },
    /// Wait until the green side is RUNNING and healthy; breaker; fallback capacity.
    BgStabilize { task_definition: String, deadline_ms: u64 },
    /// Traffic step `step` of the schedule: `green` % to green since `since_ms`; alarms watched.
    BgShift { step: u32, green: u32, since_ms: u64 },
    /// 100 % on green: one more wait watching alarms.
    BgBake { until_ms: u64 },
    /// Make the green task set primary.
    BgPromote,
    /// Delete the blue side (deleteOldUponSuccess).
    BgCleanUp,
    /// Weights back to 100 % blue, then delete (or keep) green. `superseded`: a newer commit
    /// deploys once this is done; `delete_green`: per deleteNewUponFailure /
    /// deleteNewUponTrafficShiftFailure.
    BgRollback { superseded: bool, delete_green: bool },
    /// Lambda: create the function (published version 1) when it does not exist.
    LambdaCreate,
    /// Lambda: UpdateFunctionCode unless the function's change marker moved on from
    /// `revision_before` or it already holds the code (then wait for `LastUpdateStatus`
    /// Successful). `sent`: the update was sent once.
    LambdaUpdateCode {
        revision_before: String,
        #[serde(default)]
        sent: bool,
    },
    /// Lambda: UpdateFunctionConfiguration, the same way.
    LambdaUpdateConfig {
        revision_before: String,
        #[serde(default)]
        sent: bool,
    },
    /// Lambda: publish a version, unless one already matches `$LATEST` (code SHA-256 + config).
    LambdaPublish,
    /// Lambda: wait until `version` is Active (readinessCheck); create the alias if it is missing.
    LambdaReady { version: String, deadline_ms: u64 },
    /// Lambda: alias weight `weight` % on `version` since `since_ms`; alarms watched.
    LambdaShift { version: String, step: u32, weight: u32, since_ms: u64 },
    /// Lambda: 100 % on `version`, one more wait watching alarms.
    LambdaBake { version: String, until_ms: u64 },
    /// Lambda: event sources on the alias (mappings, permissions, ELB target, API integration).
    LambdaWire { version: String },
    /// Lambda: delete the old version (deleteOldVersion).
    LambdaCleanUp { version: String },
    /// Lambda: alias back on the previous version without routing, then delete `version`.
    LambdaRollback { version: String, superseded: bool },
    /// Lambda: remove mappings, permissions and the function.
    LambdaDelete,
    /// Finished; `outcome` says how.
    Done,
}

/// Which strategy a phase belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseFamily {
    /// ECS rolling and the delete of a service (and `Done`).
    Ecs,
    BlueGreen,
    Lambda,
}

impl Phase {
    /// The strategy that continues a record in this phase.
    pub fn family(&self) -> PhaseFamily {
        match self {
            Phase::EcsRegister
            | Phase::EcsApply { .. }
            | Phase::EcsStabilize { .. }
            | Phase::EcsRollback { .. }
            | Phase::EcsRollbackStabilize { .. }
            | Phase::EcsDelete
            | Phase::Done => PhaseFamily::Ecs,
            Phase::BgRegister
            | Phase::BgCreateService { .. }
            | Phase::BgCreateGreen { .. }
            | Phase::BgStabilize { .. }
            | Phase::BgShift { .. }
            | Phase::BgBake { .. }
            | Phase::BgPromote
            | Phase::BgCleanUp
            | Phase::BgRollback { .. } => PhaseFamily::BlueGreen,
            Phase::LambdaCreate
            | Phase::LambdaUpdateCode { .. }
            | Phase::LambdaUpdateConfig { .. }
            | Phase::LambdaPublish
            | Phase::LambdaReady { .. }
            | Phase::LambdaShift { .. }
            | Phase::LambdaBake { .. }
            | Phase::LambdaWire { .. }
            | Phase::LambdaCleanUp { .. }
            | Phase::LambdaRollback { .. }
            | Phase::LambdaDelete => PhaseFamily::Lambda,
        }
    }

    /// Stable name for APIs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::EcsRegister => "register_task_definition",
            Phase::EcsApply { .. } => "apply_service",
            Phase::EcsStabilize { .. } => "stabilize",
            Phase::EcsRollback { .. } => "rollback",
            Phase::EcsRollbackStabilize { .. } => "rollback_stabilize",
            Phase::EcsDelete => "delete",
            Phase::BgRegister => "prepare",
            Phase::BgCreateService { .. } => "prepare_create_service",
            Phase::BgCreateGreen { .. } => "create_green",
            Phase::BgStabilize { .. } => "stabilize",
            Phase::BgShift { .. } => "shift",
            Phase::BgBake { .. } => "bake",
            Phase::BgPromote => "promote",
            Phase::BgCleanUp => "clean_up",
            Phase::BgRollback { .. } => "rolling_back",
            Phase::LambdaCreate => "create_function",
            Phase::LambdaUpdateCode { .. } => "update_code",
            Phase::LambdaUpdateConfig { .. } => "update_configuration",
            Phase::LambdaPublish => "publish",
            Phase::LambdaReady { .. } => "ready",
            Phase::LambdaShift { .. } => "shift",
            Phase::LambdaBake { .. } => "bake",
            Phase::LambdaWire { .. } => "wire_event_sources",
            Phase::LambdaCleanUp { .. } => "clean_up",
            Phase::LambdaRollback { .. } => "rolling_back",
            Phase::LambdaDelete => "delete",
            Phase::Done => "done",
        }
    }
}

/// The split of one side between its primary-strategy task set and its fallback task set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskSetScales {
    pub primary_percent: f64,
    pub fallback_percent: f64,
}

/// One line of a deployment's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at_ms: u64,
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
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
    pub repo: String,
    pub branch: String,
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
    pub id: String,
    pub app: AppKey,
    pub kind: AppKind,
    pub commit: String,
    pub fingerprint: String,
    pub identity: Identity,
    pub operation: Operation,
    /// "rolling", "blue_green" or "delete".
    pub strategy: String,
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
    pub phase: Phase,
    pub status: DeploymentStatus,
    pub outcome: Option<Outcome>,
    pub cause: Option<FailureCause>,
    pub evidence: Vec<String>,
    pub traffic: Option<Weights>,
    /// Blue/green with fallback capacity: the scales of the green task set pair, kept for the
    /// rebalance API.
    #[serde(default)]
    pub task_set_scales: Option<TaskSetScales>,
    /// Blue/green: the ARNs of the task set that went live and of its fallback (for the API).
    #[serde(default)]
    pub task_set_arns: Option<(String, Option<String>)>,
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub timeline: Vec<TimelineEvent>,
}

impl DeploymentRecord {
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
        self.log(now_ms, Level::Error, format!("{cause}: {headline}"));
        for e in evidence.iter().take(5) {
            self.log(now_ms, Level::Error, e.clone());
        }
        self.cause = Some(cause);
        self.evidence = evidence;
        self.enter(phase, now_ms);
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
}
