//! `allot load promotions`: in one run against one server, its HTTP hello-world; today's
//! coupon redemption; redemption through a promotion with a money budget (a hold, then its
//! redemption, per checkout); a race of many checkouts for a budget that covers few; and the
//! preview of a 10-line cart against many active automatic promotions, most of which fail a
//! condition. Then verifies every budget to the minor unit, and that the preview gives what
//! the promotions written say.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::grpc_client::DEFAULT_SERVER;
use crate::issue_load::{Transport, hello, http_client};
use crate::load::{self, Budget, Outcome, Summary};

/// What each checkout of the redemption phases takes off: 10% of one line of 100.00.
const CART_PRICE_MINOR: i64 = 10_000;
const DISCOUNT_MINOR: i64 = 1_000;
/// One promotion in this many of the preview's applies to its cart; the others each fail a
/// different condition.
const APPLYING_EVERY: usize = 200;
/// The route whose server-side durations the preview reports.
const EVALUATE_ROUTE: &str = "/api/v1/promotions/evaluate";

#[derive(Debug, Args)]
pub(crate) struct PromotionLoad {
    /// Server URL
    #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Active automatic promotions the preview is evaluated against
    #[arg(long, default_value_t = 1_000)]
    promotions: usize,
    /// Seconds of each preview run (one client, then `concurrency` clients)
    #[arg(long, default_value_t = 5)]
    preview_seconds: u64,
    /// Redemptions of each kind (coupons; holds redeemed through a budgeted promotion)
    #[arg(long, default_value_t = 10_000)]
    redemptions: usize,
    /// Checkouts racing for the small budget, and how many of them it covers
    #[arg(long, default_value_t = 1_000)]
    race_checkouts: usize,
    #[arg(long, default_value_t = 100)]
    race_covers: usize,
    /// Concurrent clients
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of the hello-world run
    #[arg(long, default_value_t = 5)]
    hello_seconds: u64,
    /// No progress bars
    #[arg(long)]
    no_progress: bool,
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(
            method.parse().unwrap_or(reqwest::Method::GET),
            format!("{}{path}", self.base),
        );
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!({"error": e.to_string()})),
        }
    }

    /// A call that must succeed (setting up, reading back).
    async fn expect(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (status, answer) = self.call(method, path, body).await;
        if (200..300).contains(&status) {
            Ok(answer)
        } else {
            Err(format!("{method} {path}: {status} {answer}"))
        }
    }
}

/// A checkout's cart for the redemption phases: one line of 100.00 EUR, for `customer`.
fn checkout_cart(customer: &str) -> Value {
    json!({
        "currency": "EUR",
        "lines": [{"product_id": 1, "quantity": 1, "unit_price_minor": CART_PRICE_MINOR,
                   "category_ids": [], "attributes": {}}],
        "customer": {"id": customer, "orders_before": 1},
    })
}

/// 10% off EUR carts, with a money budget: its id.
async fn budgeted(api: &Api, name: &str, budget_minor: i64) -> Result<i64, String> {
    let p = api
        .expect(
            "POST",
            "/api/v1/promotions",
            Some(json!({"name": name, "trigger": "automatic",
                        "conditions": {"currency": "EUR"},
                        "actions": [{"type": "percent_off", "percent": 10}],
                        "limits": {"budget_minor": budget_minor}})),
        )
        .await?;
    p["id"].as_i64().ok_or_else(|| format!("no id in {p}"))
}

async fn switch_off(api: &Api, id: i64) -> Result<(), String> {
    let mut p = api
        .expect("GET", &format!("/api/v1/promotions/{id}"), None)
        .await?;
    let spec = json!({
        "name": p["name"].take(), "description": p["description"].take(),
        "trigger": p["trigger"].take(), "conditions": p["conditions"].take(),
        "actions": p["actions"].take(), "stacking": p["stacking"].take(),
        "limits": p["limits"].take(), "active": false,
    });
    api.expect("PUT", &format!("/api/v1/promotions/{id}"), Some(spec))
        .await
        .map(|_| ())
}

/// Checks a promotion's usage against what the clients were answered.
async fn verify_usage(
    api: &Api,
    id: i64,
    redeemed_minor: i64,
    redemptions: i64,
    budget_minor: i64,
    problems: &mut Vec<String>,
) -> Result<(), String> {
    let p = api
        .expect("GET", &format!("/api/v1/promotions/{id}"), None)
        .await?;
    let usage = &p["usage"];
    let got = (
        usage["redeemed_minor"].as_i64(),
        usage["redemptions"].as_i64(),
        usage["held_minor"].as_i64(),
        usage["held"].as_i64(),
    );
    if got != (Some(redeemed_minor), Some(redemptions), Some(0), Some(0)) {
        problems.push(format!(
            "promotion {id}: usage {usage}, the clients were answered {redeemed_minor} minor in {redemptions} redemptions, nothing held"
        ));
    }
    if redeemed_minor > budget_minor {
        problems.push(format!(
            "promotion {id}: {redeemed_minor} redeemed of a budget of {budget_minor}"
        ));
    }
    Ok(())
}

/// How a checkout redeems: a hold, then its redemption; or both in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redeem {
    HoldThenRedeem,
    OneCall,
}

impl Redeem {
    fn label(self) -> &'static str {
        match self {
            Redeem::HoldThenRedeem => "hold + redeem",
            Redeem::OneCall => "one call",
        }
    }

    /// The customers' ids of a phase start with it.
    fn prefix(self) -> &'static str {
        match self {
            Redeem::HoldThenRedeem => "load",
            Redeem::OneCall => "one",
        }
    }
}

/// One checkout, redeemed `how`. Adds what it was given to `given`.
async fn checkout(
    client: reqwest::Client,
    base: String,
    customer: String,
    given: Arc<AtomicI64>,
    how: Redeem,
) -> Outcome {
    if how == Redeem::OneCall {
        let mut cart = checkout_cart(&customer);
        cart["reference"] = json!(customer);
        let r = client
            .post(format!("{base}/api/v1/promotions/redemptions"))
            .json(&cart)
            .send()
            .await;
        return match r {
            Ok(r) if r.status().as_u16() == 201 => match r.json::<Value>().await {
                Ok(h) => match h["evaluation"]["discount_minor"].as_i64().unwrap_or(0) {
                    0 => Outcome::Refused("budget_spent"),
                    amount => {
                        given.fetch_add(amount, Ordering::Relaxed);
                        Outcome::Ok
                    }
                },
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Ok(r) => Outcome::Failed(format!("redemption: status {}", r.status())),
            Err(e) => Outcome::Failed(e.to_string()),
        };
    }
    let r = client
        .post(format!("{base}/api/v1/promotions/holds"))
        .json(&{
            let mut cart = checkout_cart(&customer);
            cart["ttl_seconds"] = json!(600);
            cart
        })
        .send()
        .await;
    let hold: Value = match r {
        Ok(r) if r.status().as_u16() == 201 => match r.json().await {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(e.to_string()),
        },
        Ok(r) => return Outcome::Failed(format!("hold: status {}", r.status())),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let amount = hold["evaluation"]["discount_minor"].as_i64().unwrap_or(0);
    if amount == 0 {
        // The budget is spent: the checkout goes on without a discount, nothing to redeem.
        return Outcome::Refused("budget_spent");
    }
    let id = hold["id"].as_i64().unwrap_or(0);
    match client
        .post(format!("{base}/api/v1/promotions/holds/{id}/redeem"))
        .json(&json!({"reference": customer}))
        .send()
        .await
    {
        Ok(r) if r.status().as_u16() == 200 => {
            given.fetch_add(amount, Ordering::Relaxed);
            Outcome::Ok
        }
        Ok(r) => Outcome::Failed(format!("redeem: status {}", r.status())),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// The preview's cart: 10 lines of products 1 to 10 (in categories 1 and 2), a regular
/// customer with earlier orders.
fn preview_cart() -> Value {
    let lines: Vec<Value> = (1..=10)
        .map(|p: i64| {
            json!({"product_id": p, "quantity": 1 + p % 3, "unit_price_minor": 1_000 * p,
                   "category_ids": [1 + p % 2], "attributes": {"colour": "blue"}})
        })
        .collect();
    json!({"currency": "EUR", "lines": lines, "shipping_minor": 500,
           "customer": {"id": "preview-customer", "role": "customer", "tags": ["regular"],
                        "orders_before": 3}})
}

/// Promotion `i` of the preview's mix: every [`APPLYING_EVERY`]th applies to
/// [`preview_cart`]; each other fails one condition of nine kinds, with one of five actions.
fn mixed_promotion(i: usize) -> Value {
    let actions = match i % 5 {
        0 => json!([{"type": "percent_off", "percent": 5 + i % 20, "cap_minor": 5_000}]),
        1 => json!([{"type": "amount_off", "amount_minor": 500, "target": "order"}]),
        2 => json!([{"type": "buy_x_get_y", "buy": 2, "get": 1, "max_applications": 3}]),
        3 => json!([{"type": "tiered", "tiers": [
            {"min_subtotal_minor": 10_000, "percent": 5},
            {"min_subtotal_minor": 50_000, "percent": 10}]}]),
        _ => json!([{"type": "free_shipping"}]),
    };
    if i.is_multiple_of(APPLYING_EVERY) {
        return json!({"name": format!("bench applies {i}"), "trigger": "automatic",
                      "conditions": {"currency": "EUR", "min_subtotal_minor": 1_000},
                      "actions": [{"type": "percent_off", "percent": 1 + (i / APPLYING_EVERY) % 5}],
                      "stacking": {"class": "bench", "priority": i % 7}});
    }
    let conditions = match i % 9 {
        0 => json!({"currency": "USD"}),
        1 => json!({"min_subtotal_minor": 100_000_000}),
        2 => json!({"products": [1_000_000 + i as i64, 1_000_001 + i as i64]}),
        3 => json!({"categories": [1_000_000 + i as i64]}),
        4 => json!({"customer_tags": [format!("vip-{i}")]}),
        5 => json!({"first_order": true}),
        6 => json!({"ends_at": "2020-01-01T00:00:00Z"}),
        7 => json!({"starts_at": "2099-01-01T00:00:00Z"}),
        _ => json!({"min_quantity": 10_000, "minimums_of": "matching", "categories": [1]}),
    };
    json!({"name": format!("bench fails {i}"), "trigger": "automatic",
           "conditions": conditions, "actions": actions,
           "stacking": {"class": format!("c{}", i % 4), "priority": i % 11}})
}

/// The request durations the server recorded for `route` (its Prometheus histogram, answers
/// of 200): cumulative count per bucket bound, in seconds.
async fn server_buckets(api: &Api, route: &str) -> Result<Vec<(f64, u64)>, String> {
    let text = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let route_label = format!("route=\"{route}\"");
    let mut out = Vec::new();
    for line in text.lines() {
        if !line.starts_with("allot_request_duration_seconds_bucket{")
            || !line.contains(&route_label)
            || !line.contains("status=\"200\"")
        {
            continue;
        }
        let le = line
            .split("le=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(|v| {
                if v == "+Inf" {
                    f64::INFINITY
                } else {
                    v.parse().unwrap_or(f64::INFINITY)
                }
            });
        let count = line.rsplit(' ').next().and_then(|c| c.parse::<f64>().ok());
        if let (Some(le), Some(count)) = (le, count) {
            out.push((le, count as u64));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

/// The bucket bound under which a fraction `q` of the requests between two readings fell:
/// the server-side quantile, as fine as the histogram's buckets.
fn bucket_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0, |(_, m)| *m);
            (*le, n.saturating_sub(was))
        })
        .collect();
    let total = delta.last().map(|(_, n)| *n)?;
    if total == 0 {
        return None;
    }
    let wanted = (q * total as f64).ceil() as u64;
    delta.iter().find(|(_, n)| *n >= wanted).map(|(le, _)| *le)
}

fn ms(bound: Option<f64>) -> String {
    match bound {
        Some(s) if s.is_finite() => format!("<= {:.2}ms", s * 1_000.0),
        Some(_) => "> 10s".to_owned(),
        None => "n/a".to_owned(),
    }
}

impl PromotionLoad {
    pub(crate) async fn run(self) -> Result<(), String> {
        let base = self.server.trim_end_matches('/').to_owned();
        let client = http_client()?;
        let api = Api {
            client: client.clone(),
            base: base.clone(),
        };
        let progress = !self.no_progress;
        let run = load::run_id()?;
        let mut problems = Vec::new();

        let transport = Transport::http(client.clone(), &base);
        let hello_summary = hello(&transport, self.concurrency, self.hello_seconds, progress).await;
        println!("{}", hello_summary.line());

        // Today's coupon redemption: coupons uploaded, each allocated to a user, then each
        // redeemed by its user (the timed part).
        let coupon_summary = self.coupons(&api, &run, progress).await?;
        println!("{}", coupon_summary.line());
        if coupon_summary.ok as usize != self.redemptions || coupon_summary.failed > 0 {
            problems.push(format!(
                "{} of {} coupon redemptions ({:?})",
                coupon_summary.ok, self.redemptions, coupon_summary.first_failure
            ));
        }

        // Redemption through a promotion with a money budget that covers every checkout:
        // held then redeemed (two calls), then redeemed in one call.
        println!(
            "  -> coupon redemption {:.0}% of the HTTP hello-world rate",
            100.0 * coupon_summary.rate() / hello_summary.rate()
        );
        for how in [Redeem::HoldThenRedeem, Redeem::OneCall] {
            let summary = self
                .redemptions(&api, &run, how, progress, &mut problems)
                .await?;
            println!(
                "  -> promotion redemption ({}) {:.0}% of the HTTP hello-world rate; promotion ({}) / coupon = {:.2}",
                how.label(),
                100.0 * summary.rate() / hello_summary.rate(),
                how.label(),
                summary.rate() / coupon_summary.rate().max(1e-9)
            );
        }

        // The race: many checkouts at once for a budget that covers few.
        let race_budget = self.race_covers as i64 * DISCOUNT_MINOR;
        let race_id = budgeted(&api, &format!("bench race {run}"), race_budget).await?;
        let race_given = Arc::new(AtomicI64::new(0));
        let race = {
            let (client, base, given, run) = (
                client.clone(),
                base.clone(),
                race_given.clone(),
                run.clone(),
            );
            load::run(
                "budget race (hold + redeem)",
                self.concurrency,
                Budget::Requests(self.race_checkouts as u64),
                progress,
                move |_, i| {
                    checkout(
                        client.clone(),
                        base.clone(),
                        format!("race-{run}-{i}"),
                        given.clone(),
                        Redeem::HoldThenRedeem,
                    )
                },
            )
            .await
        };
        println!("{}", race.line());
        let race_minor = race_given.load(Ordering::Relaxed);
        if race.ok as usize != self.race_covers.min(self.race_checkouts)
            || race_minor != race_budget.min(self.race_checkouts as i64 * DISCOUNT_MINOR)
            || race.failed > 0
        {
            problems.push(format!(
                "the race gave {race_minor} minor in {} redemptions for a budget covering {} ({:?})",
                race.ok, self.race_covers, race.first_failure
            ));
        }
        verify_usage(
            &api,
            race_id,
            race_minor,
            race.ok as i64,
            race_budget,
            &mut problems,
        )
        .await?;
        switch_off(&api, race_id).await?;

        // The preview against the mix.
        let started = Instant::now();
        let created = {
            let api = Arc::new(Api {
                client: client.clone(),
                base: base.clone(),
            });
            let failures = Arc::new(Mutex::new(Vec::new()));
            let f = failures.clone();
            let summary = load::run(
                "create promotions",
                8,
                Budget::Requests(self.promotions as u64),
                progress,
                move |_, i| {
                    let api = api.clone();
                    let failures = f.clone();
                    async move {
                        match api
                            .expect(
                                "POST",
                                "/api/v1/promotions",
                                Some(mixed_promotion(i as usize)),
                            )
                            .await
                        {
                            Ok(_) => Outcome::Ok,
                            Err(e) => {
                                failures.lock().map(|mut v| v.push(e.clone())).ok();
                                Outcome::Failed(e)
                            }
                        }
                    }
                },
            )
            .await;
            if summary.failed > 0 {
                return Err(format!(
                    "creating the promotions: {:?}",
                    summary.first_failure
                ));
            }
            summary.ok
        };
        println!(
            "created {created} active automatic promotions in {:.1}s ({} apply to the cart)",
            started.elapsed().as_secs_f64(),
            self.promotions.div_ceil(APPLYING_EVERY)
        );
        let cart = preview_cart();
        let first = api
            .expect("POST", EVALUATE_ROUTE, Some(cart.clone()))
            .await?;
        let applied = first["applied"].as_array().map_or(0, Vec::len);
        if applied != self.promotions.div_ceil(APPLYING_EVERY) {
            problems.push(format!(
                "the preview applied {applied} promotions, not the {} written to apply",
                self.promotions.div_ceil(APPLYING_EVERY)
            ));
        }
        println!(
            "preview: subtotal {} discount {} shipping {} total {}, {applied} applied",
            first["subtotal_minor"],
            first["discount_minor"],
            first["shipping_minor"],
            first["total_minor"]
        );
        for concurrency in [1, self.concurrency] {
            let before = server_buckets(&api, EVALUATE_ROUTE).await?;
            let summary = preview(
                &client,
                &base,
                &cart,
                concurrency,
                self.preview_seconds,
                progress,
            )
            .await;
            let after = server_buckets(&api, EVALUATE_ROUTE).await?;
            println!("{}", summary.line());
            println!(
                "  -> at the server (its request duration histogram): p50 {} p99 {}",
                ms(bucket_quantile(&before, &after, 0.50)),
                ms(bucket_quantile(&before, &after, 0.99))
            );
            if summary.failed > 0 {
                problems.push(format!("preview failures: {:?}", summary.first_failure));
            }
        }

        if problems.is_empty() {
            println!(
                "verified: every budget exact to the minor unit ({} given in {} redemptions each way; the race gave {race_minor} in {} for a budget covering {}); the preview applied the {applied} promotions written to apply",
                self.redemptions as i64 * DISCOUNT_MINOR,
                self.redemptions,
                race.ok,
                self.race_covers
            );
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// [`Self::redemptions`] checkouts redeeming `how` a fresh promotion whose budget covers
    /// them all; its usage checked against what the clients were told.
    async fn redemptions(
        &self,
        api: &Api,
        run: &str,
        how: Redeem,
        progress: bool,
        problems: &mut Vec<String>,
    ) -> Result<Summary, String> {
        let budget = self.redemptions as i64 * DISCOUNT_MINOR;
        let id = budgeted(api, &format!("bench {} {run}", how.label()), budget).await?;
        let given = Arc::new(AtomicI64::new(0));
        let summary = {
            let (client, base, given, prefix) = (
                api.client.clone(),
                api.base.clone(),
                given.clone(),
                format!("{}-{run}", how.prefix()),
            );
            load::run(
                &format!("promotion redemption ({})", how.label()),
                self.concurrency,
                Budget::Requests(self.redemptions as u64),
                progress,
                move |_, i| {
                    checkout(
                        client.clone(),
                        base.clone(),
                        format!("{prefix}-{i}"),
                        given.clone(),
                        how,
                    )
                },
            )
            .await
        };
        println!("{}", summary.line());
        if summary.ok as usize != self.redemptions || summary.failed > 0 {
            problems.push(format!(
                "{} of {} promotion redemptions ({}) ({:?})",
                summary.ok,
                self.redemptions,
                how.label(),
                summary.first_failure
            ));
        }
        verify_usage(
            api,
            id,
            given.load(Ordering::Relaxed),
            summary.ok as i64,
            budget,
            problems,
        )
        .await?;
        switch_off(api, id).await?;
        Ok(summary)
    }

    async fn coupons(&self, api: &Api, run: &str, progress: bool) -> Result<Summary, String> {
        for start in (0..self.redemptions).step_by(50_000) {
            let end = (start + 50_000).min(self.redemptions);
            let coupons: Vec<Value> = (start..end)
                .map(|i| {
                    json!({"code": format!("P{run}-{i}"), "type": "STANDARD",
                                "discount_kind": "PERCENTAGE", "discount_amount": 10,
                                "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1})
                })
                .collect();
            api.expect(
                "POST",
                "/api/v1/coupons",
                Some(json!({ "coupons": coupons })),
            )
            .await?;
        }
        let codes: Arc<Mutex<Vec<(u64, String)>>> = Arc::new(Mutex::new(Vec::new()));
        let allocation = {
            let (client, base, codes, run) = (
                api.client.clone(),
                api.base.clone(),
                codes.clone(),
                run.to_owned(),
            );
            load::run(
                "coupon allocation",
                self.concurrency,
                Budget::Requests(self.redemptions as u64),
                progress,
                move |_, i| {
                    let request = client
                        .post(format!("{base}/api/v1/coupons/requests"))
                        .json(&json!({"user_id": format!("load-{run}-{i}"), "type": "STANDARD"}));
                    let codes = codes.clone();
                    async move {
                        match request.send().await {
                            Ok(r) if r.status().as_u16() == 200 => match r.json::<Value>().await {
                                Ok(v) => {
                                    let code = v["coupon"]["code"].as_str().unwrap_or_default();
                                    codes.lock().map(|mut c| c.push((i, code.to_owned()))).ok();
                                    Outcome::Ok
                                }
                                Err(e) => Outcome::Failed(e.to_string()),
                            },
                            Ok(r) => Outcome::Failed(format!("status {}", r.status())),
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                },
            )
            .await
        };
        println!("{}", allocation.line());
        let allocated = Arc::new(std::mem::take(
            &mut *codes.lock().map_err(|_| "codes lock".to_owned())?,
        ));
        let (client, base, run) = (api.client.clone(), api.base.clone(), run.to_owned());
        Ok(load::run(
            "coupon redemption",
            self.concurrency,
            Budget::Requests(allocated.len() as u64),
            progress,
            move |_, i| {
                let (user, code) = &allocated[i as usize];
                let request = client
                    .post(format!("{base}/api/v1/coupons/{code}/redeem"))
                    .json(&json!({"user_id": format!("load-{run}-{user}")}));
                async move {
                    match request.send().await {
                        Ok(r) if r.status().as_u16() == 200 => Outcome::Ok,
                        Ok(r) => Outcome::Failed(format!("status {}", r.status())),
                        Err(e) => Outcome::Failed(e.to_string()),
                    }
                }
            },
        )
        .await)
    }
}

/// Closed-loop previews of `cart` for `seconds`.
async fn preview(
    client: &reqwest::Client,
    base: &str,
    cart: &Value,
    concurrency: usize,
    seconds: u64,
    progress: bool,
) -> Summary {
    let (client, url, body) = (
        client.clone(),
        format!("{base}{EVALUATE_ROUTE}"),
        cart.to_string(),
    );
    load::run(
        &format!("preview, 10 lines, c={concurrency}"),
        concurrency,
        Budget::Duration(Duration::from_secs(seconds)),
        progress,
        move |_, _| {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone());
            async move {
                match request.send().await {
                    Ok(r) if r.status().as_u16() == 200 => match r.bytes().await {
                        Ok(_) => Outcome::Ok,
                        Err(e) => Outcome::Failed(e.to_string()),
                    },
                    Ok(r) => Outcome::Failed(format!("status {}", r.status())),
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
        },
    )
    .await
}
