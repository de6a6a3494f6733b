//! From agent-loop events to the protocol's `agent` and `chat` events, with the shapes of the real
//! OpenClaw frames (`openclaw-interop.md` §4): `agent` `{runId, stream, data, sessionKey, sessionId,
//! agentId, seq, ts}` with streams `lifecycle`, `assistant`, `tool`, `usage`, `compaction`; `chat`
//! `{runId, sessionKey, agentId, seq, state: delta|final|aborted|error, …}`.
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use homarus_agent::{is_silent, Compacted, RunEvent, RunOutcome};
use homarus_protocol::Scope;
use homarus_store::SessionRow;

use crate::runs::RunSpec;
use crate::state::{now_ms, GatewayState};

/// Emits one run's events.
pub struct EventSink<'a> {
    state: &'a Arc<GatewayState>,
    run_id: String,
    session_key: String,
    agent_id: String,
    /// Set once the session is known.
    pub session_id: Option<String>,
    seq: u64,
    notices: Vec<String>,
}

fn assistant_message(text: &str) -> Value {
    json!({"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": now_ms()})
}

impl<'a> EventSink<'a> {
    /// A sink for `spec`.
    pub fn new(state: &'a Arc<GatewayState>, spec: &RunSpec) -> Self {
        Self {
            state,
            run_id: spec.run_id.clone(),
            session_key: spec.session_key.clone(),
            agent_id: spec.agent_id.clone(),
            session_id: None,
            seq: 0,
            notices: Vec::new(),
        }
    }

    fn agent(&mut self, stream: &str, data: Value) {
        self.seq += 1;
        let mut payload = json!({
            "runId": self.run_id, "stream": stream, "data": data, "sessionKey": self.session_key,
            "agentId": self.agent_id, "seq": self.seq, "ts": now_ms(), "isHeartbeat": false,
        });
        if let Some(id) = &self.session_id {
            payload["sessionId"] = json!(id);
        }
        self.state.broadcast("agent", &payload, &[Scope::READ, Scope::WRITE]);
    }

    fn chat(&self, state: &str, extra: Value) {
        let mut payload = json!({"runId": self.run_id, "sessionKey": self.session_key, "agentId": self.agent_id, "seq": self.seq, "state": state});
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        self.state.to_run_listener(&self.run_id, &payload);
        self.state.broadcast("chat", &payload, &[Scope::READ, Scope::WRITE]);
    }

    /// `lifecycle start`.
    pub fn lifecycle_start(&mut self, started_at: i64) {
        self.agent("lifecycle", json!({"phase": "start", "startedAt": started_at}));
    }

    /// Map one loop event.
    pub fn on_event(&mut self, ev: RunEvent) {
        match ev {
            RunEvent::Model { provider, model } => {
                self.agent("lifecycle", json!({"phase": "model", "provider": provider, "model": model}))
            }
            RunEvent::Assistant { text, delta } => {
                self.agent("assistant", json!({"text": text, "delta": delta}));
                self.chat("delta", json!({"deltaText": delta, "message": assistant_message(&text)}));
            }
            RunEvent::ToolStart { id, name, args } => {
                self.agent("tool", json!({"phase": "start", "name": name, "toolCallId": id, "args": args}))
            }
            RunEvent::ToolEnd { id, name, is_error, result } => self.agent(
                "tool",
                json!({"phase": "result", "name": name, "toolCallId": id, "isError": is_error, "result": result}),
            ),
            RunEvent::Usage(u) => self.agent("usage", json!({"inputTokens": u.input, "outputTokens": u.output})),
            RunEvent::CompactionStart { reason, message_count, token_count, messages } => {
                self.notices.extend(messages.iter().cloned());
                self.agent(
                    "compaction",
                    json!({"phase": "start", "reason": reason.as_str(), "messageCount": message_count, "tokenCount": token_count, "messages": messages}),
                )
            }
            RunEvent::CompactionEnd { reason, result, will_retry, messages } => {
                self.notices.extend(messages.iter().cloned());
                let mut data = json!({"phase": "end", "reason": reason.as_str(), "willRetry": will_retry, "completed": result.is_some(), "messages": messages});
                if let Some(c) = result {
                    data["tokensBefore"] = json!(c.tokens_before);
                    data["tokensAfter"] = json!(c.tokens_after);
                }
                self.agent("compaction", data)
            }
        }
    }

    /// The run failed before or during the loop.
    pub fn failed(&mut self, started_at: i64, message: &str) -> Value {
        self.failed_kind(started_at, message, "unknown")
    }

    fn failed_kind(&mut self, started_at: i64, message: &str, kind: &str) -> Value {
        let ended = now_ms();
        self.agent("lifecycle", json!({"phase": "error", "error": message, "endedAt": ended}));
        self.chat("error", json!({"errorMessage": message, "errorKind": kind}));
        json!({"runId": self.run_id, "status": "error", "error": message, "startedAt": started_at, "endedAt": ended,
               "sessionKey": self.session_key, "agentId": self.agent_id})
    }

    /// The loop ended; emit the terminal events and build the run's result.
    pub fn finish(&mut self, started_at: i64, out: &RunOutcome, timed_out: Option<Duration>) -> Value {
        if let Some(t) = timed_out {
            return self.failed_kind(started_at, &format!("run timed out after {} s", t.as_secs()), "timeout");
        }
        if let Some(e) = &out.error {
            let kind = if e.contains("context window") {
                "context_length"
            } else if e.contains("429") {
                "rate_limit"
            } else {
                "unknown"
            };
            return self.failed_kind(started_at, e, kind);
        }
        let ended = now_ms();
        let stop = out.stop_reason.as_str();
        if out.aborted {
            self.agent("lifecycle", json!({"phase": "end", "startedAt": started_at, "endedAt": ended, "aborted": true, "stopReason": "aborted"}));
            self.chat("aborted", json!({"stopReason": "aborted"}));
            return json!({"runId": self.run_id, "status": "aborted", "startedAt": started_at, "endedAt": ended,
                          "sessionKey": self.session_key, "agentId": self.agent_id});
        }
        let silent = out.text.trim().is_empty() || is_silent(&out.text, false);
        let disposition = if silent { "silent" } else { "visible" };
        self.agent(
            "lifecycle",
            json!({"phase": "end", "startedAt": started_at, "endedAt": ended, "aborted": false, "stopReason": stop,
                   "terminalReply": {"disposition": disposition, "text": out.text},
                   "terminalReceipt": {"runId": self.run_id, "sessionId": self.session_id, "turnId": self.run_id,
                       "effective": {"provider": out.provider, "model": out.model}, "successfulToolNames": out.successful_tools,
                       "terminalDisposition": disposition}}),
        );
        let mut payloads: Vec<Value> = self.notices.iter().map(|n| json!({"text": n, "mediaUrl": null})).collect();
        if silent {
            self.chat("final", json!({"stopReason": stop}));
        } else {
            self.chat("final", json!({"stopReason": stop, "message": assistant_message(&out.text)}));
            payloads.push(json!({"text": out.text, "mediaUrl": null}));
        }
        json!({
            "runId": self.run_id, "status": "ok", "startedAt": started_at, "endedAt": ended,
            "sessionKey": self.session_key, "agentId": self.agent_id, "text": out.text,
            "payloads": payloads,
            "meta": {"durationMs": ended - started_at, "agentMeta": {"sessionId": self.session_id, "provider": out.provider,
                "model": out.model, "usage": {"input": out.usage.input, "output": out.usage.output,
                "cacheRead": out.usage.cache_read, "cacheWrite": out.usage.cache_write,
                "total": out.usage.input + out.usage.output}, "compactions": out.compactions}},
        })
    }
}

/// Internal `session:compact:*` hooks and plugin `before_compaction`/`after_compaction` around a
/// run's compactions; `agents.defaults.compaction.notifyUser` adds the bundled notices.
pub struct GatewayCompactionHooks {
    state: Arc<GatewayState>,
    session_key: String,
    ctx: Value,
    notify_user: bool,
}

impl GatewayCompactionHooks {
    /// Hooks for the session `row`.
    pub fn new(state: &Arc<GatewayState>, row: &SessionRow) -> Self {
        let notify_user =
            state.config().config.agents.defaults.compaction.as_ref().and_then(|c| c.notify_user).unwrap_or(false);
        Self {
            state: state.clone(),
            session_key: row.key.clone(),
            ctx: json!({"agentId": row.agent_id, "sessionId": row.session_id, "sessionKey": row.key}),
            notify_user,
        }
    }

    fn plugin(&self, hook: &'static str, event: Value) {
        let hooks = self.state.opts.hooks.clone();
        if hooks.has_handlers(hook) {
            let ctx = self.ctx.clone();
            tokio::spawn(async move { hooks.run_observation(hook, &event, &ctx).await });
        }
    }

    async fn internal(&self, action: &str, context: Value, fallback: impl FnOnce(&Value) -> String) -> Vec<String> {
        let event = crate::automation::event("session", action, &self.session_key, context.clone());
        let mut messages = self.state.internal_hooks.emit(&event).await;
        if messages.is_empty()
            && self.notify_user
            && !self.state.internal_hooks.hooks().any(|h| h.name == "compaction-notifier")
        {
            messages.push(fallback(&context));
        }
        messages
    }
}

impl homarus_agent::CompactionHooks for GatewayCompactionHooks {
    fn before(&self, message_count: usize, token_count: u64) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            self.plugin("before_compaction", json!({"messageCount": message_count, "tokenCount": token_count}));
            let ctx = json!({"messageCount": message_count, "tokenCount": token_count});
            self.internal("compact:before", ctx, crate::automation::compaction_before_notice).await
        })
    }

    fn after(&self, message_count: usize, c: &Compacted) -> BoxFuture<'_, Vec<String>> {
        let ctx = json!({"messageCount": message_count, "compactedCount": c.compacted_count, "summaryLength": c.summary.len(),
                         "tokensBefore": c.tokens_before, "tokensAfter": c.tokens_after});
        Box::pin(async move {
            self.plugin("after_compaction", ctx.clone());
            self.internal("compact:after", ctx, crate::automation::compaction_after_notice).await
        })
    }
}
