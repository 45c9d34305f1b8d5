//! Coupon management: upload in bulk, hand coupons to users (MEGADEAL under admission
//! limits), validate, redeem, the record of uses, counters and purge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_domain::Clock;
use allot_domain::coupon::{CouponType, RedeemRefusal, UploadedCode};
use allot_domain::user::UserId;
use allot_storage::{
    Allocation, Coupon, CouponCounters, NewCoupon, RedeemOutcome, Redemption, RedemptionFilter,
    Store,
};
use rand::RngCore;

use super::admission::{Admission, AdmissionLimits, AdmissionStatus};
use crate::ServiceError;
use crate::error::EntryError;

/// Tickets kept at most, and for how long: a ticket is for polling within seconds.
const TICKETS_MAX: usize = 100_000;
const TICKET_TTL: Duration = Duration::from_secs(600);

pub struct Coupons {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    megadeal: Admission,
    tickets: Mutex<HashMap<String, Ticket>>,
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
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, limits: AdmissionLimits) -> Self {
        Coupons {
            store,
            megadeal: Admission::start(limits, clock.clone()),
            clock,
            tickets: Mutex::new(HashMap::new()),
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

    /// Hands the user a coupon of the type (untyped for `None`). MEGADEAL requests wait for
    /// admission first, at most the admission's wait limit.
    pub async fn request(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
    ) -> Result<Allocated, ServiceError> {
        if coupon_type == Some(CouponType::Megadeal) {
            let queued = self.megadeal.enqueue().map_err(busy)?;
            let slot = queued.admitted().await.map_err(busy)?;
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
                tracing::info!(op = "coupons.allocate", user = %user, r#type = t, code = %a.coupon.code, held = a.held)
            }
            Err(e) => {
                tracing::info!(op = "coupons.allocate", user = %user, r#type = t, outcome = e.code())
            }
        }
        result
    }

    /// Queues a MEGADEAL request and answers a ticket at once; the request is served in the
    /// background under the same admission limits. Refused at once when the queue is full.
    pub fn request_ticket(self: &Arc<Self>, user: UserId) -> Result<String, ServiceError> {
        let queued = self.megadeal.enqueue().map_err(busy)?;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        {
            let mut tickets = self.tickets.lock().expect("tickets lock");
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
        let this = Arc::clone(self);
        let ticket = id.clone();
        tokio::spawn(async move {
            let state = match queued.admitted().await {
                Err(b) => TicketState::Failed(TicketFailure::Busy {
                    retry_after_secs: b.retry_after_secs,
                }),
                Ok(slot) => match this
                    .allocate(user, Some(CouponType::Megadeal), slot.admitted_at)
                    .await
                {
                    Ok(a) => TicketState::Done(a.coupon),
                    Err(ServiceError::NoCouponAvailable) => {
                        TicketState::Failed(TicketFailure::NoCouponAvailable)
                    }
                    Err(_) => TicketState::Failed(TicketFailure::Internal),
                },
            };
            if let Some(t) = this.tickets.lock().expect("tickets lock").get_mut(&ticket) {
                t.state = state;
            }
        });
        Ok(id)
    }

    /// A ticket's state, for its own user only (anyone else hears "not found").
    pub fn ticket(&self, id: &str, user: &UserId) -> Result<TicketState, ServiceError> {
        let tickets = self.tickets.lock().expect("tickets lock");
        match tickets.get(id) {
            Some(t) if &t.user == user => Ok(t.state.clone()),
            _ => Err(ServiceError::NotFound { what: "ticket" }),
        }
    }

    pub fn megadeal_status(&self) -> (AdmissionStatus, AdmissionLimits) {
        (self.megadeal.status(), self.megadeal.limits())
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
        let state = allot_domain::coupon::CouponState {
            expires_at: coupon.expires_at,
            uses: coupon.uses,
            max_uses: coupon.max_uses,
            allocated_to: coupon.allocated_to.as_deref(),
        };
        let checked =
            allot_domain::coupon::check_redeemable(&state, user.as_str(), self.clock.now())
                .map_err(refusal);
        let label = checked.as_ref().map_or_else(|e| e.code(), |()| "valid");
        tracing::info!(op = "coupons.validate", user = %user, code = %coupon.code, outcome = label);
        checked.map(|()| coupon)
    }

    pub async fn redeem(&self, code: &str, user: UserId) -> Result<Coupon, ServiceError> {
        let parsed = parse_code(code)?;
        let outcome = self
            .store
            .redeem_coupon(&parsed, user.clone(), self.clock.now())
            .await?;
        let result = match outcome {
            RedeemOutcome::Redeemed(c) => Ok(c),
            RedeemOutcome::Refused(r) => Err(refusal(r)),
            RedeemOutcome::NotFound => Err(ServiceError::NotFound { what: "coupon" }),
        };
        let label = result.as_ref().map_or_else(|e| e.code(), |_| "redeemed");
        tracing::info!(op = "coupons.redeem", user = %user, code = %parsed, outcome = label);
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

fn parse_code(code: &str) -> Result<UploadedCode, ServiceError> {
    UploadedCode::parse(code).map_err(|_| ServiceError::NotFound { what: "coupon" })
}

fn busy(b: super::admission::Busy) -> ServiceError {
    metrics::counter!("allot_megadeal_refused_total").increment(1);
    ServiceError::MegadealBusy {
        retry_after_secs: b.retry_after_secs,
    }
}

fn refusal(r: RedeemRefusal) -> ServiceError {
    match r {
        RedeemRefusal::Expired => ServiceError::Expired,
        RedeemRefusal::Exhausted => ServiceError::Exhausted,
        RedeemRefusal::NotOwner => ServiceError::NotOwner,
    }
}
