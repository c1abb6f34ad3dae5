//! ECS blue/green with task sets (SPEC §3.3–3.4): Prepare → CreateGreen → Stabilize →
//! Shift(step)… → Bake → Promote → CleanUp, and RollingBack from any failure before Promote.
//!
//! Every phase re-derives its next move from what it observes (rule 3). The green side of a
//! deployment is found by its deterministic `externalId` (`gitmoxi:<deployment>:green`, and
//! `…:fallback` for the fallback-capacity task set), so a crash between CreateTaskSet and its answer
//! finds the same task set again instead of creating a second one. Weights are absolute
//! (`blue 60 / green 40`), and the load-balancer set-up is checked before anything is touched.
//!
//! Must never: shift traffic to a side that is not stable, leave weights that do not sum to 100
//! on a forward it manages, or delete the task set that serves traffic.

use super::ecs_rolling::{ownership_tags, short_td, TAG_DEPLOYMENT};
use super::{StepInput, STEADY_REQUEUE};
use crate::analysis::queries::SideNames;
use crate::breaker::tripped;
use crate::checks::{side_stability, SideStability};
use crate::commands::{Rebalance, RebalanceDirection};
use crate::observed::{DeploymentControllerType, Observed, ObservedElb, ObservedService, ObservedTaskSet, ServiceStatus, TaskSetStatus};
use crate::plan::{Action, Plan};
use crate::record::BlueGreenPhase;
use crate::record::{DeploymentRecord, FailureCause, Level, Outcome, Phase, Strategy, TaskSetScales};
use crate::schedule::{ShiftStep, Weights};
use crate::spec::hooks::HookPoint;
use crate::spec::{DesiredApp, EcsApp, Identity};
use crate::token::client_token;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often alarms are looked at while a traffic step or the bake waits.
pub const ALARM_POLL_MS: u64 = 5_000;
/// How long to wait before looking again after deleting task sets.
const DELETE_POLL: Duration = Duration::from_secs(2);

/// Fields of a CreateService body that belong to task sets under the EXTERNAL controller.
pub const TASK_SET_FIELDS: &[&str] = &[
    "taskDefinition",
    "loadBalancers",
    "networkConfiguration",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "serviceRegistries",
];

/// The externalId prefix of every task set a deployment creates.
pub fn side_prefix(deployment_id: &str) -> String {
    format!("gitmoxi:{deployment_id}:")
}

fn green_external_id(deployment_id: &str) -> String {
    format!("{}green", side_prefix(deployment_id))
}

fn fallback_external_id(deployment_id: &str) -> String {
    format!("{}fallback", side_prefix(deployment_id))
}

/// The phase after the task definition is known.
/// Starts a blue/green deployment of `app`: register its taskdef, or go on with the task
/// definition its svcdef names. Blue is whatever the primary task set runs (no rollback target
/// to remember: rolling back means traffic back to blue).
pub fn start(input: &StepInput<'_>, app: &DesiredApp, ecs: &EcsApp) -> DeploymentRecord {
    let phase = match &ecs.taskdef {
        Some(_) => Phase::BlueGreen(BlueGreenPhase::Register),
        None => after_register(
            input.observed.service.as_ref(),
            super::resolved_task_definition(input, super::ecs_rolling::named_task_definition(ecs)),
        ),
    };
    super::started_record(input, app, Strategy::BlueGreen, phase)
}

/// The phase after Register: create the service when it does not exist, the green task set otherwise.
pub fn after_register(service: Option<&ObservedService>, task_definition: String) -> Phase {
    match service {
        Some(s) if s.is_active() => Phase::BlueGreen(BlueGreenPhase::CreateGreen { task_definition }),
        _ => Phase::BlueGreen(BlueGreenPhase::CreateService { task_definition }),
    }
}

/// The two sides as observed: green = this deployment's task sets, blue = the primary set of
/// another deployment and its companions (its fallback), in the order ECS lists them.
struct Sides<'a> {
    green: Option<&'a ObservedTaskSet>,
    green_fallback: Option<&'a ObservedTaskSet>,
    green_all: Vec<&'a ObservedTaskSet>,
    blue_primary: Option<&'a ObservedTaskSet>,
    /// Every task set that is not this deployment's.
    others: Vec<&'a ObservedTaskSet>,
}

fn sides<'a>(observed: &'a Observed, deployment_id: &str) -> Sides<'a> {
    let prefix = side_prefix(deployment_id);
    let green_id = green_external_id(deployment_id);
    let fallback_id = fallback_external_id(deployment_id);
    let live = observed.task_sets.iter().filter(|t| t.status != TaskSetStatus::Draining || t.external_id.starts_with(&prefix));
    let (green_all, others): (Vec<&ObservedTaskSet>, Vec<&ObservedTaskSet>) = live.partition(|t| t.external_id.starts_with(&prefix));
    Sides {
        green: green_all.iter().copied().find(|t| t.external_id == green_id),
        green_fallback: green_all.iter().copied().find(|t| t.external_id == fallback_id),
        blue_primary: others.iter().copied().find(|t| t.status == TaskSetStatus::Primary),
        green_all,
        others,
    }
}

/// The hook at `point` (issue 25): `None` when the step may go on, else the plan that starts or
/// follows it, or rolls back for it (traffic back to blue first).
fn through_hook(cx: &Step<'_>, next: &DeploymentRecord, point: HookPoint, poll: Duration) -> Option<Plan> {
    match super::hook_gate::at(cx.input, next, point, poll) {
        super::hook_gate::HookGate::Open => None,
        super::hook_gate::HookGate::Hold(plan) => Some(plan),
        super::hook_gate::HookGate::Closed(with_run, cause, evidence) => {
            Some(rollback(&with_run, cx.now, cause, evidence, cx.app.depdef.delete_new_upon_traffic_shift_failure))
        }
    }
}

/// The names the analysis fills in for each side (issue 25): the first pair's target groups as
/// ALB dimensions, the task set ids, and the load balancer in front of the green group.
fn side_names(
    cluster: &str,
    mapping: &[(String, String)],
    green: &ObservedTaskSet,
    blue: Option<&ObservedTaskSet>,
    elb: Option<&ObservedElb>,
) -> SideNames {
    use crate::analysis::queries::{load_balancer_dimension, target_group_dimension};
    let (blue_tg, green_tg) = mapping.first().cloned().unwrap_or_default();
    let load_balancer = elb.and_then(|e| {
        e.forwards
            .iter()
            .filter(|f| f.weight_of(&blue_tg).is_some() || f.weight_of(&green_tg).is_some())
            .find_map(|f| load_balancer_dimension(&f.arn))
    });
    SideNames {
        green: target_group_dimension(&green_tg),
        blue: target_group_dimension(&blue_tg),
        green_task_set: Some(green.id.clone()),
        blue_task_set: blue.map(|b| b.id.clone()),
        load_balancer,
        ..SideNames::default()
    }
    .with_revisions(cluster, Some(&green.task_definition), blue.map(|b| b.task_definition.as_str()))
}

/// The sides a record's analysis fills in, once traffic started to shift.
fn analysis_sides(record: &DeploymentRecord) -> Option<SideNames> {
    record.analysis.as_ref().and_then(|a| a.sides.clone())
}

/// The GetMetricData request of a Shift or Bake phase whose wait is over and whose analysis is
/// due at `now` (`None` otherwise).
pub fn analysis_request(record: &DeploymentRecord, phase: &BlueGreenPhase, now: u64) -> Option<crate::analysis::queries::MetricRequest> {
    let app = record.desired.as_ref()?;
    let spec = app.depdef.analysis.as_ref()?;
    let sides = analysis_sides(record)?;
    let schedule = app.depdef.schedule();
    let wait_of = |step: usize| schedule.get(step).map_or(0, |s| s.wait_secs * 1000);
    let (label, since) = match phase {
        BlueGreenPhase::Shift { step, green, since_ms }
            if now >= since_ms + wait_of(*step as usize) && schedule.get(*step as usize).is_some_and(|s| s.analysis) =>
        {
            (super::analysis_gate::step_label(Some(*green)), *since_ms)
        }
        BlueGreenPhase::Bake { until_ms } if now >= *until_ms && spec.during_bake => {
            (super::analysis_gate::step_label(None), until_ms.saturating_sub(wait_of(schedule.len().saturating_sub(1))))
        }
        BlueGreenPhase::Register
        | BlueGreenPhase::CreateService { .. }
        | BlueGreenPhase::CreateGreen { .. }
        | BlueGreenPhase::Stabilize { .. }
        | BlueGreenPhase::Shift { .. }
        | BlueGreenPhase::Bake { .. }
        | BlueGreenPhase::Promote
        | BlueGreenPhase::CleanUp
        | BlueGreenPhase::Rollback { .. } => return None,
    };
    super::analysis_gate::request(record, spec, &sides, &label, since, now)
}

/// The circuit breaker after green was stable (issue 23, item 10): green's tasks that stop
/// while traffic shifts, bakes or waits at a gate count as they did while it stabilized; the
/// breaker rolls back in every phase that has tasks.
fn breaker_after_stability(cx: &Step<'_>) -> Option<Plan> {
    let app = cx.app;
    let breaker = app.depdef.circuit_breaker.as_ref()?;
    let service = cx.service?;
    let green = cx.sides.green?;
    let healthy = BTreeMap::new();
    let st = side_stability(service.desired_count, &cx.sides.green_all, Some(&green.id), &cx.observed.tasks, &[], &healthy);
    let failed = st.failures.len() as u32;
    let threshold = tripped(Some(breaker), service.desired_count, failed)?;
    let cause = FailureCause::CircuitBreakerTripped { failed_tasks: failed, threshold };
    let mut evidence = vec![format!("{failed} green tasks stopped after green was stable ({})", cx.record.phase.name())];
    evidence.extend(st.failures);
    Some(rollback(cx.record, cx.now, cause, evidence, app.depdef.delete_new_upon_failure))
}

/// Green's healthy targets per target group: a group green shares with blue (blue/green without
/// pairs) also holds blue's targets, so blue's running tasks there are not counted as green's
/// (issue 23, item 7). This errs on the safe side: an unhealthy blue task makes green look less
/// healthy, never more.
fn green_healthy_targets(healthy: &BTreeMap<String, u32>, green_groups: &[String], others: &[&ObservedTaskSet]) -> BTreeMap<String, u32> {
    green_groups
        .iter()
        .map(|tg| {
            let blue: u32 = others.iter().filter(|t| t.target_groups.contains(tg)).map(|t| t.running_count).sum();
            (tg.clone(), healthy.get(tg).copied().unwrap_or(0).saturating_sub(blue))
        })
        .collect()
}

fn cluster_service(record: &DeploymentRecord) -> (String, String) {
    match &record.identity {
        Identity::Ecs { cluster, service, .. } => (cluster.clone(), service.clone()),
        Identity::Lambda { function, .. } => (String::new(), function.clone()),
    }
}

/// The load balancer entries of the svcdef.
fn lb_entries(app: &EcsApp) -> Vec<Value> {
    app.svcdef.get("loadBalancers").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The partner of `tg` in the pairs.
fn partner<'a>(pairs: &'a [(String, String)], tg: &str) -> Option<&'a str> {
    pairs.iter().find_map(|(a, b)| {
        if a == tg {
            Some(b.as_str())
        } else if b == tg {
            Some(a.as_str())
        } else {
            None
        }
    })
}

/// (blue target group, green target group) for every target group blue serves that has a pair.
fn traffic_mapping(app: &EcsApp, blue: Option<&ObservedTaskSet>) -> Vec<(String, String)> {
    let Some(blue) = blue else { return Vec::new() };
    blue.target_groups.iter().filter_map(|b| partner(&app.depdef.target_group_pairs, b).map(|g| (b.clone(), g.to_string()))).collect()
}

/// The green side's load balancer entries, or why the set-up cannot work (nothing is touched).
fn green_load_balancers(app: &EcsApp, blue: Option<&ObservedTaskSet>) -> Result<Vec<Value>, String> {
    let pairs = &app.depdef.target_group_pairs;
    let entries = lb_entries(app);
    if entries.is_empty() && !pairs.is_empty() {
        return Err("targetGroupArnPairs is set but the svcdef has no loadBalancers: add loadBalancers with targetGroupArn, \
                    containerName and containerPort to the svcdef"
            .to_string());
    }
    if let Some(blue) = blue.filter(|_| !pairs.is_empty()) {
        for tg in &blue.target_groups {
            if partner(pairs, tg).is_none() {
                return Err(format!(
                    "the blue task set {} serves target group {tg}, which is in no pair of targetGroupArnPairs: add [\"{tg}\", \"<its green partner>\"] to the depdef",
                    blue.arn
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let Some(tg) = entry.get("targetGroupArn").and_then(Value::as_str).map(str::to_string) else {
            return Err(format!("svcdef loadBalancers[{i}] has no targetGroupArn: blue/green task sets need target groups"));
        };
        let green = match (blue, pairs.is_empty()) {
            (_, true) | (None, false) => {
                if !pairs.is_empty() && partner(pairs, &tg).is_none() {
                    return Err(format!(
                        "svcdef loadBalancers[{i}].targetGroupArn {tg} is in no pair of targetGroupArnPairs: add its pair to the depdef"
                    ));
                }
                tg
            }
            (Some(blue), false) => {
                let Some(other) = partner(pairs, &tg) else {
                    return Err(format!(
                        "svcdef loadBalancers[{i}].targetGroupArn {tg} is in no pair of targetGroupArnPairs: add its pair to the depdef"
                    ));
                };
                if blue.target_groups.contains(&tg) {
                    other.to_string()
                } else if blue.target_groups.iter().any(|b| b == other) {
                    tg
                } else {
                    return Err(format!(
                        "the blue task set {} serves neither {tg} nor {other} (it serves {:?}): fix loadBalancers or targetGroupArnPairs",
                        blue.arn, blue.target_groups
                    ));
                }
            }
        };
        let mut e = entry.clone();
        if let Value::Object(obj) = &mut e {
            obj.insert("targetGroupArn".into(), Value::String(green));
        }
        out.push(e);
    }
    Ok(out)
}

/// Everything that must hold before the green task set is created.
fn preflight(app: &EcsApp, observed: &Observed, service: &ObservedService, blue: Option<&ObservedTaskSet>) -> Result<Vec<Value>, String> {
    let controller = service.deployment_controller.clone().unwrap_or(DeploymentControllerType::Ecs);
    if controller != DeploymentControllerType::External {
        return Err(format!(
            "service {} uses the {controller} deployment controller, but the svcdef asks for EXTERNAL (gitmoxi blue/green); \
             ECS cannot change it in place: delete the service or keep deploymentController {controller}",
            service.arn
        ));
    }
    let lbs = green_load_balancers(app, blue)?;
    let elb = observed.elb.clone().unwrap_or_default();
    if let Some(missing) = elb.missing_target_groups.first() {
        return Err(format!("target group {missing} of the depdef does not exist: create it or fix targetGroupArnPairs"));
    }
    if app.depdef.shifting().is_some() && blue.is_some() {
        for (b, _) in traffic_mapping(app, blue) {
            if !elb.forwards.iter().any(|f| f.weight_of(&b).is_some()) {
                return Err(format!(
                    "no listener default action or listener rule forwards to the blue target group {b}, so traffic cannot be shifted: \
                     point a listener or rule at it, or remove trafficShiftingConfig"
                ));
            }
        }
    }
    if let Some(a) = observed.alarms.iter().find(|a| a.state.is_none()) {
        return Err(format!("alarm {} of alarms.alarmNames does not exist in CloudWatch: create it or remove it from the depdef", a.name));
    }
    Ok(lbs)
}

/// The task-set body: the svcdef's task-set fields, this side's target groups and strategy.
fn task_set_body(app: &EcsApp, record: &DeploymentRecord, task_definition: &str, lbs: &[Value], fallback: Option<f64>) -> Value {
    let (cluster, service) = cluster_service(record);
    let mut body = Map::new();
    body.insert("cluster".into(), json!(cluster));
    body.insert("service".into(), json!(service));
    body.insert("taskDefinition".into(), json!(task_definition));
    for field in ["networkConfiguration", "serviceRegistries", "platformVersion"] {
        if let Some(v) = app.svcdef.get(field) {
            body.insert(field.into(), v.clone());
        }
    }
    if !lbs.is_empty() {
        body.insert("loadBalancers".into(), Value::Array(lbs.to_vec()));
    }
    let (external_id, token, percent) = match fallback {
        None => {
            for field in ["launchType", "capacityProviderStrategy"] {
                if let Some(v) = app.svcdef.get(field) {
                    body.insert(field.into(), v.clone());
                }
            }
            let percent = app.depdef.first_scale().map_or(100.0, f64::from);
            (green_external_id(&record.id), client_token(&record.id, "create-green"), percent)
        }
        Some(percent) => {
            body.insert("capacityProviderStrategy".into(), Value::Array(app.depdef.fallback_capacity_provider_strategy.clone()));
            (fallback_external_id(&record.id), client_token(&record.id, "create-fallback"), percent)
        }
    };
    body.insert("externalId".into(), json!(external_id));
    body.insert("clientToken".into(), json!(token));
    body.insert("scale".into(), json!({"value": percent, "unit": "PERCENT"}));
    let tags: Vec<Value> = record_tags(record).into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
    body.insert("tags".into(), Value::Array(tags));
    Value::Object(body)
}

fn record_tags(record: &DeploymentRecord) -> Vec<(String, String)> {
    let mut tags = vec![
        (super::ecs_rolling::TAG_APP.to_string(), record.app.tag_value()),
        (super::ecs_rolling::TAG_REPO.to_string(), crate::record::sanitize_tag(&record.app.repo)),
    ];
    tags.push((TAG_DEPLOYMENT.to_string(), record.id.clone()));
    tags.push((super::ecs_rolling::TAG_FINGERPRINT.to_string(), record.fingerprint.clone()));
    tags
}

/// The CreateService body of an EXTERNAL service: the svcdef without the task-set fields.
fn create_service_body(input: &StepInput<'_>, app: &EcsApp, record: &DeploymentRecord) -> Value {
    let mut body = app.svcdef.clone();
    if let Value::Object(obj) = &mut body {
        for field in TASK_SET_FIELDS {
            obj.remove(*field);
        }
        obj.insert("clientToken".into(), json!(client_token(&record.id, "create-service")));
        let mut tags: Vec<Value> = match obj.remove("tags") {
            Some(Value::Array(existing)) => existing
                .into_iter()
                .filter(|t| {
                    let k = t.get("key").and_then(Value::as_str);
                    k != Some(super::ecs_rolling::TAG_APP) && k != Some(super::ecs_rolling::TAG_REPO)
                })
                .collect(),
            _ => Vec::new(),
        };
        tags.extend(ownership_tags(input).into_iter().map(|(k, v)| json!({"key": k, "value": v})));
        obj.insert("tags".into(), Value::Array(tags));
    }
    body
}

/// Absolute weight changes that put `green` % on green for every forward that serves a blue
/// target group of the mapping; empty when the forwards already say so.
pub fn weight_actions(elb: &ObservedElb, mapping: &[(String, String)], green: u32) -> Vec<Action> {
    let w = Weights::green(green);
    let mut actions = Vec::new();
    for f in &elb.forwards {
        let mut targets = f.targets.clone();
        let mut touched = false;
        for (b, g) in mapping {
            if f.weight_of(b).is_none() {
                continue;
            }
            touched = true;
            for (tg, weight) in targets.iter_mut() {
                if tg == b {
                    *weight = w.blue;
                } else if tg == g {
                    *weight = w.green;
                }
            }
            if w.green > 0 && !targets.iter().any(|(tg, _)| tg == g) {
                targets.push((g.clone(), w.green));
            }
        }
        if touched && targets != f.targets {
            actions.push(Action::ElbSetForwardWeights { kind: f.kind, arn: f.arn.clone(), targets });
        }
    }
    actions
}

/// What every phase of a blue/green deployment reads.
struct Step<'a> {
    input: &'a StepInput<'a>,
    record: &'a DeploymentRecord,
    now: u64,
    observed: &'a Observed,
    app: &'a EcsApp,
    /// The service, unless ECS reports it INACTIVE (deleted).
    service: Option<&'a ObservedService>,
    cluster: String,
    service_name: String,
    /// The task sets of both sides.
    sides: Sides<'a>,
}

/// Continues an in-flight blue/green record: one named step per phase.
pub fn step(input: &StepInput<'_>, record: &DeploymentRecord, phase: &BlueGreenPhase) -> Plan {
    let now = input.now_ms;
    let observed = input.observed;
    let Some(app) = record.desired.as_ref() else {
        return finish(
            record,
            now,
            Outcome::Failed,
            Some(FailureCause::ValidationError),
            "the deployment record has no desired state (written by an incompatible version); push a commit to redeploy",
        );
    };
    let service = observed.service.as_ref().filter(|s| s.status != ServiceStatus::Inactive);
    let (cluster, service_name) = cluster_service(record);
    let sides = sides(observed, &record.id);
    let cx = Step { input, record, now, observed, app, service, cluster, service_name, sides };
    match phase {
        BlueGreenPhase::Register => register(&cx),
        BlueGreenPhase::CreateService { task_definition } => create_service(&cx, task_definition),
        BlueGreenPhase::CreateGreen { task_definition } => create_green(&cx, task_definition),
        BlueGreenPhase::Stabilize { task_definition, deadline_ms } => stabilize(&cx, task_definition, *deadline_ms),
        BlueGreenPhase::Shift { step, green, since_ms } => shift(&cx, *step, *green, *since_ms),
        BlueGreenPhase::Bake { until_ms } => bake(&cx, *until_ms),
        BlueGreenPhase::Promote => promote(&cx),
        BlueGreenPhase::CleanUp => clean_up(&cx),
        BlueGreenPhase::Rollback { superseded, delete_green } => rolling_back(&cx, *superseded, *delete_green),
    }
}

/// Prepare: register the task definition (found again by its deployment tag).
fn register(cx: &Step<'_>) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let app = cx.app;
    let service = cx.service;
    let mut next = cx.record.clone();
    if let Some(arn) = &observed.registered_task_definition {
        next.log(now, Level::Info, format!("registered task definition {}", short_td(arn)));
        next.enter(after_register(service, arn.clone()), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let mut body = app.taskdef.clone().unwrap_or(Value::Null);
    super::ecs_rolling::merge_tags(&mut body, &record_tags(record));
    Plan { actions: vec![Action::EcsRegisterTaskDefinition { body }], requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Prepare on a first deployment: create the EXTERNAL service (client token).
fn create_service(cx: &Step<'_>, task_definition: &str) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let app = cx.app;
    let service = cx.service;
    let service_name = &cx.service_name;
    let mut next = cx.record.clone();
    if service.is_some_and(ObservedService::is_active) {
        next.log(now, Level::Info, format!("service {service_name} exists (deployment controller EXTERNAL)"));
        next.enter(Phase::BlueGreen(BlueGreenPhase::CreateGreen { task_definition: task_definition.to_string() }), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    if service.is_some_and(|s| s.status == ServiceStatus::Draining) {
        return Plan::wait(Duration::from_secs(10));
    }
    Plan {
        actions: vec![Action::EcsCreateService { body: create_service_body(input, app, record) }],
        take_ownership: true,
        requeue_after: Duration::ZERO,
        ..Plan::default()
    }
}

/// Check the load balancer set-up, then create the green task set (deterministic external id).
fn create_green(cx: &Step<'_>, task_definition: &str) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let app = cx.app;
    let service = cx.service;
    let cluster = &cx.cluster;
    let service_name = &cx.service_name;
    let sides = &cx.sides;
    let mut next = cx.record.clone();
    let Some(s) = service.filter(|s| s.is_active()) else {
        return finish(
            record,
            now,
            Outcome::Failed,
            Some(FailureCause::AwsRejected {
                operation: "DescribeServices".into(),
                code: "ServiceNotFound".into(),
                message: format!("service {service_name} disappeared before the green task set was created"),
            }),
            "the service is gone; push a commit or run `gitmoxi sync --force` to create it again",
        );
    };
    if let Some(green) = sides.green {
        let budget = app.depdef.green_stability().budget_secs(s.desired_count);
        next.log(
            now,
            Level::Info,
            format!("green task set {} runs {}; waiting up to {budget} s for stability", green.id, short_td(task_definition)),
        );
        next.enter(
            Phase::BlueGreen(BlueGreenPhase::Stabilize { task_definition: task_definition.to_string(), deadline_ms: now + budget * 1000 }),
            now,
        );
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let lbs = match preflight(app, observed, s, sides.blue_primary) {
        Ok(lbs) => lbs,
        Err(why) => return finish(record, now, Outcome::Failed, Some(FailureCause::ValidationError), &why),
    };
    let mut actions = Vec::new();
    if let Some(want) = input.applied.desired_count_change(app.desired_count()).filter(|d| *d != s.desired_count) {
        actions.push(Action::EcsUpdateService { body: json!({"cluster": cluster, "service": service_name, "desiredCount": want}) });
    }
    actions.push(Action::EcsCreateTaskSet { body: task_set_body(app, record, task_definition, &lbs, None) });
    if next.timeline.last().map(|e| e.message.as_str()) != Some("creating the green task set") {
        next.log(now, Level::Info, "creating the green task set");
    }
    Plan { next_record: Some(next), actions, requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Wait until the green side is RUNNING and healthy; breaker; fallback capacity.
fn stabilize(cx: &Step<'_>, task_definition: &str, deadline_ms: u64) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let app = cx.app;
    let service = cx.service;
    let sides = &cx.sides;
    let mut next = cx.record.clone();
    let poll = Duration::from_secs(app.depdef.green_stability().poll_interval_secs);
    let (Some(s), Some(green)) = (service, sides.green) else {
        next.log(now, Level::Warn, "the green task set is gone; creating it again");
        next.enter(Phase::BlueGreen(BlueGreenPhase::CreateGreen { task_definition: task_definition.to_string() }), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    };
    let green_tgs: Vec<String> = green.target_groups.clone();
    let elb = observed.elb.clone().unwrap_or_default();
    let healthy = green_healthy_targets(&elb.healthy_targets, &green_tgs, &sides.others);
    // with initialScale, green starts with that share of the desired count (a fallback task set
    // takes its own share of the full count)
    let want = if sides.green_fallback.is_some() { s.desired_count } else { tasks_at_scale(s.desired_count, green.scale_percent) };
    let mut st = side_stability(want, &sides.green_all, Some(&green.id), &observed.tasks, &green_tgs, &healthy);
    // ECS reports a shortage of (Spot) capacity as a service event and starts no task
    st.capacity_failures += crate::checks::capacity_events(&s.events, &green.id);
    if st.stable {
        let mapping = traffic_mapping(app, sides.blue_primary);
        let shifting = app.depdef.shifting().filter(|_| !mapping.is_empty());
        next.log(now, Level::Info, format!("green is stable: {} tasks running{}", st.running, healthy_note(&st)));
        match shifting {
            Some(ts) => {
                let first = app.depdef.schedule().first().map_or(ts.steps()[0], |s| s.weight);
                if app.depdef.analysis.is_some() {
                    let names = side_names(&cx.cluster, &mapping, green, sides.blue_primary, observed.elb.as_ref());
                    next.analysis.get_or_insert_with(Default::default).sides = Some(names);
                }
                next.enter(Phase::BlueGreen(BlueGreenPhase::Shift { step: 0, green: first, since_ms: now }), now);
            }
            None if app.depdef.first_scale().is_some() && sides.green_fallback.is_none() && green.scale_percent < 100.0 - 1e-6 => {
                // no traffic step comes before promotion: green takes its full size first
                let budget = app.depdef.green_stability().budget_secs(s.desired_count);
                next.log(now, Level::Info, format!("scaling green from {} % to 100 % before it is promoted", green.scale_percent));
                let deadline_ms = now + budget * 1000;
                next.enter(Phase::BlueGreen(BlueGreenPhase::Stabilize { task_definition: task_definition.to_string(), deadline_ms }), now);
                let action = Action::EcsUpdateTaskSetScale {
                    cluster: cx.cluster.clone(),
                    service: cx.service_name.clone(),
                    task_set: green.arn.clone(),
                    percent: 100.0,
                };
                return Plan { next_record: Some(next), actions: vec![action], requeue_after: poll, ..Plan::default() };
            }
            None => {
                if sides.blue_primary.is_some() {
                    next.log(now, Level::Info, "no traffic shifting configured: promoting green");
                }
                next.enter(Phase::BlueGreen(BlueGreenPhase::Promote), now);
            }
        }
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let failed = st.failures.len() as u32;
    if let Some(threshold) = tripped(app.depdef.circuit_breaker.as_ref(), s.desired_count, failed) {
        let cause = FailureCause::CircuitBreakerTripped { failed_tasks: failed, threshold };
        return rollback(record, now, cause, st.failures.clone(), app.depdef.delete_new_upon_failure);
    }
    if let Some(plan) = fallback(app, record, &next, s, sides, &st, task_definition, now) {
        return plan;
    }
    if now >= deadline_ms {
        let mut evidence = vec![format!("{}/{} green tasks running{} when the budget ran out", st.running, st.desired, healthy_note(&st))];
        evidence.extend(st.failures.clone());
        evidence.extend(s.events.iter().take(3).map(|e| format!("service event: {e}")));
        let waited = app.depdef.green_stability().budget_secs(s.desired_count);
        let cause = if st.capacity_failures > 0 && st.running < st.desired {
            FailureCause::CapacityUnavailable
        } else {
            FailureCause::StabilityTimeout { waited_secs: waited }
        };
        return rollback(record, now, cause, evidence, app.depdef.delete_new_upon_failure);
    }
    let progress = format!("{}/{} green tasks running, {failed} failed{}", st.running, st.desired, healthy_note(&st));
    if next.timeline.last().map(|e| e.message.as_str()) != Some(progress.as_str()) {
        next.log(now, Level::Info, progress);
        return Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() };
    }
    Plan::wait(poll)
}

/// Traffic step `step` of the schedule: `green` % to green since `since_ms`; alarms watched.
fn shift(cx: &Step<'_>, step: u32, green: u32, since_ms: u64) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let app = cx.app;
    let sides = &cx.sides;
    let mut next = cx.record.clone();
    let alarms = super::alarms_that_roll_back(record, observed, &mut next, now);
    if !alarms.is_empty() {
        let evidence = alarms.iter().map(|a| format!("alarm {a} in ALARM at {green} % on green")).collect();
        let cause = FailureCause::AlarmFired { alarms };
        return rollback(record, now, cause, evidence, app.depdef.delete_new_upon_traffic_shift_failure);
    }
    if let Some(plan) = breaker_after_stability(cx) {
        return plan;
    }
    let Some(ts) = app.depdef.shifting() else {
        next.enter(Phase::BlueGreen(BlueGreenPhase::Promote), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    };
    let schedule = app.depdef.schedule();
    let this_step = schedule.get(step as usize).cloned();
    let mapping = traffic_mapping(app, sides.blue_primary);
    let elb = observed.elb.clone().unwrap_or_default();
    let actions = weight_actions(&elb, &mapping, green);
    if !actions.is_empty() {
        let poll = if app.depdef.alarm_names.is_empty() { Duration::from_secs(30) } else { Duration::from_millis(ALARM_POLL_MS) };
        match super::gates::before_step(cx.input, record, ts.approval, green, poll) {
            super::gates::Gate::Open => {}
            super::gates::Gate::Hold(plan) => return plan,
            super::gates::Gate::Closed(cause, evidence) => {
                return rollback(record, now, cause, evidence, app.depdef.delete_new_upon_traffic_shift_failure)
            }
        }
        if let Some(plan) = capacity_before(cx, this_step.as_ref(), green, since_ms) {
            return plan;
        }
        if step == 0 {
            if let Some(plan) = through_hook(cx, &next, HookPoint::BeforeShift, poll) {
                return plan;
            }
        }
        let w = Weights::green(green);
        if next.traffic != Some(w) {
            next.traffic = Some(w);
            next.log(now, Level::Info, format!("shifting {green} % to green (blue {} / green {})", w.blue, w.green));
        }
        return Plan { next_record: Some(next), actions, requeue_after: Duration::ZERO, ..Plan::default() };
    }
    if next.traffic != Some(Weights::green(green)) {
        next.traffic = Some(Weights::green(green));
        next.log(now, Level::Info, format!("{green} % on green"));
    }
    let wait = this_step.as_ref().map_or(ts.wait_interval_secs, |s| s.wait_secs) * 1000;
    let elapsed = now.saturating_sub(since_ms);
    if elapsed < wait {
        let remaining = wait - elapsed;
        let again = if app.depdef.alarm_names.is_empty() { remaining } else { remaining.min(ALARM_POLL_MS) };
        let requeue_after = Duration::from_millis(again.max(1));
        if next != *record {
            return Plan { next_record: Some(next), requeue_after, ..Plan::default() };
        }
        return Plan::wait(requeue_after);
    }
    let judged = this_step.as_ref().is_none_or(|s| s.analysis);
    if let (Some(spec), Some(names), true) = (&app.depdef.analysis, analysis_sides(&next), judged) {
        let poll = Duration::from_millis(ALARM_POLL_MS);
        let label = super::analysis_gate::step_label(Some(green));
        match super::analysis_gate::at_step_end(cx.input, &next, spec, &names, &label, since_ms, poll) {
            super::analysis_gate::AnalysisGate::Open => {}
            super::analysis_gate::AnalysisGate::Hold(plan) => return plan,
            super::analysis_gate::AnalysisGate::Closed(with_run, cause, evidence) => {
                return rollback(&with_run, now, cause, evidence, app.depdef.delete_new_upon_traffic_shift_failure)
            }
        }
    }
    if schedule.get(step as usize + 1).is_none() {
        if let Some(plan) = through_hook(cx, &next, HookPoint::AfterShift, Duration::from_millis(ALARM_POLL_MS)) {
            return plan;
        }
    }
    match schedule.get(step as usize + 1) {
        Some(following) => {
            next.enter(Phase::BlueGreen(BlueGreenPhase::Shift { step: step + 1, green: following.weight, since_ms: now }), now)
        }
        None => {
            next.log(now, Level::Info, format!("100 % on green; baking for {} s while watching alarms", wait / 1000));
            next.enter(Phase::BlueGreen(BlueGreenPhase::Bake { until_ms: now + wait }), now);
        }
    }
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// The number of tasks a task set at `scale_percent` of `desired` runs (ECS rounds up).
fn tasks_at_scale(desired: u32, scale_percent: f64) -> u32 {
    if scale_percent >= 100.0 - 1e-6 {
        return desired;
    }
    ((f64::from(desired) * scale_percent / 100.0).ceil() as u32).min(desired)
}

/// Partial capacity (`initialScale`, a step's `scale`; SPEC §3.5, issue 25): before green's
/// weight reaches `step`, its task set is scaled to the scale the step needs and waited stable
/// (within the green stability budget, counted from the step's start); `None` when green may
/// take `weight` % now.
fn capacity_before(cx: &Step<'_>, step: Option<&ShiftStep>, weight: u32, since_ms: u64) -> Option<Plan> {
    let required = step.map_or(100, ShiftStep::required_scale);
    // green started at its first step's scale: a step that needs no more is served already
    if required <= cx.app.depdef.first_scale().unwrap_or(100) || cx.sides.green_fallback.is_some() {
        return None;
    }
    let (service, green) = (cx.service?, cx.sides.green?);
    let check = cx.app.depdef.green_stability();
    let poll = Duration::from_secs(check.poll_interval_secs);
    let mut next = cx.record.clone();
    if green.scale_percent < f64::from(required) - 1e-6 {
        next.log(
            cx.now,
            Level::Info,
            format!(
                "scaling green from {} % to {required} % of the desired count before it takes {weight} % of the traffic",
                green.scale_percent
            ),
        );
        let action = Action::EcsUpdateTaskSetScale {
            cluster: cx.cluster.clone(),
            service: cx.service_name.clone(),
            task_set: green.arn.clone(),
            percent: f64::from(required),
        };
        return Some(Plan { next_record: Some(next), actions: vec![action], requeue_after: poll, ..Plan::default() });
    }
    let elb = cx.observed.elb.clone().unwrap_or_default();
    let healthy = green_healthy_targets(&elb.healthy_targets, &green.target_groups, &cx.sides.others);
    let want = tasks_at_scale(service.desired_count, green.scale_percent);
    let st = side_stability(want, &cx.sides.green_all, Some(&green.id), &cx.observed.tasks, &green.target_groups, &healthy);
    if st.stable {
        return None;
    }
    let budget = check.budget_secs(service.desired_count);
    if cx.now >= since_ms + budget * 1000 {
        let mut evidence = vec![format!(
            "{}/{} green tasks running{} after scaling to {} %",
            st.running,
            st.desired,
            healthy_note(&st),
            green.scale_percent
        )];
        evidence.extend(st.failures);
        let cause = FailureCause::StabilityTimeout { waited_secs: budget };
        return Some(rollback(cx.record, cx.now, cause, evidence, cx.app.depdef.delete_new_upon_failure));
    }
    let progress = format!(
        "green at {} %: {}/{} tasks running{}; {weight} % waits for them",
        green.scale_percent,
        st.running,
        st.desired,
        healthy_note(&st)
    );
    if next.timeline.last().map(|e| e.message.as_str()) != Some(progress.as_str()) {
        next.log(cx.now, Level::Info, progress);
        return Some(Plan { next_record: Some(next), requeue_after: poll, ..Plan::default() });
    }
    Some(Plan::wait(poll))
}

/// 100 % on green: one more wait watching alarms.
fn bake(cx: &Step<'_>, until_ms: u64) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let app = cx.app;
    let mut next = cx.record.clone();
    let alarms = super::alarms_that_roll_back(record, observed, &mut next, now);
    if !alarms.is_empty() {
        let evidence = alarms.iter().map(|a| format!("alarm {a} in ALARM during the bake")).collect();
        let cause = FailureCause::AlarmFired { alarms };
        return rollback(record, now, cause, evidence, app.depdef.delete_new_upon_traffic_shift_failure);
    }
    if let Some(plan) = breaker_after_stability(cx) {
        return plan;
    }
    if now < until_ms {
        let remaining = until_ms - now;
        let again = if app.depdef.alarm_names.is_empty() { remaining } else { remaining.min(ALARM_POLL_MS) };
        return Plan::wait(Duration::from_millis(again.max(1)));
    }
    if let (Some(spec), Some(names)) = (app.depdef.analysis.as_ref().filter(|a| a.during_bake), analysis_sides(&next)) {
        let poll = Duration::from_millis(ALARM_POLL_MS);
        let label = super::analysis_gate::step_label(None);
        let bake_start = until_ms.saturating_sub(app.depdef.schedule().last().map_or(0, |s| s.wait_secs * 1000));
        match super::analysis_gate::at_step_end(cx.input, &next, spec, &names, &label, bake_start, poll) {
            super::analysis_gate::AnalysisGate::Open => {}
            super::analysis_gate::AnalysisGate::Hold(plan) => return plan,
            super::analysis_gate::AnalysisGate::Closed(with_run, cause, evidence) => {
                return rollback(&with_run, now, cause, evidence, app.depdef.delete_new_upon_traffic_shift_failure)
            }
        }
    }
    if let Some(plan) = through_hook(cx, &next, HookPoint::BeforePromote, Duration::from_millis(ALARM_POLL_MS)) {
        return plan;
    }
    next.enter(Phase::BlueGreen(BlueGreenPhase::Promote), now);
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Make the green task set primary.
fn promote(cx: &Step<'_>) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let cluster = &cx.cluster;
    let service_name = &cx.service_name;
    let sides = &cx.sides;
    let mut next = cx.record.clone();
    let Some(green) = sides.green else {
        return finish(
            record,
            now,
            Outcome::Failed,
            Some(FailureCause::AwsRejected {
                operation: "DescribeTaskSets".into(),
                code: "TaskSetNotFound".into(),
                message: "the green task set disappeared before it was promoted".into(),
            }),
            "the green task set is gone; push a commit or run `gitmoxi sync --force` to deploy again",
        );
    };
    if green.status == TaskSetStatus::Primary {
        next.task_set_arns = Some((green.arn.clone(), sides.green_fallback.map(|f| f.arn.clone())));
        next.log(now, Level::Info, format!("green task set {} is primary", green.id));
        next.enter(Phase::BlueGreen(BlueGreenPhase::CleanUp), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let action = Action::EcsUpdatePrimaryTaskSet { cluster: cluster.clone(), service: service_name.clone(), task_set: green.arn.clone() };
    Plan { actions: vec![action], requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Delete the blue side (deleteOldUponSuccess).
fn clean_up(cx: &Step<'_>) -> Plan {
    let now = cx.now;
    let app = cx.app;
    let cluster = &cx.cluster;
    let service_name = &cx.service_name;
    let sides = &cx.sides;
    let mut next = cx.record.clone();
    let task_definition = sides.green.map(|g| g.task_definition.clone());
    if app.depdef.delete_old_upon_success && !sides.others.is_empty() {
        let actions = sides
            .others
            .iter()
            .map(|t| Action::EcsDeleteTaskSet { cluster: cluster.clone(), service: service_name.clone(), task_set: t.arn.clone() })
            .collect();
        let ids: Vec<&str> = sides.others.iter().map(|t| t.id.as_str()).collect();
        next.log(now, Level::Info, format!("deleting the blue side: {}", ids.join(", ")));
        return Plan { next_record: Some(next), actions, requeue_after: DELETE_POLL, ..Plan::default() };
    }
    if !sides.others.is_empty() {
        next.log(now, Level::Info, "deleteOldUponSuccess is false: the blue task set stays, without traffic");
    }
    next.log(now, Level::Info, format!("deployment succeeded: {} is live", task_definition.as_deref().map_or("green", short_td)));
    next.finish(Outcome::Succeeded, now);
    let completion = Plan::completion_of(&next, task_definition);
    Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

/// Weights back to 100 % blue, then delete (or keep) green. `superseded`: a newer commit
/// deploys once this is done; `delete_green`: per deleteNewUponFailure /
/// deleteNewUponTrafficShiftFailure.
fn rolling_back(cx: &Step<'_>, superseded: bool, delete_green: bool) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let app = cx.app;
    let cluster = &cx.cluster;
    let service_name = &cx.service_name;
    let sides = &cx.sides;
    let mut next = cx.record.clone();
    let mapping = traffic_mapping(app, sides.blue_primary);
    let elb = observed.elb.clone().unwrap_or_default();
    let actions = weight_actions(&elb, &mapping, 0);
    if !actions.is_empty() {
        next.traffic = Some(Weights::green(0));
        next.log(now, Level::Warn, "traffic back to 100 % blue");
        return Plan { next_record: Some(next), actions, requeue_after: Duration::ZERO, ..Plan::default() };
    }
    if sides.blue_primary.is_some() && record.traffic.is_some_and(|w| w.green > 0) {
        next.traffic = Some(Weights::green(0));
    }
    if delete_green && !sides.green_all.is_empty() {
        let actions = sides
            .green_all
            .iter()
            .map(|t| Action::EcsDeleteTaskSet { cluster: cluster.clone(), service: service_name.clone(), task_set: t.arn.clone() })
            .collect();
        let ids: Vec<&str> = sides.green_all.iter().map(|t| t.id.as_str()).collect();
        next.log(now, Level::Warn, format!("deleting the green side: {}", ids.join(", ")));
        return Plan { next_record: Some(next), actions, requeue_after: DELETE_POLL, ..Plan::default() };
    }
    if !delete_green && !sides.green_all.is_empty() {
        next.log(now, Level::Warn, "the green task set is kept for debugging (it gets no traffic)");
    }
    let outcome = match (superseded, sides.blue_primary.is_some()) {
        (true, _) => Outcome::Superseded,
        (false, true) => Outcome::RolledBack,
        (false, false) => Outcome::Failed,
    };
    let message = match outcome {
        Outcome::Superseded => "rolled back for the newer commit; it deploys next".to_string(),
        Outcome::RolledBack => format!(
            "rolled back: blue serves all traffic; fix the cause, then push a commit or run `gitmoxi sync --force {}`",
            record.app.prefix
        ),
        Outcome::Failed | Outcome::Succeeded | Outcome::Deleted => format!(
            "failed with nothing to roll back to; fix the cause, then push a commit or run `gitmoxi sync --force {}`",
            record.app.prefix
        ),
    };
    next.log(now, if outcome == Outcome::Superseded { Level::Warn } else { Level::Error }, message);
    next.finish(outcome, now);
    let completion = Plan::completion_of(&next, None);
    Plan { finished: Some((next, completion)), requeue_after: Duration::ZERO, ..Plan::default() }
}

fn healthy_note(st: &SideStability) -> String {
    match st.healthy {
        Some(h) => format!(", {h}/{} healthy in the target groups", st.desired),
        None => String::new(),
    }
}

/// Fallback capacity (SPEC §3.3 step 3): when the primary strategy cannot place every task, a
/// fallback task set with the fallback strategy takes the shortfall in the same target groups,
/// and the green task set is scaled to what was placed.
#[allow(clippy::too_many_arguments)]
fn fallback(
    app: &EcsApp,
    record: &DeploymentRecord,
    next: &DeploymentRecord,
    service: &ObservedService,
    sides: &Sides<'_>,
    st: &SideStability,
    task_definition: &str,
    now: u64,
) -> Option<Plan> {
    if app.depdef.fallback_capacity_provider_strategy.is_empty() || sides.green_fallback.is_some() || st.capacity_failures == 0 {
        return None;
    }
    let green = sides.green?;
    let desired = service.desired_count.max(1);
    let placed = st.placed_primary.min(desired);
    let shortfall = desired - placed;
    if shortfall == 0 {
        return None;
    }
    let fallback_percent = f64::from(shortfall) * 100.0 / f64::from(desired);
    let primary_percent = 100.0 - fallback_percent;
    let mut next = next.clone();
    next.task_set_scales = Some(TaskSetScales { primary_percent, fallback_percent });
    next.log(
        now,
        Level::Warn,
        format!(
            "capacity unavailable: the primary strategy placed {placed} of {desired} tasks; a fallback task set takes the other {shortfall} ({fallback_percent:.1} %)"
        ),
    );
    let lbs: Vec<Value> = lb_entries(app)
        .into_iter()
        .zip(green.target_groups.iter())
        .map(|(mut e, tg)| {
            if let Value::Object(obj) = &mut e {
                obj.insert("targetGroupArn".into(), Value::String(tg.clone()));
            }
            e
        })
        .collect();
    let (cluster, service_name) = cluster_service(record);
    let actions = vec![
        Action::EcsCreateTaskSet { body: task_set_body(app, record, task_definition, &lbs, Some(fallback_percent)) },
        Action::EcsUpdateTaskSetScale { cluster, service: service_name, task_set: green.arn.clone(), percent: primary_percent },
    ];
    Some(Plan { next_record: Some(next), actions, requeue_after: Duration::ZERO, ..Plan::default() })
}

/// Enters RollingBack with the cause and its evidence.
fn rollback(record: &DeploymentRecord, now: u64, cause: FailureCause, evidence: Vec<String>, delete_green: bool) -> Plan {
    let mut next = record.clone();
    next.roll_back(
        now,
        cause,
        evidence,
        "rolling back (traffic to blue first)",
        Phase::BlueGreen(BlueGreenPhase::Rollback { superseded: false, delete_green }),
    );
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// The scales an operator's rebalance sets (absolute, percent of the desired count, summing to
/// 100), resolved against what ECS shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebalanceTarget {
    /// The primary-strategy task set's scale.
    pub primary_percent: f64,
    /// The fallback task set's scale.
    pub fallback_percent: f64,
}

/// An operator's rebalance of a steady service between its primary-strategy task set and its
/// fallback: the actions that set the target scales (none once ECS shows them), and the target.
pub fn rebalance(input: &StepInput<'_>, asked: Rebalance) -> Result<(Vec<Action>, RebalanceTarget), String> {
    let observed = input.observed;
    let Some(primary) = observed.task_sets.iter().find(|t| t.status == TaskSetStatus::Primary) else {
        return Err("the service has no primary task set".into());
    };
    let Some(prefix) = primary.external_id.strip_suffix("green") else {
        return Err(format!("the primary task set {} was not created by gitmoxi", primary.arn));
    };
    let fallback_id = format!("{prefix}fallback");
    let Some(fallback) = observed.task_sets.iter().find(|t| t.external_id == fallback_id) else {
        return Err(format!("the primary task set {} has no fallback task set to rebalance with", primary.arn));
    };
    let Some(Identity::Ecs { cluster, service, .. }) = input.applied.identity.as_ref() else {
        return Err("the app has no applied ECS service".into());
    };
    let target = rebalance_target(asked, primary, observed.service.as_ref().map_or(0, |s| s.desired_count));
    let mut actions = Vec::new();
    for (set, percent) in [(primary, target.primary_percent), (fallback, target.fallback_percent)] {
        if (set.scale_percent - percent).abs() > 1e-6 {
            actions.push(Action::EcsUpdateTaskSetScale {
                cluster: cluster.clone(),
                service: service.clone(),
                task_set: set.arn.clone(),
                percent,
            });
        }
    }
    Ok((actions, target))
}

/// Where a rebalance ends: everything one way, or (to the fallback, as needed) the primary keeps
/// the tasks it runs and the fallback takes the ones it cannot place.
fn rebalance_target(asked: Rebalance, primary: &ObservedTaskSet, desired: u32) -> RebalanceTarget {
    let split = |primary_percent: f64| RebalanceTarget { primary_percent, fallback_percent: 100.0 - primary_percent };
    match asked {
        Rebalance::Scales(primary_percent, fallback_percent) => RebalanceTarget { primary_percent, fallback_percent },
        Rebalance::Move { direction: RebalanceDirection::ToFallback, all: true } => split(0.0),
        Rebalance::Move { direction: RebalanceDirection::ToPrimary, all: _ } => split(100.0),
        Rebalance::Move { direction: RebalanceDirection::ToFallback, all: false } => {
            let unplaced = primary.computed_desired_count.saturating_sub(primary.running_count);
            if unplaced == 0 || desired == 0 {
                return split(primary.scale_percent);
            }
            let moved = f64::from(unplaced) * 100.0 / f64::from(desired);
            split((primary.scale_percent - moved).max(0.0))
        }
    }
}

/// An operator's rollback: from CreateGreen up to the bake (green deleted).
pub fn operator_rollback(record: &DeploymentRecord, phase: &BlueGreenPhase, now: u64, evidence: Vec<String>) -> Option<Plan> {
    live(phase).then(|| rollback(record, now, FailureCause::OperatorRollback, evidence, true))
}

/// Whether green exists and traffic may move: the phases a rollback or a newer commit undoes.
fn live(phase: &BlueGreenPhase) -> bool {
    match phase {
        BlueGreenPhase::CreateGreen { .. }
        | BlueGreenPhase::Stabilize { .. }
        | BlueGreenPhase::Shift { .. }
        | BlueGreenPhase::Bake { .. } => true,
        BlueGreenPhase::Register
        | BlueGreenPhase::CreateService { .. }
        | BlueGreenPhase::Promote
        | BlueGreenPhase::CleanUp
        | BlueGreenPhase::Rollback { .. } => false,
    }
}

/// A newer commit arrived: roll back first (traffic to blue, green deleted), then the newest
/// deploys. Promote and CleanUp are past the point of no return and finish first.
pub fn supersede(record: &DeploymentRecord, phase: &BlueGreenPhase, now: u64, commit: &str) -> Option<Plan> {
    if !live(phase) {
        return None;
    }
    let mut next = record.clone();
    next.log(now, Level::Warn, format!("superseded by commit {}: rolling back first", super::short_commit(commit)));
    next.enter(Phase::BlueGreen(BlueGreenPhase::Rollback { superseded: true, delete_green: true }), now);
    Some(Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() })
}

/// Whether a newer commit may end this record right away (nothing of it serves or holds traffic).
pub fn supersedes_at_once(phase: &BlueGreenPhase) -> bool {
    match phase {
        BlueGreenPhase::Register | BlueGreenPhase::CreateService { .. } => true,
        BlueGreenPhase::CreateGreen { .. }
        | BlueGreenPhase::Stabilize { .. }
        | BlueGreenPhase::Shift { .. }
        | BlueGreenPhase::Bake { .. }
        | BlueGreenPhase::Promote
        | BlueGreenPhase::CleanUp
        | BlueGreenPhase::Rollback { .. } => false,
    }
}

/// Ends the record with a message.
fn finish(record: &DeploymentRecord, now: u64, outcome: Outcome, cause: Option<FailureCause>, why: &str) -> Plan {
    let mut next = record.clone();
    next.log(now, Level::Error, why.to_string());
    if let Some(c) = cause {
        next.evidence.push(why.to_string());
        next.cause = Some(c);
    }
    next.finish(outcome, now);
    let completion = Plan::completion_of(&next, None);
    Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

/// The target groups a blue/green app's observer looks at: the pairs and the svcdef's.
pub fn target_groups(app: &EcsApp) -> Vec<String> {
    let mut tgs: Vec<String> = app.depdef.target_group_pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect();
    tgs.extend(lb_entries(app).iter().filter_map(|e| e.get("targetGroupArn").and_then(Value::as_str).map(str::to_string)));
    tgs.sort();
    tgs.dedup();
    tgs
}

#[cfg(test)]
#[path = "ecs_blue_green/tests.rs"]
mod tests;
