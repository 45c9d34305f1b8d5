//! What the write path last learned about storage. A write that fails for a storage fault
//! (a full disk, the database unreachable) sets it; the next write that commits clears it.
//! `/ready` reads it, so a node that cannot write leaves the load balancer's rotation while
//! its reads still answer, and comes back by itself.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::Fault;

/// The flag: no fault, or the last fault seen.
#[derive(Debug, Default)]
pub struct WriteHealth {
    fault: AtomicU8,
}

impl WriteHealth {
    /// The storage fault that made the last write fail, unless a write committed since.
    pub fn fault(&self) -> Option<Fault> {
        Fault::from_u8(self.fault.load(Ordering::Relaxed))
    }

    pub(crate) fn failed(&self, fault: Fault) {
        if self.fault.swap(fault.to_u8(), Ordering::Relaxed) == 0 {
            tracing::warn!(reason = fault.reason(), "writes are failing");
        }
    }

    pub(crate) fn committed(&self) {
        if let Some(fault) = Fault::from_u8(self.fault.swap(0, Ordering::Relaxed)) {
            tracing::info!(was = fault.reason(), "writes commit again");
        }
    }

    /// Records the outcome of a write: a fault sets the flag, a success clears it; other
    /// errors (a constraint, a bug) say nothing about storage.
    pub(crate) fn observe<T>(&self, outcome: &Result<T, crate::StorageError>) {
        match outcome {
            Ok(_) => self.committed(),
            Err(e) => {
                if let Some(fault) = e.fault() {
                    self.failed(fault);
                }
            }
        }
    }
}
