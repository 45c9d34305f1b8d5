//! Sign-in (issue 8): Argon2id passwords, short-lived HS256 access tokens, rotating refresh
//! tokens with reuse detection, and service API keys.
//!
//! Secrets never leave this module in a form that prints: refresh tokens and API keys are
//! stored as their SHA-256, passwords as Argon2id PHC strings, and the signing key is never
//! logged. The signing algorithm is fixed here (HS256); a token whose header names any other
//! algorithm, `none` included, is refused before its signature is looked at.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use allot_domain::Clock;
use allot_domain::auth::{AccountId, Email, Password, Role};
use allot_storage::{AccountChange, ApiKey, PasswordSet, Rotation, Store, User, UserQuery};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::ServiceError;
pub use crate::caller::PrincipalId;
use crate::secret::Secret;

mod session;
pub use session::{CONSOLE_SESSION_TTL, Session};

pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 900;
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 3_600;
/// A sign-in can be kept alive by refreshing for at most this long (90 days), however often it
/// is refreshed: a stolen refresh token chain ends too.
pub const DEFAULT_REFRESH_FAMILY_TTL_SECS: u64 = 90 * 24 * 3_600;

/// Sign-in settings: the JWT signing secret and token lifetimes.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `None`: a random secret is made at start (tokens do not survive a restart and are not
    /// accepted by other instances).
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long after a sign-in its refresh tokens stop rotating (the family's absolute
    /// lifetime); past it the user signs in again.
    pub refresh_family_ttl: Duration,
    /// True: the customer-facing calls of the original public contracts (discount-code
    /// `UseCode`, campaign `IssueCoupon` and `GetCampaign`, flash-sale items, checkout and
    /// purchase) are served without a credential too, for clients built before sign-in.
    pub open_public_contracts: bool,
    /// The networks whose callers get the originals' admin calls without a credential
    /// (`policy::Rule::admin_contract`); empty: none.
    pub open_admin_contracts_from: Vec<ipnet::IpNet>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: None,
            access_token_ttl: Duration::from_secs(DEFAULT_ACCESS_TOKEN_TTL_SECS),
            refresh_token_ttl: Duration::from_secs(DEFAULT_REFRESH_TOKEN_TTL_SECS),
            refresh_family_ttl: Duration::from_secs(DEFAULT_REFRESH_FAMILY_TTL_SECS),
            open_public_contracts: false,
            open_admin_contracts_from: Vec::new(),
        }
    }
}

pub const ISSUER: &str = "allot";
pub const AUDIENCE: &str = "allot-api";
const REFRESH_PREFIX: &str = "rt_";
pub const API_KEY_PREFIX: &str = "ak_";

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iss: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
    /// The user's token generation when the token was signed: a token of an older one is
    /// refused (deactivated, role or password changed since). Tokens signed before
    /// generations existed count as generation 0, which every user had then.
    #[serde(default, rename = "gen")]
    generation: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub id: PrincipalId,
    pub role: Role,
}

/// What a sign-in or a refresh hands out. `Debug` leaves the tokens out.
pub struct Tokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub user: User,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

pub struct Auth {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// How long a sign-in's refresh tokens can be rotated, from the sign-in on.
    refresh_family_ttl: Duration,
    /// A hash to verify against when the email is unknown, so that answer takes as long as a
    /// wrong password.
    dummy_hash: OnceCell<String>,
    /// API keys recently proven, by the SHA-256 of the key: saves a database read per request
    /// of a machine client. An entry lives [`API_KEY_CACHE_TTL`], so a key revoked elsewhere
    /// (another instance, the CLI) stops working within that time; revoked here, at once.
    api_keys: std::sync::Mutex<HashMap<String, (Principal, std::time::Instant)>>,
    hashing: PasswordHashing,
    /// Users whose access tokens were checked recently, by id: their token generation and
    /// whether they are active, as read at the instant kept. An entry lives
    /// [`TOKEN_STATE_CACHE_TTL`], so a revocation made elsewhere (another instance, SQL by
    /// hand) stops older tokens within that time; made here, at once.
    token_states: std::sync::Mutex<HashMap<i64, (TokenState, std::time::Instant)>>,
    /// Moves with every revocation made here: a state read from the database before one is
    /// not kept after it (it may predate the change).
    token_epoch: std::sync::atomic::AtomicU64,
    /// Signs the console's CSRF tokens (see [`session`]); derived from the signing secret, so
    /// every instance sharing that secret accepts them.
    csrf_key: [u8; 32],
}

/// What decides whether a user's access tokens still hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokenState {
    generation: i64,
    active: bool,
}

/// How long a user's token generation is believed without asking the database again: a
/// deactivation, role change or password change stops older access tokens on every instance
/// within this time (one read per user per instance per this time, not one per request).
pub const TOKEN_STATE_CACHE_TTL: Duration = Duration::from_secs(5);
/// Users kept at most; past it the cache starts over.
const TOKEN_STATE_CACHE_MAX: usize = 100_000;

/// How long a proven API key is believed without asking the database again.
pub const API_KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; past it the cache starts over (unknown keys are never kept).
const API_KEY_CACHE_MAX: usize = 10_000;

impl Auth {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: &AuthSettings) -> Self {
        let secret: Vec<u8> = match &settings.jwt_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "no jwt_secret configured (--jwt-secret / ALLOT_JWT_SECRET): signing with a \
                     random one made at start; access tokens will not survive a restart and \
                     other instances will not accept them"
                );
                random_bytes(64)
            }
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_exp = true;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Auth {
            store,
            clock,
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            access_ttl: settings.access_token_ttl,
            refresh_ttl: settings.refresh_token_ttl,
            refresh_family_ttl: settings.refresh_family_ttl,
            dummy_hash: OnceCell::new(),
            api_keys: std::sync::Mutex::new(HashMap::new()),
            hashing: PasswordHashing::new(
                PASSWORD_HASHES_IN_FLIGHT_MAX,
                Duration::from_millis(PASSWORD_HASH_WAIT_MAX_MS),
            ),
            token_states: std::sync::Mutex::new(HashMap::new()),
            token_epoch: std::sync::atomic::AtomicU64::new(0),
            csrf_key: session::csrf_key(&secret),
        }
    }

    /// Creates an active user (the CLI's bootstrap, and tests).
    pub async fn create_user(
        &self,
        email: Email,
        password: Password,
        role: Role,
    ) -> Result<User, ServiceError> {
        let hash = self.hashing.hash(password).await?;
        self.store
            .create_user(email, hash, role, self.clock.now())
            .await?
            .ok_or(ServiceError::EmailTaken)
    }

    /// Checks the credentials and hands out a token pair. An unknown email and a wrong
    /// password answer alike, after about the same time.
    pub async fn login(&self, email: &Email, password: &str) -> Result<Tokens, ServiceError> {
        if password.is_empty() {
            return Err(ServiceError::InvalidArgument {
                field: "password",
                message: "password: must not be empty".to_owned(),
            });
        }
        let user = self.store.user_by_email(email).await?;
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => self.dummy_hash().await?,
        };
        let ok = self.hashing.verify(password.to_owned(), hash).await?;
        match user {
            // Said only to whoever knows the password: it tells nothing to a guesser.
            Some(user) if ok && user.active && !user.email_verified => {
                Err(ServiceError::EmailNotVerified)
            }
            Some(user) if ok && user.active => self.issue(user).await,
            _ => Err(ServiceError::InvalidCredentials),
        }
    }

    /// Rotates a refresh token: the old one is revoked, a new pair handed out. A token that
    /// was revoked before revokes every refresh token of its user.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ServiceError> {
        let old = refresh_hash(refresh_token)?;
        let (token, hash) = new_secret(REFRESH_PREFIX);
        let now = self.clock.now();
        match self
            .store
            .rotate_refresh_token(
                old,
                hash,
                now.plus_millis(millis(self.refresh_ttl)),
                now.plus_millis(-millis(self.refresh_family_ttl)),
                now,
            )
            .await?
        {
            Rotation::Rotated { user } => {
                let user = self
                    .store
                    .user_by_id(user)
                    .await?
                    .filter(|u| u.active)
                    .ok_or(ServiceError::InvalidToken)?;
                let access = self.access_token(&user)?;
                Ok(Tokens {
                    access_token: access,
                    expires_in: self.access_ttl.as_secs(),
                    refresh_token: token,
                    user,
                })
            }
            Rotation::Reused { user, revoked } => {
                tracing::warn!(
                    user = %user,
                    revoked,
                    "a revoked refresh token was presented again; every refresh token of the \
                     user is revoked"
                );
                Err(ServiceError::InvalidToken)
            }
            Rotation::Expired | Rotation::Unknown => Err(ServiceError::InvalidToken),
        }
    }

    /// Revokes a refresh token (sign-out).
    pub async fn logout(&self, refresh_token: &str) -> Result<(), ServiceError> {
        let hash = refresh_hash(refresh_token)?;
        if self
            .store
            .revoke_refresh_token(hash, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::InvalidToken)
        }
    }

    pub async fn user(&self, id: AccountId) -> Result<User, ServiceError> {
        self.store
            .user_by_id(id)
            .await?
            .filter(|u| u.active)
            .ok_or(ServiceError::Unauthenticated)
    }

    /// Changes the password after checking the current one; every refresh token of the user
    /// is revoked in the same transaction.
    pub async fn change_password(
        &self,
        id: AccountId,
        current: &str,
        new: &str,
    ) -> Result<(), ServiceError> {
        if current.is_empty() {
            return Err(ServiceError::InvalidArgument {
                field: "current_password",
                message: "current_password: must not be empty".to_owned(),
            });
        }
        let new = Password::parse_field(new, "new_password")?;
        let user = self.user(id).await?;
        if !self
            .hashing
            .verify(current.to_owned(), user.password_hash)
            .await?
        {
            return Err(ServiceError::InvalidCredentials);
        }
        let hash = self.hashing.hash(new).await?;
        let changed = self
            .store
            .set_password(id, hash, PasswordSet::Changed, self.clock.now())
            .await?;
        // The generation moved (every older access token, this one included, is refused):
        // here at once, elsewhere within TOKEN_STATE_CACHE_TTL.
        self.forget_token_state(id);
        if changed {
            Ok(())
        } else {
            Err(ServiceError::Unauthenticated)
        }
    }

    /// Activates or deactivates a user. Deactivated, its access tokens stop (here at once,
    /// on other instances within [`TOKEN_STATE_CACHE_TTL`]) and its refresh tokens are
    /// revoked. The last active admin cannot be deactivated.
    pub async fn set_active(&self, id: AccountId, active: bool) -> Result<User, ServiceError> {
        let change = self
            .store
            .set_user_active(id, active, self.clock.now())
            .await?;
        self.forget_token_state(id);
        changed(change)
    }

    /// Changes a user's role. Its access tokens, which carry the old role, stop (here at
    /// once, elsewhere within [`TOKEN_STATE_CACHE_TTL`]) and its refresh tokens (its sessions,
    /// the console's too) are revoked: it signs in again with the new role. The last active
    /// admin cannot be demoted.
    pub async fn set_role(&self, id: AccountId, role: Role) -> Result<User, ServiceError> {
        let change = self.store.set_user_role(id, role, self.clock.now()).await?;
        self.forget_token_state(id);
        changed(change)
    }

    /// An admin sets a user's password: every session and token of the user stops, as for a
    /// password change.
    pub async fn reset_password(&self, id: AccountId, new: Password) -> Result<(), ServiceError> {
        let hash = self.hashing.hash(new).await?;
        let found = self
            .store
            .set_password(id, hash, PasswordSet::ResetByAdmin, self.clock.now())
            .await?;
        self.forget_token_state(id);
        found
            .then_some(())
            .ok_or(ServiceError::NotFound { what: "user" })
    }

    /// A user in any state (an admin's view).
    pub async fn find_user(&self, id: AccountId) -> Result<User, ServiceError> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "user" })
    }

    pub async fn users(&self, query: UserQuery) -> Result<Vec<User>, ServiceError> {
        Ok(self.store.users(query).await?)
    }

    pub async fn api_keys(&self, after: i64, limit: u32) -> Result<Vec<ApiKey>, ServiceError> {
        Ok(self.store.api_keys(after, limit).await?)
    }

    /// The Argon2id hash of a password that met the policy (for the account flows beside
    /// this service), on the same bounded pool as sign-ins.
    pub(crate) async fn hash_password(&self, password: Password) -> Result<String, ServiceError> {
        self.hashing.hash(password).await
    }

    /// Creates a service API key; answers the key itself, which is stored only as a hash and
    /// cannot be shown again.
    pub async fn create_api_key(
        &self,
        name: &str,
        role: Role,
    ) -> Result<(ApiKey, String), ServiceError> {
        let too_long = name.chars().count() > 128;
        let name = name.trim();
        if name.is_empty() || too_long {
            return Err(ServiceError::InvalidArgument {
                field: "name",
                message: "name: must be 1 to 128 characters".to_owned(),
            });
        }
        let (key, hash) = new_secret(API_KEY_PREFIX);
        let stored = self
            .store
            .create_api_key(name.to_owned(), hash, role, self.clock.now())
            .await?;
        Ok((stored, key))
    }

    /// Stores an API key made elsewhere (a deployment's secret store, a test harness), as a
    /// hash like any other; answers the existing key when this one is stored already. The key
    /// must start with `ak_` and carry at least 32 more characters.
    pub async fn register_api_key(
        &self,
        name: &str,
        key: &str,
        role: Role,
    ) -> Result<ApiKey, ServiceError> {
        let random = key.strip_prefix(API_KEY_PREFIX).unwrap_or_default();
        if random.len() < 32 || key.len() > 256 || !key.is_ascii() {
            return Err(ServiceError::InvalidArgument {
                field: "key",
                message: format!("key: must be {API_KEY_PREFIX} and 32 to 253 ASCII characters"),
            });
        }
        if let Some(existing) = self.api_key(key).await? {
            return Ok(existing);
        }
        Ok(self
            .store
            .create_api_key(name.to_owned(), sha256_hex(key), role, self.clock.now())
            .await?)
    }

    pub async fn revoke_api_key(&self, id: i64) -> Result<(), ServiceError> {
        self.cached_keys()
            .retain(|_, (p, _)| p.id != PrincipalId::ApiKey(id));
        if self.store.revoke_api_key(id, self.clock.now()).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound { what: "api key" })
        }
    }

    /// Who a bearer credential (an access token or an `ak_` API key) belongs to.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, ServiceError> {
        if credential.starts_with(API_KEY_PREFIX) {
            return self.authenticate_api_key(credential).await;
        }
        let data = jsonwebtoken::decode::<Claims>(credential, &self.decoding, &self.validation)
            .map_err(|_| ServiceError::Unauthenticated)?;
        let id = data
            .claims
            .sub
            .parse::<i64>()
            .map_err(|_| ServiceError::Unauthenticated)?;
        let role = Role::parse(&data.claims.role).map_err(|_| ServiceError::Unauthenticated)?;
        let account = AccountId::new(id);
        let state = self.token_state(account).await?;
        if !state.active || state.generation != data.claims.generation {
            return Err(ServiceError::Unauthenticated);
        }
        Ok(Principal {
            id: PrincipalId::User(account),
            role,
        })
    }

    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, ServiceError> {
        if !key.starts_with(API_KEY_PREFIX) || key.len() > 256 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = sha256_hex(key);
        if let Some((principal, at)) = self.cached_keys().get(&hash)
            && at.elapsed() < API_KEY_CACHE_TTL
        {
            return Ok(*principal);
        }
        match self.store.api_key_by_hash(hash.clone()).await? {
            Some(k) if k.revoked_at.is_none() => {
                let principal = Principal {
                    id: PrincipalId::ApiKey(k.id),
                    role: k.role,
                };
                let mut cache = self.cached_keys();
                if cache.len() >= API_KEY_CACHE_MAX {
                    cache.clear();
                }
                cache.insert(hash, (principal, std::time::Instant::now()));
                Ok(principal)
            }
            _ => {
                self.cached_keys().remove(&hash);
                Err(ServiceError::Unauthenticated)
            }
        }
    }

    /// The user's token state: from the cache when read less than
    /// [`TOKEN_STATE_CACHE_TTL`] ago, else from the database. An unknown user is inactive.
    async fn token_state(&self, id: AccountId) -> Result<TokenState, ServiceError> {
        if let Some((state, at)) = self.cached_token_states().get(&id.get())
            && at.elapsed() < TOKEN_STATE_CACHE_TTL
        {
            return Ok(*state);
        }
        let epoch = self.token_epoch.load(std::sync::atomic::Ordering::Acquire);
        let state = match self.store.user_by_id(id).await? {
            Some(user) => TokenState {
                generation: user.token_generation,
                active: user.active,
            },
            None => TokenState {
                generation: -1,
                active: false,
            },
        };
        let mut cache = self.cached_token_states();
        // A revocation made here while the state was read may not be in it: not kept then
        // (this request, begun before the revocation, is still answered with it).
        if self.token_epoch.load(std::sync::atomic::Ordering::Acquire) == epoch {
            if cache.len() >= TOKEN_STATE_CACHE_MAX {
                cache.clear();
            }
            cache.insert(id.get(), (state, std::time::Instant::now()));
        }
        Ok(state)
    }

    /// Drops what this instance believes of the user's tokens, after a change made to them.
    pub(crate) fn forget_token_state(&self, id: AccountId) {
        let mut cache = self.cached_token_states();
        self.token_epoch
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        cache.remove(&id.get());
    }

    fn cached_token_states(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<i64, (TokenState, std::time::Instant)>> {
        // As for the key cache: an entry is written whole or not at all.
        self.token_states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached_keys(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Principal, std::time::Instant)>> {
        // A panic while holding it cannot leave a half-written entry: the map stays usable.
        self.api_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub async fn api_key_by_id(&self, id: i64) -> Result<ApiKey, ServiceError> {
        self.store
            .api_key_by_id(id)
            .await?
            .ok_or(ServiceError::Unauthenticated)
    }

    pub async fn api_key(&self, key: &str) -> Result<Option<ApiKey>, ServiceError> {
        Ok(self.store.api_key_by_hash(sha256_hex(key)).await?)
    }

    async fn issue(&self, user: User) -> Result<Tokens, ServiceError> {
        let access = self.access_token(&user)?;
        let (refresh, hash) = new_secret(REFRESH_PREFIX);
        let now = self.clock.now();
        self.store
            .insert_refresh_token(
                user.id,
                hash,
                now.plus_millis(millis(self.refresh_ttl)),
                now,
            )
            .await?;
        Ok(Tokens {
            access_token: access,
            expires_in: self.access_ttl.as_secs(),
            refresh_token: refresh,
            user,
        })
    }

    fn access_token(&self, user: &User) -> Result<String, ServiceError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role.as_str().to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: iat + self.access_ttl.as_secs(),
            iat,
            jti: hex(&random_bytes(16)),
            generation: user.token_generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ServiceError::Crypto(format!("signing an access token: {e}")))
    }

    async fn dummy_hash(&self) -> Result<String, ServiceError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                let pw = Password::parse(&hex(&random_bytes(16)))?;
                self.hashing.hash(pw).await
            })
            .await
            .cloned()
    }
}

/// Argon2 hashes computed at once, at most. Each holds 19 MiB and one core for tens of
/// milliseconds (`Argon2::default()`: m = 19 MiB, t = 2, p = 1), and runs on the blocking pool
/// (up to 512 threads): unbounded, a flood of sign-ins would take gigabytes and every core.
/// Four take 76 MiB and keep the 2-core machines we run on answering everything else.
pub const PASSWORD_HASHES_IN_FLIGHT_MAX: usize = 4;
/// Longest a sign-in or password change waits for a hashing slot before it is answered 503
/// `busy` (with `Retry-After`): at about 40 ms a hash, 5 s is a queue of some 500 callers.
pub const PASSWORD_HASH_WAIT_MAX_MS: u64 = 5_000;

/// Argon2id with the crate's default parameters, off the async workers, at most
/// [`PASSWORD_HASHES_IN_FLIGHT_MAX`] at once.
pub(crate) struct PasswordHashing {
    slots: Arc<tokio::sync::Semaphore>,
    wait_max: Duration,
}

impl PasswordHashing {
    pub(crate) fn new(in_flight_max: usize, wait_max: Duration) -> Self {
        PasswordHashing {
            slots: Arc::new(tokio::sync::Semaphore::new(in_flight_max.max(1))),
            wait_max,
        }
    }

    /// A hashing slot, held by the blocking task until its hash is done (even when the
    /// caller has gone), or `Busy` after `wait_max`.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ServiceError> {
        match tokio::time::timeout(self.wait_max, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(ServiceError::Busy {
                what: "hashing passwords",
            }),
        }
    }

    pub(crate) async fn hash(&self, password: Password) -> Result<String, ServiceError> {
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            Argon2::default()
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| ServiceError::Crypto(format!("hashing a password: {e}")))
        })
        .await
        .map_err(|e| ServiceError::Crypto(format!("password hashing task: {e}")))?
    }

    /// True if `password` matches the PHC string `hash`; a malformed hash is an error.
    async fn verify(&self, password: String, hash: String) -> Result<bool, ServiceError> {
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            match Argon2::default().verify_password(password.as_bytes(), hash.as_str()) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(e) => Err(ServiceError::Crypto(format!("verifying a password: {e}"))),
            }
        })
        .await
        .map_err(|e| ServiceError::Crypto(format!("password verification task: {e}")))?
    }
}

fn changed(change: AccountChange) -> Result<User, ServiceError> {
    match change {
        AccountChange::Done(user) => Ok(user),
        AccountChange::NotFound => Err(ServiceError::NotFound { what: "user" }),
        AccountChange::LastAdmin => Err(ServiceError::LastAdmin),
    }
}

fn refresh_hash(token: &str) -> Result<String, ServiceError> {
    if token.is_empty() {
        return Err(ServiceError::InvalidArgument {
            field: "refresh_token",
            message: "refresh_token: must not be empty".to_owned(),
        });
    }
    if !token.starts_with(REFRESH_PREFIX) || token.len() > 256 {
        return Err(ServiceError::InvalidToken);
    }
    Ok(sha256_hex(token))
}

/// A new random secret with its prefix, and its SHA-256 (what storage keeps).
pub(crate) fn new_secret(prefix: &str) -> (String, String) {
    let secret = format!("{prefix}{}", hex(&random_bytes(32)));
    let hash = sha256_hex(&secret);
    (secret, hash)
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_hash_past_the_bound_waits_then_is_refused_busy() {
        let hashing = PasswordHashing::new(2, Duration::from_millis(100));
        let first = hashing.slot().await.unwrap();
        let _second = hashing.slot().await.unwrap();
        match hashing
            .verify("guess".to_owned(), "$argon2id$".to_owned())
            .await
        {
            Err(ServiceError::Busy { .. }) => {}
            other => panic!("expected busy, got {other:?}"),
        }
        drop(first);
        // A slot given back serves the next caller.
        assert!(hashing.slot().await.is_ok());
    }
}
