//! Promotion holds written on PostgreSQL, batched.
//!
//! Every hold, redemption, release and rollback of a promotion locks the promotion's row
//! (its counters sit beside its limits) from its first statement until its commit. With one
//! transaction per request, the checkouts of one promotion take turns at one commit each (its
//! WAL flush included): some 270 a second here, whatever the number of clients. So each
//! instance gathers the hold writes that arrive while its previous batch commits and serves
//! them in one transaction, each request as it would be alone (the same statements, the same
//! rules, in arrival order) inside a savepoint, so that a refused request (stale, a code
//! taken, a hold not held) leaves nothing and the others stay. Nothing is answered before the
//! commit; a batch that fails is answered whole with its error.
//!
//! A batch is at most [`BATCH_MAX`] requests: each savepoint that writes is a subtransaction,
//! and past 64 of them in one transaction PostgreSQL's snapshots of every other session slow
//! down (the subtransaction cache overflows).

use async_trait::async_trait;
use tokio_postgres::Client;

use allot_domain::UnixMillis;

use super::batch::Batch;
use super::promotion::{
    Made, create_hold, hold_by_key, is_deadlock, redeem_hold_in, release_hold_in, roll_back_hold_in,
};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::origin::Origin;
use crate::promotion::{Hold, NewHold, PromotionRefusal};

/// Requests served in one transaction at most (see the module's note on subtransactions).
const BATCH_MAX: usize = 48;

/// Times a batch is served when PostgreSQL ends it as a deadlock's victim (its locks are
/// taken in each request's order, which across instances can cross).
const ATTEMPTS: usize = 3;

/// A write of a hold.
#[derive(Debug, Clone)]
pub(super) enum HoldWrite {
    Create(NewHold),
    Redeem {
        id: i64,
        reference: String,
        now: UnixMillis,
    },
    Release {
        id: i64,
        now: UnixMillis,
    },
    RollBack {
        id: i64,
        now: UnixMillis,
    },
}

/// Hold writes, served in batches (see [`super::batch`]).
pub(super) struct HoldWrites;

type Answer = Result<Result<Hold, PromotionRefusal>, StorageError>;

#[async_trait]
impl Batch for HoldWrites {
    type Request = HoldWrite;
    type Output = Result<Hold, PromotionRefusal>;
    const MAX: usize = BATCH_MAX;

    async fn serve(
        client: &mut Client,
        requests: &[HoldWrite],
        origins: &[Option<Origin>],
    ) -> Vec<Answer> {
        let mut attempt = 1;
        loop {
            let served = serve_once(client, requests, origins).await;
            match served {
                Err(e) if attempt < ATTEMPTS && is_deadlock(&e) => {
                    attempt += 1;
                }
                Err(e) => return requests.iter().map(|_| Err(e.for_each_caller())).collect(),
                Ok(answers) => return answers,
            }
        }
    }
}

/// One transaction for every request; an error of the transaction itself (not of one
/// request) fails the whole batch.
async fn serve_once(
    client: &mut Client,
    requests: &[HoldWrite],
    origins: &[Option<Origin>],
) -> Result<Vec<Answer>, StorageError> {
    let tx = client.transaction().await?;
    let mut answers = Vec::with_capacity(requests.len());
    for (request, origin) in requests.iter().zip(origins) {
        tx.batch_execute("SAVEPOINT hold_write").await?;
        let outcome = crate::origin::scope_opt(*origin, serve_one(&tx, request)).await;
        match outcome {
            Ok(Kept::Yes(hold)) => {
                tx.batch_execute("RELEASE SAVEPOINT hold_write").await?;
                answers.push(Ok(Ok(hold)));
            }
            Ok(Kept::No(answer)) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT hold_write; RELEASE SAVEPOINT hold_write")
                    .await?;
                let answer = match answer {
                    Undone::Refused(r) => Ok(Err(r)),
                    // Another instance made the hold of this key while this one decided: its
                    // hold is committed, and this statement sees it.
                    Undone::KeyTaken(key) => match hold_by_key(&tx, &key).await? {
                        Some(h) => Ok(Ok(h)),
                        None => Err(corrupt("a hold's key was taken by no hold")),
                    },
                };
                answers.push(answer);
            }
            // A deadlock ends the whole transaction's chances: the batch is served again.
            Err(e) if is_deadlock(&e) => return Err(e),
            Err(e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT hold_write; RELEASE SAVEPOINT hold_write")
                    .await?;
                answers.push(Err(e.for_each_caller()));
            }
        }
    }
    tx.commit().await?;
    Ok(answers)
}

/// What one request leaves: its writes kept (the hold as it is now), or undone.
enum Kept {
    Yes(Hold),
    No(Undone),
}

enum Undone {
    Refused(PromotionRefusal),
    KeyTaken(String),
}

async fn serve_one(
    tx: &tokio_postgres::Transaction<'_>,
    request: &HoldWrite,
) -> Result<Kept, StorageError> {
    let moved = match request {
        HoldWrite::Create(new) => {
            return Ok(match create_hold(tx, new).await? {
                Ok(Made::New(h) | Made::Replayed(h)) => Kept::Yes(h),
                Ok(Made::KeyTaken) => Kept::No(Undone::KeyTaken(
                    new.idempotency_key.clone().unwrap_or_default(),
                )),
                Err(refusal) => Kept::No(Undone::Refused(refusal)),
            });
        }
        HoldWrite::Redeem { id, reference, now } => {
            redeem_hold_in(tx, *id, reference, *now).await?
        }
        HoldWrite::Release { id, now } => release_hold_in(tx, *id, *now).await?,
        HoldWrite::RollBack { id, now } => roll_back_hold_in(tx, *id, *now).await?,
    };
    Ok(match moved {
        Ok(hold) => Kept::Yes(hold),
        Err(refusal) => Kept::No(Undone::Refused(refusal)),
    })
}
