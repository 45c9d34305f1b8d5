//! Users, refresh tokens and API keys (issue 8). Storage never sees a password, a refresh token
//! or an API key: only the Argon2id hash of the first and the SHA-256 of the others.

use std::fmt;

use allot_domain::UnixMillis;
use allot_domain::auth::{AccountId, Email, Role};
use async_trait::async_trait;

use crate::StorageError;

/// A stored user. `password_hash` is left out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: AccountId,
    pub email: Email,
    pub role: Role,
    pub active: bool,
    pub password_hash: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Stamped into every access token; deactivating, changing the role or the password
    /// bumps it (a database trigger, so a change by hand counts too), and a token of an older
    /// generation is refused.
    pub token_generation: i64,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A service API key (machine clients); `revoked_at` is set once revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is revoked now and `new_hash` replaces it.
    Rotated { user: AccountId },
    /// The token had been revoked already (reuse of a stolen or replayed token): every live
    /// refresh token of its user was revoked.
    Reused { user: AccountId, revoked: u64 },
    /// The token is past its expiry.
    Expired,
    /// No such token.
    Unknown,
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new active user; `None` if the email is taken.
    async fn create_user(
        &self,
        email: Email,
        password_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError>;

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StorageError>;

    async fn user_by_id(&self, id: AccountId) -> Result<Option<User>, StorageError>;

    /// Replaces the password hash and revokes every live refresh token of the user, in one
    /// transaction; false if there is no such user.
    async fn set_password(
        &self,
        id: AccountId,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<bool, StorageError>;

    /// Stores a new refresh token (its hash).
    async fn insert_refresh_token(
        &self,
        user: AccountId,
        token_hash: String,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StorageError>;

    /// Atomically revokes the live token `token_hash` and stores `new_hash` as its successor
    /// (of the same family: the sign-in that started the chain); a token revoked before
    /// revokes its whole family instead (see [`Rotation`]). A family started before
    /// `family_started_after` is over: `Expired`, whatever the token's own expiry.
    async fn rotate_refresh_token(
        &self,
        token_hash: String,
        new_hash: String,
        new_expires_at: UnixMillis,
        family_started_after: UnixMillis,
        now: UnixMillis,
    ) -> Result<Rotation, StorageError>;

    /// Activates or deactivates a user; deactivating also revokes every live refresh token.
    /// False if there is no such user.
    async fn set_user_active(
        &self,
        id: AccountId,
        active: bool,
        now: UnixMillis,
    ) -> Result<bool, StorageError>;

    /// Changes a user's role; false if there is no such user.
    async fn set_user_role(
        &self,
        id: AccountId,
        role: Role,
        now: UnixMillis,
    ) -> Result<bool, StorageError>;

    /// The active user holding the live refresh token `token_hash` (unrevoked, unexpired,
    /// stored after `created_after`): a console session is such a token, held in a cookie and
    /// checked on every request, so that a sign-out, deactivation or password change ends it
    /// at once and a role change shows at once.
    async fn session_user(
        &self,
        token_hash: String,
        created_after: UnixMillis,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError>;

    /// Revokes one token; false if it is unknown or was revoked already.
    async fn revoke_refresh_token(
        &self,
        token_hash: String,
        now: UnixMillis,
    ) -> Result<bool, StorageError>;

    /// Revokes every live refresh token of the user; answers how many.
    async fn revoke_user_refresh_tokens(
        &self,
        user: AccountId,
        now: UnixMillis,
    ) -> Result<u64, StorageError>;

    async fn create_api_key(
        &self,
        name: String,
        key_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<ApiKey, StorageError>;

    /// The key with this hash, revoked or not.
    async fn api_key_by_hash(&self, key_hash: String) -> Result<Option<ApiKey>, StorageError>;

    /// The key with this id, revoked or not.
    async fn api_key_by_id(&self, id: i64) -> Result<Option<ApiKey>, StorageError>;

    /// False if there is no such key or it was revoked already.
    async fn revoke_api_key(&self, id: i64, now: UnixMillis) -> Result<bool, StorageError>;
}

/// The condition of [`UserStore::session_user`], after `SELECT <user columns> FROM users`
/// (both backends bind `$n`): the token's hash, now, and the earliest creation time.
pub(crate) const SESSION_USER: &str = "WHERE active AND id = (SELECT user_id FROM refresh_tokens \
     WHERE token_hash = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2 AND created_at_ms > $3)";

pub(crate) fn role_of(raw: &str) -> Result<Role, StorageError> {
    Role::parse(raw).map_err(|_| StorageError::Corrupt(format!("stored role {raw:?}")))
}

pub(crate) fn email_of(raw: &str) -> Result<Email, StorageError> {
    Email::parse(raw).map_err(|_| StorageError::Corrupt(format!("stored email {raw:?}")))
}
