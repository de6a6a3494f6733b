//! Compaction: summarise the older part of a session's context so the rest fits the model.
//!
//! The cut keeps the most recent `keep_recent_tokens` verbatim and never separates a tool call from
//! its result (the first kept message is never a `toolResult`). The summary comes from the model;
//! when that fails, a deterministic summary (the user's requests, the last answers) is used instead,
//! so compaction itself never fails the run.
use tokio_util::sync::CancellationToken;

use crate::context::{Entry, SessionContext};
use crate::failover::{call_with_failover, RetryPolicy};
use crate::message::Message;
use crate::provider::{ModelRequest, ResolvedModel};

/// Compaction settings (`agents.defaults.compaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionSettings {
    /// Compact automatically after a turn that leaves less than `reserve_tokens` free.
    pub enabled: bool,
    /// Tokens kept free below the context window.
    pub reserve_tokens: u64,
    /// Recent tokens kept verbatim.
    pub keep_recent_tokens: u64,
    /// Run a silent memory-flush turn before an automatic threshold compaction.
    pub memory_flush: bool,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        Self { enabled: true, reserve_tokens: 20_000, keep_recent_tokens: 20_000, memory_flush: true }
    }
}

/// Why a compaction ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionReason {
    /// `/compact` or `sessions.compact`.
    Manual,
    /// The context crossed the threshold after a turn.
    Threshold,
    /// The provider said the prompt is too long.
    Overflow,
}

impl CompactionReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CompactionReason::Manual => "manual",
            CompactionReason::Threshold => "threshold",
            CompactionReason::Overflow => "overflow",
        }
    }
}

/// A finished compaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    /// The summary text.
    pub summary: String,
    /// First entry kept verbatim.
    pub first_kept_entry_id: String,
    /// Estimated tokens before.
    pub tokens_before: u64,
    /// Estimated tokens after.
    pub tokens_after: u64,
    /// Messages folded into the summary.
    pub compacted_count: usize,
    /// Whether the deterministic fallback was used.
    pub fallback: bool,
}

/// Where to cut `entries`: the index of the first kept entry, or `None` when there is nothing to fold.
pub fn cut_point(entries: &[Entry], keep_recent_tokens: u64) -> Option<usize> {
    let mut kept = 0u64;
    let mut cut = entries.len();
    for (i, e) in entries.iter().enumerate().rev() {
        let t = e.message.estimate_tokens();
        if kept + t > keep_recent_tokens && cut < entries.len() {
            break;
        }
        kept += t;
        cut = i;
    }
    // Keep at least the last message out of the summary, and never start on a tool result.
    cut = cut.max(1).min(entries.len().saturating_sub(1));
    while cut > 0 && matches!(entries[cut].message, Message::ToolResult { .. }) {
        cut -= 1;
    }
    (cut > 0).then_some(cut)
}

fn transcript_text(summary: Option<&str>, entries: &[Entry]) -> String {
    let mut out = String::new();
    if let Some(s) = summary {
        out.push_str(&format!("[earlier summary]\n{s}\n\n"));
    }
    for e in entries {
        let (role, text): (String, String) = match &e.message {
            Message::User { .. } => ("user".into(), e.message.text()),
            Message::Assistant { .. } => {
                let calls: Vec<String> = e.message.tool_calls().iter().map(|(_, n, a)| format!("{n}({a})")).collect();
                let mut t = e.message.text();
                if !calls.is_empty() {
                    t.push_str(&format!(" [called {}]", calls.join(", ")));
                }
                ("assistant".into(), t)
            }
            Message::ToolResult { tool_name, .. } => {
                (format!("tool {tool_name} returned"), e.message.text().chars().take(2000).collect())
            }
        };
        out.push_str(&format!("{role}: {text}\n"));
    }
    out
}

/// The summary used when the model cannot summarise: the user's requests and the last answer.
pub fn fallback_summary(summary: Option<&str>, entries: &[Entry]) -> String {
    let mut out = String::from("Automatic summary (the summarising model was unavailable).\n");
    if let Some(s) = summary {
        out.push_str(&format!("Earlier: {s}\n"));
    }
    out.push_str("The user asked, in order:\n");
    for e in entries.iter().filter(|e| matches!(e.message, Message::User { .. })) {
        let t: String = e.message.text().chars().take(300).collect();
        out.push_str(&format!("- {t}\n"));
    }
    if let Some(last) = entries.iter().rev().find(|e| matches!(e.message, Message::Assistant { .. })) {
        let t: String = last.message.text().chars().take(600).collect();
        if !t.is_empty() {
            out.push_str(&format!("Last answer: {t}\n"));
        }
    }
    out
}

const SUMMARY_PROMPT: &str = "You compact conversations. Summarise the conversation below so the assistant can \
continue it without the original messages: the user's goals and requests, decisions made, facts learned, files \
and identifiers mentioned (exactly), open questions and the current state of work. Be concise; use bullet points.";

/// Summarise the part of `ctx` before the cut. Returns `None` when there is nothing to fold.
pub async fn compact(
    http: &reqwest::Client,
    models: &[ResolvedModel],
    ctx: &SessionContext,
    settings: CompactionSettings,
    cancel: &CancellationToken,
) -> Option<Compacted> {
    let cut = cut_point(&ctx.entries, settings.keep_recent_tokens)?;
    let (old, kept) = ctx.entries.split_at(cut);
    let tokens_before = ctx.estimate_tokens();
    let request_text = transcript_text(ctx.summary.as_deref(), old);
    let messages = [Message::user(request_text, crate::now_ms())];
    let req = ModelRequest { system: SUMMARY_PROMPT, messages: &messages, tools: &[] };
    let policy = RetryPolicy { attempts_per_model: 2, ..RetryPolicy::default() };
    let result = call_with_failover(http, models, &req, policy, cancel, &mut |_| {}, &mut |_| {}).await;
    let (summary, fallback) = match result {
        Ok((resp, _)) if !resp.message.text().trim().is_empty() => (resp.message.text(), false),
        Ok(_) => (fallback_summary(ctx.summary.as_deref(), old), true),
        Err(e) => {
            tracing::warn!(error = %e, "summarising model failed; using the deterministic compaction summary");
            (fallback_summary(ctx.summary.as_deref(), old), true)
        }
    };
    let after = SessionContext { summary: Some(summary.clone()), entries: kept.to_vec(), ..Default::default() };
    Some(Compacted {
        summary,
        first_kept_entry_id: kept[0].id.clone(),
        tokens_before,
        tokens_after: after.estimate_tokens(),
        compacted_count: old.len(),
        fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Block, StopReason, Usage};
    use serde_json::json;

    fn e(id: &str, m: Message) -> Entry {
        Entry { id: id.into(), message: m }
    }

    fn call(id: &str) -> Message {
        Message::Assistant {
            content: vec![Block::ToolCall { id: id.into(), name: "read".into(), arguments: json!({}) }],
            provider: "p".into(),
            model: "m".into(),
            usage: Usage::default(),
            stop_reason: StopReason::ToolUse,
            error_message: None,
            timestamp: 0,
        }
    }

    fn result(id: &str, text: &str) -> Message {
        Message::ToolResult {
            tool_call_id: id.into(),
            tool_name: "read".into(),
            content: vec![Block::Text { text: text.into() }],
            is_error: false,
            timestamp: 0,
        }
    }

    #[test]
    fn the_cut_never_separates_a_tool_call_from_its_result() {
        let big = "x".repeat(4000);
        let entries = vec![
            e("1", Message::user(big.clone(), 0)),
            e("2", call("c1")),
            e("3", result("c1", &big)),
            e("4", result("c1", "small")),
        ];
        // Keeping ~1 message worth of tokens would start on a tool result: the cut moves back to the call.
        let cut = cut_point(&entries, 100).unwrap();
        assert_eq!(entries[cut].id, "2");
        assert!(cut_point(&entries[..1], 10).is_none(), "one message: nothing to fold");
    }

    #[test]
    fn fallback_summary_lists_requests() {
        let entries = vec![e("1", Message::user("find the bug", 0)), e("2", call("c"))];
        let s = fallback_summary(Some("before"), &entries);
        assert!(s.contains("- find the bug"));
        assert!(s.contains("Earlier: before"));
    }
}
