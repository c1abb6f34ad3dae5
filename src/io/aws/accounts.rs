//! Cross-account roles (SPEC §7.4): each `[accounts."ID"]` role is assumed through STS with the
//! controller's own credentials. Its credentials are cached and renewed five minutes before they
//! expire, and serve every client of that account (one client set per account and region). An
//! account with neither a role nor the controller's own id gets credentials that refuse every
//! call: the controller's own credentials never stand in for another account's.

use super::{AwsError, AwsErrorKind};
use aws_config::{Region, SdkConfig};
use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long assumed credentials are asked for (STS's default; a role's maximum is at least this).
const SESSION: Duration = Duration::from_secs(3600);
/// Credentials this close to their expiry are renewed before use.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// `[accounts."ID"]`: how gitmoxi reaches one workload account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRole {
    /// The role to assume (`arn:aws:iam::ID:role/NAME`).
    pub role_arn: String,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
    /// The session name CloudTrail shows (default `gitmoxi`).
    pub session_name: String,
    /// Where the role may be used.
    pub regions: gitmoxi_deploy::accounts::AllowedRegions,
}

/// One account's role and its cached credentials.
#[derive(Debug)]
pub struct AssumedRole {
    account: String,
    role: AccountRole,
    sts: aws_sdk_sts::Client,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl AssumedRole {
    /// The role of `account`, assumed with the credentials of `base` (lazily, on first use).
    pub fn new(base: &SdkConfig, account: &str, role: AccountRole) -> AssumedRole {
        let region = base.region().cloned().unwrap_or_else(|| Region::new("us-east-1"));
        let conf = aws_sdk_sts::config::Builder::from(base).region(region).build();
        AssumedRole { account: account.to_string(), role, sts: aws_sdk_sts::Client::from_conf(conf), cached: Default::default() }
    }

    /// Current credentials for the account: the cached ones, or new ones from STS.
    pub async fn credentials(&self) -> Result<Credentials, AwsError> {
        let mut cached = self.cached.lock().await;
        if let Some(fresh) = cached.as_ref().filter(|c| fresh_enough(c, SystemTime::now())) {
            return Ok(fresh.clone());
        }
        let request = super::sdk_sts::RoleRequest {
            role_arn: &self.role.role_arn,
            session_name: &self.role.session_name,
            external_id: self.role.external_id.as_deref(),
            duration_secs: SESSION.as_secs() as i32,
        };
        let c = super::sdk_sts::assume_role(&self.sts, &request).await.map_err(|mut e| {
            e.message = format!("role {} of account {}: {}", self.role.role_arn, self.account, e.message);
            e
        })?;
        let credentials = Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), c.expiry, "gitmoxi-assume-role");
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// The SDK configuration of the account: `base` with these credentials.
    pub fn config(self: &Arc<Self>, base: &SdkConfig) -> SdkConfig {
        base.to_builder().credentials_provider(SharedCredentialsProvider::new(RoleCredentials(self.clone()))).build()
    }
}

/// Credentials that expire in more than [`RENEW_BEFORE`] (or never).
fn fresh_enough(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_none_or(|expiry| expiry.duration_since(now).is_ok_and(|left| left > RENEW_BEFORE))
}

/// The SDK's view of an assumed role.
#[derive(Debug)]
struct RoleCredentials(Arc<AssumedRole>);

impl ProvideCredentials for RoleCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.0.credentials().await.map_err(CredentialsError::provider_error) })
    }
}

/// Credentials for an account gitmoxi has no role in: every call fails before it is sent.
#[derive(Debug)]
struct NoRole(String);

impl ProvideCredentials for NoRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(not_configured(&self.0).message)))
    }
}

/// The refusal for an account without a role.
pub fn not_configured(account: &str) -> AwsError {
    AwsError::new(
        "sts",
        "AssumeRole",
        AwsErrorKind::Rejected,
        "AccountNotConfigured",
        format!("no role configured for account {account}: add [accounts.\"{account}\"] role_arn = … to the config file"),
    )
}

/// `base` with credentials that refuse every call (an account without a role).
pub fn refusing_config(base: &SdkConfig, account: &str) -> SdkConfig {
    base.to_builder().credentials_provider(SharedCredentialsProvider::new(NoRole(account.to_string()))).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_five_minutes_before_they_expire() {
        let now = SystemTime::now();
        let expiring = |secs| Credentials::new("a", "s", None, Some(now + Duration::from_secs(secs)), "t");
        assert!(fresh_enough(&expiring(3600), now));
        assert!(fresh_enough(&expiring(301), now));
        assert!(!fresh_enough(&expiring(299), now), "renewed ahead of expiry");
        assert!(!fresh_enough(&Credentials::new("a", "s", None, Some(now - Duration::from_secs(1)), "t"), now));
        assert!(fresh_enough(&Credentials::new("a", "s", None, None, "t"), now));
    }
}
