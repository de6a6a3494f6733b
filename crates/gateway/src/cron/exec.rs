//! Running one job: a system event into the main session (`main`), a turn in a fresh `cron:<jobId>`
//! session with a task record (`isolated`), or a turn in a named session (`session:<key>`); then the
//! delivery of the result (`announce` through the one completion policy, `webhook`), and the run log.
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use homarus_cron::{CronJob, Payload};
use homarus_protocol::session_key;
use homarus_tasks::{DirectSend, NewTask};

use crate::runs::RunSpec;
use crate::state::{now_ms, GatewayState};

/// Longest wait for a webhook delivery.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a run went.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub error: Option<String>,
    pub skipped: bool,
    pub summary: Option<String>,
    pub delivered: Option<bool>,
    pub delivery_status: String,
    pub delivery_error: Option<String>,
    pub session_key: Option<String>,
    pub session_id: Option<String>,
}

impl Outcome {
    pub fn failed(e: &str) -> Self {
        Outcome { error: Some(e.into()), delivery_status: "not-requested".into(), ..Default::default() }
    }

    pub fn skipped(why: &str) -> Self {
        Outcome {
            skipped: true,
            summary: Some(why.into()),
            delivery_status: "not-requested".into(),
            ..Default::default()
        }
    }
}

fn agent_of(state: &GatewayState, job: &CronJob) -> String {
    job.agent_id
        .as_deref()
        .map(session_key::normalize_agent_id)
        .unwrap_or_else(|| homarus_channels::routing::default_agent(&state.config().config))
}

/// Run the job once.
pub async fn run(state: &Arc<GatewayState>, job: &CronJob, run_id: &str) -> Outcome {
    let agent = agent_of(state, job);
    let main_key = session_key::main_session_key(&agent, None);
    match &job.payload {
        Payload::SystemEvent { text, .. } => {
            let key = job.session_key.clone().unwrap_or(main_key);
            state.system_events.push(&key, text.clone());
            if job.wake_mode == "now" {
                crate::heartbeat::request_now(state, &key, &agent, "cron");
            }
            Outcome {
                summary: Some(text.clone()),
                delivery_status: "not-requested".into(),
                session_key: Some(key),
                ..Default::default()
            }
        }
        Payload::AgentTurn { message, timeout_seconds, .. } => {
            let isolated = job.session_target == "isolated";
            let key = match job.session_target.strip_prefix("session:") {
                Some(k) => k.trim().to_lowercase(),
                None => session_key::cron_session_key(&job.id, None),
            };
            if isolated && state.store.session(&key).ok().flatten().is_some() {
                // Each isolated run starts from a fresh session.
                if let Err(e) = crate::lifecycle::reset_session(state, &key, None, "new", "cron").await {
                    return Outcome { session_key: Some(key), ..Outcome::failed(&e.message) };
                }
            }
            let task = crate::background::create_task(
                state,
                NewTask {
                    run_id: run_id.to_string(),
                    runtime: "cron".into(),
                    kind: "cron".into(),
                    label: job.name.clone(),
                    task: message.clone(),
                    agent_id: agent.clone(),
                    requester_session_key: Some(main_key),
                    child_session_key: Some(key.clone()),
                    notify_policy: "done_only".into(),
                    source_id: Some(job.id.clone()),
                    running: true,
                },
            );
            let (tx, rx) = tokio::sync::oneshot::channel::<Value>();
            let spec = RunSpec {
                run_id: run_id.to_string(),
                session_key: key.clone(),
                agent_id: agent.clone(),
                message: message.clone(),
                extra_system_prompt: Some(format!(
                    "This turn was started by the scheduled job \"{}\", not by a person typing.",
                    job.name
                )),
                timeout: timeout_seconds.filter(|s| *s > 0.0).map(Duration::from_secs_f64),
                expected_session_id: None,
                deliver: if isolated { Default::default() } else { crate::channels::Delivery::LastRoute },
            };
            if let Err(e) = crate::runs::start(state, spec, move |result| {
                let _ = tx.send(result.clone());
            }) {
                if let Some(t) = &task {
                    crate::background::finish_task(
                        state,
                        &t.task_id,
                        homarus_store::TaskStatus::Failed,
                        None,
                        Some(e.message.clone()),
                    );
                }
                return Outcome { session_key: Some(key), ..Outcome::failed(&e.message) };
            }
            let result =
                rx.await.unwrap_or_else(|_| json!({"status": "error", "error": "the run ended without a result"}));
            let text = result["text"].as_str().unwrap_or("").to_string();
            let error =
                (result["status"] != "ok").then(|| result["error"].as_str().unwrap_or("the run failed").to_string());
            let ended = task.as_ref().and_then(|t| {
                let status = crate::background::task_status_of(&result);
                crate::background::finish_task(
                    state,
                    &t.task_id,
                    status,
                    (!text.is_empty()).then(|| text.clone()),
                    error.clone(),
                )
            });
            let session_id = state.store.session(&key).ok().flatten().map(|r| r.session_id);
            let mut out = Outcome {
                error,
                summary: (!text.is_empty()).then(|| homarus_channels::clip(&text, 2000).to_string()),
                session_key: Some(key),
                session_id,
                delivery_status: "not-requested".into(),
                ..Default::default()
            };
            if out.error.is_none() {
                deliver(state, job, &text, ended.as_ref(), &mut out).await;
            }
            out
        }
    }
}

/// Send the result where `delivery` says; records `delivered`/`deliveryStatus` on `out`.
async fn deliver(
    state: &Arc<GatewayState>,
    job: &CronJob,
    text: &str,
    task: Option<&homarus_store::TaskRecord>,
    out: &mut Outcome,
) {
    let Some(d) = &job.delivery else { return };
    if homarus_agent::is_silent(text, false) || text.trim().is_empty() {
        // Intentional silence: nothing to deliver, and no failure.
        return;
    }
    match d.mode.as_str() {
        "announce" => {
            let Some(task) = task else {
                out.delivered = Some(false);
                out.delivery_status = "not-delivered".into();
                out.delivery_error = Some("no task record to deliver from".into());
                return;
            };
            let route = match (d.channel.as_deref(), d.to.as_deref()) {
                (Some(ch), Some(to)) if ch != "last" => Some(crate::channels::ChannelRoute {
                    channel: ch.to_string(),
                    account_id: d.account_id.clone().unwrap_or_else(|| "default".into()),
                    chat_type: target_kind(to),
                    to: to
                        .trim_start_matches("dm:")
                        .trim_start_matches("channel:")
                        .trim_start_matches("group:")
                        .to_string(),
                    thread_id: d
                        .thread_id
                        .as_ref()
                        .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())),
                    reply_to: None,
                }),
                _ => None,
            };
            let text = format!("⏰ {}: {text}", job.name);
            // The announce goes through the completion policy from the agent's main session, which a
            // fresh install may not have yet.
            if let Some(requester) = task.requester_session_key.as_deref() {
                if state.store.session(requester).ok().flatten().is_none() {
                    let agent = agent_of(state, job);
                    if let Err(e) = crate::lifecycle::prepare_inbound(state, requester, &agent, None).await {
                        tracing::warn!(job = %job.id, error = %e.message, "cannot create the main session to announce from");
                    }
                }
            }
            let status = crate::background::deliver_now(state, task, text, DirectSend::Allowed, route).await;
            // Handed to the main session (woken) is not proof that a person received it.
            let (delivered, status) = match status {
                "delivered" => (true, "delivered"),
                "session_queued" => (false, "unknown"),
                _ => (false, "not-delivered"),
            };
            out.delivered = Some(delivered);
            out.delivery_status = status.into();
            if status == "not-delivered" {
                out.delivery_error = Some("the requester session is gone".into());
            }
        }
        "webhook" => {
            let url = d.to.clone().unwrap_or_default();
            let body = json!({"jobId": job.id, "jobName": job.name, "status": "ok", "summary": text, "ts": now_ms(),
                              "sessionKey": out.session_key, "sessionId": out.session_id});
            let mut req = state.runs.http.post(&url).json(&body).timeout(WEBHOOK_TIMEOUT);
            if let Some(token) = state.config().config.cron.webhook_token.clone() {
                req = req.bearer_auth(token);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    out.delivered = Some(true);
                    out.delivery_status = "delivered".into();
                }
                Ok(r) => {
                    out.delivered = Some(false);
                    out.delivery_status = "not-delivered".into();
                    out.delivery_error = Some(format!("webhook answered HTTP {}", r.status()));
                }
                Err(e) => {
                    out.delivered = Some(false);
                    out.delivery_status = "not-delivered".into();
                    out.delivery_error = Some(format!("webhook: {}", e.without_url()));
                }
            }
        }
        _ => {}
    }
}

fn target_kind(to: &str) -> homarus_channels::ChatKind {
    use homarus_channels::ChatKind;
    if to.starts_with("channel:") || to.starts_with('#') || to.starts_with('!') {
        ChatKind::Channel
    } else if to.starts_with("group:") || to.starts_with('-') {
        ChatKind::Group
    } else {
        ChatKind::Direct
    }
}

/// Append a run to the log.
pub fn record_run(state: &GatewayState, job: &CronJob, run_id: &str, slot: i64, started: i64, ended: i64, o: &Outcome) {
    let status = match (&o.error, o.skipped) {
        (Some(_), _) => "error",
        (None, true) => "skipped",
        (None, false) => "ok",
    };
    let entry = json!({"ts": ended, "runId": run_id, "jobId": job.id, "jobName": job.name, "action": "finished",
        "status": status, "error": o.error, "summary": o.summary, "delivered": o.delivered,
        "deliveryStatus": o.delivery_status, "deliveryError": o.delivery_error, "sessionKey": o.session_key,
        "sessionId": o.session_id, "runAtMs": slot, "startedAtMs": started, "durationMs": ended - started,
        "nextRunAtMs": job.state.next_run_at_ms});
    if let Err(e) = state.store.cron_run_insert(&entry) {
        tracing::error!(job = %job.id, error = %e, "cannot record a cron run");
    }
}
