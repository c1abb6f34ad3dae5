//! Prometheus metrics, registered per component with help text (ARCHITECTURE rule 12).
//!
//! Invariant: label values are fixed vocabularies (operations, outcomes, error labels) or app
//! prefixes from the repository, never ARNs or secrets.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Counts AWS calls by service, operation and result.
#[derive(Clone)]
pub struct AwsCallMetrics {
    requests: IntCounterVec,
}

impl AwsCallMetrics {
    pub fn observe(&self, service: &str, operation: &str, error: Option<&crate::io::aws::AwsError>) {
        let result = error.map_or("ok", |e| e.metric_label());
        self.requests.with_label_values(&[service, operation, result]).inc();
    }
}

/// Every metric gitmoxi exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub aws: AwsCallMetrics,
    pub deployments_total: IntCounterVec,
    pub reconcile_errors_total: IntCounterVec,
    pub reconcile_duration: Histogram,
    pub git_fetch_total: IntCounterVec,
    pub webhooks_total: IntCounterVec,
    pub queue_depth: IntGauge,
    pub deployment_duration: HistogramVec,
    pub rollbacks_total: IntCounterVec,
    /// Apps by kind and status (refreshed at every scrape).
    pub apps: IntGaugeVec,
    /// The traffic split of in-flight deployments, by app prefix and side (refreshed at every scrape).
    pub traffic_weight: IntGaugeVec,
    /// Notifications by sink and result (delivered, failed, dropped).
    pub notifications_total: IntCounterVec,
    /// 1 while an app's last drift check found drift.
    pub drift_detected: IntGaugeVec,
    /// AWS calls that waited for the client-side rate limit, by API family and priority.
    pub aws_rate_limited: IntCounterVec,
    /// High availability: shard leases this replica holds.
    pub shards_owned: IntGauge,
    /// High availability: lease renewals that failed (the table refused or did not answer).
    pub lease_renew_failures: IntCounter,
    /// High availability: shards this replica took from another replica whose lease ran out.
    pub lease_takeovers: IntCounter,
    /// High availability: state writes the table refused because the lease had moved on.
    pub fenced_writes: IntCounter,
    /// High availability: requests to the DynamoDB table by operation.
    pub ha_table_requests: IntCounterVec,
    /// High availability: items written to the DynamoDB table.
    pub ha_table_items_written: IntCounter,
    /// The names of every registered family (dashboards are checked against them).
    pub names: Vec<String>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let mut names = Vec::new();
        let requests = IntCounterVec::new(
            Opts::new("gitmoxi_aws_requests_total", "AWS API calls by service, operation and result"),
            &["service", "operation", "result"],
        )
        .expect("static metric definition");
        let deployments_total = IntCounterVec::new(
            Opts::new("gitmoxi_deployments_total", "Finished deployments by kind, strategy and outcome"),
            &["kind", "strategy", "outcome"],
        )
        .expect("static metric definition");
        let reconcile_errors_total = IntCounterVec::new(
            Opts::new("gitmoxi_reconcile_errors_total", "Reconcile passes that could not observe or act, by error"),
            &["error"],
        )
        .expect("static metric definition");
        let reconcile_duration =
            Histogram::with_opts(HistogramOpts::new("gitmoxi_reconcile_duration_seconds", "Wall time of one reconcile pass of one app"))
                .expect("static metric definition");
        let git_fetch_total = IntCounterVec::new(Opts::new("gitmoxi_git_fetch_total", "Git fetches by result"), &["result"])
            .expect("static metric definition");
        let webhooks_total = IntCounterVec::new(
            Opts::new("gitmoxi_webhooks_total", "Push webhooks received, by provider and result (accepted, ignored, unauthorized, …)"),
            &["provider", "result"],
        )
        .expect("static metric definition");
        let deployment_duration = HistogramVec::new(
            HistogramOpts::new(
                "gitmoxi_deployment_duration_seconds",
                "Time from the start to the end of a deployment, by kind and outcome",
            )
            .buckets(vec![10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0]),
            &["kind", "outcome"],
        )
        .expect("static metric definition");
        let rollbacks_total = IntCounterVec::new(
            Opts::new("gitmoxi_rollbacks_total", "Deployments rolled back (or failed), by cause from the taxonomy"),
            &["cause"],
        )
        .expect("static metric definition");
        let apps =
            IntGaugeVec::new(Opts::new("gitmoxi_apps", "Apps by kind and status"), &["kind", "status"]).expect("static metric definition");
        let traffic_weight = IntGaugeVec::new(
            Opts::new("gitmoxi_traffic_weight", "Traffic percent on each side of an in-flight deployment (blue/old, green/new)"),
            &["app", "side"],
        )
        .expect("static metric definition");
        let notifications_total = IntCounterVec::new(
            Opts::new("gitmoxi_notifications_total", "Notifications by sink (slack, webhook, app_webhook, queue) and result"),
            &["sink", "result"],
        )
        .expect("static metric definition");
        let drift_detected = IntGaugeVec::new(
            Opts::new("gitmoxi_drift_detected", "1 when the app's last drift check found AWS differing from what was applied"),
            &["app"],
        )
        .expect("static metric definition");
        let aws_rate_limited = IntCounterVec::new(
            Opts::new(
                "gitmoxi_aws_rate_limited_total",
                "AWS calls that waited for gitmoxi's client-side rate limit, by API family and priority (deployment, steady)",
            ),
            &["family", "priority"],
        )
        .expect("static metric definition");
        let queue_depth = IntGauge::new("gitmoxi_queue_depth", "Apps waiting in the work queue").expect("static metric definition");
        let shards_owned =
            IntGauge::new("gitmoxi_shards_owned", "High availability: shard leases this replica holds").expect("static metric definition");
        let lease_renew_failures =
            IntCounter::new("gitmoxi_lease_renew_failures_total", "High availability: lease renewals the table refused or did not answer")
                .expect("static metric definition");
        let lease_takeovers =
            IntCounter::new("gitmoxi_lease_takeovers_total", "High availability: shards taken over from a replica whose lease ran out")
                .expect("static metric definition");
        let ha_table_requests = IntCounterVec::new(
            Opts::new("gitmoxi_ha_table_requests_total", "High availability: requests to the DynamoDB table by operation"),
            &["operation"],
        )
        .expect("static metric definition");
        let ha_table_items_written = IntCounter::new(
            "gitmoxi_ha_table_items_written_total",
            "High availability: items written to the DynamoDB table (each at least one write unit)",
        )
        .expect("static metric definition");
        let fenced_writes = IntCounter::new(
            "gitmoxi_fenced_writes_total",
            "High availability: state writes refused because another replica holds the shard's lease now",
        )
        .expect("static metric definition");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(deployments_total.clone()),
            Box::new(reconcile_errors_total.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(git_fetch_total.clone()),
            Box::new(webhooks_total.clone()),
            Box::new(queue_depth.clone()),
            Box::new(deployment_duration.clone()),
            Box::new(rollbacks_total.clone()),
            Box::new(apps.clone()),
            Box::new(traffic_weight.clone()),
            Box::new(notifications_total.clone()),
            Box::new(drift_detected.clone()),
            Box::new(aws_rate_limited.clone()),
            Box::new(shards_owned.clone()),
            Box::new(lease_renew_failures.clone()),
            Box::new(lease_takeovers.clone()),
            Box::new(fenced_writes.clone()),
            Box::new(ha_table_requests.clone()),
            Box::new(ha_table_items_written.clone()),
        ] {
            names.extend(c.desc().iter().map(|d| d.fq_name.clone()));
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            aws: AwsCallMetrics { requests },
            deployments_total,
            reconcile_errors_total,
            reconcile_duration,
            git_fetch_total,
            webhooks_total,
            queue_depth,
            deployment_duration,
            rollbacks_total,
            apps,
            traffic_weight,
            notifications_total,
            drift_detected,
            aws_rate_limited,
            shards_owned,
            lease_renew_failures,
            lease_takeovers,
            fenced_writes,
            ha_table_requests,
            ha_table_items_written,
            names,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
