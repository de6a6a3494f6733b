//! One supervised plugin process and its JSON-RPC 2.0 client.
//!
//! The supervisor task owns the child: it starts it, sends `initialize`, watches it, restarts it with
//! backoff when it exits, and on stop sends `shutdown`, closes stdin and kills it if it lingers.
//! Requests wait for a ready process (bounded by the caller's budget); a process exit fails every
//! pending request at once.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// Longest line accepted from a plugin (a bigger one is a protocol error and restarts it).
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;
/// Most requests in flight to one plugin.
const MAX_PENDING: usize = 1024;
/// Most lines queued towards one plugin.
const MAX_QUEUED_LINES: usize = 256;
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const EXIT_GRACE: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A live connection to one running child.
struct Conn {
    tx: mpsc::Sender<String>,
    pending: Pending,
    /// At most [`MAX_PENDING`] requests in flight; callers beyond that wait (within their budget).
    inflight: Arc<Semaphore>,
    /// Set when a caller gave up waiting for an answer: the child gets no grace at stop.
    unresponsive: Arc<AtomicBool>,
}

/// What the host reports about a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `starting`, `running`, `restarting`, `failed` or `stopped`.
    pub state: &'static str,
    /// Restarts so far.
    pub restarts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// PID of the running child.
    pub pid: Option<u32>,
}

/// A plugin process, shared by its supervisor and the hook proxies.
pub struct PluginProcess {
    /// Plugin id.
    pub id: String,
    dir: PathBuf,
    command: Vec<String>,
    env: Vec<(String, String)>,
    init_params: Value,
    next_id: AtomicU64,
    conn: watch::Sender<Option<Arc<Conn>>>,
    status: Mutex<Status>,
}

/// Removes a pending request when its caller gives up, and marks the child unresponsive if the
/// request was still unanswered.
struct PendingGuard {
    id: u64,
    pending: Pending,
    unresponsive: Arc<AtomicBool>,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id).is_some() {
            self.unresponsive.store(true, Ordering::SeqCst);
        }
    }
}

impl PluginProcess {
    /// A process description; nothing runs until [`PluginProcess::supervise`].
    pub fn new(
        id: String,
        dir: PathBuf,
        command: Vec<String>,
        env: Vec<(String, String)>,
        init_params: Value,
    ) -> Arc<Self> {
        let (conn, _) = watch::channel(None);
        Arc::new(Self {
            id,
            dir,
            command,
            env,
            init_params,
            next_id: AtomicU64::new(1),
            conn,
            status: Mutex::new(Status { state: "starting", restarts: 0, last_error: None, pid: None }),
        })
    }

    /// A snapshot of the status.
    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Send a request and wait for its result. Waits for a ready process first; the caller bounds
    /// the whole call with its own timeout.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        let mut rx = self.conn.subscribe();
        let conn = loop {
            if let Some(c) = rx.borrow_and_update().clone() {
                break c;
            }
            rx.changed().await.map_err(|_| format!("plugin {} stopped", self.id))?;
        };
        self.request_on(&conn, method, params).await
    }

    async fn request_on(&self, conn: &Conn, method: &str, params: Value) -> Result<Value, String> {
        let _permit = conn.inflight.acquire().await.map_err(|_| format!("plugin {} stopped", self.id))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let _guard = PendingGuard { id, pending: conn.pending.clone(), unresponsive: conn.unresponsive.clone() };
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        conn.tx.send(line).await.map_err(|_| format!("plugin {} exited before answering", self.id))?;
        rx.await.map_err(|_| format!("plugin {} exited before answering", self.id))?
    }

    /// Run the plugin until `stop` fires: start, initialize, restart on exit with backoff.
    pub async fn supervise(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut failures_in_a_row: u32 = 0;
        loop {
            let started = Instant::now();
            let outcome = self.run_once(&mut stop).await;
            self.conn.send_replace(None);
            match outcome {
                Ok(true) => {
                    self.set_status(|s| {
                        s.state = "stopped";
                        s.pid = None;
                    });
                    return;
                }
                Ok(false) | Err(_) => {
                    let why = outcome.err().unwrap_or_else(|| "exited".to_string());
                    if started.elapsed() >= HEALTHY_RUN {
                        failures_in_a_row = 0;
                    }
                    failures_in_a_row += 1;
                    let backoff =
                        Duration::from_secs(1u64 << failures_in_a_row.min(5).saturating_sub(1)).min(MAX_BACKOFF);
                    tracing::warn!(plugin = %self.id, error = %why, "plugin stopped unexpectedly; restarting in {}s", backoff.as_secs());
                    self.set_status(|s| {
                        s.state = "restarting";
                        s.pid = None;
                        s.last_error = Some(why);
                        s.restarts += 1;
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {
                            self.set_status(|s| s.state = "stopped");
                            return;
                        }
                    }
                }
            }
        }
    }

    /// One life of the child. `Ok(true)`: stopped on request; `Ok(false)`/`Err`: it died.
    async fn run_once(&self, stop: &mut watch::Receiver<bool>) -> Result<bool, String> {
        if *stop.borrow() {
            return Ok(true);
        }
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .current_dir(&self.dir)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start `{}`: {e}", self.command.join(" ")))?;
        let pid = child.id();
        let (stdin, stdout, stderr) = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err("child pipes unavailable".into()),
        };
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (tx, rx) = mpsc::channel::<String>(MAX_QUEUED_LINES);
        let writer = tokio::spawn(write_lines(stdin, rx));
        let reader = tokio::spawn(read_responses(self.id.clone(), stdout, pending.clone()));
        let logger = tokio::spawn(log_stderr(self.id.clone(), stderr));
        let unresponsive = Arc::new(AtomicBool::new(false));
        let conn = Arc::new(Conn {
            tx,
            pending: pending.clone(),
            inflight: Arc::new(Semaphore::new(MAX_PENDING)),
            unresponsive: unresponsive.clone(),
        });

        let init = tokio::select! {
            r = tokio::time::timeout(INITIALIZE_TIMEOUT, self.request_on(&conn, "initialize", self.init_params.clone())) => Some(r),
            _ = stop.changed() => None,
        };
        let result = match init {
            None => Ok(true),
            Some(Ok(Ok(_))) => {
                tracing::info!(plugin = %self.id, pid = ?pid, "plugin running");
                self.set_status(|s| {
                    s.state = "running";
                    s.pid = pid;
                });
                self.conn.send_replace(Some(conn.clone()));
                tokio::select! {
                    status = child.wait() => Err(format!("exited ({})", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))),
                    _ = stop.changed() => {
                        self.conn.send_replace(None);
                        // A plugin that left a caller unanswered, or still has requests outstanding
                        // (abandoned calls may not be dropped yet: cancellation is asynchronous), is
                        // busy or stuck: no grace.
                        let busy = !pending.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
                        if busy {
                            unresponsive.store(true, Ordering::SeqCst);
                        }
                        if !unresponsive.load(Ordering::SeqCst) {
                            let shutdown = self.request_on(&conn, "shutdown", json!({}));
                            let _ = tokio::time::timeout(SHUTDOWN_REQUEST_TIMEOUT, shutdown).await;
                        }
                        Ok(true)
                    }
                }
            }
            Some(Ok(Err(e))) => Err(format!("initialize failed: {e}")),
            Some(Err(_)) => Err(format!("initialize timed out after {}s", INITIALIZE_TIMEOUT.as_secs())),
        };
        // Close stdin (drop every sender), give the child a moment to exit, then kill it.
        drop(conn);
        writer.abort();
        let grace = if unresponsive.load(Ordering::SeqCst) { Duration::ZERO } else { EXIT_GRACE };
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        reader.abort();
        logger.abort();
        fail_all(&pending, &self.id);
        result
    }
}

fn fail_all(pending: &Pending, id: &str) {
    for (_, tx) in pending.lock().unwrap_or_else(|p| p.into_inner()).drain() {
        let _ = tx.send(Err(format!("plugin {id} exited before answering")));
    }
}

async fn write_lines(mut stdin: tokio::process::ChildStdin, mut rx: mpsc::Receiver<String>) {
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

async fn read_responses(id: String, stdout: tokio::process::ChildStdout, pending: Pending) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match (&mut reader).take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if n as u64 > MAX_LINE_BYTES {
            tracing::error!(plugin = %id, "plugin wrote a line over {MAX_LINE_BYTES} bytes; ignoring the rest of its output");
            return;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
            tracing::warn!(plugin = %id, line = %String::from_utf8_lossy(&buf).trim_end(), "plugin wrote a non-JSON line on stdout (use stderr for logs)");
            continue;
        };
        let Some(rid) = msg.get("id").and_then(Value::as_u64) else {
            if let Some(m) = msg.get("method").and_then(Value::as_str) {
                tracing::debug!(plugin = %id, method = m, "plugin notification ignored");
            }
            continue;
        };
        let waiter = pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&rid);
        if let Some(tx) = waiter {
            let result = match (msg.get("result"), msg.get("error")) {
                (_, Some(err)) => Err(err.get("message").and_then(Value::as_str).unwrap_or("plugin error").to_string()),
                (Some(r), None) => Ok(r.clone()),
                (None, None) => Ok(Value::Null),
            };
            let _ = tx.send(result);
        }
    }
}

async fn log_stderr(id: String, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(plugin = %id, "{}", line.chars().take(4096).collect::<String>());
    }
}
