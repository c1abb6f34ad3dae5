//! The Elastic Load Balancing v2 adapter over the official SDK: target groups, the listener
//! default actions and rules that forward to them, target health, and weight changes.
//!
//! Weight changes rewrite only the forward action's target groups and weights; every other part
//! of the listener's or rule's actions (stickiness, order, other actions) is sent back unchanged.

use super::{AwsError, Elb};
use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple, TargetHealthStateEnum};
use aws_sdk_elasticloadbalancingv2::Client;
use gitmoxi_deploy::observed::{ForwardKind, ObservedElb, ObservedForward};
use gitmoxi_deploy::strategy::ElbReads;
use std::collections::BTreeSet;

const SERVICE: &str = "elasticloadbalancing";

pub struct SdkElb {
    client: Client,
    metrics: crate::io::metrics::AwsCallMetrics,
}

impl SdkElb {
    pub fn new(client: Client, metrics: crate::io::metrics::AwsCallMetrics) -> Self {
        SdkElb { client, metrics }
    }

    fn track<T>(&self, operation: &'static str, result: Result<T, AwsError>) -> Result<T, AwsError> {
        self.metrics.observe(SERVICE, operation, result.as_ref().err());
        result
    }

    /// Load balancers of the target groups that exist, and the groups that do not.
    async fn target_groups(&self, arns: &[String]) -> Result<(BTreeSet<String>, Vec<String>), AwsError> {
        // One call for up to 20 groups (ELB's limit); a missing group fails the whole call, and
        // only then is each group asked for alone, to name the missing ones.
        let mut load_balancers = BTreeSet::new();
        let mut missing = Vec::new();
        for chunk in arns.chunks(20) {
            match self.describe_target_groups(chunk).await {
                Ok(found) => load_balancers.extend(found),
                Err(e) if is_not_found(&e) && chunk.len() > 1 => {
                    for arn in chunk {
                        match self.describe_target_groups(std::slice::from_ref(arn)).await {
                            Ok(found) => load_balancers.extend(found),
                            Err(e) if is_not_found(&e) => missing.push(arn.clone()),
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if is_not_found(&e) => missing.extend(chunk.iter().cloned()),
                Err(e) => return Err(e),
            }
        }
        Ok((load_balancers, missing))
    }

    /// The load balancers of `arns` (DescribeTargetGroups).
    async fn describe_target_groups(&self, arns: &[String]) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .describe_target_groups()
            .set_target_group_arns(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTargetGroups", e));
        let out = self.track("DescribeTargetGroups", out)?;
        Ok(out.target_groups().iter().flat_map(|tg| tg.load_balancer_arns().iter().cloned()).collect())
    }

    async fn healthy(&self, arn: &str) -> Result<u32, AwsError> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTargetHealth", e));
        let out = self.track("DescribeTargetHealth", out)?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter(|d| d.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy))
            .count() as u32)
    }
}

fn is_not_found(e: &AwsError) -> bool {
    e.code == "TargetGroupNotFound" || e.code == "TargetGroupNotFoundException"
}

/// The (target group, weight %) of a forward action; None when the action does not forward.
fn forward_targets(action: &Action) -> Option<Vec<(String, u32)>> {
    if action.r#type.as_ref() != Some(&ActionTypeEnum::Forward) {
        return None;
    }
    let listed: Vec<(String, u32)> = action
        .forward_config
        .as_ref()
        .map(|c| {
            c.target_groups()
                .iter()
                .filter_map(|t| Some((t.target_group_arn()?.to_string(), u32::try_from(t.weight().unwrap_or(1)).unwrap_or(0))))
                .collect()
        })
        .unwrap_or_default();
    if listed.is_empty() {
        return action.target_group_arn.clone().map(|tg| vec![(tg, 100)]);
    }
    // ELB weights are relative (0–999); report them as percentages.
    let total: u32 = listed.iter().map(|(_, w)| *w).sum();
    if total == 0 || total == 100 {
        return Some(listed);
    }
    Some(listed.into_iter().map(|(tg, w)| (tg, (w * 100 + total / 2) / total)).collect())
}

/// The same actions with the forward action's target groups and weights replaced.
fn with_weights(actions: &[Action], targets: &[(String, u32)]) -> Vec<Action> {
    actions
        .iter()
        .map(|a| {
            if a.r#type.as_ref() != Some(&ActionTypeEnum::Forward) {
                return a.clone();
            }
            let mut a = a.clone();
            let stickiness = a.forward_config.as_ref().and_then(|c| c.target_group_stickiness_config().cloned());
            let tuples: Vec<TargetGroupTuple> =
                targets.iter().map(|(tg, w)| TargetGroupTuple::builder().target_group_arn(tg).weight(*w as i32).build()).collect();
            a.forward_config =
                Some(ForwardActionConfig::builder().set_target_groups(Some(tuples)).set_target_group_stickiness_config(stickiness).build());
            a.target_group_arn = None;
            a
        })
        .collect()
}

fn touches(targets: &[(String, u32)], wanted: &[String]) -> bool {
    targets.iter().any(|(tg, _)| wanted.contains(tg))
}

#[async_trait]
impl Elb for SdkElb {
    async fn observe(&self, target_groups: &[String], reads: ElbReads) -> Result<ObservedElb, AwsError> {
        let (load_balancers, missing) = self.target_groups(target_groups).await?;
        let mut forwards = Vec::new();
        for lb in load_balancers.iter().filter(|_| reads.forwards) {
            let out = self
                .client
                .describe_listeners()
                .load_balancer_arn(lb)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeListeners", e));
            let out = self.track("DescribeListeners", out)?;
            for listener in out.listeners() {
                let listener_arn = listener.listener_arn().unwrap_or_default().to_string();
                for action in listener.default_actions() {
                    if let Some(targets) = forward_targets(action).filter(|t| touches(t, target_groups)) {
                        forwards.push(ObservedForward { kind: ForwardKind::ListenerDefault, arn: listener_arn.clone(), targets });
                    }
                }
                let rules = self
                    .client
                    .describe_rules()
                    .listener_arn(&listener_arn)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeRules", e));
                let rules = self.track("DescribeRules", rules)?;
                for rule in rules.rules().iter().filter(|r| r.is_default() != Some(true)) {
                    for action in rule.actions() {
                        if let Some(targets) = forward_targets(action).filter(|t| touches(t, target_groups)) {
                            let arn = rule.rule_arn().unwrap_or_default().to_string();
                            forwards.push(ObservedForward { kind: ForwardKind::Rule, arn, targets });
                        }
                    }
                }
            }
        }
        let mut healthy_targets = std::collections::BTreeMap::new();
        for tg in target_groups.iter().filter(|tg| reads.health && !missing.contains(tg)) {
            healthy_targets.insert(tg.clone(), self.healthy(tg).await?);
        }
        Ok(ObservedElb { missing_target_groups: missing, forwards, healthy_targets })
    }

    async fn set_forward_weights(&self, kind: ForwardKind, arn: &str, targets: &[(String, u32)]) -> Result<(), AwsError> {
        match kind {
            ForwardKind::ListenerDefault => {
                let out = self
                    .client
                    .describe_listeners()
                    .listener_arns(arn)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeListeners", e));
                let out = self.track("DescribeListeners", out)?;
                let actions = out.listeners().first().map(|l| with_weights(l.default_actions(), targets)).unwrap_or_default();
                let out = self
                    .client
                    .modify_listener()
                    .listener_arn(arn)
                    .set_default_actions(Some(actions))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(SERVICE, "ModifyListener", e));
                self.track("ModifyListener", out).map(|_| ())
            }
            ForwardKind::Rule => {
                let out =
                    self.client.describe_rules().rule_arns(arn).send().await.map_err(|e| AwsError::from_sdk(SERVICE, "DescribeRules", e));
                let out = self.track("DescribeRules", out)?;
                let actions = out.rules().first().map(|r| with_weights(r.actions(), targets)).unwrap_or_default();
                let out = self
                    .client
                    .modify_rule()
                    .rule_arn(arn)
                    .set_actions(Some(actions))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk(SERVICE, "ModifyRule", e));
                self.track("ModifyRule", out).map(|_| ())
            }
        }
    }

    async fn registered_targets(&self, target_group: &str) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DescribeTargetHealth", e));
        let out = self.track("DescribeTargetHealth", out)?;
        Ok(out.target_health_descriptions().iter().filter_map(|d| d.target().and_then(|t| t.id()).map(str::to_string)).collect())
    }

    async fn register_target(&self, target_group: &str, target: &str) -> Result<(), AwsError> {
        let description = aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(target).build();
        let out = self
            .client
            .register_targets()
            .target_group_arn(target_group)
            .targets(description)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "RegisterTargets", e));
        self.track("RegisterTargets", out).map(|_| ())
    }

    async fn deregister_target(&self, target_group: &str, target: &str) -> Result<(), AwsError> {
        let description = aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(target).build();
        let out = self
            .client
            .deregister_targets()
            .target_group_arn(target_group)
            .targets(description)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeregisterTargets", e));
        self.track("DeregisterTargets", out).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_reported_as_percentages() {
        let single = Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn("tg-a").build();
        assert_eq!(forward_targets(&single), Some(vec![("tg-a".to_string(), 100)]));
        let pair = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(TargetGroupTuple::builder().target_group_arn("tg-a").weight(1).build())
                    .target_groups(TargetGroupTuple::builder().target_group_arn("tg-b").weight(3).build())
                    .build(),
            )
            .build();
        assert_eq!(forward_targets(&pair), Some(vec![("tg-a".to_string(), 25), ("tg-b".to_string(), 75)]));
        let fixed = Action::builder().r#type(ActionTypeEnum::FixedResponse).build();
        assert_eq!(forward_targets(&fixed), None);
    }

    #[test]
    fn rewriting_weights_keeps_other_actions_and_drops_the_single_target_group_field() {
        let auth = Action::builder().r#type(ActionTypeEnum::AuthenticateOidc).order(1).build();
        let fwd = Action::builder().r#type(ActionTypeEnum::Forward).order(2).target_group_arn("tg-a").build();
        let out = with_weights(&[auth.clone(), fwd], &[("tg-a".into(), 80), ("tg-b".into(), 20)]);
        assert_eq!(out[0], auth);
        assert_eq!(out[1].order, Some(2));
        assert_eq!(out[1].target_group_arn, None);
        assert_eq!(forward_targets(&out[1]), Some(vec![("tg-a".to_string(), 80), ("tg-b".to_string(), 20)]));
    }
}
