//! `homarus-bench-cron`: the scheduler's own work per tick with many jobs. An in-process gateway
//! gets `--jobs` main-session jobs (default 10,000) whose slots are spread over `--spread-secs`, so a
//! few are due every second; the timer wakes for each due slot and starts what is due. Reports the
//! work per tick (finding due jobs, advancing them, starting their runs; the synced writes happen in
//! the runs' own tasks) from `cron.status`, and checks every due job ran.
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::json;

#[path = "../inproc.rs"]
mod inproc;
use inproc::call;

#[derive(Parser, Debug)]
struct Args {
    /// Jobs scheduled.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Their slots are spread over this many seconds (each job runs once per period).
    #[arg(long, default_value_t = 3600)]
    spread_secs: u64,
    /// How long to watch the ticks.
    #[arg(long, default_value_t = 20)]
    watch_secs: u64,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // No heartbeats: only the cron timer works.
    let inproc::InProcess { gw, mut ws, .. } =
        inproc::start(json!({"agents": {"defaults": {"heartbeat": {"every": "0"}}}})).await?;

    let period_ms = args.spread_secs * 1000;
    let start = now_ms() + 5_000;
    let t_add = Instant::now();
    for i in 0..args.jobs {
        let anchor = start + (i as u64 * period_ms / args.jobs as u64) as i64;
        let job = json!({"name": format!("job {i}"), "schedule": {"kind": "every", "everyMs": period_ms, "anchorMs": anchor},
                         "sessionTarget": "main", "wakeMode": "next-heartbeat",
                         "payload": {"kind": "systemEvent", "text": format!("event {i}")}});
        call(&mut ws, &format!("a{i}"), "cron.add", job).await?;
    }
    let add_secs = t_add.elapsed().as_secs_f64();
    let before = call(&mut ws, "s0", "cron.status", json!({})).await?;
    tokio::time::sleep(Duration::from_millis((start - now_ms()).max(0) as u64 + args.watch_secs * 1000)).await;
    let after = call(&mut ws, "s1", "cron.status", json!({})).await?;
    let ticks = after["ticks"].as_u64().unwrap_or(0) - before["ticks"].as_u64().unwrap_or(0);
    let total_us = after["totalTickUs"].as_u64().unwrap_or(0) - before["totalTickUs"].as_u64().unwrap_or(0);
    let max_us = after["maxTickUs"].as_u64().unwrap_or(0);
    let runs = call(&mut ws, "r", "cron.runs", json!({"limit": 1})).await?;
    let expected = (args.watch_secs * 1000 * args.jobs as u64 / period_ms) as i64;
    let ran = runs["total"].as_i64().unwrap_or(0);
    gw.close("bench done", None).await;
    let mean = total_us as f64 / ticks.max(1) as f64;
    let report = json!({"jobs": args.jobs, "addSecs": add_secs, "ticks": ticks, "meanTickUs": mean, "maxTickUs": max_us,
                        "runs": ran, "expectedRunsAbout": expected});
    if args.json {
        println!("{report}");
    } else {
        println!("{} jobs added in {add_secs:.1} s", args.jobs);
        println!(
            "{ticks} ticks in {} s: mean {mean:.1} µs, max {max_us} µs of scheduler work per tick",
            args.watch_secs
        );
        println!("{ran} runs recorded (about {expected} due in the window)");
    }
    if ran < expected * 9 / 10 {
        bail!("too few runs: {ran} of about {expected}");
    }
    Ok(())
}
