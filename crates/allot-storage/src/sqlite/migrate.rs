//! Applies the SQLite side of [`crate::migrations`], once each, in order, at start.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::StorageError;
use crate::migrations::{now_ms, pending};

pub(super) fn apply(conn: &mut Connection) -> Result<(), StorageError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS allot_migrations (
             version       INTEGER PRIMARY KEY,
             name          TEXT    NOT NULL,
             applied_at_ms INTEGER NOT NULL
         )",
    )?;
    // IMMEDIATE takes the write lock first, so a second process can never apply the same
    // migration beside us.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let newest: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) FROM allot_migrations",
        [],
        |r| r.get(0),
    )?;
    let now_ms = now_ms();
    for m in pending(newest)? {
        tx.execute_batch(m.sqlite)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO allot_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
                    params![m.version, m.name, now_ms],
                )
                .map(|_| ())
            })
            .map_err(|e| StorageError::Migration {
                version: m.version,
                name: m.name,
                source: Box::new(e.into()),
            })?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::migrations::MIGRATIONS;

    /// Products stored before the search migration are searchable after it (the backfill): by
    /// name, description and text attribute values.
    #[test]
    fn products_stored_before_the_search_migration_are_found_after_it() {
        let conn = rusqlite::Connection::open_in_memory().expect("a database");
        let (before, search) = MIGRATIONS.split_at(23);
        assert_eq!(search[0].name, "product_search");
        for m in before {
            conn.execute_batch(m.sqlite).expect(m.name);
        }
        conn.execute_batch(
            "INSERT INTO products (id, sku, sku_key, name, description, price_minor, currency,
                                   active, created_at_ms, updated_at_ms)
             VALUES (1, 'A', 'a', 'Travel Laptop', 'Light.', 100, 'EUR', 1, 1, 1),
                    (2, 'B', 'b', 'Bag', 'Fits a laptop.', 100, 'EUR', 1, 1, 1);
             INSERT INTO product_attributes (product_id, key, kind, text_value)
             VALUES (2, 'color', 'text', 'Crimson'), (2, 'note', 'text', 'T-shirt');",
        )
        .expect("old rows");
        conn.execute_batch(search[0].sqlite).expect("migrates");
        let found = |q: &str| -> Vec<i64> {
            let mut stmt = conn
                .prepare(
                    "SELECT rowid FROM products_fts WHERE products_fts MATCH ?1
                     ORDER BY bm25(products_fts, 10.0, 1.0, 5.0), rowid",
                )
                .expect("a statement");
            stmt.query_map([q], |r| r.get(0))
                .expect("searches")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        assert_eq!(found("\"laptop\""), vec![1, 2]);
        assert_eq!(found("\"crimson\""), vec![2]);
        assert_eq!(found("\"t\" \"shirt\""), vec![2]);
        assert_eq!(found("\"lig\"*"), vec![1]);
        let attrs: String = conn
            .query_row(
                "SELECT search_attributes FROM products WHERE id = 2",
                [],
                |r| r.get(0),
            )
            .expect("a row");
        assert_eq!(attrs, "Crimson T-shirt");
        // The index is consistent with its content table.
        conn.execute_batch("INSERT INTO products_fts (products_fts) VALUES ('integrity-check')")
            .expect("consistent");
    }
}
