//! Storage faults told the truth (issue 13): a full disk or an unreachable database answers
//! 503 `storage_unavailable` with `Retry-After` (gRPC `UNAVAILABLE`, Connect `unavailable`),
//! `/ready` fails while writes fail and comes back by itself, nothing answered committed is
//! lost and nothing answered failed is kept; and the events of an answered write are in every
//! read that starts after the answer, whichever instance reads.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use allot_server::pb::couponpb::IssueCouponRequest;
use allot_server::pb::discount::GenerateRequest;
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{TestApp, backend, connect_json, coupon_client, http, open_campaign};

/// The size limit of the full-disk test: room for the schema (about 1.3 MiB) and a little.
const SIZE_MAX_MB: u64 = 3;

async fn generate(app: &TestApp, count: u32) -> reqwest::Response {
    http()
        .post(format!("{}/api/v1/discount-codes/batches", app.url()))
        .json(&json!({"count": count, "length": 8}))
        .send()
        .await
        .unwrap()
}

/// Asserts the REST answer of a write refused for a storage fault.
async fn assert_storage_unavailable(r: reqwest::Response, reason: &str) {
    assert_eq!(r.status(), 503);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After: {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let r = http()
        .get(format!("{}/ready", app.url()))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `/ready` says unavailable with a code and a short reason, and nothing of the raw error.
fn assert_not_ready((status, body): &(u16, Value), reason: &str) {
    assert_eq!(*status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["code"], "storage_unavailable");
    assert_eq!(body["reason"], reason);
    let text = body.to_string().to_lowercase();
    for internal in [
        "disk is full",
        "sqlite:",
        "postgres:",
        "error",
        "connection",
    ] {
        assert!(!text.contains(internal), "{body}");
    }
}

async fn wait_until_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready(app).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "not ready after 30 s: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A full disk (here the database's size limit, which fails writes the same way): every
/// transport answers 503 / UNAVAILABLE, `/ready` fails, exactly the acknowledged codes are
/// stored; once space comes back `/ready` recovers without any client writing, and writes
/// commit again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_answered_storage_unavailable_and_recovers_by_itself() {
    if backend() == "postgres" {
        // The size limit is the embedded database's; PostgreSQL is covered by the stopped
        // database below.
        return;
    }
    let app = TestApp::spawn_configured(None, |c| {
        c.sqlite_size_max_mb = Some(SIZE_MAX_MB);
        // No background writes: a small one that still fits would clear the flag (as any
        // committed write does) and make `/ready` below depend on timing.
        c.reservation_expiry_interval = None;
        c.coupon_purge_interval = None;
        c.sales.items = None;
    })
    .await;
    let mut coupons = coupon_client(app.channel().await);
    let campaign = open_campaign(&mut coupons, 1_000_000).await;
    // Ballast that an operator can delete to give space back, as on a real disk.
    let db_file = app.data_dir.path().join("data").join("allot.db");
    let ballast = rusqlite::Connection::open(&db_file).unwrap();
    ballast.busy_timeout(Duration::from_secs(10)).unwrap();
    ballast
        .execute_batch(
            "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(262144));",
        )
        .unwrap();

    // Fill: big batches, then single codes, until the database refuses. A small write may
    // still fit in a page with room after one was refused, as on a real disk: the checks
    // below take the first refusal of each kind and count every success.
    let mut acknowledged = HashSet::new();
    let mut refused = None;
    for count in [2_000, 100, 1] {
        loop {
            let r = generate(&app, count).await;
            if r.status() == 503 {
                refused = Some(r);
                break;
            }
            assert_eq!(r.status(), 201);
            let body: Value = r.json().await.unwrap();
            for code in body["codes"].as_array().unwrap() {
                acknowledged.insert(code.as_str().unwrap().to_owned());
            }
        }
    }
    assert!(!acknowledged.is_empty());
    let full = "the database has no space left";
    assert_storage_unavailable(refused.unwrap(), full).await;
    assert_not_ready(&ready(&app).await, full);
    // Still not ready when asked again: the probe writes, and that fails too.
    assert_not_ready(&ready(&app).await, full);

    let mut discount = app.discount().await;
    let refused = loop {
        match discount
            .generate(GenerateRequest {
                count: 1,
                length: vec![8],
            })
            .await
        {
            Ok(r) => acknowledged.extend(r.into_inner().codes),
            Err(status) => break status,
        }
    };
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let mut issued = 0;
    let refused = loop {
        match coupons
            .issue_coupon(IssueCouponRequest {
                campaign_id: campaign,
                ..Default::default()
            })
            .await
        {
            Ok(_) => issued += 1,
            Err(status) => break status,
        }
    };
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let (status, body) = loop {
        let (status, body) = connect_json(
            &http(),
            &app.url(),
            "IssueCoupon",
            json!({"campaignId": campaign.to_string()}),
        )
        .await;
        if status != 200 {
            break (status, body);
        }
        issued += 1;
    };
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );

    // Exactly what was acknowledged is stored: nothing lost, nothing refused kept.
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    crate::told_events::assert_each_row_once(&db).await;
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, acknowledged);
    assert_eq!(
        db.count("SELECT count(*) FROM campaign_coupons").await,
        issued
    );

    // Space comes back: ready again with no client writing, then writes commit.
    ballast.execute_batch("DROP TABLE ballast").unwrap();
    wait_until_ready(&app).await;
    assert_eq!(generate(&app, 1).await.status(), 201);
    coupons
        .issue_coupon(IssueCouponRequest {
            campaign_id: campaign,
            ..Default::default()
        })
        .await
        .unwrap();
    app.stop().await;
}

/// PostgreSQL stopped under a running server: every transport answers 503 / UNAVAILABLE,
/// `/ready` fails; started again, the server recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_is_answered_storage_unavailable_and_recovers_by_itself() {
    if backend() != "postgres" {
        return;
    }
    let app = TestApp::spawn().await;
    let mut coupons = coupon_client(app.channel().await);
    let campaign = open_campaign(&mut coupons, 1_000).await;
    assert_eq!(generate(&app, 1).await.status(), 201);
    let pg = app.pg.as_ref().expect("the suite's cluster");
    tokio::task::block_in_place(|| pg.stop());

    let down = "the database cannot be reached";
    assert_storage_unavailable(generate(&app, 1).await, down).await;
    // Again: the first request found a dropped connection, this one a refused connect.
    assert_storage_unavailable(generate(&app, 1).await, down).await;
    let mut discount = app.discount().await;
    let refused = discount
        .generate(GenerateRequest {
            count: 1,
            length: vec![8],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let refused = coupons
        .issue_coupon(IssueCouponRequest {
            campaign_id: campaign,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let (status, body) = connect_json(
        &http(),
        &app.url(),
        "IssueCoupon",
        json!({"campaignId": campaign.to_string()}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert_not_ready(&ready(&app).await, down);

    tokio::task::block_in_place(|| pg.start_again());
    wait_until_ready(&app).await;
    assert_eq!(generate(&app, 1).await.status(), 201);
    coupons
        .issue_coupon(IssueCouponRequest {
            campaign_id: campaign,
            ..Default::default()
        })
        .await
        .unwrap();
    app.stop().await;
}

/// The events of a write are in every read that starts after its answer: on PostgreSQL
/// also on another instance, while other readers keep the sequencer busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_events_of_an_answered_write_are_in_the_next_read_on_any_instance() {
    let writer = TestApp::spawn().await;
    // On PostgreSQL a second instance on the same database reads; SQLite has one instance.
    let second = match writer.database.clone() {
        Some(url) => Some(TestApp::spawn_configured(None, move |c| c.database = Some(url)).await),
        None => None,
    };
    let reader = second.as_ref().unwrap_or(&writer);
    // Readers on the writing instance keep the sequencer running, as busy servers do.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let url = writer.url();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = http()
                        .get(format!("{url}/api/v1/events?limit=1&after=0"))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    for round in 0..60 {
        assert_eq!(generate(&writer, 1).await.status(), 201);
        for (what, path) in [
            (
                "events",
                "/api/v1/events?type=DiscountCodesGenerated&limit=1000",
            ),
            (
                "audit",
                "/api/v1/audit?type=DiscountCodesGenerated&limit=1000",
            ),
        ] {
            let page: Value = http()
                .get(format!("{}{path}", reader.url()))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let seen = page
                .get("events")
                .or_else(|| page.get("entries"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            assert_eq!(
                seen,
                round + 1,
                "round {round}: {what} misses the event of the write just answered"
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        b.await.unwrap();
    }
    if let Some(second) = second {
        second.stop().await;
    }
    writer.stop().await;
}

/// What the writers of the full-disk storm were told, per kind of write.
#[derive(Default)]
struct Told {
    /// Discount codes of every acknowledged batch.
    codes: HashSet<String>,
    /// Code batches acknowledged, and refused.
    batches: (i64, i64),
    /// Coupon upload prefixes acknowledged, and refused.
    uploads: (Vec<String>, Vec<String>),
    /// Campaign codes acknowledged, and the number of refused issues.
    issued: (Vec<String>, i64),
    /// Orders acknowledged (id, discount code), and refused (customer, discount code).
    orders: (Vec<(i64, String)>, Vec<Refused>),
}

impl Told {
    fn refusals(&self) -> i64 {
        self.batches.1 + self.uploads.1.len() as i64 + self.issued.1 + self.orders.1.len() as i64
    }

    fn add(&mut self, other: Told) {
        self.codes.extend(other.codes);
        self.batches.0 += other.batches.0;
        self.batches.1 += other.batches.1;
        self.uploads.0.extend(other.uploads.0);
        self.uploads.1.extend(other.uploads.1);
        self.issued.0.extend(other.issued.0);
        self.issued.1 += other.issued.1;
        self.orders.0.extend(other.orders.0);
        self.orders.1.extend(other.orders.1);
    }
}

/// A refused order: its customer and the discount code it tried.
type Refused = (String, String);

/// Coupons in one upload of the storm.
const UPLOAD: usize = 2_500;

/// Discount codes of acknowledged batches that orders may use, each once.
type CodePool = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// The answer of one storm write: acknowledged (`true`, with its body) or 503
/// `storage_unavailable` (`false`); anything else fails the test.
async fn acknowledged(what: &str, r: reqwest::Response, success: u16) -> (bool, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    match status {
        s if s == success => (true, body),
        503 => {
            assert_eq!(
                body["error"]["code"], "storage_unavailable",
                "{what}: {body}"
            );
            (false, body)
        }
        other => panic!("{what}: neither acknowledged nor storage_unavailable: {other} {body}"),
    }
}

/// Where the storm writes: the campaign it issues from, the product it orders.
#[derive(Clone)]
struct Storm {
    base: String,
    campaign: i64,
    product: i64,
    pool: CodePool,
}

impl Storm {
    /// One write of `kind`: 0 generates a batch of 2,000 codes, 1 uploads [`UPLOAD`]
    /// coupons, 2 issues a campaign code, 3 places an order using a generated code. `name`
    /// makes its rows its own. Records the answer in `told`.
    async fn write(&self, c: &reqwest::Client, kind: usize, name: &str, told: &mut Told) {
        let base = &self.base;
        match kind {
            0 => {
                let r = c
                    .post(format!("{base}/api/v1/discount-codes/batches"))
                    .json(&json!({"count": 2_000, "length": 8}))
                    .send()
                    .await
                    .unwrap();
                match acknowledged("generate", r, 201).await {
                    (true, body) => {
                        told.batches.0 += 1;
                        let codes: Vec<String> = body["codes"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|c| c.as_str().unwrap().to_owned())
                            .collect();
                        assert_eq!(codes.len(), 2_000);
                        self.pool
                            .lock()
                            .unwrap()
                            .extend(codes.iter().take(50).cloned());
                        told.codes.extend(codes);
                    }
                    (false, _) => told.batches.1 += 1,
                }
            }
            1 => {
                let prefix = format!("FULL{name}X");
                let coupons: Vec<Value> = (0..UPLOAD)
                    .map(|i| {
                        json!({"code": format!("{prefix}{i}"), "discount_kind": "FLAT",
                               "discount_amount": 1, "expires_at": "2099-01-01T00:00:00Z",
                               "max_uses": 1})
                    })
                    .collect();
                let r = c
                    .post(format!("{base}/api/v1/coupons"))
                    .json(&json!({"coupons": coupons}))
                    .send()
                    .await
                    .unwrap();
                match acknowledged("upload", r, 201).await {
                    (true, _) => told.uploads.0.push(prefix),
                    (false, _) => told.uploads.1.push(prefix),
                }
            }
            2 => {
                let r = c
                    .post(format!("{base}/api/v1/campaigns/{}/coupons", self.campaign))
                    .send()
                    .await
                    .unwrap();
                match acknowledged("issue", r, 201).await {
                    (true, body) => told
                        .issued
                        .0
                        .push(body["code"].as_str().unwrap().to_owned()),
                    (false, _) => told.issued.1 += 1,
                }
            }
            _ => {
                let code = self.pool.lock().unwrap().pop();
                let Some(code) = code else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    return;
                };
                let customer = format!("full-{name}");
                let r = c
                    .post(format!("{base}/api/v1/orders"))
                    .json(&json!({
                        "customer": customer,
                        "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                             "postal_code": "75001", "country": "FR"},
                        "lines": [{"product_id": self.product, "quantity": 1}],
                        "discount_code": code,
                    }))
                    .send()
                    .await
                    .unwrap();
                match acknowledged("order", r, 201).await {
                    (true, body) => told.orders.0.push((body["id"].as_i64().unwrap(), code)),
                    (false, _) => told.orders.1.push((customer, code)),
                }
            }
        }
    }

    /// Writes of `kind` one after the other until `refusals` were refused.
    async fn writer(self, kind: usize, writer: usize, refusals: i64) -> Told {
        let c = http();
        let mut told = Told::default();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut n = 0;
        while told.refusals() < refusals {
            assert!(
                Instant::now() < deadline,
                "writer {kind}/{writer} never refused"
            );
            n += 1;
            self.write(&c, kind, &format!("{kind}W{writer}N{n}"), &mut told)
                .await;
        }
        told
    }
}

/// Exactly what was acknowledged is stored, each write whole with its events, and nothing
/// of what was refused; the invariants hold.
async fn assert_stored_as_told(db: &crate::helpers::AppDb, told: &Told) {
    crate::invariants::assert_invariants(db).await;
    crate::told_events::assert_each_row_once(db).await;
    let events = |t: &str| format!("SELECT count(*) FROM events WHERE type = '{t}'");
    let count_like = |table: &str, prefix: &str| {
        format!("SELECT count(*) FROM {table} WHERE code LIKE '{prefix}%'")
    };
    // Codes: the acknowledged batches whole, one event each; nothing of a refused one.
    let stored: HashSet<String> = db
        .strings("SELECT code FROM discount_codes")
        .await
        .into_iter()
        .collect();
    assert_eq!(
        stored.len(),
        told.codes.len(),
        "codes stored vs acknowledged"
    );
    assert!(
        stored == told.codes,
        "codes stored differ from the acknowledged"
    );
    assert_eq!(
        db.count(&events("DiscountCodesGenerated")).await,
        told.batches.0
    );
    // Uploads: each acknowledged one whole, each refused one absent.
    for prefix in &told.uploads.0 {
        let n = db.count(&count_like("coupons", prefix)).await;
        assert_eq!(n, UPLOAD as i64, "acknowledged upload {prefix}");
    }
    for prefix in &told.uploads.1 {
        let n = db.count(&count_like("coupons", prefix)).await;
        assert_eq!(n, 0, "refused upload {prefix}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM coupons").await,
        (UPLOAD * told.uploads.0.len()) as i64
    );
    assert_eq!(
        db.count(&events("CouponsUploaded")).await,
        told.uploads.0.len() as i64
    );
    // Campaign codes: exactly the acknowledged ones, one event each.
    let stored: Vec<String> = db.strings("SELECT code FROM campaign_coupons").await;
    assert_eq!(stored.len(), told.issued.0.len());
    assert_eq!(
        stored.into_iter().collect::<HashSet<_>>(),
        told.issued.0.iter().cloned().collect::<HashSet<_>>()
    );
    assert_eq!(
        db.count(&events("CouponIssued")).await,
        told.issued.0.len() as i64
    );
    // Orders: each acknowledged one with its line and its code used; each refused one absent
    // with its code still unused.
    let ids: HashSet<String> = db
        .strings("SELECT CAST(id AS TEXT) FROM orders")
        .await
        .into_iter()
        .collect();
    let answered: HashSet<String> = told.orders.0.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(ids, answered, "orders stored vs acknowledged");
    let placed = told.orders.0.len() as i64;
    assert_eq!(db.count("SELECT count(*) FROM order_lines").await, placed);
    assert_eq!(db.count(&events("OrderCreated")).await, placed);
    let used = |code: &str| {
        format!(
            "SELECT count(*) FROM discount_codes WHERE code = '{code}' AND used_at_ms IS NOT NULL"
        )
    };
    for (_, code) in &told.orders.0 {
        assert_eq!(
            db.count(&used(code)).await,
            1,
            "acknowledged order's {code}"
        );
    }
    for (customer, code) in &told.orders.1 {
        let n = db
            .count(&format!(
                "SELECT count(*) FROM orders WHERE customer = '{customer}'"
            ))
            .await;
        assert_eq!(n, 0, "refused order of {customer} stored");
        assert_eq!(
            db.count(&used(code)).await,
            0,
            "refused order's {code} used"
        );
    }
    assert_eq!(
        db.count("SELECT count(*) FROM discount_codes WHERE used_at_ms IS NOT NULL")
            .await,
        placed
    );
}

/// The disk fills while big batches are written at once (codes by 2,000, coupon uploads of
/// 2,500, campaign issues, orders using codes), so the limit falls in the middle of group
/// commits: every request is answered stored or 503 `storage_unavailable`, each is all or
/// nothing (what was acknowledged is there whole with its events, what was refused left no
/// row), and once space comes back every kind of write commits again; the invariants hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disk_filling_under_concurrent_batches_keeps_each_batch_whole_and_recovers() {
    if backend() == "postgres" {
        // The size limit is the embedded database's.
        return;
    }
    let app = TestApp::spawn_configured(None, |c| {
        c.sqlite_size_max_mb = Some(6);
        // No background writes: only the storm's.
        c.reservation_expiry_interval = None;
        c.coupon_purge_interval = None;
        c.sales.items = None;
    })
    .await;
    let base = app.url();
    let mut coupons = coupon_client(app.channel().await);
    let campaign = open_campaign(&mut coupons, 1_000_000).await;
    let c = http();
    let post = |path: &str, body: Value| c.post(format!("{base}{path}")).json(&body).send();
    let (created, warehouse) = acknowledged(
        "warehouse",
        post(
            "/api/v1/warehouses",
            json!({"code": "FULL", "name": "full"}),
        )
        .await
        .unwrap(),
        201,
    )
    .await;
    assert!(created, "{warehouse}");
    let (created, product) = acknowledged(
        "product",
        post(
            "/api/v1/products",
            json!({"sku": "FULL-1", "name": "full",
                   "price": {"amount_minor": 1_000, "currency": "EUR"}}),
        )
        .await
        .unwrap(),
        201,
    )
    .await;
    assert!(created, "{product}");
    let product = product["id"].as_i64().unwrap();
    let r = post(
        "/api/v1/inventory/adjust",
        json!({"product_id": product, "warehouse_id": warehouse["id"], "mode": "set",
               "quantity": 1_000_000, "reason": "full disk test"}),
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // Ballast that an operator can delete to give space back.
    let db_file = app.data_dir.path().join("data").join("allot.db");
    let ballast = rusqlite::Connection::open(&db_file).unwrap();
    ballast.busy_timeout(Duration::from_secs(10)).unwrap();
    ballast
        .execute_batch(
            "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(2097152));",
        )
        .unwrap();

    // The storm: 2 generators, 2 uploaders, 4 issuers and 4 customers at once, each until
    // refused 3 times (a small write may still fit after a big one was refused, as on a real
    // disk), so the limit falls inside batches of mixed writes.
    let storm = Storm {
        base: base.clone(),
        campaign,
        product,
        pool: CodePool::default(),
    };
    let writers: Vec<_> = [(0, 2), (1, 2), (2, 4), (3, 4)]
        .into_iter()
        .flat_map(|(kind, n)| (0..n).map(move |w| (kind, w)))
        .map(|(kind, w)| tokio::spawn(storm.clone().writer(kind, w, 3)))
        .collect();
    let mut told = Told::default();
    for w in writers {
        told.add(w.await.unwrap());
    }
    assert!(
        told.batches.0 > 0 && told.batches.1 > 0,
        "codes {:?}",
        told.batches
    );
    assert!(!told.uploads.0.is_empty() && !told.uploads.1.is_empty());
    assert!(!told.issued.0.is_empty() && !told.orders.0.is_empty());
    let db = app.db().await;
    assert_stored_as_told(&db, &told).await;

    // Space comes back: ready again by itself, then each kind of write commits.
    ballast.execute_batch("DROP TABLE ballast").unwrap();
    wait_until_ready(&app).await;
    let mut after = Told::default();
    for kind in 0..4 {
        storm
            .write(&c, kind, &format!("{kind}AFTER"), &mut after)
            .await;
    }
    assert_eq!(after.refusals(), 0, "refused after space came back");
    assert_eq!(
        (
            after.batches.0,
            after.uploads.0.len(),
            after.issued.0.len(),
            after.orders.0.len()
        ),
        (1, 1, 1, 1)
    );
    told.add(after);
    assert_stored_as_told(&db, &told).await;
    app.stop().await;
}
