//! Personal data at rest: the data key, the cipher that seals values under it, and the blind
//! index that finds a user by email without storing the email.
//!
//! - **Sealing** is XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`) with a random 192-bit
//!   nonce per value, so random nonces never repeat in practice. The associated data names the
//!   table, the column and the row (or the row's owner), so a ciphertext copied into another
//!   column or row fails to open instead of being read as that row's value.
//! - **Format**: `v1.<key id>.<base64url(nonce || ciphertext || tag)>`. `v1` is the format; the
//!   key id (16 hex digits derived from the key, not secret) says which key sealed the value,
//!   so a later key can be added beside this one and values re-sealed at leisure.
//! - **Subkeys** are derived from the configured 32-byte key with HMAC-SHA256 under fixed
//!   labels (the key is uniformly random, so no extract step is needed): one seals, one makes
//!   the blind index, one names the key. The blind index is HMAC-SHA256 of the normalised
//!   (trimmed, lower-case) email under its own subkey, in hex: equal emails give equal indexes,
//!   which is what lookups and the UNIQUE constraint need, and nothing else about the email
//!   can be learnt from it without the key.

use std::fmt;
use std::io::Write;
use std::path::Path;

use allot_domain::order::ShippingAddress;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, KeyInit as HmacKeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::StorageError;

/// Bytes of a data key.
pub const DATA_KEY_BYTES: usize = 32;
/// The file a SQLite data directory keeps its generated key in, when none is configured.
pub const DATA_KEY_FILE: &str = "data.key";

const FORMAT: &str = "v1";
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const LABEL_SEAL: &[u8] = b"allot data key v1: seal";
const LABEL_INDEX: &[u8] = b"allot data key v1: email index";
const LABEL_KEY_ID: &[u8] = b"allot data key v1: key id";

/// The key personal data is sealed under: 32 random bytes, configured as base64. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; DATA_KEY_BYTES]);

impl DataKey {
    /// Parses the base64 (standard alphabet, padded or not) of exactly 32 bytes.
    pub fn parse(base64: &str) -> Result<DataKey, String> {
        let trimmed = base64.trim();
        let bytes = STANDARD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| {
                "data_key: must be base64 of 32 random bytes (e.g. `openssl rand -base64 32` \
                 or `allot admin gen-key`)"
                    .to_owned()
            })?;
        let key: [u8; DATA_KEY_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "data_key: must be base64 of exactly {DATA_KEY_BYTES} bytes, got {}",
                b.len()
            )
        })?;
        Ok(DataKey(key))
    }

    /// A new random key (the operating system's generator, through `rand`).
    pub fn generate() -> DataKey {
        let mut key = [0u8; DATA_KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        DataKey(key)
    }

    /// The key as its configuration form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The key kept in `data_dir` (created with mode 0600 on first use): for the embedded
    /// database when no key is configured. Answers the key and whether it was just created.
    pub fn load_or_create_file(data_dir: &Path) -> Result<(DataKey, bool), StorageError> {
        let path = data_dir.join(DATA_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = DataKey::parse(&text)
                    .map_err(|e| StorageError::DataKey(format!("{}: {e}", path.display())))?;
                Ok((key, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = DataKey::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path)?;
                writeln!(file, "{}", key.to_base64())?;
                file.sync_all()?;
                Ok((key, true))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl std::str::FromStr for DataKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DataKey::parse(s)
    }
}

/// Seals and opens personal data under one data key; makes blind indexes.
pub struct Cipher {
    key_id: String,
    aead: XChaCha20Poly1305,
    index_key: [u8; 32],
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn derive(key: &DataKey, label: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as HmacKeyInit>::new_from_slice(&key.0).expect("HMAC takes any key");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a sealed value lives: its table and column, and the row (or owner) it belongs to.
/// The pair is the associated data, so a value opens only where it was sealed.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub column: &'static str,
    pub row: &'a str,
}

impl Place<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!("allot/{FORMAT}/{}/{}", self.column, self.row).into_bytes()
    }
}

impl Cipher {
    pub fn new(key: &DataKey) -> Cipher {
        let seal_key = Key::from(derive(key, LABEL_SEAL));
        Cipher {
            key_id: hex(&derive(key, LABEL_KEY_ID)[..8]),
            aead: XChaCha20Poly1305::new(&seal_key),
            index_key: derive(key, LABEL_INDEX),
        }
    }

    /// The key's public name, written in every sealed value.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plain` for `place`: `v1.<key id>.<base64url>`.
    pub fn seal(&self, plain: &[u8], place: Place<'_>) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = place.associated_data();
        let sealed = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length we store");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{FORMAT}.{}.{}", self.key_id, URL_SAFE_NO_PAD.encode(&out))
    }

    /// Seals a string.
    pub fn seal_str(&self, plain: &str, place: Place<'_>) -> String {
        self.seal(plain.as_bytes(), place)
    }

    /// Opens a value sealed for `place`; an error names the place, never the value.
    pub fn open(&self, sealed: &str, place: Place<'_>) -> Result<Vec<u8>, StorageError> {
        let bad = |why: &str| {
            StorageError::DataKey(format!("{} of row {}: {why}", place.column, place.row))
        };
        let mut parts = sealed.splitn(3, '.');
        let (Some(format), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a sealed value"));
        };
        if format != FORMAT {
            return Err(bad("unknown format"));
        }
        if key_id != self.key_id {
            return Err(bad(&format!(
                "sealed under key {key_id}, the configured key is {}",
                self.key_id
            )));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("not base64"))?;
        if raw.len() < NONCE_BYTES + TAG_BYTES {
            return Err(bad("too short"));
        }
        let (nonce, sealed) = raw.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce's length");
        let aad = place.associated_data();
        self.aead
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| bad("does not open (another key, column or row)"))
    }

    /// Opens a sealed string.
    pub fn open_string(&self, sealed: &str, place: Place<'_>) -> Result<String, StorageError> {
        String::from_utf8(self.open(sealed, place)?)
            .map_err(|_| StorageError::Corrupt(format!("{} is not UTF-8", place.column)))
    }

    /// The blind index of a normalised email (see the module's documentation).
    pub fn email_index(&self, normalised_email: &str) -> String {
        let mut mac = <Hmac<Sha256> as HmacKeyInit>::new_from_slice(&self.index_key)
            .expect("HMAC takes any key");
        mac.update(normalised_email.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// The places personal data is sealed for, one per column.
pub(crate) mod places {
    use super::Place;

    /// `users.email_enc`, bound to the user's id.
    pub(crate) fn user_email(id: &str) -> Place<'_> {
        Place {
            column: "users.email",
            row: id,
        }
    }

    /// `orders.shipping_address`, bound to the order's customer: batched creates draw order
    /// ids inside the batch, while the customer is known before. An address cannot be moved
    /// to another customer's order.
    pub(crate) fn order_address(customer: &str) -> Place<'_> {
        Place {
            column: "orders.shipping_address",
            row: customer,
        }
    }

    /// `idempotency_keys.body`, bound to the key's scope (key, method, path and owner joined by
    /// NUL).
    pub(crate) fn idempotency_body(scope: &str) -> Place<'_> {
        Place {
            column: "idempotency_keys.body",
            row: scope,
        }
    }

    /// `notifications.subject`, `.body` and `.last_error` (`column`), bound to the
    /// notification's id.
    pub(crate) fn notification<'a>(column: &'static str, id: &'a str) -> Place<'a> {
        Place { column, row: id }
    }

    /// `data_key_check.check_value`.
    pub(crate) fn key_check() -> Place<'static> {
        Place {
            column: "data_key_check.check_value",
            row: "1",
        }
    }
}

/// Seals a new order's address before it goes to the writer or a batch, which store it as is.
/// The address is sealed as JSON text, the form `orders.shipping_address` held before sealing
/// (migration 0013 sealed those rows as they were).
pub(crate) fn seal_new_order(
    cipher: &Cipher,
    new: crate::NewOrder,
) -> crate::order::sealed::NewOrder {
    let sealed = cipher.seal_str(
        &address_json(&new.shipping_address),
        places::order_address(new.customer.as_str()),
    );
    new.with_address(sealed)
}

/// Opens the address of an order read back (the backends read the sealed column as is).
pub(crate) fn open_order(
    cipher: &Cipher,
    order: crate::order::sealed::Order,
) -> Result<crate::Order, StorageError> {
    let json = cipher.open_string(
        &order.shipping_address,
        places::order_address(&order.customer),
    )?;
    let address = address_of(&json)?;
    Ok(order.with_address(address))
}

fn address_json(a: &ShippingAddress) -> String {
    serde_json::json!({
        "name": a.name, "line1": a.line1, "line2": a.line2, "city": a.city,
        "postal_code": a.postal_code, "country": a.country,
    })
    .to_string()
}

/// An address as [`address_json`] wrote it. Every stored address is such an object: the REST
/// edge has always stored the parsed address as JSON, and sealing (migration 0013) kept the
/// text as it was, so anything else is corruption, not an older form.
fn address_of(json: &str) -> Result<ShippingAddress, StorageError> {
    let bad = || crate::catalog::corrupt("a stored shipping address is not an address object");
    let v: serde_json::Value = serde_json::from_str(json).map_err(|_| bad())?;
    let text = |name: &str| {
        v.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    Ok(ShippingAddress {
        name: text("name").ok_or_else(bad)?,
        line1: text("line1").ok_or_else(bad)?,
        line2: text("line2"),
        city: text("city").ok_or_else(bad)?,
        postal_code: text("postal_code").ok_or_else(bad)?,
        country: text("country").ok_or_else(bad)?,
    })
}

/// [`open_order`] over what a create answers.
pub(crate) fn open_created(
    cipher: &Cipher,
    created: crate::order::OrderResult<crate::order::sealed::Created>,
) -> crate::order::OrderResult<crate::Created> {
    Ok(match created? {
        Ok(crate::Created::New(o)) => Ok(crate::Created::New(open_order(cipher, o)?)),
        Ok(crate::Created::Replayed(o)) => Ok(crate::Created::Replayed(open_order(cipher, o)?)),
        Err(refusal) => Err(refusal),
    })
}

/// Seals a stored answer's body (it may hold an email or an address) for its key's scope.
pub(crate) fn seal_answer(
    cipher: &Cipher,
    scope: &crate::IdempotencyScope,
    mut response: crate::StoredResponse,
) -> crate::StoredResponse {
    let place = idempotency_scope(scope);
    response.body = cipher
        .seal(&response.body, places::idempotency_body(&place))
        .into_bytes();
    response
}

/// Opens the body of a stored answer a claim found.
pub(crate) fn open_claim(
    cipher: &Cipher,
    scope: &crate::IdempotencyScope,
    claim: crate::Claim,
) -> Result<crate::Claim, StorageError> {
    let crate::Claim::Completed(mut response) = claim else {
        return Ok(claim);
    };
    let place = idempotency_scope(scope);
    let sealed = String::from_utf8(response.body)
        .map_err(|_| StorageError::Corrupt("a stored answer is not sealed".to_owned()))?;
    response.body = cipher.open(&sealed, places::idempotency_body(&place))?;
    Ok(crate::Claim::Completed(response))
}

/// What `data_key_check` holds sealed: opening it proves the key is the database's.
pub(crate) const CHECK_PLAINTEXT: &[u8] = b"allot personal data key check";

/// The scope string of an idempotency key, for [`places::idempotency_body`].
pub(crate) fn idempotency_scope(scope: &crate::IdempotencyScope) -> String {
    let crate::IdempotencyScope {
        owner,
        key,
        method,
        path,
    } = scope;
    format!("{key}\0{method}\0{path}\0{owner}")
}

/// The refusal when the configured key is not the one the database was written with.
pub(crate) fn wrong_key(stored_key_id: &str, cipher: &Cipher) -> StorageError {
    StorageError::DataKey(format!(
        "the configured data key (key id {}) is not the key this database's personal data was \
         sealed with (key id {stored_key_id}); configure that key (data_key, --data-key or \
         ALLOT_DATA_KEY), or for the embedded database restore its data.key file",
        cipher.key_id()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&DataKey::parse(&STANDARD.encode([7u8; 32])).unwrap())
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_under_its_key() {
        let c = cipher();
        let sealed = c.seal_str("1 Road, Paris", places::order_address("ada"));
        assert!(sealed.starts_with(&format!("v1.{}.", c.key_id())));
        assert!(!sealed.contains("Road"));
        assert_eq!(
            c.open_string(&sealed, places::order_address("ada"))
                .unwrap(),
            "1 Road, Paris"
        );
        assert!(c.open(&sealed, places::order_address("bob")).is_err());
        assert!(c.open(&sealed, places::user_email("ada")).is_err());
        let other = Cipher::new(&DataKey::generate());
        assert!(other.open(&sealed, places::order_address("ada")).is_err());
        // A random nonce per value: the same plaintext seals differently.
        assert_ne!(
            sealed,
            c.seal_str("1 Road, Paris", places::order_address("ada"))
        );
    }

    #[test]
    fn the_blind_index_is_stable_per_key_and_differs_between_keys() {
        let c = cipher();
        assert_eq!(c.email_index("a@b.c"), c.email_index("a@b.c"));
        assert_ne!(c.email_index("a@b.c"), c.email_index("b@b.c"));
        assert_ne!(
            c.email_index("a@b.c"),
            Cipher::new(&DataKey::generate()).email_index("a@b.c")
        );
        assert_eq!(c.email_index("a@b.c").len(), 64);
    }

    #[test]
    fn an_address_reads_back_as_it_was_written_and_anything_else_is_corrupt() {
        for line2 in [None, Some("Flat 3")] {
            let a = ShippingAddress::parse("Ada", "1 Road", line2, "Paris", "75001", "fr").unwrap();
            assert_eq!(address_of(&address_json(&a)).unwrap(), a);
        }
        for stored in ["12 Plain Street", "{}", r#"{"name": 1}"#] {
            assert!(address_of(stored).is_err(), "{stored}");
        }
    }

    #[test]
    fn keys_must_be_base64_of_32_bytes() {
        assert!(DataKey::parse("not base64!").is_err());
        assert!(DataKey::parse(&STANDARD.encode([1u8; 16])).is_err());
        let k = DataKey::generate();
        assert_eq!(DataKey::parse(&k.to_base64()).unwrap(), k);
        assert_eq!(format!("{k:?}"), "DataKey(..)");
    }
}
