//! Background checkpoints. The writer's commits only append to the WAL and fsync it; copying
//! WAL pages back into the database file happens here, on its own connection and thread, so a
//! checkpoint never stalls a commit (and so never shows in request latency).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

/// How often the checkpointer looks at the WAL when nobody nudges it.
const IDLE_INTERVAL: Duration = Duration::from_millis(500);
/// Least time between two checkpoints. A page changed by many commits in this time is copied
/// to the database file once instead of once per commit.
const CHECKPOINT_SPACING: Duration = Duration::from_millis(250);
/// WAL size (in frames) past which a blocking checkpoint is run, so that the WAL cannot grow
/// without bound under readers that never let a passive checkpoint finish. 65,536 frames of
/// 4 KiB is 256 MiB.
const WAL_FRAMES_HARD_MAX: i64 = 65_536;

pub(crate) enum Nudge {
    Committed,
    Stop,
}

pub(crate) fn spawn(
    path: PathBuf,
    nudges: Receiver<Nudge>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("allot-sqlite-checkpoint".to_owned())
        .spawn(move || run(path, nudges))
}

fn run(path: PathBuf, nudges: Receiver<Nudge>) {
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
            Ok((_, log_frames, _)) if log_frames > WAL_FRAMES_HARD_MAX => {
                if let Err(e) = checkpoint(&conn, "RESTART") {
                    tracing::warn!(error = %e, "restart checkpoint");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "passive checkpoint"),
        }
    }
}

fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}
