//! Our own view of AWS, as the observer reports it: no SDK types, only what strategies read.
//!
//! Invariant: observations are facts of one pass; nothing here is persisted or trusted across
//! passes (the record is the cursor, AWS is the truth).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod statuses;
pub use statuses::{
    AlarmState, DeploymentControllerType, FunctionState, HealthStatus, LastUpdateStatus, NativeDeploymentStatus, NativeHookStatus,
    NativeLifecycleStage, ServiceDeploymentStatus, ServiceStatus, TaskSetStatus, TaskStatus,
};

/// What one reconcile pass saw of an app (ECS fields for ECS apps, `lambda` for Lambda apps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The service, when DescribeServices knows it (any status).
    pub service: Option<ObservedService>,
    /// The task definition registered for the in-flight deployment, found by its tag.
    pub registered_task_definition: Option<String>,
    /// The ARN ECS reports for the task definition a svcdef names by family or
    /// `family:revision` (when the step asked for it; `None`: ECS knows no such task definition).
    pub resolved_task_definition: Option<String>,
    /// The tags of the task definition the service runs (its primary task set's, for the
    /// EXTERNAL controller), when the step asked (a fresh store looking for what to adopt).
    #[serde(default)]
    pub running_definition_tags: Option<BTreeMap<String, String>>,
    /// Tasks of the service (RUNNING and recently STOPPED), when the phase needs them.
    pub tasks: Vec<ObservedTask>,
    /// Task sets of an EXTERNAL service (blue/green).
    pub task_sets: Vec<ObservedTaskSet>,
    /// Listeners, rules and target health of the app's target group pairs (blue/green).
    pub elb: Option<ObservedElb>,
    /// States of the depdef's alarms, when the phase watches them.
    pub alarms: Vec<ObservedAlarm>,
    /// A Lambda app's function, versions, alias and wiring.
    pub lambda: ObservedLambda,
    /// The newest ECS service deployment of the service since the step asked (ECS's own
    /// BLUE_GREEN / LINEAR / CANARY strategies are followed through it).
    #[serde(default)]
    pub native_deployment: Option<ObservedNativeDeployment>,
    /// GetMetricData's values per query id, oldest first, when the step asked (issue 25).
    #[serde(default)]
    pub metrics: Option<BTreeMap<String, Vec<f64>>>,
    /// The tasks of the running task hook (issue 25).
    #[serde(default)]
    pub hook_tasks: Vec<ObservedTask>,
    /// The answer of the running Lambda hook's invocation (issue 25).
    #[serde(default)]
    pub invocation: Option<ObservedInvocation>,
    /// Where the running task hook's containers log (its task definition's `awslogs` options).
    #[serde(default)]
    pub hook_logs: Vec<ObservedTaskLogs>,
}

/// Where one container of a task definition logs (the `awslogs` driver's options).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedTaskLogs {
    /// The container's name.
    pub container: String,
    /// `awslogs-group`.
    pub group: Option<String>,
    /// `awslogs-stream-prefix` (the stream is `prefix/container/task-id`).
    pub stream_prefix: Option<String>,
}

/// What a synchronous Lambda invocation answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedInvocation {
    /// The HTTP status of the invocation (200 when the function ran).
    pub status_code: i32,
    /// `Handled` / `Unhandled` (or the error's type), when the function failed.
    pub function_error: Option<String>,
    /// The last 4 KB of the function's log.
    pub log_tail: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

/// An ECS service deployment (DescribeServiceDeployments), as gitmoxi follows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedNativeDeployment {
    /// The service deployment's ARN.
    pub arn: String,
    /// When ECS created it (ms since the epoch).
    pub created_at_ms: u64,
    /// Where it is.
    pub status: NativeDeploymentStatus,
    /// ECS's words for the status.
    pub status_reason: Option<String>,
    /// The lifecycle stage, for the strategies that have stages.
    pub lifecycle_stage: Option<NativeLifecycleStage>,
    /// The production traffic weight (percent) ECS asks of the target revision.
    pub production_weight: Option<f64>,
    /// Why ECS rolled back, when it did.
    pub rollback_reason: Option<String>,
    /// The lifecycle hooks of the current stage.
    pub hooks: Vec<ObservedNativeHook>,
}

/// One lifecycle hook of an ECS service deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedNativeHook {
    /// The hook's id (ContinueServiceDeployment names it).
    pub id: String,
    /// AWS_LAMBDA or PAUSE.
    pub target_type: String,
    /// The Lambda function, for AWS_LAMBDA hooks.
    pub target_arn: Option<String>,
    /// Where the hook is.
    pub status: NativeHookStatus,
}

/// An ECS service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedService {
    /// The service's ARN.
    pub arn: String,
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: ServiceStatus,
    /// The task definition ARN the service runs (its primary deployment's).
    pub task_definition: Option<String>,
    /// The count ECS keeps running (an autoscaler or an operator may have changed it).
    pub desired_count: u32,
    /// Tasks RUNNING.
    pub running_count: u32,
    /// Tasks PENDING.
    pub pending_count: u32,
    /// The service's `deployments[]`, as ECS lists them.
    pub deployments: Vec<ObservedDeployment>,
    /// The service registers its tasks in load balancer target groups.
    pub has_load_balancers: bool,
    /// `deploymentController.type` (None: ECS).
    pub deployment_controller: Option<DeploymentControllerType>,
    /// The service's tags (ownership tags among them).
    pub tags: BTreeMap<String, String>,
    /// The most recent service event messages, newest first.
    pub events: Vec<String>,
    /// The service's settings as DescribeServices reports them, in the API's JSON shape
    /// (camelCase members; the fields of [`crate::compare::COMPARED`]). `None`: the observer did
    /// not read them, and nothing is compared.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
}

impl ObservedService {
    /// Whether ECS reports the service ACTIVE (not draining or deleted).
    pub fn is_active(&self) -> bool {
        self.status == ServiceStatus::Active
    }

    /// The PRIMARY deployment: the one the service moves to.
    pub fn primary(&self) -> Option<&ObservedDeployment> {
        self.deployments.iter().find(|d| d.status == ServiceDeploymentStatus::Primary)
    }
}

/// One entry of a service's `deployments[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedDeployment {
    /// The deployment's id (`ecs-svc/…`).
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: ServiceDeploymentStatus,
    /// The task definition ARN it runs.
    pub task_definition: String,
    /// The tasks it wants.
    pub desired_count: u32,
    /// Its tasks RUNNING.
    pub running_count: u32,
    /// Its tasks PENDING.
    pub pending_count: u32,
    /// Its tasks that failed to start (what the ECS circuit breaker counts).
    pub failed_tasks: u32,
    /// `rolloutState` (COMPLETED, IN_PROGRESS, FAILED), when ECS reports it.
    pub rollout_state: Option<String>,
    /// Why the rollout is in that state.
    pub rollout_state_reason: Option<String>,
}

/// One ECS task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedTask {
    /// The task's ARN.
    pub arn: String,
    /// The task definition ARN it runs.
    pub task_definition: String,
    /// Where the task is (PROVISIONING … RUNNING … STOPPED).
    pub last_status: TaskStatus,
    /// Where ECS wants the task to be.
    pub desired_status: TaskStatus,
    /// `startedBy`: the deployment or task set that launched it.
    pub started_by: Option<String>,
    /// Why it stopped, as ECS says.
    pub stopped_reason: Option<String>,
    /// The stop code (e.g. TaskFailedToStart).
    pub stop_code: Option<String>,
    /// The task's container health.
    pub health_status: Option<HealthStatus>,
    /// Its containers.
    pub containers: Vec<ObservedContainer>,
}

/// One container of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedContainer {
    /// The container's name.
    pub name: String,
    /// Its exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Why it stopped, as ECS says.
    pub reason: Option<String>,
}

/// One ECS task set of a service with the EXTERNAL deployment controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedTaskSet {
    /// `ecs-svc/…`: the `startedBy` of the tasks it launches.
    pub id: String,
    /// The full ARN (UpdateServicePrimaryTaskSet needs it).
    pub arn: String,
    /// ACTIVE, PRIMARY or DRAINING.
    pub status: TaskSetStatus,
    /// The `externalId` gitmoxi gave it (derived from the deployment).
    pub external_id: String,
    /// The task definition ARN it runs.
    pub task_definition: String,
    /// Scale in percent of the service's desired count.
    pub scale_percent: f64,
    /// The tasks its scale asks for.
    pub computed_desired_count: u32,
    /// Its tasks RUNNING.
    pub running_count: u32,
    /// Its tasks PENDING.
    pub pending_count: u32,
    /// Target groups it registers its tasks in.
    pub target_groups: Vec<String>,
    /// Capacity providers of its strategy (empty: a launch type).
    pub capacity_providers: Vec<String>,
}

/// Where a listener forwards: its default action, or one of its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardKind {
    /// The listener's default action.
    ListenerDefault,
    /// A listener rule.
    Rule,
}

/// A forward action (listener default or rule) that sends traffic to target groups by weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedForward {
    /// A listener's default action or a rule.
    pub kind: ForwardKind,
    /// The listener ARN (default action) or the rule ARN.
    pub arn: String,
    /// (target group ARN, weight), as ELB reports them.
    pub targets: Vec<(String, u32)>,
}

impl ObservedForward {
    /// The weight this forward gives `target_group`, if it forwards to it.
    pub fn weight_of(&self, target_group: &str) -> Option<u32> {
        self.targets.iter().find(|(tg, _)| tg == target_group).map(|(_, w)| *w)
    }
}

/// What the load balancer side looks like for the target groups of an app's pairs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedElb {
    /// Target groups named in the pairs that ELB does not know.
    pub missing_target_groups: Vec<String>,
    /// Every listener default action and rule that forwards to a target group of the pairs.
    pub forwards: Vec<ObservedForward>,
    /// Healthy targets per target group (only the groups that were asked for).
    pub healthy_targets: BTreeMap<String, u32>,
}

/// A CloudWatch alarm's state; `None` = no such alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedAlarm {
    /// The alarm's name.
    pub name: String,
    /// OK, ALARM or INSUFFICIENT_DATA; `None` when CloudWatch has no such alarm.
    pub state: Option<AlarmState>,
}

impl Observed {
    /// The alarms in state ALARM, by name: the one test every strategy's alarm watch uses.
    pub fn firing_alarms(&self) -> Vec<String> {
        self.alarms.iter().filter(|a| a.state == Some(AlarmState::Alarm)).map(|a| a.name.clone()).collect()
    }
}

/// What one pass saw of a Lambda function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedLambda {
    /// `$LATEST`, when the function exists.
    pub function: Option<ObservedFunction>,
    /// Published versions (numbered), oldest first.
    pub versions: Vec<ObservedFunction>,
    /// The app's alias, when it exists.
    pub alias: Option<ObservedAlias>,
    /// Event source mappings whose function is the alias.
    pub mappings: Vec<ObservedMapping>,
    /// Statement ids of the alias's resource policy.
    pub permissions: Vec<String>,
    /// Target ids registered in each push-source target group.
    pub elb_targets: BTreeMap<String, Vec<String>>,
    /// API Gateway v2 integrations of the push-source APIs: (api id, integration id, uri).
    pub integrations: Vec<(String, String, String)>,
    /// The wiring (mappings, permissions, targets, integrations) was observed in this pass.
    #[serde(default)]
    pub wiring_observed: bool,
    /// API Gateway v2 route targets: (api id, route id) → target.
    pub route_targets: BTreeMap<(String, String), Option<String>>,
}

/// One function configuration (`$LATEST` or a published version).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedFunction {
    /// The unqualified function ARN.
    pub arn: String,
    /// `$LATEST` or the version's number.
    pub version: String,
    /// The code's SHA-256, as Lambda reports it.
    pub code_sha256: String,
    /// The configuration's revision id.
    pub revision_id: String,
    /// `LastModified`: with the revision, what shows that an update landed.
    #[serde(default)]
    pub last_modified: String,
    /// Pending, Active, Inactive or Failed.
    pub state: FunctionState,
    /// Why the state is what it is.
    pub state_reason: Option<String>,
    /// How the last update went (InProgress, Successful, Failed).
    pub last_update_status: LastUpdateStatus,
    /// Why the last update failed.
    pub last_update_status_reason: Option<String>,
    /// The version's description (gitmoxi writes the app's fingerprint there).
    pub description: String,
    /// Every compared configuration field it holds, as [`crate::spec::lambda::config_view`]
    /// puts it.
    pub config: BTreeMap<String, serde_json::Value>,
    /// The function's tags.
    pub tags: BTreeMap<String, String>,
}

impl ObservedFunction {
    /// Moves whenever Lambda applies an update (revision id and last-modified time).
    pub fn change_marker(&self) -> String {
        format!("{}@{}", self.revision_id, self.last_modified)
    }
}

/// An alias and its routing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedAlias {
    /// The alias's ARN.
    pub arn: String,
    /// The version it points at.
    pub function_version: String,
    /// `RoutingConfig.AdditionalVersionWeights`: version → weight (0..1).
    pub additional: BTreeMap<String, f64>,
}

/// An event source mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedMapping {
    /// The mapping's UUID.
    pub uuid: String,
    /// The event source's ARN.
    pub event_source_arn: String,
    /// The function (alias) ARN it invokes.
    pub function_arn: String,
    /// How many records one invocation gets.
    pub batch_size: Option<u32>,
    /// How long Lambda gathers records before it invokes.
    pub maximum_batching_window_secs: Option<u32>,
    /// Whether the mapping is enabled.
    pub enabled: bool,
    /// Every updatable field Lambda reports, as [`crate::spec::lambda::mapping_view`] puts it.
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
}
