//! Who may talk to the agent: DM policy with pairing, group policy with allowlists, and mention
//! gating. Pure decisions over the settings, the message and the stored pairing approvals; the
//! gateway acts on them (sends the pairing code, drops, runs the agent).
//!
//! Order for a group message (OpenClaw's): `groupPolicy` → group allowlist (`groups`) → sender
//! allowlist (`groups.<id>.allowFrom`, else `groupAllowFrom`, else the concrete `allowFrom` entries)
//! → mention gating (`requireMention`, default true). Pairing approvals grant DM access only.
use regex::Regex;

use homarus_config::{ChannelSettings, DmPolicy, GroupPolicy, GroupSettings, IdEntry};

use crate::{ChatKind, InboundMessage};

/// What to do with an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It reaches the agent.
    Accept,
    /// An unknown DM sender under `dmPolicy: pairing`: offer a pairing code, do not process.
    NeedsPairing,
    /// A group message that does not mention the bot: not a request.
    NotMentioned,
    /// Refused, with the reason (logged with channel and sender).
    Drop(&'static str),
}

/// The facts access control needs besides the message and settings.
pub struct AccessContext<'a> {
    /// Sender ids approved through DM pairing for this channel account (normalised).
    pub approved: &'a [String],
    /// Mention patterns of the agent that would answer.
    pub mention_patterns: &'a [Regex],
    /// Normalise an id for comparison (the channel's rule).
    pub normalize: &'a (dyn Fn(&str) -> String + Sync),
}

/// Decide what happens to `msg` under `settings`.
pub fn admit(msg: &InboundMessage, settings: &ChannelSettings, cx: &AccessContext<'_>) -> Admission {
    match msg.chat {
        ChatKind::Direct => admit_direct(msg, settings, cx),
        ChatKind::Group | ChatKind::Channel => admit_group(msg, settings, cx),
    }
}

fn admit_direct(msg: &InboundMessage, settings: &ChannelSettings, cx: &AccessContext<'_>) -> Admission {
    let allow = settings.allow_from.as_deref().unwrap_or(&[]);
    let wildcard = allow.iter().any(|e| e.as_text().trim() == "*");
    let listed = sender_listed(msg, allow, settings, cx);
    let approved = cx.approved.iter().any(|a| *a == (cx.normalize)(&msg.sender_id));
    match settings.dm_policy.unwrap_or_default() {
        DmPolicy::Disabled => Admission::Drop("dm-disabled"),
        // `open` admits everyone only with "*"; approvals never widen it.
        DmPolicy::Open if wildcard || listed => Admission::Accept,
        DmPolicy::Open => Admission::Drop("not-allowlisted"),
        DmPolicy::Allowlist if wildcard || listed || approved => Admission::Accept,
        DmPolicy::Allowlist => Admission::Drop("not-allowlisted"),
        DmPolicy::Pairing if wildcard || listed || approved => Admission::Accept,
        DmPolicy::Pairing => Admission::NeedsPairing,
    }
}

/// The group's own entry, else the `"*"` entry.
pub fn group_entry<'a>(settings: &'a ChannelSettings, chat_id: &str) -> Option<&'a GroupSettings> {
    let groups = settings.groups.as_ref()?;
    groups
        .get(chat_id)
        .or_else(|| groups.iter().find(|(k, _)| k.eq_ignore_ascii_case(chat_id)).map(|(_, v)| v))
        .or_else(|| groups.get("*"))
}

fn admit_group(msg: &InboundMessage, settings: &ChannelSettings, cx: &AccessContext<'_>) -> Admission {
    let policy = settings.group_policy.unwrap_or_default();
    if policy == GroupPolicy::Disabled {
        return Admission::Drop("group-disabled");
    }
    let entry = group_entry(settings, &msg.chat_id);
    if entry.and_then(|e| e.enabled) == Some(false) {
        return Admission::Drop("group-disabled");
    }
    let sender_list: Option<Vec<IdEntry>> =
        entry.and_then(|e| e.allow_from.clone()).or_else(|| settings.group_allow_from.clone()).or_else(|| {
            let concrete: Vec<IdEntry> =
                settings.allow_from.iter().flatten().filter(|e| e.as_text().trim() != "*").cloned().collect();
            (!concrete.is_empty()).then_some(concrete)
        });
    if policy == GroupPolicy::Allowlist {
        // The group itself must be listed, unless only senders are (then any group they are in).
        let group_listed = entry.is_some();
        let only_senders = settings.groups.is_none() && settings.group_allow_from.is_some();
        if !group_listed && !only_senders {
            return Admission::Drop("group-not-allowlisted");
        }
    }
    match &sender_list {
        Some(list) if list.iter().any(|e| e.as_text().trim() == "*") => {}
        Some(list) if sender_listed(msg, list, settings, cx) => {}
        Some(_) => return Admission::Drop("sender-not-allowlisted"),
        // No sender list: an allowlisted group still needs one, an open policy does not.
        None if policy == GroupPolicy::Allowlist => return Admission::Drop("sender-not-allowlisted"),
        None => {}
    }
    let require_mention = entry.and_then(|e| e.require_mention).unwrap_or(true);
    if require_mention && !is_mentioned(msg, cx.mention_patterns) {
        return Admission::NotMentioned;
    }
    Admission::Accept
}

fn sender_listed(msg: &InboundMessage, list: &[IdEntry], settings: &ChannelSettings, cx: &AccessContext<'_>) -> bool {
    let sender = (cx.normalize)(&msg.sender_id);
    let by_name = settings.dangerously_allow_name_matching == Some(true);
    list.iter().any(|e| {
        let entry = (cx.normalize)(&e.as_text());
        entry == sender || (by_name && msg.sender_name.as_deref().is_some_and(|n| (cx.normalize)(n) == entry))
    })
}

/// Whether `msg` addresses the bot: a native mention, a reply to the bot, a command (native or
/// `/text`), or a match of one of the mention patterns.
pub fn is_mentioned(msg: &InboundMessage, patterns: &[Regex]) -> bool {
    msg.mentioned
        || msg.reply_to.as_ref().is_some_and(|r| r.to_bot)
        || msg.native_command.is_some()
        || msg.text.trim_start().starts_with('/')
        || patterns.iter().any(|p| p.is_match(&msg.text))
}

/// Compile mention patterns case-insensitively; invalid ones are reported and skipped.
pub fn compile_patterns(patterns: &[String]) -> (Vec<Regex>, Vec<String>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for p in patterns {
        match regex::RegexBuilder::new(p).case_insensitive(true).size_limit(1 << 20).build() {
            Ok(r) => ok.push(r),
            Err(e) => errors.push(format!("mention pattern {p:?}: {e}")),
        }
    }
    (ok, errors)
}

/// Whether `sender` (on `channel`) is a command owner: listed in `commands.ownerAllowFrom`
/// (`<channel>:<id>` or `*`), or, when that is unset, one of `owners` (the channel's concrete
/// `allowFrom` entries and the owner approved first through pairing).
pub fn is_owner(
    owner_allow_from: Option<&[IdEntry]>,
    owners: &[String],
    channel: &str,
    sender: &str,
    normalize: &(dyn Fn(&str) -> String + Sync),
) -> bool {
    let sender = normalize(sender);
    match owner_allow_from {
        Some(list) => list.iter().any(|e| {
            let e = e.as_text();
            let e = e.trim();
            if e == "*" {
                return true;
            }
            match e.split_once(':') {
                Some((ch, id)) if ch.eq_ignore_ascii_case(channel) => normalize(id) == sender,
                _ => false,
            }
        }),
        None => owners.iter().any(|o| normalize(o) == sender),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(chat: ChatKind, sender: &str, text: &str) -> InboundMessage {
        let chat_id = if chat == ChatKind::Direct { sender } else { "-100" };
        let mut m = crate::test_message("telegram", "default", chat, chat_id, sender, text);
        m.sender_name = Some("alice".into());
        m
    }

    fn settings(v: serde_json::Value) -> ChannelSettings {
        serde_json::from_value(v).unwrap()
    }

    fn decide(m: &InboundMessage, s: &ChannelSettings, approved: &[String]) -> Admission {
        let (patterns, _) = compile_patterns(&["\\b@?homarus\\b".to_string()]);
        let norm = |s: &str| s.trim().trim_start_matches("telegram:").to_lowercase();
        admit(m, s, &AccessContext { approved, mention_patterns: &patterns, normalize: &norm })
    }

    #[test]
    fn dm_policies() {
        let m = msg(ChatKind::Direct, "42", "hi");
        assert_eq!(decide(&m, &settings(serde_json::json!({})), &[]), Admission::NeedsPairing);
        assert_eq!(decide(&m, &settings(serde_json::json!({})), &["42".into()]), Admission::Accept);
        assert_eq!(decide(&m, &settings(serde_json::json!({"allowFrom": ["telegram:42"]})), &[]), Admission::Accept);
        let allowlist = settings(serde_json::json!({"dmPolicy": "allowlist", "allowFrom": [7]}));
        assert_eq!(decide(&m, &allowlist, &[]), Admission::Drop("not-allowlisted"));
        let open = settings(serde_json::json!({"dmPolicy": "open", "allowFrom": ["*"]}));
        assert_eq!(decide(&m, &open, &[]), Admission::Accept);
        // open without "*" admits only the listed senders; approvals do not widen it
        let open_listed = settings(serde_json::json!({"dmPolicy": "open", "allowFrom": [7]}));
        assert_eq!(decide(&m, &open_listed, &["42".into()]), Admission::Drop("not-allowlisted"));
        let off = settings(serde_json::json!({"dmPolicy": "disabled", "allowFrom": ["*"]}));
        assert_eq!(decide(&m, &off, &[]), Admission::Drop("dm-disabled"));
    }

    #[test]
    fn group_rules_in_order() {
        let plain = msg(ChatKind::Group, "42", "hello all");
        let mention = msg(ChatKind::Group, "42", "hey @Homarus what's up");
        // default allowlist with no groups: blocked
        assert_eq!(decide(&plain, &settings(serde_json::json!({})), &[]), Admission::Drop("group-not-allowlisted"));
        // listed group, no sender list: blocked
        let g = settings(serde_json::json!({"groups": {"-100": {}}}));
        assert_eq!(decide(&mention, &g, &[]), Admission::Drop("sender-not-allowlisted"));
        // wildcard group + senders "*": mention required
        let g = settings(serde_json::json!({"groups": {"*": {"allowFrom": ["*"]}}}));
        assert_eq!(decide(&plain, &g, &[]), Admission::NotMentioned);
        assert_eq!(decide(&mention, &g, &[]), Admission::Accept);
        // requireMention false
        let g = settings(serde_json::json!({"groups": {"-100": {"requireMention": false, "allowFrom": ["*"]}}}));
        assert_eq!(decide(&plain, &g, &[]), Admission::Accept);
        // groupAllowFrom decides the sender; a pairing approval does not grant group access
        let g = settings(serde_json::json!({"groupAllowFrom": [7], "groups": {"*": {}}}));
        assert_eq!(decide(&mention, &g, &["42".into()]), Admission::Drop("sender-not-allowlisted"));
        // fallback to concrete allowFrom entries
        let g = settings(serde_json::json!({"allowFrom": [42], "groups": {"*": {}}}));
        assert_eq!(decide(&mention, &g, &[]), Admission::Accept);
        // open policy: any group, still mention-gated
        let g = settings(serde_json::json!({"groupPolicy": "open"}));
        assert_eq!(decide(&plain, &g, &[]), Admission::NotMentioned);
        assert_eq!(decide(&mention, &g, &[]), Admission::Accept);
        // disabled group entry, disabled policy
        let g = settings(serde_json::json!({"groupPolicy": "open", "groups": {"-100": {"enabled": false}}}));
        assert_eq!(decide(&mention, &g, &[]), Admission::Drop("group-disabled"));
        let g = settings(serde_json::json!({"groupPolicy": "disabled"}));
        assert_eq!(decide(&mention, &g, &[]), Admission::Drop("group-disabled"));
    }

    #[test]
    fn native_mentions_replies_and_commands_count() {
        let g = settings(serde_json::json!({"groupPolicy": "open"}));
        let mut m = msg(ChatKind::Group, "42", "no name here");
        m.mentioned = true;
        assert_eq!(decide(&m, &g, &[]), Admission::Accept);
        let mut m = msg(ChatKind::Group, "42", "no name here");
        m.reply_to = Some(crate::ReplyRef { id: "1".into(), to_bot: true, ..Default::default() });
        assert_eq!(decide(&m, &g, &[]), Admission::Accept);
    }

    #[test]
    fn owners() {
        let norm = |s: &str| s.trim().to_lowercase();
        let list = vec![IdEntry::Text("telegram:42".into())];
        assert!(is_owner(Some(&list), &[], "telegram", "42", &norm));
        assert!(!is_owner(Some(&list), &[], "irc", "42", &norm));
        assert!(!is_owner(Some(&list), &["7".into()], "telegram", "7", &norm));
        assert!(is_owner(None, &["7".into()], "telegram", "7", &norm));
        assert!(is_owner(Some(&[IdEntry::Text("*".into())]), &[], "x", "y", &norm));
    }
}
