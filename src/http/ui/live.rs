//! Live updates of the web page: one watcher per server compares, each second while a page is
//! open, a digest of what the pages show (apps, in-flight deployments, heads, fetches); when it
//! moves, every open page's event stream (`GET /ui/events`, server-sent events) says `change`
//! and the page fetches its live part again. With no page open, nothing is computed.

use super::super::HttpState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the watcher looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// A stream ends after this long (below the server's per-connection limit); the browser
/// reconnects at once, as server-sent events do.
const STREAM_FOR: Duration = Duration::from_secs(90);
/// The watcher stops after this long with no page open.
const IDLE_STOP: Duration = Duration::from_secs(30);

/// The change counter the event streams follow.
pub struct LiveFeed {
    generation: watch::Sender<u64>,
    watching: Arc<AtomicBool>,
    /// Cancelled when the server stops: every stream ends, so open pages see the server go.
    closed: CancellationToken,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed { generation: watch::Sender::new(0), watching: Arc::new(AtomicBool::new(false)), closed: CancellationToken::new() }
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

    fn subscribe(&self, state: &HttpState) -> watch::Receiver<u64> {
        let receiver = self.generation.subscribe();
        if !self.watching.swap(true, Ordering::SeqCst) {
            tokio::spawn(watch_for_changes(state.clone(), self.generation.clone(), self.watching.clone()));
        }
        receiver
    }
}

/// The digest of everything the pages show.
fn digest(state: &HttpState) -> u64 {
    let mut h = DefaultHasher::new();
    match super::super::views::all_apps(&state.controller) {
        Ok(apps) => serde_json::to_string(&apps).unwrap_or_default().hash(&mut h),
        Err(e) => e.to_string().hash(&mut h),
    }
    if let Ok(records) = state.controller.store.records() {
        for r in records.iter().filter(|r| r.in_flight()) {
            (&r.id, r.updated_at_ms, r.timeline.len()).hash(&mut h);
        }
    }
    for head in state.controller.heads() {
        (&head.repo, &head.branch, &head.commit).hash(&mut h);
    }
    for (key, fetch) in state.controller.fetch_statuses() {
        (key, fetch.last_attempt_ms, &fetch.error).hash(&mut h);
    }
    h.finish()
}

async fn watch_for_changes(state: HttpState, generation: watch::Sender<u64>, watching: Arc<AtomicBool>) {
    let mut last: Option<u64> = None;
    let mut idle = Duration::ZERO;
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        if generation.receiver_count() == 0 {
            idle += LOOK_EVERY;
            if idle >= IDLE_STOP {
                watching.store(false, Ordering::SeqCst);
                return;
            }
            continue;
        }
        idle = Duration::ZERO;
        let looked = state.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || digest(&looked)).await else { continue };
        if last.is_some_and(|l| l != now) {
            generation.send_modify(|g| *g += 1);
        }
        last = Some(now);
    }
}

/// `GET /ui/events`: `change` whenever what the pages show changed.
pub async fn events(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if super::session_of(&state, &headers).is_none() {
        return super::super::error(StatusCode::UNAUTHORIZED, "signed out: sign in again at /ui/login");
    }
    let receiver = state.ui.live.subscribe(&state);
    let deadline = tokio::time::Instant::now() + STREAM_FOR;
    let first = Event::default().event("hello").retry(Duration::from_millis(1000)).data("connected");
    let closed = state.ui.live.closed.clone();
    let stream = futures_util::stream::unfold((Some(first), receiver), move |(first, mut receiver)| {
        let closed = closed.clone();
        async move {
            if let Some(hello) = first {
                return Some((Ok::<Event, std::convert::Infallible>(hello), (None, receiver)));
            }
            let changed = tokio::select! {
                _ = closed.cancelled() => return None,
                changed = tokio::time::timeout_at(deadline, receiver.changed()) => changed,
            };
            match changed {
                Ok(Ok(())) => {
                    let generation = *receiver.borrow_and_update();
                    Some((Ok(Event::default().event("change").data(generation.to_string())), (None, receiver)))
                }
                // the stream's time is up, or the feed is gone
                Ok(Err(_)) | Err(_) => None,
            }
        }
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}
