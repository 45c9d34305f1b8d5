//! Logging setup. Lines go through a non-blocking writer so that a slow terminal never holds a
//! request up.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::LogFormat;

const QUIET_RUSTLS: &str = "rustls=error";

/// Installs the global subscriber. Keep the returned guard alive for the life of the process:
/// dropping it flushes the last lines.
pub fn init(format: LogFormat, filter: &str) -> WorkerGuard {
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
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    guard
}
