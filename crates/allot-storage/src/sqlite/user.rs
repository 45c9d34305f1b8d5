//! Users, refresh tokens and API keys on SQLite. Every write goes through the single writer,
//! so a rotation's check and its writes cannot interleave with another rotation of the token.

use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Email, Role};
use allot_domain::event::EventType;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::event::append;
use crate::StorageError;
use crate::crypto::{Cipher, places};
use crate::user::{
    API_KEYS_PAGE_MAX, AccountChange, ApiKey, FirstAdmin, PasswordSet, Rotation, SESSION_USER,
    TokenPurpose, USERS_PAGE_MAX, User, UserQuery, UserStore, email_of, events, role_of,
};

const USER_COLUMNS: &str = "id, email_enc, role, active, password_hash, created_at_ms, \
                            updated_at_ms, token_generation, \
                            email_verified_at_ms IS NOT NULL FROM users";
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
    email_verified: bool,
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
        email_verified: r.get(8)?,
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
        email_verified,
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
        email_verified,
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

fn one_user(conn: &Connection, cipher: &Cipher, id: i64) -> Result<Option<User>, StorageError> {
    conn.prepare_cached(&format!("SELECT {USER_COLUMNS} WHERE id = ?1"))?
        .query_row(params![id], user_row)
        .optional()?
        .map(|u| user_of(cipher, u))
        .transpose()
}

fn user_must(conn: &Connection, cipher: &Cipher, id: i64) -> Result<User, StorageError> {
    one_user(conn, cipher, id)?.ok_or_else(|| StorageError::Corrupt(format!("user {id} vanished")))
}

/// Active admins other than `id`.
fn other_admins(conn: &Connection, id: i64) -> Result<i64, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM users WHERE role = 'admin' AND active = 1 AND id <> ?1",
        )?
        .query_row(params![id], |r| r.get(0))?)
}

/// Inserts a user and seals its email bound to the id the insert gave; `None` if the email is
/// taken. `verified_at`: `None` for a user who must still verify its address.
fn insert_user(
    conn: &Connection,
    cipher: &Cipher,
    email: &allot_domain::auth::Email,
    password_hash: &str,
    role: Role,
    verified_at: Option<i64>,
    now: i64,
) -> Result<Option<User>, StorageError> {
    let id = conn
        .prepare_cached(
            "INSERT INTO users (email_index, email_enc, password_hash, role, active,
                                created_at_ms, updated_at_ms, email_verified_at_ms)
             VALUES (?1, '', ?2, ?3, 1, ?4, ?4, ?5)
             ON CONFLICT (email_index) DO NOTHING RETURNING id",
        )?
        .query_row(
            params![
                cipher.email_index(email.as_str()),
                password_hash,
                role.as_str(),
                now,
                verified_at
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
    user_must(conn, cipher, id).map(Some)
}

/// Takes a live token of `purpose` (deleting it): its user's id, or `None`.
fn take_token(
    conn: &Connection,
    token_hash: &str,
    purpose: TokenPurpose,
    now: i64,
) -> Result<Option<i64>, StorageError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM account_tokens
             WHERE token_hash = ?1 AND purpose = ?2 AND expires_at_ms > ?3
             RETURNING user_id",
        )?
        .query_row(params![token_hash, purpose.as_str(), now], |r| r.get(0))
        .optional()?)
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
        self.write(1, move |conn, _| {
            let now = now.as_millis();
            let user = insert_user(conn, &cipher, &email, &password_hash, role, Some(now), now)?;
            if let Some(u) = &user {
                append(conn, events::user(EventType::UserCreated, u, u.created_at))?;
            }
            Ok(user)
        })
        .await
    }

    async fn users(&self, q: UserQuery) -> Result<Vec<User>, StorageError> {
        let cipher = self.cipher.clone();
        let index = q
            .email
            .as_ref()
            .map(|e| self.cipher.email_index(e.as_str()));
        self.read(move |conn| {
            // Only the filters given become predicates: a handful of statement shapes, each
            // prepared once, each served by the primary key, users_by_role or email_index.
            let mut sql = format!("SELECT {USER_COLUMNS} WHERE id > ?");
            let mut args: Vec<rusqlite::types::Value> = vec![q.after.into()];
            if let Some(role) = q.role {
                sql.push_str(" AND role = ?");
                args.push(role.as_str().to_owned().into());
            }
            if let Some(active) = q.active {
                sql.push_str(" AND active = ?");
                args.push(i64::from(active).into());
            }
            if let Some(index) = index {
                sql.push_str(" AND email_index = ?");
                args.push(index.into());
            }
            sql.push_str(" ORDER BY id LIMIT ?");
            args.push(i64::from(q.limit.clamp(1, USERS_PAGE_MAX)).into());
            let rows = conn
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args), user_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(|u| user_of(&cipher, u)).collect()
        })
        .await
    }

    async fn admin_exists(&self) -> Result<bool, StorageError> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND active = 1)",
                )?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    async fn create_first_admin(
        &self,
        email: Email,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<FirstAdmin, StorageError> {
        let cipher = self.cipher.clone();
        // The single writer runs the check and the insert with nothing between them.
        self.write(1, move |conn, _| {
            if other_admins(conn, 0)? > 0 {
                return Ok(FirstAdmin::AdminExists);
            }
            let now = now.as_millis();
            match insert_user(
                conn,
                &cipher,
                &email,
                &password_hash,
                Role::Admin,
                Some(now),
                now,
            )? {
                Some(u) => {
                    append(conn, events::user(EventType::UserCreated, &u, u.created_at))?;
                    Ok(FirstAdmin::Created(u))
                }
                None => Ok(FirstAdmin::EmailTaken),
            }
        })
        .await
    }

    async fn sign_up(
        &self,
        email: Email,
        password_hash: String,
        token_hash: String,
        token_expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let at = now.as_millis();
            let Some(u) = insert_user(
                conn,
                &cipher,
                &email,
                &password_hash,
                Role::Customer,
                None,
                at,
            )?
            else {
                return Ok(None);
            };
            conn.prepare_cached(
                "INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at_ms,
                                             created_at_ms)
                 VALUES (?1, ?2, 'verify_email', ?3, ?4)",
            )?
            .execute(params![
                token_hash,
                u.id.get(),
                token_expires_at.as_millis(),
                at
            ])?;
            append(conn, events::user(EventType::UserSignedUp, &u, now))?;
            Ok(Some(u))
        })
        .await
    }

    async fn issue_account_token(
        &self,
        user: AccountId,
        purpose: TokenPurpose,
        token_hash: String,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        self.write(1, move |conn, _| {
            conn.prepare_cached("DELETE FROM account_tokens WHERE user_id = ?1 AND purpose = ?2")?
                .execute(params![user.get(), purpose.as_str()])?;
            conn.prepare_cached(
                "INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at_ms,
                                             created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                token_hash,
                user.get(),
                purpose.as_str(),
                expires_at.as_millis(),
                now.as_millis()
            ])?;
            Ok(())
        })
        .await
    }

    async fn verify_email(
        &self,
        token_hash: String,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let at = now.as_millis();
            let Some(id) = take_token(conn, &token_hash, TokenPurpose::VerifyEmail, at)? else {
                return Ok(None);
            };
            conn.prepare_cached(
                "UPDATE users SET email_verified_at_ms = ?2, updated_at_ms = ?2
                 WHERE id = ?1 AND email_verified_at_ms IS NULL",
            )?
            .execute(params![id, at])?;
            let u = user_must(conn, &cipher, id)?;
            append(conn, events::user(EventType::UserEmailVerified, &u, now))?;
            Ok(Some(u))
        })
        .await
    }

    async fn reset_password(
        &self,
        token_hash: String,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let at = now.as_millis();
            let Some(id) = take_token(conn, &token_hash, TokenPurpose::ResetPassword, at)? else {
                return Ok(None);
            };
            conn.prepare_cached(
                "UPDATE users SET password_hash = ?2, updated_at_ms = ?3,
                                  email_verified_at_ms = coalesce(email_verified_at_ms, ?3)
                 WHERE id = ?1",
            )?
            .execute(params![id, password_hash, at])?;
            revoke_all(conn, id, at)?;
            let u = user_must(conn, &cipher, id)?;
            append(conn, events::password_reset(&u, "email", now))?;
            Ok(Some(u))
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
        why: PasswordSet,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        let cipher = self.cipher.clone();
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
            let u = user_must(conn, &cipher, id.get())?;
            append(
                conn,
                match why {
                    PasswordSet::Changed => events::user(EventType::UserPasswordChanged, &u, now),
                    PasswordSet::ResetByAdmin => events::password_reset(&u, "admin", now),
                },
            )?;
            Ok(true)
        })
        .await
    }

    async fn set_user_active(
        &self,
        id: AccountId,
        active: bool,
        now: UnixMillis,
    ) -> Result<AccountChange, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let Some(before) = one_user(conn, &cipher, id.get())? else {
                return Ok(AccountChange::NotFound);
            };
            if before.active == active {
                return Ok(AccountChange::Done(before));
            }
            if !active && before.role == Role::Admin && other_admins(conn, id.get())? == 0 {
                return Ok(AccountChange::LastAdmin);
            }
            conn.prepare_cached("UPDATE users SET active = ?2, updated_at_ms = ?3 WHERE id = ?1")?
                .execute(params![id.get(), active, now.as_millis()])?;
            if !active {
                revoke_all(conn, id.get(), now.as_millis())?;
            }
            let u = user_must(conn, &cipher, id.get())?;
            let kind = if active {
                EventType::UserReactivated
            } else {
                EventType::UserDeactivated
            };
            append(conn, events::user(kind, &u, now))?;
            Ok(AccountChange::Done(u))
        })
        .await
    }

    async fn set_user_role(
        &self,
        id: AccountId,
        role: Role,
        now: UnixMillis,
    ) -> Result<AccountChange, StorageError> {
        let cipher = self.cipher.clone();
        self.write(1, move |conn, _| {
            let Some(before) = one_user(conn, &cipher, id.get())? else {
                return Ok(AccountChange::NotFound);
            };
            if before.role == role {
                return Ok(AccountChange::Done(before));
            }
            if before.role == Role::Admin && before.active && other_admins(conn, id.get())? == 0 {
                return Ok(AccountChange::LastAdmin);
            }
            conn.prepare_cached("UPDATE users SET role = ?2, updated_at_ms = ?3 WHERE id = ?1")?
                .execute(params![id.get(), role.as_str(), now.as_millis()])?;
            revoke_all(conn, id.get(), now.as_millis())?;
            let u = user_must(conn, &cipher, id.get())?;
            append(conn, events::role_changed(&u, before.role, now))?;
            Ok(AccountChange::Done(u))
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
        self.write(1, move |conn, _| {
            let id = conn
                .prepare_cached(
                    "INSERT INTO api_keys (name, key_hash, role, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4) RETURNING id",
                )?
                .query_row(
                    params![name, key_hash, role.as_str(), now.as_millis()],
                    |r| r.get::<_, i64>(0),
                )?;
            let key = ApiKey {
                id,
                name,
                role,
                created_at: now,
                revoked_at: None,
            };
            append(conn, events::api_key(EventType::ApiKeyCreated, &key, now))?;
            Ok(key)
        })
        .await
    }

    async fn api_keys(&self, after: i64, limit: u32) -> Result<Vec<ApiKey>, StorageError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))?
                .query_map(params![after, limit.clamp(1, API_KEYS_PAGE_MAX)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(key_of).collect()
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
        self.write(1, move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at_ms = ?2
                     WHERE id = ?1 AND revoked_at_ms IS NULL",
                )?
                .execute(params![id, now.as_millis()])?;
            if n > 0 {
                let key = conn
                    .prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE id = ?1"))?
                    .query_row(params![id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(StorageError::from)
                    .and_then(key_of)?;
                append(conn, events::api_key(EventType::ApiKeyRevoked, &key, now))?;
            }
            Ok(n > 0)
        })
        .await
    }
}
