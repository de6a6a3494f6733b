//! Session entries: one row per session key, pointing at the session's current transcript.
use rusqlite::{params, OptionalExtension, Row};
use serde_json::{Map, Value};

use crate::{Store, StoreError};

/// One session entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// The session key (`agent:main:main`, …).
    pub key: String,
    /// The current session id (a new one after each reset).
    pub session_id: String,
    /// Owning agent.
    pub agent_id: String,
    /// Current transcript file.
    pub session_file: String,
    /// `direct`, `group`, `channel` or `unknown`.
    pub chat_type: String,
    /// How it was created (`operator`, `run`, `channel`, …).
    pub created_via: String,
    /// First created.
    pub created_at_ms: i64,
    /// Last change of any kind.
    pub updated_at_ms: i64,
    /// When the current session id started (daily reset uses this).
    pub session_started_at_ms: i64,
    /// Last user or assistant message (idle reset uses this).
    pub last_interaction_at_ms: Option<i64>,
    /// Messages in the current transcript.
    pub message_count: i64,
    /// Unique-ish human label.
    pub label: Option<String>,
    /// Presentation title.
    pub display_name: Option<String>,
    /// Patchable preferences (`thinkingLevel`, `model`, `pinned`, …) as a JSON object.
    pub prefs: Map<String, Value>,
}

pub(crate) const SESSIONS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    key                    TEXT PRIMARY KEY,
    session_id             TEXT NOT NULL UNIQUE,
    agent_id               TEXT NOT NULL,
    session_file           TEXT NOT NULL,
    chat_type              TEXT NOT NULL,
    created_via            TEXT NOT NULL,
    created_at_ms          INTEGER NOT NULL,
    updated_at_ms          INTEGER NOT NULL,
    session_started_at_ms  INTEGER NOT NULL,
    last_interaction_at_ms INTEGER,
    message_count          INTEGER NOT NULL DEFAULT 0,
    label                  TEXT,
    display_name           TEXT,
    prefs                  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions (updated_at_ms DESC, key);
CREATE INDEX IF NOT EXISTS sessions_by_agent ON sessions (agent_id, updated_at_ms DESC);
";

const COLS: &str = "key, session_id, agent_id, session_file, chat_type, created_via, created_at_ms, updated_at_ms, \
     session_started_at_ms, last_interaction_at_ms, message_count, label, display_name, prefs";

const PLACEHOLDERS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14";

/// Call `f` with a row's values bound in `COLS` order.
fn with_columns<R>(
    s: &SessionRow,
    f: impl FnOnce(&[&dyn rusqlite::ToSql]) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
    let prefs = Value::Object(s.prefs.clone()).to_string();
    f(params![
        s.key,
        s.session_id,
        s.agent_id,
        s.session_file,
        s.chat_type,
        s.created_via,
        s.created_at_ms,
        s.updated_at_ms,
        s.session_started_at_ms,
        s.last_interaction_at_ms,
        s.message_count,
        s.label,
        s.display_name,
        prefs
    ])
}

fn row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    let prefs: String = r.get(13)?;
    Ok(SessionRow {
        key: r.get(0)?,
        session_id: r.get(1)?,
        agent_id: r.get(2)?,
        session_file: r.get(3)?,
        chat_type: r.get(4)?,
        created_via: r.get(5)?,
        created_at_ms: r.get(6)?,
        updated_at_ms: r.get(7)?,
        session_started_at_ms: r.get(8)?,
        last_interaction_at_ms: r.get(9)?,
        message_count: r.get(10)?,
        label: r.get(11)?,
        display_name: r.get(12)?,
        prefs: serde_json::from_str(&prefs).unwrap_or_default(),
    })
}

impl Store {
    /// Insert a new session; `false` (and no change) when the key already exists.
    pub fn insert_session(&self, s: &SessionRow) -> Result<bool, StoreError> {
        Ok(self.insert_sessions(std::slice::from_ref(s))? == 1)
    }

    /// Insert many sessions in one transaction (imports, benchmarks); existing keys are skipped.
    /// Returns how many were inserted.
    pub fn insert_sessions(&self, rows: &[SessionRow]) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let sql = format!("INSERT OR IGNORE INTO sessions ({COLS}) VALUES ({PLACEHOLDERS})");
            let mut stmt = tx.prepare_cached(&sql)?;
            for s in rows {
                n += with_columns(s, |p| stmt.execute(p))?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Write every field of an existing session (matched by key).
    pub fn update_session(&self, s: &SessionRow) -> Result<bool, StoreError> {
        let conn = self.conn();
        let sql =
            "UPDATE sessions SET session_id = ?2, agent_id = ?3, session_file = ?4, chat_type = ?5, created_via = ?6,
                 created_at_ms = ?7, updated_at_ms = ?8, session_started_at_ms = ?9, last_interaction_at_ms = ?10,
                 message_count = ?11, label = ?12, display_name = ?13, prefs = ?14
             WHERE key = ?1";
        let n = with_columns(s, |p| conn.execute(sql, p))?;
        Ok(n == 1)
    }

    /// The session with this key.
    pub fn session(&self, key: &str) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("SELECT {COLS} FROM sessions WHERE key = ?1");
        Ok(self.conn().query_row(&sql, [key], row).optional()?)
    }

    /// A page of sessions, most recently updated first, optionally for one agent; with the total.
    pub fn sessions_page(
        &self,
        agent_id: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<SessionRow>, u64), StoreError> {
        let conn = self.conn();
        let (filter, total): (&str, u64) = match agent_id {
            Some(a) => (
                "WHERE agent_id = ?3",
                conn.query_row("SELECT COUNT(*) FROM sessions WHERE agent_id = ?1", [a], |r| r.get(0))?,
            ),
            None => ("", conn.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?),
        };
        let sql = format!("SELECT {COLS} FROM sessions {filter} ORDER BY updated_at_ms DESC, key LIMIT ?1 OFFSET ?2");
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = match agent_id {
            Some(a) => stmt.query_map(params![limit, offset, a], row)?.collect::<Result<Vec<_>, _>>()?,
            None => stmt.query_map(params![limit, offset], row)?.collect::<Result<Vec<_>, _>>()?,
        };
        Ok((rows, total))
    }

    /// Visit every session in one scan (no paging), e.g. to track them all at start-up.
    pub fn for_each_session(&self, mut f: impl FnMut(SessionRow)) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM sessions"))?;
        for r in stmt.query_map([], row)? {
            f(r?);
        }
        Ok(())
    }

    /// Maintenance candidates, least recently updated first, at most `limit`: every session updated
    /// before `stale_before_ms`, plus the oldest ones beyond the newest `keep_newest`.
    pub fn maintenance_candidates(
        &self,
        stale_before_ms: i64,
        keep_newest: u64,
        limit: u32,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {COLS} FROM sessions WHERE updated_at_ms < ?1 OR key IN (
                 SELECT key FROM sessions ORDER BY updated_at_ms DESC, key LIMIT -1 OFFSET ?2)
             ORDER BY updated_at_ms ASC, key LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![stale_before_ms, keep_newest as i64, limit], row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Delete a session row; returns it.
    pub fn delete_session(&self, key: &str) -> Result<Option<SessionRow>, StoreError> {
        let existing = self.session(key)?;
        if existing.is_some() {
            self.conn().execute("DELETE FROM sessions WHERE key = ?1", [key])?;
        }
        Ok(existing)
    }

    /// Number of stored sessions.
    pub fn session_count(&self) -> Result<u64, StoreError> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(key: &str, id: &str, updated: i64, agent: &str) -> SessionRow {
        SessionRow {
            key: key.into(),
            session_id: id.into(),
            agent_id: agent.into(),
            session_file: format!("/x/{id}.jsonl"),
            chat_type: "direct".into(),
            created_via: "operator".into(),
            created_at_ms: 1,
            updated_at_ms: updated,
            session_started_at_ms: 1,
            last_interaction_at_ms: None,
            message_count: 0,
            label: None,
            display_name: None,
            prefs: Map::new(),
        }
    }

    #[test]
    fn insert_page_update_delete() {
        let store = Store::open_in_memory().unwrap();
        assert!(store.insert_session(&s("agent:main:a", "1", 10, "main")).unwrap());
        assert!(!store.insert_session(&s("agent:main:a", "9", 99, "main")).unwrap(), "keys are unique");
        store.insert_session(&s("agent:main:b", "2", 30, "main")).unwrap();
        store.insert_session(&s("agent:ops:c", "3", 20, "ops")).unwrap();
        let (page, total) = store.sessions_page(None, 2, 0).unwrap();
        assert_eq!(total, 3);
        assert_eq!(page.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["agent:main:b", "agent:ops:c"]);
        let (page, total) = store.sessions_page(Some("main"), 10, 1).unwrap();
        assert_eq!((page.len(), total), (1, 2));
        let mut a = store.session("agent:main:a").unwrap().unwrap();
        a.prefs.insert("thinkingLevel".into(), Value::from("high"));
        a.label = Some("x".into());
        assert!(store.update_session(&a).unwrap());
        assert_eq!(store.session("agent:main:a").unwrap().unwrap(), a);
        assert_eq!(store.delete_session("agent:main:a").unwrap().unwrap().session_id, "1");
        let many: Vec<_> = (0..100).map(|i| s(&format!("agent:main:bulk{i}"), &format!("b{i}"), i, "main")).collect();
        assert_eq!(store.insert_sessions(&many).unwrap(), 100);
        assert_eq!(store.insert_sessions(&many).unwrap(), 0, "existing keys are skipped");
        assert_eq!(store.session_count().unwrap(), 102);
        let mut seen = 0;
        store.for_each_session(|_| seen += 1).unwrap();
        assert_eq!(seen, 102);
    }

    #[test]
    fn maintenance_candidates_are_stale_or_beyond_the_cap_oldest_first() {
        let store = Store::open_in_memory().unwrap();
        let rows: Vec<_> =
            (0..10).map(|i| s(&format!("agent:main:k{i}"), &format!("id{i}"), 100 + i, "main")).collect();
        store.insert_sessions(&rows).unwrap();
        let keys = |v: Vec<SessionRow>| v.into_iter().map(|r| r.key).collect::<Vec<_>>();
        assert!(store.maintenance_candidates(0, 100, 50).unwrap().is_empty());
        assert_eq!(keys(store.maintenance_candidates(102, 100, 50).unwrap()), ["agent:main:k0", "agent:main:k1"]);
        assert_eq!(
            keys(store.maintenance_candidates(0, 7, 50).unwrap()),
            ["agent:main:k0", "agent:main:k1", "agent:main:k2"]
        );
        assert_eq!(keys(store.maintenance_candidates(101, 8, 50).unwrap()), ["agent:main:k0", "agent:main:k1"]);
        assert_eq!(store.maintenance_candidates(200, 0, 4).unwrap().len(), 4, "bounded by limit");
    }
}
