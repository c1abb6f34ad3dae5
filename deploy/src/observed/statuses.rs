//! The statuses AWS reports, as enums: every comparison names a variant, never a string. A word
//! AWS adds later is kept as `Other` (shown as it came), so nothing is lost or misread.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Declares a status enum with the words AWS uses for each variant, plus `Other(String)`.
macro_rules! aws_status {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A word this version of gitmoxi does not know.
            Other(String),
        }

        impl $name {
            /// The word AWS uses.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)+
                    $name::Other(word) => word.as_str(),
                }
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> Self {
                match word {
                    $($word => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(word: String) -> Self {
                $name::from(word.as_str())
            }
        }

        impl From<$name> for String {
            fn from(status: $name) -> String {
                status.as_str().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

aws_status! {
    /// An ECS service's `status`.
    ServiceStatus {
        /// Running (or able to run) tasks.
        #[default]
        Active => "ACTIVE",
        /// Being deleted.
        Draining => "DRAINING",
        /// Deleted: a create with the same name makes a new service.
        Inactive => "INACTIVE",
    }
}

aws_status! {
    /// The `status` of one entry of a service's `deployments[]`.
    ServiceDeploymentStatus {
        /// The newest deployment: what the service converges to.
        #[default]
        Primary => "PRIMARY",
        /// An older deployment still running tasks.
        Active => "ACTIVE",
        /// Finished with.
        Inactive => "INACTIVE",
    }
}

aws_status! {
    /// A task's `lastStatus` or `desiredStatus`.
    TaskStatus {
        /// Resources are being made ready.
        Provisioning => "PROVISIONING",
        /// Waiting to start.
        #[default]
        Pending => "PENDING",
        /// Being set up.
        Activating => "ACTIVATING",
        /// Running.
        Running => "RUNNING",
        /// Being taken down.
        Deactivating => "DEACTIVATING",
        /// Stopping.
        Stopping => "STOPPING",
        /// Resources are being released.
        Deprovisioning => "DEPROVISIONING",
        /// Stopped.
        Stopped => "STOPPED",
    }
}

aws_status! {
    /// A task's container health (`healthStatus`).
    HealthStatus {
        /// Every essential container's health check passes.
        Healthy => "HEALTHY",
        /// A health check fails.
        Unhealthy => "UNHEALTHY",
        /// Not known (no health check, or not yet).
        #[default]
        Unknown => "UNKNOWN",
    }
}

aws_status! {
    /// A task set's `status`.
    TaskSetStatus {
        /// Serves production traffic.
        Primary => "PRIMARY",
        /// Not primary.
        #[default]
        Active => "ACTIVE",
        /// Being deleted.
        Draining => "DRAINING",
    }
}

aws_status! {
    /// A service's `deploymentController.type`.
    DeploymentControllerType {
        /// ECS replaces tasks (rolling, or ECS's own blue/green).
        #[default]
        Ecs => "ECS",
        /// CodeDeploy blue/green.
        CodeDeploy => "CODE_DEPLOY",
        /// Task sets driven by an external controller (gitmoxi's blue/green).
        External => "EXTERNAL",
    }
}

aws_status! {
    /// A CloudWatch alarm's `StateValue`.
    AlarmState {
        /// Within its threshold.
        Ok => "OK",
        /// Breaching: a deployment watching it rolls back.
        Alarm => "ALARM",
        /// Not enough data to decide.
        #[default]
        InsufficientData => "INSUFFICIENT_DATA",
    }
}

aws_status! {
    /// A Lambda function's `State`.
    FunctionState {
        /// Being created or having resources set up.
        Pending => "Pending",
        /// Ready to be invoked.
        #[default]
        Active => "Active",
        /// Idle long enough that its resources were reclaimed.
        Inactive => "Inactive",
        /// Creation or set-up failed (see the state reason).
        Failed => "Failed",
    }
}

aws_status! {
    /// A Lambda function's `LastUpdateStatus`.
    LastUpdateStatus {
        /// The last update is being applied.
        InProgress => "InProgress",
        /// The last update landed.
        #[default]
        Successful => "Successful",
        /// The last update failed (see the reason).
        Failed => "Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_are_kept() {
        assert_eq!(TaskSetStatus::from("PRIMARY"), TaskSetStatus::Primary);
        assert_eq!(AlarmState::from("INSUFFICIENT_DATA").as_str(), "INSUFFICIENT_DATA");
        assert_eq!(ServiceStatus::from("ARCHIVED"), ServiceStatus::Other("ARCHIVED".into()));
        assert_eq!(serde_json::to_string(&LastUpdateStatus::InProgress).expect("json"), "\"InProgress\"");
        let read: FunctionState = serde_json::from_str("\"Active\"").expect("json");
        assert_eq!(read, FunctionState::Active);
    }
}

aws_status! {
    /// The `status` of an ECS service deployment (ListServiceDeployments / DescribeServiceDeployments):
    /// the record ECS keeps of one deployment of its own strategies (ROLLING, BLUE_GREEN, LINEAR, CANARY).
    NativeDeploymentStatus {
        /// Created, not started.
        #[default]
        Pending => "PENDING",
        /// Running its lifecycle stages.
        InProgress => "IN_PROGRESS",
        /// Finished: the target revision serves.
        Successful => "SUCCESSFUL",
        /// A stop was asked for.
        StopRequested => "STOP_REQUESTED",
        /// Stopped without a rollback.
        Stopped => "STOPPED",
        /// A rollback was asked for.
        RollbackRequested => "ROLLBACK_REQUESTED",
        /// ECS is putting the source revision back.
        RollbackInProgress => "ROLLBACK_IN_PROGRESS",
        /// ECS put the source revision back.
        RollbackSuccessful => "ROLLBACK_SUCCESSFUL",
        /// ECS could not put the source revision back.
        RollbackFailed => "ROLLBACK_FAILED",
    }
}

aws_status! {
    /// The `lifecycleStage` of an ECS service deployment.
    NativeLifecycleStage {
        /// Only when more than one revision was ACTIVE at the start.
        #[default]
        ReconcileService => "RECONCILE_SERVICE",
        /// Green has not started; blue serves all traffic.
        PreScaleUp => "PRE_SCALE_UP",
        /// Green scales up; it serves no traffic yet.
        ScaleUp => "SCALE_UP",
        /// Green runs; blue serves all traffic.
        PostScaleUp => "POST_SCALE_UP",
        /// Test traffic moves to green.
        TestTrafficShift => "TEST_TRAFFIC_SHIFT",
        /// Green serves all test traffic.
        PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
        /// Before each production traffic step (LINEAR, CANARY; ECS May 2026): its hooks run
        /// before more production traffic moves to green.
        PreProductionTrafficShift => "PRE_PRODUCTION_TRAFFIC_SHIFT",
        /// Production traffic moves to green.
        ProductionTrafficShift => "PRODUCTION_TRAFFIC_SHIFT",
        /// Green serves all production traffic.
        PostProductionTrafficShift => "POST_PRODUCTION_TRAFFIC_SHIFT",
        /// Blue and green both run after the shift, so a rollback is instant.
        BakeTime => "BAKE_TIME",
        /// Blue is scaled down.
        CleanUp => "CLEAN_UP",
    }
}

aws_status! {
    /// The `status` of one lifecycle hook of an ECS service deployment.
    NativeHookStatus {
        /// The hook runs (or will run again).
        #[default]
        InProgress => "IN_PROGRESS",
        /// The hook let the deployment go on.
        Succeeded => "SUCCEEDED",
        /// The hook failed the deployment: ECS rolls back.
        Failed => "FAILED",
        /// A PAUSE hook waits for ContinueServiceDeployment.
        AwaitingAction => "AWAITING_ACTION",
        /// The hook ran out of time; its timeout action applies.
        TimedOut => "TIMED_OUT",
    }
}

impl NativeDeploymentStatus {
    /// ECS has ended the deployment (it will not change any more).
    pub fn has_ended(&self) -> bool {
        match self {
            NativeDeploymentStatus::Successful
            | NativeDeploymentStatus::Stopped
            | NativeDeploymentStatus::RollbackSuccessful
            | NativeDeploymentStatus::RollbackFailed => true,
            NativeDeploymentStatus::Pending
            | NativeDeploymentStatus::InProgress
            | NativeDeploymentStatus::StopRequested
            | NativeDeploymentStatus::RollbackRequested
            | NativeDeploymentStatus::RollbackInProgress
            | NativeDeploymentStatus::Other(_) => false,
        }
    }

    /// The deployment moves forward: nobody asked ECS to stop or roll it back.
    pub fn is_going_forward(&self) -> bool {
        matches!(self, NativeDeploymentStatus::Pending | NativeDeploymentStatus::InProgress)
    }
}
