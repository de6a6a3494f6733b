//! `chat.send`, `chat.abort`, `chat.inject`, `agent`, `agent.wait`, `agents.list`, `commands.list`.
//!
//! `chat.send` acknowledges `{runId, status:"started"}` before any event of the run; `agent` answers
//! twice on one request id (`accepted`, then the final result), as OpenClaw does.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use homarus_protocol::ErrorShape;

use super::params_schema::validate;
use super::{CallContext, Responder};
use crate::commands::{self, CommandReply};
use crate::runs::{self, RunSpec};
use crate::state::{now_ms, GatewayState};

/// Default and largest `agent.wait` timeout.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(600);

fn obj(method: &str, params: Option<&Value>) -> Result<Map<String, Value>, ErrorShape> {
    let v = params.cloned().filter(|p| !p.is_null()).unwrap_or_else(|| json!({}));
    validate(method, &v)?;
    Ok(v.as_object().cloned().unwrap_or_default())
}

fn s<'a>(p: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str).filter(|v| !v.is_empty())
}

fn agent_of(p: &Map<String, Value>, key: &str) -> String {
    s(p, "agentId")
        .map(homarus_protocol::session_key::normalize_agent_id)
        .or_else(|| {
            homarus_protocol::session_key::agent_id_of(key).map(homarus_protocol::session_key::normalize_agent_id)
        })
        .unwrap_or_else(|| homarus_protocol::session_key::DEFAULT_AGENT_ID.to_string())
}

fn responder<'a>(ctx: &CallContext<'a>) -> Result<&'a Responder, ErrorShape> {
    ctx.responder.ok_or_else(|| ErrorShape::unavailable("this method needs a connection to answer on"))
}

/// `chat.send`.
pub async fn send(
    state: &Arc<GatewayState>,
    ctx: &CallContext<'_>,
    params: Option<&Value>,
) -> Result<Value, ErrorShape> {
    let p = obj("chat.send", params)?;
    let key = s(&p, "sessionKey").unwrap_or_default().trim().to_lowercase();
    let run_id = s(&p, "idempotencyKey").unwrap_or_default().to_string();
    let agent_id = agent_of(&p, &key);
    let message = s(&p, "message").unwrap_or_default().to_string();
    let ack = json!({"runId": run_id, "status": "started"});
    let spec = RunSpec {
        run_id: run_id.clone(),
        session_key: key.clone(),
        agent_id: agent_id.clone(),
        message: message.clone(),
        extra_system_prompt: None,
        timeout: None,
        expected_session_id: s(&p, "sessionId").map(str::to_string),
        deliver: Default::default(),
    };
    if let Some(reply) = commands::run(state, &spec, "chat.send").await? {
        responder(ctx)?.send_now(&ack);
        commands::emit_reply(state, &spec, &reply);
        if let Some(next) = reply.then_run {
            runs::start(state, RunSpec { message: next, ..spec }, |_| {})?;
        }
        return Ok(ack);
    }
    if message.trim().is_empty() {
        return Err(ErrorShape::invalid("invalid params: at /message: must not be empty"));
    }
    let r = responder(ctx)?;
    // The acknowledgement goes out first so no event of the run can precede it.
    runs::check_can_start(state, &key)?;
    r.send_now(&ack);
    runs::start(state, spec, |_| {})?;
    Ok(ack)
}

/// `chat.abort`: `{sessionKey, runId?}`.
pub fn abort(state: &Arc<GatewayState>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = params.and_then(Value::as_object).cloned().unwrap_or_default();
    let key = s(&p, "sessionKey").ok_or_else(|| ErrorShape::invalid("invalid params: at /sessionKey: required"))?;
    let key = key.to_lowercase();
    let ids = crate::runs::abort(state, &key, s(&p, "runId"));
    if s(&p, "runId").is_none() {
        crate::subagents::stop_children(state, &key);
    }
    Ok(json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}))
}

/// `chat.inject`: append an assistant note to the transcript without running the model.
pub fn inject(state: &Arc<GatewayState>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("chat.inject", params)?;
    let key = s(&p, "sessionKey").unwrap_or_default().to_lowercase();
    let svc = crate::sessions::SessionService::new(&state.store, &state.opts.state_dir);
    let mut row = svc.get(&key)?;
    let text = match s(&p, "label") {
        Some(l) => format!("[{l}] {}", s(&p, "message").unwrap_or_default()),
        None => s(&p, "message").unwrap_or_default().to_string(),
    };
    let ctx = homarus_agent::context::SessionContext::load(std::path::Path::new(&row.session_file))
        .map_err(super::store_error)?;
    let mut w = homarus_agent::context::TranscriptWriter::new(row.session_file.clone().into(), ctx.last_id);
    let message = homarus_agent::Message::Assistant {
        content: vec![homarus_agent::Block::Text { text }],
        provider: "homarus".into(),
        model: "inject".into(),
        usage: Default::default(),
        stop_reason: homarus_agent::StopReason::Stop,
        error_message: None,
        timestamp: now_ms(),
    };
    let id = w.message(&message).map_err(super::store_error)?;
    row.message_count += 1;
    row.updated_at_ms = now_ms();
    state.store.update_session(&row).map_err(super::store_error)?;
    super::sessions::changed(state, "inject", &row.key, &row.agent_id, Some(crate::sessions::entry_json(&row)));
    Ok(json!({"ok": true, "messageId": id}))
}

/// The final `agent` response frame: success with `result.payloads`, or `ok:false` with both a
/// payload and an error (as the real gateway sends it).
fn agent_final(id: &str, result: &Value) -> String {
    let run_id = result["runId"].clone();
    match result["status"].as_str() {
        Some("ok") => homarus_protocol::ResponseFrame::ok_json(
            id,
            &json!({"runId": run_id, "status": "ok", "summary": "completed",
                    "result": {"payloads": result["payloads"], "meta": result["meta"]}}),
        ),
        status => {
            let message = result["error"].as_str().unwrap_or(if status == Some("aborted") {
                "run aborted"
            } else {
                "run failed"
            });
            json!({"type": "res", "id": id, "ok": false,
                   "payload": {"runId": run_id, "status": status.unwrap_or("error"), "summary": message},
                   "error": {"code": "UNAVAILABLE", "message": message}})
            .to_string()
        }
    }
}

/// `agent`: accepted now, the result later on the same request id.
pub fn agent(state: &Arc<GatewayState>, ctx: &CallContext<'_>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = obj("agent", params)?;
    let agent_id = agent_of(&p, s(&p, "sessionKey").unwrap_or_default());
    let key = s(&p, "sessionKey")
        .map(|k| k.trim().to_lowercase())
        .unwrap_or_else(|| homarus_protocol::session_key::main_session_key(&agent_id, None));
    let run_id = s(&p, "idempotencyKey").unwrap_or_default().to_string();
    let spec = RunSpec {
        run_id: run_id.clone(),
        session_key: key.clone(),
        agent_id: agent_id.clone(),
        message: s(&p, "message").unwrap_or_default().to_string(),
        extra_system_prompt: s(&p, "extraSystemPrompt").map(str::to_string),
        timeout: p.get("timeout").and_then(Value::as_u64).filter(|t| *t > 0).map(Duration::from_secs),
        expected_session_id: s(&p, "expectedExistingSessionId").map(str::to_string),
        deliver: Default::default(),
    };
    let accepted =
        json!({"runId": run_id, "sessionKey": key, "agentId": agent_id, "status": "accepted", "acceptedAt": now_ms()});
    let r = responder(ctx)?;
    runs::check_can_start(state, &key)?;
    r.send_now(&accepted);
    let (id, outbound) = (r.id.clone(), r.outbound.clone());
    // Gateway-run `agent` calls are recorded in the task ledger (silent: the caller gets the result).
    let task = crate::background::create_task(
        state,
        homarus_tasks::NewTask {
            run_id: run_id.clone(),
            runtime: "cli".into(),
            kind: "agent".into(),
            label: spec.message.chars().take(80).collect(),
            task: spec.message.clone(),
            agent_id: agent_id.clone(),
            requester_session_key: Some(key.clone()),
            notify_policy: "silent".into(),
            source_id: Some("agent".into()),
            running: true,
            ..Default::default()
        },
    );
    let reply = AgentReply { state: state.clone(), task_id: task.map(|t| t.task_id), id, outbound };
    let st = state.clone();
    tokio::spawn(async move {
        // Commands (`/new`, `/status`, …) answer without the model.
        match commands::run(&st, &spec, "agent").await {
            Ok(Some(CommandReply { text, then_run: None })) => {
                reply.send(&json!({"runId": spec.run_id, "status": "ok", "payloads": [{"text": text, "mediaUrl": null}], "meta": {}}));
            }
            Ok(command) => {
                let message = command.and_then(|r| r.then_run).unwrap_or(spec.message.clone());
                let on_done = reply.clone();
                if let Err(e) = runs::start(&st, RunSpec { message, ..spec }, move |result| on_done.send(result)) {
                    reply.send(&json!({"runId": run_id, "status": "error", "error": e.message}));
                }
            }
            Err(e) => reply.send(&json!({"runId": run_id, "status": "error", "error": e.message})),
        }
    });
    Ok(accepted)
}

/// The second answer of an `agent` call: its task record ends and the final frame goes out.
#[derive(Clone)]
struct AgentReply {
    state: Arc<GatewayState>,
    task_id: Option<String>,
    id: String,
    outbound: crate::outbound::Outbound,
}

impl AgentReply {
    fn send(&self, result: &Value) {
        if let Some(task_id) = &self.task_id {
            let status = crate::background::task_status_of(result);
            let text = result["text"].as_str().map(str::to_string);
            crate::background::finish_task(
                &self.state,
                task_id,
                status,
                text,
                result["error"].as_str().map(str::to_string),
            );
        }
        let _ = self.outbound.send_text(agent_final(&self.id, result));
    }
}

/// `agent.wait`: `{runId, timeoutMs?}` → the run's result, or `status: "timeout"`.
pub async fn wait(state: &Arc<GatewayState>, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let p = params.and_then(Value::as_object).cloned().unwrap_or_default();
    let run_id = s(&p, "runId").ok_or_else(|| ErrorShape::invalid("invalid params: at /runId: required"))?;
    let timeout =
        p.get("timeoutMs").and_then(Value::as_u64).map(Duration::from_millis).unwrap_or(DEFAULT_WAIT).min(MAX_WAIT);
    Ok(state.runs.wait(run_id, timeout).await?.unwrap_or_else(|| runs::wait_timeout(run_id)))
}

/// `agents.list`.
pub fn agents_list(state: &GatewayState) -> Result<Value, ErrorShape> {
    let cfg = state.config();
    let agents = &cfg.config.agents;
    let mut ids: Vec<String> = vec!["main".into()];
    ids.extend(agents.entries.keys().filter(|k| k.as_str() != "main").cloned());
    let list: Vec<Value> = ids
        .iter()
        .map(|id| {
            let entry = agents.entries.get(id);
            let model = entry.and_then(|e| e.model.as_ref()).or(agents.defaults.model.as_ref()).map(|m| m.refs());
            let mut v =
                json!({"id": id, "kind": "agent", "workspace": runs::workspace_dir(state, id).display().to_string()});
            if let Some(name) = entry.and_then(|e| e.name.as_ref()) {
                v["name"] = json!(name);
            }
            if let Some(refs) = model.filter(|r| !r.is_empty()) {
                v["model"] = json!({"primary": refs[0], "fallbacks": refs[1..]});
            }
            v
        })
        .collect();
    Ok(
        json!({"defaultId": "main", "ownership": "sole", "selectionRequired": false, "mainKey": "main", "scope": "per-sender", "agents": list}),
    )
}

/// `commands.list`.
pub fn commands_list() -> Value {
    let list: Vec<Value> = commands::NATIVE
        .iter()
        .map(|(name, description, category, args)| {
            json!({"name": name, "nativeName": name, "textAliases": [format!("/{name}")], "description": description,
                   "category": category, "source": "native", "scope": "both", "acceptsArgs": args})
        })
        .collect();
    json!({"commands": list})
}
