//! ELB and CloudWatch over the fake world (`fake.rs`): target groups, forwards with weights,
//! healthy targets derived from the task sets registered in each group, scheduled alarm states.
//!
//! Invariant: weights written here are exactly what the next observation reads back, and every
//! write is recorded as a mutation so tests can replay the sequence of traffic splits.

use crate::fake::FakeWorld;
use async_trait::async_trait;
use gitmoxi::aws::{Alarms, AwsError, AwsErrorKind, Elb};
use gitmoxi_deploy::observed::{ForwardKind, ObservedAlarm, ObservedElb, ObservedForward};
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The fake ELB (all regions: ARNs carry theirs).
pub struct FakeElb {
    pub(super) world: FakeWorld,
}

/// The fake CloudWatch alarms.
pub struct FakeAlarms {
    pub(super) world: FakeWorld,
}

#[async_trait]
impl Elb for FakeElb {
    async fn observe(&self, target_groups: &[String], reads: gitmoxi_deploy::strategy::ElbReads) -> Result<ObservedElb, AwsError> {
        self.world.begin("DescribeTargetGroups")?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            w.advance(now);
            let missing: Vec<String> = target_groups.iter().filter(|tg| !w.target_groups.contains_key(*tg)).cloned().collect();
            // Like ELB: the listeners found are those of the groups' load balancers.
            let load_balancers: Vec<&String> =
                target_groups.iter().filter_map(|tg| w.target_groups.get(tg).and_then(Option::as_ref)).collect();
            let forwards = w
                .forwards
                .iter()
                .filter(|_| reads.forwards)
                .filter(|f| load_balancers.contains(&&f.load_balancer) && f.targets.iter().any(|(tg, _)| target_groups.contains(tg)))
                .map(|f| ObservedForward {
                    kind: if f.is_rule { ForwardKind::Rule } else { ForwardKind::ListenerDefault },
                    arn: f.arn.clone(),
                    targets: f.targets.clone(),
                })
                .collect();
            let healthy_targets: BTreeMap<String, u32> = target_groups
                .iter()
                .filter(|tg| reads.health && !missing.contains(tg))
                .map(|tg| (tg.clone(), w.healthy_in(tg, now)))
                .collect();
            Ok(ObservedElb { missing_target_groups: missing, forwards, healthy_targets })
        };
        self.world.end("DescribeTargetGroups", result)
    }

    async fn set_forward_weights(&self, kind: ForwardKind, arn: &str, targets: &[(String, u32)]) -> Result<(), AwsError> {
        let operation = match kind {
            ForwardKind::ListenerDefault => "ModifyListener",
            ForwardKind::Rule => "ModifyRule",
        };
        self.world.begin(operation)?;
        let result = {
            let mut w = self.world.world();
            let known = w.target_groups.clone();
            if let Some(tg) = targets.iter().map(|(tg, _)| tg).find(|tg| !known.contains_key(*tg)) {
                Err(AwsError::new(
                    "elasticloadbalancing",
                    operation,
                    AwsErrorKind::NotFound,
                    "TargetGroupNotFound",
                    format!("{tg} not found"),
                ))
            } else {
                match w.forwards.iter_mut().find(|f| f.arn == arn) {
                    Some(f) => {
                        f.targets = targets.to_vec();
                        let detail = format!("{arn} {}", targets.iter().map(|(_, w)| w.to_string()).collect::<Vec<_>>().join("/"));
                        w.mutations.push((operation.to_string(), detail));
                        Ok(())
                    }
                    None => Err(AwsError::new(
                        "elasticloadbalancing",
                        operation,
                        AwsErrorKind::NotFound,
                        "ListenerNotFound",
                        format!("{arn} not found"),
                    )),
                }
            }
        };
        self.world.end(operation, result)
    }

    async fn registered_targets(&self, target_group: &str) -> Result<Vec<String>, AwsError> {
        self.world.begin("DescribeTargetHealth")?;
        let result = Ok(self.world.world().lambda.lambda_targets.get(target_group).cloned().unwrap_or_default());
        self.world.end("DescribeTargetHealth", result)
    }

    async fn deregister_target(&self, target_group: &str, target: &str) -> Result<(), AwsError> {
        self.world.begin("DeregisterTargets")?;
        let result = {
            let mut w = self.world.world();
            // as ELB (and moto) answer: a target that is not registered is an InvalidTarget
            match w.lambda.lambda_targets.get_mut(target_group).filter(|t| t.iter().any(|id| id == target)) {
                Some(targets) => {
                    targets.retain(|t| t != target);
                    w.mutations.push(("DeregisterTargets".into(), target.to_string()));
                    Ok(())
                }
                None => Err(AwsError::new(
                    "elasticloadbalancing",
                    "DeregisterTargets",
                    AwsErrorKind::Rejected,
                    "InvalidTarget",
                    "The specified target does not exist, is not in the same VPC as the target group, or has an unsupported instance type.",
                )),
            }
        };
        self.world.end("DeregisterTargets", result)
    }

    async fn register_target(&self, target_group: &str, target: &str) -> Result<(), AwsError> {
        self.world.begin("RegisterTargets")?;
        let result = {
            let mut w = self.world.world();
            if w.target_groups.contains_key(target_group) {
                let targets = w.lambda.lambda_targets.entry(target_group.to_string()).or_default();
                if !targets.iter().any(|t| t == target) {
                    targets.push(target.to_string());
                }
                w.mutations.push(("RegisterTargets".into(), target.to_string()));
                Ok(())
            } else {
                Err(AwsError::new(
                    "elasticloadbalancing",
                    "RegisterTargets",
                    AwsErrorKind::NotFound,
                    "TargetGroupNotFound",
                    format!("{target_group} not found"),
                ))
            }
        };
        self.world.end("RegisterTargets", result)
    }
}

#[async_trait]
impl Alarms for FakeAlarms {
    async fn describe(&self, names: &[String]) -> Result<Vec<ObservedAlarm>, AwsError> {
        self.world.begin("DescribeAlarms")?;
        let now = Instant::now();
        let result = {
            let w = self.world.world();
            Ok(names.iter().map(|n| ObservedAlarm { name: n.clone(), state: w.alarm_state(n, now).map(|s| s.as_str().into()) }).collect())
        };
        self.world.end("DescribeAlarms", result)
    }

    async fn metric_data(
        &self,
        request: &gitmoxi_deploy::analysis::queries::MetricRequest,
    ) -> Result<BTreeMap<String, Vec<f64>>, AwsError> {
        self.world.begin("GetMetricData")?;
        let result = self
            .world
            .metric_data(request)
            .map_err(|message| AwsError::new("monitoring", "GetMetricData", AwsErrorKind::Rejected, "ValidationError", message));
        self.world.end("GetMetricData", result)
    }
}
