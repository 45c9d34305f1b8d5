//! The invariant checker (issue 20): after any run, on either backend, what the database
//! holds must be a state the product promises. Each check is one query counting the rows that
//! break a promise; [`violations`] names every broken one, [`assert_invariants`] fails with
//! them all. Tests that storm, crash or cut the server end with it.
//!
//! - campaigns: `issued` equals the codes stored and never passes `total`; a code once per
//!   campaign; nobody past a campaign's per-user limit;
//! - discount codes: at most one live (not cancelled) order per code, and a live order's code
//!   is marked used;
//! - coupons: uses never past the maximum and equal to the redemptions not reversed; each
//!   type's `redeemed` counter equals them too;
//! - flash sales: `sold` equals the items sold and never passes the items; nobody past the
//!   per-user limit;
//! - stock: every level equals its ledger's sums, reserved equals the pending reservations, no
//!   level negative or reserved past on hand; a pending order's lines are held by pending
//!   reservations and no other order's are;
//! - payments: each payment's refunded amount equals its refunds, never past its capture;
//! - promotions: budgets and limits held, counters equal to their holds
//!   ([`crate::helpers::assert_promotion_invariants`]);
//! - the event log: numbered 1, 2, 3, ... without a gap.

use crate::helpers::AppDb;

/// The most items one user may buy in one sale (the default `sale_user_limit`).
pub const SALE_USER_LIMIT: i64 = 10;

/// Each promise as (what it says, a query counting the rows that break it).
fn checks(sale_user_limit: i64) -> Vec<(&'static str, String)> {
    vec![
        (
            "a campaign's issued count differs from its stored codes, or passes its total",
            "SELECT COUNT(*) FROM campaigns c
             WHERE c.issued <> (SELECT COUNT(*) FROM campaign_coupons k
                                WHERE k.campaign_id = c.id)
                OR c.issued > c.total"
                .to_owned(),
        ),
        (
            "a campaign code issued twice",
            "SELECT COUNT(*) FROM (SELECT campaign_id, code FROM campaign_coupons
                                   GROUP BY campaign_id, code HAVING COUNT(*) > 1) d"
                .to_owned(),
        ),
        (
            "a user past a campaign's per-user limit",
            "SELECT COUNT(*) FROM (
                 SELECT k.campaign_id, k.user_id FROM campaign_coupons k
                 JOIN campaigns c ON c.id = k.campaign_id
                 WHERE k.user_id IS NOT NULL AND c.per_user_limit IS NOT NULL
                 GROUP BY k.campaign_id, k.user_id, c.per_user_limit
                 HAVING COUNT(*) > c.per_user_limit) x"
                .to_owned(),
        ),
        (
            "a discount code used by two live orders",
            "SELECT COUNT(*) FROM (SELECT discount_code FROM orders
                                   WHERE discount_code IS NOT NULL AND status <> 'cancelled'
                                   GROUP BY discount_code HAVING COUNT(*) > 1) d"
                .to_owned(),
        ),
        (
            "a live order's discount code not marked used",
            "SELECT COUNT(*) FROM orders o JOIN discount_codes d ON d.code = o.discount_code
             WHERE o.status <> 'cancelled' AND d.used_at_ms IS NULL"
                .to_owned(),
        ),
        (
            "a coupon past its maximum uses, or whose uses differ from its redemptions",
            "SELECT COUNT(*) FROM coupons c
             WHERE c.uses > c.max_uses
                OR c.uses <> (SELECT COUNT(*) FROM coupon_redemptions r
                              WHERE r.code = c.code AND r.reversed_at_ms IS NULL)"
                .to_owned(),
        ),
        (
            "a coupon type's redeemed counter differs from its redemptions",
            "SELECT COUNT(*) FROM (SELECT type, SUM(redeemed) AS redeemed FROM coupon_counters
                                   GROUP BY type) k
             WHERE k.redeemed <> (SELECT COUNT(*) FROM coupon_redemptions r
                                  WHERE COALESCE(r.type, 'NONE') = k.type
                                    AND r.reversed_at_ms IS NULL)"
                .to_owned(),
        ),
        (
            "a sale whose sold count differs from its items sold, or passes its items",
            "SELECT COUNT(*) FROM sales s
             WHERE s.sold <> (SELECT COUNT(*) FROM sale_items i
                              WHERE i.sale_id = s.id AND i.sold_to IS NOT NULL)
                OR s.sold > s.items_total"
                .to_owned(),
        ),
        (
            "a user past the per-user limit of a sale",
            format!(
                "SELECT COUNT(*) FROM (SELECT sale_id, sold_to FROM sale_items
                                       WHERE sold_to IS NOT NULL GROUP BY sale_id, sold_to
                                       HAVING COUNT(*) > {sale_user_limit}) x"
            ),
        ),
        (
            "a stock level whose on hand or reserved differs from its ledger's sums",
            "SELECT COUNT(*) FROM stock_levels s LEFT JOIN (
                 SELECT product_id, warehouse_id, SUM(on_hand_delta) AS oh,
                        SUM(reserved_delta) AS rs
                 FROM stock_movements GROUP BY product_id, warehouse_id) m
               ON m.product_id = s.product_id AND m.warehouse_id = s.warehouse_id
             WHERE COALESCE(m.oh, 0) <> s.on_hand OR COALESCE(m.rs, 0) <> s.reserved"
                .to_owned(),
        ),
        (
            "a stock level whose reserved differs from its pending reservations",
            "SELECT COUNT(*) FROM stock_levels s LEFT JOIN (
                 SELECT product_id, warehouse_id, SUM(quantity) AS q FROM reservations
                 WHERE status = 'pending' GROUP BY product_id, warehouse_id) r
               ON r.product_id = s.product_id AND r.warehouse_id = s.warehouse_id
             WHERE COALESCE(r.q, 0) <> s.reserved"
                .to_owned(),
        ),
        (
            "a stock level negative, or reserving more than it has",
            "SELECT COUNT(*) FROM stock_levels
             WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand"
                .to_owned(),
        ),
        (
            "an order line whose reservation disagrees with its order (pending holds, others not)",
            "SELECT COUNT(*) FROM order_lines l JOIN orders o ON o.id = l.order_id
             JOIN reservations r ON r.id = l.reservation_id
             WHERE (o.status = 'pending') <> (r.status = 'pending')"
                .to_owned(),
        ),
        (
            "a payment whose refunded amount differs from its refunds, or passes its amount",
            "SELECT COUNT(*) FROM order_payments p
             WHERE p.refunded_minor > p.amount_minor
                OR p.refunded_minor <> (SELECT COALESCE(SUM(r.amount_minor), 0)
                                        FROM order_refunds r WHERE r.payment_id = p.id)"
                .to_owned(),
        ),
        (
            "the event log numbered with a gap",
            "SELECT COALESCE(MAX(seq), 0) - COUNT(seq) FROM events".to_owned(),
        ),
    ]
}

/// What breaks a promise in the database now: one line per broken promise with its count.
pub async fn violations(db: &AppDb, sale_user_limit: i64) -> Vec<String> {
    let mut broken = Vec::new();
    for (what, sql) in checks(sale_user_limit) {
        let n = db.count(&sql).await;
        if n != 0 {
            broken.push(format!("{what}: {n}"));
        }
    }
    broken
}

/// Every promise holds (with the default per-user sale limit); the promotions' too.
pub async fn assert_invariants(db: &AppDb) {
    assert_invariants_with(db, SALE_USER_LIMIT).await;
}

/// The same, for a server started with another `--sale-user-limit`.
pub async fn assert_invariants_with(db: &AppDb, sale_user_limit: i64) {
    let broken = violations(db, sale_user_limit).await;
    assert!(broken.is_empty(), "invariants broken: {broken:#?}");
    crate::helpers::assert_promotion_invariants(db).await;
}
