//! `POST /tools/invoke`: run one agent tool directly, without a model turn. Always on; gateway auth
//! (`Authorization: Bearer`), full operator access. Tools that execute commands, write files or
//! orchestrate sessions are refused over HTTP unless `gateway.tools.allow` lists them.
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use homarus_agent::tools::ExtraTools;

use crate::http::AppState;

/// Refused over HTTP by default.
pub const HTTP_DENY: &[&str] = &[
    "exec",
    "spawn",
    "shell",
    "fs_write",
    "fs_delete",
    "fs_move",
    "apply_patch",
    "write",
    "edit",
    "sessions_spawn",
    "sessions_send",
    "cron",
    "gateway",
    "nodes",
];

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"ok": false, "error": {"type": kind, "message": message}}))).into_response()
}

/// `POST /tools/invoke {tool|name, action?, args?, sessionKey?, agentId?}`.
pub async fn invoke(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = app.gateway.clone();
    if let Err(r) = crate::openai_http::authorize(&state, peer, &headers) {
        return *r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(StatusCode::BAD_REQUEST, "invalid_request", "the body must be a JSON object"),
    };
    let Some(tool) = req["name"].as_str().or_else(|| req["tool"].as_str()).filter(|t| !t.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "tool: required");
    };
    let mut args = if req["args"].is_object() { req["args"].clone() } else { json!({}) };
    if let (Some(a), None) = (req["action"].as_str(), args.get("action")) {
        args["action"] = json!(a);
    }
    let cfg = state.config();
    let policy = cfg.config.gateway.tools.clone().unwrap_or_default();
    let denied =
        (HTTP_DENY.contains(&tool) && !policy.allow.iter().any(|a| a == tool)) || policy.deny.iter().any(|d| d == tool);
    if denied {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("tool {tool} is not available over HTTP (gateway.tools.allow)"),
        );
    }
    let agent =
        req["agentId"].as_str().map(homarus_protocol::session_key::normalize_agent_id).unwrap_or_else(|| "main".into());
    let key = match req["sessionKey"].as_str() {
        None | Some("main") => homarus_protocol::session_key::main_session_key(&agent, None),
        Some(k) => k.trim().to_lowercase(),
    };
    if let Some(owner) = homarus_protocol::session_key::agent_id_of(&key) {
        if req["agentId"].is_string() && homarus_protocol::session_key::normalize_agent_id(owner) != agent {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("sessionKey {key} belongs to agent {owner}, not {agent}"),
            );
        }
    }
    let svc = crate::sessions::SessionService::new(&state.store, &state.opts.state_dir);
    let row = match svc.create(Some(&key), Some(&agent), None, None, "tools-invoke", crate::state::now_ms()) {
        Ok((row, created)) => {
            if created {
                crate::lifecycle::started(&state, &row, None);
            }
            row
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", &e.message),
    };
    let call_id = req["idempotencyKey"]
        .as_str()
        .map(|k| format!("http-{k}"))
        .unwrap_or_else(|| format!("http-{}", uuid::Uuid::new_v4()));
    // Plugin policy applies here too (fails closed).
    let hooks = state.opts.hooks.clone();
    if hooks.has_handlers("before_tool_call") {
        let event = json!({"toolName": tool, "params": args, "toolCallId": call_id});
        let ctx = json!({"agentId": agent, "sessionKey": key, "sessionId": row.session_id, "toolName": tool});
        let out = hooks.run_decision("before_tool_call", &event, &ctx).await;
        if let Some((plugin, reason)) = out.blocked {
            return error(StatusCode::FORBIDDEN, "blocked", &format!("blocked by plugin {plugin}: {reason}"));
        }
        if let Some(p) = out.decisions.iter().rev().find_map(|(_, d)| d.get("params").filter(|p| p.is_object())) {
            args = p.clone();
        }
    }
    let workspace = crate::runs::workspace_dir(&state, &agent);
    let ctx = homarus_agent::ToolContext {
        workspace,
        exec_timeout: std::time::Duration::from_secs(120),
        http: state.runs.http.clone(),
        memory_db: state.opts.state_dir.join("agents").join(&agent).join("memory.sqlite"),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut out = homarus_agent::tools::run_builtin(tool, &args, &ctx, &cancel).await;
    if out.is_none() {
        let extra = crate::session_tools::SessionTools::new(&state, &row);
        out = extra.call(tool, &args).await;
    }
    match out {
        None => error(StatusCode::NOT_FOUND, "not_found", &format!("unknown tool: {tool}")),
        Some(o) if o.is_error => error(StatusCode::BAD_REQUEST, "tool_error", &o.text),
        Some(o) => {
            Json(json!({"ok": true, "result": {"content": [{"type": "text", "text": o.text}], "isError": false}}))
                .into_response()
        }
    }
}
