//! `homarus-bench-tasks`: N background tasks at once (default 1,000), each started by an agent turn
//! in its own session (`image_generate` against the scripted OpenAI Images endpoint of
//! `homarus-mockllm`), each completion delivered through the requester session. Reports the time
//! until every task ended and every requester was told, and checks that each was told exactly once.
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use homarus_mockllm::{MockLlm, Reply};
use serde_json::json;

#[path = "../inproc.rs"]
mod inproc;
use inproc::call;

#[derive(Parser, Debug)]
struct Args {
    /// Tasks (one per session).
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// `agents.defaults.maxConcurrent`.
    #[arg(long, default_value_t = 8)]
    max_concurrent: usize,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let n = args.tasks;
    let mock = MockLlm::start().await?;
    for i in 0..n {
        mock.push_matching(
            &format!("GEN {i}\""),
            Reply::ToolCall { name: "image_generate".into(), args: json!({"prompt": format!("picture {i}")}) },
        );
        mock.push_matching("Started image_generate", Reply::Text("on it".into()));
        mock.push_matching("image_generate finished", Reply::Text("here it is".into()));
    }
    let inproc::InProcess { gw, mut ws, .. } = inproc::start(json!({
        "models": {"providers": {
            "local": {"baseUrl": mock.openai_base_url(), "api": "openai-completions", "models": [{"id": "m"}]},
            "openai": {"baseUrl": mock.openai_base_url(), "apiKey": "sk"}}},
        "agents": {"defaults": {"model": "local/m", "maxConcurrent": args.max_concurrent}},
        "messages": {"queue": {"debounceMs": 0}},
    }))
    .await?;

    let started = Instant::now();
    for i in 0..n {
        let p = json!({"sessionKey": format!("agent:main:t{i}"), "message": format!("GEN {i}"), "idempotencyKey": format!("g{i}")});
        call(&mut ws, &format!("s{i}"), "chat.send", p).await?;
    }
    let sent = started.elapsed();
    // Wait until every task ended and was delivered.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut polls = 0;
    let tasks = loop {
        polls += 1;
        let list = call(&mut ws, &format!("l{polls}"), "tasks.list", json!({"limit": 500})).await?;
        let mut all = list["tasks"].as_array().cloned().unwrap_or_default();
        let mut cursor = list["nextCursor"].as_str().map(str::to_string);
        while let Some(c) = cursor {
            let more =
                call(&mut ws, &format!("l{polls}-{c}"), "tasks.list", json!({"limit": 500, "cursor": c})).await?;
            all.extend(more["tasks"].as_array().cloned().unwrap_or_default());
            cursor = more["nextCursor"].as_str().map(str::to_string);
        }
        if all.len() == n && all.iter().all(|t| t["status"] == "completed" && t["deliveryStatus"] == "session_queued") {
            break all;
        }
        if Instant::now() > deadline {
            bail!("not all tasks delivered: {} of {n} recorded", all.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let delivered = started.elapsed();
    // Every requester session got exactly one completion, and its wake turn answered.
    let mut wakes_done = 0;
    let mut duplicates = 0;
    let wait_deadline = Instant::now() + Duration::from_secs(600);
    for i in 0..n {
        loop {
            let h = call(&mut ws, &format!("h{i}"), "chat.history", json!({"sessionKey": format!("agent:main:t{i}")}))
                .await?;
            let msgs = h["messages"].as_array().cloned().unwrap_or_default();
            let notices = msgs
                .iter()
                .filter(|m| m["content"][0]["text"].as_str().unwrap_or("").contains("image_generate finished"))
                .count();
            let answered = msgs.iter().any(|m| m["content"][0]["text"] == "here it is");
            if notices >= 1 && answered {
                wakes_done += 1;
                duplicates += notices - 1;
                break;
            }
            if Instant::now() > wait_deadline {
                bail!("session t{i} was never told");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let all_told = started.elapsed();
    let _ = ws.close(None).await;
    gw.close("bench", None).await;
    let report = json!({
        "tasks": n,
        "maxConcurrent": args.max_concurrent,
        "sendSeconds": sent.as_secs_f64(),
        "allDeliveredSeconds": delivered.as_secs_f64(),
        "allToldSeconds": all_told.as_secs_f64(),
        "tasksCompleted": tasks.len(),
        "requestersTold": wakes_done,
        "duplicateDeliveries": duplicates,
        "mediaRequests": mock.media_requests().len(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if wakes_done != n || duplicates != 0 || mock.media_requests().len() != n {
        bail!("delivery was not exactly once: {report}");
    }
    Ok(())
}
