//! The one list of schema migrations, each in both dialects, so the backends can never drift
//! apart in versions or names. Each backend's runner applies the missing ones in order, once.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::StorageError;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $file)),
            postgres: include_str!(concat!("../migrations/postgres/", $file)),
        }
    };
}

pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "discount_codes", "0001_discount_codes.sql"),
    migration!(2, "campaigns", "0002_campaigns.sql"),
    migration!(3, "coupons", "0003_coupons.sql"),
    migration!(4, "sales", "0004_sales.sql"),
    migration!(5, "job_runs", "0005_job_runs.sql"),
    migration!(6, "catalog", "0006_catalog.sql"),
    migration!(7, "inventory", "0007_inventory.sql"),
    migration!(8, "idempotency", "0008_idempotency.sql"),
    migration!(9, "orders", "0009_orders.sql"),
    migration!(10, "users", "0010_users.sql"),
    migration!(11, "events", "0011_events.sql"),
    migration!(12, "event_source", "0012_event_source.sql"),
    migration!(13, "personal_data", "0013_personal_data.sql"),
    migration!(14, "webhooks", "0014_webhooks.sql"),
    migration!(15, "notifications", "0015_notifications.sql"),
    migration!(
        16,
        "caller_keys_and_revocation",
        "0016_caller_keys_and_revocation.sql"
    ),
    migration!(17, "accounts", "0017_accounts.sql"),
    migration!(18, "notification_outbox", "0018_notification_outbox.sql"),
    migration!(19, "promotions", "0019_promotions.sql"),
    migration!(20, "order_promotions", "0020_order_promotions.sql"),
    migration!(21, "bound_coupons", "0021_bound_coupons.sql"),
    migration!(22, "sale_baskets", "0022_sale_baskets.sql"),
    migration!(23, "payments", "0023_payments.sql"),
    migration!(24, "product_search", "0024_product_search.sql"),
    migration!(25, "shipments_returns", "0025_shipments_returns.sql"),
    migration!(26, "notification_gateway", "0026_notification_gateway.sql"),
    migration!(27, "search_tiers", "0027_search_tiers.sql"),
    migration!(28, "keyed_writes", "0028_keyed_writes.sql"),
    migration!(29, "coupon_free_order", "0029_coupon_free_order.sql"),
    migration!(
        30,
        "event_log_written_once",
        "0030_event_log_written_once.sql"
    ),
    migration!(31, "coupon_counter_slots", "0031_coupon_counter_slots.sql"),
];

/// The migrations newer than `applied`, or an error if the database is newer than this build.
pub(crate) fn pending(
    applied: i64,
) -> Result<impl Iterator<Item = &'static Migration>, StorageError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if applied > known {
        return Err(StorageError::Corrupt(format!(
            "the database is at migration {applied}, newer than this allot knows ({known}); \
             run the newer allot"
        )));
    }
    Ok(MIGRATIONS.iter().filter(move |m| m.version > applied))
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runners apply every version above the highest one applied, so the list must count
    /// 1, 2, 3... with no gap and no repeat: a migration slipped in below an applied one would
    /// never run there.
    #[test]
    fn versions_count_up_from_one_without_gaps_and_names_are_unique() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(
                m.version,
                i as i64 + 1,
                "migration {} ({})",
                m.version,
                m.name
            );
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty());
        }
        let mut names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MIGRATIONS.len());
    }
}
