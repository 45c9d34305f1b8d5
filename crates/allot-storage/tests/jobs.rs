//! Jobs that must run once per interval across instances: exactly one claim wins each time.

use std::sync::Arc;

use allot_domain::UnixMillis;
use allot_storage::postgres::PgStore;
use allot_storage::{SqliteOptions, SqliteStore, Store};
use allot_testkit::PgCluster;

async fn claims_go_to_one_instance_per_interval(stores: Vec<Arc<dyn Store>>) {
    let t0 = UnixMillis::from_millis(1_795_341_600_000);
    let spacing = 60_000;
    let at = |ms: i64| t0.plus_millis(ms);
    let race = |now: UnixMillis| {
        let stores = stores.clone();
        async move {
            let claims = stores.iter().map(|s| {
                let s = s.clone();
                tokio::spawn(
                    async move { s.claim_job_run("coupon_purge", now, spacing).await.unwrap() },
                )
            });
            futures::future::join_all(claims)
                .await
                .into_iter()
                .filter(|c| *c.as_ref().unwrap())
                .count()
        }
    };
    assert_eq!(race(at(0)).await, 1, "one instance runs the job");
    assert_eq!(
        race(at(spacing - 1)).await,
        0,
        "nobody runs it again within the interval"
    );
    assert_eq!(
        race(at(spacing)).await,
        1,
        "one instance runs it at the next interval"
    );
    // Another job is independent.
    assert!(
        stores[0]
            .claim_job_run("other_job", at(spacing), spacing)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_claims_once_per_interval() {
    let dir = tempfile::TempDir::new().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
    claims_go_to_one_instance_per_interval(vec![store.clone(), store.clone(), store]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_once_per_interval_across_three_instances() {
    let cluster = PgCluster::start();
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(
            PgStore::open(
                &cluster.url(),
                &allot_storage::crypto::DataKey::parse(allot_testkit::TEST_DATA_KEY).unwrap(),
            )
            .await
            .unwrap(),
        ));
    }
    claims_go_to_one_instance_per_interval(stores).await;
}
