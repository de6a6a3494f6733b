//! Session lifecycle hooks: `session_start` and `session_end`, the active-session tracker, and the
//! shutdown drain.
//!
//! Invariant: every session noted by [`started`] gets exactly one `session_end`: from [`ended`]
//! (reset, delete) or from [`drain`] at shutdown or restart. [`ended`] forgets the session before
//! firing, and the drain only sees what is still tracked, so nothing fires twice.
use std::time::Duration;

use serde_json::{json, Value};

use futures_util::StreamExt;
use homarus_hooks::{drain_active_sessions, ActiveSession, DrainOutcome, SessionEndReason};
use homarus_store::SessionRow;

use crate::state::{now_ms, GatewayState};

fn ctx(agent_id: &str, session_id: &str, session_key: &str) -> Value {
    json!({"agentId": agent_id, "sessionId": session_id, "sessionKey": session_key})
}

/// Fire an observation hook without waiting; the runner bounds every handler by its budget.
fn fire(state: &GatewayState, hook: &'static str, event: Value, ctx: Value) {
    let hooks = state.opts.hooks.clone();
    if !hooks.has_handlers(hook) {
        return;
    }
    tokio::spawn(async move {
        hooks.run_observation(hook, &event, &ctx).await;
    });
}

/// Note a started session in the tracker; returns the `session_start` payload when someone listens.
fn note_started(state: &GatewayState, row: &SessionRow, resumed_from: Option<&str>) -> Option<(Value, Value)> {
    state.active_sessions.note(ActiveSession {
        session_id: row.session_id.clone(),
        session_key: row.key.clone(),
        agent_id: Some(row.agent_id.clone()),
        session_file: Some(row.session_file.clone()),
        started_at_ms: now_ms(),
    });
    if !state.opts.hooks.has_handlers("session_start") {
        return None;
    }
    let mut event = json!({"sessionId": row.session_id, "sessionKey": row.key});
    if let Some(prev) = resumed_from {
        event["resumedFrom"] = json!(prev);
    }
    Some((event, ctx(&row.agent_id, &row.session_id, &row.key)))
}

/// A session started (created, or reset into a new id).
pub fn started(state: &GatewayState, row: &SessionRow, resumed_from: Option<&str>) {
    if let Some((event, ctx)) = note_started(state, row, resumed_from) {
        fire(state, "session_start", event, ctx);
    }
}

/// A session ended through reset or delete. `archived` is where its transcript went; `next` the
/// session that replaces it (reset).
pub fn ended(
    state: &GatewayState,
    row: &SessionRow,
    reason: SessionEndReason,
    archived: Option<&str>,
    next: Option<&SessionRow>,
) {
    let tracked = state.active_sessions.forget(&row.session_id);
    let started_at = tracked.map(|t| t.started_at_ms).unwrap_or(row.session_started_at_ms);
    let mut event = json!({
        "sessionId": row.session_id,
        "sessionKey": row.key,
        "messageCount": row.message_count,
        "durationMs": (now_ms() - started_at).max(0),
        "reason": reason.as_str(),
        "sessionFile": archived.unwrap_or(&row.session_file),
        "transcriptArchived": archived.is_some(),
    });
    if let Some(n) = next {
        event["nextSessionId"] = json!(n.session_id);
        event["nextSessionKey"] = json!(n.key);
    }
    fire(state, "session_end", event, ctx(&row.agent_id, &row.session_id, &row.key));
}

/// How many resumed `session_start` calls run at once at start-up.
const RESUME_CONCURRENCY: usize = 64;

/// Track every stored session again at start (after a restart they are live again) and tell
/// `session_start` listeners, from one background task with bounded concurrency (not one task per
/// session: a store may hold 100,000 of them). Returns that task, when there is one.
pub fn resume_stored(state: &GatewayState) -> Option<tokio::task::JoinHandle<()>> {
    let mut payloads = Vec::new();
    // Collect first: hooks must not run while the store's connection is held.
    let mut rows = Vec::new();
    if let Err(e) = state.store.for_each_session(|row| rows.push(row)) {
        tracing::error!(error = %e, "cannot read stored sessions; they are not tracked for session_end");
    }
    for row in &rows {
        payloads.extend(note_started(state, row, Some(&row.session_id)));
    }
    if payloads.is_empty() {
        return None;
    }
    let hooks = state.opts.hooks.clone();
    Some(tokio::spawn(async move {
        futures_util::stream::iter(payloads)
            .for_each_concurrent(RESUME_CONCURRENCY, |(event, ctx)| {
                let hooks = hooks.clone();
                async move {
                    hooks.run_observation("session_start", &event, &ctx).await;
                }
            })
            .await;
    }))
}

/// End every still-active session with `shutdown` or `restart`, within the drain budget.
pub async fn drain(state: &GatewayState, restart: bool) -> DrainOutcome {
    let reason = if restart { SessionEndReason::Restart } else { SessionEndReason::Shutdown };
    let now = now_ms();
    let payload = |s: &ActiveSession| {
        let row = state.store.session(&s.session_key).ok().flatten().filter(|r| r.session_id == s.session_id);
        let event = json!({
            "sessionId": s.session_id,
            "sessionKey": s.session_key,
            "messageCount": row.as_ref().map(|r| r.message_count).unwrap_or(0),
            "durationMs": (now - s.started_at_ms).max(0),
            "reason": reason.as_str(),
            "sessionFile": s.session_file,
            "transcriptArchived": false,
        });
        (event, ctx(s.agent_id.as_deref().unwrap_or("main"), &s.session_id, &s.session_key))
    };
    let budget: Duration = state.opts.session_end_drain_budget;
    drain_active_sessions(&state.active_sessions, &state.opts.hooks, budget, payload).await
}
