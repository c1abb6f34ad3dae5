//! ECS's own deployment strategies (SPEC §3.2): a svcdef with the ECS deployment controller whose
//! `deploymentConfiguration.strategy` is BLUE_GREEN, LINEAR or CANARY is sent to ECS as written,
//! and gitmoxi then follows ECS's service deployment instead of judging task counts: its status,
//! lifecycle stage, traffic weight, hooks and rollback. ECS decides when traffic moves and when
//! to roll back; gitmoxi's stability budget covers bake time, traffic steps and hook timeouts, so
//! a healthy deployment that is only waiting is never rolled back by gitmoxi.

use super::{short_td, Step};
use crate::observed::{NativeDeploymentStatus, NativeHookStatus, NativeLifecycleStage, ObservedNativeDeployment};
use crate::plan::{Action, Completion, Plan};
use crate::record::{FailureCause, Level, Outcome, Phase, RollingPhase};
use crate::strategy::STEADY_REQUEUE;
use serde_json::Value;
use std::time::Duration;

/// ECS's strategies that gitmoxi follows through service deployments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NativeStrategy {
    /// All production traffic at once, then bake.
    BlueGreen,
    /// `stepPercent` every `stepBakeTimeInMinutes`, then bake.
    Linear {
        /// Percent of production traffic per step.
        step_percent: f64,
        /// Minutes between steps.
        step_bake_minutes: u64,
    },
    /// `canaryPercent`, `canaryBakeTimeInMinutes`, the rest, then bake.
    Canary {
        /// Percent of production traffic the canary gets.
        canary_percent: f64,
        /// Minutes the canary runs before the rest moves.
        canary_bake_minutes: u64,
    },
}

/// The native strategy a svcdef asks ECS for (ROLLING, absent, or another controller: none).
pub fn strategy_of(svcdef: &Value) -> Option<NativeStrategy> {
    let controller = svcdef.pointer("/deploymentController/type").and_then(Value::as_str).unwrap_or("ECS");
    if controller != "ECS" {
        return None;
    }
    let config = svcdef.get("deploymentConfiguration")?;
    let number = |path: &str| config.pointer(path).and_then(Value::as_f64);
    match config.get("strategy").and_then(Value::as_str)? {
        "BLUE_GREEN" => Some(NativeStrategy::BlueGreen),
        "LINEAR" => Some(NativeStrategy::Linear {
            step_percent: number("/linearConfiguration/stepPercent").unwrap_or(10.0),
            step_bake_minutes: number("/linearConfiguration/stepBakeTimeInMinutes").unwrap_or(6.0) as u64,
        }),
        "CANARY" => Some(NativeStrategy::Canary {
            canary_percent: number("/canaryConfiguration/canaryPercent").unwrap_or(5.0),
            canary_bake_minutes: number("/canaryConfiguration/canaryBakeTimeInMinutes").unwrap_or(10.0) as u64,
        }),
        _ => None,
    }
}

/// A lifecycle hook's time when its configuration names none: a Lambda hook answering
/// IN_PROGRESS keeps being called; 15 minutes is the longest one invocation may run.
const HOOK_MINUTES: u64 = 15;
/// How far the clocks of gitmoxi and ECS may disagree when a service deployment is matched to
/// the gitmoxi deployment that caused it (its creation is after the record's start, give or take).
const CLOCK_MARGIN_MS: u64 = 60_000;
/// How long after its first stop request gitmoxi asks again (the answer to the first may be lost).
const STOP_RETRY_MS: u64 = 300_000;
/// ECS's default bake time of its blue/green strategies.
const DEFAULT_BAKE_MINUTES: u64 = 15;

/// What ECS may spend beyond starting the new tasks: the traffic steps, the bake time and each
/// hook's timeout at each of its stages.
pub fn extra_budget_secs(svcdef: &Value) -> u64 {
    let Some(strategy) = strategy_of(svcdef) else { return 0 };
    let config = &svcdef["deploymentConfiguration"];
    let bake = config.get("bakeTimeInMinutes").and_then(Value::as_u64).unwrap_or(DEFAULT_BAKE_MINUTES);
    let steps = match strategy {
        NativeStrategy::BlueGreen => 0,
        NativeStrategy::Linear { step_percent, step_bake_minutes } => {
            let count = (100.0 / step_percent.clamp(1.0, 100.0)).ceil() as u64;
            count * step_bake_minutes
        }
        NativeStrategy::Canary { canary_bake_minutes, .. } => canary_bake_minutes,
    };
    let hooks: u64 = config
        .get("lifecycleHooks")
        .and_then(Value::as_array)
        .map(|hooks| {
            hooks
                .iter()
                .map(|h| {
                    let stage_list = h.get("lifecycleStages").and_then(Value::as_array);
                    // a hook before production steps runs once before each of them
                    let before_steps = stage_list.is_some_and(|s| s.iter().any(|x| x.as_str() == Some("PRE_PRODUCTION_TRAFFIC_SHIFT")));
                    let steps_count = match strategy {
                        NativeStrategy::BlueGreen => 1,
                        NativeStrategy::Linear { step_percent, .. } => (100.0 / step_percent.clamp(1.0, 100.0)).ceil() as u64,
                        NativeStrategy::Canary { .. } => 2,
                    };
                    let stages = stage_list.map_or(1, Vec::len) as u64 + if before_steps { steps_count - 1 } else { 0 };
                    let minutes = h.pointer("/timeoutConfiguration/timeoutInMinutes").and_then(Value::as_u64).unwrap_or(HOOK_MINUTES);
                    stages * minutes
                })
                .sum()
        })
        .unwrap_or(0);
    (bake + steps + hooks) * 60
}

/// The stage in plain language, with the traffic split where ECS reports it.
pub fn describe(d: &ObservedNativeDeployment) -> String {
    let weight = d.production_weight.map(|w| format!("{}", w.round() as i64));
    let stage = match &d.lifecycle_stage {
        None => return format!("ECS deployment {}", d.status),
        Some(NativeLifecycleStage::ReconcileService) => "ECS is reconciling the service's revisions".to_string(),
        Some(NativeLifecycleStage::PreScaleUp) => "ECS is about to start the new revision".to_string(),
        Some(NativeLifecycleStage::ScaleUp) => "ECS is starting the new revision's tasks".to_string(),
        Some(NativeLifecycleStage::PostScaleUp) => "the new revision's tasks run; no traffic yet".to_string(),
        Some(NativeLifecycleStage::TestTrafficShift) => "ECS is moving test traffic to the new revision".to_string(),
        Some(NativeLifecycleStage::PostTestTrafficShift) => "the new revision serves all test traffic".to_string(),
        Some(NativeLifecycleStage::PreProductionTrafficShift) => match &weight {
            Some(w) => format!("ECS waits before moving more production traffic ({w} % on the new revision)"),
            None => "ECS waits before moving production traffic".to_string(),
        },
        Some(NativeLifecycleStage::ProductionTrafficShift) => match &weight {
            Some(w) => format!("ECS shifted production traffic: {w} % to the new revision"),
            None => "ECS is shifting production traffic to the new revision".to_string(),
        },
        Some(NativeLifecycleStage::PostProductionTrafficShift) => "the new revision serves all production traffic".to_string(),
        Some(NativeLifecycleStage::BakeTime) => "bake: both revisions run, production on the new one".to_string(),
        Some(NativeLifecycleStage::CleanUp) => "ECS is scaling the old revision down".to_string(),
        Some(NativeLifecycleStage::Other(word)) => format!("ECS stage {word}"),
    };
    let hooks: Vec<String> = d
        .hooks
        .iter()
        .filter(|h| h.status != NativeHookStatus::Succeeded)
        .map(|h| format!("hook {} {}", h.target_arn.as_deref().map_or(h.id.as_str(), |a| a.rsplit(':').next().unwrap_or(a)), h.status))
        .collect();
    if hooks.is_empty() {
        stage
    } else {
        format!("{stage} ({})", hooks.join(", "))
    }
}

/// Follows ECS's service deployment of `task_definition` until ECS ends it.
pub(super) fn follow(cx: &Step<'_>, task_definition: &str, deadline_ms: u64) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let mut next = record.clone();
    let Some(app) = record.desired.as_ref() else { return super::fail_without_desired(cx.input, record) };
    let poll = Duration::from_secs(app.depdef.stability.poll_interval_secs);
    let Some(d) = ours(cx) else {
        if now >= deadline_ms {
            let cause = FailureCause::StabilityTimeout { waited_secs: now.saturating_sub(record.started_at_ms) / 1000 };
            return super::rollback_or_fail(cx.input, record, cause, vec!["ECS never listed a service deployment for this update".into()]);
        }
        return Plan::wait(poll);
    };
    if d.status == NativeDeploymentStatus::Successful {
        let serves = cx.service.and_then(|s| s.task_definition.as_deref()) == Some(task_definition);
        if !serves {
            // ECS says done, the service says otherwise: believe neither until they agree
            return Plan::wait(poll);
        }
        next.awaiting_approval = None;
        next.traffic = Some(crate::schedule::Weights::green(100));
        next.log(now, Level::Info, format!("ECS deployment succeeded: {} serves all traffic", short_td(task_definition)));
        next.finish(Outcome::Succeeded, now);
        let completion = Plan::completion_of(&next, Some(task_definition.to_string()));
        return Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() };
    }
    if d.status.has_ended() {
        return ended(cx, Some(d), false);
    }
    let rolling_back = matches!(d.status, NativeDeploymentStatus::RollbackRequested | NativeDeploymentStatus::RollbackInProgress);
    if rolling_back {
        return progress(cx, next, format!("ECS is rolling back: {}", ecs_reason(d)), Level::Error, poll);
    }
    let alarms = cx.observed.firing_alarms();
    if !alarms.is_empty() {
        let evidence = vec![format!("alarm {} in ALARM", alarms.join(", "))];
        return stop(cx, d, FailureCause::AlarmFired { alarms }, evidence);
    }
    if let Some((hook, stage)) = paused(d) {
        let before_step = d.lifecycle_stage == Some(NativeLifecycleStage::PreProductionTrafficShift);
        if let (true, Some(spec)) = (before_step, app.depdef.analysis.as_ref()) {
            return analysis_at_pause(cx, d, &hook, spec, poll);
        }
        return at_gate(cx, d, &hook, &stage, poll);
    }
    if now >= deadline_ms {
        let waited = now.saturating_sub(record.started_at_ms) / 1000;
        let evidence = vec![format!("ECS service deployment {} still {} ({})", d.arn, d.status, describe(d))];
        return stop(cx, d, FailureCause::StabilityTimeout { waited_secs: waited }, evidence);
    }
    next.awaiting_approval = None;
    if let Some(w) = d.production_weight {
        next.traffic = Some(crate::schedule::Weights::green(w.round().clamp(0.0, 100.0) as u32));
    }
    progress(cx, next, describe(d), Level::Info, poll)
}

/// After gitmoxi asked ECS to stop: wait until ECS ends its deployment.
pub(super) fn stopping(cx: &Step<'_>, service_deployment: &str, superseded: bool, asked_at_ms: u64) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let poll = record.desired.as_ref().map_or(Duration::from_secs(5), |a| Duration::from_secs(a.depdef.stability.poll_interval_secs));
    let Some(d) = ours(cx).filter(|d| d.arn == service_deployment) else {
        // ECS no longer lists it as the newest: a newer one replaced it, it has ended
        return ended(cx, None, superseded);
    };
    if d.status.has_ended() {
        return ended(cx, Some(d), superseded);
    }
    if d.status.is_going_forward() && now >= asked_at_ms + STOP_RETRY_MS {
        // the first request's answer may have been lost: ask again
        let mut next = record.clone();
        next.log(now, Level::Warn, format!("ECS has not started rolling {} back; asking again", d.arn));
        return ask_to_stop(next, &d.arn, superseded, now, poll);
    }
    let text = format!("ECS is rolling back: {}", ecs_reason(d));
    progress(cx, record.clone(), text, Level::Warn, poll)
}

/// The service deployment this record caused: the newest one created since it started.
fn ours<'a>(cx: &Step<'a>) -> Option<&'a ObservedNativeDeployment> {
    caused(cx.observed, cx.record)
}

/// The newest service deployment observed, when `record` caused it (created after the record
/// started, give or take the clocks' disagreement).
fn caused<'a>(observed: &'a crate::observed::Observed, record: &crate::record::DeploymentRecord) -> Option<&'a ObservedNativeDeployment> {
    observed.native_deployment.as_ref().filter(|d| d.created_at_ms + CLOCK_MARGIN_MS >= record.started_at_ms)
}

/// Since when a record's service deployments are listed (the observer's bound).
pub fn listed_since_ms(record: &crate::record::DeploymentRecord) -> u64 {
    record.started_at_ms.saturating_sub(CLOCK_MARGIN_MS)
}

fn ecs_reason(d: &ObservedNativeDeployment) -> &str {
    d.rollback_reason.as_deref().or(d.status_reason.as_deref()).unwrap_or("no reason given")
}

/// A PAUSE hook waiting for an answer, and the stage it waits at.
fn paused(d: &ObservedNativeDeployment) -> Option<(String, String)> {
    let hook = d.hooks.iter().find(|h| h.target_type == "PAUSE" && h.status == NativeHookStatus::AwaitingAction)?;
    Some((hook.id.clone(), d.lifecycle_stage.as_ref().map_or("an ECS stage".to_string(), ToString::to_string)))
}

/// Logs `text` once (the timeline does not repeat itself) and looks again in `poll`.
fn progress(cx: &Step<'_>, mut next: crate::record::DeploymentRecord, text: String, level: Level, poll: Duration) -> Plan {
    let changed = next != *cx.record;
    if cx.record.timeline.last().map(|e| e.message.as_str()) != Some(text.as_str()) {
        next.log(cx.now, level, text);
        return Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() };
    }
    if changed {
        return Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() };
    }
    Plan::wait(poll)
}

/// ECS waits at a PAUSE hook before a production step and the depdef has `analysis` (issue 25):
/// the analysis answers it — CONTINUE when green's metrics pass, ROLLBACK (with the check and its
/// numbers as the cause) when they fail; a hold is the operator's gate. Before the first step
/// green has no production traffic to judge, and ECS goes on at once.
fn analysis_at_pause(
    cx: &Step<'_>,
    d: &ObservedNativeDeployment,
    hook: &str,
    spec: &crate::analysis::AnalysisSpec,
    poll: Duration,
) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let weight = d.production_weight.unwrap_or(0.0).round().clamp(0.0, 100.0) as u32;
    let answer = |next: &mut crate::record::DeploymentRecord, approve: bool, by: &str| {
        let approval = crate::commands::Approval { approve, by: by.to_string(), via: crate::commands::AnswerChannel::Analysis, at_ms: now };
        crate::strategy::gates::record_answer(next, hook, &approval);
        if let Some(a) = next.analysis.as_mut() {
            a.pending = None;
        }
        Action::EcsContinueServiceDeployment { arn: d.arn.clone(), hook_id: hook.to_string(), rollback: !approve }
    };
    if let Some(given) = record.approvals.iter().rev().find(|a| a.gate == hook) {
        // answered, yet ECS still waits: the answer never reached it; the same again
        let action =
            Action::EcsContinueServiceDeployment { arn: d.arn.clone(), hook_id: hook.to_string(), rollback: !given.answer.approve };
        return Plan { actions: vec![action], requeue_after: poll, ..Plan::default() };
    }
    let mut next = record.clone();
    if next.analysis.as_ref().is_none_or(|a| a.sides.is_none()) {
        // told apart while their weights differ (before the first step: all on blue)
        if let Some(sides) = native_sides(record, cx.observed, weight) {
            next.analysis.get_or_insert_with(Default::default).sides = Some(sides);
        }
    }
    if weight == 0 {
        let action = answer(&mut next, true, "metric analysis");
        next.log(now, Level::Info, "analysis: the new revision has no production traffic yet; ECS goes on to its first step".to_string());
        return Plan { next_record: Some(next), actions: vec![action], requeue_after: poll, ..Plan::default() };
    }
    let label = crate::strategy::analysis_gate::step_label(Some(weight));
    let pending = record.analysis.as_ref().and_then(|a| a.pending.clone()).filter(|p| p.hook == hook);
    let state = next.analysis.get_or_insert_with(Default::default);
    let Some(sides) = state.sides.clone() else {
        // the production rule does not tell the revisions' target groups apart: a person decides
        return at_gate(cx, d, hook, &format!("{label} (the analysis could not tell the target groups apart)"), poll);
    };
    let Some(pending) = pending else {
        // the next look fetches the metrics
        state.pending = Some(crate::record::PendingPause { hook: hook.to_string(), label: label.clone(), since_ms: now });
        next.log(
            now,
            Level::Info,
            format!("ECS waits before its next production step with {label} on the new revision: the analysis answers"),
        );
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    };
    match crate::strategy::analysis_gate::at_step_end(cx.input, record, spec, &sides, &pending.label, pending.since_ms, poll) {
        crate::strategy::analysis_gate::AnalysisGate::Open => {
            let action = answer(&mut next, true, "metric analysis");
            next.log(now, Level::Info, format!("analysis at {}: ECS goes on (CONTINUE)", pending.label));
            Plan { next_record: Some(next), actions: vec![action], requeue_after: poll, ..Plan::default() }
        }
        crate::strategy::analysis_gate::AnalysisGate::Hold(plan) => plan,
        crate::strategy::analysis_gate::AnalysisGate::Closed(with_run, cause, evidence) => {
            let mut next = *with_run;
            next.set_failure(cause, evidence);
            let action = answer(&mut next, false, "metric analysis");
            let cause = next.cause.clone().map(|c| c.to_string()).unwrap_or_default();
            next.log(now, Level::Error, format!("{cause}: ECS rolls back (ROLLBACK)"));
            Plan { next_record: Some(next), actions: vec![action], requeue_after: poll, ..Plan::default() }
        }
    }
}

/// The names of a native deployment's two sides: of the service's target group and its
/// alternate, green is the one the production listener rule weights as ECS says it weights the
/// new revision (`weight`), blue the other.
fn native_sides(
    record: &crate::record::DeploymentRecord,
    observed: &crate::observed::Observed,
    weight: u32,
) -> Option<crate::analysis::queries::SideNames> {
    use crate::analysis::queries::{load_balancer_dimension, target_group_dimension, SideNames};
    let svcdef = &record.desired.as_ref()?.svcdef;
    let lb = svcdef
        .get("loadBalancers")?
        .as_array()?
        .iter()
        .find(|lb| lb.pointer("/advancedConfiguration/alternateTargetGroupArn").is_some())?;
    let primary = lb.get("targetGroupArn")?.as_str()?;
    let alternate = lb.pointer("/advancedConfiguration/alternateTargetGroupArn")?.as_str()?;
    let elb = observed.elb.as_ref()?;
    let forward = elb.forwards.iter().find(|f| f.weight_of(primary).is_some() && f.weight_of(alternate).is_some())?;
    let (green, blue) = match (forward.weight_of(primary), forward.weight_of(alternate)) {
        (Some(p), Some(a)) if p == weight && a != weight => (primary, alternate),
        (Some(p), Some(a)) if a == weight && p != weight => (alternate, primary),
        _ => return None,
    };
    let green_td = match &record.phase {
        crate::record::Phase::Rolling(crate::record::RollingPhase::Stabilize { task_definition, .. }) => Some(task_definition.as_str()),
        crate::record::Phase::Rolling(_)
        | crate::record::Phase::BlueGreen(_)
        | crate::record::Phase::Lambda(_)
        | crate::record::Phase::Done => None,
    };
    let cluster = record.desired.as_ref().map_or("", |a| a.cluster.as_str());
    Some(
        SideNames {
            green: target_group_dimension(green),
            blue: target_group_dimension(blue),
            load_balancer: load_balancer_dimension(&forward.arn),
            ..SideNames::default()
        }
        .with_revisions(cluster, green_td, record.previous_task_definition.as_deref()),
    )
}

/// The GetMetricData request of a native deployment whose PAUSE hook the analysis is answering
/// (`None` when no run is due).
pub fn analysis_request(record: &crate::record::DeploymentRecord, now: u64) -> Option<crate::analysis::queries::MetricRequest> {
    let spec = record.desired.as_ref()?.depdef.analysis.as_ref()?;
    let state = record.analysis.as_ref()?;
    let (pending, sides) = (state.pending.as_ref()?, state.sides.as_ref()?);
    crate::strategy::analysis_gate::request(record, spec, sides, &pending.label, pending.since_ms, now)
}

/// The target groups a native deployment with `analysis` reads (its production rule's weights
/// tell green from blue): the service's and their alternates.
pub fn analysis_target_groups(record: &crate::record::DeploymentRecord) -> Vec<String> {
    let Some(app) = record.desired.as_ref().filter(|a| a.depdef.analysis.is_some()) else { return Vec::new() };
    let lbs = app.svcdef.get("loadBalancers").and_then(Value::as_array).cloned().unwrap_or_default();
    lbs.iter()
        .flat_map(|lb| [lb.get("targetGroupArn"), lb.pointer("/advancedConfiguration/alternateTargetGroupArn")])
        .filter_map(|v| v.and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// ECS waits at a PAUSE hook: send the operator's answer, or wait for one (gitmoxi's budget
/// does not run while a human decides; ECS's own hook timeout applies).
fn at_gate(cx: &Step<'_>, d: &ObservedNativeDeployment, hook: &str, stage: &str, poll: Duration) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let mut next = record.clone();
    let waiting_since = record.awaiting_approval.as_ref().filter(|a| a.gate == hook).map_or(now, |a| a.since_ms);
    if let Some(given) = record.approvals.iter().rev().find(|a| a.gate == hook) {
        // answered and recorded, yet ECS still waits: the answer never reached it (the call
        // failed after the record was stored); send the same answer again
        let action =
            Action::EcsContinueServiceDeployment { arn: d.arn.clone(), hook_id: hook.to_string(), rollback: !given.answer.approve };
        return Plan { actions: vec![action], requeue_after: poll, ..Plan::default() };
    }
    if let Some(answer) = &cx.input.commands.approval {
        crate::strategy::gates::record_answer(&mut next, hook, answer);
        let then = if answer.approve { "ECS goes on" } else { "ECS rolls back" };
        next.log(now, if answer.approve { Level::Info } else { Level::Warn }, format!("{answer} at {stage}: {then}"));
        // the time spent waiting for a human is not the deployment's
        if let Phase::Rolling(RollingPhase::Stabilize { task_definition, deadline_ms }) = &record.phase {
            let deadline_ms = deadline_ms + now.saturating_sub(waiting_since);
            next.enter(Phase::Rolling(RollingPhase::Stabilize { task_definition: task_definition.clone(), deadline_ms }), now);
        }
        if !answer.approve {
            next.cause = Some(FailureCause::ApprovalRejected { by: answer.by.clone() });
        }
        let mut plan = Plan {
            next_record: Some(next),
            actions: vec![Action::EcsContinueServiceDeployment {
                arn: d.arn.clone(),
                hook_id: hook.to_string(),
                rollback: !answer.approve,
            }],
            requeue_after: poll,
            ..Plan::default()
        };
        plan.consumed.approval = true;
        return plan;
    }
    if record.awaiting_approval.as_ref().is_some_and(|a| a.gate == hook) {
        return Plan::wait(poll);
    }
    crate::strategy::gates::start_waiting(&mut next, hook, &d.arn, stage, now);
    let app = &record.app.prefix;
    next.log(
        now,
        Level::Warn,
        format!("waiting for approval: ECS paused at {stage}; approve with `gitmoxi approve {app}` or reject with `gitmoxi reject {app}`"),
    );
    Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() }
}

/// Asks ECS to stop its deployment and roll back, for `cause`.
fn stop(cx: &Step<'_>, d: &ObservedNativeDeployment, cause: FailureCause, evidence: Vec<String>) -> Plan {
    let now = cx.now;
    let mut next = cx.record.clone();
    next.set_failure(cause, evidence);
    let cause = next.cause.clone().map(|c| c.to_string()).unwrap_or_default();
    next.log(now, Level::Error, format!("{cause}: asking ECS to stop its deployment and roll back"));
    ask_to_stop(next, &d.arn, false, now, Duration::ZERO)
}

/// `next` enters NativeStop (persisted first) and ECS is asked to roll `arn` back.
fn ask_to_stop(mut next: crate::record::DeploymentRecord, arn: &str, superseded: bool, now: u64, requeue_after: Duration) -> Plan {
    next.awaiting_approval = None;
    next.enter(Phase::Rolling(RollingPhase::NativeStop { service_deployment: arn.to_string(), superseded, asked_at_ms: now }), now);
    Plan {
        next_record: Some(next),
        actions: vec![Action::EcsStopServiceDeployment { arn: arn.to_string() }],
        requeue_after,
        ..Plan::default()
    }
}

/// Why gitmoxi stops ECS's deployment from outside a step of it.
#[derive(Debug, Clone, Copy)]
pub enum StopFor<'a> {
    /// A newer commit arrived: the newer deployment starts once ECS has ended this one.
    Superseded {
        /// The newer commit.
        commit: &'a str,
    },
    /// An operator asked for the rollback.
    Operator,
}

/// Stops ECS's deployment of an in-flight native record with ECS's rollback (never a second
/// update on top of it); `None` when the record follows no running ECS deployment.
pub fn stop_in_flight(input: &crate::strategy::StepInput<'_>, record: &crate::record::DeploymentRecord, why: StopFor<'_>) -> Option<Plan> {
    let Phase::Rolling(RollingPhase::Stabilize { .. }) = &record.phase else { return None };
    strategy_of(&record.desired.as_ref()?.svcdef)?;
    let d = caused(input.observed, record).filter(|d| d.status.is_going_forward())?;
    let now = input.now_ms;
    let mut next = record.clone();
    let superseded = match why {
        StopFor::Superseded { commit } => {
            let commit = crate::strategy::short_commit(commit);
            next.log(now, Level::Warn, format!("superseded by commit {commit}: asking ECS to roll its deployment back first"));
            true
        }
        StopFor::Operator => {
            next.cause = Some(FailureCause::OperatorRollback);
            next.evidence = vec![format!("rollback requested by an operator during {}", describe(d))];
            next.log(now, Level::Error, format!("{}: asking ECS to stop its deployment and roll back", FailureCause::OperatorRollback));
            false
        }
    };
    Some(ask_to_stop(next, &d.arn, superseded, now, Duration::ZERO))
}

/// The record ends once ECS has ended its deployment: Superseded (the newer one starts next),
/// RolledBack (ECS put the source back) or Failed (ECS could not).
fn ended(cx: &Step<'_>, d: Option<&ObservedNativeDeployment>, superseded: bool) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let mut next = record.clone();
    next.awaiting_approval = None;
    if let Some(d) = d {
        next.evidence.push(format!("ECS service deployment {}: {}", d.arn, d.status));
        next.evidence.extend(d.status_reason.iter().map(|r| format!("ECS: {r}")));
        next.evidence.extend(
            d.hooks
                .iter()
                .filter(|h| matches!(h.status, NativeHookStatus::Failed | NativeHookStatus::TimedOut))
                .map(|h| format!("hook {} {}", h.target_arn.as_deref().unwrap_or(&h.id), h.status)),
        );
    }
    if let Some(d) = d.filter(|d| d.status == NativeDeploymentStatus::Successful) {
        // ECS finished before the stop reached it: what runs is the new revision
        next.cause = None;
        next.log(now, Level::Info, format!("ECS finished its deployment {} before the stop reached it", d.arn));
        next.finish(Outcome::Succeeded, now);
        let running = cx.service.and_then(|s| s.task_definition.clone());
        let completion = Plan::completion_of(&next, running);
        return Plan { finished: Some((next, completion)), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    if superseded {
        next.log(now, Level::Warn, "ECS ended its deployment; the newer commit deploys next");
        next.finish(Outcome::Superseded, now);
        return Plan { finished: Some((next, Completion::Nothing)), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let status = d.map_or(NativeDeploymentStatus::Stopped, |d| d.status.clone());
    let reason = d.map_or("ECS no longer lists the deployment".to_string(), |d| ecs_reason(d).to_string());
    // gitmoxi's own reason when it asked ECS to stop, else ECS's
    let cause = record.cause.clone().unwrap_or(FailureCause::EcsRolledBack { status: status.to_string(), reason });
    next.cause = Some(cause.clone());
    next.log(now, Level::Error, format!("{cause}: ECS ended its deployment ({status})"));
    let outcome = match status {
        NativeDeploymentStatus::RollbackFailed => Outcome::Failed,
        NativeDeploymentStatus::Successful => Outcome::Succeeded,
        NativeDeploymentStatus::Pending
        | NativeDeploymentStatus::InProgress
        | NativeDeploymentStatus::StopRequested
        | NativeDeploymentStatus::Stopped
        | NativeDeploymentStatus::RollbackRequested
        | NativeDeploymentStatus::RollbackInProgress
        | NativeDeploymentStatus::RollbackSuccessful
        | NativeDeploymentStatus::Other(_) => Outcome::RolledBack,
    };
    next.finish(outcome, now);
    let completion = Plan::completion_of(&next, None);
    Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_ecs_controlled_native_strategies_are_followed() {
        assert_eq!(strategy_of(&json!({"deploymentConfiguration": {"strategy": "BLUE_GREEN"}})), Some(NativeStrategy::BlueGreen));
        assert_eq!(strategy_of(&json!({"deploymentConfiguration": {"strategy": "ROLLING"}})), None);
        assert_eq!(strategy_of(&json!({})), None);
        let external = json!({"deploymentController": {"type": "EXTERNAL"}, "deploymentConfiguration": {"strategy": "LINEAR"}});
        assert_eq!(strategy_of(&external), None, "gitmoxi's own blue/green");
        let linear = json!({"deploymentConfiguration": {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 2}}});
        assert_eq!(strategy_of(&linear), Some(NativeStrategy::Linear { step_percent: 25.0, step_bake_minutes: 2 }));
    }

    #[test]
    fn the_budget_covers_bake_steps_and_hooks() {
        let blue_green = json!({"deploymentConfiguration": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2}});
        assert_eq!(extra_budget_secs(&blue_green), 120);
        let linear = json!({"deploymentConfiguration": {"strategy": "LINEAR", "bakeTimeInMinutes": 1,
            "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 2}}});
        assert_eq!(extra_budget_secs(&linear), (1 + 4 * 2) * 60);
        let hooked = json!({"deploymentConfiguration": {"strategy": "CANARY", "bakeTimeInMinutes": 0,
            "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 5},
            "lifecycleHooks": [{"lifecycleStages": ["POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT"], "timeoutConfiguration": {"timeoutInMinutes": 3}},
                               {"lifecycleStages": ["PRE_SCALE_UP"]}]}});
        assert_eq!(extra_budget_secs(&hooked), (5 + 2 * 3 + 15) * 60);
        assert_eq!(extra_budget_secs(&json!({"deploymentConfiguration": {"strategy": "ROLLING"}})), 0);
    }

    #[test]
    fn each_stage_reads_as_plain_language() {
        let mut d = ObservedNativeDeployment {
            lifecycle_stage: Some(NativeLifecycleStage::ProductionTrafficShift),
            production_weight: Some(30.0),
            ..ObservedNativeDeployment::default()
        };
        assert_eq!(describe(&d), "ECS shifted production traffic: 30 % to the new revision");
        d.lifecycle_stage = Some(NativeLifecycleStage::PostScaleUp);
        d.hooks = vec![crate::observed::ObservedNativeHook {
            id: "h1".into(),
            target_type: "AWS_LAMBDA".into(),
            target_arn: Some("arn:aws:lambda:us-east-1:1:function:validate-green".into()),
            status: NativeHookStatus::InProgress,
        }];
        assert_eq!(describe(&d), "the new revision's tasks run; no traffic yet (hook validate-green IN_PROGRESS)");
    }
}
