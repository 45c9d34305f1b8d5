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
    /// When unavailable: `storage_unavailable` (a storage fault: retry later) or `internal`.
    pub code: Option<&'static str>,
    /// When unavailable, why, in a few words ("the database has no space left"); the detail
    /// is in the server's log.
    pub reason: Option<&'static str>,
    /// When a TLS handshake with the database failed: with whom and why ("TLS to
    /// db.example:5432: certificate not trusted (UnknownIssuer)"), to fix the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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

/// Readiness: storage answers a query, and writes commit. While the write path has seen a
/// storage fault (a full disk, the database unreachable) and no commit since, the probe is a
/// small write instead of a read: ready again as soon as writes commit, with no client
/// writing to find out.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "Storage answers and writes commit", body = Readiness),
        (status = 503, description = "Storage does not answer, or writes fail: `code` and `reason` say why", body = Readiness)))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = &state.services.store;
    let probe = match store.write_fault() {
        Some(_) => store.probe_write().await,
        None => store.ping().await,
    };
    match probe {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                storage: store.backend(),
                code: None,
                reason: None,
                detail: None,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            let (code, reason) = match e.fault() {
                Some(fault) => ("storage_unavailable", fault.reason()),
                None => ("internal", "storage failed; see the server's log"),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    status: "unavailable",
                    storage: store.backend(),
                    code: Some(code),
                    reason: Some(reason),
                    detail: e.tls_refusal().map(str::to_owned),
                }),
            )
        }
    }
}
