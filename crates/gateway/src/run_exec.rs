//! Executing one run: the session (created, or reset when stale), the models, the workspace prompt,
//! the agent loop, and the session's counters afterwards.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use homarus_agent::{CompactionSettings, RetryPolicy, RunRequest, ToolContext};
use homarus_store::SessionRow;

use crate::run_events::EventSink;
use crate::runs::RunSpec;
use crate::state::GatewayState;

/// Default run timeout (`agents.defaults.timeoutSeconds`).
const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// Resolve the models `agent_id` uses (probing a local Ollama when nothing is configured).
pub async fn models_for(state: &GatewayState, agent_id: &str) -> Result<Vec<homarus_agent::ResolvedModel>, String> {
    let cfg = state.config();
    let env = |k: &str| std::env::var(k).ok();
    match homarus_agent::resolve_models(&cfg.config, agent_id, &env, None) {
        Ok(m) => Ok(m),
        Err(homarus_agent::ResolveError::NoModel) => {
            let detected = homarus_agent::provider::detect_ollama(&state.runs.http).await;
            homarus_agent::resolve_models(&cfg.config, agent_id, &env, detected.as_deref()).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The agent's workspace folder: `agents.entries.<id>.workspace`, `agents.defaults.workspace`
/// (for `main`), else `<stateDir>/workspace[-<id>]`.
pub fn workspace_dir(state: &GatewayState, agent_id: &str) -> PathBuf {
    workspace_for(&state.config().config, &state.opts.state_dir, agent_id)
}

/// [`workspace_dir`] from a config and state folder.
pub fn workspace_for(cfg: &homarus_config::HomarusConfig, state_dir: &std::path::Path, agent_id: &str) -> PathBuf {
    let agents = &cfg.agents;
    let configured = agents.entries.get(agent_id).and_then(|e| e.workspace.clone()).or_else(|| {
        if agent_id == "main" {
            agents.defaults.workspace.clone()
        } else {
            None
        }
    });
    match configured {
        Some(p) => match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => PathBuf::from(p),
        },
        None if agent_id == "main" => state_dir.join("workspace"),
        None => state_dir.join(format!("workspace-{agent_id}")),
    }
}

pub(crate) fn compaction_settings(state: &GatewayState, agent_id: &str) -> CompactionSettings {
    let cfg = state.config();
    let agents = &cfg.config.agents;
    let c = agents
        .entries
        .get(agent_id)
        .and_then(|e| e.compaction.clone())
        .or_else(|| agents.defaults.compaction.clone())
        .unwrap_or_default();
    let d = CompactionSettings::default();
    CompactionSettings {
        enabled: c.enabled.unwrap_or(d.enabled),
        reserve_tokens: c.reserve_tokens.unwrap_or(d.reserve_tokens),
        keep_recent_tokens: c.keep_recent_tokens.unwrap_or(d.keep_recent_tokens),
        memory_flush: c.memory_flush.and_then(|m| m.enabled).unwrap_or(d.memory_flush),
    }
}

/// Build the run request for `row`; errors are user-facing (no model configured, workspace).
async fn build_request(state: &Arc<GatewayState>, spec: &RunSpec, row: &SessionRow) -> Result<RunRequest, String> {
    let cfg = state.config();
    let mut models = models_for(state, &spec.agent_id).await?;
    // A session-level `/model` choice goes first.
    if let Some(pref) = row.prefs.get("model").and_then(Value::as_str) {
        if let Some(i) = models.iter().position(|m| m.reference() == pref || m.model == pref) {
            let chosen = models.remove(i);
            models.insert(0, chosen);
        }
    }
    let workspace = workspace_dir(state, &spec.agent_id);
    homarus_agent::workspace::ensure_workspace(&workspace)
        .map_err(|e| format!("cannot prepare the workspace {}: {e}", workspace.display()))?;
    let agents = &cfg.config.agents;
    let max_chars = agents
        .entries
        .get(&spec.agent_id)
        .and_then(|e| e.bootstrap_max_chars)
        .or(agents.defaults.bootstrap_max_chars)
        .map(|n| n as usize)
        .unwrap_or(homarus_agent::workspace::DEFAULT_BOOTSTRAP_MAX_CHARS);
    let mut files = homarus_agent::workspace::load_bootstrap(&workspace, max_chars);
    if let crate::channels::Delivery::Heartbeat { light_context, .. } = &spec.deliver {
        // A heartbeat reads HEARTBEAT.md; with lightContext it is the only workspace file injected.
        if *light_context {
            files.clear();
        }
        let path = workspace.join("HEARTBEAT.md");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let content = homarus_channels::clip(&text, max_chars).to_string();
            let truncated = content.len() < text.len();
            files.push(homarus_agent::workspace::BootstrapFile {
                name: "HEARTBEAT.md".into(),
                path,
                content,
                truncated,
            });
        }
    }
    let session_tools = Arc::new(crate::session_tools::SessionTools::new(state, row));
    let mut tools = homarus_agent::tools::builtin_specs();
    tools.extend(homarus_agent::tools::ExtraTools::specs(session_tools.as_ref()));
    let tool_names: Vec<String> = tools.iter().map(|t| t.name.clone()).collect();
    let system_prompt = homarus_agent::workspace::system_prompt(&homarus_agent::workspace::PromptContext {
        agent_id: &spec.agent_id,
        workspace: &workspace,
        tools: &tool_names,
        model: &models[0].reference(),
        files: &files,
        extra: spec.extra_system_prompt.as_deref(),
    });
    Ok(RunRequest {
        run_id: spec.run_id.clone(),
        agent_id: spec.agent_id.clone(),
        session_key: row.key.clone(),
        session_id: row.session_id.clone(),
        transcript: PathBuf::from(&row.session_file),
        message: spec.message.clone(),
        models,
        system_prompt,
        tools,
        tool_ctx: ToolContext {
            workspace,
            exec_timeout: Duration::from_secs(120),
            http: state.runs.http.clone(),
            memory_db: state.opts.state_dir.join("agents").join(&spec.agent_id).join("memory.sqlite"),
        },
        retry: RetryPolicy::default(),
        compaction: compaction_settings(state, &spec.agent_id),
        max_turns: homarus_agent::run::DEFAULT_MAX_TURNS,
        heartbeat: matches!(spec.deliver, crate::channels::Delivery::Heartbeat { .. }),
        hooks: Some(state.opts.hooks.clone()),
        compaction_hooks: Some(Arc::new(crate::run_events::GatewayCompactionHooks::new(state, row))),
        steering: None,
        extra_tools: Some(session_tools),
    })
}

fn run_timeout(state: &GatewayState, spec: &RunSpec) -> Duration {
    let cfg = state.config();
    let agents = &cfg.config.agents;
    spec.timeout
        .or_else(|| {
            agents
                .entries
                .get(&spec.agent_id)
                .and_then(|e| e.timeout_seconds)
                .or(agents.defaults.timeout_seconds)
                .map(Duration::from_secs)
        })
        .unwrap_or(DEFAULT_RUN_TIMEOUT)
}

/// Run to the end; the result is `{runId, status, startedAt, endedAt, text?, error?, …}`.
pub(crate) async fn execute(
    state: &Arc<GatewayState>,
    spec: &RunSpec,
    cancel: &CancellationToken,
    started_at: i64,
    steering: Option<Arc<dyn Fn() -> Vec<String> + Send + Sync>>,
) -> Value {
    let mut sink = EventSink::new(state, spec);
    let row = match crate::lifecycle::prepare_inbound(
        state,
        &spec.session_key,
        &spec.agent_id,
        spec.expected_session_id.as_deref(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return sink.failed(started_at, &e.message),
    };
    sink.session_id = Some(row.session_id.clone());
    let channel_id = match &spec.deliver {
        crate::channels::Delivery::Origin { route, record } => {
            if *record {
                crate::channels::record_route(state, &row.key, route);
            }
            route.channel.clone()
        }
        // The gateway's own chat surface is the channel of chat.send/agent messages ("webchat", as OpenClaw).
        _ => "webchat".to_string(),
    };
    let received = json!({"from": "operator", "content": spec.message, "channelId": channel_id, "metadata": {"runId": spec.run_id}});
    crate::automation::emit_detached(state, crate::automation::event("message", "received", &row.key, received));
    let mut req = match build_request(state, spec, &row).await {
        Ok(mut r) => {
            r.steering = steering;
            r
        }
        Err(e) => {
            crate::channels::deliver_reply(state, &spec.deliver, &row.key, &format!("⚠️ {e}"), None).await;
            return sink.failed(started_at, &e);
        }
    };
    sink.lifecycle_start(started_at);
    if let Err(reply) = crate::turn_hooks::before_run(state, &mut req).await {
        // Blocked by a plugin: the user gets the plugin's message and the model is not called.
        let outcome = homarus_agent::RunOutcome { text: reply, ..Default::default() };
        return sink.finish(started_at, &outcome, None);
    }
    let timeout = run_timeout(state, spec);
    let timer = {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            c.cancel();
        })
    };
    let draft = crate::channels::draft::start(state, &spec.deliver);
    let outcome = homarus_agent::run(&req, &state.runs.http, cancel, &mut |ev| {
        if let (Some(d), homarus_agent::RunEvent::Assistant { text, .. }) = (&draft, &ev) {
            d.update(text);
        }
        sink.on_event(ev)
    })
    .await;
    let draft_id = match draft {
        Some(d) => d.finish().await,
        None => None,
    };
    let timed_out = timer.is_finished() && outcome.aborted;
    timer.abort();
    crate::lifecycle::record_turn(state, &row, &outcome);
    crate::turn_hooks::agent_end(state, &req, &outcome, crate::state::now_ms() - started_at);
    let visible = outcome.error.is_none()
        && !outcome.aborted
        && !homarus_agent::is_silent(&outcome.text, false)
        && !outcome.text.is_empty();
    if let crate::channels::Delivery::Heartbeat { ack_max_chars, to_last, .. } = &spec.deliver {
        let shown = if visible { crate::heartbeat::strip_ack(&outcome.text, *ack_max_chars) } else { None };
        if let (Some(text), true) = (shown, *to_last) {
            let last = crate::channels::Delivery::LastRoute;
            crate::channels::deliver_reply(state, &last, &row.key, &text, None).await;
        }
    } else if spec.deliver == crate::channels::Delivery::Operator {
        if visible {
            let sent = json!({"to": "operator", "content": outcome.text, "success": true, "channelId": "webchat"});
            crate::automation::emit_detached(state, crate::automation::event("message", "sent", &row.key, sent));
        }
    } else if visible {
        crate::channels::deliver_reply(state, &spec.deliver, &row.key, &outcome.text, draft_id).await;
    } else if let (Some(e), false) = (&outcome.error, outcome.aborted) {
        // A chat user must not be left without an answer: say the turn failed.
        crate::channels::deliver_reply(state, &spec.deliver, &row.key, &format!("⚠️ {e}"), draft_id).await;
    }
    sink.finish(started_at, &outcome, timed_out.then_some(timeout))
}
