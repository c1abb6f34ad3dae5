//! STS over the SDK: who the controller is (GetCallerIdentity), asked once at start. An app
//! that names another account in its depdef must not be deployed with these credentials.

use super::{AwsError, AwsErrorKind};
use aws_config::SdkConfig;

const SERVICE: &str = "sts";

/// The account of the credentials in `config`.
pub async fn caller_account(config: &SdkConfig) -> Result<String, AwsError> {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "GetCallerIdentity", e))?;
    identity
        .account()
        .map(str::to_string)
        .ok_or_else(|| AwsError::new(SERVICE, "GetCallerIdentity", AwsErrorKind::Rejected, "NoAccount", "STS answered without an account"))
}
