//! The OpenAI-compatible HTTP API (`gateway.http.endpoints.chatCompletions.enabled`):
//! `POST /v1/chat/completions` (plain and streamed over SSE) and `GET /v1/models[/{id}]`.
//!
//! The `model` field names an agent (`openclaw`, `openclaw/default`, `openclaw/<agentId>`,
//! `openclaw:<agentId>`, `agent:<agentId>`), not a provider model. Each request is a normal agent run;
//! it is stateless (a fresh session) unless `user` or `x-openclaw-session-key` names one.
//! Authentication is the gateway's shared secret as `Authorization: Bearer`: full operator access.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::http::AppState;
use crate::options::ResolvedAuth;
use crate::runs::RunSpec;
use crate::state::{now_ms, GatewayState};

/// Longest wait for a run's answer.
const RUN_WAIT: Duration = Duration::from_secs(900);

pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message, "type": kind}}))).into_response()
}

/// Whether `chatCompletions` (`responses: false`) or `responses` is enabled.
pub(crate) fn endpoint_enabled(state: &GatewayState, responses: bool) -> bool {
    let cfg = state.config();
    let eps = cfg.config.gateway.http.as_ref().and_then(|h| h.endpoints.as_ref());
    let ep = eps.and_then(|e| if responses { e.responses.as_ref() } else { e.chat_completions.as_ref() });
    ep.and_then(|e| e.enabled).unwrap_or(false)
}

fn enabled(state: &GatewayState) -> bool {
    endpoint_enabled(state, false)
}

/// Check `Authorization: Bearer` against the gateway secret (constant time, rate limited).
pub(crate) fn authorize(state: &GatewayState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let ok = match (state.auth(), crate::http::bearer(headers)) {
        (ResolvedAuth::None, _) => true,
        (ResolvedAuth::Token(t), Some(g)) | (ResolvedAuth::Password(t), Some(g)) => crate::auth::secrets_equal(g, &t),
        _ => false,
    };
    let cfg = state.config();
    state.rate_limiter.admit(peer.ip(), &cfg.config.gateway.auth.rate_limit, ok).map_err(|refusal| {
        let (status, retry) = refusal.status_and_retry();
        let (kind, msg) = match refusal {
            crate::auth::AuthRefusal::LockedOut(_) => ("rate_limited", "too many failed authentication attempts"),
            crate::auth::AuthRefusal::WrongSecret => {
                ("unauthorized", "missing or wrong bearer token (the gateway token or password)")
            }
        };
        Box::new(crate::http::with_retry_after(error(status, kind, msg), retry))
    })
}

/// The API must be enabled and the caller authenticated (`/v1/models` serves either API).
fn admit(state: &GatewayState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if !enabled(state) && !endpoint_enabled(state, true) {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the OpenAI-compatible API is off (gateway.http.endpoints.chatCompletions.enabled)",
        )));
    }
    authorize(state, peer, headers)
}

/// The agent a `model` value names.
pub(crate) fn agent_of(model: &str, headers: &HeaderMap) -> Option<String> {
    if let Some(a) = headers.get("x-openclaw-agent-id").and_then(|v| v.to_str().ok()) {
        return Some(homarus_protocol::session_key::normalize_agent_id(a));
    }
    let m = model.trim();
    let id = match m {
        "openclaw" | "openclaw/default" | "" => "main",
        _ => {
            m.strip_prefix("openclaw/").or_else(|| m.strip_prefix("openclaw:")).or_else(|| m.strip_prefix("agent:"))?
        }
    };
    Some(homarus_protocol::session_key::normalize_agent_id(id))
}

pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// `GET /v1/models`.
pub async fn models(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let state = &app.gateway;
    if let Err(r) = admit(state, peer, &headers) {
        return *r;
    }
    let cfg = state.config();
    let mut ids = vec!["openclaw".to_string(), "openclaw/default".to_string(), "openclaw/main".to_string()];
    ids.extend(cfg.config.agents.entries.keys().filter(|k| k.as_str() != "main").map(|k| format!("openclaw/{k}")));
    let data: Vec<Value> =
        ids.iter().map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "homarus"})).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`.
pub async fn model(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let state = &app.gateway;
    if let Err(r) = admit(state, peer, &headers) {
        return *r;
    }
    let known = agent_of(&id, &HeaderMap::new())
        .is_some_and(|a| a == "main" || state.config().config.agents.entries.contains_key(&a));
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("unknown model {id:?}: use openclaw/<agentId>"),
        );
    }
    Json(json!({"id": id, "object": "model", "created": 0, "owned_by": "homarus"})).into_response()
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = app.gateway.clone();
    if let Err(r) = admit(&state, peer, &headers) {
        return *r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(StatusCode::BAD_REQUEST, "invalid_request_error", "the body must be a JSON object"),
    };
    let model = req["model"].as_str().unwrap_or("openclaw");
    let Some(agent) = agent_of(model, &headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("unknown model {model:?}: use openclaw, openclaw/default or openclaw/<agentId>"),
        );
    };
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "messages: expected a non-empty array");
    };
    if req.get("tools").is_some_and(|t| !t.as_array().is_some_and(|a| a.is_empty())) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "tools: client-side tools are not supported by Homarus yet; the agent uses its own tools",
        );
    }
    let Some(last_user) = messages.iter().rposition(|m| m["role"] == "user") else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "messages: no user message");
    };
    let prompt = text_of(&messages[last_user]["content"]);
    // Earlier messages of a stateless request are context the agent's session does not have.
    let earlier: Vec<String> = messages[..last_user]
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| format!("{}: {}", m["role"].as_str().unwrap_or("user"), text_of(&m["content"])))
        .collect();
    let system: Vec<String> =
        messages.iter().filter(|m| m["role"] == "system").map(|m| text_of(&m["content"])).collect();
    let key = match session_key_for(&headers, req["user"].as_str(), &agent) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let message = prompt_with_context(&state, &key, prompt, &earlier);
    let run_id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let spec = RunSpec {
        run_id: run_id.clone(),
        session_key: key,
        agent_id: agent,
        message,
        extra_system_prompt: (!system.is_empty()).then(|| system.join("\n")),
        timeout: None,
        expected_session_id: None,
        deliver: Default::default(),
    };
    let include_usage = req["stream_options"]["include_usage"] == true;
    let HttpRun { events, done, mut guard } = match start_http_run(&state, spec, req["stream"] == true) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let model = model.to_string();
    match events {
        None => {
            let result = match wait_result(done, &mut guard).await {
                Ok(r) => r,
                Err(r) => return *r,
            };
            if result["status"] != "ok" {
                let msg = result["error"].as_str().unwrap_or("the agent run failed");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "agent_error", msg);
            }
            let usage = &result["meta"]["agentMeta"]["usage"];
            let (p, c) = (usage["input"].as_u64().unwrap_or(0), usage["output"].as_u64().unwrap_or(0));
            Json(json!({
                "id": run_id, "object": "chat.completion", "created": now_ms() / 1000, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result["text"]}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
            }))
            .into_response()
        }
        Some(rx) => sse(guard, model, rx, done, include_usage),
    }
}

/// The session of a request: `x-openclaw-session-key` (not in a reserved namespace), else one per
/// `user`, else a fresh one.
pub(crate) fn session_key_for(headers: &HeaderMap, user: Option<&str>, agent: &str) -> Result<String, Box<Response>> {
    Ok(match (headers.get("x-openclaw-session-key").and_then(|v| v.to_str().ok()), user) {
        (Some(k), _) => {
            let k = k.trim().to_lowercase();
            if ["subagent:", "cron:", "acp:"].iter().any(|ns| k.contains(ns)) {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "x-openclaw-session-key: reserved namespace (subagent:, cron:, acp:)",
                )));
            }
            k
        }
        (None, Some(user)) => {
            format!("agent:{agent}:openai-user:{}", crate::auth::sha256_hex(user).get(..16).unwrap_or_default())
        }
        (None, None) => format!("agent:{agent}:openai:{}", uuid::Uuid::new_v4()),
    })
}

/// A run started for an HTTP request: its `chat` events when streaming, its result, and the guard
/// that aborts it if the client leaves.
pub(crate) struct HttpRun {
    pub(crate) events: Option<mpsc::Receiver<Value>>,
    pub(crate) done: oneshot::Receiver<Value>,
    pub(crate) guard: RunGuard,
}

/// The prompt for `key`: a fresh session also gets the earlier turns the client sent.
pub(crate) fn prompt_with_context(state: &GatewayState, key: &str, prompt: String, earlier: &[String]) -> String {
    let fresh = state.store.session(key).ok().flatten().is_none();
    if fresh && !earlier.is_empty() {
        format!("[Conversation so far]\n{}\n\n{prompt}", earlier.join("\n"))
    } else {
        prompt
    }
}

/// Start `spec` for an HTTP client (503 when it cannot start).
pub(crate) fn start_http_run(
    state: &std::sync::Arc<GatewayState>,
    spec: RunSpec,
    stream: bool,
) -> Result<HttpRun, Box<Response>> {
    let (run_id, session_key) = (spec.run_id.clone(), spec.session_key.clone());
    let (done_tx, done) = oneshot::channel::<Value>();
    let events = stream.then(|| state.listen_run(&run_id));
    if let Err(e) = crate::runs::start(state, spec, move |result| {
        let _ = done_tx.send(result.clone());
    }) {
        state.unlisten_run(&run_id);
        return Err(Box::new(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &e.message)));
    }
    Ok(HttpRun { events, done, guard: RunGuard { state: state.clone(), session_key, run_id, armed: true } })
}

/// Wait for a non-streamed run's result (504 after [`RUN_WAIT`]).
pub(crate) async fn wait_result(done: oneshot::Receiver<Value>, guard: &mut RunGuard) -> Result<Value, Box<Response>> {
    let waited = tokio::time::timeout(RUN_WAIT, done).await;
    guard.armed = false;
    match waited {
        Ok(Ok(r)) => Ok(r),
        _ => Err(Box::new(error(StatusCode::GATEWAY_TIMEOUT, "timeout", "the agent run did not finish"))),
    }
}

/// Aborts the run when dropped while armed (the HTTP client disconnected before the answer).
pub(crate) struct RunGuard {
    pub(crate) state: std::sync::Arc<GatewayState>,
    pub(crate) session_key: String,
    pub(crate) run_id: String,
    pub(crate) armed: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.state.unlisten_run(&self.run_id);
        if self.armed {
            crate::runs::abort(&self.state, &self.session_key, Some(&self.run_id));
        }
    }
}

/// Stream a run as `chat.completion.chunk` events from its `chat` events; the run's result ends it.
fn sse(
    guard: RunGuard,
    model: String,
    rx: mpsc::Receiver<Value>,
    done: oneshot::Receiver<Value>,
    include_usage: bool,
) -> Response {
    let created = now_ms() / 1000;
    let id = guard.run_id.clone();
    let chunk = move |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    struct S {
        rx: mpsc::Receiver<Value>,
        done: oneshot::Receiver<Value>,
        sent: String,
        first: bool,
        finished: bool,
        guard: RunGuard,
    }
    let init = S { rx, done, sent: String::new(), first: true, finished: false, guard };
    let body = stream::unfold(init, move |mut s| {
        let chunk = chunk.clone();
        async move {
            if s.finished {
                return None;
            }
            let mut out = String::new();
            if s.first {
                s.first = false;
                out.push_str(&chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            }
            tokio::select! {
                ev = s.rx.recv() => {
                    let closed = ev.is_none();
                    if let Some(ev) = ev.filter(|e| e["state"] == "delta") {
                        let text = ev["message"]["content"][0]["text"].as_str().unwrap_or("");
                        if let Some(rest) = text.strip_prefix(s.sent.as_str()).filter(|r| !r.is_empty()) {
                            out.push_str(&chunk(json!({"content": rest}), Value::Null));
                            s.sent = text.to_string();
                        }
                    } else if closed {
                        // Listener gone: the result decides.
                        let r = tokio::time::timeout(RUN_WAIT, &mut s.done).await.ok().and_then(Result::ok);
                        finish(&mut out, &chunk, &mut s.sent, r.as_ref(), include_usage);
                        s.finished = true;
                        s.guard.armed = false;
                    }
                }
                r = &mut s.done => {
                    finish(&mut out, &chunk, &mut s.sent, r.ok().as_ref(), include_usage);
                    s.finished = true;
                    s.guard.armed = false;
                }
            }
            Some((Ok::<_, Infallible>(Bytes::from(out)), s))
        }
    });
    sse_response(body)
}

/// A `text/event-stream` response over `body`.
pub(crate) fn sse_response(
    body: impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn finish(
    out: &mut String,
    chunk: &dyn Fn(Value, Value) -> String,
    sent: &mut String,
    result: Option<&Value>,
    include_usage: bool,
) {
    match result {
        Some(r) if r["status"] == "ok" => {
            let text = r["text"].as_str().unwrap_or("");
            if let Some(rest) = text.strip_prefix(sent.as_str()).filter(|x| !x.is_empty()) {
                out.push_str(&chunk(json!({"content": rest}), Value::Null));
                *sent = text.to_string();
            }
            out.push_str(&chunk(json!({}), json!("stop")));
            if include_usage {
                let u = &r["meta"]["agentMeta"]["usage"];
                let (p, c) = (u["input"].as_u64().unwrap_or(0), u["output"].as_u64().unwrap_or(0));
                out.push_str(&format!(
                    "data: {}\n\n",
                    json!({"object": "chat.completion.chunk", "choices": [],
                    "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})
                ));
            }
            out.push_str("data: [DONE]\n\n");
        }
        other => {
            let msg = other.and_then(|r| r["error"].as_str()).unwrap_or("the agent run failed");
            out.push_str(&format!(
                "data: {}\n\ndata: [DONE]\n\n",
                json!({"error": {"message": msg, "type": "agent_error"}})
            ));
        }
    }
}
