//! Agent runs owned by the gateway: one run at a time per session (its lane), a global cap on runs
//! at once, the queue for messages that arrive while a session is busy, abort, `agent.wait`, and
//! the close step that aborts every run before the session drain.
//!
//! Each busy session has one lane driver task that runs its queued turns in order. A message that
//! arrives while a turn runs is handled by the queue mode (spec E.2): `steer` puts it into the
//! running turn (answered by that turn's reply), `followup` queues a later turn, `collect` merges
//! everything queued into one later turn, `interrupt` aborts the running turn. A queued turn waits
//! a quiet window (debounce) first; the queue holds at most `cap` messages (`drop` decides which
//! go). Messages merged into another turn ("followers") get that turn's result under their own run id.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use homarus_config::{QueueDrop, QueueMode};
use homarus_protocol::{ErrorShape, Scope};

pub(crate) use crate::run_exec::{compaction_settings, models_for, workspace_dir};
use crate::state::{now_ms, GatewayState};

/// Default cap on runs at once (`agents.defaults.maxConcurrent`).
pub const DEFAULT_MAX_CONCURRENT: usize = 8;
/// Default queue cap per session (`messages.queue.cap`).
const DEFAULT_QUEUE_CAP: usize = 20;
/// Default quiet window before a queued turn (`messages.queue.debounceMs`).
const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);
/// Finished runs remembered for `agent.wait`.
const FINISHED_KEPT: usize = 1024;

/// Called with a run's result (the `agent` method sends its final response from here).
pub type OnDone = Box<dyn FnOnce(&Value) + Send>;

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
    /// Where the final reply goes besides the gateway's own clients.
    pub deliver: crate::channels::Delivery,
}

/// A run id waiting for a turn's result, with its callback.
struct Follower {
    run_id: String,
    on_done: OnDone,
    done: watch::Sender<Option<Value>>,
}

/// One queued turn: its spec and everyone waiting on it (the first is the turn's own run id).
struct Queued {
    spec: RunSpec,
    followers: Vec<Follower>,
    collect: bool,
}

/// Messages steered into a running turn: those the loop has not taken yet (with who sent them),
/// and the senders whose message the loop took (they get this turn's result). `None` once the
/// loop ended: later messages queue instead.
type SteerInbox = Arc<Mutex<Option<(Vec<(String, Follower)>, Vec<Follower>)>>>;

/// The turn running in a lane.
struct Running {
    run_id: String,
    cancel: CancellationToken,
    steer: SteerInbox,
}

#[derive(Default)]
struct Lane {
    running: Option<Running>,
    queue: VecDeque<Queued>,
    /// A one-line note per message dropped by `summarize`, added to the next turn.
    dropped: Vec<String>,
}

/// The gateway's runs.
pub struct Runs {
    lanes: Mutex<HashMap<String, Lane>>,
    /// Run id → done signal, for every run id not yet finished.
    waiting: Mutex<HashMap<String, watch::Receiver<Option<Value>>>>,
    finished: Mutex<VecDeque<(String, Value)>>,
    /// Run ids of tracked background jobs (media) still working.
    jobs: Mutex<std::collections::HashSet<String>>,
    global: Arc<Semaphore>,
    tracker: TaskTracker,
    /// HTTP client shared by providers and `web_fetch`.
    pub http: reqwest::Client,
}

impl Runs {
    /// Runs with at most `max_concurrent` at once.
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            finished: Mutex::new(VecDeque::new()),
            jobs: Mutex::new(Default::default()),
            global: Arc::new(Semaphore::new(max_concurrent.max(1))),
            tracker: TaskTracker::new(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|_| reqwest::Client::new()),
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lane>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a turn runs or waits for `session_key`.
    pub fn session_busy(&self, session_key: &str) -> bool {
        self.lanes().contains_key(session_key)
    }

    /// Cancel a session's running turn and take its queued messages (or only `run_id`'s). Returns
    /// the run ids affected and the removed waiters with their agent ids.
    fn cancel(&self, session_key: &str, run_id: Option<&str>) -> (Vec<String>, Vec<(String, Follower)>) {
        let mut out = Vec::new();
        let mut dropped = Vec::new();
        {
            let mut lanes = self.lanes();
            let Some(lane) = lanes.get_mut(session_key) else { return (out, dropped) };
            lane.queue.retain_mut(|q| {
                let hit = run_id.is_none_or(|want| q.followers.iter().any(|f| f.run_id == want));
                if hit {
                    out.extend(q.followers.iter().map(|f| f.run_id.clone()));
                    let agent = q.spec.agent_id.clone();
                    dropped.extend(q.followers.drain(..).map(|f| (agent.clone(), f)));
                }
                !hit
            });
            if let Some(r) = &lane.running {
                if run_id.is_none_or(|want| want == r.run_id) {
                    r.cancel.cancel();
                    out.push(r.run_id.clone());
                }
            }
        }
        (out, dropped)
    }

    /// Wait up to `timeout` for `run_id`; its result, or `None` on timeout.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> Result<Option<Value>, ErrorShape> {
        let rx = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).get(run_id).cloned();
        let Some(mut rx) = rx else {
            let finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            return match finished.iter().find(|(id, _)| id == run_id) {
                Some((_, v)) => Ok(Some(v.clone())),
                None => Err(ErrorShape::invalid(format!("unknown run: {run_id}"))),
            };
        };
        let result = match tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        };
        Ok(result)
    }

    /// Abort everything and wait (bounded) for running turns to write their last entries; the close
    /// sequence calls this before the session drain.
    pub async fn shutdown(&self, budget: Duration) -> bool {
        let keys: Vec<String> = self.lanes().keys().cloned().collect();
        for k in keys {
            for (_, f) in self.cancel(&k, None).1 {
                self.settle(f, json!({"status": "aborted"}));
            }
        }
        self.tracker.close();
        tokio::time::timeout(budget, self.tracker.wait()).await.is_ok()
    }

    /// Whether `run_id` runs or waits, or is a tracked background job.
    pub fn is_active(&self, run_id: &str) -> bool {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).contains_key(run_id)
            || self.jobs.lock().unwrap_or_else(|p| p.into_inner()).contains(run_id)
    }

    /// Run background work (a media job) under the runs' tracker, so the close waits for it like
    /// for runs. `false` once the close has begun.
    pub fn track(self: &Arc<Self>, run_id: &str, work: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
        if self.tracker.is_closed() {
            return false;
        }
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).insert(run_id.to_string());
        let (runs, id) = (self.clone(), run_id.to_string());
        self.tracker.spawn(async move {
            work.await;
            runs.jobs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
        true
    }

    /// Record a finished run id and call its callback.
    fn settle(&self, f: Follower, mut result: Value) {
        result["runId"] = json!(f.run_id);
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&f.run_id);
        {
            let mut done = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            if done.len() >= FINISHED_KEPT {
                done.pop_front();
            }
            done.push_back((f.run_id.clone(), result.clone()));
        }
        let _ = f.done.send(Some(result.clone()));
        (f.on_done)(&result);
    }
}

/// Abort a session's queued turns and its running turn (or only `run_id`); each gets its
/// `aborted` chat event. Returns the run ids affected.
pub fn abort(state: &GatewayState, session_key: &str, run_id: Option<&str>) -> Vec<String> {
    let (ids, dropped) = state.runs.cancel(session_key, run_id);
    for (agent, f) in dropped {
        let result = json!({"status": "aborted"});
        follower_final(state, session_key, &agent, &f.run_id, &result);
        state.runs.settle(f, result);
    }
    ids
}

/// Refuse early (before acknowledging a request) when a run could not start now.
pub fn check_can_start(state: &GatewayState, session_key: &str) -> Result<(), ErrorShape> {
    if state.closing.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ErrorShape::unavailable("gateway is shutting down; retry after it restarts").with_retry_after(1500));
    }
    let (_, _, cap, drop) = queue_settings(state, session_key);
    let lanes = state.runs.lanes();
    if drop == QueueDrop::New && lanes.get(session_key).is_some_and(|l| queued_messages(l) >= cap) {
        return Err(ErrorShape::unavailable(format!(
            "session {session_key} has {cap} messages queued already (messages.queue.cap); wait or send /stop"
        )));
    }
    Ok(())
}

fn queued_messages(lane: &Lane) -> usize {
    lane.queue.iter().map(|q| q.followers.len()).sum()
}

/// Mode, debounce, cap and drop policy for a session: its `/queue` choice (`queueMode` preference),
/// then `messages.queue.byChannel`, then `messages.queue.mode`, then `steer`.
fn queue_settings(state: &GatewayState, session_key: &str) -> (QueueMode, Duration, usize, QueueDrop) {
    let cfg = state.config();
    let q = cfg.config.messages.queue.clone().unwrap_or_default();
    let row = state.store.session(session_key).ok().flatten();
    let pref = |k: &str| row.as_ref().and_then(|r| r.prefs.get(k).cloned());
    let mode = pref("queueMode")
        .and_then(|v| serde_json::from_value::<QueueMode>(v).ok())
        .or_else(|| {
            let channel = row.as_ref().and_then(|r| r.prefs.get("channel")).and_then(Value::as_str)?;
            q.by_channel.get(channel).copied()
        })
        .or(q.mode)
        .unwrap_or_default();
    let debounce = pref("queueDebounceMs")
        .and_then(|v| v.as_u64())
        .or(q.debounce_ms)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_DEBOUNCE);
    let cap =
        pref("queueCap").and_then(|v| v.as_u64()).or(q.cap).map(|c| c.max(1) as usize).unwrap_or(DEFAULT_QUEUE_CAP);
    let drop =
        pref("queueDrop").and_then(|v| serde_json::from_value::<QueueDrop>(v).ok()).or(q.drop).unwrap_or_default();
    (mode, debounce, cap, drop)
}

/// Start `spec` now, or queue it behind the session's running turn by the queue mode. Refused
/// (before anything runs) when the gateway is closing, the run id is already known, or the queue is
/// full under `drop: new`. `on_done` gets the result.
pub fn start(
    state: &Arc<GatewayState>,
    spec: RunSpec,
    on_done: impl FnOnce(&Value) + Send + 'static,
) -> Result<(), ErrorShape> {
    check_can_start(state, &spec.session_key)?;
    let runs = &state.runs;
    let (tx, rx) = watch::channel(None);
    {
        let mut waiting = runs.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.contains_key(&spec.run_id) {
            return Err(ErrorShape::invalid(format!("run {} is already running", spec.run_id)));
        }
        waiting.insert(spec.run_id.clone(), rx);
    }
    let follower = Follower { run_id: spec.run_id.clone(), on_done: Box::new(on_done), done: tx };
    let (key, agent_id) = (spec.session_key.clone(), spec.agent_id.clone());
    let (mode, _, cap, drop) = queue_settings(state, &spec.session_key);
    let mut evicted = Vec::new();
    let spawn_driver;
    {
        let mut lanes = runs.lanes();
        spawn_driver = !lanes.contains_key(&spec.session_key);
        let lane = lanes.entry(spec.session_key.clone()).or_default();
        let mut follower = Some(follower);
        if let (QueueMode::Steer, Some(running)) = (mode, &lane.running) {
            let mut inbox = running.steer.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some((pending, _)), Some(f)) = (inbox.as_mut(), follower.take()) {
                pending.push((spec.message.clone(), f));
            }
        }
        if let Some(f) = follower {
            if mode == QueueMode::Interrupt {
                if let Some(r) = &lane.running {
                    r.cancel.cancel();
                }
            }
            // Over the cap: drop the oldest queued message (`old`, `summarize`).
            while queued_messages(lane) >= cap {
                let Some(front) = lane.queue.front_mut() else { break };
                let gone = front.followers.remove(0);
                if drop == QueueDrop::Summarize {
                    let line: String = front.spec.message.chars().take(200).collect();
                    lane.dropped.push(line);
                }
                if front.followers.is_empty() {
                    lane.queue.pop_front();
                }
                evicted.push(gone);
            }
            match lane.queue.back_mut() {
                Some(last) if mode == QueueMode::Collect && last.collect => {
                    last.spec.message.push_str("\n\n");
                    last.spec.message.push_str(&spec.message);
                    last.followers.push(f);
                }
                _ => lane.queue.push_back(Queued { spec, followers: vec![f], collect: mode == QueueMode::Collect }),
            }
        }
        if spawn_driver {
            runs.tracker.spawn(drive(state.clone(), key.clone()));
        }
    }
    for f in evicted {
        let result = json!({"status": "error", "error": "dropped: too many messages queued (messages.queue.cap)"});
        follower_final(state, &key, &agent_id, &f.run_id, &result);
        runs.settle(f, result);
    }
    Ok(())
}

/// Run a lane's queued turns until none is left, then retire the lane.
async fn drive(state: Arc<GatewayState>, key: String) {
    let mut first = true;
    loop {
        // An idle lane retires at once: a message sent after the previous turn ended starts
        // immediately. Only messages that queued up while a turn ran wait the quiet window.
        {
            let mut lanes = state.runs.lanes();
            if lanes.get(&key).is_none_or(|l| l.queue.is_empty()) {
                lanes.remove(&key);
                return;
            }
        }
        let (_, debounce, _, _) = queue_settings(&state, &key);
        if !first && !debounce.is_zero() {
            tokio::time::sleep(debounce).await;
        }
        first = false;
        let cancel = CancellationToken::new();
        let steer: SteerInbox = Arc::new(Mutex::new(Some((Vec::new(), Vec::new()))));
        let next = {
            let mut lanes = state.runs.lanes();
            let Some(lane) = lanes.get_mut(&key) else { return };
            match lane.queue.pop_front() {
                None => {
                    lanes.remove(&key);
                    return;
                }
                Some(mut q) => {
                    if !lane.dropped.is_empty() {
                        let note = format!(
                            "[{} earlier queued messages were dropped: {}]\n\n",
                            lane.dropped.len(),
                            lane.dropped.join(" · ")
                        );
                        q.spec.message = note + &q.spec.message;
                        lane.dropped.clear();
                    }
                    lane.running =
                        Some(Running { run_id: q.spec.run_id.clone(), cancel: cancel.clone(), steer: steer.clone() });
                    q
                }
            }
        };
        let taker = steer.clone();
        let steering: Arc<dyn Fn() -> Vec<String> + Send + Sync> = Arc::new(move || {
            let mut inbox = taker.lock().unwrap_or_else(|p| p.into_inner());
            let Some((pending, taken)) = inbox.as_mut() else { return Vec::new() };
            pending
                .drain(..)
                .map(|(message, f)| {
                    taken.push(f);
                    message
                })
                .collect()
        });
        let result = {
            let _slot = state.runs.global.clone().acquire_owned().await;
            crate::run_exec::execute(&state, &next.spec, &cancel, now_ms(), Some(steering)).await
        };
        // Close the inbox; messages steered too late (or into an aborted turn) become the next turn.
        let (late, steered) = steer.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
        {
            let mut lanes = state.runs.lanes();
            if let Some(lane) = lanes.get_mut(&key) {
                lane.running = None;
                if !late.is_empty() {
                    let (messages, followers): (Vec<String>, Vec<Follower>) = late.into_iter().unzip();
                    let mut spec = next.spec.clone();
                    spec.run_id = followers[0].run_id.clone();
                    spec.message = messages.join("\n\n");
                    lane.queue.push_front(Queued { spec, followers, collect: false });
                }
            }
        }
        let mut followers = next.followers.into_iter();
        if let Some(own) = followers.next() {
            state.runs.settle(own, result.clone());
        }
        for f in followers.chain(steered) {
            follower_final(&state, &next.spec.session_key, &next.spec.agent_id, &f.run_id, &result);
            state.runs.settle(f, result.clone());
        }
    }
}

/// A message merged into another turn gets that turn's terminal `chat` event under its own run id.
fn follower_final(state: &GatewayState, session_key: &str, agent_id: &str, run_id: &str, result: &Value) {
    let mut payload = json!({"runId": run_id, "sessionKey": session_key, "agentId": agent_id, "seq": 1});
    match result["status"].as_str() {
        Some("ok") => {
            payload["state"] = json!("final");
            payload["stopReason"] = json!("stop");
            if let Some(t) = result["text"].as_str().filter(|t| !t.trim().is_empty()) {
                payload["message"] =
                    json!({"role": "assistant", "content": [{"type": "text", "text": t}], "timestamp": now_ms()});
            }
        }
        Some("aborted") => payload["state"] = json!("aborted"),
        _ => {
            payload["state"] = json!("error");
            payload["errorMessage"] = json!(result["error"].as_str().unwrap_or("run failed"));
        }
    }
    state.broadcast("chat", &payload, &[Scope::READ, Scope::WRITE]);
}

/// `{runId, status:"timeout"}` for `agent.wait` when the run has not finished.
pub fn wait_timeout(run_id: &str) -> Value {
    json!({"runId": run_id, "status": "timeout"})
}
