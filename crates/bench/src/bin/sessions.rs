//! `homarus-bench-sessions`: session store and lifecycle figures.
//!
//! 1. `sessions.list` (first page of 50, newest first) and `sessions.patch` latency over the WebSocket
//!    with N stored sessions (default 100,000), against an in-process gateway on loopback.
//! 2. Transcript append throughput (each append synced to disk).
//! 3. The shutdown drain of M active sessions (default 10,000) with one fast observing plugin process.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::Message;

use homarus_hooks::{drain_active_sessions, ActiveSession, ActiveSessionTracker, HookRunner};
use homarus_store::{append_entries, create_transcript, SessionRow, Store};

#[derive(Parser, Debug)]
struct Args {
    /// Stored sessions for the list/patch figures.
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
    /// Calls per measured method.
    #[arg(long, default_value_t = 500)]
    calls: usize,
    /// Transcript appends.
    #[arg(long, default_value_t = 2_000)]
    appends: usize,
    /// Active sessions for the drain.
    #[arg(long, default_value_t = 10_000)]
    drain: usize,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((p / 100.0) * (v.len() - 1) as f64).round() as usize]
}

fn row(i: usize, now: i64) -> SessionRow {
    SessionRow {
        key: format!("agent:main:bench-{i:06}"),
        session_id: format!("00000000-0000-4000-8000-{i:012}"),
        agent_id: "main".into(),
        session_file: format!("/nonexistent/{i}.jsonl"),
        chat_type: "direct".into(),
        created_via: "operator".into(),
        created_at_ms: now - 1_000_000 + i as i64,
        updated_at_ms: now - 1_000_000 + i as i64,
        session_started_at_ms: now - 1_000_000 + i as i64,
        last_interaction_at_ms: None,
        message_count: 0,
        label: None,
        display_name: None,
        prefs: Map::new(),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn call(ws: &mut Ws, id: usize, method: &str, params: Value) -> Result<Value> {
    let id = format!("r{id}");
    ws.send(Message::Text(json!({"type":"req","id":id,"method":method,"params":params}).to_string().into())).await?;
    loop {
        let Some(msg) = ws.next().await else { bail!("closed") };
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == "res" && v["id"] == id.as_str() {
                if v["ok"] != true {
                    bail!("{method} failed: {v}");
                }
                return Ok(v["payload"].clone());
            }
        }
    }
}

async fn rpc_figures(args: &Args, dir: &std::path::Path) -> Result<Value> {
    // A fixed base time keeps the rows' order (newest = highest index) reproducible.
    let now = 1_800_000_000_000;
    let store = Store::open(&dir.join("state.sqlite"))?;
    let rows: Vec<SessionRow> = (0..args.sessions).map(|i| row(i, now)).collect();
    let t = Instant::now();
    for chunk in rows.chunks(10_000) {
        store.insert_sessions(chunk)?;
    }
    let seed_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(store);

    let config = dir.join("homarus.json");
    let mut opts = homarus_gateway::GatewayOptions::new(dir.to_path_buf(), config.clone());
    opts.port = Some(0);
    opts.token = Some("bench".into());
    let t = Instant::now();
    let gw = homarus_gateway::Gateway::start(opts, homarus_config::load_file(&config)?).await?;
    let start_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}", gw.addr)).await?;
    let _challenge = ws.next().await;
    let connect = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"bench","platform":"linux","mode":"cli"},
        "auth":{"token":"bench"},"role":"operator","scopes":["operator.admin"]});
    call(&mut ws, 0, "connect", connect).await.context("connect")?;

    let mut list = Vec::new();
    for i in 0..args.calls + 10 {
        let t = Instant::now();
        let page = call(&mut ws, i + 1, "sessions.list", json!({"limit": 50})).await?;
        if i >= 10 {
            list.push(t.elapsed().as_secs_f64() * 1e6);
        }
        if page["sessions"].as_array().map(Vec::len) != Some(50.min(args.sessions)) {
            bail!("unexpected page: {}", page["count"]);
        }
    }
    let mut patch = Vec::new();
    for i in 0..args.calls + 10 {
        let key = format!("agent:main:bench-{:06}", (i * 7919) % args.sessions);
        let t = Instant::now();
        call(&mut ws, 100_000 + i, "sessions.patch", json!({"key": key, "pinned": i % 2 == 0})).await?;
        if i >= 10 {
            patch.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let _ = ws.close(None).await;
    gw.close("bench", None).await;
    Ok(json!({
        "storedSessions": args.sessions,
        "seedMs": seed_ms,
        "gatewayStartMs": start_ms,
        "sessionsList50": {"n": list.len(), "medianUs": pct(&mut list, 50.0), "p99Us": pct(&mut list, 99.0)},
        "sessionsPatch": {"n": patch.len(), "medianUs": pct(&mut patch, 50.0), "p99Us": pct(&mut patch, 99.0)},
    }))
}

fn append_figures(args: &Args, dir: &std::path::Path) -> Result<Value> {
    let path = dir.join("append.jsonl");
    create_transcript(&path, "bench", "/", 0)?;
    let entry = json!({"type":"message","id":"x","parentId":null,"message":{"role":"user","content":"a typical short chat message of about eighty characters, give or take","timestamp":0}});
    let t = Instant::now();
    for _ in 0..args.appends {
        append_entries(&path, std::slice::from_ref(&entry))?;
    }
    let single = args.appends as f64 / t.elapsed().as_secs_f64();
    let batch: Vec<Value> = (0..100).map(|_| entry.clone()).collect();
    let t = Instant::now();
    let rounds = (args.appends / 100).max(1);
    for _ in 0..rounds {
        append_entries(&path, &batch)?;
    }
    let batched = (rounds * 100) as f64 / t.elapsed().as_secs_f64();
    Ok(json!({"syncedAppendsPerSec": single, "entriesPerSecIn100EntryAppends": batched}))
}

async fn drain_figures(args: &Args, dir: &std::path::Path) -> Result<Value> {
    let plugin_dir = dir.join("null-observer");
    std::fs::create_dir_all(&plugin_dir)?;
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/null-observer");
    for f in ["homarus.plugin.json", "observer.py"] {
        std::fs::copy(src.join(f), plugin_dir.join(f))?;
    }
    let runner = Arc::new(HookRunner::new());
    let host = homarus_plugins::PluginHost::start(
        std::slice::from_ref(&plugin_dir),
        &Default::default(),
        runner.clone(),
        "bench",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.statuses().first().map(|s| s.state) != Some("running") {
        if Instant::now() > deadline {
            bail!("plugin did not start: {:?}", host.statuses());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tracker = ActiveSessionTracker::new();
    for i in 0..args.drain {
        tracker.note(ActiveSession {
            session_id: format!("s{i}"),
            session_key: format!("agent:main:s{i}"),
            agent_id: Some("main".into()),
            session_file: None,
            started_at_ms: 0,
        });
    }
    let payload = |s: &ActiveSession| {
        (
            json!({"sessionId": s.session_id, "sessionKey": s.session_key, "messageCount": 0, "reason": "shutdown"}),
            json!({"sessionId": s.session_id}),
        )
    };
    let t = Instant::now();
    let out = drain_active_sessions(&tracker, &runner, Duration::from_secs(2), payload).await;
    let drain_ms = t.elapsed().as_secs_f64() * 1000.0;
    host.stop().await;
    let delivered: usize = std::fs::read_to_string(plugin_dir.join("count.txt"))?.trim().parse()?;
    Ok(
        json!({"activeSessions": args.drain, "drainMs": drain_ms, "timedOut": out.timed_out, "deliveredToPlugin": delivered}),
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = std::env::temp_dir().join(format!("homarus-bench-sessions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<Value> {
        let rpc = rt.block_on(rpc_figures(&args, &dir.join("rpc")))?;
        let appends = append_figures(&args, &dir)?;
        let drain = rt.block_on(drain_figures(&args, &dir))?;
        Ok(json!({"rpc": rpc, "transcripts": appends, "drain": drain}))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    if args.json {
        println!("{r}");
    } else {
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    Ok(())
}
