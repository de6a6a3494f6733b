//! Internal automation hooks in the gateway: loading them, the bundled `command-logger`, and
//! emitting `gateway:*`, `command:*` and `session:*` events.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use homarus_config::LoadedConfig;
use homarus_hooks::internal::{
    discover_internal_hooks, select_internal_hooks, HookHandlerKind, HookSource, InternalEvent, InternalHook,
    InternalHookBus, NativeHandler,
};

use crate::state::{now_ms, GatewayState};
use crate::GatewayOptions;

/// Budget of one internal hook handler.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// `command-logger`: one JSON line per command event in `<stateDir>/logs/commands.log`.
struct CommandLogger {
    path: PathBuf,
}

impl NativeHandler for CommandLogger {
    fn handle(&self, event: &Value) -> Result<Vec<String>, String> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let line = json!({
            "timestamp": homarus_store::iso_timestamp(event["timestamp"].as_i64().unwrap_or(0)),
            "action": event["action"],
            "sessionKey": event["sessionKey"],
            "source": event["context"]["commandSource"],
        });
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        writeln!(f, "{line}").map_err(|e| e.to_string())?;
        Ok(Vec::new())
    }
}

/// `12345` → `12,345` (en-US grouping, as the notices of OpenClaw's notifier show numbers).
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The notice before a compaction (`context` of `session:compact:before`).
pub fn compaction_before_notice(context: &Value) -> String {
    match context["messageCount"].as_i64().filter(|n| *n >= 0) {
        Some(n) => format!("🧹 Compacting context ({n} messages) so I can continue without losing history…"),
        None => "🧹 Compacting context so I can continue without losing history…".to_string(),
    }
}

/// The notice after a compaction (`context` of `session:compact:after`).
pub fn compaction_after_notice(context: &Value) -> String {
    match (context["tokensBefore"].as_u64(), context["tokensAfter"].as_u64()) {
        (Some(b), Some(a)) if a < b => {
            format!("✅ Context compacted ({} → {} tokens). Continuing from where I left off.", grouped(b), grouped(a))
        }
        _ => "✅ Context compacted. Continuing from where I left off.".to_string(),
    }
}

/// `compaction-notifier`: tells the chat user when context is compacted.
struct CompactionNotifier;

impl NativeHandler for CompactionNotifier {
    fn handle(&self, event: &Value) -> Result<Vec<String>, String> {
        let ctx = &event["context"];
        Ok(match event["action"].as_str() {
            Some("compact:before") => vec![compaction_before_notice(ctx)],
            Some("compact:after") => vec![compaction_after_notice(ctx)],
            _ => Vec::new(),
        })
    }
}

/// `session-memory`: on `/new`, `/reset` and automatic resets, saves the last messages of the
/// session that ends to `<workspace>/memory/YYYY-MM-DD-HHMM.md`, so the agent can recall them.
struct SessionMemory;

/// Messages `session-memory` keeps.
const SESSION_MEMORY_MESSAGES: usize = 15;

impl NativeHandler for SessionMemory {
    fn handle(&self, event: &Value) -> Result<Vec<String>, String> {
        let ctx = &event["context"];
        let (Some(file), Some(workspace)) = (ctx["sessionEntry"]["sessionFile"].as_str(), ctx["workspaceDir"].as_str())
        else {
            return Ok(Vec::new());
        };
        let transcript = homarus_store::read_transcript(Path::new(file)).map_err(|e| e.to_string())?;
        let lines: Vec<String> = transcript
            .entries
            .iter()
            .filter(|e| e["type"] == "message")
            .filter_map(|e| {
                let m = &e["message"];
                let role = m["role"].as_str().filter(|r| *r == "user" || *r == "assistant")?;
                let text = match &m["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(blocks) => {
                        blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("")
                    }
                    _ => String::new(),
                };
                (!text.trim().is_empty()).then(|| format!("**{role}**: {}", text.trim()))
            })
            .collect();
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let keep = &lines[lines.len().saturating_sub(SESSION_MEMORY_MESSAGES)..];
        let ts = chrono::DateTime::from_timestamp_millis(event["timestamp"].as_i64().unwrap_or(0))
            .unwrap_or_default()
            .with_timezone(&chrono::Local);
        let dir = Path::new(workspace).join("memory");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut path = dir.join(format!("{}.md", ts.format("%Y-%m-%d-%H%M")));
        let mut n = 2;
        while path.exists() {
            path = dir.join(format!("{}-{n}.md", ts.format("%Y-%m-%d-%H%M")));
            n += 1;
        }
        let body = format!(
            "# Session {} ({})\n\nSaved on {} before the session was {}.\n\n{}\n",
            event["sessionKey"].as_str().unwrap_or_default(),
            ctx["sessionEntry"]["sessionId"].as_str().unwrap_or_default(),
            ts.format("%Y-%m-%d %H:%M"),
            match event["action"].as_str() {
                Some("auto-reset") => "reset automatically",
                Some("new") => "replaced by /new",
                _ => "reset",
            },
            keep.join("\n\n")
        );
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Vec::new())
    }
}

/// `boot-md`: its work (agent runs) needs the gateway, so the handler only marks the hook as
/// loaded; [`run_boot_md`] does the work at `gateway:startup`.
struct BootMd;

impl NativeHandler for BootMd {
    fn handle(&self, _event: &Value) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// Run each agent's nonempty `BOOT.md` once, in order, each in a fresh `agent:<id>:boot:<run>`
/// session that is deleted afterwards (success or failure). A workspace shared by agents runs once.
pub fn run_boot_md(state: &Arc<GatewayState>) {
    if !state.internal_hooks.hooks().any(|h| h.name == "boot-md") {
        return;
    }
    let cfg = state.config();
    let mut agents = vec!["main".to_string()];
    agents.extend(cfg.config.agents.entries.keys().filter(|k| k.as_str() != "main").cloned());
    let st = state.clone();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        for agent in agents {
            let ws = crate::runs::workspace_dir(&st, &agent);
            if seen.contains(&ws) {
                continue;
            }
            seen.push(ws.clone());
            let text = std::fs::read_to_string(ws.join("BOOT.md")).unwrap_or_default();
            if text.trim().is_empty() {
                continue;
            }
            let run_id = uuid::Uuid::new_v4().to_string();
            let key = format!("agent:{agent}:boot:{run_id}");
            let spec = crate::runs::RunSpec {
                run_id: run_id.clone(),
                session_key: key.clone(),
                agent_id: agent.clone(),
                message: text,
                extra_system_prompt: Some(
                    "You are running the BOOT.md start-up instructions. Your final reply is not delivered to anyone."
                        .into(),
                ),
                timeout: None,
                expected_session_id: None,
                deliver: Default::default(),
            };
            if let Err(e) = crate::runs::start(&st, spec, |_| {}) {
                tracing::warn!(agent = %agent, error = %e.message, "boot-md: cannot start BOOT.md");
                continue;
            }
            match st.runs.wait(&run_id, Duration::from_secs(900)).await {
                Ok(Some(r)) if r["status"] == "ok" => tracing::info!(agent = %agent, "boot-md: BOOT.md ran"),
                Ok(r) => tracing::warn!(agent = %agent, result = ?r, "boot-md: BOOT.md did not finish well"),
                Err(e) => tracing::warn!(agent = %agent, error = %e.message, "boot-md: lost track of the run"),
            }
            if let Err(e) = crate::lifecycle::delete_session(&st, &key, true) {
                tracing::warn!(agent = %agent, error = %e.message, "boot-md: cannot remove the boot session");
            }
        }
    });
}

/// The hooks shipped with Homarus.
pub fn bundled_hooks(state_dir: &Path) -> Vec<InternalHook> {
    let native = |name: &str, description: &str, events: &[&str], h: Arc<dyn NativeHandler>| InternalHook {
        name: name.into(),
        description: description.into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        source: HookSource::Bundled,
        dir: None,
        requires: Default::default(),
        handler: HookHandlerKind::Native(h),
    };
    vec![
        native(
            "command-logger",
            "Logs every command event (/new, /reset, /stop) as a JSON line in <stateDir>/logs/commands.log",
            &["command"],
            Arc::new(CommandLogger { path: state_dir.join("logs/commands.log") }),
        ),
        native(
            "compaction-notifier",
            "Tells the chat user when the context is being compacted and when it is done",
            &["session:compact:before", "session:compact:after"],
            Arc::new(CompactionNotifier),
        ),
        native(
            "boot-md",
            "Runs each agent workspace's BOOT.md through an agent turn when the gateway starts",
            &["gateway:startup"],
            Arc::new(BootMd),
        ),
        native(
            "session-memory",
            "Saves the last messages of a session that is reset to <workspace>/memory/YYYY-MM-DD-HHMM.md",
            &["command:new", "command:reset", "session:auto-reset"],
            Arc::new(SessionMemory),
        ),
    ]
}

/// Where hook folders are found: extra folders in order, then `<stateDir>/hooks/` (which wins over
/// them), then the main workspace's `hooks/` (new names only, each enabled by name).
pub fn hook_roots(opts: &GatewayOptions, cfg: &LoadedConfig) -> Vec<(HookSource, PathBuf)> {
    let mut roots: Vec<(HookSource, PathBuf)> =
        cfg.config.hooks.internal.load.extra_dirs.iter().map(|d| (HookSource::Extra, PathBuf::from(d))).collect();
    roots.push((HookSource::Managed, opts.state_dir.join("hooks")));
    let workspace = crate::run_exec::workspace_for(&cfg.config, &opts.state_dir, "main");
    roots.push((HookSource::Workspace, workspace.join("hooks")));
    roots
}

/// Discover, select and load the internal hooks (problems and skipped hooks are logged).
pub fn load(opts: &GatewayOptions, cfg: &LoadedConfig) -> InternalHookBus {
    let (hooks, problems) = discover_internal_hooks(bundled_hooks(&opts.state_dir), &hook_roots(opts, cfg));
    for p in &problems {
        tracing::warn!("internal hook problem: {p}");
    }
    let selected = select_internal_hooks(&hooks, &cfg.config.hooks.internal);
    let (bus, skipped) = InternalHookBus::new(selected, &cfg.config.hooks.internal, HANDLER_TIMEOUT);
    for s in &skipped {
        tracing::warn!("internal hook not loaded: {s}");
    }
    let loaded: Vec<&str> = bus.hooks().map(|h| h.name.as_str()).collect();
    if !loaded.is_empty() {
        tracing::info!(hooks = ?loaded, "internal hooks loaded");
    }
    bus
}

/// An event with the current time.
pub fn event(kind: &str, action: &str, session_key: &str, context: Value) -> InternalEvent {
    InternalEvent {
        kind: kind.into(),
        action: action.into(),
        session_key: session_key.into(),
        context,
        timestamp_ms: now_ms(),
    }
}

/// Emit without waiting (observational events such as `session:patch` and `gateway:startup`).
pub fn emit_detached(state: &Arc<GatewayState>, e: InternalEvent) {
    let state = state.clone();
    tokio::spawn(async move {
        state.internal_hooks.emit(&e).await;
    });
}
