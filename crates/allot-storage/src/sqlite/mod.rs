//! The embedded backend: one SQLite database file in WAL mode under the data directory.
//!
//! Writes go through one writer thread ([`writer`]) that commits many operations per
//! transaction with `synchronous=FULL`, so each acknowledged write is fsync'd. Reads use a
//! small pool of read-only connections, which WAL lets run beside the writer.

mod campaign;
mod catalog;
mod checkpoint;
mod coupon;
mod discount;
mod event;
mod idempotency;
mod inventory;
mod job;
mod migrate;
mod notification;
mod order;
mod overview;
mod payment;
mod personal;
mod promotion;
mod reader;
mod sale;
mod sale_basket;
mod shipment;
mod user;
mod webhook;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::Connection;

use crate::crypto::{Cipher, DataKey};
use crate::{StorageError, Store};
use reader::ReadPool;
use writer::{Isolation, WriterHandle, WriterState};

pub const DATABASE_FILE: &str = "allot.db";
/// Pages of 4 KiB (see `configure_writer`) in one MiB.
const PAGES_PER_MB: u64 = 256;
/// Bytes the write probe of `/ready` stores and removes: a few fresh pages, so that it fails
/// while the disk (or the size limit) has no room for new rows.
const PROBE_WRITE_BYTES: i64 = 8_192;
const LOCK_FILE: &str = "LOCK";

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub data_dir: PathBuf,
    /// Work units (rows, roughly) one group commit may hold before it is committed.
    pub batch_rows_max: usize,
    /// Operations that may wait for the writer before callers are held back.
    pub queue_capacity: usize,
    /// Read connections open at most.
    pub readers_max: usize,
    /// The key personal data is sealed under; `None` uses the data directory's `data.key`,
    /// generated on first start (with a warning: production should configure the key).
    pub data_key: Option<DataKey>,
    /// The database file may grow to this many MiB at most (`None`: as far as the disk
    /// allows). Writes that need more space fail as a full disk would (503
    /// `storage_unavailable`): a bound that keeps a shared disk from filling up.
    pub size_max_mb: Option<u64>,
}

impl SqliteOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        SqliteOptions {
            data_dir: data_dir.into(),
            batch_rows_max: 20_000,
            queue_capacity: 65_536,
            readers_max: 8,
            data_key: None,
            size_max_mb: None,
        }
    }
}

pub struct SqliteStore {
    writer: WriterHandle,
    /// Set by the writer when a batch fails for a storage fault, cleared by the next commit.
    health: Arc<crate::WriteHealth>,
    readers: Arc<ReadPool>,
    /// Seals and opens personal data (emails, addresses, stored answers).
    cipher: Arc<Cipher>,
    /// Held (with an exclusive OS lock) for the life of the store, so that two processes never
    /// share one data directory.
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database under `options.data_dir`.
    pub fn open(options: SqliteOptions) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&options.data_dir)?;
        let lock = lock_data_dir(&options.data_dir)?;
        let path = options.data_dir.join(DATABASE_FILE);

        let key = match options.data_key {
            Some(key) => key,
            None => {
                let (key, created) = DataKey::load_or_create_file(&options.data_dir)?;
                let file = options.data_dir.join(crate::crypto::DATA_KEY_FILE);
                if created {
                    tracing::warn!(
                        file = %file.display(),
                        "no data key configured: generated one for the personal data; \
                         configure data_key (ALLOT_DATA_KEY) in production and keep it safe"
                    );
                } else {
                    tracing::warn!(
                        file = %file.display(),
                        "no data key configured: using the one kept in the data directory"
                    );
                }
                key
            }
        };
        let cipher = Arc::new(Cipher::new(&key));

        let mut conn = Connection::open(&path)?;
        configure_writer(&conn)?;
        if let Some(mb) = options.size_max_mb {
            // max_page_count is the connection's own bound: the writer's is the one that
            // counts, as every write goes through it.
            conn.pragma_update(None, "max_page_count", mb.saturating_mul(PAGES_PER_MB))?;
        }
        migrate::apply(&mut conn)?;
        let sealed = personal::prepare(&mut conn, &cipher)?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "sealed personal data written before encryption at rest"
            );
        }
        // No claim outlives its server: the data directory is this process's alone (locked
        // above), so a key claimed and never answered was claimed by a server that stopped
        // first. Given up now, a retry is served at once instead of waiting the claim out.
        let released = conn.execute("DELETE FROM idempotency_keys WHERE status IS NULL", [])?;
        if released > 0 {
            tracing::info!(
                released,
                "gave up the idempotency keys a stopped server claimed and never answered"
            );
        }

        let health = Arc::new(crate::WriteHealth::default());
        let writer = writer::spawn(
            conn,
            path.clone(),
            options.queue_capacity,
            options.batch_rows_max,
            health.clone(),
        )?;
        let readers = Arc::new(ReadPool::new(path, options.readers_max));
        Ok(SqliteStore {
            writer,
            health,
            readers,
            cipher,
            _lock: lock,
        })
    }

    /// Writes a consistent copy of the database under `data_dir` to `out`, safe while a server
    /// runs on it: `VACUUM INTO` reads one snapshot (WAL keeps it stable while the writer goes
    /// on) through a read-only connection. The copy is then checked with `integrity_check`.
    /// Answers the copy's size in bytes.
    pub fn backup(data_dir: &Path, out: &Path) -> Result<u64, StorageError> {
        if out.exists() {
            return Err(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists; choose a new file", out.display()),
            )));
        }
        let source = Connection::open_with_flags(
            Self::database_path(data_dir),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        source.busy_timeout(std::time::Duration::from_secs(30))?;
        let target = out
            .to_str()
            .ok_or_else(|| StorageError::Corrupt("the backup path is not UTF-8".to_owned()))?;
        source.execute("VACUUM INTO ?1", [target])?;
        let copy = Connection::open_with_flags(out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StorageError::Corrupt(format!(
                "the backup fails its integrity check: {check}"
            )));
        }
        Ok(std::fs::metadata(out)?.len())
    }

    /// The database file of a data directory, for tools and tests that inspect it directly.
    pub fn database_path(data_dir: &Path) -> PathBuf {
        data_dir.join(DATABASE_FILE)
    }

    /// Runs `op` in the writer's next group commit, in its own savepoint.
    async fn write<T, F>(&self, weight: usize, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T, StorageError> + Send + 'static,
    {
        self.writer.submit(weight, Isolation::Savepoint, op).await
    }

    /// Like [`Self::write`] for an operation that makes at most one write statement.
    async fn write_one<T, F>(&self, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T, StorageError> + Send + 'static,
    {
        self.writer.submit(1, Isolation::SingleStatement, op).await
    }

    async fn read<T, F>(&self, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        self.readers.run(op).await
    }
}

fn lock_data_dir(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Locked {
            path: dir.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn configure_writer(conn: &Connection) -> Result<(), StorageError> {
    // WAL lets readers run beside the writer. synchronous=FULL fsyncs the WAL at every commit:
    // a commit that returned is on disk, which is what every acknowledgement relies on.
    // 4 KiB pages (SQLite's default), chosen by measurement: 1 KiB pages gave campaign issues
    // about +15% (fewer bytes per dirtied page) but bulk code generation about -20% (four
    // times the WAL frames, two writes each). See docs/PERFORMANCE.md.
    conn.pragma_update(None, "page_size", 4096)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "busy_timeout", 5_000)?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    Ok(())
}

/// Prepared statements a connection keeps (rusqlite keeps 16 by default, least recently used
/// first out). An order alone runs more distinct statements than that, so with the default
/// every order prepared most of its statements again: profiled, 31% of the server's CPU on
/// orders (docs/PERFORMANCE.md, "Where the CPU goes"). The store has about 300 statements in
/// all; a prepared statement costs a few KiB.
pub(super) const STATEMENTS_CACHED: usize = 512;

/// Runs `op` in a savepoint of its own that is rolled back if it fails or refuses, so that an
/// operation which wrote before it decided (a stock row made for an adjustment that is then
/// refused) leaves nothing behind when it answers a refusal: the writer keeps an operation's
/// savepoint whenever it answers `Ok`, and a refusal is an `Ok` answer.
pub(super) fn all_or_nothing<T, R>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<Result<T, R>, StorageError>,
) -> Result<Result<T, R>, StorageError> {
    conn.prepare_cached("SAVEPOINT allot_refusable")?
        .execute([])?;
    let result = op(conn);
    let undone = if matches!(result, Ok(Ok(_))) {
        Ok(())
    } else {
        conn.prepare_cached("ROLLBACK TO allot_refusable")
            .and_then(|mut s| s.execute([]))
            .map(drop)
    };
    let released = undone.and_then(|()| {
        conn.prepare_cached("RELEASE allot_refusable")
            .and_then(|mut s| s.execute([]))
            .map(drop)
    });
    match (result, released) {
        // The operation's own error says why: a full disk makes SQLite end the whole
        // transaction, savepoints included, and the rollback's "no such savepoint" would hide
        // the fault (the caller must hear 503 storage_unavailable, not an internal error).
        (Err(e), _) => Err(e),
        (result, Ok(())) => result,
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn accepting_writes(&self) -> bool {
        self.writer.accepting()
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    fn write_fault(&self) -> Option<crate::Fault> {
        self.health.fault()
    }

    async fn probe_write(&self) -> Result<(), StorageError> {
        self.write(1, |conn, _| {
            conn.execute(
                "INSERT INTO job_runs (job, last_run_ms)
                 VALUES ('ready-probe:' || hex(randomblob(?1 / 2)), 0)",
                [PROBE_WRITE_BYTES],
            )?;
            conn.execute("DELETE FROM job_runs WHERE job LIKE 'ready-probe:%'", [])?;
            Ok(())
        })
        .await
    }

    async fn close(&self) -> Result<(), StorageError> {
        self.writer.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// SQLite may end the whole transaction under a statement that finds the disk full,
    /// savepoints included: the operation's own error (a storage fault, answered 503) is what
    /// its caller hears, not the failed rollback's "no such savepoint" (an internal error).
    #[test]
    fn a_transaction_ended_under_an_all_or_nothing_operation_keeps_its_error() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let result: Result<Result<(), ()>, crate::StorageError> =
            super::all_or_nothing(&conn, |conn| {
                conn.execute_batch("ROLLBACK")?;
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    None,
                )
                .into())
            });
        let e = result.unwrap_err();
        assert_eq!(e.fault(), Some(crate::Fault::DiskFull), "{e}");
    }

    /// The statements the backends share are written with PostgreSQL's `$N`. SQLite numbers
    /// such parameters by their first appearance, not by N, so each must bind `$1`, `$2`, ...
    /// in that order here too; and each must be valid on the migrated schema.
    #[test]
    fn shared_statements_bind_their_parameters_by_number() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::migrate::apply(&mut conn).unwrap();
        let shared = [
            crate::discount::sql::ALL,
            crate::campaign::sql::ALL,
            crate::coupon::sql::ALL,
            crate::sale::sql::ALL,
            crate::sale_basket::sql::ALL,
            crate::overview::sql::ALL,
            &[crate::job::CLAIM_SQL],
            crate::promotion::stored::ALL,
            crate::payment::sql::ALL,
            crate::shipment::sql::ALL,
        ];
        for sql in shared.into_iter().flatten() {
            let stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            for i in 1..=stmt.parameter_count() {
                assert_eq!(
                    stmt.parameter_name(i),
                    Some(format!("${i}").as_str()),
                    "{sql}"
                );
            }
        }
    }
}
