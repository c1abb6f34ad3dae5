//! A Lambda app (SPEC §4): the rendered lambdadef (a CreateFunction body), the depdef with every
//! field, default and legacy alias of §4.1, and the event sources of §4.3, validated.
//!
//! Invariants: a `LambdaApp` is deployable as far as files can tell: it has a function name, code,
//! an alias, weights and intervals in range, and only known push-source services. Errors name the
//! file, the field and the fix; unknown fields are warnings.

#![allow(
    clippy::wildcard_enum_match_arm,
    reason = "JSON shapes: a wildcard over serde_json::Value means \"any other JSON\"; no domain enum is matched here with a wildcard"
)]

use super::diag::Diagnostic;
use super::fields::{show, FieldReader};
use super::render::Rendered;
use crate::schedule::{ShiftType, TrafficShifting};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `readinessCheck` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessCheck {
    /// Seconds between two readiness looks.
    pub wait_interval_secs: u64,
    /// Looks before the version counts as not ready.
    pub max_retries: u32,
}

impl Default for ReadinessCheck {
    fn default() -> Self {
        ReadinessCheck { wait_interval_secs: 10, max_retries: 5 }
    }
}

/// Parsed `_lambdadepdef.json` with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaDepdef {
    /// Apps of the same branch that must run the head's files before this one starts
    /// (`dependsOn`, issue 26).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The alias traffic shifts on.
    pub alias: String,
    /// The region, when the depdef names one.
    pub region: Option<String>,
    /// The account, when the depdef names one.
    pub account: Option<String>,
    /// How traffic moves to a new version; `trafficShiftingEnabled: false` = all at once.
    pub traffic_shifting: TrafficShifting,
    /// CloudWatch alarms watched while traffic shifts.
    pub alarm_names: Vec<String>,
    /// How long to wait for a new version to be Active.
    pub readiness: ReadinessCheck,
    /// Delete the previous version once the new one takes all traffic.
    pub delete_old_version: bool,
    /// Per-app notifications (SPEC §6.3), as in an ECS depdef.
    #[serde(default)]
    pub webhooks: Vec<super::ecs_depdef::AppWebhook>,
    /// Metric analysis at each traffic step and the bake (issue 25), when configured.
    #[serde(default)]
    pub analysis: Option<crate::analysis::AnalysisSpec>,
    /// `trafficShiftingConfig.steps`: an explicit schedule (issue 25), instead of type + percent.
    #[serde(default)]
    pub shift_steps: Option<Vec<crate::schedule::ShiftStep>>,
    /// `hooks` (issue 25): Lambda invocations before the first shift, at 100 % and before the
    /// alias moves for good.
    #[serde(default)]
    pub hooks: Option<super::hooks::Hooks>,
}

impl LambdaDepdef {
    /// The traffic steps the new version goes through: the explicit `steps`, else the shorthand.
    pub fn schedule(&self) -> Vec<crate::schedule::ShiftStep> {
        self.shift_steps.clone().unwrap_or_else(|| self.traffic_shifting.expand(None))
    }
}

/// A push event source (SPEC §4.3), wired to the alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum PushSource {
    /// `elasticloadbalancing.amazonaws.com`: invoke permission + the alias as the target.
    Elb {
        /// The lambda-type target group that invokes the alias.
        target_group_arn: String,
    },
    /// `apigateway.amazonaws.com`: invoke permission + an integration attached to the route.
    ApiGateway {
        /// The HTTP API's id.
        api_id: String,
        /// The route whose target is the alias's integration.
        route_id: String,
        /// An ALB target group: invoke permission + the alias as its target.
        /// A stage variable naming the alias, when the integration uses one.
        stage_variable: Option<String>,
    },
}

impl PushSource {
    /// The service principal allowed to invoke the alias.
    pub fn principal(&self) -> &'static str {
        match self {
            PushSource::Elb { .. } => "elasticloadbalancing.amazonaws.com",
            PushSource::ApiGateway { .. } => "apigateway.amazonaws.com",
        }
    }
}

/// `_lambdaeventsourcedef.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventSources {
    /// Sources that invoke the alias (permission + wiring).
    pub push: Vec<PushSource>,
    /// CreateEventSourceMapping bodies (without FunctionName), each with its EventSourceArn.
    pub pull: Vec<Value>,
}

/// The desired state of one Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaApp {
    /// The CreateFunction body as rendered.
    pub lambdadef: Value,
    /// The event sources wired to the alias.
    pub event_sources: EventSources,
    /// How the function deploys.
    pub depdef: LambdaDepdef,
    /// The function's name.
    pub function_name: String,
    /// The alias's name.
    pub alias: String,
    /// The region it deploys to.
    pub region: String,
    /// The account it names; `None`: the controller's own.
    pub account: Option<String>,
}

/// Fields of a CreateFunction body that UpdateFunctionConfiguration accepts.
pub const CONFIG_FIELDS: &[&str] = &[
    "Role",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "VpcConfig",
    "Environment",
    "Runtime",
    "DeadLetterConfig",
    "KMSKeyArn",
    "TracingConfig",
    "Layers",
    "FileSystemConfigs",
    "ImageConfig",
    "EphemeralStorage",
    "SnapStart",
    "LoggingConfig",
];

/// Fields of the `Code` object that UpdateFunctionCode takes.
pub const CODE_FIELDS: &[&str] = &["ZipFile", "S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"];

impl LambdaApp {
    /// The UpdateFunctionConfiguration fields of the lambdadef.
    pub fn configuration(&self) -> Map<String, Value> {
        CONFIG_FIELDS.iter().filter_map(|f| self.lambdadef.get(*f).map(|v| (f.to_string(), v.clone()))).collect()
    }

    /// The `Code` object of the lambdadef.
    pub fn code(&self) -> Map<String, Value> {
        self.lambdadef.get("Code").and_then(Value::as_object).cloned().unwrap_or_default()
    }
}

/// The fields compared between a lambdadef, `$LATEST` and published versions: every
/// UpdateFunctionConfiguration field ([`CONFIG_FIELDS`]) but `Description` (gitmoxi writes its
/// own on versions), plus `Architectures` (sent with the code).
pub fn compared_fields() -> impl Iterator<Item = &'static str> {
    CONFIG_FIELDS.iter().copied().filter(|f| *f != "Description").chain(["Architectures"])
}

/// A function configuration in one comparable form: `config` is a CreateFunction body or a
/// GetFunctionConfiguration answer (as JSON with the API's field names); the result holds each
/// compared field it sets, canonical (numbers from strings, id lists sorted, layers as ARNs,
/// `ImageConfigResponse` unwrapped, read-only parts such as `VpcId` dropped). The SDK adapter and
/// the fake world read AWS through this same function, so both sides always agree on the form.
pub fn config_view(config: &Value) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    for field in compared_fields() {
        let raw = match field {
            "ImageConfig" => config.get("ImageConfig").or_else(|| config.pointer("/ImageConfigResponse/ImageConfig")),
            other => config.get(other),
        };
        if let Some(value) = raw.and_then(|v| canonical(field, v)) {
            out.insert(field.to_string(), value);
        }
    }
    out
}

/// One field in canonical form; `None` when it says nothing (null, empty).
fn canonical(field: &str, v: &Value) -> Option<Value> {
    let number = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())).map(Value::from);
    let sorted_strings = |v: Option<&Value>| {
        let mut items: Vec<String> =
            v.and_then(Value::as_array).map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default();
        items.sort();
        Value::from(items)
    };
    let value = match field {
        "MemorySize" | "Timeout" => number(v)?,
        "Environment" => {
            let vars: Map<String, Value> = v
                .get("Variables")
                .and_then(Value::as_object)
                .map(|m| {
                    let mut sorted: Vec<(&String, &Value)> = m.iter().collect();
                    sorted.sort_by(|a, b| a.0.cmp(b.0));
                    sorted
                        .into_iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str().map_or_else(|| v.to_string(), str::to_string))))
                        .collect()
                })
                .unwrap_or_default();
            if vars.is_empty() {
                return None;
            }
            serde_json::json!({ "Variables": vars })
        }
        "Layers" => {
            let arns: Vec<Value> =
                v.as_array()?.iter().filter_map(|l| l.as_str().or_else(|| l.get("Arn").and_then(Value::as_str))).map(Value::from).collect();
            if arns.is_empty() {
                return None;
            }
            Value::from(arns)
        }
        "VpcConfig" => {
            let subnets = sorted_strings(v.get("SubnetIds"));
            let groups = sorted_strings(v.get("SecurityGroupIds"));
            let ipv6 = v.get("Ipv6AllowedForDualStack").and_then(Value::as_bool).unwrap_or(false);
            if subnets.as_array().is_some_and(Vec::is_empty) && groups.as_array().is_some_and(Vec::is_empty) {
                return None;
            }
            serde_json::json!({ "SubnetIds": subnets, "SecurityGroupIds": groups, "Ipv6AllowedForDualStack": ipv6 })
        }
        "EphemeralStorage" => serde_json::json!({ "Size": number(v.get("Size")?)? }),
        "Architectures" => {
            let archs = sorted_strings(Some(v));
            if archs.as_array().is_some_and(Vec::is_empty) {
                return None;
            }
            archs
        }
        "FileSystemConfigs" => {
            let mut items: Vec<Value> = v
                .as_array()?
                .iter()
                .map(|c| serde_json::json!({ "Arn": c.get("Arn").cloned().unwrap_or(Value::Null), "LocalMountPath": c.get("LocalMountPath").cloned().unwrap_or(Value::Null) }))
                .collect();
            if items.is_empty() {
                return None;
            }
            items.sort_by_key(|i| i.to_string());
            Value::from(items)
        }
        "DeadLetterConfig" => {
            let target = v.get("TargetArn").and_then(Value::as_str).filter(|t| !t.is_empty())?;
            serde_json::json!({ "TargetArn": target })
        }
        "KMSKeyArn" => Value::from(v.as_str().filter(|k| !k.is_empty())?),
        _ => match v {
            Value::Null => return None,
            Value::Object(o) if o.is_empty() => return None,
            other => other.clone(),
        },
    };
    Some(value)
}

/// The compared fields where `aws` (a [`config_view`] of what Lambda holds) does not hold what
/// `file` (a [`config_view`] of the lambdadef) sets, as `field: file value ≠ AWS value` lines.
/// Objects compare by the keys the file sets (Lambda adds defaults such as `LogGroup`), except
/// `Environment`, whose variables Lambda replaces as a whole.
pub fn config_differences(
    file: &std::collections::BTreeMap<String, Value>,
    aws: &std::collections::BTreeMap<String, Value>,
) -> Vec<String> {
    file.iter()
        .filter(|(field, want)| !aws.get(*field).is_some_and(|got| if *field == "Environment" { want == &got } else { holds(want, got) }))
        .map(|(field, want)| {
            format!(
                "{field}: the file sets {want}, Lambda holds {}",
                aws.get(field).map_or_else(|| "nothing".to_string(), Value::to_string)
            )
        })
        .collect()
}

/// Whether `got` holds everything `want` sets: objects by `want`'s keys, the rest equal.
fn holds(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().all(|(k, wv)| g.get(k).is_some_and(|gv| holds(wv, gv))),
        (w, g) => w == g,
    }
}

/// The fields of an event source mapping that UpdateEventSourceMapping changes in place.
pub const MAPPING_UPDATABLE: &[&str] = &[
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "Enabled",
    "FilterCriteria",
    "DestinationConfig",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "ParallelizationFactor",
    "TumblingWindowInSeconds",
    "FunctionResponseTypes",
    "ScalingConfig",
];

/// A mapping's updatable fields in one comparable form (a CreateEventSourceMapping body, or what
/// Lambda reports as JSON with the API's names): numbers from strings, empty values dropped.
pub fn mapping_view(mapping: &Value) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    for field in MAPPING_UPDATABLE {
        let value = match mapping.get(*field) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Value::from(s.trim().parse::<u64>().unwrap_or_default()),
            Some(Value::Array(a)) if a.is_empty() => continue,
            Some(Value::Object(o)) if o.is_empty() => continue,
            Some(other) => other.clone(),
        };
        out.insert((*field).to_string(), value);
    }
    out
}

/// The UpdateEventSourceMapping body that makes a mapping (`held`, a [`mapping_view`]) hold
/// every updatable field `body` sets; empty when it already does. `Enabled` defaults to true.
pub fn mapping_changes(body: &Value, held: &std::collections::BTreeMap<String, Value>) -> Map<String, Value> {
    let mut want = mapping_view(body);
    want.entry("Enabled".to_string()).or_insert(Value::Bool(true));
    want.into_iter().filter(|(field, value)| !held.get(field).is_some_and(|got| holds(value, got))).collect()
}

const DEPDEF_FIELDS: &[&str] = &[
    "alias",
    "dependsOn",
    "analysis",
    "hooks",
    "environment",
    "environmentVariables",
    "trafficShiftingConfig",
    "trafficShiftingEnabled",
    "alarms",
    "readinessCheck",
    "deleteOldVersion",
    "webhooks",
];

/// Parses a rendered lambdadepdef; `Err` holds every error.
pub fn parse_lambda_depdef(file: &str, text: &str, json: &Value) -> Result<(LambdaDepdef, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut r = FieldReader::new(file, text);
    let Value::Object(root) = json else {
        return Err(vec![Diagnostic::new(file, "the lambdadepdef must be a JSON object").at(Some(1), Some(1))]);
    };
    r.warn_unknown(root, "", DEPDEF_FIELDS);
    let alias = r.string(root.get("alias"), "alias").unwrap_or_default();
    if alias.is_empty() {
        r.errors.push(
            Diagnostic::new(file, "alias is required: add \"alias\": \"live\" (gitmoxi shifts traffic through it)").at(Some(1), Some(1)),
        );
    } else if alias.chars().all(|c| c.is_ascii_digit()) || !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        r.error("alias", format!("\"{alias}\" is not a valid alias name: use letters, digits, - and _, not only digits"));
    }
    let (env_key, env_value) = match (root.get("environment"), root.get("environmentVariables")) {
        (Some(v), _) => ("environment", Some(v)),
        (None, Some(v)) => ("environmentVariables", Some(v)),
        (None, None) => ("environment", None),
    };
    let mut region = None;
    let mut account = None;
    if let Some(env) = r.object(env_value, env_key) {
        r.warn_unknown(env, env_key, &["region", "account"]);
        region = r.string(env.get("region"), &format!("{env_key}.region")).filter(|s| !s.is_empty());
        account = r.string(env.get("account"), &format!("{env_key}.account")).filter(|s| !s.is_empty());
        if let Some(a) = account.as_ref().filter(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit())) {
            r.error(&format!("{env_key}.account"), format!("must be a 12-digit AWS account id, got \"{a}\""));
        }
    }
    let mut shifting = TrafficShifting::default();
    let mut shift_steps = None;
    if let Some(c) = r.object(root.get("trafficShiftingConfig"), "trafficShiftingConfig") {
        r.warn_unknown(c, "trafficShiftingConfig", &["percent", "waitInterval", "type", "approval", "steps"]);
        if let Some(p) = r.int(c.get("percent"), "trafficShiftingConfig.percent", 1, 100) {
            shifting.percent = p as u32;
        }
        if let Some(w) = r.int(c.get("waitInterval"), "trafficShiftingConfig.waitInterval", 0, 86_400) {
            shifting.wait_interval_secs = w as u64;
        }
        if let Some(t) = r.string(c.get("type"), "trafficShiftingConfig.type") {
            match ShiftType::parse(&t) {
                Some(kind) => shifting.kind = kind,
                None => r.error("trafficShiftingConfig.type", format!("is \"{t}\"; use CANARY, LINEAR or ALL_AT_ONCE")),
            }
        }
        shift_steps = super::steps::parse(&mut r, c, shifting.wait_interval_secs, false);
        shifting.approval = super::approval::gates(&mut r, c, &shifting, shift_steps.as_deref());
    } else if r.bool(root.get("trafficShiftingEnabled"), "trafficShiftingEnabled") != Some(true) {
        // Without a config (or with the legacy flag off) a new version takes all traffic at once.
        shifting.kind = ShiftType::AllAtOnce;
    }
    if r.bool(root.get("trafficShiftingEnabled"), "trafficShiftingEnabled") == Some(false) {
        shifting.kind = ShiftType::AllAtOnce;
    }
    let mut alarm_names = Vec::new();
    if let Some(alarms) = r.object(root.get("alarms"), "alarms") {
        r.warn_unknown(alarms, "alarms", &["alarmNames"]);
        alarm_names = r.strings(alarms.get("alarmNames"), "alarms.alarmNames");
    }
    let mut readiness = ReadinessCheck::default();
    if let Some(c) = r.object(root.get("readinessCheck"), "readinessCheck") {
        r.warn_unknown(c, "readinessCheck", &["waitInterval", "maxRetries"]);
        if let Some(w) = r.int(c.get("waitInterval"), "readinessCheck.waitInterval", 1, 3_600) {
            readiness.wait_interval_secs = w as u64;
        }
        if let Some(m) = r.int(c.get("maxRetries"), "readinessCheck.maxRetries", 1, 1_000) {
            readiness.max_retries = m as u32;
        }
    }
    let delete_old_version = r.bool(root.get("deleteOldVersion"), "deleteOldVersion").unwrap_or(false);
    let analysis = crate::analysis::parse(&mut r, root.get("analysis"), "analysis", crate::analysis::PresetTarget::Lambda);
    let hooks = super::hooks::parse(&mut r, root.get("hooks"), false);
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    let webhooks = super::ecs_depdef::parse_webhooks(&mut r, root.get("webhooks"));
    let depends_on = crate::release::order::parse(&mut r, root.get("dependsOn"));
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    let depdef = LambdaDepdef {
        depends_on,
        alias,
        region,
        account,
        traffic_shifting: shifting,
        alarm_names,
        readiness,
        delete_old_version,
        webhooks,
        analysis,
        shift_steps,
        hooks,
    };
    Ok((depdef, r.warnings))
}

/// Parses a rendered lambdaeventsourcedef.
pub fn parse_event_sources(file: &str, text: &str, json: &Value) -> Result<(EventSources, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut r = FieldReader::new(file, text);
    let Value::Object(root) = json else {
        return Err(vec![Diagnostic::new(file, "the lambdaeventsourcedef must be a JSON object").at(Some(1), Some(1))]);
    };
    r.warn_unknown(root, "", &["PushEventSources", "PullEventSources"]);
    let mut sources = EventSources::default();
    match root.get("PushEventSources") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("PushEventSources[{i}]");
                let Some(obj) = r.object(Some(item), &path) else { continue };
                let service = r.string(obj.get("Service"), &format!("{path}.Service")).unwrap_or_default();
                match service.as_str() {
                    "elasticloadbalancing.amazonaws.com" => match r.string(obj.get("TargetGroupArn"), &format!("{path}.TargetGroupArn")) {
                        Some(tg) if tg.starts_with("arn:") => sources.push.push(PushSource::Elb { target_group_arn: tg }),
                        _ => r.error(&format!("{path}.TargetGroupArn"), "is required for an ELB source: the ARN of a lambda-type target group"),
                    },
                    "apigateway.amazonaws.com" => {
                        let api_id = r.string(obj.get("ApiId"), &format!("{path}.ApiId")).unwrap_or_default();
                        let route_id = r.string(obj.get("RouteId"), &format!("{path}.RouteId")).unwrap_or_default();
                        let stage = obj.get("AliasStageVariableName").or_else(|| obj.get("AlaisStageVariableName"));
                        let stage_variable = r.string(stage, &format!("{path}.AliasStageVariableName")).filter(|s| !s.is_empty());
                        if api_id.is_empty() || route_id.is_empty() {
                            r.error(&path, "an API Gateway source needs ApiId and RouteId");
                        } else {
                            sources.push.push(PushSource::ApiGateway { api_id, route_id, stage_variable });
                        }
                    }
                    other => r.error(
                        &format!("{path}.Service"),
                        format!("\"{other}\" is not a supported push source; use elasticloadbalancing.amazonaws.com or apigateway.amazonaws.com"),
                    ),
                }
            }
        }
        Some(other) => r.error("PushEventSources", format!("must be a list, got {}", show(other))),
    }
    if let Some(pull) = r.object(root.get("PullEventSources"), "PullEventSources") {
        r.warn_unknown(pull, "PullEventSources", &["EventSourceMapping"]);
        let items: Vec<Value> = match pull.get("EventSourceMapping") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(obj @ Value::Object(_)) => vec![obj.clone()],
            Some(other) => {
                r.error("PullEventSources.EventSourceMapping", format!("must be an object or a list of objects, got {}", show(other)));
                Vec::new()
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("PullEventSources.EventSourceMapping[{i}]");
            match item.get("EventSourceArn").and_then(Value::as_str) {
                Some(arn) if arn.starts_with("arn:") => {
                    if sources.pull.iter().any(|p| p.get("EventSourceArn") == item.get("EventSourceArn")) {
                        r.error(&path, format!("{arn} appears twice; one mapping per event source"));
                    }
                    if let Some(n) = item.get("BatchSize") {
                        r.int(Some(n), &format!("{path}.BatchSize"), 1, 10_000);
                    }
                    let mut body = item;
                    if let Value::Object(o) = &mut body {
                        o.remove("FunctionName");
                    }
                    sources.pull.push(body);
                }
                _ => r.error(&path, "needs EventSourceArn (the queue, stream or cluster ARN)"),
            }
        }
    }
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    Ok((sources, r.warnings))
}

/// Validates rendered Lambda files and builds the app.
pub fn build_lambda_app(
    lambdadef: &Rendered,
    event_sources: Option<&Rendered>,
    depdef: Option<&Rendered>,
    default_region: &str,
) -> Result<(LambdaApp, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut errors = Vec::new();
    // unknown fields of the depdef and the event sources: a typo in `trafficShiftingConfg`
    // silently meant ALL_AT_ONCE, so they are said (validate, plan, the API)
    let mut warnings = Vec::new();
    let mut r = FieldReader::new(&lambdadef.path, &lambdadef.text);
    let function_name = match &lambdadef.json {
        Value::Object(o) => {
            let code = r.object(o.get("Code"), "Code");
            match code {
                Some(c) if CODE_FIELDS.iter().any(|f| c.contains_key(*f)) => {}
                _ => r.error("Code", "is required: {\"ZipFile\": base64} or {\"S3Bucket\", \"S3Key\"} or {\"ImageUri\"}"),
            }
            r.string(o.get("FunctionName"), "FunctionName").unwrap_or_default()
        }
        _ => String::new(),
    };
    if function_name.is_empty() {
        r.errors.push(
            Diagnostic::new(&lambdadef.path, "FunctionName is missing; the lambdadef is the body of a Lambda CreateFunction request")
                .at(Some(1), Some(1)),
        );
    }
    errors.append(&mut r.errors);
    let parsed_depdef = match depdef {
        Some(d) => match parse_lambda_depdef(&d.path, &d.text, &d.json) {
            Ok((dep, w)) => {
                warnings.extend(w);
                Some(dep)
            }
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
        None => {
            errors.push(Diagnostic::new(
                &lambdadef.path,
                "a Lambda app needs a _lambdadepdef.json with \"alias\" beside its _lambdadef.json",
            ));
            None
        }
    };
    let sources = match event_sources {
        Some(e) => match parse_event_sources(&e.path, &e.text, &e.json) {
            Ok((s, w)) => {
                warnings.extend(w);
                s
            }
            Err(mut e) => {
                errors.append(&mut e);
                EventSources::default()
            }
        },
        None => EventSources::default(),
    };
    let Some(dep) = parsed_depdef.filter(|_| errors.is_empty()) else { return Err(errors) };
    let app = LambdaApp {
        lambdadef: lambdadef.json.clone(),
        event_sources: sources,
        function_name,
        alias: dep.alias.clone(),
        region: dep.region.clone().unwrap_or_else(|| default_region.to_string()),
        account: dep.account.clone(),
        depdef: dep,
    };
    Ok((app, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(v: Value) -> Result<LambdaDepdef, Vec<Diagnostic>> {
        let text = serde_json::to_string_pretty(&v).unwrap();
        parse_lambda_depdef("f_lambdadepdef.json", &text, &v).map(|(d, _)| d)
    }

    #[test]
    fn depdef_defaults_and_legacy_fields() {
        let d = dep(json!({"alias": "live"})).unwrap();
        assert_eq!(d.traffic_shifting.kind, ShiftType::AllAtOnce, "no config: all at once");
        assert_eq!(d.readiness, ReadinessCheck { wait_interval_secs: 10, max_retries: 5 });
        assert!(!d.delete_old_version);
        let d = dep(json!({"alias": "live", "trafficShiftingConfig": {}})).unwrap();
        assert_eq!(d.traffic_shifting, TrafficShifting::default(), "present: CANARY 20 % every 60 s");
        let d = dep(json!({"alias": "live", "trafficShiftingEnabled": true})).unwrap();
        assert_eq!(d.traffic_shifting, TrafficShifting::default());
        let d = dep(json!({"alias": "live", "trafficShiftingEnabled": false, "trafficShiftingConfig": {"percent": 10}})).unwrap();
        assert_eq!(d.traffic_shifting.kind, ShiftType::AllAtOnce);
        let d = dep(json!({"alias": "live", "environmentVariables": {"region": "eu-west-1", "account": "123456789012"}})).unwrap();
        assert_eq!((d.region.as_deref(), d.account.as_deref()), (Some("eu-west-1"), Some("123456789012")));
    }

    #[test]
    fn lambda_webhooks_are_read_and_checked_like_ecs_ones() {
        let d = dep(json!({"alias": "live", "webhooks": [{"name": "team", "urls": ["https://hooks.example/x"], "payload_template": {"text": "{{stage}}"}}]}))
            .unwrap();
        assert_eq!(d.webhooks.len(), 1);
        assert_eq!(d.webhooks[0].urls, vec!["https://hooks.example/x"]);
        assert_eq!(d.webhooks[0].payload_template, json!({"text": "{{stage}}"}));
        let e = dep(json!({"alias": "live", "webhooks": [{"name": "team", "urls": ["ftp://x"]}]})).unwrap_err();
        assert!(e[0].message.starts_with("webhooks[0].urls: \"ftp://x\" is not an http(s) URL"), "{e:?}");
        let e = dep(json!({"alias": "live", "webhooks": [{"name": "team"}]})).unwrap_err();
        assert!(e[0].message.contains("webhooks[0].urls: needs at least one URL"), "{e:?}");
    }

    #[test]
    fn depdef_errors_name_the_field() {
        let e = dep(json!({})).unwrap_err();
        assert!(e[0].message.contains("alias is required"), "{e:?}");
        for (v, needle) in [
            (json!({"alias": "live", "trafficShiftingConfig": {"percent": 0}}), "trafficShiftingConfig.percent"),
            (json!({"alias": "live", "trafficShiftingConfig": {"percent": 101}}), "trafficShiftingConfig.percent"),
            (json!({"alias": "live", "trafficShiftingConfig": {"waitInterval": -1}}), "trafficShiftingConfig.waitInterval"),
            (json!({"alias": "live", "trafficShiftingConfig": {"type": "SLOW"}}), "trafficShiftingConfig.type"),
            (json!({"alias": "live", "readinessCheck": {"maxRetries": 0}}), "readinessCheck.maxRetries"),
            (json!({"alias": "42"}), "alias"),
        ] {
            let e = dep(v).unwrap_err();
            assert!(e.iter().any(|d| d.message.starts_with(needle)), "{needle}: {e:?}");
        }
    }

    fn sources(v: Value) -> Result<EventSources, Vec<Diagnostic>> {
        let text = serde_json::to_string_pretty(&v).unwrap();
        parse_event_sources("f_lambdaeventsourcedef.json", &text, &v).map(|(s, _)| s)
    }

    #[test]
    fn event_sources_accept_objects_lists_and_the_legacy_spelling() {
        let s = sources(json!({
            "PushEventSources": [
                {"Service": "elasticloadbalancing.amazonaws.com", "TargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/f/1"},
                {"Service": "apigateway.amazonaws.com", "ApiId": "a1", "RouteId": "r1", "AlaisStageVariableName": "lambdaAlias"}
            ],
            "PullEventSources": {"EventSourceMapping": {"EventSourceArn": "arn:aws:sqs:us-east-1:1:q", "BatchSize": 5, "FunctionName": "ignored"}}
        }))
        .unwrap();
        assert_eq!(s.push.len(), 2);
        assert_eq!(
            s.push[1],
            PushSource::ApiGateway { api_id: "a1".into(), route_id: "r1".into(), stage_variable: Some("lambdaAlias".into()) }
        );
        assert_eq!(s.pull, vec![json!({"EventSourceArn": "arn:aws:sqs:us-east-1:1:q", "BatchSize": 5})]);
        let s = sources(json!({"PullEventSources": {"EventSourceMapping": [
            {"EventSourceArn": "arn:aws:sqs:us-east-1:1:a"}, {"EventSourceArn": "arn:aws:kinesis:us-east-1:1:stream/b"}]}}))
        .unwrap();
        assert_eq!(s.pull.len(), 2);
    }

    #[test]
    fn event_source_errors_name_the_field() {
        for (v, needle) in [
            (json!({"PushEventSources": [{"Service": "sns.amazonaws.com"}]}), "PushEventSources[0].Service"),
            (json!({"PushEventSources": [{"Service": "elasticloadbalancing.amazonaws.com"}]}), "PushEventSources[0].TargetGroupArn"),
            (json!({"PushEventSources": [{"Service": "apigateway.amazonaws.com", "ApiId": "a"}]}), "PushEventSources[0]"),
            (json!({"PullEventSources": {"EventSourceMapping": [{"BatchSize": 1}]}}), "PullEventSources.EventSourceMapping[0]"),
            (
                json!({"PullEventSources": {"EventSourceMapping": [{"EventSourceArn": "arn:aws:sqs:r:1:q"}, {"EventSourceArn": "arn:aws:sqs:r:1:q"}]}}),
                "PullEventSources.EventSourceMapping[1]",
            ),
            (
                json!({"PullEventSources": {"EventSourceMapping": {"EventSourceArn": "arn:aws:sqs:r:1:q", "BatchSize": 0}}}),
                "PullEventSources.EventSourceMapping[0].BatchSize",
            ),
        ] {
            let e = sources(v).unwrap_err();
            assert!(e.iter().any(|d| d.message.starts_with(needle)), "{needle}: {e:?}");
        }
    }
}
