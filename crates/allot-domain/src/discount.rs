//! One-time discount codes: 7 or 8 symbols over a 32-symbol alphabet without look-alikes.

use std::fmt;

use rand::Rng;

use crate::DomainError;

/// 24 letters and 8 digits; no I, O, 0 or 1, which readers confuse. 32 symbols, so one random
/// byte masked to 5 bits picks a symbol with no modulo bias.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Most codes one `Generate` call may ask for.
pub const GENERATE_COUNT_MAX: u32 = 2_000;

/// The length of a discount code: 7 or 8 symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeLength(u8);

impl CodeLength {
    pub const SEVEN: CodeLength = CodeLength(7);
    pub const EIGHT: CodeLength = CodeLength(8);

    pub fn parse(len: u32) -> Result<Self, DomainError> {
        match len {
            7 | 8 => Ok(CodeLength(len as u8)),
            _ => Err(DomainError::invalid("length", "must be 7 or 8")),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// How many codes one generate call creates: 1 to 2,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateCount(u32);

impl GenerateCount {
    pub fn parse(count: u64) -> Result<Self, DomainError> {
        if (1..=u64::from(GENERATE_COUNT_MAX)).contains(&count) {
            Ok(GenerateCount(count as u32))
        } else {
            Err(DomainError::invalid(
                "count",
                format!("must be from 1 to {GENERATE_COUNT_MAX}"),
            ))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A well-formed discount code: 7 or 8 symbols of [`ALPHABET`], upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiscountCode(String);

impl DiscountCode {
    /// Parses user input: surrounding white space is trimmed and letters are upper-cased, as the
    /// original service did.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let code = raw.trim().to_ascii_uppercase();
        if !(7..=8).contains(&code.len()) {
            return Err(DomainError::invalid("code", "must be 7 or 8 characters"));
        }
        if !code.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(DomainError::invalid(
                "code",
                "may only hold the letters A-Z without I and O, and the digits 2-9",
            ));
        }
        Ok(DiscountCode(code))
    }

    /// Draws a code from a cryptographically secure generator supplied by the caller.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R, length: CodeLength) -> Self {
        let mut bytes = [0u8; 8];
        rng.fill(&mut bytes[..]);
        let code = bytes[..usize::from(length.get())]
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 0x1f)]))
            .collect();
        DiscountCode(code)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DiscountCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of using a code, in the order of the original wire contract's byte values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseOutcome {
    /// Used now, by this call.
    Used = 0,
    /// Bad format or no such code.
    Invalid = 1,
    /// Used earlier.
    AlreadyUsed = 2,
}

impl UseOutcome {
    pub fn wire_byte(self) -> u8 {
        self as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn generated_codes_parse_back_and_use_only_the_alphabet() {
        let mut rng = StdRng::seed_from_u64(7);
        for len in [CodeLength::SEVEN, CodeLength::EIGHT] {
            for _ in 0..10_000 {
                let code = DiscountCode::generate(&mut rng, len);
                assert_eq!(code.as_str().len(), usize::from(len.get()));
                assert_eq!(DiscountCode::parse(code.as_str()).unwrap(), code);
            }
        }
    }

    #[test]
    fn every_symbol_is_about_equally_likely() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut counts = [0u32; 32];
        let draws = 100_000;
        for _ in 0..draws {
            for b in DiscountCode::generate(&mut rng, CodeLength::EIGHT)
                .as_str()
                .bytes()
            {
                let i = ALPHABET.iter().position(|a| *a == b).unwrap();
                counts[i] += 1;
            }
        }
        let expected = f64::from(draws * 8) / 32.0;
        for c in counts {
            assert!(
                (f64::from(c) - expected).abs() / expected < 0.03,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn parse_trims_and_upper_cases() {
        assert_eq!(
            DiscountCode::parse("  abcd234 \n").unwrap().as_str(),
            "ABCD234"
        );
    }

    #[test]
    fn parse_refuses_bad_codes() {
        for bad in [
            "",
            "ABC",
            "ABCDEFGHJ",
            "ABCDEF0",
            "ABCDEFI",
            "ABCDEF1",
            "ABCDÉFG",
            "ABC DEF",
        ] {
            assert!(DiscountCode::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn count_and_length_bounds() {
        assert!(GenerateCount::parse(0).is_err());
        assert!(GenerateCount::parse(1).is_ok());
        assert!(GenerateCount::parse(2_000).is_ok());
        assert!(GenerateCount::parse(2_001).is_err());
        assert!(GenerateCount::parse(65_536 + 500).is_err());
        assert!(CodeLength::parse(7).is_ok());
        assert!(CodeLength::parse(8).is_ok());
        for bad in [0, 6, 9, 256] {
            assert!(CodeLength::parse(bad).is_err(), "{bad}");
        }
    }
}
