//! The hub's serve loop: accepts TCP connections, terminates TLS when
//! configured, and serves HTTP/1.1 with hyper under limits that hold against
//! slow and many clients.
//!
//! - At most `max_connections` open connections, and `max_connections_per_ip`
//!   from one address ([`peers`]); a connection beyond either is closed at
//!   once, before a byte is read.
//! - A TLS handshake must finish, and a request's headers arrive, within
//!   `header_timeout_ms`; the same timer closes a keep-alive connection idle
//!   that long (hyper starts it again after each answer).
//! - The body must arrive within `body_timeout_ms` and the answer start
//!   within `request_timeout_ms`: the router's guard
//!   (`http::kernel::guard`) buffers the body first and only then takes
//!   one of the `max_concurrent_requests` permits, so clients that trickle
//!   bodies hold a connection slot of their own address, never a permit.
//!
//! Invariant: every open connection holds one global and one per-address
//! slot until its task ends; every wait has a deadline.

pub mod budget;
pub mod guesses;
pub mod peers;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::tls::TlsReloader;
use crate::wire::ApiError;

pub use peers::{peer_key, PeerSlots};

/// The serve loop's limits (from [`crate::config::HubConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at once.
    pub max_connections: usize,
    /// Open connections at once from one address.
    pub max_connections_per_ip: usize,
    /// TLS handshake, request headers, and keep-alive idle.
    pub header_timeout: Duration,
    /// From the headers to the start of the answer.
    pub request_timeout: Duration,
}

impl ServeLimits {
    /// The limits of a configuration.
    pub fn of(cfg: &crate::config::HubConfig) -> ServeLimits {
        ServeLimits {
            max_connections: cfg.max_connections,
            max_connections_per_ip: cfg.max_connections_per_ip,
            header_timeout: Duration::from_millis(cfg.header_timeout_ms),
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
        }
    }
}

/// Connections refused by a cap, logged at most every [`REFUSAL_LOG_EVERY`].
#[derive(Debug, Default)]
struct Refusals {
    total: AtomicU64,
    per_ip: AtomicU64,
    logged: std::sync::Mutex<Option<Instant>>,
}

/// Least time between two log lines about refused connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

impl Refusals {
    fn count(&self, per_ip: bool, peer: SocketAddr) {
        let c = if per_ip { &self.per_ip } else { &self.total };
        c.fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                peer = %peer.ip(),
                refused_over_max_connections = self.total.load(Ordering::Relaxed),
                refused_over_max_connections_per_ip = self.per_ip.load(Ordering::Relaxed),
                "connections refused: connection cap"
            );
        }
    }
}

/// The answer when the whole request took longer than `request_timeout_ms`.
fn timed_out() -> Response {
    crate::http::error_response(&ApiError::timeout("the request did not complete in time"))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish (at most `request_timeout` more).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    tls: Option<Arc<TlsReloader>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let peers = PeerSlots::new(limits.max_connections_per_ip);
    let refusals = Arc::new(Refusals::default());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refusals.count(false, peer);
            drop(stream);
            continue;
        };
        let Some(slot) = peers.try_take(peer.ip()) else {
            refusals.count(true, peer);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let app = app.clone();
        let tls = tls.as_ref().map(|t| t.config());
        tokio::spawn(async move {
            let _held = (permit, slot);
            connection(stream, peer, app, limits, tls, watcher).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after the request timeout; closing them");
    }
    Ok(())
}

/// One connection: the TLS handshake (bounded by the header timeout), then
/// HTTP/1.1 until the client closes, a timeout fires or the hub stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServeLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let request_timeout = limits.request_timeout;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let answer = match tokio::time::timeout(request_timeout, app.oneshot(req)).await {
                Ok(Ok(r)) => r,
                Ok(Err(never)) => match never {},
                Err(_) => timed_out(),
            };
            Ok::<_, Infallible>(answer)
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let served = match tls {
        None => {
            watcher
                .watch(http.serve_connection(TokioIo::new(stream), service))
                .await
        }
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let stream =
                match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer.ip(), error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %peer.ip(), "TLS handshake timed out");
                        return;
                    }
                };
            watcher
                .watch(http.serve_connection(TokioIo::new(stream), service))
                .await
        }
    };
    if let Err(e) = served {
        tracing::debug!(peer = %peer.ip(), error = %e, "connection ended");
    }
}
