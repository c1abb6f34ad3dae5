//! AWS behind narrow capability traits (ARCHITECTURE rule 6): our types in, our types out.
//!
//! `sdk_*` modules adapt the official SDK; `pool` hands out one client per (account, region);
//! `iam` names the IAM action of each operation. The in-memory fake world and the fault proxy
//! are test doubles: they live in the `gitmoxi-testing` crate (`testing/`), never in the
//! shipped binary.

pub mod accounts;
pub mod batch;
pub mod error;
pub mod iam;
pub mod limits;
pub mod pool;
pub mod sdk_alarms;
pub mod sdk_apigw;
pub mod sdk_ecs;
pub mod sdk_elb;
pub mod sdk_lambda;
pub mod sdk_secrets;
pub mod sdk_sts;

pub use error::{AwsError, AwsErrorKind};

/// The retry setting of calls that must not be replayed blindly (creates without a client
/// token): one attempt; the controller observes and retries on its next pass.
pub(crate) fn no_retry() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::disabled()
}

use async_trait::async_trait;
use gitmoxi_deploy::analysis::queries::MetricRequest;
use gitmoxi_deploy::observed::{
    ForwardKind, ObservedAlarm, ObservedAlias, ObservedElb, ObservedFunction, ObservedMapping, ObservedService, ObservedTask,
    ObservedTaskSet,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The ECS operations gitmoxi uses.
#[async_trait]
pub trait Ecs: Send + Sync {
    /// DescribeServices of up to 10 services of one cluster (with tags) in one call: each name
    /// with what ECS holds (`None` when ECS does not know it), in the order asked.
    async fn describe_services(&self, cluster: &str, services: &[String]) -> Result<Vec<(String, Option<ObservedService>)>, AwsError>;
    /// DescribeServices of one service; `None` when ECS does not know it.
    async fn describe_service(&self, cluster: &str, service: &str) -> Result<Option<ObservedService>, AwsError> {
        Ok(self.describe_services(cluster, &[service.to_string()]).await?.into_iter().next().and_then(|(_, s)| s))
    }
    /// The ARN of the newest task definition of `family` tagged `gitmoxi:deployment = deployment_id`.
    async fn find_task_definition(&self, family: &str, deployment_id: &str) -> Result<Option<String>, AwsError>;
    /// The tags of a task definition (by ARN).
    async fn task_definition_tags(&self, arn: &str) -> Result<std::collections::BTreeMap<String, String>, AwsError>;
    /// DescribeTaskDefinition of a family, `family:revision` or ARN: the ARN ECS reports for it
    /// (a family: its newest ACTIVE revision); `None` when ECS knows no such task definition.
    async fn resolve_task_definition(&self, name: &str) -> Result<Option<String>, AwsError>;
    /// The service's tasks: running ones and recently stopped ones.
    async fn service_tasks(&self, cluster: &str, service: &str) -> Result<Vec<ObservedTask>, AwsError>;
    /// RegisterTaskDefinition with a body exactly as the user wrote it; returns the ARN.
    async fn register_task_definition(&self, body: &Value) -> Result<String, AwsError>;
    /// CreateService with a body exactly as the user wrote it; returns the service ARN.
    async fn create_service(&self, body: &Value) -> Result<String, AwsError>;
    /// UpdateService with a body of UpdateService fields.
    async fn update_service(&self, body: &Value) -> Result<(), AwsError>;
    /// The newest service deployment of the service created after `since_ms`
    /// (ListServiceDeployments, then DescribeServiceDeployments).
    async fn newest_service_deployment(
        &self,
        cluster: &str,
        service: &str,
        since_ms: u64,
    ) -> Result<Option<gitmoxi_deploy::observed::ObservedNativeDeployment>, AwsError>;
    /// StopServiceDeployment with stopType ROLLBACK.
    async fn stop_service_deployment(&self, arn: &str) -> Result<(), AwsError>;
    /// ContinueServiceDeployment: answers the PAUSE hook `hook_id` (CONTINUE, or ROLLBACK).
    async fn continue_service_deployment(&self, arn: &str, hook_id: &str, rollback: bool) -> Result<(), AwsError>;
    /// DeleteService with force.
    async fn delete_service(&self, cluster: &str, service: &str) -> Result<(), AwsError>;
    /// TagResource.
    async fn tag_resource(&self, arn: &str, tags: &[(String, String)]) -> Result<(), AwsError>;
    /// DescribeTaskSets of a service (all of them).
    async fn describe_task_sets(&self, cluster: &str, service: &str) -> Result<Vec<ObservedTaskSet>, AwsError>;
    /// Tasks (running and recently stopped) whose `startedBy` is `started_by` (a task set id).
    async fn tasks_started_by(&self, cluster: &str, started_by: &str) -> Result<Vec<ObservedTask>, AwsError>;
    /// CreateTaskSet with this body (externalId and clientToken included); returns the task set ARN.
    async fn create_task_set(&self, body: &Value) -> Result<String, AwsError>;
    /// UpdateTaskSet: scale in percent.
    async fn update_task_set_scale(&self, cluster: &str, service: &str, task_set: &str, percent: f64) -> Result<(), AwsError>;
    /// UpdateServicePrimaryTaskSet (full task set ARN).
    async fn update_primary_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<(), AwsError>;
    /// DeleteTaskSet with force; a task set that is already gone is success.
    async fn delete_task_set(&self, cluster: &str, service: &str, task_set: &str) -> Result<(), AwsError>;
    /// RunTask with this body (a hook's one-off task; startedBy and clientToken included).
    async fn run_task(&self, body: &Value) -> Result<(), AwsError>;
    /// Where a task definition's containers log (DescribeTaskDefinition, the `awslogs` options).
    async fn task_logs(&self, task_definition: &str) -> Result<Vec<gitmoxi_deploy::observed::ObservedTaskLogs>, AwsError>;
}

/// The Elastic Load Balancing v2 operations gitmoxi uses.
#[async_trait]
pub trait Elb: Send + Sync {
    /// Which of `target_groups` exist and, as `reads` asks, every listener default action and
    /// rule that forwards to them and the healthy targets of each.
    async fn observe(&self, target_groups: &[String], reads: gitmoxi_deploy::strategy::ElbReads) -> Result<ObservedElb, AwsError>;
    /// ModifyListener (default action) or ModifyRule: forward to `targets` with these weights,
    /// keeping the rest of the action (stickiness, other actions) as it is.
    async fn set_forward_weights(&self, kind: ForwardKind, arn: &str, targets: &[(String, u32)]) -> Result<(), AwsError>;
    /// The ids of the targets registered in a target group.
    async fn registered_targets(&self, target_group: &str) -> Result<Vec<String>, AwsError>;
    /// RegisterTargets with one target id (a Lambda alias ARN).
    async fn register_target(&self, target_group: &str, target: &str) -> Result<(), AwsError>;
    /// DeregisterTargets: take one target (a Lambda alias ARN) out of a target group.
    async fn deregister_target(&self, target_group: &str, target: &str) -> Result<(), AwsError>;
}

/// The Lambda operations gitmoxi uses.
#[async_trait]
pub trait Lambda: Send + Sync {
    /// GetFunction of `$LATEST` (configuration and tags); `None` when it does not exist.
    async fn function(&self, name: &str) -> Result<Option<ObservedFunction>, AwsError>;
    /// ListVersionsByFunction without `$LATEST`.
    async fn versions(&self, name: &str) -> Result<Vec<ObservedFunction>, AwsError>;
    /// GetAlias; `None` when it does not exist.
    async fn alias(&self, name: &str, alias: &str) -> Result<Option<ObservedAlias>, AwsError>;
    /// ListEventSourceMappings of a function ARN (here: the alias ARN).
    async fn mappings(&self, function_arn: &str) -> Result<Vec<ObservedMapping>, AwsError>;
    /// The statement ids of the resource policy of `name:qualifier` (none when there is no policy).
    async fn permission_sids(&self, name: &str, qualifier: &str) -> Result<Vec<String>, AwsError>;
    /// CreateFunction with a body exactly as the user wrote it (plus Publish and Tags).
    async fn create_function(&self, body: &Value) -> Result<(), AwsError>;
    /// UpdateFunctionCode with these `Code` fields.
    async fn update_code(&self, name: &str, code: &Value) -> Result<(), AwsError>;
    /// UpdateFunctionConfiguration with these fields.
    async fn update_config(&self, name: &str, config: &Value) -> Result<(), AwsError>;
    /// PublishVersion guarded by CodeSha256 and RevisionId.
    async fn publish_version(&self, name: &str, code_sha256: &str, revision_id: &str, description: &str) -> Result<(), AwsError>;
    async fn create_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), AwsError>;
    /// UpdateAlias: `version`, plus `additional` = (version, weight 0..1), or no routing.
    async fn update_alias(&self, name: &str, alias: &str, version: &str, additional: Option<&(String, f64)>) -> Result<(), AwsError>;
    /// DeleteFunction, of one version when `qualifier` is given; already gone is success.
    async fn delete_function(&self, name: &str, qualifier: Option<&str>) -> Result<(), AwsError>;
    async fn create_mapping(&self, body: &Value) -> Result<(), AwsError>;
    async fn update_mapping(&self, uuid: &str, body: &Value) -> Result<(), AwsError>;
    /// DeleteEventSourceMapping; already gone is success.
    async fn delete_mapping(&self, uuid: &str) -> Result<(), AwsError>;
    async fn add_permission(&self, name: &str, qualifier: &str, sid: &str, principal: &str, source_arn: &str) -> Result<(), AwsError>;
    /// RemovePermission; already gone is success.
    async fn remove_permission(&self, name: &str, qualifier: &str, sid: &str) -> Result<(), AwsError>;
    /// Invoke (RequestResponse, the log's tail) with `payload`, waiting at most `timeout`.
    async fn invoke(
        &self,
        function: &str,
        payload: &Value,
        timeout: std::time::Duration,
    ) -> Result<gitmoxi_deploy::observed::ObservedInvocation, AwsError>;
}

/// The API Gateway v2 operations gitmoxi uses.
#[async_trait]
pub trait ApiGateway: Send + Sync {
    /// (integration id, integration uri) of every integration of an API.
    async fn integrations(&self, api_id: &str) -> Result<Vec<(String, String)>, AwsError>;
    /// The target of a route (`integrations/<id>`).
    async fn route_target(&self, api_id: &str, route_id: &str) -> Result<Option<String>, AwsError>;
    /// CreateIntegration: AWS_PROXY to `uri`, payload format 2.0.
    async fn create_integration(&self, api_id: &str, uri: &str) -> Result<(), AwsError>;
    /// UpdateRoute: set its target (empty: no target).
    async fn set_route_target(&self, api_id: &str, route_id: &str, target: &str) -> Result<(), AwsError>;
    /// DeleteIntegration (a missing one counts as deleted).
    async fn delete_integration(&self, api_id: &str, integration_id: &str) -> Result<(), AwsError>;
}

/// The CloudWatch operations gitmoxi uses.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// DescribeAlarms by name; an alarm CloudWatch does not know has `state: None`.
    async fn describe(&self, names: &[String]) -> Result<Vec<ObservedAlarm>, AwsError>;
    /// GetMetricData for the queries of `request` over its window: the values of each returned
    /// query id, oldest first (an id with no data maps to an empty list).
    async fn metric_data(&self, request: &MetricRequest) -> Result<BTreeMap<String, Vec<f64>>, AwsError>;
}

/// Hands out clients per (account, region).
#[async_trait]
pub trait AwsProvider: Send + Sync {
    /// The account the controller's own credentials belong to (STS GetCallerIdentity).
    async fn caller_account(&self) -> Result<String, AwsError>;
    /// Whether calls can reach `account` (none: the controller's own) in `region`: for an account
    /// with a role, its credentials are obtained (STS AssumeRole, cached); an account without one
    /// (other than the controller's own) is refused. Nothing in the account is touched.
    async fn reach(&self, account: Option<&str>, region: &str) -> Result<(), AwsError>;
    fn ecs(&self, account: Option<&str>, region: &str) -> Arc<dyn Ecs>;
    fn elb(&self, account: Option<&str>, region: &str) -> Arc<dyn Elb>;
    fn alarms(&self, account: Option<&str>, region: &str) -> Arc<dyn Alarms>;
    fn lambda(&self, account: Option<&str>, region: &str) -> Arc<dyn Lambda>;
    fn apigw(&self, account: Option<&str>, region: &str) -> Arc<dyn ApiGateway>;
    fn secrets(&self, account: Option<&str>, region: &str) -> Arc<dyn crate::io::credentials::SecretStore>;
}
