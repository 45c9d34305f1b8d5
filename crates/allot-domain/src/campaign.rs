//! Campaigns: N coupon codes handed out first come, first served from a start instant.

use std::fmt;

use rand::Rng;

use crate::{DomainError, UnixMillis};

/// The largest campaign Allot accepts. The code space (11,182^8, about 2.4e32) dwarfs it, so
/// code generation can never run dry.
pub const TOTAL_COUPONS_MAX: i64 = 10_000_000;
/// Longest campaign name, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// Symbols in a generated coupon code: a 2-symbol ordering prefix and 6 random symbols
/// (11,182^6, about 80 bits, far beyond guessing). The contract allows up to 10.
pub const COUPON_CODE_GENERATED_CHARS: usize = 8;
/// Consecutive issues that share one ordering prefix.
pub const COUPON_CODE_PREFIX_RUN: u64 = 64;
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
        if raw.chars().count() > NAME_MAX_CHARS {
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

/// The most codes one user may hold of one campaign, when the campaign sets a limit: 1 to
/// [`PER_USER_LIMIT_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerUserLimit(u32);

/// What both backends' columns hold (PostgreSQL's `INTEGER`); more than any user holds anyway.
pub const PER_USER_LIMIT_MAX: i64 = i32::MAX as i64;

impl PerUserLimit {
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        match u32::try_from(raw) {
            Ok(n) if n >= 1 && raw <= PER_USER_LIMIT_MAX => Ok(PerUserLimit(n)),
            _ => Err(DomainError::invalid(
                "per_user_limit",
                format!("must be 1 to {PER_USER_LIMIT_MAX} when given"),
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

    /// Draws a k-sortable code for the `sequence`-th issue: two Hangul syllables that advance
    /// every [`COUPON_CODE_PREFIX_RUN`] issues, then six symbols drawn uniformly from the
    /// 11,182-symbol alphabet (rejection sampling inside `random_range`, no modulo bias).
    ///
    /// The prefix makes codes issued close in time close in key order, so the database's
    /// unique index on codes grows at one edge instead of taking writes all over its pages.
    /// It reveals roughly when a code was issued, nothing that helps guess another: the six
    /// random symbols carry about 80 bits.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R, sequence: u64) -> Self {
        let run = (sequence / COUPON_CODE_PREFIX_RUN) % u64::from(HANGUL_COUNT * HANGUL_COUNT);
        let high = (run / u64::from(HANGUL_COUNT)) as u32;
        let low = (run % u64::from(HANGUL_COUNT)) as u32;
        let mut code = String::with_capacity(COUPON_CODE_GENERATED_CHARS * 3);
        code.push(symbol(high));
        code.push(symbol(low));
        for _ in 2..COUPON_CODE_GENERATED_CHARS {
            code.push(symbol(rng.random_range(0..SYMBOLS)));
        }
        CouponCode(code)
    }

    /// The issue sequence just past the prefix run of `code`: where a generator should go on
    /// after the codes it finds stored. `None` for a code without a Hangul prefix.
    pub fn sequence_after(code: &str) -> Option<u64> {
        let mut chars = code.chars();
        let high = hangul_index(chars.next()?)?;
        let low = hangul_index(chars.next()?)?;
        let run = u64::from(high) * u64::from(HANGUL_COUNT) + u64::from(low);
        Some((run + 1) * COUPON_CODE_PREFIX_RUN)
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

fn hangul_index(c: char) -> Option<u32> {
    let i = u32::from(c).checked_sub(HANGUL_FIRST)?;
    (i < HANGUL_COUNT).then_some(i)
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
        for i in 0..10_000 {
            let code = CouponCode::generate(&mut rng, i * 7_919);
            assert_eq!(code.as_str().chars().count(), COUPON_CODE_GENERATED_CHARS);
            assert_eq!(CouponCode::parse(code.as_str()).unwrap(), code);
        }
    }

    #[test]
    fn codes_sort_by_issue_order_run_by_run_and_resume_after_the_last() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut last = CouponCode::generate(&mut rng, 0);
        for run in 1..2_000u64 {
            let code = CouponCode::generate(&mut rng, run * COUPON_CODE_PREFIX_RUN);
            assert!(code > last, "{code} after {last}");
            assert_eq!(
                CouponCode::sequence_after(code.as_str()),
                Some((run + 1) * COUPON_CODE_PREFIX_RUN)
            );
            last = code;
        }
        // Codes within one run differ in their random part.
        let a = CouponCode::generate(&mut rng, 1);
        let b = CouponCode::generate(&mut rng, 2);
        assert_ne!(a, b);
        assert_eq!(
            a.as_str().chars().take(2).collect::<String>(),
            b.as_str().chars().take(2).collect::<String>()
        );
        assert_eq!(CouponCode::sequence_after("12가나"), None);
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
