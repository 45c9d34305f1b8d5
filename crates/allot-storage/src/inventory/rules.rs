//! Inventory's rules, decided once for both backends: how a change moves a balance and its
//! low-stock alert, which warehouse a reservation takes, how a reservation ends, how far an
//! adjustment may go. Each backend reads the balances its own way (inside SQLite's writer, or
//! locked in PostgreSQL) and writes what these say.

use allot_domain::UnixMillis;
use allot_domain::catalog::{ProductId, WarehouseId};
use allot_domain::inventory::{
    Adjustment, AlertChange, Level, MovementKind, Quantity, Reorder, ReservationStatus,
    alert_change, choose_warehouse,
};

use super::{InventoryRefusal, InventoryResult, Reservation};
use crate::catalog::corrupt;

/// The balance of a level as an operation reads it (locked, or inside the single writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Balance {
    pub on_hand: i64,
    pub reserved: i64,
    pub threshold: Option<i64>,
    pub alert_open: bool,
}

/// What a level's low-stock alert does when a change leaves the level (balance `b` before it)
/// at `on_hand`/`reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlertStep {
    Raise {
        available: i64,
        threshold: i64,
    },
    Clear {
        available: i64,
        threshold: Option<i64>,
    },
    Keep {
        open: bool,
    },
}

pub(crate) fn alert_step(b: &Balance, on_hand: i64, reserved: i64) -> AlertStep {
    let available = on_hand - reserved;
    match (
        alert_change(available, b.threshold, b.alert_open),
        b.threshold,
    ) {
        (AlertChange::Raise, Some(threshold)) => AlertStep::Raise {
            available,
            threshold,
        },
        (AlertChange::Clear, threshold) => AlertStep::Clear {
            available,
            threshold,
        },
        _ => AlertStep::Keep { open: b.alert_open },
    }
}

impl AlertStep {
    /// Whether an alert is open after the step.
    pub(crate) fn open_after(&self) -> bool {
        match self {
            AlertStep::Raise { .. } => true,
            AlertStep::Clear { .. } => false,
            AlertStep::Keep { open } => *open,
        }
    }

    /// The step's event (`InventoryThresholdReached` or `...Cleared`), if it has one. A clear
    /// is written only when it cleared an open alert row (the caller knows).
    pub(crate) fn event(
        &self,
        p: ProductId,
        w: WarehouseId,
        at: UnixMillis,
    ) -> Option<allot_domain::event::NewEvent> {
        let (raised, available, threshold) = match *self {
            AlertStep::Raise {
                available,
                threshold,
            } => (true, available, Some(threshold)),
            AlertStep::Clear {
                available,
                threshold,
            } => (false, available, threshold),
            AlertStep::Keep { .. } => return None,
        };
        let e = crate::event::threshold_event(raised, p.get(), w.get(), available, threshold, at);
        Some(e)
    }
}

/// One change of a balance: the level, its ledger row and its alert, written together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    pub kind: MovementKind,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub reservation: Option<i64>,
    pub reason: Option<&'a str>,
}

/// What ends a pending reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Release,
    Confirm,
    Expire,
}

impl Change<'_> {
    /// Stock held by the reservation `id`.
    pub(crate) fn reservation(quantity: i64, id: i64) -> Change<'static> {
        Change {
            kind: MovementKind::Reservation,
            on_hand_delta: 0,
            reserved_delta: quantity,
            reservation: Some(id),
            reason: None,
        }
    }

    /// Stock put back on hand (a cancelled or returned order's line).
    pub(crate) fn stock_in(quantity: i64, reservation: i64, reason: &str) -> Change<'_> {
        Change {
            kind: MovementKind::StockIn,
            on_hand_delta: quantity,
            reserved_delta: 0,
            reservation: Some(reservation),
            reason: Some(reason),
        }
    }

    /// The level after the change.
    pub(crate) fn after(&self, b: &Balance) -> (i64, i64) {
        (
            b.on_hand + self.on_hand_delta,
            b.reserved + self.reserved_delta,
        )
    }

    /// The movement's event, with the level after it.
    pub(crate) fn event(
        &self,
        p: ProductId,
        w: WarehouseId,
        b: &Balance,
        at: UnixMillis,
    ) -> allot_domain::event::NewEvent {
        let (on_hand, reserved) = self.after(b);
        crate::event::MovementEvent {
            kind: self.kind,
            product: p.get(),
            warehouse: w.get(),
            on_hand_delta: self.on_hand_delta,
            reserved_delta: self.reserved_delta,
            on_hand,
            reserved,
            reservation: self.reservation,
            reason: self.reason,
        }
        .event(at)
    }

    /// `InventoryChanged` (the design's name for "on hand moved"), written after the
    /// movement's own event in the same transaction when the movement changes on hand
    /// (stock in, stock out, an adjustment); none for a reservation, a release or an expiry.
    /// The movement's event and, when it changes on hand, its `InventoryChanged` twin (the
    /// same payload, built once).
    pub(crate) fn events(
        &self,
        p: ProductId,
        w: WarehouseId,
        b: &Balance,
        at: UnixMillis,
    ) -> (
        allot_domain::event::NewEvent,
        Option<allot_domain::event::NewEvent>,
    ) {
        let movement = self.event(p, w, b, at);
        let changed = (self.on_hand_delta != 0).then(|| allot_domain::event::NewEvent {
            kind: allot_domain::event::EventType::InventoryChanged,
            ..movement.clone()
        });
        (movement, changed)
    }
}

impl End {
    /// The movement ending a reservation of `quantity` writes: its stock goes back (release,
    /// expiry) or out (confirm).
    pub(crate) fn change(self, quantity: i64, reservation: i64) -> Change<'static> {
        let (kind, on_hand_delta) = match self {
            End::Release => (MovementKind::Release, 0),
            End::Confirm => (MovementKind::StockOut, -quantity),
            End::Expire => (MovementKind::Expiry, 0),
        };
        Change {
            kind,
            on_hand_delta,
            reserved_delta: -quantity,
            reservation: Some(reservation),
            reason: None,
        }
    }
}

/// How a pending reservation ends: how it was asked to, unless it is past its lifetime, which
/// expires it whatever was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ending {
    pub asked: End,
    pub ended: End,
    pub status: ReservationStatus,
}

/// Decides how the reservation `r` ends when `how` is asked at `now`.
pub(crate) fn decide_end(
    r: &Reservation,
    how: End,
    now: UnixMillis,
) -> Result<Ending, InventoryRefusal> {
    if r.status != ReservationStatus::Pending {
        return Err(InventoryRefusal::NotPending { status: r.status });
    }
    let ended = if r.expires_at.as_millis() <= now.as_millis() {
        End::Expire
    } else {
        how
    };
    let status = match ended {
        End::Release => ReservationStatus::Released,
        End::Confirm => ReservationStatus::Confirmed,
        End::Expire => ReservationStatus::Expired,
    };
    Ok(Ending {
        asked: how,
        ended,
        status,
    })
}

impl Ending {
    /// The movement ending the reservation writes: its stock goes back (release, expiry) or
    /// out (confirm).
    pub(crate) fn change(&self, r: &Reservation) -> Change<'static> {
        self.ended.change(r.quantity, r.id.get())
    }

    /// The answer once written: the ended reservation, or `NotPending { Expired }` when it
    /// lapsed instead of ending as asked.
    pub(crate) fn answer(
        &self,
        r: Reservation,
        now: UnixMillis,
    ) -> Result<Reservation, InventoryRefusal> {
        if self.ended != self.asked {
            return Err(InventoryRefusal::NotPending {
                status: self.status,
            });
        }
        Ok(Reservation {
            status: self.status,
            updated_at: now,
            ..r
        })
    }
}

/// The warehouse a reservation takes (see [`allot_domain::inventory::choose_warehouse`]) among
/// the product's stock rows in active warehouses, with that row's balance.
pub(crate) fn choose_row(
    rows: &[(WarehouseId, Balance)],
    preferred: Option<WarehouseId>,
    quantity: Quantity,
) -> InventoryResult<(WarehouseId, Balance)> {
    let levels: Vec<Level<WarehouseId>> = rows
        .iter()
        .map(|(w, b)| Level {
            warehouse: *w,
            on_hand: b.on_hand,
            reserved: b.reserved,
        })
        .collect();
    let Some(w) = choose_warehouse(&levels, preferred, quantity) else {
        return Ok(Err(InventoryRefusal::OutOfStock {
            available_total: levels.iter().map(Level::available).sum(),
        }));
    };
    rows.iter()
        .find(|(rw, _)| *rw == w)
        .map(|row| Ok(*row))
        .ok_or_else(|| corrupt("the chosen warehouse has no level"))
}

/// The movement an adjustment writes (none when it changes nothing), unless it would leave
/// less on hand than is reserved.
pub(crate) fn decide_adjustment<'a>(
    adjustment: Adjustment,
    b: &Balance,
    reason: &'a str,
) -> Result<Option<Change<'a>>, InventoryRefusal> {
    let delta = adjustment
        .delta(b.on_hand, b.reserved)
        .ok_or(InventoryRefusal::BelowReserved {
            on_hand: b.on_hand,
            reserved: b.reserved,
        })?;
    Ok((delta != 0).then_some(Change {
        kind: MovementKind::Adjustment,
        on_hand_delta: delta,
        reserved_delta: 0,
        reservation: None,
        reason: Some(reason),
    }))
}

/// What setting a reorder point writes: its event, and what the level's alert does under the
/// new threshold (the balance read is `b`).
pub(crate) fn decide_reorder(
    p: ProductId,
    w: WarehouseId,
    b: &Balance,
    reorder: Option<Reorder>,
    at: UnixMillis,
) -> (allot_domain::event::NewEvent, AlertStep) {
    let b = Balance {
        threshold: reorder.map(Reorder::threshold),
        ..*b
    };
    let quantity = reorder.map(Reorder::quantity);
    let event = crate::event::reorder_event(p.get(), w.get(), b.threshold, quantity, at);
    (event, alert_step(&b, b.on_hand, b.reserved))
}

#[cfg(test)]
mod tests {
    use allot_domain::inventory::ReservationId;

    use super::*;

    fn w(id: i64) -> WarehouseId {
        WarehouseId::parse(id).expect("a warehouse id")
    }

    fn balance(on_hand: i64, reserved: i64, threshold: Option<i64>, open: bool) -> Balance {
        Balance {
            on_hand,
            reserved,
            threshold,
            alert_open: open,
        }
    }

    fn pending(expires_at_ms: i64) -> Reservation {
        Reservation {
            id: ReservationId::parse(9).expect("an id"),
            product_id: ProductId::parse(1).expect("an id"),
            warehouse_id: w(1),
            quantity: 3,
            holder: "cart-1".to_owned(),
            status: ReservationStatus::Pending,
            expires_at: UnixMillis::from_millis(expires_at_ms),
            created_at: UnixMillis::from_millis(0),
            updated_at: UnixMillis::from_millis(0),
        }
    }

    #[test]
    fn a_reservation_ends_as_asked_unless_it_lapsed() {
        let r = pending(100);
        let now = UnixMillis::from_millis(50);
        let ending = decide_end(&r, End::Confirm, now).expect("pending");
        assert_eq!(ending.status, ReservationStatus::Confirmed);
        let change = ending.change(&r);
        assert_eq!((change.on_hand_delta, change.reserved_delta), (-3, -3));
        assert_eq!(change.kind, MovementKind::StockOut);
        assert!(ending.answer(r.clone(), now).is_ok());

        let late = UnixMillis::from_millis(100);
        let ending = decide_end(&r, End::Release, late).expect("pending");
        assert_eq!(ending.change(&r).kind, MovementKind::Expiry);
        assert_eq!(
            ending.answer(r.clone(), late),
            Err(InventoryRefusal::NotPending {
                status: ReservationStatus::Expired
            })
        );
        // Expiry asked of a lapsed reservation is what was asked.
        let ending = decide_end(&r, End::Expire, late).expect("pending");
        assert!(ending.answer(r.clone(), late).is_ok());

        let done = Reservation {
            status: ReservationStatus::Released,
            ..r
        };
        assert_eq!(
            decide_end(&done, End::Confirm, now),
            Err(InventoryRefusal::NotPending {
                status: ReservationStatus::Released
            })
        );
    }

    #[test]
    fn a_reservation_takes_one_warehouse_or_is_refused_with_the_total() {
        let rows = [
            (w(1), balance(5, 4, None, false)),
            (w(2), balance(8, 0, None, false)),
        ];
        let q = |n| Quantity::parse(n).expect("a quantity");
        let (chosen, _) = choose_row(&rows, None, q(3))
            .expect("no error")
            .expect("chosen");
        assert_eq!(chosen, w(2));
        assert_eq!(
            choose_row(&rows, None, q(9)).expect("no error"),
            Err(InventoryRefusal::OutOfStock { available_total: 9 })
        );
    }

    #[test]
    fn an_adjustment_never_leaves_less_than_is_reserved() {
        let b = balance(10, 4, None, false);
        let change = decide_adjustment(Adjustment::Add(-6), &b, "count")
            .expect("allowed")
            .expect("a change");
        assert_eq!((change.on_hand_delta, change.reason), (-6, Some("count")));
        assert_eq!(
            decide_adjustment(Adjustment::Set(10), &b, "count"),
            Ok(None)
        );
        assert_eq!(
            decide_adjustment(Adjustment::Add(-7), &b, "count"),
            Err(InventoryRefusal::BelowReserved {
                on_hand: 10,
                reserved: 4
            })
        );
    }

    #[test]
    fn an_alert_is_raised_once_and_cleared_when_stock_is_back() {
        let b = balance(10, 0, Some(5), false);
        let step = alert_step(&b, 10, 5);
        assert_eq!(
            step,
            AlertStep::Raise {
                available: 5,
                threshold: 5
            }
        );
        assert!(step.open_after());
        let open = balance(10, 5, Some(5), true);
        assert_eq!(alert_step(&open, 10, 6), AlertStep::Keep { open: true });
        let cleared = alert_step(&open, 10, 4);
        assert!(!cleared.open_after());
        assert!(
            cleared
                .event(
                    ProductId::parse(1).expect("an id"),
                    w(1),
                    UnixMillis::from_millis(1)
                )
                .is_some()
        );
        let none = balance(10, 0, None, false);
        assert_eq!(alert_step(&none, 0, 0), AlertStep::Keep { open: false });
    }
}
