//! A service's settings in the fake world, as DescribeServices reports them (ECS API reference,
//! `Service` shape): what CreateService set, with the defaults ECS fills in
//! (`deploymentConfiguration` 200 / 100 with the circuit breaker off, `propagateTags` NONE,
//! `enableECSManagedTags` and `enableExecuteCommand` false, `schedulingStrategy` REPLICA,
//! `platformVersion` LATEST on Fargate), changed by each UpdateService field. A capacity
//! provider strategy change without `forceNewDeployment` is refused with ECS's own message.

use serde_json::{json, Map, Value};

/// The fields CreateService stores and DescribeServices reports back.
const STORED: &[&str] = &[
    "capacityProviderStrategy",
    "deploymentConfiguration",
    "networkConfiguration",
    "placementConstraints",
    "placementStrategy",
    "platformVersion",
    "healthCheckGracePeriodSeconds",
    "enableExecuteCommand",
    "enableECSManagedTags",
    "loadBalancers",
    "propagateTags",
    "serviceRegistries",
    "launchType",
    "schedulingStrategy",
    "availabilityZoneRebalancing",
];

/// Fields CreateService takes and UpdateService does not: a new service is needed to change them.
const CREATE_ONLY: &[&str] = &["launchType", "schedulingStrategy"];

/// ECS's answer to a strategy change without a new deployment.
pub(super) const FORCE_NEEDED: &str = "When switching from launch type to capacity provider strategy on an existing service, or making a change to a capacity provider strategy on a service that is already using one, you must force a new deployment.";

fn deployment_configuration(sent: Option<&Value>) -> Value {
    let mut config = json!({
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "deploymentCircuitBreaker": {"enable": false, "rollback": false}
    });
    if let (Some(Value::Object(sent)), Value::Object(out)) = (sent, &mut config) {
        for (k, v) in sent {
            out.insert(k.clone(), v.clone());
        }
    }
    config
}

/// The settings of a service CreateService made from `body`.
pub(super) fn created(body: &Value) -> Map<String, Value> {
    let mut settings: Map<String, Value> =
        STORED.iter().filter_map(|f| body.get(*f).filter(|v| !v.is_null()).map(|v| ((*f).to_string(), v.clone()))).collect();
    settings.insert("deploymentConfiguration".into(), deployment_configuration(body.get("deploymentConfiguration")));
    settings.entry("propagateTags").or_insert_with(|| json!("NONE"));
    settings.entry("enableECSManagedTags").or_insert(Value::Bool(false));
    settings.entry("enableExecuteCommand").or_insert(Value::Bool(false));
    settings.entry("schedulingStrategy").or_insert_with(|| json!("REPLICA"));
    if settings.get("launchType").and_then(Value::as_str) == Some("FARGATE") {
        settings.entry("platformVersion").or_insert_with(|| json!("LATEST"));
    }
    settings
}

/// Whether ECS refuses this UpdateService before changing anything: a capacity provider
/// strategy change without `forceNewDeployment` ([`FORCE_NEEDED`]).
pub(super) fn refuses(settings: &Map<String, Value>, body: &Value) -> bool {
    let Some(strategy) = body.get("capacityProviderStrategy").filter(|v| !v.is_null()) else { return false };
    let changes = settings.get("capacityProviderStrategy") != Some(strategy);
    let forced = body.get("forceNewDeployment").and_then(Value::as_bool) == Some(true);
    changes && !forced
}

/// Applies an UpdateService `body` ECS accepted ([`refuses`] said no) to `settings`.
pub(super) fn apply(settings: &mut Map<String, Value>, body: &Value) {
    for field in STORED.iter().filter(|f| !CREATE_ONLY.contains(f)) {
        let Some(v) = body.get(*field).filter(|v| !v.is_null()) else { continue };
        match *field {
            "deploymentConfiguration" => {
                settings.insert((*field).to_string(), deployment_configuration(Some(v)));
            }
            "capacityProviderStrategy" => {
                settings.remove("launchType");
                settings.insert((*field).to_string(), v.clone());
            }
            _ => {
                settings.insert((*field).to_string(), v.clone());
            }
        }
    }
}
