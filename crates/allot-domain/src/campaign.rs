//! Campaigns: N coupon codes handed out first come, first served from a start instant.

use std::fmt;

use rand::Rng;

use crate::{DomainError, UnixMillis};

/// The largest campaign Allot accepts. The code space (11,182^8, about 2.4e32) dwarfs it, so
/// code generation can never run dry.
pub const TOTAL_COUPONS_MAX: i64 = 10_000_000;
/// Longest campaign name, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// Symbols in a generated coupon code. The contract allows up to 10; 8 already gives about
/// 107 bits, far beyond guessing.
pub const COUPON_CODE_GENERATED_CHARS: usize = 8;
/// Longest coupon code accepted on input, in characters (not bytes).
pub const COUPON_CODE_MAX_CHARS: usize = 10;

const HANGUL_FIRST: u32 = 0xAC00;
const HANGUL_COUNT: u32 = 11_172;
const SYMBOLS: u32 = HANGUL_COUNT + 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignId(i64);

impl CampaignId {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if raw >= 1 {
            Ok(CampaignId(raw))
        } else {
            Err(DomainError::invalid(
                "campaign_id",
                "must be a positive integer",
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignName(String);

impl CampaignName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::invalid("name", "must not be empty"));
        }
        if name.chars().count() > NAME_MAX_CHARS {
            return Err(DomainError::invalid(
                "name",
                format!("must be at most {NAME_MAX_CHARS} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "must not hold control characters",
            ));
        }
        Ok(CampaignName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalCoupons(i64);

impl TotalCoupons {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if (1..=TOTAL_COUPONS_MAX).contains(&raw) {
            Ok(TotalCoupons(raw))
        } else {
            Err(DomainError::invalid(
                "total_coupons",
                format!("must be from 1 to {TOTAL_COUPONS_MAX}"),
            ))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// The most codes one user may hold of one campaign, when the campaign sets a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerUserLimit(u32);

impl PerUserLimit {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        match u32::try_from(raw) {
            Ok(n) if n >= 1 => Ok(PerUserLimit(n)),
            _ => Err(DomainError::invalid(
                "per_user_limit",
                "must be a positive integer when given",
            )),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A campaign coupon code: 1 to 10 characters, each a Hangul syllable (U+AC00 to U+D7A3) or an
/// ASCII digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CouponCode(String);

impl CouponCode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let chars = raw.chars().count();
        if chars == 0 || chars > COUPON_CODE_MAX_CHARS {
            return Err(DomainError::invalid(
                "coupon_code",
                format!("must be 1 to {COUPON_CODE_MAX_CHARS} characters"),
            ));
        }
        if !raw.chars().all(is_code_char) {
            return Err(DomainError::invalid(
                "coupon_code",
                "may only hold Hangul syllables and digits",
            ));
        }
        Ok(CouponCode(raw.to_owned()))
    }

    /// Draws a code uniformly from the 11,182-symbol alphabet (rejection sampling inside
    /// `random_range`, so there is no modulo bias).
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let code = (0..COUPON_CODE_GENERATED_CHARS)
            .map(|_| symbol(rng.random_range(0..SYMBOLS)))
            .collect();
        CouponCode(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_code_char(c: char) -> bool {
    c.is_ascii_digit() || (HANGUL_FIRST..HANGUL_FIRST + HANGUL_COUNT).contains(&u32::from(c))
}

fn symbol(i: u32) -> char {
    if i < HANGUL_COUNT {
        char::from_u32(HANGUL_FIRST + i).expect("Hangul syllables are valid chars")
    } else {
        char::from(b'0' + (i - HANGUL_COUNT) as u8)
    }
}

/// The rules that decide whether a campaign issues now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignWindow {
    pub starts_at: UnixMillis,
    pub ends_at: Option<UnixMillis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    NotStarted,
    Open,
    Ended,
}

impl CampaignWindow {
    pub fn new(starts_at: UnixMillis, ends_at: Option<UnixMillis>) -> Result<Self, DomainError> {
        if let Some(end) = ends_at
            && end <= starts_at
        {
            return Err(DomainError::invalid("end_time", "must be after start_time"));
        }
        Ok(CampaignWindow { starts_at, ends_at })
    }

    /// Open from `starts_at` inclusive to `ends_at` exclusive.
    pub fn state_at(&self, now: UnixMillis) -> WindowState {
        if now < self.starts_at {
            WindowState::NotStarted
        } else if self.ends_at.is_some_and(|end| now >= end) {
            WindowState::Ended
        } else {
            WindowState::Open
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn generated_codes_are_valid_and_short() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..10_000 {
            let code = CouponCode::generate(&mut rng);
            assert_eq!(code.as_str().chars().count(), COUPON_CODE_GENERATED_CHARS);
            assert_eq!(CouponCode::parse(code.as_str()).unwrap(), code);
        }
    }

    #[test]
    fn digits_and_both_ends_of_the_hangul_block_appear() {
        assert_eq!(symbol(0), '가');
        assert_eq!(symbol(HANGUL_COUNT - 1), '힣');
        assert_eq!(symbol(HANGUL_COUNT), '0');
        assert_eq!(symbol(SYMBOLS - 1), '9');
    }

    #[test]
    fn code_parse_counts_characters_not_bytes() {
        assert!(CouponCode::parse("가나다라마바사아자차").is_ok());
        assert!(CouponCode::parse("가나다라마바사아자차카").is_err());
        assert!(CouponCode::parse("12345가").is_ok());
        for bad in ["", "abc", "가 나", "ㄱ", "가-1"] {
            assert!(CouponCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn window_opens_to_the_millisecond() {
        let w = CampaignWindow::new(
            UnixMillis::from_millis(1_000),
            Some(UnixMillis::from_millis(2_000)),
        )
        .unwrap();
        assert_eq!(
            w.state_at(UnixMillis::from_millis(999)),
            WindowState::NotStarted
        );
        assert_eq!(
            w.state_at(UnixMillis::from_millis(1_000)),
            WindowState::Open
        );
        assert_eq!(
            w.state_at(UnixMillis::from_millis(1_999)),
            WindowState::Open
        );
        assert_eq!(
            w.state_at(UnixMillis::from_millis(2_000)),
            WindowState::Ended
        );
        assert!(
            CampaignWindow::new(UnixMillis::from_millis(5), Some(UnixMillis::from_millis(5)))
                .is_err()
        );
    }

    #[test]
    fn bounds() {
        assert!(TotalCoupons::parse(0).is_err());
        assert!(TotalCoupons::parse(TOTAL_COUPONS_MAX + 1).is_err());
        assert!(CampaignName::parse("   ").is_err());
        assert!(CampaignId::parse(0).is_err());
    }
}
