//! The web page's session: a cookie `v1.<expires ms>.<token name>.<name, base64url>.<HMAC-SHA256>`
//! signed with the token the person signed in with. Nothing is kept on the server (a restart
//! keeps everyone signed in, a new token signs its holders out); the cookie holds no secret, only
//! the signature of one.

use crate::edge::http::access::{Access, MAIN_TOKEN};
use axum::http::{header, HeaderMap};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SESSION_COOKIE: &str = "gitmoxi_session";
/// How long a sign-in lasts.
pub const SESSION_MS: u64 = 12 * 3600 * 1000;
/// The longest name kept (it is shown with approvals).
const MAX_NAME: usize = 60;
/// The `Set-Cookie` of signing out.
pub const CLEAR_COOKIE: &str = "gitmoxi_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";

/// Who is signed in, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The name of the token signed in with ([`MAIN_TOKEN`] or one of `[api_tokens]`).
    token: String,
    /// Who answers gates from this page.
    name: String,
    expires_ms: u64,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn signature(token: &str, expires_ms: u64, token_name: &str, name_b64: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).ok()?;
    mac.update(b"gitmoxi web page session v1\n");
    mac.update(expires_ms.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(token_name.as_bytes());
    mac.update(b"\n");
    mac.update(name_b64.as_bytes());
    Some(mac)
}

impl Session {
    /// A sign-in now with the token named `token`: a named token answers as its name; the main
    /// token as the `name` typed in the form ("the web page" when empty).
    pub fn new(token: &str, name: &str, now_ms: u64) -> Session {
        let typed: String = name.chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
        let shown = if token != MAIN_TOKEN { token } else { typed.trim() };
        let name = if shown.is_empty() { "the web page".to_string() } else { format!("{shown} (web page)") };
        Session { token: token.to_string(), name, expires_ms: now_ms + SESSION_MS }
    }

    /// The session of a server that wants no token: everyone is "the web page".
    pub fn open_server() -> Session {
        Session { token: String::new(), name: "the web page".into(), expires_ms: u64::MAX }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the token signed in with (`None` on a server that wants none).
    pub fn token_name(&self) -> Option<&str> {
        Some(self.token.as_str()).filter(|t| !t.is_empty())
    }

    /// The `Set-Cookie` value, signed with `token` (the value of the token named in the session).
    pub fn cookie(&self, token: &str) -> String {
        let name = b64().encode(self.name.as_bytes());
        let sig = signature(token, self.expires_ms, &self.token, &name).map(|m| hex::encode(m.finalize().into_bytes())).unwrap_or_default();
        let max_age = SESSION_MS / 1000;
        format!("{SESSION_COOKIE}=v1.{}.{}.{name}.{sig}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}", self.expires_ms, self.token)
    }
}

/// The valid, unexpired session of a request's cookie, signed with a token `access` accepts.
pub fn from_cookie(headers: &HeaderMap, access: &Access, now_ms: u64) -> Option<Session> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().strip_prefix(SESSION_COOKIE).and_then(|rest| rest.strip_prefix('=')))
        .next()?;
    let parts: Vec<&str> = value.split('.').collect();
    let ["v1", expires, token_name, name, sig] = parts.as_slice() else { return None };
    let expires_ms: u64 = expires.parse().ok()?;
    let given = hex::decode(sig).ok()?;
    let token = access.token_of(token_name)?;
    signature(token, expires_ms, token_name, name)?.verify_slice(&given).ok()?;
    if expires_ms <= now_ms {
        return None;
    }
    let name = String::from_utf8(b64().decode(name).ok()?).ok()?;
    Some(Session { token: token_name.to_string(), name, expires_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("theme=dark; {pair}")).expect("header"));
        h
    }

    fn access(main: &str) -> Access {
        Access::new(Some(main.into()), [("bob".to_string(), "bob-secret".to_string())], Vec::new())
    }

    #[test]
    fn a_signed_session_opens_until_it_expires_and_only_with_its_token() {
        let s = Session::new(MAIN_TOKEN, "Ana", 1_000);
        let cookie = s.cookie("token-1");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(!cookie.contains("token-1"), "the cookie holds no token");
        let headers = with_cookie(&cookie);
        assert_eq!(from_cookie(&headers, &access("token-1"), 2_000).map(|s| s.name), Some("Ana (web page)".to_string()));
        assert_eq!(from_cookie(&headers, &access("token-2"), 2_000), None, "a rotated token signs out");
        assert_eq!(from_cookie(&headers, &access("token-1"), 1_000 + SESSION_MS), None, "expired");
    }

    #[test]
    fn a_named_token_signs_in_as_its_name_whatever_is_typed() {
        let s = Session::new("bob", "Alice", 1_000);
        let back = from_cookie(&with_cookie(&s.cookie("bob-secret")), &access("t"), 2_000).expect("session");
        assert_eq!(back.name(), "bob (web page)");
        assert_eq!(back.token_name(), Some("bob"));
        let as_main = s.cookie("bob-secret").replacen(".bob.", &format!(".{MAIN_TOKEN}."), 1);
        assert_eq!(from_cookie(&with_cookie(&as_main), &access("t"), 2_000), None, "the token name is signed too");
    }

    #[test]
    fn a_changed_name_or_expiry_breaks_the_signature() {
        let cookie = Session::new(MAIN_TOKEN, "Ana", 1_000).cookie("t");
        let forged_name = cookie.replacen(&b64().encode("Ana (web page)"), &b64().encode("Root (web page)"), 1);
        assert_eq!(from_cookie(&with_cookie(&forged_name), &access("t"), 2_000), None);
        let forged_expiry = cookie.replacen(&(1_000 + SESSION_MS).to_string(), &u64::MAX.to_string(), 1);
        assert_eq!(from_cookie(&with_cookie(&forged_expiry), &access("t"), 2_000), None);
        assert_eq!(from_cookie(&with_cookie("gitmoxi_session=v1.x.y"), &access("t"), 2_000), None);
    }
}
