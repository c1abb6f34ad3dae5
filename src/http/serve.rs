//! The HTTP server loop (issue 13): a header-read timeout, one request per connection and a cap
//! on open connections below the file-descriptor limit, so idle or slow clients (a slowloris)
//! can neither hold the server nor use up the descriptors the Git fetches and AWS calls need.

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A client has this long to send a request's headers after connecting.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);
/// A request (headers read) has this long to be answered and written.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Descriptors kept free for the store, Git mirrors, AWS connections and logs.
const RESERVED_DESCRIPTORS: u64 = 256;
/// The cap when the descriptor limit allows more.
const MAX_CONNECTIONS: u64 = 1024;

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

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    let cap = connection_cap();
    tracing::info!(connections = cap, header_timeout_secs = HEADER_READ_TIMEOUT.as_secs(), "HTTP limits");
    let permits = Arc::new(Semaphore::new(cap));
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
        // the peer's address, for `[gmctl] tokenless_networks`
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            request.map(Body::new)
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let _ = tokio::time::timeout(REQUEST_TIMEOUT + HEADER_READ_TIMEOUT, connection).await;
            drop(permit);
        });
    }
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
}
