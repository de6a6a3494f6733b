//! Sending to a channel conversation: `message_sending` (a plugin may rewrite or cancel), the send
//! through the account (the receipt means the channel accepted it), then `message_sent` and the
//! internal `message:sent` event. A failed send is reported, never counted as delivered.
use std::sync::Arc;

use serde_json::{json, Value};

use homarus_channels::{Outbound, Receipt};

use super::{ChannelRoute, Delivery};
use crate::state::GatewayState;

/// Send `text` (Markdown) to `route`. `Ok(None)` when a plugin cancelled it.
pub async fn send_text(state: &Arc<GatewayState>, route: &ChannelRoute, text: &str) -> Result<Option<Receipt>, String> {
    send_or_edit(state, route, text, None).await
}

/// Send `text`, or replace the draft message `edit_of` with it (the final text of a streamed answer).
async fn send_or_edit(
    state: &Arc<GatewayState>,
    route: &ChannelRoute,
    text: &str,
    edit_of: Option<String>,
) -> Result<Option<Receipt>, String> {
    let hooks = state.opts.hooks.clone();
    let ctx = json!({"channelId": route.channel, "accountId": route.account_id, "conversationId": route.to});
    let mut content = text.to_string();
    if hooks.has_handlers("message_sending") {
        let event = json!({"to": route.to, "content": content, "metadata": {"threadId": route.thread_id, "chatType": route.chat_type}});
        let out = hooks.run_decision("message_sending", &event, &ctx).await;
        for (plugin, d) in &out.decisions {
            if d["cancel"] == true {
                tracing::info!(%plugin, channel = %route.channel, to = %route.to, "message_sending cancelled a message");
                return Ok(None);
            }
            if let Some(c) = d["content"].as_str() {
                content = c.to_string();
            }
        }
    }
    let op = match edit_of {
        Some(message_id) => Outbound::Edit { target: route.target(), message_id, text: content.clone() },
        None => Outbound::Send { target: route.target(), text: content.clone(), reply_to: route.reply_to.clone() },
    };
    let result = state.channels.request(&route.channel, &route.account_id, op).await;
    let (success, error) = match &result {
        Ok(_) => (true, None),
        Err(e) => (false, Some(e.to_string())),
    };
    if hooks.has_handlers("message_sent") {
        let event = json!({"to": route.to, "content": content, "success": success, "error": error});
        tokio::spawn(async move { hooks.run_observation("message_sent", &event, &ctx).await });
    }
    let sent = json!({"to": route.to, "content": content, "success": success, "channelId": route.channel,
                      "accountId": route.account_id, "error": error});
    crate::automation::emit_detached(state, crate::automation::event("message", "sent", &route.to, sent));
    result.map(Some).map_err(|e| e.to_string())
}

/// Send the final reply of a run where its delivery says (replacing its streamed draft `draft`, when
/// one was shown and the final text fits in one message). Nothing to do for operator runs.
pub async fn deliver_reply(
    state: &Arc<GatewayState>,
    deliver: &Delivery,
    session_key: &str,
    text: &str,
    draft: Option<String>,
) {
    let route = match deliver {
        Delivery::Operator | Delivery::Heartbeat { .. } => return,
        Delivery::Origin { route, .. } => route.clone(),
        Delivery::LastRoute => {
            let row = state.store.session(session_key).ok().flatten();
            match row.as_ref().and_then(ChannelRoute::of_session) {
                // A wake-up answers in the conversation, not as a reply to an old message.
                Some(r) => ChannelRoute { reply_to: None, ..r },
                None => return,
            }
        }
    };
    let limit = state.channels.driver(&route.channel).map(|d| d.text_limit()).unwrap_or(4000);
    let outcome = match draft {
        Some(id) if text.len() <= limit => match send_or_edit(state, &route, text, Some(id)).await {
            Ok(r) => Ok(r),
            // The draft may be gone (deleted by the user): send the answer anew.
            Err(_) => send_text(state, &route, text).await,
        },
        _ => send_text(state, &route, text).await,
    };
    if let Err(e) = outcome {
        tracing::warn!(channel = %route.channel, account = %route.account_id, to = %route.to, error = %e,
                       "reply not delivered to the channel");
    }
}

/// Remember `route` on the session (`deliveryContext`, `channel`, `lastChannel`, `lastTo`, …) so
/// later wake-ups and completions reach the same conversation.
pub fn record_route(state: &GatewayState, session_key: &str, route: &ChannelRoute) {
    let Ok(Some(mut row)) = state.store.session(session_key) else { return };
    let stored = ChannelRoute { reply_to: None, ..route.clone() };
    let value = serde_json::to_value(&stored).unwrap_or(Value::Null);
    if row.prefs.get("deliveryContext") == Some(&value) {
        return;
    }
    row.prefs.insert("deliveryContext".into(), value);
    row.prefs.insert("channel".into(), json!(route.channel));
    row.prefs.insert("lastChannel".into(), json!(route.channel));
    row.prefs.insert("lastTo".into(), json!(route.to));
    row.prefs.insert("lastAccountId".into(), json!(route.account_id));
    match &route.thread_id {
        Some(t) => row.prefs.insert("lastThreadId".into(), json!(t)),
        None => row.prefs.remove("lastThreadId"),
    };
    if let Err(e) = state.store.update_session(&row) {
        tracing::warn!(session = %session_key, error = %e, "cannot record the channel route");
    }
}
