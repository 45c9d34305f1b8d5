//! Rate limits per client (issues 8 and 13): sign-in, against credential stuffing; code use
//! (discount-code use, coupon validate and redeem, flash-sale purchase, orders that carry a
//! code), against code enumeration; anonymous campaign issues; and password changes, which
//! cost an Argon2 hash each. The algorithm is `governor`'s GCRA, one keyed limiter per limit.
//!
//! - **Who is counted.** Code use counts customers (by account) and anonymous callers (by
//!   address). Staff and API keys are not counted: a shop's checkout service or the load tools
//!   behind one key would otherwise be refused at the rate meant for one guessing person. An
//!   API key can be counted anyway by listing its id in `code_use_limited_api_keys`.
//! - **Sign-in** is limited per address, per email and address (the guesses against one
//!   account from one place), and per email over all addresses at a much looser rate, so that
//!   an attacker cannot lock a chosen account out without many addresses, and a refusal is a
//!   back-off of seconds (`Retry-After`), never a lock. The email is parsed before it becomes
//!   a key, and the key is a fixed 16-byte digest of it: junk never reaches a limiter and a
//!   key costs the same whatever was sent.
//! - **Memory is bounded.** A background sweep ([`RateLimits::sweep`], every
//!   [`SWEEP_INTERVAL_MS`]) drops the clients whose allowance is full again (forgetting them
//!   changes nothing). A limiter still holding more than [`KEYS_MAX`] active clients after a
//!   sweep starts over empty (logged): with that many clients at once, forgetting is cheaper
//!   than growing without bound. Checks sweep too when a limiter passes the bound between two
//!   timer sweeps.
//!
//! Limits are kept in each instance's memory: with N instances behind a balancer a client
//! gets up to N times the limit. That is enough to make stuffing and enumeration slow; a
//! shared limit would add a Redis round trip to every code use.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use allot_domain::auth::{Email, Role};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::ServiceError;
use crate::caller::PrincipalId;

pub const DEFAULT_LOGIN_PER_IP_PER_MIN: u32 = 10;
pub const DEFAULT_LOGIN_PER_EMAIL_PER_IP_PER_MIN: u32 = 5;
pub const DEFAULT_LOGIN_PER_EMAIL_PER_MIN: u32 = 60;
pub const DEFAULT_CODE_USE_PER_SEC: u32 = 20;
pub const DEFAULT_CODE_USE_BURST: u32 = 40;
pub const DEFAULT_PASSWORD_CHANGE_PER_USER_PER_MIN: u32 = 5;
/// Account emails (sign-up, password reset) asked for per email address per hour; a client
/// address may ask [`ACCOUNT_EMAIL_PER_IP_FACTOR`] times that (for as many addresses).
pub const DEFAULT_ACCOUNT_EMAIL_PER_HOUR: u32 = 3;
pub const ACCOUNT_EMAIL_PER_IP_FACTOR: u32 = 10;

/// Active clients one limiter remembers at most (about 100 bytes each: some 10 MB per limiter
/// at the bound). Past it, after dropping the idle ones, the limiter starts over empty.
pub const KEYS_MAX: usize = 100_000;
/// Time between two sweeps of idle clients.
pub const SWEEP_INTERVAL_MS: u64 = 10_000;
/// Checks between two looks at a limiter's size (between timer sweeps).
const CHECKS_PER_SIZE_LOOK: u64 = 4_096;

/// The limits; 0 turns one off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Sign-in attempts per client IP per minute.
    pub login_per_ip_per_min: u32,
    /// Sign-in attempts per email from one client IP per minute.
    pub login_per_email_per_ip_per_min: u32,
    /// Sign-in attempts per email from all addresses together per minute (looser: an attacker
    /// needs this many attempts a minute to hold an account's sign-in back).
    pub login_per_email_per_min: u32,
    /// Code uses per client per second, sustained.
    pub code_use_per_sec: u32,
    /// Code uses a client may make at once before the per-second rate applies.
    pub code_use_burst: u32,
    /// Password changes per user per minute (each costs two Argon2 hashes).
    pub password_change_per_user_per_min: u32,
    /// API keys (by id) whose code uses are counted like a customer's; other keys are not.
    pub code_use_limited_api_keys: Vec<i64>,
    /// Sign-ups and password-reset requests per email address per hour (each may send an
    /// email: the limit keeps Allot from becoming a way to flood someone's inbox).
    pub account_email_per_hour: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            login_per_ip_per_min: DEFAULT_LOGIN_PER_IP_PER_MIN,
            login_per_email_per_ip_per_min: DEFAULT_LOGIN_PER_EMAIL_PER_IP_PER_MIN,
            login_per_email_per_min: DEFAULT_LOGIN_PER_EMAIL_PER_MIN,
            code_use_per_sec: DEFAULT_CODE_USE_PER_SEC,
            code_use_burst: DEFAULT_CODE_USE_BURST,
            password_change_per_user_per_min: DEFAULT_PASSWORD_CHANGE_PER_USER_PER_MIN,
            code_use_limited_api_keys: Vec::new(),
            account_email_per_hour: DEFAULT_ACCOUNT_EMAIL_PER_HOUR,
        }
    }
}

impl RateLimitSettings {
    /// Every limit off (load tests, benchmarks).
    pub const OFF: RateLimitSettings = RateLimitSettings {
        login_per_ip_per_min: 0,
        login_per_email_per_ip_per_min: 0,
        login_per_email_per_min: 0,
        code_use_per_sec: 0,
        code_use_burst: 0,
        password_change_per_user_per_min: 0,
        code_use_limited_api_keys: Vec::new(),
        account_email_per_hour: 0,
    };
}

/// Who a code-use limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    User(i64),
    ApiKey(i64),
    /// An anonymous caller, by address (`None` when unknown: such calls share one bucket).
    Address(Option<IpAddr>),
}

/// The caller of a limited call, as the request context proved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerId {
    /// The proven principal and its role; `None` for an anonymous call.
    pub principal: Option<(PrincipalId, Role)>,
    /// The client's address, when known.
    pub source: Option<IpAddr>,
}

/// A sign-in limiter's key: the first 16 bytes of the SHA-256 of the parsed (lower-cased)
/// email, alone or with the address.
type EmailKey = [u8; 16];

fn email_key(email: &Email, source: Option<IpAddr>) -> EmailKey {
    let mut hasher = Sha256::new();
    hasher.update(email.as_str().as_bytes());
    match source {
        Some(IpAddr::V4(v4)) => hasher.update(v4.octets()),
        Some(IpAddr::V6(v6)) => hasher.update(v6.octets()),
        None => {}
    }
    let digest = hasher.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

struct Limiter<K: Hash + Eq + Clone> {
    name: &'static str,
    quota: Quota,
    /// Replaced by an empty one when it holds more than [`KEYS_MAX`] active clients.
    limiter: RwLock<DefaultKeyedRateLimiter<K>>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(name: &'static str, quota: Option<Quota>) -> Option<Self> {
        quota.map(|quota| Limiter {
            name,
            quota,
            limiter: RwLock::new(RateLimiter::keyed(quota)),
            checks: AtomicU64::new(0),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, DefaultKeyedRateLimiter<K>> {
        // Nothing a panic could interrupt leaves the limiter half-changed.
        self.limiter
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one call from `key`'s allowance, or says how long until it has one.
    fn check(&self, key: &K) -> Result<(), Duration> {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(CHECKS_PER_SIZE_LOOK)
            && self.len() > KEYS_MAX
        {
            self.sweep();
        }
        self.read()
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn len(&self) -> usize {
        self.read().len()
    }

    /// Drops the clients whose allowance is full again; starts over when more than
    /// [`KEYS_MAX`] remain.
    fn sweep(&self) {
        let remaining = {
            let limiter = self.read();
            limiter.retain_recent();
            limiter.shrink_to_fit();
            limiter.len()
        };
        if remaining > KEYS_MAX {
            tracing::warn!(
                limit = self.name,
                clients = remaining,
                clients_max = KEYS_MAX,
                "rate limiter full of active clients; starting it over"
            );
            metrics::counter!("allot_rate_limit_resets_total", "limit" => self.name).increment(1);
            *self
                .limiter
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                RateLimiter::keyed(self.quota);
        }
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
    login_email_ip: Option<Limiter<EmailKey>>,
    login_email: Option<Limiter<EmailKey>>,
    code_use: Option<Limiter<Client>>,
    password_change: Option<Limiter<i64>>,
    account_email: Option<Limiter<EmailKey>>,
    account_email_ip: Option<Limiter<Option<IpAddr>>>,
    code_use_limited_api_keys: Vec<i64>,
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> Self {
        let per_minute = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        let code_use = NonZeroU32::new(settings.code_use_per_sec).map(|rate| {
            let burst = NonZeroU32::new(settings.code_use_burst.max(rate.get())).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        });
        RateLimits {
            login_ip: Limiter::new("login_ip", per_minute(settings.login_per_ip_per_min)),
            login_email_ip: Limiter::new(
                "login_email_ip",
                per_minute(settings.login_per_email_per_ip_per_min),
            ),
            login_email: Limiter::new("login_email", per_minute(settings.login_per_email_per_min)),
            code_use: Limiter::new("code_use", code_use),
            password_change: Limiter::new(
                "password_change",
                per_minute(settings.password_change_per_user_per_min),
            ),
            account_email: Limiter::new(
                "account_email",
                NonZeroU32::new(settings.account_email_per_hour).map(Quota::per_hour),
            ),
            account_email_ip: Limiter::new(
                "account_email_ip",
                NonZeroU32::new(
                    settings
                        .account_email_per_hour
                        .saturating_mul(ACCOUNT_EMAIL_PER_IP_FACTOR),
                )
                .map(Quota::per_hour),
            ),
            code_use_limited_api_keys: settings.code_use_limited_api_keys,
        }
    }

    /// One request that may email `email` (sign-up, password reset) from `source`.
    pub fn account_email(&self, source: Option<IpAddr>, email: &Email) -> Result<(), ServiceError> {
        if let Some(l) = &self.account_email_ip {
            l.check(&source).map_err(refused)?;
        }
        if let Some(l) = &self.account_email {
            l.check(&email_key(email, None)).map_err(refused)?;
        }
        Ok(())
    }

    /// One sign-in attempt from `source`, before its email is parsed: counted per address
    /// only, so that a flood of malformed emails is limited too.
    pub fn login_attempt(&self, source: Option<IpAddr>) -> Result<(), ServiceError> {
        match &self.login_ip {
            Some(l) => l.check(&source).map_err(refused),
            None => Ok(()),
        }
    }

    /// One sign-in attempt for `email` from `source` (after [`RateLimits::login_attempt`]).
    /// Every attempt counts, right or wrong: once refused, a correct password is refused too
    /// until the wait is over.
    pub fn login(&self, source: Option<IpAddr>, email: &Email) -> Result<(), ServiceError> {
        if let Some(l) = &self.login_email_ip {
            l.check(&email_key(email, source)).map_err(refused)?;
        }
        if let Some(l) = &self.login_email {
            l.check(&email_key(email, None)).map_err(refused)?;
        }
        Ok(())
    }

    /// One code use (or anonymous campaign issue) by `caller`; staff and API keys not listed
    /// in `code_use_limited_api_keys` are not counted.
    pub fn code_use(&self, caller: &CallerId) -> Result<(), ServiceError> {
        let Some(limiter) = &self.code_use else {
            return Ok(());
        };
        let client = match caller.principal {
            None => Client::Address(caller.source),
            Some((PrincipalId::User(id), Role::Customer)) => Client::User(id.get()),
            Some((PrincipalId::User(_) | PrincipalId::TrustedNetwork, _)) => return Ok(()),
            Some((PrincipalId::ApiKey(id), _)) => {
                if !self.code_use_limited_api_keys.contains(&id) {
                    return Ok(());
                }
                Client::ApiKey(id)
            }
        };
        limiter.check(&client).map_err(refused)
    }

    /// One password change by user `user_id`.
    pub fn password_change(&self, user_id: i64) -> Result<(), ServiceError> {
        match &self.password_change {
            Some(l) => l.check(&user_id).map_err(refused),
            None => Ok(()),
        }
    }

    /// Drops idle clients from every limiter (see the module's documentation). Called every
    /// [`SWEEP_INTERVAL_MS`] by the server.
    pub fn sweep(&self) {
        for l in self.limiters().into_iter().flatten() {
            l.sweep();
        }
    }

    /// Clients remembered now, per limit (`login_ip`, `login_email_ip`, `login_email`,
    /// `code_use`, `password_change`); what the gauge `allot_rate_limit_clients` shows.
    pub fn clients(&self) -> Vec<(&'static str, usize)> {
        self.limiters()
            .into_iter()
            .flatten()
            .map(|l| (l.name(), l.len()))
            .collect()
    }

    /// Sets the gauge `allot_rate_limit_clients{limit}` (before /metrics renders).
    pub(crate) fn record_gauges(&self) {
        for (name, clients) in self.clients() {
            metrics::gauge!("allot_rate_limit_clients", "limit" => name).set(clients as f64);
        }
    }

    fn limiters(&self) -> [Option<&dyn Sweep>; 7] {
        fn dyn_ref<K: Hash + Eq + Clone>(l: &Option<Limiter<K>>) -> Option<&dyn Sweep> {
            l.as_ref().map(|l| l as &dyn Sweep)
        }
        [
            dyn_ref(&self.login_ip),
            dyn_ref(&self.login_email_ip),
            dyn_ref(&self.login_email),
            dyn_ref(&self.code_use),
            dyn_ref(&self.password_change),
            dyn_ref(&self.account_email),
            dyn_ref(&self.account_email_ip),
        ]
    }
}

/// What the sweep and the gauges need of a limiter, whatever its key.
trait Sweep {
    fn name(&self) -> &'static str;
    fn len(&self) -> usize;
    fn sweep(&self);
}

impl<K: Hash + Eq + Clone> Sweep for Limiter<K> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn len(&self) -> usize {
        Limiter::len(self)
    }

    fn sweep(&self) {
        Limiter::sweep(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use allot_domain::auth::AccountId;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    #[test]
    fn the_sixth_sign_in_for_an_email_from_one_address_is_refused_but_not_from_another() {
        let limits = RateLimits::new(RateLimitSettings::default());
        for _ in 0..5 {
            limits
                .login(ip("10.0.0.1"), &email("A@example.com"))
                .unwrap();
        }
        match limits.login(ip("10.0.0.1"), &email(" a@example.COM ")) {
            Err(ServiceError::RateLimited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs));
            }
            other => panic!("expected rate_limited, got {other:?}"),
        }
        // The account's owner elsewhere is not locked out by the attacker at 10.0.0.1.
        limits
            .login(ip("10.0.0.2"), &email("a@example.com"))
            .unwrap();
        limits
            .login(ip("10.0.0.1"), &email("b@example.com"))
            .unwrap();
    }

    #[test]
    fn the_per_email_limit_over_all_addresses_is_looser_and_still_holds() {
        let limits = RateLimits::new(RateLimitSettings::default());
        let target = email("victim@example.com");
        let mut allowed = 0;
        for n in 0..200u32 {
            let source = Some(IpAddr::from([10, 1, (n / 256) as u8, (n % 256) as u8]));
            if limits.login(source, &target).is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, DEFAULT_LOGIN_PER_EMAIL_PER_MIN);
    }

    #[test]
    fn two_hundred_thousand_distinct_emails_leave_the_limiters_bounded() {
        let limits = RateLimits::new(RateLimitSettings::default());
        for n in 0..200_000u32 {
            let source = Some(IpAddr::from(n.to_be_bytes()));
            if limits.login_attempt(source).is_ok() {
                // A junk email never becomes a key: only the parsed ones reach `login`.
                if let Ok(e) = Email::parse(&format!("{}junk{n}", "x".repeat(n as usize % 7))) {
                    limits.login(source, &e).unwrap();
                }
                limits
                    .login(source, &email(&format!("user{n}@example.com")))
                    .unwrap();
            }
        }
        for (limit, clients) in limits.clients() {
            assert!(
                clients <= KEYS_MAX + CHECKS_PER_SIZE_LOOK as usize,
                "{limit}: {clients} clients"
            );
        }
        limits.sweep();
        for (limit, clients) in limits.clients() {
            assert!(
                clients <= KEYS_MAX,
                "{limit}: {clients} clients after a sweep"
            );
        }
    }

    #[test]
    fn code_use_counts_customers_and_anonymous_callers_not_staff_or_keys() {
        let settings = RateLimitSettings {
            code_use_per_sec: 1,
            code_use_burst: 2,
            code_use_limited_api_keys: vec![7],
            ..RateLimitSettings::default()
        };
        let limits = RateLimits::new(settings);
        let customer = CallerId {
            principal: Some((PrincipalId::User(AccountId::new(1)), Role::Customer)),
            source: ip("127.0.0.1"),
        };
        let anonymous = CallerId {
            principal: None,
            source: ip("127.0.0.1"),
        };
        limits.code_use(&customer).unwrap();
        limits.code_use(&customer).unwrap();
        assert!(limits.code_use(&customer).is_err());
        limits.code_use(&anonymous).unwrap();
        for (principal, limited) in [
            (
                (PrincipalId::User(AccountId::new(2)), Role::Marketing),
                false,
            ),
            ((PrincipalId::ApiKey(3), Role::Admin), false),
            ((PrincipalId::ApiKey(4), Role::Customer), false),
            ((PrincipalId::ApiKey(7), Role::Admin), true),
        ] {
            let caller = CallerId {
                principal: Some(principal),
                source: ip("127.0.0.1"),
            };
            let refused = (0..10).any(|_| limits.code_use(&caller).is_err());
            assert_eq!(refused, limited, "{principal:?}");
        }

        let off = RateLimits::new(RateLimitSettings::OFF);
        for _ in 0..1_000 {
            off.code_use(&customer).unwrap();
            off.login(None, &email("a@example.com")).unwrap();
            off.password_change(1).unwrap();
        }
    }
}
