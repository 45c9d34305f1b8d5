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

use super::conn::{Conn, Db, Tx};
use std::collections::{BTreeMap, HashMap};

use allot_domain::UnixMillis;
use allot_domain::promotion::PromotionId;
use async_trait::async_trait;

use super::batch::Batch;
use super::promotion::{
    LOCK_AND_READ_PROMOTIONS, Made, create_hold, hold_by_key, is_deadlock, load_hold, locked_state,
    pid, redeem_hold_in, release_hold_in, roll_back_hold_in,
};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::origin::Origin;
use crate::promotion::rules::{self, Deltas, PromotionState};
use crate::promotion::{Hold, NewHold, PromotionRefusal, Totals, hold_event};
use crate::row::Columns;

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
        client: &mut Conn,
        requests: &[HoldWrite],
        origins: &[Option<Origin>],
    ) -> Vec<Answer> {
        let mut attempt = 1;
        loop {
            let served = serve_once(client, requests, origins).await;
            match served {
                Err(e) if attempt < ATTEMPTS && is_deadlock(&e) => attempt += 1,
                Ok(None) if attempt < ATTEMPTS => attempt += 1,
                Ok(None) => {
                    let e = StorageError::Busy(
                        "idempotency keys stored by another instance at once".into(),
                    );
                    return requests.iter().map(|_| Err(e.for_each_caller())).collect();
                }
                Err(e) => return requests.iter().map(|_| Err(e.for_each_caller())).collect(),
                Ok(Some(answers)) => return answers,
            }
        }
    }
}

/// One transaction for every request; an error of the transaction itself (not of one
/// request) fails the whole batch. `None`: another instance stored an idempotency key of the
/// batch meanwhile; the batch is served again (and then replays that hold).
async fn serve_once(
    client: &mut Conn,
    requests: &[HoldWrite],
    origins: &[Option<Origin>],
) -> Result<Option<Vec<Answer>>, StorageError> {
    let tx = client.transaction().await?;
    let mut answers: Vec<Option<Answer>> = requests.iter().map(|_| None).collect();
    // New holds without codes (automatic promotions, the hot path) are decided together:
    // a handful of statements for the whole batch.
    let plain = plain_creates(requests);
    if !plain.is_empty() {
        match create_together(&tx, requests, origins, &plain).await? {
            Some(made) => {
                for (i, answer) in made {
                    answers[i] = Some(answer);
                }
            }
            None => return Ok(None),
        }
    }
    // The rest, one at a time, each in a savepoint of its own.
    if answers.iter().any(Option::is_none) {
        tx.batch_execute("SAVEPOINT hold_write").await?;
    }
    for (i, (request, origin)) in requests.iter().zip(origins).enumerate() {
        if answers[i].is_some() {
            continue;
        }
        let outcome = crate::origin::scope_opt(*origin, serve_one(&tx, request)).await;
        let answer = match outcome {
            Ok(Kept::Yes(hold)) => {
                tx.batch_execute("RELEASE SAVEPOINT hold_write; SAVEPOINT hold_write")
                    .await?;
                Ok(Ok(hold))
            }
            Ok(Kept::No(undone)) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT hold_write").await?;
                match undone {
                    Undone::Refused(r) => Ok(Err(r)),
                    // Another instance made the hold of this key while this one decided:
                    // its hold is committed, and this statement sees it.
                    Undone::KeyTaken(key) => match hold_by_key(&tx, &key).await? {
                        Some(h) => Ok(Ok(h)),
                        None => Err(corrupt("a hold's key was taken by no hold")),
                    },
                }
            }
            // A deadlock ends the whole transaction's chances: the batch is served again.
            Err(e) if is_deadlock(&e) => return Err(e),
            Err(e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT hold_write").await?;
                Err(e.for_each_caller())
            }
        };
        answers[i] = Some(answer);
    }
    super::commit(tx).await?;
    Ok(Some(
        answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(StorageError::Closed)))
            .collect(),
    ))
}

/// The requests served together: new holds spending no code, each idempotency key once in
/// the batch (a repeat is served after, alone, and replays the first).
fn plain_creates(requests: &[HoldWrite]) -> Vec<usize> {
    let mut keys = std::collections::HashSet::new();
    requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            HoldWrite::Create(new)
                if new.promotions.iter().all(|p| p.code.is_none())
                    && new
                        .idempotency_key
                        .as_ref()
                        .is_none_or(|k| keys.insert(k.clone())) =>
            {
                Some(i)
            }
            _ => None,
        })
        .collect()
}

const HOLD_IDS_OF_KEYS: &str =
    "SELECT id, idempotency_key FROM promotion_holds WHERE idempotency_key = ANY($1)";
const NEXT_HOLD_IDS: &str = "SELECT nextval(pg_get_serial_sequence('promotion_holds', 'id')) FROM generate_series(1, $1::BIGINT)";
const LOCK_CUSTOMERS_OF_BATCH: &str = "SELECT c.promotion_id, c.customer, c.redeemed_minor,
            c.redemptions, c.held_minor, c.held
     FROM promotion_customers c
     JOIN unnest($1::BIGINT[], $2::TEXT[]) AS k (promotion_id, customer)
       ON c.promotion_id = k.promotion_id AND c.customer = k.customer
     ORDER BY c.promotion_id, c.customer FOR UPDATE OF c";
const INSERT_HOLDS: &str = "INSERT INTO promotion_holds
         (id, customer, currency, cart_fingerprint, evaluation, discount_minor,
          shipping_discount_minor, idempotency_key, created_at_ms, expires_at_ms, updated_at_ms,
          status, reference)
     OVERRIDING SYSTEM VALUE
     SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                          $6::BIGINT[], $7::BIGINT[], $8::TEXT[], $9::BIGINT[], $10::BIGINT[],
                          $9::BIGINT[], $11::TEXT[], $12::TEXT[])
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id";
const INSERT_ITEMS: &str = "INSERT INTO promotion_hold_items
         (hold_id, position, promotion_id, code, source, amount_minor)
     SELECT h, p, pr, NULL, NULL, a
     FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) AS t (h, p, pr, a)";
const ENSURE_CUSTOMERS: &str =
    "INSERT INTO promotion_customers (promotion_id, customer, budget_minor, redemptions_max)
     SELECT p.id, k.customer, p.per_customer_budget_minor, p.per_customer_redemptions_max
     FROM unnest($1::BIGINT[], $2::TEXT[]) AS k (promotion_id, customer)
     JOIN promotions p ON p.id = k.promotion_id
     ON CONFLICT (promotion_id, customer) DO NOTHING";
const MOVE_PROMOTIONS: &str = "UPDATE promotions p
     SET held_minor = p.held_minor + d.held_minor, held = p.held + d.held,
         redeemed_minor = p.redeemed_minor + d.redeemed_minor,
         redemptions = p.redemptions + d.redemptions
     FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])
          AS d (id, held_minor, held, redeemed_minor, redemptions)
     WHERE p.id = d.id";
const MOVE_CUSTOMERS: &str = "UPDATE promotion_customers c
     SET held_minor = c.held_minor + d.held_minor, held = c.held + d.held,
         redeemed_minor = c.redeemed_minor + d.redeemed_minor,
         redemptions = c.redemptions + d.redemptions
     FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[],
                 $6::BIGINT[]) AS d (promotion_id, customer, held_minor, held, redeemed_minor,
                                     redemptions)
     WHERE c.promotion_id = d.promotion_id AND c.customer = d.customer";

/// New holds without codes (`plain`, indexes into `requests`), decided together in `tx`:
/// replays of stored keys read back; the promotions' rows locked in id order and the
/// customers' rows after them (as a single hold locks them), every hold decided in arrival
/// order by [`rules::check_hold`] on the usage the earlier ones left, and what was accepted
/// written with one statement per table. `None`: a key was stored by another instance
/// meanwhile.
async fn create_together(
    tx: &Tx<'_>,
    requests: &[HoldWrite],
    origins: &[Option<Origin>],
    plain: &[usize],
) -> Result<Option<Vec<(usize, Answer)>>, StorageError> {
    let new = |i: usize| match &requests[i] {
        HoldWrite::Create(n) => Some(n),
        _ => None,
    };
    let mut out = Vec::with_capacity(plain.len());
    let keys: Vec<&str> = plain
        .iter()
        .filter_map(|&i| new(i).and_then(|n| n.idempotency_key.as_deref()))
        .collect();
    let mut stored: HashMap<String, i64> = HashMap::new();
    if !keys.is_empty() {
        for r in tx.query(HOLD_IDS_OF_KEYS, &[&keys]).await? {
            stored.insert(r.text(1)?, r.int(0)?);
        }
    }
    let mut todo = Vec::with_capacity(plain.len());
    for &i in plain {
        let Some(n) = new(i) else { continue };
        match n.idempotency_key.as_ref().and_then(|k| stored.get(k)) {
            Some(&id) => match load_hold(tx, id).await? {
                Some(h) => out.push((i, Ok(Ok(h)))),
                None => out.push((i, Err(corrupt("a stored key's hold is missing")))),
            },
            None => todo.push((i, n)),
        }
    }

    let mut ids: Vec<i64> = todo
        .iter()
        .flat_map(|(_, n)| n.promotions.iter().map(|p| p.promotion.get()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut states: BTreeMap<PromotionId, PromotionState> = BTreeMap::new();
    if !ids.is_empty() {
        for r in tx.query(LOCK_AND_READ_PROMOTIONS, &[&ids]).await? {
            states.insert(pid(r.int(0)?)?, locked_state(&r)?);
        }
    }
    let mut pairs: Vec<(i64, String)> = todo
        .iter()
        .filter_map(|(_, n)| n.customer.as_ref().map(|c| (n, c)))
        .flat_map(|(n, c)| {
            n.promotions
                .iter()
                .map(move |p| (p.promotion.get(), c.clone()))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut customers: HashMap<(i64, String), Totals> = HashMap::new();
    if !pairs.is_empty() {
        let (p, c): (Vec<i64>, Vec<String>) = pairs.iter().cloned().unzip();
        for r in tx.query(LOCK_CUSTOMERS_OF_BATCH, &[&p, &c]).await? {
            customers.insert(
                (r.int(0)?, r.text(1)?),
                Totals {
                    redeemed_minor: r.int(2)?,
                    redemptions: r.int(3)?,
                    held_minor: r.int(4)?,
                    held: r.int(5)?,
                },
            );
        }
    }

    // Each hold in arrival order, on what the earlier ones left.
    let mut accepted: Vec<(usize, &NewHold)> = Vec::with_capacity(todo.len());
    for (i, n) in todo {
        let customer = n.customer.as_deref();
        let mut own: BTreeMap<PromotionId, Option<PromotionState>> = BTreeMap::new();
        for item in &n.promotions {
            let state = states.get(&item.promotion).map(|s| PromotionState {
                customer: customer.and_then(|c| {
                    customers
                        .get(&(item.promotion.get(), c.to_owned()))
                        .copied()
                }),
                ..*s
            });
            own.insert(item.promotion, state);
        }
        if let Err(refusal) = rules::check_hold(&n.promotions, own, customer.is_some()) {
            out.push((i, Ok(Err(refusal))));
            continue;
        }
        let (_, made) = n.made();
        for item in &n.promotions {
            let d = made.deltas(item.amount_minor);
            if let Some(s) = states.get_mut(&item.promotion) {
                crate::promotion::add(&mut s.totals, &d);
            }
            if let Some(c) = customer {
                let t = customers
                    .entry((item.promotion.get(), c.to_owned()))
                    .or_default();
                crate::promotion::add(t, &d);
            }
        }
        accepted.push((i, n));
    }
    if accepted.is_empty() {
        return Ok(Some(out));
    }

    let hold_ids: Vec<i64> = tx
        .query(NEXT_HOLD_IDS, &[&(accepted.len() as i64)])
        .await?
        .iter()
        .map(|r| r.int(0))
        .collect::<Result<_, _>>()?;
    if hold_ids.len() != accepted.len() {
        return Err(corrupt("the hold id sequence gave too few ids"));
    }
    let col = |f: &dyn Fn(&NewHold) -> Option<String>| -> Vec<Option<String>> {
        accepted.iter().map(|(_, n)| f(n)).collect()
    };
    let customers_col = col(&|n| n.customer.clone());
    let currencies = col(&|n| Some(n.currency.clone()));
    let fingerprints = col(&|n| Some(n.cart_fingerprint.clone()));
    let evaluations = col(&|n| Some(n.evaluation.clone()));
    let keys_col = col(&|n| n.idempotency_key.clone());
    let statuses = col(&|n| Some(n.made().0.as_str().to_owned()));
    let references = col(&|n| n.redeem_for.clone());
    let discounts: Vec<i64> = accepted.iter().map(|(_, n)| n.discount_minor).collect();
    let shipping: Vec<i64> = accepted
        .iter()
        .map(|(_, n)| n.shipping_discount_minor)
        .collect();
    let nows: Vec<i64> = accepted.iter().map(|(_, n)| n.now.as_millis()).collect();
    let expiries: Vec<i64> = accepted
        .iter()
        .map(|(_, n)| n.expires_at.as_millis())
        .collect();
    let inserted = tx
        .query(
            INSERT_HOLDS,
            &[
                &hold_ids,
                &customers_col,
                &currencies,
                &fingerprints,
                &evaluations,
                &discounts,
                &shipping,
                &keys_col,
                &nows,
                &expiries,
                &statuses,
                &references,
            ],
        )
        .await?;
    if inserted.len() != accepted.len() {
        return Ok(None);
    }

    let (mut item_holds, mut positions, mut item_promotions, mut amounts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut moved: BTreeMap<i64, Deltas> = BTreeMap::new();
    let mut moved_customers: BTreeMap<(i64, String), Deltas> = BTreeMap::new();
    for ((_, n), id) in accepted.iter().zip(&hold_ids) {
        let (_, made) = n.made();
        for (position, item) in n.promotions.iter().enumerate() {
            item_holds.push(*id);
            positions.push(position as i64);
            item_promotions.push(item.promotion.get());
            amounts.push(item.amount_minor);
            let d = made.deltas(item.amount_minor);
            sum(moved.entry(item.promotion.get()).or_default(), &d);
            if let Some(c) = &n.customer {
                sum(
                    moved_customers
                        .entry((item.promotion.get(), c.clone()))
                        .or_default(),
                    &d,
                );
            }
        }
    }
    if !item_holds.is_empty() {
        tx.execute(
            INSERT_ITEMS,
            &[&item_holds, &positions, &item_promotions, &amounts],
        )
        .await?;
    }
    if !moved_customers.is_empty() {
        let (p, c): (Vec<i64>, Vec<String>) = moved_customers.keys().cloned().unzip();
        tx.execute(ENSURE_CUSTOMERS, &[&p, &c]).await?;
        let d: Vec<&Deltas> = moved_customers.values().collect();
        let [a, b, e, f] = columns(&d);
        tx.execute(MOVE_CUSTOMERS, &[&p, &c, &a, &b, &e, &f])
            .await?;
    }
    if !moved.is_empty() {
        let p: Vec<i64> = moved.keys().copied().collect();
        let d: Vec<&Deltas> = moved.values().collect();
        let [a, b, e, f] = columns(&d);
        tx.execute(MOVE_PROMOTIONS, &[&p, &a, &b, &e, &f]).await?;
    }

    let mut events = Vec::with_capacity(accepted.len());
    for ((i, n), id) in accepted.iter().zip(&hold_ids) {
        let (status, made) = n.made();
        let hold = Hold {
            id: *id,
            status,
            customer: n.customer.clone(),
            currency: n.currency.clone(),
            cart_fingerprint: n.cart_fingerprint.clone(),
            promotions: n.promotions.clone(),
            evaluation: n.evaluation.clone(),
            discount_minor: n.discount_minor,
            shipping_discount_minor: n.shipping_discount_minor,
            idempotency_key: n.idempotency_key.clone(),
            reference: n.redeem_for.clone(),
            created_at: n.now,
            expires_at: n.expires_at,
            updated_at: n.now,
        };
        if let Some(kind) = crate::promotion::move_event(made) {
            events.push(hold_event(kind, &hold).made_by(origins[*i]));
        }
        out.push((*i, Ok(Ok(hold))));
    }
    super::event::append_events(tx, &events).await?;
    Ok(Some(out))
}

fn sum(total: &mut Deltas, d: &Deltas) {
    total.held_minor += d.held_minor;
    total.held += d.held;
    total.redeemed_minor += d.redeemed_minor;
    total.redemptions += d.redemptions;
}

/// The counters' columns of `d`: held money, held, redeemed money, redemptions.
fn columns(d: &[&Deltas]) -> [Vec<i64>; 4] {
    [
        d.iter().map(|d| d.held_minor).collect(),
        d.iter().map(|d| d.held).collect(),
        d.iter().map(|d| d.redeemed_minor).collect(),
        d.iter().map(|d| d.redemptions).collect(),
    ]
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

async fn serve_one(tx: &Tx<'_>, request: &HoldWrite) -> Result<Kept, StorageError> {
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
