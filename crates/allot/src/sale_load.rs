//! `allot load flash-sale`: a crowd of shoppers against the current sale until it sells out,
//! then a check of what was sold against what the clients were told.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use serde_json::Value;

use crate::grpc_client::DEFAULT_SERVER;
use crate::issue_load::http_client;

#[derive(Debug, Args)]
pub(crate) struct SaleLoad {
    /// Server URL
    #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Shoppers
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    /// Concurrent connections
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Share of aggressive shoppers (buy up to the limit, 3 checkouts a turn), in percent
    #[arg(long, default_value_t = 10)]
    aggressive_percent: usize,
    /// The server's per-user limit, for the check
    #[arg(long, default_value_t = 10)]
    user_limit: usize,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// No progress bar
    #[arg(long)]
    no_progress: bool,
}

struct Totals {
    checkout: Histogram<u64>,
    purchase: Histogram<u64>,
    bought: Vec<(String, i64)>,
    errors: Vec<String>,
}

impl SaleLoad {
    pub(crate) async fn run(self) -> Result<(), String> {
        let base = self.server.trim_end_matches('/').to_owned();
        let client = http_client()?;
        let sale = get(&client, &format!("{base}/api/v1/sales/current")).await?;
        let sale_id = sale["id"].as_i64().ok_or("no current sale")?;
        let total = sale["items_total"].as_i64().unwrap_or(0) as usize;
        if sale["sold"].as_i64() != Some(0) {
            return Err(format!(
                "sale {sale_id} has sold items already; run against a fresh sale"
            ));
        }
        let mut ids = Vec::with_capacity(total);
        let mut cursor = 0;
        loop {
            let page = get(
                &client,
                &format!("{base}/api/v1/sales/{sale_id}/items?limit=1000&cursor={cursor}"),
            )
            .await?;
            for i in page["items"].as_array().ok_or("bad items page")? {
                ids.push(i["id"].as_i64().unwrap_or(0));
            }
            match page["next_cursor"].as_i64() {
                Some(c) => cursor = c,
                None => break,
            }
        }
        ids.shuffle(&mut rand::rng());
        println!(
            "sale {sale_id}: {total} items, {} shoppers ({}% aggressive), {} connections",
            self.users, self.aggressive_percent, self.concurrency
        );

        let ids = Arc::new(ids);
        let sold_out = Arc::new(AtomicBool::new(false));
        let sold = Arc::new(AtomicUsize::new(0));
        let next_item = Arc::new(AtomicUsize::new(0));
        let next_user = Arc::new(AtomicUsize::new(0));
        let bar = (!self.no_progress).then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("sold [{bar:40}] {pos}/{len} {elapsed_precise}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar
        });
        let started = Instant::now();
        let deadline = started + Duration::from_secs(self.timeout_secs);
        let mut workers = Vec::new();
        for _ in 0..self.concurrency {
            let (client, base, ids, sold_out, sold, next_item, next_user, bar) = (
                client.clone(),
                base.clone(),
                ids.clone(),
                sold_out.clone(),
                sold.clone(),
                next_item.clone(),
                next_user.clone(),
                bar.clone(),
            );
            let (users, aggressive_percent, limit, total) =
                (self.users, self.aggressive_percent, self.user_limit, total);
            workers.push(tokio::spawn(async move {
                let mut t = Totals {
                    checkout: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
                    purchase: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
                    bought: Vec::new(),
                    errors: Vec::new(),
                };
                while !sold_out.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let u = next_user.fetch_add(1, Ordering::Relaxed) % users;
                    let aggressive = u * 100 < users * aggressive_percent;
                    let (per_turn, wants) = if aggressive {
                        (3, limit)
                    } else {
                        (1, 1 + u % 2)
                    };
                    let user = format!("shopper-{u}");
                    let mut mine = 0;
                    let mut misses = 0;
                    while mine < wants && misses < 6 && !sold_out.load(Ordering::Relaxed) {
                        let mut codes = Vec::new();
                        for _ in 0..per_turn {
                            let item = ids[next_item.fetch_add(1, Ordering::Relaxed) % ids.len()];
                            let at = Instant::now();
                            let r = post(
                                &client,
                                &format!("{base}/api/v1/sales/{sale_id}/checkout?user_id={user}&id={item}"),
                            )
                            .await;
                            let _ = t.checkout.record(at.elapsed().as_micros().max(1) as u64);
                            match r {
                                Ok((200, body)) => {
                                    codes.push(body["code"].as_str().unwrap_or_default().to_owned())
                                }
                                Ok((409, _)) => misses += 1,
                                Ok((status, body)) => {
                                    t.errors.push(format!("checkout {status} {body}"))
                                }
                                Err(e) => t.errors.push(e),
                            }
                        }
                        for code in codes {
                            let at = Instant::now();
                            let r = post(
                                &client,
                                &format!("{base}/api/v1/sales/{sale_id}/purchase?code={code}"),
                            )
                            .await;
                            let _ = t.purchase.record(at.elapsed().as_micros().max(1) as u64);
                            match r {
                                // Two workers can serve one user and share its open code: the
                                // second purchase answers the first sale again, not a new one.
                                Ok((200, body)) if body["replayed"] == true => mine += 1,
                                Ok((200, body)) => {
                                    mine += 1;
                                    t.bought.push((
                                        body["user_id"].as_str().unwrap_or_default().to_owned(),
                                        body["items"][0]["id"].as_i64().unwrap_or(0),
                                    ));
                                    let n = sold.fetch_add(1, Ordering::Relaxed) + 1;
                                    if let Some(bar) = &bar {
                                        bar.set_position(n as u64);
                                    }
                                    if n >= total {
                                        sold_out.store(true, Ordering::Relaxed);
                                    }
                                }
                                Ok((409, _)) => misses += 1,
                                Ok((status, body)) => {
                                    t.errors.push(format!("purchase {status} {body}"))
                                }
                                Err(e) => t.errors.push(e),
                            }
                        }
                    }
                }
                t
            }));
        }
        let mut checkout = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        let mut purchase = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        let mut bought = Vec::new();
        let mut errors = Vec::new();
        for w in workers {
            let t = w.await.map_err(|e| e.to_string())?;
            checkout.add(&t.checkout).map_err(|e| e.to_string())?;
            purchase.add(&t.purchase).map_err(|e| e.to_string())?;
            bought.extend(t.bought);
            errors.extend(t.errors);
        }
        let elapsed = started.elapsed();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "sold {} of {total} in {:.3}s",
            bought.len(),
            elapsed.as_secs_f64()
        );
        println!(
            "checkout: {} requests, {:.0}/s, p50 {:.2}ms p90 {:.2}ms p99 {:.2}ms max {:.1}ms",
            checkout.len(),
            checkout.len() as f64 / elapsed.as_secs_f64(),
            ms(&checkout, 0.5),
            ms(&checkout, 0.9),
            ms(&checkout, 0.99),
            checkout.max() as f64 / 1000.0
        );
        println!(
            "purchase: {} requests, {:.0}/s, p50 {:.2}ms p90 {:.2}ms p99 {:.2}ms max {:.1}ms",
            purchase.len(),
            purchase.len() as f64 / elapsed.as_secs_f64(),
            ms(&purchase, 0.5),
            ms(&purchase, 0.9),
            ms(&purchase, 0.99),
            purchase.max() as f64 / 1000.0
        );

        // Verify against the server.
        let mut problems: Vec<String> = errors.iter().take(3).cloned().collect();
        if !errors.is_empty() {
            problems.push(format!("{} unexpected answers", errors.len()));
        }
        let after = get(&client, &format!("{base}/api/v1/sales/{sale_id}"))
            .await
            .ok();
        let now = get(&client, &format!("{base}/api/v1/sales/current")).await?;
        let sold_now = if now["id"].as_i64() == Some(sale_id) {
            now["sold"].as_i64()
        } else {
            after.and_then(|a| a["sold"].as_i64())
        };
        if sold_now != Some(total as i64) {
            problems.push(format!("the server counts {sold_now:?} sold of {total}"));
        }
        let items: HashSet<i64> = bought.iter().map(|(_, i)| *i).collect();
        if items.len() != bought.len() {
            problems.push("an item was sold twice".to_owned());
        }
        let mut per_user: HashMap<&str, Vec<i64>> = HashMap::new();
        for (u, i) in &bought {
            per_user.entry(u).or_default().push(*i);
        }
        if let Some((u, v)) = per_user.iter().find(|(_, v)| v.len() > self.user_limit) {
            problems.push(format!("{u} bought {} items", v.len()));
        }
        for (user, mine) in &per_user {
            let listed = get(
                &client,
                &format!("{base}/api/v1/sales/{sale_id}/purchases?user_id={user}"),
            )
            .await?;
            let listed: HashSet<i64> = listed["items"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["id"].as_i64()).collect())
                .unwrap_or_default();
            if !mine.iter().all(|i| listed.contains(i)) || listed.len() > self.user_limit {
                problems.push(format!(
                    "{user}'s purchases on the server differ from what the client saw"
                ));
                break;
            }
        }
        if problems.is_empty() {
            println!(
                "verified: {total} sold, each once, no user above {}, every purchase a client saw is on the server",
                self.user_limit
            );
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    client
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

async fn post(client: &reqwest::Client, url: &str) -> Result<(u16, Value), String> {
    let r = client.post(url).send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}
