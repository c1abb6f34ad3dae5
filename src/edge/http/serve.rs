//! The HTTP server loop (issues 13 and 27): a header-read timeout, a body-read timeout, one
//! request per connection and a cap on open connections below the file-descriptor limit, so idle
//! or slow clients (a slowloris, slow bodies) can neither hold the server for long nor use up the
//! descriptors the Git fetches and AWS calls need.
//!
//! - Headers must arrive within [`HEADER_READ_TIMEOUT`] of connecting (hyper closes the
//!   connection otherwise).
//! - The whole body must arrive within [`BODY_READ_TIMEOUT`] of the headers, else 408; within
//!   [`CROWDED_BODY_READ_TIMEOUT`] when fewer than an eighth of the connections are free, so a
//!   flood of slow bodies past the cap turns over fast and `/healthz` waits little in the backlog.
//!   The body is read here, before any route sees the request; past [`super::reply::BODY_LIMIT`] reading
//!   stops and the route refuses the body with 413 as it always did.
//! - Event streams hold their connection long; they are capped apart ([`super::slots`]).

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A client has this long to send a request's headers after connecting.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);
/// A client has this long, once its headers arrived, to send the whole body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The same when the server is crowded ([`crowded`]).
pub const CROWDED_BODY_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// A request (headers read) has this long to be answered and written.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Descriptors kept free for the store, Git mirrors, AWS connections and logs.
const RESERVED_DESCRIPTORS: u64 = 256;
/// The cap when the descriptor limit allows more.
const MAX_CONNECTIONS: u64 = 1024;
/// Body memory set aside before the body arrives, whatever length it announces.
const PREALLOCATE: usize = 64 * 1024;

/// How many connections may be open at once: below the process's descriptor limit.
pub fn connection_cap() -> usize {
    let soft = open_files_limit().unwrap_or(1024);
    soft.saturating_sub(RESERVED_DESCRIPTORS).clamp(16, MAX_CONNECTIONS) as usize
}

/// The soft `Max open files` of this process (from /proc; `None` elsewhere).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Whether a server with `free` of `connections` slots free is crowded: fewer than an eighth free.
pub fn crowded(free: usize, connections: usize) -> bool {
    free < (connections / 8).max(1)
}

/// The server loop's limits ([`Limits::default`] is what gitmoxi runs with; tests shrink them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; beyond, new connections wait in the kernel's backlog.
    pub connections: usize,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read: Duration,
    /// See [`BODY_READ_TIMEOUT`].
    pub body_read: Duration,
    /// See [`CROWDED_BODY_READ_TIMEOUT`].
    pub body_read_crowded: Duration,
    /// See [`REQUEST_TIMEOUT`].
    pub request: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: connection_cap(),
            header_read: HEADER_READ_TIMEOUT,
            body_read: BODY_READ_TIMEOUT,
            body_read_crowded: CROWDED_BODY_READ_TIMEOUT,
            request: REQUEST_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, with the default [`Limits`].
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    serve_with(listener, router, shutdown, Limits::default()).await;
}

/// Serves `router` on `listener` until `shutdown`, with these limits.
pub async fn serve_with(listener: TcpListener, router: Router, shutdown: CancellationToken, limits: Limits) {
    tracing::info!(
        connections = limits.connections,
        header_timeout_secs = limits.header_read.as_secs_f32(),
        body_timeout_secs = limits.body_read.as_secs_f32(),
        crowded_body_timeout_secs = limits.body_read_crowded.as_secs_f32(),
        "HTTP limits"
    );
    let permits = Arc::new(Semaphore::new(limits.connections.max(1)));
    loop {
        // wait for a free slot first: at the cap, new connections wait in the kernel's backlog
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // e.g. out of descriptors: wait a moment instead of spinning
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(stream, peer, router.clone(), limits, permits.clone(), permit));
    }
}

/// One connection: one request, then closed; its permit is given back at the end.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    permits: Arc<Semaphore>,
    permit: OwnedSemaphorePermit,
) {
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let router = router.clone();
        // decided when the headers are in: a crowded server gives bodies less time
        let body_read = if crowded(permits.available_permits(), limits.connections) { limits.body_read_crowded } else { limits.body_read };
        async move { Ok::<_, Infallible>(answer(router, request, peer, body_read).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    let _ = tokio::time::timeout(limits.request + limits.header_read, connection).await;
    drop(permit);
}

/// The router's answer to `request`, once its whole body arrived within `body_read` (else 408).
async fn answer(router: Router, request: Request<Incoming>, peer: SocketAddr, body_read: Duration) -> Response {
    let (mut parts, body) = request.into_parts();
    // the peer's address, for `[gmctl] tokenless_networks` and the event streams' cap
    parts.extensions.insert(ConnectInfo(peer));
    let body = match tokio::time::timeout(body_read, receive(body)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return super::reply::error(StatusCode::BAD_REQUEST, format!("the request body broke off: {e}")),
        Err(_) => return body_too_slow(body_read),
    };
    router.oneshot(Request::from_parts(parts, body)).await.unwrap_or_else(|never| match never {})
}

/// The whole body in memory; when it is over [`super::reply::BODY_LIMIT`], only its first bytes past the
/// limit (the route's extractor refuses those with 413; the rest is never read).
async fn receive(body: Incoming) -> Result<Body, axum::Error> {
    if body.is_end_stream() {
        return Ok(Body::new(body));
    }
    let announced = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let mut received: Vec<u8> = Vec::with_capacity(announced.min(PREALLOCATE));
    let mut chunks = Body::new(body).into_data_stream();
    while let Some(chunk) = chunks.next().await {
        received.extend_from_slice(&chunk?);
        if received.len() > super::reply::BODY_LIMIT {
            break;
        }
    }
    Ok(Body::from(received))
}

/// 408: the body did not arrive in time.
fn body_too_slow(body_read: Duration) -> Response {
    super::reply::error(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body did not arrive within {} s of its headers: send the whole body at once", body_read.as_secs_f32()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        let cap = connection_cap() as u64;
        let limit = open_files_limit().unwrap_or(1024);
        assert!(cap + RESERVED_DESCRIPTORS <= limit.max(16 + RESERVED_DESCRIPTORS), "{cap} of {limit}");
        assert!(cap >= 16);
    }

    #[test]
    fn a_server_is_crowded_with_less_than_an_eighth_free() {
        assert!(!crowded(128, 1024));
        assert!(crowded(127, 1024));
        assert!(crowded(0, 16) && crowded(1, 16) && !crowded(2, 16));
        assert!(crowded(0, 1) && !crowded(1, 1));
        let limits = Limits::default();
        assert!(limits.body_read_crowded <= limits.body_read);
    }

    #[test]
    fn the_body_timeout_says_what_to_do() {
        let response = body_too_slow(Duration::from_secs(10));
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
