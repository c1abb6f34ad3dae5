//! Lambda deployments (SPEC §4): Create (function + version 1 + alias) or UpdateCode →
//! UpdateConfig (each waiting for `LastUpdateStatus` Successful) → Publish → Ready → Shift(step)…
//! through the alias's `RoutingConfig.AdditionalVersionWeights` → Bake → Wire (event sources on
//! the alias) → CleanUp; RollingBack from any failure while traffic is moving; the delete.
//!
//! Replays: code and configuration updates are detected by the function's revision moving on
//! from the one seen when the phase started, so a lost answer is not sent twice; a version is
//! published only when none already matches `$LATEST` (code SHA-256 and configuration), so a
//! restart never publishes a second version for the same deployment. Alias weights are absolute.

use super::{new_record, short_commit, Desired, StepInput, STEADY_REQUEUE};
use crate::observed::{FunctionState, LastUpdateStatus, ObservedFunction, ObservedLambda};
use crate::plan::{Action, Completion, Plan};
use crate::record::{DeploymentRecord, FailureCause, LambdaPhase, Level, Operation, Outcome, Phase, Strategy};
use crate::spec::hooks::HookPoint;
use crate::spec::lambda::{config_differences, config_view, EventSources, PushSource};
use crate::spec::{AppSpec, DesiredApp, Identity, LambdaApp};
use serde_json::{json, Value};
use std::time::Duration;

/// Statement ids of the permissions gitmoxi adds start with this.
pub const SID_PREFIX: &str = "gitmoxi-";
/// How often an update or a readiness check is looked at.
const POLL: Duration = Duration::from_secs(2);
/// How often alarms are looked at while a traffic step waits.
const ALARM_POLL_MS: u64 = 5_000;

/// Starts a deployment of a Lambda app.
pub fn start(input: &StepInput<'_>, app: &DesiredApp, lambda: &LambdaApp) -> DeploymentRecord {
    let observed = &input.observed.lambda;
    let phase = match &observed.function {
        None => Phase::Lambda(LambdaPhase::Create),
        Some(f) => Phase::Lambda(LambdaPhase::UpdateCode { revision_before: f.change_marker(), sent: false }),
    };
    let mut record = new_record(input, Operation::Deploy, Strategy::Lambda, app.fingerprint.clone(), Some(app), phase);
    record.identity = app.identity.clone();
    record.previous_version = observed.alias.as_ref().map(|a| a.function_version.clone());
    record.log(
        input.now_ms,
        Level::Info,
        format!(
            "deployment started: commit {}, fingerprint {}, {} of {} through alias {}",
            short_commit(input.commit),
            crate::spec::fingerprint::short(&app.fingerprint),
            if observed.function.is_some() { "update" } else { "creation" },
            app.identity,
            lambda.alias
        ),
    );
    record
}

/// Starts the delete of a function whose lambdadef is gone.
pub fn start_delete(input: &StepInput<'_>) -> Plan {
    let mut record =
        new_record(input, Operation::Delete, Strategy::Delete, String::new(), None, Phase::Lambda(LambdaPhase::DeleteFunction));
    record.desired_lambda = input.applied.lambda.clone();
    match &input.observed.lambda.function {
        None => {
            record.log(input.now_ms, Level::Info, "function already gone; forgetting the app");
            record.finish(Outcome::Deleted, input.now_ms);
        }
        Some(_) => record.log(input.now_ms, Level::Info, "the lambdadef is gone from the branch head: deleting the function"),
    }
    Plan { next_record: Some(record), requeue_after: Duration::ZERO, ..Plan::default() }
}

fn function_name(record: &DeploymentRecord) -> String {
    match &record.identity {
        Identity::Lambda { function, .. } => function.clone(),
        Identity::Ecs { service, .. } => service.clone(),
    }
}

/// The newest published version that holds `$LATEST`'s code and every compared configuration
/// field the lambdadef sets.
pub fn matching_version<'o>(app: &LambdaApp, observed: &'o ObservedLambda) -> Option<&'o ObservedFunction> {
    let latest = observed.function.as_ref()?;
    let file = config_view(&app.lambdadef);
    observed.versions.iter().rev().find(|v| v.code_sha256 == latest.code_sha256 && config_differences(&file, &v.config).is_empty())
}

/// What `$LATEST` does not hold of the lambdadef's configuration (every compared field, and the
/// description when the file sets one).
fn config_gaps(app: &LambdaApp, latest: &ObservedFunction) -> Vec<String> {
    let mut gaps = config_differences(&config_view(&app.lambdadef), &latest.config);
    if let Some(description) = app.lambdadef.get("Description").and_then(Value::as_str) {
        if description != latest.description {
            gaps.push(format!("Description: the file sets {description:?}, Lambda holds {:?}", latest.description));
        }
    }
    gaps
}

/// Whether `$LATEST` already holds this code (ZipFile by SHA-256, and the architectures the file
/// sets; S3 and image code cannot be compared).
pub(super) fn code_matches(app: &LambdaApp, latest: &ObservedFunction) -> bool {
    let architectures = config_view(&json!({ "Architectures": app.lambdadef.get("Architectures") }));
    let zip_matches = match app.code().get("ZipFile").and_then(Value::as_str) {
        Some(zip) => crate::spec::fingerprint::lambda_code_sha256(zip).is_some_and(|sha| sha == latest.code_sha256),
        None => false,
    };
    zip_matches && config_differences(&architectures, &latest.config).is_empty()
}

/// The UpdateFunctionCode fields: the `Code` object, and `Architectures` when the file sets them.
fn code_update(app: &LambdaApp) -> Value {
    let mut code = app.code();
    if let Some(architectures) = app.lambdadef.get("Architectures") {
        code.insert("Architectures".into(), architectures.clone());
    }
    Value::Object(code)
}

fn alias_arn(observed: &ObservedLambda, alias: &str) -> Option<String> {
    observed.alias.as_ref().map(|a| a.arn.clone()).or_else(|| observed.function.as_ref().map(|f| format!("{}:{alias}", f.arn)))
}

/// The alias action that puts `weight` % on `version` (the rest on `previous`).
fn alias_target(record: &DeploymentRecord, version: &str, weight: u32) -> (String, Option<(String, f64)>) {
    match record.previous_version.as_deref().filter(|p| *p != version && weight < 100) {
        Some(previous) => (previous.to_string(), Some((version.to_string(), f64::from(weight) / 100.0))),
        None => (version.to_string(), None),
    }
}

fn alias_is(observed: &ObservedLambda, version: &str, additional: &Option<(String, f64)>) -> bool {
    let Some(a) = &observed.alias else { return false };
    let routing_ok = match additional {
        None => a.additional.values().all(|w| *w == 0.0),
        Some((v, w)) => a.additional.len() == 1 && a.additional.get(v).is_some_and(|got| (got - w).abs() < 1e-6),
    };
    a.function_version == version && routing_ok
}

/// What every phase of a Lambda deployment reads.
struct Step<'a> {
    input: &'a StepInput<'a>,
    record: &'a DeploymentRecord,
    now: u64,
    observed: &'a ObservedLambda,
    /// The function's name.
    name: String,
    app: &'a LambdaApp,
    /// The alias's name.
    alias: String,
}

/// Continues an in-flight Lambda record: one named step per phase.
pub fn step(input: &StepInput<'_>, record: &DeploymentRecord, phase: &LambdaPhase) -> Plan {
    let now = input.now_ms;
    let observed = &input.observed.lambda;
    let name = function_name(record);
    if *phase == LambdaPhase::DeleteFunction {
        // a delete carries no desired state: it works from the applied one
        return delete(input, record);
    }
    let Some(app) = record.desired_lambda.as_ref() else {
        return fail(record, now, FailureCause::ValidationError, "the deployment record has no desired state; push a commit to redeploy");
    };
    let cx = Step { input, record, now, observed, name, app, alias: app.alias.clone() };
    match phase {
        LambdaPhase::Create => create(&cx),
        LambdaPhase::UpdateCode { revision_before, sent } | LambdaPhase::UpdateConfig { revision_before, sent } => {
            update(&cx, revision_before, *sent)
        }
        LambdaPhase::Publish => publish(&cx),
        LambdaPhase::Ready { version, deadline_ms } => ready(&cx, version, *deadline_ms),
        LambdaPhase::Shift { version, step, weight, since_ms } => shift(&cx, version, *step, *weight, *since_ms),
        LambdaPhase::Bake { version, until_ms } => bake(&cx, version, *until_ms),
        LambdaPhase::Wire { version } => wire(&cx, version),
        LambdaPhase::CleanUp { version } => clean_up(&cx, version),
        LambdaPhase::Rollback { version, superseded } => rolling_back(&cx, version, *superseded),
        LambdaPhase::DeleteFunction => delete(input, record),
    }
}

/// Create the function (published version 1) when it does not exist.
fn create(cx: &Step<'_>) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let app = cx.app;
    let mut next = cx.record.clone();
    if let Some(f) = &observed.function {
        next.log(now, Level::Info, format!("function {name} exists ({})", f.arn));
        next.enter(Phase::Lambda(LambdaPhase::Publish), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, take_ownership: true, ..Plan::default() };
    }
    let mut body = app.lambdadef.clone();
    if let Value::Object(o) = &mut body {
        o.insert("Publish".into(), json!(true));
        let mut tags = o.remove("Tags").and_then(|t| t.as_object().cloned()).unwrap_or_default();
        tags.insert(super::ecs_rolling::TAG_APP.into(), json!(record.app.tag_value()));
        tags.insert(super::ecs_rolling::TAG_REPO.into(), json!(crate::record::sanitize_tag(&record.app.repo)));
        o.insert("Tags".into(), Value::Object(tags));
    }
    next.log(now, Level::Info, format!("creating function {name} (version 1 published)"));
    Plan { next_record: Some(next), actions: vec![Action::LambdaCreateFunction { body }], take_ownership: true, ..Plan::default() }
}

/// UpdateFunctionCode unless the function's change marker moved on from `revision_before`
/// or it already holds the code (then wait for `LastUpdateStatus` Successful). `sent`: the
/// update was sent once. The UpdateConfig phase does the same with UpdateFunctionConfiguration.
fn update(cx: &Step<'_>, revision_before: &str, sent: bool) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let app = cx.app;
    let mut next = cx.record.clone();
    let code_phase = matches!(record.phase, Phase::Lambda(LambdaPhase::UpdateCode { .. }));
    let what = if code_phase { "code" } else { "configuration" };
    let Some(latest) = &observed.function else {
        return fail(
            record,
            now,
            aws_rejected("GetFunction", "ResourceNotFoundException", "the function disappeared"),
            "the function is gone; push a commit to create it again",
        );
    };
    match latest.last_update_status {
        LastUpdateStatus::InProgress => return Plan::wait(POLL),
        LastUpdateStatus::Failed if latest.change_marker() != *revision_before => {
            let reason = latest.last_update_status_reason.clone().unwrap_or_else(|| "no reason given".into());
            let message = format!("the {what} update of {name} failed: {reason}");
            return fail(
                record,
                now,
                aws_rejected(if code_phase { "UpdateFunctionCode" } else { "UpdateFunctionConfiguration" }, "UpdateFailed", &reason),
                &message,
            );
        }
        // an older failure, or a word Lambda adds later: the update is judged by its marker
        LastUpdateStatus::Failed | LastUpdateStatus::Successful | LastUpdateStatus::Other(_) => {}
    }
    let landed = latest.change_marker() != *revision_before;
    // Endpoints without revision ids (emulators) cannot show that an update landed: there, a
    // code update that was sent counts as landed only when the code cannot be compared (S3,
    // image); a zip is compared by its SHA-256, so a crash between persisting `sent` and sending
    // the update sends it again instead of publishing the old code.
    let unmarked = latest.revision_id.is_empty() && sent && !app.code().contains_key("ZipFile");
    let skip = if code_phase { code_matches(app, latest) || unmarked } else { config_gaps(app, latest).is_empty() };
    if landed || skip {
        if code_phase {
            next.log(
                now,
                Level::Info,
                if skip && !landed { "code unchanged (same SHA-256)".to_string() } else { format!("code of {name} updated") },
            );
            next.enter(Phase::Lambda(LambdaPhase::UpdateConfig { revision_before: latest.change_marker(), sent: false }), now);
        } else {
            next.log(now, Level::Info, format!("configuration of {name} updated"));
            next.enter(Phase::Lambda(LambdaPhase::Publish), now);
        }
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let action = if code_phase {
        next.phase = Phase::Lambda(LambdaPhase::UpdateCode { revision_before: revision_before.to_string(), sent: true });
        Action::LambdaUpdateCode { function: name.clone(), code: code_update(app) }
    } else {
        next.phase = Phase::Lambda(LambdaPhase::UpdateConfig { revision_before: revision_before.to_string(), sent: true });
        Action::LambdaUpdateConfig { function: name.clone(), config: Value::Object(app.configuration()) }
    };
    let persist = (next != *record).then_some(next);
    Plan { next_record: persist, actions: vec![action], requeue_after: POLL, ..Plan::default() }
}

/// Publish a version, unless one already holds the code and every compared field. `$LATEST` must
/// hold them first: an update Lambda did not apply fails the deployment instead of publishing.
fn publish(cx: &Step<'_>) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let app = cx.app;
    let mut next = cx.record.clone();
    let Some(latest) = &observed.function else { return Plan::wait(POLL) };
    if latest.last_update_status == LastUpdateStatus::InProgress || latest.state == FunctionState::Pending {
        return Plan::wait(POLL);
    }
    let mut gaps = config_differences(&config_view(&app.lambdadef), &latest.config);
    if app.code().contains_key("ZipFile") && !code_matches(app, latest) {
        gaps.push(format!("Code: $LATEST's SHA-256 is {}, not the ZipFile's", latest.code_sha256));
    }
    if !gaps.is_empty() {
        let message = format!("$LATEST of {name} does not hold what the lambdadef sets: {}", gaps.join("; "));
        return fail(record, now, aws_rejected("UpdateFunctionConfiguration", "NotApplied", &gaps.join("; ")), &message);
    }
    if let Some(v) = matching_version(app, observed) {
        let budget = app.depdef.readiness.wait_interval_secs * u64::from(app.depdef.readiness.max_retries) * 1000;
        next.log(now, Level::Info, format!("version {} holds this code and configuration", v.version));
        next.enter(Phase::Lambda(LambdaPhase::Ready { version: v.version.clone(), deadline_ms: now + budget }), now);
        return Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let action = Action::LambdaPublishVersion {
        function: name.clone(),
        code_sha256: latest.code_sha256.clone(),
        revision_id: latest.revision_id.clone(),
        description: format!("gitmoxi deployment {} (commit {})", record.id, short_commit(&record.commit)),
    };
    Plan { actions: vec![action], requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Wait until `version` is Active (readinessCheck); create the alias if it is missing.
fn ready(cx: &Step<'_>, version: &str, deadline_ms: u64) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let app = cx.app;
    let alias = &cx.alias;
    let mut next = cx.record.clone();
    let v = observed.versions.iter().find(|v| v.version == version);
    match v.map(|v| &v.state) {
        Some(FunctionState::Active) => {}
        Some(FunctionState::Failed) => {
            let reason = v.and_then(|v| v.state_reason.clone()).unwrap_or_default();
            return rollback(
                record,
                now,
                aws_rejected("GetFunctionConfiguration", "VersionFailed", &reason),
                vec![format!("version {version} is Failed: {reason}")],
            );
        }
        Some(FunctionState::Pending | FunctionState::Inactive | FunctionState::Other(_)) | None if now >= deadline_ms => {
            let waited = app.depdef.readiness.wait_interval_secs * u64::from(app.depdef.readiness.max_retries);
            let state = v.map_or("missing", |v| v.state.as_str()).to_string();
            return rollback(
                record,
                now,
                FailureCause::StabilityTimeout { waited_secs: waited },
                vec![format!("version {version} is {state}, not Active, after {waited} s")],
            );
        }
        Some(FunctionState::Pending | FunctionState::Inactive | FunctionState::Other(_)) | None => {
            return Plan::wait(Duration::from_secs(app.depdef.readiness.wait_interval_secs))
        }
    }
    if observed.alias.is_none() {
        next.log(now, Level::Info, format!("creating alias {alias} on version {version}"));
        let action = Action::LambdaCreateAlias { function: name.clone(), alias: alias.clone(), version: version.to_string() };
        return Plan { next_record: Some(next), actions: vec![action], requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let previous = record.previous_version.clone().filter(|p| p != version);
    next.log(now, Level::Info, format!("version {version} is Active"));
    match previous {
        None => next.enter(Phase::Lambda(LambdaPhase::Wire { version: version.to_string() }), now),
        Some(_) => {
            let first = app.depdef.schedule().first().map_or(100, |s| s.weight);
            next.enter(Phase::Lambda(LambdaPhase::Shift { version: version.to_string(), step: 0, weight: first, since_ms: now }), now);
        }
    }
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Alias weight `weight` % on `version` since `since_ms`; alarms watched.
fn shift(cx: &Step<'_>, version: &str, step: u32, weight: u32, since_ms: u64) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let app = cx.app;
    let alias = &cx.alias;
    let mut next = cx.record.clone();
    let alarms = input.observed.firing_alarms();
    if !alarms.is_empty() {
        let evidence = alarms.iter().map(|a| format!("alarm {a} in ALARM at {weight} % on version {version}")).collect();
        return rollback(record, now, FailureCause::AlarmFired { alarms }, evidence);
    }
    let (target, additional) = alias_target(record, version, weight);
    if !alias_is(observed, &target, &additional) {
        let poll = if app.depdef.alarm_names.is_empty() { Duration::from_secs(30) } else { Duration::from_millis(ALARM_POLL_MS) };
        match super::gates::before_step(input, record, app.depdef.traffic_shifting.approval, weight, poll) {
            super::gates::Gate::Open => {}
            super::gates::Gate::Hold(plan) => return plan,
            super::gates::Gate::Closed(cause, evidence) => return rollback(record, now, cause, evidence),
        }
        if step == 0 {
            if let Some(plan) = through_hook(input, &next, HookPoint::BeforeShift, poll) {
                return plan;
            }
        }
        let w = crate::schedule::Weights::green(weight);
        if next.traffic != Some(w) {
            next.traffic = Some(w);
            next.log(now, Level::Info, format!("alias {alias}: {weight} % on version {version}"));
        }
        let action = Action::LambdaSetAlias { function: name.clone(), alias: alias.clone(), version: target, additional };
        return Plan { next_record: Some(next), actions: vec![action], requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let schedule = app.depdef.schedule();
    let this_step = schedule.get(step as usize).cloned();
    let wait = this_step.as_ref().map_or(app.depdef.traffic_shifting.wait_interval_secs, |s| s.wait_secs) * 1000;
    let elapsed = now.saturating_sub(since_ms);
    if elapsed < wait {
        let remaining = wait - elapsed;
        let again = if app.depdef.alarm_names.is_empty() { remaining } else { remaining.min(ALARM_POLL_MS) };
        return Plan::wait(Duration::from_millis(again.max(1)));
    }
    if let (Some(spec), true) = (&app.depdef.analysis, this_step.as_ref().is_none_or(|s| s.analysis)) {
        let sides = super::analysis_gate::lambda_sides(record, name, alias, version);
        let poll = Duration::from_millis(ALARM_POLL_MS);
        let label = super::analysis_gate::step_label(Some(weight));
        match super::analysis_gate::at_step_end(input, &next, spec, &sides, &label, since_ms, poll) {
            super::analysis_gate::AnalysisGate::Open => {}
            super::analysis_gate::AnalysisGate::Hold(plan) => return plan,
            super::analysis_gate::AnalysisGate::Closed(with_run, cause, evidence) => return rollback(&with_run, now, cause, evidence),
        }
    }
    if schedule.get(step as usize + 1).is_none() {
        if let Some(plan) = through_hook(input, &next, HookPoint::AfterShift, Duration::from_millis(ALARM_POLL_MS)) {
            return plan;
        }
    }
    match schedule.get(step as usize + 1) {
        Some(following) => next.enter(
            Phase::Lambda(LambdaPhase::Shift { version: version.to_string(), step: step + 1, weight: following.weight, since_ms: now }),
            now,
        ),
        None => next.enter(Phase::Lambda(LambdaPhase::Bake { version: version.to_string(), until_ms: now + wait }), now),
    }
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// 100 % on `version`, one more wait watching alarms.
fn bake(cx: &Step<'_>, version: &str, until_ms: u64) -> Plan {
    let input = cx.input;
    let record = cx.record;
    let now = cx.now;
    let app = cx.app;
    let mut next = cx.record.clone();
    let alarms = input.observed.firing_alarms();
    if !alarms.is_empty() {
        let evidence = alarms.iter().map(|a| format!("alarm {a} in ALARM during the bake of version {version}")).collect();
        return rollback(record, now, FailureCause::AlarmFired { alarms }, evidence);
    }
    if now < until_ms {
        let remaining = until_ms - now;
        return Plan::wait(Duration::from_millis(
            if app.depdef.alarm_names.is_empty() { remaining } else { remaining.min(ALARM_POLL_MS) }.max(1),
        ));
    }
    if let Some(spec) = app.depdef.analysis.as_ref().filter(|a| a.during_bake) {
        let sides = super::analysis_gate::lambda_sides(record, &cx.name, &cx.alias, version);
        let poll = Duration::from_millis(ALARM_POLL_MS);
        let label = super::analysis_gate::step_label(None);
        let bake_start = until_ms.saturating_sub(app.depdef.schedule().last().map_or(0, |s| s.wait_secs * 1000));
        match super::analysis_gate::at_step_end(input, &next, spec, &sides, &label, bake_start, poll) {
            super::analysis_gate::AnalysisGate::Open => {}
            super::analysis_gate::AnalysisGate::Hold(plan) => return plan,
            super::analysis_gate::AnalysisGate::Closed(with_run, cause, evidence) => return rollback(&with_run, now, cause, evidence),
        }
    }
    if let Some(plan) = through_hook(input, &next, HookPoint::BeforePromote, Duration::from_millis(ALARM_POLL_MS)) {
        return plan;
    }
    next.enter(Phase::Lambda(LambdaPhase::Wire { version: version.to_string() }), now);
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// The GetMetricData request of a Shift or Bake phase whose wait is over and whose analysis is
/// due at `now` (`None` otherwise).
pub fn analysis_request(record: &DeploymentRecord, phase: &LambdaPhase, now: u64) -> Option<crate::analysis::queries::MetricRequest> {
    let app = record.desired_lambda.as_ref()?;
    let spec = app.depdef.analysis.as_ref()?;
    let schedule = app.depdef.schedule();
    let wait_of = |step: usize| schedule.get(step).map_or(0, |s| s.wait_secs * 1000);
    let (label, since, version) = match phase {
        LambdaPhase::Shift { version, step, weight, since_ms }
            if now >= since_ms + wait_of(*step as usize) && schedule.get(*step as usize).is_some_and(|s| s.analysis) =>
        {
            (super::analysis_gate::step_label(Some(*weight)), *since_ms, version)
        }
        LambdaPhase::Bake { version, until_ms } if now >= *until_ms && spec.during_bake => {
            (super::analysis_gate::step_label(None), until_ms.saturating_sub(wait_of(schedule.len().saturating_sub(1))), version)
        }
        LambdaPhase::Shift { .. }
        | LambdaPhase::Bake { .. }
        | LambdaPhase::Ready { .. }
        | LambdaPhase::Create
        | LambdaPhase::UpdateCode { .. }
        | LambdaPhase::UpdateConfig { .. }
        | LambdaPhase::Publish
        | LambdaPhase::Wire { .. }
        | LambdaPhase::CleanUp { .. }
        | LambdaPhase::Rollback { .. }
        | LambdaPhase::DeleteFunction => return None,
    };
    let sides = super::analysis_gate::lambda_sides(record, &function_name(record), &app.depdef.alias, version);
    super::analysis_gate::request(record, spec, &sides, &label, since, now)
}

/// Event sources on the alias (mappings, permissions, ELB target, API integration).
fn wire(cx: &Step<'_>, version: &str) -> Plan {
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let app = cx.app;
    let alias = &cx.alias;
    let mut next = cx.record.clone();
    let Some(alias_arn) = alias_arn(observed, alias) else { return Plan::wait(POLL) };
    let actions = wiring_actions(name, alias, &alias_arn, &app.event_sources, retired_sources(cx.input.applied), observed);
    if !actions.is_empty() {
        let ops: Vec<&str> = actions.iter().map(Action::operation).collect();
        next.log(now, Level::Info, format!("wiring event sources to alias {alias}: {}", ops.join(", ")));
        return Plan { next_record: Some(next), actions, requeue_after: Duration::ZERO, ..Plan::default() };
    }
    next.enter(Phase::Lambda(LambdaPhase::CleanUp { version: version.to_string() }), now);
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// Delete the old version (deleteOldVersion).
fn clean_up(cx: &Step<'_>, version: &str) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let app = cx.app;
    let alias = &cx.alias;
    let mut next = cx.record.clone();
    let old = record.previous_version.clone().filter(|p| p != version && p != "$LATEST");
    if let Some(old) = old.filter(|o| app.depdef.delete_old_version && observed.versions.iter().any(|v| &v.version == o)) {
        next.log(now, Level::Info, format!("deleting the old version {old} (deleteOldVersion)"));
        let action = Action::LambdaDeleteVersion { function: name.clone(), version: old };
        return Plan { next_record: Some(next), actions: vec![action], requeue_after: Duration::ZERO, ..Plan::default() };
    }
    next.traffic = record.previous_version.as_ref().map(|_| crate::schedule::Weights::green(100));
    next.log(now, Level::Info, format!("deployment succeeded: alias {alias} on version {version}"));
    next.finish(Outcome::Succeeded, now);
    let completion = Plan::completion_of(&next, Some(version.to_string()));
    Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

/// Alias back on the previous version without routing, then delete `version`.
fn rolling_back(cx: &Step<'_>, version: &str, superseded: bool) -> Plan {
    let record = cx.record;
    let now = cx.now;
    let observed = cx.observed;
    let name = &cx.name;
    let alias = &cx.alias;
    let mut next = cx.record.clone();
    if let Some(previous) = record.previous_version.clone().filter(|p| p != version) {
        if !alias_is(observed, &previous, &None) && observed.alias.is_some() {
            next.traffic = Some(crate::schedule::Weights::green(0));
            next.log(now, Level::Warn, format!("alias {alias} back on version {previous}, no routing"));
            let action = Action::LambdaSetAlias { function: name.clone(), alias: alias.clone(), version: previous, additional: None };
            return Plan { next_record: Some(next), actions: vec![action], requeue_after: Duration::ZERO, ..Plan::default() };
        }
        if observed.versions.iter().any(|v| v.version == version) {
            next.log(now, Level::Warn, format!("deleting version {version}"));
            let action = Action::LambdaDeleteVersion { function: name.clone(), version: version.to_string() };
            return Plan { next_record: Some(next), actions: vec![action], requeue_after: Duration::ZERO, ..Plan::default() };
        }
    }
    let outcome = match (superseded, record.previous_version.is_some()) {
        (true, _) => Outcome::Superseded,
        (false, true) => Outcome::RolledBack,
        (false, false) => Outcome::Failed,
    };
    let message = match outcome {
        Outcome::Superseded => "rolled back for the newer commit; it deploys next".to_string(),
        Outcome::RolledBack | Outcome::Failed | Outcome::Succeeded | Outcome::Deleted => {
            format!("rolled back: fix the cause, then push a commit or run `gitmoxi sync --force {}`", record.app.prefix)
        }
    };
    next.log(now, if outcome == Outcome::Superseded { Level::Warn } else { Level::Error }, message);
    next.finish(outcome, now);
    let completion = Plan::completion_of(&next, None);
    Plan { finished: Some((next, completion)), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// The permission statement id of a push source.
pub fn permission_sid(source: &PushSource) -> String {
    let key = match source {
        PushSource::Elb { target_group_arn } => target_group_arn.clone(),
        PushSource::ApiGateway { api_id, route_id, .. } => format!("{api_id}/{route_id}"),
    };
    let short = crate::token::client_token(&key, "permission");
    format!("{SID_PREFIX}{}-{}", if matches!(source, PushSource::Elb { .. }) { "elb" } else { "apigw" }, &short[..16])
}

/// The integration URI of an API Gateway source.
fn integration_uri(alias_arn: &str, source: &PushSource) -> String {
    match source {
        PushSource::ApiGateway { stage_variable: Some(var), .. } => {
            let unqualified = alias_arn.rsplit_once(':').map_or(alias_arn, |(f, _)| f);
            format!("{unqualified}:${{stageVariables.{var}}}")
        }
        PushSource::ApiGateway { stage_variable: None, .. } | PushSource::Elb { .. } => alias_arn.to_string(),
    }
}

/// What takes the alias out of push sources it no longer has: its registration in a target
/// group, and the route target and integration of an HTTP API (the permissions go with the
/// sources' statement ids). Level-triggered: only what AWS still shows.
fn unwiring_actions<'s>(alias_arn: &str, retired: impl Iterator<Item = &'s PushSource>, observed: &ObservedLambda) -> Vec<Action> {
    let mut actions = Vec::new();
    for source in retired {
        match source {
            PushSource::Elb { target_group_arn } => {
                if observed.elb_targets.get(target_group_arn).is_some_and(|t| t.iter().any(|id| id == alias_arn)) {
                    actions.push(Action::ElbDeregisterLambda { target_group: target_group_arn.clone(), target: alias_arn.to_string() });
                }
            }
            PushSource::ApiGateway { api_id, route_id, .. } => {
                let uri = integration_uri(alias_arn, source);
                for (_, id, _) in observed.integrations.iter().filter(|(api, _, u)| api == api_id && *u == uri) {
                    let target = format!("integrations/{id}");
                    if observed.route_targets.get(&(api_id.clone(), route_id.clone())).cloned().flatten().as_deref()
                        == Some(target.as_str())
                    {
                        actions.push(Action::ApiSetRouteTarget {
                            api_id: api_id.clone(),
                            route_id: route_id.clone(),
                            target: String::new(),
                        });
                    }
                    actions.push(Action::ApiDeleteIntegration { api_id: api_id.clone(), integration_id: id.clone() });
                }
            }
        }
    }
    actions
}

/// The push sources an app had at its last applied deployment that the wiring must still
/// observe (to take the alias out of them).
pub fn retired_sources(applied: &crate::record::AppliedState) -> &[PushSource] {
    applied.lambda.as_ref().map_or(&[], |l| l.event_sources.push.as_slice())
}

/// What makes the alias's event sources match the file (level-triggered, so drift heals).
pub fn wiring_actions(
    function: &str,
    alias: &str,
    alias_arn: &str,
    sources: &EventSources,
    retired: &[PushSource],
    observed: &ObservedLambda,
) -> Vec<Action> {
    let mut actions = unwiring_actions(alias_arn, retired.iter().filter(|r| !sources.push.contains(r)), observed);
    let region_account = alias_arn.split(':').skip(3).take(2).collect::<Vec<_>>();
    for source in &sources.push {
        let sid = permission_sid(source);
        if !observed.permissions.contains(&sid) {
            let source_arn = match source {
                PushSource::Elb { target_group_arn } => target_group_arn.clone(),
                PushSource::ApiGateway { api_id, .. } => {
                    format!(
                        "arn:aws:execute-api:{}:{}:{api_id}/*",
                        region_account.first().unwrap_or(&""),
                        region_account.get(1).unwrap_or(&"")
                    )
                }
            };
            actions.push(Action::LambdaAddPermission {
                function: function.to_string(),
                qualifier: alias.to_string(),
                sid,
                principal: source.principal().to_string(),
                source_arn,
            });
        }
        match source {
            PushSource::Elb { target_group_arn } => {
                let registered = observed.elb_targets.get(target_group_arn).is_some_and(|t| t.iter().any(|id| id == alias_arn));
                if !registered {
                    actions.push(Action::ElbRegisterLambda { target_group: target_group_arn.clone(), target: alias_arn.to_string() });
                }
            }
            PushSource::ApiGateway { api_id, route_id, .. } => {
                let uri = integration_uri(alias_arn, source);
                match observed.integrations.iter().find(|(api, _, u)| api == api_id && *u == uri) {
                    None => actions.push(Action::ApiCreateIntegration { api_id: api_id.clone(), uri }),
                    Some((_, id, _)) => {
                        let target = format!("integrations/{id}");
                        let current = observed.route_targets.get(&(api_id.clone(), route_id.clone())).cloned().flatten();
                        if current.as_deref() != Some(target.as_str()) {
                            actions.push(Action::ApiSetRouteTarget { api_id: api_id.clone(), route_id: route_id.clone(), target });
                        }
                    }
                }
            }
        }
    }
    for body in &sources.pull {
        let arn = body.get("EventSourceArn").and_then(Value::as_str).unwrap_or_default();
        match observed.mappings.iter().find(|m| m.event_source_arn == arn) {
            None => {
                let mut b = body.clone();
                if let Value::Object(o) = &mut b {
                    o.insert("FunctionName".into(), json!(alias_arn));
                }
                actions.push(Action::LambdaCreateMapping { body: b });
            }
            Some(m) => {
                let changes = crate::spec::lambda::mapping_changes(body, &m.config);
                if !changes.is_empty() {
                    actions.push(Action::LambdaUpdateMapping { uuid: m.uuid.clone(), body: Value::Object(changes) });
                }
            }
        }
    }
    for m in &observed.mappings {
        if !sources.pull.iter().any(|b| b.get("EventSourceArn").and_then(Value::as_str) == Some(m.event_source_arn.as_str())) {
            actions.push(Action::LambdaDeleteMapping { uuid: m.uuid.clone() });
        }
    }
    for sid in observed.permissions.iter().filter(|s| s.starts_with(SID_PREFIX)) {
        if !sources.push.iter().any(|p| &permission_sid(p) == sid) {
            actions.push(Action::LambdaRemovePermission { function: function.to_string(), qualifier: alias.to_string(), sid: sid.clone() });
        }
    }
    actions
}

/// The delete: mappings and permissions gitmoxi added, then the function.
fn delete(input: &StepInput<'_>, record: &DeploymentRecord) -> Plan {
    let now = input.now_ms;
    let observed = &input.observed.lambda;
    let name = function_name(record);
    let mut next = record.clone();
    let Some(function) = &observed.function else {
        next.log(now, Level::Info, "function deleted");
        next.finish(Outcome::Deleted, now);
        return Plan { finished: Some((next, Completion::Removed)), requeue_after: Duration::ZERO, ..Plan::default() };
    };
    let owned = super::foreign_owner(input, &function.tags).is_none()
        && (input.applied.owned || function.tags.get(super::ecs_rolling::TAG_APP) == Some(&input.key.tag_value()));
    if !owned {
        next.cause = Some(FailureCause::NotOwned);
        next.log(now, Level::Error, format!("refusing to delete {}: it was not created or adopted by this app", record.identity));
        next.finish(Outcome::Failed, now);
        return Plan { finished: Some((next, Completion::Removed)), requeue_after: Duration::ZERO, ..Plan::default() };
    }
    let mut actions = Vec::new();
    if let Some(app) = record.desired_lambda.as_ref().or(input.applied.lambda.as_ref()) {
        let alias_arn = alias_arn(observed, &app.alias).unwrap_or_default();
        let sources = wiring_to_observe(app, input.applied);
        actions.extend(unwiring_actions(&alias_arn, sources.push.iter(), observed));
    }
    actions.extend(observed.mappings.iter().map(|m| Action::LambdaDeleteMapping { uuid: m.uuid.clone() }));
    if let Some(app) = &record.desired_lambda {
        for sid in observed.permissions.iter().filter(|s| s.starts_with(SID_PREFIX)) {
            actions.push(Action::LambdaRemovePermission { function: name.clone(), qualifier: app.alias.clone(), sid: sid.clone() });
        }
    }
    actions.push(Action::LambdaDeleteFunction { function: name });
    Plan { actions, requeue_after: POLL, ..Plan::default() }
}

fn aws_rejected(operation: &str, code: &str, message: &str) -> FailureCause {
    FailureCause::AwsRejected { operation: operation.into(), code: code.into(), message: message.into() }
}

/// Ends the deployment as failed before any traffic moved.
fn fail(record: &DeploymentRecord, now: u64, cause: FailureCause, why: &str) -> Plan {
    let mut next = record.clone();
    next.log(
        now,
        Level::Error,
        format!("{why}; nothing was shifted. Fix the cause, then push a commit or run `gitmoxi sync --force {}`", record.app.prefix),
    );
    next.evidence.push(why.to_string());
    next.cause = Some(cause);
    next.finish(Outcome::Failed, now);
    let completion = Plan::completion_of(&next, None);
    Plan { finished: Some((next, completion)), requeue_after: STEADY_REQUEUE, ..Plan::default() }
}

/// Enters RollingBack with the cause and its evidence.
fn rollback(record: &DeploymentRecord, now: u64, cause: FailureCause, evidence: Vec<String>) -> Plan {
    let version = match &record.phase {
        Phase::Lambda(phase) => shifting_version(phase).unwrap_or_default().to_string(),
        Phase::Rolling(_) | Phase::BlueGreen(_) | Phase::Done => String::new(),
    };
    let mut next = record.clone();
    let phase = Phase::Lambda(LambdaPhase::Rollback { version, superseded: false });
    next.roll_back(now, cause, evidence, "rolling back (alias to the previous version first)", phase);
    Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() }
}

/// An operator's rollback: while the new version is being readied or takes traffic.
pub fn operator_rollback(record: &DeploymentRecord, phase: &LambdaPhase, now: u64, evidence: Vec<String>) -> Option<Plan> {
    shifting_version(phase).is_some().then(|| rollback(record, now, FailureCause::OperatorRollback, evidence))
}

/// The new version while it may take traffic (Ready, Shift, Bake): the phases a rollback or a
/// newer commit undoes.
/// The hook at `point` (issue 25): `None` when the step may go on, else the plan that starts or
/// follows it, or rolls back for it.
fn through_hook(input: &StepInput<'_>, next: &DeploymentRecord, point: HookPoint, poll: Duration) -> Option<Plan> {
    match super::hook_gate::at(input, next, point, poll) {
        super::hook_gate::HookGate::Open => None,
        super::hook_gate::HookGate::Hold(plan) => Some(plan),
        super::hook_gate::HookGate::Closed(with_run, cause, evidence) => Some(rollback(&with_run, input.now_ms, cause, evidence)),
    }
}

/// The version a Lambda phase moves traffic to, if it has one.
pub fn version_of(phase: &LambdaPhase) -> Option<&str> {
    shifting_version(phase)
}

fn shifting_version(phase: &LambdaPhase) -> Option<&str> {
    match phase {
        LambdaPhase::Ready { version, .. } | LambdaPhase::Shift { version, .. } | LambdaPhase::Bake { version, .. } => Some(version),
        LambdaPhase::Create
        | LambdaPhase::UpdateCode { .. }
        | LambdaPhase::UpdateConfig { .. }
        | LambdaPhase::Publish
        | LambdaPhase::Wire { .. }
        | LambdaPhase::CleanUp { .. }
        | LambdaPhase::Rollback { .. }
        | LambdaPhase::DeleteFunction => None,
    }
}

/// A newer commit while traffic may be moving: roll back first, then the newest deploys.
pub fn supersede(record: &DeploymentRecord, phase: &LambdaPhase, now: u64, commit: &str) -> Option<Plan> {
    let version = shifting_version(phase)?.to_string();
    let mut next = record.clone();
    next.log(now, Level::Warn, format!("superseded by commit {}: rolling back first", short_commit(commit)));
    next.enter(Phase::Lambda(LambdaPhase::Rollback { version, superseded: true }), now);
    Some(Plan { next_record: Some(next), requeue_after: Duration::ZERO, ..Plan::default() })
}

/// Whether a newer commit may end this record at once (no traffic has moved).
pub fn supersedes_at_once(phase: &LambdaPhase) -> bool {
    match phase {
        LambdaPhase::Create | LambdaPhase::UpdateCode { .. } | LambdaPhase::UpdateConfig { .. } | LambdaPhase::Publish => true,
        LambdaPhase::Ready { .. }
        | LambdaPhase::Shift { .. }
        | LambdaPhase::Bake { .. }
        | LambdaPhase::Wire { .. }
        | LambdaPhase::CleanUp { .. }
        | LambdaPhase::Rollback { .. }
        | LambdaPhase::DeleteFunction => false,
    }
}

/// What the observer fetches for a Lambda step: the alias, and the wiring when it is reconciled.
pub fn lambda_needs(
    desired: &Desired<'_>,
    applied: &crate::record::AppliedState,
    record: Option<&DeploymentRecord>,
) -> Option<(String, Option<EventSources>)> {
    let app = record.filter(|r| r.in_flight()).and_then(|r| r.desired_lambda.clone()).or_else(|| match desired {
        Desired::Present(DesiredApp { spec: AppSpec::Lambda(l), .. }) => Some(l.clone()),
        Desired::Present(DesiredApp { spec: AppSpec::Ecs(_), .. })
        | Desired::Blocked
        | Desired::Deleted
        | Desired::DeleteHeld
        | Desired::Invalid(_) => applied.lambda.clone(),
    })?;
    let wiring = match record.filter(|r| r.in_flight()).map(|r| &r.phase) {
        Some(Phase::Lambda(LambdaPhase::Wire { .. }) | Phase::Lambda(LambdaPhase::DeleteFunction)) => {
            Some(wiring_to_observe(&app, applied))
        }
        _ => None,
    };
    Some((app.alias, wiring))
}

/// The event sources whose wiring a look observes: the app's, and the push sources of its last
/// applied deployment (to take the alias out of those it no longer has).
pub fn wiring_to_observe(app: &LambdaApp, applied: &crate::record::AppliedState) -> EventSources {
    let mut sources = app.event_sources.clone();
    for retired in retired_sources(applied) {
        if !sources.push.contains(retired) {
            sources.push.push(retired.clone());
        }
    }
    sources
}

#[cfg(test)]
#[path = "lambda_shift/tests.rs"]
mod tests;
