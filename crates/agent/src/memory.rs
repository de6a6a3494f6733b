//! Workspace memory search: `MEMORY.md` and `memory/**/*.md`, chunked by paragraph and indexed with
//! SQLite FTS5. The index is brought up to date (by file size and modification time) before each
//! search, so edits by the agent or the user are found at once.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection};

/// Largest memory file indexed.
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Most files indexed (a runaway folder cannot stall a search).
const MAX_FILES: usize = 2000;

/// One hit.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    /// Path relative to the workspace.
    pub path: String,
    /// First line of the chunk (1-based).
    pub start_line: u32,
    /// Last line of the chunk.
    pub end_line: u32,
    /// The chunk text.
    pub text: String,
}

/// The index of one workspace.
pub struct MemoryIndex {
    conn: Mutex<Connection>,
    workspace: PathBuf,
}

fn memory_files(workspace: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let main = workspace.join("MEMORY.md");
    if main.is_file() {
        out.push(main);
    }
    let mut dirs = vec![workspace.join("memory")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") && out.len() < MAX_FILES {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Paragraph chunks: `(start_line, end_line, text)`.
fn chunks(text: &str) -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut start = 1u32;
    for (i, line) in text.lines().enumerate() {
        let n = i as u32 + 1;
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push((start, n - 1, cur.join("\n")));
                cur.clear();
            }
            start = n + 1;
        } else {
            if cur.is_empty() {
                start = n;
            }
            cur.push(line);
        }
    }
    if !cur.is_empty() {
        out.push((start, start + cur.len() as u32 - 1, cur.join("\n")));
    }
    out
}

impl MemoryIndex {
    /// Open (or create) the index at `db` for `workspace`.
    pub fn open(db: &Path, workspace: &Path) -> rusqlite::Result<Self> {
        if let Some(dir) = db.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime INTEGER NOT NULL);
             CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(path UNINDEXED, start_line UNINDEXED, end_line UNINDEXED, text);",
        )?;
        Ok(Self { conn: Mutex::new(conn), workspace: workspace.to_path_buf() })
    }

    /// Re-index changed files and forget deleted ones.
    pub fn sync(&self) -> rusqlite::Result<()> {
        let files = memory_files(&self.workspace);
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let known: Vec<(String, i64, i64)> = {
            let mut stmt = tx.prepare("SELECT path, size, mtime FROM files")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut present = Vec::new();
        for f in &files {
            let rel = f.strip_prefix(&self.workspace).unwrap_or(f).display().to_string();
            let Ok(meta) = std::fs::metadata(f) else { continue };
            if meta.len() > MAX_FILE_BYTES {
                continue;
            }
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            present.push(rel.clone());
            if known.iter().any(|(p, s, m)| *p == rel && *s == meta.len() as i64 && *m == mtime) {
                continue;
            }
            let text = std::fs::read_to_string(f).unwrap_or_default();
            tx.execute("DELETE FROM chunks WHERE path = ?1", [&rel])?;
            for (a, b, t) in chunks(&text) {
                tx.execute(
                    "INSERT INTO chunks (path, start_line, end_line, text) VALUES (?1, ?2, ?3, ?4)",
                    params![rel, a, b, t],
                )?;
            }
            tx.execute(
                "INSERT INTO files (path, size, mtime) VALUES (?1, ?2, ?3)
                 ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime",
                params![rel, meta.len() as i64, mtime],
            )?;
        }
        for (p, _, _) in known.iter().filter(|(p, _, _)| !present.contains(p)) {
            tx.execute("DELETE FROM chunks WHERE path = ?1", [p])?;
            tx.execute("DELETE FROM files WHERE path = ?1", [p])?;
        }
        tx.commit()
    }

    /// The best chunks for `query` (words are matched as prefixes, any of them), best first.
    pub fn search(&self, query: &str, limit: usize) -> rusqlite::Result<Vec<MemoryHit>> {
        self.sync()?;
        let terms: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| format!("\"{}\"*", w.to_lowercase()))
            .collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare(
            "SELECT path, start_line, end_line, text FROM chunks WHERE chunks MATCH ?1 ORDER BY bm25(chunks) LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![terms.join(" OR "), limit as i64], |r| {
            Ok(MemoryHit { path: r.get(0)?, start_line: r.get(1)?, end_line: r.get(2)?, text: r.get(3)? })
        })?;
        rows.collect()
    }
}

/// Read lines `from..from+lines` of a memory file (only `MEMORY.md` and `memory/**`).
pub fn memory_get(workspace: &Path, path: &str, from: Option<usize>, lines: Option<usize>) -> Result<String, String> {
    let rel = Path::new(path);
    let allowed = rel == Path::new("MEMORY.md") || rel.starts_with("memory");
    if !allowed || rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!("{path}: only MEMORY.md and files under memory/ can be read with memory_get"));
    }
    let text = std::fs::read_to_string(workspace.join(rel)).map_err(|e| format!("{path}: {e}"))?;
    let from = from.unwrap_or(1).max(1);
    Ok(text.lines().skip(from - 1).take(lines.unwrap_or(usize::MAX)).collect::<Vec<_>>().join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_paragraphs_and_follows_edits() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join("memory/2026")).unwrap();
        std::fs::write(ws.path().join("MEMORY.md"), "# Facts\n\nThe user's cat is called Biscuit.\n\nPrefers tea.\n")
            .unwrap();
        std::fs::write(ws.path().join("memory/2026/11-26.md"), "Deployed homarus to the lobster server.\n").unwrap();
        let idx = MemoryIndex::open(&ws.path().join(".index/memory.sqlite"), ws.path()).unwrap();
        let hits = idx.search("what is the cat called", 5).unwrap();
        assert_eq!(hits[0].path, "MEMORY.md");
        assert_eq!((hits[0].start_line, hits[0].end_line), (3, 3));
        assert!(hits[0].text.contains("Biscuit"));
        assert_eq!(idx.search("lobst", 5).unwrap()[0].path, "memory/2026/11-26.md");
        std::fs::write(ws.path().join("MEMORY.md"), "The cat is now called Nougat.\n").unwrap();
        let hits = idx.search("nougat", 5).unwrap();
        assert_eq!(hits.len(), 1);
        assert!(idx.search("biscuit", 5).unwrap().is_empty(), "old text forgotten");
        std::fs::remove_file(ws.path().join("memory/2026/11-26.md")).unwrap();
        assert!(idx.search("lobster", 5).unwrap().is_empty());
        assert_eq!(memory_get(ws.path(), "MEMORY.md", Some(1), Some(1)).unwrap(), "The cat is now called Nougat.");
        assert!(memory_get(ws.path(), "../etc/passwd", None, None).is_err());
        assert!(memory_get(ws.path(), "AGENTS.md", None, None).is_err());
    }
}
