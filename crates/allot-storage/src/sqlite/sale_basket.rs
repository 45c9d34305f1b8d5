//! The design checkout on SQLite: checkout and purchase run in the writer, so each decides on
//! an exact view (one open code per user, the limit counted with the code's items, an item
//! sold once, a code decided once).

use allot_domain::UnixMillis;
use allot_domain::event::EventType;
use allot_domain::sale::CheckoutCode;
use rusqlite::{Connection, OptionalExtension, params};

use super::event::append;
use super::sale::{bought, by_id, item};
use crate::StorageError;
use crate::row::{Columns, collect};
use crate::sale::{code_event, parse_checkout_code, sql as sale_sql};
use crate::sale_basket::{
    BasketCheckoutOutcome, BasketCheckoutRequest, BasketPurchase, BasketPurchaseOutcome,
    CHECKOUT_DRAWS_MAX, LineOutcome, attempt_label, basket_item, basket_room, checkout_event,
    decide_lines, line_of, mark_sold, open_code, replayed, sold_count, sql,
};

/// Decides a checkout and records the attempt, whatever its outcome.
pub(super) fn checkout(
    conn: &Connection,
    req: &BasketCheckoutRequest,
) -> Result<BasketCheckoutOutcome, StorageError> {
    let outcome = decide_checkout(conn, req)?;
    let (label, code) = attempt_label(&outcome);
    conn.prepare_cached(sale_sql::RECORD_ATTEMPT)?
        .execute(params![
            req.sale.id,
            req.item.get(),
            req.user.as_str(),
            req.now.as_millis(),
            label,
            code
        ])?;
    Ok(outcome)
}

fn decide_checkout(
    conn: &Connection,
    req: &BasketCheckoutRequest,
) -> Result<BasketCheckoutOutcome, StorageError> {
    let user = req.user.as_str();
    let it = match basket_item(item(conn, req.item.get())?, req.sale.id) {
        Ok(it) => it,
        Err(refusal) => return Ok(refusal),
    };
    let (open, on_code) = {
        let mut stmt = conn.prepare_cached(sql::OPEN_CODE)?;
        open_code(collect(
            stmt.query_map(params![req.sale.id, user], |r| {
                Ok(r.text(0).and_then(|code| Ok((code, r.opt_int(1)?))))
            })?,
        )?)
    };
    if let Err(refusal) = basket_room(
        it.id,
        &on_code,
        bought(conn, req.sale.id, user)?,
        req.user_limit,
    ) {
        return Ok(refusal);
    }
    let code = match open {
        Some(code) => parse_checkout_code(&code)?,
        None => new_code(conn, req)?,
    };
    conn.prepare_cached(sql::ADD_ITEM)?.execute(params![
        code.as_str(),
        it.id,
        req.now.as_millis()
    ])?;
    let items_count = on_code.len() as u32 + 1;
    append(conn, checkout_event(req, it.id, &code, items_count))?;
    Ok(BasketCheckoutOutcome::Added {
        code,
        items_count,
        item: it,
    })
}

fn new_code(conn: &Connection, req: &BasketCheckoutRequest) -> Result<CheckoutCode, StorageError> {
    let mut insert = conn.prepare_cached(sql::NEW_CODE)?;
    let mut rng = rand::rng();
    for _ in 0..CHECKOUT_DRAWS_MAX {
        let code = CheckoutCode::generate(&mut rng);
        if insert.execute(params![
            code.as_str(),
            req.sale.id,
            req.user.as_str(),
            req.now.as_millis()
        ])? == 1
        {
            return Ok(code);
        }
    }
    Err(StorageError::Corrupt(format!(
        "{CHECKOUT_DRAWS_MAX} checkout codes in a row collided"
    )))
}

/// Decides a code once: every item on it still unsold is sold to its user (within the limit,
/// while the sale is on), and the code closes; a repeated purchase answers the first outcome.
pub(super) fn purchase(
    conn: &Connection,
    code: &CheckoutCode,
    user_limit: u32,
    now: UnixMillis,
) -> Result<BasketPurchase, StorageError> {
    let basket: Option<(i64, String, Option<i64>)> = conn
        .prepare_cached(sql::BASKET)?
        .query_row(params![code.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((sale_id, user, purchased_at)) = basket else {
        return Ok(BasketPurchase {
            outcome: BasketPurchaseOutcome::UnknownCode,
            replayed: false,
        });
    };
    let rows = {
        let mut stmt = conn.prepare_cached(sql::LINES)?;
        collect(stmt.query_map(params![code.as_str()], |r| Ok(line_of(r)))?)?
    };
    if purchased_at.is_some() {
        return replayed(sale_id, user, rows);
    }
    let sale = by_id(conn, sale_id)?
        .ok_or_else(|| StorageError::Corrupt(format!("checkout {code} names a missing sale")))?;
    let items = rows.into_iter().map(|(item, _)| item).collect();
    let mut lines = decide_lines(now, &sale, items, bought(conn, sale_id, &user)?, user_limit);
    let mut decide = conn.prepare_cached(sql::DECIDE_LINE)?;
    for line in &lines {
        if line.outcome == LineOutcome::Sold {
            let sold = conn.prepare_cached(sale_sql::SELL_ITEM)?.execute(params![
                user,
                now.as_millis(),
                code.as_str(),
                line.item.id
            ])?;
            if sold != 1 {
                return Err(StorageError::Corrupt(format!(
                    "item {} changed under the writer",
                    line.item.id
                )));
            }
            append(
                conn,
                code_event(
                    EventType::SalePurchased,
                    sale_id,
                    line.item.id,
                    &user,
                    code,
                    now,
                ),
            )?;
        }
        decide.execute(params![line.outcome.label(), code.as_str(), line.item.id])?;
    }
    let sold = sold_count(&lines);
    if sold > 0 {
        conn.prepare_cached(sql::COUNT_SOLD)?
            .execute(params![sold, sale_id])?;
        conn.prepare_cached(
            "INSERT INTO sale_user_counts (sale_id, user_id, bought) VALUES (?1, ?2, ?3)
             ON CONFLICT (sale_id, user_id) DO UPDATE SET bought = bought + excluded.bought",
        )?
        .execute(params![sale_id, user, sold])?;
    }
    conn.prepare_cached(sql::CLOSE)?
        .execute(params![now.as_millis(), code.as_str()])?;
    mark_sold(&mut lines, &user);
    Ok(BasketPurchase {
        outcome: BasketPurchaseOutcome::Decided {
            sale_id,
            user_id: user,
            lines,
        },
        replayed: false,
    })
}
