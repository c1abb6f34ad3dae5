//! Where repository credentials may go (SPEC §7.5, issue 13): the rules that keep an API caller
//! from making gitmoxi send its secrets to a host of the caller's choosing.
//!
//! - A repository added through the API names its token by a Secrets Manager or SSM ARN that
//!   starts with a prefix the configuration allows (`[api_repos] token_arn_prefixes`; none by
//!   default). `env:` sources and `GITHUB_TOKEN` come from the configuration file only.
//! - Its URL is `https://`, `ssh://` or `user@host:path`; plain `http://` only to a loopback host
//!   and only when `allow_loopback_http` is set; `file://` and plain paths only when
//!   `allow_local` is set. A URL carrying a password (`https://user:secret@…`) is refused: its
//!   secret would be echoed and stored.
//! - At fetch time a token is handed only to the host its repository was configured with, over
//!   https (or http to a loopback host): a redirect elsewhere gets nothing.

use crate::io::credentials::TokenSource;
use serde::Deserialize;

/// What the API may add (the `[api_repos]` table of the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiRepoPolicy {
    /// `file://` and plain-path repositories (tests, a local mirror).
    #[serde(default)]
    pub allow_local: bool,
    /// `http://` to 127.0.0.1, ::1 or localhost (tests).
    #[serde(default)]
    pub allow_loopback_http: bool,
    /// Secrets Manager / SSM ARN prefixes an API caller may name as `access_token_arn`.
    #[serde(default)]
    pub token_arn_prefixes: Vec<String>,
    /// `[api_repos.scope]`: what every repository added through the API may deploy.
    #[serde(default)]
    pub scope: gitmoxi_deploy::scope::RepoScope,
}

/// How a repository URL reaches its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    Ssh,
    /// `http://` to a loopback host.
    LoopbackHttp,
    /// `http://` to any other host.
    Http,
    /// `file://` or a path on this machine.
    Local,
    /// Anything else (`git://`, `ftp://`…).
    Other,
}

/// The transport and host of a repository URL.
pub fn transport(url: &str) -> (Transport, Option<String>) {
    let url = url.trim();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = host_port.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default().to_string()
        } else {
            host_port.split(':').next().unwrap_or_default().to_string()
        };
        let host = host.to_ascii_lowercase();
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "https" => Transport::Https,
            "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
            "http" if is_loopback(&host) => Transport::LoopbackHttp,
            "http" => Transport::Http,
            "file" => Transport::Local,
            _ => Transport::Other,
        };
        return (kind, Some(host).filter(|h| !h.is_empty()));
    }
    // scp-like `user@host:path` (no slash before the colon), else a path
    match url.split_once(':') {
        Some((left, _)) if !left.contains('/') && left.contains('@') => {
            (Transport::Ssh, left.rsplit_once('@').map(|(_, h)| h.to_ascii_lowercase()))
        }
        Some(_) | None => (Transport::Local, None),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the URL carries a password (`scheme://user:secret@host`).
pub fn has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    authority.rsplit_once('@').is_some_and(|(user_info, _)| user_info.contains(':'))
}

/// Checks a repository an API caller wants added: its URL and its token source. Every problem
/// is named, in one message.
pub fn check_api_repo(url: &str, token: Option<&TokenSource>, policy: &ApiRepoPolicy) -> Result<(), String> {
    let mut problems: Vec<String> = Vec::new();
    if has_password(url) {
        problems.push("repo_url carries a password: put the credential in Secrets Manager or SSM and name it as access_token_arn".into());
    }
    let (kind, _) = transport(url);
    match kind {
        Transport::Https | Transport::Ssh => {}
        Transport::LoopbackHttp if policy.allow_loopback_http => {}
        Transport::LoopbackHttp | Transport::Http => {
            problems.push("repo_url must be https:// or ssh: plain http would send the repository's credential in clear".into())
        }
        Transport::Local if policy.allow_local => {}
        Transport::Local => problems.push(
            "repo_url names a path on the controller's machine; the configuration does not allow that through the API ([api_repos] allow_local)"
                .into(),
        ),
        Transport::Other => problems.push("repo_url must be https:// or ssh (user@host:path or ssh://)".into()),
    }
    match token {
        None => {}
        Some(TokenSource::Env(_) | TokenSource::File(_)) => problems.push(
            "environment variables (env:NAME, GITHUB_TOKEN) and files (file:PATH) are token sources of the configuration file only; name a Secrets Manager or SSM ARN"
                .into(),
        ),
        Some(TokenSource::SecretsManager(arn) | TokenSource::Ssm(arn)) => {
            if policy.token_arn_prefixes.is_empty() {
                problems.push(
                    "this gitmoxi accepts no access_token_arn through the API; list the allowed ARN prefixes in [api_repos] token_arn_prefixes"
                        .into(),
                );
            } else if !policy.token_arn_prefixes.iter().any(|prefix| arn.starts_with(prefix.as_str())) {
                problems.push(format!(
                    "access_token_arn {arn} is not under an allowed prefix ([api_repos] token_arn_prefixes: {})",
                    policy.token_arn_prefixes.join(", ")
                ));
            }
            if kind == Transport::Ssh {
                problems.push("an access token is sent over https only; an ssh repository authenticates with the controller's SSH agent".into());
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Whether a token for the repository at `configured` may be sent for a request to `requested`
/// (the URL libgit2 authenticates, after any redirect): same host, over https (or http to a
/// loopback host).
pub fn may_send_token(configured: &str, requested: &str) -> bool {
    let (want_kind, want_host) = transport(configured);
    let (kind, host) = transport(requested);
    let secure = matches!(kind, Transport::Https | Transport::LoopbackHttp);
    secure && host.is_some() && host == want_host && matches!(want_kind, Transport::Https | Transport::LoopbackHttp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_and_hosts() {
        assert_eq!(transport("https://GitHub.com/acme/d.git"), (Transport::Https, Some("github.com".into())));
        assert_eq!(transport("git@github.com:acme/d.git"), (Transport::Ssh, Some("github.com".into())));
        assert_eq!(transport("ssh://git@host:22/x"), (Transport::Ssh, Some("host".into())));
        assert_eq!(transport("http://127.0.0.1:9/x"), (Transport::LoopbackHttp, Some("127.0.0.1".into())));
        assert_eq!(transport("http://[::1]:9/x"), (Transport::LoopbackHttp, Some("::1".into())));
        assert_eq!(transport("http://evil.example/x"), (Transport::Http, Some("evil.example".into())));
        assert_eq!(transport("/srv/git/d"), (Transport::Local, None));
        assert_eq!(transport("file:///srv/git/d"), (Transport::Local, None));
        assert_eq!(transport("git://host/x").0, Transport::Other);
    }

    #[test]
    fn the_api_cannot_name_the_controllers_own_secrets_or_an_unsafe_url() {
        let none = ApiRepoPolicy::default();
        let env = TokenSource::Env("AWS_SECRET_ACCESS_KEY".into());
        assert!(check_api_repo("https://github.com/a/b.git", Some(&env), &none).unwrap_err().contains("configuration file only"));
        let arn = TokenSource::SecretsManager("arn:aws:secretsmanager:us-east-1:1:secret:other".into());
        assert!(check_api_repo("https://github.com/a/b.git", Some(&arn), &none).unwrap_err().contains("token_arn_prefixes"));
        let allowed =
            ApiRepoPolicy { token_arn_prefixes: vec!["arn:aws:secretsmanager:us-east-1:1:secret:gitmoxi/".into()], ..none.clone() };
        assert!(check_api_repo("https://github.com/a/b.git", Some(&arn), &allowed).unwrap_err().contains("not under an allowed prefix"));
        let ok = TokenSource::SecretsManager("arn:aws:secretsmanager:us-east-1:1:secret:gitmoxi/deploys".into());
        assert_eq!(check_api_repo("https://github.com/a/b.git", Some(&ok), &allowed), Ok(()));
        assert!(check_api_repo("http://evil.example/b.git", Some(&ok), &allowed).unwrap_err().contains("https://"));
        assert!(check_api_repo("http://127.0.0.1:8/b.git", None, &none).is_err(), "loopback http only when allowed");
        assert_eq!(check_api_repo("http://127.0.0.1:8/b.git", None, &ApiRepoPolicy { allow_loopback_http: true, ..none.clone() }), Ok(()));
        assert!(check_api_repo("/etc", None, &none).unwrap_err().contains("allow_local"));
        assert!(check_api_repo("file:///etc", None, &none).is_err());
        assert!(check_api_repo("https://u:secret@github.com/a/b.git", None, &none).unwrap_err().contains("password"));
        assert!(check_api_repo("git@github.com:a/b.git", Some(&ok), &allowed).unwrap_err().contains("https only"));
        assert_eq!(check_api_repo("git@github.com:a/b.git", None, &none), Ok(()));
    }

    #[test]
    fn a_token_goes_only_to_its_own_host_over_https() {
        assert!(may_send_token("https://github.com/a/b.git", "https://github.com/a/b.git/info/refs"));
        assert!(!may_send_token("https://github.com/a/b.git", "https://evil.example/a/b.git"), "a redirect elsewhere");
        assert!(!may_send_token("https://github.com/a/b.git", "http://github.com/a/b.git"), "a downgrade");
        assert!(!may_send_token("http://evil.example/a.git", "http://evil.example/a.git"), "plain http to a remote host");
        assert!(may_send_token("http://127.0.0.1:9/a.git", "http://127.0.0.1:9/a.git"));
    }
}
