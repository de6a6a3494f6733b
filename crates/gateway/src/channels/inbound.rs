//! From a received message to an agent run: route (bindings → agent and session key), access
//! control (pairing, allowlists, mention gating), owner check for privileged commands, the
//! `message_received` hooks, then a run whose reply goes back to where the message came from.
use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use homarus_channels::access::{self, AccessContext, Admission};
use homarus_channels::{Channel, ChatKind, InboundMessage, Outbound};
use homarus_store::PairingAsk;

use super::{ChannelRoute, Delivery};
use crate::runs::RunSpec;
use crate::state::{now_ms, GatewayState};

/// Slash commands only command owners may run from a channel.
const OWNER_COMMANDS: &[&str] = &["new", "reset", "stop", "compact", "model", "queue"];

/// Admit the messages of one account, in order, until the gateway stops.
pub(super) async fn dispatch(
    state: Arc<GatewayState>,
    driver: Arc<dyn Channel>,
    mut rx: mpsc::Receiver<InboundMessage>,
    stop: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        handle(&state, driver.as_ref(), msg).await;
    }
}

/// The agent's mention patterns, compiled once per distinct pattern list (not per message); an
/// invalid pattern is reported when it is first compiled.
fn mention_patterns(state: &GatewayState, agent_id: &str) -> Arc<Vec<regex::Regex>> {
    let cfg = state.config();
    let c = &cfg.config;
    let patterns = c
        .agents
        .entries
        .get(agent_id)
        .and_then(|e| e.group_chat.as_ref())
        .and_then(|g| g.mention_patterns.clone())
        .or_else(|| c.messages.group_chat.as_ref().and_then(|g| g.mention_patterns.clone()))
        .unwrap_or_default();
    let mut cache = state.channels.mention_cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((source, compiled)) = cache.get(agent_id) {
        if *source == patterns {
            return compiled.clone();
        }
    }
    let (ok, errors) = access::compile_patterns(&patterns);
    for e in errors {
        tracing::warn!(agent = %agent_id, "{e}");
    }
    let compiled = Arc::new(ok);
    cache.insert(agent_id.to_string(), (patterns, compiled.clone()));
    compiled
}

/// Handle one received message.
pub(super) async fn handle(state: &Arc<GatewayState>, driver: &dyn Channel, msg: InboundMessage) {
    let cfg = state.config();
    let Some(settings) = cfg.config.channels.effective(&msg.channel, &msg.account_id) else { return };
    let route = homarus_channels::routing::route(&cfg.config, &msg, msg.channel == "telegram");
    let normalize = |s: &str| driver.normalize_id(s);
    let allowed = state.store.channel_allowed(&msg.channel, &msg.account_id).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the pairing approvals; treating the sender as unknown");
        Vec::new()
    });
    let approved: Vec<String> = allowed.iter().map(|a| normalize(&a.sender_id)).collect();
    let patterns = mention_patterns(state, &route.agent_id);
    let cx = AccessContext { approved: &approved, mention_patterns: &patterns, normalize: &normalize };
    let who = format!("{}:{}", msg.channel, msg.sender_id);
    match access::admit(&msg, &settings, &cx) {
        Admission::Accept => {}
        Admission::NeedsPairing => return offer_pairing(state, &msg).await,
        Admission::NotMentioned => {
            tracing::debug!(sender = %who, chat = %msg.chat_id, "group message without a mention; not a request");
            return;
        }
        Admission::Drop(reason) => {
            tracing::info!(channel = %msg.channel, account = %msg.account_id, sender = %msg.sender_id,
                           chat = %msg.chat_id, reason, "inbound message dropped by access control");
            return;
        }
    }
    let origin = ChannelRoute {
        channel: msg.channel.clone(),
        account_id: msg.account_id.clone(),
        chat_type: msg.chat,
        to: msg.chat_id.clone(),
        thread_id: msg.thread_id.clone(),
        reply_to: msg.message_id.clone(),
    };
    let text = match &msg.native_command {
        // A native command (Telegram's /start, a bus command) is the slash command of that name.
        Some(cmd) if !msg.text.trim_start().starts_with('/') => format!("/{cmd} {}", msg.text).trim().to_string(),
        _ => msg.text.clone(),
    };
    // Privileged slash commands need a command owner.
    if let Some(name) = command_name(&text) {
        if OWNER_COMMANDS.contains(&name.as_str()) {
            let mut owners: Vec<String> = allowed.iter().filter(|a| a.owner).map(|a| a.sender_id.clone()).collect();
            owners.extend(settings.allow_from.iter().flatten().map(|e| e.as_text()).filter(|e| e.trim() != "*"));
            let list = cfg.config.commands.owner_allow_from.as_deref();
            if !access::is_owner(list, &owners, &msg.channel, &msg.sender_id, &normalize) {
                let reply = format!(
                    "Only the owner can use /{name}. To allow this sender: homarus config set commands.ownerAllowFrom \
                     '[\"{}:{}\"]'",
                    msg.channel, msg.sender_id
                );
                tracing::info!(sender = %who, command = %name, "privileged command refused: not a command owner");
                let _ = super::send_text(state, &origin, &reply).await;
                return;
            }
        }
    }
    let received = json!({"from": msg.sender_id, "content": msg.text, "timestamp": msg.timestamp_ms,
                          "metadata": {"senderName": msg.sender_name, "messageId": msg.message_id, "threadId": msg.thread_id,
                                       "chatType": msg.chat.as_str(), "to": msg.chat_id}});
    let ctx = json!({"channelId": msg.channel, "accountId": msg.account_id, "conversationId": msg.chat_id,
                     "sessionKey": route.session_key, "agentId": route.agent_id});
    if state.opts.hooks.has_handlers("message_received") {
        let hooks = state.opts.hooks.clone();
        let (ev, c) = (received.clone(), ctx);
        tokio::spawn(async move { hooks.run_observation("message_received", &ev, &c).await });
    }
    // Main-DM route pinning: with one concrete allowFrom entry, another DM sender sharing the main
    // session does not move the session's route.
    let record = !(msg.chat == ChatKind::Direct && pinned_elsewhere(&settings, &msg, &normalize));
    let spec = RunSpec {
        run_id: format!("{}-{}", msg.channel, uuid::Uuid::new_v4()),
        session_key: route.session_key.clone(),
        agent_id: route.agent_id.clone(),
        message: prompt_text(&msg, &text),
        extra_system_prompt: None,
        timeout: None,
        expected_session_id: None,
        deliver: Delivery::Origin { route: origin.clone(), record },
    };
    if let Some(reply) =
        match crate::commands::run(state, &RunSpec { message: text.clone(), ..spec.clone() }, &msg.channel).await {
            Ok(r) => r,
            Err(e) => Some(crate::commands::CommandReply { text: format!("⚠️ {}", e.message), then_run: None }),
        }
    {
        let _ = super::send_text(state, &origin, &reply.text).await;
        if let Some(next) = reply.then_run {
            start_run(state, RunSpec { message: next, ..spec }, &who);
        }
        return;
    }
    if text.trim().is_empty() && msg.media.is_empty() {
        return;
    }
    // The typing indicator is a courtesy: a channel that cannot show it is not an error.
    let typing = state.clone();
    let target = origin.target();
    tokio::spawn(async move {
        if let Err(e) = typing.channels.request(&origin.channel, &origin.account_id, Outbound::Typing { target }).await
        {
            tracing::debug!(error = %e, "typing indicator not shown");
        }
    });
    start_run(state, spec, &who);
}

fn start_run(state: &Arc<GatewayState>, spec: RunSpec, who: &str) {
    if let Err(e) = crate::runs::start(state, spec, |_| {}) {
        tracing::warn!(sender = %who, error = %e.message, "cannot start a run for a channel message");
    }
}

fn command_name(text: &str) -> Option<String> {
    let rest = text.trim().strip_prefix('/')?;
    let name = rest.split_whitespace().next()?.to_ascii_lowercase();
    // `/cmd@botname` (Telegram groups) names the command `cmd`.
    Some(name.split('@').next().unwrap_or(&name).to_string())
}

fn pinned_elsewhere(
    settings: &homarus_channels::ChannelSettings,
    msg: &InboundMessage,
    normalize: &(dyn Fn(&str) -> String + Sync),
) -> bool {
    let concrete: Vec<String> =
        settings.allow_from.iter().flatten().map(|e| e.as_text()).filter(|e| e.trim() != "*").collect();
    concrete.len() == 1 && normalize(&concrete[0]) != normalize(&msg.sender_id)
}

/// The text the agent sees: in groups, who said it; replies carry what they reply to.
fn prompt_text(msg: &InboundMessage, text: &str) -> String {
    let mut out = match msg.chat {
        ChatKind::Direct => text.to_string(),
        _ => format!("{}: {text}", msg.sender_name.as_deref().unwrap_or(&msg.sender_id)),
    };
    if let Some(r) = &msg.reply_to {
        if let Some(quoted) = &r.text {
            let who = r.sender.as_deref().unwrap_or("someone");
            let quoted = homarus_channels::clip(quoted, 2000);
            out.push_str(&format!("\n\n[Replying to {who}: {quoted}]"));
        }
    }
    for m in &msg.media {
        out.push_str(&format!("\n[{} attached: {}]", m.kind, m.name.as_deref().unwrap_or(&m.reference)));
    }
    out
}

async fn offer_pairing(state: &Arc<GatewayState>, msg: &InboundMessage) {
    let meta = json!({"name": msg.sender_name, "chat": msg.chat_id});
    let asked = state.store.channel_pairing_ask(
        (&msg.channel, &msg.account_id, &msg.sender_id),
        &meta,
        now_ms(),
        homarus_channels::pairing::CODE_TTL_MS,
        homarus_channels::pairing::MAX_PENDING,
        homarus_channels::pairing::new_code,
    );
    match asked {
        Ok(PairingAsk::Created(code)) => {
            tracing::info!(channel = %msg.channel, account = %msg.account_id, sender = %msg.sender_id,
                           "unknown sender: pairing code sent (approve with homarus pairing approve)");
            let route = ChannelRoute {
                channel: msg.channel.clone(),
                account_id: msg.account_id.clone(),
                chat_type: msg.chat,
                to: msg.chat_id.clone(),
                thread_id: None,
                reply_to: None,
            };
            let text = homarus_channels::pairing::request_text(&msg.channel, &msg.sender_id, &code);
            if let Err(e) = super::send_text(state, &route, &text).await {
                tracing::warn!(channel = %msg.channel, sender = %msg.sender_id, error = %e, "cannot send the pairing code");
            }
        }
        Ok(PairingAsk::Pending(_)) => {
            tracing::debug!(channel = %msg.channel, sender = %msg.sender_id, "unknown sender with a pending pairing code")
        }
        Ok(PairingAsk::Full) => {
            tracing::info!(channel = %msg.channel, account = %msg.account_id, sender = %msg.sender_id,
                                               "unknown sender ignored: the account has 3 pending pairing requests")
        }
        Err(e) => tracing::error!(error = %e, "cannot record a pairing request"),
    }
}
