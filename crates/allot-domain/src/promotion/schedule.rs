//! Recurring hours in a named time zone.
//!
//! An instant is turned into the zone's wall-clock time before it is compared, so daylight
//! saving is followed without any rule of its own: `09:00`-`18:00` in `Europe/Paris` is 08:00
//! to 17:00 UTC in winter and 07:00 to 16:00 UTC in summer. A wall-clock time the zone skips (02:30
//! on the last Sunday of March in Paris) is never reached; one it repeats is in the window both
//! times.

use chrono::{Datelike, TimeZone, Timelike};

use crate::promotion::{ScheduleSpec, Weekday};
use crate::{DomainError, UnixMillis};

/// Minutes in a day: the default end of the hours, and the only `until` beyond `23:59`
/// (written `24:00`).
const DAY_MINUTES: u16 = 24 * 60;

/// A checked [`ScheduleSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub(crate) time_zone: chrono_tz::Tz,
    /// Bit 0 Monday .. bit 6 Sunday; all set when the spec lists none.
    pub(crate) weekdays: u8,
    /// Minutes after midnight, local time.
    pub(crate) from_minute: u16,
    pub(crate) until_minute: u16,
}

impl Schedule {
    pub fn parse(spec: &ScheduleSpec) -> Result<Schedule, DomainError> {
        let time_zone: chrono_tz::Tz = spec.time_zone.trim().parse().map_err(|_| {
            DomainError::invalid(
                "conditions.schedule.time_zone",
                format!(
                    "{:?} is not an IANA time zone (such as Europe/Paris)",
                    spec.time_zone
                ),
            )
        })?;
        let weekdays = if spec.weekdays.is_empty() {
            0b111_1111
        } else {
            spec.weekdays.iter().fold(0u8, |bits, d| bits | bit(*d))
        };
        let from_minute = match &spec.from {
            Some(raw) => parse_hh_mm(raw, false)
                .ok_or_else(|| hh_mm_error("conditions.schedule.from", raw))?,
            None => 0,
        };
        let until_minute = match &spec.until {
            Some(raw) => parse_hh_mm(raw, true)
                .ok_or_else(|| hh_mm_error("conditions.schedule.until", raw))?,
            None => DAY_MINUTES,
        };
        if from_minute == until_minute {
            return Err(DomainError::invalid(
                "conditions.schedule.until",
                "must differ from `from` (the hours would be empty)",
            ));
        }
        Ok(Schedule {
            time_zone,
            weekdays,
            from_minute,
            until_minute,
        })
    }

    /// Whether `at` falls in the schedule's hours, in its time zone. The weekdays name the
    /// day the hours start on: `22:00`-`02:00` on Friday holds from Friday 22:00 until
    /// Saturday 02:00.
    pub fn contains(&self, at: UnixMillis) -> bool {
        let Some(local) = self.time_zone.timestamp_millis_opt(at.as_millis()).single() else {
            // Out of chrono's range (hundreds of thousands of years away): never in the hours.
            return false;
        };
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let today = local.weekday().num_days_from_monday() as u8;
        let yesterday = (today + 6) % 7;
        let on = |day: u8| self.weekdays & (1 << day) != 0;
        if self.from_minute < self.until_minute {
            on(today) && (self.from_minute..self.until_minute).contains(&minute)
        } else {
            (on(today) && minute >= self.from_minute)
                || (on(yesterday) && minute < self.until_minute)
        }
    }
}

fn bit(day: Weekday) -> u8 {
    1 << match day {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

/// `HH:MM`, two digits each, `00:00` to `23:59`; `24:00` too when it ends the hours.
fn parse_hh_mm(raw: &str, is_end: bool) -> Option<u16> {
    let bytes = raw.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let digits = [bytes[0], bytes[1], bytes[3], bytes[4]];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let [h1, h2, m1, m2] = digits.map(|d| u16::from(d - b'0'));
    let (hour, minute) = (h1 * 10 + h2, m1 * 10 + m2);
    let total = hour * 60 + minute;
    if minute < 60 && (hour < 24 || (is_end && total == DAY_MINUTES)) {
        Some(total)
    } else {
        None
    }
}

fn hh_mm_error(field: &'static str, raw: &str) -> DomainError {
    DomainError::invalid(
        field,
        format!("{raw:?} is not a time of day as HH:MM (00:00 to 23:59)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(zone: &str, weekdays: Vec<Weekday>, from: &str, until: &str) -> ScheduleSpec {
        ScheduleSpec {
            time_zone: zone.to_owned(),
            weekdays,
            from: Some(from.to_owned()),
            until: Some(until.to_owned()),
        }
    }

    fn at(rfc3339: &str) -> UnixMillis {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("a test instant");
        UnixMillis::from_millis(t.timestamp_millis())
    }

    #[test]
    fn parse_names_each_wrong_field() {
        let bad_zone = Schedule::parse(&spec("Europe/Pariss", vec![], "09:00", "18:00"));
        assert_eq!(
            bad_zone.map(|_| ()).unwrap_err().field(),
            "conditions.schedule.time_zone"
        );
        for (from, until, field) in [
            ("9:00", "18:00", "conditions.schedule.from"),
            ("24:00", "18:00", "conditions.schedule.from"),
            ("09:60", "18:00", "conditions.schedule.from"),
            ("09:00", "18h00", "conditions.schedule.until"),
            ("09:00", "24:01", "conditions.schedule.until"),
            ("09:00", "09:00", "conditions.schedule.until"),
        ] {
            let err = Schedule::parse(&spec("Europe/Paris", vec![], from, until))
                .map(|_| ())
                .unwrap_err();
            assert_eq!(err.field(), field, "{from}-{until}");
        }
        let whole_day = ScheduleSpec {
            time_zone: "UTC".to_owned(),
            weekdays: vec![Weekday::Sat],
            from: None,
            until: None,
        };
        let s = Schedule::parse(&whole_day).expect("a whole Saturday");
        assert_eq!(
            (s.from_minute, s.until_minute, s.weekdays),
            (0, 1440, 1 << 5)
        );
        assert!(Schedule::parse(&spec("UTC", vec![], "22:00", "24:00")).is_ok());
    }

    #[test]
    fn paris_office_hours_follow_daylight_saving() {
        // 2026-03-29 is the last Sunday of March: Paris goes from UTC+1 to UTC+2 at 01:00 UTC.
        let s = Schedule::parse(&spec("Europe/Paris", vec![], "09:00", "18:00")).expect("valid");
        // Saturday before the change: 09:00 Paris is 08:00 UTC.
        assert!(!s.contains(at("2026-03-28T07:59:59Z")));
        assert!(s.contains(at("2026-03-28T08:00:00Z")));
        assert!(s.contains(at("2026-03-28T16:59:59Z")));
        assert!(!s.contains(at("2026-03-28T17:00:00Z")));
        // Monday after: 09:00 Paris is 07:00 UTC.
        assert!(!s.contains(at("2026-03-30T06:59:59Z")));
        assert!(s.contains(at("2026-03-30T07:00:00Z")));
        assert!(s.contains(at("2026-03-30T15:59:59Z")));
        assert!(!s.contains(at("2026-03-30T16:00:00Z")));
    }

    #[test]
    fn a_skipped_hour_is_never_reached_and_weekdays_are_local() {
        // 02:00-03:00 Paris does not exist on 2026-03-29 (clocks jump from 02:00 to 03:00).
        let s = Schedule::parse(&spec("Europe/Paris", vec![Weekday::Sun], "02:00", "03:00"))
            .expect("valid");
        assert!(!s.contains(at("2026-03-29T00:59:59Z"))); // 01:59:59 Paris
        assert!(!s.contains(at("2026-03-29T01:00:00Z"))); // 03:00 Paris
        // A week earlier it was reachable: 02:30 Paris = 01:30 UTC.
        assert!(s.contains(at("2026-03-22T01:30:00Z")));
        // Sunday in Paris starts at Saturday 23:00 UTC in winter.
        let sunday = Schedule::parse(&spec("Europe/Paris", vec![Weekday::Sun], "00:00", "01:00"))
            .expect("valid");
        assert!(sunday.contains(at("2026-03-21T23:30:00Z")));
        assert!(!sunday.contains(at("2026-03-22T23:30:00Z")));
    }

    #[test]
    fn hours_past_midnight_belong_to_the_day_they_start() {
        let s = Schedule::parse(&spec("UTC", vec![Weekday::Fri], "22:00", "02:00")).expect("valid");
        // 2026-03-27 is a Friday.
        assert!(!s.contains(at("2026-03-27T21:59:00Z")));
        assert!(s.contains(at("2026-03-27T22:00:00Z")));
        assert!(s.contains(at("2026-03-28T01:59:00Z"))); // Saturday, still Friday's night
        assert!(!s.contains(at("2026-03-28T02:00:00Z")));
        assert!(!s.contains(at("2026-03-28T22:30:00Z"))); // Saturday night: not listed
        assert!(!s.contains(at("2026-03-27T01:00:00Z"))); // Thursday's night
    }
}
