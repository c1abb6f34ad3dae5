//! ECS's own deployment strategies in the fake world, as the ECS developer guide describes them:
//! an update of a service whose `deploymentConfiguration.strategy` is BLUE_GREEN, LINEAR or
//! CANARY opens a service deployment that goes SCALE_UP (green tasks start while blue serves) →
//! PRE_PRODUCTION_TRAFFIC_SHIFT → PRODUCTION_TRAFFIC_SHIFT (all at once; `stepPercent` every
//! `stepBakeTimeInMinutes`; or `canaryPercent` for `canaryBakeTimeInMinutes`, then the rest — each
//! step preceded by PRE_PRODUCTION_TRAFFIC_SHIFT, whose hooks run before it) → BAKE_TIME
//! (`bakeTimeInMinutes`, both revisions running) → CLEAN_UP (blue stops) → SUCCESSFUL. The
//! circuit breaker (when enabled) or StopServiceDeployment(ROLLBACK) puts blue back:
//! ROLLBACK_SUCCESSFUL with ECS's reason.
//!
//! Lifecycle hooks run at the stages they name, and a stage ends only when its hooks succeeded:
//! an AWS_LAMBDA hook answers SUCCEEDED, FAILED (a function whose name contains one of the
//! knobs' `failing_hooks`: ECS rolls back) or IN_PROGRESS for 30 s first (`slow_hooks`); a PAUSE
//! hook is AWAITING_ACTION until ContinueServiceDeployment answers CONTINUE or ROLLBACK, or its
//! `timeoutConfiguration` ends it with its action (default ROLLBACK).

use super::{FakeDeployment, World, ACCOUNT};
use gitmoxi_deploy::observed::{ObservedNativeDeployment, ObservedNativeHook};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// The wall clock the fake reports (`createdAt`): the simulations' clock starts here too.
pub const WALL_ORIGIN_MS: u64 = 1_795_000_000_000;

/// One service deployment of a native strategy.
#[derive(Debug, Clone)]
pub(super) struct FakeNativeDeployment {
    pub(super) arn: String,
    service_key: (String, String, String),
    created: Instant,
    /// The `deployments[]` entry of the green revision.
    green: String,
    /// What the service ran before (None: a new service).
    source: Option<FakeDeployment>,
    config: Value,
    /// The lifecycle stage (an index into [`STAGES`]) and when it began.
    stage: usize,
    stage_since: Instant,
    /// The hooks of the current stage, once started.
    hooks: Vec<HookRun>,
    /// The production traffic step being held (an index into [`shift_steps`]).
    prod_step: usize,
    stop_requested: bool,
    /// How it ended: (status, reason).
    end: Option<(&'static str, String)>,
}

/// One hook's run at one stage.
#[derive(Debug, Clone)]
struct HookRun {
    id: String,
    target_type: String,
    target_arn: Option<String>,
    status: &'static str,
    since: Instant,
    timeout: Duration,
    /// ROLLBACK or CONTINUE when the timeout ends it.
    timeout_rolls_back: bool,
}

/// The lifecycle stages in order, as ECS runs them.
const STAGES: &[&str] = &[
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];
/// How long a "slow" Lambda hook answers IN_PROGRESS before SUCCEEDED.
const SLOW_HOOK: Duration = Duration::from_secs(30);
/// A PAUSE hook's wait when its configuration names no timeout.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn stage_index(name: &str) -> usize {
    STAGES.iter().position(|s| *s == name).unwrap_or(0)
}

/// Whether a deploymentConfiguration asks for a native strategy gitmoxi follows.
pub(super) fn is_native(config: Option<&Value>) -> bool {
    matches!(config.and_then(|c| c.get("strategy")).and_then(Value::as_str), Some("BLUE_GREEN" | "LINEAR" | "CANARY"))
}

fn minutes(config: &Value, path: &str, default: f64) -> Duration {
    Duration::from_secs_f64(config.pointer(path).and_then(Value::as_f64).unwrap_or(default) * 60.0)
}

/// The production traffic schedule after green is ready: (weight, how long it holds) per step,
/// the last one bringing green to 100 %.
fn shift_steps(config: &Value) -> Vec<(f64, Duration)> {
    match config.get("strategy").and_then(Value::as_str) {
        Some("LINEAR") => {
            let step = config.pointer("/linearConfiguration/stepPercent").and_then(Value::as_f64).unwrap_or(10.0).clamp(1.0, 100.0);
            let hold = minutes(config, "/linearConfiguration/stepBakeTimeInMinutes", 6.0);
            let count = (100.0 / step).ceil() as u32;
            (1..=count).map(|k| ((f64::from(k) * step).min(100.0), hold)).collect()
        }
        Some("CANARY") => {
            let canary = config.pointer("/canaryConfiguration/canaryPercent").and_then(Value::as_f64).unwrap_or(5.0);
            vec![(canary, minutes(config, "/canaryConfiguration/canaryBakeTimeInMinutes", 10.0)), (100.0, Duration::ZERO)]
        }
        _ => vec![(100.0, Duration::ZERO)],
    }
}

impl World {
    /// The fake's wall time at `now`.
    pub(super) fn wall_ms(&self, now: Instant) -> u64 {
        WALL_ORIGIN_MS + now.saturating_duration_since(self.origin.unwrap_or(now)).as_millis() as u64
    }

    /// Opens a service deployment for the newest `deployments[]` entry of the service at `key`.
    pub(super) fn open_native(&mut self, key: &(String, String, String), config: &Value, now: Instant) {
        let Some(service) = self.services.get(key) else { return };
        let Some(green) = service.deployments.first().map(|d| d.id.clone()) else { return };
        let source = service.deployments.get(1).cloned();
        // a newer deployment supersedes one still running (ECS stops the older one)
        for d in self.native.iter_mut().filter(|d| &d.service_key == key && d.end.is_none()) {
            d.end = Some(("STOPPED", "Service deployment was superseded by a newer deployment.".into()));
        }
        let id = self.next_id();
        let arn = format!("arn:aws:ecs:{}:{ACCOUNT}:service-deployment/{}/{}/{id:020}", key.0, key.1, key.2);
        self.native.push(FakeNativeDeployment {
            arn,
            service_key: key.clone(),
            created: now,
            green,
            source,
            config: config.clone(),
            stage: 0,
            stage_since: now,
            hooks: Vec::new(),
            prod_step: 0,
            stop_requested: false,
            end: None,
        });
    }

    /// Whether the service at `key` has a native deployment still running (its old tasks stay).
    pub(super) fn native_in_progress(&self, key: &(String, String, String)) -> bool {
        self.native.iter().any(|d| &d.service_key == key && d.end.is_none())
    }

    /// Moves every running native deployment on by what happened until `now`.
    pub(super) fn advance_native(&mut self, now: Instant) {
        for i in 0..self.native.len() {
            // each pass may finish a stage; a deployment moves through its instant stages at once
            for _ in 0..STAGES.len() + 1 {
                if !self.step_native(i, now) {
                    break;
                }
            }
        }
    }

    /// One move of deployment `i`; whether it moved to another stage.
    fn step_native(&mut self, i: usize, now: Instant) -> bool {
        if self.native[i].end.is_some() {
            return false;
        }
        let d = self.native[i].clone();
        let Some(service) = self.services.get(&d.service_key).cloned() else { return false };
        let running = self.count(&d.service_key, &d.green, now, |t, now| t.status(now) == "RUNNING");
        let failed = self.count(&d.service_key, &d.green, now, |t, now| {
            t.stopped_at.as_ref().is_some_and(|(at, code, _)| *at <= now && code == "TaskFailedToStart")
        });
        let breaker = d.config.pointer("/deploymentCircuitBreaker/enable").and_then(Value::as_bool) == Some(true);
        // ECS's threshold: half the desired count, at least 3, at most 200
        let threshold = (service.desired.div_ceil(2)).clamp(3, 200);
        if breaker && failed >= threshold {
            self.roll_back(i, now, "Service deployment rolled back because the circuit breaker threshold was exceeded.");
            return false;
        }
        if d.stop_requested {
            self.roll_back(i, now, "Service deployment rolled back because of a StopServiceDeployment request.");
            return false;
        }
        let stage = STAGES[d.stage];
        if d.hooks.is_empty() {
            self.native[i].hooks = self.hooks_at(&d.config, stage, now);
        }
        // the hooks of the stage
        let failing = self.knobs.failing_hooks.clone();
        let slow = self.knobs.slow_hooks.clone();
        let mut rollback = None;
        for h in self.native[i].hooks.iter_mut() {
            match (h.target_type.as_str(), h.status) {
                ("AWS_LAMBDA", "IN_PROGRESS") => {
                    let name = h.target_arn.as_deref().unwrap_or_default();
                    if failing.iter().any(|m| name.contains(m.as_str())) {
                        h.status = "FAILED";
                        rollback = Some(format!("Lifecycle hook {name} returned FAILED at {stage}."));
                    } else if !slow.iter().any(|m| name.contains(m.as_str())) || now.saturating_duration_since(h.since) >= SLOW_HOOK {
                        h.status = "SUCCEEDED";
                    }
                }
                ("PAUSE", "AWAITING_ACTION") if now.saturating_duration_since(h.since) >= h.timeout => {
                    h.status = "TIMED_OUT";
                    if h.timeout_rolls_back {
                        rollback = Some(format!("Lifecycle hook {} timed out at {stage}.", h.id));
                    }
                }
                _ => {}
            }
        }
        if let Some(reason) = rollback {
            self.roll_back(i, now, &reason);
            return false;
        }
        let hooks_done = self.native[i].hooks.iter().all(|h| matches!(h.status, "SUCCEEDED" | "TIMED_OUT"));
        // the stage's own work
        let elapsed = now.saturating_duration_since(d.stage_since);
        let work_done = match stage {
            "SCALE_UP" => running >= service.desired,
            "PRODUCTION_TRAFFIC_SHIFT" => elapsed >= shift_steps(&d.config).get(d.prod_step).map_or(Duration::ZERO, |(_, hold)| *hold),
            "BAKE_TIME" => elapsed >= minutes(&d.config, "/bakeTimeInMinutes", 15.0),
            _ => true,
        };
        if !(hooks_done && work_done) {
            return false;
        }
        if stage == "CLEAN_UP" {
            // blue stops, green alone remains
            for t in self.tasks.iter_mut().filter(|t| t.service_key == d.service_key && t.deployment != d.green && t.stopped_at.is_none()) {
                t.stopped_at =
                    Some((now, "ServiceSchedulerInitiated".into(), format!("Scaling activity initiated by (deployment {})", d.green)));
            }
            if let Some(s) = self.services.get_mut(&d.service_key) {
                s.deployments.truncate(1);
                s.events.push(format!("(service {}) has reached a steady state.", s.name));
            }
            self.native[i].end = Some(("SUCCESSFUL", "Service deployment completed successfully.".into()));
            return false;
        }
        let n = &mut self.native[i];
        if stage == "PRODUCTION_TRAFFIC_SHIFT" && n.prod_step + 1 < shift_steps(&n.config).len() {
            // the next production step, its PRE_PRODUCTION_TRAFFIC_SHIFT hooks first
            n.prod_step += 1;
            n.stage -= 1;
        } else {
            n.stage += 1;
        }
        n.stage_since = now;
        n.hooks.clear();
        true
    }

    /// The runs of the hooks configured for `stage`.
    fn hooks_at(&mut self, config: &Value, stage: &str, now: Instant) -> Vec<HookRun> {
        let hooks = config.get("lifecycleHooks").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut runs = Vec::new();
        for h in hooks {
            let at = h.get("lifecycleStages").and_then(Value::as_array).is_some_and(|s| s.iter().any(|x| x.as_str() == Some(stage)));
            if !at {
                continue;
            }
            let target_type = h.get("targetType").and_then(Value::as_str).unwrap_or("AWS_LAMBDA").to_string();
            let id = format!("hook-{}", self.next_id());
            let timeout = h
                .pointer("/timeoutConfiguration/timeoutInMinutes")
                .and_then(Value::as_f64)
                .map_or(PAUSE_TIMEOUT, |m| Duration::from_secs_f64(m * 60.0));
            let timeout_rolls_back = h.pointer("/timeoutConfiguration/action").and_then(Value::as_str) != Some("CONTINUE");
            let status = if target_type == "PAUSE" { "AWAITING_ACTION" } else { "IN_PROGRESS" };
            runs.push(HookRun {
                id,
                target_arn: h.get("hookTargetArn").and_then(Value::as_str).map(str::to_string),
                target_type,
                status,
                since: now,
                timeout,
                timeout_rolls_back,
            });
        }
        runs
    }

    fn count(
        &self,
        key: &(String, String, String),
        deployment: &str,
        now: Instant,
        test: impl Fn(&super::FakeTask, Instant) -> bool,
    ) -> u32 {
        self.tasks.iter().filter(|t| &t.service_key == key && t.deployment == deployment && test(t, now)).count() as u32
    }

    /// ECS's rollback: green stops, the service runs the source revision again.
    fn roll_back(&mut self, i: usize, now: Instant, reason: &str) {
        let d = self.native[i].clone();
        for t in self.tasks.iter_mut().filter(|t| t.service_key == d.service_key && t.deployment == d.green && t.stopped_at.is_none()) {
            t.stopped_at = Some((now, "ServiceSchedulerInitiated".into(), "Service deployment rolled back".into()));
        }
        if let (Some(s), Some(source)) = (self.services.get_mut(&d.service_key), &d.source) {
            s.task_definition = source.task_definition.clone();
            s.deployments.retain(|x| x.id != d.green);
            s.events.push(format!("(service {}) rolling back to {}: {reason}", s.name, source.task_definition));
        }
        self.native[i].end = Some(("ROLLBACK_SUCCESSFUL", reason.to_string()));
    }

    /// The newest service deployment of the service at `key` created after `since_ms`.
    pub(super) fn newest_native(&self, key: &(String, String, String), since_ms: u64, _now: Instant) -> Option<ObservedNativeDeployment> {
        let d = self.native.iter().filter(|d| &d.service_key == key && self.wall_ms(d.created) > since_ms).max_by_key(|d| d.created)?;
        let (status, reason) = match &d.end {
            Some((status, reason)) => (*status, Some(reason.clone())),
            None if d.stop_requested => ("ROLLBACK_REQUESTED", None),
            None => ("IN_PROGRESS", None),
        };
        let stage = STAGES[d.stage];
        let steps = shift_steps(&d.config);
        let weight = match stage {
            "PRE_PRODUCTION_TRAFFIC_SHIFT" => d.prod_step.checked_sub(1).and_then(|k| steps.get(k)).map_or(0.0, |(w, _)| *w),
            "PRODUCTION_TRAFFIC_SHIFT" => steps.get(d.prod_step).map_or(100.0, |(w, _)| *w),
            _ if stage_index(stage) < stage_index("PRE_PRODUCTION_TRAFFIC_SHIFT") => 0.0,
            _ => 100.0,
        };
        let (stage, weight) = if d.end.is_some() { (None, None) } else { (Some(stage), Some(weight)) };
        let rolled_back = status.starts_with("ROLLBACK_SUCCESSFUL");
        Some(ObservedNativeDeployment {
            arn: d.arn.clone(),
            created_at_ms: self.wall_ms(d.created),
            status: status.into(),
            status_reason: reason.clone(),
            lifecycle_stage: stage.map(Into::into),
            production_weight: weight,
            rollback_reason: if rolled_back { reason } else { None },
            hooks: d
                .hooks
                .iter()
                .map(|h| ObservedNativeHook {
                    id: h.id.clone(),
                    target_type: h.target_type.clone(),
                    target_arn: h.target_arn.clone(),
                    status: h.status.into(),
                })
                .collect(),
        })
    }

    /// ContinueServiceDeployment: answers a PAUSE hook that waits.
    pub(super) fn continue_native(&mut self, arn: &str, hook_id: &str, rollback: bool, now: Instant) -> Result<(), String> {
        let Some(i) = self.native.iter().position(|d| d.arn == arn) else { return Err(format!("service deployment {arn} not found")) };
        let Some(h) = self.native[i].hooks.iter_mut().find(|h| h.id == hook_id && h.status == "AWAITING_ACTION") else {
            return Err(format!("lifecycle hook {hook_id} is not awaiting an action"));
        };
        h.status = "SUCCEEDED";
        if rollback {
            self.roll_back(i, now, "Service deployment rolled back by ContinueServiceDeployment with action ROLLBACK.");
        }
        Ok(())
    }

    /// StopServiceDeployment(ROLLBACK): a running deployment rolls back at the next advance;
    /// one already stopping or ended is a conflict, as ECS answers.
    pub(super) fn stop_native(&mut self, arn: &str) -> Result<(), (&'static str, String)> {
        match self.native.iter_mut().find(|d| d.arn == arn) {
            Some(d) if d.end.is_none() && !d.stop_requested => {
                d.stop_requested = true;
                Ok(())
            }
            Some(_) => Err(("ConflictException", format!("The service deployment {arn} is already stopping or ended."))),
            None => Err(("ServiceDeploymentNotFoundException", format!("The service deployment {arn} does not exist."))),
        }
    }
}
