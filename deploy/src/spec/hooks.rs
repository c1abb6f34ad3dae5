//! `hooks` of a depdef or lambdadepdef (issue 25): checks gitmoxi runs at three points of its own
//! blue/green and Lambda deployments, as CodeDeploy's hooks do — `beforeShift` (once, before the
//! first production traffic moves to green), `afterShift` (once, when green has all the traffic,
//! before the bake) and `beforePromote` (after the bake, before green is promoted) — each a one-off
//! ECS task (success: its essential containers exit 0) or a Lambda invocation (success: no
//! FunctionError), with a timeout. A failure rolls back like an alarm.
//!
//! `{"beforeShift": {"task": {"taskDefinition": "smoke:3", "overrides": {…}}, "timeout": 300},
//!   "afterShift": {"lambda": {"functionName": "verify", "payload": {…}}, "timeout": 60}}`

use super::fields::FieldReader;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookPoint {
    /// Before the first production traffic moves to green.
    BeforeShift,
    /// When green has all the traffic, before the bake.
    AfterShift,
    /// After the bake, before green is promoted.
    BeforePromote,
}

impl HookPoint {
    /// The name the files use.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::BeforeShift => "beforeShift",
            HookPoint::AfterShift => "afterShift",
            HookPoint::BeforePromote => "beforePromote",
        }
    }
}

/// What a hook runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HookTarget {
    /// A one-off ECS task in the service's cluster and network (RunTask).
    Task {
        /// The task definition (family, `family:revision` or ARN).
        task_definition: String,
        /// RunTask `overrides` (container commands, environment…), as the API names them.
        overrides: Option<Value>,
    },
    /// A synchronous Lambda invocation.
    Lambda {
        /// The function (name, ARN or `name:alias`).
        function: String,
        /// The event; gitmoxi adds `gitmoxi` with the deployment, app, commit, point and sides.
        payload: Option<Value>,
    },
}

/// One hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    /// What runs.
    pub target: HookTarget,
    /// How long it may take, seconds (default 300).
    pub timeout_secs: u64,
}

/// The hooks of an app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hooks {
    /// Before the first shift.
    pub before_shift: Option<Hook>,
    /// At 100 % on green, before the bake.
    pub after_shift: Option<Hook>,
    /// Before promotion.
    pub before_promote: Option<Hook>,
}

impl Hooks {
    /// The hook at `point`, if any.
    pub fn at(&self, point: HookPoint) -> Option<&Hook> {
        match point {
            HookPoint::BeforeShift => self.before_shift.as_ref(),
            HookPoint::AfterShift => self.after_shift.as_ref(),
            HookPoint::BeforePromote => self.before_promote.as_ref(),
        }
    }
}

/// Reads `hooks`; `tasks_allowed`: an ECS app (a Lambda app has no cluster or network to run a
/// task in).
pub(crate) fn parse(r: &mut FieldReader<'_>, value: Option<&Value>, tasks_allowed: bool) -> Option<Hooks> {
    let obj = r.object(value, "hooks")?;
    r.warn_unknown(obj, "hooks", &["beforeShift", "afterShift", "beforePromote"]);
    let mut hooks = Hooks::default();
    for point in [HookPoint::BeforeShift, HookPoint::AfterShift, HookPoint::BeforePromote] {
        let path = format!("hooks.{}", point.as_str());
        let Some(h) = r.object(obj.get(point.as_str()), &path) else { continue };
        r.warn_unknown(h, &path, &["task", "lambda", "timeout"]);
        let timeout_secs = r.int(h.get("timeout"), &format!("{path}.timeout"), 1, 3600).map_or(300, |t| t as u64);
        let target = match (r.object(h.get("task"), &format!("{path}.task")), r.object(h.get("lambda"), &format!("{path}.lambda"))) {
            (Some(t), None) => {
                r.warn_unknown(t, &format!("{path}.task"), &["taskDefinition", "overrides"]);
                if !tasks_allowed {
                    r.error(&format!("{path}.task"), "a Lambda app has no cluster or network to run a task in: use a lambda hook");
                }
                let Some(task_definition) =
                    r.string(t.get("taskDefinition"), &format!("{path}.task.taskDefinition")).filter(|s| !s.is_empty())
                else {
                    r.error(
                        &format!("{path}.task.taskDefinition"),
                        "is required: the task definition of the check (family, family:revision or ARN)",
                    );
                    continue;
                };
                let overrides = t.get("overrides").filter(|v| !v.is_null()).cloned();
                if overrides.as_ref().is_some_and(|o| !o.is_object()) {
                    r.error(&format!("{path}.task.overrides"), "must be an object: RunTask's overrides");
                }
                HookTarget::Task { task_definition, overrides }
            }
            (None, Some(l)) => {
                r.warn_unknown(l, &format!("{path}.lambda"), &["functionName", "payload"]);
                let Some(function) = r.string(l.get("functionName"), &format!("{path}.lambda.functionName")).filter(|s| !s.is_empty())
                else {
                    r.error(&format!("{path}.lambda.functionName"), "is required: the function to invoke");
                    continue;
                };
                let payload = l.get("payload").filter(|v| !v.is_null()).cloned();
                HookTarget::Lambda { function, payload }
            }
            _ => {
                r.error(&path, "give exactly one of task ({\"taskDefinition\": …}) or lambda ({\"functionName\": …})");
                continue;
            }
        };
        let hook = Hook { target, timeout_secs };
        match point {
            HookPoint::BeforeShift => hooks.before_shift = Some(hook),
            HookPoint::AfterShift => hooks.after_shift = Some(hook),
            HookPoint::BeforePromote => hooks.before_promote = Some(hook),
        }
    }
    Some(hooks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value, tasks_allowed: bool) -> (Option<Hooks>, Vec<String>) {
        let text = v.to_string();
        let mut r = FieldReader::new("web_depdef.json", &text);
        let hooks = parse(&mut r, Some(&v), tasks_allowed);
        (hooks, r.errors.iter().map(|e| e.message.clone()).collect())
    }

    #[test]
    fn hooks_read_with_their_defaults_and_bad_ones_name_the_field() {
        let (hooks, errors) = read(
            json!({"beforeShift": {"task": {"taskDefinition": "smoke:3", "overrides": {"containerOverrides": []}}},
                   "beforePromote": {"lambda": {"functionName": "verify"}, "timeout": 60}}),
            true,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let hooks = hooks.expect("hooks");
        assert_eq!(hooks.before_shift.as_ref().map(|h| h.timeout_secs), Some(300));
        assert!(
            matches!(&hooks.at(HookPoint::BeforePromote).expect("hook").target, HookTarget::Lambda { function, .. } if function == "verify")
        );
        assert!(hooks.after_shift.is_none());
        for (v, tasks_allowed, want) in [
            (json!({"beforeShift": {}}), true, "exactly one of task"),
            (json!({"beforeShift": {"task": {}}}), true, "hooks.beforeShift.task.taskDefinition"),
            (json!({"afterShift": {"task": {"taskDefinition": "x"}}}), false, "a Lambda app has no cluster"),
            (json!({"afterShift": {"lambda": {"functionName": "f"}, "timeout": 0}}), true, "hooks.afterShift.timeout"),
        ] {
            let (_, errors) = read(v.clone(), tasks_allowed);
            assert!(errors.iter().any(|e| e.contains(want)), "{v}: {errors:?}");
        }
    }
}
