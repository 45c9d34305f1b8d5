//! Order creation on PostgreSQL, batched.
//!
//! One transaction per order (insert the order, lock the products' stock rows, write levels,
//! movements, reservations, lines, the coupon's use, the code's use, history: some 25
//! statements) holds the hot stock rows' locks for all of its round trips and its commit, so
//! orders of the same products take turns at one commit each. Here each instance gathers the
//! orders that arrive while its previous transaction commits and serves them together, in one
//! transaction with a handful of set-based statements: it reads the stored idempotency keys
//! and the products, locks every stock row of the batch's products (in (product, warehouse)
//! order, the order every operation locks stock rows in), then the coupons and discount codes
//! (each in id/code order), decides every order in arrival order in memory with
//! [`crate::order::decide_order`] (the rule SQLite calls too: the choice of warehouse, the
//! coupon's rules, the code's single use, the price), and writes what was accepted with one
//! statement per table. Nothing is answered before the commit. A refused order leaves nothing.
//!
//! Across instances the locks order the batches; an idempotency key another instance stores
//! meanwhile makes the orders insert store fewer rows (`ON CONFLICT DO NOTHING`): the batch is
//! rolled back and served again, and then replays that order.

use super::conn::{Conn, Db, Tx};
use std::collections::{BTreeMap, HashMap, HashSet};

use allot_domain::UnixMillis;
use allot_domain::event::{NewEvent, Origin};
use async_trait::async_trait;
use tokio_postgres::error::SqlState;

use super::batch::Batch;
use super::coupon;
use super::inventory::end_in;
use super::order::load;
use crate::StorageError;
use crate::catalog::corrupt;
use crate::event::{discount_used_event, order_created_event, order_updated_event};
use crate::inventory::{
    AlertStep, Balance, Change, alert_step, balance_from, product, warehouse_id,
};
use crate::order::sealed::{Created, Edited, NewOrder, Order};
use crate::order::{
    LineStep, ORDER_HOLD_UNTIL_MS, OrderFacts, OrderRefusal, OrderResult, StockRow, decide_edit,
    decide_order, hold_refusal, holder, inventory_refusal, priced_from, promotions_json,
};

/// Orders served in one transaction at most.
const BATCH_MAX: usize = 500;

/// Times one batch is served before its orders are answered with the error: again after an
/// idempotency key another instance stored meanwhile, or a deadlock.
const ATTEMPTS: usize = 4;

/// Order creates, served in batches (see [`super::batch`]).
pub(super) struct Creates;

/// The same error for each order of a failed batch.
fn each(e: &StorageError) -> StorageError {
    e.for_each_caller()
}

#[async_trait]
impl Batch for Creates {
    type Request = NewOrder;
    type Output = Result<Created, OrderRefusal>;
    const MAX: usize = BATCH_MAX;

    async fn serve(
        client: &mut Conn,
        orders: &[NewOrder],
        origins: &[Option<Origin>],
    ) -> Vec<OrderResult<Created>> {
        let orders: Vec<&NewOrder> = orders.iter().collect();
        let mut served = Err(StorageError::Closed);
        for _ in 0..ATTEMPTS {
            served = create_batch(client, &orders, origins).await;
            match &served {
                Ok(Served::Again) => continue,
                Err(StorageError::Postgres(e))
                    if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) =>
                {
                    continue;
                }
                _ => break,
            }
        }
        match served {
            Ok(Served::Done(outcomes)) => outcomes.into_iter().map(Ok).collect(),
            Ok(Served::Again) => {
                let e = StorageError::Busy(
                    "idempotency keys or promotion holds kept changing under the batch".to_owned(),
                );
                orders.iter().map(|_| Err(each(&e))).collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, orders = orders.len(), "order batch failed");
                orders.iter().map(|_| Err(each(&e))).collect()
            }
        }
    }
}

enum Served {
    /// Each order's answer, in arrival order; committed.
    Done(Vec<Result<Created, OrderRefusal>>),
    /// Another instance stored one of the batch's keys meanwhile, or changed a hold it
    /// consumes: rolled back, serve again.
    Again,
}

/// What an accepted order writes.
struct Accepted {
    id: i64,
    /// Its coupon, in [`OrderFacts::coupons`].
    coupon: Option<usize>,
    order: Order,
}

/// The facts the batch's orders are decided on, and what the accepted ones did to them.
struct State {
    facts: OrderFacts,
    /// Each stock row's time of the last order that reserved on it (its row is written).
    touched_at: Vec<Option<i64>>,
    /// The coupons an accepted order used (their rows are written).
    coupons_used: Vec<bool>,
}

/// `n` fresh values of `table`'s id sequence, ascending.
async fn draw_ids(tx: &Tx<'_>, table: &str, n: usize) -> Result<Vec<i64>, StorageError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut ids: Vec<i64> = tx
        .query(
            "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)",
            &[&table, &(n as i32)],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// Serves the orders, in arrival order, in one transaction.
async fn create_batch(
    client: &mut Conn,
    orders: &[&NewOrder],
    origins: &[Option<Origin>],
) -> Result<Served, StorageError> {
    let tx = client.transaction().await?;

    // 1. Keys stored before this batch: those orders are replays.
    let keys: Vec<&str> = orders
        .iter()
        .filter_map(|o| o.idempotency_key.as_ref().map(|k| k.as_str()))
        .collect();
    let mut stored: HashMap<String, i64> = HashMap::new();
    if !keys.is_empty() {
        for r in tx
            .query(
                "SELECT idempotency_key, id FROM orders WHERE idempotency_key = ANY($1)",
                &[&keys],
            )
            .await?
        {
            stored.insert(r.try_get(0)?, r.try_get(1)?);
        }
    }
    let fresh = |o: &&&NewOrder| {
        o.idempotency_key
            .as_ref()
            .is_none_or(|k| !stored.contains_key(k.as_str()))
    };

    // 2. to 5.: the facts, locked.
    let fresh_orders: Vec<&NewOrder> = orders.iter().filter(fresh).copied().collect();
    let facts = read_facts(&tx, &fresh_orders).await?;

    // 6. Every order in arrival order, decided in memory.
    let candidates = orders.iter().filter(fresh).count();
    let order_ids = draw_ids(&tx, "orders", candidates).await?;
    let line_count: usize = orders.iter().filter(fresh).map(|o| o.lines.len()).sum();
    let reservation_ids = draw_ids(&tx, "reservations", line_count).await?;
    let mut next_order = order_ids.into_iter();
    let mut next_reservation = reservation_ids.into_iter();
    let mut state = State {
        touched_at: vec![None; facts.stock.len()],
        coupons_used: vec![false; facts.coupons.len()],
        facts,
    };
    let mut answers: Vec<Option<Result<Created, OrderRefusal>>> = vec![None; orders.len()];
    let mut accepted: Vec<(usize, Accepted)> = Vec::new();
    // Keys this batch stored so far: the index in `accepted` of their order.
    let mut claimed: HashMap<&str, usize> = HashMap::new();
    let mut replays: Vec<(usize, i64)> = Vec::new();
    for (i, new) in orders.iter().enumerate() {
        let key = new.idempotency_key.as_ref().map(|k| k.as_str());
        if let Some(key) = key {
            if let Some(&id) = stored.get(key) {
                replays.push((i, id));
                continue;
            }
            if let Some(&a) = claimed.get(key) {
                answers[i] = Some(Ok(Created::Replayed(accepted[a].1.order.clone())));
                continue;
            }
        }
        let id = next_order
            .next()
            .ok_or_else(|| corrupt("too few order ids drawn"))?;
        let plan = match decide_order(&state.facts, new) {
            Ok(plan) => plan,
            Err(refusal) => {
                answers[i] = Some(Err(refusal));
                continue;
            }
        };
        let order = plan.order(id, new, &state.facts, &mut next_reservation)?;
        state.facts.take(&plan, new);
        for line in &plan.lines {
            state.touched_at[line.stock] = Some(new.now.as_millis());
        }
        let coupon = plan.coupon.map(|(c, _)| c);
        if let Some(c) = coupon {
            state.coupons_used[c] = true;
        }
        if let Some(key) = key {
            claimed.insert(key, accepted.len());
        }
        answers[i] = Some(Ok(Created::New(order.clone())));
        accepted.push((i, Accepted { id, coupon, order }));
    }
    for (i, id) in replays {
        let order = load(&tx, id)
            .await?
            .ok_or_else(|| corrupt("an order just found is missing"))?;
        answers[i] = Some(Ok(Created::Replayed(order)));
    }
    let answers = answers
        .into_iter()
        .map(|a| a.ok_or_else(|| corrupt("an order of the batch was not answered")))
        .collect::<Result<Vec<_>, _>>()?;
    if accepted.is_empty() {
        tx.rollback().await?;
        return Ok(Served::Done(answers));
    }

    // 7. The holds the accepted orders consume, redeemed in hold id order.
    let mut redeem: Vec<(i64, i64, UnixMillis)> = accepted
        .iter()
        .filter_map(|(i, a)| a.order.promotion_hold_id.map(|h| (h, a.id, orders[*i].now)))
        .collect();
    redeem.sort_unstable_by_key(|&(hold, _, _)| hold);
    for (hold, order, now) in redeem {
        let redeemed = super::promotion::redeem_hold_in(&tx, hold, &holder(order), now).await?;
        if redeemed.is_err() {
            tx.rollback().await?;
            return Ok(Served::Again);
        }
    }

    // 8. The accepted orders, one statement per table.
    if !write(&tx, orders, origins, &accepted, &state, None).await? {
        tx.rollback().await?;
        return Ok(Served::Again);
    }
    super::commit(tx).await?;
    Ok(Served::Done(answers))
}

/// What `orders` are decided on, read in `tx` with the locks the batch takes, in the order
/// every operation takes them: the products of every line; their stock rows in active
/// warehouses (locked in (product, warehouse) order); the coupons (locked in id order) and the
/// discount codes (in code order); the promotion holds they consume (read; redeemed, and
/// locked, when written).
async fn read_facts(tx: &Tx<'_>, orders: &[&NewOrder]) -> Result<OrderFacts, StorageError> {
    // 2. The products of every line.
    let mut product_ids: Vec<i64> = orders
        .iter()
        .flat_map(|o| o.lines.iter().map(|(p, _)| p.get()))
        .collect();
    product_ids.sort_unstable();
    product_ids.dedup();
    let mut facts = OrderFacts::default();
    let mut live = Vec::with_capacity(product_ids.len());
    if !product_ids.is_empty() {
        for r in tx
            .query(
                "SELECT id, sku, name, price_minor, currency, active FROM products
                 WHERE id = ANY($1) AND deleted_at_ms IS NULL",
                &[&product_ids],
            )
            .await?
        {
            let id: i64 = r.try_get(0)?;
            live.push(id);
            facts.add_product(id, priced_from(&r, 1)?);
        }
    }
    live.sort_unstable();

    // 3. Their stock rows in active warehouses, locked in (product, warehouse) order.
    if !live.is_empty() {
        for r in tx
            .query(
                "SELECT s.product_id, s.warehouse_id, s.on_hand, s.reserved,
                        s.reorder_threshold, s.low_alert_open
                 FROM stock_levels s JOIN warehouses w ON w.id = s.warehouse_id
                 WHERE s.product_id = ANY($1) AND w.active
                 ORDER BY s.product_id, s.warehouse_id FOR UPDATE OF s",
                &[&live],
            )
            .await?
        {
            facts.add_stock(StockRow {
                product: r.try_get(0)?,
                warehouse: warehouse_id(r.try_get(1)?)?,
                balance: balance_from(&r, 2)?,
            });
        }
    }

    // 4. The coupons and the discount codes, locked in id and code order.
    let mut coupon_codes: Vec<&str> = orders
        .iter()
        .filter_map(|o| o.coupon.as_ref().map(|c| c.as_str()))
        .collect();
    coupon_codes.sort_unstable();
    coupon_codes.dedup();
    if !coupon_codes.is_empty() {
        for r in tx
            .query(
                &format!(
                    "SELECT {} FROM coupons WHERE code = ANY($1) ORDER BY id FOR UPDATE",
                    coupon::COLUMNS
                ),
                &[&coupon_codes],
            )
            .await?
        {
            let (id, c) = coupon::coupon(&r)?;
            facts.add_coupon(id, c)?;
        }
    }
    let mut discount_codes: Vec<&str> = orders
        .iter()
        .filter_map(|o| o.discount_code.as_ref().map(|c| c.as_str()))
        .collect();
    discount_codes.sort_unstable();
    discount_codes.dedup();
    if !discount_codes.is_empty() {
        for r in tx
            .query(
                "SELECT code, used_at_ms IS NOT NULL FROM discount_codes
                 WHERE code = ANY($1) ORDER BY code FOR UPDATE",
                &[&discount_codes],
            )
            .await?
        {
            facts.add_code(r.try_get(0)?, r.try_get(1)?);
        }
    }

    // 5. The promotion holds the orders consume, in id order. They are redeemed (and locked)
    // in step 7: one changed meanwhile has the batch served again, on what it became.
    let mut hold_ids: Vec<i64> = orders.iter().filter_map(|o| o.promotion_hold).collect();
    hold_ids.sort_unstable();
    hold_ids.dedup();
    for id in hold_ids {
        if let Some(hold) = super::promotion::hold_in(tx, id).await? {
            facts.add_hold(hold);
        }
    }

    Ok(facts)
}

/// Writes the accepted orders and the state they leave; false if another instance stored one
/// of their idempotency keys meanwhile (nothing else is written then). `edited`: the one
/// accepted order is an edit of this stored order (its row updated, its lines already gone).
async fn write(
    tx: &Tx<'_>,
    orders: &[&NewOrder],
    origins: &[Option<Origin>],
    accepted: &[(usize, Accepted)],
    state: &State,
    edited: Option<&Order>,
) -> Result<bool, StorageError> {
    let mut o_id = Vec::new();
    let mut o_customer = Vec::new();
    let mut o_currency = Vec::new();
    let mut o_address = Vec::new();
    let mut o_subtotal = Vec::new();
    let mut o_coupon = Vec::new();
    let mut o_coupon_minor = Vec::new();
    let mut o_code = Vec::new();
    let mut o_code_minor = Vec::new();
    let mut o_total = Vec::new();
    let mut o_shipping = Vec::new();
    let mut o_shipping_discount = Vec::new();
    let mut o_promotion = Vec::new();
    let mut o_hold = Vec::new();
    let mut o_promotions = Vec::new();
    let mut o_key = Vec::new();
    let mut o_at = Vec::new();
    let mut l_order = Vec::new();
    let mut l_no = Vec::new();
    let mut l_product = Vec::new();
    let mut l_sku = Vec::new();
    let mut l_name = Vec::new();
    let mut l_quantity = Vec::new();
    let mut l_unit = Vec::new();
    let mut l_total = Vec::new();
    let mut l_warehouse = Vec::new();
    let mut l_reservation = Vec::new();
    let mut l_holder = Vec::new();
    let mut l_at = Vec::new();
    let mut r_code = Vec::new();
    let mut r_type = Vec::new();
    let mut r_user = Vec::new();
    let mut r_at = Vec::new();
    let mut r_order = Vec::new();
    let mut redeemed_per_type: BTreeMap<&str, i64> = BTreeMap::new();
    let mut d_code = Vec::new();
    let mut d_at = Vec::new();
    for (i, a) in accepted {
        let new = orders[*i];
        let o = &a.order;
        let at = new.now.as_millis();
        o_id.push(a.id);
        o_customer.push(o.customer.as_str());
        o_currency.push(o.currency.as_str());
        o_address.push(o.shipping_address.as_str());
        o_subtotal.push(o.subtotal_minor);
        o_coupon.push(o.coupon.as_ref().map(|c| c.code.as_str()));
        o_coupon_minor.push(o.coupon.as_ref().map(|c| c.amount_minor));
        o_code.push(o.discount_code.as_ref().map(|c| c.code.as_str()));
        o_code_minor.push(o.discount_code.as_ref().map(|c| c.amount_minor));
        // The column holds the goods' total; the order's adds the shipping (migration 0020).
        o_total.push(o.total_minor - o.shipping_minor + o.shipping_discount_minor);
        o_shipping.push(o.shipping_minor);
        o_shipping_discount.push(o.shipping_discount_minor);
        o_promotion.push(o.promotion_minor);
        o_hold.push(o.promotion_hold_id);
        o_promotions.push(promotions_json(&o.promotions));
        o_key.push(o.idempotency_key.as_deref());
        o_at.push(at);
        for (n, line) in o.lines.iter().enumerate() {
            l_order.push(a.id);
            l_no.push(n as i32);
            l_product.push(line.product_id.get());
            l_sku.push(line.sku.as_str());
            l_name.push(line.name.as_str());
            l_quantity.push(line.quantity);
            l_unit.push(line.unit_price_minor);
            l_total.push(line.line_total_minor);
            l_warehouse.push(line.warehouse_id.get());
            l_reservation.push(line.reservation_id);
            l_holder.push(holder(a.id));
            l_at.push(at);
        }
        if let Some(c) = a.coupon {
            let c = &state.facts.coupons[c].coupon;
            let t = c.coupon_type.map(|t| t.as_str());
            r_code.push(c.code.as_str());
            r_type.push(t);
            r_user.push(new.customer.as_str());
            r_at.push(at);
            r_order.push(a.id);
            *redeemed_per_type
                .entry(coupon::TYPES[coupon::type_index(c.coupon_type)])
                .or_default() += 1;
        }
        if let Some(code) = &new.discount_code {
            d_code.push(code.as_str());
            d_at.push(at);
        }
    }
    if edited.is_some() {
        let changed = tx
            .execute(
                "UPDATE orders o SET currency = $2, shipping_address_enc = $3,
                        subtotal_minor = $4, coupon_code = $5, coupon_minor = $6,
                        discount_code = $7, discount_minor = $8, total_minor = $9,
                        updated_at_ms = $10, shipping_minor = $11,
                        shipping_discount_minor = $12, promotion_minor = $13,
                        promotion_hold_id = $14, promotions = $15
                 WHERE o.id = $1",
                &[
                    &o_id[0],
                    &o_currency[0],
                    &o_address[0],
                    &o_subtotal[0],
                    &o_coupon[0],
                    &o_coupon_minor[0],
                    &o_code[0],
                    &o_code_minor[0],
                    &o_total[0],
                    &o_at[0],
                    &o_shipping[0],
                    &o_shipping_discount[0],
                    &o_promotion[0],
                    &o_hold[0],
                    &o_promotions[0],
                ],
            )
            .await?;
        if changed != 1 {
            return Err(corrupt("an order being edited is missing"));
        }
    }
    let inserted = if edited.is_some() {
        o_id.len() as u64
    } else {
        tx.execute(
            "INSERT INTO orders (id, customer, status, currency, shipping_address_enc, subtotal_minor,
                                 coupon_code, coupon_minor, discount_code, discount_minor,
                                 total_minor, idempotency_key, created_at_ms, updated_at_ms,
                                 shipping_minor, shipping_discount_minor, promotion_minor,
                                 promotion_hold_id, promotions)
             OVERRIDING SYSTEM VALUE
             SELECT id, customer, 'pending', currency, address, subtotal, coupon, coupon_minor,
                    code, code_minor, total, key, at, at, shipping, shipping_discount,
                    promotion, hold, promotions
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                         $6::text[], $7::bigint[], $8::text[], $9::bigint[], $10::bigint[],
                         $11::text[], $12::bigint[], $13::bigint[], $14::bigint[],
                         $15::bigint[], $16::bigint[], $17::text[])
                  AS u(id, customer, currency, address, subtotal, coupon, coupon_minor, code,
                       code_minor, total, key, at, shipping, shipping_discount, promotion,
                       hold, promotions)
             ON CONFLICT (idempotency_key) DO NOTHING",
            &[
                &o_id,
                &o_customer,
                &o_currency,
                &o_address,
                &o_subtotal,
                &o_coupon,
                &o_coupon_minor,
                &o_code,
                &o_code_minor,
                &o_total,
                &o_key,
                &o_at,
                &o_shipping,
                &o_shipping_discount,
                &o_promotion,
                &o_hold,
                &o_promotions,
            ],
        )
        .await?
    };
    if inserted != o_id.len() as u64 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO reservations (id, product_id, warehouse_id, quantity, holder, status,
                                   expires_at_ms, created_at_ms, updated_at_ms)
         OVERRIDING SYSTEM VALUE
         SELECT id, p, w, q, h, 'pending', $6, at, at
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
                     $7::bigint[]) AS u(id, p, w, q, h, at)",
        &[
            &l_reservation,
            &l_product,
            &l_warehouse,
            &l_quantity,
            &l_holder,
            &ORDER_HOLD_UNTIL_MS,
            &l_at,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity,
                                  unit_price_minor, line_total_minor, warehouse_id,
                                  reservation_id)
         SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $5::text[],
                              $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
                              $10::bigint[])",
        &[
            &l_order,
            &l_no,
            &l_product,
            &l_sku,
            &l_name,
            &l_quantity,
            &l_unit,
            &l_total,
            &l_warehouse,
            &l_reservation,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO stock_movements (product_id, warehouse_id, kind, on_hand_delta,
                                      reserved_delta, reservation_id, reason, at_ms)
         SELECT p, w, 'reservation', 0, q, r, NULL, at
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[])
              AS u(p, w, q, r, at)",
        &[&l_product, &l_warehouse, &l_quantity, &l_reservation, &l_at],
    )
    .await?;
    if edited.is_none() {
        tx.execute(
            "INSERT INTO order_status_history (order_id, from_status, to_status, reason,
                                               warehouse_id, at_ms)
             SELECT id, NULL, 'pending', NULL, NULL, at
             FROM unnest($1::bigint[], $2::bigint[]) AS u(id, at)",
            &[&o_id, &o_at],
        )
        .await?;
    }

    // The stock rows the batch reserved on: final balances and alerts.
    let mut s_product = Vec::new();
    let mut s_warehouse = Vec::new();
    let mut s_reserved = Vec::new();
    let mut s_open = Vec::new();
    let mut s_at = Vec::new();
    // Alerts raised: product, warehouse, available, threshold, time.
    let mut raise: [Vec<i64>; 5] = Default::default();
    let mut clear: (Vec<i64>, Vec<i64>, Vec<i64>) = Default::default();
    for (s, at) in state.facts.stock.iter().zip(&state.touched_at) {
        let Some(at) = *at else { continue };
        let b = &s.balance;
        // The batch's final balance against the alert as it was before the batch.
        let step = alert_step(b, b.on_hand, b.reserved);
        match step {
            AlertStep::Raise {
                available,
                threshold,
            } => {
                raise[0].push(s.product);
                raise[1].push(s.warehouse.get());
                raise[2].push(available);
                raise[3].push(threshold);
                raise[4].push(at);
            }
            AlertStep::Clear { .. } => {
                clear.0.push(s.product);
                clear.1.push(s.warehouse.get());
                clear.2.push(at);
            }
            AlertStep::Keep { .. } => {}
        }
        let open = step.open_after();
        s_product.push(s.product);
        s_warehouse.push(s.warehouse.get());
        s_reserved.push(b.reserved);
        s_open.push(open);
        s_at.push(at);
    }
    tx.execute(
        "UPDATE stock_levels s SET reserved = u.reserved, low_alert_open = u.open,
                updated_at_ms = u.at
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bool[], $5::bigint[])
              AS u(p, w, reserved, open, at)
         WHERE s.product_id = u.p AND s.warehouse_id = u.w",
        &[&s_product, &s_warehouse, &s_reserved, &s_open, &s_at],
    )
    .await?;
    if !clear.0.is_empty() {
        tx.execute(
            "UPDATE stock_alerts a SET cleared_at_ms = u.at
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(p, w, at)
             WHERE a.product_id = u.p AND a.warehouse_id = u.w AND a.cleared_at_ms IS NULL",
            &[&clear.0, &clear.1, &clear.2],
        )
        .await?;
    }
    if !raise[0].is_empty() {
        tx.execute(
            "INSERT INTO stock_alerts (product_id, warehouse_id, available, threshold,
                                       raised_at_ms)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bigint[])",
            &[&raise[0], &raise[1], &raise[2], &raise[3], &raise[4]],
        )
        .await?;
    }

    // Coupons' uses, their redemptions and counters; the discount codes.
    if !r_code.is_empty() {
        let (c_id, c_uses): (Vec<i64>, Vec<i32>) = state
            .facts
            .coupons
            .iter()
            .zip(&state.coupons_used)
            .filter(|(_, used)| **used)
            .map(|(c, _)| (c.id, c.coupon.uses as i32))
            .unzip();
        tx.execute(
            "UPDATE coupons c SET uses = u.uses
             FROM unnest($1::bigint[], $2::int[]) AS u(id, uses) WHERE c.id = u.id",
            &[&c_id, &c_uses],
        )
        .await?;
        tx.execute(
            "INSERT INTO coupon_redemptions (code, type, user_id, redeemed_at_ms, order_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])",
            &[&r_code, &r_type, &r_user, &r_at, &r_order],
        )
        .await?;
        let (t_type, t_count): (Vec<&str>, Vec<i64>) = redeemed_per_type.into_iter().unzip();
        let counted = tx
            .execute(coupon::slots::COUNT_REDEEMED_MANY, &[&t_type, &t_count])
            .await?;
        if counted != t_type.len() as u64 {
            return Err(corrupt("a coupon type's counter slot is missing"));
        }
    }
    if !d_code.is_empty() {
        tx.execute(
            "UPDATE discount_codes d SET used_at_ms = u.at
             FROM unnest($1::text[], $2::bigint[]) AS u(code, at) WHERE d.code = u.code",
            &[&d_code, &d_at],
        )
        .await?;
    }
    let events = batch_events(orders, origins, accepted, state, edited)?;
    super::event::append_events(tx, &events).await?;
    Ok(true)
}

/// The batch's events, order by order in arrival order, as the one-order path writes them:
/// each line's `InventoryReserved` (with the balance after it) and the threshold it reaches,
/// the coupon's `CouponRedeemed`, the code's `DiscountCodeUsed`, then `OrderCreated`; alerts
/// the batch clears come last.
fn batch_events(
    orders: &[&NewOrder],
    origins: &[Option<Origin>],
    accepted: &[(usize, Accepted)],
    state: &State,
    edited: Option<&Order>,
) -> Result<Vec<NewEvent>, StorageError> {
    let stock = &state.facts.stock;
    let row_of: HashMap<(i64, i64), usize> = stock
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.product, s.warehouse.get()), i))
        .collect();
    // The balances before the batch: the final ones less what the batch reserved.
    let mut reserved: Vec<i64> = stock.iter().map(|s| s.balance.reserved).collect();
    let mut uses: Vec<u32> = state.facts.coupons.iter().map(|c| c.coupon.uses).collect();
    for (_, a) in accepted {
        for l in &a.order.lines {
            let row = row_of
                .get(&(l.product_id.get(), l.warehouse_id.get()))
                .ok_or_else(|| corrupt("an order line's stock row is not in the batch"))?;
            reserved[*row] -= l.quantity;
        }
        if let Some(c) = a.coupon {
            uses[c] -= 1;
        }
    }
    let mut raised: HashSet<usize> = HashSet::new();
    let mut events = Vec::new();
    let mut origin = None;
    for (i, a) in accepted {
        let new = orders[*i];
        let now = new.now;
        let first = events.len();
        // In product order, the order the one-order path reserves and writes them in (an
        // order's products are distinct).
        let mut lines: Vec<_> = a.order.lines.iter().collect();
        lines.sort_unstable_by_key(|l| l.product_id);
        for l in lines {
            let row = row_of[&(l.product_id.get(), l.warehouse_id.get())];
            let s = &stock[row];
            let b = &s.balance;
            let before = Balance {
                reserved: reserved[row],
                alert_open: b.alert_open || raised.contains(&row),
                ..*b
            };
            let change = Change::reservation(l.quantity, l.reservation_id);
            events.push(change.event(l.product_id, l.warehouse_id, &before, now));
            reserved[row] += l.quantity;
            let step = alert_step(&before, b.on_hand, reserved[row]);
            if let AlertStep::Raise { .. } = step
                && raised.insert(row)
                && let Some(event) = step.event(l.product_id, l.warehouse_id, now)
            {
                events.push(event);
            }
        }
        if let Some(c) = a.coupon {
            uses[c] += 1;
            let coupon = &state.facts.coupons[c].coupon;
            events.push(crate::coupon::redeemed_event(
                coupon,
                i64::from(uses[c]),
                new.customer.as_str(),
                Some(a.id),
                now,
            ));
        }
        if let Some(code) = &new.discount_code {
            events.push(discount_used_event(code.as_str(), Some(a.id), now));
        }
        events.push(match edited {
            Some(before) => order_updated_event(before, &a.order, now),
            None => order_created_event(&a.order),
        });
        // Each order's events are made by its own caller.
        origin = origins[*i];
        for e in &mut events[first..] {
            e.origin = e.origin.or(origin);
        }
    }
    for (s, at) in stock.iter().zip(&state.touched_at) {
        let Some(at) = *at else { continue };
        let b = &s.balance;
        let step = alert_step(b, b.on_hand, b.reserved);
        if let AlertStep::Clear { .. } = step
            && let Some(event) = step.event(
                product(s.product)?,
                s.warehouse,
                UnixMillis::from_millis(at),
            )
        {
            // Cleared by the batch as a whole: recorded as made by its last order's caller.
            events.push(event.made_by(origin));
        }
    }
    Ok(events)
}

/// Edits a pending order in one transaction (see [`crate::OrderStore::edit_order`]), served
/// again after a deadlock.
pub(super) async fn edit(
    client: &mut Conn,
    id: i64,
    new: &NewOrder,
) -> Result<Result<Edited, OrderRefusal>, StorageError> {
    let mut last = StorageError::Closed;
    for _ in 0..ATTEMPTS {
        match edit_once(client, id, new).await {
            Err(e) if super::promotion::is_deadlock(&e) => last = e,
            other => return other,
        }
    }
    Err(last)
}

/// The edit: the order's row locked, then every stock row of its old and new lines in
/// (product, warehouse) order, then the old and new coupons in id order and codes in code
/// order (the order the batch and status changes take them in); what the order holds undone
/// by the cancel rule; the new content decided by [`decide_order`] and written by the batch's
/// own writer as an update of the same order. Dropping the transaction undoes a refusal.
async fn edit_once(
    client: &mut Conn,
    id: i64,
    new: &NewOrder,
) -> Result<Result<Edited, OrderRefusal>, StorageError> {
    let now = new.now;
    let tx = client.transaction().await?;
    let locked = tx
        .query_opt("SELECT id FROM orders WHERE id = $1 FOR UPDATE", &[&id])
        .await?;
    let before = match locked {
        Some(_) => load(&tx, id).await?,
        None => None,
    };
    let Some(before) = before else {
        return Ok(Err(OrderRefusal::OrderNotFound));
    };
    let undo = match decide_edit(&before, now)? {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mut products: Vec<i64> = before
        .lines
        .iter()
        .map(|l| l.product_id.get())
        .chain(new.lines.iter().map(|(p, _)| p.get()))
        .collect();
    products.sort_unstable();
    products.dedup();
    tx.query(
        "SELECT 1 FROM stock_levels WHERE product_id = ANY($1)
         ORDER BY product_id, warehouse_id FOR UPDATE",
        &[&products],
    )
    .await?;
    let coupons: Vec<&str> = before
        .coupon
        .iter()
        .map(|c| c.code.as_str())
        .chain(new.coupon.iter().map(|c| c.as_str()))
        .collect();
    if !coupons.is_empty() {
        tx.query(
            "SELECT 1 FROM coupons WHERE code = ANY($1) ORDER BY id FOR UPDATE",
            &[&coupons],
        )
        .await?;
    }
    let mut codes: Vec<&str> = before
        .discount_code
        .iter()
        .map(|c| c.code.as_str())
        .chain(new.discount_code.iter().map(|c| c.as_str()))
        .collect();
    codes.sort_unstable();
    if !codes.is_empty() {
        tx.query(
            "SELECT 1 FROM discount_codes WHERE code = ANY($1) ORDER BY code FOR UPDATE",
            &[&codes],
        )
        .await?;
    }
    for step in &undo.steps {
        if let LineStep::End {
            reservation, how, ..
        } = *step
            && let Err(r) = end_in(&tx, reservation, how, now).await?
        {
            return Ok(Err(inventory_refusal(r, step.product())?));
        }
    }
    coupon::give_back(&tx, id, now).await?;
    if let Some(code) = &before.discount_code {
        super::discount::give_back(&tx, &code.code, id, now).await?;
    }
    if let Some(hold) = before.promotion_hold_id
        && let Err(refusal) = super::promotion::roll_back_hold_in(&tx, hold, now).await?
    {
        return Err(corrupt(format!(
            "order {id} could not roll back its promotion hold {hold}: {refusal:?}"
        )));
    }
    tx.execute("DELETE FROM order_lines WHERE order_id = $1", &[&id])
        .await?;
    let facts = read_facts(&tx, &[new]).await?;
    let plan = match decide_order(&facts, new) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let reservations = draw_ids(&tx, "reservations", new.lines.len()).await?;
    let order = plan.order(id, new, &facts, &mut reservations.into_iter())?;
    let mut state = State {
        touched_at: vec![None; facts.stock.len()],
        coupons_used: vec![false; facts.coupons.len()],
        facts,
    };
    state.facts.take(&plan, new);
    for line in &plan.lines {
        state.touched_at[line.stock] = Some(now.as_millis());
    }
    let coupon = plan.coupon.map(|(c, _)| c);
    if let Some(c) = coupon {
        state.coupons_used[c] = true;
    }
    if let Some(hold) = plan.hold
        && let Err(refusal) = super::promotion::redeem_hold_in(&tx, hold, &holder(id), now).await?
    {
        return Ok(Err(OrderRefusal::PromotionHoldUnusable(hold_refusal(
            refusal,
        ))));
    }
    let accepted = [(0, Accepted { id, coupon, order })];
    write(&tx, &[new], &[None], &accepted, &state, Some(&before)).await?;
    let after = load(&tx, id)
        .await?
        .ok_or_else(|| corrupt("an order just edited is missing"))?;
    super::commit(tx).await?;
    Ok(Ok(Edited { before, after }))
}
