//! Serving connections: HTTP/1.1 and HTTP/2 (with prior knowledge, or by ALPN over TLS) on one
//! listener, with the limits at the socket that `axum::serve` does not offer (issue 13).
//!
//! - **Connection cap.** A connection is accepted only with one of
//!   [`ConnectionLimits::connections_max`] slots, held until it closes. Past the cap the
//!   server stops accepting: new connections wait in the kernel's listen backlog and are
//!   served as slots free, instead of being accepted and closed. A burst of real clients then
//!   waits a little rather than failing, and the server's memory and file descriptors stay
//!   bounded; a full backlog makes the kernel refuse, which is the right answer past it.
//! - **TLS (optional).** With a certificate the port speaks TLS only (`crate::tls`); the
//!   protocol is the one ALPN chose (`h2`, else HTTP/1.1). The handshake happens inside the
//!   connection's slot and under the header read timeout, so half-open handshakes cannot
//!   pile up.
//! - **Header read timeout (slowloris).** A connection must say which protocol it speaks
//!   (its first bytes, or its whole TLS handshake) within
//!   [`ConnectionLimits::header_read_timeout`], or it is closed.
//!   HTTP/1: each request's headers must arrive within it, which also closes a connection
//!   idle that long between requests (hyper's `header_read_timeout`). HTTP/2: the first
//!   request must start within it; a connection with no request in flight for
//!   [`HTTP2_IDLE_TIMEOUT_MS`] is closed gracefully (GOAWAY), and dropped if its peer has not
//!   closed it within another header read timeout; pings every
//!   [`HTTP2_KEEP_ALIVE_INTERVAL_MS`] close a peer that stopped answering; at most
//!   [`ConnectionLimits::http2_max_concurrent_streams`] requests are in flight per connection.
//! - **Graceful shutdown.** On the signal the listener closes, every connection finishes its
//!   in-flight requests (HTTP/1 keep-alive off, HTTP/2 GOAWAY) and closes. Dropping the
//!   returned future (the grace period is over) closes every connection at once.
//!
//! The request timeout and the body limits are middleware (`http::limits`), since they
//! depend on the route.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// About 10 KiB of buffers each when idle, some 100 MiB at the cap; mind `ulimit -n`.
pub const DEFAULT_CONNECTIONS_MAX: usize = 10_000;
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// An HTTP/2 connection with no request in flight this long is closed (GOAWAY); clients
/// reconnect on their next call. Long enough for a gRPC channel between bursts of calls.
pub const HTTP2_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Ping an HTTP/2 peer this often; one that does not answer within
/// [`HTTP2_KEEP_ALIVE_TIMEOUT_MS`] is gone and its connection closed.
pub const HTTP2_KEEP_ALIVE_INTERVAL_MS: u64 = 20_000;
pub const HTTP2_KEEP_ALIVE_TIMEOUT_MS: u64 = 20_000;
/// Pause after a failed accept (out of file descriptors, say) before trying again, so that
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;
/// Wait between two looks at a connection that has sent part of the HTTP/2 preface only.
const PREFACE_POLL_MS: u64 = 10;
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Timeouts and caps at the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// See the module's documentation.
    pub header_read_timeout: Duration,
    /// Longest a request may take until its response starts (`http::limits`).
    pub request_timeout: Duration,
    pub connections_max: usize,
    pub http2_max_concurrent_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            request_timeout: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
            connections_max: DEFAULT_CONNECTIONS_MAX,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// The two connection builders, configured once.
struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &ConnectionLimits) -> Self {
        let configure = |mut b: auto::Builder<TokioExecutor>| {
            b.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            b.http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.http2_max_concurrent_streams)
                .keep_alive_interval(Duration::from_millis(HTTP2_KEEP_ALIVE_INTERVAL_MS))
                .keep_alive_timeout(Duration::from_millis(HTTP2_KEEP_ALIVE_TIMEOUT_MS));
            b
        };
        Builders {
            http1: configure(auto::Builder::new(TokioExecutor::new()).http1_only()),
            http2: configure(auto::Builder::new(TokioExecutor::new()).http2_only()),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module's
/// documentation). Every request carries `ConnectInfo<SocketAddr>` of its peer. With `tls` the
/// port speaks TLS only, HTTP/2 or HTTP/1.1 as ALPN chose.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let builders = Arc::new(Builders::new(&limits));
    let (stopping_tx, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // A connection reset before it was accepted concerns that client only;
                    // anything else (EMFILE) may last: pause rather than spin.
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            tls: tls.clone(),
            builders: builders.clone(),
            limits,
            stopping: stopping.clone(),
        };
        connections.spawn(async move {
            connection.run(tcp, peer).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    while connections.join_next().await.is_some() {}
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The protocol a connection speaks, from its first bytes (without consuming them): the
/// HTTP/2 preface, or anything else (HTTP/1). `None` when it closed first.
async fn sniff(tcp: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(Protocol::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Protocol::Http2));
        }
        // Part of the preface only: peek would answer at once again; wait for the rest.
        tokio::time::sleep(Duration::from_millis(PREFACE_POLL_MS)).await;
    }
}

/// What one connection's task needs.
struct Connection {
    router: Router,
    /// `Some`: the port speaks TLS only.
    tls: Option<TlsAcceptor>,
    builders: Arc<Builders>,
    limits: ConnectionLimits,
    stopping: watch::Receiver<bool>,
}

/// Requests of one connection: in flight, started in all, and when the last one ended
/// (milliseconds since the connection opened), to close an idle HTTP/2 connection.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    started: AtomicU64,
    last_end_ms: AtomicU64,
}

/// Counts a request in flight until dropped (the response is ready, or the request was
/// abandoned).
struct InFlight {
    activity: Arc<Activity>,
    opened: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.activity.last_end_ms.fetch_max(ms, Ordering::Relaxed);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    async fn run(self, tcp: TcpStream, peer: SocketAddr) {
        let Some(acceptor) = self.tls.clone() else {
            let protocol =
                match tokio::time::timeout(self.limits.header_read_timeout, sniff(&tcp)).await {
                    Ok(Ok(Some(protocol))) => protocol,
                    // Closed, failed, or silent for too long: dropping the socket closes it.
                    _ => return,
                };
            return self.serve_io(tcp, protocol, peer, false).await;
        };
        // The handshake is a TLS client's first bytes: it must end within the header read
        // timeout like a cleartext client's first request line, or the slot is given back.
        let tls = match tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(tcp))
            .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                // A scanner or a client that does not trust us: its business, not a warning.
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not finished in time; dropped");
                return;
            }
        };
        let protocol = if crate::tls::negotiated_h2(tls.get_ref().1.alpn_protocol()) {
            Protocol::Http2
        } else {
            Protocol::Http1
        };
        self.serve_io(tls, protocol, peer, true).await
    }

    async fn serve_io<I>(self, io: I, protocol: Protocol, peer: SocketAddr, tls: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let opened = Instant::now();
        let activity = Arc::new(Activity::default());
        let router = self.router.clone();
        let counted = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            counted.in_flight.fetch_add(1, Ordering::Relaxed);
            counted.started.fetch_add(1, Ordering::Relaxed);
            let in_flight = InFlight {
                activity: counted.clone(),
                opened,
            };
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            if tls {
                // This process terminates TLS here, so it says so the way a TLS-terminating
                // proxy would (the console's session cookie is then `Secure`), overwriting
                // whatever the client sent.
                req.headers_mut()
                    .insert(X_FORWARDED_PROTO, http::HeaderValue::from_static("https"));
            }
            let response = router.clone().oneshot(req);
            async move {
                let response = response.await;
                drop(in_flight);
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let builder = match protocol {
            Protocol::Http1 => &self.builders.http1,
            Protocol::Http2 => &self.builders.http2,
        };
        let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
        let limits = self.limits;
        let mut stopping = self.stopping;
        let mut draining = false;
        // An idle HTTP/2 connection closed gracefully waits for its peer to acknowledge the
        // GOAWAY; one that does not is dropped after another header read timeout.
        let mut closing_by: Option<Instant> = None;
        loop {
            let idle_check = match protocol {
                Protocol::Http2 if !draining => {
                    Some(http2_idle_deadline(&limits, opened, &activity))
                }
                _ => None,
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                _ = stopping.wait_for(|s| *s), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                () = sleep_until_some(idle_check) => {
                    if activity.in_flight.load(Ordering::Relaxed) == 0
                        && http2_idle_deadline(&limits, opened, &activity) <= Instant::now()
                    {
                        conn.as_mut().graceful_shutdown();
                        draining = true;
                        closing_by = Some(Instant::now() + limits.header_read_timeout);
                    }
                }
                () = sleep_until_some(closing_by) => {
                    tracing::debug!(%peer, "idle HTTP/2 connection did not close; dropping it");
                    return;
                }
            }
        }
    }
}

/// When an HTTP/2 connection with nothing in flight is closed: the first request must start
/// within the header read timeout, later ones within the idle timeout of the last.
fn http2_idle_deadline(limits: &ConnectionLimits, opened: Instant, activity: &Activity) -> Instant {
    if activity.started.load(Ordering::Relaxed) == 0 {
        return opened + limits.header_read_timeout;
    }
    let idle = Duration::from_millis(HTTP2_IDLE_TIMEOUT_MS);
    let last_end = Duration::from_millis(activity.last_end_ms.load(Ordering::Relaxed));
    if activity.in_flight.load(Ordering::Relaxed) > 0 {
        // Requests in flight keep it open: look again one idle period from now.
        return Instant::now() + idle;
    }
    opened + last_end + idle
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
