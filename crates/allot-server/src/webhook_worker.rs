//! Webhook delivery: a background worker that POSTs each endpoint's events, one per request,
//! in seq order, retrying a failure with exponential backoff and jitter until it is
//! acknowledged (a 2xx): at least once, in order per endpoint.
//!
//! Every `poll_interval` the worker claims the endpoints that have events after their cursor
//! and are due (on PostgreSQL with a lease, so one instance delivers to an endpoint at a time)
//! and runs one task per endpoint, at most [`ENDPOINTS_IN_FLIGHT_MAX`] at once. A task walks
//! the log from the cursor: each attempt's log row and the new cursor are written in one
//! transaction, so a restart resumes where delivery stood. Event n+1 is never sent before n
//! is acknowledged: a failure ends the task, and the endpoint is claimed again when its next
//! attempt is due.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_domain::UnixMillis;
use allot_storage::{DeliveryAttempt, Event, EventQuery, Progress, Store, Webhook};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

/// Endpoints one instance delivers to at the same time, at most.
pub const ENDPOINTS_IN_FLIGHT_MAX: usize = 32;
/// Events read from the log per page.
const PAGE_EVENTS: u32 = 100;
/// Requests one task sends before it gives its endpoint back (others may then take a turn).
const REQUESTS_PER_CLAIM_MAX: usize = 1_000;
/// How often delivered rows older than the retention are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// Error texts kept in the delivery log, at most, in bytes.
const ERROR_LEN_MAX: usize = 300;

pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
pub const DEFAULT_RETRY_MAX_MS: u64 = 600_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 500;
pub const DEFAULT_RETENTION_HOURS: u64 = 168;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The first retry's delay; each later one doubles, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long one request may take (connect, send, answer) before it counts as failed.
    pub request_timeout: Duration,
    /// How often the worker looks for endpoints with work; `None`: delivery is off.
    pub poll_interval: Option<Duration>,
    /// Settled delivery log rows older than this are purged.
    pub retention: Duration,
    /// Certificates trusted for https receivers besides the system's store (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Plain `http://` endpoints may be registered and are delivered to; off, they are refused
    /// at registration and an existing one's deliveries fail (payloads carry personal data).
    pub allow_http: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            retry_base: Duration::from_millis(DEFAULT_RETRY_BASE_MS),
            retry_max: Duration::from_millis(DEFAULT_RETRY_MAX_MS),
            request_timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            poll_interval: Some(Duration::from_millis(DEFAULT_POLL_INTERVAL_MS)),
            retention: Duration::from_secs(DEFAULT_RETENTION_HOURS * 3_600),
            ca_file: None,
            allow_http: false,
        }
    }
}

impl WebhookSettings {
    /// A lease outlives the longest gap between two progress records (one request) by far,
    /// so only a dead or stalled instance loses one.
    fn lease_ms(&self) -> i64 {
        (self.request_timeout.as_millis() as i64) * 2 + 30_000
    }
}

/// The delay before retry number `failures` (1 for the first retry): `base * 2^(failures-1)`
/// capped at `max`, then drawn uniformly from its upper half ("equal jitter"), so endpoints
/// that failed together do not retry together.
pub fn retry_delay(failures: i64, base: Duration, max: Duration, unit_random: f64) -> Duration {
    let exp = u32::try_from((failures - 1).clamp(0, 40)).unwrap_or(40);
    let full = base
        .saturating_mul(2u32.saturating_pow(exp.min(31)))
        .min(max);
    let half = full / 2;
    half + half.mul_f64(unit_random.clamp(0.0, 1.0))
}

/// `Allot-Signature`'s `v1`: hex HMAC-SHA256 keyed with the secret over `"<t>.<body>"`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The delivery log's reason for an `http://` endpoint while plain http is not allowed.
pub const HTTP_NOT_ALLOWED: &str = "not sent: plain http is not allowed (payloads carry \
    personal data); change the endpoint to https, or set webhook_allow_http";

/// `host:port` of an endpoint URL, for messages (the port its scheme implies if none).
fn host_port(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_owned(),
    }
}

fn wall_now() -> UnixMillis {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    UnixMillis::from_millis(ms)
}

/// The client deliveries go out on: https verified against the system's store and
/// `ca_file`; an error names the setting (checked at start, see `Application::build`).
pub(crate) fn http_client(settings: &WebhookSettings) -> Result<reqwest::Client, String> {
    let tls = crate::outbound_tls::client_config(settings.ca_file.as_deref(), "webhook_ca_file")?;
    reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("allot-webhooks/", env!("CARGO_PKG_VERSION")))
        .use_preconfigured_tls(tls)
        .build()
        .map_err(|e| format!("webhooks: the HTTP client cannot be built: {e}"))
}

/// Starts the worker; it stops (after the requests in flight) when `stopped` turns true.
pub(crate) fn start(
    store: Arc<dyn Store>,
    settings: WebhookSettings,
    stopped: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let poll = settings.poll_interval?;
    let client = match http_client(&settings) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery is off on this instance");
            return None;
        }
    };
    let worker = Arc::new(Worker {
        store,
        settings,
        client,
        owner: format!("worker-{:016x}", rand::random::<u64>()),
    });
    Some(tokio::spawn(worker.run(poll, stopped)))
}

struct Worker {
    store: Arc<dyn Store>,
    settings: WebhookSettings,
    client: reqwest::Client,
    /// This instance's name on leases.
    owner: String,
}

/// What one request came to.
struct Sent {
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

impl Sent {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Worker {
    async fn run(self: Arc<Self>, poll: Duration, mut stopped: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut tasks: JoinSet<i64> = JoinSet::new();
        let mut busy: HashSet<i64> = HashSet::new();
        let mut next_purge = Instant::now();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.changed() => break,
            }
            while let Some(done) = tasks.try_join_next() {
                match done {
                    Ok(id) => {
                        busy.remove(&id);
                    }
                    Err(e) => tracing::error!(error = %e, "a webhook delivery task failed"),
                }
            }
            let room = ENDPOINTS_IN_FLIGHT_MAX.saturating_sub(tasks.len());
            if room > 0 {
                match self
                    .store
                    .claim_webhooks(
                        &self.owner,
                        wall_now(),
                        self.settings.lease_ms(),
                        room as u32,
                    )
                    .await
                {
                    Ok(endpoints) => {
                        for endpoint in endpoints {
                            if busy.insert(endpoint.id) {
                                let (worker, stopped) = (self.clone(), stopped.clone());
                                tasks.spawn(async move {
                                    let id = endpoint.id;
                                    worker.deliver(endpoint, stopped).await;
                                    id
                                });
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming webhook endpoints failed"),
                }
            }
            if Instant::now() >= next_purge {
                next_purge = Instant::now() + PURGE_INTERVAL;
                let before = wall_now().plus_millis(-(self.settings.retention.as_millis() as i64));
                match self.store.purge_webhook_deliveries(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "purged old webhook delivery log rows"),
                    Err(e) => tracing::warn!(error = %e, "purging webhook delivery log failed"),
                }
            }
        }
        // Each task finishes its request in flight, records it and stops.
        while tasks.join_next().await.is_some() {}
    }

    /// Delivers the endpoint's events from its cursor until the log's end, a failure, the
    /// per-claim bound or shutdown; then gives the lease back.
    async fn deliver(&self, endpoint: Webhook, stopped: watch::Receiver<bool>) {
        match self.deliver_events(&endpoint, &stopped).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    webhook = endpoint.id,
                    "webhook lease lost; another instance took over"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(webhook = endpoint.id, error = ?e, "webhook delivery stopped on a storage error");
            }
        }
        if let Err(e) = self.store.release_webhook(endpoint.id, &self.owner).await {
            tracing::warn!(webhook = endpoint.id, error = %e, "releasing a webhook lease failed");
        }
    }

    /// Ok(false) when the lease was lost (or the endpoint deleted): stop at once.
    async fn deliver_events(
        &self,
        endpoint: &Webhook,
        stopped: &watch::Receiver<bool>,
    ) -> Result<bool, allot_storage::StorageError> {
        let mut cursor = endpoint.cursor;
        let mut attempts = endpoint.attempts;
        let mut sent = 0usize;
        loop {
            let page = self
                .store
                .events(EventQuery {
                    after: cursor,
                    limit: PAGE_EVENTS,
                    kind: None,
                })
                .await?;
            if page.is_empty() {
                return Ok(true);
            }
            // A PATCH or DELETE may have switched the endpoint off since the claim. Read after
            // the page, so an event committed after the switch is never in a page that is sent.
            match self.store.webhook(endpoint.id).await? {
                Some(now) if now.active => {}
                _ => return Ok(true),
            }
            // The last event passed over by the filter since the cursor.
            let mut skipped_to: Option<i64> = None;
            for event in page {
                if !endpoint.wants(&event.kind) {
                    skipped_to = Some(event.seq);
                    continue;
                }
                if *stopped.borrow() || sent >= REQUESTS_PER_CLAIM_MAX {
                    break;
                }
                let seq = event.seq;
                let result = self.send(endpoint, event).await;
                sent += 1;
                let now = wall_now();
                let progress = if result.delivered() {
                    let p = Progress {
                        cursor: seq,
                        attempts: 0,
                        next_attempt_at: now,
                        delivery: Some(self.attempt(seq, attempts + 1, now, &result, None)),
                    };
                    (cursor, attempts, skipped_to) = (seq, 0, None);
                    p
                } else {
                    attempts += 1;
                    let delay = retry_delay(
                        attempts,
                        self.settings.retry_base,
                        self.settings.retry_max,
                        rand::random::<f64>(),
                    );
                    let next = now.plus_millis(delay.as_millis() as i64);
                    tracing::info!(
                        webhook = endpoint.id,
                        seq,
                        attempt = attempts,
                        status = result.status,
                        error = result.error.as_deref().unwrap_or(""),
                        retry_in_ms = delay.as_millis() as u64,
                        "webhook delivery failed; will retry"
                    );
                    let p = Progress {
                        cursor: skipped_to.unwrap_or(cursor),
                        attempts,
                        next_attempt_at: next,
                        delivery: Some(self.attempt(seq, attempts, now, &result, Some(next))),
                    };
                    return self.record(endpoint.id, p).await;
                };
                if !self.record(endpoint.id, progress).await? {
                    return Ok(false);
                }
            }
            if let Some(to) = skipped_to {
                let p = Progress {
                    cursor: to,
                    attempts,
                    next_attempt_at: wall_now(),
                    delivery: None,
                };
                if !self.record(endpoint.id, p).await? {
                    return Ok(false);
                }
                cursor = to;
            }
            if *stopped.borrow() || sent >= REQUESTS_PER_CLAIM_MAX {
                return Ok(true);
            }
        }
    }

    async fn record(&self, id: i64, p: Progress) -> Result<bool, allot_storage::StorageError> {
        self.store
            .record_webhook_progress(id, &self.owner, p, wall_now(), self.settings.lease_ms())
            .await
    }

    fn attempt(
        &self,
        seq: i64,
        attempt: i64,
        at: UnixMillis,
        sent: &Sent,
        next: Option<UnixMillis>,
    ) -> DeliveryAttempt {
        DeliveryAttempt {
            event_seq: seq,
            attempt,
            at,
            status: sent.status,
            error: sent.error.clone(),
            duration_ms: sent.duration_ms,
            delivered: sent.delivered(),
            next_attempt_at: next,
        }
    }

    /// One POST of one event, signed.
    async fn send(&self, endpoint: &Webhook, event: Event) -> Sent {
        // Registered while http was allowed, or by a version that allowed it: never sent in
        // clear once the setting is off; the log says why, and retries wait for a fix.
        if !self.settings.allow_http && !endpoint.url.starts_with("https://") {
            metrics::counter!("allot_webhook_deliveries_total", "outcome" => "refused")
                .increment(1);
            return Sent {
                status: None,
                error: Some(HTTP_NOT_ALLOWED.to_owned()),
                duration_ms: 0,
            };
        }
        let (seq, kind) = (event.seq, event.kind.clone());
        let body =
            serde_json::to_vec(&crate::event_body::body_of(event)).expect("an event serialises");
        let t = wall_now().as_millis() / 1_000;
        let v1 = signature(&endpoint.secret, t, &body);
        let started = Instant::now();
        let response = self
            .client
            .post(&endpoint.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("Allot-Event-Id", seq.to_string())
            .header("Allot-Event-Type", kind)
            .header("Allot-Signature", format!("t={t},v1={v1}"))
            .body(body)
            .send()
            .await;
        let duration = started.elapsed();
        let (status, error, outcome) = match response {
            Ok(r) => {
                let status = r.status().as_u16();
                let outcome = if r.status().is_success() {
                    "delivered"
                } else {
                    "http_error"
                };
                (Some(status), None, outcome)
            }
            Err(e) if e.is_timeout() => (
                None,
                Some(format!(
                    "timeout after {} ms",
                    self.settings.request_timeout.as_millis()
                )),
                "timeout",
            ),
            Err(e) => {
                // reqwest's own text hides a certificate's refusal deep in its sources: a
                // TLS failure is told by itself, with the host and rustls' reason.
                let mut text = match crate::outbound_tls::tls_failure(&e) {
                    Some(reason) => format!("TLS to {}: {reason}", host_port(&endpoint.url)),
                    None => {
                        let mut text = format!("request failed: {e}");
                        let mut source = std::error::Error::source(&e);
                        while let Some(s) = source {
                            text.push_str(&format!(": {s}"));
                            source = s.source();
                        }
                        text
                    }
                };
                if text.len() > ERROR_LEN_MAX {
                    let mut cut = ERROR_LEN_MAX;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                (None, Some(text), "connection_error")
            }
        };
        metrics::counter!("allot_webhook_deliveries_total", "outcome" => outcome).increment(1);
        metrics::histogram!("allot_webhook_delivery_duration_seconds", "outcome" => outcome)
            .record(duration.as_secs_f64());
        Sent {
            status,
            error,
            duration_ms: duration.as_millis() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_base_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(retry_delay(1, base, max, 1.0), Duration::from_millis(100));
        assert_eq!(retry_delay(1, base, max, 0.0), Duration::from_millis(50));
        assert_eq!(retry_delay(3, base, max, 1.0), Duration::from_millis(400));
        assert_eq!(retry_delay(10, base, max, 1.0), Duration::from_secs(1));
        assert_eq!(
            retry_delay(1_000, base, max, 0.0),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", 0, b"what do ya want for nothing?").len(),
            64,
        );
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(signature("k", 1, b"{}"), signature("k", 2, b"{}"));
    }
}
