//! Drift (SPEC §1.6): what AWS runs compared with what gitmoxi applied, and what to do about it.
//!
//! Compared: that the service / function still exists, the task definition a service runs (the
//! primary task set's for blue/green), every svcdef field of [`crate::compare::COMPARED`] the
//! file sets (the one comparison of issue 23) and the version a Lambda alias points at. `desiredCount`
//! is never drift (autoscaling owns it). `ignoreFields` (JSON pointers) switch comparisons off.

use crate::observed::Observed;
use crate::record::AppliedState;
use crate::spec::{AppSpec, DesiredApp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a detected drift leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    /// Redeploy the applied state.
    #[default]
    Heal,
    /// Record it (history, metric) and leave AWS alone.
    Report,
    /// Do not look.
    Ignore,
}

impl DriftMode {
    /// Parses `heal`, `report` or `ignore` in any case.
    pub fn parse(s: &str) -> Option<DriftMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "heal" => Some(DriftMode::Heal),
            "report" => Some(DriftMode::Report),
            "ignore" => Some(DriftMode::Ignore),
            _ => None,
        }
    }
}

/// The drift policy of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DriftPolicy {
    /// Heal, report or ignore.
    pub mode: DriftMode,
    /// `/taskDefinition` in ignoreFields.
    pub ignore_task_definition: bool,
    /// `/FunctionVersion` in ignoreFields.
    pub ignore_function_version: bool,
    /// `/status` in ignoreFields: a missing service or function is not drift.
    pub ignore_existence: bool,
}

/// The JSON pointers `ignoreFields` accepts.
pub const IGNORABLE: &[&str] = &["/taskDefinition", "/FunctionVersion", "/status", "/desiredCount"];

impl DriftPolicy {
    /// Applies `ignoreFields`; an unknown pointer is an error naming the ones that exist.
    pub fn ignoring(mut self, pointers: &[String]) -> Result<DriftPolicy, String> {
        for p in pointers {
            match p.as_str() {
                "/taskDefinition" => self.ignore_task_definition = true,
                "/FunctionVersion" => self.ignore_function_version = true,
                "/status" => self.ignore_existence = true,
                "/desiredCount" => {} // never drift anyway
                other => return Err(format!("ignoreFields entry \"{other}\" is not compared; use one of {}", IGNORABLE.join(", "))),
            }
        }
        Ok(self)
    }
}

/// The last comparison of a steady app with AWS (the executor keeps it in memory: a restart
/// compares every app once more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftSeen {
    /// When the comparison ran.
    pub at_ms: u64,
    /// What was found then (`None`: in sync).
    pub found: Option<String>,
}

/// The drift cadence of one app: its repository's policy, how often to compare, the last look.
#[derive(Debug, Clone, Copy)]
pub struct DriftClock<'a> {
    /// The repository's drift policy.
    pub policy: DriftPolicy,
    /// How often a steady app is compared.
    pub interval: Duration,
    /// The last comparison, if one ran since the start.
    pub last: Option<&'a DriftSeen>,
}

impl DriftClock<'_> {
    /// No drift checks (tests of other decisions).
    pub fn off() -> DriftClock<'static> {
        DriftClock { policy: DriftPolicy { mode: DriftMode::Ignore, ..DriftPolicy::default() }, interval: Duration::MAX, last: None }
    }

    /// Whether a comparison is due at `now_ms` (ignoring the app's state; see
    /// [`crate::strategy::drift_due`]).
    pub fn due(&self, now_ms: u64) -> bool {
        self.policy.mode != DriftMode::Ignore
            && self.last.is_none_or(|seen| u128::from(now_ms.saturating_sub(seen.at_ms)) >= self.interval.as_millis())
    }

    /// Whether `found` is a finding not reported by the last look.
    pub fn is_new(&self, found: Option<&str>) -> bool {
        found.is_some() && self.last.and_then(|s| s.found.as_deref()) != found
    }
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The drift between the applied state and what was observed, in words; `None` = in sync.
pub fn detect(app: &DesiredApp, applied: &AppliedState, observed: &Observed, policy: &DriftPolicy) -> Option<String> {
    match &app.spec {
        AppSpec::Ecs(ecs) => {
            let service = observed.service.as_ref().filter(|s| s.is_active());
            let Some(service) = service else {
                return (!policy.ignore_existence).then(|| format!("service {} is gone (or not ACTIVE)", ecs.service_name));
            };
            let runs = service.task_definition.as_deref().unwrap_or("nothing");
            if let Some(want) = applied.task_definition.as_deref().filter(|want| !policy.ignore_task_definition && runs != *want) {
                return Some(format!("service {} runs {} instead of {}", ecs.service_name, short(runs), short(want)));
            }
            let differences = crate::strategy::ecs_rolling::service_differences(&ecs.svcdef, ecs.strategy, service);
            (!differences.is_empty()).then(|| {
                format!("service {} differs from the file: {}", ecs.service_name, crate::compare::describe(&differences).join("; "))
            })
        }
        AppSpec::Lambda(l) => {
            let Some(function) = &observed.lambda.function else {
                return (!policy.ignore_existence).then(|| format!("function {} is gone", l.function_name));
            };
            let gaps = crate::compare::lambda_function(&l.lambdadef, &function.config);
            if !gaps.is_empty() && !function.config.is_empty() {
                return Some(format!("function {} differs from the file: {}", l.function_name, gaps.join("; ")));
            }
            if let Some(gaps) = wiring_drift(l, applied, &observed.lambda) {
                return Some(gaps);
            }
            let want = applied.task_definition.as_deref()?;
            let alias = observed.lambda.alias.as_ref();
            let points = alias.map_or("nothing", |a| a.function_version.as_str());
            let routed = alias.is_some_and(|a| a.additional.values().any(|w| *w > 0.0));
            (!policy.ignore_function_version && (points != want || routed)).then(|| {
                format!("alias {} points at {points}{} instead of version {want}", l.alias, if routed { " with routing" } else { "" })
            })
        }
    }
}

/// When the look observed the wiring: what the event sources lack (a mapping deleted by hand, a
/// permission removed, a changed batch size…), as the actions that would heal it.
fn wiring_drift(app: &crate::spec::LambdaApp, applied: &AppliedState, observed: &crate::observed::ObservedLambda) -> Option<String> {
    if !observed.wiring_observed {
        return None;
    }
    let alias_arn = observed.alias.as_ref()?.arn.clone();
    let retired = crate::strategy::lambda_shift::retired_sources(applied);
    let actions =
        crate::strategy::lambda_shift::wiring_actions(&app.function_name, &app.alias, &alias_arn, &app.event_sources, retired, observed);
    let first = actions.first()?;
    use crate::plan::Action;
    let what = match first {
        Action::LambdaCreateMapping { body } => {
            format!("the mapping from {} is missing", body.get("EventSourceArn").and_then(serde_json::Value::as_str).unwrap_or("?"))
        }
        Action::LambdaUpdateMapping { uuid, body } => {
            let fields: Vec<&String> = body.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            format!("mapping {uuid} differs in {fields:?}")
        }
        Action::LambdaDeleteMapping { uuid } => format!("mapping {uuid} is not in the file"),
        Action::LambdaAddPermission { principal, .. } => format!("the permission for {principal} is missing"),
        Action::LambdaRemovePermission { sid, .. } => format!("permission {sid} is not in the file"),
        Action::ElbRegisterLambda { target_group, .. } => format!("the alias is not a target of {target_group}"),
        Action::ElbDeregisterLambda { target_group, .. } => format!("the alias is still a target of {target_group}"),
        Action::ApiCreateIntegration { api_id, .. } => format!("API {api_id} has no integration to the alias"),
        Action::ApiSetRouteTarget { api_id, route_id, .. } => format!("route {route_id} of API {api_id} does not target the alias"),
        Action::ApiDeleteIntegration { api_id, integration_id } => {
            format!("integration {integration_id} of API {api_id} is not in the file")
        }
        Action::EcsRegisterTaskDefinition { .. }
        | Action::EcsRunTask { .. }
        | Action::EcsCreateService { .. }
        | Action::EcsUpdateService { .. }
        | Action::EcsDeleteService { .. }
        | Action::EcsStopServiceDeployment { .. }
        | Action::EcsContinueServiceDeployment { .. }
        | Action::EcsTagResource { .. }
        | Action::EcsCreateTaskSet { .. }
        | Action::EcsUpdateTaskSetScale { .. }
        | Action::EcsUpdatePrimaryTaskSet { .. }
        | Action::EcsDeleteTaskSet { .. }
        | Action::ElbSetForwardWeights { .. }
        | Action::LambdaCreateFunction { .. }
        | Action::LambdaUpdateCode { .. }
        | Action::LambdaUpdateConfig { .. }
        | Action::LambdaPublishVersion { .. }
        | Action::LambdaCreateAlias { .. }
        | Action::LambdaSetAlias { .. }
        | Action::LambdaDeleteVersion { .. }
        | Action::LambdaDeleteFunction { .. } => format!("{} is needed", first.operation()),
    };
    Some(format!(
        "event sources of alias {} differ from the file: {what}{}",
        app.alias,
        if actions.len() > 1 { format!(" (and {} more)", actions.len() - 1) } else { String::new() }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{ObservedAlias, ObservedFunction, ObservedLambda, ObservedService};
    use crate::spec::{load_snapshot, MemTree, RenderContext};

    fn ecs_app() -> DesiredApp {
        let tree = MemTree::new().with("s/web_svcdef.json", r#"{"serviceName": "web", "cluster": "prod", "taskDefinition": "web:1"}"#);
        load_snapshot(&tree, &RenderContext::new("us-east-1".into())).apps["s/web"].clone().expect("valid")
    }

    fn applied(td: &str) -> AppliedState {
        AppliedState { fingerprint: Some("f".into()), task_definition: Some(td.into()), ..Default::default() }
    }

    fn running(td: Option<&str>, status: &str) -> Observed {
        Observed {
            service: Some(ObservedService { status: status.into(), task_definition: td.map(Into::into), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn ecs_drift_is_a_missing_service_or_another_task_definition() {
        let app = ecs_app();
        let p = DriftPolicy::default();
        let td = "arn:aws:ecs:us-east-1:1:task-definition/web:1";
        assert_eq!(detect(&app, &applied(td), &running(Some(td), "ACTIVE"), &p), None);
        let other = running(Some("arn:aws:ecs:us-east-1:1:task-definition/web:7"), "ACTIVE");
        assert_eq!(detect(&app, &applied(td), &other, &p).as_deref(), Some("service web runs web:7 instead of web:1"));
        assert!(detect(&app, &applied(td), &running(None, "INACTIVE"), &p).unwrap().contains("is gone"));
        let lenient = p.ignoring(&["/taskDefinition".into(), "/status".into(), "/desiredCount".into()]).unwrap();
        assert_eq!(detect(&app, &applied(td), &other, &lenient), None);
        assert_eq!(detect(&app, &applied(td), &running(None, "INACTIVE"), &lenient), None);
        assert!(p.ignoring(&["/image".into()]).unwrap_err().contains("use one of"));
    }

    #[test]
    fn lambda_drift_is_a_moved_or_routed_alias() {
        let tree = MemTree::new()
            .with("f/fn_lambdadef.json", r#"{"FunctionName": "fn", "Code": {"S3Bucket": "b", "S3Key": "k"}}"#)
            .with("f/fn_lambdadepdef.json", r#"{"alias": "live"}"#);
        let app = load_snapshot(&tree, &RenderContext::new("us-east-1".into())).apps["f/fn"].clone().expect("valid");
        let observed = |version: &str, routed: bool| Observed {
            lambda: ObservedLambda {
                function: Some(ObservedFunction::default()),
                alias: Some(ObservedAlias {
                    function_version: version.into(),
                    additional: if routed { [("9".to_string(), 0.1)].into_iter().collect() } else { Default::default() },
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = DriftPolicy::default();
        assert_eq!(detect(&app, &applied("3"), &observed("3", false), &p), None);
        assert_eq!(detect(&app, &applied("3"), &observed("2", false), &p).as_deref(), Some("alias live points at 2 instead of version 3"));
        assert!(detect(&app, &applied("3"), &observed("3", true), &p).unwrap().contains("with routing"));
        assert!(detect(&app, &applied("3"), &Observed::default(), &p).unwrap().contains("function fn is gone"));
    }

    /// Issue 23: a function's configuration changed by hand is drift, naming the field.
    #[test]
    fn lambda_drift_includes_the_functions_configuration() {
        let tree = MemTree::new()
            .with("f/fn_lambdadef.json", r#"{"FunctionName": "fn", "MemorySize": 256, "Code": {"S3Bucket": "b", "S3Key": "k"}}"#)
            .with("f/fn_lambdadepdef.json", r#"{"alias": "live"}"#);
        let app = load_snapshot(&tree, &RenderContext::new("us-east-1".into())).apps["f/fn"].clone().expect("valid");
        let with_memory = |mb: u64| Observed {
            lambda: ObservedLambda {
                function: Some(ObservedFunction {
                    config: [("MemorySize".to_string(), serde_json::json!(mb))].into(),
                    ..Default::default()
                }),
                alias: Some(ObservedAlias { function_version: "3".into(), ..Default::default() }),
                ..Default::default()
            },
            ..Default::default()
        };
        let p = DriftPolicy::default();
        assert_eq!(detect(&app, &applied("3"), &with_memory(256), &p), None);
        let found = detect(&app, &applied("3"), &with_memory(128), &p).expect("drift");
        assert!(found.contains("MemorySize") && found.contains("128"), "{found}");
    }
}
