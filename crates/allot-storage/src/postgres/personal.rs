//! The data key at open, on PostgreSQL: the twin of `sqlite/personal.rs`. Instances starting
//! together take an advisory lock, so exactly one seals the plaintext of an older database and
//! writes the check, and the others then check their key against it.

use super::conn::{Conn, Db};
use crate::StorageError;
use crate::crypto::{CHECK_PLAINTEXT, Cipher, idempotency_scope, places, wrong_key};
use crate::migrations::now_ms;

/// The advisory lock of the check and the sealing ("allot" 13, apart from the migrations').
const LOCK_KEY: i64 = 0x0061_6c6c_6f74_000d;

/// Rows read and sealed at a time.
const CHUNK_ROWS: i64 = 1_000;

/// Answers how many plaintext values were sealed (0 once the check exists).
pub(super) async fn prepare(client: &mut Conn, cipher: &Cipher) -> Result<u64, StorageError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    if let Some(row) = tx
        .query_opt(
            "SELECT key_id, check_value FROM data_key_check WHERE id = 1",
            &[],
        )
        .await?
    {
        let key_id: String = row.try_get(0)?;
        let check: String = row.try_get(1)?;
        if key_id != cipher.key_id() || cipher.open(&check, places::key_check()).is_err() {
            return Err(wrong_key(&key_id, cipher));
        }
        return Ok(0);
    }
    let sealed = seal_users(&tx, cipher).await?
        + seal_orders(&tx, cipher).await?
        + seal_answers(&tx, cipher).await?;
    tx.execute(
        "INSERT INTO data_key_check (id, key_id, check_value, created_at_ms)
         VALUES (1, $1, $2, $3)",
        &[
            &cipher.key_id(),
            &cipher.seal(CHECK_PLAINTEXT, places::key_check()),
            &now_ms(),
        ],
    )
    .await?;
    super::commit(tx).await?;
    Ok(sealed)
}

async fn seal_users(c: &impl Db, cipher: &Cipher) -> Result<u64, StorageError> {
    let mut after = 0i64;
    let mut sealed = 0;
    loop {
        let rows = c
            .query(
                "SELECT id, email_index FROM users WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &CHUNK_ROWS],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(sealed);
        };
        after = last.try_get(0)?;
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let email = row.try_get::<_, String>(1)?.trim().to_lowercase();
            c.execute(
                "UPDATE users SET email_index = $2, email_enc = $3 WHERE id = $1",
                &[
                    &id,
                    &cipher.email_index(&email),
                    &cipher.seal_str(&email, places::user_email(&id.to_string())),
                ],
            )
            .await?;
            sealed += 1;
        }
    }
}

async fn seal_orders(c: &impl Db, cipher: &Cipher) -> Result<u64, StorageError> {
    let mut after = 0i64;
    let mut sealed = 0;
    loop {
        let rows = c
            .query(
                "SELECT id, customer, shipping_address_enc FROM orders
                 WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &CHUNK_ROWS],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(sealed);
        };
        after = last.try_get(0)?;
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let customer: String = row.try_get(1)?;
            let address: String = row.try_get(2)?;
            c.execute(
                "UPDATE orders SET shipping_address_enc = $2 WHERE id = $1",
                &[
                    &id,
                    &cipher.seal_str(&address, places::order_address(&customer)),
                ],
            )
            .await?;
            sealed += 1;
        }
    }
}

/// Stored answers live a day, so they are few: read at once.
async fn seal_answers(c: &impl Db, cipher: &Cipher) -> Result<u64, StorageError> {
    let rows = c
        .query(
            "SELECT owner, key, method, path, body FROM idempotency_keys WHERE body IS NOT NULL",
            &[],
        )
        .await?;
    for row in &rows {
        let scope = crate::IdempotencyScope {
            owner: row.try_get(0)?,
            key: row.try_get(1)?,
            method: row.try_get(2)?,
            path: row.try_get(3)?,
        };
        let body: Vec<u8> = row.try_get(4)?;
        let place = idempotency_scope(&scope);
        c.execute(
            "UPDATE idempotency_keys SET body = $5
             WHERE key = $1 AND method = $2 AND path = $3 AND owner = $4",
            &[
                &scope.key,
                &scope.method,
                &scope.path,
                &scope.owner,
                &cipher
                    .seal(&body, places::idempotency_body(&place))
                    .into_bytes(),
            ],
        )
        .await?;
    }
    Ok(rows.len() as u64)
}
