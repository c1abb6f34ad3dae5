//! AWS behind narrow capability traits (ARCHITECTURE rule 6): our types in, our types out.
//!
//! `sdk_*` modules adapt the official SDK; `fake` is the in-memory world for simulation tests;
//! `pool` hands out one client per (account, region).

pub mod error;
pub mod fake;
pub mod pool;
pub mod sdk_ecs;

pub use error::{AwsError, AwsErrorKind};

use async_trait::async_trait;
use gitmoxi_deploy::observed::{ObservedService, ObservedTask};
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
}

/// Hands out clients per (account, region).
pub trait AwsProvider: Send + Sync {
    fn ecs(&self, account: Option<&str>, region: &str) -> Arc<dyn Ecs>;
}
