//! Discount codes' part of the storage interface: the trait, the record, and what both
//! backends decide alike (how many draws a batch may take, what a failed use means, the
//! events), so that each backend keeps only its I/O.

use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_domain::event::{EventType, NewEvent};
use allot_domain::user::IdempotencyKey;
use async_trait::async_trait;

use crate::StorageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountCodeRecord {
    pub code: DiscountCode,
    pub created_at: UnixMillis,
    pub used_at: Option<UnixMillis>,
}

/// A batch of codes: made now, or by an earlier call with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedBatch {
    pub codes: Vec<DiscountCode>,
    /// The batch an earlier call with the same key made: nothing was made now.
    pub replayed: bool,
}

#[async_trait]
pub trait DiscountStore {
    /// Creates `count` new codes of `length` in one all-or-nothing batch. Codes are drawn from a
    /// cryptographically secure generator; one that collides with any code ever stored is
    /// drawn again, so a collision never fails the call.
    ///
    /// With `key` (already owned by its caller: [`IdempotencyKey::owned_by`]), the batch keeps
    /// the key and its codes in its own transaction, and a call with a key a batch already has
    /// answers that batch's codes and makes nothing, whatever it asks for (as orders do): a
    /// retry after a crash between the commit and the answer gets the first batch, never a
    /// second one.
    async fn generate_discount_codes(
        &self,
        length: CodeLength,
        count: GenerateCount,
        now: UnixMillis,
        key: Option<IdempotencyKey>,
    ) -> Result<GeneratedBatch, StorageError>;

    /// Marks the code used if it exists and is unused. Atomic: of any number of concurrent
    /// calls for one code exactly one gets [`UseOutcome::Used`].
    async fn use_discount_code(
        &self,
        code: &DiscountCode,
        now: UnixMillis,
    ) -> Result<UseOutcome, StorageError>;

    async fn discount_code(
        &self,
        code: &DiscountCode,
    ) -> Result<Option<DiscountCodeRecord>, StorageError>;
}

/// The statements both backends run as they are. Parameters are numbered in the order they
/// first appear, since that is how SQLite numbers `$N` (`sqlite::tests` holds each to it).
pub(crate) mod sql {
    /// No row when the key (`$4`, NULL for none) belongs to a batch already: its codes are the
    /// answer then ([`BATCH_BY_KEY`]). On PostgreSQL a concurrent call with the same key waits
    /// here until the first commits (or rolls back, and then this one inserts).
    pub(crate) const NEW_BATCH: &str = "INSERT INTO discount_code_batches \
         (length, count, created_at_ms, idempotency_key) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id";
    pub(crate) const BATCH_BY_KEY: &str =
        "SELECT codes FROM discount_code_batches WHERE idempotency_key = $1";
    /// A keyed batch's codes, for its retries ([`super::kept_codes`]).
    pub(crate) const KEEP_CODES: &str = "UPDATE discount_code_batches SET codes = $1 WHERE id = $2";
    /// With the idempotency keys' purge: a batch older than `$1` answers no retry any more.
    pub(crate) const FORGET_KEYS: &str = "UPDATE discount_code_batches \
         SET idempotency_key = NULL, codes = NULL \
         WHERE idempotency_key IS NOT NULL AND created_at_ms < $1";
    pub(crate) const EXISTS: &str = "SELECT 1 FROM discount_codes WHERE code = $1";
    /// Unused again: an order that used the code was cancelled.
    pub(crate) const GIVE_BACK: &str =
        "UPDATE discount_codes SET used_at_ms = NULL WHERE code = $1";
    pub(crate) const RECORD: &str = "SELECT b.created_at_ms, c.used_at_ms FROM discount_codes c \
         JOIN discount_code_batches b ON b.id = c.batch_id WHERE c.code = $1";

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        NEW_BATCH,
        BATCH_BY_KEY,
        KEEP_CODES,
        FORGET_KEYS,
        EXISTS,
        GIVE_BACK,
        RECORD,
    ];
}

/// Draws allowed per requested code before giving up. With 32^7 codes a collision is rare
/// (about 40 per 10 million draws at 8 symbols), so hitting this bound means the code space is
/// close to full, which an operator must hear about rather than loop forever.
const DRAWS_PER_CODE_MAX: usize = 16;

/// The draws of one generated batch: how many codes the next round draws, within the bound.
pub(crate) struct Draws {
    count: usize,
    length: CodeLength,
    drawn: usize,
}

impl Draws {
    pub(crate) fn new(count: GenerateCount, length: CodeLength) -> Self {
        Draws {
            count: count.get() as usize,
            length,
            drawn: 0,
        }
    }

    /// Codes the batch holds when it is full.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// How many codes to draw next, `found` being stored so far: none once the batch is full;
    /// an error once the bound of draws would be passed.
    pub(crate) fn next(&mut self, found: usize) -> Result<usize, StorageError> {
        let wanted = self.count.saturating_sub(found);
        if wanted == 0 {
            return Ok(0);
        }
        if self.drawn + wanted > self.count * DRAWS_PER_CODE_MAX {
            return Err(StorageError::Corrupt(format!(
                "{} draws found only {found} unused codes of length {}: the code space is nearly full",
                self.drawn,
                self.length.get()
            )));
        }
        self.drawn += wanted;
        Ok(wanted)
    }

    /// Draws `wanted` codes in key order: neighbouring keys share b-tree pages, so sorted
    /// inserts walk the index once instead of jumping around it.
    pub(crate) fn draw(&self, wanted: usize) -> Vec<DiscountCode> {
        let mut rng = rand::rng();
        let mut drawn: Vec<DiscountCode> = (0..wanted)
            .map(|_| DiscountCode::generate(&mut rng, self.length))
            .collect();
        drawn.sort_unstable();
        drawn
    }

    /// The batch's one summary event (never one per code); logs the collisions redrawn.
    pub(crate) fn finished(&self, batch_id: i64, now: UnixMillis) -> NewEvent {
        if self.drawn > self.count {
            tracing::info!(
                collisions = self.drawn - self.count,
                "discount code collisions redrawn"
            );
        }
        let payload = serde_json::json!({
            "batch_id": batch_id,
            "count": self.count,
            "length": self.length.get(),
        });
        NewEvent::api(EventType::DiscountCodesGenerated, now, payload.to_string())
    }
}

/// A keyed batch's codes as its row keeps them: one space between codes.
pub(crate) fn kept_codes(codes: &[DiscountCode]) -> String {
    let mut kept = String::with_capacity(codes.len() * 9);
    for code in codes {
        if !kept.is_empty() {
            kept.push(' ');
        }
        kept.push_str(code.as_str());
    }
    kept
}

/// The answer to a retry of a keyed batch: the codes its row keeps
/// ([`sql::BATCH_BY_KEY`]; `None`: the key's batch keeps no codes, which its own transaction
/// rules out).
pub(crate) fn replayed(
    key: &IdempotencyKey,
    kept: Option<String>,
) -> Result<GeneratedBatch, StorageError> {
    let kept = kept.ok_or_else(|| {
        StorageError::Corrupt(format!(
            "the batch of key {:?} keeps no codes",
            key.as_str()
        ))
    })?;
    let codes = kept
        .split(' ')
        .map(|c| {
            DiscountCode::parse(c)
                .map_err(|e| StorageError::Corrupt(format!("kept code {c:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(GeneratedBatch {
        codes,
        replayed: true,
    })
}

/// What a use that changed nothing means: the code exists (used already) or it does not.
pub(crate) fn not_used(exists: bool) -> UseOutcome {
    if exists {
        UseOutcome::AlreadyUsed
    } else {
        UseOutcome::Invalid
    }
}

/// `DiscountCodeReturned`: an order that used the code was cancelled.
pub(crate) fn returned_event(code: &str, order: i64, at: UnixMillis) -> NewEvent {
    let payload = serde_json::json!({"code": code, "order_id": order});
    NewEvent::api(EventType::DiscountCodeReturned, at, payload.to_string())
}

pub(crate) fn record(
    code: &DiscountCode,
    created_ms: i64,
    used_ms: Option<i64>,
) -> DiscountCodeRecord {
    DiscountCodeRecord {
        code: code.clone(),
        created_at: UnixMillis::from_millis(created_ms),
        used_at: used_ms.map(UnixMillis::from_millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stop_at_the_bound_and_when_full() {
        let count = GenerateCount::parse(2).unwrap();
        let length = CodeLength::parse(8).unwrap();
        let mut draws = Draws::new(count, length);
        assert_eq!(draws.next(0).unwrap(), 2);
        assert_eq!(draws.next(2).unwrap(), 0);
        // Every later round draws one that collides: 2 + 30 draws make the bound of 32.
        for _ in 0..30 {
            assert_eq!(draws.next(1).unwrap(), 1);
        }
        assert!(draws.next(1).is_err());
    }

    #[test]
    fn a_use_that_changed_nothing_tells_used_from_unknown() {
        assert_eq!(not_used(true), UseOutcome::AlreadyUsed);
        assert_eq!(not_used(false), UseOutcome::Invalid);
    }
}
