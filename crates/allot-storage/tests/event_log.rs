//! The PostgreSQL event log's cost and its promises on a real server.

use std::sync::Arc;

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignName, CampaignWindow, TotalCoupons};
use allot_storage::postgres::{PgStore, connect};
use allot_storage::{
    CampaignStore as _, EventQuery, EventStore as _, IssueOutcome, IssueRequest, NewCampaign,
};
use allot_testkit::PgCluster;

async fn store(cluster: &PgCluster) -> Arc<PgStore> {
    Arc::new(
        PgStore::open(
            &cluster.url(),
            &allot_storage::crypto::DataKey::parse(allot_testkit::TEST_DATA_KEY).unwrap(),
        )
        .await
        .expect("opens"),
    )
}

/// Issues `n` coupons of a new campaign with `tasks` concurrent callers: one
/// `CampaignCouponIssued` event each.
async fn issue(store: &Arc<PgStore>, n: usize, tasks: usize) {
    let now = UnixMillis::from_millis(1_795_341_600_000);
    let campaign = store
        .create_campaign(
            NewCampaign {
                name: CampaignName::parse("measured").unwrap(),
                window: CampaignWindow::new(now, None).unwrap(),
                total: TotalCoupons::parse(n as i64).unwrap(),
                per_user_limit: None,
            },
            now,
        )
        .await
        .unwrap();
    let callers = (0..tasks).map(|t| {
        let store = store.clone();
        let id = campaign.id;
        tokio::spawn(async move {
            for _ in (t..n).step_by(tasks) {
                let request = IssueRequest {
                    campaign_id: id,
                    user_id: None,
                    idempotency_key: None,
                    now,
                };
                match store.issue_coupon(request).await.expect("answers") {
                    IssueOutcome::Issued { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
    });
    for c in futures::future::join_all(callers).await {
        c.unwrap();
    }
}

/// Reads the log once (the sequencer numbers what is committed) and answers its end.
async fn read_log(store: &PgStore) -> i64 {
    store
        .events(EventQuery {
            after: i64::MAX,
            limit: 1,
            kind: None,
        })
        .await
        .unwrap();
    store.log_end().await.unwrap()
}

/// The bytes of the event log's tables with their indexes and TOAST, whatever the design.
const LOG_BYTES: &str = "SELECT CAST(coalesce(sum(pg_total_relation_size(oid)), 0) AS BIGINT) FROM pg_class
     WHERE relkind = 'r' AND relname IN ('events', 'event_rows', 'event_numbers', 'event_unnumbered')";

/// What 100,000 events cost on PostgreSQL: WAL written by the writers (100,000 coupon issues,
/// the log unread), WAL written by the sequencer (one read of the log), and the log's heap and
/// index bytes. Printed, not asserted (a figure for docs/PERFORMANCE.md; run with
/// `--ignored --nocapture`). The issues' own rows are in the writers' WAL too: compare runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn measure_the_cost_of_100_000_events() {
    const EVENTS: usize = 100_000;
    let cluster = PgCluster::start();
    let store = store(&cluster).await;
    let db = connect(&cluster.url()).await.unwrap();
    let lsn = || async {
        db.query_one("SELECT CAST(pg_current_wal_lsn() AS TEXT)", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
    };
    let wal_between = |a: String, b: String| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT CAST(pg_wal_lsn_diff(CAST($2::text AS pg_lsn), CAST($1::text AS pg_lsn)) AS BIGINT)",
                &[&a, &b],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    read_log(&store).await;
    db.batch_execute("CHECKPOINT").await.unwrap();
    let start = lsn().await;
    let began = std::time::Instant::now();
    issue(&store, EVENTS, 64).await;
    let writes_took = began.elapsed();
    let written = lsn().await;
    let began = std::time::Instant::now();
    let end = read_log(&store).await;
    let read_took = began.elapsed();
    let read = lsn().await;
    let writers_wal = wal_between(start.clone(), written.clone()).await;
    let sequencer_wal = wal_between(written, read).await;
    let bytes: i64 = db.query_one(LOG_BYTES, &[]).await.unwrap().get(0);
    let per = |b: i64| b as f64 / EVENTS as f64;
    println!(
        "{EVENTS} events (log end {end}): writers' WAL {writers_wal} B ({:.0} B/event, issues and \
         events) in {writes_took:?}; sequencer's WAL {sequencer_wal} B ({:.0} B/event) in \
         {read_took:?}; log tables {bytes} B ({:.0} B/event)",
        per(writers_wal),
        per(sequencer_wal),
        per(bytes)
    );
    // The same 100,000 issues again, the log read every 1,000 (readers interleaved).
    db.batch_execute("CHECKPOINT").await.unwrap();
    let start = lsn().await;
    let before: i64 = db.query_one(LOG_BYTES, &[]).await.unwrap().get(0);
    for _ in 0..(EVENTS / 1_000) {
        issue(&store, 1_000, 64).await;
        read_log(&store).await;
    }
    let wal = wal_between(start, lsn().await).await;
    let after: i64 = db.query_one(LOG_BYTES, &[]).await.unwrap().get(0);
    println!(
        "interleaved: WAL {wal} B ({:.0} B/event, issues, events and numbering); log tables grew \
         {} B ({:.0} B/event)",
        per(wal),
        after - before,
        per(after - before)
    );
}
