//! The plugin host: discovers enabled plugins, runs each under a supervisor, and registers a hook
//! proxy for every hook a plugin subscribes to.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use homarus_config::PluginsConfig;
use homarus_hooks::{HandlerFuture, HookHandler, HookRunner, Registration};

use crate::manifest::{discover, Discovered};
use crate::process::PluginProcess;

/// What `health`, `status` and the CLI report about one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    /// Plugin id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// Hooks it subscribed to.
    pub hooks: Vec<String>,
    /// `starting`, `running`, `restarting`, `failed` or `stopped`.
    pub state: &'static str,
    /// Restarts so far.
    pub restarts: u32,
    /// Last failure.
    pub last_error: Option<String>,
    /// PID while running.
    pub pid: Option<u32>,
}

/// Forwards hook calls to a plugin process as `hook` requests.
struct HookProxy(Arc<PluginProcess>);

impl HookHandler for HookProxy {
    fn call(&self, hook: &str, event: Value, ctx: Value) -> HandlerFuture {
        let process = self.0.clone();
        let params = json!({"name": hook, "event": event, "ctx": ctx});
        Box::pin(async move {
            let result = process.request("hook", params).await?;
            Ok((!result.is_null()).then_some(result))
        })
    }
}

/// Running plugins. Dropping it without [`PluginHost::stop`] kills the children (kill-on-drop).
pub struct PluginHost {
    running: Vec<(Discovered, Arc<PluginProcess>)>,
    tasks: Vec<JoinHandle<()>>,
    stop_tx: watch::Sender<bool>,
    runner: Arc<HookRunner>,
    problems: Vec<String>,
}

/// Whether `plugins.*` lets plugin `id` load.
pub fn is_enabled(cfg: &PluginsConfig, id: &str) -> bool {
    if cfg.enabled == Some(false) {
        return false;
    }
    if cfg.deny.as_ref().is_some_and(|d| d.iter().any(|x| x == id)) {
        return false;
    }
    if cfg.allow.as_ref().is_some_and(|a| !a.iter().any(|x| x == id)) {
        return false;
    }
    cfg.entries.get(id).and_then(|e| e.enabled) != Some(false)
}

impl PluginHost {
    /// Discover plugins under `roots`, start the enabled ones and register their hooks on `runner`.
    pub fn start(roots: &[PathBuf], cfg: &PluginsConfig, runner: Arc<HookRunner>, gateway_version: &str) -> Self {
        let (stop_tx, _) = watch::channel(false);
        let (found, mut problems) = discover(roots);
        let mut running = Vec::new();
        let mut tasks = Vec::new();
        for d in found {
            let id = d.manifest.id.clone();
            if !is_enabled(cfg, &id) {
                tracing::info!(plugin = %id, "plugin disabled by configuration");
                continue;
            }
            let entry = cfg.entries.get(&id).cloned().unwrap_or_default();
            let hook_names: Vec<String> = d.manifest.hooks.iter().map(|h| h.name().to_string()).collect();
            let mut init = json!({
                "gatewayVersion": gateway_version,
                "pluginId": id,
                "config": entry.config.clone().unwrap_or_else(|| json!({})),
                "hooks": hook_names,
            });
            if let Some(key) = &entry.api_key {
                init["apiKey"] = json!(key);
            }
            let env: Vec<(String, String)> = entry.env.clone().unwrap_or_default().into_iter().collect();
            let process = PluginProcess::new(id.clone(), d.dir.clone(), d.manifest.command.clone(), env, init);
            for sub in &d.manifest.hooks {
                let name = sub.name();
                if homarus_hooks::CONVERSATION_HOOKS.contains(&name)
                    && entry.hooks.allow_conversation_access != Some(true)
                {
                    problems.push(format!(
                        "plugin {id}: hook {name} sees conversation content and needs \
                         plugins.entries.{id}.hooks.allowConversationAccess: true; not registered"
                    ));
                    continue;
                }
                if homarus_hooks::PROMPT_INJECTION_HOOKS.contains(&name)
                    && entry.hooks.allow_prompt_injection == Some(false)
                {
                    problems.push(format!(
                        "plugin {id}: hook {name} is refused by plugins.entries.{id}.hooks.allowPromptInjection: false"
                    ));
                    continue;
                }
                let budget_ms =
                    entry.hooks.timeouts.get(sub.name()).copied().or(entry.hooks.timeout_ms).or(sub.timeout_ms());
                let reg = Registration {
                    plugin_id: id.clone(),
                    hook: sub.name().to_string(),
                    priority: sub.priority(),
                    timeout: budget_ms.map(Duration::from_millis),
                    handler: Arc::new(HookProxy(process.clone())),
                };
                if let Err(e) = runner.register(reg) {
                    problems.push(e);
                }
            }
            tasks.push(tokio::spawn(process.clone().supervise(stop_tx.subscribe())));
            tracing::info!(plugin = %id, dir = %d.dir.display(), hooks = ?hook_names, "plugin starting");
            running.push((d, process));
        }
        for p in &problems {
            tracing::warn!("plugin problem: {p}");
        }
        Self { running, tasks, stop_tx, runner, problems }
    }

    /// Every started plugin's status.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.running
            .iter()
            .map(|(d, p)| {
                let s = p.status();
                PluginStatus {
                    id: d.manifest.id.clone(),
                    name: d.manifest.name.clone(),
                    dir: d.dir.clone(),
                    hooks: d.manifest.hooks.iter().map(|h| h.name().to_string()).collect(),
                    state: s.state,
                    restarts: s.restarts,
                    last_error: s.last_error,
                    pid: s.pid,
                }
            })
            .collect()
    }

    /// Discovery and registration problems (bad manifests, duplicate ids, unknown hooks).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Unregister every hook, ask each plugin to shut down, and wait for the supervisors (the caller
    /// bounds this; a plugin that lingers is killed by its supervisor).
    pub async fn stop(self) {
        for (d, _) in &self.running {
            self.runner.unregister_plugin(&d.manifest.id);
        }
        let _ = self.stop_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
