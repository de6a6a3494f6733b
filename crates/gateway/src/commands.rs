//! Slash commands in chat: `/new`, `/reset`, `/stop`, `/status`, `/compact`, `/model`, `/help`.
//! They answer without calling the model (`/new <text>` then runs `<text>` in the new session).
//! Unknown `/words` are ordinary messages for the model.
use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use homarus_protocol::{ErrorShape, Scope};

use crate::runs::RunSpec;
use crate::sessions::SessionService;
use crate::state::{now_ms, GatewayState};

/// The native commands: name, description, category, takes arguments.
pub const NATIVE: &[(&str, &str, &str, bool)] = &[
    ("new", "Start a new session (optionally with a first message).", "session", true),
    ("reset", "Reset the current session.", "session", true),
    ("stop", "Stop the current run.", "session", false),
    ("compact", "Compact the session context now.", "session", false),
    ("status", "Show the session, model and token counts.", "status", false),
    ("model", "Show or set the model of this session (/model provider/model).", "options", true),
    ("queue", "Set how messages sent while a turn runs are handled: /queue steer|followup|collect|interrupt [debounce:500ms cap:20 drop:summarize|old|new].", "options", true),
    ("help", "Show available commands.", "status", false),
];

/// What a command answered.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReply {
    /// Text for the user.
    pub text: String,
    /// A message to run afterwards (`/new <text>`).
    pub then_run: Option<String>,
}

fn reply(text: impl Into<String>) -> Option<CommandReply> {
    Some(CommandReply { text: text.into(), then_run: None })
}

/// Run `spec.message` as a command when it is one; `None` when it is an ordinary message.
pub async fn run(state: &Arc<GatewayState>, spec: &RunSpec, source: &str) -> Result<Option<CommandReply>, ErrorShape> {
    let text = spec.message.trim();
    let Some(rest) = text.strip_prefix('/') else { return Ok(None) };
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n.to_ascii_lowercase(), a.trim().to_string()),
        None => (rest.to_ascii_lowercase(), String::new()),
    };
    if !NATIVE.iter().any(|(n, ..)| *n == name) {
        return Ok(None);
    }
    let svc = SessionService::new(&state.store, &state.opts.state_dir);
    let key = spec.session_key.as_str();
    match name.as_str() {
        "new" | "reset" => {
            if svc.get(key).is_err() {
                crate::lifecycle::prepare_inbound(state, key, &spec.agent_id, None).await?;
            }
            let (row, _) =
                crate::lifecycle::reset_session(state, key, None, &name, &format!("{source}:/{name}")).await?;
            let label = if name == "new" { "✅ New session started" } else { "✅ Session reset" };
            Ok(Some(CommandReply {
                text: format!("{label} · {}", row.session_id),
                then_run: (!args.is_empty()).then_some(args),
            }))
        }
        "stop" => {
            let ctx = json!({"commandSource": format!("{source}:/stop")});
            state.internal_hooks.emit(&crate::automation::event("command", "stop", key, ctx)).await;
            let stopped = crate::runs::abort(state, key, None);
            let children = crate::subagents::stop_children(state, key);
            Ok(reply(match (stopped.is_empty(), children) {
                (true, 0) => "Nothing is running.".to_string(),
                (_, 0) => "⏹ Stopped.".to_string(),
                (_, n) => format!("⏹ Stopped (and {n} subagent(s))."),
            }))
        }
        "status" => {
            let row = svc.get(key)?;
            let p = &row.prefs;
            let num = |k: &str| p.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            let model = crate::runs::models_for(state, &row.agent_id)
                .await
                .map(|m| {
                    p.get("model").and_then(|v| v.as_str()).map(str::to_string).unwrap_or_else(|| m[0].reference())
                })
                .unwrap_or_else(|e| format!("none ({e})"));
            Ok(reply(format!(
                "🦞 Homarus {} · session {} ({})\nmodel: {model}\nmessages: {} · tokens in {} / out {} · compactions {}{}",
                state.opts.version,
                row.key,
                row.session_id,
                row.message_count,
                num("inputTokens"),
                num("outputTokens"),
                num("compactionCount"),
                if state.runs.session_busy(key) { "\na run is in progress" } else { "" },
            )))
        }
        "model" => {
            let mut row = crate::lifecycle::prepare_inbound(state, key, &spec.agent_id, None).await?;
            if args.is_empty() {
                let models = crate::runs::models_for(state, &row.agent_id).await.unwrap_or_default();
                let current = row.prefs.get("model").and_then(|v| v.as_str()).map(str::to_string);
                let list: Vec<String> = models.iter().map(|m| m.reference()).collect();
                return Ok(reply(format!(
                    "model: {}\nconfigured: {}",
                    current.or_else(|| list.first().cloned()).unwrap_or_else(|| "none".into()),
                    if list.is_empty() { "none".into() } else { list.join(", ") }
                )));
            }
            let models = crate::runs::models_for(state, &row.agent_id).await.map_err(ErrorShape::invalid)?;
            if !models.iter().any(|m| m.reference() == args || m.model == args) {
                let list: Vec<String> = models.iter().map(|m| m.reference()).collect();
                return Ok(reply(format!("Unknown model {args}. Configured: {}", list.join(", "))));
            }
            row.prefs.insert("model".into(), json!(args));
            row.updated_at_ms = now_ms();
            state.store.update_session(&row).map_err(crate::methods::store_error)?;
            Ok(reply(format!("Model set to {args} for this session.")))
        }
        "queue" => {
            let mut row = crate::lifecycle::prepare_inbound(state, key, &spec.agent_id, None).await?;
            if args.is_empty() {
                let p = &row.prefs;
                return Ok(reply(format!(
                    "queue: {} (debounce {} ms, cap {}, drop {})",
                    p.get("queueMode").and_then(|v| v.as_str()).unwrap_or("default"),
                    p.get("queueDebounceMs").map(|v| v.to_string()).unwrap_or_else(|| "default".into()),
                    p.get("queueCap").map(|v| v.to_string()).unwrap_or_else(|| "default".into()),
                    p.get("queueDrop").and_then(|v| v.as_str()).unwrap_or("default"),
                )));
            }
            for word in args.split_whitespace() {
                let set = match word.split_once(':') {
                    None if ["steer", "followup", "collect", "interrupt"].contains(&word) => ("queueMode", json!(word)),
                    Some(("debounce", v)) if v.trim_end_matches(char::is_alphabetic) == "0" => {
                        ("queueDebounceMs", json!(0))
                    }
                    Some(("debounce", v)) => match homarus_config::parse_duration_ms(v, 1) {
                        Some(ms) => ("queueDebounceMs", json!(ms)),
                        None => return Ok(reply(format!("/queue: debounce {v:?} is not a duration (e.g. 500ms, 2s)"))),
                    },
                    Some(("cap", v)) => match v.parse::<u64>() {
                        Ok(n) if n > 0 => ("queueCap", json!(n)),
                        _ => return Ok(reply(format!("/queue: cap {v:?} is not a positive number"))),
                    },
                    Some(("drop", v)) if ["summarize", "old", "new"].contains(&v) => ("queueDrop", json!(v)),
                    _ => return Ok(reply(format!("/queue: unknown option {word:?}"))),
                };
                row.prefs.insert(set.0.into(), set.1);
            }
            row.updated_at_ms = now_ms();
            state.store.update_session(&row).map_err(crate::methods::store_error)?;
            Ok(reply(format!("Queue settings saved for this session: {args}")))
        }
        "compact" => {
            let row = svc.get(key)?;
            let models = crate::runs::models_for(state, &row.agent_id).await.map_err(ErrorShape::invalid)?;
            let path = std::path::PathBuf::from(&row.session_file);
            let ctx = homarus_agent::context::SessionContext::load(&path).map_err(crate::methods::store_error)?;
            let hooks = crate::run_events::GatewayCompactionHooks::new(state, &row);
            let settings = crate::runs::compaction_settings(state, &row.agent_id);
            use homarus_agent::CompactionHooks;
            let mut notices = hooks.before(ctx.entries.len(), ctx.estimate_tokens()).await;
            let cancel = CancellationToken::new();
            let Some(c) = homarus_agent::compaction::compact(&state.runs.http, &models, &ctx, settings, &cancel).await
            else {
                return Ok(reply("Nothing to compact yet."));
            };
            let mut w = homarus_agent::context::TranscriptWriter::new(path, ctx.last_id.clone());
            w.compaction(&c.summary, &c.first_kept_entry_id, c.tokens_before).map_err(crate::methods::store_error)?;
            notices.extend(hooks.after(ctx.entries.len(), &c).await);
            notices.push(format!(
                "Compacted {} messages ({} → {} tokens).",
                c.compacted_count, c.tokens_before, c.tokens_after
            ));
            Ok(reply(notices.join("\n")))
        }
        _ => Ok(reply(NATIVE.iter().map(|(n, d, ..)| format!("/{n} — {d}")).collect::<Vec<_>>().join("\n"))),
    }
}

/// Show a command's reply as a finished chat turn (lifecycle start/end, `chat` final).
pub fn emit_reply(state: &GatewayState, spec: &RunSpec, reply: &CommandReply) {
    let now = now_ms();
    let base = json!({"runId": spec.run_id, "sessionKey": spec.session_key, "agentId": spec.agent_id});
    let agent = |seq: u64, data: serde_json::Value| {
        let mut p = base.clone();
        p["stream"] = json!("lifecycle");
        p["data"] = data;
        p["seq"] = json!(seq);
        p["ts"] = json!(now_ms());
        state.broadcast("agent", &p, &[Scope::READ, Scope::WRITE]);
    };
    agent(1, json!({"phase": "start", "startedAt": now}));
    agent(
        2,
        json!({"phase": "end", "startedAt": now, "endedAt": now_ms(), "aborted": false, "stopReason": "stop",
                    "terminalReply": {"disposition": "visible", "text": reply.text}}),
    );
    let mut chat = base;
    chat["seq"] = json!(2);
    chat["state"] = json!("final");
    chat["stopReason"] = json!("stop");
    chat["message"] =
        json!({"role": "assistant", "content": [{"type": "text", "text": reply.text}], "timestamp": now_ms()});
    state.broadcast("chat", &chat, &[Scope::READ, Scope::WRITE]);
}
