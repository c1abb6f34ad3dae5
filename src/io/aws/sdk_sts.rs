//! STS over the SDK: who the controller is (GetCallerIdentity), asked once at start, and the
//! workload accounts' roles (AssumeRole). An app that names another account in its depdef is
//! deployed with that account's role, never with the controller's own credentials.

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

/// What [`assume_role`] asks for.
pub struct RoleRequest<'a> {
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub external_id: Option<&'a str>,
    pub duration_secs: i32,
}

/// Temporary credentials of a role: (access key id, secret key, session token, expiry).
pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiry: Option<std::time::SystemTime>,
}

/// AssumeRole of `request` with the credentials of `client`.
pub async fn assume_role(client: &aws_sdk_sts::Client, request: &RoleRequest<'_>) -> Result<RoleCredentials, AwsError> {
    let answer = client
        .assume_role()
        .role_arn(request.role_arn)
        .role_session_name(request.session_name)
        .set_external_id(request.external_id.map(str::to_string))
        .duration_seconds(request.duration_secs)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(SERVICE, "AssumeRole", e))?;
    let c = answer
        .credentials()
        .ok_or_else(|| AwsError::new(SERVICE, "AssumeRole", AwsErrorKind::Rejected, "NoCredentials", "STS answered without credentials"))?;
    Ok(RoleCredentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: c.session_token().to_string(),
        expiry: std::time::SystemTime::try_from(*c.expiration()).ok(),
    })
}
