//! `homarus agent --message …` (one turn through the gateway, like `openclaw agent`) and
//! `homarus chat` (an interactive terminal chat that streams replies).
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use crate::cli::ClientArgs;
use crate::client::{Connection, GatewayRefusal};

/// How long one run may take before the CLI gives up waiting.
const RUN_WAIT: Duration = Duration::from_secs(900);

/// `homarus agent`.
pub async fn agent(
    message: String,
    session_key: Option<String>,
    agent_id: Option<String>,
    client: &ClientArgs,
) -> Result<ExitCode> {
    let mut conn = Connection::connect(client).await?;
    let mut params = json!({"message": message, "idempotencyKey": uuid::Uuid::new_v4().to_string(), "deliver": false});
    if let Some(k) = session_key {
        params["sessionKey"] = json!(k);
    }
    if let Some(a) = agent_id {
        params["agentId"] = json!(a);
    }
    let id = conn.send("agent", Some(params)).await?;
    let accepted = conn.response(&id).await?;
    if accepted["ok"] != true {
        return Err(GatewayRefusal(accepted["error"].clone()).into());
    }
    let fin = tokio::time::timeout(RUN_WAIT, conn.response(&id))
        .await
        .map_err(|_| anyhow!("no result after {} s", RUN_WAIT.as_secs()))??;
    conn.close().await;
    if client.json {
        println!("{}", fin["payload"]);
        return Ok(if fin["ok"] == true { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    if fin["ok"] != true {
        bail!("{}", fin["error"]["message"].as_str().unwrap_or("run failed"));
    }
    for p in fin["payload"]["result"]["payloads"].as_array().into_iter().flatten() {
        if let Some(t) = p["text"].as_str() {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print one run's streamed reply; returns when the run ends.
async fn stream_reply(conn: &mut Connection, run_id: &str) -> Result<()> {
    let mut out = std::io::stdout();
    let mut printed = String::new();
    loop {
        let frame = tokio::time::timeout(RUN_WAIT, conn.next()).await.map_err(|_| anyhow!("no reply"))??;
        let p = &frame["payload"];
        if frame["event"] != "chat" || p["runId"] != run_id {
            continue;
        }
        match p["state"].as_str() {
            Some("delta") => {
                let text = p["message"]["content"][0]["text"].as_str().unwrap_or_default();
                if let Some(rest) = text.strip_prefix(printed.as_str()) {
                    print!("{rest}");
                } else {
                    print!("\n{text}");
                }
                printed = text.to_string();
                out.flush()?;
            }
            Some("final") => {
                let text = p["message"]["content"][0]["text"].as_str().unwrap_or_default();
                match text.strip_prefix(printed.as_str()) {
                    Some(rest) => println!("{rest}"),
                    None => println!("{text}"),
                }
                return Ok(());
            }
            Some("aborted") => {
                println!("\n[stopped]");
                return Ok(());
            }
            Some("error") => {
                println!("\n[error] {}", p["errorMessage"].as_str().unwrap_or("run failed"));
                return Ok(());
            }
            _ => {}
        }
    }
}

/// `homarus chat`: read lines, send each with `chat.send`, stream the reply. `/exit` or end of
/// input quits; other `/commands` go to the gateway.
pub async fn chat(session_key: String, client: &ClientArgs) -> Result<ExitCode> {
    let mut conn = Connection::connect(client).await?;
    let history = conn.request("chat.history", Some(json!({"sessionKey": session_key, "limit": 20}))).await?;
    for m in history["payload"]["messages"].as_array().into_iter().flatten() {
        let text = text_of(m);
        if !text.is_empty() {
            println!("{}: {text}", if m["role"] == "user" { "you" } else { "agent" });
        }
    }
    println!("homarus chat · session {session_key} · /exit to quit");
    let stdin = std::io::stdin();
    loop {
        print!("> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/exit" || line == "/quit" {
            break;
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let res = conn
            .request("chat.send", Some(json!({"sessionKey": session_key, "message": line, "idempotencyKey": run_id})))
            .await?;
        if res["ok"] != true {
            println!("[error] {}", res["error"]["message"].as_str().unwrap_or("refused"));
            continue;
        }
        stream_reply(&mut conn, &run_id).await?;
    }
    conn.close().await;
    Ok(ExitCode::SUCCESS)
}

fn text_of(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => String::new(),
    }
}
