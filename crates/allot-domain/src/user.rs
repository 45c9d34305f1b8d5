//! Identifiers that clients supply: user ids and idempotency keys.

use std::fmt;

use crate::DomainError;

pub const USER_ID_MAX_CHARS: usize = 128;
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 128;

/// A caller-supplied user id: 1 to 128 printable characters without white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        parse_token(raw, "user_id", USER_ID_MAX_CHARS).map(UserId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key that makes a retried request return the first answer instead of acting twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        parse_token(raw, "idempotency_key", IDEMPOTENCY_KEY_MAX_CHARS).map(IdempotencyKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key as its owner's (see [`crate::event::Origin::idempotency_owner`]): how orders and campaign
    /// issues store it, so that keys of different callers never meet and nobody is answered
    /// another caller's order or code. A key holds no white space, so `<owner> <key>` cannot
    /// be read two ways.
    pub fn owned_by(&self, owner: &str) -> IdempotencyKey {
        IdempotencyKey(format!("{owner} {}", self.0))
    }
}

fn parse_token(raw: &str, field: &'static str, max: usize) -> Result<String, DomainError> {
    if raw.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if raw.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::invalid(
            field,
            "must not hold white space or control characters",
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_keys_of_different_owners_differ() {
        let key = IdempotencyKey::parse("k-1").unwrap();
        assert_eq!(key.owned_by("user:7").as_str(), "user:7 k-1");
        assert_ne!(key.owned_by("user:7"), key.owned_by("user:8"));
    }

    #[test]
    fn user_ids() {
        assert!(UserId::parse("user-42").is_ok());
        assert!(UserId::parse("사용자").is_ok());
        for bad in ["", "a b", "a\nb", &"x".repeat(129)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
