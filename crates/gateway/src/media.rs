//! `image_generate`, `music_generate`, `video_generate`: each starts a background task (OpenAI
//! Images, MiniMax music, OpenAI Videos), answers the model at once with the task id, saves the file
//! under `<workspace>/media/`, and delivers the completion through the one policy: images and music
//! always wake the requester session; a video goes straight to the requester's chat when
//! `tools.media.asyncCompletion.directSend` is on (falling back to the wake on failure).
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use homarus_agent::media::{MediaEndpoint, MediaFile, VideoRequest};
use homarus_agent::tools::ToolOutput;
use homarus_store::{TaskQuery, TaskStatus};
use homarus_tasks::{DirectSend, NewTask};

use crate::state::GatewayState;

/// The three tools.
pub const MEDIA_TOOLS: &[&str] = &["image_generate", "music_generate", "video_generate"];

/// Provider endpoints: `models.providers.<id>.{baseUrl, apiKey}`, else the public URL and the key
/// from the environment.
fn endpoint(state: &GatewayState, provider: &str, default_url: &str, key_env: &str) -> Result<MediaEndpoint, String> {
    let cfg = state.config();
    let p = cfg.config.models.providers.get(provider);
    let api_key = p.and_then(|p| p.api_key.clone()).or_else(|| std::env::var(key_env).ok()).filter(|k| !k.is_empty());
    let Some(api_key) = api_key else {
        return Err(format!("no {provider} credentials: set {key_env} or models.providers.{provider}.apiKey"));
    };
    let base_url = p.and_then(|p| p.base_url.clone()).unwrap_or_else(|| default_url.to_string());
    Ok(MediaEndpoint { base_url: base_url.trim_end_matches('/').to_string(), api_key })
}

async fn generate(
    state: &GatewayState,
    tool: &str,
    args: &Value,
    cancel: &CancellationToken,
) -> Result<MediaFile, String> {
    let http = &state.runs.http;
    let prompt = args["prompt"].as_str().unwrap_or_default();
    match tool {
        "image_generate" => {
            let ep = endpoint(state, "openai", "https://api.openai.com/v1", "OPENAI_API_KEY")?;
            let model = args["model"].as_str().unwrap_or("gpt-image-1");
            homarus_agent::media::openai_image(http, &ep, model, prompt, args["size"].as_str(), cancel).await
        }
        "music_generate" => {
            let ep = endpoint(state, "minimax", "https://api.minimax.io", "MINIMAX_API_KEY")?;
            let model = args["model"].as_str().unwrap_or("music-2.6");
            homarus_agent::media::minimax_music(http, &ep, model, prompt, args["lyrics"].as_str(), cancel).await
        }
        _ => {
            let ep = endpoint(state, "openai", "https://api.openai.com/v1", "OPENAI_API_KEY")?;
            let poll_ms = std::env::var("HOMARUS_VIDEO_POLL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
            let r = VideoRequest {
                model: args["model"].as_str().unwrap_or("sora-2"),
                prompt,
                seconds: args["seconds"].as_u64(),
                poll_every: Duration::from_millis(poll_ms),
                deadline: Duration::from_secs(1800),
            };
            homarus_agent::media::openai_video(http, &ep, &r, cancel).await
        }
    }
}

/// Whether a finished media kind may be sent straight to the requester.
fn direct_send(state: &GatewayState, tool: &str) -> DirectSend {
    let on = state
        .config()
        .config
        .tools
        .media
        .as_ref()
        .and_then(|m| m.async_completion.as_ref())
        .and_then(|a| a.direct_send)
        .unwrap_or(false);
    // Music always takes the requester-session wake path, directSend or not; so do images.
    if on && tool == "video_generate" {
        DirectSend::Allowed
    } else {
        DirectSend::Never
    }
}

/// Run a media tool for the session `requester`.
pub async fn call(
    state: &Arc<GatewayState>,
    tool: &str,
    requester: &str,
    agent_id: &str,
    workspace: &std::path::Path,
    args: &Value,
) -> ToolOutput {
    let open = {
        let q = TaskQuery {
            statuses: vec![TaskStatus::Queued, TaskStatus::Running],
            session_key: Some(requester),
            limit: 1000,
            ..Default::default()
        };
        state.store.tasks(&q).unwrap_or_default().into_iter().filter(|t| t.kind == tool).collect::<Vec<_>>()
    };
    if args["action"] == "status" {
        return ToolOutput::ok(match open.first() {
            Some(t) => format!("{tool}: task {} is {} ({})", t.task_id, t.status.as_str(), t.label),
            None => format!("{tool}: nothing running for this session"),
        });
    }
    let Some(prompt) = args["prompt"].as_str().filter(|p| !p.trim().is_empty()) else {
        return ToolOutput::err(format!("{tool} needs \"prompt\""));
    };
    // The same request while one runs: report that one instead of starting another.
    if let Some(t) = open.iter().find(|t| t.task == prompt) {
        return ToolOutput::ok(format!(
            "{tool} is already working on this (task {}, {}); its result will arrive in this session.",
            t.task_id,
            t.status.as_str()
        ));
    }
    let run_id = format!("tool:{tool}:{}", uuid::Uuid::new_v4());
    let Some(task) = crate::background::create_task(
        state,
        NewTask {
            run_id,
            runtime: "cli".into(),
            kind: tool.into(),
            label: prompt.chars().take(80).collect(),
            task: prompt.to_string(),
            agent_id: agent_id.to_string(),
            requester_session_key: Some(requester.to_string()),
            notify_policy: "silent".into(),
            source_id: Some(tool.to_string()),
            running: true,
            ..Default::default()
        },
    ) else {
        return ToolOutput::err("cannot record the media task");
    };
    let st = state.clone();
    let (tool_name, args, dir, task_id) =
        (tool.to_string(), args.clone(), workspace.join("media"), task.task_id.clone());
    let tracked = state.runs.track(&task.run_id, async move {
        let cancel = CancellationToken::new();
        let outcome = generate(&st, &tool_name, &args, &cancel).await.and_then(|file| {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = dir.join(format!("{task_id}.{}", file.ext));
            std::fs::write(&path, &file.bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(path)
        });
        let (status, result, error) = match &outcome {
            Ok(path) => (TaskStatus::Succeeded, Some(format!("MEDIA:{}", path.display())), None),
            Err(e) => (TaskStatus::Failed, None, Some(e.clone())),
        };
        let Some(ended) = crate::background::finish_task(&st, &task_id, status, result, error) else { return };
        let label = ended.label.clone();
        let text = match &outcome {
            Ok(path) => format!("{tool_name} finished: \"{label}\"\nMEDIA:{}", path.display()),
            Err(e) => format!("{tool_name} failed: \"{label}\": {e}"),
        };
        crate::background::deliver_completion(&st, &ended, text, direct_send(&st, &tool_name));
    });
    if !tracked {
        crate::background::finish_task(
            state,
            &task.task_id,
            TaskStatus::Cancelled,
            None,
            Some("the gateway is stopping".into()),
        );
        return ToolOutput::err("the gateway is stopping; try again after it restarts");
    }
    ToolOutput::ok(format!(
        "Started {tool} (task {}). The result will arrive in this session when it is ready; do not wait for it.",
        task.task_id
    ))
}

/// Tool specs.
pub fn specs() -> Vec<homarus_agent::ToolSpec> {
    let spec = |name: &str, description: &str, parameters: Value| homarus_agent::ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters,
    };
    vec![
        spec("image_generate", "Generate an image in the background (OpenAI Images). Returns a task id at once; the image arrives in this session later. action \"status\" reports the running task.",
            json!({"type":"object","properties":{"prompt":{"type":"string"},"size":{"type":"string"},"model":{"type":"string"},"action":{"type":"string","enum":["generate","status"]}}})),
        spec("music_generate", "Generate a piece of music in the background (MiniMax). Returns a task id at once; the mp3 arrives in this session later.",
            json!({"type":"object","properties":{"prompt":{"type":"string"},"lyrics":{"type":"string"},"model":{"type":"string"},"action":{"type":"string","enum":["generate","status"]}}})),
        spec("video_generate", "Generate a video in the background (OpenAI Videos). Returns a task id at once; the video arrives later.",
            json!({"type":"object","properties":{"prompt":{"type":"string"},"seconds":{"type":"integer","minimum":1},"model":{"type":"string"},"action":{"type":"string","enum":["generate","status"]}}})),
    ]
}
