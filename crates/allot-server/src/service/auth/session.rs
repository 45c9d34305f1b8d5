//! Console sessions: a sign-in from the browser holds a refresh token in an HttpOnly cookie,
//! never rotated, looked up on every request (so a sign-out, a deactivation or a password
//! change ends it at once, and a role change shows at once), and ending
//! [`CONSOLE_SESSION_TTL`] after the sign-in. Each session has a CSRF token, an HMAC of the
//! session's hash: stateless, the same on every instance, useless without the cookie.

use std::time::Duration;

use allot_domain::auth::{AccountId, Email, Role};
use allot_storage::User;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Auth, Principal, PrincipalId, REFRESH_PREFIX, millis, sha256_hex};
use crate::ServiceError;

/// How long a console sign-in lasts, however active: a working day.
pub const CONSOLE_SESSION_TTL: Duration = Duration::from_secs(12 * 3_600);

/// A live console session: who holds it and the CSRF token its forms and calls carry.
#[derive(Clone)]
pub struct Session {
    pub user: AccountId,
    pub email: Email,
    pub role: Role,
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn principal(&self) -> Principal {
        Principal {
            id: PrincipalId::User(self.user),
            role: self.role,
        }
    }
}

pub(super) fn csrf_key(secret: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"allot console csrf v1");
    mac.finalize().into_bytes().into()
}

impl Auth {
    /// The session a console cookie holds, if it is live; `Unauthenticated` otherwise.
    pub async fn session(&self, token: &str) -> Result<Session, ServiceError> {
        if !token.starts_with(REFRESH_PREFIX) || token.len() > 256 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = sha256_hex(token);
        let now = self.clock.now();
        let user = self
            .store
            .session_user(
                hash.clone(),
                now.plus_millis(-millis(CONSOLE_SESSION_TTL)),
                now,
            )
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        Ok(self.session_of(user, &hash))
    }

    /// Signs in from the console: the same checks (and limits, applied by the caller) as the
    /// API's sign-in; answers the cookie's value and the session.
    pub async fn start_session(
        &self,
        email: &Email,
        password: &str,
    ) -> Result<(String, Session), ServiceError> {
        let tokens = self.login(email, password).await?;
        let session = self.session_of(tokens.user, &sha256_hex(&tokens.refresh_token));
        Ok((tokens.refresh_token, session))
    }

    /// Whether `presented` is the CSRF token of the session `token` (constant time).
    pub fn csrf_valid(&self, token: &str, presented: &str) -> bool {
        let Ok(presented) = hex_bytes(presented) else {
            return false;
        };
        self.csrf_mac(&sha256_hex(token))
            .verify_slice(&presented)
            .is_ok()
    }

    fn session_of(&self, user: User, hash: &str) -> Session {
        Session {
            user: user.id,
            email: user.email,
            role: user.role,
            csrf: super::hex(&self.csrf_mac(hash).finalize().into_bytes()),
        }
    }

    fn csrf_mac(&self, session_hash: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.csrf_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(session_hash.as_bytes());
        mac
    }
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, ()> {
    if s.len() != 64 || !s.is_ascii() {
        return Err(());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| ()))
        .collect()
}
