//! Test harness: a real gateway on an ephemeral loopback port and a real WebSocket client that
//! checks every frame it receives against OpenClaw's JSON Schemas.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use homarus_gateway::{Gateway, GatewayOptions, RunningGateway};

pub const TOKEN: &str = "test-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

fn load(name: &str) -> Value {
    let path = format!("{}/tests/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file")).expect("schema json")
}

struct Validators {
    response: jsonschema::Validator,
    event: jsonschema::Validator,
    error: jsonschema::Validator,
    hello: jsonschema::Validator,
    payloads: Value,
}

static VALIDATORS: LazyLock<Validators> = LazyLock::new(|| Validators {
    response: jsonschema::validator_for(&load("ResponseFrame.schema.json")).unwrap(),
    event: jsonschema::validator_for(&load("EventFrame.schema.json")).unwrap(),
    error: jsonschema::validator_for(&load("ErrorShape.schema.json")).unwrap(),
    hello: jsonschema::validator_for(&load("HelloOk.schema.json")).unwrap(),
    payloads: load("payloads.json"),
});

/// Validate `instance` against the named payload schema from `payloads.json`.
pub fn assert_payload_schema(name: &str, instance: &Value) {
    let schema = &VALIDATORS.payloads["schemas"][name];
    assert!(!schema.is_null(), "no schema {name}");
    let v = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{name} violations: {errors:?}\n{instance}");
}

fn check(v: &jsonschema::Validator, what: &str, instance: &Value) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} violates the OpenClaw schema: {errors:?}\n{instance}");
}

/// Every frame the gateway sends must match the protocol schemas.
pub fn validate_server_frame(frame: &Value) {
    match frame["type"].as_str() {
        Some("res") => {
            check(&VALIDATORS.response, "response frame", frame);
            if let Some(err) = frame.get("error") {
                check(&VALIDATORS.error, "error shape", err);
            }
            if frame["payload"]["type"] == "hello-ok" {
                check(&VALIDATORS.hello, "hello-ok", &frame["payload"]);
            }
        }
        Some("event") => {
            check(&VALIDATORS.event, "event frame", frame);
            match frame["event"].as_str() {
                Some("tick") => assert_payload_schema("TickEventSchema", &frame["payload"]),
                Some("shutdown") => assert_payload_schema("ShutdownEventSchema", &frame["payload"]),
                // `agent` events are not checked: OpenClaw's AgentEventSchema forbids the
                // sessionKey/agentId/sessionId fields its own gateway sends (see the captured frames).
                Some("chat") => assert_payload_schema("ChatEventSchema", &frame["payload"]),
                _ => {}
            }
        }
        other => panic!("unexpected frame type {other:?}: {frame}"),
    }
}

pub struct TestGateway {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub running: Option<RunningGateway>,
}

impl TestGateway {
    /// Start with this config file text (the token is always `TOKEN` unless the config says otherwise).
    pub async fn start_with(config: Option<&str>) -> Self {
        Self::start_tuned(config, |_| {}).await
    }

    /// Start with a config and adjusted options (e.g. shorter protocol timers).
    pub async fn start_tuned(config: Option<&str>, tune: impl FnOnce(&mut GatewayOptions)) -> Self {
        Self::start_dir(tempfile::tempdir().unwrap(), config, tune).await
    }

    /// Start again in the state folder of a closed gateway (a restart).
    pub async fn start_in(dir: tempfile::TempDir, config: Option<&str>) -> Self {
        Self::start_dir(dir, config, |_| {}).await
    }

    async fn start_dir(dir: tempfile::TempDir, config: Option<&str>, tune: impl FnOnce(&mut GatewayOptions)) -> Self {
        let config_path = dir.path().join("homarus.json");
        if let Some(text) = config {
            std::fs::write(&config_path, text).unwrap();
        }
        let mut opts = GatewayOptions::new(dir.path().to_path_buf(), config_path.clone());
        opts.port = Some(0);
        let loaded = homarus_config::load_file(&config_path).unwrap();
        if loaded.config.gateway.auth.token.is_none() && loaded.config.gateway.auth.mode.is_none() {
            opts.token = Some(TOKEN.to_string());
        }
        tune(&mut opts);
        let running = Gateway::start(opts, loaded).await.unwrap();
        Self { addr: running.addr, running: Some(running), dir }
    }

    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("homarus.json")
    }

    pub async fn close(&mut self, reason: &str, restart: Option<u64>) -> homarus_gateway::ShutdownReport {
        self.running.take().unwrap().close(reason, restart).await
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pub challenge: Value,
    next_id: u64,
    /// Events received while waiting for responses.
    pub events: Vec<Value>,
}

/// How the socket ended.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16, String),
    NoFrame,
}

impl Client {
    /// Open a socket and read the challenge. `forwarded_for` sets `X-Forwarded-For`.
    pub async fn open(url: &str, forwarded_for: Option<&str>) -> Self {
        let mut req = url.into_client_request().unwrap();
        if let Some(ip) = forwarded_for {
            req.headers_mut().insert("x-forwarded-for", ip.parse().unwrap());
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await.unwrap().unwrap();
        let mut c = Self { ws, challenge: Value::Null, next_id: 0, events: Vec::new() };
        let challenge = c.recv().await.expect("challenge");
        assert_eq!(challenge["event"], "connect.challenge");
        assert!(challenge.get("seq").is_none(), "the challenge carries no seq");
        assert!(challenge["payload"]["nonce"].as_str().is_some_and(|n| !n.is_empty()));
        assert!(challenge["payload"]["ts"].as_i64().is_some());
        c.challenge = challenge["payload"].clone();
        c
    }

    pub fn nonce(&self) -> String {
        self.challenge["nonce"].as_str().unwrap().to_string()
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON frame (validated), or None when the socket closed.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.expect("timed out waiting for a frame");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("server sent JSON");
                    validate_server_frame(&v);
                    return Some(v);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Read until the socket closes; returns the close code.
    pub async fn closed(&mut self) -> Closed {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => return Closed::Code(f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Closed::NoFrame,
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    validate_server_frame(&v);
                    self.events.push(v);
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Send a request and wait for its response frame, keeping events aside.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = format!("{}:{}", self.next_id, uuid::Uuid::new_v4());
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.send_text(frame.to_string()).await;
        loop {
            let v = self.recv().await.unwrap_or_else(|| panic!("socket closed while waiting for {method}"));
            if v["type"] == "res" && v["id"] == id {
                return v;
            }
            self.events.push(v);
        }
    }

    /// Call `method` until its payload satisfies `ok` (bounded: 20 s); returns that payload.
    pub async fn until(&mut self, method: &str, params: Value, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.call(method, params.clone()).await;
            if ok(&v) {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{method} never satisfied: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A successful call's payload.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let res = self.request(method, params).await;
        assert_eq!(res["ok"], true, "{method} failed: {res}");
        res["payload"].clone()
    }
}

/// The connect params the real `openclaw gateway call` sends.
pub fn cli_connect(token: &str, scopes: &[&str]) -> Value {
    json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"cli","instanceId":"7e75039f"},
        "caps":[],"auth":{"token":token},"role":"operator","scopes":scopes})
}

pub const ALL_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk.secrets",
];

/// Open and connect as the CLI with all scopes; returns the client and the hello payload.
pub async fn connect_cli(url: &str) -> (Client, Value) {
    let mut c = Client::open(url, None).await;
    let hello = c.request("connect", cli_connect(TOKEN, ALL_SCOPES)).await;
    assert_eq!(hello["ok"], true, "{hello}");
    (c, hello["payload"].clone())
}

/// A device identity that signs like the TUI (v3) or the Control UI / openclaw-node (v2).
pub struct Device {
    pub key: SigningKey,
}

impl Device {
    pub fn new(seed: u8) -> Self {
        Self { key: SigningKey::from_bytes(&[seed; 32]) }
    }

    pub fn id(&self) -> String {
        homarus_protocol::device_id_for_public_key(&self.key.verifying_key().to_bytes())
    }

    /// TUI-shaped connect params signed with `version` ("v2" or "v3") over `nonce`.
    pub fn connect(&self, version: &str, nonce: &str, auth: Value, signed_token: &str) -> Value {
        let scopes = ["operator.admin", "operator.read", "operator.write", "operator.approvals"];
        let signed_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let mut payload = format!(
            "{version}|{}|openclaw-tui|ui|operator|{}|{signed_at}|{signed_token}|{nonce}",
            self.id(),
            scopes.join(",")
        );
        if version == "v3" {
            payload.push_str("|linux|linux");
        }
        let sig = self.key.sign(payload.as_bytes());
        json!({"minProtocol":4,"maxProtocol":4,
            "client":{"id":"openclaw-tui","displayName":"openclaw-tui","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"ui","instanceId":"50d1"},
            "caps":["tool-events"],"auth":auth,"role":"operator","scopes":scopes,
            "device":{"id":self.id(),"publicKey":URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes()),
                "signature":URL_SAFE_NO_PAD.encode(sig.to_bytes()),"signedAt":signed_at,"nonce":nonce}})
    }
}

/// The texts of the tool results in a `chat.history` answer, in order.
pub fn tool_results(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "toolResult")
        .map(|m| m["content"][0]["text"].as_str().unwrap_or_default().to_string())
        .collect()
}
