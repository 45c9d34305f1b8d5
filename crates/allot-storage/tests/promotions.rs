//! Promotions' storage on both backends: a hold is written only if it fits on fresh usage
//! (else `Stale`, nothing written), the tables refuse overspending even from raw SQL, a
//! rollback gives back once, expiry gives back, codes are used once, and racing holds on
//! several instances never pass a budget.

use std::sync::Arc;

use allot_domain::UnixMillis;
use allot_domain::discount::{CodeLength, GenerateCount};
use allot_domain::event::EventType;
use allot_domain::promotion::{Promotion, PromotionId, PromotionSpec, Reason};
use allot_storage::postgres::PgStore;
use allot_storage::{
    Binding, CodeSource, EventQuery, HeldPromotion, Hold, HoldStatus, NewHold, NewPromotion,
    PromotionRefusal, SqliteOptions, SqliteStore, Store,
};
use allot_testkit::PgCluster;

const T0: i64 = 1_795_341_600_000;
const MINUTE: i64 = 60_000;

fn at(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(T0 + ms)
}

/// A database to run against: its stores (one per instance) and raw SQL on it.
struct Db {
    stores: Vec<Arc<dyn Store>>,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
    _cluster: Option<PgCluster>,
}

enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::TempDir::new().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
        Db {
            stores: vec![store],
            raw: Raw::Sqlite(SqliteStore::database_path(dir.path())),
            _dir: Some(dir),
            _cluster: None,
        }
    }

    async fn postgres(instances: usize) -> Db {
        let cluster = PgCluster::start();
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        for _ in 0..instances {
            stores.push(Arc::new(
                PgStore::open(
                    &cluster.url(),
                    &allot_storage::crypto::DataKey::parse(allot_testkit::TEST_DATA_KEY).unwrap(),
                )
                .await
                .unwrap(),
            ));
        }
        Db {
            stores,
            raw: Raw::Postgres(cluster.url()),
            _dir: None,
            _cluster: Some(cluster),
        }
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.stores[0]
    }

    /// Runs one statement as a person at a SQL prompt would; Err: the database's message.
    async fn raw(&self, sql: &str) -> Result<u64, String> {
        match &self.raw {
            Raw::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(|e| e.to_string())?;
                conn.execute(sql, [])
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }
            Raw::Postgres(url) => {
                let client = allot_storage::postgres::connect(url).await.unwrap();
                client.execute(sql, &[]).await.map_err(|e| {
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
                })
            }
        }
    }

    async fn events(&self, kind: EventType) -> Vec<allot_storage::Event> {
        self.store()
            .events(EventQuery {
                after: 0,
                limit: 1_000,
                kind: Some(kind),
            })
            .await
            .unwrap()
    }
}

fn promotion(limits: serde_json::Value, trigger: &str) -> Promotion {
    let spec: PromotionSpec = serde_json::from_value(serde_json::json!({
        "name": "Spring",
        "trigger": trigger,
        "conditions": {"currency": "EUR"},
        "actions": [{"type": "amount_off", "amount_minor": 500}],
        "limits": limits,
    }))
    .unwrap();
    Promotion::parse(spec).unwrap()
}

async fn create(db: &Db, limits: serde_json::Value, trigger: &str) -> PromotionId {
    db.store()
        .create_promotion(NewPromotion {
            promotion: promotion(limits, trigger),
            active: true,
            now: at(0),
        })
        .await
        .unwrap()
        .id
}

fn hold(
    customer: Option<&str>,
    items: &[(PromotionId, i64, Option<&str>)],
    key: Option<&str>,
    now: UnixMillis,
) -> NewHold {
    let promotions: Vec<HeldPromotion> = items
        .iter()
        .map(|(p, amount, code)| HeldPromotion {
            promotion: *p,
            code: code.map(|c| (c.to_owned(), CodeSource::DiscountCode)),
            amount_minor: *amount,
        })
        .collect();
    NewHold {
        customer: customer.map(str::to_owned),
        currency: "EUR".to_owned(),
        cart_fingerprint: "1x1@1000".to_owned(),
        discount_minor: promotions.iter().map(|p| p.amount_minor).sum(),
        promotions,
        evaluation: "{}".to_owned(),
        shipping_discount_minor: 0,
        idempotency_key: key.map(str::to_owned),
        expires_at: now.plus_millis(15 * MINUTE),
        now,
        redeem_for: None,
    }
}

async fn usage(db: &Db, id: PromotionId, customer: Option<&str>) -> allot_domain::promotion::Usage {
    db.store().promotion_usage(&[id], customer).await.unwrap()[0]
}

async fn a_hold_that_does_not_fit_is_stale_and_writes_nothing(db: Db) {
    let s = db.store();
    let p = create(
        &db,
        serde_json::json!({"budget_minor": 1_000, "redemptions_max": 3,
                           "per_customer_redemptions_max": 2}),
        "automatic",
    )
    .await;
    let first = s
        .create_hold(hold(Some("7"), &[(p, 600, None)], None, at(0)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, HoldStatus::Held);
    let before = usage(&db, p, Some("7")).await;
    assert_eq!((before.held_minor, before.held), (600, 1));
    assert_eq!((before.customer_held_minor, before.customer_held), (600, 1));

    let over_budget = s
        .create_hold(hold(Some("8"), &[(p, 401, None)], Some("k-over"), at(1)))
        .await
        .unwrap();
    assert_eq!(
        over_budget,
        Err(PromotionRefusal::Stale {
            promotion: p,
            reason: Reason::BudgetExhausted
        })
    );
    s.create_hold(hold(Some("7"), &[(p, 100, None)], None, at(2)))
        .await
        .unwrap()
        .unwrap();
    let customer_limit = s
        .create_hold(hold(Some("7"), &[(p, 1, None)], None, at(3)))
        .await
        .unwrap();
    assert_eq!(
        customer_limit,
        Err(PromotionRefusal::Stale {
            promotion: p,
            reason: Reason::CustomerLimitReached
        })
    );
    let guest = s
        .create_hold(hold(None, &[(p, 1, None)], None, at(3)))
        .await
        .unwrap();
    assert_eq!(
        guest,
        Err(PromotionRefusal::Stale {
            promotion: p,
            reason: Reason::CustomerRequired
        })
    );

    // Nothing of the refused holds was written: counters, holds, events.
    let after = usage(&db, p, Some("7")).await;
    assert_eq!((after.held_minor, after.held), (700, 2));
    assert_eq!(usage(&db, p, Some("8")).await.customer_held, 0);
    assert_eq!(db.events(EventType::PromotionHeld).await.len(), 2);
    assert_eq!(s.promotion_holds(p, 0, 10).await.unwrap().len(), 2);
    // A refused key is free: nothing was kept of it.
    let retried = s
        .create_hold(hold(Some("8"), &[(p, 300, None)], Some("k-over"), at(4)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.promotions[0].amount_minor, 300);

    // Switched off: stale too.
    let mut off = NewPromotion {
        promotion: promotion(serde_json::json!({"budget_minor": 1_000}), "automatic"),
        active: false,
        now: at(5),
    };
    s.update_promotion(p, off.clone()).await.unwrap().unwrap();
    assert_eq!(
        s.create_hold(hold(None, &[(p, 1, None)], None, at(6)))
            .await
            .unwrap(),
        Err(PromotionRefusal::Stale {
            promotion: p,
            reason: Reason::Inactive
        })
    );
    // A limit below what is spent is refused, naming it.
    off.promotion = promotion(serde_json::json!({"budget_minor": 999}), "automatic");
    assert_eq!(
        s.update_promotion(p, off).await.unwrap(),
        Err(PromotionRefusal::LimitBelowUsage {
            field: "limits.budget_minor"
        })
    );
}

async fn the_tables_refuse_overspending_even_from_raw_sql(db: Db) {
    let s = db.store();
    let p = create(
        &db,
        serde_json::json!({"budget_minor": 1_000, "redemptions_max": 5,
                           "per_customer_budget_minor": 300}),
        "automatic",
    )
    .await;
    s.create_hold(hold(Some("7"), &[(p, 200, None)], None, at(0)))
        .await
        .unwrap()
        .unwrap();
    let id = p.get();
    for sql in [
        format!("UPDATE promotions SET redeemed_minor = 801 WHERE id = {id}"),
        format!("UPDATE promotions SET held = 6 WHERE id = {id}"),
        format!("UPDATE promotions SET held_minor = held_minor - 201 WHERE id = {id}"),
        format!("UPDATE promotion_customers SET held_minor = 301 WHERE promotion_id = {id}"),
    ] {
        let refused = db.raw(&sql).await.unwrap_err();
        assert!(refused.to_lowercase().contains("check"), "{sql}: {refused}");
    }
    // Within the limits the same columns can be written (the CHECKs bound, nothing more).
    assert_eq!(
        db.raw(&format!(
            "UPDATE promotions SET redeemed_minor = 800 WHERE id = {id}"
        ))
        .await,
        Ok(1)
    );
}

async fn a_rollback_gives_back_once(db: Db) {
    let s = db.store();
    let p = create(
        &db,
        serde_json::json!({"budget_minor": 1_000, "redemptions_max": 1}),
        "code",
    )
    .await;
    let codes = s
        .generate_discount_codes(
            CodeLength::parse(8).unwrap(),
            GenerateCount::parse(2).unwrap(),
            at(0),
            None,
        )
        .await
        .unwrap()
        .codes;
    let code = codes[0].as_str().to_owned();
    let raw: Vec<String> = codes.iter().map(|c| c.as_str().to_lowercase()).collect();
    assert_eq!(
        s.bind_codes(p, Binding::DiscountCodes(raw.clone()))
            .await
            .unwrap(),
        Ok(2)
    );
    assert_eq!(
        s.bind_codes(
            p,
            Binding::DiscountCodes(vec!["NOPE1234".into(), raw[0].clone()])
        )
        .await
        .unwrap(),
        Err(PromotionRefusal::UnknownCodes(vec!["NOPE1234".into()]))
    );
    assert_eq!(
        s.bind_codes(p, Binding::DiscountCodes(vec![raw[1].clone()]))
            .await
            .unwrap(),
        Err(PromotionRefusal::AlreadyBound(vec![
            codes[1].as_str().to_owned()
        ]))
    );
    let resolved = s
        .resolve_codes(&[code.clone(), "ZZZZZZZZ".into()], None, at(0))
        .await
        .unwrap();
    assert_eq!(resolved[0].promotion, Ok(p));
    assert_eq!(resolved[1].promotion, Err(Reason::UnknownCode));

    let h = s
        .create_hold(hold(None, &[(p, 400, Some(&code))], None, at(1)))
        .await
        .unwrap()
        .unwrap();
    // Held: the code is used up, for promotions and for the discount-code API alike.
    let resolved = s
        .resolve_codes(std::slice::from_ref(&code), None, at(1))
        .await
        .unwrap();
    assert_eq!(resolved[0].promotion, Err(Reason::CodeUnusable));
    assert_ne!(
        s.use_discount_code(&codes[0], at(1)).await.unwrap(),
        allot_domain::discount::UseOutcome::Used
    );
    let redeemed = s
        .redeem_hold(h.id, "order-1".into(), at(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(redeemed.status, HoldStatus::Redeemed);
    assert_eq!(redeemed.reference.as_deref(), Some("order-1"));
    let u = usage(&db, p, None).await;
    assert_eq!((u.redeemed_minor, u.redemptions, u.held), (400, 1, 0));

    let back = s.roll_back_hold(h.id, at(3)).await.unwrap().unwrap();
    assert_eq!(back.status, HoldStatus::RolledBack);
    let again = s.roll_back_hold(h.id, at(4)).await.unwrap().unwrap();
    assert_eq!(again.status, HoldStatus::RolledBack);
    assert_eq!(
        again.updated_at, back.updated_at,
        "nothing written the second time"
    );
    let u = usage(&db, p, None).await;
    assert_eq!((u.redeemed_minor, u.redemptions), (0, 0));
    assert_eq!(db.events(EventType::PromotionRolledBack).await.len(), 1);
    // The code is usable again, once.
    let resolved = s
        .resolve_codes(std::slice::from_ref(&code), None, at(5))
        .await
        .unwrap();
    assert_eq!(resolved[0].promotion, Ok(p));
    assert_eq!(
        s.redeem_hold(h.id, "order-2".into(), at(5)).await.unwrap(),
        Err(PromotionRefusal::HoldNotHeld {
            status: HoldStatus::RolledBack
        })
    );

    // A repeated key answers the first hold and takes nothing more.
    let first = s
        .create_hold(hold(None, &[(p, 100, Some(&code))], Some("k1"), at(6)))
        .await
        .unwrap()
        .unwrap();
    let replay = s
        .create_hold(hold(None, &[(p, 100, Some(&code))], Some("k1"), at(7)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replay, first);
    assert_eq!(usage(&db, p, None).await.held, 1);
    // The code is taken: another hold with it is refused, writing nothing.
    let other = create(&db, serde_json::json!({}), "code").await;
    assert_eq!(
        s.create_hold(hold(
            None,
            &[(other, 1, None), (p, 1, Some(&code))],
            None,
            at(8)
        ))
        .await
        .unwrap(),
        Err(PromotionRefusal::Stale {
            promotion: p,
            reason: Reason::RedemptionLimitReached
        })
    );
    assert_eq!(usage(&db, other, None).await.held, 0);
}

async fn expiry_gives_back(db: Db) {
    let s = db.store();
    let p = create(&db, serde_json::json!({"budget_minor": 1_000}), "automatic").await;
    let a = s
        .create_hold(hold(Some("7"), &[(p, 700, None)], None, at(0)))
        .await
        .unwrap()
        .unwrap();
    let b = s
        .create_hold(hold(Some("8"), &[(p, 300, None)], None, at(0)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.expire_holds(at(15 * MINUTE - 1), 100).await.unwrap(), 0);
    // Past its time but not yet swept: it cannot be redeemed.
    assert_eq!(
        s.redeem_hold(a.id, "late".into(), at(15 * MINUTE))
            .await
            .unwrap(),
        Err(PromotionRefusal::HoldExpired)
    );
    assert_eq!(s.expire_holds(at(15 * MINUTE), 1).await.unwrap(), 1);
    assert_eq!(s.expire_holds(at(15 * MINUTE), 100).await.unwrap(), 1);
    assert_eq!(s.expire_holds(at(15 * MINUTE), 100).await.unwrap(), 0);
    for id in [a.id, b.id] {
        assert_eq!(
            s.hold(id).await.unwrap().unwrap().status,
            HoldStatus::Expired
        );
    }
    let u = usage(&db, p, Some("7")).await;
    assert_eq!((u.held_minor, u.held, u.customer_held_minor), (0, 0, 0));
    let expired = db.events(EventType::PromotionHoldsExpired).await;
    assert_eq!(expired.len(), 2, "one summary per run that expired some");
    assert!(
        expired
            .iter()
            .all(|e| e.actor == "system:promotion-hold-expiry")
    );
    assert_eq!(
        s.release_hold(a.id, at(16 * MINUTE)).await.unwrap(),
        Err(PromotionRefusal::HoldNotHeld {
            status: HoldStatus::Expired
        })
    );
    // The whole budget is free again.
    s.create_hold(hold(None, &[(p, 1_000, None)], None, at(16 * MINUTE)))
        .await
        .unwrap()
        .unwrap();
}

/// 60 holds of 100 race for a budget of 1,000 (on every instance at once): exactly 10 win.
async fn racing_holds_never_pass_the_budget(db: Db) {
    let p = create(&db, serde_json::json!({"budget_minor": 1_000}), "automatic").await;
    let tasks = (0..60).map(|i| {
        let s = db.stores[i % db.stores.len()].clone();
        let customer = format!("{}", i % 7);
        tokio::spawn(async move {
            s.create_hold(hold(Some(&customer), &[(p, 100, None)], None, at(i as i64)))
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, 10);
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Ok(_)
            | Err(PromotionRefusal::Stale {
                reason: Reason::BudgetExhausted,
                ..
            })
    )));
    let u = usage(&db, p, None).await;
    assert_eq!((u.held_minor, u.held), (1_000, 10));

    // One key sent to every instance at once: one hold, answered to all, counted once.
    let q = create(&db, serde_json::json!({"redemptions_max": 5}), "automatic").await;
    let tasks = (0..6).map(|i| {
        let s = db.stores[i % db.stores.len()].clone();
        tokio::spawn(async move {
            s.create_hold(hold(Some("1"), &[(q, 100, None)], Some("same"), at(0)))
                .await
                .unwrap()
                .unwrap()
                .id
        })
    });
    let ids: Vec<i64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(usage(&db, q, None).await.held, 1);
}

/// One-call redemptions racing holds for one budget: together never past it; a redemption is
/// spent at once (redeemed, not held), its event says so, it rolls back once, and a repeated
/// key answers the first redemption.
async fn one_call_redemptions_and_holds_share_the_budget_exactly(db: Db) {
    let p = create(&db, serde_json::json!({"budget_minor": 1_000}), "automatic").await;
    let tasks = (0..40).map(|i| {
        let s = db.stores[i % db.stores.len()].clone();
        tokio::spawn(async move {
            let mut new = hold(Some(&format!("{}", i % 5)), &[(p, 100, None)], None, at(1));
            if i % 2 == 0 {
                new.redeem_for = Some(format!("order-{i}"));
            }
            s.create_hold(new).await.unwrap()
        })
    });
    let made: Vec<Hold> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap().ok())
        .collect();
    assert_eq!(made.len(), 10);
    let redeemed: Vec<&Hold> = made
        .iter()
        .filter(|h| h.status == HoldStatus::Redeemed)
        .collect();
    for h in &redeemed {
        assert!(h.reference.as_deref().unwrap().starts_with("order-"));
    }
    let u = usage(&db, p, None).await;
    assert_eq!(u.redeemed_minor + u.held_minor, 1_000);
    assert_eq!(
        (u.redemptions, u.redeemed_minor),
        (redeemed.len() as i64, 100 * redeemed.len() as i64)
    );
    assert_eq!(
        db.events(EventType::PromotionRedeemed).await.len(),
        redeemed.len()
    );
    if let Some(first) = redeemed.first() {
        let s = db.store();
        for _ in 0..3 {
            let back = s.roll_back_hold(first.id, at(2)).await.unwrap().unwrap();
            assert_eq!(back.status, HoldStatus::RolledBack);
        }
        let after = usage(&db, p, None).await;
        assert_eq!(after.redeemed_minor, u.redeemed_minor - 100);
    }

    let q = create(&db, serde_json::json!({"redemptions_max": 3}), "automatic").await;
    let s = db.store();
    let mut keyed = hold(Some("9"), &[(q, 100, None)], Some("once"), at(1));
    keyed.redeem_for = Some("order-x".into());
    let first = s.create_hold(keyed.clone()).await.unwrap().unwrap();
    let again = s.create_hold(keyed).await.unwrap().unwrap();
    assert_eq!((first.id, first.status), (again.id, HoldStatus::Redeemed));
    assert_eq!(usage(&db, q, None).await.redemptions, 1);
}

/// Coupons and campaign codes reach their promotion only for whom they are usable, each use
/// taken once; listings and the generation follow every write.
async fn codes_reach_their_promotion_once_and_only_for_their_customer(db: Db) {
    use allot_domain::campaign::{CampaignName, CampaignWindow, TotalCoupons};
    use allot_domain::coupon::{Discount, DiscountKind, MaxUses, UploadedCode};
    use allot_domain::user::UserId;
    use allot_storage::{IssueOutcome, IssueRequest, NewCampaign, NewCoupon, PromotionQuery};
    let s = db.store();
    let g0 = s.promotions_generation().await.unwrap();
    let p = create(&db, serde_json::json!({}), "code").await;
    let auto = create(&db, serde_json::json!({}), "automatic").await;
    let coupon = |code: &str, max_uses: i64| NewCoupon {
        code: UploadedCode::parse(code).unwrap(),
        coupon_type: None,
        discount: Discount::new(DiscountKind::parse("FLAT").unwrap(), 100).unwrap(),
        expires_at: at(10 * MINUTE),
        max_uses: MaxUses::parse(max_uses).unwrap(),
    };
    s.upload_coupons(vec![coupon("SPRING-A", 2), coupon("SPRING-B", 1)], at(0))
        .await
        .unwrap()
        .unwrap();
    s.allocate_coupon(UserId::parse("7").unwrap(), None, at(0))
        .await
        .unwrap();
    assert_eq!(
        s.bind_codes(
            p,
            Binding::Coupons(vec!["spring-a".into(), "Spring-B".into()])
        )
        .await
        .unwrap(),
        Ok(2)
    );
    let campaign = s
        .create_campaign(
            NewCampaign {
                name: CampaignName::parse("Launch").unwrap(),
                window: CampaignWindow::new(at(0), None).unwrap(),
                total: TotalCoupons::parse(10).unwrap(),
                per_user_limit: None,
            },
            at(0),
        )
        .await
        .unwrap();
    let campaign_id = campaign.id.get();
    assert_eq!(
        s.bind_codes(p, Binding::Campaign(campaign_id))
            .await
            .unwrap(),
        Ok(1)
    );
    assert_eq!(
        s.bind_codes(auto, Binding::Campaign(campaign_id))
            .await
            .unwrap(),
        Err(PromotionRefusal::AlreadyBound(vec![
            campaign_id.to_string()
        ]))
    );
    assert_eq!(
        s.bind_codes(p, Binding::Campaign(campaign_id + 100))
            .await
            .unwrap(),
        Err(PromotionRefusal::UnknownCampaign)
    );
    // Codes the campaign issues after the binding reach the promotion.
    let issue = |user: Option<&str>| IssueRequest {
        campaign_id: campaign.id,
        user_id: user.map(|u| UserId::parse(u).unwrap()),
        idempotency_key: None,
        now: at(1),
    };
    let code_of = |outcome: IssueOutcome| match outcome {
        IssueOutcome::Issued { code, .. } => code.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    let mine = code_of(s.issue_coupon(issue(Some("7"))).await.unwrap());
    let anyone = code_of(s.issue_coupon(issue(None)).await.unwrap());

    let reach = |customer: Option<&'static str>, now: UnixMillis| {
        let s = s.clone();
        let codes = vec![
            "SPRING-A".to_owned(),
            "SPRING-B".to_owned(),
            mine.clone(),
            anyone.clone(),
        ];
        async move {
            s.resolve_codes(&codes, customer, now)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.promotion)
                .collect::<Vec<_>>()
        }
    };
    let unusable = Err(Reason::CodeUnusable);
    assert_eq!(
        reach(Some("7"), at(2)).await,
        vec![Ok(p), Ok(p), Ok(p), Ok(p)]
    );
    assert_eq!(
        reach(Some("8"), at(2)).await,
        vec![unusable, Ok(p), unusable, Ok(p)]
    );
    assert_eq!(
        reach(None, at(10 * MINUTE)).await,
        vec![unusable, unusable, unusable, Ok(p)],
        "coupons expired, another's codes"
    );

    // Each use is taken once: a coupon of 2 uses twice, a campaign code once.
    let with = |code: &str, key: &str| {
        let mut h = hold(Some("7"), &[(p, 10, Some(code))], Some(key), at(3));
        h.promotions[0].code = Some((code.to_owned(), CodeSource::Coupon));
        h
    };
    for key in ["a1", "a2"] {
        let h = s.create_hold(with("SPRING-A", key)).await.unwrap().unwrap();
        assert_eq!(
            h.promotions[0].code,
            Some(("SPRING-A".to_owned(), CodeSource::Coupon))
        );
    }
    assert_eq!(
        s.create_hold(with("SPRING-A", "a3")).await.unwrap(),
        Err(PromotionRefusal::CodeTaken {
            code: "SPRING-A".into()
        })
    );
    let h = s.create_hold(with(&anyone, "c1")).await.unwrap().unwrap();
    assert_eq!(
        h.promotions[0].code,
        Some((anyone.clone(), CodeSource::Campaign)),
        "the source is where the code comes from, whatever the caller said"
    );
    assert_eq!(
        s.create_hold(with(&anyone, "c2")).await.unwrap(),
        Err(PromotionRefusal::CodeTaken {
            code: anyone.clone()
        })
    );
    s.release_hold(h.id, at(4)).await.unwrap().unwrap();
    assert_eq!(
        reach(Some("8"), at(4)).await[3],
        Ok(p),
        "released: usable again"
    );

    // Listings and the generation.
    assert_eq!(s.promotions_generation().await.unwrap(), g0 + 4);
    let automatic: Vec<PromotionId> = s
        .active_automatic_promotions()
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(automatic, vec![auto]);
    let codes_only = s
        .promotions(PromotionQuery {
            trigger: Some(allot_domain::promotion::Trigger::Code),
            limit: 10,
            ..PromotionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(codes_only.len(), 1);
    assert_eq!(codes_only[0].totals.held, 2);
    let none = PromotionId::parse(p.get() + 1_000).unwrap();
    let several = s
        .promotion_usage(&[auto, p, none, p], Some("7"))
        .await
        .unwrap();
    let held: Vec<(i64, i64)> = several.iter().map(|u| (u.held, u.customer_held)).collect();
    assert_eq!(
        held,
        vec![(0, 0), (2, 2), (0, 0), (2, 2)],
        "in the order asked"
    );
    let holds = s.promotion_holds(p, 0, 2).await.unwrap();
    assert_eq!(holds.len(), 2);
    assert!(holds[0].id > holds[1].id, "newest first");
    let older = s.promotion_holds(p, holds[1].id, 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert!(older[0].id < holds[1].id);
}

/// Expiry runs and rollbacks racing on every instance give back each hold exactly once.
async fn racing_expiries_and_rollbacks_give_back_once(db: Db) {
    let s = db.store();
    let p = create(
        &db,
        serde_json::json!({"budget_minor": 10_000}),
        "automatic",
    )
    .await;
    for i in 0..30 {
        s.create_hold(hold(
            Some(&format!("{}", i % 4)),
            &[(p, 100, None)],
            None,
            at(0),
        ))
        .await
        .unwrap()
        .unwrap();
    }
    let redeemed = s
        .create_hold(hold(Some("9"), &[(p, 500, None)], None, at(0)))
        .await
        .unwrap()
        .unwrap();
    s.redeem_hold(redeemed.id, "order-9".into(), at(1))
        .await
        .unwrap()
        .unwrap();
    let runs = (0..6).map(|i| {
        let s = db.stores[i % db.stores.len()].clone();
        tokio::spawn(async move {
            let mut expired = 0;
            loop {
                let n = s.expire_holds(at(15 * MINUTE), 7).await.unwrap();
                if n == 0 {
                    return expired;
                }
                expired += n;
            }
        })
    });
    let rollbacks = (0..6).map(|i| {
        let s = db.stores[i % db.stores.len()].clone();
        let id = redeemed.id;
        tokio::spawn(async move { s.roll_back_hold(id, at(2)).await.unwrap().unwrap() })
    });
    let (expired, backs) = tokio::join!(
        futures::future::join_all(runs),
        futures::future::join_all(rollbacks)
    );
    let expired: u64 = expired.into_iter().map(|r| r.unwrap()).sum();
    assert_eq!(expired, 30);
    assert!(
        backs
            .into_iter()
            .all(|b| b.unwrap().status == HoldStatus::RolledBack)
    );
    let u = usage(&db, p, Some("9")).await;
    assert_eq!(
        (u.held_minor, u.held, u.redeemed_minor, u.redemptions),
        (0, 0, 0, 0)
    );
    assert_eq!(db.events(EventType::PromotionRolledBack).await.len(), 1);
    let listed: usize = db
        .events(EventType::PromotionHoldsExpired)
        .await
        .iter()
        .map(|e| {
            let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            payload["hold_ids"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(listed, 30, "each expired hold named once");
}

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Db::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Db::postgres(3).await).await;
                }
            )+
        }
    };
}

on_both!(
    a_hold_that_does_not_fit_is_stale_and_writes_nothing,
    the_tables_refuse_overspending_even_from_raw_sql,
    a_rollback_gives_back_once,
    expiry_gives_back,
    racing_holds_never_pass_the_budget,
    one_call_redemptions_and_holds_share_the_budget_exactly,
    codes_reach_their_promotion_once_and_only_for_their_customer,
    racing_expiries_and_rollbacks_give_back_once,
);

/// A hold whose transaction PostgreSQL ends as a deadlock's victim is run again and made,
/// not failed: another transaction locks the hold's second promotion, then its first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_hold_that_loses_a_deadlock_is_made_on_its_next_attempt() {
    let db = Db::postgres(1).await;
    let first = create(&db, serde_json::json!({}), "automatic").await;
    let second = create(&db, serde_json::json!({}), "automatic").await;
    let Raw::Postgres(url) = &db.raw else {
        unreachable!()
    };
    let mut other = allot_storage::postgres::connect(url).await.unwrap();
    let tx = other.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM promotions WHERE id = $1 FOR UPDATE",
        &[&second.get()],
    )
    .await
    .unwrap();
    let s = db.store().clone();
    let made = tokio::spawn(async move {
        s.create_hold(hold(
            None,
            &[(first, 100, None), (second, 100, None)],
            None,
            at(0),
        ))
        .await
    });
    // The hold now holds `first` and waits for `second`; taking `first` closes the cycle.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.execute(
        "SELECT 1 FROM promotions WHERE id = $1 FOR UPDATE",
        &[&first.get()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let hold = made.await.unwrap().unwrap().unwrap();
    assert_eq!(hold.promotions.len(), 2);
    assert_eq!(usage(&db, first, None).await.held, 1);
    assert_eq!(usage(&db, second, None).await.held, 1);
}
