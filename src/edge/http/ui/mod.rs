//! The web page (SPEC §6.2, issue 16): server-rendered HTML from templates embedded in the
//! binary, a little JavaScript for live updates and the buttons, nothing from a CDN.
//!
//! - Sign-in: the page wants the API token once (`/ui/login`); the answer is a session cookie
//!   (HttpOnly, SameSite=Strict) signed with the token, so rotating the token signs everyone out.
//!   The API keeps wanting the bearer header; the cookie opens only `/ui/…`. A wrong token
//!   waits half a second ([`crate::edge::http::access::WRONG_TOKEN_DELAY`]). Signing out revokes the
//!   session: its signature is kept (in the store, until it would have expired), so a copy of the
//!   cookie no longer opens anything either.
//! - The sign-in page shows only its own messages (`error=` is a code, never text to echo) and
//!   goes back only to a page of this server (`next=`).
//! - Every state-changing request (`POST /ui/…`) must come from the page's own origin.
//! - Live: `/ui/events` (server-sent events) says "changed" when what the pages show changed; the
//!   page then fetches its own live part again (`X-Gitmoxi-Fragment`), without reloading.
//! - Nothing secret reaches the page: views carry no tokens, repository URLs are redacted.

mod chart;
mod live;
mod pages;
pub mod routes;
mod session;

use super::slots::Slots;
use super::state::HttpState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use session::{Session, SESSION_COOKIE};

/// The page's shared parts: its templates, the change feed and the signed-out sessions.
pub struct Ui {
    templates: minijinja::Environment<'static>,
    pub live: LiveFeed,
    /// Sessions signed out before they expire: their cookie's signature → its expiry (ms). Read
    /// from the store on first use, written back at every sign-out, pruned as they expire.
    revoked: Mutex<Option<HashMap<String, u64>>>,
}

/// At most this many signed-out sessions are remembered (the soonest to expire go first).
const MAX_REVOKED: usize = 10_000;

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}

impl Ui {
    pub fn new() -> Ui {
        let mut templates = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            // the templates are part of the binary: a broken one fails the tests that render it
            if let Err(e) = templates.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a page template does not parse");
            }
        }
        Ui { templates, live: LiveFeed::default(), revoked: Mutex::new(None) }
    }

    /// The signed-out sessions, read from the store the first time.
    fn revoked_in<'a>(slot: &'a mut Option<HashMap<String, u64>>, store: &gitmoxi_state::Store) -> &'a mut HashMap<String, u64> {
        slot.get_or_insert_with(|| match store.table::<u64>(gitmoxi_state::TableName::RevokedSessions).and_then(|t| t.entries()) {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "the signed-out sessions could not be read; starting with none");
                HashMap::new()
            }
        })
    }

    /// Whether the session whose cookie ends with `signature` was signed out.
    fn is_revoked(&self, store: &gitmoxi_state::Store, signature: &str) -> bool {
        let mut slot = crate::base::sync::lock(&self.revoked);
        Self::revoked_in(&mut slot, store).contains_key(signature)
    }

    /// Signs a session out for good: its signature is remembered until `expires_ms`.
    fn revoke(&self, store: &gitmoxi_state::Store, signature: &str, expires_ms: u64, now_ms: u64) {
        let mut slot = crate::base::sync::lock(&self.revoked);
        let revoked = Self::revoked_in(&mut slot, store);
        remember_revoked(revoked, signature, expires_ms, now_ms);
        // the table holds what the map holds: this signature, less those that expired or fell out
        let stored = store.table::<u64>(gitmoxi_state::TableName::RevokedSessions).and_then(|table| {
            for (old, _) in table.entries()? {
                if !revoked.contains_key(&old) {
                    table.remove(&old)?;
                }
            }
            table.put(signature, &expires_ms)
        });
        if let Err(e) = stored {
            tracing::warn!(error = %e, "the sign-out was not stored: it lasts until this server restarts");
        }
    }
}

/// Adds a signed-out session, forgets those that expired and keeps at most [`MAX_REVOKED`].
fn remember_revoked(revoked: &mut HashMap<String, u64>, signature: &str, expires_ms: u64, now_ms: u64) {
    revoked.retain(|_, expires| *expires > now_ms);
    revoked.insert(signature.to_string(), expires_ms);
    while revoked.len() > MAX_REVOKED {
        let Some(first) = revoked.iter().min_by_key(|(_, e)| **e).map(|(s, _)| s.clone()) else { break };
        revoked.remove(&first);
    }
}

/// The value of a request's session cookie (the first one, as [`session::from_cookie`] reads it).
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().strip_prefix(SESSION_COOKIE).and_then(|rest| rest.strip_prefix('=')))
        .next()
}

/// The signature a session cookie ends with and the expiry it names
/// (`v1.<expires ms>.<token name>.<name>.<signature>`).
pub(super) fn signature_of(cookie: &str) -> Option<(&str, u64)> {
    let expires = cookie.split('.').nth(1)?.parse().ok()?;
    let signature = cookie.rsplit('.').next().filter(|s| !s.is_empty())?;
    Some((signature, expires))
}

/// The header the page's script sends to get only the part of a page that changes.
pub const FRAGMENT_HEADER: &str = "x-gitmoxi-fragment";

/// Headers every page carries: scripts and styles only from this server, no framing, no
/// referrer, no caching of what an operator saw.
pub(super) fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Renders a page (or, when the page's script asks, only its live part).
pub(crate) fn render(state: &HttpState, headers: &HeaderMap, template: &str, context: serde_json::Value) -> Response {
    let fragment = headers.contains_key(FRAGMENT_HEADER);
    let rendered = state.ui.templates.get_template(template).and_then(|t| {
        if fragment {
            t.render_captured(&context)?.with_state_mut(|state| state.render_block("live"))
        } else {
            t.render(&context)
        }
    });
    match rendered {
        Ok(html) => secure(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()),
        Err(e) => {
            tracing::error!(template, error = %e, "a page did not render");
            secure((StatusCode::INTERNAL_SERVER_ERROR, format!("the page {template} did not render: {e}")).into_response())
        }
    }
}

/// The signed-in session of a request; `None` when the server wants a token and the request
/// has no valid session cookie, or its session was signed out.
pub(crate) fn session_of(state: &HttpState, headers: &HeaderMap) -> Option<Session> {
    if !state.access.required() {
        return Some(Session::open_server());
    }
    let session = session::from_cookie(headers, &state.access, state.controller.clock.now_ms())?;
    let (signature, _) = session_cookie(headers).and_then(signature_of)?;
    (!state.ui.is_revoked(&state.controller.store, signature)).then_some(session)
}

/// The answer to a page request without a session: to the sign-in form, back here afterwards.
pub(crate) fn to_login(request_path: &str) -> Response {
    let next: String = url_encode(request_path);
    Redirect::to(&format!("/ui/login?next={next}")).into_response()
}

pub(super) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The templates, by name.
pub const TEMPLATES: [(&str, &str); 13] = [
    ("base.html", include_str!("templates/base.html")),
    ("diff.html", include_str!("templates/diff.html")),
    ("traffic.html", include_str!("templates/traffic.html")),
    ("timeline.html", include_str!("templates/timeline.html")),
    ("diagnosis.html", include_str!("templates/diagnosis.html")),
    ("phases.html", include_str!("templates/phases.html")),
    ("analysis.html", include_str!("templates/analysis.html")),
    ("login.html", include_str!("templates/login.html")),
    ("apps.html", include_str!("templates/apps.html")),
    ("app.html", include_str!("templates/app.html")),
    ("deployments.html", include_str!("templates/deployments.html")),
    ("deployment.html", include_str!("templates/deployment.html")),
    ("repos.html", include_str!("templates/repos.html")),
];

/// Open event streams one client address may hold (one per open page).
pub const STREAMS_PER_PEER: usize = 8;
/// Open event streams all clients together may hold (at most a quarter of the connections).
pub const STREAMS_IN_ALL: usize = 256;

/// The streams all clients together may hold on this server.
pub(super) fn streams_in_all() -> usize {
    STREAMS_IN_ALL.min(super::serve::connection_cap() / 4).max(STREAMS_PER_PEER)
}

/// The change counter the event streams follow.
pub struct LiveFeed {
    pub(super) generation: watch::Sender<u64>,
    pub(super) watching: Arc<AtomicBool>,
    /// Cancelled when the server stops: every stream ends, so open pages see the server go.
    pub(super) closed: CancellationToken,
    /// The open streams, per client address and in all.
    pub(super) streams: Slots,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed {
            generation: watch::Sender::new(0),
            watching: Arc::new(AtomicBool::new(false)),
            closed: CancellationToken::new(),
            streams: Slots::new(STREAMS_PER_PEER, streams_in_all()),
        }
    }
}

impl LiveFeed {
    /// Ends every event stream (the server stops).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Open pages look again now (after a button of the page was pressed).
    pub fn nudge(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The kind of shared HA item a signed-out session is.
pub const SHARED_SESSIONS: &str = "sessions";

/// With high availability: signs out here the sessions signed out on other replicas (a copied
/// cookie opens no replica's page), every `every`, until `shutdown` (issue 27, with issue 24's
/// shared items).
pub async fn follow_signouts(
    ui: Arc<Ui>,
    controller: Arc<crate::runtime::controller::Controller>,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(ha) = controller.ha().cloned() else { return };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let shared = match ha.shared(SHARED_SESSIONS).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the sessions signed out on other replicas");
                continue;
            }
        };
        let now = controller.clock.now_ms();
        for (signature, expires) in shared {
            let Ok(expires_ms) = expires.parse::<u64>() else { continue };
            if expires_ms > now && !ui.is_revoked(&controller.store, &signature) {
                ui.revoke(&controller.store, &signature, expires_ms, now);
            }
        }
    }
}

/// The page state shared by the router and the tests.
pub fn shared() -> Arc<Ui> {
    Arc::new(Ui::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signed_out_session_is_remembered_until_it_would_have_expired() {
        let cookie = Session::new(crate::edge::http::access::MAIN_TOKEN, "Ana", 1_000).cookie("t");
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(cookie.split(';').next().unwrap()).unwrap());
        let (signature, expires) = session_cookie(&headers).and_then(signature_of).expect("a session cookie");
        assert_eq!(expires, 1_000 + session::SESSION_MS);
        assert_eq!(signature.len(), 64, "the HMAC-SHA256 in hex");
        let mut revoked = HashMap::from([("old".to_string(), 500), ("later".to_string(), 9_000)]);
        remember_revoked(&mut revoked, signature, expires, 2_000);
        assert!(revoked.contains_key(signature) && revoked.contains_key("later"));
        assert!(!revoked.contains_key("old"), "expired sessions are forgotten");
        let mut full: HashMap<String, u64> = (0..MAX_REVOKED as u64).map(|i| (format!("s{i}"), 10_000 + i)).collect();
        remember_revoked(&mut full, "new", 50_000, 2_000);
        assert_eq!(full.len(), MAX_REVOKED);
        assert!(full.contains_key("new") && !full.contains_key("s0"), "the soonest to expire goes first");
        assert_eq!(signature_of("v1.x.a.b.sig"), None);
        assert_eq!(signature_of("v1.5.a.b."), None);
    }

    #[test]
    fn every_value_from_git_or_aws_is_escaped() {
        let ui = Ui::new();
        let evil = "<script>alert(1)</script>\"'";
        let app = json!({"app": evil, "repo": evil, "branch": "main", "kind": "ecs", "identity": evil, "status": "Failed",
            "status_label": "Failed", "status_class": "bad", "phase": evil, "traffic": {"blue": 60, "green": 40, "old_name": evil, "new_name": "green"},
            "commit": "abc", "last_outcome": "failed", "outcome_class": "bad", "last_cause": evil, "reason": evil, "link": "/ui/app?app=x"});
        let ctx = json!({"title": evil, "nav": "apps", "user": evil, "token_required": true, "total": 1, "counts": [],
            "apps": [app], "kinds": [evil], "repos": [evil], "filter": {"q": evil}});
        let html = ui.templates.get_template("apps.html").and_then(|t| t.render(&ctx)).expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "{html}");
    }

    #[test]
    fn every_template_parses() {
        let ui = Ui::new();
        for (name, _) in TEMPLATES {
            assert!(ui.templates.get_template(name).is_ok(), "{name} does not parse");
        }
    }
}
