//! Subagents (`sessions_spawn`): a child session `agent:<id>:subagent:<uuid>` runs a task in its own
//! lane with a task record; when it ends, its last visible text is announced to the requester
//! through the delivery policy (`ANNOUNCE_SKIP` stays silent). Depth and fan-out are bounded; `/stop`
//! in the requester stops its children.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use homarus_agent::tools::ToolOutput;
use homarus_store::{TaskQuery, TaskStatus};
use homarus_tasks::{DirectSend, NewTask};

use crate::runs::RunSpec;
use crate::sessions::SessionService;
use crate::state::{now_ms, GatewayState};

/// How deep subagents may nest (a top-level session is depth 0; its children depth 1).
pub const DEFAULT_MAX_SPAWN_DEPTH: u64 = 1;
/// Children one session may have running at once.
pub const DEFAULT_MAX_CHILDREN: usize = 5;
/// The reply that suppresses the announce.
pub const ANNOUNCE_SKIP: &str = "ANNOUNCE_SKIP";

fn limits(state: &GatewayState) -> (u64, usize) {
    let cfg = state.config();
    let sub = cfg.config.agents.defaults.subagents.clone().unwrap_or_default();
    (
        sub.max_spawn_depth.unwrap_or(DEFAULT_MAX_SPAWN_DEPTH),
        sub.max_children_per_agent.map(|n| n as usize).unwrap_or(DEFAULT_MAX_CHILDREN),
    )
}

fn open_children(state: &GatewayState, parent: &str) -> Vec<homarus_store::TaskRecord> {
    let q = TaskQuery {
        statuses: vec![TaskStatus::Queued, TaskStatus::Running],
        session_key: Some(parent),
        limit: 1000,
        ..Default::default()
    };
    state.store.tasks(&q).unwrap_or_default().into_iter().filter(|t| t.runtime == "subagent").collect()
}

/// Stop every running child of `parent` (cascade of `/stop`). Returns how many.
pub fn stop_children(state: &Arc<GatewayState>, parent: &str) -> usize {
    let children = open_children(state, parent);
    for t in &children {
        if let Some(child) = &t.child_session_key {
            crate::runs::abort(state, child, None);
            stop_children(state, child);
        }
        crate::background::finish_task(
            state,
            &t.task_id,
            TaskStatus::Cancelled,
            None,
            Some("stopped with its requester".into()),
        );
    }
    children.len()
}

/// `sessions_spawn {task, label?, agentId?, mode?: run|session, runTimeoutSeconds?, cleanup?: delete|keep}`.
pub async fn spawn(state: &Arc<GatewayState>, parent_key: &str, parent_agent: &str, args: &Value) -> ToolOutput {
    let Some(task) = args["task"].as_str().filter(|t| !t.trim().is_empty()) else {
        return ToolOutput::err("sessions_spawn needs \"task\" (what the subagent should do)");
    };
    let svc = SessionService::new(&state.store, &state.opts.state_dir);
    let Ok(parent) = svc.get(parent_key) else {
        return ToolOutput::err(format!("unknown requester session {parent_key}"));
    };
    let depth = parent.prefs.get("spawnDepth").and_then(Value::as_u64).unwrap_or(0);
    let (max_depth, max_children) = limits(state);
    if depth + 1 > max_depth {
        return ToolOutput::err(format!(
            "subagents may nest {max_depth} level(s) deep (agents.defaults.subagents.maxSpawnDepth); this session is at depth {depth}"
        ));
    }
    if open_children(state, parent_key).len() >= max_children {
        return ToolOutput::err(format!(
            "this session already has {max_children} subagents running (agents.defaults.subagents.maxChildrenPerAgent); wait for one to finish"
        ));
    }
    let agent = args["agentId"]
        .as_str()
        .map(homarus_protocol::session_key::normalize_agent_id)
        .unwrap_or_else(|| parent_agent.to_string());
    let mode = if args["mode"] == "session" { "session" } else { "run" };
    let cleanup_delete = match args["cleanup"].as_str() {
        Some("keep") => false,
        Some("delete") => true,
        _ => mode == "run",
    };
    let label = args["label"].as_str().map(str::to_string).unwrap_or_else(|| task.chars().take(60).collect());
    let id = uuid::Uuid::new_v4().to_string();
    let child_key = homarus_protocol::session_key::subagent_session_key(&agent, &id);
    let (mut child, created) =
        match svc.create(Some(&child_key), Some(&agent), Some(&label), None, "subagent", now_ms()) {
            Ok(c) => c,
            Err(e) => return ToolOutput::err(format!("cannot create the subagent session: {}", e.message)),
        };
    child.prefs.insert("spawnedBy".into(), json!(parent_key));
    child.prefs.insert("spawnDepth".into(), json!(depth + 1));
    child.prefs.insert("subagentMode".into(), json!(mode));
    let _ = state.store.update_session(&child);
    if created {
        crate::lifecycle::started(state, &child, None);
    }
    let run_id = format!("subagent-{id}");
    let Some(record) = crate::background::create_task(
        state,
        NewTask {
            run_id: run_id.clone(),
            runtime: "subagent".into(),
            kind: "subagent".into(),
            label: label.clone(),
            task: task.to_string(),
            agent_id: agent.clone(),
            requester_session_key: Some(parent_key.to_string()),
            child_session_key: Some(child_key.clone()),
            notify_policy: "done_only".into(),
            source_id: Some("sessions_spawn".into()),
            running: false,
        },
    ) else {
        return ToolOutput::err("cannot record the subagent task");
    };
    let hooks = state.opts.hooks.clone();
    if hooks.has_handlers("subagent_spawned") {
        let event = json!({"childSessionKey": child_key, "agentId": agent, "label": label, "mode": mode, "runId": run_id, "threadRequested": false});
        let ctx = json!({"agentId": parent_agent, "sessionKey": parent_key});
        tokio::spawn(async move { hooks.run_observation("subagent_spawned", &event, &ctx).await });
    }
    let spec = RunSpec {
        run_id: run_id.clone(),
        session_key: child_key.clone(),
        agent_id: agent.clone(),
        message: task.to_string(),
        extra_system_prompt: Some(format!(
            "You are a subagent working on a task for session {parent_key}. Your final reply is reported back to it; \
             reply exactly {ANNOUNCE_SKIP} if nothing should be reported."
        )),
        timeout: args["runTimeoutSeconds"].as_u64().filter(|t| *t > 0).map(Duration::from_secs),
        expected_session_id: None,
        deliver: Default::default(),
    };
    crate::background::start_task(state, &record.task_id);
    let st = state.clone();
    let task_id = record.task_id.clone();
    let (child_for_done, label_for_done) = (child_key.clone(), label.clone());
    let started = now_ms();
    let started_run = crate::runs::start(state, spec, move |result| {
        announce(&st, &task_id, &child_for_done, &label_for_done, result, started, cleanup_delete);
    });
    if let Err(e) = started_run {
        crate::background::finish_task(state, &record.task_id, TaskStatus::Failed, None, Some(e.message.clone()));
        return ToolOutput::err(format!("cannot start the subagent: {}", e.message));
    }
    ToolOutput::ok(format!(
        "Spawned subagent \"{label}\" (task {}, session {child_key}). Its result will be reported to this session when it \
         finishes; do not wait for it.",
        record.task_id
    ))
}

/// The child ended: record it, announce its result to the requester, clean up a one-shot child.
fn announce(
    state: &Arc<GatewayState>,
    task_id: &str,
    child_key: &str,
    label: &str,
    result: &Value,
    started: i64,
    cleanup_delete: bool,
) {
    let text = result["text"].as_str().unwrap_or_default().trim().to_string();
    let status = crate::background::task_status_of(result);
    let outcome = match status {
        TaskStatus::Succeeded => "ok",
        TaskStatus::Cancelled => "killed",
        TaskStatus::TimedOut => "timeout",
        _ => "error",
    };
    let ended = crate::background::finish_task(
        state,
        task_id,
        status,
        (!text.is_empty()).then(|| text.clone()),
        result["error"].as_str().map(str::to_string),
    );
    let hooks = state.opts.hooks.clone();
    if hooks.has_handlers("subagent_ended") {
        let event = json!({"targetSessionKey": child_key, "targetKind": "subagent", "reason": "completed", "outcome": outcome, "endedAt": now_ms(), "error": result["error"]});
        tokio::spawn(async move { hooks.run_observation("subagent_ended", &event, &json!({})).await });
    }
    if let Some(t) = ended {
        if text == ANNOUNCE_SKIP {
            let _ = homarus_tasks::Ledger::new(&state.store).delivered(&t, "not_applicable");
        } else {
            let usage = &result["meta"]["agentMeta"]["usage"];
            let stats = format!(
                "runtime {:.1} s · tokens {} in / {} out · session {child_key}",
                (now_ms() - started) as f64 / 1000.0,
                usage["input"].as_u64().unwrap_or(0),
                usage["output"].as_u64().unwrap_or(0)
            );
            let body = match status {
                TaskStatus::Succeeded if !text.is_empty() => text.clone(),
                TaskStatus::Succeeded => "(no visible reply)".to_string(),
                _ => result["error"].as_str().unwrap_or("the run did not finish").to_string(),
            };
            let message = format!("Subagent \"{label}\" finished ({outcome}): {body}\n[{stats}]");
            crate::background::deliver_completion(state, &t, message, DirectSend::Never);
        }
    }
    if cleanup_delete {
        if let Err(e) = crate::lifecycle::delete_session(state, child_key, true) {
            tracing::warn!(session = %child_key, error = %e.message, "cannot remove the finished subagent session");
        }
    }
}
