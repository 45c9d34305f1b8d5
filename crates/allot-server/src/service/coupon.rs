//! Coupon management: upload in bulk, hand coupons to users (MEGADEAL under admission
//! limits), validate, redeem, the record of uses, counters and purge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_domain::Clock;
use allot_domain::coupon::{CouponType, RedeemRefusal, UploadedCode};
use allot_domain::user::{IdempotencyKey, UserId};
use allot_storage::{
    Allocation, Coupon, CouponCounters, NewCoupon, RedeemOutcome, Redemption, RedemptionFilter,
    Store,
};
use rand::RngCore;
use redis::aio::ConnectionManager;

use super::admission::{
    Admission, AdmissionLimits, AdmissionStatus, AdmissionUnavailable, RedisAdmissionOptions,
    Refused,
};
use crate::ServiceError;
use crate::error::EntryError;

/// Tickets kept at most (in process), and for how long: a ticket is for polling within
/// seconds.
const TICKETS_MAX: usize = 100_000;
const TICKET_TTL: Duration = Duration::from_secs(600);
const TICKET_KEY_PREFIX: &str = "allot:ticket:";
/// The longest one ticket read or write on Redis may take.
const TICKET_CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Coupons {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    megadeal: Admission,
    tickets: Tickets,
}

/// Where tickets are kept: in this process (one instance), or in Redis, one key per ticket
/// expiring after `TICKET_TTL`, so that any instance can answer a poll.
enum Tickets {
    Memory(Mutex<HashMap<String, Ticket>>),
    Redis(ConnectionManager),
}

/// A ticket as stored in Redis: a done ticket keeps its coupon's code, read back from the
/// shared database when polled.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredTicket {
    user: String,
    /// `pending`, `done`, `busy`, `no_coupon_available` or `internal`.
    state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
}

impl StoredTicket {
    fn new(user: &UserId, state: &TicketState) -> Self {
        let (label, code, retry_after_secs) = match state {
            TicketState::Pending => ("pending", None, None),
            TicketState::Done(c) => ("done", Some(c.code.clone()), None),
            TicketState::Failed(TicketFailure::Busy { retry_after_secs }) => {
                ("busy", None, Some(*retry_after_secs))
            }
            TicketState::Failed(TicketFailure::NoCouponAvailable) => {
                ("no_coupon_available", None, None)
            }
            TicketState::Failed(TicketFailure::Internal) => ("internal", None, None),
        };
        StoredTicket {
            user: user.as_str().to_owned(),
            state: label.to_owned(),
            code,
            retry_after_secs,
        }
    }
}

async fn redis_call<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, ServiceError> {
    match tokio::time::timeout(TICKET_CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ServiceError::MegadealUnavailable(AdmissionUnavailable(
            e.to_string(),
        ))),
        Err(_) => Err(ServiceError::MegadealUnavailable(AdmissionUnavailable(
            "no answer in time".to_owned(),
        ))),
    }
}

struct Ticket {
    user: UserId,
    created: Instant,
    state: TicketState,
}

/// Where a ticket stands.
#[derive(Debug, Clone)]
pub enum TicketState {
    Pending,
    Done(Coupon),
    Failed(TicketFailure),
}

#[derive(Debug, Clone, Copy)]
pub enum TicketFailure {
    Busy { retry_after_secs: u64 },
    NoCouponAvailable,
    Internal,
}

/// A coupon handed to a user; `held` when it is the one they already had.
#[derive(Debug, Clone)]
pub struct Allocated {
    pub coupon: Coupon,
    pub held: bool,
}

impl Coupons {
    /// `redis`: a connection to the Redis shared by every instance, which then holds the
    /// MEGADEAL admission state and the tickets; `None`: both are kept in this process.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        limits: AdmissionLimits,
        redis: Option<ConnectionManager>,
    ) -> Self {
        let (megadeal, tickets) = match redis {
            Some(conn) => (
                Admission::start_redis(limits, conn.clone(), RedisAdmissionOptions::default()),
                Tickets::Redis(conn),
            ),
            None => (
                Admission::start(limits, clock.clone()),
                Tickets::Memory(Mutex::new(HashMap::new())),
            ),
        };
        Coupons {
            store,
            megadeal,
            clock,
            tickets,
        }
    }

    /// Stores every coupon or none. `entries` holds, per request index, the parsed coupon or
    /// the field errors found at the edge; duplicates inside the batch and codes already
    /// stored are added here. Any error: nothing is stored and every bad entry is listed.
    pub async fn upload(
        &self,
        entries: Vec<Result<NewCoupon, Vec<EntryError>>>,
    ) -> Result<usize, ServiceError> {
        let mut errors = Vec::new();
        let mut first_index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        let mut coupons = Vec::with_capacity(entries.len());
        let mut indices = Vec::with_capacity(entries.len());
        let now = self.clock.now();
        for (index, entry) in entries.into_iter().enumerate() {
            match entry {
                Err(e) => errors.extend(e),
                Ok(c) => {
                    if let Some(first) = first_index.get(c.code.as_str()) {
                        errors.push(EntryError {
                            index,
                            field: "code",
                            message: format!("duplicates entry {first} of this request"),
                        });
                        continue;
                    }
                    if c.expires_at <= now {
                        errors.push(EntryError {
                            index,
                            field: "expires_at",
                            message: "is in the past".to_owned(),
                        });
                        continue;
                    }
                    first_index.insert(c.code.as_str().to_owned(), index);
                    coupons.push(c);
                    indices.push(index);
                }
            }
        }
        if !errors.is_empty() {
            // Name the good entries whose codes exist already too, so one answer lists every
            // bad entry.
            let existing = self
                .store
                .existing_coupon_codes(coupons.iter().map(|c| c.code.clone()).collect())
                .await?;
            for code in existing {
                if let Some(index) = first_index.get(code.as_str()) {
                    errors.push(EntryError {
                        index: *index,
                        field: "code",
                        message: "a coupon with this code exists already".to_owned(),
                    });
                }
            }
            errors.sort_by_key(|e| e.index);
            return Err(ServiceError::InvalidEntries { entries: errors });
        }
        let count = coupons.len();
        match self.store.upload_coupons(coupons, now).await? {
            Ok(n) => {
                tracing::info!(op = "coupons.upload", count = n, "coupons uploaded");
                Ok(n)
            }
            Err(existing) => {
                let entries = existing
                    .0
                    .into_iter()
                    .map(|i| EntryError {
                        index: indices[i],
                        field: "code",
                        message: "a coupon with this code exists already".to_owned(),
                    })
                    .collect();
                tracing::info!(
                    op = "coupons.upload",
                    count,
                    outcome = "refused",
                    "existing codes"
                );
                Err(ServiceError::InvalidEntries { entries })
            }
        }
    }

    /// [`Coupons::upload`], answering the stored coupons (their ids and creation times), in
    /// the order of `entries`.
    pub async fn upload_and_read(
        &self,
        entries: Vec<Result<NewCoupon, Vec<EntryError>>>,
    ) -> Result<Vec<Coupon>, ServiceError> {
        let codes: Vec<UploadedCode> = entries
            .iter()
            .filter_map(|e| e.as_ref().ok().map(|c| c.code.clone()))
            .collect();
        self.upload(entries).await?;
        let mut stored: HashMap<String, Coupon> = self
            .store
            .coupons_by_code(codes.clone())
            .await?
            .into_iter()
            .map(|c| (c.code.clone(), c))
            .collect();
        // Uploaded coupons are unexpired and never deleted but by a purge of expired ones, so
        // every code is found; one that is not would be a fault of ours, not the client's.
        codes
            .iter()
            .map(|code| {
                stored.remove(code.as_str()).ok_or_else(|| {
                    ServiceError::Internal(allot_storage::StorageError::Corrupt(
                        "an uploaded coupon was not found right after the upload".to_owned(),
                    ))
                })
            })
            .collect()
    }

    /// Hands the user a coupon of the type (untyped for `None`). MEGADEAL requests wait for
    /// admission first, at most the admission's wait limit.
    pub async fn request(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
    ) -> Result<Allocated, ServiceError> {
        if coupon_type == Some(CouponType::Megadeal) {
            let queued = self.megadeal.enqueue().map_err(busy)?;
            let slot = queued.admitted().await.map_err(refused)?;
            // The slot is held until the allocation is done, and given back by drop.
            return self.allocate(user, coupon_type, slot.admitted_at).await;
        }
        self.allocate(user, coupon_type, self.clock.now()).await
    }

    /// `at`: the allocation time to check expiry against and record (a MEGADEAL request's
    /// admission instant, so the record shows the admission rate).
    async fn allocate(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        at: allot_domain::UnixMillis,
    ) -> Result<Allocated, ServiceError> {
        let t = coupon_type.map_or("NONE", CouponType::as_str);
        let result = match self
            .store
            .allocate_coupon(user.clone(), coupon_type, at)
            .await?
        {
            Allocation::New(coupon) => Ok(Allocated {
                coupon,
                held: false,
            }),
            Allocation::Held(coupon) => Ok(Allocated { coupon, held: true }),
            Allocation::NoneAvailable => Err(ServiceError::NoCouponAvailable),
        };
        match &result {
            Ok(a) => {
                // A code is a bearer credential: never in the logs at info (debug is for a
                // developer's own machine).
                tracing::info!(op = "coupons.allocate", user = %user, r#type = t, held = a.held);
                tracing::debug!(op = "coupons.allocate", code = %a.coupon.code);
            }
            Err(e) => {
                tracing::info!(op = "coupons.allocate", user = %user, r#type = t, outcome = e.code())
            }
        }
        result
    }

    /// Queues a MEGADEAL request and answers a ticket at once; the request is served in the
    /// background under the same admission limits. Refused at once when the queue is full.
    pub async fn request_ticket(self: &Arc<Self>, user: UserId) -> Result<String, ServiceError> {
        let queued = self.megadeal.enqueue().map_err(busy)?;
        let id = ticket_id();
        match &self.tickets {
            Tickets::Memory(tickets) => {
                let mut tickets = tickets.lock().unwrap_or_else(|e| e.into_inner());
                tickets.retain(|_, t| t.created.elapsed() < TICKET_TTL);
                if tickets.len() >= TICKETS_MAX {
                    return Err(ServiceError::MegadealBusy {
                        retry_after_secs: 1,
                    });
                }
                tickets.insert(
                    id.clone(),
                    Ticket {
                        user: user.clone(),
                        created: Instant::now(),
                        state: TicketState::Pending,
                    },
                );
            }
            Tickets::Redis(conn) => {
                let json = stored_json(&StoredTicket::new(&user, &TicketState::Pending))?;
                let mut conn = conn.clone();
                let key = format!("{TICKET_KEY_PREFIX}{id}");
                redis_call(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(json)
                        .arg("EX")
                        .arg(TICKET_TTL.as_secs())
                        .query_async::<()>(&mut conn),
                )
                .await?;
            }
        }
        let this = Arc::clone(self);
        let ticket = id.clone();
        // The allocation is still the caller's: its events record the request's origin.
        let origin = crate::caller::origin();
        tokio::spawn(crate::caller::within_opt(origin, async move {
            let state = match queued.admitted().await {
                Err(Refused::Busy(b)) => TicketState::Failed(TicketFailure::Busy {
                    retry_after_secs: b.retry_after_secs,
                }),
                Err(Refused::Unavailable(_)) => TicketState::Failed(TicketFailure::Internal),
                Ok(slot) => match this
                    .allocate(user.clone(), Some(CouponType::Megadeal), slot.admitted_at)
                    .await
                {
                    Ok(a) => TicketState::Done(a.coupon),
                    Err(ServiceError::NoCouponAvailable) => {
                        TicketState::Failed(TicketFailure::NoCouponAvailable)
                    }
                    Err(_) => TicketState::Failed(TicketFailure::Internal),
                },
            };
            if let Err(e) = this.finish_ticket(&ticket, &user, state).await {
                tracing::warn!(error = %e, "recording a MEGADEAL ticket's outcome failed");
            }
        }));
        Ok(id)
    }

    async fn finish_ticket(
        &self,
        id: &str,
        user: &UserId,
        state: TicketState,
    ) -> Result<(), ServiceError> {
        match &self.tickets {
            Tickets::Memory(tickets) => {
                if let Some(t) = tickets
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(id)
                {
                    t.state = state;
                }
                Ok(())
            }
            Tickets::Redis(conn) => {
                let json = stored_json(&StoredTicket::new(user, &state))?;
                let mut conn = conn.clone();
                // XX: a ticket that expired meanwhile stays gone.
                redis_call(
                    redis::cmd("SET")
                        .arg(format!("{TICKET_KEY_PREFIX}{id}"))
                        .arg(json)
                        .arg("EX")
                        .arg(TICKET_TTL.as_secs())
                        .arg("XX")
                        .query_async::<Option<String>>(&mut conn),
                )
                .await
                .map(|_| ())
            }
        }
    }

    /// A ticket's state, for its own user only (anyone else hears "not found").
    pub async fn ticket(&self, id: &str, user: &UserId) -> Result<TicketState, ServiceError> {
        let not_found = ServiceError::NotFound { what: "ticket" };
        match &self.tickets {
            Tickets::Memory(tickets) => {
                let state = match tickets.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
                    Some(t) if &t.user == user => t.state.clone(),
                    _ => return Err(not_found),
                };
                // The coupon as it is now (redeemed since, maybe), as a Redis ticket answers it.
                match state {
                    TicketState::Done(c) => Ok(TicketState::Done(self.get(&c.code).await?)),
                    other => Ok(other),
                }
            }
            Tickets::Redis(conn) => {
                let mut conn = conn.clone();
                let raw: Option<String> = redis_call(
                    redis::cmd("GET")
                        .arg(format!("{TICKET_KEY_PREFIX}{id}"))
                        .query_async(&mut conn),
                )
                .await?;
                let Some(raw) = raw else {
                    return Err(not_found);
                };
                let stored: StoredTicket = serde_json::from_str(&raw).map_err(|e| {
                    ServiceError::MegadealUnavailable(AdmissionUnavailable(format!(
                        "unreadable ticket: {e}"
                    )))
                })?;
                if stored.user != user.as_str() {
                    return Err(not_found);
                }
                Ok(match (stored.state.as_str(), stored.code) {
                    ("pending", _) => TicketState::Pending,
                    ("done", Some(code)) => TicketState::Done(self.get(&code).await?),
                    ("busy", _) => TicketState::Failed(TicketFailure::Busy {
                        retry_after_secs: stored.retry_after_secs.unwrap_or(1),
                    }),
                    ("no_coupon_available", _) => {
                        TicketState::Failed(TicketFailure::NoCouponAvailable)
                    }
                    _ => TicketState::Failed(TicketFailure::Internal),
                })
            }
        }
    }

    /// The MEGADEAL admission now (global with Redis) and its limits.
    pub async fn megadeal_status(
        &self,
    ) -> Result<(AdmissionStatus, AdmissionLimits), ServiceError> {
        let status = self
            .megadeal
            .status()
            .await
            .map_err(ServiceError::MegadealUnavailable)?;
        Ok((status, self.megadeal.limits()))
    }

    /// MEGADEAL requests this instance refused since it started.
    pub fn megadeal_refused(&self) -> u64 {
        self.megadeal.refused_total()
    }

    pub async fn get(&self, code: &str) -> Result<Coupon, ServiceError> {
        let code = parse_code(code)?;
        self.store
            .coupon(&code)
            .await?
            .ok_or(ServiceError::NotFound { what: "coupon" })
    }

    /// Checks, without changing anything, that the user could redeem the coupon now.
    pub async fn validate(&self, code: &str, user: &UserId) -> Result<Coupon, ServiceError> {
        let coupon = self.get(code).await?;
        self.check(coupon, user)
    }

    /// Whether the user could redeem the coupon now.
    fn check(&self, coupon: Coupon, user: &UserId) -> Result<Coupon, ServiceError> {
        let checked = allot_domain::coupon::check_redeemable(
            &coupon.state(),
            user.as_str(),
            self.clock.now(),
        )
        .map_err(refusal);
        let label = checked.as_ref().map_or_else(|e| e.code(), |()| "valid");
        tracing::info!(op = "coupons.validate", user = %user, outcome = label);
        tracing::debug!(op = "coupons.validate", code = %coupon.code, outcome = label);
        checked.map(|()| coupon)
    }

    /// The coupon of `code` if it was allocated to `user`; anyone else's, an unallocated one
    /// and an unknown code are all "not found", so a caller learns nothing of coupons that
    /// are not its own (the original coupon system's rule: a user validates and redeems only
    /// what it was handed). An allocation never changes once made, so the answer holds for a
    /// redemption that follows.
    async fn own(&self, code: &str, user: &UserId) -> Result<Coupon, ServiceError> {
        let coupon = self.get(code).await?;
        if coupon.allocated_to.as_deref() != Some(user.as_str()) {
            return Err(ServiceError::NotFound { what: "coupon" });
        }
        Ok(coupon)
    }

    /// [`Coupons::validate`] of a coupon allocated to the user (see [`Coupons::own`]).
    pub async fn validate_own(&self, code: &str, user: &UserId) -> Result<Coupon, ServiceError> {
        let coupon = self.own(code, user).await?;
        self.check(coupon, user)
    }

    /// [`Coupons::redeem`] of a coupon allocated to the user (see [`Coupons::own`]).
    pub async fn redeem_own(&self, code: &str, user: UserId) -> Result<Coupon, ServiceError> {
        self.own(code, &user).await?;
        // The original contract has no idempotency key.
        Ok(self.redeem(code, user, None).await?.0)
    }

    /// Redeems the coupon once for the user; answers it as it is now, and whether an earlier
    /// call with the same idempotency key (the caller's, kept per caller and coupon) redeemed
    /// it, in which case nothing changed now.
    pub async fn redeem(
        &self,
        code: &str,
        user: UserId,
        key: Option<IdempotencyKey>,
    ) -> Result<(Coupon, bool), ServiceError> {
        let parsed = parse_code(code)?;
        // "<owner> <code> <key>": neither owner nor code holds white space, so it reads one
        // way only; the code scopes the key as the middleware's path would.
        let key = key.map(|k| {
            k.owned_by(&format!(
                "{} {}",
                super::idempotency_owner(),
                parsed.as_str()
            ))
        });
        let outcome = self
            .store
            .redeem_coupon(&parsed, user.clone(), self.clock.now(), key)
            .await?;
        let result = match outcome {
            RedeemOutcome::Redeemed(c) => Ok((c, false)),
            RedeemOutcome::Replayed(c) => Ok((c, true)),
            RedeemOutcome::Refused(r) => Err(refusal(r)),
            RedeemOutcome::NotFound => Err(ServiceError::NotFound { what: "coupon" }),
        };
        let label = match &result {
            Ok((_, false)) => "redeemed",
            Ok((_, true)) => "replayed",
            Err(e) => e.code(),
        };
        tracing::info!(op = "coupons.redeem", user = %user, outcome = label);
        tracing::debug!(op = "coupons.redeem", code = %parsed, outcome = label);
        metrics::counter!("allot_coupon_redemptions_total", "outcome" => label).increment(1);
        result
    }

    pub async fn redemptions(
        &self,
        filter: RedemptionFilter,
    ) -> Result<Vec<Redemption>, ServiceError> {
        Ok(self.store.redemptions(filter).await?)
    }

    pub async fn counters(&self) -> Result<Vec<CouponCounters>, ServiceError> {
        Ok(self.store.coupon_counters(self.clock.now()).await?)
    }

    /// Deletes unused expired coupons; `trigger` says who asked (the job or an admin).
    pub async fn purge(&self, trigger: &'static str) -> Result<i64, ServiceError> {
        let per_type = self.store.purge_coupons(self.clock.now(), trigger).await?;
        let total = per_type.iter().map(|(_, n)| n).sum();
        tracing::info!(
            op = "coupons.purge",
            trigger,
            count = total,
            "purged unused expired coupons"
        );
        Ok(total)
    }
}

/// A new ticket's id: a random (version 4) UUID, the form the original coupon system's
/// clients expect of a tracking id; 122 random bits, so ids cannot be guessed.
fn ticket_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn parse_code(code: &str) -> Result<UploadedCode, ServiceError> {
    UploadedCode::parse(code).map_err(|_| ServiceError::NotFound { what: "coupon" })
}

fn busy(b: super::admission::Busy) -> ServiceError {
    metrics::counter!("allot_megadeal_refused_total").increment(1);
    ServiceError::MegadealBusy {
        retry_after_secs: b.retry_after_secs,
    }
}

fn refused(r: Refused) -> ServiceError {
    match r {
        Refused::Busy(b) => busy(b),
        Refused::Unavailable(e) => {
            metrics::counter!("allot_megadeal_unavailable_total").increment(1);
            ServiceError::MegadealUnavailable(e)
        }
    }
}

fn stored_json(ticket: &StoredTicket) -> Result<String, ServiceError> {
    serde_json::to_string(ticket).map_err(|e| {
        ServiceError::MegadealUnavailable(AdmissionUnavailable(format!(
            "ticket not encodable: {e}"
        )))
    })
}

fn refusal(r: RedeemRefusal) -> ServiceError {
    match r {
        RedeemRefusal::Expired => ServiceError::Expired,
        RedeemRefusal::Exhausted => ServiceError::Exhausted,
        RedeemRefusal::NotOwner => ServiceError::NotOwner,
        RedeemRefusal::Bound { promotion } => ServiceError::CouponBound { promotion },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticket_ids_are_random_uuids() {
        let id = super::ticket_id();
        assert_eq!(id.len(), 36);
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "version 4: {id}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "RFC 4122 variant: {id}"
        );
        assert_ne!(id, super::ticket_id());
    }
}
