//! Flash sales' part of the storage interface: the trait, its records, and the rules that
//! decide a checkout and a purchase (an item is sold once, a user never passes the limit, a
//! code decides once), which both backends call with the facts they read (SQLite in its
//! single writer, PostgreSQL under row locks), keeping only I/O.

use allot_domain::UnixMillis;
use allot_domain::event::{ACTOR_SALE_OPENER, EventType, NewEvent};
use allot_domain::sale::{CheckoutCode, ItemId, SaleHour};
use allot_domain::user::UserId;
use async_trait::async_trait;

use crate::StorageError;
use crate::row::Columns;
use crate::sale_basket::{BasketCheckoutOutcome, BasketCheckoutRequest, BasketPurchase};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub id: i64,
    pub starts_at: UnixMillis,
    pub ends_at: UnixMillis,
    pub items_total: i64,
    pub sold: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleItem {
    pub id: i64,
    pub sale_id: i64,
    pub name: String,
    pub image_url: String,
    pub sold_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub sale: Sale,
    pub item: ItemId,
    pub user: UserId,
    pub user_limit: u32,
    pub now: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Code { code: CheckoutCode, item: SaleItem },
    UnknownItem,
    NotInCurrentSale,
    ItemSold,
    UserLimitReached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseOutcome {
    Sold { item: SaleItem, user_id: String },
    ItemSold,
    UserLimitReached,
    SaleOver,
    UnknownCode,
}

/// A purchase's outcome and whether an earlier purchase of the same code decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub outcome: PurchaseOutcome,
    pub replayed: bool,
}

/// What opening a sale needs.
#[derive(Debug, Clone, Copy)]
pub struct NewSale {
    pub hour: SaleHour,
    pub items: u32,
}

#[async_trait]
pub trait SaleStore {
    /// Opens the sale of an hour with its generated items, once: if the hour's sale exists
    /// (opened earlier, or by another instance) it is returned unchanged.
    async fn open_sale(&self, sale: NewSale, now: UnixMillis) -> Result<Sale, StorageError>;

    async fn sale_starting_at(&self, start: UnixMillis) -> Result<Option<Sale>, StorageError>;

    async fn sale(&self, id: i64) -> Result<Option<Sale>, StorageError>;

    /// Sales newest first, those with `id < before_id` (all when `None`), at most `limit`: a
    /// keyset page on the primary key.
    async fn sales(&self, before_id: Option<i64>, limit: u32) -> Result<Vec<Sale>, StorageError>;

    /// Decides a checkout against the current sale and records the attempt, whatever its
    /// outcome.
    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutOutcome, StorageError>;

    /// Decides the purchase of a checked-out item once per code; later calls with the code
    /// answer the first outcome. A code of another sale than `sale_id` is unknown.
    async fn purchase(
        &self,
        code: CheckoutCode,
        sale_id: i64,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<Purchase, StorageError>;

    /// Puts an item on the user's open checkout code of the current sale (opening one if
    /// needed), by the design checkout's rules, and records the attempt, whatever its outcome.
    async fn basket_checkout(
        &self,
        request: BasketCheckoutRequest,
    ) -> Result<BasketCheckoutOutcome, StorageError>;

    /// Buys every still unsold item of an open code and closes it, once; later calls with the
    /// code answer the first outcome.
    async fn basket_purchase(
        &self,
        code: CheckoutCode,
        user_limit: u32,
        now: UnixMillis,
    ) -> Result<BasketPurchase, StorageError>;

    async fn sale_items(
        &self,
        sale_id: i64,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<SaleItem>, StorageError>;

    async fn sale_purchases(
        &self,
        sale_id: i64,
        user: UserId,
    ) -> Result<Vec<SaleItem>, StorageError>;
}

/// The columns [`Sale`] and [`SaleItem`] are read from, in their order (macros, so that the
/// statements below can be constants).
macro_rules! sale_columns {
    () => {
        "id, starts_at_ms, ends_at_ms, items_total, sold"
    };
}

macro_rules! item_columns {
    () => {
        "id, sale_id, name, image_url, sold_to"
    };
}

pub(crate) use item_columns;

/// The statements both backends run as they are. Parameters are numbered in the order they
/// first appear, since that is how SQLite numbers `$N` (`sqlite::tests` holds each to it).
pub(crate) mod sql {
    /// The sale of an hour, once: the id back only for the opening that inserted it (the start
    /// is unique), which then adds the items.
    pub(crate) const OPEN: &str = "INSERT INTO sales \
         (starts_at_ms, ends_at_ms, items_total, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (starts_at_ms) DO NOTHING RETURNING id";
    pub(crate) const SALE_BY_START: &str = concat!(
        "SELECT ",
        sale_columns!(),
        " FROM sales WHERE starts_at_ms = $1"
    );
    pub(crate) const SALE_BY_ID: &str =
        concat!("SELECT ", sale_columns!(), " FROM sales WHERE id = $1");
    /// Newest first, below `$1` (`campaign::first_page` for the first), by the primary key.
    pub(crate) const SALES: &str = concat!(
        "SELECT ",
        sale_columns!(),
        " FROM sales WHERE id < $1 ORDER BY id DESC LIMIT $2"
    );
    pub(crate) const ITEM_BY_ID: &str =
        concat!("SELECT ", item_columns!(), " FROM sale_items WHERE id = $1");
    pub(crate) const ITEMS: &str = concat!(
        "SELECT ",
        item_columns!(),
        " FROM sale_items WHERE sale_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    );
    pub(crate) const PURCHASES: &str = concat!(
        "SELECT ",
        item_columns!(),
        " FROM sale_items WHERE sale_id = $1 AND sold_to = $2 ORDER BY sold_at_ms, id"
    );
    pub(crate) const BOUGHT: &str =
        "SELECT bought FROM sale_user_counts WHERE sale_id = $1 AND user_id = $2";
    /// The code this user holds open for this item: checking out again hands the same one.
    pub(crate) const OPEN_CODE: &str = "SELECT code FROM sale_checkouts \
         WHERE sale_id = $1 AND user_id = $2 AND item_id = $3 AND outcome IS NULL LIMIT 1";
    /// A new code; one that collides inserts nothing and is drawn again.
    pub(crate) const NEW_CODE: &str = "INSERT INTO sale_checkouts \
         (code, sale_id, item_id, user_id, created_at_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (code) DO NOTHING";
    pub(crate) const RECORD_ATTEMPT: &str = "INSERT INTO sale_checkout_attempts \
         (sale_id, item_id, user_id, at_ms, outcome, code) VALUES ($1, $2, $3, $4, $5, $6)";
    pub(crate) const SELL_ITEM: &str = "UPDATE sale_items \
         SET sold_to = $1, sold_at_ms = $2, sold_by_code = $3 WHERE id = $4 AND sold_to IS NULL";
    pub(crate) const COUNT_SOLD: &str = "UPDATE sales SET sold = sold + 1 WHERE id = $1";
    pub(crate) const DECIDE_CODE: &str =
        "UPDATE sale_checkouts SET outcome = $1, decided_at_ms = $2 WHERE code = $3";

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        OPEN,
        SALE_BY_START,
        SALE_BY_ID,
        SALES,
        ITEM_BY_ID,
        ITEMS,
        PURCHASES,
        BOUGHT,
        OPEN_CODE,
        NEW_CODE,
        RECORD_ATTEMPT,
        SELL_ITEM,
        COUNT_SOLD,
        DECIDE_CODE,
    ];
}

/// Checkout codes drawn at most for one checkout: a collision of two is already rare, so the
/// bound only keeps a broken generator from looping forever.
pub(crate) const CHECKOUT_DRAWS_MAX: usize = 16;

/// A sale from a row of its columns ([`sql::SALE_BY_ID`]).
pub(crate) fn sale_of(r: &impl Columns) -> Result<Sale, StorageError> {
    Ok(Sale {
        id: r.int(0)?,
        starts_at: UnixMillis::from_millis(r.int(1)?),
        ends_at: UnixMillis::from_millis(r.int(2)?),
        items_total: r.int(3)?,
        sold: r.int(4)?,
    })
}

/// An item from a row of its columns ([`sql::ITEM_BY_ID`]).
pub(crate) fn item_of(r: &impl Columns) -> Result<SaleItem, StorageError> {
    Ok(SaleItem {
        id: r.int(0)?,
        sale_id: r.int(1)?,
        name: r.text(2)?,
        image_url: r.text(3)?,
        sold_to: r.opt_text(4)?,
    })
}

/// Whether a user who bought `bought` items of the sale may buy one more.
fn below_limit(bought: i64, limit: u32) -> bool {
    bought < i64::from(limit)
}

/// Decides a checkout by its item (read by id): the item a code may be handed for, or the
/// refusal. The user's limit is decided after, by [`checkout_within_limit`], so that the count
/// is read only for an item that may be sold.
pub(crate) fn checkout_item(
    item: Option<SaleItem>,
    sale_id: i64,
) -> Result<SaleItem, CheckoutOutcome> {
    match item {
        None => Err(CheckoutOutcome::UnknownItem),
        Some(it) if it.sale_id != sale_id => Err(CheckoutOutcome::NotInCurrentSale),
        Some(it) if it.sold_to.is_some() => Err(CheckoutOutcome::ItemSold),
        Some(it) => Ok(it),
    }
}

/// The refusal of a checkout by a user who bought `bought` items of the sale, if any.
pub(crate) fn checkout_within_limit(bought: i64, limit: u32) -> Result<(), CheckoutOutcome> {
    if below_limit(bought, limit) {
        Ok(())
    } else {
        Err(CheckoutOutcome::UserLimitReached)
    }
}

/// How an attempt is recorded: its outcome's label and the code handed out, if any.
pub(crate) fn attempt_label(outcome: &CheckoutOutcome) -> (&'static str, Option<&str>) {
    match outcome {
        CheckoutOutcome::Code { code, .. } => ("ok", Some(code.as_str())),
        CheckoutOutcome::UnknownItem => ("unknown_item", None),
        CheckoutOutcome::NotInCurrentSale => ("not_in_current_sale", None),
        CheckoutOutcome::ItemSold => ("item_sold", None),
        CheckoutOutcome::UserLimitReached => ("user_limit_reached", None),
    }
}

/// Decides a purchase not decided before: the sale must be on, the item unsold and the user
/// below the limit, checked in that order. `Ok` means sell.
pub(crate) fn decide_purchase(
    now: UnixMillis,
    sale: &Sale,
    item: &SaleItem,
    bought: i64,
    limit: u32,
) -> Result<(), PurchaseOutcome> {
    if now >= sale.ends_at {
        Err(PurchaseOutcome::SaleOver)
    } else if item.sold_to.is_some() {
        Err(PurchaseOutcome::ItemSold)
    } else if !below_limit(bought, limit) {
        Err(PurchaseOutcome::UserLimitReached)
    } else {
        Ok(())
    }
}

/// The label a decided purchase is stored with (`None` for an unknown code, never stored).
pub(crate) fn purchase_label(outcome: &PurchaseOutcome) -> Option<&'static str> {
    match outcome {
        PurchaseOutcome::Sold { .. } => Some("sold"),
        PurchaseOutcome::ItemSold => Some("item_sold"),
        PurchaseOutcome::UserLimitReached => Some("user_limit_reached"),
        PurchaseOutcome::SaleOver => Some("sale_over"),
        PurchaseOutcome::UnknownCode => None,
    }
}

/// The outcome a purchase decided earlier, from its stored label.
pub(crate) fn replayed(label: &str, item: SaleItem, user_id: String) -> Purchase {
    let outcome = match label {
        "sold" => PurchaseOutcome::Sold { item, user_id },
        "item_sold" => PurchaseOutcome::ItemSold,
        "user_limit_reached" => PurchaseOutcome::UserLimitReached,
        _ => PurchaseOutcome::SaleOver,
    };
    Purchase {
        outcome,
        replayed: true,
    }
}

pub(crate) fn opened_event(sale_id: i64, new: NewSale, now: UnixMillis) -> NewEvent {
    let payload = serde_json::json!({
        "sale_id": sale_id,
        "starts_at_ms": new.hour.starts_at().as_millis(),
        "ends_at_ms": new.hour.ends_at().as_millis(),
        "items": new.items,
    });
    NewEvent::by(
        ACTOR_SALE_OPENER,
        EventType::SaleOpened,
        now,
        payload.to_string(),
    )
}

/// `SaleCheckout` (a code handed out) or `SalePurchased` (the item sold by it).
pub(crate) fn code_event(
    kind: EventType,
    sale_id: i64,
    item_id: i64,
    user: &str,
    code: &CheckoutCode,
    now: UnixMillis,
) -> NewEvent {
    let payload = serde_json::json!({
        "sale_id": sale_id,
        "item_id": item_id,
        "user_id": user,
        "code": code.as_str(),
    });
    NewEvent::api(kind, now, payload.to_string())
}

pub(crate) fn parse_checkout_code(raw: &str) -> Result<CheckoutCode, StorageError> {
    CheckoutCode::parse(raw)
        .map_err(|e| StorageError::Corrupt(format!("stored checkout code: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sale_id: i64, sold_to: Option<&str>) -> SaleItem {
        SaleItem {
            id: 1,
            sale_id,
            name: "n".to_owned(),
            image_url: "i".to_owned(),
            sold_to: sold_to.map(str::to_owned),
        }
    }

    #[test]
    fn a_checkout_needs_an_unsold_item_of_the_sale_and_room_under_the_limit() {
        assert_eq!(checkout_item(None, 1), Err(CheckoutOutcome::UnknownItem));
        assert_eq!(
            checkout_item(Some(item(2, None)), 1),
            Err(CheckoutOutcome::NotInCurrentSale)
        );
        assert_eq!(
            checkout_item(Some(item(1, Some("u"))), 1),
            Err(CheckoutOutcome::ItemSold)
        );
        assert_eq!(checkout_item(Some(item(1, None)), 1), Ok(item(1, None)));
        assert_eq!(checkout_within_limit(1, 2), Ok(()));
        assert_eq!(
            checkout_within_limit(2, 2),
            Err(CheckoutOutcome::UserLimitReached)
        );
    }

    #[test]
    fn a_purchase_checks_the_sale_then_the_item_then_the_limit() {
        let sale = Sale {
            id: 1,
            starts_at: UnixMillis::from_millis(0),
            ends_at: UnixMillis::from_millis(100),
            items_total: 10,
            sold: 0,
        };
        let at = UnixMillis::from_millis;
        assert_eq!(decide_purchase(at(50), &sale, &item(1, None), 0, 1), Ok(()));
        assert_eq!(
            decide_purchase(at(100), &sale, &item(1, Some("u")), 5, 1),
            Err(PurchaseOutcome::SaleOver)
        );
        assert_eq!(
            decide_purchase(at(50), &sale, &item(1, Some("u")), 5, 1),
            Err(PurchaseOutcome::ItemSold)
        );
        assert_eq!(
            decide_purchase(at(50), &sale, &item(1, None), 1, 1),
            Err(PurchaseOutcome::UserLimitReached)
        );
    }

    #[test]
    fn a_stored_label_replays_its_outcome() {
        for outcome in [
            PurchaseOutcome::Sold {
                item: item(1, Some("u")),
                user_id: "u".to_owned(),
            },
            PurchaseOutcome::ItemSold,
            PurchaseOutcome::UserLimitReached,
            PurchaseOutcome::SaleOver,
        ] {
            let label = purchase_label(&outcome).unwrap();
            let again = replayed(label, item(1, Some("u")), "u".to_owned());
            assert_eq!(again.outcome, outcome);
            assert!(again.replayed);
        }
    }
}
