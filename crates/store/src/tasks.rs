//! The task ledger: one row per background task (subagent, `agent` run, media generation, cron run),
//! with indexed columns for the queries and the whole record as JSON.
//!
//! Invariant: terminal statuses are sticky — an update of a task that already ended changes nothing.
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Store, StoreError};

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting to run.
    Queued,
    /// Running.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished badly.
    Failed,
    /// Ran out of time.
    TimedOut,
    /// Cancelled by someone.
    Cancelled,
    /// Its backing run vanished (a crash, a restart).
    Lost,
}

impl TaskStatus {
    /// The ledger name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }

    /// Whether the task ended (and can never change again).
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    /// From the ledger name.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// One task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// Task id.
    pub task_id: String,
    /// The run that does the work.
    pub run_id: String,
    /// `subagent`, `cli`, `cron`, `acp`.
    pub runtime: String,
    /// What kind of work (`subagent`, `agent`, `image_generate`, …).
    pub kind: String,
    /// Short human label.
    pub label: String,
    /// The prompt or request.
    pub task: String,
    /// Status.
    pub status: TaskStatus,
    /// `done_only`, `state_changes` or `silent`.
    pub notify_policy: String,
    /// `pending`, `delivered`, `session_queued`, `failed`, `parent_missing`, `not_applicable`.
    pub delivery_status: String,
    /// Owning agent.
    pub agent_id: String,
    /// The session that asked for it.
    pub requester_session_key: Option<String>,
    /// The session doing the work (subagents).
    pub child_session_key: Option<String>,
    /// Where the requester talks (`{channel, to, accountId, threadId}`), when known.
    pub requester_origin: Option<Value>,
    /// What created it (`sessions_spawn`, `image_generate:openai`, …).
    pub source_id: Option<String>,
    /// ms since the epoch.
    pub created_at: i64,
    /// ms since the epoch.
    pub updated_at: i64,
    /// ms since the epoch.
    pub started_at: Option<i64>,
    /// ms since the epoch.
    pub ended_at: Option<i64>,
    /// Latest progress line.
    pub progress_summary: Option<String>,
    /// Outcome line.
    pub terminal_summary: Option<String>,
    /// Error text.
    pub error: Option<String>,
    /// The result text (subagent answer, media paths).
    pub result: Option<String>,
    /// When the record may be pruned.
    pub cleanup_after: Option<i64>,
}

pub(crate) const TASKS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    task_id               TEXT PRIMARY KEY,
    status                TEXT NOT NULL,
    agent_id              TEXT NOT NULL,
    requester_session_key TEXT,
    run_id                TEXT NOT NULL,
    updated_at_ms         INTEGER NOT NULL,
    cleanup_after_ms      INTEGER,
    record                TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_update ON tasks (updated_at_ms DESC, task_id);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_by_run ON tasks (run_id);
";

fn decode(json: String) -> Option<TaskRecord> {
    serde_json::from_str(&json).ok()
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery<'a> {
    /// Any of these statuses (empty: all).
    pub statuses: Vec<TaskStatus>,
    /// One agent.
    pub agent_id: Option<&'a str>,
    /// One requester session.
    pub session_key: Option<&'a str>,
    /// At most this many.
    pub limit: u32,
    /// Skip this many (the cursor).
    pub offset: u32,
}

impl Store {
    /// Insert a new task.
    pub fn insert_task(&self, t: &TaskRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(t).unwrap_or_default();
        self.conn().execute(
            "INSERT INTO tasks (task_id, status, agent_id, requester_session_key, run_id, updated_at_ms, cleanup_after_ms, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![t.task_id, t.status.as_str(), t.agent_id, t.requester_session_key, t.run_id, t.updated_at, t.cleanup_after, record],
        )?;
        Ok(())
    }

    /// Write a task unless it already ended; `false` when the stored task was terminal (or missing).
    pub fn update_task(&self, t: &TaskRecord) -> Result<bool, StoreError> {
        let record = serde_json::to_string(t).unwrap_or_default();
        let n = self.conn().execute(
            "UPDATE tasks SET status = ?2, updated_at_ms = ?3, cleanup_after_ms = ?4, record = ?5
             WHERE task_id = ?1 AND status IN ('queued', 'running')",
            params![t.task_id, t.status.as_str(), t.updated_at, t.cleanup_after, record],
        )?;
        Ok(n == 1)
    }

    /// Update fields that may change after the end (delivery status, cleanup time), status untouched.
    pub fn update_task_delivery(&self, t: &TaskRecord) -> Result<(), StoreError> {
        let conn = self.conn();
        let current: Option<String> =
            conn.query_row("SELECT record FROM tasks WHERE task_id = ?1", [&t.task_id], |r| r.get(0)).optional()?;
        let Some(mut stored) = current.and_then(decode) else { return Ok(()) };
        stored.delivery_status = t.delivery_status.clone();
        stored.cleanup_after = t.cleanup_after;
        let record = serde_json::to_string(&stored).unwrap_or_default();
        conn.execute(
            "UPDATE tasks SET cleanup_after_ms = ?2, record = ?3 WHERE task_id = ?1",
            params![t.task_id, stored.cleanup_after, record],
        )?;
        Ok(())
    }

    /// One task.
    pub fn task(&self, task_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let json: Option<String> =
            self.conn().query_row("SELECT record FROM tasks WHERE task_id = ?1", [task_id], |r| r.get(0)).optional()?;
        Ok(json.and_then(decode))
    }

    /// The task of a run.
    pub fn task_by_run(&self, run_id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let json: Option<String> =
            self.conn().query_row("SELECT record FROM tasks WHERE run_id = ?1", [run_id], |r| r.get(0)).optional()?;
        Ok(json.and_then(decode))
    }

    /// Tasks, most recently updated first.
    pub fn tasks(&self, q: &TaskQuery<'_>) -> Result<Vec<TaskRecord>, StoreError> {
        let statuses: Vec<&str> = q.statuses.iter().map(|s| s.as_str()).collect();
        let status_filter = if statuses.is_empty() {
            String::new()
        } else {
            format!("AND status IN ({})", statuses.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(","))
        };
        let sql = format!(
            "SELECT record FROM tasks WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR requester_session_key = ?2) {status_filter}
             ORDER BY updated_at_ms DESC, task_id LIMIT ?3 OFFSET ?4"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![q.agent_id, q.session_key, q.limit, q.offset], |r| r.get::<_, String>(0))?;
        Ok(rows.filter_map(|r| r.ok().and_then(decode)).collect())
    }

    /// Every task still queued or running.
    pub fn open_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let q = TaskQuery {
            statuses: vec![TaskStatus::Queued, TaskStatus::Running],
            limit: u32::MAX,
            ..Default::default()
        };
        self.tasks(&q)
    }

    /// Delete ended tasks whose `cleanupAfter` passed; returns how many.
    pub fn prune_tasks(&self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM tasks WHERE status NOT IN ('queued', 'running') AND cleanup_after_ms IS NOT NULL AND cleanup_after_ms < ?1",
            [now_ms],
        )?)
    }

    /// Count of tasks by ledger status.
    pub fn task_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM tasks GROUP BY status")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, status: TaskStatus, updated: i64) -> TaskRecord {
        TaskRecord {
            task_id: id.into(),
            run_id: format!("run-{id}"),
            runtime: "subagent".into(),
            kind: "subagent".into(),
            label: "l".into(),
            task: "do it".into(),
            status,
            notify_policy: "done_only".into(),
            delivery_status: "pending".into(),
            agent_id: "main".into(),
            requester_session_key: Some("agent:main:main".into()),
            child_session_key: None,
            requester_origin: None,
            source_id: None,
            created_at: updated,
            updated_at: updated,
            started_at: None,
            ended_at: None,
            progress_summary: None,
            terminal_summary: None,
            error: None,
            result: None,
            cleanup_after: None,
        }
    }

    #[test]
    fn terminal_statuses_are_sticky_and_queries_filter() {
        let store = Store::open_in_memory().unwrap();
        store.insert_task(&task("a", TaskStatus::Queued, 1)).unwrap();
        store.insert_task(&task("b", TaskStatus::Running, 2)).unwrap();
        let mut a = store.task("a").unwrap().unwrap();
        a.status = TaskStatus::Succeeded;
        a.updated_at = 3;
        a.cleanup_after = Some(10);
        assert!(store.update_task(&a).unwrap());
        a.status = TaskStatus::Lost;
        assert!(!store.update_task(&a).unwrap(), "a finished task never changes status");
        assert_eq!(store.task("a").unwrap().unwrap().status, TaskStatus::Succeeded);
        a.delivery_status = "delivered".into();
        store.update_task_delivery(&a).unwrap();
        let stored = store.task("a").unwrap().unwrap();
        assert_eq!((stored.status, stored.delivery_status.as_str()), (TaskStatus::Succeeded, "delivered"));
        assert_eq!(store.open_tasks().unwrap().iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(), ["b"]);
        let q = TaskQuery { statuses: vec![TaskStatus::Succeeded], limit: 10, ..Default::default() };
        assert_eq!(store.tasks(&q).unwrap().len(), 1);
        assert_eq!(store.task_by_run("run-b").unwrap().unwrap().task_id, "b");
        assert_eq!(store.prune_tasks(5).unwrap(), 0);
        assert_eq!(store.prune_tasks(11).unwrap(), 1);
        assert!(store.task("a").unwrap().is_none());
    }
}
