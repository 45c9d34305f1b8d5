//! `allot load coupons`: upload, allocation and redemption rates, verified, beside the same
//! server's HTTP hello-world.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Args;
use serde_json::{Value, json};

use crate::grpc_client::DEFAULT_SERVER;
use crate::issue_load::{Transport, hello, http_client};
use crate::load::{self, Budget, Outcome};

#[derive(Debug, Args)]
pub(crate) struct CouponLoad {
    /// Server URL
    #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Coupons to upload, allocate and redeem
    #[arg(long, default_value_t = 20_000)]
    coupons: usize,
    /// Concurrent clients
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Coupon type: FREE or STANDARD (MEGADEAL is rate-limited by design)
    #[arg(long, default_value = "STANDARD")]
    r#type: String,
    /// Seconds of the hello-world run
    #[arg(long, default_value_t = 5)]
    hello_seconds: u64,
    /// No progress bars
    #[arg(long)]
    no_progress: bool,
}

impl CouponLoad {
    pub(crate) async fn run(self) -> Result<(), String> {
        let base = self.server.trim_end_matches('/').to_owned();
        let client = http_client()?;
        let progress = !self.no_progress;
        let run = load::run_id()?;

        let transport = Transport::http(client.clone(), &base);
        let hello_summary = hello(&transport, self.concurrency, self.hello_seconds, progress).await;
        println!("{}", hello_summary.line());

        // Upload, 50,000 per request.
        let started = Instant::now();
        for chunk_start in (0..self.coupons).step_by(50_000) {
            let end = (chunk_start + 50_000).min(self.coupons);
            let coupons: Vec<Value> = (chunk_start..end)
                .map(|i| json!({"code": format!("L{run}-{i}"), "type": self.r#type, "discount_kind": "PERCENTAGE",
                                "discount_amount": 10, "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1}))
                .collect();
            let r = client
                .post(format!("{base}/api/v1/coupons"))
                .json(&json!({ "coupons": coupons }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().as_u16() != 201 {
                return Err(format!(
                    "upload: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ));
            }
        }
        let upload_secs = started.elapsed().as_secs_f64();
        println!(
            "upload {:>8} coupons in {:.3}s = {:.0} coupons/s",
            self.coupons,
            upload_secs,
            self.coupons as f64 / upload_secs
        );

        // Allocate: one user per coupon.
        let codes: Arc<Mutex<Vec<(usize, String)>>> =
            Arc::new(Mutex::new(Vec::with_capacity(self.coupons)));
        let allocation = {
            let client = client.clone();
            let base = base.clone();
            let codes = codes.clone();
            let t = self.r#type.clone();
            let run = run.clone();
            load::run(
                "coupon allocation",
                self.concurrency,
                Budget::Requests(self.coupons as u64),
                progress,
                move |_, i| {
                    let request = client
                        .post(format!("{base}/api/v1/coupons/requests"))
                        .json(&json!({"user_id": format!("load-{run}-{i}"), "type": t}));
                    let codes = codes.clone();
                    async move {
                        match request.send().await {
                            Ok(r) if r.status().as_u16() == 200 => match r.json::<Value>().await {
                                Ok(v) => {
                                    codes.lock().expect("codes").push((
                                        i as usize,
                                        v["coupon"]["code"].as_str().unwrap_or_default().to_owned(),
                                    ));
                                    Outcome::Ok
                                }
                                Err(e) => Outcome::Failed(e.to_string()),
                            },
                            Ok(r) if r.status().as_u16() == 409 => Outcome::Refused("none_left"),
                            Ok(r) => Outcome::Failed(format!("status {}", r.status())),
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                },
            )
            .await
        };
        println!("{}", allocation.line());
        let allocated: Vec<(usize, String)> = std::mem::take(&mut *codes.lock().expect("codes"));
        let distinct = allocated
            .iter()
            .map(|(_, c)| c)
            .collect::<HashSet<_>>()
            .len();

        // Redeem each allocated coupon by its user.
        let allocated = Arc::new(allocated);
        let redemption = {
            let client = client.clone();
            let base = base.clone();
            let allocated = allocated.clone();
            let run = run.clone();
            load::run(
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
            .await
        };
        println!("{}", redemption.line());
        println!(
            "  -> allocation {:.0}% and redemption {:.0}% of the HTTP hello-world rate",
            100.0 * allocation.rate() / hello_summary.rate(),
            100.0 * redemption.rate() / hello_summary.rate()
        );

        let mut problems = Vec::new();
        if allocation.ok as usize != self.coupons {
            problems.push(format!(
                "{} of {} coupons allocated",
                allocation.ok, self.coupons
            ));
        }
        if distinct != allocated.len() {
            problems.push("a coupon was allocated to two users".to_owned());
        }
        if redemption.ok as usize != allocated.len() || redemption.failed > 0 {
            problems.push(format!(
                "{} of {} redemptions succeeded ({:?})",
                redemption.ok,
                allocated.len(),
                redemption.first_failure
            ));
        }
        if allocation.failed > 0 {
            problems.push(format!(
                "allocation failures: {:?}",
                allocation.first_failure
            ));
        }
        if problems.is_empty() {
            println!(
                "verified: {} coupons, each allocated to one user and redeemed once",
                self.coupons
            );
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
