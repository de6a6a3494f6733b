//! Which agent answers a message and in which session (spec C.2): exact peer binding → peer
//! wildcard → account → channel (`accountId: "*"`) → the default agent (`default: true`, else the
//! first entry, else `main`). A binding's `session` overrides `session.dmScope`/`groupScope`.
use std::collections::BTreeMap;

use homarus_config::{Binding, DmScope, GroupScope, HomarusConfig};
use homarus_protocol::session_key::{self, PeerKind, PeerRoute};

use crate::{ChatKind, InboundMessage};

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The answering agent.
    pub agent_id: String,
    /// The session key.
    pub session_key: String,
    /// What chose the agent: `peer`, `peer-wildcard`, `account`, `channel`, `default`.
    pub matched_by: &'static str,
}

fn peer_kind_matches(kind: &str, chat: ChatKind) -> bool {
    ChatKind::parse(kind.trim().to_ascii_lowercase().as_str()) == Some(chat)
}

fn account_matches(b: &Binding, account: &str) -> Option<&'static str> {
    match b.matches.account_id.as_deref().map(str::trim) {
        Some("*") => Some("channel"),
        Some(a) if a.eq_ignore_ascii_case(account) => Some("account"),
        Some(_) => None,
        // No accountId: the default account only.
        None if account == "default" => Some("account"),
        None => None,
    }
}

/// The binding that applies to `msg`, with what matched, by precedence.
pub fn matching_binding<'a>(bindings: &'a [Binding], msg: &InboundMessage) -> Option<(&'a Binding, &'static str)> {
    let candidates: Vec<(&Binding, &'static str)> = bindings
        .iter()
        .filter(|b| b.matches.channel.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(&msg.channel)))
        // Discord guild/role and Slack team fields never match here: a binding needs all its fields.
        .filter(|b| b.matches.extra.is_empty())
        .filter_map(|b| account_matches(b, &msg.account_id).map(|tier| (b, tier)))
        .collect();
    let peer_exact = candidates.iter().find(|(b, _)| {
        b.matches.peer.as_ref().is_some_and(|p| {
            peer_kind_matches(&p.kind, msg.chat) && p.id.as_text().trim() != "*" && p.id.as_text().trim() == msg.chat_id
        })
    });
    if let Some((b, _)) = peer_exact {
        return Some((b, "peer"));
    }
    let peer_any = candidates.iter().find(|(b, _)| {
        b.matches.peer.as_ref().is_some_and(|p| peer_kind_matches(&p.kind, msg.chat) && p.id.as_text().trim() == "*")
    });
    if let Some((b, _)) = peer_any {
        return Some((b, "peer-wildcard"));
    }
    for tier in ["account", "channel"] {
        if let Some((b, t)) = candidates.iter().find(|(b, t)| *t == tier && b.matches.peer.is_none()) {
            return Some((b, t));
        }
    }
    None
}

/// The default agent: the entry marked `default: true`, else the first entry, else `main`.
pub fn default_agent(cfg: &HomarusConfig) -> String {
    let entries = &cfg.agents.entries;
    let id = entries
        .iter()
        .find(|(_, e)| e.default == Some(true))
        .or_else(|| entries.iter().next())
        .map(|(id, _)| id.as_str())
        .unwrap_or(session_key::DEFAULT_AGENT_ID);
    session_key::normalize_agent_id(id)
}

/// Route `msg`: the agent and the session key.
pub fn route(cfg: &HomarusConfig, msg: &InboundMessage, telegram_topics: bool) -> Route {
    let hit = matching_binding(&cfg.bindings, msg);
    let (agent_id, matched_by) = match hit {
        Some((b, by)) => (session_key::normalize_agent_id(&b.agent_id), by),
        None => (default_agent(cfg), "default"),
    };
    let over = hit.and_then(|(b, _)| b.session.as_ref());
    let dm_scope = over
        .and_then(|s| s.dm_scope.as_deref())
        .and_then(|s| serde_json::from_value::<DmScope>(serde_json::Value::String(s.to_string())).ok())
        .or(cfg.session.dm_scope)
        .unwrap_or_default();
    let group_scope = over
        .and_then(|s| s.group_scope.as_deref())
        .and_then(|s| serde_json::from_value::<GroupScope>(serde_json::Value::String(s.to_string())).ok())
        .or(cfg.session.group_scope)
        .unwrap_or_default();
    let main_key = cfg.session.main_key.as_ref().and_then(|v| v.as_str());
    if msg.chat != ChatKind::Direct && group_scope == GroupScope::Main {
        return Route { session_key: session_key::main_session_key(&agent_id, main_key), agent_id, matched_by };
    }
    let kind = match msg.chat {
        ChatKind::Direct => PeerKind::Direct,
        ChatKind::Group => PeerKind::Group,
        ChatKind::Channel => PeerKind::Channel,
    };
    // Telegram forum topics live inside the group key (`:topic:<id>`); other threads are suffixes.
    let (thread, topic) = match (&msg.thread_id, telegram_topics && msg.chat == ChatKind::Group) {
        (Some(t), true) => (None, Some(t.as_str())),
        (Some(t), false) if msg.chat != ChatKind::Direct => (Some(t.as_str()), None),
        _ => (None, None),
    };
    let peer = PeerRoute {
        agent_id: &agent_id,
        channel: &msg.channel,
        account_id: Some(&msg.account_id),
        kind,
        peer_id: &msg.chat_id,
        thread_id: thread,
        topic_id: topic,
    };
    let links: BTreeMap<String, Vec<String>> = cfg.session.identity_links.clone().unwrap_or_default();
    let scope = match dm_scope {
        DmScope::Main => session_key::DmScope::Main,
        DmScope::PerPeer => session_key::DmScope::PerPeer,
        DmScope::PerChannelPeer => session_key::DmScope::PerChannelPeer,
        DmScope::PerAccountChannelPeer => session_key::DmScope::PerAccountChannelPeer,
    };
    let session_key = session_key::peer_session_key(&peer, scope, main_key, &links);
    Route { agent_id, session_key, matched_by }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(channel: &str, account: &str, chat: ChatKind, id: &str) -> InboundMessage {
        crate::test_message(channel, account, chat, id, "u1", "hi")
    }

    fn cfg(v: serde_json::Value) -> HomarusConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn binding_precedence() {
        let c = cfg(serde_json::json!({
            "agents": {"entries": {"main": {}, "support": {}, "ops": {}, "fam": {"default": true}}},
            "bindings": [
                {"agentId": "ops", "match": {"channel": "telegram", "accountId": "*"}},
                {"agentId": "support", "match": {"channel": "telegram", "accountId": "work"}},
                {"agentId": "main", "match": {"channel": "telegram", "accountId": "*", "peer": {"kind": "group", "id": "*"}}},
                {"agentId": "support", "match": {"channel": "telegram", "accountId": "*", "peer": {"kind": "group", "id": -100}}},
                {"agentId": "ops", "match": {"channel": "slack", "teamId": "T1"}}
            ]
        }));
        let r = route(&c, &msg("telegram", "home", ChatKind::Group, "-100"), true);
        assert_eq!((r.agent_id.as_str(), r.matched_by), ("support", "peer"));
        let r = route(&c, &msg("telegram", "home", ChatKind::Group, "-5"), true);
        assert_eq!((r.agent_id.as_str(), r.matched_by), ("main", "peer-wildcard"));
        let r = route(&c, &msg("telegram", "work", ChatKind::Direct, "9"), true);
        assert_eq!((r.agent_id.as_str(), r.matched_by), ("support", "account"));
        let r = route(&c, &msg("telegram", "home", ChatKind::Direct, "9"), true);
        assert_eq!((r.agent_id.as_str(), r.matched_by), ("ops", "channel"));
        // team-only Slack binding never matches; default agent
        let r = route(&c, &msg("slack", "default", ChatKind::Channel, "C1"), true);
        assert_eq!((r.agent_id.as_str(), r.matched_by), ("fam", "default"));
    }

    #[test]
    fn session_keys_follow_the_scopes() {
        let c = cfg(serde_json::json!({}));
        assert_eq!(route(&c, &msg("telegram", "default", ChatKind::Direct, "42"), true).session_key, "agent:main:main");
        let mut g = msg("telegram", "default", ChatKind::Group, "-100123");
        assert_eq!(route(&c, &g, true).session_key, "agent:main:telegram:group:-100123");
        g.thread_id = Some("42".into());
        assert_eq!(route(&c, &g, true).session_key, "agent:main:telegram:group:-100123:topic:42");
        let mut room = msg("qa-channel", "default", ChatKind::Channel, "Room1");
        assert_eq!(route(&c, &room, false).session_key, "agent:main:qa-channel:channel:room1");
        room.thread_id = Some("t-1".into());
        assert_eq!(route(&c, &room, false).session_key, "agent:main:qa-channel:channel:room1:thread:t-1");
        let c = cfg(serde_json::json!({"session": {"dmScope": "per-channel-peer", "groupScope": "main"}}));
        assert_eq!(
            route(&c, &msg("irc", "default", ChatKind::Direct, "Bob"), false).session_key,
            "agent:main:irc:direct:bob"
        );
        assert_eq!(route(&c, &msg("irc", "default", ChatKind::Channel, "#x"), false).session_key, "agent:main:main");
        let c = cfg(serde_json::json!({"session": {"dmScope": "per-account-channel-peer"}}));
        assert_eq!(
            route(&c, &msg("irc", "work", ChatKind::Direct, "bob"), false).session_key,
            "agent:main:irc:work:direct:bob"
        );
    }
}
