//! The agent loop: one user message in, model turns and tool calls until the model answers, every
//! message appended to the transcript (synced) as it happens, events out to an observer.
//!
//! Compaction happens when the provider reports an overflow (compact, then retry the same turn) and
//! after a turn that leaves less than the reserve free. When an automatic compaction happened and the
//! run would end without a visible answer, exactly one continuation turn runs (never for heartbeats,
//! never after an abort).
use std::sync::Arc;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use homarus_hooks::HookRunner;

use crate::compaction::{compact, Compacted, CompactionReason, CompactionSettings};
use crate::context::{SessionContext, TranscriptWriter};
use crate::failover::{call_with_failover, RetryPolicy};
use crate::message::{Block, Message, StopReason, Usage};
use crate::provider::{ModelRequest, ProviderError, ResolvedModel, StreamDelta, ToolSpec};
use crate::tools::{run_builtin, ToolContext, ToolOutput};

/// Upper bound on model turns in one run (tool loops end here).
pub const DEFAULT_MAX_TURNS: u32 = 50;

/// Prompt of the one continuation turn after a compaction left the run without an answer.
pub const CONTINUATION_PROMPT: &str = "[Homarus] The conversation context was compacted while you were working. \
Continue from the summary and give the user your final answer to their last message now.";

/// What the embedder runs around a compaction (internal `session:compact:*` hooks, plugin
/// `before_compaction`/`after_compaction`). Returned strings are notices for the chat user.
pub trait CompactionHooks: Send + Sync {
    /// Before summarising.
    fn before(&self, message_count: usize, token_count: u64) -> futures_util::future::BoxFuture<'_, Vec<String>>;
    /// After a compaction was written.
    fn after(&self, message_count: usize, compacted: &Compacted) -> futures_util::future::BoxFuture<'_, Vec<String>>;
}

/// The silent turn before an automatic compaction.
pub const MEMORY_FLUSH_PROMPT: &str = "[Homarus] Pre-compaction memory flush: the conversation is about to be \
compacted. Save anything worth remembering now (durable facts in MEMORY.md, today's notes in memory/<YYYY-MM-DD>.md) \
with your tools. Then reply with exactly NO_REPLY.";

/// Most model turns of the memory flush.
const MEMORY_FLUSH_TURNS: u32 = 5;

/// Everything a run needs.
pub struct RunRequest {
    /// Run id (the client's idempotency key).
    pub run_id: String,
    /// Agent id.
    pub agent_id: String,
    /// Session key.
    pub session_key: String,
    /// Session id.
    pub session_id: String,
    /// The session's transcript.
    pub transcript: std::path::PathBuf,
    /// The user's message.
    pub message: String,
    /// Models to try, in order.
    pub models: Vec<ResolvedModel>,
    /// The system prompt.
    pub system_prompt: String,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
    /// Where tools run.
    pub tool_ctx: ToolContext,
    /// Retries, backoff, stream watchdog.
    pub retry: RetryPolicy,
    /// Compaction settings.
    pub compaction: CompactionSettings,
    /// Turn bound.
    pub max_turns: u32,
    /// A heartbeat run (no continuation turn; `HEARTBEAT_OK` is silent).
    pub heartbeat: bool,
    /// Plugin hooks (`llm_input`, `llm_output`, `before_tool_call`, `after_tool_call`).
    pub hooks: Option<Arc<HookRunner>>,
    /// Hooks around compaction.
    pub compaction_hooks: Option<Arc<dyn CompactionHooks>>,
    /// Messages steered into this run while it goes (queue mode `steer`): drained before every
    /// model call after the first, and once more before the run would end.
    pub steering: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
    /// Tools the embedder adds.
    pub extra_tools: Option<Arc<dyn crate::tools::ExtraTools>>,
}

/// What a run reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// A model is being called.
    Model {
        /// Provider id.
        provider: String,
        /// Model id.
        model: String,
    },
    /// More answer text: the whole text so far and the new part.
    Assistant {
        /// Text so far in this model turn.
        text: String,
        /// New text.
        delta: String,
    },
    /// A tool starts.
    ToolStart {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments.
        args: Value,
    },
    /// A tool finished.
    ToolEnd {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Failed or blocked.
        is_error: bool,
        /// Output (capped).
        result: String,
    },
    /// Usage after a model turn.
    Usage(Usage),
    /// Compaction starts.
    CompactionStart {
        /// Why.
        reason: CompactionReason,
        /// Messages in context.
        message_count: usize,
        /// Estimated tokens in context.
        token_count: u64,
        /// Notices for the user from hooks.
        messages: Vec<String>,
    },
    /// Compaction finished.
    CompactionEnd {
        /// Why.
        reason: CompactionReason,
        /// What it did (`None`: nothing to fold).
        result: Option<Compacted>,
        /// Whether the interrupted model call is retried.
        will_retry: bool,
        /// Notices for the user from hooks.
        messages: Vec<String>,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOutcome {
    /// The final answer text (may be empty or `NO_REPLY`).
    pub text: String,
    /// Why the last model turn stopped.
    pub stop_reason: StopReason,
    /// Usage over all model turns.
    pub usage: Usage,
    /// Whether the run was aborted.
    pub aborted: bool,
    /// The error that ended the run, if any.
    pub error: Option<String>,
    /// Provider and model that answered last.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Messages appended to the transcript.
    pub messages_added: u64,
    /// Compactions during the run.
    pub compactions: u32,
    /// Whether the continuation turn ran.
    pub continued: bool,
    /// Tools that succeeded, by name.
    pub successful_tools: Vec<String>,
    /// Notices for the user (compaction hooks), in order.
    pub notices: Vec<String>,
}

/// Whether `text` is a silent reply (`NO_REPLY`, or `HEARTBEAT_OK` for heartbeats).
pub fn is_silent(text: &str, heartbeat: bool) -> bool {
    let t = text.trim();
    t.eq_ignore_ascii_case("NO_REPLY") || (heartbeat && t.eq_ignore_ascii_case("HEARTBEAT_OK"))
}

struct Loop<'a> {
    req: &'a RunRequest,
    http: &'a reqwest::Client,
    cancel: &'a CancellationToken,
    observe: &'a mut (dyn FnMut(RunEvent) + Send),
    ctx: SessionContext,
    writer: TranscriptWriter,
    out: RunOutcome,
    /// The memory flush runs: its text is not the answer and is not streamed.
    silent: bool,
}

fn hook_ctx(req: &RunRequest) -> Value {
    json!({"agentId": req.agent_id, "sessionId": req.session_id, "sessionKey": req.session_key, "runId": req.run_id})
}

impl Loop<'_> {
    fn append(&mut self, m: Message) -> Result<(), String> {
        let id = self.writer.message(&m).map_err(|e| format!("cannot write the transcript: {e}"))?;
        self.ctx.entries.push(crate::context::Entry { id, message: m });
        self.out.messages_added += 1;
        Ok(())
    }

    async fn compact(&mut self, reason: CompactionReason, will_retry: bool) -> bool {
        let message_count = self.ctx.entries.len();
        let token_count = self.ctx.estimate_tokens();
        let hooks = self.req.compaction_hooks.clone();
        let messages = match &hooks {
            Some(h) => h.before(message_count, token_count).await,
            None => Vec::new(),
        };
        self.out.notices.extend(messages.iter().cloned());
        (self.observe)(RunEvent::CompactionStart { reason, message_count, token_count, messages });
        let result = compact(self.http, &self.req.models, &self.ctx, self.req.compaction, self.cancel).await;
        if let Some(c) = &result {
            match self.writer.compaction(&c.summary, &c.first_kept_entry_id, c.tokens_before) {
                Ok(_) => {
                    let keep_from = self.ctx.entries.iter().position(|e| e.id == c.first_kept_entry_id).unwrap_or(0);
                    self.ctx.entries.drain(..keep_from);
                    self.ctx.summary = Some(c.summary.clone());
                    self.out.compactions += 1;
                }
                Err(e) => tracing::error!(error = %e, "cannot write the compaction entry"),
            }
        }
        let done = result.is_some();
        let messages = match (&hooks, &result) {
            (Some(h), Some(c)) => h.after(message_count, c).await,
            _ => Vec::new(),
        };
        self.out.notices.extend(messages.iter().cloned());
        (self.observe)(RunEvent::CompactionEnd { reason, result, will_retry: will_retry && done, messages });
        done
    }

    async fn call_model(&mut self) -> Result<crate::provider::ModelResponse, ProviderError> {
        let messages = self.ctx.messages();
        let req = ModelRequest { system: &self.req.system_prompt, messages: &messages, tools: &self.req.tools };
        if let Some(h) = self.req.hooks.as_ref().filter(|h| h.has_handlers("llm_input")) {
            let event = json!({"runId": self.req.run_id, "systemPrompt": self.req.system_prompt, "messageCount": messages.len()});
            h.run_observation("llm_input", &event, &hook_ctx(self.req)).await;
        }
        let observe = &mut *self.observe;
        let silent = self.silent;
        let mut text = String::new();
        let (resp, index) = call_with_failover(
            self.http,
            &self.req.models,
            &req,
            self.req.retry,
            self.cancel,
            &mut |m| tracing::debug!(model = %m.reference(), "calling model"),
            &mut |d| {
                if let StreamDelta::Text(delta) = d {
                    text.push_str(&delta);
                    if !silent {
                        observe(RunEvent::Assistant { text: text.clone(), delta });
                    }
                }
            },
        )
        .await?;
        let m = &self.req.models[index];
        self.out.provider = m.provider.clone();
        self.out.model = m.model.clone();
        Ok(resp)
    }

    async fn run_tool(&mut self, id: &str, name: &str, args: &Value) -> ToolOutput {
        let mut args = args.clone();
        if let Some(h) = self.req.hooks.as_ref().filter(|h| h.has_handlers("before_tool_call")) {
            let event = json!({"toolName": name, "params": args, "toolCallId": id, "runId": self.req.run_id});
            let decision = h.run_decision("before_tool_call", &event, &hook_ctx(self.req)).await;
            if let Some((plugin, reason)) = decision.blocked {
                return ToolOutput { text: format!("blocked by plugin {plugin}: {reason}"), is_error: true };
            }
            if let Some(p) =
                decision.decisions.iter().rev().find_map(|(_, d)| d.get("params").filter(|p| p.is_object()))
            {
                args = p.clone();
            }
        }
        (self.observe)(RunEvent::ToolStart { id: id.into(), name: name.into(), args: args.clone() });
        let mut out = run_builtin(name, &args, &self.req.tool_ctx, self.cancel).await;
        if out.is_none() {
            if let Some(extra) = &self.req.extra_tools {
                out = extra.call(name, &args).await;
            }
        }
        let out = out.unwrap_or_else(|| ToolOutput { text: format!("unknown tool: {name}"), is_error: true });
        if let Some(h) = self.req.hooks.as_ref().filter(|h| h.has_handlers("after_tool_call")) {
            let event = json!({"toolName": name, "params": args, "toolCallId": id, "result": out.text, "error": out.is_error.then_some(&out.text)});
            let hooks = h.clone();
            let ctx = hook_ctx(self.req);
            tokio::spawn(async move { hooks.run_observation("after_tool_call", &event, &ctx).await });
        }
        (self.observe)(RunEvent::ToolEnd {
            id: id.into(),
            name: name.into(),
            is_error: out.is_error,
            result: out.text.clone(),
        });
        if !out.is_error {
            self.out.successful_tools.push(name.to_string());
        }
        out
    }

    /// The tool calls of an assistant message, owned (the message itself is appended next).
    fn calls_of(m: &Message) -> Vec<(String, String, Value)> {
        m.tool_calls().into_iter().map(|(i, n, a)| (i.into(), n.into(), a.clone())).collect()
    }

    /// Run `calls` in order and append each result; stops early when the run is aborted.
    async fn run_calls(&mut self, calls: &[(String, String, Value)]) -> Result<(), String> {
        for (id, name, args) in calls {
            if self.cancel.is_cancelled() {
                break;
            }
            let out = self.run_tool(id, name, args).await;
            self.append(Message::ToolResult {
                tool_call_id: id.clone(),
                tool_name: name.clone(),
                content: vec![Block::Text { text: out.text }],
                is_error: out.is_error,
                timestamp: crate::now_ms(),
            })?;
        }
        Ok(())
    }

    /// The silent memory-flush turn: the agent may write notes before the context is compacted.
    /// Its failure never fails the run.
    async fn memory_flush(&mut self) -> Result<(), String> {
        let (text, stop) = (self.out.text.clone(), self.out.stop_reason);
        self.silent = true;
        self.append(Message::user(MEMORY_FLUSH_PROMPT, crate::now_ms()))?;
        for _ in 0..MEMORY_FLUSH_TURNS {
            let resp = match self.call_model().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "memory flush turn failed; compacting anyway");
                    break;
                }
            };
            self.out.usage.add(&resp.usage);
            let calls = Self::calls_of(&resp.message);
            self.append(resp.message)?;
            if calls.is_empty() || self.cancel.is_cancelled() {
                break;
            }
            self.run_calls(&calls).await?;
        }
        self.silent = false;
        self.out.text = text;
        self.out.stop_reason = stop;
        Ok(())
    }

    /// Append steered messages; true when there were any.
    fn take_steering(&mut self) -> Result<bool, String> {
        let Some(steer) = self.req.steering.clone() else { return Ok(false) };
        let messages = steer();
        for m in &messages {
            self.append(Message::user(m.clone(), crate::now_ms()))?;
        }
        Ok(!messages.is_empty())
    }

    fn over_threshold(&self, last: &Usage) -> bool {
        let window = self.req.models.iter().map(|m| m.context_window).min().unwrap_or(u64::MAX);
        let used = if last.input + last.output > 0 { last.input + last.output } else { self.ctx.estimate_tokens() };
        self.req.compaction.enabled && used + self.req.compaction.reserve_tokens > window
    }

    async fn turns(&mut self) -> Result<(), String> {
        let mut overflow_compacted = false;
        let mut auto_compacted = false;
        let mut turn = 0;
        loop {
            if turn >= self.req.max_turns {
                return Err(format!("stopped after {} model turns without a final answer", self.req.max_turns));
            }
            turn += 1;
            let resp = match self.call_model().await {
                Ok(r) => r,
                Err(ProviderError::ContextOverflow { .. }) if !overflow_compacted => {
                    overflow_compacted = true;
                    if !self.compact(CompactionReason::Overflow, true).await {
                        return Err(
                            "the conversation does not fit the model's context window and cannot be compacted further"
                                .into(),
                        );
                    }
                    auto_compacted = true;
                    continue;
                }
                Err(ProviderError::Aborted) => {
                    self.out.aborted = true;
                    return Ok(());
                }
                Err(e) => return Err(e.to_string()),
            };
            self.out.usage.add(&resp.usage);
            (self.observe)(RunEvent::Usage(resp.usage));
            if let Some(h) = self.req.hooks.as_ref().filter(|h| h.has_handlers("llm_output")) {
                let event =
                    json!({"runId": self.req.run_id, "assistantTexts": [resp.message.text()], "usage": resp.usage});
                h.run_observation("llm_output", &event, &hook_ctx(self.req)).await;
            }
            let calls = Self::calls_of(&resp.message);
            self.out.stop_reason = resp.stop_reason;
            self.out.text = resp.message.text();
            self.append(resp.message)?;
            self.run_calls(&calls).await?;
            if self.cancel.is_cancelled() {
                self.out.aborted = true;
                return Ok(());
            }
            if self.over_threshold(&resp.usage) {
                if self.req.compaction.memory_flush && !self.req.heartbeat {
                    self.memory_flush().await?;
                }
                if self.compact(CompactionReason::Threshold, false).await {
                    auto_compacted = true;
                }
            }
            if !calls.is_empty() {
                self.take_steering()?;
                continue;
            }
            // A message steered in while the model answered gets its own answer in this run.
            if self.take_steering()? {
                continue;
            }
            let visible = !self.out.text.trim().is_empty() && !is_silent(&self.out.text, self.req.heartbeat);
            if auto_compacted && !visible && !self.req.heartbeat && !self.out.continued {
                self.out.continued = true;
                self.append(Message::user(CONTINUATION_PROMPT, crate::now_ms()))?;
                continue;
            }
            return Ok(());
        }
    }
}

/// Run the agent loop for one user message.
pub async fn run(
    req: &RunRequest,
    http: &reqwest::Client,
    cancel: &CancellationToken,
    observe: &mut (dyn FnMut(RunEvent) + Send),
) -> RunOutcome {
    let ctx = match SessionContext::load(&req.transcript) {
        Ok(c) => c,
        Err(e) => return RunOutcome { error: Some(format!("cannot read the transcript: {e}")), ..Default::default() },
    };
    for w in &ctx.warnings {
        tracing::warn!(session = %req.session_key, "{w}");
    }
    let writer = TranscriptWriter::new(req.transcript.clone(), ctx.last_id.clone());
    if let Some(m) = req.models.first() {
        observe(RunEvent::Model { provider: m.provider.clone(), model: m.model.clone() });
    }
    let mut lp = Loop { req, http, cancel, observe, ctx, writer, out: RunOutcome::default(), silent: false };
    if let Err(e) = lp.append(Message::user(req.message.clone(), crate::now_ms())) {
        lp.out.error = Some(e);
        return lp.out;
    }
    if let Err(e) = lp.turns().await {
        lp.out.error = Some(e);
        lp.out.stop_reason = StopReason::Error;
    }
    if lp.out.aborted {
        lp.out.stop_reason = StopReason::Aborted;
    }
    lp.out
}
