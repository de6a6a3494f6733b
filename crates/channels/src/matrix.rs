//! Matrix over the client-server API: password or token login, `/sync` long polling, rooms and DMs
//! (a room with two members), invites joined per `autoJoin`, threads (`m.thread`) and replies,
//! HTML `formatted_body`, edits (`m.replace`), typing, and `M_LIMIT_EXCEEDED` back-off.
//! End-to-end encrypted rooms are not supported: their events arrive as `m.room.encrypted` and are
//! skipped with a warning.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::backoff::Backoff;
use crate::format::{chunk, render, Markup};
use crate::{
    now_ms, set_status, str_of, AccountIo, AccountTask, Channel, ChannelError, ChatKind, InboundMessage, MediaRef,
    Outbound, Receipt, ReplyRef, Target,
};

/// The `matrix` channel.
pub struct Matrix;

const ID: &str = "matrix";
const SYNC_TIMEOUT_MS: u64 = 25_000;

impl Channel for Matrix {
    fn id(&self) -> &'static str {
        ID
    }

    fn text_limit(&self) -> usize {
        16_000
    }

    fn can_edit(&self) -> bool {
        true
    }

    fn normalize_id(&self, raw: &str) -> String {
        let raw = raw.trim();
        raw.strip_prefix("matrix:").unwrap_or(raw).to_lowercase()
    }

    /// Legacy keys `matrix:!room:server` (a room) and `matrix:@user:server` (a DM).
    fn legacy_chat_kind(&self, scoped_key: &str) -> Option<ChatKind> {
        let id = scoped_key.strip_prefix("matrix:")?;
        match id.chars().next()? {
            '!' | '#' => Some(ChatKind::Channel),
            '@' => Some(ChatKind::Direct),
            _ => None,
        }
    }

    fn start(&self, io: AccountIo) -> Result<AccountTask, ChannelError> {
        let s = &io.settings;
        let env =
            |v: &str| (io.account_id == "default").then(|| std::env::var(v).ok()).flatten().filter(|x| !x.is_empty());
        let homeserver = s.homeserver.clone().or_else(|| env("MATRIX_HOMESERVER")).ok_or_else(|| {
            ChannelError::Config(format!("channels.{ID}.homeserver is required (account {})", io.account_id))
        })?;
        let token = s.access_token.clone().or_else(|| env("MATRIX_ACCESS_TOKEN"));
        let user = s.user_id.clone().or_else(|| env("MATRIX_USER_ID"));
        let password = s.password.clone().or_else(|| env("MATRIX_PASSWORD"));
        if token.is_none() && (user.is_none() || password.is_none()) {
            return Err(ChannelError::Config(format!(
                "channels.{ID} needs accessToken, or userId and password (account {})",
                io.account_id
            )));
        }
        let client = Client {
            base: homeserver.trim_end_matches('/').to_string(),
            http: io.http.clone(),
            token: token.unwrap_or_default(),
        };
        Ok(Box::pin(run(client, user, password, io)))
    }
}

/// Percent-encode one path segment (room ids `!a:b`, user ids `@a:b`, event ids `$x`).
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Clone)]
struct Client {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ChannelError> {
        let mut tries = 0;
        loop {
            let mut rb = self.http.request(method.clone(), format!("{}{path}", self.base)).timeout(timeout);
            if !self.token.is_empty() {
                rb = rb.bearer_auth(&self.token);
            }
            if let Some(b) = &body {
                rb = rb.json(b);
            }
            let resp = rb.send().await.map_err(|e| ChannelError::Transport {
                channel: ID.into(),
                message: format!("{} {}: {}", method, path.split('?').next().unwrap_or(""), e.without_url()),
            })?;
            let status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ChannelError::Transport { channel: ID.into(), message: e.to_string() })?;
            let v: Value = serde_json::from_str(&String::from_utf8_lossy(&bytes)).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(v);
            }
            if v["errcode"] == "M_LIMIT_EXCEEDED" && tries < 3 {
                let ms = v["retry_after_ms"].as_u64().unwrap_or(1000).min(60_000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                tries += 1;
                continue;
            }
            let message =
                format!("{}: {} {}", status, v["errcode"].as_str().unwrap_or(""), v["error"].as_str().unwrap_or(""));
            return Err(ChannelError::Refused { channel: ID.into(), message });
        }
    }
}

async fn login(
    client: &mut Client,
    user: Option<String>,
    password: Option<String>,
    device: Option<String>,
) -> Result<String, ChannelError> {
    if client.token.is_empty() {
        let body = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                          "password": password, "initial_device_display_name": device.unwrap_or_else(|| "Homarus".into())});
        let v = client
            .request(reqwest::Method::POST, "/_matrix/client/v3/login", Some(body), Duration::from_secs(30))
            .await?;
        client.token = v["access_token"].as_str().unwrap_or_default().to_string();
        if client.token.is_empty() {
            return Err(ChannelError::Refused { channel: ID.into(), message: "login returned no access token".into() });
        }
    }
    let who = client
        .request(reqwest::Method::GET, "/_matrix/client/v3/account/whoami", None, Duration::from_secs(30))
        .await?;
    str_of(&who, "user_id")
        .ok_or_else(|| ChannelError::Refused { channel: ID.into(), message: "whoami returned no user_id".into() })
}

async fn run(mut client: Client, user: Option<String>, password: Option<String>, mut io: AccountIo) {
    set_status(&io.status, |s| {
        s.running = true;
        s.last_start_at = Some(now_ms());
    });
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let me = loop {
        let device = io.settings.device_name.clone();
        let got = tokio::select! {
            _ = io.shutdown.cancelled() => { crate::refuse_pending(&mut io, ID); return; }
            r = login(&mut client, user.clone(), password.clone(), device) => r,
        };
        match got {
            Ok(me) => break me,
            Err(e) => {
                set_status(&io.status, |s| {
                    s.last_error = Some(e.to_string());
                    s.restart_pending = true;
                    s.reconnect_attempts = backoff.attempts() + 1;
                });
                tracing::warn!(channel = ID, account = %io.account_id, error = %e, "Matrix login failed; retrying");
                if !backoff.wait(&io.shutdown).await {
                    crate::refuse_pending(&mut io, ID);
                    return;
                }
            }
        }
    };
    set_status(&io.status, |s| {
        s.bot = Some(me.clone());
        s.last_error = None;
    });
    let ctx = SyncCtx {
        account: io.account_id.clone(),
        settings: io.settings.clone(),
        inbound: io.inbound.clone(),
        status: io.status.clone(),
        shutdown: io.shutdown.clone(),
    };
    let syncer = sync_loop(client.clone(), me.clone(), &ctx);
    let mut txn = 0u64;
    let (client_ref, me_ref) = (&client, &me);
    let sender = crate::serve_outbound(&mut io.outbound, &io.shutdown, &io.status, |op| {
        txn += 1;
        perform(client_ref, me_ref, op, txn)
    });
    tokio::join!(syncer, sender);
    crate::refuse_pending(&mut io, ID);
    set_status(&io.status, |s| {
        s.running = false;
        s.connected = false;
    });
}

/// What the sync loop needs of the account (the sender half keeps the outbound receiver).
struct SyncCtx {
    account: String,
    settings: crate::ChannelSettings,
    inbound: tokio::sync::mpsc::Sender<InboundMessage>,
    status: crate::StatusCell,
    shutdown: tokio_util::sync::CancellationToken,
}

async fn sync_loop(client: Client, me: String, io: &SyncCtx) {
    let mut since: Option<String> = None;
    let mut direct: HashMap<String, bool> = HashMap::new();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let auto_join = io.settings.auto_join.clone().unwrap_or_else(|| "off".into());
    let join_list: Vec<String> = io.settings.auto_join_allowlist.clone().unwrap_or_default();
    loop {
        // The first sync only learns where "now" is: history from before the start is not replayed.
        let path = match &since {
            None => "/_matrix/client/v3/sync?timeout=0".to_string(),
            Some(s) => format!("/_matrix/client/v3/sync?timeout={SYNC_TIMEOUT_MS}&since={}", seg(s)),
        };
        let got = tokio::select! {
            _ = io.shutdown.cancelled() => return,
            r = client.request(reqwest::Method::GET, &path, None, Duration::from_millis(SYNC_TIMEOUT_MS + 15_000)) => r,
        };
        let v = match got {
            Ok(v) => v,
            Err(e) => {
                crate::mark_failed(&io.status, backoff.attempts() + 1, &e.to_string());
                tracing::warn!(channel = ID, account = %io.account, error = %e, "sync failed; retrying");
                if !backoff.wait(&io.shutdown).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        crate::mark_connected(&io.status);
        let first = since.is_none();
        since = str_of(&v, "next_batch").or(since);
        for (room, inv) in v["rooms"]["invite"].as_object().into_iter().flatten() {
            let is_direct = inv["invite_state"]["events"].as_array().into_iter().flatten().any(|e| {
                e["type"] == "m.room.member" && e["state_key"] == me.as_str() && e["content"]["is_direct"] == true
            });
            let allowed = should_join(&auto_join, &join_list, room);
            if !allowed {
                tracing::info!(channel = ID, %room, "invite not joined (channels.matrix.autoJoin)");
                continue;
            }
            match client
                .request(
                    reqwest::Method::POST,
                    &format!("/_matrix/client/v3/rooms/{}/join", seg(room)),
                    Some(json!({})),
                    Duration::from_secs(30),
                )
                .await
            {
                Ok(_) => {
                    direct.insert(room.clone(), is_direct);
                }
                Err(e) => tracing::warn!(channel = ID, %room, error = %e, "cannot join an invited room"),
            }
        }
        if first {
            continue;
        }
        for (room, data) in v["rooms"]["join"].as_object().into_iter().flatten() {
            for ev in data["timeline"]["events"].as_array().into_iter().flatten() {
                if ev["sender"] == me.as_str() {
                    continue;
                }
                if ev["type"] == "m.room.encrypted" {
                    tracing::warn!(channel = ID, %room, "encrypted event skipped: end-to-end encryption is not supported");
                    continue;
                }
                if ev["type"] != "m.room.message" {
                    continue;
                }
                let is_direct = match direct.get(room) {
                    Some(d) => *d,
                    None => {
                        let d = room_is_direct(&client, room).await;
                        direct.insert(room.clone(), d);
                        d
                    }
                };
                match parse_event(ev, room, is_direct, &me, &io.account) {
                    Ok(Some(msg)) => {
                        set_status(&io.status, |s| s.last_inbound_at = Some(now_ms()));
                        if io.inbound.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(why) => tracing::warn!(channel = ID, %room, %why, "skipped a malformed event"),
                }
            }
        }
    }
}

/// `autoJoin`: `always`, `allowlist` (rooms in `autoJoinAllowlist`), anything else (`off`, the default): never.
fn should_join(policy: &str, allowlist: &[String], room: &str) -> bool {
    match policy {
        "always" => true,
        "allowlist" => allowlist.iter().any(|r| r.trim() == room),
        _ => false,
    }
}

async fn room_is_direct(client: &Client, room: &str) -> bool {
    let path = format!("/_matrix/client/v3/rooms/{}/joined_members", seg(room));
    match client.request(reqwest::Method::GET, &path, None, Duration::from_secs(30)).await {
        Ok(v) => v["joined"].as_object().is_some_and(|m| m.len() <= 2),
        Err(_) => false,
    }
}

fn parse_event(
    ev: &Value,
    room: &str,
    is_direct: bool,
    me: &str,
    account: &str,
) -> Result<Option<InboundMessage>, String> {
    let sender = str_of(ev, "sender").ok_or("no sender")?;
    let c = &ev["content"];
    // Edits arrive as new events with m.new_content: the original was already answered.
    if c["m.relates_to"]["rel_type"] == "m.replace" {
        return Ok(None);
    }
    let body = c["body"].as_str().unwrap_or("");
    let mut text = crate::clip(body, crate::MAX_INBOUND_TEXT).to_string();
    let mut media = Vec::new();
    match c["msgtype"].as_str() {
        Some("m.text") | Some("m.notice") => {}
        Some("m.emote") => text = format!("* {text}"),
        Some(kind @ ("m.image" | "m.file" | "m.audio" | "m.video")) => {
            let url = str_of(c, "url").unwrap_or_default();
            media.push(MediaRef {
                kind: kind.trim_start_matches("m.").into(),
                reference: url,
                name: Some(text.clone()),
            });
        }
        _ => return Ok(None),
    }
    let rel = &c["m.relates_to"];
    let thread_id = (rel["rel_type"] == "m.thread").then(|| str_of(rel, "event_id")).flatten();
    let reply_to = str_of(&rel["m.in_reply_to"], "event_id")
        .filter(|_| rel["is_falling_back"] != true)
        .map(|id| ReplyRef { id, ..Default::default() });
    let localpart = me.trim_start_matches('@').split(':').next().unwrap_or("").to_lowercase();
    let mentioned = c["m.mentions"]["user_ids"].as_array().is_some_and(|ids| ids.iter().any(|i| i == me))
        || text.contains(me)
        || c["formatted_body"].as_str().is_some_and(|f| f.contains(&format!("matrix.to/#/{me}")))
        || (!localpart.is_empty()
            && text
                .to_lowercase()
                .split(|ch: char| !ch.is_alphanumeric() && ch != '_' && ch != '-')
                .any(|w| w == localpart));
    Ok(Some(InboundMessage {
        channel: ID.into(),
        account_id: account.into(),
        chat: if is_direct { ChatKind::Direct } else { ChatKind::Channel },
        chat_id: room.to_string(),
        chat_title: None,
        sender_name: Some(sender.trim_start_matches('@').split(':').next().unwrap_or(&sender).to_string()),
        sender_id: sender,
        text,
        message_id: str_of(ev, "event_id"),
        thread_id,
        reply_to,
        mentioned: !is_direct && mentioned,
        media,
        native_command: None,
        timestamp_ms: ev["origin_server_ts"].as_i64().unwrap_or_else(now_ms),
    }))
}

fn content(md: &str) -> Value {
    json!({"msgtype": "m.text", "body": render(md, Markup::Plain),
           "format": "org.matrix.custom.html", "formatted_body": render(md, Markup::Html)})
}

async fn perform(client: &Client, me: &str, op: Outbound, txn: u64) -> Result<Receipt, ChannelError> {
    let send_path = |room: &str, n: usize| {
        format!("/_matrix/client/v3/rooms/{}/send/m.room.message/homarus-{}-{txn}-{n}", seg(room), now_ms())
    };
    match op {
        Outbound::Send { target, text, reply_to } => {
            let mut ids = Vec::new();
            for (n, piece) in chunk(&text, 16_000).into_iter().enumerate() {
                let mut c = content(&piece);
                if c["body"].as_str().is_some_and(|b| b.trim().is_empty()) {
                    return Err(ChannelError::Empty);
                }
                c["m.relates_to"] = relation(&target, reply_to.as_deref());
                if c["m.relates_to"].is_null() {
                    c.as_object_mut().map(|o| o.remove("m.relates_to"));
                }
                let v = client
                    .request(reqwest::Method::PUT, &send_path(&target.chat_id, n), Some(c), Duration::from_secs(30))
                    .await?;
                ids.push(str_of(&v, "event_id").unwrap_or_default());
            }
            Ok(Receipt { message_ids: ids })
        }
        Outbound::Edit { target, message_id, text } => {
            let new = content(&text);
            let mut c = content(&format!("* {text}"));
            c["m.new_content"] = new;
            c["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": message_id});
            client
                .request(reqwest::Method::PUT, &send_path(&target.chat_id, 0), Some(c), Duration::from_secs(30))
                .await?;
            Ok(Receipt { message_ids: vec![message_id] })
        }
        Outbound::Typing { target } => {
            let path = format!("/_matrix/client/v3/rooms/{}/typing/{}", seg(&target.chat_id), seg(me));
            client
                .request(
                    reqwest::Method::PUT,
                    &path,
                    Some(json!({"typing": true, "timeout": 30000})),
                    Duration::from_secs(30),
                )
                .await?;
            Ok(Receipt::default())
        }
    }
}

/// Keep a reply in its thread; otherwise a plain reply reference.
fn relation(target: &Target, reply_to: Option<&str>) -> Value {
    match (&target.thread_id, reply_to) {
        (Some(root), r) => json!({"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
                                  "m.in_reply_to": {"event_id": r.unwrap_or(root)}}),
        (None, Some(r)) => json!({"m.in_reply_to": {"event_id": r}}),
        (None, None) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_to_messages() {
        let ev = json!({"type": "m.room.message", "sender": "@alice:localhost", "event_id": "$1", "origin_server_ts": 5,
                        "content": {"msgtype": "m.text", "body": "hey bot, hi",
                                    "m.relates_to": {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": true,
                                                     "m.in_reply_to": {"event_id": "$0"}}}});
        let m = parse_event(&ev, "!r:localhost", false, "@bot:localhost", "default").unwrap().unwrap();
        assert_eq!((m.chat, m.thread_id.as_deref(), m.mentioned), (ChatKind::Channel, Some("$root"), true));
        assert!(m.reply_to.is_none(), "a thread fallback is not a reply");
        let edit = json!({"type": "m.room.message", "sender": "@a:l", "content": {"msgtype": "m.text", "body": "x", "m.relates_to": {"rel_type": "m.replace"}}});
        assert_eq!(parse_event(&edit, "!r", false, "@bot:l", "d").unwrap(), None);
        assert!(parse_event(&json!({"content": {}}), "!r", false, "@b:l", "d").is_err());
        assert_eq!(seg("!abc:localhost"), "%21abc%3Alocalhost");
        let list = vec!["!ok:l".to_string()];
        assert!(should_join("always", &[], "!x:l"));
        assert!(should_join("allowlist", &list, "!ok:l") && !should_join("allowlist", &list, "!x:l"));
        assert!(!should_join("off", &list, "!ok:l"));
    }
}
