//! Logging setup. Lines go through a non-blocking writer so that a slow terminal never holds a
//! request up.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::LogFormat;

/// Installs the global subscriber. Keep the returned guard alive for the life of the process:
/// dropping it flushes the last lines.
pub fn init(format: LogFormat, filter: &str) -> WorkerGuard {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("bad log filter {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
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
