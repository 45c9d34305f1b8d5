//! `allot load soak`: a mixed load at a steady rate for a long time, sampled every few
//! seconds, to see whether anything grows (issue 20, "Soak").
//!
//! Open loop: operations are started on a fixed schedule (`--rate` per second) whether or not
//! earlier ones were answered, so a server that slows down builds a backlog instead of being
//! asked less. Each operation is one request, drawn by weight ([`MIX`]):
//!
//! | operation        | weight | request                                                   |
//! |------------------|-------:|-----------------------------------------------------------|
//! | `issue`          |     20 | `POST /api/v1/campaigns/{id}/coupons` (the run's campaign)  |
//! | `code_generate`  |      5 | `POST /api/v1/discount-codes/batches` (10 codes)           |
//! | `code_use`       |     15 | `POST /api/v1/discount-codes/{code}/use` (a generated code) |
//! | `coupon_request` |     15 | `POST /api/v1/coupons/requests` (STANDARD)                 |
//! | `coupon_redeem`  |     12 | `POST /api/v1/coupons/{code}/redeem` (a requested coupon)   |
//! | `order`          |     13 | `POST /api/v1/orders` (1 to 3 lines of the run's products)  |
//! | `checkout`       |     10 | `POST /api/v1/sales/{id}/checkout` (the current sale)       |
//! | `purchase`       |     10 | `POST /api/v1/sales/{id}/purchase` (a checked-out code)     |
//!
//! An operation that needs something not there yet (a code to use, a coupon to redeem, a
//! checkout to purchase) runs what makes it instead; without a current sale with items left,
//! `checkout` issues a campaign code.
//!
//! Every `--sample` seconds one CSV row: per operation the count and p50/p99 latency over the
//! interval (from the scheduled start, so a backlog shows), throughput, answers by code, and
//! the servers' RSS and open files (`--pid`), the SQLite database and WAL sizes
//! (`--data-dir`) or PostgreSQL's database and WAL sizes (`--database-url`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

use crate::grpc_client::DEFAULT_SERVER;
use crate::issue_load::http_client;
use crate::load::{self, Budget, Outcome};

/// The operations, their CSV names and weights (of 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Op {
    Issue,
    CodeGenerate,
    CodeUse,
    CouponRequest,
    CouponRedeem,
    Order,
    Checkout,
    Purchase,
}

const MIX: [(Op, u32); 8] = [
    (Op::Issue, 20),
    (Op::CodeGenerate, 5),
    (Op::CodeUse, 15),
    (Op::CouponRequest, 15),
    (Op::CouponRedeem, 12),
    (Op::Order, 13),
    (Op::Checkout, 10),
    (Op::Purchase, 10),
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Issue => "issue",
            Op::CodeGenerate => "code_generate",
            Op::CodeUse => "code_use",
            Op::CouponRequest => "coupon_request",
            Op::CouponRedeem => "coupon_redeem",
            Op::Order => "order",
            Op::Checkout => "checkout",
            Op::Purchase => "purchase",
        }
    }

    /// The `n`th operation of the schedule: the mix spread evenly (a fixed pattern of 100,
    /// shuffled once), so every interval holds the same share of each.
    fn pattern() -> Vec<Op> {
        let mut ops: Vec<Op> = MIX
            .iter()
            .flat_map(|(op, w)| std::iter::repeat_n(*op, *w as usize))
            .collect();
        ops.shuffle(&mut rand::rng());
        ops
    }
}

/// Codes per `code_generate` batch.
const BATCH: u32 = 10;

#[derive(Debug, Args)]
pub(crate) struct SoakLoad {
    /// Server URL; several (comma-separated or repeated) take requests round robin
    #[arg(long = "url", env = "ALLOT_SERVER", default_value = DEFAULT_SERVER, value_delimiter = ',')]
    urls: Vec<String>,
    /// Operations started per second (open loop). Absent: a closed-loop ramp (16, 64 and 256
    /// concurrent clients, --ramp-secs each) measures the peak, and the soak runs at half
    #[arg(long)]
    rate: Option<f64>,
    /// Length of the soak: 30m, 180s, 1h
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    duration: Duration,
    /// Seconds between samples (one CSV row each)
    #[arg(long, default_value_t = 10)]
    sample: u64,
    /// Server process ids to sample (VmRSS and open files), comma-separated or repeated
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// The SQLite server's data directory: database and WAL file sizes are sampled
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The PostgreSQL database: pg_database_size and the WAL directory's size are sampled
    /// (needs superuser or pg_monitor)
    #[arg(long)]
    database_url: Option<String>,
    /// Where to write the samples, one CSV row each
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Requests unanswered at most; an operation due while this many are open is not sent and
    /// counted as `client_backlog` (the server is not keeping up)
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Seconds of each step of the closed-loop ramp, when --rate is absent
    #[arg(long, default_value_t = 10)]
    ramp_secs: u64,
    /// Seconds of quiet between the setup (the ramp and the coupon upload) and the soak, so
    /// the soak does not start on the server's backlog of them
    #[arg(long, default_value_t = 15)]
    settle_secs: u64,
    /// The flatness check: the last window's mean RSS and p99 (all operations) within this
    /// many percent of the baseline window's. The windows are each a sixth of --duration: the
    /// baseline from 1/6 to 2/6 of the run, the last from 5/6 to the end (for 30m: minutes 5
    /// to 10 and 25 to 30; for 3m: 0:30 to 1:00 and 2:30 to 3:00)
    #[arg(long, default_value_t = 20.0)]
    flat_percent: f64,
    /// Exit non-zero when the flatness check fails too (not only the verification)
    #[arg(long)]
    strict: bool,
}

/// `30m`, `180s`, `1h`, `90` (seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s}: a whole number with s, m or h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s}: the unit is s, m or h")),
    };
    if secs == 0 {
        return Err("the duration must be positive".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// How one request ended, for the samples: its code is `ok`, the error code of a refusal
/// (`sold_out`, `none_left`, ...), `http_<status>` without one, or `transport`.
struct Answer {
    code: String,
    /// An answer that is not a correct one (5xx, an unexpected 4xx, or no answer).
    failure: bool,
}

impl Answer {
    fn ok() -> Answer {
        Answer {
            code: "ok".to_owned(),
            failure: false,
        }
    }
}

/// What was acknowledged, for the verification at the end.
#[derive(Default)]
struct Ledger {
    issued: u64,
    generated: Vec<String>,
    used: Vec<String>,
    redeemed: Vec<String>,
    orders: u64,
    /// Purchases per sale.
    purchases: BTreeMap<i64, u64>,
}

/// The current flash sale's items, tried each once in a random order.
struct SaleItems {
    id: i64,
    items: Vec<i64>,
    next: usize,
}

/// One interval's measurements.
struct Interval {
    per_op: BTreeMap<Op, Histogram<u64>>,
    all: Histogram<u64>,
    codes: BTreeMap<String, u64>,
    failures: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds")
}

impl Interval {
    fn new() -> Interval {
        Interval {
            per_op: MIX.iter().map(|(op, _)| (*op, histogram())).collect(),
            all: histogram(),
            codes: BTreeMap::new(),
            failures: 0,
        }
    }
}

/// The load: its client, the run's names and what it has to work with.
struct Mix {
    client: reqwest::Client,
    urls: Vec<String>,
    next_url: AtomicUsize,
    run: String,
    seq: AtomicU64,
    campaign: i64,
    products: Vec<i64>,
    /// Generated codes not used yet; coupons requested not redeemed yet (code, user);
    /// checkout codes not purchased yet (sale, code).
    codes: Mutex<Vec<String>>,
    coupons: Mutex<Vec<(String, String)>>,
    checkouts: Mutex<Vec<(i64, String)>>,
    sale: Mutex<Option<SaleItems>>,
    /// Held by the one operation that looks for a new sale (its items are 100 pages at a
    /// sale's 100,000), with when it last looked: every checkout due meanwhile issues a
    /// campaign code instead of listing the same items again (a herd of listings at the hour
    /// stalled the first PostgreSQL soak: hundreds of 100-page listings at once).
    sale_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Sold count of each sale when first seen.
    sold_before: Mutex<BTreeMap<i64, i64>>,
    ledger: Mutex<Ledger>,
    interval: Mutex<Interval>,
}

async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// The answer's code: `ok` for a success, else the error code.
fn answer_of(result: &Result<(u16, Value), String>) -> Answer {
    match result {
        Ok((s, _)) if (200..300).contains(s) => Answer::ok(),
        Ok((s, body)) => Answer {
            code: body["error"]["code"]
                .as_str()
                .map_or_else(|| format!("http_{s}"), str::to_owned),
            // 409 (sold out, none left, ...), 410 and 429 are answers the mix expects;
            // anything else says the server or this tool is wrong.
            failure: !matches!(s, 409 | 410 | 429),
        },
        Err(_) => Answer {
            code: "transport".to_owned(),
            failure: true,
        },
    }
}

impl Mix {
    fn base(&self) -> &str {
        &self.urls[self.next_url.fetch_add(1, Ordering::Relaxed) % self.urls.len()]
    }

    fn name(&self, what: &str) -> String {
        format!(
            "soak-{}-{what}-{}",
            self.run,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The operation to run for `op` given what is there to work with.
    fn resolve(&self, op: Op) -> Op {
        match op {
            Op::CodeUse if self.codes.lock().expect("codes").is_empty() => Op::CodeGenerate,
            Op::CouponRedeem if self.coupons.lock().expect("coupons").is_empty() => {
                Op::CouponRequest
            }
            Op::Purchase if self.checkouts.lock().expect("checkouts").is_empty() => Op::Checkout,
            other => other,
        }
    }

    /// Runs one operation; records its latency (from `started`) and answer in the interval.
    async fn perform(&self, op: Op, started: Instant) -> Answer {
        let op = self.resolve(op);
        let (op, answer) = match op {
            Op::Issue => (op, self.issue().await),
            Op::CodeGenerate => (op, self.generate().await),
            Op::CodeUse => (op, self.use_code().await),
            Op::CouponRequest => (op, self.coupon_request().await),
            Op::CouponRedeem => (op, self.coupon_redeem().await),
            Op::Order => (op, self.order().await),
            Op::Checkout => match self.checkout().await {
                Some(answer) => (op, answer),
                None => (Op::Issue, self.issue().await),
            },
            Op::Purchase => (op, self.purchase().await),
        };
        let micros = started.elapsed().as_micros().max(1) as u64;
        let mut interval = self.interval.lock().expect("interval");
        let _ = interval
            .per_op
            .get_mut(&op)
            .expect("every op")
            .record(micros);
        let _ = interval.all.record(micros);
        *interval.codes.entry(answer.code.clone()).or_default() += 1;
        if answer.failure {
            interval.failures += 1;
        }
        answer
    }

    async fn issue(&self) -> Answer {
        let url = format!("{}/api/v1/campaigns/{}/coupons", self.base(), self.campaign);
        let r = send(self.client.post(url)).await;
        if matches!(r, Ok((201, _))) {
            self.ledger.lock().expect("ledger").issued += 1;
        }
        answer_of(&r)
    }

    async fn generate(&self) -> Answer {
        let url = format!("{}/api/v1/discount-codes/batches", self.base());
        let r = send(
            self.client
                .post(url)
                .json(&json!({"count": BATCH, "length": 8})),
        )
        .await;
        if let Ok((201, body)) = &r {
            let codes: Vec<String> = body["codes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            self.codes
                .lock()
                .expect("codes")
                .extend(codes.iter().cloned());
            self.ledger.lock().expect("ledger").generated.extend(codes);
        }
        answer_of(&r)
    }

    async fn use_code(&self) -> Answer {
        let Some(code) = self.codes.lock().expect("codes").pop() else {
            return self.generate().await;
        };
        let url = format!("{}/api/v1/discount-codes/{code}/use", self.base());
        let r = send(self.client.post(url)).await;
        if matches!(r, Ok((200, _))) {
            self.ledger.lock().expect("ledger").used.push(code);
        }
        answer_of(&r)
    }

    async fn coupon_request(&self) -> Answer {
        let user = self.name("u");
        let url = format!("{}/api/v1/coupons/requests", self.base());
        let r = send(
            self.client
                .post(url)
                .json(&json!({"user_id": user, "type": "STANDARD"})),
        )
        .await;
        if let Ok((200, body)) = &r
            && let Some(code) = body["coupon"]["code"].as_str()
        {
            self.coupons
                .lock()
                .expect("coupons")
                .push((code.to_owned(), user));
        }
        answer_of(&r)
    }

    async fn coupon_redeem(&self) -> Answer {
        let Some((code, user)) = self.coupons.lock().expect("coupons").pop() else {
            return self.coupon_request().await;
        };
        let url = format!("{}/api/v1/coupons/{code}/redeem", self.base());
        let r = send(self.client.post(url).json(&json!({"user_id": user}))).await;
        if matches!(r, Ok((200, _))) {
            self.ledger.lock().expect("ledger").redeemed.push(code);
        }
        answer_of(&r)
    }

    async fn order(&self) -> Answer {
        let n = 1 + rand::random_range(0..self.products.len());
        let lines: Vec<Value> = self.products[..n]
            .iter()
            .map(|p| json!({"product_id": p, "quantity": 1}))
            .collect();
        let body = json!({
            "customer": self.name("c"),
            "shipping_address": {"name": "Soak", "line1": "1 Soak Road", "city": "Paris",
                                 "postal_code": "75001", "country": "FR"},
            "lines": lines,
        });
        let url = format!("{}/api/v1/orders", self.base());
        let r = send(self.client.post(url).json(&body)).await;
        if matches!(r, Ok((201, _))) {
            self.ledger.lock().expect("ledger").orders += 1;
        }
        answer_of(&r)
    }

    /// The next item of the current sale to try, refreshing the sale when its items are all
    /// tried (a new one starts every hour); `None` without a sale with items left.
    async fn next_item(&self) -> Option<(i64, i64)> {
        {
            let mut sale = self.sale.lock().expect("sale");
            if let Some(s) = sale.as_mut()
                && s.next < s.items.len()
            {
                s.next += 1;
                return Some((s.id, s.items[s.next - 1]));
            }
        }
        // One look at a time, and at most one a second: the others issue instead.
        let Ok(mut last) = self.sale_refresh.try_lock() else {
            return None;
        };
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return None;
        }
        *last = Some(Instant::now());
        let base = self.base().to_owned();
        let current = match send(self.client.get(format!("{base}/api/v1/sales/current"))).await {
            Ok((200, v)) => v,
            _ => return None,
        };
        let id = current["id"].as_i64()?;
        if self
            .sale
            .lock()
            .expect("sale")
            .as_ref()
            .is_some_and(|s| s.id == id)
        {
            return None;
        }
        let items = sale_items(&self.client, &base, id).await.ok()?;
        self.sold_before
            .lock()
            .expect("sold")
            .entry(id)
            .or_insert(current["sold"].as_i64().unwrap_or(0));
        let mut sale = self.sale.lock().expect("sale");
        if sale.as_ref().is_none_or(|s| s.id != id) {
            *sale = Some(SaleItems { id, items, next: 0 });
        }
        let s = sale.as_mut()?;
        (s.next < s.items.len()).then(|| {
            s.next += 1;
            (s.id, s.items[s.next - 1])
        })
    }

    async fn checkout(&self) -> Option<Answer> {
        let (sale, item) = self.next_item().await?;
        let user = self.name("s");
        let url = format!(
            "{}/api/v1/sales/{sale}/checkout?user_id={user}&id={item}",
            self.base()
        );
        let r = send(self.client.post(url)).await;
        if let Ok((200, body)) = &r
            && let Some(code) = body["code"].as_str()
        {
            self.checkouts
                .lock()
                .expect("checkouts")
                .push((sale, code.to_owned()));
        }
        Some(answer_of(&r))
    }

    async fn purchase(&self) -> Answer {
        let Some((sale, code)) = self.checkouts.lock().expect("checkouts").pop() else {
            return self.issue().await;
        };
        let url = format!("{}/api/v1/sales/{sale}/purchase?code={code}", self.base());
        let r = send(self.client.post(url)).await;
        if let Ok((200, body)) = &r
            && body["replayed"] != true
        {
            *self
                .ledger
                .lock()
                .expect("ledger")
                .purchases
                .entry(sale)
                .or_default() += 1;
        }
        answer_of(&r)
    }
}

/// Every item id of a sale, shuffled.
async fn sale_items(client: &reqwest::Client, base: &str, sale: i64) -> Result<Vec<i64>, String> {
    let mut ids = Vec::new();
    let mut cursor = 0;
    loop {
        let url = format!("{base}/api/v1/sales/{sale}/items?limit=1000&cursor={cursor}");
        let page = match send(client.get(&url)).await? {
            (200, v) => v,
            (s, v) => return Err(format!("{url}: {s} {v}")),
        };
        for i in page["items"].as_array().ok_or("bad items page")? {
            ids.push(i["id"].as_i64().unwrap_or(0));
        }
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = c,
            None => break,
        }
    }
    ids.shuffle(&mut rand::rng());
    Ok(ids)
}

/// `POST` that must succeed with `expect`: its body.
async fn setup_post(
    client: &reqwest::Client,
    url: String,
    body: Value,
    expect: u16,
) -> Result<Value, String> {
    match send(client.post(&url).json(&body)).await? {
        (s, v) if s == expect => Ok(v),
        (s, v) => Err(format!("{url}: {s} {v}")),
    }
}

/// What the servers use, read from /proc and the database.
#[derive(Default, Clone, Copy)]
struct Resources {
    rss_kib: u64,
    fds: u64,
    db_bytes: u64,
    wal_bytes: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_files(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// The SQLite database file of a data directory (`<dir>/data/allot.db`, or `<dir>/allot.db`).
fn sqlite_file(dir: &Path) -> PathBuf {
    let nested = dir.join("data").join("allot.db");
    if nested.exists() {
        nested
    } else {
        dir.join("allot.db")
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

struct Sampler {
    pids: Vec<u32>,
    sqlite: Option<PathBuf>,
    pg: Option<tokio_postgres::Client>,
}

impl Sampler {
    async fn sample(&self) -> Resources {
        let mut r = Resources {
            rss_kib: self.pids.iter().map(|p| rss_kib(*p)).sum(),
            fds: self.pids.iter().map(|p| open_files(*p)).sum(),
            ..Resources::default()
        };
        if let Some(db) = &self.sqlite {
            r.db_bytes = file_len(db);
            let mut wal = db.clone().into_os_string();
            wal.push("-wal");
            r.wal_bytes = file_len(Path::new(&wal));
        }
        if let Some(pg) = &self.pg
            && let Ok(row) = pg
                .query_one(
                    "SELECT pg_database_size(current_database()),
                            CAST((SELECT COALESCE(SUM(size), 0) FROM pg_ls_waldir()) AS BIGINT)",
                    &[],
                )
                .await
        {
            r.db_bytes = row.get::<_, i64>(0) as u64;
            r.wal_bytes = row.get::<_, i64>(1) as u64;
        }
        r
    }
}

/// One CSV row's figures, kept for the summary.
struct Sample {
    t: f64,
    all: Histogram<u64>,
    p99_ms: f64,
    resources: Resources,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

impl SoakLoad {
    pub(crate) async fn run(self) -> Result<(), String> {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err("--url: at least one server".to_owned());
        }
        let client = http_client()?;
        let run = load::run_id()?;
        let base = urls[0].clone();

        // Setup: a campaign, three products in stock, coupons to request.
        let campaign = setup_post(
            &client,
            format!("{base}/api/v1/campaigns"),
            json!({"name": format!("soak {run}"), "start_time": "2000-01-01T00:00:00Z",
                   "total_coupons": 10_000_000}),
            201,
        )
        .await?["id"]
            .as_i64()
            .ok_or("campaign id")?;
        let warehouse = setup_post(
            &client,
            format!("{base}/api/v1/warehouses"),
            json!({"code": format!("SOAK{run}"), "name": "soak"}),
            201,
        )
        .await?["id"]
            .as_i64()
            .ok_or("warehouse id")?;
        let mut products = Vec::new();
        for p in 0..3 {
            let id = setup_post(
                &client,
                format!("{base}/api/v1/products"),
                json!({"sku": format!("SOAK{run}-{p}"), "name": format!("soak product {p}"),
                       "price": {"amount_minor": 1_000 + 250 * p, "currency": "EUR"}}),
                201,
            )
            .await?["id"]
                .as_i64()
                .ok_or("product id")?;
            let r = send(client.post(format!("{base}/api/v1/inventory/adjust")).json(
                &json!({"product_id": id, "warehouse_id": warehouse, "mode": "set",
                        "quantity": 1_000_000_000, "reason": "soak stock"}),
            ))
            .await?;
            if !(200..300).contains(&r.0) {
                return Err(format!("stock: {} {}", r.0, r.1));
            }
            products.push(id);
        }
        let mix = Arc::new(Mix {
            client: client.clone(),
            urls: urls.clone(),
            next_url: AtomicUsize::new(0),
            run: run.clone(),
            seq: AtomicU64::new(0),
            campaign,
            products,
            codes: Mutex::default(),
            coupons: Mutex::default(),
            checkouts: Mutex::default(),
            sale: Mutex::default(),
            sale_refresh: tokio::sync::Mutex::new(None),
            sold_before: Mutex::default(),
            ledger: Mutex::default(),
            interval: Mutex::new(Interval::new()),
        });
        let uploaded = upload(&client, &base, &run, 0, 20_000).await?;

        let rate = match self.rate {
            Some(r) if r > 0.0 => r,
            Some(_) => return Err("--rate must be positive".to_owned()),
            None => {
                let peak = ramp(&mix, self.ramp_secs).await;
                println!("peak (closed loop): {peak:.0} operations/s; soaking at half");
                peak / 2.0
            }
        };
        // Enough coupons for the run's requests, and a margin.
        let coupon_share = MIX
            .iter()
            .filter(|(op, _)| *op == Op::CouponRequest)
            .map(|(_, w)| *w)
            .sum::<u32>() as f64
            / 100.0;
        let wanted = (rate * self.duration.as_secs_f64() * coupon_share * 1.3) as usize + 1_000;
        if wanted > uploaded {
            upload(&client, &base, &run, uploaded, wanted - uploaded).await?;
        }
        if self.settle_secs > 0 {
            println!("settling {} s after the setup", self.settle_secs);
            tokio::time::sleep(Duration::from_secs(self.settle_secs)).await;
        }
        // Fresh measurements for the soak itself (the ramp's are not samples).
        *mix.interval.lock().expect("interval") = Interval::new();

        let pg = match &self.database_url {
            Some(url) => Some(
                allot_storage::postgres::connect(url)
                    .await
                    .map_err(|e| format!("--database-url: {e}"))?,
            ),
            None => None,
        };
        let sampler = Sampler {
            pids: self.pid.clone(),
            sqlite: self.data_dir.as_deref().map(sqlite_file),
            pg,
        };
        let mut csv = match &self.csv {
            Some(path) => {
                let mut f =
                    std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut header = vec![
                    "t_s".to_owned(),
                    "rate_target".to_owned(),
                    "throughput".to_owned(),
                ];
                for (op, _) in MIX {
                    for col in ["n", "p50_ms", "p99_ms"] {
                        header.push(format!("{}_{col}", op.name()));
                    }
                }
                header.extend(
                    [
                        "all_p50_ms",
                        "all_p99_ms",
                        "failures",
                        "client_backlog",
                        "answers",
                        "rss_kib",
                        "open_files",
                        "db_bytes",
                        "wal_bytes",
                    ]
                    .map(str::to_owned),
                );
                std::io::Write::write_all(&mut f, format!("{}\n", header.join(",")).as_bytes())
                    .map_err(|e| e.to_string())?;
                Some(f)
            }
            None => None,
        };
        println!(
            "soak: {rate:.0} operations/s for {}s against {} server(s), a sample every {}s{}",
            self.duration.as_secs(),
            urls.len(),
            self.sample,
            self.csv
                .as_ref()
                .map_or(String::new(), |p| format!(" into {}", p.display()))
        );

        // The schedule: operation i starts at i / rate seconds.
        let started = Instant::now();
        let end = started + self.duration;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let backlog = Arc::new(AtomicU64::new(0));
        let scheduler = {
            let (mix, in_flight, backlog) = (mix.clone(), in_flight.clone(), backlog.clone());
            let max_in_flight = self.max_in_flight;
            tokio::spawn(async move {
                let pattern = Op::pattern();
                let mut i: u64 = 0;
                let mut tasks = tokio::task::JoinSet::new();
                loop {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    if due >= end {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    while tasks.try_join_next().is_some() {}
                    let op = pattern[(i % pattern.len() as u64) as usize];
                    i += 1;
                    if in_flight.load(Ordering::Relaxed) >= max_in_flight {
                        backlog.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (mix, in_flight) = (mix.clone(), in_flight.clone());
                    tasks.spawn(async move {
                        mix.perform(op, due).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                while tasks.join_next().await.is_some() {}
            })
        };

        let mut samples: Vec<Sample> = Vec::new();
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        let mut failures_total = 0u64;
        let mut last_backlog = 0u64;
        let mut last = started;
        let period = Duration::from_secs(self.sample.max(1));
        let mut next = started + period;
        loop {
            let finishing = next >= end;
            let at = if finishing { end } else { next };
            tokio::time::sleep_until(at.into()).await;
            let interval = std::mem::replace(
                &mut *mix.interval.lock().expect("interval"),
                Interval::new(),
            );
            let resources = sampler.sample().await;
            let now = Instant::now();
            let secs = now.duration_since(last).as_secs_f64().max(1e-9);
            last = now;
            let t = now.duration_since(started).as_secs_f64();
            let backlog_now = backlog.load(Ordering::Relaxed);
            let skipped = backlog_now - last_backlog;
            last_backlog = backlog_now;
            let answered: u64 = interval.codes.values().sum();
            for (code, n) in &interval.codes {
                *totals.entry(code.clone()).or_default() += n;
            }
            failures_total += interval.failures;
            let p99 = ms(&interval.all, 0.99);
            let answers: Vec<String> = interval
                .codes
                .iter()
                .map(|(c, n)| format!("{c}={n}"))
                .collect();
            println!(
                "{:>6.0}s {:>7.0}/s p50={:.2}ms p99={:.2}ms failures={} backlog={} rss={}MiB fds={} db={}MiB wal={}MiB",
                t,
                answered as f64 / secs,
                ms(&interval.all, 0.5),
                p99,
                interval.failures,
                skipped,
                resources.rss_kib / 1024,
                resources.fds,
                resources.db_bytes >> 20,
                resources.wal_bytes >> 20,
            );
            if let Some(f) = csv.as_mut() {
                let mut row = vec![
                    format!("{t:.1}"),
                    format!("{rate:.1}"),
                    format!("{:.1}", answered as f64 / secs),
                ];
                for (op, _) in MIX {
                    let h = &interval.per_op[&op];
                    row.push(h.len().to_string());
                    row.push(format!("{:.3}", ms(h, 0.5)));
                    row.push(format!("{:.3}", ms(h, 0.99)));
                }
                row.extend([
                    format!("{:.3}", ms(&interval.all, 0.5)),
                    format!("{p99:.3}"),
                    interval.failures.to_string(),
                    skipped.to_string(),
                    answers.join(";"),
                    resources.rss_kib.to_string(),
                    resources.fds.to_string(),
                    resources.db_bytes.to_string(),
                    resources.wal_bytes.to_string(),
                ]);
                std::io::Write::write_all(f, format!("{}\n", row.join(",")).as_bytes())
                    .map_err(|e| e.to_string())?;
            }
            samples.push(Sample {
                t,
                all: interval.all,
                p99_ms: p99,
                resources,
            });
            if finishing {
                break;
            }
            next += period;
        }
        scheduler.await.map_err(|e| e.to_string())?;
        // What the last requests (answered after the last sample) said.
        let tail = std::mem::replace(
            &mut *mix.interval.lock().expect("interval"),
            Interval::new(),
        );
        for (code, n) in &tail.codes {
            *totals.entry(code.clone()).or_default() += n;
        }
        failures_total += tail.failures;

        let answered: u64 = totals.values().sum();
        let answers: Vec<String> = totals.iter().map(|(c, n)| format!("{c}={n}")).collect();
        println!(
            "answered {answered} in {:.0}s ({:.0}/s): {}; failures {failures_total}; not sent (backlog) {last_backlog}",
            self.duration.as_secs_f64(),
            answered as f64 / self.duration.as_secs_f64(),
            answers.join(" "),
        );

        let flat = flatness(&samples, self.duration.as_secs_f64(), self.flat_percent);
        println!("{}", flat.1);

        let mut problems = verify(&mix, &base).await?;
        if failures_total > 0 {
            problems.push(format!(
                "{failures_total} failures (5xx, unexpected 4xx or no answer): {}",
                answers.join(" ")
            ));
        }
        if self.strict && !flat.0 {
            problems.push("not flat".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Uploads `n` STANDARD coupons numbered from `from`, 50,000 a request; answers `n`.
async fn upload(
    client: &reqwest::Client,
    base: &str,
    run: &str,
    from: usize,
    n: usize,
) -> Result<usize, String> {
    for start in (from..from + n).step_by(50_000) {
        let end = (start + 50_000).min(from + n);
        let coupons: Vec<Value> = (start..end)
            .map(|i| {
                json!({"code": format!("SOAK{run}-{i}"), "type": "STANDARD",
                       "discount_kind": "PERCENTAGE", "discount_amount": 10,
                       "expires_at": "2099-01-01T00:00:00Z", "max_uses": 1})
            })
            .collect();
        setup_post(
            client,
            format!("{base}/api/v1/coupons"),
            json!({"coupons": coupons}),
            201,
        )
        .await?;
    }
    Ok(n)
}

/// The peak of the mix in a closed loop: the best rate of 16, 64 and 256 clients.
async fn ramp(mix: &Arc<Mix>, secs: u64) -> f64 {
    let pattern = Arc::new(Op::pattern());
    let mut peak: f64 = 0.0;
    for concurrency in [16, 64, 256] {
        let (mix, pattern) = (mix.clone(), pattern.clone());
        let summary = load::run(
            "soak mix, closed loop",
            concurrency,
            Budget::Duration(Duration::from_secs(secs)),
            false,
            move |_, i| {
                let (mix, pattern) = (mix.clone(), pattern.clone());
                async move {
                    let op = pattern[(i % pattern.len() as u64) as usize];
                    let answer = mix.perform(op, Instant::now()).await;
                    match answer {
                        a if a.failure => Outcome::Failed(a.code),
                        a if a.code == "ok" => Outcome::Ok,
                        _ => Outcome::Refused("refused"),
                    }
                }
            },
        )
        .await;
        println!("ramp: {}", summary.line());
        peak = peak.max(summary.rate());
    }
    peak
}

/// Whether the run is flat, and the line that says so: the last window's mean RSS and p99
/// against the baseline window's (each a sixth of the run; see `--flat-percent`).
fn flatness(samples: &[Sample], duration: f64, percent: f64) -> (bool, String) {
    let w = duration / 6.0;
    let window = |from: f64, to: f64| -> (f64, f64, usize) {
        let inside: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.t > from + 0.5 && s.t <= to + 0.5)
            .collect();
        let mut all = histogram();
        for s in &inside {
            let _ = all.add(&s.all);
        }
        let rss = inside
            .iter()
            .map(|s| s.resources.rss_kib as f64)
            .sum::<f64>()
            / inside.len().max(1) as f64;
        (rss, ms(&all, 0.99), inside.len())
    };
    let (rss_a, p99_a, n_a) = window(w, 2.0 * w);
    let (rss_b, p99_b, n_b) = window(duration - w, duration);
    let within = |a: f64, b: f64| a > 0.0 && (b - a).abs() <= a * percent / 100.0;
    let p99_ok = within(p99_a, p99_b);
    // Without --pid there is no RSS to compare: only p99 decides.
    let rss_ok = rss_a == 0.0 && rss_b == 0.0 || within(rss_a, rss_b);
    let max_p99 = samples.iter().map(|s| s.p99_ms).fold(0.0, f64::max);
    let flat = p99_ok && rss_ok && n_a > 0 && n_b > 0;
    let line = format!(
        "flatness ({}): windows {:.0}-{:.0}s ({n_a} samples) and {:.0}-{:.0}s ({n_b} samples): \
         RSS {:.1} -> {:.1} MiB ({:+.1}%), p99 {:.2} -> {:.2} ms ({:+.1}%), within {percent}%: {}; \
         worst sample p99 {max_p99:.2} ms",
        if flat { "flat" } else { "NOT flat" },
        w,
        2.0 * w,
        duration - w,
        duration,
        rss_a / 1024.0,
        rss_b / 1024.0,
        change(rss_a, rss_b),
        p99_a,
        p99_b,
        change(p99_a, p99_b),
        if flat { "yes" } else { "no" },
    );
    (flat, line)
}

fn change(a: f64, b: f64) -> f64 {
    if a > 0.0 { 100.0 * (b - a) / a } else { 0.0 }
}

/// The run's own results checked against the server: the campaign holds exactly the codes
/// issued, the orders stored are the ones acknowledged, each sale sold exactly what was
/// purchased, and (all of them, or a sample of 5,000) every acknowledged code exists and is
/// used exactly when its use was acknowledged, every redeemed coupon has one use.
async fn verify(mix: &Arc<Mix>, base: &str) -> Result<Vec<String>, String> {
    let client = &mix.client;
    let get = |url: String| async move {
        match send(client.get(&url)).await? {
            (200, v) => Ok(v),
            (s, v) => Err(format!("{url}: {s} {v}")),
        }
    };
    let (issued, orders, purchases, mut generated, used, mut redeemed) = {
        let l = mix.ledger.lock().expect("ledger");
        (
            l.issued,
            l.orders,
            l.purchases.clone(),
            l.generated.clone(),
            l.used.clone(),
            l.redeemed.clone(),
        )
    };
    let mut problems = Vec::new();
    let campaign = get(format!("{base}/api/v1/campaigns/{}", mix.campaign)).await?;
    let stored = campaign["issued"].as_i64().unwrap_or(-1);
    if stored != issued as i64 {
        problems.push(format!(
            "campaign {}: {stored} issued for {issued} acknowledged",
            mix.campaign
        ));
    }

    let stored_orders =
        crate::order_load::stored_orders(client, base, &format!("soak-{}-c-", mix.run)).await?;
    if stored_orders != orders {
        problems.push(format!(
            "{stored_orders} orders stored for {orders} acknowledged"
        ));
    }

    let sold_before = mix.sold_before.lock().expect("sold").clone();
    for (sale, before) in &sold_before {
        let s = get(format!("{base}/api/v1/sales/{sale}")).await?;
        let sold = s["sold"].as_i64().unwrap_or(-1) - before;
        let bought = purchases.get(sale).copied().unwrap_or(0) as i64;
        if sold != bought {
            problems.push(format!(
                "sale {sale}: {sold} sold during the run for {bought} purchases acknowledged"
            ));
        }
    }

    const SAMPLE: usize = 5_000;
    let used: std::collections::HashSet<String> = used.into_iter().collect();
    generated.shuffle(&mut rand::rng());
    generated.truncate(SAMPLE);
    redeemed.shuffle(&mut rand::rng());
    redeemed.truncate(SAMPLE);
    let checks: Vec<(String, bool)> = generated
        .iter()
        .map(|c| (c.clone(), true))
        .chain(redeemed.iter().map(|c| (c.clone(), false)))
        .collect();
    let (n_codes, n_coupons) = (generated.len(), redeemed.len());
    let wrong: Arc<Mutex<Vec<String>>> = Arc::default();
    let checks = Arc::new(checks);
    let used = Arc::new(used);
    let summary = {
        let (client, base, wrong, checks, used) = (
            client.clone(),
            base.to_owned(),
            wrong.clone(),
            checks.clone(),
            used.clone(),
        );
        load::run(
            "verify",
            32,
            Budget::Requests(checks.len() as u64),
            false,
            move |_, i| {
                let (code, is_discount) = checks[i as usize].clone();
                let url = if is_discount {
                    format!("{base}/api/v1/discount-codes/{code}")
                } else {
                    format!("{base}/api/v1/coupons/{code}")
                };
                let (client, wrong, used) = (client.clone(), wrong.clone(), used.clone());
                async move {
                    let r = send(client.get(&url)).await;
                    let problem = match &r {
                        Ok((200, v)) if is_discount => {
                            let expected = used.contains(&code);
                            (v["used"].as_bool() != Some(expected)).then(|| {
                                format!("discount code {code}: used {} for {expected}", v["used"])
                            })
                        }
                        Ok((200, v)) => (v["uses"].as_i64() != Some(1))
                            .then(|| format!("coupon {code}: {} uses for 1 redeemed", v["uses"])),
                        Ok((s, v)) => Some(format!("{url}: {s} {v}")),
                        Err(e) => Some(format!("{url}: {e}")),
                    };
                    match problem {
                        Some(p) => {
                            wrong.lock().expect("wrong").push(p);
                            Outcome::Refused("wrong")
                        }
                        None => Outcome::Ok,
                    }
                }
            },
        )
        .await
    };
    let wrong = std::mem::take(&mut *wrong.lock().expect("wrong"));
    if !wrong.is_empty() {
        problems.push(format!(
            "{} of {} codes checked wrong, first: {}",
            wrong.len(),
            summary.answered(),
            wrong[0]
        ));
    }
    if problems.is_empty() {
        println!(
            "verified: campaign holds the {issued} codes issued; {orders} orders stored = acknowledged; \
             {} sale(s) sold exactly the {} purchases; {n_codes} generated codes exist, used exactly \
             when acknowledged ({} uses); {n_coupons} redeemed coupons have one use each",
            sold_before.len(),
            purchases.values().sum::<u64>(),
            used.len(),
        );
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_units() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("180s"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn the_mix_is_a_hundred() {
        assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u32>(), 100);
        assert_eq!(Op::pattern().len(), 100);
    }

    fn sample(t: f64, rss_kib: u64, p99_us: u64) -> Sample {
        let mut all = histogram();
        all.record(p99_us).unwrap();
        Sample {
            t,
            p99_ms: p99_us as f64 / 1000.0,
            all,
            resources: Resources {
                rss_kib,
                ..Resources::default()
            },
        }
    }

    #[test]
    fn flatness_compares_the_second_and_the_last_sixth() {
        // 60 s in samples of 10: windows 10-20 and 50-60.
        let flat: Vec<Sample> = (1..=6)
            .map(|i| sample(10.0 * i as f64, 100_000, 1_000))
            .collect();
        assert!(flatness(&flat, 60.0, 20.0).0);
        let growing: Vec<Sample> = (1..=6)
            .map(|i| sample(10.0 * i as f64, 100_000 * i, 1_000))
            .collect();
        assert!(!flatness(&growing, 60.0, 20.0).0);
        let slower: Vec<Sample> = (1..=6)
            .map(|i| sample(10.0 * i as f64, 100_000, 1_000 * i))
            .collect();
        assert!(!flatness(&slower, 60.0, 20.0).0);
    }
}
