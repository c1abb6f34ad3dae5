//! One SDK client per (account, region), built lazily from the shared AWS configuration: the
//! controller's own credentials for its own account, the account's assumed role for an account
//! in `[accounts]` (SPEC §7.4), and credentials that refuse every call for any other account.

use super::accounts::{AccountRole, AssumedRole};
use super::sdk_alarms::SdkAlarms;
use super::sdk_apigw::SdkApiGateway;
use super::sdk_ecs::SdkEcs;
use super::sdk_elb::SdkElb;
use super::sdk_lambda::SdkLambda;
use super::{Alarms, ApiGateway, AwsError, AwsProvider, Ecs, Elb, Lambda};
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Clients keyed by (account, region).
type ClientCache<T> = Mutex<HashMap<(Option<String>, String), Arc<T>>>;

/// Builds and caches SDK-backed clients.
pub struct SdkProvider {
    base: SdkConfig,
    ecs: ClientCache<dyn Ecs>,
    elb: ClientCache<dyn Elb>,
    alarms: ClientCache<dyn Alarms>,
    lambda: ClientCache<dyn Lambda>,
    apigw: ClientCache<dyn ApiGateway>,
    metrics: crate::io::metrics::AwsCallMetrics,
    /// The accounts with a role, by account id.
    roles: BTreeMap<String, Arc<AssumedRole>>,
    /// The controller's own account, once STS told it.
    own: OnceLock<String>,
    /// Client-side rate limits, and the HTTP client they wrap (`None`: no limits, as the
    /// simulations' providers have none either).
    limits: Option<(Arc<super::limits::Limiter>, aws_smithy_runtime_api::client::http::SharedHttpClient)>,
}

impl SdkProvider {
    /// Loads the standard AWS chain (env, profile, container/instance role, `AWS_ENDPOINT_URL`).
    /// `max_attempts` 1 turns SDK retries off (moto tests); production keeps the standard 3.
    pub async fn load(max_attempts: u32, metrics: crate::io::metrics::AwsCallMetrics) -> SdkProvider {
        let base = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)))
            .load()
            .await;
        Self::from_config(base, metrics)
    }

    /// Uses an explicit SDK configuration (tests point it at moto).
    pub fn from_config(base: SdkConfig, metrics: crate::io::metrics::AwsCallMetrics) -> SdkProvider {
        SdkProvider {
            base,
            ecs: Mutex::new(HashMap::new()),
            elb: Mutex::new(HashMap::new()),
            alarms: Mutex::new(HashMap::new()),
            lambda: Mutex::new(HashMap::new()),
            apigw: Mutex::new(HashMap::new()),
            metrics,
            roles: BTreeMap::new(),
            own: OnceLock::new(),
            limits: None,
        }
    }

    /// Sends every request through `limiter` (per account, region and API family).
    pub fn with_limits(mut self, limiter: Arc<super::limits::Limiter>) -> SdkProvider {
        let inner = self.base.http_client().unwrap_or_else(default_https_client);
        self.limits = Some((limiter, inner));
        self
    }

    /// Reaches the accounts of `[accounts]` through their roles.
    pub fn with_roles(mut self, roles: &BTreeMap<String, AccountRole>) -> SdkProvider {
        self.roles = roles.iter().map(|(id, role)| (id.clone(), Arc::new(AssumedRole::new(&self.base, id, role.clone())))).collect();
        self
    }

    /// The configuration calls into `account` use (see the module header).
    fn config_of(&self, account: Option<&str>) -> SdkConfig {
        let config = match self.route(account) {
            Route::Own => self.base.clone(),
            Route::Role(role) => role.config(&self.base),
            Route::NoRole(id) => super::accounts::refusing_config(&self.base, id),
        };
        match &self.limits {
            Some((limiter, inner)) => {
                let limited = super::limits::LimitedHttpClient::new(inner.clone(), limiter.clone(), account.unwrap_or("own"));
                // A request waits for its token inside the HTTP client, where the SDK's upload
                // stall protection would count the wait as a stalled upload and fail the call
                // after its 5 s grace. gitmoxi's request bodies are small documents: only the
                // download side stays protected.
                let stalls = aws_smithy_runtime_api::client::stalled_stream_protection::StalledStreamProtectionConfig::enabled()
                    .upload_enabled(false)
                    .build();
                config.into_builder().http_client(limited).stalled_stream_protection(stalls).build()
            }
            None => config,
        }
    }

    /// How calls into `account` (none: the controller's own) are made.
    fn route<'a>(&'a self, account: Option<&'a str>) -> Route<'a> {
        let Some(id) = account else { return Route::Own };
        match self.roles.get(id) {
            Some(role) => Route::Role(role),
            None if self.own.get().is_some_and(|own| own == id) => Route::Own,
            None => Route::NoRole(id),
        }
    }
}

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, proxies from the environment),
/// built here so the rate limiter can wrap it.
fn default_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// How calls reach an account.
enum Route<'a> {
    /// With the controller's own credentials.
    Own,
    /// Through the account's role.
    Role(&'a Arc<AssumedRole>),
    /// Not at all: no role for this account, which is not the controller's own.
    NoRole(&'a str),
}

/// The client of (account, region) from `cache`, built by `make` the first time.
fn cached<T: ?Sized>(cache: &ClientCache<T>, account: Option<&str>, region: &str, make: impl FnOnce(Region) -> Arc<T>) -> Arc<T> {
    let key = (account.map(str::to_string), region.to_string());
    let mut cache = crate::base::sync::lock(cache);
    cache.entry(key).or_insert_with(|| make(Region::new(region.to_string()))).clone()
}

#[async_trait::async_trait]
impl AwsProvider for SdkProvider {
    async fn caller_account(&self) -> Result<String, AwsError> {
        let own = super::sdk_sts::caller_account(&self.base).await?;
        let _ = self.own.set(own.clone());
        Ok(own)
    }

    async fn reach(&self, account: Option<&str>, _region: &str) -> Result<(), AwsError> {
        match self.route(account) {
            Route::Own => Ok(()),
            Route::Role(role) => role.credentials().await.map(|_| ()),
            Route::NoRole(id) => Err(super::accounts::not_configured(id)),
        }
    }

    fn ecs(&self, account: Option<&str>, region: &str) -> Arc<dyn Ecs> {
        cached(&self.ecs, account, region, |r| {
            let conf = aws_sdk_ecs::config::Builder::from(&self.config_of(account)).region(r).build();
            Arc::new(SdkEcs::new(aws_sdk_ecs::Client::from_conf(conf), self.metrics.clone()))
        })
    }

    fn elb(&self, account: Option<&str>, region: &str) -> Arc<dyn Elb> {
        cached(&self.elb, account, region, |r| {
            let conf = aws_sdk_elasticloadbalancingv2::config::Builder::from(&self.config_of(account)).region(r).build();
            Arc::new(SdkElb::new(aws_sdk_elasticloadbalancingv2::Client::from_conf(conf), self.metrics.clone()))
        })
    }

    fn alarms(&self, account: Option<&str>, region: &str) -> Arc<dyn Alarms> {
        cached(&self.alarms, account, region, |r| {
            let conf = aws_sdk_cloudwatch::config::Builder::from(&self.config_of(account)).region(r).build();
            Arc::new(SdkAlarms::new(aws_sdk_cloudwatch::Client::from_conf(conf), self.metrics.clone()))
        })
    }

    fn lambda(&self, account: Option<&str>, region: &str) -> Arc<dyn Lambda> {
        cached(&self.lambda, account, region, |r| {
            let conf = aws_sdk_lambda::config::Builder::from(&self.config_of(account)).region(r).build();
            Arc::new(SdkLambda::new(aws_sdk_lambda::Client::from_conf(conf), self.metrics.clone()))
        })
    }

    fn apigw(&self, account: Option<&str>, region: &str) -> Arc<dyn ApiGateway> {
        cached(&self.apigw, account, region, |r| {
            let conf = aws_sdk_apigatewayv2::config::Builder::from(&self.config_of(account)).region(r).build();
            Arc::new(SdkApiGateway::new(aws_sdk_apigatewayv2::Client::from_conf(conf), self.metrics.clone()))
        })
    }

    fn secrets(&self, account: Option<&str>, region: &str) -> Arc<dyn crate::io::credentials::SecretStore> {
        // Tokens are read rarely (and cached by the caller): a client per call is fine.
        let region = Region::new(region.to_string());
        let config = self.config_of(account);
        let secrets = aws_sdk_secretsmanager::config::Builder::from(&config).region(region.clone()).build();
        let ssm = aws_sdk_ssm::config::Builder::from(&config).region(region).build();
        Arc::new(super::sdk_secrets::SdkSecrets {
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
            ssm: aws_sdk_ssm::Client::from_conf(ssm),
            metrics: self.metrics.clone(),
        })
    }
}
