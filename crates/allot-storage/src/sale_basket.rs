//! The flash sale's design checkout (seed 002): one open checkout code per user and sale
//! collects items, which are not reserved; the code's purchase buys every item on it that is
//! still unsold, each atomically, and is decided once. Here are the records and the rules that
//! decide both (an item is sold once, a user's purchased and checked-out items never pass the
//! limit, a code decides once), which both backends call with the facts they read; each
//! backend keeps only I/O.

use allot_domain::UnixMillis;
use allot_domain::event::{EventType, NewEvent};
use allot_domain::sale::{CheckoutCode, ItemId};
use allot_domain::user::UserId;

use crate::StorageError;
use crate::row::Columns;
use crate::sale::{Sale, SaleItem, item_of};

#[derive(Debug, Clone)]
pub struct BasketCheckoutRequest {
    pub sale: Sale,
    pub item: ItemId,
    pub user: UserId,
    pub user_limit: u32,
    pub now: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasketCheckoutOutcome {
    /// The item is on the user's open code, which now holds `items_count` items.
    Added {
        code: CheckoutCode,
        items_count: u32,
        item: SaleItem,
    },
    UnknownItem,
    NotInCurrentSale,
    ItemSold,
    /// The item is on the user's open code already.
    AlreadyOnCode,
    /// Bought and checked-out items together are at the limit.
    UserLimitReached,
}

/// What a purchase decided for one item of its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    Sold,
    /// Sold meanwhile, to someone else or by another code.
    ItemSold,
    UserLimitReached,
    SaleOver,
}

impl LineOutcome {
    pub fn label(self) -> &'static str {
        match self {
            LineOutcome::Sold => "sold",
            LineOutcome::ItemSold => "item_sold",
            LineOutcome::UserLimitReached => "user_limit_reached",
            LineOutcome::SaleOver => "sale_over",
        }
    }

    pub(crate) fn from_label(label: &str) -> Result<Self, StorageError> {
        match label {
            "sold" => Ok(LineOutcome::Sold),
            "item_sold" => Ok(LineOutcome::ItemSold),
            "user_limit_reached" => Ok(LineOutcome::UserLimitReached),
            "sale_over" => Ok(LineOutcome::SaleOver),
            other => Err(StorageError::Corrupt(format!(
                "stored basket item outcome {other:?}"
            ))),
        }
    }
}

/// An item of a decided code, in item id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketLine {
    pub item: SaleItem,
    pub outcome: LineOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BasketPurchaseOutcome {
    /// The code's items, each with what its purchase decided.
    Decided {
        sale_id: i64,
        user_id: String,
        lines: Vec<BasketLine>,
    },
    UnknownCode,
}

/// A purchase's outcome and whether an earlier purchase of the same code decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketPurchase {
    pub outcome: BasketPurchaseOutcome,
    pub replayed: bool,
}

/// The statements both backends run as they are (parameters numbered in the order they first
/// appear, as `sale::sql`).
pub(crate) mod sql {
    /// The user's open code with its items, a row per item (one row, item NULL, for a code
    /// without items; none without a code).
    pub(crate) const OPEN_CODE: &str = "SELECT b.code, i.item_id FROM sale_baskets b \
         LEFT JOIN sale_basket_items i ON i.code = b.code \
         WHERE b.sale_id = $1 AND b.user_id = $2 AND b.purchased_at_ms IS NULL";
    /// A new open code; one that collides inserts nothing and is drawn again. A second open
    /// code of the same user and sale breaks the unique index: the callers hold the user's
    /// turn (SQLite's writer, PostgreSQL's count row lock), so that would be a bug, and fails.
    pub(crate) const NEW_CODE: &str = "INSERT INTO sale_baskets \
         (code, sale_id, user_id, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (code) DO NOTHING";
    pub(crate) const ADD_ITEM: &str =
        "INSERT INTO sale_basket_items (code, item_id, added_at_ms) VALUES ($1, $2, $3)";
    pub(crate) const BASKET: &str =
        "SELECT sale_id, user_id, purchased_at_ms FROM sale_baskets WHERE code = $1";
    /// The code's items with what was decided for them (NULL before the purchase), by id.
    pub(crate) const LINES: &str = "SELECT i.id, i.sale_id, i.name, i.image_url, i.sold_to, \
         b.outcome FROM sale_basket_items b JOIN sale_items i ON i.id = b.item_id \
         WHERE b.code = $1 ORDER BY i.id";
    pub(crate) const DECIDE_LINE: &str =
        "UPDATE sale_basket_items SET outcome = $1 WHERE code = $2 AND item_id = $3";
    pub(crate) const CLOSE: &str = "UPDATE sale_baskets SET purchased_at_ms = $1 WHERE code = $2";
    pub(crate) const COUNT_SOLD: &str = "UPDATE sales SET sold = sold + $1 WHERE id = $2";

    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        OPEN_CODE,
        NEW_CODE,
        ADD_ITEM,
        BASKET,
        LINES,
        DECIDE_LINE,
        CLOSE,
        COUNT_SOLD,
    ];
}

/// Checkout codes drawn at most for one new code, as `sale::CHECKOUT_DRAWS_MAX`.
pub(crate) use crate::sale::CHECKOUT_DRAWS_MAX;

/// A row of [`sql::LINES`]: the item and its stored outcome, if decided.
pub(crate) fn line_of(r: &impl Columns) -> Result<(SaleItem, Option<String>), StorageError> {
    Ok((item_of(r)?, r.opt_text(5)?))
}

/// The answer to a code already decided: its lines as stored.
pub(crate) fn replayed(
    sale_id: i64,
    user_id: String,
    rows: Vec<(SaleItem, Option<String>)>,
) -> Result<BasketPurchase, StorageError> {
    let lines = rows
        .into_iter()
        .map(|(item, label)| {
            let label = label.ok_or_else(|| {
                StorageError::Corrupt(format!("a purchased code's item {} is undecided", item.id))
            })?;
            Ok(BasketLine {
                item,
                outcome: LineOutcome::from_label(&label)?,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    Ok(BasketPurchase {
        outcome: BasketPurchaseOutcome::Decided {
            sale_id,
            user_id,
            lines,
        },
        replayed: true,
    })
}

/// The user's open code and its items, from the rows of [`sql::OPEN_CODE`].
pub(crate) fn open_code(rows: Vec<(String, Option<i64>)>) -> (Option<String>, Vec<i64>) {
    let code = rows.first().map(|(code, _)| code.clone());
    (
        code,
        rows.into_iter().filter_map(|(_, item)| item).collect(),
    )
}

/// Decides a checkout by its item (read by id, not locked: checkout reserves nothing), before
/// the user's code and counts are read.
pub(crate) fn basket_item(
    item: Option<SaleItem>,
    sale_id: i64,
) -> Result<SaleItem, BasketCheckoutOutcome> {
    match item {
        None => Err(BasketCheckoutOutcome::UnknownItem),
        Some(it) if it.sale_id != sale_id => Err(BasketCheckoutOutcome::NotInCurrentSale),
        Some(it) if it.sold_to.is_some() => Err(BasketCheckoutOutcome::ItemSold),
        Some(it) => Ok(it),
    }
}

/// Decides a checkout by the user's open code (its items) and the items the user bought:
/// an item goes on a code once, and bought plus checked-out items stay within the limit.
pub(crate) fn basket_room(
    item_id: i64,
    on_code: &[i64],
    bought: i64,
    limit: u32,
) -> Result<(), BasketCheckoutOutcome> {
    if on_code.contains(&item_id) {
        Err(BasketCheckoutOutcome::AlreadyOnCode)
    } else if bought + on_code.len() as i64 >= i64::from(limit) {
        Err(BasketCheckoutOutcome::UserLimitReached)
    } else {
        Ok(())
    }
}

/// How a checkout attempt is recorded: its outcome's label and the code, if one took the item.
pub(crate) fn attempt_label(outcome: &BasketCheckoutOutcome) -> (&'static str, Option<&str>) {
    match outcome {
        BasketCheckoutOutcome::Added { code, .. } => ("ok", Some(code.as_str())),
        BasketCheckoutOutcome::UnknownItem => ("unknown_item", None),
        BasketCheckoutOutcome::NotInCurrentSale => ("not_in_current_sale", None),
        BasketCheckoutOutcome::ItemSold => ("item_sold", None),
        BasketCheckoutOutcome::AlreadyOnCode => ("already_checked_out", None),
        BasketCheckoutOutcome::UserLimitReached => ("user_limit_reached", None),
    }
}

/// Decides every item of a code not decided before, in id order: none when the sale is
/// over; otherwise each unsold item while the user is below the limit (`bought` counts what
/// the user bought before, in this sale).
pub(crate) fn decide_lines(
    now: UnixMillis,
    sale: &Sale,
    items: Vec<SaleItem>,
    mut bought: i64,
    limit: u32,
) -> Vec<BasketLine> {
    items
        .into_iter()
        .map(|item| {
            let outcome = if now >= sale.ends_at {
                LineOutcome::SaleOver
            } else if item.sold_to.is_some() {
                LineOutcome::ItemSold
            } else if bought >= i64::from(limit) {
                LineOutcome::UserLimitReached
            } else {
                bought += 1;
                LineOutcome::Sold
            };
            BasketLine { item, outcome }
        })
        .collect()
}

/// The lines sold to `user`, with the item marked sold to them.
pub(crate) fn mark_sold(lines: &mut [BasketLine], user: &str) {
    for line in lines.iter_mut() {
        if line.outcome == LineOutcome::Sold {
            line.item.sold_to = Some(user.to_owned());
        }
    }
}

pub(crate) fn sold_count(lines: &[BasketLine]) -> i64 {
    lines
        .iter()
        .filter(|l| l.outcome == LineOutcome::Sold)
        .count() as i64
}

/// `SaleCheckout` for an item put on a code (with the count it brought the code to).
pub(crate) fn checkout_event(
    req: &BasketCheckoutRequest,
    item_id: i64,
    code: &CheckoutCode,
    items_count: u32,
) -> NewEvent {
    let payload = serde_json::json!({
        "sale_id": req.sale.id,
        "item_id": item_id,
        "user_id": req.user.as_str(),
        "code": code.as_str(),
        "items_count": items_count,
    });
    NewEvent::api(EventType::SaleCheckout, req.now, payload.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, sale_id: i64, sold_to: Option<&str>) -> SaleItem {
        SaleItem {
            id,
            sale_id,
            name: "n".to_owned(),
            image_url: "i".to_owned(),
            sold_to: sold_to.map(str::to_owned),
        }
    }

    #[test]
    fn a_checkout_needs_an_unsold_item_of_the_sale_not_on_the_code_and_room() {
        assert_eq!(
            basket_item(None, 1),
            Err(BasketCheckoutOutcome::UnknownItem)
        );
        assert_eq!(
            basket_item(Some(item(1, 2, None)), 1),
            Err(BasketCheckoutOutcome::NotInCurrentSale)
        );
        assert_eq!(
            basket_item(Some(item(1, 1, Some("u"))), 1),
            Err(BasketCheckoutOutcome::ItemSold)
        );
        assert_eq!(basket_room(3, &[1, 2], 0, 10), Ok(()));
        assert_eq!(
            basket_room(2, &[1, 2], 0, 10),
            Err(BasketCheckoutOutcome::AlreadyOnCode)
        );
        // Bought and checked out count together.
        assert_eq!(basket_room(9, &[1, 2], 7, 10), Ok(()));
        assert_eq!(
            basket_room(9, &[1, 2], 8, 10),
            Err(BasketCheckoutOutcome::UserLimitReached)
        );
    }

    #[test]
    fn a_purchase_sells_the_unsold_items_up_to_the_limit_unless_the_sale_is_over() {
        let sale = Sale {
            id: 1,
            starts_at: UnixMillis::from_millis(0),
            ends_at: UnixMillis::from_millis(100),
            items_total: 10,
            sold: 0,
        };
        let items = || {
            vec![
                item(1, 1, None),
                item(2, 1, Some("other")),
                item(3, 1, None),
            ]
        };
        let outcomes = |lines: Vec<BasketLine>| -> Vec<LineOutcome> {
            lines.into_iter().map(|l| l.outcome).collect()
        };
        let at = UnixMillis::from_millis;
        use LineOutcome::*;
        assert_eq!(
            outcomes(decide_lines(at(50), &sale, items(), 0, 10)),
            [Sold, ItemSold, Sold]
        );
        assert_eq!(
            outcomes(decide_lines(at(50), &sale, items(), 9, 10)),
            [Sold, ItemSold, UserLimitReached]
        );
        assert_eq!(
            outcomes(decide_lines(at(100), &sale, items(), 0, 10)),
            [SaleOver, SaleOver, SaleOver]
        );
        for o in [Sold, ItemSold, UserLimitReached, SaleOver] {
            assert_eq!(LineOutcome::from_label(o.label()).unwrap(), o);
        }
    }
}
