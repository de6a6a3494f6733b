//! A minimal protocol-v4 client for the CLI: challenge, connect, one request, close.
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use homarus_protocol::{OPERATOR_SCOPES, PROTOCOL_VERSION};

use crate::cli::ClientArgs;
use crate::run::{config_path, state_dir};

/// A gateway refusal, kept separate from transport failures so `--json` can print it as OpenClaw does.
#[derive(Debug)]
pub struct GatewayRefusal(pub Value);

impl std::fmt::Display for GatewayRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.0.get("code").and_then(Value::as_str).unwrap_or("ERROR");
        let msg = self.0.get("message").and_then(Value::as_str).unwrap_or("");
        write!(f, "gateway error {code}: {msg}")
    }
}

impl std::error::Error for GatewayRefusal {}

fn resolve_target(args: &ClientArgs) -> Result<(String, Value)> {
    let explicit = args.token.is_some() || args.password.is_some();
    let mut auth = serde_json::Map::new();
    if let Some(t) = &args.token {
        auth.insert("token".into(), json!(t));
    }
    if let Some(p) = &args.password {
        auth.insert("password".into(), json!(p));
    }
    if let Some(url) = &args.url {
        // Like OpenClaw: an explicit URL never receives credentials implicitly.
        if !explicit {
            match std::env::var("HOMARUS_GATEWAY_TOKEN").ok().filter(|t| !t.is_empty()) {
                Some(t) => {
                    auth.insert("token".into(), json!(t));
                }
                None => bail!(
                    "--url requires explicit credentials: pass --token or --password (or set HOMARUS_GATEWAY_TOKEN)"
                ),
            }
        }
        return Ok((url.clone(), Value::Object(auth)));
    }
    let loaded = homarus_config::load_file(&config_path()).map_err(|e| anyhow!("invalid config: {e}"))?;
    let url = format!("ws://127.0.0.1:{}", loaded.config.port());
    if !explicit {
        let token = std::env::var("HOMARUS_GATEWAY_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| loaded.config.gateway.auth.token.clone())
            .or_else(|| std::fs::read_to_string(state_dir().join("gateway-token")).ok().map(|t| t.trim().to_string()));
        if let Some(t) = token {
            auth.insert("token".into(), json!(t));
        }
        if let Some(p) =
            std::env::var("HOMARUS_GATEWAY_PASSWORD").ok().or_else(|| loaded.config.gateway.auth.password.clone())
        {
            auth.insert("password".into(), json!(p));
        }
    }
    Ok((url, Value::Object(auth)))
}

/// Connect, call `method`, and return its payload (or the gateway's error as [`GatewayRefusal`]).
pub async fn call(args: &ClientArgs, method: &str, params: Option<Value>) -> Result<Value> {
    let (url, auth) = resolve_target(args)?;
    let deadline = Duration::from_millis(args.timeout);
    tokio::time::timeout(deadline, call_inner(&url, auth, method, params))
        .await
        .map_err(|_| anyhow!("gateway at {url} did not answer within {}ms", args.timeout))?
}

async fn call_inner(url: &str, auth: Value, method: &str, params: Option<Value>) -> Result<Value> {
    let mut conn = Connection::open(url, auth).await?;
    let res = conn.request(method, params).await?;
    conn.close().await;
    if res.get("ok") == Some(&Value::Bool(true)) {
        Ok(res.get("payload").cloned().unwrap_or(Value::Null))
    } else {
        Err(GatewayRefusal(res.get("error").cloned().unwrap_or(Value::Null)).into())
    }
}

/// An open, authenticated connection to the gateway (for commands that stream events).
pub struct Connection {
    ws: Ws,
    next_id: u64,
    /// Frames received while waiting for a response, oldest first.
    pending: std::collections::VecDeque<Value>,
}

impl Connection {
    /// Connect to the gateway `args` point at.
    pub async fn connect(args: &ClientArgs) -> Result<Self> {
        let (url, auth) = resolve_target(args)?;
        tokio::time::timeout(Duration::from_millis(args.timeout), Self::open(&url, auth))
            .await
            .map_err(|_| anyhow!("gateway at {url} did not answer within {}ms", args.timeout))?
    }

    async fn open(url: &str, auth: Value) -> Result<Self> {
        let (ws, _) =
            tokio_tungstenite::connect_async(url).await.with_context(|| format!("cannot connect to {url}"))?;
        let mut conn = Self { ws, next_id: 0, pending: Default::default() };
        // 1. The challenge.
        let challenge = next_json(&mut conn.ws).await?;
        if challenge.get("event").and_then(Value::as_str) != Some("connect.challenge") {
            bail!("unexpected first frame from {url}: expected connect.challenge");
        }
        // 2. connect.
        let params = json!({
            "minProtocol": PROTOCOL_VERSION, "maxProtocol": PROTOCOL_VERSION,
            "client": {"id": "cli", "version": env!("CARGO_PKG_VERSION"), "platform": std::env::consts::OS, "mode": "cli"},
            "caps": [], "auth": auth, "role": "operator", "scopes": OPERATOR_SCOPES,
        });
        let hello = conn.request("connect", Some(params)).await?;
        if hello.get("ok") != Some(&Value::Bool(true)) {
            return Err(GatewayRefusal(hello.get("error").cloned().unwrap_or(Value::Null)).into());
        }
        conn.pending.clear();
        Ok(conn)
    }

    /// Send a request and wait for its (first) response frame; events are kept for [`Self::next`].
    pub async fn request(&mut self, method: &str, params: Option<Value>) -> Result<Value> {
        let id = self.send(method, params).await?;
        self.response(&id).await
    }

    /// Send a request; returns its id.
    pub async fn send(&mut self, method: &str, params: Option<Value>) -> Result<String> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let mut req = json!({"type": "req", "id": id, "method": method});
        if let Some(p) = params {
            req["params"] = p;
        }
        self.ws.send(Message::Text(req.to_string().into())).await?;
        Ok(id)
    }

    /// The next response frame for request `id`.
    pub async fn response(&mut self, id: &str) -> Result<Value> {
        loop {
            let v = next_json(&mut self.ws).await?;
            if v.get("type").and_then(Value::as_str) == Some("res") && v.get("id").and_then(Value::as_str) == Some(id) {
                return Ok(v);
            }
            self.pending.push_back(v);
        }
    }

    /// The next frame (a kept one first).
    pub async fn next(&mut self) -> Result<Value> {
        match self.pending.pop_front() {
            Some(v) => Ok(v),
            None => next_json(&mut self.ws).await,
        }
    }

    /// Close politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).context("gateway sent invalid JSON"),
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| format!("{} {}", f.code, f.reason)).unwrap_or_default();
                bail!("gateway closed the connection {why}");
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("gateway closed the connection"),
        }
    }
}

/// Call and print: the payload as JSON (`--json`: one compact document), or the error with exit 1.
pub async fn call_and_print(args: &ClientArgs, method: &str, params: Option<Value>) -> Result<ExitCode> {
    match call(args, method, params).await {
        Ok(payload) => {
            if args.json {
                println!("{payload}");
            } else {
                println!("{}", serde_json::to_string_pretty(&payload).unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => match e.downcast::<GatewayRefusal>() {
            Ok(refusal) if args.json => {
                let mut err = refusal.0.clone();
                if let Some(o) = err.as_object_mut() {
                    o.insert("type".into(), json!("gateway_request_error"));
                }
                println!("{}", json!({"ok": false, "error": err}));
                Ok(ExitCode::FAILURE)
            }
            Ok(refusal) => Err(refusal.into()),
            Err(other) => Err(other),
        },
    }
}
