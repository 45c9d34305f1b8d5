//! What the storage hands back: plain records built from domain types.

use allot_domain::UnixMillis;
use allot_domain::discount::DiscountCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountCodeRecord {
    pub code: DiscountCode,
    pub created_at: UnixMillis,
    pub used_at: Option<UnixMillis>,
}
