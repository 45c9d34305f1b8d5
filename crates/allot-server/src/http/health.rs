//! Liveness and readiness probes.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok` when the process serves requests.
    pub status: &'static str,
    pub storage: StorageHealth,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StorageHealth {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Whether the storage accepts writes, as this process knows without asking the database
    /// (`GET /ready` asks it).
    pub accepting_writes: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// The storage backend: `sqlite` or `postgres`.
    pub storage: &'static str,
    /// Why storage is not reachable, when it is not.
    pub error: Option<String>,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

/// Liveness: the process is up and serving, and what it knows of its storage without I/O.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The server is up", body = Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    let store = &state.services.store;
    Json(Health {
        status: "ok",
        storage: StorageHealth {
            backend: store.backend(),
            accepting_writes: store.accepting_writes(),
        },
    })
}

/// Readiness: storage answers a query.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "Storage is reachable", body = Readiness),
        (status = 503, description = "Storage is not reachable", body = Readiness)))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = &state.services.store;
    match store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                storage: store.backend(),
                error: None,
            }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "unavailable",
                storage: store.backend(),
                error: Some(e.to_string()),
            }),
        ),
    }
}
