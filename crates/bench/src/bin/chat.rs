//! `homarus-bench-chat`: the gateway's overhead on a chat turn, against any protocol-v4 gateway
//! (Homarus or OpenClaw) already running and configured with an instant model (`homarus-mockllm`).
//!
//! 1. Sequential turns on one session: from sending `chat.send` to its ack, to the first `chat`
//!    delta, and to the `chat` final (median, p99).
//! 2. Throughput: `--sessions` connections, each sending `--turns-each` turns to its own session,
//!    all at once: turns completed per second.
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    /// Gateway WebSocket URL.
    #[arg(long)]
    url: String,
    /// Shared token.
    #[arg(long)]
    token: String,
    /// Name in the report.
    #[arg(long, default_value = "gateway")]
    name: String,
    /// Sequential turns measured on one session (after 3 warm-up turns).
    #[arg(long, default_value_t = 200)]
    turns: usize,
    /// Concurrent sessions for the throughput figure.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Turns per session in the throughput figure.
    #[arg(long, default_value_t = 10)]
    turns_each: usize,
    /// Give up on one turn after this many seconds.
    #[arg(long, default_value_t = 60)]
    turn_timeout: u64,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, token: &str) -> Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("connect {url}"))?;
    let _challenge = ws.next().await;
    let connect = json!({"type":"req","id":"c","method":"connect","params":{"minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"bench","platform":"linux","mode":"cli"},"role":"operator",
        "scopes":["operator.read","operator.write"],"caps":[],"auth":{"token":token}}});
    ws.send(Message::Text(connect.to_string().into())).await?;
    loop {
        let Some(msg) = ws.next().await else { bail!("closed during connect") };
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == "res" && v["id"] == "c" {
                if v["ok"] != true {
                    bail!("connect refused: {v}");
                }
                return Ok(ws);
            }
        }
    }
}

/// Times of one turn, in µs from sending: ack, first delta, final.
struct Turn {
    ack: f64,
    first: f64,
    fin: f64,
}

async fn turn(ws: &mut Ws, session: &str, run_id: &str, timeout: Duration) -> Result<Turn> {
    let started = Instant::now();
    let req = json!({"type":"req","id":run_id,"method":"chat.send","params":{"sessionKey":session,"message":format!("turn {run_id}"),"deliver":false,"idempotencyKey":run_id}});
    ws.send(Message::Text(req.to_string().into())).await?;
    let (mut ack, mut first) = (None, None);
    let work = async {
        loop {
            let Some(msg) = ws.next().await else { bail!("closed during a turn") };
            let Message::Text(t) = msg? else { continue };
            let v: Value = serde_json::from_str(&t)?;
            let at = started.elapsed().as_secs_f64() * 1e6;
            if v["type"] == "res" && v["id"] == run_id {
                if v["ok"] != true {
                    bail!("chat.send refused: {v}");
                }
                ack = Some(at);
                continue;
            }
            let p = &v["payload"];
            if v["event"] != "chat" || p["runId"] != run_id {
                continue;
            }
            match p["state"].as_str() {
                Some("delta") if first.is_none() => first = Some(at),
                Some("final") => {
                    return Ok(Turn { ack: ack.unwrap_or(at), first: first.unwrap_or(at), fin: at });
                }
                Some("error") | Some("aborted") => bail!("turn failed: {v}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, work).await.context("turn timed out")?
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((p / 100.0) * (v.len() - 1) as f64).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let timeout = Duration::from_secs(args.turn_timeout);
    let tag = std::process::id();
    let mut ws = connect(&args.url, &args.token).await?;
    let session = format!("agent:main:bench-seq-{tag}");
    for i in 0..3 {
        turn(&mut ws, &session, &format!("w{tag}-{i}"), timeout).await?;
    }
    let (mut acks, mut firsts, mut finals) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..args.turns {
        let t = turn(&mut ws, &session, &format!("s{tag}-{i}"), timeout).await?;
        acks.push(t.ack);
        firsts.push(t.first);
        finals.push(t.fin);
    }
    drop(ws);

    let mut tasks = Vec::new();
    let started = Instant::now();
    for s in 0..args.sessions {
        let (url, token) = (args.url.clone(), args.token.clone());
        let each = args.turns_each;
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&url, &token).await?;
            let session = format!("agent:main:bench-par-{tag}-{s}");
            for i in 0..each {
                turn(&mut ws, &session, &format!("p{tag}-{s}-{i}"), timeout).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = (args.sessions * args.turns_each) as f64;
    let report = json!({
        "name": args.name,
        "turns": args.turns,
        "ackUs": {"median": pct(&mut acks, 50.0), "p99": pct(&mut acks, 99.0)},
        "firstDeltaUs": {"median": pct(&mut firsts, 50.0), "p99": pct(&mut firsts, 99.0)},
        "finalUs": {"median": pct(&mut finals, 50.0), "p99": pct(&mut finals, 99.0)},
        "concurrent": {"sessions": args.sessions, "turnsEach": args.turns_each, "seconds": elapsed, "turnsPerSec": total / elapsed},
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
