//! Background jobs. Each skips missed ticks instead of bunching them, logs what it did, and
//! stops when the server stops.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use allot_domain::event::{
    ACTOR_COUPON_PURGE, ACTOR_PROMOTION_HOLD_EXPIRY, ACTOR_RESERVATION_EXPIRY, ACTOR_SALE_OPENER,
    Origin,
};

use crate::config::Config;
use crate::service::Services;

pub(crate) struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Jobs {
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub(crate) fn start(services: &Services, config: &Config) -> Jobs {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(every) = config.coupon_purge_interval {
        let coupons = services.coupons.clone();
        let store = services.store.clone();
        let clock = services.clock.clone();
        // With several instances each ticks, and the one whose claim succeeds runs the purge:
        // once per interval in all, and on while any instance is up. Claims are spaced at 90% of
        // the interval, since instances' ticks are not aligned.
        let spacing_ms = every.as_millis() as i64 * 9 / 10;
        let job = every_interval(every, stopped, move || {
            let (coupons, store, clock) = (coupons.clone(), store.clone(), clock.clone());
            async move {
                match store
                    .claim_job_run("coupon_purge", clock.now(), spacing_ms)
                    .await
                {
                    Ok(true) => {
                        if let Err(e) = coupons.purge("job").await {
                            tracing::warn!(error = %e, "coupon purge job failed; next try at the next tick");
                        }
                    }
                    Ok(false) => tracing::debug!("coupon purge ran on another instance"),
                    Err(e) => {
                        tracing::warn!(error = %e, "coupon purge job could not claim its run")
                    }
                }
            }
        });
        tasks.push(spawn_as(ACTOR_COUPON_PURGE, job));
    }
    if let Some(every) = config.reservation_expiry_interval {
        let inventory = services.inventory.clone();
        // Every instance runs it: each batch takes only reservations no one else holds
        // (SKIP LOCKED on PostgreSQL; the single writer on SQLite), so runs that overlap
        // split the work instead of doubling it.
        let job = every_interval(every, stop.subscribe(), move || {
            let inventory = inventory.clone();
            async move {
                if let Err(e) = inventory.expire_due().await {
                    tracing::warn!(error = %e, "reservation expiry failed; next try at the next tick");
                }
            }
        });
        tasks.push(spawn_as(ACTOR_RESERVATION_EXPIRY, job));
    }
    if let Some(every) = config.promotion_hold_expiry_interval {
        let promotions = services.promotions.clone();
        // Every instance runs it, as the reservation expiry: a hold is expired by one
        // transaction that finds it still held, so overlapping runs give back each hold once.
        let job = every_interval(every, stop.subscribe(), move || {
            let promotions = promotions.clone();
            async move {
                if let Err(e) = promotions.expire_due().await {
                    tracing::warn!(error = %e, "promotion hold expiry failed; next try at the next tick");
                }
            }
        });
        tasks.push(spawn_as(ACTOR_PROMOTION_HOLD_EXPIRY, job));
    }
    {
        // Idempotency keys are answers kept for retries; a day is plenty. Every instance may
        // run it: deleting what another instance deleted is harmless.
        let (store, clock) = (services.store.clone(), services.clock.clone());
        let keep_ms = crate::service::IDEMPOTENCY_KEYS_KEEP_FOR.as_millis() as i64;
        tasks.push(tokio::spawn(every_interval(
            Duration::from_secs(600),
            stop.subscribe(),
            move || {
                let (store, clock) = (store.clone(), clock.clone());
                async move {
                    let before = clock.now().plus_millis(-keep_ms);
                    if let Err(e) = store.purge_idempotency_keys(before).await {
                        tracing::warn!(error = %e, "idempotency key purge failed; next try at the next tick");
                    }
                }
            },
        )));
    }
    if services.sales.settings().items.is_some() {
        let sales = services.sales.clone();
        let mut stopped = stop.subscribe();
        tasks.push(spawn_as(ACTOR_SALE_OPENER, async move {
            loop {
                // Opens the sale of the current hour: at start, then on each hour.
                if let Err(e) = sales.current().await {
                    tracing::warn!(error = %e, "opening the flash sale failed; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // Wake at the hour; never sleep longer than a minute, so a clock that jumps is
                // followed soon.
                let wait = sales.millis_to_next_sale().clamp(1, 60_000) as u64;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = stopped.changed() => return,
                }
            }
        }));
    }
    // Webhook delivery: every instance runs a worker; leases keep one per endpoint.
    if let Some(worker) = crate::webhook_worker::start(
        services.store.clone(),
        config.webhooks.clone(),
        stop.subscribe(),
    ) {
        tasks.push(worker);
    }
    Jobs { stop, tasks }
}

/// Spawns a job whose writes are recorded as made by `actor` (a `system:` name).
fn spawn_as(
    actor: &'static str,
    job: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(crate::caller::within(Origin::system(actor), job))
}

async fn every_interval<F, Fut>(every: Duration, mut stopped: watch::Receiver<bool>, job: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticks.tick() => job().await,
            _ = stopped.changed() => return,
        }
    }
}
