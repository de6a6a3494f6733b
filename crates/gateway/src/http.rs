//! HTTP routes on the gateway port: liveness/readiness probes and the WebSocket upgrade.
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::mpsc;

use homarus_protocol::MAX_PAYLOAD_BYTES;

use crate::state::GatewayState;

/// Largest HTTP request body accepted (no endpoint takes a body yet).
const MAX_HTTP_BODY: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<GatewayState>,
    /// Cloned into every connection; close waits until all clones are gone.
    pub done: mpsc::Sender<()>,
}

/// The router.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(live))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(MAX_HTTP_BODY))
        .with_state(app)
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"ok": true, "status": "live"}))
}

async fn ready(State(app): State<AppState>) -> Response {
    let closing = app.gateway.closing.load(Ordering::SeqCst);
    let body = json!({"ready": !closing, "failing": if closing { vec!["shutdown"] } else { vec![] }, "uptimeMs": app.gateway.uptime_ms()});
    let code = if closing { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Json(body)).into_response()
}

async fn root(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return (StatusCode::OK, "Homarus gateway: connect with an OpenClaw client over WebSocket.\n").into_response();
    };
    // Subscribe before checking `closing`, so a close that starts in between is still seen.
    let shutdown = app.gateway.shutdown_tx.subscribe();
    if app.gateway.closing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "gateway is shutting down\n").into_response();
    }
    let state = app.gateway.clone();
    let done = app.done.clone();
    ws.max_message_size(MAX_PAYLOAD_BYTES)
        .max_frame_size(MAX_PAYLOAD_BYTES)
        .on_upgrade(move |socket| crate::connection::serve(state, socket, peer, shutdown, done))
}
