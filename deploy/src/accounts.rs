//! Which AWS accounts and regions this controller may act in (SPEC §7.4): its own account, and
//! each account given a role in `[accounts]`, within that account's allowed regions. An app
//! outside them fails before anything is observed or changed: the controller's own credentials
//! never stand in for another account's.

use crate::record::FailureCause;
use std::collections::BTreeMap;

/// The regions an account's role may be used in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedRegions {
    /// Any region (no `regions` in the account's configuration).
    #[default]
    Any,
    /// Only these.
    Only(Vec<String>),
}

impl AllowedRegions {
    fn allows(&self, region: &str) -> bool {
        match self {
            AllowedRegions::Any => true,
            AllowedRegions::Only(regions) => regions.iter().any(|r| r == region),
        }
    }
}

/// The accounts with a role (`[accounts."ID"]`), by account id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountRoles {
    roles: BTreeMap<String, AllowedRegions>,
}

/// How an app's calls reach its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAccess {
    /// With the controller's own credentials (no account named, or the controller's own).
    Own,
    /// Through the account's configured role.
    Role,
}

/// No account but the controller's own (tests, offline planning).
pub static NO_ROLES: AccountRoles = AccountRoles::none();

impl AccountRoles {
    /// No role at all.
    pub const fn none() -> AccountRoles {
        AccountRoles { roles: BTreeMap::new() }
    }

    /// The accounts with a role and where each may be used.
    pub fn new(roles: impl IntoIterator<Item = (String, AllowedRegions)>) -> AccountRoles {
        AccountRoles { roles: roles.into_iter().collect() }
    }

    /// Whether an app in `account` (none: the controller's own) and `region` may be deployed,
    /// and how; the failure names the account and the fix.
    pub fn access(&self, own: Option<&str>, account: Option<&str>, region: &str) -> Result<AccountAccess, FailureCause> {
        let Some(account) = account else { return Ok(AccountAccess::Own) };
        match self.roles.get(account) {
            Some(regions) if regions.allows(region) => Ok(AccountAccess::Role),
            Some(AllowedRegions::Only(allowed)) => Err(FailureCause::AccountRegionNotAllowed {
                account: account.to_string(),
                region: region.to_string(),
                allowed: allowed.clone(),
            }),
            Some(AllowedRegions::Any) => Ok(AccountAccess::Role),
            None if Some(account) == own => Ok(AccountAccess::Own),
            None => Err(FailureCause::AccountNotConfigured { account: account.to_string(), own: own.map(str::to_string) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> AccountRoles {
        AccountRoles::new([
            ("111111111111".to_string(), AllowedRegions::Any),
            ("222222222222".to_string(), AllowedRegions::Only(vec!["eu-west-1".into()])),
        ])
    }

    #[test]
    fn each_account_is_reached_its_own_way_or_refused_with_the_fix() {
        let own = Some("123456789012");
        let r = roles();
        assert_eq!(r.access(own, None, "us-east-1"), Ok(AccountAccess::Own));
        assert_eq!(r.access(own, Some("123456789012"), "us-east-1"), Ok(AccountAccess::Own));
        assert_eq!(r.access(own, Some("111111111111"), "ap-south-1"), Ok(AccountAccess::Role));
        assert_eq!(r.access(own, Some("222222222222"), "eu-west-1"), Ok(AccountAccess::Role));
        let region = r.access(own, Some("222222222222"), "us-east-1").unwrap_err();
        assert_eq!(
            region,
            FailureCause::AccountRegionNotAllowed {
                account: "222222222222".into(),
                region: "us-east-1".into(),
                allowed: vec!["eu-west-1".into()]
            }
        );
        assert!(region.to_string().contains("us-east-1") && region.to_string().contains("eu-west-1"), "{region}");
        let unknown = r.access(own, Some("333333333333"), "us-east-1").unwrap_err();
        assert_eq!(unknown, FailureCause::AccountNotConfigured { account: "333333333333".into(), own: own.map(str::to_string) });
        // the controller's own account unknown (STS failed): only roles reach other accounts
        assert_eq!(r.access(None, Some("111111111111"), "us-east-1"), Ok(AccountAccess::Role));
        assert!(r.access(None, Some("123456789012"), "us-east-1").is_err());
    }
}
