//! A connection that keeps its prepared statements.
//!
//! tokio-postgres runs a statement given as text in two round trips: it prepares it (Parse,
//! Describe), waits for the answer, then binds and executes it, and closes it afterwards; the
//! server parses and plans it each time. A statement prepared once and kept is bound and
//! executed in one round trip, and the server keeps its parse (and, once it finds a generic
//! plan as good as a custom one, its plan). This is the only way this backend reaches the
//! database: [`Conn`] for a connection, [`Tx`] for a transaction on one, both [`Db`].
//!
//! Kept per connection (a statement belongs to the session that prepared it), by its text, at
//! most [`KEPT`] of them; past that a statement runs the two-round-trip way. A statement the
//! server no longer knows, or whose kept plan the schema changed under (another instance
//! migrated), fails once; every statement of the connection is forgotten then and prepared
//! again on its next use.
//!
//! Written here rather than taken from a pool crate: the store's connections are its own
//! (one per slot, reopened in place, batch queues on their own), and what is needed of a pool
//! is only this cache.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, IsolationLevel, Row, Statement, Transaction};

/// Statements kept per connection at most: every statement text this backend has, with room
/// for the few made from a template (a list of columns, an `IN` of a given length).
pub(super) const KEPT: usize = 512;

/// The statements one connection has prepared, by text.
#[derive(Default)]
struct Statements(Mutex<HashMap<String, Statement>>);

impl Statements {
    fn get(&self, sql: &str) -> Option<Statement> {
        self.0.lock().ok()?.get(sql).cloned()
    }

    fn keep(&self, sql: &str, statement: &Statement) {
        if let Ok(mut kept) = self.0.lock()
            && kept.len() < KEPT
        {
            kept.insert(sql.to_owned(), statement.clone());
        }
    }

    /// Forgets every statement after `error` if it says the server's copy is gone or stale.
    fn observe(&self, error: &Error) {
        let stale = matches!(
            error.code(),
            Some(&SqlState::INVALID_SQL_STATEMENT_NAME) | Some(&SqlState::FEATURE_NOT_SUPPORTED)
        );
        if stale && let Ok(mut kept) = self.0.lock() {
            kept.clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map_or(0, |kept| kept.len())
    }
}

/// One connection to PostgreSQL and the statements it has prepared.
pub(crate) struct Conn {
    client: Client,
    statements: Statements,
}

impl Conn {
    pub(super) fn new(client: Client) -> Conn {
        Conn {
            client,
            statements: Statements::default(),
        }
    }

    /// Whether the connection is gone (the server restarted, the network dropped it).
    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Starts a transaction (read committed, read-write).
    pub(super) async fn transaction(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: self.client.transaction().await?,
            statements: &self.statements,
        })
    }

    /// Starts a read-only transaction that reads one snapshot throughout (repeatable read).
    pub(super) async fn snapshot(&mut self) -> Result<Tx<'_>, Error> {
        Ok(Tx {
            tx: self
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?,
            statements: &self.statements,
        })
    }
}

/// A transaction on a [`Conn`], using (and adding to) its statements.
pub(crate) struct Tx<'a> {
    tx: Transaction<'a>,
    statements: &'a Statements,
}

impl<'a> Tx<'a> {
    /// The transaction itself, to commit it (see [`super::commit`]).
    pub(super) fn into_inner(self) -> Transaction<'a> {
        self.tx
    }

    pub(super) async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }
}

/// What runs statements: a connection or a transaction on one.
#[async_trait]
pub(crate) trait Db: Send + Sync {
    #[doc(hidden)]
    fn session(&self) -> Session<'_>;

    /// Runs `sql` and returns its rows.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        let session = self.session();
        let statement = session.statement(sql).await?;
        let rows = session.raw.query(&statement, params).await;
        session.observe(rows)
    }

    /// Runs `sql`, which must return exactly one row.
    async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        let session = self.session();
        let statement = session.statement(sql).await?;
        let row = session.raw.query_one(&statement, params).await;
        session.observe(row)
    }

    /// Runs `sql`, which returns at most one row.
    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let session = self.session();
        let statement = session.statement(sql).await?;
        let row = session.raw.query_opt(&statement, params).await;
        session.observe(row)
    }

    /// Runs `sql` and returns the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let session = self.session();
        let statement = session.statement(sql).await?;
        let changed = session.raw.execute(&statement, params).await;
        session.observe(changed)
    }

    /// Runs `sql`, one or more statements without parameters, by the simple protocol (never
    /// kept).
    async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.session().raw.batch_execute(sql).await
    }
}

/// A connection or transaction with its connection's statements (what [`Db`] works on).
#[doc(hidden)]
pub(crate) struct Session<'a> {
    raw: Raw<'a>,
    statements: &'a Statements,
}

enum Raw<'a> {
    Client(&'a Client),
    Tx(&'a Transaction<'a>),
}

impl Session<'_> {
    /// The kept statement for `sql`, prepared (and kept) first if it is not.
    async fn statement(&self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement);
        }
        let statement = self.observe(self.raw.prepare(sql).await)?;
        self.statements.keep(sql, &statement);
        Ok(statement)
    }

    fn observe<T>(&self, outcome: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &outcome {
            self.statements.observe(e);
        }
        outcome
    }
}

impl Raw<'_> {
    async fn prepare(&self, sql: &str) -> Result<Statement, Error> {
        match self {
            Raw::Client(c) => c.prepare(sql).await,
            Raw::Tx(t) => t.prepare(sql).await,
        }
    }

    async fn query(&self, s: &Statement, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        match self {
            Raw::Client(c) => c.query(s, p).await,
            Raw::Tx(t) => t.query(s, p).await,
        }
    }

    async fn query_one(&self, s: &Statement, p: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        match self {
            Raw::Client(c) => c.query_one(s, p).await,
            Raw::Tx(t) => t.query_one(s, p).await,
        }
    }

    async fn query_opt(
        &self,
        s: &Statement,
        p: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        match self {
            Raw::Client(c) => c.query_opt(s, p).await,
            Raw::Tx(t) => t.query_opt(s, p).await,
        }
    }

    async fn execute(&self, s: &Statement, p: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        match self {
            Raw::Client(c) => c.execute(s, p).await,
            Raw::Tx(t) => t.execute(s, p).await,
        }
    }

    async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        match self {
            Raw::Client(c) => c.batch_execute(sql).await,
            Raw::Tx(t) => t.batch_execute(sql).await,
        }
    }
}

impl Db for Conn {
    fn session(&self) -> Session<'_> {
        Session {
            raw: Raw::Client(&self.client),
            statements: &self.statements,
        }
    }
}

impl Db for Tx<'_> {
    fn session(&self) -> Session<'_> {
        Session {
            raw: Raw::Tx(&self.tx),
            statements: self.statements,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn conn(cluster: &allot_testkit::PgCluster) -> Conn {
        Conn::new(super::super::connect(&cluster.url()).await.unwrap())
    }

    /// Statements the server holds prepared for this session.
    async fn prepared(conn: &Conn) -> i64 {
        conn.query_one("SELECT count(*) FROM pg_prepared_statements", &[])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn a_statement_is_prepared_once_per_connection_and_used_in_its_transactions() {
        let cluster = allot_testkit::PgCluster::start();
        let mut conn = conn(&cluster).await;
        for i in 0..5_i64 {
            let row = conn
                .query_one("SELECT $1::BIGINT + 1", &[&i])
                .await
                .unwrap();
            assert_eq!(row.get::<_, i64>(0), i + 1);
        }
        // That statement and the count's own.
        assert_eq!(prepared(&conn).await, 2);
        assert_eq!(conn.statements.len(), 2);
        let tx = conn.transaction().await.unwrap();
        let row = tx
            .query_one("SELECT $1::BIGINT + 1", &[&41_i64])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 42);
        tx.execute("CREATE TEMP TABLE t (n BIGINT)", &[])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        // A statement prepared in a transaction rolled back is still the session's.
        assert_eq!(prepared(&conn).await, 3);
        assert_eq!(conn.statements.len(), 3);
    }

    #[tokio::test]
    async fn statements_past_the_bound_run_without_being_kept() {
        let cluster = allot_testkit::PgCluster::start();
        let conn = conn(&cluster).await;
        for i in 0..KEPT + 20 {
            let sql = format!("SELECT {i}::BIGINT");
            let row = conn.query_one(&sql, &[]).await.unwrap();
            assert_eq!(row.get::<_, i64>(0), i as i64);
        }
        assert_eq!(conn.statements.len(), KEPT);
        // The server holds the kept ones only: the others were closed after their use.
        let held: i64 = conn
            .session()
            .raw
            .query_one(
                &conn
                    .session()
                    .raw
                    .prepare("SELECT count(*) FROM pg_prepared_statements")
                    .await
                    .unwrap(),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(held <= KEPT as i64 + 1, "{held} statements held");
    }

    #[tokio::test]
    async fn a_kept_statement_the_schema_changed_under_fails_once_then_is_prepared_again() {
        let cluster = allot_testkit::PgCluster::start();
        let conn = conn(&cluster).await;
        conn.batch_execute("CREATE TABLE t (n INT); INSERT INTO t VALUES (7)")
            .await
            .unwrap();
        let read = "SELECT * FROM t";
        assert_eq!(conn.query_one(read, &[]).await.unwrap().get::<_, i32>(0), 7);
        // Another instance's migration changes what the kept statement returns.
        let other = super::super::connect(&cluster.url()).await.unwrap();
        other
            .batch_execute("ALTER TABLE t ALTER COLUMN n TYPE BIGINT")
            .await
            .unwrap();
        let stale = conn.query_one(read, &[]).await.unwrap_err();
        assert_eq!(stale.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
        assert_eq!(conn.query_one(read, &[]).await.unwrap().get::<_, i64>(0), 7);
    }
}
