//! Users, refresh tokens and API keys on PostgreSQL. A rotation locks its token row
//! (`FOR UPDATE`), so of two instances presenting the same token at once exactly one rotates
//! it and the other sees it revoked (reuse).

use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Email, Role};
use async_trait::async_trait;
use tokio_postgres::Row;

use super::PgStore;
use crate::StorageError;
use crate::crypto::{Cipher, places};
use crate::user::{ApiKey, Rotation, User, UserStore, email_of, role_of};

const USER_COLUMNS: &str = "id, email_enc, role, active, password_hash, created_at_ms, \
                            updated_at_ms, token_generation FROM users";
use crate::user::SESSION_USER;
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
    })
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
        // The sealed email is bound to the row's id, known once the row is in: a placeholder
        // first, then the sealed value, in one transaction.
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "INSERT INTO users (email_index, email_enc, password_hash, role, active,
                                    created_at_ms, updated_at_ms)
                 VALUES ($1, '', $2, $3, TRUE, $4, $4)
                 ON CONFLICT (email_index) DO NOTHING RETURNING id",
                &[
                    &self.cipher.email_index(email.as_str()),
                    &password_hash,
                    &role.as_str(),
                    &now.as_millis(),
                ],
            )
            .await?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0)?;
        tx.execute(
            "UPDATE users SET email_enc = $2 WHERE id = $1",
            &[
                &id,
                &self
                    .cipher
                    .seal_str(email.as_str(), places::user_email(&id.to_string())),
            ],
        )
        .await?;
        tx.commit().await?;
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
        tx.commit().await?;
        Ok(true)
    }

    async fn set_user_active(
        &self,
        id: AccountId,
        active: bool,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "UPDATE users SET active = $2, updated_at_ms = $3 WHERE id = $1",
                &[&id.get(), &active, &now.as_millis()],
            )
            .await?;
        if n > 0 && !active {
            tx.execute(REVOKE_ALL, &[&id.get(), &now.as_millis()])
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn set_user_role(
        &self,
        id: AccountId,
        role: Role,
        now: UnixMillis,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE users SET role = $2, updated_at_ms = $3 WHERE id = $1",
                &[&id.get(), &role.as_str(), &now.as_millis()],
            )
            .await?;
        Ok(n > 0)
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
            tx.commit().await?;
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
        tx.commit().await?;
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
        let client = self.client().await?;
        let id: i64 = client
            .query_one(
                "INSERT INTO api_keys (name, key_hash, role, created_at_ms)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&name, &key_hash, &role.as_str(), &now.as_millis()],
            )
            .await?
            .try_get(0)?;
        Ok(ApiKey {
            id,
            name,
            role,
            created_at: now,
            revoked_at: None,
        })
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
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE api_keys SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
                &[&id, &now.as_millis()],
            )
            .await?;
        Ok(n > 0)
    }
}
