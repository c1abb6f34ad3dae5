//! Client-side rate limits (issue 15): every AWS request waits for a token of its family's bucket
//! for (account, region) before it is sent, so thousands of apps share AWS's quotas instead of
//! being throttled by them. Deployments in flight go first: a steady-state check (drift, an idle
//! app's look) may take a token only while the bucket keeps a reserve for them.
//!
//! The limiter sits under the SDK as an HTTP client wrapper: it sees each attempt (retries too)
//! after signing, and learns the service and region from the signature's credential scope, the
//! operation from `X-Amz-Target` (JSON protocols), `Action=` (query protocols) or the method
//! (REST protocols).

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A family of AWS operations that shares one quota bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiFamily {
    /// ECS Describe* and List*.
    EcsRead,
    /// ECS RegisterTaskDefinition and DeregisterTaskDefinition.
    EcsTaskDefinition,
    /// Every other ECS call (services, task sets, deployments).
    EcsWrite,
    /// ELBv2 Describe*.
    ElbRead,
    /// ELBv2 changes (listeners, rules).
    ElbWrite,
    /// The Lambda control plane.
    Lambda,
    /// CloudWatch (alarms).
    CloudWatch,
    /// STS, Secrets Manager, SSM, API Gateway and anything else.
    Other,
}

impl ApiFamily {
    pub const ALL: [ApiFamily; 8] = [
        ApiFamily::EcsRead,
        ApiFamily::EcsTaskDefinition,
        ApiFamily::EcsWrite,
        ApiFamily::ElbRead,
        ApiFamily::ElbWrite,
        ApiFamily::Lambda,
        ApiFamily::CloudWatch,
        ApiFamily::Other,
    ];

    /// The metric label and the configuration key.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFamily::EcsRead => "ecs_read",
            ApiFamily::EcsTaskDefinition => "ecs_task_definition",
            ApiFamily::EcsWrite => "ecs_write",
            ApiFamily::ElbRead => "elb_read",
            ApiFamily::ElbWrite => "elb_write",
            ApiFamily::Lambda => "lambda",
            ApiFamily::CloudWatch => "cloudwatch",
            ApiFamily::Other => "other",
        }
    }

    /// The family of `operation` of `service` (the signing name: ecs, elasticloadbalancing,
    /// lambda, monitoring, sts…). `operation` is the operation name, or for REST protocols the
    /// HTTP method.
    pub fn of(service: &str, operation: &str) -> ApiFamily {
        let reads = super::iam::Operation { service: service.to_string(), name: operation.to_string() }.is_read();
        match service {
            "ecs" if operation == "RegisterTaskDefinition" || operation == "DeregisterTaskDefinition" => ApiFamily::EcsTaskDefinition,
            "ecs" if reads => ApiFamily::EcsRead,
            "ecs" => ApiFamily::EcsWrite,
            "elasticloadbalancing" if reads => ApiFamily::ElbRead,
            "elasticloadbalancing" => ApiFamily::ElbWrite,
            "lambda" => ApiFamily::Lambda,
            "monitoring" => ApiFamily::CloudWatch,
            _ => ApiFamily::Other,
        }
    }

    /// Requests per second (sustained) and burst gitmoxi allows itself by default: below AWS's
    /// documented quotas per account and region (ECS reads ~20/s, RegisterTaskDefinition 1/s,
    /// ELBv2 describes 10/s, Lambda's control plane 15/s, CloudWatch DescribeAlarms 9/s), bursts
    /// no larger than AWS's buckets, so other tools in the account keep room.
    pub fn default_rate(self) -> Rate {
        match self {
            ApiFamily::EcsRead => Rate { per_second: 15.0, burst: 40.0 },
            ApiFamily::EcsTaskDefinition => Rate { per_second: 0.8, burst: 1.0 },
            ApiFamily::EcsWrite => Rate { per_second: 8.0, burst: 20.0 },
            ApiFamily::ElbRead => Rate { per_second: 8.0, burst: 20.0 },
            ApiFamily::ElbWrite => Rate { per_second: 4.0, burst: 10.0 },
            ApiFamily::Lambda => Rate { per_second: 12.0, burst: 12.0 },
            ApiFamily::CloudWatch => Rate { per_second: 8.0, burst: 8.0 },
            ApiFamily::Other => Rate { per_second: 10.0, burst: 20.0 },
        }
    }
}

/// A token bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Tokens added per second (the sustained rate).
    pub per_second: f64,
    /// The bucket's size (the burst).
    pub burst: f64,
}

/// Who is calling: a deployment in flight (or an operator's command), or a steady-state check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Deployment,
    Steady,
}

tokio::task_local! {
    /// The priority of the AWS calls of the current task (unset: a deployment's).
    pub static PRIORITY: Priority;
}

/// The priority of the current task's calls.
pub fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::Deployment)
}

/// The share of a bucket steady-state calls leave for deployments.
const DEPLOYMENT_RESERVE: f64 = 0.3;

/// The rates of each family (`[aws_limits]` overrides the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    rates: HashMap<ApiFamily, Rate>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { rates: ApiFamily::ALL.iter().map(|f| (*f, f.default_rate())).collect() }
    }
}

impl Limits {
    /// The defaults with `overrides` (family key → rate); an unknown key or a rate that is not
    /// positive is an error naming it.
    pub fn with_overrides(overrides: &HashMap<String, Rate>) -> Result<Limits, String> {
        let mut limits = Limits::default();
        for (key, rate) in overrides {
            let Some(family) = ApiFamily::ALL.iter().find(|f| f.as_str() == key) else {
                let keys: Vec<&str> = ApiFamily::ALL.iter().map(|f| f.as_str()).collect();
                return Err(format!("[aws_limits] has no family '{key}'; the families are {}", keys.join(", ")));
            };
            if !(rate.per_second > 0.0 && rate.burst >= 1.0 && rate.per_second.is_finite() && rate.burst.is_finite()) {
                return Err(format!("[aws_limits] {key}: per_second must be above 0 and burst at least 1"));
            }
            limits.rates.insert(*family, *rate);
        }
        Ok(limits)
    }

    pub fn rate(&self, family: ApiFamily) -> Rate {
        self.rates.get(&family).copied().unwrap_or_else(|| family.default_rate())
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every (account, region, family), shared by every client.
pub struct Limiter {
    limits: Limits,
    buckets: Mutex<HashMap<(String, String, ApiFamily), Bucket>>,
    waits: prometheus::IntCounterVec,
}

impl Limiter {
    pub fn new(limits: Limits, waits: prometheus::IntCounterVec) -> Limiter {
        Limiter { limits, buckets: Mutex::new(HashMap::new()), waits }
    }

    /// Takes a token for a call of `family` in (account, region), waiting as long as needed;
    /// returns how long it waited.
    pub async fn acquire(&self, account: &str, region: &str, family: ApiFamily, priority: Priority) -> Duration {
        let rate = self.limits.rate(family);
        let needed = match priority {
            Priority::Deployment => 1.0,
            Priority::Steady => 1.0 + (rate.burst * DEPLOYMENT_RESERVE).floor(),
        };
        let started = Instant::now();
        let mut counted = false;
        loop {
            let wait = {
                let mut buckets = crate::base::sync::lock(&self.buckets);
                let now = Instant::now();
                let bucket =
                    buckets.entry((account.to_string(), region.to_string(), family)).or_insert(Bucket { tokens: rate.burst, at: now });
                let refill = now.duration_since(bucket.at).as_secs_f64() * rate.per_second;
                bucket.tokens = (bucket.tokens + refill).min(rate.burst);
                bucket.at = now;
                if bucket.tokens >= needed.min(rate.burst) {
                    bucket.tokens -= 1.0;
                    return started.elapsed();
                }
                Duration::from_secs_f64((needed.min(rate.burst) - bucket.tokens) / rate.per_second)
            };
            if !counted {
                let who = match priority {
                    Priority::Deployment => "deployment",
                    Priority::Steady => "steady",
                };
                self.waits.with_label_values(&[family.as_str(), who]).inc();
                counted = true;
            }
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// What a signed request is: (service, region, operation) from its signature, target, body or
/// method.
pub fn describe_request(request: &HttpRequest) -> (String, String, String) {
    let header = |name: &str| request.headers().get(name).unwrap_or_default();
    let (region, service) = match super::iam::credential_scope(header("authorization")) {
        Some(scope) => (scope.region, scope.service),
        None => (String::new(), String::new()),
    };
    let target = header("x-amz-target");
    let operation = if let Some((_, op)) = target.rsplit_once('.') {
        op.to_string()
    } else if let Some(action) = request.body().bytes().and_then(|body| super::iam::form_value(body, "Action")) {
        action
    } else {
        // REST protocols: a read is a GET
        match request.method() {
            "GET" | "HEAD" => "Get".to_string(),
            other => other.to_string(),
        }
    };
    (service, region, operation)
}

/// An SDK HTTP client whose every request first takes a token from `limiter`.
#[derive(Clone)]
pub struct LimitedHttpClient {
    inner: SharedHttpClient,
    limiter: Arc<Limiter>,
    /// The account the calls go to ("own" for the controller's).
    account: String,
}

impl std::fmt::Debug for LimitedHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedHttpClient").field("account", &self.account).finish()
    }
}

impl LimitedHttpClient {
    pub fn new(inner: SharedHttpClient, limiter: Arc<Limiter>, account: &str) -> LimitedHttpClient {
        LimitedHttpClient { inner, limiter, account: account.to_string() }
    }
}

impl HttpClient for LimitedHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(LimitedConnector {
            inner: self.inner.http_connector(settings, components),
            limiter: self.limiter.clone(),
            account: self.account.clone(),
        })
    }
}

#[derive(Debug)]
struct LimitedConnector {
    inner: SharedHttpConnector,
    limiter: Arc<Limiter>,
    account: String,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("limits", &self.limits).finish()
    }
}

impl HttpConnector for LimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (service, region, operation) = describe_request(&request);
        let family = ApiFamily::of(&service, &operation);
        let priority = current_priority();
        let (inner, limiter, account) = (self.inner.clone(), self.limiter.clone(), self.account.clone());
        HttpConnectorFuture::new(async move {
            limiter.acquire(&account, &region, family, priority).await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: Rate) -> Limiter {
        let waits = prometheus::IntCounterVec::new(prometheus::Opts::new("w", "w"), &["family", "priority"]).expect("metric");
        let overrides = HashMap::from([("ecs_read".to_string(), rate)]);
        Limiter::new(Limits::with_overrides(&overrides).expect("limits"), waits)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_sustained_rate() {
        let l = limiter(Rate { per_second: 10.0, burst: 5.0 });
        let start = Instant::now();
        for _ in 0..25 {
            l.acquire("own", "us-east-1", ApiFamily::EcsRead, Priority::Deployment).await;
        }
        // 5 at once, then 20 more at 10/s
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..2.2).contains(&took), "{took}");
        // another account or region has its own bucket
        let other = Instant::now();
        l.acquire("111122223333", "us-east-1", ApiFamily::EcsRead, Priority::Deployment).await;
        l.acquire("own", "eu-west-1", ApiFamily::EcsRead, Priority::Deployment).await;
        assert_eq!(other.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_state_checks_leave_a_reserve_for_deployments() {
        let l = limiter(Rate { per_second: 1.0, burst: 10.0 });
        // steady checks take the bucket down to its reserve (3 of 10), then wait
        for _ in 0..7 {
            assert_eq!(l.acquire("own", "r", ApiFamily::EcsRead, Priority::Steady).await, Duration::ZERO);
        }
        let steady = l.acquire("own", "r", ApiFamily::EcsRead, Priority::Steady).await;
        assert!(steady >= Duration::from_millis(900), "{steady:?}");
        // a deployment still finds tokens at once
        for _ in 0..3 {
            assert_eq!(l.acquire("own", "r", ApiFamily::EcsRead, Priority::Deployment).await, Duration::ZERO);
        }
    }

    #[test]
    fn requests_are_sorted_into_families() {
        for (service, op, family) in [
            ("ecs", "DescribeServices", ApiFamily::EcsRead),
            ("ecs", "ListTasks", ApiFamily::EcsRead),
            ("ecs", "RegisterTaskDefinition", ApiFamily::EcsTaskDefinition),
            ("ecs", "UpdateService", ApiFamily::EcsWrite),
            ("elasticloadbalancing", "DescribeTargetHealth", ApiFamily::ElbRead),
            ("elasticloadbalancing", "ModifyListener", ApiFamily::ElbWrite),
            ("lambda", "Get", ApiFamily::Lambda),
            ("monitoring", "DescribeAlarms", ApiFamily::CloudWatch),
            ("sts", "AssumeRole", ApiFamily::Other),
        ] {
            assert_eq!(ApiFamily::of(service, op), family, "{service} {op}");
        }
    }

    #[test]
    fn overrides_name_their_mistakes() {
        let bad = HashMap::from([("ecs_reads".to_string(), Rate { per_second: 1.0, burst: 1.0 })]);
        assert!(Limits::with_overrides(&bad).unwrap_err().contains("no family 'ecs_reads'"));
        let zero = HashMap::from([("lambda".to_string(), Rate { per_second: 0.0, burst: 1.0 })]);
        assert!(Limits::with_overrides(&zero).unwrap_err().contains("lambda"));
    }

    #[test]
    fn a_signed_request_says_its_service_region_and_operation() {
        let mut ecs = HttpRequest::empty();
        ecs.headers_mut().insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20261130/eu-west-1/ecs/aws4_request, SignedHeaders=host, Signature=x",
        );
        ecs.headers_mut().insert("x-amz-target", "AmazonEC2ContainerServiceV20141113.DescribeServices");
        assert_eq!(describe_request(&ecs), ("ecs".into(), "eu-west-1".into(), "DescribeServices".into()));
        let mut elb = HttpRequest::new(aws_smithy_types::body::SdkBody::from("Action=ModifyListener&Version=2015-12-01"));
        elb.headers_mut()
            .insert("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/elasticloadbalancing/aws4_request, X");
        assert_eq!(describe_request(&elb).2, "ModifyListener");
    }
}
