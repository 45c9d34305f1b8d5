//! The properties the fuzz targets (`fuzz/`, nightly, `cargo fuzz`) check against Allot's
//! hand-written decoders, one function per target. They call the decoders the product calls
//! (no copy of their logic) and panic when a property fails. The normal suite feeds every
//! kept corpus and regression file through them on stable (`tests/fuzz_corpus.rs`).
//!
//! Not an API: hidden from the documentation, for the fuzz targets and that test only.

use std::collections::HashMap;
use std::fmt::Debug;

use allot_domain::DomainError;
use allot_domain::auth::Email;
use allot_domain::campaign::{CampaignName, CouponCode};
use allot_domain::catalog::{AttributeKey, Currency, SearchText, Sku, WarehouseCode};
use allot_domain::coupon::UploadedCode;
use allot_domain::discount::{ALPHABET, DiscountCode};
use allot_domain::payment::Provider;
use allot_domain::sale::{CheckoutCode, ItemId};
use allot_domain::user::{IdempotencyKey, UserId};
use axum::extract::Query;
use http::{HeaderMap, HeaderValue, Uri};

use crate::connect::{self, Codec};
use crate::http::coupon::{CSV_COLUMNS, CsvReader, CsvRefusal};
use crate::http::idempotency;
use crate::http::sale_original;
use crate::http::stripe;
use crate::pb::couponpb as pb;

/// A property function over raw bytes: panics when a property fails.
pub type Property = fn(&[u8]);

/// The fuzz targets, by name.
pub const TARGETS: [(&str, Property); 6] = [
    ("connect_codec", connect_codec),
    ("coupon_csv", coupon_csv),
    ("domain_values", domain_values),
    ("sale_query", sale_query),
    ("signatures", signatures),
    ("idempotency_key", idempotency_key),
];

/// Connect's unary codecs (`application/json`, the proto3 JSON mapping, and
/// `application/proto`) for each request and answer message, and the content-type that picks
/// one. The first byte picks the message and codec; the rest is the body.
pub fn connect_codec(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let codec = if selector & 1 == 0 {
        Codec::Json
    } else {
        Codec::Proto
    };
    match (selector >> 1) % 7 {
        0 => round_trip::<pb::CreateCampaignRequest>(codec, body),
        1 => round_trip::<pb::GetCampaignRequest>(codec, body),
        2 => round_trip::<pb::IssueCouponRequest>(codec, body),
        3 => round_trip::<pb::CreateCampaignResponse>(codec, body),
        4 => round_trip::<pb::GetCampaignResponse>(codec, body),
        5 => round_trip::<pb::IssueCouponResponse>(codec, body),
        _ => content_type(body),
    }
}

/// A decoded message encodes in both codecs, and each encoding decodes to the same message.
fn round_trip<M>(codec: Codec, body: &[u8])
where
    M: prost::Message
        + Default
        + PartialEq
        + Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let Ok(message) = connect::decode::<M>(codec, body) else {
        return;
    };
    for to in [Codec::Json, Codec::Proto] {
        // JSON refuses only a Timestamp out of range (which protobuf may carry).
        let Ok(bytes) = connect::encode(to, &message) else {
            assert_eq!(to, Codec::Json, "protobuf encoding never fails");
            continue;
        };
        let again = connect::decode::<M>(to, &bytes)
            .unwrap_or_else(|e| panic!("{to:?} of {message:?} does not decode: {e:?}"));
        if to == Codec::Json && codec == Codec::Proto {
            // JSON writes instants to the millisecond (the contract's precision), so a
            // protobuf Timestamp's finer nanos are cut: the JSON itself is the fixed point.
            let twice = connect::encode(to, &again).expect("a decoded message encodes");
            assert_eq!(twice, bytes, "JSON of {message:?}");
        } else {
            assert_eq!(again, message, "{to:?} round trip of {message:?}");
            // The canonical encoding is a fixed point.
            let twice = connect::encode(to, &again).expect("a decoded message encodes");
            assert_eq!(twice, bytes, "{to:?} of {message:?}");
        }
    }
}

fn content_type(raw: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(raw) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, value);
    let Some(codec) = Codec::from_headers(&headers) else {
        return;
    };
    // Only the two media types (any case, any parameters) pick a codec.
    let media = std::str::from_utf8(raw)
        .expect("a picked content-type is text")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    assert_eq!(media, codec.content_type());
}

/// The CSV coupon upload, line by line as the handler reads it: the first non-blank line is the
/// header; every later non-blank line is one row, numbered from 0. An accepted row holds only
/// what the rules allow and, written back as CSV, reads as the same coupon.
pub fn coupon_csv(data: &[u8]) {
    let mut reader = CsvReader::default();
    let mut numbered = 0usize;
    let mut lines = data.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        let had_header = reader.header.is_some();
        let blank = std::str::from_utf8(line).is_ok_and(|l| l.trim().is_empty());
        match reader.line(line) {
            Err(CsvRefusal::RowsOver) => panic!("a fuzz input holds fewer rows than the limit"),
            Err(CsvRefusal::Refused(_)) => return,
            Ok(None) => assert!(blank || !had_header, "a row was skipped"),
            Ok(Some(row)) => {
                assert!(had_header && !blank);
                numbered += 1;
                assert_eq!(reader.rows, numbered);
                match row {
                    Ok(coupon) => csv_row_round_trip(&coupon),
                    Err(errors) => {
                        assert!(!errors.is_empty(), "a refused row names its errors");
                        assert!(errors.iter().all(|e| e.index == numbered - 1));
                    }
                }
            }
        }
    }
}

fn csv_row_round_trip(coupon: &allot_storage::NewCoupon) {
    let code = coupon.code.as_str();
    assert!(!code.is_empty() && code.chars().count() <= allot_domain::coupon::CODE_MAX_CHARS);
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    );
    let max_uses = coupon.max_uses.get();
    let row = [
        code.to_owned(),
        coupon
            .coupon_type
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        coupon.discount.kind().as_str().to_owned(),
        coupon.discount.amount().to_string(),
        crate::time::rfc3339(coupon.expires_at),
        max_uses.to_string(),
    ];
    let mut reader = CsvReader::default();
    assert!(matches!(
        reader.line(CSV_COLUMNS.join(",").as_bytes()),
        Ok(None)
    ));
    let again = match reader.line(row.join(",").as_bytes()) {
        Ok(Some(Ok(again))) => again,
        _ => panic!("{coupon:?} written as {row:?} does not read back"),
    };
    assert_eq!(again.code, coupon.code);
    assert_eq!(again.coupon_type, coupon.coupon_type);
    assert_eq!(again.discount, coupon.discount);
    assert_eq!(again.expires_at, coupon.expires_at);
    assert_eq!(again.max_uses.get(), max_uses);
}

/// The domain's value types that parse text a client sends (codes, ids, e-mail addresses,
/// names): an accepted value keeps the stated rule (length, alphabet) and parses to itself.
/// The first byte picks the type; the rest, as UTF-8, is the input.
pub fn domain_values(data: &[u8]) {
    let Some((&selector, raw)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let chars = |s: &str| s.chars().count();
    let code_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
    match selector % 14 {
        0 => fixed_point(
            raw,
            UploadedCode::parse,
            |c| c.as_str().to_owned(),
            |c| {
                let s = c.as_str();
                !s.is_empty() && chars(raw) <= 64 && s.bytes().all(code_char)
            },
        ),
        1 => fixed_point(
            raw,
            DiscountCode::parse,
            |c| c.as_str().to_owned(),
            |c| {
                (7..=8).contains(&c.as_str().len())
                    && c.as_str().bytes().all(|b| ALPHABET.contains(&b))
            },
        ),
        2 => fixed_point(
            raw,
            CheckoutCode::parse,
            |c| c.as_str().to_owned(),
            |c| c.as_str().len() == 16 && c.as_str().bytes().all(|b| ALPHABET.contains(&b)),
        ),
        3 => fixed_point(
            raw,
            CouponCode::parse,
            |c| c.as_str().to_owned(),
            |c| {
                let n = chars(c.as_str());
                (1..=10).contains(&n)
                    && c.as_str()
                        .chars()
                        .all(|ch| ch.is_ascii_digit() || ('\u{AC00}'..='\u{D7A3}').contains(&ch))
            },
        ),
        4 => fixed_point(
            raw,
            UserId::parse,
            |u| u.as_str().to_owned(),
            |u| {
                let s = u.as_str();
                s == raw
                    && (1..=128).contains(&chars(s))
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            },
        ),
        5 => fixed_point(
            raw,
            IdempotencyKey::parse,
            |k| k.as_str().to_owned(),
            |k| {
                let s = k.as_str();
                s == raw
                    && (1..=128).contains(&chars(s))
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            },
        ),
        6 => fixed_point(
            raw,
            Email::parse,
            |e| e.as_str().to_owned(),
            |e| {
                let s = e.as_str();
                chars(raw) <= 254
                    && chars(s) <= 254
                    && s.matches('@').count() == 1
                    && !s.starts_with('@')
                    && !s.ends_with('@')
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                    && s == s.to_lowercase()
            },
        ),
        7 => fixed_point(
            raw,
            ItemId::parse,
            |i| i.get().to_string(),
            |i| i.get() >= 1,
        ),
        8 => fixed_point(
            raw,
            Sku::parse,
            |s| s.as_str().to_owned(),
            |s| {
                let v = s.as_str();
                !v.is_empty()
                    && chars(raw) <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                    && Sku::parse(&s.key()).map(|k| k.key()) == Ok(s.key())
            },
        ),
        9 => fixed_point(
            raw,
            WarehouseCode::parse,
            |c| c.as_str().to_owned(),
            |c| !c.as_str().is_empty() && chars(raw) <= 32 && c.as_str().bytes().all(code_char),
        ),
        10 => fixed_point(
            raw,
            Currency::parse,
            |c| c.as_str().to_owned(),
            |c| c.as_str().len() == 3 && c.as_str().bytes().all(|b| b.is_ascii_uppercase()),
        ),
        11 => fixed_point(
            raw,
            AttributeKey::parse,
            |k| k.as_str().to_owned(),
            |k| {
                let s = k.as_str();
                (1..=64).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            },
        ),
        12 => fixed_point(
            raw,
            Provider::parse,
            |p| p.as_str().to_owned(),
            |p| {
                let s = p.as_str();
                !s.is_empty()
                    && chars(raw) <= 32
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
            },
        ),
        _ => {
            fixed_point(
                raw,
                CampaignName::parse,
                |n| n.as_str().to_owned(),
                |n| !n.as_str().is_empty() && !n.as_str().chars().any(char::is_control),
            );
            // A search's words are runs of lower-case letters and digits, and searching for
            // them again finds the same words.
            if let Ok(Some(search)) = SearchText::parse(raw) {
                for w in search.words() {
                    assert!(
                        !w.is_empty() && w.chars().all(char::is_alphanumeric),
                        "{w:?}"
                    );
                }
                let joined = search.words().join(" ");
                assert_eq!(SearchText::parse(&joined), Ok(Some(search)));
            }
        }
    }
}

/// `parse(raw)` accepted means the value keeps `rule` and `parse(show(value))` is the value.
fn fixed_point<T: PartialEq + Debug>(
    raw: &str,
    parse: fn(&str) -> Result<T, DomainError>,
    show: fn(&T) -> String,
    rule: impl Fn(&T) -> bool,
) {
    let Ok(value) = parse(raw) else {
        return;
    };
    assert!(
        rule(&value),
        "{raw:?} was accepted as {value:?}, which the rule forbids"
    );
    let shown = show(&value);
    assert_eq!(parse(&shown).as_ref(), Ok(&value), "{raw:?} -> {shown:?}");
}

/// The query strings of the design's flash sale: `POST /checkout?user_id=&id=` (or `item_id`)
/// and `POST /purchase?code=`, read by the extractor and the functions the handlers use.
pub fn sale_query(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/checkout?{raw}").parse::<Uri>() else {
        return;
    };
    let query = || Query::<HashMap<String, String>>::try_from_uri(&uri);
    let map = query().ok().map(|Query(q)| q);
    let given = |name: &str| {
        map.as_ref()
            .and_then(|m| m.get(name).filter(|v| !v.is_empty()).cloned())
    };

    if let Ok(params) = sale_original::checkout_params(query()) {
        assert_eq!(params.user_id, given("user_id"));
        if let Ok(item) = params.item {
            assert!(item.get() >= 1);
            let (id, item_id) = (given("id"), given("item_id"));
            if let (Some(a), Some(b)) = (&id, &item_id) {
                assert_eq!(
                    a, b,
                    "id and item_id name different items, yet one was taken"
                );
            }
            // The same parameters written by a client read the same.
            let mut again = form_urlencoded::Serializer::new(String::new());
            if let Some(u) = &params.user_id {
                again.append_pair("user_id", u);
            }
            again.append_pair("id", &item.get().to_string());
            let uri: Uri = format!("/checkout?{}", again.finish())
                .parse()
                .expect("a serialized query is a URI");
            let back = sale_original::checkout_params(Query::try_from_uri(&uri))
                .ok()
                .expect("a written query reads");
            assert_eq!(back.user_id, params.user_id);
            assert_eq!(back.item.ok(), Some(item));
            if let Some(u) = &params.user_id
                && let Ok(user) = UserId::parse(u)
            {
                assert_eq!(user.as_str(), u);
            }
        }
    } else {
        assert!(
            map.is_none(),
            "a readable query is refused only for its values"
        );
    }

    if let Ok(code) = sale_original::purchase_code(query()) {
        let given = given("code").expect("a code was given");
        assert_eq!(code.as_str(), given.trim().to_ascii_uppercase());
        assert!(code.as_str().bytes().all(|b| ALPHABET.contains(&b)) && code.as_str().len() == 16);
    }
}

/// `Stripe-Signature` (`t=<seconds>,v1=<hex>`...) and the hex in it, and the webhooks'
/// `Allot-Signature`, signed the same way. The input is split at the first `\n` into header
/// and body; the secret is fixed.
pub fn signatures(data: &[u8]) {
    const SECRET: &str = "whsec_fuzz";
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    // The hex decoder takes hex digits in pairs and nothing else.
    for part in header.split([',', '=']) {
        let part = part.trim();
        let hex_only = part.len() % 2 == 0 && part.bytes().all(|b| b.is_ascii_hexdigit());
        match stripe::hex_bytes(part) {
            Some(bytes) => {
                assert!(hex_only, "{part:?} decoded as hex");
                let lower: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(lower, part.to_ascii_lowercase());
            }
            None => assert!(!hex_only, "{part:?} is hex"),
        }
    }
    // What the fuzzer sends verifies only if it carries the body's signature.
    let now = 1_800_000_000;
    if stripe::verify(Some(header), body, SECRET.as_bytes(), 300, now).is_ok() {
        let t: i64 = header
            .split(',')
            .filter_map(|p| p.trim().strip_prefix("t="))
            .next_back()
            .and_then(|t| t.parse().ok())
            .expect("a verified header has a time");
        let expected = crate::webhook_worker::signature(SECRET, t, body);
        assert!(
            header
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("v1="))
                .any(|v| v.eq_ignore_ascii_case(&expected)),
            "{header:?} verified without the body's signature"
        );
    }
    // Allot's own signature, in the header form it sends, verifies at its time and only then.
    let t = now - i64::from(data.first().copied().unwrap_or(0));
    let v1 = crate::webhook_worker::signature(SECRET, t, body);
    assert!(v1.len() == 64 && v1.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    let signed = format!("t={t},v1={v1}");
    assert!(stripe::verify(Some(&signed), body, SECRET.as_bytes(), 300, now).is_ok());
    assert!(stripe::verify(Some(&signed), body, b"another", 300, now).is_err());
    let mut other = body.to_vec();
    other.push(b'!');
    assert!(stripe::verify(Some(&signed), &other, SECRET.as_bytes(), 300, now).is_err());
}

/// The `Idempotency-Key` header: the layer's check (visible ASCII, 1 to 255) and the domain's
/// key of orders and campaign issues (1 to 128, no white space or control characters).
pub fn idempotency_key(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    if let Ok(key) = idempotency::parse_key(&value) {
        assert_eq!(key.as_bytes(), data);
        assert!((1..=idempotency::KEY_MAX_CHARS).contains(&key.len()));
        assert!(key.bytes().all(|b| b.is_ascii_graphic()));
    }
    let mut headers = HeaderMap::new();
    headers.insert(idempotency::HEADER, value);
    match idempotency::key_of(&headers) {
        Ok(Some(key)) => {
            let s = key.as_str();
            assert_eq!(s.as_bytes(), data);
            assert!((1..=128).contains(&s.chars().count()));
            assert!(!s.chars().any(|c| c.is_whitespace() || c.is_control()));
            // An owner's key splits back into owner and key at its last space.
            let owned = key.owned_by("user:7");
            assert_eq!(owned.as_str().rsplit_once(' '), Some(("user:7", s)));
        }
        Ok(None) => panic!("a key was sent"),
        Err(e) => assert_eq!(e.field(), "idempotency_key"),
    }
}
