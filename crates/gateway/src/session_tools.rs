//! The agent's `sessions_*` tools, answered by the gateway: list sessions, read one's history, send
//! a message to another session (a turn there, optionally waiting for its reply), and the status of
//! a session.
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use homarus_agent::tools::{ExtraTools, ToolOutput};
use homarus_agent::ToolSpec;
use homarus_store::SessionRow;

use crate::runs::RunSpec;
use crate::state::GatewayState;

/// Longest `sessions_send` wait.
const MAX_SEND_WAIT: Duration = Duration::from_secs(300);

/// The tools for a run in the session `own`.
pub struct SessionTools {
    state: Arc<GatewayState>,
    own_key: String,
    agent_id: String,
}

impl SessionTools {
    /// Tools for a run in `row`.
    pub fn new(state: &Arc<GatewayState>, row: &SessionRow) -> Self {
        Self { state: state.clone(), own_key: row.key.clone(), agent_id: row.agent_id.clone() }
    }

    fn list(&self, args: &Value) -> ToolOutput {
        let limit = args["limit"].as_u64().unwrap_or(20).min(200) as u32;
        match self.state.store.sessions_page(None, limit, 0) {
            Ok((rows, total)) => {
                let mut out = format!("{} of {total} sessions, most recent first:\n", rows.len());
                for r in rows {
                    out.push_str(&format!(
                        "- {} ({} messages, updated {}){}\n",
                        r.key,
                        r.message_count,
                        homarus_store::iso_timestamp(r.updated_at_ms),
                        r.label.map(|l| format!(" label: {l}")).unwrap_or_default()
                    ));
                }
                ToolOutput::ok(out)
            }
            Err(e) => ToolOutput::err(format!("cannot list sessions: {e}")),
        }
    }

    fn history(&self, args: &Value) -> ToolOutput {
        let Some(key) = args["sessionKey"].as_str() else {
            return ToolOutput::err("missing string argument \"sessionKey\"");
        };
        let limit = args["limit"].as_u64().unwrap_or(20).min(200) as usize;
        let row = match self.state.store.session(&key.to_lowercase()) {
            Ok(Some(r)) => r,
            Ok(None) => return ToolOutput::err(format!("unknown session: {key}")),
            Err(e) => return ToolOutput::err(format!("cannot read sessions: {e}")),
        };
        let ctx = match homarus_agent::context::SessionContext::load(std::path::Path::new(&row.session_file)) {
            Ok(c) => c,
            Err(e) => return ToolOutput::err(format!("cannot read the transcript: {e}")),
        };
        let messages = ctx.messages();
        let start = messages.len().saturating_sub(limit);
        let lines: Vec<String> = messages[start..]
            .iter()
            .filter_map(|m| {
                let role = match m {
                    homarus_agent::Message::User { .. } => "user",
                    homarus_agent::Message::Assistant { .. } => "assistant",
                    homarus_agent::Message::ToolResult { .. } => return None,
                };
                let text = m.text();
                (!text.trim().is_empty()).then(|| format!("{role}: {text}"))
            })
            .collect();
        ToolOutput::ok(if lines.is_empty() { format!("{key} has no messages") } else { lines.join("\n") })
    }

    async fn send(&self, args: &Value) -> ToolOutput {
        let (Some(key), Some(message)) = (args["sessionKey"].as_str(), args["message"].as_str()) else {
            return ToolOutput::err("sessions_send needs \"sessionKey\" and \"message\"");
        };
        let key = key.trim().to_lowercase();
        if key == self.own_key {
            return ToolOutput::err("sessions_send cannot target the current session (its turn is this one)");
        }
        let wait = args["timeoutSeconds"]
            .as_u64()
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(60))
            .min(MAX_SEND_WAIT);
        let agent_id = homarus_protocol::session_key::agent_id_of(&key)
            .map(homarus_protocol::session_key::normalize_agent_id)
            .unwrap_or_else(|| self.agent_id.clone());
        let run_id = format!("tool-send-{}", uuid::Uuid::new_v4());
        let spec = RunSpec {
            run_id: run_id.clone(),
            session_key: key.clone(),
            agent_id,
            message: format!("[message from session {}]\n{message}", self.own_key),
            extra_system_prompt: None,
            timeout: None,
            expected_session_id: None,
            deliver: Default::default(),
        };
        if let Err(e) = crate::runs::start(&self.state, spec, |_| {}) {
            return ToolOutput::err(format!("cannot send to {key}: {}", e.message));
        }
        if wait.is_zero() {
            return ToolOutput::ok(format!("sent to {key} (run {run_id}); not waiting for the reply"));
        }
        match self.state.runs.wait(&run_id, wait).await {
            Ok(Some(r)) if r["status"] == "ok" => {
                ToolOutput::ok(format!("{key} replied: {}", r["text"].as_str().unwrap_or_default()))
            }
            Ok(Some(r)) => ToolOutput::err(format!(
                "{key}: run {} ({})",
                r["status"].as_str().unwrap_or("failed"),
                r["error"].as_str().unwrap_or("")
            )),
            Ok(None) => {
                ToolOutput::ok(format!("sent to {key}; no reply within {} s (run {run_id} goes on)", wait.as_secs()))
            }
            Err(e) => ToolOutput::err(e.message),
        }
    }

    fn status(&self, args: &Value) -> ToolOutput {
        let key = args["sessionKey"].as_str().map(str::to_lowercase).unwrap_or_else(|| self.own_key.clone());
        match self.state.store.session(&key) {
            Ok(Some(r)) => {
                let num = |k: &str| r.prefs.get(k).and_then(Value::as_u64).unwrap_or(0);
                ToolOutput::ok(format!(
                    "session {} ({}), agent {}, {} messages, tokens in {} / out {}, model {}, started {}",
                    r.key,
                    r.session_id,
                    r.agent_id,
                    r.message_count,
                    num("inputTokens"),
                    num("outputTokens"),
                    r.prefs.get("model").and_then(Value::as_str).unwrap_or("default"),
                    homarus_store::iso_timestamp(r.session_started_at_ms)
                ))
            }
            Ok(None) => ToolOutput::err(format!("unknown session: {key}")),
            Err(e) => ToolOutput::err(format!("cannot read sessions: {e}")),
        }
    }
}

impl ExtraTools for SessionTools {
    fn specs(&self) -> Vec<ToolSpec> {
        let spec = |name: &str, description: &str, parameters: Value| ToolSpec {
            name: name.into(),
            description: description.into(),
            parameters,
        };
        let mut out = vec![
            spec("sessions_list", "List sessions (conversations) on this gateway, most recent first.",
                json!({"type":"object","properties":{"limit":{"type":"integer","minimum":1,"maximum":200}}})),
            spec("sessions_history", "Read the recent messages of a session.",
                json!({"type":"object","properties":{"sessionKey":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":200}},"required":["sessionKey"]})),
            spec("sessions_send", "Send a message to another session; it runs a turn there. Waits up to timeoutSeconds (default 60, 0 = do not wait) for the reply.",
                json!({"type":"object","properties":{"sessionKey":{"type":"string"},"message":{"type":"string"},"timeoutSeconds":{"type":"integer","minimum":0,"maximum":300}},"required":["sessionKey","message"]})),
            spec("session_status", "Status of a session (default: this one): messages, tokens, model.",
                json!({"type":"object","properties":{"sessionKey":{"type":"string"}}})),
            spec("sessions_spawn", "Start a subagent: a separate session works on `task` in the background and its result is reported back to this session when it finishes. mode \"run\" (default) is one-shot; \"session\" keeps the child session.",
                json!({"type":"object","properties":{"task":{"type":"string"},"label":{"type":"string"},"agentId":{"type":"string"},"mode":{"type":"string","enum":["run","session"]},"runTimeoutSeconds":{"type":"integer","minimum":1},"cleanup":{"type":"string","enum":["delete","keep"]}},"required":["task"]})),
        ];
        out.extend(crate::media::specs());
        out
    }

    fn call<'a>(&'a self, name: &'a str, args: &'a Value) -> BoxFuture<'a, Option<ToolOutput>> {
        Box::pin(async move {
            Some(match name {
                "sessions_list" => self.list(args),
                "sessions_history" => self.history(args),
                "sessions_send" => self.send(args).await,
                "session_status" => self.status(args),
                "sessions_spawn" => crate::subagents::spawn(&self.state, &self.own_key, &self.agent_id, args).await,
                t if crate::media::MEDIA_TOOLS.contains(&t) => {
                    let workspace = crate::runs::workspace_dir(&self.state, &self.agent_id);
                    crate::media::call(&self.state, t, &self.own_key, &self.agent_id, &workspace, args).await
                }
                _ => return None,
            })
        })
    }
}
