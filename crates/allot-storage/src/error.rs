use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("storage is closed")]
    Closed,
    #[error("storage is busy: {0}")]
    Busy(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
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
}
