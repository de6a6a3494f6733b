//! `POST /v1/responses` (OpenResponses, `gateway.http.endpoints.responses.enabled`): one agent run per
//! request, plain or streamed as the Responses API's typed SSE events. The model names an agent as for
//! chat completions; `user`, `x-openclaw-session-key` and `previous_response_id` choose the session.
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::http::AppState;
use crate::openai_http::{agent_of, error, session_key_for, start_http_run, text_of, wait_result, HttpRun, RunGuard};
use crate::runs::RunSpec;
use crate::state::now_ms;

/// Response ids remembered for `previous_response_id` (oldest forgotten first).
const REMEMBERED: usize = 4096;
/// Longest wait for a run's answer.
const RUN_WAIT: std::time::Duration = std::time::Duration::from_secs(900);

/// Which session each recent response ran in.
#[derive(Default)]
pub struct ResponseSessions(Mutex<VecDeque<(String, String)>>);

impl ResponseSessions {
    fn remember(&self, response_id: &str, session_key: &str) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= REMEMBERED {
            q.pop_front();
        }
        q.push_back((response_id.to_string(), session_key.to_string()));
    }

    fn session_of(&self, response_id: &str) -> Option<String> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().rev().find(|(r, _)| r == response_id).map(|(_, k)| k.clone())
    }
}

fn bad(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// The prompt, earlier turns (for a fresh session) and system text of `input` + `instructions`.
fn read_input(req: &Value) -> Result<(String, Vec<String>, Vec<String>), String> {
    let mut system: Vec<String> = req["instructions"].as_str().map(|s| vec![s.to_string()]).unwrap_or_default();
    match &req["input"] {
        Value::String(s) if !s.trim().is_empty() => Ok((s.clone(), vec![], system)),
        Value::Array(items) => {
            let mut turns: Vec<(String, String)> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item["type"].as_str().unwrap_or("message") {
                    "message" => {
                        let role = item["role"].as_str().unwrap_or("user");
                        let text = text_of(&item["content"]);
                        match role {
                            "system" | "developer" => system.push(text),
                            "user" | "assistant" => turns.push((role.to_string(), text)),
                            r => return Err(format!("input[{i}].role: {r:?} is not user, assistant, system or developer")),
                        }
                    }
                    "function_call_output" | "function_call" => {
                        return Err(format!(
                            "input[{i}].type: client-side tools are not supported by Homarus yet; the agent uses its own tools"
                        ))
                    }
                    // Accepted for compatibility, ignored for the prompt.
                    "reasoning" | "item_reference" => {}
                    t => return Err(format!("input[{i}].type: {t:?} is not supported")),
                }
            }
            let Some(last) = turns.iter().rposition(|(r, _)| r == "user") else {
                return Err("input: no user message".into());
            };
            let earlier = turns[..last].iter().map(|(r, t)| format!("{r}: {t}")).collect();
            Ok((turns[last].1.clone(), earlier, system))
        }
        _ => Err("input: expected a non-empty string or an array of items".into()),
    }
}

fn response_object(
    id: &str,
    model: &str,
    status: &str,
    text: Option<&str>,
    usage: Option<&Value>,
    prev: &Value,
) -> Value {
    let output: Vec<Value> = text
        .map(|t| {
            vec![
                json!({"type": "message", "id": format!("msg_{}", &id[5..]), "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": t, "annotations": []}]}),
            ]
        })
        .unwrap_or_default();
    let mut v = json!({"id": id, "object": "response", "created_at": now_ms() / 1000, "status": status, "model": model,
                       "output": output, "previous_response_id": prev, "parallel_tool_calls": false, "tools": [],
                       "error": null, "incomplete_details": null});
    if let Some(u) = usage {
        let (i, o) = (u["input"].as_u64().unwrap_or(0), u["output"].as_u64().unwrap_or(0));
        v["usage"] = json!({"input_tokens": i, "output_tokens": o, "total_tokens": i + o,
                            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}});
    }
    v
}

/// `POST /v1/responses`.
pub async fn responses(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = app.gateway.clone();
    if !crate::openai_http::endpoint_enabled(&state, true) {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the Responses API is off (gateway.http.endpoints.responses.enabled)",
        );
    }
    if let Err(r) = crate::openai_http::authorize(&state, peer, &headers) {
        return *r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return bad("the body must be a JSON object"),
    };
    let model = req["model"].as_str().unwrap_or("openclaw").to_string();
    let Some(agent) = agent_of(&model, &headers) else {
        return bad(&format!("unknown model {model:?}: use openclaw, openclaw/default or openclaw/<agentId>"));
    };
    let tools_given = req["tools"].as_array().is_some_and(|t| !t.is_empty());
    if tools_given && req["tool_choice"] != "none" {
        return bad("tools: client-side tools are not supported by Homarus yet; the agent uses its own tools");
    }
    let (prompt, earlier, system) = match read_input(&req) {
        Ok(x) => x,
        Err(e) => return bad(&e),
    };
    let prev = req["previous_response_id"].clone();
    let key = match prev.as_str().and_then(|p| state.response_sessions.session_of(p)) {
        Some(k) => k,
        None if prev.is_string() => return bad("previous_response_id: unknown or expired response id"),
        None => match session_key_for(&headers, req["user"].as_str(), &agent) {
            Ok(k) => k,
            Err(r) => return *r,
        },
    };
    let message = crate::openai_http::prompt_with_context(&state, &key, prompt, &earlier);
    let id = format!("resp_{}", uuid::Uuid::new_v4().simple());
    state.response_sessions.remember(&id, &key);
    let spec = RunSpec {
        run_id: id.clone(),
        session_key: key.clone(),
        agent_id: agent,
        message,
        extra_system_prompt: (!system.is_empty()).then(|| system.join("\n")),
        timeout: None,
        expected_session_id: None,
        deliver: Default::default(),
    };
    let HttpRun { events, done, mut guard } = match start_http_run(&state, spec, req["stream"] == true) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match events {
        None => {
            let result = match wait_result(done, &mut guard).await {
                Ok(r) => r,
                Err(r) => return *r,
            };
            if result["status"] != "ok" {
                let mut v = response_object(&id, &model, "failed", None, None, &prev);
                v["error"] = json!({"code": "server_error", "message": result["error"].as_str().unwrap_or("the agent run failed")});
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(v)).into_response();
            }
            let usage = &result["meta"]["agentMeta"]["usage"];
            Json(response_object(&id, &model, "completed", result["text"].as_str(), Some(usage), &prev)).into_response()
        }
        Some(rx) => stream_events(guard, model, prev, rx, done),
    }
}

fn event(seq: &mut u64, kind: &str, mut data: Value) -> String {
    data["type"] = json!(kind);
    data["sequence_number"] = json!(*seq);
    *seq += 1;
    format!("event: {kind}\ndata: {data}\n\n")
}

/// The Responses API's SSE event sequence, from the run's `chat` events and its result.
fn stream_events(
    guard: RunGuard,
    model: String,
    prev: Value,
    rx: mpsc::Receiver<Value>,
    done: oneshot::Receiver<Value>,
) -> Response {
    struct S {
        rx: mpsc::Receiver<Value>,
        done: oneshot::Receiver<Value>,
        sent: String,
        seq: u64,
        started: bool,
        finished: bool,
        guard: RunGuard,
    }
    let init = S { rx, done, sent: String::new(), seq: 0, started: false, finished: false, guard };
    let body = stream::unfold(init, move |mut s| {
        let (model, prev) = (model.clone(), prev.clone());
        async move {
            if s.finished {
                return None;
            }
            let id = s.guard.run_id.clone();
            let item_id = format!("msg_{}", &id[5..]);
            let mut out = String::new();
            if !s.started {
                s.started = true;
                let r = response_object(&id, &model, "in_progress", None, None, &prev);
                out.push_str(&event(&mut s.seq, "response.created", json!({"response": r})));
                out.push_str(&event(&mut s.seq, "response.in_progress", json!({"response": r})));
                let item = json!({"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []});
                out.push_str(&event(
                    &mut s.seq,
                    "response.output_item.added",
                    json!({"output_index": 0, "item": item}),
                ));
                let part = json!({"type": "output_text", "text": "", "annotations": []});
                out.push_str(&event(
                    &mut s.seq,
                    "response.content_part.added",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part}),
                ));
            }
            let mut result: Option<Option<Value>> = None;
            tokio::select! {
                ev = s.rx.recv() => match ev {
                    Some(ev) if ev["state"] == "delta" => {
                        let text = ev["message"]["content"][0]["text"].as_str().unwrap_or("");
                        if let Some(rest) = text.strip_prefix(s.sent.as_str()).filter(|r| !r.is_empty()) {
                            out.push_str(&event(&mut s.seq, "response.output_text.delta",
                                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": rest})));
                            s.sent = text.to_string();
                        }
                    }
                    Some(_) => {}
                    None => result = Some(tokio::time::timeout(RUN_WAIT, &mut s.done).await.ok().and_then(Result::ok)),
                },
                r = &mut s.done => result = Some(r.ok()),
            }
            if let Some(r) = result {
                s.finished = true;
                s.guard.armed = false;
                match r {
                    Some(r) if r["status"] == "ok" => {
                        let text = r["text"].as_str().unwrap_or("").to_string();
                        if let Some(rest) = text.strip_prefix(s.sent.as_str()).filter(|x| !x.is_empty()) {
                            out.push_str(&event(
                                &mut s.seq,
                                "response.output_text.delta",
                                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": rest}),
                            ));
                        }
                        let part = json!({"type": "output_text", "text": text, "annotations": []});
                        out.push_str(&event(
                            &mut s.seq,
                            "response.output_text.done",
                            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text}),
                        ));
                        out.push_str(&event(
                            &mut s.seq,
                            "response.content_part.done",
                            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part}),
                        ));
                        let item = json!({"type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": [part]});
                        out.push_str(&event(
                            &mut s.seq,
                            "response.output_item.done",
                            json!({"output_index": 0, "item": item}),
                        ));
                        let usage = &r["meta"]["agentMeta"]["usage"];
                        let done = response_object(&id, &model, "completed", Some(&text), Some(usage), &prev);
                        out.push_str(&event(&mut s.seq, "response.completed", json!({"response": done})));
                    }
                    other => {
                        let msg = other
                            .as_ref()
                            .and_then(|r| r["error"].as_str())
                            .unwrap_or("the agent run failed")
                            .to_string();
                        let mut failed = response_object(&id, &model, "failed", None, None, &prev);
                        failed["error"] = json!({"code": "server_error", "message": msg});
                        out.push_str(&event(&mut s.seq, "response.failed", json!({"response": failed})));
                    }
                }
                out.push_str("data: [DONE]\n\n");
            }
            Some((Ok::<_, Infallible>(Bytes::from(out)), s))
        }
    });
    crate::openai_http::sse_response(body)
}
