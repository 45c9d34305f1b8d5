//! Users, refresh tokens and API keys on PostgreSQL. A rotation locks its token row
//! (`FOR UPDATE`), so of two instances presenting the same token at once exactly one rotates
//! it and the other sees it revoked (reuse).

use super::conn::Db;
use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Email, Role};
use allot_domain::event::EventType;
use async_trait::async_trait;
use tokio_postgres::Row;

use super::PgStore;
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
/// The advisory lock of every change that could leave no active admin (the first admin's
/// creation, an admin's deactivation or demotion): taken for the transaction, it makes the
/// check and the change one step across instances ("allot" 15).
const ADMINS_LOCK: i64 = 0x0061_6c6c_6f74_000f;
const KEY_COLUMNS: &str = "id, name, role, created_at_ms, revoked_at_ms FROM api_keys";
const REVOKE_ALL: &str = "UPDATE refresh_tokens SET revoked_at_ms = $2
                          WHERE user_id = $1 AND revoked_at_ms IS NULL";

fn user_of(cipher: &Cipher, r: &Row) -> Result<User, StorageError> {
    let id: i64 = r.try_get(0)?;
    let email = cipher.open_string(r.try_get(1)?, places::user_email(&id.to_string()))?;
    Ok(User {
        id: AccountId::new(id),
        email: email_of(&email)?,
        role: role_of(r.try_get(2)?)?,
        active: r.try_get(3)?,
        password_hash: r.try_get(4)?,
        created_at: UnixMillis::from_millis(r.try_get(5)?),
        updated_at: UnixMillis::from_millis(r.try_get(6)?),
        token_generation: r.try_get(7)?,
        email_verified: r.try_get(8)?,
    })
}

async fn one_user(c: &impl Db, cipher: &Cipher, id: i64) -> Result<Option<User>, StorageError> {
    c.query_opt(&format!("SELECT {USER_COLUMNS} WHERE id = $1"), &[&id])
        .await?
        .as_ref()
        .map(|r| user_of(cipher, r))
        .transpose()
}

async fn user_must(c: &impl Db, cipher: &Cipher, id: i64) -> Result<User, StorageError> {
    one_user(c, cipher, id)
        .await?
        .ok_or_else(|| StorageError::Corrupt(format!("user {id} vanished")))
}

/// Active admins other than `id`; call it under [`ADMINS_LOCK`].
async fn other_admins(c: &impl Db, id: i64) -> Result<i64, StorageError> {
    Ok(c.query_one(
        "SELECT count(*) FROM users WHERE role = 'admin' AND active AND id <> $1",
        &[&id],
    )
    .await?
    .try_get(0)?)
}

async fn lock_admins(c: &impl Db) -> Result<(), StorageError> {
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&ADMINS_LOCK])
        .await?;
    Ok(())
}

/// Inserts a user and seals its email bound to the id the insert gave; `None` if the email is
/// taken. `verified_at`: `None` for a user who must still verify its address.
async fn insert_user(
    c: &impl Db,
    cipher: &Cipher,
    email: &Email,
    password_hash: &str,
    role: Role,
    verified_at: Option<i64>,
    now: i64,
) -> Result<Option<User>, StorageError> {
    let Some(row) = c
        .query_opt(
            "INSERT INTO users (email_index, email_enc, password_hash, role, active,
                                created_at_ms, updated_at_ms, email_verified_at_ms)
             VALUES ($1, '', $2, $3, TRUE, $4, $4, $5)
             ON CONFLICT (email_index) DO NOTHING RETURNING id",
            &[
                &cipher.email_index(email.as_str()),
                &password_hash,
                &role.as_str(),
                &now,
                &verified_at,
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0)?;
    c.execute(
        "UPDATE users SET email_enc = $2 WHERE id = $1",
        &[
            &id,
            &cipher.seal_str(email.as_str(), places::user_email(&id.to_string())),
        ],
    )
    .await?;
    user_must(c, cipher, id).await.map(Some)
}

/// Takes a live token of `purpose` (deleting it): its user's id, or `None`.
async fn take_token(
    c: &impl Db,
    token_hash: &str,
    purpose: TokenPurpose,
    now: i64,
) -> Result<Option<i64>, StorageError> {
    Ok(c.query_opt(
        "DELETE FROM account_tokens
             WHERE token_hash = $1 AND purpose = $2 AND expires_at_ms > $3
             RETURNING user_id",
        &[&token_hash, &purpose.as_str(), &now],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?)
}

fn key_of(r: &Row) -> Result<ApiKey, StorageError> {
    Ok(ApiKey {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        role: role_of(r.try_get(2)?)?,
        created_at: UnixMillis::from_millis(r.try_get(3)?),
        revoked_at: r.try_get::<_, Option<i64>>(4)?.map(UnixMillis::from_millis),
    })
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(
        &self,
        email: Email,
        password_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let at = now.as_millis();
        let user = insert_user(
            &tx,
            &self.cipher,
            &email,
            &password_hash,
            role,
            Some(at),
            at,
        )
        .await?;
        if let Some(u) = &user {
            append(&tx, events::user(EventType::UserCreated, u, now)).await?;
        }
        super::commit(tx).await?;
        Ok(user)
    }

    async fn users(&self, q: UserQuery) -> Result<Vec<User>, StorageError> {
        let client = self.client().await?;
        let index = q
            .email
            .as_ref()
            .map(|e| self.cipher.email_index(e.as_str()));
        let role = q.role.map(|r| r.as_str());
        let limit = i64::from(q.limit.clamp(1, USERS_PAGE_MAX));
        // NULL filters drop out: one statement for every combination.
        let rows = client
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} WHERE id > $1
                       AND ($2::text IS NULL OR role = $2)
                       AND ($3::bool IS NULL OR active = $3)
                       AND ($4::text IS NULL OR email_index = $4)
                     ORDER BY id LIMIT $5"
                ),
                &[&q.after, &role, &q.active, &index, &limit],
            )
            .await?;
        rows.iter().map(|r| user_of(&self.cipher, r)).collect()
    }

    async fn admin_exists(&self) -> Result<bool, StorageError> {
        let client = self.client().await?;
        Ok(client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND active)",
                &[],
            )
            .await?
            .try_get(0)?)
    }

    async fn create_first_admin(
        &self,
        email: Email,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<FirstAdmin, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_admins(&tx).await?;
        if other_admins(&tx, 0).await? > 0 {
            return Ok(FirstAdmin::AdminExists);
        }
        let at = now.as_millis();
        let outcome = match insert_user(
            &tx,
            &self.cipher,
            &email,
            &password_hash,
            Role::Admin,
            Some(at),
            at,
        )
        .await?
        {
            Some(u) => {
                append(&tx, events::user(EventType::UserCreated, &u, now)).await?;
                FirstAdmin::Created(u)
            }
            None => FirstAdmin::EmailTaken,
        };
        super::commit(tx).await?;
        Ok(outcome)
    }

    async fn sign_up(
        &self,
        email: Email,
        password_hash: String,
        token_hash: String,
        token_expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let at = now.as_millis();
        let Some(u) = insert_user(
            &tx,
            &self.cipher,
            &email,
            &password_hash,
            Role::Customer,
            None,
            at,
        )
        .await?
        else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at_ms, created_at_ms)
             VALUES ($1, $2, 'verify_email', $3, $4)",
            &[&token_hash, &u.id.get(), &token_expires_at.as_millis(), &at],
        )
        .await?;
        append(&tx, events::user(EventType::UserSignedUp, &u, now)).await?;
        super::commit(tx).await?;
        Ok(Some(u))
    }

    async fn issue_account_token(
        &self,
        user: AccountId,
        purpose: TokenPurpose,
        token_hash: String,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2",
            &[&user.get(), &purpose.as_str()],
        )
        .await?;
        tx.execute(
            "INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at_ms, created_at_ms)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &token_hash,
                &user.get(),
                &purpose.as_str(),
                &expires_at.as_millis(),
                &now.as_millis(),
            ],
        )
        .await?;
        super::commit(tx).await?;
        Ok(())
    }

    async fn verify_email(
        &self,
        token_hash: String,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let at = now.as_millis();
        let Some(id) = take_token(&tx, &token_hash, TokenPurpose::VerifyEmail, at).await? else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE users SET email_verified_at_ms = $2, updated_at_ms = $2
             WHERE id = $1 AND email_verified_at_ms IS NULL",
            &[&id, &at],
        )
        .await?;
        let u = user_must(&tx, &self.cipher, id).await?;
        append(&tx, events::user(EventType::UserEmailVerified, &u, now)).await?;
        super::commit(tx).await?;
        Ok(Some(u))
    }

    async fn reset_password(
        &self,
        token_hash: String,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let at = now.as_millis();
        let Some(id) = take_token(&tx, &token_hash, TokenPurpose::ResetPassword, at).await? else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE users SET password_hash = $2, updated_at_ms = $3,
                              email_verified_at_ms = coalesce(email_verified_at_ms, $3)
             WHERE id = $1",
            &[&id, &password_hash, &at],
        )
        .await?;
        tx.execute(REVOKE_ALL, &[&id, &at]).await?;
        let u = user_must(&tx, &self.cipher, id).await?;
        append(&tx, events::password_reset(&u, "email", now)).await?;
        super::commit(tx).await?;
        Ok(Some(u))
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {USER_COLUMNS} WHERE email_index = $1"),
                &[&self.cipher.email_index(email.as_str())],
            )
            .await?
            .as_ref()
            .map(|r| user_of(&self.cipher, r))
            .transpose()
    }

    async fn user_by_id(&self, id: AccountId) -> Result<Option<User>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {USER_COLUMNS} WHERE id = $1"),
                &[&id.get()],
            )
            .await?
            .as_ref()
            .map(|r| user_of(&self.cipher, r))
            .transpose()
    }

    async fn session_user(
        &self,
        token_hash: String,
        created_after: UnixMillis,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {USER_COLUMNS} {SESSION_USER}"),
                &[&token_hash, &now.as_millis(), &created_after.as_millis()],
            )
            .await?
            .as_ref()
            .map(|r| user_of(&self.cipher, r))
            .transpose()
    }

    async fn set_password(
        &self,
        id: AccountId,
        password_hash: String,
        why: PasswordSet,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE users SET password_hash = $2, updated_at_ms = $3 WHERE id = $1",
                &[&id.get(), &password_hash, &now.as_millis()],
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(REVOKE_ALL, &[&id.get(), &now.as_millis()])
            .await?;
        let u = user_must(&tx, &self.cipher, id.get()).await?;
        let event = match why {
            PasswordSet::Changed => events::user(EventType::UserPasswordChanged, &u, now),
            PasswordSet::ResetByAdmin => events::password_reset(&u, "admin", now),
        };
        append(&tx, event).await?;
        super::commit(tx).await?;
        Ok(true)
    }

    async fn set_user_active(
        &self,
        id: AccountId,
        active: bool,
        now: UnixMillis,
    ) -> Result<AccountChange, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_admins(&tx).await?;
        let Some(before) = one_user(&tx, &self.cipher, id.get()).await? else {
            return Ok(AccountChange::NotFound);
        };
        if before.active == active {
            return Ok(AccountChange::Done(before));
        }
        if !active && before.role == Role::Admin && other_admins(&tx, id.get()).await? == 0 {
            return Ok(AccountChange::LastAdmin);
        }
        tx.execute(
            "UPDATE users SET active = $2, updated_at_ms = $3 WHERE id = $1",
            &[&id.get(), &active, &now.as_millis()],
        )
        .await?;
        if !active {
            tx.execute(REVOKE_ALL, &[&id.get(), &now.as_millis()])
                .await?;
        }
        let u = user_must(&tx, &self.cipher, id.get()).await?;
        let kind = if active {
            EventType::UserReactivated
        } else {
            EventType::UserDeactivated
        };
        append(&tx, events::user(kind, &u, now)).await?;
        super::commit(tx).await?;
        Ok(AccountChange::Done(u))
    }

    async fn set_user_role(
        &self,
        id: AccountId,
        role: Role,
        now: UnixMillis,
    ) -> Result<AccountChange, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_admins(&tx).await?;
        let Some(before) = one_user(&tx, &self.cipher, id.get()).await? else {
            return Ok(AccountChange::NotFound);
        };
        if before.role == role {
            return Ok(AccountChange::Done(before));
        }
        if before.role == Role::Admin && before.active && other_admins(&tx, id.get()).await? == 0 {
            return Ok(AccountChange::LastAdmin);
        }
        tx.execute(
            "UPDATE users SET role = $2, updated_at_ms = $3 WHERE id = $1",
            &[&id.get(), &role.as_str(), &now.as_millis()],
        )
        .await?;
        tx.execute(REVOKE_ALL, &[&id.get(), &now.as_millis()])
            .await?;
        let u = user_must(&tx, &self.cipher, id.get()).await?;
        append(&tx, events::role_changed(&u, before.role, now)).await?;
        super::commit(tx).await?;
        Ok(AccountChange::Done(u))
    }

    async fn insert_refresh_token(
        &self,
        user: AccountId,
        token_hash: String,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO refresh_tokens (user_id, token_hash, expires_at_ms, created_at_ms,
                                             family_started_at_ms)
                 VALUES ($1, $2, $3, $4, $4)",
                &[
                    &user.get(),
                    &token_hash,
                    &expires_at.as_millis(),
                    &now.as_millis(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: String,
        new_hash: String,
        new_expires_at: UnixMillis,
        family_started_after: UnixMillis,
        now: UnixMillis,
    ) -> Result<Rotation, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT id, user_id, expires_at_ms, revoked_at_ms,
                        COALESCE(family_started_at_ms, created_at_ms)
                 FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                &[&token_hash],
            )
            .await?
        else {
            return Ok(Rotation::Unknown);
        };
        let id: i64 = row.try_get(0)?;
        let user: i64 = row.try_get(1)?;
        let expires_at: i64 = row.try_get(2)?;
        let revoked_at: Option<i64> = row.try_get(3)?;
        let family_started: i64 = row.try_get(4)?;
        if revoked_at.is_some() {
            let revoked = tx.execute(REVOKE_ALL, &[&user, &now.as_millis()]).await?;
            super::commit(tx).await?;
            return Ok(Rotation::Reused {
                user: AccountId::new(user),
                revoked,
            });
        }
        if expires_at <= now.as_millis() || family_started < family_started_after.as_millis() {
            return Ok(Rotation::Expired);
        }
        let new_id: i64 = tx
            .query_one(
                "INSERT INTO refresh_tokens (user_id, token_hash, expires_at_ms, created_at_ms,
                                             family_started_at_ms)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &user,
                    &new_hash,
                    &new_expires_at.as_millis(),
                    &now.as_millis(),
                    &family_started,
                ],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at_ms = $2, replaced_by = $3 WHERE id = $1",
            &[&id, &now.as_millis(), &new_id],
        )
        .await?;
        super::commit(tx).await?;
        Ok(Rotation::Rotated {
            user: AccountId::new(user),
        })
    }

    async fn revoke_refresh_token(
        &self,
        token_hash: String,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE refresh_tokens SET revoked_at_ms = $2
                 WHERE token_hash = $1 AND revoked_at_ms IS NULL",
                &[&token_hash, &now.as_millis()],
            )
            .await?;
        Ok(n > 0)
    }

    async fn revoke_user_refresh_tokens(
        &self,
        user: AccountId,
        now: UnixMillis,
    ) -> Result<u64, StorageError> {
        let client = self.client().await?;
        Ok(client
            .execute(REVOKE_ALL, &[&user.get(), &now.as_millis()])
            .await?)
    }

    async fn create_api_key(
        &self,
        name: String,
        key_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<ApiKey, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO api_keys (name, key_hash, role, created_at_ms)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&name, &key_hash, &role.as_str(), &now.as_millis()],
            )
            .await?
            .try_get(0)?;
        let key = ApiKey {
            id,
            name,
            role,
            created_at: now,
            revoked_at: None,
        };
        append(&tx, events::api_key(EventType::ApiKeyCreated, &key, now)).await?;
        super::commit(tx).await?;
        Ok(key)
    }

    async fn api_keys(&self, after: i64, limit: u32) -> Result<Vec<ApiKey>, StorageError> {
        let client = self.client().await?;
        let limit = i64::from(limit.clamp(1, API_KEYS_PAGE_MAX));
        client
            .query(
                &format!("SELECT {KEY_COLUMNS} WHERE id > $1 ORDER BY id LIMIT $2"),
                &[&after, &limit],
            )
            .await?
            .iter()
            .map(key_of)
            .collect()
    }

    async fn api_key_by_hash(&self, key_hash: String) -> Result<Option<ApiKey>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} WHERE key_hash = $1"),
                &[&key_hash],
            )
            .await?
            .as_ref()
            .map(key_of)
            .transpose()
    }

    async fn api_key_by_id(&self, id: i64) -> Result<Option<ApiKey>, StorageError> {
        let client = self.client().await?;
        client
            .query_opt(&format!("SELECT {KEY_COLUMNS} WHERE id = $1"), &[&id])
            .await?
            .as_ref()
            .map(key_of)
            .transpose()
    }

    async fn revoke_api_key(&self, id: i64, now: UnixMillis) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                &format!(
                    "UPDATE api_keys SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL
                     RETURNING {}",
                    KEY_COLUMNS.trim_end_matches(" FROM api_keys")
                ),
                &[&id, &now.as_millis()],
            )
            .await?
        else {
            return Ok(false);
        };
        let key = key_of(&row)?;
        append(&tx, events::api_key(EventType::ApiKeyRevoked, &key, now)).await?;
        super::commit(tx).await?;
        Ok(true)
    }
}
