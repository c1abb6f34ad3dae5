//! The ECS deployment settings file `_depdef.json` (SPEC §3.5): every field, default and legacy
//! alias, and its validation.
//!
//! Invariants: a missing depdef means all defaults; unknown fields are warnings; invalid values are
//! errors naming the field. Legacy spellings are accepted as aliases of the current ones.

#![allow(
    clippy::wildcard_enum_match_arm,
    reason = "JSON shapes: a wildcard over serde_json::Value means \"any other JSON\"; no domain enum is matched here with a wildcard"
)]

use super::diag::Diagnostic;
use super::fields::{show, FieldReader};
use crate::schedule::{ShiftType, TrafficShifting};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stability check settings (seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StabilityCheck {
    /// Seconds between two stability looks.
    pub poll_interval_secs: u64,
    /// How long a deployment may take to become stable.
    pub timeout_secs: u64,
    /// Per-task budget: the timeout grows to this × desiredCount when that is longer.
    pub timeout_per_task_secs: Option<u64>,
}

impl Default for StabilityCheck {
    fn default() -> Self {
        StabilityCheck { poll_interval_secs: 30, timeout_secs: 300, timeout_per_task_secs: None }
    }
}

impl StabilityCheck {
    /// Budget = max(timeout, timeoutPerTask × desiredCount), in seconds.
    pub fn budget_secs(&self, desired_count: u32) -> u64 {
        let per_task = self.timeout_per_task_secs.map_or(0, |t| t.saturating_mul(u64::from(desired_count)));
        self.timeout_secs.max(per_task)
    }
}

/// gitmoxi's own circuit breaker (`gmDeploymentCircuitBreaker`); off unless present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    /// Failed new tasks that trip the breaker.
    pub failure_threshold: Option<u32>,
    /// Failed new tasks, in percent of desiredCount, that trip the breaker.
    pub failure_threshold_percent: Option<u32>,
}

impl CircuitBreaker {
    /// The number of failed new tasks that trips the breaker for `desired_count` tasks.
    pub fn threshold(&self, desired_count: u32) -> u32 {
        let from_percent = self.failure_threshold_percent.map(|p| (u64::from(p) * u64::from(desired_count)).div_ceil(100).max(1) as u32);
        match (self.failure_threshold, from_percent) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => 5,
        }
    }
}

/// A per-app notification webhook (SPEC §6.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppWebhook {
    /// The webhook's name, for logs.
    pub name: String,
    /// Where to send it.
    pub urls: Vec<String>,
    /// The JSON payload, rendered per event.
    pub payload_template: Value,
}

/// Parsed ECS depdef with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcsDepdef {
    /// Apps of the same branch that must run the head's files before this one starts
    /// (`dependsOn`, issue 26).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The region, when the depdef names one.
    pub region: Option<String>,
    /// The account, when the depdef names one.
    pub account: Option<String>,
    /// `Some` = traffic shifting on.
    pub traffic_shifting: Option<TrafficShifting>,
    /// Blue/green: (blue, green) target group ARNs.
    pub target_group_pairs: Vec<(String, String)>,
    /// CloudWatch alarms watched while traffic shifts.
    pub alarm_names: Vec<String>,
    /// `alarms.enable` (default true): false = the alarms are not watched.
    pub alarms_enabled: bool,
    /// `alarms.rollback` (default true): false = a firing alarm is recorded and notified but does
    /// not roll the deployment back.
    pub alarms_rollback: bool,
    /// `trafficShiftingConfig.preShiftStabilityCheck`: green's stability check before the first
    /// shift, when it differs from `stabilityCheck`.
    pub pre_shift_stability: Option<StabilityCheck>,
    /// How long to wait for stability, and how often to look.
    pub stability: StabilityCheck,
    /// gitmoxi's own circuit breaker, when the depdef turns it on.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Delete the green task set when the deployment fails.
    pub delete_new_upon_failure: bool,
    /// Delete the green task set when a traffic shift fails.
    pub delete_new_upon_traffic_shift_failure: bool,
    /// Delete the blue task set once green is primary.
    pub delete_old_upon_success: bool,
    /// A capacity provider strategy for a fallback green task set.
    pub fallback_capacity_provider_strategy: Vec<Value>,
    /// Per-app notifications.
    pub webhooks: Vec<AppWebhook>,
    /// `initialScale` (legacy, percent): green's task set starts at this scale and is scaled to
    /// 100 % (and waited stable) before its traffic weight passes it. `None` = 100 %.
    #[serde(default)]
    pub initial_scale: Option<u32>,
    /// Metric analysis at each traffic step and the bake (issue 25), when configured.
    #[serde(default)]
    pub analysis: Option<crate::analysis::AnalysisSpec>,
    /// `trafficShiftingConfig.steps`: an explicit schedule (issue 25), instead of type + percent.
    #[serde(default)]
    pub shift_steps: Option<Vec<crate::schedule::ShiftStep>>,
    /// `hooks` (issue 25): checks before the first shift, at 100 % and before promotion.
    #[serde(default)]
    pub hooks: Option<super::hooks::Hooks>,
}

impl Default for EcsDepdef {
    fn default() -> Self {
        EcsDepdef {
            depends_on: Vec::new(),
            region: None,
            account: None,
            traffic_shifting: None,
            target_group_pairs: Vec::new(),
            alarm_names: Vec::new(),
            alarms_enabled: true,
            alarms_rollback: true,
            pre_shift_stability: None,
            stability: StabilityCheck::default(),
            circuit_breaker: None,
            delete_new_upon_failure: true,
            delete_new_upon_traffic_shift_failure: true,
            delete_old_upon_success: true,
            fallback_capacity_provider_strategy: Vec::new(),
            webhooks: Vec::new(),
            initial_scale: None,
            analysis: None,
            shift_steps: None,
            hooks: None,
        }
    }
}

impl EcsDepdef {
    /// Whether a failed rolling deployment goes back to the last good task definition.
    pub fn rollback_enabled(&self) -> bool {
        self.delete_new_upon_failure
    }

    /// Green's stability check before the first shift (`preShiftStabilityCheck`, else
    /// `stabilityCheck`).
    pub fn green_stability(&self) -> &StabilityCheck {
        self.pre_shift_stability.as_ref().unwrap_or(&self.stability)
    }

    /// The traffic steps green goes through (none: no shifting): the explicit `steps`, else the
    /// shorthand expanded (with `initialScale`).
    pub fn schedule(&self) -> Vec<crate::schedule::ShiftStep> {
        match (&self.shift_steps, self.shifting()) {
            (Some(steps), Some(_)) => steps.clone(),
            (None, Some(ts)) => ts.expand(self.initial_scale),
            (Some(_) | None, None) => Vec::new(),
        }
    }

    /// The scale green's task set starts at: the first explicit step's, else `initialScale`;
    /// `None`: 100 %.
    pub fn first_scale(&self) -> Option<u32> {
        match (&self.shift_steps, self.shifting()) {
            (Some(steps), Some(_)) => steps.first().and_then(|s| s.scale),
            (Some(_) | None, None) | (None, Some(_)) => self.initial_scale,
        }
    }

    /// The traffic schedule a blue/green deployment follows: the depdef's, or, with target group
    /// pairs and no `trafficShiftingConfig`, one ALL_AT_ONCE shift (SPEC §3.5: production never
    /// stays on an emptied blue group, so green is never promoted without moving traffic).
    pub fn shifting(&self) -> Option<TrafficShifting> {
        self.traffic_shifting.or_else(|| {
            (!self.target_group_pairs.is_empty()).then(|| TrafficShifting { kind: ShiftType::AllAtOnce, ..TrafficShifting::default() })
        })
    }
}

const KNOWN: &[&str] = &[
    "analysis",
    "dependsOn",
    "hooks",
    "environment",
    "trafficShiftingConfig",
    "trafficShiftingEnabled",
    "targetGroupArnPairs",
    "targetGroupArns",
    "alarms",
    "stabilityCheck",
    "gmDeploymentCircuitBreaker",
    "deleteNewUponFailure",
    "deleteNewUponTrafficShiftFailure",
    "deleteOldUponSuccess",
    "fallbackCapacityProviderStrategy",
    "fallbackCapacityProvider",
    "webhooks",
    "initialScale",
    "deploymentConfiguration",
];

/// Fields the July 2024 depdef nested under `deploymentConfiguration`; they are read as if they
/// stood at the top (a top-level field wins). `trafficRoutingConfig` is that format's name for
/// `trafficShiftingConfig`.
const NESTED_2024: &[&str] =
    &["trafficShiftingEnabled", "trafficShiftingConfig", "trafficRoutingConfig", "targetGroupArns", "targetGroupArnPairs", "alarms"];

/// The depdef with the July 2024 shapes lifted to today's names: `deploymentConfiguration.*`
/// to the top, `trafficRoutingConfig` to `trafficShiftingConfig`, and the breaker's
/// `numberOfTaskFailures` / `overallTimeout` to `failureThreshold` / `timeout`.
fn lift_2024(r: &mut FieldReader<'_>, root: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mut out = root.clone();
    if let Some(nested) = r.object(root.get("deploymentConfiguration"), "deploymentConfiguration") {
        r.warn_unknown(nested, "deploymentConfiguration", NESTED_2024);
        for (key, value) in nested {
            if NESTED_2024.contains(&key.as_str()) {
                out.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    out.remove("deploymentConfiguration");
    if let Some(routing) = out.remove("trafficRoutingConfig") {
        out.entry("trafficShiftingConfig".to_string()).or_insert(routing);
    }
    if let Some(Value::Object(breaker)) = out.get_mut("gmDeploymentCircuitBreaker") {
        for (old, new) in [("numberOfTaskFailures", "failureThreshold"), ("overallTimeout", "timeout")] {
            if let Some(v) = breaker.remove(old) {
                breaker.entry(new.to_string()).or_insert(v);
            }
        }
    }
    out
}

/// Parses a rendered depdef; `Err` holds every error, `Ok` carries the warnings.
pub fn parse_ecs_depdef(file: &str, text: &str, json: &Value) -> Result<(EcsDepdef, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut r = FieldReader::new(file, text);
    let mut d = EcsDepdef::default();
    let Value::Object(root) = json else {
        return Err(vec![Diagnostic::new(file, "the depdef must be a JSON object").at(Some(1), Some(1))]);
    };
    r.warn_unknown(root, "", KNOWN);
    let lifted = lift_2024(&mut r, root);
    let root = &lifted;

    if let Some(env) = r.object(root.get("environment"), "environment") {
        r.warn_unknown(env, "environment", &["region", "account"]);
        d.region = r.string(env.get("region"), "environment.region").filter(|s| !s.is_empty());
        d.account = r.string(env.get("account"), "environment.account").filter(|s| !s.is_empty());
        if let Some(account) = &d.account {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                r.error("environment.account", format!("must be a 12-digit AWS account id, got \"{account}\""));
            }
        }
    }

    let mut pre_shift: Option<StabilityCheck> = None;
    let enabled = r.bool(root.get("trafficShiftingEnabled"), "trafficShiftingEnabled");
    let config = r.object(root.get("trafficShiftingConfig"), "trafficShiftingConfig");
    if config.is_some() || enabled == Some(true) {
        let mut ts = TrafficShifting::default();
        if let Some(c) = config {
            r.warn_unknown(c, "trafficShiftingConfig", &["percent", "waitInterval", "type", "approval", "preShiftStabilityCheck", "steps"]);
            if let Some(pre) = r.object(c.get("preShiftStabilityCheck"), "trafficShiftingConfig.preShiftStabilityCheck") {
                r.warn_unknown(pre, "trafficShiftingConfig.preShiftStabilityCheck", &["pollInterval", "timeout", "timeoutPerTask"]);
                let mut check = StabilityCheck::default();
                let field = |f: &str| format!("trafficShiftingConfig.preShiftStabilityCheck.{f}");
                if let Some(p) = r.int(pre.get("pollInterval"), &field("pollInterval"), 1, i64::MAX) {
                    check.poll_interval_secs = p as u64;
                }
                if let Some(t) = r.int(pre.get("timeout"), &field("timeout"), 1, i64::MAX) {
                    check.timeout_secs = t as u64;
                }
                check.timeout_per_task_secs = r.int(pre.get("timeoutPerTask"), &field("timeoutPerTask"), 1, i64::MAX).map(|t| t as u64);
                pre_shift = Some(check);
            }
            if let Some(p) = r.int(c.get("percent"), "trafficShiftingConfig.percent", 1, 100) {
                ts.percent = p as u32;
            }
            if let Some(w) = r.int(c.get("waitInterval"), "trafficShiftingConfig.waitInterval", 0, i64::MAX) {
                ts.wait_interval_secs = w as u64;
            }
            if let Some(t) = r.string(c.get("type"), "trafficShiftingConfig.type") {
                match ShiftType::parse(&t) {
                    Some(kind) => ts.kind = kind,
                    None => r.error("trafficShiftingConfig.type", format!("is \"{t}\"; use CANARY, LINEAR or ALL_AT_ONCE")),
                }
            }
            d.shift_steps = super::steps::parse(&mut r, c, ts.wait_interval_secs, true);
            ts.approval = super::approval::gates(&mut r, c, &ts, d.shift_steps.as_deref());
        }
        if enabled != Some(false) {
            d.traffic_shifting = Some(ts);
        }
    }

    let pairs_value = root.get("targetGroupArnPairs").map(|v| ("targetGroupArnPairs", v, true));
    let legacy_value = root.get("targetGroupArns").map(|v| ("targetGroupArns", v, false));
    if let Some((name, value, nested)) = pairs_value.or(legacy_value) {
        d.target_group_pairs = parse_pairs(&mut r, name, value, nested);
    }

    if let Some(alarms) = r.object(root.get("alarms"), "alarms") {
        r.warn_unknown(alarms, "alarms", &["alarmNames", "enable", "rollback"]);
        d.alarm_names = r.strings(alarms.get("alarmNames"), "alarms.alarmNames");
        if let Some(enable) = r.bool(alarms.get("enable"), "alarms.enable") {
            d.alarms_enabled = enable;
        }
        if let Some(rollback) = r.bool(alarms.get("rollback"), "alarms.rollback") {
            d.alarms_rollback = rollback;
        }
    }
    d.pre_shift_stability = pre_shift;
    d.analysis = crate::analysis::parse(&mut r, root.get("analysis"), "analysis", crate::analysis::PresetTarget::Ecs);
    d.hooks = super::hooks::parse(&mut r, root.get("hooks"), true);
    d.depends_on = crate::release::order::parse(&mut r, root.get("dependsOn"));

    let breaker = r.object(root.get("gmDeploymentCircuitBreaker"), "gmDeploymentCircuitBreaker");
    let stability = r.object(root.get("stabilityCheck"), "stabilityCheck");
    // Legacy: the breaker's pollInterval/timeout are the stability check's when it gives none.
    for (source, prefix) in [(breaker, "gmDeploymentCircuitBreaker"), (stability, "stabilityCheck")] {
        let Some(obj) = source else { continue };
        if let Some(p) = r.int(obj.get("pollInterval"), &format!("{prefix}.pollInterval"), 1, i64::MAX) {
            d.stability.poll_interval_secs = p as u64;
        }
        if let Some(t) = r.int(obj.get("timeout"), &format!("{prefix}.timeout"), 1, i64::MAX) {
            d.stability.timeout_secs = t as u64;
        }
    }
    if let Some(s) = stability {
        r.warn_unknown(s, "stabilityCheck", &["pollInterval", "timeout", "timeoutPerTask"]);
        d.stability.timeout_per_task_secs = r.int(s.get("timeoutPerTask"), "stabilityCheck.timeoutPerTask", 1, i64::MAX).map(|t| t as u64);
    }
    if let Some(b) = breaker {
        r.warn_unknown(
            b,
            "gmDeploymentCircuitBreaker",
            &["failureThreshold", "failureThresholdPercent", "rollback", "pollInterval", "timeout", "timeoutUponTaskFailures"],
        );
        if b.contains_key("timeoutUponTaskFailures") {
            r.warn(
                "gmDeploymentCircuitBreaker.timeoutUponTaskFailures",
                "is a 2024 setting with no effect: the breaker trips on the count of failed tasks, and stabilityCheck.timeout bounds the wait",
            );
        }
        let failure_threshold =
            r.int(b.get("failureThreshold"), "gmDeploymentCircuitBreaker.failureThreshold", 1, i64::MAX).map(|v| v as u32);
        let failure_threshold_percent =
            r.int(b.get("failureThresholdPercent"), "gmDeploymentCircuitBreaker.failureThresholdPercent", 1, 100).map(|v| v as u32);
        d.circuit_breaker = Some(CircuitBreaker { failure_threshold, failure_threshold_percent });
        if r.bool(b.get("rollback"), "gmDeploymentCircuitBreaker.rollback") == Some(false) {
            d.delete_new_upon_failure = false;
        }
    }

    if let Some(v) = r.bool(root.get("deleteNewUponFailure"), "deleteNewUponFailure") {
        d.delete_new_upon_failure = v && d.delete_new_upon_failure;
    }
    if let Some(v) = r.bool(root.get("deleteNewUponTrafficShiftFailure"), "deleteNewUponTrafficShiftFailure") {
        d.delete_new_upon_traffic_shift_failure = v;
    }
    if let Some(v) = r.bool(root.get("deleteOldUponSuccess"), "deleteOldUponSuccess") {
        d.delete_old_upon_success = v;
    }

    match root.get("fallbackCapacityProviderStrategy") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.get("capacityProvider") {
                    Some(Value::String(_)) => d.fallback_capacity_provider_strategy.push(item.clone()),
                    _ => r.error(
                        &format!("fallbackCapacityProviderStrategy[{i}]"),
                        "each entry needs \"capacityProvider\" (e.g. {\"capacityProvider\": \"FARGATE\", \"weight\": 1})",
                    ),
                }
            }
        }
        Some(other) => r.error("fallbackCapacityProviderStrategy", format!("must be a list, got {}", show(other))),
    }

    match root.get("fallbackCapacityProvider") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) if !name.is_empty() => {
            if d.fallback_capacity_provider_strategy.is_empty() {
                // legacy: one provider of weight 1
                d.fallback_capacity_provider_strategy.push(serde_json::json!({"capacityProvider": name, "weight": 1}));
            }
        }
        Some(other) => r.error("fallbackCapacityProvider", format!("must be a capacity provider name, got {}", show(other))),
    }

    d.webhooks = parse_webhooks(&mut r, root.get("webhooks"));
    d.initial_scale = r.int(root.get("initialScale"), "initialScale", 1, 100).map(|v| v as u32).filter(|v| *v < 100);

    if r.errors.is_empty() {
        Ok((d, r.warnings))
    } else {
        Err(r.errors)
    }
}

fn parse_pairs(r: &mut FieldReader<'_>, name: &str, value: &Value, nested: bool) -> Vec<(String, String)> {
    let as_pair = |r: &mut FieldReader<'_>, path: &str, v: &Value| -> Option<(String, String)> {
        match v {
            Value::Array(items) if items.len() == 2 => match (&items[0], &items[1]) {
                (Value::String(a), Value::String(b)) if is_tg_arn(a) && is_tg_arn(b) && a != b => Some((a.clone(), b.clone())),
                _ => {
                    r.error(
                        path,
                        format!("must be two different target group ARNs (arn:aws:elasticloadbalancing:…:targetgroup/…), got {}", show(v)),
                    );
                    None
                }
            },
            other => {
                r.error(path, format!("must be a pair [blueArn, greenArn] of two target group ARNs, got {}", show(other)));
                None
            }
        }
    };
    if !nested {
        return as_pair(r, name, value).into_iter().collect();
    }
    match value {
        Value::Array(items) => items.iter().enumerate().filter_map(|(i, v)| as_pair(r, &format!("{name}[{i}]"), v)).collect(),
        other => {
            r.error(name, format!("must be a list of [blueArn, greenArn] pairs, got {}", show(other)));
            Vec::new()
        }
    }
}

fn is_tg_arn(s: &str) -> bool {
    s.starts_with("arn:") && s.contains(":targetgroup/")
}

/// The per-app `webhooks` of a depdef (ECS or Lambda: SPEC §6.3), each URL checked.
pub fn parse_webhooks(r: &mut FieldReader<'_>, value: Option<&Value>) -> Vec<AppWebhook> {
    let mut webhooks = Vec::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("webhooks[{i}]");
                let Some(obj) = r.object(Some(item), &path) else { continue };
                let name = r.string(obj.get("name"), &format!("{path}.name")).unwrap_or_default();
                let urls = r.strings(obj.get("urls"), &format!("{path}.urls"));
                if urls.is_empty() {
                    r.error(&format!("{path}.urls"), "needs at least one URL");
                }
                for url in &urls {
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        r.error(&format!("{path}.urls"), format!("\"{url}\" is not an http(s) URL"));
                    }
                }
                let payload_template = obj.get("payload_template").cloned().unwrap_or(Value::Null);
                webhooks.push(AppWebhook { name, urls, payload_template });
            }
        }
        Some(other) => r.error("webhooks", format!("must be a list, got {}", show(other))),
    }

    webhooks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<(EcsDepdef, Vec<Diagnostic>), Vec<Diagnostic>> {
        let text = serde_json::to_string_pretty(&v).unwrap();
        parse_ecs_depdef("a_depdef.json", &text, &v)
    }

    const TG_A: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a/1";
    const TG_B: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b/2";

    /// Issue 23, item 8: Gitmoxi's own fields are honoured, not parsed away with a warning.
    #[test]
    fn gitmoxi_fields_are_read_not_warned_about() {
        let (d, warnings) = parse(json!({
            "alarms": {"alarmNames": ["a"], "enable": true, "rollback": false},
            "trafficShiftingConfig": {"type": "LINEAR", "percent": 50, "preShiftStabilityCheck": {"pollInterval": 2, "timeout": 40}},
            "fallbackCapacityProvider": "FARGATE"
        }))
        .expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(d.alarms_enabled && !d.alarms_rollback);
        let pre = d.pre_shift_stability.as_ref().expect("pre-shift check");
        assert_eq!((pre.poll_interval_secs, pre.timeout_secs), (2, 40));
        assert_eq!(d.green_stability(), pre);
        assert_eq!(d.fallback_capacity_provider_strategy, vec![json!({"capacityProvider": "FARGATE", "weight": 1})]);
        let (off, _) = parse(json!({"alarms": {"alarmNames": ["a"], "enable": false}})).expect("valid");
        assert!(!off.alarms_enabled && off.alarms_rollback);
        assert!(parse(json!({"alarms": {"rollback": "no"}})).is_err(), "a non-boolean is an error naming the field");
        assert!(parse(json!({"fallbackCapacityProvider": 3})).is_err());
    }

    #[test]
    fn empty_depdef_gives_the_documented_defaults() {
        let (d, w) = parse(json!({})).unwrap();
        assert!(w.is_empty());
        assert_eq!(d, EcsDepdef::default());
        assert_eq!(d.stability, StabilityCheck { poll_interval_secs: 30, timeout_secs: 300, timeout_per_task_secs: None });
        assert!(d.traffic_shifting.is_none());
        assert!(d.delete_new_upon_failure && d.delete_new_upon_traffic_shift_failure && d.delete_old_upon_success);
    }

    #[test]
    fn traffic_shifting_defaults_and_legacy_flag() {
        let (d, _) = parse(json!({"trafficShiftingConfig": {}})).unwrap();
        assert_eq!(
            d.traffic_shifting,
            Some(TrafficShifting { percent: 20, wait_interval_secs: 60, kind: ShiftType::Canary, approval: None })
        );
        let (d, _) = parse(json!({"trafficShiftingEnabled": true})).unwrap();
        assert!(d.traffic_shifting.is_some());
        let (d, _) = parse(json!({"trafficShiftingEnabled": false, "trafficShiftingConfig": {"percent": 10}})).unwrap();
        assert!(d.traffic_shifting.is_none());
        let (d, _) = parse(json!({"trafficShiftingConfig": {"percent": "30", "waitInterval": 5, "type": "linear"}})).unwrap();
        assert_eq!(
            d.traffic_shifting,
            Some(TrafficShifting { percent: 30, wait_interval_secs: 5, kind: ShiftType::Linear, approval: None })
        );
    }

    #[test]
    fn invalid_values_name_the_field() {
        for (doc, field) in [
            (json!({"trafficShiftingConfig": {"percent": 0}}), "trafficShiftingConfig.percent"),
            (json!({"trafficShiftingConfig": {"percent": -5}}), "trafficShiftingConfig.percent"),
            (json!({"trafficShiftingConfig": {"percent": 101}}), "trafficShiftingConfig.percent"),
            (json!({"trafficShiftingConfig": {"waitInterval": -1}}), "trafficShiftingConfig.waitInterval"),
            (json!({"trafficShiftingConfig": {"type": "SOMETIMES"}}), "trafficShiftingConfig.type"),
            (json!({"stabilityCheck": {"pollInterval": -3}}), "stabilityCheck.pollInterval"),
            (json!({"targetGroupArnPairs": [[TG_A]]}), "targetGroupArnPairs[0]"),
            (json!({"targetGroupArnPairs": [["x", "y"]]}), "targetGroupArnPairs[0]"),
            (json!({"gmDeploymentCircuitBreaker": {"failureThresholdPercent": 150}}), "gmDeploymentCircuitBreaker.failureThresholdPercent"),
            (json!({"environment": {"account": "12"}}), "environment.account"),
        ] {
            let errors = parse(doc.clone()).unwrap_err();
            assert!(errors.iter().any(|e| e.message.starts_with(field)), "{doc}: {errors:?}");
            assert!(errors.iter().all(|e| e.line.is_some()), "errors are located: {errors:?}");
        }
    }

    #[test]
    fn legacy_aliases_are_accepted() {
        let (d, _) = parse(json!({
            "targetGroupArns": [TG_A, TG_B],
            "gmDeploymentCircuitBreaker": {"rollback": false, "pollInterval": 7, "timeout": 70}
        }))
        .unwrap();
        assert_eq!(d.target_group_pairs, vec![(TG_A.to_string(), TG_B.to_string())]);
        assert!(!d.rollback_enabled());
        assert_eq!(d.stability.poll_interval_secs, 7);
        assert_eq!(d.stability.timeout_secs, 70);
        let (d, _) = parse(json!({"gmDeploymentCircuitBreaker": {"timeout": 70}, "stabilityCheck": {"timeout": 90}})).unwrap();
        assert_eq!(d.stability.timeout_secs, 90, "stabilityCheck wins over the legacy breaker field");
    }

    /// Issue 23, item 8: the July 2024 depdef of Gitmoxi's own test repository (fields nested
    /// under `deploymentConfiguration`, `trafficRoutingConfig`, the breaker's first names) and
    /// `initialScale` are honoured, not warned away.
    #[test]
    fn the_2024_shapes_and_initial_scale_are_honoured() {
        let (d, warnings) = parse(json!({
            "deploymentConfiguration": {
                "trafficShiftingEnabled": true,
                "trafficRoutingConfig": {"percent": 50, "waitInterval": 60, "type": "CANARY"},
                "targetGroupArns": [TG_A, TG_B],
                "alarms": {"alarmNames": ["web-5xx"], "enable": true, "rollback": false}
            },
            "gmDeploymentCircuitBreaker": {"numberOfTaskFailures": 3, "overallTimeout": 240},
            "initialScale": 45
        }))
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(d.traffic_shifting.map(|t| (t.percent, t.kind)), Some((50, ShiftType::Canary)));
        assert_eq!(d.target_group_pairs, vec![(TG_A.to_string(), TG_B.to_string())]);
        assert_eq!(d.alarm_names, vec!["web-5xx".to_string()]);
        assert!(!d.alarms_rollback);
        assert_eq!(d.circuit_breaker.and_then(|b| b.failure_threshold), Some(3));
        assert_eq!(d.stability.timeout_secs, 240);
        assert_eq!(d.initial_scale, Some(45));
        let (_, warnings) = parse(json!({"gmDeploymentCircuitBreaker": {"timeoutUponTaskFailures": 60}})).unwrap();
        assert!(warnings.iter().any(|w| w.message.contains("no effect")), "{warnings:?}");
        let errors = parse(json!({"initialScale": 0})).unwrap_err();
        assert!(errors.iter().any(|e| e.message.starts_with("initialScale")), "{errors:?}");
        let (d, _) = parse(json!({"initialScale": 100})).unwrap();
        assert_eq!(d.initial_scale, None, "100 % is the default");
    }

    #[test]
    fn unknown_fields_are_warnings() {
        let (_, w) = parse(json!({"trafficShiftingConfg": {}, "alarms": {"alarmNames": ["a"], "x": 1}})).unwrap();
        assert_eq!(w.len(), 2);
        assert!(w[0].message.contains("unknown field"));
    }

    #[test]
    fn breaker_threshold_rules() {
        let b = |t, p| CircuitBreaker { failure_threshold: t, failure_threshold_percent: p };
        assert_eq!(b(None, None).threshold(10), 5);
        assert_eq!(b(Some(3), None).threshold(10), 3);
        assert_eq!(b(None, Some(25)).threshold(10), 3, "rounded up");
        assert_eq!(b(None, Some(1)).threshold(2), 1, "at least one");
        assert_eq!(b(Some(2), Some(50)).threshold(10), 2, "both given: the smaller");
        assert_eq!(b(Some(9), Some(50)).threshold(10), 5);
    }

    #[test]
    fn stability_budget_uses_per_task_timeout() {
        let s = StabilityCheck { poll_interval_secs: 5, timeout_secs: 100, timeout_per_task_secs: Some(30) };
        assert_eq!(s.budget_secs(2), 100);
        assert_eq!(s.budget_secs(10), 300);
    }
}
