//! `read`, `write`, `edit`.
use serde_json::Value;

use super::{resolve, str_arg, ToolContext, ToolOutput};

/// Largest file `read`/`edit` load.
const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

async fn load(path: &std::path::Path) -> Result<String, ToolOutput> {
    let meta = tokio::fs::metadata(path).await.map_err(|e| ToolOutput::err(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ToolOutput::err(format!(
            "{}: {} bytes is larger than the {MAX_FILE_BYTES}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    let bytes = tokio::fs::read(path).await.map_err(|e| ToolOutput::err(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| ToolOutput::err(format!("{}: not a UTF-8 text file", path.display())))
}

pub(super) async fn read(args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolOutput> {
    let path = resolve(ctx, str_arg(args, "path")?);
    let text = load(&path).await?;
    let offset = args.get("offset").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
    let limit = args.get("limit").and_then(Value::as_u64).map(|l| l as usize);
    if offset == 1 && limit.is_none() {
        return Ok(ToolOutput::ok(text));
    }
    let lines: Vec<&str> = text.lines().skip(offset - 1).take(limit.unwrap_or(usize::MAX)).collect();
    Ok(ToolOutput::ok(lines.join("\n")))
}

pub(super) async fn write(args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolOutput> {
    let path = resolve(ctx, str_arg(args, "path")?);
    let content = str_arg(args, "content")?;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| ToolOutput::err(format!("{}: {e}", dir.display())))?;
    }
    tokio::fs::write(&path, content).await.map_err(|e| ToolOutput::err(format!("{}: {e}", path.display())))?;
    Ok(ToolOutput::ok(format!("wrote {} bytes to {}", content.len(), path.display())))
}

pub(super) async fn edit(args: &Value, ctx: &ToolContext) -> Result<ToolOutput, ToolOutput> {
    let path = resolve(ctx, str_arg(args, "path")?);
    let old = str_arg(args, "oldText")?;
    let new = str_arg(args, "newText")?;
    if old.is_empty() {
        return Err(ToolOutput::err("oldText must not be empty"));
    }
    let text = load(&path).await?;
    match text.matches(old).count() {
        0 => Err(ToolOutput::err(format!("{}: oldText not found", path.display()))),
        1 => {
            let updated = text.replacen(old, new, 1);
            tokio::fs::write(&path, updated).await.map_err(|e| ToolOutput::err(format!("{}: {e}", path.display())))?;
            Ok(ToolOutput::ok(format!("edited {}", path.display())))
        }
        n => Err(ToolOutput::err(format!(
            "{}: oldText occurs {n} times; include more context so it is unique",
            path.display()
        ))),
    }
}
