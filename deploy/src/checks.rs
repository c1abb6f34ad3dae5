//! Stability predicates (SPEC §3.4): is the new revision running as desired, and which of its
//! tasks failed?
//!
//! A task counts as failed when it belongs to the revision, stopped, and was not stopped by the
//! scheduler scaling in (those are not failures).

use crate::breaker::classify_stop;
use crate::observed::{HealthStatus, ObservedService, ObservedTask, ObservedTaskSet, TaskStatus};
use crate::record::FailureCause;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The verdict of one stability look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stability {
    /// The tasks the service wants.
    pub desired: u32,
    /// Tasks of the revision RUNNING (and healthy, when a health check is set).
    pub running: u32,
    /// `task-id: reason` of each failed task of the revision, oldest first.
    pub failures: Vec<String>,
    /// The most specific cause the failures show, if any.
    pub failure_cause: Option<FailureCause>,
    /// The revision is stable: all tasks running on it, the old ones drained.
    pub stable: bool,
}

fn short_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The evidence line of a stopped task — `task <id>: <stop reason> (<container>: exit <code>,
/// <reason>; …)` — and the cause its stop shows (issue 25: the exit code is part of the line, so
/// the grouped evidence and the cause classes can read it).
pub fn stop_line(t: &ObservedTask, reason: &str) -> (String, Option<FailureCause>) {
    let exit_codes: Vec<i32> = t.containers.iter().filter_map(|c| c.exit_code).collect();
    let containers: Vec<String> = t
        .containers
        .iter()
        .filter(|c| c.reason.is_some() || c.exit_code.is_some_and(|e| e != 0))
        .map(|c| {
            let mut parts = Vec::new();
            if let Some(code) = c.exit_code {
                parts.push(format!("exit {code}"));
            }
            if let Some(r) = &c.reason {
                parts.push(r.clone());
            }
            format!("{}: {}", c.name, parts.join(", "))
        })
        .collect();
    let detail = if containers.is_empty() { String::new() } else { format!(" ({})", containers.join("; ")) };
    let cause = classify_stop(&format!("{reason}{detail}"), t.stop_code.as_deref(), &exit_codes);
    (format!("task {}: {}{detail}", short_id(&t.arn), if reason.is_empty() { "stopped" } else { reason }), cause)
}

/// Stability of `task_definition` on a rolling service: its tasks RUNNING (not UNHEALTHY) reach
/// the desired count, and every other deployment has drained.
pub fn rolling_stability(service: &ObservedService, tasks: &[ObservedTask], task_definition: &str) -> Stability {
    let desired = service.desired_count;
    let mine: Vec<&ObservedTask> = tasks.iter().filter(|t| t.task_definition == task_definition).collect();
    let running = mine
        .iter()
        .filter(|t| {
            t.last_status == TaskStatus::Running
                && t.desired_status == TaskStatus::Running
                && t.health_status != Some(HealthStatus::Unhealthy)
        })
        .count() as u32;
    let mut failures = Vec::new();
    let mut failure_cause = None;
    for t in mine.iter().filter(|t| t.last_status == TaskStatus::Stopped) {
        let reason = t.stopped_reason.clone().unwrap_or_default();
        if reason.starts_with("Scaling activity initiated") {
            continue;
        }
        let (line, cause) = stop_line(t, &reason);
        failures.push(line);
        if failure_cause.is_none() {
            failure_cause = cause;
        }
    }
    let others_drained =
        service.deployments.iter().filter(|d| d.task_definition != task_definition).all(|d| d.running_count == 0 && d.pending_count == 0);
    let on_service = service.task_definition.as_deref() == Some(task_definition);
    Stability { desired, running, stable: on_service && running >= desired && others_drained, failures, failure_cause }
}

/// The verdict of one stability look at one side (task set + fallback) of a blue/green service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideStability {
    /// The tasks the side wants.
    pub desired: u32,
    /// Tasks of the side RUNNING and not UNHEALTHY.
    pub running: u32,
    /// Tasks of the primary-strategy task set alive (PENDING or RUNNING): what capacity placed.
    pub placed_primary: u32,
    /// The fewest healthy targets among the side's target groups (None: no target groups).
    pub healthy: Option<u32>,
    /// `task-id: reason` of each failed task, capacity failures excluded.
    pub failures: Vec<String>,
    /// The most specific cause the failures show, if any.
    pub failure_cause: Option<FailureCause>,
    /// Tasks that could not be placed for lack of capacity (e.g. FARGATE_SPOT).
    pub capacity_failures: u32,
    /// The side is stable: its tasks running and healthy in every target group.
    pub stable: bool,
}

/// Stability of a blue/green side: `desired` tasks started by the side's task sets RUNNING, and
/// as many healthy targets in each of `target_groups`. `primary_set` is the id of the task set
/// with the primary capacity strategy (the one a fallback complements).
pub fn side_stability(
    desired: u32,
    sets: &[&ObservedTaskSet],
    primary_set: Option<&str>,
    tasks: &[ObservedTask],
    target_groups: &[String],
    healthy_targets: &BTreeMap<String, u32>,
) -> SideStability {
    let ids: Vec<&str> = sets.iter().map(|s| s.id.as_str()).collect();
    let mine: Vec<&ObservedTask> = tasks.iter().filter(|t| t.started_by.as_deref().is_some_and(|b| ids.contains(&b))).collect();
    let is_running = |t: &&&ObservedTask| {
        t.last_status == TaskStatus::Running && t.desired_status == TaskStatus::Running && t.health_status != Some(HealthStatus::Unhealthy)
    };
    let running = mine.iter().filter(is_running).count() as u32;
    let placed_primary = mine
        .iter()
        .filter(|t| {
            t.last_status != TaskStatus::Stopped && t.desired_status != TaskStatus::Stopped && t.started_by.as_deref() == primary_set
        })
        .count() as u32;
    let mut failures = Vec::new();
    let mut failure_cause = None;
    let mut capacity_failures = 0;
    for t in mine.iter().filter(|t| t.last_status == TaskStatus::Stopped) {
        let reason = t.stopped_reason.clone().unwrap_or_default();
        if reason.starts_with("Scaling activity initiated") {
            continue;
        }
        let (line, cause) = stop_line(t, &reason);
        if cause == Some(FailureCause::CapacityUnavailable) {
            capacity_failures += 1;
            continue;
        }
        failures.push(line);
        if failure_cause.is_none() {
            failure_cause = cause;
        }
    }
    let healthy = target_groups.iter().map(|tg| healthy_targets.get(tg).copied().unwrap_or(0)).min();
    let stable = running >= desired && healthy.is_none_or(|h| h >= desired);
    SideStability { desired, running, placed_primary, healthy, failures, failure_cause, capacity_failures, stable }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{ObservedContainer, ObservedDeployment};

    fn task(td: &str, status: &str, reason: Option<&str>) -> ObservedTask {
        ObservedTask {
            arn: format!("arn:aws:ecs:r:1:task/c/{td}-{status}"),
            task_definition: td.into(),
            last_status: status.into(),
            desired_status: if status == "STOPPED" { "STOPPED".into() } else { "RUNNING".into() },
            stopped_reason: reason.map(Into::into),
            containers: vec![ObservedContainer { name: "web".into(), exit_code: None, reason: None }],
            ..ObservedTask::default()
        }
    }

    fn service(desired: u32, deployments: Vec<(&str, u32)>) -> ObservedService {
        ObservedService {
            status: "ACTIVE".into(),
            task_definition: Some("td:2".into()),
            desired_count: desired,
            deployments: deployments
                .into_iter()
                .map(|(td, running)| ObservedDeployment { task_definition: td.into(), running_count: running, ..Default::default() })
                .collect(),
            ..ObservedService::default()
        }
    }

    #[test]
    fn stable_when_new_tasks_run_and_old_ones_drained() {
        let tasks = vec![task("td:2", "RUNNING", None), task("td:2", "RUNNING", None), task("td:1", "RUNNING", None)];
        let s = rolling_stability(&service(2, vec![("td:2", 2), ("td:1", 1)]), &tasks, "td:2");
        assert!(!s.stable, "old deployment still running");
        let s = rolling_stability(&service(2, vec![("td:2", 2), ("td:1", 0)]), &tasks, "td:2");
        assert!(s.stable);
        assert_eq!((s.running, s.desired), (2, 2));
    }

    #[test]
    fn stopped_new_tasks_are_failures_with_reasons_but_scale_in_is_not() {
        let tasks = vec![
            task("td:2", "STOPPED", Some("CannotPullContainerError: no such image")),
            task("td:2", "STOPPED", Some("Scaling activity initiated by (deployment ecs-svc/1)")),
            task("td:1", "STOPPED", Some("Essential container in task exited")),
        ];
        let s = rolling_stability(&service(2, vec![("td:2", 0)]), &tasks, "td:2");
        assert_eq!(s.failures.len(), 1);
        assert!(s.failures[0].contains("CannotPullContainerError"));
        assert_eq!(s.failure_cause, Some(FailureCause::ImagePullFailure));
        assert!(!s.stable);
    }

    #[test]
    fn unhealthy_tasks_do_not_count_as_running() {
        let mut t = task("td:2", "RUNNING", None);
        t.health_status = Some("UNHEALTHY".into());
        let s = rolling_stability(&service(1, vec![("td:2", 1)]), &[t], "td:2");
        assert_eq!(s.running, 0);
        assert!(!s.stable);
    }
}

/// How many of the service's recent events say ECS could not place a task of `task_set` for
/// want of capacity (ECS starts no task then: "(service web, taskSet ecs-svc/1) was unable to
/// place a task. Reason: Capacity is unavailable at this time…"). Issue 23, item 12.
pub fn capacity_events(events: &[String], task_set: &str) -> u32 {
    events
        .iter()
        .filter(|e| {
            let lower = e.to_ascii_lowercase();
            lower.contains("unable to place a task")
                && lower.contains("capacity is unavailable")
                && e.contains(&format!("taskSet {task_set})"))
        })
        .count() as u32
}

#[cfg(test)]
mod capacity_tests {
    use super::capacity_events;

    #[test]
    fn capacity_shortage_is_read_from_service_events_of_the_task_set() {
        let events = vec![
            "(service web, taskSet ecs-svc/2) was unable to place a task. Reason: Capacity is unavailable at this time. Please try again later or in a different availability zone.".to_string(),
            "(service web, taskSet ecs-svc/1) was unable to place a task. Reason: Capacity is unavailable at this time.".to_string(),
            "(service web) has reached a steady state.".to_string(),
        ];
        assert_eq!(capacity_events(&events, "ecs-svc/2"), 1);
        assert_eq!(capacity_events(&events, "ecs-svc/3"), 0);
    }
}
