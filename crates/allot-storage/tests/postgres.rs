//! The PostgreSQL schema on a real PostgreSQL server: migrations applied once however many
//! instances start at the same moment, and the database's own guarantees (never over-issue,
//! codes unique, uses and sales bounded) holding whatever code runs above it.

use allot_storage::postgres::{connect, migrate};
use allot_storage::{CampaignStore as _, CouponStore as _, DiscountStore as _};
use allot_testkit::PgCluster;

async fn migrated(cluster: &PgCluster) -> tokio_postgres::Client {
    let mut client = connect(&cluster.url()).await.expect("connects");
    migrate::apply(&mut client).await.expect("migrates");
    client
}

/// Three stores on one cluster, as three allot instances would hold.
async fn three_instances(
    cluster: &PgCluster,
) -> Vec<std::sync::Arc<allot_storage::postgres::PgStore>> {
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(std::sync::Arc::new(
            allot_storage::postgres::PgStore::open(
                &cluster.url(),
                &allot_storage::crypto::DataKey::parse(allot_testkit::TEST_DATA_KEY).unwrap(),
            )
            .await
            .expect("opens"),
        ));
    }
    instances
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_when_several_instances_start_together() {
    let cluster = PgCluster::start();
    let runs = (0..6).map(|_| {
        let url = cluster.url();
        tokio::spawn(async move {
            let mut client = connect(&url).await.expect("connects");
            migrate::apply(&mut client).await.expect("migrates")
        })
    });
    let applied: Vec<Vec<i64>> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let all = allot_storage::migrations::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect::<Vec<_>>();
    assert_eq!(
        applied.iter().filter(|a| **a == all).count(),
        1,
        "one instance applied them all"
    );
    assert_eq!(
        applied.iter().filter(|a| a.is_empty()).count(),
        5,
        "the others found nothing to do"
    );
    let mut client = connect(&cluster.url()).await.unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM allot_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, all.len() as i64);
    assert!(migrate::apply(&mut client).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_over_issue_duplicate_codes_and_overuse() {
    let cluster = PgCluster::start();
    let db = migrated(&cluster).await;

    let id: i64 = db
        .query_one(
            "INSERT INTO campaigns (name, starts_at_ms, total, created_at_ms) VALUES ('c', 0, 1, 0) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.execute(
        "UPDATE campaigns SET issued = issued + 1 WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let over = db
        .execute(
            "UPDATE campaigns SET issued = issued + 1 WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap_err();
    assert_eq!(
        sqlstate(&over),
        "23514",
        "check_violation: never more than total"
    );

    db.execute(
        "INSERT INTO campaign_coupons (campaign_id, seq, code, issued_at_ms) VALUES ($1, 1, '가나', 0)",
        &[&id],
    )
    .await
    .unwrap();
    let twice = db
        .execute(
            "INSERT INTO campaign_coupons (campaign_id, seq, code, issued_at_ms) VALUES ($1, 2, '가나', 0)",
            &[&id],
        )
        .await
        .unwrap_err();
    assert_eq!(
        sqlstate(&twice),
        "23505",
        "unique_violation: a code exists once across campaigns"
    );

    db.batch_execute(
        "INSERT INTO discount_code_batches (length, count, created_at_ms) VALUES (8, 1, 0);
         INSERT INTO discount_codes (code, batch_id) VALUES ('ABCDEFGH', 1);
         INSERT INTO coupon_uploads (count, created_at_ms) VALUES (1, 0);
         INSERT INTO coupons (code, discount_kind, discount_amount, expires_at_ms, max_uses, upload_id, created_at_ms)
              VALUES ('ONCE', 'FLAT', 5, 9999999999999, 1, 1, 0);
         UPDATE coupons SET uses = 1 WHERE code = 'ONCE';
         INSERT INTO sales (starts_at_ms, ends_at_ms, items_total, created_at_ms) VALUES (0, 3600000, 1, 0);
         UPDATE sales SET sold = 1;",
    )
    .await
    .unwrap();
    let again = db
        .execute(
            "INSERT INTO discount_codes (code, batch_id) VALUES ('ABCDEFGH', 1)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&again), "23505");
    let overuse = db
        .execute(
            "UPDATE coupons SET uses = uses + 1 WHERE code = 'ONCE'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&overuse), "23514");
    let oversell = db
        .execute("UPDATE sales SET sold = sold + 1", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&oversell), "23514");
    let second_sale = db
        .execute("INSERT INTO sales (starts_at_ms, ends_at_ms, items_total, created_at_ms) VALUES (0, 3600000, 1, 0)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&second_sale), "23505", "one sale per hour");
    let pct = db
        .execute(
            "INSERT INTO coupons (code, discount_kind, discount_amount, expires_at_ms, max_uses, upload_id, created_at_ms)
             VALUES ('PCT', 'PERCENTAGE', 101, 1, 1, 1, 0)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&pct), "23514");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discount_codes_hold_across_three_instances_on_one_database() {
    use std::collections::HashSet;

    use allot_domain::UnixMillis;
    use allot_domain::discount::{CodeLength, DiscountCode, GenerateCount, UseOutcome};

    let cluster = PgCluster::start();
    let instances = three_instances(&cluster).await;
    let now = UnixMillis::from_millis(1_795_341_600_000);

    // 30 concurrent batches of 2,000, spread over the instances: all distinct, all stored.
    let batches = (0..30).map(|i| {
        let store = instances[i % 3].clone();
        tokio::spawn(async move {
            store
                .generate_discount_codes(
                    CodeLength::EIGHT,
                    GenerateCount::parse(2_000).unwrap(),
                    now,
                    None,
                )
                .await
                .expect("generates")
                .codes
        })
    });
    let mut all = HashSet::new();
    for b in futures::future::join_all(batches).await {
        let codes = b.unwrap();
        assert_eq!(codes.len(), 2_000);
        for c in codes {
            assert!(all.insert(c.into_string()), "a code was issued twice");
        }
    }
    let db = connect(&cluster.url()).await.unwrap();
    let stored: i64 = db
        .query_one("SELECT count(*) FROM discount_codes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 60_000);

    // One code used from every instance at once: used exactly once.
    let code = DiscountCode::parse(all.iter().next().unwrap()).unwrap();
    let uses = (0..48).map(|i| {
        let (store, code) = (instances[i % 3].clone(), code.clone());
        tokio::spawn(async move { store.use_discount_code(&code, now).await.expect("answers") })
    });
    let outcomes: Vec<UseOutcome> = futures::future::join_all(uses)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == UseOutcome::Used).count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == UseOutcome::AlreadyUsed)
            .count(),
        47
    );
    let unknown = DiscountCode::parse("ZZZZZZZ").unwrap();
    assert_eq!(
        instances[0].use_discount_code(&unknown, now).await.unwrap(),
        UseOutcome::Invalid
    );
    let record = instances[2].discount_code(&code).await.unwrap().unwrap();
    assert_eq!(record.used_at, Some(now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_campaign_issues_exactly_its_total_across_three_instances() {
    use std::collections::HashSet;

    use allot_domain::UnixMillis;
    use allot_domain::campaign::{CampaignName, CampaignWindow, TotalCoupons};
    use allot_domain::user::{IdempotencyKey, UserId};
    use allot_storage::{IssueOutcome, IssueRequest, NewCampaign};

    let cluster = PgCluster::start();
    let instances = three_instances(&cluster).await;
    let now = UnixMillis::from_millis(1_795_341_600_000);
    let campaign = instances[0]
        .create_campaign(
            NewCampaign {
                name: CampaignName::parse("rush").unwrap(),
                window: CampaignWindow::new(now, None).unwrap(),
                total: TotalCoupons::parse(1_000).unwrap(),
                per_user_limit: None,
            },
            now,
        )
        .await
        .unwrap();
    let clients = (0..200).map(|i| {
        let store = instances[i % 3].clone();
        let id = campaign.id;
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let request = IssueRequest {
                    campaign_id: id,
                    user_id: None,
                    idempotency_key: None,
                    now,
                };
                match store.issue_coupon(request).await.expect("answers") {
                    IssueOutcome::Issued { code, .. } => mine.push(code.into_string()),
                    IssueOutcome::Exhausted => return mine,
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
    });
    let mut received = Vec::new();
    for c in futures::future::join_all(clients).await {
        received.extend(c.unwrap());
    }
    let distinct: HashSet<&String> = received.iter().collect();
    assert_eq!((received.len(), distinct.len()), (1_000, 1_000));
    let listed = instances[1]
        .campaign_codes(campaign.id, None, 10_000)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1_000);
    assert!(
        listed
            .iter()
            .all(|c| distinct.contains(&c.as_str().to_owned()))
    );
    assert_eq!(
        instances[2]
            .campaign(campaign.id)
            .await
            .unwrap()
            .unwrap()
            .issued,
        1_000
    );

    // One idempotency key from every instance at once: one code.
    let other = instances[0]
        .create_campaign(
            NewCampaign {
                name: CampaignName::parse("keys").unwrap(),
                window: CampaignWindow::new(now, None).unwrap(),
                total: TotalCoupons::parse(10).unwrap(),
                per_user_limit: None,
            },
            now,
        )
        .await
        .unwrap();
    let tries = (0..12).map(|i| {
        let store = instances[i % 3].clone();
        let id = other.id;
        tokio::spawn(async move {
            let request = IssueRequest {
                campaign_id: id,
                user_id: Some(UserId::parse("u").unwrap()),
                idempotency_key: Some(IdempotencyKey::parse("k1").unwrap()),
                now,
            };
            match store.issue_coupon(request).await.expect("answers") {
                IssueOutcome::Issued { code, .. } | IssueOutcome::Replayed { code, .. } => {
                    code.into_string()
                }
                other => panic!("unexpected {other:?}"),
            }
        })
    });
    let codes: HashSet<String> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(codes.len(), 1);
    assert_eq!(
        instances[0]
            .campaign(other.id)
            .await
            .unwrap()
            .unwrap()
            .issued,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coupons_go_to_one_user_each_and_redeem_within_their_uses_across_three_instances() {
    use std::collections::HashSet;

    use allot_domain::UnixMillis;
    use allot_domain::coupon::{CouponType, Discount, DiscountKind, MaxUses, UploadedCode};
    use allot_domain::user::UserId;
    use allot_storage::{Allocation, NewCoupon, RedeemOutcome};

    let cluster = PgCluster::start();
    let instances = three_instances(&cluster).await;
    let now = UnixMillis::from_millis(1_795_341_600_000);
    let new = |code: &str, t: Option<CouponType>, uses: i64| NewCoupon {
        code: UploadedCode::parse(code).unwrap(),
        coupon_type: t,
        discount: Discount::new(DiscountKind::Flat, 100).unwrap(),
        expires_at: now.plus_millis(3_600_000),
        max_uses: MaxUses::parse(uses).unwrap(),
    };
    let mut batch: Vec<NewCoupon> = (0..150)
        .map(|i| new(&format!("std-{i}"), Some(CouponType::Standard), 1))
        .collect();
    batch.push(new("five", None, 5));
    assert_eq!(
        instances[0].upload_coupons(batch, now).await.unwrap(),
        Ok(151)
    );
    let clash = instances[1]
        .upload_coupons(vec![new("fresh", None, 1), new("STD-3", None, 1)], now)
        .await
        .unwrap();
    assert_eq!(clash.unwrap_err().0, vec![1]);

    // 200 users race for 150 STANDARD coupons through three instances.
    let tasks = (0..200).map(|i| {
        let store = instances[i % 3].clone();
        tokio::spawn(async move {
            store
                .allocate_coupon(
                    UserId::parse(&format!("user-{i}")).unwrap(),
                    Some(CouponType::Standard),
                    now,
                )
                .await
                .unwrap()
        })
    });
    let mut codes = HashSet::new();
    let mut none = 0;
    for t in futures::future::join_all(tasks).await {
        match t.unwrap() {
            Allocation::New(c) => assert!(codes.insert(c.code), "a coupon went to two users"),
            Allocation::NoneAvailable => none += 1,
            Allocation::Held(_) => panic!("nobody held one"),
        }
    }
    assert_eq!((codes.len(), none), (150, 50));

    // One user asking from every instance at once gets one coupon.
    let fresh: Vec<NewCoupon> = (0..10)
        .map(|i| new(&format!("free-{i}"), Some(CouponType::Free), 1))
        .collect();
    instances[2]
        .upload_coupons(fresh, now)
        .await
        .unwrap()
        .unwrap();
    let tasks = (0..12).map(|i| {
        let store = instances[i % 3].clone();
        tokio::spawn(async move {
            match store
                .allocate_coupon(
                    UserId::parse("hoarder").unwrap(),
                    Some(CouponType::Free),
                    now,
                )
                .await
                .unwrap()
            {
                Allocation::New(c) | Allocation::Held(c) => c.code,
                Allocation::NoneAvailable => panic!("coupons were left"),
            }
        })
    });
    let got: HashSet<String> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got.len(), 1, "a user holds one unredeemed coupon of a type");

    // 30 redemptions of a 5-use coupon through three instances: exactly 5.
    let tasks = (0..30).map(|i| {
        let store = instances[i % 3].clone();
        tokio::spawn(async move {
            store
                .redeem_coupon(
                    &UploadedCode::parse("five").unwrap(),
                    UserId::parse(&format!("r{i}")).unwrap(),
                    now,
                    None,
                )
                .await
                .unwrap()
        })
    });
    let redeemed = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| matches!(r.as_ref().unwrap(), RedeemOutcome::Redeemed(_)))
        .count();
    assert_eq!(redeemed, 5);

    let db = connect(&cluster.url()).await.unwrap();
    let counters = instances[0].coupon_counters(now).await.unwrap();
    let rows = |sql: &str| {
        let db = &db;
        let sql = sql.to_owned();
        async move {
            db.query_one(sql.as_str(), &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let standard = counters
        .iter()
        .find(|c| c.coupon_type == Some(CouponType::Standard))
        .unwrap();
    assert_eq!(
        standard.allocated,
        rows("SELECT count(*) FROM coupon_allocations WHERE type = 'STANDARD'").await
    );
    assert_eq!(
        standard.created,
        rows("SELECT count(*) FROM coupons WHERE type = 'STANDARD'").await
    );
    let untyped = counters.iter().find(|c| c.coupon_type.is_none()).unwrap();
    assert_eq!(
        untyped.redeemed,
        rows("SELECT count(*) FROM coupon_redemptions WHERE type IS NULL").await
    );
    assert_eq!(untyped.redeemed, 5);

    // Purge once expired: the unused go, the used stay.
    let later = now.plus_millis(7_200_000);
    let purged: i64 = instances[1]
        .purge_coupons(later, "test")
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    // 151 + 10 stored, all expired by now; only "five" was used.
    assert_eq!(purged, 160, "every unused expired coupon");
    assert!(
        instances[0]
            .coupon(&UploadedCode::parse("five").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

/// Issues are served in batches: one batch may hold many requests of one user, repeats of one
/// idempotency key and requests for several campaigns. Every rule holds request by request, as
/// if each were alone, and the table agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_issues_keep_per_user_limits_keys_and_campaigns_apart() {
    use std::collections::HashMap;

    use allot_domain::UnixMillis;
    use allot_domain::campaign::{CampaignName, CampaignWindow, PerUserLimit, TotalCoupons};
    use allot_domain::user::{IdempotencyKey, UserId};
    use allot_storage::{IssueOutcome, IssueRequest, NewCampaign};

    let cluster = PgCluster::start();
    let instances = three_instances(&cluster).await;
    let now = UnixMillis::from_millis(1_795_341_600_000);
    let mut campaigns = Vec::new();
    for (name, total) in [("limited", 500), ("small", 7)] {
        campaigns.push(
            instances[0]
                .create_campaign(
                    NewCampaign {
                        name: CampaignName::parse(name).unwrap(),
                        window: CampaignWindow::new(now, None).unwrap(),
                        total: TotalCoupons::parse(total).unwrap(),
                        per_user_limit: Some(PerUserLimit::parse(3).unwrap()),
                    },
                    now,
                )
                .await
                .unwrap()
                .id,
        );
    }
    // 40 users ask 10 times each for each campaign, all at once; users 0..5 send every request
    // of theirs with one idempotency key per campaign.
    let mut tasks = Vec::new();
    for user in 0..40 {
        for attempt in 0..10 {
            for (c, id) in campaigns.iter().enumerate() {
                let store = instances[(user + attempt + c) % 3].clone();
                let id = *id;
                tasks.push(tokio::spawn(async move {
                    let request = IssueRequest {
                        campaign_id: id,
                        user_id: Some(UserId::parse(&format!("user-{user}")).unwrap()),
                        idempotency_key: (user < 5)
                            .then(|| IdempotencyKey::parse(&format!("key-{user}")).unwrap()),
                        now,
                    };
                    (c, user, store.issue_coupon(request).await.expect("answers"))
                }));
            }
        }
    }
    let mut issued: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    let mut replayed: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    let mut exhausted = [0; 2];
    for t in futures::future::join_all(tasks).await {
        match t.unwrap() {
            (c, u, IssueOutcome::Issued { code, .. }) => {
                issued.entry((c, u)).or_default().push(code.into_string())
            }
            (c, u, IssueOutcome::Replayed { code, .. }) => {
                replayed.entry((c, u)).or_default().push(code.into_string())
            }
            (c, _, IssueOutcome::Exhausted) => exhausted[c] += 1,
            (_, _, IssueOutcome::UserLimitReached) => {}
            (_, _, other) => panic!("unexpected {other:?}"),
        }
    }
    // The large campaign: 3 codes per user without a key (35 users), 1 per keyed user (5).
    for user in 0..40 {
        let mine = issued.get(&(0, user)).map_or(0, Vec::len);
        assert_eq!(mine, if user < 5 { 1 } else { 3 }, "user {user}");
        if user < 5 {
            let first = &issued[&(0, user)][0];
            assert_eq!(replayed[&(0, user)].len(), 9);
            assert!(replayed[&(0, user)].iter().all(|c| c == first));
        }
    }
    assert_eq!(exhausted[0], 0);
    // The small campaign: exactly 7 issued, nobody above 3, everyone else told it is sold out.
    let small: usize = (0..40)
        .map(|u| issued.get(&(1, u)).map_or(0, Vec::len))
        .sum();
    assert_eq!(small, 7);
    assert!((0..40).all(|u| issued.get(&(1, u)).map_or(0, Vec::len) <= 3));
    assert!(exhausted[1] > 0);

    let db = connect(&cluster.url()).await.unwrap();
    for (c, expected) in [(0usize, 35 * 3 + 5), (1, 7)] {
        let id = campaigns[c].get();
        let row = db
            .query_one(
                "SELECT issued, (SELECT count(*) FROM campaign_coupons WHERE campaign_id = $1),
                        (SELECT max(seq) FROM campaign_coupons WHERE campaign_id = $1),
                        (SELECT count(DISTINCT user_id) FROM campaign_coupons WHERE campaign_id = $1)
                 FROM campaigns WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        let (stored, rows, max_seq): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!((stored, rows, max_seq), (expected, expected, expected));
        let over: i64 = db
            .query_one(
                "SELECT count(*) FROM (SELECT user_id FROM campaign_coupons WHERE campaign_id = $1
                 GROUP BY user_id HAVING count(*) > 3) o",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(over, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_batch_of_orders_refuses_replays_and_races_as_orders_one_by_one_would() {
    use allot_domain::UnixMillis;
    use allot_domain::catalog::ProductId;
    use allot_domain::coupon::{Discount, DiscountKind, RedeemRefusal, UploadedCode};
    use allot_domain::inventory::Quantity;
    use allot_domain::order::ShippingAddress;
    use allot_domain::user::{IdempotencyKey, UserId};
    use allot_storage::{Created, NewOrder, OrderRefusal, OrderStore};

    let cluster = PgCluster::start();
    let db = migrated(&cluster).await;
    let store = std::sync::Arc::new(
        allot_storage::postgres::PgStore::open(
            &cluster.url(),
            &allot_storage::crypto::DataKey::parse(allot_testkit::TEST_DATA_KEY).unwrap(),
        )
        .await
        .expect("opens"),
    );
    let p: i64 = db
        .query_one(
            "INSERT INTO products (sku, sku_key, name, description, price_minor, currency, active,
                                   created_at_ms, updated_at_ms)
             VALUES ('A-1', 'a-1', 'A', '', 1000, 'EUR', true, 0, 0) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.batch_execute(
        "INSERT INTO warehouses (code, name, active, created_at_ms, updated_at_ms)
         VALUES ('W1', 'one', true, 0, 0), ('W2', 'two', true, 0, 0);
         INSERT INTO coupon_uploads (count, created_at_ms) VALUES (1, 0);
         INSERT INTO coupons (code, discount_kind, discount_amount, expires_at_ms, max_uses,
                              upload_id, created_at_ms)
         SELECT 'RACE1', 'FLAT', 100, 9000000000000, 1, id, 0 FROM coupon_uploads;",
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO stock_levels (product_id, warehouse_id, on_hand, reserved, reorder_threshold,
                                   updated_at_ms)
         SELECT $1, id, CASE code WHEN 'W1' THEN 5 ELSE 3 END, 0, 1, 0 FROM warehouses",
        &[&p],
    )
    .await
    .unwrap();
    let product = ProductId::parse(p).unwrap();
    let order = |customer: &str, quantity: i64, coupon: bool, key: Option<&str>| NewOrder {
        customer: UserId::parse(customer).unwrap(),
        shipping_address: ShippingAddress::parse("A", "1 Road", None, "Town", "1", "GB").unwrap(),
        lines: vec![(product, Quantity::parse(quantity).unwrap())],
        coupon: coupon.then(|| UploadedCode::parse("RACE1").unwrap()),
        discount_code: None,
        discount_code_value: Discount::new(DiscountKind::Percentage, 10).unwrap(),
        shipping_minor: 0,
        promotion_hold: None,
        idempotency_key: key.map(|k| IdempotencyKey::parse(k).unwrap()),
        now: UnixMillis::from_millis(1_000),
    };
    let first = match store
        .create_order(order("first", 1, false, Some("k-1")))
        .await
        .unwrap()
        .unwrap()
    {
        Created::New(o) => o,
        other => panic!("a new order, got {other:?}"),
    };

    // At once: a replay of k-1, two new orders with one key, an order no warehouse can serve
    // whole, and ten orders racing for the coupon's one use.
    let mut requests = vec![
        order("first", 1, false, Some("k-1")),
        order("second", 1, false, Some("k-2")),
        order("second", 1, false, Some("k-2")),
        order("big", 6, false, None),
    ];
    for i in 0..10 {
        requests.push(order(&format!("racer{i}"), 1, true, None));
    }
    let answers: Vec<_> = futures::future::join_all(requests.into_iter().map(|r| {
        let store = store.clone();
        async move { store.create_order(r).await.unwrap() }
    }))
    .await;
    match &answers[0] {
        Ok(Created::Replayed(o)) => assert_eq!(o, &first),
        other => panic!("k-1 replays, got {other:?}"),
    }
    let (a, b) = match (&answers[1], &answers[2]) {
        (Ok(a), Ok(b)) => (a, b),
        other => panic!("k-2 twice: {other:?}"),
    };
    let (new, replayed) = match (a, b) {
        (Created::New(n), Created::Replayed(r)) | (Created::Replayed(r), Created::New(n)) => (n, r),
        other => panic!("one new and one replay of k-2, got {other:?}"),
    };
    assert_eq!(new, replayed);
    assert!(
        matches!(&answers[3], Err(OrderRefusal::OutOfStock { product: q, .. }) if *q == product),
        "{:?}",
        answers[3]
    );
    let winners: Vec<_> = answers[4..]
        .iter()
        .filter_map(|a| match a {
            Ok(Created::New(o)) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    assert_eq!(winners[0].coupon.as_ref().unwrap().amount_minor, 100);
    assert_eq!(winners[0].total_minor, 900);
    assert_eq!(
        answers[4..]
            .iter()
            .filter(|a| matches!(
                a,
                Err(OrderRefusal::CouponUnusable(RedeemRefusal::Exhausted))
            ))
            .count(),
        9
    );

    // What is stored is what the answers say: 3 orders of 1 unit, one coupon use.
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM orders").await, 3);
    assert_eq!(
        count("SELECT sum(reserved)::bigint FROM stock_levels").await,
        3
    );
    assert_eq!(
        count("SELECT count(*) FROM reservations WHERE status = 'pending'").await,
        3
    );
    assert_eq!(
        count("SELECT count(*) FROM stock_movements WHERE kind = 'reservation'").await,
        3
    );
    assert_eq!(count("SELECT count(*) FROM order_status_history").await, 3);
    assert_eq!(count("SELECT sum(uses)::bigint FROM coupons").await, 1);
    assert_eq!(
        count("SELECT count(*) FROM coupon_redemptions WHERE order_id IS NOT NULL").await,
        1
    );
    for o in [&first, new, winners[0]] {
        assert_eq!(store.order(o.id).await.unwrap().as_ref(), Some(o));
    }

    // W1 has 2 left, W2 3: two more units go to W2, leaving 1, at its threshold: one alert.
    let last = store
        .create_order(order("last", 2, false, None))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(last, Created::New(_)), "{last:?}");
    let alert = db
        .query_one(
            "SELECT a.available, s.low_alert_open FROM stock_alerts a
             JOIN warehouses w ON w.id = a.warehouse_id
             JOIN stock_levels s ON (s.product_id, s.warehouse_id) = (a.product_id, a.warehouse_id)
             WHERE w.code = 'W2' AND a.cleared_at_ms IS NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(alert.get::<_, i64>(0), 1);
    assert!(alert.get::<_, bool>(1));
    assert_eq!(count("SELECT count(*) FROM stock_alerts").await, 1);
}

/// Products stored before the search migration are searchable after it (the backfill): by
/// name, description and text attribute values, with the same weights as new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_stored_before_the_search_migration_are_found_after_it() {
    let cluster = PgCluster::start();
    let client = connect(&cluster.url()).await.expect("connects");
    let (before, search) = allot_storage::migrations::MIGRATIONS.split_at(23);
    assert_eq!(search[0].name, "product_search");
    for m in before {
        client.batch_execute(m.postgres).await.expect(m.name);
    }
    client
        .batch_execute(
            "INSERT INTO products (id, sku, sku_key, name, description, price_minor, currency,
                                   active, created_at_ms, updated_at_ms)
             OVERRIDING SYSTEM VALUE VALUES
               (1, 'A', 'a', 'Travel Laptop', 'Light.', 100, 'EUR', true, 1, 1),
               (2, 'B', 'b', 'Bag', 'Fits a laptop.', 100, 'EUR', true, 1, 1);
             INSERT INTO product_attributes (product_id, key, kind, text_value)
             VALUES (2, 'color', 'text', 'Crimson'), (2, 'note', 'text', 'T-shirt');",
        )
        .await
        .expect("old rows");
    client
        .batch_execute(search[0].postgres)
        .await
        .expect("migrates");
    let found = |q: &'static str| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT id FROM products WHERE search_vector @@ CAST($1::text AS tsquery)
                     ORDER BY ts_rank(search_vector, CAST($1::text AS tsquery)) DESC, id",
                    &[&q],
                )
                .await
                .expect("searches")
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("'laptop'").await, vec![1, 2]);
    assert_eq!(found("'crimson'").await, vec![2]);
    assert_eq!(found("'t' & 'shirt'").await, vec![2]);
    assert_eq!(found("'lig':*").await, vec![1]);
    let attrs: String = client
        .query_one("SELECT search_attributes FROM products WHERE id = 2", &[])
        .await
        .expect("a row")
        .get(0);
    assert_eq!(attrs, "Crimson T-shirt");
}

/// An allocation reads the free coupons' partial index whatever the statistics say. With the
/// statistics taken before any coupon was allocated and the first 15,000 allocated since (in id
/// order, as allocation goes), the planner reads the primary key for `ORDER BY id` (the control
/// below) and filters, which walks every coupon allocated so far: in the PostgreSQL soak of
/// session 12, 24,267 buffers and 26 ms per allocation, each holding the type's counter row
/// for the next. The store's picks (`ORDER BY id + 0`, migration 0029) read the partial index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_reads_the_free_coupons_index_whatever_the_statistics() {
    let cluster = PgCluster::start();
    let client = migrated(&cluster).await;
    client
        .batch_execute(
            "INSERT INTO coupon_uploads (id, count, created_at_ms) OVERRIDING SYSTEM VALUE
             VALUES (1, 20000, 0);
             INSERT INTO coupons (code, type, discount_kind, discount_amount, expires_at_ms,
                                  max_uses, upload_id, created_at_ms)
             SELECT 'C' || n, CASE WHEN n % 10 = 0 THEN NULL ELSE 'STANDARD' END, 'FLAT', 1,
                    4102444800000, 1, 1, 0
             FROM generate_series(1, 20000) AS n;
             ANALYZE coupons;
             UPDATE coupons SET allocated_to = 'u' || id, allocated_at_ms = 1 WHERE id <= 15000;",
        )
        .await
        .expect("coupons stored");
    let plan = |sql: String, t: Option<&'static str>| {
        let client = &client;
        async move {
            client
                .query(&format!("EXPLAIN {sql}"), &[&t, &1_i64])
                .await
                .expect("explained")
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let typed = allot_storage::postgres::ALLOCATION_PICK_TYPED;
    let control = plan(
        typed.replace("ORDER BY id + 0", "ORDER BY id"),
        Some("STANDARD"),
    )
    .await;
    assert!(
        control.contains("coupons_pkey"),
        "the control should show the hazard (the primary key read for ORDER BY id):\n{control}"
    );
    for (pick, t) in [
        (typed, Some("STANDARD")),
        (allot_storage::postgres::ALLOCATION_PICK_UNTYPED, None),
    ] {
        let plan = plan(pick.to_owned(), t).await;
        assert!(
            plan.contains("coupons_free_") && !plan.contains("coupons_pkey"),
            "the {t:?} pick does not read the free coupons' index:\n{plan}"
        );
    }
}

/// An allocation takes the first free coupon from the index in order even when the statistics
/// predate an upload: before autovacuum's first ANALYZE of the coupons (here: none yet, 200,000
/// coupons uploaded), the planner takes the free coupons of a type for a handful, reads all of
/// them through a bitmap and sorts them (the control below; 49 ms and a 6 MB sort on disk per
/// allocation in `scripts/profile.sh` on PostgreSQL). The store runs `ALLOCATION_PICK_PLAN`
/// before its pick, in the same transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_right_after_an_upload_takes_the_first_free_coupon_without_a_sort() {
    let cluster = PgCluster::start();
    let mut client = migrated(&cluster).await;
    client
        .batch_execute(
            "INSERT INTO coupon_uploads (id, count, created_at_ms) OVERRIDING SYSTEM VALUE
             VALUES (1, 200000, 0);
             INSERT INTO coupons (code, type, discount_kind, discount_amount, expires_at_ms,
                                  max_uses, upload_id, created_at_ms)
             SELECT 'C' || n, CASE WHEN n % 2 = 0 THEN 'FREE' ELSE 'STANDARD' END, 'FLAT', 1,
                    4102444800000, 1, 1, 0
             FROM generate_series(1, 200000) AS n;",
        )
        .await
        .expect("coupons stored");
    let mut plan = async |pick: &str, t: Option<&'static str>, settled: bool| {
        let tx = client.transaction().await.expect("begins");
        if settled {
            tx.execute(allot_storage::postgres::ALLOCATION_PICK_PLAN, &[])
                .await
                .expect("set");
        }
        let plan = tx
            .query(&format!("EXPLAIN {pick}"), &[&t, &1_i64])
            .await
            .expect("explained")
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        tx.rollback().await.expect("rolls back");
        plan
    };
    let typed = allot_storage::postgres::ALLOCATION_PICK_TYPED;
    let control = plan(typed, Some("STANDARD"), false).await;
    assert!(
        control.contains("Sort"),
        "the control should show the hazard (every free coupon sorted):\n{control}"
    );
    for (pick, t) in [
        (typed, Some("STANDARD")),
        (allot_storage::postgres::ALLOCATION_PICK_UNTYPED, None),
    ] {
        let plan = plan(pick, t, true).await;
        assert!(
            plan.contains("Index Scan using coupons_free_") && !plan.contains("Sort"),
            "the {t:?} pick sorts:\n{plan}"
        );
    }
}
