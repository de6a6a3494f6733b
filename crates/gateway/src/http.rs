//! HTTP routes on the gateway port: liveness/readiness probes and the WebSocket upgrade.
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::mpsc;

use homarus_protocol::MAX_PAYLOAD_BYTES;

use crate::state::GatewayState;

/// Initial WebSocket read and write buffer per connection.
const SOCKET_BUFFER_BYTES: usize = 8 * 1024;

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
        .route("/v1/models", get(crate::openai_http::models))
        .route("/v1/models/{id}", get(crate::openai_http::model))
        .route("/v1/chat/completions", axum::routing::post(crate::openai_http::chat_completions))
        .route("/v1/responses", axum::routing::post(crate::openai_responses::responses))
        .route("/tools/invoke", axum::routing::post(crate::tools_http::invoke))
        .fallback(crate::webhooks::fallback)
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

/// The secret of an `Authorization: Bearer <secret>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

/// Attach `Retry-After` when a refusal has one.
pub fn with_retry_after(mut r: Response, retry_after_secs: Option<u64>) -> Response {
    if let Some(v) = retry_after_secs.and_then(|s| s.to_string().parse().ok()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the last address
/// of `X-Forwarded-For` (the one the proxy itself appended).
fn client_addr(app: &AppState, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    let cfg = app.gateway.config();
    let trusted = cfg.config.gateway.trusted_proxies.as_deref().unwrap_or_default();
    if !trusted.contains(&peer.ip()) {
        return peer;
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
    forwarded.map(|ip| SocketAddr::new(ip, 0)).unwrap_or(peer)
}

async fn root(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
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
    let peer = client_addr(&app, peer, &headers);
    let state = app.gateway.clone();
    let done = app.done.clone();
    // Small I/O buffers: most frames are a few hundred bytes, and defaults of 128 KiB each way would
    // cost ~0.25 MiB per idle client. Large frames still work; the buffers grow as needed.
    ws.max_message_size(MAX_PAYLOAD_BYTES)
        .max_frame_size(MAX_PAYLOAD_BYTES)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| crate::connection::serve(state, socket, peer, shutdown, done))
}
