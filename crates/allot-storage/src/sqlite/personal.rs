//! The data key at open, on SQLite: checks the key against `data_key_check`, or on the first
//! open with a key (a new database, or one written before migration 0013) seals every plaintext
//! email, address and stored answer and writes the check, in one transaction.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::StorageError;
use crate::crypto::{CHECK_PLAINTEXT, Cipher, idempotency_scope, places, wrong_key};
use crate::migrations::now_ms;

/// Rows read and sealed at a time.
const CHUNK_ROWS: i64 = 1_000;

/// Answers how many plaintext values were sealed (0 once the check exists).
pub(super) fn prepare(conn: &mut Connection, cipher: &Cipher) -> Result<u64, StorageError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: Option<(String, String)> = tx
        .query_row(
            "SELECT key_id, check_value FROM data_key_check WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((key_id, check)) = found {
        if key_id != cipher.key_id() || cipher.open(&check, places::key_check()).is_err() {
            return Err(wrong_key(&key_id, cipher));
        }
        return Ok(0);
    }
    let sealed = seal_users(&tx, cipher)? + seal_orders(&tx, cipher)? + seal_answers(&tx, cipher)?;
    tx.execute(
        "INSERT INTO data_key_check (id, key_id, check_value, created_at_ms)
         VALUES (1, ?1, ?2, ?3)",
        params![
            cipher.key_id(),
            cipher.seal(CHECK_PLAINTEXT, places::key_check()),
            now_ms()
        ],
    )?;
    tx.commit()?;
    if sealed > 0 {
        // The overwritten plaintext may sit in free pages and in the WAL: rewrite the file
        // from live rows and empty the WAL.
        conn.execute_batch("VACUUM")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(sealed)
}

fn seal_users(conn: &Connection, cipher: &Cipher) -> Result<u64, StorageError> {
    let mut after = 0i64;
    let mut sealed = 0;
    loop {
        let rows: Vec<(i64, String)> = conn
            .prepare("SELECT id, email_index FROM users WHERE id > ?1 ORDER BY id LIMIT ?2")?
            .query_map(params![after, CHUNK_ROWS], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(sealed);
        };
        for (id, email) in rows {
            let email = email.trim().to_lowercase();
            conn.prepare_cached("UPDATE users SET email_index = ?2, email_enc = ?3 WHERE id = ?1")?
                .execute(params![
                    id,
                    cipher.email_index(&email),
                    cipher.seal_str(&email, places::user_email(&id.to_string()))
                ])?;
            sealed += 1;
        }
        after = last;
    }
}

fn seal_orders(conn: &Connection, cipher: &Cipher) -> Result<u64, StorageError> {
    let mut after = 0i64;
    let mut sealed = 0;
    loop {
        let rows: Vec<(i64, String, String)> = conn
            .prepare(
                "SELECT id, customer, shipping_address_enc FROM orders
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after, CHUNK_ROWS], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some(&(last, _, _)) = rows.last() else {
            return Ok(sealed);
        };
        for (id, customer, address) in rows {
            conn.prepare_cached("UPDATE orders SET shipping_address_enc = ?2 WHERE id = ?1")?
                .execute(params![
                    id,
                    cipher.seal_str(&address, places::order_address(&customer))
                ])?;
            sealed += 1;
        }
        after = last;
    }
}

/// Stored answers live a day, so they are few: read at once.
fn seal_answers(conn: &Connection, cipher: &Cipher) -> Result<u64, StorageError> {
    let rows: Vec<(crate::IdempotencyScope, Vec<u8>)> = conn
        .prepare(
            "SELECT owner, key, method, path, body FROM idempotency_keys WHERE body IS NOT NULL",
        )?
        .query_map([], |r| {
            let scope = crate::IdempotencyScope {
                owner: r.get(0)?,
                key: r.get(1)?,
                method: r.get(2)?,
                path: r.get(3)?,
            };
            Ok((scope, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    let sealed = rows.len() as u64;
    for (scope, body) in rows {
        let place = idempotency_scope(&scope);
        conn.prepare_cached(
            "UPDATE idempotency_keys SET body = ?5
             WHERE owner = ?4 AND key = ?1 AND method = ?2 AND path = ?3",
        )?
        .execute(params![
            scope.key,
            scope.method,
            scope.path,
            scope.owner,
            cipher
                .seal(&body, places::idempotency_body(&place))
                .into_bytes()
        ])?;
    }
    Ok(sealed)
}
