//! Shipments and returns on PostgreSQL: each in one transaction that first locks the order's
//! row (as status changes and payments do), so an order's shipments and returns take turns on
//! every instance; the rules are `allot_domain::shipment`'s.

use super::conn::{Conn, Db, Tx};
use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::order::OrderStatus;
use allot_domain::shipment::{
    Disposition, ShipmentRefusal, check_return_move, fully_shipped, plan_return, plan_shipment,
    remaining,
};
use async_trait::async_trait;

use super::PgStore;
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

async fn status(c: &impl Db, order: i64, lock: bool) -> Result<Option<OrderStatus>, StorageError> {
    let statement = if lock {
        sql::LOCK_ORDER_STATUS
    } else {
        sql::ORDER_STATUS
    };
    c.query_opt(statement, &[&order])
        .await?
        .map(|r| order_status(&r.try_get::<_, String>(0)?))
        .transpose()
}

async fn line_rows(c: &impl Db, order: i64) -> Result<Vec<LineRow>, StorageError> {
    c.query(sql::LINE_ROWS, &[&order])
        .await?
        .iter()
        .map(line_row_of)
        .collect()
}

/// Whether the order has returns of lines that are not rejected.
pub(super) async fn has_line_returns(c: &impl Db, order: i64) -> Result<bool, StorageError> {
    let n: i64 = c
        .query_one(sql::LINE_RETURNS_OF_ORDER, &[&order])
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

/// Writes a shipment of `plan` and its `OrderShipped`.
async fn write_shipment(
    tx: &impl Db,
    order: i64,
    rows: &[LineRow],
    plan: &[(i64, i64)],
    label: (Option<&str>, Option<&str>),
    now: UnixMillis,
) -> Result<Shipment, StorageError> {
    let id: i64 = tx
        .query_one(
            sql::INSERT_SHIPMENT,
            &[&order, &label.0, &label.1, &now.as_millis()],
        )
        .await?
        .try_get(0)?;
    let lines = items(rows, plan);
    for l in &lines {
        tx.execute(
            sql::INSERT_SHIPMENT_LINE,
            &[&id, &l.line_id, &l.product_id, &l.quantity],
        )
        .await?;
        tx.execute(sql::ADD_SHIPPED, &[&l.quantity, &order, &l.line_id])
            .await?;
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
    super::event::append(tx, shipped_event(&shipment, fully)).await?;
    Ok(shipment)
}

/// The whole-order move to fulfilled: ships what is left, if anything, without carrier.
pub(super) async fn ship_rest(
    tx: &impl Db,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let rows = line_rows(tx, order).await?;
    let rest = remaining(&states(&rows));
    if !rest.is_empty() {
        write_shipment(tx, order, &rows, &rest, (None, None), now).await?;
    }
    Ok(())
}

/// `OrderFulfilled`, after the order's move to fulfilled.
pub(super) async fn fulfilled(
    tx: &impl Db,
    order: i64,
    now: UnixMillis,
) -> Result<(), StorageError> {
    let ids: Vec<i64> = tx
        .query(sql::SHIPMENT_IDS_OF_ORDER, &[&order])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    super::event::append(tx, fulfilled_event(order, &ids, now)).await
}

async fn ship(tx: &Tx<'_>, new: &NewShipment) -> ShipmentResult<ShipmentMade> {
    let Some(status) = status(tx, new.order_id, true).await? else {
        return Ok(Err(ShipmentRefusal::OrderNotFound));
    };
    let rows = line_rows(tx, new.order_id).await?;
    let plan = match plan_shipment(status, &states(&rows), &new.lines) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let fully = fully_shipped(&states(&rows), &plan);
    let shipment = write_shipment(
        tx,
        new.order_id,
        &rows,
        &plan,
        (
            Some(new.carrier.as_str()),
            Some(new.tracking_number.as_str()),
        ),
        new.now,
    )
    .await?;
    if fully
        && let Err(refusal) =
            super::order::change(tx, &fulfil_request(new.order_id, new.now)).await?
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

async fn lines_of_return(c: &impl Db, id: i64) -> Result<Vec<ItemLine>, StorageError> {
    c.query(sql::RETURN_LINES, &[&id])
        .await?
        .iter()
        .map(|r| item_line_of(r).map(|(_, l)| l))
        .collect()
}

async fn load_return(c: &impl Db, id: i64) -> Result<Option<OrderReturn>, StorageError> {
    let Some(row) = c.query_opt(sql::RETURN_BY_ID, &[&id]).await? else {
        return Ok(None);
    };
    let mut r = return_of(&row)?;
    r.lines = lines_of_return(c, id).await?;
    Ok(Some(r))
}

async fn open(tx: &Tx<'_>, new: &NewReturn) -> ShipmentResult<OrderReturn> {
    let Some(status) = status(tx, new.order_id, true).await? else {
        return Ok(Err(ShipmentRefusal::OrderNotFound));
    };
    let rows = line_rows(tx, new.order_id).await?;
    let plan = match plan_return(status, &states(&rows), &new.lines) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let id: i64 = tx
        .query_one(
            sql::INSERT_RETURN,
            &[&new.order_id, &new.reason.as_str(), &new.now.as_millis()],
        )
        .await?
        .try_get(0)?;
    for l in items(&rows, &plan) {
        tx.execute(
            sql::INSERT_RETURN_LINE,
            &[&id, &l.line_id, &l.product_id, &l.quantity],
        )
        .await?;
    }
    let r = load_return(tx, id)
        .await?
        .ok_or_else(|| corrupt("a return just made is missing"))?;
    super::event::append(tx, return_event(&r)).await?;
    Ok(Ok(r))
}

async fn move_return(
    tx: &Tx<'_>,
    id: i64,
    to: ReturnMove,
    now: UnixMillis,
) -> ShipmentResult<OrderReturn> {
    // The order's lock first, as every change of the order takes it; then the return as it
    // is under that lock.
    let Some(first) = load_return(tx, id).await? else {
        return Ok(Err(ShipmentRefusal::ReturnNotFound));
    };
    status(tx, first.order_id, true).await?;
    let Some(r) = load_return(tx, id).await? else {
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
            if !super::inventory::warehouse_exists(tx, warehouse).await? {
                return Ok(Err(ShipmentRefusal::UnknownWarehouse));
            }
            (Some(warehouse), Some(disposition), refund)
        }
        _ => (None, None, None),
    };
    if disposition == Some(Disposition::Restock)
        && let Some(w) = warehouse
    {
        let rows = line_rows(tx, r.order_id).await?;
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
            if let Err(refusal) = super::order::restock(tx, (product, w), change, now).await? {
                return Err(corrupt(format!(
                    "return {id} could not be restocked: {refusal:?}"
                )));
            }
        }
    }
    // The refund in the same transaction: refused, and the receipt is refused with it.
    let refunded = match refund {
        Some(amount) => match super::payment::refund(tx, &receipt_refund(&r, amount, now)).await? {
            Ok(_) => amount.get(),
            Err(refusal) => return Ok(Err(ShipmentRefusal::Refund(refusal))),
        },
        None => 0,
    };
    tx.execute(
        sql::SET_RETURN,
        &[
            &to.to().as_str(),
            &warehouse.map(WarehouseId::get),
            &disposition.map(Disposition::as_str),
            &now.as_millis(),
            &refunded,
            &id,
        ],
    )
    .await?;
    let r = load_return(tx, id)
        .await?
        .ok_or_else(|| corrupt("a return just moved is missing"))?;
    super::event::append(tx, return_event(&r)).await?;
    Ok(Ok(r))
}

#[async_trait]
impl ShipmentStore for PgStore {
    async fn ship(&self, new: NewShipment) -> ShipmentResult<ShipmentMade> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let made = ship(&tx, &new).await?;
        if made.is_ok() {
            super::commit(tx).await?;
        }
        Ok(made)
    }

    async fn shipments(&self, order_id: i64) -> Result<Option<Vec<Shipment>>, StorageError> {
        let guard = self.client().await?;
        let client: &Conn = &guard;
        if status(client, order_id, false).await?.is_none() {
            return Ok(None);
        }
        let mut shipments = client
            .query(sql::SHIPMENTS_OF_ORDER, &[&order_id])
            .await?
            .iter()
            .map(shipment_of)
            .collect::<Result<Vec<_>, _>>()?;
        let lines = client
            .query(sql::SHIPMENT_LINES_OF_ORDER, &[&order_id])
            .await?
            .iter()
            .map(item_line_of)
            .collect::<Result<Vec<_>, _>>()?;
        attach(&mut shipments, lines);
        Ok(Some(shipments))
    }

    async fn open_return(&self, new: NewReturn) -> ShipmentResult<OrderReturn> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let made = open(&tx, &new).await?;
        if made.is_ok() {
            super::commit(tx).await?;
        }
        Ok(made)
    }

    async fn move_return(
        &self,
        return_id: i64,
        to: ReturnMove,
        now: UnixMillis,
    ) -> ShipmentResult<OrderReturn> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let moved = move_return(&tx, return_id, to, now).await?;
        if moved.is_ok() {
            super::commit(tx).await?;
        }
        Ok(moved)
    }

    async fn returns(&self, order_id: i64) -> Result<Option<Vec<OrderReturn>>, StorageError> {
        let guard = self.client().await?;
        let client: &Conn = &guard;
        if status(client, order_id, false).await?.is_none() {
            return Ok(None);
        }
        let mut returns = client
            .query(sql::RETURNS_OF_ORDER, &[&order_id])
            .await?
            .iter()
            .map(return_of)
            .collect::<Result<Vec<_>, _>>()?;
        for r in &mut returns {
            r.lines = lines_of_return(client, r.id).await?;
        }
        Ok(Some(returns))
    }

    async fn return_order(&self, return_id: i64) -> Result<Option<i64>, StorageError> {
        let guard = self.client().await?;
        let client: &Conn = &guard;
        Ok(load_return(client, return_id).await?.map(|r| r.order_id))
    }
}
