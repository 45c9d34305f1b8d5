//! The overview's counts on SQLite: one read connection, four indexed counts.

use allot_domain::UnixMillis;
use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::StorageError;
use crate::overview::{OverviewCounts, OverviewStore, sql};

#[async_trait]
impl OverviewStore for SqliteStore {
    async fn overview_counts(
        &self,
        since: UnixMillis,
        cap: i64,
    ) -> Result<OverviewCounts, StorageError> {
        self.read(move |conn| {
            let count = |statement: &str| -> Result<i64, StorageError> {
                Ok(conn
                    .prepare_cached(statement)?
                    .query_row([], |r| r.get(0))?)
            };
            Ok(OverviewCounts {
                recent_orders: conn
                    .prepare_cached(sql::RECENT_ORDERS)?
                    .query_row(params![since.as_millis(), cap], |r| r.get(0))?,
                open_stock_alerts: count(sql::OPEN_ALERTS)?,
                failing_notifications: count(sql::FAILING_NOTIFICATIONS)?,
                failing_webhooks: count(sql::FAILING_WEBHOOKS)?,
            })
        })
        .await
    }
}
