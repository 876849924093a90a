//! The admin HTTP server: `/metrics`, `/health/live`, `/health/ready`, `/api/topology`,
//! `/api/models`, `/api/history` (the last 15 minutes, sampled each second), `/api/cockpit`
//! (both in one answer, what the page polls), and a live page of the running pipeline at `/`. It binds to 127.0.0.1 unless
//! told otherwise; with a token, everything but the health endpoints asks for it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::runtime::{Handle, Status};

/// The page, built into the binary: no CDN, no build step.
const PAGE: &str = include_str!("page.html");

/// The environment variable the admin token is read from (never from the YAML).
pub const TOKEN_VARIABLE: &str = "SLUICE_ADMIN_TOKEN";

struct Admin {
    handle: Handle,
    history: super::history::Recorder,
    registry: prometheus_client::registry::Registry,
    /// The SHA-256 of the token, when there is one: requests are compared by digest, in
    /// constant time, so neither the token's content nor its length shows in response times.
    token: Option<[u8; 32]>,
}

fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Whether `given` is the token whose digest is `expected`, in time independent of both.
fn token_matches(expected: &[u8; 32], given: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    // A missing header is compared like a wrong token (the token is never empty).
    bool::from(expected.ct_eq(&digest(given.unwrap_or(""))))
}

/// How one streamlet is doing, as an operations console would say it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamletHealth {
    pub name: String,
    pub kind: String,
    /// `healthy`, `warning` or `critical`.
    pub status: &'static str,
    pub reason: Option<String>,
}

/// The health of each streamlet, and whether the pipeline is ready: every streamlet running
/// and every scorer with a model version.
pub fn health(status: &Status) -> (bool, Vec<StreamletHealth>) {
    let mut ready = !status.streamlets.is_empty();
    let streamlets = status
        .streamlets
        .iter()
        .map(|s| {
            let rejected = s.errors();
            let (level, reason) = if let Some(failure) = &s.failure {
                ("critical", Some(format!("failed: {failure}")))
            } else if !s.running {
                ("critical", Some("stopped".to_string()))
            } else if s.models_ready == Some(false) {
                ("critical", Some("waiting for a model version".to_string()))
            } else if rejected > 0 {
                ("warning", Some(format!("{rejected} record(s) sent to an error outlet")))
            } else {
                ("healthy", None)
            };
            if !s.running || s.models_ready == Some(false) {
                ready = false;
            }
            StreamletHealth {
                name: s.name.clone(),
                kind: s.kind.clone(),
                status: level,
                reason,
            }
        })
        .collect();
    (ready, streamlets)
}

async fn live() -> impl IntoResponse {
    Json(json!({"status": "live"}))
}

async fn ready(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let status = admin.handle.status();
    let (ready, streamlets) = health(&status);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({"ready": ready, "pipeline": status.pipeline, "streamlets": streamlets})),
    )
}

async fn metrics(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        super::metrics::render(&admin.registry),
    )
}

async fn topology(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let status = admin.handle.status();
    let (ready, health) = health(&status);
    Json(json!({"ready": ready, "health": health, "status": status}))
}

async fn models(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let status = admin.handle.status();
    let models: Vec<_> = status
        .streamlets
        .iter()
        .filter(|s| s.models_ready.is_some())
        .map(|s| {
            json!({"streamlet": s.name, "ready": s.models_ready, "versions": s.models, "strategy": s.strategy,
                   "history": s.history})
        })
        .collect();
    // What each evaluator measured of each model version against the true outcomes.
    let quality: Vec<_> = status
        .streamlets
        .iter()
        .filter_map(|s| s.quality.as_ref().map(|q| json!({"evaluator": s.name, "quality": q})))
        .collect();
    Json(json!({"models": models, "quality": quality}))
}

/// Asks a trainer for a run now: 202 when asked, 404 when there is no such trainer, 409 when
/// a run was asked for already and has not started.
async fn run_trainer(
    State(admin): State<Arc<Admin>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> impl IntoResponse {
    match admin.handle.run_trainer(&name) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"trainer": name, "asked": true}))),
        Err(e) if e.contains("asked for already") => (StatusCode::CONFLICT, Json(json!({"trainer": name, "error": e}))),
        Err(e) => (StatusCode::NOT_FOUND, Json(json!({"trainer": name, "error": e}))),
    }
}

/// The last 15 minutes: time series per streamlet, edge, Kafka source, model version and
/// drifting field, and the health events (`observe/history.rs`).
async fn history(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    Json(admin.history.snapshot())
}

/// Everything the page draws, in one answer: what `/api/topology` says (the graph as it is
/// now, its health) and what `/api/history` says (how it got there).
async fn cockpit(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let status = admin.handle.status();
    let (ready, health) = health(&status);
    Json(json!({"ready": ready, "health": health, "status": status, "history": admin.history.snapshot()}))
}

async fn page() -> impl IntoResponse {
    Html(PAGE)
}

/// Refuses requests without the bearer token (when there is one), except for health checks.
async fn authorize(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let open = request.uri().path().starts_with("/health/");
    if let (Some(token), false) = (&admin.token, open) {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !token_matches(token, given) {
            let mut refused = (StatusCode::UNAUTHORIZED, "a bearer token is needed\n").into_response();
            refused
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return refused;
        }
    }
    next.run(request).await
}

/// Serves the admin endpoints on `listen` until `stop`; returns the address it bound.
pub async fn serve(
    listen: SocketAddr,
    handle: Handle,
    token: Option<String>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let recorder = super::history::Recorder::default();
    tokio::spawn(recorder.clone().follow(handle.clone(), stop.clone()));
    let admin = Arc::new(Admin {
        registry: super::metrics::registry(handle.clone()),
        handle,
        history: recorder,
        token: token.filter(|t| !t.is_empty()).as_deref().map(digest),
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/api/topology", get(topology))
        .route("/api/models", get(models))
        .route("/api/history", get(history))
        .route("/api/cockpit", get(cockpit))
        .route("/api/trainers/{name}/run", axum::routing::post(run_trainer))
        .layer(axum::middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the admin server stopped");
        }
    });
    tracing::info!(address = %bound, "admin server listening");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let expected = digest("s3cret-token");
        assert!(token_matches(&expected, Some("s3cret-token")));
        for wrong in ["s3cret-toke", "s3cret-token ", "S3CRET-TOKEN", "", "s3cret-tokenX"] {
            assert!(!token_matches(&expected, Some(wrong)), "{wrong:?} accepted");
        }
        assert!(!token_matches(&expected, None));
    }
}
