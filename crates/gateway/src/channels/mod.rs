//! The gateway's side of chat channels: it starts one task per configured channel account, owns
//! them (stopped by the `channels` close step), feeds what they receive through access control and
//! routing into agent runs ([`inbound`]), and sends replies back through the account that received
//! the message ([`outbound`]).
//!
//! Every account has a bounded inbound queue drained by one dispatcher task, so messages of one
//! account are admitted in the order they arrived; runs then follow the session's queue mode.
pub mod draft;
mod inbound;
mod outbound;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use homarus_channels::{
    AccountIo, AccountStatus, Channel, ChannelError, Outbound, OutboundRequest, Receipt, StatusCell,
};

use crate::state::GatewayState;

pub use outbound::{deliver_reply, record_route, send_text};

/// Inbound messages waiting per account before the channel is slowed down.
const INBOUND_QUEUE: usize = 256;
/// Outbound requests waiting per account.
const OUTBOUND_QUEUE: usize = 256;
/// Longest wait for a channel to accept one outbound message.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a conversation on a channel is, as stored on its session (`deliveryContext`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelRoute {
    /// Channel id.
    pub channel: String,
    /// Account id.
    pub account_id: String,
    /// Conversation kind.
    pub chat_type: homarus_channels::ChatKind,
    /// Conversation id.
    pub to: String,
    /// Thread or topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The message being answered (replies reference it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl ChannelRoute {
    /// The channel target of this route.
    pub fn target(&self) -> homarus_channels::Target {
        homarus_channels::Target { chat: self.chat_type, chat_id: self.to.clone(), thread_id: self.thread_id.clone() }
    }

    /// The route stored on a session (`prefs.deliveryContext`), if any.
    pub fn of_session(row: &homarus_store::SessionRow) -> Option<ChannelRoute> {
        row.prefs.get("deliveryContext").and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// Where the final reply of a run goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Delivery {
    /// The gateway's own clients only (chat events): `chat.send`, `agent`, HTTP.
    #[default]
    Operator,
    /// The channel conversation the message came from (`record`: also make it the session's route).
    Origin {
        /// The conversation.
        route: ChannelRoute,
        /// Store the route on the session (false for a non-owner DM into a pinned main session).
        record: bool,
    },
    /// The session's stored channel route, if it has one (wake-ups, background completions).
    LastRoute,
    /// A heartbeat turn: `HEARTBEAT_OK` stripped, short acknowledgements dropped, the rest sent to the
    /// session's stored route when `to_last`.
    Heartbeat {
        /// `ackMaxChars`.
        ack_max_chars: usize,
        /// `target: "last"`.
        to_last: bool,
        /// `lightContext`: only HEARTBEAT.md from the workspace.
        light_context: bool,
    },
}

struct RunningAccount {
    driver: Arc<dyn Channel>,
    outbound: Option<mpsc::Sender<OutboundRequest>>,
    status: StatusCell,
}

/// A pattern list and its compiled form.
pub(crate) type CompiledPatterns = (Vec<String>, Arc<Vec<regex::Regex>>);

/// The channel accounts of this gateway.
pub struct ChannelManager {
    drivers: Vec<Arc<dyn Channel>>,
    accounts: Mutex<BTreeMap<(String, String), RunningAccount>>,
    tracker: TaskTracker,
    stop: CancellationToken,
    http: reqwest::Client,
    /// Compiled mention patterns per agent, with the pattern list they came from.
    pub(crate) mention_cache: Mutex<std::collections::HashMap<String, CompiledPatterns>>,
}

impl Default for ChannelManager {
    fn default() -> Self {
        ChannelManager {
            drivers: homarus_channels::builtin(),
            accounts: Mutex::new(BTreeMap::new()),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            http: reqwest::Client::builder().connect_timeout(Duration::from_secs(15)).build().unwrap_or_default(),
            mention_cache: Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl ChannelManager {
    /// The driver of `channel`.
    pub fn driver(&self, channel: &str) -> Option<Arc<dyn Channel>> {
        self.drivers.iter().find(|d| d.id() == channel).cloned()
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), RunningAccount>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask `channel`/`account` to do `op`; the receipt says the channel accepted it.
    pub async fn request(&self, channel: &str, account: &str, op: Outbound) -> Result<Receipt, ChannelError> {
        let tx = {
            let accounts = self.accounts();
            let acc = accounts.get(&(channel.to_string(), account.to_string()));
            acc.and_then(|a| a.outbound.clone())
        };
        let Some(tx) = tx else { return Err(ChannelError::NotRunning(format!("{channel}:{account}"))) };
        let (reply, rx) = oneshot::channel();
        tx.send(OutboundRequest { op, reply })
            .await
            .map_err(|_| ChannelError::NotRunning(format!("{channel}:{account}")))?;
        match tokio::time::timeout(SEND_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ChannelError::NotRunning(format!("{channel}:{account}"))),
            Err(_) => Err(ChannelError::Transport {
                channel: channel.into(),
                message: format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Stop every account and wait for their tasks (bounded by the caller's step timeout).
    pub async fn stop_all(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn policy_names(s: &homarus_channels::ChannelSettings) -> (String, String) {
    let dm = serde_json::to_value(s.dm_policy.unwrap_or_default()).ok();
    let group = serde_json::to_value(s.group_policy.unwrap_or_default()).ok();
    let name = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    (name(dm), name(group))
}

/// Start every enabled account of every configured channel. An account whose settings are
/// incomplete is reported in `channels.status` (with the missing key) and not started; an unknown
/// channel id is reported once.
pub fn start_all(state: &Arc<GatewayState>) {
    let cfg = state.config();
    let mgr = &state.channels;
    for (channel_id, channel) in &cfg.config.channels.entries {
        let Some(driver) = mgr.driver(channel_id) else {
            tracing::warn!(channel = %channel_id, "channels.{channel_id}: Homarus has no such channel; ignored");
            continue;
        };
        for account_id in channel.account_ids() {
            let settings =
                cfg.config.channels.effective(channel_id, &account_id).unwrap_or_else(|| channel.account(&account_id));
            let enabled = settings.enabled != Some(false);
            let (dm, group) = policy_names(&settings);
            let status: StatusCell = Arc::new(Mutex::new(AccountStatus {
                account_id: account_id.clone(),
                name: settings.name.clone(),
                enabled,
                dm_policy: dm,
                group_policy: group,
                ..Default::default()
            }));
            let mut entry = RunningAccount { driver: driver.clone(), outbound: None, status: status.clone() };
            if enabled {
                let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
                let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
                let io = AccountIo {
                    account_id: account_id.clone(),
                    settings,
                    inbound: in_tx,
                    outbound: out_rx,
                    status: status.clone(),
                    shutdown: mgr.stop.child_token(),
                    http: mgr.http.clone(),
                };
                match driver.start(io) {
                    Ok(task) => {
                        homarus_channels::set_status(&status, |s| s.configured = true);
                        mgr.tracker.spawn(task);
                        mgr.tracker.spawn(inbound::dispatch(state.clone(), driver.clone(), in_rx, mgr.stop.clone()));
                        entry.outbound = Some(out_tx);
                        tracing::info!(channel = %channel_id, account = %account_id, "channel account started");
                    }
                    Err(e) => {
                        homarus_channels::set_status(&status, |s| s.last_error = Some(e.to_string()));
                        tracing::error!(channel = %channel_id, account = %account_id, error = %e, "channel account not started");
                    }
                }
            }
            mgr.accounts().insert((channel_id.clone(), account_id), entry);
        }
    }
}

/// `channels.status`: every configured account's live status.
pub fn status_json(state: &GatewayState) -> Value {
    let cfg = state.config();
    let accounts = state.channels.accounts();
    let mut by_channel: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for ((channel, _), acc) in accounts.iter() {
        let snap = acc.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut v = serde_json::to_value(&snap).unwrap_or_default();
        v["channel"] = json!(acc.driver.id());
        by_channel.entry(channel.clone()).or_default().push(v);
    }
    let order: Vec<&String> = by_channel.keys().collect();
    let summary: serde_json::Map<String, Value> = by_channel
        .iter()
        .map(|(ch, list)| {
            let any = |k: &str| list.iter().any(|a| a[k] == true);
            (
                ch.clone(),
                json!({"configured": any("configured"), "running": any("running"), "connected": any("connected")}),
            )
        })
        .collect();
    let defaults: serde_json::Map<String, Value> = cfg
        .config
        .channels
        .entries
        .iter()
        .map(|(id, c)| {
            let ids = c.account_ids();
            let def = c
                .default_account
                .clone()
                .filter(|d| ids.contains(d))
                .or_else(|| ids.iter().find(|a| *a == "default").cloned())
                .or_else(|| ids.first().cloned())
                .unwrap_or_else(|| "default".into());
            (id.clone(), Value::String(def))
        })
        .collect();
    let labels: serde_json::Map<String, Value> = order
        .iter()
        .map(|c| {
            let label = match c.as_str() {
                "telegram" => "Telegram",
                "matrix" => "Matrix",
                "irc" => "IRC",
                "qa-channel" => "QA Channel",
                other => other,
            };
            ((*c).clone(), Value::String(label.into()))
        })
        .collect();
    json!({"ts": crate::state::now_ms(), "channelOrder": order, "channelLabels": labels, "channels": summary,
           "channelAccounts": by_channel, "channelDefaultAccountId": defaults})
}
