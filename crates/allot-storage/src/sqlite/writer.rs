//! The single writer: group commit over one SQLite connection.
//!
//! Callers submit operations through a bounded queue. The writer thread takes every operation
//! waiting (up to a bound), runs each in its own savepoint inside one transaction, commits once
//! (an fsync of the WAL), and only then answers each caller. While a commit is being flushed,
//! new operations pile up in the queue and form the next, larger batch: the slower the disk,
//! the bigger the batches, so throughput holds when flushes slow down.
//!
//! An operation that fails is rolled back to its savepoint alone and answered with its error;
//! the others in its batch still commit. If the commit itself fails, every operation in the
//! batch is answered with the error and nothing of the batch is kept.

use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::checkpoint::{self, Nudge, WAL_FRAMES_RESTART, WalSize};
use crate::StorageError;

/// Caches the writer keeps between batches. It is the only writer, so what it remembers is
/// exact; it is cleared whenever a commit fails, since the database then rolled back.
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    /// Issues so far, for the ordering prefix of campaign codes; resumed from the stored codes.
    pub campaign_code_sequence: Option<u64>,
}

impl WriterState {
    fn invalidate(&mut self) {
        *self = WriterState::default();
    }
}

trait Job: Send {
    fn weight(&self) -> usize;
    /// Runs the operation inside the open transaction.
    fn run(&mut self, conn: &Connection, state: &mut WriterState);
    /// Answers the caller once the fate of the transaction is known.
    fn finish(self: Box<Self>, commit: Result<(), &str>);
}

struct OpJob<T, F> {
    weight: usize,
    /// The caller's origin, taken in its task: the job's events record it.
    origin: Option<crate::origin::Origin>,
    isolation: Isolation,
    op: Option<F>,
    outcome: Option<Result<T, StorageError>>,
    reply: oneshot::Sender<Result<T, StorageError>>,
}

impl<T, F> Job for OpJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection, &mut WriterState) -> Result<T, StorageError> + Send,
{
    fn weight(&self) -> usize {
        self.weight
    }

    fn run(&mut self, conn: &Connection, state: &mut WriterState) {
        let Some(op) = self.op.take() else { return };
        let isolation = self.isolation;
        self.outcome = Some(crate::origin::in_writer(self.origin, || match isolation {
            Isolation::Savepoint => in_savepoint(conn, |conn| op(conn, state)),
            Isolation::SingleStatement => op(conn, state),
        }));
    }

    fn finish(self: Box<Self>, commit: Result<(), &str>) {
        let answer = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(why)) => Err(StorageError::Commit(why.to_owned())),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, _) => Err(StorageError::Commit("operation never ran".to_owned())),
        };
        // The caller may have gone away (a cancelled request); its write stands either way.
        let _ = self.reply.send(answer);
    }
}

/// How an operation is kept from leaving half its writes behind when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// The operation makes several writes: it runs in its own savepoint and a failure rolls
    /// back exactly its writes.
    Savepoint,
    /// The operation makes at most one write statement, which SQLite already applies
    /// atomically; a savepoint would only cost time.
    SingleStatement,
}

fn in_savepoint<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    conn.prepare_cached("SAVEPOINT op")?.execute([])?;
    let result = op(conn);
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO op")?.execute([])?;
    }
    conn.prepare_cached("RELEASE op")?.execute([])?;
    result
}

enum Msg {
    Job(Box<dyn Job>),
    Shutdown(oneshot::Sender<Result<(), StorageError>>),
}

pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) fn spawn(
    conn: Connection,
    path: std::path::PathBuf,
    queue_capacity: usize,
    batch_weight_max: usize,
) -> Result<WriterHandle, StorageError> {
    // Checkpoints run on their own thread; the writer never checkpoints inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let (nudge_tx, nudge_rx) = std::sync::mpsc::channel();
    let wal_size = std::sync::Arc::new(WalSize::default());
    let checkpointer = checkpoint::spawn(path, nudge_rx, wal_size.clone())?;
    let (tx, rx) = mpsc::channel(queue_capacity);
    let thread = std::thread::Builder::new()
        .name("allot-sqlite-writer".to_owned())
        .spawn(move || {
            run(conn, rx, batch_weight_max, &nudge_tx, &wal_size);
            let _ = nudge_tx.send(Nudge::Stop);
            let _ = checkpointer.join();
        })?;
    Ok(WriterHandle {
        tx,
        thread: Mutex::new(Some(thread)),
    })
}

impl WriterHandle {
    pub(crate) async fn submit<T, F>(
        &self,
        weight: usize,
        isolation: Isolation,
        op: F,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T, StorageError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(OpJob {
            weight,
            origin: crate::origin::current(),
            isolation,
            op: Some(op),
            outcome: None,
            reply,
        });
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    /// False once the writer stopped (shut down, or its thread ended).
    pub(crate) fn accepting(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Lets the writer finish every operation queued before this call, checkpoint and close.
    pub(crate) async fn shutdown(&self) -> Result<(), StorageError> {
        let Some(thread) = self.thread.lock().await.take() else {
            return Ok(());
        };
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(ack)).await.is_ok() {
            done.await.map_err(|_| StorageError::Closed)??;
        }
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| StorageError::Commit(format!("writer thread: {e}")))?
            .map_err(|_| StorageError::Commit("writer thread panicked".to_owned()))
    }
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Msg>,
    batch_weight_max: usize,
    checkpointer: &std::sync::mpsc::Sender<Nudge>,
    wal_size: &WalSize,
) {
    let mut state = WriterState::default();
    let mut batch: Vec<Box<dyn Job>> = Vec::new();
    let mut shutdown = None;
    while shutdown.is_none() {
        let mut weight = 0;
        match rx.blocking_recv() {
            None => break,
            Some(Msg::Shutdown(ack)) => shutdown = Some(ack),
            Some(Msg::Job(job)) => {
                weight += job.weight();
                batch.push(job);
            }
        }
        while shutdown.is_none() && weight < batch_weight_max {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => {
                    weight += job.weight();
                    batch.push(job);
                }
                Ok(Msg::Shutdown(ack)) => shutdown = Some(ack),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&conn, &mut state, &mut batch);
            let _ = checkpointer.send(Nudge::Committed);
        }
        if wal_size.frames() > WAL_FRAMES_RESTART {
            restart_wal(&conn, wal_size);
        }
    }
    // No more writes: fold the WAL back into the database file so the next start is quick.
    let closed = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(StorageError::from)
        .and_then(|()| conn.close().map_err(|(_, e)| e.into()));
    if let Err(e) = &closed {
        tracing::warn!(error = %e, "closing the database");
    }
    if let Some(ack) = shutdown {
        let _ = ack.send(closed);
    }
}

/// Copies the WAL's last frames and resets it, between two batches (see [`WalSize`]). Waits
/// at most a few milliseconds for readers of old snapshots; if they hold on, it tries again
/// after a later batch.
fn restart_wal(conn: &Connection, wal_size: &WalSize) {
    let _ = conn.busy_timeout(std::time::Duration::from_millis(10));
    match checkpoint::checkpoint(conn, "RESTART") {
        Ok((0, _, _)) => wal_size.set(0),
        Ok(_) => tracing::debug!("WAL restart deferred: readers hold old snapshots"),
        Err(e) => tracing::warn!(error = %e, "WAL restart"),
    }
    let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
}

fn commit_batch(conn: &Connection, state: &mut WriterState, batch: &mut Vec<Box<dyn Job>>) {
    let began = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]));
    if let Err(e) = began {
        let why = format!("begin: {e}");
        tracing::error!(error = %why, jobs = batch.len(), "batch not started");
        batch.drain(..).for_each(|job| job.finish(Err(&why)));
        return;
    }
    let started = std::time::Instant::now();
    for job in batch.iter_mut() {
        job.run(conn, state);
    }
    let ran = started.elapsed();
    match conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        Ok(_) => {
            tracing::debug!(
                jobs = batch.len(),
                weight = batch.iter().map(|j| j.weight()).sum::<usize>(),
                run_us = ran.as_micros() as u64,
                commit_us = (started.elapsed() - ran).as_micros() as u64,
                "group commit"
            );
            batch.drain(..).for_each(|job| job.finish(Ok(())));
        }
        Err(e) => {
            let why = e.to_string();
            tracing::error!(error = %why, jobs = batch.len(), "commit failed; batch rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            state.invalidate();
            batch.drain(..).for_each(|job| job.finish(Err(&why)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_writer(dir: &std::path::Path) -> WriterHandle {
        let path = dir.join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        spawn(conn, path, 64, 1_000).unwrap()
    }

    fn count(dir: &std::path::Path) -> i64 {
        Connection::open(dir.join("w.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_operation_rolls_back_alone_and_the_batch_commits() {
        let dir = tempfile::TempDir::new().unwrap();
        let writer = std::sync::Arc::new(open_writer(dir.path()));
        let mut calls = Vec::new();
        for i in 0..200i64 {
            let w = writer.clone();
            calls.push(tokio::spawn(async move {
                w.submit(1, Isolation::Savepoint, move |conn, _| {
                    conn.execute("INSERT INTO t (k, v) VALUES (?1, 'first')", [i * 2])?;
                    conn.execute("INSERT INTO t (k, v) VALUES (?1, 'second')", [i * 2 + 1])?;
                    if i % 10 == 0 {
                        // Fails after two writes: both must go.
                        conn.execute("INSERT INTO t (k, v) VALUES (?1, NULL)", [-i - 1])?;
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut ok = 0;
        let mut failed = 0;
        for c in calls {
            match c.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StorageError::Sqlite(_)) => failed += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!((ok, failed), (180, 20));
        assert_eq!(
            count(dir.path()),
            360,
            "exactly the writes of the operations that succeeded"
        );
        writer.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_shutdown_writes_are_refused_and_what_was_accepted_is_kept() {
        let dir = tempfile::TempDir::new().unwrap();
        let writer = open_writer(dir.path());
        writer
            .submit(1, Isolation::SingleStatement, |conn, _| {
                Ok(conn.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])?)
            })
            .await
            .unwrap();
        assert!(writer.accepting());
        writer.shutdown().await.unwrap();
        assert!(!writer.accepting());
        let refused = writer
            .submit(1, Isolation::SingleStatement, |conn, _| {
                Ok(conn.execute("INSERT INTO t (k, v) VALUES (2, 'y')", [])?)
            })
            .await;
        assert!(matches!(refused, Err(StorageError::Closed)));
        assert_eq!(count(dir.path()), 1);
    }
}
