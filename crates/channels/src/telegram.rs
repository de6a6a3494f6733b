//! Telegram over the Bot API: long polling (default) or webhook mode, DMs, groups, forum topics,
//! replies, typing, message edits (streamed drafts), HTML formatting, and 429 `retry_after`.
//!
//! The token is part of every URL, so no URL is ever logged or put in an error: request errors are
//! stripped of it (`without_url`). Servers that answer with something that is not Telegram-shaped
//! (a test server's `{"message": …}` with HTTP 500) give a `Refused` error with what they said.
use std::time::Duration;

use serde_json::{json, Value};

use crate::backoff::Backoff;
use crate::format::{chunk, render, Markup};
use crate::{
    now_ms, set_status, str_of, AccountIo, AccountTask, Channel, ChannelError, ChatKind, InboundMessage, MediaRef,
    Outbound, Receipt, ReplyRef, StatusCell, Target,
};

mod webhook;

/// The `telegram` channel.
pub struct Telegram;

const ID: &str = "telegram";
/// Telegram's limit on one message.
const MAX_MESSAGE: usize = 4096;
/// Shortest time between two polls that returned nothing (servers that ignore `timeout`).
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Long-poll timeout asked of Telegram.
const POLL_TIMEOUT_S: u64 = 25;
/// Most retries of one call after 429.
const MAX_429_RETRIES: u32 = 3;
/// Longest `retry_after` honoured in place; longer ones fail the send.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl Channel for Telegram {
    fn id(&self) -> &'static str {
        ID
    }

    fn text_limit(&self) -> usize {
        4000
    }

    fn can_edit(&self) -> bool {
        true
    }

    fn normalize_id(&self, raw: &str) -> String {
        let raw = raw.trim();
        let lower = raw.to_ascii_lowercase();
        let stripped = ["telegram:", "tg:"].iter().find_map(|p| lower.strip_prefix(p)).unwrap_or(&lower);
        stripped.trim().to_string()
    }

    /// Legacy keys `telegram:<chatId>`: negative ids are groups, positive ones users.
    fn legacy_chat_kind(&self, scoped_key: &str) -> Option<ChatKind> {
        let id = scoped_key.strip_prefix("telegram:")?;
        let n: i64 = id.parse().ok()?;
        Some(if n < 0 { ChatKind::Group } else { ChatKind::Direct })
    }

    fn start(&self, io: AccountIo) -> Result<AccountTask, ChannelError> {
        let token = resolve_token(&io)?;
        let root = io.settings.api_root.clone().unwrap_or_else(|| "https://api.telegram.org".into());
        let api = Api { base: format!("{}/bot{token}", root.trim_end_matches('/')), http: io.http.clone() };
        if io.settings.webhook_url.is_some() && io.settings.webhook_secret.as_deref().unwrap_or("").is_empty() {
            return Err(ChannelError::Config(format!(
                "channels.{ID}.webhookSecret is required with webhookUrl (account {})",
                io.account_id
            )));
        }
        Ok(Box::pin(run(api, io)))
    }
}

fn resolve_token(io: &AccountIo) -> Result<String, ChannelError> {
    if let Some(t) = io.settings.bot_token.as_deref().filter(|t| !t.trim().is_empty()) {
        return Ok(t.trim().to_string());
    }
    if let Some(path) = &io.settings.token_file {
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| ChannelError::Config(format!("channels.{ID}.tokenFile {path}: {e}")))?;
        if !meta.file_type().is_file() {
            return Err(ChannelError::Config(format!("channels.{ID}.tokenFile {path} must be a regular file")));
        }
        let t = std::fs::read_to_string(path)
            .map_err(|e| ChannelError::Config(format!("channels.{ID}.tokenFile {path}: {e}")))?;
        return Ok(t.trim().to_string());
    }
    if io.account_id == "default" {
        if let Ok(t) = std::env::var("TELEGRAM_BOT_TOKEN") {
            if !t.trim().is_empty() {
                return Ok(t.trim().to_string());
            }
        }
    }
    Err(ChannelError::Config(format!(
        "channels.{ID}.botToken is not set for account {} (or tokenFile, or TELEGRAM_BOT_TOKEN)",
        io.account_id
    )))
}

/// The Bot API of one bot.
#[derive(Clone)]
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
}

/// One failed call: retry after a while (429), or give up.
enum CallError {
    RetryAfter(Duration),
    Fatal(ChannelError),
}

impl Api {
    async fn call_once(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, CallError> {
        let transport = |m: String| CallError::Fatal(ChannelError::Transport { channel: ID.into(), message: m });
        let resp = self
            .http
            .post(format!("{}/{method}", self.base))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport(format!("{method}: {}", e.without_url())))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(format!("{method}: {}", e.without_url())))?;
        // Invalid UTF-8 from the server is replaced, not fatal: one bad update must not stall the rest.
        let text = String::from_utf8_lossy(&bytes);
        let v: Value =
            serde_json::from_str(&text).map_err(|e| transport(format!("{method}: HTTP {status}, not JSON ({e})")))?;
        if v["ok"] == true {
            return Ok(v["result"].clone());
        }
        if v["error_code"] == 429 || status.as_u16() == 429 {
            let secs = v["parameters"]["retry_after"].as_u64().unwrap_or(1);
            return Err(CallError::RetryAfter(Duration::from_secs(secs)));
        }
        let message = v["description"]
            .as_str()
            .or(v["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(CallError::Fatal(ChannelError::Refused { channel: ID.into(), message: format!("{method}: {message}") }))
    }

    /// Call `method`, waiting out 429s (`retry_after`) a few times.
    pub(crate) async fn call(&self, method: &str, body: Value) -> Result<Value, ChannelError> {
        let mut tries = 0;
        loop {
            match self.call_once(method, &body, Duration::from_secs(30)).await {
                Ok(v) => return Ok(v),
                Err(CallError::RetryAfter(d)) if tries < MAX_429_RETRIES && d <= MAX_RETRY_AFTER => {
                    tracing::info!(channel = ID, %method, retry_after_s = d.as_secs(), "rate limited; waiting");
                    tokio::time::sleep(d).await;
                    tries += 1;
                }
                Err(CallError::RetryAfter(d)) => {
                    return Err(ChannelError::Refused {
                        channel: ID.into(),
                        message: format!("{method}: rate limited (retry after {} s)", d.as_secs()),
                    })
                }
                Err(CallError::Fatal(e)) => return Err(e),
            }
        }
    }
}

/// The bot's own identity, for mentions and replies.
#[derive(Clone, Default)]
pub(crate) struct Me {
    id: i64,
    username: String,
}

async fn run(api: Api, mut io: AccountIo) {
    set_status(&io.status, |s| {
        s.running = true;
        s.last_start_at = Some(now_ms());
        s.mode = Some(if io.settings.webhook_url.is_some() { "webhook" } else { "polling" }.into());
    });
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let me = loop {
        let got = tokio::select! {
            _ = io.shutdown.cancelled() => return stopped(&mut io),
            r = api.call("getMe", json!({})) => r,
        };
        match got {
            Ok(v) => {
                break Me { id: v["id"].as_i64().unwrap_or(0), username: v["username"].as_str().unwrap_or("").into() }
            }
            Err(e) => {
                failed(&io.status, &backoff, &e);
                tracing::warn!(channel = ID, account = %io.account_id, error = %e, "getMe failed; retrying");
                if !backoff.wait(&io.shutdown).await {
                    return stopped(&mut io);
                }
            }
        }
    };
    set_status(&io.status, |s| {
        s.bot = Some(format!("@{}", me.username));
        s.connected = true;
        s.restart_pending = false;
        s.last_error = None;
    });
    let receiver = {
        let (api, me, tx, status, stop) =
            (api.clone(), me.clone(), io.inbound.clone(), io.status.clone(), io.shutdown.clone());
        let account = io.account_id.clone();
        let settings = io.settings.clone();
        async move {
            if settings.webhook_url.is_some() {
                webhook::serve(api, me, account, settings, tx, status, stop).await
            } else {
                poll_loop(api, me, account, tx, status, stop).await
            }
        }
    };
    let sender = crate::serve_outbound(&mut io.outbound, &io.shutdown, &io.status, |op| perform(&api, op));
    tokio::join!(receiver, sender);
    stopped(&mut io);
}

fn stopped(io: &mut AccountIo) {
    crate::refuse_pending(io, ID);
    set_status(&io.status, |s| {
        s.running = false;
        s.connected = false;
    });
}

fn failed(status: &StatusCell, backoff: &Backoff, e: &ChannelError) {
    crate::mark_failed(status, backoff.attempts() + 1, &e.to_string());
}

async fn poll_loop(
    api: Api,
    me: Me,
    account: String,
    tx: tokio::sync::mpsc::Sender<InboundMessage>,
    status: StatusCell,
    stop: tokio_util::sync::CancellationToken,
) {
    // Polling and a webhook exclude each other on Telegram's side.
    if let Err(e) = api.call("deleteWebhook", json!({})).await {
        tracing::debug!(channel = ID, error = %e, "deleteWebhook failed");
    }
    let mut offset: i64 = 0;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let started = tokio::time::Instant::now();
        let body = json!({"offset": offset, "timeout": POLL_TIMEOUT_S,
                          "allowed_updates": ["message", "edited_message", "channel_post"]});
        let got = tokio::select! {
            _ = stop.cancelled() => return,
            r = api.call_once("getUpdates", &body, Duration::from_secs(POLL_TIMEOUT_S + 10)) => r,
        };
        let updates = match got {
            Ok(v) => v,
            Err(CallError::RetryAfter(d)) => {
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(d.min(MAX_RETRY_AFTER)) => {} }
                continue;
            }
            Err(CallError::Fatal(e)) => {
                failed(&status, &backoff, &e);
                tracing::warn!(channel = ID, %account, error = %e, "getUpdates failed; retrying");
                if !backoff.wait(&stop).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        crate::mark_connected(&status);
        let list = updates.as_array().cloned().unwrap_or_default();
        for u in &list {
            let Some(id) = u["update_id"].as_i64() else {
                tracing::warn!(channel = ID, %account, "skipped an update without update_id");
                continue;
            };
            // Servers that ignore `offset` may repeat updates: never handle one twice.
            if id < offset {
                continue;
            }
            offset = id + 1;
            match parse_update(u, &me, &account) {
                Ok(Some(msg)) => {
                    set_status(&status, |s| s.last_inbound_at = Some(now_ms()));
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(why) => tracing::warn!(channel = ID, %account, update = id, %why, "skipped a malformed update"),
            }
        }
        if list.is_empty() {
            let elapsed = started.elapsed();
            if elapsed < MIN_POLL_INTERVAL {
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(MIN_POLL_INTERVAL - elapsed) => {} }
            }
        }
    }
}

/// Turn one update into an inbound message (`None` for updates that carry no message for the bot).
pub(crate) fn parse_update(u: &Value, me: &Me, account: &str) -> Result<Option<InboundMessage>, String> {
    let m = ["message", "channel_post"].iter().map(|k| &u[*k]).find(|m| m.is_object());
    let Some(m) = m else { return Ok(None) };
    let chat = &m["chat"];
    let chat_id = str_of(chat, "id").ok_or("no chat id")?;
    let kind = match chat["type"].as_str() {
        Some("private") => ChatKind::Direct,
        Some("group") | Some("supergroup") => ChatKind::Group,
        Some("channel") => ChatKind::Channel,
        other => return Err(format!("unknown chat type {other:?}")),
    };
    let from = &m["from"];
    let sender_id = match (str_of(from, "id"), kind) {
        (Some(id), _) => id,
        // Channel posts have no sender: the channel speaks.
        (None, ChatKind::Channel) => chat_id.clone(),
        (None, _) => return Err("no sender".into()),
    };
    if from["id"].as_i64() == Some(me.id) && me.id != 0 {
        return Ok(None);
    }
    let raw = m["text"].as_str().or(m["caption"].as_str()).unwrap_or("");
    let text = crate::clip(raw, crate::MAX_INBOUND_TEXT).to_string();
    let handle = format!("@{}", me.username.to_ascii_lowercase());
    let mut mentioned = !me.username.is_empty() && text.to_ascii_lowercase().contains(&handle);
    let mut native_command = None;
    for e in m["entities"].as_array().into_iter().flatten() {
        if e["type"] == "text_mention" && e["user"]["id"].as_i64() == Some(me.id) {
            mentioned = true;
        }
        if e["type"] == "bot_command" && e["offset"] == 0 {
            let len = e["length"].as_u64().unwrap_or(0) as usize;
            let cmd: String = text.chars().skip(1).take(len.saturating_sub(1)).collect();
            let (name, target) = cmd.split_once('@').unwrap_or((&cmd, ""));
            if target.is_empty() || target.eq_ignore_ascii_case(&me.username) {
                native_command = Some(name.to_ascii_lowercase());
            }
        }
    }
    let reply_to = m["reply_to_message"].as_object().map(|r| {
        let r = Value::Object(r.clone());
        ReplyRef {
            id: str_of(&r, "message_id").unwrap_or_default(),
            text: r["text"].as_str().map(str::to_string),
            sender: str_of(&r["from"], "id"),
            to_bot: r["from"]["id"].as_i64() == Some(me.id) && me.id != 0,
        }
    });
    // Forum topics are sessions of their own; a plain reply thread in a group is not.
    let thread_id =
        if m["is_topic_message"] == true || chat["is_forum"] == true { str_of(m, "message_thread_id") } else { None };
    let mut media = Vec::new();
    if let Some(photos) = m["photo"].as_array() {
        if let Some(id) = photos.last().and_then(|p| str_of(p, "file_id")) {
            media.push(MediaRef { kind: "image".into(), reference: id, name: None });
        }
    }
    for (key, kind) in
        [("document", "file"), ("voice", "audio"), ("audio", "audio"), ("video", "video"), ("sticker", "sticker")]
    {
        if let Some(id) = str_of(&m[key], "file_id") {
            media.push(MediaRef { kind: kind.into(), reference: id, name: str_of(&m[key], "file_name") });
        }
    }
    if text.is_empty() && media.is_empty() {
        return Ok(None);
    }
    let name = from["username"].as_str().or(from["first_name"].as_str()).map(str::to_string);
    Ok(Some(InboundMessage {
        channel: ID.into(),
        account_id: account.to_string(),
        chat: kind,
        chat_id,
        chat_title: chat["title"].as_str().map(str::to_string),
        sender_id,
        sender_name: name,
        text,
        message_id: str_of(m, "message_id"),
        thread_id,
        reply_to,
        mentioned,
        media,
        native_command,
        timestamp_ms: m["date"].as_i64().map(|d| if d < 100_000_000_000 { d * 1000 } else { d }).unwrap_or_else(now_ms),
    }))
}

fn chat_id_value(t: &Target) -> Value {
    t.chat_id.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(t.chat_id.clone()))
}

async fn perform(api: &Api, op: Outbound) -> Result<Receipt, ChannelError> {
    match op {
        Outbound::Send { target, text, reply_to } => {
            let mut ids = Vec::new();
            for (i, piece) in chunk(&text, 4000).into_iter().enumerate() {
                let mut body = json!({"chat_id": chat_id_value(&target)});
                if let Some(th) = target.thread_id.as_ref().and_then(|t| t.parse::<i64>().ok()) {
                    body["message_thread_id"] = th.into();
                }
                if let (0, Some(r)) = (i, reply_to.as_ref().and_then(|r| r.parse::<i64>().ok())) {
                    body["reply_to_message_id"] = r.into();
                    body["allow_sending_without_reply"] = true.into();
                }
                let v = send_formatted(api, "sendMessage", body, &piece).await?;
                ids.push(str_of(&v, "message_id").unwrap_or_default());
            }
            Ok(Receipt { message_ids: ids })
        }
        Outbound::Edit { target, message_id, text } => {
            let body = json!({"chat_id": chat_id_value(&target),
                              "message_id": message_id.parse::<i64>().map(Value::from).unwrap_or(Value::String(message_id.clone()))});
            let shown = crate::clip(&text, 4000).to_string();
            match send_formatted(api, "editMessageText", body, &shown).await {
                Ok(_) => Ok(Receipt { message_ids: vec![message_id] }),
                // Editing to the same text is not an error for us.
                Err(ChannelError::Refused { message, .. }) if message.contains("message is not modified") => {
                    Ok(Receipt { message_ids: vec![message_id] })
                }
                Err(e) => Err(e),
            }
        }
        Outbound::Typing { target } => {
            let mut body = json!({"chat_id": chat_id_value(&target), "action": "typing"});
            if let Some(th) = target.thread_id.as_ref().and_then(|t| t.parse::<i64>().ok()) {
                body["message_thread_id"] = th.into();
            }
            api.call("sendChatAction", body).await.map(|_| Receipt::default())
        }
    }
}

/// Send with HTML; if Telegram cannot parse the markup, send the plain text instead.
async fn send_formatted(api: &Api, method: &str, mut body: Value, md: &str) -> Result<Value, ChannelError> {
    let html = render(md, Markup::Html);
    if html.len() <= MAX_MESSAGE {
        body["text"] = html.into();
        body["parse_mode"] = "HTML".into();
        match api.call(method, body.clone()).await {
            Ok(v) => return Ok(v),
            Err(ChannelError::Refused { message, .. }) if message.contains("can't parse entities") => {}
            Err(e) => return Err(e),
        }
        body.as_object_mut().map(|o| o.remove("parse_mode"));
    }
    let plain = render(md, Markup::Plain);
    if plain.trim().is_empty() {
        return Err(ChannelError::Empty);
    }
    body["text"] = crate::clip(&plain, MAX_MESSAGE).into();
    api.call(method, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Me {
        Me { id: 666, username: "TestNameBot".into() }
    }

    #[test]
    fn parses_dms_groups_topics_and_commands() {
        let u = json!({"update_id": 1, "message": {"message_id": 5, "date": 1700000000, "chat": {"id": 42, "type": "private"},
                       "from": {"id": 42, "username": "alice"}, "text": "/start@TestNameBot hi",
                       "entities": [{"type": "bot_command", "offset": 0, "length": 18}], "botToken": "x"}});
        let m = parse_update(&u, &me(), "default").unwrap().unwrap();
        assert_eq!((m.chat, m.chat_id.as_str(), m.sender_id.as_str()), (ChatKind::Direct, "42", "42"));
        assert_eq!(m.native_command.as_deref(), Some("start"));
        assert_eq!(m.timestamp_ms, 1_700_000_000_000);
        let u = json!({"update_id": 2, "message": {"message_id": 6, "chat": {"id": -100, "type": "supergroup", "is_forum": true},
                       "message_thread_id": 9, "is_topic_message": true, "from": {"id": 7},
                       "text": "hey @testnamebot", "reply_to_message": {"message_id": 3, "from": {"id": 666}, "text": "x"}}});
        let m = parse_update(&u, &me(), "default").unwrap().unwrap();
        assert_eq!((m.chat, m.thread_id.as_deref()), (ChatKind::Group, Some("9")));
        assert!(m.mentioned);
        assert!(m.reply_to.unwrap().to_bot);
    }

    #[test]
    fn hostile_updates_are_refused_not_fatal() {
        assert!(parse_update(
            &json!({"update_id": 3, "message": {"chat": {"id": 1, "type": "private"}, "text": "x"}}),
            &me(),
            "a"
        )
        .is_err());
        assert!(parse_update(&json!({"update_id": 3, "message": {"chat": {"id": 1, "type": "weird"}}}), &me(), "a")
            .is_err());
        assert_eq!(parse_update(&json!({"update_id": 4, "poll": {}}), &me(), "a").unwrap(), None);
        let huge = "x".repeat(crate::MAX_INBOUND_TEXT * 2);
        let u = json!({"update_id": 5, "message": {"chat": {"id": 1, "type": "private"}, "from": {"id": 1}, "text": huge, "new_field": {"a": 1}}});
        assert_eq!(parse_update(&u, &me(), "a").unwrap().unwrap().text.len(), crate::MAX_INBOUND_TEXT);
    }
}
