//! Outbound requests whose URL a committer controls (a depdef's `webhooks`): issue 27. A
//! committer must not make the controller call itself or an internal host, so such a URL is
//! sent only when:
//! - it is `https` (plain `http` only to a host of the operator's `[notifications]
//!   webhook_hosts`);
//! - it carries no user name or password (they would be sent as Basic auth);
//! - every address its host resolves to is public: not loopback, private, link-local (the
//!   instance metadata service among them), shared (CGNAT), unspecified, multicast, reserved or
//!   documentation space, in any IPv4 form (hex and decimal forms are normalized by the URL
//!   parser) or IPv6 (v4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 inside) —
//!   unless the host is on the operator's allowlist;
//! - it is never the controller's own listener, allowlist or not.
//!
//! The request goes to the address that was checked (no second DNS answer can swap it), follows
//! no redirect, uses no proxy and is bounded in time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long a committer's webhook may take, DNS included.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the operator allows beyond public https hosts.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// `[notifications] webhook_hosts`: `host` or `host:port` entries (any scheme, any address).
    pub allowed_hosts: Vec<String>,
    /// The controller's own listener: never a destination.
    pub own_listener: Option<SocketAddr>,
}

/// A URL that passed the checks, with the address to send to.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: reqwest::Url,
    pub host: String,
    pub addr: SocketAddr,
}

impl OutboundPolicy {
    fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.allowed_hosts.iter().any(|entry| {
            let entry = entry.trim().to_ascii_lowercase();
            entry == host || entry == format!("{host}:{port}") || entry == format!("[{host}]:{port}")
        })
    }

    fn is_own_listener(&self, addr: &SocketAddr) -> bool {
        let Some(own) = self.own_listener else { return false };
        if addr.port() != own.port() {
            return false;
        }
        own.ip() == addr.ip() || (own.ip().is_unspecified() && !is_public(addr.ip()))
    }

    /// Checks `url` (see the module's rules); the reason it is refused otherwise, naming the
    /// host but never the whole URL (its path may hold a secret).
    pub async fn check(&self, url: &str) -> Result<Checked, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        let host = parsed.host_str().ok_or("the URL has no host")?.to_string();
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!("the URL to {host} carries a user name or password: it is not sent"));
        }
        let port = parsed.port_or_known_default().ok_or_else(|| format!("no port for {host}"))?;
        let allowed = self.allows(&host, port);
        match (parsed.scheme(), allowed) {
            ("https", _) | ("http", true) => {}
            (scheme, _) => {
                return Err(format!(
                    "{scheme}://{host} is refused: webhooks from files must use https (or be listed in [notifications] webhook_hosts)"
                ))
            }
        }
        let lookup_host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let addrs: Vec<SocketAddr> = tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((lookup_host.as_str(), port)))
            .await
            .map_err(|_| format!("{host} did not resolve in time"))?
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        if let Some(own) = addrs.iter().find(|a| self.is_own_listener(a)) {
            return Err(format!("{host} resolves to {own}, this controller's own listener: it is never called from a file"));
        }
        if !allowed {
            if let Some(inner) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(format!(
                    "{host} resolves to {}, an internal address: not sent (list the host in [notifications] webhook_hosts to allow it)",
                    inner.ip()
                ));
            }
        }
        Ok(Checked { url: parsed, host: lookup_host, addr: addrs[0] })
    }

    /// POSTs `body` as JSON to `url` once it passed [`Self::check`]: pinned to the checked
    /// address, no redirect, no proxy, bounded in time.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let checked = self.check(url).await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TIMEOUT)
            .resolve(&checked.host, checked.addr)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        let response =
            client.post(checked.url).json(body).send().await.map_err(|e| format!("{} unreachable: {}", checked.host, e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!("{} answered {status}; redirects are not followed", checked.host))
        } else {
            Err(format!("{} answered {status}", checked.host))
        }
    }
}

/// Whether `ip` is a public unicast address (the only kind a committer's URL may reach).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let internal = ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b));
    !internal
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    let documentation = s[0] == 0x2001 && s[1] == 0x0db8;
    global_unicast && !documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_in_every_form_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.0.0.5",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "52.94.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn committer_urls_are_checked_before_anything_is_sent() {
        let policy = OutboundPolicy { allowed_hosts: vec!["127.0.0.1:9999".into()], own_listener: Some("127.0.0.1:8080".parse().unwrap()) };
        let refused = |url: &'static str| {
            let policy = policy.clone();
            async move { policy.check(url).await.expect_err(url) }
        };
        assert!(refused("http://example.com/hook").await.contains("must use https"));
        assert!(refused("https://user:pw@127.0.0.1:9999/x").await.contains("user name or password"));
        // hex, decimal and octal IPv4 forms are the loopback address too
        for url in ["https://0x7f000001/x", "https://2130706433/x", "https://0177.0.0.1/x", "https://127.0.0.5:8443/x", "https://[::1]/x"] {
            assert!(refused(url).await.contains("internal address"), "{url}");
        }
        assert!(refused("https://169.254.169.254/latest/meta-data").await.contains("internal address"));
        // the operator's allowlist lets a local receiver through, never the controller itself
        assert_eq!(policy.check("http://127.0.0.1:9999/hook").await.expect("allowed").addr, "127.0.0.1:9999".parse().unwrap());
        let own = OutboundPolicy { allowed_hosts: vec!["127.0.0.1".into()], ..policy.clone() };
        assert!(own.check("http://127.0.0.1:8080/api/v2/commands").await.unwrap_err().contains("own listener"));
        assert!(refused("not a url").await.contains("not a URL"));
    }
}
