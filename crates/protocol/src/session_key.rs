//! Session keys: how a conversation is named, and what kind of chat a key denotes.
//!
//! Every shape OpenClaw uses (all lower case):
//!
//! ```text
//! main (dmScope main)         agent:<agentId>:<mainKey>
//! per-peer                    agent:<agentId>:direct:<peerId>
//! per-channel-peer            agent:<agentId>:<channel>:direct:<peerId>
//! per-account-channel-peer    agent:<agentId>:<channel>:<accountId>:direct:<peerId>
//! group                       agent:<agentId>:<channel>:group:<id>
//! channel / room              agent:<agentId>:<channel>:channel:<id>
//! thread                      <base>:thread:<threadId>
//! telegram forum topic        agent:<agentId>:telegram:group:<chatId>:topic:<topicId>
//! subagent                    agent:<agentId>:subagent:<uuid>
//! explicit session id         agent:<agentId>:explicit:<sessionId>
//! cron (isolated)             cron:<jobId>, runs cron:<jobId>:run:<runId>
//! webhook                     hook:<uuid>
//! global scope                global
//! ```
use std::collections::BTreeMap;

/// The key of the single shared session when `session.scope` is `global`.
pub const GLOBAL_SESSION_KEY: &str = "global";
/// The default last segment of the main key (`session.mainKey`).
pub const DEFAULT_MAIN_KEY: &str = "main";
/// The default agent id.
pub const DEFAULT_AGENT_ID: &str = "main";
const MAX_AGENT_ID_LEN: usize = 64;

/// Trim, lower-case, replace anything but `[a-z0-9_-]` with `-`, cap at 64; empty becomes `main`.
pub fn normalize_agent_id(raw: &str) -> String {
    let id: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' { c } else { '-' })
        .take(MAX_AGENT_ID_LEN)
        .collect();
    if id.is_empty() {
        DEFAULT_AGENT_ID.to_string()
    } else {
        id
    }
}

fn seg(s: &str) -> String {
    s.trim().to_lowercase()
}

/// `session.dmScope`: how direct messages map to sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DmScope {
    /// Every DM shares the agent's main session.
    #[default]
    Main,
    /// One session per peer, across channels.
    PerPeer,
    /// One session per channel and peer.
    PerChannelPeer,
    /// One session per channel, account and peer.
    PerAccountChannelPeer,
}

/// What kind of conversation a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// A one-to-one conversation.
    Direct,
    /// A group chat.
    Group,
    /// A channel or room.
    Channel,
}

/// Where an inbound message came from, as routing sees it.
#[derive(Debug, Clone)]
pub struct PeerRoute<'a> {
    /// Agent handling it.
    pub agent_id: &'a str,
    /// Channel id, e.g. `telegram`.
    pub channel: &'a str,
    /// Channel account id.
    pub account_id: Option<&'a str>,
    /// Direct, group or channel.
    pub kind: PeerKind,
    /// Peer (direct) or group/channel id.
    pub peer_id: &'a str,
    /// Thread id (Slack/Discord threads).
    pub thread_id: Option<&'a str>,
    /// Telegram forum topic id.
    pub topic_id: Option<&'a str>,
}

/// `agent:<agentId>:<mainKey>`.
pub fn main_session_key(agent_id: &str, main_key: Option<&str>) -> String {
    let main = main_key.map(seg).filter(|m| !m.is_empty()).unwrap_or_else(|| DEFAULT_MAIN_KEY.into());
    format!("agent:{}:{main}", normalize_agent_id(agent_id))
}

/// The session key for an inbound message. `identity_links` (`session.identityLinks`: canonical id →
/// `["channel:peer", "peer", …]`) merges one person's ids across channels; ignored for the main scope.
pub fn peer_session_key(
    route: &PeerRoute<'_>,
    dm_scope: DmScope,
    main_key: Option<&str>,
    identity_links: &BTreeMap<String, Vec<String>>,
) -> String {
    let agent = normalize_agent_id(route.agent_id);
    let channel = seg(route.channel);
    let id = seg(route.peer_id);
    let base = match route.kind {
        PeerKind::Direct => {
            let peer = resolve_identity_link(identity_links, &channel, &id).unwrap_or(id);
            match dm_scope {
                DmScope::Main => return main_session_key(&agent, main_key),
                DmScope::PerPeer => format!("agent:{agent}:direct:{peer}"),
                DmScope::PerChannelPeer => format!("agent:{agent}:{channel}:direct:{peer}"),
                DmScope::PerAccountChannelPeer => {
                    let account =
                        route.account_id.map(seg).filter(|a| !a.is_empty()).unwrap_or_else(|| "default".into());
                    format!("agent:{agent}:{channel}:{account}:direct:{peer}")
                }
            }
        }
        PeerKind::Group => format!("agent:{agent}:{channel}:group:{id}"),
        PeerKind::Channel => format!("agent:{agent}:{channel}:channel:{id}"),
    };
    let base = match route.topic_id {
        Some(topic) if !topic.trim().is_empty() => format!("{base}:topic:{}", seg(topic)),
        _ => base,
    };
    match route.thread_id {
        Some(thread) if !thread.trim().is_empty() => thread_session_key(&base, thread),
        _ => base,
    }
}

/// The canonical id linked to `channel:peer` or `peer`, if any.
pub fn resolve_identity_link(links: &BTreeMap<String, Vec<String>>, channel: &str, peer: &str) -> Option<String> {
    let scoped = format!("{channel}:{peer}");
    links
        .iter()
        .find(|(_, ids)| ids.iter().any(|i| seg(i) == scoped || seg(i) == peer))
        .map(|(canonical, _)| seg(canonical))
}

/// `<base>:thread:<threadId>`.
pub fn thread_session_key(base: &str, thread_id: &str) -> String {
    format!("{base}:thread:{}", seg(thread_id))
}

/// `agent:<agentId>:subagent:<id>`.
pub fn subagent_session_key(agent_id: &str, id: &str) -> String {
    format!("agent:{}:subagent:{}", normalize_agent_id(agent_id), seg(id))
}

/// `agent:<agentId>:explicit:<sessionId>`.
pub fn explicit_session_key(agent_id: &str, session_id: &str) -> String {
    format!("agent:{}:explicit:{}", normalize_agent_id(agent_id), seg(session_id))
}

/// `cron:<jobId>`, or `cron:<jobId>:run:<runId>` for one run.
pub fn cron_session_key(job_id: &str, run_id: Option<&str>) -> String {
    match run_id {
        Some(run) => format!("cron:{}:run:{}", seg(job_id), seg(run)),
        None => format!("cron:{}", seg(job_id)),
    }
}

/// `hook:<id>`.
pub fn hook_session_key(id: &str) -> String {
    format!("hook:{}", seg(id))
}

/// The agent a key belongs to (`agent:<id>:…`), if it names one.
pub fn agent_id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("agent:")?;
    let (agent, _) = rest.split_once(':')?;
    (!agent.is_empty()).then_some(agent)
}

/// The kind of chat a session key denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatType {
    /// One-to-one.
    Direct,
    /// Group chat.
    Group,
    /// Channel or room.
    Channel,
    /// Not derivable.
    Unknown,
}

impl ChatType {
    /// `direct`, `group`, `channel` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Group => "group",
            Self::Channel => "channel",
            Self::Unknown => "unknown",
        }
    }
}

/// A channel's way of classifying its own legacy keys (keys written before typed segments existed).
pub trait LegacyChatTypeClassifier {
    /// The channel id this classifier answers for (the key's first token), e.g. `whatsapp`.
    fn channel_id(&self) -> &str;
    /// The chat type of `scoped_key` (the key without `agent:<id>:`), if this channel recognises it.
    fn classify(&self, scoped_key: &str) -> Option<ChatType>;
}

/// Derive the chat type of a key: typed segments first (`group`, `channel`, `direct`/`dm`), then the
/// built-in legacy shapes (WhatsApp `@g.us`, Discord `guild-…:channel-…`, `group:<id>`), then the
/// channel's own classifier, else `Unknown`.
pub fn derive_chat_type(key: &str, classifiers: &[&dyn LegacyChatTypeClassifier]) -> ChatType {
    let lowered = key.trim().to_lowercase();
    let scoped = match lowered.strip_prefix("agent:") {
        Some(rest) => rest.split_once(':').map(|(_, r)| r).unwrap_or(""),
        None => lowered.as_str(),
    };
    let tokens: Vec<&str> = scoped.split(':').collect();
    if tokens.contains(&"group") {
        return ChatType::Group;
    }
    if tokens.contains(&"channel") {
        return ChatType::Channel;
    }
    if tokens.iter().any(|t| *t == "direct" || *t == "dm") {
        return ChatType::Direct;
    }
    if let Some(t) = builtin_legacy(scoped) {
        return t;
    }
    let first = tokens.first().copied().unwrap_or("");
    let candidates = [Some(first), scoped.contains("@g.us").then_some("whatsapp")];
    for c in classifiers {
        if candidates.contains(&Some(c.channel_id())) {
            if let Some(t) = c.classify(scoped) {
                return t;
            }
        }
    }
    ChatType::Unknown
}

fn builtin_legacy(scoped: &str) -> Option<ChatType> {
    // group:<id>
    if let Some(id) = scoped.strip_prefix("group:") {
        if !id.is_empty() && !id.contains(':') {
            return Some(ChatType::Group);
        }
    }
    // 1203630-1600000@g.us (digits, dash-separated digit runs)
    if let Some(local) = scoped.strip_suffix("@g.us") {
        if !local.is_empty() && local.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            return Some(ChatType::Group);
        }
    }
    // whatsapp:<anything without :group:>@g.us
    if let Some(rest) = scoped.strip_prefix("whatsapp:") {
        if rest.len() > "@g.us".len() && rest.ends_with("@g.us") && !scoped.contains(":group:") {
            return Some(ChatType::Group);
        }
    }
    // discord:[<account>:]guild-<id>:channel-<id>
    if let Some(rest) = scoped.strip_prefix("discord:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let tail = match parts.len() {
            2 => Some((parts[0], parts[1])),
            3 if !parts[0].is_empty() => Some((parts[1], parts[2])),
            _ => None,
        };
        if let Some((guild, channel)) = tail {
            let ok = |p: &str, prefix: &str| p.strip_prefix(prefix).is_some_and(|id| !id.is_empty());
            if ok(guild, "guild-") && ok(channel, "channel-") {
                return Some(ChatType::Channel);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route<'a>(kind: PeerKind, peer: &'a str) -> PeerRoute<'a> {
        PeerRoute {
            agent_id: "Main",
            channel: "Telegram",
            account_id: Some("Bot1"),
            kind,
            peer_id: peer,
            thread_id: None,
            topic_id: None,
        }
    }

    #[test]
    fn agent_ids_normalize() {
        assert_eq!(normalize_agent_id("  My Agent! "), "my-agent-");
        assert_eq!(normalize_agent_id(""), "main");
        assert_eq!(normalize_agent_id(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn every_key_shape() {
        let none = BTreeMap::new();
        let dm = route(PeerKind::Direct, "U42");
        assert_eq!(peer_session_key(&dm, DmScope::Main, None, &none), "agent:main:main");
        assert_eq!(peer_session_key(&dm, DmScope::Main, Some("Home"), &none), "agent:main:home");
        assert_eq!(peer_session_key(&dm, DmScope::PerPeer, None, &none), "agent:main:direct:u42");
        assert_eq!(peer_session_key(&dm, DmScope::PerChannelPeer, None, &none), "agent:main:telegram:direct:u42");
        assert_eq!(
            peer_session_key(&dm, DmScope::PerAccountChannelPeer, None, &none),
            "agent:main:telegram:bot1:direct:u42"
        );
        assert_eq!(
            peer_session_key(&route(PeerKind::Group, "-100"), DmScope::Main, None, &none),
            "agent:main:telegram:group:-100"
        );
        assert_eq!(
            peer_session_key(&route(PeerKind::Channel, "C1"), DmScope::Main, None, &none),
            "agent:main:telegram:channel:c1"
        );
        let mut topic = route(PeerKind::Group, "-100");
        topic.topic_id = Some("7");
        assert_eq!(peer_session_key(&topic, DmScope::Main, None, &none), "agent:main:telegram:group:-100:topic:7");
        let mut thread = route(PeerKind::Channel, "C1");
        thread.thread_id = Some("T9");
        assert_eq!(peer_session_key(&thread, DmScope::Main, None, &none), "agent:main:telegram:channel:c1:thread:t9");
        assert_eq!(subagent_session_key("main", "abc"), "agent:main:subagent:abc");
        assert_eq!(explicit_session_key("main", "S1"), "agent:main:explicit:s1");
        assert_eq!(cron_session_key("job", None), "cron:job");
        assert_eq!(cron_session_key("job", Some("r1")), "cron:job:run:r1");
        assert_eq!(hook_session_key("h"), "hook:h");
        assert_eq!(GLOBAL_SESSION_KEY, "global");
        assert_eq!(agent_id_of("agent:ops:main"), Some("ops"));
        assert_eq!(agent_id_of("cron:x"), None);
    }

    #[test]
    fn identity_links_merge_peers_except_in_main_scope() {
        let mut links = BTreeMap::new();
        links.insert("Alice".to_string(), vec!["telegram:u42".to_string(), "discord:99".to_string()]);
        let dm = route(PeerKind::Direct, "u42");
        assert_eq!(peer_session_key(&dm, DmScope::PerPeer, None, &links), "agent:main:direct:alice");
        assert_eq!(peer_session_key(&dm, DmScope::Main, None, &links), "agent:main:main");
    }

    struct Irc;
    impl LegacyChatTypeClassifier for Irc {
        fn channel_id(&self) -> &str {
            "irc"
        }
        fn classify(&self, scoped: &str) -> Option<ChatType> {
            scoped.strip_prefix("irc:#").map(|_| ChatType::Channel)
        }
    }

    #[test]
    fn chat_types_including_legacy_keys_and_channel_classifiers() {
        let none: &[&dyn LegacyChatTypeClassifier] = &[];
        assert_eq!(derive_chat_type("agent:main:telegram:group:-100", none), ChatType::Group);
        assert_eq!(derive_chat_type("agent:main:slack:channel:c1:thread:t", none), ChatType::Channel);
        assert_eq!(derive_chat_type("agent:main:direct:u1", none), ChatType::Direct);
        assert_eq!(derive_chat_type("agent:main:telegram:dm:u1", none), ChatType::Direct);
        assert_eq!(derive_chat_type("agent:main:main", none), ChatType::Unknown);
        assert_eq!(derive_chat_type("group:abc", none), ChatType::Group);
        assert_eq!(derive_chat_type("120363-1600@g.us", none), ChatType::Group);
        assert_eq!(derive_chat_type("agent:main:whatsapp:1203@g.us", none), ChatType::Group);
        assert_eq!(derive_chat_type("discord:guild-1:channel-2", none), ChatType::Channel);
        assert_eq!(derive_chat_type("discord:acct:guild-1:channel-2", none), ChatType::Channel);
        assert_eq!(derive_chat_type("discord:guild-1", none), ChatType::Unknown);
        assert_eq!(derive_chat_type("irc:#rust", none), ChatType::Unknown);
        let irc = Irc;
        assert_eq!(derive_chat_type("irc:#rust", &[&irc]), ChatType::Channel);
        assert_eq!(derive_chat_type("agent:main:irc:#rust", &[&irc]), ChatType::Channel);
    }
}
