//! Allot's server: the service layer (one use case per operation, transport-agnostic), the
//! transports (REST, gRPC) that call it, background jobs, and configuration.
//!
//! Requests flow one way: transport DTO -> domain type (parsing) -> service -> storage. Errors
//! flow back as one [`ServiceError`] enum, mapped to HTTP and gRPC status in exactly one place
//! per transport.

pub mod app;
mod caller;
pub mod clock;
pub mod config;
mod connect;
mod console;
mod error;
mod event_body;
#[doc(hidden)]
pub mod fuzzing;
mod grpc;
mod http;
mod jobs;
mod metrics;
mod notifier;
mod notify_gateway;
mod outbound_tls;
pub mod pb;
pub mod policy;
pub mod rate_limit;
mod rpc;
mod secret;
pub mod serve;
pub mod service;
pub mod shared_redis;
mod state;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod webhook_worker;

pub use app::{AppError, Application, open_store};
pub use config::{Config, LogFormat, ServeArgs};
pub use error::ServiceError;
