//! Instants at the edges: RFC 3339 strings (REST, Connect JSON) and protobuf Timestamps.

use allot_domain::UnixMillis;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-22T10:00:00.000Z`.
pub fn rfc3339(at: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(at.as_millis())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Parses RFC 3339 with any offset; sub-millisecond digits are truncated.
pub fn parse_rfc3339(raw: &str) -> Option<UnixMillis> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| UnixMillis::from_millis(t.timestamp_millis()))
}

pub fn from_timestamp(ts: &Timestamp) -> Option<UnixMillis> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    let ms = ts
        .seconds
        .checked_mul(1_000)?
        .checked_add(i64::from(ts.nanos / 1_000_000))?;
    // Beyond year 9999 is not an instant anyone means.
    (ms.abs() < 253_402_300_800_000).then(|| UnixMillis::from_millis(ms))
}

pub fn to_timestamp(at: UnixMillis) -> Timestamp {
    let ms = at.as_millis();
    Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

/// `google.protobuf.Timestamp`, wire-identical to prost-types' (same fields and tags). Its
/// JSON form is RFC 3339 in UTC to the millisecond (`2026-11-22T10:00:00.000Z`), as the Connect
/// contract has always written it; any RFC 3339 offset is read. pbjson-types' own writes
/// `+00:00` instead of `Z`, so this one type keeps a hand-written JSON form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match from_timestamp(self) {
            Some(at) => s.serialize_str(&rfc3339(at)),
            None => Err(serde::ser::Error::custom(
                "a Timestamp out of range or with invalid nanos",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        parse_rfc3339(&raw)
            .map(to_timestamp)
            .ok_or_else(|| de::Error::custom(format!("{raw:?} is not an RFC 3339 timestamp")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_millisecond() {
        for ms in [0, 1, 999, 1_000, -1, 1_795_000_000_123] {
            let at = UnixMillis::from_millis(ms);
            assert_eq!(from_timestamp(&to_timestamp(at)), Some(at));
            assert_eq!(parse_rfc3339(&rfc3339(at)), Some(at));
        }
        assert!(
            from_timestamp(&Timestamp {
                seconds: 1,
                nanos: -1
            })
            .is_none()
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T10:00:00+09:00"),
            Some(UnixMillis::from_millis(1_795_309_200_000))
        );
    }
}
