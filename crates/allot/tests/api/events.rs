//! The event log (issue 8): every capability's changes appear in the log in order and exactly
//! once, refused requests add nothing, and the live stream resumes without gaps or repeats
//! after a reconnect and after a server restart.

use std::collections::HashSet;
use std::time::Duration;

use allot_domain::UnixMillis;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{ProcessBackend, TestApp, http};

/// 2026-11-22T10:30:00Z: mid-hour, so the sale of the hour stays the same during a test.
const MID_HOUR: UnixMillis = UnixMillis::from_millis(1_795_341_600_000 + 1_800_000);
const FUTURE: &str = "2030-01-01T00:00:00Z";

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(c: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    send(c.post(url).json(&body)).await
}

/// Every event after `after`, walking the pages.
async fn events_after(c: &reqwest::Client, base: &str, after: i64) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = after;
    loop {
        let (s, page) = send(c.get(format!("{base}/api/v1/events?after={after}&limit=7"))).await;
        assert_eq!(s, 200, "{page}");
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            assert_eq!(page["next_after"].as_i64(), Some(after));
            return all;
        }
        after = page["next_after"].as_i64().unwrap();
        assert_eq!(events.last().unwrap()["seq"].as_i64(), Some(after));
        all.extend(events);
    }
}

async fn last_seq(c: &reqwest::Client, base: &str) -> i64 {
    events_after(c, base, 0)
        .await
        .last()
        .map_or(0, |e| e["seq"].as_i64().unwrap())
}

/// The last seq once the sale of the hour is open (a job opens it at start), so that nothing
/// but the test's own requests adds events after it.
async fn settled_seq(c: &reqwest::Client, base: &str) -> i64 {
    let (s, _) = send(c.get(format!("{base}/api/v1/sales/current"))).await;
    assert_eq!(s, 200);
    for _ in 0..100 {
        let (_, page) = send(c.get(format!("{base}/api/v1/events?type=SaleOpened"))).await;
        if !page["events"].as_array().unwrap().is_empty() {
            return last_seq(c, base).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no SaleOpened event");
}

/// Reserves `quantity` of `product` for `holder` (201) and releases it (200); answers the
/// reservation's id.
async fn reserve_and_release(
    c: &reqwest::Client,
    base: &str,
    product: i64,
    quantity: i64,
    holder: &str,
) -> i64 {
    let (s, r) = post(
        c,
        format!("{base}/api/v1/inventory/reserve"),
        json!({"product_id": product, "quantity": quantity, "holder": holder}),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    let id = r["id"].as_i64().expect("reservation id");
    let (s, b) = post(
        c,
        format!("{base}/api/v1/inventory/release"),
        json!({"reservation_id": id}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    id
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn assert_strictly_increasing(events: &[Value]) {
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs not strictly increasing: {seqs:?}"
    );
}

/// The events since `after`, asserting their types, then `after` moved past them.
async fn expect(c: &reqwest::Client, base: &str, after: &mut i64, want: &[&str]) -> Vec<Value> {
    let got = events_after(c, base, *after).await;
    assert_eq!(types(&got), want, "{got:#?}");
    assert_strictly_increasing(&got);
    for e in &got {
        assert!(e["payload"].is_object(), "{e}");
        assert!(
            e["occurred_at"].is_string() && e["actor"].is_string(),
            "{e}"
        );
    }
    if let Some(last) = got.last() {
        *after = last["seq"].as_i64().unwrap();
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_capability_appends_its_events_in_order_and_refusals_append_none() {
    let app = TestApp::spawn_with_clock(MID_HOUR).await;
    let c = http();
    let base = app.url();
    // The sale of the hour is opened by the job at start or by the first read; settle it now.
    let (s, sale) = send(c.get(format!("{base}/api/v1/sales/current"))).await;
    assert_eq!(s, 200, "{sale}");
    let sale_id = sale["id"].as_i64().unwrap();
    let opened: Vec<Value> = events_after(&c, &base, 0)
        .await
        .into_iter()
        .filter(|e| e["type"] == "SaleOpened")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["payload"]["sale_id"].as_i64(), Some(sale_id));
    assert_eq!(opened[0]["actor"], "system:sale-opener");
    let mut at = last_seq(&c, &base).await;

    // Discount codes: one summary event for the batch; a use; a refused second use.
    let (s, batch) = post(
        &c,
        format!("{base}/api/v1/discount-codes/batches"),
        json!({"count": 3, "length": 8}),
    )
    .await;
    assert_eq!(s, 201, "{batch}");
    let code = batch["codes"][0].as_str().unwrap().to_owned();
    let (s, _) = post(
        &c,
        format!("{base}/api/v1/discount-codes/{code}/use"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &c,
        format!("{base}/api/v1/discount-codes/{code}/use"),
        json!({}),
    )
    .await;
    assert_eq!(s, 409);
    let got = expect(
        &c,
        &base,
        &mut at,
        &["DiscountCodesGenerated", "DiscountCodeUsed"],
    )
    .await;
    assert_eq!(got[0]["payload"]["count"], 3);
    // Made by the harness's API key, from this machine (tests/api/audit.rs for the rest).
    let key = app
        .services
        .auth
        .api_key(&crate::helpers::ADMIN_KEY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got[0]["actor"], format!("api_key:{}", key.id));
    assert_eq!(got[0]["source"], "127.0.0.1");
    assert_eq!(got[1]["payload"]["code"], code.as_str());

    // Campaigns: create, issue.
    let (s, campaign) = post(
        &c,
        format!("{base}/api/v1/campaigns"),
        json!({"name": "ev", "start_time": "2026-11-22T09:00:00Z", "total_coupons": 5}),
    )
    .await;
    assert_eq!(s, 201, "{campaign}");
    let cid = campaign["id"].as_i64().unwrap();
    let (s, issued) = post(
        &c,
        format!("{base}/api/v1/campaigns/{cid}/coupons"),
        json!({"user_id": "ada"}),
    )
    .await;
    assert_eq!(s, 201, "{issued}");
    let got = expect(&c, &base, &mut at, &["CampaignCreated", "CouponIssued"]).await;
    assert_eq!(got[0]["payload"]["campaign_id"].as_i64(), Some(cid));
    assert_eq!(got[1]["payload"]["code"], issued["code"]);

    // Coupons: upload (one summary), a refused upload of the same codes, allocate, redeem.
    let coupon = |code: &str| {
        json!({"code": code, "discount_kind": "PERCENTAGE", "discount_amount": 10,
               "expires_at": FUTURE, "max_uses": 2})
    };
    let body = json!({"coupons": [coupon("EV-ONE"), coupon("EV-TWO")]});
    let (s, b) = post(&c, format!("{base}/api/v1/coupons"), body.clone()).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = post(&c, format!("{base}/api/v1/coupons"), body).await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = post(
        &c,
        format!("{base}/api/v1/coupons/requests"),
        json!({"user_id": "alice"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let allocated = b["coupon"]["code"].as_str().unwrap().to_owned();
    let (s, b) = post(
        &c,
        format!("{base}/api/v1/coupons/{allocated}/redeem"),
        json!({"user_id": "bob"}),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = post(
        &c,
        format!("{base}/api/v1/coupons/{allocated}/redeem"),
        json!({"user_id": "alice"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let got = expect(
        &c,
        &base,
        &mut at,
        &["CouponsUploaded", "CouponAllocated", "CouponRedeemed"],
    )
    .await;
    assert_eq!(got[0]["payload"]["count"], 2);
    assert_eq!(got[1]["payload"]["code"], allocated.as_str());
    assert_eq!(got[2]["payload"]["user_id"], "alice");

    // Catalog and stock: warehouse, product, adjust, reserve, release, a refused reserve.
    let (s, w) = post(
        &c,
        format!("{base}/api/v1/warehouses"),
        json!({"code": "EVW", "name": "Events"}),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let wid = w["id"].as_i64().unwrap();
    let (s, p) = post(
        &c,
        format!("{base}/api/v1/products"),
        json!({"sku": "EV-1", "name": "Thing", "price": {"amount_minor": 1000, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_i64().unwrap();
    let (s, b) = post(
        &c,
        format!("{base}/api/v1/inventory/adjust"),
        json!({"product_id": pid, "warehouse_id": wid, "mode": "set", "quantity": 10, "reason": "count"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let rid = reserve_and_release(&c, &base, pid, 2, "cart-1").await;
    let (s, b) = post(
        &c,
        format!("{base}/api/v1/inventory/release"),
        json!({"reservation_id": rid}),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = post(
        &c,
        format!("{base}/api/v1/inventory/reserve"),
        json!({"product_id": pid, "quantity": 100, "holder": "cart-2"}),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    let got = expect(
        &c,
        &base,
        &mut at,
        &[
            "WarehouseCreated",
            "ProductCreated",
            "InventoryAdjusted",
            "InventoryChanged",
            "InventoryReserved",
            "InventoryReleased",
        ],
    )
    .await;
    assert_eq!(got[0]["payload"]["warehouse_id"].as_i64(), Some(wid));
    assert_eq!(got[1]["payload"]["product_id"].as_i64(), Some(pid));
    assert_eq!(got[2]["payload"]["on_hand"], 10);
    // The design's InventoryChanged follows each on-hand movement with the same payload;
    // reservations and releases change only what is reserved and write none.
    assert_eq!(got[3]["payload"], got[2]["payload"]);
    assert_eq!(got[4]["payload"]["reservation_id"].as_i64(), Some(rid));
    assert_eq!(got[5]["payload"]["reservation_id"].as_i64(), Some(rid));

    // A reorder point, then an order that takes available to it, then its confirmation.
    let (s, b) = send(
        c.put(format!("{base}/api/v1/inventory/{pid}/reorder"))
            .json(&json!({"warehouse_id": wid, "reorder_threshold": 8, "reorder_quantity": 20})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let order = json!({
        "customer": "ada",
        "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                             "postal_code": "75001", "country": "FR"},
        "lines": [{"product_id": pid, "quantity": 2}],
    });
    let (s, o) = post(&c, format!("{base}/api/v1/orders"), order).await;
    assert_eq!(s, 201, "{o}");
    let oid = o["id"].as_i64().unwrap();
    let (s, b) = send(
        c.put(format!("{base}/api/v1/orders/{oid}/status"))
            .json(&json!({"status": "delivered"})),
    )
    .await;
    assert_eq!(s, 409, "{b}");
    let (s, b) = send(
        c.put(format!("{base}/api/v1/orders/{oid}/status"))
            .json(&json!({"status": "confirmed"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let got = expect(
        &c,
        &base,
        &mut at,
        &[
            "ReorderPointSet",
            "InventoryReserved",
            "InventoryThresholdReached",
            "OrderCreated",
            "InventoryConfirmed",
            "InventoryChanged",
            "OrderStatusChanged",
        ],
    )
    .await;
    assert_eq!(got[2]["payload"]["available"], 8);
    assert_eq!(got[3]["payload"]["order_id"].as_i64(), Some(oid));
    assert_eq!(
        got[3]["payload"]["lines"][0]["reservation_id"],
        got[1]["payload"]["reservation_id"]
    );
    assert_eq!(got[5]["payload"]["on_hand_delta"], -2);
    assert_eq!(got[6]["payload"]["from"], "pending");
    assert_eq!(got[6]["payload"]["to"], "confirmed");

    // A price change: ProductUpdated then ProductPriceChanged; an update keeping the price
    // writes ProductUpdated alone.
    for (name, amount) in [("Thing 2", 1250), ("Thing 3", 1250)] {
        let (s, b) = send(c.put(format!("{base}/api/v1/products/{pid}")).json(&json!({
            "sku": "EV-1", "name": name, "price": {"amount_minor": amount, "currency": "EUR"}
        })))
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let got = expect(
        &c,
        &base,
        &mut at,
        &["ProductUpdated", "ProductPriceChanged", "ProductUpdated"],
    )
    .await;
    assert_eq!(got[1]["payload"]["old_price_minor"], 1000);
    assert_eq!(got[1]["payload"]["price_minor"], 1250);
    assert_eq!(got[1]["payload"]["currency"], "EUR");

    // A cancellation: its stock and code events, OrderStatusChanged, then OrderCancelled.
    let (s, b) = send(
        c.put(format!("{base}/api/v1/orders/{oid}/status"))
            .json(&json!({"status": "cancelled", "reason": "changed mind"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let got = expect(
        &c,
        &base,
        &mut at,
        &[
            "InventoryRestocked",
            "InventoryChanged",
            "InventoryThresholdCleared",
            "OrderStatusChanged",
            "OrderCancelled",
        ],
    )
    .await;
    assert_eq!(got[4]["payload"]["order_id"].as_i64(), Some(oid));
    assert_eq!(got[4]["payload"]["from"], "confirmed");
    assert_eq!(got[4]["payload"]["reason"], "changed mind");
    assert_eq!(got[4]["payload"]["lines"][0]["quantity"], 2);

    // The flash sale: checkout, purchase, a replayed purchase (nothing new).
    let (s, items) = send(c.get(format!("{base}/api/v1/sales/{sale_id}/items?limit=1"))).await;
    assert_eq!(s, 200);
    let item = items["items"][0]["id"].as_i64().unwrap();
    let (s, b) = post(
        &c,
        format!("{base}/api/v1/sales/{sale_id}/checkout?user_id=ada&id={item}"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let checkout = b["code"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (s, b) = post(
            &c,
            format!("{base}/api/v1/sales/{sale_id}/purchase?code={checkout}"),
            json!({}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
    }
    let got = expect(&c, &base, &mut at, &["SaleCheckout", "SalePurchased"]).await;
    assert_eq!(got[0]["payload"]["code"], checkout.as_str());
    assert_eq!(got[1]["payload"]["item_id"].as_i64(), Some(item));

    // The filter by type, and the whole log once more: no seq twice.
    let (s, page) = send(c.get(format!("{base}/api/v1/events?type=OrderCreated"))).await;
    assert_eq!(s, 200);
    assert_eq!(types(page["events"].as_array().unwrap()), ["OrderCreated"]);
    let (s, _) = send(c.get(format!("{base}/api/v1/events?type=Nope"))).await;
    assert_eq!(s, 422);
    let all = events_after(&c, &base, 0).await;
    assert_strictly_increasing(&all);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_campaign_issues_append_one_event_each() {
    let app = TestApp::spawn().await;
    let c = http();
    let base = app.url();
    let (s, campaign) = post(
        &c,
        format!("{base}/api/v1/campaigns"),
        json!({"name": "rush", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 200}),
    )
    .await;
    assert_eq!(s, 201, "{campaign}");
    let cid = campaign["id"].as_i64().unwrap();
    let start = settled_seq(&c, &base).await;
    let tasks = (0..250).map(|i| {
        let c = c.clone();
        let url = format!("{base}/api/v1/campaigns/{cid}/coupons");
        tokio::spawn(async move {
            let (s, b) = post(&c, url, json!({"user_id": format!("u{i}")})).await;
            (s, b["code"].as_str().map(str::to_owned))
        })
    });
    let mut codes = HashSet::new();
    for t in futures::future::join_all(tasks).await {
        if let (200 | 201, Some(code)) = t.unwrap() {
            assert!(codes.insert(code));
        }
    }
    assert_eq!(codes.len(), 200);
    let events = events_after(&c, &base, start).await;
    assert_strictly_increasing(&events);
    assert!(events.iter().all(|e| e["type"] == "CouponIssued"));
    let logged: HashSet<String> = events
        .iter()
        .map(|e| e["payload"]["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 200);
    assert_eq!(logged, codes);
    app.stop().await;
}

/// One server-sent event: its id, type and data.
#[derive(Debug, Clone)]
struct Sse {
    id: i64,
    kind: String,
    data: Value,
}

/// Reads `n` events from the stream at `base`, starting after `last_id` (sent as
/// `Last-Event-ID`), then drops the connection.
async fn read_stream(base: &str, query: &str, last_id: Option<i64>, n: usize) -> Vec<Sse> {
    let client = crate::helpers::http();
    let mut req = client.get(format!("{base}/api/v1/events/stream{query}"));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let read = async {
        while out.len() < n {
            let chunk = body.next().await.expect("stream open").unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<i64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                    }
                }
                if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                    out.push(Sse { id, kind, data });
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the stream sends the events in time");
    out.truncate(n);
    out
}

async fn create_warehouses(c: &reqwest::Client, base: &str, from: usize, n: usize) {
    for i in from..from + n {
        let (s, b) = post(
            c,
            format!("{base}/api/v1/warehouses"),
            json!({"code": format!("SSE{i}"), "name": format!("Stream {i}")}),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
}

fn assert_warehouses(events: &[Sse], from: usize) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.kind, "WarehouseCreated", "{e:?}");
        assert_eq!(e.data["type"], "WarehouseCreated");
        assert_eq!(e.data["seq"].as_i64(), Some(e.id));
        assert_eq!(e.data["payload"]["code"], format!("SSE{}", from + i));
    }
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_from_the_last_event_id_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let c = http();
    let base = app.url();
    let start = settled_seq(&c, &base).await;
    create_warehouses(&c, &base, 0, 10).await;
    let first = read_stream(&base, "", Some(start), 4).await;
    assert_warehouses(&first, 0);
    // Reconnect with the last id seen: the other six, then two made while connected.
    let resumed = tokio::spawn({
        let base = base.clone();
        let last = first[3].id;
        async move { read_stream(&base, "", Some(last), 8).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    create_warehouses(&c, &base, 10, 2).await;
    let rest = resumed.await.unwrap();
    assert_warehouses(&rest, 4);
    // Without the header, `?after=` says where to start.
    let again = read_stream(&base, &format!("?after={}", first[1].id), None, 2).await;
    assert_warehouses(&again, 2);
    let r = c
        .get(format!("{base}/api/v1/events/stream?after=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_after_a_server_restart() {
    let backend = ProcessBackend::new();
    let mut server = backend.start();
    let c = http();
    let base = server.url();
    let start = settled_seq(&c, &base).await;
    create_warehouses(&c, &base, 0, 6).await;
    let first = read_stream(&base, "", Some(start), 3).await;
    assert_warehouses(&first, 0);
    server.stop();
    drop(server);

    let server = backend.start();
    let base = server.url();
    create_warehouses(&c, &base, 6, 2).await;
    let rest = read_stream(&base, "?type=WarehouseCreated", Some(first[2].id), 5).await;
    assert_warehouses(&rest, 3);
    let all: Vec<Value> = events_after(&c, &base, start)
        .await
        .into_iter()
        .filter(|e| e["type"] == "WarehouseCreated")
        .collect();
    assert_eq!(all.len(), 8);
    assert_strictly_increasing(&all);
}

/// A reader that walks the log with `after` while writes of several kinds commit concurrently
/// (on PostgreSQL from two instances, reading from both in turn) ends up with exactly the log:
/// no event skipped, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_tailing_concurrent_writes_sees_every_event_once() {
    let first = TestApp::spawn().await;
    let second = match &first.database {
        Some(url) => {
            let url = url.clone();
            Some(TestApp::spawn_configured(None, move |c| c.database = Some(url)).await)
        }
        None => None,
    };
    let bases: Vec<String> = std::iter::once(first.url())
        .chain(second.iter().map(|a| a.url()))
        .collect();
    let c = http();
    let base = bases[0].clone();
    let (s, campaign) = post(
        &c,
        format!("{base}/api/v1/campaigns"),
        json!({"name": "tail", "start_time": "2020-01-01T00:00:00Z", "total_coupons": 1000}),
    )
    .await;
    assert_eq!(s, 201, "{campaign}");
    let cid = campaign["id"].as_i64().unwrap();
    let (_, w) = post(
        &c,
        format!("{base}/api/v1/warehouses"),
        json!({"code": "TAIL", "name": "Tail"}),
    )
    .await;
    let (_, p) = post(
        &c,
        format!("{base}/api/v1/products"),
        json!({"sku": "TAIL-1", "name": "Tail", "price": {"amount_minor": 100, "currency": "EUR"}}),
    )
    .await;
    let (wid, pid) = (w["id"].as_i64().unwrap(), p["id"].as_i64().unwrap());
    let (s, _) = post(
        &c,
        format!("{base}/api/v1/inventory/adjust"),
        json!({"product_id": pid, "warehouse_id": wid, "mode": "set", "quantity": 1000, "reason": "count"}),
    )
    .await;
    assert_eq!(s, 200);
    let start = settled_seq(&c, &base).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::spawn({
        let (c, bases, stop) = (c.clone(), bases.clone(), stop.clone());
        async move {
            let mut seen = Vec::new();
            let mut after = start;
            let mut turn = 0;
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                let base = &bases[turn % bases.len()];
                turn += 1;
                let (s, page) =
                    send(c.get(format!("{base}/api/v1/events?after={after}&limit=50"))).await;
                assert_eq!(s, 200, "{page}");
                let events = page["events"].as_array().unwrap();
                seen.extend(events.iter().map(|e| e["seq"].as_i64().unwrap()));
                after = page["next_after"].as_i64().unwrap();
                if done && events.is_empty() {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let writers = (0..8).map(|t| {
        let (c, base) = (c.clone(), bases[t % bases.len()].clone());
        tokio::spawn(async move {
            for i in 0..25 {
                match i % 3 {
                    0 => {
                        let url = format!("{base}/api/v1/campaigns/{cid}/coupons");
                        let (s, b) = post(&c, url, json!({})).await;
                        assert_eq!(s, 201, "{b}");
                    }
                    1 => {
                        reserve_and_release(&c, &base, pid, 1, &format!("t{t}")).await;
                    }
                    _ => {
                        let (s, b) = post(
                            &c,
                            format!("{base}/api/v1/warehouses"),
                            json!({"code": format!("T{t}X{i}"), "name": "t"}),
                        )
                        .await;
                        assert_eq!(s, 201, "{b}");
                    }
                }
            }
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let log: Vec<i64> = events_after(&c, &base, start)
        .await
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    // 8 writers x 25 operations: 9 issues, 8 reserve + release pairs, 8 warehouses each.
    assert_eq!(log.len(), 8 * (9 + 16 + 8));
    assert_eq!(seen, log);
    if let Some(app) = second {
        app.stop().await;
    }
    first.stop().await;
}

/// An open stream does not hold the server's graceful shutdown for its grace period: it ends
/// when shutdown starts, and the client resumes elsewhere with its Last-Event-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_when_the_server_stops() {
    let app = TestApp::spawn().await;
    let r = crate::helpers::http()
        .get(format!(
            "{}/api/v1/events/stream?type=ProductDeleted",
            app.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut body = r.bytes_stream();
    let drained = tokio::spawn(async move { while let Some(Ok(_)) = body.next().await {} });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("the stream ended")
        .unwrap();
}
