//! `tasks.list`, `tasks.get`, `tasks.cancel` and `wake`.
use std::sync::Arc;

use serde_json::{json, Map, Value};

use homarus_protocol::ErrorShape;
use homarus_store::{TaskQuery, TaskStatus};
use homarus_tasks::wire_task;

use super::store_error;
use crate::state::GatewayState;

fn params(p: Option<&Value>) -> Map<String, Value> {
    p.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Wire status names (`completed`, …) to ledger statuses (`completed` is `succeeded`; `failed` also
/// covers `lost`).
fn ledger_statuses(v: Option<&Value>) -> Result<Vec<TaskStatus>, ErrorShape> {
    let names: Vec<&str> = match v {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(ErrorShape::invalid("invalid params: at /status: must be a status or a list of them")),
    };
    let mut out = Vec::new();
    for n in names {
        match n {
            "completed" => out.push(TaskStatus::Succeeded),
            "failed" => out.extend([TaskStatus::Failed, TaskStatus::Lost]),
            other => {
                out.push(TaskStatus::parse(other).ok_or_else(|| {
                    ErrorShape::invalid(format!("invalid params: at /status: unknown status {other:?}"))
                })?)
            }
        }
    }
    Ok(out)
}

/// `tasks.list {status?, agentId?, sessionKey?, limit?, cursor?}`, most recently updated first.
pub fn list(state: &GatewayState, p: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = params(p);
    let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(100).clamp(1, 500) as u32;
    let offset = match p.get("cursor").and_then(Value::as_str) {
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| ErrorShape::invalid("invalid params: at /cursor: not a cursor from tasks.list"))?,
        None => 0,
    };
    let q = TaskQuery {
        statuses: ledger_statuses(p.get("status"))?,
        agent_id: p.get("agentId").and_then(Value::as_str),
        session_key: p.get("sessionKey").and_then(Value::as_str),
        limit: limit + 1,
        offset,
    };
    let mut tasks = state.store.tasks(&q).map_err(store_error)?;
    let more = tasks.len() > limit as usize;
    tasks.truncate(limit as usize);
    let mut out = json!({"tasks": tasks.iter().map(wire_task).collect::<Vec<_>>()});
    if more {
        out["nextCursor"] = json!((offset + limit).to_string());
    }
    Ok(out)
}

/// `tasks.get {taskId}`.
pub fn get(state: &GatewayState, p: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = params(p);
    let id = p
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorShape::invalid("invalid params: at /taskId: required"))?;
    match state.store.task(id).map_err(store_error)? {
        Some(t) => Ok(json!({"task": wire_task(&t)})),
        None => Err(ErrorShape::invalid(format!("unknown task: {id}"))),
    }
}

/// `tasks.cancel {taskId, reason?}` → `{found, cancelled, reason?, task?}`: aborts the task's run.
pub fn cancel(state: &Arc<GatewayState>, p: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = params(p);
    let id = p
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorShape::invalid("invalid params: at /taskId: required"))?;
    let Some(t) = state.store.task(id).map_err(store_error)? else {
        return Ok(json!({"found": false, "cancelled": false, "reason": "unknown task"}));
    };
    if t.status.is_terminal() {
        return Ok(
            json!({"found": true, "cancelled": false, "reason": format!("already {}", t.status.as_str()), "task": wire_task(&t)}),
        );
    }
    if let Some(key) = t.child_session_key.as_deref().or(t.requester_session_key.as_deref()) {
        crate::runs::abort(state, key, Some(&t.run_id));
    }
    let reason = p.get("reason").and_then(Value::as_str).unwrap_or("cancelled by operator").to_string();
    let ended = crate::background::finish_task(state, id, TaskStatus::Cancelled, None, Some(reason.clone()));
    let task = ended.or_else(|| state.store.task(id).ok().flatten());
    Ok(json!({"found": true, "cancelled": true, "reason": reason, "task": task.map(|t| wire_task(&t))}))
}

/// `wake {mode, text, sessionKey?, agentId?}`: queue a system event for the session (default: the
/// agent's main session); `mode: "now"` runs a turn for it at once.
pub fn wake(state: &Arc<GatewayState>, p: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = params(p);
    let text = p.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty());
    let text = text.ok_or_else(|| ErrorShape::invalid("invalid params: at /text: required"))?;
    let mode = p.get("mode").and_then(Value::as_str).unwrap_or("now");
    if mode != "now" && mode != "next-heartbeat" {
        return Err(ErrorShape::invalid(format!(
            "invalid params: at /mode: {mode:?} is not \"now\" or \"next-heartbeat\""
        )));
    }
    let agent = p.get("agentId").and_then(Value::as_str).unwrap_or("main").to_string();
    let key = p
        .get("sessionKey")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .unwrap_or_else(|| homarus_protocol::session_key::main_session_key(&agent, None));
    state.system_events.push(&key, text.to_string());
    if mode == "now" {
        crate::heartbeat::request_now(state, &key, &agent, "wake");
    }
    Ok(json!({"ok": true, "sessionKey": key, "mode": mode}))
}
