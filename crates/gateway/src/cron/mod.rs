//! The cron scheduler: jobs in the store, their next runs in a [`DueIndex`], one timer task that
//! sleeps until the earliest run (or until a change wakes it) and starts what is due.
//!
//! A run's slot is advanced and persisted before the run starts, so a restart never runs one slot
//! twice; a run interrupted by a crash is recorded as failed at the next start. Missed slots after
//! downtime run once at start (or are skipped with `cron.skipMissedJobs`). Job runs are owned by the
//! service's tracker and stopped by the `cron` close step.
mod exec;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use homarus_cron::{CronJob, DueIndex};
use homarus_protocol::Scope;

use crate::state::{now_ms, GatewayState};

/// Default cap on isolated runs at once (`cron.maxConcurrentRuns`).
const DEFAULT_MAX_RUNS: usize = 4;
/// Spread of catch-up runs at start, per job, so a restart does not start every job at once.
const CATCH_UP_SPACING_MS: i64 = 250;

/// The scheduler's state, owned by the gateway.
#[derive(Default)]
pub struct CronService {
    jobs: Mutex<HashMap<String, CronJob>>,
    index: Mutex<DueIndex>,
    running: Mutex<HashSet<String>>,
    changed: Notify,
    tracker: TaskTracker,
    stop: CancellationToken,
    runs: std::sync::OnceLock<Arc<Semaphore>>,
    /// Work done by the last tick, in microseconds (`cron.status`).
    pub last_tick_us: AtomicU64,
    /// Ticks so far.
    pub ticks: AtomicU64,
    /// The most work one tick did (µs).
    pub max_tick_us: AtomicU64,
    /// All ticks' work (µs).
    pub total_tick_us: AtomicU64,
}

impl CronService {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, CronJob>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index(&self) -> std::sync::MutexGuard<'_, DueIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of one job.
    pub fn get(&self, id: &str) -> Option<CronJob> {
        self.jobs().get(id).cloned()
    }

    /// Copies of every job.
    pub fn all(&self) -> Vec<CronJob> {
        self.jobs().values().cloned().collect()
    }

    /// The earliest scheduled run.
    pub fn next_wake(&self) -> Option<i64> {
        self.index().earliest()
    }

    /// Whether the job has a run in progress.
    pub fn is_running(&self, id: &str) -> bool {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Stop the timer and wait for runs in progress (bounded by the close step).
    pub async fn stop_all(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn enabled(state: &GatewayState) -> bool {
    state.config().config.cron.enabled != Some(false)
}

/// Store a job (database, memory, index) and wake the timer.
pub(crate) fn put(state: &GatewayState, job: CronJob) {
    persist(state, &job);
    put_in_memory(state, job);
}

/// Write a job to the database (synced).
fn persist(state: &GatewayState, job: &CronJob) {
    if let Ok(v) = serde_json::to_value(job) {
        if let Err(e) = state.store.cron_job_put(&job.id, &v, now_ms()) {
            tracing::error!(job = %job.id, error = %e, "cannot store a cron job");
        }
    }
}

/// Update the in-memory job and its index entry, and wake the timer.
fn put_in_memory(state: &GatewayState, job: CronJob) {
    let next = if job.enabled && !state.cron.is_running(&job.id) { job.state.next_run_at_ms } else { None };
    state.cron.index().set(&job.id, next);
    state.cron.jobs().insert(job.id.clone(), job);
    state.cron.changed.notify_one();
}

/// Remove a job.
pub(crate) fn remove(state: &GatewayState, id: &str) -> Option<CronJob> {
    let job = state.cron.jobs().remove(id);
    state.cron.index().set(id, None);
    if let Err(e) = state.store.cron_job_delete(id) {
        tracing::error!(job = %id, error = %e, "cannot delete a cron job");
    }
    state.cron.changed.notify_one();
    job
}

/// Give a job its next run from now (new, edited or re-enabled jobs).
pub(crate) fn schedule_from_now(job: &mut CronJob, now: i64) {
    if job.state.next_run_at_ms.is_none() && job.enabled {
        // An `at` in the past still runs once, now.
        job.state.next_run_at_ms = match &job.schedule {
            homarus_cron::Schedule::At { at } => homarus_cron::parse_at(at, now).ok().map(|t| t.max(now)),
            _ => job.next_by_schedule(now),
        };
    }
}

/// Tell clients and plugins what changed: the `cron` event and the `cron_changed` hook.
pub(crate) fn announce(state: &GatewayState, action: &str, job: Option<&CronJob>, job_id: &str, extra: Value) {
    let mut payload = json!({"action": action, "jobId": job_id, "ts": now_ms()});
    if let Some(j) = job {
        payload["job"] = serde_json::to_value(j).unwrap_or(Value::Null);
        payload["agentId"] = json!(j.agent_id);
        payload["sessionTarget"] = json!(j.session_target);
        payload["nextRunAtMs"] = json!(j.state.next_run_at_ms);
    }
    if let (Value::Object(p), Value::Object(x)) = (&mut payload, extra) {
        p.extend(x);
    }
    state.broadcast("cron", &payload, &[Scope::READ, Scope::WRITE]);
    if state.opts.hooks.has_handlers("cron_changed") {
        let hooks = state.opts.hooks.clone();
        let ctx = json!({"jobId": job_id});
        tokio::spawn(async move { hooks.run_observation("cron_changed", &payload, &ctx).await });
    }
}

/// Load the stored jobs, settle what the last process left (interrupted runs, missed slots) and
/// start the timer.
pub fn start(state: &Arc<GatewayState>) {
    let cfg = state.config();
    let max = cfg.config.cron.max_concurrent_runs.map(|n| n.max(1) as usize).unwrap_or(DEFAULT_MAX_RUNS);
    let _ = state.cron.runs.set(Arc::new(Semaphore::new(max)));
    let skip_missed = cfg.config.cron.skip_missed_jobs == Some(true);
    let now = now_ms();
    let stored = state.store.cron_jobs().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the cron jobs");
        Vec::new()
    });
    let mut catch_up = 0i64;
    for v in stored {
        let mut job: CronJob = match serde_json::from_value(v.clone()) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(job = %v["id"], error = %e, "a stored cron job is unreadable; skipped");
                continue;
            }
        };
        if let Some(started) = job.state.running_at_ms.take() {
            // The process died during this run: it failed, and is not replayed.
            let next =
                job.finish_run(started, started, now, Some("interrupted: the gateway stopped during the run"), false);
            job.state.next_run_at_ms = next;
            exec::record_run(
                state,
                &job,
                &format!("interrupted-{}", uuid::Uuid::new_v4()),
                started,
                started,
                now,
                &exec::Outcome::failed("interrupted: the gateway stopped during the run"),
            );
        }
        match job.state.next_run_at_ms {
            Some(t) if t <= now && job.enabled => {
                let one_shot = matches!(job.schedule, homarus_cron::Schedule::At { .. });
                job.state.next_run_at_ms = if skip_missed && !one_shot {
                    job.next_by_schedule(now)
                } else {
                    catch_up += 1;
                    Some(now + catch_up * CATCH_UP_SPACING_MS)
                };
            }
            None => schedule_from_now(&mut job, now),
            _ => {}
        }
        put(state, job);
    }
    let st = state.clone();
    let stop = state.cron.stop.clone();
    state.cron.tracker.spawn(async move { timer(st, stop).await });
}

async fn timer(state: Arc<GatewayState>, stop: CancellationToken) {
    loop {
        let wait = state.cron.next_wake().map(|t| (t - now_ms()).max(0) as u64);
        let changed = state.cron.changed.notified();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = changed => continue,
            _ = tokio::time::sleep(Duration::from_millis(wait.unwrap_or(3_600_000))) => {}
        }
        tick(&state);
    }
}

/// Start every due job. Costs O(due · log n) for n jobs.
pub fn tick(state: &Arc<GatewayState>) -> usize {
    let started = std::time::Instant::now();
    let now = now_ms();
    let due = state.cron.index().pop_due(now);
    let n = due.len();
    if enabled(state) {
        for (id, slot) in due {
            if let Err(why) = fire(state, &id, slot, now, false) {
                tracing::debug!(job = %id, %why, "cron slot not run");
            }
        }
    } else {
        // Off: keep the slots moving without running anything.
        for (id, slot) in due {
            if let Some(mut job) = state.cron.get(&id) {
                job.state.next_run_at_ms = job.next_by_schedule(slot.max(now));
                put(state, job);
            }
        }
    }
    let us = started.elapsed().as_micros() as u64;
    state.cron.last_tick_us.store(us, Ordering::Relaxed);
    state.cron.max_tick_us.fetch_max(us, Ordering::Relaxed);
    state.cron.ticks.fetch_add(1, Ordering::Relaxed);
    state.cron.total_tick_us.fetch_add(us, Ordering::Relaxed);
    n
}

/// Start one run of `id` for `slot`. `forced`: run even when disabled (`cron.run --force`).
/// Returns the run id, or why it did not start.
pub(crate) fn fire(state: &Arc<GatewayState>, id: &str, slot: i64, now: i64, forced: bool) -> Result<String, String> {
    let Some(mut job) = state.cron.get(id) else { return Err(format!("no cron job {id}")) };
    if !job.enabled && !forced {
        return Err(format!("cron job {id} is disabled"));
    }
    if !state.cron.running.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string()) {
        // Still running from the previous slot: this slot is skipped, the next one scheduled.
        let run_id = uuid::Uuid::new_v4().to_string();
        exec::record_run(
            state,
            &job,
            &run_id,
            slot,
            now,
            now,
            &exec::Outcome::skipped("the previous run is still in progress"),
        );
        if !forced {
            job.state.next_run_at_ms = job.next_by_schedule(slot.max(now));
            put(state, job);
        }
        return Err(format!("cron job {id} is already running"));
    }
    // Advance first: a restart from here on never runs this slot again.
    job.state.running_at_ms = Some(now);
    if !forced {
        job.state.next_run_at_ms = match job.schedule {
            homarus_cron::Schedule::At { .. } => None,
            _ => job.next_by_schedule(slot.max(now)),
        };
    }
    // The tick only touches memory; the run's task writes the advanced slot (synced) before the
    // run starts, so a tick over many jobs never waits on the disk.
    put_in_memory(state, job.clone());
    let run_id = uuid::Uuid::new_v4().to_string();
    let (st, rid) = (state.clone(), run_id.clone());
    let permits = state.cron.runs.get().cloned().unwrap_or_else(|| Arc::new(Semaphore::new(DEFAULT_MAX_RUNS)));
    state.cron.tracker.spawn(async move {
        let saved = {
            let (st2, job2) = (st.clone(), job.clone());
            tokio::task::spawn_blocking(move || persist(&st2, &job2)).await
        };
        if saved.is_err() {
            tracing::error!(job = %job.id, "cannot persist a cron job before its run");
        }
        announce(&st, "started", Some(&job), &job.id, json!({"runId": rid, "runAtMs": slot}));
        let _permit = permits.acquire_owned().await.ok();
        let started = now_ms();
        let outcome = exec::run(&st, &job, &rid).await;
        finished(&st, &job.id, &rid, slot, started, outcome);
    });
    Ok(run_id)
}

fn finished(state: &Arc<GatewayState>, id: &str, run_id: &str, slot: i64, started: i64, outcome: exec::Outcome) {
    state.cron.running.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    let ended = now_ms();
    let Some(mut job) = state.cron.get(id) else { return };
    // An edit during the run may have rescheduled the job; keep that.
    let pending_next = job.state.next_run_at_ms;
    let next = job.finish_run(slot, started, ended, outcome.error.as_deref(), outcome.skipped);
    job.state.next_run_at_ms = match (&job.schedule, pending_next) {
        (homarus_cron::Schedule::At { .. }, _) => None,
        (_, Some(p)) if job.state.consecutive_errors == 0 => Some(p),
        _ => next,
    };
    job.state.last_delivered = outcome.delivered;
    job.state.last_delivery_status = Some(outcome.delivery_status.clone());
    job.state.last_delivery_error = outcome.delivery_error.clone();
    exec::record_run(state, &job, run_id, slot, started, ended, &outcome);
    let ok = outcome.error.is_none() && !outcome.skipped && outcome.delivery_status != "not-delivered";
    announce(
        state,
        "finished",
        Some(&job),
        id,
        json!({"runId": run_id, "status": job.state.last_run_status,
        "durationMs": ended - started, "deliveryStatus": outcome.delivery_status, "error": outcome.error}),
    );
    if matches!(job.schedule, homarus_cron::Schedule::At { .. }) && ok && job.deletes_after_success() {
        remove(state, id);
        announce(state, "removed", Some(&job), id, json!({"reason": "completed"}));
        return;
    }
    if !job.enabled && job.state.auto_disabled.is_some() {
        tracing::warn!(job = %id, "cron job disabled after {} failures in a row", job.state.consecutive_errors);
    }
    put(state, job);
}
