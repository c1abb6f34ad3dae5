//! Plans: what the executor must persist and do after one planning step.
//!
//! Invariants: actions are absolute targets ("task definition X", "desired count 0"), never
//! relative changes; creates carry deterministic client tokens; `next_record` is persisted and
//! flushed before any action runs.

use crate::commands::Consumed;
use crate::observed::ForwardKind;
use crate::record::{DeploymentRecord, Level, Outcome};
use crate::spec::Identity;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// One AWS mutation. The executor maps each to exactly one API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// RegisterTaskDefinition with this body (tags included).
    EcsRegisterTaskDefinition {
        /// The request body, as the AWS API's JSON names its fields.
        body: Value,
    },
    /// RunTask with this body (a hook's one-off task: startedBy and clientToken included).
    EcsRunTask {
        /// The request body, as the AWS API's JSON names its fields.
        body: Value,
    },
    /// CreateService with this body (taskDefinition, tags and clientToken included).
    EcsCreateService {
        /// The request body, as the AWS API's JSON names its fields.
        body: Value,
    },
    /// UpdateService: `body` holds cluster, service and the fields to set.
    EcsUpdateService {
        /// The request body, as the AWS API's JSON names its fields.
        body: Value,
    },
    /// StopServiceDeployment with stopType ROLLBACK: ECS stops its own deployment and puts the
    /// source revision back (an ECS-native strategy is never overridden by a second update).
    EcsStopServiceDeployment {
        /// The service deployment's ARN.
        arn: String,
    },
    /// ContinueServiceDeployment: answers the PAUSE lifecycle hook ECS waits at.
    EcsContinueServiceDeployment {
        /// The service deployment's ARN.
        arn: String,
        /// The hook's id.
        hook_id: String,
        /// Roll back instead of going on.
        rollback: bool,
    },
    /// DeleteService with force.
    EcsDeleteService {
        /// The cluster's name or ARN.
        cluster: String,
        /// The service's name.
        service: String,
    },
    /// TagResource on the service.
    EcsTagResource {
        /// The resource's ARN.
        arn: String,
        /// The tags to set, key and value.
        tags: Vec<(String, String)>,
    },
    /// CreateTaskSet with this body (externalId and clientToken derived from the deployment).
    EcsCreateTaskSet {
        /// The request body, as the AWS API's JSON names its fields.
        body: Value,
    },
    /// UpdateTaskSet: set the scale to `percent` of the service's desired count.
    EcsUpdateTaskSetScale {
        /// The cluster's name or ARN.
        cluster: String,
        /// The service's name.
        service: String,
        /// The task set's ARN.
        task_set: String,
        /// The scale, in percent of the service's desired count.
        percent: f64,
    },
    /// UpdateServicePrimaryTaskSet with the task set's full ARN.
    EcsUpdatePrimaryTaskSet {
        /// The cluster's name or ARN.
        cluster: String,
        /// The service's name.
        service: String,
        /// The task set's ARN.
        task_set: String,
    },
    /// DeleteTaskSet with force.
    EcsDeleteTaskSet {
        /// The cluster's name or ARN.
        cluster: String,
        /// The service's name.
        service: String,
        /// The task set's ARN.
        task_set: String,
    },
    /// ModifyListener (default action) or ModifyRule: forward to these target groups with these
    /// absolute weights.
    ElbSetForwardWeights {
        /// Whether `arn` names a listener (default action) or a rule.
        kind: ForwardKind,
        /// The listener's or rule's ARN.
        arn: String,
        /// Each target group's ARN and its weight.
        targets: Vec<(String, u32)>,
    },
    /// CreateFunction with this body (Publish true, tags included).
    LambdaCreateFunction {
        /// The request body, as the AWS API's JSON names its fields.
        body: Value,
    },
    /// UpdateFunctionCode with these `Code` fields.
    LambdaUpdateCode {
        /// The function's name.
        function: String,
        /// The `Code` fields of the lambdadef.
        code: Value,
    },
    /// UpdateFunctionConfiguration with these fields.
    LambdaUpdateConfig {
        /// The function's name.
        function: String,
        /// The configuration fields to set.
        config: Value,
    },
    /// PublishVersion guarded by the code SHA-256 and revision it was decided on.
    LambdaPublishVersion {
        /// The function's name.
        function: String,
        /// The `$LATEST` code SHA-256 the publish was decided on.
        code_sha256: String,
        /// The `$LATEST` revision the publish was decided on.
        revision_id: String,
        /// The version's description (it carries the app's fingerprint).
        description: String,
    },
    /// CreateAlias on `version`.
    LambdaCreateAlias {
        /// The function's name.
        function: String,
        /// The alias's name.
        alias: String,
        /// The version the alias points at.
        version: String,
    },
    /// UpdateAlias: `version`, plus `weight` (0..1) routed to `additional` when given.
    LambdaSetAlias {
        /// The function's name.
        function: String,
        /// The alias's name.
        alias: String,
        /// The version the alias points at.
        version: String,
        /// The second version and the weight (0..1) routed to it.
        additional: Option<(String, f64)>,
    },
    /// DeleteFunction with a version qualifier.
    LambdaDeleteVersion {
        /// The function's name.
        function: String,
        /// The version to delete.
        version: String,
    },
    /// DeleteFunction (all versions).
    LambdaDeleteFunction {
        /// The function's name.
        function: String,
    },
    /// CreateEventSourceMapping with this body (FunctionName = the alias ARN).
    LambdaCreateMapping {
        /// The request body, as the AWS API's JSON names its fields.
        body: Value,
    },
    /// UpdateEventSourceMapping: these fields.
    LambdaUpdateMapping {
        /// The mapping's UUID.
        uuid: String,
        /// The mapping fields to set.
        body: Value,
    },
    /// DeleteEventSourceMapping.
    LambdaDeleteMapping {
        /// The mapping's UUID.
        uuid: String,
    },
    /// AddPermission on the alias for a push source.
    LambdaAddPermission {
        /// The function's name.
        function: String,
        /// The alias the permission is on.
        qualifier: String,
        /// The statement id (derived from the source, so a replay finds it).
        sid: String,
        /// The service principal allowed to invoke.
        principal: String,
        /// The source allowed to invoke.
        source_arn: String,
    },
    /// RemovePermission from the alias.
    LambdaRemovePermission {
        /// The function's name.
        function: String,
        /// The alias the permission is on.
        qualifier: String,
        /// The statement id (derived from the source, so a replay finds it).
        sid: String,
    },
    /// RegisterTargets: the alias ARN as the target of a lambda-type target group.
    ElbRegisterLambda {
        /// The target group's ARN.
        target_group: String,
        /// The alias's ARN.
        target: String,
    },
    /// DeregisterTargets: the alias ARN out of a lambda-type target group.
    ElbDeregisterLambda {
        /// The target group's ARN.
        target_group: String,
        /// The alias's ARN.
        target: String,
    },
    /// DeleteIntegration on an HTTP API (after the route no longer targets it).
    ApiDeleteIntegration {
        /// The HTTP API's id.
        api_id: String,
        /// The integration's id.
        integration_id: String,
    },
    /// CreateIntegration (AWS_PROXY) to `uri` on an HTTP API.
    ApiCreateIntegration {
        /// The HTTP API's id.
        api_id: String,
        /// The integration's URI (the alias's ARN).
        uri: String,
    },
    /// UpdateRoute: its target (`integrations/<id>`; empty: no target).
    ApiSetRouteTarget {
        /// The HTTP API's id.
        api_id: String,
        /// The route's id.
        route_id: String,
        /// The new target (`integrations/<id>`).
        target: String,
    },
}

impl Action {
    /// The API operation, for logs and metrics.
    pub fn operation(&self) -> &'static str {
        match self {
            Action::EcsRegisterTaskDefinition { .. } => "RegisterTaskDefinition",
            Action::EcsRunTask { .. } => "RunTask",
            Action::EcsCreateService { .. } => "CreateService",
            Action::EcsUpdateService { .. } => "UpdateService",
            Action::EcsDeleteService { .. } => "DeleteService",
            Action::EcsStopServiceDeployment { .. } => "StopServiceDeployment",
            Action::EcsContinueServiceDeployment { .. } => "ContinueServiceDeployment",
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
            Action::ElbDeregisterLambda { .. } => "DeregisterTargets",
            Action::ApiDeleteIntegration { .. } => "DeleteIntegration",
            Action::ApiCreateIntegration { .. } => "CreateIntegration",
            Action::ApiSetRouteTarget { .. } => "UpdateRoute",
        }
    }
}

/// What the store must remember once a deployment ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completion {
    /// The fingerprint is applied; the task definition is the new rollback target.
    Applied {
        /// The fingerprint.
        fingerprint: String,
        /// The commit it came from.
        commit: String,
        /// The task definition (for Lambda, the version) that is now the rollback target.
        task_definition: Option<String>,
    },
    /// The fingerprint failed (quarantined until a new commit or a force).
    Failed {
        /// The fingerprint that failed.
        fingerprint: String,
    },
    /// The app's resource is gone: forget the app.
    Removed,
    /// A resource the app owned before it moved to another identity (a `serviceName` /
    /// `FunctionName`, region or account change) is deleted, or was refused: forget that
    /// resource, keep the app.
    Retired {
        /// The former identity.
        identity: Identity,
    },
    /// Nothing to remember (superseded).
    Nothing,
}

/// A line for the app's history that belongs to no deployment (an operator command that could
/// not apply, a drift finding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// How serious it is.
    pub level: Level,
    /// What to write, for an operator.
    pub message: String,
    /// The head commit the note is about, if any.
    pub commit: Option<String>,
}

impl Note {
    /// A note about an operator command or the app, tied to no commit.
    pub fn new(level: Level, message: impl Into<String>) -> Note {
        Note { level, message: message.into(), commit: None }
    }
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
    /// The AWS mutations to perform, in order, once `next_record` is persisted.
    pub actions: Vec<Action>,
    /// When to look again.
    pub requeue_after: Duration,
    /// A drift check ran: `Some(None)` in sync, `Some(Some(why))` drifted.
    pub drift: Option<Option<String>>,
    /// Operator commands this step used up.
    pub consumed: Consumed,
    /// History lines outside any deployment's timeline.
    pub notes: Vec<Note>,
}

impl Plan {
    /// A plan that only waits.
    pub fn wait(after: Duration) -> Plan {
        Plan { requeue_after: after, ..Plan::default() }
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

    /// The records this plan ends, in order, with what the store must remember of each: the
    /// finished one, then `next_record` when it has ended too.
    pub fn endings(&self) -> Vec<(&DeploymentRecord, Completion)> {
        let mut endings: Vec<(&DeploymentRecord, Completion)> = self.finished.iter().map(|(r, c)| (r, c.clone())).collect();
        if let Some(next) = self.next_record.as_ref().filter(|r| !r.in_flight()) {
            endings.push((next, Plan::completion_of(next, None)));
        }
        endings
    }

    /// The deployment in flight once this plan is stored: `next_record` when it is in flight,
    /// else `before` when it is in flight and this plan neither replaced nor ended it.
    pub fn in_flight_after<'a>(&'a self, before: Option<&'a DeploymentRecord>) -> Option<&'a DeploymentRecord> {
        match &self.next_record {
            Some(next) => Some(next).filter(|r| r.in_flight()),
            None => before.filter(|b| b.in_flight() && self.finished.as_ref().map(|(f, _)| &f.id) != Some(&b.id)),
        }
    }

    /// Whether this step starts a deployment that was not in flight before.
    pub fn starts_deployment(&self, before: Option<&DeploymentRecord>) -> bool {
        self.next_record.as_ref().is_some_and(|next| next.in_flight() && before.map(|b| &b.id) != Some(&next.id))
    }

    /// Whether the store must be durable before this plan's actions (rule 2) or because a
    /// deployment ended (its notifications are out). A step that only moves a cursor is left to
    /// sled's periodic flush: a crash that loses it replays the step from what AWS shows.
    pub fn needs_flush(&self) -> bool {
        !self.actions.is_empty() || !self.endings().is_empty()
    }
}
