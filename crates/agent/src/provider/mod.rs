//! LLM providers: which models are configured, and one streaming call to one of them.
//!
//! Two wire formats cover the providers users run: OpenAI-compatible Chat Completions (OpenAI,
//! Ollama, llama.cpp, vLLM, LM Studio, OpenRouter) and Anthropic Messages. Both stream over SSE.
mod anthropic;
mod openai;
mod resolve;

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::message::{Message, StopReason, Usage};

pub use resolve::{detect_ollama, resolve_models, ResolveError};

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST {baseUrl}/chat/completions`.
    OpenAiCompletions,
    /// `POST {baseUrl}/v1/messages`.
    AnthropicMessages,
}

/// One model, ready to call.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// Provider id (`openai`, `local`, …).
    pub provider: String,
    /// Model id as the API expects it.
    pub model: String,
    /// Wire format.
    pub api: Api,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// API key, if any.
    pub api_key: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Context window in tokens.
    pub context_window: u64,
    /// Output tokens per call.
    pub max_tokens: u64,
}

impl ResolvedModel {
    /// `provider/model`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// What it does (for the model).
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: Value,
}

/// What one call sends.
#[derive(Debug, Clone)]
pub struct ModelRequest<'a> {
    /// System prompt.
    pub system: &'a str,
    /// Conversation so far.
    pub messages: &'a [Message],
    /// Tools offered.
    pub tools: &'a [ToolSpec],
}

/// What streams back while a call runs.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamDelta {
    /// More answer text.
    Text(String),
    /// More reasoning text.
    Thinking(String),
}

/// What a call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResponse {
    /// The assistant message (text, thinking, tool calls).
    pub message: Message,
    /// Usage reported by the provider.
    pub usage: Usage,
    /// Why it stopped.
    pub stop_reason: StopReason,
}

/// Why a call failed. `retryable` failures are retried with backoff and then fail over to the
/// next model; `ContextOverflow` goes to compaction.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// 401/403.
    #[error("{provider} rejected the credentials (HTTP {status}): {message}")]
    Auth {
        /// Provider id.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// 429.
    #[error("{provider} is rate limiting (HTTP 429){}: {message}", retry_after.map(|d| format!(", retry after {} ms", d.as_millis())).unwrap_or_default())]
    RateLimited {
        /// Provider id.
        provider: String,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
        /// Provider's message.
        message: String,
    },
    /// 5xx.
    #[error("{provider} failed (HTTP {status}): {message}")]
    Server {
        /// Provider id.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// The prompt does not fit the model's context window.
    #[error("{provider}: the conversation no longer fits the model's context window: {message}")]
    ContextOverflow {
        /// Provider id.
        provider: String,
        /// Provider's message.
        message: String,
    },
    /// Another 4xx.
    #[error("{provider} refused the request (HTTP {status}): {message}")]
    BadRequest {
        /// Provider id.
        provider: String,
        /// HTTP status.
        status: u16,
        /// Provider's message.
        message: String,
    },
    /// Connection failed or the stream broke.
    #[error("{provider}: {message}")]
    Network {
        /// Provider id.
        provider: String,
        /// What happened.
        message: String,
    },
    /// No bytes for longer than the idle watchdog allows.
    #[error("{provider}: the model stream stalled (nothing for {:.1} s)", idle.as_secs_f64())]
    Stalled {
        /// Provider id.
        provider: String,
        /// The idle limit.
        idle: Duration,
    },
    /// Cancelled by the caller.
    #[error("aborted")]
    Aborted,
}

impl ProviderError {
    /// Worth retrying the same model (after backoff).
    pub fn retryable(&self) -> bool {
        matches!(self, ProviderError::RateLimited { .. } | ProviderError::Server { .. } | ProviderError::Network { .. })
    }

    /// Worth trying the next model.
    pub fn fails_over(&self) -> bool {
        self.retryable() || matches!(self, ProviderError::Auth { .. } | ProviderError::Stalled { .. })
    }
}

/// How long a stream may be silent before it counts as stalled.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest error body read from a provider.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Call `model` once, streaming deltas to `on_delta`.
pub async fn stream_call(
    http: &reqwest::Client,
    model: &ResolvedModel,
    req: &ModelRequest<'_>,
    idle_timeout: Duration,
    cancel: &CancellationToken,
    on_delta: &mut (dyn FnMut(StreamDelta) + Send),
) -> Result<ModelResponse, ProviderError> {
    match model.api {
        Api::OpenAiCompletions => openai::call(http, model, req, idle_timeout, cancel, on_delta).await,
        Api::AnthropicMessages => anthropic::call(http, model, req, idle_timeout, cancel, on_delta).await,
    }
}

/// Streamed tool-call arguments as JSON: `{}` when empty; unparseable text is passed on as a string
/// so the tool reports the problem to the model.
fn tool_arguments(raw: String) -> Value {
    if raw.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(&raw).unwrap_or(Value::String(raw))
    }
}

/// The response of a finished call of `model`.
fn response(
    model: &ResolvedModel,
    content: Vec<crate::message::Block>,
    usage: Usage,
    stop_reason: StopReason,
) -> ModelResponse {
    let message = Message::Assistant {
        content,
        provider: model.provider.clone(),
        model: model.model.clone(),
        usage,
        stop_reason,
        error_message: None,
        timestamp: crate::now_ms(),
    };
    ModelResponse { message, usage, stop_reason }
}

/// Send a request and turn a non-2xx answer into the matching error.
async fn send(
    model: &ResolvedModel,
    builder: reqwest::RequestBuilder,
    cancel: &CancellationToken,
) -> Result<reqwest::Response, ProviderError> {
    let provider = model.provider.clone();
    let resp = tokio::select! {
        r = builder.send() => r.map_err(|e| ProviderError::Network { provider: provider.clone(), message: describe_reqwest(&e, &model.base_url) })?,
        _ = cancel.cancelled() => return Err(ProviderError::Aborted),
    };
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let body = read_bounded(resp, cancel).await;
    let message = error_message(&body);
    Err(match status {
        401 | 403 => ProviderError::Auth { provider, status, message },
        429 => ProviderError::RateLimited { provider, retry_after, message },
        s if s >= 500 => ProviderError::Server { provider, status, message },
        _ if is_overflow(&message) => ProviderError::ContextOverflow { provider, message },
        _ => ProviderError::BadRequest { provider, status, message },
    })
}

async fn read_bounded(mut resp: reqwest::Response, cancel: &CancellationToken) -> String {
    let mut out = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = tokio::time::timeout(Duration::from_secs(10), resp.chunk()) => c,
            _ = cancel.cancelled() => break,
        };
        match chunk {
            Ok(Ok(Some(c))) if out.len() < MAX_ERROR_BODY => out.extend_from_slice(&c),
            _ => break,
        }
    }
    out.truncate(MAX_ERROR_BODY);
    String::from_utf8_lossy(&out).into_owned()
}

/// The human part of a provider error body (`error.message` in both formats), else the body.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str().or_else(|| v["error"].as_str()).or_else(|| v["message"].as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(500).collect())
}

/// Whether a provider message says the prompt is too long (the wording of OpenAI, Anthropic,
/// llama.cpp, vLLM and Ollama).
pub fn is_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "context length",
        "prompt is too long",
        "context window",
        "too many tokens",
        "exceeds the context",
    ]
    .iter()
    .any(|p| m.contains(p))
}

fn describe_reqwest(e: &reqwest::Error, base_url: &str) -> String {
    if e.is_connect() {
        format!("cannot connect to {base_url}: {e}")
    } else if e.is_timeout() {
        format!("request to {base_url} timed out")
    } else {
        format!("request to {base_url} failed: {e}")
    }
}

fn incomplete(model: &ResolvedModel) -> ProviderError {
    ProviderError::Network {
        provider: model.provider.clone(),
        message: "stream broke: it ended before the response was complete".into(),
    }
}

/// Read the response body as SSE events, each handed to `on_event`, with an idle watchdog.
/// `on_event` returns `false` to stop early (the stream said it is done).
async fn read_sse(
    model: &ResolvedModel,
    mut resp: reqwest::Response,
    idle_timeout: Duration,
    cancel: &CancellationToken,
    mut on_event: impl FnMut(crate::sse::SseEvent) -> Result<bool, ProviderError>,
) -> Result<(), ProviderError> {
    let mut decoder = crate::sse::SseDecoder::default();
    let provider = || model.provider.clone();
    loop {
        let chunk = tokio::select! {
            c = tokio::time::timeout(idle_timeout, resp.chunk()) => c,
            _ = cancel.cancelled() => return Err(ProviderError::Aborted),
        };
        let bytes = match chunk {
            Err(_) => return Err(ProviderError::Stalled { provider: provider(), idle: idle_timeout }),
            Ok(Err(e)) => {
                return Err(ProviderError::Network { provider: provider(), message: format!("stream broke: {e}") })
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(b))) => b,
        };
        let events = decoder
            .feed(&bytes)
            .map_err(|e| ProviderError::Network { provider: provider(), message: e.to_string() })?;
        for ev in events {
            if !on_event(ev)? {
                return Ok(());
            }
        }
    }
}
