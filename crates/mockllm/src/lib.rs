//! A scripted LLM server for tests and benchmarks. It speaks the real wire formats over real
//! HTTP and SSE: OpenAI Chat Completions (`POST /v1/chat/completions`) and Anthropic Messages
//! (`POST /v1/messages`). Each request takes the next scripted [`Reply`]; with an empty script it
//! answers `MOCK-REPLY <n>` (n = request number) in two chunks. Every request body is recorded.
//! Binds 127.0.0.1 only.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::stream;
use serde_json::{json, Value};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Stream this text (split into word chunks).
    Text(String),
    /// Stream these chunks with a pause between them.
    Chunks(Vec<String>, Duration),
    /// Ask for one tool call.
    ToolCall {
        /// Tool name.
        name: String,
        /// Arguments.
        args: Value,
    },
    /// Answer with an HTTP error.
    Error {
        /// Status code.
        status: u16,
        /// Error message (wrapped as `{"error":{"message":…}}`).
        message: String,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// A 400 saying the prompt exceeds the context window.
    Overflow,
    /// Send the first chunk, then nothing (until the client gives up).
    Stall,
    /// Send a partial chunk, then close the connection.
    Broken,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    /// Replies reserved for requests whose last message contains a needle (checked first).
    matching: Mutex<Vec<(String, Reply)>>,
    requests: Mutex<Vec<Value>>,
    /// Media API requests (`{path, body}`), in order.
    media: Mutex<Vec<Value>>,
    /// Status polls answered per video job.
    video_polls: Mutex<std::collections::HashMap<String, u32>>,
    /// While set, every video stays `in_progress`.
    hold_videos: std::sync::atomic::AtomicBool,
}

/// A running mock server. Dropping it stops the server.
pub struct MockLlm {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockLlm {
    /// Start on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(0).await
    }

    /// Start on `port` (0 = ephemeral) on 127.0.0.1.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/v1/images/generations", post(image))
            .route("/v1/music_generation", post(music))
            .route("/v1/videos", post(video_create))
            .route("/v1/videos/{id}", axum::routing::get(video_status))
            .route("/v1/videos/{id}/content", axum::routing::get(video_content))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// Queue replies (answered in order).
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap_or_else(|p| p.into_inner()).extend(replies);
    }

    /// Answer the next request whose last message contains `needle` with `reply` (before the
    /// script), for tests where several sessions call the model at once.
    pub fn push_matching(&self, needle: &str, reply: Reply) {
        self.shared.matching.lock().unwrap_or_else(|p| p.into_inner()).push((needle.to_string(), reply));
    }

    /// Bodies of every request so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keep every video job `in_progress` until released (`false`).
    pub fn hold_videos(&self, hold: bool) {
        self.shared.hold_videos.store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    /// Media API requests so far (`{path, body}`).
    pub fn media_requests(&self) -> Vec<Value> {
        self.shared.media.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Base URL for an `openai-completions` provider.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Base URL for an `anthropic-messages` provider.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn next(shared: &Shared, body: &Bytes) -> (Reply, usize, u64) {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut requests = shared.requests.lock().unwrap_or_else(|p| p.into_inner());
    requests.push(parsed);
    let n = requests.len();
    let last = requests
        .last()
        .and_then(|r| r["messages"].as_array().and_then(|m| m.last()).map(|m| m.to_string()))
        .unwrap_or_default();
    let matched = {
        let mut matching = shared.matching.lock().unwrap_or_else(|p| p.into_inner());
        let hit = matching.iter().position(|(needle, _)| last.contains(needle.as_str()));
        hit.map(|i| matching.remove(i).1)
    };
    if let Some(reply) = matched {
        return (reply, n, (body.len() as u64 / 4).max(1));
    }
    let reply = shared
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front()
        .unwrap_or_else(|| Reply::Chunks(vec!["MOCK-REPLY".into(), format!(" {n}")], Duration::ZERO));
    // A prompt-token count that grows with the request, like a real model's.
    (reply, n, (body.len() as u64 / 4).max(1))
}

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(ch);
        if ch == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn sse_response(frames: Vec<(String, Duration)>, end: End) -> Response {
    let s = stream::unfold((frames.into_iter(), end, false), |(mut it, end, done)| async move {
        if done {
            return None;
        }
        match it.next() {
            Some((frame, pause)) => {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Some((Ok::<_, std::io::Error>(Bytes::from(frame)), (it, end, false)))
            }
            None => match end {
                End::Done => None,
                End::Hang => {
                    std::future::pending::<()>().await;
                    None
                }
                End::Break => {
                    // Let the bytes already sent reach the client before the connection dies, as
                    // on a real network failure mid-answer.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((Err(std::io::Error::other("connection reset by mock")), (it, end, true)))
                }
            },
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(s))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[derive(Clone, Copy)]
enum End {
    Done,
    Hang,
    Break,
}

fn error_response(status: u16, message: &str, retry_after: Option<u64>, kind: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(s) = retry_after {
        if let Ok(v) = s.to_string().parse() {
            headers.insert("retry-after", v);
        }
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, headers, json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()).into_response()
}

fn data(v: Value) -> String {
    format!("data: {v}\n\n")
}

async fn openai(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let (reply, n, prompt) = next(&shared, &body);
    let id = format!("chatcmpl-{n}");
    let chunk = |delta: Value, finish: Value| {
        data(
            json!({"id": id, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let usage = |completion: u64| {
        data(json!({"id": id, "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}))
    };
    let text_frames = |parts: Vec<String>, pause: Duration| {
        let count = parts.len() as u64;
        let mut frames: Vec<(String, Duration)> =
            vec![(chunk(json!({"role": "assistant", "content": ""}), Value::Null), Duration::ZERO)];
        frames.extend(parts.into_iter().map(|p| (chunk(json!({"content": p}), Value::Null), pause)));
        frames.push((chunk(json!({}), json!("stop")), Duration::ZERO));
        frames.push((usage(count), Duration::ZERO));
        frames.push(("data: [DONE]\n\n".to_string(), Duration::ZERO));
        frames
    };
    match reply {
        Reply::Text(t) => sse_response(text_frames(words(&t), Duration::ZERO), End::Done),
        Reply::Chunks(parts, pause) => sse_response(text_frames(parts, pause), End::Done),
        Reply::ToolCall { name, args } => {
            let args = args.to_string();
            let (a, b) = args.split_at(args.len() / 2);
            let call_id = format!("call_{n}");
            let frames = vec![
                chunk(json!({"role": "assistant", "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": a}}]}), Value::Null),
                chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": b}}]}), Value::Null),
                chunk(json!({}), json!("tool_calls")),
                usage(5),
                "data: [DONE]\n\n".to_string(),
            ];
            sse_response(frames.into_iter().map(|f| (f, Duration::ZERO)).collect(), End::Done)
        }
        Reply::Error { status, message, retry_after } => error_response(status, &message, retry_after, "server_error"),
        Reply::Overflow => error_response(
            400,
            &format!("This model's maximum context length is 1000 tokens. However, your messages resulted in {prompt} tokens."),
            None,
            "invalid_request_error",
        ),
        Reply::Stall => sse_response(vec![(chunk(json!({"content": "thinking"}), Value::Null), Duration::ZERO)], End::Hang),
        Reply::Broken => sse_response(vec![(chunk(json!({"content": "partial"}), Value::Null), Duration::ZERO)], End::Break),
    }
}

async fn anthropic(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let (reply, n, prompt) = next(&shared, &body);
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let start = ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": format!("msg_{n}"), "type": "message",
        "role": "assistant", "content": [], "model": "mock", "stop_reason": null, "usage": {"input_tokens": prompt, "output_tokens": 1}}}),
    );
    let stop = |reason: &str, out: u64| {
        vec![
            ev(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": out}}),
            ),
            ev("message_stop", json!({"type": "message_stop"})),
        ]
    };
    let text_frames = |parts: Vec<String>, pause: Duration| {
        let count = parts.len() as u64;
        let mut frames = vec![(start.clone(), Duration::ZERO)];
        frames.push((
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            Duration::ZERO,
        ));
        frames.push((ev("ping", json!({"type": "ping"})), Duration::ZERO));
        for p in parts {
            frames.push((
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
                ),
                pause,
            ));
        }
        frames.push((ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})), Duration::ZERO));
        frames.extend(stop("end_turn", count).into_iter().map(|f| (f, Duration::ZERO)));
        frames
    };
    match reply {
        Reply::Text(t) => sse_response(text_frames(words(&t), Duration::ZERO), End::Done),
        Reply::Chunks(parts, pause) => sse_response(text_frames(parts, pause), End::Done),
        Reply::ToolCall { name, args } => {
            let args = args.to_string();
            let (a, b) = args.split_at(args.len() / 2);
            let mut frames = vec![
                start,
                ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": format!("toolu_{n}"), "name": name, "input": {}}}),
                ),
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": a}}),
                ),
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": b}}),
                ),
                ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ];
            frames.extend(stop("tool_use", 5));
            sse_response(frames.into_iter().map(|f| (f, Duration::ZERO)).collect(), End::Done)
        }
        Reply::Error { status, message, retry_after } => {
            let kind = if status == 429 { "rate_limit_error" } else { "api_error" };
            error_response(status, &message, retry_after, kind)
        }
        Reply::Overflow => error_response(
            400,
            &format!("prompt is too long: {prompt} tokens > 1000 maximum"),
            None,
            "invalid_request_error",
        ),
        Reply::Stall => sse_response(vec![(start, Duration::ZERO)], End::Hang),
        Reply::Broken => sse_response(vec![(start, Duration::ZERO)], End::Break),
    }
}

/// The bytes the media endpoints produce.
pub const MOCK_IMAGE: &[u8] = b"\x89PNG mock image";
/// The mp3 bytes of the music endpoint.
pub const MOCK_MUSIC: &[u8] = b"ID3 mock music";
/// The mp4 bytes of the video endpoint.
pub const MOCK_VIDEO: &[u8] = b"mock mp4 video";

fn record_media(shared: &Shared, path: &str, body: &Bytes) -> Value {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    shared.media.lock().unwrap_or_else(|p| p.into_inner()).push(json!({"path": path, "body": parsed}));
    parsed
}

fn refused(body: &Value) -> Option<Response> {
    body["prompt"]
        .as_str()
        .filter(|p| p.contains("FAIL"))
        .map(|_| error_response(400, "Your request was rejected by the safety system.", None, "invalid_request_error"))
}

async fn image(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let b = record_media(&shared, "/v1/images/generations", &body);
    if let Some(r) = refused(&b) {
        return r;
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(MOCK_IMAGE);
    axum::Json(json!({"created": 1, "data": [{"b64_json": b64}]})).into_response()
}

async fn music(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let b = record_media(&shared, "/v1/music_generation", &body);
    if b["prompt"].as_str().is_some_and(|p| p.contains("FAIL")) {
        return axum::Json(json!({"data": null, "base_resp": {"status_code": 1026, "status_msg": "input sensitive"}}))
            .into_response();
    }
    let hex: String = MOCK_MUSIC.iter().map(|b| format!("{b:02x}")).collect();
    axum::Json(json!({"data": {"audio": hex, "status": 2}, "base_resp": {"status_code": 0, "status_msg": "success"}}))
        .into_response()
}

async fn video_create(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let b = record_media(&shared, "/v1/videos", &body);
    if let Some(r) = refused(&b) {
        return r;
    }
    let n = shared.media.lock().unwrap_or_else(|p| p.into_inner()).len();
    axum::Json(json!({"id": format!("video_{n}"), "object": "video", "status": "queued", "progress": 0}))
        .into_response()
}

async fn video_status(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let polls = {
        let mut p = shared.video_polls.lock().unwrap_or_else(|p| p.into_inner());
        let n = p.entry(id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    // In progress once, then done: the client has to poll.
    let held = shared.hold_videos.load(std::sync::atomic::Ordering::SeqCst);
    let status = if polls < 2 || held { "in_progress" } else { "completed" };
    axum::Json(json!({"id": id, "object": "video", "status": status, "progress": if status == "completed" { 100 } else { 50 }})).into_response()
}

async fn video_content(axum::extract::Path(_id): axum::extract::Path<String>) -> Response {
    (StatusCode::OK, [("content-type", "video/mp4")], MOCK_VIDEO).into_response()
}
