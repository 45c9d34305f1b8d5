//! Flash sales: one sale an hour, on the hour (UTC), of generated items.

use std::fmt;

use rand::Rng;

use crate::discount::ALPHABET;
use crate::{DomainError, UnixMillis};

pub const HOUR_MS: i64 = 3_600_000;
/// Most items one sale may hold.
pub const ITEMS_MAX: u32 = 1_000_000;
const CHECKOUT_CODE_CHARS: usize = 16;

/// The hour a sale runs in: from `starts_at` (a whole UTC hour) for one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SaleHour(UnixMillis);

impl SaleHour {
    /// The sale hour that `now` falls in: H:00:00.000 to H+1:00:00.000, start inclusive.
    pub fn containing(now: UnixMillis) -> Self {
        SaleHour(UnixMillis::from_millis(
            now.as_millis().div_euclid(HOUR_MS) * HOUR_MS,
        ))
    }

    pub fn starts_at(self) -> UnixMillis {
        self.0
    }

    pub fn ends_at(self) -> UnixMillis {
        self.0.plus_millis(HOUR_MS)
    }

    pub fn next(self) -> Self {
        SaleHour(self.ends_at())
    }
}

/// An item of a sale, as the checkout endpoint's `id` parameter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(i64);

impl ItemId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok(ItemId(n)),
            _ => Err(DomainError::invalid(
                "id",
                "must be a positive integer item id",
            )),
        }
    }

    pub fn from_stored(n: i64) -> Self {
        ItemId(n)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A checkout code: 16 symbols of the discount-code alphabet (80 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckoutCode(String);

impl CheckoutCode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.len() != CHECKOUT_CODE_CHARS || !code.bytes().all(|b| ALPHABET.contains(&b)) {
            return Err(DomainError::invalid("code", "is not a checkout code"));
        }
        Ok(CheckoutCode(code))
    }

    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; CHECKOUT_CODE_CHARS];
        rng.fill(&mut bytes[..]);
        CheckoutCode(
            bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 0x1f)]))
                .collect(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckoutCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many items each sale holds: 1 to [`ITEMS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemsPerSale(u32);

impl ItemsPerSale {
    pub fn parse(n: u32) -> Result<Self, DomainError> {
        if (1..=ITEMS_MAX).contains(&n) {
            Ok(ItemsPerSale(n))
        } else {
            Err(DomainError::invalid(
                "sale_items",
                format!("must be 1 to {ITEMS_MAX}"),
            ))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

const ADJECTIVES: [&str; 16] = [
    "Amber", "Brisk", "Cobalt", "Dapper", "Ember", "Frosted", "Golden", "Hazel", "Indigo", "Jade",
    "Keen", "Lunar", "Misty", "Noble", "Opal", "Polar",
];
const NOUNS: [&str; 16] = [
    "Lamp", "Kettle", "Backpack", "Watch", "Speaker", "Mug", "Jacket", "Sneaker", "Blender",
    "Headset", "Notebook", "Scarf", "Drone", "Camera", "Chair", "Umbrella",
];

/// The generated name and image of the `n`-th item (from 1) of the sale of `hour`.
pub fn item_name_and_image(hour: SaleHour, n: u32) -> (String, String) {
    let a = ADJECTIVES[(n as usize * 7) % ADJECTIVES.len()];
    let b = NOUNS[(n as usize / 16 + n as usize * 3) % NOUNS.len()];
    let hour_id = hour.starts_at().as_millis() / HOUR_MS;
    (
        format!("{a} {b} #{n:05}"),
        format!("https://images.allot.example/sales/{hour_id}/items/{n}.webp"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn hours_align_to_the_clock() {
        let ten = 1_795_341_600_000; // 2026-11-22T10:00:00Z
        assert_eq!(
            SaleHour::containing(UnixMillis::from_millis(ten))
                .starts_at()
                .as_millis(),
            ten
        );
        assert_eq!(
            SaleHour::containing(UnixMillis::from_millis(ten + HOUR_MS - 1))
                .starts_at()
                .as_millis(),
            ten
        );
        assert_eq!(
            SaleHour::containing(UnixMillis::from_millis(ten - 1))
                .starts_at()
                .as_millis(),
            ten - HOUR_MS
        );
        let h = SaleHour::containing(UnixMillis::from_millis(ten + 5));
        assert_eq!(h.ends_at().as_millis(), ten + HOUR_MS);
        assert_eq!(h.next().starts_at(), h.ends_at());
    }

    #[test]
    fn codes_and_ids_parse() {
        let mut rng = StdRng::seed_from_u64(1);
        let code = CheckoutCode::generate(&mut rng);
        assert_eq!(
            CheckoutCode::parse(&code.as_str().to_lowercase()).unwrap(),
            code
        );
        assert!(CheckoutCode::parse("short").is_err());
        assert!(ItemId::parse("0").is_err());
        assert!(ItemId::parse("x").is_err());
        assert_eq!(ItemId::parse("42").unwrap().get(), 42);
    }
}
