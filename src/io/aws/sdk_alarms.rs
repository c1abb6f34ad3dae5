//! The CloudWatch adapter over the official SDK: alarm states by name.
//!
//! `aws-sdk-cloudwatch` is pinned to 1.99.0, the last version speaking the query protocol that
//! moto serves (TESTING.md); AWS accepts it too. Metric and composite alarms both count.

use super::{Alarms, AwsError};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_cloudwatch::Client;
use gitmoxi_deploy::analysis::queries::{MetricQuery, MetricRequest, QueryKind};
use gitmoxi_deploy::observed::{AlarmState, ObservedAlarm};
use std::collections::BTreeMap;
use std::sync::Mutex;

const SERVICE: &str = "monitoring";

pub struct SdkAlarms {
    client: Client,
    metrics: crate::io::metrics::AwsCallMetrics,
    /// Answers of GetMetricData per request: a request's window ends at a whole period, so a
    /// pass that asks again within the period (a retry after a fault, another replica's look)
    /// reads the answer instead of calling CloudWatch again.
    cache: Mutex<MetricCache>,
}

/// The newest answers, oldest evicted first.
#[derive(Default)]
struct MetricCache {
    entries: std::collections::VecDeque<(MetricRequest, BTreeMap<String, Vec<f64>>)>,
}

/// The most answers kept per client.
const CACHED_ANSWERS: usize = 64;

impl SdkAlarms {
    pub fn new(client: Client, metrics: crate::io::metrics::AwsCallMetrics) -> Self {
        SdkAlarms { client, metrics, cache: Mutex::new(MetricCache::default()) }
    }
}

#[async_trait]
impl Alarms for SdkAlarms {
    async fn describe(&self, names: &[String]) -> Result<Vec<ObservedAlarm>, AwsError> {
        let mut states: BTreeMap<String, String> = BTreeMap::new();
        // DescribeAlarms takes at most 100 names per call.
        for chunk in names.chunks(100) {
            let out = self
                .client
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeAlarms", e));
            self.metrics.observe(SERVICE, "DescribeAlarms", out.as_ref().err());
            let out = out?;
            for a in out.metric_alarms() {
                if let (Some(name), Some(state)) = (a.alarm_name(), a.state_value()) {
                    states.insert(name.to_string(), state.as_str().to_string());
                }
            }
            for a in out.composite_alarms() {
                if let (Some(name), Some(state)) = (a.alarm_name(), a.state_value()) {
                    states.insert(name.to_string(), state.as_str().to_string());
                }
            }
        }
        Ok(names.iter().map(|n| ObservedAlarm { name: n.clone(), state: states.get(n).map(|s| AlarmState::from(s.as_str())) }).collect())
    }

    async fn metric_data(&self, request: &MetricRequest) -> Result<BTreeMap<String, Vec<f64>>, AwsError> {
        let cached = crate::base::sync::lock(&self.cache).entries.iter().find(|(r, _)| r == request).map(|(_, v)| v.clone());
        if let Some(values) = cached {
            return Ok(values);
        }
        let values = self.fetch(request).await?;
        let mut cache = crate::base::sync::lock(&self.cache);
        cache.entries.push_back((request.clone(), values.clone()));
        while cache.entries.len() > CACHED_ANSWERS {
            cache.entries.pop_front();
        }
        Ok(values)
    }
}

/// The most queries one GetMetricData call takes.
const QUERIES_PER_CALL: usize = 500;

/// The most pages one request may take (a window of a day at one-second periods is 86,400
/// points a query; a bound keeps a runaway answer from holding a pass).
const MAX_PAGES: usize = 20;

/// The queries of `request` in calls of at most [`QUERIES_PER_CALL`], never splitting a check's
/// side (an expression and the metrics it reads share the id prefix `c<i><side>`).
pub fn batches(request: &MetricRequest) -> Vec<Vec<&MetricQuery>> {
    let group = |q: &MetricQuery| q.id.split('_').next().unwrap_or_default().to_string();
    let mut out: Vec<Vec<&MetricQuery>> = Vec::new();
    let mut groups: Vec<Vec<&MetricQuery>> = Vec::new();
    for q in &request.queries {
        match groups.last_mut() {
            Some(g) if g.first().map(|f| group(f)) == Some(group(q)) => g.push(q),
            _ => groups.push(vec![q]),
        }
    }
    for g in groups {
        match out.last_mut() {
            Some(batch) if batch.len() + g.len() <= QUERIES_PER_CALL => batch.extend(g),
            _ => out.push(g),
        }
    }
    out
}

fn to_sdk(q: &MetricQuery) -> MetricDataQuery {
    let builder = MetricDataQuery::builder().id(&q.id).return_data(q.return_data);
    match &q.kind {
        QueryKind::Stat(m) => {
            let mut metric = Metric::builder().namespace(&m.namespace).metric_name(&m.metric_name);
            for (name, value) in &m.dimensions {
                metric = metric.dimensions(Dimension::builder().name(name).value(value).build());
            }
            let stat = MetricStat::builder().metric(metric.build()).period(m.period_secs as i32).stat(&m.stat).build();
            builder.metric_stat(stat).build()
        }
        QueryKind::Expression { expression, period_secs } => builder.expression(expression).period(*period_secs as i32).build(),
    }
}

impl SdkAlarms {
    async fn fetch(&self, request: &MetricRequest) -> Result<BTreeMap<String, Vec<f64>>, AwsError> {
        let mut values: BTreeMap<String, Vec<f64>> =
            request.queries.iter().filter(|q| q.return_data).map(|q| (q.id.clone(), Vec::new())).collect();
        let start = aws_smithy_types::DateTime::from_millis(request.start_ms as i64);
        let end = aws_smithy_types::DateTime::from_millis(request.end_ms as i64);
        for batch in batches(request) {
            let queries: Vec<MetricDataQuery> = batch.iter().map(|q| to_sdk(q)).collect();
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let out = self
                    .client
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(start)
                    .end_time(end)
                    .scan_by(ScanBy::TimestampAscending)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(SERVICE, "GetMetricData", e));
                self.metrics.observe(SERVICE, "GetMetricData", out.as_ref().err());
                let out = out?;
                for result in out.metric_data_results() {
                    if let Some(id) = result.id() {
                        values.entry(id.to_string()).or_default().extend(result.values().iter().copied());
                    }
                }
                token = out.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(values)
    }
}
