//! The QA message bus (`../shared/reference/qa-bus.md`): the server side the `qa-channel` polls.
//!
//! State is a list of messages and a list of events with a monotonic cursor. `POST /v1/poll`
//! answers as soon as there are events after the caller's cursor, or empty at its timeout.
//! A test injects with `POST /v1/inbound/message` and reads the gateway's messages back from
//! `/v1/state` or waits for one with `POST /v1/wait`. Binds 127.0.0.1 only; stops when dropped.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Most messages and events kept (oldest dropped first).
const MAX_KEPT: usize = 10_000;

#[derive(Default)]
struct Inner {
    cursor: u64,
    messages: Vec<Value>,
    events: Vec<Value>,
    threads: Vec<Value>,
    conversations: Vec<Value>,
}

#[derive(Clone, Default)]
struct Bus {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl Bus {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_event(&self, inner: &mut Inner, kind: &str, message: Value) {
        inner.cursor += 1;
        inner.events.push(json!({"cursor": inner.cursor, "kind": kind, "message": message}));
        if inner.events.len() > MAX_KEPT {
            inner.events.remove(0);
        }
        self.changed.notify_waiters();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response()
}

/// A running bus.
pub struct QaBus {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    http: reqwest::Client,
}

impl Drop for QaBus {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl QaBus {
    /// Start on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(0).await
    }

    /// Start on `127.0.0.1:port`.
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let bus = Bus::default();
        let app = Router::new()
            .route("/health", get(|| async { Json(json!({"ok": true})) }))
            .route("/v1/state", get(state))
            .route("/v1/poll", post(poll))
            .route("/v1/inbound/message", post(inbound))
            .route("/v1/outbound/message", post(outbound))
            .route("/v1/actions/thread-create", post(thread_create))
            .route("/v1/wait", post(wait))
            .route("/v1/reset", post(reset))
            .with_state(bus);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(QaBus { addr, stop: Some(tx), http: reqwest::Client::new() })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn call(&self, route: &str, body: Value) -> Value {
        let resp = self.http.post(format!("{}{route}", self.url())).json(&body).send().await.expect("bus reachable");
        resp.json().await.expect("bus answers JSON")
    }

    /// Inject a message as `sender` into a conversation (`kind`: direct, group, channel).
    pub async fn inject(
        &self,
        kind: &str,
        conversation: &str,
        sender: &str,
        text: &str,
        thread: Option<&str>,
    ) -> Value {
        let body = json!({"conversation": {"id": conversation, "kind": kind}, "senderId": sender,
                          "senderName": sender, "text": text, "threadId": thread});
        self.call("/v1/inbound/message", body).await["message"].clone()
    }

    /// Wait up to `timeout` for an outbound message whose `to` target is `to` and whose text contains
    /// `contains`; `None` on timeout.
    pub async fn wait_outbound(&self, to: &str, contains: &str, timeout: Duration) -> Option<Value> {
        let body = json!({"direction": "outbound", "to": to, "textContains": contains, "timeoutMs": timeout.as_millis() as u64});
        let v = self.call("/v1/wait", body).await;
        v.get("message").filter(|m| !m.is_null()).cloned()
    }

    /// Every outbound message so far.
    pub async fn outbound(&self) -> Vec<Value> {
        let v: Value =
            self.http.get(format!("{}/v1/state", self.url())).send().await.expect("bus").json().await.expect("json");
        v["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["direction"] == "outbound")
            .collect()
    }
}

async fn state(State(bus): State<Bus>) -> Json<Value> {
    let i = bus.lock();
    Json(json!({"cursor": i.cursor, "conversations": i.conversations, "threads": i.threads,
                "messages": i.messages, "events": i.events}))
}

async fn poll(State(bus): State<Bus>, Json(req): Json<Value>) -> Json<Value> {
    let after = req["cursor"].as_u64().unwrap_or(0);
    let timeout = Duration::from_millis(req["timeoutMs"].as_u64().unwrap_or(1000).min(30_000));
    let limit = req["limit"].as_u64().unwrap_or(100).clamp(1, 500) as usize;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = bus.changed.notified();
        {
            let i = bus.lock();
            let events: Vec<Value> =
                i.events.iter().filter(|e| e["cursor"].as_u64().unwrap_or(0) > after).take(limit).cloned().collect();
            if !events.is_empty() {
                let cursor = events.last().and_then(|e| e["cursor"].as_u64()).unwrap_or(after);
                return Json(json!({"cursor": cursor, "events": events}));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Json(json!({"cursor": after, "events": []}));
        }
    }
}

fn conversation_of(c: &Value) -> Option<Value> {
    let id = c["id"].as_str().filter(|s| !s.is_empty())?;
    let kind = match c["kind"].as_str()? {
        "dm" | "direct" => "direct",
        k @ ("group" | "channel") => k,
        _ => return None,
    };
    Some(json!({"id": id, "kind": kind, "title": c["title"]}))
}

async fn inbound(State(bus): State<Bus>, Json(req): Json<Value>) -> Response {
    let Some(conversation) = conversation_of(&req["conversation"]) else {
        return bad("conversation {id, kind} required");
    };
    let Some(sender) = req["senderId"].as_str() else { return bad("senderId required") };
    let message = json!({"id": uuid::Uuid::new_v4().to_string(), "accountId": "default", "direction": "inbound",
        "conversation": conversation, "senderId": sender, "senderName": req["senderName"].as_str().unwrap_or(sender),
        "text": req["text"].as_str().unwrap_or(""), "timestamp": now_ms(), "threadId": req["threadId"],
        "threadTitle": req["threadTitle"], "replyToId": req["replyToId"], "attachments": req["attachments"].as_array().cloned().unwrap_or_default(),
        "reactions": [], "nativeCommand": req["nativeCommand"]});
    let mut i = bus.lock();
    if !i.conversations.iter().any(|c| c["id"] == conversation["id"]) {
        i.conversations.push(conversation);
    }
    i.messages.push(message.clone());
    if i.messages.len() > MAX_KEPT {
        i.messages.remove(0);
    }
    bus.push_event(&mut i, "inbound-message", message.clone());
    Json(json!({"message": message})).into_response()
}

async fn outbound(State(bus): State<Bus>, Json(req): Json<Value>) -> Response {
    let Some(to) = req["to"].as_str() else { return bad("to required") };
    let (kind, id, thread) = match to.split_once(':') {
        Some(("dm", u)) => ("direct", u.to_string(), None),
        Some(("channel", r)) => ("channel", r.to_string(), None),
        Some(("thread", rt)) => match rt.split_once('/') {
            Some((r, t)) => ("channel", r.to_string(), Some(t.to_string())),
            None => return bad("thread:<room>/<thread> expected"),
        },
        _ => return bad("to must be dm:<user>, channel:<room> or thread:<room>/<thread>"),
    };
    let thread = thread.map(Value::from).unwrap_or_else(|| req["threadId"].clone());
    let message = json!({"id": uuid::Uuid::new_v4().to_string(), "accountId": req["accountId"].as_str().unwrap_or("default"),
        "direction": "outbound", "to": to, "conversation": {"id": id, "kind": kind}, "senderId": req["senderId"],
        "senderName": req["senderName"], "text": req["text"].as_str().unwrap_or(""), "timestamp": now_ms(),
        "threadId": thread, "replyToId": req["replyToId"], "attachments": [], "reactions": [], "isError": req["isError"]});
    let mut i = bus.lock();
    i.messages.push(message.clone());
    bus.push_event(&mut i, "outbound-message", message.clone());
    Json(json!({"message": message})).into_response()
}

async fn thread_create(State(bus): State<Bus>, Json(req): Json<Value>) -> Json<Value> {
    let thread = json!({"id": format!("thread-{}", uuid::Uuid::new_v4()), "conversationId": req["conversationId"],
                        "title": req["title"], "createdAt": now_ms()});
    let mut i = bus.lock();
    i.threads.push(thread.clone());
    bus.push_event(&mut i, "thread-created", thread.clone());
    Json(json!({"thread": thread}))
}

async fn wait(State(bus): State<Bus>, Json(req): Json<Value>) -> Json<Value> {
    let timeout = Duration::from_millis(req["timeoutMs"].as_u64().unwrap_or(5000).min(60_000));
    let deadline = tokio::time::Instant::now() + timeout;
    let matches = |m: &Value| {
        req["direction"].as_str().is_none_or(|d| m["direction"] == d)
            && req["to"].as_str().is_none_or(|t| m["to"] == t)
            && req["threadId"].as_str().is_none_or(|t| m["threadId"] == t)
            && req["textContains"].as_str().is_none_or(|t| m["text"].as_str().is_some_and(|x| x.contains(t)))
    };
    loop {
        let notified = bus.changed.notified();
        if let Some(m) = bus.lock().messages.iter().find(|m| matches(m)).cloned() {
            return Json(json!({"message": m}));
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Json(json!({"message": null}));
        }
    }
}

async fn reset(State(bus): State<Bus>) -> Json<Value> {
    let mut i = bus.lock();
    let cursor = i.cursor;
    *i = Inner { cursor, ..Default::default() };
    Json(json!({"ok": true, "cursor": cursor}))
}
