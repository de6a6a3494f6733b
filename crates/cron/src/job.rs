//! A cron job in OpenClaw's `CronJob` shape, built from `cron.add` params and changed by
//! `cron.update` patches; and what a finished run does to its state (backoff, auto-disable).
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schedule::{iso, parse_at, Schedule};

/// Error backoff after consecutive failures: 30 s, 1 min, 5 min, 15 min, then 60 min.
pub const BACKOFF_MS: [i64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];
/// A recurring job is disabled after this many consecutive failures.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 10;

/// What a job does when it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Payload {
    /// Queue a system event into the target session (main-session jobs).
    SystemEvent {
        /// The event text.
        text: String,
        /// Other OpenClaw keys, kept.
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    /// Run an agent turn with this message (isolated and session jobs).
    #[serde(rename_all = "camelCase")]
    AgentTurn {
        /// The message.
        message: String,
        /// Model override (`provider/model`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// Run timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<f64>,
        /// Other OpenClaw keys (`thinking`, `lightContext`, …), kept.
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
}

/// Where a run's result goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `none`, `announce` or `webhook`.
    pub mode: String,
    /// Channel id, or `last` (the agent's main session's conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Conversation (announce) or URL (webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Channel account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Thread or topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Value>,
    /// A failed delivery does not fail the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_effort: Option<bool>,
    /// Other OpenClaw keys, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The job's run state (`state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    /// Next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<i64>,
    /// A run in progress since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at_ms: Option<i64>,
    /// Last run start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at_ms: Option<i64>,
    /// `ok`, `error`, `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<String>,
    /// Deprecated alias of `lastRunStatus` (OpenClaw still sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    /// Last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Last run's duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<i64>,
    /// Failures in a row.
    #[serde(default)]
    pub consecutive_errors: u32,
    /// Whether the last result reached its destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered: Option<bool>,
    /// `delivered`, `not-delivered`, `unknown`, `not-requested`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_status: Option<String>,
    /// Why the last delivery failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_error: Option<String>,
    /// Why the scheduler disabled the job (`{reason: "consecutive-failures", atMs}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_disabled: Option<Value>,
}

/// A cron job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJob {
    /// Job id.
    pub id: String,
    /// The agent that runs it (default: the default agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// For `sessionTarget: "session:<key>"` and wake lanes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Runs on its schedule.
    pub enabled: bool,
    /// Remove after a successful run (default true for `at` jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_run: Option<bool>,
    /// Created.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
    /// When.
    pub schedule: Schedule,
    /// `main`, `isolated`, or `session:<key>`.
    pub session_target: String,
    /// `now` or `next-heartbeat` (main-session jobs: wake the session at once, or leave the event for
    /// the next heartbeat).
    pub wake_mode: String,
    /// What.
    pub payload: Payload,
    /// Where the result goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Run state.
    #[serde(default)]
    pub state: JobState,
    /// Other OpenClaw keys (`displayName`, `owner`, `failureAlert`, …), kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Keys a job has that `cron.add` may not set.
const SERVER_KEYS: &[&str] = &["id", "createdAtMs", "updatedAtMs", "state"];
/// OpenClaw schedule and payload kinds Homarus does not run.
const UNSUPPORTED: &[(&str, &str)] =
    &[("on-exit", "schedule"), ("stream", "schedule"), ("command", "payload"), ("script", "payload")];

fn at(path: &str, e: impl std::fmt::Display) -> String {
    format!("invalid params: at /{path}: {e}")
}

impl CronJob {
    /// Build a job from `cron.add` params. Relative `at` times are resolved against `now_ms`.
    pub fn from_add(params: &Value, now_ms: i64) -> Result<CronJob, String> {
        let Some(obj) = params.as_object() else { return Err(at("", "must be an object")) };
        for k in SERVER_KEYS {
            if obj.contains_key(*k) {
                return Err(at(k, "set by the server"));
            }
        }
        let mut v = Value::Object(obj.clone());
        v["id"] = Value::String(uuid::Uuid::new_v4().to_string());
        v["createdAtMs"] = now_ms.into();
        v["updatedAtMs"] = now_ms.into();
        if v.get("enabled").is_none() {
            v["enabled"] = true.into();
        }
        let job = Self::parse(v, now_ms)?;
        job.check()?;
        Ok(job)
    }

    fn parse(mut v: Value, now_ms: i64) -> Result<CronJob, String> {
        for (kind, field) in UNSUPPORTED {
            if v[*field]["kind"] == *kind {
                return Err(at(&format!("{field}/kind"), format!("{kind:?} is not supported by Homarus")));
            }
        }
        // Resolve a relative `at` once, so the job keeps an absolute time.
        if v["schedule"]["kind"] == "at" {
            if let Some(s) = v["schedule"]["at"].as_str() {
                let t = parse_at(s, now_ms).map_err(|e| at("schedule/at", e))?;
                v["schedule"]["at"] = Value::String(iso(t));
            }
        }
        serde_json::from_value::<CronJob>(v).map_err(|e| {
            let msg = e.to_string();
            let field = ["schedule", "payload", "delivery", "sessionTarget", "wakeMode", "name"]
                .into_iter()
                .find(|f| msg.contains(f))
                .unwrap_or("");
            at(field, msg)
        })
    }

    /// The job's own consistency rules.
    pub fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err(at("name", "must not be empty"));
        }
        self.schedule.validate().map_err(|e| {
            let (field, msg) = e.split_once(": ").unwrap_or(("schedule", &e));
            at(&field.replace('.', "/"), msg)
        })?;
        if !matches!(self.wake_mode.as_str(), "now" | "next-heartbeat") {
            return Err(at("wakeMode", "must be \"now\" or \"next-heartbeat\""));
        }
        match (self.session_target.as_str(), &self.payload) {
            ("main", Payload::SystemEvent { .. }) => {}
            ("main", _) => {
                return Err(at("payload/kind", "a main-session job queues a system event: use kind \"systemEvent\""))
            }
            ("isolated", Payload::AgentTurn { .. }) => {}
            ("isolated", _) => {
                return Err(at("payload/kind", "an isolated job runs an agent turn: use kind \"agentTurn\""))
            }
            (t, Payload::AgentTurn { .. }) if t.strip_prefix("session:").is_some_and(|k| !k.trim().is_empty()) => {}
            (t, _) if t.starts_with("session:") => {
                return Err(at("payload/kind", "a session job runs an agent turn: use kind \"agentTurn\""))
            }
            ("current", _) => {
                return Err(at("sessionTarget", "\"current\" needs a creating conversation; use \"session:<key>\""))
            }
            (t, _) => {
                return Err(at("sessionTarget", format!("{t:?}: use \"main\", \"isolated\" or \"session:<key>\"")))
            }
        }
        match (&self.payload, self.payload_text().trim().is_empty()) {
            (Payload::SystemEvent { .. }, true) => return Err(at("payload/text", "must not be empty")),
            (Payload::AgentTurn { .. }, true) => return Err(at("payload/message", "must not be empty")),
            _ => {}
        }
        if let Some(d) = &self.delivery {
            match d.mode.as_str() {
                "none" | "announce" => {}
                "webhook" => {
                    let to = d.to.as_deref().unwrap_or("");
                    if !(to.starts_with("http://") || to.starts_with("https://")) {
                        return Err(at("delivery/to", "a webhook delivery needs an http(s) URL"));
                    }
                }
                m => return Err(at("delivery/mode", format!("{m:?}: use \"none\", \"announce\" or \"webhook\""))),
            }
        }
        Ok(())
    }

    /// The event text or the turn's message.
    pub fn payload_text(&self) -> &str {
        match &self.payload {
            Payload::SystemEvent { text, .. } => text,
            Payload::AgentTurn { message, .. } => message,
        }
    }

    /// Apply a `cron.update` patch (JSON merge: `null` clears an optional key).
    pub fn patched(&self, patch: &Value, now_ms: i64) -> Result<CronJob, String> {
        let Some(p) = patch.as_object() else { return Err(at("patch", "must be an object")) };
        for k in SERVER_KEYS {
            if p.contains_key(*k) {
                return Err(at(&format!("patch/{k}"), "set by the server"));
            }
        }
        let mut v = serde_json::to_value(self).map_err(|e| e.to_string())?;
        for (k, val) in p {
            if val.is_null() {
                v.as_object_mut().map(|o| o.remove(k));
            } else {
                v[k] = val.clone();
            }
        }
        v["updatedAtMs"] = now_ms.into();
        let mut job = Self::parse(v, now_ms).map_err(|e| e.replacen("at /", "at /patch/", 1))?;
        job.check().map_err(|e| e.replacen("at /", "at /patch/", 1))?;
        if p.contains_key("schedule") || p.get("enabled") == Some(&Value::Bool(true)) {
            // A new schedule or a re-enable starts afresh (and clears an auto-disable).
            job.state.consecutive_errors = 0;
            job.state.auto_disabled = None;
            job.state.next_run_at_ms = None;
        }
        Ok(job)
    }

    /// Remove after success: explicit `deleteAfterRun`, else true for `at` jobs.
    pub fn deletes_after_success(&self) -> bool {
        self.delete_after_run.unwrap_or(matches!(self.schedule, Schedule::At { .. }))
    }

    /// The next run after `after_ms` by the schedule alone.
    pub fn next_by_schedule(&self, after_ms: i64) -> Option<i64> {
        self.schedule.next_after(after_ms, &self.id, self.created_at_ms)
    }

    /// Record a finished run started at `started_ms` and scheduled for `slot_ms`: status, error
    /// backoff, auto-disable. Returns the job's next run (`None`: no more runs).
    pub fn finish_run(
        &mut self,
        slot_ms: i64,
        started_ms: i64,
        ended_ms: i64,
        error: Option<&str>,
        skipped: bool,
    ) -> Option<i64> {
        let st = &mut self.state;
        st.running_at_ms = None;
        st.last_run_at_ms = Some(started_ms);
        st.last_duration_ms = Some(ended_ms - started_ms);
        let status = match (error, skipped) {
            (Some(_), _) => "error",
            (None, true) => "skipped",
            (None, false) => "ok",
        };
        st.last_run_status = Some(status.into());
        st.last_status = Some(status.into());
        st.last_error = error.map(str::to_string);
        if error.is_some() {
            st.consecutive_errors += 1;
        } else if !skipped {
            st.consecutive_errors = 0;
        }
        let errors = st.consecutive_errors;
        let one_shot = matches!(self.schedule, Schedule::At { .. });
        if one_shot {
            // A one-shot never repeats; a failed one stays, disabled, for inspection.
            if error.is_some() {
                self.enabled = false;
            }
            self.state.next_run_at_ms = None;
            return None;
        }
        if errors >= MAX_CONSECUTIVE_ERRORS {
            self.enabled = false;
            self.state.auto_disabled = Some(serde_json::json!({"reason": "consecutive-failures", "atMs": ended_ms}));
            self.state.next_run_at_ms = None;
            return None;
        }
        let mut next = self.next_by_schedule(slot_ms.max(ended_ms - 1));
        if errors > 0 {
            let backoff = BACKOFF_MS[(errors as usize - 1).min(BACKOFF_MS.len() - 1)];
            next = next.map(|n| n.max(ended_ms + backoff));
        }
        self.state.next_run_at_ms = next;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_790_000_000_000;

    fn add(v: Value) -> Result<CronJob, String> {
        CronJob::from_add(&v, T0)
    }

    #[test]
    fn add_validates_with_param_paths() {
        let ok = add(json!({"name": "standup", "schedule": {"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Paris"},
                            "sessionTarget": "isolated", "wakeMode": "now", "payload": {"kind": "agentTurn", "message": "Summarize"},
                            "delivery": {"mode": "announce", "channel": "telegram", "to": "123"}, "displayName": "Standup"}))
        .unwrap();
        assert!(ok.enabled);
        assert_eq!(ok.extra["displayName"], "Standup", "OpenClaw keys are kept");
        let e = |v: Value| add(v).unwrap_err();
        let base = json!({"name": "x", "schedule": {"kind": "every", "everyMs": 1000}, "sessionTarget": "main",
                          "wakeMode": "now", "payload": {"kind": "systemEvent", "text": "tick"}});
        assert!(add(base.clone()).is_ok());
        let mut v = base.clone();
        v["payload"] = json!({"kind": "agentTurn", "message": "hi"});
        assert!(e(v).starts_with("invalid params: at /payload/kind: a main-session job"));
        let mut v = base.clone();
        v["schedule"] = json!({"kind": "cron", "expr": "not cron"});
        assert!(e(v).starts_with("invalid params: at /schedule/expr:"));
        let mut v = base.clone();
        v["schedule"] = json!({"kind": "on-exit", "command": "x"});
        assert!(e(v).contains("not supported by Homarus"));
        let mut v = base.clone();
        v["delivery"] = json!({"mode": "webhook"});
        assert!(e(v).contains("/delivery/to"));
        let mut v = base.clone();
        v["id"] = json!("mine");
        assert!(e(v).contains("/id: set by the server"));
        let mut v = base;
        v["schedule"] = json!({"kind": "at", "at": "20m"});
        let j = add(v).unwrap();
        assert_eq!(j.schedule, Schedule::At { at: iso(T0 + 20 * 60_000) });
        assert!(j.deletes_after_success());
    }

    #[test]
    fn failures_back_off_then_disable() {
        let mut j = add(
            json!({"name": "x", "schedule": {"kind": "every", "everyMs": 1000, "anchorMs": T0}, "sessionTarget": "main",
                                "wakeMode": "now", "payload": {"kind": "systemEvent", "text": "t"}}),
        )
        .unwrap();
        assert_eq!(j.finish_run(T0, T0, T0 + 10, None, false), Some(T0 + 1000));
        assert_eq!(j.finish_run(T0 + 1000, T0 + 1000, T0 + 1010, Some("boom"), false), Some(T0 + 1010 + 30_000));
        assert_eq!(j.state.last_run_status.as_deref(), Some("error"));
        let n = j.finish_run(T0 + 2000, T0 + 2000, T0 + 2010, Some("boom"), false).unwrap();
        assert_eq!(n, T0 + 2010 + 60_000);
        for i in 3..10 {
            assert!(j.finish_run(T0, T0, T0 + i, Some("boom"), false).is_some());
        }
        assert_eq!(j.finish_run(T0, T0, T0 + 99, Some("boom"), false), None, "10th failure disables");
        assert!(!j.enabled);
        assert_eq!(j.state.auto_disabled.as_ref().unwrap()["reason"], "consecutive-failures");
        // Re-enabling clears the streak.
        let j2 = j.patched(&json!({"enabled": true}), T0 + 100).unwrap();
        assert_eq!((j2.enabled, j2.state.consecutive_errors, j2.state.auto_disabled.is_none()), (true, 0, true));
        assert!(j
            .patched(&json!({"sessionTarget": "isolated"}), T0)
            .unwrap_err()
            .starts_with("invalid params: at /patch/payload/kind"));
    }
}
