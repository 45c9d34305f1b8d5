//! Rate limits per client (issue 8): sign-in, against credential stuffing, and code use
//! (discount-code use over REST and gRPC, coupon validate and redeem, flash-sale purchase),
//! against code enumeration. The algorithm is `governor`'s GCRA, one keyed limiter per limit.
//!
//! A client is the authenticated principal when there is one, else the client's IP address.
//! Sign-in is limited per IP and per email (an attacker spreading guesses over addresses still
//! meets the per-email limit; one spraying many emails from one address meets the per-IP one).
//! Limits are kept in each instance's memory: with N instances behind a balancer a client
//! gets up to N times the limit. That is enough to make stuffing and enumeration slow; a
//! shared limit would add a Redis round trip to every code use.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use allot_domain::event::{Actor, Origin};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ServiceError;

pub const DEFAULT_LOGIN_PER_IP_PER_MIN: u32 = 10;
pub const DEFAULT_LOGIN_PER_EMAIL_PER_MIN: u32 = 5;
pub const DEFAULT_CODE_USE_PER_SEC: u32 = 20;
pub const DEFAULT_CODE_USE_BURST: u32 = 40;

/// Clients remembered per limiter before the idle ones are dropped (a client is idle once its
/// bucket is full again, so dropping it changes nothing).
const KEYS_MAX: usize = 100_000;
/// Checks between two looks at the number of clients remembered.
const CHECKS_PER_SWEEP: u64 = 4_096;

/// The limits; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Sign-in attempts per client IP per minute.
    pub login_per_ip_per_min: u32,
    /// Sign-in attempts per email per minute.
    pub login_per_email_per_min: u32,
    /// Code uses per client per second, sustained.
    pub code_use_per_sec: u32,
    /// Code uses a client may make at once before the per-second rate applies.
    pub code_use_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            login_per_ip_per_min: DEFAULT_LOGIN_PER_IP_PER_MIN,
            login_per_email_per_min: DEFAULT_LOGIN_PER_EMAIL_PER_MIN,
            code_use_per_sec: DEFAULT_CODE_USE_PER_SEC,
            code_use_burst: DEFAULT_CODE_USE_BURST,
        }
    }
}

impl RateLimitSettings {
    /// Every limit off (load tests, benchmarks).
    pub const OFF: RateLimitSettings = RateLimitSettings {
        login_per_ip_per_min: 0,
        login_per_email_per_min: 0,
        code_use_per_sec: 0,
        code_use_burst: 0,
    };
}

/// Who a limit counts: the principal, else the address (`None` when neither is known: such
/// calls share one bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    Principal(Actor),
    Address(Option<IpAddr>),
}

impl Client {
    pub(crate) fn of(origin: &Origin) -> Client {
        match origin.actor {
            Actor::Anonymous | Actor::Unattributed => Client::Address(origin.source),
            actor => Client::Principal(actor),
        }
    }
}

struct Limiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(quota: Option<Quota>) -> Option<Self> {
        quota.map(|q| Limiter {
            limiter: RateLimiter::keyed(q),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one call from `key`'s allowance, or says how long until it has one.
    fn check(&self, key: &K) -> Result<(), Duration> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(CHECKS_PER_SWEEP)
            && self.limiter.len() > KEYS_MAX
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The refusal of a limited call: whole seconds, rounded up, at least 1.
fn refused(wait: Duration) -> ServiceError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ServiceError::RateLimited {
        retry_after_secs: secs.max(1),
    }
}

/// The limiters of one server instance.
pub struct RateLimits {
    login_ip: Option<Limiter<Option<IpAddr>>>,
    login_email: Option<Limiter<String>>,
    code_use: Option<Limiter<Client>>,
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> Self {
        let per_minute = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        let code_use = NonZeroU32::new(settings.code_use_per_sec).map(|rate| {
            let burst = NonZeroU32::new(settings.code_use_burst.max(rate.get())).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        RateLimits {
            login_ip: Limiter::new(per_minute(settings.login_per_ip_per_min)),
            login_email: Limiter::new(per_minute(settings.login_per_email_per_min)),
            code_use: Limiter::new(code_use),
        }
    }

    /// One sign-in attempt from `source` for `email`. Every attempt counts, right or wrong:
    /// once refused, a correct password is refused too until the wait is over.
    pub fn login(&self, source: Option<IpAddr>, email: &str) -> Result<(), ServiceError> {
        if let Some(l) = &self.login_ip {
            l.check(&source).map_err(refused)?;
        }
        if let Some(l) = &self.login_email {
            l.check(&email.trim().to_lowercase()).map_err(refused)?;
        }
        Ok(())
    }

    /// One code use by `client`.
    pub(crate) fn code_use(&self, client: &Client) -> Result<(), ServiceError> {
        match &self.code_use {
            Some(l) => l.check(client).map_err(refused),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_sixth_sign_in_for_an_email_is_refused_with_a_wait() {
        let limits = RateLimits::new(RateLimitSettings::default());
        for n in 0..5 {
            // A different address each time: the per-email limit holds anyway.
            let source = ip(&format!("10.0.0.{n}"));
            limits.login(source, "A@example.com").unwrap();
        }
        match limits.login(ip("10.0.0.9"), " a@example.COM ") {
            Err(ServiceError::RateLimited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs));
            }
            other => panic!("expected rate_limited, got {other:?}"),
        }
        limits.login(ip("10.0.0.9"), "b@example.com").unwrap();
    }

    #[test]
    fn code_use_counts_per_client_and_zero_turns_it_off() {
        let settings = RateLimitSettings {
            code_use_per_sec: 1,
            code_use_burst: 2,
            ..RateLimitSettings::default()
        };
        let limits = RateLimits::new(settings);
        let alice = Client::Principal(Actor::User(1));
        let anonymous = Client::Address(ip("127.0.0.1"));
        limits.code_use(&alice).unwrap();
        limits.code_use(&alice).unwrap();
        assert!(limits.code_use(&alice).is_err());
        limits.code_use(&anonymous).unwrap();

        let off = RateLimits::new(RateLimitSettings::OFF);
        for _ in 0..1_000 {
            off.code_use(&alice).unwrap();
            off.login(None, "a@example.com").unwrap();
        }
    }
}
