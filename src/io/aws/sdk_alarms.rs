//! The CloudWatch adapter over the official SDK: alarm states by name.
//!
//! `aws-sdk-cloudwatch` is pinned to 1.99.0, the last version speaking the query protocol that
//! moto serves (TESTING.md); AWS accepts it too. Metric and composite alarms both count.

use super::{Alarms, AwsError};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_cloudwatch::Client;
use gitmoxi_deploy::observed::{AlarmState, ObservedAlarm};
use std::collections::BTreeMap;

const SERVICE: &str = "monitoring";

pub struct SdkAlarms {
    client: Client,
    metrics: crate::io::metrics::AwsCallMetrics,
}

impl SdkAlarms {
    pub fn new(client: Client, metrics: crate::io::metrics::AwsCallMetrics) -> Self {
        SdkAlarms { client, metrics }
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
}
