//! The web page (SPEC §6.2, issue 16): server-rendered HTML from templates embedded in the
//! binary, a little JavaScript for live updates and the buttons, nothing from a CDN.
//!
//! - Sign-in: the page wants the API token once (`/ui/login`); the answer is a session cookie
//!   (HttpOnly, SameSite=Strict) signed with the token, so rotating the token signs everyone out.
//!   The API keeps wanting the bearer header; the cookie opens only `/ui/…`. A wrong token
//!   waits half a second ([`crate::http::access::WRONG_TOKEN_DELAY`]). Signing out revokes the
//!   session: its signature is kept (in the store, until it would have expired), so a copy of the
//!   cookie no longer opens anything either.
//! - The sign-in page shows only its own messages (`error=` is a code, never text to echo) and
//!   goes back only to a page of this server (`next=`).
//! - Every state-changing request (`POST /ui/…`) must come from the page's own origin.
//! - Live: `/ui/events` (server-sent events) says "changed" when what the pages show changed; the
//!   page then fetches its own live part again (`X-Gitmoxi-Fragment`), without reloading.
//! - Nothing secret reaches the page: views carry no tokens, repository URLs are redacted.

mod live;
mod pages;
mod session;

use super::HttpState;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use live::LiveFeed;
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
        for (name, source) in pages::TEMPLATES {
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
        let mut slot = crate::sync::lock(&self.revoked);
        Self::revoked_in(&mut slot, store).contains_key(signature)
    }

    /// Signs a session out for good: its signature is remembered until `expires_ms`.
    fn revoke(&self, store: &gitmoxi_state::Store, signature: &str, expires_ms: u64, now_ms: u64) {
        let mut slot = crate::sync::lock(&self.revoked);
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
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
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
fn signature_of(cookie: &str) -> Option<(&str, u64)> {
    let expires = cookie.split('.').nth(1)?.parse().ok()?;
    let signature = cookie.rsplit('.').next().filter(|s| !s.is_empty())?;
    Some((signature, expires))
}

/// The header the page's script sends to get only the part of a page that changes.
pub const FRAGMENT_HEADER: &str = "x-gitmoxi-fragment";

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/apps") }))
        .route("/ui", get(|| async { Redirect::to("/ui/apps") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/apps", get(pages::apps))
        .route("/ui/app", get(pages::app))
        .route("/ui/deployments", get(pages::deployments))
        .route("/ui/deployments/{id}", get(pages::deployment))
        .route("/ui/repos", get(pages::repos))
        .route("/ui/events", get(live::events))
        .route("/ui/command", post(command))
        .route("/ui/static/app.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("static/app.js")) }))
        .route("/ui/static/app.css", get(|| async { asset("text/css; charset=utf-8", include_str!("static/app.css")) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Headers every page carries: scripts and styles only from this server, no framing, no
/// referrer, no caching of what an operator saw.
fn secure(mut response: Response) -> Response {
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

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where to go after signing in: a page of this server (`/ui` or under it), never another site,
/// and only visible ASCII (it becomes a `Location` header: CR, LF or another control character
/// would make the answer fail). Anything else goes to the apps page.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?"))
                && n.len() <= 2048
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !n.contains('\\')
                && !n.contains("://") =>
        {
            n.to_string()
        }
        _ => "/ui/apps".to_string(),
    }
}

/// The code of a wrong token in the sign-in page's `error=`.
const WRONG_TOKEN: &str = "wrong_token";

/// The message the sign-in page shows for the code of its `error=`; an unknown code shows
/// nothing (the page never repeats text from a link).
fn login_error(code: Option<&str>) -> Option<&'static str> {
    match code? {
        WRONG_TOKEN => Some("That is not a token of this server."),
        _ => None,
    }
}

/// The refusal of a state-changing request that does not come from this server's own page
/// (its `Origin` must be the origin of the `Host` it was sent to, or the configured public URL).
fn foreign_origin(state: &HttpState, headers: &HeaderMap) -> Option<Response> {
    let refuse = |why: String| Some(secure((StatusCode::FORBIDDEN, why).into_response()));
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return refuse("refused: the request carries no Origin header (state changes are accepted only from gitmoxi's own page)".into());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let own = [format!("http://{host}"), format!("https://{host}")];
    let public = state.public_url.as_deref().map(|u| u.trim_end_matches('/').to_string());
    if own.iter().any(|o| o == origin) || public.as_deref() == Some(origin) {
        None
    } else {
        refuse(format!("refused: a request from origin {origin} may not change anything here (only this server's own page may)"))
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

async fn login_page(State(state): State<HttpState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let context = json!({
        "title": "Sign in",
        "next": safe_next(q.next.as_deref()),
        "error": login_error(q.error.as_deref()),
        "token_required": state.access.required(),
        "signed_in": session_of(&state, &headers).is_some() && state.access.required(),
    });
    render(&state, &headers, "login.html", context)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    next: String,
}

async fn login(State(state): State<HttpState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if let Some(refused) = foreign_origin(&state, &headers) {
        return refused;
    }
    let next = safe_next(Some(&form.next));
    if !state.access.required() {
        return Redirect::to(&next).into_response();
    }
    let token = form.token.trim();
    // a guesser waits: at most a few guesses a second per connection
    let Some(token_name) = state.access.who_or_wait(token).await.map(str::to_string) else {
        tracing::warn!("a sign-in to the web page with a wrong token");
        return Redirect::to(&format!("/ui/login?next={}&error={WRONG_TOKEN}", url_encode(&next))).into_response();
    };
    let session = Session::new(&token_name, &form.name, state.controller.clock.now_ms());
    let mut response = Redirect::to(&next).into_response();
    // behind https (public_url), the browser sends the cookie over https only
    let https = state.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    let cookie = if https { format!("{}; Secure", session.cookie(token)) } else { session.cookie(token) };
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    secure(response)
}

async fn logout(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(refused) = foreign_origin(&state, &headers) {
        return refused;
    }
    // the session ends here and everywhere its cookie was copied to
    if state.access.required() && session_of(&state, &headers).is_some() {
        if let Some((signature, expires_ms)) = session_cookie(&headers).and_then(signature_of) {
            state.ui.revoke(&state.controller.store, signature, expires_ms, state.controller.clock.now_ms());
        }
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(session::CLEAR_COOKIE));
    secure(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageCommand {
    command: String,
    app: Option<String>,
    repo: Option<String>,
    branch: Option<String>,
}

/// A button of the page: the same commands as `POST /api/v2/commands`, answered as
/// "{message}" for the page to show; approvals are recorded as the signed-in name, via the page.
async fn command(State(state): State<HttpState>, headers: HeaderMap, request: Request) -> Response {
    if let Some(refused) = foreign_origin(&state, &headers) {
        return refused;
    }
    let Some(session) = session_of(&state, &headers) else {
        return super::error(StatusCode::UNAUTHORIZED, "signed out: sign in again at /ui/login");
    };
    let body = match axum::body::to_bytes(request.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return super::error(StatusCode::PAYLOAD_TOO_LARGE, "a page command is at most 16 KiB"),
    };
    let cmd: PageCommand = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return super::error(StatusCode::BAD_REQUEST, format!("the command is not valid: {e}")),
    };
    let req = super::commands::CommandRequest {
        command: cmd.command,
        app: cmd.app,
        repo: cmd.repo,
        branch: cmd.branch,
        by: Some(session.name().to_string()),
        via: Some("page".into()),
    };
    let response = super::commands::run(&state, &req, session.token_name()).await.unwrap_or_else(|refusal| *refusal);
    state.ui.live.nudge();
    response
}

/// The page state shared by the router and the tests.
pub fn shared() -> Arc<Ui> {
    Arc::new(Ui::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_goes_back_only_to_pages_of_this_server() {
        assert_eq!(safe_next(Some("/ui/app?app=prod/web")), "/ui/app?app=prod/web");
        assert_eq!(safe_next(Some("/ui")), "/ui");
        assert_eq!(safe_next(Some("/ui/apps%3Fq%3D%0D%0A")), "/ui/apps%3Fq%3D%0D%0A", "encoded, it is only text");
        let long = format!("/ui/{}", "a".repeat(3000));
        for bad in [
            "https://evil.example/ui/",
            "//evil.example/ui/",
            "/api/v2/apps",
            "/ui/\\evil",
            "javascript:alert(1)",
            "/ui/apps\r\nSet-Cookie: x=1",
            "/ui/apps\n",
            "/ui/\0",
            "/ui/a b",
            "/ui/\u{7f}",
            "/ui/é",
            "/uix",
            "/ui/x?u=https://evil.example",
            "",
            long.as_str(),
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/apps", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/ui/apps");
        // every answer is a valid Location header: no 500 from Redirect::to
        for next in ["/ui/apps\r\n", "/ui/ok"] {
            assert!(HeaderValue::from_str(&safe_next(Some(next))).is_ok(), "{next:?}");
        }
    }

    #[test]
    fn the_sign_in_page_shows_only_its_own_messages() {
        assert_eq!(login_error(Some(WRONG_TOKEN)), Some("That is not a token of this server."));
        for other in ["<b>Your token expired: call +1 555 0100</b>", "That is not a token of this server.", ""] {
            assert_eq!(login_error(Some(other)), None, "{other}");
        }
        assert_eq!(login_error(None), None);
    }

    #[test]
    fn a_signed_out_session_is_remembered_until_it_would_have_expired() {
        let cookie = Session::new(crate::http::access::MAIN_TOKEN, "Ana", 1_000).cookie("t");
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
        for (name, _) in pages::TEMPLATES {
            assert!(ui.templates.get_template(name).is_ok(), "{name} does not parse");
        }
    }
}
