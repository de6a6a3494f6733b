//! `channels.status` and DM pairing: `channels.pairing.list|approve|dismiss` (OpenClaw's names; the
//! older `channel.pairing.*` spellings are not served).
use std::sync::Arc;

use serde_json::{json, Value};

use homarus_protocol::ErrorShape;

use crate::state::{now_ms, GatewayState};

fn param<'a>(params: Option<&'a Value>, key: &str) -> Option<&'a str> {
    params.and_then(|p| p.get(key)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn channel_param(state: &GatewayState, params: Option<&Value>, required: bool) -> Result<Option<String>, ErrorShape> {
    let Some(ch) = param(params, "channel") else {
        return if required { Err(ErrorShape::invalid("invalid params: at /channel: required")) } else { Ok(None) };
    };
    let ch = ch.to_ascii_lowercase();
    if state.channels.driver(&ch).is_none() {
        return Err(ErrorShape::invalid(format!("invalid params: at /channel: unknown channel {ch:?}")));
    }
    Ok(Some(ch))
}

/// `channels.status {probe?}`.
pub fn status(state: &GatewayState) -> Value {
    crate::channels::status_json(state)
}

/// `channels.pairing.list {channel?, accountId?}`.
pub fn pairing_list(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let channel = channel_param(state, params, false)?;
    let list = state
        .store
        .channel_pairing_list(channel.as_deref(), param(params, "accountId"), now_ms())
        .map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    Ok(json!({"channel": channel, "requests": list}))
}

/// `channels.pairing.approve {channel, code, accountId?, notify?}`: the sender may DM from now on.
pub async fn pairing_approve(state: &Arc<GatewayState>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let channel = channel_param(state, params, true)?.unwrap_or_default();
    let code = param(params, "code").ok_or_else(|| ErrorShape::invalid("invalid params: at /code: required"))?;
    let code = homarus_channels::pairing::normalize_code(code);
    let approved = state
        .store
        .channel_pairing_approve(&channel, &code, param(params, "accountId"), now_ms())
        .map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    let Some((req, owner)) = approved else {
        return Err(ErrorShape::invalid(format!(
            "no pending {channel} pairing request with code {code} (expired or unknown)"
        )));
    };
    tracing::info!(%channel, account = %req.account_id, sender = %req.id, owner, "pairing approved");
    if params.and_then(|p| p.get("notify")).and_then(Value::as_bool) == Some(true) {
        let to = req.meta["chat"].as_str().unwrap_or(&req.id).to_string();
        let route = crate::channels::ChannelRoute {
            channel: channel.clone(),
            account_id: req.account_id.clone(),
            chat_type: homarus_channels::ChatKind::Direct,
            to,
            thread_id: None,
            reply_to: None,
        };
        if let Err(e) = crate::channels::send_text(state, &route, "✅ Access approved. You can talk to me now.").await
        {
            tracing::warn!(%channel, error = %e, "cannot notify the approved sender");
        }
    }
    Ok(json!({"ok": true, "channel": channel, "id": req.id, "accountId": req.account_id, "owner": owner, "entry": req}))
}

/// `channels.pairing.dismiss {channel, code}`: drop a request (the sender may ask again later).
pub fn pairing_dismiss(state: &GatewayState, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let channel = channel_param(state, params, true)?.unwrap_or_default();
    let code = param(params, "code").ok_or_else(|| ErrorShape::invalid("invalid params: at /code: required"))?;
    let code = homarus_channels::pairing::normalize_code(code);
    let gone =
        state.store.channel_pairing_reject(&channel, &code).map_err(|e| ErrorShape::unavailable(e.to_string()))?;
    match gone {
        Some(req) => Ok(json!({"ok": true, "channel": channel, "id": req.id})),
        None => Err(ErrorShape::invalid(format!("no pending {channel} pairing request with code {code}"))),
    }
}
