//! Notifications (SPEC §6.3): deployment events to a Slack incoming webhook (Block Kit), to a
//! generic HTTP webhook (the event as JSON), to the depdef's `webhooks` (its `payload_template`
//! with `{message}` and `{stage}` filled in) and, as commit statuses, to the forge
//! ([`crate::integrations::forge`]).
//!
//! Must never block or fail a deployment, and one dead receiver must delay nobody else (issue
//! 27):
//! - [`Notifier::send`] only queues (`try_send`); a full queue refuses the event, counted as
//!   `gitmoxi_notifications_total{sink="queue",result="dropped"}` and logged.
//! - The [`Worker`] turns each event into deliveries and hands each to the queue of its
//!   destination (a *lane*): Slack, the generic webhook, the commit statuses of each repository,
//!   the depdef webhooks of each host. Every lane has its own task, so a receiver that never
//!   answers holds only its own lane; within a lane the order is kept (a commit's `pending`
//!   goes before its `success`). A full lane refuses, never waits: counted as
//!   `{sink=…,result="dropped"}` and logged (the first refusal and every 100th).
//! - A delivery has a timeout and a bounded number of attempts; while a lane's last delivery
//!   failed, the next ones get one attempt each until one gets through, so a dead receiver's
//!   backlog drains three times faster.
//! - A lane idle for 5 minutes ends; depdef webhook hosts get at most 64 lanes at once (more are
//!   refused, counted and logged).
//! - At shutdown, what is still queued is counted as dropped and logged.
//!
//! URLs are never logged (they often carry secrets); lanes are named by host.

use backon::{ExponentialBuilder, Retryable};
use gitmoxi_deploy::record::DeploymentRecord;
use gitmoxi_deploy::schedule::Weights;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How many events may wait for the worker (it only sorts them into lanes: it keeps up).
const QUEUE: usize = 1024;
/// How many deliveries may wait for one destination.
const LANE_QUEUE: usize = 256;
/// Attempts per delivery (one while the lane's last delivery failed).
const ATTEMPTS: usize = 3;
/// A lane with nothing to do for this long ends (a new one starts with the next delivery).
const LANE_IDLE: Duration = Duration::from_secs(300);
/// At most this many depdef webhook hosts are served at once.
const MAX_HOST_LANES: usize = 64;
/// A full lane's refusals are logged at the first and then every this many.
const REFUSALS_LOGGED_EVERY: u64 = 100;

/// One deployment event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// started, traffic, succeeded, rolled_back, failed, superseded, deleted, held.
    pub stage: String,
    pub app: String,
    pub repo: String,
    pub branch: String,
    pub commit: String,
    pub deployment: Option<String>,
    pub strategy: Option<String>,
    pub phase: Option<String>,
    pub traffic: Option<Weights>,
    pub outcome: Option<String>,
    pub cause: Option<String>,
    /// The metric analysis's last run in a few words (issue 25), when the deployment has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<String>,
    pub message: String,
    /// The depdef's webhooks of the app: (urls, payload template).
    #[serde(skip)]
    pub app_webhooks: Vec<(Vec<String>, Value)>,
    /// The gate the deployment waits at (its Slack message gets Approve / Reject buttons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::integrations::slack::GateRef>,
}

impl Event {
    /// An event about an app that belongs to no deployment (a held delete, a change blocked or
    /// frozen before it started).
    pub fn of_app(stage: &str, app: &gitmoxi_deploy::record::AppKey, commit: &str, message: String) -> Event {
        Event {
            stage: stage.to_string(),
            app: app.prefix.clone(),
            repo: app.repo.clone(),
            branch: app.branch.clone(),
            commit: commit.to_string(),
            deployment: None,
            strategy: None,
            phase: None,
            traffic: None,
            outcome: None,
            cause: None,
            analysis: None,
            message,
            app_webhooks: Vec::new(),
            gate: None,
        }
    }

    /// The event of a record that started, moved traffic or ended.
    pub fn of_record(record: &DeploymentRecord, stage: &str, message: String) -> Event {
        let webhooks = match (&record.desired, &record.desired_lambda) {
            (Some(ecs), _) => ecs.depdef.webhooks.as_slice(),
            (None, Some(lambda)) => lambda.depdef.webhooks.as_slice(),
            (None, None) => &[],
        };
        let app_webhooks = webhooks.iter().map(|w| (w.urls.clone(), w.payload_template.clone())).collect();
        Event {
            stage: stage.to_string(),
            app: record.app.prefix.clone(),
            repo: record.app.repo.clone(),
            branch: record.app.branch.clone(),
            commit: record.commit.clone(),
            deployment: Some(record.id.clone()),
            strategy: Some(record.strategy.as_str().to_string()),
            phase: Some(record.phase.name().to_string()),
            traffic: record.traffic,
            outcome: record.outcome.map(|o| o.as_str().to_string()),
            cause: record.cause.as_ref().map(ToString::to_string),
            analysis: record.analysis.as_ref().and_then(|a| a.runs.last()).map(|run| {
                let worst =
                    run.checks.iter().find(|c| c.verdict != gitmoxi_deploy::analysis::verdict::Verdict::Pass).or(run.checks.first());
                format!("{}: {}{}", run.step, run.verdict, worst.map(|c| format!(" — {}", c.message)).unwrap_or_default())
            }),
            message,
            app_webhooks,
            gate: record.awaiting_approval.as_ref().map(|a| crate::integrations::slack::GateRef {
                repo: record.app.repo.clone(),
                branch: record.app.branch.clone(),
                app: record.app.prefix.clone(),
                deployment: record.id.clone(),
                gate: a.gate.clone(),
            }),
        }
    }
}

/// Where events go.
#[derive(Clone, Default)]
pub struct Sinks {
    pub slack_webhook_url: Option<String>,
    pub webhook_url: Option<String>,
    /// Commit statuses per repository name, with the credentials their tokens are read with.
    pub statuses: std::collections::BTreeMap<String, crate::integrations::forge::ForgeTarget>,
    pub credentials: Option<std::sync::Arc<crate::io::credentials::Credentials>>,
    /// Where statuses link to.
    pub public_url: Option<String>,
    /// Slack's interactive callback is configured: gate messages get Approve / Reject buttons.
    pub slack_buttons: bool,
    /// What a depdef's `webhooks` (a committer's URLs) may reach ([`crate::io::outbound`]).
    pub outbound: crate::io::outbound::OutboundPolicy,
}

/// The sending side; cheap to clone. A disabled notifier drops everything silently.
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Event>>,
    dropped: Option<prometheus::IntCounter>,
}

impl Notifier {
    pub fn disabled() -> Notifier {
        Notifier { tx: None, dropped: None }
    }

    /// Queues an event without waiting; a full queue drops it (and counts and logs it).
    pub fn send(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        if let Err(refused) = tx.try_send(event) {
            if let Some(c) = &self.dropped {
                c.inc();
            }
            let (why, event) = match refused {
                mpsc::error::TrySendError::Full(e) => ("full", e),
                mpsc::error::TrySendError::Closed(e) => ("closed", e),
            };
            tracing::warn!(queue = why, app = %event.app, stage = %event.stage, "notification queue {why}: the event was dropped");
        }
    }
}

/// What one delivery does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Job {
    /// JSON POSTed to a URL of the operator's configuration (Slack, the generic webhook).
    Post { url: String, body: Value },
    /// JSON POSTed to a committer's URL (a depdef's `webhooks`), through the outbound policy.
    Committer { url: String, body: Value },
    /// A commit status.
    Status { target: crate::integrations::forge::ForgeTarget, status: crate::integrations::forge::CommitStatus },
}

/// One message for one destination.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Delivery {
    /// The destination's queue: `slack`, `webhook`, `commit_status:<repository>`,
    /// `app_webhook:<host>:<port>` (never a whole URL: it may hold a secret).
    pub lane: String,
    /// The `sink` label of `gitmoxi_notifications_total`.
    pub sink: &'static str,
    pub app: String,
    pub stage: String,
    pub job: Job,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    Failed(String),
    /// Not sent: a committer's URL the outbound policy refuses (final, not retried).
    Refused(String),
}

/// A delivery under way.
pub(crate) type Delivering<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// Sends one delivery, with at most `attempts` attempts (HTTP in the server; stubs in tests).
pub(crate) trait Deliver: Send + Sync + 'static {
    fn deliver<'a>(&'a self, delivery: &'a Delivery, attempts: usize) -> Delivering<'a>;
}

/// Delivery over HTTP, each attempt bounded in time.
struct HttpDeliver {
    client: reqwest::Client,
    outbound: crate::io::outbound::OutboundPolicy,
    credentials: Option<Arc<crate::io::credentials::Credentials>>,
}

fn backoff(attempts: usize) -> ExponentialBuilder {
    ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(attempts.saturating_sub(1))
}

impl Deliver for HttpDeliver {
    fn deliver<'a>(&'a self, delivery: &'a Delivery, attempts: usize) -> Delivering<'a> {
        Box::pin(async move {
            let result = match &delivery.job {
                Job::Post { url, body } => self.post(url, body, attempts).await,
                // a committer's URL: checked, pinned, no redirect (issue 27); a refusal is final
                Job::Committer { url, body } => {
                    if let Err(why) = self.outbound.check(url).await {
                        return Outcome::Refused(why);
                    }
                    let attempt = || self.outbound.post_json(url, body);
                    attempt.retry(backoff(attempts)).await
                }
                Job::Status { target, status } => match &self.credentials {
                    None => Err("no credentials to read the status token with".to_string()),
                    Some(credentials) => match credentials.token(&target.token).await {
                        Ok(token) => {
                            let attempt = || crate::integrations::forge::post(&self.client, target, &token, status);
                            attempt.retry(backoff(attempts)).await
                        }
                        Err(e) => Err(format!("no token for commit statuses: {e}")),
                    },
                },
            };
            match result {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Failed(e),
            }
        })
    }
}

impl HttpDeliver {
    async fn post(&self, url: &str, body: &Value, attempts: usize) -> Result<(), String> {
        let attempt = || async {
            let response = self.client.post(url).json(body).send().await.map_err(|e| format!("unreachable: {}", e.without_url()))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("answered {}", response.status()))
            }
        };
        attempt.retry(backoff(attempts)).await
    }
}

/// The worker that sorts events into their destinations' lanes; the lanes deliver them.
pub struct Worker {
    rx: mpsc::Receiver<Event>,
    sinks: Sinks,
    deliver: Arc<dyn Deliver>,
    results: prometheus::IntCounterVec,
}

/// A notifier and its worker; the worker must be spawned and joined by the caller.
pub fn channel(sinks: Sinks, metrics: &crate::io::metrics::Metrics) -> (Notifier, Worker) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let deliver = Arc::new(HttpDeliver { client, outbound: sinks.outbound.clone(), credentials: sinks.credentials.clone() });
    channel_with(sinks, metrics.notifications_total.clone(), deliver)
}

/// [`channel`] with its own delivery and counters (the tests').
pub(crate) fn channel_with(sinks: Sinks, results: prometheus::IntCounterVec, deliver: Arc<dyn Deliver>) -> (Notifier, Worker) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let dropped = results.with_label_values(&["queue", "dropped"]);
    (Notifier { tx: Some(tx), dropped: Some(dropped) }, Worker { rx, sinks, deliver, results })
}

/// Text for a Slack `mrkdwn` object from names a committer chose (app, folder, branch) or from
/// AWS: no link, mention or HTML entity can be formed ([`crate::integrations::slack::escape_mrkdwn`]),
/// at most `max` characters once escaped (Slack refuses the whole message beyond its limits),
/// never cut inside an entity.
fn mrkdwn(text: &str, max: usize) -> String {
    let escaped = crate::integrations::slack::escape_mrkdwn(text);
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = cut.rfind('&') {
        if !cut[amp..].contains(';') {
            cut.truncate(amp);
        }
    }
    cut.push('…');
    cut
}

/// At most `max` characters, an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A `mrkdwn` text object Slack shows as given: no automatic links or mentions.
fn text_object(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text, "verbatim": true})
}

/// The Slack Block Kit message of an event (`buttons`: a gate's message can be answered). Every
/// value is escaped ([`mrkdwn`]); the header is plain text.
pub fn slack_message(e: &Event, buttons: bool) -> Value {
    let emoji = match e.stage.as_str() {
        "succeeded" => ":white_check_mark:",
        "rolled_back" | "failed" => ":rotating_light:",
        "held" => ":warning:",
        "blocked" => ":no_entry:",
        "frozen" => ":snowflake:",
        _ => ":arrows_counterclockwise:",
    };
    // plain text: nothing in it is parsed; Slack's limit for a header is 150 characters
    let title = clip(&format!("{emoji} {} — {}", crate::integrations::slack::neutralize_mentions(&e.app), e.stage.replace('_', " ")), 150);
    let field = |label: &str, value: &str| text_object(format!("*{label}*\n{}", mrkdwn(value, 1900)));
    let mut fields =
        vec![field("App", &format!("{}@{}", e.app, e.branch)), field("Commit", &e.commit.chars().take(10).collect::<String>())];
    if let Some(s) = &e.strategy {
        fields.push(field("Strategy", s));
    }
    if let Some(w) = e.traffic {
        fields.push(field("Traffic", &format!("{} % old / {} % new", w.blue, w.green)));
    }
    if let Some(o) = &e.outcome {
        fields.push(field("Outcome", o));
    }
    if let Some(c) = &e.cause {
        fields.push(field("Cause", c));
    }
    if let Some(a) = &e.analysis {
        fields.push(field("Analysis", a));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title}}),
        json!({"type": "section", "text": text_object(mrkdwn(&e.message, 2900))}),
        json!({"type": "section", "fields": fields}),
    ];
    if let (true, Some(gate), "waiting_for_approval") = (buttons, &e.gate, e.stage.as_str()) {
        blocks.push(crate::integrations::slack::buttons(gate));
    }
    json!({"text": format!("{}: {}", mrkdwn(&e.app, 200), mrkdwn(&e.message, 2000)), "blocks": blocks})
}

/// The depdef template with `{message}` and `{stage}` replaced in every string.
pub fn fill_template(template: &Value, message: &str, stage: &str) -> Value {
    match template {
        Value::String(s) => Value::String(s.replace("{message}", message).replace("{stage}", stage)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_template(v, message, stage)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), fill_template(v, message, stage))).collect()),
        other => other.clone(),
    }
}

/// The lane of a committer's URL: its host and port (`invalid` when it has none; the policy
/// refuses it without a request).
fn host_lane(url: &str) -> String {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?.to_ascii_lowercase(), u.port_or_known_default()?)))
        .unwrap_or_else(|| "invalid".to_string());
    format!("app_webhook:{host}")
}

/// One destination's queue, as the worker sees it.
struct Lane {
    tx: mpsc::Sender<Delivery>,
    /// Deliveries queued or under way: only the worker adds, so 0 means the lane is idle.
    pending: Arc<AtomicUsize>,
    last_used: Instant,
    /// Refused since the lane last accepted one.
    refused: u64,
}

impl Worker {
    /// Sorts events into lanes until shutdown (then what is queued is counted as dropped), or
    /// until every notifier is gone (then the lanes deliver what they hold, and end).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut lanes: HashMap<String, Lane> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut sweep = tokio::time::interval(LANE_IDLE / 5);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = sweep.tick() => close_idle(&mut lanes, Instant::now()),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                event = self.rx.recv() => match event {
                    Some(event) => {
                        for delivery in self.deliveries(&event) {
                            self.enqueue(&mut lanes, &mut tasks, delivery, &shutdown);
                        }
                    }
                    None => break,
                },
            }
        }
        // the lanes' queues close: each ends once it delivered (or, at shutdown, counted) what it holds
        drop(lanes);
        while tasks.join_next().await.is_some() {}
    }

    /// The deliveries of an event, each for its destination's lane.
    fn deliveries(&self, event: &Event) -> Vec<Delivery> {
        let delivery =
            |lane: String, sink: &'static str, job: Job| Delivery { lane, sink, app: event.app.clone(), stage: event.stage.clone(), job };
        let mut out = Vec::new();
        if let Some(target) = self.sinks.statuses.get(&event.repo) {
            if let Some(status) = crate::integrations::forge::status_of(event, self.sinks.public_url.as_deref()) {
                out.push(delivery(
                    format!("commit_status:{}", event.repo),
                    "commit_status",
                    Job::Status { target: target.clone(), status },
                ));
            }
        }
        if let Some(url) = &self.sinks.slack_webhook_url {
            out.push(delivery(
                "slack".into(),
                "slack",
                Job::Post { url: url.clone(), body: slack_message(event, self.sinks.slack_buttons) },
            ));
        }
        if let Some(url) = &self.sinks.webhook_url {
            let body = serde_json::to_value(event).unwrap_or(Value::Null);
            out.push(delivery("webhook".into(), "webhook", Job::Post { url: url.clone(), body }));
        }
        for (urls, template) in &event.app_webhooks {
            for url in urls {
                let body = fill_template(template, &event.message, &event.stage);
                out.push(delivery(host_lane(url), "app_webhook", Job::Committer { url: url.clone(), body }));
            }
        }
        out
    }

    /// Hands a delivery to its lane (started when missing) without waiting; a full lane refuses
    /// it, counted and logged.
    fn enqueue(
        &self,
        lanes: &mut HashMap<String, Lane>,
        tasks: &mut tokio::task::JoinSet<()>,
        mut delivery: Delivery,
        shutdown: &CancellationToken,
    ) {
        // a second round only when a lane's task ended unexpectedly (a new one is started)
        for _ in 0..2 {
            if !lanes.contains_key(&delivery.lane) {
                let hosts = lanes.keys().filter(|k| k.starts_with("app_webhook:")).count();
                if delivery.sink == "app_webhook" && hosts >= MAX_HOST_LANES {
                    self.results.with_label_values(&[delivery.sink, "dropped"]).inc();
                    tracing::warn!(
                        app = %delivery.app,
                        stage = %delivery.stage,
                        lane = %delivery.lane,
                        "depdef webhook dropped: {MAX_HOST_LANES} webhook hosts are served already"
                    );
                    return;
                }
                let (tx, rx) = mpsc::channel(LANE_QUEUE);
                let pending = Arc::new(AtomicUsize::new(0));
                tasks.spawn(run_lane(
                    delivery.lane.clone(),
                    rx,
                    pending.clone(),
                    self.deliver.clone(),
                    self.results.clone(),
                    shutdown.clone(),
                ));
                lanes.insert(delivery.lane.clone(), Lane { tx, pending, last_used: Instant::now(), refused: 0 });
            }
            let Some(lane) = lanes.get_mut(&delivery.lane) else { return };
            lane.last_used = Instant::now();
            lane.pending.fetch_add(1, Ordering::SeqCst);
            match lane.tx.try_send(delivery) {
                Ok(()) => {
                    if lane.refused > 0 {
                        tracing::info!(refused = lane.refused, "a notification queue accepts again after refusing some");
                        lane.refused = 0;
                    }
                    return;
                }
                Err(mpsc::error::TrySendError::Full(refused)) => {
                    lane.pending.fetch_sub(1, Ordering::SeqCst);
                    lane.refused += 1;
                    self.results.with_label_values(&[refused.sink, "dropped"]).inc();
                    if lane.refused == 1 || lane.refused % REFUSALS_LOGGED_EVERY == 0 {
                        tracing::warn!(
                            lane = %refused.lane,
                            app = %refused.app,
                            stage = %refused.stage,
                            refused = lane.refused,
                            "notification dropped: its destination's queue is full ({LANE_QUEUE}; the receiver is slow or down)"
                        );
                    }
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    tracing::warn!(lane = %back.lane, "a notification lane ended unexpectedly; starting it again");
                    lanes.remove(&back.lane);
                    delivery = back;
                }
            }
        }
        self.results.with_label_values(&[delivery.sink, "dropped"]).inc();
        tracing::warn!(lane = %delivery.lane, app = %delivery.app, stage = %delivery.stage, "notification dropped: its lane cannot start");
    }
}

/// Ends the lanes that have nothing queued or under way and were not used for [`LANE_IDLE`].
fn close_idle(lanes: &mut HashMap<String, Lane>, now: Instant) {
    lanes.retain(|_, lane| lane.pending.load(Ordering::SeqCst) > 0 || now.duration_since(lane.last_used) < LANE_IDLE);
}

/// One destination: its deliveries in order, one at a time, until its queue closes (or, at
/// shutdown, counting what is left as dropped).
async fn run_lane(
    name: String,
    mut rx: mpsc::Receiver<Delivery>,
    pending: Arc<AtomicUsize>,
    deliver: Arc<dyn Deliver>,
    results: prometheus::IntCounterVec,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    let mut left = 0u64;
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = rx.recv() => match next {
                Some(d) => d,
                None => return,
            },
        };
        let attempts = if failing { 1 } else { ATTEMPTS };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => {
                results.with_label_values(&[delivery.sink, "dropped"]).inc();
                left += 1;
                break;
            }
            outcome = deliver.deliver(&delivery, attempts) => outcome,
        };
        pending.fetch_sub(1, Ordering::SeqCst);
        let (sink, app, stage) = (delivery.sink, &delivery.app, &delivery.stage);
        match outcome {
            Outcome::Delivered => {
                failing = false;
                results.with_label_values(&[sink, "delivered"]).inc();
            }
            Outcome::Failed(error) => {
                failing = true;
                results.with_label_values(&[sink, "failed"]).inc();
                tracing::warn!(sink, lane = %name, app = %app, stage = %stage, error = %error, "notification not delivered");
            }
            Outcome::Refused(reason) => {
                results.with_label_values(&[sink, "refused"]).inc();
                tracing::warn!(sink, lane = %name, app = %app, reason = %reason, "depdef webhook refused");
            }
        }
    }
    rx.close();
    while let Ok(d) = rx.try_recv() {
        results.with_label_values(&[d.sink, "dropped"]).inc();
        left += 1;
    }
    if left > 0 {
        tracing::warn!(lane = %name, left, "notifications not delivered: the server stops");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(stage: &str) -> Event {
        Event {
            stage: stage.into(),
            app: "prod/web/web".into(),
            repo: "deploys".into(),
            branch: "main".into(),
            commit: "0123456789abcdef".into(),
            deployment: Some("dep-1".into()),
            strategy: Some("blue_green".into()),
            phase: Some("shift".into()),
            traffic: Some(Weights { blue: 60, green: 40 }),
            outcome: None,
            cause: None,
            analysis: None,
            message: "shifting 40 % to green".into(),
            app_webhooks: vec![],
            gate: None,
        }
    }

    #[test]
    fn a_lambda_deployment_carries_its_depdef_webhooks() {
        let tree = gitmoxi_deploy::spec::MemTree::new()
            .with("fn/hello_lambdadef.json", r#"{"FunctionName": "hello", "Runtime": "python3.12", "Handler": "a.h", "Role": "arn:aws:iam::1:role/r", "Code": {"ZipFile": "UEs="}}"#)
            .with(
                "fn/hello_lambdadepdef.json",
                r#"{"alias": "live", "webhooks": [{"name": "team", "urls": ["https://hooks.example/x"], "payload_template": {"text": "{message}"}}]}"#,
            );
        let snapshot = gitmoxi_deploy::spec::load_snapshot(&tree, &gitmoxi_deploy::spec::RenderContext::new("us-east-1".into()));
        let app = snapshot.apps["fn/hello"].clone().expect("valid");
        let gitmoxi_deploy::spec::AppSpec::Lambda(lambda) = app.spec else { panic!("a Lambda app") };
        let record = DeploymentRecord {
            id: "dep-1".into(),
            app: gitmoxi_deploy::record::AppKey { repo: "r".into(), branch: "main".into(), prefix: "fn/hello".into() },
            kind: gitmoxi_deploy::AppKind::Lambda,
            commit: "c".into(),
            fingerprint: "f".into(),
            identity: app.identity.clone(),
            account_id: None,
            operation: gitmoxi_deploy::record::Operation::Deploy,
            strategy: gitmoxi_deploy::record::Strategy::Lambda,
            desired: None,
            desired_lambda: Some(lambda),
            previous_version: None,
            previous_task_definition: None,
            previous_service: None,
            forced: false,
            phase: gitmoxi_deploy::record::Phase::Done,
            status: gitmoxi_deploy::record::DeploymentStatus::Processing,
            outcome: None,
            cause: None,
            evidence: vec![],
            traffic: None,
            task_set_scales: None,
            task_set_arns: None,
            awaiting_approval: None,
            approvals: Vec::new(),
            hooks: Vec::new(),
            analysis: None,
            started_at_ms: 0,
            updated_at_ms: 0,
            finished_at_ms: None,
            timeline: vec![],
        };
        let event = Event::of_record(&record, "started", "deployment started".into());
        assert_eq!(event.app_webhooks, vec![(vec!["https://hooks.example/x".to_string()], serde_json::json!({"text": "{message}"}))]);
    }

    #[test]
    fn slack_messages_are_block_kit_with_the_facts() {
        let m = slack_message(&event("traffic"), true);
        assert_eq!(m["blocks"][0]["type"], "header");
        let text = m.to_string();
        for needle in ["prod/web/web@main", "0123456789", "blue_green", "60 % old / 40 % new", "shifting 40 % to green"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
    }

    #[test]
    fn slack_messages_carry_no_mention_link_or_entity_from_names() {
        let mut e = event("failed");
        e.app = "prod/<!channel>/a&b".into();
        e.branch = "<https://evil.example|click here>".into();
        e.message = "deploy of <!here> failed, @channel".into();
        e.cause = Some("@everyone <@U123> broke it".into());
        e.strategy = Some("<#C1>".into());
        let m = slack_message(&e, false);
        // everything Slack parses: the fallback text, the message, the fields
        let parsed = format!("{} {} {}", m["text"], m["blocks"][1], m["blocks"][2]);
        for bad in ["<!channel>", "<!here>", "<https://", "<@U123>", "<#C1>", "@channel", "@everyone"] {
            assert!(!parsed.contains(bad), "{bad}: {parsed}");
        }
        for shown in ["prod/&lt;!channel&gt;/a&amp;b", "&lt;https://evil.example|click here&gt;", "&lt;@U123&gt;"] {
            assert!(parsed.contains(shown), "{shown}: {parsed}");
        }
        assert_eq!(m["blocks"][1]["text"]["verbatim"], true, "no automatic links or mentions");
        assert_eq!(m["blocks"][2]["fields"][0]["verbatim"], true);
        // the header is plain text (not parsed), its mentions broken all the same
        assert!(!m["blocks"][0].to_string().contains("@channel"));
    }

    #[test]
    fn slack_messages_stay_within_slacks_limits() {
        let mut e = event("failed");
        e.app = "a".repeat(400);
        e.message = "m".repeat(10_000);
        e.cause = Some("c".repeat(10_000));
        e.commit = "é".repeat(20);
        let m = slack_message(&e, false);
        assert!(m["blocks"][0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
        assert!(m["blocks"][1]["text"]["text"].as_str().unwrap().chars().count() <= 3000);
        for field in m["blocks"][2]["fields"].as_array().unwrap() {
            assert!(field["text"].as_str().unwrap().chars().count() <= 2000);
        }
        assert!(m["text"].as_str().unwrap().chars().count() <= 3000);
        let escaped = mrkdwn(&"<".repeat(5000), 100);
        assert!(escaped.chars().count() <= 100 && escaped.ends_with("&lt;…"), "escaped, then cut between entities: {escaped}");
    }

    /// Destinations: those of `dead` lanes never answer; the others record what they got.
    #[derive(Default)]
    struct Stub {
        dead: Vec<String>,
        got: std::sync::Mutex<Vec<(String, String)>>,
    }

    impl Deliver for Stub {
        fn deliver<'a>(&'a self, delivery: &'a Delivery, _attempts: usize) -> Delivering<'a> {
            Box::pin(async move {
                if self.dead.contains(&delivery.lane) {
                    std::future::pending::<()>().await;
                }
                self.got.lock().unwrap().push((delivery.lane.clone(), delivery.stage.clone()));
                Outcome::Delivered
            })
        }
    }

    impl Stub {
        fn got(&self) -> Vec<(String, String)> {
            self.got.lock().unwrap().clone()
        }

        /// Waits (on the test clock) until `done` holds for what was delivered.
        async fn until(&self, done: impl Fn(&[(String, String)]) -> bool) -> bool {
            for _ in 0..1000 {
                if done(&self.got()) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    }

    fn counters() -> prometheus::IntCounterVec {
        prometheus::IntCounterVec::new(prometheus::Opts::new("notifications", "test"), &["sink", "result"]).unwrap()
    }

    fn count(results: &prometheus::IntCounterVec, sink: &str, result: &str) -> u64 {
        results.with_label_values(&[sink, result]).get()
    }

    fn every_sink() -> Sinks {
        let target = crate::integrations::forge::ForgeTarget {
            forge: crate::integrations::forge::Forge::GitHub,
            api_url: "https://api.github.com".into(),
            project: "acme/deploys".into(),
            token: crate::io::credentials::TokenSource::Env("T".into()),
        };
        Sinks {
            slack_webhook_url: Some("https://hooks.slack.com/services/x".into()),
            webhook_url: Some("https://hooks.example/generic".into()),
            statuses: [("deploys".to_string(), target)].into_iter().collect(),
            ..Sinks::default()
        }
    }

    /// An event of a 40-character commit (it gets a status) with a depdef webhook to `url`.
    fn hooked(stage: &str, url: &str) -> Event {
        let mut e = event(stage);
        e.commit = "a".repeat(40);
        e.app_webhooks = vec![(vec![url.to_string()], json!({"text": "{message}"}))];
        e
    }

    fn lane_of<'a>(got: &'a [(String, String)], lane: &str) -> Vec<&'a str> {
        got.iter().filter(|(l, _)| l == lane).map(|(_, stage)| stage.as_str()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_receiver_that_never_answers_delays_no_other_destination() {
        let stub = Arc::new(Stub { dead: vec!["app_webhook:dead.example:443".into()], ..Stub::default() });
        let results = counters();
        let (notifier, worker) = channel_with(every_sink(), results.clone(), stub.clone());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(worker.run(shutdown.clone()));
        for stage in ["started", "traffic", "succeeded"] {
            notifier.send(hooked(stage, "https://dead.example/hook?secret=1"));
            notifier.send(hooked(stage, "https://alive.example/hook"));
        }
        // per event: its status, Slack, the webhook, and its depdef webhook unless that one is dead
        assert!(stub.until(|got| got.len() == 3 * (4 + 3)).await, "{:?}", stub.got());
        let got = stub.got();
        assert_eq!(lane_of(&got, "commit_status:deploys"), ["started", "started", "traffic", "traffic", "succeeded", "succeeded"]);
        assert_eq!(lane_of(&got, "slack").len(), 6);
        assert_eq!(lane_of(&got, "webhook").len(), 6);
        assert_eq!(lane_of(&got, "app_webhook:alive.example:443"), ["started", "traffic", "succeeded"]);
        assert!(lane_of(&got, "app_webhook:dead.example:443").is_empty());
        assert_eq!(count(&results, "commit_status", "delivered"), 6);
        // at shutdown the dead host's three (one under way, two queued) are counted, not lost
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(count(&results, "app_webhook", "dropped"), 3);
        assert_eq!(count(&results, "app_webhook", "delivered"), 3);
        assert_eq!(count(&results, "queue", "dropped"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_lane_refuses_and_counts_without_waiting() {
        let stub = Arc::new(Stub { dead: vec!["slack".into()], ..Stub::default() });
        let results = counters();
        let sinks = Sinks { statuses: Default::default(), ..every_sink() };
        let (notifier, worker) = channel_with(sinks, results.clone(), stub.clone());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(worker.run(shutdown.clone()));
        let total = LANE_QUEUE + 20;
        for i in 0..total {
            notifier.send(event(&format!("s{i}")));
            if i % 10 == 0 {
                // lets the worker and the lanes take what is queued (send itself never waits)
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(stub.until(|got| lane_of(got, "webhook").len() == total).await, "the webhook got every event in time");
        let webhook: Vec<String> = stub.got().into_iter().map(|(_, stage)| stage).collect();
        assert_eq!(webhook, (0..total).map(|i| format!("s{i}")).collect::<Vec<_>>(), "in order");
        // Slack: one under way forever, LANE_QUEUE waiting, the rest refused and counted
        assert_eq!(count(&results, "slack", "dropped"), (total - LANE_QUEUE - 1) as u64);
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(count(&results, "slack", "dropped"), total as u64, "what was still queued is counted at shutdown");
        assert_eq!(count(&results, "slack", "delivered"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_lanes_end_and_start_again_with_the_next_event() {
        let stub = Arc::new(Stub::default());
        let results = counters();
        let sinks = Sinks { slack_webhook_url: Some("https://hooks.slack.com/services/x".into()), ..Sinks::default() };
        let (notifier, worker) = channel_with(sinks, results.clone(), stub.clone());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(worker.run(shutdown.clone()));
        notifier.send(event("started"));
        assert!(stub.until(|got| got.len() == 1).await);
        tokio::time::sleep(LANE_IDLE * 2).await;
        notifier.send(event("succeeded"));
        assert!(stub.until(|got| got.len() == 2).await);
        assert_eq!(lane_of(&stub.got(), "slack"), ["started", "succeeded"]);
        // every notifier gone: the worker ends once the lanes delivered what they hold
        drop(notifier);
        running.await.unwrap();
        assert_eq!(count(&results, "slack", "delivered"), 2);
        drop(shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn only_lanes_idle_with_nothing_pending_are_closed() {
        let lane = |pending: usize, last_used: Instant| {
            let (tx, _rx) = mpsc::channel(1);
            Lane { tx, pending: Arc::new(AtomicUsize::new(pending)), last_used, refused: 0 }
        };
        let then = Instant::now();
        tokio::time::advance(LANE_IDLE * 2).await;
        let now = Instant::now();
        let mut lanes =
            HashMap::from([("old".to_string(), lane(0, then)), ("busy".to_string(), lane(1, then)), ("recent".to_string(), lane(0, now))]);
        close_idle(&mut lanes, now);
        let mut left: Vec<&str> = lanes.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, ["busy", "recent"]);
    }

    #[test]
    fn depdef_webhooks_queue_by_host_never_by_url() {
        assert_eq!(host_lane("https://Hooks.Example/x?token=secret"), "app_webhook:hooks.example:443");
        assert_eq!(host_lane("http://hooks.example:8080/x"), "app_webhook:hooks.example:8080");
        assert_eq!(host_lane("not a url"), "app_webhook:invalid");
    }

    #[test]
    fn templates_get_the_message_and_the_stage_everywhere() {
        let t = json!({"text": "[{stage}] {message}", "nested": [{"s": "{stage}"}], "n": 1});
        assert_eq!(
            fill_template(&t, "rolled back", "rolled_back"),
            json!({"text": "[rolled_back] rolled back", "nested": [{"s": "rolled_back"}], "n": 1})
        );
    }
}
