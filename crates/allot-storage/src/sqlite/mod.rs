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
mod migrate;
mod notification;
mod order;
mod personal;
mod reader;
mod sale;
mod user;
mod webhook;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignId, CouponCode};
use allot_domain::coupon::{CouponType, UploadedCode};
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::sale::CheckoutCode;
use allot_domain::user::UserId;
use async_trait::async_trait;
use rusqlite::Connection;

use crate::crypto::{Cipher, DataKey};
use crate::{
    Allocation, Campaign, CheckoutOutcome, CheckoutRequest, Coupon, CouponCounters,
    DiscountCodeRecord, ExistingCodes, IssueOutcome, IssueRequest, IssuedCoupon, NewCampaign,
    NewCoupon, NewSale, Purchase, RedeemOutcome, Redemption, RedemptionFilter, Sale, SaleItem,
    StorageError, Store,
};
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
    Ok(())
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

    async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
    ) -> Result<Vec<DiscountCode>, StorageError> {
        self.write(count.get() as usize, move |conn, _| {
            discount::generate(conn, length, count, now)
        })
        .await
    }

    async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError> {
        let code = code.clone();
        self.write(1, move |conn, _| discount::use_code(conn, &code, now, None))
            .await
    }

    async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError> {
        let code = code.clone();
        self.read(move |conn| discount::get(conn, &code)).await
    }

    async fn create_campaign(
        &self,
        new: NewCampaign,
        now: UnixMillis,
    ) -> Result<Campaign, StorageError> {
        self.write(1, move |conn, _| campaign::create(conn, &new, now))
            .await
    }

    async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StorageError> {
        self.read(move |conn| campaign::get(conn, id)).await
    }

    async fn issue_coupon(&self, request: IssueRequest) -> Result<IssueOutcome, StorageError> {
        self.write(1, move |conn, state| campaign::issue(conn, state, &request))
            .await
    }

    async fn campaign_coupons(
        &self,
        id: CampaignId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IssuedCoupon>, StorageError> {
        self.read(move |conn| campaign::coupons(conn, id, after_seq, limit))
            .await
    }

    async fn campaign_codes(
        &self,
        id: CampaignId,
        holder: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<CouponCode>, StorageError> {
        self.read(move |conn| campaign::codes(conn, id, holder.as_ref(), limit))
            .await
    }

    async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError> {
        let weight = coupons.len();
        self.write(weight, move |conn, _| coupon::upload(conn, &coupons, now))
            .await
    }

    async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError> {
        self.read(move |conn| coupon::existing(conn, codes)).await
    }

    async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError> {
        self.write(1, move |conn, _| {
            coupon::allocate(conn, &user, coupon_type, now)
        })
        .await
    }

    async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError> {
        let code = code.clone();
        self.read(move |conn| coupon::get(conn, code.as_str()))
            .await
    }

    async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
    ) -> Result<RedeemOutcome, StorageError> {
        let code = code.clone();
        self.write(1, move |conn, _| {
            coupon::redeem(conn, code.as_str(), &user, now, None)
        })
        .await
    }

    async fn redemptions(&self, filter: RedemptionFilter) -> Result<Vec<Redemption>, StorageError> {
        self.read(move |conn| coupon::redemptions(conn, &filter))
            .await
    }

    async fn coupon_counters(&self, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError> {
        self.read(move |conn| coupon::counters(conn, now)).await
    }

    async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError> {
        self.write(1_000, move |conn, _| coupon::purge(conn, now, trigger))
            .await
    }

    async fn open_sale(&self, new: NewSale, now: UnixMillis) -> Result<Sale, StorageError> {
        self.write(new.items as usize, move |conn, _| {
            sale::open(conn, new, now)
        })
        .await
    }

    async fn sale_starting_at(&self, start: UnixMillis) -> Result<Option<Sale>, StorageError> {
        self.read(move |conn| sale::by_start(conn, start)).await
    }

    async fn sale(&self, id: i64) -> Result<Option<Sale>, StorageError> {
        self.read(move |conn| sale::by_id(conn, id)).await
    }

    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutOutcome, StorageError> {
        self.write(1, move |conn, _| sale::checkout(conn, &request))
            .await
    }

    async fn purchase(
        &self,
        code: CheckoutCode,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<Purchase, StorageError> {
        self.write(1, move |conn, _| {
            sale::purchase(conn, &code, user_limit, now)
        })
        .await
    }

    async fn sale_items(
        &self,
        sale_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SaleItem>, StorageError> {
        self.read(move |conn| sale::items(conn, sale_id, after_id, limit))
            .await
    }

    async fn sale_purchases(
        &self,
        sale_id: i64,
        user: UserId,
    ) -> Result<Vec<SaleItem>, StorageError> {
        self.read(move |conn| sale::purchases(conn, sale_id, user.as_str()))
            .await
    }

    async fn claim_job_run(
        &self,
        job: &'static str,
        now: UnixMillis,
        spacing_ms: i64,
    ) -> Result<bool, StorageError> {
        self.write_one(move |conn, _| {
            let changed = conn
                .prepare_cached(
                    "INSERT INTO job_runs (job, last_run_ms) VALUES (?1, ?2)
                     ON CONFLICT (job) DO UPDATE SET last_run_ms = excluded.last_run_ms
                     WHERE job_runs.last_run_ms <= ?2 - ?3",
                )?
                .execute(rusqlite::params![job, now.as_millis(), spacing_ms])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn close(&self) -> Result<(), StorageError> {
        self.writer.shutdown().await
    }
}
