//! Session transcripts: one append-only JSONL file per session.
//!
//! Line 1 is a header `{"type":"session","version":3,"id":<sessionId>,"timestamp":<ISO>,"cwd":<dir>}`;
//! every later line is one entry (`message`, `custom_message`, `compaction`, …) with an `id` and a
//! `parentId`. An append is acknowledged only after the line is on disk (`fsync`), so nothing
//! acknowledged is lost on `kill -9`. A crash mid-write leaves at most a torn last line, which
//! [`read_transcript`] detects and skips with a warning.
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::StoreError;

/// The transcript format version written in headers.
pub const TRANSCRIPT_VERSION: u32 = 3;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

/// RFC 3339 UTC timestamp for `ms` since the epoch.
pub fn iso_timestamp(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn open_private(path: &Path, create_new: bool) -> std::io::Result<std::fs::File> {
    let mut opts = OpenOptions::new();
    if create_new {
        opts.write(true).create_new(true);
    } else {
        opts.append(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

/// Create a transcript with its header line (fails if the file exists).
pub fn create_transcript(path: &Path, session_id: &str, cwd: &str, now_ms: i64) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let header = json!({"type": "session", "version": TRANSCRIPT_VERSION, "id": session_id, "timestamp": iso_timestamp(now_ms), "cwd": cwd});
    let mut f = open_private(path, true).map_err(io(path))?;
    f.write_all(format!("{header}\n").as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Append entries, each on its own line, and sync before returning. When a crash left a torn last
/// line (no trailing newline), the new entries start on a fresh line so they stay readable.
pub fn append_entries(path: &Path, entries: &[Value]) -> Result<(), StoreError> {
    let mut buf = String::new();
    if !ends_with_newline(path).map_err(io(path))? {
        buf.push('\n');
    }
    for e in entries {
        buf.push_str(&e.to_string());
        buf.push('\n');
    }
    let mut f = open_private(path, false).map_err(io(path))?;
    f.write_all(buf.as_bytes()).map_err(io(path))?;
    f.sync_data().map_err(io(path))
}

/// Whether the file's last byte is a newline (an empty or missing file counts as yes).
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// A transcript as read back.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// The header line, if valid.
    pub header: Option<Value>,
    /// Every valid entry after the header, in order.
    pub entries: Vec<Value>,
    /// Lines that could not be read (torn last line, corrupt line), described.
    pub warnings: Vec<String>,
}

/// Read a transcript. Never fails on content: bad lines become warnings.
pub fn read_transcript(path: &Path) -> Result<Transcript, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Transcript::default()),
        Err(e) => return Err(io(path)(e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let ends_clean = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    let mut out = Transcript::default();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        match serde_json::from_str::<Value>(line) {
            Ok(v) if i == 0 && v["type"] == "session" => out.header = Some(v),
            Ok(v) if last && !ends_clean => {
                // Complete JSON but no newline: the write was cut right before it. Keep the entry.
                out.entries.push(v);
            }
            Ok(v) => out.entries.push(v),
            Err(e) if last && !ends_clean => {
                out.warnings.push(format!("{}: torn last line {} skipped ({e})", path.display(), i + 1));
            }
            Err(e) => out.warnings.push(format!("{}: line {} is not JSON, skipped ({e})", path.display(), i + 1)),
        }
    }
    // The store does not log: callers get `warnings` and log them where they have context.
    Ok(out)
}

/// Rename a transcript to `<file>.<reason>.<ISO time with ':' → '-'>`; returns the new path.
pub fn archive_transcript(path: &Path, reason: &str, now_ms: i64) -> Result<Option<PathBuf>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    let stamp = iso_timestamp(now_ms).replace(':', "-");
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{reason}.{stamp}"));
    let target = path.with_file_name(name);
    std::fs::rename(path, &target).map_err(io(path))?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_entries_and_archive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sessions/s1.jsonl");
        create_transcript(&p, "s1", "/work", 0).unwrap();
        assert!(create_transcript(&p, "s1", "/work", 0).is_err(), "never overwrites");
        append_entries(&p, &[json!({"type":"message","id":"a"}), json!({"type":"message","id":"b","parentId":"a"})])
            .unwrap();
        let t = read_transcript(&p).unwrap();
        assert_eq!(t.header.as_ref().unwrap()["id"], "s1");
        assert_eq!(t.header.as_ref().unwrap()["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(t.entries.len(), 2);
        assert!(t.warnings.is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let archived = archive_transcript(&p, "reset", 1_795_672_625_938).unwrap().unwrap();
        assert!(
            archived.to_string_lossy().ends_with("s1.jsonl.reset.2026-11-26T05-57-05.938Z"),
            "{}",
            archived.display()
        );
        assert!(!p.exists());
    }

    #[test]
    fn a_torn_last_line_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        create_transcript(&p, "s", "/", 0).unwrap();
        append_entries(&p, &[json!({"id":"ok"})]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"id\":\"half").unwrap();
        let t = read_transcript(&p).unwrap();
        assert_eq!(t.entries, vec![json!({"id":"ok"})]);
        assert_eq!(t.warnings.len(), 1);
        assert!(t.warnings[0].contains("torn last line 3"), "{:?}", t.warnings);
        // An append after the crash starts a fresh line: the new entry is kept, the torn one skipped.
        append_entries(&p, &[json!({"id":"after"})]).unwrap();
        let t = read_transcript(&p).unwrap();
        assert_eq!(t.entries, vec![json!({"id":"ok"}), json!({"id":"after"})]);
        assert_eq!(t.warnings.len(), 1);
        assert!(t.warnings[0].contains("line 3 is not JSON"), "{:?}", t.warnings);
    }
}
