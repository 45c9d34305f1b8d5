//! Promotions: managed, previewed, held, redeemed and rolled back.
//!
//! The engine (`allot_domain::promotion::evaluate`) decides what a cart gets; storage makes a
//! hold exact (its limits checked again on the usage read in the hold's own transaction).
//! This layer builds the cart (what the client leaves out comes from the catalog and the
//! accounts), gathers the candidates (the promotions the cart's codes reach, and the active
//! automatic promotions whose conditions hold) with their usage, and reads the clock.
//!
//! The automatic promotions are kept parsed in memory and reloaded when storage's
//! `promotions_generation` moves (one small read per evaluation), so a preview against a
//! thousand of them costs a filter in memory, not a thousand rows read and parsed.

mod explain;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use allot_domain::auth::AccountId;
use allot_domain::catalog::{CategoryId, ProductId};
use allot_domain::promotion::engine::conditions_hold;
use allot_domain::promotion::{
    Candidate, Cart, CartLine, Customer, Evaluation, HOLD_TTL_MAX_SECS, LABEL_MAX_CHARS, Promotion,
    PromotionId, Reason, Trigger, Usage, evaluate,
};
use allot_domain::user::IdempotencyKey;
use allot_domain::{Clock, DomainError, UnixMillis};
use allot_storage::promotion::PROMOTIONS_PAGE_MAX;
use allot_storage::{
    Binding, CodeSource, HeldPromotion, Hold, NewHold, NewPromotion, PromotionQuery,
    PromotionRefusal, Store, StoredPromotion,
};

pub use explain::{
    AppliedLineView, AppliedView, EvaluationView, LineDiscountView, LineView, RefusedView, message,
};

use crate::ServiceError;

/// Promotions one page lists when the client does not say.
pub const PAGE_DEFAULT: u32 = 50;
/// Holds one page lists at most, and when the client does not say.
pub const HOLDS_PAGE_MAX: u32 = 500;
pub const HOLDS_PAGE_DEFAULT: u32 = 50;
/// Times a hold is evaluated again when the usage it was decided on moved before it was
/// written (another checkout spent the same budget first). Each retry reads fresh usage, so
/// under a race the losers see the budget as it is and hold what is left, or nothing.
pub const HOLD_ATTEMPTS_MAX: usize = 8;
/// Holds one expiry transaction ends at most, and transactions one run takes at most; the
/// rest waits for the next run.
pub const EXPIRY_BATCH: u32 = 500;
const EXPIRY_BATCHES_PER_RUN: u32 = 20;
/// Most codes one bind call takes (per list).
pub const BIND_CODES_MAX: usize = 10_000;
/// Most categories a line may name, tags a customer may carry.
pub const LINE_CATEGORIES_MAX: usize = 100;
pub const CUSTOMER_TAGS_MAX: usize = 100;
/// Deepest category tree walked for a line's ancestors: a loop in the tree (which storage
/// refuses) would otherwise never end.
const CATEGORY_DEPTH_MAX: usize = 64;

/// A cart as a client sends it. What it leaves out is read from the catalog (a line's price,
/// categories with their ancestors, attributes; the currency) and from the accounts (the
/// customer's role and its earlier orders).
#[derive(Debug, Clone, Default)]
pub struct CartRequest {
    pub currency: Option<String>,
    pub lines: Vec<LineRequest>,
    pub shipping_minor: Option<i64>,
    pub customer: Option<CustomerRequest>,
    pub codes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LineRequest {
    pub product_id: i64,
    pub quantity: i64,
    pub unit_price_minor: Option<i64>,
    pub category_ids: Option<Vec<i64>>,
    pub attributes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default)]
pub struct CustomerRequest {
    pub id: Option<String>,
    pub role: Option<String>,
    pub tags: Vec<String>,
    pub orders_before: Option<u64>,
}

/// A cart and what the engine says of it, with the names of the promotions it mentions.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub cart: Cart,
    pub evaluation: Evaluation,
    pub names: BTreeMap<PromotionId, String>,
    /// Where each code the evaluation applies comes from.
    sources: HashMap<String, CodeSource>,
}

impl Evaluated {
    /// The evaluation as the API shows it.
    pub fn view(&self) -> EvaluationView {
        explain::view(&self.cart, &self.evaluation, &self.names)
    }
}

/// A page of promotions, by id ascending.
#[derive(Debug, Clone)]
pub struct PromotionPage {
    pub promotions: Vec<StoredPromotion>,
    pub next_after: Option<i64>,
}

/// The active automatic promotions as of a generation of the promotions.
struct Automatic {
    generation: Option<i64>,
    promotions: Arc<Vec<(PromotionId, Promotion)>>,
}

pub struct Promotions {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    automatic: RwLock<Automatic>,
    /// One reload at a time: the others wait for it rather than each reading every row.
    reload: tokio::sync::Mutex<()>,
}

impl Promotions {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Promotions {
            store,
            clock,
            automatic: RwLock::new(Automatic {
                generation: None,
                promotions: Arc::new(Vec::new()),
            }),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn create(
        &self,
        promotion: Promotion,
        active: bool,
    ) -> Result<StoredPromotion, ServiceError> {
        let new = NewPromotion {
            promotion,
            active,
            now: self.clock.now(),
        };
        let stored = self.store.create_promotion(new).await?;
        tracing::info!(
            op = "promotion.create",
            promotion = stored.id.get(),
            "promotion created"
        );
        Ok(stored)
    }

    /// Replaces a promotion's spec and active flag; what it has given so far stays.
    pub async fn update(
        &self,
        id: PromotionId,
        promotion: Promotion,
        active: bool,
    ) -> Result<StoredPromotion, ServiceError> {
        let new = NewPromotion {
            promotion,
            active,
            now: self.clock.now(),
        };
        let stored = self
            .store
            .update_promotion(id, new)
            .await?
            .map_err(refused)?;
        tracing::info!(
            op = "promotion.update",
            promotion = id.get(),
            "promotion updated"
        );
        Ok(stored)
    }

    pub async fn get(&self, id: PromotionId) -> Result<StoredPromotion, ServiceError> {
        self.store
            .promotion(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "promotion" })
    }

    /// Promotions with an id above `after`, ascending, at most `limit`
    /// (1 to [`PROMOTIONS_PAGE_MAX`]).
    pub async fn list(
        &self,
        active: Option<bool>,
        trigger: Option<Trigger>,
        after: i64,
        limit: u32,
    ) -> Result<PromotionPage, ServiceError> {
        if after < 0 {
            return Err(DomainError::invalid("after", "must be 0 or more").into());
        }
        if !(1..=PROMOTIONS_PAGE_MAX).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                format!("must be 1 to {PROMOTIONS_PAGE_MAX}"),
            )
            .into());
        }
        let promotions = self
            .store
            .promotions(PromotionQuery {
                active,
                trigger,
                after,
                limit,
            })
            .await?;
        let next_after = (promotions.len() == limit as usize)
            .then(|| promotions.last().map(|p| p.id.get()))
            .flatten();
        Ok(PromotionPage {
            promotions,
            next_after,
        })
    }

    /// Binds coupons, discount codes and a campaign's codes to a promotion, in that order,
    /// each list all or none; how many codes were bound (a campaign counts as one).
    pub async fn bind(
        &self,
        id: PromotionId,
        coupons: Vec<String>,
        discount_codes: Vec<String>,
        campaign: Option<i64>,
    ) -> Result<u64, ServiceError> {
        if coupons.is_empty() && discount_codes.is_empty() && campaign.is_none() {
            return Err(DomainError::invalid(
                "coupons",
                "give coupons, discount_codes or a campaign_id to bind",
            )
            .into());
        }
        let coupons = codes_of(coupons, "coupons", |raw| {
            allot_domain::coupon::UploadedCode::parse(raw).map(|c| c.as_str().to_owned())
        })?;
        let discount_codes = codes_of(discount_codes, "discount_codes", |raw| {
            allot_domain::discount::DiscountCode::parse(raw).map(|c| c.as_str().to_owned())
        })?;
        if let Some(c) = campaign
            && c < 1
        {
            return Err(DomainError::invalid("campaign_id", "must be a positive integer").into());
        }
        self.get(id).await?;
        let mut bound = 0;
        let bindings = [
            (!coupons.is_empty()).then_some(("coupons", Binding::Coupons(coupons))),
            (!discount_codes.is_empty())
                .then_some(("discount_codes", Binding::DiscountCodes(discount_codes))),
            campaign.map(|c| ("campaign_id", Binding::Campaign(c))),
        ];
        for (field, binding) in bindings.into_iter().flatten() {
            bound += self
                .store
                .bind_codes(id, binding)
                .await?
                .map_err(|r| match r {
                    PromotionRefusal::UnknownCodes(codes) => {
                        ServiceError::UnknownCodes { field, codes }
                    }
                    PromotionRefusal::AlreadyBound(codes) => {
                        ServiceError::AlreadyBound { field, codes }
                    }
                    PromotionRefusal::UsedUpCodes(codes) => {
                        ServiceError::UsedUpCodes { field, codes }
                    }
                    other => refused(other),
                })?;
        }
        tracing::info!(
            op = "promotion.bind",
            promotion = id.get(),
            bound,
            "codes bound"
        );
        Ok(bound)
    }

    /// A promotion's holds, newest first: ids below `before` (0: from the newest).
    pub async fn holds(
        &self,
        id: PromotionId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Hold>, ServiceError> {
        if before < 0 {
            return Err(DomainError::invalid("before", "must be 0 or more").into());
        }
        if !(1..=HOLDS_PAGE_MAX).contains(&limit) {
            return Err(
                DomainError::invalid("limit", format!("must be 1 to {HOLDS_PAGE_MAX}")).into(),
            );
        }
        self.get(id).await?;
        Ok(self.store.promotion_holds(id, before, limit).await?)
    }

    /// Builds the cart a client sent (see [`CartRequest`]) and checks its bounds.
    pub async fn cart(&self, request: CartRequest) -> Result<Cart, ServiceError> {
        let mut currency = request.currency;
        let mut lines = Vec::with_capacity(request.lines.len());
        let mut ancestors: HashMap<i64, Vec<i64>> = HashMap::new();
        if request.lines.len() > allot_domain::promotion::CART_LINES_MAX {
            return Err(DomainError::invalid(
                "lines",
                format!("at most {} lines", allot_domain::promotion::CART_LINES_MAX),
            )
            .into());
        }
        for line in request.lines {
            if line.category_ids.as_ref().map_or(0, Vec::len) > LINE_CATEGORIES_MAX {
                return Err(DomainError::invalid(
                    "lines.category_ids",
                    format!("at most {LINE_CATEGORIES_MAX} categories"),
                )
                .into());
            }
            if line.attributes.as_ref().map_or(0, BTreeMap::len)
                > allot_domain::catalog::ATTRIBUTES_MAX
            {
                return Err(DomainError::invalid(
                    "lines.attributes",
                    format!(
                        "at most {} attributes",
                        allot_domain::catalog::ATTRIBUTES_MAX
                    ),
                )
                .into());
            }
            let complete = line.unit_price_minor.is_some()
                && line.category_ids.is_some()
                && line.attributes.is_some();
            let product = match ProductId::parse(line.product_id) {
                Ok(id) if !complete => self.store.product(id).await?,
                Ok(_) => None,
                Err(_) => {
                    return Err(DomainError::invalid(
                        "lines.product_id",
                        "must be a positive integer",
                    )
                    .into());
                }
            };
            let unit_price_minor = match (line.unit_price_minor, &product) {
                (Some(price), _) => price,
                (None, Some(p)) => {
                    let priced_in = p.price.currency().as_str().to_owned();
                    match &currency {
                        Some(c) if *c != priced_in => {
                            return Err(DomainError::invalid(
                                "lines.unit_price_minor",
                                format!(
                                    "product {} is priced in {priced_in}, not {c}: give its price",
                                    line.product_id
                                ),
                            )
                            .into());
                        }
                        Some(_) => {}
                        None => currency = Some(priced_in),
                    }
                    p.price.amount_minor()
                }
                (None, None) => {
                    return Err(DomainError::invalid(
                        "lines.unit_price_minor",
                        format!(
                            "required: product {} is not in the catalog",
                            line.product_id
                        ),
                    )
                    .into());
                }
            };
            let categories = match (line.category_ids, &product) {
                (Some(given), _) => given,
                (None, Some(p)) => match p.category_id {
                    Some(c) => self.ancestry(c, &mut ancestors).await?,
                    None => Vec::new(),
                },
                (None, None) => Vec::new(),
            };
            let attributes = match (line.attributes, &product) {
                (Some(given), _) => given,
                (None, Some(p)) => p
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), attribute_text(v)))
                    .collect(),
                (None, None) => BTreeMap::new(),
            };
            lines.push(CartLine {
                product: line.product_id,
                quantity: line.quantity,
                unit_price_minor,
                categories,
                attributes,
            });
        }
        let Some(currency) = currency else {
            return Err(DomainError::invalid(
                "currency",
                "required: no line's price came from the catalog",
            )
            .into());
        };
        let customer = match request.customer {
            Some(c) => self.customer(c).await?,
            None => Customer::default(),
        };
        let cart = Cart {
            currency,
            lines,
            shipping_minor: request.shipping_minor.unwrap_or(0),
            customer,
            codes: request.codes,
        };
        Ok(Cart::parse(cart)?)
    }

    /// What the engine says of a cart now; changes nothing.
    pub async fn evaluate(&self, request: CartRequest) -> Result<Evaluated, ServiceError> {
        let cart = self.cart(request).await?;
        self.evaluate_cart(cart, self.clock.now()).await
    }

    /// Holds what the engine gives a cart the client sent, for `ttl_secs`.
    pub async fn hold(
        &self,
        request: CartRequest,
        ttl_secs: u64,
        key: Option<IdempotencyKey>,
    ) -> Result<Hold, ServiceError> {
        let cart = self.cart(request).await?;
        self.hold_cart(cart, ttl_secs, key).await
    }

    /// Holds what the engine gives `cart` (built by the caller: an order's lines at catalog
    /// prices) for `ttl_secs` (1 to [`HOLD_TTL_MAX_SECS`]): its promotions' money and
    /// redemptions and its codes' uses are set aside until the hold is redeemed, released or
    /// expires. A hold with a key already used by its owner answers the first hold.
    ///
    /// A hold is always what the engine says on the usage it was written against: when
    /// another checkout spent the same budget between the evaluation and the write, storage
    /// refuses it as stale and the cart is evaluated again on fresh usage
    /// ([`HOLD_ATTEMPTS_MAX`] times at most; then `busy`, worth retrying).
    pub async fn hold_cart(
        &self,
        cart: Cart,
        ttl_secs: u64,
        key: Option<IdempotencyKey>,
    ) -> Result<Hold, ServiceError> {
        self.hold_evaluated(cart, Made::Held { ttl_secs }, key, None)
            .await
    }

    /// Redeems what the engine gives a cart the client sent, at once, for `reference` (the
    /// shop's order): a hold made redeemed, in one transaction, for a checkout that has
    /// nothing to wait for between the two. Rolled back like any redeemed hold.
    pub async fn redeem_cart(
        &self,
        request: CartRequest,
        reference: &str,
        key: Option<IdempotencyKey>,
    ) -> Result<Hold, ServiceError> {
        let reference = checked_reference(reference)?;
        let cart = self.cart(request).await?;
        let hold = self
            .hold_evaluated(cart, Made::Redeemed { reference }, key, None)
            .await?;
        metrics::counter!("allot_promotion_redemptions_total").increment(1);
        Ok(hold)
    }

    /// [`Promotions::hold_cart`], its first attempt written from `first` (the cart's
    /// evaluation at that instant, which the caller already made) instead of evaluating the
    /// cart again; a stale attempt evaluates afresh as always.
    pub async fn hold_evaluated(
        &self,
        cart: Cart,
        made: Made,
        key: Option<IdempotencyKey>,
        mut first: Option<(UnixMillis, Evaluated)>,
    ) -> Result<Hold, ServiceError> {
        let (ttl_secs, redeem_for) = match made {
            Made::Held { ttl_secs } => (ttl_secs, None),
            // Nothing stays held: the hold ends redeemed as it is made.
            Made::Redeemed { reference } => (0, Some(reference)),
        };
        if redeem_for.is_none() && !(1..=HOLD_TTL_MAX_SECS).contains(&ttl_secs) {
            return Err(DomainError::invalid(
                "ttl_seconds",
                format!("must be 1 to {HOLD_TTL_MAX_SECS}"),
            )
            .into());
        }
        let cart = Cart::parse(cart)?;
        let key = key.map(|k| k.owned_by(&super::idempotency_owner()).as_str().to_owned());
        let mut last = None;
        for _ in 0..HOLD_ATTEMPTS_MAX {
            let (now, evaluated) = match first.take() {
                Some(given) => given,
                None => {
                    let now = self.clock.now();
                    (now, self.evaluate_cart(cart.clone(), now).await?)
                }
            };
            let evaluation = serde_json::to_string(&evaluated.view()).map_err(|e| {
                ServiceError::Crypto(format!("the evaluation does not serialise: {e}"))
            })?;
            let promotions = evaluated
                .evaluation
                .applied
                .iter()
                .map(|a| HeldPromotion {
                    promotion: a.id,
                    code: a.code.as_ref().and_then(|code| {
                        evaluated
                            .sources
                            .get(code)
                            .map(|source| (code.clone(), *source))
                    }),
                    amount_minor: a.amount_minor,
                })
                .collect();
            let new = NewHold {
                customer: cart.customer.id.clone(),
                currency: cart.currency.clone(),
                cart_fingerprint: cart.fingerprint(),
                promotions,
                evaluation,
                discount_minor: evaluated.evaluation.discount_minor,
                shipping_discount_minor: evaluated.evaluation.shipping_discount_minor,
                idempotency_key: key.clone(),
                expires_at: now.plus_millis(ttl_secs as i64 * 1_000),
                now,
                redeem_for: redeem_for.clone(),
            };
            match self.store.create_hold(new).await? {
                Ok(hold) => {
                    metrics::counter!("allot_promotion_holds_total", "outcome" => "held")
                        .increment(1);
                    return Ok(hold);
                }
                Err(r @ (PromotionRefusal::Stale { .. } | PromotionRefusal::CodeTaken { .. })) => {
                    metrics::counter!("allot_promotion_holds_total", "outcome" => "stale")
                        .increment(1);
                    last = Some(r);
                }
                Err(other) => return Err(refused(other)),
            }
        }
        tracing::warn!(refusal = ?last, "a promotion hold stayed stale after every attempt");
        Err(ServiceError::Busy {
            what: "holding promotions others are spending at the same time",
        })
    }

    pub async fn get_hold(&self, id: i64) -> Result<Hold, ServiceError> {
        self.store
            .hold(id)
            .await?
            .ok_or(ServiceError::NotFound { what: "hold" })
    }

    /// Ends a held hold, giving back what it held.
    pub async fn release(&self, id: i64) -> Result<Hold, ServiceError> {
        let hold = self
            .store
            .release_hold(id, self.clock.now())
            .await?
            .map_err(refused)?;
        Ok(hold)
    }

    /// Turns a held, unexpired hold into redemptions for `reference` (an external order).
    pub async fn redeem(&self, id: i64, reference: String) -> Result<Hold, ServiceError> {
        let reference = checked_reference(&reference)?;
        let hold = self
            .store
            .redeem_hold(id, reference, self.clock.now())
            .await?
            .map_err(refused)?;
        metrics::counter!("allot_promotion_redemptions_total").increment(1);
        Ok(hold)
    }

    /// Gives back a redeemed hold (a cancelled or refunded order) exactly once: a hold rolled
    /// back already is answered as it is.
    pub async fn roll_back(&self, id: i64) -> Result<Hold, ServiceError> {
        let hold = self
            .store
            .roll_back_hold(id, self.clock.now())
            .await?
            .map_err(refused)?;
        Ok(hold)
    }

    /// Expires the holds past their time, a batch per transaction; how many.
    pub async fn expire_due(&self) -> Result<u64, ServiceError> {
        let mut total = 0;
        for _ in 0..EXPIRY_BATCHES_PER_RUN {
            let n = self
                .store
                .expire_holds(self.clock.now(), EXPIRY_BATCH)
                .await?;
            total += n;
            if n < u64::from(EXPIRY_BATCH) {
                break;
            }
        }
        if total > 0 {
            tracing::info!(
                op = "promotion.expire_holds",
                expired = total,
                "holds expired"
            );
        }
        Ok(total)
    }

    /// The engine's answer for a checked cart at `now`, on the usage read now.
    pub async fn evaluate_cart(
        &self,
        cart: Cart,
        now: UnixMillis,
    ) -> Result<Evaluated, ServiceError> {
        let automatic = self.automatic().await?;
        let customer = cart.customer.id.clone();
        // Bound codes are kept upper-cased (campaign codes, Hangul, have no case); the cart
        // keeps them as entered, and reports them so.
        let upper: Vec<String> = cart.codes.iter().map(|c| c.to_uppercase()).collect();
        let resolved = if upper.is_empty() {
            Vec::new()
        } else {
            self.store
                .resolve_codes(&upper, customer.as_deref(), now)
                .await?
        };
        let mut code_refusals: Vec<(String, Reason)> = Vec::new();
        let mut sources = HashMap::new();
        let mut reached: Vec<(PromotionId, String)> = Vec::new();
        for (entered, r) in cart.codes.iter().zip(resolved) {
            match r.promotion {
                Err(reason) => code_refusals.push((entered.clone(), reason)),
                Ok(id) => {
                    if let Some(source) = r.source {
                        sources.insert(entered.clone(), source);
                    }
                    reached.push((id, entered.clone()));
                }
            }
        }
        let mut names = BTreeMap::new();
        let mut inactive = HashMap::new();
        // Active promotions reached by a code; `None` for one switched off.
        let mut loaded: BTreeMap<PromotionId, Option<Promotion>> = BTreeMap::new();
        // A promotion reached by two codes is given to the engine with both: it considers the
        // promotion once, by the first, and says what became of the other.
        let mut by_code: Vec<(PromotionId, String)> = Vec::new();
        for (id, code) in reached {
            if let std::collections::btree_map::Entry::Vacant(slot) = loaded.entry(id) {
                let Some(stored) = self.store.promotion(id).await? else {
                    code_refusals.push((code, Reason::UnknownCode));
                    continue;
                };
                names.insert(id, stored.promotion.spec().name.clone());
                slot.insert(stored.active.then_some(stored.promotion));
            }
            match loaded.get(&id) {
                Some(Some(_)) => by_code.push((id, code)),
                _ => {
                    inactive.insert(code.clone(), id);
                    code_refusals.push((code, Reason::Inactive));
                }
            }
        }
        let automatic: Vec<&(PromotionId, Promotion)> = automatic
            .iter()
            .filter(|(id, p)| !loaded.contains_key(id) && conditions_hold(p, &cart, now).is_ok())
            .collect();
        // Usage decides only for a promotion with limits: the others are not read, so a cart
        // that meets a thousand unlimited automatic promotions costs no read for them.
        let ids: Vec<PromotionId> = loaded
            .iter()
            .filter_map(|(id, p)| p.as_ref().map(|p| (*id, p)))
            .chain(automatic.iter().map(|(id, p)| (*id, p)))
            .filter(|(_, p)| has_limits(p))
            .map(|(id, _)| id)
            .collect();
        let usage: HashMap<PromotionId, Usage> = if ids.is_empty() {
            HashMap::new()
        } else {
            let read = self
                .store
                .promotion_usage(&ids, customer.as_deref())
                .await?;
            ids.iter().copied().zip(read).collect()
        };
        let mut candidates = Vec::with_capacity(by_code.len() + automatic.len());
        for (id, code) in &by_code {
            if let Some(Some(promotion)) = loaded.get(id) {
                candidates.push(Candidate {
                    id: *id,
                    promotion,
                    code: Some(code.as_str()),
                    usage: usage.get(id).copied().unwrap_or_default(),
                });
            }
        }
        for (id, promotion) in &automatic {
            names.insert(*id, promotion.spec().name.clone());
            candidates.push(Candidate {
                id: *id,
                promotion,
                code: None,
                usage: usage.get(id).copied().unwrap_or_default(),
            });
        }
        let mut evaluation = evaluate(&cart, &candidates, &code_refusals, now);
        for r in &mut evaluation.refused {
            if r.id.is_none()
                && let Some(id) = r.code.as_ref().and_then(|c| inactive.get(c))
            {
                r.id = Some(*id);
            }
        }
        Ok(Evaluated {
            cart,
            evaluation,
            names,
            sources,
        })
    }

    /// Whether any automatic promotion is active: an order without codes is evaluated only
    /// then. As cheap as [`Promotions::automatic`]: one small read, nothing parsed.
    pub async fn any_automatic(&self) -> Result<bool, ServiceError> {
        Ok(!self.automatic().await?.is_empty())
    }

    /// The active automatic promotions, parsed, as of the promotions' current generation.
    async fn automatic(&self) -> Result<Arc<Vec<(PromotionId, Promotion)>>, ServiceError> {
        let generation = self.store.promotions_generation().await?;
        if let Some(current) = self.cached(generation) {
            return Ok(current);
        }
        let _one_reload = self.reload.lock().await;
        if let Some(current) = self.cached(generation) {
            return Ok(current);
        }
        // Read after the generation: a change between the two reads leaves the newer rows
        // under the older number, and the next call reloads once more, never the reverse.
        let mut promotions: Vec<(PromotionId, Promotion)> = self
            .store
            .active_automatic_promotions()
            .await?
            .into_iter()
            .filter(|p| p.active && p.promotion.trigger() == Trigger::Automatic)
            .map(|p| (p.id, p.promotion))
            .collect();
        promotions.sort_by_key(|(id, _)| *id);
        let promotions = Arc::new(promotions);
        let mut slot = self
            .automatic
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Automatic {
            generation: Some(generation),
            promotions: promotions.clone(),
        };
        Ok(promotions)
    }

    fn cached(&self, generation: i64) -> Option<Arc<Vec<(PromotionId, Promotion)>>> {
        let slot = self
            .automatic
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (slot.generation == Some(generation)).then(|| slot.promotions.clone())
    }

    /// A customer as the client gave it, its role and earlier orders read from its account
    /// where left out.
    async fn customer(&self, c: CustomerRequest) -> Result<Customer, ServiceError> {
        let label = |field: &'static str, v: &str| -> Result<(), ServiceError> {
            let n = v.chars().count();
            if n == 0 || n > LABEL_MAX_CHARS || v.chars().any(char::is_control) {
                return Err(DomainError::invalid(
                    field,
                    format!("must be 1 to {LABEL_MAX_CHARS} characters, no control characters"),
                )
                .into());
            }
            Ok(())
        };
        if let Some(id) = &c.id {
            label("customer.id", id)?;
        }
        if let Some(role) = &c.role {
            label("customer.role", role)?;
        }
        if c.tags.len() > CUSTOMER_TAGS_MAX {
            return Err(DomainError::invalid(
                "customer.tags",
                format!("at most {CUSTOMER_TAGS_MAX} tags"),
            )
            .into());
        }
        for tag in &c.tags {
            label("customer.tags", tag)?;
        }
        let mut role = c.role;
        let mut orders_before = c.orders_before;
        if let Some(id) = &c.id {
            if role.is_none()
                && let Some(account) = id.parse::<i64>().ok().filter(|n| *n >= 1)
                && let Some(user) = self.store.user_by_id(AccountId::new(account)).await?
            {
                role = Some(user.role.as_str().to_owned());
            }
            if orders_before.is_none() {
                orders_before = Some(self.store.customer_orders(id).await?);
            }
        }
        Ok(Customer {
            id: c.id,
            role,
            tags: c.tags,
            orders_before: orders_before.unwrap_or(0),
        })
    }

    /// A category and every ancestor of it, nearest first.
    async fn ancestry(
        &self,
        category: CategoryId,
        known: &mut HashMap<i64, Vec<i64>>,
    ) -> Result<Vec<i64>, ServiceError> {
        if let Some(chain) = known.get(&category.get()) {
            return Ok(chain.clone());
        }
        let mut chain = Vec::new();
        let mut next = Some(category);
        while let Some(id) = next {
            if chain.len() >= CATEGORY_DEPTH_MAX || chain.contains(&id.get()) {
                break;
            }
            chain.push(id.get());
            next = match self.store.category(id).await? {
                Some(c) => c.parent_id,
                None => None,
            };
        }
        known.insert(category.get(), chain.clone());
        Ok(chain)
    }
}

/// Whether a promotion has a budget or a limit, so that its usage decides what it gives.
fn has_limits(promotion: &Promotion) -> bool {
    let l = &promotion.spec().limits;
    l.budget_minor.is_some()
        || l.redemptions_max.is_some()
        || l.per_customer_budget_minor.is_some()
        || l.per_customer_redemptions_max.is_some()
}

/// Most characters of a redemption's reference.
pub const REFERENCE_MAX_CHARS: usize = 200;

/// A product attribute as promotions compare it: text as it is, numbers in their shortest
/// form (`2`, `2.5`), booleans as `true`/`false`.
fn attribute_text(v: &allot_domain::catalog::AttributeValue) -> String {
    use allot_domain::catalog::AttributeValue;
    match v {
        AttributeValue::Text(t) => t.clone(),
        AttributeValue::Number(n) => n.to_string(),
        AttributeValue::Boolean(b) => b.to_string(),
    }
}

/// A list of codes to bind, each parsed by `parse`, each kept once, at most
/// [`BIND_CODES_MAX`].
fn codes_of(
    raw: Vec<String>,
    field: &'static str,
    parse: impl Fn(&str) -> Result<String, DomainError>,
) -> Result<Vec<String>, ServiceError> {
    if raw.len() > BIND_CODES_MAX {
        return Err(DomainError::invalid(field, format!("at most {BIND_CODES_MAX} codes")).into());
    }
    let mut codes = Vec::with_capacity(raw.len());
    for code in &raw {
        let code = parse(code).map_err(|e| match e {
            DomainError::Invalid { message, .. } => DomainError::invalid(field, message),
        })?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// A storage refusal as the API answers it.
fn refused(r: PromotionRefusal) -> ServiceError {
    match r {
        PromotionRefusal::NotFound => ServiceError::NotFound { what: "promotion" },
        PromotionRefusal::HoldNotFound => ServiceError::NotFound { what: "hold" },
        PromotionRefusal::HoldNotHeld { status } => ServiceError::HoldNotHeld {
            status: status.as_str(),
        },
        PromotionRefusal::HoldExpired => ServiceError::HoldExpired,
        PromotionRefusal::UnknownCodes(codes) => ServiceError::UnknownCodes {
            field: "codes",
            codes,
        },
        PromotionRefusal::AlreadyBound(codes) => ServiceError::AlreadyBound {
            field: "codes",
            codes,
        },
        PromotionRefusal::UsedUpCodes(codes) => ServiceError::UsedUpCodes {
            field: "codes",
            codes,
        },
        PromotionRefusal::UnknownCampaign => ServiceError::UnknownCampaign,
        PromotionRefusal::LimitBelowUsage { field } => ServiceError::LimitBelowUsage { field },
        PromotionRefusal::Stale { .. } | PromotionRefusal::CodeTaken { .. } => ServiceError::Busy {
            what: "holding promotions others are spending at the same time",
        },
    }
}

/// How a hold is made: held for a time, or redeemed at once for a reference.
#[derive(Debug, Clone)]
pub enum Made {
    Held { ttl_secs: u64 },
    Redeemed { reference: String },
}

/// A redemption's reference (the shop's order): trimmed, 1 to [`REFERENCE_MAX_CHARS`]
/// characters, no control characters.
fn checked_reference(raw: &str) -> Result<String, ServiceError> {
    let reference = raw.trim();
    if reference.is_empty()
        || raw.chars().count() > REFERENCE_MAX_CHARS
        || reference.chars().any(char::is_control)
    {
        return Err(DomainError::invalid(
            "reference",
            format!("must be 1 to {REFERENCE_MAX_CHARS} characters, no control characters"),
        )
        .into());
    }
    Ok(reference.to_owned())
}
