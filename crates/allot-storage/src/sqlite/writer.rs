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
//! batch is answered with the error and nothing of the batch is kept. SQLite may also end the
//! transaction by itself (a full disk or an I/O error can roll back all of it): the writer
//! checks after every operation, answers the whole batch failed (nothing of it is kept) and
//! runs none of its later operations, which would otherwise commit one by one outside it. An
//! operation that panics is undone and fails alone; the writer goes on.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::checkpoint::{self, Nudge, WAL_FRAMES_RESTART, WalSize};
use crate::health::WriteHealth;
use crate::{Fault, StorageError};

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

/// Why a batch was not committed, as each of its callers hears it.
struct BatchFailure {
    /// The storage fault behind it, if any: callers then hear `Unavailable` (worth retrying).
    fault: Option<Fault>,
    why: String,
}

impl BatchFailure {
    fn of(e: &StorageError, stage: &str) -> Self {
        BatchFailure {
            fault: e.fault(),
            why: format!("{stage}: {e}"),
        }
    }

    fn error(&self) -> StorageError {
        match self.fault {
            Some(fault) => StorageError::Unavailable {
                fault,
                detail: self.why.clone(),
            },
            None => StorageError::Commit(self.why.clone()),
        }
    }
}

trait Job: Send {
    fn weight(&self) -> usize;
    /// Runs the operation inside the open transaction.
    fn run(&mut self, conn: &Connection, state: &mut WriterState);
    /// The storage fault the operation failed with, if it failed with one.
    fn fault(&self) -> Option<Fault>;
    /// Answers the caller once the fate of the transaction is known.
    fn finish(self: Box<Self>, batch: Result<(), &BatchFailure>);
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
            Isolation::Savepoint => in_savepoint(conn, |conn| guarded(conn, state, op)),
            Isolation::SingleStatement => {
                let before = conn.total_changes();
                let result = guarded(conn, state, op);
                if matches!(result, Err(StorageError::Panicked(_)))
                    && conn.total_changes() != before
                {
                    // It wrote before it panicked and has no savepoint to undo that alone:
                    // undo the whole transaction, which fails the batch (truthfully).
                    abandon(
                        conn,
                        "an operation without a savepoint panicked after writing",
                    );
                }
                result
            }
        }));
    }

    fn fault(&self) -> Option<Fault> {
        match &self.outcome {
            Some(Err(e)) => e.fault(),
            _ => None,
        }
    }

    fn finish(self: Box<Self>, batch: Result<(), &BatchFailure>) {
        let answer = match (self.outcome, batch) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(failure)) | (None, Err(failure)) => Err(failure.error()),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StorageError::Commit("operation never ran".to_owned())),
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

/// Runs `op`, turning a panic into an error of this operation alone: the writer thread, and
/// with it every later write, must not die of one bug. Counted in `/metrics`.
fn guarded<T>(
    conn: &Connection,
    state: &mut WriterState,
    op: impl FnOnce(&Connection, &mut WriterState) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| op(conn, &mut *state))) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(panic = %message, "a write operation panicked; it fails alone");
            metrics::counter!("allot_storage_write_panics_total").increment(1);
            // What it had changed of the caches is not known.
            state.invalidate();
            Err(StorageError::Panicked(message))
        }
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    conn.prepare_cached("SAVEPOINT op")?.execute([])?;
    let result = op(conn);
    if result.is_err()
        && let Err(e) = conn
            .prepare_cached("ROLLBACK TO op")
            .and_then(|mut s| s.execute([]))
    {
        // Its writes cannot be undone alone (SQLite may have ended the transaction already):
        // undo them all. Skipping this would leave them to commit while it is answered failed.
        abandon(conn, &format!("rolling back to the savepoint: {e}"));
        return result;
    }
    if let Err(e) = conn
        .prepare_cached("RELEASE op")
        .and_then(|mut s| s.execute([]))
    {
        abandon(conn, &format!("releasing the savepoint: {e}"));
        return result.and(Err(e.into()));
    }
    result
}

/// Rolls back the whole open transaction (if SQLite has not already): the writer finds it
/// ended after this operation and fails the batch.
fn abandon(conn: &Connection, why: &str) {
    tracing::error!(why, "abandoning the batch's transaction");
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
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
    health: Arc<WriteHealth>,
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
            run(conn, rx, batch_weight_max, &nudge_tx, &wal_size, &health);
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
    health: &WriteHealth,
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
            commit_batch(&conn, &mut state, &mut batch, health);
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

fn commit_batch(
    conn: &Connection,
    state: &mut WriterState,
    batch: &mut Vec<Box<dyn Job>>,
    health: &WriteHealth,
) {
    let began = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]));
    if let Err(e) = began {
        let failure = BatchFailure::of(&e.into(), "begin");
        tracing::error!(error = %failure.why, jobs = batch.len(), "batch not started");
        fail_batch(batch, &failure, health);
        return;
    }
    let started = std::time::Instant::now();
    for i in 0..batch.len() {
        batch[i].run(conn, state);
        if conn.is_autocommit() {
            // The transaction ended under this operation: SQLite rolled all of it back (a
            // full disk, an I/O error) or the operation could not be undone alone. Nothing
            // of the batch is kept, and the operations after it must not run: outside a
            // transaction each would commit on its own while the batch is answered failed.
            let fault = batch[i].fault();
            let failure = BatchFailure {
                fault,
                why: format!(
                    "the transaction was rolled back under an operation ({})",
                    fault.map_or("not a storage fault", Fault::reason)
                ),
            };
            tracing::error!(
                error = %failure.why,
                jobs = batch.len(),
                not_run = batch.len() - i - 1,
                "batch rolled back"
            );
            state.invalidate();
            fail_batch(batch, &failure, health);
            return;
        }
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
            // An operation that failed for lack of space (say) while others committed still
            // tells that writes are failing.
            match batch.iter().find_map(|j| j.fault()) {
                Some(fault) => health.failed(fault),
                None => health.committed(),
            }
            batch.drain(..).for_each(|job| job.finish(Ok(())));
        }
        Err(e) => {
            let failure = BatchFailure::of(&e.into(), "commit");
            tracing::error!(error = %failure.why, jobs = batch.len(), "commit failed; batch rolled back");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            state.invalidate();
            fail_batch(batch, &failure, health);
        }
    }
}

/// Answers every operation of a batch that was not committed.
fn fail_batch(batch: &mut Vec<Box<dyn Job>>, failure: &BatchFailure, health: &WriteHealth) {
    if let Some(fault) = failure
        .fault
        .or_else(|| batch.iter().find_map(|j| j.fault()))
    {
        health.failed(fault);
    }
    batch.drain(..).for_each(|job| job.finish(Err(failure)));
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
        spawn(conn, path, 64, 1_000, Arc::default()).unwrap()
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

    fn table(dir: &std::path::Path) -> Connection {
        let conn = Connection::open(dir.join("w.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        conn
    }

    type Answer<T> = oneshot::Receiver<Result<T, StorageError>>;

    fn job<T, F>(isolation: Isolation, op: F) -> (Box<dyn Job>, Answer<T>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T, StorageError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(OpJob {
            weight: 1,
            origin: None,
            isolation,
            op: Some(op),
            outcome: None,
            reply,
        });
        (job, answer)
    }

    fn insert(k: i64) -> impl FnOnce(&Connection, &mut WriterState) -> Result<(), StorageError> {
        move |conn, _| {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
            Ok(())
        }
    }

    fn keys(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT k FROM t ORDER BY k")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn disk_full() -> StorageError {
        StorageError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".to_owned()),
        ))
    }

    /// SQLite rolls the whole transaction back on some errors (a full disk, an I/O error):
    /// the batch must be answered failed as a storage fault, and the operations after it must
    /// not run (outside a transaction each would commit on its own).
    #[test]
    fn a_transaction_rolled_back_under_an_operation_fails_the_batch_and_runs_no_more() {
        let dir = tempfile::TempDir::new().unwrap();
        let conn = table(dir.path());
        let health = WriteHealth::default();
        let later_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, a_answer) = job(Isolation::SingleStatement, insert(1));
        let (b, b_answer) = job(Isolation::Savepoint, |conn, _| -> Result<(), _> {
            conn.execute("INSERT INTO t (k, v) VALUES (2, 'x')", [])?;
            // What SQLite does on SQLITE_FULL or SQLITE_IOERR in some cases: it ends the
            // transaction, savepoints and all, and reports the error.
            conn.execute_batch("ROLLBACK")?;
            Err(disk_full())
        });
        let ran = later_ran.clone();
        let (c, c_answer) = job(Isolation::SingleStatement, move |conn, state| {
            ran.store(true, std::sync::atomic::Ordering::Relaxed);
            insert(3)(conn, state)
        });
        let mut batch = vec![a, b, c];
        commit_batch(&conn, &mut WriterState::default(), &mut batch, &health);
        for (name, answer) in [("a", a_answer), ("b", b_answer), ("c", c_answer)] {
            let e = answer.blocking_recv().unwrap().unwrap_err();
            assert_eq!(e.fault(), Some(Fault::DiskFull), "{name}: {e}");
        }
        assert!(!later_ran.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(
            keys(&conn),
            Vec::<i64>::new(),
            "nothing of the batch is kept"
        );
        assert_eq!(health.fault(), Some(Fault::DiskFull));
        // The next batch commits and clears the flag.
        let (d, d_answer) = job(Isolation::SingleStatement, insert(4));
        commit_batch(&conn, &mut WriterState::default(), &mut vec![d], &health);
        d_answer.blocking_recv().unwrap().unwrap();
        assert_eq!(keys(&conn), vec![4]);
        assert_eq!(health.fault(), None);
    }

    /// An operation whose savepoint cannot be rolled back must not have its writes committed
    /// while it is answered failed: the whole batch is undone instead.
    #[test]
    fn an_operation_that_cannot_be_undone_alone_undoes_the_batch() {
        let dir = tempfile::TempDir::new().unwrap();
        let conn = table(dir.path());
        let health = WriteHealth::default();
        let (a, a_answer) = job(Isolation::SingleStatement, insert(1));
        let (b, b_answer) = job(Isolation::Savepoint, |conn, _| -> Result<(), _> {
            conn.execute("INSERT INTO t (k, v) VALUES (2, 'x')", [])?;
            // Its savepoint is gone, so `ROLLBACK TO` fails.
            conn.execute_batch("RELEASE op")?;
            Err(StorageError::Corrupt("refused after writing".to_owned()))
        });
        let mut batch = vec![a, b];
        commit_batch(&conn, &mut WriterState::default(), &mut batch, &health);
        assert!(a_answer.blocking_recv().unwrap().is_err());
        assert!(b_answer.blocking_recv().unwrap().is_err());
        assert_eq!(keys(&conn), Vec::<i64>::new());
        assert_eq!(health.fault(), None, "not a storage fault");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_operation_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::TempDir::new().unwrap();
        let writer = Arc::new(open_writer(dir.path()));
        let w = writer.clone();
        let slow = tokio::spawn(async move {
            w.submit(1, Isolation::SingleStatement, |conn, _| {
                // Holds the writer so that the next three share one batch.
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok(conn.execute("INSERT INTO t (k, v) VALUES (0, 'x')", [])?)
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let submit = |k: i64, isolation: Isolation, panics: bool| {
            let w = writer.clone();
            tokio::spawn(async move {
                w.submit(1, isolation, move |conn, _| {
                    conn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
                    if panics {
                        panic!("a bug in operation {k}");
                    }
                    Ok(())
                })
                .await
            })
        };
        let a = submit(1, Isolation::Savepoint, false);
        let b = submit(2, Isolation::Savepoint, true);
        let c = submit(3, Isolation::SingleStatement, false);
        slow.await.unwrap().unwrap();
        a.await.unwrap().unwrap();
        assert!(matches!(b.await.unwrap(), Err(StorageError::Panicked(_))));
        c.await.unwrap().unwrap();
        assert_eq!(
            count(dir.path()),
            3,
            "the panicking operation's write is undone"
        );
        // The writer still serves.
        writer
            .submit(1, Isolation::SingleStatement, |conn, _| {
                Ok(conn.execute("INSERT INTO t (k, v) VALUES (9, 'x')", [])?)
            })
            .await
            .unwrap();
        assert_eq!(count(dir.path()), 4);
        writer.shutdown().await.unwrap();
    }

    /// A database at its size limit: every write answered `Ok` is stored, every write
    /// answered failed is not and is told as a storage fault, and writes commit again once
    /// space is freed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_database_answers_each_write_truthfully_and_recovers() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("w.db");
        let conn = table(dir.path());
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages + 20)
            .unwrap();
        let health = Arc::new(WriteHealth::default());
        let writer = Arc::new(spawn(conn, path.clone(), 64, 1_000, health.clone()).unwrap());
        let mut calls = Vec::new();
        for k in 0..400i64 {
            let w = writer.clone();
            calls.push(tokio::spawn(async move {
                let answer = w
                    .submit(1, Isolation::Savepoint, move |conn, _| {
                        conn.execute(
                            "INSERT INTO t (k, v) VALUES (?1, hex(randomblob(500)))",
                            [k],
                        )?;
                        Ok(())
                    })
                    .await;
                (k, answer)
            }));
        }
        let mut stored = Vec::new();
        let mut failed = 0;
        for c in calls {
            match c.await.unwrap() {
                (k, Ok(())) => stored.push(k),
                (_, Err(e)) => {
                    assert_eq!(e.fault(), Some(Fault::DiskFull), "{e}");
                    failed += 1;
                }
            }
        }
        assert!(failed > 0 && !stored.is_empty(), "{failed} failed");
        stored.sort();
        let reader = Connection::open(&path).unwrap();
        assert_eq!(keys(&reader), stored, "exactly the writes answered Ok");
        // A small write may still fit in a page with room (and clear the flag); one that
        // needs more fresh pages than the whole allowance (20) cannot, however full the
        // failed batches left it (a 20,000-byte write fitted now and then).
        let big = writer
            .submit(1, Isolation::Savepoint, |conn, _| {
                Ok(conn.execute(
                    "INSERT INTO t (k, v) VALUES (-2, hex(randomblob(200000)))",
                    [],
                )?)
            })
            .await
            .unwrap_err();
        assert_eq!(big.fault(), Some(Fault::DiskFull), "{big}");
        assert_eq!(health.fault(), Some(Fault::DiskFull));
        // Space comes back (rows deleted elsewhere): writes commit and the flag clears.
        reader.execute("DELETE FROM t", []).unwrap();
        writer
            .submit(1, Isolation::Savepoint, |conn, _| {
                Ok(conn.execute("INSERT INTO t (k, v) VALUES (-1, hex(randomblob(500)))", [])?)
            })
            .await
            .unwrap();
        assert_eq!(health.fault(), None);
        writer.shutdown().await.unwrap();
    }

    /// Counts `allot_storage_write_panics_total` on the thread that records it.
    struct PanicCounter(Arc<std::sync::atomic::AtomicU64>);

    impl metrics::Recorder for PanicCounter {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            if key.name() == "allot_storage_write_panics_total" {
                metrics::Counter::from_arc(self.0.clone())
            } else {
                metrics::Counter::noop()
            }
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    /// A panic is counted for `/metrics`; one in an operation without a savepoint that had
    /// written already undoes the batch rather than commit a write answered failed.
    #[test]
    fn panics_are_counted_and_never_leave_a_write_answered_failed() {
        let dir = tempfile::TempDir::new().unwrap();
        let conn = table(dir.path());
        let health = WriteHealth::default();
        let panics = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let recorder = PanicCounter(panics.clone());
        metrics::with_local_recorder(&recorder, || {
            let (a, a_answer) = job(Isolation::SingleStatement, insert(1));
            let (b, b_answer) = job(Isolation::Savepoint, |conn, state| -> Result<(), _> {
                insert(2)(conn, state)?;
                panic!("a bug after a write, in a savepoint");
            });
            let (c, c_answer) = job(Isolation::SingleStatement, insert(3));
            commit_batch(
                &conn,
                &mut WriterState::default(),
                &mut vec![a, b, c],
                &health,
            );
            a_answer.blocking_recv().unwrap().unwrap();
            assert!(matches!(
                b_answer.blocking_recv().unwrap(),
                Err(StorageError::Panicked(_))
            ));
            c_answer.blocking_recv().unwrap().unwrap();
            assert_eq!(
                keys(&conn),
                vec![1, 3],
                "the panicking operation alone is undone"
            );

            let (d, d_answer) = job(Isolation::SingleStatement, insert(4));
            let (e, e_answer) = job(Isolation::SingleStatement, |conn, state| -> Result<(), _> {
                insert(5)(conn, state)?;
                panic!("a bug after a write, without a savepoint");
            });
            commit_batch(&conn, &mut WriterState::default(), &mut vec![d, e], &health);
            assert!(d_answer.blocking_recv().unwrap().is_err());
            assert!(matches!(
                e_answer.blocking_recv().unwrap(),
                Err(StorageError::Panicked(_))
            ));
            assert_eq!(keys(&conn), vec![1, 3], "nothing answered failed is kept");
        });
        assert_eq!(panics.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(health.fault(), None, "a bug is not a storage fault");
    }
}
