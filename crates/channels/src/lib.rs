//! Homarus chat channels.
//!
//! A channel (Telegram, Matrix, IRC, the synthetic `qa-channel`) runs one task per configured
//! account. The gateway drives it through [`Channel::start`], handing it an [`AccountIo`]: a bounded
//! sender for the messages it receives (already normalised into [`InboundMessage`]), a bounded
//! receiver of [`OutboundRequest`]s (send, edit, typing) each answered with a receipt, a status cell
//! and the shutdown token. The account task owns its connection, reconnects with backoff, and ends
//! when the token is cancelled.
//!
//! Everything a channel does not decide is decided here once for all channels, as pure functions the
//! gateway calls: who may talk to the agent ([`access`]), which agent and session answer
//! ([`routing`]), how Markdown becomes each channel's markup and how long text is split ([`format`]).
//! This crate knows nothing of the gateway.
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub mod access;
pub mod backoff;
pub mod format;
pub mod irc;
pub mod matrix;
pub mod pairing;
pub mod qa;
pub mod routing;
pub mod telegram;

pub use homarus_config::{ChannelSettings, DmPolicy, GroupPolicy};

/// The kind of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// A one-to-one conversation with the bot.
    Direct,
    /// A group chat.
    Group,
    /// A channel or room.
    Channel,
}

impl ChatKind {
    /// `direct`, `group` or `channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Direct => "direct",
            ChatKind::Group => "group",
            ChatKind::Channel => "channel",
        }
    }

    /// Parse `direct`/`dm`, `group`, `channel`/`room`.
    pub fn parse(s: &str) -> Option<ChatKind> {
        match s {
            "direct" | "dm" => Some(ChatKind::Direct),
            "group" => Some(ChatKind::Group),
            "channel" | "room" => Some(ChatKind::Channel),
            _ => None,
        }
    }
}

/// What a message replies to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyRef {
    /// The message replied to.
    pub id: String,
    /// Its text, when the channel gives it.
    pub text: Option<String>,
    /// Its sender, when the channel gives it.
    pub sender: Option<String>,
    /// Whether it was the bot's own message (an implicit mention).
    pub to_bot: bool,
}

/// A media item attached to a message (a reference; nothing is downloaded here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaRef {
    /// `image`, `audio`, `video`, `file`, `sticker`, …
    pub kind: String,
    /// Where it is: a URL, an `mxc://` URI or a channel file id.
    pub reference: String,
    /// File name or caption, when known.
    pub name: Option<String>,
}

/// A message received by a channel account, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundMessage {
    /// Channel id (`telegram`, …).
    pub channel: String,
    /// Account id.
    pub account_id: String,
    /// Conversation kind.
    pub chat: ChatKind,
    /// Conversation id: the peer for direct chats, the group/room id otherwise.
    pub chat_id: String,
    /// Conversation title, when known.
    pub chat_title: Option<String>,
    /// Stable sender id (Telegram user id, Matrix user id, IRC `nick!user@host`).
    pub sender_id: String,
    /// Sender display name or nick.
    pub sender_name: Option<String>,
    /// The text (captions for media).
    pub text: String,
    /// The channel's id of this message.
    pub message_id: Option<String>,
    /// Thread or forum topic.
    pub thread_id: Option<String>,
    /// What it replies to.
    pub reply_to: Option<ReplyRef>,
    /// The channel itself says the bot was mentioned (native mention).
    pub mentioned: bool,
    /// Attached media.
    pub media: Vec<MediaRef>,
    /// A native command (`/start` on Telegram, a qa-channel `nativeCommand`), without the slash.
    pub native_command: Option<String>,
    /// When it was sent, in ms.
    pub timestamp_ms: i64,
}

/// Where an outbound message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Conversation kind.
    pub chat: ChatKind,
    /// Conversation id (as in [`InboundMessage::chat_id`]).
    pub chat_id: String,
    /// Thread or topic to stay in.
    pub thread_id: Option<String>,
}

/// What the gateway asks an account to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// Send `text` (Markdown; the channel renders and splits it).
    Send {
        /// Where.
        target: Target,
        /// Markdown text.
        text: String,
        /// Reply to this message id.
        reply_to: Option<String>,
    },
    /// Replace the text of a message the bot sent (streamed drafts).
    Edit {
        /// Where.
        target: Target,
        /// The message to edit.
        message_id: String,
        /// The new Markdown text.
        text: String,
    },
    /// Show a typing indicator.
    Typing {
        /// Where.
        target: Target,
    },
}

/// The channel accepted an outbound message: the ids of what it sent (one per chunk).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Message ids, in order.
    pub message_ids: Vec<String>,
}

/// A request with its answer.
#[derive(Debug)]
pub struct OutboundRequest {
    /// What to do.
    pub op: Outbound,
    /// Where the receipt or error goes.
    pub reply: oneshot::Sender<Result<Receipt, ChannelError>>,
}

/// What went wrong in a channel.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    /// The account's configuration is incomplete or wrong.
    #[error("{0}")]
    Config(String),
    /// The remote service refused the request.
    #[error("{channel} refused: {message}")]
    Refused {
        /// Channel id.
        channel: String,
        /// What it said.
        message: String,
    },
    /// Could not reach the service, or it answered with something that is not its protocol.
    #[error("{channel} unreachable: {message}")]
    Transport {
        /// Channel id.
        channel: String,
        /// What happened.
        message: String,
    },
    /// The channel cannot do this (e.g. edit a message on IRC).
    #[error("{0}")]
    Unsupported(String),
    /// The account is not running.
    #[error("the {0} account is not running")]
    NotRunning(String),
    /// Formatting left nothing to send.
    #[error("nothing to send after formatting")]
    Empty,
}

/// The live status of one account (`channels.status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// Account id.
    pub account_id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Enabled in the config.
    pub enabled: bool,
    /// Has what it needs to start (token, host, …).
    pub configured: bool,
    /// The account task is running.
    pub running: bool,
    /// Connected to the service right now.
    pub connected: bool,
    /// A restart is scheduled (reconnect backoff).
    pub restart_pending: bool,
    /// Reconnect attempts since the last success.
    pub reconnect_attempts: u32,
    /// Last error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the account last started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_start_at: Option<i64>,
    /// When the last message came in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_inbound_at: Option<i64>,
    /// When the last message went out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_outbound_at: Option<i64>,
    /// The bot's identity on the service (username, user id, nick).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// `polling` or `webhook` (Telegram).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// DM policy in force.
    pub dm_policy: String,
    /// Group policy in force.
    pub group_policy: String,
}

/// A shared, cheaply readable account status.
pub type StatusCell = Arc<Mutex<AccountStatus>>;

/// Update a status cell.
pub fn set_status(cell: &StatusCell, f: impl FnOnce(&mut AccountStatus)) {
    let mut s = cell.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut s);
}

/// The plumbing between the gateway and one running account.
pub struct AccountIo {
    /// Account id.
    pub account_id: String,
    /// Its effective settings (channel settings with the account's on top).
    pub settings: ChannelSettings,
    /// Where received messages go (bounded: a full queue slows the channel down, nothing is dropped).
    pub inbound: mpsc::Sender<InboundMessage>,
    /// What the gateway wants sent.
    pub outbound: mpsc::Receiver<OutboundRequest>,
    /// The account's status.
    pub status: StatusCell,
    /// Cancelled when the account must stop.
    pub shutdown: CancellationToken,
    /// Shared HTTP client (rustls).
    pub http: reqwest::Client,
}

/// A running account's future.
pub type AccountTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One channel implementation.
pub trait Channel: Send + Sync {
    /// The channel id (`telegram`, `matrix`, `irc`, `qa-channel`).
    fn id(&self) -> &'static str;
    /// Default split length for outbound text.
    fn text_limit(&self) -> usize;
    /// Whether it can edit sent messages (streamed drafts).
    fn can_edit(&self) -> bool {
        false
    }
    /// Check the settings and build the account's task; `Err` names what is missing.
    fn start(&self, io: AccountIo) -> Result<AccountTask, ChannelError>;
    /// Normalise an allowlist entry or sender id for comparison (strip `telegram:`, lowercase, …).
    fn normalize_id(&self, raw: &str) -> String {
        let raw = raw.trim();
        let prefix = format!("{}:", self.id());
        raw.strip_prefix(&prefix).unwrap_or(raw).to_string()
    }
    /// The chat kind of a legacy (pre-`agent:`) session key of this channel, when it recognises it.
    fn legacy_chat_kind(&self, _scoped_key: &str) -> Option<ChatKind> {
        None
    }
}

/// A channel's classifier of its own legacy session keys, for [`homarus_protocol::session_key::derive_chat_type`].
pub struct LegacyKeys(pub Arc<dyn Channel>);

impl homarus_protocol::session_key::LegacyChatTypeClassifier for LegacyKeys {
    fn channel_id(&self) -> &str {
        self.0.id()
    }

    fn classify(&self, scoped_key: &str) -> Option<homarus_protocol::session_key::ChatType> {
        use homarus_protocol::session_key::ChatType;
        self.0.legacy_chat_kind(scoped_key).map(|k| match k {
            ChatKind::Direct => ChatType::Direct,
            ChatKind::Group => ChatType::Group,
            ChatKind::Channel => ChatType::Channel,
        })
    }
}

/// Classifiers of every built-in channel's legacy keys.
pub fn legacy_classifiers() -> Vec<LegacyKeys> {
    builtin().into_iter().map(LegacyKeys).collect()
}

/// Every built-in channel.
pub fn builtin() -> Vec<Arc<dyn Channel>> {
    vec![Arc::new(telegram::Telegram), Arc::new(matrix::Matrix), Arc::new(irc::Irc), Arc::new(qa::QaChannel)]
}

/// The connection works (again): connected, no reconnect pending.
pub fn mark_connected(cell: &StatusCell) {
    set_status(cell, |s| {
        s.connected = true;
        s.restart_pending = false;
        s.reconnect_attempts = 0;
    });
}

/// The connection failed with `error`; reconnect attempt number `attempt` follows.
pub fn mark_failed(cell: &StatusCell, attempt: u32, error: &str) {
    set_status(cell, |s| {
        s.connected = false;
        s.restart_pending = true;
        s.reconnect_attempts = attempt;
        s.last_error = Some(error.to_string());
    });
}

/// Answer outbound requests with `perform` until the account stops, noting each accepted send in the
/// status.
pub async fn serve_outbound<F, Fut>(
    rx: &mut mpsc::Receiver<OutboundRequest>,
    stop: &CancellationToken,
    status: &StatusCell,
    mut perform: F,
) where
    F: FnMut(Outbound) -> Fut,
    Fut: Future<Output = Result<Receipt, ChannelError>>,
{
    loop {
        let req = tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.recv() => match r { Some(r) => r, None => return },
        };
        let result = perform(req.op).await;
        if result.is_ok() {
            set_status(status, |s| s.last_outbound_at = Some(now_ms()));
        }
        let _ = req.reply.send(result);
    }
}

/// Answer every queued request with `NotRunning` (the account is stopping or disconnected).
pub fn refuse_pending(io: &mut AccountIo, channel: &str) {
    while let Ok(req) = io.outbound.try_recv() {
        let _ = req.reply.send(Err(ChannelError::NotRunning(format!("{channel}:{}", io.account_id))));
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Truncate `s` to at most `max` bytes at a character boundary (for hostile input).
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest inbound text the gateway accepts from any channel; longer text is cut here.
pub const MAX_INBOUND_TEXT: usize = 64 * 1024;

/// A JSON string field, or `None`.
pub(crate) fn str_of(v: &Value, key: &str) -> Option<String> {
    match &v[key] {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A plain text message for unit tests.
#[cfg(test)]
pub(crate) fn test_message(
    channel: &str,
    account: &str,
    chat: ChatKind,
    chat_id: &str,
    sender: &str,
    text: &str,
) -> InboundMessage {
    InboundMessage {
        channel: channel.into(),
        account_id: account.into(),
        chat,
        chat_id: chat_id.into(),
        chat_title: None,
        sender_id: sender.into(),
        sender_name: None,
        text: text.into(),
        message_id: None,
        thread_id: None,
        reply_to: None,
        mentioned: false,
        media: vec![],
        native_command: None,
        timestamp_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use homarus_protocol::session_key::{derive_chat_type, ChatType, LegacyChatTypeClassifier};

    #[test]
    fn channels_classify_their_legacy_keys() {
        let all = super::legacy_classifiers();
        let refs: Vec<&dyn LegacyChatTypeClassifier> = all.iter().map(|c| c as &dyn LegacyChatTypeClassifier).collect();
        assert_eq!(derive_chat_type("agent:main:telegram:-100123", &refs), ChatType::Group);
        assert_eq!(derive_chat_type("telegram:42", &refs), ChatType::Direct);
        assert_eq!(derive_chat_type("agent:main:irc:#ops", &refs), ChatType::Channel);
        assert_eq!(derive_chat_type("matrix:!room:example.org", &refs), ChatType::Channel);
        assert_eq!(derive_chat_type("matrix:@bob:example.org", &refs), ChatType::Direct);
        // Typed keys never reach the classifiers.
        assert_eq!(derive_chat_type("agent:main:telegram:group:-1:topic:2", &refs), ChatType::Group);
        assert_eq!(derive_chat_type("agent:main:slack:C1", &refs), ChatType::Unknown);
    }
}
