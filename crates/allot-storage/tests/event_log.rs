//! The PostgreSQL event log's promises and cost on a real server: each event's wide row is
//! written once (never updated to be numbered), every event is numbered exactly once, without
//! gaps, after every event committed before it; events stored before migration 0030 carry over.

use std::sync::Arc;

use allot_domain::UnixMillis;
use allot_domain::campaign::{CampaignName, CampaignWindow, TotalCoupons};
use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};
use allot_storage::postgres::{PgStore, connect};
use allot_storage::{
    CampaignStore as _, DiscountStore as _, EventQuery, EventStore as _, IssueOutcome,
    IssueRequest, NewCampaign,
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

/// Every wide row's physical identity: its id, the transaction that wrote this version of it
/// and where the version is. An UPDATE (even a HOT one) makes a new version with a new `xmin`.
async fn row_versions(db: &tokio_postgres::Client) -> Vec<(i64, String, String)> {
    db.query(
        "SELECT id, CAST(xmin AS TEXT), CAST(ctid AS TEXT) FROM event_rows ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// The numbered log as (seq, id, transaction), in seq order.
async fn numbered(db: &tokio_postgres::Client) -> Vec<(i64, i64, String)> {
    db.query(
        "SELECT n.seq, n.id, CAST(r.tx AS TEXT) FROM event_numbers n
         JOIN event_rows r ON r.id = n.id ORDER BY n.seq",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Writes through three instances (batched coupon issues, discount code uses appended in the
/// use's own statement, a batch of codes), then reads the log from each instance: no wide row
/// was updated by the numbering, every event has exactly one number, the numbers are 1..N, and
/// the events of each transaction are numbered in the order they were appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_event_is_written_once_and_numbered_once_without_gaps() {
    let cluster = PgCluster::start();
    let instances = [
        store(&cluster).await,
        store(&cluster).await,
        store(&cluster).await,
    ];
    let db = connect(&cluster.url()).await.unwrap();
    let now = UnixMillis::from_millis(1_795_341_600_000);

    let generated = instances[0]
        .generate_discount_codes(
            CodeLength::EIGHT,
            GenerateCount::parse(50).unwrap(),
            now,
            None,
        )
        .await
        .unwrap();
    let mut writes = Vec::new();
    for (i, store) in instances.iter().enumerate() {
        let store = store.clone();
        writes.push(tokio::spawn(async move { issue(&store, 200, 16).await }));
        let (store, codes) = (instances[i].clone(), generated.codes.clone());
        writes.push(tokio::spawn(async move {
            for code in codes.iter().skip(i).step_by(3) {
                let code = DiscountCode::parse(code.as_str()).unwrap();
                let used = store.use_discount_code(&code, now).await.unwrap();
                assert_eq!(used, UseOutcome::Used);
            }
        }));
    }
    for w in futures::future::join_all(writes).await {
        w.unwrap();
    }
    let written = row_versions(&db).await;
    // 1 batch of codes, 3 campaigns created with 200 issues each, 50 uses.
    assert_eq!(written.len(), 1 + 3 * 201 + 50);

    let mut ends = Vec::new();
    for store in &instances {
        ends.push(read_log(store).await);
    }
    assert_eq!(ends, vec![written.len() as i64; 3]);
    assert_eq!(
        row_versions(&db).await,
        written,
        "numbering the log wrote a new version of a wide row"
    );
    let unnumbered: i64 = db
        .query_one("SELECT count(*) FROM event_unnumbered", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(unnumbered, 0, "markers left behind");
    let log = numbered(&db).await;
    let seqs: Vec<i64> = log.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=written.len() as i64).collect::<Vec<_>>(),
        "gapless"
    );
    let mut ids: Vec<i64> = log.iter().map(|(_, id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids,
        written.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        "each once"
    );
    // Within one transaction, seq order is append (id) order.
    let mut last_id_of_tx = std::collections::HashMap::new();
    for (seq, id, tx) in &log {
        if let Some(before) = last_id_of_tx.insert(tx.clone(), *id) {
            assert!(
                before < *id,
                "seq {seq}: event {id} numbered after {before} of its transaction"
            );
        }
    }
    // The API reads the same log: every event once, in seq order.
    let all = instances[1]
        .events(EventQuery {
            after: 0,
            limit: 10_000,
            kind: None,
        })
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
}

/// A transaction that took a lower id but commits later is numbered after what was numbered
/// while it ran: a reader at `after = its last seq` does not skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_is_numbered_after_those_read_before() {
    let cluster = PgCluster::start();
    let store = store(&cluster).await;
    let mut slow = connect(&cluster.url()).await.unwrap();
    let late = slow.transaction().await.unwrap();
    // As a writer appends (postgres/event.rs): the wide row and its marker.
    let late_id: i64 = late
        .query_one(
            "WITH logged AS (
                 INSERT INTO event_rows (type, occurred_at_ms, actor, payload)
                 VALUES ('CampaignCreated', 1, 'system:test', '{}') RETURNING id),
             marked AS (INSERT INTO event_unnumbered (ids) SELECT array_agg(id) FROM logged)
             SELECT id FROM logged",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    issue(&store, 3, 1).await;
    let seen = read_log(&store).await;
    assert_eq!(
        seen, 4,
        "the three issues and their campaign, not the open transaction"
    );
    late.commit().await.unwrap();
    let after = store
        .events(EventQuery {
            after: seen,
            limit: 10,
            kind: None,
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (after[0].seq, after[0].kind.as_str()),
        (5, "CampaignCreated")
    );
    let db = connect(&cluster.url()).await.unwrap();
    let first_issue: i64 = db
        .query_one("SELECT min(id) FROM event_rows WHERE id <> $1", &[&late_id])
        .await
        .unwrap()
        .get(0);
    assert!(late_id < first_issue, "the late event took the lower id");
}

/// Events stored before migration 0030, numbered and not yet numbered, are in the log after
/// it: the numbered with their numbers, the others after them in id order; the wide table has
/// only its primary key left; new events go on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_before_the_migration_carry_over() {
    let cluster = PgCluster::start();
    let client = connect(&cluster.url()).await.unwrap();
    let (before, after) = allot_storage::migrations::MIGRATIONS.split_at(29);
    assert_eq!(after[0].name, "event_log_written_once");
    for m in before {
        client.batch_execute(m.postgres).await.expect(m.name);
    }
    client
        .batch_execute(
            "CREATE TABLE allot_migrations (
                 version       BIGINT PRIMARY KEY,
                 name          TEXT   NOT NULL,
                 applied_at_ms BIGINT NOT NULL
             );
             INSERT INTO allot_migrations (version, name, applied_at_ms)
             SELECT v, 'before', 0 FROM generate_series(1, 29) AS v;
             INSERT INTO events (type, occurred_at_ms, actor, payload)
             SELECT 'CampaignCreated', n, 'api', CAST('{\"n\": ' || n || '}' AS JSONB)
             FROM generate_series(1, 5) AS n;
             UPDATE events SET seq = id + 10 WHERE id <= 3;",
        )
        .await
        .expect("old events");
    let store = store(&cluster).await; // applies 0030
    let log = store
        .events(EventQuery {
            after: 0,
            limit: 100,
            kind: None,
        })
        .await
        .unwrap();
    let seen: Vec<(i64, i64)> = log
        .iter()
        .map(|e| {
            let p: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            (e.seq, p["n"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(seen, vec![(11, 1), (12, 2), (13, 3), (14, 4), (15, 5)]);
    let indexes: Vec<String> = client
        .query(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'event_rows' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes, vec!["event_rows_pkey"]);
    issue(&store, 1, 1).await;
    assert_eq!(read_log(&store).await, 17);
    let view: i64 = client
        .query_one("SELECT count(seq) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(view, 7, "the view shows every numbered event");
}

/// Prints `pg_waldump --stats=record` between two LSNs (`EVENT_LOG_WALDUMP=1`, with
/// `pg_waldump` on the PATH): where the WAL went, by record type.
async fn waldump(db: &tokio_postgres::Client, from: &str, to: &str, what: &str) {
    let dir: String = db
        .query_one("SELECT current_setting('data_directory')", &[])
        .await
        .unwrap()
        .get(0);
    let out = std::process::Command::new("pg_waldump")
        .args(["--stats=record", "-p"])
        .arg(std::path::Path::new(&dir).join("pg_wal"))
        .args(["-s", from, "-e", to])
        .output()
        .expect("pg_waldump runs");
    println!("{what} WAL:\n{}", String::from_utf8_lossy(&out.stdout));
}

/// Writes `n` events straight into the log as writers do (wide rows and markers), `per_marker`
/// events per append statement, without numbering them.
async fn unnumbered_backlog(db: &tokio_postgres::Client, n: i64, per_marker: i64) {
    db.execute(
        "WITH logged AS (
             INSERT INTO event_rows (type, occurred_at_ms, actor, payload)
             SELECT 'T' || (n % 20), n, 'user:' || (n % 500), '{\"a\": 1}'
             FROM generate_series(1, $1::int8) AS n RETURNING id)
         INSERT INTO event_unnumbered (ids)
         SELECT array_agg(id ORDER BY id) FROM logged GROUP BY (id - 1) / $2::int8",
        &[&n, &per_marker],
    )
    .await
    .unwrap();
}

/// The sequencer reads each event's row by its primary key, whatever the planner guesses of
/// the markers (ten ids each): a hash join would read the whole log on every read of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencer_probes_the_rows_it_numbers_and_never_scans_the_log() {
    let cluster = PgCluster::start();
    let store = store(&cluster).await;
    let db = connect(&cluster.url()).await.unwrap();
    unnumbered_backlog(&db, 200_000, 1).await;
    read_log(&store).await;
    unnumbered_backlog(&db, 5_000, 1).await;
    db.batch_execute("ANALYZE").await.unwrap();
    let plan: String = db
        .query(
            &format!("EXPLAIN {}", allot_storage::postgres::NUMBER_EVENTS),
            &[&5_000_i64],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        plan.contains("event_rows_pkey") && !plan.contains("Seq Scan on event_rows"),
        "the sequencer does not probe the rows by id:\n{plan}"
    );
}

/// How long one read takes to number a backlog (nobody read the log for a while): 100,000
/// and then 1,000,000 events of one event per append statement (the worst case: a marker
/// each), and 1,000,000 of 32. Printed, not asserted; run by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn measure_a_read_after_a_backlog() {
    let cluster = PgCluster::start();
    let store = store(&cluster).await;
    let db = connect(&cluster.url()).await.unwrap();
    for (n, per) in [(100_000, 1), (1_000_000, 1), (1_000_000, 32)] {
        unnumbered_backlog(&db, n, per).await;
        let began = std::time::Instant::now();
        let before = store.log_end().await.unwrap();
        let took = began.elapsed();
        let left: i64 = db
            .query_one("SELECT count(*) FROM event_unnumbered", &[])
            .await
            .unwrap()
            .get(0);
        println!(
            "a backlog of {n} events, {per} per append: one read took {took:?}, log end {before}, markers left {left}"
        );
    }
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
    let sequencer_wal = wal_between(written.clone(), read.clone()).await;
    if std::env::var_os("EVENT_LOG_WALDUMP").is_some() {
        waldump(&db, &start, &written, "the writers'").await;
        waldump(&db, &written, &read, "the sequencer's").await;
    }
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

/// How long migration 0030 takes over a log of a million events (900,000 numbered, 100,000
/// not yet), and that it numbers them all. Printed, not asserted; run by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn measure_the_migration_of_a_million_events() {
    let cluster = PgCluster::start();
    let client = connect(&cluster.url()).await.unwrap();
    let (before, after) = allot_storage::migrations::MIGRATIONS.split_at(29);
    for m in before {
        client.batch_execute(m.postgres).await.expect(m.name);
    }
    client
        .batch_execute(
            "INSERT INTO events (type, occurred_at_ms, actor, source, payload)
             SELECT 'CampaignCouponIssued', n, 'user:' || (n % 1000), '127.0.0.1',
                    CAST('{\"campaign_id\": 1, \"code\": \"C' || n || '\", \"seq\": ' || n || '}' AS JSONB)
             FROM generate_series(1, 1000000) AS n;
             UPDATE events SET seq = id WHERE id <= 900000;",
        )
        .await
        .expect("a million old events");
    client
        .batch_execute("VACUUM ANALYZE events")
        .await
        .expect("vacuumed");
    let began = std::time::Instant::now();
    client
        .batch_execute(&format!("BEGIN; {} COMMIT;", after[0].postgres))
        .await
        .expect("migrates");
    let took = began.elapsed();
    let row = client
        .query_one(
            "SELECT count(*), max(seq), count(DISTINCT id) FROM event_numbers",
            &[],
        )
        .await
        .unwrap();
    let (n, max, ids): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((n, max, ids), (1_000_000, 1_000_000, 1_000_000));
    println!("migration 0030 over 1,000,000 events: {took:?}");
}

/// The writers' append statement as it was before migration 0030 (`postgres/event.rs` then).
const APPEND_BEFORE_0030: &str = "INSERT INTO events (type, occurred_at_ms, actor, source, payload)
     SELECT k, t, a, s, p::jsonb
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[])
         WITH ORDINALITY AS u(k, t, a, s, p, n) ORDER BY n";

/// The sequencer's statement as it was before migration 0030 (10,000 events at most).
const NUMBER_BEFORE_0030: &str = "WITH top AS (SELECT coalesce(max(seq), 0) AS s FROM events),
          todo AS (SELECT id, row_number() OVER (ORDER BY id) AS n
                   FROM (SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT $1) x)
     UPDATE events e SET seq = top.s + todo.n FROM todo, top WHERE e.id = todo.id";

/// The writers' statement itself, before migration 0030 and after, on one server in one run:
/// 2,000 appends of 1 event (a discount code's use, a user's change) and 2,000 of 32 (a
/// campaign-issue batch), each its own transaction from one connection, then the numbering.
/// Prints WAL bytes per event, time per statement (indicative: a shared machine), and one
/// `EXPLAIN (ANALYZE, BUFFERS, WAL)` of each statement. Run by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn measure_the_writers_statement_before_and_after_0030() {
    const APPENDS: usize = 2_000;
    let cluster = PgCluster::start();
    let db = connect(&cluster.url()).await.unwrap();
    let (before, after) = allot_storage::migrations::MIGRATIONS.split_at(29);
    for m in before {
        db.batch_execute(m.postgres).await.expect(m.name);
    }
    let payload = r#"{"campaign_id": 1, "code": "K7Q2M9XW", "seq": 17, "user_id": "user-1234"}"#;
    let args = |n: usize| {
        (
            vec!["CampaignCouponIssued"; n],
            vec![1_795_341_600_000_i64; n],
            vec!["user:1234"; n],
            vec![Some("10.1.2.3"); n],
            vec![payload; n],
        )
    };
    let lsn = || async {
        db.query_one("SELECT CAST(pg_current_wal_lsn() AS TEXT)", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
    };
    let wal_since = |a: String| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), CAST($1::text AS pg_lsn)) AS BIGINT)",
                &[&a],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    for (design, append, number) in [
        ("before 0030", APPEND_BEFORE_0030, NUMBER_BEFORE_0030),
        (
            "after 0030",
            allot_storage::postgres::APPEND_EVENTS,
            allot_storage::postgres::NUMBER_EVENTS,
        ),
    ] {
        if design == "after 0030" {
            db.batch_execute(after[0].postgres).await.expect("0030");
        }
        let statement = db.prepare(append).await.unwrap();
        for per in [1_usize, 32] {
            let (k, t, a, s, p) = args(per);
            db.batch_execute("CHECKPOINT").await.unwrap();
            let start = lsn().await;
            let began = std::time::Instant::now();
            for _ in 0..APPENDS {
                db.execute(&statement, &[&k, &t, &a, &s, &p]).await.unwrap();
            }
            let took = began.elapsed();
            let wal = wal_since(start).await;
            let events = (APPENDS * per) as f64;
            let start = lsn().await;
            // As many sequencer statements as it takes (both number at most 10,000 a run,
            // counted in events before and in appends after).
            loop {
                let left: i64 = db
                    .query_one("SELECT count(*) FROM events WHERE seq IS NULL", &[])
                    .await
                    .unwrap()
                    .get(0);
                if left == 0 {
                    break;
                }
                db.query(number, &[&10_000_i64]).await.unwrap();
            }
            let numbering = wal_since(start).await;
            let plan: Vec<String> = db
                .query(
                    &format!("EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) {append}"),
                    &[&k, &t, &a, &s, &p],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            println!(
                "{design}, {per} event(s) per statement: writer {:.0} B WAL/event, {:.1} us/statement; \
                 numbering {:.0} B WAL/event\n{}\n",
                wal as f64 / events,
                took.as_secs_f64() * 1e6 / APPENDS as f64,
                numbering as f64 / events,
                plan.join("\n")
            );
        }
    }
}
