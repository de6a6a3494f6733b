//! `models` (providers and their models) and `agents` (defaults and per-agent entries).
//!
//! Only the keys Homarus acts on are typed; OpenClaw has many more (TTS, sandbox, runtimes, …) which
//! are kept in `extra` maps so an OpenClaw config loads unchanged, and reported as not implemented.
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsConfig {
    /// Model providers by id (`openai`, `anthropic`, `ollama`, `local`, …); model refs are `<id>/<model>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Other OpenClaw `models` keys (`mode`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `models.providers.<id>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConfig {
    /// API base URL, e.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`, `https://api.anthropic.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// API key (use `${OPENAI_API_KEY}`); when unset, `OPENAI_API_KEY`/`ANTHROPIC_API_KEY` by API kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Wire format: `openai-completions` (OpenAI-compatible Chat Completions: OpenAI, Ollama,
    /// llama.cpp, vLLM, LM Studio, OpenRouter) or `anthropic-messages`. Default by provider id
    /// (`anthropic` → `anthropic-messages`, else `openai-completions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Extra HTTP headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The provider's models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelEntryConfig>,
    /// Other OpenClaw provider keys (`auth`, `localService`, `compat`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `models.providers.<id>.models[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntryConfig {
    /// Model id as the provider's API expects it.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether the model reasons (thinks) natively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    /// Input kinds (`text`, `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<String>>,
    /// Cost per million tokens (`input`, `output`, `cacheRead`, `cacheWrite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Value>,
    /// Native context window in tokens (compaction triggers relative to it). Default 128000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Cap on the tokens of active context (below `contextWindow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u64>,
    /// Maximum output tokens per call. Default 8192.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Other OpenClaw model keys (`compat`, `params`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A model choice: `"provider/model"` or `{primary, fallbacks}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelSelection {
    /// Just the primary model.
    Primary(String),
    /// Primary and ordered fallbacks.
    WithFallbacks {
        /// `provider/model` tried first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        primary: Option<String>,
        /// `provider/model` refs tried in order when the primary fails.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fallbacks: Vec<String>,
    },
}

impl ModelSelection {
    /// Primary first, then fallbacks.
    pub fn refs(&self) -> Vec<String> {
        match self {
            ModelSelection::Primary(p) => vec![p.clone()],
            ModelSelection::WithFallbacks { primary, fallbacks } => {
                primary.iter().chain(fallbacks.iter()).cloned().collect()
            }
        }
    }
}

/// `agents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentsConfig {
    /// Settings every agent inherits.
    #[serde(default)]
    pub defaults: AgentSettings,
    /// Per-agent overrides keyed by agent id (`main`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entries: BTreeMap<String, AgentSettings>,
    /// Other OpenClaw `agents` keys. Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `agents.defaults` and `agents.entries.<id>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSettings {
    /// Display name (entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The agent that answers when no binding matches (entries; else the first entry, else `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    /// Group chats: this agent's mention patterns (replace `messages.groupChat.mentionPatterns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_chat: Option<GroupChatConfig>,
    /// Periodic main-session turns that read `HEARTBEAT.md` (defaults; an entry's own replaces them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatConfig>,
    /// Model and fallbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSelection>,
    /// Workspace folder (`AGENTS.md`, `SOUL.md`, memory); default `<stateDir>/workspace` for `main`,
    /// `<stateDir>/workspace-<id>` for others. `~` is the home folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Timeout of one agent run, in seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Maximum agent runs at once across sessions (defaults only; default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    /// Per-file cap on bootstrap files injected into the system prompt, in characters (default 20000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_max_chars: Option<u64>,
    /// Compaction settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<CompactionConfig>,
    /// Subagent limits (`sessions_spawn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagents: Option<SubagentsConfig>,
    /// Other OpenClaw agent keys (`tools`, `sandbox`, `identity`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `agents.defaults.compaction`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactionConfig {
    /// Threshold-driven automatic compaction (default true). Overflow recovery and `/compact` always work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Tokens kept free below the context window; compaction starts when a turn leaves less (default 20000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_tokens: Option<u64>,
    /// Recent tokens kept verbatim after compaction (default 20000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_recent_tokens: Option<u64>,
    /// Tell the chat user when compaction starts and ends (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_user: Option<bool>,
    /// The silent turn before an automatic compaction in which the agent saves durable notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_flush: Option<MemoryFlushConfig>,
    /// Other OpenClaw compaction keys (`mode`, `provider`, `memoryFlush`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl AgentsConfig {
    /// `agents.*` and `models.*` keys kept only for compatibility, as dotted paths (for warnings).
    pub fn unimplemented_keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self.extra.keys().map(|k| format!("agents.{k}")).collect();
        let settings = std::iter::once(("agents.defaults".to_string(), &self.defaults))
            .chain(self.entries.iter().map(|(id, s)| (format!("agents.entries.{id}"), s)));
        for (at, s) in settings {
            out.extend(s.extra.keys().map(|k| format!("{at}.{k}")));
            if let Some(c) = &s.compaction {
                out.extend(c.extra.keys().map(|k| format!("{at}.compaction.{k}")));
            }
        }
        out
    }
}

impl ModelsConfig {
    /// `models.*` keys kept only for compatibility, as dotted paths (for warnings).
    pub fn unimplemented_keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self.extra.keys().map(|k| format!("models.{k}")).collect();
        for (id, p) in &self.providers {
            out.extend(p.extra.keys().map(|k| format!("models.providers.{id}.{k}")));
        }
        out
    }
}

/// `agents.defaults.subagents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubagentsConfig {
    /// How deep subagents may nest (default 1: a subagent cannot spawn its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_spawn_depth: Option<u64>,
    /// Subagents one session may have running at once (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_children_per_agent: Option<u64>,
    /// Other OpenClaw subagent keys (`allowAgents`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `agents.defaults.compaction.memoryFlush`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryFlushConfig {
    /// Run the memory flush turn before automatic compactions (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Other OpenClaw keys (`model`, `softThresholdTokens`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `messages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagesConfig {
    /// What happens to a message that arrives while the session is busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueConfig>,
    /// Group chats: the patterns that count as mentioning the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_chat: Option<GroupChatConfig>,
    /// Other OpenClaw `messages` keys (TTS, visible replies, …). Accepted; not used by Homarus yet.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `messages.groupChat` (and `agents.entries.<id>.groupChat`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupChatConfig {
    /// Regular expressions (case-insensitive) that count as a mention when the channel has no native
    /// mention, e.g. `["\\b@?homarus\\b"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mention_patterns: Option<Vec<String>>,
    /// Other OpenClaw group-chat keys (`visibleReplies`, `historyLimit`, …). Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `agents.defaults.heartbeat` / `agents.entries.<id>.heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatConfig {
    /// Interval (`30m` default, `1h`, `90s`; `0` turns heartbeats off). A bare number is minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Where a heartbeat's message goes: `none` (default: the main session only) or `last` (also the
    /// conversation the main session last talked in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The heartbeat prompt (default: read HEARTBEAT.md, follow it, reply HEARTBEAT_OK if nothing needs
    /// attention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// An answer that is only `HEARTBEAT_OK` plus at most this many characters is dropped (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_max_chars: Option<u32>,
    /// Only run between `start` and `end` (`HH:MM`, 24 h) in `timezone` (IANA; default the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_hours: Option<ActiveHours>,
    /// Inject only HEARTBEAT.md from the workspace into heartbeat turns (default false: every bootstrap
    /// file, plus HEARTBEAT.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub light_context: Option<bool>,
    /// Other OpenClaw heartbeat keys (`includeReasoning`, `directPolicy`, `isolatedSession`, …). Accepted; not used.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `heartbeat.activeHours`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveHours {
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM` (`24:00` = end of day; an end before the start spans midnight).
    pub end: String,
    /// IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// `messages.queue`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueConfig {
    /// `steer` (default: into the running turn at its next step), `followup` (a later turn each),
    /// `collect` (one later turn with everything that arrived), `interrupt` (stop the running turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<QueueMode>,
    /// Mode per channel id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_channel: BTreeMap<String, QueueMode>,
    /// Quiet window before a queued turn starts, in ms (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_ms: Option<u64>,
    /// Most messages waiting per session (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u64>,
    /// Over the cap: `summarize` (default; drop the oldest, keep a one-line summary), `old` (drop the
    /// oldest), `new` (refuse the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<QueueDrop>,
    /// Other OpenClaw queue keys. Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `messages.queue.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum QueueMode {
    /// Inject into the running turn.
    #[default]
    Steer,
    /// One later turn per message.
    Followup,
    /// One later turn for everything queued.
    Collect,
    /// Abort the running turn and run the newest message.
    Interrupt,
}

/// `messages.queue.drop`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum QueueDrop {
    /// Drop the oldest, keep a summary line.
    #[default]
    Summarize,
    /// Drop the oldest.
    Old,
    /// Refuse the newest.
    New,
}

/// `tools`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolsConfig {
    /// Media generation tools (`image_generate`, `music_generate`, `video_generate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaToolsConfig>,
    /// Other OpenClaw `tools` keys (profiles, allow/deny, exec, web, …). Accepted; not used by Homarus yet.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `tools.media`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaToolsConfig {
    /// How finished background media tasks reach the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_completion: Option<AsyncCompletionConfig>,
    /// Other OpenClaw media keys. Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `tools.media.asyncCompletion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AsyncCompletionConfig {
    /// Send a finished video straight to the requester's chat instead of waking the requester session
    /// so the agent replies (default off). Applies to video only: music completions always take the
    /// requester-session wake path, even when this is on; image completions too. Group and channel
    /// requesters are always woken instead, and a failed direct send falls back to the wake path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_send: Option<bool>,
}

/// `gateway.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayHttpConfig {
    /// The HTTP APIs, each off unless enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<HttpEndpointsConfig>,
    /// Other OpenClaw `gateway.http` keys. Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `gateway.http.endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpEndpointsConfig {
    /// `POST /v1/chat/completions` and `GET /v1/models` (OpenAI-compatible; full operator access with the
    /// gateway token as `Authorization: Bearer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_completions: Option<EndpointConfig>,
    /// `POST /v1/responses` (OpenResponses) and `GET /v1/models` (same access as chat completions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<EndpointConfig>,
    /// Other endpoints. Accepted; not implemented by Homarus yet.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One HTTP endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConfig {
    /// Serve it (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Other keys (`images`, …). Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `gateway.tools`: the tool policy of `POST /tools/invoke`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayToolsConfig {
    /// Tools taken off the default HTTP deny list (`exec`, `sessions_spawn`, `sessions_send`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// More tools to refuse over HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Other keys. Accepted; not used by Homarus.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}
