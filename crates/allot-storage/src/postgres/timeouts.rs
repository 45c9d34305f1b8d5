//! Our own timeouts on every PostgreSQL connection, so that a link that stalls and is never
//! cut (a black-holed TCP flow: a failover, a dropped NAT or conntrack entry, a firewall) costs
//! a bounded wait and a new connection, never the store's connections forever:
//!
//! - the connect timeout bounds a connection's opening (TCP, TLS and the startup), reconnects
//!   included;
//! - TCP keepalives and (Linux) `TCP_USER_TIMEOUT` let the kernel notice a dead peer;
//! - PostgreSQL's own `statement_timeout`, `lock_timeout` and
//!   `idle_in_transaction_session_timeout`, sent as startup options: a session the client lost
//!   in the middle of a transaction is ended by the server, and its locks released;
//! - the answer timeout, ours: a connection that has sent a request and hears nothing back for
//!   that long is dropped ([`Watched`]). Every request waiting on it fails as a lost connection
//!   ("unreachable", or "outcome unknown" when it was a COMMIT) and the store opens a new one on
//!   next use. It is measured at the socket, not around a caller's future, so a caller that
//!   gave up (its HTTP request timed out) does not hide a stalled connection from it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long opening a connection may take, TLS and startup included.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long a request sent may go without any byte of answer before the connection is
/// dropped: longer than the statement timeout, so that a long statement is cancelled by the
/// server (which answers) before it is cut here.
pub const DEFAULT_ANSWER_TIMEOUT_MS: u64 = 45_000;
/// PostgreSQL's `statement_timeout`: six times what the largest legitimate statement (a
/// 50,000-coupon upload, one statement) takes on a loaded machine of 2 cores.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// PostgreSQL's `lock_timeout`.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 20_000;
/// PostgreSQL's `idle_in_transaction_session_timeout`: our transactions never wait on
/// anything but the database between their statements.
pub const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 30_000;
/// `TCP_USER_TIMEOUT` (Linux): how long data sent may stay unacknowledged.
pub const DEFAULT_TCP_USER_TIMEOUT_MS: u64 = 30_000;

/// TCP keepalives: first probe after this much silence.
pub(super) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Between probes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Probes unanswered before the kernel drops the connection.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) const KEEPALIVE_RETRIES: u32 = 3;

/// The timeouts of every connection of a store (`None`: not set by us; for the server-side
/// ones, the database's own setting then applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTimeouts {
    pub connect: Duration,
    pub answer: Option<Duration>,
    pub statement: Option<Duration>,
    pub lock: Option<Duration>,
    pub idle_in_transaction: Option<Duration>,
    pub tcp_user: Option<Duration>,
}

impl Default for PgTimeouts {
    fn default() -> Self {
        let ms = |v| Some(Duration::from_millis(v));
        PgTimeouts {
            connect: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            answer: ms(DEFAULT_ANSWER_TIMEOUT_MS),
            statement: ms(DEFAULT_STATEMENT_TIMEOUT_MS),
            lock: ms(DEFAULT_LOCK_TIMEOUT_MS),
            idle_in_transaction: ms(DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS),
            tcp_user: ms(DEFAULT_TCP_USER_TIMEOUT_MS),
        }
    }
}

impl PgTimeouts {
    /// For migrations and the sealing at first open: they may run long, and wait for another
    /// instance's migrations; only the connect timeout and the TCP settings are kept.
    pub fn for_migrations(self) -> PgTimeouts {
        PgTimeouts {
            answer: None,
            statement: None,
            lock: None,
            idle_in_transaction: None,
            ..self
        }
    }

    /// The startup `options` setting the server-side timeouts (empty: none of ours).
    pub(super) fn server_options(&self) -> String {
        [
            ("statement_timeout", self.statement),
            ("lock_timeout", self.lock),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction,
            ),
        ]
        .iter()
        .filter_map(|(name, value)| {
            // At least 1 ms: 0 would turn the server's own setting off.
            value.map(|v| format!("-c {name}={}", v.as_millis().max(1)))
        })
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// A socket that gives up on a silent server: once a request is written, if no byte comes
/// back within `bound`, reads fail (`TimedOut`), which ends the connection and fails every
/// request waiting on it. Any byte read counts as an answer; the next write arms it again.
pub(super) struct Watched<S> {
    inner: S,
    bound: Option<Duration>,
    /// A request was written since the last byte read.
    awaiting: bool,
    /// When `awaiting`, when the answer is given up on. Made on first use (in a runtime).
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, bound: Option<Duration>) -> Self {
        Watched {
            inner,
            bound,
            awaiting: false,
            deadline: None,
        }
    }

    /// A request went out: the answer is awaited from now (if none was awaited already). The
    /// timer is registered with the writer's task, which is also the reader (the connection's
    /// task): it wakes even when nothing ever comes back.
    fn wrote(&mut self, cx: &mut Context<'_>) {
        let Some(bound) = self.bound else { return };
        if self.awaiting {
            return;
        }
        self.awaiting = true;
        let at = Instant::now() + bound;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        deadline.as_mut().reset(at);
        let _ = deadline.as_mut().poll(cx);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.awaiting = false;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.awaiting
                    && let (Some(deadline), Some(bound)) = (this.deadline.as_mut(), this.bound)
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    tracing::warn!(
                        bound_ms = bound.as_millis() as u64,
                        "no answer from postgres within the answer timeout: connection dropped"
                    );
                    metrics::counter!("allot_postgres_answer_timeouts_total").increment(1);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no answer from PostgreSQL within {} ms: connection dropped",
                            bound.as_millis()
                        ),
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.wrote(cx);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.wrote(cx);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn server_options_name_each_timeout_set_in_milliseconds() {
        assert_eq!(
            PgTimeouts::default().server_options(),
            "-c statement_timeout=30000 -c lock_timeout=20000 \
             -c idle_in_transaction_session_timeout=30000"
        );
        let none = PgTimeouts::default().for_migrations();
        assert_eq!(none.server_options(), "");
        assert_eq!(none.answer, None);
        assert_eq!(none.connect, PgTimeouts::default().connect);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_answer_fails_the_read_after_the_bound() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut watched = Watched::new(ours, Some(Duration::from_secs(3)));
        // Idle, nothing awaited: no timeout however long.
        let mut buf = [0u8; 8];
        assert!(
            tokio::time::timeout(Duration::from_secs(60), watched.read(&mut buf))
                .await
                .is_err()
        );
        // A request answered in time.
        watched.write_all(b"q1").await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        theirs.write_all(b"a1").await.unwrap();
        assert_eq!(watched.read(&mut buf).await.unwrap(), 2);
        // A request never answered.
        watched.write_all(b"q2").await.unwrap();
        let started = Instant::now();
        let err = watched.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(3));
    }
}
