//! Differential test (issue 14): the same random sequences of operations, sent over REST as a
//! client would to one server on SQLite and one on PostgreSQL, get the same answers and leave
//! the same state.
//!
//! Each proptest case starts two fresh servers (a new SQLite directory; a new database in one
//! PostgreSQL cluster kept for the whole test), both with a manual clock at the same instant,
//! lays out the same small world (`opening`), then applies 20 to 60 generated operations to both
//! and compares each pair of answers, then everything the case created, read back. What a
//! server draws at random (codes) or numbers on its own (ids) is compared by name in order of
//! appearance (`names`). A failure prints the shrunk sequence, one operation a line.
//!
//! It runs on both backends whatever `ALLOT_TEST_BACKEND` says, so it is its own test target
//! and runs once, with the SQLite pass of the suite. `PROPTEST_CASES` changes the number of
//! cases (default [`CASES_DEFAULT`]).

#[path = "api/helpers.rs"]
mod helpers;
#[path = "differential/names.rs"]
mod names;
#[path = "differential/ops.rs"]
mod ops;
#[path = "differential/side.rs"]
mod side;
#[path = "differential/state.rs"]
mod state;

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use crate::names::differences;
use crate::ops::{Kind, Op, Pick};
use crate::side::Side;

/// Cases per run: about 2 s each on two busy cores (two servers started, 40 operations on
/// each), so the test stays well under a minute and a half.
const CASES_DEFAULT: u32 = 24;
/// Shrinking re-runs whole cases; bounded so that a failure is reported in minutes.
const SHRINK_ITERS_MAX: u32 = 400;
const SHRINK_TIME_MAX_MS: u32 = 300_000;
/// 2026-11-22T10:30:00Z: mid-hour, so that a case's clock can move into the next sale.
const CASE_START_MS: i64 = 1_795_343_400_000;
/// Paths listed when two answers differ.
const DIFFERENCES_SHOWN: usize = 12;

/// The world every case starts from: two warehouses, three products with stock, a campaign
/// of 4 codes at most 2 a customer, three coupons (one that expires in 10 minutes), three
/// discount codes, the current flash sale.
fn opening() -> Vec<Op> {
    use Pick::Nth;
    let stock = |product, warehouse, quantity| Op::Adjust {
        product: Nth(product),
        warehouse: Nth(warehouse),
        set: true,
        quantity,
    };
    let coupon = |kind, percent, max_uses, expires_in_min| Op::UploadCoupons {
        kind,
        percent,
        max_uses,
        expires_in_min,
        count: 1,
        clash: false,
    };
    let product = |price_minor| Op::CreateProduct {
        price_minor,
        clash: false,
    };
    vec![
        // The hour's sale is opened by a job at start or by the first read, with one event
        // either way: read it first, so that its event comes first on both servers.
        Op::ReadSale,
        Op::CreateWarehouse,
        Op::CreateWarehouse,
        product(1_000),
        product(2_500),
        product(399),
        stock(0, 0, 8),
        stock(0, 1, 5),
        stock(1, 0, 6),
        stock(2, 1, 6),
        Op::CreateCampaign {
            total: 4,
            per_user_limit: Some(2),
            open_for_min: None,
        },
        coupon(Kind::Standard, false, 2, 600),
        coupon(Kind::Free, true, 1, 600),
        coupon(Kind::Standard, false, 3, 10),
        Op::GenerateCodes { count: 3 },
    ]
}

/// The database every case's database is copied from: migrated once, empty (a copy takes
/// a fraction of the time the migrations take).
const TEMPLATE: &str = "differential_template";

/// One PostgreSQL cluster for the whole test, a database in it per case.
struct Postgres {
    cluster: allot_testkit::PgCluster,
    admin: tokio_postgres::Client,
    cases: AtomicUsize,
}

async fn run_case(pg: &Postgres, ops: &[Op]) -> Result<(), String> {
    let started = std::time::Instant::now();
    let database = format!("differential_{}", pg.cases.fetch_add(1, Ordering::Relaxed));
    pg.admin
        .batch_execute(&format!("CREATE DATABASE {database} TEMPLATE {TEMPLATE}"))
        .await
        .map_err(|e| format!("creating {database}: {e}"))?;
    let (mut sqlite, mut postgres) = tokio::join!(
        Side::start(None, CASE_START_MS),
        Side::start(Some(pg.cluster.url_for(&database)), CASE_START_MS)
    );
    let result = compare(&mut sqlite, &mut postgres, ops).await;
    tokio::join!(sqlite.stop(), postgres.stop());
    pg.admin
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await
        .map_err(|e| format!("dropping {database}: {e}"))?;
    eprintln!(
        "{database}: {} operations, {} ms",
        ops.len(),
        started.elapsed().as_millis()
    );
    result
}

async fn compare(sqlite: &mut Side, postgres: &mut Side, ops: &[Op]) -> Result<(), String> {
    let opening = opening();
    let steps = opening
        .iter()
        .enumerate()
        .map(|(i, op)| (format!("opening step {i}"), op))
        .chain(
            ops.iter()
                .enumerate()
                .map(|(i, op)| (format!("op {i}"), op)),
        );
    for (step, op) in steps {
        let (a, b) = tokio::join!(sqlite.apply(op), postgres.apply(op));
        if a != b {
            return Err(format!(
                "{step} {op:?}: the answers differ\n  sqlite:   {} {}\n  postgres: {} {}\n{}",
                a.0,
                a.1,
                b.0,
                b.1,
                differences(&a.1, &b.1, DIFFERENCES_SHOWN).join("\n")
            ));
        }
    }
    let (a, b) = tokio::join!(sqlite.final_state(), postgres.final_state());
    if a != b {
        return Err(format!(
            "the final states differ:\n{}",
            differences(&a, &b, DIFFERENCES_SHOWN).join("\n")
        ));
    }
    Ok(())
}

/// Creates [`TEMPLATE`] and migrates it; answers a connection for creating databases.
async fn migrated_template(cluster: &allot_testkit::PgCluster) -> tokio_postgres::Client {
    let admin = allot_storage::postgres::connect(&cluster.url())
        .await
        .expect("postgres connects");
    admin
        .batch_execute(&format!("CREATE DATABASE {TEMPLATE}"))
        .await
        .expect("template created");
    let dir = tempfile::TempDir::new().expect("temp dir");
    let mut config = allot_server::Config::for_data_dir(dir.path());
    config.database = Some(cluster.url_for(TEMPLATE));
    config.data_key = Some(helpers::test_data_key());
    let store = allot_server::open_store(&config)
        .await
        .expect("template migrated");
    store.close().await.expect("template closed");
    admin
}

fn config() -> Config {
    // `Config::default()` reads `PROPTEST_CASES` and the other `PROPTEST_*` variables.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES_DEFAULT;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = SHRINK_ITERS_MAX;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_TIME").is_none() {
        config.max_shrink_time = SHRINK_TIME_MAX_MS;
    }
    // A failure prints its sequence; no regression file is written into the source tree.
    config.failure_persistence = None;
    config
}

#[test]
fn sqlite_and_postgres_answer_alike_and_end_alike() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = allot_testkit::PgCluster::start();
    let admin = runtime.block_on(migrated_template(&cluster));
    let pg = Postgres {
        cluster,
        admin,
        cases: AtomicUsize::new(0),
    };
    let mut runner = TestRunner::new(config());
    let result = runner.run(&ops::sequence(), |ops| {
        runtime
            .block_on(run_case(&pg, &ops))
            .map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => {
            let listing: Vec<String> = ops
                .iter()
                .enumerate()
                .map(|(i, op)| format!("  op {i}: {op:?}"))
                .collect();
            panic!(
                "SQLite and PostgreSQL disagree. Minimal sequence after the opening ({} \
                 operations):\n{}\n{reason}",
                ops.len(),
                listing.join("\n")
            );
        }
        Err(TestError::Abort(reason)) => panic!("proptest gave up: {reason}"),
    }
}
