//! The page's routes (issue 24: the router of `/ui`, above the pages it routes to): the pages,
//! sign-in and sign-out, the buttons' commands, and the static assets.

use super::super::state::HttpState;
use super::session::{self, Session};
use super::{live, pages, render, secure, session_cookie, session_of, signature_of, url_encode};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;

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
            // and on every other replica (high availability): the table forgets it once it expired
            if let Some(ha) = state.controller.ha() {
                if let Err(e) = ha.share_until(super::SHARED_SESSIONS, signature, &expires_ms.to_string(), expires_ms / 1000 + 60).await {
                    tracing::warn!(error = %e, "the sign-out was not shared with the other replicas: it holds on this one");
                }
            }
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
        return super::super::reply::error(StatusCode::UNAUTHORIZED, "signed out: sign in again at /ui/login");
    };
    let body = match axum::body::to_bytes(request.into_body(), 16 * 1024).await {
        Ok(b) => b,
        Err(_) => return super::super::reply::error(StatusCode::PAYLOAD_TOO_LARGE, "a page command is at most 16 KiB"),
    };
    let cmd: PageCommand = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return super::super::reply::error(StatusCode::BAD_REQUEST, format!("the command is not valid: {e}")),
    };
    let req = super::super::commands::CommandRequest {
        command: cmd.command,
        app: cmd.app,
        repo: cmd.repo,
        branch: cmd.branch,
        by: Some(session.name().to_string()),
        via: Some("page".into()),
        to: None,
    };
    let response = super::super::commands::run(&state, &req, session.token_name()).await.unwrap_or_else(|refusal| *refusal);
    state.ui.live.nudge();
    response
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
}
