//! Approval gates of gitmoxi's own strategies (task-set blue/green, Lambda): traffic holds before
//! each step `trafficShiftingConfig.approval.before` names until a person answers. A gate is part
//! of the persisted record (`awaiting_approval`), so a restart keeps waiting; alarms and the
//! circuit breaker are checked before it by the strategies, so a firing alarm still rolls back.

use super::StepInput;
use crate::commands::{AnswerChannel, Approval, GateAnswer};
use crate::plan::Plan;
use crate::record::{AwaitingApproval, DeploymentRecord, FailureCause, Level};
use crate::schedule::{ApprovalGates, OnTimeout};
use std::time::Duration;

/// What a gate lets the step do.
#[derive(Debug)]
// one value per step, returned once: its size does not matter
#[allow(clippy::large_enum_variant)]
pub enum Gate {
    /// No gate here, or it was approved: move the traffic.
    Open,
    /// Hold the traffic where it is (this plan records the wait or the answer).
    Hold(Plan),
    /// Rejected, or timed out with `onTimeout` rollback: roll back for this cause.
    Closed(FailureCause, Vec<String>),
}

/// Keeps `answer` with its gate in `next` and ends the wait (ECS hooks and gitmoxi's gates alike).
pub fn record_answer(next: &mut DeploymentRecord, gate: &str, answer: &Approval) {
    next.approvals.push(GateAnswer { gate: gate.to_string(), answer: answer.clone() });
    next.awaiting_approval = None;
}

/// `next` waits at `gate` from `now` on.
pub fn start_waiting(next: &mut DeploymentRecord, gate: &str, service_deployment: &str, stage: &str, now: u64) {
    next.awaiting_approval = Some(AwaitingApproval {
        gate: gate.to_string(),
        service_deployment: service_deployment.to_string(),
        stage: stage.to_string(),
        since_ms: now,
    });
}

/// The gate's name in the record, the timeline and the answers.
pub fn name(green: u32) -> String {
    format!("before {green} %")
}

/// The gate before the step that brings green to `green`; `poll` is how often to look again.
pub fn before_step(input: &StepInput<'_>, record: &DeploymentRecord, gates: Option<ApprovalGates>, green: u32, poll: Duration) -> Gate {
    let Some(gates) = gates.filter(|g| g.before(green)) else { return Gate::Open };
    let gate = name(green);
    if let Some(given) = record.approvals.iter().rev().find(|a| a.gate == gate) {
        return if given.answer.approve { Gate::Open } else { rejected(&given.answer) };
    }
    let now = input.now_ms;
    let app = &record.app.prefix;
    let mut next = record.clone();
    let waiting = record.awaiting_approval.as_ref().filter(|a| a.gate == gate);
    if let (Some(answer), Some(_)) = (&input.commands.approval, waiting) {
        let verb = if answer.approve { "traffic moves on" } else { "rolling back" };
        next.log(now, if answer.approve { Level::Info } else { Level::Warn }, format!("{answer} {gate}: {verb}"));
        record_answer(&mut next, &gate, answer);
        let mut plan = Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
        plan.consumed.approval = true;
        return Gate::Hold(plan);
    }
    let Some(since) = waiting.map(|a| a.since_ms) else {
        next.awaiting_approval =
            Some(AwaitingApproval { gate: gate.clone(), service_deployment: record.id.clone(), stage: gate.clone(), since_ms: now });
        next.log(
            now,
            Level::Warn,
            format!(
                "waiting for approval {gate} on green (up to {} s); approve with `gitmoxi approve {app}` or reject with `gitmoxi reject {app}`",
                gates.timeout_secs
            ),
        );
        return Gate::Hold(Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() });
    };
    let waited_ms = now.saturating_sub(since);
    if waited_ms < gates.timeout_secs * 1000 {
        let left = Duration::from_millis(gates.timeout_secs * 1000 - waited_ms);
        return Gate::Hold(Plan::wait(poll.min(left).max(Duration::from_millis(1))));
    }
    let waited_secs = waited_ms / 1000;
    match gates.on_timeout {
        OnTimeout::Continue => {
            let answer = Approval { approve: true, by: "nobody".into(), via: AnswerChannel::Timeout, at_ms: now };
            next.log(now, Level::Warn, format!("nobody answered {gate} within {waited_secs} s: going on (onTimeout continue)"));
            record_answer(&mut next, &gate, &answer);
            Gate::Hold(Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() })
        }
        OnTimeout::Rollback => {
            let evidence = vec![format!("nobody answered the gate {gate} within {waited_secs} s (onTimeout rollback)")];
            Gate::Closed(FailureCause::ApprovalTimedOut { gate, waited_secs }, evidence)
        }
    }
}

fn rejected(answer: &Approval) -> Gate {
    let evidence = vec![answer.to_string()];
    Gate::Closed(FailureCause::ApprovalRejected { by: answer.by.clone() }, evidence)
}
