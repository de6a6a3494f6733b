//! OpenAI-compatible Chat Completions with `stream: true`.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{
    incomplete, is_overflow, read_sse, response, send, tool_arguments, ModelRequest, ModelResponse, ProviderError,
    ResolvedModel, StreamDelta,
};
use crate::message::{Block, Message, StopReason, Usage};

fn wire_messages(req: &ModelRequest<'_>) -> Vec<Value> {
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        out.push(json!({"role": "system", "content": req.system}));
    }
    for m in req.messages {
        match m {
            Message::User { .. } => out.push(json!({"role": "user", "content": m.text()})),
            Message::Assistant { .. } => {
                let calls: Vec<Value> = m
                    .tool_calls()
                    .into_iter()
                    .map(|(id, name, args)| {
                        json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
                    })
                    .collect();
                let text = m.text();
                let mut msg =
                    json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = json!(calls);
                }
                out.push(msg);
            }
            Message::ToolResult { tool_call_id, .. } => {
                out.push(json!({"role": "tool", "tool_call_id": tool_call_id, "content": m.text()}))
            }
        }
    }
    out
}

/// A tool call being assembled from deltas.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

pub(super) async fn call(
    http: &reqwest::Client,
    model: &ResolvedModel,
    req: &ModelRequest<'_>,
    idle_timeout: Duration,
    cancel: &CancellationToken,
    on_delta: &mut (dyn FnMut(StreamDelta) + Send),
) -> Result<ModelResponse, ProviderError> {
    let mut body = json!({
        "model": model.model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": model.max_tokens,
        "messages": wire_messages(req),
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
    }
    let mut builder = http.post(format!("{}/chat/completions", model.base_url)).json(&body);
    if let Some(key) = &model.api_key {
        builder = builder.bearer_auth(key);
    }
    for (k, v) in &model.headers {
        builder = builder.header(k, v);
    }
    let resp = send(model, builder, cancel).await?;

    let mut text = String::new();
    let mut thinking = String::new();
    let mut calls: BTreeMap<u64, PartialCall> = BTreeMap::new();
    let mut usage = Usage::default();
    let mut finish: Option<String> = None;
    let mut done = false;
    read_sse(model, resp, idle_timeout, cancel, |ev| {
        if ev.data.trim() == "[DONE]" {
            done = true;
            return Ok(false);
        }
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| ProviderError::Network {
            provider: model.provider.clone(),
            message: format!("unreadable stream chunk ({e}): {}", ev.data.chars().take(200).collect::<String>()),
        })?;
        if let Some(err) = v.get("error") {
            let message = err["message"].as_str().unwrap_or("stream error").to_string();
            return Err(if is_overflow(&message) {
                ProviderError::ContextOverflow { provider: model.provider.clone(), message }
            } else {
                ProviderError::Server { provider: model.provider.clone(), status: 200, message }
            });
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            usage.input = u["prompt_tokens"].as_u64().unwrap_or(0);
            usage.output = u["completion_tokens"].as_u64().unwrap_or(0);
            usage.cache_read = u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0);
            usage.total_tokens = u["total_tokens"].as_u64().unwrap_or(usage.input + usage.output);
        }
        for choice in v["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                text.push_str(t);
                on_delta(StreamDelta::Text(t.to_string()));
            }
            let reasoning = delta["reasoning_content"].as_str().or_else(|| delta["reasoning"].as_str());
            if let Some(t) = reasoning.filter(|t| !t.is_empty()) {
                thinking.push_str(t);
                on_delta(StreamDelta::Thinking(t.to_string()));
            }
            for tc in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = tc["index"].as_u64().unwrap_or(calls.len() as u64);
                let call = calls.entry(index).or_default();
                if let Some(id) = tc["id"].as_str() {
                    call.id = id.to_string();
                }
                if let Some(name) = tc["function"]["name"].as_str() {
                    call.name.push_str(name);
                }
                if let Some(args) = tc["function"]["arguments"].as_str() {
                    call.arguments.push_str(args);
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
        Ok(true)
    })
    .await?;
    // Some servers omit `[DONE]`; a finish reason also marks a complete answer.
    if !done && finish.is_none() {
        return Err(incomplete(model));
    }

    let mut content = Vec::new();
    if !thinking.is_empty() {
        content.push(Block::Thinking { thinking });
    }
    if !text.is_empty() {
        content.push(Block::Text { text });
    }
    for (i, c) in calls {
        let arguments = tool_arguments(c.arguments);
        let id = if c.id.is_empty() { format!("call_{i}") } else { c.id };
        content.push(Block::ToolCall { id, name: c.name, arguments });
    }
    let has_calls = content.iter().any(|b| matches!(b, Block::ToolCall { .. }));
    let stop_reason = match finish.as_deref() {
        Some("length") => StopReason::Length,
        _ if has_calls => StopReason::ToolUse,
        _ => StopReason::Stop,
    };
    Ok(response(model, content, usage, stop_reason))
}
