//! The metric analysis at the end of a traffic step or of the bake (issue 25), for task-set
//! blue/green and Lambda: asks for one GetMetricData request when a run is due ([`request`]),
//! judges what came back, keeps the run in the record and says whether traffic moves on.
//!
//! Invariants: a step moves on only after a run of that step decided `Proceed`; a failed run
//! beyond `failureLimit` rolls back naming the check and its numbers; `consecutiveInconclusive`
//! inconclusive runs in a row apply `onInconclusive` (a hold is an approval gate answered with
//! `gitmoxi approve` / `reject`, rolled back after `holdTimeout`); a run is persisted in the
//! record before anything it decides is acted on.

use super::StepInput;
use crate::analysis::queries::{request as metric_request, MetricRequest, SideNames};
use crate::analysis::verdict::{judge_all, AnalysisRun, Decision, Verdict};
use crate::analysis::{AnalysisSpec, OnInconclusive};
use crate::plan::Plan;
use crate::record::{DeploymentRecord, FailureCause, Level};
use std::time::Duration;

/// What the analysis lets the step do.
#[derive(Debug)]
// one value per step, returned once: its size does not matter
#[allow(clippy::large_enum_variant)]
pub enum AnalysisGate {
    /// The step's analysis passed (or onInconclusive continue, or a person approved a hold).
    Open,
    /// Traffic holds; this plan keeps the run or waits for the next.
    Hold(Plan),
    /// Roll back: the record with the run kept, the cause and the evidence.
    Closed(Box<DeploymentRecord>, FailureCause, Vec<String>),
}

/// The label of a step in runs and messages.
pub fn step_label(weight: Option<u32>) -> String {
    weight.map_or_else(|| "bake".to_string(), |w| format!("{w} %"))
}

/// The gate name of a hold at `label`.
pub fn hold_gate(label: &str) -> String {
    format!("analysis at {label}")
}

fn runs_of_step<'a>(record: &'a DeploymentRecord, label: &str, since_ms: u64) -> Vec<&'a AnalysisRun> {
    record.analysis.iter().flat_map(|a| a.runs.iter()).filter(|r| r.step == label && r.at_ms >= since_ms).collect()
}

/// The sides of a Lambda deployment: `{{ green }}` the new version, `{{ blue }}` the previous.
pub fn lambda_sides(record: &DeploymentRecord, function: &str, alias: &str, version: &str) -> SideNames {
    SideNames {
        green: version.to_string(),
        blue: record.previous_version.clone().unwrap_or_default(),
        function: Some(function.to_string()),
        alias: Some(alias.to_string()),
        ..SideNames::default()
    }
}

/// The request to make at `now` for the step `label` (started at `since_ms`, its wait over),
/// `None` when no run is due.
pub fn request(
    record: &DeploymentRecord,
    spec: &AnalysisSpec,
    sides: &SideNames,
    label: &str,
    since_ms: u64,
    now: u64,
) -> Option<MetricRequest> {
    let due = match runs_of_step(record, label, since_ms).last() {
        None => true,
        Some(last) => match last.decision {
            Decision::Retry => now >= last.at_ms + spec.interval_secs * 1000,
            Decision::Proceed | Decision::Hold | Decision::Rollback => false,
        },
    };
    due.then(|| metric_request(spec, sides, now))
}

/// Inconclusive runs in a row at the end of the deployment's runs.
fn inconclusive_streak(runs: &[AnalysisRun]) -> u32 {
    runs.iter().rev().take_while(|r| r.verdict == Verdict::Inconclusive).count() as u32
}

fn summary(run: &AnalysisRun) -> String {
    let mut text: String = run.checks.iter().map(|c| c.message.as_str()).collect::<Vec<_>>().join("; ");
    if text.len() > 600 {
        let cut = (0..=600).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Why a run that decided to roll back did: its first failing check with its numbers (every
/// failing check's as the evidence), else the inconclusive streak.
fn rollback_cause(run: &AnalysisRun, streak: u32) -> (FailureCause, Vec<String>) {
    let failing: Vec<&crate::analysis::verdict::CheckResult> = run.checks.iter().filter(|c| c.verdict == Verdict::Fail).collect();
    match failing.first() {
        Some(first) => (
            FailureCause::AnalysisFailed { check: first.name.clone(), detail: first.message.clone() },
            failing.iter().map(|c| c.message.clone()).collect(),
        ),
        None => {
            let text = summary(run);
            (FailureCause::AnalysisInconclusive { runs: streak, detail: text.clone() }, vec![text])
        }
    }
}

/// The analysis at the end of step `label` (started at `since_ms`) of `record`; `poll` is how
/// often the step looks again while it waits.
pub fn at_step_end(
    input: &StepInput<'_>,
    record: &DeploymentRecord,
    spec: &AnalysisSpec,
    sides: &SideNames,
    label: &str,
    since_ms: u64,
    poll: Duration,
) -> AnalysisGate {
    let now = input.now_ms;
    if let Some(last) = runs_of_step(record, label, since_ms).last() {
        match last.decision {
            Decision::Proceed => return AnalysisGate::Open,
            Decision::Hold => return held(input, record, spec, label, last.at_ms, poll),
            Decision::Rollback => {
                let streak = record.analysis.as_ref().map_or(0, |a| inconclusive_streak(&a.runs));
                let (cause, evidence) = rollback_cause(last, streak);
                return AnalysisGate::Closed(Box::new(record.clone()), cause, evidence);
            }
            Decision::Retry if now < last.at_ms + spec.interval_secs * 1000 => {
                let left = last.at_ms + spec.interval_secs * 1000 - now;
                return AnalysisGate::Hold(Plan::wait(poll.min(Duration::from_millis(left)).max(Duration::from_millis(1))));
            }
            Decision::Retry => {}
        }
    }
    let Some(values) = &input.observed.metrics else {
        // the look did not fetch the metrics (not due when it looked): look again soon
        return AnalysisGate::Hold(Plan::wait(Duration::from_millis(1000).min(poll)));
    };
    let req = metric_request(spec, sides, now);
    let (verdict, checks) = judge_all(spec, values);
    let mut state = record.analysis.clone().unwrap_or_default();
    let failed_before = state.runs.iter().filter(|r| r.verdict == Verdict::Fail).count() as u32;
    let mut run = AnalysisRun {
        at_ms: now,
        step: label.to_string(),
        window_ms: (req.start_ms, req.end_ms),
        verdict,
        decision: Decision::Proceed,
        checks,
    };
    let streak = inconclusive_streak(&state.runs) + u32::from(verdict == Verdict::Inconclusive);
    run.decision = match verdict {
        Verdict::Pass => Decision::Proceed,
        Verdict::Fail if failed_before + 1 > spec.failure_limit => Decision::Rollback,
        Verdict::Fail => Decision::Retry,
        Verdict::Inconclusive if streak < spec.consecutive_inconclusive => Decision::Retry,
        Verdict::Inconclusive => match spec.on_inconclusive {
            OnInconclusive::Continue => Decision::Proceed,
            OnInconclusive::Rollback => Decision::Rollback,
            OnInconclusive::Hold => Decision::Hold,
        },
    };
    let text = summary(&run);
    let decision = run.decision;
    let on_rollback = rollback_cause(&run, streak);
    state.push(run);
    state.sides.get_or_insert_with(|| sides.clone());
    let mut next = record.clone();
    next.analysis = Some(state);
    let app = &record.app.prefix;
    match decision {
        Decision::Proceed => {
            let level = if verdict == Verdict::Pass { Level::Info } else { Level::Warn };
            let how = if verdict == Verdict::Pass {
                "pass".to_string()
            } else {
                format!("{verdict} {streak} times: going on (onInconclusive continue)")
            };
            next.log(now, level, format!("analysis at {label}: {how} — {text}"));
            AnalysisGate::Hold(Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() })
        }
        Decision::Retry => {
            let why = match verdict {
                Verdict::Fail => format!("failed ({} of {} failures tolerated)", failed_before + 1, spec.failure_limit),
                Verdict::Inconclusive => format!("inconclusive ({streak} of {} in a row)", spec.consecutive_inconclusive),
                Verdict::Pass => "passed".to_string(),
            };
            next.log(now, Level::Warn, format!("analysis at {label}: {why}; traffic holds, next run in {} s — {text}", spec.interval_secs));
            AnalysisGate::Hold(Plan { next_record: Some(next), requeue_after: Duration::from_secs(spec.interval_secs), ..Plan::default() })
        }
        Decision::Hold => {
            let gate = hold_gate(label);
            super::gates::start_waiting(&mut next, &gate, &record.id, &gate, now);
            next.log(
                now,
                Level::Warn,
                format!(
                    "analysis at {label}: inconclusive {streak} times in a row; traffic holds for a person (up to {} s): `gitmoxi approve {app}` to go on, `gitmoxi reject {app}` to roll back — {text}",
                    spec.hold_timeout_secs
                ),
            );
            AnalysisGate::Hold(Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() })
        }
        Decision::Rollback => {
            let (cause, evidence) = on_rollback;
            next.log(now, Level::Error, format!("analysis at {label}: {cause}; rolling back"));
            AnalysisGate::Closed(Box::new(next), cause, evidence)
        }
    }
}

/// A hold (onInconclusive hold) since `since_ms`: an approval goes on, a rejection or the
/// timeout rolls back.
fn held(input: &StepInput<'_>, record: &DeploymentRecord, spec: &AnalysisSpec, label: &str, since_ms: u64, poll: Duration) -> AnalysisGate {
    let gate = hold_gate(label);
    let now = input.now_ms;
    if let Some(given) = record.approvals.iter().rev().find(|a| a.gate == gate && a.answer.at_ms >= since_ms) {
        return if given.answer.approve {
            AnalysisGate::Open
        } else {
            AnalysisGate::Closed(
                Box::new(record.clone()),
                FailureCause::ApprovalRejected { by: given.answer.by.clone() },
                vec![given.answer.to_string()],
            )
        };
    }
    if let Some(answer) = &input.commands.approval {
        let mut next = record.clone();
        let verb = if answer.approve { "traffic moves on" } else { "rolling back" };
        next.log(now, if answer.approve { Level::Info } else { Level::Warn }, format!("{answer} {gate}: {verb}"));
        super::gates::record_answer(&mut next, &gate, answer);
        let mut plan = Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
        plan.consumed.approval = true;
        return AnalysisGate::Hold(plan);
    }
    let waited = now.saturating_sub(since_ms);
    if waited >= spec.hold_timeout_secs * 1000 {
        let detail = format!("nobody answered the hold {gate} within {} s", waited / 1000);
        let runs = record.analysis.as_ref().map_or(0, |a| inconclusive_streak(&a.runs));
        return AnalysisGate::Closed(
            Box::new(record.clone()),
            FailureCause::AnalysisInconclusive { runs, detail: detail.clone() },
            vec![detail],
        );
    }
    let left = Duration::from_millis(spec.hold_timeout_secs * 1000 - waited);
    AnalysisGate::Hold(Plan::wait(poll.min(left).max(Duration::from_millis(1))))
}
