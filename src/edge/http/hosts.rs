//! DNS rebinding defense (issue 13): a web page the operator opens can make the browser send
//! requests to `127.0.0.1` under the page's own host name. gitmoxi answers only requests whose
//! `Host` is a loopback name or one of the configured public names, and refuses a state-changing
//! request whose `Origin` is another site.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// Which `Host` names the server answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Public names (lowercase, without a port) besides the loopback ones.
    names: Vec<String>,
    /// Any host: a server listening beyond loopback with no names configured (its API token
    /// is what protects it then).
    any: bool,
}

impl AllowedHosts {
    /// Loopback names and `names`; `any` accepts every host.
    pub fn new(names: &[String], any: bool) -> AllowedHosts {
        AllowedHosts { names: names.iter().map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect(), any }
    }

    /// Whether a `Host` header value (name or address, with or without a port) is answered.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let name = host_name(host);
        name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || self.names.contains(&name)
    }
}

/// `example.com:8080` → `example.com`, `[::1]:8080` → `::1`, lowercase.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None if host.matches(':').count() > 1 => host, // a bare IPv6 address
        None => host.split(':').next().unwrap_or_default(),
    };
    name.to_ascii_lowercase()
}

/// The middleware: 421 for a foreign `Host`, 403 for a state-changing request from a foreign
/// `Origin`.
pub async fn check_host(State(allowed): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if !allowed.allows(&host) {
        return super::reply::error(
            StatusCode::MISDIRECTED_REQUEST,
            "this gitmoxi does not answer to that host name; add it to allowed_hosts in the configuration if it is yours",
        );
    }
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if let Some(origin) = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if origin == "null" || !allowed.allows(origin_host) {
                return super::reply::error(StatusCode::FORBIDDEN, "requests from another site's page are refused (Origin)");
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_configured_names_only() {
        let hosts = AllowedHosts::new(&["gitmoxi.example.com".into()], false);
        for ok in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080", "::1", "gitmoxi.example.com", "GitMoxi.Example.com:443"] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "", "gitmoxi.example.com.evil"] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        assert!(AllowedHosts::new(&[], true).allows("anything"));
    }
}
