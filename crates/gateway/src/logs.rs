//! `logs.tail`: read the gateway's log file by byte cursor.
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use homarus_protocol::ErrorShape;

/// `logs.tail` params.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TailParams {
    cursor: Option<u64>,
    limit: Option<u32>,
    max_bytes: Option<u64>,
}

const DEFAULT_LIMIT: u32 = 500;
const MAX_LIMIT: u32 = 5000;
const DEFAULT_MAX_BYTES: u64 = 250_000;
const MAX_MAX_BYTES: u64 = 1_000_000;

/// Without a cursor: the last `limit` lines. With one: the lines written since, at most `maxBytes`
/// (older bytes are skipped and reported). A cursor past the end means the file was rotated: start
/// over and say `reset`.
pub fn tail(file: &Path, p: TailParams) -> Result<Value, ErrorShape> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ErrorShape::invalid(format!("invalid params: at /limit: must be 1-{MAX_LIMIT}")));
    }
    let max_bytes = p.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 || max_bytes > MAX_MAX_BYTES {
        return Err(ErrorShape::invalid(format!("invalid params: at /maxBytes: must be 1-{MAX_MAX_BYTES}")));
    }
    let name = file.display().to_string();
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(json!({"file": name, "cursor": 0, "size": 0, "lines": []}));
        }
        Err(e) => return Err(ErrorShape::unavailable(format!("cannot read log file {name}: {e}"))),
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reset = false;
    let mut start = match p.cursor {
        Some(c) if c > size => {
            reset = true;
            0
        }
        Some(c) => c,
        None => size.saturating_sub(max_bytes),
    };
    let mut skipped = 0;
    if size - start > max_bytes {
        skipped = size - max_bytes - start;
        start = size - max_bytes;
    }
    let io = |e: std::io::Error| ErrorShape::unavailable(format!("cannot read log file {name}: {e}"));
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::with_capacity((size - start) as usize);
    f.take(size - start).read_to_end(&mut buf).map_err(io)?;
    // Only whole lines: drop a partial first line when we started mid-file, and keep a partial last
    // line for the next call.
    let mut body = &buf[..];
    if start > 0 && (p.cursor.is_none() || skipped > 0) {
        match body.iter().position(|b| *b == b'\n') {
            Some(i) => body = &body[i + 1..],
            None => body = &[],
        }
    }
    let complete = body.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    let cursor = size - (body.len() - complete) as u64;
    let text = String::from_utf8_lossy(&body[..complete]);
    let mut lines: Vec<&str> = text.lines().collect();
    let truncated = lines.len() > limit as usize || skipped > 0;
    if lines.len() > limit as usize {
        lines.drain(..lines.len() - limit as usize);
    }
    let mut out = json!({"file": name, "cursor": cursor, "size": size, "lines": lines});
    if truncated {
        out["truncated"] = json!(true);
    }
    if reset {
        out["reset"] = json!(true);
    }
    if skipped > 0 {
        out["skippedBytes"] = json!(skipped);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn params(cursor: Option<u64>, limit: Option<u32>) -> TailParams {
        TailParams { cursor, limit, max_bytes: None }
    }

    #[test]
    fn tails_follows_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.log");
        std::fs::write(&path, "a\nb\nc\npartial").unwrap();
        let v = tail(&path, params(None, Some(2))).unwrap();
        assert_eq!(v["lines"], json!(["b", "c"]));
        assert_eq!(v["truncated"], json!(true));
        let cursor = v["cursor"].as_u64().unwrap();
        assert_eq!(cursor, 6, "the cursor stops before the unfinished line");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(f, " done").unwrap();
        let v = tail(&path, params(Some(cursor), None)).unwrap();
        assert_eq!(v["lines"], json!(["partial done"]));
        let v = tail(&path, params(Some(10_000), None)).unwrap();
        assert_eq!(v["reset"], json!(true));
        assert!(tail(&path, params(None, Some(0))).is_err());
        let missing = tail(&dir.path().join("none.log"), params(None, None)).unwrap();
        assert_eq!(missing["lines"], json!([]));
    }
}
