//! Plugin hooks around an agent turn: `before_model_resolve` (pick another model),
//! `before_prompt_build` (change the system prompt or prepend context), `before_agent_run` (block
//! the turn), `agent_end` (observe the outcome); and the internal `agent:bootstrap` event.
use std::sync::Arc;

use serde_json::{json, Value};

use homarus_agent::{RunOutcome, RunRequest};
use homarus_hooks::HookRunner;

use crate::state::GatewayState;

fn ctx(req: &RunRequest) -> Value {
    let m = req.models.first();
    json!({"runId": req.run_id, "agentId": req.agent_id, "sessionKey": req.session_key, "sessionId": req.session_id,
           "workspaceDir": req.tool_ctx.workspace.display().to_string(),
           "modelProviderId": m.map(|m| m.provider.clone()), "modelId": m.map(|m| m.model.clone())})
}

/// The last non-null value of `field` among the decisions.
fn last(decisions: &[(String, Value)], field: &str) -> Option<Value> {
    decisions.iter().rev().find_map(|(_, d)| d.get(field).filter(|v| !v.is_null()).cloned())
}

/// Apply the hooks that run before the model is called. `Err(reply)` when `before_agent_run`
/// blocked the turn (the reply tells the user why).
pub async fn before_run(state: &Arc<GatewayState>, req: &mut RunRequest) -> Result<(), String> {
    let hooks: Arc<HookRunner> = state.opts.hooks.clone();
    let bootstrap = json!({"agentId": req.agent_id, "workspaceDir": req.tool_ctx.workspace.display().to_string(),
                           "sessionKey": req.session_key});
    crate::automation::emit_detached(
        state,
        crate::automation::event("agent", "bootstrap", &req.session_key, bootstrap),
    );
    if hooks.has_handlers("before_model_resolve") {
        let out = hooks.run_decision("before_model_resolve", &json!({"prompt": req.message}), &ctx(req)).await;
        let model = last(&out.decisions, "modelOverride").and_then(|v| v.as_str().map(str::to_string));
        let provider = last(&out.decisions, "providerOverride").and_then(|v| v.as_str().map(str::to_string));
        if let Some(model) = model {
            let hit = req.models.iter().position(|m| {
                (m.model == model || m.reference() == model) && provider.as_ref().is_none_or(|p| *p == m.provider)
            });
            match hit {
                Some(i) => {
                    let chosen = req.models.remove(i);
                    req.models.insert(0, chosen);
                }
                None => tracing::warn!(%model, "before_model_resolve chose a model that is not configured; ignored"),
            }
        }
    }
    if hooks.has_handlers("before_prompt_build") {
        let event = json!({"prompt": req.message, "systemPrompt": req.system_prompt});
        let out = hooks.run_decision("before_prompt_build", &event, &ctx(req)).await;
        if let Some(s) = last(&out.decisions, "systemPrompt").and_then(|v| v.as_str().map(str::to_string)) {
            req.system_prompt = s;
        }
        if let Some(s) = last(&out.decisions, "prependSystemContext").and_then(|v| v.as_str().map(str::to_string)) {
            req.system_prompt = format!("{s}\n\n{}", req.system_prompt);
        }
        if let Some(s) = last(&out.decisions, "appendSystemContext").and_then(|v| v.as_str().map(str::to_string)) {
            req.system_prompt = format!("{}\n\n{s}", req.system_prompt);
        }
        if let Some(s) = last(&out.decisions, "prependContext").and_then(|v| v.as_str().map(str::to_string)) {
            req.message = format!("{s}\n\n{}", req.message);
        }
    }
    if hooks.has_handlers("before_agent_run") {
        let event = json!({"prompt": req.message, "systemPrompt": req.system_prompt});
        let out = hooks.run_decision("before_agent_run", &event, &ctx(req)).await;
        let blocked = out.decisions.iter().rev().find(|(_, d)| d["outcome"] == "block");
        if let Some((plugin, d)) = blocked {
            return Err(d["message"].as_str().map(str::to_string).unwrap_or_else(|| {
                format!("blocked by plugin {plugin}: {}", d["reason"].as_str().unwrap_or("no reason given"))
            }));
        }
    }
    Ok(())
}

/// `agent_end`, fire and forget.
pub fn agent_end(state: &GatewayState, req: &RunRequest, out: &RunOutcome, duration_ms: i64) {
    let hooks = state.opts.hooks.clone();
    if !hooks.has_handlers("agent_end") {
        return;
    }
    let event = json!({"success": out.error.is_none() && !out.aborted, "error": out.error, "aborted": out.aborted,
                       "durationMs": duration_ms, "messages": [{"role": "assistant", "content": out.text}],
                       "usage": {"input": out.usage.input, "output": out.usage.output}});
    let ctx = ctx(req);
    tokio::spawn(async move { hooks.run_observation("agent_end", &event, &ctx).await });
}
