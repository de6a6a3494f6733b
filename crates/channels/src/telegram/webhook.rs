//! Telegram webhook mode: register `webhookUrl` with `setWebhook` (with the secret), then serve
//! `webhookPath` on `webhookHost:webhookPort` (loopback by default; a reverse proxy exposes it).
//! Each request must carry the secret in `X-Telegram-Bot-Api-Secret-Token` (compared in constant
//! time); bodies over 1 MiB are refused.
use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{parse_update, Api, Me, ID};
use crate::{now_ms, set_status, ChannelSettings, InboundMessage, StatusCell};

const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
struct Hook {
    me: Me,
    account: String,
    secret: String,
    tx: mpsc::Sender<InboundMessage>,
    status: StatusCell,
}

pub(super) async fn serve(
    api: Api,
    me: Me,
    account: String,
    settings: ChannelSettings,
    tx: mpsc::Sender<InboundMessage>,
    status: StatusCell,
    stop: CancellationToken,
) {
    let secret = settings.webhook_secret.clone().unwrap_or_default();
    let host = settings.webhook_host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let port = settings.webhook_port.unwrap_or(8787);
    let path = settings.webhook_path.clone().unwrap_or_else(|| "/telegram-webhook".into());
    let addr: SocketAddr = match format!("{host}:{port}").parse() {
        Ok(a) => a,
        Err(e) => {
            set_status(&status, |s| s.last_error = Some(format!("channels.{ID}.webhookHost/Port: {e}")));
            return;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            set_status(&status, |s| s.last_error = Some(format!("cannot listen on {addr} for the webhook: {e}")));
            tracing::error!(channel = ID, %account, %addr, error = %e, "cannot listen for the Telegram webhook");
            return;
        }
    };
    let url = settings.webhook_url.clone().unwrap_or_default();
    let body =
        json!({"url": url, "secret_token": secret, "allowed_updates": ["message", "edited_message", "channel_post"]});
    if let Err(e) = api.call("setWebhook", body).await {
        set_status(&status, |s| s.last_error = Some(e.to_string()));
        tracing::error!(channel = ID, %account, error = %e, "setWebhook failed");
    }
    let hook = Hook { me, account, secret, tx, status };
    let app = Router::new().route(&path, post(receive)).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(hook);
    let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
    if let Err(e) = served.await {
        tracing::error!(channel = ID, error = %e, "the Telegram webhook server failed");
    }
}

async fn receive(State(h): State<Hook>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let given = headers.get("x-telegram-bot-api-secret-token").map(|v| v.as_bytes()).unwrap_or(b"");
    if !bool::from(given.ct_eq(h.secret.as_bytes())) {
        tracing::warn!(channel = ID, account = %h.account, "webhook request with a wrong secret refused");
        return StatusCode::UNAUTHORIZED;
    }
    let text = String::from_utf8_lossy(&body);
    let Ok(update) = serde_json::from_str::<Value>(&text) else {
        tracing::warn!(channel = ID, account = %h.account, "webhook body is not JSON; skipped");
        return StatusCode::OK;
    };
    match parse_update(&update, &h.me, &h.account) {
        Ok(Some(msg)) => {
            set_status(&h.status, |s| s.last_inbound_at = Some(now_ms()));
            if h.tx.send(msg).await.is_err() {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
        Ok(None) => {}
        Err(why) => tracing::warn!(channel = ID, account = %h.account, %why, "skipped a malformed update"),
    }
    StatusCode::OK
}
