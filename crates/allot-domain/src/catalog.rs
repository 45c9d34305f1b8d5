//! The catalog: products with a price and typed attributes, a tree of categories, and the
//! warehouses stock will be kept in.
//!
//! Money is integer minor units of an ISO-4217-shaped currency, never a float. Attribute
//! numbers are `f64` (finite only): they describe a product (a weight, a screen size) and are
//! compared, never added up, so a float is what a client means; anything that is money belongs
//! in a price, not in an attribute.

use std::collections::BTreeMap;
use std::fmt;

use crate::DomainError;

pub const SKU_MAX_CHARS: usize = 64;
pub const PRODUCT_NAME_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 10_000;
pub const CATEGORY_NAME_MAX_CHARS: usize = 100;
pub const WAREHOUSE_CODE_MAX_CHARS: usize = 32;
pub const WAREHOUSE_NAME_MAX_CHARS: usize = 200;
pub const ATTRIBUTE_KEY_MAX_CHARS: usize = 64;
pub const ATTRIBUTE_TEXT_MAX_CHARS: usize = 500;
pub const ATTRIBUTES_MAX: usize = 50;
/// Most `attr.<key>=<value>` filters one listing takes: each is a condition on every candidate
/// row, so their number bounds the work of a query anyone with read access can send.
pub const ATTRIBUTE_FILTERS_MAX: usize = 10;
/// The longest search text (`q`), in characters as sent.
pub const SEARCH_TEXT_MAX_CHARS: usize = 200;
/// Largest price, in minor units (ten billion of the currency's major unit at two decimals).
pub const AMOUNT_MINOR_MAX: i64 = 1_000_000_000_000;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            pub fn parse(raw: i64) -> Result<Self, DomainError> {
                if raw >= 1 {
                    Ok($name(raw))
                } else {
                    Err(DomainError::invalid($field, "must be a positive integer"))
                }
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A product's id, assigned by storage.
    ProductId,
    "id"
);
id_type!(
    /// A category's id, assigned by storage.
    CategoryId,
    "category_id"
);
id_type!(
    /// A warehouse's id, assigned by storage.
    WarehouseId,
    "id"
);

/// Trims and checks a length in characters (not bytes).
fn bounded_text(
    field: &'static str,
    raw: &str,
    min: usize,
    max: usize,
) -> Result<String, DomainError> {
    let text = raw.trim();
    if text.chars().count() < min || raw.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "may not hold control characters",
        ));
    }
    Ok(text.to_owned())
}

/// A stock-keeping unit: 1 to 64 of `A-Z a-z 0-9 - _ .`, trimmed, kept as given. Unique
/// case-insensitively: [`Sku::key`] is the form uniqueness is decided on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let sku = raw.trim();
        if sku.is_empty() || raw.chars().count() > SKU_MAX_CHARS {
            return Err(DomainError::invalid(
                "sku",
                format!("must be 1 to {SKU_MAX_CHARS} characters"),
            ));
        }
        if !sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(DomainError::invalid(
                "sku",
                "may only hold the letters A-Z and a-z, digits, '-', '_' and '.'",
            ));
        }
        Ok(Sku(sku.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form two SKUs are compared by: `ab-1` and `AB-1` are one SKU.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// A product's name: 1 to 200 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        bounded_text("name", raw, 1, PRODUCT_NAME_MAX_CHARS).map(ProductName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product's description: up to 10,000 characters, kept as given (line breaks allowed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.chars().count() > DESCRIPTION_MAX_CHARS {
            return Err(DomainError::invalid(
                "description",
                format!("must be at most {DESCRIPTION_MAX_CHARS} characters"),
            ));
        }
        Ok(Description(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO-4217-shaped currency code: three upper-case letters (`EUR`, `KRW`). Whether the
/// code is assigned is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(DomainError::invalid(
                "price.currency",
                "must be three upper-case letters (ISO 4217)",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // Three ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

/// An amount of money: whole minor units (cents, won) from 0, and a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, DomainError> {
        if !(0..=AMOUNT_MINOR_MAX).contains(&amount_minor) {
            return Err(DomainError::invalid(
                "price.amount_minor",
                format!("must be a whole number from 0 to {AMOUNT_MINOR_MAX}"),
            ));
        }
        Ok(Money {
            amount_minor,
            currency,
        })
    }

    pub fn amount_minor(self) -> i64 {
        self.amount_minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }
}

/// An attribute's name: 1 to 64 of `a-z 0-9 _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeKey(String);

impl AttributeKey {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty()
            || raw.len() > ATTRIBUTE_KEY_MAX_CHARS
            || !raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(DomainError::invalid(
                "attributes",
                format!(
                    "keys must be 1 to {ATTRIBUTE_KEY_MAX_CHARS} of a-z, 0-9 and '_' ({raw:?} is not)"
                ),
            ));
        }
        Ok(AttributeKey(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A typed attribute value. Numbers are finite `f64` (see the module's note).
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Text(String),
    Number(f64),
    Boolean(bool),
}

impl AttributeValue {
    pub fn text(raw: &str) -> Result<Self, DomainError> {
        if raw.chars().count() > ATTRIBUTE_TEXT_MAX_CHARS {
            return Err(DomainError::invalid(
                "attributes",
                format!("text values must be at most {ATTRIBUTE_TEXT_MAX_CHARS} characters"),
            ));
        }
        Ok(AttributeValue::Text(raw.to_owned()))
    }

    pub fn number(raw: f64) -> Result<Self, DomainError> {
        if !raw.is_finite() {
            return Err(DomainError::invalid("attributes", "numbers must be finite"));
        }
        // One zero: -0.0 and 0.0 compare equal and must be stored alike.
        Ok(AttributeValue::Number(if raw == 0.0 { 0.0 } else { raw }))
    }

    /// `text`, `number` or `boolean`.
    pub fn kind(&self) -> &'static str {
        match self {
            AttributeValue::Text(_) => "text",
            AttributeValue::Number(_) => "number",
            AttributeValue::Boolean(_) => "boolean",
        }
    }
}

/// A product's attributes, at most 50, one value per key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(BTreeMap<AttributeKey, AttributeValue>);

impl Attributes {
    pub fn new(map: BTreeMap<AttributeKey, AttributeValue>) -> Result<Self, DomainError> {
        if map.len() > ATTRIBUTES_MAX {
            return Err(DomainError::invalid(
                "attributes",
                format!("at most {ATTRIBUTES_MAX} attributes"),
            ));
        }
        Ok(Attributes(map))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&AttributeKey, &AttributeValue)> {
        self.0.iter()
    }

    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A filter on one attribute from a query string (`attr.color=red`): the raw text matches a
/// text value exactly, a number when it reads as the same number, a boolean when it is `true`
/// or `false`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeFilter {
    pub key: AttributeKey,
    pub text: String,
    pub number: Option<f64>,
    pub boolean: Option<bool>,
}

impl AttributeFilter {
    pub fn parse(key: &str, raw: &str) -> Result<Self, DomainError> {
        let key = AttributeKey::parse(key).map_err(|_| {
            DomainError::invalid("attr", format!("{key:?} is not an attribute key"))
        })?;
        // No stored value is longer, so a longer one matches nothing: refused, not scanned.
        if raw.chars().count() > ATTRIBUTE_TEXT_MAX_CHARS {
            return Err(DomainError::invalid(
                "attr",
                format!(
                    "attr.{}: the value must be at most {ATTRIBUTE_TEXT_MAX_CHARS} characters",
                    key.as_str()
                ),
            ));
        }
        Ok(AttributeFilter {
            key,
            text: raw.to_owned(),
            number: raw.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            boolean: match raw {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
        })
    }
}

/// A category's name: 1 to 100 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryName(String);

impl CategoryName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        bounded_text("name", raw, 1, CATEGORY_NAME_MAX_CHARS).map(CategoryName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A warehouse's code: 1 to 32 of `A-Z 0-9 - _`, case-insensitive (upper-cased), unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WarehouseCode(String);

impl WarehouseCode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.is_empty() || raw.chars().count() > WAREHOUSE_CODE_MAX_CHARS {
            return Err(DomainError::invalid(
                "code",
                format!("must be 1 to {WAREHOUSE_CODE_MAX_CHARS} characters"),
            ));
        }
        if !code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(DomainError::invalid(
                "code",
                "may only hold the letters A-Z, digits, '-' and '_'",
            ));
        }
        Ok(WarehouseCode(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A warehouse's name: 1 to 200 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseName(String);

impl WarehouseName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        bounded_text("name", raw, 1, WAREHOUSE_NAME_MAX_CHARS).map(WarehouseName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The words of a product search (`q`): each run of letters and digits, lower-cased; every
/// other character separates words. A product matches when it holds every word (in its name,
/// description or text attribute values), the last word as a prefix, so a search finds what is
/// being typed ("lapt" finds "laptop"). Only these words reach the database, each quoted as a
/// term, so no character of the text is ever read as search syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(Vec<String>);

impl SearchText {
    /// `None` when the text holds no letter or digit (it searches for nothing, like a blank
    /// `q`). Refused: more than [`SEARCH_TEXT_MAX_CHARS`] characters as sent, or a control
    /// character.
    pub fn parse(raw: &str) -> Result<Option<SearchText>, DomainError> {
        if raw.chars().count() > SEARCH_TEXT_MAX_CHARS {
            return Err(DomainError::invalid(
                "q",
                format!("must be at most {SEARCH_TEXT_MAX_CHARS} characters"),
            ));
        }
        // Control characters match nothing (names hold none), and PostgreSQL refuses NUL.
        if raw.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "q",
                "must not hold control characters",
            ));
        }
        // Lower-cased before it is split: a letter's lower case may hold a mark that is no
        // letter (`İ` is `i` and U+0307), which then separates words like any other.
        let words: Vec<String> = raw
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        Ok((!words.is_empty()).then_some(SearchText(words)))
    }

    /// The words in the order given; the last one matches as a prefix.
    pub fn words(&self) -> &[String] {
        &self.0
    }
}

/// The order of a product listing. Ties are broken by id, so every order is total and pages
/// are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProductSort {
    #[default]
    CreatedAsc,
    CreatedDesc,
    PriceAsc,
    PriceDesc,
    NameAsc,
    NameDesc,
    /// Best match of the search text first: every word in the name, then every word in the
    /// name or attribute values, then the rest; within each by id (ascending). Without search
    /// words every product scores the same, so this is by id.
    Relevance,
}

impl ProductSort {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Ok(match raw {
            "created" => ProductSort::CreatedAsc,
            "-created" => ProductSort::CreatedDesc,
            "price" => ProductSort::PriceAsc,
            "-price" => ProductSort::PriceDesc,
            "name" => ProductSort::NameAsc,
            "-name" => ProductSort::NameDesc,
            "relevance" => ProductSort::Relevance,
            _ => {
                return Err(DomainError::invalid(
                    "sort",
                    "must be one of created, -created, price, -price, name, -name, relevance",
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProductSort::CreatedAsc => "created",
            ProductSort::CreatedDesc => "-created",
            ProductSort::PriceAsc => "price",
            ProductSort::PriceDesc => "-price",
            ProductSort::NameAsc => "name",
            ProductSort::NameDesc => "-name",
            ProductSort::Relevance => "relevance",
        }
    }

    pub fn descending(self) -> bool {
        matches!(
            self,
            ProductSort::CreatedDesc | ProductSort::PriceDesc | ProductSort::NameDesc
        )
    }
}

/// Where a page of a listing starts: after the product with this sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

/// The opaque cursor of a listing: the sort it was made for, and the last row's key and id,
/// hex-encoded so it is safe in a query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: ProductSort,
    pub key: SortKey,
    pub id: ProductId,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(raw: &str) -> Option<Vec<u8>> {
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(raw.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Cursor {
    /// `sort|id|key`, hex-encoded.
    pub fn encode(&self) -> String {
        let key = match &self.key {
            SortKey::Int(n) => format!("i{n}"),
            SortKey::Text(s) => format!("t{s}"),
        };
        hex(format!("{}|{}|{key}", self.sort.as_str(), self.id.get()).as_bytes())
    }

    /// Reads a cursor back; it must have been made for `sort`.
    pub fn decode(raw: &str, sort: ProductSort) -> Result<Self, DomainError> {
        let bad = || DomainError::invalid("cursor", "is not a cursor of this listing");
        let bytes = unhex(raw).ok_or_else(bad)?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '|');
        let (Some(s), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if ProductSort::parse(s).ok() != Some(sort) {
            return Err(DomainError::invalid(
                "cursor",
                "was made for another sort order",
            ));
        }
        let id = id
            .parse::<i64>()
            .ok()
            .and_then(|n| ProductId::parse(n).ok())
            .ok_or_else(bad)?;
        let key = match (key.get(..1), key.get(1..)) {
            (Some("i"), Some(n)) => SortKey::Int(n.parse().map_err(|_| bad())?),
            (Some("t"), Some(t)) => SortKey::Text(t.to_owned()),
            _ => return Err(bad()),
        };
        let int_sort = !matches!(sort, ProductSort::NameAsc | ProductSort::NameDesc);
        if int_sort != matches!(key, SortKey::Int(_)) {
            return Err(bad());
        }
        // A relevance key is a score's bits (`f64::to_bits`): only a finite score is one.
        if let (ProductSort::Relevance, SortKey::Int(bits)) = (sort, &key)
            && !f64::from_bits(*bits as u64).is_finite()
        {
            return Err(bad());
        }
        Ok(Cursor { sort, key, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_words_of_letters_and_digits_lower_cased() {
        let words = |raw: &str| SearchText::parse(raw).unwrap().map(|s| s.words().to_vec());
        assert_eq!(
            words(" Red T-Shirt, 1.5kg "),
            Some(vec![
                "red".into(),
                "t".into(),
                "shirt".into(),
                "1".into(),
                "5kg".into()
            ])
        );
        assert_eq!(
            words("ÉCOLE naïve"),
            Some(vec!["école".into(), "naïve".into()])
        );
        for syntax in ["\"", "*", "&|!", ":*", "'", "NEAR(", "^-+()", "   "] {
            let w = words(syntax);
            assert!(
                w.is_none() || w.as_ref().unwrap() == &vec!["near".to_owned()],
                "{syntax}"
            );
        }
        assert!(words(&"é".repeat(200)).is_some());
        // A lower case that holds a mark (found by the `domain_values` fuzz target): only
        // letters and digits reach a word.
        assert_eq!(words("FİF"), Some(vec!["fi".into(), "f".into()]));
        assert_eq!(
            SearchText::parse(&"a".repeat(201)).unwrap_err().field(),
            "q"
        );
        assert_eq!(SearchText::parse("a\0b").unwrap_err().field(), "q");
    }

    #[test]
    fn a_relevance_cursor_holds_a_finite_score() {
        let c = Cursor {
            sort: ProductSort::Relevance,
            key: SortKey::Int(0.25f64.to_bits() as i64),
            id: ProductId::parse(3).unwrap(),
        };
        assert_eq!(
            Cursor::decode(&c.encode(), ProductSort::Relevance).unwrap(),
            c
        );
        let nan = Cursor {
            key: SortKey::Int(f64::NAN.to_bits() as i64),
            ..c
        };
        assert!(Cursor::decode(&nan.encode(), ProductSort::Relevance).is_err());
    }

    #[test]
    fn skus_are_trimmed_kept_as_given_and_keyed_case_insensitively() {
        let sku = Sku::parse("  Shirt-01.b_2 ").unwrap();
        assert_eq!(sku.as_str(), "Shirt-01.b_2");
        assert_eq!(sku.key(), "shirt-01.b_2");
        for bad in ["", "   ", "a b", "ä", "x;y", "a/b", &"A".repeat(65)] {
            let e = Sku::parse(bad).unwrap_err();
            assert_eq!(e.field(), "sku", "{bad:?}");
        }
        assert!(Sku::parse(&"A".repeat(64)).is_ok());
    }

    #[test]
    fn names_are_bounded_in_characters() {
        assert_eq!(ProductName::parse(" Shirt ").unwrap().as_str(), "Shirt");
        assert!(ProductName::parse(&"é".repeat(200)).is_ok());
        assert!(ProductName::parse(&"é".repeat(201)).is_err());
        assert!(ProductName::parse("  ").is_err());
        assert!(ProductName::parse("a\u{0}b").is_err());
        assert!(CategoryName::parse(&"x".repeat(101)).is_err());
        assert!(WarehouseName::parse("Main").is_ok());
        assert!(Description::parse("").is_ok());
        assert!(Description::parse(&"x".repeat(10_001)).is_err());
    }

    #[test]
    fn money_is_whole_minor_units_of_a_three_letter_currency() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(eur.as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert_eq!(
                Currency::parse(bad).unwrap_err().field(),
                "price.currency",
                "{bad:?}"
            );
        }
        assert_eq!(Money::new(0, eur).unwrap().amount_minor(), 0);
        assert!(Money::new(AMOUNT_MINOR_MAX, eur).is_ok());
        assert_eq!(
            Money::new(-1, eur).unwrap_err().field(),
            "price.amount_minor"
        );
        assert!(Money::new(AMOUNT_MINOR_MAX + 1, eur).is_err());
    }

    #[test]
    fn attribute_keys_and_values() {
        assert!(AttributeKey::parse("screen_size_2").is_ok());
        for bad in ["", "Color", "a-b", "a b", &"a".repeat(65)] {
            assert!(AttributeKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(AttributeValue::number(f64::NAN).is_err());
        assert!(AttributeValue::number(f64::INFINITY).is_err());
        assert_eq!(
            AttributeValue::number(-0.0).unwrap(),
            AttributeValue::Number(0.0)
        );
        assert!(AttributeValue::text(&"x".repeat(501)).is_err());
        let many = (0..51)
            .map(|i| {
                (
                    AttributeKey::parse(&format!("k{i}")).unwrap(),
                    AttributeValue::Boolean(true),
                )
            })
            .collect();
        assert!(Attributes::new(many).is_err());
    }

    #[test]
    fn attribute_filters_read_every_kind() {
        let f = AttributeFilter::parse("size", "42").unwrap();
        assert_eq!((f.number, f.boolean), (Some(42.0), None));
        let f = AttributeFilter::parse("new", "true").unwrap();
        assert_eq!(f.boolean, Some(true));
        assert_eq!(
            AttributeFilter::parse("Bad", "x").unwrap_err().field(),
            "attr"
        );
        assert_eq!(AttributeFilter::parse("x", "inf").unwrap().number, None);
    }

    #[test]
    fn warehouse_codes_are_upper_cased() {
        assert_eq!(
            WarehouseCode::parse(" seoul-1 ").unwrap().as_str(),
            "SEOUL-1"
        );
        assert!(WarehouseCode::parse("a.b").is_err());
        assert!(WarehouseCode::parse(&"A".repeat(33)).is_err());
    }

    #[test]
    fn ids_are_positive() {
        assert!(ProductId::parse(0).is_err());
        assert_eq!(CategoryId::parse(0).unwrap_err().field(), "category_id");
        assert_eq!(WarehouseId::parse(7).unwrap().get(), 7);
    }

    #[test]
    fn cursors_round_trip_and_refuse_other_sorts_and_garbage() {
        let c = Cursor {
            sort: ProductSort::NameDesc,
            key: SortKey::Text("Shirt | blue".to_owned()),
            id: ProductId::parse(12).unwrap(),
        };
        let raw = c.encode();
        assert!(raw.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(Cursor::decode(&raw, ProductSort::NameDesc).unwrap(), c);
        assert!(Cursor::decode(&raw, ProductSort::NameAsc).is_err());
        let p = Cursor {
            sort: ProductSort::PriceAsc,
            key: SortKey::Int(-5),
            id: ProductId::parse(3).unwrap(),
        };
        assert_eq!(
            Cursor::decode(&p.encode(), ProductSort::PriceAsc).unwrap(),
            p
        );
        for bad in ["", "zz", "abc", &hex(b"price|0|i1"), &hex(b"price|1|tx")] {
            assert_eq!(
                Cursor::decode(bad, ProductSort::PriceAsc)
                    .unwrap_err()
                    .field(),
                "cursor",
                "{bad:?}"
            );
        }
        assert_eq!(
            ProductSort::parse("-price").unwrap(),
            ProductSort::PriceDesc
        );
        assert!(ProductSort::parse("weight").is_err());
    }
}
