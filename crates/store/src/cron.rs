//! Cron jobs (the whole job as JSON, keyed by id) and their run log (newest kept per job).
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use crate::{Store, StoreError};

/// Run log entries kept per job.
pub const RUNS_KEPT_PER_JOB: i64 = 500;

pub(crate) const CRON_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cron_jobs (
    id            TEXT PRIMARY KEY,
    job           TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cron_runs (
    run_id          TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL,
    ts              INTEGER NOT NULL,
    status          TEXT NOT NULL,
    delivery_status TEXT NOT NULL,
    entry           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cron_runs_job_ts ON cron_runs (job_id, ts);
CREATE INDEX IF NOT EXISTS cron_runs_ts ON cron_runs (ts);
";

/// A page of run log entries.
#[derive(Debug, Clone, PartialEq)]
pub struct CronRunsPage {
    /// Entries.
    pub entries: Vec<Value>,
    /// Matching entries in all.
    pub total: u64,
}

impl Store {
    /// Every stored job.
    pub fn cron_jobs(&self) -> Result<Vec<Value>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT job FROM cron_jobs")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            if let Ok(v) = serde_json::from_str(&r?) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// One job.
    pub fn cron_job(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let conn = self.conn();
        let s: Option<String> =
            conn.query_row("SELECT job FROM cron_jobs WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
        Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Insert or replace a job.
    pub fn cron_job_put(&self, id: &str, job: &Value, now_ms: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO cron_jobs (id, job, updated_at_ms) VALUES (?1, ?2, ?3)",
            params![id, job.to_string(), now_ms],
        )?;
        Ok(())
    }

    /// Remove a job (its run log stays, for history). `false` when it did not exist.
    pub fn cron_job_delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM cron_jobs WHERE id = ?1", params![id])? > 0)
    }

    /// Record a run (`entry` has `runId`, `jobId`, `ts`, `status`, `deliveryStatus`); keeps the newest
    /// [`RUNS_KEPT_PER_JOB`] of the job.
    pub fn cron_run_insert(&self, entry: &Value) -> Result<(), StoreError> {
        let s = |k: &str| entry[k].as_str().unwrap_or("").to_string();
        let job = s("jobId");
        let conn = self.conn();
        conn.execute(
            "INSERT OR REPLACE INTO cron_runs (run_id, job_id, ts, status, delivery_status, entry) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![s("runId"), job, entry["ts"].as_i64().unwrap_or(0), s("status"), s("deliveryStatus"), entry.to_string()],
        )?;
        conn.execute(
            "DELETE FROM cron_runs WHERE job_id = ?1 AND run_id NOT IN
               (SELECT run_id FROM cron_runs WHERE job_id = ?1 ORDER BY ts DESC LIMIT ?2)",
            params![job, RUNS_KEPT_PER_JOB],
        )?;
        Ok(())
    }

    /// Run log entries, filtered, newest first unless `ascending`.
    pub fn cron_runs(
        &self,
        job_id: Option<&str>,
        statuses: &[String],
        delivery_statuses: &[String],
        limit: u64,
        offset: u64,
        ascending: bool,
    ) -> Result<CronRunsPage, StoreError> {
        let conn = self.conn();
        let mut sql = String::from("FROM cron_runs WHERE (?1 IS NULL OR job_id = ?1)");
        let list =
            |v: &[String]| v.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>().join(",");
        if !statuses.is_empty() {
            sql.push_str(&format!(" AND status IN ({})", list(statuses)));
        }
        if !delivery_statuses.is_empty() {
            sql.push_str(&format!(" AND delivery_status IN ({})", list(delivery_statuses)));
        }
        let total: i64 = conn.query_row(&format!("SELECT COUNT(*) {sql}"), params![job_id], |r| r.get(0))?;
        let order = if ascending { "ASC" } else { "DESC" };
        let mut stmt = conn.prepare(&format!("SELECT entry {sql} ORDER BY ts {order}, run_id LIMIT ?2 OFFSET ?3"))?;
        let rows = stmt.query_map(params![job_id, limit as i64, offset as i64], |r| r.get::<_, String>(0))?;
        let mut entries = Vec::new();
        for r in rows {
            if let Ok(v) = serde_json::from_str(&r?) {
                entries.push(v);
            }
        }
        Ok(CronRunsPage { entries, total: total as u64 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jobs_and_runs() {
        let s = Store::open_in_memory().unwrap();
        s.cron_job_put("a", &json!({"id": "a", "name": "x"}), 1).unwrap();
        s.cron_job_put("a", &json!({"id": "a", "name": "y"}), 2).unwrap();
        assert_eq!(s.cron_jobs().unwrap(), vec![json!({"id": "a", "name": "y"})]);
        for i in 0..5 {
            let st = if i % 2 == 0 { "ok" } else { "error" };
            s.cron_run_insert(&json!({"runId": format!("r{i}"), "jobId": "a", "ts": i, "status": st, "deliveryStatus": "not-requested"}))
                .unwrap();
        }
        let page = s.cron_runs(Some("a"), &["ok".into()], &[], 10, 0, false).unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.entries[0]["runId"], "r4");
        let page = s.cron_runs(None, &[], &[], 2, 1, true).unwrap();
        assert_eq!((page.total, page.entries[0]["runId"].as_str()), (5, Some("r1")));
        assert!(s.cron_job_delete("a").unwrap());
        assert!(s.cron_job("a").unwrap().is_none());
    }
}
