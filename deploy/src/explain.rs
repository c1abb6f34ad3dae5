//! Explaining a failure (issue 25): the evidence grouped — "38 tasks stopped: CannotPullContainerError
//! … not found" once, with a count, instead of 38 lines — and the cause refined by what the
//! evidence shows: a stability timeout whose stopped tasks all failed the same way is that
//! failure (an image problem is not "raise the timeout").
//!
//! Invariants: grouping never drops a distinct line (only repeats are counted) and keeps the order
//! of first appearance; a cause is refined only from a stability timeout and only when every
//! stopped task tells the same class.

use crate::breaker::classify_stop;
use crate::record::FailureCause;

/// The most distinct lines kept (each with its count); the rest are counted in a last line.
pub const MAX_LINES: usize = 40;

/// `task <id>: <rest>` → `<rest>`.
fn task_reason(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("task ")?;
    let (id, reason) = rest.split_once(": ")?;
    (!id.is_empty() && !id.contains(' ')).then_some(reason)
}

/// `evidence` with repeated lines counted: the stop reasons of many tasks become one line each
/// ("38 tasks stopped: …"), other repeated lines get "(×N)".
pub fn group(evidence: &[String]) -> Vec<String> {
    // (what repeats, a task's stop, how often, the first line as written), in order of appearance
    let mut groups: Vec<(&str, bool, usize, &str)> = Vec::new();
    for line in evidence {
        let (key, is_task) = task_reason(line).map_or((line.as_str(), false), |reason| (reason, true));
        match groups.iter_mut().find(|g| g.0 == key && g.1 == is_task) {
            Some(g) => g.2 += 1,
            None => groups.push((key, is_task, 1, line)),
        }
    }
    let mut out: Vec<String> = groups
        .iter()
        .map(|(key, is_task, n, first)| match (is_task, n) {
            (_, 1) => first.to_string(),
            (true, n) => format!("{n} tasks stopped: {key}"),
            (false, n) => format!("{key} (×{n})"),
        })
        .collect();
    if out.len() > MAX_LINES {
        let more = out.len() - MAX_LINES;
        out.truncate(MAX_LINES);
        out.push(format!("… and {more} other lines"));
    }
    out
}

/// The cause the evidence shows: a stability timeout whose stopped tasks all failed the same
/// way (image pull, out of memory, setup denied, health checks, an exit code) is that failure;
/// any other cause stays as it is.
pub fn refine(cause: FailureCause, evidence: &[String]) -> FailureCause {
    if !matches!(cause, FailureCause::StabilityTimeout { .. }) {
        return cause;
    }
    let classes: Vec<Option<FailureCause>> = evidence.iter().filter_map(|l| task_reason(l)).map(classify_line).collect();
    match classes.first() {
        Some(Some(first)) if classes.iter().all(|c| c.as_ref() == Some(first)) => first.clone(),
        Some(_) | None => cause,
    }
}

/// The class of one stop reason as the evidence spells it (with `exit N` of its containers).
fn classify_line(reason: &str) -> Option<FailureCause> {
    let exit_codes: Vec<i32> = reason
        .split("exit ")
        .skip(1)
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit() && c != '-').next()?.parse().ok())
        .collect();
    classify_stop(reason, None, &exit_codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pulls(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!("task {i:032x}: CannotPullContainerError: pull image manifest has been retried 5 time(s): nginx:fail-2 not found")
            })
            .collect()
    }

    #[test]
    fn thirty_eight_identical_stops_are_one_line_with_a_count() {
        let mut evidence = vec!["1/4 green tasks running".to_string()];
        evidence.extend(pulls(38));
        evidence.push("task abc: Essential container in task exited (web: exit 1)".into());
        assert_eq!(
            group(&evidence),
            vec![
                "1/4 green tasks running".to_string(),
                "38 tasks stopped: CannotPullContainerError: pull image manifest has been retried 5 time(s): nginx:fail-2 not found".into(),
                "task abc: Essential container in task exited (web: exit 1)".into(),
            ]
        );
        assert_eq!(group(&["x".to_string(), "x".to_string()]), vec!["x (×2)".to_string()]);
        let many: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        assert_eq!(group(&many).len(), MAX_LINES + 1);
    }

    #[test]
    fn a_timeout_whose_tasks_all_failed_the_same_way_is_that_failure() {
        let timeout = FailureCause::StabilityTimeout { waited_secs: 300 };
        assert_eq!(refine(timeout.clone(), &pulls(3)), FailureCause::ImagePullFailure);
        let oom =
            vec!["task a: Essential container in task exited (web: exit 137, OutOfMemoryError: Container killed due to memory usage)"
                .to_string()];
        assert_eq!(refine(timeout.clone(), &oom), FailureCause::OutOfMemory);
        let exited = vec!["task a: Essential container in task exited (web: exit 3)".to_string()];
        assert_eq!(refine(timeout.clone(), &exited), FailureCause::ContainerExited { code: 3 });
        let denied =
            vec!["task a: ResourceInitializationError: unable to pull secrets or registry auth: AccessDeniedException".to_string()];
        assert_eq!(refine(timeout.clone(), &denied), FailureCause::TaskSetupDenied);
        let mut mixed = pulls(2);
        mixed.extend(exited);
        assert_eq!(refine(timeout.clone(), &mixed), timeout, "mixed failures stay a timeout");
        assert_eq!(refine(timeout.clone(), &[]), timeout, "no stopped task: a slow start");
        assert_eq!(refine(FailureCause::OperatorRollback, &pulls(2)), FailureCause::OperatorRollback);
    }
}
