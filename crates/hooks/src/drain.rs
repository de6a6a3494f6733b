//! The shutdown drain: end every still-active session once, within one total budget.
use std::time::Duration;

use serde_json::Value;

use crate::{ActiveSession, ActiveSessionTracker, HookRunner};

/// Why a session ended (`session_end.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEndReason {
    /// `/new`.
    New,
    /// `/reset` or `sessions.reset`.
    Reset,
    /// Idle reset policy.
    Idle,
    /// Daily reset policy.
    Daily,
    /// Compaction rotated the session id.
    Compaction,
    /// `sessions.delete`.
    Deleted,
    /// The gateway stopped.
    Shutdown,
    /// The gateway restarted.
    Restart,
    /// Anything else.
    Unknown,
}

impl SessionEndReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Reset => "reset",
            Self::Idle => "idle",
            Self::Daily => "daily",
            Self::Compaction => "compaction",
            Self::Deleted => "deleted",
            Self::Shutdown => "shutdown",
            Self::Restart => "restart",
            Self::Unknown => "unknown",
        }
    }
}

/// What a drain did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Every session the drain ended (forgotten from the tracker), whether or not a plugin listened.
    pub emitted_session_ids: Vec<String>,
    /// The budget ran out before every `session_end` handler finished.
    pub timed_out: bool,
}

/// The least total budget a drain gets.
const MIN_BUDGET: Duration = Duration::from_millis(100);

/// End every tracked session: each is forgotten at once (so it can never be ended twice), then all
/// `session_end` handlers run concurrently, the whole drain bounded by `total` (never per handler).
/// `payload` builds the `(event, ctx)` of one session's `session_end`.
pub async fn drain_active_sessions(
    tracker: &ActiveSessionTracker,
    runner: &HookRunner,
    total: Duration,
    payload: impl Fn(&ActiveSession) -> (Value, Value),
) -> DrainOutcome {
    let tracked = tracker.list();
    if tracked.is_empty() {
        return DrainOutcome { emitted_session_ids: Vec::new(), timed_out: false };
    }
    let listening = runner.has_handlers("session_end");
    let mut emitted = Vec::with_capacity(tracked.len());
    let mut calls = Vec::new();
    for s in &tracked {
        tracker.forget(&s.session_id);
        emitted.push(s.session_id.clone());
        if listening {
            let (event, ctx) = payload(s);
            calls.push(async move { runner.run_observation("session_end", &event, &ctx).await });
        }
    }
    let budget = total.max(MIN_BUDGET);
    let timed_out = tokio::time::timeout(budget, futures_util::future::join_all(calls)).await.is_err();
    if timed_out {
        tracing::warn!(
            sessions = emitted.len(),
            "session-end-drain timed out after {}ms after {} sessions; continuing shutdown",
            budget.as_millis(),
            emitted.len()
        );
    }
    DrainOutcome { emitted_session_ids: emitted, timed_out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HandlerFuture, Registration};
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    fn active(id: &str) -> ActiveSession {
        ActiveSession {
            session_id: id.into(),
            session_key: format!("agent:main:{id}"),
            agent_id: Some("main".into()),
            session_file: None,
            started_at_ms: 0,
        }
    }

    fn payload(reason: SessionEndReason) -> impl Fn(&ActiveSession) -> (Value, Value) {
        move |s| {
            (
                json!({"sessionId": s.session_id, "sessionKey": s.session_key, "messageCount": 0, "reason": reason.as_str()}),
                json!({"sessionId": s.session_id}),
            )
        }
    }

    #[tokio::test]
    async fn emits_session_end_once_per_tracked_session() {
        let tracker = ActiveSessionTracker::new();
        let runner = HookRunner::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let handler = move |_: &str, e: Value, _: Value| -> HandlerFuture {
            let s2 = s2.clone();
            Box::pin(async move {
                s2.lock()
                    .unwrap()
                    .push((e["sessionId"].as_str().unwrap().to_string(), e["reason"].as_str().unwrap().to_string()));
                Ok(None)
            })
        };
        runner
            .register(Registration {
                plugin_id: "p".into(),
                hook: "session_end".into(),
                priority: 0,
                timeout: None,
                handler: Arc::new(handler),
            })
            .unwrap();
        tracker.note(active("a"));
        tracker.note(active("b"));
        tracker.note(active("c"));
        tracker.forget("b"); // already ended through reset/delete: never fired again
        let out =
            drain_active_sessions(&tracker, &runner, Duration::from_secs(2), payload(SessionEndReason::Restart)).await;
        assert!(!out.timed_out);
        let mut ids = out.emitted_session_ids.clone();
        ids.sort();
        assert_eq!(ids, ["a", "c"]);
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, [("a".to_string(), "restart".to_string()), ("c".to_string(), "restart".to_string())]);
        assert!(tracker.is_empty());
        let again =
            drain_active_sessions(&tracker, &runner, Duration::from_secs(2), payload(SessionEndReason::Shutdown)).await;
        assert!(again.emitted_session_ids.is_empty(), "a second drain has nothing to end");
    }

    #[tokio::test]
    async fn forgets_without_listeners_and_times_out_without_blocking() {
        let tracker = ActiveSessionTracker::new();
        let runner = HookRunner::new();
        tracker.note(active("a"));
        let out =
            drain_active_sessions(&tracker, &runner, Duration::from_secs(2), payload(SessionEndReason::Shutdown)).await;
        assert_eq!(out.emitted_session_ids, ["a"]);
        assert!(tracker.is_empty(), "forgotten even with no session_end plugin");

        let hang = |_: &str, _: Value, _: Value| -> HandlerFuture { Box::pin(std::future::pending()) };
        runner
            .register(Registration {
                plugin_id: "slow".into(),
                hook: "session_end".into(),
                priority: 0,
                timeout: Some(Duration::from_secs(30)),
                handler: Arc::new(hang),
            })
            .unwrap();
        for i in 0..50 {
            tracker.note(active(&format!("s{i}")));
        }
        let started = std::time::Instant::now();
        let out =
            drain_active_sessions(&tracker, &runner, Duration::from_millis(200), payload(SessionEndReason::Shutdown))
                .await;
        assert!(out.timed_out);
        assert_eq!(out.emitted_session_ids.len(), 50);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "one total budget, not per session: {:?}",
            started.elapsed()
        );
    }
}
