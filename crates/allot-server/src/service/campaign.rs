//! Campaign issuance: the allocation core.
//!
//! Exactness lives in storage (a conditional increment that can never pass `total`, inside
//! the group commit). This service adds what must not cost a database round trip: the time
//! window, checked against the server's clock to the millisecond, and a per-campaign gate that
//! answers "sold out" from memory.
//!
//! The gate counts reservations: a request takes one before it goes to storage and gives it
//! back unless a code was issued. Once reservations reach `total`, further requests are refused
//! at once. The count is local to this process, so it never exceeds the real number of claims
//! (with several instances it is a lower bound); storage stays the authority, and its
//! "exhausted" answer closes the gate for good.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use allot_domain::Clock;
use allot_domain::campaign::{CampaignId, CampaignWindow, CouponCode, WindowState};
use allot_domain::user::{IdempotencyKey, UserId};
use allot_storage::{Campaign, IssueOutcome, IssueRequest, IssuedCoupon, NewCampaign, Store};

use crate::ServiceError;
use crate::time::rfc3339;

/// Most issued codes one page of a listing returns.
pub const COUPONS_PAGE_MAX: u32 = 10_000;

/// Most campaigns one page of the listing returns.
pub const CAMPAIGNS_PAGE_MAX: u32 = 1_000;

/// The most codes `GetCampaign` answers (8 symbols of up to 3 bytes each: under 400 KB), so
/// one call holds a bounded amount of memory and a reader only briefly, whatever the
/// campaign's size. The rest is read page by page from the REST listing.
pub const GET_CAMPAIGN_CODES_MAX: u32 = 10_000;

/// Which codes a campaign read shows: issued codes are bearer credentials, so only staff
/// see every one; a customer sees those issued to it; anyone else none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodesShown {
    All,
    IssuedTo(UserId),
    None,
}

pub struct Campaigns {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    gates: RwLock<HashMap<CampaignId, Arc<Gate>>>,
}

struct Gate {
    window: CampaignWindow,
    total: i64,
    reserved: AtomicI64,
    sold_out: AtomicBool,
    /// The campaign limits codes per user: an issue must name its user.
    limits_users: bool,
}

/// A code handed out by [`Campaigns::issue`].
#[derive(Debug, Clone)]
pub struct Issued {
    pub code: CouponCode,
    pub seq: i64,
    /// True when an idempotency key matched an earlier issue and this is that code again.
    pub replayed: bool,
}

impl Campaigns {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Campaigns {
            store,
            clock,
            gates: RwLock::new(HashMap::new()),
        }
    }

    pub async fn create(&self, new: NewCampaign) -> Result<Campaign, ServiceError> {
        let campaign = self.store.create_campaign(new, self.clock.now()).await?;
        tracing::info!(
            op = "campaign.create",
            campaign = campaign.id.get(),
            total = campaign.total,
            "campaign created"
        );
        Ok(campaign)
    }

    pub async fn get(&self, id: CampaignId) -> Result<Campaign, ServiceError> {
        self.store
            .campaign(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "campaign" })
    }

    /// Campaigns newest first, a keyset page: those with `id < before_id`, at most
    /// [`CAMPAIGNS_PAGE_MAX`].
    pub async fn list(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Campaign>, ServiceError> {
        Ok(self
            .store
            .campaigns(before_id, limit.clamp(1, CAMPAIGNS_PAGE_MAX))
            .await?)
    }

    /// Campaigns issuing now (started, not ended, codes left) by this service's clock, newest
    /// first, at most `limit`.
    pub async fn running(&self, limit: u32) -> Result<Vec<Campaign>, ServiceError> {
        Ok(self
            .store
            .running_campaigns(self.clock.now(), limit.clamp(1, CAMPAIGNS_PAGE_MAX))
            .await?)
    }

    /// The campaign and the codes `shown` may see, in issue order: at most
    /// [`GET_CAMPAIGN_CODES_MAX`]. Past that, `issued` is larger than the codes answered, and
    /// the paged listing (`campaigns/{id}/coupons?after=`) has the rest.
    pub async fn get_with_codes(
        &self,
        id: CampaignId,
        shown: CodesShown,
    ) -> Result<(Campaign, Vec<CouponCode>), ServiceError> {
        let campaign = self.get(id).await?;
        let holder = match shown {
            CodesShown::None => return Ok((campaign, Vec::new())),
            CodesShown::All => None,
            CodesShown::IssuedTo(user) => Some(user),
        };
        let codes = self
            .store
            .campaign_codes(id, holder, GET_CAMPAIGN_CODES_MAX)
            .await?;
        Ok((campaign, codes))
    }

    pub async fn coupons(
        &self,
        id: CampaignId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<IssuedCoupon>, ServiceError> {
        self.get(id).await?;
        Ok(self
            .store
            .campaign_coupons(id, after_seq.max(0), limit.clamp(1, COUPONS_PAGE_MAX))
            .await?)
    }

    /// Issues the next code of the campaign to whoever asks first.
    pub async fn issue(
        &self,
        id: CampaignId,
        user_id: Option<UserId>,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Issued, ServiceError> {
        let gate = self.gate(id).await?;
        // Without a user, storage cannot count the codes per user: an issue with none would
        // pass the limit as often as it is asked.
        if gate.limits_users && user_id.is_none() {
            return Err(ServiceError::InvalidArgument {
                field: "user_id",
                message: "user_id: required, since this campaign limits the codes per user"
                    .to_owned(),
            });
        }
        let now = self.clock.now();
        match gate.window.state_at(now) {
            WindowState::Open => {}
            WindowState::NotStarted => {
                return Err(ServiceError::NotStarted {
                    starts_at: rfc3339(gate.window.starts_at),
                });
            }
            WindowState::Ended => {
                return Err(ServiceError::Ended {
                    ended_at: gate.window.ends_at.map(rfc3339).unwrap_or_default(),
                });
            }
        }
        // A retry with an idempotency key must find its first answer even when sold out, so it
        // always asks storage.
        let reserve = idempotency_key.is_none();
        if reserve {
            if gate.sold_out.load(Ordering::Acquire) {
                return Err(sold_out());
            }
            if gate.reserved.fetch_add(1, Ordering::AcqRel) >= gate.total {
                gate.reserved.fetch_sub(1, Ordering::AcqRel);
                return Err(sold_out());
            }
        }
        let release = || {
            if reserve {
                gate.reserved.fetch_sub(1, Ordering::AcqRel);
            }
        };
        let request = IssueRequest {
            campaign_id: id,
            user_id,
            // Kept per caller: another caller's key finds nothing of this one's.
            idempotency_key: idempotency_key.map(|k| k.owned_by(&super::idempotency_owner())),
            now,
        };
        let outcome = match self.store.issue_coupon(request).await {
            Ok(outcome) => outcome,
            Err(e) => {
                release();
                return Err(e.into());
            }
        };
        let result = match outcome {
            IssueOutcome::Issued { code, seq } => {
                if !reserve {
                    gate.reserved.fetch_add(1, Ordering::AcqRel);
                }
                metrics::counter!("allot_campaign_issues_total", "outcome" => "issued")
                    .increment(1);
                return Ok(Issued {
                    code,
                    seq,
                    replayed: false,
                });
            }
            IssueOutcome::Replayed { code, seq } => Ok(Issued {
                code,
                seq,
                replayed: true,
            }),
            IssueOutcome::Exhausted => {
                gate.sold_out.store(true, Ordering::Release);
                Err(ServiceError::SoldOut)
            }
            IssueOutcome::UserLimitReached => Err(ServiceError::UserLimitReached),
            IssueOutcome::CampaignNotFound => {
                self.gates.write().expect("gates lock").remove(&id);
                Err(ServiceError::NotFound { what: "campaign" })
            }
        };
        release();
        let label = match &result {
            Ok(_) => "replayed",
            Err(e) => e.code(),
        };
        metrics::counter!("allot_campaign_issues_total", "outcome" => label).increment(1);
        result
    }

    async fn gate(&self, id: CampaignId) -> Result<Arc<Gate>, ServiceError> {
        if let Some(gate) = self.gates.read().expect("gates lock").get(&id) {
            return Ok(gate.clone());
        }
        let campaign = self.get(id).await?;
        let gate = Arc::new(Gate {
            window: campaign.window,
            total: campaign.total,
            reserved: AtomicI64::new(campaign.issued),
            sold_out: AtomicBool::new(campaign.issued >= campaign.total),
            limits_users: campaign.per_user_limit.is_some(),
        });
        let mut gates = self.gates.write().expect("gates lock");
        Ok(gates.entry(id).or_insert(gate).clone())
    }
}

fn sold_out() -> ServiceError {
    metrics::counter!("allot_campaign_issues_total", "outcome" => "sold_out").increment(1);
    ServiceError::SoldOut
}
