//! The circuit breaker's arithmetic and the classification of task stop reasons into causes.
//!
//! Pure: counts in, verdicts out.

use crate::record::FailureCause;
use crate::spec::ecs_depdef::CircuitBreaker;

/// Whether `failures` failed new tasks trip the breaker (off when not configured).
pub fn tripped(breaker: Option<&CircuitBreaker>, desired_count: u32, failures: u32) -> Option<u32> {
    let threshold = breaker?.threshold(desired_count);
    (failures >= threshold).then_some(threshold)
}

/// The most specific cause a stopped task's reason and exit codes show.
pub fn classify_stop(reason: &str, stop_code: Option<&str>, exit_codes: &[i32]) -> Option<FailureCause> {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("resourceinitializationerror")
        && (lower.contains("secret") || lower.contains("accessdenied") || lower.contains("not authorized"))
        || lower.contains("accessdenied")
        || lower.contains("is not authorized to perform")
    {
        Some(FailureCause::TaskSetupDenied)
    } else if lower.contains("cannotpullcontainer") || lower.contains("pull image") || lower.contains("image manifest") {
        Some(FailureCause::ImagePullFailure)
    } else if lower.contains("outofmemory") || lower.contains("out of memory") || lower.contains("oomkilled") {
        Some(FailureCause::OutOfMemory)
    } else if lower.contains("health check") {
        Some(FailureCause::HealthCheckFailed)
    } else if lower.contains("capacity") || lower.contains("resource:") || lower.contains("no container instances") {
        Some(FailureCause::CapacityUnavailable)
    } else if let Some(code) = exit_codes.iter().find(|c| **c != 0) {
        Some(FailureCause::ContainerExited { code: *code })
    } else if stop_code == Some("EssentialContainerExited") {
        Some(FailureCause::ContainerExited { code: exit_codes.first().copied().unwrap_or(-1) })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_is_off_unless_configured() {
        assert_eq!(tripped(None, 10, 100), None);
        let b = CircuitBreaker { failure_threshold: Some(2), failure_threshold_percent: None };
        assert_eq!(tripped(Some(&b), 10, 1), None);
        assert_eq!(tripped(Some(&b), 10, 2), Some(2));
    }

    #[test]
    fn stop_reasons_map_to_causes() {
        assert_eq!(
            classify_stop("CannotPullContainerError: pull image manifest has been retried", Some("TaskFailedToStart"), &[]),
            Some(FailureCause::ImagePullFailure)
        );
        assert_eq!(classify_stop("Task failed ELB health checks in (target-group x)", None, &[]), Some(FailureCause::HealthCheckFailed));
        assert_eq!(
            classify_stop("Essential container in task exited", Some("EssentialContainerExited"), &[0, 137]),
            Some(FailureCause::ContainerExited { code: 137 })
        );
        assert_eq!(classify_stop("weird", None, &[]), None);
    }
}
