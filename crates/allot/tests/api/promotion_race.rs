//! Promotions under concurrency, on the suite's backend (and one test on two instances of one
//! PostgreSQL): checkouts racing for a budget get exactly what it covers, to the cent; a
//! customer's concurrent holds stop at its limit; holds that expire give their share back;
//! rollbacks and cancellations give back once however often they are asked. After each test
//! the promotions' invariants are read from the database
//! ([`crate::helpers::assert_promotion_invariants`]).

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_promotion_invariants, http};

/// A status and a JSON body.
type Answer = (u16, Value);

/// Requests in flight at once: what a shop's checkout pool would hold, and what 2 cores in
/// CI serve without timing out.
const IN_FLIGHT: usize = 64;

pub(crate) async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A shop on a server: one product at 1,000 EUR minor units with plenty of stock.
pub(crate) struct Shop {
    pub c: reqwest::Client,
    pub base: String,
    pub product: i64,
}

impl Shop {
    pub async fn open(app: &TestApp, stock: i64) -> Shop {
        let shop = Shop {
            c: http(),
            base: app.url(),
            product: 0,
        };
        let (s, b) = shop
            .post(
                "/api/v1/products",
                json!({"sku": "TEA", "name": "Tea",
                       "price": {"amount_minor": 1_000, "currency": "EUR"}}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let product = b["id"].as_i64().expect("product id");
        let (s, b) = shop
            .post("/api/v1/warehouses", json!({"code": "W1", "name": "W1"}))
            .await;
        assert_eq!(s, 201, "{b}");
        let warehouse = b["id"].as_i64().expect("warehouse id");
        let (s, b) = shop
            .post(
                "/api/v1/inventory/adjust",
                json!({"product_id": product, "warehouse_id": warehouse, "mode": "set",
                       "quantity": stock, "reason": "count"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        Shop { product, ..shop }
    }

    /// The same shop seen through another server (another instance on the same database).
    pub fn on(&self, app: &TestApp) -> Shop {
        Shop {
            c: self.c.clone(),
            base: app.url(),
            product: self.product,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.c.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.c.get(format!("{}{path}", self.base))).await
    }

    /// An active promotion made from `spec`; its id.
    pub async fn promotion(&self, spec: Value) -> i64 {
        let (s, b) = self.post("/api/v1/promotions", spec).await;
        assert_eq!(s, 201, "{b}");
        b["id"].as_i64().expect("promotion id")
    }

    /// The promotion's usage: (redeemed_minor, redemptions, held_minor, held).
    pub async fn usage(&self, id: i64) -> (i64, i64, i64, i64) {
        let (s, b) = self.get(&format!("/api/v1/promotions/{id}")).await;
        assert_eq!(s, 200, "{b}");
        let u = &b["usage"];
        let n = |k: &str| u[k].as_i64().unwrap_or_else(|| panic!("{k} in {b}"));
        (
            n("redeemed_minor"),
            n("redemptions"),
            n("held_minor"),
            n("held"),
        )
    }

    /// A coupon with `max_uses`, bound to the promotion.
    pub async fn bound_coupon(&self, promotion: i64, code: &str, max_uses: i64) {
        let (s, b) = self
            .post(
                "/api/v1/coupons",
                json!({"coupons": [{"code": code, "type": null, "discount_kind": "FLAT",
                       "discount_amount": 1, "expires_at": "2099-01-01T00:00:00Z",
                       "max_uses": max_uses}]}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .post(
                &format!("/api/v1/promotions/{promotion}/codes"),
                json!({"coupons": [code]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["bound"], 1, "{b}");
    }

    /// A hold of one unit of the product for `customer`, with `codes`.
    pub async fn hold(&self, customer: &str, codes: &[&str], ttl_seconds: u64) -> (u16, Value) {
        self.post(
            "/api/v1/promotions/holds",
            json!({"lines": [{"product_id": self.product, "quantity": 1}],
                   "customer": {"id": customer}, "codes": codes,
                   "ttl_seconds": ttl_seconds}),
        )
        .await
    }

    /// An order of one unit of the product for `customer`: with `codes`, or consuming `hold`.
    pub async fn order(&self, customer: &str, codes: &[&str], hold: Option<i64>) -> (u16, Value) {
        let mut body = json!({
            "customer": customer,
            "shipping_address": {"name": "Ada", "line1": "1 Road", "city": "Paris",
                                 "postal_code": "75001", "country": "FR"},
            "lines": [{"product_id": self.product, "quantity": 1}],
        });
        if !codes.is_empty() {
            body["codes"] = json!(codes);
        }
        if let Some(h) = hold {
            body["promotion_hold_id"] = json!(h);
        }
        self.post("/api/v1/orders", body).await
    }
}

/// What a hold applied in all (its evaluation's discount on lines and shipping).
pub(crate) fn held_amount(hold: &Value) -> i64 {
    hold["evaluation"]["applied"]
        .as_array()
        .unwrap_or_else(|| panic!("applied in {hold}"))
        .iter()
        .map(|a| a["amount_minor"].as_i64().expect("amount_minor"))
        .sum()
}

/// What an order got from promotions.
fn order_promotion_amount(order: &Value) -> i64 {
    order["promotions"]
        .as_array()
        .unwrap_or_else(|| panic!("promotions in {order}"))
        .iter()
        .map(|p| p["amount_minor"].as_i64().expect("amount_minor"))
        .sum()
}

/// 250 off every EUR cart, 25,000 in all: a budget that covers exactly 100 checkouts.
fn budget_of_100() -> Value {
    json!({"name": "250 off, 100 times", "trigger": "automatic",
           "conditions": {"currency": "EUR"},
           "actions": [{"type": "amount_off", "amount_minor": 250}],
           "limits": {"budget_minor": 25_000}})
}

/// `checkouts` customers check out at once, [`IN_FLIGHT`] at a time, through `shops` in
/// turn: the even ones hold over REST and place an order consuming their hold, the odd ones
/// place an order that the server holds for itself. Every order is placed; answers each
/// order's promotion amount.
async fn checkouts(shops: &[Shop], checkouts: usize) -> Vec<i64> {
    futures::stream::iter(0..checkouts)
        .map(|i| async move {
            let shop = &shops[i % shops.len()];
            let customer = format!("c{i}");
            let hold = if i % 2 == 0 {
                let (s, h) = shop.hold(&customer, &[], 60).await;
                assert_eq!(s, 201, "{h}");
                Some(h["id"].as_i64().expect("hold id"))
            } else {
                None
            };
            let (s, o) = shop.order(&customer, &[], hold).await;
            assert_eq!(s, 201, "checkout {i}: {o}");
            // An order names the hold it was given; without one, the server holds for it only
            // when a promotion applies.
            let named = o["promotion_hold_id"].as_i64();
            match hold {
                Some(given) => assert_eq!(named, Some(given), "{o}"),
                None => assert_eq!(
                    named.is_some(),
                    order_promotion_amount(&o) > 0,
                    "a hold exactly when discounted: {o}"
                ),
            }
            assert_eq!(
                o["total_minor"].as_i64().expect("total"),
                1_000 - order_promotion_amount(&o),
                "{o}"
            );
            order_promotion_amount(&o)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_1000_checkouts_for_a_budget_of_100_give_exactly_100_to_the_cent() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 2_000).await;
    let id = shop.promotion(budget_of_100()).await;

    let started = Instant::now();
    let amounts = checkouts(std::slice::from_ref(&shop), 1_000).await;
    let winners = amounts.iter().filter(|a| **a > 0).count();
    assert_eq!(
        winners, 100,
        "exactly the budget's 100 checkouts are discounted"
    );
    assert!(amounts.iter().all(|a| *a == 0 || *a == 250), "{amounts:?}");
    assert_eq!(amounts.iter().sum::<i64>(), 25_000);
    assert_eq!(shop.usage(id).await, (25_000, 100, 0, 0));
    tracing::info!(elapsed = ?started.elapsed(), "1,000 checkouts");

    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT CAST(coalesce(sum(promotion_minor), 0) AS BIGINT) FROM orders")
            .await,
        25_000
    );
    assert_promotion_invariants(&db).await;
    app.stop().await;
}

/// An external checkout's two ways to redeem, racing for one budget: 600 carts, half redeemed
/// in one call (`/promotions/redemptions`, each sent twice with one idempotency key, as a
/// client retrying a lost answer), half held then redeemed. Exactly the budget's 100 get the
/// discount, each one-call redemption counted once, and nothing stays held.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_one_call_redemptions_and_holds_share_a_budget_of_100_exactly() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let id = shop.promotion(budget_of_100()).await;
    let amounts: Vec<i64> = futures::stream::iter(0..600)
        .map(|i| {
            let shop = &shop;
            async move {
                let customer = format!("x{i}");
                let cart = json!({"lines": [{"product_id": shop.product, "quantity": 1}],
                                  "customer": {"id": customer}, "reference": format!("ext-{i}")});
                if i % 2 == 0 {
                    let once = || {
                        send(
                            shop.c
                                .post(format!("{}/api/v1/promotions/redemptions", shop.base))
                                .header("Idempotency-Key", format!("redeem-{i}"))
                                .json(&cart),
                        )
                    };
                    let (s, first) = once().await;
                    assert_eq!(s, 201, "{first}");
                    let (s, again) = once().await;
                    assert_eq!((s, &again["id"]), (201, &first["id"]), "{again}");
                    assert_eq!(first["status"], "redeemed", "{first}");
                    assert_eq!(first["reference"], format!("ext-{i}"), "{first}");
                    held_amount(&first)
                } else {
                    let (s, h) = shop.hold(&customer, &[], 60).await;
                    assert_eq!(s, 201, "{h}");
                    let amount = held_amount(&h);
                    let hold = h["id"].as_i64().expect("hold id");
                    let (s, r) = shop
                        .post(
                            &format!("/api/v1/promotions/holds/{hold}/redeem"),
                            json!({"reference": format!("ext-{i}")}),
                        )
                        .await;
                    assert_eq!((s, r["status"].as_str()), (200, Some("redeemed")), "{r}");
                    amount
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert_eq!(amounts.iter().filter(|a| **a > 0).count(), 100);
    assert!(amounts.iter().all(|a| *a == 0 || *a == 250), "{amounts:?}");
    assert_eq!(shop.usage(id).await, (25_000, 100, 0, 0));
    let (s, r) = shop
        .post(
            "/api/v1/promotions/redemptions",
            json!({"lines": [{"product_id": shop.product, "quantity": 1}], "reference": " "}),
        )
        .await;
    assert_eq!(
        (s, r["error"]["field"].as_str()),
        (422, Some("reference")),
        "{r}"
    );
    assert_promotion_invariants(&app.db().await).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_one_customers_concurrent_holds_stop_at_its_limit() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let id = shop
        .promotion(json!({"name": "3 per customer", "trigger": "automatic",
                          "actions": [{"type": "percent_off", "percent": 10}],
                          "limits": {"per_customer_redemptions_max": 3}}))
        .await;

    let holds: Vec<Value> = futures::stream::iter(0..40)
        .map(|_| async {
            let (s, h) = shop.hold("ann", &[], 600).await;
            assert_eq!(s, 201, "{h}");
            h
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let applied: Vec<&Value> = holds.iter().filter(|h| held_amount(h) > 0).collect();
    assert_eq!(applied.len(), 3, "ann holds the promotion 3 times, no more");
    assert!(applied.iter().all(|h| held_amount(h) == 100));
    // The others were told why.
    let refused = holds
        .iter()
        .filter(|h| {
            h["evaluation"]["refused"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["reason"] == "customer_limit_reached"))
        })
        .count();
    assert_eq!(refused, 37);
    assert_eq!(shop.usage(id).await, (0, 0, 300, 3));
    // Another customer is not limited by ann's holds.
    let (s, h) = shop.hold("bob", &[], 600).await;
    assert_eq!((s, held_amount(&h)), (201, 100), "{h}");

    assert_promotion_invariants(&app.db().await).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_holds_that_expire_give_their_share_back_to_others() {
    let app = TestApp::spawn_configured(None, |c| {
        c.promotion_hold_expiry_interval = Some(Duration::from_millis(200));
    })
    .await;
    let shop = Shop::open(&app, 100).await;
    let id = shop
        .promotion(json!({"name": "twice", "trigger": "automatic",
                          "conditions": {"currency": "EUR"},
                          "actions": [{"type": "amount_off", "amount_minor": 300}],
                          "limits": {"budget_minor": 600}}))
        .await;

    // Ten checkouts at once with a 1 s hold: two get the budget.
    let first: Vec<Value> = futures::stream::iter(0..10)
        .map(|i| {
            let shop = &shop;
            async move {
                let (s, h) = shop.hold(&format!("early{i}"), &[], 1).await;
                assert_eq!(s, 201, "{h}");
                h
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let winners: Vec<i64> = first
        .iter()
        .filter(|h| held_amount(h) > 0)
        .map(|h| h["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(winners.len(), 2);
    assert_eq!(shop.usage(id).await, (0, 0, 600, 2));
    let (s, late) = shop.order("late", &[], None).await;
    assert_eq!((s, order_promotion_amount(&late)), (201, 0), "{late}");

    // Nobody orders: the holds expire and the job gives the budget back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while shop.usage(id).await != (0, 0, 0, 0) {
        assert!(Instant::now() < deadline, "the holds never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in &winners {
        let (s, h) = shop.get(&format!("/api/v1/promotions/holds/{w}")).await;
        assert_eq!((s, h["status"].as_str()), (200, Some("expired")), "{h}");
        // An expired hold is no use to an order.
        let (s, o) = shop.order(&format!("early{}", 0), &[], Some(*w)).await;
        assert_eq!(s, 409, "{o}");
        assert_eq!(o["error"]["code"], "promotion_hold_unusable", "{o}");
    }

    // Then others get it: two orders at once, both discounted, then nothing left.
    let (a, b) = tokio::join!(
        shop.order("next1", &[], None),
        shop.order("next2", &[], None)
    );
    assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
    assert_eq!(
        order_promotion_amount(&a.1) + order_promotion_amount(&b.1),
        600
    );
    assert_eq!(shop.usage(id).await, (600, 2, 0, 0));

    assert_promotion_invariants(&app.db().await).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_rollback_called_20_times_at_once_gives_back_once() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let id = shop
        .promotion(json!({"name": "SPRING", "trigger": "code",
                          "conditions": {"currency": "EUR"},
                          "actions": [{"type": "amount_off", "amount_minor": 200}],
                          "limits": {"budget_minor": 1_000, "redemptions_max": 5}}))
        .await;
    shop.bound_coupon(id, "SPRING", 5).await;
    let (s, h) = shop.hold("ann", &["SPRING"], 600).await;
    assert_eq!((s, held_amount(&h)), (201, 200), "{h}");
    let hold = h["id"].as_i64().expect("hold id");
    let (s, r) = shop
        .post(
            &format!("/api/v1/promotions/holds/{hold}/redeem"),
            json!({"reference": "ext-1"}),
        )
        .await;
    assert_eq!((s, r["status"].as_str()), (200, Some("redeemed")), "{r}");
    assert_eq!(shop.usage(id).await, (200, 1, 0, 0));

    let rollback = format!("/api/v1/promotions/holds/{hold}/rollback");
    let answers: Vec<(u16, Value)> = futures::stream::iter(0..20)
        .map(|_| shop.post(&rollback, json!({})))
        .buffer_unordered(20)
        .collect()
        .await;
    for (s, b) in &answers {
        assert_eq!(
            (*s, b["status"].as_str()),
            (200, Some("rolled_back")),
            "{b}"
        );
    }
    assert_eq!(shop.usage(id).await, (0, 0, 0, 0));
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE type = 'PromotionRolledBack'")
            .await,
        1,
        "one rollback happened"
    );
    assert_eq!(
        db.count("SELECT uses FROM promotion_codes WHERE code = 'SPRING'")
            .await,
        0,
        "the code's use is given back once"
    );
    assert_promotion_invariants(&db).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_a_cancelled_order_gives_its_promotion_back_once() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let id = shop
        .promotion(json!({"name": "SPRING", "trigger": "code",
                          "conditions": {"currency": "EUR"},
                          "actions": [{"type": "percent_off", "percent": 20}],
                          "limits": {"budget_minor": 400, "redemptions_max": 2}}))
        .await;
    shop.bound_coupon(id, "SPRING", 2).await;
    let (s, o) = shop.order("ann", &["spring"], None).await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(order_promotion_amount(&o), 200);
    assert_eq!(o["promotions"][0]["code"], "SPRING", "{o}");
    assert_eq!(o["total_minor"], 800);
    let order = o["id"].as_i64().expect("order id");
    let hold = o["promotion_hold_id"].as_i64().expect("the order's hold");
    assert_eq!(shop.usage(id).await, (200, 1, 0, 0));

    // Ten cancellations and ten rollbacks of its hold at once: one gives back.
    let cancels = futures::stream::iter(0..10).map(|_| {
        send(
            shop.c
                .put(format!("{}/api/v1/orders/{order}/status", shop.base))
                .json(&json!({"status": "cancelled"})),
        )
    });
    let rollback = format!("/api/v1/promotions/holds/{hold}/rollback");
    let rollbacks = futures::stream::iter(0..10).map(|_| shop.post(&rollback, json!({})));
    let (cancelled, rolled): (Vec<Answer>, Vec<Answer>) = tokio::join!(
        cancels.buffer_unordered(10).collect(),
        rollbacks.buffer_unordered(10).collect()
    );
    assert_eq!(cancelled.iter().filter(|(s, _)| *s == 200).count(), 1);
    assert!(
        cancelled
            .iter()
            .all(|(s, b)| *s == 200 || b["error"]["code"] == "illegal_transition"),
        "{cancelled:?}"
    );
    assert!(rolled.iter().all(|(s, _)| *s == 200), "{rolled:?}");
    assert_eq!(shop.usage(id).await, (0, 0, 0, 0));
    let (s, h) = shop.get(&format!("/api/v1/promotions/holds/{hold}")).await;
    assert_eq!((s, h["status"].as_str()), (200, Some("rolled_back")), "{h}");

    // Given back once: the promotion serves exactly two more orders.
    let more: Vec<(u16, Value)> = futures::stream::iter(["bob", "cy", "dee"])
        .map(|c| shop.order(c, &["SPRING"], None))
        .buffer_unordered(3)
        .collect()
        .await;
    assert_eq!(
        more.iter().filter(|(s, _)| *s == 201).count(),
        2,
        "{more:?}"
    );
    let refused: Vec<&Value> = more
        .iter()
        .filter(|(s, _)| *s != 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0]["error"]["code"], "promotion_code_refused",
        "{refused:?}"
    );
    assert_eq!(shop.usage(id).await, (400, 2, 0, 0));

    assert_promotion_invariants(&app.db().await).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_an_order_consuming_a_hold_and_its_release_at_once_one_wins() {
    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 100).await;
    let id = shop
        .promotion(json!({"name": "100 off", "trigger": "automatic",
                          "conditions": {"currency": "EUR"},
                          "actions": [{"type": "amount_off", "amount_minor": 100}],
                          "limits": {"budget_minor": 100_000}}))
        .await;
    let mut ordered = 0;
    for round in 0..20 {
        let customer = format!("r{round}");
        let (s, h) = shop.hold(&customer, &[], 600).await;
        assert_eq!((s, held_amount(&h)), (201, 100), "{h}");
        let hold = h["id"].as_i64().expect("hold id");
        let release = format!("/api/v1/promotions/holds/{hold}/release");
        let ((so, o), (sr, r)) = tokio::join!(
            shop.order(&customer, &[], Some(hold)),
            shop.post(&release, json!({}))
        );
        match (so, sr) {
            (201, 409) => {
                assert_eq!(o["total_minor"], 900, "{o}");
                ordered += 1;
            }
            (409, 200) => {
                assert_eq!(o["error"]["code"], "promotion_hold_unusable", "{o}");
                assert_eq!(r["status"], "released", "{r}");
            }
            other => panic!("round {round}: one wins, got {other:?}: {o} {r}"),
        }
    }
    assert_eq!(shop.usage(id).await, (100 * ordered, ordered, 0, 0));
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_eq!(
        db.count("SELECT count(*) FROM orders WHERE promotion_hold_id IS NOT NULL")
            .await,
        ordered
    );
    assert_promotion_invariants(&db).await;
    app.stop().await;
}

/// Two instances on one PostgreSQL, whatever the suite's backend: checkouts through both at
/// once never spend past the budget, which each instance checks only in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promotion_race_two_instances_on_one_postgres_give_exactly_the_budget() {
    let cluster = allot_testkit::PgCluster::start();
    let now = allot_domain::UnixMillis::from_millis(1_800_000_000_000);
    let one = TestApp::spawn_on(Some(cluster.url()), now, |_| {}).await;
    let two = TestApp::spawn_on(Some(cluster.url()), now, |_| {}).await;
    let shop = Shop::open(&one, 1_000).await;
    let id = shop
        .promotion(json!({"name": "250 off, 40 times", "trigger": "automatic",
                          "conditions": {"currency": "EUR"},
                          "actions": [{"type": "amount_off", "amount_minor": 250}],
                          "limits": {"budget_minor": 10_000}}))
        .await;
    let shops = [shop.on(&one), shop.on(&two)];

    let amounts = checkouts(&shops, 400).await;
    assert_eq!(amounts.iter().filter(|a| **a > 0).count(), 40);
    assert_eq!(amounts.iter().sum::<i64>(), 10_000);
    assert_eq!(shop.usage(id).await, (10_000, 40, 0, 0));

    assert_promotion_invariants(&one.db().await).await;
    one.stop().await;
    two.stop().await;
}

/// The invariant check is not vacuous: a counter one off from the holds, written behind the
/// server's back, is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_race_the_invariant_check_catches_a_counter_that_disagrees_with_its_holds() {
    use futures::FutureExt;

    let app = TestApp::spawn().await;
    let shop = Shop::open(&app, 10).await;
    let id = shop
        .promotion(json!({"name": "10%", "trigger": "automatic",
                          "actions": [{"type": "percent_off", "percent": 10}]}))
        .await;
    let (s, h) = shop.hold("ann", &[], 600).await;
    assert_eq!((s, held_amount(&h)), (201, 100), "{h}");
    let db = app.db().await;
    crate::invariants::assert_invariants(&db).await;
    assert_promotion_invariants(&db).await;

    let skew = format!("UPDATE promotions SET held_minor = held_minor + 1 WHERE id = {id}");
    match &app.database {
        Some(url) => {
            let pg = allot_storage::postgres::connect(url)
                .await
                .expect("postgres connects");
            pg.execute(skew.as_str(), &[]).await.expect("skewed");
        }
        None => {
            let path = allot_storage::SqliteStore::database_path(&app.data_dir.path().join("data"));
            let conn = rusqlite::Connection::open(path).expect("database opens");
            conn.busy_timeout(Duration::from_secs(5))
                .expect("busy timeout");
            conn.execute(&skew, []).expect("skewed");
        }
    }
    let caught = std::panic::AssertUnwindSafe(assert_promotion_invariants(&db))
        .catch_unwind()
        .await;
    assert!(caught.is_err(), "a held_minor one off passed the check");
    app.stop().await;
}
