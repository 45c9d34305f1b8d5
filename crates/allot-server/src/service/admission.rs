//! Admission under three limits at once, for MEGADEAL requests: at most `in_flight_max` being
//! served at the same time, at most `per_second_max` admitted in any one-second window, and
//! no request waiting longer than `wait_max`.
//!
//! Requests queue in FIFO order on a bounded channel sized to `wait_max` of work at the rate
//! limit (100 for 10/s and 10 s): a request that finds it full is refused at once instead of
//! after waiting. One dispatcher task admits them in order, through one of two limiters:
//!
//! - **In process** (one instance, the default): it waits until the rate allows (the new
//!   admission at least one second after the `per_second_max`-th most recent one), then for a
//!   free concurrency slot (a semaphore permit), and hands the slot to the request.
//! - **Redis** (several instances sharing one Redis, `--redis-url`): the limits hold across
//!   all instances. Each attempt is one atomic Lua script on Redis, with Redis's `TIME` as the
//!   one clock: it drops expired leases from the sorted set `allot:megadeal:inflight` (member a
//!   slot token, score its lease expiry) and admissions older than one second from
//!   `allot:megadeal:admitted` (score the admission instant), and admits only when both sets
//!   are under their limits; otherwise it says how long to wait. The dispatcher's head waiter
//!   retries after that hint until it is admitted or its deadline passes. A held slot's lease
//!   (5 s) is renewed every second by a background task of the instance, so a slow request
//!   keeps its slot, and the slots of an instance killed outright come back within the lease.
//!   Redis unreachable: the request is refused as `Unavailable` (fail closed).
//!
//! The request holds the slot while it is served; dropping it gives the slot back, whatever the
//! outcome (an error, a panic, a client that went away). A request whose deadline passes while
//! it waits is answered "busy" at its deadline.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allot_domain::{Clock, UnixMillis};
use rand::RngCore;
use redis::aio::ConnectionManager;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub in_flight_max: usize,
    pub per_second_max: usize,
    pub wait_max: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            in_flight_max: 5,
            per_second_max: 10,
            wait_max: Duration::from_secs(10),
        }
    }
}

/// The request could not be admitted in time; retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub retry_after_secs: u64,
}

pub use crate::error::AdmissionUnavailable;

/// Why a queued request was not admitted.
#[derive(Debug, Clone)]
pub enum Refused {
    Busy(Busy),
    Unavailable(AdmissionUnavailable),
}

struct Waiter {
    deadline: Instant,
    reply: oneshot::Sender<Result<Slot, Refused>>,
}

/// A concurrency slot, held while a request is served. Dropping it gives it back.
pub struct Slot {
    held: Held,
    /// When the request was admitted, by the limiter's clock (the server's, or Redis's when
    /// shared): the instant it counts as served in the rate limit, and the one to record.
    pub admitted_at: UnixMillis,
}

enum Held {
    Local {
        _permit: OwnedSemaphorePermit,
        in_flight: Arc<AtomicUsize>,
    },
    Redis {
        token: String,
        limiter: Arc<RedisLimiter>,
    },
}

impl Drop for Slot {
    fn drop(&mut self) {
        match &mut self.held {
            Held::Local { in_flight, .. } => {
                in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            Held::Redis { token, limiter } => limiter.release(std::mem::take(token)),
        }
    }
}

/// A request in the queue.
pub struct Queued {
    deadline: Instant,
    answer: oneshot::Receiver<Result<Slot, Refused>>,
    refused: Arc<AtomicU64>,
}

impl Queued {
    /// Waits for the slot, at most until the request's deadline.
    pub async fn admitted(self) -> Result<Slot, Refused> {
        let answer = match tokio::time::timeout_at(self.deadline, self.answer).await {
            Ok(Ok(answer)) => answer,
            _ => Err(Refused::Busy(Busy {
                retry_after_secs: 1,
            })),
        };
        if answer.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }
}

/// What the admission is doing now, for the status endpoint and tests. With Redis,
/// `in_flight` and `peak_in_flight` are global (all instances); `queued` is this instance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionStatus {
    pub in_flight: usize,
    pub peak_in_flight: usize,
    pub queued: usize,
}

enum Limiter {
    Local {
        in_flight: Arc<AtomicUsize>,
        peak_in_flight: Arc<AtomicUsize>,
    },
    Redis(Arc<RedisLimiter>),
}

pub struct Admission {
    limits: AdmissionLimits,
    queue: mpsc::Sender<Waiter>,
    queue_capacity: usize,
    limiter: Limiter,
    /// Lease renewal (Redis only); stopped when the `Admission` is dropped.
    renewal: Option<JoinHandle<()>>,
    /// Requests this instance refused since it started (queue full, deadline passed, Redis
    /// unreachable), for the console's overview.
    refused: Arc<AtomicU64>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(task) = &self.renewal {
            task.abort();
        }
    }
}

fn queue_capacity(limits: &AdmissionLimits) -> usize {
    ((limits.per_second_max as u64 * limits.wait_max.as_secs().max(1)) as usize).max(1)
}

impl Admission {
    /// The in-process limiter. Starts the dispatcher task; it ends when the `Admission` is
    /// dropped. The rate limit is kept by `clock`, in whole milliseconds, so that the admission
    /// instants it hands out (and that get recorded) are themselves never more than
    /// `per_second_max` in any second.
    pub fn start(limits: AdmissionLimits, clock: Arc<dyn Clock>) -> Self {
        let capacity = queue_capacity(&limits);
        let (queue, rx) = mpsc::channel(capacity);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak_in_flight = Arc::new(AtomicUsize::new(0));
        tokio::spawn(dispatch(
            rx,
            limits,
            clock,
            Arc::new(Semaphore::new(limits.in_flight_max)),
            in_flight.clone(),
            peak_in_flight.clone(),
        ));
        Admission {
            limits,
            queue,
            queue_capacity: capacity,
            limiter: Limiter::Local {
                in_flight,
                peak_in_flight,
            },
            renewal: None,
            refused: Arc::default(),
        }
    }

    /// The limiter shared by every instance on the same Redis. Starts the dispatcher and the
    /// lease renewal tasks; both end when the `Admission` is dropped.
    pub fn start_redis(
        limits: AdmissionLimits,
        conn: ConnectionManager,
        options: RedisAdmissionOptions,
    ) -> Self {
        let capacity = queue_capacity(&limits);
        let (queue, rx) = mpsc::channel(capacity);
        let limiter = Arc::new(RedisLimiter::new(conn, options));
        tokio::spawn(dispatch_redis(rx, limits, limiter.clone()));
        let renewal = tokio::spawn(renew_leases(limiter.clone()));
        Admission {
            limits,
            queue,
            queue_capacity: capacity,
            limiter: Limiter::Redis(limiter),
            renewal: Some(renewal),
            refused: Arc::default(),
        }
    }

    /// Joins the queue, or is refused at once when it holds `wait_max` of work already.
    pub fn enqueue(&self) -> Result<Queued, Busy> {
        let deadline = Instant::now() + self.limits.wait_max;
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Waiter { deadline, reply }) {
            Ok(()) => Ok(Queued {
                deadline,
                answer,
                refused: self.refused.clone(),
            }),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Busy {
                    retry_after_secs: self.limits.wait_max.as_secs().max(1),
                })
            }
        }
    }

    pub async fn status(&self) -> Result<AdmissionStatus, AdmissionUnavailable> {
        let queued = self.queue_capacity - self.queue.capacity();
        match &self.limiter {
            Limiter::Local {
                in_flight,
                peak_in_flight,
            } => Ok(AdmissionStatus {
                in_flight: in_flight.load(Ordering::Acquire),
                peak_in_flight: peak_in_flight.load(Ordering::Acquire),
                queued,
            }),
            Limiter::Redis(limiter) => {
                let (in_flight, peak_in_flight) = limiter.status().await?;
                Ok(AdmissionStatus {
                    in_flight,
                    peak_in_flight,
                    queued,
                })
            }
        }
    }

    /// Requests this instance refused since it started.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }
}

const WINDOW_MS: i64 = 1_000;

async fn dispatch(
    mut rx: mpsc::Receiver<Waiter>,
    limits: AdmissionLimits,
    clock: Arc<dyn Clock>,
    slots: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
) {
    let mut recent: VecDeque<UnixMillis> = VecDeque::with_capacity(limits.per_second_max + 1);
    while let Some(waiter) = rx.recv().await {
        if waiter.reply.is_closed() || Instant::now() >= waiter.deadline {
            continue;
        }
        let permit =
            match tokio::time::timeout_at(waiter.deadline, slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => continue,
            };
        // The new admission must come a full window after the per_second_max-th most recent.
        let admitted_at = loop {
            let now = clock.now();
            let earliest = if recent.len() >= limits.per_second_max {
                recent[0].plus_millis(WINDOW_MS)
            } else {
                now
            };
            if now >= earliest {
                break Some(now);
            }
            let wait = Duration::from_millis((earliest.as_millis() - now.as_millis()) as u64);
            if Instant::now() + wait >= waiter.deadline {
                break None;
            }
            tokio::time::sleep(wait).await;
        };
        // Could not start in time: dropping the waiter (and the permit) answers "busy".
        let Some(admitted_at) = admitted_at else {
            continue;
        };
        let now_in_flight = in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        peak.fetch_max(now_in_flight, Ordering::AcqRel);
        let slot = Slot {
            held: Held::Local {
                _permit: permit,
                in_flight: in_flight.clone(),
            },
            admitted_at,
        };
        // A waiter that gave up drops the slot here, which gives it back. Its admission still
        // counts against the rate: counting too much is safe, too little is not.
        let _ = waiter.reply.send(Ok(slot));
        recent.push_back(admitted_at);
        if recent.len() > limits.per_second_max {
            recent.pop_front();
        }
    }
}

/// Settings of the Redis limiter; the defaults are the ones to run with, tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct RedisAdmissionOptions {
    /// How long a slot stays held in Redis without renewal: the longest the slots of a
    /// crashed instance stay taken.
    pub lease: Duration,
    /// How often an instance renews the leases of the slots it holds; well under `lease`.
    pub renew_every: Duration,
    /// The longest one Redis call may take before the request is answered `Unavailable`.
    pub call_timeout: Duration,
    /// How long to wait before asking again when every slot is in use.
    pub poll: Duration,
    /// Key prefix, so that several deployments (or tests) can share one Redis.
    pub prefix: &'static str,
}

impl Default for RedisAdmissionOptions {
    fn default() -> Self {
        RedisAdmissionOptions {
            lease: Duration::from_secs(5),
            renew_every: Duration::from_secs(1),
            call_timeout: Duration::from_secs(2),
            poll: Duration::from_millis(5),
            prefix: "allot:megadeal",
        }
    }
}

/// One attempt: drop expired leases and old admissions, then admit if both limits allow.
/// KEYS: inflight, admitted, peak. ARGV: token, in_flight_max, per_second_max, lease_ms,
/// window_ms, poll_ms. Answers {1, admission_ms} or {0, wait_ms}.
const ADMIT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local in_flight_max = tonumber(ARGV[2])
local per_second_max = tonumber(ARGV[3])
local window = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= per_second_max then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 1 then wait = 1 end
  return {0, wait}
end
local in_flight = redis.call('ZCARD', KEYS[1])
if in_flight >= in_flight_max then
  return {0, tonumber(ARGV[6])}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local peak = tonumber(redis.call('GET', KEYS[3]) or '0')
if in_flight + 1 > peak then
  redis.call('SET', KEYS[3], in_flight + 1)
end
return {1, now}
";

/// Pushes the leases of the given tokens to now + lease, only for those still held.
/// KEYS: inflight. ARGV: lease_ms, tokens...
const RENEW_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
end
return #ARGV - 1
";

/// Global in-flight count (expired leases dropped first) and peak. KEYS: inflight, peak.
const STATUS_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0')}
";

enum Attempt {
    Admitted(UnixMillis),
    Wait(Duration),
}

/// The limiter state of one instance over Redis: its connection, its identity, and the slot
/// tokens it holds (whose leases it renews).
pub struct RedisLimiter {
    conn: ConnectionManager,
    options: RedisAdmissionOptions,
    instance: String,
    counter: AtomicU64,
    held: Mutex<HashSet<String>>,
    inflight_key: String,
    admitted_key: String,
    peak_key: String,
    admit: redis::Script,
    renew: redis::Script,
    status: redis::Script,
}

impl RedisLimiter {
    fn new(conn: ConnectionManager, options: RedisAdmissionOptions) -> Self {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let prefix = options.prefix;
        RedisLimiter {
            conn,
            options,
            instance: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            counter: AtomicU64::new(0),
            held: Mutex::new(HashSet::new()),
            inflight_key: format!("{prefix}:inflight"),
            admitted_key: format!("{prefix}:admitted"),
            peak_key: format!("{prefix}:peak"),
            admit: redis::Script::new(ADMIT_LUA),
            renew: redis::Script::new(RENEW_LUA),
            status: redis::Script::new(STATUS_LUA),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set stays consistent whatever a panicking holder did: take it as it is.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.instance)
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, AdmissionUnavailable> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            self.options.call_timeout,
            invocation.invoke_async(&mut conn),
        )
        .await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(AdmissionUnavailable(e.to_string())),
            Err(_) => Err(AdmissionUnavailable(format!(
                "no answer within {} ms",
                self.options.call_timeout.as_millis()
            ))),
        }
    }

    async fn try_admit(
        &self,
        token: &str,
        limits: &AdmissionLimits,
    ) -> Result<Attempt, AdmissionUnavailable> {
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(&self.inflight_key)
            .key(&self.admitted_key)
            .key(&self.peak_key)
            .arg(token)
            .arg(limits.in_flight_max)
            .arg(limits.per_second_max)
            .arg(self.options.lease.as_millis() as u64)
            .arg(WINDOW_MS)
            .arg(self.options.poll.as_millis().max(1) as u64);
        // Held before the answer is known, so a lease granted to a request that then goes
        // away is renewed until the slot is dropped, never left to expire under a live slot.
        self.held().insert(token.to_owned());
        let answer: Result<Vec<i64>, _> = self.call(invocation).await;
        match answer {
            Ok(v) if v.len() == 2 && v[0] == 1 => {
                Ok(Attempt::Admitted(UnixMillis::from_millis(v[1])))
            }
            Ok(v) if v.len() == 2 => {
                self.held().remove(token);
                Ok(Attempt::Wait(Duration::from_millis(v[1].max(1) as u64)))
            }
            Ok(v) => {
                self.held().remove(token);
                Err(AdmissionUnavailable(format!("unexpected answer {v:?}")))
            }
            Err(e) => {
                // It may have been admitted before the connection failed: give it back.
                self.release(token.to_owned());
                Err(e)
            }
        }
    }

    /// Gives a slot back: forgets the token and removes its lease in the background (a
    /// lease that cannot be removed now expires on its own).
    fn release(&self, token: String) {
        if token.is_empty() {
            return;
        }
        self.held().remove(&token);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut conn = self.conn.clone();
        let key = self.inflight_key.clone();
        let timeout = self.options.call_timeout;
        runtime.spawn(async move {
            let removed = tokio::time::timeout(
                timeout,
                redis::cmd("ZREM")
                    .arg(&key)
                    .arg(&token)
                    .query_async::<i64>(&mut conn),
            )
            .await;
            if !matches!(removed, Ok(Ok(_))) {
                tracing::warn!(
                    token,
                    "MEGADEAL slot not released in Redis; its lease will expire"
                );
            }
        });
    }

    async fn renew_held(&self) -> Result<(), AdmissionUnavailable> {
        let tokens: Vec<String> = self.held().iter().cloned().collect();
        if tokens.is_empty() {
            return Ok(());
        }
        let mut invocation = self.renew.prepare_invoke();
        invocation
            .key(&self.inflight_key)
            .arg(self.options.lease.as_millis() as u64)
            .arg(tokens);
        self.call::<i64>(invocation).await.map(|_| ())
    }

    async fn status(&self) -> Result<(usize, usize), AdmissionUnavailable> {
        let mut invocation = self.status.prepare_invoke();
        invocation.key(&self.inflight_key).key(&self.peak_key);
        let v: Vec<i64> = self.call(invocation).await?;
        match v.as_slice() {
            [in_flight, peak] => Ok(((*in_flight).max(0) as usize, (*peak).max(0) as usize)),
            _ => Err(AdmissionUnavailable(format!("unexpected answer {v:?}"))),
        }
    }
}

async fn renew_leases(limiter: Arc<RedisLimiter>) {
    let mut tick = tokio::time::interval(limiter.options.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = limiter.renew_held().await {
            tracing::warn!(error = %e, "renewing MEGADEAL slot leases failed");
        }
    }
}

async fn dispatch_redis(
    mut rx: mpsc::Receiver<Waiter>,
    limits: AdmissionLimits,
    limiter: Arc<RedisLimiter>,
) {
    while let Some(waiter) = rx.recv().await {
        let token = limiter.next_token();
        let outcome = loop {
            if waiter.reply.is_closed() || Instant::now() >= waiter.deadline {
                break None;
            }
            let attempt =
                tokio::time::timeout_at(waiter.deadline, limiter.try_admit(&token, &limits)).await;
            match attempt {
                // The deadline passed during the call: it may have been admitted.
                Err(_) => {
                    limiter.release(token.clone());
                    break None;
                }
                Ok(Ok(Attempt::Admitted(at))) => break Some(Ok(at)),
                Ok(Ok(Attempt::Wait(wait))) => {
                    if Instant::now() + wait >= waiter.deadline {
                        break None;
                    }
                    tokio::time::sleep(wait).await;
                }
                Ok(Err(e)) => break Some(Err(e)),
            }
        };
        match outcome {
            // Not admitted in time: dropping the waiter answers "busy" at its deadline.
            None => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "MEGADEAL admission unavailable");
                let _ = waiter.reply.send(Err(Refused::Unavailable(e)));
            }
            Some(Ok(admitted_at)) => {
                let slot = Slot {
                    held: Held::Redis {
                        token,
                        limiter: limiter.clone(),
                    },
                    admitted_at,
                };
                // A waiter that gave up drops the slot here, which gives it back.
                let _ = waiter.reply.send(Ok(slot));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wall-clock milliseconds that follow tokio's (paused, auto-advancing) test clock.
    struct TokioClock(Instant);

    impl Clock for TokioClock {
        fn now(&self) -> UnixMillis {
            UnixMillis::from_millis(1_000_000 + self.0.elapsed().as_millis() as i64)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limits_hold_and_slots_come_back() {
        let started = Instant::now();
        let admission = Arc::new(Admission::start(
            AdmissionLimits::default(),
            Arc::new(TokioClock(started)),
        ));
        let mut tasks = Vec::new();
        for _ in 0..150 {
            let queued = admission.enqueue();
            tasks.push(tokio::spawn(async move {
                let slot = queued.map_err(|_| ())?.admitted().await.map_err(|_| ())?;
                let at = slot.admitted_at;
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(slot);
                Ok::<_, ()>(at)
            }));
        }
        let mut served = Vec::new();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(at) => served.push(at),
                Err(_) => busy += 1,
            }
        }
        assert!(!served.is_empty() && busy > 0);
        served.sort();
        for (i, at) in served.iter().enumerate() {
            let in_window = served[i..]
                .iter()
                .take_while(|t| t.as_millis() < at.as_millis() + 1_000)
                .count();
            assert!(in_window <= 10, "{in_window} admitted within one second");
            assert!(at.as_millis() - 1_000_000 <= 10_000);
        }
        let status = admission.status().await.unwrap();
        assert!(status.peak_in_flight <= 5);
        assert_eq!(status.in_flight, 0);
    }

    async fn redis_admission(
        url: &str,
        limits: AdmissionLimits,
        options: RedisAdmissionOptions,
    ) -> Admission {
        let client = redis::Client::open(url).unwrap();
        let conn = client.get_connection_manager().await.unwrap();
        Admission::start_redis(limits, conn, options)
    }

    fn one_slot(wait_max: Duration) -> AdmissionLimits {
        AdmissionLimits {
            in_flight_max: 1,
            per_second_max: 100,
            wait_max,
        }
    }

    /// An instance that dies holding a slot (its slot never dropped, its renewal stopped)
    /// loses it when the lease runs out; a live instance keeps a slot held past the lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_slots_of_a_dead_instance_come_back_after_the_lease() {
        let server = allot_testkit::RedisServer::start();
        let options = RedisAdmissionOptions {
            lease: Duration::from_millis(600),
            renew_every: Duration::from_millis(150),
            ..RedisAdmissionOptions::default()
        };

        // A live instance holds its slot for three leases: nobody else gets in meanwhile.
        let live = redis_admission(&server.url(), one_slot(Duration::from_secs(5)), options).await;
        let other = redis_admission(
            &server.url(),
            one_slot(Duration::from_millis(1_800)),
            options,
        )
        .await;
        let slot = live.enqueue().unwrap().admitted().await.unwrap();
        let refused = other.enqueue().unwrap().admitted().await;
        assert!(
            matches!(refused, Err(Refused::Busy(_))),
            "slot lost while held"
        );
        assert_eq!(other.status().await.unwrap().in_flight, 1);
        drop(slot);
        let started = Instant::now();
        let again = other.enqueue().unwrap().admitted().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "released slot not reused"
        );
        drop(again);
        tokio::time::sleep(Duration::from_millis(100)).await;

        // The "dead" instance: admitted, then gone without giving its slot back.
        let dead = redis_admission(&server.url(), one_slot(Duration::from_secs(5)), options).await;
        let slot = dead.enqueue().unwrap().admitted().await.unwrap();
        std::mem::forget(slot);
        drop(dead);
        let started = Instant::now();
        let slot = live.enqueue().unwrap().admitted().await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_millis(1_500),
            "dead instance's slot came back after {waited:?}"
        );
        drop(slot);
        let status = live.status().await.unwrap();
        assert_eq!(status.peak_in_flight, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_unreachable_is_refused_as_unavailable() {
        let mut server = allot_testkit::RedisServer::start();
        let admission = redis_admission(
            &server.url(),
            AdmissionLimits::default(),
            RedisAdmissionOptions::default(),
        )
        .await;
        drop(admission.enqueue().unwrap().admitted().await.unwrap());
        server.kill();
        let started = Instant::now();
        let refused = admission.enqueue().unwrap().admitted().await;
        assert!(matches!(refused, Err(Refused::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(admission.status().await.is_err());
    }
}
