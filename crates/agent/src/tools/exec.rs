//! `exec`: `sh -c <command>` in the workspace, with a timeout, bounded output, and the whole
//! process group killed on timeout or abort.
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::{resolve, str_arg, ToolContext, ToolOutput, MAX_TOOL_OUTPUT_CHARS};

async fn read_capped(mut r: impl tokio::io::AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let mut truncated = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.len() < MAX_TOOL_OUTPUT_CHARS {
                    out.extend_from_slice(&buf[..n]);
                } else {
                    // Keep draining so the child never blocks on a full pipe.
                    truncated = true;
                }
            }
        }
    }
    (out, truncated)
}

pub(super) async fn exec(
    args: &Value,
    ctx: &ToolContext,
    cancel: &CancellationToken,
) -> Result<ToolOutput, ToolOutput> {
    let command = str_arg(args, "command")?;
    let timeout = args.get("timeout").and_then(Value::as_u64).map(Duration::from_secs).unwrap_or(ctx.exec_timeout);
    let dir =
        args.get("workdir").and_then(Value::as_str).map(|d| resolve(ctx, d)).unwrap_or_else(|| ctx.workspace.clone());
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(&dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| ToolOutput::err(format!("cannot start sh in {}: {e}", dir.display())))?;
    let pid = child.id();
    let stdout = child.stdout.take().map(read_capped);
    let stderr = child.stderr.take().map(read_capped);
    let outputs = async {
        let o = match stdout {
            Some(f) => f.await,
            None => (Vec::new(), false),
        };
        let e = match stderr {
            Some(f) => f.await,
            None => (Vec::new(), false),
        };
        (o, e)
    };
    let run = async { tokio::join!(child.wait(), outputs) };
    let kill_group = |pid: Option<u32>| {
        // The child leads its own process group (`process_group(0)` above), so killing the group
        // ends everything the command started. Only a real group id (> 1) is ever signalled:
        // `kill(-1)` would signal every process, and `kill(0)` our own group.
        #[cfg(unix)]
        if let Some(pgid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
            // SAFETY: `kill` takes plain integers and has no memory effects; a stale group id at
            // worst yields ESRCH.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    };
    let (status, ((out, out_cut), (err, err_cut))) = tokio::select! {
        r = tokio::time::timeout(timeout, run) => match r {
            Ok(r) => r,
            Err(_) => {
                kill_group(pid);
                return Err(ToolOutput::err(format!("command timed out after {} s and was killed", timeout.as_secs())));
            }
        },
        _ = cancel.cancelled() => {
            kill_group(pid);
            return Err(ToolOutput::err("command aborted"));
        }
    };
    let code = status.ok().and_then(|s| s.code());
    let mut text = format!("exit code: {}\n", code.map(|c| c.to_string()).unwrap_or_else(|| "killed".into()));
    let stdout = String::from_utf8_lossy(&out);
    let stderr = String::from_utf8_lossy(&err);
    if !stdout.is_empty() {
        text.push_str(&format!("stdout:\n{stdout}{}\n", if out_cut { "\n[stdout truncated]" } else { "" }));
    }
    if !stderr.is_empty() {
        text.push_str(&format!("stderr:\n{stderr}{}\n", if err_cut { "\n[stderr truncated]" } else { "" }));
    }
    if code == Some(0) {
        Ok(ToolOutput::ok(text))
    } else {
        Err(ToolOutput::err(text))
    }
}
