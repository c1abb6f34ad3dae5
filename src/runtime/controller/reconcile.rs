//! One reconcile pass of one app: load → observe → `step` → execute.
//!
//! Load reads the head's intent for the app, the applied state, the in-flight record, the
//! operator's commands and the drift clock; the pure planner ([`strategy::look`]) says whether
//! and what to observe; [`strategy::step`] turns the observation into a plan; execute persists
//! it, flushes, then acts. The executor decides nothing about deployments: a permanent refusal
//! of AWS (of the observation or of an action) goes back to the planner as a fact of the next
//! `step`, and the commands it removes from the app's log are the ones the plan says it
//! consumed, up to the last one the pass read.

use super::{Controller, ControllerError};
use crate::io::aws::{Alarms, ApiGateway, AwsError, AwsErrorKind, Ecs, Elb, Lambda};
use gitmoxi_deploy::drift::{DriftClock, DriftSeen};
use gitmoxi_deploy::intent::Intent;
use gitmoxi_deploy::observed::{DeploymentControllerType, Observed, ServiceStatus};
use gitmoxi_deploy::plan::{Action, Completion, Plan};
use gitmoxi_deploy::record::{AppKey, DeploymentRecord, FailureCause, Level, Outcome};
use gitmoxi_deploy::spec::{AppKind, Identity};
use gitmoxi_deploy::strategy::{self, Desired, Look, StepInput, STEADY_REQUEUE};
use gitmoxi_state::{AppEntry, HistoryEvent};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

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

/// How a plan's actions went.
enum Executed {
    /// Every action was accepted (or there were none).
    Done,
    /// AWS refused an action for a reason retrying will not fix.
    Refused(AwsError),
}

impl Controller {
    /// One pass; `Ok(d)` = look again in `d`.
    pub async fn reconcile(self: &Arc<Self>, key: &AppKey) -> Result<Duration, ControllerError> {
        let Some(head) = self.head(&key.repo, &key.branch) else { return Ok(STEADY_REQUEUE) };
        if !self.acts_for(key) {
            // another replica holds the app's shard (HA); taking the shard queues it again
            return Ok(STEADY_REQUEUE);
        }
        let span = tracing::info_span!("reconcile", app = %key, commit = %head.commit, phase = tracing::field::Empty);
        self.reconcile_once(key, &head).instrument(span).await
    }

    async fn reconcile_once(self: &Arc<Self>, key: &AppKey, head: &super::HeadState) -> Result<Duration, ControllerError> {
        let intent = head.intents.get(&key.prefix);
        let loaded = head.snapshot.apps.get(&key.prefix);
        let app = loaded.and_then(|r| r.as_ref().ok());
        let desired = match (intent.map(|e| e.intent), loaded) {
            (Some(gitmoxi_deploy::intent::Intent::Error), Some(Err(invalid))) => Desired::Invalid(invalid),
            (intent, _) => Desired::from_intent(intent, app),
        };
        let app_entry = self.store.app(key)?.unwrap_or_else(|| AppEntry::new(key.clone(), AppKind::Ecs));
        let record = self.store.record(key)?;
        tracing::Span::current().record("phase", record.as_ref().map_or("steady", |r| r.phase.name()));
        // the log as read now: a step consumes from what it read, never from what came after
        let pending = self.store.pending_commands(key)?;
        let commands = pending.view();
        // under the rate limits, an app in motion (as its status says) goes before a steady check
        let priority = if self.status_of(&app_entry, Some(head), record.as_ref(), commands.paused).is_in_motion() {
            crate::io::aws::limits::Priority::Deployment
        } else {
            crate::io::aws::limits::Priority::Steady
        };
        let drift_seen = crate::base::sync::lock(&self.drift_seen).get(key).cloned();
        // what would hold a change back (issue 26): read only when nothing is in flight
        let hold = match record.as_ref().filter(|r| r.in_flight()) {
            Some(_) => None,
            None => self.hold_for(key, head, &desired, &commands)?,
        };
        let new_id = self.new_id();
        let unobserved = Observed::default();
        let input = StepInput {
            key,
            commit: &head.commit,
            desired,
            applied: &app_entry.applied,
            record: record.as_ref(),
            observed: &unobserved,
            now_ms: self.clock.now_ms(),
            new_deployment_id: &new_id,
            commands: &commands,
            drift: DriftClock { policy: head.policy.drift, interval: self.settings.drift_interval, last: drift_seen.as_ref() },
            moved: intent.is_some_and(|e| e.intent == Intent::Move),
            refusal: None,
            own_account: self.settings.own_account.as_deref(),
            account_roles: &self.settings.account_roles,
            adopt_untagged: head.policy.adopt_untagged,
            hold: hold.as_ref(),
        };
        let held = strategy::held(&input);
        if held != app_entry.hold.as_ref() {
            self.record_hold(&app_entry, held, &head.commit)?;
        }
        crate::io::aws::limits::PRIORITY
            .scope(priority, async {
                let needs = match strategy::look(&input) {
                    Look::Skip(plan) => {
                        return match self.execute(key, &plan, record.as_ref(), None, &pending).await? {
                            Executed::Done => Ok(plan.requeue_after),
                            Executed::Refused(e) => Err(ControllerError::Aws(e)),
                        }
                    }
                    Look::Observe(needs) => needs,
                };
                let Some(identity) = needs.identity.clone() else { return Ok(STEADY_REQUEUE) };
                let clients = self.clients(&identity);
                let (account, region) = match &identity {
                    Identity::Ecs { account, region, .. } | Identity::Lambda { account, region, .. } => {
                        (account.as_deref(), region.as_str())
                    }
                };
                let observed = match self.aws.reach(account, region).await {
                    Ok(()) => observe(&clients, &identity, &needs).await,
                    Err(e) => Err(e),
                };
                let observed = match observed {
                    Ok(observed) => observed,
                    Err(e) if e.is_transient() => return Err(ControllerError::Aws(e)),
                    Err(e) => {
                        tracing::error!(app = %key, error = %e, "AWS refused an observation");
                        let cause = match (e.operation, account) {
                            ("AssumeRole", Some(account)) => FailureCause::AssumeRoleFailed {
                                account: account.to_string(),
                                code: e.code.clone(),
                                message: e.message.clone(),
                            },
                            _ => cause_of(&e),
                        };
                        let plan = strategy::step(&StepInput { refusal: Some(&cause), ..input });
                        return match self.execute(key, &plan, record.as_ref(), Some(&clients), &pending).await? {
                            Executed::Done => Ok(plan.requeue_after),
                            Executed::Refused(e) => Err(ControllerError::Aws(e)),
                        };
                    }
                };
                let input = StepInput { observed: &observed, ..input };
                let plan = strategy::step(&input);
                match self.execute(key, &plan, record.as_ref(), Some(&clients), &pending).await? {
                    Executed::Done => Ok(plan.requeue_after),
                    Executed::Refused(e) => {
                        // the refusal is a fact of the next step, from the record this plan left
                        let cause = cause_of(&e);
                        let after = plan.in_flight_after(record.as_ref()).cloned();
                        let pending = self.store.pending_commands(key)?;
                        let commands = pending.view();
                        let refused =
                            strategy::step(&StepInput { record: after.as_ref(), commands: &commands, refusal: Some(&cause), ..input });
                        match self.execute(key, &refused, after.as_ref(), Some(&clients), &pending).await? {
                            Executed::Done => Ok(refused.requeue_after),
                            Executed::Refused(again) => Err(ControllerError::Aws(again)),
                        }
                    }
                }
            })
            .await
    }

    /// The clients of the identity's account and region.
    pub(crate) fn clients(&self, identity: &Identity) -> Clients {
        let (account, region) = match identity {
            Identity::Ecs { account, region, .. } | Identity::Lambda { account, region, .. } => (account.as_deref(), region.as_str()),
        };
        Clients {
            service_reads: self.service_reads.clone(),
            scope: format!("{}/{region}", account.unwrap_or("own")),
            ecs: self.aws.ecs(account, region),
            elb: self.aws.elb(account, region),
            alarms: self.aws.alarms(account, region),
            lambda: self.aws.lambda(account, region),
            apigw: self.aws.apigw(account, region),
        }
    }

    /// Persists the plan (records, history, ownership, consumed commands, notes, the drift
    /// look), flushes when it must, then performs its actions in order. A transient AWS error
    /// is an `Err` (backoff); a permanent one is returned for the planner to decide on.
    async fn execute(
        &self,
        key: &AppKey,
        plan: &Plan,
        before: Option<&DeploymentRecord>,
        clients: Option<&Clients>,
        commands_read: &gitmoxi_state::PendingCommands,
    ) -> Result<Executed, ControllerError> {
        for (ended, completion) in plan.endings() {
            self.record_history(before, ended)?;
            self.finish(ended, &completion)?;
        }
        if let Some(next) = plan.next_record.as_ref().filter(|r| r.in_flight()) {
            // the record first: a reader that sees its new history lines (the API, the page)
            // also sees the deployment in flight, never a "redeploying…" line beside a steady app
            self.store.put_record(next)?;
            self.record_history(before, next)?;
            self.notify_progress(before, next);
        }
        if plan.take_ownership {
            let mut entry = self.store.app(key)?.unwrap_or_else(|| AppEntry::new(key.clone(), AppKind::Ecs));
            if !entry.applied.owned {
                entry.applied.owned = true;
                entry.applied.identity = plan.in_flight_after(before).map(|r| r.identity.clone()).or(entry.applied.identity);
                self.store.put_app(&entry)?;
            }
        }
        // what the step used, up to what it read (compacts replaced pause states too)
        self.store.consume_commands(key, &plan.consumed, commands_read)?;
        for note in &plan.notes {
            match note.level {
                Level::Error => tracing::error!(app = %key, "{}", note.message),
                Level::Warn => tracing::warn!(app = %key, "{}", note.message),
                Level::Info => tracing::info!(app = %key, "{}", note.message),
            }
            let event = HistoryEvent {
                at_ms: self.clock.now_ms(),
                level: note.level,
                deployment: None,
                commit: note.commit.clone(),
                message: note.message.clone(),
            };
            self.store.append_history(key, &event)?;
        }
        if let Some(found) = &plan.drift {
            let seen = DriftSeen { at_ms: self.clock.now_ms(), found: found.clone() };
            self.metrics.drift_detected.with_label_values(&[key.prefix.as_str()]).set(i64::from(found.is_some()));
            crate::base::sync::lock(&self.drift_seen).insert(key.clone(), seen);
        }
        if plan.needs_flush() {
            self.flush_store().await?;
        }
        let Some(clients) = clients.filter(|_| !plan.actions.is_empty()) else { return Ok(Executed::Done) };
        let unsaved = |c: &Self| !c.store.is_durable(key) || (c.ha().is_some() && c.store.has_pending_change(key));
        if unsaved(self) {
            // written again while the flush ran (e.g. the head's intent by the heads owner):
            // one more flush, then act only if that one covered it
            self.flush_store().await?;
        }
        if !self.store.is_durable(key) {
            return Err(ControllerError::NotDurable(key.clone()));
        }
        if let Some(ha) = self.ha() {
            ha.may_act(&self.store, key)?;
        }
        for action in &plan.actions {
            if let Some(ha) = self.ha() {
                // again before each call: a replica paused between two calls (GC, SIGSTOP, a
                // starved host) must not send the second after its lease ran out
                ha.may_act(&self.store, key)?;
            }
            if let Err(e) = perform(clients, action).await {
                if e.is_transient() {
                    return Err(ControllerError::Aws(e));
                }
                tracing::error!(app = %key, error = %e, "AWS refused {}", action.operation());
                return Ok(Executed::Refused(e));
            }
        }
        Ok(Executed::Done)
    }

    /// Keeps why the app's change waits (its entry, the worker's) and notes a new hold once.
    fn record_hold(&self, entry: &AppEntry, held: Option<&gitmoxi_deploy::release::Hold>, commit: &str) -> Result<(), ControllerError> {
        let mut next = entry.clone();
        next.hold = held.cloned();
        next.updated_at_ms = self.clock.now_ms();
        self.store.put_app(&next)?;
        if let Some(hold) = held {
            let message = hold.describe(&entry.key.prefix);
            let level = match hold {
                gitmoxi_deploy::release::Hold::Waiting { .. } | gitmoxi_deploy::release::Hold::WaitingForDependents { .. } => Level::Info,
                gitmoxi_deploy::release::Hold::Blocked { .. } | gitmoxi_deploy::release::Hold::Frozen { .. } => Level::Warn,
            };
            tracing::info!(app = %entry.key, "{message}");
            let stage = match hold {
                gitmoxi_deploy::release::Hold::Blocked { .. } => Some("blocked"),
                gitmoxi_deploy::release::Hold::Frozen { .. } => Some("frozen"),
                gitmoxi_deploy::release::Hold::Waiting { .. } | gitmoxi_deploy::release::Hold::WaitingForDependents { .. } => None,
            };
            if let Some(stage) = stage {
                // the people who pushed it hear why it did not start (Slack, webhooks, the commit's status)
                self.notify(crate::integrations::notify::Event::of_app(stage, &entry.key, commit, message.clone()));
            }
            let event = HistoryEvent { at_ms: self.clock.now_ms(), level, deployment: None, commit: Some(commit.to_string()), message };
            self.store.append_history(&entry.key, &event)?;
        }
        Ok(())
    }

    fn finish(&self, record: &DeploymentRecord, completion: &Completion) -> Result<(), ControllerError> {
        self.store.finish(record, completion)?;
        // the apps that waited on this one look again now (issue 26)
        self.wake_waiting_on(&record.app);
        // compare with AWS again right after every deployment
        crate::base::sync::lock(&self.drift_seen).remove(&record.app);
        if let Some(outcome) = record.outcome {
            let message = record.timeline.last().map(|e| e.message.clone()).unwrap_or_default();
            self.notify(crate::integrations::notify::Event::of_record(record, outcome.as_str(), message));
            self.metrics.deployments_total.with_label_values(&[record.kind.as_str(), record.strategy.as_str(), outcome.as_str()]).inc();
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
                self.notify(crate::integrations::notify::Event::of_record(next, "started", message));
            }
            Some(b) if b.awaiting_approval.is_none() && next.awaiting_approval.is_some() => {
                let message = next.timeline.last().map(|e| e.message.clone()).unwrap_or_default();
                self.notify(crate::integrations::notify::Event::of_record(next, "waiting_for_approval", message));
            }
            Some(b) if b.approvals.len() < next.approvals.len() => {
                if let Some(given) = next.approvals.last() {
                    let answer = &given.answer;
                    let stage = if answer.approve { "approved" } else { "rejected" };
                    self.notify(crate::integrations::notify::Event::of_record(next, stage, format!("{answer} at {}", given.gate)));
                }
            }
            Some(b) if b.traffic != next.traffic => {
                if let Some(w) = next.traffic {
                    self.notify(crate::integrations::notify::Event::of_record(
                        next,
                        "traffic",
                        format!("traffic: {} % old / {} % new", w.blue, w.green),
                    ));
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
    /// Steady-state DescribeServices batched across apps of the same (account, region).
    pub service_reads: Arc<crate::io::aws::batch::ServiceReads>,
    /// "account/region" of these clients (the batches' key).
    pub scope: String,
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
    let described = clients.service_reads.describe(&clients.ecs, &clients.scope, cluster, service).await?;
    let ecs = clients.ecs.as_ref();
    let registered = match &needs.registered_for {
        Some((family, id)) => ecs.find_task_definition(family, id).await?,
        None => None,
    };
    let exists = described.as_ref().is_some_and(|s| s.status != ServiceStatus::Inactive);
    let mut tasks = if needs.tasks && exists { ecs.service_tasks(cluster, service).await? } else { Vec::new() };
    // Task sets exist only under the EXTERNAL controller (DescribeTaskSets refuses other services).
    let external = described.as_ref().is_some_and(|s| s.deployment_controller == Some(DeploymentControllerType::External));
    let task_sets = if needs.task_sets && exists && external { ecs.describe_task_sets(cluster, service).await? } else { Vec::new() };
    if let Some(prefix) = &needs.side_tasks {
        for set in task_sets.iter().filter(|t| t.external_id.starts_with(prefix.as_str())) {
            tasks.extend(ecs.tasks_started_by(cluster, &set.id).await?);
        }
    }
    let elb = if needs.target_groups.is_empty() { None } else { Some(clients.elb.observe(&needs.target_groups, needs.elb_reads).await?) };
    let alarms = if needs.alarms.is_empty() { Vec::new() } else { clients.alarms.describe(&needs.alarms).await? };
    let resolved = match &needs.resolve_task_definition {
        Some(name) => ecs.resolve_task_definition(name).await?,
        None => None,
    };
    let native_deployment = match needs.native_deployment_since_ms {
        Some(since) if exists && !external => ecs.newest_service_deployment(cluster, service, since).await?,
        Some(_) | None => None,
    };
    let mut running_definition_tags = None;
    if needs.adoption && exists {
        let running = if external {
            let sets = if task_sets.is_empty() { ecs.describe_task_sets(cluster, service).await? } else { task_sets.clone() };
            sets.into_iter().find(|t| t.status == gitmoxi_deploy::observed::TaskSetStatus::Primary).map(|t| t.task_definition)
        } else {
            described.as_ref().and_then(|s| s.task_definition.clone())
        };
        if let Some(arn) = running {
            running_definition_tags = Some(ecs.task_definition_tags(&arn).await?);
        }
    }
    let metrics = match &needs.metrics {
        Some(request) => Some(clients.alarms.metric_data(request).await?),
        None => None,
    };
    let (hook_tasks, invocation, hook_logs) = observe_hook(clients, needs).await?;
    Ok(Observed {
        hook_tasks,
        invocation,
        hook_logs,
        service: described,
        registered_task_definition: registered,
        resolved_task_definition: resolved,
        running_definition_tags,
        tasks,
        task_sets,
        elb,
        alarms,
        native_deployment,
        metrics,
        ..Observed::default()
    })
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
                observed.wiring_observed = true;
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
    let metrics = match &needs.metrics {
        Some(request) => Some(clients.alarms.metric_data(request).await?),
        None => None,
    };
    let (hook_tasks, invocation, hook_logs) = observe_hook(clients, needs).await?;
    Ok(Observed { lambda: observed, alarms, metrics, hook_tasks, invocation, hook_logs, ..Observed::default() })
}

/// What the observer saw of a running hook: its tasks, its invocation's answer, where it logs.
type ObservedHook = (
    Vec<gitmoxi_deploy::observed::ObservedTask>,
    Option<gitmoxi_deploy::observed::ObservedInvocation>,
    Vec<gitmoxi_deploy::observed::ObservedTaskLogs>,
);

/// A running hook (issue 25): its task's state, or the Lambda hook's invocation (made here: the
/// record says the hook runs and holds no answer yet).
async fn observe_hook(clients: &Clients, needs: &strategy::ObserveNeeds) -> Result<ObservedHook, AwsError> {
    let tasks = match &needs.hook_tasks {
        Some((cluster, started_by)) => clients.ecs.tasks_started_by(cluster, started_by).await?,
        None => Vec::new(),
    };
    // where its containers log, once it stopped (the line of its verdict names the streams)
    let stopped = tasks.iter().any(|t| t.last_status == gitmoxi_deploy::observed::TaskStatus::Stopped);
    let logs = match &needs.hook_task_definition {
        Some(td) if stopped => clients.ecs.task_logs(td).await?,
        Some(_) | None => Vec::new(),
    };
    let invocation = match &needs.invoke {
        Some(i) => Some(clients.lambda.invoke(&i.function, &i.payload, std::time::Duration::from_secs(i.timeout_secs)).await?),
        None => None,
    };
    Ok((tasks, invocation, logs))
}

/// Performs one action.
async fn perform(clients: &Clients, action: &Action) -> Result<(), AwsError> {
    let ecs = clients.ecs.as_ref();
    match action {
        Action::EcsRegisterTaskDefinition { body } => ecs.register_task_definition(body).await.map(|arn| {
            tracing::info!(task_definition = %arn, "registered task definition");
        }),
        Action::EcsRunTask { body } => ecs.run_task(body).await,
        Action::EcsCreateService { body } => ecs.create_service(body).await.map(|arn| {
            tracing::info!(service = %arn, "created service");
        }),
        Action::EcsUpdateService { body } => ecs.update_service(body).await,
        Action::EcsDeleteService { cluster, service } => ecs.delete_service(cluster, service).await,
        // a replay: ECS answers ConflictException for a deployment already stopping or ended
        Action::EcsStopServiceDeployment { arn } => match ecs.stop_service_deployment(arn).await {
            Err(e) if e.code == "ConflictException" => Ok(()),
            other => other,
        },
        Action::EcsContinueServiceDeployment { arn, hook_id, rollback } => ecs.continue_service_deployment(arn, hook_id, *rollback).await,
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
        Action::ElbDeregisterLambda { target_group, target } => clients.elb.deregister_target(target_group, target).await,
        Action::ApiDeleteIntegration { api_id, integration_id } => clients.apigw.delete_integration(api_id, integration_id).await,
        Action::ApiCreateIntegration { api_id, uri } => clients.apigw.create_integration(api_id, uri).await,
        Action::ApiSetRouteTarget { api_id, route_id, target } => clients.apigw.set_route_target(api_id, route_id, target).await,
    }
}
