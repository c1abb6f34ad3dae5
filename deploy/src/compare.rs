//! "AWS holds what the files say": one comparison of an ECS service's svcdef with what
//! DescribeServices reports (and, through [`lambda_function`], of a Lambda function's
//! configuration with its lambdadef), used by every decision that needs it (issue 23): a rolling
//! deployment sends UpdateService when it finds differences and ends `Succeeded` only when it
//! finds none; drift compares with it; a rollback checks the restored fields with it.
//!
//! The comparison reads only fields the file sets (a field the file leaves out is AWS's or an
//! autoscaler's to choose). Objects are compared key by key on the keys the file sets (AWS adds
//! defaults and read-only keys); lists as the table below says. Each difference names a JSON
//! pointer into the svcdef, the file's value and AWS's.
//!
//! ## Normalization table (one row per rule, each with a unit test below)
//!
//! | rule | where | why (AWS's API reference / botocore's ECS model) |
//! |---|---|---|
//! | a number sent as a string equals the number | every scalar | templates render `"2"` for `2`; ECS parses both |
//! | an absent AWS value equals its documented default | [`aws_default`] | DescribeServices omits `enableExecuteCommand: false`, `assignPublicIp: DISABLED`, a strategy item's `base: 0` … |
//! | an empty list equals an absent one | every list | ECS omits empty `loadBalancers`, `serviceRegistries`, `placementConstraints` |
//! | order does not matter | [`UNORDERED`] | subnets, security groups, load balancers, registries, constraints and capacity providers are sets (ECS reorders them) |
//! | order matters | `placementStrategy` | ECS applies placement strategies in order |
//! | enum strings compare in any case | `placementStrategy/*/field`, `propagateTags`, `assignPublicIp`, `launchType`, `schedulingStrategy` | ECS answers `MEMORY` for `memory` |
//! | a name equals an ARN ending in `/name` or `:name` | `capacityProvider`, `registryArn`, `targetGroupArn`, `roleArn` ARNs vs names | ECS accepts either and answers its own form |
//!
//! ## Compared and not compared
//! [`COMPARED`] lists the svcdef fields compared. Not compared, and why:
//! - `desiredCount`: Application Auto Scaling and operators own it (SPEC §3.1).
//! - `serviceConnectConfiguration`, `volumeConfigurations`, `vpcLatticeConfigurations`:
//!   DescribeServices reports them only inside `deployments[]`, not on the service.
//! - `tags`: gitmoxi's ownership tags are merged into them; compared by ownership instead.
//! - `role`, `deploymentController`, `clientToken`, `cluster`, `serviceName`: identity or
//!   create-only fields (a different value is another service, or a replacement).
//! - the task-set fields of a blue/green (EXTERNAL) service (`loadBalancers`,
//!   `networkConfiguration`, `launchType`, `capacityProviderStrategy`, `platformVersion`,
//!   `serviceRegistries`): ECS keeps them on its task sets, not on the service.
//! - `taskDefinition`: compared as the resolved ARN by the strategies (a name in the file).

#![allow(
    clippy::wildcard_enum_match_arm,
    reason = "JSON shapes: a wildcard over serde_json::Value means \"any other JSON\"; no domain enum is matched here with a wildcard"
)]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The svcdef fields compared with DescribeServices (the service-level fields UpdateService or
/// CreateService set that DescribeServices reports back).
pub const COMPARED: &[&str] = &[
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

/// Fields UpdateService cannot change: a difference in one needs the service replaced.
pub const CREATE_ONLY: &[&str] = &["launchType", "schedulingStrategy"];

/// AWS's documented default for a field DescribeServices leaves out (`pattern`: a pointer with
/// `*` for any list index).
pub fn aws_default(pattern: &str) -> Option<Value> {
    let v = match pattern {
        "/enableExecuteCommand" | "/enableECSManagedTags" => Value::Bool(false),
        "/healthCheckGracePeriodSeconds" => Value::from(0),
        "/propagateTags" => Value::from("NONE"),
        "/schedulingStrategy" => Value::from("REPLICA"),
        "/networkConfiguration/awsvpcConfiguration/assignPublicIp" => Value::from("DISABLED"),
        "/capacityProviderStrategy/*/base" | "/capacityProviderStrategy/*/weight" => Value::from(0),
        "/deploymentConfiguration/deploymentCircuitBreaker/enable"
        | "/deploymentConfiguration/deploymentCircuitBreaker/rollback"
        | "/deploymentConfiguration/alarms/enable"
        | "/deploymentConfiguration/alarms/rollback" => Value::Bool(false),
        _ => return None,
    };
    Some(v)
}

/// Lists whose order AWS does not keep.
pub const UNORDERED: &[&str] = &[
    "/capacityProviderStrategy",
    "/networkConfiguration/awsvpcConfiguration/subnets",
    "/networkConfiguration/awsvpcConfiguration/securityGroups",
    "/placementConstraints",
    "/loadBalancers",
    "/serviceRegistries",
    "/deploymentConfiguration/alarms/alarmNames",
    "/deploymentConfiguration/lifecycleHooks",
];

/// Strings that are enums: compared in any case.
const CASELESS: &[&str] = &[
    "/placementStrategy/*/field",
    "/placementStrategy/*/type",
    "/placementConstraints/*/type",
    "/propagateTags",
    "/networkConfiguration/awsvpcConfiguration/assignPublicIp",
    "/launchType",
    "/schedulingStrategy",
    "/availabilityZoneRebalancing",
];

/// Strings that may be a name in the file and an ARN in AWS's answer.
const NAME_OR_ARN: &[&str] =
    &["/capacityProviderStrategy/*/capacityProvider", "/loadBalancers/*/targetGroupArn", "/serviceRegistries/*/registryArn"];

/// One field where AWS does not hold what the file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// A JSON pointer into the svcdef (e.g. `/networkConfiguration/awsvpcConfiguration/securityGroups`).
    pub pointer: String,
    /// The file's value.
    pub file: Value,
    /// AWS's value (`None`: AWS reports nothing there).
    pub aws: Option<Value>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.aws {
            Some(aws) => write!(f, "AWS holds {} for {}; the file says {}", brief(aws), self.pointer, brief(&self.file)),
            None => write!(f, "AWS holds nothing for {}; the file says {}", self.pointer, brief(&self.file)),
        }
    }
}

/// A value in at most 160 characters, for messages.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 160 {
        return s;
    }
    let mut end = 157;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The differences as one line each, for a failure's evidence and a drift finding.
pub fn describe(differences: &[Difference]) -> Vec<String> {
    differences.iter().map(ToString::to_string).collect()
}

/// How the service is deployed: a blue/green (EXTERNAL) service's load balancers belong to its
/// task sets and are not compared on the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// ECS deployment controller (rolling or ECS's own strategies).
    Ecs,
    /// EXTERNAL deployment controller (gitmoxi's task-set blue/green).
    External,
}

/// The svcdef fields that differ from the service DescribeServices reports (`described`: the
/// service object in the API's JSON shape, camelCase names). Empty: AWS holds what the file
/// says, as far as DescribeServices can tell.
pub fn ecs_service(svcdef: &Value, described: &Value, kind: ServiceKind) -> Vec<Difference> {
    let mut out = Vec::new();
    let Value::Object(file) = svcdef else { return out };
    for field in COMPARED {
        if kind == ServiceKind::External && crate::strategy::ecs_blue_green::TASK_SET_FIELDS.contains(field) {
            // set on the service's task sets, never on the service itself
            continue;
        }
        let Some(want) = file.get(*field).filter(|v| !v.is_null()) else { continue };
        let pointer = format!("/{field}");
        compare(&pointer, &pointer, want, described.get(*field), &mut out);
    }
    out
}

/// A Lambda function's configuration against its lambdadef: the same rule (only what the file
/// sets, Lambda's defaults aside), with Lambda's own normalization table in
/// [`crate::spec::lambda::config_view`] (numbers from strings, id lists sorted, layers as ARNs,
/// read-only parts dropped). One line per field that differs.
pub fn lambda_function(lambdadef: &Value, aws: &std::collections::BTreeMap<String, Value>) -> Vec<String> {
    crate::spec::lambda::config_differences(&crate::spec::lambda::config_view(lambdadef), aws)
}

/// The differences in fields UpdateService can change (the rest need a replacement).
pub fn updatable(differences: &[Difference]) -> impl Iterator<Item = &Difference> {
    differences.iter().filter(|d| !CREATE_ONLY.contains(&top_field(&d.pointer)))
}

/// The svcdef field a pointer starts in (`/a/b/0` → `a`).
pub fn top_field(pointer: &str) -> &str {
    pointer.trim_start_matches('/').split('/').next().unwrap_or_default()
}

/// Whether an UpdateService with these differences must force a new deployment (ECS refuses
/// a capacity provider strategy change without one).
pub fn needs_new_deployment(differences: &[Difference]) -> bool {
    differences.iter().any(|d| top_field(&d.pointer) == "capacityProviderStrategy")
}

/// `pointer` is the concrete one; `pattern` has `*` for list indexes (the tables' keys).
fn compare(pointer: &str, pattern: &str, want: &Value, have: Option<&Value>, out: &mut Vec<Difference>) {
    let defaulted;
    let have = match have.filter(|v| !v.is_null()) {
        Some(v) => Some(v),
        None => {
            defaulted = aws_default(pattern);
            defaulted.as_ref()
        }
    };
    match want {
        Value::Null => {}
        Value::Object(fields) => match have {
            Some(Value::Object(theirs)) => {
                for (k, v) in fields {
                    if v.is_null() {
                        continue;
                    }
                    compare(&format!("{pointer}/{k}"), &format!("{pattern}/{k}"), v, theirs.get(k), out);
                }
            }
            _ if fields.values().all(is_emptyish) => {}
            other => out.push(Difference { pointer: pointer.to_string(), file: want.clone(), aws: other.cloned() }),
        },
        Value::Array(items) => {
            let theirs: &[Value] = match have {
                Some(Value::Array(a)) => a,
                None => &[],
                Some(_) => {
                    out.push(Difference { pointer: pointer.to_string(), file: want.clone(), aws: have.cloned() });
                    return;
                }
            };
            let item_pattern = format!("{pattern}/*");
            let same = if UNORDERED.contains(&pattern) {
                same_set(items, theirs, &item_pattern)
            } else {
                items.len() == theirs.len() && items.iter().zip(theirs).all(|(w, h)| matches(&item_pattern, w, Some(h)))
            };
            if !same {
                out.push(Difference { pointer: pointer.to_string(), file: want.clone(), aws: have.cloned() });
            }
        }
        scalar => {
            if !same_scalar(pattern, scalar, have) {
                out.push(Difference { pointer: pointer.to_string(), file: want.clone(), aws: have.cloned() });
            }
        }
    }
}

/// An object of the file whose every value is empty matches an absent one.
fn is_emptyish(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_emptyish),
        _ => false,
    }
}

fn matches(pattern: &str, want: &Value, have: Option<&Value>) -> bool {
    let mut found = Vec::new();
    compare(pattern, pattern, want, have, &mut found);
    found.is_empty()
}

/// Every wanted item matches a distinct item of AWS's, and AWS has no more.
fn same_set(want: &[Value], have: &[Value], item_pattern: &str) -> bool {
    if want.len() != have.len() {
        return false;
    }
    let mut used = vec![false; have.len()];
    'wanted: for w in want {
        for (i, h) in have.iter().enumerate() {
            if !used[i] && matches(item_pattern, w, Some(h)) {
                used[i] = true;
                continue 'wanted;
            }
        }
        return false;
    }
    true
}

fn same_scalar(pattern: &str, want: &Value, have: Option<&Value>) -> bool {
    let Some(have) = have else { return false };
    if want == have {
        return true;
    }
    if let (Some(w), Some(h)) = (as_number(want), as_number(have)) {
        return (w - h).abs() < 1e-9;
    }
    match (want, have) {
        (Value::String(w), Value::String(h)) => {
            (CASELESS.contains(&pattern) && w.eq_ignore_ascii_case(h)) || (NAME_OR_ARN.contains(&pattern) && same_name_or_arn(w, h))
        }
        (Value::Bool(w), Value::String(h)) | (Value::String(h), Value::Bool(w)) => {
            h.eq_ignore_ascii_case(if *w { "true" } else { "false" })
        }
        _ => false,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn same_name_or_arn(a: &str, b: &str) -> bool {
    let tail = |s: &str| s.rsplit(['/', ':']).next().unwrap_or(s).to_string();
    match (a.starts_with("arn:"), b.starts_with("arn:")) {
        (true, true) => a == b,
        (false, true) => tail(b) == a,
        (true, false) => tail(a) == b,
        (false, false) => a == b,
    }
}

/// The svcdef fields of `svcdef` an UpdateService can carry, each with the value that puts the
/// service back where the file says; for the fields `previous` sets and `current` does not, the
/// value that clears them where ECS documents one (an empty list, `false`, `NONE`).
pub fn restoring_fields(previous: &Value, current: Option<&Value>) -> serde_json::Map<String, Value> {
    let mut body = serde_json::Map::new();
    if let Value::Object(prev) = previous {
        for field in crate::strategy::ecs_rolling::UPDATABLE {
            if let Some(v) = prev.get(*field).filter(|v| !v.is_null()) {
                body.insert((*field).to_string(), v.clone());
            }
        }
    }
    if let Some(Value::Object(cur)) = current {
        for field in crate::strategy::ecs_rolling::UPDATABLE {
            if body.contains_key(*field) || cur.get(*field).is_none_or(Value::is_null) {
                continue;
            }
            if let Some(clear) = cleared(field) {
                body.insert((*field).to_string(), clear);
            }
        }
    }
    body
}

/// The value that clears an UpdateService field, where ECS documents one.
fn cleared(field: &str) -> Option<Value> {
    match field {
        "loadBalancers" | "serviceRegistries" | "placementConstraints" | "placementStrategy" => Some(Value::Array(Vec::new())),
        "enableExecuteCommand" | "enableECSManagedTags" => Some(Value::Bool(false)),
        "propagateTags" => Some(Value::from("NONE")),
        "healthCheckGracePeriodSeconds" => Some(Value::from(0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
