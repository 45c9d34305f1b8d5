//! A fault-injecting TCP proxy: listens on a free loopback port and forwards every connection
//! to a target (a PostgreSQL cluster, a Redis server), until a test injects a fault:
//!
//! - [`Proxy::stall`]: no byte is forwarded either way, connections stay open (a network
//!   that stalls: the peers' kernels still acknowledge what fits in their buffers, so only a
//!   timeout of the application notices); [`Proxy::resume`] forwards again, bytes held during
//!   the stall included;
//! - [`Proxy::stall_existing`]: a black hole: the connections open now stall for good
//!   ([`Proxy::resume`] does not bring them back; only [`Proxy::cut`] would end them), while
//!   new ones are forwarded (a failover, a dropped NAT or conntrack entry: only the old flows
//!   are lost);
//! - [`Proxy::cut`]: every open connection is reset (both sides see a connection reset);
//! - [`Proxy::refuse`]: new connections are closed at once (a target that went away).
//!
//! It runs on a runtime of its own (one thread), so it works the same under any test's runtime
//! or none, and a stalled runtime of the test cannot stall it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Whether a connection forwards: not while stalled, never once black-holed.
#[derive(Debug, Clone, Copy, Default)]
struct Gate {
    stalled: bool,
    /// Connections numbered below this are black-holed.
    holed_below: u64,
}

impl Gate {
    fn blocks(&self, connection: u64) -> bool {
        self.stalled || connection < self.holed_below
    }
}

struct Shared {
    gate: watch::Sender<Gate>,
    /// The number the next connection accepted gets.
    accepted: AtomicU64,
    /// Bumped by [`Proxy::cut`]: every connection older than the bump is reset.
    cuts: watch::Sender<u64>,
    refusing: AtomicBool,
    open: AtomicUsize,
}

/// A TCP proxy in front of one target; stopped when dropped.
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("allot-testkit-proxy")
            .enable_all()
            .build()
            .expect("the proxy's runtime");
        // Bound here, made a tokio listener on the proxy's runtime: `start` may be called
        // from within another runtime, where blocking on this one is not allowed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("the proxy listens");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            gate: watch::channel(Gate::default()).0,
            accepted: AtomicU64::new(0),
            cuts: watch::channel(0).0,
            refusing: AtomicBool::new(false),
            open: AtomicUsize::new(0),
        });
        let accepting = shared.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("the proxy's listener");
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if accepting.refusing.load(Ordering::SeqCst) {
                    reset(&client);
                    drop(client);
                    continue;
                }
                let number = accepting.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(forward(client, number, target, accepting.clone()));
            }
        });
        Proxy {
            addr,
            target,
            shared,
            runtime: Some(runtime),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Stops forwarding bytes both ways; connections stay open, new ones are accepted (and
    /// stalled too).
    pub fn stall(&self) {
        self.shared.gate.send_modify(|g| g.stalled = true);
    }

    /// Forwards again, the bytes held during the stall first (not on black-holed
    /// connections: [`Proxy::stall_existing`]).
    pub fn resume(&self) {
        self.shared.gate.send_modify(|g| g.stalled = false);
    }

    /// A black hole: every connection accepted so far stops forwarding either way, for good
    /// (not resumed; its peers see nothing, only their own timeouts end it, or a
    /// [`Proxy::cut`]); connections accepted from now on are forwarded.
    pub fn stall_existing(&self) {
        let next = self.shared.accepted.load(Ordering::SeqCst);
        self.shared.gate.send_modify(|g| g.holed_below = next);
    }

    /// Resets every open connection, both ways.
    pub fn cut(&self) {
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// `true`: new connections are closed as soon as they are accepted; `false`: forwarded.
    pub fn refuse(&self, refuse: bool) {
        self.shared.refusing.store(refuse, Ordering::SeqCst);
    }

    /// Connections forwarded now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Never blocks: dropping may happen inside a test's runtime.
            runtime.shutdown_background();
        }
    }
}

/// Closes with a reset (RST) rather than a FIN: what a cut link looks like to the peer.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

async fn forward(client: TcpStream, number: u64, target: SocketAddr, shared: Arc<Shared>) {
    let mut cuts = shared.cuts.subscribe();
    cuts.mark_unchanged();
    let server = tokio::select! {
        s = TcpStream::connect(target) => s,
        _ = cuts.changed() => {
            reset(&client);
            return;
        }
    };
    let Ok(server) = server else {
        reset(&client);
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        // Dropped, a socket is reset rather than closed: what a cut link looks like. A
        // connection that ends by itself is shut down (FIN) by its pump first.
        reset(s);
    }
    shared.open.fetch_add(1, Ordering::SeqCst);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, number, shared.gate.subscribe());
    let down = pump(server_read, client_write, number, shared.gate.subscribe());
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        // The pumps own the halves: dropping them here resets both sockets.
        _ = cuts.changed() => {}
    }
    shared.open.fetch_sub(1, Ordering::SeqCst);
}

/// Copies `from` to `to` until either side closes, holding bytes while the gate blocks
/// connection `number`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    number: u64,
    mut gate: watch::Receiver<Gate>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if gate.wait_for(|g| !g.blocks(number)).await.is_err() {
            break;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = gate.changed() => continue,
        };
        // A stall that began while reading holds what was read.
        if gate.wait_for(|g| !g.blocks(number)).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::time::Duration;

    /// How long the tests wait to see that nothing arrives.
    const QUIET: Duration = Duration::from_millis(300);

    /// An echo server on a free loopback port (a thread per connection).
    fn echo() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(proxy: &Proxy) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn round_trip(s: &mut std::net::TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).unwrap();
        got
    }

    fn wait_open(proxy: &Proxy, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while proxy.open_connections() != n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} open, not {n}",
                proxy.open_connections()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn forwards_both_ways() {
        let proxy = Proxy::start(echo());
        let mut s = connect(&proxy);
        assert_eq!(round_trip(&mut s, b"hello"), b"hello");
        assert_eq!(round_trip(&mut s, &[7u8; 100_000]), vec![7u8; 100_000]);
        wait_open(&proxy, 1);
        drop(s);
        wait_open(&proxy, 0);
    }

    #[test]
    fn a_stall_holds_bytes_until_resumed_and_keeps_the_connection() {
        let proxy = Proxy::start(echo());
        let mut s = connect(&proxy);
        assert_eq!(round_trip(&mut s, b"before"), b"before");
        proxy.stall();
        s.write_all(b"during").unwrap();
        s.set_read_timeout(Some(QUIET)).unwrap();
        let mut buf = [0u8; 6];
        let quiet = s.read(&mut buf).unwrap_err();
        assert!(
            matches!(quiet.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{quiet:?}"
        );
        // A connection made during the stall is accepted and stalled too.
        let mut late = connect(&proxy);
        late.write_all(b"late").unwrap();
        late.set_read_timeout(Some(QUIET)).unwrap();
        assert!(late.read(&mut buf).is_err());
        proxy.resume();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"during");
        late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut four = [0u8; 4];
        late.read_exact(&mut four).unwrap();
        assert_eq!(&four, b"late");
        assert_eq!(round_trip(&mut s, b"after"), b"after");
    }

    #[test]
    fn a_cut_resets_open_connections_and_new_ones_work() {
        let proxy = Proxy::start(echo());
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        assert_eq!(round_trip(&mut a, b"a"), b"a");
        assert_eq!(round_trip(&mut b, b"b"), b"b");
        wait_open(&proxy, 2);
        proxy.stall();
        proxy.cut();
        wait_open(&proxy, 0);
        for s in [&mut a, &mut b] {
            let mut buf = [0u8; 1];
            // Reset or closed: either way the connection is gone.
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {}
                Ok(n) => panic!("read {n} bytes from a cut connection"),
            }
        }
        proxy.resume();
        let mut c = connect(&proxy);
        assert_eq!(round_trip(&mut c, b"c"), b"c");
    }

    #[test]
    fn a_black_hole_stalls_open_connections_for_good_and_forwards_new_ones() {
        let proxy = Proxy::start(echo());
        let mut old = connect(&proxy);
        assert_eq!(round_trip(&mut old, b"before"), b"before");
        wait_open(&proxy, 1);
        proxy.stall_existing();
        old.write_all(b"lost").unwrap();
        old.set_read_timeout(Some(QUIET)).unwrap();
        let mut buf = [0u8; 4];
        let quiet = old.read(&mut buf).unwrap_err();
        assert!(
            matches!(quiet.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{quiet:?}"
        );
        // New connections are forwarded, the old one still open and silent.
        let mut new = connect(&proxy);
        assert_eq!(round_trip(&mut new, b"new"), b"new");
        wait_open(&proxy, 2);
        // Neither a resume nor a stall and resume brings the old one back.
        proxy.stall();
        proxy.resume();
        assert_eq!(round_trip(&mut new, b"again"), b"again");
        let quiet = old.read(&mut buf).unwrap_err();
        assert!(
            matches!(quiet.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{quiet:?}"
        );
        assert_eq!(proxy.open_connections(), 2);
    }

    #[test]
    fn refusing_closes_new_connections_at_once_until_told_otherwise() {
        let proxy = Proxy::start(echo());
        let mut kept = connect(&proxy);
        assert_eq!(round_trip(&mut kept, b"k"), b"k");
        proxy.refuse(true);
        let mut s = connect(&proxy);
        let _ = s.write_all(b"x");
        let mut buf = [0u8; 1];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("read {n} bytes through a refusing proxy"),
        }
        // Connections made before keep working.
        assert_eq!(round_trip(&mut kept, b"still"), b"still");
        proxy.refuse(false);
        let mut s = connect(&proxy);
        assert_eq!(round_trip(&mut s, b"again"), b"again");
    }
}
