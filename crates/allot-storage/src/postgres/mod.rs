//! The PostgreSQL backend (issue 6), under way: connections and migrations so far. The Store
//! implementation follows; until then `allot serve` runs on SQLite only.

pub mod migrate;

use tokio_postgres::{Client, NoTls};

use crate::StorageError;

/// Opens one connection; its I/O task runs on the current runtime until the client is dropped.
pub async fn connect(url: &str) -> Result<Client, StorageError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}
