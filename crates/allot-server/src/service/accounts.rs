//! Accounts without the CLI (issue 15): the first admin (a one-time setup link printed at
//! start, or the bootstrap settings), customers' self sign-up with email verification, and
//! password reset by email. Users and API keys as admins manage them are [`Auth`]'s, which
//! owns the token caches every such change must clear.
//!
//! Emails go through the notification outbox (sealed, retried, evented like every other), to
//! the user's own address; their one-time tokens are stored only as SHA-256 hashes, and the
//! events of the outbox carry neither the body nor the address.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use allot_domain::auth::{Email, Password};
use allot_domain::notification::Channel;
use allot_domain::{Clock, UnixMillis};
use allot_storage::notification::NewNotification;
use allot_storage::{FirstAdmin, Store, TokenPurpose, User};

use super::auth::{Auth, new_secret, sha256_hex};
use super::notification::render;
use crate::ServiceError;

/// The base of links before the server knows its bound address.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// How long the setup link printed at start works (unless used first).
pub const SETUP_TOKEN_TTL: Duration = Duration::from_secs(3_600);
/// How long an email verification link works.
pub const VERIFY_EMAIL_TTL: Duration = Duration::from_secs(24 * 3_600);
/// How long a password reset link works.
pub const RESET_PASSWORD_TTL: Duration = Duration::from_secs(3_600);

const SETUP_PREFIX: &str = "st_";
const VERIFY_PREFIX: &str = "ve_";
const RESET_PREFIX: &str = "pr_";
/// Longest token accepted from a client; ours are 67 characters.
const TOKEN_CHARS_MAX: usize = 128;

const VERIFY_SUBJECT: &str = "Confirm your email address";
const VERIFY_BODY: &str = "Welcome to Allot.\n\n\
Confirm your address to finish signing up:\n\n{{ link }}\n\n\
The link works once, for {{ hours }} hours. If you did not sign up, ignore this email.\n";
const RESET_SUBJECT: &str = "Reset your password";
const RESET_BODY: &str = "Someone (we hope you) asked to reset the password of your Allot \
account.\n\nChoose a new password here:\n\n{{ link }}\n\n\
The link works once, for {{ hours }} hour(s). If you did not ask, ignore this email: your \
password stays as it is.\n";

/// Settings of the account flows.
#[derive(Debug, Clone, Default)]
pub struct AccountSettings {
    /// The base URL users reach the server at (links in emails, the setup link). `None`:
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    /// Whether anyone may sign up as a customer (`POST /api/v1/auth/signup`).
    pub allow_signup: bool,
}

/// The setup token of this instance: its hash and when it stops working.
struct SetupToken {
    hash: String,
    expires_at: UnixMillis,
}

pub struct Accounts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    auth: Arc<Auth>,
    settings: AccountSettings,
    /// Set once the server is bound: `public_url`, or `http://<bound address>`.
    base_url: OnceLock<String>,
    /// Kept in memory only: a restart makes a new one, so a link never outlives its process.
    setup: Mutex<Option<SetupToken>>,
}

impl Accounts {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        auth: Arc<Auth>,
        settings: AccountSettings,
    ) -> Self {
        Accounts {
            store,
            clock,
            auth,
            settings,
            base_url: OnceLock::new(),
            setup: Mutex::new(None),
        }
    }

    pub fn signup_allowed(&self) -> bool {
        self.settings.allow_signup
    }

    /// Records where the server listens; the base of every link is `public_url` if set,
    /// else `http://<bound>` (`https://` when the port speaks TLS). The first call wins.
    pub fn set_bound_address(&self, bound: std::net::SocketAddr, tls: bool) {
        let url = match &self.settings.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if tls => format!("https://{bound}"),
            None => format!("http://{bound}"),
        };
        let _ = self.base_url.set(url);
    }

    /// The base URL of links (`http://127.0.0.1:8080` before the server is bound).
    pub fn base_url(&self) -> &str {
        self.base_url
            .get()
            .map_or(DEFAULT_PUBLIC_URL, String::as_str)
    }

    /// Whether an active admin user exists.
    pub async fn admin_exists(&self) -> Result<bool, ServiceError> {
        Ok(self.store.admin_exists().await?)
    }

    /// Creates the first admin from the bootstrap settings when no admin exists; `None` when
    /// one exists already (nothing done).
    pub async fn bootstrap_admin(
        &self,
        email: Email,
        password: Password,
    ) -> Result<Option<User>, ServiceError> {
        if self.admin_exists().await? {
            return Ok(None);
        }
        let hash = self.auth.hash_password(password).await?;
        match self
            .store
            .create_first_admin(email, hash, self.clock.now())
            .await?
        {
            FirstAdmin::Created(user) => Ok(Some(user)),
            FirstAdmin::AdminExists => Ok(None),
            FirstAdmin::EmailTaken => Err(ServiceError::EmailTaken),
        }
    }

    /// Makes this instance's one-time setup token when no admin exists, replacing any
    /// earlier one; answers the link to print (`<base>/setup?token=...`), or `None` when an
    /// admin exists.
    pub async fn open_setup(&self) -> Result<Option<String>, ServiceError> {
        if self.admin_exists().await? {
            *self.setup_slot() = None;
            return Ok(None);
        }
        let (token, hash) = new_secret(SETUP_PREFIX);
        *self.setup_slot() = Some(SetupToken {
            hash,
            expires_at: self.clock.now().plus_millis(millis(SETUP_TOKEN_TTL)),
        });
        Ok(Some(format!("{}/setup?token={token}", self.base_url())))
    }

    /// Creates the first admin with the setup token: only while no admin exists (of two
    /// completions at once, on any instances, exactly one creates it), and the token works
    /// once. `SetupDone` once an admin exists; `Forbidden` naming `token` for a token that is
    /// not this instance's live one.
    pub async fn complete_setup(
        &self,
        token: &str,
        email: Email,
        password: Password,
    ) -> Result<User, ServiceError> {
        if self.admin_exists().await? {
            return Err(ServiceError::SetupDone);
        }
        self.check_setup_token(token)?;
        let hash = self.auth.hash_password(password).await?;
        match self
            .store
            .create_first_admin(email, hash, self.clock.now())
            .await?
        {
            FirstAdmin::Created(user) => {
                *self.setup_slot() = None;
                Ok(user)
            }
            FirstAdmin::AdminExists => {
                *self.setup_slot() = None;
                Err(ServiceError::SetupDone)
            }
            FirstAdmin::EmailTaken => Err(ServiceError::EmailTaken),
        }
    }

    /// Whether `token` is this instance's live setup token (the setup page says so before the
    /// form is filled in, rather than after).
    pub fn setup_token_live(&self, token: &str) -> bool {
        self.check_setup_token(token).is_ok()
    }

    fn check_setup_token(&self, token: &str) -> Result<(), ServiceError> {
        let refused = || ServiceError::Forbidden {
            field: Some("token"),
            message: "token: not this server's setup token, or past its hour; restart the \
                      server for a new link"
                .to_owned(),
        };
        if token.len() > TOKEN_CHARS_MAX || !token.starts_with(SETUP_PREFIX) {
            return Err(refused());
        }
        let hash = sha256_hex(token);
        let slot = self.setup_slot();
        match &*slot {
            Some(live) if live.hash == hash && self.clock.now() < live.expires_at => Ok(()),
            _ => Err(refused()),
        }
    }

    fn setup_slot(&self) -> std::sync::MutexGuard<'_, Option<SetupToken>> {
        // A token is replaced whole or not at all: a panic elsewhere cannot leave half of one.
        self.setup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Self sign-up: a customer that cannot sign in until it follows the link emailed to it.
    /// Answers the same whether or not the email is taken (an existing account gets nothing),
    /// after the same work (a password hash), so the answer tells nobody who has an account.
    pub async fn sign_up(&self, email: Email, password: Password) -> Result<(), ServiceError> {
        if !self.settings.allow_signup {
            return Err(ServiceError::SignupClosed);
        }
        let hash = self.auth.hash_password(password).await?;
        let (token, token_hash) = new_secret(VERIFY_PREFIX);
        let now = self.clock.now();
        let created = self
            .store
            .sign_up(
                email,
                hash,
                token_hash,
                now.plus_millis(millis(VERIFY_EMAIL_TTL)),
                now,
            )
            .await?;
        if let Some(user) = created {
            let link = format!("{}/verify-email?token={token}", self.base_url());
            self.email(&user, VERIFY_SUBJECT, VERIFY_BODY, &link, VERIFY_EMAIL_TTL)
                .await?;
        }
        Ok(())
    }

    /// Uses a verification link's token: the user may sign in from now on.
    pub async fn verify_email(&self, token: &str) -> Result<User, ServiceError> {
        let hash = link_hash(token, VERIFY_PREFIX)?;
        self.store
            .verify_email(hash, self.clock.now())
            .await?
            .ok_or_else(bad_link)
    }

    /// Emails a password reset link to the user of `email`, if there is an active one;
    /// answers the same either way.
    pub async fn forgot_password(&self, email: &Email) -> Result<(), ServiceError> {
        let Some(user) = self.store.user_by_email(email).await?.filter(|u| u.active) else {
            return Ok(());
        };
        let (token, hash) = new_secret(RESET_PREFIX);
        let now = self.clock.now();
        self.store
            .issue_account_token(
                user.id,
                TokenPurpose::ResetPassword,
                hash,
                now.plus_millis(millis(RESET_PASSWORD_TTL)),
                now,
            )
            .await?;
        let link = format!("{}/reset-password?token={token}", self.base_url());
        self.email(&user, RESET_SUBJECT, RESET_BODY, &link, RESET_PASSWORD_TTL)
            .await
    }

    /// Uses a reset link's token: the password is replaced and every session and token of the
    /// user stops (here at once, elsewhere within the token cache's 5 s).
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: Password,
    ) -> Result<User, ServiceError> {
        let hash = link_hash(token, RESET_PREFIX)?;
        let password_hash = self.auth.hash_password(new_password).await?;
        let user = self
            .store
            .reset_password(hash, password_hash, self.clock.now())
            .await?
            .ok_or_else(bad_link)?;
        self.auth.forget_token_state(user.id);
        Ok(user)
    }

    /// Queues an email to the user's own address through the outbox.
    async fn email(
        &self,
        user: &User,
        subject: &str,
        body: &str,
        link: &str,
        valid_for: Duration,
    ) -> Result<(), ServiceError> {
        let context = serde_json::json!({
            "link": link,
            "hours": valid_for.as_secs() / 3_600,
        });
        let body = render(body, &context).map_err(|e| {
            ServiceError::Crypto(format!(
                "rendering an account email's built-in template: {e}"
            ))
        })?;
        let new = NewNotification {
            user: user.id,
            channel: Channel::Email,
            template: None,
            rule: None,
            event_seq: None,
            subject: subject.to_owned(),
            body,
            link: None,
            render_error: None,
        };
        self.store.send_notification(new, self.clock.now()).await?;
        Ok(())
    }
}

/// The stored hash of a link's token, or the refusal of one that cannot be ours.
fn link_hash(token: &str, prefix: &str) -> Result<String, ServiceError> {
    if token.is_empty() {
        return Err(ServiceError::InvalidArgument {
            field: "token",
            message: "token: is required".to_owned(),
        });
    }
    if token.len() > TOKEN_CHARS_MAX || !token.starts_with(prefix) {
        return Err(bad_link());
    }
    Ok(sha256_hex(token))
}

fn bad_link() -> ServiceError {
    ServiceError::InvalidArgument {
        field: "token",
        message: "token: unknown, used or expired; ask for a new link".to_owned(),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
