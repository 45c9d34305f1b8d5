//! Use cases, one module per capability. Nothing here knows which transport called it.

pub mod campaign;
pub mod discount;

use std::sync::Arc;

use allot_domain::Clock;
use allot_storage::Store;

pub use campaign::Campaigns;
pub use discount::DiscountCodes;

/// Every capability's service, built once over one store and one clock.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub discount: Arc<DiscountCodes>,
    pub campaigns: Arc<Campaigns>,
}

impl Services {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Services {
            discount: Arc::new(DiscountCodes::new(store.clone(), clock.clone())),
            campaigns: Arc::new(Campaigns::new(store.clone(), clock.clone())),
            store,
            clock,
        }
    }
}
