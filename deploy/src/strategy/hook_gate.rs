//! Running a hook (issue 25) at its point of a task-set blue/green or Lambda deployment: start it
//! once (persisted before it runs), follow it, and say whether the deployment goes on.
//!
//! A task hook is RunTask in the service's cluster and network with `startedBy`
//! `gitmoxi-hook/<deployment>/<point>` and a client token, so a replay finds the same task
//! instead of starting a second; it succeeds when it stopped with every container exited 0. A
//! Lambda hook is one synchronous invocation made by the observer when the record says the hook
//! runs; it succeeds without a FunctionError. A hook that fails or outlives its timeout rolls the
//! deployment back with its cause (the task's stop reason and exit codes, the function's error
//! and the tail of its log).

use super::StepInput;
use crate::observed::{ObservedInvocation, ObservedTask, TaskStatus};
use crate::plan::{Action, Plan};
use crate::record::{DeploymentRecord, FailureCause, HookRun, HookStatus, Level};
use crate::spec::hooks::{Hook, HookPoint, HookTarget, Hooks};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// How long a task hook may stay unlisted before its RunTask is sent again (same client token).
const RESEND_AFTER_MS: u64 = 15_000;

/// What a hook lets the step do.
#[derive(Debug)]
// one value per step, returned once: its size does not matter
#[allow(clippy::large_enum_variant)]
pub enum HookGate {
    /// No hook here, or it succeeded.
    Open,
    /// The hook starts or runs; this plan keeps its state.
    Hold(Plan),
    /// It failed: roll back with the record (the run kept), the cause and the evidence.
    Closed(Box<DeploymentRecord>, FailureCause, Vec<String>),
}

/// The `startedBy` of a task hook.
pub fn started_by(deployment: &str, point: HookPoint) -> String {
    format!("gitmoxi-hook/{deployment}/{}", point.as_str())
}

/// A Lambda invocation the observer makes for a running hook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookInvocation {
    /// The function.
    pub function: String,
    /// The event.
    pub payload: Value,
    /// How long the call may take.
    pub timeout_secs: u64,
}

/// The hooks a record's app has.
fn hooks_of(record: &DeploymentRecord) -> Option<&Hooks> {
    record
        .desired
        .as_ref()
        .and_then(|a| a.depdef.hooks.as_ref())
        .or_else(|| record.desired_lambda.as_ref().and_then(|l| l.depdef.hooks.as_ref()))
}

/// The hook running now, if any: its run and its definition.
fn running(record: &DeploymentRecord) -> Option<(&HookRun, &Hook)> {
    let run = record.hooks.iter().rev().find(|h| h.status == HookStatus::Running)?;
    Some((run, hooks_of(record)?.at(run.point)?))
}

/// What the observer fetches for a running hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookNeeds {
    /// A task hook: its tasks (cluster, startedBy).
    pub tasks: Option<(String, String)>,
    /// A task hook: its task definition (where its containers log).
    pub task_definition: Option<String>,
    /// A Lambda hook: the invocation to make.
    pub invoke: Option<HookInvocation>,
}

/// What the observer must fetch for a running hook: its tasks and where they log, or the
/// invocation to make.
pub fn needs(record: &DeploymentRecord) -> HookNeeds {
    // hooks run only while traffic shifts or bakes: a deployment rolling back for another cause
    // never invokes a hook again
    let shifting = matches!(
        record.phase,
        crate::record::Phase::BlueGreen(crate::record::BlueGreenPhase::Shift { .. } | crate::record::BlueGreenPhase::Bake { .. })
            | crate::record::Phase::Lambda(crate::record::LambdaPhase::Shift { .. } | crate::record::LambdaPhase::Bake { .. })
    );
    let Some((run, hook)) = running(record).filter(|_| shifting) else { return HookNeeds::default() };
    match &hook.target {
        HookTarget::Task { task_definition, .. } => {
            let cluster = record.desired.as_ref().map(|a| a.cluster.clone()).unwrap_or_default();
            HookNeeds {
                tasks: Some((cluster, started_by(&record.id, run.point))),
                task_definition: Some(task_definition.clone()),
                invoke: None,
            }
        }
        HookTarget::Lambda { function, payload } => {
            let invocation = HookInvocation {
                function: function.clone(),
                payload: event(record, run.point, payload.as_ref()),
                timeout_secs: hook.timeout_secs,
            };
            HookNeeds { invoke: Some(invocation), ..HookNeeds::default() }
        }
    }
}

/// The event of a Lambda hook: the user's payload with `gitmoxi` added (what is deployed where).
fn event(record: &DeploymentRecord, point: HookPoint, payload: Option<&Value>) -> Value {
    let sides = record.analysis.as_ref().and_then(|a| a.sides.clone());
    let context = json!({
        "deployment": record.id,
        "app": record.app.prefix,
        "repo": record.app.repo,
        "branch": record.app.branch,
        "commit": record.commit,
        "hook": point.as_str(),
        "identity": record.identity.to_string(),
        "newVersion": match &record.phase {
            crate::record::Phase::Lambda(p) => super::lambda_shift::version_of(p).map(str::to_string),
            crate::record::Phase::Rolling(_) | crate::record::Phase::BlueGreen(_) | crate::record::Phase::Done => None,
        },
        "previousVersion": record.previous_version,
        "sides": sides,
    });
    match payload {
        Some(Value::Object(o)) => {
            let mut o = o.clone();
            o.insert("gitmoxi".into(), context);
            Value::Object(o)
        }
        Some(other) => json!({"payload": other, "gitmoxi": context}),
        None => json!({"gitmoxi": context}),
    }
}

/// The RunTask body of a task hook: the service's cluster, network and capacity.
fn run_task_body(record: &DeploymentRecord, point: HookPoint, task_definition: &str, overrides: Option<&Value>) -> Value {
    let mut body = Map::new();
    if let Some(app) = &record.desired {
        body.insert("cluster".into(), json!(app.cluster));
        for field in ["networkConfiguration", "launchType", "capacityProviderStrategy", "platformVersion"] {
            if let Some(v) = app.svcdef.get(field).filter(|v| !v.is_null()) {
                body.insert(field.into(), v.clone());
            }
        }
    }
    body.insert("taskDefinition".into(), json!(task_definition));
    body.insert("count".into(), json!(1));
    body.insert("startedBy".into(), json!(started_by(&record.id, point)));
    body.insert("clientToken".into(), json!(crate::token::client_token(&record.id, &format!("hook-{}", point.as_str()))));
    if let Some(o) = overrides {
        body.insert("overrides".into(), o.clone());
    }
    body.insert(
        "tags".into(),
        json!([{"key": "gitmoxi:deployment", "value": record.id}, {"key": "gitmoxi:hook", "value": point.as_str()}]),
    );
    Value::Object(body)
}

/// The line of a function's log tail that says what went wrong: the last error line, else the
/// last line that is not Lambda's own START / END / REPORT.
fn error_line(tail: &str) -> String {
    let lines: Vec<&str> = tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("START") && !l.starts_with("END") && !l.starts_with("REPORT"))
        .collect();
    let line = lines.iter().rev().find(|l| l.contains("ERROR") || l.contains("Error")).or(lines.last()).copied().unwrap_or("");
    line.chars().take(300).collect()
}

/// The log streams of a hook's task: `group prefix/container/task-id` for each container that
/// logs with `awslogs` and a stream prefix (what CloudWatch Logs names them).
fn log_streams(logs: &[crate::observed::ObservedTaskLogs], task_arn: &str) -> String {
    let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn);
    logs.iter()
        .filter_map(|l| Some(format!("{} {}/{}/{task_id}", l.group.as_deref()?, l.stream_prefix.as_deref()?, l.container)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verdict of a task hook's task, once it stopped: success, or why not.
fn task_verdict(task: &ObservedTask) -> Option<Result<String, String>> {
    if task.last_status != TaskStatus::Stopped {
        return None;
    }
    let reason = task.stopped_reason.clone().unwrap_or_default();
    let (line, _) = crate::checks::stop_line(task, &reason);
    let exits: Vec<Option<i32>> = task.containers.iter().map(|c| c.exit_code).collect();
    let ok = !exits.is_empty() && exits.iter().all(|e| *e == Some(0)) && task.stop_code.as_deref() != Some("TaskFailedToStart");
    Some(if ok { Ok(line) } else { Err(line) })
}

/// The hook at `point` of `record`: start it, follow it, or let the step go on. `poll` is how
/// often a running task hook is looked at.
pub fn at(input: &StepInput<'_>, record: &DeploymentRecord, point: HookPoint, poll: Duration) -> HookGate {
    let Some(hook) = hooks_of(record).and_then(|h| h.at(point)).cloned() else { return HookGate::Open };
    let now = input.now_ms;
    let name = point.as_str();
    let Some(index) = record.hooks.iter().rposition(|h| h.point == point) else {
        // start it: the run is persisted with the action that starts it
        let mut next = record.clone();
        next.hooks.push(HookRun { point, started_ms: now, status: HookStatus::Running, detail: None, reference: None });
        return match &hook.target {
            HookTarget::Task { task_definition, overrides } => {
                next.log(now, Level::Info, format!("hook {name}: running task {task_definition} (up to {} s)", hook.timeout_secs));
                let body = run_task_body(record, point, task_definition, overrides.as_ref());
                HookGate::Hold(Plan {
                    next_record: Some(next),
                    actions: vec![Action::EcsRunTask { body }],
                    requeue_after: poll,
                    ..Plan::default()
                })
            }
            HookTarget::Lambda { function, .. } => {
                next.log(now, Level::Info, format!("hook {name}: invoking {function} (up to {} s)", hook.timeout_secs));
                HookGate::Hold(Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() })
            }
        };
    };
    let run = record.hooks[index].clone();
    let fail = |next: DeploymentRecord, detail: String| {
        let cause = FailureCause::HookFailed { hook: name.to_string(), detail: detail.clone() };
        HookGate::Closed(Box::new(next), cause, vec![format!("hook {name}: {detail}")])
    };
    match run.status {
        HookStatus::Succeeded => return HookGate::Open,
        HookStatus::Failed | HookStatus::TimedOut => return fail(record.clone(), run.detail.clone().unwrap_or_default()),
        HookStatus::Running => {}
    }
    let mut next = record.clone();
    let finish = |next: &mut DeploymentRecord, status: HookStatus, detail: String, reference: Option<String>| {
        let r = &mut next.hooks[index];
        r.status = status;
        r.detail = Some(detail);
        r.reference = reference;
    };
    let verdict: Option<(Result<String, String>, Option<String>)> = match &hook.target {
        HookTarget::Task { .. } => {
            let newest = input.observed.hook_tasks.iter().max_by_key(|t| t.arn.clone());
            match newest {
                Some(task) => task_verdict(task).map(|v| {
                    let logs = log_streams(&input.observed.hook_logs, &task.arn);
                    let with_logs = |line: String| if logs.is_empty() { line } else { format!("{line} — logs: {logs}") };
                    (v.map(with_logs).map_err(with_logs), Some(task.arn.clone()))
                }),
                None if now >= run.started_ms + RESEND_AFTER_MS && now < run.started_ms + hook.timeout_secs * 1000 => {
                    // the RunTask may not have reached ECS: the same client token again
                    let HookTarget::Task { task_definition, overrides } = &hook.target else { return HookGate::Open };
                    let body = run_task_body(record, point, task_definition, overrides.as_ref());
                    return HookGate::Hold(Plan { actions: vec![Action::EcsRunTask { body }], requeue_after: poll, ..Plan::default() });
                }
                None => None,
            }
        }
        HookTarget::Lambda { .. } => input.observed.invocation.as_ref().map(|i: &ObservedInvocation| {
            let reference = i.request_id.clone();
            match &i.function_error {
                None if (200..300).contains(&i.status_code) => (Ok(format!("returned {}", i.status_code)), reference),
                error => {
                    let tail = i.log_tail.as_deref().map(error_line).unwrap_or_default();
                    let what = error.clone().unwrap_or_else(|| format!("status {}", i.status_code));
                    let tail = if tail.is_empty() { String::new() } else { format!(" — {tail}") };
                    (Err(format!("FunctionError {what}{tail}")), reference)
                }
            }
        }),
    };
    match verdict {
        Some((Ok(detail), reference)) => {
            next.log(now, Level::Info, format!("hook {name} succeeded: {detail}"));
            finish(&mut next, HookStatus::Succeeded, detail, reference);
            HookGate::Hold(Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() })
        }
        Some((Err(detail), reference)) => {
            next.log(now, Level::Error, format!("hook {name} failed: {detail}"));
            finish(&mut next, HookStatus::Failed, detail.clone(), reference);
            fail(next, detail)
        }
        None if now >= run.started_ms + hook.timeout_secs * 1000 => {
            let detail = format!("did not end within its timeout of {} s", hook.timeout_secs);
            next.log(now, Level::Error, format!("hook {name} {detail}"));
            finish(&mut next, HookStatus::TimedOut, detail.clone(), None);
            fail(next, detail)
        }
        None => {
            let left = Duration::from_millis(run.started_ms + hook.timeout_secs * 1000 - now);
            let wait = match hook.target {
                HookTarget::Task { .. } => poll,
                HookTarget::Lambda { .. } => Duration::from_secs(1),
            };
            HookGate::Hold(Plan::wait(wait.min(left).max(Duration::from_millis(1))))
        }
    }
}
