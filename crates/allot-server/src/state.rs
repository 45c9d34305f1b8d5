//! What every handler of the REST API and the console reads: the services, and the
//! process's metrics, shutdown signal and per-client limits. Apart from both transports so that
//! neither depends on the other for it.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::service::Services;

/// One `Arc`: axum clones a handler's state for every request, and a clone of the parts
/// themselves (some twenty `Arc`s, each an atomic increment and later a decrement on a cache
/// line both cores touch) was 7% of the server's CPU on a coupon allocation (profiled,
/// docs/PERFORMANCE.md "Where the CPU goes").
#[derive(Clone)]
pub(crate) struct AppState(Arc<AppParts>);

impl AppState {
    pub(crate) fn new(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

pub(crate) struct AppParts {
    pub services: Services,
    pub metrics: PrometheusHandle,
    /// Becomes true when shutdown starts, so that event streams end instead of holding the
    /// graceful shutdown for its whole grace period.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Per-client limits of sign-in and code use.
    pub rate_limits: std::sync::Arc<crate::rate_limit::RateLimits>,
    /// Stripe's webhook settings, when configured.
    pub stripe: Option<std::sync::Arc<crate::config::StripeSettings>>,
}
