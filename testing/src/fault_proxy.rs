//! A fault-injecting HTTP proxy for tests and benchmarks (TESTING.md §3), loopback only.
//!
//! It sits between gitmoxi's SDK clients and moto, names the AWS operation of every request (JSON
//! `X-Amz-Target`, query `Action=`, REST method + path for Lambda and API Gateway), counts it, and
//! answers a seeded share of requests with a throttling error in the protocol's own format or a
//! 500/503 — half of those after moto applied the request, so the answer of a mutation that took
//! effect is lost; with `aws_quotas` it also throttles, as AWS does, every request beyond AWS's
//! token buckets. The counts give the calls per deployment and the IAM actions the suite sent.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use gitmoxi::aws::iam::{form_value, Operation};
use gitmoxi::sync::lock;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request body the proxy reads (a Lambda zip in a test is far smaller).
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How many request records the proxy keeps for timing questions (oldest dropped first).
const LOG_LIMIT: usize = 100_000;

/// What the proxy does to requests, in percent of all requests it receives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Answered with the protocol's throttling error; moto never sees them.
    pub throttle_percent: u32,
    /// Answered 500 or 503; half before moto sees them, half after (a lost answer).
    pub server_error_percent: u32,
    /// Added before every request is forwarded.
    pub latency: Duration,
    /// Seed of the choice of requests.
    pub seed: u64,
    /// Throttle, as AWS does, every request beyond AWS's quota buckets ([`aws_quota`]) of its
    /// credential and region.
    pub aws_quotas: bool,
}

/// AWS's request quotas as the proxy models them, per credential and region: the bucket a
/// request draws from, its refill per second and its size (ECS: reads 20/s with a burst of 50,
/// RegisterTaskDefinition 1/s; ELBv2 describes 10/s; Lambda's control plane 15/s; CloudWatch
/// DescribeAlarms 9/s).
pub fn aws_quota(op: &Operation) -> (&'static str, f64, f64) {
    let task_definition = op.name == "RegisterTaskDefinition" || op.name == "DeregisterTaskDefinition";
    match (op.service.as_str(), op.is_read()) {
        ("ecs", _) if task_definition => ("ecs:task-definitions", 1.0, 1.0),
        ("ecs", true) => ("ecs:read", 20.0, 50.0),
        ("ecs", false) => ("ecs:write", 10.0, 20.0),
        ("elasticloadbalancing", true) => ("elb:describe", 10.0, 20.0),
        ("elasticloadbalancing", false) => ("elb:write", 5.0, 10.0),
        ("lambda", _) => ("lambda", 15.0, 15.0),
        ("monitoring", _) => ("cloudwatch", 9.0, 9.0),
        _ => ("other", 10.0, 20.0),
    }
}

/// AWS's buckets: tokens and when they were last refilled, by (access key, region, bucket).
type QuotaBuckets = BTreeMap<(String, String, &'static str), (f64, Instant)>;

/// Takes a token from the request's AWS bucket; `false` when it is empty (AWS throttles).
fn within_quota(buckets: &Mutex<QuotaBuckets>, headers: &HeaderMap, op: &Operation) -> bool {
    let (access_key, region) = scope_of(headers).map_or_else(Default::default, |s| (s.access_key, s.region));
    let (bucket, refill, size) = aws_quota(op);
    let now = Instant::now();
    let mut buckets = lock(buckets);
    let (tokens, at) = buckets.entry((access_key, region, bucket)).or_insert((size, now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * refill).min(size);
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

/// How the proxy answered the requests of one operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperationCount {
    /// Forwarded to moto and answered with moto's answer.
    pub forwarded: u64,
    /// Answered with a throttling error, not forwarded.
    pub throttled: u64,
    /// Answered 500/503 without forwarding.
    pub failed: u64,
    /// Forwarded (moto applied it), then answered 500/503.
    pub lost: u64,
}

impl OperationCount {
    /// Every request of the operation, whatever its answer.
    pub fn total(&self) -> u64 {
        self.forwarded + self.throttled + self.failed + self.lost
    }
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<Faults>,
    rng: Mutex<rand::rngs::StdRng>,
    counts: Mutex<BTreeMap<Operation, OperationCount>>,
    log: Mutex<Vec<(Instant, Operation)>>,
    quotas: Mutex<QuotaBuckets>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:port`, the endpoint to give the SDK.
    pub url: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (an `http://127.0.0.1:…` URL).
    pub async fn start(upstream: &str, faults: Faults) -> std::io::Result<FaultProxy> {
        if !upstream.starts_with("http://127.0.0.1:") {
            return Err(std::io::Error::other(format!("the fault proxy only forwards to 127.0.0.1, not {upstream}")));
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| std::io::Error::other(format!("building the proxy's HTTP client: {e}")))?;
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            faults: Mutex::new(faults),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(faults.seed)),
            counts: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            quotas: Mutex::new(BTreeMap::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("fault proxy stopped: {e}");
            }
        });
        Ok(FaultProxy { url, state, task })
    }

    /// Changes the faults from now on (the seeded choice goes on where it was).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// Requests per operation since the start or the last `reset`.
    pub fn counts(&self) -> BTreeMap<Operation, OperationCount> {
        lock(&self.state.counts).clone()
    }

    /// Forgets the counts and the request log.
    pub fn reset(&self) {
        lock(&self.state.counts).clear();
        lock(&self.state.log).clear();
    }

    /// When the first request received at or after `since` arrived, and its operation.
    pub fn first_request_since(&self, since: Instant) -> Option<(Instant, Operation)> {
        lock(&self.state.log).iter().find(|(at, _)| *at >= since).cloned()
    }

    /// Requests per mutating operation (all but `Describe*`, `List*`, `Get*`), as `service:Name`.
    pub fn mutations(&self) -> BTreeMap<String, u64> {
        self.counts().iter().filter(|(op, _)| !op.is_read()).map(|(op, c)| (format!("{}:{}", op.service, op.name), c.total())).collect()
    }

    /// Requests in all.
    pub fn total(&self) -> u64 {
        self.counts().values().map(OperationCount::total).sum()
    }

    /// The IAM actions of every operation seen since the last `reset`.
    pub fn iam_actions(&self) -> BTreeSet<String> {
        lock(&self.state.counts).keys().map(Operation::iam_action).collect()
    }

    /// The counts as a Markdown table, operations sorted, with a total line.
    pub fn table(&self) -> String {
        let counts = self.counts();
        let mut out = String::from("| operation | calls | throttled | 5xx before | 5xx after (applied) |\n|---|---:|---:|---:|---:|\n");
        let mut total = OperationCount::default();
        for (op, c) in &counts {
            out.push_str(&format!("| {}:{} | {} | {} | {} | {} |\n", op.service, op.name, c.total(), c.throttled, c.failed, c.lost));
            total.forwarded += c.forwarded;
            total.throttled += c.throttled;
            total.failed += c.failed;
            total.lost += c.lost;
        }
        out.push_str(&format!("| all | {} | {} | {} | {} |\n", total.total(), total.throttled, total.failed, total.lost));
        out
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fate the dice chose for one request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Forward,
    Throttle,
    FailBefore(u16),
    FailAfter(u16),
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => return plain(StatusCode::PAYLOAD_TOO_LARGE, format!("fault proxy: request body unreadable: {e}")),
    };
    let operation = operation_of(&parts.headers, parts.method.as_str(), parts.uri.path(), parts.uri.query(), &body);
    let protocol = Protocol::of(&parts.headers, &body);
    let faults = *lock(&state.faults);
    let fate = {
        let mut rng = lock(&state.rng);
        let roll = rng.random_range(0..100u32);
        let code = if rng.random_bool(0.5) { 500 } else { 503 };
        let after = rng.random_bool(0.5);
        let over_quota = faults.aws_quotas && !within_quota(&state.quotas, &parts.headers, &operation);
        if over_quota || roll < faults.throttle_percent {
            Fate::Throttle
        } else if roll < faults.throttle_percent + faults.server_error_percent {
            if after {
                Fate::FailAfter(code)
            } else {
                Fate::FailBefore(code)
            }
        } else {
            Fate::Forward
        }
    };
    {
        let mut log = lock(&state.log);
        if log.len() >= LOG_LIMIT {
            log.drain(..LOG_LIMIT / 2);
        }
        log.push((Instant::now(), operation.clone()));
    }
    {
        let mut counts = lock(&state.counts);
        let count = counts.entry(operation).or_default();
        match fate {
            Fate::Forward => count.forwarded += 1,
            Fate::Throttle => count.throttled += 1,
            Fate::FailBefore(_) => count.failed += 1,
            Fate::FailAfter(_) => count.lost += 1,
        }
    }
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    match fate {
        Fate::Throttle => return protocol.throttling(),
        Fate::FailBefore(code) => return protocol.server_error(code),
        Fate::Forward | Fate::FailAfter(_) => {}
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = state.client.request(parts.method.clone(), format!("{}{}", state.upstream, path_and_query));
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str()) {
            forward = forward.header(name, value);
        }
    }
    let answer = match forward.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("fault proxy: moto did not answer: {e}")),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("fault proxy: moto's answer broke off: {e}")),
    };
    if let Fate::FailAfter(code) = fate {
        return protocol.server_error(code);
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !is_hop_by_hop(name.as_str()) && name.as_str() != "content-length" {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(name, "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "proxy-connection")
}

fn plain(status: StatusCode, message: String) -> Response {
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    response
}

/// The wire protocol of a request, for errors in its own format.
#[derive(Clone, Copy)]
enum Protocol {
    /// `X-Amz-Target` + `application/x-amz-json-1.x` (ECS, Secrets Manager, SSM).
    AwsJson,
    /// Form-encoded `Action=` with XML answers (ELBv2, CloudWatch 1.99, STS).
    Query,
    /// REST + JSON (Lambda, API Gateway v2).
    RestJson,
}

impl Protocol {
    fn of(headers: &HeaderMap, body: &Bytes) -> Protocol {
        if headers.contains_key("x-amz-target") {
            Protocol::AwsJson
        } else if form_value(body, "Action").is_some() {
            Protocol::Query
        } else {
            Protocol::RestJson
        }
    }

    fn throttling(self) -> Response {
        match self {
            Protocol::AwsJson => json_error(
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.1",
                r#"{"__type":"ThrottlingException","message":"Rate exceeded (fault proxy)"}"#,
            ),
            Protocol::Query => xml_error(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded (fault proxy)"),
            Protocol::RestJson => {
                let mut response = json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "application/json",
                    r#"{"message":"Rate exceeded (fault proxy)","Type":"User"}"#,
                );
                response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("TooManyRequestsException"));
                response
            }
        }
    }

    fn server_error(self, code: u16) -> Response {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = if code == 503 { "ServiceUnavailable" } else { "InternalFailure" };
        match self {
            Protocol::AwsJson => json_error(
                status,
                "application/x-amz-json-1.1",
                &format!(r#"{{"__type":"{kind}","message":"injected {code} (fault proxy)"}}"#),
            ),
            Protocol::Query => xml_error(status, kind, &format!("injected {code} (fault proxy)")),
            Protocol::RestJson => {
                let mut response =
                    json_error(status, "application/json", &format!(r#"{{"message":"injected {code} (fault proxy)","Type":"Service"}}"#));
                response
                    .headers_mut()
                    .insert("x-amzn-errortype", HeaderValue::from_static(if code == 503 { "ServiceException" } else { "InternalFailure" }));
                response
            }
        }
    }
}

fn json_error(status: StatusCode, content_type: &'static str, body: &str) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    response.headers_mut().insert("x-amzn-requestid", HeaderValue::from_static("fault-proxy"));
    response
}

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", HeaderValue::from_static("text/xml"));
    response
}

/// The SigV4 credential scope of a request (access key, region, signing name).
fn scope_of(headers: &HeaderMap) -> Option<gitmoxi::aws::iam::CredentialScope> {
    gitmoxi::aws::iam::credential_scope(headers.get("authorization")?.to_str().ok()?)
}

/// Names the operation of a request.
pub fn operation_of(headers: &HeaderMap, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> Operation {
    let service = scope_of(headers).map_or_else(|| "unsigned".to_string(), |s| s.service);
    if let Some(target) = headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        let name = target.rsplit('.').next().unwrap_or(target).to_string();
        return Operation { service, name };
    }
    if let Some(action) = form_value(body, "Action").or_else(|| query.and_then(|q| form_value(q.as_bytes(), "Action"))) {
        return Operation { service, name: action };
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let name = rest_operation(method, &segments).map_or_else(|| format!("{method} {path}"), str::to_string);
    Operation { service, name }
}

/// The Lambda and API Gateway v2 REST routes gitmoxi uses; `*` matches one path segment.
const REST_ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "2015-03-31/functions", "CreateFunction"),
    ("GET", "2015-03-31/functions/*", "GetFunction"),
    ("DELETE", "2015-03-31/functions/*", "DeleteFunction"),
    ("PUT", "2015-03-31/functions/*/code", "UpdateFunctionCode"),
    ("GET", "2015-03-31/functions/*/configuration", "GetFunctionConfiguration"),
    ("PUT", "2015-03-31/functions/*/configuration", "UpdateFunctionConfiguration"),
    ("POST", "2015-03-31/functions/*/versions", "PublishVersion"),
    ("GET", "2015-03-31/functions/*/versions", "ListVersionsByFunction"),
    ("POST", "2015-03-31/functions/*/aliases", "CreateAlias"),
    ("GET", "2015-03-31/functions/*/aliases/*", "GetAlias"),
    ("PUT", "2015-03-31/functions/*/aliases/*", "UpdateAlias"),
    ("POST", "2015-03-31/functions/*/policy", "AddPermission"),
    ("GET", "2015-03-31/functions/*/policy", "GetPolicy"),
    ("DELETE", "2015-03-31/functions/*/policy/*", "RemovePermission"),
    ("GET", "2015-03-31/event-source-mappings", "ListEventSourceMappings"),
    ("POST", "2015-03-31/event-source-mappings", "CreateEventSourceMapping"),
    ("GET", "2015-03-31/event-source-mappings/*", "GetEventSourceMapping"),
    ("PUT", "2015-03-31/event-source-mappings/*", "UpdateEventSourceMapping"),
    ("DELETE", "2015-03-31/event-source-mappings/*", "DeleteEventSourceMapping"),
    ("POST", "2017-03-31/tags/*", "TagResource"),
    ("GET", "v2/apis/*/integrations", "GetIntegrations"),
    ("POST", "v2/apis/*/integrations", "CreateIntegration"),
    ("GET", "v2/apis/*/routes/*", "GetRoute"),
    ("PATCH", "v2/apis/*/routes/*", "UpdateRoute"),
    ("DELETE", "v2/apis/*/integrations/*", "DeleteIntegration"),
];

fn rest_operation(method: &str, segments: &[&str]) -> Option<&'static str> {
    REST_ROUTES.iter().find_map(|(m, pattern, name)| {
        let parts: Vec<&str> = pattern.split('/').collect();
        let matches = *m == method && parts.len() == segments.len() && parts.iter().zip(segments).all(|(p, s)| *p == "*" || p == s);
        matches.then_some(*name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(service: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let auth = format!("AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x");
        h.insert("authorization", HeaderValue::from_str(&auth).expect("header"));
        h
    }

    #[test]
    fn operations_are_named_in_all_three_protocols() {
        let mut ecs = signed("ecs");
        ecs.insert("x-amz-target", HeaderValue::from_static("AmazonEC2ContainerServiceV20141113.UpdateService"));
        let op = operation_of(&ecs, "POST", "/", None, b"{}");
        assert_eq!(op, Operation { service: "ecs".into(), name: "UpdateService".into() });
        assert_eq!(op.iam_action(), "ecs:UpdateService");
        let op = operation_of(&signed("monitoring"), "POST", "/", None, b"Action=DescribeAlarms&Version=2010-08-01");
        assert_eq!(op.iam_action(), "cloudwatch:DescribeAlarms");
        let op = operation_of(&signed("lambda"), "PUT", "/2015-03-31/functions/hello/aliases/live", None, b"{}");
        assert_eq!(op.iam_action(), "lambda:UpdateAlias");
        let op = operation_of(&signed("lambda"), "GET", "/2015-03-31/event-source-mappings/", Some("FunctionName=x"), b"");
        assert_eq!(op.name, "ListEventSourceMappings");
        let op = operation_of(&signed("apigateway"), "PATCH", "/v2/apis/a1/routes/r1", None, b"{}");
        assert_eq!((op.name.as_str(), op.iam_action().as_str()), ("UpdateRoute", "apigateway:PATCH"));
        let op = operation_of(&signed("lambda"), "GET", "/2015-03-31/layers", None, b"");
        assert_eq!(op.name, "GET /2015-03-31/layers", "an unknown route keeps its method and path");
    }

    #[tokio::test]
    async fn the_proxy_refuses_anything_but_loopback() {
        let err = FaultProxy::start("http://10.0.0.1:5000", Faults::default()).await.err().expect("refused");
        assert!(err.to_string().contains("only forwards to 127.0.0.1"), "{err}");
    }
}
