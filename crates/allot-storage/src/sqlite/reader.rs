//! A small pool of read-only connections. WAL mode lets them read a consistent snapshot while
//! the writer commits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::StorageError;

pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, readers_max: usize) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::with_capacity(readers_max)),
            permits: Arc::new(Semaphore::new(readers_max)),
        }
    }

    pub(crate) async fn run<T, F>(self: &Arc<Self>, op: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Closed)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = pool.checkout()?;
            let result = op(&conn);
            pool.idle.lock().expect("reader pool lock").push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StorageError::Busy(format!("reader task: {e}")))?
    }

    fn checkout(&self) -> Result<Connection, StorageError> {
        if let Some(conn) = self.idle.lock().expect("reader pool lock").pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "busy_timeout", 5_000)?;
        conn.set_prepared_statement_cache_capacity(super::STATEMENTS_CACHED);
        Ok(conn)
    }
}
