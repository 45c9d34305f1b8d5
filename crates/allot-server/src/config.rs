//! Configuration of `allot serve`: flags, then `ALLOT_*` environment variables, then an
//! optional TOML file, then defaults, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use serde::Deserialize;

use allot_domain::sale::ItemsPerSale;
use allot_storage::crypto::DataKey;
use allot_storage::tls::ClientIdentity;

use crate::rate_limit::RateLimitSettings;
pub use crate::secret::Secret;
use crate::serve::ConnectionLimits;
use crate::service::accounts::AccountSettings;
use crate::service::admission::AdmissionLimits;
pub use crate::service::auth::{
    AuthSettings, DEFAULT_ACCESS_TOKEN_TTL_SECS, DEFAULT_REFRESH_FAMILY_TTL_SECS,
    DEFAULT_REFRESH_TOKEN_TTL_SECS,
};
use crate::service::notification::{NotificationSettings, SmtpTls};
use crate::service::sale::SaleSettings;
use crate::tls::TlsSettings;
use crate::webhook_worker::WebhookSettings;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./allot-data";
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
pub const DEFAULT_PURGE_INTERVAL_SECS: u64 = 3_600;
pub const DEFAULT_RESERVATION_EXPIRY_INTERVAL_MS: u64 = 2_000;
pub const DEFAULT_PROMOTION_HOLD_EXPIRY_INTERVAL_MS: u64 = 2_000;
pub const DEFAULT_DISCOUNT_CODE_PERCENT: u8 = 10;
pub use crate::service::accounts::DEFAULT_PUBLIC_URL;
/// The shortest JWT signing secret accepted, in bytes.
pub const JWT_SECRET_MIN_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `allot serve` options. Every flag has an environment variable; a value given as a flag wins
/// over the variable, which wins over the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address for gRPC, Connect and REST, all on one port [default: 127.0.0.1:8080]
    #[arg(long, env = "ALLOT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// PostgreSQL URL (postgres://user@host:port/db) to run on instead of the embedded SQLite
    /// database; several instances may share it. Migrations are applied at start, once
    #[arg(long, env = "ALLOT_DATABASE_URL", value_name = "URL")]
    pub database: Option<String>,

    /// Redis URL (redis://host:port/) shared by several instances: the MEGADEAL admission
    /// limits and tickets are then kept there and hold across all instances. Without it they
    /// are kept in this process (one instance)
    #[arg(long, env = "ALLOT_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// CA certificate (PEM) trusted for PostgreSQL's certificate, besides the system's roots;
    /// with it, sslmode=prefer and require check the chain too (as libpq given a root
    /// certificate). The URL's sslrootcert wins over it
    #[arg(long, env = "ALLOT_POSTGRES_CA_FILE", value_name = "FILE")]
    pub postgres_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) presented to PostgreSQL, with --postgres-client-key. The
    /// URL's sslcert/sslkey win over them
    #[arg(long, env = "ALLOT_POSTGRES_CLIENT_CERT", value_name = "FILE")]
    pub postgres_client_cert: Option<PathBuf>,

    /// The key (PEM) of --postgres-client-cert
    #[arg(long, env = "ALLOT_POSTGRES_CLIENT_KEY", value_name = "FILE")]
    pub postgres_client_key: Option<PathBuf>,

    /// Longest opening a PostgreSQL connection may take (TCP, TLS and startup), reconnects
    /// included, in milliseconds [default: 5000]
    #[arg(long, env = "ALLOT_POSTGRES_CONNECT_TIMEOUT_MS", value_name = "MS")]
    pub postgres_connect_timeout_ms: Option<u64>,

    /// Longest a PostgreSQL connection may wait for any answer to a request sent before it is
    /// dropped (and replaced on next use), in milliseconds; 0 turns it off [default: 45000]
    #[arg(long, env = "ALLOT_POSTGRES_ANSWER_TIMEOUT_MS", value_name = "MS")]
    pub postgres_answer_timeout_ms: Option<u64>,

    /// PostgreSQL's statement_timeout on the store's connections (not on migrations), in
    /// milliseconds; 0 leaves the database's own [default: 30000]
    #[arg(long, env = "ALLOT_POSTGRES_STATEMENT_TIMEOUT_MS", value_name = "MS")]
    pub postgres_statement_timeout_ms: Option<u64>,

    /// PostgreSQL's lock_timeout on the store's connections (not on migrations), in
    /// milliseconds; 0 leaves the database's own [default: 20000]
    #[arg(long, env = "ALLOT_POSTGRES_LOCK_TIMEOUT_MS", value_name = "MS")]
    pub postgres_lock_timeout_ms: Option<u64>,

    /// PostgreSQL's idle_in_transaction_session_timeout on the store's connections (not on
    /// migrations), in milliseconds; 0 leaves the database's own [default: 30000]
    #[arg(
        long,
        env = "ALLOT_POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        value_name = "MS"
    )]
    pub postgres_idle_in_transaction_timeout_ms: Option<u64>,

    /// TCP_USER_TIMEOUT of PostgreSQL connections (Linux): longest data sent may stay
    /// unacknowledged, in milliseconds; 0 leaves the system's [default: 30000]
    #[arg(long, env = "ALLOT_POSTGRES_TCP_USER_TIMEOUT_MS", value_name = "MS")]
    pub postgres_tcp_user_timeout_ms: Option<u64>,

    /// CA certificate (PEM) trusted for Redis's certificate (rediss:// URLs), besides the
    /// system's roots
    #[arg(long, env = "ALLOT_REDIS_CA_FILE", value_name = "FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) presented to Redis (rediss://), with --redis-client-key
    #[arg(long, env = "ALLOT_REDIS_CLIENT_CERT", value_name = "FILE")]
    pub redis_client_cert: Option<PathBuf>,

    /// The key (PEM) of --redis-client-cert
    #[arg(long, env = "ALLOT_REDIS_CLIENT_KEY", value_name = "FILE")]
    pub redis_client_key: Option<PathBuf>,

    /// Directory of the embedded SQLite database, created on first start
    /// [default: ./allot-data]
    #[arg(long, env = "ALLOT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Key that seals personal data at rest (emails, shipping addresses): base64 of 32 random
    /// bytes (`allot admin gen-key`). Required with --database (every instance shares it);
    /// without it the embedded database generates one into DATA_DIR/data.key, with a warning
    #[arg(
        long,
        env = "ALLOT_DATA_KEY",
        value_name = "BASE64",
        hide_env_values = true
    )]
    pub data_key: Option<Secret>,

    /// Log line format [default: pretty]
    #[arg(long, env = "ALLOT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter, in `tracing` EnvFilter syntax, e.g. `info` or `warn,allot=debug`
    /// [default: info]
    #[arg(long, env = "ALLOT_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// How long shutdown waits for in-flight requests before closing them, in milliseconds
    /// [default: 10000]
    #[arg(long, env = "ALLOT_SHUTDOWN_GRACE_MS", value_name = "MS")]
    pub shutdown_grace_ms: Option<u64>,

    /// Seconds between purges of unused expired coupons; 0 turns the job off [default: 3600]
    #[arg(long, env = "ALLOT_COUPON_PURGE_INTERVAL_SECS", value_name = "SECS")]
    pub coupon_purge_interval_secs: Option<u64>,

    /// Milliseconds between runs of the job that releases stock reservations past their
    /// lifetime; 0 turns the job off [default: 2000]
    #[arg(long, env = "ALLOT_RESERVATION_EXPIRY_INTERVAL_MS", value_name = "MS")]
    pub reservation_expiry_interval_ms: Option<u64>,

    /// Milliseconds between runs of the job that gives back promotion holds past their time;
    /// 0 turns the job off [default: 2000]
    #[arg(
        long,
        env = "ALLOT_PROMOTION_HOLD_EXPIRY_INTERVAL_MS",
        value_name = "MS"
    )]
    pub promotion_hold_expiry_interval_ms: Option<u64>,

    /// Percentage a discount code takes off an order's total, 0 to 100 [default: 10]
    #[arg(long, env = "ALLOT_DISCOUNT_CODE_PERCENT", value_name = "PERCENT")]
    pub discount_code_percent: Option<u8>,

    /// Whether cancelling an order gives its coupon's use back (the coupon can be used again);
    /// its discount code, its promotion budget and its stock always come back [default: true]
    #[arg(
        long,
        env = "ALLOT_CANCELLED_ORDERS_RETURN_COUPONS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub cancelled_orders_return_coupons: Option<bool>,

    /// Largest size of the embedded (SQLite) database file, in MiB; writes that need more
    /// space are answered 503 storage_unavailable, as on a full disk; 0 or absent: no limit
    #[arg(long, env = "ALLOT_SQLITE_SIZE_MAX_MB", value_name = "MB")]
    pub sqlite_size_max_mb: Option<u64>,

    /// Delay before the first retry of a failed webhook delivery; each later retry doubles it,
    /// with jitter, up to --webhook-retry-max-ms [default: 1000]
    #[arg(long, env = "ALLOT_WEBHOOK_RETRY_BASE_MS", value_name = "MS")]
    pub webhook_retry_base_ms: Option<u64>,

    /// Longest delay between two attempts at a webhook delivery [default: 600000]
    #[arg(long, env = "ALLOT_WEBHOOK_RETRY_MAX_MS", value_name = "MS")]
    pub webhook_retry_max_ms: Option<u64>,

    /// How long one webhook request may take before it counts as failed [default: 10000]
    #[arg(long, env = "ALLOT_WEBHOOK_TIMEOUT_MS", value_name = "MS")]
    pub webhook_timeout_ms: Option<u64>,

    /// How often the webhook worker looks for endpoints with events to deliver; 0 turns
    /// delivery off on this instance [default: 500]
    #[arg(long, env = "ALLOT_WEBHOOK_POLL_INTERVAL_MS", value_name = "MS")]
    pub webhook_poll_interval_ms: Option<u64>,

    /// Hours the webhook delivery log keeps settled attempts [default: 168]
    #[arg(long, env = "ALLOT_WEBHOOK_RETENTION_HOURS", value_name = "HOURS")]
    pub webhook_retention_hours: Option<u64>,

    /// PEM file of CA certificates trusted for https webhook receivers besides the system's
    /// trust store (receivers with a private CA)
    #[arg(long, env = "ALLOT_WEBHOOK_CA_FILE", value_name = "FILE")]
    pub webhook_ca_file: Option<PathBuf>,

    /// Accept plain http:// webhook endpoints and deliver to them (payloads carry personal
    /// data: only for receivers on a trusted network). Without it http:// is refused at
    /// registration and existing http endpoints are not delivered to [default: false]
    #[arg(
        long,
        env = "ALLOT_WEBHOOK_ALLOW_HTTP",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub webhook_allow_http: Option<bool>,

    /// The signing secret of a Stripe webhook endpoint (whsec_...): with it, Stripe's events
    /// POSTed to /api/v1/payments/stripe record payments and refunds of orders; without it the
    /// route answers 404
    #[arg(
        long,
        env = "ALLOT_STRIPE_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Option<Secret>,

    /// How old a Stripe event's signed timestamp may be, in seconds, before it is refused as a
    /// replay [default: 300]
    #[arg(long, env = "ALLOT_STRIPE_TOLERANCE_SECS", value_name = "SECS")]
    pub stripe_tolerance_secs: Option<u64>,

    /// MEGADEAL requests served at the same time, at most [default: 5]
    #[arg(long, env = "ALLOT_MEGADEAL_IN_FLIGHT_MAX", value_name = "N")]
    pub megadeal_in_flight_max: Option<usize>,

    /// MEGADEAL requests admitted in any one-second window, at most [default: 10]
    #[arg(long, env = "ALLOT_MEGADEAL_PER_SECOND_MAX", value_name = "N")]
    pub megadeal_per_second_max: Option<usize>,

    /// Longest a MEGADEAL request waits before it is refused with megadeal_busy, in
    /// milliseconds [default: 10000]
    #[arg(long, env = "ALLOT_MEGADEAL_WAIT_MAX_MS", value_name = "MS")]
    pub megadeal_wait_max_ms: Option<u64>,

    /// Items in each hourly flash sale; 0 turns flash sales off [default: 10000]
    #[arg(long, env = "ALLOT_SALE_ITEMS", value_name = "N")]
    pub sale_items: Option<u32>,

    /// Most items one user may buy in one flash sale [default: 10]
    #[arg(long, env = "ALLOT_SALE_USER_LIMIT", value_name = "N")]
    pub sale_user_limit: Option<u32>,

    /// Secret that signs access tokens (HS256), at least 32 bytes. Without it a random one is
    /// made at start: tokens then do not survive a restart and are not shared across instances
    #[arg(
        long,
        env = "ALLOT_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of access tokens, in seconds [default: 900]
    #[arg(long, env = "ALLOT_ACCESS_TOKEN_TTL_SECS", value_name = "SECS")]
    pub access_token_ttl_secs: Option<u64>,

    /// Lifetime of refresh tokens, in seconds [default: 2592000, 30 days]
    #[arg(long, env = "ALLOT_REFRESH_TOKEN_TTL_SECS", value_name = "SECS")]
    pub refresh_token_ttl_secs: Option<u64>,

    /// How long a sign-in lasts however often it is refreshed, in seconds: a refresh token
    /// family stops rotating this long after the sign-in that started it
    /// [default: 7776000, 90 days]
    #[arg(long, env = "ALLOT_REFRESH_FAMILY_TTL_SECS", value_name = "SECS")]
    pub refresh_family_ttl_secs: Option<u64>,

    /// Serve the customer-facing calls of the original public contracts (discount-code
    /// UseCode, campaign IssueCoupon and GetCampaign, the coupon system's request-new,
    /// request-status, redeem and validate, flash-sale items, checkout and purchase) without a
    /// credential as well, for clients built before sign-in [default: false]
    #[arg(
        long,
        env = "ALLOT_OPEN_PUBLIC_CONTRACTS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub open_public_contracts: Option<bool>,

    /// Serve the originals' admin calls (discount-code Generate, campaign CreateCampaign and
    /// GetCampaign with every code, the coupon system's /upload) without a credential to
    /// callers from these networks, as the originals were deployed: a comma-separated list of
    /// CIDR networks or addresses, e.g. 10.0.0.0/8,127.0.0.1 [default: none]
    #[arg(
        long,
        env = "ALLOT_OPEN_ADMIN_CONTRACTS_FROM",
        value_name = "CIDR[,CIDR...]"
    )]
    pub open_admin_contracts_from: Option<String>,

    /// The server sits behind a proxy: take the client's address from the last entry of
    /// X-Forwarded-For instead of the peer address (events' `source`, rate limits)
    /// [default: false]
    #[arg(
        long,
        env = "ALLOT_TRUST_FORWARDED_FOR",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub trust_forwarded_for: Option<bool>,

    /// The base URL users reach the server at, e.g. https://shop.example/allot: the setup
    /// link printed at start and the links in emails start with it
    /// [default: http://<listen address>, or https:// with --tls-cert]
    #[arg(long, env = "ALLOT_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Let anyone sign up as a customer (POST /api/v1/auth/signup), verified by a link
    /// emailed to them [default: false]
    #[arg(
        long,
        env = "ALLOT_ALLOW_SIGNUP",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub allow_signup: Option<bool>,

    /// With ALLOT_BOOTSTRAP_ADMIN_PASSWORD: create this admin at start when no admin exists
    /// (for automation; no setup link is printed then)
    #[arg(long, env = "ALLOT_BOOTSTRAP_ADMIN_EMAIL", value_name = "EMAIL")]
    pub bootstrap_admin_email: Option<String>,

    /// The bootstrap admin's password (12 to 256 characters)
    #[arg(
        long,
        env = "ALLOT_BOOTSTRAP_ADMIN_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub bootstrap_admin_password: Option<Secret>,

    /// Sign-up, password-reset and verification emails asked for per email address per hour,
    /// and per client IP address ten times that; 0 turns the limit off [default: 3]
    #[arg(long, env = "ALLOT_ACCOUNT_EMAIL_RATE_PER_HOUR", value_name = "N")]
    pub account_email_rate_per_hour: Option<u32>,

    /// Sign-in attempts per client IP address per minute; 0 turns the limit off [default: 10]
    #[arg(long, env = "ALLOT_LOGIN_RATE_PER_IP_PER_MIN", value_name = "N")]
    pub login_rate_per_ip_per_min: Option<u32>,

    /// Sign-in attempts per email from one client IP address per minute; 0 turns the limit
    /// off [default: 5]
    #[arg(
        long,
        env = "ALLOT_LOGIN_RATE_PER_EMAIL_PER_IP_PER_MIN",
        value_name = "N"
    )]
    pub login_rate_per_email_per_ip_per_min: Option<u32>,

    /// Sign-in attempts per email from all addresses together per minute, looser than the
    /// per-address limit so that no one can lock an account out from one place; 0 turns the
    /// limit off [default: 60]
    #[arg(long, env = "ALLOT_LOGIN_RATE_PER_EMAIL_PER_MIN", value_name = "N")]
    pub login_rate_per_email_per_min: Option<u32>,

    /// Code uses (discount-code use, coupon validate and redeem, flash-sale purchase, orders
    /// with a code, anonymous campaign issues) per customer or anonymous address per second;
    /// 0 turns the limit off [default: 20]
    #[arg(long, env = "ALLOT_CODE_USE_RATE_PER_SEC", value_name = "N")]
    pub code_use_rate_per_sec: Option<u32>,

    /// Code uses a client may make at once before the per-second rate applies [default: 40]
    #[arg(long, env = "ALLOT_CODE_USE_BURST", value_name = "N")]
    pub code_use_burst: Option<u32>,

    /// API keys (by id, comma separated) whose code uses are limited like a customer's; staff
    /// and other API keys are not limited [default: none]
    #[arg(
        long,
        env = "ALLOT_CODE_USE_LIMITED_API_KEYS",
        value_name = "IDS",
        value_delimiter = ','
    )]
    pub code_use_limited_api_keys: Option<Vec<i64>>,

    /// Password changes per user per minute; 0 turns the limit off [default: 5]
    #[arg(
        long,
        env = "ALLOT_PASSWORD_CHANGE_RATE_PER_USER_PER_MIN",
        value_name = "N"
    )]
    pub password_change_rate_per_user_per_min: Option<u32>,

    /// Longest a client may take to send a request's headers, and longest an HTTP/1
    /// connection may sit idle between requests, in milliseconds [default: 10000]
    #[arg(long, env = "ALLOT_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    pub header_read_timeout_ms: Option<u64>,

    /// Longest a request may take until its response starts (body reading included), in
    /// milliseconds; the event stream and gRPC calls with their own deadline are exempt
    /// [default: 30000]
    #[arg(long, env = "ALLOT_REQUEST_TIMEOUT_MS", value_name = "MS")]
    pub request_timeout_ms: Option<u64>,

    /// Connections served at once; more wait in the listen backlog until one closes
    /// [default: 10000]
    #[arg(long, env = "ALLOT_CONNECTIONS_MAX", value_name = "N")]
    pub connections_max: Option<usize>,

    /// Requests in flight on one HTTP/2 connection (gRPC calls, multiplexed REST)
    /// [default: 256]
    #[arg(long, env = "ALLOT_HTTP2_MAX_CONCURRENT_STREAMS", value_name = "N")]
    pub http2_max_concurrent_streams: Option<u32>,

    /// SMTP server for email notifications: smtp://[user:password@]host[:port] (STARTTLS,
    /// required) or smtps://... (implicit TLS, port 465 by default). Without it email
    /// notifications fail at once with the reason "email is not configured"
    #[arg(
        long,
        env = "ALLOT_SMTP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub smtp_url: Option<String>,

    /// The From address of email notifications [default: allot@localhost]
    #[arg(long, env = "ALLOT_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,

    /// TLS to the SMTP server: starttls (required before anything is sent), tls (implicit,
    /// SMTPS) or none (plain, for a relay on this host or a trusted network; refused with
    /// credentials in smtp_url) [default: starttls for smtp://, tls for smtps://]
    #[arg(long, env = "ALLOT_SMTP_TLS", value_name = "MODE")]
    pub smtp_tls: Option<SmtpTls>,

    /// PEM file of CA certificates trusted for the SMTP server besides the system's trust
    /// store (a relay with a private CA)
    #[arg(long, env = "ALLOT_SMTP_CA_FILE", value_name = "FILE")]
    pub smtp_ca_file: Option<PathBuf>,

    /// The shop's HTTP gateway for SMS and push notifications: each one is POSTed there as
    /// JSON, signed like webhooks. https only, unless webhook_allow_http is set; trusted as
    /// webhook receivers are (webhook_ca_file). Without it SMS and push notifications fail at
    /// once with the reason "the notification gateway is not configured"
    #[arg(long, env = "ALLOT_NOTIFICATION_GATEWAY_URL", value_name = "URL")]
    pub notification_gateway_url: Option<String>,

    /// The key of the gateway requests' Allot-Signature (HMAC-SHA256 of "<t>.<body>"), set
    /// with notification_gateway_url
    #[arg(
        long,
        env = "ALLOT_NOTIFICATION_GATEWAY_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub notification_gateway_secret: Option<Secret>,

    /// Certificate chain (PEM, leaf first) for TLS on the port; with --tls-key the port speaks
    /// TLS only (HTTP/2 and HTTP/1.1 by ALPN). Reloaded on SIGHUP and when the file changes
    #[arg(long, env = "ALLOT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert
    #[arg(long, env = "ALLOT_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// A second, cleartext listener answering only /health, /ready and /metrics (404 for
    /// anything else), for load balancer probes beside a TLS port. Never expose it
    #[arg(long, env = "ALLOT_PLAIN_LISTEN", value_name = "ADDR")]
    pub plain_listen: Option<SocketAddr>,

    /// Optional TOML file holding any of the settings above (same names, snake_case)
    #[arg(long, env = "ALLOT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The listener's certificate and key: both or neither, each a file that exists (its content
/// is checked when the server builds, with the file named).
fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<TlsSettings>, ConfigError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(cert), None) => {
            return Err(ConfigError::Invalid(format!(
                "tls_cert {} is set but tls_key is not: set both (--tls-cert and --tls-key) \
                 or neither",
                cert.display()
            )));
        }
        (None, Some(key)) => {
            return Err(ConfigError::Invalid(format!(
                "tls_key {} is set but tls_cert is not: set both (--tls-cert and --tls-key) \
                 or neither",
                key.display()
            )));
        }
    };
    for (name, path) in [("tls_cert", &cert), ("tls_key", &key)] {
        if !path.is_file() {
            return Err(ConfigError::Invalid(format!(
                "{name}: {} is not a readable file",
                path.display()
            )));
        }
    }
    Ok(Some(TlsSettings { cert, key }))
}

/// The settings of a config file. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database: Option<String>,
    redis_url: Option<String>,
    postgres_ca_file: Option<PathBuf>,
    postgres_client_cert: Option<PathBuf>,
    postgres_client_key: Option<PathBuf>,
    postgres_connect_timeout_ms: Option<u64>,
    postgres_answer_timeout_ms: Option<u64>,
    postgres_statement_timeout_ms: Option<u64>,
    postgres_lock_timeout_ms: Option<u64>,
    postgres_idle_in_transaction_timeout_ms: Option<u64>,
    postgres_tcp_user_timeout_ms: Option<u64>,
    redis_ca_file: Option<PathBuf>,
    redis_client_cert: Option<PathBuf>,
    redis_client_key: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    data_key: Option<Secret>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    shutdown_grace_ms: Option<u64>,
    coupon_purge_interval_secs: Option<u64>,
    reservation_expiry_interval_ms: Option<u64>,
    promotion_hold_expiry_interval_ms: Option<u64>,
    discount_code_percent: Option<u8>,
    cancelled_orders_return_coupons: Option<bool>,
    sqlite_size_max_mb: Option<u64>,
    webhook_retry_base_ms: Option<u64>,
    webhook_retry_max_ms: Option<u64>,
    webhook_timeout_ms: Option<u64>,
    webhook_poll_interval_ms: Option<u64>,
    webhook_retention_hours: Option<u64>,
    webhook_ca_file: Option<PathBuf>,
    webhook_allow_http: Option<bool>,
    stripe_webhook_secret: Option<Secret>,
    stripe_tolerance_secs: Option<u64>,
    megadeal_in_flight_max: Option<usize>,
    megadeal_per_second_max: Option<usize>,
    megadeal_wait_max_ms: Option<u64>,
    sale_items: Option<u32>,
    sale_user_limit: Option<u32>,
    jwt_secret: Option<Secret>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    refresh_family_ttl_secs: Option<u64>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    smtp_tls: Option<SmtpTls>,
    smtp_ca_file: Option<PathBuf>,
    notification_gateway_url: Option<String>,
    notification_gateway_secret: Option<Secret>,
    trust_forwarded_for: Option<bool>,
    open_public_contracts: Option<bool>,
    open_admin_contracts_from: Option<String>,
    public_url: Option<String>,
    allow_signup: Option<bool>,
    bootstrap_admin_email: Option<String>,
    bootstrap_admin_password: Option<Secret>,
    account_email_rate_per_hour: Option<u32>,
    login_rate_per_ip_per_min: Option<u32>,
    login_rate_per_email_per_ip_per_min: Option<u32>,
    login_rate_per_email_per_min: Option<u32>,
    code_use_rate_per_sec: Option<u32>,
    code_use_burst: Option<u32>,
    code_use_limited_api_keys: Option<Vec<i64>>,
    password_change_rate_per_user_per_min: Option<u32>,
    header_read_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    connections_max: Option<usize>,
    http2_max_concurrent_streams: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    plain_listen: Option<SocketAddr>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `Some`: run on this PostgreSQL database; `None`: the embedded SQLite one.
    pub database: Option<String>,
    /// `Some`: MEGADEAL admission and tickets on this Redis, shared by every instance;
    /// `None`: in this process.
    pub redis_url: Option<String>,
    /// The CA file and client certificate for PostgreSQL, where the URL does not name them.
    pub postgres_tls: allot_storage::postgres::PgTlsSettings,
    /// The timeouts of every PostgreSQL connection of the store.
    pub postgres_timeouts: allot_storage::postgres::PgTimeouts,
    /// The CA file and client certificate for a `rediss://` Redis.
    pub redis_tls: crate::shared_redis::RedisTlsSettings,
    pub data_dir: PathBuf,
    /// The key personal data is sealed under. `None`: refused with a database URL; the
    /// embedded database keeps a generated one in its data directory.
    pub data_key: Option<DataKey>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub shutdown_grace: Duration,
    /// `None`: the purge job is off.
    pub coupon_purge_interval: Option<Duration>,
    /// `None`: the reservation expiry job is off.
    pub reservation_expiry_interval: Option<Duration>,
    /// `None`: the promotion hold expiry job is off.
    pub promotion_hold_expiry_interval: Option<Duration>,
    /// Percentage a discount code takes off an order (0 to 100).
    pub discount_code_percent: u8,
    /// A cancelled order gives its coupon's use back.
    pub cancelled_orders_return_coupons: bool,
    /// The embedded database file's largest size, in MiB (`None`: as the disk allows).
    pub sqlite_size_max_mb: Option<u64>,
    pub webhooks: WebhookSettings,
    /// Stripe's webhook: its signing secret and tolerance (none: the route answers 404).
    pub stripe: Option<StripeSettings>,
    pub megadeal: AdmissionLimits,
    pub sales: SaleSettings,
    pub auth: AuthSettings,
    /// SMTP and the notification workers.
    pub notifications: NotificationSettings,
    /// True: the client's address is the last `X-Forwarded-For` entry (behind a proxy).
    pub trust_forwarded_for: bool,
    pub rate_limits: RateLimitSettings,
    /// Public URL and sign-up.
    pub accounts: AccountSettings,
    /// The admin to create at start when none exists: (email, password).
    pub bootstrap_admin: Option<(allot_domain::auth::Email, allot_domain::auth::Password)>,
    /// Timeouts and caps at the socket.
    pub connections: ConnectionLimits,
    /// `Some`: the port speaks TLS only, with this certificate and key.
    pub tls: Option<TlsSettings>,
    /// `Some`: a cleartext listener for probes only (`/health`, `/ready`, `/metrics`).
    pub plain_listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
}

impl Config {
    /// A configuration for tests and tools: an ephemeral port on loopback and the given data
    /// directory.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: None,
            redis_url: None,
            postgres_tls: Default::default(),
            postgres_timeouts: Default::default(),
            redis_tls: Default::default(),
            data_dir: data_dir.into(),
            data_key: None,
            log_format: LogFormat::Pretty,
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            shutdown_grace: Duration::from_millis(DEFAULT_SHUTDOWN_GRACE_MS),
            coupon_purge_interval: Some(Duration::from_secs(DEFAULT_PURGE_INTERVAL_SECS)),
            reservation_expiry_interval: Some(Duration::from_millis(
                DEFAULT_RESERVATION_EXPIRY_INTERVAL_MS,
            )),
            promotion_hold_expiry_interval: Some(Duration::from_millis(
                DEFAULT_PROMOTION_HOLD_EXPIRY_INTERVAL_MS,
            )),
            discount_code_percent: DEFAULT_DISCOUNT_CODE_PERCENT,
            cancelled_orders_return_coupons: true,
            sqlite_size_max_mb: None,
            webhooks: WebhookSettings::default(),
            stripe: None,
            megadeal: AdmissionLimits::default(),
            sales: SaleSettings::default(),
            auth: AuthSettings::default(),
            notifications: NotificationSettings::default(),
            trust_forwarded_for: false,
            rate_limits: RateLimitSettings::default(),
            accounts: AccountSettings::default(),
            bootstrap_admin: None,
            connections: ConnectionLimits::default(),
            tls: None,
            plain_listen: None,
        }
    }
}

impl ServeArgs {
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let jwt_secret = self.jwt_secret.or(file.jwt_secret);
        if let Some(secret) = &jwt_secret
            && secret.expose().len() < JWT_SECRET_MIN_BYTES
        {
            return Err(ConfigError::Invalid(format!(
                "jwt_secret: must be at least {JWT_SECRET_MIN_BYTES} bytes"
            )));
        }
        let ttl = |flag: Option<u64>, file: Option<u64>, default: u64, name: &str| match flag
            .or(file)
            .unwrap_or(default)
        {
            0 => Err(ConfigError::Invalid(format!("{name}: must be at least 1"))),
            secs => Ok(Duration::from_secs(secs)),
        };
        let auth = AuthSettings {
            jwt_secret,
            access_token_ttl: ttl(
                self.access_token_ttl_secs,
                file.access_token_ttl_secs,
                DEFAULT_ACCESS_TOKEN_TTL_SECS,
                "access_token_ttl_secs",
            )?,
            refresh_token_ttl: ttl(
                self.refresh_token_ttl_secs,
                file.refresh_token_ttl_secs,
                DEFAULT_REFRESH_TOKEN_TTL_SECS,
                "refresh_token_ttl_secs",
            )?,
            refresh_family_ttl: ttl(
                self.refresh_family_ttl_secs,
                file.refresh_family_ttl_secs,
                DEFAULT_REFRESH_FAMILY_TTL_SECS,
                "refresh_family_ttl_secs",
            )?,
            open_public_contracts: self
                .open_public_contracts
                .or(file.open_public_contracts)
                .unwrap_or(false),
            open_admin_contracts_from: match self
                .open_admin_contracts_from
                .or(file.open_admin_contracts_from)
            {
                Some(list) => parse_networks(&list)
                    .map_err(|e| ConfigError::Invalid(format!("open_admin_contracts_from: {e}")))?,
                None => Vec::new(),
            },
        };
        let public_url = self.public_url.or(file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "public_url: {url:?} must start with http:// or https://"
            )));
        }
        let accounts = AccountSettings {
            public_url,
            allow_signup: self.allow_signup.or(file.allow_signup).unwrap_or(false),
        };
        let bootstrap_admin = match (
            self.bootstrap_admin_email.or(file.bootstrap_admin_email),
            self.bootstrap_admin_password
                .or(file.bootstrap_admin_password),
        ) {
            (None, None) => None,
            (Some(email), Some(password)) => Some((
                allot_domain::auth::Email::parse(&email)
                    .map_err(|e| ConfigError::Invalid(format!("bootstrap_admin_email: {e}")))?,
                allot_domain::auth::Password::parse(password.expose())
                    .map_err(|e| ConfigError::Invalid(format!("bootstrap_admin_password: {e}")))?,
            )),
            _ => {
                return Err(ConfigError::Invalid(
                    "bootstrap_admin_email and bootstrap_admin_password go together: set both \
                     or neither"
                        .to_owned(),
                ));
            }
        };
        let tls = tls_settings(
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        )?;
        let mut notifications = notification_settings(
            self.smtp_url.or(file.smtp_url),
            self.smtp_from.or(file.smtp_from),
            self.smtp_tls.or(file.smtp_tls),
            self.smtp_ca_file.or(file.smtp_ca_file),
        )?;
        notifications.gateway_url = self
            .notification_gateway_url
            .or(file.notification_gateway_url);
        notifications.gateway_secret = self
            .notification_gateway_secret
            .or(file.notification_gateway_secret);
        let postgres_tls = allot_storage::postgres::PgTlsSettings {
            ca_file: self.postgres_ca_file.or(file.postgres_ca_file),
            client: ClientIdentity::pair(
                self.postgres_client_cert.or(file.postgres_client_cert),
                self.postgres_client_key.or(file.postgres_client_key),
                "postgres_client_cert / postgres_client_key",
            )
            .map_err(ConfigError::Invalid)?,
        };
        let postgres_timeouts = {
            let d = allot_storage::postgres::PgTimeouts::default();
            // 0: not set by us (off, or the database's own setting).
            let ms = |flag: Option<u64>, file: Option<u64>, default: Option<Duration>| match flag
                .or(file)
            {
                None => default,
                Some(0) => None,
                Some(n) => Some(Duration::from_millis(n)),
            };
            allot_storage::postgres::PgTimeouts {
                connect: match self
                    .postgres_connect_timeout_ms
                    .or(file.postgres_connect_timeout_ms)
                {
                    None => d.connect,
                    Some(0) => {
                        return Err(ConfigError::Invalid(
                            "postgres_connect_timeout_ms: must be at least 1".to_owned(),
                        ));
                    }
                    Some(n) => Duration::from_millis(n),
                },
                answer: ms(
                    self.postgres_answer_timeout_ms,
                    file.postgres_answer_timeout_ms,
                    d.answer,
                ),
                statement: ms(
                    self.postgres_statement_timeout_ms,
                    file.postgres_statement_timeout_ms,
                    d.statement,
                ),
                lock: ms(
                    self.postgres_lock_timeout_ms,
                    file.postgres_lock_timeout_ms,
                    d.lock,
                ),
                idle_in_transaction: ms(
                    self.postgres_idle_in_transaction_timeout_ms,
                    file.postgres_idle_in_transaction_timeout_ms,
                    d.idle_in_transaction,
                ),
                tcp_user: ms(
                    self.postgres_tcp_user_timeout_ms,
                    file.postgres_tcp_user_timeout_ms,
                    d.tcp_user,
                ),
            }
        };
        let redis_tls = crate::shared_redis::RedisTlsSettings {
            ca_file: self.redis_ca_file.or(file.redis_ca_file),
            client: ClientIdentity::pair(
                self.redis_client_cert.or(file.redis_client_cert),
                self.redis_client_key.or(file.redis_client_key),
                "redis_client_cert / redis_client_key",
            )
            .map_err(ConfigError::Invalid)?,
        };
        Ok(Config {
            tls,
            plain_listen: self.plain_listen.or(file.plain_listen),
            auth,
            notifications,
            postgres_tls,
            postgres_timeouts,
            redis_tls,
            accounts,
            bootstrap_admin,
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses")),
            database: self.database.or(file.database),
            redis_url: self.redis_url.or(file.redis_url),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            data_key: self
                .data_key
                .or(file.data_key)
                .map(|k| DataKey::parse(k.expose()))
                .transpose()
                .map_err(ConfigError::Invalid)?,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            log_level: self
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned()),
            shutdown_grace: Duration::from_millis(
                self.shutdown_grace_ms
                    .or(file.shutdown_grace_ms)
                    .unwrap_or(DEFAULT_SHUTDOWN_GRACE_MS),
            ),
            coupon_purge_interval: match self
                .coupon_purge_interval_secs
                .or(file.coupon_purge_interval_secs)
                .unwrap_or(DEFAULT_PURGE_INTERVAL_SECS)
            {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
            reservation_expiry_interval: match self
                .reservation_expiry_interval_ms
                .or(file.reservation_expiry_interval_ms)
                .unwrap_or(DEFAULT_RESERVATION_EXPIRY_INTERVAL_MS)
            {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            promotion_hold_expiry_interval: match self
                .promotion_hold_expiry_interval_ms
                .or(file.promotion_hold_expiry_interval_ms)
                .unwrap_or(DEFAULT_PROMOTION_HOLD_EXPIRY_INTERVAL_MS)
            {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            discount_code_percent: match self
                .discount_code_percent
                .or(file.discount_code_percent)
                .unwrap_or(DEFAULT_DISCOUNT_CODE_PERCENT)
            {
                p @ 0..=100 => p,
                p => {
                    return Err(ConfigError::Invalid(format!(
                        "discount_code_percent: {p} is not between 0 and 100"
                    )));
                }
            },
            cancelled_orders_return_coupons: self
                .cancelled_orders_return_coupons
                .or(file.cancelled_orders_return_coupons)
                .unwrap_or(true),
            sqlite_size_max_mb: self
                .sqlite_size_max_mb
                .or(file.sqlite_size_max_mb)
                .filter(|&mb| mb > 0),
            webhooks: {
                let d = WebhookSettings::default();
                let ms = |flag: Option<u64>, file: Option<u64>, default: Duration| {
                    flag.or(file).map_or(default, Duration::from_millis)
                };
                WebhookSettings {
                    retry_base: ms(
                        self.webhook_retry_base_ms,
                        file.webhook_retry_base_ms,
                        d.retry_base,
                    )
                    .max(Duration::from_millis(1)),
                    retry_max: ms(
                        self.webhook_retry_max_ms,
                        file.webhook_retry_max_ms,
                        d.retry_max,
                    )
                    .max(Duration::from_millis(1)),
                    request_timeout: ms(
                        self.webhook_timeout_ms,
                        file.webhook_timeout_ms,
                        d.request_timeout,
                    )
                    .max(Duration::from_millis(1)),
                    poll_interval: match self
                        .webhook_poll_interval_ms
                        .or(file.webhook_poll_interval_ms)
                    {
                        None => d.poll_interval,
                        Some(0) => None,
                        Some(n) => Some(Duration::from_millis(n)),
                    },
                    retention: self
                        .webhook_retention_hours
                        .or(file.webhook_retention_hours)
                        .map_or(d.retention, |h| Duration::from_secs(h.max(1) * 3_600)),
                    ca_file: self.webhook_ca_file.or(file.webhook_ca_file),
                    allow_http: self
                        .webhook_allow_http
                        .or(file.webhook_allow_http)
                        .unwrap_or(d.allow_http),
                }
            },
            stripe: self
                .stripe_webhook_secret
                .or(file.stripe_webhook_secret)
                .map(|secret| StripeSettings {
                    secret,
                    tolerance_secs: self
                        .stripe_tolerance_secs
                        .or(file.stripe_tolerance_secs)
                        .unwrap_or(STRIPE_TOLERANCE_SECS_DEFAULT),
                }),
            megadeal: {
                let d = AdmissionLimits::default();
                AdmissionLimits {
                    in_flight_max: self
                        .megadeal_in_flight_max
                        .or(file.megadeal_in_flight_max)
                        .unwrap_or(d.in_flight_max)
                        .max(1),
                    per_second_max: self
                        .megadeal_per_second_max
                        .or(file.megadeal_per_second_max)
                        .unwrap_or(d.per_second_max)
                        .max(1),
                    wait_max: self
                        .megadeal_wait_max_ms
                        .or(file.megadeal_wait_max_ms)
                        .map_or(d.wait_max, Duration::from_millis),
                }
            },
            sales: {
                let d = SaleSettings::default();
                let items = self.sale_items.or(file.sale_items).unwrap_or(10_000);
                SaleSettings {
                    items: match items {
                        0 => None,
                        n => Some(
                            ItemsPerSale::parse(n)
                                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
                        ),
                    },
                    user_limit: self
                        .sale_user_limit
                        .or(file.sale_user_limit)
                        .unwrap_or(d.user_limit)
                        .max(1),
                }
            },
            trust_forwarded_for: self
                .trust_forwarded_for
                .or(file.trust_forwarded_for)
                .unwrap_or(false),
            rate_limits: {
                let d = RateLimitSettings::default();
                RateLimitSettings {
                    login_per_ip_per_min: self
                        .login_rate_per_ip_per_min
                        .or(file.login_rate_per_ip_per_min)
                        .unwrap_or(d.login_per_ip_per_min),
                    login_per_email_per_ip_per_min: self
                        .login_rate_per_email_per_ip_per_min
                        .or(file.login_rate_per_email_per_ip_per_min)
                        .unwrap_or(d.login_per_email_per_ip_per_min),
                    login_per_email_per_min: self
                        .login_rate_per_email_per_min
                        .or(file.login_rate_per_email_per_min)
                        .unwrap_or(d.login_per_email_per_min),
                    code_use_per_sec: self
                        .code_use_rate_per_sec
                        .or(file.code_use_rate_per_sec)
                        .unwrap_or(d.code_use_per_sec),
                    code_use_burst: self
                        .code_use_burst
                        .or(file.code_use_burst)
                        .unwrap_or(d.code_use_burst),
                    password_change_per_user_per_min: self
                        .password_change_rate_per_user_per_min
                        .or(file.password_change_rate_per_user_per_min)
                        .unwrap_or(d.password_change_per_user_per_min),
                    account_email_per_hour: self
                        .account_email_rate_per_hour
                        .or(file.account_email_rate_per_hour)
                        .unwrap_or(d.account_email_per_hour),
                    code_use_limited_api_keys: self
                        .code_use_limited_api_keys
                        .or(file.code_use_limited_api_keys)
                        .unwrap_or(d.code_use_limited_api_keys),
                }
            },
            connections: {
                let d = ConnectionLimits::default();
                let ms = |flag: Option<u64>, file: Option<u64>, default: Duration, name: &str| {
                    match flag.or(file) {
                        None => Ok(default),
                        Some(0) => Err(ConfigError::Invalid(format!("{name}: must be at least 1"))),
                        Some(n) => Ok(Duration::from_millis(n)),
                    }
                };
                ConnectionLimits {
                    header_read_timeout: ms(
                        self.header_read_timeout_ms,
                        file.header_read_timeout_ms,
                        d.header_read_timeout,
                        "header_read_timeout_ms",
                    )?,
                    request_timeout: ms(
                        self.request_timeout_ms,
                        file.request_timeout_ms,
                        d.request_timeout,
                        "request_timeout_ms",
                    )?,
                    connections_max: self
                        .connections_max
                        .or(file.connections_max)
                        .unwrap_or(d.connections_max)
                        .max(1),
                    http2_max_concurrent_streams: self
                        .http2_max_concurrent_streams
                        .or(file.http2_max_concurrent_streams)
                        .unwrap_or(d.http2_max_concurrent_streams)
                        .max(1),
                }
            },
        })
    }
}

/// SMTP settings, checked: a URL that is not `smtp://` or `smtps://`, credentials that would
/// go in clear, a CA file that holds no certificate or a From that is not an address stops the
/// start instead of failing every email later.
fn notification_settings(
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    smtp_tls: Option<SmtpTls>,
    smtp_ca_file: Option<PathBuf>,
) -> Result<NotificationSettings, ConfigError> {
    let mut settings = NotificationSettings {
        smtp_url,
        smtp_tls,
        smtp_ca_file,
        ..NotificationSettings::default()
    };
    if let Some(from) = smtp_from {
        from.parse::<lettre::message::Mailbox>()
            .map_err(|e| ConfigError::Invalid(format!("smtp_from: {e}")))?;
        settings.smtp_from = from;
    }
    crate::notifier::check_settings(&settings).map_err(ConfigError::Invalid)?;
    Ok(settings)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// Stripe's webhook: the endpoint's signing secret and how old a signed timestamp may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSettings {
    pub secret: Secret,
    pub tolerance_secs: u64,
}

/// Stripe's own libraries' default tolerance.
pub const STRIPE_TOLERANCE_SECS_DEFAULT: u64 = 300;

/// A comma-separated list of CIDR networks; a bare address is the network of that one address.
pub fn parse_networks(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{n:?} is not a CIDR network (e.g. 10.0.0.0/8) or an address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("allot-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/from-file\"\n\
             redis_url = \"redis://from-file:6379/\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            data_dir: Some(PathBuf::from("/tmp/from-flag")),
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/from-flag"));
        assert_eq!(config.log_level, DEFAULT_LOG_LEVEL);
        assert_eq!(config.redis_url.as_deref(), Some("redis://from-file:6379/"));
        let args = ServeArgs {
            redis_url: Some("redis://from-flag:6379/".to_owned()),
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.redis_url.as_deref(), Some("redis://from-flag:6379/"));
        assert_eq!(ServeArgs::default().resolve().unwrap().redis_url, None);
        std::fs::write(&file, "listen_typo = 1\n").unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn the_reservation_expiry_interval_comes_from_the_flag_then_the_file_then_the_default() {
        let dir = std::env::temp_dir().join(format!("allot-config-expiry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        std::fs::write(&file, "reservation_expiry_interval_ms = 500\n").unwrap();
        let from_file = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        assert_eq!(
            from_file.resolve().unwrap().reservation_expiry_interval,
            Some(Duration::from_millis(500))
        );
        let from_flag = ServeArgs {
            reservation_expiry_interval_ms: Some(250),
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        assert_eq!(
            from_flag.resolve().unwrap().reservation_expiry_interval,
            Some(Duration::from_millis(250))
        );
        let off = ServeArgs {
            reservation_expiry_interval_ms: Some(0),
            config: Some(file),
            ..ServeArgs::default()
        };
        assert_eq!(off.resolve().unwrap().reservation_expiry_interval, None);
        assert_eq!(
            ServeArgs::default()
                .resolve()
                .unwrap()
                .reservation_expiry_interval,
            Some(Duration::from_millis(
                DEFAULT_RESERVATION_EXPIRY_INTERVAL_MS
            ))
        );
    }

    #[test]
    fn the_promotion_hold_expiry_interval_comes_from_the_flag_and_zero_turns_it_off() {
        let every = |ms: Option<u64>| {
            ServeArgs {
                promotion_hold_expiry_interval_ms: ms,
                ..ServeArgs::default()
            }
            .resolve()
            .unwrap()
            .promotion_hold_expiry_interval
        };
        assert_eq!(every(Some(300)), Some(Duration::from_millis(300)));
        assert_eq!(every(Some(0)), None);
        assert_eq!(
            every(None),
            Some(Duration::from_millis(
                DEFAULT_PROMOTION_HOLD_EXPIRY_INTERVAL_MS
            ))
        );
    }

    #[test]
    fn the_discount_code_percent_comes_from_the_flag_then_the_file_then_the_default() {
        let dir = std::env::temp_dir().join(format!("allot-config-percent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        std::fs::write(&file, "discount_code_percent = 25\n").unwrap();
        let from_file = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        assert_eq!(from_file.resolve().unwrap().discount_code_percent, 25);
        let from_flag = ServeArgs {
            discount_code_percent: Some(40),
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        assert_eq!(from_flag.resolve().unwrap().discount_code_percent, 40);
        assert_eq!(
            ServeArgs::default()
                .resolve()
                .unwrap()
                .discount_code_percent,
            DEFAULT_DISCOUNT_CODE_PERCENT
        );
        let too_much = ServeArgs {
            discount_code_percent: Some(101),
            ..ServeArgs::default()
        };
        assert!(matches!(too_much.resolve(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn auth_settings_come_from_the_flag_then_the_file_then_the_default_and_hide_the_secret() {
        let dir = std::env::temp_dir().join(format!("allot-config-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        let from_file = "f".repeat(32);
        std::fs::write(
            &file,
            format!("jwt_secret = \"{from_file}\"\naccess_token_ttl_secs = 60\n"),
        )
        .unwrap();
        let config = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            config.auth.jwt_secret.as_ref().map(Secret::expose),
            Some(from_file.as_str())
        );
        assert_eq!(config.auth.access_token_ttl, Duration::from_secs(60));
        assert_eq!(
            config.auth.refresh_token_ttl,
            Duration::from_secs(DEFAULT_REFRESH_TOKEN_TTL_SECS)
        );
        assert!(!format!("{config:?}").contains(&from_file));
        let from_flag = "g".repeat(40);
        let config = ServeArgs {
            jwt_secret: Some(Secret::new(from_flag.clone())),
            access_token_ttl_secs: Some(5),
            refresh_token_ttl_secs: Some(7),
            config: Some(file.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            config.auth.jwt_secret.as_ref().map(Secret::expose),
            Some(from_flag.as_str())
        );
        assert_eq!(config.auth.access_token_ttl, Duration::from_secs(5));
        assert_eq!(config.auth.refresh_token_ttl, Duration::from_secs(7));
        let defaults = ServeArgs::default().resolve().unwrap().auth;
        assert!(defaults.jwt_secret.is_none());
        assert_eq!(
            defaults.access_token_ttl,
            Duration::from_secs(DEFAULT_ACCESS_TOKEN_TTL_SECS)
        );
        let short = ServeArgs {
            jwt_secret: Some(Secret::new("too short")),
            ..ServeArgs::default()
        };
        assert!(matches!(short.resolve(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn postgres_timeouts_come_from_the_flag_then_the_file_then_the_default() {
        use allot_storage::postgres::PgTimeouts;
        let dir = std::env::temp_dir().join(format!("allot-config-pgt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        std::fs::write(
            &file,
            "postgres_statement_timeout_ms = 7000
postgres_lock_timeout_ms = 0
             postgres_answer_timeout_ms = 9000
",
        )
        .unwrap();
        let config = ServeArgs {
            postgres_answer_timeout_ms: Some(11_000),
            postgres_connect_timeout_ms: Some(2_000),
            config: Some(file.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let t = config.postgres_timeouts;
        let d = PgTimeouts::default();
        assert_eq!(t.connect, Duration::from_millis(2_000));
        assert_eq!(t.answer, Some(Duration::from_millis(11_000)));
        assert_eq!(t.statement, Some(Duration::from_millis(7_000)));
        assert_eq!(t.lock, None);
        assert_eq!(t.idle_in_transaction, d.idle_in_transaction);
        assert_eq!(t.tcp_user, d.tcp_user);
        assert_eq!(ServeArgs::default().resolve().unwrap().postgres_timeouts, d);
        let zero = ServeArgs {
            postgres_connect_timeout_ms: Some(0),
            ..ServeArgs::default()
        };
        assert!(matches!(zero.resolve(), Err(ConfigError::Invalid(_))));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn edge_limits_come_from_the_flag_then_the_file_then_the_default() {
        let dir = std::env::temp_dir().join(format!("allot-config-edge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        std::fs::write(
            &file,
            "header_read_timeout_ms = 2000\nconnections_max = 50\n\
             code_use_limited_api_keys = [3, 7]\nlogin_rate_per_email_per_ip_per_min = 2\n",
        )
        .unwrap();
        let config = ServeArgs {
            request_timeout_ms: Some(1_000),
            config: Some(file.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_millis(2_000)
        );
        assert_eq!(
            config.connections.request_timeout,
            Duration::from_millis(1_000)
        );
        assert_eq!(config.connections.connections_max, 50);
        assert_eq!(config.rate_limits.code_use_limited_api_keys, vec![3, 7]);
        assert_eq!(config.rate_limits.login_per_email_per_ip_per_min, 2);
        let defaults = ServeArgs::default().resolve().unwrap();
        assert_eq!(defaults.connections, ConnectionLimits::default());
        assert_eq!(defaults.rate_limits, RateLimitSettings::default());
        let zero = ServeArgs {
            header_read_timeout_ms: Some(0),
            ..ServeArgs::default()
        };
        assert!(
            matches!(zero.resolve(), Err(ConfigError::Invalid(m)) if m.starts_with("header_read_timeout_ms"))
        );
    }

    #[test]
    fn outbound_tls_settings_come_from_the_flag_then_the_file_and_never_allow_clear_credentials() {
        let dir = std::env::temp_dir().join(format!("allot-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        std::fs::write(
            &file,
            "smtp_url = \"smtp://127.0.0.1:2525\"\nsmtp_tls = \"none\"\nwebhook_allow_http = true\n",
        )
        .unwrap();
        let config = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.notifications.smtp_tls, Some(SmtpTls::Plain));
        assert!(config.webhooks.allow_http);
        let defaults = ServeArgs::default().resolve().unwrap();
        assert!(!defaults.webhooks.allow_http);
        assert_eq!(defaults.notifications.smtp_tls, None);

        let resolve = |url: &str, tls: Option<SmtpTls>, ca: Option<&Path>| {
            ServeArgs {
                smtp_url: Some(url.to_owned()),
                smtp_tls: tls,
                smtp_ca_file: ca.map(Path::to_owned),
                ..ServeArgs::default()
            }
            .resolve()
        };
        assert!(resolve("smtps://me:pw@mail.example.com", None, None).is_ok());
        let refused = |r: Result<Config, ConfigError>, start: &str| matches!(r, Err(ConfigError::Invalid(m)) if m.starts_with(start));
        assert!(refused(
            resolve("smtp://me:pw@127.0.0.1", Some(SmtpTls::Plain), None),
            "smtp_url: credentials with smtp_tls = none"
        ));
        assert!(refused(
            resolve("smtps://mail.example.com", Some(SmtpTls::StartTls), None),
            "smtp_tls: starttls contradicts"
        ));
        assert!(refused(
            resolve(
                "smtp://mail.example.com",
                None,
                Some(&dir.join("no-such.pem"))
            ),
            "smtp_ca_file: "
        ));
        assert!("tls".parse::<SmtpTls>().is_ok() && "ssl".parse::<SmtpTls>().is_err());
    }

    #[test]
    fn the_data_key_comes_from_the_flag_then_the_file_is_checked_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("allot-config-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allot.toml");
        let in_file = DataKey::generate();
        std::fs::write(&file, format!("data_key = \"{}\"\n", in_file.to_base64())).unwrap();
        let from_file = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(from_file.data_key.as_ref(), Some(&in_file));
        assert!(!format!("{from_file:?}").contains(&in_file.to_base64()));
        let on_flag = DataKey::generate();
        let from_flag = ServeArgs {
            data_key: Some(Secret::new(on_flag.to_base64())),
            config: Some(file),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(from_flag.data_key, Some(on_flag));
        assert!(ServeArgs::default().resolve().unwrap().data_key.is_none());
        for bad in ["not base64!", "c2hvcnQ="] {
            let bad = ServeArgs {
                data_key: Some(Secret::new(bad)),
                ..ServeArgs::default()
            };
            assert!(
                matches!(bad.resolve(), Err(ConfigError::Invalid(m)) if m.starts_with("data_key:"))
            );
        }
    }
}
