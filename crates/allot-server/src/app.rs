//! Building and running the server: one listener for gRPC, Connect and REST.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use allot_domain::Clock;
use allot_storage::{SqliteOptions, SqliteStore, StorageError, Store};
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::service::Services;
use crate::{connect, grpc, http, metrics};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("opening storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Redis(#[from] crate::shared_redis::RedisSetupError),
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// A built server: storage open and migrated, port bound. `run_until_stopped` serves it.
pub struct Application {
    /// The one-time link that creates the first admin, while none exists.
    setup_url: Option<String>,
    listener: TcpListener,
    local_addr: SocketAddr,
    /// `Some`: the port speaks TLS with these (reloadable) certificates, through this acceptor.
    tls: Option<(Arc<crate::tls::ReloadingCert>, tokio_rustls::TlsAcceptor)>,
    /// The cleartext listener for probes, if configured.
    probes: Option<TcpListener>,
    router: Router,
    services: Services,
    config: Config,
    /// Raised when shutdown starts: long-lived responses (event streams) end on it.
    stopping: tokio::sync::watch::Sender<bool>,
    rate_limits: Arc<crate::rate_limit::RateLimits>,
}

/// The store `config` names: PostgreSQL when a database URL is given, else the embedded SQLite
/// in the data directory (created and migrated on first use). Also for the admin commands.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, AppError> {
    Ok(match &config.database {
        Some(url) => {
            // Instances share the database, so they must share the key: no key, no start.
            let key = config.data_key.as_ref().ok_or_else(|| {
                StorageError::DataKey(
                    "a data key is required with a database URL (every instance must use the \
                     same one): set data_key, --data-key or ALLOT_DATA_KEY to the base64 of 32 \
                     random bytes (`allot admin gen-key`)"
                        .to_owned(),
                )
            })?;
            let target = allot_storage::postgres::PgTarget::parse(url, &config.postgres_tls)?
                .with_timeouts(config.postgres_timeouts);
            Arc::new(allot_storage::postgres::PgStore::open_target(&target, key).await?)
        }
        None => {
            let mut options = SqliteOptions::new(&config.data_dir);
            options.data_key = config.data_key.clone();
            options.size_max_mb = config.sqlite_size_max_mb;
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(options))
                .await
                .map_err(|e| AppError::Serve(std::io::Error::other(e)))??;
            Arc::new(store)
        }
    })
}

impl Application {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, AppError> {
        // Instances share the database, so they must share the signing secret, or each
        // refuses the others' tokens: no secret, no start (like the data key).
        if config.database.is_some() && config.auth.jwt_secret.is_none() {
            return Err(AppError::Config(
                "a JWT secret is required with a database URL (every instance must sign and \
                 check tokens with the same one): set jwt_secret, --jwt-secret or \
                 ALLOT_JWT_SECRET to at least 32 random bytes"
                    .to_owned(),
            ));
        }
        let store = open_store(&config).await?;
        Self::build_with_store(config, store, clock).await
    }

    pub async fn build_with_store(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AppError> {
        // Outbound TLS settings are checked before anything starts: a CA file that cannot be
        // read stops the start instead of failing every delivery later.
        crate::webhook_worker::http_client(&config.webhooks).map_err(AppError::Config)?;
        crate::notifier::check_settings(&config.notifications).map_err(AppError::Config)?;
        crate::notify_gateway::Gateway::from_settings(&config.notifications, &config.webhooks)
            .map_err(AppError::Config)?;
        let redis = match &config.redis_url {
            Some(url) => Some(crate::shared_redis::connect(url, &config.redis_tls).await?),
            None => None,
        };
        let services = Services::new(
            store,
            clock,
            config.megadeal,
            config.sales,
            redis,
            crate::service::order::OrderSettings {
                discount_code_percent: config.discount_code_percent,
                return_coupons: config.cancelled_orders_return_coupons,
            },
            &config.auth,
        )
        .with_notifications(&config.notifications)
        .with_webhooks(&config.webhooks)
        .with_accounts(&config.accounts);
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        let rate_limits = Arc::new(crate::rate_limit::RateLimits::new(
            config.rate_limits.clone(),
        ));
        let state = http::AppState::new(crate::state::AppParts {
            services: services.clone(),
            metrics: metrics::handle(),
            stopping: stopping_rx,
            rate_limits: rate_limits.clone(),
            stripe: config.stripe.clone().map(std::sync::Arc::new),
        });
        let rate_limits_handle = rate_limits.clone();
        announce_open_contracts(&config.auth);
        let router = http::router(state)
            .merge(grpc::routes(&services))
            // Replaces tonic's fallback, which answers every unknown path as gRPC with HTTP 200.
            .fallback(http::fallback)
            .layer(axum::middleware::from_fn_with_state(
                std::sync::Arc::new(services.clone()),
                connect::dispatch,
            ))
            // Who and from where (events' actor and source) and the code-use rate limit, for
            // every transport; inside authorization, which proves who.
            .layer(axum::middleware::from_fn_with_state(
                http::context::ContextState {
                    trust_forwarded_for: config.trust_forwarded_for,
                    rate_limits,
                },
                http::context::layer,
            ))
            // Authorization, outside every other layer of the router (Connect's included), so
            // each of them sees the caller (`caller::AuthUser`) in the request extensions.
            .layer(axum::middleware::from_fn_with_state(
                http::auth::Gate {
                    auth: services.auth.clone(),
                    open_public_contracts: config.auth.open_public_contracts,
                    open_admin_contracts_from: config.auth.open_admin_contracts_from.clone().into(),
                    trust_forwarded_for: config.trust_forwarded_for,
                },
                http::auth::authorize,
            ));
        let router = http::observe(router, config.connections.request_timeout);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(AppError::Serve)?;
        // Certificates before the port is announced: a pair that does not load stops the start.
        let tls = match &config.tls {
            Some(settings) => {
                let certs = crate::tls::ReloadingCert::load(settings.clone())?;
                let acceptor = crate::tls::acceptor(certs.clone())?;
                Some((certs, acceptor))
            }
            None => None,
        };
        let probes = match config.plain_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| AppError::Bind { addr, source })?,
            ),
            None => None,
        };
        services
            .accounts
            .set_bound_address(local_addr, config.tls.is_some());
        let setup_url = first_admin(&services, config.bootstrap_admin.clone()).await?;
        Ok(Application {
            setup_url,
            listener,
            local_addr,
            tls,
            probes,
            router,
            services,
            config,
            stopping,
            rate_limits: rate_limits_handle,
        })
    }

    /// The setup link printed at start (`<public url>/setup?token=...`), if no admin existed
    /// when the server was built.
    pub fn setup_url(&self) -> Option<String> {
        self.setup_url.clone()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The probe listener's bound address, if one is configured.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probes.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The certificate the port serves, when it speaks TLS (tests look at reloads with it).
    pub fn tls_certificates(&self) -> Option<Arc<crate::tls::ReloadingCert>> {
        self.tls.as_ref().map(|(certs, _)| certs.clone())
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The rate limiters (their sizes, for tests and tools).
    pub fn rate_limits(&self) -> Arc<crate::rate_limit::RateLimits> {
        self.rate_limits.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to the configured grace period) and closes storage, which commits and flushes every
    /// accepted write.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let grace = self.config.shutdown_grace;
        let jobs = crate::jobs::start(&self.services, &self.config);
        let notifier =
            crate::notifier::start(self.services.notifications.clone(), &self.config.webhooks);
        let stopping_tx = self.stopping;
        let stopping_rx = stopping_tx.subscribe();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = stopping_tx.send(true);
        };
        let sweeper = tokio::spawn(sweep_rate_limits(self.rate_limits.clone()));
        let acceptor = self.tls.map(|(certs, acceptor)| {
            tokio::spawn(crate::tls::watch(certs, stopping_rx.clone()));
            acceptor
        });
        let probes = self.probes.map(|listener| {
            let mut stopped = stopping_rx.clone();
            crate::serve::serve(
                listener,
                probe_router(self.router.clone()),
                self.config.connections,
                None,
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )
        });
        let main = crate::serve::serve(
            self.listener,
            self.router,
            self.config.connections,
            acceptor,
            signal,
        );
        let serve = async move {
            match probes {
                Some(probes) => {
                    tokio::join!(main, probes);
                }
                None => main.await,
            }
        };
        let mut stopping = stopping_rx;
        // Past the grace period the serving future is dropped, which closes every connection.
        tokio::select! {
            () = serve => {}
            () = async {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; closing remaining connections");
            }
        }
        sweeper.abort();
        jobs.stop().await;
        notifier.stop().await;
        let closed = self.services.store.close().await;
        tracing::info!("storage closed");
        closed.map_err(AppError::Storage)
    }
}

/// Paths the cleartext probe listener answers; anything else is 404 there, so that nothing
/// but health and metrics ever travels in clear beside a TLS port.
const PROBE_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

fn probe_router(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            if PROBE_PATHS.contains(&request.uri().path()) {
                next.run(request).await
            } else {
                axum::response::IntoResponse::into_response((
                    axum::http::StatusCode::NOT_FOUND,
                    "not found: this listener answers only /health, /ready and /metrics\n",
                ))
            }
        },
    ))
}

/// The first admin: made from the bootstrap settings if given and no admin exists; else, while
/// no admin exists, a one-time setup link to make it in a browser (answered to print).
/// Calls served without a credential are said loudly at start, each time: an operator who
/// set them by mistake (or left them on) sees it in the first lines of the log.
fn announce_open_contracts(auth: &crate::service::auth::AuthSettings) {
    let calls = |which: fn(&crate::policy::Rule) -> bool| {
        crate::policy::RULES
            .iter()
            .filter(|r| which(r))
            .map(|r| r.path)
            .collect::<Vec<_>>()
            .join(" ")
    };
    if auth.open_public_contracts {
        tracing::warn!(
            calls = %calls(|r| r.open_contract),
            "OPEN PUBLIC CONTRACTS: the originals' customer-facing calls are served to anyone \
             without a credential (open_public_contracts)"
        );
    }
    if !auth.open_admin_contracts_from.is_empty() {
        let networks: Vec<String> = auth
            .open_admin_contracts_from
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::warn!(
            networks = %networks.join(","),
            calls = %calls(|r| r.admin_contract),
            "OPEN ADMIN CONTRACTS: the originals' admin calls are served as staff, without a \
             credential, to every caller from these networks (open_admin_contracts_from)"
        );
    }
}

async fn first_admin(
    services: &Services,
    bootstrap: Option<(allot_domain::auth::Email, allot_domain::auth::Password)>,
) -> Result<Option<String>, AppError> {
    let accounts = &services.accounts;
    let failed = |e: crate::ServiceError| AppError::Config(format!("first admin: {e}"));
    if let Some((email, password)) = bootstrap
        && let Some(user) = accounts
            .bootstrap_admin(email, password)
            .await
            .map_err(failed)?
    {
        tracing::info!(user = user.id.get(), "bootstrap admin created");
    }
    accounts.open_setup().await.map_err(failed)
}

/// Drops idle clients from the rate limiters every [`SWEEP_INTERVAL_MS`], so that their
/// memory follows the clients active now rather than every client ever seen.
///
/// [`SWEEP_INTERVAL_MS`]: crate::rate_limit::SWEEP_INTERVAL_MS
async fn sweep_rate_limits(limits: Arc<crate::rate_limit::RateLimits>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(
        crate::rate_limit::SWEEP_INTERVAL_MS,
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let limits = limits.clone();
        // A sweep walks every entry: off the async workers.
        let _ = tokio::task::spawn_blocking(move || limits.sweep()).await;
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
