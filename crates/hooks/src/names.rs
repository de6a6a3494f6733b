//! Every plugin hook name, whether it decides or observes, and its default budget.
use std::time::Duration;

/// How a hook's handlers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// Sequential by priority; a handler may modify the event or block.
    Decision {
        /// A timeout or error counts as a block (policy hooks), rather than "no decision".
        fail_closed: bool,
    },
    /// Concurrent; results are ignored.
    Observation,
}

/// One hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookSpec {
    /// Its name, e.g. `session_end`.
    pub name: &'static str,
    /// Decision or observation.
    pub kind: HookKind,
    /// Default per-handler budget.
    pub default_timeout: Duration,
}

const fn d(name: &'static str, fail_closed: bool, secs: u64) -> HookSpec {
    HookSpec { name, kind: HookKind::Decision { fail_closed }, default_timeout: Duration::from_secs(secs) }
}

const fn o(name: &'static str, secs: u64) -> HookSpec {
    HookSpec { name, kind: HookKind::Observation, default_timeout: Duration::from_secs(secs) }
}

/// Every hook of OpenClaw's plugin API (spec D.1), with Homarus's defaults: policy hooks 15 s fail
/// closed, payload-rewriting hooks 15 s, `agent_end` 30 s, `gateway_stop` 5 s, anything else 10 s.
pub const HOOKS: &[HookSpec] = &[
    d("before_model_resolve", false, 10),
    d("agent_turn_prepare", false, 10),
    d("before_prompt_build", false, 10),
    d("before_agent_start", false, 10),
    d("before_agent_reply", false, 10),
    o("model_call_started", 10),
    o("model_call_ended", 10),
    o("llm_input", 10),
    o("llm_output", 10),
    d("before_agent_finalize", false, 15),
    o("agent_end", 30),
    o("before_compaction", 10),
    o("after_compaction", 10),
    o("before_reset", 10),
    d("inbound_claim", false, 10),
    o("message_received", 10),
    d("message_sending", false, 15),
    d("reply_payload_sending", false, 15),
    o("message_sent", 10),
    d("before_tool_call", true, 15),
    o("after_tool_call", 10),
    d("tool_result_persist", false, 10),
    d("before_message_write", false, 10),
    o("session_start", 10),
    o("session_end", 10),
    d("subagent_spawning", false, 10),
    d("subagent_delivery_target", false, 10),
    o("subagent_spawned", 10),
    o("subagent_ended", 10),
    o("deactivate", 5),
    o("gateway_start", 10),
    o("gateway_stop", 5),
    d("heartbeat_prompt_contribution", false, 10),
    o("cron_changed", 10),
    d("before_dispatch", false, 10),
    d("reply_dispatch", false, 10),
    d("before_install", true, 15),
    d("before_agent_run", false, 10),
];

/// Hooks that see conversation content: an external plugin needs
/// `plugins.entries.<id>.hooks.allowConversationAccess: true` to subscribe to them.
pub const CONVERSATION_HOOKS: &[&str] = &[
    "before_model_resolve",
    "before_agent_reply",
    "llm_input",
    "llm_output",
    "before_agent_finalize",
    "agent_end",
    "before_agent_run",
];

/// Hooks that can change the prompt; refused when `plugins.entries.<id>.hooks.allowPromptInjection`
/// is `false`.
pub const PROMPT_INJECTION_HOOKS: &[&str] =
    &["agent_turn_prepare", "before_prompt_build", "before_agent_start", "heartbeat_prompt_contribution"];

/// The spec of a hook by name.
pub fn hook_spec(name: &str) -> Option<&'static HookSpec> {
    HOOKS.iter().find(|h| h.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_policy_hooks_fail_closed() {
        let mut names: Vec<_> = HOOKS.iter().map(|h| h.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), HOOKS.len());
        assert_eq!(hook_spec("before_tool_call").unwrap().kind, HookKind::Decision { fail_closed: true });
        assert_eq!(hook_spec("session_end").unwrap().kind, HookKind::Observation);
        assert_eq!(hook_spec("gateway_stop").unwrap().default_timeout, Duration::from_secs(5));
        assert!(hook_spec("nope").is_none());
    }
}
