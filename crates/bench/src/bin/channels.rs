//! `homarus-bench-channels`: the gateway's overhead on a channel message, through one Telegram account
//! against a fake Bot API (real HTTP on loopback, proper long polling) and an instant model
//! (`homarus-mockllm`).
//!
//! 1. Inbound → reply: one message at a time in one chat, from the update being available to the
//!    bot's `sendMessage` for it (median, p99).
//! 2. Throughput: `--chats` chats each sending `--per-chat` messages at once; messages per second
//!    until every reply was sent, checking that none is lost and that each chat's replies come in
//!    the order of its messages.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use homarus_mockllm::MockLlm;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

#[path = "../inproc.rs"]
mod inproc;

#[derive(Parser, Debug)]
struct Args {
    /// Sequential messages measured (after 5 warm-up messages).
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Chats in the throughput run.
    #[arg(long, default_value_t = 20)]
    chats: usize,
    /// Messages per chat in the throughput run.
    #[arg(long, default_value_t = 50)]
    per_chat: usize,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// The fake Bot API: a queue of updates served by long polling, and every `sendMessage` reported.
#[derive(Clone)]
struct Fake {
    updates: Arc<Mutex<Vec<Value>>>,
    arrived: Arc<Notify>,
    sent: mpsc::Sender<(i64, i64, Instant)>,
}

async fn bot_api(
    State(f): State<Fake>,
    Path((_token, method)): Path<(String, String)>,
    body: Json<Value>,
) -> Json<Value> {
    match method.as_str() {
        "getMe" => Json(json!({"ok": true, "result": {"id": 999_999, "is_bot": true, "username": "benchbot"}})),
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(body["timeout"].as_u64().unwrap_or(0).min(30));
            loop {
                let notified = f.arrived.notified();
                let ready: Vec<Value> = {
                    let mut u = f.updates.lock().unwrap_or_else(|p| p.into_inner());
                    u.retain(|x| x["update_id"].as_i64().unwrap_or(0) >= offset);
                    u.iter().take(100).cloned().collect()
                };
                if !ready.is_empty() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Json(json!({"ok": true, "result": ready}));
                }
            }
        }
        "sendMessage" => {
            let chat = body["chat_id"].as_i64().unwrap_or(0);
            let reply_to = body["reply_to_message_id"].as_i64().unwrap_or(-1);
            let _ = f.sent.send((chat, reply_to, Instant::now())).await;
            Json(json!({"ok": true, "result": {"message_id": 1, "chat": {"id": chat, "type": "private"}, "date": 0}}))
        }
        _ => Json(json!({"ok": true, "result": true})),
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mock = MockLlm::start().await?;
    let (sent_tx, mut sent) = mpsc::channel(200_000);
    let fake = Fake { updates: Arc::default(), arrived: Arc::default(), sent: sent_tx };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let app = Router::new().route("/{token}/{method}", post(bot_api)).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let inproc::InProcess { gw, ws: _client, .. } = inproc::start(json!({
        "models": {"providers": {"local": {"baseUrl": mock.openai_base_url(), "api": "openai-completions", "models": [{"id": "m"}]}}},
        "agents": {"defaults": {"model": "local/m"}},
        "session": {"dmScope": "per-channel-peer"},
        "messages": {"queue": {"mode": "followup", "debounceMs": 0, "cap": 1000}},
        "channels": {"telegram": {"botToken": "1:bench", "apiRoot": api, "dmPolicy": "open", "allowFrom": ["*"], "streaming": "off"}},
    }))
    .await?;

    let mut next_update = 1i64;
    let mut push = |chat: i64, message_id: i64| {
        let u = json!({"update_id": next_update, "message": {"message_id": message_id, "date": 0, "text": format!("m{message_id}"),
                       "chat": {"id": chat, "type": "private"}, "from": {"id": chat, "first_name": "u"}}});
        next_update += 1;
        fake.updates.lock().unwrap_or_else(|p| p.into_inner()).push(u);
        fake.arrived.notify_waiters();
    };

    // 1. One at a time.
    let mut lat = Vec::new();
    for i in 0..(args.messages + 5) as i64 {
        let t0 = Instant::now();
        push(1, i + 1);
        let (chat, reply_to, at) =
            tokio::time::timeout(Duration::from_secs(30), sent.recv()).await?.unwrap_or((0, 0, t0));
        if chat != 1 || reply_to != i + 1 {
            bail!("unexpected reply {chat}/{reply_to} for message {}", i + 1);
        }
        if i >= 5 {
            lat.push((at - t0).as_secs_f64() * 1e6);
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));

    // 2. Many chats at once.
    let total = args.chats * args.per_chat;
    let t0 = Instant::now();
    for k in 0..args.per_chat as i64 {
        for c in 0..args.chats as i64 {
            push(100 + c, 1000 + k);
        }
    }
    let mut per_chat: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut last = t0;
    for _ in 0..total {
        let Ok(Some((chat, reply_to, at))) = tokio::time::timeout(Duration::from_secs(60), sent.recv()).await else {
            bail!("lost replies: got {} of {total}", per_chat.values().map(Vec::len).sum::<usize>());
        };
        per_chat.entry(chat).or_default().push(reply_to);
        last = at;
    }
    let elapsed = (last - t0).as_secs_f64();
    let in_order = per_chat.values().all(|v| v.windows(2).all(|w| w[0] < w[1]));
    let complete = per_chat.len() == args.chats && per_chat.values().all(|v| v.len() == args.per_chat);
    gw.close("bench done", None).await;
    let report = json!({
        "inbound_to_reply_us": {"median": pct(&lat, 0.5), "p99": pct(&lat, 0.99), "n": lat.len()},
        "throughput": {"messages": total, "chats": args.chats, "seconds": elapsed, "messages_per_s": total as f64 / elapsed,
                       "lost": total - per_chat.values().map(Vec::len).sum::<usize>(), "in_order": in_order, "complete": complete},
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "inbound → reply, one chat, {} messages: median {:.0} µs, p99 {:.0} µs",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
        println!(
            "{total} messages over {} chats: {:.2} s, {:.0} messages/s, lost {}, in order per chat: {in_order}",
            args.chats,
            elapsed,
            total as f64 / elapsed,
            report["throughput"]["lost"]
        );
    }
    if !in_order || !complete {
        bail!("replies lost or out of order");
    }
    Ok(())
}
