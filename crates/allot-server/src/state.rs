//! What every handler of the REST API and the console reads: the services, and the
//! process's metrics, shutdown signal and per-client limits. Apart from both transports so that
//! neither depends on the other for it.

use metrics_exporter_prometheus::PrometheusHandle;

use crate::service::Services;

#[derive(Clone)]
pub(crate) struct AppState {
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
