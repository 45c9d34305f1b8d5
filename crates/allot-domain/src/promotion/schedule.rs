//! Recurring hours in a named time zone.

use crate::promotion::ScheduleSpec;
use crate::{DomainError, UnixMillis};

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
        let _ = spec;
        todo!("Schedule::parse")
    }

    /// Whether `at` falls in the schedule's hours, in its time zone.
    pub fn contains(&self, at: UnixMillis) -> bool {
        let _ = at;
        todo!("Schedule::contains")
    }
}
