//! Promotions on postgres. (Implementation in progress: see issue 16.)

use allot_domain::UnixMillis;
use allot_domain::promotion::{PromotionId, Usage};
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::promotion::{
    Binding, Hold, NewHold, NewPromotion, PromotionQuery, PromotionResult, PromotionStore,
    ResolvedCode, StoredPromotion,
};

#[async_trait]
impl PromotionStore for PgStore {
    async fn create_promotion(&self, new: NewPromotion) -> Result<StoredPromotion, StorageError> {
        let _ = new;
        todo!()
    }

    async fn update_promotion(
        &self,
        id: PromotionId,
        new: NewPromotion,
    ) -> PromotionResult<StoredPromotion> {
        let _ = (id, new);
        todo!()
    }

    async fn promotion(&self, id: PromotionId) -> Result<Option<StoredPromotion>, StorageError> {
        let _ = id;
        todo!()
    }

    async fn promotions(
        &self,
        query: PromotionQuery,
    ) -> Result<Vec<StoredPromotion>, StorageError> {
        let _ = query;
        todo!()
    }

    async fn promotions_generation(&self) -> Result<i64, StorageError> {
        todo!()
    }

    async fn active_automatic_promotions(&self) -> Result<Vec<StoredPromotion>, StorageError> {
        todo!()
    }

    async fn bind_codes(&self, id: PromotionId, binding: Binding) -> PromotionResult<u64> {
        let _ = (id, binding);
        todo!()
    }

    async fn resolve_codes(
        &self,
        codes: &[String],
        customer: Option<&str>,
        now: UnixMillis,
    ) -> Result<Vec<ResolvedCode>, StorageError> {
        let _ = (codes, customer, now);
        todo!()
    }

    async fn promotion_usage(
        &self,
        ids: &[PromotionId],
        customer: Option<&str>,
    ) -> Result<Vec<Usage>, StorageError> {
        let _ = (ids, customer);
        todo!()
    }

    async fn customer_orders(&self, customer: &str) -> Result<u64, StorageError> {
        let _ = customer;
        todo!()
    }

    async fn create_hold(&self, hold: NewHold) -> PromotionResult<Hold> {
        let _ = hold;
        todo!()
    }

    async fn hold(&self, id: i64) -> Result<Option<Hold>, StorageError> {
        let _ = id;
        todo!()
    }

    async fn release_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold> {
        let _ = (id, now);
        todo!()
    }

    async fn redeem_hold(
        &self,
        id: i64,
        reference: String,
        now: UnixMillis,
    ) -> PromotionResult<Hold> {
        let _ = (id, reference, now);
        todo!()
    }

    async fn roll_back_hold(&self, id: i64, now: UnixMillis) -> PromotionResult<Hold> {
        let _ = (id, now);
        todo!()
    }

    async fn expire_holds(&self, now: UnixMillis, limit: u32) -> Result<u64, StorageError> {
        let _ = (now, limit);
        todo!()
    }

    async fn promotion_holds(
        &self,
        id: PromotionId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Hold>, StorageError> {
        let _ = (id, before, limit);
        todo!()
    }
}

/// The hold, read in the caller's transaction (an order's).
pub(super) async fn hold_in(
    tx: &tokio_postgres::Transaction<'_>,
    id: i64,
) -> Result<Option<Hold>, StorageError> {
    let _ = (tx, id);
    todo!()
}

/// Redeems the held, unexpired hold for `reference` in the caller's transaction.
pub(super) async fn redeem_hold_in(
    tx: &tokio_postgres::Transaction<'_>,
    id: i64,
    reference: &str,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    let _ = (tx, id, reference, now);
    todo!()
}

/// Rolls the redeemed hold back, exactly once, in the caller's transaction.
pub(super) async fn roll_back_hold_in(
    tx: &tokio_postgres::Transaction<'_>,
    id: i64,
    now: UnixMillis,
) -> PromotionResult<Hold> {
    let _ = (tx, id, now);
    todo!()
}
