//! ECS's own deployment strategies in the fake world, as the ECS developer guide describes them:
//! an update of a service whose `deploymentConfiguration.strategy` is BLUE_GREEN, LINEAR or
//! CANARY opens a service deployment that goes SCALE_UP (green tasks start while blue serves) →
//! PRODUCTION_TRAFFIC_SHIFT (all at once; `stepPercent` every `stepBakeTimeInMinutes`; or
//! `canaryPercent` for `canaryBakeTimeInMinutes`, then the rest) → BAKE_TIME
//! (`bakeTimeInMinutes`, both revisions running) → CLEAN_UP (blue stops) → SUCCESSFUL. The
//! circuit breaker (when enabled) or StopServiceDeployment(ROLLBACK) puts blue back:
//! ROLLBACK_SUCCESSFUL with ECS's reason. Lifecycle hooks are not modelled yet.

use super::{FakeDeployment, World, ACCOUNT};
use gitmoxi_deploy::observed::ObservedNativeDeployment;
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
    /// When every green task first ran.
    green_ready: Option<Instant>,
    stop_requested: bool,
    /// How it ended: (status, reason).
    end: Option<(&'static str, String)>,
}

/// Whether a deploymentConfiguration asks for a native strategy gitmoxi follows.
pub(super) fn is_native(config: Option<&Value>) -> bool {
    matches!(config.and_then(|c| c.get("strategy")).and_then(Value::as_str), Some("BLUE_GREEN" | "LINEAR" | "CANARY"))
}

fn minutes(config: &Value, path: &str, default: f64) -> Duration {
    Duration::from_secs_f64(config.pointer(path).and_then(Value::as_f64).unwrap_or(default) * 60.0)
}

/// The production traffic schedule after green is ready: (weight, how long it holds) per step.
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
            vec![(canary, minutes(config, "/canaryConfiguration/canaryBakeTimeInMinutes", 10.0))]
        }
        _ => Vec::new(),
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
            green_ready: None,
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
            if self.native[i].end.is_some() {
                continue;
            }
            let d = self.native[i].clone();
            let Some(service) = self.services.get(&d.service_key).cloned() else { continue };
            let running = self.count(&d.service_key, &d.green, now, |t, now| t.status(now) == "RUNNING");
            let failed = self.count(&d.service_key, &d.green, now, |t, now| {
                t.stopped_at.as_ref().is_some_and(|(at, code, _)| *at <= now && code == "TaskFailedToStart")
            });
            let breaker = d.config.pointer("/deploymentCircuitBreaker/enable").and_then(Value::as_bool) == Some(true);
            // ECS's threshold: half the desired count, at least 3, at most 200
            let threshold = (service.desired.div_ceil(2)).clamp(3, 200);
            if breaker && failed >= threshold {
                self.roll_back(i, now, "Service deployment rolled back because the circuit breaker threshold was exceeded.");
                continue;
            }
            if d.stop_requested {
                self.roll_back(i, now, "Service deployment rolled back because of a StopServiceDeployment request.");
                continue;
            }
            if d.green_ready.is_none() && running >= service.desired {
                self.native[i].green_ready = Some(now);
            }
            let Some(ready) = self.native[i].green_ready else { continue };
            let shift: Duration = shift_steps(&d.config).iter().map(|(_, hold)| *hold).sum();
            let bake = minutes(&d.config, "/bakeTimeInMinutes", 15.0);
            if now.saturating_duration_since(ready) >= shift + bake {
                // CLEAN_UP: blue stops, green alone remains
                for t in
                    self.tasks.iter_mut().filter(|t| t.service_key == d.service_key && t.deployment != d.green && t.stopped_at.is_none())
                {
                    t.stopped_at =
                        Some((now, "ServiceSchedulerInitiated".into(), format!("Scaling activity initiated by (deployment {})", d.green)));
                }
                if let Some(s) = self.services.get_mut(&d.service_key) {
                    s.deployments.truncate(1);
                    s.events.push(format!("(service {}) has reached a steady state.", s.name));
                }
                self.native[i].end = Some(("SUCCESSFUL", "Service deployment completed successfully.".into()));
            }
        }
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
    pub(super) fn newest_native(&self, key: &(String, String, String), since_ms: u64, now: Instant) -> Option<ObservedNativeDeployment> {
        let d = self.native.iter().filter(|d| &d.service_key == key && self.wall_ms(d.created) > since_ms).max_by_key(|d| d.created)?;
        let (status, reason) = match &d.end {
            Some((status, reason)) => (*status, Some(reason.clone())),
            None if d.stop_requested => ("ROLLBACK_REQUESTED", None),
            None => ("IN_PROGRESS", None),
        };
        let (stage, weight) = match (&d.end, d.green_ready) {
            (Some(_), _) => (None, None),
            (None, None) => (Some("SCALE_UP"), None),
            (None, Some(ready)) => {
                let mut elapsed = now.saturating_duration_since(ready);
                let mut at = None;
                for (weight, hold) in shift_steps(&d.config) {
                    if elapsed < hold {
                        at = Some(weight);
                        break;
                    }
                    elapsed -= hold;
                }
                match at {
                    Some(weight) => (Some("PRODUCTION_TRAFFIC_SHIFT"), Some(weight)),
                    None => (Some("BAKE_TIME"), Some(100.0)),
                }
            }
        };
        let rolled_back = status.starts_with("ROLLBACK_SUCCESSFUL");
        Some(ObservedNativeDeployment {
            arn: d.arn.clone(),
            created_at_ms: self.wall_ms(d.created),
            status: status.into(),
            status_reason: reason.clone(),
            lifecycle_stage: stage.map(Into::into),
            production_weight: weight,
            rollback_reason: if rolled_back { reason } else { None },
            hooks: Vec::new(),
        })
    }

    /// StopServiceDeployment(ROLLBACK): a running deployment rolls back at the next advance.
    pub(super) fn stop_native(&mut self, arn: &str) -> bool {
        match self.native.iter_mut().find(|d| d.arn == arn) {
            Some(d) => {
                if d.end.is_none() {
                    d.stop_requested = true;
                }
                true
            }
            None => false,
        }
    }
}
