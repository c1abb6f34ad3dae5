//! The API Gateway v2 adapter over the official SDK: the integrations of an HTTP API, a route's
//! target, CreateIntegration (AWS_PROXY, payload 2.0) and UpdateRoute.

use super::{ApiGateway, AwsError};
use async_trait::async_trait;
use aws_sdk_apigatewayv2::types::IntegrationType;
use aws_sdk_apigatewayv2::Client;

const SERVICE: &str = "apigateway";

pub struct SdkApiGateway {
    client: Client,
    metrics: crate::io::metrics::AwsCallMetrics,
}

impl SdkApiGateway {
    pub fn new(client: Client, metrics: crate::io::metrics::AwsCallMetrics) -> Self {
        SdkApiGateway { client, metrics }
    }

    fn track<T>(&self, operation: &'static str, result: Result<T, AwsError>) -> Result<T, AwsError> {
        self.metrics.observe(SERVICE, operation, result.as_ref().err());
        result
    }
}

#[async_trait]
impl ApiGateway for SdkApiGateway {
    async fn integrations(&self, api_id: &str) -> Result<Vec<(String, String)>, AwsError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _page in 0..20 {
            let page = self
                .client
                .get_integrations()
                .api_id(api_id)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "GetIntegrations", e));
            let page = self.track("GetIntegrations", page)?;
            out.extend(
                page.items()
                    .iter()
                    .filter_map(|i| Some((i.integration_id()?.to_string(), i.integration_uri().unwrap_or_default().to_string()))),
            );
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn route_target(&self, api_id: &str, route_id: &str) -> Result<Option<String>, AwsError> {
        let out =
            self.client.get_route().api_id(api_id).route_id(route_id).send().await.map_err(|e| AwsError::from_sdk(SERVICE, "GetRoute", e));
        // a route without a target reports none (or an empty one)
        Ok(self.track("GetRoute", out)?.target().filter(|t| !t.is_empty()).map(str::to_string))
    }

    async fn create_integration(&self, api_id: &str, uri: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .create_integration()
            .api_id(api_id)
            .integration_type(IntegrationType::AwsProxy)
            .integration_uri(uri)
            .payload_format_version("2.0")
            .customize()
            // Not idempotent: a replay after a lost answer makes a second integration.
            .config_override(aws_sdk_apigatewayv2::config::Config::builder().retry_config(super::no_retry()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "CreateIntegration", e));
        self.track("CreateIntegration", out).map(|_| ())
    }

    async fn set_route_target(&self, api_id: &str, route_id: &str, target: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .update_route()
            .api_id(api_id)
            .route_id(route_id)
            .target(target)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateRoute", e));
        self.track("UpdateRoute", out).map(|_| ())
    }

    async fn delete_integration(&self, api_id: &str, integration_id: &str) -> Result<(), AwsError> {
        let out = self
            .client
            .delete_integration()
            .api_id(api_id)
            .integration_id(integration_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "DeleteIntegration", e));
        match self.track("DeleteIntegration", out) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == super::AwsErrorKind::NotFound || e.code == "NotFoundException" => Ok(()),
            Err(e) => Err(e),
        }
    }
}
