//! `qa-channel`: a client of the QA message bus (`../shared/reference/qa-bus.md`), the synthetic
//! channel end-to-end scenarios drive. It long-polls `/v1/poll`, turns `inbound-message` events into
//! inbound messages, and sends with `/v1/outbound/message` (`dm:<user>`, `channel:<room>`, keeping a
//! reply inside its thread).
use std::time::Duration;

use serde_json::{json, Value};

use crate::backoff::Backoff;
use crate::{
    now_ms, set_status, str_of, AccountIo, AccountTask, Channel, ChannelError, ChatKind, InboundMessage, Outbound,
    Receipt, ReplyRef, StatusCell, Target,
};

/// The `qa-channel` channel.
pub struct QaChannel;

const ID: &str = "qa-channel";

impl Channel for QaChannel {
    fn id(&self) -> &'static str {
        ID
    }

    fn text_limit(&self) -> usize {
        4000
    }

    fn start(&self, io: AccountIo) -> Result<AccountTask, ChannelError> {
        let base = io
            .settings
            .base_url
            .clone()
            .ok_or_else(|| ChannelError::Config(format!("channels.{ID}.baseUrl is required")))?;
        let bus = Bus {
            base: base.trim_end_matches('/').to_string(),
            http: io.http.clone(),
            account: io.account_id.clone(),
            bot: io.settings.bot_user_id.clone().unwrap_or_else(|| "homarus".into()),
            bot_name: io.settings.bot_display_name.clone(),
        };
        Ok(Box::pin(run(bus, io)))
    }
}

#[derive(Clone)]
struct Bus {
    base: String,
    http: reqwest::Client,
    account: String,
    bot: String,
    bot_name: Option<String>,
}

impl Bus {
    async fn post(&self, route: &str, body: Value, timeout: Duration) -> Result<Value, ChannelError> {
        let transport = |e: String| ChannelError::Transport { channel: ID.into(), message: e };
        let resp = self
            .http
            .post(format!("{}{route}", self.base))
            .json(&body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport(format!("POST {route}: {e}")))?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| transport(format!("POST {route}: bad JSON: {e}")))?;
        if !status.is_success() {
            let message = v["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("HTTP {status}"));
            return Err(ChannelError::Refused { channel: ID.into(), message });
        }
        Ok(v)
    }
}

async fn run(bus: Bus, mut io: AccountIo) {
    set_status(&io.status, |s| {
        s.running = true;
        s.last_start_at = Some(now_ms());
        s.bot = Some(bus.bot.clone());
    });
    let poll_ms = io.settings.poll_timeout_ms.unwrap_or(1000).clamp(50, 30_000);
    let poller = poll_loop(bus.clone(), io.inbound.clone(), io.status.clone(), io.shutdown.clone(), poll_ms);
    let sender = crate::serve_outbound(&mut io.outbound, &io.shutdown, &io.status, |op| send(&bus, op));
    tokio::join!(poller, sender);
    crate::refuse_pending(&mut io, ID);
    set_status(&io.status, |s| {
        s.running = false;
        s.connected = false;
    });
}

async fn poll_loop(
    bus: Bus,
    inbound: tokio::sync::mpsc::Sender<InboundMessage>,
    status: StatusCell,
    shutdown: tokio_util::sync::CancellationToken,
    poll_ms: u64,
) {
    let mut cursor: Value = Value::Null;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let body = json!({"accountId": bus.account, "cursor": cursor, "acknowledgedCursor": cursor,
                          "timeoutMs": poll_ms, "limit": 100});
        let polled = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = bus.post("/v1/poll", body, Duration::from_millis(poll_ms + 5000)) => r,
        };
        let v = match polled {
            Ok(v) => v,
            Err(e) => {
                crate::mark_failed(&status, backoff.attempts() + 1, &e.to_string());
                tracing::warn!(channel = ID, account = %bus.account, error = %e, "poll failed; retrying");
                if !backoff.wait(&shutdown).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        crate::mark_connected(&status);
        if !v["cursor"].is_null() {
            cursor = v["cursor"].clone();
        }
        for ev in v["events"].as_array().into_iter().flatten() {
            if ev["kind"] != "inbound-message" {
                continue;
            }
            match parse_message(&bus, &ev["message"]) {
                Ok(msg) => {
                    set_status(&status, |s| s.last_inbound_at = Some(now_ms()));
                    // A full queue waits here: nothing is dropped, the bus keeps the rest.
                    if inbound.send(msg).await.is_err() {
                        return;
                    }
                }
                Err(why) => {
                    tracing::warn!(channel = ID, account = %bus.account, %why, "skipped a malformed bus message")
                }
            }
        }
    }
}

fn parse_message(bus: &Bus, m: &Value) -> Result<InboundMessage, String> {
    let sender = str_of(m, "senderId").filter(|s| !s.is_empty()).ok_or("no senderId")?;
    if sender == bus.bot {
        return Err("own message".into());
    }
    let conv = &m["conversation"];
    let kind = conv["kind"].as_str().and_then(ChatKind::parse).ok_or("unknown conversation kind")?;
    let conv_id = str_of(conv, "id").ok_or("no conversation id")?;
    let text = crate::clip(m["text"].as_str().unwrap_or(""), crate::MAX_INBOUND_TEXT).to_string();
    let mention = format!("@{}", bus.bot);
    let mentioned = text.contains(&mention) || bus.bot_name.as_ref().is_some_and(|n| text.contains(&format!("@{n}")));
    Ok(InboundMessage {
        channel: ID.into(),
        account_id: bus.account.clone(),
        chat: kind,
        chat_id: if kind == ChatKind::Direct { sender.clone() } else { conv_id },
        chat_title: str_of(conv, "title"),
        sender_name: str_of(m, "senderName"),
        sender_id: sender,
        text,
        message_id: str_of(m, "id"),
        thread_id: str_of(m, "threadId"),
        reply_to: str_of(m, "replyToId").map(|id| ReplyRef { id, ..Default::default() }),
        mentioned,
        media: vec![],
        native_command: m["nativeCommand"]["name"].as_str().map(str::to_string),
        timestamp_ms: m["timestamp"].as_i64().unwrap_or_else(now_ms),
    })
}

fn to_of(t: &Target) -> String {
    match t.chat {
        ChatKind::Direct => format!("dm:{}", t.chat_id),
        _ => match &t.thread_id {
            Some(th) => format!("thread:{}/{th}", t.chat_id),
            None => format!("channel:{}", t.chat_id),
        },
    }
}

async fn send(bus: &Bus, op: Outbound) -> Result<Receipt, ChannelError> {
    match op {
        Outbound::Send { target, text, reply_to } => {
            let mut ids = Vec::new();
            for piece in crate::format::chunk(&text, 4000) {
                let body = json!({"to": to_of(&target), "text": crate::format::render(&piece, crate::format::Markup::Plain),
                                  "accountId": bus.account, "senderId": bus.bot, "senderName": bus.bot_name,
                                  "threadId": target.thread_id, "replyToId": reply_to});
                let v = bus.post("/v1/outbound/message", body, Duration::from_secs(15)).await?;
                ids.push(str_of(&v["message"], "id").unwrap_or_default());
            }
            Ok(Receipt { message_ids: ids })
        }
        Outbound::Edit { .. } => Err(ChannelError::Unsupported("qa-channel does not edit messages".into())),
        // The bus has no typing indicator; nothing to do.
        Outbound::Typing { .. } => Ok(Receipt::default()),
    }
}
