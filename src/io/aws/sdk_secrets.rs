//! Secrets Manager and SSM Parameter Store over the official SDK (repository tokens).
//! Values never reach a log line: errors carry only AWS's code and message.

use super::AwsError;
use crate::io::credentials::SecretStore;
use async_trait::async_trait;

pub struct SdkSecrets {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub metrics: crate::io::metrics::AwsCallMetrics,
}

#[async_trait]
impl SecretStore for SdkSecrets {
    async fn secret(&self, id: &str) -> Result<String, AwsError> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("secretsmanager", "GetSecretValue", e));
        self.metrics.observe("secretsmanager", "GetSecretValue", out.as_ref().err());
        out?.secret_string().map(str::to_string).ok_or_else(|| {
            AwsError::new(
                "secretsmanager",
                "GetSecretValue",
                super::AwsErrorKind::Rejected,
                "NoSecretString",
                "the secret has no string value (binary secrets are not supported)",
            )
        })
    }

    async fn parameter(&self, name: &str) -> Result<String, AwsError> {
        let out = self
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm", "GetParameter", e));
        self.metrics.observe("ssm", "GetParameter", out.as_ref().err());
        out?.parameter()
            .and_then(|p| p.value())
            .map(str::to_string)
            .ok_or_else(|| AwsError::new("ssm", "GetParameter", super::AwsErrorKind::Rejected, "NoValue", "the parameter has no value"))
    }
}
