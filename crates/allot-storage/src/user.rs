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
    /// False for a user who signed up and has not yet followed its verification link; users
    /// made by an admin or the CLI are verified from the start.
    pub email_verified: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("active", &self.active)
            .field("email_verified", &self.email_verified)
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

/// Users listed at most per page.
pub const USERS_PAGE_MAX: u32 = 500;
/// API keys listed at most per page.
pub const API_KEYS_PAGE_MAX: u32 = 500;

/// A page of users: ids above `after`, in id order, matching every filter given. An email is
/// matched exactly, through its blind index (sealed emails cannot be searched by part).
#[derive(Debug, Clone)]
pub struct UserQuery {
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub email: Option<Email>,
    pub after: i64,
    pub limit: u32,
}

/// What a change to a user's role or active flag found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountChange {
    /// Done (or already so); the user as it is now.
    Done(User),
    NotFound,
    /// Refused: it would leave no active admin.
    LastAdmin,
}

/// Why a password is replaced: the event recorded says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSet {
    /// By the user, who gave the current one (`UserPasswordChanged`).
    Changed,
    /// By an admin (`UserPasswordReset`, `by: admin`).
    ResetByAdmin,
}

/// What a one-time token sent by email is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
        }
    }
}

/// What creating the first admin found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstAdmin {
    Created(User),
    /// An active admin exists already: nothing was made.
    AdminExists,
    /// A user with this email exists (and is no active admin).
    EmailTaken,
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new active, verified user, with its `UserCreated` event; `None` if the email
    /// is taken.
    async fn create_user(
        &self,
        email: Email,
        password_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError>;

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StorageError>;

    /// A page of users (see [`UserQuery`]).
    async fn users(&self, query: UserQuery) -> Result<Vec<User>, StorageError>;

    /// Whether an active admin user exists (API keys do not count: nobody signs in with one).
    async fn admin_exists(&self) -> Result<bool, StorageError>;

    /// Creates an active admin only if no active admin exists, atomically: of two callers at
    /// once (on several instances too) at most one creates it.
    async fn create_first_admin(
        &self,
        email: Email,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<FirstAdmin, StorageError>;

    /// A customer who signed up: stored unverified with its verification token, and the
    /// `UserSignedUp` event, in one transaction. `None` if the email is taken (nothing made).
    async fn sign_up(
        &self,
        email: Email,
        password_hash: String,
        token_hash: String,
        token_expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError>;

    /// Stores a one-time token for the user, replacing any it held for the same purpose.
    async fn issue_account_token(
        &self,
        user: AccountId,
        purpose: TokenPurpose,
        token_hash: String,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StorageError>;

    /// Uses a live verification token: the user becomes verified (`UserEmailVerified`) and the
    /// token is gone. `None` if it is unknown, used or expired.
    async fn verify_email(
        &self,
        token_hash: String,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError>;

    /// Uses a live reset token: the password is replaced, every refresh token of the user
    /// revoked, the address counts as verified (the link reached it) and the token is gone, in
    /// one transaction (`UserPasswordReset`, `by: email`). `None` if it is unknown, used or
    /// expired.
    async fn reset_password(
        &self,
        token_hash: String,
        password_hash: String,
        now: UnixMillis,
    ) -> Result<Option<User>, StorageError>;

    async fn user_by_id(&self, id: AccountId) -> Result<Option<User>, StorageError>;

    /// Replaces the password hash and revokes every live refresh token of the user, with the
    /// event `why` names, in one transaction; false if there is no such user.
    async fn set_password(
        &self,
        id: AccountId,
        password_hash: String,
        why: PasswordSet,
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
    /// Refused if it would deactivate the last active admin. A change records
    /// `UserDeactivated` or `UserReactivated`; asking for the state it is in changes nothing.
    async fn set_user_active(
        &self,
        id: AccountId,
        active: bool,
        now: UnixMillis,
    ) -> Result<AccountChange, StorageError>;

    /// Changes a user's role (`UserRoleChanged`) and revokes every live refresh token of the
    /// user (its sessions end: the next sign-in carries the new role). Refused if it would
    /// demote the last active admin.
    async fn set_user_role(
        &self,
        id: AccountId,
        role: Role,
        now: UnixMillis,
    ) -> Result<AccountChange, StorageError>;

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

    /// Stores a key, with its `ApiKeyCreated` event.
    async fn create_api_key(
        &self,
        name: String,
        key_hash: String,
        role: Role,
        now: UnixMillis,
    ) -> Result<ApiKey, StorageError>;

    /// Keys with ids above `after`, revoked ones too, in id order, at most `limit`.
    async fn api_keys(&self, after: i64, limit: u32) -> Result<Vec<ApiKey>, StorageError>;

    /// The key with this hash, revoked or not.
    async fn api_key_by_hash(&self, key_hash: String) -> Result<Option<ApiKey>, StorageError>;

    /// The key with this id, revoked or not.
    async fn api_key_by_id(&self, id: i64) -> Result<Option<ApiKey>, StorageError>;

    /// Revokes a key (`ApiKeyRevoked`); false if there is no such key or it was revoked
    /// already.
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

/// The events of accounts. No payload holds an email: emails are sealed at rest, and the log
/// and its consumers would keep them in plain text.
pub(crate) mod events {
    use allot_domain::UnixMillis;
    use allot_domain::auth::Role;
    use allot_domain::event::{EventType, NewEvent};

    use super::{ApiKey, User};

    fn user_payload(u: &User) -> serde_json::Value {
        serde_json::json!({
            "user_id": u.id.get(),
            "role": u.role.as_str(),
            "active": u.active,
            "email_verified": u.email_verified,
        })
    }

    pub(crate) fn user(kind: EventType, u: &User, at: UnixMillis) -> NewEvent {
        NewEvent::api(kind, at, user_payload(u).to_string())
    }

    pub(crate) fn role_changed(u: &User, from: Role, at: UnixMillis) -> NewEvent {
        let mut payload = user_payload(u);
        payload["from"] = from.as_str().into();
        NewEvent::api(EventType::UserRoleChanged, at, payload.to_string())
    }

    /// `by`: `admin` or `email` (a reset link).
    pub(crate) fn password_reset(u: &User, by: &str, at: UnixMillis) -> NewEvent {
        let mut payload = user_payload(u);
        payload["by"] = by.into();
        NewEvent::api(EventType::UserPasswordReset, at, payload.to_string())
    }

    pub(crate) fn api_key(kind: EventType, k: &ApiKey, at: UnixMillis) -> NewEvent {
        let payload = serde_json::json!({
            "api_key_id": k.id,
            "name": k.name,
            "role": k.role.as_str(),
        });
        NewEvent::api(kind, at, payload.to_string())
    }
}
