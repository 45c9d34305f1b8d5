//! `allot load orders`: C concurrent customers each place orders of 3 lines with a coupon for
//! a number of seconds; prints the rate and latency percentiles, then verifies that the orders
//! stored equal the successes and that the stock reserved equals the units ordered.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use crate::grpc_client::DEFAULT_SERVER;
use crate::issue_load::http_client;
use crate::load::{self, Budget, Outcome};

/// Lines per order, one unit of each product.
const PRODUCTS: usize = 3;

#[derive(Debug, Args)]
pub(crate) struct OrderLoad {
    /// Server URL
    #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Concurrent customers
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of the run
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Units of each product put in stock in each of two warehouses
    #[arg(long, default_value_t = 1_000_000)]
    stock: i64,
    /// Each customer pauses about this long between orders (0: none, a closed loop that
    /// measures the most the server can take)
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Seconds of the HTTP hello-world (GET /health) measured first, at the same concurrency
    /// and pauses (0: skip)
    #[arg(long, default_value_t = 5)]
    hello_seconds: u64,
    /// No progress bar
    #[arg(long)]
    no_progress: bool,
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Result<Value, String> {
    let r = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.map_err(|e| format!("{url}: {e}"))?;
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(format!("{url}: {status} {body}"))
    }
}

/// How many stored orders have a customer starting with `prefix` (every page of the listing):
/// how a load run finds the orders it made.
pub(crate) async fn stored_orders(
    client: &reqwest::Client,
    base: &str,
    prefix: &str,
) -> Result<u64, String> {
    let mut stored = 0u64;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/orders?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = get(client, url).await?;
        stored += page["orders"]
            .as_array()
            .ok_or("orders")?
            .iter()
            .filter(|o| {
                o["customer"]
                    .as_str()
                    .is_some_and(|c| c.starts_with(prefix))
            })
            .count() as u64;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(stored),
        }
    }
}

async fn get(client: &reqwest::Client, url: String) -> Result<Value, String> {
    let r = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.map_err(|e| format!("{url}: {e}"))?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!("{url}: {status} {body}"))
    }
}

impl OrderLoad {
    pub(crate) async fn run(self) -> Result<(), String> {
        let base = self.server.trim_end_matches('/').to_owned();
        let client = http_client()?;
        let run = load::run_id()?;

        // Setup: 3 products in stock in two warehouses, one multi-use coupon per customer
        // (so customers do not queue on one coupon's row).
        let mut warehouses = Vec::new();
        for w in 0..2 {
            let v = post(
                &client,
                format!("{base}/api/v1/warehouses"),
                json!({"code": format!("LW{run}-{w}"), "name": format!("load {w}")}),
            )
            .await?;
            warehouses.push(v["id"].as_i64().ok_or("warehouse id")?);
        }
        let mut products = Vec::new();
        for p in 0..PRODUCTS {
            let v = post(
                &client,
                format!("{base}/api/v1/products"),
                json!({"sku": format!("LP{run}-{p}"), "name": format!("load product {p}"),
                       "price": {"amount_minor": 1_000 + 250 * p as i64, "currency": "EUR"}}),
            )
            .await?;
            let id = v["id"].as_i64().ok_or("product id")?;
            for w in &warehouses {
                post(
                    &client,
                    format!("{base}/api/v1/inventory/adjust"),
                    json!({"product_id": id, "warehouse_id": w, "mode": "set",
                           "quantity": self.stock, "reason": "load test stock"}),
                )
                .await?;
            }
            products.push(id);
        }
        let coupons: Vec<Value> = (0..self.concurrency)
            .map(|c| {
                json!({"code": format!("LO{run}-{c}"), "type": null, "discount_kind": "PERCENTAGE",
                       "discount_amount": 10, "expires_at": "2099-01-01T00:00:00Z",
                       "max_uses": 1_000_000_000})
            })
            .collect();
        for chunk in coupons.chunks(50_000) {
            post(
                &client,
                format!("{base}/api/v1/coupons"),
                json!({"coupons": chunk}),
            )
            .await?;
        }
        let think = (self.think_ms > 0).then(|| Duration::from_millis(self.think_ms));
        if self.hello_seconds > 0 {
            // The floor of the stack at the same load: GET /health with the same customers
            // and pauses.
            let (client, url) = (client.clone(), format!("{base}/health"));
            let hello = load::run_with_think(
                "HTTP hello-world (GET /health)",
                self.concurrency,
                Budget::Duration(Duration::from_secs(self.hello_seconds)),
                !self.no_progress,
                think,
                move |_, _| {
                    let request = client.get(&url);
                    async move {
                        match request.send().await {
                            Ok(r) if r.status().is_success() => match r.bytes().await {
                                Ok(_) => Outcome::Ok,
                                Err(e) => Outcome::Failed(e.to_string()),
                            },
                            Ok(r) => Outcome::Failed(format!("status {}", r.status())),
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                },
            )
            .await;
            println!("{}", hello.line());
        }
        println!(
            "setup: {PRODUCTS} products x {} units in 2 warehouses, {} coupons",
            self.stock, self.concurrency
        );

        let products = Arc::new(products);
        let summary = {
            let (client, base, run, products) =
                (client.clone(), base.clone(), run.clone(), products.clone());
            load::run_with_think(
                "orders (3 lines + coupon)",
                self.concurrency,
                Budget::Duration(Duration::from_secs(self.seconds)),
                !self.no_progress,
                think,
                move |worker, _| {
                    let body = json!({
                        "customer": format!("load-{run}-{worker}"),
                        "shipping_address": {"name": "Load", "line1": "1 Load Road",
                            "city": "Paris", "postal_code": "75001", "country": "FR"},
                        "lines": products.iter()
                            .map(|p| json!({"product_id": p, "quantity": 1}))
                            .collect::<Vec<_>>(),
                        "coupon": format!("LO{run}-{worker}"),
                    });
                    let request = client.post(format!("{base}/api/v1/orders")).json(&body);
                    async move {
                        match request.send().await {
                            Ok(r) if r.status().as_u16() == 201 => Outcome::Ok,
                            Ok(r) if r.status().as_u16() == 409 => Outcome::Refused("conflict"),
                            Ok(r) => Outcome::Failed(format!("status {}", r.status())),
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                },
            )
            .await
        };
        println!("{}", summary.line());

        // Verify: the orders this run stored, and the stock they hold.
        let stored = stored_orders(&client, &base, &format!("load-{run}-")).await?;
        let mut problems = Vec::new();
        if stored != summary.ok {
            problems.push(format!(
                "{stored} orders stored for {} successes",
                summary.ok
            ));
        }
        for p in products.iter() {
            let inv = get(&client, format!("{base}/api/v1/inventory/{p}")).await?;
            let reserved = inv["reserved"].as_i64().ok_or("reserved")?;
            if reserved != summary.ok as i64 {
                problems.push(format!(
                    "product {p}: {reserved} reserved for {} units ordered",
                    summary.ok
                ));
            }
        }
        if summary.failed > 0 {
            problems.push(format!(
                "{} failures, first: {:?}",
                summary.failed, summary.first_failure
            ));
        }
        if problems.is_empty() {
            println!(
                "verified: {stored} orders stored = successes; each product holds {} reserved = units ordered",
                summary.ok
            );
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
