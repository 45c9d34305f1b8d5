//! Accounts that sign in: roles, e-mail addresses and the password policy (issue 8).
//!
//! A password is a secret: it has no `Display`, and its `Debug` prints `***`, so it cannot leak
//! into a log line or an error message by accident.

use std::fmt;

use crate::DomainError;

pub const EMAIL_MAX_CHARS: usize = 254;
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 256;

/// The id of an account (a user), assigned by storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(i64);

impl AccountId {
    pub fn new(id: i64) -> Self {
        AccountId(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What an account or an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Campaigns, coupons, discount codes, sales.
    Marketing,
    /// Inventory, fulfilment.
    Warehouse,
    /// Read orders, change their status.
    Support,
    /// Own orders, own coupons, own notifications.
    Customer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Marketing,
        Role::Warehouse,
        Role::Support,
        Role::Customer,
    ];

    /// Parses the role's name as [`Role::as_str`] spells it; `field` names the input.
    pub fn parse_field(raw: &str, field: &'static str) -> Result<Self, DomainError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                DomainError::invalid(
                    field,
                    "must be one of admin, marketing, warehouse, support, customer",
                )
            })
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::parse_field(raw, "role")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Marketing => "marketing",
            Role::Warehouse => "warehouse",
            Role::Support => "support",
            Role::Customer => "customer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An e-mail address, lowercased: one `@` with something on each side, at most 254
/// characters, no white space or control characters. Deliberately simple: the address is an
/// account name here, not something Allot delivers mail to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        const FIELD: &str = "email";
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid(FIELD, "must not be empty"));
        }
        // The bound holds for what was sent, surrounding white space included, as the API's
        // schema states it (`maxLength` of the field as sent).
        if raw.chars().count() > EMAIL_MAX_CHARS {
            return Err(DomainError::invalid(
                FIELD,
                format!("must be at most {EMAIL_MAX_CHARS} characters"),
            ));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DomainError::invalid(
                FIELD,
                "must not hold white space or control characters",
            ));
        }
        let mut parts = trimmed.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DomainError::invalid(FIELD, "must hold exactly one @"));
        };
        if local.is_empty() || domain.is_empty() {
            return Err(DomainError::invalid(
                FIELD,
                "must have a name before and a domain after the @",
            ));
        }
        let email = trimmed.to_lowercase();
        // Lower case may be longer (`İ` is two characters): the bound holds for what is kept too.
        if email.chars().count() > EMAIL_MAX_CHARS {
            return Err(DomainError::invalid(
                FIELD,
                format!("must be at most {EMAIL_MAX_CHARS} characters"),
            ));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the policy: 12 to 256 characters. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks a new password against the policy; `field` names the input.
    pub fn parse_field(raw: &str, field: &'static str) -> Result<Self, DomainError> {
        let n = raw.chars().count();
        if n < PASSWORD_MIN_CHARS {
            return Err(DomainError::invalid(
                field,
                format!("must be at least {PASSWORD_MIN_CHARS} characters"),
            ));
        }
        if n > PASSWORD_MAX_CHARS {
            return Err(DomainError::invalid(
                field,
                format!("must be at most {PASSWORD_MAX_CHARS} characters"),
            ));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::parse_field(raw, "password")
    }

    /// The secret itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unknown_ones_name_the_field() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(Role::parse("root").unwrap_err().field(), "role");
        assert!(Role::parse("Admin").is_err());
    }

    #[test]
    fn an_email_longer_once_lower_cased_is_refused() {
        let at = format!("{}@x", "İ".repeat(126));
        assert_eq!(at.chars().count(), 128);
        assert!(Email::parse(&at).is_ok());
        let long = format!("{}@x", "İ".repeat(127));
        assert_eq!(Email::parse(&long).unwrap_err().field(), "email");
    }

    #[test]
    fn emails_are_lowercased_and_need_exactly_one_at() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in ["", "ann", "ann@@x", "a@b@c", "@x", "ann@", "a n@x"] {
            assert_eq!(Email::parse(bad).unwrap_err().field(), "email", "{bad:?}");
        }
        let long = format!("{}@x.io", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        // The bound counts what was sent, as the API's schema says (found by the fuzzer).
        let at_bound = format!("{}@x.io", "a".repeat(249));
        assert!(Email::parse(&at_bound).is_ok());
        assert!(Email::parse(&format!("\n{at_bound}")).is_err());
    }

    #[test]
    fn passwords_follow_the_length_policy_and_never_print() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(257)).is_err());
        let p = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert!(!format!("{p:?}").contains("horse"));
        assert_eq!(
            Password::parse_field("x", "new_password")
                .unwrap_err()
                .field(),
            "new_password"
        );
    }
}
