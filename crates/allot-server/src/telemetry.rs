//! Logging setup, and the writer every log line goes through.
//!
//! Every request writes one line (operators rely on it), so the line's cost is paid on every
//! request. tracing-appender's non-blocking writer sends each line over a channel (waking its
//! writer thread, a futex call on each side) and writes each line with its own `write(2)`:
//! profiled on the hello-world, that was a fifth of the server's CPU (docs/PERFORMANCE.md,
//! "Where the CPU goes"). [`LogBuffer`] is the same idea at batch granularity, written here
//! because no kept crate does it: a request appends its line to a shared buffer (a short lock
//! and a copy, no allocation once warm, no wake-up unless the buffer was empty or is large),
//! and one thread writes what has gathered every [`FLUSH_EVERY`], or at once past
//! [`FLUSH_AT`] bytes. A request is never held by its log: when standard error cannot keep up
//! and [`HOLD_AT_MOST`] bytes wait, further lines are dropped and counted, and the count is
//! written as soon as the output moves again.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::LogFormat;

const QUIET_RUSTLS: &str = "rustls=error";
/// How long a line may wait before it is written (the log's delay behind the server).
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Bytes waiting that make the writer write at once.
pub const FLUSH_AT: usize = 64 * 1024;
/// Bytes held at most while the output is stuck; past it lines are dropped and counted.
pub const HOLD_AT_MOST: usize = 16 * 1024 * 1024;

/// Installs the global subscriber. Keep the returned guard alive for the life of the process:
/// dropping it writes the last lines.
pub fn init(format: LogFormat, filter: &str) -> LogGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("bad log filter {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
    // rustls warns once per handshake about what a client did (an IP address as SNI, which
    // OpenSSL clients send): any client could fill the log. Its errors still show, and a
    // filter that names rustls itself wins.
    let filter = match QUIET_RUSTLS.parse() {
        Ok(directive) if !filter.to_string().contains("rustls") => filter.add_directive(directive),
        _ => filter,
    };
    let (writer, guard) = LogBuffer::start(std::io::stderr(), HOLD_AT_MOST);
    // Colours only for a terminal: a file or a log collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    guard
}

/// What the requests and the writer thread share.
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the buffer turns non-empty, grows past [`FLUSH_AT`], or is closed.
    ready: Condvar,
    hold_at_most: usize,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines dropped since the last write because the buffer was full.
    dropped: u64,
    /// The writer was told the buffer is past [`FLUSH_AT`] (told once per batch).
    urgent: bool,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves bytes, not broken invariants: go on.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, line: &[u8]) {
        let mut p = self.lock();
        if p.closed {
            return;
        }
        if p.bytes.len() + line.len() > self.hold_at_most {
            p.dropped += 1;
            return;
        }
        let was_empty = p.bytes.is_empty();
        p.bytes.extend_from_slice(line);
        let urgent = p.bytes.len() >= FLUSH_AT && !p.urgent;
        p.urgent |= urgent;
        drop(p);
        if was_empty || urgent {
            self.ready.notify_one();
        }
    }
}

/// The writer of log lines ([`MakeWriter`] for tracing-subscriber): appends each line to the
/// buffer its thread writes out.
#[derive(Clone)]
pub struct LogBuffer(Arc<Shared>);

/// Keeps the writer thread; dropping it writes what is buffered and ends the thread.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogBuffer {
    /// Starts the thread that writes to `out`, holding at most `hold_at_most` bytes.
    pub fn start<W: Write + Send + 'static>(out: W, hold_at_most: usize) -> (Self, LogGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            hold_at_most,
        });
        let thread = std::thread::Builder::new()
            .name("allot-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_out(&shared, out)
            })
            .ok();
        let guard = LogGuard {
            shared: shared.clone(),
            thread,
        };
        (LogBuffer(shared), guard)
    }
}

/// The writer thread: waits for a first line, lets lines gather for [`FLUSH_EVERY`] (or
/// until [`FLUSH_AT`] bytes), swaps the buffer for its empty spare and writes it unlocked.
fn write_out<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::new();
    loop {
        let mut p = shared.lock();
        while p.bytes.is_empty() && p.dropped == 0 && !p.closed {
            p = shared.ready.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        if !p.closed && p.bytes.len() < FLUSH_AT {
            p = shared
                .ready
                .wait_timeout_while(p, FLUSH_EVERY, |p| p.bytes.len() < FLUSH_AT && !p.closed)
                .map_or_else(|e| e.into_inner().0, |(p, _)| p);
        }
        std::mem::swap(&mut p.bytes, &mut spare);
        let dropped = std::mem::take(&mut p.dropped);
        p.urgent = false;
        let closed = p.closed;
        drop(p);
        // An output that fails (a closed pipe) loses the lines, never the server.
        let _ = out.write_all(&spare);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "allot: {dropped} log lines dropped: the log output did not keep up"
            );
        }
        let _ = out.flush();
        spare.clear();
        // A burst's buffer is not kept for ever.
        if spare.capacity() > 4 * FLUSH_AT {
            spare.shrink_to(FLUSH_AT);
        }
        if closed {
            return;
        }
    }
}

impl Write for LogBuffer {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One line's writer: borrows the buffer (no `Arc` clone and drop per line).
pub struct LogLine<'a>(&'a Shared);

impl Write for LogLine<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine(&self.0)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read, that can be held stuck.
    #[derive(Clone, Default)]
    struct Out {
        bytes: Arc<Mutex<Vec<u8>>>,
        stuck: Arc<Mutex<()>>,
    }

    impl Write for Out {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _held = self.stuck.lock().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_by_the_time_the_guard_drops() {
        let out = Out::default();
        let (writer, guard) = LogBuffer::start(out.clone(), HOLD_AT_MOST);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        w.write_all(format!("t{t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, i) = line
                .strip_prefix('t')
                .and_then(|l| l.split_once(" line "))
                .unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines out of order or torn");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }

    #[test]
    fn a_stuck_output_drops_and_counts_lines_instead_of_holding_the_caller() {
        let out = Out::default();
        let stuck = out.stuck.lock().unwrap();
        let (mut writer, guard) = LogBuffer::start(out.clone(), 1_000);
        // The first line may be taken by the writer thread (then stuck in its write); the
        // buffer then holds 1,000 bytes at most: the caller is never held.
        let mut line = vec![b'x'; 99];
        line.push(b'\n');
        for _ in 0..1_000 {
            writer.write_all(&line).unwrap();
        }
        drop(stuck);
        drop(guard);
        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        let dropped: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("allot: "))
            .and_then(|l| l.split_once(' '))
            .map(|(n, _)| n.parse().unwrap())
            .expect("the dropped lines are counted");
        assert!(dropped > 0);
        let kept = text.lines().filter(|l| l.starts_with('x')).count();
        assert!(kept < 1_000, "kept {kept}");
    }
}
