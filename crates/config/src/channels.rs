//! `channels.<id>` (chat channels and their accounts), `bindings` (which agent answers which
//! conversation) and `commands` (who may run privileged slash commands).
//!
//! One settings shape serves every channel: the access-control keys are the same everywhere, and each
//! channel reads its own connection keys (`botToken` for Telegram, `homeserver` for Matrix, `host` for
//! IRC, `baseUrl` for `qa-channel`). Keys Homarus does not act on are kept in `extra` and reported.
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `channels`: `defaults` plus one entry per channel id (`telegram`, `matrix`, `irc`, `qa-channel`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelsConfig {
    /// Defaults for every channel (`groupPolicy`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<ChannelSettings>,
    /// Channels by id.
    #[serde(flatten)]
    pub entries: BTreeMap<String, ChannelConfig>,
}

/// `channels.<id>`: settings for the channel (its default account), and named accounts that inherit them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelConfig {
    /// Named accounts; each inherits the channel-level settings and overrides what it sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accounts: BTreeMap<String, ChannelSettings>,
    /// The account outbound sends use when none is named (default: `default`, else the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_account: Option<String>,
    /// The channel-level settings.
    #[serde(flatten)]
    pub settings: ChannelSettings,
}

/// DM access (`dmPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Unknown senders get a pairing code; their messages are not processed until approved (default).
    #[default]
    Pairing,
    /// Only senders in `allowFrom` (and approved pairings).
    Allowlist,
    /// Anyone, when `allowFrom` contains `"*"`; else only the listed senders.
    Open,
    /// No direct messages.
    Disabled,
}

/// Group access (`groupPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Every group (still mention-gated).
    Open,
    /// Only groups in `groups` and senders in `groupAllowFrom` (default).
    #[default]
    Allowlist,
    /// No group messages.
    Disabled,
}

/// A sender or chat id in an allowlist: text or a number (Telegram ids are often written as numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IdEntry {
    /// `"123"`, `"@alice:example.org"`, `"nick!user@host"`, `"*"`.
    Text(String),
    /// `123456789`.
    Number(i64),
}

impl IdEntry {
    /// The entry as text.
    pub fn as_text(&self) -> String {
        match self {
            IdEntry::Text(s) => s.clone(),
            IdEntry::Number(n) => n.to_string(),
        }
    }
}

/// Settings of a channel or one of its accounts. Access keys apply to every channel; connection keys
/// to the channel named in their description.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSettings {
    /// Run this channel/account (default true when configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Display name of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Direct-message access: `pairing` (default), `allowlist`, `open`, `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_policy: Option<DmPolicy>,
    /// Senders allowed to DM (`"*"` = anyone, with `dmPolicy: open`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from: Option<Vec<IdEntry>>,
    /// Group access: `allowlist` (default), `open`, `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_policy: Option<GroupPolicy>,
    /// Senders allowed to trigger the agent in groups (default: `allowFrom`'s concrete entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_allow_from: Option<Vec<IdEntry>>,
    /// Groups/rooms/channels by id (`"*"` = every group): enablement, mention gating, sender allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<BTreeMap<String, GroupSettings>>,
    /// Longest outbound message before it is split (default per channel: Telegram 4000, Matrix 16000,
    /// IRC 350 bytes per line, qa-channel 4000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_chunk_limit: Option<u32>,
    /// Match allowlist entries against display names/nicks too (unsafe: names can change owners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerously_allow_name_matching: Option<bool>,

    /// Telegram: the bot token (`${TELEGRAM_BOT_TOKEN}`; the env var is used for the default account when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<String>,
    /// Telegram: a file holding the bot token (a regular file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// Telegram: Bot API root (default `https://api.telegram.org`; without `/bot<TOKEN>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_root: Option<String>,
    /// Telegram: public URL for webhook mode (unset = long polling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Telegram: secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token` (required in webhook mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Telegram: local path of the webhook listener (default `/telegram-webhook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    /// Telegram: local bind host of the webhook listener (default `127.0.0.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_host: Option<String>,
    /// Telegram: local port of the webhook listener (default 8787).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_port: Option<u16>,
    /// Telegram: stream drafts by editing one message (`partial`, default) or send the final only (`off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<Value>,

    /// Matrix: homeserver URL (`https://matrix.example.org`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homeserver: Option<String>,
    /// Matrix: the bot's user id (`@bot:example.org`), used with `password` to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Matrix: an access token (instead of `userId` + `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Matrix: login password; IRC: server password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Matrix: device display name at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Matrix: join invited rooms: `always`, `allowlist` (only rooms in `autoJoinAllowlist`), `off` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_join: Option<String>,
    /// Matrix: rooms (ids or aliases) `autoJoin: allowlist` accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_join_allowlist: Option<Vec<String>>,

    /// IRC: server host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// IRC: server port (default 6697 with TLS, 6667 plain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// IRC: use TLS (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// IRC: the bot's nick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    /// IRC: user name (default: the nick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// IRC: real name (default `Homarus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realname: Option<String>,
    /// IRC: channels to join (`["#homarus"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// IRC: identify to NickServ after connecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickserv: Option<NickServSettings>,
    /// IRC: authenticate with SASL PLAIN (account = `username`/nick, password = `sasl.password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSettings>,

    /// qa-channel: base URL of the QA message bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// qa-channel: the bot's user id on the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_user_id: Option<String>,
    /// qa-channel: the bot's display name on the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_display_name: Option<String>,
    /// qa-channel: long-poll timeout in ms (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_timeout_ms: Option<u64>,

    /// Other OpenClaw channel keys. Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `channels.<id>.groups.<groupId>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupSettings {
    /// Accept messages from this group (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Only answer when mentioned (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mention: Option<bool>,
    /// Senders allowed to trigger the agent in this group (overrides `groupAllowFrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from: Option<Vec<IdEntry>>,
    /// Other OpenClaw group keys (`tools`, `skills`, `systemPrompt`, `topics`, …). Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `channels.irc.nickserv`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NickServSettings {
    /// Identify after connecting (default true when a password is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The service nick (default `NickServ`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The NickServ password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Other OpenClaw NickServ keys (`register`, `registerEmail`). Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `channels.irc.sasl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaslSettings {
    /// SASL account name (default: `username`, else the nick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// SASL password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// One routing binding (`bindings[]`): conversations matching `match` go to `agentId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// The agent that answers.
    pub agent_id: String,
    /// What the binding matches; every field given must match.
    #[serde(default, rename = "match")]
    pub matches: BindingMatch,
    /// Session scope overrides for the matched conversations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<BindingSession>,
    /// Other OpenClaw binding keys (`type: "acp"`, …). Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `bindings[].match`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingMatch {
    /// Channel id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Account id (`"*"` = any account of the channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// A conversation: `{kind: direct|group|channel, id}` (`id: "*"` = any of that kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<BindingPeer>,
    /// Other match keys (`guildId`, `teamId`, `roles`: Discord/Slack). Never match here.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `bindings[].match.peer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingPeer {
    /// `direct`, `group` or `channel`.
    pub kind: String,
    /// The conversation id, or `*`.
    pub id: IdEntry,
}

/// `bindings[].session`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindingSession {
    /// DM session scope for these conversations (see `session.dmScope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_scope: Option<String>,
    /// Group session scope for these conversations (see `session.groupScope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_scope: Option<String>,
}

/// `commands`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandsConfig {
    /// Senders who may run privileged slash commands from a channel (`/reset`, `/new`, `/model`,
    /// `/compact`, `/queue`), as `<channel>:<senderId>` or `*`. Unset: every sender who may talk to the
    /// agent in a direct chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_allow_from: Option<Vec<IdEntry>>,
    /// Other OpenClaw `commands` keys. Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `cron`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronConfig {
    /// Run scheduled jobs (default true). Jobs can still be managed when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// After downtime, skip the missed slots of recurring jobs instead of running each job once at
    /// start (default false: catch up once). One-shot `at` jobs always run when missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_missed_jobs: Option<bool>,
    /// Sent as `Authorization: Bearer` with webhook deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_token: Option<String>,
    /// Most isolated job runs at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
    /// Other OpenClaw cron keys (`store`, `failureAlert`, …). Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ChannelConfig {
    /// The account ids this channel runs: its named accounts, or `default` when it has none.
    pub fn account_ids(&self) -> Vec<String> {
        if self.accounts.is_empty() {
            vec!["default".to_string()]
        } else {
            self.accounts.keys().cloned().collect()
        }
    }

    /// The settings of `account_id`: the channel settings with the account's on top.
    pub fn account(&self, account_id: &str) -> ChannelSettings {
        match self.accounts.get(account_id) {
            Some(over) => overlay(&self.settings, over),
            None => self.settings.clone(),
        }
    }
}

/// `over`'s keys on top of `base` (JSON objects, top level).
fn overlay(base: &ChannelSettings, over: &ChannelSettings) -> ChannelSettings {
    let (Ok(Value::Object(mut b)), Ok(Value::Object(o))) = (serde_json::to_value(base), serde_json::to_value(over))
    else {
        return over.clone();
    };
    b.extend(o);
    serde_json::from_value(Value::Object(b)).unwrap_or_else(|_| over.clone())
}

impl ChannelsConfig {
    /// The settings in force for `account_id` of `channel`: `channels.defaults`, then the channel's own
    /// keys, then the account's. `None` when the channel is not configured (its group policy then fails
    /// closed instead of inheriting the defaults).
    pub fn effective(&self, channel: &str, account_id: &str) -> Option<ChannelSettings> {
        let c = self.entries.get(channel)?;
        let own = c.account(account_id);
        Some(match &self.defaults {
            Some(d) => overlay(d, &own),
            None => own,
        })
    }

    /// `channels.*` keys kept only for compatibility, as dotted paths (for warnings).
    pub fn unimplemented_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, c) in &self.entries {
            let at = format!("channels.{id}");
            let all = std::iter::once((at.clone(), &c.settings))
                .chain(c.accounts.iter().map(|(a, s)| (format!("{at}.accounts.{a}"), s)));
            for (at, s) in all {
                out.extend(s.extra.keys().map(|k| format!("{at}.{k}")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_inherit_channel_settings() {
        let c: ChannelsConfig = serde_json::from_value(serde_json::json!({
            "telegram": {"botToken": "t", "dmPolicy": "allowlist", "allowFrom": [123, "456"],
                          "accounts": {"work": {"botToken": "w"}, "home": {"dmPolicy": "open"}},
                          "customCommands": []}
        }))
        .unwrap();
        let tg = &c.entries["telegram"];
        assert_eq!(tg.account_ids(), vec!["home", "work"]);
        let work = tg.account("work");
        assert_eq!(work.bot_token.as_deref(), Some("w"));
        assert_eq!(work.dm_policy, Some(DmPolicy::Allowlist));
        let home = tg.account("home");
        assert_eq!(home.bot_token.as_deref(), Some("t"));
        assert_eq!(home.dm_policy, Some(DmPolicy::Open));
        let allow: Vec<String> = home.allow_from.unwrap().iter().map(IdEntry::as_text).collect();
        assert_eq!(allow, vec!["123", "456"]);
        assert_eq!(c.unimplemented_keys(), vec!["channels.telegram.customCommands"]);
    }

    #[test]
    fn defaults_are_inherited_and_an_openclaw_channel_block_loads() {
        let c: ChannelsConfig = serde_json::from_value(serde_json::json!({
            "defaults": {"groupPolicy": "open", "dmPolicy": "allowlist"},
            "telegram": {"botToken": "t", "dmPolicy": "pairing", "allowFrom": ["tg:123", 456],
                          "groups": {"-1001": {"requireMention": false, "topics": {"*": {"requireMention": true}}}},
                          "streaming": {"mode": "partial"}, "replyToMode": "first", "linkPreview": false,
                          "accounts": {"default": {"name": "Main bot"}}}
        }))
        .unwrap();
        let s = c.effective("telegram", "default").unwrap();
        assert_eq!((s.group_policy, s.dm_policy), (Some(GroupPolicy::Open), Some(DmPolicy::Pairing)));
        assert_eq!(s.name.as_deref(), Some("Main bot"));
        assert!(c.effective("matrix", "default").is_none());
        let mut warned = c.unimplemented_keys();
        warned.sort();
        assert_eq!(warned, vec!["channels.telegram.linkPreview", "channels.telegram.replyToMode"]);
    }

    #[test]
    fn a_channel_without_accounts_runs_its_default_account() {
        let c: ChannelConfig = serde_json::from_value(serde_json::json!({"host": "irc", "nick": "bot"})).unwrap();
        assert_eq!(c.account_ids(), vec!["default"]);
        assert_eq!(c.account("default").nick.as_deref(), Some("bot"));
    }
}
