use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage is closed")]
    Closed,
    #[error("storage is busy: {0}")]
    Busy(String),
    /// The database cannot take the operation now (disk full, I/O error, unreachable); it
    /// is worth retrying later. Made where a batch's failure is answered to each caller.
    #[error("storage unavailable ({}): {detail}", fault.reason())]
    Unavailable { fault: Fault, detail: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A TLS handshake with the database failed: "TLS to db.example:5432: certificate not
    /// trusted (UnknownIssuer)". Never retried in cleartext.
    #[error("{0}")]
    TlsRefused(String),
    /// A setting of the storage does not parse or names a file that does not read.
    #[error("{0}")]
    Settings(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        source: Box<StorageError>,
    },
    #[error("data directory {path} is in use by another allot process")]
    Locked { path: String },
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The data key is missing, malformed, or not the one the database was written with.
    #[error("data key: {0}")]
    DataKey(String),
    /// The operation panicked (a bug of ours); it was undone and failed alone.
    #[error("the operation panicked: {0}")]
    Panicked(String),
}

/// Why storage cannot serve now: a fault of the database's environment, not of the request
/// nor of our code. Answered 503 `storage_unavailable` with `Retry-After`, and `/ready`
/// fails while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No space left for the database (a full disk, or the configured size limit).
    DiskFull,
    /// The disk failed a read or a write.
    Io,
    /// Locked or overloaded beyond the time we wait.
    Busy,
    /// The database server cannot be reached or is shutting down.
    Unreachable,
    /// This process's storage is shut down.
    Closed,
    /// The database's TLS certificate was refused (or ours was): not retried in cleartext.
    TlsRefused,
    /// The connection was lost while a transaction committed: the write may have been made
    /// or not, nobody here can tell. Answered 503 `storage_outcome_unknown` (never
    /// `storage_unavailable`, which promises nothing was written): a retry with the same
    /// idempotency key finds out.
    CommitLost,
}

impl Fault {
    /// A short reason for clients and probes; the detail goes to the log.
    pub fn reason(self) -> &'static str {
        match self {
            Fault::DiskFull => "the database has no space left",
            Fault::Io => "the disk failed a read or a write",
            Fault::Busy => "the database is busy",
            Fault::Unreachable => "the database cannot be reached",
            Fault::Closed => "storage is shut down",
            Fault::TlsRefused => "the TLS handshake with the database failed",
            Fault::CommitLost => {
                "the connection to the database was lost while committing: the write may have \
                 been made; retry with the same idempotency key to find out"
            }
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Fault::DiskFull => 1,
            Fault::Io => 2,
            Fault::Busy => 3,
            Fault::Unreachable => 4,
            Fault::Closed => 5,
            Fault::TlsRefused => 6,
            Fault::CommitLost => 7,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<Fault> {
        match v {
            1 => Some(Fault::DiskFull),
            2 => Some(Fault::Io),
            3 => Some(Fault::Busy),
            4 => Some(Fault::Unreachable),
            5 => Some(Fault::Closed),
            6 => Some(Fault::TlsRefused),
            7 => Some(Fault::CommitLost),
            _ => None,
        }
    }
}

impl StorageError {
    /// The storage fault behind this error, if it is one (`None`: a bug, bad data, a
    /// constraint: retrying will not help).
    pub fn fault(&self) -> Option<Fault> {
        match self {
            StorageError::Closed => Some(Fault::Closed),
            StorageError::Busy(_) => Some(Fault::Busy),
            StorageError::Unavailable { fault, .. } => Some(*fault),
            StorageError::Sqlite(e) => sqlite_fault(e),
            StorageError::Postgres(e) => postgres_fault(e),
            StorageError::TlsRefused(_) => Some(Fault::TlsRefused),
            StorageError::Migration { source, .. } => source.fault(),
            StorageError::Io(_)
            | StorageError::Locked { .. }
            | StorageError::Commit(_)
            | StorageError::Corrupt(_)
            | StorageError::DataKey(_)
            | StorageError::Settings(_)
            | StorageError::Panicked(_) => None,
        }
    }

    /// The refusal of a TLS handshake ("TLS to host:port: reason"), said to probes as it is:
    /// whoever reads `/ready` must know which host and why, to fix a certificate.
    pub fn tls_refusal(&self) -> Option<&str> {
        match self {
            StorageError::TlsRefused(m) => Some(m),
            StorageError::Unavailable {
                fault: Fault::TlsRefused,
                detail,
            } => Some(detail),
            _ => None,
        }
    }

    /// The same failure for every caller of a failed batch: a storage fault stays one.
    pub fn for_each_caller(&self) -> StorageError {
        match self {
            StorageError::Closed => StorageError::Closed,
            StorageError::Busy(m) => StorageError::Busy(m.clone()),
            StorageError::Corrupt(m) => StorageError::Corrupt(m.clone()),
            other => match other.fault() {
                Some(fault) => StorageError::Unavailable {
                    fault,
                    detail: other.to_string(),
                },
                None => StorageError::Commit(other.to_string()),
            },
        }
    }
}

fn sqlite_fault(e: &rusqlite::Error) -> Option<Fault> {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code()? {
        ErrorCode::DiskFull => Some(Fault::DiskFull),
        // A read-only file system or a database file that vanished is the disk's fault too.
        ErrorCode::SystemIoFailure | ErrorCode::CannotOpen | ErrorCode::ReadOnly => Some(Fault::Io),
        // Only after busy_timeout: the lock was held longer than we wait.
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Fault::Busy),
        _ => None,
    }
}

/// tokio-postgres's message with its cause: its own says only what failed ("db error",
/// "error connecting to server"), the cause says why.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn postgres_fault(e: &tokio_postgres::Error) -> Option<Fault> {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        // No SQL error from the server: the connection failed (database down, network).
        return Some(Fault::Unreachable);
    };
    let code = db.code();
    if code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        // The session ended by the server's idle-in-transaction or idle-session timeout.
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
        || *code == SqlState::IDLE_SESSION_TIMEOUT
    {
        Some(Fault::Unreachable)
    } else if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
        // The statement or lock timeout: the database is slower than we wait.
        Some(Fault::Busy)
    } else if *code == SqlState::DISK_FULL {
        Some(Fault::DiskFull)
    } else if *code == SqlState::IO_ERROR {
        Some(Fault::Io)
    } else if *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::INSUFFICIENT_RESOURCES
        || *code == SqlState::OUT_OF_MEMORY
    {
        Some(Fault::Busy)
    } else {
        None
    }
}
