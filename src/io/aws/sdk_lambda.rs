//! The Lambda adapter over the official SDK.
//!
//! CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration and the event source mapping
//! bodies are the user's JSON sent verbatim (the typed builder fills only what the path needs,
//! then `mutate_request` swaps in the exact body), so every field of the API passes through.
//! Function configurations are read into every compared field (description excluded: gitmoxi
//! writes its own on published versions), in the planner's comparable form.

use super::sdk_ecs::raw_body;
use super::{no_retry, AwsError, AwsErrorKind, Lambda};
use async_trait::async_trait;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, FunctionCode, FunctionConfiguration};
use aws_sdk_lambda::Client;
use gitmoxi_deploy::observed::{ObservedAlias, ObservedFunction, ObservedInvocation, ObservedMapping};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

const SERVICE: &str = "lambda";

pub struct SdkLambda {
    client: Client,
    metrics: crate::io::metrics::AwsCallMetrics,
}

impl SdkLambda {
    pub fn new(client: Client, metrics: crate::io::metrics::AwsCallMetrics) -> Self {
        SdkLambda { client, metrics }
    }

    fn track<T>(&self, operation: &'static str, result: Result<T, AwsError>) -> Result<T, AwsError> {
        self.metrics.observe(SERVICE, operation, result.as_ref().err());
        result
    }
}

fn not_found(e: &AwsError) -> bool {
    e.kind == AwsErrorKind::NotFound || e.code == "ResourceNotFoundException"
}

/// `arn:aws:lambda:region:account:function:name` without a qualifier.
fn unqualified(arn: &str) -> String {
    arn.split(':').take(7).collect::<Vec<_>>().join(":")
}

/// Every compared configuration field, as JSON with the API's names, put in the planner's
/// comparable form by the same function that reads a lambdadef.
fn normalized_config(c: &FunctionConfiguration) -> BTreeMap<String, Value> {
    let mut v = serde_json::Map::new();
    let mut put = |field: &str, value: Value| {
        v.insert(field.to_string(), value);
    };
    if let Some(h) = c.handler() {
        put("Handler", Value::from(h));
    }
    if let Some(r) = c.runtime() {
        put("Runtime", Value::from(r.as_str()));
    }
    if let Some(r) = c.role() {
        put("Role", Value::from(r));
    }
    if let Some(m) = c.memory_size() {
        put("MemorySize", Value::from(m));
    }
    if let Some(t) = c.timeout() {
        put("Timeout", Value::from(t));
    }
    if let Some(vars) = c.environment().and_then(|e| e.variables()) {
        let vars: serde_json::Map<String, Value> = vars.iter().map(|(k, val)| (k.clone(), Value::from(val.as_str()))).collect();
        put("Environment", json!({ "Variables": vars }));
    }
    put("Layers", c.layers().iter().filter_map(|l| l.arn()).map(Value::from).collect());
    if let Some(vpc) = c.vpc_config() {
        put(
            "VpcConfig",
            json!({
                "SubnetIds": vpc.subnet_ids(),
                "SecurityGroupIds": vpc.security_group_ids(),
                "Ipv6AllowedForDualStack": vpc.ipv6_allowed_for_dual_stack().unwrap_or(false),
            }),
        );
    }
    if let Some(target) = c.dead_letter_config().and_then(|d| d.target_arn()) {
        put("DeadLetterConfig", json!({ "TargetArn": target }));
    }
    if let Some(key) = c.kms_key_arn() {
        put("KMSKeyArn", Value::from(key));
    }
    if let Some(mode) = c.tracing_config().and_then(|t| t.mode()) {
        put("TracingConfig", json!({ "Mode": mode.as_str() }));
    }
    let file_systems: Vec<Value> =
        c.file_system_configs().iter().map(|f| json!({ "Arn": f.arn(), "LocalMountPath": f.local_mount_path() })).collect();
    put("FileSystemConfigs", Value::from(file_systems));
    if let Some(image) = c.image_config_response().and_then(|r| r.image_config()) {
        let mut config = serde_json::Map::new();
        if let Some(entry) = image.entry_point.as_ref() {
            config.insert("EntryPoint".into(), json!(entry));
        }
        if let Some(command) = image.command.as_ref() {
            config.insert("Command".into(), json!(command));
        }
        if let Some(dir) = image.working_directory() {
            config.insert("WorkingDirectory".into(), Value::from(dir));
        }
        put("ImageConfig", Value::Object(config));
    }
    if let Some(size) = c.ephemeral_storage().map(|e| e.size()) {
        put("EphemeralStorage", json!({ "Size": size }));
    }
    if let Some(apply_on) = c.snap_start().and_then(|s| s.apply_on()) {
        put("SnapStart", json!({ "ApplyOn": apply_on.as_str() }));
    }
    if let Some(logging) = c.logging_config() {
        let mut config = serde_json::Map::new();
        if let Some(format) = logging.log_format() {
            config.insert("LogFormat".into(), Value::from(format.as_str()));
        }
        if let Some(level) = logging.application_log_level() {
            config.insert("ApplicationLogLevel".into(), Value::from(level.as_str()));
        }
        if let Some(level) = logging.system_log_level() {
            config.insert("SystemLogLevel".into(), Value::from(level.as_str()));
        }
        if let Some(group) = logging.log_group() {
            config.insert("LogGroup".into(), Value::from(group));
        }
        put("LoggingConfig", Value::Object(config));
    }
    put("Architectures", c.architectures().iter().map(|a| Value::from(a.as_str())).collect());
    gitmoxi_deploy::spec::lambda::config_view(&Value::Object(v))
}

/// Every updatable field of a mapping, as JSON with the API's names, in the planner's form.
fn mapping_config(m: &aws_sdk_lambda::types::EventSourceMappingConfiguration) -> BTreeMap<String, Value> {
    let mut v = serde_json::Map::new();
    let mut put = |field: &str, value: Option<Value>| {
        if let Some(value) = value {
            v.insert(field.to_string(), value);
        }
    };
    put("BatchSize", m.batch_size().map(Value::from));
    put("MaximumBatchingWindowInSeconds", m.maximum_batching_window_in_seconds().map(Value::from));
    put("Enabled", Some(Value::Bool(!matches!(m.state(), Some("Disabled" | "Disabling")))));
    put(
        "FilterCriteria",
        m.filter_criteria()
            .map(|f| json!({ "Filters": f.filters().iter().map(|p| json!({ "Pattern": p.pattern() })).collect::<Vec<_>>() })),
    );
    put(
        "DestinationConfig",
        m.destination_config().map(|d| {
            let mut config = serde_json::Map::new();
            if let Some(destination) = d.on_failure().and_then(|f| f.destination()) {
                config.insert("OnFailure".into(), json!({ "Destination": destination }));
            }
            Value::Object(config)
        }),
    );
    put("MaximumRecordAgeInSeconds", m.maximum_record_age_in_seconds().map(Value::from));
    put("BisectBatchOnFunctionError", m.bisect_batch_on_function_error().map(Value::from));
    put("MaximumRetryAttempts", m.maximum_retry_attempts().map(Value::from));
    put("ParallelizationFactor", m.parallelization_factor().map(Value::from));
    put("TumblingWindowInSeconds", m.tumbling_window_in_seconds().map(Value::from));
    put("FunctionResponseTypes", Some(m.function_response_types().iter().map(|t| Value::from(t.as_str())).collect()));
    put("ScalingConfig", m.scaling_config().and_then(|s| s.maximum_concurrency()).map(|c| json!({ "MaximumConcurrency": c })));
    gitmoxi_deploy::spec::lambda::mapping_view(&Value::Object(v))
}

fn observed_function(c: &FunctionConfiguration, tags: Option<&HashMap<String, String>>) -> ObservedFunction {
    ObservedFunction {
        arn: unqualified(c.function_arn().unwrap_or_default()),
        version: c.version().unwrap_or("$LATEST").to_string(),
        code_sha256: c.code_sha256().unwrap_or_default().to_string(),
        revision_id: c.revision_id().unwrap_or_default().to_string(),
        last_modified: c.last_modified().unwrap_or_default().to_string(),
        state: c.state().map_or("Active", |s| s.as_str()).into(),
        state_reason: c.state_reason().map(str::to_string),
        last_update_status: c.last_update_status().map_or("Successful", |s| s.as_str()).into(),
        last_update_status_reason: c.last_update_status_reason().map(str::to_string),
        description: c.description().unwrap_or_default().to_string(),
        config: normalized_config(c),
        tags: tags.map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
    }
}

#[async_trait]
impl Lambda for SdkLambda {
    async fn function(&self, name: &str) -> Result<Option<ObservedFunction>, AwsError> {
        let out = self.client.get_function().function_name(name).send().await.map_err(|e| AwsError::from_sdk(SERVICE, "GetFunction", e));
        match self.track("GetFunction", out) {
            Ok(out) => Ok(out.configuration().map(|c| observed_function(c, out.tags()))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn versions(&self, name: &str) -> Result<Vec<ObservedFunction>, AwsError> {
        let mut versions = Vec::new();
        let mut marker: Option<String> = None;
        for _page in 0..50 {
            let out = self
                .client
                .list_versions_by_function()
                .function_name(name)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "ListVersionsByFunction", e));
            let out = match self.track("ListVersionsByFunction", out) {
                Ok(out) => out,
                Err(e) if not_found(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            versions.extend(out.versions().iter().filter(|v| v.version() != Some("$LATEST")).map(|v| observed_function(v, None)));
            marker = out.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        versions.sort_by_key(|v| v.version.parse::<u64>().unwrap_or(0));
        Ok(versions)
    }

    async fn alias(&self, name: &str, alias: &str) -> Result<Option<ObservedAlias>, AwsError> {
        let out =
            self.client.get_alias().function_name(name).name(alias).send().await.map_err(|e| AwsError::from_sdk(SERVICE, "GetAlias", e));
        match self.track("GetAlias", out) {
            Ok(a) => Ok(Some(ObservedAlias {
                arn: a.alias_arn().unwrap_or_default().to_string(),
                function_version: a.function_version().unwrap_or_default().to_string(),
                additional: a
                    .routing_config()
                    .and_then(|r| r.additional_version_weights())
                    .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
                    .unwrap_or_default(),
            })),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn mappings(&self, function_arn: &str) -> Result<Vec<ObservedMapping>, AwsError> {
        let mut mappings = Vec::new();
        let mut marker: Option<String> = None;
        for _page in 0..20 {
            let out = self
                .client
                .list_event_source_mappings()
                .function_name(function_arn)
                .set_marker(marker.clone())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "ListEventSourceMappings", e));
            let out = match self.track("ListEventSourceMappings", out) {
                Ok(out) => out,
                Err(e) if not_found(&e) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            mappings.extend(out.event_source_mappings().iter().map(|m| ObservedMapping {
                uuid: m.uuid().unwrap_or_default().to_string(),
                event_source_arn: m.event_source_arn().unwrap_or_default().to_string(),
                function_arn: m.function_arn().unwrap_or_default().to_string(),
                batch_size: m.batch_size().and_then(|b| u32::try_from(b).ok()),
                maximum_batching_window_secs: m.maximum_batching_window_in_seconds().and_then(|b| u32::try_from(b).ok()),
                enabled: !matches!(m.state(), Some("Disabled" | "Disabling")),
                config: mapping_config(m),
            }));
            marker = out.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        Ok(mappings)
    }

    async fn permission_sids(&self, name: &str, qualifier: &str) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .get_policy()
            .function_name(name)
            .qualifier(qualifier)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetPolicy", e));
        let policy = match self.track("GetPolicy", out) {
            Ok(out) => out.policy().unwrap_or("{}").to_string(),
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let parsed: Value = serde_json::from_str(&policy).unwrap_or(Value::Null);
        let statements = match parsed.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(one @ Value::Object(_)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(statements.iter().filter_map(|s| s.get("Sid").and_then(Value::as_str).map(str::to_string)).collect())
    }

    async fn create_function(&self, body: &Value) -> Result<(), AwsError> {
        let name = body.get("FunctionName").and_then(Value::as_str).unwrap_or_default();
        let role = body.get("Role").and_then(Value::as_str).unwrap_or_default();
        let out = self
            .client
            .create_function()
            .function_name(name)
            .role(role)
            .code(FunctionCode::builder().build())
            .customize()
            .mutate_request(raw_body(body))
            .config_override(aws_sdk_lambda::config::Config::builder().retry_config(no_retry()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "CreateFunction", e));
        match self.track("CreateFunction", out) {
            Ok(_) => Ok(()),
            // A replay after a lost answer: the function is there; the next pass checks its tags.
            Err(e) if e.code == "ResourceConflictException" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn update_code(&self, name: &str, code: &Value) -> Result<(), AwsError> {
        let out = self
            .client
            .update_function_code()
            .function_name(name)
            .customize()
            .mutate_request(raw_body(code))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateFunctionCode", e));
        self.track("UpdateFunctionCode", out).map(|_| ())
    }

    async fn update_config(&self, name: &str, config: &Value) -> Result<(), AwsError> {
        let out = self
            .client
            .update_function_configuration()
            .function_name(name)
            .customize()
            .mutate_request(raw_body(config))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateFunctionConfiguration", e));
        self.track("UpdateFunctionConfiguration", out).map(|_| ())
    }

    async fn publish_version(&self, name: &str, code_sha256: &str, revision_id: &str, description: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .publish_version()
            .function_name(name)
            .code_sha256(code_sha256)
            .set_revision_id(Some(revision_id.to_string()).filter(|r| !r.is_empty()))
            .description(description)
            .customize()
            // Not idempotent on every endpoint: the controller retries after looking for the version.
            .config_override(aws_sdk_lambda::config::Config::builder().retry_config(no_retry()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "PublishVersion", e));
        self.track("PublishVersion", out).map(|_| ())
    }

    async fn create_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .create_alias()
            .function_name(name)
            .name(alias)
            .function_version(version)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "CreateAlias", e));
        match self.track("CreateAlias", out) {
            Ok(_) => Ok(()),
            // A replay after a lost answer: the alias is there; the next pass checks its version.
            // (AWS answers ResourceConflictException; moto 5.2.5 answers ConflictException.)
            Err(e) if e.code == "ResourceConflictException" || e.code == "ConflictException" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn update_alias(&self, name: &str, alias: &str, version: &str, additional: Option<&(String, f64)>) -> Result<(), AwsError> {
        let weights: HashMap<String, f64> = additional.map(|(v, w)| HashMap::from([(v.clone(), *w)])).unwrap_or_default();
        let out = self
            .client
            .update_alias()
            .function_name(name)
            .name(alias)
            .function_version(version)
            .routing_config(AliasRoutingConfiguration::builder().set_additional_version_weights(Some(weights)).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateAlias", e));
        self.track("UpdateAlias", out).map(|_| ())
    }

    async fn delete_function(&self, name: &str, qualifier: Option<&str>) -> Result<(), AwsError> {
        let out = self
            .client
            .delete_function()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteFunction", e));
        match self.track("DeleteFunction", out) {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_mapping(&self, body: &Value) -> Result<(), AwsError> {
        let function = body.get("FunctionName").and_then(Value::as_str).unwrap_or_default();
        let out = self
            .client
            .create_event_source_mapping()
            .function_name(function)
            .customize()
            .mutate_request(raw_body(body))
            // Not idempotent: a replay after a lost answer makes a second mapping.
            .config_override(aws_sdk_lambda::config::Config::builder().retry_config(no_retry()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "CreateEventSourceMapping", e));
        self.track("CreateEventSourceMapping", out).map(|_| ())
    }

    async fn update_mapping(&self, uuid: &str, body: &Value) -> Result<(), AwsError> {
        let out = self
            .client
            .update_event_source_mapping()
            .uuid(uuid)
            .customize()
            .mutate_request(raw_body(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateEventSourceMapping", e));
        self.track("UpdateEventSourceMapping", out).map(|_| ())
    }

    async fn delete_mapping(&self, uuid: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .delete_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteEventSourceMapping", e));
        match self.track("DeleteEventSourceMapping", out) {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn add_permission(&self, name: &str, qualifier: &str, sid: &str, principal: &str, source_arn: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .add_permission()
            .function_name(name)
            .qualifier(qualifier)
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal(principal)
            .source_arn(source_arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "AddPermission", e));
        match self.track("AddPermission", out) {
            Ok(_) => Ok(()),
            // The statement id exists already: a replay after a lost answer.
            Err(e) if e.code == "ResourceConflictException" => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn remove_permission(&self, name: &str, qualifier: &str, sid: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .remove_permission()
            .function_name(name)
            .qualifier(qualifier)
            .statement_id(sid)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "RemovePermission", e));
        match self.track("RemovePermission", out) {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn invoke(&self, function: &str, payload: &Value, timeout: std::time::Duration) -> Result<ObservedInvocation, AwsError> {
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let call = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::RequestResponse)
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .payload(aws_smithy_types::Blob::new(body))
            .send();
        let out = match tokio::time::timeout(timeout, call).await {
            Ok(out) => out.map_err(|e| AwsError::from_sdk(SERVICE, "Invoke", e)),
            Err(_) => Err(AwsError::new(
                SERVICE,
                "Invoke",
                AwsErrorKind::Unavailable,
                "Timeout",
                format!("{function} did not answer within {} s", timeout.as_secs()),
            )),
        };
        let out = self.track("Invoke", out)?;
        let log_tail = out.log_result().and_then(|b64| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b64).ok().map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        });
        Ok(ObservedInvocation {
            status_code: out.status_code(),
            function_error: out.function_error().map(str::to_string),
            log_tail,
            request_id: None,
        })
    }
}
