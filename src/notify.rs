//! Notifications (SPEC §6.3): deployment events to a Slack incoming webhook (Block Kit), to a
//! generic HTTP webhook (the event as JSON) and to the depdef's `webhooks` (its
//! `payload_template` with `{message}` and `{stage}` filled in).
//!
//! Must never block or fail a deployment: events go through a bounded queue (`try_send`; a full
//! queue drops and counts), one worker posts them with a timeout and a bounded number of retries,
//! and every failure is logged and counted. URLs are never logged (they often carry secrets).
//! The same worker posts commit statuses to the forge ([`crate::forge`]), in event order.

use backon::{ExponentialBuilder, Retryable};
use gitmoxi_deploy::record::DeploymentRecord;
use gitmoxi_deploy::schedule::Weights;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many events may wait for the worker.
const QUEUE: usize = 1024;
/// Attempts per delivery.
const ATTEMPTS: usize = 3;

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
    pub message: String,
    /// The depdef's webhooks of the app: (urls, payload template).
    #[serde(skip)]
    pub app_webhooks: Vec<(Vec<String>, Value)>,
    /// The gate the deployment waits at (its Slack message gets Approve / Reject buttons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<crate::http::slack::GateRef>,
}

impl Event {
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
            message,
            app_webhooks,
            gate: record.awaiting_approval.as_ref().map(|a| crate::http::slack::GateRef {
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
    pub statuses: std::collections::BTreeMap<String, crate::forge::ForgeTarget>,
    pub credentials: Option<std::sync::Arc<crate::credentials::Credentials>>,
    /// Where statuses link to.
    pub public_url: Option<String>,
    /// Slack's interactive callback is configured: gate messages get Approve / Reject buttons.
    pub slack_buttons: bool,
    /// What a depdef's `webhooks` (a committer's URLs) may reach ([`crate::outbound`]).
    pub outbound: crate::outbound::OutboundPolicy,
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

    /// Queues an event without waiting; a full queue drops it (and counts it).
    pub fn send(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(event).is_err() {
            if let Some(c) = &self.dropped {
                c.inc();
            }
            tracing::warn!("notification queue full or closed: an event was dropped");
        }
    }
}

/// The worker that delivers events.
pub struct Worker {
    rx: mpsc::Receiver<Event>,
    sinks: Sinks,
    client: reqwest::Client,
    results: prometheus::IntCounterVec,
}

/// A notifier and its worker; the worker must be spawned and joined by the caller.
pub fn channel(sinks: Sinks, metrics: &crate::metrics::Metrics) -> (Notifier, Worker) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let dropped = metrics.notifications_total.with_label_values(&["queue", "dropped"]);
    (Notifier { tx: Some(tx), dropped: Some(dropped) }, Worker { rx, sinks, client, results: metrics.notifications_total.clone() })
}

/// The Slack Block Kit message of an event (`buttons`: a gate's message can be answered).
pub fn slack_message(e: &Event, buttons: bool) -> Value {
    let emoji = match e.stage.as_str() {
        "succeeded" => ":white_check_mark:",
        "rolled_back" | "failed" => ":rotating_light:",
        "held" => ":warning:",
        _ => ":arrows_counterclockwise:",
    };
    let title = format!("{emoji} {} — {}", e.app, e.stage.replace('_', " "));
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*App*\n{}@{}", e.app, e.branch)}),
        json!({"type": "mrkdwn", "text": format!("*Commit*\n{}", &e.commit[..e.commit.len().min(10)])}),
    ];
    if let Some(s) = &e.strategy {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Strategy*\n{s}")}));
    }
    if let Some(w) = e.traffic {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Traffic*\n{} % old / {} % new", w.blue, w.green)}));
    }
    if let Some(o) = &e.outcome {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Outcome*\n{o}")}));
    }
    if let Some(c) = &e.cause {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Cause*\n{c}")}));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": e.message}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let (true, Some(gate), "waiting_for_approval") = (buttons, &e.gate, e.stage.as_str()) {
        blocks.push(crate::http::slack::buttons(gate));
    }
    json!({"text": format!("{}: {}", e.app, e.message), "blocks": blocks})
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

impl Worker {
    /// Delivers events until shutdown (what is queued then is dropped).
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                e = self.rx.recv() => match e { Some(e) => e, None => break },
            };
            let mut deliveries: Vec<(&'static str, String, Value)> = Vec::new();
            if let Some(url) = &self.sinks.slack_webhook_url {
                deliveries.push(("slack", url.clone(), slack_message(&event, self.sinks.slack_buttons)));
            }
            if let Some(url) = &self.sinks.webhook_url {
                deliveries.push(("webhook", url.clone(), serde_json::to_value(&event).unwrap_or(Value::Null)));
            }
            for (urls, template) in &event.app_webhooks {
                for url in urls {
                    deliveries.push(("app_webhook", url.clone(), fill_template(template, &event.message, &event.stage)));
                }
            }
            self.post_status(&event).await;
            for (sink, url, body) in deliveries {
                let result = match sink {
                    // a committer's URL: checked, pinned, no redirect (issue 27); a refusal is final
                    "app_webhook" => match self.sinks.outbound.check(&url).await {
                        Ok(_) => self.post_committer(&url, &body).await,
                        Err(why) => {
                            self.results.with_label_values(&[sink, "refused"]).inc();
                            tracing::warn!(sink, app = %event.app, reason = %why, "depdef webhook refused");
                            continue;
                        }
                    },
                    _ => self.post(&url, &body).await,
                };
                let label = if result.is_ok() { "delivered" } else { "failed" };
                self.results.with_label_values(&[sink, label]).inc();
                if let Err(e) = result {
                    tracing::warn!(sink, app = %event.app, stage = %event.stage, error = %e, "notification not delivered");
                }
            }
        }
    }

    /// The commit status of an event, when its repository reports them (never blocking: bounded
    /// attempts, failures logged and counted).
    async fn post_status(&self, event: &Event) {
        let (Some(target), Some(credentials)) = (self.sinks.statuses.get(&event.repo), &self.sinks.credentials) else { return };
        let Some(status) = crate::forge::status_of(event, self.sinks.public_url.as_deref()) else { return };
        let result = match credentials.token(&target.token).await {
            Ok(token) => {
                let attempt = || crate::forge::post(&self.client, target, &token, &status);
                attempt.retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(ATTEMPTS - 1)).await
            }
            Err(e) => Err(format!("no token for commit statuses: {e}")),
        };
        let label = if result.is_ok() { "delivered" } else { "failed" };
        self.results.with_label_values(&["commit_status", label]).inc();
        if let Err(e) = result {
            tracing::warn!(app = %event.app, stage = %event.stage, error = %e, "commit status not posted");
        }
    }

    /// A committer's webhook, through [`crate::outbound::OutboundPolicy::post_json`], retried a
    /// bounded number of times.
    async fn post_committer(&self, url: &str, body: &Value) -> Result<(), String> {
        let attempt = || self.sinks.outbound.post_json(url, body);
        attempt.retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(ATTEMPTS - 1)).await
    }

    async fn post(&self, url: &str, body: &Value) -> Result<(), String> {
        let attempt = || async {
            let response = self.client.post(url).json(body).send().await.map_err(|e| format!("unreachable: {}", e.without_url()))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("answered {}", response.status()))
            }
        };
        attempt.retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(ATTEMPTS - 1)).await
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
    fn templates_get_the_message_and_the_stage_everywhere() {
        let t = json!({"text": "[{stage}] {message}", "nested": [{"s": "{stage}"}], "n": 1});
        assert_eq!(
            fill_template(&t, "rolled back", "rolled_back"),
            json!({"text": "[rolled_back] rolled back", "nested": [{"s": "rolled_back"}], "n": 1})
        );
    }
}
