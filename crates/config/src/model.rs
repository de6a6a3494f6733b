//! The configuration types. Doc comments here are the help text of the generated JSON Schema and of
//! `docs/configuration.md`, so every field has one.
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The whole configuration file (`~/.homarus/homarus.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HomarusConfig {
    /// Optional JSON Schema URL for editors; ignored by the gateway.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Gateway server: port, bind address, authentication and reload behaviour.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// Logging: level and the log file that `logs.tail` reads.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Metadata written by tools (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// OpenClaw `env` section. Accepted for compatibility; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Value>,
    /// OpenClaw `secrets` section. Accepted for compatibility; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    /// OpenClaw `auth` section (provider auth profiles). Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Value>,
    /// Model providers and their models.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub models: crate::agents::ModelsConfig,
    /// Agents: `agents.defaults` and per-agent `agents.entries.<id>`.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub agents: crate::agents::AgentsConfig,
    /// Routing bindings: which agent answers which channel, account or conversation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<crate::channels::Binding>,
    /// Session reset policies and store maintenance; scoping keys are accepted for later.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub session: crate::session::SessionConfig,
    /// Message handling: the queue for messages that arrive while a session is busy.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub messages: crate::agents::MessagesConfig,
    /// Slash-command policy: who may run privileged commands from a channel.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub commands: crate::channels::CommandsConfig,
    /// Chat channels (`channels.<id>`: `telegram`, `matrix`, `irc`, `qa-channel`) and their accounts.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub channels: crate::channels::ChannelsConfig,
    /// Tools: media generation completion delivery; other OpenClaw tool policy keys are accepted.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub tools: crate::agents::ToolsConfig,
    /// Skills. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Value>,
    /// External plugins: discovery, enablement and per-plugin settings.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Inbound webhooks (`hooks.enabled`, `token`, `path`, …) and internal automation hooks (`hooks.internal`).
    #[serde(default)]
    pub hooks: HooksConfig,
    /// Cron scheduler: on/off, missed runs after downtime, webhook delivery token.
    #[serde(default, skip_serializing_if = "crate::session::is_default")]
    pub cron: crate::channels::CronConfig,
    /// Memory. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Value>,
    /// Browser control. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<Value>,
    /// UI preferences. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Value>,
    /// Diagnostics. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Value>,
    /// Service discovery (Bonjour). Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Value>,
    /// Canvas host. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canvas_host: Option<Value>,
    /// Talk mode. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talk: Option<Value>,
    /// Audio. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Value>,
    /// ACP. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acp: Option<Value>,
    /// MCP servers. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<Value>,
    /// Update channel. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Value>,
    /// Onboarding wizard state. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wizard: Option<Value>,
    /// Assistant identity. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    /// Web surfaces. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<Value>,
}

/// `hooks`: inbound HTTP webhooks and internal automation hooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HooksConfig {
    /// Serve the inbound webhooks `POST <path>/wake` and `POST <path>/agent` (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The webhook secret, sent as `Authorization: Bearer` or `x-openclaw-token` (required when enabled; use a
    /// dedicated value, not the gateway token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Path prefix of the webhooks (default `/hooks`; `/` is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Custom webhook paths: `POST <path>/<name>` turned into a wake or an agent run by templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mappings: Option<Vec<crate::hooks::HookMapping>>,
    /// Agents a webhook may target (default: only `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_agent_ids: Option<Vec<String>>,
    /// Let a webhook request choose its `sessionKey` (default false; then also limited by
    /// `allowedSessionKeyPrefixes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_request_session_key: Option<bool>,
    /// Session key prefixes a webhook request may choose (required for request keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_session_key_prefixes: Option<Vec<String>>,
    /// Session of `/agent` requests that name none (default: a fresh `agent:<id>:hook:<uuid>` per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_session_key: Option<String>,
    /// Gmail watcher. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmail: Option<Value>,
    /// Internal automation hooks (`HOOK.md` folders and bundled hooks).
    #[serde(default)]
    pub internal: InternalHooksConfig,
}

/// `hooks.internal`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalHooksConfig {
    /// Master switch. `false`: no internal hooks. `true` with no named entries: every eligible hook loads.
    /// Omitted: only hooks named in `entries` load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Per-hook settings by hook name; an entry not `enabled: false` selects the hook.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entries: std::collections::BTreeMap<String, InternalHookEntry>,
    /// Extra hook folders.
    #[serde(default)]
    pub load: InternalHooksLoadConfig,
}

/// `hooks.internal.entries.<name>`: `enabled`, `env`, and any handler-defined options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InternalHookEntry {
    /// `false` disables the hook; `true` selects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Environment variables for the hook's handler process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// Handler-defined options, passed through in the event's `context.hookConfig`.
    #[serde(flatten)]
    pub options: std::collections::BTreeMap<String, Value>,
}

/// `hooks.internal.load`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalHooksLoadConfig {
    /// Folders holding hook folders (or a single hook folder); later ones win on a name clash, and
    /// `<stateDir>/hooks/` wins over all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_dirs: Vec<String>,
}

/// `plugins`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginsConfig {
    /// Load plugins at all (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// When set, only these plugin ids load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// These plugin ids never load (wins over `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// Where plugins are found besides `<stateDir>/plugins/`.
    #[serde(default)]
    pub load: PluginsLoadConfig,
    /// Per-plugin settings by plugin id.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entries: std::collections::BTreeMap<String, PluginEntryConfig>,
    /// Install records written by tools (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installs: Option<Value>,
    /// Slot assignments (opaque; not used by Homarus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Value>,
}

/// `plugins.load`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginsLoadConfig {
    /// Plugin folders (holding `homarus.plugin.json`) or folders of plugin folders. `~` is the home folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// `plugins.entries.<id>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginEntryConfig {
    /// `false` keeps the plugin from loading (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Plugin-defined configuration, passed to the plugin in `initialize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Hook budgets and permissions.
    #[serde(default)]
    pub hooks: PluginHooksConfig,
    /// Environment variables set for the plugin process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<std::collections::BTreeMap<String, String>>,
    /// API key passed to the plugin in `initialize` (never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Subagent trust settings. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagent: Option<Value>,
    /// Plugin LLM trust settings. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<Value>,
}

/// `plugins.entries.<id>.hooks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginHooksConfig {
    /// Budget for every hook call of this plugin, in ms (at most 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600000))]
    pub timeout_ms: Option<u64>,
    /// Budget per hook name, in ms (at most 600000); wins over `timeoutMs`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub timeouts: std::collections::BTreeMap<String, u64>,
    /// Let a non-bundled plugin read conversation content in conversation hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_conversation_access: Option<bool>,
    /// Let the plugin use prompt-mutating hooks (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_prompt_injection: Option<bool>,
}

/// `gateway`: the server itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfig {
    /// `local` runs a gateway here; `remote` means this config only points clients at another gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GatewayMode>,
    /// TCP port for WebSocket and HTTP (default 18789).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    /// Which addresses to listen on: `loopback` (default, 127.0.0.1), `lan` (0.0.0.0) or `custom`
    /// (`gateway.customBindHost`). Anything but loopback requires authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindMode>,
    /// IP address to listen on when `gateway.bind` is `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_bind_host: Option<String>,
    /// How clients authenticate.
    #[serde(default)]
    pub auth: GatewayAuthConfig,
    /// Config file hot reload.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// Where clients find a remote gateway (`gateway.mode = "remote"`). Accepted; used by clients only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Value>,
    /// Control UI settings. Accepted; not yet used by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_ui: Option<Value>,
    /// Tailscale serve/funnel. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tailscale: Option<Value>,
    /// TLS. Accepted; not yet implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Value>,
    /// IP addresses of reverse proxies in front of the gateway. A connection from one of them is
    /// attributed to the last address in its `X-Forwarded-For` header (for loopback checks, pairing
    /// and rate limiting). Exact addresses only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<std::net::IpAddr>>,
    /// HTTP endpoints on the gateway port (the OpenAI-compatible API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::agents::GatewayHttpConfig>,
    /// Node settings. Accepted; not yet implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Value>,
    /// Which tools `POST /tools/invoke` may run beyond its default deny list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<crate::agents::GatewayToolsConfig>,
    /// Push notifications. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Value>,
}

/// `gateway.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    /// Run the gateway on this machine.
    Local,
    /// Clients talk to `gateway.remote.url`.
    Remote,
}

/// `gateway.bind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// 127.0.0.1 only.
    #[default]
    Loopback,
    /// Every interface (0.0.0.0).
    Lan,
    /// `gateway.customBindHost`.
    Custom,
    /// Tailscale address (not supported by Homarus; refused at start).
    Tailnet,
    /// Let the gateway pick (treated as loopback).
    Auto,
}

/// A TCP port, 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(transparent)]
pub struct Port(#[schemars(range(min = 1, max = 65535))] pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl Visitor<'_> for PortVisitor {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer 1-65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(p) if p > 0 => Ok(Port(p)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                Err(E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Port, E> {
                if v.fract() == 0.0 && (1.0..=65535.0).contains(&v) {
                    return Ok(Port(v as u16));
                }
                Err(E::invalid_value(de::Unexpected::Float(v), &self))
            }
        }
        d.deserialize_any(PortVisitor)
    }
}

/// `gateway.auth`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayAuthConfig {
    /// `token` (default), `password` or `none`. `none` is refused on a non-loopback bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    /// Shared token clients send as `auth.token`. When unset, the gateway generates one and keeps it in
    /// `<stateDir>/gateway-token` (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Shared password clients send as `auth.password` (mode `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Failed-auth rate limiting.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Accept Tailscale identity headers. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_tailscale: Option<bool>,
    /// Trusted-proxy auth settings. Accepted; not implemented by Homarus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_proxy: Option<Value>,
}

/// `gateway.auth.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// No authentication (trusted loopback only).
    None,
    /// Shared token.
    #[default]
    Token,
    /// Shared password.
    Password,
    /// Identity from a trusted reverse proxy (not supported by Homarus; refused at start).
    TrustedProxy,
}

/// `gateway.auth.rateLimit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Failed attempts allowed per client address within `windowMs` (default 10).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Window over which failures are counted, in ms (default 60000).
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// How long an address is locked out after too many failures, in ms (default 300000).
    #[serde(default = "default_lockout_ms")]
    pub lockout_ms: u64,
    /// Loopback clients are never locked out (default true).
    #[serde(default = "default_true")]
    pub exempt_loopback: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { max_attempts: 10, window_ms: 60_000, lockout_ms: 300_000, exempt_loopback: true }
    }
}

fn default_max_attempts() -> u32 {
    10
}
fn default_window_ms() -> u64 {
    60_000
}
fn default_lockout_ms() -> u64 {
    300_000
}
fn default_true() -> bool {
    true
}

/// `gateway.reload`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReloadConfig {
    /// `hybrid` (default: apply what can be applied live, report what needs a restart), `hot`,
    /// `restart` or `off` (no file watching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ReloadMode>,
    /// Quiet time after a file change before it is read, in ms (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_ms: Option<u64>,
}

/// `gateway.reload.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReloadMode {
    /// Apply live changes, flag restart-only ones.
    #[default]
    Hybrid,
    /// Apply live changes only.
    Hot,
    /// Restart the gateway in-process on any change.
    Restart,
    /// Do not watch the file.
    Off,
}

/// `logging`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoggingConfig {
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive). Default `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Log file (JSON lines) that `logs.tail` serves. Default `<stateDir>/logs/homarus.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Console style. Accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_style: Option<String>,
    /// Redaction of sensitive values in logs. Accepted for compatibility; Homarus always redacts secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact_sensitive: Option<String>,
}

impl HomarusConfig {
    /// The effective port.
    pub fn port(&self) -> u16 {
        self.gateway.port.map(|p| p.0).unwrap_or(18789)
    }

    /// The effective auth mode.
    pub fn auth_mode(&self) -> AuthMode {
        self.gateway.auth.mode.unwrap_or_default()
    }

    /// Top-level (and `gateway.*`) keys that are set but not implemented yet, for warnings.
    pub fn unimplemented_sections(&self) -> Vec<String> {
        let mut out: Vec<String> = self.agents.unimplemented_keys();
        out.extend(self.models.unimplemented_keys());
        out.extend(self.messages.extra.keys().map(|k| format!("messages.{k}")));
        if let Some(g) = &self.messages.group_chat {
            out.extend(g.extra.keys().map(|k| format!("messages.groupChat.{k}")));
        }
        out.extend(self.channels.unimplemented_keys());
        out.extend(self.commands.extra.keys().map(|k| format!("commands.{k}")));
        out.extend(self.cron.extra.keys().map(|k| format!("cron.{k}")));
        for (i, b) in self.bindings.iter().enumerate() {
            out.extend(b.extra.keys().map(|k| format!("bindings[{i}].{k}")));
            out.extend(b.matches.extra.keys().map(|k| format!("bindings[{i}].match.{k}")));
        }
        out.extend(self.tools.extra.keys().map(|k| format!("tools.{k}")));
        if let Some(h) = &self.gateway.http {
            out.extend(h.extra.keys().map(|k| format!("gateway.http.{k}")));
            if let Some(e) = &h.endpoints {
                out.extend(e.extra.keys().map(|k| format!("gateway.http.endpoints.{k}")));
            }
        }
        let top: &[(&'static str, &Option<Value>)] = &[
            ("env", &self.env),
            ("secrets", &self.secrets),
            ("auth", &self.auth),
            ("skills", &self.skills),
            ("memory", &self.memory),
            ("browser", &self.browser),
            ("ui", &self.ui),
            ("diagnostics", &self.diagnostics),
            ("discovery", &self.discovery),
            ("canvasHost", &self.canvas_host),
            ("talk", &self.talk),
            ("audio", &self.audio),
            ("acp", &self.acp),
            ("mcp", &self.mcp),
            ("update", &self.update),
            ("web", &self.web),
            ("wizard", &self.wizard),
            ("identity", &self.identity),
        ];
        let g = &self.gateway;
        let gw: &[(&'static str, &Option<Value>)] = &[
            ("gateway.controlUi", &g.control_ui),
            ("gateway.tailscale", &g.tailscale),
            ("gateway.tls", &g.tls),
            ("gateway.nodes", &g.nodes),
            ("gateway.push", &g.push),
        ];
        let se = &self.session;
        let sess: &[(&'static str, &Option<Value>)] = &[
            ("session.scope", &se.scope),
            ("session.notifyOnCreate", &se.notify_on_create),
            ("session.resetTriggers", &se.reset_triggers),
            ("session.threadBindings", &se.thread_bindings),
            ("session.sharing", &se.sharing),
            ("session.sendPolicy", &se.send_policy),
        ];
        let h = &self.hooks;
        let webhooks: &[(&'static str, &Option<Value>)] = &[("hooks.gmail", &h.gmail)];
        for (i, m) in h.mappings.iter().flatten().enumerate() {
            out.extend(m.extra.keys().map(|k| format!("hooks.mappings[{i}].{k}")));
        }
        for (name, v) in top.iter().chain(gw.iter()).chain(sess.iter()).chain(webhooks.iter()) {
            if v.is_some() {
                out.push(name.to_string());
            }
        }
        out
    }
}
