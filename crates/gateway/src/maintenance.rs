//! Session store maintenance (`session.maintenance`): sessions not updated within `pruneAfter` and
//! the least recently updated ones beyond `maxEntries` are removed like a `sessions.delete` (transcript
//! archived as `.deleted.`, `session_end` with reason `deleted`, `sessions.changed`), so maintenance
//! never breaks the one-`session_end`-per-session guarantee. `warn` mode only logs what it would do.
//! Pinned sessions (`pinned: true`) are never removed.
//!
//! The same task sweeps the task ledger every minute ([`crate::background::sweep_tasks`]).
//!
//! One pass runs at start and then every [`MAINTENANCE_INTERVAL`]; each pass handles at most
//! [`MAX_REMOVALS_PER_PASS`] sessions so a huge backlog cannot stall the gateway.
use std::sync::Arc;
use std::time::Duration;

use homarus_config::MaintenanceMode;
use tokio::task::JoinHandle;

use crate::sessions::SessionService;
use crate::state::{now_ms, GatewayState};

/// Time between passes.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// Upper bound on sessions one pass removes.
pub const MAX_REMOVALS_PER_PASS: u32 = 1000;

/// What one pass found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Whether the limits were applied (`enforce`) or only reported (`warn`).
    pub enforced: bool,
    /// Keys of the sessions over the limits (removed when enforced).
    pub selected: Vec<String>,
}

/// Run one pass now and record it for `status`.
pub fn run_once(state: &GatewayState) -> MaintenanceReport {
    match state.store.prune_tasks(now_ms()) {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "pruned ended tasks past their retention"),
        Err(e) => tracing::warn!(error = %e, "cannot prune the task ledger"),
    }
    let report = pass(state);
    let config = state.config();
    let (mode, prune_after_ms, max_entries) = config.config.session.maintenance();
    let summary = serde_json::json!({
        "lastRunAt": now_ms(),
        "mode": if mode == MaintenanceMode::Warn { "warn" } else { "enforce" },
        "pruneAfterMs": prune_after_ms,
        "maxEntries": max_entries,
        "enforced": report.enforced,
        "selectedCount": report.selected.len(),
        // Bounded: status stays small however large the pass was.
        "selectedKeys": report.selected.iter().take(50).collect::<Vec<_>>(),
    });
    *state.last_maintenance.lock().unwrap_or_else(|p| p.into_inner()) = Some(summary);
    report
}

fn pass(state: &GatewayState) -> MaintenanceReport {
    let config = state.config();
    let (mode, prune_after_ms, max_entries) = config.config.session.maintenance();
    let now = now_ms();
    let stale_before = now.saturating_sub(i64::try_from(prune_after_ms).unwrap_or(i64::MAX));
    let candidates = match state.store.maintenance_candidates(stale_before, max_entries, MAX_REMOVALS_PER_PASS) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "session maintenance cannot read the store");
            return MaintenanceReport { enforced: false, selected: Vec::new() };
        }
    };
    let selected: Vec<_> =
        candidates.into_iter().filter(|r| r.prefs.get("pinned") != Some(&serde_json::Value::Bool(true))).collect();
    let keys: Vec<String> = selected.iter().map(|r| r.key.clone()).collect();
    if selected.is_empty() {
        return MaintenanceReport { enforced: mode == MaintenanceMode::Enforce, selected: keys };
    }
    if mode == MaintenanceMode::Warn {
        tracing::warn!(
            count = keys.len(),
            prune_after_ms,
            max_entries,
            "session maintenance (warn mode) would remove {} sessions",
            keys.len()
        );
        return MaintenanceReport { enforced: false, selected: keys };
    }
    let svc = SessionService::new(&state.store, &state.opts.state_dir);
    let mut removed = Vec::new();
    for row in selected {
        // The session may have changed since it was selected; re-check it is still the same one.
        let current = svc.get_expected(&row.key, Some(&row.session_id));
        if !matches!(current, Ok(r) if r.updated_at_ms == row.updated_at_ms) {
            continue;
        }
        match crate::lifecycle::delete_session(state, &row.key, true) {
            Ok(_) => removed.push(row.key),
            Err(e) => tracing::warn!(key = %row.key, error = %e.message, "session maintenance cannot remove a session"),
        }
    }
    tracing::info!(count = removed.len(), prune_after_ms, max_entries, "session maintenance removed sessions");
    MaintenanceReport { enforced: true, selected: removed }
}

/// Run a pass once `after` finished (the resume of stored sessions), then every `interval`, until
/// the close sequence aborts the task.
pub fn spawn(state: Arc<GatewayState>, after: Option<JoinHandle<()>>, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Some(first) = after {
            let _ = first.await;
        }
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweeps = tokio::time::interval(state.opts.task_sweep.0);
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if state.closing.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    run_once(&state);
                }
                _ = sweeps.tick() => crate::background::sweep_tasks(&state),
            }
        }
    })
}
