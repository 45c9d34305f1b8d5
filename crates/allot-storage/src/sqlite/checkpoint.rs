//! Background checkpoints. The writer's commits only append to the WAL and fsync it; copying
//! WAL pages back into the database file happens here, on its own connection and thread, so a
//! checkpoint never stalls a commit (and so never shows in request latency).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

/// How often the checkpointer looks at the WAL when nobody nudges it.
const IDLE_INTERVAL: Duration = Duration::from_millis(500);
/// Least time between two checkpoints. A page changed by many commits in this time is copied
/// to the database file once instead of once per commit.
const CHECKPOINT_SPACING: Duration = Duration::from_millis(250);
/// WAL size (in frames) past which the writer is asked to restart the WAL (see
/// [`WalSize`]). 8,192 frames of 4 KiB is 32 MiB.
pub(crate) const WAL_FRAMES_RESTART: i64 = 8_192;

/// The WAL's size as the last checkpoint saw it, shared with the writer.
///
/// Under a steady stream of commits a passive checkpoint never catches the WAL's moving end,
/// so the WAL is never reset and grows without bound. A checkpoint that resets it (RESTART)
/// must keep writers out while it runs; run from here it would stall every commit behind it.
/// So this thread copies frames passively, and the writer itself, between two batches, runs a
/// RESTART once the WAL passes [`WAL_FRAMES_RESTART`]: most frames are copied already, so it
/// only moves the tail and resets the log.
#[derive(Debug, Default)]
pub(crate) struct WalSize(AtomicI64);

impl WalSize {
    pub(crate) fn frames(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, frames: i64) {
        self.0.store(frames, Ordering::Relaxed);
    }
}

pub(crate) enum Nudge {
    Committed,
    Stop,
}

pub(crate) fn spawn(
    path: PathBuf,
    nudges: Receiver<Nudge>,
    wal_size: Arc<WalSize>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("allot-sqlite-checkpoint".to_owned())
        .spawn(move || run(path, nudges, &wal_size))
}

fn run(path: PathBuf, nudges: Receiver<Nudge>, wal_size: &WalSize) {
    let conn = match Connection::open(&path).and_then(|c| {
        c.pragma_update(None, "busy_timeout", 5_000)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "checkpointer cannot open the database; WAL will grow");
            return;
        }
    };
    loop {
        match nudges.recv_timeout(IDLE_INTERVAL) {
            Ok(Nudge::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Nudge::Committed) => {
                // Let the commits of the next while coalesce into one checkpoint.
                std::thread::sleep(CHECKPOINT_SPACING);
                while let Ok(n) = nudges.try_recv() {
                    if let Nudge::Stop = n {
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        match checkpoint(&conn, "PASSIVE") {
            Ok((_, log_frames, _)) => wal_size.set(log_frames),
            Err(e) => tracing::warn!(error = %e, "passive checkpoint"),
        }
    }
}

pub(crate) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}
