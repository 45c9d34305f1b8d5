//! Users, refresh tokens and API keys on SQLite. Every write goes through the single writer,
//! so a rotation's check and its writes cannot interleave with another rotation of the token.

use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Email, Role};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::StorageError;
use crate::crypto::{Cipher, places};
use crate::user::{ApiKey, Rotation, User, UserStore, email_of, role_of};

const USER_COLUMNS: &str = "id, email_enc, role, active, password_hash, created_at_ms, \
                            updated_at_ms, token_generation FROM users";
use crate::user::SESSION_USER;
const KEY_COLUMNS: &str = "id, name, role, created_at_ms, revoked_at_ms FROM api_keys";

/// A user row as read, its email still sealed.
struct UserRow {
    id: i64,
    email: String,
    role: String,
    active: bool,
    password_hash: String,
    created: i64,
    updated: i64,
    token_generation: i64,
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        email: r.get(1)?,
        role: r.get(2)?,
        active: r.get(3)?,
        password_hash: r.get(4)?,
        created: r.get(5)?,
        updated: r.get(6)?,
        token_generation: r.get(7)?,
    })
}

fn user_of(cipher: &Cipher, row: UserRow) -> Result<User, StorageError> {
    let UserRow {
        id,
        email,
        role,
        active,
        password_hash,
        created,
        updated,
        token_generation,
    } = row;
    let email = cipher.open_string(&email, places::user_email(&id.to_string()))?;
    Ok(User {
        id: AccountId::new(id),
        email: email_of(&email)?,
        role: role_of(&role)?,
        active,
        password_hash,
        created_at: UnixMillis::from_millis(created),
        updated_at: UnixMillis::from_millis(updated),
        token_generation,
    })
}

fn key_of(
    (id, name, role, created, revoked): (i64, String, String, i64, Option<i64>),
) -> Result<ApiKey, StorageError> {
    Ok(ApiKey {
        id,
        name,
        role: role_of(&role)?,
        created_at: UnixMillis::from_millis(created),
        revoked_at: revoked.map(UnixMillis::from_millis),
    })
}

fn revoke_all(conn: &Connection, user: i64, now: i64) -> Result<u64, StorageError> {
    let n = conn
        .prepare_cached(
            "UPDATE refresh_tokens SET revoked_at_ms = ?2
             WHERE user_id = ?1 AND revoked_at_ms IS NULL",
        )?
        .execute(params![user, now])?;
    Ok(n as u64)
}

fn rotate(
    conn: &Connection,
    token_hash: &str,
    new_hash: &str,
    new_expires_at: i64,
    family_started_after: i64,
    now: i64,
) -> Result<Rotation, StorageError> {
    let found = conn
        .prepare_cached(
            "SELECT id, user_id, expires_at_ms, revoked_at_ms,
                    COALESCE(family_started_at_ms, created_at_ms)
             FROM refresh_tokens WHERE token_hash = ?1",
        )?
        .query_row(params![token_hash], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((id, user, expires_at, revoked_at, family_started)) = found else {
        return Ok(Rotation::Unknown);
    };
    if revoked_at.is_some() {
        let revoked = revoke_all(conn, user, now)?;
        return Ok(Rotation::Reused {
            user: AccountId::new(user),
            revoked,
        });
    }
    if expires_at <= now || family_started < family_started_after {
        return Ok(Rotation::Expired);
    }
    let new_id: i64 = conn
        .prepare_cached(
            "INSERT INTO refresh_tokens (user_id, token_hash, expires_at_ms, created_at_ms,
                                         family_started_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )?
        .query_row(
            params![user, new_hash, new_expires_at, now, family_started],
            |r| r.get(0),
        )?;
    conn.prepare_cached(
        "UPDATE refresh_tokens SET revoked_at_ms = ?2, replaced_by = ?3 WHERE id = ?1",
    )?
    .execute(params![id, now, new_id])?;
    Ok(Rotation::Rotated {
        user: AccountId::new(user),
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(
        &self,
        email: Email,
        password_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let cipher = self.cipher.clone();
        // The sealed email is bound to the row's id, known once the row is in: a placeholder
        // first, then the sealed value, in one savepoint.
        self.write(1, move |conn, _| {
            let id = conn
                .prepare_cached(
                    "INSERT INTO users (email_index, email_enc, password_hash, role, active,
                                        created_at_ms, updated_at_ms)
                     VALUES (?1, '', ?2, ?3, 1, ?4, ?4)
                     ON CONFLICT (email_index) DO NOTHING RETURNING id",
                )?
                .query_row(
                    params![
                        cipher.email_index(email.as_str()),
                        password_hash,
                        role.as_str(),
                        now.as_millis()
                    ],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            conn.prepare_cached("UPDATE users SET email_enc = ?2 WHERE id = ?1")?
                .execute(params![
                    id,
                    cipher.seal_str(email.as_str(), places::user_email(&id.to_string()))
                ])?;
            Ok(Some(User {
                id: AccountId::new(id),
                email,
                role,
                active: true,
                password_hash,
                created_at: now,
                updated_at: now,
                token_generation: 0,
            }))
        })
        .await
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StorageError> {
        let index = self.cipher.email_index(email.as_str());
        let cipher = self.cipher.clone();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {USER_COLUMNS} WHERE email_index = ?1"))?
                .query_row(params![index], user_row)
                .optional()?
                .map(|u| user_of(&cipher, u))
                .transpose()
        })
        .await
    }

    async fn user_by_id(&self, id: AccountId) -> Result<Option<User>, StorageError> {
        let cipher = self.cipher.clone();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {USER_COLUMNS} WHERE id = ?1"))?
                .query_row(params![id.get()], user_row)
                .optional()?
                .map(|u| user_of(&cipher, u))
                .transpose()
        })
        .await
    }

    async fn session_user(
        &self,
        token_hash: String,
        created_after: UnixMillis,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let cipher = self.cipher.clone();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {USER_COLUMNS} {SESSION_USER}"))?
                .query_row(
                    params![token_hash, now.as_millis(), created_after.as_millis()],
                    user_row,
                )
                .optional()?
                .map(|u| user_of(&cipher, u))
                .transpose()
        })
        .await
    }

    async fn set_password(
        &self,
        id: AccountId,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        self.write(1, move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE users SET password_hash = ?2, updated_at_ms = ?3 WHERE id = ?1",
                )?
                .execute(params![id.get(), password_hash, now.as_millis()])?;
            if n == 0 {
                return Ok(false);
            }
            revoke_all(conn, id.get(), now.as_millis())?;
            Ok(true)
        })
        .await
    }

    async fn set_user_active(
        &self,
        id: AccountId,
        active: bool,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        self.write(1, move |conn, _| {
            let n = conn
                .prepare_cached("UPDATE users SET active = ?2, updated_at_ms = ?3 WHERE id = ?1")?
                .execute(params![id.get(), active, now.as_millis()])?;
            if n > 0 && !active {
                revoke_all(conn, id.get(), now.as_millis())?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn set_user_role(
        &self,
        id: AccountId,
        role: Role,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        self.write_one(move |conn, _| {
            let n = conn
                .prepare_cached("UPDATE users SET role = ?2, updated_at_ms = ?3 WHERE id = ?1")?
                .execute(params![id.get(), role.as_str(), now.as_millis()])?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_refresh_token(
        &self,
        user: AccountId,
        token_hash: String,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        self.write_one(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO refresh_tokens (user_id, token_hash, expires_at_ms, created_at_ms,
                                             family_started_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![
                user.get(),
                token_hash,
                expires_at.as_millis(),
                now.as_millis()
            ])?;
            Ok(())
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: String,
        new_hash: String,
        new_expires_at: UnixMillis,
        family_started_after: UnixMillis,
        now: UnixMillis,
    ) -> Result<Rotation, StorageError> {
        self.write(1, move |conn, _| {
            rotate(
                conn,
                &token_hash,
                &new_hash,
                new_expires_at.as_millis(),
                family_started_after.as_millis(),
                now.as_millis(),
            )
        })
        .await
    }

    async fn revoke_refresh_token(
        &self,
        token_hash: String,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        self.write_one(move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE refresh_tokens SET revoked_at_ms = ?2
                     WHERE token_hash = ?1 AND revoked_at_ms IS NULL",
                )?
                .execute(params![token_hash, now.as_millis()])?;
            Ok(n > 0)
        })
        .await
    }

    async fn revoke_user_refresh_tokens(
        &self,
        user: AccountId,
        now: UnixMillis,
    ) -> Result<u64, StorageError> {
        self.write_one(move |conn, _| revoke_all(conn, user.get(), now.as_millis()))
            .await
    }

    async fn create_api_key(
        &self,
        name: String,
        key_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<ApiKey, StorageError> {
        self.write_one(move |conn, _| {
            let id = conn
                .prepare_cached(
                    "INSERT INTO api_keys (name, key_hash, role, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4) RETURNING id",
                )?
                .query_row(
                    params![name, key_hash, role.as_str(), now.as_millis()],
                    |r| r.get::<_, i64>(0),
                )?;
            Ok(ApiKey {
                id,
                name,
                role,
                created_at: now,
                revoked_at: None,
            })
        })
        .await
    }

    async fn api_key_by_hash(&self, key_hash: String) -> Result<Option<ApiKey>, StorageError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE key_hash = ?1"))?
                .query_row(params![key_hash], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?
                .map(key_of)
                .transpose()
        })
        .await
    }

    async fn api_key_by_id(&self, id: i64) -> Result<Option<ApiKey>, StorageError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE id = ?1"))?
                .query_row(params![id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?
                .map(key_of)
                .transpose()
        })
        .await
    }

    async fn revoke_api_key(&self, id: i64, now: UnixMillis) -> Result<bool, StorageError> {
        self.write_one(move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at_ms = ?2
                     WHERE id = ?1 AND revoked_at_ms IS NULL",
                )?
                .execute(params![id, now.as_millis()])?;
            Ok(n > 0)
        })
        .await
    }
}
