//! The overview's counts on PostgreSQL: four indexed counts on one pooled connection.

use super::conn::Db;
use allot_domain::UnixMillis;
use async_trait::async_trait;

use super::PgStore;
use crate::StorageError;
use crate::overview::{OverviewCounts, OverviewStore, sql};

#[async_trait]
impl OverviewStore for PgStore {
    async fn overview_counts(
        &self,
        since: UnixMillis,
        cap: i64,
    ) -> Result<OverviewCounts, StorageError> {
        let client = self.client().await?;
        let recent_orders: i64 = client
            .query_one(sql::RECENT_ORDERS, &[&since.as_millis(), &cap])
            .await?
            .get(0);
        let mut counts = [0_i64; 3];
        for (slot, statement) in counts.iter_mut().zip([
            sql::OPEN_ALERTS,
            sql::FAILING_NOTIFICATIONS,
            sql::FAILING_WEBHOOKS,
        ]) {
            *slot = client.query_one(statement, &[]).await?.get(0);
        }
        Ok(OverviewCounts {
            recent_orders,
            open_stock_alerts: counts[0],
            failing_notifications: counts[1],
            failing_webhooks: counts[2],
        })
    }
}
