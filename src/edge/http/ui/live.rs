//! Live updates of the web page: one watcher per server compares, each second while a page is
//! open, a digest of what the pages show (apps, in-flight deployments, heads, fetches); when it
//! moves, every open page's event stream (`GET /ui/events`, server-sent events) says `change`
//! and the page fetches its live part again. With no page open, nothing is computed.
//!
//! Each stream holds a connection for up to [`STREAM_FOR`], so their number is capped (issue 27,
//! item 5): [`STREAMS_PER_PEER`] per client address and [`STREAMS_IN_ALL`] in all (a quarter of
//! the server's connections when that is less); beyond, 429 with the reason (the page's script
//! tries again after 2 s). Streams alone can then never fill the server.

use super::super::slots::Refused;
use super::super::state::HttpState;
use super::LiveFeed;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the watcher looks.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// A stream ends after this long (below the server's per-connection limit); the browser
/// reconnects at once, as server-sent events do.
const STREAM_FOR: Duration = Duration::from_secs(90);
/// The watcher stops after this long with no page open.
const IDLE_STOP: Duration = Duration::from_secs(30);

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
pub async fn events(
    State(state): State<HttpState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if super::session_of(&state, &headers).is_none() {
        return super::super::reply::error(StatusCode::UNAUTHORIZED, "signed out: sign in again at /ui/login");
    }
    // requests that did not come through the server loop (tests of the router alone) share one address
    let address = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0 .0.ip());
    // held by the stream: given back when the stream ends or the client goes
    let slot = match state.ui.live.streams.take(address) {
        Ok(slot) => slot,
        Err(refused) => return too_many_streams(refused),
    };
    let receiver = subscribe(&state.ui.live, &state);
    let deadline = tokio::time::Instant::now() + STREAM_FOR;
    let first = Event::default().event("hello").retry(Duration::from_millis(1000)).data("connected");
    let closed = state.ui.live.closed.clone();
    let stream = futures_util::stream::unfold((Some(first), receiver, slot), move |(first, mut receiver, slot)| {
        let closed = closed.clone();
        async move {
            if let Some(hello) = first {
                return Some((Ok::<Event, std::convert::Infallible>(hello), (None, receiver, slot)));
            }
            let changed = tokio::select! {
                _ = closed.cancelled() => return None,
                changed = tokio::time::timeout_at(deadline, receiver.changed()) => changed,
            };
            match changed {
                Ok(Ok(())) => {
                    let generation = *receiver.borrow_and_update();
                    Some((Ok(Event::default().event("change").data(generation.to_string())), (None, receiver, slot)))
                }
                // the stream's time is up, or the feed is gone
                Ok(Err(_)) | Err(_) => None,
            }
        }
    });
    let mut response = Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 429: the client's address, or the server, holds all the event streams it may.
fn too_many_streams(refused: Refused) -> Response {
    let message = match refused {
        Refused::Peer { limit } => format!(
            "too many live event streams from your address: at most {limit} at once (one per open gitmoxi page); close some pages and this one connects again"
        ),
        Refused::Total { limit } => {
            format!("the server has its maximum of {limit} live event streams open: this page connects again when one closes")
        }
    };
    let mut response = super::super::reply::error(StatusCode::TOO_MANY_REQUESTS, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A receiver of the feed's changes; the first one starts the watcher.
fn subscribe(feed: &LiveFeed, state: &HttpState) -> watch::Receiver<u64> {
    let receiver = feed.generation.subscribe();
    if !feed.watching.swap(true, Ordering::SeqCst) {
        tokio::spawn(watch_for_changes(state.clone(), feed.generation.clone(), feed.watching.clone()));
    }
    receiver
}

#[cfg(test)]
mod tests {
    use super::super::super::slots::Slots;
    use super::super::{streams_in_all, STREAMS_IN_ALL, STREAMS_PER_PEER};
    use super::*;

    #[test]
    fn streams_are_capped_per_address_and_in_all() {
        let feed = LiveFeed { streams: Slots::new(STREAMS_PER_PEER, STREAMS_IN_ALL), ..LiveFeed::default() };
        let mut held = Vec::new();
        for i in 0..STREAMS_IN_ALL {
            let address = IpAddr::V4(Ipv4Addr::new(10, 0, (i / STREAMS_PER_PEER) as u8, 1));
            match feed.streams.take(address) {
                Ok(slot) => held.push(slot),
                Err(refused) => panic!("stream {i} from {address} refused: {refused:?}"),
            }
        }
        let one = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(feed.streams.held_by(one), STREAMS_PER_PEER);
        assert_eq!(feed.streams.take(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))).err(), Some(Refused::Total { limit: STREAMS_IN_ALL }));
        // one stream ends: there is room for one more, once
        held.swap_remove(0);
        assert_eq!(feed.streams.held(), STREAMS_IN_ALL - 1);
        let again = feed.streams.take(one);
        assert!(again.is_ok());
        assert_eq!(feed.streams.take(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))).err(), Some(Refused::Total { limit: STREAMS_IN_ALL }));
        drop((held, again));
        assert_eq!((feed.streams.held(), feed.streams.peers()), (0, 0));
    }

    #[test]
    fn streams_never_take_more_than_a_quarter_of_the_connections() {
        let all = streams_in_all();
        assert!((STREAMS_PER_PEER..=STREAMS_IN_ALL).contains(&all), "{all}");
        assert!(all <= (crate::edge::http::serve::connection_cap() / 4).max(STREAMS_PER_PEER), "{all}");
    }

    #[test]
    fn a_refused_stream_says_why_with_429() {
        for refused in [Refused::Peer { limit: STREAMS_PER_PEER }, Refused::Total { limit: STREAMS_IN_ALL }] {
            let response = too_many_streams(refused);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(response.headers().contains_key(header::RETRY_AFTER));
        }
    }
}
