//! Shipments and returns on SQLite: each decided and written in the single writer, inside a
//! savepoint a refusal rolls back whole; the rules are `allot_domain::shipment`'s.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::order::OrderStatus;
use allot_domain::shipment::{
    Disposition, ShipmentRefusal, check_return_move, fully_shipped, plan_return, plan_shipment,
    remaining,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, all_or_nothing};
use crate::StorageError;
use crate::catalog::corrupt;
use crate::inventory::Change;
use crate::order::order_status;
use crate::shipment::{
    ItemLine, LineRow, NewReturn, NewShipment, OrderReturn, ReturnMove, Shipment, ShipmentMade,
    ShipmentResult, ShipmentStore, attach, fulfil_request, fulfilled_event, item_line_of, items,
    line_row_of, receipt_refund, restock_reason, return_event, return_of, shipment_of,
    shipped_event, sql, states,
};

fn status(conn: &Connection, order: i64) -> Result<Option<OrderStatus>, StorageError> {
    conn.prepare_cached(sql::ORDER_STATUS)?
        .query_row(params![order], |r| r.get::<_, String>(0))
        .optional()?
        .map(|s| order_status(&s))
        .transpose()
}

fn line_rows(conn: &Connection, order: i64) -> Result<Vec<LineRow>, StorageError> {
    conn.prepare_cached(sql::LINE_ROWS)?
        .query_map(params![order], |r| Ok(line_row_of(r)))?
        .map(|r| r?)
        .collect()
}

/// Whether the order has returns of lines that are not rejected.
pub(super) fn has_line_returns(conn: &Connection, order: i64) -> Result<bool, StorageError> {
    let n: i64 = conn
        .prepare_cached(sql::LINE_RETURNS_OF_ORDER)?
        .query_row(params![order], |r| r.get(0))?;
    Ok(n > 0)
}

/// Writes a shipment of `plan` and its `OrderShipped`.
fn write_shipment(
    conn: &Connection,
    order: i64,
    rows: &[LineRow],
    plan: &[(i64, i64)],
    label: (Option<&str>, Option<&str>),
    now: UnixMillis,
) -> Result<Shipment, StorageError> {
    let id: i64 = conn
        .prepare_cached(sql::INSERT_SHIPMENT)?
        .query_row(params![order, label.0, label.1, now.as_millis()], |r| {
            r.get(0)
        })?;
    let lines = items(rows, plan);
    for l in &lines {
        conn.prepare_cached(sql::INSERT_SHIPMENT_LINE)?
            .execute(params![id, l.line_id, l.product_id, l.quantity])?;
        conn.prepare_cached(sql::ADD_SHIPPED)?
            .execute(params![l.quantity, order, l.line_id])?;
    }
    let shipment = Shipment {
        id,
        order_id: order,
        carrier: label.0.map(str::to_owned),
        tracking_number: label.1.map(str::to_owned),
        lines,
        created_at: now,
    };
    let fully = fully_shipped(&states(rows), plan);
    super::event::append(conn, shipped_event(&shipment, fully))?;
    Ok(shipment)
}

/// The whole-order move to fulfilled: ships what is left, if anything, without carrier.
pub(super) fn ship_rest(
    conn: &Connection,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let rows = line_rows(conn, order)?;
    let rest = remaining(&states(&rows));
    if !rest.is_empty() {
        write_shipment(conn, order, &rows, &rest, (None, None), now)?;
    }
    Ok(())
}

/// `OrderFulfilled`, after the order's move to fulfilled.
pub(super) fn fulfilled(
    conn: &Connection,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let ids: Vec<i64> = conn
        .prepare_cached(sql::SHIPMENT_IDS_OF_ORDER)?
        .query_map(params![order], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    super::event::append(conn, fulfilled_event(order, &ids, now))
}

fn ship(conn: &Connection, new: &NewShipment) -> ShipmentResult<ShipmentMade> {
    let Some(status) = status(conn, new.order_id)? else {
        return Ok(Err(ShipmentRefusal::OrderNotFound));
    };
    let rows = line_rows(conn, new.order_id)?;
    let plan = match plan_shipment(status, &states(&rows), &new.lines) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let fully = fully_shipped(&states(&rows), &plan);
    let shipment = write_shipment(
        conn,
        new.order_id,
        &rows,
        &plan,
        (
            Some(new.carrier.as_str()),
            Some(new.tracking_number.as_str()),
        ),
        new.now,
    )?;
    if fully
        && let Err(refusal) =
            super::order::change_inner(conn, &fulfil_request(new.order_id, new.now))?
    {
        return Err(corrupt(format!(
            "order {} shipped whole but could not be fulfilled: {refusal:?}",
            new.order_id
        )));
    }
    Ok(Ok(ShipmentMade {
        shipment,
        fulfilled: fully,
    }))
}

fn lines_of_return(conn: &Connection, id: i64) -> Result<Vec<ItemLine>, StorageError> {
    conn.prepare_cached(sql::RETURN_LINES)?
        .query_map(params![id], |r| Ok(item_line_of(r)))?
        .map(|r| r?.map(|(_, l)| l))
        .collect()
}

fn load_return(conn: &Connection, id: i64) -> Result<Option<OrderReturn>, StorageError> {
    let Some(mut r) = conn
        .prepare_cached(sql::RETURN_BY_ID)?
        .query_row(params![id], |r| Ok(return_of(r)))
        .optional()?
        .transpose()?
    else {
        return Ok(None);
    };
    r.lines = lines_of_return(conn, id)?;
    Ok(Some(r))
}

fn open(conn: &Connection, new: &NewReturn) -> ShipmentResult<OrderReturn> {
    let Some(status) = status(conn, new.order_id)? else {
        return Ok(Err(ShipmentRefusal::OrderNotFound));
    };
    let rows = line_rows(conn, new.order_id)?;
    let plan = match plan_return(status, &states(&rows), &new.lines) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let id: i64 = conn.prepare_cached(sql::INSERT_RETURN)?.query_row(
        params![new.order_id, new.reason.as_str(), new.now.as_millis()],
        |r| r.get(0),
    )?;
    for l in items(&rows, &plan) {
        conn.prepare_cached(sql::INSERT_RETURN_LINE)?
            .execute(params![id, l.line_id, l.product_id, l.quantity])?;
    }
    let r = load_return(conn, id)?.ok_or_else(|| corrupt("a return just made is missing"))?;
    super::event::append(conn, return_event(&r))?;
    Ok(Ok(r))
}

fn move_return(
    conn: &Connection,
    id: i64,
    to: ReturnMove,
    now: UnixMillis,
) -> ShipmentResult<OrderReturn> {
    let Some(r) = load_return(conn, id)? else {
        return Ok(Err(ShipmentRefusal::ReturnNotFound));
    };
    if let Err(refusal) = check_return_move(r.status, to.to()) {
        return Ok(Err(refusal));
    }
    let (warehouse, disposition, refund) = match to {
        ReturnMove::Receive {
            warehouse,
            disposition,
            refund,
        } => {
            if !super::inventory::warehouse_exists(conn, warehouse)? {
                return Ok(Err(ShipmentRefusal::UnknownWarehouse));
            }
            (Some(warehouse), Some(disposition), refund)
        }
        _ => (None, None, None),
    };
    if disposition == Some(Disposition::Restock)
        && let Some(w) = warehouse
    {
        let rows = line_rows(conn, r.order_id)?;
        let reason = restock_reason(&r);
        let mut lines = r.lines.clone();
        lines.sort_by_key(|l| l.product_id);
        for l in &lines {
            let row = rows
                .iter()
                .find(|row| row.state.line_id == l.line_id)
                .ok_or_else(|| corrupt("a returned line is not on its order"))?;
            let product = ProductId::parse(l.product_id).map_err(corrupt)?;
            let change = Change::stock_in(l.quantity, row.reservation_id, &reason);
            if let Err(refusal) = super::order::restock(conn, (product, w), change, now)? {
                return Err(corrupt(format!(
                    "return {id} could not be restocked: {refusal:?}"
                )));
            }
        }
    }
    // The refund in the same transaction: refused, and the receipt is refused with it.
    let refunded = match refund {
        Some(amount) => match super::payment::refund(conn, &receipt_refund(&r, amount, now))? {
            Ok(_) => amount.get(),
            Err(refusal) => return Ok(Err(ShipmentRefusal::Refund(refusal))),
        },
        None => 0,
    };
    conn.prepare_cached(sql::SET_RETURN)?.execute(params![
        to.to().as_str(),
        warehouse.map(WarehouseId::get),
        disposition.map(Disposition::as_str),
        now.as_millis(),
        refunded,
        id
    ])?;
    let r = load_return(conn, id)?.ok_or_else(|| corrupt("a return just moved is missing"))?;
    super::event::append(conn, return_event(&r))?;
    Ok(Ok(r))
}

#[async_trait]
impl ShipmentStore for SqliteStore {
    async fn ship(&self, new: NewShipment) -> ShipmentResult<ShipmentMade> {
        let weight = new.lines.len() + 2;
        self.write(weight, move |conn, _| {
            all_or_nothing(conn, |conn| ship(conn, &new))
        })
        .await
    }

    async fn shipments(&self, order_id: i64) -> Result<Option<Vec<Shipment>>, StorageError> {
        self.read(move |conn| {
            if status(conn, order_id)?.is_none() {
                return Ok(None);
            }
            let mut shipments = conn
                .prepare_cached(sql::SHIPMENTS_OF_ORDER)?
                .query_map(params![order_id], |r| Ok(shipment_of(r)))?
                .map(|r| r?)
                .collect::<Result<Vec<_>, StorageError>>()?;
            let lines = conn
                .prepare_cached(sql::SHIPMENT_LINES_OF_ORDER)?
                .query_map(params![order_id], |r| Ok(item_line_of(r)))?
                .map(|r| r?)
                .collect::<Result<Vec<_>, StorageError>>()?;
            attach(&mut shipments, lines);
            Ok(Some(shipments))
        })
        .await
    }

    async fn open_return(&self, new: NewReturn) -> ShipmentResult<OrderReturn> {
        let weight = new.lines.len() + 1;
        self.write(weight, move |conn, _| {
            all_or_nothing(conn, |conn| open(conn, &new))
        })
        .await
    }

    async fn move_return(
        &self,
        return_id: i64,
        to: ReturnMove,
        now: UnixMillis,
    ) -> ShipmentResult<OrderReturn> {
        self.write(2, move |conn, _| {
            all_or_nothing(conn, |conn| move_return(conn, return_id, to, now))
        })
        .await
    }

    async fn returns(&self, order_id: i64) -> Result<Option<Vec<OrderReturn>>, StorageError> {
        self.read(move |conn| {
            if status(conn, order_id)?.is_none() {
                return Ok(None);
            }
            let mut returns = conn
                .prepare_cached(sql::RETURNS_OF_ORDER)?
                .query_map(params![order_id], |r| Ok(return_of(r)))?
                .map(|r| r?)
                .collect::<Result<Vec<_>, StorageError>>()?;
            for r in &mut returns {
                r.lines = lines_of_return(conn, r.id)?;
            }
            Ok(Some(returns))
        })
        .await
    }

    async fn return_order(&self, return_id: i64) -> Result<Option<i64>, StorageError> {
        self.read(move |conn| Ok(load_return(conn, return_id)?.map(|r| r.order_id)))
            .await
    }
}
