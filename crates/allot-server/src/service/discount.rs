//! One-time discount codes: generate in batches, use once.

use std::sync::Arc;

use allot_domain::Clock;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::user::IdempotencyKey;
use allot_storage::{DiscountCodeRecord, GeneratedBatch, Store};

use crate::ServiceError;

pub struct DiscountCodes {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl DiscountCodes {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        DiscountCodes { store, clock }
    }

    /// Creates a batch of new codes, durably, all or nothing. With an idempotency key (the
    /// caller's, kept per caller), a retry answers the first batch and makes nothing.
    pub async fn generate(
        &self,
        count: GenerateCount,
        length: CodeLength,
        key: Option<IdempotencyKey>,
    ) -> Result<GeneratedBatch, ServiceError> {
        let key = key.map(|k| k.owned_by(&super::idempotency_owner()));
        let batch = self
            .store
            .generate_discount_codes(length, count, self.clock.now(), key)
            .await?;
        if !batch.replayed {
            metrics::counter!("allot_discount_codes_generated_total")
                .increment(batch.codes.len() as u64);
        }
        tracing::debug!(
            op = "discount.generate",
            count = batch.codes.len(),
            length = length.get(),
            replayed = batch.replayed
        );
        Ok(batch)
    }

    /// Uses a code once. Input is trimmed and upper-cased; a malformed code is `Invalid`
    /// without touching storage.
    pub async fn use_code(&self, raw: &str) -> Result<UseOutcome, ServiceError> {
        let outcome = match DiscountCode::parse(raw) {
            Err(_) => UseOutcome::Invalid,
            Ok(code) => {
                self.store
                    .use_discount_code(&code, self.clock.now())
                    .await?
            }
        };
        let label = match outcome {
            UseOutcome::Used => "used",
            UseOutcome::Invalid => "invalid",
            UseOutcome::AlreadyUsed => "already_used",
        };
        metrics::counter!("allot_discount_code_uses_total", "outcome" => label).increment(1);
        Ok(outcome)
    }

    pub async fn get(&self, raw: &str) -> Result<DiscountCodeRecord, ServiceError> {
        let code = DiscountCode::parse(raw).map_err(|_| ServiceError::NotFound {
            what: "discount code",
        })?;
        self.store
            .discount_code(&code)
            .await?
            .ok_or(ServiceError::NotFound {
                what: "discount code",
            })
    }
}
