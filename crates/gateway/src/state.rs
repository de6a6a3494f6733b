//! State shared by every connection and request handler.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::broadcast;

use homarus_config::LoadedConfig;
use homarus_protocol::{DEDUPE_MAX, DEDUPE_TTL_MS};
use homarus_store::Store;

use crate::auth::AuthRateLimiter;
use crate::dedupe::IdempotencyCache;
use crate::outbound::Outbound;
use crate::{GatewayOptions, ResolvedAuth};

/// Every method this gateway implements; advertised as `hello-ok.features.methods`.
pub const IMPLEMENTED_METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "logs.tail",
    "config.get",
    "config.schema",
    "config.set",
    "config.patch",
    "config.apply",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "sessions.list",
    "sessions.describe",
    "sessions.create",
    "sessions.patch",
    "sessions.reset",
    "sessions.delete",
    "chat.history",
    "chat.send",
    "chat.abort",
    "chat.inject",
    "agent",
    "agent.wait",
    "agents.list",
    "commands.list",
    "sessions.subscribe",
    "tasks.list",
    "tasks.get",
    "tasks.cancel",
    "wake",
    "channels.status",
    "channels.pairing.list",
    "channels.pairing.approve",
    "channels.pairing.dismiss",
    "cron.list",
    "cron.get",
    "cron.status",
    "cron.add",
    "cron.update",
    "cron.remove",
    "cron.run",
    "cron.runs",
    "last-heartbeat",
    "set-heartbeats",
];

/// Every event this gateway emits; advertised as `hello-ok.features.events`.
pub const EMITTED_EVENTS: &[&str] = &[
    "connect.challenge",
    "tick",
    "shutdown",
    "device.pair.requested",
    "device.pair.resolved",
    "sessions.changed",
    "agent",
    "chat",
    "task",
    "cron",
    "heartbeat",
];

/// Why the gateway is closing, as broadcast to connections.
#[derive(Debug, Clone)]
pub struct ShutdownNotice {
    /// `shutdown.reason`.
    pub reason: String,
    /// `shutdown.restartExpectedMs`.
    pub restart_expected_ms: Option<u64>,
}

/// One authenticated client, for presence and broadcasts.
pub struct ClientHandle {
    /// Its presence entry.
    pub presence: Value,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Its outbound queue.
    pub outbound: Outbound,
}

/// Shared gateway state.
pub struct GatewayState {
    /// Start-up options.
    pub opts: GatewayOptions,
    /// Random id of this process start.
    pub boot_id: String,
    /// Monotonic start time.
    pub started: Instant,
    /// The configuration in force; replaced whole on reload.
    pub config: RwLock<Arc<LoadedConfig>>,
    /// The shared secret in force.
    pub auth: RwLock<ResolvedAuth>,
    /// Failed-auth counters.
    pub rate_limiter: AuthRateLimiter,
    /// Durable state.
    pub store: Store,
    /// Idempotency cache for side-effecting methods.
    pub dedupe: IdempotencyCache,
    /// Authenticated clients by connection number.
    pub clients: Mutex<HashMap<u64, ClientHandle>>,
    next_conn: AtomicU64,
    /// The log file `logs.tail` reads.
    pub log_file: PathBuf,
    /// The bound address.
    pub listen_addr: SocketAddr,
    /// Shutdown broadcast to connections.
    pub shutdown_tx: broadcast::Sender<ShutdownNotice>,
    /// `health.configReload.hotReloadStatus`.
    pub reload_status: Mutex<&'static str>,
    /// `stateVersion.presence`.
    pub presence_version: AtomicU64,
    /// Serializes config writes so the `baseHash` check and the write are one step.
    pub config_write: tokio::sync::Mutex<()>,
    /// Asks the gateway's owner for an in-process restart (config changes in `restart` mode).
    pub restart_tx: tokio::sync::mpsc::Sender<()>,
    /// Set once close begins; connections that start after it close at once.
    pub closing: std::sync::atomic::AtomicBool,
    /// Why the last config file reload was rejected (cleared by a good reload).
    pub last_reload_error: Mutex<Option<String>>,
    /// Sessions that started and have not ended (the shutdown drain ends them).
    pub active_sessions: homarus_hooks::ActiveSessionTracker,
    /// Running plugin processes; taken by the `plugins` close step.
    pub plugins: Mutex<Option<homarus_plugins::PluginHost>>,
    /// `health.sessions`, cached; cleared by every session change so it is never stale.
    pub sessions_summary: Mutex<Option<Value>>,
    /// Internal automation hooks.
    pub internal_hooks: homarus_hooks::internal::InternalHookBus,
    /// The last session maintenance pass (`status.sessions.maintenance`).
    pub last_maintenance: Mutex<Option<Value>>,
    /// Agent runs.
    pub runs: Arc<crate::runs::Runs>,
    /// System events waiting for their session's next turn.
    pub system_events: crate::background::SystemEvents,
    /// `chat` events of runs someone streams over HTTP, by run id (bounded channels).
    pub run_listeners: Mutex<HashMap<String, tokio::sync::mpsc::Sender<Value>>>,
    /// Chat channel accounts.
    pub channels: crate::channels::ChannelManager,
    /// Cron jobs and their timer.
    pub cron: crate::cron::CronService,
    /// Heartbeats.
    pub heartbeats: crate::heartbeat::HeartbeatService,
    /// Sessions of recent `/v1/responses` answers (`previous_response_id`).
    pub response_sessions: crate::openai_responses::ResponseSessions,
}

/// What the state is built from (everything [`crate::Gateway::start`] resolved).
pub struct StateInit {
    /// Start-up options.
    pub opts: GatewayOptions,
    /// The loaded configuration.
    pub config: LoadedConfig,
    /// The shared secret.
    pub auth: ResolvedAuth,
    /// The state database.
    pub store: Store,
    /// The log file.
    pub log_file: PathBuf,
    /// The bound address.
    pub listen_addr: SocketAddr,
    /// Restart requests go here.
    pub restart_tx: tokio::sync::mpsc::Sender<()>,
    /// Started plugins.
    pub plugins: homarus_plugins::PluginHost,
    /// Loaded internal hooks.
    pub internal_hooks: homarus_hooks::internal::InternalHookBus,
}

impl GatewayState {
    /// Build the state.
    pub fn new(init: StateInit) -> Self {
        let StateInit { opts, config, auth, store, log_file, listen_addr, restart_tx, plugins, internal_hooks } = init;
        let (shutdown_tx, _) = broadcast::channel(4);
        let max_concurrent = config
            .config
            .agents
            .defaults
            .max_concurrent
            .map(|n| n as usize)
            .unwrap_or(crate::runs::DEFAULT_MAX_CONCURRENT);
        Self {
            opts,
            boot_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            config: RwLock::new(Arc::new(config)),
            auth: RwLock::new(auth),
            rate_limiter: AuthRateLimiter::default(),
            store,
            dedupe: IdempotencyCache::new(Duration::from_millis(DEDUPE_TTL_MS), DEDUPE_MAX),
            clients: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            log_file,
            listen_addr,
            shutdown_tx,
            reload_status: Mutex::new("active"),
            presence_version: AtomicU64::new(1),
            config_write: tokio::sync::Mutex::new(()),
            restart_tx,
            closing: std::sync::atomic::AtomicBool::new(false),
            last_reload_error: Mutex::new(None),
            active_sessions: homarus_hooks::ActiveSessionTracker::new(),
            plugins: Mutex::new(Some(plugins)),
            sessions_summary: Mutex::new(None),
            internal_hooks,
            last_maintenance: Mutex::new(None),
            runs: Arc::new(crate::runs::Runs::new(max_concurrent)),
            system_events: Default::default(),
            run_listeners: Mutex::new(HashMap::new()),
            channels: Default::default(),
            cron: Default::default(),
            heartbeats: Default::default(),
            response_sessions: Default::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<LoadedConfig> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The shared secret in force.
    pub fn auth(&self) -> ResolvedAuth {
        self.auth.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A fresh connection number.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Milliseconds since start.
    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Receive the `chat` events of `run_id` (the OpenAI streaming API). Each carries the whole text
    /// so far, so a slow reader that misses one loses nothing.
    pub fn listen_run(&self, run_id: &str) -> tokio::sync::mpsc::Receiver<Value> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        self.run_listeners.lock().unwrap_or_else(|p| p.into_inner()).insert(run_id.to_string(), tx);
        rx
    }

    /// Stop listening to `run_id`.
    pub fn unlisten_run(&self, run_id: &str) {
        self.run_listeners.lock().unwrap_or_else(|p| p.into_inner()).remove(run_id);
    }

    /// Hand a run's `chat` event to its listener, if any (dropped when the listener is full).
    pub fn to_run_listener(&self, run_id: &str, payload: &Value) {
        if let Some(tx) = self.run_listeners.lock().unwrap_or_else(|p| p.into_inner()).get(run_id) {
            let _ = tx.try_send(payload.clone());
        }
    }

    /// Send `event` to every client holding one of `scopes` (admin always qualifies).
    pub fn broadcast(&self, event: &str, payload: &Value, scopes: &[&str]) {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        for c in clients.values() {
            let allowed = scopes.is_empty()
                || c.scopes.iter().any(|s| s == homarus_protocol::Scope::ADMIN || scopes.contains(&s.as_str()));
            if allowed {
                // A slow client is dropped by its own connection task; nothing to do here.
                let _ = c.outbound.send_event(event, payload);
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
