//! Running internal hooks for an event.
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use homarus_config::InternalHooksConfig;

use super::discover::{HookHandlerKind, InternalHook};

/// Most bytes read from a handler's stdout.
const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// A hook handler built into Homarus. Gets the event JSON; returns messages.
pub trait NativeHandler: Send + Sync {
    /// Handle one event.
    fn handle(&self, event: &Value) -> Result<Vec<String>, String>;
}

/// An internal event: `type:action` with a session key and context.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalEvent {
    /// Family: `command`, `session`, `agent`, `gateway`, `message`.
    pub kind: String,
    /// Action, e.g. `new`, `shutdown`, `compact:before`.
    pub action: String,
    /// Session correlation key (`gateway` for gateway events).
    pub session_key: String,
    /// Event-specific data.
    pub context: Value,
    /// When it happened, ms since the epoch.
    pub timestamp_ms: i64,
}

impl InternalEvent {
    /// `type:action`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.kind, self.action)
    }

    fn to_json(&self, hook_config: &Value) -> Value {
        let mut context = self.context.clone();
        if let Some(obj) = context.as_object_mut() {
            obj.insert("hookConfig".into(), hook_config.clone());
        }
        json!({"type": self.kind, "action": self.action, "sessionKey": self.session_key, "context": context,
               "timestamp": self.timestamp_ms, "messages": []})
    }
}

struct Loaded {
    hook: InternalHook,
    env: BTreeMap<String, String>,
    options: Value,
}

/// The loaded internal hooks.
pub struct InternalHookBus {
    hooks: Vec<Loaded>,
    handler_timeout: Duration,
}

impl InternalHookBus {
    /// Load `selected` hooks; ineligible ones (missing programs, env, OS) are left out and returned
    /// with the reason.
    pub fn new(
        selected: Vec<InternalHook>,
        cfg: &InternalHooksConfig,
        handler_timeout: Duration,
    ) -> (Self, Vec<String>) {
        let mut hooks = Vec::new();
        let mut skipped = Vec::new();
        for hook in selected {
            let entry = cfg.entries.get(&hook.name).cloned().unwrap_or_default();
            let env = entry.env.clone().unwrap_or_default();
            if let Some(why) = hook.missing_requirements(&env) {
                skipped.push(format!("hook {}: {why}", hook.name));
                continue;
            }
            let options = serde_json::to_value(&entry.options).unwrap_or(Value::Null);
            hooks.push(Loaded { hook, env, options });
        }
        (Self { hooks, handler_timeout }, skipped)
    }

    /// An empty bus.
    pub fn empty() -> Self {
        Self { hooks: Vec::new(), handler_timeout: Duration::from_secs(30) }
    }

    /// The loaded hooks.
    pub fn hooks(&self) -> impl Iterator<Item = &InternalHook> {
        self.hooks.iter().map(|l| &l.hook)
    }

    /// Run the hooks listening to this event: family listeners first, then exact ones, each in load
    /// order and bounded by the handler timeout. Returns the messages they produced.
    pub async fn emit(&self, event: &InternalEvent) -> Vec<String> {
        let name = event.name();
        let family = self.hooks.iter().filter(|l| l.hook.events.contains(&event.kind));
        let exact = self.hooks.iter().filter(|l| l.hook.events.contains(&name));
        let mut messages = Vec::new();
        for l in family.chain(exact) {
            let payload = event.to_json(&l.options);
            match tokio::time::timeout(self.handler_timeout, run(l, &payload)).await {
                Ok(Ok(mut m)) => messages.append(&mut m),
                Ok(Err(e)) => tracing::warn!(hook = %l.hook.name, event = %name, "internal hook failed: {e}"),
                Err(_) => {
                    tracing::warn!(hook = %l.hook.name, event = %name, "internal hook timed out after {}s", self.handler_timeout.as_secs())
                }
            }
        }
        messages
    }
}

async fn run(l: &Loaded, payload: &Value) -> Result<Vec<String>, String> {
    let argv = match &l.hook.handler {
        HookHandlerKind::Native(h) => return h.handle(payload),
        HookHandlerKind::Exec { argv } => argv,
    };
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(&l.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &l.hook.dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {}: {e}", argv.join(" ")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A handler that does not read its input must not fail the hook: ignore write errors.
        let _ = stdin.write_all(format!("{payload}\n").as_bytes()).await;
    }
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(MAX_OUTPUT_BYTES).read_to_end(&mut out).await;
    }
    let mut err = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = stderr.take(MAX_OUTPUT_BYTES).read_to_string(&mut err).await;
    }
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        tracing::info!(hook = %l.hook.name, "{line}");
    }
    let status = child.wait().await.map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("handler exited with {status}"));
    }
    let text = String::from_utf8_lossy(&out);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| format!("stdout is not JSON ({e})"))?;
    Ok(v["messages"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::{discover_internal_hooks, select_internal_hooks, HookSource};
    use std::sync::{Arc, Mutex};

    struct Recorder(Arc<Mutex<Vec<String>>>, &'static str);
    impl NativeHandler for Recorder {
        fn handle(&self, e: &Value) -> Result<Vec<String>, String> {
            self.0.lock().unwrap().push(format!("{}:{}", self.1, e["action"].as_str().unwrap()));
            Ok(vec![format!("{} saw it", self.1)])
        }
    }

    fn native(name: &str, events: &[&str], r: Recorder) -> InternalHook {
        InternalHook {
            name: name.into(),
            description: String::new(),
            events: events.iter().map(|e| e.to_string()).collect(),
            source: HookSource::Bundled,
            dir: None,
            requires: Default::default(),
            handler: HookHandlerKind::Native(Arc::new(r)),
        }
    }

    #[tokio::test]
    async fn family_first_then_exact_and_executables_get_the_event_on_stdin() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("exec");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("HOOK.md"), "---\nname: exec\nmetadata: {openclaw: {events: [\"command:new\"]}}\n---\n")
            .unwrap();
        std::fs::write(
            d.join("handler.sh"),
            "#!/bin/sh\ninput=$(cat)\necho \"$input\" > seen.json\necho '{\"messages\":[\"from exec\"]}'\necho 'a log line' >&2\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join("handler.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let bundled = vec![
            native("exact", &["command:new"], Recorder(log.clone(), "exact")),
            native("family", &["command"], Recorder(log.clone(), "family")),
        ];
        let (hooks, problems) = discover_internal_hooks(bundled, &[(HookSource::Managed, root.path().to_path_buf())]);
        assert!(problems.is_empty(), "{problems:?}");
        let cfg: InternalHooksConfig = serde_json::from_value(
            json!({"enabled": true, "entries": {"exact": {}, "family": {}, "exec": {"greeting": "hi"}}}),
        )
        .unwrap();
        let (bus, skipped) = InternalHookBus::new(select_internal_hooks(&hooks, &cfg), &cfg, Duration::from_secs(10));
        assert!(skipped.is_empty());
        let event = InternalEvent {
            kind: "command".into(),
            action: "new".into(),
            session_key: "agent:main:main".into(),
            context: json!({"reason": "new"}),
            timestamp_ms: 1,
        };
        let messages = bus.emit(&event).await;
        assert_eq!(*log.lock().unwrap(), ["family:new", "exact:new"], "family listeners run first");
        assert_eq!(messages, ["family saw it", "exact saw it", "from exec"]);
        let seen: Value = serde_json::from_str(&std::fs::read_to_string(d.join("seen.json")).unwrap()).unwrap();
        assert_eq!(seen["type"], "command");
        assert_eq!(seen["action"], "new");
        assert_eq!(seen["context"]["hookConfig"]["greeting"], "hi");
        let other = InternalEvent { kind: "gateway".into(), action: "startup".into(), ..event };
        assert!(bus.emit(&other).await.is_empty());
    }

    #[tokio::test]
    async fn a_slow_handler_is_bounded() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("slow");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("HOOK.md"),
            "---\nmetadata: {homarus: {events: [gateway], command: [sleep, \"30\"]}}\n---\n",
        )
        .unwrap();
        let (hooks, _) = discover_internal_hooks(Vec::new(), &[(HookSource::Managed, root.path().to_path_buf())]);
        let cfg: InternalHooksConfig = serde_json::from_value(json!({"enabled": true})).unwrap();
        let (bus, _) = InternalHookBus::new(select_internal_hooks(&hooks, &cfg), &cfg, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let event = InternalEvent {
            kind: "gateway".into(),
            action: "shutdown".into(),
            session_key: "gateway".into(),
            context: json!({}),
            timestamp_ms: 1,
        };
        assert!(bus.emit(&event).await.is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
