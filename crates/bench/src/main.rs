//! `homarus-bench`: measure a gateway that speaks OpenClaw protocol v4.
//!
//! It spawns the gateway command it is given (so the same tool measures Homarus and the real
//! OpenClaw), then measures: time from spawn to the port accepting TCP connections, the RSS of the
//! whole process tree after an idle period, the full handshake latency (WebSocket open → challenge →
//! connect → hello-ok), and `health` RPC latency and throughput over one connection and over many
//! concurrent ones. Everything runs on loopback and the gateway is stopped by its PID at the end.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Benchmark a protocol-v4 gateway (Homarus or OpenClaw)")]
struct Args {
    /// Label for the report (e.g. homarus, openclaw).
    #[arg(long, default_value = "gateway")]
    name: String,
    /// Port the gateway listens on (the command must use it).
    #[arg(long)]
    port: u16,
    /// Gateway token.
    #[arg(long)]
    token: String,
    /// Start-up runs (spawn, wait for the port, stop).
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Seconds to stay idle before reading RSS.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Handshakes to time.
    #[arg(long, default_value_t = 200)]
    handshakes: usize,
    /// Sequential `health` calls on one connection.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Concurrent connections for the throughput run.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// `health` calls per connection in the concurrent run.
    #[arg(long, default_value_t = 100)]
    calls_per_connection: usize,
    /// Give up waiting for the port after this many seconds.
    #[arg(long, default_value_t = 60)]
    start_timeout_secs: u64,
    /// Print the report as one JSON document.
    #[arg(long)]
    json: bool,
    /// The gateway command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

struct Gateway {
    child: Child,
}

impl Gateway {
    fn spawn(cmd: &[String]) -> Result<Self> {
        let child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", cmd[0]))?;
        Ok(Self { child })
    }

    /// SIGTERM, then wait (bounded), then SIGKILL.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_port(port: u16, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("port {port} not open after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// RSS in KiB of `pid` and all its descendants, from /proc.
fn tree_rss_kib(pid: u32) -> u64 {
    let mut pids = vec![pid];
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
                let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                // Field 4 (ppid) follows the parenthesised command name.
                let ppid =
                    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
                if ppid == Some(parent) && !pids.contains(&child) {
                    pids.push(child);
                }
            }
        }
        i += 1;
    }
    pids.iter()
        .map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(Message::Close(f))) => bail!("closed: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed"),
        }
    }
}

async fn until_response(ws: &mut Ws, id: &str) -> Result<Value> {
    loop {
        let v = next_json(ws).await?;
        if v["type"] == "res" && v["id"] == id {
            return Ok(v);
        }
    }
}

/// Open a connection as the CLI does (loopback, shared token, no device) and complete the handshake.
async fn connect(port: u16, token: &str) -> Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}")).await?;
    let challenge = next_json(&mut ws).await?;
    if challenge["event"] != "connect.challenge" {
        bail!("expected connect.challenge, got {challenge}");
    }
    let connect = json!({"type":"req","id":"c","method":"connect","params":{
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"bench","platform":"linux","mode":"cli"},
        "caps":[],"auth":{"token":token},"role":"operator","scopes":["operator.read"]}});
    ws.send(Message::Text(connect.to_string().into())).await?;
    let hello = until_response(&mut ws, "c").await?;
    if hello["ok"] != true {
        bail!("connect refused: {hello}");
    }
    Ok(ws)
}

async fn health(ws: &mut Ws, n: usize) -> Result<()> {
    let id = format!("h{n}");
    let req = json!({"type":"req","id":id,"method":"health","params":{}});
    ws.send(Message::Text(req.to_string().into())).await?;
    let res = until_response(ws, &id).await?;
    if res["ok"] != true {
        bail!("health failed: {res}");
    }
    Ok(())
}

#[derive(Default)]
struct Stats {
    samples_us: Vec<f64>,
}

impl Stats {
    fn push(&mut self, d: Duration) {
        self.samples_us.push(d.as_secs_f64() * 1e6);
    }
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.samples_us.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return f64::NAN;
        }
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[idx.min(v.len() - 1)]
    }
    fn json(&self) -> Value {
        json!({"n": self.samples_us.len(), "medianUs": self.pct(50.0), "p90Us": self.pct(90.0), "p99Us": self.pct(99.0), "maxUs": self.pct(100.0)})
    }
}

async fn run(args: Args) -> Result<Value> {
    let timeout = Duration::from_secs(args.start_timeout_secs);

    // 1. Start-up: spawn → port accepts.
    let mut starts = Stats::default();
    for _ in 0..args.starts {
        let gw = Gateway::spawn(&args.command)?;
        starts.push(wait_for_port(args.port, timeout).await?);
        gw.stop();
        // The next start must not find the old listener.
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", args.port)).await.is_ok() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // 2. One long-running instance for the rest.
    let gw = Gateway::spawn(&args.command)?;
    wait_for_port(args.port, timeout).await?;
    // A gateway may open its port before it can complete a handshake (OpenClaw does): wait for one.
    let ready = Instant::now();
    loop {
        match connect(args.port, &args.token).await {
            Ok(_) => break,
            Err(e) if ready.elapsed() > timeout => return Err(anyhow!("no handshake within {timeout:?}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_rss_kib = tree_rss_kib(gw.child.id());

    // 3. Handshake latency.
    let mut handshakes = Stats::default();
    for _ in 0..args.handshakes {
        let t = Instant::now();
        let mut ws = connect(args.port, &args.token).await?;
        handshakes.push(t.elapsed());
        let _ = ws.close(None).await;
    }

    // 4. Sequential health on one connection.
    let mut ws = connect(args.port, &args.token).await?;
    for i in 0..10 {
        health(&mut ws, i).await?;
    }
    let mut single = Stats::default();
    let t_all = Instant::now();
    for i in 0..args.calls {
        let t = Instant::now();
        health(&mut ws, i).await?;
        single.push(t.elapsed());
    }
    let single_rps = args.calls as f64 / t_all.elapsed().as_secs_f64();
    let _ = ws.close(None).await;

    // 5. Concurrent connections, each calling health sequentially.
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        conns.push(connect(args.port, &args.token).await?);
    }
    let t_all = Instant::now();
    let per = args.calls_per_connection;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut s = Stats::default();
                for i in 0..per {
                    let t = Instant::now();
                    health(&mut ws, i).await?;
                    s.push(t.elapsed());
                }
                let _ = ws.close(None).await;
                Ok::<_, anyhow::Error>(s)
            })
        })
        .collect();
    let mut concurrent = Stats::default();
    for t in tasks {
        concurrent.samples_us.extend(t.await??.samples_us);
    }
    let concurrent_rps = concurrent.samples_us.len() as f64 / t_all.elapsed().as_secs_f64();
    let loaded_rss_kib = tree_rss_kib(gw.child.id());
    gw.stop();

    Ok(json!({
        "name": args.name,
        "startToPortMs": {"n": args.starts, "median": starts.pct(50.0) / 1000.0, "max": starts.pct(100.0) / 1000.0},
        "idleRssMiB": idle_rss_kib as f64 / 1024.0,
        "idleSecs": args.idle_secs,
        "rssAfterLoadMiB": loaded_rss_kib as f64 / 1024.0,
        "handshake": handshakes.json(),
        "healthOneConnection": {"latency": single.json(), "requestsPerSec": single_rps},
        "healthConcurrent": {"connections": args.connections, "latency": concurrent.json(), "requestsPerSec": concurrent_rps},
    }))
}

fn print_human(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!("{}", r["name"].as_str().unwrap_or(""));
    println!(
        "  start → port accepting   median {:.1} ms (max {:.1} ms, n={})",
        f(&r["startToPortMs"]["median"]),
        f(&r["startToPortMs"]["max"]),
        r["startToPortMs"]["n"]
    );
    println!(
        "  idle RSS (tree, {} s)    {:.1} MiB; after load {:.1} MiB",
        r["idleSecs"],
        f(&r["idleRssMiB"]),
        f(&r["rssAfterLoadMiB"])
    );
    let h = &r["handshake"];
    println!(
        "  handshake                median {:.0} µs, p99 {:.0} µs (n={})",
        f(&h["medianUs"]),
        f(&h["p99Us"]),
        h["n"]
    );
    let s = &r["healthOneConnection"];
    println!(
        "  health, 1 connection     median {:.0} µs, p99 {:.0} µs, {:.0} req/s",
        f(&s["latency"]["medianUs"]),
        f(&s["latency"]["p99Us"]),
        f(&s["requestsPerSec"])
    );
    let c = &r["healthConcurrent"];
    println!(
        "  health, {} connections  median {:.0} µs, p99 {:.0} µs, {:.0} req/s",
        c["connections"],
        f(&c["latency"]["medianUs"]),
        f(&c["latency"]["p99Us"]),
        f(&c["requestsPerSec"])
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let json_out = args.json;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(run(args))?;
    if json_out {
        println!("{report}");
    } else {
        print_human(&report);
    }
    Ok(())
}
