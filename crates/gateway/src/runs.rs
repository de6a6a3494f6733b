//! Agent runs owned by the gateway: one run at a time per session (a lane), a global cap on runs
//! at once, abort, `agent.wait`, and the close step that aborts every run before the session drain.
//!
//! A run is started by `chat.send` or `agent` (and later by channels, cron and heartbeats). It
//! prepares the session (creating it, or resetting it when its reset policy says it went stale),
//! builds the prompt from the agent workspace, and drives [`homarus_agent::run`], turning its
//! events into `agent` and `chat` events (see [`crate::run_events`]).
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use homarus_agent::{CompactionSettings, RetryPolicy, RunRequest, ToolContext};
use homarus_protocol::ErrorShape;
use homarus_store::SessionRow;

use crate::run_events::EventSink;
use crate::state::{now_ms, GatewayState};

/// Default cap on runs at once (`agents.defaults.maxConcurrent`).
pub const DEFAULT_MAX_CONCURRENT: usize = 8;
/// Runs waiting behind the active one in one session's lane; more are refused.
pub const MAX_QUEUED_PER_SESSION: usize = 16;
/// Finished runs remembered for `agent.wait`.
const FINISHED_KEPT: usize = 1024;
/// Default run timeout (`agents.defaults.timeoutSeconds`).
const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// One session's lane: the lock a run holds while it runs, and how many runs hold or wait for it.
type Lane = (Arc<tokio::sync::Mutex<()>>, usize);

struct ActiveRun {
    session_key: String,
    cancel: CancellationToken,
    done: watch::Receiver<Option<Value>>,
}

/// The gateway's runs.
pub struct Runs {
    active: Mutex<HashMap<String, ActiveRun>>,
    lanes: Mutex<HashMap<String, Lane>>,
    finished: Mutex<VecDeque<(String, Value)>>,
    global: Arc<Semaphore>,
    tracker: TaskTracker,
    /// HTTP client shared by providers and `web_fetch`.
    pub http: reqwest::Client,
}

impl Default for Runs {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONCURRENT)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Run id (the idempotency key).
    pub run_id: String,
    /// Session key.
    pub session_key: String,
    /// Agent id.
    pub agent_id: String,
    /// The user's message.
    pub message: String,
    /// Extra system prompt text.
    pub extra_system_prompt: Option<String>,
    /// Timeout override.
    pub timeout: Option<Duration>,
    /// Refuse unless the session still has this id.
    pub expected_session_id: Option<String>,
}

impl Runs {
    /// Runs with at most `max_concurrent` at once.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            active: Mutex::new(HashMap::new()),
            lanes: Mutex::new(HashMap::new()),
            finished: Mutex::new(VecDeque::new()),
            global: Arc::new(Semaphore::new(max_concurrent.max(1))),
            tracker: TaskTracker::new(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    /// Whether a run is active or queued for `session_key`.
    pub fn session_busy(&self, session_key: &str) -> bool {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).values().any(|r| r.session_key == session_key)
    }

    /// Abort the runs of a session (or one run). Returns the aborted run ids.
    pub fn abort(&self, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (id, r) in active.iter() {
            if r.session_key == session_key && run_id.is_none_or(|want| want == id) {
                r.cancel.cancel();
                out.push(id.clone());
            }
        }
        out
    }

    /// Wait up to `timeout` for `run_id` to finish; its result, or `None` on timeout.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<Option<Value>, ErrorShape> {
        let rx = self.active.lock().unwrap_or_else(|p| p.into_inner()).get(run_id).map(|r| r.done.clone());
        let Some(mut rx) = rx else {
            let finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            return match finished.iter().find(|(id, _)| id == run_id) {
                Some((_, v)) => Ok(Some(v.clone())),
                None => Err(ErrorShape::invalid(format!("unknown run: {run_id}"))),
            };
        };
        let done = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        Ok(match done {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        })
    }

    /// Abort every run and wait (bounded) for them to finish writing; the close sequence calls this
    /// before the session drain.
    pub async fn shutdown(&self, budget: Duration) -> bool {
        for r in self.active.lock().unwrap_or_else(|p| p.into_inner()).values() {
            r.cancel.cancel();
        }
        self.tracker.close();
        tokio::time::timeout(budget, self.tracker.wait()).await.is_ok()
    }

    fn lane(&self, key: &str) -> Result<Arc<tokio::sync::Mutex<()>>, ErrorShape> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let entry = lanes.entry(key.to_string()).or_insert_with(|| (Arc::new(tokio::sync::Mutex::new(())), 0));
        if entry.1 > MAX_QUEUED_PER_SESSION {
            return Err(ErrorShape::unavailable(format!(
                "session {key} has {MAX_QUEUED_PER_SESSION} runs queued already; wait for them or send /stop"
            )));
        }
        entry.1 += 1;
        Ok(entry.0.clone())
    }

    fn leave_lane(&self, key: &str) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = lanes.get_mut(key) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                lanes.remove(key);
            }
        }
    }

    fn finish(&self, run_id: &str, result: Value) {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).remove(run_id);
        let mut f = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() >= FINISHED_KEPT {
            f.pop_front();
        }
        f.push_back((run_id.to_string(), result));
    }
}

/// Refuse early (before acknowledging a request) when a run could not start now.
pub fn check_can_start(state: &GatewayState, session_key: &str) -> Result<(), ErrorShape> {
    if state.closing.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ErrorShape::unavailable("gateway is shutting down; retry after it restarts").with_retry_after(1500));
    }
    let lanes = state.runs.lanes.lock().unwrap_or_else(|p| p.into_inner());
    if lanes.get(session_key).is_some_and(|l| l.1 > MAX_QUEUED_PER_SESSION) {
        return Err(ErrorShape::unavailable(format!(
            "session {session_key} has {MAX_QUEUED_PER_SESSION} runs queued already; wait for them or send /stop"
        )));
    }
    Ok(())
}

/// Resolve the models `agent_id` uses (probing a local Ollama when nothing is configured).
pub async fn models_for(state: &GatewayState, agent_id: &str) -> Result<Vec<homarus_agent::ResolvedModel>, String> {
    let cfg = state.config();
    let env = |k: &str| std::env::var(k).ok();
    match homarus_agent::resolve_models(&cfg.config, agent_id, &env, None) {
        Ok(m) => Ok(m),
        Err(homarus_agent::ResolveError::NoModel) => {
            let detected = homarus_agent::provider::detect_ollama(&state.runs.http).await;
            homarus_agent::resolve_models(&cfg.config, agent_id, &env, detected.as_deref()).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Start a run in the background. Refused (before anything runs) when the gateway is closing, the
/// session's lane is full, or the run id is already running. `on_done` gets the result.
pub fn start(
    state: &Arc<GatewayState>,
    spec: RunSpec,
    on_done: impl FnOnce(&Value) + Send + 'static,
) -> Result<(), ErrorShape> {
    if state.closing.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ErrorShape::unavailable("gateway is shutting down; retry after it restarts").with_retry_after(1500));
    }
    let runs = &state.runs;
    let lane = runs.lane(&spec.session_key)?;
    let cancel = CancellationToken::new();
    let (done_tx, done_rx) = watch::channel(None);
    {
        let mut active = runs.active.lock().unwrap_or_else(|p| p.into_inner());
        if active.contains_key(&spec.run_id) {
            drop(active);
            runs.leave_lane(&spec.session_key);
            return Err(ErrorShape::invalid(format!("run {} is already running", spec.run_id)));
        }
        active.insert(
            spec.run_id.clone(),
            ActiveRun { session_key: spec.session_key.clone(), cancel: cancel.clone(), done: done_rx },
        );
    }
    let st = state.clone();
    runs.tracker.spawn(async move {
        let started_at = now_ms();
        let result = {
            let _lane = lane.lock().await;
            let _slot = st.runs.global.clone().acquire_owned().await;
            execute(&st, &spec, &cancel, started_at).await
        };
        st.runs.leave_lane(&spec.session_key);
        st.runs.finish(&spec.run_id, result.clone());
        let _ = done_tx.send(Some(result.clone()));
        on_done(&result);
    });
    Ok(())
}

/// The agent's workspace folder: `agents.entries.<id>.workspace`, `agents.defaults.workspace`
/// (for `main`), else `<stateDir>/workspace[-<id>]`.
pub fn workspace_dir(state: &GatewayState, agent_id: &str) -> PathBuf {
    let cfg = state.config();
    let agents = &cfg.config.agents;
    let configured = agents.entries.get(agent_id).and_then(|e| e.workspace.clone()).or_else(|| {
        if agent_id == "main" {
            agents.defaults.workspace.clone()
        } else {
            None
        }
    });
    match configured {
        Some(p) => match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => PathBuf::from(p),
        },
        None if agent_id == "main" => state.opts.state_dir.join("workspace"),
        None => state.opts.state_dir.join(format!("workspace-{agent_id}")),
    }
}

pub(crate) fn compaction_settings(state: &GatewayState, agent_id: &str) -> CompactionSettings {
    let cfg = state.config();
    let agents = &cfg.config.agents;
    let c = agents
        .entries
        .get(agent_id)
        .and_then(|e| e.compaction.clone())
        .or_else(|| agents.defaults.compaction.clone())
        .unwrap_or_default();
    let d = CompactionSettings::default();
    CompactionSettings {
        enabled: c.enabled.unwrap_or(d.enabled),
        reserve_tokens: c.reserve_tokens.unwrap_or(d.reserve_tokens),
        keep_recent_tokens: c.keep_recent_tokens.unwrap_or(d.keep_recent_tokens),
    }
}

/// Build the run request for `row`; errors are user-facing (no model configured, workspace).
async fn build_request(state: &Arc<GatewayState>, spec: &RunSpec, row: &SessionRow) -> Result<RunRequest, String> {
    let cfg = state.config();
    let mut models = models_for(state, &spec.agent_id).await?;
    // A session-level `/model` choice goes first.
    if let Some(pref) = row.prefs.get("model").and_then(Value::as_str) {
        if let Some(i) = models.iter().position(|m| m.reference() == pref || m.model == pref) {
            let chosen = models.remove(i);
            models.insert(0, chosen);
        }
    }
    let workspace = workspace_dir(state, &spec.agent_id);
    homarus_agent::workspace::ensure_workspace(&workspace)
        .map_err(|e| format!("cannot prepare the workspace {}: {e}", workspace.display()))?;
    let agents = &cfg.config.agents;
    let max_chars = agents
        .entries
        .get(&spec.agent_id)
        .and_then(|e| e.bootstrap_max_chars)
        .or(agents.defaults.bootstrap_max_chars)
        .map(|n| n as usize)
        .unwrap_or(homarus_agent::workspace::DEFAULT_BOOTSTRAP_MAX_CHARS);
    let files = homarus_agent::workspace::load_bootstrap(&workspace, max_chars);
    let tools = homarus_agent::tools::builtin_specs();
    let tool_names: Vec<String> = tools.iter().map(|t| t.name.clone()).collect();
    let system_prompt = homarus_agent::workspace::system_prompt(&homarus_agent::workspace::PromptContext {
        agent_id: &spec.agent_id,
        workspace: &workspace,
        tools: &tool_names,
        model: &models[0].reference(),
        files: &files,
        extra: spec.extra_system_prompt.as_deref(),
    });
    Ok(RunRequest {
        run_id: spec.run_id.clone(),
        agent_id: spec.agent_id.clone(),
        session_key: row.key.clone(),
        session_id: row.session_id.clone(),
        transcript: PathBuf::from(&row.session_file),
        message: spec.message.clone(),
        models,
        system_prompt,
        tools,
        tool_ctx: ToolContext { workspace, exec_timeout: Duration::from_secs(120), http: state.runs.http.clone() },
        retry: RetryPolicy::default(),
        compaction: compaction_settings(state, &spec.agent_id),
        max_turns: homarus_agent::run::DEFAULT_MAX_TURNS,
        heartbeat: false,
        hooks: Some(state.opts.hooks.clone()),
        compaction_hooks: Some(Arc::new(crate::run_events::GatewayCompactionHooks::new(state, row))),
    })
}

fn run_timeout(state: &GatewayState, spec: &RunSpec) -> Duration {
    let cfg = state.config();
    let agents = &cfg.config.agents;
    spec.timeout
        .or_else(|| {
            agents
                .entries
                .get(&spec.agent_id)
                .and_then(|e| e.timeout_seconds)
                .or(agents.defaults.timeout_seconds)
                .map(Duration::from_secs)
        })
        .unwrap_or(DEFAULT_RUN_TIMEOUT)
}

/// Run to the end; the result is `{runId, status, startedAt, endedAt, text?, error?, …}`.
async fn execute(state: &Arc<GatewayState>, spec: &RunSpec, cancel: &CancellationToken, started_at: i64) -> Value {
    let mut sink = EventSink::new(state, spec);
    let row = match crate::lifecycle::prepare_inbound(
        state,
        &spec.session_key,
        &spec.agent_id,
        spec.expected_session_id.as_deref(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return sink.failed(started_at, &e.message),
    };
    sink.session_id = Some(row.session_id.clone());
    let req = match build_request(state, spec, &row).await {
        Ok(r) => r,
        Err(e) => return sink.failed(started_at, &e),
    };
    sink.lifecycle_start(started_at);
    let timeout = run_timeout(state, spec);
    let timer = {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            c.cancel();
        })
    };
    let outcome = homarus_agent::run(&req, &state.runs.http, cancel, &mut |ev| sink.on_event(ev)).await;
    let timed_out = timer.is_finished() && outcome.aborted;
    timer.abort();
    crate::lifecycle::record_turn(state, &row, &outcome);
    sink.finish(started_at, &outcome, timed_out.then_some(timeout))
}

/// `{runId, status:"timeout"}` for `agent.wait` when the run has not finished.
pub fn wait_timeout(run_id: &str) -> Value {
    json!({"runId": run_id, "status": "timeout"})
}
