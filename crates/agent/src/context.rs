//! The model context of a session, read from its transcript: the messages after the latest
//! compaction, preceded by that compaction's summary; and appending new entries (linked by
//! `parentId`) as the run goes.
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use homarus_store::{append_entries, iso_timestamp, read_transcript, StoreError};

use crate::message::Message;

/// A message with the id of its transcript entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Transcript entry id.
    pub id: String,
    /// The message.
    pub message: Message,
}

/// The context as loaded.
#[derive(Debug, Clone, Default)]
pub struct SessionContext {
    /// Summary of everything before the kept messages (latest compaction), if any.
    pub summary: Option<String>,
    /// Messages the model sees, in order.
    pub entries: Vec<Entry>,
    /// Id of the last entry in the file (the next entry's `parentId`).
    pub last_id: Option<String>,
    /// Problems reading the file (torn lines), for the log.
    pub warnings: Vec<String>,
    /// How many compactions the transcript holds.
    pub compactions: u64,
}

/// The text a compaction summary is presented to the model with.
pub fn summary_message(summary: &str) -> Message {
    Message::user(
        format!(
            "The conversation before this point was compacted into this summary:\n<summary>\n{summary}\n</summary>"
        ),
        0,
    )
}

impl SessionContext {
    /// Load from a transcript file.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let t = read_transcript(path)?;
        let mut out = SessionContext { warnings: t.warnings, ..Default::default() };
        let mut all = Vec::new();
        for e in &t.entries {
            if let Some(id) = e["id"].as_str() {
                out.last_id = Some(id.to_string());
            }
            match e["type"].as_str() {
                Some("message") => {
                    if let Ok(m) = serde_json::from_value::<Message>(e["message"].clone()) {
                        all.push(Entry { id: e["id"].as_str().unwrap_or_default().to_string(), message: m });
                    }
                }
                Some("compaction") => {
                    out.compactions += 1;
                    out.summary = e["summary"].as_str().map(str::to_string);
                    let first_kept = e["firstKeptEntryId"].as_str().unwrap_or_default();
                    let keep_from = all.iter().position(|x| x.id == first_kept).unwrap_or(all.len());
                    all.drain(..keep_from);
                }
                _ => {}
            }
        }
        out.entries = all;
        Ok(out)
    }

    /// What the model is sent: the summary (when there is one), then the kept messages.
    pub fn messages(&self) -> Vec<Message> {
        let mut out: Vec<Message> = self.summary.iter().map(|s| summary_message(s)).collect();
        out.extend(self.entries.iter().map(|e| e.message.clone()));
        out
    }

    /// Estimated tokens of what the model is sent.
    pub fn estimate_tokens(&self) -> u64 {
        self.messages().iter().map(Message::estimate_tokens).sum()
    }
}

/// Appends entries to one transcript, keeping the `parentId` chain.
#[derive(Debug, Clone)]
pub struct TranscriptWriter {
    path: PathBuf,
    last_id: Option<String>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

impl TranscriptWriter {
    /// A writer continuing after `last_id`.
    pub fn new(path: PathBuf, last_id: Option<String>) -> Self {
        Self { path, last_id }
    }

    /// The transcript file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, mut entry: Value) -> Result<String, StoreError> {
        let id = new_id();
        entry["id"] = json!(id);
        entry["parentId"] = json!(self.last_id);
        entry["timestamp"] = json!(iso_timestamp(crate::now_ms()));
        append_entries(&self.path, &[entry])?;
        self.last_id = Some(id.clone());
        Ok(id)
    }

    /// Append a message (synced before returning); returns its entry id.
    pub fn message(&mut self, m: &Message) -> Result<String, StoreError> {
        let msg = serde_json::to_value(m).unwrap_or(Value::Null);
        self.write(json!({"type": "message", "message": msg}))
    }

    /// Append a compaction entry.
    pub fn compaction(&mut self, summary: &str, first_kept: &str, tokens_before: u64) -> Result<String, StoreError> {
        self.write(json!({"type": "compaction", "summary": summary, "firstKeptEntryId": first_kept, "tokensBefore": tokens_before}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_entries_cut_the_context_and_bring_their_summary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        homarus_store::create_transcript(&p, "s", "/", 0).unwrap();
        let mut w = TranscriptWriter::new(p.clone(), None);
        w.message(&Message::user("one", 1)).unwrap();
        let kept = w.message(&Message::user("two", 2)).unwrap();
        w.compaction("said one", &kept, 100).unwrap();
        w.message(&Message::user("three", 3)).unwrap();
        let ctx = SessionContext::load(&p).unwrap();
        assert_eq!(ctx.compactions, 1);
        let texts: Vec<_> = ctx.messages().iter().map(Message::text).collect();
        assert_eq!(texts.len(), 3);
        assert!(texts[0].contains("said one"));
        assert_eq!(&texts[1..], ["two", "three"]);
        // The parentId chain links every entry.
        let raw = read_transcript(&p).unwrap();
        for pair in raw.entries.windows(2) {
            assert_eq!(pair[1]["parentId"], pair[0]["id"]);
        }
    }
}
