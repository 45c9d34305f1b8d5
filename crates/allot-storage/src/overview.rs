//! The shop at a glance (the console's overview): a few counts, each answered from an index
//! in time that does not grow with the store, so a page polled every two seconds costs little
//! with millions of rows.

use allot_domain::UnixMillis;
use async_trait::async_trait;

use crate::StorageError;

/// The counts of [`OverviewStore::overview_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OverviewCounts {
    /// Orders created at or after `since`, at most the `cap` asked for.
    pub recent_orders: i64,
    /// Low-stock alerts not cleared.
    pub open_stock_alerts: i64,
    /// Email notifications whose last attempt failed and that are retried.
    pub failing_notifications: i64,
    /// Active webhook endpoints whose last attempt failed.
    pub failing_webhooks: i64,
}

#[async_trait]
pub trait OverviewStore {
    /// The counts, read together; `recent_orders` counts at most `cap` orders, so a burst
    /// costs a bounded walk of the index.
    async fn overview_counts(
        &self,
        since: UnixMillis,
        cap: i64,
    ) -> Result<OverviewCounts, StorageError>;
}

/// The statements both backends run as they are.
pub(crate) mod sql {
    /// Walks `orders_by_created` from `$1`, at most `$2` entries.
    pub(crate) const RECENT_ORDERS: &str = "SELECT count(*) FROM \
         (SELECT 1 FROM orders WHERE created_at_ms >= $1 LIMIT $2) AS recent";
    /// The partial index `stock_alerts_open_by_id` holds the open alerts only.
    pub(crate) const OPEN_ALERTS: &str =
        "SELECT count(*) FROM stock_alerts WHERE cleared_at_ms IS NULL";
    /// The partial index `notifications_due` holds only emails waiting for a (re)try; its
    /// condition is repeated word for word so that SQLite's planner sees it applies.
    pub(crate) const FAILING_NOTIFICATIONS: &str = "SELECT count(*) FROM notifications \
         WHERE channel = 'email' AND status IN ('queued', 'failed') \
         AND next_attempt_at_ms IS NOT NULL AND status = 'failed'";
    /// Endpoints are configured by hand: a handful of rows.
    pub(crate) const FAILING_WEBHOOKS: &str =
        "SELECT count(*) FROM webhook_endpoints WHERE active AND attempts > 0";

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        RECENT_ORDERS,
        OPEN_ALERTS,
        FAILING_NOTIFICATIONS,
        FAILING_WEBHOOKS,
    ];
}
