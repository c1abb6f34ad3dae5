//! Our own view of AWS, as the observer reports it: no SDK types, only what strategies read.
//!
//! Invariant: observations are facts of one pass; nothing here is persisted or trusted across
//! passes (the record is the cursor, AWS is the truth).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one reconcile pass saw of an ECS app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedEcs {
    /// The service, when DescribeServices knows it (any status).
    pub service: Option<ObservedService>,
    /// The task definition registered for the in-flight deployment, found by its tag.
    pub registered_task_definition: Option<String>,
    /// Tasks of the service (RUNNING and recently STOPPED), when the phase needs them.
    pub tasks: Vec<ObservedTask>,
}

/// An ECS service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedService {
    pub arn: String,
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: String,
    pub task_definition: Option<String>,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    pub deployments: Vec<ObservedDeployment>,
    pub has_load_balancers: bool,
    pub tags: BTreeMap<String, String>,
    /// The most recent service event messages, newest first.
    pub events: Vec<String>,
}

impl ObservedService {
    pub fn is_active(&self) -> bool {
        self.status == "ACTIVE"
    }

    pub fn primary(&self) -> Option<&ObservedDeployment> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }
}

/// One entry of a service's `deployments[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedDeployment {
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: String,
    pub task_definition: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    pub failed_tasks: u32,
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
}

/// One ECS task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedTask {
    pub arn: String,
    pub task_definition: String,
    /// PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED.
    pub last_status: String,
    pub desired_status: String,
    pub started_by: Option<String>,
    pub stopped_reason: Option<String>,
    pub stop_code: Option<String>,
    /// HEALTHY, UNHEALTHY or UNKNOWN.
    pub health_status: Option<String>,
    pub containers: Vec<ObservedContainer>,
}

/// One container of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedContainer {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}
