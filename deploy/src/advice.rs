//! The next step for each failure cause of the taxonomy (SPEC §6.1, §6.5): what an operator
//! should look at and do, in one or two sentences, without any AI service.

use crate::record::{DeploymentRecord, FailureCause};

/// A concrete next step for a failed or rolled-back deployment.
pub fn next_step(record: &DeploymentRecord) -> String {
    let app = &record.app.prefix;
    let Some(cause) = &record.cause else {
        return match record.outcome {
            Some(o) => format!("the deployment ended as {}; nothing failed", o.as_str()),
            None => "the deployment is still running; follow it with `gitmoxi status`".to_string(),
        };
    };
    match cause {
        FailureCause::TemplateError => {
            "fix the template (the error names file, line and column), check it with `gitmoxi validate`, then push".to_string()
        }
        FailureCause::ValidationError => format!(
            "fix the field or resource named in the evidence (run `gitmoxi validate` for files; check the ARNs it names in AWS), then push or run `gitmoxi sync --force {app}`"
        ),
        FailureCause::PermissionDenied { operation } => {
            format!("grant gitmoxi's IAM role the permission {operation} (see the shipped IAM policy), then run `gitmoxi sync --force {app}`")
        }
        FailureCause::ImagePullFailure => "check that the image and tag in the taskdef exist and that the task execution role can pull them (ECR permissions, registry credentials, network route to the registry); push a fixed image reference".to_string(),
        FailureCause::OutOfMemory => "a container was killed for using more memory than its limit: raise memory (or memoryReservation) of that container or the task in the taskdef, or find the leak in its logs; then push".to_string(),
        FailureCause::TaskSetupDenied => "the tasks never started: the task execution role (executionRoleArn) may not read a secret, pull from the registry or write the log group named in the evidence; grant it (secretsmanager:GetSecretValue, ssm:GetParameters, ecr:GetAuthorizationToken, logs:CreateLogStream…), then run `gitmoxi sync --force`".to_string(),
        FailureCause::ContainerExited { code } => format!(
            "the container exits with code {code}: read its logs (CloudWatch log group of the task definition) for the crash; test the image locally, then push a fix"
        ),
        FailureCause::HealthCheckFailed => "the tasks run but fail their health checks: compare the target group's health check path/port with what the container serves, and check security groups between the load balancer and the tasks".to_string(),
        FailureCause::CapacityUnavailable => "capacity ran out (e.g. FARGATE_SPOT): add a fallbackCapacityProviderStrategy to the depdef, or retry later with `gitmoxi sync --force`".to_string(),
        FailureCause::StabilityTimeout { waited_secs } => format!(
            "the new revision was not stable within {waited_secs} s: look at the service events and stopped tasks in the evidence; if it only starts slowly, raise stabilityCheck.timeout (or timeoutPerTask) in the depdef"
        ),
        FailureCause::CircuitBreakerTripped { .. } => "the new tasks keep stopping: the stop reasons in the evidence say why (image, crash, health); fix that, then push".to_string(),
        FailureCause::AlarmFired { alarms } => format!(
            "alarm {} fired while traffic moved to the new version: look at the metric behind it for the new version's errors or latency, fix, then push",
            alarms.join(", ")
        ),
        FailureCause::AwsUnavailable { operation } => {
            format!("AWS throttled or failed {operation}: gitmoxi retries on its own; if it persists, check AWS health and service quotas")
        }
        FailureCause::AwsRejected { operation, code, .. } => format!(
            "AWS refused {operation} with {code}: the message in the evidence names the resource; create or fix it (cluster, role, target group…), then run `gitmoxi sync --force {app}`"
        ),
        FailureCause::NotOwned => "the resource exists but was not created by this app (no gitmoxi:app tag): delete it by hand, or tag it `gitmoxi:app` to adopt it".to_string(),
        FailureCause::OperatorRollback => "an operator rolled this deployment back; push a fix or run `gitmoxi sync --force` to try again".to_string(),
        FailureCause::AccountNotConfigured { account, .. } => format!(
            "nothing was deployed: give gitmoxi a role in account {account} ([accounts.\"{account}\"] role_arn = \"arn:aws:iam::{account}:role/gitmoxi-deploy\" in the config file; the role trusts the controller with packaging/account-trust-policy.json and carries packaging/account-deploy-policy.json), or remove environment.account from the depdef to deploy into this controller's own account; then run `gitmoxi sync --force {app}`"
        ),
        FailureCause::AccountRegionNotAllowed { account, region, .. } => format!(
            "nothing was deployed: add {region} to the regions of [accounts.\"{account}\"] in the config file if this account may run there, or fix environment.region in the depdef"
        ),
        FailureCause::EcsRolledBack { .. } => format!(
            "ECS rolled its own deployment back (the reason and any failed lifecycle hook are in the evidence): look at the new revision's tasks, the hook's logs or the alarm that fired, fix, then push or run `gitmoxi sync --force {app}`"
        ),
        FailureCause::AnalysisFailed { check, .. } => format!(
            "the metric check \"{check}\" found the new version worse than the old one (the numbers are in the evidence and on the app page's chart): look at the new version's logs and traces for what changed; if the difference is expected, raise the check's tolerance or max in the depdef's analysis; then push"
        ),
        FailureCause::HookFailed { hook, .. } => format!(
            "the {hook} hook failed (its task's stop reason and exit codes, or the function's error, are in the evidence; the task's logs are in its log group): fix what it checks, or the hook itself, then push or run `gitmoxi sync --force {app}`"
        ),
        FailureCause::AnalysisInconclusive { .. } => format!(
            "the metric analysis had too few samples to judge: check that the metrics exist for the new version (the query's dimensions, {{{{ green }}}} / {{{{ blue }}}}), that traffic reaches it, and that the analysis window is longer than a few periods; or lower minSamples; then run `gitmoxi sync --force {app}`"
        ),
        FailureCause::AwsDiffers { .. } => format!(
            "ECS accepted the update but DescribeServices reports other values for the fields in the evidence: a field UpdateService cannot change (launchType, schedulingStrategy) needs a new service (change serviceName); otherwise look for whoever else changes the service (another tool, a hand edit, an autoscaler), then run `gitmoxi sync --force {app}`"
        ),
        FailureCause::ApprovalRejected { by } => format!(
            "{by} rejected the deployment at its approval gate and ECS rolled it back; push a fix, or run `gitmoxi sync --force {app}` to try the same commit again"
        ),
        FailureCause::ApprovalTimedOut { .. } => format!(
            "the gate's timeout ran out and its onTimeout rolled the deployment back; run `gitmoxi sync --force {app}` and answer it with `gitmoxi approve {app}` in time, or raise trafficShiftingConfig.approval.timeout"
        ),
        FailureCause::AssumeRoleFailed { account, .. } => format!(
            "nothing was touched in account {account}: check that the role exists, that its trust policy allows this controller's role and the external_id, if set (packaging/account-trust-policy.json), and that the controller's policy lets it call sts:AssumeRole on the role (roles named gitmoxi-… in packaging/iam-policy.json); then run `gitmoxi sync --force {app}`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AppKey, DeploymentStatus, Operation, Outcome, Phase};
    use crate::spec::Identity;

    fn record(cause: Option<FailureCause>) -> DeploymentRecord {
        DeploymentRecord {
            id: "dep-1".into(),
            app: AppKey { repo: "r".into(), branch: "main".into(), prefix: "prod/web/web".into() },
            kind: crate::spec::AppKind::Ecs,
            commit: "c".into(),
            fingerprint: "f".into(),
            identity: Identity::Ecs { account: None, region: "us-east-1".into(), cluster: "prod".into(), service: "web".into() },
            account_id: None,
            operation: Operation::Deploy,
            strategy: crate::record::Strategy::Rolling,
            desired: None,
            desired_lambda: None,
            previous_version: None,
            previous_task_definition: None,
            previous_service: None,
            forced: false,
            phase: Phase::Done,
            status: DeploymentStatus::ProcessedError,
            outcome: Some(Outcome::RolledBack),
            cause,
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
            finished_at_ms: Some(0),
            timeline: vec![],
        }
    }

    #[test]
    fn every_cause_has_its_own_next_step() {
        let causes = vec![
            FailureCause::TemplateError,
            FailureCause::ValidationError,
            FailureCause::PermissionDenied { operation: "ecs:UpdateService".into() },
            FailureCause::ImagePullFailure,
            FailureCause::ContainerExited { code: 137 },
            FailureCause::HealthCheckFailed,
            FailureCause::CapacityUnavailable,
            FailureCause::StabilityTimeout { waited_secs: 300 },
            FailureCause::CircuitBreakerTripped { failed_tasks: 3, threshold: 3 },
            FailureCause::AlarmFired { alarms: vec!["web-5xx".into()] },
            FailureCause::AwsUnavailable { operation: "DescribeServices".into() },
            FailureCause::AwsRejected { operation: "CreateService".into(), code: "ClusterNotFoundException".into(), message: "x".into() },
            FailureCause::NotOwned,
            FailureCause::OperatorRollback,
            FailureCause::AccountNotConfigured { account: "210987654321".into(), own: Some("123456789012".into()) },
        ];
        let steps: Vec<String> = causes.into_iter().map(|c| next_step(&record(Some(c)))).collect();
        let distinct: std::collections::BTreeSet<&String> = steps.iter().collect();
        assert_eq!(distinct.len(), steps.len(), "{steps:#?}");
        assert!(steps[2].contains("ecs:UpdateService") && steps[4].contains("137") && steps[9].contains("web-5xx"));
        assert!(next_step(&record(None)).contains("nothing failed"));
    }
}
