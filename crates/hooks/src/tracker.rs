//! The active-session tracker: every session that started and has not ended, so a shutdown can
//! end each of them exactly once.
use std::collections::HashMap;
use std::sync::Mutex;

/// A session that has had `session_start` and not yet `session_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// Session id (the tracker's key).
    pub session_id: String,
    /// Session key.
    pub session_key: String,
    /// Owning agent.
    pub agent_id: Option<String>,
    /// Its transcript.
    pub session_file: Option<String>,
    /// When it started, ms since the epoch.
    pub started_at_ms: i64,
}

/// Sessions started and not ended, by session id.
#[derive(Debug, Default)]
pub struct ActiveSessionTracker {
    sessions: Mutex<HashMap<String, ActiveSession>>,
}

impl ActiveSessionTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Note a started session; re-noting an id replaces it; an empty id is ignored.
    pub fn note(&self, s: ActiveSession) {
        if s.session_id.is_empty() {
            return;
        }
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(s.session_id.clone(), s);
    }

    /// Forget an ended session; an empty or unknown id is a no-op. Returns what was tracked.
    pub fn forget(&self, session_id: &str) -> Option<ActiveSession> {
        if session_id.is_empty() {
            return None;
        }
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(session_id)
    }

    /// A snapshot copy of every tracked session.
    pub fn list(&self) -> Vec<ActiveSession> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// How many sessions are tracked.
    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none are tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget everything.
    pub fn clear(&self) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, file: &str) -> ActiveSession {
        ActiveSession {
            session_id: id.into(),
            session_key: "k".into(),
            agent_id: None,
            session_file: Some(file.into()),
            started_at_ms: 0,
        }
    }

    #[test]
    fn the_tracker_matrix() {
        let t = ActiveSessionTracker::new();
        assert!(t.list().is_empty());
        t.note(s("a", "old"));
        t.note(s("a", "new"));
        assert_eq!(t.list(), vec![s("a", "new")], "re-noting replaces");
        t.note(s("", "x"));
        assert_eq!(t.len(), 1, "an empty id is ignored");
        let mut snapshot = t.list();
        snapshot.clear();
        assert_eq!(t.len(), 1, "a snapshot is a copy");
        assert!(t.forget("unknown").is_none());
        assert!(t.forget("").is_none());
        assert_eq!(t.forget("a"), Some(s("a", "new")));
        assert!(t.is_empty());
        t.note(s("b", "f"));
        t.clear();
        assert!(t.is_empty());
    }
}
