//! The client side of the checker (issue 20): a mixed workload that many concurrent clients
//! run against one or more servers, each write recorded with what its client was told, and
//! [`assert_told`], which holds the database to those answers and then to every invariant
//! ([`crate::invariants::assert_invariants`]).
//!
//! What a client can be told:
//! - **acknowledged** (2xx, with the code, id or value it was given): it must be in the
//!   database;
//! - **refused** (a 4xx, or 503 `storage_unavailable`, which promises nothing was written), or
//!   **not sent** (the connection was refused before a byte went out): nothing of it may be
//!   committed;
//! - **unknown** (the connection dropped or timed out after the request went out, or an answer
//!   that promises nothing either way: 500, 504 `request_timeout`): [`assert_told`] retries it
//!   with the same `Idempotency-Key` until it gets one definite outcome, and that outcome must
//!   match the database. A retry that still finds the key claimed by the first try
//!   (`idempotency_key_in_use`, the claim of a server that died holding it, which goes stale
//!   only after a minute) is left **unresolved**: then only what holds either way is checked
//!   (the invariants: a code used at most once, counters equal to rows, ...).
//!
//! Every write of the workload sends an `Idempotency-Key`. Campaign issues, orders and
//! discount-code batches keep their key in the transaction of the write (exactly once across
//! crashes: a retry answers the first outcome, never [`Told::Unresolved`]); the others
//! (discount-code uses, coupon requests and redemptions, checkouts) go through the idempotency
//! layer, which stores the answer after the write commits, and are each safe to run again by
//! their own rule (a use answers `already_used`, a request the coupon the user holds, a
//! redemption `exhausted`); a flash-sale purchase is decided once per checkout code, so its
//! retry answers the first outcome by itself.
//! Checkouts are not checked one by one (a checkout code nobody purchases with changes no
//! count): only the purchases made with them are.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{AppDb, client_builder};

/// One write of the workload, with what identifies its effect in the database.
#[derive(Debug, Clone)]
pub enum Op {
    /// `POST /api/v1/campaigns/{id}/coupons` for `user` (its own user: one issue each).
    Issue { campaign: i64, user: String },
    /// `POST /api/v1/discount-codes/batches` of `count` codes.
    Generate { count: u32 },
    /// `POST /api/v1/discount-codes/{code}/use`, of a code the same client generated.
    Use { code: String },
    /// `POST /api/v1/coupons/requests`: a STANDARD coupon for `user` (its own user).
    Request { user: String },
    /// `POST /api/v1/coupons/{code}/redeem` by the user it was allocated to.
    Redeem { code: String, user: String },
    /// `POST /api/v1/orders`: one of `product` for `customer` (its own customer).
    Order { product: i64, customer: String },
    /// `POST /api/v1/sales/{sale}/checkout` of `item` for `user` (its own user).
    Checkout { sale: i64, item: i64, user: String },
    /// `POST /api/v1/sales/{sale}/purchase` with the checkout code of `item` for `user`.
    Purchase {
        sale: i64,
        item: i64,
        user: String,
        code: String,
    },
}

impl Op {
    /// The request: path (with its query) and JSON body.
    fn request(&self) -> (String, Option<Value>) {
        match self {
            Op::Issue { campaign, user } => (
                format!("/api/v1/campaigns/{campaign}/coupons"),
                Some(json!({ "user_id": user })),
            ),
            Op::Generate { count } => (
                "/api/v1/discount-codes/batches".to_owned(),
                Some(json!({"count": count, "length": 8})),
            ),
            Op::Use { code } => (format!("/api/v1/discount-codes/{code}/use"), None),
            Op::Request { user } => (
                "/api/v1/coupons/requests".to_owned(),
                Some(json!({"user_id": user, "type": "STANDARD"})),
            ),
            Op::Redeem { code, user } => (
                format!("/api/v1/coupons/{code}/redeem"),
                Some(json!({ "user_id": user })),
            ),
            Op::Order { product, customer } => (
                "/api/v1/orders".to_owned(),
                Some(json!({
                    "customer": customer,
                    "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                         "postal_code": "75001", "country": "FR"},
                    "lines": [{"product_id": product, "quantity": 1}],
                })),
            ),
            Op::Checkout { sale, item, user } => (
                format!("/api/v1/sales/{sale}/checkout?user_id={user}&id={item}"),
                None,
            ),
            Op::Purchase { sale, code, .. } => {
                (format!("/api/v1/sales/{sale}/purchase?code={code}"), None)
            }
        }
    }
}

/// What a client was told about one write.
#[derive(Debug, Clone, PartialEq)]
pub enum Told {
    /// 2xx, with the answer's body.
    Acked(Value),
    /// A refusal that promises nothing was written: the status and the error code.
    Refused { status: u16, code: String },
    /// The connection was refused: the request never left the client.
    NotSent,
    /// The outcome is unknown to the client (why).
    Unknown(String),
    /// Unknown, and a retry with the same key still found the first try's claim.
    Unresolved,
}

impl Told {
    pub fn is_acked(&self) -> bool {
        matches!(self, Told::Acked(_))
    }

    /// Nothing of the write may be in the database.
    pub fn promises_nothing_written(&self) -> bool {
        matches!(self, Told::Refused { .. } | Told::NotSent)
    }

    pub fn code(&self) -> &str {
        match self {
            Told::Refused { code, .. } => code,
            _ => "",
        }
    }
}

/// One write and what its client was told.
#[derive(Debug, Clone)]
pub struct Record {
    pub op: Op,
    pub key: String,
    pub base: String,
    pub told: Told,
    /// From sending the request to its answer (or failure).
    pub took: Duration,
    /// When the request was sent.
    pub sent: Instant,
    /// Set by [`assert_told`] when it retried an unknown outcome (the first one is `told`
    /// before it).
    pub retried: bool,
}

/// Sends `op` with `key` to `base` and says what the client was told.
pub async fn send(client: &reqwest::Client, base: &str, op: Op, key: String) -> Record {
    let (path, body) = op.request();
    let mut req = client
        .post(format!("{base}{path}"))
        .header("Idempotency-Key", &key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let started = Instant::now();
    let told = match req.send().await {
        Err(e) if e.is_connect() => Told::NotSent,
        Err(e) => Told::Unknown(format!("{e}")),
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Err(e) => Told::Unknown(format!("{status}, body cut: {e}")),
                Ok(bytes) => {
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    classify(status, body)
                }
            }
        }
    };
    Record {
        op,
        key,
        base: base.to_owned(),
        told,
        took: started.elapsed(),
        sent: started,
        retried: false,
    }
}

fn classify(status: u16, body: Value) -> Told {
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    match status {
        200..=299 => Told::Acked(body),
        503 if code == "storage_unavailable" => Told::Refused { status, code },
        400..=499 => Told::Refused { status, code },
        _ => Told::Unknown(format!("{status} {body}")),
    }
}

/// What the workload runs on: made once per database by [`Workload::prepare`].
#[derive(Debug, Clone)]
pub struct Workload {
    pub campaign: i64,
    pub product: i64,
    /// The current flash sale: its id, its first item and how many items it has.
    pub sale: Option<(i64, i64, i64)>,
}

/// STANDARD coupons uploaded by [`Workload::prepare`], one use each.
pub const COUPONS: usize = 3_000;
/// Stock of the workload's product: orders past it are refused `insufficient_stock`.
pub const STOCK: i64 = 400;

impl Workload {
    /// Sets up, through `base`, a campaign, [`COUPONS`] coupons, a product with [`STOCK`]
    /// units, and finds the current flash sale (if the server runs one). `tag` keeps the
    /// names of one run apart from another's on the same database.
    pub async fn prepare(base: &str, tag: &str) -> Workload {
        let client = crate::helpers::http();
        let post = |path: &str, body: Value| {
            let (client, url) = (client.clone(), format!("{base}{path}"));
            async move {
                let r = client.post(url).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                assert!((200..300).contains(&status), "{status} {body}");
                body
            }
        };
        let campaign = post(
            "/api/v1/campaigns",
            json!({"name": format!("told {tag}"), "start_time": "2020-01-01T00:00:00Z",
                   "total_coupons": 1_000_000}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let coupons: Vec<Value> = (0..COUPONS)
            .map(|i| {
                json!({"code": format!("told-{tag}-{i}"), "type": "STANDARD",
                       "discount_kind": "FLAT", "discount_amount": 1,
                       "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1})
            })
            .collect();
        post("/api/v1/coupons", json!({ "coupons": coupons })).await;
        let product = post(
            "/api/v1/products",
            json!({"sku": format!("TOLD-{tag}"), "name": "Told",
                   "price": {"amount_minor": 1_000, "currency": "EUR"}}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let warehouse = post(
            "/api/v1/warehouses",
            json!({"code": format!("TOLD-{tag}"), "name": "Told"}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        post(
            "/api/v1/inventory/adjust",
            json!({"product_id": product, "warehouse_id": warehouse, "mode": "set",
                   "quantity": STOCK, "reason": "count"}),
        )
        .await;
        let sale = async {
            let r = client
                .get(format!("{base}/api/v1/sales/current"))
                .send()
                .await
                .ok()?;
            if r.status() != 200 {
                return None;
            }
            let sale: Value = r.json().await.ok()?;
            let id = sale["id"].as_i64()?;
            let items = sale["items_total"]
                .as_i64()
                .or_else(|| sale["items"].as_i64())?;
            let page: Value = client
                .get(format!("{base}/api/v1/sales/{id}/items?limit=1"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some((id, page["items"][0]["id"].as_i64()?, items))
        }
        .await;
        Workload {
            campaign,
            product,
            sale,
        }
    }
}

/// Clients running the workload until stopped.
pub struct Driver {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Record>>>,
}

impl Driver {
    /// `clients` clients, client `i` on `bases[i % len]`, each waiting at most `timeout` for
    /// an answer; every name and key starts with `tag`.
    pub fn start(
        bases: &[String],
        work: &Workload,
        clients: usize,
        timeout: Duration,
        tag: &str,
    ) -> Driver {
        let stop = Arc::new(AtomicBool::new(false));
        let http = client_builder()
            .timeout(timeout)
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        let tasks = (0..clients)
            .map(|i| {
                let (http, stop, work) = (http.clone(), stop.clone(), work.clone());
                let base = bases[i % bases.len()].clone();
                let tag = format!("{tag}-{i}");
                tokio::spawn(async move { client_loop(&http, &base, &work, &tag, &stop).await })
            })
            .collect();
        Driver { stop, tasks }
    }

    /// Stops the clients (each finishes the write it is waiting on) and answers every record.
    pub async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        let mut records = Vec::new();
        for t in self.tasks {
            records.extend(t.await.expect("a client of the workload"));
        }
        records
    }
}

async fn client_loop(
    http: &reqwest::Client,
    base: &str,
    work: &Workload,
    tag: &str,
    stop: &AtomicBool,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let me = format!("{tag}-{n}");
        let key = |step: &str| format!("{me}-{step}");
        let first = match n % 5 {
            0 => Op::Issue {
                campaign: work.campaign,
                user: me.clone(),
            },
            1 => Op::Generate {
                count: 1 + (n % 4) as u32,
            },
            2 => Op::Request { user: me.clone() },
            3 => Op::Order {
                product: work.product,
                customer: me.clone(),
            },
            _ => match work.sale {
                Some((sale, first_item, items)) => Op::Checkout {
                    sale,
                    item: first_item + rand::random_range(0..items),
                    user: me.clone(),
                },
                None => Op::Generate { count: 1 },
            },
        };
        let record = send(http, base, first, key("a")).await;
        let then = match (&record.op, &record.told) {
            (Op::Generate { .. }, Told::Acked(body)) => body["codes"][0]
                .as_str()
                .map(|code| Op::Use { code: code.into() }),
            (Op::Request { user }, Told::Acked(body)) => {
                body["coupon"]["code"].as_str().map(|code| Op::Redeem {
                    code: code.into(),
                    user: user.clone(),
                })
            }
            (Op::Checkout { sale, item, user }, Told::Acked(body)) => {
                body["code"].as_str().map(|code| Op::Purchase {
                    sale: *sale,
                    item: *item,
                    user: user.clone(),
                    code: code.into(),
                })
            }
            _ => None,
        };
        let lost_the_server = matches!(record.told, Told::NotSent);
        records.push(record);
        if let Some(op) = then {
            records.push(send(http, base, op, key("b")).await);
        }
        if lost_the_server {
            // The server is down (killed, restarting): do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    records
}

/// How the records came out, for a test to say that enough happened to prove anything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub acked: usize,
    pub refused: usize,
    pub not_sent: usize,
    /// Unknown at first, then resolved by a retry with the same key.
    pub resolved: usize,
    pub unresolved: usize,
}

/// How long [`assert_told`] retries one unknown outcome before leaving it unresolved.
const RESOLVE_PATIENCE: Duration = Duration::from_secs(20);

/// Retries an unknown write with its key until one definite answer (any but a storage fault,
/// a timeout or a 5xx); `idempotency_key_in_use` a few times, then [`Told::Unresolved`].
async fn resolve(client: &reqwest::Client, bases: &[String], record: &Record) -> Told {
    let deadline = Instant::now() + RESOLVE_PATIENCE;
    let mut in_use_since: Option<Instant> = None;
    let mut turn = 0;
    loop {
        let base = &bases[turn % bases.len()];
        turn += 1;
        let again = send(client, base, record.op.clone(), record.key.clone()).await;
        match &again.told {
            Told::Acked(_) => return again.told,
            Told::Refused { code, .. } if code == "idempotency_key_in_use" => {
                let since = *in_use_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(3) {
                    return Told::Unresolved;
                }
            }
            Told::Refused { code, status } if code != "storage_unavailable" && *status != 429 => {
                return again.told;
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "an unknown write got no definite answer to its retries in {RESOLVE_PATIENCE:?}: \
             {record:?}, last {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The database agrees with what every client was told, then every invariant holds.
///
/// First each unknown outcome is retried with its key on `bases` (any live instance) and
/// replaced by the answer (the record keeps `retried`), so that a later call with the same
/// records (after the next crash) does not retry it again. Then, per write:
/// - issue: acknowledged, its code is stored for its user; refused, its user holds none;
/// - batch: acknowledged, every code is stored; never unresolved; and no code is stored
///   that no client was given (no batch made twice, none by a refused request);
/// - use: acknowledged (or, retried, answered `already_used`: the first try used it), the
///   code is used; refused, it is not;
/// - coupon request: acknowledged, the coupon is allocated to its user; refused, none is;
/// - redemption: acknowledged (or, retried, answered `exhausted`), one redemption of the
///   code by its user; refused, none;
/// - order: acknowledged, the order of that id is its customer's; refused, the customer has
///   no order;
/// - purchase: acknowledged, the item is sold to its user; refused, it is not.
///
/// Then each change's events exactly once ([`crate::told_events`]): per write, done, its
/// events once; refused or not sent, none; and per row of the database, its event once and no
/// event of a change not there. Then every invariant.
pub async fn assert_told(db: &AppDb, bases: &[String], records: &mut [Record]) -> Tally {
    let client = client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tally = Tally::default();
    // Every unknown one retried at once: each may wait out a claim in use.
    let unknown: Vec<usize> = (0..records.len())
        .filter(|i| matches!(records[*i].told, Told::Unknown(_)))
        .collect();
    let outcomes = futures::future::join_all(
        unknown
            .iter()
            .map(|i| resolve(&client, bases, &records[*i])),
    )
    .await;
    for (i, told) in unknown.into_iter().zip(outcomes) {
        records[i].told = told;
        records[i].retried = true;
    }
    for record in records.iter() {
        match &record.told {
            Told::Acked(_) if record.retried => tally.resolved += 1,
            Told::Acked(_) => tally.acked += 1,
            Told::Refused { .. } if record.retried => tally.resolved += 1,
            Told::Refused { .. } => tally.refused += 1,
            Told::NotSent => tally.not_sent += 1,
            Told::Unresolved => tally.unresolved += 1,
            Told::Unknown(_) => unreachable!("resolved above"),
        }
    }

    // One snapshot for every read: the rows, and the log with the rows its events name.
    db.begin_snapshot().await;
    let pairs = |sql: &'static str| async move {
        db.strings(sql)
            .await
            .into_iter()
            .map(|row| {
                let (a, b) = row.split_once('|').expect("a|b");
                (a.to_owned(), b.to_owned())
            })
            .collect::<Vec<_>>()
    };
    let issued: HashMap<String, String> =
        pairs("SELECT COALESCE(user_id, '') || '|' || code FROM campaign_coupons")
            .await
            .into_iter()
            .collect();
    let codes: HashMap<String, bool> = pairs(
        "SELECT code || '|' || CASE WHEN used_at_ms IS NULL THEN 'n' ELSE 'y' END
         FROM discount_codes",
    )
    .await
    .into_iter()
    .map(|(c, u)| (c, u == "y"))
    .collect();
    let allocated: HashMap<String, String> =
        pairs("SELECT allocated_to || '|' || code FROM coupons WHERE allocated_to IS NOT NULL")
            .await
            .into_iter()
            .collect();
    let mut redemptions: HashMap<(String, String), usize> = HashMap::new();
    for pair in
        pairs("SELECT code || '|' || user_id FROM coupon_redemptions WHERE reversed_at_ms IS NULL")
            .await
    {
        *redemptions.entry(pair).or_default() += 1;
    }
    let orders: HashMap<String, String> =
        pairs("SELECT customer || '|' || CAST(id AS TEXT) FROM orders")
            .await
            .into_iter()
            .collect();
    let sold: HashMap<String, String> = pairs(
        "SELECT CAST(id AS TEXT) || '|' || sold_to FROM sale_items WHERE sold_to IS NOT NULL",
    )
    .await
    .into_iter()
    .collect();
    let logged = crate::told_events::Logged::read(db).await;
    db.end_snapshot().await;

    let mut wrong = Vec::new();
    let mut generated_known = HashSet::new();
    for r in records.iter() {
        let told = &r.told;
        let ok = match &r.op {
            Op::Issue { user, .. } => match told {
                Told::Acked(b) => issued.get(user).map(String::as_str) == b["code"].as_str(),
                t if t.promises_nothing_written() => !issued.contains_key(user),
                _ => true,
            },
            Op::Generate { count } => match told {
                Told::Acked(b) => {
                    let given: Vec<&str> = b["codes"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    generated_known.extend(given.iter().map(|c| c.to_string()));
                    given.len() == *count as usize && given.iter().all(|c| codes.contains_key(*c))
                }
                // The batch keeps its key in its own transaction: a retry is answered the
                // first batch (or makes it, if the first try wrote nothing), never "in use".
                Told::Unresolved => false,
                _ => true,
            },
            Op::Use { code } => match told {
                Told::Acked(_) => codes.get(code) == Some(&true),
                t if r.retried && t.code() == "already_used" => codes.get(code) == Some(&true),
                t if t.promises_nothing_written() => codes.get(code) == Some(&false),
                _ => true,
            },
            Op::Request { user } => match told {
                Told::Acked(b) => b["coupon"]["code"]
                    .as_str()
                    .is_some_and(|c| allocated.get(user).map(String::as_str) == Some(c)),
                t if t.promises_nothing_written() => !allocated.contains_key(user),
                _ => true,
            },
            Op::Redeem { code, user } => {
                let n = redemptions
                    .get(&(code.to_uppercase(), user.clone()))
                    .copied()
                    .unwrap_or(0);
                match told {
                    Told::Acked(_) => n == 1,
                    t if r.retried && t.code() == "exhausted" => n == 1,
                    t if t.promises_nothing_written() => n == 0,
                    _ => n <= 1,
                }
            }
            Op::Order { customer, .. } => match told {
                Told::Acked(b) => {
                    orders.get(customer) == b["id"].as_i64().map(|i| i.to_string()).as_ref()
                }
                t if t.promises_nothing_written() => !orders.contains_key(customer),
                _ => true,
            },
            Op::Checkout { .. } => true,
            Op::Purchase { item, user, .. } => {
                let to = sold.get(&item.to_string());
                match told {
                    Told::Acked(_) => to == Some(user),
                    t if t.promises_nothing_written() => to != Some(user),
                    _ => true,
                }
            }
        };
        if !ok {
            wrong.push(format!(
                "{:?} told {:?} (retried: {})",
                r.op, r.told, r.retried
            ));
        }
    }
    let unexplained = codes
        .keys()
        .filter(|c| !generated_known.contains(*c))
        .count();
    if unexplained > 0 {
        wrong.push(format!(
            "{unexplained} discount codes stored that no client was given (a batch made twice, \
             or one a refused request made)"
        ));
    }
    assert!(
        wrong.is_empty(),
        "{} writes disagree with what their clients were told ({tally:?}), e.g. {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    let events = logged.findings(records);
    assert!(
        events.is_empty(),
        "{} changes whose events are not in the log exactly once ({tally:?}), e.g. {:#?}",
        events.len(),
        &events[..events.len().min(10)]
    );
    crate::invariants::assert_invariants(db).await;
    tally
}

/// The writes answered 500, or that took longer than `bound` (from sending to the answer or
/// the failure).
pub fn misbehaved(records: &[Record], bound: Duration) -> Vec<String> {
    records
        .iter()
        .filter(|r| {
            r.took > bound || matches!(&r.told, Told::Unknown(why) if why.starts_with("500"))
        })
        .map(|r| format!("{:?} took {:?}: {:?}", r.op, r.took, r.told))
        .collect()
}

/// The workload on one server of the suite's backend, with no fault: every write is answered
/// definitely, and the checker finds the database as the clients were told.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_workload_without_a_fault_is_found_as_told() {
    let app = crate::helpers::TestApp::spawn_configured(None, |c| {
        c.sales.items = allot_domain::sale::ItemsPerSale::parse(500).ok();
    })
    .await;
    let bases = vec![app.url()];
    let work = Workload::prepare(&bases[0], "calm").await;
    assert!(work.sale.is_some(), "the server runs a flash sale");
    let driver = Driver::start(&bases, &work, 16, Duration::from_secs(30), "calm");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut records = driver.stop().await;
    assert!(misbehaved(&records, Duration::from_secs(30)).is_empty());
    assert!(
        records.iter().all(|r| !matches!(r.told, Told::Unknown(_))),
        "an outcome unknown without a fault"
    );
    let db = app.db().await;
    let tally = assert_told(&db, &bases, &mut records).await;
    assert!(tally.acked >= 100, "too little work: {tally:?}");
    // The checker catches a lie either way: an acknowledged write that is not there, and a
    // refused one that is.
    let issued = records
        .iter()
        .find_map(|r| match (&r.op, &r.told) {
            (Op::Issue { user, .. }, Told::Acked(_)) => Some(user.clone()),
            _ => None,
        })
        .expect("an issue acknowledged");
    for (user, told) in [
        ("nobody".to_owned(), Told::Acked(json!({"code": "NOPE"}))),
        (
            issued,
            Told::Refused {
                status: 503,
                code: "storage_unavailable".into(),
            },
        ),
    ] {
        let mut lie = records.clone();
        lie.push(Record {
            op: Op::Issue {
                campaign: work.campaign,
                user,
            },
            key: "a-lie".into(),
            base: bases[0].clone(),
            told,
            took: Duration::ZERO,
            sent: Instant::now(),
            retried: false,
        });
        let caught = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(assert_told(
            &db, &bases, &mut lie,
        )))
        .await;
        assert!(
            caught.is_err(),
            "the checker missed a lie: {:?}",
            lie.last()
        );
    }
    // Every kind of write was acknowledged at least once; and the checker catches its event
    // planted twice, or missing, in a copy of the log.
    db.begin_snapshot().await;
    let logged = crate::told_events::Logged::read(&db).await;
    db.end_snapshot().await;
    assert_eq!(logged.findings(&records), Vec::<String>::new());
    for kind in [
        "Issue", "Generate", "Use", "Request", "Redeem", "Order", "Checkout", "Purchase",
    ] {
        let acked = records
            .iter()
            .find(|r| r.told.is_acked() && format!("{:?}", r.op).starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} acknowledged"));
        let (_, found) = logged.of_write(acked);
        let [one] = found[..] else {
            panic!("{acked:?}: its events are {found:?}")
        };
        let mut twice = logged.clone();
        twice.events.push(logged.events[one].clone());
        let mut missing = logged.clone();
        missing.events.remove(one);
        let write = format!("{:?}", acked.op);
        for (planted, copy, n) in [("twice", twice, ": 2 "), ("missing", missing, ": 0 ")] {
            let found = copy.findings(&records);
            assert!(
                found.iter().any(|f| f.starts_with(&write) && f.contains(n)),
                "the checker missed the event of {write} planted {planted}: {found:#?}"
            );
        }
    }
    // And an event of a change that is not in the database (one rolled back).
    let mut orphan = logged.clone();
    orphan.events.push(crate::told_events::Event {
        kind: "OrderCreated".into(),
        payload: json!({"order_id": -1, "customer": "nobody"}),
    });
    let found = orphan.findings(&records);
    assert!(
        found
            .iter()
            .any(|f| f.contains("`-1|nobody`: 1 events for 0 rows")),
        "the checker missed an event of a change not in the database: {found:#?}"
    );
    app.stop().await;
}
