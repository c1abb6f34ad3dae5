//! An ECS app: its rendered svcdef, taskdef and depdef, validated, with its AWS identity (SPEC §3).
//!
//! Invariant: an `EcsApp` is always deployable as far as files can tell: it has a service name, a
//! task definition source and a supported deployment controller.

#![allow(
    clippy::wildcard_enum_match_arm,
    reason = "JSON shapes: a wildcard over serde_json::Value means \"any other JSON\"; no domain enum is matched here with a wildcard"
)]

use super::diag::Diagnostic;
use super::ecs_depdef::EcsDepdef;
use super::fields::{show, FieldReader};
use super::render::Rendered;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which gitmoxi strategy deploys the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EcsStrategy {
    /// `deploymentController.type` ECS or absent: ECS replaces tasks, gitmoxi watches.
    Rolling,
    /// `deploymentController.type` EXTERNAL: gitmoxi blue/green with task sets.
    BlueGreen,
}

impl EcsStrategy {
    /// The strategy as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            EcsStrategy::Rolling => "rolling",
            EcsStrategy::BlueGreen => "blue_green",
        }
    }
}

/// The desired state of one ECS service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcsApp {
    /// The CreateService body as rendered (taskDefinition is set at deploy time).
    pub svcdef: Value,
    /// The RegisterTaskDefinition body, when the app has a taskdef file.
    pub taskdef: Option<Value>,
    /// How the service deploys.
    pub depdef: EcsDepdef,
    /// Cluster name or ARN as written (`default` when absent).
    pub cluster: String,
    /// The service's name.
    pub service_name: String,
    /// The region it deploys to.
    pub region: String,
    /// The account it names; `None`: the controller's own.
    pub account: Option<String>,
    /// Rolling update or blue/green, as the depdef says.
    pub strategy: EcsStrategy,
}

impl EcsApp {
    /// The task definition family this app registers into, when it has a taskdef.
    pub fn family(&self) -> Option<&str> {
        self.taskdef.as_ref().and_then(|t| t.get("family")).and_then(Value::as_str)
    }

    /// The desired task count (CreateService defaults to 0 when absent... we follow AWS).
    pub fn desired_count(&self) -> Option<u32> {
        self.svcdef.get("desiredCount").and_then(Value::as_u64).map(|n| n as u32)
    }
}

/// The short cluster name of a cluster name or ARN.
pub fn cluster_name(cluster: &str) -> &str {
    if cluster.starts_with("arn:") {
        cluster.rsplit('/').next().unwrap_or(cluster)
    } else {
        cluster
    }
}

/// Validates rendered ECS files and builds the app.
pub fn build_ecs_app(
    svcdef: &Rendered,
    taskdef: Option<&Rendered>,
    depdef: EcsDepdef,
    default_region: &str,
) -> Result<EcsApp, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut r = FieldReader::new(&svcdef.path, &svcdef.text);
    let Value::Object(svc) = &svcdef.json else {
        return Err(vec![Diagnostic::new(&svcdef.path, "the svcdef must be a JSON object: the body of an ECS CreateService request")
            .at(Some(1), Some(1))]);
    };
    let service_name = r.string(svc.get("serviceName"), "serviceName").unwrap_or_default();
    if service_name.is_empty() {
        if !svc.contains_key("serviceName") {
            errors.push(Diagnostic::new(&svcdef.path, "serviceName is missing; add \"serviceName\": \"<name>\"").at(Some(1), Some(1)));
        }
    } else if service_name.len() > 255 || !service_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        r.error("serviceName", format!("\"{service_name}\" is not a valid ECS service name (letters, digits, '-', '_', at most 255)"));
    }
    let cluster = r.string(svc.get("cluster"), "cluster").filter(|c| !c.is_empty()).unwrap_or_else(|| "default".to_string());
    if let Some(count) = svc.get("desiredCount") {
        r.int(Some(count), "desiredCount", 0, i64::MAX);
    }
    let strategy = match svc.get("deploymentController").and_then(|c| c.get("type")) {
        None | Some(Value::Null) => EcsStrategy::Rolling,
        Some(Value::String(t)) if t == "ECS" => EcsStrategy::Rolling,
        Some(Value::String(t)) if t == "EXTERNAL" => EcsStrategy::BlueGreen,
        Some(Value::String(t)) if t == "CODE_DEPLOY" => {
            r.error(
                "deploymentController.type",
                "CODE_DEPLOY is not supported by gitmoxi; use EXTERNAL for gitmoxi blue/green or ECS for rolling",
            );
            EcsStrategy::Rolling
        }
        Some(other) => {
            r.error("deploymentController.type", format!("is {}; use ECS (rolling) or EXTERNAL (blue/green)", show(other)));
            EcsStrategy::Rolling
        }
    };
    let has = |field: &str| svc.get(field).is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    if has("launchType") && has("capacityProviderStrategy") {
        r.error("capacityProviderStrategy", "ECS takes a launchType or a capacityProviderStrategy, not both: remove launchType");
    }
    if svc.get("resourceManagementType").and_then(Value::as_str) == Some("ECS") {
        r.error(
            "resourceManagementType",
            "is ECS (an ECS Express Mode service, whose resources ECS manages): gitmoxi deploys services it manages itself; remove the field",
        );
    }
    if strategy == EcsStrategy::BlueGreen && !depdef.target_group_pairs.is_empty() {
        // the blue/green checks the files alone can make, so `validate` and `plan` make them too
        let pairs = &depdef.target_group_pairs;
        match svc.get("loadBalancers").and_then(Value::as_array).filter(|l| !l.is_empty()) {
            None => r.error(
                "loadBalancers",
                "the depdef sets targetGroupArnPairs but the svcdef has no loadBalancers: add loadBalancers with targetGroupArn, containerName and containerPort",
            ),
            Some(entries) => {
                for (i, entry) in entries.iter().enumerate() {
                    match entry.get("targetGroupArn").and_then(Value::as_str) {
                        None => r.error(&format!("loadBalancers[{i}].targetGroupArn"), "is required: blue/green task sets need target groups"),
                        Some(tg) if !pairs.iter().any(|(a, b)| a == tg || b == tg) => r.error(
                            &format!("loadBalancers[{i}].targetGroupArn"),
                            format!("{tg} is in no pair of the depdef's targetGroupArnPairs: add its pair"),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    let task_definition_ref = r.string(svc.get("taskDefinition"), "taskDefinition");
    errors.append(&mut r.errors);

    let taskdef_json = match taskdef {
        Some(t) => {
            let mut tr = FieldReader::new(&t.path, &t.text);
            match &t.json {
                Value::Object(td) => {
                    match tr.string(td.get("family"), "family") {
                        Some(f) if !f.is_empty() => {}
                        _ if !td.contains_key("family") => {
                            tr.errors.push(Diagnostic::new(&t.path, "family is missing; add \"family\": \"<name>\"").at(Some(1), Some(1)))
                        }
                        _ => tr.error("family", "must be a non-empty string"),
                    }
                    match td.get("containerDefinitions") {
                        Some(Value::Array(items)) if !items.is_empty() => {
                            for (i, c) in items.iter().enumerate() {
                                for field in ["name", "image"] {
                                    if !c.get(field).is_some_and(Value::is_string) {
                                        tr.error(&format!("containerDefinitions[{i}].{field}"), "is required and must be a string");
                                    }
                                }
                            }
                        }
                        Some(_) => tr.error("containerDefinitions", "must be a non-empty list of containers"),
                        None => tr.errors.push(
                            Diagnostic::new(&t.path, "containerDefinitions is missing; a task definition needs at least one container")
                                .at(Some(1), Some(1)),
                        ),
                    }
                }
                _ => tr.errors.push(
                    Diagnostic::new(&t.path, "the taskdef must be a JSON object: the body of a RegisterTaskDefinition request")
                        .at(Some(1), Some(1)),
                ),
            }
            errors.append(&mut tr.errors);
            Some(t.json.clone())
        }
        None => {
            if task_definition_ref.as_deref().unwrap_or("").is_empty() {
                errors.push(Diagnostic::new(
                    &svcdef.path,
                    "no task definition: add a _taskdef.json beside the svcdef, or set \"taskDefinition\" (family:revision or ARN) in the svcdef",
                ));
            }
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let region = depdef.region.clone().unwrap_or_else(|| region_from_arn(&cluster).unwrap_or(default_region).to_string());
    Ok(EcsApp {
        svcdef: svcdef.json.clone(),
        taskdef: taskdef_json,
        account: depdef.account.clone(),
        depdef,
        cluster,
        service_name,
        region,
        strategy,
    })
}

fn region_from_arn(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:").and_then(|rest| rest.split(':').nth(2)).filter(|r| !r.is_empty())
}

/// ECS's own strategies with `analysis` (issue 25): a PAUSE lifecycle hook before every
/// production step (`PRE_PRODUCTION_TRAFFIC_SHIFT`), unless the svcdef has one, so gitmoxi's
/// analysis answers CONTINUE or ROLLBACK; when nobody answers (gitmoxi down), ECS rolls back
/// after the hook's timeout.
pub fn pause_for_analysis(svcdef: &mut Value, hold_timeout_secs: u64) {
    let Some(config) = svcdef.get_mut("deploymentConfiguration").and_then(Value::as_object_mut) else { return };
    let hooks = config.entry("lifecycleHooks").or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = hooks.as_array_mut() else { return };
    let present = list.iter().any(|h| {
        h.get("targetType").and_then(Value::as_str) == Some("PAUSE")
            && h.get("lifecycleStages")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|x| x.as_str() == Some("PRE_PRODUCTION_TRAFFIC_SHIFT")))
    });
    if !present {
        let minutes = hold_timeout_secs.div_ceil(60) + 60;
        list.push(serde_json::json!({
            "targetType": "PAUSE",
            "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": minutes, "action": "ROLLBACK"}
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered(path: &str, json: Value) -> Rendered {
        Rendered { path: path.into(), text: serde_json::to_string_pretty(&json).unwrap(), json, variables: Default::default() }
    }

    #[test]
    fn builds_a_rolling_app_with_defaults() {
        let svc = rendered("a_svcdef.json", json!({"serviceName": "web", "desiredCount": 2}));
        let td = rendered("a_taskdef.json", json!({"family": "web", "containerDefinitions": [{"name": "c", "image": "i"}]}));
        let app = build_ecs_app(&svc, Some(&td), EcsDepdef::default(), "us-east-1").unwrap();
        assert_eq!((app.cluster.as_str(), app.region.as_str(), app.strategy), ("default", "us-east-1", EcsStrategy::Rolling));
        assert_eq!(app.family(), Some("web"));
        assert_eq!(app.desired_count(), Some(2));
    }

    #[test]
    fn external_controller_selects_blue_green_and_code_deploy_is_rejected() {
        let td = rendered("a_taskdef.json", json!({"family": "web", "containerDefinitions": [{"name": "c", "image": "i"}]}));
        let svc = rendered("a_svcdef.json", json!({"serviceName": "web", "deploymentController": {"type": "EXTERNAL"}}));
        assert_eq!(build_ecs_app(&svc, Some(&td), EcsDepdef::default(), "r").unwrap().strategy, EcsStrategy::BlueGreen);
        let svc = rendered("a_svcdef.json", json!({"serviceName": "web", "deploymentController": {"type": "CODE_DEPLOY"}}));
        let e = build_ecs_app(&svc, Some(&td), EcsDepdef::default(), "r").unwrap_err();
        assert!(e[0].message.contains("CODE_DEPLOY"));
    }

    #[test]
    fn missing_pieces_are_reported_with_their_file() {
        let svc = rendered("a_svcdef.json", json!({"cluster": "c"}));
        let e = build_ecs_app(&svc, None, EcsDepdef::default(), "r").unwrap_err();
        assert!(e.iter().any(|d| d.message.contains("serviceName is missing")));
        assert!(e.iter().any(|d| d.message.contains("no task definition")));
        let svc = rendered("a_svcdef.json", json!({"serviceName": "web"}));
        let td = rendered("a_taskdef.json", json!({"family": "web", "containerDefinitions": [{"name": "c"}]}));
        let e = build_ecs_app(&svc, Some(&td), EcsDepdef::default(), "r").unwrap_err();
        assert_eq!(e[0].file, "a_taskdef.json");
        assert!(e[0].message.contains("containerDefinitions[0].image"));
    }

    #[test]
    fn region_comes_from_depdef_then_cluster_arn_then_default() {
        let svc = rendered(
            "a_svcdef.json",
            json!({"serviceName": "w", "taskDefinition": "web:1", "cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/prod"}),
        );
        let app = build_ecs_app(&svc, None, EcsDepdef::default(), "us-east-1").unwrap();
        assert_eq!(app.region, "eu-west-1");
        assert_eq!(cluster_name(&app.cluster), "prod");
        let depdef = EcsDepdef { region: Some("ap-south-1".into()), ..EcsDepdef::default() };
        assert_eq!(build_ecs_app(&svc, None, depdef, "us-east-1").unwrap().region, "ap-south-1");
    }
}
