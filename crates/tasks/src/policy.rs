//! The requester-session delivery policy (spec F.2): how a finished background task, a subagent's
//! announce or a media completion reaches the user who asked for it.
//!
//! A group or channel requester never gets a raw completion dumped into the chat: the completion is
//! queued into the requester session as a system event and that session is woken, so the agent writes
//! the visible reply. A direct-message requester may get a direct send (when the completion kind
//! allows it and a route exists), falling back to the session wake when that fails.
use homarus_protocol::session_key::{derive_chat_type, ChatType, LegacyChatTypeClassifier};

/// How a completion is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionRoute {
    /// Send it straight to the requester's chat (then fall back to [`Self::RequesterSession`] on failure).
    Direct,
    /// Queue it into the requester session as a system event and wake that session.
    RequesterSession,
}

/// Whether the kind of completion allows a direct send at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectSend {
    /// Always through the session (subagent announces, music, task completions by default).
    Never,
    /// Allowed when the requester is a direct chat with a known route (video with `directSend` on).
    Allowed,
}

fn normalize(chat_type: &str) -> ChatType {
    match chat_type.trim().to_ascii_lowercase().as_str() {
        "direct" | "dm" => ChatType::Direct,
        "group" => ChatType::Group,
        "channel" | "room" | "thread" => ChatType::Channel,
        _ => ChatType::Unknown,
    }
}

/// The chat type of a completion's requester: the session entry's own chat type first, then each
/// session key (typed segments, legacy WhatsApp/Discord shapes, channel classifiers), then the
/// prefix of the origin target (`group:` → group, `channel:`/`thread:` → channel, `dm:`/`direct:`/
/// `user:` → direct).
pub fn completion_chat_type(
    entry_chat_type: Option<&str>,
    session_keys: &[&str],
    origin_to: Option<&str>,
    classifiers: &[&dyn LegacyChatTypeClassifier],
) -> ChatType {
    if let Some(t) = entry_chat_type.map(normalize).filter(|t| *t != ChatType::Unknown) {
        return t;
    }
    for key in session_keys {
        let t = derive_chat_type(key, classifiers);
        if t != ChatType::Unknown {
            return t;
        }
    }
    let to = origin_to.unwrap_or("").trim().to_ascii_lowercase();
    if to.starts_with("group:") {
        ChatType::Group
    } else if to.starts_with("channel:") || to.starts_with("thread:") {
        ChatType::Channel
    } else if to.starts_with("dm:") || to.starts_with("direct:") || to.starts_with("user:") {
        ChatType::Direct
    } else {
        ChatType::Unknown
    }
}

/// The route of one completion.
pub fn route(chat_type: ChatType, direct: DirectSend, has_direct_route: bool) -> CompletionRoute {
    match (chat_type, direct, has_direct_route) {
        (ChatType::Group | ChatType::Channel, _, _) => CompletionRoute::RequesterSession,
        (_, DirectSend::Allowed, true) if chat_type == ChatType::Direct => CompletionRoute::Direct,
        _ => CompletionRoute::RequesterSession,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(entry: Option<&str>, keys: &[&str], to: Option<&str>) -> ChatType {
        completion_chat_type(entry, keys, to, &[])
    }

    #[test]
    fn the_decision_table_of_the_spec() {
        // Legacy WhatsApp group and Discord guild channel keys route through the requester session.
        let wa = kind(None, &["agent:main:whatsapp:120363040000000000@g.us"], None);
        assert_eq!(wa, ChatType::Group);
        assert_eq!(route(wa, DirectSend::Allowed, true), CompletionRoute::RequesterSession);
        let dc = kind(None, &["agent:main:discord:guild-123:channel-456"], None);
        assert_eq!(dc, ChatType::Channel);
        assert_eq!(route(dc, DirectSend::Allowed, true), CompletionRoute::RequesterSession);
        // A DM key does not.
        let dm = kind(None, &["agent:main:discord:dm:U123"], None);
        assert_eq!(dm, ChatType::Direct);
        assert_eq!(route(dm, DirectSend::Allowed, true), CompletionRoute::Direct);
        // An explicit entry chat type beats the key.
        assert_eq!(kind(Some("group"), &["agent:main:discord:dm:U123"], None), ChatType::Group);
        assert_eq!(kind(Some("direct"), &["agent:main:whatsapp:120363040000000000@g.us"], None), ChatType::Direct);
        // Opaque keys fall back to the origin prefix.
        assert_eq!(kind(None, &["agent:main:main"], Some("group:42")), ChatType::Group);
        assert_eq!(kind(None, &["agent:main:main"], Some("channel:C1")), ChatType::Channel);
        assert_eq!(kind(None, &["agent:main:main"], Some("user:7")), ChatType::Direct);
        assert_eq!(kind(None, &["agent:main:main"], None), ChatType::Unknown);
        // The target requester key is looked at before the requester key.
        assert_eq!(kind(None, &["agent:main:telegram:group:1", "agent:main:telegram:dm:2"], None), ChatType::Group);
    }

    #[test]
    fn direct_sends_need_permission_a_route_and_a_direct_chat() {
        assert_eq!(route(ChatType::Direct, DirectSend::Never, true), CompletionRoute::RequesterSession);
        assert_eq!(route(ChatType::Direct, DirectSend::Allowed, false), CompletionRoute::RequesterSession);
        assert_eq!(route(ChatType::Unknown, DirectSend::Allowed, true), CompletionRoute::RequesterSession);
        assert_eq!(route(ChatType::Direct, DirectSend::Allowed, true), CompletionRoute::Direct);
    }
}
