//! One reconcile pass of one app: read desired (head), applied (store), record (store) and
//! observed (AWS), ask the pure planner, then execute: persist + flush, then act.
//!
//! The executor has no deployment logic: it persists what the plan says, performs the actions
//! in order, and maps a permanent AWS refusal to the planner's failure helper.

use super::{Controller, ControllerError};
use crate::aws::{Alarms, ApiGateway, AwsError, AwsErrorKind, Ecs, Elb, Lambda};
use gitmoxi_deploy::observed::Observed;
use gitmoxi_deploy::plan::{Action, Completion, Plan};
use gitmoxi_deploy::record::{AppKey, DeploymentRecord, FailureCause, Level, Outcome};
use gitmoxi_deploy::repo_plan::PlanAction;
use gitmoxi_deploy::spec::{AppKind, Identity};
use gitmoxi_deploy::strategy::{self, Desired, StepInput, STEADY_REQUEUE_MS};
use gitmoxi_state::{AppEntry, HistoryEvent};
use std::sync::Arc;
use tracing::Instrument;

/// How often a paused app is looked at (a resume enqueues it at once).
const PAUSED_REQUEUE_MS: u64 = 60_000;

/// Maps an AWS refusal to the failure taxonomy.
pub fn cause_of(e: &AwsError) -> FailureCause {
    match e.kind {
        AwsErrorKind::AccessDenied => FailureCause::PermissionDenied { operation: format!("{}:{}", e.service, e.operation) },
        AwsErrorKind::Throttled | AwsErrorKind::Unavailable => FailureCause::AwsUnavailable { operation: e.operation.to_string() },
        AwsErrorKind::NotFound | AwsErrorKind::Rejected => {
            FailureCause::AwsRejected { operation: e.operation.to_string(), code: e.code.clone(), message: e.message.clone() }
        }
    }
}

impl Controller {
    /// One pass; `Ok(ms)` = look again in `ms` (at the latest when the next drift check is due).
    pub async fn reconcile(self: &Arc<Self>, key: &AppKey) -> Result<u64, ControllerError> {
        let drift_ms = self.settings.drift_interval.as_millis() as u64;
        self.reconcile_once(key).await.map(|ms| ms.min(drift_ms.max(1_000)))
    }

    async fn reconcile_once(self: &Arc<Self>, key: &AppKey) -> Result<u64, ControllerError> {
        let Some(head) = self.head(&key.repo, &key.branch) else { return Ok(STEADY_REQUEUE_MS) };
        let entry = head.plan.get(&key.prefix);
        let app = head.snapshot.apps.get(&key.prefix).and_then(|r| r.as_ref().ok());
        let desired = match (entry.map(|e| e.action), app) {
            (Some(PlanAction::Deploy | PlanAction::None | PlanAction::Move | PlanAction::Held), Some(app)) => Desired::Present(app),
            (Some(PlanAction::Held), None) => Desired::DeleteHeld,
            (Some(PlanAction::Delete), _) => Desired::Deleted,
            _ => Desired::Blocked,
        };
        let moved = entry.is_some_and(|e| e.action == PlanAction::Move);
        let app_entry = self.store.app(key)?.unwrap_or_else(|| AppEntry::new(key.clone(), AppKind::Ecs));
        let record = self.store.record(key)?;
        let commands = self.store.commands(key)?;
        let force = commands.force;
        if commands.paused {
            // Held at its current step: no observation, no action, until resumed.
            return Ok(PAUSED_REQUEUE_MS);
        }
        if commands.rollback && !record.as_ref().is_some_and(|r| r.in_flight()) {
            self.clear_rollback(key, Some("rollback requested, but no deployment is in flight; push a revert commit to go back".into()))?;
        }
        let drift = self.drift_due(key, &desired, &app_entry.applied, record.as_ref(), head.policy.drift);
        let in_flight = record.as_ref().is_some_and(|r| r.in_flight());
        let rebalance = commands.rebalance.filter(|_| !in_flight);
        if drift.is_none() && rebalance.is_none() && !strategy::must_observe(&desired, &app_entry.applied, record.as_ref(), force, moved) {
            return Ok(STEADY_REQUEUE_MS);
        }
        let mut needs = strategy::observe_needs(&desired, &app_entry.applied, record.as_ref());
        needs.task_sets |= rebalance.is_some();
        let Some(identity) = needs.identity.clone() else { return Ok(STEADY_REQUEUE_MS) };
        let (account, region) = match &identity {
            Identity::Ecs { account, region, .. } | Identity::Lambda { account, region, .. } => (account.clone(), region.clone()),
        };
        let clients = Clients {
            ecs: self.aws.ecs(account.as_deref(), &region),
            elb: self.aws.elb(account.as_deref(), &region),
            alarms: self.aws.alarms(account.as_deref(), &region),
            lambda: self.aws.lambda(account.as_deref(), &region),
            apigw: self.aws.apigw(account.as_deref(), &region),
        };
        let observed = observe(&clients, &identity, &needs).await;
        let new_id = self.new_id();
        let now = self.clock.now_ms();
        let input = StepInput {
            key,
            commit: &head.commit,
            desired,
            applied: &app_entry.applied,
            record: record.as_ref(),
            observed: &Observed::default(),
            now_ms: now,
            new_deployment_id: &new_id,
            force,
            rollback: commands.rollback,
            drift,
        };
        if let (Some((primary, fallback)), Ok(obs)) = (rebalance, observed.as_ref()) {
            return self.rebalance(key, &StepInput { observed: obs, ..input }, primary, fallback, &clients).await;
        }
        if let (true, Some(in_flight), Ok(obs)) = (commands.rollback, record.as_ref().filter(|r| r.in_flight()), observed.as_ref()) {
            let possible = strategy::operator_rollback(&StepInput { observed: obs, ..input }, in_flight).is_some();
            let why = (!possible)
                .then(|| format!("rollback requested, but phase {} cannot roll back; it finishes on its own", in_flight.phase.name()));
            self.clear_rollback(key, why)?;
        }
        let plan = match &observed {
            Ok(obs) => strategy::step(&StepInput { observed: obs, ..input }),
            Err(e) if e.is_transient() => return Err(ControllerError::Aws(e.clone())),
            Err(e) => strategy::on_permanent_error(&input, cause_of(e)),
        };
        if let Some(found) = plan.drift.clone() {
            self.record_drift(key, &head.commit, found)?;
        }
        let span = tracing::info_span!("reconcile", app = %key, commit = %head.commit);
        self.execute(key, plan, record.as_ref(), &clients).instrument(span).await
    }

    /// Applies an operator's rebalance (absolute scales), consumes the command, and says what
    /// happened in the history.
    async fn rebalance(
        &self,
        key: &AppKey,
        input: &StepInput<'_>,
        primary: f64,
        fallback: f64,
        clients: &Clients,
    ) -> Result<u64, ControllerError> {
        // the command stays until the scales are set: a crash in between replays the same
        // absolute scales
        let (level, message) = match strategy::ecs_blue_green::rebalance(input, primary, fallback) {
            Ok(actions) => {
                self.flush_store().await?;
                let mut failure = None;
                for action in &actions {
                    if let Err(e) = perform(clients, action).await {
                        failure = Some(e);
                        break;
                    }
                }
                match failure {
                    None => (Level::Info, format!("rebalanced by an operator: {primary} % primary, {fallback} % fallback")),
                    Some(e) => (Level::Error, format!("rebalance failed: {e}; run it again once the cause is fixed")),
                }
            }
            Err(why) => (Level::Warn, format!("rebalance requested, but {why}")),
        };
        let mut commands = self.store.commands(key)?;
        commands.rebalance = None;
        self.store.put_commands(key, &commands)?;
        let event = HistoryEvent { at_ms: self.clock.now_ms(), level, deployment: None, commit: None, message };
        self.store.append_history(key, &event)?;
        Ok(STEADY_REQUEUE_MS)
    }

    /// The drift policy when a steady, applied app is due for a comparison with AWS.
    fn drift_due(
        &self,
        key: &AppKey,
        desired: &Desired<'_>,
        applied: &gitmoxi_deploy::record::AppliedState,
        record: Option<&DeploymentRecord>,
        policy: gitmoxi_deploy::drift::DriftPolicy,
    ) -> Option<gitmoxi_deploy::drift::DriftPolicy> {
        if policy.mode == gitmoxi_deploy::drift::DriftMode::Ignore || record.is_some_and(|r| r.in_flight()) {
            return None;
        }
        let Desired::Present(app) = desired else { return None };
        if applied.fingerprint.as_deref() != Some(app.fingerprint.as_str()) {
            return None;
        }
        let now = self.clock.now_ms();
        let seen = self.drift_seen.lock().unwrap_or_else(|p| p.into_inner());
        let due = seen.get(key).is_none_or(|(at, _)| now.saturating_sub(*at) >= self.settings.drift_interval.as_millis() as u64);
        due.then_some(policy)
    }

    /// Remembers a drift check; a new finding goes to the history, the log and the metric.
    fn record_drift(&self, key: &AppKey, commit: &str, found: Option<String>) -> Result<(), ControllerError> {
        let now = self.clock.now_ms();
        let before =
            self.drift_seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), (now, found.clone())).and_then(|(_, f)| f);
        self.metrics.drift_detected.with_label_values(&[key.prefix.as_str()]).set(i64::from(found.is_some()));
        if let Some(why) = found.filter(|w| before.as_deref() != Some(w.as_str())) {
            tracing::warn!(app = %key, "drift: {why}");
            let event = HistoryEvent {
                at_ms: now,
                level: Level::Warn,
                deployment: None,
                commit: Some(commit.to_string()),
                message: format!("drift: {why}"),
            };
            self.store.append_history(key, &event)?;
        }
        Ok(())
    }

    /// Clears an operator's rollback request; `why_not` goes to the history when nothing could be
    /// rolled back.
    fn clear_rollback(&self, key: &AppKey, why_not: Option<String>) -> Result<(), ControllerError> {
        let mut commands = self.store.commands(key)?;
        commands.rollback = false;
        self.store.put_commands(key, &commands)?;
        if let Some(message) = why_not {
            let event = HistoryEvent { at_ms: self.clock.now_ms(), level: Level::Warn, deployment: None, commit: None, message };
            self.store.append_history(key, &event)?;
        }
        Ok(())
    }

    /// Persists, flushes, then acts.
    async fn execute(
        &self,
        key: &AppKey,
        plan: Plan,
        before: Option<&DeploymentRecord>,
        clients: &Clients,
    ) -> Result<u64, ControllerError> {
        if let Some((finished, completion)) = &plan.finished {
            self.record_history(before, finished)?;
            self.finish(finished, completion)?;
        }
        let mut current = None;
        if let Some(next) = &plan.next_record {
            self.record_history(before, next)?;
            self.notify_progress(before, next);
            if next.in_flight() {
                self.store.put_record(next)?;
                if before.map(|b| &b.id) != Some(&next.id) && self.store.commands(key)?.force {
                    let mut commands = self.store.commands(key)?;
                    commands.force = false;
                    self.store.put_commands(key, &commands)?;
                }
                current = Some(next.clone());
            } else {
                self.finish(next, &Plan::completion_of(next, None))?;
            }
        } else if let Some(b) = before.filter(|b| b.in_flight()) {
            if plan.finished.as_ref().map(|(f, _)| &f.id) != Some(&b.id) {
                current = Some(b.clone());
            }
        }
        if plan.take_ownership {
            let mut entry = self.store.app(key)?.unwrap_or_else(|| AppEntry::new(key.clone(), AppKind::Ecs));
            if !entry.applied.owned {
                entry.applied.owned = true;
                entry.applied.identity = current.as_ref().map(|r| r.identity.clone()).or(entry.applied.identity);
                self.store.put_app(&entry)?;
            }
        }
        // durable before acting; a step without an action is left to sled's periodic flush (a
        // crash that loses it replays the step from what AWS shows)
        if !plan.actions.is_empty() {
            self.flush_store().await?;
        }
        for action in &plan.actions {
            if let Err(e) = perform(clients, action).await {
                if e.is_transient() {
                    return Err(ControllerError::Aws(e));
                }
                tracing::error!(app = %key, error = %e, "AWS refused {}", action.operation());
                return match current.as_ref() {
                    Some(record) => {
                        let (failed, completion) = strategy::fail_record(record, cause_of(&e), self.clock.now_ms());
                        self.record_history(Some(record), &failed)?;
                        self.finish(&failed, &completion)?;
                        self.flush_store().await?;
                        Ok(STEADY_REQUEUE_MS)
                    }
                    None => Err(ControllerError::Aws(e)),
                };
            }
        }
        Ok(plan.requeue_after_ms)
    }

    fn finish(&self, record: &DeploymentRecord, completion: &Completion) -> Result<(), ControllerError> {
        self.store.finish(record, completion)?;
        // compare with AWS again right after every deployment
        self.drift_seen.lock().unwrap_or_else(|p| p.into_inner()).remove(&record.app);
        if let Some(outcome) = record.outcome {
            let message = record.timeline.last().map(|e| e.message.clone()).unwrap_or_default();
            self.notify(crate::notify::Event::of_record(record, outcome.as_str(), message));
            self.metrics.deployments_total.with_label_values(&[record.kind.as_str(), &record.strategy, outcome.as_str()]).inc();
            let seconds = record.finished_at_ms.unwrap_or(record.updated_at_ms).saturating_sub(record.started_at_ms) as f64 / 1000.0;
            self.metrics.deployment_duration.with_label_values(&[record.kind.as_str(), outcome.as_str()]).observe(seconds);
            if matches!(outcome, Outcome::RolledBack | Outcome::Failed) {
                let cause = record.cause.as_ref().map_or("unknown", FailureCause::label);
                self.metrics.rollbacks_total.with_label_values(&[cause]).inc();
            }
            tracing::info!(app = %record.app, deployment = %record.id, outcome = outcome.as_str(), "deployment finished");
        }
        Ok(())
    }

    /// Events for a deployment that started or whose traffic moved.
    fn notify_progress(&self, before: Option<&DeploymentRecord>, next: &DeploymentRecord) {
        if !next.in_flight() {
            return;
        }
        let same = before.filter(|b| b.id == next.id);
        match same {
            None => {
                let message = next.timeline.first().map(|e| e.message.clone()).unwrap_or_default();
                self.notify(crate::notify::Event::of_record(next, "started", message));
            }
            Some(b) if b.traffic != next.traffic => {
                if let Some(w) = next.traffic {
                    self.notify(crate::notify::Event::of_record(next, "traffic", format!("traffic: {} % old / {} % new", w.blue, w.green)));
                }
            }
            Some(_) => {}
        }
    }

    /// Appends the record's new timeline lines to the app's history.
    fn record_history(&self, before: Option<&DeploymentRecord>, after: &DeploymentRecord) -> Result<(), ControllerError> {
        let seen = match before {
            Some(b) if b.id == after.id => b.timeline.len().min(after.timeline.len()),
            _ => 0,
        };
        for event in &after.timeline[seen..] {
            match event.level {
                Level::Error => tracing::error!(app = %after.app, deployment = %after.id, "{}", event.message),
                Level::Warn => tracing::warn!(app = %after.app, deployment = %after.id, "{}", event.message),
                Level::Info => tracing::info!(app = %after.app, deployment = %after.id, "{}", event.message),
            }
            self.store.append_history(
                &after.app,
                &HistoryEvent {
                    at_ms: event.at_ms,
                    level: event.level,
                    deployment: Some(after.id.clone()),
                    commit: Some(after.commit.clone()),
                    message: event.message.clone(),
                },
            )?;
        }
        Ok(())
    }
}

/// The clients of one (account, region).
pub struct Clients {
    pub ecs: Arc<dyn Ecs>,
    pub elb: Arc<dyn Elb>,
    pub alarms: Arc<dyn Alarms>,
    pub lambda: Arc<dyn Lambda>,
    pub apigw: Arc<dyn ApiGateway>,
}

/// Fetches what the step needs.
async fn observe(clients: &Clients, identity: &Identity, needs: &strategy::ObserveNeeds) -> Result<Observed, AwsError> {
    let (cluster, service) = match identity {
        Identity::Ecs { cluster, service, .. } => (cluster, service),
        Identity::Lambda { function, .. } => return observe_lambda(clients, function, needs).await,
    };
    let ecs = clients.ecs.as_ref();
    let described = ecs.describe_service(cluster, service).await?;
    let registered = match &needs.registered_for {
        Some((family, id)) => ecs.find_task_definition(family, id).await?,
        None => None,
    };
    let exists = described.as_ref().is_some_and(|s| s.status != "INACTIVE");
    let mut tasks = if needs.tasks && exists { ecs.service_tasks(cluster, service).await? } else { Vec::new() };
    // Task sets exist only under the EXTERNAL controller (DescribeTaskSets refuses other services).
    let external = described.as_ref().is_some_and(|s| s.deployment_controller.as_deref() == Some("EXTERNAL"));
    let task_sets = if needs.task_sets && exists && external { ecs.describe_task_sets(cluster, service).await? } else { Vec::new() };
    if let Some(prefix) = &needs.side_tasks {
        for set in task_sets.iter().filter(|t| t.external_id.starts_with(prefix.as_str())) {
            tasks.extend(ecs.tasks_started_by(cluster, &set.id).await?);
        }
    }
    let elb = if needs.target_groups.is_empty() { None } else { Some(clients.elb.observe(&needs.target_groups).await?) };
    let alarms = if needs.alarms.is_empty() { Vec::new() } else { clients.alarms.describe(&needs.alarms).await? };
    Ok(Observed { service: described, registered_task_definition: registered, tasks, task_sets, elb, alarms, ..Observed::default() })
}

/// Fetches what a Lambda step needs: the function, its versions and alias, and the wiring of
/// the alias when the phase reconciles it.
async fn observe_lambda(clients: &Clients, function: &str, needs: &strategy::ObserveNeeds) -> Result<Observed, AwsError> {
    let lambda = clients.lambda.as_ref();
    let mut observed = gitmoxi_deploy::observed::ObservedLambda { function: lambda.function(function).await?, ..Default::default() };
    if observed.function.is_some() {
        observed.versions = lambda.versions(function).await?;
        if let Some((alias, wiring)) = &needs.lambda {
            observed.alias = lambda.alias(function, alias).await?;
            if let Some(sources) = wiring {
                let alias_arn = observed.alias.as_ref().map(|a| a.arn.clone());
                if let Some(arn) = &alias_arn {
                    observed.mappings = lambda.mappings(arn).await?;
                    observed.permissions = lambda.permission_sids(function, alias).await?;
                }
                for source in &sources.push {
                    match source {
                        gitmoxi_deploy::spec::lambda::PushSource::Elb { target_group_arn } => {
                            let targets = clients.elb.registered_targets(target_group_arn).await?;
                            observed.elb_targets.insert(target_group_arn.clone(), targets);
                        }
                        gitmoxi_deploy::spec::lambda::PushSource::ApiGateway { api_id, route_id, .. } => {
                            for (id, uri) in clients.apigw.integrations(api_id).await? {
                                observed.integrations.push((api_id.clone(), id, uri));
                            }
                            let target = clients.apigw.route_target(api_id, route_id).await?;
                            observed.route_targets.insert((api_id.clone(), route_id.clone()), target);
                        }
                    }
                }
            }
        }
    }
    let alarms = if needs.alarms.is_empty() { Vec::new() } else { clients.alarms.describe(&needs.alarms).await? };
    Ok(Observed { lambda: observed, alarms, ..Observed::default() })
}

/// Performs one action.
async fn perform(clients: &Clients, action: &Action) -> Result<(), AwsError> {
    let ecs = clients.ecs.as_ref();
    match action {
        Action::EcsRegisterTaskDefinition { body } => ecs.register_task_definition(body).await.map(|arn| {
            tracing::info!(task_definition = %arn, "registered task definition");
        }),
        Action::EcsCreateService { body } => ecs.create_service(body).await.map(|arn| {
            tracing::info!(service = %arn, "created service");
        }),
        Action::EcsUpdateService { body } => ecs.update_service(body).await,
        Action::EcsDeleteService { cluster, service } => ecs.delete_service(cluster, service).await,
        Action::EcsTagResource { arn, tags } => ecs.tag_resource(arn, tags).await,
        Action::EcsCreateTaskSet { body } => ecs.create_task_set(body).await.map(|arn| {
            tracing::info!(task_set = %arn, "created task set");
        }),
        Action::EcsUpdateTaskSetScale { cluster, service, task_set, percent } => {
            ecs.update_task_set_scale(cluster, service, task_set, *percent).await
        }
        Action::EcsUpdatePrimaryTaskSet { cluster, service, task_set } => ecs.update_primary_task_set(cluster, service, task_set).await,
        Action::EcsDeleteTaskSet { cluster, service, task_set } => ecs.delete_task_set(cluster, service, task_set).await,
        Action::ElbSetForwardWeights { kind, arn, targets } => clients.elb.set_forward_weights(*kind, arn, targets).await,
        Action::LambdaCreateFunction { body } => clients.lambda.create_function(body).await,
        Action::LambdaUpdateCode { function, code } => clients.lambda.update_code(function, code).await,
        Action::LambdaUpdateConfig { function, config } => clients.lambda.update_config(function, config).await,
        Action::LambdaPublishVersion { function, code_sha256, revision_id, description } => {
            clients.lambda.publish_version(function, code_sha256, revision_id, description).await
        }
        Action::LambdaCreateAlias { function, alias, version } => clients.lambda.create_alias(function, alias, version).await,
        Action::LambdaSetAlias { function, alias, version, additional } => {
            clients.lambda.update_alias(function, alias, version, additional.as_ref()).await
        }
        Action::LambdaDeleteVersion { function, version } => clients.lambda.delete_function(function, Some(version)).await,
        Action::LambdaDeleteFunction { function } => clients.lambda.delete_function(function, None).await,
        Action::LambdaCreateMapping { body } => clients.lambda.create_mapping(body).await,
        Action::LambdaUpdateMapping { uuid, body } => clients.lambda.update_mapping(uuid, body).await,
        Action::LambdaDeleteMapping { uuid } => clients.lambda.delete_mapping(uuid).await,
        Action::LambdaAddPermission { function, qualifier, sid, principal, source_arn } => {
            clients.lambda.add_permission(function, qualifier, sid, principal, source_arn).await
        }
        Action::LambdaRemovePermission { function, qualifier, sid } => clients.lambda.remove_permission(function, qualifier, sid).await,
        Action::ElbRegisterLambda { target_group, target } => clients.elb.register_target(target_group, target).await,
        Action::ApiCreateIntegration { api_id, uri } => clients.apigw.create_integration(api_id, uri).await,
        Action::ApiSetRouteTarget { api_id, route_id, target } => clients.apigw.set_route_target(api_id, route_id, target).await,
    }
}
