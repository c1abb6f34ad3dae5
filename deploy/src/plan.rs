//! Plans: what the executor must persist and do after one planning step.
//!
//! Invariants: actions are absolute targets ("task definition X", "desired count 0"), never
//! relative changes; creates carry deterministic client tokens; `next_record` is persisted and
//! flushed before any action runs.

use crate::observed::ForwardKind;
use crate::record::{DeploymentRecord, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One AWS mutation. The executor maps each to exactly one API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// RegisterTaskDefinition with this body (tags included).
    EcsRegisterTaskDefinition { body: Value },
    /// CreateService with this body (taskDefinition, tags and clientToken included).
    EcsCreateService { body: Value },
    /// UpdateService: `body` holds cluster, service and the fields to set.
    EcsUpdateService { body: Value },
    /// DeleteService with force.
    EcsDeleteService { cluster: String, service: String },
    /// TagResource on the service.
    EcsTagResource { arn: String, tags: Vec<(String, String)> },
    /// CreateTaskSet with this body (externalId and clientToken derived from the deployment).
    EcsCreateTaskSet { body: Value },
    /// UpdateTaskSet: set the scale to `percent` of the service's desired count.
    EcsUpdateTaskSetScale { cluster: String, service: String, task_set: String, percent: f64 },
    /// UpdateServicePrimaryTaskSet with the task set's full ARN.
    EcsUpdatePrimaryTaskSet { cluster: String, service: String, task_set: String },
    /// DeleteTaskSet with force.
    EcsDeleteTaskSet { cluster: String, service: String, task_set: String },
    /// ModifyListener (default action) or ModifyRule: forward to these target groups with these
    /// absolute weights.
    ElbSetForwardWeights { kind: ForwardKind, arn: String, targets: Vec<(String, u32)> },
    /// CreateFunction with this body (Publish true, tags included).
    LambdaCreateFunction { body: Value },
    /// UpdateFunctionCode with these `Code` fields.
    LambdaUpdateCode { function: String, code: Value },
    /// UpdateFunctionConfiguration with these fields.
    LambdaUpdateConfig { function: String, config: Value },
    /// PublishVersion guarded by the code SHA-256 and revision it was decided on.
    LambdaPublishVersion { function: String, code_sha256: String, revision_id: String, description: String },
    /// CreateAlias on `version`.
    LambdaCreateAlias { function: String, alias: String, version: String },
    /// UpdateAlias: `version`, plus `weight` (0..1) routed to `additional` when given.
    LambdaSetAlias { function: String, alias: String, version: String, additional: Option<(String, f64)> },
    /// DeleteFunction with a version qualifier.
    LambdaDeleteVersion { function: String, version: String },
    /// DeleteFunction (all versions).
    LambdaDeleteFunction { function: String },
    /// CreateEventSourceMapping with this body (FunctionName = the alias ARN).
    LambdaCreateMapping { body: Value },
    /// UpdateEventSourceMapping: these fields.
    LambdaUpdateMapping { uuid: String, body: Value },
    /// DeleteEventSourceMapping.
    LambdaDeleteMapping { uuid: String },
    /// AddPermission on the alias for a push source.
    LambdaAddPermission { function: String, qualifier: String, sid: String, principal: String, source_arn: String },
    /// RemovePermission from the alias.
    LambdaRemovePermission { function: String, qualifier: String, sid: String },
    /// RegisterTargets: the alias ARN as the target of a lambda-type target group.
    ElbRegisterLambda { target_group: String, target: String },
    /// CreateIntegration (AWS_PROXY) to `uri` on an HTTP API.
    ApiCreateIntegration { api_id: String, uri: String },
    /// UpdateRoute: its target (`integrations/<id>`).
    ApiSetRouteTarget { api_id: String, route_id: String, target: String },
}

impl Action {
    /// The API operation, for logs and metrics.
    pub fn operation(&self) -> &'static str {
        match self {
            Action::EcsRegisterTaskDefinition { .. } => "RegisterTaskDefinition",
            Action::EcsCreateService { .. } => "CreateService",
            Action::EcsUpdateService { .. } => "UpdateService",
            Action::EcsDeleteService { .. } => "DeleteService",
            Action::EcsTagResource { .. } => "TagResource",
            Action::EcsCreateTaskSet { .. } => "CreateTaskSet",
            Action::EcsUpdateTaskSetScale { .. } => "UpdateTaskSet",
            Action::EcsUpdatePrimaryTaskSet { .. } => "UpdateServicePrimaryTaskSet",
            Action::EcsDeleteTaskSet { .. } => "DeleteTaskSet",
            Action::ElbSetForwardWeights { kind: ForwardKind::ListenerDefault, .. } => "ModifyListener",
            Action::ElbSetForwardWeights { kind: ForwardKind::Rule, .. } => "ModifyRule",
            Action::LambdaCreateFunction { .. } => "CreateFunction",
            Action::LambdaUpdateCode { .. } => "UpdateFunctionCode",
            Action::LambdaUpdateConfig { .. } => "UpdateFunctionConfiguration",
            Action::LambdaPublishVersion { .. } => "PublishVersion",
            Action::LambdaCreateAlias { .. } => "CreateAlias",
            Action::LambdaSetAlias { .. } => "UpdateAlias",
            Action::LambdaDeleteVersion { .. } | Action::LambdaDeleteFunction { .. } => "DeleteFunction",
            Action::LambdaCreateMapping { .. } => "CreateEventSourceMapping",
            Action::LambdaUpdateMapping { .. } => "UpdateEventSourceMapping",
            Action::LambdaDeleteMapping { .. } => "DeleteEventSourceMapping",
            Action::LambdaAddPermission { .. } => "AddPermission",
            Action::LambdaRemovePermission { .. } => "RemovePermission",
            Action::ElbRegisterLambda { .. } => "RegisterTargets",
            Action::ApiCreateIntegration { .. } => "CreateIntegration",
            Action::ApiSetRouteTarget { .. } => "UpdateRoute",
        }
    }
}

/// What the store must remember once a deployment ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completion {
    /// The fingerprint is applied; the task definition is the new rollback target.
    Applied { fingerprint: String, commit: String, task_definition: Option<String> },
    /// The fingerprint failed (quarantined until a new commit or a force).
    Failed { fingerprint: String },
    /// The app's resource is gone: forget the app.
    Removed,
    /// Nothing to remember (superseded).
    Nothing,
}

/// The result of one planning step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// A record that ended in this step (e.g. superseded), to move to history.
    pub finished: Option<(DeploymentRecord, Completion)>,
    /// The record to persist (in flight, or ended with its outcome) before acting.
    pub next_record: Option<DeploymentRecord>,
    /// Ownership gained in this step (the service is created or adopted by this app).
    pub take_ownership: bool,
    pub actions: Vec<Action>,
    /// When to look again, in milliseconds.
    pub requeue_after_ms: u64,
    /// A drift check ran: `Some(None)` in sync, `Some(Some(why))` drifted.
    pub drift: Option<Option<String>>,
}

impl Plan {
    /// A plan that only waits.
    pub fn wait(ms: u64) -> Plan {
        Plan { requeue_after_ms: ms, ..Plan::default() }
    }

    /// The completion implied by a record that has ended.
    pub fn completion_of(record: &DeploymentRecord, task_definition: Option<String>) -> Completion {
        match record.outcome {
            Some(Outcome::Succeeded) => {
                Completion::Applied { fingerprint: record.fingerprint.clone(), commit: record.commit.clone(), task_definition }
            }
            Some(Outcome::RolledBack) | Some(Outcome::Failed) => Completion::Failed { fingerprint: record.fingerprint.clone() },
            Some(Outcome::Deleted) => Completion::Removed,
            Some(Outcome::Superseded) | None => Completion::Nothing,
        }
    }
}
