//! An in-process gateway for the benchmark drivers: a fresh state folder with `config`, started on a
//! loopback port with the token `bench`, and an admin WebSocket connection to it.
use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket connection to the gateway.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A running in-process gateway and one connected client.
pub struct InProcess {
    /// The gateway (close it with `gw.close(..)`).
    pub gw: homarus_gateway::RunningGateway,
    /// An operator connection with `operator.admin`.
    pub ws: Ws,
    _dir: tempfile::TempDir,
}

/// Start a gateway with `config` and connect to it.
pub async fn start(config: Value) -> Result<InProcess> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("homarus.json");
    std::fs::write(&path, config.to_string())?;
    let mut opts = homarus_gateway::GatewayOptions::new(dir.path().to_path_buf(), path.clone());
    opts.port = Some(0);
    opts.token = Some("bench".into());
    let gw = homarus_gateway::Gateway::start(opts, homarus_config::load_file(&path)?).await?;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}", gw.addr)).await?;
    let _challenge = ws.next().await;
    let connect = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"bench","platform":"linux","mode":"cli"},
        "auth":{"token":"bench"},"role":"operator","scopes":["operator.admin"]});
    call(&mut ws, "c", "connect", connect).await.context("connect")?;
    Ok(InProcess { gw, ws, _dir: dir })
}

/// Call `method` and wait for its response (events in between are skipped).
pub async fn call(ws: &mut Ws, id: &str, method: &str, params: Value) -> Result<Value> {
    ws.send(Message::Text(json!({"type":"req","id":id,"method":method,"params":params}).to_string().into())).await?;
    loop {
        let Some(msg) = ws.next().await else { bail!("closed") };
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == "res" && v["id"] == id {
                if v["ok"] != true {
                    bail!("{method} failed: {v}");
                }
                return Ok(v["payload"].clone());
            }
        }
    }
}
