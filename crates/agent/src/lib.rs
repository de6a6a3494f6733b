//! The Homarus agent runtime: LLM providers (OpenAI-compatible Chat Completions and Anthropic
//! Messages, streaming), retries and failover, the agent loop with tools, the workspace system
//! prompt, and compaction.
//!
//! This crate knows nothing of the gateway: a run takes a [`RunRequest`] (transcript path, models,
//! prompt, tools) and reports [`RunEvent`]s to a callback; the gateway maps them to protocol events.
pub mod compaction;
pub mod context;
pub mod failover;
pub mod media;
pub mod memory;
pub mod message;
pub mod provider;
pub mod run;
pub mod sse;
pub mod tools;
pub mod workspace;

pub use compaction::{Compacted, CompactionReason, CompactionSettings};
pub use failover::RetryPolicy;
pub use message::{Block, Message, StopReason, Usage};
pub use provider::{resolve_models, ResolveError, ResolvedModel, ToolSpec};
pub use run::{is_silent, run, CompactionHooks, RunEvent, RunOutcome, RunRequest};
pub use tools::ToolContext;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
