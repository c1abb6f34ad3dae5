//! The web page (SPEC §6.2, issue 16): server-rendered HTML from templates embedded in the
//! binary, a little JavaScript for live updates and the buttons, nothing from a CDN.
//!
//! - Sign-in: the page wants the API token once (`/ui/login`); the answer is a session cookie
//!   (HttpOnly, SameSite=Strict) signed with the token, so rotating the token signs everyone out.
//!   The API keeps wanting the bearer header; the cookie opens only `/ui/…`.
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
use std::sync::Arc;

pub use live::LiveFeed;
pub use session::{Session, SESSION_COOKIE};

/// The page's shared parts: its templates and the change feed.
pub struct Ui {
    templates: minijinja::Environment<'static>,
    pub live: LiveFeed,
}

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
        Ui { templates, live: LiveFeed::default() }
    }
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
/// has no valid session cookie.
pub(crate) fn session_of(state: &HttpState, headers: &HeaderMap) -> Option<Session> {
    if !state.access.required() {
        return Some(Session::open_server());
    }
    session::from_cookie(headers, &state.access, state.controller.clock.now_ms())
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

/// Where to go after signing in: a page of this server, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains("\\") && !n.contains("://") => n.to_string(),
        _ => "/ui/apps".to_string(),
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
        "error": q.error,
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
    let Some(token_name) = state.access.who(token).map(str::to_string) else {
        tracing::warn!("a sign-in to the web page with a wrong token");
        // a guesser waits: at most a few guesses a second per connection
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let error = url_encode("That is not a token of this server.");
        return Redirect::to(&format!("/ui/login?next={}&error={error}", url_encode(&next))).into_response();
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
        for bad in ["https://evil.example/ui/", "//evil.example/ui/", "/api/v2/apps", "/ui/\\evil", "javascript:alert(1)"] {
            assert_eq!(safe_next(Some(bad)), "/ui/apps", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/apps");
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
