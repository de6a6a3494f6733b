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

/// The hooks shipped with Homarus.
pub fn bundled_hooks(state_dir: &Path) -> Vec<InternalHook> {
    vec![InternalHook {
        name: "command-logger".into(),
        description: "Logs every command event (/new, /reset, /stop) as a JSON line in <stateDir>/logs/commands.log"
            .into(),
        events: vec!["command".into()],
        source: HookSource::Bundled,
        dir: None,
        requires: Default::default(),
        handler: HookHandlerKind::Native(Arc::new(CommandLogger { path: state_dir.join("logs/commands.log") })),
    }]
}

/// Where hook folders are found: extra folders in order, then `<stateDir>/hooks/` (which wins).
pub fn hook_roots(opts: &GatewayOptions, cfg: &LoadedConfig) -> Vec<(HookSource, PathBuf)> {
    let mut roots: Vec<(HookSource, PathBuf)> =
        cfg.config.hooks.internal.load.extra_dirs.iter().map(|d| (HookSource::Extra, PathBuf::from(d))).collect();
    roots.push((HookSource::Managed, opts.state_dir.join("hooks")));
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
