//! The built-in tools: `read`, `write`, `edit`, `exec`, `web_fetch`. Relative paths resolve in the
//! agent's workspace, which is also `exec`'s working directory. Every tool bounds its output and
//! its time; a failure is a tool result with `isError: true` the model can read, never a crash.
mod exec;
mod files;
mod web;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::provider::ToolSpec;

/// Largest tool output handed back to the model, in characters.
pub const MAX_TOOL_OUTPUT_CHARS: usize = 50_000;

/// Where and how tools run.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The agent workspace.
    pub workspace: PathBuf,
    /// Default `exec` timeout.
    pub exec_timeout: Duration,
    /// HTTP client for `web_fetch`.
    pub http: reqwest::Client,
    /// The memory search index (`memory_search`).
    pub memory_db: PathBuf,
}

/// Tools the embedder adds (the gateway's `sessions_*` tools).
pub trait ExtraTools: Send + Sync {
    /// Their specs.
    fn specs(&self) -> Vec<ToolSpec>;
    /// Run `name`; `None` when it is not one of these tools.
    fn call<'a>(&'a self, name: &'a str, args: &'a Value) -> futures_util::future::BoxFuture<'a, Option<ToolOutput>>;
}

/// What a tool returned.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// Text for the model.
    pub text: String,
    /// Whether the tool failed.
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(text: impl Into<String>) -> Self {
        Self { text: cap(text.into()), is_error: false }
    }

    /// A failed result.
    pub fn err(text: impl Into<String>) -> Self {
        Self { text: cap(text.into()), is_error: true }
    }
}

/// Cut `s` to [`MAX_TOOL_OUTPUT_CHARS`], saying so.
fn cap(s: String) -> String {
    if s.len() <= MAX_TOOL_OUTPUT_CHARS {
        return s;
    }
    let mut cut = MAX_TOOL_OUTPUT_CHARS;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[output truncated: {} of {} bytes shown]", &s[..cut], cut, s.len())
}

/// Resolve `p` against the workspace.
fn resolve(ctx: &ToolContext, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        ctx.workspace.join(p)
    }
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolOutput> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| ToolOutput::err(format!("missing string argument \"{name}\"")))
}

/// The specs of the built-in tools.
pub fn builtin_specs() -> Vec<ToolSpec> {
    let spec = |name: &str, description: &str, parameters: Value| ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters,
    };
    vec![
        spec(
            "read",
            "Read a text file. Relative paths are in the workspace. Optional 1-based line offset and line limit.",
            json!({"type":"object","properties":{"path":{"type":"string"},"offset":{"type":"integer","minimum":1},"limit":{"type":"integer","minimum":1}},"required":["path"]}),
        ),
        spec(
            "write",
            "Create or overwrite a file with the given content (parent folders are created).",
            json!({"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}),
        ),
        spec(
            "edit",
            "Replace exactly one occurrence of oldText with newText in a file.",
            json!({"type":"object","properties":{"path":{"type":"string"},"oldText":{"type":"string"},"newText":{"type":"string"}},"required":["path","oldText","newText"]}),
        ),
        spec(
            "exec",
            "Run a shell command in the workspace (sh -c). Returns exit code, stdout and stderr. Optional timeout in seconds.",
            json!({"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"integer","minimum":1,"maximum":3600},"workdir":{"type":"string"}},"required":["command"]}),
        ),
        spec(
            "memory_search",
            "Search MEMORY.md and memory/*.md (notes you saved) for a query; returns matching paragraphs with their file and lines.",
            json!({"type":"object","properties":{"query":{"type":"string"},"maxResults":{"type":"integer","minimum":1,"maximum":50}},"required":["query"]}),
        ),
        spec(
            "memory_get",
            "Read lines of MEMORY.md or a file under memory/ (after memory_search found it).",
            json!({"type":"object","properties":{"path":{"type":"string"},"from":{"type":"integer","minimum":1},"lines":{"type":"integer","minimum":1}},"required":["path"]}),
        ),
        spec(
            "web_fetch",
            "Fetch a URL over HTTP(S) and return its text (HTML tags stripped), up to maxChars characters.",
            json!({"type":"object","properties":{"url":{"type":"string"},"maxChars":{"type":"integer","minimum":100}},"required":["url"]}),
        ),
    ]
}

async fn memory_search(args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolOutput> {
    let query = str_arg(args, "query")?.to_string();
    let limit = args.get("maxResults").and_then(Value::as_u64).unwrap_or(8).min(50) as usize;
    let (db, ws) = (ctx.memory_db.clone(), ctx.workspace.clone());
    let hits = tokio::task::spawn_blocking(move || {
        crate::memory::MemoryIndex::open(&db, &ws).and_then(|idx| idx.search(&query, limit))
    })
    .await
    .map_err(|e| ToolOutput::err(format!("memory search failed: {e}")))?
    .map_err(|e| ToolOutput::err(format!("memory search failed: {e}")))?;
    if hits.is_empty() {
        return Ok(ToolOutput::ok("no matches in MEMORY.md or memory/"));
    }
    let text = hits
        .iter()
        .map(|h| format!("{}:{}-{}\n{}", h.path, h.start_line, h.end_line, h.text))
        .collect::<Vec<_>>()
        .join("\n\n");
    Ok(ToolOutput::ok(text))
}

/// Run the built-in tool `name`; `None` when there is no such built-in tool.
pub async fn run_builtin(
    name: &str,
    args: &Value,
    ctx: &ToolContext,
    cancel: &CancellationToken,
) -> Option<ToolOutput> {
    let out = match name {
        "read" => files::read(args, ctx).await,
        "write" => files::write(args, ctx).await,
        "edit" => files::edit(args, ctx).await,
        "exec" => exec::exec(args, ctx, cancel).await,
        "web_fetch" => web::fetch(args, ctx, cancel).await,
        "memory_search" => memory_search(args, ctx).await,
        "memory_get" => {
            let from = args.get("from").and_then(Value::as_u64).map(|n| n as usize);
            let lines = args.get("lines").and_then(Value::as_u64).map(|n| n as usize);
            str_arg(args, "path").and_then(|p| {
                crate::memory::memory_get(&ctx.workspace, p, from, lines).map(ToolOutput::ok).map_err(ToolOutput::err)
            })
        }
        _ => return None,
    };
    Some(out.unwrap_or_else(|e| e))
}
