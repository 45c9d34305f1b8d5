//! Notifications (issue 8): the channels a message travels by, the names of templates and
//! rules, a notification's delivery status and the retry schedule.

use std::fmt;

use crate::DomainError;

/// How a notification reaches its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Sent over SMTP to the user's email address.
    Email,
    /// Stored in the user's inbox (`GET /api/v1/notifications`).
    InApp,
    /// A text message to the user's phone, POSTed to the shop's notification gateway.
    Sms,
    /// A push message to the user's devices, POSTed to the shop's notification gateway (which
    /// knows the devices of a user id).
    Push,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::InApp, Channel::Sms, Channel::Push];

    pub fn parse_field(raw: &str, field: &'static str) -> Result<Self, DomainError> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == raw)
            .ok_or_else(|| DomainError::invalid(field, "must be email, in_app, sms or push"))
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::InApp => "in_app",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }

    /// Whether the notification gateway carries it (SMS and push).
    pub const fn via_gateway(self) -> bool {
        matches!(self, Channel::Sms | Channel::Push)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest template or rule name, in bytes.
pub const NAME_LEN_MAX: usize = 64;

/// The name of a template or a rule: 1 to 64 of `a-z`, `0-9`, `_`, `-`, starting with a
/// letter (so it can never be mistaken for a numeric id in a path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    pub fn parse_field(raw: &str, field: &'static str) -> Result<Self, DomainError> {
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        let starts = raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if raw.is_empty() || raw.len() > NAME_LEN_MAX || !ok_chars || !starts {
            return Err(DomainError::invalid(
                field,
                format!(
                    "must be 1 to {NAME_LEN_MAX} characters of a-z, 0-9, _ and -, starting with \
                     a letter"
                ),
            ));
        }
        Ok(Name(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest phone number accepted as sent, in bytes (spaces and separators included).
pub const PHONE_LEN_MAX: usize = 32;
/// E.164: at most 15 digits after the `+` (country code included).
pub const PHONE_DIGITS_MAX: usize = 15;
/// Fewer digits than this is no full international number (a country code and a subscriber).
pub const PHONE_DIGITS_MIN: usize = 8;

/// A phone number in E.164 form (`+` then 8 to 15 digits, the first not 0), parsed from what
/// a person types: spaces, `-`, `.`, `(` and `)` between the digits are dropped. A number
/// without its country code (`0151...`) is refused: an SMS gateway needs the full number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn parse_field(raw: &str, field: &'static str) -> Result<Self, DomainError> {
        let refuse = || {
            DomainError::invalid(
                field,
                format!(
                    "must be an international number in E.164 form: + then the country code                      and number, {PHONE_DIGITS_MIN} to {PHONE_DIGITS_MAX} digits (spaces, -,                      ., ( and ) allowed between them), at most {PHONE_LEN_MAX} characters"
                ),
            )
        };
        if raw.len() > PHONE_LEN_MAX {
            return Err(refuse());
        }
        let rest = raw.trim().strip_prefix('+').ok_or_else(refuse)?;
        let mut digits = String::with_capacity(PHONE_DIGITS_MAX + 1);
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(refuse()),
            }
        }
        if !(PHONE_DIGITS_MIN..=PHONE_DIGITS_MAX).contains(&digits.len()) || digits.starts_with('0')
        {
            return Err(refuse());
        }
        Ok(Phone(format!("+{digits}")))
    }

    /// `+` and the digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number is personal data: never in a log by accident.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(***)")
    }
}

/// Where a notification is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Queued,
    /// Delivered: in the inbox (in-app), accepted by the SMTP server (email) or by the
    /// notification gateway (SMS, push: it answered 2xx).
    Sent,
    /// The last attempt failed; retried at `next_attempt_at` unless that is empty (given up).
    Failed,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            DeliveryStatus::Queued,
            DeliveryStatus::Sent,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// When to try again after `attempts` failed attempts: `base_ms` doubled per attempt, capped
/// at `max_ms`; `None` once `attempts` reached `attempts_max` (give up).
pub fn retry_delay_ms(attempts: u32, attempts_max: u32, base_ms: u64, max_ms: u64) -> Option<u64> {
    if attempts >= attempts_max {
        return None;
    }
    let shift = attempts.saturating_sub(1).min(30);
    Some(base_ms.saturating_mul(1u64 << shift).min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_words_starting_with_a_letter() {
        assert!(Name::parse_field("low_stock", "name").is_ok());
        assert!(Name::parse_field("order-status-2", "name").is_ok());
        for bad in ["", "7up", "Low", "a b", "é", &"a".repeat(65)] {
            assert_eq!(
                Name::parse_field(bad, "name").unwrap_err().field(),
                "name",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn channels_and_statuses_round_trip() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse_field(c.as_str(), "channel").unwrap(), c);
        }
        assert!(Channel::parse_field("fax", "channel").is_err());
        assert_eq!(DeliveryStatus::parse("sent"), Some(DeliveryStatus::Sent));
        assert_eq!(DeliveryStatus::parse("lost"), None);
    }

    #[test]
    fn phones_are_e164_with_separators_dropped() {
        assert_eq!(
            Phone::parse_field("+49 (151) 234-567.89", "phone")
                .unwrap()
                .as_str(),
            "+4915123456789"
        );
        assert_eq!(
            Phone::parse_field(" +33612345678 ", "phone")
                .unwrap()
                .as_str(),
            "+33612345678"
        );
        for bad in [
            "",
            "015123456789",
            "+0151234567",
            "+1234567",
            "+1234567890123456",
            "+49 151 abc",
            "++4915123456",
            &format!("+49{}", " ".repeat(40)),
        ] {
            assert_eq!(
                Phone::parse_field(bad, "phone").unwrap_err().field(),
                "phone",
                "{bad:?}"
            );
        }
        assert!(!format!("{:?}", Phone::parse_field("+33612345678", "p")).contains('6'));
    }

    #[test]
    fn retries_double_up_to_the_cap_then_stop() {
        assert_eq!(retry_delay_ms(1, 5, 1_000, 60_000), Some(1_000));
        assert_eq!(retry_delay_ms(2, 5, 1_000, 60_000), Some(2_000));
        assert_eq!(retry_delay_ms(4, 5, 1_000, 3_000), Some(3_000));
        assert_eq!(retry_delay_ms(5, 5, 1_000, 60_000), None);
    }
}
