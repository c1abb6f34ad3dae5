//! AWS behind narrow capability traits (ARCHITECTURE rule 6): our types in, our types out.
//!
//! `sdk_*` modules adapt the official SDK; `fake` is the in-memory world for simulation tests;
//! `pool` hands out one client per (account, region).

pub mod error;
pub mod fake;
pub mod fake_elb;
pub mod pool;
pub mod sdk_alarms;
pub mod sdk_ecs;
pub mod sdk_elb;

pub use error::{AwsError, AwsErrorKind};

use async_trait::async_trait;
use gitmoxi_deploy::observed::{ForwardKind, ObservedAlarm, ObservedElb, ObservedService, ObservedTask, ObservedTaskSet};
use serde_json::Value;
use std::sync::Arc;

/// The ECS operations gitmoxi uses.
#[async_trait]
pub trait Ecs: Send + Sync {
    /// DescribeServices (with tags); `None` when ECS does not know the service.
    async fn describe_service(&self, cluster: &str, service: &str) -> Result<Option<ObservedService>, AwsError>;
    /// The ARN of the newest task definition of `family` tagged `gitmoxi:deployment = deployment_id`.
    async fn find_task_definition(&self, family: &str, deployment_id: &str) -> Result<Option<String>, AwsError>;
    /// The service's tasks: running ones and recently stopped ones.
    async fn service_tasks(&self, cluster: &str, service: &str) -> Result<Vec<ObservedTask>, AwsError>;
    /// RegisterTaskDefinition with a body exactly as the user wrote it; returns the ARN.
    async fn register_task_definition(&self, body: &Value) -> Result<String, AwsError>;
    /// CreateService with a body exactly as the user wrote it; returns the service ARN.
    async fn create_service(&self, body: &Value) -> Result<String, AwsError>;
    /// UpdateService with a body of UpdateService fields.
    async fn update_service(&self, body: &Value) -> Result<(), AwsError>;
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
}

/// The Elastic Load Balancing v2 operations gitmoxi uses.
#[async_trait]
pub trait Elb: Send + Sync {
    /// Which of `target_groups` exist, every listener default action and rule that forwards to
    /// them, and the healthy targets of each.
    async fn observe(&self, target_groups: &[String]) -> Result<ObservedElb, AwsError>;
    /// ModifyListener (default action) or ModifyRule: forward to `targets` with these weights,
    /// keeping the rest of the action (stickiness, other actions) as it is.
    async fn set_forward_weights(&self, kind: ForwardKind, arn: &str, targets: &[(String, u32)]) -> Result<(), AwsError>;
}

/// The CloudWatch operations gitmoxi uses.
#[async_trait]
pub trait Alarms: Send + Sync {
    /// DescribeAlarms by name; an alarm CloudWatch does not know has `state: None`.
    async fn describe(&self, names: &[String]) -> Result<Vec<ObservedAlarm>, AwsError>;
}

/// Hands out clients per (account, region).
pub trait AwsProvider: Send + Sync {
    fn ecs(&self, account: Option<&str>, region: &str) -> Arc<dyn Ecs>;
    fn elb(&self, account: Option<&str>, region: &str) -> Arc<dyn Elb>;
    fn alarms(&self, account: Option<&str>, region: &str) -> Arc<dyn Alarms>;
}
