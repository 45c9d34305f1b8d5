use std::fmt;

/// An instant as milliseconds since the Unix epoch, UTC. Millisecond precision is the
/// resolution of every rule in Allot (a campaign opens "to the millisecond").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(i64);

impl UnixMillis {
    pub const fn from_millis(ms: i64) -> Self {
        UnixMillis(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub const fn plus_millis(self, ms: i64) -> Self {
        UnixMillis(self.0.saturating_add(ms))
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// The source of "now". Production uses the system clock; tests inject a clock they control
/// instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixMillis;
}
