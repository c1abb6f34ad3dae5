//! Lambda and API Gateway v2 in the fake world (TESTING.md §1): functions whose updates stay
//! `InProgress` for a while or end `Failed` with a reason, versions that become Active late or
//! never, aliases with weighted routing, event source mappings, resource policies, HTTP APIs with
//! integrations and routes, and lambda targets of target groups.
//!
//! Behaviour is chosen by the function's `Environment.Variables.MODE`: `update-fails` makes the
//! configuration update end `Failed`; `never-ready` keeps new versions `Pending` forever.
//! Invariants, as Lambda documents them: a new function holds Lambda's defaults for what its body
//! leaves out; a published version snapshots every configuration field of `$LATEST`; PublishVersion
//! returns the latest version instead of a new one when neither code nor any field changed.

use crate::fake::FakeWorld;
use async_trait::async_trait;
use gitmoxi::aws::{ApiGateway, AwsError, AwsErrorKind, Lambda};
use gitmoxi_deploy::observed::{ObservedAlias, ObservedFunction, ObservedInvocation, ObservedMapping};
use gitmoxi_deploy::spec::lambda::{compared_fields, config_view, mapping_view};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

const ACCOUNT: &str = "123456789012";

/// How long updates take and how long a version stays Pending.
#[derive(Debug, Clone)]
pub struct LambdaKnobs {
    pub update_delay: Duration,
    pub ready_delay: Duration,
}

impl Default for LambdaKnobs {
    fn default() -> Self {
        LambdaKnobs { update_delay: Duration::from_secs(5), ready_delay: Duration::from_secs(3) }
    }
}

#[derive(Debug, Clone)]
struct FnConfig {
    version: String,
    code_sha: String,
    /// Every compared field, as `config_view` puts it (a version snapshots all of them).
    config: BTreeMap<String, Value>,
    description: String,
    revision: u64,
    /// When the last update finishes, and whether it fails (reason).
    update_done_at: Instant,
    update_failure: Option<String>,
    /// When the version turns Active (None: never).
    active_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct FakeFunction {
    region: String,
    name: String,
    latest: FnConfig,
    versions: Vec<FnConfig>,
    /// alias → (version, additional weights)
    aliases: BTreeMap<String, (String, BTreeMap<String, f64>)>,
    tags: BTreeMap<String, String>,
    /// qualifier → statement ids
    policies: BTreeMap<String, Vec<String>>,
    next_version: u64,
}

impl FakeFunction {
    fn arn(&self) -> String {
        format!("arn:aws:lambda:{}:{ACCOUNT}:function:{}", self.region, self.name)
    }
}

#[derive(Debug, Clone)]
struct FakeMapping {
    uuid: String,
    source: String,
    function_arn: String,
    batch_size: Option<u32>,
    window: Option<u32>,
    enabled: bool,
    /// Every updatable field it holds (`mapping_view`), Lambda's batch size default included.
    config: BTreeMap<String, Value>,
}

/// An HTTP API: its integrations (id, uri) and its routes (route id → target).
pub type FakeHttpApi = (Vec<(String, String)>, BTreeMap<String, Option<String>>);

/// The Lambda side of the fake world.
#[derive(Debug, Default)]
pub struct LambdaWorld {
    functions: BTreeMap<(String, String), FakeFunction>,
    mappings: Vec<FakeMapping>,
    /// api id → (integrations (id, uri), routes route id → target)
    apis: BTreeMap<String, FakeHttpApi>,
    pub(super) lambda_targets: BTreeMap<String, Vec<String>>,
    knobs: LambdaKnobs,
    seq: u64,
    /// Every invocation made (function, payload), oldest first (issue 25's Lambda hooks).
    pub(super) invocations: Vec<(String, Value)>,
}

/// The `CodeSha256` Lambda reports for a function created or updated with this `Code` (a zip's
/// own hash; for S3 code, a hash of its location, which is all the fake world knows of it).
pub fn code_sha(code: &Value) -> String {
    if let Some(zip) = code.get("ZipFile").and_then(Value::as_str) {
        if let Some(sha) = gitmoxi_deploy::spec::fingerprint::lambda_code_sha256(zip) {
            return sha;
        }
    }
    let text = serde_json::to_string(code).unwrap_or_default();
    gitmoxi_deploy::spec::fingerprint::lambda_code_sha256(&base64_of(text.as_bytes())).unwrap_or_default()
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The configuration a new function holds: what the body sets over Lambda's documented defaults
/// (x86_64, 128 MB, 3 s, 512 MB of /tmp, PassThrough tracing, Text logs to /aws/lambda/NAME).
fn created_config(body: &Value, name: &str) -> BTreeMap<String, Value> {
    let mut config = config_view(&serde_json::json!({
        "Architectures": ["x86_64"],
        "MemorySize": 128,
        "Timeout": 3,
        "EphemeralStorage": {"Size": 512},
        "TracingConfig": {"Mode": "PassThrough"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{name}")},
    }));
    config.extend(config_view(body));
    config
}

/// UpdateFunctionConfiguration (and the `Architectures` of UpdateFunctionCode): each field the
/// request names replaces the one held; a field sent empty (`"VpcConfig": {"SubnetIds": []}`)
/// removes it.
fn apply_update(config: &mut BTreeMap<String, Value>, request: &Value) {
    let given = config_view(request);
    for field in compared_fields() {
        if request.get(field).is_some() {
            match given.get(field) {
                Some(value) => config.insert(field.to_string(), value.clone()),
                None => config.remove(field),
            };
        }
    }
}

fn mode(config: &BTreeMap<String, Value>) -> Option<String> {
    config.get("Environment")?.pointer("/Variables/MODE")?.as_str().map(str::to_string)
}

fn not_found(operation: &'static str, what: String) -> AwsError {
    AwsError::new("lambda", operation, AwsErrorKind::NotFound, "ResourceNotFoundException", what)
}

fn conflict(operation: &'static str, what: String) -> AwsError {
    AwsError::new("lambda", operation, AwsErrorKind::Rejected, "ResourceConflictException", what)
}

impl LambdaWorld {
    fn observe(&self, f: &FakeFunction, c: &FnConfig, now: Instant) -> ObservedFunction {
        let updating = now < c.update_done_at;
        ObservedFunction {
            arn: f.arn(),
            version: c.version.clone(),
            code_sha256: c.code_sha.clone(),
            revision_id: c.revision.to_string(),
            last_modified: format!("t{}", c.revision),
            state: if c.active_at.is_some_and(|at| at <= now) { "Active".into() } else { "Pending".into() },
            state_reason: None,
            last_update_status: match (updating, &c.update_failure) {
                (true, _) => "InProgress".into(),
                (false, Some(_)) => "Failed".into(),
                (false, None) => "Successful".into(),
            },
            last_update_status_reason: if updating { None } else { c.update_failure.clone() },
            description: c.description.clone(),
            config: c.config.clone(),
            tags: f.tags.clone(),
        }
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

impl FakeWorld {
    /// Sets how long Lambda updates and readiness take.
    pub fn set_lambda_knobs(&self, knobs: LambdaKnobs) {
        self.world().lambda.knobs = knobs;
    }

    /// An HTTP API with one route (ids as given).
    pub fn add_http_api(&self, api_id: &str, route_id: &str) {
        self.world().lambda.apis.insert(api_id.into(), (Vec::new(), BTreeMap::from([(route_id.to_string(), None)])));
    }

    /// The alias's (version, additional weights), as GetAlias would say.
    pub fn lambda_alias(&self, region: &str, function: &str, alias: &str) -> Option<(String, BTreeMap<String, f64>)> {
        self.world().lambda.functions.get(&(region.into(), function.into())).and_then(|f| f.aliases.get(alias).cloned())
    }

    /// Published version numbers of a function.
    pub fn lambda_versions(&self, region: &str, function: &str) -> Vec<String> {
        self.world()
            .lambda
            .functions
            .get(&(region.into(), function.into()))
            .map(|f| f.versions.iter().map(|v| v.version.clone()).collect())
            .unwrap_or_default()
    }

    /// Every compared configuration field a published version (or `$LATEST`) holds, as
    /// `config_view` puts it.
    pub fn lambda_config(&self, region: &str, function: &str, version: &str) -> Option<BTreeMap<String, Value>> {
        let world = self.world();
        let f = world.lambda.functions.get(&(region.into(), function.into()))?;
        if version == "$LATEST" {
            return Some(f.latest.config.clone());
        }
        f.versions.iter().find(|v| v.version == version).map(|v| v.config.clone())
    }

    /// The `CodeSha256` of a published version.
    pub fn lambda_code_sha(&self, region: &str, function: &str, version: &str) -> Option<String> {
        let world = self.world();
        let f = world.lambda.functions.get(&(region.into(), function.into()))?;
        f.versions.iter().find(|v| v.version == version).map(|v| v.code_sha.clone())
    }

    /// Whether the function exists.
    pub fn lambda_exists(&self, region: &str, function: &str) -> bool {
        self.world().lambda.functions.contains_key(&(region.into(), function.into()))
    }

    /// (event source ARN, function ARN, batch size) of every mapping.
    pub fn lambda_mappings(&self) -> Vec<(String, String, Option<u32>)> {
        self.world().lambda.mappings.iter().map(|m| (m.source.clone(), m.function_arn.clone(), m.batch_size)).collect()
    }

    /// Deletes every event source mapping behind the controller's back (an operator's cleanup).
    pub fn delete_lambda_mappings(&self) {
        self.world().lambda.mappings.clear();
    }

    /// Statement ids of `function:qualifier`.
    pub fn lambda_permissions(&self, region: &str, function: &str, qualifier: &str) -> Vec<String> {
        self.world()
            .lambda
            .functions
            .get(&(region.into(), function.into()))
            .and_then(|f| f.policies.get(qualifier).cloned())
            .unwrap_or_default()
    }

    /// (integrations, route targets) of an API.
    pub fn http_api(&self, api_id: &str) -> Option<FakeHttpApi> {
        self.world().lambda.apis.get(api_id).cloned()
    }

    /// Lambda targets registered in a target group.
    pub fn lambda_targets(&self, target_group: &str) -> Vec<String> {
        self.world().lambda.lambda_targets.get(target_group).cloned().unwrap_or_default()
    }
}

/// The fake Lambda of one region.
pub struct FakeLambda {
    pub(super) world: FakeWorld,
    pub(super) region: String,
}

/// The fake API Gateway v2.
pub struct FakeApiGateway {
    pub(super) world: FakeWorld,
}

impl FakeLambda {
    fn key(&self, name: &str) -> (String, String) {
        let short = name.rsplit(':').next().unwrap_or(name);
        let short = if name.contains(":function:") {
            name.split(":function:").nth(1).and_then(|n| n.split(':').next()).unwrap_or(short)
        } else {
            short
        };
        (self.region.clone(), short.to_string())
    }

    fn call<T>(&self, operation: &'static str, f: impl FnOnce(&mut LambdaWorld, Instant) -> Result<T, AwsError>) -> Result<T, AwsError> {
        self.world.begin(operation)?;
        let now = Instant::now();
        let result = {
            let mut w = self.world.world();
            let r = f(&mut w.lambda, now);
            if r.is_ok() && !operation.starts_with("Get") && !operation.starts_with("List") {
                w.mutations.push((operation.to_string(), String::new()));
            }
            r
        };
        self.world.end(operation, result)
    }
}

#[async_trait]
impl Lambda for FakeLambda {
    async fn function(&self, name: &str) -> Result<Option<ObservedFunction>, AwsError> {
        let key = self.key(name);
        self.call("GetFunction", |w, now| Ok(w.functions.get(&key).map(|f| w.observe(f, &f.latest, now))))
    }

    async fn versions(&self, name: &str) -> Result<Vec<ObservedFunction>, AwsError> {
        let key = self.key(name);
        self.call("ListVersionsByFunction", |w, now| {
            Ok(w.functions.get(&key).map(|f| f.versions.iter().map(|v| w.observe(f, v, now)).collect()).unwrap_or_default())
        })
    }

    async fn alias(&self, name: &str, alias: &str) -> Result<Option<ObservedAlias>, AwsError> {
        let key = self.key(name);
        self.call("GetAlias", |w, _| {
            Ok(w.functions.get(&key).and_then(|f| {
                f.aliases.get(alias).map(|(v, extra)| ObservedAlias {
                    arn: format!("{}:{alias}", f.arn()),
                    function_version: v.clone(),
                    additional: extra.clone(),
                })
            }))
        })
    }

    async fn mappings(&self, function_arn: &str) -> Result<Vec<ObservedMapping>, AwsError> {
        self.call("ListEventSourceMappings", |w, _| {
            Ok(w.mappings
                .iter()
                .filter(|m| m.function_arn == function_arn)
                .map(|m| ObservedMapping {
                    uuid: m.uuid.clone(),
                    event_source_arn: m.source.clone(),
                    function_arn: m.function_arn.clone(),
                    batch_size: m.batch_size,
                    maximum_batching_window_secs: m.window,
                    enabled: m.enabled,
                    config: m.config.clone(),
                })
                .collect())
        })
    }

    async fn permission_sids(&self, name: &str, qualifier: &str) -> Result<Vec<String>, AwsError> {
        let key = self.key(name);
        self.call("GetPolicy", |w, _| Ok(w.functions.get(&key).and_then(|f| f.policies.get(qualifier).cloned()).unwrap_or_default()))
    }

    async fn create_function(&self, body: &Value) -> Result<(), AwsError> {
        let name = body.get("FunctionName").and_then(Value::as_str).unwrap_or_default().to_string();
        let key = (self.region.clone(), name.clone());
        let region = self.region.clone();
        self.call("CreateFunction", |w, now| {
            if w.functions.contains_key(&key) {
                return Err(conflict("CreateFunction", format!("Function already exist: {name}")));
            }
            let revision = w.next();
            let ready = w.knobs.ready_delay;
            let config = created_config(body, &name);
            let never = mode(&config).as_deref() == Some("never-ready");
            let latest = FnConfig {
                version: "$LATEST".into(),
                code_sha: code_sha(body.get("Code").unwrap_or(&Value::Null)),
                config,
                description: body.get("Description").and_then(Value::as_str).unwrap_or_default().to_string(),
                revision,
                update_done_at: now,
                update_failure: None,
                active_at: Some(now + ready),
            };
            let mut versions = Vec::new();
            if body.get("Publish").and_then(Value::as_bool) == Some(true) {
                versions.push(FnConfig { version: "1".into(), active_at: if never { None } else { Some(now + ready) }, ..latest.clone() });
            }
            let tags = body
                .get("Tags")
                .and_then(Value::as_object)
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            let next_version = versions.len() as u64 + 1;
            w.functions.insert(
                key,
                FakeFunction { region, name, latest, versions, aliases: BTreeMap::new(), tags, policies: BTreeMap::new(), next_version },
            );
            Ok(())
        })
    }

    async fn update_code(&self, name: &str, code: &Value) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("UpdateFunctionCode", |w, now| {
            let delay = w.knobs.update_delay;
            let revision = w.next();
            let f = w.functions.get_mut(&key).ok_or_else(|| not_found("UpdateFunctionCode", format!("Function not found: {name}")))?;
            if now < f.latest.update_done_at {
                return Err(conflict("UpdateFunctionCode", "An update is in progress for resource".into()));
            }
            f.latest.code_sha = code_sha(code);
            if let Some(architectures) = code.get("Architectures") {
                apply_update(&mut f.latest.config, &serde_json::json!({ "Architectures": architectures }));
            }
            f.latest.revision = revision;
            f.latest.update_done_at = now + delay;
            f.latest.update_failure = None;
            Ok(())
        })
    }

    async fn update_config(&self, name: &str, config: &Value) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("UpdateFunctionConfiguration", |w, now| {
            let delay = w.knobs.update_delay;
            let revision = w.next();
            let f =
                w.functions.get_mut(&key).ok_or_else(|| not_found("UpdateFunctionConfiguration", format!("Function not found: {name}")))?;
            if now < f.latest.update_done_at {
                return Err(conflict("UpdateFunctionConfiguration", "An update is in progress for resource".into()));
            }
            let mut merged = f.latest.config.clone();
            apply_update(&mut merged, config);
            if let Some(description) = config.get("Description").and_then(Value::as_str) {
                f.latest.description = description.to_string();
            }
            let fails = mode(&merged).as_deref() == Some("update-fails");
            f.latest.config = merged;
            f.latest.revision = revision;
            f.latest.update_done_at = now + delay;
            f.latest.update_failure =
                fails.then(|| "Lambda was unable to configure your environment variables because the KMS key is invalid".to_string());
            Ok(())
        })
    }

    async fn publish_version(&self, name: &str, code_sha256: &str, revision_id: &str, description: &str) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("PublishVersion", |w, now| {
            let ready = w.knobs.ready_delay;
            let f = w.functions.get_mut(&key).ok_or_else(|| not_found("PublishVersion", format!("Function not found: {name}")))?;
            if f.latest.code_sha != code_sha256 || f.latest.revision.to_string() != revision_id {
                return Err(AwsError::new(
                    "lambda",
                    "PublishVersion",
                    AwsErrorKind::Rejected,
                    "PreconditionFailedException",
                    "The Revision Id provided does not match the latest Revision Id",
                ));
            }
            if f.versions.last().is_some_and(|v| v.code_sha == f.latest.code_sha && v.config == f.latest.config) {
                return Ok(());
            }
            let never = mode(&f.latest.config).as_deref() == Some("never-ready");
            let version = FnConfig {
                version: f.next_version.to_string(),
                description: description.to_string(),
                active_at: if never { None } else { Some(now + ready) },
                ..f.latest.clone()
            };
            f.next_version += 1;
            f.versions.push(version);
            Ok(())
        })
    }

    async fn create_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("CreateAlias", |w, _| {
            let f = w.functions.get_mut(&key).ok_or_else(|| not_found("CreateAlias", format!("Function not found: {name}")))?;
            if f.aliases.contains_key(alias) {
                return Err(conflict("CreateAlias", format!("Alias already exists: {alias}")));
            }
            f.aliases.insert(alias.to_string(), (version.to_string(), BTreeMap::new()));
            Ok(())
        })
    }

    async fn update_alias(&self, name: &str, alias: &str, version: &str, additional: Option<&(String, f64)>) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("UpdateAlias", |w, _| {
            let f = w.functions.get_mut(&key).ok_or_else(|| not_found("UpdateAlias", format!("Function not found: {name}")))?;
            let Some(entry) = f.aliases.get_mut(alias) else { return Err(not_found("UpdateAlias", format!("Alias not found: {alias}"))) };
            *entry = (version.to_string(), additional.map(|(v, w)| BTreeMap::from([(v.clone(), *w)])).unwrap_or_default());
            Ok(())
        })
    }

    async fn delete_function(&self, name: &str, qualifier: Option<&str>) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("DeleteFunction", |w, _| {
            match qualifier {
                None => {
                    w.functions.remove(&key);
                }
                Some(q) => {
                    if let Some(f) = w.functions.get_mut(&key) {
                        if f.aliases.values().any(|(v, extra)| v == q || extra.contains_key(q)) {
                            return Err(conflict("DeleteFunction", format!("version {q} is used by an alias")));
                        }
                        f.versions.retain(|v| v.version != q);
                    }
                }
            }
            Ok(())
        })
    }

    async fn create_mapping(&self, body: &Value) -> Result<(), AwsError> {
        self.call("CreateEventSourceMapping", |w, _| {
            let source = body.get("EventSourceArn").and_then(Value::as_str).unwrap_or_default().to_string();
            let function_arn = body.get("FunctionName").and_then(Value::as_str).unwrap_or_default().to_string();
            if w.mappings.iter().any(|m| m.source == source && m.function_arn == function_arn) {
                return Err(conflict("CreateEventSourceMapping", format!("a mapping of {source} exists for {function_arn}")));
            }
            let n = w.next();
            let mut config = mapping_view(body);
            config.entry("BatchSize".into()).or_insert(Value::from(10));
            config.insert("Enabled".into(), Value::Bool(body.get("Enabled").and_then(Value::as_bool).unwrap_or(true)));
            w.mappings.push(FakeMapping {
                config,
                uuid: format!("00000000-0000-0000-0000-{n:012}"),
                source,
                function_arn,
                batch_size: body.get("BatchSize").and_then(Value::as_u64).map(|n| n as u32).or(Some(10)),
                window: body.get("MaximumBatchingWindowInSeconds").and_then(Value::as_u64).map(|n| n as u32),
                enabled: body.get("Enabled").and_then(Value::as_bool).unwrap_or(true),
            });
            Ok(())
        })
    }

    async fn update_mapping(&self, uuid: &str, body: &Value) -> Result<(), AwsError> {
        self.call("UpdateEventSourceMapping", |w, _| {
            let m =
                w.mappings.iter_mut().find(|m| m.uuid == uuid).ok_or_else(|| not_found("UpdateEventSourceMapping", uuid.to_string()))?;
            if let Some(n) = body.get("BatchSize").and_then(Value::as_u64) {
                m.batch_size = Some(n as u32);
            }
            if let Some(n) = body.get("MaximumBatchingWindowInSeconds").and_then(Value::as_u64) {
                m.window = Some(n as u32);
            }
            if let Some(e) = body.get("Enabled").and_then(Value::as_bool) {
                m.enabled = e;
            }
            // every updatable field the request names replaces the one held
            m.config.extend(mapping_view(body));
            Ok(())
        })
    }

    async fn delete_mapping(&self, uuid: &str) -> Result<(), AwsError> {
        self.call("DeleteEventSourceMapping", |w, _| {
            w.mappings.retain(|m| m.uuid != uuid);
            Ok(())
        })
    }

    async fn add_permission(&self, name: &str, qualifier: &str, sid: &str, _principal: &str, _source_arn: &str) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("AddPermission", |w, _| {
            let f = w.functions.get_mut(&key).ok_or_else(|| not_found("AddPermission", format!("Function not found: {name}")))?;
            let sids = f.policies.entry(qualifier.to_string()).or_default();
            if sids.iter().any(|s| s == sid) {
                return Err(conflict("AddPermission", format!("The statement id ({sid}) provided already exists")));
            }
            sids.push(sid.to_string());
            Ok(())
        })
    }

    async fn remove_permission(&self, name: &str, qualifier: &str, sid: &str) -> Result<(), AwsError> {
        let key = self.key(name);
        self.call("RemovePermission", |w, _| {
            if let Some(f) = w.functions.get_mut(&key) {
                if let Some(sids) = f.policies.get_mut(qualifier) {
                    sids.retain(|s| s != sid);
                }
            }
            Ok(())
        })
    }

    /// A hook's invocation (issue 25): Lambda runs no code here, so the function's name says
    /// how it ends, as the fake's images do for tasks — `fail` in it: a FunctionError (Unhandled)
    /// with its log's last line; a function that does not exist: ResourceNotFoundException.
    async fn invoke(&self, function: &str, payload: &Value, _timeout: Duration) -> Result<ObservedInvocation, AwsError> {
        let name = function.split(':').next().unwrap_or(function).to_string();
        let key = self.key(&name);
        let payload = payload.clone();
        self.call("Invoke", |w, _| {
            if !w.functions.contains_key(&key) {
                return Err(AwsError::new(
                    "lambda",
                    "Invoke",
                    AwsErrorKind::NotFound,
                    "ResourceNotFoundException",
                    format!("Function not found: {function}"),
                ));
            }
            w.invocations.push((function.to_string(), payload));
            Ok(if name.contains("fail") {
                ObservedInvocation {
                    status_code: 200,
                    function_error: Some("Unhandled".into()),
                    log_tail: Some(format!("START\n[ERROR] AssertionError: {name}: green answered 503 on /health\nEND\n")),
                    request_id: None,
                }
            } else {
                ObservedInvocation { status_code: 200, function_error: None, log_tail: Some("START\nEND\n".into()), request_id: None }
            })
        })
    }
}

#[async_trait]
impl ApiGateway for FakeApiGateway {
    async fn integrations(&self, api_id: &str) -> Result<Vec<(String, String)>, AwsError> {
        self.world.begin("GetIntegrations")?;
        let result =
            self.world.world().lambda.apis.get(api_id).map(|(i, _)| i.clone()).ok_or_else(|| api_not_found("GetIntegrations", api_id));
        self.world.end("GetIntegrations", result)
    }

    async fn route_target(&self, api_id: &str, route_id: &str) -> Result<Option<String>, AwsError> {
        self.world.begin("GetRoute")?;
        let result = self
            .world
            .world()
            .lambda
            .apis
            .get(api_id)
            .and_then(|(_, routes)| routes.get(route_id).cloned())
            .ok_or_else(|| api_not_found("GetRoute", route_id));
        self.world.end("GetRoute", result)
    }

    async fn create_integration(&self, api_id: &str, uri: &str) -> Result<(), AwsError> {
        self.world.begin("CreateIntegration")?;
        let result = {
            let mut w = self.world.world();
            let n = w.lambda.next();
            match w.lambda.apis.get_mut(api_id) {
                Some((integrations, _)) => {
                    integrations.push((format!("int{n}"), uri.to_string()));
                    w.mutations.push(("CreateIntegration".into(), uri.to_string()));
                    Ok(())
                }
                None => Err(api_not_found("CreateIntegration", api_id)),
            }
        };
        self.world.end("CreateIntegration", result)
    }

    async fn set_route_target(&self, api_id: &str, route_id: &str, target: &str) -> Result<(), AwsError> {
        self.world.begin("UpdateRoute")?;
        let result = {
            let mut w = self.world.world();
            match w.lambda.apis.get_mut(api_id).and_then(|(_, routes)| routes.get_mut(route_id)) {
                Some(t) => {
                    *t = Some(target.to_string()).filter(|t| !t.is_empty());
                    w.mutations.push(("UpdateRoute".into(), target.to_string()));
                    Ok(())
                }
                None => Err(api_not_found("UpdateRoute", route_id)),
            }
        };
        self.world.end("UpdateRoute", result)
    }

    async fn delete_integration(&self, api_id: &str, integration_id: &str) -> Result<(), AwsError> {
        self.world.begin("DeleteIntegration")?;
        let result = {
            let mut w = self.world.world();
            match w.lambda.apis.get_mut(api_id) {
                Some((integrations, _)) => {
                    integrations.retain(|(id, _)| id != integration_id);
                    w.mutations.push(("DeleteIntegration".into(), integration_id.to_string()));
                    Ok(())
                }
                None => Err(api_not_found("DeleteIntegration", api_id)),
            }
        };
        self.world.end("DeleteIntegration", result)
    }
}

fn api_not_found(operation: &'static str, what: &str) -> AwsError {
    AwsError::new("apigateway", operation, AwsErrorKind::NotFound, "NotFoundException", format!("{what} not found"))
}
