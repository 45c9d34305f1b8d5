//! The checker's event half (issue 20): "the event log gapless, each change's events exactly
//! once". [`crate::told::assert_told`] reads the log with the rows its events stand for, in one
//! snapshot ([`Logged::read`]), and [`Logged::findings`] names every change whose events are
//! not there exactly once:
//!
//! - **per write the clients were told about**: a write the database holds as done (each
//!   acknowledged one, each unknown one resolved as done) has its event(s) exactly once, and
//!   they name what the client was given (its code, id); a write refused or not sent has none;
//!   an unresolved one at most one;
//! - **per row of the database**: each row of a change that writes one event per row has
//!   exactly one event naming it, and no event names a row that is not there (the event of a
//!   change rolled back), across the whole log, workload or not.
//!
//! What the workload's writes append (docs/EVENTS.md): an issue `CouponIssued`; a batch one
//! `DiscountCodesGenerated` (a summary, with the count); a use `DiscountCodeUsed`; a coupon
//! request `CouponAllocated`; a redemption `CouponRedeemed`; an order `InventoryReserved` for
//! its line's reservation (its `InventoryThresholdReached`, if a reorder point is set: none in
//! the workload) and `OrderCreated`; a checkout `SaleCheckout`; a purchase `SalePurchased`.

use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::AppDb;
use crate::told::{Op, Record, Told};

/// One event: its type and payload.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub payload: Value,
}

/// Each kind of change that writes one event per row: the event type(s), the rows' keys as a
/// query (one text column), and the same key made from an event's payload (`None`: the event
/// stands for no row of this table).
struct Pairing {
    what: &'static str,
    rows: &'static str,
    key: fn(&Event) -> Option<String>,
}

/// A field of a payload as text (`""` for null), the same as `CAST(x AS TEXT)` of its column.
fn field(e: &Event, name: &str) -> String {
    match &e.payload[name] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn of(e: &Event, kinds: &[&str], fields: &[&str]) -> Option<String> {
    kinds.contains(&e.kind.as_str()).then(|| {
        fields
            .iter()
            .map(|f| field(e, f))
            .collect::<Vec<_>>()
            .join("|")
    })
}

/// The stock movements' events (one per row of the ledger, docs/EVENTS.md "Inventory").
const MOVEMENTS: [&str; 6] = [
    "InventoryAdjusted",
    "InventoryReserved",
    "InventoryReleased",
    "InventoryConfirmed",
    "InventoryExpired",
    "InventoryRestocked",
];
const MOVEMENT: [&str; 6] = [
    "movement",
    "product_id",
    "warehouse_id",
    "reservation_id",
    "on_hand_delta",
    "reserved_delta",
];
/// The ledger's rows, keyed as [`MOVEMENT`] keys their events.
const MOVEMENT_ROWS: &str = "SELECT kind || '|' || CAST(product_id AS TEXT) || '|' || \
     CAST(warehouse_id AS TEXT) || '|' || COALESCE(CAST(reservation_id AS TEXT), '') || '|' || \
     CAST(on_hand_delta AS TEXT) || '|' || CAST(reserved_delta AS TEXT) FROM stock_movements";
/// The same, of the movements that change on hand (each followed by `InventoryChanged`).
const CHANGED_ROWS: &str = "SELECT kind || '|' || CAST(product_id AS TEXT) || '|' || \
     CAST(warehouse_id AS TEXT) || '|' || COALESCE(CAST(reservation_id AS TEXT), '') || '|' || \
     CAST(on_hand_delta AS TEXT) || '|' || CAST(reserved_delta AS TEXT) FROM stock_movements \
     WHERE kind IN ('adjustment', 'stock_in', 'stock_out')";

fn pairings() -> Vec<Pairing> {
    vec![
        Pairing {
            what: "CouponIssued per campaign code (campaign_coupons)",
            rows: "SELECT CAST(campaign_id AS TEXT) || '|' || code FROM campaign_coupons",
            key: |e| of(e, &["CouponIssued"], &["campaign_id", "code"]),
        },
        Pairing {
            what: "DiscountCodesGenerated per batch (discount_code_batches)",
            rows: "SELECT CAST(id AS TEXT) || '|' || CAST(count AS TEXT)
                   FROM discount_code_batches",
            key: |e| of(e, &["DiscountCodesGenerated"], &["batch_id", "count"]),
        },
        Pairing {
            what: "CouponAllocated per allocation (coupon_allocations)",
            rows: "SELECT code || '|' || user_id FROM coupon_allocations",
            key: |e| of(e, &["CouponAllocated"], &["code", "user_id"]),
        },
        Pairing {
            what: "CouponRedeemed per redemption (coupon_redemptions)",
            rows: "SELECT code || '|' || user_id FROM coupon_redemptions",
            key: |e| of(e, &["CouponRedeemed"], &["code", "user_id"]),
        },
        Pairing {
            what: "CouponRedemptionReversed per reversed redemption (coupon_redemptions)",
            rows: "SELECT code || '|' || COALESCE(CAST(order_id AS TEXT), '')
                   FROM coupon_redemptions WHERE reversed_at_ms IS NOT NULL",
            key: |e| of(e, &["CouponRedemptionReversed"], &["code", "order_id"]),
        },
        Pairing {
            what: "OrderCreated per order (orders)",
            rows: "SELECT CAST(id AS TEXT) || '|' || customer FROM orders",
            key: |e| of(e, &["OrderCreated"], &["order_id", "customer"]),
        },
        Pairing {
            what: "SaleCheckout per checkout code (sale_checkouts)",
            rows: "SELECT code || '|' || CAST(sale_id AS TEXT) || '|' || CAST(item_id AS TEXT)
                   || '|' || user_id FROM sale_checkouts",
            // The design checkout's (with `items_count`) puts an item on a basket instead.
            key: |e| match e.payload.get("items_count") {
                Some(_) => None,
                None => of(
                    e,
                    &["SaleCheckout"],
                    &["code", "sale_id", "item_id", "user_id"],
                ),
            },
        },
        Pairing {
            what: "SalePurchased per item sold (sale_items)",
            rows: "SELECT CAST(sale_id AS TEXT) || '|' || CAST(id AS TEXT) || '|' || sold_to
                   FROM sale_items WHERE sold_to IS NOT NULL",
            key: |e| of(e, &["SalePurchased"], &["sale_id", "item_id", "user_id"]),
        },
        Pairing {
            what: "a movement's event per row of the ledger (stock_movements)",
            rows: MOVEMENT_ROWS,
            key: |e| of(e, &MOVEMENTS, &MOVEMENT),
        },
        Pairing {
            what: "InventoryChanged per movement of on hand (stock_movements)",
            rows: CHANGED_ROWS,
            key: |e| of(e, &["InventoryChanged"], &MOVEMENT),
        },
    ]
}

/// The log and the rows its events stand for, read in one snapshot.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Every event, numbered or not yet (PostgreSQL numbers committed events on the next read).
    pub events: Vec<Event>,
    /// Per pairing (in [`pairings`] order), the rows' keys.
    rows: Vec<Vec<String>>,
    /// Each discount code's batch.
    batch_of_code: HashMap<String, String>,
    /// Each discount code: used or not.
    code_used: HashMap<String, bool>,
    /// Each order's reservations (of its lines).
    reservations_of_order: HashMap<String, Vec<String>>,
}

impl Logged {
    /// Reads the log and the rows; call it inside [`AppDb::begin_snapshot`] so that the two
    /// agree (a job may write meanwhile).
    pub async fn read(db: &AppDb) -> Logged {
        let events = db
            .strings("SELECT type || '|' || CAST(payload AS TEXT) FROM events")
            .await
            .into_iter()
            .map(|row| {
                let (kind, payload) = row.split_once('|').expect("type|payload");
                Event {
                    kind: kind.to_owned(),
                    payload: serde_json::from_str(payload).expect("a JSON payload"),
                }
            })
            .collect();
        let mut rows = Vec::new();
        for p in pairings() {
            rows.push(db.strings(p.rows).await);
        }
        let split = |row: String| {
            let (a, b) = row.split_once('|').expect("a|b");
            (a.to_owned(), b.to_owned())
        };
        let mut batch_of_code = HashMap::new();
        let mut code_used = HashMap::new();
        for row in db
            .strings(
                "SELECT code || '|' || CAST(batch_id AS TEXT) || '|' ||
                        CASE WHEN used_at_ms IS NULL THEN 'n' ELSE 'y' END FROM discount_codes",
            )
            .await
        {
            let mut parts = row.split('|');
            let (code, batch, used) = (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
                parts.next().unwrap() == "y",
            );
            batch_of_code.insert(code.clone(), batch);
            code_used.insert(code, used);
        }
        let mut reservations_of_order: HashMap<String, Vec<String>> = HashMap::new();
        for (order, reservation) in db
            .strings(
                "SELECT CAST(order_id AS TEXT) || '|' || CAST(reservation_id AS TEXT)
                 FROM order_lines WHERE reservation_id IS NOT NULL",
            )
            .await
            .into_iter()
            .map(split)
        {
            reservations_of_order
                .entry(order)
                .or_default()
                .push(reservation);
        }
        Logged {
            events,
            rows,
            batch_of_code,
            code_used,
            reservations_of_order,
        }
    }

    /// The events that name the write of `record` (its events, if it was done): their type
    /// and their indexes in [`Self::events`].
    pub fn of_write(&self, record: &Record) -> (&'static str, Vec<usize>) {
        self.of_write_in(&Index::of(&self.events), record)
    }

    /// The same, with the log's index made once. A batch not acknowledged has none: nothing
    /// names it but the batch's id, which its client was not given (the pairing of batches
    /// and their events covers it).
    fn of_write_in(&self, index: &Index, record: &Record) -> (&'static str, Vec<usize>) {
        let found = |kind: &'static str, name: &'static str, value: &str| {
            (kind, index.naming(kind, name, value).to_vec())
        };
        match &record.op {
            Op::Issue { user, .. } => found("CouponIssued", "user_id", user),
            Op::Generate { .. } => {
                let batch = match &record.told {
                    Told::Acked(b) => b["codes"][0]
                        .as_str()
                        .and_then(|c| self.batch_of_code.get(c)),
                    _ => None,
                };
                match batch {
                    Some(batch) => found("DiscountCodesGenerated", "batch_id", batch),
                    None => ("DiscountCodesGenerated", Vec::new()),
                }
            }
            Op::Use { code } => found("DiscountCodeUsed", "code", code),
            Op::Request { user } => found("CouponAllocated", "user_id", user),
            Op::Redeem { code, user } => {
                let upper = code.to_uppercase();
                let (kind, all) = found("CouponRedeemed", "user_id", user);
                let all = all
                    .into_iter()
                    .filter(|i| field(&self.events[*i], "code") == upper)
                    .collect();
                (kind, all)
            }
            Op::Order { customer, .. } => found("OrderCreated", "customer", customer),
            Op::Checkout { user, .. } => {
                let (kind, all) = found("SaleCheckout", "user_id", user);
                let all = all
                    .into_iter()
                    .filter(|i| self.events[*i].payload.get("items_count").is_none())
                    .collect();
                (kind, all)
            }
            Op::Purchase { code, .. } => found("SalePurchased", "code", code),
        }
    }

    /// Every change whose events are not in the log exactly once, one line each naming the
    /// write (or row) and what was found.
    pub fn findings(&self, records: &[Record]) -> Vec<String> {
        let mut wrong = Vec::new();
        let index = Index::of(&self.events);
        for r in records {
            self.check_write(&index, r, &mut wrong);
        }
        self.check_rows(&mut wrong);
        wrong
    }

    fn check_write(&self, index: &Index, r: &Record, wrong: &mut Vec<String>) {
        let (kind, found) = self.of_write_in(index, r);
        // How many events the write must have: `Some(1)` done, `Some(0)` not done, `None`
        // unknown either way (at most one).
        let expected = match (&r.op, &r.told) {
            // A batch not acknowledged has nothing that names it (see `of_write`).
            (Op::Generate { .. }, t) if !t.is_acked() => return,
            (_, Told::Acked(_)) => Some(1),
            (Op::Use { .. }, t) if r.retried && t.code() == "already_used" => Some(1),
            (Op::Redeem { .. }, t) if r.retried && t.code() == "exhausted" => Some(1),
            (_, t) if t.promises_nothing_written() => Some(0),
            _ => None,
        };
        let says = |what: String| {
            format!(
                "{:?} told {:?} (retried: {}): {what}",
                r.op, r.told, r.retried
            )
        };
        let n = found.len();
        match expected {
            Some(e) if n != e => {
                wrong.push(says(format!("{n} {kind} events name it, not {e}")));
                return;
            }
            None if n > 1 => {
                wrong.push(says(format!("{n} {kind} events name it, not at most 1")));
                return;
            }
            _ => {}
        }
        let (Told::Acked(body), [one]) = (&r.told, found.as_slice()) else {
            return;
        };
        // The one event names what the client was given.
        let e = &self.events[*one];
        let given = match &r.op {
            Op::Issue { .. } | Op::Checkout { .. } => Some(("code", body["code"].clone())),
            Op::Request { .. } => Some(("code", body["coupon"]["code"].clone())),
            Op::Order { .. } => Some(("order_id", body["id"].clone())),
            Op::Generate { count } => Some(("count", Value::from(*count))),
            _ => None,
        };
        if let Some((name, value)) = given
            && e.payload[name] != value
        {
            wrong.push(says(format!(
                "its {kind} event has {name} {}, the client was given {value}",
                e.payload[name]
            )));
        }
        // An order's lines: each reservation's `InventoryReserved` once.
        if let Op::Order { .. } = &r.op {
            let id = field(e, "order_id");
            for reservation in self.reservations_of_order.get(&id).into_iter().flatten() {
                let n = index
                    .naming("InventoryReserved", "reservation_id", reservation)
                    .len();
                if n != 1 {
                    wrong.push(says(format!(
                        "{n} InventoryReserved events name its reservation {reservation}, not 1"
                    )));
                }
            }
        }
    }

    /// Each row of a per-row change has one event, each such event a row; each discount
    /// code's uses in the log agree with the code.
    fn check_rows(&self, wrong: &mut Vec<String>) {
        for (p, rows) in pairings().iter().zip(&self.rows) {
            let mut count: HashMap<&str, (usize, usize)> = HashMap::new();
            for row in rows {
                count.entry(row.as_str()).or_default().0 += 1;
            }
            let keys: Vec<String> = self.events.iter().filter_map(p.key).collect();
            for key in &keys {
                count.entry(key.as_str()).or_default().1 += 1;
            }
            let mut off: Vec<String> = count
                .into_iter()
                .filter(|(_, (rows, events))| rows != events)
                .map(|(key, (rows, events))| {
                    format!(
                        "{}: `{key}`: {events} events for {rows} rows{}",
                        p.what,
                        if rows == 0 {
                            " (the event of a change not in the database)"
                        } else {
                            ""
                        }
                    )
                })
                .collect();
            off.sort();
            wrong.extend(off);
        }
        // A code's uses less its returns: 1 if it is used now, else 0. (Codes used by a
        // promotion hold write `PromotionHeld`, not `DiscountCodeUsed`: only codes the log
        // names are checked this way.)
        let mut net: HashMap<String, i64> = HashMap::new();
        for e in &self.events {
            let step = match e.kind.as_str() {
                "DiscountCodeUsed" => 1,
                "DiscountCodeReturned" => -1,
                _ => continue,
            };
            *net.entry(field(e, "code")).or_default() += step;
        }
        let mut off: Vec<String> = net
            .into_iter()
            .filter_map(|(code, n)| {
                let used = self.code_used.get(&code).copied();
                let fine = match used {
                    Some(true) => n == 1,
                    Some(false) => n == 0,
                    None => false,
                };
                (!fine).then(|| {
                    format!(
                        "discount code `{code}` ({}): {n} DiscountCodeUsed events more than \
                         DiscountCodeReturned",
                        match used {
                            Some(true) => "used",
                            Some(false) => "not used",
                            None => "not in the database",
                        }
                    )
                })
            })
            .collect();
        off.sort();
        wrong.extend(off);
    }
}

/// Each row of a per-row change has its event exactly once, and no such event is of a change
/// not in the database: the per-row half of [`Logged::findings`], for a test that keeps no
/// records of what its clients were told (the full disk, the SIGKILL durability tests).
pub async fn assert_each_row_once(db: &AppDb) {
    db.begin_snapshot().await;
    let logged = Logged::read(db).await;
    db.end_snapshot().await;
    let found = logged.findings(&[]);
    assert!(
        found.is_empty(),
        "{} changes whose events are not in the log exactly once, e.g. {:#?}",
        found.len(),
        &found[..found.len().min(10)]
    );
}

/// The fields by which a write finds its events: (type, field).
const NAMES: [(&str, &str); 9] = [
    ("CouponIssued", "user_id"),
    ("DiscountCodesGenerated", "batch_id"),
    ("DiscountCodeUsed", "code"),
    ("CouponAllocated", "user_id"),
    ("CouponRedeemed", "user_id"),
    ("OrderCreated", "customer"),
    ("InventoryReserved", "reservation_id"),
    ("SaleCheckout", "user_id"),
    ("SalePurchased", "code"),
];

/// The log's events by ([`NAMES`]) type, field and value: a run's log holds some 100,000
/// events and the kill loop checks every write again after each of its rounds.
struct Index(HashMap<(&'static str, &'static str, String), Vec<usize>>);

impl Index {
    fn of(events: &[Event]) -> Index {
        let mut map: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            for (kind, name) in NAMES {
                if e.kind == kind {
                    map.entry((kind, name, field(e, name))).or_default().push(i);
                }
            }
        }
        Index(map)
    }

    fn naming(&self, kind: &'static str, name: &'static str, value: &str) -> &[usize] {
        self.0
            .get(&(kind, name, value.to_owned()))
            .map_or(&[], Vec::as_slice)
    }
}
