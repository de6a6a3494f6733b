//! Anthropic Messages with `stream: true`.
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{
    incomplete, is_overflow, read_sse, response, send, tool_arguments, ModelRequest, ModelResponse, ProviderError,
    ResolvedModel, StreamDelta,
};
use crate::message::{Block, Message, StopReason, Usage};

const API_VERSION: &str = "2023-06-01";

/// Anthropic wants strictly alternating roles, with tool results inside a user message.
fn wire_messages(messages: &[Message]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut push = |role: &str, blocks: Vec<Value>| {
        if blocks.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(arr) = last["content"].as_array_mut() {
                    arr.extend(blocks);
                }
            }
            _ => out.push(json!({"role": role, "content": blocks})),
        }
    };
    for m in messages {
        match m {
            Message::User { content, .. } => push("user", content.iter().filter_map(block).collect()),
            Message::Assistant { content, .. } => push("assistant", content.iter().filter_map(block).collect()),
            Message::ToolResult { tool_call_id, is_error, .. } => push(
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": m.text(), "is_error": is_error}),
                ],
            ),
        }
    }
    out
}

fn block(b: &Block) -> Option<Value> {
    match b {
        Block::Text { text } if !text.is_empty() => Some(json!({"type": "text", "text": text})),
        Block::Text { .. } | Block::Thinking { .. } => None,
        Block::ToolCall { id, name, arguments } => {
            let input = if arguments.is_object() { arguments.clone() } else { json!({}) };
            Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
        }
        Block::Image { data, mime_type } => {
            Some(json!({"type": "image", "source": {"type": "base64", "media_type": mime_type, "data": data}}))
        }
    }
}

enum Partial {
    Text(String),
    Thinking(String),
    Tool { id: String, name: String, json: String },
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
        "max_tokens": model.max_tokens,
        "stream": true,
        "messages": wire_messages(req.messages),
    });
    if !req.system.is_empty() {
        body["system"] = json!(req.system);
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    let url = if model.base_url.ends_with("/v1") {
        format!("{}/messages", model.base_url)
    } else {
        format!("{}/v1/messages", model.base_url)
    };
    let mut builder = http.post(url).header("anthropic-version", API_VERSION).json(&body);
    if let Some(key) = &model.api_key {
        builder = builder.header("x-api-key", key);
    }
    for (k, v) in &model.headers {
        builder = builder.header(k, v);
    }
    let resp = send(model, builder, cancel).await?;

    let mut blocks: BTreeMap<u64, Partial> = BTreeMap::new();
    let mut usage = Usage::default();
    let mut stop: Option<String> = None;
    let mut done = false;
    read_sse(model, resp, idle_timeout, cancel, |ev| {
        let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        let kind = v["type"].as_str().unwrap_or(ev.event.as_str());
        match kind {
            "message_start" => {
                let u = &v["message"]["usage"];
                usage.input = u["input_tokens"].as_u64().unwrap_or(0);
                usage.cache_read = u["cache_read_input_tokens"].as_u64().unwrap_or(0);
                usage.cache_write = u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let i = v["index"].as_u64().unwrap_or(0);
                let cb = &v["content_block"];
                let partial = match cb["type"].as_str() {
                    Some("tool_use") => Partial::Tool {
                        id: cb["id"].as_str().unwrap_or_default().to_string(),
                        name: cb["name"].as_str().unwrap_or_default().to_string(),
                        json: String::new(),
                    },
                    Some("thinking") => Partial::Thinking(String::new()),
                    _ => Partial::Text(String::new()),
                };
                blocks.insert(i, partial);
            }
            "content_block_delta" => {
                let i = v["index"].as_u64().unwrap_or(0);
                let d = &v["delta"];
                match (blocks.get_mut(&i), d["type"].as_str()) {
                    (Some(Partial::Text(t)), Some("text_delta")) => {
                        let s = d["text"].as_str().unwrap_or_default();
                        t.push_str(s);
                        on_delta(StreamDelta::Text(s.to_string()));
                    }
                    (Some(Partial::Thinking(t)), Some("thinking_delta")) => {
                        let s = d["thinking"].as_str().unwrap_or_default();
                        t.push_str(s);
                        on_delta(StreamDelta::Thinking(s.to_string()));
                    }
                    (Some(Partial::Tool { json, .. }), Some("input_json_delta")) => {
                        json.push_str(d["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    stop = Some(s.to_string());
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    usage.output = o;
                }
            }
            "message_stop" => {
                done = true;
                return Ok(false);
            }
            "error" => {
                let message = v["error"]["message"].as_str().unwrap_or("stream error").to_string();
                let provider = model.provider.clone();
                return Err(match v["error"]["type"].as_str() {
                    _ if is_overflow(&message) => ProviderError::ContextOverflow { provider, message },
                    Some("overloaded_error") | Some("api_error") => {
                        ProviderError::Server { provider, status: 529, message }
                    }
                    Some("rate_limit_error") => ProviderError::RateLimited { provider, retry_after: None, message },
                    _ => ProviderError::BadRequest { provider, status: 400, message },
                });
            }
            _ => {}
        }
        Ok(true)
    })
    .await?;
    if !done {
        return Err(incomplete(model));
    }
    usage.total_tokens = usage.input + usage.output + usage.cache_read + usage.cache_write;

    let content: Vec<Block> = blocks
        .into_values()
        .filter_map(|p| match p {
            Partial::Text(text) if !text.is_empty() => Some(Block::Text { text }),
            Partial::Thinking(thinking) if !thinking.is_empty() => Some(Block::Thinking { thinking }),
            Partial::Tool { id, name, json } => Some(Block::ToolCall { id, name, arguments: tool_arguments(json) }),
            _ => None,
        })
        .collect();
    let stop_reason = match stop.as_deref() {
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::Length,
        _ => StopReason::Stop,
    };
    Ok(response(model, content, usage, stop_reason))
}
