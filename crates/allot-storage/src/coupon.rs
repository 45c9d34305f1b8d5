//! Coupons' part of the storage interface: the trait, its records, and what both backends
//! decide alike (what a redemption may do, what a purge counts, the per-type counters, the
//! events), so that each backend keeps only its I/O.

use allot_domain::UnixMillis;
use allot_domain::coupon::{
    CouponState, CouponType, Discount, MaxUses, RedeemRefusal, UploadedCode, check_redeemable,
};
use allot_domain::event::{ACTOR_API, ACTOR_COUPON_PURGE, EventType, NewEvent};
use allot_domain::user::{IdempotencyKey, UserId};
use async_trait::async_trait;

use crate::StorageError;
use crate::row::Columns;

#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub code: UploadedCode,
    pub coupon_type: Option<CouponType>,
    pub discount: Discount,
    pub expires_at: UnixMillis,
    pub max_uses: MaxUses,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    /// The row's id: stable for the coupon's life, unique across coupons (the original coupon
    /// system's contract names coupons and their allocations by it).
    pub id: i64,
    pub code: String,
    pub coupon_type: Option<CouponType>,
    pub discount_kind: String,
    pub discount_amount: i64,
    pub expires_at: UnixMillis,
    pub max_uses: u32,
    pub uses: u32,
    pub allocated_to: Option<String>,
    pub allocated_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
    /// The promotion the coupon is bound to, if any (`PromotionStore::bind_codes`): it is then
    /// used through that promotion only.
    pub bound_to: Option<i64>,
}

impl Coupon {
    /// What the redemption rule (`check_redeemable`) looks at.
    pub fn state(&self) -> CouponState<'_> {
        CouponState {
            expires_at: self.expires_at,
            uses: self.uses,
            max_uses: self.max_uses,
            allocated_to: self.allocated_to.as_deref(),
            bound_to: self.bound_to,
        }
    }
}

/// Upload entries that clash with stored coupons: their index in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingCodes(pub Vec<usize>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// A coupon allocated to the user now.
    New(Coupon),
    /// The user already held an unredeemed coupon of that type: the same one again.
    Held(Coupon),
    NoneAvailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    Redeemed(Coupon),
    /// An earlier call with the same idempotency key redeemed it: nothing changed now (the
    /// coupon as it is now).
    Replayed(Coupon),
    Refused(RedeemRefusal),
    NotFound,
}

#[derive(Debug, Clone, Default)]
pub struct RedemptionFilter {
    pub user_id: Option<String>,
    pub code: Option<String>,
    /// `Some(None)` asks for untyped coupons.
    pub coupon_type: Option<Option<CouponType>>,
    pub from: Option<UnixMillis>,
    pub until: Option<UnixMillis>,
    /// Records with an id greater than this.
    pub after_id: i64,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub id: i64,
    pub code: String,
    pub coupon_type: Option<CouponType>,
    pub user_id: String,
    pub redeemed_at: UnixMillis,
}

/// Counters of one type (`None`: untyped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponCounters {
    pub coupon_type: Option<CouponType>,
    pub created: i64,
    pub allocated: i64,
    pub redeemed: i64,
    /// Stored coupons past their expiry now.
    pub expired: i64,
    pub purged: i64,
}

#[async_trait]
pub trait CouponStore {
    /// Stores every coupon or none: codes already stored are reported by their index in
    /// `coupons` and nothing is written. The caller has checked the batch itself (fields,
    /// duplicates inside it).
    async fn upload_coupons(
        &self,
        coupons: Vec<NewCoupon>,
        now: UnixMillis,
    ) -> Result<Result<usize, ExistingCodes>, StorageError>;

    /// Which of these codes are stored already (a read; the upload itself checks again).
    async fn existing_coupon_codes(
        &self,
        codes: Vec<UploadedCode>,
    ) -> Result<Vec<UploadedCode>, StorageError>;

    /// Hands the user the oldest free, unexpired coupon of the type (untyped for `None`), or
    /// the unredeemed one of that type they already hold.
    async fn allocate_coupon(
        &self,
        user: UserId,
        coupon_type: Option<CouponType>,
        now: UnixMillis,
    ) -> Result<Allocation, StorageError>;

    async fn coupon(&self, code: &UploadedCode) -> Result<Option<Coupon>, StorageError>;

    /// The stored coupons of these codes (a read; codes not stored are left out), in no
    /// particular order.
    async fn coupons_by_code(&self, codes: Vec<UploadedCode>) -> Result<Vec<Coupon>, StorageError>;

    /// Redeems once if the rules allow; atomic, so N concurrent redemptions of a coupon with
    /// M uses left give exactly M successes.
    ///
    /// With `key` (already owned by its caller and scoped to the coupon), the redemption keeps
    /// the key in its own transaction, and a call with a key a redemption already has answers
    /// [`RedeemOutcome::Replayed`] and spends nothing: a retry after a crash between the commit
    /// and the answer never spends a second use.
    async fn redeem_coupon(
        &self,
        code: &UploadedCode,
        user: UserId,
        now: UnixMillis,
        key: Option<IdempotencyKey>,
    ) -> Result<RedeemOutcome, StorageError>;

    async fn redemptions(&self, filter: RedemptionFilter) -> Result<Vec<Redemption>, StorageError>;

    async fn coupon_counters(&self, now: UnixMillis) -> Result<Vec<CouponCounters>, StorageError>;

    /// Deletes unused coupons past their expiry; answers how many of each type.
    async fn purge_coupons(
        &self,
        now: UnixMillis,
        trigger: &'static str,
    ) -> Result<Vec<(Option<CouponType>, i64)>, StorageError>;
}

/// The columns [`coupon_of`] reads, in its order, the row's id next to last (a macro, so that
/// the statements below can be constants).
macro_rules! coupon_columns {
    () => {
        "code, type, discount_kind, discount_amount, expires_at_ms, max_uses, uses, \
         allocated_to, allocated_at_ms, created_at_ms, id, promotion_id"
    };
}

pub(crate) use coupon_columns;

/// The columns [`coupon_of`] reads.
pub(crate) const COLUMNS: &str = coupon_columns!();

/// The statements both backends run as they are. Parameters are numbered in the order they
/// first appear, since that is how SQLite numbers `$N` (`sqlite::tests` holds each to it).
pub(crate) mod sql {
    pub(crate) const BY_CODE: &str = concat!(
        "SELECT ",
        coupon_columns!(),
        " FROM coupons WHERE code = $1"
    );
    /// The user's unredeemed, unexpired coupon of a type: no hoarding.
    pub(crate) const HELD: &str = concat!(
        "SELECT ",
        coupon_columns!(),
        " FROM coupons
         WHERE allocated_to = $1 AND type IS NOT DISTINCT FROM $2 AND uses = 0
           AND expires_at_ms > $3
         ORDER BY id LIMIT 1"
    );
    pub(crate) const ALLOCATE: &str = concat!(
        "UPDATE coupons SET allocated_to = $1, allocated_at_ms = $2
         WHERE id = $3 AND allocated_to IS NULL RETURNING ",
        coupon_columns!()
    );
    pub(crate) const RECORD_ALLOCATION: &str = "INSERT INTO coupon_allocations \
         (code, type, user_id, allocated_at_ms) VALUES ($1, $2, $3, $4)";
    /// SQLite's (one row per type); PostgreSQL adds to a slot of the type instead
    /// (`postgres::coupon::slots`), as with every `COUNT_*` and `UNCOUNT_*` here.
    pub(crate) const COUNT_ALLOCATED: &str =
        "UPDATE coupon_counters SET allocated = allocated + 1 WHERE type = $1";
    /// One use, if one is left (the table's CHECK stands behind the condition).
    pub(crate) const USE: &str = concat!(
        "UPDATE coupons SET uses = uses + 1 WHERE id = $1 AND uses < max_uses RETURNING ",
        coupon_columns!()
    );
    pub(crate) const RECORD_REDEMPTION: &str = "INSERT INTO coupon_redemptions \
         (code, type, user_id, redeemed_at_ms, order_id, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    /// A redemption an earlier call with the same key made (its coupon's row locked first).
    pub(crate) const REDEMPTION_BY_KEY: &str =
        "SELECT 1 FROM coupon_redemptions WHERE idempotency_key = $1";
    /// With the idempotency keys' purge: a redemption older than `$1` answers no retry.
    pub(crate) const FORGET_KEYS: &str = "UPDATE coupon_redemptions SET idempotency_key = NULL \
         WHERE idempotency_key IS NOT NULL AND redeemed_at_ms < $1";
    pub(crate) const COUNT_REDEEMED: &str =
        "UPDATE coupon_counters SET redeemed = redeemed + 1 WHERE type = $1";
    /// The order's redemptions, marked reversed: what is given back.
    pub(crate) const REVERSE_REDEMPTIONS: &str = "UPDATE coupon_redemptions \
         SET reversed_at_ms = $1 WHERE order_id = $2 AND reversed_at_ms IS NULL RETURNING code, type";
    pub(crate) const GIVE_USE_BACK: &str =
        "UPDATE coupons SET uses = uses - 1 WHERE code = $1 AND uses > 0";
    pub(crate) const UNCOUNT_REDEEMED: &str =
        "UPDATE coupon_counters SET redeemed = redeemed - 1 WHERE type = $1 AND redeemed > 0";
    pub(crate) const NEW_UPLOAD: &str =
        "INSERT INTO coupon_uploads (count, created_at_ms) VALUES ($1, $2) RETURNING id";
    pub(crate) const COUNT_CREATED: &str =
        "UPDATE coupon_counters SET created = created + $1 WHERE type = $2";
    pub(crate) const COUNT_PURGED: &str =
        "UPDATE coupon_counters SET purged = purged + $1 WHERE type = $2";
    pub(crate) const RECORD_PURGE: &str =
        "INSERT INTO coupon_purges (purged_at_ms, trigger, count) VALUES ($1, $2, $3)";
    /// Stored coupons past their expiry, per counters' key.
    pub(crate) const EXPIRED: &str = "SELECT coalesce(type, 'NONE'), count(*) FROM coupons \
         WHERE expires_at_ms <= $1 GROUP BY 1";
    /// Each type's counters, added up over its rows: one row per type on SQLite, a slot per
    /// row on PostgreSQL (`postgres::coupon`, migration 0031).
    pub(crate) const COUNTERS: &str = "SELECT type, CAST(SUM(created) AS BIGINT), \
         CAST(SUM(allocated) AS BIGINT), CAST(SUM(redeemed) AS BIGINT), \
         CAST(SUM(purged) AS BIGINT) FROM coupon_counters GROUP BY type";

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        BY_CODE,
        HELD,
        ALLOCATE,
        RECORD_ALLOCATION,
        COUNT_ALLOCATED,
        USE,
        RECORD_REDEMPTION,
        REDEMPTION_BY_KEY,
        FORGET_KEYS,
        COUNT_REDEEMED,
        REVERSE_REDEMPTIONS,
        GIVE_USE_BACK,
        UNCOUNT_REDEEMED,
        NEW_UPLOAD,
        COUNT_CREATED,
        COUNT_PURGED,
        RECORD_PURGE,
        EXPIRED,
        COUNTERS,
    ];
}

/// The row's id and its coupon, from a row of [`COLUMNS`].
pub(crate) fn coupon_of(r: &impl Columns) -> Result<(i64, Coupon), StorageError> {
    let count = |i| u32::try_from(r.int(i)?).map_err(|e| StorageError::Corrupt(e.to_string()));
    let id = r.int(10)?;
    Ok((
        id,
        Coupon {
            id,
            code: r.text(0)?,
            coupon_type: parse_type(r.opt_text(1)?)?,
            discount_kind: r.text(2)?,
            discount_amount: r.int(3)?,
            expires_at: UnixMillis::from_millis(r.int(4)?),
            max_uses: count(5)?,
            uses: count(6)?,
            allocated_to: r.opt_text(7)?,
            allocated_at: r.opt_int(8)?.map(UnixMillis::from_millis),
            created_at: UnixMillis::from_millis(r.int(9)?),
            bound_to: r.opt_int(11)?,
        },
    ))
}

pub(crate) fn parse_type(raw: Option<String>) -> Result<Option<CouponType>, StorageError> {
    raw.map(|t| CouponType::parse(&t).map_err(|e| StorageError::Corrupt(e.to_string())))
        .transpose()
}

/// The counters' keys, one per type and `NONE` for untyped coupons, in [`type_index`] order.
pub(crate) const TYPES: [&str; 4] = ["NONE", "FREE", "STANDARD", "MEGADEAL"];

const ALL_TYPES: [Option<CouponType>; 4] = [
    None,
    Some(CouponType::Free),
    Some(CouponType::Standard),
    Some(CouponType::Megadeal),
];

pub(crate) fn type_index(t: Option<CouponType>) -> usize {
    match t {
        None => 0,
        Some(CouponType::Free) => 1,
        Some(CouponType::Standard) => 2,
        Some(CouponType::Megadeal) => 3,
    }
}

/// The counters' key of a type.
pub(crate) fn type_key(t: Option<CouponType>) -> &'static str {
    TYPES[type_index(t)]
}

/// Counts per type, indexed by [`type_index`].
pub(crate) type PerType = [i64; 4];

/// Counts of a stored key (`NONE` for untyped) go to its type; unknown keys are left out.
pub(crate) fn add_by_key(per_type: &mut PerType, key: &str, n: i64) {
    if let Some(i) = TYPES.iter().position(|k| *k == key) {
        per_type[i] += n;
    }
}

/// Counts per type as the API answers them, every type in order.
pub(crate) fn by_type(per_type: &PerType) -> Vec<(Option<CouponType>, i64)> {
    ALL_TYPES
        .into_iter()
        .zip(per_type.iter().copied())
        .collect()
}

pub(crate) fn per_type_of(coupons: &[NewCoupon]) -> PerType {
    let mut per_type = [0; 4];
    for c in coupons {
        per_type[type_index(c.coupon_type)] += 1;
    }
    per_type
}

/// One row of [`sql::COUNTERS`], with the live count of expired coupons of its type.
pub(crate) fn counters_of(
    r: &impl Columns,
    expired: &PerType,
) -> Result<CouponCounters, StorageError> {
    let key = r.text(0)?;
    let i = TYPES.iter().position(|k| *k == key).unwrap_or(0);
    Ok(CouponCounters {
        coupon_type: if i == 0 { None } else { parse_type(Some(key))? },
        created: r.int(1)?,
        allocated: r.int(2)?,
        redeemed: r.int(3)?,
        expired: expired[i],
        purged: r.int(4)?,
    })
}

/// A redemption from a row of `id, code, type, user_id, redeemed_at_ms`.
pub(crate) fn redemption_of(r: &impl Columns) -> Result<Redemption, StorageError> {
    Ok(Redemption {
        id: r.int(0)?,
        code: r.text(1)?,
        coupon_type: parse_type(r.opt_text(2)?)?,
        user_id: r.text(3)?,
        redeemed_at: UnixMillis::from_millis(r.int(4)?),
    })
}

/// Counters in type order.
pub(crate) fn sort_counters(out: &mut [CouponCounters]) {
    out.sort_by_key(|c| type_index(c.coupon_type));
}

/// Whether `user` may redeem the coupon now (the domain's rule on the stored state).
pub(crate) fn may_redeem(c: &Coupon, user: &UserId, now: UnixMillis) -> Result<(), RedeemRefusal> {
    check_redeemable(&c.state(), user.as_str(), now)
}

/// The one summary event of an upload, never one per coupon.
pub(crate) fn uploaded_event(
    upload_id: i64,
    count: usize,
    per_type: &PerType,
    now: UnixMillis,
) -> NewEvent {
    let payload = serde_json::json!({
        "upload_id": upload_id,
        "count": count,
        "per_type": crate::event::counts_by_type(&TYPES, per_type),
    });
    NewEvent::api(EventType::CouponsUploaded, now, payload.to_string())
}

pub(crate) fn allocated_event(c: &Coupon, user: &UserId, now: UnixMillis) -> NewEvent {
    let payload = serde_json::json!({
        "code": c.code,
        "type": c.coupon_type.map(CouponType::as_str),
        "user_id": user.as_str(),
    });
    NewEvent::api(EventType::CouponAllocated, now, payload.to_string())
}

/// `CouponRedeemed`, with the coupon's uses after the redemption; `order` is the order the use
/// is for, if any.
pub(crate) fn redeemed_event(
    c: &Coupon,
    uses: i64,
    user: &str,
    order: Option<i64>,
    now: UnixMillis,
) -> NewEvent {
    let payload = serde_json::json!({
        "code": c.code,
        "type": c.coupon_type.map(CouponType::as_str),
        "user_id": user,
        "order_id": order,
        "uses": uses,
    });
    NewEvent::api(EventType::CouponRedeemed, now, payload.to_string())
}

/// `CouponRedemptionReversed`: `raw_type` is the type as stored with the redemption.
pub(crate) fn reversed_event(
    code: &str,
    raw_type: Option<&str>,
    order: i64,
    now: UnixMillis,
) -> NewEvent {
    let payload = serde_json::json!({"code": code, "type": raw_type, "order_id": order});
    NewEvent::api(
        EventType::CouponRedemptionReversed,
        now,
        payload.to_string(),
    )
}

/// `CouponsPurged` by the job or over the API; none when nothing was purged.
pub(crate) fn purged_event(per_type: &PerType, trigger: &str, now: UnixMillis) -> Option<NewEvent> {
    let total: i64 = per_type.iter().sum();
    if total == 0 {
        return None;
    }
    let actor = if trigger == "job" {
        ACTOR_COUPON_PURGE
    } else {
        ACTOR_API
    };
    let payload = serde_json::json!({
        "count": total,
        "per_type": crate::event::counts_by_type(&TYPES, per_type),
        "trigger": trigger,
    });
    Some(NewEvent::by(
        actor,
        EventType::CouponsPurged,
        now,
        payload.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_keys_go_both_ways() {
        for t in ALL_TYPES {
            let mut per_type = [0; 4];
            add_by_key(&mut per_type, type_key(t), 2);
            assert_eq!(per_type[type_index(t)], 2);
        }
        let mut per_type = [0; 4];
        add_by_key(&mut per_type, "UNKNOWN", 1);
        assert_eq!(per_type, [0; 4]);
    }

    #[test]
    fn a_purge_is_answered_per_type_and_logged_only_when_it_purged() {
        let per_type = [1, 0, 2, 0];
        assert_eq!(
            by_type(&per_type),
            vec![
                (None, 1),
                (Some(CouponType::Free), 0),
                (Some(CouponType::Standard), 2),
                (Some(CouponType::Megadeal), 0),
            ]
        );
        let by_job = purged_event(&per_type, "job", UnixMillis::from_millis(5)).unwrap();
        assert!(by_job.origin.is_some(), "the job is its actor");
        assert!(by_job.payload.contains("\"count\":3"));
        let by_api = purged_event(&per_type, "api", UnixMillis::from_millis(5)).unwrap();
        assert!(by_api.origin.is_none(), "the caller is its actor");
        assert!(purged_event(&[0; 4], "job", UnixMillis::from_millis(5)).is_none());
    }

    #[test]
    fn the_owner_may_redeem_while_uses_are_left() {
        let owner = UserId::parse("u1").unwrap();
        let other = UserId::parse("u2").unwrap();
        let coupon = Coupon {
            id: 1,
            code: "C1".to_owned(),
            coupon_type: Some(CouponType::Free),
            discount_kind: "percent".to_owned(),
            discount_amount: 10,
            expires_at: UnixMillis::from_millis(1_000),
            max_uses: 1,
            uses: 0,
            allocated_to: Some("u1".to_owned()),
            allocated_at: Some(UnixMillis::from_millis(1)),
            created_at: UnixMillis::from_millis(1),
            bound_to: None,
        };
        assert_eq!(
            may_redeem(&coupon, &owner, UnixMillis::from_millis(10)),
            Ok(())
        );
        assert!(may_redeem(&coupon, &other, UnixMillis::from_millis(10)).is_err());
        assert!(may_redeem(&coupon, &owner, UnixMillis::from_millis(1_000)).is_err());
    }
}
