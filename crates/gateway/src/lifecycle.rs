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

/// The session an inbound message goes to: created when missing (`createdVia: "run"`), and reset
/// first when its reset policy (`session.reset*`) says it went stale — `session:auto-reset`, then
/// `session_end` (`daily`/`idle`) and `session_start` for the fresh id.
pub async fn prepare_inbound(
    state: &std::sync::Arc<GatewayState>,
    key: &str,
    agent_id: &str,
    expected_session_id: Option<&str>,
) -> Result<SessionRow, homarus_protocol::ErrorShape> {
    let svc = crate::sessions::SessionService::new(&state.store, &state.opts.state_dir);
    let now = now_ms();
    let (row, created) = svc.create(Some(key), Some(agent_id), None, None, "run", now)?;
    if created {
        started(state, &row, None);
        crate::methods::sessions::changed(
            state,
            "create",
            &row.key,
            &row.agent_id,
            Some(crate::sessions::entry_json(&row)),
        );
        return Ok(row);
    }
    let row = svc.get_expected(&row.key, expected_session_id)?;
    let cfg = state.config();
    let ty = homarus_config::ResetType::of(&row.key, &row.chat_type);
    let channel = row.prefs.get("channel").and_then(Value::as_str);
    let policy = cfg.config.session.reset_policy(ty, channel);
    let Some(stale) = policy.staleness(row.session_started_at_ms, row.last_interaction_at_ms, now) else {
        return Ok(row);
    };
    let (reason, why) = match stale {
        homarus_config::Staleness::Daily => (SessionEndReason::Daily, "daily"),
        homarus_config::Staleness::Idle => (SessionEndReason::Idle, "idle"),
    };
    let workspace = crate::runs::workspace_dir(state, &row.agent_id);
    let ctx = json!({"sessionEntry": crate::sessions::entry_json(&row), "reason": why, "agentId": row.agent_id,
                     "workspaceDir": workspace.display().to_string()});
    state.internal_hooks.emit(&crate::automation::event("session", "auto-reset", &row.key, ctx)).await;
    let (next, retired) = svc.reset(&row.key, now_ms())?;
    let archived = retired.archived.as_ref().map(|a| a.display().to_string());
    ended(state, &retired.previous, reason, archived.as_deref(), Some(&next));
    started(state, &next, Some(&retired.previous.session_id));
    tracing::info!(key = %next.key, previous = %retired.previous.session_id, next = %next.session_id, reason = why, "session reset automatically");
    crate::methods::sessions::changed(
        state,
        "reset",
        &next.key,
        &next.agent_id,
        Some(crate::sessions::entry_json(&next)),
    );
    Ok(next)
}

/// After a run: count its messages, note the interaction, keep the model and token counters.
pub fn record_turn(state: &GatewayState, row: &SessionRow, out: &homarus_agent::RunOutcome) {
    let svc = crate::sessions::SessionService::new(&state.store, &state.opts.state_dir);
    // Re-read: the row may have been patched while the run went on.
    let Ok(mut current) = svc.get(&row.key) else { return };
    if current.session_id != row.session_id {
        return; // reset or replaced during the run: the new session has its own counters
    }
    let now = now_ms();
    current.message_count += out.messages_added as i64;
    current.last_interaction_at_ms = Some(now);
    current.updated_at_ms = now;
    let prefs = &mut current.prefs;
    if !out.model.is_empty() {
        prefs.insert("model".into(), json!(out.model));
        prefs.insert("modelProvider".into(), json!(out.provider));
    }
    let add = |prefs: &mut serde_json::Map<String, Value>, k: &str, n: u64| {
        let before = prefs.get(k).and_then(Value::as_u64).unwrap_or(0);
        prefs.insert(k.into(), json!(before + n));
    };
    add(prefs, "inputTokens", out.usage.input);
    add(prefs, "outputTokens", out.usage.output);
    add(prefs, "totalTokens", out.usage.input + out.usage.output);
    add(prefs, "compactionCount", out.compactions as u64);
    if let Err(e) = state.store.update_session(&current) {
        tracing::error!(key = %row.key, error = %e, "cannot record the turn on the session");
    }
    crate::methods::sessions::changed(
        state,
        "message",
        &current.key,
        &current.agent_id,
        Some(crate::sessions::entry_json(&current)),
    );
}

/// Reset a session by command (`sessions.reset`, `/new`, `/reset`): the `command:<new|reset>`
/// internal hooks, abort of its runs, a fresh session id, the old transcript archived,
/// `session_end` (`new`/`reset`) then `session_start`, and `sessions.changed`.
pub async fn reset_session(
    state: &std::sync::Arc<GatewayState>,
    key: &str,
    expected_session_id: Option<&str>,
    command: &str,
    source: &str,
) -> Result<(SessionRow, crate::sessions::Retired), homarus_protocol::ErrorShape> {
    let svc = crate::sessions::SessionService::new(&state.store, &state.opts.state_dir);
    let before = svc.get_expected(key, expected_session_id)?;
    let workspace = crate::runs::workspace_dir(state, &before.agent_id);
    let ctx = json!({"sessionEntry": crate::sessions::entry_json(&before), "commandSource": source,
                     "workspaceDir": workspace.display().to_string()});
    state.internal_hooks.emit(&crate::automation::event("command", command, key, ctx)).await;
    if state.closing.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(homarus_protocol::ErrorShape::unavailable("gateway is shutting down; retry after it restarts")
            .with_retry_after(1500));
    }
    crate::runs::abort(state, key, None);
    let (row, retired) = svc.reset(key, now_ms())?;
    let reason = if command == "new" { SessionEndReason::New } else { SessionEndReason::Reset };
    let archived = retired.archived.as_ref().map(|a| a.display().to_string());
    ended(state, &retired.previous, reason, archived.as_deref(), Some(&row));
    started(state, &row, Some(&retired.previous.session_id));
    tracing::info!(key = %row.key, previous = %retired.previous.session_id, next = %row.session_id, "session reset");
    crate::methods::sessions::changed(state, "reset", &row.key, &row.agent_id, Some(crate::sessions::entry_json(&row)));
    Ok((row, retired))
}

/// Delete a session and finish it: transcript archived (or removed when `keep_transcript` is false),
/// `session_end` reason `deleted`, `sessions.changed`. Every deletion path goes through here
/// (`sessions.delete`, maintenance, `boot-md`, one-shot subagents).
pub fn delete_session(
    state: &GatewayState,
    key: &str,
    keep_transcript: bool,
) -> Result<crate::sessions::Retired, homarus_protocol::ErrorShape> {
    let svc = crate::sessions::SessionService::new(&state.store, &state.opts.state_dir);
    let retired = svc.delete(key, keep_transcript, now_ms())?;
    let archived = retired.archived.as_ref().map(|a| a.display().to_string());
    ended(state, &retired.previous, SessionEndReason::Deleted, archived.as_deref(), None);
    crate::methods::sessions::changed(state, "delete", key, &retired.previous.agent_id, None);
    Ok(retired)
}
