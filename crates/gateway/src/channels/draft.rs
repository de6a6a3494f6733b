//! Streamed drafts: on channels that can edit messages (Telegram by default; Matrix with
//! `streaming: "partial"`), the answer appears as one message that grows while the model writes,
//! edited at most once a second, and the final text replaces it.
//!
//! The run loop hands the text so far to a `watch` cell (it never waits, and only the latest text
//! is kept: a bounded buffer by construction); a task owned by the run sends the first draft once
//! there is enough text and edits it as the cell changes.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use homarus_channels::Outbound;

use super::{ChannelRoute, Delivery};
use crate::state::GatewayState;

/// Text needed before the first draft goes out (short answers are sent once, whole).
const MIN_DRAFT_CHARS: usize = 30;
/// Least time between two edits.
const EDIT_INTERVAL: Duration = Duration::from_secs(1);

/// A draft being streamed for one run.
pub struct Draft {
    text: watch::Sender<String>,
    done: tokio_util::sync::CancellationToken,
    task: JoinHandle<Option<String>>,
}

fn streaming_on(state: &GatewayState, route: &ChannelRoute) -> bool {
    let cfg = state.config();
    let Some(settings) = cfg.config.channels.effective(&route.channel, &route.account_id) else { return false };
    let mode = settings.streaming.and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Object(o) => o.get("mode").and_then(|m| m.as_str()).map(str::to_string),
        serde_json::Value::Bool(b) => Some(if b { "partial" } else { "off" }.to_string()),
        _ => None,
    });
    match mode.as_deref() {
        Some("off") => false,
        Some(_) => true,
        // Telegram streams by default (as OpenClaw); elsewhere an edit is visible noise, so opt in.
        None => route.channel == "telegram",
    }
}

/// Start a draft for a run delivering to a channel that can edit, when streaming is on.
pub fn start(state: &Arc<GatewayState>, deliver: &Delivery) -> Option<Draft> {
    let Delivery::Origin { route, .. } = deliver else { return None };
    let driver = state.channels.driver(&route.channel)?;
    if !driver.can_edit() || !streaming_on(state, route) {
        return None;
    }
    let (tx, mut rx) = watch::channel(String::new());
    let done = tokio_util::sync::CancellationToken::new();
    let (st, r, finished) = (state.clone(), route.clone(), done.clone());
    let task = tokio::spawn(async move {
        let mut id: Option<String> = None;
        let mut shown = String::new();
        // Ends when the run drops the sender (then the final text takes over).
        while rx.changed().await.is_ok() {
            let text = rx.borrow_and_update().clone();
            if text.chars().count() < MIN_DRAFT_CHARS || text == shown || text.len() > driver.text_limit() {
                continue;
            }
            let op = match &id {
                None => Outbound::Send { target: r.target(), text: text.clone(), reply_to: r.reply_to.clone() },
                Some(m) => Outbound::Edit { target: r.target(), message_id: m.clone(), text: text.clone() },
            };
            match st.channels.request(&r.channel, &r.account_id, op).await {
                Ok(receipt) => {
                    if id.is_none() {
                        id = receipt.message_ids.into_iter().next().filter(|m| !m.is_empty());
                    }
                    shown = text;
                }
                Err(e) => tracing::debug!(channel = %r.channel, error = %e, "draft update failed"),
            }
            tokio::select! {
                _ = finished.cancelled() => break,
                _ = tokio::time::sleep(EDIT_INTERVAL) => {}
            }
        }
        id
    });
    Some(Draft { text: tx, done, task })
}

impl Draft {
    /// The answer so far.
    pub fn update(&self, text: &str) {
        self.text.send_replace(text.to_string());
    }

    /// Stop streaming; the id of the draft message, if one was sent.
    pub async fn finish(self) -> Option<String> {
        self.done.cancel();
        drop(self.text);
        self.task.await.ok().flatten()
    }
}
